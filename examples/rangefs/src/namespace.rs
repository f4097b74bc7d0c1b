//! The namespace: the inode table and the directory tree, kept in step with the store.
//!
//! One reader/writer lock covers the table. Lookups, attributes and finding a file's data take
//! it shared; changes to the tree (create, mkdir, unlink, rmdir, rename) and to attributes take
//! it exclusive and hold it across the store's change, so that the store's tree changes in the
//! same order. File data is not under this lock: [`Namespace::file`] hands out the file's
//! `Arc<File>`, and reads and writes go to its address space directly.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::RwLock;

use crate::file::File;
use crate::inode::{Attr, Data, Dir, Ino, Inode, Kind, Meta, ROOT};
use crate::store::{Store, Usage};

/// The longest name in a directory, in bytes.
pub const NAME_MAX: usize = 255;

/// A change of attributes (`setattr`); `None` keeps a field.
#[derive(Default)]
pub struct Changes {
    pub perm: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<SystemTime>,
    pub mtime: Option<SystemTime>,
}

/// A directory entry as `readdir` lists it.
pub struct Entry {
    pub ino: Ino,
    pub kind: Kind,
    pub name: OsString,
}

/// The file system's tree of directories and files over a store.
pub struct Namespace {
    table: RwLock<Table>,
    store: Store,
}

struct Table {
    inodes: HashMap<Ino, Inode>,
    next: Ino,
}

fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

impl Namespace {
    /// The namespace over `store`, with every file and directory the store holds.
    ///
    /// # Errors
    ///
    /// A message naming what in the store cannot be read.
    pub fn new(store: Store) -> Result<Namespace, String> {
        let root_meta = match store.root() {
            Some(root) => {
                use std::os::unix::fs::MetadataExt;
                let m = std::fs::metadata(root)
                    .map_err(|e| format!("store {}: {e}", root.display()))?;
                Meta::new(m.mode() & 0o7777, m.uid(), m.gid())
            }
            None => Meta::new(
                0o755,
                nix::unistd::getuid().as_raw(),
                nix::unistd::getgid().as_raw(),
            ),
        };
        let mut table = Table {
            inodes: HashMap::new(),
            next: ROOT + 1,
        };
        let root = Inode::new(ROOT, Data::Dir(Dir::default()), root_meta, None);
        table.inodes.insert(ROOT, root);
        let mut by_path: HashMap<PathBuf, Ino> = HashMap::from([(PathBuf::new(), ROOT)]);
        for found in store.scan()? {
            let parent = by_path[found.path.parent().unwrap_or(Path::new(""))];
            let name = found
                .path
                .file_name()
                .expect("a store entry has a name")
                .to_owned();
            let data = match found.file {
                Some(file) => Data::File(Arc::new(file)),
                None => Data::Dir(Dir::default()),
            };
            let mut meta = Meta::new(found.perm, found.uid, found.gid);
            (meta.atime, meta.mtime) = (found.atime, found.mtime);
            let ino = table.add(data, meta, parent, name);
            by_path.insert(found.path, ino);
        }
        Ok(Namespace {
            table: RwLock::new(table),
            store,
        })
    }

    /// The attributes of `name` in `parent`, counting one more kernel reference to it.
    pub fn lookup(&self, parent: Ino, name: &OsStr) -> io::Result<Attr> {
        let table = self.table.read();
        let inode = table.get(table.child(parent, name)?)?;
        inode.lookups.fetch_add(1, Ordering::Relaxed);
        Ok(inode.attr())
    }

    /// Drops `n` kernel references to `ino`; an unlinked inode without references leaves.
    pub fn forget(&self, ino: Ino, n: u64) {
        let unused = {
            let table = self.table.read();
            let Ok(inode) = table.get(ino) else { return };
            let before = inode
                .lookups
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| {
                    Some(l.saturating_sub(n))
                })
                .unwrap_or(0);
            before <= n && inode.link.is_none()
        };
        if unused {
            self.table.write().drop_if_unused(ino);
        }
    }

    /// The attributes of `ino`.
    pub fn attr(&self, ino: Ino) -> io::Result<Attr> {
        Ok(self.table.read().get(ino)?.attr())
    }

    /// The data of the regular file `ino`.
    pub fn file(&self, ino: Ino) -> io::Result<Arc<File>> {
        match &self.table.read().get(ino)?.data {
            Data::File(file) => Ok(Arc::clone(file)),
            Data::Dir(_) => Err(errno(libc::EISDIR)),
        }
    }

    /// Changes the attributes of `ino`; a size truncates (or extends) a regular file first,
    /// and if that fails nothing else changes.
    pub fn set_attr(&self, ino: Ino, changes: &Changes) -> io::Result<Attr> {
        if let Some(size) = changes.size {
            // The truncate runs on the file's space, outside the namespace lock.
            self.file(ino)?.set_len(size)?;
        }
        let mut table = self.table.write();
        let linked = table.get(ino)?.link.is_some() || ino == ROOT;
        if linked {
            let path = table.path(ino)?;
            self.store.set_attrs(
                &path,
                changes.perm,
                (changes.uid, changes.gid),
                (changes.atime, changes.mtime),
            )?;
        }
        let inode = table.get_mut(ino)?;
        let meta = &mut inode.meta;
        if let Some(perm) = changes.perm {
            meta.perm = perm & 0o7777;
        }
        meta.uid = changes.uid.unwrap_or(meta.uid);
        meta.gid = changes.gid.unwrap_or(meta.gid);
        meta.atime = changes.atime.unwrap_or(meta.atime);
        if let Some(mtime) = changes.mtime {
            match &inode.data {
                Data::File(file) => file.set_modified(mtime),
                Data::Dir(_) => meta.mtime = mtime,
            }
        }
        inode.meta.ctime = SystemTime::now();
        Ok(inode.attr())
    }

    /// Creates the regular file `name` in `parent` and counts one kernel reference to it.
    pub fn create(
        &self,
        parent: Ino,
        name: &OsStr,
        perm: u32,
        owner: (u32, u32),
    ) -> io::Result<(Attr, Arc<File>)> {
        let mut table = self.table.write();
        let path = table.new_entry(parent, name)?;
        let file = Arc::new(self.store.create_file(&path, perm)?);
        let meta = Meta::new(perm, owner.0, owner.1);
        let ino = table.add(Data::File(Arc::clone(&file)), meta, parent, name.to_owned());
        let inode = table.get(ino)?;
        inode.lookups.fetch_add(1, Ordering::Relaxed);
        Ok((inode.attr(), file))
    }

    /// Creates the directory `name` in `parent` and counts one kernel reference to it.
    pub fn mkdir(
        &self,
        parent: Ino,
        name: &OsStr,
        perm: u32,
        owner: (u32, u32),
    ) -> io::Result<Attr> {
        let mut table = self.table.write();
        let path = table.new_entry(parent, name)?;
        self.store.mkdir(&path, perm)?;
        let meta = Meta::new(perm, owner.0, owner.1);
        let ino = table.add(Data::Dir(Dir::default()), meta, parent, name.to_owned());
        let inode = table.get(ino)?;
        inode.lookups.fetch_add(1, Ordering::Relaxed);
        Ok(inode.attr())
    }

    /// Removes the regular file `name` from `parent`. Open files keep their data until the
    /// kernel forgets them.
    pub fn unlink(&self, parent: Ino, name: &OsStr) -> io::Result<()> {
        let mut table = self.table.write();
        let ino = table.child(parent, name)?;
        if table.get(ino)?.kind() == Kind::Dir {
            return Err(errno(libc::EISDIR));
        }
        self.store.remove_file(&table.path(ino)?)?;
        table.remove_entry(parent, name);
        Ok(())
    }

    /// Removes the empty directory `name` from `parent`.
    pub fn rmdir(&self, parent: Ino, name: &OsStr) -> io::Result<()> {
        let mut table = self.table.write();
        let ino = table.child(parent, name)?;
        match &table.get(ino)?.data {
            Data::File(_) => return Err(errno(libc::ENOTDIR)),
            Data::Dir(dir) if !dir.entries.is_empty() => return Err(errno(libc::ENOTEMPTY)),
            Data::Dir(_) => {}
        }
        self.store.remove_dir(&table.path(ino)?)?;
        table.remove_entry(parent, name);
        Ok(())
    }

    /// Renames `name` in `parent` to `new_name` in `new_parent`, replacing a file, or an empty
    /// directory, there unless `no_replace`.
    pub fn rename(
        &self,
        parent: Ino,
        name: &OsStr,
        new_parent: Ino,
        new_name: &OsStr,
        no_replace: bool,
    ) -> io::Result<()> {
        let mut table = self.table.write();
        let ino = table.child(parent, name)?;
        table.dir(new_parent)?;
        check_name(new_name)?;
        let kind = table.get(ino)?.kind();
        if kind == Kind::Dir && table.is_within(new_parent, ino) {
            return Err(errno(libc::EINVAL)); // into itself
        }
        let target = table.dir(new_parent)?.entries.get(new_name).copied();
        if let Some(target) = target {
            if target == ino {
                return Ok(());
            }
            if no_replace {
                return Err(errno(libc::EEXIST));
            }
            match (&table.get(target)?.data, kind) {
                (Data::File(_), Kind::Dir) => return Err(errno(libc::ENOTDIR)),
                (Data::Dir(_), Kind::File) => return Err(errno(libc::EISDIR)),
                (Data::Dir(dir), Kind::Dir) if !dir.entries.is_empty() => {
                    return Err(errno(libc::ENOTEMPTY))
                }
                _ => {}
            }
        }
        let to = table.path(new_parent)?.join(new_name);
        self.store.rename(&table.path(ino)?, &to)?;
        if target.is_some() {
            table.remove_entry(new_parent, new_name);
        }
        table.unlink_entry(parent, name);
        table.link_entry(new_parent, new_name.to_owned(), ino);
        Ok(())
    }

    /// The entries of directory `ino` from position `offset` on (`.` and `..` first).
    pub fn read_dir(&self, ino: Ino, offset: u64) -> io::Result<Vec<Entry>> {
        let table = self.table.read();
        let dir = table.dir(ino)?;
        let parent = table.get(ino)?.link.as_ref().map_or(ino, |(p, _)| *p);
        let dots = [(ino, "."), (parent, "..")].map(|(ino, name)| Entry {
            ino,
            kind: Kind::Dir,
            name: name.into(),
        });
        let children = dir.entries.iter().map(|(name, &child)| Entry {
            ino: child,
            kind: table.get(child).map_or(Kind::File, Inode::kind),
            name: name.clone(),
        });
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        Ok(dots.into_iter().chain(children).skip(skip).collect())
    }

    /// The store's space and the number of inodes.
    pub fn usage(&self) -> io::Result<(Usage, u64)> {
        let inodes = self.table.read().inodes.len() as u64;
        Ok((self.store.usage()?, inodes))
    }

    /// Makes every file's data and length durable; the first error, after trying them all.
    pub fn sync_all(&self) -> io::Result<()> {
        let files: Vec<Arc<File>> = self
            .table
            .read()
            .inodes
            .values()
            .filter_map(|inode| match &inode.data {
                Data::File(file) => Some(Arc::clone(file)),
                Data::Dir(_) => None,
            })
            .collect();
        let mut first = Ok(());
        for file in files {
            if let Err(e) = file.sync() {
                first = first.and(Err(e));
            }
        }
        first
    }
}

/// `EINVAL` for `.`, `..` and the empty name, `ENAMETOOLONG` past [`NAME_MAX`].
fn check_name(name: &OsStr) -> io::Result<()> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(errno(libc::EINVAL));
    }
    if name.len() > NAME_MAX {
        return Err(errno(libc::ENAMETOOLONG));
    }
    Ok(())
}

impl Table {
    fn get(&self, ino: Ino) -> io::Result<&Inode> {
        self.inodes.get(&ino).ok_or_else(|| errno(libc::ENOENT))
    }

    fn get_mut(&mut self, ino: Ino) -> io::Result<&mut Inode> {
        self.inodes.get_mut(&ino).ok_or_else(|| errno(libc::ENOENT))
    }

    fn dir(&self, ino: Ino) -> io::Result<&Dir> {
        match &self.get(ino)?.data {
            Data::Dir(dir) => Ok(dir),
            Data::File(_) => Err(errno(libc::ENOTDIR)),
        }
    }

    fn child(&self, parent: Ino, name: &OsStr) -> io::Result<Ino> {
        if name.len() > NAME_MAX {
            return Err(errno(libc::ENAMETOOLONG));
        }
        self.dir(parent)?
            .entries
            .get(name)
            .copied()
            .ok_or_else(|| errno(libc::ENOENT))
    }

    /// The path of `ino` from the root; `ENOENT` once unlinked.
    fn path(&self, ino: Ino) -> io::Result<PathBuf> {
        let mut names = Vec::new();
        let mut at = ino;
        while at != ROOT {
            let (parent, name) = self
                .get(at)?
                .link
                .as_ref()
                .ok_or_else(|| errno(libc::ENOENT))?;
            names.push(name);
            at = *parent;
        }
        Ok(names.into_iter().rev().collect())
    }

    /// Whether `ino` is `ancestor` or lies below it.
    fn is_within(&self, mut ino: Ino, ancestor: Ino) -> bool {
        loop {
            if ino == ancestor {
                return true;
            }
            match self.inodes.get(&ino).and_then(|i| i.link.as_ref()) {
                Some((parent, _)) => ino = *parent,
                None => return false,
            }
        }
    }

    /// The store path for a new entry `name` in `parent`: `EEXIST` if taken.
    fn new_entry(&self, parent: Ino, name: &OsStr) -> io::Result<PathBuf> {
        check_name(name)?;
        if self.dir(parent)?.entries.contains_key(name) {
            return Err(errno(libc::EEXIST));
        }
        Ok(self.path(parent)?.join(name))
    }

    /// Adds a new inode as `name` in `parent`; returns its number.
    fn add(&mut self, data: Data, meta: Meta, parent: Ino, name: OsString) -> Ino {
        let ino = self.next;
        self.next += 1;
        self.inodes.insert(ino, Inode::new(ino, data, meta, None));
        self.link_entry(parent, name, ino);
        ino
    }

    /// Links `ino` as `name` in `parent` (which has no such entry).
    fn link_entry(&mut self, parent: Ino, name: OsString, ino: Ino) {
        let is_dir = self.inodes[&ino].kind() == Kind::Dir;
        let inode = self.inodes.get_mut(&ino).expect("linked inode exists");
        inode.link = Some((parent, name.clone()));
        inode.meta.ctime = SystemTime::now();
        let parent = self.inodes.get_mut(&parent).expect("parent exists");
        if let Data::Dir(dir) = &mut parent.data {
            dir.entries.insert(name, ino);
            dir.subdirs += u32::from(is_dir);
        }
        let now = SystemTime::now();
        (parent.meta.mtime, parent.meta.ctime) = (now, now);
    }

    /// Takes entry `name` out of `parent`; returns the inode it named, now unlinked.
    fn unlink_entry(&mut self, parent: Ino, name: &OsStr) -> Ino {
        let dir_inode = self.inodes.get_mut(&parent).expect("parent exists");
        let now = SystemTime::now();
        (dir_inode.meta.mtime, dir_inode.meta.ctime) = (now, now);
        let Data::Dir(dir) = &mut dir_inode.data else {
            unreachable!("entries are only taken out of directories")
        };
        let ino = dir.entries.remove(name).expect("entry exists");
        let is_dir = self.inodes[&ino].kind() == Kind::Dir;
        if let Data::Dir(dir) = &mut self.inodes.get_mut(&parent).expect("parent").data {
            dir.subdirs -= u32::from(is_dir);
        }
        let inode = self.inodes.get_mut(&ino).expect("entry's inode exists");
        inode.link = None;
        inode.meta.ctime = now;
        ino
    }

    /// Removes entry `name` from `parent` for good: its inode leaves the table now if the
    /// kernel holds no reference to it, else when the kernel forgets it.
    fn remove_entry(&mut self, parent: Ino, name: &OsStr) {
        let ino = self.unlink_entry(parent, name);
        self.drop_if_unused(ino);
    }

    fn drop_if_unused(&mut self, ino: Ino) {
        let unused = self
            .inodes
            .get(&ino)
            .is_some_and(|i| i.link.is_none() && i.lookups.load(Ordering::Relaxed) == 0);
        if unused && ino != ROOT {
            self.inodes.remove(&ino);
        }
    }
}
