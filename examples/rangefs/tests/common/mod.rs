//! Mounting rangefs for a test: a temporary mount point, the daemon as a child process, and
//! clean-up that never leaves a mount or a daemon behind.
#![allow(dead_code)] // each test file uses part of it

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::fcntl::{fallocate, FallocateFlags};

/// The daemon under test.
pub const RANGEFS: &str = env!("CARGO_BIN_EXE_rangefs");

/// A directory under the system's temporary directory, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("rangefs-test-{}-{n}-{name}", std::process::id()));
        fs::create_dir_all(&path).expect("create a temporary directory");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Never remove through a mount: if something is still mounted below, leave it all.
        if !mounted_below(&self.0) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// Whether anything is mounted at or below `path`.
pub fn mounted_below(path: &Path) -> bool {
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|line| line.split(' ').nth(1))
        .any(|at| Path::new(at).starts_with(path))
}

/// Whether `path` is a mount point now.
pub fn is_mounted(path: &Path) -> bool {
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|line| line.split(' ').nth(1))
        .any(|at| Path::new(at) == path)
}

/// Why mount tests cannot run here, if they cannot: `/dev/fuse` cannot be opened.
pub fn fuse_unavailable() -> Option<String> {
    match fs::File::options().read(true).write(true).open("/dev/fuse") {
        Ok(_) => None,
        Err(e) => Some(format!("/dev/fuse cannot be opened: {e}")),
    }
}

/// A mounted rangefs.
pub struct Mount {
    pub mnt: PathBuf,
    child: Option<Child>,
    stderr: Arc<Mutex<String>>,
    _dir: TempDir,
}

impl Mount {
    /// Mounts rangefs with `args` (after the mount point) on a new temporary directory, or
    /// returns `None`, printing why, when FUSE cannot be used here: `/dev/fuse` cannot be
    /// opened, or mounting is not permitted.
    pub fn start(name: &str, args: &[&str]) -> Option<Mount> {
        if let Some(why) = fuse_unavailable() {
            eprintln!("SKIPPED {name}: {why}");
            return None;
        }
        let dir = TempDir::new(name);
        let mnt = dir.path().join("mnt");
        fs::create_dir(&mnt).unwrap();
        let mnt = mnt.canonicalize().unwrap();
        let mut child = Command::new(RANGEFS)
            .arg(&mnt)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start rangefs");
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut all = sink.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        });
        let mut mount = Mount {
            mnt,
            child: Some(child),
            stderr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !is_mounted(&mount.mnt) {
            if let Some(status) = mount.child.as_mut().unwrap().try_wait().unwrap() {
                thread::sleep(Duration::from_millis(100)); // let the reader take the last lines
                let log = mount.stderr();
                mount.child = None;
                if log.contains("not permitted") || log.contains("Permission denied") {
                    eprintln!("SKIPPED {name}: mounting is not permitted here:\n{log}");
                    return None;
                }
                panic!("rangefs exited with {status} before mounting:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "rangefs did not mount in 20 s:\n{}",
                mount.stderr()
            );
            thread::sleep(Duration::from_millis(20));
        }
        Some(mount)
    }

    /// A path inside the mount.
    pub fn path(&self, name: &str) -> PathBuf {
        self.mnt.join(name)
    }

    /// What the daemon has printed so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Unmounts with `fusermount3 -u` (or `umount` where fuse3 is not installed) and returns
    /// the daemon's exit status and output.
    pub fn unmount(mut self) -> (ExitStatus, String) {
        let out = match Command::new("fusermount3")
            .arg("-u")
            .arg(&self.mnt)
            .output()
        {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Command::new("umount").arg(&self.mnt).output()
            }
            out => out,
        }
        .expect("run fusermount3 or umount");
        assert!(
            out.status.success(),
            "unmounting: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.wait()
    }

    /// Sends `signal` to the daemon and returns its exit status and output.
    pub fn stop_with(mut self, signal: nix::sys::signal::Signal) -> (ExitStatus, String) {
        let id = i32::try_from(self.child.as_ref().unwrap().id()).expect("a pid");
        let pid = nix::unistd::Pid::from_raw(id);
        nix::sys::signal::kill(pid, signal).expect("signal rangefs");
        self.wait()
    }

    fn wait(&mut self) -> (ExitStatus, String) {
        let child = self.child.as_mut().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "rangefs did not exit in 30 s");
            thread::sleep(Duration::from_millis(20));
        };
        self.child = None;
        thread::sleep(Duration::from_millis(100)); // let the reader take the last lines
        assert!(!is_mounted(&self.mnt), "still mounted after rangefs exited");
        (status, self.stderr())
    }
}

impl Drop for Mount {
    /// After a failed test: unmount (lazily if busy) and stop the daemon.
    fn drop(&mut self) {
        if is_mounted(&self.mnt) {
            let detached = Command::new("umount").arg("-l").arg(&self.mnt).status();
            if !detached.is_ok_and(|s| s.success()) {
                let _ = Command::new("fusermount3")
                    .args(["-u", "-z"])
                    .arg(&self.mnt)
                    .status();
            }
        }
        if let Some(mut child) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `fallocate(2)` on an open file.
pub fn falloc(file: &fs::File, mode: FallocateFlags, offset: u64, len: u64) -> nix::Result<()> {
    let off_t = |n: u64| i64::try_from(n).expect("an offset within off_t");
    fallocate(file.as_fd(), mode, off_t(offset), off_t(len))
}

/// A small, seeded xorshift generator: runs are reproducible from the seed they print.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
