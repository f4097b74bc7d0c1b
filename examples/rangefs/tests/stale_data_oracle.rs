//! The concurrent oracle through the kernel: writers, punchers and readers on one file of the
//! `mem` backing, whose device is exactly as large as the file, so that a punched page's block
//! is the next one a write anywhere in the file gets.
//!
//! Every page write stamps the whole page with the page's index and a version. A read must
//! never return another page's data, a torn page, or a version older than the last write
//! completed before the read began. The test serialises the changes to each page (a mutex per
//! page, held across the system call) so that each page has one history: versions are handed
//! out in order, and a punch is a version too (its page reads as zeros). A read that began
//! when version `c` was complete and ended before version `s + 1` started may return any
//! version in `c..=s`.
//!
//! With `--lock range` and `--lock rwsem` no read is bad. With `--lock unlocked` a fill races
//! a punch and the write that reuses the punched block, and bad pages appear.

mod common;

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use common::{falloc, Mount, Rng};
use nix::fcntl::FallocateFlags;

const PAGE: usize = 4096;
const PAGES: u64 = 64;
const WRITERS: u64 = 2;
const PUNCHERS: u64 = 1;
const READERS: u64 = 4;

/// One page's history as the test made it.
#[derive(Default)]
struct History {
    /// Held by the one thread changing the page, across its system call.
    change: Mutex<()>,
    /// The version of the last change started, and of the last one completed.
    started: AtomicU64,
    completed: AtomicU64,
    /// The versions that were punches (version 0, the file's initial zeros, is one too).
    punches: Mutex<HashSet<u64>>,
}

/// A page of `index` at `version`: 16-byte stamps, each the index and the version.
fn stamped(index: u64, version: u64) -> Vec<u8> {
    let mut stamp = [0u8; 16];
    stamp[..8].copy_from_slice(&index.to_le_bytes());
    stamp[8..].copy_from_slice(&version.to_le_bytes());
    stamp.repeat(PAGE / 16)
}

/// What went wrong with a page read, if anything.
fn judge(page: u64, buf: &[u8], completed: u64, started: u64, history: &History) -> Option<String> {
    if buf.iter().all(|&b| b == 0) {
        let punches = history.punches.lock().unwrap();
        if punches.iter().any(|p| (completed..=started).contains(p)) {
            return None;
        }
        return Some(format!(
            "page {page}: zeros, but versions {completed}..={started} are all writes"
        ));
    }
    let stamp = &buf[..16];
    if buf.chunks(16).any(|c| c != stamp) {
        return Some(format!("page {page}: torn or foreign bytes"));
    }
    let index = u64::from_le_bytes(stamp[..8].try_into().unwrap());
    let version = u64::from_le_bytes(stamp[8..].try_into().unwrap());
    if index != page {
        return Some(format!(
            "page {page}: page {index}'s data (version {version})"
        ));
    }
    if version < completed {
        return Some(format!(
            "page {page}: version {version}, older than {completed}, completed before the read"
        ));
    }
    if version > started || history.punches.lock().unwrap().contains(&version) {
        return Some(format!("page {page}: version {version} was never written"));
    }
    None
}

/// What the readers found.
#[derive(Default)]
struct Tally {
    reads: AtomicU64,
    bad: AtomicU64,
    /// The first few bad reads, described.
    reports: Mutex<Vec<String>>,
}

/// Writes (or, if `punch`, punches) random pages until `stop`, each change a new version.
fn change_pages(file: &File, pages: &[History], stop: &AtomicBool, seed: u64, punch: bool) {
    let mut rng = Rng::new(seed);
    while !stop.load(Ordering::Relaxed) {
        let index = rng.below(PAGES);
        let page = &pages[index as usize];
        let _change = page.change.lock().unwrap();
        let version = page.started.load(Ordering::SeqCst) + 1;
        let offset = index * PAGE as u64;
        if punch {
            page.punches.lock().unwrap().insert(version);
            page.started.store(version, Ordering::SeqCst);
            let mode = FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE;
            falloc(file, mode, offset, PAGE as u64).expect("punch");
        } else {
            page.started.store(version, Ordering::SeqCst);
            file.write_all_at(&stamped(index, version), offset)
                .expect("write");
        }
        page.completed.store(version, Ordering::SeqCst);
    }
}

/// Reads random pages until `stop`, judging each.
fn read_pages(file: &File, pages: &[History], stop: &AtomicBool, seed: u64, tally: &Tally) {
    let mut rng = Rng::new(seed);
    let mut buf = vec![0u8; PAGE];
    while !stop.load(Ordering::Relaxed) {
        let index = rng.below(PAGES);
        let page = &pages[index as usize];
        let completed = page.completed.load(Ordering::SeqCst);
        file.read_exact_at(&mut buf, index * PAGE as u64)
            .expect("read");
        let started = page.started.load(Ordering::SeqCst);
        tally.reads.fetch_add(1, Ordering::Relaxed);
        if let Some(report) = judge(index, &buf, completed, started, page) {
            tally.bad.fetch_add(1, Ordering::Relaxed);
            let mut reports = tally.reports.lock().unwrap();
            if reports.len() < 5 {
                reports.push(report);
            }
        }
    }
}

/// Runs the oracle against rangefs with `lock` until `duration` has passed or `stop_at` bad
/// pages were found; returns what the readers found.
fn run(lock: &str, duration: Duration, stop_at: u64) -> Option<Tally> {
    let capacity = (PAGES * PAGE as u64).to_string();
    let args = [
        "--lock",
        lock,
        "--capacity",
        &capacity,
        "--latency-us",
        "50",
        "--cache-mib",
        "1",
        "--threads",
        "8",
    ];
    let mount = Mount::start(&format!("oracle-{lock}"), &args)?;
    let file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(mount.path("oracle"))
        .unwrap();
    file.set_len(PAGES * PAGE as u64).unwrap();
    let pages: Vec<History> = (0..PAGES).map(|_| History::default()).collect();
    for page in &pages {
        page.punches.lock().unwrap().insert(0);
    }
    let stop = AtomicBool::new(false);
    let tally = Tally::default();
    let seed = u64::from(std::process::id());
    thread::scope(|s| {
        let changers = WRITERS + PUNCHERS;
        for t in 0..changers {
            let (file, pages, stop) = (&file, &pages, &stop);
            s.spawn(move || change_pages(file, pages, stop, seed + t, t >= WRITERS));
        }
        for t in 0..READERS {
            let (file, pages, stop, tally) = (&file, &pages, &stop, &tally);
            s.spawn(move || read_pages(file, pages, stop, seed + 100 + t, tally));
        }
        let deadline = Instant::now() + duration;
        while Instant::now() < deadline && tally.bad.load(Ordering::Relaxed) < stop_at {
            thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::Relaxed);
    });
    drop(file);
    let (status, log) = mount.unmount();
    assert!(status.success(), "rangefs exited with {status}:\n{log}");
    Some(tally)
}

fn no_bad_pages_with(lock: &str) {
    let Some(tally) = run(lock, Duration::from_secs(4), 1) else {
        return;
    };
    let (bad, reads) = (tally.bad.into_inner(), tally.reads.into_inner());
    let reports = tally.reports.into_inner().unwrap();
    eprintln!("--lock {lock}: {reads} reads checked, {bad} bad");
    assert_eq!(
        bad, 0,
        "--lock {lock}: {bad} bad pages in {reads} reads: {reports:#?}"
    );
    assert!(reads > 1000, "--lock {lock}: only {reads} reads in 4 s");
}

#[test]
fn no_read_returns_stale_or_foreign_data_with_the_range_lock() {
    no_bad_pages_with("range");
}

#[test]
fn no_read_returns_stale_or_foreign_data_with_the_whole_file_rwsem() {
    no_bad_pages_with("rwsem");
}

/// The same oracle finds the race when nothing locks: it can fail.
#[test]
fn without_a_lock_reads_return_stale_or_foreign_data() {
    let Some(tally) = run("unlocked", Duration::from_secs(20), 3) else {
        return;
    };
    let (bad, reads) = (tally.bad.into_inner(), tally.reads.into_inner());
    let reports = tally.reports.into_inner().unwrap();
    eprintln!("--lock unlocked: {reads} reads checked, {bad} bad: {reports:#?}");
    assert!(bad > 0, "--lock unlocked: no bad page in {reads} reads");
}
