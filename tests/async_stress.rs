//! Async requests under tokio, cancelled at random: exclusion holds (shadow counters) and
//! nothing is stranded (every task finishes, and the lock ends idle with nobody waiting).
//! Bounded in count and in time. With `deadlock_detection`, a watchdog looks for cycles
//! throughout: no task or thread here waits while it holds a range, so it must find none.

#[cfg(feature = "deadlock_detection")]
mod common;

use rangelock::{RangeRwLock, RangeSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CELLS: usize = 16;
const TASKS: u64 = 48;
const ROUNDS: u64 = 150;

/// Per cell: -1 while a writer is inside, else the number of readers inside.
struct Shadow([AtomicI64; CELLS]);

impl Shadow {
    fn enter(&self, cells: std::ops::Range<usize>, write: bool) {
        for c in cells {
            if write {
                let was = self.0[c].swap(-1, SeqCst);
                assert_eq!(was, 0, "a writer entered cell {c} while it was taken");
            } else {
                let was = self.0[c].fetch_add(1, SeqCst);
                assert!(was >= 0, "a reader entered cell {c} under a writer");
            }
        }
    }

    fn leave(&self, cells: std::ops::Range<usize>, write: bool) {
        for c in cells {
            if write {
                assert_eq!(self.0[c].swap(0, SeqCst), -1);
            } else {
                self.0[c].fetch_sub(1, SeqCst);
            }
        }
    }
}

/// A tiny deterministic generator per task.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// `f`, given up after `patience` (dropped, which cancels a lock request); `None` waits for
/// as long as it takes, so that a request nobody wakes hangs its task.
async fn within<F: std::future::Future>(patience: Option<Duration>, f: F) -> Option<F::Output> {
    match patience {
        // `select!` polls its branches in random order: a request that was woken may be
        // dropped before it is polled again.
        Some(patience) => tokio::select! {
            output = f => Some(output),
            () = tokio::time::sleep(patience) => None,
        },
        None => Some(f.await),
    }
}

/// Inside `cells` for a moment, with the shadow counters checking exclusion.
async fn inside(shadow: &Shadow, cells: std::ops::Range<usize>, write: bool) {
    shadow.enter(cells.clone(), write);
    tokio::task::yield_now().await;
    shadow.leave(cells, write);
}

async fn worker(lock: Arc<RangeRwLock>, shadow: Arc<Shadow>, done: Arc<AtomicU64>, seed: u64) {
    let mut rng = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for _ in 0..ROUNDS {
        let start = (next(&mut rng) % CELLS as u64) as usize;
        let len = 1 + (next(&mut rng) % 4) as usize;
        let end = (start + len).min(CELLS);
        let write = next(&mut rng) % 3 == 0;
        let kind = next(&mut rng) % 4;
        // Most requests are cancelled if they wait too long: a timeout of 0–200 µs races the
        // grant. One in four waits for as long as it takes.
        let patience = Duration::from_micros(next(&mut rng) % 200);
        let patience = (next(&mut rng) % 4 != 0).then_some(patience);
        let range = start as u64..end as u64;
        let held = match kind {
            0 => {
                let set = RangeSet::new().write(range.clone());
                let held = within(patience, lock.lock_set_async(&set)).await;
                if let Some(g) = held {
                    inside(&shadow, start..end, true).await;
                    drop(g);
                    true
                } else {
                    false
                }
            }
            _ if write => match within(patience, lock.write_owned(range)).await {
                Some(g) => {
                    inside(&shadow, start..end, true).await;
                    drop(g);
                    true
                }
                None => false,
            },
            _ => match within(patience, lock.read_async(range)).await {
                Some(g) => {
                    inside(&shadow, start..end, false).await;
                    drop(g);
                    true
                }
                None => false,
            },
        };
        done.fetch_add(if held { 1 } else { 1 << 32 }, SeqCst);
    }
}

fn run(runtime: &tokio::runtime::Runtime, lock: RangeRwLock) {
    let lock = Arc::new(lock);
    let shadow = Arc::new(Shadow(std::array::from_fn(|_| AtomicI64::new(0))));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    #[cfg(feature = "deadlock_detection")]
    let watchdog = common::Watchdog::start();
    runtime.block_on(async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| tokio::spawn(worker(lock.clone(), shadow.clone(), done.clone(), t + 1)))
            .collect();
        for task in tasks {
            // A stranded request would hang its task: bound the wait.
            tokio::time::timeout(Duration::from_secs(20), task)
                .await
                .expect("a task never finished: a request was stranded")
                .expect("a task panicked");
        }
    });
    #[cfg(feature = "deadlock_detection")]
    watchdog.stop();
    assert!(started.elapsed() < Duration::from_secs(120));
    let (granted, cancelled) = (done.load(SeqCst) & 0xffff_ffff, done.load(SeqCst) >> 32);
    assert_eq!(granted + cancelled, TASKS * ROUNDS);
    assert!(granted > 0, "nothing was ever granted");
    assert!(
        cancelled > 0,
        "no request was ever cancelled: the test does not test that"
    );
    eprintln!("{granted} granted, {cancelled} cancelled");
    assert_eq!(lock.waiting(), 0);
    assert!(
        !lock.is_locked(..),
        "a cancelled request left a range locked"
    );
    assert!(lock.try_write(..).is_some());
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap()
}

#[test]
fn random_cancellation_on_a_current_thread_runtime() {
    run(&current_thread(), RangeRwLock::new());
}

#[test]
fn random_cancellation_on_a_multi_thread_runtime() {
    run(&multi_thread(), RangeRwLock::new());
}

/// Barging: requests wait outside the queue (and are cancelled there) within a short window,
/// and queue after it; with a long window they only wait outside, where a release notifies one
/// of the writers that cover each other, and a notified request that is cancelled must pass
/// its notification on.
#[test]
fn random_cancellation_with_barging_on_both_runtimes() {
    for window in [Duration::from_micros(300), Duration::from_secs(3600)] {
        run(&current_thread(), RangeRwLock::barging(window));
        run(&multi_thread(), RangeRwLock::barging(window));
    }
}

/// Blocking and async requests in one FIFO: a blocking holder on a worker thread's neighbour
/// (a plain thread) does not stop tasks on other ranges, and they all finish.
#[test]
fn blocking_threads_and_tasks_share_one_queue() {
    let lock = Arc::new(RangeRwLock::new());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    #[cfg(feature = "deadlock_detection")]
    let watchdog = common::Watchdog::start();
    let threads: Vec<_> = (0..2)
        .map(|t| {
            let lock = lock.clone();
            std::thread::spawn(move || {
                for i in 0..300u64 {
                    let _g = lock.write((i + t) % 8..(i + t) % 8 + 2);
                }
            })
        })
        .collect();
    runtime.block_on(async {
        let tasks: Vec<_> = (0..16u64)
            .map(|t| {
                let lock = lock.clone();
                tokio::spawn(async move {
                    for i in 0..100u64 {
                        let _g = lock.write_async((i * 3 + t) % 8..(i * 3 + t) % 8 + 3).await;
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for task in tasks {
            tokio::time::timeout(Duration::from_secs(60), task)
                .await
                .expect("stranded")
                .unwrap();
        }
    });
    for t in threads {
        t.join().unwrap();
    }
    #[cfg(feature = "deadlock_detection")]
    watchdog.stop();
    assert!(!lock.is_locked(..));
}
