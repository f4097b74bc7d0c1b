//! The file operations: what a read, write, truncate, fallocate or fsync of a regular file does
//! to its address space.
//!
//! Every byte operation is the address space's own, under its invalidate lock: a write or a
//! punch locks only its pages, a read fills under a shared lock, a truncate locks from the new
//! end. rangefs adds one compound operation, growing a file to at least `n` bytes (fallocate
//! without `KEEP_SIZE`), which reads the length and then sets it. It must not shrink a file
//! that a write has just extended, so [`File`] keeps a size lock beside the invalidate lock,
//! as Linux keeps `i_rwsem` beside `invalidate_lock`: writes take it shared (they never wait
//! for each other, as XFS's direct writes share `i_rwsem`), changes of the length exclusive.
//! Reads and punches, which keep the length, do not take it.
//!
//! Errors are `io::Error`s; the FUSE layer turns them into errno values in one place
//! (`errno.rs`). Invalid requests are refused before anything changes.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::RwLock;

use crate::space::Space;

/// The largest file length: file offsets are signed (`off_t`), as the kernel's limit for FUSE.
pub const MAX_LEN: u64 = i64::MAX as u64;

/// The `fallocate(2)` modes rangefs supports.
const KEEP_SIZE: i32 = libc::FALLOC_FL_KEEP_SIZE;
const PUNCH_HOLE: i32 = libc::FALLOC_FL_PUNCH_HOLE;
const ZERO_RANGE: i32 = libc::FALLOC_FL_ZERO_RANGE;

/// A regular file: its data, the lock that orders changes of its length, and the time its data
/// last changed.
pub struct File {
    space: Box<dyn Space>,
    /// Shared by writes, exclusive for a change of the length (see the module docs).
    size: RwLock<()>,
    /// Nanoseconds since the epoch of the last change to the data or the length.
    modified: AtomicU64,
}

impl File {
    /// A file over `space`, last modified at `modified`.
    pub fn new(space: Box<dyn Space>, modified: SystemTime) -> File {
        File {
            space,
            size: RwLock::new(()),
            modified: AtomicU64::new(nanos(modified)),
        }
    }

    /// The length in bytes.
    pub fn len(&self) -> u64 {
        self.space.len()
    }

    /// When the data or length last changed.
    pub fn modified(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.modified.load(Ordering::Relaxed))
    }

    /// Sets the modification time (`utimes`).
    pub fn set_modified(&self, t: SystemTime) {
        self.modified.store(nanos(t), Ordering::Relaxed);
    }

    /// Up to `size` bytes at `offset`; fewer at the end of the file, none past it.
    pub fn read(&self, offset: u64, size: u32) -> io::Result<Vec<u8>> {
        let mut buf = vec![0; size as usize];
        let n = self.space.read(offset, &mut buf)?;
        buf.truncate(n);
        Ok(buf)
    }

    /// Writes all of `data` at `offset`: all or nothing (`ENOSPC` writes nothing).
    pub fn write(&self, offset: u64, data: &[u8]) -> io::Result<u32> {
        check_end(offset, data.len() as u64)?;
        let _size = self.size.read();
        let n = self.space.write(offset, data)?;
        self.touch();
        Ok(n as u32)
    }

    /// Sets the length (`truncate(2)`, `setattr` with a size).
    pub fn set_len(&self, len: u64) -> io::Result<()> {
        check_end(len, 0)?;
        let _size = self.size.write();
        self.space.truncate(len)?;
        self.touch();
        Ok(())
    }

    /// `fallocate(2)` of `[offset, offset + len)` with `mode`:
    /// - `0` and `KEEP_SIZE`: rangefs allocates storage when data is written, so these only
    ///   grow the file (without `KEEP_SIZE`) to cover the range; a later write can still
    ///   find the device full.
    /// - `PUNCH_HOLE | KEEP_SIZE`: [`Space::punch_hole`]; the length stays.
    /// - `ZERO_RANGE`, with or without `KEEP_SIZE`: the range reads as zeros afterwards
    ///   (punched), and without `KEEP_SIZE` the file grows to cover it.
    /// - anything else: `EOPNOTSUPP`, and nothing changes.
    pub fn fallocate(&self, offset: u64, len: u64, mode: i32) -> io::Result<()> {
        if len == 0 {
            return Err(errno(libc::EINVAL));
        }
        let end = check_end(offset, len)?;
        let keep_size = mode & KEEP_SIZE != 0;
        match mode & !KEEP_SIZE {
            0 if keep_size => return Ok(()),
            0 => self.grow(end)?,
            // A punched range reads as zeros: that is a zeroed range too.
            PUNCH_HOLE | ZERO_RANGE if keep_size => self.space.punch_hole(offset, len)?,
            ZERO_RANGE => {
                // Zeroing and growing are one change of the file to a concurrent write.
                let _size = self.size.write();
                self.space.punch_hole(offset, len)?;
                if self.space.len() < end {
                    self.space.truncate(end)?;
                }
            }
            _ => return Err(errno(libc::EOPNOTSUPP)),
        }
        self.touch();
        Ok(())
    }

    /// Makes the data and length durable: writes back dirty pages and syncs the store.
    pub fn sync(&self) -> io::Result<()> {
        self.space.sync()
    }

    /// Grows the file to at least `len` bytes; never shrinks it.
    fn grow(&self, len: u64) -> io::Result<()> {
        let _size = self.size.write();
        if self.space.len() < len {
            self.space.truncate(len)?;
        }
        Ok(())
    }

    fn touch(&self) {
        self.modified
            .store(nanos(SystemTime::now()), Ordering::Relaxed);
    }
}

/// `offset + len`, or the error for a range no file can hold: `EINVAL` if it overflows,
/// `EFBIG` past [`MAX_LEN`].
fn check_end(offset: u64, len: u64) -> io::Result<u64> {
    let end = offset.checked_add(len).ok_or_else(|| errno(libc::EINVAL))?;
    if end > MAX_LEN {
        return Err(errno(libc::EFBIG));
    }
    Ok(end)
}

fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

/// Nanoseconds since the epoch, 0 for earlier times.
pub fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos().try_into().unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::{File, MAX_LEN};
    use crate::space::Lock;
    use rangelock::mm::{MemBacking, PAGE_SIZE};
    use std::time::SystemTime;

    fn file(capacity_pages: u64) -> File {
        let device = MemBacking::new(capacity_pages * PAGE_SIZE as u64);
        File::new(Lock::Range.space(device, 16), SystemTime::now())
    }

    fn code(e: &std::io::Error) -> i32 {
        e.raw_os_error().expect("an errno")
    }

    #[test]
    fn fallocate_modes_do_what_fallocate_2_says() {
        let f = file(8);
        f.write(0, &[7; 3 * PAGE_SIZE]).unwrap();
        let page = PAGE_SIZE as u64;
        // PUNCH_HOLE | KEEP_SIZE: zeros, length kept.
        f.fallocate(
            page,
            page,
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
        )
        .unwrap();
        assert_eq!(f.read(page, 4).unwrap(), [0; 4]);
        assert_eq!(f.len(), 3 * page);
        // ZERO_RANGE | KEEP_SIZE past the end: zeros inside, length kept.
        f.fallocate(
            0,
            10 * page,
            libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE,
        )
        .unwrap();
        assert_eq!(f.read(0, 4).unwrap(), [0; 4]);
        assert_eq!(f.len(), 3 * page);
        // ZERO_RANGE grows; mode 0 grows; KEEP_SIZE alone changes nothing.
        f.write(0, b"data").unwrap();
        f.fallocate(2, 5 * page, libc::FALLOC_FL_ZERO_RANGE)
            .unwrap();
        assert_eq!(f.read(0, 4).unwrap(), b"da\0\0");
        assert_eq!(f.len(), 5 * page + 2);
        f.fallocate(0, 7 * page, 0).unwrap();
        assert_eq!(f.len(), 7 * page);
        f.fallocate(0, 1, 0).unwrap();
        assert_eq!(f.len(), 7 * page, "mode 0 never shrinks");
        f.fallocate(0, 9 * page, libc::FALLOC_FL_KEEP_SIZE).unwrap();
        assert_eq!(f.len(), 7 * page);
    }

    #[test]
    fn refused_requests_change_nothing() {
        let f = file(2);
        f.write(0, b"keep").unwrap();
        let unsupported = [
            libc::FALLOC_FL_PUNCH_HOLE, // without KEEP_SIZE
            libc::FALLOC_FL_COLLAPSE_RANGE,
            libc::FALLOC_FL_INSERT_RANGE,
            libc::FALLOC_FL_UNSHARE_RANGE,
        ];
        for mode in unsupported {
            let e = f.fallocate(0, 4, mode).unwrap_err();
            assert_eq!(code(&e), libc::EOPNOTSUPP, "mode {mode:#x}");
        }
        assert_eq!(code(&f.fallocate(0, 0, 0).unwrap_err()), libc::EINVAL);
        assert_eq!(
            code(&f.fallocate(u64::MAX, 2, 0).unwrap_err()),
            libc::EINVAL
        );
        assert_eq!(code(&f.fallocate(MAX_LEN, 1, 0).unwrap_err()), libc::EFBIG);
        assert_eq!(code(&f.write(MAX_LEN, b"x").unwrap_err()), libc::EFBIG);
        assert_eq!(code(&f.set_len(MAX_LEN + 1).unwrap_err()), libc::EFBIG);
        // A write the device cannot hold writes nothing.
        let full = f.write(0, &[1; 3 * PAGE_SIZE]).unwrap_err();
        assert_eq!(full.kind(), std::io::ErrorKind::StorageFull);
        assert_eq!(f.read(0, 8).unwrap(), b"keep");
        assert_eq!(f.len(), 4);
    }
}
