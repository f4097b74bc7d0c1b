//! `FileBacking`: regular files only, a read-only mode that changes nothing, errors that name
//! the path, lengths checked against `off_t` at once, and the file's length set at once.

use rangelock::mm::{Access, AddressSpace, FileBacking, PAGE_SIZE};
use rangelock::RangeRwLock;
use std::io::ErrorKind;
#[cfg(unix)]
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

type Space = AddressSpace<RangeRwLock, FileBacking>;
type Constructor = fn(&Path) -> std::io::Result<FileBacking>;

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

/// Issue 17: a directory gave `IsADirectory` while `/dev/null` gave `InvalidInput`, and a FIFO
/// opened read-only waited for a writer. Every constructor refuses every file that is not a
/// regular one with `InvalidInput` naming it, at once.
#[cfg(unix)]
#[test]
fn every_constructor_refuses_every_non_regular_file_with_invalid_input_naming_it() {
    let dir = Temp::new("a-directory");
    std::fs::create_dir(&dir.0).unwrap();
    let fifo = Temp::new("a-fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo.0)
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo failed");
    let opens: [(&str, Constructor); 3] = [
        ("open", |p| FileBacking::open(p)),
        ("open_read_only", |p| FileBacking::open_read_only(p)),
        ("create", |p| FileBacking::create(p)),
    ];
    for path in [dir.0.clone(), PathBuf::from("/dev/null"), fifo.0.clone()] {
        for (name, open) in opens {
            let (tx, rx) = std::sync::mpsc::channel();
            let target = path.clone();
            std::thread::spawn(move || tx.send(open(&target).map(drop)));
            let result = rx
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("{name}({}) hangs", path.display()));
            let err = result.expect_err(name);
            assert_eq!(
                err.kind(),
                ErrorKind::InvalidInput,
                "{name}({}): {err}",
                path.display()
            );
            let msg = err.to_string();
            assert!(msg.contains(&*path.to_string_lossy()), "{name}: {msg}");
            assert!(msg.contains("not a regular file"), "{name}: {msg}");
        }
    }
    assert!(dir.0.is_dir(), "the directory is left alone");
    std::fs::remove_dir(&dir.0).unwrap();
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
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
