//! The concurrent oracle: threads fault and read pages while others punch pages and rewrite
//! them, over a device with IO latency, a small cache and immediate block reuse. Every page's
//! content encodes (page, version) in each 8-byte word, so a reader can tell
//! - data from another page (a block freed under it and reused),
//! - data older than the version it knew was committed before it started (a stale fill),
//! - torn data.
//!
//! Without the invalidate lock ([`Unlocked`]) the oracle must find the race; with either real
//! backend it must never, over the simulated device and over a real file.
//!
//! A longer soak (60 s per lock and backing unless `ORACLE_SOAK_SECS` says) is ignored by
//! default: `cargo test --release --test oracle -- --ignored`.

mod common;

use common::Rng;
use rangelock::mm::{
    Access, AddressSpace, Backing, FileBacking, InvalidateLock, MemBacking, Unlocked, WholeRwSem,
    PAGE_SIZE,
};
use rangelock::RangeRwLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

const PAGE: u64 = PAGE_SIZE as u64;
const PAGES: u64 = 24;
const PUNCHERS: u64 = 3;
const READERS: u64 = 6;

fn content(page: u64, version: u64) -> Vec<u8> {
    let word = (page << 32 | version).to_le_bytes();
    word.iter().copied().cycle().take(PAGE_SIZE).collect()
}

/// What a reader saw that it must not have (the fields are read through `Debug`).
#[derive(Debug)]
#[allow(dead_code)]
enum Violation {
    OtherPage { page: u64, saw: u64 },
    Stale { page: u64, saw: u64, committed: u64 },
    Torn { page: u64 },
}

/// Checks one page as read: all zeros (punched), or (page, version >= committed).
fn judge(page: u64, data: &[u8], committed: u64) -> Option<Violation> {
    if data.iter().all(|&b| b == 0) {
        return None;
    }
    let first = u64::from_le_bytes(data[..8].try_into().unwrap());
    if data
        .chunks(8)
        .any(|w| u64::from_le_bytes(w.try_into().unwrap()) != first)
    {
        return Some(Violation::Torn { page });
    }
    let (saw_page, version) = (first >> 32, first & 0xFFFF_FFFF);
    if saw_page != page {
        return Some(Violation::OtherPage {
            page,
            saw: saw_page,
        });
    }
    if version < committed {
        return Some(Violation::Stale {
            page,
            saw: version,
            committed,
        });
    }
    None
}

/// Runs the workload for up to `limit` (stopping at the first violation if `stop_early`);
/// returns the violations found and how many pages were checked.
fn run<L: InvalidateLock, B: Backing>(
    backing: B,
    limit: Duration,
    stop_early: bool,
) -> (Vec<Violation>, u64) {
    let space: AddressSpace<L, B> = AddressSpace::with_lock_and_cache_pages(backing, 4);
    let committed: Vec<AtomicU64> = (0..PAGES).map(|_| AtomicU64::new(1)).collect();
    for p in 0..PAGES {
        space.write(p * PAGE, &content(p, 1)).unwrap();
    }
    let stop = AtomicBool::new(false);
    let violations = std::sync::Mutex::new(Vec::new());
    let checked = AtomicU64::new(0);
    let began = Instant::now();
    std::thread::scope(|s| {
        for t in 0..PUNCHERS {
            let (space, committed, stop) = (&space, &committed, &stop);
            s.spawn(move || {
                // Each puncher owns the pages p with p % PUNCHERS == t: it punches one, then
                // rewrites the one it punched before, which takes the block just freed (the
                // device reuses freed blocks at once) for a different page.
                let mut rng = Rng::new(t);
                let mut pending: Option<u64> = None;
                while !stop.load(SeqCst) && began.elapsed() < limit {
                    let p = t + PUNCHERS * rng.below(PAGES / PUNCHERS);
                    if pending == Some(p) {
                        continue;
                    }
                    space.punch_hole(p * PAGE, PAGE).unwrap();
                    if let Some(q) = pending.replace(p) {
                        let v = committed[q as usize].load(SeqCst) + 1;
                        space.write(q * PAGE, &content(q, v)).unwrap();
                        committed[q as usize].store(v, SeqCst);
                    }
                }
            });
        }
        for t in 0..READERS {
            let (space, committed, stop, violations, checked) =
                (&space, &committed, &stop, &violations, &checked);
            s.spawn(move || {
                let mut rng = Rng::new(100 + t);
                let mut buf = vec![0u8; PAGE_SIZE];
                while !stop.load(SeqCst) && began.elapsed() < limit {
                    let p = rng.below(PAGES);
                    let before = committed[p as usize].load(SeqCst);
                    if rng.chance(2) {
                        assert_eq!(space.read(p * PAGE, &mut buf).unwrap(), PAGE_SIZE);
                    } else {
                        let mapped = space
                            .fault(p * PAGE + rng.below(PAGE), Access::Read)
                            .unwrap();
                        if mapped.read(0, &mut buf).is_err() {
                            continue; // unmapped by a punch since the fault: fine
                        }
                    }
                    checked.fetch_add(1, SeqCst);
                    if let Some(v) = judge(p, &buf, before) {
                        violations.lock().unwrap().push(v);
                        if stop_early {
                            stop.store(true, SeqCst);
                        }
                    }
                    if rng.chance(50) {
                        space.drop_caches();
                    }
                }
            });
        }
    });
    (violations.into_inner().unwrap(), checked.load(SeqCst))
}

/// The simulated device: 50 us of IO per request, freed blocks reused at once.
fn device() -> MemBacking {
    MemBacking::new(4 * PAGES * PAGE).with_latency(Duration::from_micros(50))
}

/// A real file, unlinked at once (the backing keeps it open).
fn file(name: &str) -> FileBacking {
    let path = std::env::temp_dir().join(format!("rangelock-oracle-{name}-{}", std::process::id()));
    let backing = FileBacking::create(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    backing
}

#[test]
fn the_oracle_catches_stale_data_without_the_lock() {
    let (violations, checked) = run::<Unlocked, _>(device(), Duration::from_secs(20), true);
    eprintln!(
        "Unlocked: {checked} pages checked, first violations: {:?}",
        &violations[..violations.len().min(3)]
    );
    assert!(
        !violations.is_empty(),
        "no race found in {checked} checked pages"
    );
}

/// Runs the workload over `L` for `secs` and expects it to have run, and found nothing.
fn never_serves_stale_data<L: InvalidateLock, B: Backing>(backing: B, secs: u64) {
    let (violations, checked) = run::<L, B>(backing, Duration::from_secs(secs), false);
    eprintln!(
        "{} over {}: {checked} pages checked",
        std::any::type_name::<L>(),
        std::any::type_name::<B>()
    );
    assert!(checked > 100, "the workload barely ran: {checked}");
    assert!(
        violations.is_empty(),
        "{} violations, first: {:?}",
        violations.len(),
        &violations[..violations.len().min(5)]
    );
}

#[test]
fn the_range_lock_never_serves_stale_data() {
    never_serves_stale_data::<RangeRwLock, _>(device(), 2);
}

#[test]
fn the_whole_rwsem_never_serves_stale_data() {
    never_serves_stale_data::<WholeRwSem, _>(device(), 2);
}

#[test]
fn the_std_rwlock_never_serves_stale_data() {
    never_serves_stale_data::<std::sync::RwLock<()>, _>(device(), 1);
}

#[test]
fn the_range_lock_never_serves_stale_data_from_a_file() {
    never_serves_stale_data::<RangeRwLock, _>(file("range"), 1);
}

#[test]
fn the_whole_rwsem_never_serves_stale_data_from_a_file() {
    never_serves_stale_data::<WholeRwSem, _>(file("rwsem"), 1);
}

/// The long run: both locks over both backings, `ORACLE_SOAK_SECS` (default 60) each.
#[test]
#[ignore = "a soak of minutes: run with --ignored"]
fn soak_over_both_backings() {
    let secs = std::env::var("ORACLE_SOAK_SECS").map_or(60, |s| s.parse().unwrap());
    never_serves_stale_data::<RangeRwLock, _>(device(), secs);
    never_serves_stale_data::<RangeRwLock, _>(file("soak-range"), secs);
    never_serves_stale_data::<WholeRwSem, _>(device(), secs);
    never_serves_stale_data::<WholeRwSem, _>(file("soak-rwsem"), secs);
}

#[test]
fn judge_flags_each_kind_of_bad_page() {
    assert!(judge(3, &content(3, 5), 5).is_none());
    assert!(judge(3, &content(3, 6), 5).is_none());
    assert!(judge(3, &vec![0; PAGE_SIZE], 5).is_none());
    assert!(matches!(
        judge(3, &content(4, 9), 5),
        Some(Violation::OtherPage { .. })
    ));
    assert!(matches!(
        judge(3, &content(3, 4), 5),
        Some(Violation::Stale { .. })
    ));
    let mut torn = content(3, 5);
    torn[PAGE_SIZE - 8..].copy_from_slice(&content(3, 6)[..8]);
    assert!(matches!(judge(3, &torn, 5), Some(Violation::Torn { .. })));
}
