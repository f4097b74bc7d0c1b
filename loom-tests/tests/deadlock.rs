//! loom models of the deadlock detector's bookkeeping (feature `deadlock_detection`): a grant,
//! a queueing and a move of a holder into the queue, each racing the detector's snapshot.
//! Run with `RUSTFLAGS="--cfg rangelock_loom" cargo test -p loom-tests --release --features
//! deadlock_detection --test deadlock`.
#![cfg(all(rangelock_loom, feature = "deadlock_detection"))]

use loom::sync::Arc;
use loom::thread;
use loom_tests::model;
use rangelock::deadlock::{check_deadlock, DeadlockedThread, LockId};
use rangelock::RangeRwLock;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Wake, Waker};

/// A waker that does nothing: each is a task of its own (its address names it).
struct Task;

impl Wake for Task {
    fn wake(self: std::sync::Arc<Self>) {}
}

fn task() -> Waker {
    Waker::from(std::sync::Arc::new(Task))
}

fn poll<F: Future>(fut: Pin<&mut F>, waker: &Waker) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(waker))
}

/// The cycles in which some member waits on `lock`.
fn cycles_on(lock: &RangeRwLock) -> Vec<Vec<DeadlockedThread>> {
    let id = LockId::of(lock);
    check_deadlock()
        .into_iter()
        .filter(|cycle| cycle.iter().any(|t| t.lock() == id))
        .collect()
}

/// A task holds a range of lock `b` that a thread waits for; the task releases it (granting
/// the thread) and then waits on lock `a` behind the thread, which holds it. Whatever the
/// order of the grant, the task's new request and the detector's snapshot, there is no cycle:
/// by the time the task waits for the thread, the thread no longer waits for the task.
#[test]
fn a_grant_racing_the_snapshot_makes_no_false_cycle() {
    model(|| {
        let (a, b) = (Arc::new(RangeRwLock::fifo()), Arc::new(RangeRwLock::fifo()));
        let x = task();
        let Poll::Ready(k) = poll(Box::pin(b.write_async(0..1)).as_mut(), &x) else {
            panic!("nothing else holds b yet")
        };
        let thread = {
            let (a, b) = (a.clone(), b.clone());
            thread::spawn(move || {
                let g = a.write(0..1);
                drop(b.write(0..1)); // behind `k`, if it is still held
                drop(g);
            })
        };
        drop(k); // grants the thread's request on b, if it waits
        let mut f = Box::pin(a.write_async(0..1)); // behind `g`, if the thread holds it
        if poll(f.as_mut(), &x).is_pending() {
            if let Some(cycle) = check_deadlock().first() {
                let report: Vec<String> = cycle.iter().map(ToString::to_string).collect();
                panic!("a false cycle:\n{}", report.join("\n"));
            }
        }
        drop(f);
        thread.join().unwrap();
    });
}

/// The ascending-order example between two tasks: task 1 holds 0..=2 (in a slot of
/// the fast path), task 2 queues for 0..=3 (which moves task 1's range into the queue), and
/// task 1 asks for 3..=5. A detector racing that last step sees nothing or the whole cycle,
/// with what task 1 holds; once the step is done it sees the cycle.
#[test]
fn a_cycle_closing_while_the_detector_looks_is_seen_whole_or_not_at_all() {
    model(|| {
        let lock = Arc::new(RangeRwLock::fifo());
        let (one, two) = (task(), task());
        let Poll::Ready(held) = poll(Box::pin(lock.write_async(0..=2)).as_mut(), &one) else {
            panic!("free")
        };
        let mut second = Box::pin(lock.write_async(0..=3));
        assert!(poll(second.as_mut(), &two).is_pending());
        let watcher = {
            let lock = lock.clone();
            thread::spawn(move || cycles_on(&lock).len())
        };
        let mut more = Box::pin(lock.write_async(3..=5));
        assert!(poll(more.as_mut(), &one).is_pending());
        assert!(watcher.join().unwrap() <= 1);
        let cycles = cycles_on(&lock);
        assert_eq!(cycles.len(), 1, "the cycle is found");
        let first = cycles[0].iter().find(|t| t.requested() == (3..=5));
        let first = first.expect("task 1 is in the cycle");
        assert_eq!(first.task(), Some(one.data() as usize));
        assert_eq!(first.held().len(), 1, "with what it holds");
        assert_eq!(first.held()[0].range(), 0..=2);
        drop(more);
        drop(held);
        assert!(poll(second.as_mut(), &two).is_ready());
    });
}
