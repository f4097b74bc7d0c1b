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
//!
//! Prints throughput, p50 and p99 operation latency and the range/rwsem ratio, and writes the
//! table as Markdown and a chart as SVG under `target/contention/`.

use rangelock::mm::{Access, AddressSpace, InvalidateLock, MemBacking, WholeRwSem, PAGE_SIZE};
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
}

impl Workload {
    fn letter(self) -> char {
        match self {
            Workload::Faults => 'a',
            Workload::Writes => 'b',
            Workload::Cached => 'c',
        }
    }

    fn default_threads(self) -> usize {
        match self {
            Workload::Faults => 32,
            Workload::Writes => 8,
            Workload::Cached => 4,
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
        }
    }
}

struct Config {
    workloads: Vec<Workload>,
    threads: Option<usize>,
    duration: Duration,
    io: Duration,
    punch_every: Duration,
}

const USAGE: &str = "usage: contention [--workload a|b|c|all] [--threads N] [--duration SECS] \
                     [--io-us MICROS] [--punch-every-us MICROS]";

fn parse_args() -> Config {
    let mut config = Config {
        workloads: vec![Workload::Faults, Workload::Writes, Workload::Cached],
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
                    "all" => config.workloads.clone(),
                    other => fail(&format!("unknown workload {other:?}")),
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

fn run<L: InvalidateLock>(workload: Workload, threads: usize, config: &Config) -> Outcome {
    match workload {
        Workload::Faults => {
            let pages = (64 << 20) / PAGE;
            let space: AddressSpace<L, MemBacking> = AddressSpace::with_cache_pages(
                MemBacking::new(128 << 20).with_latency(config.io),
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
            let space: AddressSpace<L, MemBacking> = AddressSpace::new(
                MemBacking::new(region * threads as u64 + (1 << 20)).with_latency(config.io),
            );
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
            let space: AddressSpace<L, MemBacking> =
                AddressSpace::with_cache_pages(MemBacking::new(8 << 20), 2 * pages as usize);
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
    }
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

struct Row {
    title: String,
    letter: char,
    range: Outcome,
    rwsem: Outcome,
    std: Outcome,
}

fn table(rows: &[Row]) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "| workload | lock | throughput | p50 | p99 | punches | cores used |"
    );
    let _ = writeln!(t, "|---|---|---:|---:|---:|---:|---:|");
    for row in rows {
        for (name, o) in [
            ("RangeRwLock", &row.range),
            ("WholeRwSem", &row.rwsem),
            ("std RwLock", &row.std),
        ] {
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
        let p99 = |o: &Outcome| o.latency.quantile(0.99).as_secs_f64();
        let _ = writeln!(
            t,
            "| {} | **range / rwsem** | **{:.1}x** | | p99 {:.2}x | | |",
            row.title,
            row.range.throughput() / row.rwsem.throughput(),
            p99(&row.range) / p99(&row.rwsem)
        );
    }
    t
}

fn svg(rows: &[Row]) -> String {
    let (width, bar, gap) = (700.0, 26.0, 18.0);
    let height = 60.0 + rows.len() as f64 * (3.0 * bar + gap + 24.0);
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="13">
<text x="10" y="22" font-size="15" font-weight="bold">Throughput, range lock vs whole-mapping rwsem (longer is better)</text>
"#
    );
    let mut y = 44.0;
    for row in rows {
        let best = row
            .range
            .throughput()
            .max(row.rwsem.throughput())
            .max(row.std.throughput());
        let _ = writeln!(
            s,
            r#"<text x="10" y="{}">{}</text>"#,
            y + 12.0,
            escape(&row.title)
        );
        y += 18.0;
        for (name, o, colour) in [
            ("RangeRwLock", &row.range, "#2a7ab8"),
            ("WholeRwSem", &row.rwsem, "#c0504d"),
            ("std RwLock", &row.std, "#9a9a9a"),
        ] {
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

fn main() {
    let config = parse_args();
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    eprintln!(
        "range lock vs whole rwsem: {} workload(s), {:?} each per backend, {cores} cores available",
        config.workloads.len(),
        config.duration
    );
    let mut rows = Vec::new();
    for &w in &config.workloads {
        let threads = config.threads.unwrap_or(w.default_threads());
        let title = w.describe(threads, &config);
        eprint!("{title}\n  RangeRwLock ");
        let range = run::<RangeRwLock>(w, threads, &config);
        eprint!(" {}\n  WholeRwSem  ", rate(range.throughput()));
        let rwsem = run::<WholeRwSem>(w, threads, &config);
        eprint!(" {}\n  std RwLock  ", rate(rwsem.throughput()));
        let std = run::<std::sync::RwLock<()>>(w, threads, &config);
        eprintln!(" {}", rate(std.throughput()));
        rows.push(Row {
            title,
            letter: w.letter(),
            range,
            rwsem,
            std,
        });
    }
    let md = table(&rows);
    println!("\n{md}");
    for row in &rows {
        let busiest = row.range.cores.max(row.rwsem.cores).max(row.std.cores);
        println!(
            "({}) CPU used: {:.2} cores (range), {:.2} (rwsem), {:.2} (std) of {cores}{}",
            row.letter,
            row.range.cores,
            row.rwsem.cores,
            row.std.cores,
            if busiest > cores as f64 * 0.9 {
                ": CPU-bound"
            } else {
                ""
            }
        );
    }
    let dir = std::path::Path::new(
        &std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()),
    )
    .join("contention");
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join("results.md"), &md))
        .and_then(|()| std::fs::write(dir.join("throughput.svg"), svg(&rows)));
    match written {
        Ok(()) => println!(
            "\nwrote {0}/results.md and {0}/throughput.svg",
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
