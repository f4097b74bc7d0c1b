//! `RangeRwLock`: acquisition, FIFO accounting, parking and guards.
//!
//! The rule, after Jan Kara's and Davidlohr Bueso's Linux range locks: a request counts the
//! conflicting requests already queued (readers ignore readers), queues itself, and waits until
//! that count is zero. When a request leaves (released, or given up after a timeout), it
//! decrements the count of every later conflicting request that overlaps it, and wakes those
//! that reach zero.
//!
//! A request that finds the lock idle (no other request at all) takes it without the tree:
//! it claims the `fast` word, publishes its range beside it, and releases with one
//! compare-exchange. The first request to arrive while it holds the lock moves it into the
//! tree, as a granted node that arrived first, and from then on everything goes through the
//! tree until it is empty again.

mod fast;
mod guard;
mod queue;

use core::fmt;
use core::ops::RangeBounds;
use std::time::{Duration, Instant};

use crate::range::Span;
use crate::sync::{AtomicU64, Mutex, Parker, Waiter};
use crate::tree::NodeId;

use fast::EMPTY;
use guard::{Hold, Node, Pending};
pub use guard::{RangeReadGuard, RangeWriteGuard};
pub(crate) use queue::Mode;
use queue::{Barging, State};

/// Hand-off deadlines beyond an hour are an hour, so that adding one to an `Instant` cannot
/// overflow.
const fn cap_handoff(handoff: Duration) -> Duration {
    const HOUR: Duration = Duration::from_secs(3600);
    if handoff.as_secs() >= HOUR.as_secs() {
        HOUR
    } else {
        handoff
    }
}

/// How long a request may wait.
#[derive(Clone, Copy)]
enum Wait {
    /// Not at all: fail if any conflicting request is ahead.
    Never,
    Forever,
    Until(Instant),
}

impl Wait {
    fn for_duration(timeout: Duration) -> Wait {
        // A deadline too far to represent is no deadline.
        Instant::now()
            .checked_add(timeout)
            .map_or(Wait::Forever, Wait::Until)
    }
}

/// A reader/writer lock over ranges of the `u64` space.
///
/// Each request locks a range `[start, end)` (any [`RangeBounds<u64>`]: `a..b`, `a..=b`, `a..`,
/// `..b`, `..`), shared with [`read`](Self::read) or exclusive with [`write`](Self::write).
/// Requests whose ranges do not overlap never wait for each other; overlapping requests
/// conflict unless both read. `lock.write(..)` locks the whole space, as an `RwLock` would.
///
/// # Fairness
///
/// Conflicting requests are granted in the order they arrived (FIFO), and a request never
/// overtakes an earlier conflicting one that is still waiting: a reader that arrives while a
/// writer waits for an overlapping range queues behind that writer, even if the range is held
/// only by readers. No request starves. Requests on disjoint ranges are independent: neither
/// delays the other, whatever the queue on either.
///
/// The `try_*` methods fail at once if any conflicting request, granted *or waiting*, is ahead;
/// they never jump the queue. A timed request that gives up leaves the queue and unblocks every
/// later request that was waiting only for it.
///
/// That is the lock [`new`](Self::new) makes. [`barging`](Self::barging) makes one that trades
/// some of that order for throughput on hot ranges: a request may pass requests that wait (never
/// one that holds the lock), but only those that have waited less than its hand-off deadline.
///
/// # Progress and cost
///
/// Every request, granted or waiting, is a node of an interval tree behind a small internal
/// mutex that is held only to count or un-count conflicts (O(log n + k) for n queued requests
/// and k overlapping ones), never while a thread sleeps. A waiting thread first watches for its
/// grant briefly (spinning, then yielding), since a hand-off often comes within microseconds,
/// then parks through `parking_lot_core`; it is woken after the internal mutex is dropped.
/// Either way it is granted in FIFO order: spinning changes who is awake, not who is next.
/// Acquiring and releasing
/// do not allocate once the tree's slab has grown to the largest number of requests ever
/// queued at once.
///
/// # Differences from `RwLock`
///
/// - It protects no data: it orders access to ranges of something else (a file, a device, a
///   buffer). [`SliceRwLock`](crate::SliceRwLock) pairs it with a slice.
/// - Guards are for a range, and the same thread may hold several, as long as it does not
///   request a range that conflicts with one it already holds: that deadlocks, as with any
///   non-reentrant lock.
/// - There is no poisoning: a thread that panics while holding a guard releases its range when
///   the guard is dropped during unwinding, and other threads go on.
/// - Strict FIFO with no lock stealing: it favours bounded waits over throughput on a single hot
///   range, where a barging lock would hand the lock to a running thread.
/// - [`mem::forget`](core::mem::forget) on a guard leaves its range locked for the lock's life;
///   it is never undefined behaviour.
///
/// # Examples
///
/// ```
/// use rangelock::RangeRwLock;
///
/// let lock = RangeRwLock::new();
/// let header = lock.write(0..512);
/// // Disjoint ranges are independent, even exclusive ones.
/// let body = lock.write(512..4096);
/// // Overlapping reads share.
/// drop(body);
/// let r1 = lock.read(1024..2048);
/// let r2 = lock.read(1500..=3000);
/// assert!(lock.try_write(2000..2001).is_none());
/// drop((header, r1, r2));
/// assert!(!lock.is_locked(..));
/// ```
pub struct RangeRwLock {
    /// The fast-path word (`EMPTY`, `CLAIMED`, `HELD_*`, `TREE`, `MOVED` and a generation).
    fast: AtomicU64,
    /// The range of the request that holds the lock alone, valid while `fast` is `HELD_*`.
    fast_start: AtomicU64,
    fast_last: AtomicU64,
    state: Mutex<State>,
    parker: Parker,
    /// `Some(deadline)`: barging is allowed, up to that hand-off deadline.
    handoff: Option<Duration>,
}

impl RangeRwLock {
    /// Creates an unlocked range lock. Allocates nothing until the first request.
    ///
    /// ```
    /// static LOCK: rangelock::RangeRwLock = rangelock::RangeRwLock::new();
    /// let _g = LOCK.write(0..10);
    /// ```
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        RangeRwLock {
            fast: AtomicU64::new(EMPTY),
            fast_start: AtomicU64::new(0),
            fast_last: AtomicU64::new(0),
            state: Mutex::new(State::new()),
            parker: Parker::new(),
            handoff: None,
        }
    }

    /// Creates an unlocked range lock that lets a running thread take a range ahead of
    /// requests that wait for it, as long as none of them has waited `handoff` or longer.
    ///
    /// This trades the strict FIFO order of [`new`](Self::new) for throughput on a hot range:
    /// a thread that releases and re-requests a range need not wait for the next waiter to be
    /// scheduled. No request ever passes one that holds the lock; a request that has waited
    /// `handoff` is not passed any more, so its wait stays bounded by about `handoff` plus the
    /// requests ahead of it. `handoff` of zero is strict FIFO; more than an hour counts as an
    /// hour.
    ///
    /// ```
    /// use std::time::Duration;
    /// let lock = rangelock::RangeRwLock::barging(Duration::from_millis(1));
    /// let _w = lock.write(0..4096);
    /// ```
    #[cfg(not(loom))]
    pub const fn barging(handoff: Duration) -> Self {
        let mut lock = Self::new();
        lock.handoff = Some(cap_handoff(handoff));
        lock
    }

    /// As the non-loom `barging` (loom build: not `const`).
    #[cfg(loom)]
    pub fn barging(handoff: Duration) -> Self {
        let mut lock = Self::new();
        lock.handoff = Some(cap_handoff(handoff));
        lock
    }

    /// Creates an unlocked range lock (loom build: not `const`).
    #[cfg(loom)]
    pub fn new() -> Self {
        RangeRwLock {
            fast: AtomicU64::new(EMPTY),
            fast_start: AtomicU64::new(0),
            fast_last: AtomicU64::new(0),
            state: Mutex::new(State::new()),
            parker: Parker::new(),
            handoff: None,
        }
    }

    /// Locks `range` shared, blocking until every earlier conflicting (overlapping write)
    /// request has left.
    ///
    /// # Panics
    ///
    /// If the range starts after it ends (`10..5`).
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = rangelock::RangeRwLock::new();
    /// let a = lock.read(0..4096);
    /// let b = lock.read(..); // readers share
    /// assert_eq!(a.range(), 0..=4095);
    /// assert_eq!(b.range(), 0..=u64::MAX);
    /// ```
    #[track_caller]
    pub fn read(&self, range: impl RangeBounds<u64>) -> RangeReadGuard<'_> {
        let hold = self.acquire(&range, Mode::Read, Wait::Forever);
        RangeReadGuard {
            lock: self,
            hold: hold.expect("a request without deadline is granted"),
        }
    }

    /// Locks `range` exclusive, blocking until every earlier overlapping request has left.
    ///
    /// # Panics
    ///
    /// If the range starts after it ends (`10..5`).
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = rangelock::RangeRwLock::new();
    /// let w = lock.write(4096..=8191);
    /// assert!(lock.try_read(8000..9000).is_none());
    /// assert!(lock.try_read(8192..9000).is_some());
    /// drop(w);
    /// ```
    #[track_caller]
    pub fn write(&self, range: impl RangeBounds<u64>) -> RangeWriteGuard<'_> {
        let hold = self.acquire(&range, Mode::Write, Wait::Forever);
        RangeWriteGuard {
            lock: self,
            hold: hold.expect("a request without deadline is granted"),
        }
    }

    /// Locks `range` shared if no conflicting request, granted or waiting, is ahead; never
    /// blocks.
    ///
    /// ```
    /// let lock = rangelock::RangeRwLock::new();
    /// let w = lock.write(0..10);
    /// assert!(lock.try_read(5..15).is_none());
    /// assert!(lock.try_read(10..15).is_some());
    /// # drop(w);
    /// ```
    #[track_caller]
    pub fn try_read(&self, range: impl RangeBounds<u64>) -> Option<RangeReadGuard<'_>> {
        let hold = self.acquire(&range, Mode::Read, Wait::Never)?;
        Some(RangeReadGuard { lock: self, hold })
    }

    /// Locks `range` exclusive if no overlapping request, granted or waiting, is ahead; never
    /// blocks.
    ///
    /// ```
    /// let lock = rangelock::RangeRwLock::new();
    /// let r = lock.read(0..10);
    /// assert!(lock.try_write(9..20).is_none());
    /// assert!(lock.try_write(10..20).is_some());
    /// # drop(r);
    /// ```
    #[track_caller]
    pub fn try_write(&self, range: impl RangeBounds<u64>) -> Option<RangeWriteGuard<'_>> {
        let hold = self.acquire(&range, Mode::Write, Wait::Never)?;
        Some(RangeWriteGuard { lock: self, hold })
    }

    /// Locks `range` shared, waiting at most `timeout`. On timeout the request leaves the queue
    /// and later requests it was holding up go on.
    ///
    /// ```
    /// use std::time::Duration;
    /// let lock = rangelock::RangeRwLock::new();
    /// let w = lock.write(0..10);
    /// assert!(lock.try_read_for(0..1, Duration::from_millis(10)).is_none());
    /// drop(w);
    /// assert!(lock.try_read_for(0..1, Duration::from_millis(10)).is_some());
    /// ```
    #[track_caller]
    pub fn try_read_for(
        &self,
        range: impl RangeBounds<u64>,
        timeout: Duration,
    ) -> Option<RangeReadGuard<'_>> {
        let hold = self.acquire(&range, Mode::Read, Wait::for_duration(timeout))?;
        Some(RangeReadGuard { lock: self, hold })
    }

    /// Locks `range` exclusive, waiting at most `timeout`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let lock = rangelock::RangeRwLock::new();
    /// let r = lock.read(..);
    /// assert!(lock.try_write_for(100..200, Duration::from_millis(10)).is_none());
    /// # drop(r);
    /// ```
    #[track_caller]
    pub fn try_write_for(
        &self,
        range: impl RangeBounds<u64>,
        timeout: Duration,
    ) -> Option<RangeWriteGuard<'_>> {
        let hold = self.acquire(&range, Mode::Write, Wait::for_duration(timeout))?;
        Some(RangeWriteGuard { lock: self, hold })
    }

    /// Locks `range` shared, waiting until `deadline` at the latest.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let lock = rangelock::RangeRwLock::new();
    /// let deadline = Instant::now() + Duration::from_millis(10);
    /// assert!(lock.try_read_until(0..1, deadline).is_some());
    /// ```
    #[track_caller]
    pub fn try_read_until(
        &self,
        range: impl RangeBounds<u64>,
        deadline: Instant,
    ) -> Option<RangeReadGuard<'_>> {
        let hold = self.acquire(&range, Mode::Read, Wait::Until(deadline))?;
        Some(RangeReadGuard { lock: self, hold })
    }

    /// Locks `range` exclusive, waiting until `deadline` at the latest.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let lock = rangelock::RangeRwLock::new();
    /// let _r = lock.read(0..1);
    /// let deadline = Instant::now() + Duration::from_millis(10);
    /// assert!(lock.try_write_until(0..1, deadline).is_none());
    /// ```
    #[track_caller]
    pub fn try_write_until(
        &self,
        range: impl RangeBounds<u64>,
        deadline: Instant,
    ) -> Option<RangeWriteGuard<'_>> {
        let hold = self.acquire(&range, Mode::Write, Wait::Until(deadline))?;
        Some(RangeWriteGuard { lock: self, hold })
    }

    /// Whether any granted request (read or write) overlaps `range`. Waiting requests do not
    /// count. The answer may be stale as soon as it is returned; it is for assertions and
    /// diagnostics, not for deciding whether to lock.
    ///
    /// ```
    /// let lock = rangelock::RangeRwLock::new();
    /// let _g = lock.read(10..20);
    /// assert!(lock.is_locked(..));
    /// assert!(lock.is_locked(19..=19));
    /// assert!(!lock.is_locked(20..30));
    /// ```
    #[track_caller]
    pub fn is_locked(&self, range: impl RangeBounds<u64>) -> bool {
        match Span::new(&range) {
            Span::Empty { .. } => false,
            Span::Range { start, last } => self.lock_tree().is_locked(start, last),
        }
    }

    /// The number of requests waiting (queued and not granted). A diagnostic for tests and
    /// models, stale as soon as it returns; not part of the stable API.
    #[doc(hidden)]
    pub fn waiting(&self) -> usize {
        self.lock_tree().waiting
    }

    /// The parking key: the address of the internal state, unique among live locks.
    fn key(&self) -> usize {
        &self.state as *const Mutex<State> as usize
    }
}

impl RangeRwLock {
    #[inline]
    fn acquire(&self, range: &impl RangeBounds<u64>, mode: Mode, wait: Wait) -> Option<Hold> {
        let span = Span::new(range);
        let Span::Range { start, last } = span else {
            return Some(Hold::new(span, Node::Empty));
        };
        if self.try_alone(start, last, mode) {
            return Some(Hold::new(span, Node::Alone));
        }
        self.acquire_queued(span, start, last, mode, wait)
    }

    /// The rest of `acquire`, out of line: the request goes through the tree.
    #[inline(never)]
    fn acquire_queued(
        &self,
        span: Span,
        start: u64,
        last: u64,
        mode: Mode,
        wait: Wait,
    ) -> Option<Hold> {
        let barging = self.handoff.map(|handoff| Barging {
            now: Instant::now(),
            handoff,
        });
        let deadline = match wait {
            Wait::Never => {
                let queued = self
                    .lock_tree()
                    .enqueue(start, last, mode, None, true, barging)?;
                return Some(Hold::new(span, Node::Tree(queued.id)));
            }
            Wait::Forever => None,
            Wait::Until(deadline) => Some(deadline),
        };
        let waiter = Waiter::new();
        let queued = self
            .lock_tree()
            .enqueue(start, last, mode, Some(&waiter), false, barging)
            .expect("a waiting request is always queued");
        let hold = Hold::new(span, Node::Tree(queued.id));
        if queued.granted {
            return Some(hold);
        }
        // From here until the request is claimed or removed, the tree points at `waiter`.
        // `Pending` removes the request if we unwind, so that pointer never outlives this frame.
        let pending = Pending {
            lock: self,
            id: queued.id,
        };
        loop {
            let woken = self.parker.wait(self.key(), &waiter, deadline);
            if woken && barging.is_none() {
                // Strict FIFO: the flag is set only once the request is ours.
                core::mem::forget(pending);
                return Some(hold);
            }
            // Barging (woken: nothing is ahead, unless a running thread passed us since) or
            // a timeout (a grant may have raced in): the mutex settles which.
            let mut tree = self.lock_tree();
            if tree.is_granted(queued.id) || tree.claim(queued.id, &waiter) {
                drop(tree);
                core::mem::forget(pending);
                return Some(hold);
            }
            if !woken {
                drop(tree);
                drop(pending);
                return None;
            }
        }
    }

    /// Releases whatever `node` holds.
    #[inline]
    fn release(&self, node: Node) {
        match node {
            Node::Empty => {}
            Node::Alone => self.leave_alone(),
            Node::Tree(id) => self.leave(id),
        }
    }

    /// Removes request `id` and wakes whoever it was the last blocker of.
    fn leave(&self, id: NodeId) {
        let woke = self.lock_tree().leave(id);
        if woke {
            self.parker.wake(self.key());
        }
    }
}

impl Default for RangeRwLock {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for RangeRwLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock_tree();
        f.debug_struct("RangeRwLock")
            .field("requests", &state.tree.len())
            .field("waiting", &state.waiting)
            .finish()
    }
}

#[cfg(test)]
mod tests;
