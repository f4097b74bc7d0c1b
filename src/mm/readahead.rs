//! Readahead: a sequential reader's fill reaches past its read, in a window that grows.
//!
//! The window is filled by the read's own fill, under the same shared lock (see `read.rs`).

use super::{AddressSpace, Backing, InvalidateLock, PAGE};

/// Readahead streams and the next one to replace.
pub(super) struct Streams {
    streams: [(u64, u64); READAHEAD_STREAMS],
    oldest: usize,
}

/// Sequential readers tracked at once.
const READAHEAD_STREAMS: usize = 8;

/// The first readahead window, in pages; it doubles on each sequential miss up to
/// [`READAHEAD_MAX`].
const READAHEAD_MIN: u64 = 4;

/// The largest readahead window, in pages (128 KiB), as Linux's default `read_ahead_kb`.
const READAHEAD_MAX: u64 = 32;

impl Streams {
    /// No stream yet.
    pub(super) fn new() -> Self {
        Streams {
            streams: [(u64::MAX, 0); READAHEAD_STREAMS],
            oldest: 0,
        }
    }
}

impl<L: InvalidateLock, B: Backing> AddressSpace<L, B> {
    /// Where the fill for a read of pages `first..=last` that missed at `first` should end:
    /// `last`, or further when the reader is sequential (it missed exactly where the previous
    /// fill ended). The window starts at [`READAHEAD_MIN`] pages and doubles on each
    /// sequential miss up to [`READAHEAD_MAX`], as Linux's `page_cache_ra_unbounded` grows it.
    pub(super) fn readahead_end(&self, first: u64, last: u64) -> u64 {
        let file_last = match self.len() {
            0 => 0,
            len => (len - 1) / PAGE,
        };
        let mut ra = self.readahead.lock();
        let (slot, window) = if let Some(i) = ra.streams.iter().position(|&(next, _)| next == first)
        {
            (i, (ra.streams[i].1 * 2).clamp(READAHEAD_MIN, READAHEAD_MAX))
        } else {
            let i = ra.oldest;
            ra.oldest = (i + 1) % READAHEAD_STREAMS;
            (i, 0)
        };
        let end = last.max((first + window).saturating_sub(1).min(file_last));
        ra.streams[slot] = (end + 1, window);
        end
    }
}
