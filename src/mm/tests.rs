use super::*;
use crate::RangeRwLock;
use std::io::ErrorKind;

type Space<L = DefaultLock> = AddressSpace<L, MemBacking>;

fn space(capacity: u64) -> Space {
    AddressSpace::new(MemBacking::new(capacity))
}

fn read_all<L: InvalidateLock, B: Backing>(
    s: &AddressSpace<L, B>,
    offset: u64,
    n: usize,
) -> Vec<u8> {
    let mut buf = vec![0xAA; n];
    let got = s.read(offset, &mut buf).unwrap();
    buf.truncate(got);
    buf
}

fn kind<T: fmt::Debug>(r: io::Result<T>) -> ErrorKind {
    r.expect_err("expected an error").kind()
}

#[test]
fn write_then_read_round_trips_across_pages() {
    let s = space(1 << 20);
    let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
    assert_eq!(s.write(100, &data).unwrap(), data.len());
    assert_eq!(s.len(), 10_100);
    assert_eq!(read_all(&s, 100, 10_000), data);
    assert_eq!(read_all(&s, 0, 100), vec![0; 100]);
}

#[test]
fn reads_are_short_at_the_end_and_empty_past_it() {
    let s = space(1 << 20);
    s.write(0, &[1; 10]).unwrap();
    assert_eq!(read_all(&s, 5, 100), vec![1; 5]);
    assert_eq!(read_all(&s, 10, 100), Vec::<u8>::new());
    assert_eq!(read_all(&s, u64::MAX - 10, 5), Vec::<u8>::new());
    assert_eq!(s.read(0, &mut []).unwrap(), 0);
}

#[test]
fn a_write_past_the_end_leaves_a_zero_gap() {
    let s = space(1 << 20);
    s.write(0, &[9; 10]).unwrap();
    s.write(3 * PAGE + 5, &[7; 3]).unwrap();
    let all = read_all(&s, 0, 4 * PAGE_SIZE);
    assert_eq!(all.len(), 3 * PAGE_SIZE + 8);
    assert!(all[10..3 * PAGE_SIZE + 5].iter().all(|&b| b == 0));
    assert_eq!(&all[3 * PAGE_SIZE + 5..], &[7, 7, 7]);
    // Files are sparse: the gap's middle pages have no blocks.
    assert_eq!(s.backing().used_blocks(), 2);
}

/// Issue 17: `read(u64::MAX - 2, ..)` and `punch_hole(u64::MAX - 2, 10)` were `InvalidInput`,
/// though a read past the end returns 0 and a punch past the end succeeds. No byte lies past
/// `u64::MAX`, so a range running past it is past the end of every file: reads and punches
/// stop there. Writes and remaps, which would have to put bytes there, are `InvalidInput`.
#[test]
fn reads_and_punches_running_past_u64_max_stop_there() {
    let s = space(1 << 20);
    s.write(0, &[1; 10]).unwrap();
    assert_eq!(s.read(u64::MAX - 2, &mut [0; 10]).unwrap(), 0);
    assert_eq!(s.read(u64::MAX, &mut [0; 1]).unwrap(), 0);
    s.punch_hole(u64::MAX - 2, 10).unwrap();
    s.punch_hole(u64::MAX, u64::MAX).unwrap();
    assert_eq!(s.len(), 10);
    assert_eq!(read_all(&s, 0, 10), vec![1; 10]);
    // A file that reaches the top of the space: the read is short, the punch reaches its end.
    s.write(u64::MAX - 4, &[3; 4]).unwrap();
    assert_eq!(s.len(), u64::MAX);
    let mut buf = [9; 10];
    assert_eq!(s.read(u64::MAX - 6, &mut buf).unwrap(), 6);
    assert_eq!(&buf[..6], &[0, 0, 3, 3, 3, 3]);
    s.punch_hole(u64::MAX - 3, 10).unwrap();
    assert_eq!(read_all(&s, u64::MAX - 4, 4), vec![3, 0, 0, 0]);
    assert_eq!(s.len(), u64::MAX);
}

#[test]
fn writes_and_remaps_running_past_u64_max_are_invalid_input() {
    let s = space(1 << 20);
    assert_eq!(
        kind(s.write(u64::MAX - 2, &[1; 10])),
        ErrorKind::InvalidInput
    );
    assert_eq!(s.len(), 0);
    let top = u64::MAX - PAGE + 1; // the last page of the space
    s.write(top, &[2; PAGE_SIZE - 1]).unwrap();
    let t = space(1 << 20);
    for (src_off, dst_off) in [(top, 0), (0, top)] {
        assert_eq!(
            kind(remap_range(&s, src_off, &t, dst_off, 2 * PAGE)),
            ErrorKind::InvalidInput,
            "remap {src_off} -> {dst_off}"
        );
    }
    assert_eq!(t.len(), 0);
}

#[test]
fn writes_at_the_top_of_the_space_do_not_overflow() {
    let s = space(1 << 20);
    s.write(u64::MAX - 4, &[3; 4]).unwrap();
    assert_eq!(s.len(), u64::MAX);
    assert_eq!(read_all(&s, u64::MAX - 6, 6), vec![0, 0, 3, 3, 3, 3]);
    s.punch_hole(0, u64::MAX).unwrap();
    assert_eq!(read_all(&s, u64::MAX - 4, 4), vec![0; 4]);
    s.truncate(0).unwrap();
    assert_eq!(s.backing().used_blocks(), 0);
}

#[test]
fn punch_reads_as_zeros_and_keeps_the_length() {
    let s = space(1 << 20);
    s.write(0, &vec![5; 5 * PAGE_SIZE]).unwrap();
    s.punch_hole(PAGE + 10, 2 * PAGE).unwrap();
    assert_eq!(s.len(), 5 * PAGE);
    let all = read_all(&s, 0, 5 * PAGE_SIZE);
    for (i, &b) in all.iter().enumerate() {
        let punched = (PAGE_SIZE + 10..3 * PAGE_SIZE + 10).contains(&i);
        assert_eq!(b, if punched { 0 } else { 5 }, "byte {i}");
    }
    // One whole page was inside the hole: its block is free.
    assert_eq!(s.backing().used_blocks(), 4);
}

#[test]
fn punch_of_length_zero_or_past_the_end_changes_nothing() {
    let s = space(1 << 20);
    s.write(0, &[1; 100]).unwrap();
    s.punch_hole(50, 0).unwrap();
    s.punch_hole(10 * PAGE, 5 * PAGE).unwrap();
    assert_eq!(s.len(), 100);
    assert_eq!(read_all(&s, 0, 100), vec![1; 100]);
}

#[test]
fn punching_the_whole_space_is_quick_and_frees_everything() {
    let s = space(64 << 20);
    for i in 0..64 {
        s.write(i * (1 << 40), &[1; 10]).unwrap(); // a sparse file of ~64 TiB
    }
    // Walking all 2^52 pages would take hours: a regression shows as a hang here.
    s.punch_hole(0, u64::MAX).unwrap();
    assert_eq!(s.backing().used_blocks(), 0);
    assert_eq!(read_all(&s, 63 << 40, 10), vec![0; 10]);
}

#[test]
fn a_whole_page_punch_unmaps_and_a_partial_one_zeroes_in_place() {
    let s = space(1 << 20);
    s.write(0, &[8; 2 * PAGE_SIZE]).unwrap();
    let p0 = s.fault(10, Access::Write).unwrap();
    let p1 = s.fault(PAGE + 10, Access::Read).unwrap();
    assert_eq!((p0.offset(), p1.offset()), (0, PAGE));
    s.punch_hole(100, PAGE + 100).unwrap(); // bytes 100..PAGE+200: parts of pages 0 and 1
    assert!(p0.is_mapped() && p1.is_mapped());
    let mut b = [0xFF; 4];
    p0.read(98, &mut b).unwrap();
    assert_eq!(b, [8, 8, 0, 0]);
    p1.read(198, &mut b).unwrap();
    assert_eq!(b, [0, 0, 8, 8]);
    s.punch_hole(PAGE, PAGE).unwrap();
    assert!(!p1.is_mapped());
    assert_eq!(kind(p1.read(0, &mut b)), ErrorKind::Other);
    assert!(p0.is_mapped());
    p0.write(0, &[1]).unwrap();
}

#[test]
fn faults_past_the_end_fail_and_mappings_check_their_bounds() {
    let s = space(1 << 20);
    assert_eq!(kind(s.fault(0, Access::Read)), ErrorKind::UnexpectedEof);
    s.write(0, &[4; 100]).unwrap();
    assert_eq!(kind(s.fault(100, Access::Read)), ErrorKind::UnexpectedEof);
    let ro = s.fault(99, Access::Read).unwrap();
    assert_eq!(ro.access(), Access::Read);
    assert_eq!(kind(ro.write(0, &[1])), ErrorKind::PermissionDenied);
    let rw = s.fault(0, Access::Write).unwrap();
    assert_eq!(kind(rw.write(90, &[1; 20])), ErrorKind::InvalidInput); // past EOF
    assert_eq!(
        kind(rw.read(PAGE_SIZE - 1, &mut [0; 2])),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(rw.read(usize::MAX, &mut [0; 2])),
        ErrorKind::InvalidInput
    );
    // Bytes past the end in the last page read as zeros.
    let mut tail = [9; 8];
    rw.read(96, &mut tail).unwrap();
    assert_eq!(tail, [4, 4, 4, 4, 0, 0, 0, 0]);
}

#[test]
fn mapped_writes_reach_the_backing_on_sync() {
    let s = space(1 << 20);
    s.write(0, &[0; 10]).unwrap();
    let page = s.fault(0, Access::Write).unwrap();
    page.write(2, b"abc").unwrap();
    assert_eq!(read_all(&s, 0, 6), b"\0\0abc\0");
    drop(page);
    assert_eq!(s.drop_caches(), 0, "a dirty page was evicted");
    s.sync().unwrap();
    assert_eq!(s.drop_caches(), 1);
    assert_eq!(read_all(&s, 0, 6), b"\0\0abc\0");
    assert!(s.stats().fills >= 2);
}

#[test]
fn truncate_shrinks_unmaps_and_extends_with_zeros() {
    let s = space(1 << 20);
    s.write(0, &[6; 3 * PAGE_SIZE]).unwrap();
    let last = s.fault(2 * PAGE, Access::Read).unwrap();
    let mid = s.fault(PAGE, Access::Write).unwrap();
    s.truncate(PAGE + 10).unwrap();
    assert_eq!(s.len(), PAGE + 10);
    assert!(!last.is_mapped(), "a page wholly past the end stays mapped");
    assert!(mid.is_mapped());
    let mut b = [0xFF; 4];
    mid.read(8, &mut b).unwrap();
    assert_eq!(b, [6, 6, 0, 0]);
    assert_eq!(kind(mid.write(10, &[1])), ErrorKind::InvalidInput);
    s.truncate(3 * PAGE).unwrap();
    let all = read_all(&s, 0, 3 * PAGE_SIZE);
    assert!(all[..PAGE_SIZE + 10].iter().all(|&b| b == 6));
    assert!(all[PAGE_SIZE + 10..].iter().all(|&b| b == 0));
    assert_eq!(s.backing().used_blocks(), 2);
}

#[test]
fn a_full_device_changes_nothing() {
    let s = space(4 * PAGE); // four blocks
    s.write(0, &[1; 3 * PAGE_SIZE]).unwrap();
    let before = read_all(&s, 0, 3 * PAGE_SIZE);
    // Needs two new blocks (pages 3 and 4); one is free.
    assert_eq!(
        kind(s.write(2 * PAGE, &[2; 3 * PAGE_SIZE])),
        ErrorKind::StorageFull
    );
    assert_eq!(s.len(), 3 * PAGE);
    assert_eq!(read_all(&s, 0, 3 * PAGE_SIZE), before);
    assert_eq!(s.backing().used_blocks(), 3);
    // Overwriting needs no new block.
    s.write(0, &[3; 3 * PAGE_SIZE]).unwrap();
    s.write(3 * PAGE, &[4; 10]).unwrap();
    assert_eq!(
        kind(s.fault(5 * PAGE, Access::Write)),
        ErrorKind::UnexpectedEof
    );
    s.truncate(6 * PAGE).unwrap();
    assert_eq!(
        kind(s.fault(5 * PAGE, Access::Write)),
        ErrorKind::StorageFull
    );
    s.fault(5 * PAGE, Access::Read).unwrap(); // a read fault of a hole needs no block
    assert_eq!(s.backing().used_blocks(), 4);
}

#[test]
fn the_cache_stays_bounded_and_counts() {
    let pages: u64 = if cfg!(miri) { 100 } else { 1000 };
    let s: Space = AddressSpace::with_cache_pages(MemBacking::new(8 << 20), 32);
    s.write(0, &vec![1u8; (pages * PAGE) as usize]).unwrap();
    // In a scattered order (a stride coprime to `pages`), so that no readahead kicks in.
    for i in 0..pages {
        assert_eq!(read_all(&s, (i * 7 % pages) * PAGE, 1), vec![1]);
    }
    let st = s.stats();
    assert_eq!(st.readahead, 0);
    assert!(s.cached_pages() <= 32, "{} cached", s.cached_pages());
    assert_eq!(st.misses, pages);
    assert!(st.evictions >= pages - 32);
    read_all(&s, ((pages - 1) * 7 % pages) * PAGE, 1);
    assert_eq!(s.stats().hits, 1);
}

/// A sequential reader, page by page, gets a readahead window that grows to 32 pages: far
/// fewer store reads than pages, and the data is right.
#[test]
fn sequential_reads_fill_a_growing_readahead_window() {
    let pages: u64 = if cfg!(miri) { 40 } else { 256 };
    let s: Space = AddressSpace::new(MemBacking::new(8 << 20));
    for i in 0..pages {
        s.write(i * PAGE, &vec![i as u8; PAGE_SIZE]).unwrap();
    }
    s.drop_caches();
    // One page cached in the middle: a readahead window then fills around it, in two runs.
    assert_eq!(read_all(&s, 6 * PAGE, 1), vec![6]);
    for i in 0..pages {
        assert_eq!(read_all(&s, i * PAGE + 5, 2), vec![i as u8; 2]);
    }
    let st = s.stats();
    assert_eq!(st.fills, pages, "each page filled once");
    assert_eq!(st.misses + st.hits, pages + 1, "one lookup per page read");
    assert!(st.readahead > 0);
    assert!(
        st.store_reads * 4 <= pages,
        "{} store reads for {pages} sequential pages",
        st.store_reads
    );
    // A random reader gets no readahead, and each miss reads one page.
    let r: Space = AddressSpace::new(MemBacking::new(8 << 20));
    r.write(0, &vec![1; (pages * PAGE) as usize]).unwrap();
    r.drop_caches();
    for i in 0..pages {
        read_all(&r, (i * 7 % pages) * PAGE, 1);
    }
    assert_eq!((r.stats().readahead, r.stats().store_reads), (0, pages));
}

#[test]
fn remap_copies_replaces_and_keeps_holes() {
    let a = space(1 << 20);
    let b = space(1 << 20);
    a.write(0, &[1; PAGE_SIZE]).unwrap();
    a.write(2 * PAGE, &[3; PAGE_SIZE]).unwrap(); // page 1 is a hole
    b.write(0, &[9; 4 * PAGE_SIZE]).unwrap();
    let replaced = b.fault(2 * PAGE, Access::Read).unwrap();
    assert_eq!(remap_range(&a, 0, &b, PAGE, 3 * PAGE).unwrap(), 3 * PAGE);
    assert!(!replaced.is_mapped());
    let all = read_all(&b, 0, 4 * PAGE_SIZE);
    let page = |i: usize| &all[i * PAGE_SIZE..(i + 1) * PAGE_SIZE];
    assert!(page(0).iter().all(|&x| x == 9));
    assert!(page(1).iter().all(|&x| x == 1));
    assert!(page(2).iter().all(|&x| x == 0));
    assert!(page(3).iter().all(|&x| x == 3));
    assert_eq!(b.backing().used_blocks(), 3, "the hole was not kept");
    // Extends the destination.
    remap_range(&a, 0, &b, 10 * PAGE, PAGE).unwrap();
    assert_eq!(b.len(), 11 * PAGE);
}

#[test]
fn remap_refuses_bad_ranges() {
    let a = space(1 << 20);
    let b = space(1 << 20);
    a.write(0, &[1; 2 * PAGE_SIZE]).unwrap();
    assert_eq!(
        kind(remap_range(&a, 1, &b, 0, PAGE)),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(remap_range(&a, 0, &b, 0, 100)),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(remap_range(&a, PAGE, &b, 0, 2 * PAGE)),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(remap_range(&a, 0, &a, PAGE, 2 * PAGE)),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(remap_range(&a, 0, &b, u64::MAX - PAGE + 1, PAGE)),
        ErrorKind::InvalidInput
    );
    assert_eq!(remap_range(&a, 0, &b, 0, 0).unwrap(), 0);
    assert_eq!(b.len(), 0);
}

fn remap_within_one_space<L: InvalidateLock>() {
    let s: Space<L> = AddressSpace::with_lock(MemBacking::new(1 << 20));
    s.write(0, &[7; PAGE_SIZE]).unwrap();
    remap_range(&s, 0, &s, 4 * PAGE, PAGE).unwrap();
    assert_eq!(read_all(&s, 4 * PAGE, 2), vec![7, 7]);
}

#[test]
fn remap_within_one_space_does_not_deadlock_on_either_backend() {
    remap_within_one_space::<RangeRwLock>();
    remap_within_one_space::<WholeRwSem>();
}

#[test]
fn remap_on_a_full_device_changes_nothing() {
    let a = space(1 << 20);
    let b = space(2 * PAGE);
    a.write(0, &[1; 3 * PAGE_SIZE]).unwrap();
    b.write(0, &[2; 10]).unwrap();
    assert_eq!(
        kind(remap_range(&a, 0, &b, 0, 3 * PAGE)),
        ErrorKind::StorageFull
    );
    assert_eq!(read_all(&b, 0, 100), vec![2; 10]);
    assert_eq!(b.len(), 10);
}

#[test]
fn spaces_and_mappings_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<AddressSpace>();
    send_sync::<AddressSpace<WholeRwSem, FileBacking>>();
    send::<MappedPage>();
}

#[test]
fn ids_are_unique_and_debug_is_informative() {
    let (a, b) = (space(PAGE), space(PAGE));
    assert_ne!(a.id(), b.id());
    let shown = format!("{a:?}");
    assert!(shown.starts_with("AddressSpace { id: "), "{shown}");
    assert!(format!("{:?}", a.backing()).contains("capacity_blocks: 1"));
}

#[test]
#[cfg_attr(
    miri,
    ignore = "real file IO (fallocate, lseek) is outside miri's isolation"
)]
fn file_backing_persists_content_and_length() {
    let dir = std::env::temp_dir().join(format!("rangelock-fb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("data.bin");
    {
        let s: AddressSpace<RangeRwLock, FileBacking> =
            AddressSpace::with_lock(FileBacking::create(&path).unwrap());
        s.write(0, &[1; 3 * PAGE_SIZE]).unwrap();
        s.punch_hole(PAGE, PAGE).unwrap();
        s.write(10 * PAGE, b"end").unwrap();
        let page = s.fault(0, Access::Write).unwrap();
        page.write(0, b"mapped").unwrap();
        s.sync().unwrap();
    }
    let s: AddressSpace<RangeRwLock, FileBacking> =
        AddressSpace::with_lock(FileBacking::open(&path).unwrap());
    assert_eq!(s.len(), 10 * PAGE + 3);
    assert_eq!(read_all(&s, 0, 7), b"mapped\x01");
    assert_eq!(read_all(&s, PAGE, PAGE_SIZE), vec![0; PAGE_SIZE]);
    assert_eq!(read_all(&s, 2 * PAGE, 2), vec![1, 1]);
    assert_eq!(read_all(&s, 10 * PAGE, 10), b"end");
    let mut stored = Vec::new();
    s.backing().stored_pages(0, 20, &mut stored).unwrap();
    assert!(
        !stored.contains(&1) && !stored.contains(&5),
        "holes are stored: {stored:?}"
    );
    assert!(stored.contains(&0) && stored.contains(&10));
    s.truncate(5).unwrap();
    s.sync().unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 5);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_default_lock_follows_the_whole_rwsem_feature() {
    let name = std::any::type_name::<DefaultLock>();
    let want = if cfg!(feature = "whole-rwsem") {
        "WholeRwSem"
    } else {
        "RangeRwLock"
    };
    assert!(name.ends_with(want), "{name}");
}

#[test]
fn operations_on_other_pages_do_not_wait_for_a_locked_range() {
    let s: Space<RangeRwLock> = AddressSpace::with_lock(MemBacking::new(1 << 20));
    s.write(0, &vec![1; 10 * PAGE_SIZE]).unwrap();
    // What a punch of page 0 holds while it frees blocks.
    let held = s.lock_exclusive(0..=0);
    assert_eq!(read_all(&s, 5 * PAGE, 3), vec![1; 3]);
    s.fault(5 * PAGE, Access::Write).unwrap();
    s.write(6 * PAGE, &[2; 10]).unwrap();
    s.punch_hole(7 * PAGE, PAGE).unwrap();
    assert!(s.lock.try_lock_shared(0..=0).is_none());
    assert_eq!(s.stats().lock_waits, 0);
    drop(held);
}

#[test]
fn a_fill_waits_for_an_invalidation_of_its_page_and_counts_the_wait() {
    let s: Space<RangeRwLock> = AddressSpace::with_lock(MemBacking::new(1 << 20));
    s.write(0, &[1; PAGE_SIZE]).unwrap();
    s.drop_caches();
    let held = s.lock_exclusive(0..=0);
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| read_all(&s, 0, 4));
        while s.lock.waiting() == 0 {
            std::thread::yield_now();
        }
        // The punch finishes while the fault waits: it must then see zeros.
        s.free_blocks(0, PAGE, &held).unwrap();
        s.drop_cached(0, PAGE, &held);
        drop(held);
        assert_eq!(reader.join().unwrap(), vec![0; 4]);
    });
    assert_eq!(s.stats().lock_waits, 1);
}

/// Dirty pages cannot be evicted; past a quarter of the bound, write faults write some back
/// first, so a writer dirtying many pages keeps the cache near its bound and loses nothing.
#[test]
fn dirty_pages_are_written_back_before_the_cache_outgrows_its_bound() {
    let pages: u64 = if cfg!(miri) { 48 } else { 400 };
    let s: Space = AddressSpace::with_cache_pages(MemBacking::new(4 << 20), 32);
    s.truncate(pages * PAGE).unwrap();
    for p in 0..pages {
        s.fault(p * PAGE, Access::Write)
            .unwrap()
            .write(0, &[(p % 251) as u8 + 1; 8])
            .unwrap();
        assert!(s.stats().dirty <= 32 / 4 + 1, "{} dirty", s.stats().dirty);
    }
    assert!(
        s.cached_pages() <= 2 * 32,
        "{} pages cached",
        s.cached_pages()
    );
    s.sync().unwrap();
    assert_eq!(s.stats().dirty, 0);
    s.drop_caches();
    for p in 0..pages {
        assert_eq!(
            read_all(&s, p * PAGE, 8),
            vec![(p % 251) as u8 + 1; 8],
            "page {p}"
        );
    }
}
