//! The address space behind each regular file, with its invalidate lock chosen at run time.
//!
//! `AddressSpace<L, B>` fixes its lock `L` at compile time. rangefs picks it per mount
//! (`--lock`), so that the three can run side by side from one binary: [`Space`] is the
//! object-safe face of every `AddressSpace<L, B>`, and [`Lock::space`] builds one with the
//! chosen `L`. Nothing here reaches below the address space's public API.

use std::any::TypeId;
use std::io;

use rangelock::mm::{
    AddressSpace, Backing, DefaultLock, FifoRangeLock, InvalidateLock, Unlocked, WholeRwSem,
};
use rangelock::RangeRwLock;

/// The operations rangefs uses of an [`AddressSpace`], whatever its lock and backing.
pub trait Space: Send + Sync {
    /// [`AddressSpace::read`].
    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
    /// [`AddressSpace::write`].
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<usize>;
    /// [`AddressSpace::punch_hole`].
    fn punch_hole(&self, offset: u64, len: u64) -> io::Result<()>;
    /// [`AddressSpace::truncate`].
    fn truncate(&self, len: u64) -> io::Result<()>;
    /// [`AddressSpace::sync`].
    fn sync(&self) -> io::Result<()>;
    /// [`AddressSpace::len`].
    fn len(&self) -> u64;
}

impl<L: InvalidateLock, B: Backing> Space for AddressSpace<L, B> {
    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        AddressSpace::read(self, offset, buf)
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<usize> {
        AddressSpace::write(self, offset, data)
    }
    fn punch_hole(&self, offset: u64, len: u64) -> io::Result<()> {
        AddressSpace::punch_hole(self, offset, len)
    }
    fn truncate(&self, len: u64) -> io::Result<()> {
        AddressSpace::truncate(self, len)
    }
    fn sync(&self) -> io::Result<()> {
        AddressSpace::sync(self)
    }
    fn len(&self) -> u64 {
        AddressSpace::len(self)
    }
}

/// The invalidate lock of every file in a mount (`--lock`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lock {
    /// [`RangeRwLock`]: an operation locks only the pages it touches (bounded barging, the
    /// crate's default order).
    Range,
    /// [`FifoRangeLock`]: the same, in strict FIFO order.
    RangeFifo,
    /// [`WholeRwSem`]: one reader/writer lock per file, as Linux's `invalidate_lock`.
    RwSem,
    /// [`Unlocked`]: no lock at all; fills race punches, to show the race is real.
    Unlocked,
}

impl Lock {
    /// The lock named `name` on the command line.
    pub fn parse(name: &str) -> Option<Lock> {
        match name {
            "range" => Some(Lock::Range),
            "range-fifo" => Some(Lock::RangeFifo),
            "rwsem" => Some(Lock::RwSem),
            "unlocked" => Some(Lock::Unlocked),
            _ => None,
        }
    }

    /// The name `parse` takes.
    pub fn name(self) -> &'static str {
        match self {
            Lock::Range => "range",
            Lock::RangeFifo => "range-fifo",
            Lock::RwSem => "rwsem",
            Lock::Unlocked => "unlocked",
        }
    }

    /// The crate's [`DefaultLock`]: the range lock, or the whole-file rwsem when rangelock is
    /// built with its `whole-rwsem` feature (rangefs's feature of the same name turns it on).
    pub fn crate_default() -> Lock {
        let default = TypeId::of::<DefaultLock>();
        if default == TypeId::of::<RangeRwLock>() {
            Lock::Range
        } else if default == TypeId::of::<WholeRwSem>() {
            Lock::RwSem
        } else {
            panic!(
                "rangefs does not know rangelock's DefaultLock, {}",
                std::any::type_name::<DefaultLock>()
            )
        }
    }

    /// An address space over `backing` with this lock and a cache of about `cache_pages`
    /// clean pages.
    pub fn space<B: Backing + 'static>(self, backing: B, cache_pages: usize) -> Box<dyn Space> {
        match self {
            Lock::Range => Box::new(AddressSpace::<RangeRwLock, B>::with_lock_and_cache_pages(
                backing,
                cache_pages,
            )),
            Lock::RangeFifo => Box::new(
                AddressSpace::<FifoRangeLock, B>::with_lock_and_cache_pages(backing, cache_pages),
            ),
            Lock::RwSem => Box::new(AddressSpace::<WholeRwSem, B>::with_lock_and_cache_pages(
                backing,
                cache_pages,
            )),
            Lock::Unlocked => Box::new(AddressSpace::<Unlocked, B>::with_lock_and_cache_pages(
                backing,
                cache_pages,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Lock;
    use rangelock::mm::MemBacking;

    #[test]
    fn every_lock_builds_a_working_space() {
        for lock in [Lock::Range, Lock::RangeFifo, Lock::RwSem, Lock::Unlocked] {
            assert_eq!(Lock::parse(lock.name()), Some(lock));
            let space = lock.space(MemBacking::new(1 << 20), 4);
            assert_eq!(space.write(10, b"abc").unwrap(), 3);
            let mut buf = [9; 13];
            assert_eq!(space.read(0, &mut buf).unwrap(), 13);
            assert_eq!(&buf[10..], b"abc");
            assert_eq!(space.len(), 13);
        }
        assert_eq!(Lock::parse("mutex"), None);
    }

    #[test]
    fn the_default_follows_the_crate_feature() {
        let expected = if cfg!(feature = "whole-rwsem") {
            Lock::RwSem
        } else {
            Lock::Range
        };
        assert_eq!(Lock::crate_default(), expected);
    }
}
