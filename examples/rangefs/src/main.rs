//! rangefs: a FUSE file system whose every regular file is a `rangelock::mm::AddressSpace`.
//!
//! ```text
//! rangefs MOUNTPOINT [--backing mem|file] [--store DIR] [--capacity BYTES]
//!     [--latency-us N] [--lock range|range-fifo|rwsem|unlocked] [--threads N] [--cache-mib N]
//!     [--kernel-cache]
//! ```
//!
//! A fault, read or hole punch in a file locks only its byte range in the daemon, not the
//! whole file, which is what the crate is for; `--lock rwsem` runs the same file system with
//! one lock per file (Linux's `invalidate_lock`), `--lock range-fifo` with the range lock in
//! strict FIFO order, and `--lock unlocked` without any, to show the race the lock closes.
//!
//! The layers, one concept a file:
//! - `fuse`: the FUSE plumbing (decode a request, call one function, reply), with the errno
//!   mapping in `errno`;
//! - `namespace` and `inode`: the inode table and the directory tree;
//! - `file`: the file operations on an address space, and `space`: the address space with its
//!   lock chosen at run time;
//! - `store`: where data lives (one simulated device, or a directory of sparse files);
//! - `options` (the command line) and `shutdown` (signals and unmounting).

mod errno;
mod file;
mod fuse;
mod inode;
mod namespace;
mod options;
mod shutdown;
mod space;
mod store;

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use fuser::{Config, MountOption, Session};

use crate::fuse::{Caching, RangeFs};
use crate::namespace::Namespace;
use crate::options::{Backing, Command};
use crate::store::Store;

/// The FUSE device.
const FUSE_DEVICE: &str = "/dev/fuse";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("rangefs: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let options = match options::parse(std::env::args_os().skip(1))? {
        Command::Help => {
            print!("{}", options::USAGE);
            return Ok(());
        }
        Command::Mount(options) => options,
    };
    // Before any thread starts, so that every thread inherits the mask.
    let signals = shutdown::block_stop_signals()
        .map_err(|e| format!("cannot block SIGINT and SIGTERM: {e}"))?;
    let mountpoint = mount_point(&options.mountpoint)?;
    let store = match &options.backing {
        Backing::Mem { capacity, latency } => {
            Store::mem(*capacity, *latency, options.lock, options.cache_pages)
        }
        Backing::File { store } => Store::dir(store, options.lock, options.cache_pages)?,
    };
    if let Some(root) = store.root() {
        if root.starts_with(&mountpoint) {
            return Err(format!(
                "store {} is inside the mount point {}",
                root.display(),
                mountpoint.display()
            ));
        }
    }
    let description = store.describe();
    let ns = Arc::new(Namespace::new(store)?);
    fuse_device()?;

    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("rangefs".into()),
        MountOption::Subtype("rangefs".into()),
        MountOption::DefaultPermissions,
    ];
    config.n_threads = Some(options.threads);
    config.clone_fd = true;
    let fs = RangeFs::new(Arc::clone(&ns), options.caching);
    let session = Session::new(fs, &mountpoint, &config)
        .map_err(|e| format!("cannot mount on {}: {e}", mountpoint.display()))?;
    eprintln!(
        "rangefs: mounted on {}: {description}, lock {}, {} threads, {}",
        mountpoint.display(),
        options.lock.name(),
        options.threads,
        match options.caching {
            Caching::Direct => "direct IO",
            Caching::Kernel => "kernel page cache",
        }
    );
    shutdown::unmount_on_signal(signals, mountpoint.clone())
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;

    // Returns once the file system is unmounted; the session unmounts it if it is not.
    let served = session.run();
    let written_back = ns.sync_all();
    served.map_err(|e| format!("the session ended with an error: {e}"))?;
    written_back.map_err(|e| format!("writing back at unmount failed: {e}"))?;
    eprintln!(
        "rangefs: unmounted {}; every file written back",
        mountpoint.display()
    );
    Ok(())
}

/// The mount point, canonical: it must exist and be a directory.
fn mount_point(path: &Path) -> Result<PathBuf, String> {
    let name = path.display();
    match fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(format!("mount point {name} is not a directory")),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(format!("mount point {name} does not exist"))
        }
        Err(e) => return Err(format!("mount point {name}: {e}")),
    }
    path.canonicalize()
        .map_err(|e| format!("mount point {name}: {e}"))
}

/// Checks that the FUSE device can be opened, to name the cause if it cannot.
fn fuse_device() -> Result<(), String> {
    match fs::File::options().read(true).write(true).open(FUSE_DEVICE) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(format!(
            "no FUSE: {FUSE_DEVICE} does not exist (is the fuse module loaded?)"
        )),
        Err(e) => Err(format!("no FUSE: {FUSE_DEVICE} cannot be opened: {e}")),
    }
}
