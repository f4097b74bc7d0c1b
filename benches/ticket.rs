//! A strictly FIFO ticket lock: the reference row of the hot-range comparisons, shared by the
//! lock bench and the `user_loop` example.

use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;

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
            tries += 1;
            if tries < 64 {
                std::hint::spin_loop();
            } else {
                thread::yield_now();
            }
        }
        TicketGuard(self)
    }
}

impl Drop for TicketGuard<'_> {
    fn drop(&mut self) {
        self.0.serving.fetch_add(1, Ordering::Release);
    }
}
