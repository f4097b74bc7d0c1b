//! `SliceRwLock<T>`: a boxed slice whose sub-slices are locked by range.

use core::cell::UnsafeCell;
use core::fmt;
use core::future::Future;
use core::ops::{Deref, DerefMut, RangeBounds};
use core::pin::Pin;
use core::task::{Context, Poll};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::lock::{Acquire, Held, Mode, RangeReadGuard, RangeRwLock, RangeWriteGuard};
use crate::range::{slice_bounds, Span};

/// What [`SliceRwLock::new`] accepts: an owned slice (`Vec<T>` or `Box<[T]>`). Borrowed
/// slices are not accepted: the lock would have to copy them, and writes would go to the
/// copy.
///
/// ```
/// let from_vec = rangelock::SliceRwLock::new(vec![1, 2]);
/// let from_box = rangelock::SliceRwLock::new(vec![1, 2].into_boxed_slice());
/// assert_eq!(from_vec.len(), from_box.len());
/// ```
pub trait OwnedSlice<T>: sealed::Sealed {
    /// The elements, as a boxed slice (a `Vec` is shrunk to fit, without copying when its
    /// capacity is its length).
    fn into_boxed(self) -> Box<[T]>;
}

mod sealed {
    pub trait Sealed {}
    impl<T> Sealed for Vec<T> {}
    impl<T> Sealed for Box<[T]> {}
}

impl<T> OwnedSlice<T> for Vec<T> {
    fn into_boxed(self) -> Box<[T]> {
        self.into_boxed_slice()
    }
}

impl<T> OwnedSlice<T> for Box<[T]> {
    fn into_boxed(self) -> Box<[T]> {
        self
    }
}

/// The elements of `cells`, shared.
///
/// # Safety
///
/// No `&mut` to any of these elements exists while the result lives (a read guard, or a write
/// guard borrowed shared, covers them).
unsafe fn shared<T>(cells: &[UnsafeCell<T>]) -> &[T] {
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
unsafe fn exclusive<T>(cells: &[UnsafeCell<T>]) -> &mut [T] {
    // SAFETY: `UnsafeCell<T>` has the layout of `T`, and its contents may be mutated through a
    // shared reference to the cell; the caller excludes every other reference.
    unsafe { core::slice::from_raw_parts_mut(UnsafeCell::raw_get(cells.as_ptr()), cells.len()) }
}

/// A slice whose sub-slices are locked independently: [`read`](Self::read) gives `&[T]` for a
/// range, [`write`](Self::write) gives `&mut [T]`, and disjoint ranges never wait for each
/// other. The locking is a [`RangeRwLock`] over the indices, with the same fairness.
///
/// # Examples
///
/// Disjoint writers in parallel, with rayon:
///
/// ```
/// use rangelock::SliceRwLock;
/// use rayon::prelude::*;
///
/// let data = SliceRwLock::new(vec![0u32; 1024]);
/// (0..8).into_par_iter().for_each(|chunk| {
///     let mut part = data.write(chunk * 128..(chunk + 1) * 128);
///     part.iter_mut().for_each(|x| *x = chunk as u32);
/// });
/// assert_eq!(data.read(128..130)[..], [1, 1]);
/// assert_eq!(data.into_inner()[1023], 7);
/// ```
pub struct SliceRwLock<T> {
    lock: RangeRwLock,
    data: Box<[UnsafeCell<T>]>,
}

// SAFETY: a shared `SliceRwLock` hands out `&[T]` (needs `T: Sync`) and `&mut [T]` to other
// threads (needs `T: Send`), never both for one element at once: the range lock keeps an
// element's writer exclusive of every other guard that covers it.
unsafe impl<T: Send + Sync> Sync for SliceRwLock<T> {}

impl<T> SliceRwLock<T> {
    /// Takes ownership of `data`, a `Vec<T>` or `Box<[T]>`, without copying the elements.
    /// (A `Vec` with spare capacity is shrunk to fit first, as `into_boxed_slice` does.)
    ///
    /// Borrowed slices are not accepted, since writes through the lock would go to a copy:
    ///
    /// ```compile_fail
    /// let mut v = vec![0u8; 4];
    /// let s = rangelock::SliceRwLock::new(&mut v[..]);
    /// ```
    ///
    /// ```
    /// let s = rangelock::SliceRwLock::new(vec![1, 2, 3]);
    /// assert_eq!(s.len(), 3);
    /// let b: Box<[u8]> = Box::new([0; 8]);
    /// assert_eq!(rangelock::SliceRwLock::new(b).len(), 8);
    /// ```
    pub fn new(data: impl OwnedSlice<T>) -> Self {
        let data = data.into_boxed();
        let len = data.len();
        let cells = Box::into_raw(data).cast::<UnsafeCell<T>>();
        // SAFETY: `UnsafeCell<T>` is `repr(transparent)` over `T`, so the allocation of `len`
        // `T`s is one of `len` cells, with the same layout; ownership moves from the box.
        let data = unsafe { Box::from_raw(core::ptr::slice_from_raw_parts_mut(cells, len)) };
        SliceRwLock {
            lock: RangeRwLock::new(),
            data,
        }
    }

    /// The number of elements.
    ///
    /// ```
    /// let s = rangelock::SliceRwLock::new(vec![1, 2, 3, 4]);
    /// assert_eq!(s.len(), 4);
    /// ```
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the slice has no elements.
    ///
    /// ```
    /// assert!(rangelock::SliceRwLock::<u8>::new(Vec::new()).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The whole slice, mutably: `&mut self` proves no guard exists.
    ///
    /// ```
    /// let mut s = rangelock::SliceRwLock::new(vec![1, 2, 3]);
    /// s.get_mut()[0] = 10; // no lock needed: `&mut` proves nobody else looks
    /// assert_eq!(s.read(..1)[0], 10);
    /// ```
    pub fn get_mut(&mut self) -> &mut [T] {
        let cells: *mut [UnsafeCell<T>] = &raw mut *self.data;
        // SAFETY: `UnsafeCell<T>` has the layout of `T`, and `&mut self` excludes every guard.
        unsafe { &mut *(cells as *mut [T]) }
    }

    /// Unwraps the slice.
    ///
    /// ```
    /// let s = rangelock::SliceRwLock::new(vec![1, 2, 3, 4]);
    /// s.write(..2).copy_from_slice(&[9, 9]);
    /// assert_eq!(*s.into_inner(), [9, 9, 3, 4]);
    /// ```
    pub fn into_inner(self) -> Box<[T]> {
        let len = self.data.len();
        let cells = Box::into_raw(self.data).cast::<T>();
        // SAFETY: the reverse of `new`: a cell has the layout of its `T`.
        unsafe { Box::from_raw(core::ptr::slice_from_raw_parts_mut(cells, len)) }
    }

    /// Locks `range` of the indices shared and returns its elements.
    ///
    /// # Panics
    ///
    /// As slice indexing does: if the range is inverted or ends past `len()`.
    ///
    /// ```
    /// let s = rangelock::SliceRwLock::new(vec![1, 2, 3, 4]);
    /// let a = s.read(..2);
    /// let b = s.read(1..); // readers share
    /// assert_eq!((&*a, &*b), (&[1, 2][..], &[2, 3, 4][..]));
    /// ```
    #[track_caller]
    pub fn read(&self, range: impl RangeBounds<usize>) -> SliceReadGuard<'_, T> {
        let (start, end) = slice_bounds(&range, self.len());
        SliceReadGuard {
            _guard: self.lock.read(start as u64..end as u64),
            cells: &self.data[start..end],
        }
    }

    /// Locks `range` of the indices exclusive and returns its elements mutably.
    ///
    /// # Panics
    ///
    /// As slice indexing does: if the range is inverted or ends past `len()`.
    ///
    /// ```
    /// let s = rangelock::SliceRwLock::new(vec![1, 2, 3, 4]);
    /// let mut left = s.write(..2);
    /// let mut right = s.write(2..); // disjoint: both at once
    /// left[0] = 0;
    /// right[1] = 0;
    /// drop((left, right));
    /// assert_eq!(s.read(..)[..], [0, 2, 3, 0]);
    /// ```
    #[track_caller]
    pub fn write(&self, range: impl RangeBounds<usize>) -> SliceWriteGuard<'_, T> {
        let (start, end) = slice_bounds(&range, self.len());
        SliceWriteGuard {
            guard: self.lock.write(start as u64..end as u64),
            cells: &self.data[start..end],
        }
    }

    /// As [`read`](Self::read), but fails instead of waiting (see [`RangeRwLock::try_read`]).
    ///
    /// ```
    /// let s = rangelock::SliceRwLock::new(vec![1, 2, 3, 4]);
    /// let _w = s.write(0..2);
    /// assert!(s.try_read(1..3).is_none());
    /// assert_eq!(*s.try_read(2..).unwrap(), [3, 4]);
    /// ```
    #[track_caller]
    pub fn try_read(&self, range: impl RangeBounds<usize>) -> Option<SliceReadGuard<'_, T>> {
        self.read_with(range, |lock, r| lock.try_read(r))
    }

    /// As [`write`](Self::write), but fails instead of waiting (see
    /// [`RangeRwLock::try_write`]).
    ///
    /// ```
    /// let s = rangelock::SliceRwLock::new(vec![1, 2, 3, 4]);
    /// let _r = s.read(0..2);
    /// assert!(s.try_write(1..3).is_none());
    /// assert!(s.try_write(2..).is_some());
    /// ```
    #[track_caller]
    pub fn try_write(&self, range: impl RangeBounds<usize>) -> Option<SliceWriteGuard<'_, T>> {
        self.write_with(range, |lock, r| lock.try_write(r))
    }

    /// As [`read`](Self::read), waiting at most `timeout`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let s = rangelock::SliceRwLock::new(vec![1, 2, 3, 4]);
    /// let w = s.write(..);
    /// assert!(s.try_read_for(0..1, Duration::from_millis(1)).is_none());
    /// drop(w);
    /// assert!(s.try_read_for(0..1, Duration::from_millis(1)).is_some());
    /// ```
    #[track_caller]
    pub fn try_read_for(
        &self,
        range: impl RangeBounds<usize>,
        timeout: Duration,
    ) -> Option<SliceReadGuard<'_, T>> {
        self.read_with(range, |lock, r| lock.try_read_for(r, timeout))
    }

    /// As [`write`](Self::write), waiting at most `timeout`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let s = rangelock::SliceRwLock::new(vec![1, 2, 3, 4]);
    /// let _r = s.read(..);
    /// assert!(s.try_write_for(3.., Duration::from_millis(1)).is_none());
    /// ```
    #[track_caller]
    pub fn try_write_for(
        &self,
        range: impl RangeBounds<usize>,
        timeout: Duration,
    ) -> Option<SliceWriteGuard<'_, T>> {
        self.write_with(range, |lock, r| lock.try_write_for(r, timeout))
    }

    /// As [`read`](Self::read), waiting until `deadline` at the latest.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let s = rangelock::SliceRwLock::new(vec![1, 2, 3, 4]);
    /// let deadline = Instant::now() + Duration::from_millis(1);
    /// assert_eq!(*s.try_read_until(..1, deadline).unwrap(), [1]);
    /// ```
    #[track_caller]
    pub fn try_read_until(
        &self,
        range: impl RangeBounds<usize>,
        deadline: Instant,
    ) -> Option<SliceReadGuard<'_, T>> {
        self.read_with(range, |lock, r| lock.try_read_until(r, deadline))
    }

    /// As [`write`](Self::write), waiting until `deadline` at the latest.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let s = rangelock::SliceRwLock::new(vec![1, 2, 3, 4]);
    /// let _r = s.read(3..);
    /// let deadline = Instant::now() + Duration::from_millis(1);
    /// assert!(s.try_write_until(2..4, deadline).is_none());
    /// assert!(s.try_write_until(..3, deadline).is_some());
    /// ```
    #[track_caller]
    pub fn try_write_until(
        &self,
        range: impl RangeBounds<usize>,
        deadline: Instant,
    ) -> Option<SliceWriteGuard<'_, T>> {
        self.write_with(range, |lock, r| lock.try_write_until(r, deadline))
    }

    /// Locks `range` of the indices shared, asynchronously (see
    /// [`RangeRwLock::read_async`]).
    ///
    /// # Panics
    ///
    /// At the call, as slice indexing does: if the range is inverted or ends past `len()`.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let s = rangelock::SliceRwLock::new(vec![1, 2, 3]);
    /// assert_eq!(*s.read_async(1..).await, [2, 3]);
    /// # });
    /// ```
    #[track_caller]
    pub fn read_async(&self, range: impl RangeBounds<usize>) -> SliceReadFuture<'_, T> {
        let (start, end) = slice_bounds(&range, self.len());
        SliceReadFuture {
            acquire: Acquire::one(&self.lock, span(start, end), Mode::Read),
            cells: &self.data[start..end],
        }
    }

    /// Locks `range` of the indices exclusive, asynchronously (see
    /// [`RangeRwLock::write_async`]).
    ///
    /// # Panics
    ///
    /// At the call, as slice indexing does: if the range is inverted or ends past `len()`.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let s = rangelock::SliceRwLock::new(vec![0u8; 100]);
    /// s.write_async(0..10).await.fill(7);
    /// assert_eq!(s.read(9..11)[..], [7, 0]);
    /// # });
    /// ```
    #[track_caller]
    pub fn write_async(&self, range: impl RangeBounds<usize>) -> SliceWriteFuture<'_, T> {
        let (start, end) = slice_bounds(&range, self.len());
        SliceWriteFuture {
            acquire: Acquire::one(&self.lock, span(start, end), Mode::Write),
            cells: &self.data[start..end],
        }
    }

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
        let guard = self.lock.read(start as u64..end as u64);
        ArcSliceReadGuard(ArcSlice::adopt(self, guard.0, start, end))
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
        let guard = self.lock.write(start as u64..end as u64);
        ArcSliceWriteGuard(ArcSlice::adopt(self, guard.0, start, end))
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
        let guard = self.lock.try_read(start as u64..end as u64)?;
        Some(ArcSliceReadGuard(ArcSlice::adopt(
            self, guard.0, start, end,
        )))
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
        let guard = self.lock.try_write(start as u64..end as u64)?;
        Some(ArcSliceWriteGuard(ArcSlice::adopt(
            self, guard.0, start, end,
        )))
    }

    /// Locks `range` of the indices shared, asynchronously, for a guard that keeps the slice
    /// alive (see [`RangeRwLock::read_owned`]).
    ///
    /// # Panics
    ///
    /// At the call, as slice indexing does: if the range is inverted or ends past `len()`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let s = Arc::new(rangelock::SliceRwLock::new(vec![5u8; 10]));
    /// let g = tokio::spawn(s.read_owned(2..4)).await.unwrap();
    /// assert_eq!(*g, [5, 5]);
    /// # });
    /// ```
    #[track_caller]
    pub fn read_owned(self: &Arc<Self>, range: impl RangeBounds<usize>) -> OwnedSliceReadFuture<T> {
        let (start, end) = slice_bounds(&range, self.len());
        OwnedSliceReadFuture(OwnedRequest::new(self, start, end, Mode::Read))
    }

    /// Locks `range` of the indices exclusive, asynchronously, for a guard that keeps the
    /// slice alive (see [`RangeRwLock::write_owned`]).
    ///
    /// # Panics
    ///
    /// At the call, as slice indexing does: if the range is inverted or ends past `len()`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let s = Arc::new(rangelock::SliceRwLock::new(vec![0u8; 10]));
    /// let mut g = s.write_owned(..3).await;
    /// g[0] = 9;
    /// drop(g);
    /// assert_eq!(s.read(..1)[0], 9);
    /// # });
    /// ```
    #[track_caller]
    pub fn write_owned(
        self: &Arc<Self>,
        range: impl RangeBounds<usize>,
    ) -> OwnedSliceWriteFuture<T> {
        let (start, end) = slice_bounds(&range, self.len());
        OwnedSliceWriteFuture(OwnedRequest::new(self, start, end, Mode::Write))
    }

    #[track_caller]
    fn read_with<'a>(
        &'a self,
        range: impl RangeBounds<usize>,
        acquire: impl FnOnce(&'a RangeRwLock, core::ops::Range<u64>) -> Option<RangeReadGuard<'a>>,
    ) -> Option<SliceReadGuard<'a, T>> {
        let (start, end) = slice_bounds(&range, self.len());
        Some(SliceReadGuard {
            _guard: acquire(&self.lock, start as u64..end as u64)?,
            cells: &self.data[start..end],
        })
    }

    #[track_caller]
    fn write_with<'a>(
        &'a self,
        range: impl RangeBounds<usize>,
        acquire: impl FnOnce(&'a RangeRwLock, core::ops::Range<u64>) -> Option<RangeWriteGuard<'a>>,
    ) -> Option<SliceWriteGuard<'a, T>> {
        let (start, end) = slice_bounds(&range, self.len());
        Some(SliceWriteGuard {
            guard: acquire(&self.lock, start as u64..end as u64)?,
            cells: &self.data[start..end],
        })
    }
}

impl<T> From<Vec<T>> for SliceRwLock<T> {
    fn from(data: Vec<T>) -> Self {
        SliceRwLock::new(data)
    }
}

impl<T> From<Box<[T]>> for SliceRwLock<T> {
    fn from(data: Box<[T]>) -> Self {
        SliceRwLock::new(data)
    }
}

impl<T> fmt::Debug for SliceRwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SliceRwLock")
            .field("len", &self.len())
            .field("lock", &self.lock)
            .finish_non_exhaustive()
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
    _guard: RangeReadGuard<'a>,
    cells: &'a [UnsafeCell<T>],
}

/// Exclusive access to a sub-slice of a [`SliceRwLock`]; derefs to `&mut [T]`.
///
/// ```
/// let s = rangelock::SliceRwLock::new(vec![1, 2, 3]);
/// s.write(..).reverse();
/// assert_eq!(s.read(..)[..], [3, 2, 1]);
/// ```
#[must_use = "if unused the range is unlocked at once"]
pub struct SliceWriteGuard<'a, T> {
    guard: RangeWriteGuard<'a>,
    cells: &'a [UnsafeCell<T>],
}

// SAFETY: the guard gives `&[T]`, which may cross threads (or be shared) when `T: Sync`; the
// range guard inside is `Send + Sync`.
unsafe impl<T: Sync> Send for SliceReadGuard<'_, T> {}
// SAFETY: as for `Send`: `&SliceReadGuard` gives only `&[T]`.
unsafe impl<T: Sync> Sync for SliceReadGuard<'_, T> {}
// SAFETY: the guard is `&mut [T]` for its range, which may move to another thread when
// `T: Send`; no other guard covers those elements while it lives.
unsafe impl<T: Send> Send for SliceWriteGuard<'_, T> {}
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

/// The span of indices `start..end` in the lock's `u64` space.
fn span(start: usize, end: usize) -> Span {
    Span::new(&(start as u64..end as u64))
}

/// An `Arc<SliceRwLock<T>>` as the lock its guards and futures hold on to.
struct SliceArc<T>(Arc<SliceRwLock<T>>);

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
struct ArcSlice<T> {
    held: Held<SliceArc<T>>,
    start: usize,
    end: usize,
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
pub struct ArcSliceReadGuard<T>(ArcSlice<T>);

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
pub struct ArcSliceWriteGuard<T>(ArcSlice<T>);

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

/// The future of [`SliceRwLock::read_async`]. Dropping it before it resolves gives up the
/// request.
///
/// ```
/// let s = rangelock::SliceRwLock::new(vec![1, 2, 3]);
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// assert_eq!(*s.read_async(..1).await, [1]);
/// # });
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct SliceReadFuture<'a, T> {
    acquire: Acquire<&'a RangeRwLock>,
    cells: &'a [UnsafeCell<T>],
}

/// The future of [`SliceRwLock::write_async`]. Dropping it before it resolves gives up the
/// request.
///
/// ```
/// let s = rangelock::SliceRwLock::new(vec![1, 2, 3]);
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// s.write_async(..1).await[0] = 0;
/// # });
/// assert_eq!(s.read(..1)[0], 0);
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct SliceWriteFuture<'a, T> {
    acquire: Acquire<&'a RangeRwLock>,
    cells: &'a [UnsafeCell<T>],
}

// SAFETY: the futures resolve to guards that are `Send` under the same bounds; until then they
// hold a request and a shared borrow of the cells, which they never access.
unsafe impl<T: Sync> Send for SliceReadFuture<'_, T> {}
// SAFETY: as above; a write guard is `Send` when `T: Send`, and the cells are only borrowed.
unsafe impl<T: Send> Send for SliceWriteFuture<'_, T> {}

impl<'a, T> Future for SliceReadFuture<'a, T> {
    type Output = SliceReadGuard<'a, T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.into_ref().get_ref();
        this.acquire.poll_held(cx).map(|held| SliceReadGuard {
            _guard: RangeReadGuard(held),
            cells: this.cells,
        })
    }
}

impl<'a, T> Future for SliceWriteFuture<'a, T> {
    type Output = SliceWriteGuard<'a, T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.into_ref().get_ref();
        this.acquire.poll_held(cx).map(|held| SliceWriteGuard {
            guard: RangeWriteGuard(held),
            cells: this.cells,
        })
    }
}

/// The request of an owned slice future.
struct OwnedRequest<T> {
    acquire: Acquire<SliceArc<T>>,
    start: usize,
    end: usize,
}

impl<T> OwnedRequest<T> {
    fn new(slice: &Arc<SliceRwLock<T>>, start: usize, end: usize, mode: Mode) -> Self {
        OwnedRequest {
            acquire: Acquire::one(SliceArc(Arc::clone(slice)), span(start, end), mode),
            start,
            end,
        }
    }

    /// Polled through `&self` only, from a pinned future.
    fn poll_ref(&self, cx: &mut Context<'_>) -> Poll<ArcSlice<T>> {
        self.acquire.poll_held(cx).map(|held| ArcSlice {
            held,
            start: self.start,
            end: self.end,
        })
    }
}

/// The future of [`SliceRwLock::read_owned`]. Dropping it before it resolves gives up the
/// request.
///
/// ```
/// use std::sync::Arc;
/// let s = Arc::new(rangelock::SliceRwLock::new(vec![1, 2, 3]));
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let guard = tokio::spawn(s.read_owned(1..)).await.unwrap();
/// assert_eq!(*guard, [2, 3]);
/// # });
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct OwnedSliceReadFuture<T>(OwnedRequest<T>);

/// The future of [`SliceRwLock::write_owned`]. Dropping it before it resolves gives up the
/// request.
///
/// ```
/// use std::sync::Arc;
/// let s = Arc::new(rangelock::SliceRwLock::new(vec![1, 2, 3]));
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let mut guard = tokio::spawn(s.write_owned(..)).await.unwrap();
/// guard[2] = 0;
/// # drop(guard);
/// # });
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct OwnedSliceWriteFuture<T>(OwnedRequest<T>);

impl<T> Future for OwnedSliceReadFuture<T> {
    type Output = ArcSliceReadGuard<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.into_ref()
            .get_ref()
            .0
            .poll_ref(cx)
            .map(ArcSliceReadGuard)
    }
}

impl<T> Future for OwnedSliceWriteFuture<T> {
    type Output = ArcSliceWriteGuard<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.into_ref()
            .get_ref()
            .0
            .poll_ref(cx)
            .map(ArcSliceWriteGuard)
    }
}

/// `Debug` for the slice futures: they show nothing but their name.
macro_rules! opaque_debug {
    ($($ty:ident),*) => {$(
        impl<T> fmt::Debug for $ty<'_, T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty)).finish_non_exhaustive()
            }
        }
    )*};
}
opaque_debug!(SliceReadFuture, SliceWriteFuture);

impl<T> fmt::Debug for OwnedSliceReadFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedSliceReadFuture")
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for OwnedSliceWriteFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedSliceWriteFuture")
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    #[test]
    fn sub_slices_read_and_write_their_elements() {
        let s = SliceRwLock::new(vec![1, 2, 3, 4, 5]);
        {
            let mut w = s.write(1..3);
            assert_eq!(*w, [2, 3]);
            w[0] = 20;
            w[1] = 30;
        }
        assert_eq!(*s.read(..), [1, 20, 30, 4, 5]);
        assert_eq!(*s.read(4..), [5]);
        assert_eq!(*s.read(2..2), [] as [i32; 0]);
        assert_eq!(s.len(), 5);
        assert!(!s.is_empty());
    }

    #[test]
    fn writers_exclude_overlaps_only() {
        let s = SliceRwLock::new(vec![0u8; 10]);
        let w = s.write(0..5);
        assert!(s.try_read(4..6).is_none());
        assert!(s.try_write(5..10).is_some());
        assert!(s.try_read_for(0..1, Duration::from_millis(1)).is_none());
        let r = w.downgrade();
        assert_eq!(r.len(), 5);
        assert!(s.try_read(0..10).is_some());
        assert!(s.try_write_until(0..1, Instant::now()).is_none());
        drop(r);
        assert!(s.try_write_for(.., Duration::from_millis(1)).is_some());
        assert!(s.try_read_until(.., Instant::now()).is_some());
    }

    #[test]
    fn disjoint_writers_run_on_several_threads() {
        let s = SliceRwLock::new(vec![0usize; 64]);
        thread::scope(|scope| {
            for t in 0..4 {
                let s = &s;
                scope.spawn(move || {
                    for _ in 0..10 {
                        let mut part = s.write(t * 16..(t + 1) * 16);
                        part.iter_mut().for_each(|x| *x += t);
                    }
                });
            }
        });
        let v = s.into_inner();
        for (i, x) in v.iter().enumerate() {
            assert_eq!(*x, 10 * (i / 16));
        }
    }

    #[test]
    fn get_mut_and_into_inner_round_trip() {
        let mut s: SliceRwLock<String> = vec!["a".to_string(), "b".to_string()].into();
        s.get_mut()[1].push('!');
        assert_eq!(format!("{:?}", s.read(1..)), "[\"b!\"]");
        assert_eq!(&*s.into_inner(), ["a".to_string(), "b!".to_string()]);
        let b: Box<[u8]> = Box::new([1, 2]);
        assert_eq!(SliceRwLock::from(b).len(), 2);
    }

    #[test]
    #[should_panic(expected = "range end index 6 out of range for slice of length 5")]
    fn out_of_bounds_panics_like_slice_indexing() {
        let s = SliceRwLock::new(vec![0; 5]);
        let _ = s.read(0..6);
    }

    #[test]
    #[should_panic(expected = "slice index starts at 3 but ends at 2")]
    fn inverted_range_panics_like_slice_indexing() {
        let s = SliceRwLock::new(vec![0; 5]);
        #[allow(clippy::reversed_empty_ranges)]
        let _ = s.write(3..2);
    }

    #[test]
    fn guards_follow_the_reference_rules_for_send_and_sync() {
        fn send<T: Send>() {}
        fn sync<T: Sync>() {}
        send::<SliceWriteGuard<'static, std::cell::Cell<u8>>>(); // like &mut [Cell<u8>]
        sync::<SliceRwLock<u8>>();
        send::<SliceReadGuard<'static, u8>>();
        sync::<SliceWriteGuard<'static, u8>>();
    }

    #[test]
    fn new_and_into_inner_do_not_copy_the_elements() {
        let v = vec![1u64, 2, 3];
        let at = v.as_ptr();
        let s = SliceRwLock::new(v);
        assert_eq!(s.read(..).as_ptr(), at);
        s.write(1..2)[0] = 20;
        let back = s.into_inner();
        assert_eq!(back.as_ptr(), at);
        assert_eq!(*back, [1, 20, 3]);
    }

    #[test]
    fn arc_guards_deref_to_their_elements_on_any_thread() {
        let s = Arc::new(SliceRwLock::new(vec![0u32; 8]));
        let mut w = s.write_arc(2..4);
        assert!(s.try_read_arc(3..5).is_none());
        let r = s.try_read_arc(4..).expect("disjoint");
        thread::spawn(move || {
            w.copy_from_slice(&[7, 8]);
            let r2 = w.downgrade();
            assert_eq!(*r2, [7, 8]);
        })
        .join()
        .unwrap();
        assert_eq!(*r, [0; 4]);
        drop(r);
        assert_eq!(s.read(..)[..], [0, 0, 7, 8, 0, 0, 0, 0]);
        assert!(s.try_write_arc(..).is_some());
    }

    #[test]
    fn slice_futures_resolve_to_guards_over_their_elements() {
        use std::task::{Context, Poll, Wake, Waker};
        struct Noop;
        impl Wake for Noop {
            fn wake(self: Arc<Self>) {}
        }
        let waker = Waker::from(Arc::new(Noop));
        let mut cx = Context::from_waker(&waker);
        let s = Arc::new(SliceRwLock::new(vec![1u8, 2, 3, 4]));
        let held = s.write(0..2);
        let mut owned = core::pin::pin!(s.write_owned(1..3));
        assert!(owned.as_mut().poll(&mut cx).is_pending());
        let mut borrowed = core::pin::pin!(s.read_async(3..));
        let Poll::Ready(tail) = borrowed.as_mut().poll(&mut cx) else {
            panic!("disjoint from every request")
        };
        assert_eq!(*tail, [4]);
        drop(held);
        let Poll::Ready(mut mid) = owned.as_mut().poll(&mut cx) else {
            panic!("granted")
        };
        mid[0] = 9;
        drop(mid);
        let mut read = core::pin::pin!(s.read_owned(..));
        let Poll::Ready(all) = read.as_mut().poll(&mut cx) else {
            panic!("idle")
        };
        assert_eq!(*all, [1, 9, 3, 4]);
        drop(all);
        let mut w = core::pin::pin!(s.write_async(..1));
        let Poll::Ready(mut first) = w.as_mut().poll(&mut cx) else {
            panic!("idle")
        };
        first[0] = 0;
        drop(first);
        assert_eq!(s.read(..1)[0], 0);
    }
}
