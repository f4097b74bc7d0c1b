//! Invalidations: `punch_hole` and `truncate` free storage and drop what the cache holds of it.
//!
//! # Lock rule
//!
//! Both take the invalidate lock exclusive over their pages *before* writing back dirty data,
//! then write back the partial pages that survive, free the blocks, drop the cached pages and
//! unmap their mappings, zero the partial pages, and only then unlock. A fill can therefore
//! never re-instantiate data from a freed block. A shrinking truncate also marks itself in the
//! space's [`TruncateSeq`](super::read::TruncateSeq) for lock-free readers.

use std::io;

use super::{
    bump, full_pages, pages_of, AddressSpace, Backing, Exclusive, InvalidateLock, LAST_PAGE, PAGE,
};
use crate::sync::Ordering;

impl<L: InvalidateLock, B: Backing> AddressSpace<L, B> {
    /// Frees `[offset, offset + len)`: the range reads as zeros afterwards and the file keeps
    /// its length. Pages wholly inside are dropped from the cache and their mappings unmapped;
    /// partial pages are zeroed in place and stay mapped. Punching past the end is a no-op
    /// success; `len == 0` does nothing. A range whose `offset + len` would overflow `u64`
    /// ends at `u64::MAX`, where every file ends at the latest: it is punched to the end.
    ///
    /// Locks the pages exclusive for the whole operation.
    ///
    /// # Errors
    ///
    /// The store's error from freeing the blocks. Nothing else: any offset and length are
    /// valid, including those whose sum overflows.
    ///
    /// ```
    /// use rangelock::mm::{AddressSpace, MemBacking, PAGE_SIZE};
    /// let space = AddressSpace::new(MemBacking::new(1 << 20));
    /// space.write(0, &vec![5; 3 * PAGE_SIZE])?;
    /// space.punch_hole(PAGE_SIZE as u64, PAGE_SIZE as u64)?;
    /// let mut buf = [1; 4];
    /// space.read(PAGE_SIZE as u64, &mut buf)?;
    /// assert_eq!(buf, [0; 4]);
    /// assert_eq!(space.len(), 3 * PAGE_SIZE as u64); // the length stays
    /// assert_eq!(space.backing().used_blocks(), 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn punch_hole(&self, offset: u64, len: u64) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        // No file extends past `u64::MAX`: what runs past it is past the end.
        let end = offset.saturating_add(len);
        let held = self.lock_exclusive(pages_of(offset, end));
        self.write_back_edges(offset, end, &held)?;
        self.free_blocks(offset, end, &held)?;
        self.drop_cached(offset, end, &held);
        Ok(())
    }

    /// Sets the length. Shrinking drops the pages wholly past the new end (unmapping them),
    /// zeroes the rest of the last page and frees the blocks; growing exposes zeros.
    ///
    /// Locks exclusive from the lower of the old and new lengths to the end of the space.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `new_len` is beyond what the store can hold ([`Backing::max_len`];
    /// `i64::MAX` for a [`FileBacking`](super::FileBacking)), and nothing changes then; the
    /// store's error from freeing the blocks or recording the length. Any smaller length is
    /// valid: one value, nothing to overflow.
    ///
    /// ```
    /// use rangelock::mm::{AddressSpace, MemBacking, PAGE_SIZE};
    /// let space = AddressSpace::new(MemBacking::new(1 << 20));
    /// space.write(0, b"abcdef")?;
    /// space.truncate(3)?;
    /// space.truncate(6)?; // growing exposes zeros
    /// let mut buf = [9; 6];
    /// space.read(0, &mut buf)?;
    /// assert_eq!(&buf, b"abc\0\0\0");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn truncate(&self, new_len: u64) -> io::Result<()> {
        self.check_len(new_len)?;
        loop {
            let low = self.len().min(new_len);
            let held = self.lock_exclusive(low / PAGE..=LAST_PAGE);
            let old = self.len();
            if old.min(new_len) < low {
                continue; // shrunk before we locked: lock lower
            }
            if new_len < old {
                self.write_back_edges(new_len, u64::MAX, &held)?;
                self.free_blocks(new_len, u64::MAX, &held)?;
                self.backing.truncate(new_len)?;
                // From the length's change to the last page's zeroing, lock-free readers fall
                // back to the lock.
                let _shrinking = self.truncates.write();
                // Before the last page is zeroed: a write through a mapping checks the length
                // under the page's mutex, so none lands past the new end after the zeroing.
                self.shared.len.store(new_len, Ordering::Release);
                self.drop_cached(new_len, u64::MAX, &held);
            } else {
                // The store's length follows at once (a file grows with a hole).
                self.backing.truncate(new_len)?;
                self.shared.len.store(new_len, Ordering::Release);
            }
            return Ok(());
        }
    }

    /// The pages of `[start, end)` that the range covers only in part (at most two), which
    /// keep their other bytes.
    fn edge_pages(start: u64, end: u64) -> impl Iterator<Item = u64> {
        let pages = pages_of(start, end);
        let full = full_pages(start, end);
        let (first, last) = (*pages.start(), *pages.end());
        [Some(first), (last != first).then_some(last)]
            .into_iter()
            .flatten()
            .filter(move |p| !full.contains(p))
    }

    /// Writes back the dirty pages that survive an invalidation of `[start, end)`: the partial
    /// pages at its edges. The rest is about to be dropped.
    fn write_back_edges<G>(&self, start: u64, end: u64, held: &Exclusive<G>) -> io::Result<()> {
        for index in Self::edge_pages(start, end) {
            if let Some(page) = self.cache.get(index) {
                self.write_back(&page, &held.0)?;
            }
        }
        Ok(())
    }

    /// Frees the storage of bytes `[start, end)` in the backing store: whole pages lose their
    /// blocks, partial ones are zeroed. First of the steps of an invalidation, so that if it
    /// fails the cache still shows what the store holds.
    pub(super) fn free_blocks<G>(
        &self,
        start: u64,
        end: u64,
        held: &Exclusive<G>,
    ) -> io::Result<()> {
        let pages = pages_of(start, end);
        held.0.check(self.id, *pages.start());
        held.0.check(self.id, *pages.end());
        self.backing.punch(start, end)
    }

    /// Drops the bytes `[start, end)` from the cache: drops the pages wholly inside (unmapping
    /// them) and zeroes the partial ones in place. The exclusive lock over those pages is the
    /// caller's proof; no fill can bring old data back while it is held.
    pub(super) fn drop_cached<G>(&self, start: u64, end: u64, held: &Exclusive<G>) {
        let pages = pages_of(start, end);
        held.0.check(self.id, *pages.start());
        held.0.check(self.id, *pages.end());
        let full = full_pages(start, end);
        if !full.is_empty() {
            let dropped = self.cache.remove_range(full.start, full.end - 1);
            for page in &dropped {
                let mut state = page.state();
                state.invalidated = true;
                if state.dirty {
                    // Its data is punched or truncated away: nothing to write back.
                    state.dirty = false;
                    self.shared.dirty.fetch_sub(1, Ordering::Relaxed);
                }
            }
            bump(&self.counters.invalidations, dropped.len() as u64);
        }
        for index in Self::edge_pages(start, end) {
            if let Some(page) = self.cache.get(index) {
                let base = index * PAGE;
                let from = start.max(base) - base;
                let to = (end - base).min(PAGE);
                page.state().data[from as usize..to as usize].fill(0);
            }
        }
    }
}
