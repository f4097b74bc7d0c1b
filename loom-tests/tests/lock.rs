//! loom models of `RangeRwLock`. Run with
//! `RUSTFLAGS="--cfg rangelock_loom" cargo test -p loom-tests --release`.
//!
//! A model that deadlocks (a waiter never woken) fails with loom's deadlock report; one that
//! lets two conflicting guards touch the same data at once fails on the `UnsafeCell` access.
#![cfg(rangelock_loom)]

use loom::sync::atomic::{AtomicBool, Ordering::SeqCst};
use loom::sync::{Arc, Mutex};
use loom::thread;
use loom_tests::{model, Shared};
use rangelock::RangeRwLock;
use std::time::Duration;

/// Waits (yielding to loom) until `n` requests are queued and not granted.
fn until_waiting(lock: &RangeRwLock, n: usize) {
    while lock.waiting() < n {
        thread::yield_now();
    }
}

#[test]
fn two_readers_share_an_overlapping_range() {
    model(|| {
        let lock = Arc::new(RangeRwLock::new());
        let mine = lock.read(0..10);
        let other = {
            let lock = lock.clone();
            thread::spawn(move || lock.read(5..15).range())
        };
        // Joined while `mine` is held: a second reader that waited would deadlock here.
        assert_eq!(other.join().unwrap(), 5..=14);
        drop(mine);
    });
}

#[test]
fn a_writer_excludes_overlapping_readers_and_writers() {
    model(|| {
        let lock = Arc::new(RangeRwLock::new());
        let data = Shared::new();
        let writer = {
            let (lock, data) = (lock.clone(), data.clone());
            thread::spawn(move || {
                let _w = lock.write(5..15);
                data.bump();
            })
        };
        let reader = {
            let (lock, data) = (lock.clone(), data.clone());
            thread::spawn(move || {
                let _r = lock.read(5..6);
                data.get()
            })
        };
        {
            let _w = lock.write(0..6);
            data.bump();
        }
        writer.join().unwrap();
        let seen = reader.join().unwrap();
        assert!(seen <= 2);
        assert_eq!(data.get(), 2);
        assert!(!lock.is_locked(..));
    });
}

#[test]
fn disjoint_writers_both_proceed() {
    model(|| {
        let lock = Arc::new(RangeRwLock::new());
        let left = Shared::new();
        let right = Shared::new();
        let held = lock.write(0..10);
        // Every fast-path slot taken: the other writer goes through the tree.
        let elsewhere = lock.write(30..40);
        left.bump();
        let other = {
            let (lock, right) = (lock.clone(), right.clone());
            thread::spawn(move || {
                let _w = lock.write(10..20);
                right.bump();
            })
        };
        // Joined while `held` is held: a disjoint writer that waited would deadlock here.
        other.join().unwrap();
        drop((held, elsewhere));
        assert_eq!(left.get() + right.get(), 2);
    });
}

#[test]
fn three_conflicting_requests_are_granted_in_arrival_order() {
    model(|| {
        let lock = Arc::new(RangeRwLock::fifo());
        let order = Arc::new(Mutex::new(Vec::new()));
        let gate = lock.write(0..10);
        let mut threads = Vec::new();
        for i in 0..3u32 {
            let (lock2, order) = (lock.clone(), order.clone());
            threads.push(thread::spawn(move || {
                // A writer, then a reader, then a writer: the reader must not pass either.
                if i == 1 {
                    let _g = lock2.read(5..6);
                    order.lock().unwrap().push(i);
                } else {
                    let _g = lock2.write(0..10);
                    order.lock().unwrap().push(i);
                }
            }));
            until_waiting(&lock, i as usize + 1);
        }
        drop(gate);
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), [0, 1, 2]);
    });
}

#[test]
fn a_release_wakes_the_waiter_it_unblocks_and_no_other() {
    model(|| {
        let lock = Arc::new(RangeRwLock::fifo());
        let first = lock.write(0..10);
        let second = lock.write(10..20);
        let got_second = Arc::new(AtomicBool::new(false));
        let a = {
            let lock = lock.clone();
            thread::spawn(move || drop(lock.write(0..5)))
        };
        let b = {
            let (lock, got) = (lock.clone(), got_second.clone());
            thread::spawn(move || {
                let _g = lock.write(5..15);
                got.store(true, SeqCst);
            })
        };
        until_waiting(&lock, 2);
        drop(first);
        // `a` waited only for `first`: it must have been woken.
        a.join().unwrap();
        // `b` still waits for `second`.
        assert!(!got_second.load(SeqCst));
        drop(second);
        b.join().unwrap();
        assert!(got_second.load(SeqCst));
    });
}

/// A strict FIFO waiter next in line watches for its grant before it parks, with a bit that
/// tells the releasing thread not to wake it; a release racing each step of the watch (the bit
/// set, the look, the bit cleared, the park) leaves it granted, never asleep.
#[test]
fn a_watching_waiter_racing_its_grant_is_never_left_asleep() {
    model(|| {
        let lock = Arc::new(RangeRwLock::fifo());
        let held = lock.write(0..10);
        let waiter = {
            let lock = lock.clone();
            thread::spawn(move || lock.write(5..6).range())
        };
        until_waiting(&lock, 1);
        drop(held);
        assert_eq!(waiter.join().unwrap(), 5..=5);
    });
}

#[test]
fn a_timeout_racing_a_release_strands_nobody() {
    model(|| {
        let lock = Arc::new(RangeRwLock::fifo());
        let data = Shared::new();
        let held = lock.write(0..10);
        let timed = {
            let (lock, data) = (lock.clone(), data.clone());
            thread::spawn(move || {
                // Under loom the timeout fires when this request would first sleep.
                if let Some(_w) = lock.try_write_for(0..10, Duration::from_secs(1)) {
                    data.bump();
                }
            })
        };
        let behind = {
            let (lock, data) = (lock.clone(), data.clone());
            thread::spawn(move || {
                // May queue behind the timed request: its give-up must un-count it.
                let _r = lock.read(5..6);
                data.get()
            })
        };
        drop(held);
        timed.join().unwrap();
        behind.join().unwrap();
        assert_eq!(lock.waiting(), 0);
        assert!(lock.try_write(..).is_some());
    });
}

#[test]
fn downgrade_lets_a_queued_reader_in() {
    model(|| {
        let lock = Arc::new(RangeRwLock::fifo());
        let w = lock.write(0..10);
        let reader = {
            let lock = lock.clone();
            thread::spawn(move || lock.read(3..4).range())
        };
        let r = w.downgrade();
        // Joined while the downgraded guard is held: the reader must get in beside it.
        assert_eq!(reader.join().unwrap(), 3..=3);
        assert!(lock.try_write(0..1).is_none());
        drop(r);
    });
}

/// A request that took the idle lock alone is moved into the tree by a conflicting one while
/// it releases and takes the lock alone again (over another range): the mover must move the
/// request that holds the lock, with its range, and exclusion must hold throughout.
#[test]
fn a_lone_holder_racing_the_request_that_moves_it() {
    model(|| {
        let lock = Arc::new(RangeRwLock::fifo());
        let low = Shared::new();
        let high = Shared::new();
        let other = {
            let (lock, high) = (lock.clone(), high.clone());
            thread::spawn(move || {
                let _w = lock.write(10..20);
                high.bump();
            })
        };
        {
            let _w = lock.write(0..5);
            low.bump();
        }
        {
            let _w = lock.write(15..16);
            high.bump();
        }
        other.join().unwrap();
        assert_eq!(low.get() + high.get(), 3);
        // Idle again: the tree emptied and handed the lock back to the fast path.
        assert!(!lock.is_locked(..));
        assert!(lock.try_write(..).is_some());
    });
}

/// The default lock in tree mode (more holders than slots): a request tries the tree once
/// before any of the machinery of waiting outside it. Racing the release of the holder in its
/// way, it takes the range then, or waits outside and is told; it never holds the range
/// together with that holder, and nothing stays locked.
#[test]
fn the_default_lock_in_tree_mode_tries_the_tree_before_waiting_outside() {
    model(|| {
        let lock = std::sync::Arc::new(RangeRwLock::new());
        let data = Shared::new();
        let a = lock.write_arc(0..10);
        // Two more holders: three requests are more than the slots, so the tree is in charge.
        let b = lock.read(20..30);
        let c = lock.read(40..50);
        let holder = {
            let data = data.clone();
            thread::spawn(move || {
                data.bump();
                drop(a);
            })
        };
        {
            let _w = lock.write(5..6);
            data.bump();
        }
        holder.join().unwrap();
        assert_eq!(data.get(), 2);
        drop((b, c));
        assert!(!lock.is_locked(..));
    });
}

/// With barging allowed, a thread that releases and asks again may pass a woken waiter that
/// has not claimed the range yet; the waiter must then wait again and still get it, and no two
/// conflicting holders may overlap.
#[test]
fn barging_passes_a_woken_waiter_without_losing_it() {
    model(|| {
        let lock = Arc::new(RangeRwLock::barging(Duration::from_secs(3600)));
        let data = Shared::new();
        let first = lock.write(0..10);
        let waiter = {
            let (lock, data) = (lock.clone(), data.clone());
            thread::spawn(move || {
                let _w = lock.write(0..10);
                data.bump();
            })
        };
        until_waiting(&lock, 1);
        drop(first);
        {
            // May pass the woken waiter, or queue behind it.
            let _again = lock.write(5..15);
            data.bump();
        }
        waiter.join().unwrap();
        assert_eq!(data.get(), 2);
        assert!(!lock.is_locked(..));
    });
}
