//! `SliceRwLock<T>`: a boxed slice whose sub-slices are locked by range.
//!
//! The pieces: this file, the type and its blocking API; `guard.rs`, the guards that hand out
//! sub-slices (borrowed and `Arc`-owned, with the `Arc` methods that make the latter);
//! `future.rs`, the async methods and their futures. The locking itself is a
//! [`RangeRwLock`] over the indices.

mod future;
mod guard;
mod set;

use core::cell::UnsafeCell;
use core::fmt;
use core::ops::RangeBounds;
use core::panic::RefUnwindSafe;
use std::time::{Duration, Instant};

use crate::lock::{RangeReadGuard, RangeRwLock, RangeWriteGuard};
use crate::range::slice_bounds;

pub use future::{OwnedSliceReadFuture, OwnedSliceWriteFuture, SliceReadFuture, SliceWriteFuture};
pub use guard::{ArcSliceReadGuard, ArcSliceWriteGuard, SliceReadGuard, SliceWriteGuard};
pub use set::{
    ArcSliceSetGuard, OwnedSliceSetFuture, SliceMember, SliceMembers, SliceMembersMut,
    SliceSetFuture, SliceSetGuard,
};

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

/// A slice whose sub-slices are locked independently: [`read`](Self::read) gives `&[T]` for a
/// range, [`write`](Self::write) gives `&mut [T]`, and disjoint ranges never wait for each
/// other. The locking is a [`RangeRwLock`] over the indices, with the same fairness, and the
/// same families of methods: `try_*` and timed, async, and `Arc`-owned forms.
///
/// To hold several sub-slices at once (to copy from one to another, say), lock them as one
/// [`RangeSet`](crate::RangeSet) with [`lock_set`](Self::lock_set) and its forms: its guard
/// gives every member's elements together. Taking them one at a time can deadlock.
///
/// As with [`RangeRwLock`], there is no poisoning: a writer that panics releases its range as
/// it unwinds, and its elements keep whatever it had done to them. `SliceRwLock<T>` is
/// [`UnwindSafe`](std::panic::UnwindSafe) and [`RefUnwindSafe`] when `T` is.
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

// The lock itself stays consistent when a holder panics (see `RangeRwLock`'s impls); the
// elements keep whatever a writer that panicked had done to them, with no poisoning to say
// so, as with `T` itself after a panic in `&mut T` code. So the slice is unwind-safe as far as
// `T` is: `UnwindSafe` follows from the fields; `RefUnwindSafe` needs saying, because of the
// cells.
impl<T: RefUnwindSafe> RefUnwindSafe for SliceRwLock<T> {}

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
    ///
    /// The lock is [`RangeRwLock::new`]'s: bounded barging with the default hand-off.
    /// [`fifo`](Self::fifo) and [`barging`](Self::barging) choose otherwise.
    pub fn new(data: impl OwnedSlice<T>) -> Self {
        Self::with_lock(data, RangeRwLock::new())
    }

    /// As [`new`](Self::new), with a lock of strict FIFO order ([`RangeRwLock::fifo`]): a
    /// writer of a wide range is never passed by later requests that overlap it.
    ///
    /// ```
    /// let s = rangelock::SliceRwLock::fifo(vec![0u8; 4096]);
    /// s.write(..).fill(1);
    /// assert_eq!(s.read(4000..)[..], [1; 96]);
    /// ```
    pub fn fifo(data: impl OwnedSlice<T>) -> Self {
        Self::with_lock(data, RangeRwLock::fifo())
    }

    /// As [`new`](Self::new), with a lock whose requests may be passed until they have waited
    /// `handoff` ([`RangeRwLock::barging`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// let s = rangelock::SliceRwLock::barging(vec![0u8; 16], Duration::from_millis(4));
    /// s.write(8..).fill(7);
    /// assert_eq!(s.read(..)[7..9], [0, 7]);
    /// ```
    pub fn barging(data: impl OwnedSlice<T>, handoff: Duration) -> Self {
        Self::with_lock(data, RangeRwLock::barging(handoff))
    }

    fn with_lock(data: impl OwnedSlice<T>, lock: RangeRwLock) -> Self {
        let data = data.into_boxed();
        let len = data.len();
        let cells = Box::into_raw(data).cast::<UnsafeCell<T>>();
        // SAFETY: `UnsafeCell<T>` is `repr(transparent)` over `T`, so the allocation of `len`
        // `T`s is one of `len` cells, with the same layout; ownership moves from the box.
        let data = unsafe { Box::from_raw(core::ptr::slice_from_raw_parts_mut(cells, len)) };
        SliceRwLock { lock, data }
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
    /// A thread that holds a guard must not request another range: even a disjoint one can
    /// deadlock behind a request that arrived in between (see [`lock_set`](Self::lock_set)).
    /// To hold several sub-slices, lock them as one set.
    ///
    /// # Panics
    ///
    /// As slice indexing does: if the range is inverted or ends past `len()`.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = rangelock::SliceRwLock::new(vec![1, 2, 3, 4]);
    /// let mut head = s.write(..2);
    /// head[0] = 0;
    /// drop(head);
    /// assert_eq!(s.read(..)[..], [0, 2, 3, 4]);
    /// ```
    ///
    /// Two sub-slices at once, as one request:
    ///
    /// ```
    /// use rangelock::{RangeSet, SliceRwLock};
    /// let s = SliceRwLock::new(vec![1, 2, 3, 4]);
    /// let set = RangeSet::new().write(..2).write(2..);
    /// let mut both = s.lock_set(&set);
    /// let mut members = both.members_mut();
    /// let left = members.next().unwrap().into_mut().unwrap();
    /// let right = members.next().unwrap().into_mut().unwrap();
    /// left[0] = 0;
    /// right[1] = 0;
    /// drop(both);
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

#[cfg(test)]
mod tests;
