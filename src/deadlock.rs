//! Finding deadlocks among range locks (feature `deadlock_detection`).
//!
//! [`check_deadlock`] returns every cycle of threads (and tasks) that wait for each other on
//! [`RangeRwLock`]s, across one lock or several. Call it from a watchdog thread, as with
//! `parking_lot`'s feature of the same name; each [`DeadlockedThread`] of a cycle says what it
//! waits for, behind whom, and what it holds, and prints as a readable report.
//!
//! The edges follow the lock's own rule. A request waits for every conflicting request ahead
//! of it in the queue of its lock, granted **or waiting**: a reader behind a queued writer waits
//! for that writer even while only readers hold the range. So range locks deadlock in ways that
//! plain locks do not, such as two threads and one lock, with ranges taken in ascending order:
//!
//! - thread 1 holds `0..=2`;
//! - thread 2 asks for `0..=3` and queues behind it;
//! - thread 1 asks for `3..=5`, which does not overlap what it holds, and queues behind thread
//!   2's request, which waits for thread 1: for ever.
//!
//! ```
//! use rangelock::RangeRwLock;
//! use std::thread;
//! use std::time::Duration;
//!
//! static LOCK: RangeRwLock = RangeRwLock::fifo();
//!
//! thread::spawn(|| {
//!     let _held = LOCK.write(0..=2);
//!     // Until thread 2's request for 0..=3 is queued (a `try_` request fails behind it).
//!     while let Some(g) = LOCK.try_read(3..=3) {
//!         drop(g);
//!         thread::yield_now();
//!     }
//!     let _more = LOCK.write(3..=5); // behind 0..=3, which waits for 0..=2: a deadlock
//! });
//! thread::spawn(|| {
//!     while !LOCK.is_locked(0..=2) {
//!         thread::yield_now();
//!     }
//!     drop(LOCK.write(0..=3));
//! });
//!
//! // The watchdog.
//! let cycle = loop {
//!     if let Some(cycle) = rangelock::deadlock::check_deadlock().pop() {
//!         break cycle;
//!     }
//!     thread::sleep(Duration::from_millis(10));
//! };
//! for thread in &cycle {
//!     eprintln!("{thread}");
//! }
//! assert_eq!(cycle.len(), 2);
//! let first = cycle.iter().find(|t| t.requested() == (3..=5)).unwrap();
//! assert_eq!(first.held()[0].range(), 0..=2);
//! ```
//!
//! The report of such a cycle reads:
//!
//! ```text
//! thread ThreadId(2) waits for write 3..=5 on lock 0x55f1e1c0a180 (requested at src/main.rs:13:22)
//!   behind write 0..=3 that thread ThreadId(3) waits for (requested at src/main.rs:19:16)
//!   and holds write 0..=2 on lock 0x55f1e1c0a180 (taken at src/main.rs:8:23)
//! thread ThreadId(3) waits for write 0..=3 on lock 0x55f1e1c0a180 (requested at src/main.rs:19:16)
//!   behind write 0..=2 that thread ThreadId(2) holds (taken at src/main.rs:8:23)
//! ```
//!
//! # What is tracked
//!
//! - A request belongs to the thread that made it; an async request to the task that first
//!   polled it (its waker names the task), and its report says where its future was made. A
//!   guard counts as held by whoever acquired it until it is dropped, even if it was sent to
//!   another thread meanwhile.
//! - Only requests that wait **in the queue** are edges. A barging lock's request that waits
//!   outside the queue within its hand-off window ([`RangeRwLock::barging`]) counts once it has
//!   queued; a deadlock is reported at most one hand-off time late.
//! - A set ([`RangeRwLock::lock_set`]) waits for whatever blocks any of its ranges.
//! - A blocking request with a deadline (`try_*_for`, `try_*_until`) is never deadlocked: it
//!   gives up in time. It waits for nobody in the graph, though what it holds or has queued
//!   still counts.
//! - A task is not always blocked when one of its futures waits: a `select!` or `join!` may go
//!   on in another branch, or drop the future at a timeout. A cycle through a task is a cycle
//!   of waits, which that task may yet break.
//! - [`DeadlockedThread::held`] lists the ranges that requests wait for (on any lock), not
//!   ranges that block nobody.
//!
//! # Same-thread requests
//!
//! A thread that holds a range and requests (blocking, without deadline) a range of the same
//! lock that conflicts with it would wait for itself for ever. With this feature it panics at
//! once instead, naming both ranges. Ranges held through owned guards (`read_arc`,
//! `write_arc`, `lock_set_arc` and their `try_` forms), which exist to be sent to other
//! threads, are left out of that check; async requests too (another branch of the task may
//! release).
//!
//! ```should_panic
//! let lock = rangelock::RangeRwLock::new();
//! let _held = lock.write(0..10);
//! let _again = lock.write(5..6); // panics: "... conflicts with write 0..=9 ..."
//! ```
//!
//! # Cost
//!
//! Every request stores who made it and where (a thread-local load and two stores on the fast
//! path; a tree entry grows from 16 to 32 bytes). A request that waits records what it waits
//! for in a registry shared by all locks, under its lock's internal mutex, and each release
//! that un-counts it updates that record. [`check_deadlock`] copies the registry under its
//! mutex (it never takes a lock's internal mutex, so it cannot deadlock with one) and works
//! on the copy. Without the feature none of this is compiled.
//!
//! Lock order: a lock's internal mutex, then the registry's; nothing takes them the other way.

use core::fmt;
use core::ops::RangeInclusive;
use core::panic::Location;
use std::collections::{BTreeMap, BTreeSet};

use crate::lock::{Mode, NodeRef, Part, Requester};
use crate::sync::{static_mutex, MutexGuard, ThreadId};
use crate::RangeRwLock;

/// At most this many cycles are returned; a graph of many waiters that wait for each other
/// has exponentially many, and the first ones name the threads to look at.
///
/// ```
/// assert!(rangelock::deadlock::check_deadlock().len() <= rangelock::deadlock::MAX_CYCLES);
/// ```
pub const MAX_CYCLES: usize = 1000;

/// Returns every cycle of threads and tasks that wait for each other on range locks, each as
/// the members in wait order: each waits behind the next, and the last behind the first.
/// Empty if nothing is deadlocked.
///
/// Each cycle is a deadlock at the moment of the call, as far as the locks go: every member
/// waits, without deadline, for a request ahead of it that the next member made. (A task may
/// still give up its request: see the [module docs](self).) A thread that waits behind a
/// cycle without being in it is stuck too, but is not listed. At most [`MAX_CYCLES`] cycles
/// are returned.
///
/// Call it from a watchdog thread; it takes a snapshot under one mutex, which the locks take
/// only while they queue or un-count a waiting request.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// // A watchdog, as a service would run it.
/// std::thread::spawn(|| loop {
///     std::thread::sleep(Duration::from_secs(10));
///     for (i, cycle) in rangelock::deadlock::check_deadlock().iter().enumerate() {
///         eprintln!("deadlock #{i}:");
///         for thread in cycle {
///             eprintln!("{thread}");
///         }
///     }
/// });
/// ```
#[must_use]
pub fn check_deadlock() -> Vec<Vec<DeadlockedThread>> {
    let waits: Vec<WaitRecord> = REGISTRY.lock().waits.values().cloned().collect();
    Graph::new(&waits).cycles()
}

/// A member of a deadlocked cycle: the thread (or task) that waits, what it waits for and
/// behind whom, and what it holds. Its `Display` is a readable report.
///
/// ```
/// # let cycles = rangelock::deadlock::check_deadlock();
/// for cycle in cycles {
///     for t in &cycle {
///         eprintln!("{:?} waits for {:?} and holds {} ranges", t.thread_id(), t.requested(), t.held().len());
///     }
/// }
/// ```
#[derive(Clone, Debug)]
pub struct DeadlockedThread {
    thread: ThreadId,
    task: Option<usize>,
    lock: LockId,
    requested: RangeInclusive<u64>,
    write: bool,
    at: Option<&'static Location<'static>>,
    behind: Behind,
    held: Vec<HeldRange>,
}

/// The request ahead that a member waits for: the next member's.
#[derive(Clone, Debug)]
struct Behind {
    range: RangeInclusive<u64>,
    write: bool,
    /// Queued (waiting), or held.
    queued: bool,
    by: Actor,
    at: Option<&'static Location<'static>>,
}

/// A thread, or a task with the thread that polled it.
#[derive(Clone, Copy, Debug)]
struct Actor {
    thread: ThreadId,
    task: Option<usize>,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.task {
            None => write!(f, "thread {:?}", self.thread),
            Some(task) => write!(f, "task {task:#x} (polled on thread {:?})", self.thread),
        }
    }
}

impl DeadlockedThread {
    /// The thread that waits; for an async request, the thread that polled its future when it
    /// queued.
    ///
    /// ```
    /// for cycle in rangelock::deadlock::check_deadlock() {
    ///     let stuck: Vec<std::thread::ThreadId> = cycle.iter().map(|t| t.thread_id()).collect();
    ///     eprintln!("{stuck:?}");
    /// }
    /// ```
    #[must_use]
    pub fn thread_id(&self) -> ThreadId {
        self.thread
    }

    /// For an async request, the task that waits, named by the data pointer of its waker (the
    /// task's address in the usual executors); `None` for a thread.
    ///
    /// ```
    /// for cycle in rangelock::deadlock::check_deadlock() {
    ///     let tasks = cycle.iter().filter(|t| t.task().is_some()).count();
    ///     eprintln!("{tasks} of {} are tasks", cycle.len());
    /// }
    /// ```
    #[must_use]
    pub fn task(&self) -> Option<usize> {
        self.task
    }

    /// The range it waits for. (For a set, the member of the set that waits behind the next
    /// member of the cycle.)
    ///
    /// ```
    /// for cycle in rangelock::deadlock::check_deadlock() {
    ///     for t in cycle {
    ///         let range: std::ops::RangeInclusive<u64> = t.requested();
    ///         eprintln!("{range:?}");
    ///     }
    /// }
    /// ```
    #[must_use]
    pub fn requested(&self) -> RangeInclusive<u64> {
        self.requested.clone()
    }

    /// The lock of the range it waits for.
    ///
    /// ```
    /// static LOCK: rangelock::RangeRwLock = rangelock::RangeRwLock::new();
    /// let ours = rangelock::deadlock::LockId::of(&LOCK);
    /// let on_ours = rangelock::deadlock::check_deadlock()
    ///     .iter()
    ///     .flatten()
    ///     .any(|t| t.lock() == ours);
    /// assert!(!on_ours);
    /// ```
    #[must_use]
    pub fn lock(&self) -> LockId {
        self.lock
    }

    /// Where the request was made: the call of the blocking method, or where the future was
    /// created. (For some of [`SliceRwLock`](crate::SliceRwLock)'s timed methods, a place
    /// inside this crate.)
    ///
    /// ```
    /// for t in rangelock::deadlock::check_deadlock().iter().flatten() {
    ///     if let Some(at) = t.location() {
    ///         eprintln!("requested at {}:{}", at.file(), at.line());
    ///     }
    /// }
    /// ```
    #[must_use]
    pub fn location(&self) -> Option<&'static Location<'static>> {
        self.at
    }

    /// The ranges it holds that requests wait for, with their locks: what it holds up.
    ///
    /// ```
    /// for t in rangelock::deadlock::check_deadlock().iter().flatten() {
    ///     for held in t.held() {
    ///         eprintln!("{:?} holds {:?} on {}", t.thread_id(), held.range(), held.lock());
    ///     }
    /// }
    /// ```
    #[must_use]
    pub fn held(&self) -> &[HeldRange] {
        &self.held
    }

    fn actor(&self) -> Actor {
        Actor {
            thread: self.thread,
            task: self.task,
        }
    }
}

/// Names a `Location` for a report, or says it is unknown.
struct At(Option<&'static Location<'static>>);

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(at) => write!(f, "{at}"),
            None => f.write_str("an unknown place"),
        }
    }
}

fn mode_name(write: bool) -> &'static str {
    if write {
        "write"
    } else {
        "read"
    }
}

impl fmt::Display for DeadlockedThread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.actor())?;
        let what = format!("{} {:?}", mode_name(self.write), self.requested);
        match self.task {
            None => write!(
                f,
                " waits for {what} on lock {} (requested at {})",
                self.lock,
                At(self.at)
            )?,
            Some(_) => write!(
                f,
                " waits in a future made at {} for {what} on lock {}",
                At(self.at),
                self.lock
            )?,
        }
        let behind = &self.behind;
        let (verb, made) = if behind.queued {
            ("waits for", "requested")
        } else {
            ("holds", "taken")
        };
        write!(
            f,
            "\n  behind {} {:?} that {} {verb} ({made} at {})",
            mode_name(behind.write),
            behind.range,
            behind.by,
            At(behind.at)
        )?;
        for (i, held) in self.held.iter().enumerate() {
            let lead = if i == 0 { "and holds" } else { "     and" };
            write!(f, "\n  {lead} {held}")?;
        }
        Ok(())
    }
}

/// A range that a member of a cycle holds, with its lock.
///
/// ```
/// for t in rangelock::deadlock::check_deadlock().iter().flatten() {
///     for held in t.held() {
///         eprintln!("{held}"); // e.g. "write 0..=2 on lock 0x55f1e1c0a180 (taken at src/main.rs:8:23)"
///     }
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldRange {
    lock: LockId,
    range: RangeInclusive<u64>,
    write: bool,
    at: Option<&'static Location<'static>>,
}

impl HeldRange {
    /// The lock.
    ///
    /// ```
    /// # let held: Vec<rangelock::deadlock::HeldRange> = Vec::new();
    /// for h in &held {
    ///     let _: rangelock::deadlock::LockId = h.lock();
    /// }
    /// ```
    #[must_use]
    pub fn lock(&self) -> LockId {
        self.lock
    }

    /// The range.
    ///
    /// ```
    /// # let held: Vec<rangelock::deadlock::HeldRange> = Vec::new();
    /// let ranges: Vec<std::ops::RangeInclusive<u64>> = held.iter().map(|h| h.range()).collect();
    /// # assert!(ranges.is_empty());
    /// ```
    #[must_use]
    pub fn range(&self) -> RangeInclusive<u64> {
        self.range.clone()
    }

    /// Whether it is held exclusive (a write guard).
    ///
    /// ```
    /// # let held: Vec<rangelock::deadlock::HeldRange> = Vec::new();
    /// let writes = held.iter().filter(|h| h.is_exclusive()).count();
    /// # assert_eq!(writes, 0);
    /// ```
    #[must_use]
    pub fn is_exclusive(&self) -> bool {
        self.write
    }

    /// Where it was acquired.
    ///
    /// ```
    /// # let held: Vec<rangelock::deadlock::HeldRange> = Vec::new();
    /// for h in &held {
    ///     eprintln!("taken at {:?}", h.location());
    /// }
    /// ```
    #[must_use]
    pub fn location(&self) -> Option<&'static Location<'static>> {
        self.at
    }
}

impl fmt::Display for HeldRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:?} on lock {} (taken at {})",
            mode_name(self.write),
            self.range,
            self.lock,
            At(self.at)
        )
    }
}

/// Names a [`RangeRwLock`] in a report: its address while requests wait on it.
///
/// ```
/// use rangelock::{deadlock::LockId, RangeRwLock};
/// let (a, b) = (RangeRwLock::new(), RangeRwLock::new());
/// assert_ne!(LockId::of(&a), LockId::of(&b));
/// assert_eq!(LockId::of(&a), LockId::of(&a));
/// println!("{}", LockId::of(&a)); // 0x7ffd5c9e2a40, say
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LockId(usize);

impl LockId {
    /// The name of `lock` (two locks alive at the same time have different names; a lock
    /// keeps its name while anything borrows it).
    ///
    /// ```
    /// static FILES: rangelock::RangeRwLock = rangelock::RangeRwLock::new();
    /// let files = rangelock::deadlock::LockId::of(&FILES);
    /// for t in rangelock::deadlock::check_deadlock().iter().flatten() {
    ///     if t.lock() == files {
    ///         eprintln!("stuck on the files' lock: {t}");
    ///     }
    /// }
    /// ```
    #[must_use]
    pub fn of(lock: &RangeRwLock) -> LockId {
        LockId(std::ptr::from_ref(lock) as usize)
    }
}

impl fmt::Display for LockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

// ---------------------------------------------------------------------------------------------
// The registry: what each waiting request waits for, kept up to date by the locks.

/// An entry that a waiting request waits for (in its lock's tree, ahead of it).
#[derive(Clone, Copy)]
pub(crate) struct Blocker {
    /// The entry's request, and its range.
    pub(crate) seq: u64,
    pub(crate) part: Part,
    pub(crate) who: Requester,
    /// The start of the waiting request's range that it blocks (a set has several).
    pub(crate) waiter_start: u64,
}

/// A request that waits in its lock's queue, and the entries it waits for.
#[derive(Clone)]
pub(crate) struct WaitRecord {
    lock: usize,
    seq: u64,
    parts: Vec<Part>,
    who: Requester,
    thread: ThreadId,
    blockers: Vec<Blocker>,
}

impl WaitRecord {
    /// Request `seq` of lock `lock` for `parts`, made by `who` and queued by the calling thread,
    /// waits for `blockers`.
    pub(crate) fn new(
        lock: usize,
        seq: u64,
        parts: &[Part],
        who: Requester,
        blockers: Vec<Blocker>,
    ) -> WaitRecord {
        WaitRecord {
            lock,
            seq,
            parts: parts.to_vec(),
            who,
            thread: crate::sync::thread_id(),
            blockers,
        }
    }
}

/// Every waiting request, by the address of its wait node.
struct Registry {
    waits: BTreeMap<usize, WaitRecord>,
}

static_mutex! {
    /// Taken under a lock's internal mutex, never the other way.
    static REGISTRY: Registry = Registry {
        waits: BTreeMap::new(),
    };
}

/// Changes to the registry made under a lock's internal mutex: the registry's mutex is taken
/// at the first change and held until this is dropped.
pub(crate) struct Edit {
    registry: Option<MutexGuard<'static, Registry>>,
}

impl Edit {
    pub(crate) fn new() -> Edit {
        Edit { registry: None }
    }

    fn registry(&mut self) -> &mut Registry {
        self.registry.get_or_insert_with(|| REGISTRY.lock())
    }

    /// The request of `node` waits, as `record` says.
    pub(crate) fn queued(&mut self, node: NodeRef, record: WaitRecord) {
        self.registry().waits.insert(node.addr(), record);
    }

    /// Entry `(seq, start)` no longer blocks the range of `node`'s request that starts at
    /// `waiter_start` (it left, or a downgrade made it a reader); with `granted`, that was the
    /// last entry the request waited for.
    pub(crate) fn unblocked(
        &mut self,
        node: NodeRef,
        granted: bool,
        seq: u64,
        start: u64,
        waiter_start: u64,
    ) {
        let waits = &mut self.registry().waits;
        if granted {
            waits.remove(&node.addr());
            return;
        }
        if let Some(record) = waits.get_mut(&node.addr()) {
            let gone = record.blockers.iter().position(|b| {
                b.seq == seq && b.part.start == start && b.waiter_start == waiter_start
            });
            if let Some(i) = gone {
                record.blockers.swap_remove(i);
            }
        }
    }

    /// The request of `node` no longer waits (it gave up).
    pub(crate) fn done(&mut self, node: NodeRef) {
        self.registry().waits.remove(&node.addr());
    }
}

/// Forgets the requests that wait on a lock being dropped (their futures were leaked: nothing
/// else outlives the borrow of a lock), named by their nodes.
pub(crate) fn forget(nodes: impl Iterator<Item = NodeRef>) {
    let mut edit = Edit::new();
    for node in nodes {
        edit.done(node);
    }
}

// ---------------------------------------------------------------------------------------------
// The graph: who waits for whom, and its cycles.

/// The wait-for graph of a snapshot of the registry: a vertex per thread or task that waits
/// without deadline, an edge to each such thread or task that one of its requests waits for.
struct Graph<'a> {
    waits: &'a [WaitRecord],
    /// The requests that wait, by `(lock, seq)`: the others in blockers are held.
    queued: BTreeSet<(usize, u64)>,
    /// Vertex `v`'s owner key.
    owners: Vec<u64>,
    /// Vertex `v`'s edges: `(w, why)`, `why` the index of a record and of one of its
    /// blockers whose owner is `w`.
    edges: Vec<Vec<(usize, (usize, usize))>>,
}

impl<'a> Graph<'a> {
    fn new(waits: &'a [WaitRecord]) -> Self {
        let queued = waits.iter().map(|w| (w.lock, w.seq)).collect();
        let mut vertex = BTreeMap::new();
        let mut owners = Vec::new();
        for w in waits.iter().filter(|w| !w.who.is_timed()) {
            vertex.entry(w.who.owner()).or_insert_with(|| {
                owners.push(w.who.owner());
                owners.len() - 1
            });
        }
        let mut edges = vec![Vec::new(); owners.len()];
        for (r, w) in waits.iter().enumerate() {
            let Some(&v) = vertex.get(&w.who.owner()).filter(|_| !w.who.is_timed()) else {
                continue;
            };
            for (b, blocker) in w.blockers.iter().enumerate() {
                let owner = blocker.who.owner();
                if owner == w.who.owner() {
                    continue; // a task's own branches, or an owned guard it sent away
                }
                if let Some(&to) = vertex.get(&owner) {
                    let out: &mut Vec<(usize, (usize, usize))> = &mut edges[v];
                    if !out.iter().any(|&(t, _)| t == to) {
                        out.push((to, (r, b)));
                    }
                }
            }
        }
        Graph {
            waits,
            queued,
            owners,
            edges,
        }
    }

    /// Every elementary cycle (up to [`MAX_CYCLES`]), as reports.
    fn cycles(&self) -> Vec<Vec<DeadlockedThread>> {
        let adjacency: Vec<Vec<usize>> = self
            .edges
            .iter()
            .map(|out| out.iter().map(|&(to, _)| to).collect())
            .collect();
        elementary_cycles(&adjacency, MAX_CYCLES)
            .into_iter()
            .map(|cycle| self.report(&cycle))
            .collect()
    }

    /// The edge `v -> w`'s record and blocker.
    fn why(&self, v: usize, w: usize) -> (&WaitRecord, &Blocker) {
        let &(_, (r, b)) = self.edges[v]
            .iter()
            .find(|&&(to, _)| to == w)
            .expect("a cycle follows edges");
        (&self.waits[r], &self.waits[r].blockers[b])
    }

    fn report(&self, cycle: &[usize]) -> Vec<DeadlockedThread> {
        let next = |i: usize| cycle[(i + 1) % cycle.len()];
        let actor = |record: &WaitRecord| Actor {
            thread: record.thread,
            task: record.who.task_address(),
        };
        (0..cycle.len())
            .map(|i| {
                let (record, blocker) = self.why(cycle[i], next(i));
                let (next_record, _) = self.why(next(i), next(i + 1));
                let part = record
                    .parts
                    .iter()
                    .find(|p| p.start == blocker.waiter_start)
                    .expect("a blocker blocks one of the request's ranges");
                DeadlockedThread {
                    thread: record.thread,
                    task: record.who.task_address(),
                    lock: LockId(record.lock),
                    requested: part.start..=part.last,
                    write: part.mode == Mode::Write,
                    at: record.who.location(),
                    behind: Behind {
                        range: blocker.part.start..=blocker.part.last,
                        write: blocker.part.mode == Mode::Write,
                        queued: self.queued.contains(&(record.lock, blocker.seq)),
                        by: actor(next_record),
                        at: blocker.who.location(),
                    },
                    held: self.held_by(self.owners[cycle[i]]),
                }
            })
            .collect()
    }

    /// The ranges that `owner` holds and that some request waits for.
    fn held_by(&self, owner: u64) -> Vec<HeldRange> {
        let mut seen = BTreeSet::new();
        let mut held = Vec::new();
        for w in self.waits {
            for b in &w.blockers {
                let new = seen.insert((w.lock, b.seq, b.part.start));
                if new && b.who.owner() == owner && !self.queued.contains(&(w.lock, b.seq)) {
                    held.push(HeldRange {
                        lock: LockId(w.lock),
                        range: b.part.start..=b.part.last,
                        write: b.part.mode == Mode::Write,
                        at: b.who.location(),
                    });
                }
            }
        }
        held.sort_by_key(|h| (h.lock, *h.range.start()));
        held
    }
}

/// The elementary cycles of the graph `adjacency` (no self-loops), at most `limit` of them,
/// each starting at its least vertex: Johnson's algorithm ("Finding all the elementary
/// circuits of a directed graph", 1975), run in turn from each vertex `s` on the strongly
/// connected component of `s` among the vertices from `s` up.
fn elementary_cycles(adjacency: &[Vec<usize>], limit: usize) -> Vec<Vec<usize>> {
    let n = adjacency.len();
    let mut reverse = vec![Vec::new(); n];
    for (v, out) in adjacency.iter().enumerate() {
        for &w in out {
            reverse[w].push(v);
        }
    }
    let mut search = Search {
        adjacency,
        component: vec![false; n],
        blocked: vec![false; n],
        blocked_by: vec![Vec::new(); n],
        path: Vec::new(),
        cycles: Vec::new(),
        limit,
    };
    for s in 0..n {
        if search.cycles.len() >= limit {
            break;
        }
        // The component of `s` among vertices >= s: reachable from it and reaching it.
        let forward = reach(adjacency, s);
        let backward = reach(&reverse, s);
        let mut any = false;
        for v in 0..n {
            search.component[v] = forward[v] && backward[v] && v != s;
            any |= search.component[v];
            search.blocked[v] = false;
            search.blocked_by[v].clear();
        }
        if any {
            search.component[s] = true;
            search.circuit(s, s);
        }
        search.component[s] = false;
    }
    search.cycles
}

/// The vertices reachable from `s` through vertices `>= s` (`s` itself only through a cycle).
fn reach(adjacency: &[Vec<usize>], s: usize) -> Vec<bool> {
    let mut seen = vec![false; adjacency.len()];
    let mut stack = vec![s];
    while let Some(v) = stack.pop() {
        for &w in &adjacency[v] {
            if w >= s && !seen[w] {
                seen[w] = true;
                stack.push(w);
            }
        }
    }
    seen
}

/// Johnson's search from one start vertex.
struct Search<'a> {
    adjacency: &'a [Vec<usize>],
    component: Vec<bool>,
    blocked: Vec<bool>,
    blocked_by: Vec<Vec<usize>>,
    path: Vec<usize>,
    cycles: Vec<Vec<usize>>,
    limit: usize,
}

impl Search<'_> {
    /// Extends the path at `v`; true if a cycle back to `s` was found through it.
    fn circuit(&mut self, v: usize, s: usize) -> bool {
        let mut found = false;
        self.path.push(v);
        self.blocked[v] = true;
        for &w in &self.adjacency[v] {
            if self.cycles.len() >= self.limit {
                break;
            }
            if !self.component[w] {
                continue;
            }
            if w == s {
                self.cycles.push(self.path.clone());
                found = true;
            } else if !self.blocked[w] && self.circuit(w, s) {
                found = true;
            }
        }
        if found {
            self.unblock(v);
        } else {
            for &w in &self.adjacency[v] {
                if self.component[w] && !self.blocked_by[w].contains(&v) {
                    self.blocked_by[w].push(v);
                }
            }
        }
        self.path.pop();
        found
    }

    fn unblock(&mut self, v: usize) {
        self.blocked[v] = false;
        while let Some(w) = self.blocked_by[v].pop() {
            if self.blocked[w] {
                self.unblock(w);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::elementary_cycles;

    #[test]
    fn a_two_cycle_and_a_three_cycle_sharing_a_vertex_are_both_found() {
        // 0 <-> 1, 1 -> 2 -> 3 -> 1, and 4 waits on 0 outside any cycle.
        let adjacency = vec![vec![1], vec![0, 2], vec![3], vec![1], vec![0]];
        let mut cycles = elementary_cycles(&adjacency, 100);
        cycles.sort();
        assert_eq!(cycles, [vec![0, 1], vec![1, 2, 3]]);
    }

    #[test]
    fn a_graph_without_cycles_has_none() {
        let adjacency = vec![vec![1, 2], vec![2], vec![]];
        assert!(elementary_cycles(&adjacency, 100).is_empty());
    }

    #[test]
    fn the_limit_bounds_the_cycles_returned() {
        // A complete graph on 5 vertices has 84 elementary cycles of length 2 or more.
        let n = 5;
        let adjacency: Vec<Vec<usize>> = (0..n)
            .map(|v| (0..n).filter(|&w| w != v).collect())
            .collect();
        assert_eq!(elementary_cycles(&adjacency, 1000).len(), 84);
        assert_eq!(elementary_cycles(&adjacency, 10).len(), 10);
    }
}
