//! `RangeRwLock`: the documented type, its blocking API, and how a request is acquired and
//! released.
//!
//! The pieces: `fast.rs`, the slot word through which up to [`SLOTS`] requests hold the lock
//! while nothing waits; `queue.rs`, the FIFO accounting over the interval tree that takes over
//! when requests conflict; `wait.rs`, the node a waiting request owns and the hand-off that
//! grants it; `guard.rs`, the guards and the `Arc` methods that return the owned ones;
//! `future.rs`, the async methods and their futures; `set.rs`, sets of ranges as one request,
//! with their methods, guards and futures.

mod fast;
mod future;
mod guard;
mod queue;
mod set;
mod wait;

use core::fmt;
use core::ops::RangeBounds;
use core::panic::{RefUnwindSafe, UnwindSafe};
use std::time::{Duration, Instant};

use crate::range::Span;
use crate::sync::{AtomicU64, Mutex, Park, Parker, UnsafeCell};

use fast::{Barge, Fast};
pub(crate) use future::Acquire;
pub use future::{OwnedReadFuture, OwnedWriteFuture, ReadFuture, WriteFuture};
pub(crate) use guard::Held;
pub use guard::{ArcRangeReadGuard, ArcRangeWriteGuard, RangeReadGuard, RangeWriteGuard};
use guard::{Hold, Place};
pub(crate) use queue::Mode;
pub(crate) use queue::Part;
use queue::State;
pub(crate) use set::{AcquireSet, HeldSet};
pub use set::{ArcRangeSetGuard, OwnedSetFuture, RangeSet, RangeSetGuard, SetFuture};
use wait::{wait_unlinked, Outside, WaitNode, WakeList, GRANTED, WAITING};

/// Requests that can hold the lock without the tree (see `fast.rs`).
const SLOTS: usize = 2;

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

/// A published fast-path range, `(start, last)`.
struct Slot(UnsafeCell<(u64, u64)>);

impl Slot {
    #[cfg(not(rangelock_loom))]
    const fn new() -> Self {
        Slot(UnsafeCell::new((0, 0)))
    }

    #[cfg(rangelock_loom)]
    fn new() -> Self {
        Slot(UnsafeCell::new((0, 0)))
    }

    /// # Safety
    ///
    /// The caller owns the slot table: it set `LOCKED` in the lock's word (with `Acquire`)
    /// and has not cleared it, or the lock is in tree mode and the caller holds the internal
    /// mutex (then nobody else reads or writes a slot).
    unsafe fn get(&self) -> (u64, u64) {
        // SAFETY: the caller's contract: no other thread accesses a slot meanwhile.
        self.0.with(|range| unsafe { *range })
    }

    /// # Safety
    ///
    /// As for [`get`](Self::get).
    unsafe fn set(&self, range: (u64, u64)) {
        // SAFETY: the caller's contract: no other thread accesses a slot meanwhile.
        self.0.with_mut(|slot| unsafe { *slot = range });
    }
}

/// Looks at the grant this many times (spinning) before parking, when next in line. (Not
/// under loom: a model that spins explores every iteration.)
#[cfg(not(rangelock_loom))]
const SPINS: u32 = 200;
#[cfg(rangelock_loom)]
const SPINS: u32 = 0;

/// A reader/writer lock over ranges of the `u64` space.
///
/// Each request locks a range `[start, end)` (any [`RangeBounds<u64>`]: `a..b`, `a..=b`, `a..`,
/// `..b`, `..`), shared with [`read`](Self::read) or exclusive with [`write`](Self::write).
/// Requests whose ranges do not overlap never wait for each other; overlapping requests
/// conflict unless both read. `lock.write(..)` locks the whole space, as an `RwLock` would.
///
/// # Fairness
///
/// Conflicting requests are granted in the order they arrived (FIFO), and a request never
/// overtakes an earlier conflicting one that is still waiting: a reader that arrives while a
/// writer waits for an overlapping range queues behind that writer, even if the range is held
/// only by readers. No request starves. Requests on disjoint ranges are independent: neither
/// delays the other, whatever the queue on either.
///
/// The `try_*` methods fail at once if any conflicting request, granted *or waiting*, is ahead;
/// they never jump the queue. A timed request that gives up leaves the queue and unblocks every
/// later request that was waiting only for it.
///
/// That is the lock [`new`](Self::new) makes. [`barging`](Self::barging) makes one that trades
/// some of that order for throughput on hot ranges: a request may pass requests that wait (never
/// one that holds the lock), but only those that have waited less than the hand-off deadline;
/// a request that has waited that long queues in FIFO order, and nothing passes it any more.
///
/// # Progress and cost
///
/// While nothing conflicts, up to two requests hold the lock through slots in one word, with a
/// compare-exchange each way. Otherwise every request, granted or waiting, is a node of an
/// interval tree behind a small internal mutex that is held only to count or un-count
/// conflicts (O(log n + k) for n queued requests and k overlapping ones), never while a thread
/// sleeps. A waiting thread first watches for its grant briefly (spinning, then yielding),
/// since a hand-off often comes within microseconds, then parks through `parking_lot_core`; it
/// is woken after the internal mutex is dropped. Either way it is granted in FIFO order:
/// spinning changes who is awake, not who is next. (A barging lock's requests wait outside the
/// tree until their hand-off deadline: see [`barging`](Self::barging).) Acquiring and
/// releasing do not allocate once the tree's slab has grown to the largest number of requests
/// ever queued at once.
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
///   non-reentrant lock.
/// - Async code uses [`read_async`](Self::read_async) / [`write_async`](Self::write_async)
///   (and [`lock_set_async`](Self::lock_set_async)), which queue in the same FIFO without
///   blocking the executor; the blocking methods must not be called from async tasks that
///   share a thread with the holder. Guards that must outlive a borrow (moved into a thread,
///   stored with the lock, returned from a map of locks) come from an `Arc<RangeRwLock>`:
///   [`read_arc`](Self::read_arc), [`write_arc`](Self::write_arc),
///   [`read_owned`](Self::read_owned), [`write_owned`](Self::write_owned).
/// - There is no poisoning: a thread that panics while holding a guard releases its range when
///   the guard is dropped during unwinding, and other threads go on. The lock is
///   [`UnwindSafe`] and [`RefUnwindSafe`], so `catch_unwind(|| { let _g = lock.write(10..20);
///   .. })` needs no `AssertUnwindSafe`.
/// - Strict FIFO with no lock stealing: it favours bounded waits over throughput on a single hot
///   range, where a barging lock would hand the lock to a running thread.
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
    /// Creates an unlocked range lock. Allocates nothing until requests first conflict.
    ///
    /// ```
    /// static LOCK: rangelock::RangeRwLock = rangelock::RangeRwLock::new();
    /// let _g = LOCK.write(0..10);
    /// ```
    #[cfg(not(rangelock_loom))]
    #[must_use]
    pub const fn new() -> Self {
        RangeRwLock {
            word: AtomicU64::new(0),
            slots: [const { Slot::new() }; SLOTS],
            state: OwnLine(Mutex::new(None)),
            handoff_nanos: 0,
            parker: Parker::new(),
        }
    }

    /// Creates an unlocked range lock (loom build: not `const`).
    #[cfg(rangelock_loom)]
    #[must_use]
    pub fn new() -> Self {
        RangeRwLock {
            word: AtomicU64::new(0),
            slots: core::array::from_fn(|_| Slot::new()),
            state: OwnLine(Mutex::new(None)),
            handoff_nanos: 0,
            parker: Parker::new(),
        }
    }

    /// Creates an unlocked range lock that lets a running thread take a range ahead of
    /// requests that wait for it, as long as none of them has waited `handoff` or longer.
    ///
    /// This trades the strict FIFO order of [`new`](Self::new) for throughput on a hot range:
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
        let mut lock = Self::new();
        lock.handoff_nanos = handoff_nanos(handoff);
        lock
    }

    /// As the non-loom `barging` (loom build: not `const`).
    #[cfg(rangelock_loom)]
    #[must_use]
    pub fn barging(handoff: Duration) -> Self {
        let mut lock = Self::new();
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

impl RangeRwLock {
    /// `Some(deadline)` if barging is allowed.
    fn handoff(&self) -> Option<Duration> {
        (self.handoff_nanos != 0).then(|| Duration::from_nanos(self.handoff_nanos))
    }

    /// The number of requests present and waiting, without moving anything.
    fn census(&self) -> (usize, usize) {
        if let Some(holders) = self.slot_holders() {
            return (holders, 0);
        }
        // The switch back to fast mode happens under the mutex: under it, the word is current.
        let state = self.state.lock();
        let Some(state) = state.as_ref() else {
            return (0, 0);
        };
        let outside = state.outside.len();
        match self.slot_count() {
            Some(holders) => (holders, outside),
            None => (state.requests, state.waiting + outside),
        }
    }

    // Always inline: out of line, its 24-byte result went back through memory and stalled on
    // store forwarding (perf annotate of `cargo bench -p rangelock-benches --bench lock -- uncontended`).
    #[track_caller]
    #[inline(always)]
    fn acquire(&self, range: &impl RangeBounds<u64>, mode: Mode, wait: Wait) -> Option<Hold> {
        let span = Span::new(range);
        let Span::Range { start, last } = span else {
            return Some(Hold::new(span, Place::Empty));
        };
        match self.try_slot(start, last, mode) {
            Fast::Taken(i) => return Some(Hold::new(span, Place::Slot(i))),
            // Nothing waits in fast mode: a slot holder in the way is a holder, never passed.
            Fast::Conflict if matches!(wait, Wait::Never) => return None,
            Fast::Conflict | Fast::Busy => {}
        }
        let place = self.acquire_queued(start, last, mode, wait)?;
        Some(Hold::new(span, place))
    }

    /// The rest of `acquire`, out of line: the request goes through the tree (or, barging,
    /// waits outside it). Returns where it is held once granted.
    #[inline(never)]
    fn acquire_queued(&self, start: u64, last: u64, mode: Mode, wait: Wait) -> Option<Place> {
        self.acquire_request(&[Part { start, last, mode }], true, wait)
    }

    /// Acquires `parts` (one range if `one`, else a set, which is held in the tree): a barging
    /// lock's request that may wait barges, any other queues in the tree.
    #[inline(always)]
    fn acquire_request(&self, parts: &[Part], one: bool, wait: Wait) -> Option<Place> {
        match (self.handoff(), wait) {
            (Some(handoff), Wait::Forever | Wait::Until(_)) => {
                self.barge(parts, one, handoff, wait)
            }
            _ => self.acquire_parts(parts, wait).map(Place::Tree),
        }
    }

    /// Barging locks: acquires `parts` (one range if `one`, else a set) without queueing while the
    /// request is within its hand-off window, which opens at its first conflict: it spins a
    /// little, then waits outside the tree until a request in its way leaves, and tries again.
    /// Once the window has closed it queues in FIFO order like any request of a strict lock.
    // Under loom `BARGE_SPINS` is 0, so the spin phase is skipped.
    #[cfg_attr(rangelock_loom, allow(clippy::absurd_extreme_comparisons))]
    fn barge(&self, parts: &[Part], one: bool, handoff: Duration, wait: Wait) -> Option<Place> {
        let node = WaitNode::new();
        // Once notified, the request is out until it is back under the mutex; if this ends
        // (even unwinding) before, it passes the notification on.
        let notified = Notified {
            lock: self,
            node: &node,
            parts,
        };
        let mut window: Option<Instant> = None;
        let mut spins = 0;
        loop {
            if let ([part], true) = (parts, one) {
                match self.try_slot(part.start, part.last, part.mode) {
                    Fast::Taken(i) => {
                        notified.back();
                        return Some(Place::Slot(i));
                    }
                    // The holder is likely running, and its release a few instructions away,
                    // unless others wait already: then more threads want the CPUs than there
                    // are, and spinning (or yielding) only delays the threads that can go on.
                    Fast::Conflict if spins < BARGE_SPINS && !self.has_waiters() => {
                        spins += 1;
                        barge_backoff(spins);
                        continue;
                    }
                    Fast::Conflict | Fast::Busy => {}
                }
            }
            // The clock is read only by a request that waits.
            let now = Instant::now();
            let end = *window.get_or_insert_with(|| now.checked_add(handoff).unwrap_or(now));
            if now >= end {
                notified.back();
                return self.acquire_parts(parts, wait).map(Place::Tree);
            }
            let may_wait = wait.deadline().is_none_or(|deadline| now < deadline);
            match self.barge_once(parts, one, &node, &mut None, may_wait) {
                Barge::Held(place) => return Some(place),
                Barge::Refused => return None,
                Barge::Outside => {}
            }
            // Leaves the outside list however this ends (even unwinding).
            let outside = OutsideWait {
                lock: self,
                node: &node,
            };
            let until = wait.deadline().map_or(end, |deadline| deadline.min(end));
            let parked = self
                .parker
                .park(node.key(), || node.is_linked_or_waiting(), Some(until));
            drop(outside);
            if parked == Park::TimedOut {
                if wait.deadline().is_some_and(|deadline| deadline <= end) {
                    // Not queued: nothing to give back. One last try, as a timed request
                    // that is granted at its deadline would be.
                    return match self.barge_once(parts, one, &node, &mut None, false) {
                        Barge::Held(place) => Some(place),
                        Barge::Outside | Barge::Refused => None,
                    };
                }
                // The window closed (loom makes every timed park time out at once: this
                // ends its model after one wait outside).
                window = Some(now);
            }
            spins = 0;
        }
    }

    /// Takes `node` out of the outside list, or waits until the releasing thread that took it
    /// out has let it go: then nobody else refers to it but the `notified` list, if it was
    /// notified.
    fn leave_outside(&self, node: &WaitNode) {
        if node.state() == WAITING && self.lock_state().outside.unlink(node) {
            return;
        }
        wait_unlinked(&self.parker, node);
    }

    /// A request that waited outside the tree (for `parts`) gives up: its node leaves the
    /// list, or, if it was notified, it passes the notification on.
    fn give_up_outside(&self, node: &WaitNode, parts: &[Part]) {
        self.leave_outside(node);
        self.pass_on(node, parts);
    }

    /// A request (for `parts`) that was notified and is not back gives up: the requests it was
    /// notified in place of are notified now.
    fn pass_on(&self, node: &WaitNode, parts: &[Part]) {
        if Outside::is_out(node) {
            let mut wake = WakeList::new(&self.parker);
            let mut state = self.lock_state();
            if state.outside.returned(node) {
                state.pass_on(parts, &mut wake);
            }
        }
    }

    /// Acquires every range of `set` as one request; returns its `seq` once granted (0 for an
    /// empty set, which holds nothing).
    fn acquire_set(&self, set: &RangeSet, wait: Wait) -> Option<u64> {
        if set.is_empty() {
            return Some(0);
        }
        match self.acquire_request(set.parts(), false, wait)? {
            Place::Tree(seq) => Some(seq),
            Place::Empty | Place::Slot(_) => unreachable!("a set is held in the tree"),
        }
    }

    /// Queues a request for `parts` (sorted, disjoint, not empty) and waits as `wait` says;
    /// returns its `seq` once granted.
    #[inline]
    fn acquire_parts(&self, parts: &[Part], wait: Wait) -> Option<u64> {
        // Set up only if the request waits (under the mutex, then), and declared first: it
        // outlives the tree's reference to it.
        let node;
        let mut tree = self.lock_tree(parts.len());
        let blocking = match tree.queue_granted(parts, matches!(wait, Wait::Never)) {
            Ok(seq) => return Some(seq),
            Err(_) if matches!(wait, Wait::Never) => return None,
            Err(blocking) => blocking,
        };
        node = WaitNode::new();
        let seq = tree.queue(parts, blocking, Some(&node));
        drop(tree);
        self.wait_for_grant(&node, parts, seq, wait.deadline())
            .then_some(seq)
    }

    /// Waits until the request of `node` (`parts`, `seq`) is granted (true) or `deadline`
    /// passes (false: the request has left the queue).
    // Under loom `SPINS` is 0, so the spin phase is skipped.
    #[cfg_attr(rangelock_loom, allow(clippy::absurd_extreme_comparisons))]
    fn wait_for_grant(
        &self,
        node: &WaitNode,
        parts: &[Part],
        seq: u64,
        deadline: Option<Instant>,
    ) -> bool {
        // If this thread unwinds while queued, the request leaves the queue first, so the tree
        // never keeps a pointer to a dead stack frame.
        let pending = Pending {
            lock: self,
            node,
            parts,
            seq,
        };
        let mut spins = 0;
        loop {
            if node.state() == GRANTED {
                break;
            }
            // Next in line: the grant often comes within microseconds, before a sleep would
            // even begin. Further back, sleep at once and leave the CPU to the holders.
            if spins < SPINS && node.blocking() <= 1 {
                spins += 1;
                core::hint::spin_loop();
                continue;
            }
            let parked = self
                .parker
                .park(node.key(), || node.is_linked_or_waiting(), deadline);
            if parked == Park::TimedOut {
                core::mem::forget(pending);
                return self.give_up(node);
            }
        }
        core::mem::forget(pending);
        true
    }

    /// Settles a request whose owner stops waiting for it: true if it was granted after all
    /// (the owner now holds it), false if it left the queue.
    fn give_up(&self, node: &WaitNode) -> bool {
        let mut wake = WakeList::new(&self.parker);
        let granted = self.lock_state().settle(node, &mut wake);
        // First: the node may be in a releasing thread's list (it was granted meanwhile), and
        // a task's waker that panics below must not let its owner free it while it is linked.
        wait_unlinked(&self.parker, node);
        // Empty if `granted`: a panic from these wakes leaves the caller nothing to release.
        wake.wake_all();
        granted
    }

    /// Releases what `hold` holds.
    #[inline(always)]
    fn release(&self, hold: &Hold) {
        match hold.place() {
            Place::Empty => {}
            Place::Slot(i) => self.release_slot(i, hold.start, hold.last),
            Place::Tree(seq) => self.leave(hold.start, hold.last, seq),
        }
    }

    /// Releases granted request `seq` for `parts`, wherever it is now: a request of one range
    /// may have moved to a slot when the queue drained; a set stays in the tree.
    fn release_request(&self, parts: &[Part], seq: u64) {
        if let [part] = parts {
            self.leave(part.start, part.last, seq);
        } else {
            let mut wake = WakeList::new(&self.parker);
            self.lock_state().leave(parts, seq, &mut wake);
            wake.wake_all();
        }
    }

    /// Removes request `seq` (at `[start, last]`) from the tree and wakes whoever it was the
    /// last blocker of.
    #[inline(never)]
    fn leave(&self, start: u64, last: u64, seq: u64) {
        let mut wake = WakeList::new(&self.parker);
        {
            let mut tree = self.lock_state();
            if tree.leave_one(start, seq, &mut wake) {
                // It may hold a slot bit too: it came from the tree to a slot, and back.
                if let Some(i) = self.moved_slot(&tree, seq) {
                    self.vacate(&mut tree, i);
                }
            } else {
                // Moved to a slot when the queue drained.
                let i = tree.slot_of(seq);
                self.vacate(&mut tree, i);
                tree.notify_outside(start, last, &mut wake);
            }
        }
        wake.wake_all();
    }

    /// Turns the write request of `hold` into a read request.
    fn downgrade_hold(&self, hold: &Hold) {
        match hold.place() {
            Place::Empty => {}
            Place::Slot(i) => self.downgrade_slot(i, hold.start, hold.last),
            Place::Tree(seq) => {
                let part = Part {
                    start: hold.start,
                    last: hold.last,
                    mode: Mode::Write,
                };
                let mut wake = WakeList::new(&self.parker);
                {
                    let mut tree = self.lock_state();
                    if tree.downgrade(part, seq, &mut wake) {
                        if let Some(i) = self.moved_slot(&tree, seq) {
                            self.clear_slot_bits(fast::writer(i));
                        }
                    } else {
                        let i = tree.slot_of(seq);
                        self.clear_slot_bits(fast::writer(i));
                        tree.notify_outside(hold.start, hold.last, &mut wake);
                    }
                }
                wake.wake_all();
            }
        }
    }
}

/// Barging locks: a request waiting outside the tree; dropping it takes the node out.
struct OutsideWait<'a> {
    lock: &'a RangeRwLock,
    node: &'a WaitNode,
}

impl Drop for OutsideWait<'_> {
    fn drop(&mut self) {
        self.lock.leave_outside(self.node);
    }
}

/// Barging locks: a request of this thread's that may be out with a notification (see
/// `Outside`): it must come back under the internal mutex before the request ends.
struct Notified<'a> {
    lock: &'a RangeRwLock,
    node: &'a WaitNode,
    parts: &'a [Part],
}

impl Notified<'_> {
    /// The request took its ranges, or queues in the tree: its notification is used.
    fn back(&self) {
        if Outside::is_out(self.node) {
            self.lock.lock_state().outside.returned(self.node);
        }
    }
}

impl Drop for Notified<'_> {
    /// The request ended without taking its ranges: it passes a notification on.
    fn drop(&mut self) {
        self.lock.pass_on(self.node, self.parts);
    }
}

/// Barging locks: tries on a conflicting slot holder before waiting outside the tree, with
/// pauses only (about a microsecond in all). Yielding or spinning longer made the longest wait
/// on a hot range with more threads than cores two to five times longer (runnable spinners
/// keep a preempted holder off the CPUs) for no gain in throughput (`hot_range` example and
/// `cargo bench -p rangelock-benches --bench lock -- barging`).
#[cfg(not(rangelock_loom))]
const BARGE_SPINS: u32 = 4;
#[cfg(rangelock_loom)]
const BARGE_SPINS: u32 = 0;

/// One step of a barging request's spinning: a few pauses, twice as many each time.
fn barge_backoff(spins: u32) {
    for _ in 0..(1 << spins) {
        core::hint::spin_loop();
    }
}

/// A queued request whose thread may unwind before it is granted: dropping it settles the
/// request (and releases it if it was granted meanwhile).
struct Pending<'a> {
    lock: &'a RangeRwLock,
    node: &'a WaitNode,
    parts: &'a [Part],
    seq: u64,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if self.lock.give_up(self.node) {
            self.lock.release_request(self.parts, self.seq);
        }
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
