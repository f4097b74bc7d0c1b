//! The fast path: up to [`SLOTS`] requests hold the lock without the tree.
//!
//! While no request waits, the holders are few and the lock is one word and a small table of
//! ranges beside it. A request takes the table for a few instructions (the `LOCKED` bit),
//! checks the published ranges for a conflict, publishes its own in a free slot and lets the
//! table go; a release clears its slot's bit with one compare-exchange. Nothing waits in this
//! mode, so a release has nobody to wake.
//!
//! A request that conflicts with a holder, or finds every slot taken, switches the lock to the
//! tree (`TREE`): under the internal mutex it moves every slot holder into the tree as a granted
//! request that arrived first, and queues itself behind them. A slot holder that finds `TREE`
//! when it releases does so through the tree. When nothing waits any more and at most
//! [`SLOTS`] requests hold, the lock goes back to the fast path, moving those holders into the
//! slots (`demote`); a guard whose request moved finds it under the mutex.
//!
//! Barging locks add `PARKED`: set while requests wait outside the tree (see `queue.rs`), so
//! that a slot holder that releases (or downgrades) takes the slow path and notifies them;
//! clear while every one of them is covered by a notified request that has not come back
//! (`Outside::needs_parked`), which is what lets a hot range's holder stay on the fast path.
//! It is set and cleared only under the internal mutex, from the outside list, and kept by
//! every other change of the word.
//!
//! Lock order: the internal mutex, then `LOCKED`. A thread that holds `LOCKED` never waits for
//! anything, so `LOCKED` is held for a bounded handful of instructions.

use core::ops::{Deref, DerefMut};

use core::task::Waker;

use super::queue::{State, NO_SEQ, SLOTS};
use super::requester::Requester;
use super::wait::{Mode, Part, WaitNode, WakeList};
use super::RangeRwLock;
use crate::sync::{MutexGuard, Ordering};

/// Slot `i` holds a request.
const fn occupied(i: usize) -> u64 {
    1 << i
}

/// Slot `i`'s request is a writer.
pub(super) const fn writer(i: usize) -> u64 {
    1 << (SLOTS + i)
}

/// Both bits of slot `i`.
pub(super) const fn slot_bits(i: usize) -> u64 {
    occupied(i) | writer(i)
}

/// Every slot occupied.
const ALL_OCCUPIED: u64 = (1 << SLOTS) - 1;
/// Every slot's writer bit.
const ALL_WRITERS: u64 = ALL_OCCUPIED << SLOTS;
/// The slot table is being read or changed; everyone else keeps off it.
pub(super) const LOCKED: u64 = 1 << (2 * SLOTS);
/// Requests go through the tree; the slot bits are holders moved there, not yet released.
pub(super) const TREE: u64 = 1 << (2 * SLOTS + 1);
/// Barging locks: requests wait outside the tree for a release, and some release must notify
/// them (see `Outside::needs_parked`).
pub(super) const PARKED: u64 = 1 << (2 * SLOTS + 2);
/// Barging locks: requests wait outside the tree (its list is not empty), whether or not a
/// release must notify them. For [`RangeRwLock::slot_holders`] and as a spinning hint.
pub(super) const WAITERS: u64 = 1 << (2 * SLOTS + 3);
/// Barging locks with the `stats` feature (0 without it): requests waiting outside the tree
/// were notified and have not come back yet; a fast-path grant then looks whether it passed
/// one of them (`WAITERS` says the same of the requests still listed).
const NOTIFIED_OUT: u64 = if cfg!(feature = "stats") {
    1 << (2 * SLOTS + 4)
} else {
    0
};
/// The bits that follow the outside list.
const OUTSIDE_BITS: u64 = PARKED | WAITERS | NOTIFIED_OUT;

/// Where a held request lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Place {
    /// Nowhere: the range is empty (it conflicts with nothing).
    Empty,
    /// In fast-path slot `i` (or, if moved since, in the tree as `State::moved[i]`).
    Slot(usize),
    /// In the tree, under `seq`.
    Tree(u64),
}

/// What [`RangeRwLock::barge_once`] did.
pub(super) enum Barge {
    /// The request holds its ranges there.
    Held(Place),
    /// Its node waits in the outside list.
    Outside,
    /// Something is in the way and the request may not wait.
    Refused,
}

/// What [`RangeRwLock::try_slot`] found.
pub(super) enum Fast {
    /// The request holds slot `i`.
    Taken(usize),
    /// A slot holder conflicts with the request.
    Conflict,
    /// The slots are full or the lock is in tree mode.
    Busy,
}

fn overlaps(a_start: u64, a_last: u64, b_start: u64, b_last: u64) -> bool {
    a_start <= b_last && b_start <= a_last
}

impl RangeRwLock {
    /// The key on which threads wait for the slot table (under loom; see `Parker::wait_while`).
    fn table_key(&self) -> usize {
        &raw const self.word as usize
    }

    /// One step of waiting for the thread that owns the slot table to let it go.
    fn wait_unlocked(&self, spins: &mut u32) {
        let busy = || self.word.load(Ordering::Relaxed) & LOCKED != 0;
        self.parker.wait_while(self.table_key(), busy, spins);
    }

    /// Lets the slot table go, storing `word` (without `LOCKED`).
    #[inline]
    fn unlock_slots(&self, word: u64) {
        debug_assert_eq!(word & LOCKED, 0);
        // Release: whoever takes the table next sees what this thread did.
        self.word.store(word, Ordering::Release);
        self.parker.done(self.table_key());
    }

    /// The mode of the request in slot `i`, from the word.
    fn slot_mode(word: u64, i: usize) -> Mode {
        if word & writer(i) != 0 {
            Mode::Write
        } else {
            Mode::Read
        }
    }

    /// Slot `i`'s range.
    ///
    /// # Safety
    ///
    /// The caller owns the slot table (it set `LOCKED` with `lock_slots`).
    unsafe fn slot_range(&self, i: usize) -> (u64, u64) {
        // SAFETY: the caller's contract.
        unsafe { self.slots[i].get() }
    }

    /// Who holds slot `i` (nobody without `deadlock_detection`).
    ///
    /// # Safety
    ///
    /// As for [`slot_range`](Self::slot_range).
    pub(super) unsafe fn slot_holder(&self, i: usize) -> Requester {
        #[cfg(feature = "deadlock_detection")]
        // SAFETY: the caller's contract.
        return unsafe { self.slots[i].holder() };
        #[cfg(not(feature = "deadlock_detection"))]
        {
            let _ = i;
            Requester::NOBODY
        }
    }

    /// Takes the slot table: returns the word as it was, without `LOCKED`; `None` in tree
    /// mode.
    #[inline]
    fn lock_slots(&self) -> Option<u64> {
        self.lock_slots_unless(|word| word & TREE != 0)
    }

    /// Takes the slot table unless `refuse(word)` (checked on every word seen before it is
    /// taken); returns the word as it was, without `LOCKED`.
    #[inline(always)]
    fn lock_slots_unless(&self, refuse: impl Fn(u64) -> bool) -> Option<u64> {
        let mut word = self.word.load(Ordering::Relaxed);
        let mut spins = 0;
        loop {
            if refuse(word) {
                return None;
            }
            if word & LOCKED != 0 {
                self.wait_unlocked(&mut spins);
                word = self.word.load(Ordering::Relaxed);
                continue;
            }
            // Acquire: the ranges published by the slots' holders, and what earlier holders
            // of an overlapping range did before they released, happen before.
            match self.word.compare_exchange(
                word,
                word | LOCKED,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(word),
                Err(now) => word = now,
            }
        }
    }

    /// Takes a slot for `[start, last]` (for `who`) if no slot holder conflicts and one is free.
    #[inline]
    pub(super) fn try_slot(&self, start: u64, last: u64, mode: Mode, who: Requester) -> Fast {
        let (taken, seen) = self.take_slot(start, last, mode, who);
        #[cfg(feature = "stats")]
        self.count_slot_pass(&taken, seen, &[Part { start, last, mode }]);
        #[cfg(not(feature = "stats"))]
        let _ = seen;
        taken
    }

    /// [`try_slot`](Self::try_slot), returning also the word it found, and without counting
    /// a pass (feature `stats`): for a barging request that waits outside the tree, which
    /// counts it with its own ranges (see `Outside::any_conflict`).
    #[inline(always)]
    pub(super) fn take_slot(
        &self,
        start: u64,
        last: u64,
        mode: Mode,
        who: Requester,
    ) -> (Fast, u64) {
        let full = |word| word & TREE != 0 || word & ALL_OCCUPIED == ALL_OCCUPIED;
        let Some(word) = self.lock_slots_unless(full) else {
            return (Fast::Busy, 0);
        };
        if word & ALL_OCCUPIED == 0 {
            // Alone: nothing to check.
            // SAFETY: we own the table until `unlock_slots` lets it go.
            unsafe { self.slots[0].set((start, last), who) };
            self.count_fast_grant();
            let writer_bit = if mode == Mode::Write { writer(0) } else { 0 };
            self.unlock_slots(word | occupied(0) | writer_bit);
            return (Fast::Taken(0), word);
        }
        (self.take_free_slot(word, start, last, mode, who, 0), word)
    }

    /// Barging locks, feature `stats`: a request for `parts` that got `taken` from the slot
    /// table, which it found as `seen`, passed a request waiting outside the tree if one
    /// conflicts with it.
    #[cfg(feature = "stats")]
    #[inline(always)]
    pub(super) fn count_slot_pass(&self, taken: &Fast, seen: u64, parts: &[Part]) {
        if seen & (WAITERS | NOTIFIED_OUT) != 0 && matches!(taken, Fast::Taken(_)) {
            self.count_pass(parts);
        }
    }

    #[cfg(feature = "stats")]
    #[cold]
    #[inline(never)]
    fn count_pass(&self, parts: &[Part]) {
        if let Some(state) = self.state.lock().as_deref_mut() {
            state.count_pass(parts);
        }
    }

    /// Feature `stats`, under the internal mutex: runs `f` while no request can take a slot
    /// (in fast mode the slot table is taken; in tree mode the slots are not used).
    #[cfg(feature = "stats")]
    pub(super) fn with_fast_path_stopped(&self, f: impl FnOnce()) {
        match self.lock_slots() {
            Some(word) => {
                f();
                self.unlock_slots(word);
            }
            None => f(),
        }
    }

    /// The rest of `try_slot` when other slots are held (and at least one is free): check
    /// them, take a free one. On a conflict the table is let go with `on_conflict` added to
    /// the word.
    #[inline(never)]
    fn take_free_slot(
        &self,
        word: u64,
        start: u64,
        last: u64,
        mode: Mode,
        who: Requester,
        on_conflict: u64,
    ) -> Fast {
        let writer_bit = |i| if mode == Mode::Write { writer(i) } else { 0 };
        let mut free = None;
        for i in 0..SLOTS {
            if word & occupied(i) == 0 {
                free = free.or(Some(i));
                continue;
            }
            // SAFETY: the caller took the table.
            let (s, l) = unsafe { self.slot_range(i) };
            if overlaps(start, last, s, l) && mode.conflicts(Self::slot_mode(word, i)) {
                self.unlock_slots(word | on_conflict);
                return Fast::Conflict;
            }
        }
        let i = free.expect("a free slot: the caller checked");
        // SAFETY: we own the table until `unlock_slots` lets it go.
        unsafe { self.slots[i].set((start, last), who) };
        self.count_fast_grant();
        // Whoever takes the table next sees the range stored above.
        self.unlock_slots(word | occupied(i) | writer_bit(i));
        Fast::Taken(i)
    }

    /// Releases slot `i`, which holds `[start, last]`.
    ///
    /// Inline, only the common case: one compare-exchange, with nobody to notify. Everything
    /// else is out of line, so that a guard's drop stays small enough to inline, with no
    /// registers to save.
    #[inline(always)]
    pub(super) fn release_slot(&self, i: usize, start: u64, last: u64) {
        let word = self.word.load(Ordering::Relaxed);
        // Release: the next holder of an overlapping range sees what this one did.
        if word & (TREE | LOCKED | PARKED) != 0
            || self
                .word
                .compare_exchange(
                    word,
                    word & !(occupied(i) | writer(i)),
                    Ordering::Release,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            self.release_slot_slow(i, start, last);
        }
    }

    /// [`release_slot`](Self::release_slot) when the table is busy, the lock in tree mode, or
    /// requests wait outside the tree.
    #[cold]
    #[inline(never)]
    fn release_slot_slow(&self, i: usize, start: u64, last: u64) {
        let mut word = self.word.load(Ordering::Relaxed);
        let mut spins = 0;
        loop {
            if word & TREE != 0 {
                return self.release_moved(i, start, last);
            }
            if word & LOCKED != 0 {
                self.wait_unlocked(&mut spins);
                word = self.word.load(Ordering::Relaxed);
                continue;
            }
            // Release: the next holder of an overlapping range sees what this one did.
            match self.word.compare_exchange(
                word,
                word & !(occupied(i) | writer(i)),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) if word & PARKED != 0 => return self.notify_outside(start, last),
                Ok(_) => return,
                Err(now) => word = now,
            }
        }
    }

    /// Barging locks: a slot holder at `[start, last]` released or downgraded while requests
    /// waited outside the tree; those it may have been in the way of try again.
    #[cold]
    #[inline(never)]
    fn notify_outside(&self, start: u64, last: u64) {
        let mut wake = WakeList::new(&self.parker);
        self.lock_state().notify_outside(start, last, &mut wake);
        wake.wake_all();
    }

    /// Releases slot `i`'s request after it was moved into the tree (it may be back in its
    /// slot by the time the mutex is ours).
    #[cold]
    #[inline(never)]
    fn release_moved(&self, i: usize, start: u64, last: u64) {
        let mut wake = WakeList::new(&self.parker);
        {
            let mut tree = self.lock_state();
            // Leaving the tree notifies the requests outside it; back in its slot, it must.
            if self.word.load(Ordering::Relaxed) & TREE != 0 {
                let seq = tree.moved[i];
                let left = tree.leave_one(start, seq, &mut wake);
                debug_assert!(left, "a moved slot holder is in the tree");
            } else {
                tree.notify_outside(start, last, &mut wake);
            }
            // Under the same hold of the mutex: whoever is notified tries only after it.
            self.vacate(&mut tree, i);
        }
        wake.wake_all();
    }

    /// Under the internal mutex: slot `i`'s holder is gone, in either mode.
    pub(super) fn vacate(&self, state: &mut State, i: usize) {
        state.slot_seq[i] = NO_SEQ;
        self.clear_slot_bits(slot_bits(i));
    }

    /// Under the internal mutex: clears `bits` in the word, in either mode.
    pub(super) fn clear_slot_bits(&self, bits: u64) {
        let word = self.word.load(Ordering::Relaxed);
        if word & TREE != 0 {
            // Only the mutex holder changes the word in tree mode.
            self.word.store(word & !bits, Ordering::Relaxed);
        } else {
            // Fast mode cannot switch while we hold the mutex.
            let word = self.lock_slots().expect("fast mode under the mutex");
            self.unlock_slots(word & !bits);
        }
    }

    /// The slot of the request `seq` that was moved into the tree, if it came from one.
    pub(super) fn moved_slot(&self, state: &State, seq: u64) -> Option<usize> {
        let word = self.word.load(Ordering::Relaxed);
        (0..SLOTS).find(|&i| word & TREE != 0 && word & occupied(i) != 0 && state.moved[i] == seq)
    }

    /// Turns slot `i`'s write request into a read request.
    pub(super) fn downgrade_slot(&self, i: usize, start: u64, last: u64) {
        let mut word = self.word.load(Ordering::Relaxed);
        let mut spins = 0;
        loop {
            if word & TREE != 0 {
                let mut wake = WakeList::new(&self.parker);
                {
                    let mut tree = self.lock_state();
                    // As in `release_moved`: the tree's downgrade notifies; a slot's must.
                    if self.word.load(Ordering::Relaxed) & TREE != 0 {
                        let seq = tree.moved[i];
                        let part = Part {
                            start,
                            last,
                            mode: Mode::Write,
                        };
                        tree.downgrade(part, seq, &mut wake);
                    } else {
                        tree.notify_outside(start, last, &mut wake);
                    }
                    self.clear_slot_bits(writer(i));
                }
                wake.wake_all();
                return;
            }
            if word & LOCKED != 0 {
                self.wait_unlocked(&mut spins);
                word = self.word.load(Ordering::Relaxed);
                continue;
            }
            // Nobody waits in the tree in fast mode; only requests outside it may.
            match self.word.compare_exchange(
                word,
                word & !writer(i),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) if word & PARKED != 0 => return self.notify_outside(start, last),
                Ok(_) => return,
                Err(now) => word = now,
            }
        }
    }

    /// Whether a slot holder overlaps `[start, last]`; `None` in tree mode. Does not move
    /// anything.
    pub(super) fn slots_locked(&self, start: u64, last: u64) -> Option<bool> {
        let word = self.lock_slots()?;
        let hit = (0..SLOTS).any(|i| {
            // SAFETY: `lock_slots` gave us the table.
            let (s, l) = unsafe { self.slot_range(i) };
            word & occupied(i) != 0 && overlaps(start, last, s, l)
        });
        self.unlock_slots(word);
        Some(hit)
    }

    /// The number of slot holders, if the lock is in fast mode and nothing waits.
    pub(super) fn slot_holders(&self) -> Option<usize> {
        let word = self.word.load(Ordering::Relaxed);
        (word & (TREE | WAITERS) == 0).then_some((word & ALL_OCCUPIED).count_ones() as usize)
    }

    /// Barging locks: whether requests wait outside the tree (a hint: read without the mutex).
    pub(super) fn has_waiters(&self) -> bool {
        self.word.load(Ordering::Relaxed) & WAITERS != 0
    }

    /// Whether the tree is in charge (a hint: read without the mutex).
    pub(super) fn in_tree_mode(&self) -> bool {
        self.word.load(Ordering::Relaxed) & TREE != 0
    }

    /// Under the internal mutex, in fast mode: the number of slot holders.
    pub(super) fn slot_count(&self) -> Option<usize> {
        let word = self.word.load(Ordering::Relaxed);
        (word & TREE == 0).then_some((word & ALL_OCCUPIED).count_ones() as usize)
    }

    /// Locks the internal mutex as the lock is, in either mode (for requests already queued
    /// or held, which find themselves in the tree or, moved back, in a slot).
    ///
    /// Always inline: returned from a call, the guard went back through memory, and copying it
    /// stalled on store forwarding (perf annotate of `held_100`).
    #[inline(always)]
    pub(super) fn lock_state(&self) -> Tree<'_> {
        let mut guard = self.state.lock();
        if guard.is_none() {
            Self::first_state(&mut guard);
        }
        #[cfg(feature = "deadlock_detection")]
        if let Some(state) = guard.as_deref_mut() {
            state.lock_id = std::ptr::from_ref(self) as usize;
        }
        Tree { lock: self, guard }
    }

    /// The state, allocated at the first use of the internal mutex.
    #[cold]
    #[inline(never)]
    fn first_state(state: &mut Option<Box<State>>) {
        *state = Some(Box::new(State::new()));
    }

    /// Barging locks: one attempt at `parts` (a request of one range if `one`, else a set, which is
    /// always held in the tree; made by `who`) under the internal mutex. Takes them if nothing is
    /// in the way; else, if `may_wait`, links `node` (in no list; with `waker` for a task) into the
    /// outside list, to be notified by a release that overlaps them. `waker`, cloned by the caller
    /// before the mutex, holds the waker left over on return, for the caller to drop.
    ///
    /// In fast mode, a request of one range that finds a free slot is checked against the slots
    /// without moving them into the tree, and a conflict sets `PARKED` in the same hold of the
    /// slot table: a slot holder's release that follows sees it.
    pub(super) fn barge_once(
        &self,
        parts: &[Part],
        one: bool,
        node: &WaitNode,
        waker: &mut Option<Waker>,
        may_wait: bool,
        who: Requester,
    ) -> Barge {
        let mut tree = self.lock_state();
        // A notified request is back (after any step that may fail).
        let mut wait_outside = |tree: &mut Tree<'_>| {
            tree.outside.returned(node);
            // In no list, and under the mutex: the node and its waker slot are ours.
            node.reset();
            if let Some(new) = waker.take() {
                *waker = node.set_waker(new);
            }
            tree.outside.push(node, parts);
            Barge::Outside
        };
        let held = |tree: &mut Tree<'_>, place| {
            tree.outside.returned(node);
            Barge::Held(place)
        };
        // The wake list only here: a request that is granted or waits wakes nobody.
        let refused = |mut tree: Tree<'_>| {
            let mut wake = WakeList::new(&self.parker);
            if tree.outside.returned(node) {
                tree.pass_on(parts, &mut wake);
            }
            drop(tree);
            wake.wake_all();
            Barge::Refused
        };
        if let ([part], true) = (parts, one) {
            let room = |word| word & TREE != 0 || word & ALL_OCCUPIED == ALL_OCCUPIED;
            // Under the mutex, fast mode stays fast mode.
            if let Some(word) = self.lock_slots_unless(room) {
                let parked = if may_wait { PARKED | WAITERS } else { 0 };
                let taken =
                    self.take_free_slot(word, part.start, part.last, part.mode, who, parked);
                return match taken {
                    Fast::Taken(i) => {
                        #[cfg(feature = "stats")]
                        tree.count_pass(parts);
                        held(&mut tree, Place::Slot(i))
                    }
                    Fast::Conflict if may_wait => {
                        #[cfg(feature = "deadlock_detection")]
                        let mut tree = self.refuse_reentry(tree, parts, who);
                        wait_outside(&mut tree)
                    }
                    Fast::Conflict | Fast::Busy => refused(tree),
                };
            }
        }
        self.to_tree(&mut tree, parts.len());
        if let Ok(seq) = tree.queue_granted(parts, true, who) {
            return held(&mut tree, Place::Tree(seq));
        }
        if !may_wait {
            return refused(tree);
        }
        #[cfg(feature = "deadlock_detection")]
        let mut tree = self.refuse_reentry(tree, parts, who);
        wait_outside(&mut tree)
    }

    /// In fast mode, under the internal mutex: the slot holders' requests, with who made them;
    /// `None` in tree mode.
    #[cfg(feature = "deadlock_detection")]
    pub(super) fn slot_requests(&self) -> Option<[Option<(Part, Requester)>; SLOTS]> {
        let word = self.lock_slots()?;
        let mut requests = [None; SLOTS];
        for (i, request) in requests.iter_mut().enumerate() {
            if word & occupied(i) != 0 {
                // SAFETY: `lock_slots` gave us the table.
                let ((start, last), who) = unsafe { (self.slot_range(i), self.slot_holder(i)) };
                let mode = Self::slot_mode(word, i);
                *request = Some((Part { start, last, mode }, who));
            }
        }
        self.unlock_slots(word);
        Some(requests)
    }

    /// Locks the internal mutex with the tree in charge, after reserving room for `inserts`
    /// entries (and the slot holders a switch may move): if the lock was in fast mode, every
    /// slot holder is moved into the tree first.
    #[inline(always)]
    pub(super) fn lock_tree(&self, inserts: usize) -> Tree<'_> {
        let mut tree = self.lock_state();
        self.to_tree(&mut tree, inserts);
        tree
    }

    /// Under the mutex: [`lock_tree`](Self::lock_tree)'s switch to the tree.
    #[inline]
    fn to_tree(&self, tree: &mut Tree<'_>, inserts: usize) {
        let word = self.word.load(Ordering::Acquire);
        // Every fallible step comes first: after this nothing below allocates.
        tree.reserve(inserts + SLOTS);
        if word & TREE == 0 {
            self.switch_to_tree(tree);
        }
    }

    /// [`to_tree`](Self::to_tree) from fast mode: the slot holders move into the tree.
    #[inline(never)]
    fn switch_to_tree(&self, tree: &mut Tree<'_>) {
        let state: &mut State = &mut *tree;
        if let Some(word) = self.lock_slots() {
            for i in 0..SLOTS {
                if word & occupied(i) != 0 {
                    // SAFETY: `lock_slots` gave us the table.
                    let (start, last) = unsafe { self.slot_range(i) };
                    // SAFETY: as above.
                    let who = unsafe { self.slot_holder(i) };
                    let mode = Self::slot_mode(word, i);
                    // A holder that came from the tree keeps its key, which its guard has.
                    let seq = state.slot_seq[i];
                    let seq = (seq != NO_SEQ).then_some(seq);
                    state.moved[i] = state.insert_held(Part { start, last, mode }, seq, who);
                }
            }
            // Release: a slot holder that sees `TREE` finds itself in the tree.
            self.unlock_slots(word & (ALL_OCCUPIED | ALL_WRITERS | OUTSIDE_BITS) | TREE);
        }
    }

    /// Under the mutex in tree mode, with nothing waiting and at most [`SLOTS`] requests held:
    /// moves them into the slots and switches to fast mode. Requests that came from slots go
    /// back to theirs; the others take free ones, and `slot_seq` remembers them for their
    /// guards.
    fn demote(&self, state: &mut State) {
        let word = self.word.load(Ordering::Relaxed);
        let mut held = [(0, 0, 0, Mode::Read, Requester::NOBODY); SLOTS];
        let mut n = 0;
        let mut fits = true;
        state
            .tree
            .for_each_overlap(0, u64::MAX, |start, last, seq, entry| {
                fits = n < SLOTS && entry.node.is_none() && !entry.multi();
                if fits {
                    held[n] = (start, last, seq, entry.mode(), entry.who);
                    n += 1;
                }
                fits
            });
        if !fits {
            return; // a set
        }
        let mut new = word & (ALL_OCCUPIED | ALL_WRITERS | OUTSIDE_BITS);
        for &(start, last, seq, mode, who) in &held[..n] {
            let native = (0..SLOTS).any(|i| word & occupied(i) != 0 && state.moved[i] == seq);
            if !native {
                let j = (0..SLOTS)
                    .find(|&j| new & occupied(j) == 0)
                    .expect("a free slot: at most SLOTS requests hold");
                // SAFETY: in tree mode, under the mutex, nobody else reads or writes a slot.
                unsafe { self.slots[j].set((start, last), who) };
                new |= occupied(j) | if mode == Mode::Write { writer(j) } else { 0 };
                state.slot_seq[j] = seq;
            }
            state.remove_held(start, seq);
        }
        // Release: the next fast-path request sees the slots and everything done under the
        // mutex.
        self.word.store(new, Ordering::Release);
    }
}

/// The internal state, locked. When it is dropped in tree mode with nothing waiting and few
/// holders, the lock goes back to the fast path.
pub(super) struct Tree<'a> {
    lock: &'a RangeRwLock,
    guard: MutexGuard<'a, Option<Box<State>>>,
}

impl Deref for Tree<'_> {
    type Target = State;

    fn deref(&self) -> &State {
        self.guard.as_deref().expect("the state exists once locked")
    }
}

impl DerefMut for Tree<'_> {
    fn deref_mut(&mut self) -> &mut State {
        self.guard
            .as_deref_mut()
            .expect("the state exists once locked")
    }
}

impl Drop for Tree<'_> {
    #[inline]
    fn drop(&mut self) {
        let lock = self.lock;
        let state: &mut State = self;
        state.trim();
        let word = lock.word.load(Ordering::Relaxed);
        // The common case, checked inline: nobody waits outside the tree, and in tree mode the
        // lock stays there.
        let outside = state.outside.len() != 0
            || word & OUTSIDE_BITS != 0
            || (cfg!(feature = "stats") && state.outside.any_notified());
        let demote = word & TREE != 0 && state.waiting == 0 && state.requests <= SLOTS;
        if outside || demote {
            lock.settle_word(state, word, demote);
        }
    }
}

impl RangeRwLock {
    /// [`Tree`]'s drop, under the mutex: `PARKED`, `WAITERS` (and `NOTIFIED_OUT`) follow the
    /// outside list (only the mutex holder sets or clears them), and with `demote` (in tree
    /// mode, nothing waiting, few holders) the lock goes back to the fast path.
    #[cold]
    #[inline(never)]
    fn settle_word(&self, state: &mut State, word: u64, demote: bool) {
        let bits = match state.outside.len() {
            0 => 0,
            _ if state.outside.needs_parked() => WAITERS | PARKED,
            _ => WAITERS,
        } | if cfg!(feature = "stats") && state.outside.any_notified() {
            NOTIFIED_OUT
        } else {
            0
        };
        if word & TREE != 0 {
            if word & OUTSIDE_BITS != bits {
                // In tree mode only the mutex holder changes the word.
                self.word
                    .store(word & !OUTSIDE_BITS | bits, Ordering::Relaxed);
            }
            if demote {
                self.demote(state);
            }
        } else if word & OUTSIDE_BITS != bits {
            let word = self.lock_slots().expect("fast mode under the mutex");
            self.unlock_slots(word & !OUTSIDE_BITS | bits);
        }
    }
}
