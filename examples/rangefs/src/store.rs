//! Where the files' data lives: one simulated device shared by every file (`--backing mem`),
//! or a directory that mirrors the tree, each regular file a sparse file of its own
//! (`--backing file --store DIR`), so that a restart over the same store finds the same files
//! and data.
//!
//! The namespace calls the store for every change to the tree, with its own lock held, so the
//! directory store changes in the same order as the tree.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rangelock::mm::{FileBacking, MemBacking};

use crate::file::File;
use crate::space::Lock;

/// The backing store of a mount, and how its files' address spaces are built.
pub struct Store {
    kind: Kind,
    lock: Lock,
    cache_pages: usize,
}

enum Kind {
    /// Every file is a `share()` of this device.
    Mem(MemBacking),
    /// The store's root directory (canonical).
    Dir(PathBuf),
}

/// A file or directory found in a directory store.
pub struct Found {
    /// Its path, relative to the store's root; a directory comes before its contents.
    pub path: PathBuf,
    /// The file's data, or `None` for a directory.
    pub file: Option<File>,
    /// Permission bits, owner and group.
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    pub atime: SystemTime,
    pub mtime: SystemTime,
}

/// Space on the store, in blocks of [`BLOCK`] bytes.
pub struct Usage {
    pub blocks: u64,
    pub free: u64,
    pub available: u64,
}

/// The block size statfs reports: the page size, a `MemBacking` block.
pub const BLOCK: u64 = rangelock::mm::PAGE_SIZE as u64;

impl Store {
    /// One simulated device of `capacity` bytes for all files, `latency` per store IO.
    pub fn mem(capacity: u64, latency: Duration, lock: Lock, cache_pages: usize) -> Store {
        Store {
            kind: Kind::Mem(MemBacking::new(capacity).with_latency(latency)),
            lock,
            cache_pages,
        }
    }

    /// The directory store at `root`, which must exist and be a directory.
    ///
    /// # Errors
    ///
    /// A message naming `root` and the cause.
    pub fn dir(root: &Path, lock: Lock, cache_pages: usize) -> Result<Store, String> {
        let name = root.display();
        let canonical = root
            .canonicalize()
            .map_err(|e| format!("store {name}: cannot be opened: {e}"))?;
        let meta =
            fs::metadata(&canonical).map_err(|e| format!("store {name}: cannot be opened: {e}"))?;
        if !meta.is_dir() {
            return Err(format!("store {name}: not a directory"));
        }
        nix::unistd::access(&canonical, nix::unistd::AccessFlags::W_OK)
            .map_err(|e| format!("store {name}: not writable: {e}"))?;
        Ok(Store {
            kind: Kind::Dir(canonical),
            lock,
            cache_pages,
        })
    }

    /// The directory store's root, or `None` for the memory device.
    pub fn root(&self) -> Option<&Path> {
        match &self.kind {
            Kind::Mem(_) => None,
            Kind::Dir(root) => Some(root),
        }
    }

    /// A new, empty regular file at `path` with permissions `perm`.
    pub fn create_file(&self, path: &Path, perm: u32) -> io::Result<File> {
        let space = match &self.kind {
            Kind::Mem(device) => self.lock.space(device.share(), self.cache_pages),
            Kind::Dir(root) => {
                let at = root.join(path);
                let backing = FileBacking::create(&at)?;
                fs::set_permissions(&at, fs::Permissions::from_mode(perm))?;
                self.lock.space(backing, self.cache_pages)
            }
        };
        Ok(File::new(space, SystemTime::now()))
    }

    /// A new directory at `path`.
    pub fn mkdir(&self, path: &Path, perm: u32) -> io::Result<()> {
        if let Kind::Dir(root) = &self.kind {
            let at = root.join(path);
            fs::create_dir(&at)?;
            fs::set_permissions(&at, fs::Permissions::from_mode(perm))?;
        }
        Ok(())
    }

    /// Removes the regular file at `path` (open files keep their data until released).
    pub fn remove_file(&self, path: &Path) -> io::Result<()> {
        match &self.kind {
            Kind::Mem(_) => Ok(()),
            Kind::Dir(root) => fs::remove_file(root.join(path)),
        }
    }

    /// Removes the empty directory at `path`.
    pub fn remove_dir(&self, path: &Path) -> io::Result<()> {
        match &self.kind {
            Kind::Mem(_) => Ok(()),
            Kind::Dir(root) => fs::remove_dir(root.join(path)),
        }
    }

    /// Renames `from` to `to`, replacing a file or empty directory there, as `rename(2)`.
    pub fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        match &self.kind {
            Kind::Mem(_) => Ok(()),
            Kind::Dir(root) => fs::rename(root.join(from), root.join(to)),
        }
    }

    /// Records permissions, owner and times of `path`, so that a restart finds them.
    pub fn set_attrs(
        &self,
        path: &Path,
        perm: Option<u32>,
        owner: (Option<u32>, Option<u32>),
        times: (Option<SystemTime>, Option<SystemTime>),
    ) -> io::Result<()> {
        let Kind::Dir(root) = &self.kind else {
            return Ok(());
        };
        let at = root.join(path);
        if let Some(perm) = perm {
            fs::set_permissions(&at, fs::Permissions::from_mode(perm))?;
        }
        if owner.0.is_some() || owner.1.is_some() {
            std::os::unix::fs::chown(&at, owner.0, owner.1)?;
        }
        let (atime, mtime) = times;
        if atime.is_some() || mtime.is_some() {
            let mut set = fs::FileTimes::new();
            if let Some(t) = atime {
                set = set.set_accessed(t);
            }
            if let Some(t) = mtime {
                set = set.set_modified(t);
            }
            fs::File::options()
                .write(true)
                .open(&at)
                .or_else(|_| fs::File::open(&at))?
                .set_times(set)?;
        }
        Ok(())
    }

    /// Every file and directory under a directory store's root, each directory before its
    /// contents; nothing for the memory device. Entries that are neither regular files nor
    /// directories are left out, with a warning.
    ///
    /// # Errors
    ///
    /// A message naming the entry that cannot be read or opened.
    pub fn scan(&self) -> Result<Vec<Found>, String> {
        let Kind::Dir(root) = &self.kind else {
            return Ok(Vec::new());
        };
        let mut found = Vec::new();
        let mut dirs = vec![PathBuf::new()];
        while let Some(dir) = dirs.pop() {
            let at = root.join(&dir);
            let entries = fs::read_dir(&at).map_err(|e| format!("store {}: {e}", at.display()))?;
            let mut names: Vec<OsString> = Vec::new();
            for entry in entries {
                let entry = entry.map_err(|e| format!("store {}: {e}", at.display()))?;
                names.push(entry.file_name());
            }
            names.sort();
            for name in names {
                let path = dir.join(&name);
                let full = root.join(&path);
                let meta = fs::symlink_metadata(&full)
                    .map_err(|e| format!("store {}: {e}", full.display()))?;
                let file = if meta.is_dir() {
                    dirs.push(path.clone());
                    None
                } else if meta.is_file() {
                    let backing =
                        FileBacking::open(&full).map_err(|e| format!("store: cannot open {e}"))?;
                    let space = self.lock.space(backing, self.cache_pages);
                    Some(File::new(
                        space,
                        meta.modified().unwrap_or(SystemTime::now()),
                    ))
                } else {
                    eprintln!(
                        "rangefs: store {}: neither a file nor a directory, left out",
                        full.display()
                    );
                    continue;
                };
                found.push(Found {
                    path,
                    file,
                    perm: meta.mode() & 0o7777,
                    uid: meta.uid(),
                    gid: meta.gid(),
                    atime: meta.accessed().unwrap_or(SystemTime::now()),
                    mtime: meta.modified().unwrap_or(SystemTime::now()),
                });
            }
        }
        Ok(found)
    }

    /// The store's size and free space.
    pub fn usage(&self) -> io::Result<Usage> {
        match &self.kind {
            Kind::Mem(device) => Ok(Usage {
                blocks: device.capacity_blocks(),
                free: device.free_blocks(),
                available: device.free_blocks(),
            }),
            Kind::Dir(root) => {
                let st = nix::sys::statvfs::statvfs(root.as_path())?;
                let scale = |n: u64| n * st.fragment_size() / BLOCK;
                Ok(Usage {
                    blocks: scale(st.blocks()),
                    free: scale(st.blocks_free()),
                    available: scale(st.blocks_available()),
                })
            }
        }
    }

    /// One line for the start-up message.
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::Mem(device) => format!(
                "one simulated device of {} blocks",
                device.capacity_blocks()
            ),
            Kind::Dir(root) => format!("sparse files under {}", root.display()),
        }
    }
}
