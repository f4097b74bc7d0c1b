use super::*;
use crate::testrng::Rng;
use queue::Request;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::thread;

/// Spins until `lock` has `n` waiting requests, so that a test knows the queue order.
fn wait_for_waiting(lock: &RangeRwLock, n: usize) {
    while lock.waiting() != n {
        thread::yield_now();
    }
}

// ---- The accounting, single-threaded, against a model ------------------------------------

/// A live request in the model: `(id, start, last, mode)` in arrival order.
type Live = Vec<(NodeId, u64, u64, Mode)>;

/// The model's rule: a request is granted iff no earlier live request overlaps and conflicts.
fn model_granted(live: &Live, i: usize) -> bool {
    let (_, s, l, m) = live[i];
    !live[..i]
        .iter()
        .any(|&(_, s2, l2, m2)| s2 <= l && l2 >= s && m.conflicts(m2))
}

fn check_against_model(state: &State, live: &Live, ctx: &str) {
    let mut waiting = 0;
    for (i, &(id, ..)) in live.iter().enumerate() {
        let want = model_granted(live, i);
        assert_eq!(
            state.is_granted(id),
            want,
            "request {i} of {live:?} ({ctx})"
        );
        waiting += usize::from(!want);
    }
    assert_eq!(state.waiting, waiting, "waiting count ({ctx})");
    assert_eq!(state.tree.len(), live.len(), "queued count ({ctx})");
}

/// Random requests, releases, give-ups and downgrades; after every step the set of granted
/// requests is exactly what the model allows together, `try_*` succeeds exactly when nothing
/// conflicting is queued, and a step reports a wake-up exactly when a request became granted.
#[test]
fn granted_set_matches_the_fifo_model() {
    let steps = if cfg!(miri) { 200 } else { 5_000 };
    for seed in 0..if cfg!(miri) { 2 } else { 40 } {
        let mut rng = Rng::new(seed);
        let mut state = State::new();
        let mut live: Live = Vec::new();
        let space = 1 + rng.below(64);
        for step in 0..steps {
            let ctx = format!("seed {seed} step {step}");
            let before: Vec<(NodeId, bool)> = (0..live.len())
                .map(|i| (live[i].0, model_granted(&live, i)))
                .collect();
            let op = rng.below(10);
            let woke = if op < 5 || live.is_empty() {
                let start = rng.below(space);
                let last = (start + rng.below(8)).min(space);
                let mode = if rng.below(2) == 0 {
                    Mode::Read
                } else {
                    Mode::Write
                };
                let try_only = rng.below(4) == 0;
                let free = !live
                    .iter()
                    .any(|&(_, s, l, m)| s <= last && l >= start && mode.conflicts(m));
                match state.enqueue(start, last, mode, None, try_only, None) {
                    Some(q) => {
                        assert!(!try_only || free, "try succeeded past a conflict ({ctx})");
                        assert_eq!(q.granted, free, "({ctx})");
                        live.push((q.id, start, last, mode));
                    }
                    None => assert!(try_only && !free, "try failed without conflict ({ctx})"),
                }
                false
            } else if op < 9 {
                // Release a granted request, or give up a waiting one: the same step.
                let i = rng.below(live.len() as u64) as usize;
                let (id, ..) = live.remove(i);
                state.leave(id)
            } else {
                let writers: Vec<usize> = (0..live.len())
                    .filter(|&i| live[i].3 == Mode::Write && model_granted(&live, i))
                    .collect();
                if writers.is_empty() {
                    continue;
                }
                let i = writers[rng.below(writers.len() as u64) as usize];
                live[i].3 = Mode::Read;
                let woke = state.downgrade(live[i].0);
                // A downgraded writer keeps its place: it is still granted.
                assert!(state.is_granted(live[i].0), "({ctx})");
                woke
            };
            check_against_model(&state, &live, &ctx);
            let newly_granted = live.iter().enumerate().any(|(i, &(id, ..))| {
                model_granted(&live, i) && before.iter().any(|&(b, granted)| b == id && !granted)
            });
            assert_eq!(woke, newly_granted, "wake-up reported wrongly ({ctx})");
            for query in 0..2 {
                let start = rng.below(space + 2);
                let last = start + rng.below(4) + query;
                let want = live
                    .iter()
                    .enumerate()
                    .any(|(i, &(_, s, l, _))| s <= last && l >= start && model_granted(&live, i));
                assert_eq!(state.is_locked(start, last), want, "is_locked ({ctx})");
            }
        }
        state.tree.check();
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
    let lock = RangeRwLock::new();
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
    let lock = RangeRwLock::new();
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
        let lock = RangeRwLock::new();
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
    let lock = RangeRwLock::new();
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

// ---- Barging, single-threaded, against its invariants ------------------------------------

/// Checks the accounting: every request counts exactly the conflicting overlapping requests
/// ahead of it (lower `prio`), the claimed ones are those counting nobody, and no two claimed
/// requests conflict.
fn check_barging_invariants(state: &State, live: &[(NodeId, u64, u64)], ctx: &str) {
    let nodes: Vec<(u64, u64, &Request)> = live
        .iter()
        .map(|&(id, s, l)| (s, l, state.tree.get(id)))
        .collect();
    let mut waiting = 0;
    for (i, &(s, l, r)) in nodes.iter().enumerate() {
        let ahead = nodes
            .iter()
            .filter(|&&(s2, l2, r2)| {
                s2 <= l && l2 >= s && r.mode.conflicts(r2.mode) && r2.prio < r.prio
            })
            .count();
        assert_eq!(r.blocking, ahead, "request {i} counts wrongly ({ctx})");
        assert!(
            !r.claimed || r.blocking == 0,
            "request {i} claimed while blocked ({ctx})"
        );
        waiting += usize::from(r.blocking > 0);
        for &(s2, l2, r2) in &nodes[i + 1..] {
            let clash = s2 <= l && l2 >= s && r.mode.conflicts(r2.mode);
            assert!(
                !(clash && r.claimed && r2.claimed),
                "two conflicting holders ({ctx})"
            );
        }
    }
    assert_eq!(state.waiting, waiting, "waiting count ({ctx})");
}

/// Random requests (some barging, some past their hand-off deadline), releases, give-ups,
/// claims of ready requests and downgrades keep the barging accounting exact.
#[test]
fn barging_keeps_the_counts_and_exclusion_exact() {
    let steps = if cfg!(miri) { 150 } else { 1_500 };
    let base = Instant::now();
    let waiter = Waiter::new(); // the flag is only looked at, never waited on, here
    for seed in 0..if cfg!(miri) { 2 } else { 12 } {
        let mut rng = Rng::new(1000 + seed);
        let mut state = State::new();
        let mut live: Vec<(NodeId, u64, u64)> = Vec::new();
        let space = 1 + rng.below(40);
        let mut passed = 0;
        for step in 0..steps {
            let ctx = format!("seed {seed} step {step}");
            let now = base + Duration::from_micros(step * 10);
            let op = rng.below(10);
            if op < 5 || live.is_empty() {
                let start = rng.below(space);
                let last = (start + rng.below(6)).min(space);
                let mode = if rng.below(2) == 0 {
                    Mode::Read
                } else {
                    Mode::Write
                };
                let handoff = Duration::from_micros(rng.below(200));
                let barging = Some(Barging { now, handoff });
                let conflicted = live.iter().any(|&(id, s, l)| {
                    s <= last && l >= start && mode.conflicts(state.tree.get(id).mode)
                });
                if let Some(q) =
                    state.enqueue(start, last, mode, Some(&waiter), rng.below(4) == 0, barging)
                {
                    passed += usize::from(q.granted && conflicted);
                    live.push((q.id, start, last));
                }
            } else if op < 8 {
                let i = rng.below(live.len() as u64) as usize;
                let (id, ..) = live.remove(i);
                state.leave(id);
            } else if op < 9 {
                // A woken thread claims its ready request.
                if let Some(&(id, ..)) = live.iter().find(|&&(id, ..)| {
                    !state.tree.get(id).claimed && state.tree.get(id).blocking == 0
                }) {
                    assert!(state.claim(id, &waiter), "({ctx})");
                }
            } else if let Some(&(id, ..)) = live.iter().find(|&&(id, ..)| {
                state.tree.get(id).claimed && state.tree.get(id).mode == Mode::Write
            }) {
                state.downgrade(id);
            }
            check_barging_invariants(&state, &live, &ctx);
        }
        assert!(
            passed > 0 || cfg!(miri),
            "seed {seed}: no request ever barged"
        );
    }
}

#[test]
fn a_waiter_past_its_handoff_deadline_is_not_passed() {
    let mut state = State::new();
    let waiter = Waiter::new();
    let t0 = Instant::now();
    let at = |us| {
        Some(Barging {
            now: t0 + Duration::from_micros(us),
            handoff: Duration::from_micros(100),
        })
    };
    let holder = state
        .enqueue(0, 9, Mode::Write, None, false, at(0))
        .unwrap();
    let queued = state
        .enqueue(0, 9, Mode::Write, Some(&waiter), false, at(0))
        .unwrap();
    assert!(!queued.granted);
    state.leave(holder.id);
    // Ready but not yet claimed: a running request may pass it within the deadline...
    assert!(waiter.is_granted());
    let passer = state
        .enqueue(5, 5, Mode::Read, None, false, at(50))
        .unwrap();
    assert!(passer.granted && !state.claim(queued.id, &waiter) && !waiter.is_granted());
    state.leave(passer.id);
    // ...and not after it.
    let late = state.enqueue(5, 5, Mode::Read, None, true, at(150));
    assert!(
        late.is_none(),
        "passed a waiter after its hand-off deadline"
    );
    assert!(state.claim(queued.id, &waiter));
    assert!(state.is_granted(queued.id));
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
