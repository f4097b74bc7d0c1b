//! Reader/writer range locks.
#![warn(missing_docs)]

mod lock;
mod range;
mod sync;
#[cfg(test)]
mod testrng;
mod tree;

pub use lock::{RangeReadGuard, RangeRwLock, RangeWriteGuard};
