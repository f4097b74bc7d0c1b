//! Many threads, random ranges, modes and timeouts; shadow counters check mutual exclusion.
//! Bounded in operations and in time, so it stays quick on a loaded two-core machine. With
//! `deadlock_detection`, a watchdog looks for cycles throughout: no thread here waits while it
//! holds a range, so it must find none.

mod common;

use common::Rng;
use rangelock::RangeRwLock;
use std::panic::catch_unwind;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

const UNITS: u64 = 48;
const THREADS: u64 = 8;
const OPS_PER_THREAD: u64 = 20_000;
const TIME_LIMIT: Duration = Duration::from_secs(4);

/// One counter per unit of the space: `-1` while a writer holds it, else the reader count.
struct Shadow([AtomicI64; UNITS as usize]);

impl Shadow {
    fn units(start: u64, end: u64) -> std::ops::Range<usize> {
        start.min(UNITS) as usize..end.min(UNITS) as usize
    }

    fn enter(&self, start: u64, end: u64, write: bool) {
        for u in Self::units(start, end) {
            if write {
                let seen = self.0[u].compare_exchange(0, -1, SeqCst, SeqCst);
                assert_eq!(seen, Ok(0), "writer entered unit {u} while it was held");
            } else {
                let before = self.0[u].fetch_add(1, SeqCst);
                assert!(
                    before >= 0,
                    "reader entered unit {u} while a writer held it"
                );
            }
        }
    }

    fn leave(&self, start: u64, end: u64, write: bool) {
        for u in Self::units(start, end) {
            if write {
                assert_eq!(self.0[u].compare_exchange(-1, 0, SeqCst, SeqCst), Ok(-1));
            } else {
                assert!(self.0[u].fetch_sub(1, SeqCst) > 0);
            }
        }
    }
}

#[test]
fn random_ranges_modes_and_timeouts_keep_mutual_exclusion() {
    stress(&RangeRwLock::new(), 1);
}

/// The same with barging allowed: requests pass waiting ones, never holders. With a short
/// window requests soon queue; with a long one they only wait outside the queue, where a
/// release wakes one of the writers of a range and a woken one that times out passes the
/// notification on (a waiter left asleep would hang its thread's blocking request).
#[test]
fn barging_keeps_mutual_exclusion_too() {
    stress(&RangeRwLock::barging(Duration::from_micros(200)), 2);
    stress(&RangeRwLock::barging(Duration::from_secs(3600)), 3);
}

fn stress(lock: &RangeRwLock, seed: u64) {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&"deliberate") {
            default_hook(info);
        }
    }));
    let shadow = Shadow(std::array::from_fn(|_| AtomicI64::new(0)));
    let (granted, timed_out, panicked) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let began = Instant::now();
    #[cfg(feature = "deadlock_detection")]
    let watchdog = common::Watchdog::start();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (lock, shadow) = (lock, &shadow);
            let (granted, timed_out, panicked) = (&granted, &timed_out, &panicked);
            s.spawn(move || {
                let mut rng = Rng::new(common::seed_from_env("STRESS_SEED", seed) * 1000 + t);
                for op in 0..OPS_PER_THREAD {
                    if began.elapsed() > TIME_LIMIT {
                        break;
                    }
                    // Mostly short ranges; sometimes the whole space, or an empty range.
                    let (start, end) = match rng.below(20) {
                        0 => (0, u64::MAX),
                        1 => (UNITS / 2, UNITS / 2),
                        _ => {
                            let start = rng.below(UNITS);
                            (start, (start + 1 + rng.below(6)).min(UNITS))
                        }
                    };
                    let write = rng.below(3) == 0;
                    let how = rng.below(8);
                    let work = |rng: &mut Rng| {
                        shadow.enter(start, end, write);
                        for _ in 0..rng.below(50) {
                            std::hint::spin_loop();
                        }
                        if rng.below(10) == 0 {
                            std::thread::yield_now();
                        }
                        shadow.leave(start, end, write);
                    };
                    let got = if write {
                        let g = match how {
                            0 => lock.try_write(start..end),
                            1 | 2 => lock
                                .try_write_for(start..end, Duration::from_micros(rng.below(300))),
                            _ => Some(lock.write(start..end)),
                        };
                        g.map(|g| {
                            assert_eq!(g.range().is_empty(), start == end);
                            work(&mut rng);
                            if rng.below(4) == 0 {
                                // Downgrade keeps the range, now shared: no writer may enter.
                                let r = g.downgrade();
                                shadow.enter(start, end, false);
                                shadow.leave(start, end, false);
                                drop(r);
                            }
                        })
                    } else {
                        let g = match how {
                            0 => lock.try_read(start..end),
                            1 | 2 => {
                                lock.try_read_for(start..end, Duration::from_micros(rng.below(300)))
                            }
                            _ => Some(lock.read(start..end)),
                        };
                        g.map(|_g| work(&mut rng))
                    };
                    match got {
                        Some(()) => granted.fetch_add(1, SeqCst),
                        None => timed_out.fetch_add(1, SeqCst),
                    };
                    if op % 97 == 0 {
                        // A panic while holding a guard releases the range during unwinding.
                        let r = catch_unwind(|| {
                            let _g = lock.write(start..end);
                            panic!("deliberate");
                        });
                        assert!(r.is_err());
                        panicked.fetch_add(1, SeqCst);
                    }
                }
            });
        }
    });
    #[cfg(feature = "deadlock_detection")]
    watchdog.stop();
    let (g, t, p) = (
        granted.load(SeqCst),
        timed_out.load(SeqCst),
        panicked.load(SeqCst),
    );
    eprintln!(
        "granted {g}, gave up {t}, panicked while holding {p}, in {:?}",
        began.elapsed()
    );
    assert!(g > 0 && p > 0);
    assert!(!lock.is_locked(..), "a range stayed locked: {lock:?}");
    assert_eq!(lock.waiting(), 0, "a request stayed queued");
    assert!(shadow.0.iter().all(|c| c.load(SeqCst) == 0));
}

/// The shadow counters must catch overlapping writers: two writers entering one unit.
#[test]
#[should_panic(expected = "writer entered unit 3 while it was held")]
fn the_shadow_catches_two_writers_in_one_unit() {
    let shadow = Shadow(std::array::from_fn(|_| AtomicI64::new(0)));
    shadow.enter(0, 4, true);
    shadow.enter(3, 5, true);
}
