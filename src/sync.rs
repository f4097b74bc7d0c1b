//! The only module that knows about loom.
//!
//! Normally the lock is built from `std`'s mutex and atomics and parks through
//! `parking_lot_core`. Under `cfg(loom)` the same names are loom's, and parking is a small queue
//! of loom threads with the same protocol, so the loom models in `loom-tests/` check the code
//! that ships.
//!
//! The parking protocol: a waiting thread owns a [`Waiter`] on its stack, publishes its address
//! in the lock's tree, and parks until the flag in it is set. A thread that grants a waiter sets
//! the flag while holding the lock's internal mutex, drops the mutex, and only then calls
//! [`Parker::wake`], which unparks every parked thread whose flag is set. A waiter checks its flag
//! under the parking queue's lock before it sleeps, so a grant between the check and the sleep is
//! never lost.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use std::time::Instant;

/// A mutex whose `lock` ignores poisoning: no code panics while holding the lock's internal
/// mutex, and if it ever did, the state it guards is updated in whole steps.
pub(crate) struct Mutex<T>(Inner<T>);

#[cfg(not(loom))]
type Inner<T> = std::sync::Mutex<T>;
#[cfg(loom)]
type Inner<T> = loom::sync::Mutex<T>;

#[cfg(not(loom))]
pub(crate) type MutexGuard<'a, T> = std::sync::MutexGuard<'a, T>;
#[cfg(loom)]
pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

impl<T> Mutex<T> {
    #[cfg(not(loom))]
    pub(crate) const fn new(value: T) -> Self {
        Mutex(std::sync::Mutex::new(value))
    }

    #[cfg(loom)]
    pub(crate) fn new(value: T) -> Self {
        Mutex(loom::sync::Mutex::new(value))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One step of waiting for another thread to finish a few instructions: spin briefly, then
/// yield the CPU (under loom, always yield, so the model lets the other thread run).
pub(crate) fn spin_wait(spins: &mut u32) {
    #[cfg(loom)]
    {
        let _ = spins;
        loom::thread::yield_now();
    }
    #[cfg(not(loom))]
    {
        if *spins < 100 {
            *spins += 1;
            core::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

/// The grant flag of one waiting request. It lives on the waiting thread's stack for as long
/// as the request is queued and not granted.
pub(crate) struct Waiter {
    granted: AtomicBool,
}

impl Waiter {
    pub(crate) fn new() -> Self {
        Waiter {
            granted: AtomicBool::new(false),
        }
    }

    /// Whether the request was granted. `Acquire` pairs with `grant`'s `Release`, so the
    /// previous holder's writes are visible once this returns true.
    pub(crate) fn is_granted(&self) -> bool {
        self.granted.load(Ordering::Acquire)
    }

    pub(crate) fn grant(&self) {
        self.granted.store(true, Ordering::Release);
    }

    /// Clears the flag of a request that was passed before its thread could claim it. Called
    /// under the lock's internal mutex, as `grant` is, so the two cannot cross.
    pub(crate) fn reset(&self) {
        self.granted.store(false, Ordering::Relaxed);
    }
}

/// Looks at the grant flag this many times (spinning, then yielding) before parking.
#[cfg(not(loom))]
const SPINS: u32 = 100;

/// Parks and wakes the threads waiting on one lock.
#[cfg(not(loom))]
pub(crate) struct Parker;

#[cfg(not(loom))]
impl Parker {
    pub(crate) const fn new() -> Self {
        Parker
    }

    /// Blocks until `waiter` is granted (true) or `deadline` passes (false: the caller then
    /// settles the request under the lock's mutex, where a late grant is still seen).
    ///
    /// `key` is the address of the lock's internal state: unique among live locks. No other
    /// primitive of this crate parks on it; code elsewhere that called `parking_lot_core::park`
    /// on the address of a struct holding a `RangeRwLock` at offset 0 would break this (as it
    /// breaks `park`'s own contract: park only on addresses you control).
    pub(crate) fn wait(&self, key: usize, waiter: &Waiter, deadline: Option<Instant>) -> bool {
        use parking_lot_core::{park, ParkResult, ParkToken};
        // A grant often comes within a few hundred nanoseconds: look for it briefly before
        // paying for a sleep and a wake-up.
        for i in 0..SPINS {
            if waiter.is_granted() {
                return true;
            }
            if i < SPINS / 2 {
                core::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        loop {
            if waiter.is_granted() {
                return true;
            }
            // The token carries the pointer's provenance through `usize`: `wake` turns it back.
            let token = ParkToken((waiter as *const Waiter).expose_provenance());
            // SAFETY:
            // - `key` is the address of a lock's state, owned by that lock; only this module
            //   parks or unparks on it, always with a `Waiter` address as the token.
            // - `validate` and `timed_out` neither panic nor call into parking_lot.
            let result = unsafe {
                park(
                    key,
                    || !waiter.is_granted(),
                    || {},
                    |_, _| {},
                    token,
                    deadline,
                )
            };
            if let ParkResult::TimedOut = result {
                return waiter.is_granted();
            }
        }
    }

    /// Unparks every thread parked on `key` whose waiter has been granted.
    pub(crate) fn wake(&self, key: usize) {
        use parking_lot_core::{unpark_filter, FilterOp, ParkToken, DEFAULT_UNPARK_TOKEN};
        let filter = |ParkToken(token): ParkToken| {
            // SAFETY: every thread parked on `key` passed the address of its own `Waiter` as
            // its token (see `wait`). The filter runs under the parking queue's lock while that
            // thread is still in the queue, so it is blocked inside `park` and the `Waiter` on
            // its stack is alive.
            let waiter = unsafe { &*core::ptr::with_exposed_provenance::<Waiter>(token) };
            if waiter.is_granted() {
                FilterOp::Unpark
            } else {
                FilterOp::Skip
            }
        };
        // SAFETY: as in `wait`, `key` is this lock's own address; the filter reads an atomic
        // and the callback returns a constant: neither panics or calls into parking_lot.
        unsafe { unpark_filter(key, filter, |_| DEFAULT_UNPARK_TOKEN) };
    }
}

/// Parks and wakes the threads waiting on one lock: loom's version of the same protocol.
#[cfg(loom)]
pub(crate) struct Parker {
    parked: loom::sync::Mutex<Vec<Parked>>,
}

#[cfg(loom)]
struct Parked {
    waiter: *const Waiter,
    thread: loom::thread::Thread,
    unparked: loom::sync::Arc<AtomicBool>,
}

// SAFETY: `waiter` is only dereferenced under the `parked` mutex while its thread is parked
// (see `wake`), which is the same from any thread; `Waiter` holds only an atomic.
#[cfg(loom)]
unsafe impl Send for Parked {}

#[cfg(loom)]
impl Parker {
    pub(crate) fn new() -> Self {
        Parker {
            parked: loom::sync::Mutex::new(Vec::new()),
        }
    }

    /// As the non-loom `wait`. loom cannot make time pass, so a waiter with a deadline models
    /// the timeout as firing at the moment it would first sleep: it gives up there, which is
    /// the give-up path racing every possible release.
    pub(crate) fn wait(&self, _key: usize, waiter: &Waiter, deadline: Option<Instant>) -> bool {
        loop {
            let unparked = loom::sync::Arc::new(AtomicBool::new(false));
            {
                let mut parked = self.parked.lock().unwrap();
                if waiter.is_granted() {
                    return true;
                }
                if deadline.is_some() {
                    return false;
                }
                parked.push(Parked {
                    waiter,
                    thread: loom::thread::current(),
                    unparked: unparked.clone(),
                });
            }
            while !unparked.load(Ordering::Acquire) {
                loom::thread::park();
            }
        }
    }

    pub(crate) fn wake(&self, _key: usize) {
        let mut parked = self.parked.lock().unwrap();
        parked.retain(|p| {
            // SAFETY: a thread stays in `parked` until it is removed here, and until then it
            // loops in `wait`, so the `Waiter` on its stack is alive.
            let waiter = unsafe { &*p.waiter };
            if waiter.is_granted() {
                p.unparked.store(true, Ordering::Release);
                p.thread.unpark();
                false
            } else {
                true
            }
        });
    }
}
