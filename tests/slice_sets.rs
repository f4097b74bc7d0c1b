//! Copies between sub-slices of one `SliceRwLock`, each as one set request, racing writers of
//! single ranges that straddle the ends of the copies' members: taken one range after the
//! other, such copies deadlock behind those writers. Every thread finishes (a watchdog fails
//! the test instead of letting it hang), and no writer touches a copy's source or destination
//! while the copy holds them.

use rangelock::{RangeSet, SliceRwLock};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

const LEN: usize = 64;
const BLOCK: usize = 8;
const THREADS: usize = 6;
const ROUNDS: usize = 300;

/// A tiny deterministic generator per thread.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn copies_as_sets_finish_and_exclude_writers_between_their_members() {
    let data = Arc::new(SliceRwLock::new(vec![0u64; LEN]));
    let (done, finished) = mpsc::channel();
    // Not scoped: a deadlocked thread must not keep the test from failing.
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (data, done) = (data.clone(), done.clone());
            thread::spawn(move || {
                let mut rng = 0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1);
                let blocks = (LEN / BLOCK) as u64;
                for round in 0..ROUNDS {
                    let a = (next(&mut rng) % blocks) as usize * BLOCK;
                    let b = (next(&mut rng) % blocks) as usize * BLOCK;
                    if t % 2 == 0 || a == b {
                        // Straddles the seam between two blocks.
                        let start = (a + BLOCK / 2).min(LEN - BLOCK);
                        data.write(start..start + BLOCK)
                            .fill((t * ROUNDS + round) as u64);
                        continue;
                    }
                    let set = RangeSet::new()
                        .read(a as u64..(a + BLOCK) as u64)
                        .write(b as u64..(b + BLOCK) as u64);
                    let mut guard = data.lock_set(&set);
                    let mut members = guard.members_mut();
                    let (first, second) = (members.next().unwrap(), members.next().unwrap());
                    let (src, dst) = if a < b {
                        (first.into_slice(), second.into_mut().unwrap())
                    } else {
                        (second.into_slice(), first.into_mut().unwrap())
                    };
                    let before = src.to_vec();
                    dst.copy_from_slice(src);
                    thread::yield_now();
                    assert_eq!(src, before, "a writer changed the source of a copy");
                    assert_eq!(dst, before, "a writer changed the destination of a copy");
                }
                done.send(()).unwrap();
            })
        })
        .collect();
    drop(done);
    for _ in 0..THREADS {
        // A thread that panics drops its sender: that ends the wait too.
        finished
            .recv_timeout(Duration::from_secs(120))
            .expect("a thread never finished: deadlock");
    }
    for thread in threads {
        thread.join().unwrap();
    }
}
