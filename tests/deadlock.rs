//! Deadlock detection (feature `deadlock_detection`): cycles are reported as they are, between
//! threads and between tasks, on one lock or several, and only then; a thread that requests a
//! range conflicting with one it holds panics at once.
//!
//! Deadlocked threads stay blocked until the test process exits, and their cycles stay in the
//! registry: every test looks only at the cycles on its own locks.
#![cfg(all(feature = "deadlock_detection", not(rangelock_loom)))]

use rangelock::deadlock::{check_deadlock, DeadlockedThread, LockId};
use rangelock::{RangeRwLock, RangeSet};
use std::future::Future;
use std::panic::catch_unwind;
use std::pin::pin;
use std::sync::mpsc;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

/// The cycles in which some member waits on one of `locks`.
fn cycles_on(locks: &[&RangeRwLock]) -> Vec<Vec<DeadlockedThread>> {
    let ids: Vec<LockId> = locks.iter().map(|l| LockId::of(l)).collect();
    check_deadlock()
        .into_iter()
        .filter(|cycle| cycle.iter().any(|t| ids.contains(&t.lock())))
        .collect()
}

/// Waits (up to a minute) until `check` finds a cycle on `locks`; returns them all.
fn wait_for_cycles(locks: &[&RangeRwLock]) -> Vec<Vec<DeadlockedThread>> {
    let began = Instant::now();
    loop {
        let cycles = cycles_on(locks);
        if !cycles.is_empty() {
            return cycles;
        }
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "no cycle found on the locks"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// Spins until a `try_` request for `range` fails: something (granted or queued) is ahead.
fn until_taken(lock: &RangeRwLock, range: std::ops::RangeInclusive<u64>) {
    while let Some(g) = lock.try_read(range.clone()) {
        drop(g);
        thread::yield_now();
    }
}

/// The example: one thread holds 0..=2; a second asks for 0..=3 and queues; the first
/// then asks for 3..=5 and queues behind the second. (On a strict FIFO lock; a barging lock
/// finds it too, one hand-off time later, once the second request has queued.)
#[test]
fn the_ascending_order_example_is_one_cycle_of_two_threads() {
    let lock: &'static RangeRwLock = Box::leak(Box::new(RangeRwLock::fifo()));
    let (first_id, second_id) = (mpsc::channel(), mpsc::channel());
    thread::spawn(move || {
        first_id.0.send(thread::current().id()).unwrap();
        let _held = lock.write(0..=2);
        until_taken(lock, 3..=3); // the second thread has queued for 0..=3
        let _more = lock.write(3..=5);
        unreachable!("deadlocked");
    });
    thread::spawn(move || {
        second_id.0.send(thread::current().id()).unwrap();
        while !lock.is_locked(0..=2) {
            thread::yield_now();
        }
        drop(lock.write(0..=3));
        unreachable!("deadlocked");
    });
    let (first_id, second_id) = (first_id.1.recv().unwrap(), second_id.1.recv().unwrap());

    let cycles = wait_for_cycles(&[lock]);
    for t in cycles.iter().flatten() {
        eprintln!("{t}");
    }
    assert_eq!(cycles.len(), 1, "one cycle");
    let cycle = &cycles[0];
    assert_eq!(cycle.len(), 2, "of two threads");
    let first = cycle.iter().find(|t| t.thread_id() == first_id).unwrap();
    let second = cycle.iter().find(|t| t.thread_id() == second_id).unwrap();
    assert_eq!(first.requested(), 3..=5);
    assert_eq!(second.requested(), 0..=3);
    assert_eq!(first.lock(), LockId::of(lock));
    assert_eq!(first.held().len(), 1);
    assert_eq!(first.held()[0].range(), 0..=2);
    assert_eq!(first.held()[0].lock(), LockId::of(lock));
    assert!(first.held()[0].is_exclusive());
    assert!(second.held().is_empty(), "the second thread holds nothing");
    assert_eq!(first.task(), None);
    // The report names the lock, the ranges, the modes and where each was taken.
    let report = first.to_string();
    for needed in [
        "write 3..=5",
        "behind write 0..=3",
        "holds write 0..=2",
        &LockId::of(lock).to_string(),
        "tests/deadlock.rs",
    ] {
        assert!(report.contains(needed), "{needed:?} not in {report:?}");
    }
    assert!(second.to_string().contains("behind write 0..=2"));
}

/// Two threads, two locks, each holding what the other asks for.
#[test]
fn a_cycle_across_two_locks_is_found_with_what_each_holds() {
    let a: &'static RangeRwLock = Box::leak(Box::new(RangeRwLock::new()));
    let b: &'static RangeRwLock = Box::leak(Box::new(RangeRwLock::new()));
    let both = Arc::new(std::sync::Barrier::new(2));
    for (mine, theirs) in [(a, b), (b, a)] {
        let both = both.clone();
        thread::spawn(move || {
            let _held = mine.read(10..20);
            both.wait();
            let _other = theirs.write(15..16);
            unreachable!("deadlocked");
        });
    }
    let cycles = wait_for_cycles(&[a, b]);
    assert_eq!(cycles.len(), 1);
    let cycle = &cycles[0];
    assert_eq!(cycle.len(), 2);
    for t in cycle {
        assert_eq!(t.requested(), 15..=15);
        let held = t.held();
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].range(), 10..=19);
        assert!(!held[0].is_exclusive());
        assert_ne!(held[0].lock(), t.lock(), "held on the other lock");
    }
}

/// A waiter behind a holder that waits for nothing is not deadlocked; nor is a cycle through a
/// request with a deadline, which gives up in time (and then the others go on).
#[test]
fn no_cycle_without_one_and_none_through_a_timed_request() {
    let lock = Arc::new(RangeRwLock::new());
    let held = lock.write(0..10);
    let waiter = thread::spawn({
        let lock = lock.clone();
        move || drop(lock.write(5..6))
    });
    until_taken(&lock, 5..=5);
    thread::sleep(Duration::from_millis(20));
    assert!(cycles_on(&[&lock]).is_empty(), "a plain wait is no cycle");
    drop(held);
    waiter.join().unwrap();

    // Thread A holds 0..10 and asks for 20..30 with a deadline; thread B holds 20..30 and asks
    // for 0..10 without one.
    let (a_holds, b_holds) = (mpsc::channel(), mpsc::channel());
    let a = thread::spawn({
        let lock = lock.clone();
        move || {
            let _held = lock.write(0..10);
            a_holds.0.send(()).unwrap();
            b_holds.1.recv().unwrap();
            until_taken(&lock, 5..=5); // B has queued for 0..10
            lock.try_write_for(20..30, Duration::from_millis(300))
                .is_some()
        }
    });
    let b = thread::spawn({
        let lock = lock.clone();
        move || {
            let _held = lock.write(20..30);
            b_holds.0.send(()).unwrap();
            a_holds.1.recv().unwrap();
            drop(lock.write(0..10));
        }
    });
    thread::sleep(Duration::from_millis(100));
    assert!(
        cycles_on(&[&lock]).is_empty(),
        "a timed request is never deadlocked"
    );
    assert!(!a.join().unwrap(), "A timed out");
    b.join().unwrap();
    assert!(!lock.is_locked(..));
}

/// A set waits for whatever blocks any of its ranges: here only its second range is blocked.
#[test]
fn a_set_waits_for_what_blocks_any_of_its_ranges() {
    let lock: &'static RangeRwLock = Box::leak(Box::new(RangeRwLock::new()));
    let set: &'static RangeSet = Box::leak(Box::new(RangeSet::new().write(0..5).write(100..105)));
    let go = Arc::new(std::sync::Barrier::new(2));
    thread::spawn({
        let go = go.clone();
        move || {
            let _held = lock.write(100..200);
            go.wait();
            until_taken(lock, 0..=0); // the set has queued
            drop(lock.write(0..1));
            unreachable!("deadlocked");
        }
    });
    thread::spawn(move || {
        go.wait();
        let _set = lock.lock_set(set);
        unreachable!("deadlocked");
    });
    let cycles = wait_for_cycles(&[lock]);
    let cycle = &cycles[0];
    assert_eq!(cycle.len(), 2);
    let set_member = cycle.iter().find(|t| t.held().is_empty()).unwrap();
    assert_eq!(set_member.requested(), 100..=104);
    let holder = cycle.iter().find(|t| !t.held().is_empty()).unwrap();
    assert_eq!(holder.requested(), 0..=0);
    assert_eq!(holder.held()[0].range(), 100..=199);
}

struct Noop;

impl Wake for Noop {
    fn wake(self: Arc<Self>) {}
}

fn poll<F: Future>(f: std::pin::Pin<&mut F>, waker: &Waker) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(waker))
}

/// The ascending-order example between two tasks (futures polled by hand, each with its own
/// waker); dropping one future breaks the cycle, and the report forgets it.
#[test]
fn a_cycle_between_tasks_is_reported_until_a_future_is_dropped() {
    let lock = RangeRwLock::fifo();
    let (task1, task2) = (Waker::from(Arc::new(Noop)), Waker::from(Arc::new(Noop)));
    let Poll::Ready(held) = poll(pin!(lock.write_async(0..=2)), &task1) else {
        panic!("free")
    };
    let mut second = Box::pin(lock.write_async(0..=3));
    assert!(poll(second.as_mut(), &task2).is_pending());
    let mut more = Box::pin(lock.write_async(3..=5));
    assert!(poll(more.as_mut(), &task1).is_pending());

    let cycles = cycles_on(&[&lock]);
    assert_eq!(cycles.len(), 1);
    let cycle = &cycles[0];
    assert_eq!(cycle.len(), 2);
    for t in cycle {
        assert_eq!(t.thread_id(), thread::current().id(), "polled here");
    }
    let first = cycle.iter().find(|t| t.requested() == (3..=5)).unwrap();
    assert_eq!(first.task(), Some(task1.data() as usize));
    assert_eq!(first.held()[0].range(), 0..=2);
    let report = first.to_string();
    assert!(
        report.contains("waits in a future made at tests/deadlock.rs"),
        "{report}"
    );

    drop(more); // task 1 gives up its request: no cycle any more
    assert!(cycles_on(&[&lock]).is_empty());
    drop(held);
    assert!(poll(second.as_mut(), &task2).is_ready());
}

/// A task's futures in one `join!` may wait for each other's ranges and still finish: a task
/// never waits for itself in the graph, and never panics.
#[test]
fn a_task_is_not_its_own_deadlock() {
    let lock = RangeRwLock::new();
    let task = Waker::from(Arc::new(Noop));
    let Poll::Ready(held) = poll(pin!(lock.write_async(0..10)), &task) else {
        panic!("free")
    };
    let mut again = Box::pin(lock.write_async(5..6));
    assert!(poll(again.as_mut(), &task).is_pending());
    assert!(cycles_on(&[&lock]).is_empty());
    drop(held);
    assert!(poll(again.as_mut(), &task).is_ready());
}

/// Runs `f` on a thread of its own and returns what it returned; fails if it is still
/// running after 10 s (a request that should have panicked waits for ever instead).
fn within_10_s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || tx.send(f()).unwrap());
    rx.recv_timeout(Duration::from_secs(10))
        .expect("still waiting after 10 s: deadlocked instead of panicking")
}

/// The message of a panic caught by `catch_unwind`.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    match (
        payload.downcast_ref::<String>(),
        payload.downcast_ref::<&str>(),
    ) {
        (Some(s), _) => s.clone(),
        (None, Some(s)) => (*s).to_string(),
        (None, None) => "(not a string)".to_string(),
    }
}

#[test]
fn a_thread_that_requests_a_range_it_holds_panics() {
    let caught = within_10_s(|| {
        catch_unwind(|| {
            let lock = RangeRwLock::new();
            let _held = lock.write(0..10);
            let _again = lock.write(5..6);
        })
        .map_err(|p| panic_message(&*p))
    });
    let message = caught.expect_err("no panic");
    assert!(
        message.starts_with("range lock: this thread requests write 5..=5"),
        "{message}"
    );
}

/// The panic names both ranges and where each was requested, and leaves the lock as it was:
/// on a strict lock and on a barging one (whose request would first wait outside the queue),
/// with the holders in the fast path's slots and with more holders than slots (in the queue),
/// for single ranges and sets.
#[test]
fn the_same_thread_panic_names_both_ranges_and_leaves_the_lock_consistent() {
    within_10_s(the_same_thread_panic_cases);
}

fn the_same_thread_panic_cases() {
    for lock in [
        RangeRwLock::new(),
        RangeRwLock::barging(Duration::from_secs(3600)),
    ] {
        for queued in [false, true] {
            let held = lock.read(0..10);
            // Holders that conflict with nothing; three do not fit in the slots.
            let other = lock.read(50..60);
            let third = queued.then(|| lock.read(70..80));
            let single = catch_unwind(|| drop(lock.write(5..15))).unwrap_err();
            let message = panic_message(&*single);
            assert!(
                message.contains("requests write 5..=14 (at tests/deadlock.rs")
                    && message.contains("conflicts with read 0..=9")
                    && message.contains("(taken at tests/deadlock.rs"),
                "{message}"
            );
            let set = RangeSet::new().write(20..30).write(8..9);
            let caught = catch_unwind(|| drop(lock.lock_set(&set))).unwrap_err();
            let message = panic_message(&*caught);
            assert!(message.contains("requests write 8..=8"), "{message}");
            // Readers share: no panic. The lock is as it was.
            drop(lock.read(5..6));
            assert!(lock.try_write(0..1).is_none());
            drop((held, other, third));
            assert!(!lock.is_locked(..));
            assert_eq!(lock.waiting(), 0);
            assert!(lock.try_write(..).is_some());
        }
    }
}

/// Ranges held through owned guards may have moved to another thread that will release them:
/// a request that conflicts with one waits as usual. Timed requests do not panic either.
#[test]
fn owned_guards_and_timed_requests_do_not_panic() {
    let lock = Arc::new(RangeRwLock::new());
    let guard = lock.write_arc(0..10);
    let helper = thread::spawn(move || {
        thread::sleep(Duration::from_millis(30));
        drop(guard);
    });
    drop(lock.write(5..6)); // waits for the helper's release
    helper.join().unwrap();

    let held = lock.write(0..10);
    assert!(lock.try_write_for(5..6, Duration::from_millis(5)).is_none());
    assert!(lock.try_write(5..6).is_none());
    drop(held);
}
