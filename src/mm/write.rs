//! Writes: through to the store, under the invalidate lock held exclusive over their pages.
//!
//! # Lock rule
//!
//! A write locks its pages exclusive, so overlapping writes are atomic to each other and
//! disjoint ones run in parallel; storage is reserved before any byte changes.

use std::io;

use super::{end_of, pages_of, AddressSpace, Backing, Exclusive, InvalidateLock, PAGE};
use crate::sync::Ordering;

impl<L: InvalidateLock, B: Backing> AddressSpace<L, B> {
    /// Writes all of `data` at `offset`, extending the file if it ends past the end; returns
    /// `data.len()`. Storage is reserved first: `StorageFull` changes nothing.
    ///
    /// Locks the pages exclusive; writes through to the backing store and updates cached pages.
    ///
    /// # Errors
    ///
    /// `StorageFull` if storage for the new pages cannot be reserved (nothing is written then);
    /// `InvalidInput` if `offset + data.len()` overflows `u64` (no file extends past
    /// `u64::MAX`) or is beyond what the store can hold ([`Backing::max_len`]; `i64::MAX` for a
    /// [`FileBacking`](super::FileBacking)), and nothing is written then either; the store's
    /// error otherwise.
    ///
    /// ```
    /// use rangelock::mm::{AddressSpace, MemBacking, PAGE_SIZE};
    /// let space = AddressSpace::new(MemBacking::new(1 << 20));
    /// assert_eq!(space.write(10, b"xy")?, 2);
    /// let mut buf = [9; 12];
    /// space.read(0, &mut buf)?;
    /// assert_eq!(buf, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, b'x', b'y']); // the gap reads as zeros
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn write(&self, offset: u64, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        let end = end_of(offset, data.len() as u64)?;
        self.check_len(end)?;
        let pages = pages_of(offset, end);
        let held = self.lock_exclusive(pages.clone());
        self.backing.reserve(&mut pages.clone())?;
        let mut at = offset;
        while at < end {
            let (index, in_page) = (at / PAGE, (at % PAGE) as usize);
            let n = (PAGE - at % PAGE).min(end - at) as usize;
            let src = &data[(at - offset) as usize..][..n];
            if let Err(e) = self.write_page(index, in_page, src, &held) {
                // The pages before this one were written: keep them inside the file. Of this
                // one, nothing may stay past the end (best effort: the store just failed).
                let len = self.len();
                if at + n as u64 > len {
                    let _ = self.backing.punch(at.max(len), at + n as u64);
                }
                if at > offset {
                    self.shared.len.fetch_max(at, Ordering::AcqRel);
                }
                return Err(e);
            }
            at += n as u64;
        }
        self.shared.len.fetch_max(end, Ordering::AcqRel);
        Ok(data.len())
    }

    /// Writes `src` at `in_page` of page `index`, through to the backing store and into the
    /// cached copy if there is one.
    fn write_page<G>(
        &self,
        index: u64,
        in_page: usize,
        src: &[u8],
        held: &Exclusive<G>,
    ) -> io::Result<()> {
        held.0.check(self.id, index);
        self.backing.write_page(index, in_page, src)?;
        if let Some(page) = self.cache.get(index) {
            page.state().data[in_page..in_page + src.len()].copy_from_slice(src);
        }
        Ok(())
    }
}
