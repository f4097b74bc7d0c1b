//! Reads: cached pages copied without the invalidate lock, missing ones filled under it.
//!
//! # Lock rule
//!
//! A fill (of a read, a fault, or readahead) holds the invalidate lock shared over its pages
//! from the store read to the insert into the cache, so no invalidation can free a block in
//! between and let a fill insert data from a block that already belongs to someone else.
//!
//! A hit takes no invalidate lock: each cached page is copied under its own mutex while it is
//! still cached, and the copy is validated against shrinking truncates with [`TruncateSeq`];
//! if one ran meanwhile, the read copies again under the lock.

use std::io;
use std::sync::Arc;

use super::cache::{self, Page};
use super::{bump, AddressSpace, Backing, Held, InvalidateLock, PAGE};
use crate::sync::{AtomicU64, Ordering};

/// A sequence count around shrinking truncates, as Linux's `i_size_seqcount` (and once its
/// `truncate_count`): odd while a truncate changes the length and the pages past it, bumped
/// again when it is done. A lock-free reader takes it before the length and checks it after
/// its copies; if a truncate began in between, what it copied may mix lengths and pages from
/// either side of it, and the reader copies again under the lock.
///
/// Why a reader that saw any of a truncate's changes sees the count changed: the truncate
/// bumps the count before it changes anything, and the reader can only have seen a change
/// through a page's mutex (its zeroed tail, its invalidated mark), a shard's mutex (a page
/// gone) or the length's release store. Each makes the bump happen before the reader's
/// check, which therefore reads it or a later value.
pub(super) struct TruncateSeq(AtomicU64);

impl TruncateSeq {
    pub(super) fn new() -> Self {
        TruncateSeq(AtomicU64::new(0))
    }

    /// The count to validate a lock-free read against, or `None` while a truncate runs.
    fn read_begin(&self) -> Option<u64> {
        let seq = self.0.load(Ordering::Acquire);
        (seq % 2 == 0).then_some(seq)
    }

    /// Whether no shrinking truncate began since [`read_begin`](Self::read_begin) returned
    /// `seq`: then what the reader copied is what the file held at one moment.
    fn read_valid(&self, seq: u64) -> bool {
        self.0.load(Ordering::Acquire) == seq
    }

    /// Marks a shrinking truncate running until the returned guard is dropped. Only under the
    /// invalidate lock held exclusive to the end of the space, so truncates never overlap.
    pub(super) fn write(&self) -> TruncateSeqGuard<'_> {
        self.0.fetch_add(1, Ordering::AcqRel);
        TruncateSeqGuard(self)
    }
}

/// A shrinking truncate in progress: the count is odd until this drops.
pub(super) struct TruncateSeqGuard<'a>(&'a TruncateSeq);

impl Drop for TruncateSeqGuard<'_> {
    fn drop(&mut self) {
        self.0 .0.fetch_add(1, Ordering::Release);
    }
}

impl<L: InvalidateLock, B: Backing> AddressSpace<L, B> {
    /// Reads up to `buf.len()` bytes at `offset`; fewer at the end of the file, 0 past it.
    ///
    /// Locks the pages shared, unless they are all cached.
    ///
    /// # Errors
    ///
    /// The backing store's error when a page must be read from it. Nothing else: any offset is
    /// valid, and a read whose `offset + buf.len()` would overflow `u64` is no error, since no
    /// file extends past `u64::MAX`; like any read past the end it is short, or 0.
    ///
    /// ```
    /// use rangelock::mm::{AddressSpace, MemBacking, PAGE_SIZE};
    /// let space = AddressSpace::new(MemBacking::new(1 << 20));
    /// space.write(0, b"hello")?;
    /// let mut buf = [0; 8];
    /// assert_eq!(space.read(0, &mut buf)?, 5); // the file is 5 bytes long
    /// assert_eq!(&buf[..5], b"hello");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // No file extends past `u64::MAX`: a read running past it is past the end.
        let end = offset.saturating_add(buf.len() as u64);
        // Taken before the length, which it validates with the pages copied.
        let seq = self.truncates.read_begin();
        let end = end.min(self.len());
        if offset >= end {
            return Ok(0);
        }
        let mut at = offset;
        if let Some(seq) = seq {
            at = self.copy_hits(offset, end, buf);
            if !self.truncates.read_valid(seq) {
                at = offset; // a truncate ran meanwhile: copy again, under the lock
            } else if at == end {
                return Ok((end - offset) as usize);
            }
        }
        // A miss: fill under the lock, shared, so no invalidation frees a block in between;
        // a sequential reader fills a readahead window under the same lock.
        let (first, read_last) = (at / PAGE, (end - 1) / PAGE);
        let fill_end = self.readahead_end(first, read_last);
        let held = self.lock_shared(first..=fill_end);
        // A truncate may have shortened the file since the hits were validated; none can now.
        // The file's bytes up to its new end are those copied (a truncate changes none below
        // it), the rest are gone: the read ends where the file does.
        let end = end.min(self.len());
        if at >= end {
            return Ok(end.saturating_sub(offset) as usize);
        }
        let file_last = (self.len() - 1) / PAGE;
        self.fill_run(first, fill_end.min(file_last), read_last, &held)?;
        while at < end {
            let (index, in_page) = (at / PAGE, (at % PAGE) as usize);
            let n = (PAGE - at % PAGE).min(end - at) as usize;
            let page = self.filled(index, &held)?;
            let out = (at - offset) as usize;
            buf[out..out + n].copy_from_slice(&page.state().data[in_page..in_page + n]);
            at += n as u64;
        }
        Ok((end - offset) as usize)
    }

    /// Copies the bytes `[offset, end)` of cached pages into `buf` (which starts at `offset`),
    /// up to the first page not cached, without the invalidate lock; returns where it stopped.
    ///
    /// Each page is copied under its own mutex while it is still cached (as Linux finds
    /// uptodate folios under RCU): the data of a cached page is the file's, and a punch or
    /// truncate marks a page invalidated (under that mutex) before it returns, so a hit either
    /// precedes it or sees the mark. The length that bounds the copy is another matter: a
    /// truncate that shrinks the file between the reader's load of it and its copies would
    /// have the reader return zeros the truncate wrote past the new end as file data, so the
    /// caller validates the copy with [`TruncateSeq`].
    fn copy_hits(&self, offset: u64, end: u64, buf: &mut [u8]) -> u64 {
        let mut at = offset;
        while at < end {
            let (index, in_page) = (at / PAGE, (at % PAGE) as usize);
            let n = (PAGE - at % PAGE).min(end - at) as usize;
            let Some(page) = self.cache.get(index) else {
                break;
            };
            let state = page.state();
            if state.invalidated {
                break;
            }
            let out = (at - offset) as usize;
            buf[out..out + n].copy_from_slice(&state.data[in_page..in_page + n]);
            bump(&self.counters.hits, 1);
            at += n as u64;
        }
        at
    }

    /// Fills the pages of `first..=last` that are not cached, each run of consecutive missing
    /// pages with one store request. The lock must be held over them (shared suffices).
    /// `read_last` is the reader's own last page: pages past it count as readahead.
    pub(super) fn fill_run<G>(
        &self,
        first: u64,
        last: u64,
        read_last: u64,
        held: &Held<G>,
    ) -> io::Result<()> {
        let mut index = first;
        while index <= last {
            if self.cache.get(index).is_some() {
                index += 1;
                continue;
            }
            let mut end = index;
            while end < last && self.cache.get(end + 1).is_none() {
                end += 1;
            }
            held.check(self.id, index);
            held.check(self.id, end);
            let mut bufs: Vec<_> = (index..=end).map(|_| cache::zeroed_page()).collect();
            bump(&self.counters.store_reads, 1);
            self.backing.read_pages(index, &mut bufs)?;
            for (i, data) in (index..).zip(bufs) {
                let inserted = self.cache.insert(Page::new(i, data));
                bump(&self.counters.evictions, inserted.evicted as u64);
            }
            let n = end - index + 1;
            // The reader's own pages in the run were misses; the rest is readahead.
            if index <= read_last {
                bump(&self.counters.misses, n.min(read_last - index + 1));
            }
            bump(&self.counters.fills, n);
            bump(
                &self.counters.readahead,
                (end.saturating_sub(read_last)).min(n),
            );
            if end == last {
                break;
            }
            index = end + 1;
        }
        Ok(())
    }

    /// Page `index` just after `fill_run` (which counted it): from the cache, or, if it was
    /// evicted meanwhile, filled again.
    pub(super) fn filled<G>(&self, index: u64, held: &Held<G>) -> io::Result<Arc<Page>> {
        match self.cache.get(index) {
            Some(page) => Ok(page),
            None => self.page(index, held),
        }
    }

    /// The cached page `index`, filling it from the backing store on a miss. The lock must be
    /// held over it (shared suffices) across the fill, so no invalidation can free its block
    /// between the read and the insert.
    pub(super) fn page<G>(&self, index: u64, held: &Held<G>) -> io::Result<Arc<Page>> {
        held.check(self.id, index);
        if let Some(page) = self.cache.get(index) {
            bump(&self.counters.hits, 1);
            return Ok(page);
        }
        bump(&self.counters.misses, 1);
        let mut data = cache::zeroed_page();
        bump(&self.counters.store_reads, 1);
        self.backing.read_page(index, &mut data)?;
        let inserted = self.cache.insert(Page::new(index, data));
        bump(&self.counters.fills, 1);
        bump(&self.counters.evictions, inserted.evicted as u64);
        Ok(inserted.page)
    }
}
