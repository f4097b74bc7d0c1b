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
//! - Write-back of one page is serialised (as `PG_writeback`), under the lock shared over the
//!   page, so no older copy lands after a newer. Closing or dropping the space unmaps its
//!   mappings before the last write-back.
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
//! # Fairness
//!
//! Both default backends are [`RangeRwLock::new`](crate::RangeRwLock::new)'s bounded barging,
//! as the kernel's rwsem is: a running fault may pass a punch or truncate that waits for its
//! pages, but only until that invalidation has waited the hand-off time
//! ([`RangeRwLock::DEFAULT_HANDOFF`](crate::RangeRwLock::DEFAULT_HANDOFF), 1 ms; the kernel's
//! is 4 ms at least). After that nothing passes it, so a stream of small faults cannot starve
//! a wide invalidation. Where invalidations must never be passed at all, name
//! [`FifoRangeLock`]: strict FIFO order over ranges.
//!
//! # Example
//!
//! ```
//! use rangelock::mm::{Access, AddressSpace, MemBacking, PAGE_SIZE};
//!
//! let space = AddressSpace::new(MemBacking::new(1 << 20));
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

// Where each part lives; each file states its lock rule at its top.
mod backend; // the invalidate lock: the trait and its backends
mod backing; // the stores pages live in when not cached
mod cache; // the bounded page cache and its pages
mod invalidate; // punch_hole and truncate: exclusive over their pages, before write-back
mod mapping; // fault and MappedPage: read-fault hits lock-free, write faults locked
mod read; // read: lock-free hits validated against truncates, fills under the lock
mod readahead; // the window a sequential reader's fill reaches ahead
mod remap; // remap_range: two spaces locked in id order
mod write; // write: exclusive over its pages, storage reserved first
mod writeback; // sync, close, drop and dirty throttling: one write-back of a page at a time

pub use backend::{FifoRangeLock, InvalidateLock, Unlocked, WholeRwSem};
pub use backing::{Backing, FileBacking, MemBacking};
pub use mapping::{Access, MappedPage};
pub use remap::remap_range;

use core::fmt;
use core::ops::RangeInclusive;
use std::io;
use std::sync::Arc;

use crate::sync::{AtomicBool, AtomicU64, Mutex, Ordering};
use cache::PageCache;
use read::TruncateSeq;
use readahead::Streams;

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
/// application. Libraries should therefore name their lock (`AddressSpace<RangeRwLock, B>`,
/// built with [`with_lock`](AddressSpace::with_lock)) and leave `DefaultLock` to applications
/// and benchmarks.
///
/// ```
/// use rangelock::mm::{AddressSpace, DefaultLock, MemBacking};
/// use rangelock::RangeRwLock;
/// // An application takes the default; library code names its lock, since the default
/// // depends on a crate feature.
/// let app: AddressSpace<DefaultLock, _> = AddressSpace::new(MemBacking::new(1 << 20));
/// let lib: AddressSpace<RangeRwLock, _> = AddressSpace::with_lock(MemBacking::new(1 << 20));
/// # drop((app, lib));
/// ```
#[cfg(not(feature = "whole-rwsem"))]
pub type DefaultLock = crate::RangeRwLock;

/// The invalidate lock used when none is named: [`RangeRwLock`](crate::RangeRwLock), or
/// [`WholeRwSem`] with the cargo feature `whole-rwsem`.
///
/// That feature is a compile-time switch and so, unlike most features, not additive: any crate
/// in the build that enables it changes `DefaultLock` for every other crate, including the
/// application. Libraries should therefore name their lock (`AddressSpace<RangeRwLock, B>`,
/// built with [`with_lock`](AddressSpace::with_lock)) and leave `DefaultLock` to applications
/// and benchmarks.
///
/// ```
/// use rangelock::mm::{AddressSpace, DefaultLock, MemBacking};
/// use rangelock::RangeRwLock;
/// // An application takes the default; library code names its lock, since the default
/// // depends on a crate feature.
/// let app: AddressSpace<DefaultLock, _> = AddressSpace::new(MemBacking::new(1 << 20));
/// let lib: AddressSpace<RangeRwLock, _> = AddressSpace::with_lock(MemBacking::new(1 << 20));
/// # drop((app, lib));
/// ```
#[cfg(feature = "whole-rwsem")]
pub type DefaultLock = WholeRwSem;

/// Counters of one address space (see [`AddressSpace::stats`]).
///
/// ```
/// use rangelock::mm::{AddressSpace, MemBacking, Stats};
/// let space = AddressSpace::new(MemBacking::new(1 << 20));
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
/// Every operation takes `&self`; the space is `Send + Sync`. Build one with
/// [`new`](AddressSpace::new) for the default lock (`AddressSpace::new(backing)` infers the
/// rest), or [`with_lock`](AddressSpace::with_lock) for a lock the type names.
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
/// let space = AddressSpace::new(MemBacking::new(1 << 20));
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

impl<B: Backing> AddressSpace<DefaultLock, B> {
    /// An address space over `backing`, with the default lock ([`DefaultLock`]) and cache
    /// bound ([`DEFAULT_CACHE_PAGES`]). Its length is the backing's stored length (a file's
    /// size; 0 for a new `MemBacking`).
    ///
    /// Defined for the default lock only, as `HashMap::new` is for `RandomState`: a default
    /// type parameter takes no part in inference, so a `new` generic over the lock would leave
    /// `AddressSpace::new(backing)` ambiguous (E0283) and need an annotation at every call.
    /// Other locks have [`with_lock`](AddressSpace::with_lock).
    ///
    /// ```
    /// use rangelock::mm::{AddressSpace, FileBacking, MemBacking};
    /// // The natural line compiles for every backing, without annotations.
    /// let space = AddressSpace::new(MemBacking::new(1 << 20));
    /// assert!(space.is_empty());
    ///
    /// let path = std::env::temp_dir().join(format!("rangelock-new-{}", std::process::id()));
    /// let file = AddressSpace::new(FileBacking::create(&path)?);
    /// file.write(0, b"on disk")?;
    /// file.close()?;
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use]
    pub fn new(backing: B) -> Self {
        Self::with_lock(backing)
    }

    /// An address space with the default lock whose cache holds about `pages` clean pages
    /// (see [`new`](Self::new); other locks have
    /// [`with_lock_and_cache_pages`](AddressSpace::with_lock_and_cache_pages)).
    ///
    /// # Panics
    ///
    /// If `pages` is 0.
    ///
    /// ```
    /// use rangelock::mm::{AddressSpace, MemBacking, PAGE_SIZE};
    /// let space = AddressSpace::with_cache_pages(MemBacking::new(1 << 20), 2);
    /// space.write(0, &vec![1; 4 * PAGE_SIZE])?;
    /// assert!(space.cached_pages() <= 4);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use]
    pub fn with_cache_pages(backing: B, pages: usize) -> Self {
        Self::with_lock_and_cache_pages(backing, pages)
    }
}

impl<L: InvalidateLock, B: Backing> AddressSpace<L, B> {
    /// An address space over `backing` with the lock `L`, which the type names (an annotation
    /// or a turbofish): the constructor for a lock other than the default, and for code
    /// generic over the lock. Otherwise as [`new`](AddressSpace::new).
    ///
    /// ```
    /// use rangelock::mm::{AddressSpace, MemBacking, WholeRwSem};
    /// use rangelock::RangeRwLock;
    /// // The whole-mapping baseline, and the range lock whatever the crate feature says.
    /// let rwsem: AddressSpace<WholeRwSem, _> = AddressSpace::with_lock(MemBacking::new(1 << 20));
    /// let range = AddressSpace::<RangeRwLock, _>::with_lock(MemBacking::new(1 << 20));
    /// # drop((rwsem, range));
    /// ```
    #[must_use]
    pub fn with_lock(backing: B) -> Self {
        Self::with_lock_and_cache_pages(backing, DEFAULT_CACHE_PAGES)
    }

    /// An address space with the lock `L` whose cache holds about `pages` clean pages (see
    /// [`with_lock`](Self::with_lock) and [`with_cache_pages`](AddressSpace::with_cache_pages)).
    ///
    /// # Panics
    ///
    /// If `pages` is 0.
    ///
    /// ```
    /// use rangelock::mm::{AddressSpace, MemBacking, PAGE_SIZE, WholeRwSem};
    /// let space: AddressSpace<WholeRwSem, _> =
    ///     AddressSpace::with_lock_and_cache_pages(MemBacking::new(1 << 20), 2);
    /// space.write(0, &vec![1; 4 * PAGE_SIZE])?;
    /// assert!(space.cached_pages() <= 4);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use]
    pub fn with_lock_and_cache_pages(backing: B, pages: usize) -> Self {
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
            truncates: TruncateSeq::new(),
            counters: Counters::default(),
            readahead: Mutex::new(Streams::new()),
        }
    }

    /// The length in bytes.
    ///
    /// ```
    /// use rangelock::mm::{AddressSpace, MemBacking, PAGE_SIZE};
    /// let space = AddressSpace::new(MemBacking::new(1 << 20));
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
    /// let space = AddressSpace::new(MemBacking::new(1 << 20));
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
    /// let a = AddressSpace::new(MemBacking::new(1 << 20));
    /// let b = AddressSpace::new(MemBacking::new(1 << 20));
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
    /// let space = AddressSpace::new(MemBacking::new(1 << 20));
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
    /// let space = AddressSpace::new(MemBacking::new(1 << 20));
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
    /// let space = AddressSpace::new(MemBacking::new(1 << 20));
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

    /// Evicts every clean page that no mapping holds; returns how many. Writes nothing back.
    ///
    /// ```
    /// use rangelock::mm::{AddressSpace, MemBacking, PAGE_SIZE};
    /// let space = AddressSpace::new(MemBacking::new(1 << 20));
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

#[cfg(test)]
mod tests;
