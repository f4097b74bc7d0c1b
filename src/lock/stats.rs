//! Contention statistics (feature `stats`): the counters, the hooks that the layers above call
//! to keep them, and what [`RangeRwLock::stats`] (in `mod.rs`) reports.
//!
//! The counts are kept where the lock already has exclusive access, so that the fast path pays
//! no atomic read-modify-write for them: a fast-path grant adds one to a counter that only the
//! owner of the slot table (`LOCKED`) changes, with a plain load and store; a grant through the
//! queue adds one to a count in the state behind the internal mutex. Only a request that waits
//! reads the clock (when it starts to wait and when it is granted) and records its wait, with
//! relaxed atomics, outside the mutex.
//!
//! Without the feature, [`Since`] is empty and every hook here is an empty inline function.

#[cfg(feature = "stats")]
use core::fmt;
#[cfg(feature = "stats")]
use core::ops::Range;
#[cfg(feature = "stats")]
use std::sync::atomic::AtomicU64 as StdAtomicU64;
#[cfg(feature = "stats")]
use std::time::Duration;
use std::time::Instant;

use super::RangeRwLock;
#[cfg(feature = "stats")]
use crate::sync::Ordering::Relaxed;

/// When a request began to wait, if it has: an `Instant` with the `stats` feature, nothing
/// without it.
#[derive(Clone, Copy, Default)]
pub(crate) struct Since(#[cfg(feature = "stats")] Option<Instant>);

impl Since {
    /// A request that has not waited yet.
    pub(crate) const NOT_YET: Since = Since(
        #[cfg(feature = "stats")]
        None,
    );

    /// The request waits from now on, unless it began before.
    #[inline(always)]
    pub(crate) fn start(&mut self) {
        #[cfg(feature = "stats")]
        if self.0.is_none() {
            self.0 = Some(Instant::now());
        }
    }

    /// The request waits from `now` on, unless it began before.
    #[inline(always)]
    pub(crate) fn start_at(&mut self, now: Instant) {
        #[cfg(feature = "stats")]
        if self.0.is_none() {
            self.0 = Some(now);
        }
        #[cfg(not(feature = "stats"))]
        let _ = now;
    }
}

/// Hooks: empty without the feature.
impl RangeRwLock {
    /// Under `LOCKED`: a request took a slot.
    #[inline(always)]
    pub(super) fn count_fast_grant(&self) {
        #[cfg(feature = "stats")]
        {
            // Only the owner of the slot table writes it: no read-modify-write needed.
            let n = self.fast_grants.load(Relaxed);
            self.fast_grants.store(n + 1, Relaxed);
        }
    }

    /// A request that waited `since` (if it did) is granted (`granted`) or stops waiting
    /// without its ranges.
    #[inline(always)]
    pub(super) fn count_wait(&self, since: Since, granted: bool) {
        #[cfg(feature = "stats")]
        if let Some(since) = since.0 {
            self.stats.waited(since.elapsed(), granted);
        }
        #[cfg(not(feature = "stats"))]
        let _ = (since, granted);
    }

    /// Barging locks: a request's hand-off window closed, and it queues.
    #[inline(always)]
    pub(super) fn count_handoff(&self) {
        #[cfg(feature = "stats")]
        self.stats.queued_at_handoff.fetch_add(1, Relaxed);
    }
}

/// The counters of a lock (feature `stats`) but its fast-path grants (`fast_grants`, a loom
/// atomic beside the lock's word, so that the models check that only the owner of the slot
/// table changes it).
#[cfg(feature = "stats")]
pub(crate) struct Stats {
    contended: StdAtomicU64,
    gave_up: StdAtomicU64,
    wait_total: StdAtomicU64,
    wait_max: StdAtomicU64,
    queued_at_handoff: StdAtomicU64,
    histogram: [StdAtomicU64; BUCKETS],
}

#[cfg(feature = "stats")]
impl Stats {
    // `const` for the lock's `const fn new` (the loom build calls it from a plain `new`).
    pub(crate) const fn new() -> Self {
        Stats {
            contended: StdAtomicU64::new(0),
            gave_up: StdAtomicU64::new(0),
            wait_total: StdAtomicU64::new(0),
            wait_max: StdAtomicU64::new(0),
            queued_at_handoff: StdAtomicU64::new(0),
            histogram: [const { StdAtomicU64::new(0) }; BUCKETS],
        }
    }

    /// The statistics, with `acquisitions` and `passed` (which the lock counts elsewhere).
    pub(crate) fn report(&self, acquisitions: u64, passed: u64) -> LockStats {
        let mut histogram = WaitHistogram {
            counts: [0; BUCKETS],
        };
        for (count, counter) in histogram.counts.iter_mut().zip(&self.histogram) {
            *count = counter.load(Relaxed);
        }
        LockStats {
            acquisitions,
            contended: self.contended.load(Relaxed),
            gave_up: self.gave_up.load(Relaxed),
            wait_total: Duration::from_nanos(self.wait_total.load(Relaxed)),
            wait_max: Duration::from_nanos(self.wait_max.load(Relaxed)),
            passed,
            queued_at_handoff: self.queued_at_handoff.load(Relaxed),
            wait_histogram: histogram,
        }
    }

    /// Sets every counter here back to zero.
    pub(crate) fn reset(&self) {
        let counters = [
            &self.contended,
            &self.gave_up,
            &self.wait_total,
            &self.wait_max,
            &self.queued_at_handoff,
        ];
        for counter in counters.into_iter().chain(&self.histogram) {
            counter.store(0, Relaxed);
        }
    }

    #[cold]
    fn waited(&self, wait: Duration, granted: bool) {
        if !granted {
            self.gave_up.fetch_add(1, Relaxed);
            return;
        }
        let nanos = u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX);
        self.contended.fetch_add(1, Relaxed);
        self.wait_total.fetch_add(nanos, Relaxed);
        self.wait_max.fetch_max(nanos, Relaxed);
        self.histogram[bucket(nanos)].fetch_add(1, Relaxed);
    }
}

/// The statistics of a [`RangeRwLock`] (feature `stats`), from
/// [`RangeRwLock::stats`]. Its `Display` is a summary of a few lines.
///
/// ```
/// use std::time::Duration;
/// let lock = rangelock::RangeRwLock::new();
/// drop(lock.write(0..10));
/// let stats = lock.stats();
/// assert_eq!((stats.acquisitions, stats.contended), (1, 0));
/// assert_eq!(stats.wait_max, Duration::ZERO);
/// assert_eq!(stats.wait_histogram.count(), 0);
/// ```
#[cfg(feature = "stats")]
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockStats {
    /// Requests granted (for a non-empty range or set).
    pub acquisitions: u64,
    /// Granted requests that had to wait first.
    pub contended: u64,
    /// Requests that waited and then gave up: timed out, or their future was dropped.
    pub gave_up: u64,
    /// The waits of the `contended` requests, added up.
    pub wait_total: Duration,
    /// The longest of them.
    pub wait_max: Duration,
    /// Barging locks: requests granted while a conflicting request waited outside the queue,
    /// within its hand-off window (they passed it).
    pub passed: u64,
    /// Barging locks: requests whose hand-off window closed while they waited, so that they
    /// queued in FIFO order.
    pub queued_at_handoff: u64,
    /// The waits of the `contended` requests, by length.
    pub wait_histogram: WaitHistogram,
}

#[cfg(feature = "stats")]
impl fmt::Display for LockStats {
    /// `acquisitions 120, contended 30 (25.0%), gave up 0`, then the waits (total, longest,
    /// median and 99th percentile, each a bucket's upper bound), then the barging counts.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let share = if self.acquisitions == 0 {
            0.0
        } else {
            100.0 * self.contended as f64 / self.acquisitions as f64
        };
        write!(
            f,
            "acquisitions {}, contended {} ({share:.1}%), gave up {}",
            self.acquisitions, self.contended, self.gave_up
        )?;
        let h = &self.wait_histogram;
        if let (Some(median), Some(p99)) = (h.quantile(0.5), h.quantile(0.99)) {
            write!(
                f,
                "\nwaits: total {:?}, longest {:?}, median <= {median:?}, 99th percentile <= {p99:?}",
                self.wait_total, self.wait_max
            )?;
        }
        if self.passed != 0 || self.queued_at_handoff != 0 {
            write!(
                f,
                "\nbarging: {} passed a waiting request, {} queued at their hand-off",
                self.passed, self.queued_at_handoff
            )?;
        }
        Ok(())
    }
}

/// Buckets per power of two.
#[cfg(feature = "stats")]
const SUB_BITS: u32 = 2;
/// Waits shorter than 2^`MIN_EXP` ns (about 1 µs) share the first bucket.
#[cfg(feature = "stats")]
const MIN_EXP: u32 = 10;
/// Waits of 2^`MAX_EXP` ns (about 137 s) or more share the last bucket.
#[cfg(feature = "stats")]
const MAX_EXP: u32 = 37;
#[cfg(feature = "stats")]
const BUCKETS: usize = 2 + ((MAX_EXP - MIN_EXP) << SUB_BITS) as usize;

/// The bucket of a wait of `nanos` nanoseconds.
#[cfg(feature = "stats")]
fn bucket(nanos: u64) -> usize {
    if nanos < 1 << MIN_EXP {
        return 0;
    }
    let exp = nanos.ilog2();
    if exp >= MAX_EXP {
        return BUCKETS - 1;
    }
    let sub = (nanos >> (exp - SUB_BITS)) & ((1 << SUB_BITS) - 1);
    1 + (u64::from((exp - MIN_EXP) << SUB_BITS) + sub) as usize
}

/// The waits that bucket `i` holds, in nanoseconds: `[low, high)`.
#[cfg(feature = "stats")]
fn bounds(i: usize) -> (u64, u64) {
    match i {
        0 => (0, 1 << MIN_EXP),
        _ if i == BUCKETS - 1 => (1 << MAX_EXP, u64::MAX),
        _ => {
            let exp = MIN_EXP + ((i - 1) >> SUB_BITS) as u32;
            let sub = ((i - 1) & ((1 << SUB_BITS) - 1)) as u64;
            let width = 1 << (exp - SUB_BITS);
            let low = (1 << exp) + sub * width;
            (low, low + width)
        }
    }
}

/// Wait times by length (feature `stats`), in log-linear buckets: four to each power of two
/// from about 1 µs to about 137 s (so a bucket is at most a quarter as wide as the waits it
/// holds), one for shorter waits and one for longer.
///
/// ```
/// use std::time::Duration;
/// use rangelock::WaitHistogram;
/// let bucket = WaitHistogram::bucket_of(Duration::from_millis(20));
/// assert!(bucket.contains(&Duration::from_millis(20)));
/// assert!(bucket.end - bucket.start <= Duration::from_millis(5));
/// ```
#[cfg(feature = "stats")]
#[derive(Clone, PartialEq, Eq)]
pub struct WaitHistogram {
    counts: [u64; BUCKETS],
}

#[cfg(feature = "stats")]
impl WaitHistogram {
    /// The buckets that hold a wait, shortest first: each bucket's range of waits and how many
    /// fell in it.
    ///
    /// ```
    /// let lock = rangelock::RangeRwLock::new();
    /// for (waits, count) in lock.stats().wait_histogram.buckets() {
    ///     println!("{:?}..{:?}: {count}", waits.start, waits.end);
    /// }
    /// ```
    pub fn buckets(&self) -> impl Iterator<Item = (Range<Duration>, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|&(_, &count)| count != 0)
            .map(|(i, &count)| {
                let (low, high) = bounds(i);
                (Duration::from_nanos(low)..Duration::from_nanos(high), count)
            })
    }

    /// The number of waits.
    ///
    /// ```
    /// let lock = rangelock::RangeRwLock::new();
    /// assert_eq!(lock.stats().wait_histogram.count(), lock.stats().contended);
    /// ```
    #[must_use]
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// An upper bound of the `q`-quantile of the waits (`q` in `0.0..=1.0`; 0.5 is the
    /// median): the end of the bucket that holds it. `None` without waits.
    ///
    /// ```
    /// let lock = rangelock::RangeRwLock::new();
    /// assert_eq!(lock.stats().wait_histogram.quantile(0.99), None);
    /// ```
    ///
    /// # Panics
    ///
    /// If `q` is not in `0.0..=1.0`.
    #[must_use]
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        assert!((0.0..=1.0).contains(&q), "quantile {q} outside 0.0..=1.0");
        let total = self.count();
        if total == 0 {
            return None;
        }
        // The rank of the quantile, 1-based: at least 1.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let rank = ((q * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(Duration::from_nanos(bounds(i).1));
            }
        }
        unreachable!("the rank is at most the total")
    }

    /// The bucket that a wait of `wait` falls in: the histogram's resolution at that length.
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = rangelock::WaitHistogram::bucket_of(Duration::from_micros(100));
    /// assert!(b.start <= Duration::from_micros(100) && Duration::from_micros(100) < b.end);
    /// ```
    #[must_use]
    pub fn bucket_of(wait: Duration) -> Range<Duration> {
        let nanos = u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX);
        let (low, high) = bounds(bucket(nanos));
        Duration::from_nanos(low)..Duration::from_nanos(high)
    }
}

#[cfg(feature = "stats")]
impl fmt::Debug for WaitHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.buckets()).finish()
    }
}

#[cfg(all(test, feature = "stats"))]
mod tests {
    use super::*;

    #[test]
    fn every_wait_falls_in_the_bucket_whose_bounds_hold_it() {
        let mut previous_end = 0;
        for i in 0..BUCKETS {
            let (low, high) = bounds(i);
            assert_eq!(low, previous_end, "buckets tile the line");
            assert!(low < high);
            assert_eq!(bucket(low), i);
            assert_eq!(bucket(high - 1), i);
            previous_end = high;
        }
        assert_eq!(previous_end, u64::MAX);
        for nanos in [0, 1, 1023, 1024, 1279, 1280, 3_000_000, 1 << 36, u64::MAX] {
            let (low, high) = bounds(bucket(nanos));
            assert!(low <= nanos && (nanos < high || nanos == u64::MAX));
        }
    }

    #[test]
    fn a_bucket_is_at_most_a_quarter_as_wide_as_its_waits() {
        for i in 1..BUCKETS - 1 {
            let (low, high) = bounds(i);
            assert!((high - low) * 4 <= low, "bucket {i}: {low}..{high}");
        }
    }

    #[test]
    fn quantiles_are_bucket_ends() {
        let mut h = WaitHistogram {
            counts: [0; BUCKETS],
        };
        h.counts[bucket(2_000)] = 9;
        h.counts[bucket(5_000_000)] = 1;
        assert_eq!(h.count(), 10);
        assert_eq!(
            h.quantile(0.5).unwrap().as_nanos(),
            u128::from(bounds(bucket(2_000)).1)
        );
        assert_eq!(
            h.quantile(0.9).unwrap().as_nanos(),
            u128::from(bounds(bucket(2_000)).1)
        );
        assert_eq!(
            h.quantile(1.0).unwrap().as_nanos(),
            u128::from(bounds(bucket(5_000_000)).1)
        );
        assert_eq!(
            h.quantile(0.0).unwrap().as_nanos(),
            u128::from(bounds(bucket(2_000)).1)
        );
    }
}
