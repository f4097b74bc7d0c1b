//! Several sub-slices as one request: the set methods, the set guards that hand out every
//! member's elements at once, and the set futures.
//!
//! A set is a [`RangeSet`] of index ranges. Its ranges are pairwise disjoint (overlapping
//! ranges merge when the set is built), so a guard can hand out `&mut [T]` for each exclusive
//! member and `&[T]` for each shared one, all at once.

use core::cell::UnsafeCell;
use core::fmt;
use core::future::Future;
use core::ops::Deref;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::guard::{exclusive, shared, SliceArc};
use super::SliceRwLock;
use crate::lock::{AcquireSet, HeldSet, Mode, Part, RangeRwLock, RangeSet, RangeSetGuard, Wait};

/// Set requests: blocking, timed, async and owned.
impl<T> SliceRwLock<T> {
    /// Locks every range of `set` (index ranges, each shared or exclusive, as the set says)
    /// as one request, blocking until all are free of earlier conflicting requests. The guard
    /// gives every member's elements at once: `&[T]` for a shared member, `&mut [T]` for an
    /// exclusive one.
    ///
    /// This is the way to hold several sub-slices at once. Taking them one by one can
    /// deadlock, even in ascending order: a thread that holds `read(0..3)` and then asks for
    /// `write(3..6)` waits behind any request for, say, `2..4` that arrived in between, and
    /// that request waits for the first thread. A set takes one place in the queue and holds
    /// nothing until it holds everything.
    ///
    /// The members are the set's ranges after merging (overlapping ranges merge into one,
    /// exclusive if any of them is), in ascending order. A range without an end (`a..`, `..`)
    /// runs to the end of the slice.
    ///
    /// # Panics
    ///
    /// At the call, as slice indexing does: if a range ends past `len()` (or, open-ended,
    /// starts past it).
    ///
    /// # Examples
    ///
    /// Copying between two sub-slices, with no deadlock whatever other threads lock:
    ///
    /// ```
    /// use rangelock::{RangeSet, SliceMember, SliceRwLock};
    ///
    /// let s = SliceRwLock::new(vec![1, 2, 3, 0, 0, 0]);
    /// let set = RangeSet::new().read(0..3).write(3..6);
    /// let mut guard = s.lock_set(&set);
    /// let mut members = guard.members_mut();
    /// let (Some(SliceMember::Shared(src)), Some(SliceMember::Exclusive(dst))) =
    ///     (members.next(), members.next())
    /// else {
    ///     unreachable!("a shared member, then an exclusive one")
    /// };
    /// dst.copy_from_slice(src);
    /// drop(guard);
    /// assert_eq!(*s.into_inner(), [1, 2, 3, 1, 2, 3]);
    /// ```
    #[track_caller]
    pub fn lock_set<'a>(&'a self, set: &'a RangeSet) -> SliceSetGuard<'a, T> {
        self.check_set(set);
        SliceSetGuard {
            guard: self.lock.lock_set(set),
            cells: &self.data,
        }
    }

    /// As [`lock_set`](Self::lock_set), but fails instead of waiting: `None` if any range of
    /// the set conflicts with a request ahead of it, granted or waiting. Holds nothing then.
    ///
    /// # Panics
    ///
    /// At the call, if a range is out of bounds (see [`lock_set`](Self::lock_set)).
    ///
    /// ```
    /// use rangelock::{RangeSet, SliceRwLock};
    /// let s = SliceRwLock::new(vec![0u8; 8]);
    /// let held = s.read(6..7);
    /// let set = RangeSet::new().write(0..2).write(6..8);
    /// assert!(s.try_lock_set(&set).is_none());
    /// drop(held);
    /// let mut guard = s.try_lock_set(&set).unwrap();
    /// guard.get_mut(1).unwrap().fill(9);
    /// assert_eq!(guard.get(1), Some(&[9, 9][..]));
    /// ```
    #[track_caller]
    pub fn try_lock_set<'a>(&'a self, set: &'a RangeSet) -> Option<SliceSetGuard<'a, T>> {
        self.check_set(set);
        Some(SliceSetGuard {
            guard: self.lock.try_lock_set(set)?,
            cells: &self.data,
        })
    }

    /// As [`lock_set`](Self::lock_set), waiting at most `timeout`; on timeout the request
    /// leaves the queue as a whole (see [`RangeRwLock::try_lock_set_for`]).
    ///
    /// # Panics
    ///
    /// At the call, if a range is out of bounds (see [`lock_set`](Self::lock_set)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use rangelock::{RangeSet, SliceRwLock};
    /// let s = SliceRwLock::new(vec![0u8; 8]);
    /// let set = RangeSet::new().read(0..2).write(4..);
    /// let held = s.read(7..);
    /// assert!(s.try_lock_set_for(&set, Duration::from_millis(1)).is_none());
    /// drop(held);
    /// let guard = s.try_lock_set_for(&set, Duration::from_millis(1)).unwrap();
    /// assert_eq!(guard.get(1).unwrap().len(), 4); // `4..` runs to the end
    /// ```
    #[track_caller]
    pub fn try_lock_set_for<'a>(
        &'a self,
        set: &'a RangeSet,
        timeout: Duration,
    ) -> Option<SliceSetGuard<'a, T>> {
        self.check_set(set);
        Some(SliceSetGuard {
            guard: self.lock.try_lock_set_for(set, timeout)?,
            cells: &self.data,
        })
    }

    /// As [`lock_set`](Self::lock_set), waiting until `deadline` at the latest.
    ///
    /// # Panics
    ///
    /// At the call, if a range is out of bounds (see [`lock_set`](Self::lock_set)).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use rangelock::{RangeSet, SliceRwLock};
    /// let s = SliceRwLock::new(vec![0u8; 8]);
    /// let set = RangeSet::new().write(0..2).write(4..6);
    /// let deadline = Instant::now() + Duration::from_millis(1);
    /// let guard = s.try_lock_set_until(&set, deadline).unwrap();
    /// assert!(s.try_lock_set_until(&set, deadline).is_none());
    /// # drop(guard);
    /// ```
    #[track_caller]
    pub fn try_lock_set_until<'a>(
        &'a self,
        set: &'a RangeSet,
        deadline: Instant,
    ) -> Option<SliceSetGuard<'a, T>> {
        self.check_set(set);
        Some(SliceSetGuard {
            guard: self.lock.try_lock_set_until(set, deadline)?,
            cells: &self.data,
        })
    }

    /// As [`lock_set`](Self::lock_set), asynchronously (see [`RangeRwLock::lock_set_async`]).
    ///
    /// # Panics
    ///
    /// At the call (not at the first poll), if a range is out of bounds (see
    /// [`lock_set`](Self::lock_set)).
    ///
    /// ```
    /// use rangelock::{RangeSet, SliceRwLock};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let s = SliceRwLock::new(vec![1u8, 2, 3, 4]);
    /// let set = RangeSet::new().write(0..1).write(3..4);
    /// let mut guard = s.lock_set_async(&set).await;
    /// for member in guard.members_mut() {
    ///     member.into_mut().unwrap()[0] *= 10;
    /// }
    /// drop(guard);
    /// assert_eq!(s.read(..)[..], [10, 2, 3, 40]);
    /// # });
    /// ```
    #[track_caller]
    pub fn lock_set_async<'a>(&'a self, set: &'a RangeSet) -> SliceSetFuture<'a, T> {
        self.check_set(set);
        SliceSetFuture {
            acquire: AcquireSet::new(&self.lock, set),
            cells: &self.data,
        }
    }

    /// As [`lock_set`](Self::lock_set), for a guard that owns the set and keeps the slice
    /// alive (`'static`; see [`RangeRwLock::lock_set_arc`]).
    ///
    /// # Panics
    ///
    /// At the call, if a range is out of bounds (see [`lock_set`](Self::lock_set)).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use rangelock::{RangeSet, SliceRwLock};
    /// let s = Arc::new(SliceRwLock::new(vec![0u8; 8]));
    /// let mut guard = s.lock_set_arc(RangeSet::new().write(0..2).write(6..8));
    /// std::thread::spawn(move || {
    ///     for member in guard.members_mut() {
    ///         member.into_mut().unwrap().fill(1);
    ///     }
    /// })
    /// .join()
    /// .unwrap();
    /// assert_eq!(s.read(..)[..], [1, 1, 0, 0, 0, 0, 1, 1]);
    /// ```
    #[track_caller]
    pub fn lock_set_arc(self: &Arc<Self>, set: RangeSet) -> ArcSliceSetGuard<T> {
        self.check_set(&set);
        match HeldSet::acquire_owned(SliceArc(Arc::clone(self)), set, Wait::Forever) {
            Ok(held) => ArcSliceSetGuard(held),
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
    /// # Panics
    ///
    /// At the call, if a range is out of bounds (see [`lock_set`](Self::lock_set)).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use rangelock::{RangeSet, SliceRwLock};
    /// let s = Arc::new(SliceRwLock::new(vec![0u8; 8]));
    /// let held = s.read(0..1);
    /// let set = s.try_lock_set_arc(RangeSet::new().write(0..2)).expect_err("0..1 is read");
    /// drop(held);
    /// assert!(s.try_lock_set_arc(set).is_ok());
    /// ```
    #[track_caller]
    pub fn try_lock_set_arc(
        self: &Arc<Self>,
        set: RangeSet,
    ) -> Result<ArcSliceSetGuard<T>, RangeSet> {
        self.check_set(&set);
        HeldSet::acquire_owned(SliceArc(Arc::clone(self)), set, Wait::Never).map(ArcSliceSetGuard)
    }

    /// As [`lock_set_async`](Self::lock_set_async), for a guard that owns the set and keeps
    /// the slice alive (see [`RangeRwLock::lock_set_owned`]). The future is `'static`, so it
    /// can be spawned.
    ///
    /// # Panics
    ///
    /// At the call, if a range is out of bounds (see [`lock_set`](Self::lock_set)).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use rangelock::{RangeSet, SliceRwLock};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let s = Arc::new(SliceRwLock::new(vec![5u8; 8]));
    /// let set = RangeSet::new().read(0..2).read(6..);
    /// let guard = tokio::spawn(s.lock_set_owned(set)).await.unwrap();
    /// assert_eq!(guard.members().collect::<Vec<_>>(), [&[5, 5][..], &[5, 5][..]]);
    /// # });
    /// ```
    #[track_caller]
    pub fn lock_set_owned(self: &Arc<Self>, set: RangeSet) -> OwnedSliceSetFuture<T> {
        self.check_set(&set);
        OwnedSliceSetFuture(AcquireSet::new(SliceArc(Arc::clone(self)), set))
    }

    /// Panics, as slice indexing does, if a range of `set` does not fit in the slice.
    #[track_caller]
    fn check_set(&self, set: &RangeSet) {
        // Sorted and disjoint: if the last range fits, every range does.
        let Some(last) = set.parts().last() else {
            return;
        };
        let len = self.len();
        if last.last == u64::MAX {
            // Open-ended: to the end of the slice.
            assert!(
                last.start <= len as u64,
                "range start index {} out of range for slice of length {len}",
                last.start
            );
        } else {
            let end = last.last + 1;
            assert!(
                end <= len as u64,
                "range end index {end} out of range for slice of length {len}"
            );
        }
    }
}

/// The elements of member `part` of a set that `check_set` accepted for `cells`.
fn member<'c, T>(cells: &'c [UnsafeCell<T>], part: &Part) -> &'c [UnsafeCell<T>] {
    let end = if part.last == u64::MAX {
        cells.len()
    } else {
        part.last as usize + 1
    };
    &cells[part.start as usize..end]
}

/// One member of a held set of sub-slices: its elements, shared or exclusive as the set
/// locked them. It derefs to `[T]` either way.
///
/// ```
/// use rangelock::{RangeSet, SliceMember, SliceRwLock};
/// let s = SliceRwLock::new(vec![1, 2, 3, 4]);
/// let set = RangeSet::new().read(0..2).write(2..4);
/// let mut guard = s.lock_set(&set);
/// for member in guard.members_mut() {
///     match member {
///         SliceMember::Shared(elements) => assert_eq!(elements, [1, 2]),
///         SliceMember::Exclusive(elements) => elements.fill(0),
///     }
/// }
/// # drop(guard);
/// assert_eq!(s.read(..)[..], [1, 2, 0, 0]);
/// ```
#[derive(Debug)]
pub enum SliceMember<'g, T> {
    /// A member locked shared ([`RangeSet::read`]).
    Shared(&'g [T]),
    /// A member locked exclusive ([`RangeSet::write`]).
    Exclusive(&'g mut [T]),
}

impl<'g, T> SliceMember<'g, T> {
    /// The elements, shared, whichever way the member is locked.
    ///
    /// ```
    /// use rangelock::{RangeSet, SliceRwLock};
    /// let s = SliceRwLock::new(vec![1, 2, 3]);
    /// let set = RangeSet::new().write(0..3);
    /// let mut guard = s.lock_set(&set);
    /// let all = guard.members_mut().next().unwrap().into_slice();
    /// assert_eq!(all, [1, 2, 3]);
    /// ```
    #[must_use]
    pub fn into_slice(self) -> &'g [T] {
        match self {
            SliceMember::Shared(elements) => elements,
            SliceMember::Exclusive(elements) => elements,
        }
    }

    /// The elements, mutably, if the member is locked exclusive; `None` if it is shared.
    ///
    /// ```
    /// use rangelock::{RangeSet, SliceRwLock};
    /// let s = SliceRwLock::new(vec![1, 2, 3]);
    /// let set = RangeSet::new().read(0..1).write(1..3);
    /// let mut guard = s.lock_set(&set);
    /// let mut members = guard.members_mut();
    /// assert!(members.next().unwrap().into_mut().is_none());
    /// members.next().unwrap().into_mut().unwrap().fill(7);
    /// # drop(guard);
    /// assert_eq!(s.read(..)[..], [1, 7, 7]);
    /// ```
    #[must_use]
    pub fn into_mut(self) -> Option<&'g mut [T]> {
        match self {
            SliceMember::Shared(_) => None,
            SliceMember::Exclusive(elements) => Some(elements),
        }
    }
}

impl<T> Deref for SliceMember<'_, T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match self {
            SliceMember::Shared(elements) => elements,
            SliceMember::Exclusive(elements) => elements,
        }
    }
}

/// The iterator of the set guards' `members`: every member's elements, shared, in ascending
/// order.
pub struct SliceMembers<'g, T> {
    parts: core::slice::Iter<'g, Part>,
    /// The whole slice's cells, of a set held for `'g` and borrowed shared for `'g`.
    cells: &'g [UnsafeCell<T>],
}

/// The iterator of the set guards' `members_mut`: every member, each shared or exclusive as
/// the set locked it, in ascending order.
pub struct SliceMembersMut<'g, T> {
    parts: core::slice::Iter<'g, Part>,
    /// The whole slice's cells, of a set held for `'g` and borrowed mutably for `'g`.
    cells: &'g [UnsafeCell<T>],
}

// SAFETY: the iterator hands out `&[T]` (which may cross threads when `T: Sync`); it holds
// nothing else but integers.
unsafe impl<T: Sync> Send for SliceMembers<'_, T> {}
// SAFETY: `&SliceMembers` gives nothing but a count.
unsafe impl<T: Sync> Sync for SliceMembers<'_, T> {}
// SAFETY: the iterator hands out `&mut [T]` (which may cross threads when `T: Send`) and
// `&[T]` (when `T: Sync`).
unsafe impl<T: Send + Sync> Send for SliceMembersMut<'_, T> {}
// SAFETY: `&SliceMembersMut` gives nothing but a count.
unsafe impl<T: Sync> Sync for SliceMembersMut<'_, T> {}

impl<'g, T> Iterator for SliceMembers<'g, T> {
    type Item = &'g [T];

    fn next(&mut self) -> Option<&'g [T]> {
        let part = self.parts.next()?;
        // SAFETY: the set is held for `'g`, which excludes every writer but its own guard,
        // and that guard is borrowed shared for `'g`, so no `&mut` through it lives
        // meanwhile.
        Some(unsafe { shared(member(self.cells, part)) })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.parts.size_hint()
    }

    fn nth(&mut self, n: usize) -> Option<&'g [T]> {
        // Skipped members are not handed out.
        if n > 0 {
            self.parts.nth(n - 1)?;
        }
        self.next()
    }
}

impl<'g, T> Iterator for SliceMembersMut<'g, T> {
    type Item = SliceMember<'g, T>;

    fn next(&mut self) -> Option<SliceMember<'g, T>> {
        let part = self.parts.next()?;
        let elements = member(self.cells, part);
        Some(match part.mode {
            // SAFETY: the set is held for `'g` and the guard borrowed mutably for `'g`; the
            // members are disjoint (a set's ranges are), and each is handed out once, so no
            // `&mut` from this iterator covers these elements.
            Mode::Read => SliceMember::Shared(unsafe { shared(elements) }),
            // SAFETY: as above; the held set keeps every other guard off an exclusive
            // member's elements, and no other item of this iterator overlaps them.
            Mode::Write => SliceMember::Exclusive(unsafe { exclusive(elements) }),
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.parts.size_hint()
    }

    fn nth(&mut self, n: usize) -> Option<SliceMember<'g, T>> {
        // Skipped members are not handed out.
        if n > 0 {
            self.parts.nth(n - 1)?;
        }
        self.next()
    }
}

impl<T> ExactSizeIterator for SliceMembers<'_, T> {}
impl<T> ExactSizeIterator for SliceMembersMut<'_, T> {}
impl<T> core::iter::FusedIterator for SliceMembers<'_, T> {}
impl<T> core::iter::FusedIterator for SliceMembersMut<'_, T> {}

impl<T> fmt::Debug for SliceMembers<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SliceMembers")
            .field("left", &self.parts.len())
            .finish()
    }
}

impl<T> fmt::Debug for SliceMembersMut<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SliceMembersMut")
            .field("left", &self.parts.len())
            .finish()
    }
}

/// Several sub-slices of a [`SliceRwLock`], held as one request: every member's elements at
/// once, `&[T]` for a shared member and `&mut [T]` for an exclusive one. All are unlocked
/// when it is dropped. See [`SliceRwLock::lock_set`].
///
/// ```
/// use rangelock::{RangeSet, SliceRwLock};
/// let s = SliceRwLock::new(vec![1, 2, 3, 4, 5, 6]);
/// let set = RangeSet::new().read(0..2).write(4..6);
/// let mut guard = s.lock_set(&set);
/// let sum: i32 = guard.get(0).unwrap().iter().sum();
/// guard.get_mut(1).unwrap()[0] = sum;
/// assert_eq!(format!("{guard:?}"), "[[1, 2], [3, 6]]");
/// ```
#[must_use = "if unused the ranges are unlocked at once"]
pub struct SliceSetGuard<'a, T> {
    guard: RangeSetGuard<'a>,
    /// The whole slice's cells.
    cells: &'a [UnsafeCell<T>],
}

/// Several sub-slices of an `Arc`'d [`SliceRwLock`], held as one request; the guard owns the
/// set and keeps the slice alive, so it is `'static`. See [`SliceRwLock::lock_set_arc`] and
/// [`SliceSetGuard`] for the members.
///
/// ```
/// use std::sync::Arc;
/// use rangelock::{ArcSliceSetGuard, RangeSet, SliceRwLock};
/// let s = Arc::new(SliceRwLock::new(vec![0u8; 4]));
/// let mut guard: ArcSliceSetGuard<u8> = s.lock_set_arc(RangeSet::new().write(1..3));
/// guard.get_mut(0).unwrap().fill(1);
/// drop(guard);
/// assert_eq!(s.read(..)[..], [0, 1, 1, 0]);
/// ```
#[must_use = "if unused the ranges are unlocked at once"]
pub struct ArcSliceSetGuard<T>(HeldSet<SliceArc<T>, RangeSet>);

// SAFETY: the guard gives `&mut [T]` for exclusive members (which may move to another thread
// when `T: Send`) and `&[T]` for shared ones (which may when `T: Sync`); the set guard inside
// is `Send + Sync`.
unsafe impl<T: Send + Sync> Send for SliceSetGuard<'_, T> {}
// SAFETY: `&SliceSetGuard` gives only `&[T]`, shareable when `T: Sync`.
unsafe impl<T: Sync> Sync for SliceSetGuard<'_, T> {}

impl<T> SliceSetGuard<'_, T> {
    /// The held set's parts and the whole slice's cells.
    fn view(&self) -> (&[Part], &[UnsafeCell<T>]) {
        (self.guard.set().parts(), self.cells)
    }
}

impl<T> ArcSliceSetGuard<T> {
    /// The held set's parts and the whole slice's cells.
    fn view(&self) -> (&[Part], &[UnsafeCell<T>]) {
        (self.0.set().parts(), &self.0.lock().0.data)
    }

    /// Unlocks every range and gives back the set (see [`crate::ArcRangeSetGuard::into_set`]).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use rangelock::{RangeSet, SliceRwLock};
    /// let s = Arc::new(SliceRwLock::new(vec![0u8; 8]));
    /// let mut set = RangeSet::new().write(0..1).write(4..5);
    /// for i in 0..3 {
    ///     let mut guard = s.lock_set_arc(set);
    ///     guard.get_mut(1).unwrap()[0] = i;
    ///     set = guard.into_set();
    /// }
    /// assert_eq!(s.read(4..5)[..], [2]);
    /// ```
    #[must_use = "the set is dropped if unused; dropping the guard unlocks it too"]
    pub fn into_set(self) -> RangeSet {
        self.0.into_set()
    }
}

/// The member accessors and `Debug` of both set guards.
macro_rules! set_guard_members {
    ($($guard:ident $(<$l:lifetime>)?, $make:literal;)*) => {$(
        impl<$($l,)? T> $guard<$($l,)? T> {
            /// The set it holds: its ranges are the members, in ascending order.
            ///
            /// ```
            /// # use std::sync::Arc;
            /// use rangelock::{RangeSet, SliceRwLock};
            /// let s = Arc::new(SliceRwLock::new(vec![0u8; 16]));
            /// let set = RangeSet::new().read(0..4).write(2..6).read(8..10);
            #[doc = concat!("let guard = ", $make, ";")]
            /// assert_eq!(guard.set().ranges().collect::<Vec<_>>(), [(0..=5, true), (8..=9, false)]);
            /// ```
            #[must_use]
            pub fn set(&self) -> &RangeSet {
                self.guard_set()
            }

            /// Member `i`'s elements, shared, whichever way it is locked; `None` if the set
            /// has no member `i`.
            ///
            /// ```
            /// # use std::sync::Arc;
            /// use rangelock::{RangeSet, SliceRwLock};
            /// let s = Arc::new(SliceRwLock::new(vec![1, 2, 3, 4]));
            /// let set = RangeSet::new().read(0..1).write(2..4);
            #[doc = concat!("let guard = ", $make, ";")]
            /// assert_eq!(guard.get(0), Some(&[1][..]));
            /// assert_eq!(guard.get(1), Some(&[3, 4][..]));
            /// assert_eq!(guard.get(2), None);
            /// ```
            #[must_use]
            pub fn get(&self, i: usize) -> Option<&[T]> {
                self.members().nth(i)
            }

            /// Member `i`'s elements, mutably, if it is locked exclusive; `None` if it is
            /// shared or the set has no member `i`. To hold several members at once, use
            /// [`members_mut`](Self::members_mut).
            ///
            /// ```
            /// # use std::sync::Arc;
            /// use rangelock::{RangeSet, SliceRwLock};
            /// let s = Arc::new(SliceRwLock::new(vec![1, 2, 3, 4]));
            /// let set = RangeSet::new().read(0..1).write(2..4);
            #[doc = concat!("let mut guard = ", $make, ";")]
            /// assert!(guard.get_mut(0).is_none(), "shared");
            /// guard.get_mut(1).unwrap().reverse();
            /// # drop(guard);
            /// assert_eq!(s.read(..)[..], [1, 2, 4, 3]);
            /// ```
            #[must_use]
            pub fn get_mut(&mut self, i: usize) -> Option<&mut [T]> {
                self.members_mut().nth(i)?.into_mut()
            }

            /// Every member's elements, shared, in ascending order.
            ///
            /// ```
            /// # use std::sync::Arc;
            /// use rangelock::{RangeSet, SliceRwLock};
            /// let s = Arc::new(SliceRwLock::new(vec![1, 2, 3, 4]));
            /// let set = RangeSet::new().read(0..1).write(2..4);
            #[doc = concat!("let guard = ", $make, ";")]
            /// assert_eq!(guard.members().map(<[_]>::len).sum::<usize>(), 3);
            /// ```
            pub fn members(&self) -> SliceMembers<'_, T> {
                // `&self` is borrowed for as long as the iterator and its items live.
                let (parts, cells) = self.view();
                SliceMembers { parts: parts.iter(), cells }
            }

            /// Every member at once, in ascending order: [`SliceMember::Shared`] with `&[T]`
            /// for a member locked shared, [`SliceMember::Exclusive`] with `&mut [T]` for one
            /// locked exclusive.
            ///
            /// ```
            /// # use std::sync::Arc;
            /// use rangelock::{RangeSet, SliceMember, SliceRwLock};
            /// let s = Arc::new(SliceRwLock::new(vec![1, 2, 0, 0]));
            /// let set = RangeSet::new().read(0..2).write(2..4);
            #[doc = concat!("let mut guard = ", $make, ";")]
            /// let mut members = guard.members_mut();
            /// let src = members.next().unwrap().into_slice();
            /// let dst = members.next().unwrap().into_mut().unwrap();
            /// dst.copy_from_slice(src);
            /// # drop(guard);
            /// assert_eq!(s.read(..)[..], [1, 2, 1, 2]);
            /// ```
            pub fn members_mut(&mut self) -> SliceMembersMut<'_, T> {
                // `&mut self` excludes every other borrow through the guard for as long as
                // the iterator and its items live.
                let (parts, cells) = self.view();
                SliceMembersMut { parts: parts.iter(), cells }
            }
        }

        impl<$($l,)? T: fmt::Debug> fmt::Debug for $guard<$($l,)? T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_list().entries(self.members()).finish()
            }
        }
    )*};
}

set_guard_members! {
    SliceSetGuard<'a>, "s.lock_set(&set)";
    ArcSliceSetGuard, "s.lock_set_arc(set)";
}

impl<T> SliceSetGuard<'_, T> {
    fn guard_set(&self) -> &RangeSet {
        self.guard.set()
    }
}

impl<T> ArcSliceSetGuard<T> {
    fn guard_set(&self) -> &RangeSet {
        self.0.set()
    }
}

/// The future of [`SliceRwLock::lock_set_async`]: resolves to a [`SliceSetGuard`] once every
/// range of the set is locked. Dropping it before then gives up the whole request.
///
/// ```
/// use rangelock::{RangeSet, SliceRwLock};
/// let s = SliceRwLock::new(vec![1, 2, 3]);
/// let set = RangeSet::new().read(0..1).read(2..3);
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let guard = s.lock_set_async(&set).await;
/// assert_eq!(guard.get(1), Some(&[3][..]));
/// # });
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct SliceSetFuture<'a, T> {
    acquire: AcquireSet<&'a RangeRwLock, &'a RangeSet>,
    /// The whole slice's cells.
    cells: &'a [UnsafeCell<T>],
}

// SAFETY: the future resolves to a guard that is `Send` under the same bounds; until then it
// holds a request and a shared borrow of the cells, which it never accesses.
unsafe impl<T: Send + Sync> Send for SliceSetFuture<'_, T> {}

impl<'a, T> Future for SliceSetFuture<'a, T> {
    type Output = SliceSetGuard<'a, T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Used through `&self` only: nothing is moved out of the pinned future.
        let this = self.into_ref().get_ref();
        this.acquire.poll_held(cx).map(|held| SliceSetGuard {
            guard: RangeSetGuard(held),
            cells: this.cells,
        })
    }
}

impl<T> fmt::Debug for SliceSetFuture<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SliceSetFuture").finish_non_exhaustive()
    }
}

/// The future of [`SliceRwLock::lock_set_owned`]: resolves to an [`ArcSliceSetGuard`] once
/// every range of the set is locked. Dropping it before then gives up the whole request.
///
/// ```
/// use std::sync::Arc;
/// use rangelock::{RangeSet, SliceRwLock};
/// let s = Arc::new(SliceRwLock::new(vec![1, 2, 3]));
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let mut guard = tokio::spawn(s.lock_set_owned(RangeSet::new().write(..))).await.unwrap();
/// guard.get_mut(0).unwrap().reverse();
/// # drop(guard);
/// # });
/// assert_eq!(s.read(..)[..], [3, 2, 1]);
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct OwnedSliceSetFuture<T>(AcquireSet<SliceArc<T>, RangeSet>);

impl<T> Future for OwnedSliceSetFuture<T> {
    type Output = ArcSliceSetGuard<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.into_ref()
            .get_ref()
            .0
            .poll_held(cx)
            .map(ArcSliceSetGuard)
    }
}

impl<T> fmt::Debug for OwnedSliceSetFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedSliceSetFuture")
            .finish_non_exhaustive()
    }
}
