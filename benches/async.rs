//! Async benchmarks.
//!
//! - `async_uncontended/{blocking,async}`: lock + unlock of `0..4096` on an idle lock, one
//!   thread; the async request is polled once by hand (no runtime), so the two differ only in
//!   the future's own cost.
//! - `async_hot_8tasks`: 8 tokio tasks on a 2-worker runtime, each write-locking the same range
//!   with a tiny critical section, against `tokio::sync::RwLock` and range-mutex's
//!   `lock_async`. Throughput is acquisitions per second across all tasks.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use range_mutex::RangeMutex;
use rangelock::RangeRwLock;

struct Noop;

impl Wake for Noop {
    fn wake(self: Arc<Self>) {}
}

fn uncontended(c: &mut Criterion) {
    let mut g = c.benchmark_group("async_uncontended");
    g.throughput(Throughput::Elements(1));
    let lock = RangeRwLock::new();
    g.bench_function("blocking", |b| {
        b.iter(|| drop(black_box(lock.write(black_box(0..4096u64)))));
    });
    let waker = Waker::from(Arc::new(Noop));
    g.bench_function("async", |b| {
        let mut cx = Context::from_waker(&waker);
        b.iter(|| {
            let fut = pin!(lock.write_async(black_box(0..4096u64)));
            match fut.poll(&mut cx) {
                Poll::Ready(guard) => drop(black_box(guard)),
                Poll::Pending => unreachable!("the lock is idle"),
            }
        });
    });
    g.finish();
}

const TASKS: u64 = 8;

/// Runs `TASKS` tasks of `iters` acquisitions each on `rt`; returns the wall time.
fn run_tasks<F, Fut>(rt: &tokio::runtime::Runtime, iters: u64, task: F) -> Duration
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    rt.block_on(async {
        let start = Instant::now();
        let handles: Vec<_> = (0..TASKS).map(|_| tokio::spawn(task(iters))).collect();
        for h in handles {
            h.await.unwrap();
        }
        start.elapsed()
    })
}

fn hot(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let mut g = c.benchmark_group("async_hot_8tasks");
    g.throughput(Throughput::Elements(TASKS));
    g.measurement_time(Duration::from_secs(3));
    let work = || {
        for i in 0..10u64 {
            black_box(i);
        }
    };
    let ours = [
        ("rangelock", RangeRwLock::new()),
        ("rangelock_fifo", RangeRwLock::fifo()),
    ];
    for (name, lock) in ours {
        let lock = Arc::new(lock);
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                run_tasks(&rt, iters, |n| {
                    let lock = lock.clone();
                    async move {
                        for _ in 0..n {
                            let _g = lock.write_async(0..4096).await;
                            work();
                        }
                    }
                })
            });
        });
    }
    let lock = Arc::new(tokio::sync::RwLock::new(()));
    g.bench_function("tokio_rwlock", |b| {
        b.iter_custom(|iters| {
            run_tasks(&rt, iters, |n| {
                let lock = lock.clone();
                async move {
                    for _ in 0..n {
                        let _g = lock.write().await;
                        work();
                    }
                }
            })
        });
    });
    let lock = Arc::new(RangeMutex::new(vec![0u8; 4096]));
    g.bench_function("range_mutex", |b| {
        b.iter_custom(|iters| {
            run_tasks(&rt, iters, |n| {
                let lock = lock.clone();
                async move {
                    for _ in 0..n {
                        let _g = lock.lock_async(0..4096).await;
                        work();
                    }
                }
            })
        });
    });
    g.finish();
}

criterion_group!(benches, uncontended, hot);
criterion_main!(benches);
