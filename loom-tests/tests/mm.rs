//! loom model of the address space's fault racing a hole punch on a tiny space whose device
//! has two blocks, so the punched page's block is reused at once by a write to another page.
#![cfg(rangelock_loom)]

use loom::sync::Arc;
use loom::thread;
use loom_tests::model;
use rangelock::mm::{
    Access, AddressSpace, InvalidateLock, MemBacking, Unlocked, WholeRwSem, PAGE_SIZE,
};
use rangelock::RangeRwLock;

const PAGE: u64 = PAGE_SIZE as u64;

/// A fault of page 0 races `punch_hole(page 0)` followed by a write of page 2, which takes
/// the block page 0 just gave up. The fault may see the old data or zeros (or find its
/// mapping gone), never page 2's data; and once both are done page 0 reads as zeros.
fn fault_vs_punch<L: InvalidateLock + 'static>() {
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    model(|| {
        RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let space: Arc<AddressSpace<L, MemBacking>> = Arc::new(
            AddressSpace::with_lock_and_cache_pages(MemBacking::new(2 * PAGE), 1),
        );
        space.write(0, &[1; PAGE_SIZE]).unwrap();
        space.write(PAGE, &[2; PAGE_SIZE]).unwrap();
        space.drop_caches();
        let faulter = {
            let space = space.clone();
            thread::spawn(move || {
                let page = space.fault(0, Access::Read).unwrap();
                let mut seen = [0u8; 8];
                page.read(0, &mut seen).ok().map(|()| seen)
            })
        };
        space.punch_hole(0, PAGE).unwrap();
        space.write(2 * PAGE, &[3; PAGE_SIZE]).unwrap();
        if let Some(seen) = faulter.join().unwrap() {
            assert!(
                seen == [1; 8] || seen == [0; 8],
                "stale data: the fault saw {seen:?}"
            );
        }
        let mut after = [9u8; 8];
        space.read(0, &mut after).unwrap();
        assert_eq!(after, [0; 8], "stale data: a punched page came back");
    });
    eprintln!(
        "{} interleavings",
        RUNS.load(std::sync::atomic::Ordering::Relaxed)
    );
}

#[test]
fn a_fault_racing_a_punch_never_sees_a_reused_block_with_the_range_lock() {
    fault_vs_punch::<RangeRwLock>();
}

#[test]
fn a_fault_racing_a_punch_never_sees_a_reused_block_with_the_whole_rwsem() {
    fault_vs_punch::<WholeRwSem>();
}

/// The model can fail: without the lock, loom finds the interleaving.
#[test]
#[should_panic(expected = "stale data")]
fn without_the_lock_the_model_finds_the_race() {
    fault_vs_punch::<Unlocked>();
}

/// Two syncs race a write through a mapping. Whatever the order, once all are done the store
/// holds the newest version: an older write-back never lands after a newer one (the page
/// would then be clean while the store is stale, and a read after eviction would return it).
#[test]
fn two_syncs_and_a_mapped_write_leave_the_newest_version_in_the_store() {
    model(|| {
        let space: Arc<AddressSpace<RangeRwLock, MemBacking>> = Arc::new(
            AddressSpace::with_lock_and_cache_pages(MemBacking::new(2 * PAGE), 1),
        );
        space.truncate(PAGE).unwrap();
        let page = space.fault(0, Access::Write).unwrap();
        page.write(0, &[1]).unwrap();
        let syncer = {
            let space = space.clone();
            thread::spawn(move || space.sync().unwrap())
        };
        page.write(0, &[2]).unwrap();
        space.sync().unwrap();
        syncer.join().unwrap();
        drop(page);
        assert_eq!(space.drop_caches(), 1, "the page is clean and unmapped");
        let mut seen = [0u8];
        space.read(0, &mut seen).unwrap();
        assert_eq!(seen, [2], "stale data: an older write-back landed last");
    });
}

/// A read of pages 0 and 1 finds page 0 cached (a hit, without the invalidate lock) and
/// fills page 1 (under the lock), racing `punch_hole(page 1)` followed by a write of page 2
/// that reuses page 1's block. The read sees page 1's old data or zeros, never page 2's; once
/// the punch returned, page 1 reads as zeros.
fn hit_vs_punch<L: InvalidateLock + 'static>() {
    model(|| {
        let space: Arc<AddressSpace<L, MemBacking>> = Arc::new(
            AddressSpace::with_lock_and_cache_pages(MemBacking::new(2 * PAGE), 1),
        );
        space.write(0, &[1; PAGE_SIZE]).unwrap();
        space.write(PAGE, &[2; PAGE_SIZE]).unwrap();
        space.drop_caches();
        let mut warm = [0u8; 1];
        space.read(0, &mut warm).unwrap(); // page 0 is cached: the read below hits it
        let reader = {
            let space = space.clone();
            thread::spawn(move || {
                let mut seen = vec![0u8; 2 * PAGE_SIZE];
                space.read(0, &mut seen).unwrap();
                (seen[0], seen[PAGE_SIZE], seen[2 * PAGE_SIZE - 1])
            })
        };
        space.punch_hole(PAGE, PAGE).unwrap();
        space.write(2 * PAGE, &[3; PAGE_SIZE]).unwrap();
        let (hit, filled, filled_end) = reader.join().unwrap();
        assert_eq!(hit, 1);
        assert!(
            (filled, filled_end) == (2, 2) || (filled, filled_end) == (0, 0),
            "stale data: the read saw page 1 as {filled}..{filled_end}"
        );
        let mut after = [9u8; 8];
        space.read(PAGE, &mut after).unwrap();
        assert_eq!(after, [0; 8], "stale data: a punched page came back");
    });
}

#[test]
fn a_read_hit_racing_a_punch_never_sees_a_reused_block() {
    hit_vs_punch::<RangeRwLock>();
}

/// A read of pages 0 and 1 finds page 0 cached (a hit, without the invalidate lock) and fills
/// page 1 (under the lock), racing `truncate(100)` followed by a write that restores both
/// pages. The file is only ever 100 bytes or two pages long, all ones: the read returns one
/// of those lengths and only ones, never the truncate's zeros under the old length.
fn hit_vs_truncate<L: InvalidateLock + 'static>() {
    model(|| {
        let space: Arc<AddressSpace<L, MemBacking>> = Arc::new(
            AddressSpace::with_lock_and_cache_pages(MemBacking::new(2 * PAGE), 1),
        );
        space.write(0, &[1; 2 * PAGE_SIZE]).unwrap();
        space.drop_caches();
        let mut warm = [0u8; 1];
        space.read(0, &mut warm).unwrap(); // page 0 is cached: the read below hits it
        let reader = {
            let space = space.clone();
            thread::spawn(move || {
                let mut seen = vec![9u8; 2 * PAGE_SIZE];
                let n = space.read(0, &mut seen).unwrap();
                (n, seen[..n].iter().position(|&b| b != 1))
            })
        };
        space.truncate(100).unwrap();
        space.write(0, &[1; 2 * PAGE_SIZE]).unwrap();
        let (n, bad) = reader.join().unwrap();
        assert!(
            (n == 100 || n == 2 * PAGE_SIZE) && bad.is_none(),
            "stale data: the read returned {n} bytes, byte {bad:?} not the file's"
        );
    });
}

#[test]
fn a_read_hit_racing_a_shrinking_truncate_returns_one_length_and_its_bytes() {
    hit_vs_truncate::<RangeRwLock>();
}

#[test]
fn a_read_hit_racing_a_shrinking_truncate_returns_one_length_and_its_bytes_with_the_whole_rwsem() {
    hit_vs_truncate::<WholeRwSem>();
}

/// A write fault of a cached page races `truncate(0)`. A write fault reserves the page's
/// block; if it did so after the truncate freed the blocks past the new end, the block would
/// stay reserved past the end of the file, where no later truncate or punch looks. Whichever
/// wins, no block is left once both are done.
#[test]
fn a_write_fault_racing_a_truncate_leaves_no_block_past_the_end() {
    model(|| {
        let space: Arc<AddressSpace<RangeRwLock, MemBacking>> = Arc::new(
            AddressSpace::with_lock_and_cache_pages(MemBacking::new(2 * PAGE), 1),
        );
        space.write(0, &[1; PAGE_SIZE]).unwrap();
        let mut warm = [0u8; 1];
        space.read(0, &mut warm).unwrap(); // page 0 is cached: the fault below hits it
        let faulter = {
            let space = space.clone();
            thread::spawn(move || space.fault(0, Access::Write).map(drop))
        };
        space.truncate(0).unwrap();
        let _ = faulter.join().unwrap();
        assert_eq!(
            space.backing().used_blocks(),
            0,
            "assertion: a block stayed reserved past the end of the file"
        );
    });
}
