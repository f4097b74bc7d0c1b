//! Write-back: dirty pages (written through mappings) back to the store, on `sync`, `close`,
//! drop, and when too many are dirty.
//!
//! # Lock rule
//!
//! Write-back of one page is serialised (as `PG_writeback`), so no older copy lands after a
//! newer one; it holds the invalidate lock shared over the page, so no invalidation frees the
//! page's block under it. Closing or dropping the space marks it closed before its last
//! write-back, which unmaps its mappings (see `Shared::closed`).

use std::io;

use super::cache::Page;
use super::{AddressSpace, Backing, Held, InvalidateLock, LAST_PAGE, PAGE};
use crate::sync::Ordering;

impl<L: InvalidateLock, B: Backing> AddressSpace<L, B> {
    /// Past a quarter of the cache's bound in dirty pages, a writer (a write fault) first writes
    /// dirty pages back until half of that remain, as Linux's `balance_dirty_pages` throttles
    /// writers: dirty pages cannot be evicted, so without this the cache would grow past its
    /// bound. Called without any lock held.
    pub(super) fn balance_dirty(&self) -> io::Result<()> {
        let limit = (self.cache.capacity() as u64 / 4).max(1);
        if self.shared.dirty.load(Ordering::Relaxed) <= limit {
            return Ok(());
        }
        for page in self.cache.range(0, LAST_PAGE) {
            if self.shared.dirty.load(Ordering::Relaxed) <= limit / 2 {
                break;
            }
            if page.state().dirty {
                let held = self.lock_shared(page.index..=page.index);
                self.write_back(&page, &held)?;
            }
        }
        Ok(())
    }

    /// Writes `page` back if it is dirty and still cached.
    pub(super) fn write_back<G>(&self, page: &Page, held: &Held<G>) -> io::Result<()> {
        held.check(self.id, page.index);
        // One write-back of a page at a time, from copy to store: two overlapping syncs could
        // otherwise land an older copy after a newer one and leave the page marked clean.
        let _writeback = page.writeback();
        let copy = {
            let mut state = page.state();
            if !state.dirty || state.invalidated {
                return Ok(());
            }
            state.dirty = false;
            self.shared.dirty.fetch_sub(1, Ordering::Relaxed);
            state.data.clone()
        };
        self.backing
            .write_page(page.index, 0, &copy[..])
            .inspect_err(|_| {
                let mut state = page.state();
                if !state.dirty && !state.invalidated {
                    state.dirty = true;
                    self.shared.dirty.fetch_add(1, Ordering::Relaxed);
                }
            })
    }

    /// Writes every dirty page back and asks the backing store to make content and length
    /// durable. Locks each dirty page shared while it is written, and the end of the file
    /// shared while the length is recorded, so no write or truncate changes it meanwhile.
    ///
    /// # Errors
    ///
    /// The store's first error; pages not yet written stay dirty.
    ///
    /// ```
    /// use rangelock::mm::{Access, AddressSpace, MemBacking, PAGE_SIZE};
    /// let space = AddressSpace::new(MemBacking::new(1 << 20));
    /// space.truncate(PAGE_SIZE as u64)?;
    /// space.fault(0, Access::Write)?.write(0, b"dirty")?;
    /// space.sync()?; // the mapped write reaches the store
    /// space.drop_caches();
    /// let mut buf = [0; 5];
    /// space.read(0, &mut buf)?;
    /// assert_eq!(&buf, b"dirty");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn sync(&self) -> io::Result<()> {
        for page in self.cache.range(0, LAST_PAGE) {
            if page.state().dirty {
                let held = self.lock_shared(page.index..=page.index);
                self.write_back(&page, &held)?;
            }
        }
        loop {
            let len = self.len();
            let _held = self.lock_shared(len / PAGE..=LAST_PAGE);
            // Growing since is covered by the lock (and now excluded); shrinking is not.
            if self.len() >= len {
                return self.backing.sync(self.len());
            }
        }
    }

    /// Writes every dirty page back, makes content and length durable, and drops the space,
    /// reporting the first error (dropping the space without `close` does the same, but loses
    /// errors).
    ///
    /// Mappings that outlive the space are unmapped before the last write-back: a write
    /// through one that came first is written back, and one that comes later fails (kind
    /// `Other`), as do reads; [`MappedPage::is_mapped`](super::MappedPage::is_mapped) is false.
    ///
    /// # Errors
    ///
    /// As [`sync`](Self::sync).
    ///
    /// ```
    /// use rangelock::mm::{Access, AddressSpace, FileBacking, PAGE_SIZE};
    /// let path = std::env::temp_dir().join(format!("rangelock-close-{}", std::process::id()));
    /// let space = AddressSpace::new(FileBacking::create(&path)?);
    /// space.truncate(PAGE_SIZE as u64)?;
    /// let page = space.fault(0, Access::Write)?;
    /// page.write(0, b"kept")?;
    /// space.close()?;
    /// assert!(page.write(0, b"lost").is_err()); // refused, not silently dropped
    /// assert!(!page.is_mapped());
    /// assert_eq!(&std::fs::read(&path)?[..4], b"kept");
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn close(self) -> io::Result<()> {
        self.shared.closed.store(true, Ordering::Release);
        self.sync()
        // `Drop` finds nothing dirty now, and syncs nothing more.
    }
}

impl<L: InvalidateLock, B: Backing> Drop for AddressSpace<L, B> {
    /// Writes dirty pages back and syncs, best effort (see [`close`](Self::close)).
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        if self.shared.dirty.load(Ordering::Relaxed) > 0 {
            let _ = self.sync();
        }
    }
}
