//! The lock comparisons of `cargo bench --bench lock`, measured the way a user's program runs a
//! lock rather than inside a criterion closure, in a build like a user's release binary.
//!
//! ```sh
//! cargo run --profile user-loop -p rangelock-benches --example user_loop -- [OPTIONS] [WORKLOAD ...]
//! ```
//!
//! A `WORKLOAD` is a row's name or the part of it before a `-` (`held` runs both held rows,
//! `held-100` one); none runs every row. Options: `--quick` (a short smoke run, 50 ms a cell, whose figures mean nothing),
//! `--secs S` (time per lock and row, default 1), `--locks ID,..` (from `new`, `fifo`, `barging`,
//! `range-mutex`, `range-lock`, `parking_lot`, `ticket`). The `user-loop` profile (in the
//! workspace's Cargo.toml) is `release` with `lto = "thin"`, `codegen-units = 1` and
//! `panic = "abort"`; the run prints the panic strategy and warns about a debug build.
//!
//! # The loop
//!
//! Every worker thread runs [`user_loop`], a generic function over the small trait
//! [`RangeLockUnderTest`], as a user's code generic over its lock is: each lock gets its own
//! monomorphised copy, with no `dyn` call on the measured path, and the lock's own code reaches
//! it across the crate boundary, inlined only as far as the lock's `#[inline]`s and the build's
//! LTO take it. Per iteration the loop
//! - loads a relaxed stop flag (the main thread sets it when the time is up),
//! - takes `start` and `end` from values the compiler cannot see (`black_box`, or a seeded
//!   generator), so that checking and normalising the range is done at run time, every time,
//! - calls `lock.write(start..end)` (or `read`), runs the body while it holds the guard, and
//!   drops the guard.
//!
//! The lock lives in a heap `Box`, padded and aligned to 128 bytes, so that it shares no cache
//! line with anything else and sits where a user's `Arc` or struct field would put it. Each
//! lock and row gets a lock of its own, built for that row.
//!
//! # Rows
//!
//! - `uncontended-write`, `uncontended-read`: one thread locks and unlocks `0..4096` of an
//!   empty lock, with an empty body; nanoseconds per lock + unlock. `read` only for the locks
//!   whose reads share.
//! - `held-100`, `held-10000`: as `uncontended-write`, while another thread holds 100 or 10,000
//!   read guards on `[(k+1)·8192, +4096)` for `k` below the count, taken in a shuffled order
//!   (a seeded Fisher-Yates shuffle: the same order every run and for every lock), so that the
//!   lock's structure is built as a program's arrivals build it, not in sorted order. The
//!   measured range is the free 4 KiB in the middle gap, `[(n/2+1)·8192 + 4096, +4096)`, as in
//!   `cargo bench --bench lock -- held_`. The exclusive-only locks hold theirs exclusive (the
//!   same thing for disjoint ranges); whole-lock rows would be meaningless and are left out.
//! - `hot-8`: eight threads write-lock `0..4096` with about 0.1 µs of work inside; total lock +
//!   unlock pairs per second, and the longest single wait (from the request to holding the
//!   guard). To find that, every request here reads the clock before it asks and once it holds
//!   the guard: every lock pays those two reads.
//! - `mixed-8`: eight threads, each request a range of 1 to 16 whole pages (4 to 64 KiB) at a
//!   page-aligned offset wholly inside the first MiB, one in ten a write, about 0.1 µs inside;
//!   each thread's requests come from a splitmix64 stream seeded with its index (the same
//!   stream as the bench's `mixed_8threads`). The exclusive-only locks lock every request
//!   exclusive; the whole lock reads or writes everything.
//! - `hot-2`: as `hot-8` with two threads, without the clock reads: no more threads than
//!   cores, where a FIFO hand-off need not wait for a thread to be scheduled.
//! - `disjoint-2`: two threads, each write-locking its own 4 KiB range (one MiB apart) with
//!   about 1 µs of work inside; the whole lock serialises them.
//! - `io-32`: 32 threads, each write-locking its own 4 KiB range and sleeping 20 µs inside
//!   (standing in for IO; the timer slack makes it longer); the whole lock runs the sleeps one
//!   at a time.
//!
//! The locks: `new()` is `RangeRwLock::new()` (the default: bounded barging with a 1 ms
//! hand-off), `fifo()` is `RangeRwLock::fifo()`, and `barging(4 ms)` is
//! `RangeRwLock::barging(Duration::from_millis(4))` (the kernel rwsem's hand-off, for the
//! choice of the default's); range-mutex 0.1 and range-lock 0.2 over a `Vec<u8>` as long as the row's ranges reach (range-lock has only `try_lock`, so a request
//! retries, spinning briefly then yielding, as the bench's does); `parking_lot` is one
//! `parking_lot::RwLock<()>` over everything; `ticket` is a strictly FIFO ticket lock (the
//! bench's), on the hot rows only, as the bound any strictly FIFO lock has there.
//!
//! # Output
//!
//! A table of each lock's figure per row, printed as each row finishes; then the cores each
//! cell got (process CPU time over wall time, from `getrusage`: a two-thread row on a busy
//! host may get one core, and strict FIFO's sleeping waiters get less than their threads);
//! then the ratios the performance targets name, for each `RangeRwLock` mode, with the target
//! beside each. Report a run's ratios with its cores. Throughput rows count every lock +
//! unlock completed, over the wall time from the start until the last thread has finished its
//! last iteration.

use std::hint::black_box;
use std::marker::PhantomData;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use range_lock::{VecRangeLock, VecRangeLockGuard};
use range_mutex::{RangeMutex, RangeMutexGuard};
use rangelock::{RangeReadGuard, RangeRwLock, RangeWriteGuard};

const PAGE: u64 = 4096;

// ---------------------------------------------------------------------------------------------
// The locks under test.

/// What a user's code generic over its range lock asks of it. Ranges are `u64` byte ranges;
/// a lock over a `Vec`'s indices takes them as `usize`.
trait RangeLockUnderTest: Sync {
    /// Whether `read` shares. False for the exclusive-only locks, whose `read` locks exclusive.
    const SHARED_READS: bool;

    type WriteGuard<'a>
    where
        Self: 'a;

    type ReadGuard<'a>
    where
        Self: 'a;

    fn write(&self, range: Range<u64>) -> Self::WriteGuard<'_>;

    fn read(&self, range: Range<u64>) -> Self::ReadGuard<'_>;
}

impl RangeLockUnderTest for RangeRwLock {
    const SHARED_READS: bool = true;
    type WriteGuard<'a> = RangeWriteGuard<'a>;
    type ReadGuard<'a> = RangeReadGuard<'a>;

    fn write(&self, range: Range<u64>) -> RangeWriteGuard<'_> {
        RangeRwLock::write(self, range)
    }

    fn read(&self, range: Range<u64>) -> RangeReadGuard<'_> {
        RangeRwLock::read(self, range)
    }
}

impl RangeLockUnderTest for RangeMutex<u8, Vec<u8>> {
    const SHARED_READS: bool = false;
    type WriteGuard<'a> = RangeMutexGuard<'a, u8>;
    type ReadGuard<'a> = RangeMutexGuard<'a, u8>;

    fn write(&self, range: Range<u64>) -> RangeMutexGuard<'_, u8> {
        self.lock(range.start as usize..range.end as usize)
    }

    fn read(&self, range: Range<u64>) -> RangeMutexGuard<'_, u8> {
        self.lock(range.start as usize..range.end as usize)
    }
}

impl RangeLockUnderTest for VecRangeLock<u8> {
    const SHARED_READS: bool = false;
    type WriteGuard<'a> = VecRangeLockGuard<'a, u8>;
    type ReadGuard<'a> = VecRangeLockGuard<'a, u8>;

    fn write(&self, range: Range<u64>) -> VecRangeLockGuard<'_, u8> {
        range_lock_acquire(self, range)
    }

    fn read(&self, range: Range<u64>) -> VecRangeLockGuard<'_, u8> {
        range_lock_acquire(self, range)
    }
}

/// One reader/writer lock over everything: the range is ignored.
impl RangeLockUnderTest for parking_lot::RwLock<()> {
    const SHARED_READS: bool = true;
    type WriteGuard<'a> = parking_lot::RwLockWriteGuard<'a, ()>;
    type ReadGuard<'a> = parking_lot::RwLockReadGuard<'a, ()>;

    fn write(&self, _range: Range<u64>) -> Self::WriteGuard<'_> {
        parking_lot::RwLock::write(self)
    }

    fn read(&self, _range: Range<u64>) -> Self::ReadGuard<'_> {
        parking_lot::RwLock::read(self)
    }
}

#[path = "../peers.rs"]
mod peers;
use peers::{range_lock_acquire, TicketGuard, TicketLock};

impl RangeLockUnderTest for TicketLock {
    const SHARED_READS: bool = false;
    type WriteGuard<'a> = TicketGuard<'a>;
    type ReadGuard<'a> = TicketGuard<'a>;

    fn write(&self, _range: Range<u64>) -> TicketGuard<'_> {
        self.lock()
    }

    fn read(&self, _range: Range<u64>) -> TicketGuard<'_> {
        self.lock()
    }
}

/// A lock on a cache line (two, on machines that fetch lines in pairs) of its own.
#[repr(align(128))]
struct Padded<L>(L);

// ---------------------------------------------------------------------------------------------
// The loop.

/// One request of a worker's loop: lock `start..end`, exclusive if `write`.
#[derive(Clone, Copy)]
struct Request {
    start: u64,
    end: u64,
    write: bool,
}

/// What one worker counted.
#[derive(Clone, Copy, Default)]
struct Tally {
    ops: u64,
    longest_wait: Duration,
}

/// The loop a user's worker thread runs: until `stop`, take the next request, lock its range,
/// run `body` under the guard, unlock. With `TIMED`, also the longest wait from a request to
/// holding its guard (two clock reads per iteration).
fn user_loop<L: RangeLockUnderTest, const TIMED: bool>(
    lock: &L,
    stop: &AtomicBool,
    mut next: impl FnMut() -> Request,
    body: &impl Fn(),
) -> Tally {
    let mut tally = Tally::default();
    while !stop.load(Ordering::Relaxed) {
        let Request { start, end, write } = next();
        let asked = TIMED.then(Instant::now);
        if write {
            let _guard = lock.write(start..end);
            if let Some(asked) = asked {
                tally.longest_wait = tally.longest_wait.max(asked.elapsed());
            }
            body();
        } else {
            let _guard = lock.read(start..end);
            if let Some(asked) = asked {
                tally.longest_wait = tally.longest_wait.max(asked.elapsed());
            }
            body();
        }
        tally.ops += 1;
    }
    tally
}

/// What one lock did on one row.
#[derive(Clone, Copy)]
struct Outcome {
    ops: u64,
    wall: Duration,
    /// CPU time of the whole process over `wall`, if the platform reports it.
    cpu: Option<Duration>,
    longest_wait: Option<Duration>,
}

/// Runs [`user_loop`] on `threads` threads started together, for `time`: thread `t` takes its
/// requests from `next(t)` (built in the thread before the start) and runs `body` under each
/// guard.
fn run<L, N>(
    lock: &L,
    threads: usize,
    time: Duration,
    timed: bool,
    next: impl Fn(usize) -> N + Sync,
    body: impl Fn() + Sync,
) -> Outcome
where
    L: RangeLockUnderTest,
    N: FnMut() -> Request,
{
    let stop = AtomicBool::new(false);
    let start = Barrier::new(threads + 1);
    thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (stop, start, next, body) = (&stop, &start, &next, &body);
                s.spawn(move || {
                    let next = next(t);
                    start.wait();
                    if timed {
                        user_loop::<L, true>(lock, stop, next, body)
                    } else {
                        user_loop::<L, false>(lock, stop, next, body)
                    }
                })
            })
            .collect();
        start.wait();
        let cpu_before = cpu_time();
        let began = Instant::now();
        thread::sleep(time);
        stop.store(true, Ordering::Relaxed);
        let tallies: Vec<Tally> = workers
            .into_iter()
            .map(|w| w.join().expect("a worker panicked"))
            .collect();
        let wall = began.elapsed();
        let cpu = cpu_time()
            .zip(cpu_before)
            .map(|(after, before)| after.saturating_sub(before));
        Outcome {
            ops: tallies.iter().map(|t| t.ops).sum(),
            wall,
            cpu,
            longest_wait: timed
                .then(|| tallies.iter().map(|t| t.longest_wait).max())
                .flatten(),
        }
    })
}

/// As `run` with one thread requesting `range` (exclusive if `write`), while another thread
/// holds `held` disjoint ranges (see [`held_range`]), taken in a shuffled order.
fn run_held<L: RangeLockUnderTest>(
    lock: &L,
    held: u64,
    range: Range<u64>,
    time: Duration,
) -> Outcome {
    let ready = Barrier::new(2);
    let done = Barrier::new(2);
    thread::scope(|s| {
        s.spawn(|| {
            let mut order: Vec<u64> = (0..held).collect();
            shuffle(&mut order, &mut SplitMix64(0x5eed));
            let guards: Vec<_> = order
                .into_iter()
                .map(|k| lock.read(held_range(k)))
                .collect();
            ready.wait();
            done.wait();
            drop(guards);
        });
        ready.wait();
        let outcome = run(lock, 1, time, false, |_| fixed(range.clone(), true), || {});
        done.wait();
        outcome
    })
}

/// Requests of `range` each time, from values the compiler cannot see.
fn fixed(range: Range<u64>, write: bool) -> impl FnMut() -> Request {
    move || Request {
        start: black_box(range.start),
        end: black_box(range.end),
        write,
    }
}

/// The `k`th range the held rows hold: `[(k+1)·8192, +4096)`.
fn held_range(k: u64) -> Range<u64> {
    let start = (k + 1) * 2 * PAGE;
    start..start + PAGE
}

/// The free 4 KiB in the middle gap between `held` held ranges.
fn probe_range(held: u64) -> Range<u64> {
    let start = held_range(held / 2).end;
    start..start + PAGE
}

/// splitmix64: a small seeded generator, so every run and every lock sees the same numbers.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut x = self.0;
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    }
}

/// Fisher-Yates.
fn shuffle<T>(items: &mut [T], rng: &mut SplitMix64) {
    for i in (1..items.len()).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

/// Pages of the mixed row's space: 1 MiB.
const MIXED_PAGES: u64 = 256;

/// Thread `t`'s requests on the mixed row: 1 to 16 whole pages at a page-aligned offset wholly
/// inside the first MiB, one in ten a write.
fn mixed(t: usize) -> impl FnMut() -> Request {
    let mut rng = SplitMix64(t as u64);
    move || {
        let x = rng.next();
        let pages = 1 + (x & 15);
        let start = (x >> 8) % (MIXED_PAGES - pages + 1);
        Request {
            start: start * PAGE,
            end: (start + pages) * PAGE,
            write: (x >> 32) % 10 == 0,
        }
    }
}

/// Spins `n` rounds of a loop the optimiser cannot remove: the work inside the guard.
fn spin(n: u64) {
    let mut x = 0u64;
    for i in 0..n {
        x = black_box(x.wrapping_add(i));
    }
    black_box(x);
}

/// Rounds of [`spin`] that take about 1 µs: the fastest of five timed runs of `n` rounds.
fn spins_per_us(n: u64) -> u64 {
    spin(n);
    let best = (0..5)
        .map(|_| {
            let began = Instant::now();
            spin(n);
            began.elapsed()
        })
        .min()
        .expect("five runs");
    ((u128::from(n) * 1000 / best.as_nanos().max(1)) as u64).max(1)
}

/// User + system CPU time of this process so far, if the platform reports it.
#[cfg(unix)]
fn cpu_time() -> Option<Duration> {
    // SAFETY: `rusage` is plain integers, for which all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable `rusage`, which is all `getrusage` writes to.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &raw mut usage) } != 0 {
        return None;
    }
    let time = |t: libc::timeval| {
        Some(
            Duration::from_secs(u64::try_from(t.tv_sec).ok()?)
                + Duration::from_micros(u64::try_from(t.tv_usec).ok()?),
        )
    };
    Some(time(usage.ru_utime)? + time(usage.ru_stime)?)
}

#[cfg(not(unix))]
fn cpu_time() -> Option<Duration> {
    None
}

// ---------------------------------------------------------------------------------------------
// Rows and locks.

#[derive(Clone, Copy, PartialEq, Eq)]
enum Row {
    UncontendedWrite,
    UncontendedRead,
    /// Another thread holds this many ranges.
    Held(u64),
    /// This many threads on one range.
    Hot(usize),
    Mixed,
    Disjoint,
    SleepingIo,
}

const ROWS: [Row; 9] = [
    Row::UncontendedWrite,
    Row::UncontendedRead,
    Row::Held(100),
    Row::Held(10_000),
    Row::Hot(8),
    Row::Mixed,
    Row::Hot(2),
    Row::Disjoint,
    Row::SleepingIo,
];

const MIXED_THREADS: usize = 8;
const DISJOINT_THREADS: usize = 2;
const IO_THREADS: usize = 32;
/// Where the disjoint row's threads' ranges start: one MiB apart.
const DISJOINT_STRIDE: u64 = 1 << 20;
const IO_SLEEP: Duration = Duration::from_micros(20);

impl Row {
    fn id(self) -> String {
        match self {
            Row::UncontendedWrite => "uncontended-write".into(),
            Row::UncontendedRead => "uncontended-read".into(),
            Row::Held(n) => format!("held-{n}"),
            Row::Hot(threads) => format!("hot-{threads}"),
            Row::Mixed => format!("mixed-{MIXED_THREADS}"),
            Row::Disjoint => format!("disjoint-{DISJOINT_THREADS}"),
            Row::SleepingIo => format!("io-{IO_THREADS}"),
        }
    }

    fn title(self) -> String {
        match self {
            Row::UncontendedWrite => "uncontended write, ns".into(),
            Row::UncontendedRead => "uncontended read, ns".into(),
            Row::Held(n) => format!("write with {} ranges held, ns", thousands(n)),
            Row::Hot(threads) => format!("{threads} threads, one range, /s"),
            Row::Mixed => format!("{MIXED_THREADS} threads, 4-64 KiB, 90 % read, /s"),
            Row::Disjoint => format!("{DISJOINT_THREADS} threads, own ranges, 1 us, /s"),
            Row::SleepingIo => format!("{IO_THREADS} threads, own ranges, sleeping, /s"),
        }
    }

    /// Whether the figure is a time per lock + unlock (one thread) rather than a rate.
    fn per_op(self) -> bool {
        matches!(
            self,
            Row::UncontendedWrite | Row::UncontendedRead | Row::Held(_)
        )
    }

    /// How far the row's ranges reach: the length of the exclusive-only locks' `Vec`s.
    fn space(self) -> u64 {
        match self {
            Row::UncontendedWrite | Row::UncontendedRead | Row::Hot(_) => PAGE,
            Row::Held(n) => held_range(n).end,
            Row::Mixed => MIXED_PAGES * PAGE,
            Row::Disjoint => (DISJOINT_THREADS as u64 - 1) * DISJOINT_STRIDE + PAGE,
            Row::SleepingIo => IO_THREADS as u64 * PAGE,
        }
    }
}

/// How long each cell runs, and the work inside the guard.
struct Params {
    time: Duration,
    /// Rounds of [`spin`] for about 0.1 µs.
    short: u64,
    /// Rounds of [`spin`] for about 1 µs.
    long: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A `RangeRwLock`; `strict_fifo` marks `fifo()`, the base of the ratios between modes.
    Ours { strict_fifo: bool },
    /// range-mutex or range-lock.
    RangePeer,
    /// One reader/writer lock over everything.
    Whole,
    /// The ticket lock: strict FIFO's bound on the hot rows, not a range lock.
    Reference,
}

/// A lock to measure, built by `make(space)` for each row.
struct Candidate<L, F> {
    id: &'static str,
    name: &'static str,
    kind: Kind,
    make: F,
    lock: PhantomData<fn() -> L>,
}

/// The per-row dispatch, outside the measured loop: each `Candidate` runs the row's generic
/// code for its own lock type.
trait Contender {
    fn id(&self) -> &'static str;
    fn name(&self) -> &'static str;
    fn kind(&self) -> Kind;
    fn applies(&self, row: Row) -> bool;
    fn measure(&self, row: Row, params: &Params) -> Outcome;
}

impl<L: RangeLockUnderTest, F: Fn(u64) -> L> Contender for Candidate<L, F> {
    fn id(&self) -> &'static str {
        self.id
    }

    fn name(&self) -> &'static str {
        self.name
    }

    fn kind(&self) -> Kind {
        self.kind
    }

    fn applies(&self, row: Row) -> bool {
        match (self.kind, row) {
            (Kind::Reference, row) => matches!(row, Row::Hot(_)),
            (Kind::Whole, Row::Held(_)) => false,
            (_, Row::UncontendedRead) => L::SHARED_READS,
            _ => true,
        }
    }

    fn measure(&self, row: Row, params: &Params) -> Outcome {
        let lock: Box<Padded<L>> = Box::new(Padded((self.make)(row.space())));
        let lock = &lock.0;
        let (time, short) = (params.time, params.short);
        match row {
            Row::UncontendedWrite | Row::UncontendedRead => {
                let write = row == Row::UncontendedWrite;
                run(lock, 1, time, false, |_| fixed(0..PAGE, write), || {})
            }
            Row::Held(n) => run_held(lock, n, probe_range(n), time),
            Row::Hot(threads) => run(
                lock,
                threads,
                time,
                threads > 2,
                |_| fixed(0..PAGE, true),
                || spin(short),
            ),
            Row::Mixed => run(lock, MIXED_THREADS, time, false, mixed, || spin(short)),
            Row::Disjoint => run(
                lock,
                DISJOINT_THREADS,
                time,
                false,
                |t| {
                    let start = t as u64 * DISJOINT_STRIDE;
                    fixed(start..start + PAGE, true)
                },
                || spin(params.long),
            ),
            Row::SleepingIo => run(
                lock,
                IO_THREADS,
                time,
                false,
                |t| fixed(t as u64 * PAGE..(t as u64 + 1) * PAGE, true),
                || thread::sleep(IO_SLEEP),
            ),
        }
    }
}

fn candidate<L, F>(id: &'static str, name: &'static str, kind: Kind, make: F) -> Box<dyn Contender>
where
    L: RangeLockUnderTest + 'static,
    F: Fn(u64) -> L + 'static,
{
    Box::new(Candidate {
        id,
        name,
        kind,
        make,
        lock: PhantomData,
    })
}

/// Every lock the example knows, in the order of the table's columns. `fifo()` is marked
/// `strict_fifo`, the base of the ratios between modes; `new()` is not, whatever its mode, so
/// that those ratios measure the default against strict FIFO.
fn candidates() -> Vec<Box<dyn Contender>> {
    let bytes =
        |space: u64| vec![0u8; usize::try_from(space).expect("the row's space fits in memory")];
    vec![
        candidate("new", "new()", Kind::Ours { strict_fifo: false }, |_| {
            RangeRwLock::new()
        }),
        candidate("fifo", "fifo()", Kind::Ours { strict_fifo: true }, |_| {
            RangeRwLock::fifo()
        }),
        candidate(
            "barging",
            "barging(4 ms)",
            Kind::Ours { strict_fifo: false },
            |_| RangeRwLock::barging(Duration::from_millis(4)),
        ),
        candidate(
            "range-mutex",
            "range-mutex",
            Kind::RangePeer,
            move |space| RangeMutex::new(bytes(space)),
        ),
        candidate("range-lock", "range-lock", Kind::RangePeer, move |space| {
            VecRangeLock::new(bytes(space))
        }),
        candidate("parking_lot", "parking_lot", Kind::Whole, |_| {
            parking_lot::RwLock::new(())
        }),
        candidate("ticket", "ticket", Kind::Reference, |_| TicketLock::new()),
    ]
}

// ---------------------------------------------------------------------------------------------
// Results, ratios and output.

/// Every cell measured: `cells[row][lock]`, `None` where the lock was not run on the row.
struct Results<'a> {
    locks: &'a [Box<dyn Contender>],
    rows: Vec<(Row, Vec<Option<Outcome>>)>,
}

impl Results<'_> {
    fn outcome(&self, row: Row, id: &str) -> Option<Outcome> {
        let lock = self.locks.iter().position(|l| l.id() == id)?;
        let (_, cells) = self.rows.iter().find(|(r, _)| *r == row)?;
        cells[lock]
    }

    /// Nanoseconds per lock + unlock on one-thread rows, lock + unlock pairs per second on the
    /// others.
    fn figure(&self, row: Row, id: &str) -> Option<f64> {
        let o = self.outcome(row, id)?;
        if row.per_op() {
            (o.ops > 0).then(|| o.wall.as_nanos() as f64 / o.ops as f64)
        } else {
            Some(o.ops as f64 / o.wall.as_secs_f64())
        }
    }

    fn ids(&self, kind: Kind) -> impl Iterator<Item = &'static str> + '_ {
        self.locks
            .iter()
            .filter(move |l| l.kind() == kind)
            .map(|l| l.id())
    }

    /// The strict FIFO `RangeRwLock`, unless `ours` is it.
    fn fifo_other_than(&self, ours: &str) -> Option<&'static str> {
        self.ids(Kind::Ours { strict_fifo: true })
            .find(|&id| id != ours)
    }

    /// `ours`' figure over `peer`'s.
    fn ratio(&self, row: Row, ours: &str, peer: Option<&str>) -> Option<f64> {
        Some(self.figure(row, ours)? / self.figure(row, peer?)?)
    }

    /// `ours`' figure over the best range peer's: the lowest time, or the highest rate.
    fn ratio_to_best_peer(&self, row: Row, ours: &str) -> Option<f64> {
        let figures = self
            .ids(Kind::RangePeer)
            .filter_map(|id| self.figure(row, id));
        let best = if row.per_op() {
            figures.min_by(f64::total_cmp)
        } else {
            figures.max_by(f64::total_cmp)
        };
        Some(self.figure(row, ours)? / best?)
    }
}

/// What one target line shows for one `RangeRwLock`.
enum Shown {
    Ratio(Option<f64>),
    Time(Option<Duration>),
}

/// A line of the targets table: a label, the target, and what each `RangeRwLock` shows.
type Target<'a> = (String, &'static str, Show<'a>);

type Show<'a> = Box<dyn Fn(&str) -> Shown + 'a>;

/// The performance targets, each for every `RangeRwLock` mode measured. They are stated for
/// the default (`new()`) unless the label names the mode.
fn targets<'a>(r: &'a Results<'a>) -> Vec<Target<'a>> {
    let ratio = move |row: Row, peer: &'static str| -> Show<'a> {
        Box::new(move |ours: &str| Shown::Ratio(r.ratio(row, ours, Some(peer))))
    };
    let to_best_peer = move |row: Row| -> Show<'a> {
        Box::new(move |ours: &str| Shown::Ratio(r.ratio_to_best_peer(row, ours)))
    };
    let to_fifo = move |row: Row| -> Show<'a> {
        Box::new(move |ours: &str| Shown::Ratio(r.ratio(row, ours, r.fifo_other_than(ours))))
    };
    let hot8 = Row::Hot(8);
    vec![
        (
            "uncontended write, time / parking_lot".into(),
            "<= 1.25",
            ratio(Row::UncontendedWrite, "parking_lot"),
        ),
        (
            "uncontended read, time / parking_lot".into(),
            "<= 1.25",
            ratio(Row::UncontendedRead, "parking_lot"),
        ),
        (
            "100 held, time / faster range peer".into(),
            "<= 1.0",
            to_best_peer(Row::Held(100)),
        ),
        (
            "10,000 held, time / range-lock".into(),
            "<= 1.0",
            ratio(Row::Held(10_000), "range-lock"),
        ),
        (
            "100 held, time / fifo()".into(),
            "<= 1.1",
            to_fifo(Row::Held(100)),
        ),
        (
            "10,000 held, time / fifo()".into(),
            "<= 1.1",
            to_fifo(Row::Held(10_000)),
        ),
        (
            "hot-8, rate / best range peer".into(),
            ">= 1.5",
            to_best_peer(hot8),
        ),
        (
            "hot-8, rate / parking_lot".into(),
            ">= 1.0",
            ratio(hot8, "parking_lot"),
        ),
        (
            "hot-8, longest wait".into(),
            "<= 5 ms",
            Box::new(move |ours: &str| {
                Shown::Time(r.outcome(hot8, ours).and_then(|o| o.longest_wait))
            }),
        ),
        (
            "mixed-8, rate / range-lock".into(),
            ">= 3",
            ratio(Row::Mixed, "range-lock"),
        ),
        (
            "mixed-8, rate / parking_lot".into(),
            ">= 1.0",
            ratio(Row::Mixed, "parking_lot"),
        ),
        (
            "hot-2, rate / range-mutex".into(),
            ">= 1.0",
            ratio(Row::Hot(2), "range-mutex"),
        ),
        (
            "hot-2, rate / ticket (for fifo())".into(),
            ">= 0.5",
            ratio(Row::Hot(2), "ticket"),
        ),
        (
            "disjoint-2, rate / range-mutex".into(),
            ">= 1.0",
            ratio(Row::Disjoint, "range-mutex"),
        ),
        (
            "io-32, rate / parking_lot".into(),
            ">= 10",
            ratio(Row::SleepingIo, "parking_lot"),
        ),
    ]
}

/// Three significant figures with a unit prefix: `5.86 M`, `68.6 k`, `23.2`.
fn si(x: f64) -> String {
    let (value, prefix) = match x.abs() {
        a if a >= 1e9 => (x / 1e9, " G"),
        a if a >= 1e6 => (x / 1e6, " M"),
        a if a >= 1e3 => (x / 1e3, " k"),
        _ => (x, ""),
    };
    let decimals = match value.abs() {
        a if a >= 100.0 => 0,
        a if a >= 10.0 => 1,
        _ => 2,
    };
    format!("{value:.decimals$}{prefix}")
}

/// `10000` as `10,000`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn millis(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

const LABEL: usize = 38;
const CELL: usize = 14;

fn print_line(label: &str, cells: impl IntoIterator<Item = String>) {
    print!("{label:<LABEL$}");
    for cell in cells {
        print!("{cell:>CELL$}");
    }
    println!();
}

fn usage() -> ! {
    let rows: Vec<String> = ROWS.iter().map(|r| r.id()).collect();
    eprintln!(
        "usage: user_loop [--quick] [--secs S] [--locks ID,..] [WORKLOAD ...]\n\
         workloads (a name, or its part before a -): {}\n\
         locks: new, fifo, barging, range-mutex, range-lock, parking_lot, ticket",
        rows.join(" ")
    );
    std::process::exit(2)
}

/// What the command line asked for.
struct Options {
    quick: bool,
    secs: Option<f64>,
    locks: Option<Vec<String>>,
    workloads: Vec<String>,
}

fn options() -> Options {
    let mut options = Options {
        quick: false,
        secs: None,
        locks: None,
        workloads: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--secs" => {
                options.secs = Some(
                    args.next()
                        .and_then(|s| s.parse::<f64>().ok())
                        .filter(|&s| s > 0.0 && s.is_finite())
                        .unwrap_or_else(|| usage()),
                );
            }
            "--locks" => {
                let list = args.next().unwrap_or_else(|| usage());
                options.locks = Some(list.split(',').map(str::to_owned).collect());
            }
            "-h" | "--help" => usage(),
            _ if arg.starts_with('-') => usage(),
            _ => options.workloads.push(arg),
        }
    }
    options
}

fn main() {
    let options = options();
    let rows: Vec<Row> = ROWS
        .into_iter()
        .filter(|r| {
            let id = r.id();
            options.workloads.is_empty()
                || options.workloads.iter().any(|w| {
                    id.strip_prefix(w.as_str())
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with('-'))
                })
        })
        .collect();
    let locks: Vec<Box<dyn Contender>> = candidates()
        .into_iter()
        .filter(|l| {
            options
                .locks
                .as_ref()
                .is_none_or(|only| only.iter().any(|o| o == l.id()))
        })
        .collect();
    if rows.is_empty() || locks.is_empty() {
        usage();
    }
    let quick = options.quick;
    let time = Duration::from_secs_f64(options.secs.unwrap_or(if quick { 0.05 } else { 1.0 }));
    let per_us = spins_per_us(if quick { 100_000 } else { 2_000_000 });
    let params = Params {
        time,
        short: (per_us / 10).max(1),
        long: per_us,
    };

    let cpus = thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let panic = if cfg!(panic = "abort") {
        "abort"
    } else {
        "unwind"
    };
    println!(
        "user_loop: {} s per lock and row; {cpus} CPUs; panic = {panic}; {} spin rounds ~ 1 us",
        time.as_secs_f64(),
        params.long,
    );
    if cfg!(debug_assertions) {
        println!("warning: a debug build: run with --profile user-loop");
    }
    if quick {
        println!("--quick: a smoke run; its figures mean nothing");
    }
    println!();
    print_line("", locks.iter().map(|l| l.name().to_owned()));

    let mut results = Results {
        locks: &locks,
        rows: Vec::new(),
    };
    for &row in &rows {
        let cells: Vec<Option<Outcome>> = locks
            .iter()
            .map(|l| l.applies(row).then(|| l.measure(row, &params)))
            .collect();
        results.rows.push((row, cells));
        print_line(
            &row.title(),
            locks
                .iter()
                .map(|l| results.figure(row, l.id()).map_or("-".into(), si)),
        );
        if row == Row::Hot(8) {
            print_line(
                "  longest single wait",
                locks.iter().map(|l| {
                    results
                        .outcome(row, l.id())
                        .and_then(|o| o.longest_wait)
                        .map_or("-".into(), millis)
                }),
            );
        }
    }
    print_cores(&results);
    print_targets(&results);
}

fn print_cores(results: &Results<'_>) {
    println!("\ncores the process got (CPU time / wall time)");
    print_line("", results.locks.iter().map(|l| l.name().to_owned()));
    for (row, cells) in &results.rows {
        print_line(
            &row.id(),
            cells.iter().map(|c| {
                c.and_then(|o| Some(o.cpu?.as_secs_f64() / o.wall.as_secs_f64()))
                    .map_or("-".into(), |cores| format!("{cores:.2}"))
            }),
        );
    }
}

fn print_targets(results: &Results<'_>) {
    let ours: Vec<&dyn Contender> = results
        .locks
        .iter()
        .map(|l| &**l)
        .filter(|l| matches!(l.kind(), Kind::Ours { .. }))
        .collect();
    if ours.is_empty() {
        return;
    }
    println!("\ntargets (for the default, new(), unless the line names another mode)");
    print_line(
        "",
        ours.iter()
            .map(|l| l.name().to_owned())
            .chain(["target".to_owned()]),
    );
    for (label, goal, show) in targets(results) {
        let cells: Vec<Option<String>> = ours
            .iter()
            .map(|l| match show(l.id()) {
                Shown::Ratio(r) => r.map(|r| format!("{r:.2}x")),
                Shown::Time(t) => t.map(millis),
            })
            .collect();
        // A target none of the rows run bears on.
        if cells.iter().all(Option::is_none) {
            continue;
        }
        print_line(
            &label,
            cells
                .into_iter()
                .map(|c| c.unwrap_or_else(|| "-".into()))
                .chain([goal.to_owned()]),
        );
    }
}
