//! Normalising `impl RangeBounds<u64>` into an inclusive `[start, last]`.
//!
//! The lock works on inclusive ranges so that the full range `..` is representable as
//! `[0, u64::MAX]` without overflow. Bounds are computed in `u128`, where `u64::MAX + 1` exists,
//! so no bound at the edge of the space can overflow.

use core::ops::{Bound, RangeBounds, RangeInclusive};

/// A normalised range: either empty or an inclusive `[start, last]` with `start <= last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Span {
    /// An empty range that begins at `at` (`at..at`): it conflicts with nothing.
    Empty { at: u64 },
    /// The non-empty inclusive range `[start, last]`.
    Range { start: u64, last: u64 },
}

impl Span {
    /// Normalises `range`.
    ///
    /// # Panics
    ///
    /// If the range starts after it ends (`10..5`), with a message naming both bounds, as slice
    /// indexing does.
    #[track_caller]
    #[inline]
    pub(crate) fn new(range: &impl RangeBounds<u64>) -> Span {
        let (start, end) = half_open(range);
        if start > end {
            inverted(start, end);
        }
        if start == end {
            // `start` may be u64::MAX + 1 only for (Excluded(MAX), ..), which is empty at MAX.
            Span::Empty {
                at: u64::try_from(start).unwrap_or(u64::MAX),
            }
        } else {
            // start < end <= 2^64, so both fit once `end` becomes inclusive.
            Span::Range {
                start: start as u64,
                last: (end - 1) as u64,
            }
        }
    }

    /// The span as a `RangeInclusive`; an empty span at `at` is `at..=at - 1` (or `1..=0` at 0),
    /// which `is_empty()`.
    #[allow(clippy::reversed_empty_ranges)] // empty on purpose
    pub(crate) fn to_inclusive(self) -> RangeInclusive<u64> {
        match self {
            Span::Range { start, last } => start..=last,
            Span::Empty { at: 0 } => 1..=0,
            Span::Empty { at } => at..=at - 1,
        }
    }
}

/// The half-open `[start, end)` of `range` in `u128`, so that `u64::MAX + 1` is representable.
fn half_open(range: &impl RangeBounds<u64>) -> (u128, u128) {
    let start = match range.start_bound() {
        Bound::Included(&s) => u128::from(s),
        Bound::Excluded(&s) => u128::from(s) + 1,
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => u128::from(e) + 1,
        Bound::Excluded(&e) => u128::from(e),
        Bound::Unbounded => u128::from(u64::MAX) + 1,
    };
    (start, end)
}

#[cold]
#[inline(never)]
#[track_caller]
fn inverted(start: u128, end: u128) -> ! {
    panic!("range starts at {start} but ends at {end}")
}

/// Normalises a `usize` range against a slice of length `len`, with slice indexing's panics.
/// Returns the half-open `[start, end)`.
#[track_caller]
pub(crate) fn slice_bounds(range: &impl RangeBounds<usize>, len: usize) -> (usize, usize) {
    // `match`, not `unwrap_or_else(|| panic!(..))`: a closure would report its own location,
    // not the caller's.
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => match s.checked_add(1) {
            Some(s) => s,
            None => panic!("attempted to lock a slice from after maximum usize"),
        },
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => match e.checked_add(1) {
            Some(e) => e,
            None => panic!("attempted to lock a slice up to maximum usize"),
        },
        Bound::Excluded(&e) => e,
        Bound::Unbounded => len,
    };
    assert!(
        start <= end,
        "slice index starts at {start} but ends at {end}"
    );
    assert!(
        end <= len,
        "range end index {end} out of range for slice of length {len}"
    );
    (start, end)
}

#[cfg(test)]
#[allow(clippy::reversed_empty_ranges)] // inverted and empty ranges are what these test
mod tests {
    use super::*;

    #[test]
    fn every_bound_kind_normalises_to_inclusive() {
        assert_eq!(
            Span::new(&(0..4096)),
            Span::Range {
                start: 0,
                last: 4095
            }
        );
        assert_eq!(
            Span::new(&(4096..=8191)),
            Span::Range {
                start: 4096,
                last: 8191
            }
        );
        assert_eq!(
            Span::new(&(5..)),
            Span::Range {
                start: 5,
                last: u64::MAX
            }
        );
        assert_eq!(Span::new(&(..5)), Span::Range { start: 0, last: 4 });
        assert_eq!(Span::new(&(..=5)), Span::Range { start: 0, last: 5 });
        assert_eq!(
            Span::new(&(..)),
            Span::Range {
                start: 0,
                last: u64::MAX
            }
        );
        let excluded = (Bound::Excluded(3), Bound::Excluded(6));
        assert_eq!(Span::new(&excluded), Span::Range { start: 4, last: 5 });
    }

    #[test]
    fn bounds_at_u64_max_do_not_overflow() {
        assert_eq!(
            Span::new(&(u64::MAX..=u64::MAX)),
            Span::Range {
                start: u64::MAX,
                last: u64::MAX
            }
        );
        assert_eq!(
            Span::new(&(u64::MAX..)),
            Span::Range {
                start: u64::MAX,
                last: u64::MAX
            }
        );
        assert_eq!(
            Span::new(&(u64::MAX..u64::MAX)),
            Span::Empty { at: u64::MAX }
        );
        let after_max = (Bound::Excluded(u64::MAX), Bound::Unbounded);
        assert_eq!(Span::new(&after_max), Span::Empty { at: u64::MAX });
    }

    #[test]
    fn empty_ranges_are_empty_and_keep_their_position() {
        assert_eq!(Span::new(&(7..7)), Span::Empty { at: 7 });
        assert_eq!(Span::new(&(..0)), Span::Empty { at: 0 });
        assert!(Span::new(&(7..7)).to_inclusive().is_empty());
        assert!(Span::new(&(0..0)).to_inclusive().is_empty());
        assert_eq!(Span::new(&(7..7)).to_inclusive(), 7..=6);
        assert_eq!(Span::new(&(2..=9)).to_inclusive(), 2..=9);
    }

    #[test]
    #[should_panic(expected = "range starts at 10 but ends at 5")]
    fn inverted_bounds_panic_naming_both() {
        let _ = Span::new(&(10..5));
    }

    #[test]
    #[should_panic(expected = "range starts at 6 but ends at 5")]
    fn inverted_excluded_bounds_panic() {
        let _ = Span::new(&(Bound::Excluded(5), Bound::Excluded(5)));
    }

    #[test]
    fn slice_bounds_match_slice_indexing() {
        assert_eq!(slice_bounds(&(1..3), 4), (1, 3));
        assert_eq!(slice_bounds(&(..), 4), (0, 4));
        assert_eq!(slice_bounds(&(..=3), 4), (0, 4));
        assert_eq!(slice_bounds(&(4..), 4), (4, 4));
    }

    #[test]
    #[should_panic(expected = "range end index 5 out of range for slice of length 4")]
    fn slice_bounds_past_the_end_panic() {
        let _ = slice_bounds(&(0..5), 4);
    }

    #[test]
    #[should_panic(expected = "slice index starts at 3 but ends at 2")]
    fn slice_bounds_inverted_panic() {
        let _ = slice_bounds(&(3..2), 4);
    }
}
