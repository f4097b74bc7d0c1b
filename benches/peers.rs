//! What the lock bench and the `user_loop` example share about the locks they compare with: a
//! strictly FIFO ticket lock (the reference row of the hot-range comparisons) and range-lock's
//! blocking acquire.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;

use range_lock::{VecRangeLock, VecRangeLockGuard};

/// Waits for something another thread holds for a few instructions: spins briefly, then
/// yields, as both helpers below do.
fn backoff(tries: &mut u32) {
    *tries += 1;
    if *tries < 64 {
        std::hint::spin_loop();
    } else {
        thread::yield_now();
    }
}

/// range-lock 0.2.4 has only `try_lock` (exclusive, over a `Vec`'s indices): a blocking
/// acquire retries it, spinning briefly, then yielding, as its documentation suggests a caller
/// do.
pub fn range_lock_acquire(lock: &VecRangeLock<u8>, range: Range<u64>) -> VecRangeLockGuard<'_, u8> {
    let range = range.start as usize..range.end as usize;
    let mut tries = 0u32;
    loop {
        if let Ok(guard) = lock.try_lock(range.clone()) {
            return guard;
        }
        backoff(&mut tries);
    }
}

/// Take a ticket, wait until it is served, serve the next on release: grants go strictly in
/// arrival order. A waiter spins briefly, then yields.
pub struct TicketLock {
    next: AtomicU64,
    serving: AtomicU64,
}

/// Holds a [`TicketLock`]; serves the next ticket when dropped.
pub struct TicketGuard<'a>(&'a TicketLock);

impl TicketLock {
    pub fn new() -> Self {
        TicketLock {
            next: AtomicU64::new(0),
            serving: AtomicU64::new(0),
        }
    }

    pub fn lock(&self) -> TicketGuard<'_> {
        let ticket = self.next.fetch_add(1, Ordering::Relaxed);
        let mut tries = 0u32;
        while self.serving.load(Ordering::Acquire) != ticket {
            backoff(&mut tries);
        }
        TicketGuard(self)
    }
}

impl Drop for TicketGuard<'_> {
    fn drop(&mut self) {
        self.0.serving.fetch_add(1, Ordering::Release);
    }
}
