//! Waiting: the node a waiting request owns, the wake list a releasing thread builds, and the
//! hand-off between them.
//!
//! A request that has to wait owns a [`WaitNode`] (on its thread's stack, or inside its pinned
//! future), and its entries in the tree point at it. Under the lock's internal mutex, a thread
//! that removes the last conflict ahead of a request *links* the node into its own
//! [`WakeList`] (state `LINKED_*`). After dropping the mutex it walks the list: for each node
//! it takes what it needs to wake the owner (a task's `Waker`, or the node's address as a
//! parking key), stores the final state (`GRANTED`, or `NOTIFIED`) and only then wakes. From
//! that store on the node may be gone, so nothing touches it after.
//!
//! Barging locks also keep waiting requests *outside* the tree, in a list of nodes (the state's
//! `outside`): a request that conflicts and is still within its hand-off window links its node
//! there instead of queueing, and a release that removes an overlapping request links it into
//! its wake list to be `NOTIFIED`, after which the owner tries again.
//!
//! The owner, in turn, never frees a linked node: if it stops waiting for any reason of its
//! own (a timeout, a cancelled future), it first waits out the `LINKED_*` state, which lasts
//! only as long as the releasing thread takes to reach the node in its list.
//!
//! A blocking waiter that watches its state for the grant, rather than sleeping, sets the
//! [`SPINNING`] bit beside the state; the releasing thread reads it in the same atomic swap that
//! stores the final state, and does not unpark a thread that is watching. Before it parks, the
//! owner clears the bit with a read-modify-write of the same word: either the swap came first
//! (and the owner reads the final state, and does not park), or the clear did (and the
//! releasing thread unparks it). No third order exists on one atomic.

use core::marker::PhantomPinned;
use core::ptr::NonNull;
use core::task::Waker;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use intrusive_collections::linked_list::AtomicLink;
use intrusive_collections::{intrusive_adapter, LinkedList, UnsafeRef};

use crate::sync::{enter_waking, AtomicU8, HintUsize, Ordering, Parker, UnsafeCell};

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

impl core::fmt::Display for Part {
    /// `read 0..=9` or `write 0..=9`.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mode = match self.mode {
            Mode::Read => "read",
            Mode::Write => "write",
        };
        write!(f, "{mode} {:?}", self.start..=self.last)
    }
}

/// Queued in the tree, waiting for the conflicting requests ahead of it; or (barging locks) in
/// the list of requests waiting outside the tree.
pub(crate) const WAITING: u8 = 0;
/// In a releasing thread's wake list, to be granted: that thread owns the waker.
pub(crate) const LINKED_GRANT: u8 = 1;
/// In a releasing thread's wake list, to be notified: that thread owns the waker.
pub(crate) const LINKED_NOTIFY: u8 = 2;
/// Granted: the request holds its ranges.
pub(crate) const GRANTED: u8 = 3;
/// A request that waited outside the tree was told that a request in its way left: it is in no
/// list, and its owner tries again (barging locks).
pub(crate) const NOTIFIED: u8 = 4;
/// Beside `WAITING` or `LINKED_*`: the owner (a blocking thread) watches the state and is not
/// parked, so a releasing thread need not unpark it. Set and cleared only by the owner, with
/// read-modify-writes; a link keeps it; the final state clears it.
pub(crate) const SPINNING: u8 = 8;

/// What a waiting request's entries point at.
pub(crate) struct WaitNode {
    link: AtomicLink,
    /// Barging locks: in the outside list's `notified` list from the moment the request is
    /// notified until its owner is back under the internal mutex (see [`Outside`]).
    notified: AtomicLink,
    state: AtomicU8,
    /// Conflicting entries ahead of the request's entries. Changed only under the internal
    /// mutex; read without it as a hint (how close the request is to the head of its queue).
    blocking: HintUsize,
    /// Set under the mutex when the request is queued, read under the mutex after.
    fixed: UnsafeCell<Fixed>,
    /// A task's waker. Under the mutex while `WAITING`; the releasing thread's while linked.
    waker: UnsafeCell<Option<Waker>>,
    /// Entries point here: the node must not move while queued.
    _pinned: PhantomPinned,
}

/// A waiting request's identity.
pub(crate) struct Fixed {
    /// Its queue key (tie-break of its entries).
    pub(crate) seq: u64,
    /// Its ranges, owned by whoever owns the node and alive as long as it.
    pub(crate) parts: *const [Part],
}

// SAFETY: `fixed` and `waker` are accessed only under the lock's internal mutex, or by the one
// thread that holds the node in its wake list (see the module docs); `parts` points at data
// that is `Sync` (plain integers) and lives as long as the node; the rest are atomics.
unsafe impl Sync for WaitNode {}
// SAFETY: a node moves between threads only inside its future (which may be polled or dropped
// on any thread, queued or not); whichever thread owns it, `fixed` and `waker` are touched only
// under the internal mutex or by the one thread that has the node in its wake list, `Waker` is
// `Send`, and `parts` points at `Sync` data that lives as long as the node.
unsafe impl Send for WaitNode {}

impl WaitNode {
    pub(crate) fn new() -> Self {
        WaitNode {
            link: AtomicLink::new(),
            notified: AtomicLink::new(),
            state: AtomicU8::new(WAITING),
            blocking: HintUsize::new(0),
            fixed: UnsafeCell::new(Fixed {
                seq: 0,
                parts: core::ptr::slice_from_raw_parts(core::ptr::null(), 0),
            }),
            waker: UnsafeCell::new(None),
            _pinned: PhantomPinned,
        }
    }

    /// The parking key of the thread that owns this node: its address.
    pub(crate) fn key(&self) -> usize {
        std::ptr::from_ref::<WaitNode>(self) as usize
    }

    pub(crate) fn state(&self) -> u8 {
        // Acquire: a `GRANTED` read here sees everything the releasing thread did before.
        self.state.load(Ordering::Acquire) & !SPINNING
    }

    /// The owner, about to watch for its grant: a releasing thread need not unpark it.
    pub(crate) fn start_spinning(&self) {
        self.state.fetch_or(SPINNING, Ordering::Relaxed);
    }

    /// The owner, about to park (or to stop waiting): a releasing thread must unpark it from
    /// now on. Returns the state (without the bit), read in the same step: if it is already
    /// final, the releasing thread saw the bit and did not, or will not, unpark it.
    pub(crate) fn stop_spinning(&self) -> u8 {
        // Acquire, as `state()`.
        self.state.fetch_and(!SPINNING, Ordering::Acquire) & !SPINNING
    }

    /// Under the internal mutex, on a node in no list (new, or `NOTIFIED`): back to `WAITING`,
    /// before it is queued or linked outside again.
    pub(crate) fn reset(&self) {
        debug_assert!(matches!(
            self.state.load(Ordering::Relaxed),
            WAITING | NOTIFIED
        ));
        // (Only blocking requests in the tree spin, and never while in no list.)
        self.state.store(WAITING, Ordering::Relaxed);
    }

    pub(crate) fn is_linked_or_waiting(&self) -> bool {
        matches!(self.state(), WAITING | LINKED_GRANT | LINKED_NOTIFY)
    }

    /// Conflicting entries ahead (a hint outside the internal mutex).
    pub(crate) fn blocking(&self) -> usize {
        self.blocking.load(Ordering::Relaxed)
    }

    /// Under the internal mutex.
    pub(crate) fn set_blocking(&self, n: usize) {
        self.blocking.store(n, Ordering::Relaxed);
    }

    /// Under the internal mutex, before the node's entries go into the tree (or the node into
    /// the outside list).
    pub(crate) fn prepare(&self, seq: u64, parts: &[Part]) {
        // SAFETY: under the internal mutex, and the node is not queued yet: nobody else looks.
        self.fixed
            .with_mut(|f| unsafe { *f = Fixed { seq, parts } });
    }

    /// Under the internal mutex, while the node is queued.
    pub(crate) fn seq(&self) -> u64 {
        // SAFETY: `fixed` is written only under the mutex, before the node is queued.
        self.fixed.with(|f| unsafe { (*f).seq })
    }

    /// Under the internal mutex, while the node is queued: its ranges.
    pub(crate) fn parts(&self) -> &[Part] {
        // SAFETY: `parts` was set from a slice that lives as long as the node (see `Fixed`).
        self.fixed.with(|f| unsafe { &*(*f).parts })
    }

    /// Under the internal mutex, while the node is `WAITING` or not queued yet: makes `waker`
    /// the one to wake when the request is granted or notified, unless the one it holds
    /// already wakes the same task. Returns the waker left over (the old one, or `waker`), for
    /// the caller to drop once it has released the mutex.
    ///
    /// The caller clones the task's waker before it takes the mutex: a waker's `clone` and
    /// `drop` are user code, and a panic in them must find the lock's state as it was.
    /// `will_wake` compares pointers and runs no user code.
    #[must_use = "drop the left-over waker after releasing the internal mutex"]
    pub(crate) fn set_waker(&self, waker: Waker) -> Option<Waker> {
        debug_assert_eq!(self.state.load(Ordering::Relaxed), WAITING);
        // SAFETY: while `WAITING`, the waker is accessed only under the internal mutex, which
        // the caller holds (module docs); no releasing thread has the node in its list.
        self.waker.with_mut(|w| unsafe {
            match &*w {
                Some(old) if old.will_wake(&waker) => Some(waker),
                _ => (*w).replace(waker),
            }
        })
    }
}

/// A node in the tree: the pointer that entries of a waiting request hold.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct NodeRef(NonNull<WaitNode>);

// SAFETY: a `NodeRef` is only dereferenced under the internal mutex (or by the thread that
// linked it), while the node's owner keeps it alive (it removes or claims its entries under the
// mutex before it lets the node go); `WaitNode` is `Sync`.
unsafe impl Send for NodeRef {}

impl NodeRef {
    pub(crate) fn new(node: &WaitNode) -> Self {
        NodeRef(NonNull::from(node))
    }

    /// The node.
    ///
    /// # Safety
    ///
    /// The caller holds the internal mutex and the node's entries are still in the tree (or
    /// the node is in the caller's wake list): then its owner has not let it go.
    pub(crate) unsafe fn get<'a>(self) -> &'a WaitNode {
        // SAFETY: the caller's contract.
        unsafe { self.0.as_ref() }
    }

    /// The node's address: a name for its request while it is queued (never dereferenced).
    #[cfg(feature = "deadlock_detection")]
    pub(crate) fn addr(self) -> usize {
        self.0.as_ptr() as usize
    }
}

intrusive_adapter!(pub(crate) WakeAdapter = UnsafeRef<WaitNode>: WaitNode { link => AtomicLink });
intrusive_adapter!(pub(crate) NotifiedAdapter = UnsafeRef<WaitNode>: WaitNode { notified => AtomicLink });

/// Barging locks: the requests waiting outside the tree, under the internal mutex. A node is
/// in `list` while `WAITING` and not queued in the tree; it leaves by being linked into a wake
/// list (`notify`) or by its owner (`unlink`).
///
/// A notified request stays in `notified` until its owner is back under the mutex
/// ([`returned`](Self::returned)): it then holds its ranges, waits in the list again, queues in
/// the tree, or gives up and passes the notification on. Meanwhile a listed writer whose range
/// covers a notified request's range is not notified (it is *covered*): whatever still stops
/// the notified request stops it too, and if the notified request gets its range, the writer
/// waits for it anyway. So a hot range wakes one waiter per release, not all of them, and a
/// release need not notify anybody while every listed request is covered (`needs_parked`).
pub(crate) struct Outside {
    list: LinkedList<WakeAdapter>,
    len: usize,
    notified: LinkedList<NotifiedAdapter>,
}

/// How many of the oldest notified requests a listed one is compared with: enough for the
/// writers of a hot range (which one notified request covers), and it keeps `notify` linear in
/// the list when thousands of requests wait. Not looking further only wakes more requests.
pub(crate) const COVER_SCAN: usize = 8;

/// With more listed requests than this, [`Outside::needs_parked`] says yes without comparing
/// them with the notified ones, so that a release stays short when many wait.
const PARKED_SCAN: usize = 16;

/// Whether `listed` is covered by `notified` (see [`Outside`]): both are single ranges,
/// `listed` is a writer and its range contains `notified`'s.
fn covers(listed: &[Part], notified: &[Part]) -> bool {
    match (listed, notified) {
        ([l], [n]) => l.mode == Mode::Write && l.start <= n.start && n.last <= l.last,
        _ => false,
    }
}

impl Outside {
    pub(crate) fn new() -> Self {
        Outside {
            list: LinkedList::new(WakeAdapter::new()),
            len: 0,
            notified: LinkedList::new(NotifiedAdapter::new()),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether a notified request has not come back yet.
    pub(crate) fn any_notified(&self) -> bool {
        !self.notified.is_empty()
    }

    /// Under the internal mutex, feature `stats`: whether a request waiting outside the tree
    /// (listed, or notified and not back) conflicts with `parts`. A request is known by its
    /// ranges' address: a node whose ranges are `parts` (the caller's own) does not count.
    #[cfg(feature = "stats")]
    pub(crate) fn any_conflict(&self, parts: &[Part]) -> bool {
        let waiting = self.list.iter().chain(self.notified.iter());
        let others = waiting.filter(|node| !core::ptr::eq(node.parts(), parts));
        others.into_iter().any(|node| {
            node.parts().iter().any(|l| {
                parts
                    .iter()
                    .any(|p| p.start <= l.last && l.start <= p.last && p.mode.conflicts(l.mode))
            })
        })
    }

    /// Under the internal mutex: adds `node` (in no list, `WAITING`) for `parts`.
    pub(crate) fn push(&mut self, node: &WaitNode, parts: &[Part]) {
        debug_assert_eq!(node.state.load(Ordering::Relaxed), WAITING);
        debug_assert!(
            !node.notified.is_linked(),
            "a notified request is back first"
        );
        node.prepare(0, parts);
        // SAFETY: the node stays alive while in the list: its owner takes it out (`unlink`),
        // or waits out a wake list that took it (`wait_unlinked`), before it lets it go.
        self.list.push_back(unsafe { UnsafeRef::from_raw(node) });
        self.len += 1;
    }

    /// Under the internal mutex: takes `node` out if it is still in the list (true).
    pub(crate) fn unlink(&mut self, node: &WaitNode) -> bool {
        if node.state() != WAITING || !node.link.is_linked() {
            return false;
        }
        // SAFETY: a `WAITING` node whose link is in use is in this list (a node in the tree
        // is never linked anywhere while `WAITING`), and we hold the mutex that guards it.
        let mut cursor = unsafe { self.list.cursor_mut_from_ptr(node) };
        cursor.remove();
        self.len -= 1;
        true
    }

    /// Under the internal mutex, by the owner of `node`: its request, if it was notified and
    /// had not come back yet, is back (true). The caller then holds the request's ranges,
    /// waits again, queues it, or passes the notification on (`State::pass_on`).
    pub(crate) fn returned(&mut self, node: &WaitNode) -> bool {
        if !node.notified.is_linked() {
            return false;
        }
        // SAFETY: only `notify` links `notified`, into this list, and we hold the mutex that
        // guards it.
        let mut cursor = unsafe { self.notified.cursor_mut_from_ptr(node) };
        cursor.remove();
        true
    }

    /// Whether a notified request has not come back yet: for the owner, outside the mutex,
    /// once it has seen its node `NOTIFIED` (nobody else changes it from then on).
    pub(crate) fn is_out(node: &WaitNode) -> bool {
        node.notified.is_linked()
    }

    /// Under the internal mutex: whether a slot holder's release must look at the list
    /// (`PARKED`): some listed request is not covered by a notified one. With many listed,
    /// it says yes without looking.
    pub(crate) fn needs_parked(&self) -> bool {
        match self.len {
            0 => false,
            _ if self.notified.is_empty() || self.len > PARKED_SCAN => true,
            _ => self
                .list
                .iter()
                .any(|node| !covered_by(&self.notified, node.parts())),
        }
    }

    /// Under the internal mutex: moves every request with a part overlapping `[start, last]`
    /// into `wake`, to be notified, unless `blocked(parts)` says that something still in the
    /// way would only send it back (its entry leaving will look at it again), or it is covered
    /// by a request notified earlier (which takes the notification for it).
    pub(crate) fn notify(
        &mut self,
        start: u64,
        last: u64,
        blocked: impl Fn(&[Part]) -> bool,
        wake: &mut WakeList<'_>,
    ) {
        let mut cursor = self.list.front_mut();
        while let Some(node) = cursor.get() {
            let parts = node.parts();
            let hit = parts.iter().any(|p| p.start <= last && start <= p.last)
                && !blocked(parts)
                && !covered_by(&self.notified, parts);
            if hit {
                let node = cursor.remove().expect("the cursor is on a node");
                self.len -= 1;
                wake.link(&node, true);
                // The node stays alive while here: its owner takes it out (`returned`) under
                // the mutex before it lets it go.
                self.notified.push_back(node);
            } else {
                cursor.move_next();
            }
        }
    }
}

/// Whether one of the oldest [`COVER_SCAN`] requests in `notified` covers `parts`.
fn covered_by(notified: &LinkedList<NotifiedAdapter>, parts: &[Part]) -> bool {
    notified
        .iter()
        .take(COVER_SCAN)
        .any(|n| covers(parts, n.parts()))
}

/// Nodes granted or notified under the internal mutex, to be woken after it is dropped: by
/// [`wake_all`](Self::wake_all), or when the list is dropped (also while unwinding, so that no
/// granted request is left asleep). A task's waker that panics does not stop the others: its
/// panic goes on once every node is woken.
pub(crate) struct WakeList<'a> {
    list: LinkedList<WakeAdapter>,
    parker: &'a Parker,
}

impl<'a> WakeList<'a> {
    pub(crate) fn new(parker: &'a Parker) -> Self {
        WakeList {
            list: LinkedList::new(WakeAdapter::new()),
            parker,
        }
    }

    /// Under the internal mutex: links `node` (which must be `WAITING`) to be granted, or, with
    /// `notify`, to be told that nothing is ahead of it any more.
    pub(crate) fn link(&mut self, node: &WaitNode, notify: bool) {
        debug_assert_eq!(node.state.load(Ordering::Relaxed) & !SPINNING, WAITING);
        let linked = if notify { LINKED_NOTIFY } else { LINKED_GRANT };
        // An RMW, not a store: the owner may set or clear `SPINNING` meanwhile, and its bit
        // must survive (`WAITING` is 0, so this sets exactly `linked`).
        node.state.fetch_or(linked, Ordering::Relaxed);
        // SAFETY: the node stays alive while linked: its owner waits out `LINKED_*` before it
        // lets the node go (module docs), and only this list links it (it was `WAITING`).
        self.list.push_front(unsafe { UnsafeRef::from_raw(node) });
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The linked nodes, under the internal mutex.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &WaitNode> {
        self.list.iter()
    }

    /// After the internal mutex is dropped: hands every node its final state and wakes its
    /// owner.
    pub(crate) fn wake_all(self) {
        drop(self);
    }
}

impl Drop for WakeList<'_> {
    fn drop(&mut self) {
        // A task's waker is user code: if one panics, every other node still gets its final
        // state and its owner is still woken; the first panic then goes on (unless this thread
        // is unwinding already, which a second panic would turn into an abort).
        let mut panic = None;
        while let Some(node) = self.list.pop_front() {
            let node: &WaitNode = &node;
            let final_state = match node.state() {
                LINKED_GRANT => GRANTED,
                _ => NOTIFIED,
            };
            // SAFETY: while linked, the waker is this thread's alone (module docs).
            let waker = node.waker.with_mut(|w| unsafe { (*w).take() });
            let key = node.key();
            // Release: the owner sees the grant, and everything before it, with `state()`.
            // From here on the node may be freed: only `waker`, `key` and what the swap read
            // are used.
            let was = node.state.swap(final_state, Ordering::Release);
            match waker {
                Some(waker) => {
                    let _waking = enter_waking();
                    let woken = catch_unwind(AssertUnwindSafe(|| waker.wake()));
                    if let Err(payload) = woken {
                        // A later payload is forgotten, not dropped: its `Drop` is user code
                        // too, and could panic in the middle of the list.
                        match panic {
                            None => panic = Some(payload),
                            Some(_) => core::mem::forget(payload),
                        }
                    }
                }
                // The owner watches its state and sees this one (see the module docs).
                None if was & SPINNING != 0 => {}
                None => self.parker.unpark_one(key),
            }
            // An owner may also wait for the node to be let go (`wait_unlinked`).
            self.parker.done(key);
        }
        if let Some(payload) = panic {
            if std::thread::panicking() {
                // Dropping it could panic while unwinding, which aborts.
                core::mem::forget(payload);
            } else {
                resume_unwind(payload);
            }
        }
    }
}

/// Waits until `node` is not in anybody's wake list, so that its owner may let it go.
pub(crate) fn wait_unlinked(parker: &Parker, node: &WaitNode) {
    let linked = || matches!(node.state(), LINKED_GRANT | LINKED_NOTIFY);
    let mut spins = 0;
    while linked() {
        parker.wait_while(node.key(), linked, &mut spins);
    }
}
