//! The invalidate lock of an address space: one trait, and the backends that implement it.

use core::ops::RangeInclusive;

use crate::lock::{RangeReadGuard, RangeWriteGuard};
use crate::RangeRwLock;

/// The lock that orders an address space's page-cache fills against its invalidations
/// (Linux's `mapping->invalidate_lock`), over ranges of page indices.
///
/// Fills (fault, read) take it shared over their pages; writes, punches, truncates and remaps
/// take it exclusive. A backend may lock more than it is asked to (a whole-mapping rwsem locks
/// everything), never less.
///
/// ```
/// use rangelock::mm::{AddressSpace, InvalidateLock, MemBacking, WholeRwSem};
/// // Code generic over the lock, measured with each backend.
/// fn fill<L: InvalidateLock>() -> std::io::Result<u64> {
///     let space: AddressSpace<L, MemBacking> = AddressSpace::with_lock(MemBacking::new(1 << 20));
///     space.write(0, b"data")?;
///     Ok(space.len())
/// }
/// assert_eq!(fill::<rangelock::RangeRwLock>()?, 4);
/// assert_eq!(fill::<WholeRwSem>()?, 4);
/// assert_eq!(fill::<std::sync::RwLock<()>>()?, 4);
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait InvalidateLock: Default + Send + Sync {
    /// Held while pages are shared.
    type Shared<'a>
    where
        Self: 'a;
    /// Held while pages are exclusive.
    type Exclusive<'a>
    where
        Self: 'a;

    /// Locks the page indices `pages` shared, blocking.
    fn lock_shared(&self, pages: RangeInclusive<u64>) -> Self::Shared<'_>;
    /// Locks the page indices `pages` exclusive, blocking.
    fn lock_exclusive(&self, pages: RangeInclusive<u64>) -> Self::Exclusive<'_>;
    /// Locks `pages` shared if that needs no waiting.
    fn try_lock_shared(&self, pages: RangeInclusive<u64>) -> Option<Self::Shared<'_>>;
    /// Locks `pages` exclusive if that needs no waiting.
    fn try_lock_exclusive(&self, pages: RangeInclusive<u64>) -> Option<Self::Exclusive<'_>>;
}

/// The range lock: operations on disjoint pages never wait for each other.
impl InvalidateLock for RangeRwLock {
    type Shared<'a> = RangeReadGuard<'a>;
    type Exclusive<'a> = RangeWriteGuard<'a>;

    fn lock_shared(&self, pages: RangeInclusive<u64>) -> RangeReadGuard<'_> {
        self.read(pages)
    }
    fn lock_exclusive(&self, pages: RangeInclusive<u64>) -> RangeWriteGuard<'_> {
        self.write(pages)
    }
    fn try_lock_shared(&self, pages: RangeInclusive<u64>) -> Option<RangeReadGuard<'_>> {
        self.try_read(pages)
    }
    fn try_lock_exclusive(&self, pages: RangeInclusive<u64>) -> Option<RangeWriteGuard<'_>> {
        self.try_write(pages)
    }
}

/// The range lock with strict FIFO order ([`RangeRwLock::fifo`]), for an address space whose
/// invalidations must never be passed: a punch or truncate that arrives while faults hold its
/// pages is granted before any fault that arrives after it, where the default lock
/// ([`DefaultLock`](super::DefaultLock), bounded barging) lets running faults pass it for up
/// to [`RangeRwLock::DEFAULT_HANDOFF`].
///
/// ```
/// use rangelock::mm::{AddressSpace, FifoRangeLock, MemBacking};
/// let space: AddressSpace<FifoRangeLock, _> = AddressSpace::with_lock(MemBacking::new(1 << 20));
/// space.write(0, b"invalidations in arrival order")?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct FifoRangeLock(RangeRwLock);

impl Default for FifoRangeLock {
    fn default() -> Self {
        FifoRangeLock(RangeRwLock::fifo())
    }
}

impl InvalidateLock for FifoRangeLock {
    type Shared<'a> = RangeReadGuard<'a>;
    type Exclusive<'a> = RangeWriteGuard<'a>;

    fn lock_shared(&self, pages: RangeInclusive<u64>) -> RangeReadGuard<'_> {
        self.0.lock_shared(pages)
    }
    fn lock_exclusive(&self, pages: RangeInclusive<u64>) -> RangeWriteGuard<'_> {
        self.0.lock_exclusive(pages)
    }
    fn try_lock_shared(&self, pages: RangeInclusive<u64>) -> Option<RangeReadGuard<'_>> {
        self.0.try_lock_shared(pages)
    }
    fn try_lock_exclusive(&self, pages: RangeInclusive<u64>) -> Option<RangeWriteGuard<'_>> {
        self.0.try_lock_exclusive(pages)
    }
}

/// One reader/writer semaphore for the whole mapping, whatever the range: what Linux's
/// `invalidate_lock` is today, and the baseline that [`RangeRwLock`] is measured against.
///
/// Like the kernel's `rw_semaphore` it is fair within a bound: running faults may pass a
/// waiting punch only until it has waited the hand-off time (the kernel's is 4 ms at least,
/// this one's [`RangeRwLock::DEFAULT_HANDOFF`]), after which nothing passes it, so
/// invalidations are not starved. It is the same lock as the range backend (the default,
/// [`RangeRwLock::new`]), always taken over the whole range, so that a comparison of the two
/// measures the granularity and nothing else. (`std::sync::RwLock<()>` is also a backend, for
/// comparison with a lock that lets readers keep a writer waiting.)
///
/// ```
/// use rangelock::mm::{AddressSpace, MemBacking, WholeRwSem};
/// let space: AddressSpace<WholeRwSem, _> = AddressSpace::with_lock(MemBacking::new(1 << 20));
/// space.write(0, b"one lock for the whole file")?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct WholeRwSem(RangeRwLock);

impl InvalidateLock for WholeRwSem {
    type Shared<'a> = RangeReadGuard<'a>;
    type Exclusive<'a> = RangeWriteGuard<'a>;

    fn lock_shared(&self, _pages: RangeInclusive<u64>) -> RangeReadGuard<'_> {
        self.0.read(..)
    }
    fn lock_exclusive(&self, _pages: RangeInclusive<u64>) -> RangeWriteGuard<'_> {
        self.0.write(..)
    }
    fn try_lock_shared(&self, _pages: RangeInclusive<u64>) -> Option<RangeReadGuard<'_>> {
        self.0.try_read(..)
    }
    fn try_lock_exclusive(&self, _pages: RangeInclusive<u64>) -> Option<RangeWriteGuard<'_>> {
        self.0.try_write(..)
    }
}

/// The standard library's reader/writer lock over the whole mapping. Its readers can keep a
/// waiting writer out for long (under a steady stream of faults, punches starve), which is why
/// [`WholeRwSem`] is the baseline; it is here to be measured against.
impl InvalidateLock for std::sync::RwLock<()> {
    type Shared<'a> = std::sync::RwLockReadGuard<'a, ()>;
    type Exclusive<'a> = std::sync::RwLockWriteGuard<'a, ()>;

    fn lock_shared(&self, _pages: RangeInclusive<u64>) -> Self::Shared<'_> {
        self.read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    fn lock_exclusive(&self, _pages: RangeInclusive<u64>) -> Self::Exclusive<'_> {
        self.write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    fn try_lock_shared(&self, _pages: RangeInclusive<u64>) -> Option<Self::Shared<'_>> {
        match self.try_read() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }
    fn try_lock_exclusive(&self, _pages: RangeInclusive<u64>) -> Option<Self::Exclusive<'_>> {
        match self.try_write() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }
}

/// No lock at all. **Incorrect on purpose**: it exists to show that the race the invalidate
/// lock prevents is real (a fault re-instantiating data from a block that a concurrent punch
/// freed and another write reused). Never use it for data you care about.
///
/// ```
/// use rangelock::mm::{AddressSpace, MemBacking, Unlocked};
/// // Only for demonstrating the race (see `examples/punch_vs_fault.rs`).
/// let racy: AddressSpace<Unlocked, _> = AddressSpace::with_lock(MemBacking::new(1 << 20));
/// # drop(racy);
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct Unlocked;

impl InvalidateLock for Unlocked {
    type Shared<'a> = ();
    type Exclusive<'a> = ();

    fn lock_shared(&self, _pages: RangeInclusive<u64>) {}
    fn lock_exclusive(&self, _pages: RangeInclusive<u64>) {}
    fn try_lock_shared(&self, _pages: RangeInclusive<u64>) -> Option<()> {
        Some(())
    }
    fn try_lock_exclusive(&self, _pages: RangeInclusive<u64>) -> Option<()> {
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fifo_backend_never_barges_and_the_others_take_the_default() {
        assert_eq!(FifoRangeLock::default().0.handoff(), None);
        let default = Some(RangeRwLock::DEFAULT_HANDOFF);
        assert_eq!(WholeRwSem::default().0.handoff(), default);
        assert_eq!(<RangeRwLock as Default>::default().handoff(), default);
    }
}
