//! `remap_range`: pages copied from one space (or range) to another.
//!
//! # Lock rule
//!
//! Two spaces are locked in the order of their ids, never their addresses: shared on the
//! source, exclusive on the destination. Within one space one exclusive lock covers both
//! ranges, since a whole-mapping lock cannot be taken twice.

use std::io;

use super::{end_of, invalid, pages_of, AddressSpace, Backing, Exclusive, Held, InvalidateLock};
use super::{PAGE, PAGE_SIZE};
use crate::sync::Ordering;

/// Copies `len` bytes at `src_off` of `src` to `dst_off` of `dst`, replacing what was there
/// (holes stay holes, mappings of replaced pages are unmapped) and extending `dst` as needed.
/// Returns the number of bytes copied.
///
/// Offsets and length must be multiples of [`PAGE_SIZE`], the source range must lie inside the
/// source file, and within one space the two ranges must not overlap; otherwise
/// `InvalidInput`. The copy is atomic with respect to other operations on both ranges: the
/// spaces are locked in the order of their ids (shared on the source, exclusive on the
/// destination), and within one space one exclusive lock covers both ranges. Storage is
/// reserved first, so `StorageFull` changes nothing.
///
/// # Errors
///
/// `InvalidInput` for unaligned or out-of-file ranges (or overlapping ones in one space),
/// including a source range whose `src_off + len` overflows `u64` (it cannot lie inside a
/// file), and a destination range whose `dst_off + len` overflows `u64` or is beyond what the
/// destination's store can hold (no file extends past either); `StorageFull` if the
/// destination cannot reserve its pages; the stores' errors otherwise. Nothing changes on
/// `InvalidInput` or `StorageFull`.
///
/// ```
/// use rangelock::mm::{remap_range, AddressSpace, MemBacking, PAGE_SIZE};
/// let a = AddressSpace::new(MemBacking::new(1 << 20));
/// let b = AddressSpace::new(MemBacking::new(1 << 20));
/// a.write(0, &[5u8; PAGE_SIZE])?;
/// assert_eq!(remap_range(&a, 0, &b, 2 * PAGE_SIZE as u64, PAGE_SIZE as u64)?, PAGE_SIZE as u64);
/// assert_eq!(b.len(), 3 * PAGE_SIZE as u64);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn remap_range<L1, B1, L2, B2>(
    src: &AddressSpace<L1, B1>,
    src_off: u64,
    dst: &AddressSpace<L2, B2>,
    dst_off: u64,
    len: u64,
) -> io::Result<u64>
where
    L1: InvalidateLock,
    B1: Backing,
    L2: InvalidateLock,
    B2: Backing,
{
    for (what, v) in [
        ("source offset", src_off),
        ("destination offset", dst_off),
        ("length", len),
    ] {
        if v % PAGE != 0 {
            return Err(invalid(format!(
                "remap {what} {v} is not a multiple of {PAGE_SIZE}"
            )));
        }
    }
    if len == 0 {
        return Ok(0);
    }
    let (src_end, dst_end) = (end_of(src_off, len)?, end_of(dst_off, len)?);
    dst.check_len(dst_end)?;
    let (src_pages, dst_pages) = (pages_of(src_off, src_end), pages_of(dst_off, dst_end));
    match src.id.cmp(&dst.id) {
        core::cmp::Ordering::Equal => {
            if src_off < dst_end && dst_off < src_end {
                return Err(invalid("remap ranges overlap within one address space"));
            }
            // One lock over both ranges: a whole-mapping rwsem cannot be taken twice.
            let hull = (*src_pages.start()).min(*dst_pages.start())
                ..=(*src_pages.end()).max(*dst_pages.end());
            let held = dst.lock_exclusive(hull);
            remap_locked(src, src_off, &held.0, dst, dst_off, &held, len)
        }
        core::cmp::Ordering::Less => {
            let s = src.lock_shared(src_pages);
            let d = dst.lock_exclusive(dst_pages);
            remap_locked(src, src_off, &s, dst, dst_off, &d, len)
        }
        core::cmp::Ordering::Greater => {
            let d = dst.lock_exclusive(dst_pages);
            let s = src.lock_shared(src_pages);
            remap_locked(src, src_off, &s, dst, dst_off, &d, len)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn remap_locked<L1, B1, L2, B2, G1, G2>(
    src: &AddressSpace<L1, B1>,
    src_off: u64,
    s: &Held<G1>,
    dst: &AddressSpace<L2, B2>,
    dst_off: u64,
    d: &Exclusive<G2>,
    len: u64,
) -> io::Result<u64>
where
    L1: InvalidateLock,
    B1: Backing,
    L2: InvalidateLock,
    B2: Backing,
{
    let src_len = src.len();
    if src_off + len > src_len {
        return Err(invalid(format!(
            "remap source {src_off}..{} is not inside the source file ({src_len} bytes)",
            src_off + len
        )));
    }
    let (first, last) = (src_off / PAGE, (src_off + len) / PAGE - 1);
    let to_dst = |p: u64| p - first + dst_off / PAGE;
    // The source pages with data: stored ones, and dirty cached ones (stored too, as a write
    // fault reserves storage, unless the backing cannot reserve).
    let mut data = Vec::new();
    src.backing.stored_pages(first, last, &mut data)?;
    let cached = src.cache.range(first, last);
    data.extend(cached.iter().filter(|p| p.state().dirty).map(|p| p.index));
    data.sort_unstable();
    data.dedup();
    dst.backing.reserve(&mut data.iter().map(|&p| to_dst(p)))?;
    // Nothing can fail for lack of space from here on. The replaced pages leave the cache
    // first, so that whatever happens below, reads show what the store holds.
    let (dst_first, dst_last) = (to_dst(first), to_dst(last));
    dst.drop_cached(dst_off, dst_off + len, d);
    for &p in &data {
        let page = src.page(p, s)?;
        let copy = page.state().data.clone();
        d.0.check(dst.id, to_dst(p));
        if let Err(e) = dst.backing.write_page(to_dst(p), 0, &copy[..]) {
            // Keep every page written (this one perhaps in part) inside the file.
            dst.shared
                .len
                .fetch_max((to_dst(p) + 1) * PAGE, Ordering::AcqRel);
            return Err(e);
        }
    }
    // Destination pages that the source has no data for become holes.
    let mut stored = Vec::new();
    dst.backing.stored_pages(dst_first, dst_last, &mut stored)?;
    let mut with_data = data.iter().map(|&p| to_dst(p)).peekable();
    for q in stored {
        while with_data.next_if(|&w| w < q).is_some() {}
        if with_data.peek() != Some(&q) {
            dst.backing.punch(q * PAGE, (q + 1) * PAGE)?;
        }
    }
    if dst_off + len > dst.len() {
        // The store's length follows at once, holes at the end included.
        dst.backing.truncate(dst_off + len)?;
    }
    dst.shared.len.fetch_max(dst_off + len, Ordering::AcqRel);
    Ok(len)
}
