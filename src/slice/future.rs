//! Async requests: the methods that return futures, and the futures, which resolve to the
//! guards of `guard.rs`.

use core::cell::UnsafeCell;
use core::fmt;
use core::future::Future;
use core::ops::RangeBounds;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::sync::Arc;

use super::guard::{ArcSlice, SliceArc};
use super::{ArcSliceReadGuard, ArcSliceWriteGuard, SliceReadGuard, SliceRwLock, SliceWriteGuard};
use crate::lock::{Acquire, Mode, RangeReadGuard, RangeRwLock, RangeWriteGuard};
use crate::range::{slice_bounds, Span};

/// Async requests, borrowed and owned.
impl<T> SliceRwLock<T> {
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
}

/// The span of indices `start..end` in the lock's `u64` space.
fn span(start: usize, end: usize) -> Span {
    Span::new(&(start as u64..end as u64))
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
// SAFETY: as above; a write guard is `Send` when `T: Send + Sync`, and the cells are only
// borrowed.
unsafe impl<T: Send + Sync> Send for SliceWriteFuture<'_, T> {}

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
    #[cfg_attr(feature = "deadlock_detection", track_caller)]
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
