//! Several ranges as one request: [`RangeSet`], its guards and its futures.

use core::borrow::Borrow;
use core::cell::Cell;
use core::fmt;
use core::future::Future;
use core::mem::ManuallyDrop;
use core::ops::{Deref, RangeBounds, RangeInclusive};
use core::pin::Pin;
use core::task::{Context, Poll};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::fast::Place;
use super::future::Acquire;
use super::requester::Requester;
use super::wait::{Mode, Part};
use super::{RangeRwLock, Wait};
use crate::range::Span;

/// A set of ranges, each to be locked shared or exclusive, that
/// [`RangeRwLock::lock_set`] takes as **one** request.
///
/// This is the way to hold several ranges at once. Taking them one by one, even in ascending
/// order, can deadlock: a thread that holds `0..3` and then asks for `3..6` waits behind any
/// request for, say, `2..4` that arrived in between, and that request waits for the first
/// thread. A set request takes one place in the queue, never holds part of the set while it
/// waits for the rest, and its guard releases every range at once.
///
/// Overlapping ranges in a set are merged into one, exclusive if any of them is. Empty ranges
/// are dropped. Building a set allocates (it is a `Vec`); locking it does not, so a set can be
/// built once and locked many times (an owned set comes back from its guard with
/// [`ArcRangeSetGuard::into_set`]).
///
/// A [`SliceRwLock`](crate::SliceRwLock) takes a set of index ranges the same way
/// ([`SliceRwLock::lock_set`](crate::SliceRwLock::lock_set)), and hands out every member's
/// elements at once.
///
/// # Examples
///
/// ```
/// use rangelock::{RangeRwLock, RangeSet};
///
/// let lock = RangeRwLock::new();
/// // Copy blocks 0..8 to 100..108: read the source, write the destination, as one request.
/// let set = RangeSet::new().read(0..8).write(100..108);
/// let guard = lock.lock_set(&set);
/// assert!(lock.try_read(4..5).is_some());
/// assert!(lock.try_write(4..5).is_none());
/// assert!(lock.try_read(104..105).is_none());
/// drop(guard);
/// assert!(!lock.is_locked(..));
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RangeSet {
    /// Sorted by start, pairwise disjoint, none empty (kept so by `push`). A safety invariant,
    /// not only a tidy one: the tree keys entries by `(start, seq)`, so the parts of one
    /// request need distinct starts, and `SliceRwLock` sets hand out a `&mut [T]` per member.
    parts: Vec<Part>,
}

impl RangeSet {
    /// An empty set; locking it succeeds at once and holds nothing.
    ///
    /// ```
    /// let set = rangelock::RangeSet::new();
    /// assert!(set.is_empty());
    /// ```
    #[must_use]
    pub const fn new() -> Self {
        RangeSet { parts: Vec::new() }
    }

    /// Adds `range`, to be locked shared; returns the set (for chaining).
    ///
    /// # Panics
    ///
    /// If the range starts after it ends (`10..5`).
    ///
    /// ```
    /// let set = rangelock::RangeSet::new().read(0..10).read(5..20);
    /// assert_eq!(set.len(), 1); // merged
    /// ```
    #[track_caller]
    #[must_use]
    pub fn read(mut self, range: impl RangeBounds<u64>) -> Self {
        self.push(&range, Mode::Read);
        self
    }

    /// Adds `range`, to be locked exclusive; returns the set (for chaining).
    ///
    /// # Panics
    ///
    /// If the range starts after it ends (`10..5`).
    ///
    /// ```
    /// let set = rangelock::RangeSet::new().write(0..10).read(20..30);
    /// assert_eq!(set.len(), 2);
    /// ```
    #[track_caller]
    #[must_use]
    pub fn write(mut self, range: impl RangeBounds<u64>) -> Self {
        self.push(&range, Mode::Write);
        self
    }

    /// Adds `range` in place, to be locked shared.
    ///
    /// # Panics
    ///
    /// If the range starts after it ends (`10..5`).
    ///
    /// ```
    /// let mut set = rangelock::RangeSet::new();
    /// for block in [3, 9, 4] {
    ///     set.add_read(block..=block);
    /// }
    /// assert_eq!(set.len(), 3);
    /// ```
    #[track_caller]
    pub fn add_read(&mut self, range: impl RangeBounds<u64>) {
        self.push(&range, Mode::Read);
    }

    /// Adds `range` in place, to be locked exclusive.
    ///
    /// # Panics
    ///
    /// If the range starts after it ends (`10..5`).
    ///
    /// ```
    /// let mut set = rangelock::RangeSet::new();
    /// set.add_read(0..10);
    /// set.add_write(5..6); // overlaps: the merged range is exclusive
    /// assert_eq!(set.ranges().collect::<Vec<_>>(), [(0..=9, true)]);
    /// ```
    #[track_caller]
    pub fn add_write(&mut self, range: impl RangeBounds<u64>) {
        self.push(&range, Mode::Write);
    }

    /// Removes every range, keeping the allocation.
    ///
    /// ```
    /// let mut set = rangelock::RangeSet::new().write(0..1);
    /// set.clear();
    /// assert!(set.is_empty());
    /// ```
    pub fn clear(&mut self) {
        self.parts.clear();
    }

    /// The number of disjoint ranges (after merging overlaps).
    ///
    /// ```
    /// assert_eq!(rangelock::RangeSet::new().read(0..1).write(1..2).len(), 2);
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.parts.len()
    }

    /// Whether the set holds no range.
    ///
    /// ```
    /// assert!(rangelock::RangeSet::new().read(5..5).is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// The ranges in ascending order, each with `true` if it is to be locked exclusive.
    ///
    /// ```
    /// let set = rangelock::RangeSet::new().write(10..20).read(0..5);
    /// assert_eq!(set.ranges().collect::<Vec<_>>(), [(0..=4, false), (10..=19, true)]);
    /// ```
    #[must_use]
    pub fn ranges(&self) -> impl ExactSizeIterator<Item = (RangeInclusive<u64>, bool)> + '_ {
        self.parts
            .iter()
            .map(|p| (p.start..=p.last, p.mode == Mode::Write))
    }

    pub(crate) fn parts(&self) -> &[Part] {
        &self.parts
    }

    #[track_caller]
    fn push(&mut self, range: &impl RangeBounds<u64>, mode: Mode) {
        let Span::Range {
            mut start,
            mut last,
        } = Span::new(range)
        else {
            return;
        };
        let mut mode = mode;
        // Absorb every part that overlaps the new one, then insert it in order.
        let first = self.parts.partition_point(|p| p.last < start);
        let mut end = first;
        while end < self.parts.len() && self.parts[end].start <= last {
            let p = self.parts[end];
            start = start.min(p.start);
            last = last.max(p.last);
            if p.mode == Mode::Write {
                mode = Mode::Write;
            }
            end += 1;
        }
        self.parts.splice(first..end, [Part { start, last, mode }]);
    }
}

impl fmt::Debug for RangeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.parts.iter().map(PartDebug))
            .finish()
    }
}

struct PartDebug<'a>(&'a Part);

impl fmt::Debug for PartDebug<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.0, f)
    }
}

/// Set requests: blocking, `try_*`, timed, async and owned.
impl RangeRwLock {
    /// Locks every range of `set` (each shared or exclusive, as the set says) as one request,
    /// blocking until all are free of earlier conflicting requests. The request takes one
    /// place in the FIFO and holds nothing until it holds everything; see [`RangeSet`] for why
    /// this, not a sequence of calls, is how to hold several ranges.
    ///
    /// # Examples
    ///
    /// ```
    /// use rangelock::{RangeRwLock, RangeSet};
    /// let lock = RangeRwLock::new();
    /// let set = RangeSet::new().write(0..3).write(3..6);
    /// let both = lock.lock_set(&set);
    /// assert!(lock.try_write(2..4).is_none());
    /// drop(both);
    /// assert!(lock.try_write(2..4).is_some());
    /// ```
    #[cfg_attr(feature = "deadlock_detection", track_caller)]
    pub fn lock_set<'a>(&'a self, set: &'a RangeSet) -> RangeSetGuard<'a> {
        match HeldSet::acquire(self, set, Wait::Forever) {
            Ok(held) => RangeSetGuard(held),
            Err(_) => unreachable!("a request without deadline is granted"),
        }
    }

    /// As [`lock_set`](Self::lock_set), but fails instead of waiting: `None` if any range of
    /// the set conflicts with a request ahead of it, granted or waiting. Holds nothing then.
    ///
    /// ```
    /// use rangelock::{RangeRwLock, RangeSet};
    /// let lock = RangeRwLock::new();
    /// let _held = lock.write(5..6);
    /// let set = RangeSet::new().write(0..1).write(5..6);
    /// assert!(lock.try_lock_set(&set).is_none());
    /// assert!(lock.try_write(0..1).is_some(), "nothing of the set is held");
    /// ```
    #[cfg_attr(feature = "deadlock_detection", track_caller)]
    pub fn try_lock_set<'a>(&'a self, set: &'a RangeSet) -> Option<RangeSetGuard<'a>> {
        HeldSet::acquire(self, set, Wait::Never)
            .ok()
            .map(RangeSetGuard)
    }

    /// As [`lock_set`](Self::lock_set), waiting at most `timeout`. On timeout the request
    /// leaves the queue as a whole (it never held part of the set), and later requests it was
    /// holding up go on.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rangelock::{RangeRwLock, RangeSet};
    /// let lock = RangeRwLock::new();
    /// let set = RangeSet::new().write(0..1).write(5..6);
    /// let held = lock.read(5..6);
    /// assert!(lock.try_lock_set_for(&set, Duration::from_millis(10)).is_none());
    /// assert!(lock.try_write(0..1).is_some(), "nothing of the set is held");
    /// drop(held);
    /// assert!(lock.try_lock_set_for(&set, Duration::from_millis(10)).is_some());
    /// ```
    #[cfg_attr(feature = "deadlock_detection", track_caller)]
    pub fn try_lock_set_for<'a>(
        &'a self,
        set: &'a RangeSet,
        timeout: Duration,
    ) -> Option<RangeSetGuard<'a>> {
        HeldSet::acquire(self, set, Wait::for_duration(timeout))
            .ok()
            .map(RangeSetGuard)
    }

    /// As [`lock_set`](Self::lock_set), waiting until `deadline` at the latest (see
    /// [`try_lock_set_for`](Self::try_lock_set_for)).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use rangelock::{RangeRwLock, RangeSet};
    /// let lock = RangeRwLock::new();
    /// let set = RangeSet::new().read(0..10).write(20..30);
    /// let deadline = Instant::now() + Duration::from_millis(10);
    /// let guard = lock.try_lock_set_until(&set, deadline).expect("nothing in the way");
    /// assert!(lock.try_lock_set_until(&set, deadline).is_none()); // the writes conflict
    /// # drop(guard);
    /// ```
    #[cfg_attr(feature = "deadlock_detection", track_caller)]
    pub fn try_lock_set_until<'a>(
        &'a self,
        set: &'a RangeSet,
        deadline: Instant,
    ) -> Option<RangeSetGuard<'a>> {
        HeldSet::acquire(self, set, Wait::Until(deadline))
            .ok()
            .map(RangeSetGuard)
    }

    /// As [`lock_set`](Self::lock_set), asynchronously (see [`read_async`](Self::read_async)
    /// for how the future queues, and what dropping it does).
    ///
    /// ```
    /// use rangelock::{RangeRwLock, RangeSet};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let lock = RangeRwLock::new();
    /// let set = RangeSet::new().read(0..10).write(20..30);
    /// let guard = lock.lock_set_async(&set).await;
    /// assert!(lock.try_read(25..26).is_none());
    /// # drop(guard);
    /// # });
    /// ```
    #[cfg_attr(feature = "deadlock_detection", track_caller)]
    pub fn lock_set_async<'a>(&'a self, set: &'a RangeSet) -> SetFuture<'a> {
        SetFuture(AcquireSet::new(self, set))
    }

    /// As [`lock_set`](Self::lock_set), for a guard that owns the set and keeps the lock
    /// alive: it is `'static`, so it can be moved into a thread, stored next to the `Arc`, or
    /// returned. [`ArcRangeSetGuard::into_set`] gives the set back for the next request.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use rangelock::{RangeRwLock, RangeSet};
    /// let lock = Arc::new(RangeRwLock::new());
    /// let guard = lock.lock_set_arc(RangeSet::new().read(0..8).write(100..108));
    /// let worker = std::thread::spawn(move || guard.set().len());
    /// assert_eq!(worker.join().unwrap(), 2);
    /// assert!(!lock.is_locked(..));
    /// ```
    #[cfg_attr(feature = "deadlock_detection", track_caller)]
    pub fn lock_set_arc(self: &Arc<Self>, set: RangeSet) -> ArcRangeSetGuard {
        match HeldSet::acquire_owned(Arc::clone(self), set, Wait::Forever) {
            Ok(held) => ArcRangeSetGuard(held),
            Err(_) => unreachable!("a request without deadline is granted"),
        }
    }

    /// As [`lock_set_arc`](Self::lock_set_arc), but fails instead of waiting (as
    /// [`try_lock_set`](Self::try_lock_set) does).
    ///
    /// # Errors
    ///
    /// If any range of the set conflicts with a request ahead of it, granted or waiting: the
    /// set comes back in the `Err`, and nothing of it is held.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use rangelock::{RangeRwLock, RangeSet};
    /// let lock = Arc::new(RangeRwLock::new());
    /// let held = lock.read(5..6);
    /// let set = RangeSet::new().write(0..1).write(5..6);
    /// let set = lock.try_lock_set_arc(set).expect_err("5..6 is read");
    /// drop(held);
    /// assert!(lock.try_lock_set_arc(set).is_ok());
    /// ```
    #[cfg_attr(feature = "deadlock_detection", track_caller)]
    pub fn try_lock_set_arc(self: &Arc<Self>, set: RangeSet) -> Result<ArcRangeSetGuard, RangeSet> {
        HeldSet::acquire_owned(Arc::clone(self), set, Wait::Never).map(ArcRangeSetGuard)
    }

    /// As [`lock_set_async`](Self::lock_set_async), for a guard that owns the set and keeps
    /// the lock alive (see [`lock_set_arc`](Self::lock_set_arc)). The future is `'static`, so
    /// it can be spawned; like the other futures it is `Send`, does not allocate, and gives up
    /// its request when dropped.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use rangelock::{RangeRwLock, RangeSet};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let lock = Arc::new(RangeRwLock::new());
    /// let held = lock.write(5..6);
    /// let task = tokio::spawn(lock.lock_set_owned(RangeSet::new().write(0..1).write(5..6)));
    /// tokio::task::yield_now().await; // the task queues behind `held`
    /// assert!(!lock.is_locked(0..1), "a waiting set holds nothing");
    /// drop(held);
    /// let guard = task.await.unwrap();
    /// assert!(lock.is_locked(0..1) && lock.is_locked(5..6));
    /// # drop(guard);
    /// # });
    /// ```
    #[cfg_attr(feature = "deadlock_detection", track_caller)]
    pub fn lock_set_owned(self: &Arc<Self>, set: RangeSet) -> OwnedSetFuture {
        OwnedSetFuture(AcquireSet::new(Arc::clone(self), set))
    }
}

/// A set a request holds: borrowed (`&RangeSet`) or owned (`RangeSet`).
///
/// # Safety
///
/// Moving a value of the type leaves the set's parts where they are (a borrowed set does not
/// move; an owned one keeps its parts in its `Vec`'s buffer), the set is not changed while the
/// value lives, and `borrow()` returns the same set on every call. A request's future takes a
/// pointer to the parts when it is made (`AcquireSet::new`), before the set moves into it, and
/// a queued request points at them until it is granted or given up.
pub(crate) unsafe trait HeldSetRef: Borrow<RangeSet> {}

// SAFETY: a shared borrow: the set neither moves nor changes while it lives.
unsafe impl HeldSetRef for &RangeSet {}
// SAFETY: the parts live in the `Vec`'s heap buffer, which a move of the `Vec` does not move;
// nothing changes an owned set but `&mut` methods, and the holders never call them.
unsafe impl HeldSetRef for RangeSet {}

/// A granted set request on the lock `L` leads to, with the set `S` it holds: the common part
/// of every set guard. Dropping it releases every range of the set.
pub(crate) struct HeldSet<L: Deref<Target = RangeRwLock>, S: HeldSetRef> {
    lock: L,
    set: S,
    /// The request's `seq` (any value for an empty set, which holds nothing).
    seq: u64,
}

impl<L: Deref<Target = RangeRwLock>, S: HeldSetRef> HeldSet<L, S> {
    /// Acquires every range of `set` as one request of the calling thread, for a borrowed
    /// guard, waiting as `wait` says; gives the set back if the request was not granted.
    #[cfg_attr(feature = "deadlock_detection", track_caller)]
    pub(crate) fn acquire(lock: L, set: S, wait: Wait) -> Result<Self, S> {
        Self::acquire_by(lock, set, wait, Requester::thread(wait.is_forever()))
    }

    /// As [`acquire`](Self::acquire), for an owned (`Arc`) guard.
    #[cfg_attr(feature = "deadlock_detection", track_caller)]
    pub(crate) fn acquire_owned(lock: L, set: S, wait: Wait) -> Result<Self, S> {
        Self::acquire_by(
            lock,
            set,
            wait,
            Requester::thread(wait.is_forever()).owned(),
        )
    }

    fn acquire_by(lock: L, set: S, wait: Wait, who: Requester) -> Result<Self, S> {
        match lock.acquire_set(set.borrow(), wait, who) {
            Some(seq) => Ok(HeldSet { lock, set, seq }),
            None => Err(set),
        }
    }

    pub(crate) fn lock(&self) -> &L {
        &self.lock
    }

    pub(crate) fn set(&self) -> &S {
        &self.set
    }

    /// Releases every range and returns the set.
    pub(crate) fn into_set(self) -> S {
        let this = ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped or used again, so `set` and `lock` are moved out
        // exactly once each.
        let (set, lock) = unsafe {
            (
                core::ptr::read(&raw const this.set),
                core::ptr::read(&raw const this.lock),
            )
        };
        // Out of `this` first: if the release passes a waker's panic on, unwinding drops them.
        let parts = set.borrow();
        if !parts.is_empty() {
            lock.release_request(parts.parts(), this.seq);
        }
        drop(lock);
        set
    }

    fn release(&self) {
        let set = self.set.borrow();
        if !set.is_empty() {
            self.lock.release_request(set.parts(), self.seq);
        }
    }
}

impl<L: Deref<Target = RangeRwLock>, S: HeldSetRef> Drop for HeldSet<L, S> {
    fn drop(&mut self) {
        self.release();
    }
}

/// Every range of a [`RangeSet`], held as one request; all are unlocked when it is dropped.
///
/// ```
/// use rangelock::{RangeRwLock, RangeSet};
/// let lock = RangeRwLock::new();
/// let set = RangeSet::new().write(0..1).write(10..11);
/// let guard = lock.lock_set(&set);
/// assert!(lock.is_locked(0..1) && lock.is_locked(10..11));
/// drop(guard); // releases both
/// assert!(!lock.is_locked(..));
/// ```
#[must_use = "if unused the ranges are unlocked at once"]
pub struct RangeSetGuard<'a>(pub(crate) HeldSet<&'a RangeRwLock, &'a RangeSet>);

impl<'a> RangeSetGuard<'a> {
    /// The set it holds.
    ///
    /// ```
    /// let lock = rangelock::RangeRwLock::new();
    /// let set = rangelock::RangeSet::new().write(0..4);
    /// assert_eq!(lock.lock_set(&set).set().len(), 1);
    /// ```
    #[must_use]
    pub fn set(&self) -> &'a RangeSet {
        self.0.set()
    }
}

impl fmt::Debug for RangeSetGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RangeSetGuard")
            .field("set", self.set())
            .finish()
    }
}

/// Every range of a [`RangeSet`] of a [`RangeRwLock`] in an [`Arc`], held as one request; the
/// guard owns the set and keeps the lock alive, so it is `'static` and may be stored, returned
/// or sent anywhere. All ranges are unlocked when it is dropped. See
/// [`RangeRwLock::lock_set_arc`].
///
/// ```
/// use std::sync::Arc;
/// use rangelock::{ArcRangeSetGuard, RangeRwLock, RangeSet};
/// let lock = Arc::new(RangeRwLock::new());
/// let guard: ArcRangeSetGuard = lock.lock_set_arc(RangeSet::new().write(0..1).read(5..6));
/// std::thread::spawn(move || drop(guard)).join().unwrap(); // released on another thread
/// assert!(!lock.is_locked(..));
/// ```
#[must_use = "if unused the ranges are unlocked at once"]
pub struct ArcRangeSetGuard(pub(crate) HeldSet<Arc<RangeRwLock>, RangeSet>);

impl ArcRangeSetGuard {
    /// The set it holds.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let lock = Arc::new(rangelock::RangeRwLock::new());
    /// let guard = lock.lock_set_arc(rangelock::RangeSet::new().write(0..4));
    /// assert_eq!(guard.set().len(), 1);
    /// ```
    #[must_use]
    pub fn set(&self) -> &RangeSet {
        self.0.set()
    }

    /// Unlocks every range and gives back the set, which can then be locked again without
    /// building it anew (building a set allocates; locking it does not).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use rangelock::{RangeRwLock, RangeSet};
    /// let lock = Arc::new(RangeRwLock::new());
    /// let mut set = RangeSet::new().write(0..4).write(8..12);
    /// for _ in 0..3 {
    ///     let guard = lock.lock_set_arc(set);
    ///     assert!(lock.is_locked(8..9));
    ///     set = guard.into_set();
    ///     assert!(!lock.is_locked(..));
    /// }
    /// ```
    #[must_use = "the set is dropped if unused; dropping the guard unlocks it too"]
    pub fn into_set(self) -> RangeSet {
        self.0.into_set()
    }
}

impl fmt::Debug for ArcRangeSetGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArcRangeSetGuard")
            .field("set", self.set())
            .finish()
    }
}

/// A set request being acquired asynchronously: the common part of the set futures.
pub(crate) struct AcquireSet<L: Deref<Target = RangeRwLock> + Clone, S: HeldSetRef> {
    /// Points at the set's parts while the request is queued: declared first, so that it
    /// leaves the queue before the set is dropped.
    acquire: Acquire<L>,
    /// Moved into the guard once granted (`None` after).
    set: Cell<Option<S>>,
}

impl<L: Deref<Target = RangeRwLock> + Clone, S: HeldSetRef> AcquireSet<L, S> {
    #[cfg_attr(feature = "deadlock_detection", track_caller)]
    pub(crate) fn new(lock: L, set: S) -> Self {
        // SAFETY: `HeldSetRef`: the parts stay where they are, unchanged, while `set` moves
        // into the future and lives there, which is until the request is granted (then it
        // moves into the guard) or given up (the `Acquire` is dropped first).
        let acquire = unsafe { Acquire::set(lock, set.borrow().parts()) };
        AcquireSet {
            acquire,
            set: Cell::new(Some(set)),
        }
    }

    /// Polls the request (through `&self` only: the future is pinned); once granted, the held
    /// request with its set.
    ///
    /// # Panics
    ///
    /// If polled again after it returned `Ready`.
    pub(crate) fn poll_held(&self, cx: &mut Context<'_>) -> Poll<HeldSet<L, S>> {
        self.acquire.poll_acquire(cx).map(|(lock, place)| {
            let seq = match place {
                Place::Tree(seq) => seq,
                Place::Empty => 0, // an empty set holds nothing
                Place::Slot(_) => unreachable!("a set is held in the tree"),
            };
            let set = self.set.take();
            HeldSet {
                lock,
                set: set.expect("a set future is granted once"),
                seq,
            }
        })
    }
}

impl<'a, L: Deref<Target = RangeRwLock> + Clone> AcquireSet<L, &'a RangeSet> {
    /// The set, until the request is granted.
    fn set(&self) -> Option<&'a RangeSet> {
        self.set.get()
    }
}

/// The future of [`RangeRwLock::lock_set_async`]: resolves to a [`RangeSetGuard`] once every
/// range of the set is locked. Dropping it before then gives up the whole request.
///
/// ```
/// use rangelock::{RangeRwLock, RangeSet};
/// let lock = RangeRwLock::new();
/// let set = RangeSet::new().read(0..1).write(10..11);
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let guard = lock.lock_set_async(&set).await;
/// assert_eq!(guard.set().len(), 2);
/// # });
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct SetFuture<'a>(pub(crate) AcquireSet<&'a RangeRwLock, &'a RangeSet>);

impl<'a> Future for SetFuture<'a> {
    type Output = RangeSetGuard<'a>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.into_ref().get_ref().0.poll_held(cx).map(RangeSetGuard)
    }
}

impl fmt::Debug for SetFuture<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut f = f.debug_struct("SetFuture");
        if let Some(set) = self.0.set() {
            f.field("set", set);
        }
        f.finish_non_exhaustive()
    }
}

/// The future of [`RangeRwLock::lock_set_owned`]: resolves to an [`ArcRangeSetGuard`] once
/// every range of the set is locked. It owns the set and an `Arc` of the lock, so it is
/// `'static` and can be spawned. Dropping it before it resolves gives up the whole request.
///
/// ```
/// use std::sync::Arc;
/// use rangelock::{RangeRwLock, RangeSet};
/// let lock = Arc::new(RangeRwLock::new());
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let fut: rangelock::OwnedSetFuture = lock.lock_set_owned(RangeSet::new().write(0..1));
/// let guard = tokio::spawn(fut).await.unwrap();
/// assert!(lock.is_locked(0..1));
/// # drop(guard);
/// # });
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct OwnedSetFuture(pub(crate) AcquireSet<Arc<RangeRwLock>, RangeSet>);

impl Future for OwnedSetFuture {
    type Output = ArcRangeSetGuard;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.into_ref()
            .get_ref()
            .0
            .poll_held(cx)
            .map(ArcRangeSetGuard)
    }
}

impl fmt::Debug for OwnedSetFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedSetFuture").finish_non_exhaustive()
    }
}
