//! loom models of async requests, owned guards and set requests. Run with
//! `RUSTFLAGS="--cfg rangelock_loom" cargo test -p loom-tests --release --test future`.
#![cfg(rangelock_loom)]

use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use loom::thread;
use loom_tests::{model, Shared};
use rangelock::{RangeRwLock, RangeSet};
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Wake, Waker};

/// A waker that counts its wake-ups (in a loom atomic, so that loom sees the hand-off).
struct Count(AtomicUsize);

impl Wake for Count {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
}

fn counting() -> (std::sync::Arc<Count>, Waker) {
    let count = std::sync::Arc::new(Count(AtomicUsize::new(0)));
    (count.clone(), Waker::from(count))
}

fn poll<F: Future>(fut: std::pin::Pin<&mut F>, waker: &Waker) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(waker))
}

/// A future that waited must have been woken exactly once, and then be granted.
fn woken_and_granted<F: Future>(
    fut: std::pin::Pin<&mut F>,
    count: &Count,
    waker: &Waker,
) -> F::Output {
    assert_eq!(
        count.0.load(SeqCst),
        1,
        "the release did not wake the waiter"
    );
    match poll(fut, waker) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("woken, but the range is still taken"),
    }
}

#[test]
fn a_pending_future_dropped_while_a_release_grants_it() {
    model(|| {
        let lock = std::sync::Arc::new(RangeRwLock::fifo());
        let held = lock.write_arc(0..10);
        let (_, waker) = counting();
        let mut fut = Box::pin(lock.write_async(5..15));
        assert!(poll(fut.as_mut(), &waker).is_pending());
        // Waits only for `fut`.
        let (behind_count, behind_waker) = counting();
        let mut behind = pin!(lock.read_async(12..13));
        assert!(poll(behind.as_mut(), &behind_waker).is_pending());
        let releaser = thread::spawn(move || drop(held));
        drop(fut); // pending, granted, or being granted
        releaser.join().unwrap();
        // Whatever the order, the request behind was granted, and woken.
        assert_eq!(behind_count.0.load(SeqCst), 1);
        let Poll::Ready(g) = poll(behind.as_mut(), &behind_waker) else {
            panic!("the request behind the dropped future was stranded")
        };
        drop(g);
        assert!(!lock.is_locked(..));
    });
}

#[test]
fn a_waker_replaced_while_a_grant_races() {
    model(|| {
        let lock = std::sync::Arc::new(RangeRwLock::fifo());
        let held = lock.write_arc(0..10);
        let (old_count, old) = counting();
        let (new_count, new) = counting();
        let mut fut = pin!(lock.write_async(0..10));
        assert!(poll(fut.as_mut(), &old).is_pending());
        let releaser = thread::spawn(move || drop(held));
        match poll(fut.as_mut(), &new) {
            Poll::Ready(g) => drop(g),
            Poll::Pending => {
                releaser.join().unwrap();
                // The task now polls with `new`: the grant must wake it, not the old task.
                assert_eq!(new_count.0.load(SeqCst), 1, "the grant woke a stale waker");
                assert_eq!(old_count.0.load(SeqCst), 0);
                assert!(poll(fut.as_mut(), &new).is_ready());
                return;
            }
        }
        releaser.join().unwrap();
    });
}

#[test]
fn an_owned_guard_dropped_on_another_thread() {
    model(|| {
        let lock = std::sync::Arc::new(RangeRwLock::fifo());
        let data = Shared::new();
        let guard = lock.write_arc(0..10);
        let other = {
            let data = data.clone();
            thread::spawn(move || {
                data.bump();
                drop(guard); // released on this thread
            })
        };
        let w = lock.write(5..6);
        data.bump();
        drop(w);
        other.join().unwrap();
        assert_eq!(data.get(), 2);
        assert!(!lock.is_locked(..));
    });
}

#[test]
fn a_set_request_that_partly_overlaps_two_holders() {
    model(|| {
        let lock = std::sync::Arc::new(RangeRwLock::fifo());
        let left = Shared::new();
        let right = Shared::new();
        let a = lock.write_arc(0..10);
        let b = lock.read_arc(20..30);
        let ta = {
            let left = left.clone();
            thread::spawn(move || {
                left.bump();
                drop(a);
            })
        };
        let tb = {
            let right = right.clone();
            thread::spawn(move || {
                let _ = right.get();
                drop(b);
            })
        };
        let set = RangeSet::new().write(5..6).write(25..26).read(40..50);
        let both = lock.lock_set(&set);
        left.bump();
        right.bump();
        drop(both);
        ta.join().unwrap();
        tb.join().unwrap();
        assert!(!lock.is_locked(..));
    });
}

/// Barging: a future that finds its range taken waits outside the queue; the release that
/// clears its way must wake it, whether the holder releases from its slot (the lock back in
/// fast mode, `PARKED` set) or from the tree, and whichever comes first.
#[test]
fn a_barging_future_waiting_outside_is_woken_by_the_release() {
    model(|| {
        let lock = std::sync::Arc::new(RangeRwLock::barging(std::time::Duration::from_secs(3600)));
        let held = lock.write_arc(0..10);
        let releaser = thread::spawn(move || drop(held));
        let (count, waker) = counting();
        let mut fut = pin!(lock.write_async(5..15));
        if poll(fut.as_mut(), &waker).is_pending() {
            releaser.join().unwrap();
            drop(woken_and_granted(fut.as_mut(), &count, &waker));
        } else {
            releaser.join().unwrap();
        }
        assert!(!lock.is_locked(..));
        assert_eq!(lock.waiting(), 0);
    });
}

/// Barging: a future waiting outside the queue is dropped while a release notifies it; the
/// node must leave the list (or the releasing thread's hands) before it is freed, and the
/// lock ends idle.
#[test]
fn a_barging_future_dropped_while_a_release_notifies_it() {
    model(|| {
        let lock = std::sync::Arc::new(RangeRwLock::barging(std::time::Duration::from_secs(3600)));
        let held = lock.write_arc(0..10);
        let (_, waker) = counting();
        let mut fut = Box::pin(lock.write_async(5..15));
        assert!(poll(fut.as_mut(), &waker).is_pending());
        let releaser = thread::spawn(move || drop(held));
        drop(fut);
        releaser.join().unwrap();
        assert_eq!(lock.waiting(), 0);
        assert!(lock.try_write(..).is_some());
    });
}

/// Barging: a future waits outside while the lock is in tree mode (three holders); a release
/// that takes the lock back to the slots races the release of the holder in its way, which
/// then releases from its slot and must still see `PARKED`.
#[test]
fn a_barging_future_is_woken_after_the_lock_returns_to_the_slots() {
    model(|| {
        let lock = std::sync::Arc::new(RangeRwLock::barging(std::time::Duration::from_secs(3600)));
        let in_the_way = lock.write_arc(0..10);
        let other = lock.read_arc(20..30);
        let third = lock.read_arc(40..50); // no slot left: tree mode
        let (count, waker) = counting();
        let mut fut = pin!(lock.write_async(5..15));
        assert!(poll(fut.as_mut(), &waker).is_pending());
        let releaser = thread::spawn(move || drop(in_the_way));
        drop(third); // back to the slots, unless the releaser went first
        releaser.join().unwrap();
        drop((woken_and_granted(fut.as_mut(), &count, &waker), other));
        assert!(!lock.is_locked(..));
    });
}

/// Barging: two futures wait outside for the same range. The release notifies only the first
/// (the second, a writer of the same range, is covered by it); the first is dropped, racing
/// that release, and must pass the notification on, so that the second is woken and granted.
#[test]
fn a_notified_barging_future_dropped_passes_its_notification_on() {
    model(|| {
        let lock = std::sync::Arc::new(RangeRwLock::barging(std::time::Duration::from_secs(3600)));
        let held = lock.write_arc(0..10);
        let (_, first_waker) = counting();
        let mut first = Box::pin(lock.write_async(0..10));
        assert!(poll(first.as_mut(), &first_waker).is_pending());
        let (count, waker) = counting();
        let mut second = pin!(lock.write_async(0..10));
        assert!(poll(second.as_mut(), &waker).is_pending());
        let releaser = thread::spawn(move || drop(held));
        drop(first);
        releaser.join().unwrap();
        drop(woken_and_granted(second.as_mut(), &count, &waker));
        assert_eq!(lock.waiting(), 0);
        assert!(!lock.is_locked(..));
    });
}

/// Barging: a notified future covers (stands in for) only the requests inside its range. Two
/// holders of disjoint ranges release, one after the other, while a future waits for each:
/// both must be woken, although the first is notified and has not come back yet.
#[test]
fn a_notified_future_covers_only_requests_inside_its_range() {
    model(|| {
        let lock = std::sync::Arc::new(RangeRwLock::barging(std::time::Duration::from_secs(3600)));
        let (h1, h2) = (lock.write_arc(0..10), lock.write_arc(20..30));
        let (count_a, waker_a) = counting();
        let mut a = pin!(lock.write_async(0..10));
        assert!(poll(a.as_mut(), &waker_a).is_pending());
        let (count_b, waker_b) = counting();
        let mut b = pin!(lock.write_async(20..30));
        assert!(poll(b.as_mut(), &waker_b).is_pending());
        let releaser = thread::spawn(move || drop((h1, h2)));
        releaser.join().unwrap();
        let guard_b = woken_and_granted(b.as_mut(), &count_b, &waker_b);
        drop((woken_and_granted(a.as_mut(), &count_a, &waker_a), guard_b));
        assert!(!lock.is_locked(..));
    });
}
