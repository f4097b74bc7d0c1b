//! The headline demo: the address space over the range lock versus over one whole-mapping
//! rwsem (what Linux's `invalidate_lock` is today), on three workloads, side by side. The
//! standard library's `RwLock` runs too, as a lock that lets readers starve a waiting writer.
//!
//!     cargo run --release --example contention
//!     cargo run --release --example contention -- --duration 5 --io-us 50 --workload a
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
//! Prints throughput, p50 and p99 operation latency and the ratios, and writes the table as
//! Markdown, the figures as JSON and a chart as SVG under `target/contention/`.

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
                "(a) {threads} threads fault/read a 64 MiB file, 16 MiB cache, {io} us IO; \
                 a punch + rewrite every {} us",
                config.punch_every.as_micros()
            ),
            Workload::Writes => {
                format!("(b) {threads} threads write disjoint 4 KiB blocks, {io} us IO")
            }
            Workload::Cached => format!("(c) {threads} threads read a cached 4 MiB file"),
            Workload::Sequential => format!(
                "(d) {threads} threads read 8 MiB each sequentially, 4 MiB cache, {io} us IO per request"
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
    duration: Duration,
    io: Duration,
    punch_every: Duration,
}

const USAGE: &str = "usage: contention [--workload a|b|c|d|all] [--backing mem|file] \
                     [--threads N] [--duration SECS] [--io-us MICROS] [--punch-every-us MICROS]";

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
        duration: Duration::from_secs(2),
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
            let space: AddressSpace<L, B> = AddressSpace::with_cache_pages(
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
                AddressSpace::new(B::make(region * threads as u64 + (1 << 20), config.io));
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
            let space: AddressSpace<L, B> = AddressSpace::with_cache_pages(
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
    let space: AddressSpace<L, B> =
        AddressSpace::with_cache_pages(B::make(total * PAGE, config.io), (4 << 20) / PAGE_SIZE);
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

/// The locks every workload runs over, in table order, with their chart colours.
const LOCKS: [(&str, &str); 4] = [
    ("RangeRwLock", "#2a7ab8"),
    ("WholeRwSem", "#c0504d"),
    ("std RwLock", "#9a9a9a"),
    ("Unlocked", "#6aa84f"),
];

struct Row {
    title: String,
    letter: char,
    /// One per entry of `LOCKS`, in that order.
    outcomes: Vec<Outcome>,
}

impl Row {
    fn range(&self) -> &Outcome {
        &self.outcomes[0]
    }
}

fn p99(o: &Outcome) -> f64 {
    o.latency.quantile(0.99).as_secs_f64()
}

fn table(rows: &[Row]) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "| workload | lock | throughput | p50 | p99 | punches | cores used |"
    );
    let _ = writeln!(t, "|---|---|---:|---:|---:|---:|---:|");
    for row in rows {
        for ((name, _), o) in LOCKS.iter().zip(&row.outcomes) {
            let _ = writeln!(
                t,
                "| {} | {name} | {} | {} | {} | {} | {:.2} |",
                row.title,
                rate(o.throughput()),
                micros(o.latency.quantile(0.5)),
                micros(o.latency.quantile(0.99)),
                o.background_ops,
                o.cores
            );
        }
        let (range, rwsem, unlocked) = (row.range(), &row.outcomes[1], &row.outcomes[3]);
        let _ = writeln!(
            t,
            "| {} | **range / rwsem** | **{:.2}x** | | p99 {:.2}x | | |",
            row.title,
            range.throughput() / rwsem.throughput(),
            p99(range) / p99(rwsem)
        );
        let _ = writeln!(
            t,
            "| {} | **range / unlocked** | **{:.2}x** | | p99 {:.2}x | | |",
            row.title,
            range.throughput() / unlocked.throughput(),
            p99(range) / p99(unlocked)
        );
    }
    t
}

/// The figures as JSON: `{"workloads":[{"id":"a","rows":[{"lock":..,"ops_per_s":..,
/// "p50_us":..,"p99_us":..}]}]}` (and, for (d), the fills and store reads of each row).
fn json(rows: &[Row]) -> String {
    let workloads: Vec<String> = rows
        .iter()
        .map(|row| {
            let cells: Vec<String> = LOCKS
                .iter()
                .zip(&row.outcomes)
                .map(|((name, _), o)| {
                    format!(
                        r#"{{"lock":"{name}","ops_per_s":{:.1},"p50_us":{:.2},"p99_us":{:.2},"fills":{},"store_reads":{}}}"#,
                        o.throughput(),
                        o.latency.quantile(0.5).as_secs_f64() * 1e6,
                        p99(o) * 1e6,
                        o.fills,
                        o.store_reads
                    )
                })
                .collect();
            format!(r#"{{"id":"{}","rows":[{}]}}"#, row.letter, cells.join(","))
        })
        .collect();
    format!("{{\"workloads\":[{}]}}\n", workloads.join(","))
}

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
        let best = row
            .outcomes
            .iter()
            .map(Outcome::throughput)
            .fold(0.0, f64::max);
        let _ = writeln!(
            s,
            r#"<text x="10" y="{}">{}</text>"#,
            y + 12.0,
            escape(&row.title)
        );
        y += 18.0;
        for ((name, colour), o) in LOCKS.iter().zip(&row.outcomes) {
            let w = (o.throughput() / best * 420.0).max(1.0);
            let _ = writeln!(
                s,
                r#"<rect x="110" y="{y}" width="{w:.1}" height="{}" fill="{colour}"/><text x="10" y="{}">{name}</text><text x="{:.1}" y="{}">{}</text>"#,
                bar - 4.0,
                y + bar / 2.0 + 2.0,
                116.0 + w,
                y + bar / 2.0 + 2.0,
                rate(o.throughput())
            );
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

/// Runs `w` over every lock of `LOCKS` on store `B`.
fn run_all<B: Make>(w: Workload, threads: usize, config: &Config) -> Vec<Outcome> {
    let runs: [fn(Workload, usize, &Config) -> Outcome; 4] = [
        run::<RangeRwLock, B>,
        run::<WholeRwSem, B>,
        run::<std::sync::RwLock<()>, B>,
        run::<Unlocked, B>,
    ];
    LOCKS
        .iter()
        .zip(runs)
        .map(|((name, _), run)| {
            eprint!("  {name:<12}");
            let o = run(w, threads, config);
            eprintln!(" {}", rate(o.throughput()));
            o
        })
        .collect()
}

fn main() {
    let config = parse_args();
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    eprintln!(
        "range lock vs whole rwsem vs no lock: {} workload(s), {:?} each per backend, {:?} store, {cores} cores available",
        config.workloads.len(),
        config.duration,
        config.store
    );
    let mut rows = Vec::new();
    for &w in &config.workloads {
        let threads = config.threads.unwrap_or(w.default_threads());
        let title = w.describe(threads, &config);
        eprintln!("{title}");
        let outcomes = match config.store {
            Store::Memory => run_all::<MemBacking>(w, threads, &config),
            Store::File => run_all::<FileBacking>(w, threads, &config),
        };
        rows.push(Row {
            title,
            letter: w.letter(),
            outcomes,
        });
    }
    let md = table(&rows);
    println!("\n{md}");
    for row in &rows {
        let used: Vec<String> = LOCKS
            .iter()
            .zip(&row.outcomes)
            .map(|((name, _), o)| format!("{:.2} ({name})", o.cores))
            .collect();
        let busiest = row.outcomes.iter().map(|o| o.cores).fold(0.0, f64::max);
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
        if row.range().store_reads > 0 {
            println!(
                "({}) readahead: {} pages filled with {} store requests ({:.1} pages per request)",
                row.letter,
                row.range().fills,
                row.range().store_reads,
                row.range().fills as f64 / row.range().store_reads as f64
            );
        }
    }
    let dir = results_dir();
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join("results.md"), &md))
        .and_then(|()| std::fs::write(dir.join("results.json"), json(&rows)))
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
    use super::Histogram;

    #[test]
    fn histogram_buckets_round_trip_within_their_precision() {
        for ns in [0u64, 1, 15, 16, 31, 32, 100, 1000, 123_456, 1 << 40] {
            let v = Histogram::value(Histogram::bucket(ns));
            assert!(v <= ns && ns - v <= ns / 16, "{ns} -> {v}");
        }
    }
}
