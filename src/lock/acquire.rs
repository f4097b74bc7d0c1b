//! Acquiring and releasing: the paths that every form of request shares (blocking, timed,
//! `try_`, barging, sets), giving up, and release. The public methods in `mod.rs`, `guard.rs`,
//! `future.rs` and `set.rs` are thin wrappers over these.

use core::ops::RangeBounds;
use std::time::{Duration, Instant};

#[cfg(feature = "deadlock_detection")]
use super::fast::Tree;
use super::fast::{writer, Barge, Fast, Place};
use super::guard::Hold;
use super::requester::Requester;
use super::stats::Since;
use super::wait::{wait_unlinked, Mode, Outside, Part, WaitNode, WakeList, GRANTED, WAITING};
use super::{RangeRwLock, RangeSet, Wait};
use crate::range::Span;
use crate::sync::Park;

/// How long a blocking request that is next in line watches for its grant before it parks.
///
/// A strict FIFO hand-off to a parked thread costs a futex wake-up in the releasing thread and
/// a schedule in the woken one (tens of microseconds on a virtual machine), and with no more
/// threads than cores the next holder's whole critical section and release are usually
/// shorter: watching turns the hand-off into a cache-line transfer. With more threads than
/// cores a preempted holder keeps the watcher spinning for nothing, so the watch is bounded.
/// With 200 pauses (about 5 us on the build machine) the two threads of `user_loop`'s `hot-2`
/// row still switched context 60,557 times in 4 s, and futex wake and wait took 41 % of the
/// samples (0.31x the ticket lock); watching 20 us, 758 times (0.53x), with eight threads on
/// one range unchanged (`user_loop -- --locks fifo,ticket hot`).
#[cfg(not(rangelock_loom))]
const WATCH: Duration = Duration::from_micros(20);

/// Spins between two looks at the clock while watching.
#[cfg(not(rangelock_loom))]
const WATCH_SPINS: u32 = 32;

impl RangeRwLock {
    /// `Some(deadline)` if barging is allowed.
    pub(crate) fn handoff(&self) -> Option<Duration> {
        (self.handoff_nanos != 0).then(|| Duration::from_nanos(self.handoff_nanos))
    }

    /// Barging locks: when the hand-off window of a request that begins to wait at `now` closes.
    pub(super) fn window_end(&self, now: Instant) -> Instant {
        now.checked_add(Duration::from_nanos(self.handoff_nanos))
            .unwrap_or(now)
    }

    /// The number of requests present and waiting, without moving anything.
    pub(super) fn census(&self) -> (usize, usize) {
        if let Some(holders) = self.slot_holders() {
            return (holders, 0);
        }
        // The switch back to fast mode happens under the mutex: under it, the word is current.
        let state = self.state.lock();
        let Some(state) = state.as_ref() else {
            return (0, 0);
        };
        let outside = state.outside.len();
        match self.slot_count() {
            Some(holders) => (holders, outside),
            None => (state.requests, state.waiting + outside),
        }
    }

    /// Acquires `range` for a borrowed guard of the calling thread.
    #[track_caller]
    #[inline(always)]
    pub(super) fn acquire(
        &self,
        range: &impl RangeBounds<u64>,
        mode: Mode,
        wait: Wait,
    ) -> Option<Hold> {
        self.acquire_by(range, mode, wait, Requester::thread(wait.is_forever()))
    }

    /// Acquires `range` for an owned (`Arc`) guard of the calling thread.
    #[track_caller]
    #[inline(always)]
    pub(super) fn acquire_owned(
        &self,
        range: &impl RangeBounds<u64>,
        mode: Mode,
        wait: Wait,
    ) -> Option<Hold> {
        let who = Requester::thread(wait.is_forever()).owned();
        self.acquire_by(range, mode, wait, who)
    }

    /// Acquires `range` for `who`.
    // Always inline: out of line, its 24-byte result went back through memory and stalled on
    // store forwarding (perf annotate of `cargo bench -p rangelock-benches --bench lock -- uncontended`).
    #[track_caller]
    #[inline(always)]
    pub(super) fn acquire_by(
        &self,
        range: &impl RangeBounds<u64>,
        mode: Mode,
        wait: Wait,
        who: Requester,
    ) -> Option<Hold> {
        let span = Span::new(range);
        let Span::Range { start, last } = span else {
            return Some(Hold::new(span, Place::Empty));
        };
        match self.try_slot(start, last, mode, who) {
            Fast::Taken(i) => return Some(Hold::new(span, Place::Slot(i))),
            // Nothing waits in fast mode: a slot holder in the way is a holder, never passed.
            Fast::Conflict if matches!(wait, Wait::Never) => return None,
            Fast::Conflict | Fast::Busy => {}
        }
        let place = self.acquire_queued(start, last, mode, wait, who)?;
        Some(Hold::new(span, place))
    }

    /// The rest of `acquire`, out of line: the request goes through the tree (or, barging,
    /// waits outside it). Returns where it is held once granted.
    #[inline(never)]
    pub(super) fn acquire_queued(
        &self,
        start: u64,
        last: u64,
        mode: Mode,
        wait: Wait,
        who: Requester,
    ) -> Option<Place> {
        self.acquire_request(&[Part { start, last, mode }], true, wait, who)
    }

    /// Acquires `parts` (one range if `one`, else a set, which is held in the tree) for `who`:
    /// a barging lock's request that may wait barges, any other queues in the tree.
    #[inline(always)]
    pub(super) fn acquire_request(
        &self,
        parts: &[Part],
        one: bool,
        wait: Wait,
        who: Requester,
    ) -> Option<Place> {
        // The hand-off as a `Duration` only once a request waits: the common, granted case
        // reads one integer.
        match (self.handoff_nanos, wait) {
            (1.., Wait::Forever | Wait::Until(_)) => {
                // In tree mode (ranges held elsewhere) a request usually finds nothing in its
                // way: one try, as a FIFO request's first step, before the machinery of
                // waiting outside (it is what `barge`'s first try through the tree does, and
                // passes waiters outside the tree as that does). In fast mode `barge` tries
                // the slots first; a set goes to the tree in either mode.
                if !one || self.in_tree_mode() {
                    if let Some(seq) = self.acquire_parts(parts, Wait::Never, who, Since::NOT_YET) {
                        return Some(Place::Tree(seq));
                    }
                }
                self.barge(parts, one, wait, who)
            }
            _ => (self.acquire_parts(parts, wait, who, Since::NOT_YET)).map(Place::Tree),
        }
    }

    /// Barging locks: acquires `parts` (one range if `one`, else a set) without queueing while the
    /// request is within its hand-off window, which opens at its first conflict: it spins a
    /// little, then waits outside the tree until a request in its way leaves, and tries again.
    /// Once the window has closed it queues in FIFO order like any request of a strict lock.
    // Under loom `BARGE_SPINS` is 0, so the spin phase is skipped.
    #[cfg_attr(rangelock_loom, allow(clippy::absurd_extreme_comparisons))]
    pub(super) fn barge(
        &self,
        parts: &[Part],
        one: bool,
        wait: Wait,
        who: Requester,
    ) -> Option<Place> {
        let node = WaitNode::new();
        // Once notified, the request is out until it is back under the mutex; if this ends
        // (even unwinding) before, it passes the notification on.
        let notified = Notified {
            lock: self,
            node: &node,
            parts,
        };
        let mut window: Option<Instant> = None;
        let mut spins = 0;
        let mut since = Since::NOT_YET;
        loop {
            if let ([part], true) = (parts, one) {
                let (taken, seen) = self.take_slot(part.start, part.last, part.mode, who);
                #[cfg(feature = "stats")]
                self.count_slot_pass(&taken, seen, parts);
                #[cfg(not(feature = "stats"))]
                let _ = seen;
                match taken {
                    Fast::Taken(i) => {
                        notified.back();
                        self.count_wait(since, true);
                        return Some(Place::Slot(i));
                    }
                    // The holder is likely running, and its release a few instructions away,
                    // unless others wait already: then more threads want the CPUs than there
                    // are, and spinning (or yielding) only delays the threads that can go on.
                    Fast::Conflict if spins < BARGE_SPINS && !self.has_waiters() => {
                        since.start();
                        spins += 1;
                        barge_backoff(spins);
                        continue;
                    }
                    Fast::Conflict | Fast::Busy => {}
                }
            }
            // The clock is read only by a request that waits. An untimed request's first try
            // (through the tree, say, with ranges held elsewhere) takes its ranges without it,
            // and starts its window only if it has to wait outside.
            let mut now = (window.is_some() || wait.deadline().is_some()).then(Instant::now);
            if let Some(t) = now {
                let end = *window.get_or_insert_with(|| self.window_end(t));
                if t >= end {
                    notified.back();
                    self.count_handoff();
                    return self.acquire_parts(parts, wait, who, since).map(Place::Tree);
                }
            }
            let may_wait = match (now, wait.deadline()) {
                (Some(t), Some(deadline)) => t < deadline,
                _ => true,
            };
            match self.barge_once(parts, one, &node, &mut None, may_wait, who) {
                Barge::Held(place) => {
                    self.count_wait(since, true);
                    return Some(place);
                }
                Barge::Refused => {
                    self.count_wait(since, false);
                    return None;
                }
                Barge::Outside => {}
            }
            let now = *now.get_or_insert_with(Instant::now);
            let end = *window.get_or_insert_with(|| self.window_end(now));
            since.start_at(now);
            // Leaves the outside list however this ends (even unwinding).
            let outside = OutsideWait {
                lock: self,
                node: &node,
            };
            let until = wait.deadline().map_or(end, |deadline| deadline.min(end));
            let parked = self
                .parker
                .park(node.key(), || node.is_linked_or_waiting(), Some(until));
            drop(outside);
            if parked == Park::TimedOut {
                if wait.deadline().is_some_and(|deadline| deadline <= end) {
                    // Not queued: nothing to give back. One last try, as a timed request
                    // that is granted at its deadline would be.
                    let held = match self.barge_once(parts, one, &node, &mut None, false, who) {
                        Barge::Held(place) => Some(place),
                        Barge::Outside | Barge::Refused => None,
                    };
                    self.count_wait(since, held.is_some());
                    return held;
                }
                // The window closed (loom makes every timed park time out at once: this
                // ends its model after one wait outside).
                window = Some(now);
            }
            spins = 0;
        }
    }

    /// Takes `node` out of the outside list, or waits until the releasing thread that took it
    /// out has let it go: then nobody else refers to it but the `notified` list, if it was
    /// notified.
    pub(super) fn leave_outside(&self, node: &WaitNode) {
        if node.state() == WAITING && self.lock_state().outside.unlink(node) {
            return;
        }
        wait_unlinked(&self.parker, node);
    }

    /// A request that waited outside the tree (for `parts`) gives up: its node leaves the
    /// list, or, if it was notified, it passes the notification on.
    pub(super) fn give_up_outside(&self, node: &WaitNode, parts: &[Part]) {
        self.leave_outside(node);
        self.pass_on(node, parts);
    }

    /// A request (for `parts`) that was notified and is not back gives up: the requests it was
    /// notified in place of are notified now.
    pub(super) fn pass_on(&self, node: &WaitNode, parts: &[Part]) {
        if Outside::is_out(node) {
            let mut wake = WakeList::new(&self.parker);
            let mut state = self.lock_state();
            if state.outside.returned(node) {
                state.pass_on(parts, &mut wake);
            }
        }
    }

    /// Acquires every range of `set` as one request of `who`; returns its `seq` once granted
    /// (0 for an empty set, which holds nothing).
    pub(super) fn acquire_set(&self, set: &RangeSet, wait: Wait, who: Requester) -> Option<u64> {
        if set.is_empty() {
            return Some(0);
        }
        match self.acquire_request(set.parts(), false, wait, who)? {
            Place::Tree(seq) => Some(seq),
            Place::Empty | Place::Slot(_) => unreachable!("a set is held in the tree"),
        }
    }

    /// Queues a request of `who` for `parts` (sorted, disjoint, not empty) and waits as `wait`
    /// says; returns its `seq` once granted. `since`: when it began to wait, if it did already
    /// (outside the tree).
    #[inline]
    pub(super) fn acquire_parts(
        &self,
        parts: &[Part],
        wait: Wait,
        who: Requester,
        mut since: Since,
    ) -> Option<u64> {
        // Set up only if the request waits (under the mutex, then), and declared first: it
        // outlives the tree's reference to it.
        let node;
        let mut tree = self.lock_tree(parts.len());
        let blocking = match tree.queue_granted(parts, matches!(wait, Wait::Never), who) {
            Ok(seq) => return Some(seq),
            Err(_) if matches!(wait, Wait::Never) => return None,
            Err(blocking) => blocking,
        };
        #[cfg(feature = "deadlock_detection")]
        let mut tree = self.refuse_reentry(tree, parts, who);
        node = WaitNode::new();
        let seq = tree.queue(parts, blocking, Some(&node), who);
        drop(tree);
        since.start();
        let granted = self.wait_for_grant(&node, parts, seq, wait.deadline());
        self.count_wait(since, granted);
        granted.then_some(seq)
    }

    /// Waits until the request of `node` (`parts`, `seq`) is granted (true) or `deadline`
    /// passes (false: the request has left the queue).
    pub(super) fn wait_for_grant(
        &self,
        node: &WaitNode,
        parts: &[Part],
        seq: u64,
        deadline: Option<Instant>,
    ) -> bool {
        // If this thread unwinds while queued, the request leaves the queue first, so the tree
        // never keeps a pointer to a dead stack frame.
        let pending = Pending {
            lock: self,
            node,
            parts,
            seq,
        };
        let mut watch = Watch::new();
        loop {
            if node.state() == GRANTED {
                break;
            }
            // Next in line: the holder is likely running and its release near, so watch for
            // the grant (telling the releasing thread that it need not wake this one). Further
            // back, sleep at once and leave the CPU to the holders.
            if node.blocking() <= 1 && watch.go_on(node) {
                continue;
            }
            if watch.stop(node) == GRANTED {
                break;
            }
            let parked = self
                .parker
                .park(node.key(), || node.is_linked_or_waiting(), deadline);
            if parked == Park::TimedOut {
                core::mem::forget(pending);
                return self.give_up(node);
            }
        }
        core::mem::forget(pending);
        true
    }

    /// Settles a request whose owner stops waiting for it: true if it was granted after all
    /// (the owner now holds it), false if it left the queue.
    pub(super) fn give_up(&self, node: &WaitNode) -> bool {
        let mut wake = WakeList::new(&self.parker);
        let granted = self.lock_state().settle(node, &mut wake);
        // First: the node may be in a releasing thread's list (it was granted meanwhile), and
        // a task's waker that panics below must not let its owner free it while it is linked.
        wait_unlinked(&self.parker, node);
        // Empty if `granted`: a panic from these wakes leaves the caller nothing to release.
        wake.wake_all();
        granted
    }

    /// Releases what `hold` holds.
    #[inline(always)]
    pub(super) fn release(&self, hold: &Hold) {
        match hold.place() {
            Place::Empty => {}
            Place::Slot(i) => self.release_slot(i, hold.start, hold.last),
            Place::Tree(seq) => self.leave(hold.start, hold.last, seq),
        }
    }

    /// Releases granted request `seq` for `parts`, wherever it is now: a request of one range
    /// may have moved to a slot when the queue drained; a set stays in the tree.
    pub(super) fn release_request(&self, parts: &[Part], seq: u64) {
        if let [part] = parts {
            self.leave(part.start, part.last, seq);
        } else {
            let mut wake = WakeList::new(&self.parker);
            self.lock_state().leave(parts, seq, &mut wake);
            wake.wake_all();
        }
    }

    /// Removes request `seq` (at `[start, last]`) from the tree and wakes whoever it was the
    /// last blocker of.
    #[inline(never)]
    pub(super) fn leave(&self, start: u64, last: u64, seq: u64) {
        let mut wake = WakeList::new(&self.parker);
        {
            let mut tree = self.lock_state();
            if tree.leave_one(start, seq, &mut wake) {
                // It may hold a slot bit too: it came from the tree to a slot, and back.
                if let Some(i) = self.moved_slot(&tree, seq) {
                    self.vacate(&mut tree, i);
                }
            } else {
                // Moved to a slot when the queue drained.
                let i = tree.slot_of(seq);
                self.vacate(&mut tree, i);
                tree.notify_outside(start, last, &mut wake);
            }
        }
        wake.wake_all();
    }

    /// Turns the write request of `hold` into a read request.
    pub(super) fn downgrade_hold(&self, hold: &Hold) {
        match hold.place() {
            Place::Empty => {}
            Place::Slot(i) => self.downgrade_slot(i, hold.start, hold.last),
            Place::Tree(seq) => {
                let part = Part {
                    start: hold.start,
                    last: hold.last,
                    mode: Mode::Write,
                };
                let mut wake = WakeList::new(&self.parker);
                {
                    let mut tree = self.lock_state();
                    if tree.downgrade(part, seq, &mut wake) {
                        if let Some(i) = self.moved_slot(&tree, seq) {
                            self.clear_slot_bits(writer(i));
                        }
                    } else {
                        let i = tree.slot_of(seq);
                        self.clear_slot_bits(writer(i));
                        tree.notify_outside(hold.start, hold.last, &mut wake);
                    }
                }
                wake.wake_all();
            }
        }
    }
}

/// Same-thread requests (feature `deadlock_detection`).
#[cfg(feature = "deadlock_detection")]
impl RangeRwLock {
    /// Under the internal mutex (`tree`), as a request of `who` for `parts` is about to wait:
    /// if it is a thread's, without deadline, and conflicts with a range that thread holds on
    /// this lock, it would wait for itself for ever, so this lets the mutex go and panics.
    /// Ranges held through owned guards (which may have moved to another thread) do not count,
    /// nor do async requests (another branch of the task may release).
    pub(super) fn refuse_reentry<'a>(
        &'a self,
        mut tree: Tree<'a>,
        parts: &[Part],
        who: Requester,
    ) -> Tree<'a> {
        if who.is_task() || who.is_timed() {
            return tree;
        }
        let mine = |by: Requester| by.owner() == who.owner() && !by.is_owned();
        let mut found = None;
        if let Some(slots) = self.slot_requests() {
            for part in parts {
                for &(held, by) in slots.iter().flatten() {
                    let overlap = held.start <= part.last && part.start <= held.last;
                    if overlap && mine(by) && part.mode.conflicts(held.mode) {
                        found = found.or(Some((held, by, *part)));
                    }
                }
            }
        } else {
            for part in parts {
                let tree = &mut tree.tree;
                tree.for_each_overlap(part.start, part.last, |start, last, _, entry| {
                    let held = entry.node.is_none();
                    if held && mine(entry.who) && part.mode.conflicts(entry.mode()) {
                        let mode = entry.mode();
                        found = Some((Part { start, last, mode }, entry.who, *part));
                    }
                    found.is_none()
                });
                if found.is_some() {
                    break;
                }
            }
        }
        if let Some((held, by, requested)) = found {
            drop(tree);
            waits_for_itself(held, by, requested, who);
        }
        tree
    }
}

/// The panic of [`RangeRwLock::refuse_reentry`].
#[cfg(feature = "deadlock_detection")]
#[cold]
#[inline(never)]
fn waits_for_itself(held: Part, by: Requester, requested: Part, who: Requester) -> ! {
    let at = |who: Requester| match who.location() {
        Some(at) => at.to_string(),
        None => "an unknown place".to_string(),
    };
    panic!(
        "range lock: this thread requests {requested} (at {}), which conflicts with {held} that \
         it holds on the same lock (taken at {}): it would wait for itself for ever",
        at(who),
        at(by)
    );
}

/// Barging locks: a request waiting outside the tree; dropping it takes the node out.
struct OutsideWait<'a> {
    lock: &'a RangeRwLock,
    node: &'a WaitNode,
}

impl Drop for OutsideWait<'_> {
    fn drop(&mut self) {
        self.lock.leave_outside(self.node);
    }
}

/// Barging locks: a request of this thread's that may be out with a notification (see
/// `Outside`): it must come back under the internal mutex before the request ends.
struct Notified<'a> {
    lock: &'a RangeRwLock,
    node: &'a WaitNode,
    parts: &'a [Part],
}

impl Notified<'_> {
    /// The request took its ranges, or queues in the tree: its notification is used.
    fn back(&self) {
        if Outside::is_out(self.node) {
            self.lock.lock_state().outside.returned(self.node);
        }
    }
}

impl Drop for Notified<'_> {
    /// The request ended without taking its ranges: it passes a notification on.
    fn drop(&mut self) {
        self.lock.pass_on(self.node, self.parts);
    }
}

/// Barging locks: tries on a conflicting slot holder before waiting outside the tree, with
/// pauses only (about a microsecond in all). Yielding or spinning longer made the longest wait
/// on a hot range with more threads than cores two to five times longer (runnable spinners
/// keep a preempted holder off the CPUs) for no gain in throughput (`hot_range` example and
/// `cargo bench -p rangelock-benches --bench lock -- barging`).
#[cfg(not(rangelock_loom))]
const BARGE_SPINS: u32 = 4;
#[cfg(rangelock_loom)]
const BARGE_SPINS: u32 = 0;

/// One step of a barging request's spinning: a few pauses, twice as many each time.
fn barge_backoff(spins: u32) {
    for _ in 0..(1 << spins) {
        core::hint::spin_loop();
    }
}

/// A blocking waiter's watch for its grant: at most [`WATCH`] in all, while it is next in line,
/// with the node's `SPINNING` bit set for as long as it lasts. (Under loom, one look, with the
/// bit set around a yield, so that the models explore a grant racing each step of it.)
struct Watch {
    /// Whether the node's `SPINNING` bit is set.
    on: bool,
    /// Spins so far.
    spins: u32,
    /// When the watch ends (read from the clock on the first spin that reaches `WATCH_SPINS`).
    #[cfg(not(rangelock_loom))]
    until: Option<Instant>,
}

impl Watch {
    fn new() -> Self {
        Watch {
            on: false,
            spins: 0,
            #[cfg(not(rangelock_loom))]
            until: None,
        }
    }

    /// One step of watching `node`, if the watch has not run out: true if the caller should
    /// look at the state again.
    #[cfg(not(rangelock_loom))]
    fn go_on(&mut self, node: &WaitNode) -> bool {
        if !self.on {
            if self.spins > 0 {
                return false; // the watch ran out (or was stopped) before
            }
            node.start_spinning();
            self.on = true;
        }
        self.spins += 1;
        if self.spins % WATCH_SPINS == 0 {
            let now = Instant::now();
            let until = *self.until.get_or_insert_with(|| now + WATCH);
            if now >= until {
                return false;
            }
        }
        core::hint::spin_loop();
        true
    }

    #[cfg(rangelock_loom)]
    fn go_on(&mut self, node: &WaitNode) -> bool {
        if self.spins > 0 {
            return false;
        }
        self.spins = 1;
        node.start_spinning();
        self.on = true;
        crate::sync::spin_hint();
        true
    }

    /// Ends the watch, before the owner parks: returns the node's state, read as the bit was
    /// cleared (so that a final state here was stored by a thread that saw the bit).
    fn stop(&mut self, node: &WaitNode) -> u8 {
        if core::mem::take(&mut self.on) {
            node.stop_spinning()
        } else {
            node.state()
        }
    }
}

/// A queued request whose thread may unwind before it is granted: dropping it settles the
/// request (and releases it if it was granted meanwhile).
pub(super) struct Pending<'a> {
    lock: &'a RangeRwLock,
    node: &'a WaitNode,
    parts: &'a [Part],
    seq: u64,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if self.lock.give_up(self.node) {
            self.lock.release_request(self.parts, self.seq);
        }
    }
}
