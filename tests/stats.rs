//! Contention statistics (feature `stats`): what is counted, and the longest wait against the
//! one measured outside the lock.
#![cfg(all(feature = "stats", not(rangelock_loom)))]

use rangelock::{RangeRwLock, RangeSet, WaitHistogram};
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

/// Spins until `n` requests wait on `lock` (queued, or outside the queue of a barging lock).
fn until_waiting(lock: &RangeRwLock, n: usize) {
    while lock.waiting() < n {
        thread::yield_now();
    }
}

/// Four threads wait behind a holder for 20 ms at least; each measures its own wait around
/// the call. The lock counts exactly those four as contended, and its longest wait is the
/// longest measured outside, less at most one bucket of the histogram. On a strict lock, and
/// on a barging one (whose waiters wait outside the queue).
#[test]
fn a_contended_run_counts_its_waits_and_its_longest_wait_matches_the_measured_one() {
    contended_run(&RangeRwLock::fifo());
    contended_run(&RangeRwLock::barging(Duration::from_secs(3600)));
}

fn contended_run(lock: &RangeRwLock) {
    const WAITERS: usize = 4;
    let held = lock.write(0..10);
    let measured: Vec<Duration> = thread::scope(|s| {
        let waiters: Vec<_> = (0..WAITERS)
            .map(|i| {
                s.spawn(move || {
                    let began = Instant::now();
                    let g = lock.write(i as u64..i as u64 + 5);
                    let waited = began.elapsed();
                    drop(g);
                    waited
                })
            })
            .collect();
        until_waiting(lock, WAITERS);
        thread::sleep(Duration::from_millis(20));
        drop(held);
        waiters.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let stats = lock.stats();
    eprintln!("{stats}\nmeasured outside: {measured:?}");
    assert_eq!(stats.acquisitions, WAITERS as u64 + 1);
    assert_eq!(stats.contended, WAITERS as u64);
    assert_eq!(stats.gave_up, 0);
    assert_eq!(stats.wait_histogram.count(), WAITERS as u64);
    let longest = *measured.iter().max().unwrap();
    let resolution = WaitHistogram::bucket_of(longest);
    assert!(
        stats.wait_max <= longest,
        "the lock's longest wait {:?} is inside the measured {longest:?}",
        stats.wait_max
    );
    assert!(
        longest.saturating_sub(stats.wait_max) <= resolution.end.saturating_sub(resolution.start),
        "the lock's longest wait {:?} is within a bucket ({resolution:?}) of the measured {longest:?}",
        stats.wait_max
    );
    assert!(stats.wait_total <= measured.iter().sum());
    assert!(stats.wait_total >= stats.wait_max);
    let longest_bucket = stats.wait_histogram.buckets().last().unwrap().0;
    assert!(longest_bucket.contains(&stats.wait_max));
    assert_eq!(
        stats.wait_histogram.quantile(1.0),
        Some(longest_bucket.end),
        "the longest wait's bucket ends the histogram"
    );
}

/// Fast-path, queued, `try_` and set grants count; failed `try_` requests and empty ranges do
/// not; a timed-out request gave up; `reset_stats` starts again from zero.
#[test]
fn every_kind_of_grant_counts_once_and_failures_do_not() {
    let lock = RangeRwLock::new();
    drop(lock.read(0..10)); // fast path
    let set = RangeSet::new().write(0..1).write(5..6);
    drop(lock.lock_set(&set)); // through the queue
    drop(lock.write(3..3)); // empty: nothing
    let held = lock.write(0..10);
    assert!(lock.try_read(5..6).is_none());
    let (a, b, c) = (lock.read(20..21), lock.read(30..31), lock.read(40..41)); // more than the slots
    assert!(lock.try_write_for(5..6, Duration::from_millis(5)).is_none());
    let stats = lock.stats();
    assert_eq!(stats.acquisitions, 6);
    assert_eq!(stats.contended, 0);
    assert_eq!(stats.gave_up, 1);
    drop((held, a, b, c));
    lock.reset_stats();
    let zero = lock.stats();
    assert_eq!(
        (
            zero.acquisitions,
            zero.contended,
            zero.gave_up,
            zero.wait_max
        ),
        (0, 0, 0, Duration::ZERO)
    );
    assert_eq!(zero.wait_histogram.count(), 0);
    drop(lock.write(..));
    assert_eq!(lock.stats().acquisitions, 1);
}

struct Noop;

impl Wake for Noop {
    fn wake(self: Arc<Self>) {}
}

/// An async request that waits is contended once it is granted; one dropped while it waits
/// gave up.
#[test]
fn async_requests_count_their_waits() {
    let lock = RangeRwLock::new();
    let waker = Waker::from(Arc::new(Noop));
    let mut cx = Context::from_waker(&waker);
    let held = lock.write(0..10);
    let mut waits = pin!(lock.read_async(5..6));
    assert!(waits.as_mut().poll(&mut cx).is_pending());
    {
        let mut dropped = Box::pin(lock.write_async(7..8));
        assert!(dropped.as_mut().poll(&mut cx).is_pending());
    }
    thread::sleep(Duration::from_millis(2));
    drop(held);
    let Poll::Ready(g) = waits.as_mut().poll(&mut cx) else {
        panic!("granted when the holder left")
    };
    drop(g);
    let stats = lock.stats();
    assert_eq!(
        (stats.acquisitions, stats.contended, stats.gave_up),
        (2, 1, 1)
    );
    assert!(stats.wait_max >= Duration::from_millis(2));
}

/// A barging lock: a request that finds its range taken waits outside the queue until its
/// hand-off window closes, then queues; a request that takes the range while another waits
/// outside passed it.
#[test]
fn a_barging_lock_counts_hand_off_queueings_and_passes() {
    let lock = RangeRwLock::barging(Duration::from_millis(2));
    thread::scope(|s| {
        let held = lock.write(0..10);
        let waiter = s.spawn(|| drop(lock.write(0..10)));
        until_waiting(&lock, 1);
        thread::sleep(Duration::from_millis(30)); // the window closes, and it queues
        drop(held);
        waiter.join().unwrap();
    });
    let stats = lock.stats();
    assert_eq!(stats.queued_at_handoff, 1);
    assert_eq!(stats.contended, 1);
    assert_eq!(stats.passed, 0);

    // A long window: the waiter stays outside, and a release followed at once by a request
    // of this thread's passes it, unless it was quick enough to take the range first (and,
    // on a busy machine, even to let it go again before this thread's request: then that
    // request passed nobody, which the waiter's flag, set while it holds the range, tells).
    let lock = RangeRwLock::barging(Duration::from_secs(3600));
    let mut passes = 0;
    for _ in 0..100 {
        let waiter_had_it = AtomicBool::new(false);
        thread::scope(|s| {
            let held = lock.write(0..10);
            let waiter = s.spawn(|| {
                let _g = lock.write(0..10);
                waiter_had_it.store(true, SeqCst);
            });
            until_waiting(&lock, 1);
            drop(held);
            if let Some(again) = lock.try_write(0..10) {
                // Read while holding the range: false means the waiter has not had it yet.
                if !waiter_had_it.load(SeqCst) {
                    passes += 1;
                }
                drop(again);
            }
            waiter.join().unwrap();
        });
        if passes > 0 {
            break;
        }
    }
    assert!(passes > 0, "the waiter always won the race");
    let stats = lock.stats();
    assert_eq!(stats.passed, passes);
    assert_eq!(stats.queued_at_handoff, 0);
    println!("{stats}");
}
