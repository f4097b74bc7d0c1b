//! The FIFO accounting, after Jan Kara's and Davidlohr Bueso's Linux range locks.
//!
//! Every request, granted or waiting, has one entry per range in one interval tree. A request
//! counts the conflicting entries already in the tree (a reader counts overlapping writers, a
//! writer every overlapping entry), inserts its own and waits until that count is zero. When a
//! request leaves (released, given up or cancelled) it decrements the count of every later
//! conflicting entry that overlaps its own, and wakes the requests that reach zero. FIFO among
//! conflicting requests, with no stealing, follows from counting only the entries ahead.
//!
//! Barging locks (`RangeRwLock::barging`) add one rule: a request whose every conflict is a
//! waiting request that nobody holds yet, none of which has waited its hand-off deadline,
//! passes them all. It takes the queue position just ahead of the oldest one it passes (an odd
//! `prio`; arrivals have even ones), and each of them counts it.

use std::time::{Duration, Instant};

use super::fast::NO_SEQ;
use super::wait::{NodeRef, WaitNode, WakeList, WAITING};
use super::SLOTS;
use crate::tree::IntervalTree;

/// Shared (read) or exclusive (write).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Mode {
    #[default]
    Read,
    Write,
}

impl Mode {
    /// Two overlapping requests conflict unless both read.
    pub(crate) fn conflicts(self, other: Mode) -> bool {
        self == Mode::Write || other == Mode::Write
    }
}

/// One range of a request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Part {
    pub(crate) start: u64,
    pub(crate) last: u64,
    pub(crate) mode: Mode,
}

/// One entry of a request in the tree, keyed by `(start, seq)`: 16 bytes, since leaves move
/// entries around on every insert and remove.
#[derive(Clone, Copy, Default)]
pub(crate) struct Entry {
    /// The queue position (`PRIO`), the mode (`WRITE`) and whether the request has more than
    /// one entry, a set of ranges (`MULTI`).
    ///
    /// Queue position: an entry counts the conflicting entries of lower position. Arrivals get
    /// `2 * seq + 2`; a barging request the odd position just ahead of the oldest it passes.
    /// Two requests that pass the same one do not conflict (the second would have to pass the
    /// first, which holds the lock), so equal odd positions never need ordering.
    bits: u64,
    /// The waiting request's node; `None` once its thread holds the request.
    pub(crate) node: Option<NodeRef>,
}

const WRITE: u64 = 1 << 62;
const MULTI: u64 = 1 << 63;
const PRIO: u64 = WRITE - 1;

impl Entry {
    fn new(prio: u64, mode: Mode, multi: bool, node: Option<NodeRef>) -> Entry {
        assert!(prio <= PRIO, "range lock: queue positions exhausted");
        let mode = if mode == Mode::Write { WRITE } else { 0 };
        let multi = if multi { MULTI } else { 0 };
        Entry {
            bits: prio | mode | multi,
            node,
        }
    }

    pub(crate) fn prio(&self) -> u64 {
        self.bits & PRIO
    }

    pub(crate) fn mode(&self) -> Mode {
        if self.bits & WRITE != 0 {
            Mode::Write
        } else {
            Mode::Read
        }
    }

    pub(crate) fn multi(&self) -> bool {
        self.bits & MULTI != 0
    }

    fn set_read(&mut self) {
        self.bits &= !WRITE;
    }
}

/// What a queued request was told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Queued {
    /// The tie-break of its entries' keys.
    pub(crate) seq: u64,
    pub(crate) granted: bool,
}

/// The state behind the internal mutex.
pub(crate) struct State {
    pub(crate) tree: IntervalTree<Entry>,
    next_seq: u64,
    /// Requests (not entries) in the tree.
    pub(crate) requests: usize,
    /// Requests whose count is above zero.
    pub(crate) waiting: usize,
    /// `Some`: barging is allowed, with this hand-off deadline.
    handoff: Option<Duration>,
    /// In tree mode: the `seq` of each slot holder moved into the tree.
    pub(crate) moved: [u64; SLOTS],
    /// In fast mode: for a slot whose holder came from the tree, its `seq` (which its guard
    /// knows it by); `NO_SEQ` for a holder that took the slot directly.
    pub(crate) slot_seq: [u64; SLOTS],
    /// Tests set the time that barging decisions see.
    #[cfg(test)]
    pub(crate) clock: Option<Instant>,
}

impl State {
    pub(crate) fn new(handoff: Option<Duration>) -> Self {
        State {
            tree: IntervalTree::new(),
            next_seq: 0,
            requests: 0,
            waiting: 0,
            handoff,
            moved: [0; SLOTS],
            slot_seq: [NO_SEQ; SLOTS],
            #[cfg(test)]
            clock: None,
        }
    }

    /// Makes room for `entries` inserts, before anything changes (see `IntervalTree::reserve`).
    pub(crate) fn reserve(&mut self, entries: usize) {
        self.tree.reserve(entries);
    }

    /// Inserts a request that already holds `part` (a slot holder being moved), under `seq` if
    /// it has one from an earlier stay in the tree; returns its `seq`. It holds, so it must
    /// conflict with nothing in the tree.
    pub(crate) fn insert_held(&mut self, part: Part, seq: Option<u64>) -> u64 {
        let seq = seq.unwrap_or_else(|| {
            self.next_seq += 1;
            self.next_seq - 1
        });
        let entry = Entry::new(2 * seq + 2, part.mode, false, None);
        self.tree.insert(part.start, seq, part.last, entry);
        self.requests += 1;
        seq
    }

    /// Queues a request for `parts` (disjoint, sorted). With `try_only`, a request that would
    /// have to wait is not queued (`None`). `node` is used only if the request waits, and must
    /// then be given.
    pub(crate) fn enqueue(
        &mut self,
        parts: &[Part],
        node: Option<&WaitNode>,
        try_only: bool,
    ) -> Option<Queued> {
        debug_assert!(!parts.is_empty());
        let handoff = self.handoff;
        // The clock is read only if it matters: when a barging request meets a waiter.
        let mut now = None;
        #[cfg(test)]
        let clock = self.clock;
        let read_clock = || {
            #[cfg(test)]
            if let Some(now) = clock {
                return now;
            }
            Instant::now()
        };
        let mut blocking = 0;
        let mut passable = handoff.is_some();
        let mut ahead = u64::MAX;
        for part in parts {
            self.tree
                .for_each_overlap(part.start, part.last, |_, _, _, entry| {
                    if !part.mode.conflicts(entry.mode()) {
                        return true;
                    }
                    blocking += 1;
                    if passable {
                        passable = entry.node.is_some_and(|node| {
                            // SAFETY: under the mutex, and the entry is queued.
                            let until = unsafe { node.get() }.passable_until();
                            let now = *now.get_or_insert_with(read_clock);
                            until.is_some_and(|until| now < until)
                        });
                        ahead = ahead.min(entry.prio());
                    }
                    // A strict try stops at the first conflict.
                    passable || !try_only
                });
            if try_only && blocking > 0 && !passable {
                return None;
            }
        }
        let seq = self.next_seq;
        let mut prio = 2 * seq + 2;
        if blocking > 0 && passable {
            // Barge: just ahead of the oldest request passed. Each of them counts this one.
            prio = ahead - 1;
            let waiting = &mut self.waiting;
            for part in parts {
                self.tree
                    .for_each_overlap(part.start, part.last, |_, _, _, entry| {
                        if part.mode.conflicts(entry.mode()) {
                            // SAFETY: every conflicting entry waits (that is why it could be
                            // passed), so its node is alive; we hold the mutex.
                            let node = unsafe { entry.node.expect("a passed request").get() };
                            let count = node.blocking();
                            *waiting += usize::from(count == 0);
                            node.set_blocking(count + 1);
                        }
                        true
                    });
            }
            blocking = 0;
        }
        self.next_seq += 1;
        let node = if blocking > 0 {
            let node = node.expect("a request that waits has a node");
            let passable_until = handoff.map(|handoff| {
                let now = *now.get_or_insert_with(read_clock);
                now + handoff
            });
            node.prepare(seq, parts, passable_until);
            node.set_blocking(blocking);
            self.waiting += 1;
            Some(NodeRef::new(node))
        } else {
            None
        };
        let multi = parts.len() > 1;
        for part in parts {
            let entry = Entry::new(prio, part.mode, multi, node);
            self.tree.insert(part.start, seq, part.last, entry);
        }
        self.requests += 1;
        Some(Queued {
            seq,
            granted: blocking == 0,
        })
    }

    /// Removes request `seq` (its ranges are `parts`), granted or not, and un-counts it from
    /// every later conflicting entry. Requests that become free are linked into `wake`.
    pub(crate) fn leave(&mut self, parts: &[Part], seq: u64, wake: &mut WakeList<'_>) {
        for (i, part) in parts.iter().enumerate() {
            let removed = self.remove_entry(part.start, seq, i == 0, wake);
            assert!(removed, "a request leaves the tree once");
        }
        self.requests -= 1;
        self.finish_grants(wake);
    }

    /// [`leave`](Self::leave) for a request with one range, starting at `start`; false if it
    /// is not in the tree (it was moved to a slot).
    pub(crate) fn leave_one(&mut self, start: u64, seq: u64, wake: &mut WakeList<'_>) -> bool {
        if !self.remove_entry(start, seq, true, wake) {
            return false;
        }
        self.requests -= 1;
        self.finish_grants(wake);
        true
    }

    /// Removes held request `(start, seq)`, which is moving to a slot: nobody counts it.
    pub(crate) fn remove_held(&mut self, start: u64, seq: u64) {
        let removed = self.tree.remove(start, seq);
        debug_assert!(removed.is_some_and(|(_, e)| e.node.is_none()));
        self.requests -= 1;
    }

    /// Removes entry `(start, seq)` and un-counts it; `first` for the request's first entry.
    /// False if there is no such entry.
    #[inline]
    fn remove_entry(&mut self, start: u64, seq: u64, first: bool, wake: &mut WakeList<'_>) -> bool {
        let Some((last, entry)) = self.tree.remove(start, seq) else {
            return false;
        };
        let was_waiting = entry.node.is_some_and(|node| {
            // SAFETY: the request is its caller's own, so its node (if any) is alive.
            unsafe { node.get() }.blocking() > 0
        });
        if first && was_waiting {
            self.waiting -= 1;
        }
        self.unblock(start, last, entry, wake);
        true
    }

    /// Turns granted write request `seq`'s entry at `part` into a read entry, un-counting it
    /// from every later overlapping reader. False if it is not in the tree (moved to a slot).
    pub(crate) fn downgrade(&mut self, part: Part, seq: u64, wake: &mut WakeList<'_>) -> bool {
        let Some(entry) = self.tree.get_mut(part.start, seq) else {
            return false;
        };
        assert!(
            entry.mode() == Mode::Write && entry.node.is_none(),
            "downgrade of a request that is not a granted writer"
        );
        let was = *entry;
        entry.set_read();
        // Only the readers behind it counted it as a conflict it no longer is.
        self.unblock_where(part.start, part.last, was, |e| e.mode() == Mode::Read, wake);
        self.finish_grants(wake);
        true
    }

    /// The slot that the request `seq`, which came from the tree, holds in fast mode.
    pub(crate) fn slot_of(&self, seq: u64) -> usize {
        self.slot_seq
            .iter()
            .position(|&s| s == seq)
            .expect("a request out of the tree holds a slot")
    }

    /// Un-counts entry `gone` at `[start, last]` from every later conflicting entry.
    fn unblock(&mut self, start: u64, last: u64, gone: Entry, wake: &mut WakeList<'_>) {
        self.unblock_where(start, last, gone, |_| true, wake);
    }

    fn unblock_where(
        &mut self,
        start: u64,
        last: u64,
        gone: Entry,
        counted: impl Fn(&Entry) -> bool,
        wake: &mut WakeList<'_>,
    ) {
        if self.waiting == 0 {
            return; // nobody counts anything
        }
        let barging = self.handoff.is_some();
        let waiting = &mut self.waiting;
        self.tree.for_each_overlap(start, last, |_, _, _, entry| {
            if entry.prio() <= gone.prio()
                || !gone.mode().conflicts(entry.mode())
                || !counted(entry)
            {
                return true;
            }
            let Some(node_ref) = entry.node else {
                debug_assert!(false, "a granted entry behind a conflict");
                return true;
            };
            // SAFETY: under the mutex, and the entry is queued.
            let node = unsafe { node_ref.get() };
            let count = node.blocking();
            debug_assert!(count > 0, "a later conflicting request did not count us");
            node.set_blocking(count - 1);
            if count == 1 {
                *waiting -= 1;
                if barging {
                    // Its thread claims it when it runs, unless it is passed first. A node
                    // already notified (or linked by someone else) will look anyway.
                    if node.state() == WAITING {
                        wake.link(node, true);
                    }
                } else {
                    if !entry.multi() {
                        entry.node = None;
                    }
                    wake.link(node, false);
                }
            }
            true
        });
    }

    /// Marks the entries of every granted request with several ranges as held (single-range
    /// requests were marked during the walk that granted them).
    fn finish_grants(&mut self, wake: &WakeList<'_>) {
        if self.handoff.is_some() || wake.is_empty() {
            return; // barging: woken requests claim their entries themselves
        }
        for node in wake.iter() {
            if node.parts().len() > 1 {
                self.hold(node);
            }
        }
    }

    /// Marks every entry of `node`'s request as held by its thread.
    fn hold(&mut self, node: &WaitNode) {
        let seq = node.seq();
        for part in node.parts() {
            let entry = self
                .tree
                .get_mut(part.start, seq)
                .expect("a granted request is queued");
            entry.node = None;
        }
    }

    /// Barging locks: the woken thread of `node` claims its request, if nothing is ahead of it
    /// any more; otherwise (a running request passed it) it is set to wait again.
    pub(crate) fn claim(&mut self, node: &WaitNode) -> bool {
        if node.blocking() == 0 {
            self.hold(node);
            true
        } else {
            node.rewait();
            false
        }
    }

    /// Settles a waiting request whose owner stops waiting (a timeout, a dropped future): if it
    /// was granted (or, barging, is free to claim), it is held and `true` is returned; otherwise
    /// it leaves the queue. Either way the caller must then wait out a linked node.
    pub(crate) fn settle(&mut self, node: &WaitNode, wake: &mut WakeList<'_>) -> bool {
        if node.blocking() == 0 {
            if self.handoff.is_some() {
                self.hold(node);
            }
            return true;
        }
        self.leave(node.parts(), node.seq(), wake);
        false
    }

    /// Whether any granted request overlaps `[start, last]`.
    pub(crate) fn is_locked(&self, start: u64, last: u64) -> bool {
        self.tree
            .any_overlap(start, last, |entry| entry.node.is_none())
    }

    /// Whether entry `(start, seq)` is held by its request's thread; for tests.
    #[cfg(test)]
    pub(crate) fn is_held(&self, start: u64, seq: u64) -> bool {
        let (_, entry) = self.tree.get(start, seq).expect("a queued entry");
        entry.node.is_none()
    }

    /// The queue position of entry `(start, seq)`; for tests.
    #[cfg(test)]
    pub(crate) fn prio(&self, start: u64, seq: u64) -> u64 {
        self.tree.get(start, seq).expect("a queued entry").1.prio()
    }

    /// Frees memory after a burst (see `IntervalTree::trim`).
    #[inline]
    pub(crate) fn trim(&mut self) {
        self.tree.trim();
    }
}

#[cfg(test)]
mod tests;
