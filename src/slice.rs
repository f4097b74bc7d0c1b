//! `SliceRwLock<T>`: a boxed slice whose sub-slices are locked by range.

use core::cell::UnsafeCell;
use core::fmt;
use core::ops::{Deref, DerefMut, RangeBounds};
use std::time::{Duration, Instant};

use crate::lock::{RangeReadGuard, RangeRwLock, RangeWriteGuard};
use crate::range::slice_bounds;

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
    /// Wraps `data` (a `Vec<T>` or `Box<[T]>`). Does not copy the elements.
    pub fn new(data: impl Into<Box<[T]>>) -> Self {
        let data: Vec<T> = data.into().into_vec();
        SliceRwLock {
            lock: RangeRwLock::new(),
            data: data.into_iter().map(UnsafeCell::new).collect(),
        }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the slice has no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The whole slice, mutably: `&mut self` proves no guard exists.
    pub fn get_mut(&mut self) -> &mut [T] {
        let cells: *mut [UnsafeCell<T>] = &mut *self.data;
        // SAFETY: `UnsafeCell<T>` has the layout of `T`, and `&mut self` excludes every guard.
        unsafe { &mut *(cells as *mut [T]) }
    }

    /// Unwraps the slice.
    pub fn into_inner(self) -> Box<[T]> {
        self.data
            .into_vec()
            .into_iter()
            .map(UnsafeCell::into_inner)
            .collect()
    }

    /// Locks `range` of the indices shared and returns its elements.
    ///
    /// # Panics
    ///
    /// As slice indexing does: if the range is inverted or ends past `len()`.
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
    #[track_caller]
    pub fn write(&self, range: impl RangeBounds<usize>) -> SliceWriteGuard<'_, T> {
        let (start, end) = slice_bounds(&range, self.len());
        SliceWriteGuard {
            guard: self.lock.write(start as u64..end as u64),
            cells: &self.data[start..end],
        }
    }

    /// As [`read`](Self::read), but fails instead of waiting (see [`RangeRwLock::try_read`]).
    #[track_caller]
    pub fn try_read(&self, range: impl RangeBounds<usize>) -> Option<SliceReadGuard<'_, T>> {
        self.read_with(range, |lock, r| lock.try_read(r))
    }

    /// As [`write`](Self::write), but fails instead of waiting (see
    /// [`RangeRwLock::try_write`]).
    #[track_caller]
    pub fn try_write(&self, range: impl RangeBounds<usize>) -> Option<SliceWriteGuard<'_, T>> {
        self.write_with(range, |lock, r| lock.try_write(r))
    }

    /// As [`read`](Self::read), waiting at most `timeout`.
    #[track_caller]
    pub fn try_read_for(
        &self,
        range: impl RangeBounds<usize>,
        timeout: Duration,
    ) -> Option<SliceReadGuard<'_, T>> {
        self.read_with(range, |lock, r| lock.try_read_for(r, timeout))
    }

    /// As [`write`](Self::write), waiting at most `timeout`.
    #[track_caller]
    pub fn try_write_for(
        &self,
        range: impl RangeBounds<usize>,
        timeout: Duration,
    ) -> Option<SliceWriteGuard<'_, T>> {
        self.write_with(range, |lock, r| lock.try_write_for(r, timeout))
    }

    /// As [`read`](Self::read), waiting until `deadline` at the latest.
    #[track_caller]
    pub fn try_read_until(
        &self,
        range: impl RangeBounds<usize>,
        deadline: Instant,
    ) -> Option<SliceReadGuard<'_, T>> {
        self.read_with(range, |lock, r| lock.try_read_until(r, deadline))
    }

    /// As [`write`](Self::write), waiting until `deadline` at the latest.
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

/// Shared access to a sub-slice of a [`SliceRwLock`]; derefs to `&[T]`.
#[must_use = "if unused the range is unlocked at once"]
pub struct SliceReadGuard<'a, T> {
    _guard: RangeReadGuard<'a>,
    cells: &'a [UnsafeCell<T>],
}

/// Exclusive access to a sub-slice of a [`SliceRwLock`]; derefs to `&mut [T]`.
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
        // SAFETY: `UnsafeCell<T>` has the layout of `T`. The read guard excludes every writer of
        // these elements, so only shared references to them exist while it lives.
        unsafe { &*(self.cells as *const [UnsafeCell<T>] as *const [T]) }
    }
}

impl<T> Deref for SliceWriteGuard<'_, T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        // SAFETY: `UnsafeCell<T>` has the layout of `T`. The write guard excludes every other
        // guard over these elements, and `&self` excludes `deref_mut` on this one.
        unsafe { &*(self.cells as *const [UnsafeCell<T>] as *const [T]) }
    }
}

impl<T> DerefMut for SliceWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: `UnsafeCell<T>` has the layout of `T`, and its contents may be mutated through
        // a shared reference to the cell. The write guard excludes every other guard over these
        // elements, and `&mut self` every other borrow through this one.
        unsafe {
            core::slice::from_raw_parts_mut(
                UnsafeCell::raw_get(self.cells.as_ptr()),
                self.cells.len(),
            )
        }
    }
}

impl<'a, T> SliceWriteGuard<'a, T> {
    /// Turns exclusive access into shared access without unlocking, letting in the readers
    /// queued behind this guard (see [`RangeWriteGuard::downgrade`]).
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
}
