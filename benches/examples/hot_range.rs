//! Eight threads on one hot range, with a tiny critical section: throughput, the longest
//! single wait (from the request to holding the lock) and the longest whole lock + work +
//! unlock, for the range lock (strict FIFO and barging), range-mutex and `parking_lot`'s
//! `RwLock`. On 2 cores the last column also counts a thread descheduled while it holds or
//! releases the lock (a release that wakes sleepers may lose its CPU to them).
//!
//!     cargo run --release -p rangelock-benches --example hot_range [-- THREADS SECONDS [MS,..]]
//!
//! The third argument lists the barging locks' hand-off times in milliseconds (default `1`), to
//! see what the hand-off trades: a shorter one bounds waits closer to FIFO's, at FIFO's cost.
//!
//! Strict FIFO hands the lock to the oldest waiter, which is asleep, at every release: each
//! hand-off costs a wake-up, so it is slow here; in exchange, no wait is unbounded. Barging
//! locks let the running thread take the lock again: fast, with no bound on any one wait.

use range_mutex::RangeMutex;
use rangelock::RangeRwLock;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

struct Outcome {
    ops: u64,
    /// The longest time from a request to holding the lock.
    longest_wait: Duration,
    /// The longest lock + critical section + unlock.
    longest: Duration,
    elapsed: Duration,
}

/// One lock, `threads` threads for `time`. `lock_unlock(acquired)` locks, calls `acquired()`
/// once it holds the lock, runs the critical section and unlocks.
fn run(threads: usize, time: Duration, lock_unlock: &LockUnlock<'_>) -> Outcome {
    let stop = AtomicBool::new(false);
    let start = Barrier::new(threads + 1);
    let total = Mutex::new((0u64, Duration::ZERO, Duration::ZERO));
    let mut elapsed = Duration::ZERO;
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let (mut ops, mut longest_wait, mut longest) =
                    (0u64, Duration::ZERO, Duration::ZERO);
                start.wait();
                while !stop.load(Relaxed) {
                    let began = Instant::now();
                    lock_unlock(&mut || longest_wait = longest_wait.max(began.elapsed()));
                    longest = longest.max(began.elapsed());
                    ops += 1;
                }
                let mut t = total.lock().unwrap();
                t.0 += ops;
                t.1 = t.1.max(longest_wait);
                t.2 = t.2.max(longest);
            });
        }
        start.wait();
        let began = Instant::now();
        std::thread::sleep(time);
        stop.store(true, Relaxed);
        elapsed = began.elapsed();
    });
    let (ops, longest_wait, longest) = total.into_inner().unwrap();
    Outcome {
        ops,
        longest_wait,
        longest,
        elapsed,
    }
}

type LockUnlock<'a> = dyn Fn(&mut dyn FnMut()) + Sync + 'a;

fn critical_section() {
    for i in 0..16 {
        black_box(i);
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let threads: usize = args
        .next()
        .map_or(8, |s| s.parse().expect("THREADS is a number"));
    let secs: f64 = args
        .next()
        .map_or(1.0, |s| s.parse().expect("SECONDS is a number"));
    let time = Duration::from_secs_f64(secs);
    let handoffs: Vec<f64> = args.next().map_or(vec![1.0], |s| {
        s.split(',')
            .map(|ms| ms.parse().expect("MS is a list of numbers: 0.5,1,2"))
            .collect()
    });
    let range = RangeRwLock::fifo();
    let barging: Vec<(String, RangeRwLock)> = handoffs
        .iter()
        .map(|&ms| {
            let lock = RangeRwLock::barging(Duration::from_secs_f64(ms / 1e3));
            (format!("rangelock barging ({ms} ms)"), lock)
        })
        .collect();
    let mutex = RangeMutex::new(vec![0u8; 8192]);
    let rw = parking_lot::RwLock::new(());
    let barging_runs: Vec<(&str, Box<LockUnlock<'_>>)> = barging
        .iter()
        .map(|(name, lock)| {
            let f: Box<LockUnlock<'_>> = Box::new(move |acquired| {
                let _g = lock.write(0..4096);
                acquired();
                critical_section();
            });
            (name.as_str(), f)
        })
        .collect();
    let fifo: (&str, &LockUnlock<'_>) = ("rangelock (FIFO)", &|acquired| {
        let _g = range.write(0..4096);
        acquired();
        critical_section();
    });
    let peers: [(&str, &LockUnlock<'_>); 2] = [
        ("range-mutex", &|acquired| {
            let _g = mutex.lock(0..4096);
            acquired();
            critical_section();
        }),
        ("parking_lot RwLock", &|acquired| {
            let _g = rw.write();
            acquired();
            critical_section();
        }),
    ];
    let runs = std::iter::once(fifo)
        .chain(barging_runs.iter().map(|(name, f)| (*name, &**f)))
        .chain(peers);
    println!("{threads} threads on one range for {secs} s each\n");
    println!(
        "{:<28} {:>14} {:>14} {:>20}",
        "lock", "acquisitions/s", "longest wait", "longest lock+unlock"
    );
    for (name, f) in runs {
        let o = run(threads, time, f);
        let rate = o.ops as f64 / o.elapsed.as_secs_f64();
        println!(
            "{name:<28} {rate:>14.0} {:>14.1?} {:>20.1?}",
            o.longest_wait, o.longest
        );
    }
}
