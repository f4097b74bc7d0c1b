//! The command line.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::fuse::Caching;
use crate::space::Lock;

pub const USAGE: &str = "\
usage: rangefs MOUNTPOINT [--backing mem|file] [--store DIR] [--capacity BYTES]
               [--latency-us N] [--lock range|range-fifo|rwsem|unlocked] [--threads N]
               [--cache-mib N] [--kernel-cache]

Mounts a file system whose every regular file is a rangelock::mm::AddressSpace, and serves
it in the foreground until it is unmounted (fusermount3 -u, umount) or gets SIGINT or
SIGTERM; then it writes back every dirty page, unmounts if still mounted, and exits 0.

  --backing mem     one simulated device for all files (the default; nothing persists)
  --backing file    each file a sparse file under --store DIR, which mirrors the tree
  --store DIR       the directory store (must exist); a restart over it shows the same files
  --capacity BYTES  the mem device's size; K, M, G suffixes (KiB...) allowed [default 1G]
  --latency-us N    the mem device's latency per store IO, in microseconds [default 0]
  --lock L          the invalidate lock: range, range-fifo, rwsem or unlocked
                    [default: the crate's DefaultLock, range unless built with whole-rwsem]
  --threads N       threads serving requests [default 8]
  --cache-mib N     each file's page cache in the daemon, in MiB [default 16]
  --kernel-cache    the kernel's page cache in front (default: direct IO, so every read
                    and write reaches the daemon's locks)
";

/// Where files keep their data.
#[derive(Debug, PartialEq, Eq)]
pub enum Backing {
    /// One simulated device for all files.
    Mem { capacity: u64, latency: Duration },
    /// A directory of sparse files.
    File { store: PathBuf },
}

/// What to mount and how.
#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    pub mountpoint: PathBuf,
    pub backing: Backing,
    pub lock: Lock,
    pub threads: usize,
    pub cache_pages: usize,
    pub caching: Caching,
}

/// A parsed command line.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Mount(Options),
    Help,
}

/// Parses the arguments after the program name.
///
/// # Errors
///
/// A message naming the argument at fault.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, String> {
    let mut mountpoint = None;
    let mut backing = "mem".to_owned();
    let mut store = None;
    let mut capacity = None;
    let mut latency_us = None;
    let mut lock = Lock::crate_default();
    let mut threads = 8;
    let mut cache_mib = 16;
    let mut caching = Caching::Direct;

    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let Some(text) = arg.to_str() else {
            set_mountpoint(&mut mountpoint, arg)?;
            continue;
        };
        let (flag, inline) = match text.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_owned(), Some(value.into())),
            _ => (text.to_owned(), None),
        };
        let mut value = |name: &str| -> Result<OsString, String> {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--backing" => backing = utf8(&flag, value(&flag)?)?,
            "--store" => store = Some(PathBuf::from(value(&flag)?)),
            "--capacity" => capacity = Some(bytes(&flag, &utf8(&flag, value(&flag)?)?)?),
            "--latency-us" => latency_us = Some(number(&flag, &utf8(&flag, value(&flag)?)?)?),
            "--lock" => {
                let name = utf8(&flag, value(&flag)?)?;
                lock = Lock::parse(&name).ok_or_else(|| {
                    format!("--lock {name}: not a lock (range, range-fifo, rwsem or unlocked)")
                })?;
            }
            "--threads" => threads = number(&flag, &utf8(&flag, value(&flag)?)?)?,
            "--cache-mib" => cache_mib = number(&flag, &utf8(&flag, value(&flag)?)?)?,
            "--kernel-cache" if inline.is_none() => caching = Caching::Kernel,
            _ if text.starts_with('-') && text.len() > 1 => {
                return Err(format!("unknown option {text} (see --help)"))
            }
            _ => set_mountpoint(&mut mountpoint, arg)?,
        }
    }

    let mountpoint = mountpoint.ok_or("no mount point given (see --help)")?;
    let backing = match backing.as_str() {
        "mem" => {
            if store.is_some() {
                return Err("--store is for --backing file".into());
            }
            let capacity = capacity.unwrap_or(1 << 30);
            if capacity < rangelock::mm::PAGE_SIZE as u64 {
                return Err(format!(
                    "--capacity {capacity}: at least one page ({} bytes)",
                    rangelock::mm::PAGE_SIZE
                ));
            }
            Backing::Mem {
                capacity,
                latency: Duration::from_micros(latency_us.unwrap_or(0)),
            }
        }
        "file" => {
            if capacity.is_some() || latency_us.is_some() {
                return Err("--capacity and --latency-us are for --backing mem".into());
            }
            let store = store.ok_or("--backing file needs --store DIR")?;
            Backing::File { store }
        }
        other => return Err(format!("--backing {other}: not a backing (mem or file)")),
    };
    if threads == 0 {
        return Err("--threads must be at least 1".into());
    }
    if cache_mib == 0 {
        return Err("--cache-mib must be at least 1".into());
    }
    let cache_pages = usize::try_from(cache_mib)
        .ok()
        .and_then(|mib| mib.checked_mul((1 << 20) / rangelock::mm::PAGE_SIZE))
        .ok_or_else(|| format!("--cache-mib {cache_mib}: too large"))?;
    Ok(Command::Mount(Options {
        mountpoint,
        backing,
        lock,
        threads: usize::try_from(threads).map_err(|_| "--threads: too many")?,
        cache_pages,
        caching,
    }))
}

fn set_mountpoint(mountpoint: &mut Option<PathBuf>, arg: OsString) -> Result<(), String> {
    if let Some(first) = mountpoint {
        return Err(format!(
            "two mount points given: {} and {}",
            first.display(),
            PathBuf::from(arg).display()
        ));
    }
    *mountpoint = Some(arg.into());
    Ok(())
}

fn utf8(flag: &str, value: OsString) -> Result<String, String> {
    value
        .into_string()
        .map_err(|v| format!("{flag} {}: not UTF-8", v.to_string_lossy()))
}

fn number(flag: &str, value: &str) -> Result<u64, String> {
    value
        .parse()
        .map_err(|_| format!("{flag} {value}: not a number"))
}

/// A byte count with an optional binary suffix: `4096`, `64K`, `256M`, `1G` (or `KiB`...).
fn bytes(flag: &str, value: &str) -> Result<u64, String> {
    let digits = value.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let shift = match &value[digits.len()..] {
        "" => 0,
        "K" | "k" | "KiB" => 10,
        "M" | "m" | "MiB" => 20,
        "G" | "g" | "GiB" => 30,
        "T" | "t" | "TiB" => 40,
        _ => return Err(format!("{flag} {value}: not a size (bytes, or K, M, G, T)")),
    };
    number(flag, digits)?
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{flag} {value}: too large"))
}

#[cfg(test)]
mod tests {
    use super::{parse, Backing, Command};
    use crate::fuse::Caching;
    use crate::space::Lock;
    use std::time::Duration;

    fn run(args: &[&str]) -> Result<Command, String> {
        parse(args.iter().map(Into::into))
    }

    fn options(args: &[&str]) -> super::Options {
        match run(args).unwrap() {
            Command::Mount(o) => o,
            Command::Help => panic!("help"),
        }
    }

    #[test]
    fn defaults_are_a_mem_device_with_the_crate_s_lock_and_direct_io() {
        let o = options(&["/mnt"]);
        assert_eq!(o.mountpoint.to_str(), Some("/mnt"));
        assert_eq!(
            o.backing,
            Backing::Mem {
                capacity: 1 << 30,
                latency: Duration::ZERO
            }
        );
        assert_eq!(o.lock, Lock::crate_default());
        assert_eq!((o.threads, o.cache_pages), (8, 4096));
        assert_eq!(o.caching, Caching::Direct);
    }

    #[test]
    fn every_option_is_read() {
        let o = options(&[
            "--capacity=64M",
            "--latency-us",
            "100",
            "/mnt",
            "--lock",
            "unlocked",
            "--threads=3",
            "--cache-mib",
            "2",
            "--kernel-cache",
        ]);
        assert_eq!(
            o.backing,
            Backing::Mem {
                capacity: 64 << 20,
                latency: Duration::from_micros(100)
            }
        );
        assert_eq!((o.lock, o.threads, o.cache_pages), (Lock::Unlocked, 3, 512));
        assert_eq!(o.caching, Caching::Kernel);
        let o = options(&["/mnt", "--backing", "file", "--store", "/var/store"]);
        assert_eq!(
            o.backing,
            Backing::File {
                store: "/var/store".into()
            }
        );
        assert_eq!(run(&["--help"]).unwrap(), Command::Help);
    }

    #[test]
    fn bad_arguments_are_named() {
        let cases: [(&[&str], &str); 10] = [
            (&[], "no mount point"),
            (&["/a", "/b"], "two mount points"),
            (&["/a", "--lock", "mutex"], "--lock mutex"),
            (&["/a", "--backing", "disk"], "--backing disk"),
            (&["/a", "--backing", "file"], "needs --store"),
            (&["/a", "--store", "/s"], "--store is for --backing file"),
            (&["/a", "--capacity", "12X"], "--capacity 12X"),
            (&["/a", "--threads"], "--threads needs a value"),
            (&["/a", "--threads", "0"], "at least 1"),
            (&["/a", "--frobnicate"], "unknown option --frobnicate"),
        ];
        for (args, expected) in cases {
            let e = run(args).unwrap_err();
            assert!(e.contains(expected), "{args:?}: {e:?}");
        }
    }
}
