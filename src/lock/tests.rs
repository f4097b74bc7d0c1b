use super::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::thread;

/// Spins until `lock` has `n` waiting requests, so that a test knows the queue order.
pub(crate) fn wait_for_waiting(lock: &RangeRwLock, n: usize) {
    while lock.waiting() != n {
        thread::yield_now();
    }
}

// ---- Semantics through the public API ----------------------------------------------------

#[test]
fn readers_share_and_writers_exclude() {
    let lock = RangeRwLock::new();
    let r1 = lock.read(0..100);
    let r2 = lock.read(50..150);
    assert!(lock.try_read(..).is_some());
    assert!(lock.try_write(99..100).is_none());
    assert!(lock.try_write(150..200).is_some());
    drop((r1, r2));
    let w = lock.write(10..20);
    assert!(lock.try_read(19..=19).is_none());
    assert!(lock.try_write(0..10).is_some());
    assert!(lock.try_read(20..).is_some());
    drop(w);
    assert!(lock.try_write(..).is_some());
}

#[test]
fn empty_ranges_are_granted_at_once_and_conflict_with_nothing() {
    let lock = RangeRwLock::new();
    let all = lock.write(..);
    let e = lock.write(5..5);
    assert!(e.range().is_empty());
    assert!(lock.try_read(0..0).is_some());
    assert!(lock.try_write_for(7..7, Duration::ZERO).is_some());
    assert!(!lock.is_locked(5..5));
    drop(all);
    assert!(!lock.is_locked(..));
    drop(e);
}

#[test]
fn bounds_at_u64_max_lock_the_last_unit() {
    let lock = RangeRwLock::new();
    let w = lock.write(u64::MAX..=u64::MAX);
    assert_eq!(w.range(), u64::MAX..=u64::MAX);
    assert!(lock.try_read(u64::MAX - 1..u64::MAX).is_some());
    assert!(lock.try_read(u64::MAX..).is_none());
    assert!(lock.try_read(..).is_none());
    assert!(lock.is_locked(u64::MAX..));
    drop(w);
    let all = lock.write(..);
    assert_eq!(all.range(), 0..=u64::MAX);
}

#[test]
#[should_panic(expected = "range starts at 10 but ends at 5")]
fn inverted_bounds_panic_naming_both() {
    #[allow(clippy::reversed_empty_ranges)]
    let _ = RangeRwLock::new().read(10..5);
}

#[test]
fn try_fails_behind_a_waiting_conflict_even_if_the_range_is_only_read() {
    let lock = RangeRwLock::fifo();
    let r = lock.read(0..10);
    thread::scope(|s| {
        let writer = s.spawn(|| {
            let _w = lock.write(5..6);
        });
        wait_for_waiting(&lock, 1);
        // The range is held only by a reader, but a writer waits: no stealing.
        assert!(lock.try_read(5..6).is_none());
        assert!(lock.try_read_for(5..6, Duration::from_millis(1)).is_none());
        // Parts the writer does not want are free to read.
        assert!(lock.try_read(0..5).is_some());
        drop(r);
        writer.join().unwrap();
    });
    assert!(!lock.is_locked(..));
}

#[test]
fn conflicting_requests_are_granted_in_arrival_order() {
    let lock = RangeRwLock::fifo();
    let order = std::sync::Mutex::new(Vec::new());
    let gate = lock.write(0..100);
    thread::scope(|s| {
        for i in 0..4 {
            let (lock, order) = (&lock, &order);
            s.spawn(move || {
                if i % 2 == 0 {
                    let _g = lock.write(10 * i..10 * i + 50);
                    order.lock().unwrap().push(i);
                } else {
                    let _g = lock.read(10 * i..10 * i + 50);
                    order.lock().unwrap().push(i);
                }
            });
            wait_for_waiting(lock, i as usize + 1);
        }
        drop(gate);
    });
    let order = order.into_inner().unwrap();
    // 0 (write) blocks 1 and 2; 1 (read) blocks 2 (write) but not 3 (read); 2 blocks 3.
    // Whatever the scheduling, a request finishes after every earlier conflicting one started.
    let pos = |i| order.iter().position(|&x| x == i).unwrap();
    assert!(
        pos(0) < pos(1) && pos(0) < pos(2) && pos(1) < pos(2) && pos(2) < pos(3),
        "{order:?}"
    );
}

#[test]
fn a_timed_out_waiter_unblocks_the_requests_queued_behind_it() {
    // The reader must queue behind the timed writer before the writer gives up; if the machine
    // is too slow for that, try again with a longer timeout.
    for timeout_ms in [50, 200, 1000, 5000] {
        let lock = RangeRwLock::fifo();
        let r = lock.read(0..10);
        let timeout = Duration::from_millis(timeout_ms);
        let tested = thread::scope(|s| {
            let w = s.spawn(|| lock.try_write_for(0..10, timeout).is_some());
            wait_for_waiting(&lock, 1);
            // This reader queues behind the waiting writer.
            let r2 = s.spawn(|| lock.read(5..6).range());
            while lock.waiting() < 2 && !w.is_finished() {
                thread::yield_now();
            }
            let queued_behind = lock.waiting() == 2;
            assert!(
                !w.join().unwrap(),
                "writer got the lock while a reader held it"
            );
            // Only the writer was in its way: it gets in while `r` is still held.
            assert_eq!(r2.join().unwrap(), 5..=5);
            queued_behind
        });
        drop(r);
        assert_eq!(lock.waiting(), 0);
        if tested {
            return;
        }
    }
    panic!("the reader never queued behind the timed writer");
}

#[test]
fn try_until_a_past_deadline_fails_without_leaving_anything_queued() {
    let lock = RangeRwLock::new();
    let w = lock.write(..);
    let past = Instant::now();
    assert!(lock.try_read_until(0..1, past).is_none());
    assert!(lock.try_write_until(0..1, past).is_none());
    assert_eq!(lock.waiting(), 0);
    drop(w);
    assert!(lock.try_write_until(0..1, past).is_some());
}

#[test]
fn a_huge_timeout_waits_like_a_blocking_call() {
    let lock = RangeRwLock::new();
    let g = lock.try_write_for(.., Duration::MAX).expect("free lock");
    drop(g);
    assert!(lock.try_read_for(.., Duration::MAX).is_some());
}

#[test]
fn downgrade_lets_queued_readers_in_and_keeps_writers_out() {
    let lock = RangeRwLock::new();
    let w = lock.write(0..100);
    let readers = AtomicUsize::new(0);
    thread::scope(|s| {
        let reader = s.spawn(|| {
            let _r = lock.read(10..20);
            readers.fetch_add(1, SeqCst);
        });
        wait_for_waiting(&lock, 1);
        let r = w.downgrade();
        assert_eq!(r.range(), 0..=99);
        reader.join().unwrap();
        assert_eq!(readers.load(SeqCst), 1);
        assert!(lock.try_write(50..51).is_none());
        assert!(lock.is_locked(0..1));
        drop(r);
    });
    assert!(!lock.is_locked(..));
}

#[test]
fn downgrade_does_not_let_readers_pass_a_queued_writer() {
    let lock = RangeRwLock::fifo();
    let w = lock.write(0..100);
    thread::scope(|s| {
        let writer = s.spawn(|| {
            let _w = lock.write(0..100);
        });
        wait_for_waiting(&lock, 1);
        let reader = s.spawn(|| {
            let _r = lock.read(0..1);
        });
        wait_for_waiting(&lock, 2);
        let r = w.downgrade();
        // The reader arrived after the writer, so it still waits.
        assert_eq!(lock.waiting(), 2);
        drop(r);
        writer.join().unwrap();
        reader.join().unwrap();
    });
}

#[test]
fn a_panic_while_holding_a_guard_releases_the_range() {
    let lock = Arc::new(RangeRwLock::new());
    let l2 = Arc::clone(&lock);
    let result = thread::spawn(move || {
        let _g = l2.write(0..10);
        panic!("worker failed");
    })
    .join();
    assert!(result.is_err());
    assert!(!lock.is_locked(..));
    assert!(lock.try_write(0..10).is_some());
}

#[test]
fn a_forgotten_guard_leaks_its_range_and_nothing_else() {
    let lock = RangeRwLock::new();
    core::mem::forget(lock.write(0..10));
    assert!(lock.try_read(5..6).is_none());
    assert!(lock.try_write(10..20).is_some());
    core::mem::forget(lock.read(100..200));
    drop(lock); // frees the leaked nodes with the lock
}

#[test]
fn disjoint_writers_do_not_wait_behind_a_queue() {
    let lock = RangeRwLock::new();
    let held = lock.write(0..10);
    thread::scope(|s| {
        let waiter = s.spawn(|| {
            let _w = lock.write(0..10);
        });
        wait_for_waiting(&lock, 1);
        // A long queue on 0..10 does not delay 10..20.
        assert!(lock.try_write(10..20).is_some());
        drop(held);
        waiter.join().unwrap();
    });
}

#[test]
fn debug_shows_requests_and_guards_show_ranges() {
    let lock = RangeRwLock::default();
    let g = lock.read(3..7);
    let w = lock.write(10..=10);
    assert_eq!(
        format!("{lock:?}"),
        "RangeRwLock { requests: 2, waiting: 0 }"
    );
    assert_eq!(format!("{g:?}"), "RangeReadGuard { range: 3..=6 }");
    assert_eq!(format!("{w:?}"), "RangeWriteGuard { range: 10..=10 }");
}

#[test]
fn lock_and_guards_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<RangeRwLock>();
    send_sync::<RangeReadGuard<'static>>();
    send_sync::<RangeWriteGuard<'static>>();
}

#[test]
fn a_guard_may_be_released_on_another_thread() {
    let lock = RangeRwLock::new();
    let g = lock.write(0..10);
    thread::scope(|s| {
        s.spawn(move || drop(g));
    });
    assert!(lock.try_write(0..10).is_some());
}

/// Polls `cond` until it holds (panics after a few seconds).
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(10), "never: {what}");
        thread::sleep(Duration::from_micros(100));
    }
}

/// Barging: within its window a waiter waits outside the queue and may be passed; once the
/// window has closed it queues, and a release grants it before anyone else can take the range.
#[test]
fn a_barging_waiter_is_passed_within_its_window_and_queues_after_it() {
    for window_closes in [false, true] {
        let handoff = if window_closes {
            Duration::from_millis(2)
        } else {
            Duration::from_secs(3600)
        };
        let lock = RangeRwLock::barging(handoff);
        let held = lock.write(0..10);
        // The waiter holds its range until the gate opens, so that a range found free below is
        // never one the waiter already had and let go. (A gate it polls with a time limit: if
        // an assertion below fails, the unwinding releases `held` and the waiter gets its
        // range; it must not then wait for a gate that never opens.)
        let gate = AtomicBool::new(false);
        thread::scope(|s| {
            let waiter = s.spawn(|| {
                let guard = lock.write(5..6);
                eventually("the gate opens", || gate.load(SeqCst));
                guard.range()
            });
            let outside = || lock.lock_state().outside.len();
            if window_closes {
                // It waits outside for 2 ms first, which an unlucky schedule may not show.
                eventually("the waiter queues", || lock.lock_state().waiting == 1);
                assert_eq!(outside(), 0);
                drop(held);
                // Granted by the release itself: nothing can take the range in between.
                assert!(lock.try_write(0..10).is_none(), "passed a queued waiter");
            } else {
                eventually("the waiter waits outside", || outside() == 1);
                assert_eq!(lock.lock_state().waiting, 0, "queued within its window");
                drop(held);
                // The waiter was only told to try again: a running request may pass it.
                match lock.try_write(0..10) {
                    Some(passer) => drop(passer),
                    None => assert!(lock.is_locked(5..6), "neither holds"),
                }
            }
            gate.store(true, SeqCst);
            assert_eq!(waiter.join().unwrap(), 5..=5);
        });
        assert_eq!(lock.waiting(), 0);
        assert!(!lock.is_locked(..));
    }
}

/// A set is held in the tree even when it has one range and a barging lock finds a slot free
/// for it: its guard releases it there.
#[test]
fn a_barging_lock_holds_a_set_of_one_range_in_the_tree() {
    let lock = RangeRwLock::barging(Duration::from_secs(1));
    let set = crate::RangeSet::new().write(0..10);
    for _ in 0..2 {
        let guard = lock.lock_set(&set);
        assert!(lock.try_read(5..6).is_none());
        drop(guard);
        assert!(!lock.is_locked(..));
    }
    let held = lock.read(0..1);
    thread::scope(|s| {
        let waiter = s.spawn(|| drop(lock.lock_set(&set)));
        eventually("the set waits", || lock.waiting() == 1);
        drop(held);
        waiter.join().unwrap();
    });
    assert!(!lock.is_locked(..));
}

/// A release wakes one of two waiters outside the tree for the same range (the other, a
/// writer of that range, is covered by it). The woken one's last try, at its deadline, fails:
/// it passes the notification on to the other. With the mechanics of the blocking path
/// (`barge_once`), step by step.
#[test]
fn a_notified_waiter_that_gives_up_passes_its_notification_on() {
    use super::fast::Barge;
    use super::wait::{WaitNode, NOTIFIED, WAITING};
    let lock = RangeRwLock::barging(Duration::from_secs(3600));
    let parts = [Part {
        start: 0,
        last: 9,
        mode: Mode::Write,
    }];
    let (a, b) = (WaitNode::new(), WaitNode::new());
    let held = lock.write(0..10);
    for node in [&a, &b] {
        assert!(matches!(
            lock.barge_once(&parts, true, node, &mut None, true, Requester::NOBODY),
            Barge::Outside
        ));
    }
    assert_eq!(lock.waiting(), 2);
    drop(held);
    assert_eq!((a.state(), b.state()), (NOTIFIED, WAITING), "one is woken");
    // Someone barges in before `a` is back; `a` reaches its deadline and gives up.
    let barger = lock.try_write(0..10).expect("the range is free");
    assert!(matches!(
        lock.barge_once(&parts, true, &a, &mut None, false, Requester::NOBODY),
        Barge::Refused
    ));
    assert_eq!(b.state(), NOTIFIED, "the notification was not passed on");
    assert!(matches!(
        lock.barge_once(&parts, true, &b, &mut None, false, Requester::NOBODY),
        Barge::Refused
    ));
    drop(barger);
    assert_eq!(lock.waiting(), 0);
    assert!(lock.try_write(..).is_some());
}

#[test]
fn barging_never_passes_a_holder() {
    let lock = RangeRwLock::barging(Duration::from_secs(1));
    let w = lock.write(0..10);
    assert!(lock.try_read(5..6).is_none());
    assert!(lock.try_write_for(0..1, Duration::from_millis(1)).is_none());
    drop(w);
    assert!(lock.try_write(0..10).is_some());
}

/// A writer that takes the lock while it is formatted into: `Debug` must not hold the lock's
/// internal mutex while it writes (a slow writer would stall every request; this one would
/// deadlock).
struct Reentrant<'a> {
    lock: &'a RangeRwLock,
    out: String,
}

impl core::fmt::Write for Reentrant<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        // Disjoint from everything held: granted at once unless the mutex is ours already.
        assert!(self.lock.try_read(1_000..1_001).is_some());
        self.out.push_str(s);
        Ok(())
    }
}

#[test]
fn debug_formats_after_letting_the_internal_mutex_go() {
    use core::fmt::Write as _;
    let lock = RangeRwLock::new();
    // Three holders: more than the slots, so the tree (and its mutex) is in use.
    let held = [lock.read(0..1), lock.read(10..11), lock.read(20..21)];
    assert_ne!(
        lock.word.load(crate::sync::Ordering::Relaxed) & fast::TREE,
        0
    );
    let mut out = Reentrant {
        lock: &lock,
        out: String::new(),
    };
    write!(out, "{lock:?}").unwrap();
    assert_eq!(out.out, "RangeRwLock { requests: 3, waiting: 0 }");
    drop(held);
}

#[test]
fn debug_and_is_locked_leave_a_fast_path_holder_where_it_is() {
    let lock = RangeRwLock::new();
    let held = lock.write(0..10);
    let word = || lock.word.load(crate::sync::Ordering::Relaxed);
    assert_eq!(word() & fast::TREE, 0);
    assert_eq!(
        format!("{lock:?}"),
        "RangeRwLock { requests: 1, waiting: 0 }"
    );
    assert!(lock.is_locked(5..6));
    assert!(!lock.is_locked(10..20));
    assert_eq!(word() & fast::TREE, 0, "moved into the tree by a look");
    drop(held);
}

#[test]
fn fifo_never_lets_a_reader_pass_a_waiting_writer() {
    let lock = RangeRwLock::fifo();
    let r = lock.read(0..10);
    thread::scope(|s| {
        let w = s.spawn(|| drop(lock.write(0..10)));
        wait_for_waiting(&lock, 1);
        // Only readers hold the range, but a writer waits for it: a reader queues behind.
        assert!(lock.try_read(5..6).is_none());
        assert!(
            lock.try_read(10..20).is_some(),
            "disjoint ranges are independent"
        );
        drop(r);
        w.join().unwrap();
    });
    assert!(!lock.is_locked(..));
}

/// A lock is two cache lines (the fast path's, and the internal mutex's), a guard three words
/// and a tree entry 16 bytes: the diagnostic features add nothing to them when they are off.
#[test]
#[cfg(not(any(feature = "deadlock_detection", feature = "stats")))]
fn the_lock_its_guards_and_its_entries_keep_their_size_without_the_diagnostics() {
    use core::mem::size_of;
    assert_eq!(size_of::<RangeRwLock>(), 128);
    assert_eq!(size_of::<RangeWriteGuard<'_>>(), 32);
    assert_eq!(size_of::<queue::Entry>(), 16);
}

#[test]
fn new_barges_with_the_default_hand_off_and_fifo_never_does() {
    let default = Some(RangeRwLock::DEFAULT_HANDOFF);
    assert_eq!(RangeRwLock::new().handoff(), default);
    assert_eq!(RangeRwLock::default().handoff(), default);
    assert_eq!(RangeRwLock::fifo().handoff(), None);
    assert_eq!(RangeRwLock::barging(Duration::ZERO).handoff(), None);
}

/// The default lock's timed requests: one that gives up within its hand-off (waiting outside
/// the queue) and one that gives up after it (queued) both leave nothing behind.
#[test]
fn a_timed_request_of_the_default_lock_gives_up_and_leaves_nothing_waiting() {
    let lock = RangeRwLock::new();
    let held = lock.write(0..10);
    let handoff = RangeRwLock::DEFAULT_HANDOFF;
    for timeout in [handoff / 4, handoff * 5] {
        let asked = Instant::now();
        assert!(lock.try_write_for(5..6, timeout).is_none());
        assert!(asked.elapsed() >= timeout, "gave up early");
        assert_eq!(lock.waiting(), 0);
        assert_eq!(lock.lock_state().outside.len(), 0);
    }
    drop(held);
    assert!(lock.try_write_for(5..6, handoff).is_some());
    assert!(!lock.is_locked(..));
}
