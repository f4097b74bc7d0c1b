//! The only module that knows about loom.
//!
//! Normally the lock is built from `parking_lot`'s mutex, `std`'s atomics and `UnsafeCell`, and
//! parks through `parking_lot_core`. Under `cfg(rangelock_loom)` the same names are loom's, and
//! parking is a small queue of loom threads with the same contract, so the loom models in
//! `loom-tests/` check the code that ships. The cfg is this crate's own, not loom's usual
//! `cfg(loom)`, so that a downstream crate that builds its own loom models with `--cfg loom`
//! still gets the real lock (and `const fn new`).
//!
//! The parking contract ([`Parker`]): a thread parks on a key (the address of its wait node)
//! while a condition checked under the parking queue's lock holds; another thread changes what
//! the condition reads and then unparks the key. An unpark of a key nobody is parked on is
//! lost, harmlessly; a thread may be unparked spuriously (a key reused by a later node), so
//! every caller re-checks its condition in a loop.

#[cfg(rangelock_loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
#[cfg(not(rangelock_loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};

use std::time::Instant;

/// A counter that changes only under a mutex (so loom checks its changes through that mutex)
/// and is also read without it, as a hint that decides nothing. It is `std`'s atomic even under
/// loom, so that it adds no interleavings of its own to the models.
pub(crate) type HintUsize = std::sync::atomic::AtomicUsize;

/// A mutex without poisoning: the lock's code reserves memory before it changes the state
/// behind its mutex, so nothing panics half-way through a change.
///
/// `parking_lot`'s: its guard is one pointer. With `std`'s, the guard's poison flag (a byte
/// stored on its own) was copied with the guard as part of a wider load, which stalled on store
/// forwarding on every request that took the mutex (perf annotate of `held_100`).
pub(crate) struct Mutex<T>(Inner<T>);

#[cfg(not(rangelock_loom))]
type Inner<T> = parking_lot::Mutex<T>;
#[cfg(rangelock_loom)]
type Inner<T> = loom::sync::Mutex<T>;

#[cfg(not(rangelock_loom))]
pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;
#[cfg(rangelock_loom)]
pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

impl<T> Mutex<T> {
    #[cfg(not(rangelock_loom))]
    pub(crate) const fn new(value: T) -> Self {
        Mutex(parking_lot::Mutex::new(value))
    }

    #[cfg(rangelock_loom)]
    pub(crate) fn new(value: T) -> Self {
        Mutex(loom::sync::Mutex::new(value))
    }

    #[cfg(not(rangelock_loom))]
    #[inline]
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock()
    }

    #[cfg(rangelock_loom)]
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// An `UnsafeCell` with loom's closure API, so that loom can check every access.
#[cfg(not(rangelock_loom))]
pub(crate) struct UnsafeCell<T>(core::cell::UnsafeCell<T>);

#[cfg(not(rangelock_loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        UnsafeCell(core::cell::UnsafeCell::new(value))
    }

    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

#[cfg(rangelock_loom)]
pub(crate) use loom::cell::UnsafeCell;

#[cfg(not(rangelock_loom))]
std::thread_local! {
    static WAKING: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}
#[cfg(rangelock_loom)]
loom::thread_local! {
    static WAKING: core::cell::Cell<bool> = core::cell::Cell::new(false);
}

/// Whether the calling thread is inside a task waker's `wake`, called from a wake list (see
/// `lock/wait.rs`). A future polled there must not wait for a wake list to let its node go:
/// that list may be this thread's own.
pub(crate) fn waking() -> bool {
    WAKING.with(core::cell::Cell::get)
}

/// Marks the calling thread as [`waking`] until the returned value is dropped.
pub(crate) fn enter_waking() -> Waking {
    Waking(WAKING.with(|w| w.replace(true)))
}

/// See [`enter_waking`]; restores what was there before (wakes nest when a `wake` releases).
pub(crate) struct Waking(bool);

impl Drop for Waking {
    fn drop(&mut self) {
        WAKING.with(|w| w.set(self.0));
    }
}

/// One step of waiting for another thread to finish a few instructions: spin briefly, then
/// yield the CPU.
#[cfg(not(rangelock_loom))]
pub(crate) fn spin_wait(spins: &mut u32) {
    if *spins < 64 {
        *spins += 1;
        core::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

/// One step of a bounded spin: under loom, a yield, so that a model explores the other
/// threads' steps at that point.
#[cfg(rangelock_loom)]
pub(crate) fn spin_hint() {
    loom::thread::yield_now();
}

/// How a call to [`Parker::park`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Park {
    /// Another thread unparked the key (or a spurious wake-up: re-check).
    Unparked,
    /// The condition no longer held when checked under the queue's lock.
    Invalid,
    /// The deadline passed.
    TimedOut,
}

/// Parks and unparks threads by key.
#[cfg(not(rangelock_loom))]
pub(crate) struct Parker;

#[cfg(not(rangelock_loom))]
impl Parker {
    pub(crate) const fn new() -> Self {
        Parker
    }

    /// Parks the calling thread on `key` if `should_park()` (called under the parking queue's
    /// lock) is true, until the key is unparked or `deadline` passes.
    ///
    /// `key` must be the address of memory the caller owns for the duration (a wait node):
    /// no other code parks on it, so only this crate's `unpark_one` wakes it.
    pub(crate) fn park(
        &self,
        key: usize,
        should_park: impl FnOnce() -> bool,
        deadline: Option<Instant>,
    ) -> Park {
        use parking_lot_core::{park, ParkResult, DEFAULT_PARK_TOKEN};
        // SAFETY:
        // - `key` is the address of a wait node owned by the calling thread; this crate parks
        //   only on such addresses and unparks only with `unpark_one` (`parking_lot_core`'s
        //   contract is about deadlocks in its own queue, not memory safety: the key is a
        //   number and is never dereferenced);
        // - `should_park` only loads an atomic, and `timed_out` does nothing: neither panics
        //   nor calls into `parking_lot_core`.
        let result = unsafe {
            park(
                key,
                should_park,
                || {},
                |_, _| {},
                DEFAULT_PARK_TOKEN,
                deadline,
            )
        };
        match result {
            ParkResult::Unparked(_) => Park::Unparked,
            ParkResult::Invalid => Park::Invalid,
            ParkResult::TimedOut => Park::TimedOut,
        }
    }

    /// Unparks one thread parked on `key`, if any.
    pub(crate) fn unpark_one(&self, key: usize) {
        use parking_lot_core::{unpark_one, DEFAULT_UNPARK_TOKEN};
        // SAFETY: the callback returns a constant: it neither panics nor calls into
        // `parking_lot_core`.
        unsafe { unpark_one(key, |_| DEFAULT_UNPARK_TOKEN) };
    }

    /// One step of waiting for another thread to finish a critical section of a few
    /// instructions, which it ends with [`done`](Self::done)`(key)`: spins, then yields.
    #[inline]
    pub(crate) fn wait_while(&self, _key: usize, _busy: impl FnOnce() -> bool, spins: &mut u32) {
        spin_wait(spins);
    }

    /// Ends a critical section that [`wait_while`](Self::wait_while) waits out: nothing to do
    /// outside loom.
    #[inline]
    pub(crate) fn done(&self, _key: usize) {}
}

/// Parks and unparks threads by key: loom's version of the same contract.
#[cfg(rangelock_loom)]
pub(crate) struct Parker {
    parked: loom::sync::Mutex<Vec<Parked>>,
}

#[cfg(rangelock_loom)]
struct Parked {
    key: usize,
    thread: loom::thread::Thread,
    unparked: loom::sync::Arc<AtomicBool>,
}

#[cfg(rangelock_loom)]
impl Parker {
    pub(crate) fn new() -> Self {
        Parker {
            parked: loom::sync::Mutex::new(Vec::new()),
        }
    }

    /// As the non-loom `park`. loom cannot make time pass, so a thread with a deadline models
    /// the timeout as firing at the moment it would first sleep: the give-up path then races
    /// every possible grant.
    pub(crate) fn park(
        &self,
        key: usize,
        should_park: impl FnOnce() -> bool,
        deadline: Option<Instant>,
    ) -> Park {
        let unparked = loom::sync::Arc::new(AtomicBool::new(false));
        {
            let mut parked = self.parked.lock().unwrap();
            if !should_park() {
                return Park::Invalid;
            }
            if deadline.is_some() {
                return Park::TimedOut;
            }
            parked.push(Parked {
                key,
                thread: loom::thread::current(),
                unparked: unparked.clone(),
            });
        }
        while !unparked.load(Ordering::Acquire) {
            loom::thread::park();
        }
        Park::Unparked
    }

    pub(crate) fn unpark_one(&self, key: usize) {
        let mut parked = self.parked.lock().unwrap();
        if let Some(i) = parked.iter().position(|p| p.key == key) {
            let p = parked.remove(i);
            p.unparked.store(true, Ordering::Release);
            p.thread.unpark();
        }
    }

    /// As the non-loom `wait_while`, but parks on `key` while `busy()`: a model that spins
    /// explores every iteration, and may starve the thread it waits for.
    pub(crate) fn wait_while(&self, key: usize, busy: impl FnOnce() -> bool, _spins: &mut u32) {
        self.park(key, busy, None);
    }

    /// Wakes every thread in `wait_while(key)`.
    pub(crate) fn done(&self, key: usize) {
        let mut parked = self.parked.lock().unwrap();
        parked.retain(|p| {
            if p.key == key {
                p.unparked.store(true, Ordering::Release);
                p.thread.unpark();
                false
            } else {
                true
            }
        });
    }
}

#[cfg(all(feature = "deadlock_detection", rangelock_loom))]
pub(crate) use loom::thread::ThreadId;
/// The identity of a thread in a deadlock report: `std`'s, or loom's under loom (whose threads
/// share one OS thread).
#[cfg(all(feature = "deadlock_detection", not(rangelock_loom)))]
pub(crate) use std::thread::ThreadId;

/// The calling thread's key for the deadlock detector: never 0, never reused in the process,
/// and read from a thread-local after the first call (a request pays one load for it).
#[cfg(feature = "deadlock_detection")]
#[inline]
pub(crate) fn thread_key() -> u64 {
    use core::cell::Cell;
    #[cfg(not(rangelock_loom))]
    std::thread_local! {
        static KEY: Cell<u64> = const { Cell::new(0) };
    }
    #[cfg(rangelock_loom)]
    loom::thread_local! {
        static KEY: Cell<u64> = Cell::new(0);
    }
    #[cold]
    fn first(key: &Cell<u64>) -> u64 {
        // `std`'s atomic even under loom: a counter that orders nothing.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let new = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        key.set(new);
        new
    }
    KEY.with(|key| match key.get() {
        0 => first(key),
        known => known,
    })
}

/// The calling thread's [`ThreadId`].
#[cfg(all(feature = "deadlock_detection", not(rangelock_loom)))]
pub(crate) fn thread_id() -> ThreadId {
    std::thread_local! {
        // Cached: `thread::current()` clones an `Arc`.
        static ID: ThreadId = std::thread::current().id();
    }
    ID.with(|id| *id)
}

/// The calling thread's [`ThreadId`] (loom's).
#[cfg(all(feature = "deadlock_detection", rangelock_loom))]
pub(crate) fn thread_id() -> ThreadId {
    loom::thread::current().id()
}

/// Declares a `static` [`Mutex`]; under loom, a lazily created one, made afresh for each
/// execution of a model.
#[cfg(all(feature = "deadlock_detection", not(rangelock_loom)))]
macro_rules! static_mutex {
    ($(#[$attr:meta])* static $name:ident: $t:ty = $init:expr;) => {
        $(#[$attr])*
        static $name: $crate::sync::Mutex<$t> = $crate::sync::Mutex::new($init);
    };
}
#[cfg(all(feature = "deadlock_detection", rangelock_loom))]
macro_rules! static_mutex {
    ($(#[$attr:meta])* static $name:ident: $t:ty = $init:expr;) => {
        loom::lazy_static! {
            $(#[$attr])*
            static ref $name: $crate::sync::Mutex<$t> = $crate::sync::Mutex::new($init);
        }
    };
}
#[cfg(feature = "deadlock_detection")]
pub(crate) use static_mutex;
