//! An address space: a page cache over a backing store whose fault, read, write, punch-hole
//! and truncate lock only the pages they touch.
//!
//! # The problem
//!
//! A page cache fills pages from storage while other operations free that storage. If a hole
//! punch drops a page and frees its block while a fault is between "look up the block" and
//! "insert the page", the fault inserts data from a block that may already belong to another
//! file: stale data, or another file's data, served from the cache. Linux closes that window with
//! `mapping->invalidate_lock`, one reader/writer semaphore per file: fills take it shared,
//! invalidations exclusive. It is correct, and it serialises every fault in a file against
//! every punch in the same file, wherever they are.
//!
//! [`AddressSpace`] follows the same lock rules with the lock chosen at compile time: over
//! [`RangeRwLock`](crate::RangeRwLock) (the default) each operation locks only its pages, so a
//! punch at one end of a file does not stall faults at the other; over [`WholeRwSem`] it is the
//! kernel's design, for comparison; over [`Unlocked`] it shows the race.
//!
//! # Lock rules
//!
//! - `fault` and `read` take the lock shared over their pages and hold it across the fill from
//!   the backing store, not only the insert into the cache.
//! - Cache hits take no lock (as `filemap_read` and `filemap_fault`): a read fault maps a
//!   cached page that is not invalidated, and a read copies cached pages, each under the
//!   page's mutex. A read checks its copy against a sequence count that every shrinking
//!   truncate changes, and copies again under the lock if one ran meanwhile.
//! - `write` takes it exclusive over its pages; a write fault takes it shared, hit or not, to
//!   reserve the page's storage (as `ext4_page_mkwrite`).
//! - `punch_hole` and `truncate` take it exclusive, then write back the dirty pages that survive
//!   (the partial pages at the edges), drop the cached pages and unmap their mappings, zero the
//!   partial pages, free the blocks, and only then unlock.
//! - `remap_range` locks both spaces in the order of their ids (shared on the source, exclusive
//!   on the destination); within one space it takes one exclusive lock over both ranges.
//!
//! Internal functions that need the lock held take the held guard as a parameter, so the
//! compiler checks that it is held (what lockdep assertions do in the kernel).
//!
//! # The backend switch
//!
//! `AddressSpace<L = DefaultLock, B = MemBacking>`. [`DefaultLock`] is `RangeRwLock`, or
//! `WholeRwSem` with the cargo feature `whole-rwsem`, as Linux's config option picks mmap range
//! locking.
//!
//! # Example
//!
//! ```
//! use rangelock::mm::{Access, AddressSpace, MemBacking, PAGE_SIZE};
//!
//! let space: AddressSpace = AddressSpace::new(MemBacking::new(1 << 20));
//! space.write(0, &[7u8; 3 * PAGE_SIZE])?;
//! let page = space.fault(PAGE_SIZE as u64, Access::Read)?;
//! let mut buf = [0u8; 4];
//! page.read(0, &mut buf)?;
//! assert_eq!(buf, [7; 4]);
//!
//! space.punch_hole(0, 2 * PAGE_SIZE as u64)?; // frees the blocks, unmaps the page
//! assert!(!page.is_mapped());
//! assert!(page.read(0, &mut buf).is_err());
//! let mut back = [1u8; 8];
//! assert_eq!(space.read(PAGE_SIZE as u64, &mut back)?, 8);
//! assert_eq!(back, [0; 8]);
//! assert_eq!(space.len(), 3 * PAGE_SIZE as u64); // a punch keeps the length
//! # Ok::<(), std::io::Error>(())
//! ```

mod backend;
mod backing;
mod cache;

pub use backend::{InvalidateLock, Unlocked, WholeRwSem};
pub use backing::{Backing, FileBacking, MemBacking};

use core::fmt;
use core::ops::RangeInclusive;
use std::io;
use std::sync::Arc;

use crate::sync::{AtomicBool, AtomicU64, Mutex, Ordering};
use cache::{Page, PageCache, PageState};

/// The page size of every address space, in bytes.
///
/// ```
/// assert_eq!(rangelock::mm::PAGE_SIZE, 4096);
/// ```
pub const PAGE_SIZE: usize = 4096;
const PAGE: u64 = PAGE_SIZE as u64;
/// Page index of the last page of the `u64` byte space.
const LAST_PAGE: u64 = u64::MAX / PAGE;

/// Cached pages by default: 16 MiB.
///
/// ```
/// use rangelock::mm::{DEFAULT_CACHE_PAGES, PAGE_SIZE};
/// assert_eq!(DEFAULT_CACHE_PAGES * PAGE_SIZE, 16 << 20);
/// ```
pub const DEFAULT_CACHE_PAGES: usize = 4096;

/// The invalidate lock used when none is named: [`RangeRwLock`](crate::RangeRwLock), or
/// [`WholeRwSem`] with the cargo feature `whole-rwsem`.
///
/// That feature is a compile-time switch and so, unlike most features, not additive: any crate
/// in the build that enables it changes `DefaultLock` for every other crate, including the
/// application. Libraries should therefore name their lock (`AddressSpace<RangeRwLock, B>`)
/// and leave `DefaultLock` to applications and benchmarks.
///
/// ```
/// use rangelock::mm::{AddressSpace, DefaultLock, MemBacking};
/// // Library code should name its lock: the default depends on a crate feature.
/// let space: AddressSpace<DefaultLock, MemBacking> = AddressSpace::new(MemBacking::new(1 << 20));
/// # drop(space);
/// ```
#[cfg(not(feature = "whole-rwsem"))]
pub type DefaultLock = crate::RangeRwLock;
/// The invalidate lock used when none is named: [`RangeRwLock`](crate::RangeRwLock), or
/// [`WholeRwSem`] with the cargo feature `whole-rwsem`.
///
/// That feature is a compile-time switch and so, unlike most features, not additive: any crate
/// in the build that enables it changes `DefaultLock` for every other crate, including the
/// application. Libraries should therefore name their lock (`AddressSpace<RangeRwLock, B>`)
/// and leave `DefaultLock` to applications and benchmarks.
///
/// ```
/// use rangelock::mm::{AddressSpace, DefaultLock, MemBacking};
/// // Library code should name its lock: the default depends on a crate feature.
/// let space: AddressSpace<DefaultLock, MemBacking> = AddressSpace::new(MemBacking::new(1 << 20));
/// # drop(space);
/// ```
#[cfg(feature = "whole-rwsem")]
pub type DefaultLock = WholeRwSem;

/// How a page is mapped by [`AddressSpace::fault`].
///
/// ```
/// use rangelock::mm::{Access, AddressSpace, MemBacking};
/// let space: AddressSpace = AddressSpace::new(MemBacking::new(1 << 20));
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

/// Counters of one address space (see [`AddressSpace::stats`]).
///
/// ```
/// use rangelock::mm::{AddressSpace, MemBacking, Stats};
/// let space: AddressSpace = AddressSpace::new(MemBacking::new(1 << 20));
/// assert_eq!(space.stats(), Stats::default());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Page lookups served from the cache.
    pub hits: u64,
    /// Page lookups that had to read the backing store.
    pub misses: u64,
    /// Pages read from the backing store and inserted into the cache.
    pub fills: u64,
    /// Clean unmapped pages evicted (by the cache bound or `drop_caches`).
    pub evictions: u64,
    /// Cached pages dropped by punch, truncate or remap.
    pub invalidations: u64,
    /// Invalidate-lock acquisitions that had to wait.
    pub lock_waits: u64,
    /// Pages filled ahead of a sequential reader (included in `fills`).
    pub readahead: u64,
    /// Read requests sent to the backing store (one per page, or one per readahead run).
    pub store_reads: u64,
    /// Pages dirty now (written through a mapping and not yet written back).
    pub dirty: u64,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    fills: AtomicU64,
    evictions: AtomicU64,
    invalidations: AtomicU64,
    lock_waits: AtomicU64,
    readahead: AtomicU64,
    store_reads: AtomicU64,
}

/// The part of a space that its mappings share, and outlive it with.
struct Shared {
    /// The file length: a mapping refuses writes past it.
    len: AtomicU64,
    /// Pages dirty now (written through a mapping, not yet written back, still cached): a
    /// mapping's first write to a clean page counts it.
    dirty: AtomicU64,
    /// Set when the space is closed or dropped, before its last write-back: from then on its
    /// mappings are unmapped. A mapping reads it under its page's mutex, which that
    /// write-back takes after setting it, so a write through a mapping either is written back
    /// or fails.
    closed: AtomicBool,
}

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
struct TruncateSeq(AtomicU64);

impl TruncateSeq {
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
    fn write(&self) -> TruncateSeqGuard<'_> {
        self.0.fetch_add(1, Ordering::AcqRel);
        TruncateSeqGuard(self)
    }
}

/// A shrinking truncate in progress: the count is odd until this drops.
struct TruncateSeqGuard<'a>(&'a TruncateSeq);

impl Drop for TruncateSeqGuard<'_> {
    fn drop(&mut self) {
        self.0 .0.fetch_add(1, Ordering::Release);
    }
}

fn bump(counter: &AtomicU64, by: u64) {
    if by > 0 {
        counter.fetch_add(by, Ordering::Relaxed);
    }
}

/// Proof that the invalidate lock is held over `pages` of space `space`: shared or exclusive.
/// Functions that need the lock take one of these.
struct Held<G> {
    _guard: G,
    space: u64,
    pages: RangeInclusive<u64>,
}

impl<G> Held<G> {
    fn check(&self, space: u64, index: u64) {
        debug_assert_eq!(self.space, space, "lock of another address space");
        debug_assert!(self.pages.contains(&index), "page {index} not locked");
    }
}

/// Proof that the invalidate lock is held exclusive.
struct Exclusive<G>(Held<G>);

/// A page cache over a backing store, whose operations lock only the pages they touch.
///
/// `L` is the invalidate lock ([`RangeRwLock`](crate::RangeRwLock) by default, see
/// [`DefaultLock`]); `B` the backing store ([`MemBacking`] by default, or [`FileBacking`]).
/// Every operation takes `&self`; the space is `Send + Sync`.
///
/// Semantics are POSIX-like: a write past the end leaves a gap that reads as zeros; a punched
/// range reads as zeros and keeps the length; bytes past the end in the last page read as zeros.
/// Writes are all or nothing with respect to space: storage is reserved before any byte
/// changes, so `StorageFull` changes no byte and no length and keeps no block.
///
/// The cache is bounded ([`DEFAULT_CACHE_PAGES`], or [`with_cache_pages`](Self::with_cache_pages)):
/// beyond the bound, clean pages without mappings are evicted (CLOCK). Pages that are mapped or
/// dirty stay, so the cache can exceed its bound while they do.
///
/// # What is durable when
///
/// - [`write`](Self::write), [`punch_hole`](Self::punch_hole), [`truncate`](Self::truncate)
///   and [`remap_range`] go through to the backing store before they return (a file's length
///   included), but the store may still hold them in the OS's cache.
/// - Writes through a [`MappedPage`] only dirty the cached page; they reach the store at the
///   next [`sync`](Self::sync), [`close`](Self::close), or when the space is dropped.
/// - [`sync`](Self::sync) and [`close`](Self::close) write dirty pages back and then make
///   content and length durable (`fsync` on a [`FileBacking`]), reporting errors.
/// - Dropping the space writes dirty pages back and syncs, best effort: errors are lost. Call
///   [`close`](Self::close) to see them.
/// - Closing or dropping the space unmaps its mappings first: a write through one either
///   happened before and is written back, or fails. None is accepted and then lost.
///
/// Two address spaces over one file are two independent caches: neither sees the other's
/// dirty pages, and their locks do not exclude each other.
///
/// ```
/// use rangelock::mm::{Access, AddressSpace, MemBacking, PAGE_SIZE};
/// let space: AddressSpace = AddressSpace::new(MemBacking::new(1 << 20));
/// space.write(0, &vec![1; 2 * PAGE_SIZE])?;
/// let page = space.fault(0, Access::Read)?;
/// space.punch_hole(0, PAGE_SIZE as u64)?; // waits for no fault of page 1
/// assert!(!page.is_mapped());
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct AddressSpace<L: InvalidateLock = DefaultLock, B: Backing = MemBacking> {
    id: u64,
    lock: L,
    backing: B,
    cache: PageCache,
    /// What the space shares with its mappings: the length, the dirty count, and whether the
    /// space is still open.
    shared: Arc<Shared>,
    /// Changed around every shrinking truncate, for lock-free readers to validate against.
    truncates: TruncateSeq,
    counters: Counters,
    /// Readahead streams, as Linux keeps one per open file: `(next, window)`, the page a
    /// sequential reader would miss next and the size of the window it filled last. Several
    /// streams let several sequential readers each keep theirs; a miss that continues no
    /// stream replaces the oldest.
    readahead: Mutex<Streams>,
}

/// Readahead streams and the next one to replace.
struct Streams {
    streams: [(u64, u64); READAHEAD_STREAMS],
    oldest: usize,
}

/// Sequential readers tracked at once.
const READAHEAD_STREAMS: usize = 8;

/// The first readahead window, in pages; it doubles on each sequential miss up to
/// [`READAHEAD_MAX`].
const READAHEAD_MIN: u64 = 4;
/// The largest readahead window, in pages (128 KiB), as Linux's default `read_ahead_kb`.
const READAHEAD_MAX: u64 = 32;

/// Ids order the locking of two spaces; a counter never reuses one.
fn next_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.into())
}

/// The page indices covering bytes `[start, end)`, `end > start`.
fn pages_of(start: u64, end: u64) -> RangeInclusive<u64> {
    start / PAGE..=(end - 1) / PAGE
}

/// The pages wholly inside bytes `[start, end)`. No byte at `u64::MAX` can exist (a file is at
/// most `u64::MAX` bytes long), so a range ending there covers the last page in full.
pub(crate) fn full_pages(start: u64, end: u64) -> core::ops::Range<u64> {
    let end_full = if end == u64::MAX {
        LAST_PAGE + 1
    } else {
        end / PAGE
    };
    start.div_ceil(PAGE)..end_full
}

impl<L: InvalidateLock, B: Backing> AddressSpace<L, B> {
    /// `InvalidInput` if the store cannot hold a file of `len` bytes (a file beyond `off_t`).
    fn check_len(&self, len: u64) -> io::Result<()> {
        let max = self.backing.max_len();
        if len > max {
            return Err(invalid(format!(
                "length {len} is beyond what the store can hold ({max} bytes)"
            )));
        }
        Ok(())
    }
}

/// `offset + len`, or `InvalidInput` if it overflows.
fn end_of(offset: u64, len: u64) -> io::Result<u64> {
    offset
        .checked_add(len)
        .ok_or_else(|| invalid(format!("offset {offset} + length {len} overflows u64")))
}

impl<L: InvalidateLock, B: Backing> AddressSpace<L, B> {
    /// An address space over `backing` with the default cache bound. Its length is the
    /// backing's stored length (a file's size; 0 for a new `MemBacking`).
    ///
    /// ```
    /// use rangelock::mm::{AddressSpace, MemBacking, PAGE_SIZE};
    /// let space: AddressSpace = AddressSpace::new(MemBacking::new(1 << 20));
    /// assert!(space.is_empty());
    /// ```
    pub fn new(backing: B) -> Self {
        Self::with_cache_pages(backing, DEFAULT_CACHE_PAGES)
    }

    /// An address space whose cache holds about `pages` clean pages.
    ///
    /// # Panics
    ///
    /// If `pages` is 0.
    ///
    /// ```
    /// use rangelock::mm::{AddressSpace, MemBacking, PAGE_SIZE};
    /// let space: AddressSpace = AddressSpace::with_cache_pages(MemBacking::new(1 << 20), 2);
    /// space.write(0, &vec![1; 4 * PAGE_SIZE])?;
    /// assert!(space.cached_pages() <= 4);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn with_cache_pages(backing: B, pages: usize) -> Self {
        AddressSpace {
            id: next_id(),
            lock: L::default(),
            shared: Arc::new(Shared {
                len: AtomicU64::new(backing.stored_len()),
                dirty: AtomicU64::new(0),
                closed: AtomicBool::new(false),
            }),
            backing,
            cache: PageCache::new(pages),
            truncates: TruncateSeq(AtomicU64::new(0)),
            counters: Counters::default(),
            readahead: Mutex::new(Streams {
                streams: [(u64::MAX, 0); READAHEAD_STREAMS],
                oldest: 0,
            }),
        }
    }

    /// The length in bytes.
    ///
    /// ```
    /// use rangelock::mm::{AddressSpace, MemBacking, PAGE_SIZE};
    /// let space: AddressSpace = AddressSpace::new(MemBacking::new(1 << 20));
    /// space.write(100, b"abc")?;
    /// assert_eq!(space.len(), 103);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn len(&self) -> u64 {
        self.shared.len.load(Ordering::Acquire)
    }

    /// Whether the length is 0.
    ///
    /// ```
    /// use rangelock::mm::{AddressSpace, MemBacking, PAGE_SIZE};
    /// let space: AddressSpace = AddressSpace::new(MemBacking::new(1 << 20));
    /// assert!(space.is_empty());
    /// space.truncate(1)?;
    /// assert!(!space.is_empty());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// This space's id: unique in the process, and the order in which two spaces are locked.
    ///
    /// ```
    /// use rangelock::mm::{AddressSpace, MemBacking, PAGE_SIZE};
    /// let a: AddressSpace = AddressSpace::new(MemBacking::new(1 << 20));
    /// let b: AddressSpace = AddressSpace::new(MemBacking::new(1 << 20));
    /// assert_ne!(a.id(), b.id());
    /// ```
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The backing store, for inspection (such as [`MemBacking::used_blocks`]). Calling its
    /// writing methods directly bypasses the cache and the invalidate lock.
    ///
    /// ```
    /// use rangelock::mm::{AddressSpace, MemBacking, PAGE_SIZE};
    /// let space: AddressSpace = AddressSpace::new(MemBacking::new(1 << 20));
    /// space.write(0, &[7; PAGE_SIZE])?;
    /// assert_eq!(space.backing().used_blocks(), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn backing(&self) -> &B {
        &self.backing
    }

    /// The number of pages in the cache.
    ///
    /// ```
    /// use rangelock::mm::{AddressSpace, MemBacking, PAGE_SIZE};
    /// let space: AddressSpace = AddressSpace::new(MemBacking::new(1 << 20));
    /// space.write(0, &[7; PAGE_SIZE])?;
    /// space.drop_caches();
    /// assert_eq!(space.cached_pages(), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn cached_pages(&self) -> usize {
        self.cache.len()
    }

    /// A snapshot of the counters.
    ///
    /// ```
    /// use rangelock::mm::{AddressSpace, MemBacking, PAGE_SIZE};
    /// let space: AddressSpace = AddressSpace::new(MemBacking::new(1 << 20));
    /// space.write(0, &[7; PAGE_SIZE])?;
    /// space.drop_caches();
    /// let mut buf = [0; 10];
    /// space.read(0, &mut buf)?; // a miss: read from the store
    /// space.read(0, &mut buf)?; // a hit
    /// let stats = space.stats();
    /// assert_eq!((stats.misses, stats.hits), (1, 1));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            hits: get(&c.hits),
            misses: get(&c.misses),
            fills: get(&c.fills),
            evictions: get(&c.evictions),
            invalidations: get(&c.invalidations),
            lock_waits: get(&c.lock_waits),
            readahead: get(&c.readahead),
            store_reads: get(&c.store_reads),
            dirty: self.shared.dirty.load(Ordering::Relaxed),
        }
    }

    fn lock_shared(&self, pages: RangeInclusive<u64>) -> Held<L::Shared<'_>> {
        self.hold(pages, L::try_lock_shared, L::lock_shared)
    }

    fn lock_exclusive(&self, pages: RangeInclusive<u64>) -> Exclusive<L::Exclusive<'_>> {
        Exclusive(self.hold(pages, L::try_lock_exclusive, L::lock_exclusive))
    }

    /// Takes the invalidate lock over `pages` with `lock`, counting a wait when `try_lock`
    /// shows that it will have to wait.
    fn hold<'a, G>(
        &'a self,
        pages: RangeInclusive<u64>,
        try_lock: impl FnOnce(&'a L, RangeInclusive<u64>) -> Option<G>,
        lock: impl FnOnce(&'a L, RangeInclusive<u64>) -> G,
    ) -> Held<G> {
        let guard = try_lock(&self.lock, pages.clone()).unwrap_or_else(|| {
            bump(&self.counters.lock_waits, 1);
            lock(&self.lock, pages.clone())
        });
        Held {
            _guard: guard,
            space: self.id,
            pages,
        }
    }

    /// Past a quarter of the cache's bound in dirty pages, a writer (a write fault) first writes
    /// dirty pages back until half of that remain, as Linux's `balance_dirty_pages` throttles
    /// writers: dirty pages cannot be evicted, so without this the cache would grow past its
    /// bound. Called without any lock held.
    fn balance_dirty(&self) -> io::Result<()> {
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

    /// Where the fill for a read of pages `first..=last` that missed at `first` should end:
    /// `last`, or further when the reader is sequential (it missed exactly where the previous
    /// fill ended). The window starts at [`READAHEAD_MIN`] pages and doubles on each
    /// sequential miss up to [`READAHEAD_MAX`], as Linux's `page_cache_ra_unbounded` grows it.
    fn readahead_end(&self, first: u64, last: u64) -> u64 {
        let file_last = match self.len() {
            0 => 0,
            len => (len - 1) / PAGE,
        };
        let mut ra = self.readahead.lock();
        let (slot, window) = if let Some(i) = ra.streams.iter().position(|&(next, _)| next == first)
        {
            (i, (ra.streams[i].1 * 2).clamp(READAHEAD_MIN, READAHEAD_MAX))
        } else {
            let i = ra.oldest;
            ra.oldest = (i + 1) % READAHEAD_STREAMS;
            (i, 0)
        };
        let end = last.max((first + window).saturating_sub(1).min(file_last));
        ra.streams[slot] = (end + 1, window);
        end
    }

    /// Fills the pages of `first..=last` that are not cached, each run of consecutive missing
    /// pages with one store request. The lock must be held over them (shared suffices).
    /// `read_last` is the reader's own last page: pages past it count as readahead.
    fn fill_run<G>(&self, first: u64, last: u64, read_last: u64, held: &Held<G>) -> io::Result<()> {
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
    fn filled<G>(&self, index: u64, held: &Held<G>) -> io::Result<Arc<Page>> {
        match self.cache.get(index) {
            Some(page) => Ok(page),
            None => self.page(index, held),
        }
    }

    /// The cached page `index`, filling it from the backing store on a miss. The lock must be
    /// held over it (shared suffices) across the fill, so no invalidation can free its block
    /// between the read and the insert.
    fn page<G>(&self, index: u64, held: &Held<G>) -> io::Result<Arc<Page>> {
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

    /// Reads up to `buf.len()` bytes at `offset`; fewer at the end of the file, 0 past it.
    ///
    /// Locks the pages shared.
    ///
    /// # Errors
    ///
    /// The backing store's error when a page must be read from it.
    ///
    /// ```
    /// use rangelock::mm::{AddressSpace, MemBacking, PAGE_SIZE};
    /// let space: AddressSpace = AddressSpace::new(MemBacking::new(1 << 20));
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
        let end = end_of(offset, buf.len() as u64)?;
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

    /// Writes all of `data` at `offset`, extending the file if it ends past the end; returns
    /// `data.len()`. Storage is reserved first: `StorageFull` changes nothing.
    ///
    /// Locks the pages exclusive; writes through to the backing store and updates cached pages.
    ///
    /// # Errors
    ///
    /// `StorageFull` if storage for the new pages cannot be reserved (nothing is written then);
    /// `InvalidInput` if the write would end past `u64::MAX`; the store's error otherwise.
    ///
    /// ```
    /// use rangelock::mm::{AddressSpace, MemBacking, PAGE_SIZE};
    /// let space: AddressSpace = AddressSpace::new(MemBacking::new(1 << 20));
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

    /// Maps the page containing `offset` and returns the mapping. A fault past the end of the
    /// file fails with `UnexpectedEof` (a mapping never shows garbage). A write fault reserves
    /// the page's storage, so writes through the mapping cannot run out of space.
    ///
    /// Locks the page shared, unless a read fault finds it cached; a write fault always locks
    /// it, to reserve its storage.
    ///
    /// # Errors
    ///
    /// `UnexpectedEof` past the end of the file; `StorageFull` if a write fault cannot reserve
    /// the page; the store's error when the page must be read.
    ///
    /// ```
    /// use rangelock::mm::{Access, AddressSpace, MemBacking, PAGE_SIZE};
    /// let space: AddressSpace = AddressSpace::new(MemBacking::new(1 << 20));
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

    /// Frees `[offset, offset + len)`: the range reads as zeros afterwards and the file keeps
    /// its length. Pages wholly inside are dropped from the cache and their mappings unmapped;
    /// partial pages are zeroed in place and stay mapped. Punching past the end is a no-op
    /// success; `len == 0` does nothing.
    ///
    /// Locks the pages exclusive for the whole operation.
    ///
    /// # Errors
    ///
    /// The store's error from freeing the blocks.
    ///
    /// ```
    /// use rangelock::mm::{AddressSpace, MemBacking, PAGE_SIZE};
    /// let space: AddressSpace = AddressSpace::new(MemBacking::new(1 << 20));
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
        let end = end_of(offset, len)?;
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
    /// The store's error from freeing the blocks or recording the length.
    ///
    /// ```
    /// use rangelock::mm::{AddressSpace, MemBacking, PAGE_SIZE};
    /// let space: AddressSpace = AddressSpace::new(MemBacking::new(1 << 20));
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
    fn free_blocks<G>(&self, start: u64, end: u64, held: &Exclusive<G>) -> io::Result<()> {
        let pages = pages_of(start, end);
        held.0.check(self.id, *pages.start());
        held.0.check(self.id, *pages.end());
        self.backing.punch(start, end)
    }

    /// Drops the bytes `[start, end)` from the cache: drops the pages wholly inside (unmapping
    /// them) and zeroes the partial ones in place. The exclusive lock over those pages is the
    /// caller's proof; no fill can bring old data back while it is held.
    fn drop_cached<G>(&self, start: u64, end: u64, held: &Exclusive<G>) {
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

    /// Writes `page` back if it is dirty and still cached.
    fn write_back<G>(&self, page: &Page, held: &Held<G>) -> io::Result<()> {
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
    /// let space: AddressSpace = AddressSpace::new(MemBacking::new(1 << 20));
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
    /// `Other`), as do reads; [`MappedPage::is_mapped`] is false.
    ///
    /// # Errors
    ///
    /// As [`sync`](Self::sync).
    ///
    /// ```
    /// use rangelock::mm::{Access, AddressSpace, FileBacking, PAGE_SIZE};
    /// let path = std::env::temp_dir().join(format!("rangelock-close-{}", std::process::id()));
    /// let space: AddressSpace<rangelock::RangeRwLock, FileBacking> =
    ///     AddressSpace::new(FileBacking::create(&path)?);
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

    /// Evicts every clean page that no mapping holds; returns how many. Writes nothing back.
    ///
    /// ```
    /// use rangelock::mm::{AddressSpace, MemBacking, PAGE_SIZE};
    /// let space: AddressSpace = AddressSpace::new(MemBacking::new(1 << 20));
    /// space.write(0, &[1; PAGE_SIZE])?;
    /// space.drop_caches();
    /// assert_eq!(space.cached_pages(), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn drop_caches(&self) -> usize {
        let n = self.cache.drop_clean();
        bump(&self.counters.evictions, n as u64);
        n
    }
}

impl<L: InvalidateLock, B: Backing> AddressSpace<L, B> {
    /// A mapping of `page`, which the caller found cached.
    fn map(&self, page: Arc<Page>, access: Access) -> MappedPage {
        MappedPage {
            page,
            access,
            space: Arc::clone(&self.shared),
        }
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

impl<L: InvalidateLock, B: Backing> fmt::Debug for AddressSpace<L, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddressSpace")
            .field("id", &self.id)
            .field("len", &self.len())
            .field("cached_pages", &self.cached_pages())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Copies `len` bytes at `src_off` of `src` to `dst_off` of `dst`, replacing what was there
/// (holes stay holes, mappings of replaced pages are unmapped) and extending `dst` as needed.
/// Returns the number of bytes copied.
///
/// Offsets and length must be multiples of [`PAGE_SIZE`], the source range must lie inside the
/// source file, and within one space the two ranges must not overlap; otherwise
/// `InvalidInput`. The copy is atomic with respect to other operations on both ranges: the
/// spaces are locked in the order of their ids (shared on the source, exclusive on the
/// destination), and within one space one exclusive lock covers both ranges. Storage is
/// reserved first, so `StorageFull` changes nothing.
///
/// # Errors
///
/// `InvalidInput` for unaligned or out-of-file ranges (or overlapping ones in one space);
/// `StorageFull` if the destination cannot reserve its pages; the stores' errors otherwise.
///
/// ```
/// use rangelock::mm::{remap_range, AddressSpace, MemBacking, PAGE_SIZE};
/// let a: AddressSpace = AddressSpace::new(MemBacking::new(1 << 20));
/// let b: AddressSpace = AddressSpace::new(MemBacking::new(1 << 20));
/// a.write(0, &[5u8; PAGE_SIZE])?;
/// assert_eq!(remap_range(&a, 0, &b, 2 * PAGE_SIZE as u64, PAGE_SIZE as u64)?, PAGE_SIZE as u64);
/// assert_eq!(b.len(), 3 * PAGE_SIZE as u64);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn remap_range<L1, B1, L2, B2>(
    src: &AddressSpace<L1, B1>,
    src_off: u64,
    dst: &AddressSpace<L2, B2>,
    dst_off: u64,
    len: u64,
) -> io::Result<u64>
where
    L1: InvalidateLock,
    B1: Backing,
    L2: InvalidateLock,
    B2: Backing,
{
    for (what, v) in [
        ("source offset", src_off),
        ("destination offset", dst_off),
        ("length", len),
    ] {
        if v % PAGE != 0 {
            return Err(invalid(format!(
                "remap {what} {v} is not a multiple of {PAGE_SIZE}"
            )));
        }
    }
    if len == 0 {
        return Ok(0);
    }
    let (src_end, dst_end) = (end_of(src_off, len)?, end_of(dst_off, len)?);
    dst.check_len(dst_end)?;
    let (src_pages, dst_pages) = (pages_of(src_off, src_end), pages_of(dst_off, dst_end));
    match src.id.cmp(&dst.id) {
        core::cmp::Ordering::Equal => {
            if src_off < dst_end && dst_off < src_end {
                return Err(invalid("remap ranges overlap within one address space"));
            }
            // One lock over both ranges: a whole-mapping rwsem cannot be taken twice.
            let hull = (*src_pages.start()).min(*dst_pages.start())
                ..=(*src_pages.end()).max(*dst_pages.end());
            let held = dst.lock_exclusive(hull);
            remap_locked(src, src_off, &held.0, dst, dst_off, &held, len)
        }
        core::cmp::Ordering::Less => {
            let s = src.lock_shared(src_pages);
            let d = dst.lock_exclusive(dst_pages);
            remap_locked(src, src_off, &s, dst, dst_off, &d, len)
        }
        core::cmp::Ordering::Greater => {
            let d = dst.lock_exclusive(dst_pages);
            let s = src.lock_shared(src_pages);
            remap_locked(src, src_off, &s, dst, dst_off, &d, len)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn remap_locked<L1, B1, L2, B2, G1, G2>(
    src: &AddressSpace<L1, B1>,
    src_off: u64,
    s: &Held<G1>,
    dst: &AddressSpace<L2, B2>,
    dst_off: u64,
    d: &Exclusive<G2>,
    len: u64,
) -> io::Result<u64>
where
    L1: InvalidateLock,
    B1: Backing,
    L2: InvalidateLock,
    B2: Backing,
{
    let src_len = src.len();
    if src_off + len > src_len {
        return Err(invalid(format!(
            "remap source {src_off}..{} is not inside the source file ({src_len} bytes)",
            src_off + len
        )));
    }
    let (first, last) = (src_off / PAGE, (src_off + len) / PAGE - 1);
    let to_dst = |p: u64| p - first + dst_off / PAGE;
    // The source pages with data: stored ones, and dirty cached ones (stored too, as a write
    // fault reserves storage, unless the backing cannot reserve).
    let mut data = Vec::new();
    src.backing.stored_pages(first, last, &mut data)?;
    let cached = src.cache.range(first, last);
    data.extend(cached.iter().filter(|p| p.state().dirty).map(|p| p.index));
    data.sort_unstable();
    data.dedup();
    dst.backing.reserve(&mut data.iter().map(|&p| to_dst(p)))?;
    // Nothing can fail for lack of space from here on. The replaced pages leave the cache
    // first, so that whatever happens below, reads show what the store holds.
    let (dst_first, dst_last) = (to_dst(first), to_dst(last));
    dst.drop_cached(dst_off, dst_off + len, d);
    for &p in &data {
        let page = src.page(p, s)?;
        let copy = page.state().data.clone();
        d.0.check(dst.id, to_dst(p));
        if let Err(e) = dst.backing.write_page(to_dst(p), 0, &copy[..]) {
            // Keep every page written (this one perhaps in part) inside the file.
            dst.shared
                .len
                .fetch_max((to_dst(p) + 1) * PAGE, Ordering::AcqRel);
            return Err(e);
        }
    }
    // Destination pages that the source has no data for become holes.
    let mut stored = Vec::new();
    dst.backing.stored_pages(dst_first, dst_last, &mut stored)?;
    let mut with_data = data.iter().map(|&p| to_dst(p)).peekable();
    for q in stored {
        while with_data.next_if(|&w| w < q).is_some() {}
        if with_data.peek() != Some(&q) {
            dst.backing.punch(q * PAGE, (q + 1) * PAGE)?;
        }
    }
    if dst_off + len > dst.len() {
        // The store's length follows at once, holes at the end included.
        dst.backing.truncate(dst_off + len)?;
    }
    dst.shared.len.fetch_max(dst_off + len, Ordering::AcqRel);
    Ok(len)
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
/// let space: AddressSpace = AddressSpace::new(MemBacking::new(1 << 20));
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
    /// let space: AddressSpace = AddressSpace::new(MemBacking::new(1 << 20));
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
    /// let space: AddressSpace = AddressSpace::new(MemBacking::new(1 << 20));
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
    /// let space: AddressSpace = AddressSpace::new(MemBacking::new(1 << 20));
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
    /// let space: AddressSpace = AddressSpace::new(MemBacking::new(1 << 20));
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
    /// let space: AddressSpace = AddressSpace::new(MemBacking::new(1 << 20));
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

#[cfg(test)]
mod tests;
