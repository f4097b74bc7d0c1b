//! The FIFO accounting, after Jan Kara's and Davidlohr Bueso's Linux range locks.
//!
//! Every request, granted or waiting, has one entry per range in one interval tree. A request
//! counts the conflicting entries already in the tree (a reader counts overlapping writers, a
//! writer every overlapping entry), inserts its own and waits until that count is zero. When a
//! request leaves (released, given up or cancelled) it decrements the count of every later
//! conflicting entry that overlaps its own, and wakes the requests that reach zero. FIFO among
//! conflicting requests, with no stealing, follows from counting only the entries ahead.
//!
//! Barging locks (`RangeRwLock::barging`) keep a request that would have to wait out of the
//! tree while it is within its hand-off window: it waits in the `outside` list and is notified
//! when an overlapping request leaves (one of several writers of a range at a time: see
//! `Outside`), then tries again. Only requests whose window has closed
//! queue here, so everything in the tree is strict FIFO, for either kind of lock.

use super::requester::Requester;
use super::wait::{Mode, NodeRef, Outside, Part, WaitNode, WakeList, LINKED_GRANT};
use crate::tree::{IntervalTree, Tied};

/// Requests that can hold the lock without the tree (see `fast.rs`).
pub(crate) const SLOTS: usize = 2;

/// `State::slot_seq` of a slot whose holder took it directly (or that is free). The entry is
/// meaningful while the slot's bit is set, in either mode.
pub(crate) const NO_SEQ: u64 = u64::MAX;

/// One entry of a request in the tree, keyed by `(start, seq)`: 16 bytes, since leaves move
/// entries around on every insert and remove (32 with `deadlock_detection`, which names the
/// request's thread or task in it).
#[derive(Clone, Copy, Default)]
pub(crate) struct Entry {
    /// The request's `seq` (`SEQ`), the mode (`WRITE`) and whether the request has more than
    /// one entry, a set of ranges (`MULTI`).
    ///
    /// `seq` is the queue position, the tie-break of the entry's key: an entry counts the
    /// conflicting entries of lower `seq`, the requests that arrived before it.
    bits: u64,
    /// The waiting request's node; `None` once its thread holds the request.
    pub(crate) node: Option<NodeRef>,
    /// Who made the request (empty without `deadlock_detection`).
    pub(crate) who: Requester,
}

const WRITE: u64 = 1 << 62;
const MULTI: u64 = 1 << 63;
const SEQ: u64 = WRITE - 1;

impl Tied for Entry {
    fn tie(&self) -> u64 {
        self.seq()
    }
}

impl Entry {
    fn new(seq: u64, mode: Mode, multi: bool, node: Option<NodeRef>, who: Requester) -> Entry {
        assert!(seq <= SEQ, "range lock: queue positions exhausted");
        let mode = if mode == Mode::Write { WRITE } else { 0 };
        let multi = if multi { MULTI } else { 0 };
        Entry {
            bits: seq | mode | multi,
            node,
            who,
        }
    }

    pub(crate) fn seq(&self) -> u64 {
        self.bits & SEQ
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

/// Whether a request of `mode` waits for (counts) `entry`, which overlaps it and is ahead of it.
#[inline]
fn blocks(mode: Mode, entry: &Entry) -> bool {
    mode.conflicts(entry.mode())
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
    /// Barging locks: requests waiting outside the tree.
    pub(crate) outside: Outside,
    /// In tree mode: the `seq` of each slot holder moved into the tree.
    pub(crate) moved: [u64; SLOTS],
    /// In fast mode: for a slot whose holder came from the tree, its `seq` (which its guard
    /// knows it by); `NO_SEQ` for a holder that took the slot directly.
    pub(crate) slot_seq: [u64; SLOTS],
    /// The lock's address, as the deadlock detector names it (set whenever the mutex is
    /// taken: a lock moves only while nothing borrows it).
    #[cfg(feature = "deadlock_detection")]
    pub(crate) lock_id: usize,
    /// Feature `stats`: requests granted through the tree (not moved there).
    #[cfg(feature = "stats")]
    pub(crate) granted: u64,
    /// Feature `stats`: requests granted while a conflicting one waited outside the tree.
    #[cfg(feature = "stats")]
    pub(crate) passed: u64,
}

impl State {
    pub(crate) fn new() -> Self {
        State {
            tree: IntervalTree::new(),
            next_seq: 0,
            requests: 0,
            waiting: 0,
            outside: Outside::new(),
            moved: [0; SLOTS],
            slot_seq: [NO_SEQ; SLOTS],
            #[cfg(feature = "deadlock_detection")]
            lock_id: 0,
            #[cfg(feature = "stats")]
            granted: 0,
            #[cfg(feature = "stats")]
            passed: 0,
        }
    }

    /// Makes room for `entries` inserts, before anything changes (see `IntervalTree::reserve`).
    pub(crate) fn reserve(&mut self, entries: usize) {
        self.tree.reserve(entries);
    }

    /// Inserts a request (made by `who`) that already holds `part` (a slot holder being moved),
    /// under `seq` if it has one from an earlier stay in the tree; returns its `seq`. It holds,
    /// so it must conflict with nothing in the tree.
    pub(crate) fn insert_held(&mut self, part: Part, seq: Option<u64>, who: Requester) -> u64 {
        let seq = seq.unwrap_or_else(|| {
            self.next_seq += 1;
            self.next_seq - 1
        });
        let entry = Entry::new(seq, part.mode, false, None, who);
        self.tree.insert(part.start, seq, part.last, entry);
        self.requests += 1;
        seq
    }

    /// Queues a request for `parts` (disjoint, sorted, not empty; made by `who`), granted at
    /// once if nothing in the tree conflicts with it, else waiting with `node`.
    pub(crate) fn enqueue(&mut self, parts: &[Part], node: &WaitNode, who: Requester) -> Queued {
        match self.queue_granted(parts, false, who) {
            Ok(seq) => Queued { seq, granted: true },
            Err(blocking) => Queued {
                seq: self.queue(parts, blocking, Some(node), who),
                granted: false,
            },
        }
    }

    /// The number of entries in the tree that a request for `parts` (disjoint, sorted, not
    /// empty) conflicts with; with `first_only`, 0 or 1.
    pub(crate) fn conflicts(&self, parts: &[Part], first_only: bool) -> usize {
        debug_assert!(!parts.is_empty());
        let mut blocking = 0;
        for part in parts {
            blocking += self
                .tree
                .count(part.start, part.last, first_only, |e| blocks(part.mode, e));
            if first_only && blocking > 0 {
                break;
            }
        }
        blocking
    }

    /// Queues a request for `parts` (disjoint, sorted, not empty; made by `who`) as granted if
    /// nothing in the tree conflicts with it, and returns its `seq`; otherwise queues nothing
    /// and returns the number of conflicting entries (with `first_only`, 1). A request of one
    /// range is counted and inserted in one walk of the tree.
    #[inline]
    pub(crate) fn queue_granted(
        &mut self,
        parts: &[Part],
        first_only: bool,
        who: Requester,
    ) -> Result<u64, usize> {
        let [part] = parts else {
            return match self.conflicts(parts, first_only) {
                0 => Ok(self.queue(parts, 0, None, who)),
                blocking => Err(blocking),
            };
        };
        let seq = self.next_seq;
        let entry = Entry::new(seq, part.mode, false, None, who);
        let blocking =
            self.tree
                .insert_unless(part.start, seq, part.last, entry, first_only, |e| {
                    blocks(part.mode, e)
                });
        if blocking > 0 {
            return Err(blocking);
        }
        self.next_seq += 1;
        self.requests += 1;
        #[cfg(feature = "stats")]
        self.count_grant(parts);
        Ok(seq)
    }

    /// Queues a request for `parts` (made by `who`) behind the `blocking` entries it conflicts
    /// with (see [`conflicts`](Self::conflicts)); `node` is its waiter if `blocking > 0`, and
    /// must then be given. Returns its `seq`.
    #[inline]
    pub(crate) fn queue(
        &mut self,
        parts: &[Part],
        blocking: usize,
        node: Option<&WaitNode>,
        who: Requester,
    ) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        let node = if blocking > 0 {
            let node = node.expect("a request that waits has a node");
            node.prepare(seq, parts);
            #[cfg(feature = "deadlock_detection")]
            self.note_wait(node, seq, parts, who);
            node.set_blocking(blocking);
            self.waiting += 1;
            Some(NodeRef::new(node))
        } else {
            #[cfg(feature = "stats")]
            self.count_grant(parts);
            None
        };
        let multi = parts.len() > 1;
        for part in parts {
            let entry = Entry::new(seq, part.mode, multi, node, who);
            self.tree.insert(part.start, seq, part.last, entry);
        }
        self.requests += 1;
        seq
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
    #[inline]
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
            #[cfg(feature = "deadlock_detection")]
            if let Some(node) = entry.node {
                crate::deadlock::Edit::new().done(node);
            }
            self.waiting -= 1;
        }
        self.unblock(start, last, entry, wake);
        self.notify_outside(start, last, wake);
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
        self.notify_outside(part.start, part.last, wake);
        self.finish_grants(wake);
        true
    }

    /// Barging locks: a request at `[start, last]` left (or was downgraded); the requests
    /// waiting outside the tree that it may have been in the way of try again, unless an entry
    /// in the tree (granted, or queued after its hand-off window) still conflicts with them:
    /// waking them would only add runnable threads while that entry's owner needs a CPU, and
    /// they are looked at again when it leaves.
    #[inline]
    pub(crate) fn notify_outside(&mut self, start: u64, last: u64, wake: &mut WakeList<'_>) {
        if self.outside.len() != 0 {
            let tree = &self.tree;
            let blocked = |parts: &[Part]| {
                parts
                    .iter()
                    .any(|p| tree.any_overlap(p.start, p.last, |e| p.mode.conflicts(e.mode())))
            };
            self.outside.notify(start, last, blocked, wake);
        }
    }

    /// Barging locks: a notified request (its ranges are `parts`) gives up without taking
    /// them; the requests it was notified for in their place (see `Outside`) are notified
    /// now.
    pub(crate) fn pass_on(&mut self, parts: &[Part], wake: &mut WakeList<'_>) {
        for part in parts {
            self.notify_outside(part.start, part.last, wake);
        }
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
        let waiting = &mut self.waiting;
        #[cfg(feature = "stats")]
        let granted = &mut self.granted;
        // The waiters' records in the deadlock detector's registry, changed as their counts.
        #[cfg(feature = "deadlock_detection")]
        let mut edit = crate::deadlock::Edit::new();
        self.tree.for_each_overlap(start, last, |at, _, _, entry| {
            if entry.seq() <= gone.seq() || !gone.mode().conflicts(entry.mode()) || !counted(entry)
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
            #[cfg(feature = "deadlock_detection")]
            edit.unblocked(node_ref, count == 1, gone.seq(), start, at);
            #[cfg(not(feature = "deadlock_detection"))]
            let _ = at;
            if count == 1 {
                *waiting -= 1;
                #[cfg(feature = "stats")]
                {
                    *granted += 1;
                }
                if !entry.multi() {
                    entry.node = None;
                }
                wake.link(node, false);
            }
            true
        });
    }

    /// Marks the entries of every granted request with several ranges as held (single-range
    /// requests were marked during the walk that granted them).
    #[inline]
    fn finish_grants(&mut self, wake: &WakeList<'_>) {
        if !wake.is_empty() {
            self.hold_granted_sets(wake);
        }
    }

    #[cold]
    #[inline(never)]
    fn hold_granted_sets(&mut self, wake: &WakeList<'_>) {
        for node in wake.iter() {
            // Notified requests (from outside the tree) have no entries.
            if node.state() == LINKED_GRANT && node.parts().len() > 1 {
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

    /// Settles a waiting request whose owner stops waiting (a timeout, a dropped future): if it
    /// was granted, it is held and `true` is returned; otherwise it leaves the queue. Either way
    /// the caller must then wait out a linked node.
    pub(crate) fn settle(&mut self, node: &WaitNode, wake: &mut WakeList<'_>) -> bool {
        if node.blocking() == 0 {
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

    /// Frees memory after a burst (see `IntervalTree::trim`).
    #[inline]
    pub(crate) fn trim(&mut self) {
        self.tree.trim();
    }
}

/// The deadlock detector's records (feature `deadlock_detection`).
#[cfg(feature = "deadlock_detection")]
impl State {
    /// As request `seq` (`parts`, made by `who`) queues to wait with `node`, before its own
    /// entries go in: records in the detector's registry every entry it waits for, which is
    /// every conflicting entry already in the tree.
    #[cold]
    #[inline(never)]
    fn note_wait(&mut self, node: &WaitNode, seq: u64, parts: &[Part], who: Requester) {
        let mut blockers = Vec::new();
        for part in parts {
            self.tree
                .for_each_overlap(part.start, part.last, |start, last, blocker_seq, entry| {
                    if blocks(part.mode, entry) {
                        blockers.push(crate::deadlock::Blocker {
                            seq: blocker_seq,
                            part: Part {
                                start,
                                last,
                                mode: entry.mode(),
                            },
                            who: entry.who,
                            waiter_start: part.start,
                        });
                    }
                    true
                });
        }
        crate::deadlock::Edit::new().queued(
            NodeRef::new(node),
            crate::deadlock::WaitRecord::new(self.lock_id, seq, parts, who, blockers),
        );
    }
}

/// Feature `stats`.
#[cfg(feature = "stats")]
impl State {
    /// A request for `parts` is granted at once.
    fn count_grant(&mut self, parts: &[Part]) {
        self.granted += 1;
        self.count_pass(parts);
    }

    /// A request for `parts` is granted: it passed a request waiting outside the tree if one
    /// conflicts with it.
    pub(crate) fn count_pass(&mut self, parts: &[Part]) {
        if self.outside.any_conflict(parts) {
            self.passed += 1;
        }
    }
}

#[cfg(test)]
mod tests;
