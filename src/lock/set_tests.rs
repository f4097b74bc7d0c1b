//! Timed, owned and async forms of set requests, and the timed owned single-range forms: each
//! form, a timeout that gives up, and a future dropped at every step. Polled by hand with a
//! counting waker, so that miri runs them.

use super::tests::wait_for_waiting;
use super::*;
use core::future::Future;
use core::pin::{pin, Pin};
use core::task::{Context, Poll, Waker};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::Wake;
use std::thread;

/// A waker that counts its wake-ups.
#[derive(Default)]
pub(crate) struct Count(AtomicUsize);

impl Count {
    pub(crate) fn get(&self) -> usize {
        self.0.load(SeqCst)
    }
}

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
}

pub(crate) fn counting() -> (Arc<Count>, Waker) {
    let count = Arc::new(Count::default());
    (count.clone(), Waker::from(count))
}

pub(crate) fn poll<F: Future>(fut: Pin<&mut F>, waker: &Waker) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(waker))
}

/// A request whose timeout expires leaves the queue, and the request queued only behind it is
/// granted while what it waited for is still held.
///
/// `held` takes 0..5 of a fresh lock; `timed` requests (with the timeout it is given) ranges
/// that conflict with `held` and cover 7..8, and says whether it was granted; `behind`
/// requests 7..8, which conflicts with `timed` only, and says whether it was granted (within
/// seconds: a request left blocked by a departed one fails the test instead of hanging it).
pub(crate) fn a_timed_out_request_unblocks_those_behind_it<G>(
    held: impl Fn(&Arc<RangeRwLock>) -> G,
    timed: impl Fn(&Arc<RangeRwLock>, Duration) -> bool + Sync,
    behind: impl Fn(&Arc<RangeRwLock>) -> bool + Sync,
) {
    // `behind` must queue before `timed` gives up; if the machine is too slow for that, try
    // again with a longer timeout.
    for timeout_ms in [50, 200, 1000, 5000] {
        let lock = Arc::new(RangeRwLock::fifo());
        let guard = held(&lock);
        let tested = thread::scope(|s| {
            let first = s.spawn(|| timed(&lock, Duration::from_millis(timeout_ms)));
            while lock.waiting() < 1 && !first.is_finished() {
                thread::yield_now();
            }
            let second = s.spawn(|| behind(&lock));
            while lock.waiting() < 2 && !first.is_finished() {
                thread::yield_now();
            }
            let queued_behind = lock.waiting() == 2;
            assert!(
                !first.join().unwrap(),
                "granted while a conflicting request held the lock"
            );
            assert!(
                second.join().unwrap(),
                "the request behind the timed-out one was never granted"
            );
            queued_behind
        });
        drop(guard);
        assert_eq!(lock.waiting(), 0);
        assert!(!lock.is_locked(..));
        if tested {
            return;
        }
    }
    panic!("the second request never queued behind the timed one");
}

/// Long enough for a grant that is due, short enough that a stranded request fails the test.
const DUE: Duration = Duration::from_secs(10);

#[test]
fn try_lock_set_for_and_until_give_up_whole_and_unblock_those_behind() {
    let set = RangeSet::new().write(0..1).write(7..8);
    a_timed_out_request_unblocks_those_behind_it(
        |lock| lock.read_arc(0..5),
        |lock, timeout| lock.try_lock_set_for(&set, timeout).is_some(),
        |lock| lock.try_read_for(7..8, DUE).is_some(),
    );
    a_timed_out_request_unblocks_those_behind_it(
        |lock| lock.read_arc(0..5),
        |lock, timeout| {
            lock.try_lock_set_until(&set, Instant::now() + timeout)
                .is_some()
        },
        |lock| lock.try_read_for(7..8, DUE).is_some(),
    );
}

#[test]
fn timed_set_requests_are_granted_when_free_and_hold_nothing_when_not() {
    let lock = RangeRwLock::new();
    let set = RangeSet::new().write(0..1).read(5..6);
    let g = lock
        .try_lock_set_for(&set, Duration::from_millis(1))
        .expect("free");
    assert!(lock.is_locked(0..1) && lock.is_locked(5..6));
    assert!(core::ptr::eq(g.set(), &raw const set));
    drop(g);
    let held = lock.write(5..6);
    let past = Instant::now();
    assert!(lock.try_lock_set_until(&set, past).is_none());
    assert!(lock
        .try_lock_set_for(&set, Duration::from_millis(1))
        .is_none());
    assert!(!lock.is_locked(0..1), "a set that gave up holds nothing");
    assert_eq!(lock.waiting(), 0);
    drop(held);
    assert!(lock.try_lock_set_until(&set, past).is_some());
    let empty = RangeSet::new();
    let _w = lock.write(..);
    assert!(lock.try_lock_set_until(&empty, past).is_some());
}

#[test]
fn try_write_arc_for_and_until_give_up_and_unblock_those_behind() {
    a_timed_out_request_unblocks_those_behind_it(
        |lock| lock.read_arc(0..5),
        |lock, timeout| lock.try_write_arc_for(0..10, timeout).is_some(),
        |lock| lock.try_read_for(7..8, DUE).is_some(),
    );
    a_timed_out_request_unblocks_those_behind_it(
        |lock| lock.read_arc(0..5),
        |lock, timeout| {
            lock.try_write_arc_until(0..10, Instant::now() + timeout)
                .is_some()
        },
        |lock| lock.try_read_for(7..8, DUE).is_some(),
    );
}

#[test]
fn try_read_arc_for_and_until_give_up_and_unblock_those_behind() {
    a_timed_out_request_unblocks_those_behind_it(
        |lock| lock.write_arc(0..5),
        |lock, timeout| lock.try_read_arc_for(0..10, timeout).is_some(),
        |lock| lock.try_write_for(7..8, DUE).is_some(),
    );
    a_timed_out_request_unblocks_those_behind_it(
        |lock| lock.write_arc(0..5),
        |lock, timeout| {
            lock.try_read_arc_until(0..10, Instant::now() + timeout)
                .is_some()
        },
        |lock| lock.try_write_for(7..8, DUE).is_some(),
    );
}

#[test]
fn timed_arc_guards_are_granted_when_free_and_keep_the_lock_alive() {
    let lock = Arc::new(RangeRwLock::new());
    let past = Instant::now();
    let w = lock
        .try_write_arc_for(0..10, Duration::from_millis(1))
        .expect("free");
    assert!(lock.try_read_arc_until(5..6, past).is_none());
    assert!(lock
        .try_read_arc_for(5..6, Duration::from_millis(1))
        .is_none());
    let weak = Arc::downgrade(&lock);
    drop(lock);
    let r = thread::spawn(move || w.downgrade()).join().unwrap();
    let lock = weak.upgrade().expect("the guard keeps the lock alive");
    assert_eq!(r.range(), 0..=9);
    let r2 = lock.try_read_arc_until(5..6, past).expect("readers share");
    assert!(lock.try_write_arc_until(9..10, past).is_none());
    drop((r, r2));
    let w = lock.try_write_arc_until(.., past).expect("free");
    assert_eq!(w.range(), 0..=u64::MAX);
    drop(w);
    assert!(lock.try_read_arc_for(.., Duration::MAX).is_some());
    assert_eq!(lock.waiting(), 0);
}

#[test]
fn lock_set_arc_holds_the_set_until_the_guard_goes_on_any_thread() {
    let lock = Arc::new(RangeRwLock::new());
    let set = RangeSet::new().read(0..8).write(100..108);
    let guard = lock.lock_set_arc(set.clone());
    assert_eq!(*guard.set(), set);
    assert!(lock.try_read(4..5).is_some());
    assert!(lock.try_write(4..5).is_none());
    assert!(lock.try_read(104..105).is_none());
    assert_eq!(
        format!("{guard:?}"),
        "ArcRangeSetGuard { set: [read 0..=7, write 100..=107] }"
    );
    let weak = Arc::downgrade(&lock);
    drop(lock);
    thread::spawn(move || drop(guard)).join().unwrap();
    assert!(weak.upgrade().is_none(), "the guard let the lock go");
}

#[test]
fn lock_set_arc_waits_for_its_conflicts_and_into_set_releases() {
    let lock = Arc::new(RangeRwLock::new());
    let held = lock.write(5..6);
    let set = RangeSet::new().write(0..1).write(5..6);
    let waiter = thread::spawn({
        let lock = lock.clone();
        move || lock.lock_set_arc(set)
    });
    wait_for_waiting(&lock, 1);
    assert!(!lock.is_locked(0..1), "a waiting set holds nothing");
    drop(held);
    let guard = waiter.join().unwrap();
    assert!(lock.is_locked(0..1) && lock.is_locked(5..6));
    let set = guard.into_set();
    assert!(!lock.is_locked(..));
    assert_eq!(set.len(), 2);
    // The set comes back from a failed try, too.
    let held = lock.read(0..1);
    let set = lock.try_lock_set_arc(set).expect_err("0..1 is read");
    assert_eq!(
        set.ranges().collect::<Vec<_>>(),
        [(0..=0, true), (5..=5, true)]
    );
    assert!(!lock.is_locked(5..6));
    drop(held);
    let guard = lock.try_lock_set_arc(set).expect("free");
    assert!(lock.is_locked(5..6));
    drop(guard);
    let empty = lock.lock_set_arc(RangeSet::new());
    assert!(empty.set().is_empty());
    assert!(lock.try_write(..).is_some());
}

/// The set every future of `cancelled_at_every_step` requests: 0..1 is its own, 5..6 is
/// `held`'s in the steps where the future has to wait.
pub(crate) fn the_cancelled_set() -> RangeSet {
    RangeSet::new().write(0..1).write(5..6)
}

/// A future from `make` (a request for `the_cancelled_set()` on `lock`) dropped at every step
/// leaves the lock as if it had never been: before its first poll; queued (or, barging,
/// waiting outside the tree); granted but not polled; and after it resolved. Whatever it was
/// owed, it hands on: the requests that waited only for it are woken and granted.
pub(crate) fn cancelled_at_every_step<F: Future>(lock: &RangeRwLock, make: impl Fn() -> F) {
    // Dropped before its first poll: it never queued.
    let held = lock.write(5..6);
    drop(make());
    assert_eq!(lock.waiting(), 0);
    assert!(lock.try_write(0..1).is_some());
    drop(held);
    idle(lock);

    // Polled to the end: the output holds the set until it is dropped.
    let (count, waker) = counting();
    let mut fut = pin!(make());
    let Poll::Ready(output) = poll(fut.as_mut(), &waker) else {
        panic!("pending on an idle lock")
    };
    assert!(lock.is_locked(0..1) && lock.is_locked(5..6));
    drop(output);
    assert_eq!(count.get(), 0);
    idle(lock);

    if lock.handoff().is_some() {
        cancelled_while_outside(lock, make);
    } else {
        cancelled_while_queued(lock, make);
    }
}

fn idle(lock: &RangeRwLock) {
    assert_eq!(lock.waiting(), 0, "a request is left waiting");
    assert!(!lock.is_locked(..), "a range is left locked");
}

/// Barging locks: the steps of a future that waits outside the tree.
fn cancelled_while_outside<F: Future>(lock: &RangeRwLock, make: impl Fn() -> F) {
    {
        // Waiting outside the tree, dropped: it leaves the list, and no release wakes it.
        let held = lock.write(5..6);
        let (count, waker) = counting();
        let mut fut = Box::pin(make());
        assert!(poll(fut.as_mut(), &waker).is_pending());
        assert_eq!(lock.waiting(), 1);
        assert!(!lock.is_locked(0..1), "a waiting set holds nothing");
        drop(fut);
        assert_eq!(lock.waiting(), 0);
        drop(held);
        assert_eq!(count.get(), 0, "a dropped future was woken");
        idle(lock);

        // Notified, dropped before it tried again: it passes on what it was owed. (A set
        // covers nobody, so the other writer is notified by the release, too.)
        let held = lock.write(5..6);
        let (count, waker) = counting();
        let (other_count, other_waker) = counting();
        let mut fut = Box::pin(make());
        assert!(poll(fut.as_mut(), &waker).is_pending());
        let mut other = pin!(lock.write_async(5..6));
        assert!(poll(other.as_mut(), &other_waker).is_pending());
        drop(held);
        assert_eq!(count.get(), 1, "the release did not notify the future");
        drop(fut);
        assert_eq!(other_count.get(), 1, "the other writer was not notified");
        let Poll::Ready(guard) = poll(other.as_mut(), &other_waker) else {
            panic!("notified, but the range is taken")
        };
        drop(guard);
        idle(lock);
    }
}

/// FIFO locks: the steps of a future that queues in the tree.
fn cancelled_while_queued<F: Future>(lock: &RangeRwLock, make: impl Fn() -> F) {
    // Queued, dropped: it leaves the queue and un-counts itself from the request behind it.
    let held = lock.write(5..6);
    let (count, waker) = counting();
    let (behind_count, behind_waker) = counting();
    let mut fut = Box::pin(make());
    assert!(poll(fut.as_mut(), &waker).is_pending());
    assert!(!lock.is_locked(0..1), "a waiting set holds nothing");
    let mut behind = pin!(lock.write_async(0..1)); // waits only for the set
    assert!(poll(behind.as_mut(), &behind_waker).is_pending());
    assert_eq!(lock.waiting(), 2);
    drop(fut);
    assert_eq!(behind_count.get(), 1, "the request behind was not woken");
    let Poll::Ready(guard) = poll(behind.as_mut(), &behind_waker) else {
        panic!("woken, but still blocked")
    };
    assert_eq!(count.get(), 0);
    drop((guard, held));
    idle(lock);

    // Granted, dropped before its next poll: it releases the set, which grants the request
    // behind it.
    let held = lock.write(5..6);
    let (count, waker) = counting();
    let (behind_count, behind_waker) = counting();
    let mut fut = Box::pin(make());
    assert!(poll(fut.as_mut(), &waker).is_pending());
    let mut behind = pin!(lock.read_async(0..1));
    assert!(poll(behind.as_mut(), &behind_waker).is_pending());
    drop(held);
    assert_eq!(count.get(), 1, "the grant did not wake the future");
    assert!(lock.is_locked(0..1), "granted to the future");
    assert_eq!(behind_count.get(), 0);
    drop(fut);
    assert_eq!(
        behind_count.get(),
        1,
        "the release did not wake the request behind"
    );
    assert!(poll(behind.as_mut(), &behind_waker).is_ready());
    idle(lock);

    // Granted and polled: the output holds the set; dropping it grants the request behind.
    let held = lock.write(5..6);
    let (count, waker) = counting();
    let (behind_count, behind_waker) = counting();
    let mut fut = Box::pin(make());
    assert!(poll(fut.as_mut(), &waker).is_pending());
    let mut behind = pin!(lock.write_async(5..10));
    assert!(poll(behind.as_mut(), &behind_waker).is_pending());
    drop(held);
    assert_eq!(count.get(), 1);
    let Poll::Ready(output) = poll(fut.as_mut(), &waker) else {
        panic!("woken, but still blocked")
    };
    assert_eq!(behind_count.get(), 0, "woken while the set is held");
    drop(output);
    assert_eq!(behind_count.get(), 1);
    assert!(poll(behind.as_mut(), &behind_waker).is_ready());
    idle(lock);
}

#[test]
fn lock_set_owned_is_cancellation_safe_at_every_step() {
    for lock in [
        Arc::new(RangeRwLock::new()),
        Arc::new(RangeRwLock::barging(Duration::from_secs(3600))),
    ] {
        cancelled_at_every_step(&lock, || lock.lock_set_owned(the_cancelled_set()));
    }
}

#[test]
fn lock_set_async_is_cancellation_safe_at_every_step() {
    let set = the_cancelled_set();
    for lock in [
        RangeRwLock::new(),
        RangeRwLock::barging(Duration::from_secs(3600)),
    ] {
        cancelled_at_every_step(&lock, || lock.lock_set_async(&set));
    }
}

#[test]
fn an_owned_set_future_moved_before_its_first_poll_queues_and_resolves() {
    let lock = Arc::new(RangeRwLock::new());
    let held = lock.write_arc(5..6);
    let (count, waker) = counting();
    // Built on one thread, moved to a box, polled there; its set moved with it.
    let fut = thread::spawn({
        let lock = lock.clone();
        move || lock.lock_set_owned(RangeSet::new().write(0..1).write(5..6))
    })
    .join()
    .unwrap();
    assert_eq!(format!("{fut:?}"), "OwnedSetFuture { .. }");
    let mut fut = Box::pin(fut);
    assert!(poll(fut.as_mut(), &waker).is_pending());
    thread::spawn(move || drop(held)).join().unwrap();
    assert_eq!(count.get(), 1);
    let Poll::Ready(guard) = poll(fut.as_mut(), &waker) else {
        panic!("not granted")
    };
    drop(fut);
    assert_eq!(guard.set().len(), 2);
    let set = thread::spawn(move || guard.into_set()).join().unwrap();
    assert!(!lock.is_locked(..));
    let mut again = pin!(lock.lock_set_owned(set));
    assert!(poll(again.as_mut(), &waker).is_ready());
}

#[test]
fn set_futures_and_owned_set_guards_are_send_and_static() {
    fn send<T: Send>(_: &T) {}
    fn owned<T: Send + Sync + 'static>(_: &T) {}
    fn owned_future<T: Send + 'static>(_: &T) {}
    let lock = Arc::new(RangeRwLock::new());
    let set = RangeSet::new().write(0..1);
    send(&lock.lock_set_async(&set));
    owned_future(&lock.lock_set_owned(set.clone()));
    owned(&lock.lock_set_arc(set.clone()));
    owned(&lock.try_read_arc_for(0..1, Duration::ZERO));
    owned(&lock.try_write_arc_until(0..1, Instant::now()));
    assert_eq!(
        format!("{:?}", lock.lock_set_async(&set)),
        "SetFuture { set: [write 0..=0], .. }"
    );
}
