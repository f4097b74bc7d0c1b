//! `FileBacking`: regular files only, a read-only mode that changes nothing, errors that name
//! the path, lengths checked against `off_t` at once, and the file's length set at once.

use rangelock::mm::{Access, AddressSpace, FileBacking, PAGE_SIZE};
use rangelock::RangeRwLock;
use std::io::ErrorKind;
use std::path::PathBuf;

type Space = AddressSpace<RangeRwLock, FileBacking>;

/// A temporary file path, removed when dropped.
struct Temp(PathBuf);

impl Temp {
    fn new(name: &str) -> Temp {
        Temp(std::env::temp_dir().join(format!("rangelock-{name}-{}", std::process::id())))
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(unix)]
#[test]
fn a_device_is_refused_with_its_path_instead_of_hanging() {
    let opens: [fn(&str) -> std::io::Result<FileBacking>; 3] = [
        |p| FileBacking::open(p),
        |p| FileBacking::open_read_only(p),
        |p| FileBacking::create(p),
    ];
    for open in opens {
        let err = open("/dev/null").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains("/dev/null"), "{err}");
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }
}

#[test]
fn errors_name_the_path() {
    let missing = Temp::new("missing");
    let err = FileBacking::open(&missing.0).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(
        err.to_string().contains(&*missing.0.to_string_lossy()),
        "{err}"
    );
}

#[test]
fn a_read_only_file_reads_and_refuses_every_change() {
    let file = Temp::new("read-only");
    let content = vec![7u8; 2 * PAGE_SIZE];
    std::fs::write(&file.0, &content).unwrap();
    let space = Space::with_lock(FileBacking::open_read_only(&file.0).unwrap());
    let mut buf = [0u8; 16];
    space.read(PAGE_SIZE as u64, &mut buf).unwrap();
    assert_eq!(buf, [7; 16]);
    assert!(space.fault(0, Access::Read).is_ok());

    let denied = |r: std::io::Result<()>, what: &str| {
        let err = r.expect_err(what);
        assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{what}: {err}");
        assert!(
            err.to_string().contains(&*file.0.to_string_lossy()),
            "{err}"
        );
    };
    denied(space.write(0, b"x").map(drop), "write");
    denied(
        space.write(3 * PAGE_SIZE as u64, b"x").map(drop),
        "extending write",
    );
    denied(space.fault(0, Access::Write).map(drop), "write fault");
    denied(space.punch_hole(0, PAGE_SIZE as u64), "punch");
    denied(space.truncate(1), "shrink");
    denied(space.truncate(10 * PAGE_SIZE as u64), "grow");
    space.sync().unwrap();

    assert_eq!(space.len(), 2 * PAGE_SIZE as u64);
    space.read(0, &mut buf).unwrap();
    assert_eq!(buf, [7; 16], "the cache still shows the file");
    assert_eq!(
        std::fs::read(&file.0).unwrap(),
        content,
        "the file is unchanged"
    );
}

#[test]
fn lengths_beyond_off_t_are_invalid_at_once() {
    let file = Temp::new("off-t");
    let space = Space::with_lock(FileBacking::create(&file.0).unwrap());
    for len in [u64::MAX, i64::MAX as u64 + 1] {
        let err = space.truncate(len).unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::InvalidInput,
            "truncate({len}): {err}"
        );
    }
    let err = space.write(i64::MAX as u64, b"xy").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(space.len(), 0);
    space.sync().unwrap();
}

#[test]
fn truncate_sets_the_file_length_at_once() {
    let file = Temp::new("grow");
    let space = Space::with_lock(FileBacking::create(&file.0).unwrap());
    let file_len = || std::fs::metadata(&file.0).unwrap().len();
    space.truncate(3 * PAGE_SIZE as u64).unwrap();
    assert_eq!(file_len(), 3 * PAGE_SIZE as u64, "grown before any sync");
    space.write(5 * PAGE_SIZE as u64, b"end").unwrap();
    assert_eq!(file_len(), 5 * PAGE_SIZE as u64 + 3);
    space.truncate(10).unwrap();
    assert_eq!(file_len(), 10);
}

/// Issue 17: a write through a mapping after `close()` returned `Ok` and reached no store.
/// Once the space is closed or dropped, its mappings are unmapped: writes and reads through
/// them fail, and the file keeps what `close` (or the drop) wrote back.
#[test]
fn a_mapping_outliving_its_space_is_unmapped_and_refuses_writes() {
    for close in [true, false] {
        let file = Temp::new(if close { "map-close" } else { "map-drop" });
        let space = Space::with_lock(FileBacking::create(&file.0).unwrap());
        space.truncate(PAGE_SIZE as u64).unwrap();
        let page = space.fault(0, Access::Write).unwrap();
        page.write(0, b"before").unwrap();
        assert!(page.is_mapped());
        if close {
            space.close().unwrap();
        } else {
            drop(space);
        }
        assert!(!page.is_mapped(), "close: {close}");
        let err = page.write(0, b"AFTER!").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Other, "close: {close}: {err}");
        assert!(page.read(0, &mut [0; 6]).is_err(), "close: {close}");
        assert_eq!(&std::fs::read(&file.0).unwrap()[..6], b"before");
    }
}
