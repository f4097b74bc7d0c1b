//! loom models of the contention counters (feature `stats`). Run with
//! `RUSTFLAGS="--cfg rangelock_loom" cargo test -p loom-tests --release --features stats
//! --test stats`.
#![cfg(all(rangelock_loom, feature = "stats"))]

use loom::sync::Arc;
use loom::thread;
use loom_tests::model;
use rangelock::RangeRwLock;

/// Two threads take disjoint ranges on the fast path at the same time: the counter of
/// fast-path grants, which only the owner of the slot table changes (a load and a store, no
/// read-modify-write), loses neither.
#[test]
fn fast_path_grants_racing_each_other_are_all_counted() {
    model(|| {
        let lock = Arc::new(RangeRwLock::new());
        let other = {
            let lock = lock.clone();
            thread::spawn(move || drop(lock.write(100..101)))
        };
        drop(lock.write(0..1));
        other.join().unwrap();
        assert_eq!(lock.stats().acquisitions, 2);
    });
}

/// A request that conflicts with a holder racing its release is counted once, whether it took
/// a slot, was granted at once through the queue, or waited and was granted by the release;
/// it is contended exactly when it waited, and then its wait is in the histogram.
#[test]
fn a_request_racing_a_release_is_counted_once() {
    model(|| {
        let lock = std::sync::Arc::new(RangeRwLock::new());
        let held = lock.write_arc(0..10);
        let releaser = thread::spawn(move || drop(held));
        drop(lock.write(5..6));
        releaser.join().unwrap();
        let stats = lock.stats();
        assert_eq!(stats.acquisitions, 2);
        assert!(stats.contended <= 1);
        assert_eq!(stats.wait_histogram.count(), stats.contended);
    });
}
