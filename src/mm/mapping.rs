//! Mappings: `fault` maps one page, and a [`MappedPage`] reads and writes it directly.
//!
//! # Lock rule
//!
//! A read fault of a cached page takes no invalidate lock (as `filemap_fault`): it checks
//! under the page's mutex that the page is still cached. A write fault, and a fault that
//! fills, take the lock shared over the page. A mapping then reads and writes its page under
//! the page's mutex only, checking there that the page was not invalidated and that the space
//! is still open; a write also checks the length, which a truncate stores before it zeroes or
//! unmaps the page.

use core::fmt;
use std::io;
use std::sync::Arc;

use super::cache::{Page, PageState};
use super::{bump, invalid, AddressSpace, Backing, InvalidateLock, Shared, PAGE, PAGE_SIZE};
use crate::sync::Ordering;

/// How a page is mapped by [`AddressSpace::fault`].
///
/// ```
/// use rangelock::mm::{Access, AddressSpace, MemBacking};
/// let space = AddressSpace::new(MemBacking::new(1 << 20));
/// space.truncate(10)?;
/// assert!(space.fault(0, Access::Read)?.write(0, b"x").is_err());
/// assert!(space.fault(0, Access::Write)?.write(0, b"x").is_ok());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Reads only; writing through the mapping fails with `PermissionDenied`.
    Read,
    /// Reads and writes; the fault reserves the page's storage.
    Write,
}

impl<L: InvalidateLock, B: Backing> AddressSpace<L, B> {
    /// Maps the page containing `offset` and returns the mapping. A fault past the end of the
    /// file fails with `UnexpectedEof` (a mapping never shows garbage). A write fault reserves
    /// the page's storage, so writes through the mapping cannot run out of space.
    ///
    /// Locks the page shared, unless a read fault finds it cached; a write fault always locks
    /// it, to reserve its storage.
    ///
    /// # Errors
    ///
    /// `UnexpectedEof` past the end of the file (any `offset` is valid input: one at or past
    /// the end, up to `u64::MAX`, is past it); `StorageFull` if a write fault cannot reserve
    /// the page; the store's error when the page must be read.
    ///
    /// ```
    /// use rangelock::mm::{Access, AddressSpace, MemBacking, PAGE_SIZE};
    /// let space = AddressSpace::new(MemBacking::new(1 << 20));
    /// space.truncate(PAGE_SIZE as u64)?;
    /// let page = space.fault(0, Access::Write)?;
    /// page.write(0, b"via the mapping")?;
    /// let mut buf = [0; 3];
    /// space.read(0, &mut buf)?;
    /// assert_eq!(&buf, b"via");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn fault(&self, offset: u64, access: Access) -> io::Result<MappedPage> {
        if access == Access::Write {
            self.balance_dirty()?;
        }
        let index = offset / PAGE;
        let past_end = |len: u64| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("fault at {offset}, past the end of the file ({len} bytes)"),
            )
        };
        let len = self.len();
        if offset >= len {
            return Err(past_end(len));
        }
        // A read fault that hits maps the cached page without the invalidate lock. As
        // `filemap_fault` checks `folio->mapping` under the folio lock, the page is checked
        // under its mutex to be still cached: a punch that removed it has marked it
        // invalidated, and one that comes later will find this mapping through the page and
        // kill it.
        let cached = self
            .cache
            .get(index)
            .filter(|page| !page.state().invalidated);
        if let (Access::Read, Some(page)) = (access, &cached) {
            bump(&self.counters.hits, 1);
            return Ok(self.map(Arc::clone(page), access));
        }
        // A write fault reserves the page's storage under the lock, as `ext4_page_mkwrite` takes
        // `invalidate_lock` shared to allocate: a reservation racing a truncate could otherwise
        // come after the truncate freed the blocks past the new end, and stay there, past the
        // end of the file, where no later truncate or punch looks.
        let fill_end = match cached {
            Some(_) => index, // nothing to fill, nor to read ahead of
            None => self.readahead_end(index, index),
        };
        let held = self.lock_shared(index..=fill_end);
        let len = self.len();
        if offset >= len {
            return Err(past_end(len));
        }
        if access == Access::Write {
            self.backing.reserve(&mut core::iter::once(index))?;
        }
        // Under the lock a cached page is live: an invalidation removes it (under the lock,
        // held exclusive) before it marks it.
        if let Some(page) = self.cache.get(index) {
            held.check(self.id, index);
            bump(&self.counters.hits, 1);
            return Ok(self.map(page, access));
        }
        self.fill_run(index, fill_end.min((len - 1) / PAGE), index, &held)?;
        let page = self.filled(index, &held)?;
        Ok(self.map(page, access))
    }

    /// A mapping of `page`, which the caller found cached.
    fn map(&self, page: Arc<Page>, access: Access) -> MappedPage {
        MappedPage {
            page,
            access,
            space: Arc::clone(&self.shared),
        }
    }
}

/// A mapping of one page, from [`AddressSpace::fault`]. It owns its page: reads and writes go
/// to the cached page directly, without the invalidate lock, as loads and stores to a mapped
/// page do.
///
/// After a punch covering the whole page, a truncate leaving it wholly past the end, or a
/// remap replacing it, the mapping is unmapped: [`is_mapped`](Self::is_mapped) is false and
/// reads and writes fail (fault again to see the new data). A partial punch zeroes the page in
/// place and leaves it mapped. A mapping never outlives its space silently: once the space is
/// closed or dropped, it is unmapped too, and its writes fail instead of reaching no store.
///
/// ```
/// use rangelock::mm::{Access, AddressSpace, MemBacking};
/// let space = AddressSpace::new(MemBacking::new(1 << 20));
/// space.write(0, b"mapped")?;
/// let page = space.fault(0, Access::Read)?;
/// let mut buf = [0; 6];
/// page.read(0, &mut buf)?;
/// assert_eq!(&buf, b"mapped");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct MappedPage {
    page: Arc<Page>,
    access: Access,
    space: Arc<Shared>,
}

impl MappedPage {
    /// The byte offset of the page in the file (a multiple of [`PAGE_SIZE`]).
    ///
    /// ```
    /// use rangelock::mm::{Access, AddressSpace, MemBacking, PAGE_SIZE};
    /// let space = AddressSpace::new(MemBacking::new(1 << 20));
    /// space.write(0, &vec![3; 2 * PAGE_SIZE])?;
    /// assert_eq!(space.fault(PAGE_SIZE as u64 + 5, Access::Read)?.offset(), PAGE_SIZE as u64);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use]
    pub fn offset(&self) -> u64 {
        self.page.index * PAGE
    }

    /// How the page was mapped.
    ///
    /// ```
    /// use rangelock::mm::{Access, AddressSpace, MemBacking, PAGE_SIZE};
    /// let space = AddressSpace::new(MemBacking::new(1 << 20));
    /// space.write(0, &vec![3; 2 * PAGE_SIZE])?;
    /// assert_eq!(space.fault(0, Access::Read)?.access(), Access::Read);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use]
    pub fn access(&self) -> Access {
        self.access
    }

    /// Whether the mapping is still live: false once a punch, truncate or remap replaced its
    /// page, or its space was closed or dropped.
    ///
    /// ```
    /// use rangelock::mm::{Access, AddressSpace, MemBacking, PAGE_SIZE};
    /// let space = AddressSpace::new(MemBacking::new(1 << 20));
    /// space.write(0, &vec![3; 2 * PAGE_SIZE])?;
    /// let page = space.fault(0, Access::Read)?;
    /// assert!(page.is_mapped());
    /// space.punch_hole(0, PAGE_SIZE as u64)?; // unmaps it
    /// assert!(!page.is_mapped());
    ///
    /// let page = space.fault(PAGE_SIZE as u64, Access::Read)?;
    /// drop(space); // so does dropping (or closing) the space
    /// assert!(!page.is_mapped());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use]
    pub fn is_mapped(&self) -> bool {
        self.check_mapped(&self.page.state()).is_ok()
    }

    fn check_bounds(at: usize, n: usize) -> io::Result<()> {
        if at.checked_add(n).is_none_or(|end| end > PAGE_SIZE) {
            return Err(invalid(format!(
                "bytes {at}..{at}+{n} are not inside a page"
            )));
        }
        Ok(())
    }

    /// `Err` (of kind `Other`) unless the mapping is live: its page still cached and its
    /// space open. Called under the page's mutex (see `Shared::closed`).
    fn check_mapped(&self, state: &PageState) -> io::Result<()> {
        if state.invalidated {
            return Err(io::Error::other(format!(
                "page at {} was unmapped by a punch, truncate or remap; fault it again",
                self.offset()
            )));
        }
        if self.space.closed.load(Ordering::Acquire) {
            return Err(io::Error::other(format!(
                "page at {} was unmapped: its address space was closed or dropped",
                self.offset()
            )));
        }
        Ok(())
    }

    /// Reads `buf.len()` bytes at byte `at` of the page. Bytes past the end of the file read
    /// as zeros.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `at + buf.len()` is past the end of the page (an `at + buf.len()` that
    /// overflows `usize` is past it too); an error of kind `Other` if the page was unmapped:
    /// by a punch, truncate or remap (fault it again), or because its space was closed or
    /// dropped.
    ///
    /// ```
    /// use rangelock::mm::{Access, AddressSpace, MemBacking, PAGE_SIZE};
    /// let space = AddressSpace::new(MemBacking::new(1 << 20));
    /// space.write(0, &vec![3; 2 * PAGE_SIZE])?;
    /// let mut buf = [0; 2];
    /// space.fault(0, Access::Read)?.read(10, &mut buf)?;
    /// assert_eq!(buf, [3, 3]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn read(&self, at: usize, buf: &mut [u8]) -> io::Result<()> {
        Self::check_bounds(at, buf.len())?;
        let state = self.page.state();
        self.check_mapped(&state)?;
        buf.copy_from_slice(&state.data[at..at + buf.len()]);
        Ok(())
    }

    /// Writes `data` at byte `at` of the page, marking it dirty ([`AddressSpace::sync`] writes
    /// it back). Fails with `PermissionDenied` on a read mapping, and with `InvalidInput` for
    /// bytes past the end of the file.
    ///
    /// # Errors
    ///
    /// `PermissionDenied` on a read mapping; `InvalidInput` past the end of the page or the
    /// file (an `at + data.len()` that overflows `usize` is past the page); `Other` if the
    /// page was unmapped: by a punch, truncate or remap (fault it again), or because its space
    /// was closed or dropped, so that the write would reach no store.
    ///
    /// ```
    /// use rangelock::mm::{Access, AddressSpace, MemBacking, PAGE_SIZE};
    /// let space = AddressSpace::new(MemBacking::new(1 << 20));
    /// space.write(0, &vec![3; 2 * PAGE_SIZE])?;
    /// let read_only = space.fault(0, Access::Read)?;
    /// assert!(read_only.write(0, b"x").is_err());
    /// space.fault(0, Access::Write)?.write(0, b"x")?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn write(&self, at: usize, data: &[u8]) -> io::Result<()> {
        if self.access == Access::Read {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "write through a read-only mapping",
            ));
        }
        Self::check_bounds(at, data.len())?;
        let mut state = self.page.state();
        self.check_mapped(&state)?;
        // Under the page's mutex, so a truncate (which stores the length before it zeroes or
        // unmaps this page) cannot slip in between the check and the copy.
        let len = self.space.len.load(Ordering::Acquire);
        // In u128: on the last page of the space the end is 2^64.
        let end = u128::from(self.offset()) + (at + data.len()) as u128;
        if end > u128::from(len) {
            return Err(invalid(format!(
                "write through a mapping up to {end}, past the end of the file ({len} bytes)"
            )));
        }
        state.data[at..at + data.len()].copy_from_slice(data);
        if !state.dirty {
            state.dirty = true;
            self.space.dirty.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

impl fmt::Debug for MappedPage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MappedPage")
            .field("offset", &self.offset())
            .field("access", &self.access)
            .field("mapped", &self.is_mapped())
            .finish_non_exhaustive()
    }
}
