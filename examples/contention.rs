//! The headline demo: the address space over the range lock versus over one whole-mapping
//! rwsem (what Linux's `invalidate_lock` is today), on three workloads, side by side. The
//! standard library's `RwLock` runs too, as a lock that lets readers starve a waiting writer.
//!
//!     cargo run --release --example contention
//!     cargo run --release --example contention -- --duration 5 --io-us 50 --workload a
//!     cargo run --release --example contention -- --runs 7 --workload c
//!
//! Workloads:
//!   (a) faults: 32 threads fault or read random pages of a 64 MiB file through a 16 MiB page
//!       cache, with 20 us of IO per miss, while one thread punches a random page and rewrites
//!       it every 250 us (if the lock lets it keep up: the table shows how many it managed).
//!   (b) writes: 8 threads write 4 KiB at a time into disjoint parts of one file, 20 us IO each.
//!   (c) cached: 4 threads read random pages of a fully cached 4 MiB file; nothing conflicts.
//!   (d) sequential: 4 threads each read their own 8 MiB of a 32 MiB file page by page, through
//!       a 4 MiB cache (so every pass is cold), with 20 us of IO per store request: readahead
//!       turns page-by-page misses into a few large requests.
//!
//! Each workload runs over the range lock, the whole-mapping rwsem, std's `RwLock` and
//! `Unlocked` (no lock at all: incorrect, but the ceiling any lock is measured against).
//! `--backing file` runs them over a real file (`FileBacking`, in `target/contention/`)
//! instead of the simulated device; the simulated IO latency then does not apply.
//!
//! Built with `--features stats`, it also prints the range lock's own statistics for each
//! workload beside the table (`RangeRwLock::stats()`: acquisitions, how many waited, and for
//! how long), from the run with the median throughput:
//!
//!     cargo run --release --example contention --features stats
//!
//! Each workload runs `--runs` times (default 3) for `--duration` seconds (default 1) per lock;
//! the locks take turns, so that a load that comes and goes on the machine falls on all of them.
//! Prints throughput, p50 and p99 operation latency and the ratios of the range lock to the
//! others, each the median over the runs with its range (min–max): a ratio whose runs lie on
//! both sides of 1.00x is marked noise, as they do not agree which lock is faster. Writes the
//! table as Markdown, the figures as JSON and a chart as SVG under `target/contention/`.

use rangelock::mm::{
    Access, AddressSpace, Backing, FileBacking, InvalidateLock, MemBacking, Unlocked, WholeRwSem,
    PAGE_SIZE,
};
use rangelock::RangeRwLock;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

const PAGE: u64 = PAGE_SIZE as u64;

// ---- configuration ---------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Workload {
    Faults,
    Writes,
    Cached,
    Sequential,
}

impl Workload {
    fn letter(self) -> char {
        match self {
            Workload::Faults => 'a',
            Workload::Writes => 'b',
            Workload::Cached => 'c',
            Workload::Sequential => 'd',
        }
    }

    /// The short name the table and the README use.
    fn label(self) -> &'static str {
        match self {
            Workload::Faults => "(a) faults + punches",
            Workload::Writes => "(b) disjoint writes",
            Workload::Cached => "(c) cached reads",
            Workload::Sequential => "(d) sequential reads",
        }
    }

    fn default_threads(self) -> usize {
        match self {
            Workload::Faults => 32,
            Workload::Writes => 8,
            Workload::Cached | Workload::Sequential => 4,
        }
    }

    fn describe(self, threads: usize, config: &Config) -> String {
        let io = config.io.as_micros();
        match self {
            Workload::Faults => format!(
                "{threads} threads fault/read a 64 MiB file, 16 MiB cache, {io} us IO; \
                 a punch + rewrite every {} us",
                config.punch_every.as_micros()
            ),
            Workload::Writes => {
                format!("{threads} threads write disjoint 4 KiB blocks, {io} us IO")
            }
            Workload::Cached => format!("{threads} threads read a cached 4 MiB file"),
            Workload::Sequential => format!(
                "{threads} threads read 8 MiB each sequentially, 4 MiB cache, {io} us IO per request"
            ),
        }
    }
}

/// Where the file lives.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Store {
    /// The simulated device, with `--io-us` of latency per request.
    Memory,
    /// A real file under `target/contention/`.
    File,
}

struct Config {
    workloads: Vec<Workload>,
    store: Store,
    threads: Option<usize>,
    /// How many times each workload runs over each lock.
    runs: usize,
    duration: Duration,
    io: Duration,
    punch_every: Duration,
}

const USAGE: &str = "usage: contention [--workload a|b|c|d|all] [--backing mem|file] \
                     [--threads N] [--runs N] [--duration SECS] [--io-us MICROS] \
                     [--punch-every-us MICROS]";

fn parse_args() -> Config {
    let mut config = Config {
        workloads: vec![
            Workload::Faults,
            Workload::Writes,
            Workload::Cached,
            Workload::Sequential,
        ],
        store: Store::Memory,
        threads: None,
        runs: 3,
        duration: Duration::from_secs(1),
        io: Duration::from_micros(20),
        punch_every: Duration::from_micros(250),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| fail(&format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--workload" | "-w" => {
                config.workloads = match value().as_str() {
                    "a" => vec![Workload::Faults],
                    "b" => vec![Workload::Writes],
                    "c" => vec![Workload::Cached],
                    "d" => vec![Workload::Sequential],
                    "all" => config.workloads.clone(),
                    other => fail(&format!("unknown workload {other:?}")),
                }
            }
            "--backing" | "-b" => {
                config.store = match value().as_str() {
                    "mem" | "memory" => Store::Memory,
                    "file" => Store::File,
                    other => fail(&format!("unknown backing {other:?}")),
                }
            }
            "--threads" | "-t" => config.threads = Some(whole(&value(), "--threads") as usize),
            "--runs" | "-r" => config.runs = whole(&value(), "--runs") as usize,
            "--duration" | "-d" => {
                config.duration = Duration::from_secs_f64(number(&value(), "--duration"));
            }
            "--io-us" => config.io = Duration::from_micros(whole(&value(), "--io-us")),
            "--punch-every-us" => {
                config.punch_every = Duration::from_micros(whole(&value(), "--punch-every-us"));
            }
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => fail(&format!("unknown flag {other:?}")),
        }
    }
    if config.threads == Some(0) {
        fail("--threads must be at least 1");
    }
    if config.runs == 0 {
        fail("--runs must be at least 1");
    }
    config
}

fn number(s: &str, flag: &str) -> f64 {
    s.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .unwrap_or_else(|| fail(&format!("{flag} takes a non-negative number, not {s:?}")))
}

fn whole(s: &str, flag: &str) -> u64 {
    s.parse::<u64>()
        .unwrap_or_else(|_| fail(&format!("{flag} takes a whole number, not {s:?}")))
}

fn fail(msg: &str) -> ! {
    eprintln!("contention: {msg}\n{USAGE}");
    std::process::exit(2)
}

// ---- measurement ------------------------------------------------------------------------

/// A log-linear latency histogram: 16 buckets per power of two (about 6% precision).
#[derive(Clone)]
struct Histogram(Vec<u64>);

impl Histogram {
    fn new() -> Self {
        Histogram(vec![0; 64 * 16])
    }

    fn bucket(ns: u64) -> usize {
        if ns < 16 {
            ns as usize
        } else {
            let k = 63 - ns.leading_zeros() as usize;
            (k - 3) * 16 + ((ns >> (k - 4)) & 15) as usize
        }
    }

    fn value(bucket: usize) -> u64 {
        if bucket < 16 {
            bucket as u64
        } else {
            (16 + bucket as u64 % 16) << (bucket / 16 - 1)
        }
    }

    fn record(&mut self, d: Duration) {
        self.0[Self::bucket(d.as_nanos().min(u128::from(u64::MAX)) as u64)] += 1;
    }

    fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a += b;
        }
    }

    fn count(&self) -> u64 {
        self.0.iter().sum()
    }

    #[allow(clippy::cast_sign_loss)] // `q` is in [0, 1], so the product is not negative
    fn quantile(&self, q: f64) -> Duration {
        let target = ((self.count() as f64 * q).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.0.iter().enumerate() {
            seen += c;
            if seen >= target {
                return Duration::from_nanos(Self::value(i));
            }
        }
        Duration::ZERO
    }
}

/// CPU time used by this process so far, to tell how many cores a run really got.
fn cpu_time() -> Duration {
    #[cfg(target_os = "linux")]
    {
        // utime and stime, fields 14 and 15 of /proc/self/stat, in clock ticks (100 per second
        // on every Linux configuration in use).
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            let after_name = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
            let fields: Vec<&str> = after_name.split_whitespace().collect();
            if let (Some(u), Some(s)) = (fields.get(11), fields.get(12)) {
                let ticks = u.parse::<u64>().unwrap_or(0) + s.parse::<u64>().unwrap_or(0);
                return Duration::from_millis(ticks * 10);
            }
        }
    }
    Duration::ZERO
}

struct Outcome {
    ops: u64,
    elapsed: Duration,
    latency: Histogram,
    cores: f64,
    /// Operations of the background thread (punches in workload (a)).
    background_ops: u64,
    /// Pages filled from the store, and the requests that filled them (workload (d)).
    fills: u64,
    store_reads: u64,
}

impl Outcome {
    fn throughput(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs `threads` copies of `op` for `duration` (each op timed), plus `background` on one more
/// thread until they finish; shows a dot per half second meanwhile.
fn measure(
    threads: usize,
    duration: Duration,
    op: impl Fn(usize, &mut Rng) + Sync,
    background: Option<&(dyn Fn(&AtomicBool) -> u64 + Sync)>,
) -> Outcome {
    let stop = AtomicBool::new(false);
    let start = Barrier::new(threads + 1);
    let total = Mutex::new((0u64, Histogram::new()));
    let cpu_before = cpu_time();
    let mut elapsed = Duration::ZERO;
    let mut background_ops = 0;
    std::thread::scope(|s| {
        let background = background.map(|background| {
            let stop = &stop;
            s.spawn(move || background(stop))
        });
        for t in 0..threads {
            let (op, stop, start, total) = (&op, &stop, &start, &total);
            s.spawn(move || {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((t as u64 + 1) * 0x2545_F491_4F6C_DD1D));
                let mut hist = Histogram::new();
                let mut ops = 0;
                start.wait();
                while !stop.load(Relaxed) {
                    let began = Instant::now();
                    op(t, &mut rng);
                    hist.record(began.elapsed());
                    ops += 1;
                }
                let mut total = total.lock().unwrap();
                total.0 += ops;
                total.1.merge(&hist);
            });
        }
        start.wait();
        let began = Instant::now();
        while began.elapsed() < duration {
            std::thread::sleep(Duration::from_millis(500).min(duration));
            eprint!(".");
        }
        stop.store(true, Relaxed);
        elapsed = began.elapsed();
        background_ops = background.map_or(0, |b| b.join().unwrap());
    });
    let cores = (cpu_time().saturating_sub(cpu_before)).as_secs_f64() / elapsed.as_secs_f64();
    let (ops, latency) = total.into_inner().unwrap();
    Outcome {
        ops,
        elapsed,
        latency,
        cores,
        background_ops,
        fills: 0,
        store_reads: 0,
    }
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

// ---- the workloads -----------------------------------------------------------------------

/// A backing store the workloads can be built over.
trait Make: Backing + Sized {
    /// A store of `capacity` bytes, with `io` of latency per request where it is simulated.
    fn make(capacity: u64, io: Duration) -> Self;
}

impl Make for MemBacking {
    fn make(capacity: u64, io: Duration) -> Self {
        MemBacking::new(capacity).with_latency(io)
    }
}

impl Make for FileBacking {
    fn make(_capacity: u64, _io: Duration) -> Self {
        use std::sync::atomic::AtomicU64;
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = results_dir();
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| fail(&format!("{}: {e}", dir.display())));
        let path = dir.join(format!("space-{}.bin", NEXT.fetch_add(1, Relaxed)));
        let file = FileBacking::create(&path).unwrap_or_else(|e| fail(&e.to_string()));
        // The space keeps the file open; the name can go at once.
        let _ = std::fs::remove_file(&path);
        file
    }
}

fn results_dir() -> std::path::PathBuf {
    std::path::Path::new(&std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()))
        .join("contention")
}

fn run<L: InvalidateLock, B: Make>(workload: Workload, threads: usize, config: &Config) -> Outcome {
    match workload {
        Workload::Faults => {
            let pages = (64 << 20) / PAGE;
            let space: AddressSpace<L, B> = AddressSpace::with_lock_and_cache_pages(
                B::make(128 << 20, config.io),
                (16 << 20) / PAGE_SIZE,
            );
            let chunk = vec![0x5Au8; 1 << 20];
            for i in 0..64 {
                space.write(i << 20, &chunk).unwrap();
            }
            let page_data = vec![0xA5u8; PAGE_SIZE];
            let puncher = |stop: &AtomicBool| {
                let mut rng = Rng(42);
                let mut punches = 0;
                let began = Instant::now();
                while !stop.load(Relaxed) {
                    // Paced: one punch per interval, as long as the lock lets it keep up.
                    let due = began + config.punch_every * punches as u32;
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let p = rng.below(pages);
                    space.punch_hole(p * PAGE, PAGE).unwrap();
                    space.write(p * PAGE, &page_data).unwrap();
                    punches += 1;
                }
                punches
            };
            measure(
                threads,
                config.duration,
                |_, rng| {
                    let p = rng.below(pages);
                    let mut buf = [0u8; 64];
                    if rng.below(2) == 0 {
                        let page = space
                            .fault(p * PAGE + rng.below(PAGE), Access::Read)
                            .unwrap();
                        let _ = page.read(0, &mut buf); // Err if punched meanwhile: fine
                    } else {
                        space.read(p * PAGE, &mut buf).unwrap();
                    }
                },
                Some(&puncher),
            )
        }
        Workload::Writes => {
            let region = 1u64 << 20;
            let space: AddressSpace<L, B> =
                AddressSpace::with_lock(B::make(region * threads as u64 + (1 << 20), config.io));
            let data = vec![0x33u8; PAGE_SIZE];
            measure(
                threads,
                config.duration,
                |t, rng| {
                    let at = t as u64 * region + rng.below(region / PAGE) * PAGE;
                    space.write(at, &data).unwrap();
                },
                None,
            )
        }
        Workload::Cached => {
            let pages = (4 << 20) / PAGE;
            let space: AddressSpace<L, B> = AddressSpace::with_lock_and_cache_pages(
                B::make(8 << 20, Duration::ZERO),
                2 * pages as usize,
            );
            space.write(0, &vec![7u8; (pages * PAGE) as usize]).unwrap();
            let mut buf = vec![0u8; PAGE_SIZE];
            for p in 0..pages {
                space.read(p * PAGE, &mut buf).unwrap(); // now every page is cached
            }
            measure(
                threads,
                config.duration,
                |_, rng| {
                    let mut buf = [0u8; PAGE_SIZE];
                    space.read(rng.below(pages) * PAGE, &mut buf).unwrap();
                },
                None,
            )
        }
        Workload::Sequential => sequential::<L, B>(threads, config),
    }
}

/// Workload (d): each thread reads its own region page by page, wrapping around; the cache
/// is smaller than the file, so every pass misses.
fn sequential<L: InvalidateLock, B: Make>(threads: usize, config: &Config) -> Outcome {
    let region = (8 << 20) / PAGE;
    let total = region * threads as u64;
    let space: AddressSpace<L, B> = AddressSpace::with_lock_and_cache_pages(
        B::make(total * PAGE, config.io),
        (4 << 20) / PAGE_SIZE,
    );
    let chunk = vec![0x11u8; 1 << 20];
    for i in 0..(total * PAGE) >> 20 {
        space.write(i << 20, &chunk).unwrap();
    }
    space.drop_caches();
    let before = space.stats();
    let next: Vec<_> = (0..threads)
        .map(|_| std::sync::atomic::AtomicU64::new(0))
        .collect();
    let mut outcome = measure(
        threads,
        config.duration,
        |t, _| {
            let i = next[t].fetch_add(1, Relaxed) % region;
            let mut buf = [0u8; PAGE_SIZE];
            space
                .read((t as u64 * region + i) * PAGE, &mut buf)
                .unwrap();
        },
        None,
    );
    let after = space.stats();
    outcome.fills = after.fills - before.fills;
    outcome.store_reads = after.store_reads - before.store_reads;
    outcome
}

// ---- output ------------------------------------------------------------------------------

fn rate(ops_per_sec: f64) -> String {
    if ops_per_sec >= 1e6 {
        format!("{:.2} M/s", ops_per_sec / 1e6)
    } else {
        format!("{:.1} k/s", ops_per_sec / 1e3)
    }
}

fn micros(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 1000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{us:.1} us")
    }
}

/// `min`–`max` in the unit `rate` would give `max`.
fn rate_range(min: f64, max: f64) -> String {
    if max >= 1e6 {
        format!("{:.2}–{:.2} M/s", min / 1e6, max / 1e6)
    } else {
        format!("{:.1}–{:.1} k/s", min / 1e3, max / 1e3)
    }
}

/// The locks every workload runs over, in table order, with their chart colours.
const LOCKS: [(&str, &str); 4] = [
    ("RangeRwLock", "#2a7ab8"),
    ("WholeRwSem", "#c0504d"),
    ("std RwLock", "#9a9a9a"),
    ("Unlocked", "#6aa84f"),
];

/// The entries of `LOCKS` the range lock is compared with, and how the ratio is named.
const RATIOS: [(usize, &str); 2] = [(1, "range / rwsem"), (3, "range / unlocked")];

/// The median of some runs' figures, with their least and greatest.
#[derive(Clone, Copy, PartialEq, Debug)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

impl Spread {
    fn of(values: impl IntoIterator<Item = f64>) -> Spread {
        let mut v: Vec<f64> = values.into_iter().collect();
        assert!(!v.is_empty(), "a spread of no runs");
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Spread {
            median,
            min: v[0],
            max: v[n - 1],
        }
    }

    /// Whether the runs of a ratio lie on both sides of 1.00 (at the two decimals the table
    /// shows): then they do not agree which of the two locks is faster, and the median is noise.
    fn crosses_one(&self) -> bool {
        let hundredths = |x: f64| (x * 100.0).round();
        hundredths(self.min) < 100.0 && hundredths(self.max) > 100.0
    }
}

struct Row {
    /// The workload's short name, as `Workload::label`.
    label: &'static str,
    /// The label's letter and the full description, with the counts this run used.
    title: String,
    description: String,
    letter: char,
    /// One list per entry of `LOCKS`, in that order, of one outcome per run.
    outcomes: Vec<Vec<Outcome>>,
}

impl Row {
    fn runs(&self) -> usize {
        self.outcomes[0].len()
    }

    /// `f` over the runs of `LOCKS[lock]`.
    fn spread(&self, lock: usize, f: impl Fn(&Outcome) -> f64) -> Spread {
        Spread::of(self.outcomes[lock].iter().map(f))
    }

    /// `f` of the range lock over `f` of `LOCKS[lock]`, run by run: the two runs of a ratio
    /// come from the same round, close together in time.
    fn ratio(&self, lock: usize, f: impl Fn(&Outcome) -> f64) -> Spread {
        Spread::of(
            self.outcomes[0]
                .iter()
                .zip(&self.outcomes[lock])
                .map(|(range, other)| f(range) / f(other)),
        )
    }
}

fn p50(o: &Outcome) -> f64 {
    o.latency.quantile(0.5).as_secs_f64()
}

fn p99(o: &Outcome) -> f64 {
    o.latency.quantile(0.99).as_secs_f64()
}

/// A Markdown table row; an empty cell stays narrow, as in the README.
fn cells(cells: &[String]) -> String {
    let mut line = String::from("|");
    for c in cells {
        if c.is_empty() {
            line.push_str(" |");
        } else {
            let _ = write!(line, " {c} |");
        }
    }
    line.push('\n');
    line
}

/// The table of results (`results.md`): one block of rows per workload, named once by its
/// short label, then a legend with each workload's description and how to read the figures.
fn table(rows: &[Row], config: &Config) -> String {
    let several = config.runs > 1;
    let mut header = vec!["workload", "lock", "throughput"];
    if several {
        header.push("min–max");
    }
    header.extend(["p50", "p99", "punches", "cores used"]);
    let mut t = cells(&header.iter().map(ToString::to_string).collect::<Vec<_>>());
    t.push_str("|---|---|");
    t.push_str(&"---:|".repeat(header.len() - 2));
    t.push('\n');
    for row in rows {
        for (i, (name, _)) in LOCKS.iter().enumerate() {
            let throughput = row.spread(i, Outcome::throughput);
            let mut line = vec![
                if i == 0 { row.label } else { "" }.to_string(),
                (*name).to_string(),
                rate(throughput.median),
            ];
            if several {
                line.push(rate_range(throughput.min, throughput.max));
            }
            line.extend([
                micros(Duration::from_secs_f64(row.spread(i, p50).median)),
                micros(Duration::from_secs_f64(row.spread(i, p99).median)),
                format!("{:.0}", row.spread(i, |o| o.background_ops as f64).median),
                format!("{:.2}", row.spread(i, |o| o.cores).median),
            ]);
            t.push_str(&cells(&line));
        }
        for (other, name) in RATIOS {
            let ratio = row.ratio(other, Outcome::throughput);
            let mut line = vec![
                String::new(),
                format!("**{name}**"),
                format!("**{:.2}x**", ratio.median),
            ];
            if several {
                let noise = if ratio.crosses_one() { " (noise)" } else { "" };
                line.push(format!("{:.2}–{:.2}x{noise}", ratio.min, ratio.max));
            }
            line.extend([
                String::new(),
                format!("p99 {:.2}x", row.ratio(other, p99).median),
                String::new(),
                String::new(),
            ]);
            t.push_str(&cells(&line));
        }
    }
    t.push('\n');
    for row in rows {
        let _ = writeln!(t, "- {}: {}", row.label, row.description);
    }
    let duration = config.duration.as_secs_f64();
    let _ = if several {
        writeln!(
            t,
            "\nEach figure is the median of {} runs of {duration} s per lock (the locks take turns); \
             min–max is the range over the runs. A ratio compares the two locks run by run, within \
             a round; one marked noise had runs on both sides of 1.00x, so they do not agree \
             which lock is faster.",
            config.runs
        )
    } else {
        writeln!(
            t,
            "\nOne run of {duration} s per lock: without a spread, nothing tells a difference \
             from noise (`--runs 3` or more gives medians and their range)."
        )
    };
    t
}

/// The figures as JSON: `{"runs":..,"duration_s":..,"workloads":[{"id":"a","label":..,
/// "rows":[{"lock":..,"ops_per_s":..,"p50_us":..,"p99_us":..}],"ratios":[..]}]}`. Each figure
/// of a row is the median over the runs; a row also has `ops_per_s_runs` (run by run),
/// `ops_per_s_min` and `ops_per_s_max`, and, for (d), the fills and store reads. A ratio has
/// its `median`, `min`, `max` and whether its runs lie on both sides of 1.0 (`noise`).
fn json(rows: &[Row], config: &Config) -> String {
    let workloads: Vec<String> = rows
        .iter()
        .map(|row| {
            let cells: Vec<String> = LOCKS
                .iter()
                .enumerate()
                .map(|(i, (name, _))| {
                    let throughput = row.spread(i, Outcome::throughput);
                    let runs: Vec<String> = row.outcomes[i]
                        .iter()
                        .map(|o| format!("{:.1}", o.throughput()))
                        .collect();
                    format!(
                        r#"{{"lock":"{name}","ops_per_s":{:.1},"ops_per_s_min":{:.1},"ops_per_s_max":{:.1},"ops_per_s_runs":[{}],"p50_us":{:.2},"p99_us":{:.2},"fills":{:.0},"store_reads":{:.0}}}"#,
                        throughput.median,
                        throughput.min,
                        throughput.max,
                        runs.join(","),
                        row.spread(i, p50).median * 1e6,
                        row.spread(i, p99).median * 1e6,
                        row.spread(i, |o| o.fills as f64).median,
                        row.spread(i, |o| o.store_reads as f64).median
                    )
                })
                .collect();
            let ratios: Vec<String> = RATIOS
                .iter()
                .map(|&(other, name)| {
                    let r = row.ratio(other, Outcome::throughput);
                    format!(
                        r#"{{"of":"{name}","median":{:.3},"min":{:.3},"max":{:.3},"noise":{}}}"#,
                        r.median,
                        r.min,
                        r.max,
                        r.crosses_one()
                    )
                })
                .collect();
            format!(
                r#"{{"id":"{}","label":"{}","rows":[{}],"ratios":[{}]}}"#,
                row.letter,
                row.label,
                cells.join(","),
                ratios.join(",")
            )
        })
        .collect();
    format!(
        "{{\"runs\":{},\"duration_s\":{},\"workloads\":[{}]}}\n",
        config.runs,
        config.duration.as_secs_f64(),
        workloads.join(",")
    )
}

/// A bar per lock at its median throughput; with several runs, a line across each bar's end
/// shows their range.
fn svg(rows: &[Row]) -> String {
    let (width, bar, gap) = (700.0, 26.0, 18.0);
    let height = 60.0 + rows.len() as f64 * (LOCKS.len() as f64 * bar + gap + 24.0);
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="13">
<text x="10" y="22" font-size="15" font-weight="bold">Throughput, range lock vs whole-mapping rwsem vs no lock (longer is better)</text>
"#
    );
    let mut y = 44.0;
    for row in rows {
        let best = (0..LOCKS.len())
            .map(|i| row.spread(i, Outcome::throughput).max)
            .fold(0.0, f64::max);
        let _ = writeln!(
            s,
            r#"<text x="10" y="{}">{}</text>"#,
            y + 12.0,
            escape(&row.title)
        );
        y += 18.0;
        for (i, (name, colour)) in LOCKS.iter().enumerate() {
            let throughput = row.spread(i, Outcome::throughput);
            let x = |ops: f64| 110.0 + (ops / best * 420.0).max(1.0);
            let w = x(throughput.median) - 110.0;
            let _ = writeln!(
                s,
                r#"<rect x="110" y="{y}" width="{w:.1}" height="{}" fill="{colour}"/><text x="10" y="{}">{name}</text><text x="{:.1}" y="{}">{}</text>"#,
                bar - 4.0,
                y + bar / 2.0 + 2.0,
                x(throughput.max) + 6.0,
                y + bar / 2.0 + 2.0,
                rate(throughput.median)
            );
            if row.runs() > 1 {
                let _ = writeln!(
                    s,
                    r##"<line x1="{:.1}" x2="{:.1}" y1="{mid}" y2="{mid}" stroke="#222" stroke-width="2"/>"##,
                    x(throughput.min),
                    x(throughput.max),
                    mid = y + (bar - 4.0) / 2.0
                );
            }
            y += bar;
        }
        y += gap;
    }
    s.push_str("</svg>\n");
    s
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Runs `w` `config.runs` times over every lock of `LOCKS` on store `B`; returns, per lock, its
/// outcome of each run. Each round starts with the next lock, so that no lock always runs right
/// after the same other one.
fn run_all<B: Make>(w: Workload, threads: usize, config: &Config) -> Vec<Vec<Outcome>> {
    let runs: [fn(Workload, usize, &Config) -> Outcome; 4] = [
        run::<RangeRow, B>,
        run::<WholeRwSem, B>,
        run::<std::sync::RwLock<()>, B>,
        run::<Unlocked, B>,
    ];
    let mut outcomes: Vec<Vec<Outcome>> = LOCKS.iter().map(|_| Vec::new()).collect();
    for round in 0..config.runs {
        if config.runs > 1 {
            eprintln!("  run {} of {}", round + 1, config.runs);
        }
        for k in 0..LOCKS.len() {
            let i = (round + k) % LOCKS.len();
            eprint!("  {:<12}", LOCKS[i].0);
            let o = runs[i](w, threads, config);
            #[cfg(feature = "stats")]
            if i == 0 {
                lock_stats::record(w, &o);
            }
            eprintln!(" {}", rate(o.throughput()));
            outcomes[i].push(o);
        }
    }
    outcomes
}

/// The lock of the `RangeRwLock` row.
#[cfg(not(feature = "stats"))]
type RangeRow = RangeRwLock;
#[cfg(feature = "stats")]
type RangeRow = lock_stats::Counted;

/// With `--features stats`: the range lock's statistics of each run.
#[cfg(feature = "stats")]
mod lock_stats {
    use super::{Config, InvalidateLock, Outcome, RangeRwLock, Workload};
    use rangelock::{LockStats, RangeReadGuard, RangeWriteGuard};
    use std::ops::RangeInclusive;
    use std::sync::{Arc, Mutex};

    /// The range lock, behind an `Arc` that the demo keeps too, so that it can read the lock's
    /// statistics after the run (the address space owns its lock).
    pub struct Counted(Arc<RangeRwLock>);

    /// The lock of the latest space, and what each run of the range lock recorded.
    static LATEST: Mutex<Option<Arc<RangeRwLock>>> = Mutex::new(None);
    static RUNS: Mutex<Vec<(Workload, f64, LockStats)>> = Mutex::new(Vec::new());

    impl Default for Counted {
        fn default() -> Self {
            let lock = Arc::new(RangeRwLock::default());
            *LATEST.lock().unwrap() = Some(lock.clone());
            Counted(lock)
        }
    }

    impl InvalidateLock for Counted {
        type Shared<'a> = RangeReadGuard<'a>;
        type Exclusive<'a> = RangeWriteGuard<'a>;

        fn lock_shared(&self, pages: RangeInclusive<u64>) -> RangeReadGuard<'_> {
            self.0.read(pages)
        }
        fn lock_exclusive(&self, pages: RangeInclusive<u64>) -> RangeWriteGuard<'_> {
            self.0.write(pages)
        }
        fn try_lock_shared(&self, pages: RangeInclusive<u64>) -> Option<RangeReadGuard<'_>> {
            self.0.try_read(pages)
        }
        fn try_lock_exclusive(&self, pages: RangeInclusive<u64>) -> Option<RangeWriteGuard<'_>> {
            self.0.try_write(pages)
        }
    }

    /// After a run of the range lock on `w`: keeps its lock's statistics.
    pub fn record(w: Workload, outcome: &Outcome) {
        if let Some(lock) = LATEST.lock().unwrap().take() {
            RUNS.lock()
                .unwrap()
                .push((w, outcome.throughput(), lock.stats()));
        }
    }

    /// Prints, for each workload, the statistics of its run with the median throughput.
    pub fn print(config: &Config) {
        let runs = RUNS.lock().unwrap();
        println!("RangeRwLock statistics (feature stats), from the median run of each workload:");
        for &w in &config.workloads {
            let mut mine: Vec<&(Workload, f64, LockStats)> =
                runs.iter().filter(|(rw, ..)| *rw == w).collect();
            mine.sort_by(|a, b| a.1.total_cmp(&b.1));
            if let Some((_, _, stats)) = mine.get(mine.len() / 2) {
                let text = stats.to_string().replace('\n', "\n    ");
                println!("({}) {text}", w.letter());
            }
        }
        println!();
    }
}

fn main() {
    let config = parse_args();
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    eprintln!(
        "range lock vs whole rwsem vs no lock: {} workload(s), {} run(s) of {:?} each per backend, {:?} store, {cores} cores available",
        config.workloads.len(),
        config.runs,
        config.duration,
        config.store
    );
    let mut rows = Vec::new();
    for &w in &config.workloads {
        let threads = config.threads.unwrap_or(w.default_threads());
        let description = w.describe(threads, &config);
        eprintln!("{}: {description}", w.label());
        let outcomes = match config.store {
            Store::Memory => run_all::<MemBacking>(w, threads, &config),
            Store::File => run_all::<FileBacking>(w, threads, &config),
        };
        rows.push(Row {
            label: w.label(),
            title: format!("({}) {description}", w.letter()),
            description,
            letter: w.letter(),
            outcomes,
        });
    }
    let md = table(&rows, &config);
    println!("\n{md}");
    #[cfg(feature = "stats")]
    lock_stats::print(&config);
    for row in &rows {
        let core_use: Vec<f64> = (0..LOCKS.len())
            .map(|i| row.spread(i, |o| o.cores).median)
            .collect();
        let used: Vec<String> = LOCKS
            .iter()
            .zip(&core_use)
            .map(|((name, _), c)| format!("{c:.2} ({name})"))
            .collect();
        let busiest = core_use.iter().copied().fold(0.0, f64::max);
        println!(
            "({}) cores used: {} of {cores}{}",
            row.letter,
            used.join(", "),
            if busiest > cores as f64 * 0.9 {
                ": CPU-bound"
            } else {
                ""
            }
        );
        let fills = row.spread(0, |o| o.fills as f64).median;
        let store_reads = row.spread(0, |o| o.store_reads as f64).median;
        if store_reads > 0.0 {
            println!(
                "({}) readahead: {fills:.0} pages filled with {store_reads:.0} store requests ({:.1} pages per request)",
                row.letter,
                fills / store_reads
            );
        }
    }
    let dir = results_dir();
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join("results.md"), &md))
        .and_then(|()| std::fs::write(dir.join("results.json"), json(&rows, &config)))
        .and_then(|()| std::fs::write(dir.join("throughput.svg"), svg(&rows)));
    match written {
        Ok(()) => println!(
            "\nwrote {0}/results.md, {0}/results.json and {0}/throughput.svg",
            dir.display()
        ),
        Err(e) => eprintln!("could not write results under {}: {e}", dir.display()),
    }
    let _ = std::io::stdout().flush();
}

#[cfg(test)]
mod tests {
    use super::{table, Config, Histogram, Outcome, Row, Spread, Store, Workload, LOCKS};
    use std::time::Duration;

    #[test]
    fn histogram_buckets_round_trip_within_their_precision() {
        for ns in [0u64, 1, 15, 16, 31, 32, 100, 1000, 123_456, 1 << 40] {
            let v = Histogram::value(Histogram::bucket(ns));
            assert!(v <= ns && ns - v <= ns / 16, "{ns} -> {v}");
        }
    }

    #[test]
    fn a_spread_is_the_median_and_the_extremes_of_the_runs() {
        let odd = Spread::of([3.0, 1.0, 2.0]);
        assert_eq!((odd.median, odd.min, odd.max), (2.0, 1.0, 3.0));
        let even = Spread::of([4.0, 1.0, 2.0, 8.0]);
        assert_eq!((even.median, even.min, even.max), (3.0, 1.0, 8.0));
        let one = Spread::of([1.5]);
        assert_eq!((one.median, one.min, one.max), (1.5, 1.5, 1.5));
    }

    #[test]
    fn a_ratio_is_noise_only_when_its_runs_lie_on_both_sides_of_one() {
        assert!(Spread::of([0.9, 1.2, 1.1]).crosses_one());
        assert!(!Spread::of([1.1, 1.3, 1.2]).crosses_one());
        assert!(!Spread::of([0.5, 0.9, 0.7]).crosses_one());
        assert!(!Spread::of([2.0]).crosses_one());
        // 0.998 shows as 1.00x: no run says the other lock is faster.
        assert!(!Spread::of([0.998, 1.1]).crosses_one());
        assert!(Spread::of([0.994, 1.1]).crosses_one());
    }

    /// An outcome of `ops` operations in one second.
    fn outcome(ops: u64) -> Outcome {
        let mut latency = Histogram::new();
        latency.record(Duration::from_nanos(8192)); // a bucket's own value: no rounding
        Outcome {
            ops,
            elapsed: Duration::from_secs(1),
            latency,
            cores: 1.0,
            background_ops: 0,
            fills: 0,
            store_reads: 0,
        }
    }

    #[test]
    fn the_table_names_each_workload_once_and_marks_the_ratios_that_are_noise() {
        let config = Config {
            workloads: vec![Workload::Cached],
            store: Store::Memory,
            threads: None,
            runs: 3,
            duration: Duration::from_secs(1),
            io: Duration::ZERO,
            punch_every: Duration::ZERO,
        };
        // Run by run, range / rwsem is 1.2, 0.9, 1.1 (noise); range / unlocked 2, 2, 2.
        let throughputs: [[u64; 3]; 4] = [
            [1200, 900, 1100],
            [1000, 1000, 1000],
            [500, 500, 500],
            [600, 450, 550],
        ];
        let row = Row {
            label: Workload::Cached.label(),
            title: "(c) 4 threads read a cached 4 MiB file".into(),
            description: "4 threads read a cached 4 MiB file".into(),
            letter: 'c',
            outcomes: throughputs
                .iter()
                .map(|runs| runs.iter().map(|&ops| outcome(ops)).collect())
                .collect(),
        };
        let t = table(&[row], &config);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 2 + LOCKS.len() + 2 + 1 + 1 + 2, "{t}");
        assert_eq!(lines[2], "| (c) cached reads | RangeRwLock | 1.1 k/s | 0.9–1.2 k/s | 8.2 us | 8.2 us | 0 | 1.00 |");
        assert_eq!(
            lines[3],
            "| | WholeRwSem | 1.0 k/s | 1.0–1.0 k/s | 8.2 us | 8.2 us | 0 | 1.00 |"
        );
        assert_eq!(
            lines[6],
            "| | **range / rwsem** | **1.10x** | 0.90–1.20x (noise) | | p99 1.00x | | |"
        );
        assert_eq!(
            lines[7],
            "| | **range / unlocked** | **2.00x** | 2.00–2.00x | | p99 1.00x | | |"
        );
        // The label names the block once and the legend once; the description is in the legend.
        assert_eq!(t.matches("(c) cached reads").count(), 2, "{t}");
        assert_eq!(t.matches("read a cached 4 MiB file").count(), 1, "{t}");
        assert_eq!(
            lines[9],
            "- (c) cached reads: 4 threads read a cached 4 MiB file"
        );
    }
}
