//! Address-space benchmarks: the page cache over `RangeRwLock` (each operation locks its pages)
//! against `WholeRwSem` (one fair reader/writer lock for the whole mapping, as Linux's
//! `invalidate_lock`) and `std::sync::RwLock<()>` (the whole mapping again, std's lock), on a
//! `MemBacking` device. Benchmark names are the backends: `RangeRwLock`, `WholeRwSem`,
//! `std_RwLock`.
//!
//! Groups (cited in the README):
//!
//! - `faults_with_punch`: a 64 MiB file behind a 16 MiB cache on a device with 20 µs latency
//!   per page; 32 reader threads fault (`fault` + 64-byte read through the mapping) or `read`
//!   (4 KiB) random pages while one more thread punches a random page and rewrites it, in a
//!   loop, for as long as the readers run. One element = one reader operation.
//! - `disjoint_writes`: 8 threads, each writing 4 KiB at a time into its own 1 MiB region of
//!   one 8 MiB file, device latency 20 µs. One element = one 4 KiB write.
//! - `cached_reads`: a 4 MiB file fully cached, no latency, 4 threads reading random 4 KiB
//!   pages. One element = one 4 KiB read.
//!
//! Each sample spawns the threads, which line up on a barrier and each do `iters` operations;
//! the sample's time is the wall time from the first thread leaving the barrier to the last
//! thread finishing. Throughput is in elements (operations, all threads together) per second.
//! After each benchmark the space's counters are printed (cumulative over warm-up and
//! measurement).

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use rangelock::mm::{Access, AddressSpace, InvalidateLock, MemBacking, WholeRwSem, PAGE_SIZE};
use rangelock::RangeRwLock;

const PAGE: u64 = PAGE_SIZE as u64;
const LATENCY: Duration = Duration::from_micros(20);

/// xorshift64*: a small per-thread generator.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng((seed.wrapping_add(1)).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A page index below `pages`.
    fn page(&mut self, pages: u64) -> u64 {
        (self.next() >> 32) % pages
    }
}

/// Runs `op(thread_index, rng)` `iters` times on each of `threads` threads started together,
/// while `background` (if any) runs on one more thread until the others are done (it gets a
/// flag that is set when they are). Returns the wall time from the first thread leaving the
/// start barrier to the last of the `threads` finishing.
fn run_threads(
    threads: usize,
    iters: u64,
    op: &(dyn Fn(usize, &mut Rng) + Sync),
    background: Option<&(dyn Fn(&AtomicBool) + Sync)>,
) -> Duration {
    let barrier = Barrier::new(threads + usize::from(background.is_some()));
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        if let Some(bg) = background {
            let (barrier, stop) = (&barrier, &stop);
            s.spawn(move || {
                barrier.wait();
                bg(stop);
            });
        }
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let barrier = &barrier;
                s.spawn(move || {
                    let mut rng = Rng::new(t as u64);
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..iters {
                        op(t, &mut rng);
                    }
                    (start, Instant::now())
                })
            })
            .collect();
        let spans: Vec<(Instant, Instant)> =
            handles.into_iter().map(|h| h.join().unwrap()).collect();
        stop.store(true, Ordering::Relaxed);
        let start = spans.iter().map(|s| s.0).min().unwrap();
        let end = spans.iter().map(|s| s.1).max().unwrap();
        end - start
    })
}

/// Fills pages `first..first + pages` with data, one page-sized write each.
fn write_pages<L: InvalidateLock>(space: &AddressSpace<L, MemBacking>, first: u64, pages: u64) {
    let mut data = vec![0u8; PAGE_SIZE];
    for p in first..first + pages {
        data.fill(p as u8);
        space.write(p * PAGE, &data).unwrap();
    }
}

fn print_stats<L: InvalidateLock>(
    group: &str,
    name: &str,
    space: &AddressSpace<L, MemBacking>,
    extra: &str,
) {
    let s = space.stats();
    println!(
        "{group}/{name} counters: hits {} misses {} evictions {} invalidations {} lock_waits {}{extra}",
        s.hits, s.misses, s.evictions, s.invalidations, s.lock_waits
    );
}

// ---------------------------------------------------------------------------------------------
// (a) Faults and reads against a concurrent punch + rewrite loop.

const FAULT_FILE_PAGES: u64 = (64 << 20) / PAGE;
const FAULT_CACHE_PAGES: usize = 4096;
const FAULT_READERS: usize = 32;

fn faults_with_punch_one<L: InvalidateLock>(g: &mut BenchmarkGroup<'_, WallTime>, name: &str) {
    let backing = MemBacking::new(128 << 20).with_latency(LATENCY);
    let space: AddressSpace<L, MemBacking> =
        AddressSpace::with_lock_and_cache_pages(backing, FAULT_CACHE_PAGES);
    let t = Instant::now();
    write_pages(&space, 0, FAULT_FILE_PAGES);
    println!(
        "faults_with_punch/{name}: wrote {} MiB in {:.2?}",
        (FAULT_FILE_PAGES * PAGE) >> 20,
        t.elapsed()
    );
    let punches = AtomicU64::new(0);

    let reader = |_t: usize, rng: &mut Rng| {
        let r = rng.next();
        let off = (r >> 32) % FAULT_FILE_PAGES * PAGE;
        if r & 1 == 0 {
            let page = space.fault(off, Access::Read).unwrap();
            let mut buf = [0u8; 64];
            // A punch may unmap the page between the fault and the read: that is an error here,
            // and a normal outcome.
            let _ = black_box(page.read(0, &mut buf));
            black_box(buf);
        } else {
            let mut buf = [0u8; PAGE_SIZE];
            black_box(space.read(off, &mut buf).unwrap());
            black_box(&buf);
        }
    };
    let puncher = |stop: &AtomicBool| {
        let mut rng = Rng::new(u64::MAX);
        let data = vec![0x5au8; PAGE_SIZE];
        while !stop.load(Ordering::Relaxed) {
            let off = rng.page(FAULT_FILE_PAGES) * PAGE;
            space.punch_hole(off, PAGE).unwrap();
            space.write(off, &data).unwrap();
            punches.fetch_add(1, Ordering::Relaxed);
        }
    };
    g.bench_function(name, |b| {
        b.iter_custom(|iters| run_threads(FAULT_READERS, iters, &reader, Some(&puncher)));
    });
    print_stats(
        "faults_with_punch",
        name,
        &space,
        &format!(" punches {}", punches.load(Ordering::Relaxed)),
    );
}

fn faults_with_punch(c: &mut Criterion) {
    let mut g = c.benchmark_group("faults_with_punch");
    g.throughput(Throughput::Elements(FAULT_READERS as u64));
    faults_with_punch_one::<RangeRwLock>(&mut g, "RangeRwLock");
    faults_with_punch_one::<WholeRwSem>(&mut g, "WholeRwSem");
    faults_with_punch_one::<std::sync::RwLock<()>>(&mut g, "std_RwLock");
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// (b) Writers on disjoint regions of one file.

const WRITERS: usize = 8;
const REGION_PAGES: u64 = (1 << 20) / PAGE;

fn disjoint_writes_one<L: InvalidateLock>(g: &mut BenchmarkGroup<'_, WallTime>, name: &str) {
    let backing = MemBacking::new(16 << 20).with_latency(LATENCY);
    let space: AddressSpace<L, MemBacking> = AddressSpace::with_lock(backing);
    // Written once first, so that the measured writes overwrite allocated pages.
    write_pages(&space, 0, WRITERS as u64 * REGION_PAGES);
    let data = [0xa5u8; PAGE_SIZE];
    let writer = |t: usize, rng: &mut Rng| {
        let page = t as u64 * REGION_PAGES + rng.page(REGION_PAGES);
        black_box(space.write(page * PAGE, &data).unwrap());
    };
    g.bench_function(name, |b| {
        b.iter_custom(|iters| run_threads(WRITERS, iters, &writer, None));
    });
    print_stats("disjoint_writes", name, &space, "");
}

fn disjoint_writes(c: &mut Criterion) {
    let mut g = c.benchmark_group("disjoint_writes");
    g.throughput(Throughput::Elements(WRITERS as u64));
    disjoint_writes_one::<RangeRwLock>(&mut g, "RangeRwLock");
    disjoint_writes_one::<WholeRwSem>(&mut g, "WholeRwSem");
    disjoint_writes_one::<std::sync::RwLock<()>>(&mut g, "std_RwLock");
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// (c) Reads of a fully cached file.

const CACHED_FILE_PAGES: u64 = (4 << 20) / PAGE;
const CACHED_READERS: usize = 4;

fn cached_reads_one<L: InvalidateLock>(g: &mut BenchmarkGroup<'_, WallTime>, name: &str) {
    let space: AddressSpace<L, MemBacking> = AddressSpace::with_lock_and_cache_pages(
        MemBacking::new(8 << 20),
        2 * CACHED_FILE_PAGES as usize,
    );
    write_pages(&space, 0, CACHED_FILE_PAGES);
    let mut buf = vec![0u8; PAGE_SIZE];
    for p in 0..CACHED_FILE_PAGES {
        space.read(p * PAGE, &mut buf).unwrap();
    }
    assert_eq!(space.cached_pages() as u64, CACHED_FILE_PAGES);
    let reader = |_t: usize, rng: &mut Rng| {
        let mut buf = [0u8; PAGE_SIZE];
        let off = rng.page(CACHED_FILE_PAGES) * PAGE;
        black_box(space.read(off, &mut buf).unwrap());
        black_box(&buf);
    };
    g.bench_function(name, |b| {
        b.iter_custom(|iters| run_threads(CACHED_READERS, iters, &reader, None));
    });
    print_stats("cached_reads", name, &space, "");
}

fn cached_reads(c: &mut Criterion) {
    let mut g = c.benchmark_group("cached_reads");
    g.throughput(Throughput::Elements(CACHED_READERS as u64));
    cached_reads_one::<RangeRwLock>(&mut g, "RangeRwLock");
    cached_reads_one::<WholeRwSem>(&mut g, "WholeRwSem");
    cached_reads_one::<std::sync::RwLock<()>>(&mut g, "std_RwLock");
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        // Plotting costs seconds per benchmark on a small machine; pass
        // `-- --plotting-backend plotters` to get the HTML report's plots back.
        .without_plots()
}

criterion_group! {
    name = benches;
    config = config();
    targets = faults_with_punch, disjoint_writes, cached_reads
}
criterion_main!(benches);
