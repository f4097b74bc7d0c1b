//! 1,000 tokio tasks on 2 worker threads lock overlapping and disjoint ranges of one
//! `RangeRwLock` with `write_async` / `read_async`, holding each across 1 ms of simulated IO
//! (a timer). A heartbeat task ticks every millisecond meanwhile: its longest gap shows that
//! no worker thread is ever blocked by a waiting request. The same workload then runs on one
//! `tokio::sync::RwLock` and on range-mutex's `lock_async` (exclusive only).
//!
//! Run: `cargo run --release -p rangelock-benches --example async_tasks`

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TASKS: u64 = 1_000;
const OPS: u64 = 10;
const PAGES: u64 = 256;

/// The `i`th request of task `t`: a range of 1–4 pages, and whether it writes (1 in 4).
fn request(t: u64, i: u64) -> (std::ops::Range<u64>, bool) {
    let mut x = (t * 1_000 + i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^= x >> 29;
    let start = x % PAGES;
    let len = 1 + (x >> 8) % 4;
    (start..(start + len).min(PAGES), (x >> 16) % 4 == 0)
}

/// Work done while holding a range: 1 ms of IO (a timer), during which other tasks run.
async fn hold() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// Runs `task` for every task id on `rt`, with a heartbeat; returns (ops/s, longest gap).
fn run<F, Fut>(rt: &tokio::runtime::Runtime, task: F) -> (f64, Duration)
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    rt.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let heartbeat = tokio::spawn({
            let stop = stop.clone();
            async move {
                let mut worst = Duration::ZERO;
                let mut last = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    let now = Instant::now();
                    worst = worst.max(now - last);
                    last = now;
                }
                worst
            }
        });
        let start = Instant::now();
        let tasks: Vec<_> = (0..TASKS).map(|t| tokio::spawn(task(t))).collect();
        for t in tasks {
            t.await.unwrap();
        }
        let elapsed = start.elapsed();
        stop.store(true, Ordering::Relaxed);
        let worst = heartbeat.await.unwrap();
        ((TASKS * OPS) as f64 / elapsed.as_secs_f64(), worst)
    })
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    println!("{TASKS} tasks x {OPS} requests on 2 workers, ranges of 1-4 of {PAGES} pages, 1 in 4 writes");
    println!(
        "{:<28} {:>12} {:>22}",
        "lock", "requests/s", "longest heartbeat gap"
    );

    let lock = Arc::new(rangelock::RangeRwLock::new());
    let (ours, gap) = run(&rt, |t| {
        let lock = lock.clone();
        async move {
            for i in 0..OPS {
                let (range, write) = request(t, i);
                if write {
                    let _g = lock.write_async(range).await;
                    hold().await;
                } else {
                    let _g = lock.read_async(range).await;
                    hold().await;
                }
            }
        }
    });
    println!(
        "{:<28} {:>12.0} {:>19.2} ms",
        "RangeRwLock (async)",
        ours,
        gap.as_secs_f64() * 1e3
    );
    assert!(!lock.is_locked(..));

    let lock = Arc::new(tokio::sync::RwLock::new(()));
    let (tokio_rw, gap) = run(&rt, |t| {
        let lock = lock.clone();
        async move {
            for i in 0..OPS {
                if request(t, i).1 {
                    let _g = lock.write().await;
                    hold().await;
                } else {
                    let _g = lock.read().await;
                    hold().await;
                }
            }
        }
    });
    println!(
        "{:<28} {:>12.0} {:>19.2} ms",
        "tokio::sync::RwLock (whole)",
        tokio_rw,
        gap.as_secs_f64() * 1e3
    );

    let lock = Arc::new(range_mutex::RangeMutex::new(vec![0u8; PAGES as usize]));
    let (rm, gap) = run(&rt, |t| {
        let lock = lock.clone();
        async move {
            for i in 0..OPS {
                let (range, _) = request(t, i);
                let _g = lock
                    .lock_async(range.start as usize..range.end as usize)
                    .await;
                hold().await;
            }
        }
    });
    println!(
        "{:<28} {:>12.0} {:>19.2} ms",
        "range-mutex lock_async",
        rm,
        gap.as_secs_f64() * 1e3
    );
    println!(
        "RangeRwLock: {:.2}x tokio RwLock, {:.2}x range-mutex",
        ours / tokio_rw,
        ours / rm
    );
}
