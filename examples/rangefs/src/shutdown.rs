//! Stopping: SIGINT and SIGTERM unmount the file system, which ends the session as
//! `fusermount3 -u` or `umount` would.
//!
//! The signals are blocked in every thread (the mask is set before any thread starts and
//! inherited) and taken by one thread with `sigwait`, so no request is interrupted and no
//! handler runs inside the daemon.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;

use nix::errno::Errno;
use nix::mount::{umount2, MntFlags};
use nix::sys::signal::{SigSet, Signal};

/// Blocks SIGINT and SIGTERM in this thread and in every thread it starts later. Call it
/// before starting any thread.
///
/// # Errors
///
/// If the signal mask cannot be set.
pub fn block_stop_signals() -> nix::Result<SigSet> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.thread_block()?;
    Ok(set)
}

/// Starts a thread that unmounts `mountpoint` on each of the signals in `set`.
///
/// # Errors
///
/// If the thread cannot be started.
pub fn unmount_on_signal(set: SigSet, mountpoint: PathBuf) -> io::Result<()> {
    thread::Builder::new()
        .name("rangefs-signals".into())
        .spawn(move || {
            while let Ok(signal) = set.wait() {
                eprintln!("rangefs: {signal}: unmounting {}", mountpoint.display());
                unmount(&mountpoint);
            }
        })?;
    Ok(())
}

/// Unmounts `mountpoint`. If it is busy (files open on it), detaches it: it disappears from
/// the tree at once and the daemon serves the open files until they are closed.
fn unmount(mountpoint: &Path) {
    match umount2(mountpoint, MntFlags::empty()) {
        Ok(()) | Err(Errno::EINVAL) => {} // EINVAL: not mounted any more
        Err(Errno::EBUSY) => {
            eprintln!(
                "rangefs: {} is busy: detached; serving its open files until they are closed",
                mountpoint.display()
            );
            if let Err(e) = umount2(mountpoint, MntFlags::MNT_DETACH) {
                eprintln!("rangefs: cannot detach {}: {e}", mountpoint.display());
            }
        }
        Err(Errno::EPERM) => {
            // Not root: the setuid fusermount3 may unmount what it mounted.
            let fusermount = Command::new("fusermount3")
                .args(["-u", "-z", "--"])
                .arg(mountpoint)
                .status();
            if !fusermount.is_ok_and(|status| status.success()) {
                eprintln!("rangefs: cannot unmount {}", mountpoint.display());
            }
        }
        Err(e) => eprintln!("rangefs: cannot unmount {}: {e}", mountpoint.display()),
    }
}
