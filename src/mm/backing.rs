//! Backing stores: where an address space's pages live when they are not cached.
//!
//! A backing store is addressed in pages of [`PAGE_SIZE`] bytes. Storage for a page is
//! *reserved* before anything is written to it, so that running out of space is reported before
//! any byte changes; *punching* frees it again, and an unreserved page reads as zeros.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::PAGE_SIZE;
use crate::sync::Mutex;

/// Page-addressed storage under an [`AddressSpace`](super::AddressSpace).
///
/// The address space calls these with its invalidate lock held as the lock rules require; a
/// backing store needs only to be safe to call from several threads at once.
///
/// ```
/// use rangelock::mm::{Backing, MemBacking, PAGE_SIZE};
/// // Stores are normally driven by an `AddressSpace`; directly, they bypass its cache and lock.
/// let dev = MemBacking::new(4 * PAGE_SIZE as u64);
/// dev.reserve(&mut [1u64].into_iter())?;
/// dev.write_page(1, 0, b"raw")?;
/// let mut page = [0; PAGE_SIZE];
/// dev.read_page(1, &mut page)?;
/// assert_eq!(&page[..3], b"raw");
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait Backing: Send + Sync {
    /// The length recorded by the store when it was opened (a file's size); 0 for a new store.
    fn stored_len(&self) -> u64;

    /// Reads page `index` into `buf`. A page without storage reads as zeros.
    ///
    /// # Errors
    ///
    /// The store's IO error; `buf` is then unspecified.
    fn read_page(&self, index: u64, buf: &mut [u8; PAGE_SIZE]) -> io::Result<()>;

    /// Reads the consecutive pages `first..first + bufs.len()` into `bufs` (readahead). The
    /// default reads them one by one; a store that can should read them in one request.
    ///
    /// # Errors
    ///
    /// The store's IO error; `bufs` are then unspecified.
    fn read_pages(&self, first: u64, bufs: &mut [Box<[u8; PAGE_SIZE]>]) -> io::Result<()> {
        for (index, buf) in (first..).zip(bufs.iter_mut()) {
            self.read_page(index, buf)?;
        }
        Ok(())
    }

    /// Writes `data` at byte `at` of page `index`, which must have been reserved.
    ///
    /// # Errors
    ///
    /// The store's IO error (or an error for a page that was not reserved).
    fn write_page(&self, index: u64, at: usize, data: &[u8]) -> io::Result<()>;

    /// Makes sure every page in `pages` (sorted, no duplicates) has storage, so that writes to
    /// them cannot run out of space. All or nothing: on error no new storage is kept.
    ///
    /// # Errors
    ///
    /// `StorageFull` (or another IO error) if some page cannot get storage; nothing is kept.
    fn reserve(&self, pages: &mut dyn Iterator<Item = u64>) -> io::Result<()>;

    /// Frees the storage of the bytes `[start, end)`: whole pages lose their storage, partial
    /// pages are zeroed over the range. Afterwards the range reads as zeros.
    ///
    /// # Errors
    ///
    /// The store's IO error.
    fn punch(&self, start: u64, end: u64) -> io::Result<()>;

    /// Appends to `out` the pages in `first..=last` that have storage, in order.
    ///
    /// # Errors
    ///
    /// The store's IO error; `out` may then hold some of the pages.
    fn stored_pages(&self, first: u64, last: u64, out: &mut Vec<u64>) -> io::Result<()>;

    /// Sets the store's length to `len` bytes: shortens it (after everything past `len` was
    /// punched) or extends it with a hole. Called by `AddressSpace::truncate` in both
    /// directions, so that a file's length follows at once.
    ///
    /// # Errors
    ///
    /// The store's IO error.
    fn truncate(&self, len: u64) -> io::Result<()>;

    /// The largest length the store can hold; longer files are refused with `InvalidInput`
    /// before anything changes. Unbounded by default.
    fn max_len(&self) -> u64 {
        u64::MAX
    }

    /// Records the length, and makes content and length durable where the store can.
    ///
    /// # Errors
    ///
    /// The store's IO error: what was written may not be durable.
    fn sync(&self, len: u64) -> io::Result<()>;
}

/// A simulated block device in memory: the default, embedded backing.
///
/// It has a fixed capacity in bytes (rounded down to whole pages), maps each page that has
/// storage to a block, and, as real filesystems may, hands a freed block to the very next
/// allocation. Reading a page looks up its block first and copies the data after the
/// simulated IO latency, as a filesystem maps a block and then issues the IO; a block freed
/// and reused in between is read with its new owner's data. The invalidate lock is what keeps
/// that from happening under a reader.
///
/// One device can hold several files: [`share`](Self::share) gives another, empty file on the
/// same device, with a page map of its own and the device's blocks and capacity in common, so
/// a block one file frees is the next one any file gets. Dropping a file frees its blocks.
///
/// ```
/// use rangelock::mm::{AddressSpace, MemBacking};
/// use std::time::Duration;
///
/// let disk = MemBacking::new(1 << 20).with_latency(Duration::from_micros(20));
/// let space: AddressSpace = AddressSpace::new(disk);
/// assert_eq!(space.write(0, b"hello").unwrap(), 5);
/// ```
pub struct MemBacking {
    device: Arc<Device>,
    latency: Duration,
    /// This file's pages: page index -> block number.
    pages: Mutex<BTreeMap<u64, u64>>,
}

/// What the files of one device share. Lock order: a file's `pages`, then `alloc`, then
/// `blocks`.
struct Device {
    /// Capacity in blocks.
    capacity: u64,
    alloc: Mutex<Allocator>,
    /// Block contents, `PAGE_SIZE` bytes each, grown as blocks are first used.
    blocks: Mutex<Vec<u8>>,
}

struct Allocator {
    /// Freed blocks, reused last-freed first.
    free: Vec<u64>,
    /// Blocks never used yet are `next..capacity`.
    next: u64,
}

impl Allocator {
    fn available(&self, capacity: u64) -> u64 {
        capacity - self.next + self.free.len() as u64
    }
}

impl MemBacking {
    /// A device of `capacity` bytes (whole pages: a partial page at the end is not usable),
    /// with no IO latency, holding one empty file.
    ///
    /// # Panics
    ///
    /// If `capacity` is less than one page ([`PAGE_SIZE`] bytes): such a device could store
    /// nothing.
    ///
    /// ```
    /// use rangelock::mm::{MemBacking, PAGE_SIZE};
    /// let dev = MemBacking::new(10 * PAGE_SIZE as u64 + 100);
    /// assert_eq!(dev.capacity_blocks(), 10);
    /// ```
    #[track_caller]
    #[must_use]
    pub fn new(capacity: u64) -> Self {
        assert!(
            capacity >= PAGE_SIZE as u64,
            "MemBacking::new({capacity}): a device needs at least one page ({PAGE_SIZE} bytes)"
        );
        MemBacking {
            device: Arc::new(Device {
                capacity: capacity / PAGE_SIZE as u64,
                alloc: Mutex::new(Allocator {
                    free: Vec::new(),
                    next: 0,
                }),
                blocks: Mutex::new(Vec::new()),
            }),
            latency: Duration::ZERO,
            pages: Mutex::new(BTreeMap::new()),
        }
    }

    /// Another file on the same device: empty, with a page map of its own, the device's
    /// capacity and free blocks in common with every other file on it, and this file's
    /// latency. A filesystem of many files over one simulated disk.
    ///
    /// ```
    /// use rangelock::mm::{AddressSpace, MemBacking, PAGE_SIZE};
    /// let disk = MemBacking::new(2 * PAGE_SIZE as u64);
    /// let a: AddressSpace = AddressSpace::new(disk.share());
    /// let b: AddressSpace = AddressSpace::new(disk.share());
    /// a.write(0, &[1; 2 * PAGE_SIZE])?; // the whole device
    /// assert_eq!(a.backing().free_blocks(), 0);
    /// assert!(b.write(0, b"x").is_err()); // full: the capacity is shared
    /// a.punch_hole(0, PAGE_SIZE as u64)?;
    /// b.write(0, b"x")?; // gets the block `a` freed
    /// drop(a); // a dropped file frees its blocks
    /// assert_eq!(b.backing().free_blocks(), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use]
    pub fn share(&self) -> Self {
        MemBacking {
            device: Arc::clone(&self.device),
            latency: self.latency,
            pages: Mutex::new(BTreeMap::new()),
        }
    }

    /// Sleeps `latency` for every request this file makes to the device (a page read or
    /// written, or a readahead run read at once), modelling storage.
    ///
    /// ```
    /// use std::time::Duration;
    /// let dev = rangelock::mm::MemBacking::new(1 << 20).with_latency(Duration::from_micros(20));
    /// # drop(dev);
    /// ```
    #[must_use]
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// The number of blocks this file uses.
    ///
    /// ```
    /// use rangelock::mm::{AddressSpace, MemBacking};
    /// let space: AddressSpace = AddressSpace::new(MemBacking::new(1 << 20));
    /// space.write(0, b"x")?;
    /// assert_eq!(space.backing().used_blocks(), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn used_blocks(&self) -> u64 {
        self.pages.lock().len() as u64
    }

    /// The number of blocks free on the device, for any of its files.
    ///
    /// ```
    /// use rangelock::mm::{AddressSpace, MemBacking, PAGE_SIZE};
    /// let space: AddressSpace = AddressSpace::new(MemBacking::new(8 * PAGE_SIZE as u64));
    /// space.write(0, b"x")?;
    /// assert_eq!(space.backing().free_blocks(), 7);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn free_blocks(&self) -> u64 {
        self.device.alloc.lock().available(self.device.capacity)
    }

    /// The capacity of the device in blocks of [`PAGE_SIZE`] bytes.
    ///
    /// ```
    /// use rangelock::mm::{MemBacking, PAGE_SIZE};
    /// assert_eq!(MemBacking::new(8 * PAGE_SIZE as u64).capacity_blocks(), 8);
    /// ```
    pub fn capacity_blocks(&self) -> u64 {
        self.device.capacity
    }

    fn io_latency(&self) {
        #[cfg(not(rangelock_loom))]
        if !self.latency.is_zero() {
            std::thread::sleep(self.latency);
        }
    }

    fn block_of(&self, index: u64) -> Option<u64> {
        self.pages.lock().get(&index).copied()
    }
}

impl Drop for MemBacking {
    /// Gives this file's blocks back to the device.
    fn drop(&mut self) {
        let pages = core::mem::take(&mut *self.pages.lock());
        if !pages.is_empty() {
            self.device.alloc.lock().free.extend(pages.into_values());
        }
    }
}

impl Backing for MemBacking {
    fn stored_len(&self) -> u64 {
        0
    }

    fn read_page(&self, index: u64, buf: &mut [u8; PAGE_SIZE]) -> io::Result<()> {
        let block = self.block_of(index);
        self.io_latency();
        match block {
            None => buf.fill(0),
            Some(b) => {
                let blocks = self.device.blocks.lock();
                let at = b as usize * PAGE_SIZE;
                buf.copy_from_slice(&blocks[at..at + PAGE_SIZE]);
            }
        }
        Ok(())
    }

    /// One request for the whole run: the latency is paid once, as a device serves a
    /// sequential request (the blocks are still looked up before the wait, page by page).
    fn read_pages(&self, first: u64, bufs: &mut [Box<[u8; PAGE_SIZE]>]) -> io::Result<()> {
        let blocks_of: Vec<Option<u64>> = (first..first + bufs.len() as u64)
            .map(|index| self.block_of(index))
            .collect();
        self.io_latency();
        let blocks = self.device.blocks.lock();
        for (buf, block) in bufs.iter_mut().zip(blocks_of) {
            match block {
                None => buf.fill(0),
                Some(b) => {
                    let at = b as usize * PAGE_SIZE;
                    buf.copy_from_slice(&blocks[at..at + PAGE_SIZE]);
                }
            }
        }
        Ok(())
    }

    fn write_page(&self, index: u64, at: usize, data: &[u8]) -> io::Result<()> {
        assert!(at + data.len() <= PAGE_SIZE, "write past the end of a page");
        let block = self.block_of(index).ok_or_else(|| {
            io::Error::other(format!("page {index} written without reserving storage"))
        })?;
        self.io_latency();
        let mut blocks = self.device.blocks.lock();
        let start = block as usize * PAGE_SIZE + at;
        blocks[start..start + data.len()].copy_from_slice(data);
        Ok(())
    }

    fn reserve(&self, pages: &mut dyn Iterator<Item = u64>) -> io::Result<()> {
        let mut map = self.pages.lock();
        let wanted: Vec<u64> = pages.filter(|p| !map.contains_key(p)).collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let capacity = self.device.capacity;
        let mut alloc = self.device.alloc.lock();
        if wanted.len() as u64 > alloc.available(capacity) {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!(
                    "device full: {} more blocks needed, {} free of {capacity}",
                    wanted.len(),
                    alloc.available(capacity),
                ),
            ));
        }
        let mut blocks = self.device.blocks.lock();
        for page in wanted {
            let block = alloc.free.pop().unwrap_or_else(|| {
                alloc.next += 1;
                alloc.next - 1
            });
            map.insert(page, block);
            let end = (block as usize + 1) * PAGE_SIZE;
            if blocks.len() < end {
                blocks.resize(end, 0);
            } else {
                // A reused block still holds its old owner's bytes: a new page starts as zeros.
                blocks[end - PAGE_SIZE..end].fill(0);
            }
        }
        Ok(())
    }

    fn punch(&self, start: u64, end: u64) -> io::Result<()> {
        if start >= end {
            return Ok(());
        }
        let page = PAGE_SIZE as u64;
        let full = super::full_pages(start, end);
        let (first_full, end_full) = (full.start, full.end);
        let mut map = self.pages.lock();
        // Partial pages at either edge are zeroed in place.
        let zero = |index: u64, from: u64, to: u64| {
            if let Some(&b) = map.get(&index) {
                let mut blocks = self.device.blocks.lock();
                let base = b as usize * PAGE_SIZE;
                blocks[base + from as usize..base + to as usize].fill(0);
            }
        };
        if first_full > end_full {
            // Both ends in one page.
            zero(start / page, start % page, end - start / page * page);
        } else {
            if start % page != 0 {
                zero(start / page, start % page, page);
            }
            if end != u64::MAX && end % page != 0 {
                zero(end / page, 0, end % page);
            }
        }
        if first_full < end_full {
            let gone: Vec<u64> = map.range(first_full..end_full).map(|(&p, _)| p).collect();
            let mut alloc = self.device.alloc.lock();
            for p in gone {
                let block = map.remove(&p).expect("listed above");
                alloc.free.push(block);
            }
        }
        Ok(())
    }

    fn stored_pages(&self, first: u64, last: u64, out: &mut Vec<u64>) -> io::Result<()> {
        out.extend(self.pages.lock().range(first..=last).map(|(&p, _)| p));
        Ok(())
    }

    fn truncate(&self, _len: u64) -> io::Result<()> {
        Ok(()) // the punch before a shrink freed every block past `len`; a hole needs none
    }

    fn sync(&self, _len: u64) -> io::Result<()> {
        Ok(())
    }
}

impl std::fmt::Debug for MemBacking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemBacking")
            .field("capacity_blocks", &self.device.capacity)
            .field("used_blocks", &self.used_blocks())
            .field("free_blocks", &self.free_blocks())
            .field("latency", &self.latency)
            .finish_non_exhaustive()
    }
}

/// A real sparse file. Pages are read and written with positioned IO; punching uses
/// `fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)` on Linux (other platforms write
/// zeros), and reserving uses `fallocate(FALLOC_FL_KEEP_SIZE)` so that a full disk is reported
/// before anything is written.
///
/// ```no_run
/// use rangelock::mm::{AddressSpace, FileBacking};
/// let space = AddressSpace::new(FileBacking::open("data.bin")?);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct FileBacking {
    file: File,
    path: PathBuf,
    stored_len: u64,
    read_only: bool,
}

impl FileBacking {
    /// Creates (or truncates) the regular file at `path`, for reading and writing.
    ///
    /// # Errors
    ///
    /// Any error from opening the file, and `InvalidInput` if `path` is not a regular file (a
    /// directory, a device, a FIFO, a socket), which is then left as it was; every error names
    /// the path. No constructor waits on a FIFO for a writer.
    ///
    /// ```
    /// use rangelock::mm::{AddressSpace, FileBacking};
    /// let path = std::env::temp_dir().join(format!("rangelock-create-{}", std::process::id()));
    /// let space = AddressSpace::new(FileBacking::create(&path)?);
    /// space.write(0, b"on disk")?;
    /// space.sync()?;
    /// assert_eq!(std::fs::read(&path)?, b"on disk");
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn create(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref();
        // Truncated only once it is known to be a regular file.
        let mut options = File::options();
        options.read(true).write(true).create(true);
        Self::from_file(path, &mut options, Open::Truncate)
    }

    /// Opens the existing regular file at `path` for reading and writing; the address space
    /// takes its length from it.
    ///
    /// # Errors
    ///
    /// Any error from opening the file or reading its length (`NotFound` if it does not
    /// exist), and `InvalidInput` if it is not a regular file (a directory, a device, a FIFO,
    /// a socket); every error names the path.
    ///
    /// ```
    /// use rangelock::mm::{AddressSpace, FileBacking};
    /// let path = std::env::temp_dir().join(format!("rangelock-open-{}", std::process::id()));
    /// std::fs::write(&path, b"twelve bytes")?;
    /// let space = AddressSpace::new(FileBacking::open(&path)?);
    /// assert_eq!(space.len(), 12);
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref();
        Self::from_file(path, File::options().read(true).write(true), Open::Keep)
    }

    /// Opens the existing regular file at `path` for reading only (it may be read-only on
    /// disk). Reads and faults work; writes, write faults, punches and truncates fail with
    /// `PermissionDenied` and change nothing.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    ///
    /// ```
    /// use rangelock::mm::{Access, AddressSpace, FileBacking};
    /// use std::io::ErrorKind;
    /// let path = std::env::temp_dir().join(format!("rangelock-ro-{}", std::process::id()));
    /// std::fs::write(&path, b"read me")?;
    /// let space = AddressSpace::new(FileBacking::open_read_only(&path)?);
    /// let mut buf = [0; 7];
    /// space.read(0, &mut buf)?;
    /// assert_eq!(&buf, b"read me");
    /// assert_eq!(space.write(0, b"x").unwrap_err().kind(), ErrorKind::PermissionDenied);
    /// assert_eq!(space.truncate(0).unwrap_err().kind(), ErrorKind::PermissionDenied);
    /// assert_eq!(std::fs::read(&path)?, b"read me");
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn open_read_only(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref();
        Self::from_file(path, File::options().read(true), Open::ReadOnly)
    }

    /// Opens `path` with `options` if it is a regular file, and refuses anything else (a
    /// directory, a device, a FIFO, a socket) with `InvalidInput` naming it, without waiting:
    /// it looks before it opens (so a device is not even opened), opens without blocking on
    /// Linux (so a FIFO swapped in meanwhile cannot make it wait for a writer), and checks
    /// again what it opened.
    fn from_file(path: &Path, options: &mut std::fs::OpenOptions, how: Open) -> io::Result<Self> {
        let with_path = |e: io::Error| annotate(path, e);
        let not_regular = |what: &str| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: not a regular file ({what})", path.display()),
            )
        };
        if let Ok(metadata) = std::fs::metadata(path) {
            if !metadata.is_file() {
                return Err(not_regular(file_kind(&metadata)));
            }
        }
        #[cfg(target_os = "linux")]
        std::os::unix::fs::OpenOptionsExt::custom_flags(options, libc::O_NONBLOCK);
        let file = match options.open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::IsADirectory => {
                return Err(not_regular("a directory"))
            }
            Err(e) => return Err(with_path(e)),
        };
        let metadata = file.metadata().map_err(with_path)?;
        if !metadata.is_file() {
            return Err(not_regular(file_kind(&metadata)));
        }
        #[cfg(target_os = "linux")]
        clear_nonblocking(&file).map_err(with_path)?;
        let stored_len = if how == Open::Truncate {
            file.set_len(0).map_err(with_path)?;
            0
        } else {
            metadata.len()
        };
        Ok(FileBacking {
            file,
            path: path.to_owned(),
            stored_len,
            read_only: how == Open::ReadOnly,
        })
    }

    /// The path the file was opened at.
    ///
    /// ```
    /// # use rangelock::mm::FileBacking;
    /// let path = std::env::temp_dir().join(format!("rangelock-path-{}", std::process::id()));
    /// assert_eq!(FileBacking::create(&path)?.path(), path);
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `Err(PermissionDenied)` on a read-only file, before anything changes.
    fn writable(&self) -> io::Result<()> {
        if self.read_only {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{}: opened read-only", self.path.display()),
            ));
        }
        Ok(())
    }

    /// `op`'s error, naming the file.
    fn named<T>(&self, op: io::Result<T>) -> io::Result<T> {
        op.map_err(|e| annotate(&self.path, e))
    }
}

/// How a [`FileBacking`] constructor treats the file it opened.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    /// Read and write, keeping the content.
    Keep,
    /// Read and write, truncated to 0 (once known to be a regular file).
    Truncate,
    /// Read only.
    ReadOnly,
}

/// What a file that is not a regular file is, for an error message.
fn file_kind(metadata: &std::fs::Metadata) -> &'static str {
    let kind = metadata.file_type();
    if kind.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_char_device() || kind.is_block_device() {
            return "a device";
        }
        if kind.is_fifo() {
            return "a FIFO";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    "not a file"
}

/// Clears `O_NONBLOCK`, with which the file was opened so that opening a FIFO could not wait:
/// IO on the regular file it turned out to be blocks as usual.
#[cfg(target_os = "linux")]
fn clear_nonblocking(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: `F_GETFL` only reads the flags of a descriptor that is open for the lifetime of
    // `file`.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `F_SETFL` only sets that open descriptor's status flags.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `e` with `path` in front of its message, keeping its kind.
#[allow(clippy::needless_pass_by_value)] // used as `map_err(|e| annotate(path, e))`
fn annotate(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(unix)]
fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

#[cfg(windows)]
fn write_all_at(file: &File, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        let n = std::os::windows::fs::FileExt::seek_write(file, buf, offset)?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        buf = &buf[n..];
        offset += n as u64;
    }
    Ok(())
}

/// `fallocate(2)` on the byte range, retried on `EINTR`.
#[cfg(target_os = "linux")]
fn fallocate(file: &File, mode: libc::c_int, start: u64, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let (Ok(start), Ok(len)) = (libc::off_t::try_from(start), libc::off_t::try_from(len)) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "range beyond off_t",
        ));
    };
    loop {
        // SAFETY: `fallocate` only reads its integer arguments; the descriptor is open for the
        // lifetime of `file`.
        let r = unsafe { libc::fallocate(file.as_raw_fd(), mode, start, len) };
        if r == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// The store operations, with the OS's errors as they come; `Backing` names the file.
impl FileBacking {
    fn raw_read_page(&self, index: u64, buf: &mut [u8; PAGE_SIZE]) -> io::Result<()> {
        let offset = index * PAGE_SIZE as u64;
        let mut done = 0;
        while done < PAGE_SIZE {
            match read_at(&self.file, &mut buf[done..], offset + done as u64) {
                Ok(0) => break, // past the file's end: zeros
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        buf[done..].fill(0);
        Ok(())
    }

    fn raw_write_page(&self, index: u64, at: usize, data: &[u8]) -> io::Result<()> {
        assert!(at + data.len() <= PAGE_SIZE, "write past the end of a page");
        write_all_at(&self.file, data, index * PAGE_SIZE as u64 + at as u64)
    }

    fn raw_reserve(&self, pages: &mut dyn Iterator<Item = u64>) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        {
            let pages: Vec<u64> = pages.collect();
            let (Some(&first), Some(&last)) = (pages.first(), pages.last()) else {
                return Ok(());
            };
            let mut stored = Vec::new();
            self.raw_stored_pages(first, last, &mut stored)?;
            let holes: Vec<u64> = pages
                .into_iter()
                .filter(|p| stored.binary_search(p).is_err())
                .collect();
            let page = PAGE_SIZE as u64;
            for (i, &p) in holes.iter().enumerate() {
                match fallocate(&self.file, libc::FALLOC_FL_KEEP_SIZE, p * page, page) {
                    Ok(()) => {}
                    // A filesystem without fallocate cannot reserve: writes will allocate.
                    Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => return Ok(()),
                    Err(e) => {
                        // All or nothing: give back what this call reserved.
                        for &q in &holes[..i] {
                            let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
                            let _ = fallocate(&self.file, mode, q * page, page);
                        }
                        return Err(e);
                    }
                }
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = pages;
        Ok(())
    }

    fn raw_punch(&self, start: u64, end: u64) -> io::Result<()> {
        // Nothing is stored past the file's end.
        let end = end.min(self.file.metadata()?.len());
        if start >= end {
            return Ok(());
        }
        #[cfg(target_os = "linux")]
        {
            let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
            match fallocate(&self.file, mode, start, end - start) {
                Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {}
                other => return other,
            }
        }
        // No hole punching here: write zeros instead.
        let zeros = [0u8; PAGE_SIZE];
        let mut at = start;
        while at < end {
            let n = (end - at).min(PAGE_SIZE as u64) as usize;
            write_all_at(&self.file, &zeros[..n], at)?;
            at += n as u64;
        }
        Ok(())
    }

    fn raw_stored_pages(&self, first: u64, last: u64, out: &mut Vec<u64>) -> io::Result<()> {
        let page = PAGE_SIZE as u64;
        let file_end = self.file.metadata()?.len().div_ceil(page);
        let last = last.min(file_end.saturating_sub(1));
        if first > last {
            return Ok(());
        }
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let fd = self.file.as_raw_fd();
            let mut at = first * page;
            let end = (last + 1) * page;
            while at < end {
                let at_off = libc::off_t::try_from(at).map_err(|_| {
                    io::Error::new(io::ErrorKind::InvalidInput, "offset beyond off_t")
                })?;
                // SAFETY: `lseek` only reads its integer arguments on an open descriptor.
                let data = unsafe { libc::lseek(fd, at_off, libc::SEEK_DATA) };
                if data < 0 {
                    let err = io::Error::last_os_error();
                    if err.raw_os_error() == Some(libc::ENXIO) {
                        break; // no data after `at`
                    }
                    return Err(err);
                }
                // SAFETY: as above.
                let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
                if hole < 0 {
                    return Err(io::Error::last_os_error());
                }
                // Both are non-negative: checked above.
                let (data, hole) = (data.unsigned_abs(), hole.unsigned_abs().min(end));
                if hole <= at {
                    // Not a regular file's answer (no progress): refuse rather than spin.
                    return Err(io::Error::other("SEEK_DATA/SEEK_HOLE made no progress"));
                }
                out.extend((data / page).max(first)..hole.div_ceil(page));
                at = hole.div_ceil(page) * page;
            }
            Ok(())
        }
        #[cfg(not(target_os = "linux"))]
        {
            out.extend(first..=last);
            Ok(())
        }
    }

    fn raw_truncate(&self, len: u64) -> io::Result<()> {
        if self.file.metadata()?.len() != len {
            self.file.set_len(len)?;
        }
        Ok(())
    }

    fn raw_sync(&self, len: u64) -> io::Result<()> {
        if self.file.metadata()?.len() != len {
            self.file.set_len(len)?;
        }
        self.file.sync_all()
    }
}

impl Backing for FileBacking {
    fn stored_len(&self) -> u64 {
        self.stored_len
    }

    fn read_page(&self, index: u64, buf: &mut [u8; PAGE_SIZE]) -> io::Result<()> {
        self.named(self.raw_read_page(index, buf))
    }

    fn read_pages(&self, first: u64, bufs: &mut [Box<[u8; PAGE_SIZE]>]) -> io::Result<()> {
        // One positioned read for the whole run.
        let mut run = vec![0u8; bufs.len() * PAGE_SIZE];
        let offset = first * PAGE_SIZE as u64;
        let mut done = 0;
        while done < run.len() {
            match read_at(&self.file, &mut run[done..], offset + done as u64) {
                Ok(0) => break, // past the file's end: zeros
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(annotate(&self.path, e)),
            }
        }
        for (buf, chunk) in bufs.iter_mut().zip(run.chunks_exact(PAGE_SIZE)) {
            buf.copy_from_slice(chunk);
        }
        Ok(())
    }

    fn write_page(&self, index: u64, at: usize, data: &[u8]) -> io::Result<()> {
        self.writable()?;
        self.named(self.raw_write_page(index, at, data))
    }

    fn reserve(&self, pages: &mut dyn Iterator<Item = u64>) -> io::Result<()> {
        self.writable()?;
        self.named(self.raw_reserve(pages))
    }

    fn punch(&self, start: u64, end: u64) -> io::Result<()> {
        self.writable()?;
        self.named(self.raw_punch(start, end))
    }

    fn stored_pages(&self, first: u64, last: u64, out: &mut Vec<u64>) -> io::Result<()> {
        self.named(self.raw_stored_pages(first, last, out))
    }

    fn truncate(&self, len: u64) -> io::Result<()> {
        self.writable()?;
        self.named(self.raw_truncate(len))
    }

    fn sync(&self, len: u64) -> io::Result<()> {
        if self.read_only {
            // Nothing can have changed; only a length change would need writing.
            if self.named(self.file.metadata())?.len() != len {
                self.writable()?;
            }
            return Ok(());
        }
        self.named(self.raw_sync(len))
    }

    fn max_len(&self) -> u64 {
        // File offsets are signed (`off_t`, and `i64` in std's file APIs).
        i64::MAX as u64
    }
}

#[cfg(test)]
mod tests {
    use super::{Backing, MemBacking, PAGE_SIZE};

    fn page_of(dev: &MemBacking, index: u64) -> [u8; PAGE_SIZE] {
        let mut buf = [0; PAGE_SIZE];
        dev.read_page(index, &mut buf).unwrap();
        buf
    }

    #[test]
    fn shared_files_keep_their_own_pages() {
        let a = MemBacking::new(4 * PAGE_SIZE as u64);
        let b = a.share();
        a.reserve(&mut [0u64].into_iter()).unwrap();
        b.reserve(&mut [0u64].into_iter()).unwrap();
        a.write_page(0, 0, b"a's").unwrap();
        b.write_page(0, 0, b"b's").unwrap();
        assert_eq!(&page_of(&a, 0)[..3], b"a's");
        assert_eq!(&page_of(&b, 0)[..3], b"b's");
        assert_eq!((a.used_blocks(), b.used_blocks()), (1, 1));
        assert_eq!((a.free_blocks(), b.free_blocks()), (2, 2));
    }

    #[test]
    fn shared_files_share_capacity_and_reuse_freed_blocks_at_once() {
        let page = PAGE_SIZE as u64;
        let a = MemBacking::new(2 * page);
        let b = a.share();
        a.reserve(&mut [0u64, 1].into_iter()).unwrap();
        a.write_page(1, 0, b"old owner").unwrap();
        let full = b.reserve(&mut [7u64].into_iter()).unwrap_err();
        assert_eq!(full.kind(), std::io::ErrorKind::StorageFull);
        assert_eq!(b.used_blocks(), 0, "a failed reserve keeps nothing");
        a.punch(page, 2 * page).unwrap();
        b.reserve(&mut [7u64].into_iter()).unwrap();
        // The block `a` freed is `b`'s now, and starts as zeros, not as its old owner's data.
        assert_eq!(page_of(&b, 7), [0; PAGE_SIZE]);
        b.write_page(7, 0, b"new owner").unwrap();
        assert_eq!(page_of(&a, 1), [0; PAGE_SIZE]);
        assert_eq!(a.free_blocks(), 0);
    }

    #[test]
    fn a_dropped_file_frees_its_blocks_for_the_others() {
        let a = MemBacking::new(3 * PAGE_SIZE as u64);
        let b = a.share();
        a.reserve(&mut [0u64, 1, 2].into_iter()).unwrap();
        assert_eq!(b.free_blocks(), 0);
        drop(a);
        assert_eq!(b.free_blocks(), 3);
        b.reserve(&mut [0u64, 1, 2].into_iter()).unwrap();
        assert_eq!(b.used_blocks(), 3);
    }
}
