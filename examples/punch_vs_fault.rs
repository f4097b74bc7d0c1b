//! The race that `invalidate_lock` exists for, shown three ways.
//!
//! Readers fault and read pages while punchers punch pages and rewrite others; the simulated
//! device reuses a freed block at once. Every page holds (page, version) in each word, so a
//! reader knows when it got another page's data, or data older than what was committed before
//! it started.
//!
//! - `Unlocked`: a fault looks up page P's block, a punch frees it, a write of page Q takes it,
//!   and the fault copies Q's data into P's place in the cache. The example counts those.
//! - `RangeRwLock` and `WholeRwSem`: never; and the range lock lets faults on other pages go on
//!   while a punch runs, so it checks more pages in the same time.
//!
//! ```sh
//! cargo run --release --example punch_vs_fault [-- SECONDS]
//! ```

use rangelock::mm::{
    Access, AddressSpace, InvalidateLock, MemBacking, Unlocked, WholeRwSem, PAGE_SIZE,
};
use rangelock::RangeRwLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

const PAGE: u64 = PAGE_SIZE as u64;
const PAGES: u64 = 32;
const PUNCHERS: u64 = 2;
const READERS: u64 = 8;

fn content(page: u64, version: u64) -> Vec<u8> {
    (page << 32 | version)
        .to_le_bytes()
        .iter()
        .copied()
        .cycle()
        .take(PAGE_SIZE)
        .collect()
}

/// Describes what is wrong with `data` as page `page`, if anything.
fn wrong(page: u64, data: &[u8], committed: u64) -> Option<String> {
    if data.iter().all(|&b| b == 0) {
        return None; // punched
    }
    let word = u64::from_le_bytes(data[..8].try_into().unwrap());
    let (p, v) = (word >> 32, word & 0xFFFF_FFFF);
    if p != page {
        Some(format!("page {page} held page {p}'s data"))
    } else if v < committed {
        Some(format!(
            "page {page} held version {v} after version {committed} was written"
        ))
    } else {
        None
    }
}

struct Outcome {
    checked: u64,
    wrong: u64,
    first: Option<String>,
}

fn run<L: InvalidateLock>(time: Duration) -> Outcome {
    let space: AddressSpace<L, MemBacking> = AddressSpace::with_lock_and_cache_pages(
        MemBacking::new(4 * PAGES * PAGE).with_latency(Duration::from_micros(50)),
        8,
    );
    let committed: Vec<AtomicU64> = (0..PAGES).map(|_| AtomicU64::new(1)).collect();
    for p in 0..PAGES {
        space.write(p * PAGE, &content(p, 1)).unwrap();
    }
    let (checked, bad) = (AtomicU64::new(0), AtomicU64::new(0));
    let first = std::sync::Mutex::new(None);
    let began = Instant::now();
    std::thread::scope(|s| {
        for t in 0..PUNCHERS {
            let (space, committed) = (&space, &committed);
            s.spawn(move || {
                let mut pending: Option<u64> = None;
                let mut i = t;
                while began.elapsed() < time {
                    let p = (i * 7 + t) % PAGES / PUNCHERS * PUNCHERS + t; // pages this thread owns
                    i += 1;
                    if pending == Some(p) {
                        continue;
                    }
                    space.punch_hole(p * PAGE, PAGE).unwrap();
                    if let Some(q) = pending.replace(p) {
                        let v = committed[q as usize].load(Relaxed) + 1;
                        space.write(q * PAGE, &content(q, v)).unwrap();
                        committed[q as usize].store(v, Relaxed);
                    }
                }
            });
        }
        for t in 0..READERS {
            let (space, committed, checked, bad, first) =
                (&space, &committed, &checked, &bad, &first);
            s.spawn(move || {
                let mut buf = vec![0u8; PAGE_SIZE];
                let mut i = t;
                while began.elapsed() < time {
                    let p = (i * 13 + t) % PAGES;
                    i += 1;
                    let before = committed[p as usize].load(Relaxed);
                    if i % 2 == 0 {
                        space.read(p * PAGE, &mut buf).unwrap();
                    } else if space
                        .fault(p * PAGE, Access::Read)
                        .unwrap()
                        .read(0, &mut buf)
                        .is_err()
                    {
                        continue; // unmapped by a punch since the fault
                    }
                    checked.fetch_add(1, Relaxed);
                    if let Some(what) = wrong(p, &buf, before) {
                        bad.fetch_add(1, Relaxed);
                        first.lock().unwrap().get_or_insert(what);
                    }
                }
            });
        }
    });
    Outcome {
        checked: checked.into_inner(),
        wrong: bad.into_inner(),
        first: first.into_inner().unwrap(),
    }
}

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .map_or(2.0, |s| s.parse().expect("SECONDS is a number"));
    let time = Duration::from_secs_f64(secs);
    println!("{READERS} readers and {PUNCHERS} punchers on {PAGES} pages, 50 us IO, 8 cached pages, {secs} s each\n");
    println!(
        "{:<12} {:>14} {:>12}  first wrong page",
        "backend", "pages checked", "wrong pages"
    );
    for (name, outcome) in [
        ("Unlocked", run::<Unlocked>(time)),
        ("RangeRwLock", run::<RangeRwLock>(time)),
        ("WholeRwSem", run::<WholeRwSem>(time)),
    ] {
        println!(
            "{name:<12} {:>14} {:>12}  {}",
            outcome.checked,
            outcome.wrong,
            outcome.first.as_deref().unwrap_or("-")
        );
    }
}
