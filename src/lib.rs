//! Reader/writer range locks.
#![warn(missing_docs)]

mod lock;
mod range;
mod slice;
mod sync;
#[cfg(test)]
mod testrng;
mod tree;

pub use lock::{RangeReadGuard, RangeRwLock, RangeWriteGuard};
pub use slice::{SliceReadGuard, SliceRwLock, SliceWriteGuard};
