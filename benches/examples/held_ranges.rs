//! One thread, N disjoint ranges held: a fixed number of write acquire + release of a range in
//! the middle of them, for the range lock and for range-mutex (a sorted `Vec` under a mutex).
//! The same case as `cargo bench -p rangelock-benches --bench lock -- held_`, with a fixed
//! count, so that the work per acquire + release can also be counted in instructions, which
//! this shared machine cannot disturb:
//!
//! ```sh
//! cargo run --release -p rangelock-benches --example held_ranges -- \
//!     [N] [ITERATIONS] [rangelock|range-mutex]
//! valgrind --tool=cachegrind --cache-sim=no \
//!     target/release/examples/held_ranges 100 200000 rangelock
//! ```
//!
//! A third argument runs one lock only. Under valgrind, divide the instruction count by the
//! iterations (setting up the N held ranges is a small part at 200,000 iterations); the times
//! printed are then meaningless.

use range_mutex::RangeMutex;
use rangelock::RangeRwLock;
use std::hint::black_box;
use std::ops::Range;
use std::time::Instant;

const PAGE: u64 = 4096;

/// The `i`th held range: 4 KiB every 8 KiB.
fn held(i: u64) -> Range<u64> {
    i * 2 * PAGE..i * 2 * PAGE + PAGE
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .map_or(100, |a| a.parse().expect("N: a count of ranges"));
    let iterations: u64 = args
        .next()
        .map_or(10_000_000, |a| a.parse().expect("ITERATIONS: a count"));
    let only = args.next();
    let run = |name: &str| only.as_deref().is_none_or(|o| o == name);
    assert!(
        run("rangelock") || run("range-mutex"),
        "the third argument is rangelock or range-mutex"
    );
    // In the gap after the middle held range: it overlaps none of them.
    let probe = held(n / 2).end..held(n / 2).end + PAGE;
    println!("{n} ranges held, {iterations} write acquire + release:");

    let mut ours = None;
    if run("rangelock") {
        let lock = RangeRwLock::new();
        let guards: Vec<_> = (0..n).map(|i| lock.read(held(i))).collect();
        let began = Instant::now();
        for _ in 0..iterations {
            drop(black_box(lock.write(black_box(probe.clone()))));
        }
        let ns = began.elapsed().as_nanos() as f64 / iterations as f64;
        drop(guards);
        println!("  rangelock    {ns:8.1} ns");
        ours = Some(ns);
    }
    if run("range-mutex") {
        let bytes = usize::try_from(2 * n * PAGE).expect("the ranges fit in memory");
        let mutex = RangeMutex::new(vec![0u8; bytes]);
        let to_usize = |r: Range<u64>| r.start as usize..r.end as usize;
        let guards: Vec<_> = (0..n).map(|i| mutex.lock(to_usize(held(i)))).collect();
        let began = Instant::now();
        for _ in 0..iterations {
            drop(black_box(mutex.lock(black_box(to_usize(probe.clone())))));
        }
        let ns = began.elapsed().as_nanos() as f64 / iterations as f64;
        drop(guards);
        match ours {
            Some(ours) => println!(
                "  range-mutex  {ns:8.1} ns  (rangelock takes {:.2}x)",
                ours / ns
            ),
            None => println!("  range-mutex  {ns:8.1} ns"),
        }
    }
}
