//! Reader/writer **range locks**: lock `[start, end)` of a `u64` space shared or exclusive, so
//! that work on disjoint ranges never waits on each other.
//!
//! A file server writing two parts of one file, a storage engine flushing two extents, rayon
//! tasks filling two halves of one buffer: with one [`RwLock`](std::sync::RwLock) they take
//! turns; with a range lock each locks only the bytes it touches, and they run together.
//!
//! ```
//! use rangelock::RangeRwLock;
//!
//! let lock = RangeRwLock::new();
//! std::thread::scope(|s| {
//!     s.spawn(|| {
//!         let _w = lock.write(0..4096); // these two never wait for each other
//!     });
//!     s.spawn(|| {
//!         let _w = lock.write(4096..8192);
//!     });
//! });
//! let _all = lock.write(..); // the whole space, as an rwsem would
//! ```
//!
//! # Entry points
//!
//! - [`RangeRwLock`]: the lock itself. [`read`](RangeRwLock::read) and
//!   [`write`](RangeRwLock::write) block; [`try_read`](RangeRwLock::try_read) and
//!   [`try_write`](RangeRwLock::try_write) never do;
//!   [`try_read_for`](RangeRwLock::try_read_for) / [`try_write_until`](RangeRwLock::try_write_until)
//!   and their twins wait at most so long. A write guard can
//!   [`downgrade`](RangeWriteGuard::downgrade) to a read guard without unlocking.
//! - Async: [`read_async`](RangeRwLock::read_async) and
//!   [`write_async`](RangeRwLock::write_async) return runtime-agnostic, `Send` futures that
//!   queue with the blocking requests, allocate nothing, and give up their request when dropped.
//! - Owned guards, for an `Arc<RangeRwLock>`: [`read_arc`](RangeRwLock::read_arc),
//!   [`write_arc`](RangeRwLock::write_arc) (blocking, and their `try_`, `_for` and `_until`
//!   forms such as [`try_write_arc_for`](RangeRwLock::try_write_arc_for)),
//!   [`read_owned`](RangeRwLock::read_owned), [`write_owned`](RangeRwLock::write_owned) (async)
//!   give `'static` guards that keep the lock alive.
//! - Several ranges at once: a [`RangeSet`] is locked as one request
//!   ([`lock_set`](RangeRwLock::lock_set), [`try_lock_set`](RangeRwLock::try_lock_set),
//!   [`try_lock_set_for`](RangeRwLock::try_lock_set_for),
//!   [`try_lock_set_until`](RangeRwLock::try_lock_set_until),
//!   [`lock_set_async`](RangeRwLock::lock_set_async), and owned:
//!   [`lock_set_arc`](RangeRwLock::lock_set_arc), [`lock_set_owned`](RangeRwLock::lock_set_owned)).
//!   This is the only deadlock-free way to hold several ranges of one lock.
//! - [`SliceRwLock`]: a boxed slice whose sub-slices are locked by index range and handed out as
//!   `&[T]` / `&mut [T]`, with the same families; its set guards
//!   ([`SliceRwLock::lock_set`]) give every member's sub-slice at once.
//!
//! There is no poisoning: a holder that panics releases what it held as it unwinds.
//! [`RangeRwLock`] is `UnwindSafe + RefUnwindSafe`, and so is [`SliceRwLock<T>`] when `T` is.
//! - [`mm::AddressSpace`]: a page cache whose fault, read, write, punch-hole and truncate lock
//!   only their pages: Linux's `invalidate_lock` problem solved per range, with the
//!   whole-mapping rwsem as a second backend chosen at compile time (feature `whole-rwsem`).
//!
//! Ranges are any [`RangeBounds<u64>`](core::ops::RangeBounds): `a..b`, `a..=b`, `a..`, `..b`,
//! `..` (the full range `[0, u64::MAX]`). An empty range (`a..a`) is granted at once and
//! conflicts with nothing. An inverted range (`10..5`) panics with a message naming both bounds,
//! as slice indexing does.
//!
//! ```
//! use std::time::Duration;
//! let lock = rangelock::RangeRwLock::new();
//! let w = lock.write(100..=199);
//! assert_eq!(w.range(), 100..=199);
//! assert!(lock.try_read(150..160).is_none());
//! assert!(lock.try_read_for(150..160, Duration::from_millis(1)).is_none());
//! let r = w.downgrade(); // still locked, now shared
//! assert!(lock.try_read(150..160).is_some());
//! drop(r);
//! assert!(!lock.is_locked(..));
//! ```
//!
//! # Guarantees
//!
//! **Exclusion.** A write guard's range overlaps no other guard's; read guards overlap only
//! read guards.
//!
//! **Fairness.** [`RangeRwLock::new`] makes a lock with bounded barging: a running thread may
//! take a range ahead of conflicting requests that wait for it (never ahead of one that holds
//! it), until each has waited [`RangeRwLock::DEFAULT_HANDOFF`] (1 ms); from then on it queues in
//! FIFO order and nothing passes it, so nobody starves and every wait stays bounded.
//! [`RangeRwLock::barging`] sets another hand-off time. [`RangeRwLock::fifo`] makes a lock with
//! strict FIFO order: a request waits for exactly the conflicting requests that arrived before
//! it, and a reader does not slip past a waiting writer even when the range is held only by
//! readers. `try_*` never waits and never passes a holder; on a FIFO lock it also fails if a
//! conflicting request waits. [`RangeRwLock`]'s "Fairness" section says how to choose.
//! [`SliceRwLock`] and [`mm::AddressSpace`] take the same default, with FIFO on request
//! ([`SliceRwLock::fifo`], [`mm::FifoRangeLock`]).
//!
//! **Independence.** Requests on disjoint ranges never wait for each other, whatever queues on
//! either. They do share one short internal critical section (see Performance).
//!
//! **Progress.** A waiter is woken by the release (or give-up) that removes the last conflicting
//! request ahead of it, and only then; a timed waiter that gives up removes itself and wakes the
//! requests that were waiting only for it. A thread that panics while holding a guard releases
//! it as it unwinds. [`mem::forget`](core::mem::forget) on a guard leaves its range locked for
//! the lock's lifetime, which is never undefined behaviour.
//!
//! **User code.** A task's waker is the only user code the lock runs, and never under its
//! internal mutex: it is cloned before the mutex is taken, dropped after, and woken after the
//! release is complete. A waker that panics when woken does not stop the release from waking
//! every other request it granted; its panic then reaches the thread that released (unless
//! that thread is already unwinding). A waker that panics when cloned or dropped fails the
//! poll, and the request stays as it was, or, if it was granted in that poll, is released when
//! the future is dropped. A `wake` may poll a future of the same lock inline (as executors
//! that run a woken task at once do); it must not *drop* one that the same release granted,
//! which waits for that release to finish with it and so never returns.
//!
//! **Allocation.** The lock allocates nothing when created (`RangeRwLock::new` is `const`). Its
//! tree keeps its nodes in a slab that grows to the largest number of requests ever queued at
//! once and is then reused: in steady state, acquire and release do not allocate, contended or
//! not (tested with a counting allocator).
//!
//! # Differences from `RwLock`
//!
//! | | `std::sync::RwLock<T>` | `RangeRwLock` |
//! |---|---|---|
//! | what is locked | all of `T` | a range of `u64`; [`SliceRwLock`] a range of a slice |
//! | disjoint writers | take turns | run together |
//! | order | unspecified (platform) | bounded barging (1 ms hand-off), or FIFO with [`RangeRwLock::fifo`] |
//! | poisoning | yes | no: a panicking holder releases its range |
//! | timeouts | no | `try_*_for`, `try_*_until` (also for owned guards and sets) |
//! | several at once | one lock covers all | a [`RangeSet`], as one request |
//! | downgrade | no | [`RangeWriteGuard::downgrade`] |
//! | uncontended cost | one atomic each way | one compare-exchange each way while nothing conflicts |
//! | cost while requests conflict | one atomic | a short critical section and a tree insert |
//!
//! Like `RwLock`, it is not reentrant: a thread that requests a range conflicting with one it
//! holds deadlocks (with the `deadlock_detection` feature it panics at once instead). Unlike
//! it, a thread that holds one range and requests another can deadlock even when the two are
//! disjoint and taken in ascending order (a conflicting request that arrived in between queues
//! ahead of the second one); lock several ranges as one [`RangeSet`] instead. The next section
//! shows how to find such a deadlock.
//!
//! # Debugging a hang
//!
//! Range locks hang in ways plain locks do not: a request waits for every conflicting request
//! ahead of it, granted *or waiting*, so a thread that holds `0..=2` and then asks for `3..=5`
//! waits for ever behind a request for `0..=3` that arrived in between and waits for it. To
//! find such a cycle:
//!
//! 1. Build with the `deadlock_detection` feature (off by default, and free when off):
//!    `rangelock = { version = "0.1", features = ["deadlock_detection"] }`.
//! 2. Run a watchdog thread that calls `rangelock::deadlock::check_deadlock()` every few
//!    seconds. It returns each cycle of threads (and async tasks) that wait for each other on
//!    range locks, across one lock or several, as `parking_lot`'s function of the same name
//!    does.
//! 3. Read the report: each member of a cycle prints the range it waits for and on which lock,
//!    the request ahead of it that it waits behind and whose that is, and the ranges it holds,
//!    each with the source location where it was requested.
//!
//! ```
//! # #[cfg(feature = "deadlock_detection")] {
//! use rangelock::RangeRwLock;
//! use std::thread;
//! use std::time::Duration;
//!
//! static LOCK: RangeRwLock = RangeRwLock::fifo();
//!
//! // Thread 1 holds 0..=2, then asks for 3..=5 once thread 2's request for 0..=3 is queued
//! // (until then, a `try_` request for 3 succeeds).
//! thread::spawn(|| {
//!     let _held = LOCK.write(0..=2);
//!     while let Some(g) = LOCK.try_read(3..=3) {
//!         drop(g);
//!         thread::yield_now();
//!     }
//!     let _more = LOCK.write(3..=5);
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
//! # }
//! ```
//!
//! which prints
//!
//! ```text
//! thread ThreadId(3) waits for write 0..=3 on lock 0x55d4c8d2e0c0 (requested at src/main.rs:18:10)
//!   behind write 0..=2 that thread ThreadId(2) holds (taken at src/main.rs:10:23)
//! thread ThreadId(2) waits for write 3..=5 on lock 0x55d4c8d2e0c0 (requested at src/main.rs:15:22)
//!   behind write 0..=3 that thread ThreadId(3) waits for (requested at src/main.rs:18:10)
//!   and holds write 0..=2 on lock 0x55d4c8d2e0c0 (taken at src/main.rs:10:23)
//! ```
//!
//! The fix is to take both ranges as one request, `LOCK.lock_set(&RangeSet::new().write(0..=2)
//! .write(3..=5))`, or to release the first before asking for the second. With the feature on,
//! a thread that requests a range conflicting with one it already holds on the same lock
//! panics at once, naming both. The `rangelock::deadlock` module docs say what is tracked
//! (threads, tasks, sets, barging and timed requests) and what it costs.
//!
//! If the lock is slow rather than stuck, the `stats` feature counts, per lock, the
//! acquisitions, how many had to wait, for how long (total, longest, a histogram), and for a
//! barging lock how often requests passed waiting ones: `lock.stats()`, printed beside the
//! table by `cargo run --release --example contention --features stats`.
//!
//! # Performance
//!
//! While requests do not conflict, up to two hold the lock without its tree: each takes a slot
//! in one word with a compare-exchange and publishes its range beside it (1.1x to 1.3x the cost
//! of `parking_lot::RwLock`'s write lock and unlock in the runs here). When requests conflict,
//! every request takes the internal mutex to queue and to leave, for O(log n + k) work on n queued
//! requests and k overlapping ones (one descent to count and insert, one to leave: with 100
//! ranges held, about what a sorted `Vec` under a mutex costs, and with 10,000 less than a
//! `BTreeMap` under one); when the queue drains, the lock returns to the slots. A
//! waiting thread watches its grant flag briefly before it parks; it is woken after the mutex
//! is released. A waiting future is woken through its `Waker`. A barging lock keeps a request
//! that would wait out of the tree until its hand-off deadline: it waits in a side list and
//! tries again when an overlapping release notifies it, so on a hot range a running thread
//! takes a free range through the slots. A release notifies one of the writers waiting for
//! the same range, not all of them: the others wait for it to take the range or to wait again,
//! and until then releases of that range stay on the fast path.
//!
//! Disjoint ranges scale with the work done under the lock (two threads with ~1 us of work
//! each reach 2.4x to 2.9x one rwsem). On a single hot range with more threads than cores, a
//! strict FIFO lock ([`RangeRwLock::fifo`]) hands the lock to a sleeping thread at every
//! release (no strictly FIFO lock can do better: each hand-off waits for the next thread in
//! line to be scheduled), so it is one to two orders of magnitude slower there than the
//! default, which lets a running thread pass waiters within the hand-off time. The README has
//! the measured tables and the commands behind them.
//!
//! # Safety and correctness
//!
//! `unsafe` is confined to a few places, each with a `SAFETY` comment: the slot table's
//! ranges, the wait nodes that releasing threads link and wake (on a thread's stack or inside a
//! pinned future), the parking hand-off, `SliceRwLock`'s guards, and the `fallocate`/`lseek`
//! calls of `mm::FileBacking`. The interval tree uses indices into slabs and no `unsafe`. The
//! concurrency is model-checked with loom (`loom-tests/`; under `--cfg rangelock_loom` the
//! crate's `sync` module swaps in loom's primitives), the unit tests run under miri, and the
//! accounting is tested against a model of which requests may be granted together.
//!
//! # Implementation notes
//!
//! The design follows Jan Kara's and Davidlohr Bueso's Linux range locks. Every queued
//! request, granted or waiting, is an entry of one interval tree (a B+-tree of array nodes
//! ordered by start, each inner node keeping the largest end below each child). A request
//! counts the conflicting entries already in the tree, inserts itself and waits until its
//! count is zero (for one range, counting and inserting are one descent of the tree); an entry
//! that leaves decrements the count of every later conflicting entry it overlaps and wakes
//! those that reach zero. That is the whole rule: FIFO follows from counting only the entries
//! ahead.
#![warn(missing_docs)]

// The README's examples are doc tests too, so that it cannot drift from the API.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

#[cfg(feature = "deadlock_detection")]
pub mod deadlock;
mod lock;
pub mod mm;
mod range;
mod slice;
mod sync;
#[cfg(test)]
mod testrng;
mod tree;

pub use lock::{
    ArcRangeReadGuard, ArcRangeSetGuard, ArcRangeWriteGuard, OwnedReadFuture, OwnedSetFuture,
    OwnedWriteFuture, RangeReadGuard, RangeRwLock, RangeSet, RangeSetGuard, RangeWriteGuard,
    ReadFuture, SetFuture, WriteFuture,
};
#[cfg(feature = "stats")]
pub use lock::{LockStats, WaitHistogram};
pub use slice::{
    ArcSliceReadGuard, ArcSliceSetGuard, ArcSliceWriteGuard, OwnedSlice, OwnedSliceReadFuture,
    OwnedSliceSetFuture, OwnedSliceWriteFuture, SliceMember, SliceMembers, SliceMembersMut,
    SliceReadFuture, SliceReadGuard, SliceRwLock, SliceSetFuture, SliceSetGuard, SliceWriteFuture,
    SliceWriteGuard,
};
