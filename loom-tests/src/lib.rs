//! loom models of `rangelock` live in `tests/`; this library holds what they share.
#![cfg(rangelock_loom)]

use loom::cell::UnsafeCell;
use loom::sync::Arc;

/// Runs `f` under loom, with a preemption bound of 3 unless `LOOM_MAX_PREEMPTIONS` says.
pub fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(f);
}

/// Data that loom checks for concurrent access: a write racing any other access fails.
pub struct Shared(UnsafeCell<u64>);

// SAFETY: every access is made under a range guard; loom checks that this holds.
unsafe impl Sync for Shared {}

impl Shared {
    pub fn new() -> Arc<Shared> {
        Arc::new(Shared(UnsafeCell::new(0)))
    }

    pub fn bump(&self) {
        // SAFETY: callers hold a write guard over the data's range; loom reports otherwise.
        self.0.with_mut(|p| unsafe { *p += 1 });
    }

    pub fn get(&self) -> u64 {
        // SAFETY: callers hold a read or write guard over the data's range.
        self.0.with(|p| unsafe { *p })
    }
}
