//! What an inode holds: a regular file's data or a directory's entries, its attributes, where
//! it is linked, and how many references the kernel holds to it.
//!
//! Inodes live in the namespace's table and change under its lock, except a file's data,
//! which the file operations change through an `Arc<File>` without it.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::SystemTime;

use crate::file::File;

/// An inode number. Numbers are never reused while mounted.
pub type Ino = u64;

/// The root directory's inode number (FUSE's).
pub const ROOT: Ino = 1;

/// A regular file or a directory: the only kinds rangefs has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
}

/// An inode in the namespace's table.
pub struct Inode {
    pub ino: Ino,
    pub data: Data,
    pub meta: Meta,
    /// `(parent, name)` while linked into the tree; `None` for the root and once unlinked.
    pub link: Option<(Ino, OsString)>,
    /// References the kernel holds (each reply with an entry adds one; `forget` drops them).
    /// An unlinked inode leaves the table when they reach zero.
    pub lookups: AtomicU64,
}

/// A file's data or a directory's entries.
pub enum Data {
    File(Arc<File>),
    Dir(Dir),
}

/// A directory's entries, in name order.
#[derive(Default)]
pub struct Dir {
    pub entries: BTreeMap<OsString, Ino>,
    /// How many entries are directories (for the link count).
    pub subdirs: u32,
}

/// Attributes kept as set (a file's data times are its [`File`]'s).
pub struct Meta {
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    pub atime: SystemTime,
    /// A directory's last change of entries (a file's is its [`File`]'s).
    pub mtime: SystemTime,
    pub ctime: SystemTime,
}

/// What `stat` shows of an inode.
#[derive(Clone, Copy, Debug)]
pub struct Attr {
    pub ino: Ino,
    pub kind: Kind,
    pub size: u64,
    pub perm: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub atime: SystemTime,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
}

impl Inode {
    /// A new inode, not yet referenced by the kernel.
    pub fn new(ino: Ino, data: Data, meta: Meta, link: Option<(Ino, OsString)>) -> Inode {
        Inode {
            ino,
            data,
            meta,
            link,
            lookups: AtomicU64::new(0),
        }
    }

    pub fn kind(&self) -> Kind {
        match self.data {
            Data::File(_) => Kind::File,
            Data::Dir(_) => Kind::Dir,
        }
    }

    /// The attributes now.
    pub fn attr(&self) -> Attr {
        let (size, nlink, mtime) = match &self.data {
            Data::File(file) => (file.len(), u32::from(self.link.is_some()), file.modified()),
            Data::Dir(dir) => (0, 2 + dir.subdirs, self.meta.mtime),
        };
        Attr {
            ino: self.ino,
            kind: self.kind(),
            size,
            perm: self.meta.perm,
            nlink,
            uid: self.meta.uid,
            gid: self.meta.gid,
            atime: self.meta.atime,
            mtime,
            ctime: self.meta.ctime.max(mtime),
        }
    }
}

impl Meta {
    /// Attributes of a new inode, all times now.
    pub fn new(perm: u32, uid: u32, gid: u32) -> Meta {
        let now = SystemTime::now();
        Meta {
            perm,
            uid,
            gid,
            atime: now,
            mtime: now,
            ctime: now,
        }
    }
}
