//! Guards: what a granted request holds, and how it is released.

use core::fmt;
use core::mem::ManuallyDrop;
use core::ops::{Deref, RangeBounds, RangeInclusive};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::fast::Place;
use super::queue::SLOTS;
use super::wait::Mode;
use super::{RangeRwLock, Wait};
use crate::range::Span;

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

/// A held request and the lock it is held on (`&RangeRwLock`, an `Arc`, or anything else that
/// leads to the lock): the common part of every guard. Dropping it releases the request.
pub(crate) struct Held<L: Deref<Target = RangeRwLock>> {
    lock: L,
    hold: Hold,
}

impl<L: Deref<Target = RangeRwLock>> Held<L> {
    pub(super) fn new(lock: L, hold: Hold) -> Self {
        Held { lock, hold }
    }

    pub(crate) fn lock(&self) -> &L {
        &self.lock
    }

    pub(crate) fn range(&self) -> RangeInclusive<u64> {
        self.hold.span().to_inclusive()
    }

    /// Turns a held write request into a read request, atomically.
    pub(crate) fn downgrade(self) -> Self {
        self.lock.downgrade_hold(&self.hold);
        self.map_lock(|lock| lock)
    }

    /// The same held request, reached through `f(lock)`, which must lead to the same lock.
    pub(crate) fn map_lock<M: Deref<Target = RangeRwLock>>(
        self,
        f: impl FnOnce(L) -> M,
    ) -> Held<M> {
        let this = ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped or used again, so `lock` is moved out exactly once.
        let lock = unsafe { core::ptr::read(&raw const this.lock) };
        let hold = this.hold;
        let lock = f(lock);
        Held { lock, hold }
    }
}

impl<L: Deref<Target = RangeRwLock>> Drop for Held<L> {
    #[inline(always)]
    fn drop(&mut self) {
        self.lock.release(&self.hold);
    }
}

/// Shared access to a range of a [`RangeRwLock`]; the range is unlocked when it is dropped.
///
/// ```
/// let lock = rangelock::RangeRwLock::new();
/// let guard = lock.read(0..10);
/// assert!(lock.try_write(5..6).is_none());
/// drop(guard); // unlocks
/// assert!(lock.try_write(5..6).is_some());
/// ```
#[must_use = "if unused the range is unlocked at once"]
pub struct RangeReadGuard<'a>(pub(crate) Held<&'a RangeRwLock>);

/// Exclusive access to a range of a [`RangeRwLock`]; the range is unlocked when it is dropped.
///
/// ```
/// let lock = rangelock::RangeRwLock::new();
/// let guard = lock.write(0..10);
/// assert!(lock.try_read(9..10).is_none());
/// drop(guard);
/// assert!(!lock.is_locked(..));
/// ```
#[must_use = "if unused the range is unlocked at once"]
pub struct RangeWriteGuard<'a>(pub(crate) Held<&'a RangeRwLock>);

/// Shared access to a range of a [`RangeRwLock`] in an [`Arc`], which the guard keeps alive:
/// it is `'static` and may be stored, returned or sent anywhere. The range is unlocked when it
/// is dropped. See [`RangeRwLock::read_arc`].
///
/// ```
/// use std::sync::Arc;
/// let lock = Arc::new(rangelock::RangeRwLock::new());
/// let guards: Vec<rangelock::ArcRangeReadGuard> = (0..4).map(|i| lock.read_arc(i..i + 1)).collect();
/// assert!(lock.is_locked(3..4));
/// drop(guards);
/// ```
#[must_use = "if unused the range is unlocked at once"]
pub struct ArcRangeReadGuard(pub(crate) Held<Arc<RangeRwLock>>);

/// Exclusive access to a range of a [`RangeRwLock`] in an [`Arc`], which the guard keeps
/// alive: it is `'static` and may be stored, returned or sent anywhere. The range is unlocked
/// when it is dropped. See [`RangeRwLock::write_arc`].
///
/// ```
/// use std::sync::Arc;
/// let lock = Arc::new(rangelock::RangeRwLock::new());
/// let guard = lock.write_arc(0..10);
/// std::thread::spawn(move || drop(guard)).join().unwrap(); // released on another thread
/// assert!(!lock.is_locked(..));
/// ```
#[must_use = "if unused the range is unlocked at once"]
pub struct ArcRangeWriteGuard(pub(crate) Held<Arc<RangeRwLock>>);

/// Owned (`Arc`) requests: blocking, `try_*` and timed, for the `Arc` guards above.
impl RangeRwLock {
    /// Locks `range` shared, blocking, and returns a guard that keeps the lock alive: it is
    /// `'static`, so it can be moved into a thread, stored next to the `Arc`, or returned.
    ///
    /// # Panics
    ///
    /// If the range starts after it ends (`10..5`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// let lock = Arc::new(rangelock::RangeRwLock::new());
    /// let guard = lock.read_arc(0..10);
    /// std::thread::spawn(move || assert_eq!(guard.range(), 0..=9)).join().unwrap();
    /// assert!(!lock.is_locked(..));
    /// ```
    #[track_caller]
    pub fn read_arc(self: &Arc<Self>, range: impl RangeBounds<u64>) -> ArcRangeReadGuard {
        let hold = self.acquire_owned(&range, Mode::Read, Wait::Forever);
        ArcRangeReadGuard(Held::new(
            Arc::clone(self),
            hold.expect("a request without deadline is granted"),
        ))
    }

    /// Locks `range` exclusive, blocking, and returns a guard that keeps the lock alive (see
    /// [`read_arc`](Self::read_arc)).
    ///
    /// # Panics
    ///
    /// If the range starts after it ends (`10..5`).
    ///
    /// # Examples
    ///
    /// A guard stored with its lock, as a per-file lock table would return it:
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use std::sync::Arc;
    /// use rangelock::{ArcRangeWriteGuard, RangeRwLock};
    ///
    /// struct Files(HashMap<&'static str, Arc<RangeRwLock>>);
    /// impl Files {
    ///     fn lock(&self, name: &str, bytes: std::ops::Range<u64>) -> ArcRangeWriteGuard {
    ///         self.0[name].write_arc(bytes)
    ///     }
    /// }
    /// let files = Files(HashMap::from([("a", Arc::new(RangeRwLock::new()))]));
    /// let guard = files.lock("a", 0..512);
    /// drop(files); // the guard keeps the lock alive
    /// assert_eq!(guard.range(), 0..=511);
    /// ```
    #[track_caller]
    pub fn write_arc(self: &Arc<Self>, range: impl RangeBounds<u64>) -> ArcRangeWriteGuard {
        let hold = self.acquire_owned(&range, Mode::Write, Wait::Forever);
        ArcRangeWriteGuard(Held::new(
            Arc::clone(self),
            hold.expect("a request without deadline is granted"),
        ))
    }

    /// As [`read_arc`](Self::read_arc), but fails instead of waiting (as
    /// [`try_read`](Self::try_read) does).
    ///
    /// ```
    /// use std::sync::Arc;
    /// let lock = Arc::new(rangelock::RangeRwLock::new());
    /// let _w = lock.write_arc(0..10);
    /// assert!(lock.try_read_arc(5..6).is_none());
    /// assert!(lock.try_read_arc(10..20).is_some());
    /// ```
    #[track_caller]
    pub fn try_read_arc(
        self: &Arc<Self>,
        range: impl RangeBounds<u64>,
    ) -> Option<ArcRangeReadGuard> {
        let hold = self.acquire_owned(&range, Mode::Read, Wait::Never)?;
        Some(ArcRangeReadGuard(Held::new(Arc::clone(self), hold)))
    }

    /// As [`write_arc`](Self::write_arc), but fails instead of waiting (as
    /// [`try_write`](Self::try_write) does).
    ///
    /// ```
    /// use std::sync::Arc;
    /// let lock = Arc::new(rangelock::RangeRwLock::new());
    /// let _r = lock.read_arc(0..10);
    /// assert!(lock.try_write_arc(5..6).is_none());
    /// assert!(lock.try_write_arc(10..20).is_some());
    /// ```
    #[track_caller]
    pub fn try_write_arc(
        self: &Arc<Self>,
        range: impl RangeBounds<u64>,
    ) -> Option<ArcRangeWriteGuard> {
        let hold = self.acquire_owned(&range, Mode::Write, Wait::Never)?;
        Some(ArcRangeWriteGuard(Held::new(Arc::clone(self), hold)))
    }

    /// As [`read_arc`](Self::read_arc), waiting at most `timeout` (as
    /// [`try_read_for`](Self::try_read_for) does).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// let lock = Arc::new(rangelock::RangeRwLock::new());
    /// let w = lock.write_arc(0..10);
    /// assert!(lock.try_read_arc_for(5..6, Duration::from_millis(10)).is_none());
    /// drop(w);
    /// let r = lock.try_read_arc_for(5..6, Duration::from_millis(10)).unwrap();
    /// std::thread::spawn(move || assert_eq!(r.range(), 5..=5)).join().unwrap();
    /// ```
    #[track_caller]
    pub fn try_read_arc_for(
        self: &Arc<Self>,
        range: impl RangeBounds<u64>,
        timeout: Duration,
    ) -> Option<ArcRangeReadGuard> {
        let hold = self.acquire_owned(&range, Mode::Read, Wait::for_duration(timeout))?;
        Some(ArcRangeReadGuard(Held::new(Arc::clone(self), hold)))
    }

    /// As [`write_arc`](Self::write_arc), waiting at most `timeout` (as
    /// [`try_write_for`](Self::try_write_for) does).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// let lock = Arc::new(rangelock::RangeRwLock::new());
    /// let r = lock.read_arc(0..10);
    /// assert!(lock.try_write_arc_for(5..6, Duration::from_millis(10)).is_none());
    /// assert!(lock.try_write_arc_for(10..20, Duration::from_millis(10)).is_some());
    /// # drop(r);
    /// ```
    #[track_caller]
    pub fn try_write_arc_for(
        self: &Arc<Self>,
        range: impl RangeBounds<u64>,
        timeout: Duration,
    ) -> Option<ArcRangeWriteGuard> {
        let hold = self.acquire_owned(&range, Mode::Write, Wait::for_duration(timeout))?;
        Some(ArcRangeWriteGuard(Held::new(Arc::clone(self), hold)))
    }

    /// As [`read_arc`](Self::read_arc), waiting until `deadline` at the latest (as
    /// [`try_read_until`](Self::try_read_until) does).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::{Duration, Instant};
    /// let lock = Arc::new(rangelock::RangeRwLock::new());
    /// let deadline = Instant::now() + Duration::from_millis(10);
    /// let _w = lock.write_arc(0..10);
    /// assert!(lock.try_read_arc_until(9..10, deadline).is_none());
    /// assert!(lock.try_read_arc_until(10..11, deadline).is_some());
    /// ```
    #[track_caller]
    pub fn try_read_arc_until(
        self: &Arc<Self>,
        range: impl RangeBounds<u64>,
        deadline: Instant,
    ) -> Option<ArcRangeReadGuard> {
        let hold = self.acquire_owned(&range, Mode::Read, Wait::Until(deadline))?;
        Some(ArcRangeReadGuard(Held::new(Arc::clone(self), hold)))
    }

    /// As [`write_arc`](Self::write_arc), waiting until `deadline` at the latest (as
    /// [`try_write_until`](Self::try_write_until) does).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::{Duration, Instant};
    /// let lock = Arc::new(rangelock::RangeRwLock::new());
    /// let deadline = Instant::now() + Duration::from_millis(10);
    /// let _r = lock.read_arc(0..10);
    /// assert!(lock.try_write_arc_until(9..10, deadline).is_none());
    /// assert!(lock.try_write_arc_until(10..11, deadline).is_some());
    /// ```
    #[track_caller]
    pub fn try_write_arc_until(
        self: &Arc<Self>,
        range: impl RangeBounds<u64>,
        deadline: Instant,
    ) -> Option<ArcRangeWriteGuard> {
        let hold = self.acquire_owned(&range, Mode::Write, Wait::Until(deadline))?;
        Some(ArcRangeWriteGuard(Held::new(Arc::clone(self), hold)))
    }
}

/// Owned requests for the owned guards built on a lock elsewhere in the crate
/// (`SliceRwLock`'s).
impl RangeRwLock {
    /// Acquires `range` as the owned forms above do (`mode`, waiting as `wait` says).
    #[track_caller]
    pub(crate) fn held_owned(
        &self,
        range: impl RangeBounds<u64>,
        mode: Mode,
        wait: Wait,
    ) -> Option<Held<&Self>> {
        let hold = self.acquire_owned(&range, mode, wait)?;
        Some(Held::new(self, hold))
    }
}

/// `range()` and `Debug` for every guard type.
macro_rules! guard_common {
    ($($guard:ident $(<$l:lifetime>)?, $example:literal;)*) => {$(
        impl$(<$l>)? $guard$(<$l>)? {
            /// The locked range, inclusive. An empty request gives an empty range
            /// (`RangeInclusive::is_empty`).
            ///
            /// ```
            /// # use std::sync::Arc;
            /// let lock = Arc::new(rangelock::RangeRwLock::new());
            #[doc = $example]
            /// ```
            #[must_use]
            pub fn range(&self) -> RangeInclusive<u64> {
                self.0.range()
            }
        }

        impl$(<$l>)? fmt::Debug for $guard$(<$l>)? {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($guard))
                    .field("range", &self.range())
                    .finish()
            }
        }
    )*};
}

guard_common! {
    RangeReadGuard<'a>, "assert_eq!(lock.read(10..20).range(), 10..=19);\nassert!(lock.read(5..5).range().is_empty());";
    RangeWriteGuard<'a>, "assert_eq!(lock.write(..).range(), 0..=u64::MAX);";
    ArcRangeReadGuard, "assert_eq!(lock.read_arc(10..20).range(), 10..=19);";
    ArcRangeWriteGuard, "assert_eq!(lock.write_arc(..=9).range(), 0..=9);";
}

impl<'a> RangeWriteGuard<'a> {
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
        RangeReadGuard(self.0.downgrade())
    }
}

impl ArcRangeWriteGuard {
    /// Turns this exclusive lock into a shared one over the same range without unlocking it,
    /// as [`RangeWriteGuard::downgrade`] does.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let lock = Arc::new(rangelock::RangeRwLock::new());
    /// let r = lock.write_arc(0..100).downgrade();
    /// assert!(lock.try_read_arc(50..60).is_some());
    /// assert!(lock.try_write_arc(50..60).is_none());
    /// # drop(r);
    /// ```
    pub fn downgrade(self) -> ArcRangeReadGuard {
        ArcRangeReadGuard(self.0.downgrade())
    }
}
