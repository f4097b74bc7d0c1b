//! The FIFO accounting: every request, granted or waiting, is a node of one interval tree, and
//! counts the conflicting requests ahead of it.

use core::ptr::NonNull;
use std::time::{Duration, Instant};

use crate::sync::Waiter;
use crate::tree::{IntervalTree, NodeId};

/// Shared (read) or exclusive (write).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Read,
    Write,
}

impl Mode {
    /// Two overlapping requests conflict unless both read.
    pub(crate) fn conflicts(self, other: Mode) -> bool {
        self == Mode::Write || other == Mode::Write
    }
}

/// The address of a queued request's [`Waiter`], on the waiting thread's stack.
pub(crate) struct WaiterRef(NonNull<Waiter>);

// SAFETY: the pointer is only dereferenced under the lock's internal mutex (`State::unblock`),
// from whichever thread holds it; the pointee is an atomic flag.
unsafe impl Send for WaiterRef {}

/// One request in the tree.
pub(crate) struct Request {
    /// Queue position: a request counts the conflicting requests of lower `prio`. Arrivals get
    /// even positions in arrival order (`2 * seq + 2`, where `seq` is also the tree's tie-break
    /// between equal starts); a request that barges in takes the odd position just ahead of
    /// the oldest request it passes (see `State::enqueue`). Two requests that pass the same one
    /// cannot conflict, since the second would have to pass the first, which holds the lock.
    pub(crate) prio: u64,
    pub(crate) mode: Mode,
    /// Conflicting overlapping requests ahead of it (lower `prio`) that have not left.
    pub(crate) blocking: usize,
    /// Its thread holds the lock. Under strict FIFO that is the moment `blocking` reaches
    /// zero; when barging is allowed, the woken thread claims it under the mutex, and until
    /// then a running thread may pass it.
    pub(crate) claimed: bool,
    /// The waiting thread's flag, while the request waits; `None` once claimed.
    pub(crate) waiter: Option<WaiterRef>,
    /// If barging is allowed: until when other requests may pass it (it began to wait, plus
    /// the hand-off deadline).
    pub(crate) passable_until: Option<Instant>,
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
    pub(crate) tree: IntervalTree<Request>,
    pub(crate) next_seq: u64,
    /// Requests with `blocking > 0`.
    pub(crate) waiting: usize,
    /// The node of the request that held the lock alone, once a later request moved it into
    /// the tree and until it leaves.
    pub(crate) moved: Option<NodeId>,
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
    pub(super) fn enqueue(
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
    pub(super) fn claim(&mut self, id: NodeId, waiter: &Waiter) -> bool {
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
    pub(super) fn unblock(
        &mut self,
        start: u64,
        last: u64,
        counted: impl Fn(&Request) -> bool,
    ) -> bool {
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
    pub(super) fn is_locked(&self, start: u64, last: u64) -> bool {
        self.tree.any_overlap(start, last, |r| r.claimed)
    }
}
