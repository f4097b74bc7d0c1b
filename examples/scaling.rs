//! Disjoint ranges, N threads: how throughput scales with threads, and the serial section
//! (the part of every acquire + release that threads cannot do at once) that bounds it.
//!
//! ```sh
//! cargo run --release --example scaling -- [MAX_THREADS] [SECONDS_PER_ROW]
//! ```
//!
//! Each thread write-locks its own 4 KiB range, works ~1 us inside (a spin loop), and
//! unlocks. For 1 to `MAX_THREADS` threads (default: the cores available) it prints the
//! throughput and each thread's efficiency against one thread alone. Then it runs the same
//! with no work inside: the lock alone is then the bottleneck, and `1 / throughput` bounds
//! the serial section per acquire + release (the time spent on the lock's shared word or
//! under its internal mutex), hence the ceiling it implies whatever the core count.
//! Efficiency past the number of cores measures oversubscription, not the lock.

use rangelock::RangeRwLock;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Spins `n` iterations of a dependent chain (not optimised away).
fn spin(n: u64) {
    let mut x = 0u64;
    for i in 0..n {
        x = black_box(x.wrapping_mul(31).wrapping_add(i));
    }
    black_box(x);
}

/// Iterations of `spin` that take about a microsecond here.
#[allow(clippy::cast_sign_loss)] // a positive rate
fn spins_per_us() -> u64 {
    let n = 1_000_000;
    let t = Instant::now();
    spin(n);
    (n as f64 / (t.elapsed().as_secs_f64() * 1e6)).max(1.0) as u64
}

/// Runs `threads` threads for `time`, each locking its own range with `work` spins inside;
/// returns acquisitions per second in total.
fn run(lock: &RangeRwLock, threads: usize, time: Duration, work: u64) -> f64 {
    let stop = AtomicBool::new(false);
    let total = AtomicU64::new(0);
    let start = Barrier::new(threads + 1);
    let mut elapsed = Duration::ZERO;
    std::thread::scope(|s| {
        for t in 0..threads as u64 {
            let (stop, total, start) = (&stop, &total, &start);
            s.spawn(move || {
                let range = t << 20..(t << 20) + 4096;
                let mut ops = 0;
                start.wait();
                while !stop.load(Relaxed) {
                    let _g = lock.write(range.clone());
                    spin(work);
                    ops += 1;
                }
                total.fetch_add(ops, Relaxed);
            });
        }
        start.wait();
        let began = Instant::now();
        std::thread::sleep(time);
        stop.store(true, Relaxed);
        elapsed = began.elapsed();
    });
    total.load(Relaxed) as f64 / elapsed.as_secs_f64()
}

fn main() {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let mut args = std::env::args().skip(1);
    let max: usize = args
        .next()
        .map_or(cores, |a| a.parse().expect("MAX_THREADS"));
    let secs: f64 = args
        .next()
        .map_or(1.0, |a| a.parse().expect("SECONDS_PER_ROW"));
    let time = Duration::from_secs_f64(secs);
    let work = spins_per_us();
    let lock = RangeRwLock::new();
    println!("{cores} cores; each thread locks its own range, ~1 us of work inside");
    println!("threads  acquisitions/s  per thread  efficiency");
    let alone = run(&lock, 1, time, work);
    for n in 1..=max.max(1) {
        let total = if n == 1 {
            alone
        } else {
            run(&lock, n, time, work)
        };
        let per = total / n as f64;
        println!(
            "{n:>7}  {:>12.2} M  {:>8.2} M  {:>9.0} %",
            total / 1e6,
            per / 1e6,
            100.0 * per / alone
        );
    }
    println!("\nno work inside (the lock is the bottleneck):");
    println!("threads  acquisitions/s  serial section  ceiling");
    for n in [1, 2.min(max), max]
        .into_iter()
        .collect::<std::collections::BTreeSet<_>>()
    {
        let total = run(&lock, n, time, 0);
        println!(
            "{n:>7}  {:>12.2} M  {:>11.1} ns  {:>5.0} M/s",
            total / 1e6,
            1e9 / total,
            total / 1e6
        );
    }
    println!(
        "\nWith no work, 1 / throughput bounds the time per acquire + release that threads \
         cannot overlap: its inverse is the most acquisitions per second any core count gets."
    );
}
