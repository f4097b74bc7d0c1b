//! Guards: what a granted request holds, and how it is released.

use core::fmt;
use core::ops::RangeInclusive;

use super::{RangeRwLock, SLOTS};
use crate::range::Span;

/// Where a held request lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Place {
    /// Nowhere: the range is empty (it conflicts with nothing).
    Empty,
    /// In fast-path slot `i` (or, if moved since, in the tree as `State::moved[i]`).
    Slot(usize),
    /// In the tree, under `seq`.
    Tree(u64),
}

/// What a guard holds: its range and where its request lives, in 24 bytes (guards are
/// returned by value). An empty range keeps its position in `start`.
#[derive(Clone, Copy)]
pub(super) struct Hold {
    pub(super) start: u64,
    pub(super) last: u64,
    /// `Place` packed: a tree `seq` as is, the slots and empty just below `u64::MAX`.
    tag: u64,
}

const EMPTY_TAG: u64 = u64::MAX;
const SLOT_TAG: u64 = u64::MAX - 1 - SLOTS as u64;

impl Hold {
    pub(super) fn new(span: Span, place: Place) -> Hold {
        let (start, last) = match span {
            Span::Empty { at } => (at, at),
            Span::Range { start, last } => (start, last),
        };
        let tag = match place {
            Place::Empty => EMPTY_TAG,
            Place::Slot(i) => SLOT_TAG + i as u64,
            Place::Tree(seq) => {
                debug_assert!(seq < SLOT_TAG);
                seq
            }
        };
        Hold { start, last, tag }
    }

    pub(super) fn place(&self) -> Place {
        match self.tag {
            EMPTY_TAG => Place::Empty,
            t if t >= SLOT_TAG => Place::Slot((t - SLOT_TAG) as usize),
            seq => Place::Tree(seq),
        }
    }

    pub(super) fn span(&self) -> Span {
        match self.place() {
            Place::Empty => Span::Empty { at: self.start },
            Place::Slot(_) | Place::Tree(_) => Span::Range {
                start: self.start,
                last: self.last,
            },
        }
    }
}

/// Shared access to a range of a [`RangeRwLock`]; the range is unlocked when it is dropped.
#[must_use = "if unused the range is unlocked at once"]
pub struct RangeReadGuard<'a> {
    pub(super) lock: &'a RangeRwLock,
    pub(super) hold: Hold,
}

/// Exclusive access to a range of a [`RangeRwLock`]; the range is unlocked when it is dropped.
#[must_use = "if unused the range is unlocked at once"]
pub struct RangeWriteGuard<'a> {
    pub(super) lock: &'a RangeRwLock,
    pub(super) hold: Hold,
}

impl RangeReadGuard<'_> {
    /// The locked range, inclusive. An empty request gives an empty range
    /// (`RangeInclusive::is_empty`).
    ///
    /// ```
    /// let lock = rangelock::RangeRwLock::new();
    /// assert_eq!(lock.read(10..20).range(), 10..=19);
    /// assert!(lock.read(5..5).range().is_empty());
    /// ```
    #[must_use]
    pub fn range(&self) -> RangeInclusive<u64> {
        self.hold.span().to_inclusive()
    }
}

impl<'a> RangeWriteGuard<'a> {
    /// The locked range, inclusive. An empty request gives an empty range
    /// (`RangeInclusive::is_empty`).
    ///
    /// ```
    /// let lock = rangelock::RangeRwLock::new();
    /// assert_eq!(lock.write(..).range(), 0..=u64::MAX);
    /// ```
    #[must_use]
    pub fn range(&self) -> RangeInclusive<u64> {
        self.hold.span().to_inclusive()
    }

    /// Turns this exclusive lock into a shared one over the same range without unlocking it,
    /// and lets in the readers queued behind it (up to the next queued writer on each part of
    /// the range).
    ///
    /// ```
    /// let lock = rangelock::RangeRwLock::new();
    /// let w = lock.write(0..100);
    /// let r = w.downgrade();
    /// assert!(lock.try_read(50..60).is_some());
    /// assert!(lock.try_write(50..60).is_none());
    /// # drop(r);
    /// ```
    pub fn downgrade(self) -> RangeReadGuard<'a> {
        let this = core::mem::ManuallyDrop::new(self);
        let (lock, hold) = (this.lock, this.hold);
        lock.downgrade_hold(&hold);
        RangeReadGuard { lock, hold }
    }
}

impl Drop for RangeReadGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.lock.release(&self.hold);
    }
}

impl Drop for RangeWriteGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.lock.release(&self.hold);
    }
}

impl fmt::Debug for RangeReadGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RangeReadGuard")
            .field("range", &self.range())
            .finish()
    }
}

impl fmt::Debug for RangeWriteGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RangeWriteGuard")
            .field("range", &self.range())
            .finish()
    }
}
