//! Futures, owned guards and sets, polled by hand with a counting waker (so that miri runs
//! them: no runtime).

use super::tests::wait_for_waiting;
use super::*;
use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll, Waker};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::Wake;
use std::thread;

/// A waker that counts its wake-ups.
#[derive(Default)]
struct Count(AtomicUsize);

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
}

fn counting() -> (Arc<Count>, Waker) {
    let count = Arc::new(Count::default());
    (count.clone(), Waker::from(count))
}

fn poll<F: Future>(fut: core::pin::Pin<&mut F>, waker: &Waker) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(waker))
}

#[test]
fn an_async_request_queues_in_the_same_fifo_and_is_woken_when_granted() {
    let lock = RangeRwLock::fifo();
    let held = lock.write(0..10);
    let (count, waker) = counting();
    let mut fut = pin!(lock.write_async(5..15));
    assert!(poll(fut.as_mut(), &waker).is_pending());
    assert_eq!(lock.waiting(), 1);
    // A later request that overlaps it queues behind it (FIFO), even a disjoint-from-`held` one.
    assert!(lock.try_write(12..20).is_none());
    assert_eq!(count.0.load(SeqCst), 0);
    drop(held);
    assert_eq!(count.0.load(SeqCst), 1, "the grant wakes the task");
    let Poll::Ready(guard) = poll(fut.as_mut(), &waker) else {
        panic!("granted, but the future is pending")
    };
    assert_eq!(guard.range(), 5..=14);
    assert!(lock.try_read(14..15).is_none());
    drop(guard);
    assert!(!lock.is_locked(..));
}

#[test]
fn an_uncontended_async_request_is_ready_at_the_first_poll() {
    let lock = RangeRwLock::new();
    let (count, waker) = counting();
    let mut fut = pin!(lock.read_async(..));
    let Poll::Ready(guard) = poll(fut.as_mut(), &waker) else {
        panic!("pending on an idle lock")
    };
    assert_eq!(guard.range(), 0..=u64::MAX);
    let mut empty = pin!(lock.write_async(7..7));
    assert!(poll(empty.as_mut(), &waker).is_ready());
    assert_eq!(count.0.load(SeqCst), 0);
}

#[test]
#[should_panic(expected = "polled after it completed")]
fn polling_a_completed_future_panics() {
    let lock = RangeRwLock::new();
    let (_, waker) = counting();
    let mut fut = pin!(lock.write_async(0..1));
    let _g = poll(fut.as_mut(), &waker);
    let _ = poll(fut.as_mut(), &waker);
}

#[test]
fn dropping_a_pending_future_grants_the_requests_that_waited_only_for_it() {
    let lock = RangeRwLock::fifo();
    let held = lock.write(0..10);
    let (first_count, first_waker) = counting();
    let (second_count, second_waker) = counting();
    let mut first = Box::pin(lock.write_async(5..15));
    assert!(poll(first.as_mut(), &first_waker).is_pending());
    // Waits only for `first` (disjoint from `held`).
    let mut second = pin!(lock.write_async(12..20));
    assert!(poll(second.as_mut(), &second_waker).is_pending());
    assert_eq!(lock.waiting(), 2);
    drop(first);
    assert_eq!(
        second_count.0.load(SeqCst),
        1,
        "the second request was woken"
    );
    assert!(poll(second.as_mut(), &second_waker).is_ready());
    assert_eq!(first_count.0.load(SeqCst), 0);
    assert_eq!(lock.waiting(), 0);
    drop(held);
}

#[test]
fn dropping_a_granted_future_before_its_poll_releases_the_range() {
    let lock = RangeRwLock::fifo();
    let held = lock.write(0..10);
    let (count, waker) = counting();
    let mut fut = Box::pin(lock.read_async(0..10));
    assert!(poll(fut.as_mut(), &waker).is_pending());
    drop(held);
    assert_eq!(count.0.load(SeqCst), 1);
    assert!(lock.is_locked(3..4), "granted to the future");
    drop(fut);
    assert!(!lock.is_locked(..));
    assert!(lock.try_write(..).is_some());
}

#[test]
fn a_new_waker_replaces_the_old_one() {
    let lock = RangeRwLock::new();
    let held = lock.write(0..10);
    let (old_count, old) = counting();
    let (new_count, new) = counting();
    let mut fut = pin!(lock.write_async(0..10));
    assert!(poll(fut.as_mut(), &old).is_pending());
    assert!(poll(fut.as_mut(), &new).is_pending());
    drop(held);
    assert_eq!(new_count.0.load(SeqCst), 1);
    assert_eq!(old_count.0.load(SeqCst), 0);
    assert!(poll(fut.as_mut(), &new).is_ready());
}

#[test]
fn a_future_granted_by_another_thread_wakes_its_task() {
    let lock = Arc::new(RangeRwLock::new());
    let held = lock.write_arc(0..100);
    let (count, waker) = counting();
    let mut fut = pin!(lock.write_owned(50..60));
    assert!(poll(fut.as_mut(), &waker).is_pending());
    thread::spawn(move || drop(held)).join().unwrap();
    assert_eq!(count.0.load(SeqCst), 1);
    let Poll::Ready(guard) = poll(fut.as_mut(), &waker) else {
        panic!("not granted")
    };
    // The owned guard is `'static`: it can go to another thread, and be dropped there.
    thread::spawn(move || assert_eq!(guard.range(), 50..=59))
        .join()
        .unwrap();
    assert!(!lock.is_locked(..));
}

#[test]
fn barging_futures_wait_outside_the_queue_and_try_again() {
    let lock = RangeRwLock::barging(Duration::from_secs(3600));
    let held = lock.write(0..10);
    let (count, waker) = counting();
    let mut fut = pin!(lock.write_async(0..10));
    assert!(poll(fut.as_mut(), &waker).is_pending());
    assert_eq!(lock.waiting(), 1);
    // Not queued: a disjoint release does not wake it.
    drop(lock.write(20..30));
    assert_eq!(count.0.load(SeqCst), 0);
    drop(held);
    assert_eq!(count.0.load(SeqCst), 1);
    // A running request passes the notified one before it is polled.
    let passer = lock
        .try_write(0..10)
        .expect("barging passes a notified waiter");
    assert!(
        poll(fut.as_mut(), &waker).is_pending(),
        "passed: waits again"
    );
    drop(passer);
    assert_eq!(count.0.load(SeqCst), 2);
    assert!(poll(fut.as_mut(), &waker).is_ready());
}

/// Barging: a release wakes one of three writers waiting for one range (the others are covered
/// by it, and its holder's releases stay on the fast path), then the next once the first has
/// held and released the range. `waiting` counts the covered ones all along.
#[test]
fn a_release_wakes_one_writer_of_a_range_and_the_next_after_it() {
    let lock = RangeRwLock::barging(Duration::from_secs(3600));
    let held = lock.write(0..10);
    let wakers: Vec<_> = (0..3).map(|_| counting()).collect();
    let mut futs: Vec<_> = (0..3).map(|_| Box::pin(lock.write_async(0..10))).collect();
    for (fut, (_, waker)) in futs.iter_mut().zip(&wakers) {
        assert!(poll(fut.as_mut(), waker).is_pending());
    }
    assert_eq!(lock.waiting(), 3);
    let woken = || {
        wakers
            .iter()
            .map(|(c, _)| c.0.load(SeqCst))
            .collect::<Vec<_>>()
    };
    drop(held);
    assert_eq!(woken(), [1, 0, 0], "one writer is woken");
    assert_eq!(lock.waiting(), 2, "the covered writers still wait");
    // The holder takes the range again and lets it go: nobody else is woken meanwhile.
    drop(lock.write(0..10));
    assert_eq!(woken(), [1, 0, 0]);
    let first = poll(futs[0].as_mut(), &wakers[0].1);
    assert!(first.is_ready());
    drop(first);
    assert_eq!(woken(), [1, 1, 0], "the next writer is woken");
    assert_eq!(lock.waiting(), 1);
    drop(futs);
    assert_eq!(
        woken(),
        [1, 1, 1],
        "a dropped woken future passes the notification on"
    );
    assert_eq!(lock.waiting(), 0);
    assert!(!lock.is_locked(..));
}

/// A barging future dropped while it waits outside the queue takes its node out of the list
/// (else the next release would touch freed memory; miri runs this too).
#[test]
fn a_dropped_barging_future_leaves_the_outside_list() {
    let lock = RangeRwLock::barging(Duration::from_secs(3600));
    let held = lock.write(0..10);
    let (count, waker) = counting();
    {
        let mut fut = Box::pin(lock.read_async(5..6));
        assert!(poll(fut.as_mut(), &waker).is_pending());
        assert_eq!(lock.waiting(), 1);
    }
    assert_eq!(lock.waiting(), 0, "the dropped future is still listed");
    drop(held);
    assert_eq!(count.0.load(SeqCst), 0, "a dropped future was woken");
    assert!(!lock.is_locked(..));
}

#[test]
fn arc_guards_keep_the_lock_alive_and_downgrade_atomically() {
    let lock = Arc::new(RangeRwLock::new());
    let w = lock.write_arc(0..10);
    assert!(lock.try_write_arc(5..6).is_none());
    assert!(lock.try_read_arc(5..6).is_none());
    let weak = Arc::downgrade(&lock);
    drop(lock);
    assert!(weak.upgrade().is_some(), "the guard keeps the lock");
    let r = w.downgrade();
    let lock = weak.upgrade().unwrap();
    assert!(lock.try_read_arc(5..6).is_some());
    assert!(lock.try_write_arc(5..6).is_none());
    drop(lock);
    drop(r);
    assert!(weak.upgrade().is_none(), "the last guard let the lock go");
}

#[test]
fn a_set_takes_one_queue_position_and_holds_nothing_while_it_waits() {
    let lock = RangeRwLock::fifo();
    let a = lock.write(0..3);
    let set = RangeSet::new().write(2..6).write(10..11);
    let (count, waker) = counting();
    let mut fut = pin!(lock.lock_set_async(&set));
    assert!(poll(fut.as_mut(), &waker).is_pending());
    // It holds none of its ranges while it waits for 2..3 ...
    assert!(!lock.is_locked(3..6) && !lock.is_locked(10..11));
    // ... but later conflicting requests queue behind it, on any of its ranges.
    assert!(lock.try_write(10..11).is_none());
    assert!(lock.try_read(4..5).is_none());
    assert_eq!(lock.waiting(), 1);
    drop(a);
    assert_eq!(count.0.load(SeqCst), 1);
    let Poll::Ready(guard) = poll(fut.as_mut(), &waker) else {
        panic!("not granted")
    };
    assert!(lock.is_locked(10..11) && lock.is_locked(2..3));
    drop(guard);
    assert!(!lock.is_locked(..));
}

#[test]
fn the_ascending_order_deadlock_does_not_happen_with_a_set() {
    // Thread 1 wants 0..=2 and 3..=5; thread 2 wants 0..=3. Taken one at a time, thread 1
    // can hold 0..=2 while thread 2 queues for 0..=3 and thread 1's 3..=5 queues behind it.
    let lock = Arc::new(RangeRwLock::new());
    let set = RangeSet::new().write(0..=2).write(3..=5);
    let both = lock.lock_set(&set);
    let other = thread::spawn({
        let lock = lock.clone();
        move || lock.write(0..=3).range()
    });
    wait_for_waiting(&lock, 1);
    drop(both);
    assert_eq!(other.join().unwrap(), 0..=3);
}

#[test]
fn try_lock_set_fails_whole_and_an_empty_set_holds_nothing() {
    let lock = RangeRwLock::new();
    let _held = lock.read(5..6);
    let set = RangeSet::new().write(0..1).write(5..6);
    assert!(lock.try_lock_set(&set).is_none());
    assert!(!lock.is_locked(0..1));
    let reads = RangeSet::new().read(0..1).read(5..6);
    let g = lock.try_lock_set(&reads).expect("readers share");
    assert!(lock.try_write(0..1).is_none());
    drop(g);
    assert!(lock.try_write(0..1).is_some());
    let empty = RangeSet::new().write(3..3);
    let e = lock.lock_set(&empty);
    assert!(e.set().is_empty());
    assert!(lock.try_write(..5).is_some());
}

#[test]
fn a_waiting_set_request_is_granted_when_its_last_conflict_leaves() {
    let lock = Arc::new(RangeRwLock::fifo());
    let left = lock.write_arc(0..10);
    let right = lock.read_arc(100..110);
    let set = Arc::new(RangeSet::new().write(5..7).write(105..107).read(50..60));
    let (count, waker) = counting();
    let mut fut = pin!(lock.lock_set_async(&set));
    assert!(poll(fut.as_mut(), &waker).is_pending());
    drop(left);
    assert!(
        poll(fut.as_mut(), &waker).is_pending(),
        "still blocked by `right`"
    );
    assert_eq!(count.0.load(SeqCst), 0);
    drop(right);
    assert_eq!(count.0.load(SeqCst), 1);
    let Poll::Ready(guard) = poll(fut.as_mut(), &waker) else {
        panic!("not granted")
    };
    assert!(lock.try_read(106..107).is_none());
    assert!(lock.try_read(55..56).is_some());
    assert!(lock.try_write(55..56).is_none());
    drop(guard);
    assert!(!lock.is_locked(..));
}

#[test]
fn set_ranges_merge_overlaps_and_keep_the_stronger_mode() {
    let set = RangeSet::new()
        .read(10..20)
        .write(15..16)
        .read(0..5)
        .read(4..8)
        .read(30..30);
    assert_eq!(
        set.ranges().collect::<Vec<_>>(),
        [(0..=7, false), (10..=19, true)]
    );
    assert_eq!(format!("{set:?}"), "[read 0..=7, write 10..=19]");
}

#[test]
fn futures_and_owned_guards_are_send_and_static() {
    fn send<T: Send>(_: &T) {}
    fn is_static<T: 'static>(_: &T) {}
    fn owned<T: Send + Sync + 'static>(_: &T) {}
    let lock = Arc::new(RangeRwLock::new());
    let set = RangeSet::new();
    send(&lock.read_async(0..1));
    send(&lock.write_async(0..1));
    send(&lock.lock_set_async(&set));
    let f = lock.write_owned(0..1);
    send(&f);
    is_static(&f);
    owned(&lock.read_arc(0..1));
    owned(&lock.write_arc(0..1));
}

// ---- User code that panics: wakers ---------------------------------------------------------

/// A waker whose `wake` panics.
struct PanicOnWake;

impl Wake for PanicOnWake {
    fn wake(self: Arc<Self>) {
        panic!("this waker panics when woken");
    }
}

/// A waker whose `clone` panics (and whose other functions do nothing).
fn panics_when_cloned() -> Waker {
    use core::task::{RawWaker, RawWakerVTable};
    fn clone(_: *const ()) -> RawWaker {
        panic!("this waker panics when cloned");
    }
    fn noop(_: *const ()) {}
    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, noop, noop, noop);
    // SAFETY: every function of the table accepts any data pointer (none is dereferenced).
    unsafe { Waker::from_raw(RawWaker::new(core::ptr::null(), &VTABLE)) }
}

/// Receives within a generous limit, so that a stranded waiter fails the test, not hangs it.
fn within(rx: &std::sync::mpsc::Receiver<()>, what: &str) {
    rx.recv_timeout(std::time::Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("{what} was never granted"));
}

#[test]
fn a_waker_that_panics_when_woken_strands_no_other_granted_waiter() {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::mpsc;
    // Plain threads, not scoped ones: a stranded reader must fail the test, not hang it.
    let lock = Arc::new(RangeRwLock::new());
    let held = lock.write(0..10);
    let (tx, rx) = mpsc::channel();
    let reader = |lock: Arc<RangeRwLock>, tx: mpsc::Sender<()>| {
        thread::spawn(move || {
            drop(lock.read(0..10));
            tx.send(()).unwrap();
        })
    };
    // Blocking readers queued before and after the async reader: whichever order the release
    // wakes them in, one comes after the panicking waker.
    let first = reader(lock.clone(), tx.clone());
    wait_for_waiting(&lock, 1);
    let mut fut = pin!(lock.read_async(0..10));
    let panicky = Waker::from(Arc::new(PanicOnWake));
    assert!(poll(fut.as_mut(), &panicky).is_pending());
    let second = reader(lock.clone(), tx);
    wait_for_waiting(&lock, 3);

    // The waker's panic reaches the releasing thread, after the release is complete.
    let released = catch_unwind(AssertUnwindSafe(|| drop(held)));
    assert!(released.is_err(), "the waker's panic is not swallowed");
    within(&rx, "the first blocking reader");
    within(&rx, "the second blocking reader");
    first.join().unwrap();
    second.join().unwrap();
    let (_, waker) = counting();
    let Poll::Ready(guard) = poll(fut.as_mut(), &waker) else {
        panic!("the async reader was granted but is pending");
    };
    drop(guard);
    assert!(lock.try_write(0..10).is_some(), "nothing is left locked");
}

#[test]
fn a_waker_that_panics_when_cloned_loses_no_notification() {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    // A short window: both requests below have waited past it when `a` is polled again.
    let lock = RangeRwLock::barging(std::time::Duration::from_millis(20));
    let held = lock.write(0..10);
    let (a_count, a_waker) = counting();
    let (b_count, b_waker) = counting();
    let mut a = Box::pin(lock.write_async(0..10));
    let mut b = pin!(lock.write_async(0..10));
    assert!(poll(a.as_mut(), &a_waker).is_pending());
    assert!(poll(b.as_mut(), &b_waker).is_pending());
    drop(held);
    // `a` is told; `b`, a writer over the same range, relies on `a` to pass it on.
    assert_eq!(a_count.0.load(SeqCst), 1);
    assert_eq!(b_count.0.load(SeqCst), 0);

    thread::sleep(std::time::Duration::from_millis(40));
    let polled = catch_unwind(AssertUnwindSafe(|| {
        let _ = poll(a.as_mut(), &panics_when_cloned());
    }));
    assert!(polled.is_err(), "the waker's panic reaches the poll");
    // Cancelled after the panic, `a` passes its notification on to `b`.
    drop(a);
    assert_eq!(b_count.0.load(SeqCst), 1, "b was never told that a left");
    let Poll::Ready(guard) = poll(b.as_mut(), &b_waker) else {
        panic!("b is pending on a free range");
    };
    drop(guard);
    assert!(!lock.is_locked(..));
}

/// A waker whose clones panic when dropped (the original does not).
fn clones_panic_when_dropped() -> Waker {
    use core::task::{RawWaker, RawWakerVTable};
    fn clone(_: *const ()) -> RawWaker {
        RawWaker::new(core::ptr::dangling(), &VTABLE)
    }
    fn noop(_: *const ()) {}
    fn drop(data: *const ()) {
        assert!(data.is_null(), "a clone of this waker panics when dropped");
    }
    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, noop, noop, drop);
    // SAFETY: no function of the table dereferences the data pointer.
    unsafe { Waker::from_raw(RawWaker::new(core::ptr::null(), &VTABLE)) }
}

#[test]
fn a_waker_that_panics_when_dropped_after_a_grant_leaves_nothing_locked() {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    for barging in [false, true] {
        let lock = if barging {
            RangeRwLock::barging(std::time::Duration::from_secs(60))
        } else {
            RangeRwLock::fifo()
        };
        let held = lock.write(0..10);
        let (_, waker) = counting();
        let mut fut = Box::pin(lock.write_async(0..10));
        assert!(poll(fut.as_mut(), &waker).is_pending());
        drop(held); // grants it (FIFO) or tells it to try again (barging)
        let panicky = clones_panic_when_dropped();
        let polled = catch_unwind(AssertUnwindSafe(|| {
            let _ = poll(fut.as_mut(), &panicky);
        }));
        // FIFO: the grant is read without the waker; barging: the left-over clone panics.
        assert_eq!(polled.is_err(), barging);
        drop(fut);
        assert!(
            !lock.is_locked(..),
            "a range held with no guard (barging: {barging})"
        );
    }
}

#[test]
fn a_waker_that_polls_its_task_inline_does_not_hang_the_release() {
    use std::sync::{mpsc, Mutex};
    type Owned = core::pin::Pin<Box<OwnedReadFuture>>;
    /// Polls another future of the same lock from inside `wake`, as an executor that runs a
    /// task as soon as it is woken would.
    struct PollsOther(Arc<Mutex<Option<Owned>>>);
    impl Wake for PollsOther {
        fn wake(self: Arc<Self>) {
            let (_, waker) = counting();
            let mut slot = self.0.lock().unwrap();
            if let Some(fut) = slot.as_mut() {
                if poll(fut.as_mut(), &waker).is_ready() {
                    *slot = None; // done, and its guard released
                }
            }
        }
    }
    let lock = Arc::new(RangeRwLock::new());
    let held = lock.write_arc(0..10);
    let a = Arc::new(Mutex::new(Some(Box::pin(lock.read_owned(0..10)))));
    let b = Arc::new(Mutex::new(Some(Box::pin(lock.read_owned(0..10)))));
    let wakes_a = Waker::from(Arc::new(PollsOther(b.clone())));
    let wakes_b = Waker::from(Arc::new(PollsOther(a.clone())));
    for (fut, waker) in [(&a, &wakes_a), (&b, &wakes_b)] {
        let mut fut = fut.lock().unwrap();
        assert!(poll(fut.as_mut().unwrap().as_mut(), waker).is_pending());
    }
    // One release grants both; waking the first polls the second, still in the wake list.
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        drop(held);
        tx.send(()).unwrap();
    });
    rx.recv_timeout(std::time::Duration::from_secs(20))
        .expect("the release never returned");
    for fut in [a, b] {
        let (_, waker) = counting();
        if let Some(fut) = fut.lock().unwrap().as_mut() {
            assert!(poll(fut.as_mut(), &waker).is_ready());
        }
    }
    assert!(!lock.is_locked(..));
}
