//! `RangeRwLock`: the documented type and its blocking API.
//!
//! The pieces form layers; each file uses only those below it:
//! - at the bottom, `requester.rs`: who made a request and where (read by the deadlock
//!   detector; empty without the `deadlock_detection` feature), and `stats.rs`: the contention
//!   counters and the hooks that keep them (empty without the `stats` feature);
//! - `wait.rs`: the shape of a request (`Mode`, `Part`), the node a waiting
//!   request owns, and the wake list that grants it after the internal mutex is released;
//! - `queue.rs`: the FIFO accounting over the interval tree that takes over when requests
//!   conflict (it also keeps, under the mutex, which fast-path slot a moved holder came from);
//! - `fast.rs`: the slot word through which up to `SLOTS` requests hold the lock while nothing
//!   waits, the internal mutex's guard, and barging's one attempt;
//! - `acquire.rs`: acquiring, waiting, giving up and releasing, shared by every form;
//! - on top, the public surface: this file (the type and its blocking methods), `guard.rs`
//!   (guards, and the `Arc` methods that return the owned ones), `future.rs` (the async methods
//!   and their futures) and `set.rs` (sets of ranges as one request, with their methods, guards
//!   and futures).

mod acquire;
mod fast;
mod future;
mod guard;
mod queue;
mod requester;
mod set;
mod stats;
mod wait;

use core::fmt;
use core::ops::RangeBounds;
use core::panic::{RefUnwindSafe, UnwindSafe};
use std::time::{Duration, Instant};

use crate::range::Span;
use crate::sync::{AtomicU64, Mutex, Parker, UnsafeCell};

#[cfg(feature = "stats")]
use crate::sync::Ordering;
pub(crate) use future::Acquire;
pub use future::{OwnedReadFuture, OwnedWriteFuture, ReadFuture, WriteFuture};
pub(crate) use guard::Held;
pub use guard::{ArcRangeReadGuard, ArcRangeWriteGuard, RangeReadGuard, RangeWriteGuard};
use queue::{State, SLOTS};
pub(crate) use requester::Requester;
pub(crate) use set::{AcquireSet, HeldSet};
pub use set::{ArcRangeSetGuard, OwnedSetFuture, RangeSet, RangeSetGuard, SetFuture};
#[cfg(feature = "stats")]
pub use stats::{LockStats, WaitHistogram};
#[cfg(feature = "deadlock_detection")]
pub(crate) use wait::NodeRef;
pub(crate) use wait::{Mode, Part};

/// Hand-off deadlines beyond an hour are an hour, so that adding one to an `Instant` cannot
/// overflow. Zero is no barging.
const fn handoff_nanos(handoff: Duration) -> u64 {
    const HOUR: u64 = 3600 * 1_000_000_000;
    if handoff.as_secs() >= 3600 {
        HOUR
    } else {
        handoff.as_secs() * 1_000_000_000 + handoff.subsec_nanos() as u64
    }
}

/// How long a request may wait.
#[derive(Clone, Copy)]
pub(crate) enum Wait {
    /// Not at all: fail if any conflicting request is ahead.
    Never,
    Forever,
    Until(Instant),
}

impl Wait {
    pub(crate) fn for_duration(timeout: Duration) -> Wait {
        // A deadline too far to represent is no deadline.
        Instant::now()
            .checked_add(timeout)
            .map_or(Wait::Forever, Wait::Until)
    }

    fn is_forever(self) -> bool {
        matches!(self, Wait::Forever)
    }

    fn deadline(self) -> Option<Instant> {
        match self {
            Wait::Until(deadline) => Some(deadline),
            Wait::Never | Wait::Forever => None,
        }
    }
}

/// A value aligned to a cache line of its own.
#[repr(align(64))]
struct OwnLine<T>(T);

impl<T> core::ops::Deref for OwnLine<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// A published fast-path range, `(start, last)`, and who holds it (empty without the
/// `deadlock_detection` feature).
struct Slot(UnsafeCell<(u64, u64, Requester)>);

impl Slot {
    #[cfg(not(rangelock_loom))]
    const fn new() -> Self {
        Slot(UnsafeCell::new((0, 0, Requester::NOBODY)))
    }

    #[cfg(rangelock_loom)]
    fn new() -> Self {
        Slot(UnsafeCell::new((0, 0, Requester::NOBODY)))
    }

    /// # Safety
    ///
    /// The caller owns the slot table: it set `LOCKED` in the lock's word (with `Acquire`)
    /// and has not cleared it, or the lock is in tree mode and the caller holds the internal
    /// mutex (then nobody else reads or writes a slot).
    unsafe fn get(&self) -> (u64, u64) {
        // SAFETY: the caller's contract: no other thread accesses a slot meanwhile.
        self.0.with(|slot| unsafe { ((*slot).0, (*slot).1) })
    }

    /// Who holds the slot's range.
    ///
    /// # Safety
    ///
    /// As for [`get`](Self::get).
    #[cfg(feature = "deadlock_detection")]
    unsafe fn holder(&self) -> Requester {
        // SAFETY: the caller's contract: no other thread accesses a slot meanwhile.
        self.0.with(|slot| unsafe { (*slot).2 })
    }

    /// # Safety
    ///
    /// As for [`get`](Self::get).
    unsafe fn set(&self, range: (u64, u64), who: Requester) {
        // SAFETY: the caller's contract: no other thread accesses a slot meanwhile.
        self.0
            .with_mut(|slot| unsafe { *slot = (range.0, range.1, who) });
    }
}

/// A reader/writer lock over ranges of the `u64` space.
///
/// Each request locks a range `[start, end)` (any [`RangeBounds<u64>`]: `a..b`, `a..=b`, `a..`,
/// `..b`, `..`), shared with [`read`](Self::read) or exclusive with [`write`](Self::write).
/// Requests whose ranges do not overlap never wait for each other; overlapping requests
/// conflict unless both read. `lock.write(..)` locks the whole space, as an `RwLock` would.
///
/// # Fairness
///
/// Two modes, chosen when the lock is made; both apply only among conflicting requests, since
/// requests on disjoint ranges never wait for each other whatever the queue on either.
///
/// - **Bounded barging, the default** ([`new`](Self::new), or [`barging(handoff)`](Self::barging)
///   for another bound). A running thread may take a range ahead of requests that wait for it,
///   as long as each of them has waited less than the hand-off time
///   ([`DEFAULT_HANDOFF`](Self::DEFAULT_HANDOFF), 1 ms, for `new`). A request that has waited
///   that long queues in FIFO order and nothing passes it any more, so no request starves: its
///   wait is bounded by the hand-off plus the holds of the requests queued ahead of it. Nothing
///   ever passes a request that *holds* the lock. This is how Linux's rwsem (its hand-off bit
///   after 4 ms), its mutex and `parking_lot`'s locks behave.
/// - **Strict FIFO** ([`fifo`](Self::fifo)): the Kara/Bueso order. Conflicting requests are
///   granted in the order they arrived, and a request never overtakes an earlier conflicting
///   one that is still waiting: a reader that arrives while a writer waits for an overlapping
///   range queues behind that writer, even if the range is held only by readers.
///
/// How to choose:
///
/// - Take the default unless the order itself matters. On a hot range with more threads than
///   cores, strict FIFO hands each release to a thread that must first be scheduled (tens of
///   microseconds), while barging lets the thread that is running go on: one to two orders of
///   magnitude more throughput there (the README's tables). With no more threads than cores,
///   a FIFO hand-off is a cache-line transfer to a waiter that is watching, and the two modes
///   are closer.
/// - Use [`fifo`](Self::fifo) for a wide writer that must not wait behind a stream of small
///   requests (a truncate or punch over a file that faults keep hitting): with barging each
///   small request that finds the range free may take it during the writer's first
///   millisecond; with FIFO the first one that arrives after the writer waits for it. Use it too
///   where correctness rests on arrival order, and in tests of that order.
/// - What the bound means with more threads than cores: the hand-off bounds how long a request
///   can be *passed*, not how long it waits. Once it queues, its grant still waits for the
///   requests ahead of it and for the scheduler to run its thread, so with eight threads on two
///   cores the longest single wait is a few milliseconds whatever the hand-off (and whatever
///   the lock: `parking_lot`'s and a ticket lock's are alike, the README's "Choosing a hand-off").
///
/// In both modes the `try_*` methods never wait and never pass a holder. On a FIFO lock they fail
/// if any conflicting request, granted *or waiting*, is ahead; on a barging lock they also pass
/// waiting requests that have not queued yet. A timed request that gives up leaves the queue and
/// unblocks every later request that was waiting only for it.
///
/// # Progress and cost
///
/// While nothing conflicts, up to two requests hold the lock through slots in one word, with a
/// compare-exchange each way. Otherwise every request, granted or waiting, is a node of an
/// interval tree behind a small internal mutex that is held only to count or un-count
/// conflicts (O(log n + k) for n queued requests and k overlapping ones), never while a thread
/// sleeps. A waiting thread that is next in line first watches for its grant, for at most
/// 20 µs (a holder that is running releases well within that, and a thread that watches needs
/// no wake-up: with no more threads than cores a strict FIFO hand-off is then a cache-line
/// transfer), then parks through `parking_lot_core`; it is woken after the internal mutex is
/// dropped. A waiter further back parks at once. Either way the order is the same: watching
/// changes who is awake, not who is next. (A barging lock's requests wait outside the tree
/// until their hand-off deadline: see [`barging`](Self::barging).) Acquiring and releasing do
/// not allocate once the tree's slab has grown to the largest number of requests ever queued
/// at once.
///
/// # Differences from `RwLock`
///
/// - It protects no data: it orders access to ranges of something else (a file, a device, a
///   buffer). [`SliceRwLock`](crate::SliceRwLock) pairs it with a slice.
/// - Guards are for a range. A thread that holds a range and then requests another can
///   deadlock, even if the second does not overlap the first and even if ranges are taken in
///   ascending order: holding `0..3` and then asking for `3..6` waits behind a request for
///   `2..4` that arrived in between, which waits for `0..3`. To hold several ranges, lock
///   them as one request with a [`RangeSet`] ([`lock_set`](Self::lock_set)). Requesting a
///   range that conflicts with one the thread holds deadlocks at once, as with any
///   non-reentrant lock. The `deadlock_detection` feature finds both kinds (see the crate
///   docs' "Debugging a hang").
/// - Async code uses [`read_async`](Self::read_async) / [`write_async`](Self::write_async) (and
///   [`lock_set_async`](Self::lock_set_async)), which wait by the same rules as blocking requests
///   without blocking the executor; the blocking methods must not be called from async tasks that
///   share a thread with the holder. Guards that must outlive a borrow (moved into a thread, stored
///   with the lock, returned from a map of locks) come from an `Arc<RangeRwLock>`:
///   [`read_arc`](Self::read_arc), [`write_arc`](Self::write_arc),
///   [`read_owned`](Self::read_owned), [`write_owned`](Self::write_owned).
/// - There is no poisoning: a thread that panics while holding a guard releases its range when
///   the guard is dropped during unwinding, and other threads go on. The lock is
///   [`UnwindSafe`] and [`RefUnwindSafe`], so `catch_unwind(|| { let _g = lock.write(10..20);
///   .. })` needs no `AssertUnwindSafe`.
/// - Bounded unfairness by default, as `parking_lot`'s eventual fairness, with strict FIFO on
///   request ([`fifo`](Self::fifo)); see "Fairness".
/// - [`mem::forget`](core::mem::forget) on a guard leaves its range locked for the lock's life;
///   it is never undefined behaviour.
///
/// # Examples
///
/// ```
/// use rangelock::RangeRwLock;
///
/// let lock = RangeRwLock::new();
/// let header = lock.write(0..512);
/// // Disjoint ranges are independent, even exclusive ones.
/// let body = lock.write(512..4096);
/// // Overlapping reads share.
/// drop(body);
/// let r1 = lock.read(1024..2048);
/// let r2 = lock.read(1500..=3000);
/// assert!(lock.try_write(2000..2001).is_none());
/// drop((header, r1, r2));
/// assert!(!lock.is_locked(..));
/// ```
pub struct RangeRwLock {
    /// The fast-path word: slot bits, `LOCKED` and `TREE` (see `fast.rs`).
    word: AtomicU64,
    /// The ranges of the fast-path holders.
    slots: [Slot; SLOTS],
    /// The tree and its accounting, allocated the first time requests conflict. On a cache
    /// line of its own: requests that queue or wait take the mutex without moving the fast
    /// path's line away from a running holder.
    state: OwnLine<Mutex<Option<Box<State>>>>,
    /// Barging: the hand-off deadline in nanoseconds; 0 for strict FIFO.
    handoff_nanos: u64,
    parker: Parker,
    /// Feature `stats`: fast-path grants, changed only by the owner of the slot table (beside
    /// the word and the slots, on the fast path's cache line).
    #[cfg(feature = "stats")]
    fast_grants: AtomicU64,
    /// Feature `stats`: the other counters, on cache lines of their own (only waiting requests
    /// write them).
    #[cfg(feature = "stats")]
    stats: OwnLine<stats::Stats>,
}

// SAFETY: the slots are the only fields without their own synchronisation, and a thread reads
// or writes them only while it owns the slot table (`LOCKED`, taken with `Acquire` and let go
// with `Release`); the tree is behind the mutex; the rest are atomics and plain data.
unsafe impl Sync for RangeRwLock {}
// SAFETY: as above; nothing in the lock is tied to a thread.
unsafe impl Send for RangeRwLock {}

// No poisoning, as with `std`'s locks, which poison for the data they protect: this lock
// protects none, and a panic does not leave it half-changed (a guard releases its range as it
// unwinds, a waiter that unwinds leaves the queue, and no user code runs while the internal
// state is being changed), so what the code after `catch_unwind` sees is a consistent lock.
impl UnwindSafe for RangeRwLock {}
impl RefUnwindSafe for RangeRwLock {}

impl RangeRwLock {
    /// The hand-off deadline of [`new`](Self::new): a request that has waited this long for a
    /// range is passed by nothing any more.
    ///
    /// One millisecond, chosen by measurement (the README's "Choosing a hand-off"): on one hot
    /// range with more threads than cores, a longer hand-off gains a few per cent of throughput
    /// (4 ms: about 5 % more), a shorter one loses more (0.25 ms: about 10 % less), and each
    /// millisecond is added to the wait a request can be made to bear. Linux's rwsem waits at
    /// least 4 ms before it sets its hand-off bit; `parking_lot` forces a fair hand-over every
    /// 0.5 ms on average.
    ///
    /// ```
    /// use std::time::Duration;
    /// assert_eq!(rangelock::RangeRwLock::DEFAULT_HANDOFF, Duration::from_millis(1));
    /// ```
    pub const DEFAULT_HANDOFF: Duration = Duration::from_millis(1);

    /// Creates an unlocked range lock with bounded barging: a running thread may take a range
    /// ahead of requests that have waited less than [`DEFAULT_HANDOFF`](Self::DEFAULT_HANDOFF)
    /// (1 ms) for it, and nothing passes a request that has waited that long. It is
    /// [`barging(RangeRwLock::DEFAULT_HANDOFF)`](Self::barging); [`fifo`](Self::fifo) makes a
    /// lock with strict FIFO order instead (see "Fairness" above for how to choose). Allocates
    /// nothing until requests first conflict.
    ///
    /// ```
    /// static LOCK: rangelock::RangeRwLock = rangelock::RangeRwLock::new();
    /// let _g = LOCK.write(0..10);
    /// ```
    #[cfg(not(rangelock_loom))]
    #[must_use]
    pub const fn new() -> Self {
        Self::barging(Self::DEFAULT_HANDOFF)
    }

    /// As the non-loom `new` (loom build: not `const`).
    #[cfg(rangelock_loom)]
    #[must_use]
    pub fn new() -> Self {
        Self::barging(Self::DEFAULT_HANDOFF)
    }

    /// Creates an unlocked range lock with strict FIFO order among conflicting requests: the
    /// Kara/Bueso rule, with no barging at any time. Ask for it where the order itself matters:
    /// a wide writer (a truncate, a punch) that must not wait behind a stream of small requests
    /// for even a millisecond, code whose correctness rests on arrival order, a test of queue
    /// order. Allocates nothing until requests first conflict.
    ///
    /// ```
    /// static LOCK: rangelock::RangeRwLock = rangelock::RangeRwLock::fifo();
    /// let _g = LOCK.write(0..10);
    /// ```
    #[cfg(not(rangelock_loom))]
    #[must_use]
    pub const fn fifo() -> Self {
        RangeRwLock {
            word: AtomicU64::new(0),
            slots: [const { Slot::new() }; SLOTS],
            state: OwnLine(Mutex::new(None)),
            handoff_nanos: 0,
            parker: Parker::new(),
            #[cfg(feature = "stats")]
            fast_grants: AtomicU64::new(0),
            #[cfg(feature = "stats")]
            stats: OwnLine(stats::Stats::new()),
        }
    }

    /// As the non-loom `fifo` (loom build: not `const`).
    #[cfg(rangelock_loom)]
    #[must_use]
    pub fn fifo() -> Self {
        RangeRwLock {
            word: AtomicU64::new(0),
            slots: core::array::from_fn(|_| Slot::new()),
            state: OwnLine(Mutex::new(None)),
            handoff_nanos: 0,
            parker: Parker::new(),
            #[cfg(feature = "stats")]
            fast_grants: AtomicU64::new(0),
            #[cfg(feature = "stats")]
            stats: OwnLine(stats::Stats::new()),
        }
    }

    /// Creates an unlocked range lock that lets a running thread take a range ahead of
    /// requests that wait for it, as long as none of them has waited `handoff` or longer.
    ///
    /// [`new`](Self::new) is `barging(RangeRwLock::DEFAULT_HANDOFF)`. This trades the strict FIFO
    /// order of [`fifo`](Self::fifo) for throughput on a hot range:
    /// a thread that releases and re-requests a range need not wait for the next waiter to be
    /// scheduled. A request that finds its range taken does not queue at first: it spins
    /// briefly (unless others wait already), then sleeps until a release that overlaps it, and
    /// tries again. Once it has waited `handoff` it queues in FIFO order, and no later request
    /// passes it, so its wait stays bounded by about `handoff` plus the requests queued ahead
    /// of it. No request ever passes one that holds the lock. `try_*` requests pass waiters
    /// that have not queued yet. `handoff` of zero is strict FIFO; more than an hour counts as
    /// an hour.
    ///
    /// A release wakes one of several writers that wait for the same range, not all of them.
    /// The others (each waiting for a range that contains the woken one's) stay asleep until
    /// the woken one has tried again: then its own release, or the release of whatever sent it
    /// back, wakes the next; if it gives up instead, it wakes the next itself. So a woken
    /// future that its owner neither polls nor drops keeps those writers waiting, as a granted
    /// but unpolled future of a FIFO lock keeps its range.
    ///
    /// ```
    /// use std::time::Duration;
    /// let lock = rangelock::RangeRwLock::barging(Duration::from_millis(1));
    /// let _w = lock.write(0..4096);
    /// ```
    #[cfg(not(rangelock_loom))]
    #[must_use]
    pub const fn barging(handoff: Duration) -> Self {
        let mut lock = Self::fifo();
        lock.handoff_nanos = handoff_nanos(handoff);
        lock
    }

    /// As the non-loom `barging` (loom build: not `const`).
    #[cfg(rangelock_loom)]
    #[must_use]
    pub fn barging(handoff: Duration) -> Self {
        let mut lock = Self::fifo();
        lock.handoff_nanos = handoff_nanos(handoff);
        lock
    }

    /// Locks `range` shared, blocking until every earlier conflicting (overlapping write)
    /// request has left.
    ///
    /// # Panics
    ///
    /// If the range starts after it ends (`10..5`).
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = rangelock::RangeRwLock::new();
    /// let a = lock.read(0..4096);
    /// let b = lock.read(..); // readers share
    /// assert_eq!(a.range(), 0..=4095);
    /// assert_eq!(b.range(), 0..=u64::MAX);
    /// ```
    #[track_caller]
    #[inline(always)]
    pub fn read(&self, range: impl RangeBounds<u64>) -> RangeReadGuard<'_> {
        let hold = self.acquire(&range, Mode::Read, Wait::Forever);
        RangeReadGuard(Held::new(
            self,
            hold.expect("a request without deadline is granted"),
        ))
    }

    /// Locks `range` exclusive, blocking until every earlier overlapping request has left.
    ///
    /// # Panics
    ///
    /// If the range starts after it ends (`10..5`).
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = rangelock::RangeRwLock::new();
    /// let w = lock.write(4096..=8191);
    /// assert!(lock.try_read(8000..9000).is_none());
    /// assert!(lock.try_read(8192..9000).is_some());
    /// drop(w);
    /// ```
    #[track_caller]
    #[inline(always)]
    pub fn write(&self, range: impl RangeBounds<u64>) -> RangeWriteGuard<'_> {
        let hold = self.acquire(&range, Mode::Write, Wait::Forever);
        RangeWriteGuard(Held::new(
            self,
            hold.expect("a request without deadline is granted"),
        ))
    }

    /// Locks `range` shared if no conflicting request, granted or waiting, is ahead; never
    /// blocks.
    ///
    /// ```
    /// let lock = rangelock::RangeRwLock::new();
    /// let w = lock.write(0..10);
    /// assert!(lock.try_read(5..15).is_none());
    /// assert!(lock.try_read(10..15).is_some());
    /// # drop(w);
    /// ```
    #[track_caller]
    #[inline(always)]
    pub fn try_read(&self, range: impl RangeBounds<u64>) -> Option<RangeReadGuard<'_>> {
        let hold = self.acquire(&range, Mode::Read, Wait::Never)?;
        Some(RangeReadGuard(Held::new(self, hold)))
    }

    /// Locks `range` exclusive if no overlapping request, granted or waiting, is ahead; never
    /// blocks.
    ///
    /// ```
    /// let lock = rangelock::RangeRwLock::new();
    /// let r = lock.read(0..10);
    /// assert!(lock.try_write(9..20).is_none());
    /// assert!(lock.try_write(10..20).is_some());
    /// # drop(r);
    /// ```
    #[track_caller]
    #[inline(always)]
    pub fn try_write(&self, range: impl RangeBounds<u64>) -> Option<RangeWriteGuard<'_>> {
        let hold = self.acquire(&range, Mode::Write, Wait::Never)?;
        Some(RangeWriteGuard(Held::new(self, hold)))
    }

    /// Locks `range` shared, waiting at most `timeout`. On timeout the request leaves the queue
    /// and later requests it was holding up go on.
    ///
    /// ```
    /// use std::time::Duration;
    /// let lock = rangelock::RangeRwLock::new();
    /// let w = lock.write(0..10);
    /// assert!(lock.try_read_for(0..1, Duration::from_millis(10)).is_none());
    /// drop(w);
    /// assert!(lock.try_read_for(0..1, Duration::from_millis(10)).is_some());
    /// ```
    #[track_caller]
    pub fn try_read_for(
        &self,
        range: impl RangeBounds<u64>,
        timeout: Duration,
    ) -> Option<RangeReadGuard<'_>> {
        let hold = self.acquire(&range, Mode::Read, Wait::for_duration(timeout))?;
        Some(RangeReadGuard(Held::new(self, hold)))
    }

    /// Locks `range` exclusive, waiting at most `timeout`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let lock = rangelock::RangeRwLock::new();
    /// let r = lock.read(..);
    /// assert!(lock.try_write_for(100..200, Duration::from_millis(10)).is_none());
    /// # drop(r);
    /// ```
    #[track_caller]
    pub fn try_write_for(
        &self,
        range: impl RangeBounds<u64>,
        timeout: Duration,
    ) -> Option<RangeWriteGuard<'_>> {
        let hold = self.acquire(&range, Mode::Write, Wait::for_duration(timeout))?;
        Some(RangeWriteGuard(Held::new(self, hold)))
    }

    /// Locks `range` shared, waiting until `deadline` at the latest.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let lock = rangelock::RangeRwLock::new();
    /// let deadline = Instant::now() + Duration::from_millis(10);
    /// assert!(lock.try_read_until(0..1, deadline).is_some());
    /// ```
    #[track_caller]
    pub fn try_read_until(
        &self,
        range: impl RangeBounds<u64>,
        deadline: Instant,
    ) -> Option<RangeReadGuard<'_>> {
        let hold = self.acquire(&range, Mode::Read, Wait::Until(deadline))?;
        Some(RangeReadGuard(Held::new(self, hold)))
    }

    /// Locks `range` exclusive, waiting until `deadline` at the latest.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let lock = rangelock::RangeRwLock::new();
    /// let _r = lock.read(0..1);
    /// let deadline = Instant::now() + Duration::from_millis(10);
    /// assert!(lock.try_write_until(0..1, deadline).is_none());
    /// ```
    #[track_caller]
    pub fn try_write_until(
        &self,
        range: impl RangeBounds<u64>,
        deadline: Instant,
    ) -> Option<RangeWriteGuard<'_>> {
        let hold = self.acquire(&range, Mode::Write, Wait::Until(deadline))?;
        Some(RangeWriteGuard(Held::new(self, hold)))
    }

    /// Whether any granted request (read or write) overlaps `range`. Waiting requests do not
    /// count. The answer may be stale as soon as it is returned; it is for assertions and
    /// diagnostics, not for deciding whether to lock.
    ///
    /// ```
    /// let lock = rangelock::RangeRwLock::new();
    /// let _g = lock.read(10..20);
    /// assert!(lock.is_locked(..));
    /// assert!(lock.is_locked(19..=19));
    /// assert!(!lock.is_locked(20..30));
    /// ```
    #[track_caller]
    pub fn is_locked(&self, range: impl RangeBounds<u64>) -> bool {
        match Span::new(&range) {
            Span::Empty { .. } => false,
            Span::Range { start, last } => {
                if let Some(locked) = self.slots_locked(start, last) {
                    return locked;
                }
                // The switch back to fast mode happens under the mutex (and the slot table may
                // be taken under it).
                let state = self.state.lock();
                match self.slots_locked(start, last) {
                    Some(locked) => locked,
                    None => state.as_ref().is_some_and(|s| s.is_locked(start, last)),
                }
            }
        }
    }

    /// The number of requests waiting (queued and not granted). A diagnostic for tests and
    /// models, stale as soon as it returns; not part of the stable API.
    #[doc(hidden)]
    pub fn waiting(&self) -> usize {
        self.census().1
    }
}

/// Requests still queued when a lock is dropped belong to leaked futures (nothing else outlives
/// a borrow of the lock): the deadlock detector forgets them.
#[cfg(feature = "deadlock_detection")]
impl Drop for RangeRwLock {
    fn drop(&mut self) {
        let mut state = self.state.lock();
        let Some(state) = state.as_deref_mut().filter(|s| s.waiting > 0) else {
            return;
        };
        let mut nodes = Vec::new();
        state.tree.for_each_overlap(0, u64::MAX, |_, _, _, entry| {
            nodes.extend(entry.node);
            true
        });
        crate::deadlock::forget(nodes.into_iter());
    }
}

/// Contention statistics (feature `stats`; the counters are in `stats.rs`).
#[cfg(feature = "stats")]
impl RangeRwLock {
    /// The lock's contention statistics since it was created (or since
    /// [`reset_stats`](Self::reset_stats)): acquisitions, how many had to wait and for how
    /// long, and for a barging lock how often requests passed waiting ones. Feature `stats`.
    ///
    /// Counted: every granted request for a non-empty range or set, blocking, `try_`, timed or
    /// async. A request *waited* if it was not granted at its first attempt (it spun, waited
    /// outside the queue of a barging lock, or queued); its wait runs from then until its
    /// thread (or task) saw the grant. The figures are read one by one while the lock is in
    /// use, so they may be a few requests apart from each other.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let lock = rangelock::RangeRwLock::new();
    /// std::thread::scope(|s| {
    ///     let held = lock.write(0..10);
    ///     let waiter = s.spawn(|| drop(lock.write(5..6)));
    ///     while lock.waiting() == 0 {
    ///         std::thread::yield_now();
    ///     }
    ///     std::thread::sleep(Duration::from_millis(5));
    ///     drop(held);
    ///     waiter.join().unwrap();
    /// });
    /// let stats = lock.stats();
    /// assert_eq!(stats.acquisitions, 2);
    /// assert_eq!(stats.contended, 1);
    /// assert!(stats.wait_max >= Duration::from_millis(5));
    /// println!("{stats}");
    /// ```
    #[must_use]
    pub fn stats(&self) -> LockStats {
        let (granted, passed) = match self.state.lock().as_deref() {
            Some(state) => (state.granted, state.passed),
            None => (0, 0),
        };
        let fast = self.fast_grants.load(Ordering::Relaxed);
        self.stats.report(fast + granted, passed)
    }

    /// Sets every statistic back to zero. Feature `stats`.
    ///
    /// ```
    /// let lock = rangelock::RangeRwLock::new();
    /// drop(lock.read(0..1));
    /// assert_eq!(lock.stats().acquisitions, 1);
    /// lock.reset_stats();
    /// assert_eq!(lock.stats().acquisitions, 0);
    /// ```
    pub fn reset_stats(&self) {
        let mut state = self.state.lock();
        if let Some(state) = state.as_deref_mut() {
            state.granted = 0;
            state.passed = 0;
        }
        // Under the mutex the lock stays in its mode; in fast mode the slot table is taken.
        self.with_fast_path_stopped(|| self.fast_grants.store(0, Ordering::Relaxed));
        drop(state);
        self.stats.reset();
    }
}

impl Default for RangeRwLock {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for RangeRwLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A snapshot first: nothing is formatted while the lock's state is held.
        let (requests, waiting) = self.census();
        f.debug_struct("RangeRwLock")
            .field("requests", &requests)
            .field("waiting", &waiting)
            .finish()
    }
}

#[cfg(test)]
mod async_tests;
#[cfg(test)]
pub(crate) mod set_tests;
#[cfg(test)]
pub(crate) mod tests;
