//! Guards: the sub-slices a granted request hands out, borrowed or keeping an `Arc` of the
//! slice alive, and the `Arc` methods that make the latter.

use core::cell::UnsafeCell;
use core::fmt;
use core::ops::{Deref, DerefMut, RangeBounds};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::SliceRwLock;
use crate::lock::{Held, Mode, RangeReadGuard, RangeRwLock, RangeWriteGuard, Wait};
use crate::range::slice_bounds;

/// The elements of `cells`, shared.
///
/// # Safety
///
/// No `&mut` to any of these elements exists while the result lives (a read guard, or a write
/// guard borrowed shared, covers them).
pub(super) unsafe fn shared<T>(cells: &[UnsafeCell<T>]) -> &[T] {
    // SAFETY: `UnsafeCell<T>` has the layout of `T`; the caller excludes writers.
    unsafe { &*(std::ptr::from_ref::<[UnsafeCell<T>]>(cells) as *const [T]) }
}

/// The elements of `cells`, exclusively.
///
/// # Safety
///
/// No other reference to any of these elements exists while the result lives (a write guard,
/// borrowed mutably, covers them).
#[allow(clippy::mut_from_ref)]
pub(super) unsafe fn exclusive<T>(cells: &[UnsafeCell<T>]) -> &mut [T] {
    // SAFETY: `UnsafeCell<T>` has the layout of `T`, and its contents may be mutated through a
    // shared reference to the cell; the caller excludes every other reference.
    unsafe { core::slice::from_raw_parts_mut(UnsafeCell::raw_get(cells.as_ptr()), cells.len()) }
}

/// `Arc` requests: blocking and `try_*`, for guards that keep the slice alive.
impl<T> SliceRwLock<T> {
    /// Locks `range` of the indices shared, blocking, for a guard that keeps the slice alive
    /// (`'static`; see [`RangeRwLock::read_arc`]). It derefs to `[T]`.
    ///
    /// # Panics
    ///
    /// As slice indexing does: if the range is inverted or ends past `len()`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let s = Arc::new(rangelock::SliceRwLock::new(vec![1, 2, 3]));
    /// let g = s.read_arc(..2);
    /// std::thread::spawn(move || assert_eq!(*g, [1, 2])).join().unwrap();
    /// ```
    #[track_caller]
    pub fn read_arc(self: &Arc<Self>, range: impl RangeBounds<usize>) -> ArcSliceReadGuard<T> {
        let (start, end) = slice_bounds(&range, self.len());
        let held = self
            .lock
            .held_owned(start as u64..end as u64, Mode::Read, Wait::Forever)
            .expect("a request without deadline is granted");
        ArcSliceReadGuard(ArcSlice::adopt(self, held, start, end))
    }

    /// Locks `range` of the indices exclusive, blocking, for a guard that keeps the slice alive
    /// (`'static`; see [`RangeRwLock::write_arc`]). It derefs to `[T]`, mutably.
    ///
    /// # Panics
    ///
    /// As slice indexing does: if the range is inverted or ends past `len()`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let s = Arc::new(rangelock::SliceRwLock::new(vec![0u8; 100]));
    /// let mut g = s.write_arc(10..20);
    /// std::thread::spawn(move || g.fill(1)).join().unwrap();
    /// assert_eq!(s.read(..)[10..20], [1; 10]);
    /// ```
    #[track_caller]
    pub fn write_arc(self: &Arc<Self>, range: impl RangeBounds<usize>) -> ArcSliceWriteGuard<T> {
        let (start, end) = slice_bounds(&range, self.len());
        let held = self
            .lock
            .held_owned(start as u64..end as u64, Mode::Write, Wait::Forever)
            .expect("a request without deadline is granted");
        ArcSliceWriteGuard(ArcSlice::adopt(self, held, start, end))
    }

    /// As [`read_arc`](Self::read_arc), but fails instead of waiting.
    ///
    /// # Panics
    ///
    /// As slice indexing does: if the range is inverted or ends past `len()`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let s = Arc::new(rangelock::SliceRwLock::new(vec![0u8; 10]));
    /// let _w = s.write(0..5);
    /// assert!(s.try_read_arc(4..6).is_none());
    /// assert!(s.try_read_arc(5..).is_some());
    /// ```
    #[track_caller]
    pub fn try_read_arc(
        self: &Arc<Self>,
        range: impl RangeBounds<usize>,
    ) -> Option<ArcSliceReadGuard<T>> {
        let (start, end) = slice_bounds(&range, self.len());
        let held = (self.lock).held_owned(start as u64..end as u64, Mode::Read, Wait::Never)?;
        Some(ArcSliceReadGuard(ArcSlice::adopt(self, held, start, end)))
    }

    /// As [`write_arc`](Self::write_arc), but fails instead of waiting.
    ///
    /// # Panics
    ///
    /// As slice indexing does: if the range is inverted or ends past `len()`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let s = Arc::new(rangelock::SliceRwLock::new(vec![0u8; 10]));
    /// let _r = s.read(0..5);
    /// assert!(s.try_write_arc(4..6).is_none());
    /// assert!(s.try_write_arc(5..).is_some());
    /// ```
    #[track_caller]
    pub fn try_write_arc(
        self: &Arc<Self>,
        range: impl RangeBounds<usize>,
    ) -> Option<ArcSliceWriteGuard<T>> {
        let (start, end) = slice_bounds(&range, self.len());
        let held = (self.lock).held_owned(start as u64..end as u64, Mode::Write, Wait::Never)?;
        Some(ArcSliceWriteGuard(ArcSlice::adopt(self, held, start, end)))
    }

    /// As [`read_arc`](Self::read_arc), waiting at most `timeout`.
    ///
    /// # Panics
    ///
    /// As slice indexing does: if the range is inverted or ends past `len()`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// let s = Arc::new(rangelock::SliceRwLock::new(vec![0u8; 10]));
    /// let w = s.write(0..5);
    /// assert!(s.try_read_arc_for(4..6, Duration::from_millis(1)).is_none());
    /// drop(w);
    /// let r = s.try_read_arc_for(4..6, Duration::from_millis(1)).unwrap();
    /// std::thread::spawn(move || assert_eq!(*r, [0, 0])).join().unwrap();
    /// ```
    #[track_caller]
    pub fn try_read_arc_for(
        self: &Arc<Self>,
        range: impl RangeBounds<usize>,
        timeout: Duration,
    ) -> Option<ArcSliceReadGuard<T>> {
        self.arc_with(range, |lock, r| {
            lock.held_owned(r, Mode::Read, Wait::for_duration(timeout))
        })
        .map(ArcSliceReadGuard)
    }

    /// As [`write_arc`](Self::write_arc), waiting at most `timeout`.
    ///
    /// # Panics
    ///
    /// As slice indexing does: if the range is inverted or ends past `len()`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// let s = Arc::new(rangelock::SliceRwLock::new(vec![0u8; 10]));
    /// let r = s.read(0..5);
    /// assert!(s.try_write_arc_for(4..6, Duration::from_millis(1)).is_none());
    /// drop(r);
    /// let mut w = s.try_write_arc_for(4..6, Duration::from_millis(1)).unwrap();
    /// std::thread::spawn(move || w.fill(1)).join().unwrap();
    /// assert_eq!(s.read(3..7)[..], [0, 1, 1, 0]);
    /// ```
    #[track_caller]
    pub fn try_write_arc_for(
        self: &Arc<Self>,
        range: impl RangeBounds<usize>,
        timeout: Duration,
    ) -> Option<ArcSliceWriteGuard<T>> {
        self.arc_with(range, |lock, r| {
            lock.held_owned(r, Mode::Write, Wait::for_duration(timeout))
        })
        .map(ArcSliceWriteGuard)
    }

    /// As [`read_arc`](Self::read_arc), waiting until `deadline` at the latest.
    ///
    /// # Panics
    ///
    /// As slice indexing does: if the range is inverted or ends past `len()`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::{Duration, Instant};
    /// let s = Arc::new(rangelock::SliceRwLock::new(vec![0u8; 10]));
    /// let deadline = Instant::now() + Duration::from_millis(1);
    /// let _w = s.write(0..5);
    /// assert!(s.try_read_arc_until(4..6, deadline).is_none());
    /// assert_eq!(*s.try_read_arc_until(5..6, deadline).unwrap(), [0]);
    /// ```
    #[track_caller]
    pub fn try_read_arc_until(
        self: &Arc<Self>,
        range: impl RangeBounds<usize>,
        deadline: Instant,
    ) -> Option<ArcSliceReadGuard<T>> {
        self.arc_with(range, |lock, r| {
            lock.held_owned(r, Mode::Read, Wait::Until(deadline))
        })
        .map(ArcSliceReadGuard)
    }

    /// As [`write_arc`](Self::write_arc), waiting until `deadline` at the latest.
    ///
    /// # Panics
    ///
    /// As slice indexing does: if the range is inverted or ends past `len()`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::{Duration, Instant};
    /// let s = Arc::new(rangelock::SliceRwLock::new(vec![0u8; 10]));
    /// let deadline = Instant::now() + Duration::from_millis(1);
    /// let _r = s.read(0..5);
    /// assert!(s.try_write_arc_until(4..6, deadline).is_none());
    /// assert!(s.try_write_arc_until(5..6, deadline).is_some());
    /// ```
    #[track_caller]
    pub fn try_write_arc_until(
        self: &Arc<Self>,
        range: impl RangeBounds<usize>,
        deadline: Instant,
    ) -> Option<ArcSliceWriteGuard<T>> {
        self.arc_with(range, |lock, r| {
            lock.held_owned(r, Mode::Write, Wait::Until(deadline))
        })
        .map(ArcSliceWriteGuard)
    }

    /// Locks `range` with `acquire` for an owned guard's core.
    #[track_caller]
    fn arc_with<'a>(
        self: &'a Arc<Self>,
        range: impl RangeBounds<usize>,
        acquire: impl FnOnce(&'a RangeRwLock, core::ops::Range<u64>) -> Option<Held<&'a RangeRwLock>>,
    ) -> Option<ArcSlice<T>> {
        let (start, end) = slice_bounds(&range, self.len());
        let held = acquire(&self.lock, start as u64..end as u64)?;
        Some(ArcSlice::adopt(self, held, start, end))
    }
}

/// Shared access to a sub-slice of a [`SliceRwLock`]; derefs to `&[T]`.
///
/// ```
/// let s = rangelock::SliceRwLock::new(vec![1, 2, 3]);
/// let guard = s.read(1..);
/// assert_eq!(guard.iter().sum::<i32>(), 5);
/// ```
#[must_use = "if unused the range is unlocked at once"]
pub struct SliceReadGuard<'a, T> {
    pub(super) _guard: RangeReadGuard<'a>,
    pub(super) cells: &'a [UnsafeCell<T>],
}

/// Exclusive access to a sub-slice of a [`SliceRwLock`]; derefs to `&mut [T]`.
///
/// ```
/// let s = rangelock::SliceRwLock::new(vec![1, 2, 3]);
/// s.write(..).reverse();
/// assert_eq!(s.read(..)[..], [3, 2, 1]);
/// ```
///
/// It is `Send` only when `T` is `Send` and `Sync`, as `parking_lot`'s write guards are: a
/// guard sent to another thread can be downgraded there, and the elements are then shared
/// with readers on the first thread.
///
/// ```compile_fail
/// fn send<T: Send>() {}
/// send::<rangelock::SliceWriteGuard<'static, std::cell::Cell<u8>>>();
/// ```
#[must_use = "if unused the range is unlocked at once"]
pub struct SliceWriteGuard<'a, T> {
    pub(super) guard: RangeWriteGuard<'a>,
    pub(super) cells: &'a [UnsafeCell<T>],
}

// SAFETY: the guard gives `&[T]`, which may cross threads (or be shared) when `T: Sync`; the
// range guard inside is `Send + Sync`.
unsafe impl<T: Sync> Send for SliceReadGuard<'_, T> {}
// SAFETY: as for `Send`: `&SliceReadGuard` gives only `&[T]`.
unsafe impl<T: Sync> Sync for SliceReadGuard<'_, T> {}
// SAFETY: the guard is `&mut [T]` for its range, which may move to another thread when
// `T: Send`; no other guard covers those elements while it lives. And `T: Sync`, because the
// guard can be downgraded on the thread it was sent to, after which readers on other threads
// share the elements.
unsafe impl<T: Send + Sync> Send for SliceWriteGuard<'_, T> {}
// SAFETY: `&SliceWriteGuard` gives only `&[T]`, shareable when `T: Sync`.
unsafe impl<T: Sync> Sync for SliceWriteGuard<'_, T> {}

impl<T> Deref for SliceReadGuard<'_, T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        // SAFETY: the read guard excludes every writer of these elements.
        unsafe { shared(self.cells) }
    }
}

impl<T> Deref for SliceWriteGuard<'_, T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        // SAFETY: the write guard excludes every other guard over these elements, and `&self`
        // excludes `deref_mut` on this one.
        unsafe { shared(self.cells) }
    }
}

impl<T> DerefMut for SliceWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: the write guard excludes every other guard over these elements, and
        // `&mut self` every other borrow through this one.
        unsafe { exclusive(self.cells) }
    }
}

impl<'a, T> SliceWriteGuard<'a, T> {
    /// Turns exclusive access into shared access without unlocking, letting in the readers
    /// queued behind this guard (see [`RangeWriteGuard::downgrade`]).
    ///
    /// ```
    /// let s = rangelock::SliceRwLock::new(vec![1, 2, 3, 4]);
    /// let mut w = s.write(..2);
    /// w[0] = 7;
    /// let r = w.downgrade();
    /// assert_eq!(*s.try_read(..1).unwrap(), [7]); // readers get in beside it
    /// assert!(s.try_write(..1).is_none());
    /// # drop(r);
    /// ```
    pub fn downgrade(self) -> SliceReadGuard<'a, T> {
        SliceReadGuard {
            _guard: self.guard.downgrade(),
            cells: self.cells,
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for SliceReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: fmt::Debug> fmt::Debug for SliceWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// An `Arc<SliceRwLock<T>>` as the lock its guards and futures hold on to.
pub(super) struct SliceArc<T>(pub(super) Arc<SliceRwLock<T>>);

impl<T> Clone for SliceArc<T> {
    fn clone(&self) -> Self {
        SliceArc(Arc::clone(&self.0))
    }
}

impl<T> Deref for SliceArc<T> {
    type Target = RangeRwLock;

    fn deref(&self) -> &RangeRwLock {
        &self.0.lock
    }
}

/// A held range of an `Arc`'d slice: the core of both owned slice guards.
pub(super) struct ArcSlice<T> {
    pub(super) held: Held<SliceArc<T>>,
    pub(super) start: usize,
    pub(super) end: usize,
}

impl<T> ArcSlice<T> {
    /// Moves a held request on `slice`'s lock into an owned guard core.
    fn adopt(
        slice: &Arc<SliceRwLock<T>>,
        held: Held<&RangeRwLock>,
        start: usize,
        end: usize,
    ) -> Self {
        ArcSlice {
            held: held.map_lock(|_| SliceArc(Arc::clone(slice))),
            start,
            end,
        }
    }

    fn cells(&self) -> &[UnsafeCell<T>] {
        &self.held.lock().0.data[self.start..self.end]
    }
}

/// Shared access to a sub-slice of an `Arc`'d [`SliceRwLock`], which it keeps alive; derefs to
/// `&[T]`. See [`SliceRwLock::read_arc`].
///
/// ```
/// use std::sync::Arc;
/// let s = Arc::new(rangelock::SliceRwLock::new(vec![1, 2, 3]));
/// let guard: rangelock::ArcSliceReadGuard<i32> = s.read_arc(..);
/// assert_eq!(std::thread::spawn(move || guard.len()).join().unwrap(), 3);
/// ```
#[must_use = "if unused the range is unlocked at once"]
pub struct ArcSliceReadGuard<T>(pub(super) ArcSlice<T>);

/// Exclusive access to a sub-slice of an `Arc`'d [`SliceRwLock`], which it keeps alive; derefs
/// to `&mut [T]`. See [`SliceRwLock::write_arc`].
///
/// ```
/// use std::sync::Arc;
/// let s = Arc::new(rangelock::SliceRwLock::new(vec![0u8; 4]));
/// let mut guard: rangelock::ArcSliceWriteGuard<u8> = s.write_arc(1..3);
/// guard.fill(1);
/// drop(guard);
/// assert_eq!(s.read(..)[..], [0, 1, 1, 0]);
/// ```
#[must_use = "if unused the range is unlocked at once"]
pub struct ArcSliceWriteGuard<T>(pub(super) ArcSlice<T>);

impl<T> Deref for ArcSliceReadGuard<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        // SAFETY: the read guard excludes every writer of these elements.
        unsafe { shared(self.0.cells()) }
    }
}

impl<T> Deref for ArcSliceWriteGuard<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        // SAFETY: the write guard excludes every other guard over these elements, and `&self`
        // excludes `deref_mut` on this one.
        unsafe { shared(self.0.cells()) }
    }
}

impl<T> DerefMut for ArcSliceWriteGuard<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: the write guard excludes every other guard over these elements, and
        // `&mut self` every other borrow through this one.
        unsafe { exclusive(self.0.cells()) }
    }
}

impl<T> ArcSliceWriteGuard<T> {
    /// Turns exclusive access into shared access without unlocking (see
    /// [`RangeWriteGuard::downgrade`]).
    ///
    /// ```
    /// use std::sync::Arc;
    /// let s = Arc::new(rangelock::SliceRwLock::new(vec![0u8; 4]));
    /// let r = s.write_arc(..).downgrade();
    /// assert!(s.try_read(..).is_some());
    /// # drop(r);
    /// ```
    pub fn downgrade(self) -> ArcSliceReadGuard<T> {
        let ArcSlice { held, start, end } = self.0;
        ArcSliceReadGuard(ArcSlice {
            held: held.downgrade(),
            start,
            end,
        })
    }
}

impl<T: fmt::Debug> fmt::Debug for ArcSliceReadGuard<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: fmt::Debug> fmt::Debug for ArcSliceWriteGuard<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
