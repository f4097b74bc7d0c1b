//! Bad input: a clear message naming the cause, exit code 1, and nothing left mounted.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use common::{fuse_unavailable, mounted_below, TempDir, RANGEFS};

fn rangefs(args: &[&str]) -> Output {
    Command::new(RANGEFS)
        .args(args)
        .output()
        .expect("run rangefs")
}

/// Runs rangefs with `args` and checks that it exits 1 with `expected` in its message, and
/// leaves nothing mounted under `dir`.
fn refused(dir: &Path, args: &[&str], expected: &str) {
    let out = rangefs(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(
        stderr.starts_with("rangefs: ") && stderr.contains(expected),
        "{args:?}: expected {expected:?} in {stderr:?}"
    );
    assert!(
        !mounted_below(dir),
        "{args:?} left a mount under {}",
        dir.display()
    );
}

#[test]
fn bad_arguments_and_paths_exit_1_naming_the_cause() {
    let dir = TempDir::new("bad-input");
    let d = dir.path();
    let mnt = d.join("mnt");
    let file = d.join("plain-file");
    fs::create_dir(&mnt).unwrap();
    fs::write(&file, b"not a directory").unwrap();
    let (mnt, file) = (mnt.to_str().unwrap(), file.to_str().unwrap());
    let missing = d.join("missing");
    let missing = missing.to_str().unwrap();

    refused(d, &[], "no mount point given");
    refused(
        d,
        &[missing],
        &format!("mount point {missing} does not exist"),
    );
    refused(
        d,
        &[file],
        &format!("mount point {file} is not a directory"),
    );
    refused(d, &[mnt, "--lock", "spin"], "--lock spin: not a lock");
    refused(
        d,
        &[mnt, "--backing", "file"],
        "--backing file needs --store DIR",
    );
    let store_missing = ["--backing", "file", "--store", missing];
    refused(
        d,
        &[&[mnt][..], &store_missing].concat(),
        &format!("store {missing}: cannot be opened"),
    );
    let store_file = ["--backing", "file", "--store", file];
    refused(
        d,
        &[&[mnt][..], &store_file].concat(),
        &format!("store {file}: not a directory"),
    );
    let store_inside = d.join("mnt/store");
    fs::create_dir(&store_inside).unwrap();
    let inside = [
        "--backing",
        "file",
        "--store",
        store_inside.to_str().unwrap(),
    ];
    refused(
        d,
        &[&[mnt][..], &inside].concat(),
        "is inside the mount point",
    );

    let help = rangefs(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("usage: rangefs MOUNTPOINT"));
}

/// Without a FUSE device (here: a private mount namespace whose /dev is an empty tmpfs),
/// rangefs says so and exits 1.
#[test]
fn no_fuse_device_exits_1_naming_it() {
    if let Some(why) = fuse_unavailable() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let dir = TempDir::new("no-fuse");
    let mnt = dir.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let script = r#"mount -t tmpfs none /dev && exec "$0" "$1""#;
    let out = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            RANGEFS,
        ])
        .arg(&mnt)
        .output();
    let out = match out {
        Ok(out)
            if !["unshare:", "mount:"]
                .iter()
                .any(|tool| String::from_utf8_lossy(&out.stderr).contains(tool)) =>
        {
            out
        }
        Ok(out) => {
            let why = String::from_utf8_lossy(&out.stderr);
            eprintln!("SKIPPED: no private mount namespace here: {why}");
            return;
        }
        Err(e) => {
            eprintln!("SKIPPED: unshare cannot run: {e}");
            return;
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("rangefs: no FUSE: /dev/fuse does not exist"),
        "{stderr}"
    );
    assert!(!mounted_below(dir.path()));
}
