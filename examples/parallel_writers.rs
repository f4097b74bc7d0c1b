//! Eight writers, each on its own 4 KiB part of one "file", with 1 ms of simulated IO under
//! the lock. With range locks they overlap their IO; with one whole-file lock (`write(..)`,
//! which is what an rwsem gives) they take turns.
//!
//!     cargo run --release --example parallel_writers

use rangelock::RangeRwLock;
use std::thread;
use std::time::{Duration, Instant};

const WRITERS: u64 = 8;
const WRITES_EACH: u32 = 25;
const IO: Duration = Duration::from_millis(1);

fn run(whole_file: bool) -> Duration {
    let lock = RangeRwLock::new();
    let began = Instant::now();
    thread::scope(|s| {
        for w in 0..WRITERS {
            let lock = &lock;
            s.spawn(move || {
                for _ in 0..WRITES_EACH {
                    let _g = if whole_file {
                        lock.write(..)
                    } else {
                        lock.write(w * 4096..(w + 1) * 4096)
                    };
                    thread::sleep(IO); // the write's IO, done under the lock
                }
            });
        }
    });
    began.elapsed()
}

fn main() {
    let ranges = run(false);
    let whole = run(true);
    let ideal = IO * WRITES_EACH;
    println!("{WRITERS} writers x {WRITES_EACH} writes of {IO:?} IO each, disjoint 4 KiB ranges");
    println!("  range locks      {ranges:>8.1?}  (one writer alone would take {ideal:?})");
    println!("  whole-file lock  {whole:>8.1?}");
    println!(
        "  speed-up         {:>8.1}x",
        whole.as_secs_f64() / ranges.as_secs_f64()
    );
}
