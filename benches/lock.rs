//! Lock-level benchmarks: `RangeRwLock` against whole-range rwsems (`parking_lot::RwLock<()>`,
//! `std::sync::RwLock<()>`), the `range-mutex` and `range-lock` 0.2.4 crates (both exclusive only;
//! range-lock's `try_lock` is retried, spinning then yielding) and a naive range lock
//! (a `Mutex<BTreeMap>` of held ranges plus a `Condvar`, defined below).
//!
//! Groups (cited in the README):
//!
//! - `uncontended/write`, `uncontended/read`: lock + unlock of `0..4096` on an empty lock, one
//!   thread.
//! - `held_100/{write,read}`, `held_10000/{write,read}`: the same with 100 resp. 10,000
//!   disjoint 4 KiB ranges held elsewhere for the whole measurement; the locked range overlaps
//!   none of them. `rangelock` is the default lock, `rangelock_fifo` is `RangeRwLock::fifo()`.
//! - `disjoint_2threads`: two threads, each write-locking its own 4 KiB range with ~1 µs of
//!   work inside; the rwsems lock everything.
//! - `hot_2threads`, `hot_8threads`: every thread write-locks `0..4096` with a tiny critical
//!   section; `rangelock` is `RangeRwLock::new()` (the default: bounded barging, 1 ms) and
//!   `rangelock_fifo` is `RangeRwLock::fifo()`. `ticket_fifo` is a reference,
//!   not a range lock: a minimal ticket lock (defined below) that grants strictly in arrival
//!   order, waiting by spinning briefly then yielding. It is the ceiling of any strictly FIFO
//!   lock on this machine: every hand-off goes to the next thread in line, which must be
//!   running.
//! - `mixed_8threads` (workload W5): eight threads, each operation a 4 to 64 KiB range (whole
//!   pages) at a random page-aligned offset, wholly inside the first MiB; one in ten is a write,
//!   the rest reads; tiny critical section. Each thread draws its operations from a splitmix64
//!   stream seeded by its index, so every row sees the same sequences. `rangelock` (the
//!   default), `rangelock_fifo` and `naive` take reads shared; `range_mutex` and `range_lock`
//!   (over a 1 MiB `Vec`) lock every operation exclusive; `parking_lot` and `std` read- or
//!   write-lock the whole.
//! - `io_32threads` (workload W6): 32 threads, each write-locking its own 4 KiB range and
//!   sleeping 20 µs inside (`thread::sleep`, standing in for IO; the kernel's timer slack makes
//!   it longer); `parking_lot` write-locks the whole, so its sleeps run one at a time. Ten flat
//!   samples (every sample the same iteration count) over a short measurement.
//!
//! - `features/{uncontended_write,uncontended_read,held_100_write}`: `uncontended/*` and
//!   `held_100/write` for `rangelock` only, with the benchmark named after the crate's features
//!   in this build (`default`, `deadlock_detection`, `stats`), so that one run per build puts
//!   them side by side: `cargo bench -p rangelock-benches --bench lock -- features/`, then the
//!   same with `--features deadlock_detection` and with `--features stats`.
//!
//! Multi-threaded groups use `iter_custom`: each sample spawns its threads, which line up on
//! a barrier and each run `iters` lock/unlock pairs; the sample's time is the wall time from
//! the first thread leaving the barrier to the last thread finishing. Throughput is one element
//! per lock/unlock pair, so `elem/s` is total acquisitions per second across all threads.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::ops::Range;

use std::sync::{Barrier, Condvar, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode, Throughput,
};
use range_lock::VecRangeLock;
use range_mutex::RangeMutex;
use rangelock::RangeRwLock;

const PAGE: u64 = 4096;

// ---------------------------------------------------------------------------------------------
// The naive range lock: every held range in a BTreeMap keyed by start, one Condvar for all.

/// A straightforward range lock: held ranges in a `BTreeMap` (keyed by start and a unique id,
/// so that overlapping readers can share a start), one `Condvar`. A request waits while any
/// overlapping conflicting range is held (readers share); a release notifies everyone. Finding
/// conflicts scans every held range that starts before the request ends (there is no
/// max-end augmentation), and there is no fairness: waiters race on every release. A release
/// skips the `notify_all` when nobody waits (std's `notify_all` is a syscall even then, which
/// would make this baseline look worse than a sensible naive lock is).
struct NaiveRangeLock {
    state: Mutex<NaiveState>,
    released: Condvar,
}

struct NaiveState {
    /// (start, id) -> (end, write)
    held: BTreeMap<(u64, u64), (u64, bool)>,
    next_id: u64,
    /// Threads in `released.wait`.
    waiters: usize,
}

struct NaiveGuard<'a> {
    lock: &'a NaiveRangeLock,
    key: (u64, u64),
}

impl NaiveRangeLock {
    fn new() -> Self {
        NaiveRangeLock {
            state: Mutex::new(NaiveState {
                held: BTreeMap::new(),
                next_id: 0,
                waiters: 0,
            }),
            released: Condvar::new(),
        }
    }

    fn lock(&self, range: Range<u64>, write: bool) -> NaiveGuard<'_> {
        let mut state = self.state.lock().unwrap();
        loop {
            let conflict = state
                .held
                .range(..(range.end, 0))
                .any(|(&(_, _), &(end, w))| end > range.start && (write || w));
            if !conflict {
                break;
            }
            state.waiters += 1;
            state = self.released.wait(state).unwrap();
            state.waiters -= 1;
        }
        let key = (range.start, state.next_id);
        state.next_id += 1;
        state.held.insert(key, (range.end, write));
        NaiveGuard { lock: self, key }
    }

    fn write(&self, range: Range<u64>) -> NaiveGuard<'_> {
        self.lock(range, true)
    }

    fn read(&self, range: Range<u64>) -> NaiveGuard<'_> {
        self.lock(range, false)
    }
}

impl Drop for NaiveGuard<'_> {
    fn drop(&mut self) {
        let mut state = self.lock.state.lock().unwrap();
        state.held.remove(&self.key);
        let waiters = state.waiters > 0;
        drop(state);
        if waiters {
            self.lock.released.notify_all();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A strictly FIFO ticket lock, the reference row of the hot groups.

#[path = "peers.rs"]
mod peers;
use peers::{range_lock_acquire, TicketLock};

// ---------------------------------------------------------------------------------------------
// Helpers.

/// Spins `n` rounds of a loop the optimiser cannot remove.
fn spin(n: u64) {
    let mut x = 0u64;
    for i in 0..n {
        x = black_box(x.wrapping_add(i));
    }
    black_box(x);
}

/// Rounds of [`spin`] that take about 1 µs, measured once.
fn spins_per_us() -> u64 {
    static ROUNDS: OnceLock<u64> = OnceLock::new();
    *ROUNDS.get_or_init(|| {
        let n = 2_000_000u64;
        spin(n); // warm up
        let best = (0..5)
            .map(|_| {
                let t = Instant::now();
                spin(n);
                t.elapsed()
            })
            .min()
            .unwrap();
        let rounds = (u128::from(n) * 1000 / best.as_nanos().max(1)) as u64;
        println!("calibration: {rounds} spin rounds ~ 1 us");
        rounds.max(1)
    })
}

/// Rounds of [`spin`] in a "tiny" critical section.
const TINY_WORK: u64 = 16;

/// Runs `op(thread_index)` `iters` times on each of `threads` threads started together;
/// returns the wall time from the first thread leaving the start barrier to the last thread
/// finishing.
fn run_threads(threads: usize, iters: u64, op: &(dyn Fn(usize) + Sync)) -> Duration {
    let barrier = Barrier::new(threads);
    let spans: Vec<(Instant, Instant)> = thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..iters {
                        op(t);
                    }
                    (start, Instant::now())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let start = spans.iter().map(|s| s.0).min().unwrap();
    let end = spans.iter().map(|s| s.1).max().unwrap();
    end - start
}

/// One threaded benchmark: `threads` threads each running `op` per iteration. Prints how many
/// cores the measured runs really got (CPU time over wall time): on a shared host a two-thread
/// benchmark may get one. Not printed for runs under 100 ms (as with `--test`), where the CPU
/// time's 10 ms ticks make the ratio meaningless.
fn bench_threads(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    threads: usize,
    op: impl Fn(usize) + Sync,
) {
    let (mut wall, mut cpu) = (Duration::ZERO, Duration::ZERO);
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let cpu_before = cpu_time();
            let took = run_threads(threads, iters, &op);
            wall += took;
            cpu += cpu_time().saturating_sub(cpu_before);
            took
        });
    });
    if wall >= Duration::from_millis(100) && !cpu.is_zero() {
        println!(
            "{name}: {threads} threads got {:.2} cores",
            cpu.as_secs_f64() / wall.as_secs_f64()
        );
    }
}

/// CPU time of this process (user + system), from `/proc/self/stat` on Linux (in 10 ms
/// ticks); zero elsewhere.
fn cpu_time() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = stat[stat.rfind(')').map_or(0, |i| i + 2)..]
        .split_whitespace()
        .collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

/// Holds `_guard` for a tiny critical section, then drops it.
fn hold<G>(_guard: G) {
    spin(TINY_WORK);
}

fn page_at(start: u64) -> Range<u64> {
    start..start + PAGE
}

fn usize_range(r: Range<u64>) -> Range<usize> {
    r.start as usize..r.end as usize
}

// ---------------------------------------------------------------------------------------------
// 1. Uncontended.

fn uncontended(c: &mut Criterion) {
    let range = page_at(0);
    {
        let mut g = c.benchmark_group("uncontended/write");
        g.throughput(Throughput::Elements(1));
        let lock = RangeRwLock::new();
        g.bench_function("rangelock", |b| {
            b.iter(|| drop(black_box(lock.write(black_box(range.clone())))));
        });
        let lock = parking_lot::RwLock::new(());
        g.bench_function("parking_lot", |b| b.iter(|| drop(black_box(lock.write()))));
        let lock = std::sync::RwLock::new(());
        g.bench_function("std", |b| b.iter(|| drop(black_box(lock.write().unwrap()))));
        let lock = RangeMutex::new(vec![0u8; PAGE as usize]);
        g.bench_function("range_mutex", |b| {
            b.iter(|| drop(black_box(lock.lock(black_box(usize_range(range.clone()))))));
        });
        let lock = VecRangeLock::new(vec![0u8; PAGE as usize]);
        g.bench_function("range_lock", |b| {
            b.iter(|| {
                drop(black_box(range_lock_acquire(
                    &lock,
                    black_box(range.clone()),
                )));
            });
        });
        let lock = NaiveRangeLock::new();
        g.bench_function("naive", |b| {
            b.iter(|| drop(black_box(lock.write(black_box(range.clone())))));
        });
        g.finish();
    }
    {
        let mut g = c.benchmark_group("uncontended/read");
        g.throughput(Throughput::Elements(1));
        let lock = RangeRwLock::new();
        g.bench_function("rangelock", |b| {
            b.iter(|| drop(black_box(lock.read(black_box(range.clone())))));
        });
        let lock = parking_lot::RwLock::new(());
        g.bench_function("parking_lot", |b| b.iter(|| drop(black_box(lock.read()))));
        let lock = std::sync::RwLock::new(());
        g.bench_function("std", |b| b.iter(|| drop(black_box(lock.read().unwrap()))));
        let lock = NaiveRangeLock::new();
        g.bench_function("naive", |b| {
            b.iter(|| drop(black_box(lock.read(black_box(range.clone())))));
        });
        g.finish();
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Many ranges already held.

/// The `i`th held range: 4 KiB every 8 KiB.
fn held_range(i: u64) -> Range<u64> {
    page_at(i * 2 * PAGE)
}

/// A 4 KiB range in the gap after the middle held range: overlaps none of the `n`.
fn probe_range(n: u64) -> Range<u64> {
    page_at((n / 2) * 2 * PAGE + PAGE)
}

fn held(c: &mut Criterion) {
    for n in [100u64, 10_000] {
        let probe = probe_range(n);
        let rangelock = RangeRwLock::new();
        let rl_held: Vec<_> = (0..n).map(|i| rangelock.read(held_range(i))).collect();
        let fifo = RangeRwLock::fifo();
        let fifo_held: Vec<_> = (0..n).map(|i| fifo.read(held_range(i))).collect();
        let naive = NaiveRangeLock::new();
        let naive_held: Vec<_> = (0..n).map(|i| naive.read(held_range(i))).collect();
        // range-mutex is exclusive only: its held ranges are locked exclusive, which is the
        // same thing for disjoint ranges. The Vec is calloc'd, so its pages are never touched.
        let rm = RangeMutex::new(vec![0u8; (2 * n * PAGE) as usize]);
        let rm_held: Vec<_> = (0..n)
            .map(|i| rm.lock(usize_range(held_range(i))))
            .collect();
        let vrl = VecRangeLock::new(vec![0u8; (2 * n * PAGE) as usize]);
        let vrl_held: Vec<_> = (0..n)
            .map(|i| range_lock_acquire(&vrl, held_range(i)))
            .collect();

        let mut g = c.benchmark_group(format!("held_{n}/write"));
        g.throughput(Throughput::Elements(1));
        g.bench_function("rangelock", |b| {
            b.iter(|| drop(black_box(rangelock.write(black_box(probe.clone())))));
        });
        g.bench_function("rangelock_fifo", |b| {
            b.iter(|| drop(black_box(fifo.write(black_box(probe.clone())))));
        });
        g.bench_function("range_mutex", |b| {
            b.iter(|| drop(black_box(rm.lock(black_box(usize_range(probe.clone()))))));
        });
        g.bench_function("range_lock", |b| {
            b.iter(|| {
                drop(black_box(range_lock_acquire(
                    &vrl,
                    black_box(probe.clone()),
                )));
            });
        });
        g.bench_function("naive", |b| {
            b.iter(|| drop(black_box(naive.write(black_box(probe.clone())))));
        });
        g.finish();

        let mut g = c.benchmark_group(format!("held_{n}/read"));
        g.throughput(Throughput::Elements(1));
        g.bench_function("rangelock", |b| {
            b.iter(|| drop(black_box(rangelock.read(black_box(probe.clone())))));
        });
        g.bench_function("naive", |b| {
            b.iter(|| drop(black_box(naive.read(black_box(probe.clone())))));
        });
        g.finish();

        drop((rl_held, fifo_held, naive_held, rm_held, vrl_held));
    }
}

// ---------------------------------------------------------------------------------------------
// 2b. The cost of the diagnostic features, one build at a time.

/// The features of `rangelock` in this build (forwarded by this package's own features).
const BUILD: &str = if cfg!(all(feature = "deadlock_detection", feature = "stats")) {
    "deadlock_detection+stats"
} else if cfg!(feature = "deadlock_detection") {
    "deadlock_detection"
} else if cfg!(feature = "stats") {
    "stats"
} else {
    "default"
};

fn features(c: &mut Criterion) {
    let range = page_at(0);
    let lock = RangeRwLock::new();
    let mut g = c.benchmark_group("features/uncontended_write");
    g.throughput(Throughput::Elements(1));
    g.bench_function(BUILD, |b| {
        b.iter(|| drop(black_box(lock.write(black_box(range.clone())))));
    });
    g.finish();
    let mut g = c.benchmark_group("features/uncontended_read");
    g.throughput(Throughput::Elements(1));
    g.bench_function(BUILD, |b| {
        b.iter(|| drop(black_box(lock.read(black_box(range.clone())))));
    });
    g.finish();
    let probe = probe_range(100);
    let held: Vec<_> = (0..100).map(|i| lock.read(held_range(i))).collect();
    let mut g = c.benchmark_group("features/held_100_write");
    g.throughput(Throughput::Elements(1));
    g.bench_function(BUILD, |b| {
        b.iter(|| drop(black_box(lock.write(black_box(probe.clone())))));
    });
    g.finish();
    drop(held);
}

// ---------------------------------------------------------------------------------------------
// 3. Two threads, disjoint ranges, ~1 µs of work under the lock.

fn disjoint_2threads(c: &mut Criterion) {
    const THREADS: usize = 2;
    let work = spins_per_us();
    let ranges = [page_at(0), page_at(1 << 20)];
    let mut g = c.benchmark_group("disjoint_2threads");
    g.throughput(Throughput::Elements(THREADS as u64));

    let lock = RangeRwLock::new();
    bench_threads(&mut g, "rangelock", THREADS, |t| {
        let _g = lock.write(ranges[t].clone());
        spin(work);
    });
    let lock = RangeMutex::new(vec![0u8; ((1 << 20) + PAGE) as usize]);
    bench_threads(&mut g, "range_mutex", THREADS, |t| {
        let _g = lock.lock(usize_range(ranges[t].clone()));
        spin(work);
    });
    let lock = VecRangeLock::new(vec![0u8; ((1 << 20) + PAGE) as usize]);
    bench_threads(&mut g, "range_lock", THREADS, |t| {
        let _g = range_lock_acquire(&lock, ranges[t].clone());
        spin(work);
    });
    let lock = NaiveRangeLock::new();
    bench_threads(&mut g, "naive", THREADS, |t| {
        let _g = lock.write(ranges[t].clone());
        spin(work);
    });
    let lock = parking_lot::RwLock::new(());
    bench_threads(&mut g, "parking_lot", THREADS, |_| {
        let _g = lock.write();
        spin(work);
    });
    let lock = std::sync::RwLock::new(());
    bench_threads(&mut g, "std", THREADS, |_| {
        let _g = lock.write().unwrap();
        spin(work);
    });
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// 4. Everyone on one hot range, tiny critical section.

fn hot(c: &mut Criterion) {
    for threads in [2usize, 8] {
        let range = page_at(0);
        let mut g = c.benchmark_group(format!("hot_{threads}threads"));
        g.throughput(Throughput::Elements(threads as u64));

        let lock = RangeRwLock::new();
        bench_threads(&mut g, "rangelock", threads, |_| {
            let _g = lock.write(range.clone());
            spin(TINY_WORK);
        });
        let lock = RangeRwLock::fifo();
        bench_threads(&mut g, "rangelock_fifo", threads, |_| {
            let _g = lock.write(range.clone());
            spin(TINY_WORK);
        });
        let lock = RangeMutex::new(vec![0u8; PAGE as usize]);
        bench_threads(&mut g, "range_mutex", threads, |_| {
            let _g = lock.lock(usize_range(range.clone()));
            spin(TINY_WORK);
        });
        let lock = VecRangeLock::new(vec![0u8; PAGE as usize]);
        bench_threads(&mut g, "range_lock", threads, |_| {
            let _g = range_lock_acquire(&lock, range.clone());
            spin(TINY_WORK);
        });
        let lock = NaiveRangeLock::new();
        bench_threads(&mut g, "naive", threads, |_| {
            let _g = lock.write(range.clone());
            spin(TINY_WORK);
        });
        let lock = parking_lot::RwLock::new(());
        bench_threads(&mut g, "parking_lot", threads, |_| {
            let _g = lock.write();
            spin(TINY_WORK);
        });
        let lock = std::sync::RwLock::new(());
        bench_threads(&mut g, "std", threads, |_| {
            let _g = lock.write().unwrap();
            spin(TINY_WORK);
        });
        let lock = TicketLock::new();
        bench_threads(&mut g, "ticket_fifo", threads, |_| {
            let _g = lock.lock();
            spin(TINY_WORK);
        });
        g.finish();
    }
}

// ---------------------------------------------------------------------------------------------
// 5. W5: mixed reads and writes of random ranges.

/// Pages in the W5 space: 1 MiB.
const MIXED_PAGES: u64 = 256;

/// Thread `t`'s next W5 operation: a range of 1 to 16 whole pages wholly inside the first MiB,
/// and whether it is a write (one in ten). Drawn from a splitmix64 stream seeded by `t` and
/// kept in a thread-local: `run_threads` spawns fresh threads for every sample, so in every
/// sample of every row thread `t` issues the same sequence.
fn mixed_op(t: usize) -> (Range<u64>, bool) {
    thread_local!(static STATE: Cell<Option<u64>> = const { Cell::new(None) });
    let state = STATE.with(|s| {
        let state = s
            .get()
            .unwrap_or(t as u64)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        s.set(Some(state));
        state
    });
    let mut x = (state ^ (state >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    let pages = 1 + (x & 15);
    let start = (x >> 8) % (MIXED_PAGES - pages + 1);
    (start * PAGE..(start + pages) * PAGE, (x >> 32) % 10 == 0)
}

fn mixed_8threads(c: &mut Criterion) {
    const THREADS: usize = 8;
    let space = (MIXED_PAGES * PAGE) as usize;
    let mut g = c.benchmark_group("mixed_8threads");
    g.throughput(Throughput::Elements(THREADS as u64));

    let default = RangeRwLock::new();
    let fifo = RangeRwLock::fifo();
    for (name, lock) in [("rangelock", &default), ("rangelock_fifo", &fifo)] {
        bench_threads(&mut g, name, THREADS, |t| match mixed_op(t) {
            (r, true) => hold(lock.write(r)),
            (r, false) => hold(lock.read(r)),
        });
    }
    let lock = RangeMutex::new(vec![0u8; space]);
    bench_threads(&mut g, "range_mutex", THREADS, |t| {
        hold(lock.lock(usize_range(mixed_op(t).0)));
    });
    let lock = VecRangeLock::new(vec![0u8; space]);
    bench_threads(&mut g, "range_lock", THREADS, |t| {
        hold(range_lock_acquire(&lock, mixed_op(t).0));
    });
    let lock = parking_lot::RwLock::new(());
    bench_threads(&mut g, "parking_lot", THREADS, |t| match mixed_op(t) {
        (_, true) => hold(lock.write()),
        (_, false) => hold(lock.read()),
    });
    let lock = std::sync::RwLock::new(());
    bench_threads(&mut g, "std", THREADS, |t| match mixed_op(t) {
        (_, true) => hold(lock.write().unwrap()),
        (_, false) => hold(lock.read().unwrap()),
    });
    let lock = NaiveRangeLock::new();
    bench_threads(&mut g, "naive", THREADS, |t| {
        let (r, write) = mixed_op(t);
        hold(lock.lock(r, write));
    });
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// 6. W6: many threads on disjoint ranges, sleeping under the lock.

fn io_32threads(c: &mut Criterion) {
    const THREADS: usize = 32;
    let io = || thread::sleep(Duration::from_micros(20));
    let space = THREADS * PAGE as usize;
    let range = |t: usize| page_at(t as u64 * PAGE);
    let mut g = c.benchmark_group("io_32threads");
    g.throughput(Throughput::Elements(THREADS as u64));
    // An iteration takes tens of µs, or a few ms where the sleeps queue: ten samples of the
    // same iteration count keep the group's five rows near ten seconds.
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));

    let lock = RangeRwLock::new();
    bench_threads(&mut g, "rangelock", THREADS, |t| {
        let _g = lock.write(range(t));
        io();
    });
    let lock = RangeMutex::new(vec![0u8; space]);
    bench_threads(&mut g, "range_mutex", THREADS, |t| {
        let _g = lock.lock(usize_range(range(t)));
        io();
    });
    let lock = VecRangeLock::new(vec![0u8; space]);
    bench_threads(&mut g, "range_lock", THREADS, |t| {
        let _g = range_lock_acquire(&lock, range(t));
        io();
    });
    let lock = parking_lot::RwLock::new(());
    bench_threads(&mut g, "parking_lot", THREADS, |_| {
        let _g = lock.write();
        io();
    });
    let lock = NaiveRangeLock::new();
    bench_threads(&mut g, "naive", THREADS, |t| {
        let _g = lock.write(range(t));
        io();
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        // Plotting costs seconds per benchmark on a small machine; pass
        // `-- --plotting-backend plotters` to get the HTML report's plots back.
        .without_plots()
}

criterion_group! {
    name = benches;
    config = config();
    targets = uncontended, held, features, disjoint_2threads, hot, mixed_8threads, io_32threads
}
criterion_main!(benches);
