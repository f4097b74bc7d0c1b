//! The address space when its backing store fails, and at the edges of the offset space.
//! Each test pins a bug found in review: after an IO error the length, the cache and the
//! store must still agree, and no byte past the end of the file may become non-zero.

use rangelock::mm::{
    remap_range, Access, AddressSpace, Backing, FileBacking, MemBacking, PAGE_SIZE,
};
mod common;

use common::{Hook, Hooked, Op};
use rangelock::RangeRwLock;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

const PAGE: u64 = PAGE_SIZE as u64;

/// A store whose page writes or punches can be made to fail.
#[derive(Default)]
struct Flaky {
    fail_write: AtomicBool,
    fail_punch: AtomicBool,
}

impl Hook for Flaky {
    fn before(&self, op: Op) -> io::Result<()> {
        let fail = match op {
            Op::WritePage => &self.fail_write,
            Op::Punch => &self.fail_punch,
        };
        if fail.load(SeqCst) {
            return Err(io::Error::other("injected EIO"));
        }
        Ok(())
    }
}

fn flaky() -> Hooked<Flaky> {
    Hooked::new(Flaky::default())
}

fn read<B: Backing>(s: &AddressSpace<RangeRwLock, B>, offset: u64, n: usize) -> Vec<u8> {
    let mut buf = vec![0xEE; n];
    let got = s.read(offset, &mut buf).unwrap();
    buf.truncate(got);
    buf
}

#[test]
fn a_write_that_wrote_nothing_does_not_change_the_length() {
    let s: AddressSpace<RangeRwLock, Hooked<Flaky>> = AddressSpace::with_lock(flaky());
    s.backing().hook.fail_write.store(true, SeqCst);
    assert!(s.write(1 << 20, b"x").is_err());
    assert_eq!(s.len(), 0);
}

#[test]
fn a_failed_write_keeps_the_pages_it_wrote_inside_the_file() {
    let s: AddressSpace<RangeRwLock, Hooked<Flaky>> = AddressSpace::with_lock(flaky());
    s.write(0, &[1; PAGE_SIZE]).unwrap();
    s.read(0, &mut [0; 1]).unwrap(); // cached
    s.backing().hook.fail_write.store(true, SeqCst);
    assert!(s.write(0, &[2; 2 * PAGE_SIZE]).is_err());
    // Nothing was written: the cached copy must not claim otherwise.
    assert_eq!(read(&s, 0, 4), vec![1; 4]);
    assert_eq!(s.len(), PAGE);
}

#[test]
fn a_failed_truncate_changes_nothing() {
    let s: AddressSpace<RangeRwLock, Hooked<Flaky>> = AddressSpace::with_lock(flaky());
    s.write(0, &[9; 2 * PAGE_SIZE]).unwrap();
    s.backing().hook.fail_punch.store(true, SeqCst);
    assert!(s.truncate(10).is_err());
    assert_eq!(s.len(), 2 * PAGE);
    assert_eq!(read(&s, 100, 8), vec![9; 8]);
    s.backing().hook.fail_punch.store(false, SeqCst);
    s.truncate(10).unwrap();
    s.truncate(2 * PAGE).unwrap();
    assert_eq!(read(&s, 100, 8), vec![0; 8], "bytes past the end came back");
}

#[test]
fn a_failed_punch_loses_no_mapped_write() {
    let s: AddressSpace<RangeRwLock, Hooked<Flaky>> = AddressSpace::with_lock(flaky());
    s.write(0, &[1; 2 * PAGE_SIZE]).unwrap();
    let page = s.fault(0, Access::Write).unwrap();
    page.write(0, &[7; 4]).unwrap();
    s.backing().hook.fail_punch.store(true, SeqCst);
    assert!(s.punch_hole(0, PAGE).is_err());
    assert!(page.is_mapped());
    assert_eq!(read(&s, 0, 5), vec![7, 7, 7, 7, 1]);
}

#[test]
fn a_failed_remap_leaves_the_destination_as_it_was() {
    let a: AddressSpace<RangeRwLock, MemBacking> =
        AddressSpace::with_lock(MemBacking::new(1 << 20));
    a.write(0, &[5; 2 * PAGE_SIZE]).unwrap();
    let b: AddressSpace<RangeRwLock, Hooked<Flaky>> = AddressSpace::with_lock(flaky());
    b.write(0, &[3; PAGE_SIZE]).unwrap();
    b.backing().hook.fail_write.store(true, SeqCst);
    assert!(remap_range(&a, 0, &b, 0, 2 * PAGE).is_err());
    assert_eq!(b.len(), PAGE);
    assert_eq!(read(&b, 0, 4), vec![3; 4]);
}

#[test]
fn a_mapped_write_past_the_end_on_the_last_page_of_the_space_fails() {
    let s: AddressSpace<RangeRwLock, MemBacking> =
        AddressSpace::with_lock(MemBacking::new(1 << 20));
    s.write(u64::MAX - 10, &[1; 5]).unwrap(); // the file ends at u64::MAX - 5
    let m = s.fault(u64::MAX - 10, Access::Write).unwrap();
    let err = m.write(PAGE_SIZE - 6, &[7; 6]).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    m.write(PAGE_SIZE - 12, &[7; 6]).unwrap(); // up to the end: fine
    s.truncate(u64::MAX).unwrap();
    assert_eq!(read(&s, u64::MAX - 5, 5), vec![0; 5]);
}

#[test]
fn sync_never_cuts_off_a_write_that_extends_the_file() {
    let path = std::env::temp_dir().join(format!("rangelock-sync-race-{}", std::process::id()));
    let s: AddressSpace<RangeRwLock, FileBacking> =
        AddressSpace::with_lock_and_cache_pages(FileBacking::create(&path).unwrap(), 16);
    let n = 400u64;
    let fill = |i: u64| [(i % 251 + 1) as u8; 16];
    std::thread::scope(|scope| {
        let s = &s;
        scope.spawn(move || {
            for i in 0..n {
                s.write(i * PAGE, &fill(i)).unwrap();
            }
        });
        scope.spawn(move || {
            for _ in 0..n / 4 {
                s.sync().unwrap();
            }
        });
    });
    s.drop_caches();
    let lost = (0..n)
        .filter(|&i| read(&s, i * PAGE, 16) != fill(i))
        .count();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(lost, 0, "pages lost to a racing sync");
}

#[test]
fn close_reports_a_failed_write_back() {
    let s = AddressSpace::<RangeRwLock, _>::with_lock(flaky());
    s.truncate(PAGE).unwrap();
    s.fault(0, Access::Write)
        .unwrap()
        .write(0, b"lost?")
        .unwrap();
    s.backing().hook.fail_write.store(true, SeqCst);
    let err = s.close().unwrap_err();
    assert_eq!(err.to_string(), "injected EIO");
}

#[test]
fn dropping_a_space_writes_its_dirty_pages_back() {
    let path = std::env::temp_dir().join(format!("rangelock-drop-{}", std::process::id()));
    {
        let s = AddressSpace::<RangeRwLock, _>::with_lock(FileBacking::create(&path).unwrap());
        s.truncate(2 * PAGE).unwrap();
        let page = s.fault(PAGE, Access::Write).unwrap();
        page.write(10, b"mapped").unwrap();
        drop(page);
        // Dropped without sync or close.
    }
    let on_disk = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(on_disk.len() as u64, 2 * PAGE);
    assert_eq!(&on_disk[PAGE as usize + 10..][..6], b"mapped");
}
