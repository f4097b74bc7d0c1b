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

use core::fmt;
use core::ops::{Deref, DerefMut};
use core::ops::{RangeBounds, RangeInclusive};
use core::ptr::NonNull;
use std::time::{Duration, Instant};

use crate::range::Span;
use crate::sync::{AtomicU64, Mutex, MutexGuard, Ordering, Parker, Waiter};
use crate::tree::{IntervalTree, NodeId};

/// Shared (read) or exclusive (write).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Read,
    Write,
}

impl Mode {
    /// Two overlapping requests conflict unless both read.
    fn conflicts(self, other: Mode) -> bool {
        self == Mode::Write || other == Mode::Write
    }
}

// The `fast` word: a tag in the low three bits, a claim generation above them.
const TAG: u64 = 0b111;
/// No request at all: the next one may take the lock alone, without the tree.
const EMPTY: u64 = 0;
/// A request has claimed the lock alone and is publishing its range in `fast_start/last`.
const CLAIMED: u64 = 1;
/// One request holds the lock alone, shared, over the published range.
const HELD_READ: u64 = 2;
/// One request holds the lock alone, exclusive, over the published range.
const HELD_WRITE: u64 = 3;
/// Requests queue in the tree, under the internal mutex.
const TREE: u64 = 4;
/// As `TREE`, and the request that held the lock alone now is node `State::moved`.
const MOVED: u64 = 5;
/// Every claim adds one generation, so a mover that read the range of an earlier claim fails
/// its compare-exchange instead of moving the wrong range.
const GENERATION: u64 = TAG + 1;

/// The address of a queued request's [`Waiter`], on the waiting thread's stack.
struct WaiterRef(NonNull<Waiter>);

// SAFETY: the pointer is only dereferenced under the lock's internal mutex (`State::unblock`),
// from whichever thread holds it; the pointee is an atomic flag.
unsafe impl Send for WaiterRef {}

/// One request in the tree.
struct Request {
    /// Queue position: a request counts the conflicting requests of lower `prio`. Arrivals get
    /// even positions in arrival order (`2 * seq + 2`, where `seq` is also the tree's tie-break
    /// between equal starts); a request that barges in takes the odd position just ahead of
    /// the oldest request it passes (see `State::enqueue`). Two requests that pass the same one
    /// cannot conflict, since the second would have to pass the first, which holds the lock.
    prio: u64,
    mode: Mode,
    /// Conflicting overlapping requests ahead of it (lower `prio`) that have not left.
    blocking: usize,
    /// Its thread holds the lock. Under strict FIFO that is the moment `blocking` reaches
    /// zero; when barging is allowed, the woken thread claims it under the mutex, and until
    /// then a running thread may pass it.
    claimed: bool,
    /// The waiting thread's flag, while the request waits; `None` once claimed.
    waiter: Option<WaiterRef>,
    /// If barging is allowed: until when other requests may pass it (it began to wait, plus
    /// the hand-off deadline).
    passable_until: Option<Instant>,
}

/// Barging (opt-in): a request may pass waiting requests that nobody holds yet, if none of
/// them has waited longer than `handoff`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Barging {
    pub(crate) now: Instant,
    pub(crate) handoff: Duration,
}

/// The state behind the internal mutex: every request, granted or waiting, in one tree.
pub(crate) struct State {
    tree: IntervalTree<Request>,
    next_seq: u64,
    /// Requests with `blocking > 0`.
    waiting: usize,
    /// The node of the request that held the lock alone, once a later request moved it into
    /// the tree and until it leaves.
    moved: Option<NodeId>,
}

/// What a queued request was told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Queued {
    pub(crate) id: NodeId,
    pub(crate) granted: bool,
}

impl State {
    pub(crate) const fn new() -> Self {
        State {
            tree: IntervalTree::new(),
            next_seq: 0,
            waiting: 0,
            moved: None,
        }
    }

    /// Queues a request for `[start, last]`. With `try_only`, a request that would have to wait
    /// is not queued (`None`). `waiter` is kept only if the request waits. With `barging`, a
    /// request whose every conflict is a waiting request (none claimed, none older than the
    /// hand-off deadline) passes them all and is granted at once.
    fn enqueue(
        &mut self,
        start: u64,
        last: u64,
        mode: Mode,
        waiter: Option<&Waiter>,
        try_only: bool,
        barging: Option<Barging>,
    ) -> Option<Queued> {
        let seq = self.next_seq;
        let mut prio = 2 * seq + 2;
        let blocking = if try_only && barging.is_none() {
            let conflict = self
                .tree
                .any_overlap(start, last, |r: &Request| mode.conflicts(r.mode));
            if conflict {
                return None;
            }
            0
        } else {
            let (mut passable, mut ahead) = (barging.is_some(), u64::MAX);
            let mut blocking = 0;
            self.tree.for_each_overlap(start, last, |r| {
                blocking += usize::from(mode.conflicts(r.mode));
                if mode.conflicts(r.mode) {
                    ahead = ahead.min(r.prio);
                    passable &= !r.claimed
                        && barging
                            .is_some_and(|b| r.passable_until.is_some_and(|until| b.now < until));
                }
            });
            if blocking > 0 && passable {
                // Take the place just ahead of the oldest request passed: each of them now
                // counts this one, and this one counts nobody.
                prio = ahead - 1;
                let waiting = &mut self.waiting;
                self.tree.for_each_overlap(start, last, |r| {
                    if mode.conflicts(r.mode) {
                        r.blocking += 1;
                        *waiting += usize::from(r.blocking == 1);
                    }
                });
                0
            } else if blocking > 0 && try_only {
                return None;
            } else {
                blocking
            }
        };
        self.next_seq += 1;
        let waiter = if blocking > 0 {
            self.waiting += 1;
            waiter.map(|w| WaiterRef(NonNull::from(w)))
        } else {
            None
        };
        let request = Request {
            prio,
            mode,
            blocking,
            claimed: blocking == 0,
            waiter,
            passable_until: barging.filter(|_| blocking > 0).map(|b| b.now + b.handoff),
        };
        let id = self.tree.insert(start, last, seq, request);
        Some(Queued {
            id,
            granted: blocking == 0,
        })
    }

    /// Claims request `id` for its woken thread if nothing is ahead of it any more; otherwise
    /// (a barging request passed it) clears its flag so that it can wait again.
    fn claim(&mut self, id: NodeId, waiter: &Waiter) -> bool {
        let request = self.tree.get_mut(id);
        if request.blocking == 0 {
            request.claimed = true;
            request.waiter = None;
            true
        } else {
            waiter.reset();
            false
        }
    }

    /// Whether request `id` has been granted.
    pub(crate) fn is_granted(&self, id: NodeId) -> bool {
        self.tree.get(id).claimed
    }

    /// Removes request `id`, granted or not, and un-counts it from every later conflicting
    /// request. Returns whether any request became granted (and so must be woken).
    pub(crate) fn leave(&mut self, id: NodeId) -> bool {
        let (start, last, gone) = self.tree.remove(id);
        if gone.blocking > 0 {
            self.waiting -= 1;
        }
        self.unblock(start, last, |r| {
            r.prio > gone.prio && gone.mode.conflicts(r.mode)
        })
    }

    /// Turns granted write request `id` into a read request, un-counting it from every later
    /// overlapping reader. Returns whether any request became granted.
    pub(crate) fn downgrade(&mut self, id: NodeId) -> bool {
        let (start, last) = self.tree.span(id);
        let request = self.tree.get_mut(id);
        assert!(
            request.mode == Mode::Write && request.claimed,
            "downgrade of a request that is not a granted writer"
        );
        request.mode = Mode::Read;
        let prio = request.prio;
        self.unblock(start, last, |r| r.prio > prio && r.mode == Mode::Read)
    }

    /// Decrements `blocking` of every request overlapping `[start, last]` that `counted`
    /// selects, granting those that reach zero.
    fn unblock(&mut self, start: u64, last: u64, counted: impl Fn(&Request) -> bool) -> bool {
        let waiting = &mut self.waiting;
        let mut granted = false;
        self.tree.for_each_overlap(start, last, |r| {
            if counted(r) {
                debug_assert!(
                    r.blocking > 0,
                    "a later conflicting request did not count us"
                );
                r.blocking -= 1;
                if r.blocking == 0 {
                    *waiting -= 1;
                    granted = true;
                    // Under strict FIFO the request is its thread's from now on; if barging is
                    // allowed, the thread claims it when it runs (`claim`), unless it is passed.
                    r.claimed = r.passable_until.is_none();
                    let waiter = if r.claimed {
                        r.waiter.take()
                    } else {
                        r.waiter.as_ref().map(|w| WaiterRef(w.0))
                    };
                    if let Some(WaiterRef(waiter)) = waiter {
                        // SAFETY: a request's waiter is on the stack of the thread that queued
                        // it, which stays in `RangeRwLock::acquire` until it either claims the
                        // request or removes it, both under this mutex, which we hold. The
                        // request is still queued and unclaimed, so that thread has not left.
                        unsafe { waiter.as_ref() }.grant();
                    }
                }
            }
        });
        granted
    }

    /// Whether any granted request overlaps `[start, last]`.
    fn is_locked(&self, start: u64, last: u64) -> bool {
        self.tree.any_overlap(start, last, |r| r.claimed)
    }
}

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

    /// Takes the lock alone if no request at all is present: the uncontended fast path.
    #[inline]
    fn try_alone(&self, start: u64, last: u64, mode: Mode) -> bool {
        let word = self.fast.load(Ordering::Relaxed);
        if word & TAG != EMPTY {
            return false;
        }
        let claimed = (word & !TAG).wrapping_add(GENERATION) | CLAIMED;
        // Acquire: the previous holder's release (fast or through the tree) happens before.
        if self
            .fast
            .compare_exchange(word, claimed, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        self.fast_start.store(start, Ordering::Relaxed);
        self.fast_last.store(last, Ordering::Relaxed);
        let held = match mode {
            Mode::Read => HELD_READ,
            Mode::Write => HELD_WRITE,
        };
        // Release: a mover that sees `held` sees the range stored above.
        self.fast.store(claimed & !TAG | held, Ordering::Release);
        true
    }

    /// Locks the internal mutex with the tree in charge: a request that holds the lock alone
    /// is moved into the tree first (waiting out a claim still publishing its range).
    fn lock_tree(&self) -> Tree<'_> {
        let mut state = self.state.lock();
        let mut spins = 0;
        loop {
            let word = self.fast.load(Ordering::Acquire);
            let generation = word & !TAG;
            match word & TAG {
                EMPTY => {
                    let tree = generation | TREE;
                    if self
                        .fast
                        .compare_exchange(word, tree, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                    {
                        break;
                    }
                }
                CLAIMED => crate::sync::spin_wait(&mut spins),
                tag @ (HELD_READ | HELD_WRITE) => {
                    let start = self.fast_start.load(Ordering::Relaxed);
                    let last = self.fast_last.load(Ordering::Relaxed);
                    // Fails if the holder left (or another claim replaced it) meanwhile.
                    let moved = generation | MOVED;
                    if self
                        .fast
                        .compare_exchange(word, moved, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                    {
                        let mode = if tag == HELD_WRITE {
                            Mode::Write
                        } else {
                            Mode::Read
                        };
                        let queued = state
                            .enqueue(start, last, mode, None, false, None)
                            .expect("a waiting request is always queued");
                        debug_assert!(queued.granted, "the lone holder met a conflict");
                        state.moved = Some(queued.id);
                        break;
                    }
                }
                _ => break, // TREE or MOVED
            }
        }
        Tree { lock: self, state }
    }

    /// Releases a request that took the lock alone.
    #[inline]
    fn leave_alone(&self) {
        let word = self.fast.load(Ordering::Relaxed);
        if matches!(word & TAG, HELD_READ | HELD_WRITE)
            && self
                .fast
                .compare_exchange(
                    word,
                    word & !TAG | EMPTY,
                    Ordering::Release,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return;
        }
        self.leave_moved();
    }

    /// Releases a request that took the lock alone, which a later request moved into the tree.
    #[cold]
    fn leave_moved(&self) {
        let woke = {
            let mut tree = self.state.lock();
            let id = tree.moved.take().expect("a moved request");
            let word = self.fast.load(Ordering::Relaxed);
            debug_assert_eq!(word & TAG, MOVED);
            // Only changed under the mutex now; `Tree::drop` turns it `EMPTY` if that was all.
            self.fast.store(word & !TAG | TREE, Ordering::Relaxed);
            let mut tree = Tree {
                lock: self,
                state: tree,
            };
            tree.leave(id)
        };
        if woke {
            self.parker.wake(self.key());
        }
    }

    /// Downgrades a write request that took the lock alone.
    fn downgrade_alone(&self) {
        let word = self.fast.load(Ordering::Relaxed);
        if word & TAG == HELD_WRITE
            && self
                .fast
                .compare_exchange(
                    word,
                    word & !TAG | HELD_READ,
                    Ordering::Release,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return;
        }
        let woke = {
            let mut tree = self.lock_tree();
            let id = tree.moved.expect("a moved request");
            tree.downgrade(id)
        };
        if woke {
            self.parker.wake(self.key());
        }
    }

    #[track_caller]
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

/// The internal state, locked, with the tree in charge of the lock. When it is dropped with
/// no request left, the lock goes back to `EMPTY`, where the fast path works again.
struct Tree<'a> {
    lock: &'a RangeRwLock,
    state: MutexGuard<'a, State>,
}

impl Deref for Tree<'_> {
    type Target = State;

    fn deref(&self) -> &State {
        &self.state
    }
}

impl DerefMut for Tree<'_> {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.state
    }
}

impl Drop for Tree<'_> {
    fn drop(&mut self) {
        if self.state.tree.len() == 0 {
            let word = self.lock.fast.load(Ordering::Relaxed);
            debug_assert_eq!(word & TAG, TREE, "an empty tree outside tree mode");
            // Release: the next fast claim sees everything done under the mutex.
            self.lock.fast.store(word & !TAG | EMPTY, Ordering::Release);
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

/// A queued request whose thread may still unwind before it is granted: dropping it removes
/// the request, so the tree never keeps a pointer to a dead stack frame.
struct Pending<'a> {
    lock: &'a RangeRwLock,
    id: NodeId,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.lock.leave(self.id);
    }
}

/// Where a guard's request lives.
#[derive(Clone, Copy, Debug)]
enum Node {
    /// Nowhere: the range is empty.
    Empty,
    /// In the `fast` word (or, if moved since, in `State::moved`).
    Alone,
    /// In the tree.
    Tree(NodeId),
}

/// What a guard holds: its range and where its request lives. (An empty range keeps its
/// position in `start`; the guard stays small, as guards are returned by value.)
#[derive(Clone, Copy, Debug)]
struct Hold {
    start: u64,
    last: u64,
    node: Node,
}

impl Hold {
    fn new(span: Span, node: Node) -> Hold {
        match span {
            Span::Empty { at } => Hold {
                start: at,
                last: at,
                node,
            },
            Span::Range { start, last } => Hold { start, last, node },
        }
    }

    fn span(&self) -> Span {
        match self.node {
            Node::Empty => Span::Empty { at: self.start },
            Node::Alone | Node::Tree(_) => Span::Range {
                start: self.start,
                last: self.last,
            },
        }
    }
}

/// Shared access to a range of a [`RangeRwLock`]; the range is unlocked when it is dropped.
#[must_use = "if unused the range is unlocked at once"]
pub struct RangeReadGuard<'a> {
    lock: &'a RangeRwLock,
    hold: Hold,
}

/// Exclusive access to a range of a [`RangeRwLock`]; the range is unlocked when it is dropped.
#[must_use = "if unused the range is unlocked at once"]
pub struct RangeWriteGuard<'a> {
    lock: &'a RangeRwLock,
    hold: Hold,
}

impl RangeReadGuard<'_> {
    /// The locked range, inclusive. An empty request gives an empty range
    /// (`RangeInclusive::is_empty`).
    pub fn range(&self) -> RangeInclusive<u64> {
        self.hold.span().to_inclusive()
    }
}

impl<'a> RangeWriteGuard<'a> {
    /// The locked range, inclusive. An empty request gives an empty range
    /// (`RangeInclusive::is_empty`).
    pub fn range(&self) -> RangeInclusive<u64> {
        self.hold.span().to_inclusive()
    }

    /// Turns this exclusive lock into a shared one over the same range without unlocking it,
    /// and lets in the readers queued behind it (up to the next queued writer on each part of
    /// the range).
    ///
    /// ```
    /// let lock = rangelock::RangeRwLock::new();
    /// let w = lock.write(0..100);
    /// let r = w.downgrade();
    /// assert!(lock.try_read(50..60).is_some());
    /// assert!(lock.try_write(50..60).is_none());
    /// # drop(r);
    /// ```
    pub fn downgrade(self) -> RangeReadGuard<'a> {
        let this = core::mem::ManuallyDrop::new(self);
        let lock = this.lock;
        let hold = this.hold;
        match hold.node {
            Node::Empty => {}
            Node::Alone => lock.downgrade_alone(),
            Node::Tree(id) => {
                let woke = lock.lock_tree().downgrade(id);
                if woke {
                    lock.parker.wake(lock.key());
                }
            }
        }
        RangeReadGuard { lock, hold }
    }
}

impl Drop for RangeReadGuard<'_> {
    fn drop(&mut self) {
        self.lock.release(self.hold.node);
    }
}

impl Drop for RangeWriteGuard<'_> {
    fn drop(&mut self) {
        self.lock.release(self.hold.node);
    }
}

impl fmt::Debug for RangeReadGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RangeReadGuard")
            .field("range", &self.range())
            .finish()
    }
}

impl fmt::Debug for RangeWriteGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RangeWriteGuard")
            .field("range", &self.range())
            .finish()
    }
}

#[cfg(test)]
mod tests;
