//! A seeded, single-threaded fsx-style test: random read, write, fault with mapped reads and
//! writes, punch, truncate, sync, `drop_caches` and remap against shadow buffers, every read
//! compared byte for byte. Each backend over both backings.
//!
//! A failure names its seed; `FSX_SEED=<seed> cargo test --test fsx` replays it, and
//! `FSX_OPS=<n>` runs longer.

mod common;

use common::Rng;
use rangelock::mm::{
    remap_range, Access, AddressSpace, Backing, FileBacking, InvalidateLock, MappedPage,
    MemBacking, Unlocked, WholeRwSem, PAGE_SIZE,
};
use rangelock::RangeRwLock;
use std::io::ErrorKind;

const PAGE: u64 = PAGE_SIZE as u64;
/// Files stay below this size, so shadows are small and operations often overlap.
const MAX_LEN: u64 = 48 * PAGE;

/// One address space and what it must contain.
struct Subject<L: InvalidateLock, B: Backing> {
    space: AddressSpace<L, B>,
    shadow: Vec<u8>,
    maps: Vec<(MappedPage, bool)>,
}

impl<L: InvalidateLock, B: Backing> Subject<L, B> {
    fn len(&self) -> u64 {
        self.shadow.len() as u64
    }

    /// Every mapping must be mapped exactly when the model says, and show the shadow.
    fn check_maps(&self, ctx: &str) {
        for (m, mapped) in &self.maps {
            assert_eq!(m.is_mapped(), *mapped, "mapping at {} ({ctx})", m.offset());
            let mut page = vec![0u8; PAGE_SIZE];
            match m.read(0, &mut page) {
                Ok(()) => {
                    let off = m.offset() as usize;
                    for (i, &b) in page.iter().enumerate() {
                        let want = self.shadow.get(off + i).copied().unwrap_or(0);
                        assert_eq!(b, want, "mapped byte {} ({ctx})", off + i);
                    }
                }
                Err(e) => assert!(!mapped, "read through a live mapping failed: {e} ({ctx})"),
            }
        }
    }

    fn check_read(&self, offset: u64, n: usize, ctx: &str) {
        let mut buf = vec![0xEE; n];
        let got = self.space.read(offset, &mut buf).unwrap();
        let want_n = self.len().saturating_sub(offset).min(n as u64) as usize;
        assert_eq!(got, want_n, "read length at {offset} ({ctx})");
        if got > 0 && buf[..got] != self.shadow[offset as usize..offset as usize + got] {
            let first = (0..got)
                .find(|&i| buf[i] != self.shadow[offset as usize + i])
                .unwrap();
            panic!(
                "byte {} reads {} but should be {} ({ctx})",
                offset as usize + first,
                buf[first],
                self.shadow[offset as usize + first]
            );
        }
    }

    /// Unmaps, in the model, the mappings of pages wholly inside `[start, end)`.
    fn unmap_within(&mut self, start: u64, end: u64) {
        for (m, mapped) in &mut self.maps {
            if m.offset() >= start && m.offset() + PAGE <= end {
                *mapped = false;
            }
        }
    }

    fn write(&mut self, offset: u64, data: &[u8], ctx: &str) {
        match self.space.write(offset, data) {
            Ok(n) => {
                assert_eq!(n, data.len(), "({ctx})");
                let end = offset as usize + data.len();
                if self.shadow.len() < end {
                    self.shadow.resize(end, 0);
                }
                self.shadow[offset as usize..end].copy_from_slice(data);
            }
            // All or nothing: the next checks see that nothing changed.
            Err(e) if e.kind() == ErrorKind::StorageFull => {}
            Err(e) => panic!("write failed: {e} ({ctx})"),
        }
    }
}

fn random_data(rng: &mut Rng, n: usize) -> Vec<u8> {
    let fill = rng.next() as u8;
    let mut data = vec![fill; n];
    // Some variety inside, so misplaced bytes show.
    for b in data.iter_mut().step_by(97) {
        *b = rng.next() as u8;
    }
    data
}

// One loop over every kind of operation, each checked against the shadow where it happens;
// `a` and `b` are the two spaces (a remap goes between them).
#[allow(clippy::too_many_lines, clippy::many_single_char_names)]
fn run<L: InvalidateLock, B: Backing>(seed: u64, ops: u64, mut make: impl FnMut(&str) -> B) {
    let mut rng = Rng::new(seed);
    let mut a = Subject::<L, B> {
        space: AddressSpace::with_lock_and_cache_pages(make("a"), 1 + rng.below(24) as usize),
        shadow: Vec::new(),
        maps: Vec::new(),
    };
    let mut b = Subject::<L, B> {
        space: AddressSpace::with_lock_and_cache_pages(make("b"), 8),
        shadow: Vec::new(),
        maps: Vec::new(),
    };
    for op in 0..ops {
        let which = rng.below(100);
        let ctx = format!("seed {seed}, op {op}, kind {which}");
        let s = if rng.chance(8) { &mut b } else { &mut a };
        let offset = rng.below(MAX_LEN);
        let max_n = if rng.chance(3) { 3 * PAGE } else { 300 };
        let n = 1 + rng.below(max_n);
        match which {
            0..=19 => s.check_read(offset, n as usize, &ctx),
            20..=44 => {
                let n = n.min(MAX_LEN - offset);
                let data = random_data(&mut rng, n as usize);
                s.write(offset, &data, &ctx);
            }
            45..=54 => {
                let access = if rng.chance(2) {
                    Access::Write
                } else {
                    Access::Read
                };
                match s.space.fault(offset, access) {
                    Ok(m) => {
                        assert!(offset < s.len(), "fault past the end succeeded ({ctx})");
                        assert_eq!(m.offset(), offset / PAGE * PAGE);
                        s.maps.push((m, true));
                        if s.maps.len() > 6 {
                            s.maps.remove(rng.below(6) as usize);
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                        assert!(offset >= s.len(), "({ctx})");
                    }
                    Err(e) if e.kind() == ErrorKind::StorageFull => {
                        assert_eq!(access, Access::Write);
                    }
                    Err(e) => panic!("fault failed: {e} ({ctx})"),
                }
            }
            55..=64 if !s.maps.is_empty() => {
                let i = rng.below(s.maps.len() as u64) as usize;
                let at = rng.below(PAGE) as usize;
                let n = (rng.below(64) as usize + 1).min(PAGE_SIZE - at);
                let data = random_data(&mut rng, n);
                let (m, mapped) = &s.maps[i];
                let end = m.offset() as usize + at + data.len();
                match m.write(at, &data) {
                    Ok(()) => {
                        assert!(
                            *mapped && m.access() == Access::Write && end <= s.shadow.len(),
                            "({ctx})"
                        );
                        let start = m.offset() as usize + at;
                        s.shadow[start..end].copy_from_slice(&data);
                    }
                    Err(e) => {
                        let want = if m.access() == Access::Read {
                            ErrorKind::PermissionDenied
                        } else if !*mapped {
                            ErrorKind::Other
                        } else {
                            ErrorKind::InvalidInput
                        };
                        assert_eq!(e.kind(), want, "mapped write: {e} ({ctx})");
                        assert!(
                            want != ErrorKind::InvalidInput || end > s.shadow.len(),
                            "({ctx})"
                        );
                    }
                }
            }
            65..=74 => {
                s.space.punch_hole(offset, n).unwrap();
                let end = (offset + n).min(s.len());
                if offset < end {
                    s.shadow[offset as usize..end as usize].fill(0);
                }
                s.unmap_within(offset, offset + n);
            }
            75..=81 => {
                let new_len = rng.below(MAX_LEN);
                s.space.truncate(new_len).unwrap();
                s.shadow.resize(new_len as usize, 0);
                s.unmap_within(new_len.div_ceil(PAGE) * PAGE, u64::MAX);
            }
            82..=85 => s.space.sync().unwrap(),
            86..=88 => {
                s.space.drop_caches();
            }
            89..=95 => {
                // Remap between the two spaces, or within one.
                let pages = 1 + rng.below(4);
                let len = pages * PAGE;
                let (from_a, to_a) = (rng.chance(2), rng.chance(2));
                let src_len = if from_a { a.len() } else { b.len() };
                if src_len < len {
                    continue;
                }
                let src_off = rng.below(src_len / PAGE - pages + 1) * PAGE;
                let dst_off = rng.below(MAX_LEN / PAGE - pages) * PAGE;
                if from_a == to_a && src_off < dst_off + len && dst_off < src_off + len {
                    let r = if from_a {
                        remap_range(&a.space, src_off, &a.space, dst_off, len)
                    } else {
                        remap_range(&b.space, src_off, &b.space, dst_off, len)
                    };
                    assert_eq!(r.unwrap_err().kind(), ErrorKind::InvalidInput, "({ctx})");
                    continue;
                }
                let r = match (from_a, to_a) {
                    (true, true) => remap_range(&a.space, src_off, &a.space, dst_off, len),
                    (true, false) => remap_range(&a.space, src_off, &b.space, dst_off, len),
                    (false, true) => remap_range(&b.space, src_off, &a.space, dst_off, len),
                    (false, false) => remap_range(&b.space, src_off, &b.space, dst_off, len),
                };
                match r {
                    Ok(copied) => {
                        assert_eq!(copied, len);
                        let src = if from_a { &a.shadow } else { &b.shadow };
                        let bytes = src[src_off as usize..(src_off + len) as usize].to_vec();
                        let dst = if to_a { &mut a } else { &mut b };
                        if dst.shadow.len() < (dst_off + len) as usize {
                            dst.shadow.resize((dst_off + len) as usize, 0);
                        }
                        dst.shadow[dst_off as usize..(dst_off + len) as usize]
                            .copy_from_slice(&bytes);
                        dst.unmap_within(dst_off, dst_off + len);
                    }
                    Err(e) if e.kind() == ErrorKind::StorageFull => {}
                    Err(e) => panic!("remap failed: {e} ({ctx})"),
                }
            }
            _ => {
                // Look at everything.
                s.check_read(0, MAX_LEN as usize, &ctx);
                s.check_maps(&ctx);
                assert_eq!(s.space.len(), s.len(), "length ({ctx})");
            }
        }
        if op % 16 == 0 {
            a.check_maps(&ctx);
            b.check_maps(&ctx);
            assert_eq!(
                (a.space.len(), b.space.len()),
                (a.len(), b.len()),
                "lengths ({ctx})"
            );
        }
    }
    a.check_read(0, MAX_LEN as usize, "final");
    b.check_read(0, MAX_LEN as usize, "final");
}

fn ops() -> u64 {
    common::seed_from_env("FSX_OPS", 4_000)
}

/// Seeds to run: `FSX_SEED` alone if set, else a few fixed ones.
fn seeds(base: u64) -> Vec<u64> {
    match std::env::var("FSX_SEED") {
        Ok(s) => vec![s.parse().expect("FSX_SEED is a number")],
        Err(_) => (base..base + 3).collect(),
    }
}

/// A device small enough that writes sometimes find it full.
fn mem(_: &str) -> MemBacking {
    MemBacking::new(40 * PAGE)
}

fn file(dir: &std::path::Path) -> impl FnMut(&str) -> FileBacking + '_ {
    move |name| FileBacking::create(dir.join(name)).unwrap()
}

fn temp_dir(tag: &str, seed: u64) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("rangelock-fsx-{tag}-{}-{seed}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn range_lock_over_memory_matches_the_shadow() {
    for seed in seeds(100) {
        run::<RangeRwLock, _>(seed, ops(), mem);
    }
}

#[test]
fn whole_rwsem_over_memory_matches_the_shadow() {
    for seed in seeds(200) {
        run::<WholeRwSem, _>(seed, ops(), mem);
    }
}

/// Single-threaded, even no lock is correct: this checks the page cache itself.
#[test]
fn unlocked_over_memory_matches_the_shadow_on_one_thread() {
    for seed in seeds(300) {
        run::<Unlocked, _>(seed, ops(), mem);
    }
}

#[test]
fn range_lock_over_a_file_matches_the_shadow() {
    for seed in seeds(400) {
        let dir = temp_dir("range", seed);
        run::<RangeRwLock, _>(seed, ops(), file(&dir));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn whole_rwsem_over_a_file_matches_the_shadow() {
    for seed in seeds(500) {
        let dir = temp_dir("whole", seed);
        run::<WholeRwSem, _>(seed, ops(), file(&dir));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
