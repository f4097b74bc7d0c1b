//! Shared by the integration tests: a small seeded generator.
#![allow(dead_code)] // each test crate uses part of it

/// `SplitMix64`: seeded, reproducible, good enough to pick operations.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n`; `n` must be non-zero.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
}

/// The seed to run: `$name` from the environment if set (to reproduce a failure), else `default`.
pub fn seed_from_env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// What a [`Hooked`] store is about to do.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Op {
    WritePage,
    Punch,
}

/// Decides, before each page write and punch of a [`Hooked`] store, whether it fails (`Err`:
/// nothing is done) or goes on; it may also block to order the operation against others.
pub trait Hook: Send + Sync {
    fn before(&self, op: Op) -> std::io::Result<()>;
}

/// A `MemBacking` whose page writes and punches ask `hook` first: a store that fails, or
/// that holds an operation at a gate, on a test's command.
pub struct Hooked<H> {
    pub inner: rangelock::mm::MemBacking,
    pub hook: H,
}

impl<H: Hook> Hooked<H> {
    pub fn new(hook: H) -> Self {
        Hooked {
            inner: rangelock::mm::MemBacking::new(1 << 30),
            hook,
        }
    }
}

impl<H: Hook> rangelock::mm::Backing for Hooked<H> {
    fn stored_len(&self) -> u64 {
        self.inner.stored_len()
    }
    fn read_page(
        &self,
        index: u64,
        buf: &mut [u8; rangelock::mm::PAGE_SIZE],
    ) -> std::io::Result<()> {
        self.inner.read_page(index, buf)
    }
    fn write_page(&self, index: u64, at: usize, data: &[u8]) -> std::io::Result<()> {
        self.hook.before(Op::WritePage)?;
        self.inner.write_page(index, at, data)
    }
    fn reserve(&self, pages: &mut dyn Iterator<Item = u64>) -> std::io::Result<()> {
        self.inner.reserve(pages)
    }
    fn punch(&self, start: u64, end: u64) -> std::io::Result<()> {
        self.hook.before(Op::Punch)?;
        self.inner.punch(start, end)
    }
    fn stored_pages(&self, first: u64, last: u64, out: &mut Vec<u64>) -> std::io::Result<()> {
        self.inner.stored_pages(first, last, out)
    }
    fn truncate(&self, len: u64) -> std::io::Result<()> {
        self.inner.truncate(len)
    }
    fn sync(&self, len: u64) -> std::io::Result<()> {
        self.inner.sync(len)
    }
}

/// With `deadlock_detection`: a thread that calls `check_deadlock()` over and over while a
/// stress test runs, for tests whose threads and tasks never wait while they hold a range, so
/// that every cycle it finds is false.
#[cfg(feature = "deadlock_detection")]
pub struct Watchdog {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<(u64, Option<String>)>,
}

#[cfg(feature = "deadlock_detection")]
impl Watchdog {
    pub fn start() -> Watchdog {
        use std::sync::atomic::Ordering::Relaxed;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = std::thread::spawn({
            let stop = stop.clone();
            move || {
                let mut checks = 0;
                while !stop.load(Relaxed) {
                    let cycles = rangelock::deadlock::check_deadlock();
                    checks += 1;
                    if let Some(cycle) = cycles.first() {
                        let report: Vec<String> = cycle.iter().map(ToString::to_string).collect();
                        return (checks, Some(report.join("\n")));
                    }
                    std::thread::sleep(std::time::Duration::from_micros(200));
                }
                (checks, None)
            }
        });
        Watchdog { stop, thread }
    }

    /// Stops the watchdog; panics with the first cycle it found, if any.
    pub fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (checks, cycle) = self.thread.join().expect("the watchdog panicked");
        if let Some(cycle) = cycle {
            panic!("the watchdog found a false cycle (after {checks} checks):\n{cycle}");
        }
        assert!(checks > 0, "the watchdog never looked");
        eprintln!("watchdog: {checks} checks, no cycle");
    }
}
