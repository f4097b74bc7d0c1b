//! Several threads of read, write, punch, zero range and truncate on one file, through the
//! kernel and `std::fs`, each checked against a shadow model of the bytes it owns.
//!
//! Four threads each own a region of the file and read, write, punch and zero it; a fifth owns
//! the tail past the regions and truncates, extends and reads it. Every read is compared with
//! the owner's shadow at once, and the whole file with all shadows at the end.

mod common;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::thread;

use common::{falloc, Mount, Rng};
use nix::fcntl::FallocateFlags;

const REGIONS: u64 = 4;
const REGION: u64 = 256 << 10;
const TAIL: u64 = 192 << 10;
const OPS: usize = 1500;
const MAX_OP: u64 = 48 << 10;

/// Reads, writes, punches and zeroes region `i` of `file`; returns the region's final bytes.
fn region_worker(file: &File, i: u64, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let base = i * REGION;
    let mut shadow = vec![0u8; REGION as usize];
    for op in 0..OPS {
        let off = rng.below(REGION);
        let len = 1 + rng.below(MAX_OP.min(REGION - off));
        let (o, n) = (off as usize, len as usize);
        let keep = FallocateFlags::FALLOC_FL_KEEP_SIZE;
        match rng.below(10) {
            0..=3 => {
                let data: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                file.write_all_at(&data, base + off).unwrap();
                shadow[o..o + n].copy_from_slice(&data);
            }
            4..=6 => {
                let mut buf = vec![0xEE; n];
                file.read_exact_at(&mut buf, base + off).unwrap();
                assert!(
                    buf == shadow[o..o + n],
                    "region {i}, seed {seed}, op {op}: read of {len} at {} differs from the model",
                    base + off
                );
            }
            7 | 8 => {
                let punch = FallocateFlags::FALLOC_FL_PUNCH_HOLE | keep;
                falloc(file, punch, base + off, len).unwrap();
                shadow[o..o + n].fill(0);
            }
            _ => {
                let zero = FallocateFlags::FALLOC_FL_ZERO_RANGE | keep;
                falloc(file, zero, base + off, len).unwrap();
                shadow[o..o + n].fill(0);
            }
        }
    }
    shadow
}

/// Truncates, extends, writes and reads the tail past the regions; returns its final bytes.
fn tail_worker(file: &File, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let base = REGIONS * REGION;
    let mut shadow: Vec<u8> = Vec::new();
    for op in 0..OPS {
        match rng.below(4) {
            0 => {
                let len = rng.below(TAIL);
                file.set_len(base + len).unwrap();
                shadow.resize(len as usize, 0);
            }
            1 => {
                let off = rng.below(TAIL);
                let n = (1 + rng.below(MAX_OP.min(TAIL - off))) as usize;
                let data: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                file.write_all_at(&data, base + off).unwrap();
                let end = off as usize + n;
                if shadow.len() < end {
                    shadow.resize(end, 0);
                }
                shadow[off as usize..end].copy_from_slice(&data);
            }
            _ => {
                let len = file.metadata().unwrap().len();
                assert_eq!(
                    len,
                    base + shadow.len() as u64,
                    "seed {seed}, op {op}: length"
                );
                let mut buf = vec![0xEE; shadow.len()];
                file.read_exact_at(&mut buf, base).unwrap();
                assert!(
                    buf == shadow,
                    "seed {seed}, op {op}: the tail differs from the model"
                );
            }
        }
    }
    shadow
}

fn run(name: &str, args: &[&str]) {
    let Some(mount) = Mount::start(name, args) else {
        return;
    };
    let path = mount.path("shared");
    let file = Arc::new(
        File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap(),
    );
    file.set_len(REGIONS * REGION).unwrap();
    let seed = u64::from(std::process::id());
    eprintln!("{name}: seed {seed}");
    let regions: Vec<_> = (0..REGIONS)
        .map(|i| {
            let file = Arc::clone(&file);
            thread::spawn(move || region_worker(&file, i, seed + i))
        })
        .collect();
    let tail = {
        let file = Arc::clone(&file);
        thread::spawn(move || tail_worker(&file, seed + REGIONS))
    };
    let mut expected = Vec::new();
    for region in regions {
        expected.extend(region.join().expect("a region worker failed"));
    }
    expected.extend(tail.join().expect("the tail worker failed"));
    file.sync_all().unwrap();
    drop(file);

    let actual = std::fs::read(&path).unwrap();
    assert_eq!(actual.len(), expected.len(), "final length");
    assert!(
        actual == expected,
        "the file differs from the model at the end"
    );

    let (status, log) = mount.unmount();
    assert!(status.success(), "rangefs exited with {status}:\n{log}");
    assert!(log.contains("every file written back"), "{log}");
}

#[test]
fn threads_of_read_write_punch_and_truncate_match_a_shadow_model_with_direct_io() {
    run("shadow-direct", &["--capacity", "64M", "--threads", "8"]);
}

#[test]
fn threads_of_read_write_punch_and_truncate_match_a_shadow_model_with_the_kernel_cache() {
    run("shadow-kcache", &["--capacity", "64M", "--kernel-cache"]);
}
