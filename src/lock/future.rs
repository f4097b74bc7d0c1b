//! Async acquisition: futures that own their wait node.
//!
//! An [`Acquire`] is the async twin of the blocking path in `mod.rs`. Its first poll tries the
//! slot fast path, then queues the request in the tree with the future's own [`WaitNode`] and
//! the task's waker, stored under the internal mutex before the entries become visible. A
//! release that grants the request takes the waker out of the node and wakes it (`wait.rs`);
//! later polls read the node's state. Nothing is allocated: the node lives inside the pinned
//! future, and the tree points at it until the request is granted or has left the queue.
//!
//! Pinning and aliasing: the future is `!Unpin` (the node is `PhantomPinned`) and is only ever
//! used through `&self` (its phase is a `Cell`), never through `&mut` while other threads may
//! look at the node, except in `Drop`, which first takes the request out of the queue and waits
//! until no releasing thread has the node in its wake list.
//!
//! Barging locks: within its hand-off window a request that conflicts does not queue; its node
//! waits in the outside list with the task's waker, and a release that may have cleared its way
//! notifies it (wakes the task), whose next poll tries again. Once the window has closed it
//! queues in the tree like any request.
//!
//! Cancellation: dropping a future that is still queued settles its request under the mutex,
//! as a timed-out blocking request does: if it was granted meanwhile it is released, which
//! grants whoever waited only for it; otherwise it leaves the queue and un-counts itself from
//! the requests behind it. A future waiting outside the tree just takes its node out.

use core::cell::Cell;
use core::fmt;
use core::future::Future;
use core::ops::{Deref, RangeBounds};
use core::pin::Pin;
use core::task::{Context, Poll};
use std::sync::Arc;
use std::time::Instant;

use super::fast::{Barge, Fast, Place};
use super::guard::{Held, Hold};
use super::requester::{Requester, Site};
use super::stats::Since;
use super::wait::{
    wait_unlinked, Mode, Part, WaitNode, GRANTED, LINKED_GRANT, LINKED_NOTIFY, NOTIFIED, WAITING,
};
use super::{ArcRangeReadGuard, ArcRangeWriteGuard, RangeReadGuard, RangeRwLock, RangeWriteGuard};
use crate::range::Span;
use crate::sync::waking;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not polled yet.
    Start,
    /// Queued in the tree under this `seq`, waiting.
    Queued(u64),
    /// Barging locks: waiting outside the tree; the hand-off window closes at this instant.
    Outside(Instant),
    /// Granted, held here, within the poll that is about to hand out the output: recorded
    /// before any user code (a waker's drop) runs, so that a panic there releases it.
    Granted(Place),
    /// The output was handed out.
    Done,
}

/// What is requested.
#[derive(Clone, Copy)]
enum Request {
    /// One range (possibly empty).
    One { span: Span, mode: Mode },
    /// A set of ranges (sorted, disjoint, possibly empty: an empty set is granted at the first
    /// poll), kept alive and unchanged by the public future until the request is granted or
    /// given up (see `Acquire::set`).
    Set(*const [Part]),
}

/// A request being acquired asynchronously, on the lock that `L` leads to.
pub(crate) struct Acquire<L: Deref<Target = RangeRwLock> + Clone> {
    lock: L,
    request: Request,
    /// For `Request::One`: its part, which the tree's node points at once queued.
    one: [Part; 1],
    phase: Cell<Phase>,
    /// When the request began to wait, if it has (empty without `stats`).
    since: Cell<Since>,
    /// Where the future was made (empty without `deadlock_detection`).
    site: Site,
    /// `!Unpin`: the tree points at it while the request is queued.
    node: WaitNode,
}

// SAFETY: a `Set` request points at `Part`s (plain integers) that the public future borrows or
// owns (see `set`), so sending the future sends a shared borrow of `Sync` data; `Cell<Phase>`
// and the node are touched through the future's owner (and the node, as documented in
// `wait.rs`, by releasing threads, which `WaitNode: Sync` covers).
unsafe impl<L: Deref<Target = RangeRwLock> + Clone + Send> Send for Acquire<L> {}

impl<L: Deref<Target = RangeRwLock> + Clone> Acquire<L> {
    /// A request for one range; `span` was normalised at the caller (which panics there for an
    /// inverted range).
    #[cfg_attr(feature = "deadlock_detection", track_caller)]
    #[inline]
    pub(crate) fn one(lock: L, span: Span, mode: Mode) -> Self {
        let (start, last) = match span {
            Span::Range { start, last } => (start, last),
            Span::Empty { at } => (at, at),
        };
        Self::new(
            lock,
            Request::One { span, mode },
            Part { start, last, mode },
        )
    }

    /// A request for a set of ranges.
    ///
    /// # Safety
    ///
    /// `parts` stays where it is, alive and unchanged, until the request is granted (a poll
    /// returned `Ready`) or the `Acquire` is dropped, even if the borrow that gave it ends
    /// before (an owned set moved into the future keeps its parts in its `Vec`'s buffer).
    /// `parts` is sorted by start, pairwise disjoint and has no empty part (as every
    /// [`RangeSet`](super::RangeSet) is): the tree keys a request's entries by their start.
    #[cfg_attr(feature = "deadlock_detection", track_caller)]
    pub(crate) unsafe fn set(lock: L, parts: &[Part]) -> Self {
        Self::new(lock, Request::Set(parts), Part::default())
    }

    #[cfg_attr(feature = "deadlock_detection", track_caller)]
    #[inline]
    fn new(lock: L, request: Request, one: Part) -> Self {
        Acquire {
            lock,
            request,
            one: [one],
            phase: Cell::new(Phase::Start),
            since: Cell::new(Since::NOT_YET),
            site: Site::caller(),
            node: WaitNode::new(),
        }
    }

    /// The request, as made by the task that polls it with `cx`.
    #[inline(always)]
    fn requester(&self, cx: &Context<'_>) -> Requester {
        Requester::task(cx.waker(), self.site)
    }

    #[inline]
    fn parts(&self) -> &[Part] {
        match self.request {
            Request::One { .. } => &self.one,
            // SAFETY: `set`'s caller keeps the parts alive and unchanged until the request is
            // granted or the future dropped; they are read only before that (in the `Start`,
            // `Queued`, `Outside` and `Granted` phases and in `Drop`).
            Request::Set(parts) => unsafe { &*parts },
        }
    }

    /// The guard's `Hold` for a granted single-range request.
    #[inline]
    fn hold(&self, place: Place) -> Hold {
        match self.request {
            Request::One { span, .. } => Hold::new(span, place),
            Request::Set(_) => unreachable!("a set request has no single hold"),
        }
    }

    /// Polls a single-range request: once granted, its guard's core.
    #[inline(always)]
    pub(crate) fn poll_held(&self, cx: &mut Context<'_>) -> Poll<Held<L>> {
        self.poll_acquire(cx)
            .map(|(lock, place)| Held::new(lock, self.hold(place)))
    }

    /// Polls the request: once granted, returns the lock and where the request is held
    /// (`Place::Tree(seq)` for sets, or `Place::Empty` for an empty set or range).
    ///
    /// # Panics
    ///
    /// If polled again after it returned `Ready`.
    #[inline(always)]
    pub(super) fn poll_acquire(&self, cx: &mut Context<'_>) -> Poll<(L, Place)> {
        let place = match self.phase.get() {
            Phase::Start => match self.start(cx) {
                Some(place) => place,
                None => return Poll::Pending,
            },
            Phase::Queued(seq) => {
                if !self.granted(cx) {
                    return Poll::Pending;
                }
                Place::Tree(seq)
            }
            Phase::Outside(end) => match self.retry(cx, end) {
                Some(place) => place,
                None => return Poll::Pending,
            },
            // A poll that panicked after the grant, caught, and the future polled again.
            Phase::Granted(place) => place,
            Phase::Done => panic!("a range lock future was polled after it completed"),
        };
        self.lock.count_wait(self.since.get(), true);
        self.phase.set(Phase::Done);
        Poll::Ready((self.lock.clone(), place))
    }

    /// The first poll: the fast path, or the queue. `None` if the request waits.
    #[inline(always)]
    fn start(&self, cx: &mut Context<'_>) -> Option<Place> {
        let lock = &*self.lock;
        if let Request::One { span, mode } = self.request {
            let Span::Range { start, last } = span else {
                return Some(Place::Empty);
            };
            if let Fast::Taken(i) = lock.try_slot(start, last, mode, self.requester(cx)) {
                return Some(Place::Slot(i));
            }
        }
        self.queue(cx)
    }

    /// The rest of the first poll, out of line: the request goes through the tree (or,
    /// barging, waits outside it).
    #[inline(never)]
    fn queue(&self, cx: &mut Context<'_>) -> Option<Place> {
        if self.parts().is_empty() {
            return Some(Place::Empty);
        }
        if self.lock.handoff().is_none() {
            return self.enqueue(cx);
        }
        let now = Instant::now();
        self.barge(cx, now, self.lock.window_end(now))
    }

    /// Queues the request in the tree (FIFO).
    fn enqueue(&self, cx: &mut Context<'_>) -> Option<Place> {
        let parts = self.parts();
        // User code (the waker's clone, and below the old waker's drop) outside the mutex.
        let waker = cx.waker().clone();
        let left_over;
        let queued = {
            let mut tree = self.lock.lock_tree(parts.len());
            // A notified request that queues is back: its entries stop whoever it was
            // notified in place of.
            tree.outside.returned(&self.node);
            // Not queued yet, and under the mutex: the waker slot is ours.
            self.node.reset();
            left_over = self.node.set_waker(waker);
            tree.enqueue(parts, &self.node, self.requester(cx))
        };
        // The phase first: the left-over waker's drop may panic.
        let place = if queued.granted {
            self.phase.set(Phase::Granted(Place::Tree(queued.seq)));
            Some(Place::Tree(queued.seq))
        } else {
            self.phase.set(Phase::Queued(queued.seq));
            let mut since = self.since.get();
            // Reads the clock only with `stats` (and only if it did not wait outside before).
            since.start();
            self.since.set(since);
            None
        };
        drop(left_over);
        place
    }

    /// Barging locks, at `now`, within the window that closes at `end`: takes the ranges if
    /// nothing is in the way, else waits outside the tree with the task's waker.
    fn barge(&self, cx: &mut Context<'_>, now: Instant, end: Instant) -> Option<Place> {
        if now >= end {
            self.lock.count_handoff();
            return self.enqueue(cx);
        }
        let one = matches!(self.request, Request::One { .. });
        // Cloned outside the mutex; what is left over is dropped after it (user code).
        let mut waker = Some(cx.waker().clone());
        let who = self.requester(cx);
        let barged = self
            .lock
            .barge_once(self.parts(), one, &self.node, &mut waker, true, who);
        // The phase first: the left-over waker's drop may panic.
        let place = match barged {
            Barge::Held(place) => {
                self.phase.set(Phase::Granted(place));
                Some(place)
            }
            Barge::Outside => {
                self.phase.set(Phase::Outside(end));
                self.begin_wait_at(now);
                None
            }
            Barge::Refused => unreachable!("a request that may wait is never refused"),
        };
        drop(waker);
        place
    }

    /// The request waits from `now` on, unless it began before (feature `stats`).
    #[inline(always)]
    fn begin_wait_at(&self, now: Instant) {
        let mut since = self.since.get();
        since.start_at(now);
        self.since.set(since);
    }

    /// A later poll of a request waiting outside the tree (barging locks): tries again once
    /// notified; otherwise the waker of `cx` is the one a notification will wake.
    #[inline(never)]
    fn retry(&self, cx: &mut Context<'_>, end: Instant) -> Option<Place> {
        loop {
            match self.node.state() {
                NOTIFIED => break,
                LINKED_NOTIFY if waking() => {
                    self.soon(cx);
                    return None;
                }
                // A releasing thread is about to hand it its final state (and owns the old
                // waker): that takes a few instructions.
                LINKED_NOTIFY => wait_unlinked(&self.lock.parker, &self.node),
                _ => {
                    if self.rewake(cx, WAITING) {
                        return None;
                    }
                }
            }
        }
        // Straight to the mutex: `barge_once` tries the slots too.
        self.barge(cx, Instant::now(), end)
    }

    /// A later poll of a queued request: true once it holds its ranges; otherwise the waker
    /// of `cx` is the one a grant will wake.
    #[inline(never)]
    fn granted(&self, cx: &mut Context<'_>) -> bool {
        loop {
            match self.node.state() {
                GRANTED => return true,
                LINKED_GRANT if waking() => {
                    self.soon(cx);
                    return false;
                }
                LINKED_GRANT => wait_unlinked(&self.lock.parker, &self.node),
                _ => {
                    if self.rewake(cx, super::wait::WAITING) {
                        return false;
                    }
                }
            }
        }
    }

    /// A later poll, inside a task waker's `wake`, that finds the node in a releasing thread's
    /// wake list. Elsewhere the poll waits the few instructions that thread needs to hand the
    /// node its final state; here the list may be this thread's own (an executor that polls a
    /// task inline from `wake`), and waiting would never end, so the task is woken again to
    /// poll once more.
    fn soon(&self, cx: &Context<'_>) {
        cx.waker().wake_by_ref();
    }

    /// A later poll of a request still waiting (in the tree, or outside it): true if its node
    /// is still `waiting` under the mutex, and the waker of `cx` is then the one a grant or
    /// notification wakes; false if the node has moved on meanwhile.
    ///
    /// Under the mutex a `WAITING` node cannot be linked or taken out of the outside list:
    /// replacing the waker cannot race a grant or a notification. The waker's clone and the
    /// left-over waker's drop (user code) run outside the mutex.
    fn rewake(&self, cx: &Context<'_>, waiting: u8) -> bool {
        let waker = cx.waker().clone();
        let left_over;
        {
            let _state = self.lock.lock_state();
            if self.node.state() != waiting {
                // `waker` is dropped after `_state`, as it was declared before it.
                return false;
            }
            left_over = self.node.set_waker(waker);
        }
        drop(left_over);
        true
    }
}

impl<L: Deref<Target = RangeRwLock> + Clone> Drop for Acquire<L> {
    // Inline, so that dropping a future that is done (the usual case) costs a compare.
    #[inline(always)]
    fn drop(&mut self) {
        if !matches!(self.phase.get(), Phase::Start | Phase::Done) {
            self.give_up();
        }
    }
}

impl<L: Deref<Target = RangeRwLock> + Clone> Acquire<L> {
    /// `Drop` of a future that is queued or waits outside the tree.
    #[cold]
    #[inline(never)]
    fn give_up(&mut self) {
        match self.phase.get() {
            Phase::Queued(seq) => {
                // Leaves the queue, or, if it was granted meanwhile, releases the request
                // (which grants whoever waited only for it). Either way no releasing thread
                // has the node in its list afterwards.
                if self.lock.give_up(&self.node) {
                    self.lock.release_request(self.parts(), seq);
                }
            }
            // Holds nothing: the node leaves the outside list, or passes its notification on.
            Phase::Outside(_) => self.lock.give_up_outside(&self.node, self.parts()),
            // A poll panicked between the grant and handing out the guard.
            Phase::Granted(place) => match (self.request, place) {
                (Request::One { .. }, _) => self.lock.release(&self.hold(place)),
                (Request::Set(_), Place::Tree(seq)) => {
                    self.lock.release_request(self.parts(), seq);
                }
                (Request::Set(_), _) => {}
            },
            Phase::Start | Phase::Done => return,
        }
        self.lock.count_wait(self.since.get(), false);
    }
}

/// Async requests: the futures below, borrowed and owned.
impl RangeRwLock {
    /// Locks `range` shared, asynchronously: the future resolves once every earlier conflicting
    /// request has left. It waits by the same rules as blocking requests, never blocks the
    /// executor's thread, and does not allocate (its wait node lives inside the future).
    /// Dropping the future before it resolves gives up the request; if it was granted
    /// meanwhile, the range is released.
    ///
    /// The future is runtime-agnostic (`std::task` only) and `Send`.
    ///
    /// # Panics
    ///
    /// At the call (not at the first poll), if the range starts after it ends (`10..5`).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures_lite_block_on(async {
    /// let lock = rangelock::RangeRwLock::new();
    /// let a = lock.read_async(0..4096).await;
    /// let b = lock.read_async(..).await; // readers share
    /// assert_eq!(b.range(), 0..=u64::MAX);
    /// # drop(a);
    /// # });
    /// # fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    /// # }
    /// ```
    #[track_caller]
    pub fn read_async(&self, range: impl RangeBounds<u64>) -> ReadFuture<'_> {
        ReadFuture(Acquire::one(self, Span::new(&range), Mode::Read))
    }

    /// Locks `range` exclusive, asynchronously; see [`read_async`](Self::read_async).
    ///
    /// # Panics
    ///
    /// At the call, if the range starts after it ends (`10..5`).
    ///
    /// # Examples
    ///
    /// With tokio, two tasks on overlapping ranges: the second waits without blocking a
    /// worker thread.
    ///
    /// ```
    /// use std::sync::Arc;
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let lock = Arc::new(rangelock::RangeRwLock::new());
    /// let first = lock.write_async(0..10).await;
    /// let task = tokio::spawn({
    ///     let lock = lock.clone();
    ///     async move { lock.write_async(5..15).await.range() }
    /// });
    /// tokio::task::yield_now().await; // the task queues behind `first`
    /// drop(first);
    /// assert_eq!(task.await.unwrap(), 5..=14);
    /// # });
    /// ```
    #[track_caller]
    pub fn write_async(&self, range: impl RangeBounds<u64>) -> WriteFuture<'_> {
        WriteFuture(Acquire::one(self, Span::new(&range), Mode::Write))
    }

    /// Locks `range` shared, asynchronously, for a guard that keeps the lock alive (tokio's
    /// `read_owned`): [`read_async`](Self::read_async) and [`read_arc`](Self::read_arc) in one.
    /// The future is `'static`, so it can be spawned.
    ///
    /// # Panics
    ///
    /// At the call, if the range starts after it ends (`10..5`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let lock = Arc::new(rangelock::RangeRwLock::new());
    /// let task = tokio::spawn(lock.read_owned(0..10));
    /// let guard = task.await.unwrap();
    /// assert_eq!(guard.range(), 0..=9);
    /// # });
    /// ```
    #[track_caller]
    pub fn read_owned(self: &Arc<Self>, range: impl RangeBounds<u64>) -> OwnedReadFuture {
        OwnedReadFuture(Acquire::one(
            Arc::clone(self),
            Span::new(&range),
            Mode::Read,
        ))
    }

    /// Locks `range` exclusive, asynchronously, for a guard that keeps the lock alive (tokio's
    /// `write_owned`); see [`read_owned`](Self::read_owned).
    ///
    /// # Panics
    ///
    /// At the call, if the range starts after it ends (`10..5`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let lock = Arc::new(rangelock::RangeRwLock::new());
    /// let w = lock.write_owned(60..70).await;
    /// let r = w.downgrade();
    /// assert!(lock.try_read(65..66).is_some());
    /// # drop(r);
    /// # });
    /// ```
    #[track_caller]
    pub fn write_owned(self: &Arc<Self>, range: impl RangeBounds<u64>) -> OwnedWriteFuture {
        OwnedWriteFuture(Acquire::one(
            Arc::clone(self),
            Span::new(&range),
            Mode::Write,
        ))
    }
}

/// The future of [`RangeRwLock::read_async`]: resolves to a [`RangeReadGuard`] once the range
/// is locked shared. Dropping it before then gives up the request (see the crate docs on
/// cancellation).
///
/// ```
/// let lock = rangelock::RangeRwLock::new();
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let fut: rangelock::ReadFuture<'_> = lock.read_async(0..10);
/// assert_eq!(fut.await.range(), 0..=9);
/// # });
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct ReadFuture<'a>(pub(super) Acquire<&'a RangeRwLock>);

/// The future of [`RangeRwLock::write_async`]: resolves to a [`RangeWriteGuard`] once the
/// range is locked exclusive. Dropping it before then gives up the request.
///
/// ```
/// use std::time::Duration;
/// let lock = rangelock::RangeRwLock::new();
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let held = lock.write(0..10);
/// // Timing out drops the future, which leaves the queue.
/// let late = tokio::time::timeout(Duration::from_millis(1), lock.write_async(0..10)).await;
/// assert!(late.is_err());
/// assert_eq!(lock.waiting(), 0);
/// # drop(held);
/// # });
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct WriteFuture<'a>(pub(super) Acquire<&'a RangeRwLock>);

/// The future of [`RangeRwLock::read_owned`]: resolves to an [`ArcRangeReadGuard`]. Dropping
/// it before then gives up the request.
///
/// ```
/// use std::sync::Arc;
/// let lock = Arc::new(rangelock::RangeRwLock::new());
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let guard = tokio::spawn(lock.read_owned(0..10)).await.unwrap();
/// assert_eq!(guard.range(), 0..=9);
/// # });
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct OwnedReadFuture(pub(super) Acquire<Arc<RangeRwLock>>);

/// The future of [`RangeRwLock::write_owned`]: resolves to an [`ArcRangeWriteGuard`].
/// Dropping it before then gives up the request.
///
/// ```
/// use std::sync::Arc;
/// let lock = Arc::new(rangelock::RangeRwLock::new());
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let guard = tokio::spawn(lock.write_owned(0..10)).await.unwrap();
/// assert!(lock.try_read(0..1).is_none());
/// # drop(guard);
/// # });
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct OwnedWriteFuture(pub(super) Acquire<Arc<RangeRwLock>>);

/// `Future` and `Debug` for the single-range futures.
macro_rules! range_future {
    ($($future:ident $(<$l:lifetime>)? => $guard:ident $(<$gl:lifetime>)?;)*) => {$(
        impl$(<$l>)? Future for $future$(<$l>)? {
            type Output = $guard$(<$gl>)?;

            #[inline(always)]
            fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
                // Used through `&self` only: nothing is moved out of the pinned future.
                self.into_ref().get_ref().0.poll_held(cx).map($guard)
            }
        }

        impl$(<$l>)? fmt::Debug for $future$(<$l>)? {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($future)).finish_non_exhaustive()
            }
        }
    )*};
}

range_future! {
    ReadFuture<'a> => RangeReadGuard<'a>;
    WriteFuture<'a> => RangeWriteGuard<'a>;
    OwnedReadFuture => ArcRangeReadGuard;
    OwnedWriteFuture => ArcRangeWriteGuard;
}
