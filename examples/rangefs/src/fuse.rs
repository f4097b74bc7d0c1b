//! The FUSE plumbing: each request is decoded, handed to one call on the namespace or a file,
//! and answered; errors become errno values in `errno.rs`.
//!
//! # Kernel caching
//!
//! - Direct IO (the default): files open with `FOPEN_DIRECT_IO`, so every read and write
//!   reaches the daemon and the address space's locks; the daemon's cache (the address space)
//!   is the only one, and every open file sees every write at once. With
//!   `FOPEN_PARALLEL_DIRECT_WRITES` the kernel sends writes to one file together rather than
//!   one at a time (it still serialises writes that extend the file). Shared `mmap` works
//!   where the kernel allows it for direct IO (`FUSE_DIRECT_IO_ALLOW_MMAP`, Linux 6.6): the
//!   mapping's pages are the kernel's page cache, which the kernel writes back through the
//!   daemon and invalidates around direct writes. On older kernels a shared writable mapping
//!   fails with `ENODEV`.
//! - `--kernel-cache`: no direct IO, `FOPEN_KEEP_CACHE`. Reads are served from the kernel's
//!   page cache and reach the daemon only on a miss (with the kernel's readahead); writes go
//!   through the page cache to the daemon at once (no writeback cache), so the store holds
//!   every completed write. The kernel's cache stays coherent because every change comes
//!   through this one mount. `mmap` works as on any file system.

use std::ffi::OsStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::{
    CopyFileRangeFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, InitFlags, KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request,
    TimeOrNow, WriteFlags,
};

use crate::errno;
use crate::inode::{Attr, Kind};
use crate::namespace::{Changes, Namespace, NAME_MAX};
use crate::store::BLOCK;

/// How long the kernel may keep an entry or attributes. Every change comes through this
/// mount, which keeps the kernel's copies up to date, so a cached answer is never stale.
const TTL: Duration = Duration::from_secs(1);

/// Where file data is cached: see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caching {
    /// Direct IO: the address space is the only cache.
    Direct,
    /// The kernel's page cache in front of the address space.
    Kernel,
}

/// The file system as FUSE sees it.
pub struct RangeFs {
    ns: Arc<Namespace>,
    caching: Caching,
}

impl RangeFs {
    pub fn new(ns: Arc<Namespace>, caching: Caching) -> RangeFs {
        RangeFs { ns, caching }
    }

    fn open_flags(&self) -> FopenFlags {
        match self.caching {
            Caching::Direct => {
                FopenFlags::FOPEN_DIRECT_IO | FopenFlags::FOPEN_PARALLEL_DIRECT_WRITES
            }
            Caching::Kernel => FopenFlags::FOPEN_KEEP_CACHE,
        }
    }
}

fn file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.size.div_ceil(512),
        atime: a.atime,
        mtime: a.mtime,
        ctime: a.ctime,
        crtime: a.ctime,
        kind: match a.kind {
            Kind::File => FileType::RegularFile,
            Kind::Dir => FileType::Directory,
        },
        perm: (a.perm & 0o7777) as u16,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: 0,
        blksize: BLOCK as u32,
        flags: 0,
    }
}

fn time(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    }
}

/// Permission bits of a new inode: `mode` without the file type, less `umask`.
fn perm(mode: u32, umask: u32) -> u32 {
    mode & !umask & 0o7777
}

impl Filesystem for RangeFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        if self.caching == Caching::Direct
            && config
                .add_capabilities(InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP)
                .is_err()
        {
            eprintln!(
                "rangefs: this kernel does not allow mmap with direct IO: shared writable \
                 mappings fail with ENODEV (use --kernel-cache for them)"
            );
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.ns.lookup(parent.0, name) {
            Ok(attr) => reply.entry(&TTL, &file_attr(&attr), Generation(0)),
            Err(e) => reply.error(errno::of(&e)),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.ns.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.ns.attr(ino.0) {
            Ok(attr) => reply.attr(&TTL, &file_attr(&attr)),
            Err(e) => reply.error(errno::of(&e)),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let changes = Changes {
            perm: mode.map(|m| m & 0o7777),
            uid,
            gid,
            size,
            atime: atime.map(time),
            mtime: mtime.map(time),
        };
        match self.ns.set_attr(ino.0, &changes) {
            Ok(attr) => reply.attr(&TTL, &file_attr(&attr)),
            Err(e) => reply.error(errno::of(&e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if mode & libc::S_IFMT != libc::S_IFREG {
            reply.error(Errno::EPERM); // regular files and directories only
            return;
        }
        match self
            .ns
            .create(parent.0, name, perm(mode, umask), (req.uid(), req.gid()))
        {
            Ok((attr, _)) => reply.entry(&TTL, &file_attr(&attr), Generation(0)),
            Err(e) => reply.error(errno::of(&e)),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        match self
            .ns
            .mkdir(parent.0, name, perm(mode, umask), (req.uid(), req.gid()))
        {
            Ok(attr) => reply.entry(&TTL, &file_attr(&attr), Generation(0)),
            Err(e) => reply.error(errno::of(&e)),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.ns.unlink(parent.0, name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno::of(&e)),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.ns.rmdir(parent.0, name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno::of(&e)),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if !(flags - RenameFlags::RENAME_NOREPLACE).is_empty() {
            reply.error(Errno::EINVAL); // no exchange or whiteout
            return;
        }
        let no_replace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        match self
            .ns
            .rename(parent.0, name, newparent.0, newname, no_replace)
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno::of(&e)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.ns.file(ino.0) {
            Ok(_) => reply.opened(FileHandle(0), self.open_flags()),
            Err(e) => reply.error(errno::of(&e)),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        match self
            .ns
            .create(parent.0, name, perm(mode, umask), (req.uid(), req.gid()))
        {
            Ok((attr, _)) => reply.created(
                &TTL,
                &file_attr(&attr),
                Generation(0),
                FileHandle(0),
                self.open_flags(),
            ),
            Err(e) => reply.error(errno::of(&e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.ns.file(ino.0).and_then(|f| f.read(offset, size)) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(errno::of(&e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.ns.file(ino.0).and_then(|f| f.write(offset, data)) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(errno::of(&e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok(); // writes go through to the store: nothing is held back to report at close
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.ns.file(ino.0).and_then(|f| f.sync()) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno::of(&e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        match self.ns.read_dir(ino.0, offset) {
            Ok(entries) => {
                for (next, entry) in (offset + 1..).zip(entries) {
                    let kind = match entry.kind {
                        Kind::File => FileType::RegularFile,
                        Kind::Dir => FileType::Directory,
                    };
                    if reply.add(INodeNo(entry.ino), next, kind, &entry.name) {
                        break; // the buffer is full; the kernel asks again from `next`
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(errno::of(&e)),
        }
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok(); // the tree changes in the store before each reply
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match self.ns.usage() {
            Ok((usage, inodes)) => {
                let free_inodes = u64::from(u32::MAX);
                reply.statfs(
                    usage.blocks,
                    usage.free,
                    usage.available,
                    inodes + free_inodes,
                    free_inodes,
                    BLOCK as u32,
                    NAME_MAX as u32,
                    BLOCK as u32,
                );
            }
            Err(e) => reply.error(errno::of(&e)),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        match self
            .ns
            .file(ino.0)
            .and_then(|f| f.fallocate(offset, length, mode))
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno::of(&e)),
        }
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        _fh_in: FileHandle,
        _offset_in: u64,
        _ino_out: INodeNo,
        _fh_out: FileHandle,
        _offset_out: u64,
        _len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        // Not offered: the kernel falls back to copying through read and write.
        reply.error(Errno::ENOSYS);
    }
}
