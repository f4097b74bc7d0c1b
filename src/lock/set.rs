//! Several ranges as one request: [`RangeSet`], its guard and its future.

use core::fmt;
use core::future::Future;
use core::ops::{RangeBounds, RangeInclusive};
use core::pin::Pin;
use core::task::{Context, Poll};

use super::future::Acquire;
use super::queue::{Mode, Part};
use super::RangeRwLock;
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
/// built once and locked many times.
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
    /// Sorted by start, pairwise disjoint, none empty.
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
        let kind = match self.0.mode {
            Mode::Read => "read",
            Mode::Write => "write",
        };
        write!(f, "{kind} {:?}", self.0.start..=self.0.last)
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
pub struct RangeSetGuard<'a> {
    lock: &'a RangeRwLock,
    set: &'a RangeSet,
    seq: u64,
}

impl<'a> RangeSetGuard<'a> {
    pub(super) fn new(lock: &'a RangeRwLock, set: &'a RangeSet, seq: u64) -> Self {
        RangeSetGuard { lock, set, seq }
    }

    /// The set it holds.
    ///
    /// ```
    /// let lock = rangelock::RangeRwLock::new();
    /// let set = rangelock::RangeSet::new().write(0..4);
    /// assert_eq!(lock.lock_set(&set).set().len(), 1);
    /// ```
    #[must_use]
    pub fn set(&self) -> &'a RangeSet {
        self.set
    }
}

impl Drop for RangeSetGuard<'_> {
    fn drop(&mut self) {
        if !self.set.is_empty() {
            self.lock.release_request(self.set.parts(), self.seq);
        }
    }
}

impl fmt::Debug for RangeSetGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RangeSetGuard")
            .field("set", self.set)
            .finish()
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
pub struct SetFuture<'a> {
    pub(super) acquire: Acquire<&'a RangeRwLock>,
    pub(super) set: &'a RangeSet,
}

impl<'a> Future for SetFuture<'a> {
    type Output = RangeSetGuard<'a>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.into_ref().get_ref();
        this.acquire.poll_acquire(cx).map(|(lock, place)| {
            let seq = match place {
                super::guard::Place::Tree(seq) => seq,
                _ => 0, // an empty set holds nothing
            };
            RangeSetGuard::new(lock, this.set, seq)
        })
    }
}

impl fmt::Debug for SetFuture<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SetFuture")
            .field("set", self.set)
            .finish_non_exhaustive()
    }
}
