//! Races between the address space's lock-free paths (cache hits) and the invalidations they
//! do not lock against, each pinned by the reproducer of a report.

use rangelock::mm::{AddressSpace, InvalidateLock, MemBacking, WholeRwSem};
use rangelock::RangeRwLock;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Sets the flag when dropped, so a failing test stops the thread it started.
struct Stop(Arc<AtomicBool>);

impl Drop for Stop {
    fn drop(&mut self) {
        self.0.store(true, Relaxed);
    }
}

/// Issue 17: one thread loops `truncate(100)` then `write(0, &[0xAA; 8192])`; a reader of
/// `0..8192` got `n == 8192` with byte 100 zero, within 0.07 s. The hit path had taken the
/// length before the truncate and copied the edge page after the truncate zeroed its tail.
/// The file is only ever 100 or 8192 bytes of 0xAA, so every read must be one of those.
fn read_racing_truncate<L: InvalidateLock + 'static>(lock: &str) {
    let space: Arc<AddressSpace<L, MemBacking>> =
        Arc::new(AddressSpace::with_lock(MemBacking::new(1 << 20)));
    space.write(0, &[0xAA; 8192]).unwrap();
    let stop = Stop(Arc::new(AtomicBool::new(false)));
    let truncater = {
        let (space, stop) = (Arc::clone(&space), Arc::clone(&stop.0));
        std::thread::spawn(move || {
            let mut rounds = 0u64;
            while !stop.load(Relaxed) {
                space.truncate(100).unwrap();
                space.write(0, &[0xAA; 8192]).unwrap();
                rounds += 1;
            }
            rounds
        })
    };
    let started = Instant::now();
    let mut buf = vec![0u8; 8192];
    let mut reads = 0u64;
    while started.elapsed() < Duration::from_secs(1) {
        buf.fill(0x55);
        let n = space.read(0, &mut buf).unwrap();
        let bad = buf[..n].iter().position(|&b| b != 0xAA);
        assert!(
            (n == 100 || n == 8192) && bad.is_none(),
            "{lock}: read {reads} after {:?} returned n = {n}, first byte not 0xAA at {bad:?}: \
             the file never held that",
            started.elapsed()
        );
        reads += 1;
    }
    drop(stop);
    let rounds = truncater.join().unwrap();
    assert!(
        reads > 0 && rounds > 0,
        "{lock}: {reads} reads, {rounds} rounds"
    );
}

#[test]
fn a_cached_read_racing_a_shrinking_truncate_sees_only_lengths_and_bytes_the_file_had() {
    read_racing_truncate::<RangeRwLock>("range lock");
    read_racing_truncate::<WholeRwSem>("whole rwsem");
}
