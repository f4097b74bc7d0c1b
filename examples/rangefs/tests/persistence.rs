//! `--backing file`: what fsync acknowledged is in the store at once, still there after the
//! daemon stops on SIGTERM or on unmount, and read back by a daemon restarted over the store,
//! with the tree, holes, lengths and permissions as they were.

mod common;

use std::fs::{self, File};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::Path;

use common::{falloc, is_mounted, Mount, TempDir};
use nix::fcntl::FallocateFlags;
use nix::sys::signal::Signal;

const PAGE: usize = 4096;

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1)
        .collect()
}

fn start(name: &str, store: &Path) -> Option<Mount> {
    Mount::start(
        name,
        &["--backing", "file", "--store", store.to_str().unwrap()],
    )
}

/// Writes `data` at `offset` of the new or existing file `path` and fsyncs it.
fn write_synced(path: &Path, offset: u64, data: &[u8]) {
    let file = File::options()
        .create(true)
        .write(true)
        .truncate(false)
        .open(path)
        .unwrap();
    file.write_all_at(data, offset).unwrap();
    file.sync_all().unwrap();
}

#[test]
fn fsynced_data_survives_sigterm_unmount_and_restart() {
    let store = TempDir::new("store");
    let store = store.path();
    let a = pattern(1, 3 * PAGE + 100);
    let b = pattern(2, 5 * PAGE);
    // `b` after a punch of pages 1..3 and a truncate to 4.5 pages.
    let mut b_after = b.clone();
    b_after[PAGE..3 * PAGE].fill(0);
    b_after.truncate(4 * PAGE + PAGE / 2);

    // 1. Write and fsync; the store holds it at once. Stop with SIGTERM.
    let Some(m) = start("durable-1", store) else {
        return;
    };
    fs::create_dir(m.path("d")).unwrap();
    write_synced(&m.path("d/a"), 0, &a);
    fs::set_permissions(m.path("d/a"), fs::Permissions::from_mode(0o600)).unwrap();
    write_synced(&m.path("b"), 0, &b);
    {
        let file = File::options().write(true).open(m.path("b")).unwrap();
        let punch = FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE;
        falloc(&file, punch, PAGE as u64, 2 * PAGE as u64).unwrap();
        file.set_len(b_after.len() as u64).unwrap();
        file.sync_all().unwrap();
    }
    assert_eq!(
        fs::read(store.join("d/a")).unwrap(),
        a,
        "fsynced, but not in the store"
    );
    assert_eq!(
        fs::read(store.join("b")).unwrap(),
        b_after,
        "fsynced, but not in the store"
    );
    let mnt = m.mnt.clone();
    let (status, log) = m.stop_with(Signal::SIGTERM);
    assert!(
        status.success(),
        "SIGTERM: rangefs exited with {status}:\n{log}"
    );
    assert!(!is_mounted(&mnt));
    assert_eq!(fs::read(store.join("d/a")).unwrap(), a);
    assert_eq!(fs::read(store.join("b")).unwrap(), b_after);

    // 2. Restart: everything is back. Change it, rename, and stop by unmounting.
    let Some(m) = start("durable-2", store) else {
        return;
    };
    assert_eq!(fs::read(m.path("d/a")).unwrap(), a);
    assert_eq!(fs::read(m.path("b")).unwrap(), b_after);
    let mode = fs::metadata(m.path("d/a")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "permissions after a restart");
    let c = pattern(3, 2 * PAGE);
    write_synced(&m.path("d/a"), 10 * PAGE as u64, &c);
    fs::rename(m.path("b"), m.path("d/renamed")).unwrap();
    fs::create_dir(m.path("empty")).unwrap();
    let (status, log) = m.unmount();
    assert!(
        status.success(),
        "unmount: rangefs exited with {status}:\n{log}"
    );

    // 3. Restart again: the write past the old end left a hole; the rename held.
    let mut a_after = a.clone();
    a_after.resize(10 * PAGE, 0);
    a_after.extend(&c);
    assert_eq!(fs::read(store.join("d/a")).unwrap(), a_after);
    let Some(m) = start("durable-3", store) else {
        return;
    };
    assert_eq!(fs::read(m.path("d/a")).unwrap(), a_after);
    assert_eq!(fs::read(m.path("d/renamed")).unwrap(), b_after);
    assert!(!m.path("b").exists());
    let mut names: Vec<_> = fs::read_dir(&m.mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["d", "empty"]);
    let (status, log) = m.unmount();
    assert!(status.success(), "rangefs exited with {status}:\n{log}");
}

#[test]
fn sigint_stops_the_daemon_cleanly_too() {
    let Some(m) = Mount::start("sigint", &[]) else {
        return;
    };
    fs::write(m.path("f"), b"x").unwrap();
    let mnt = m.mnt.clone();
    let (status, log) = m.stop_with(Signal::SIGINT);
    assert!(
        status.success(),
        "SIGINT: rangefs exited with {status}:\n{log}"
    );
    assert!(log.contains("SIGINT"), "{log}");
    assert!(!is_mounted(&mnt));
}
