//! The page cache: page index -> page, sharded so that its own index is no global bottleneck,
//! bounded, and evicting clean unmapped pages by CLOCK.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::PAGE_SIZE;
use crate::sync::{AtomicBool, Mutex, MutexGuard, Ordering};

/// Shards of the index. A page lives in shard `index % SHARDS`, so a run of pages spreads over
/// all of them.
const SHARDS: usize = 16;

/// One cached page.
pub(crate) struct Page {
    pub(crate) index: u64,
    state: Mutex<PageState>,
    /// Held while the page is written back (Linux's `PG_writeback`): a second write-back of
    /// the page waits, so an older copy can never reach the store after a newer one.
    writeback: Mutex<()>,
    /// CLOCK's reference bit: set on every hit, cleared as the hand passes.
    referenced: AtomicBool,
}

/// A page's contents and flags, behind its own mutex.
pub(crate) struct PageState {
    pub(crate) data: Box<[u8; PAGE_SIZE]>,
    /// Written through a mapping since it was last written back.
    pub(crate) dirty: bool,
    /// Dropped from the cache by a punch, truncate or remap: mappings of it are dead.
    pub(crate) invalidated: bool,
}

impl Page {
    pub(crate) fn new(index: u64, data: Box<[u8; PAGE_SIZE]>) -> Arc<Page> {
        Arc::new(Page {
            index,
            state: Mutex::new(PageState {
                data,
                dirty: false,
                invalidated: false,
            }),
            writeback: Mutex::new(()),
            referenced: AtomicBool::new(false),
        })
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, PageState> {
        self.state.lock()
    }

    /// Serialises write-backs of this page: hold it from the copy until the store has the copy.
    pub(crate) fn writeback(&self) -> MutexGuard<'_, ()> {
        self.writeback.lock()
    }
}

/// A zeroed page buffer, allocated directly on the heap.
pub(crate) fn zeroed_page() -> Box<[u8; PAGE_SIZE]> {
    vec![0u8; PAGE_SIZE]
        .into_boxed_slice()
        .try_into()
        .expect("PAGE_SIZE bytes")
}

struct Shard {
    pages: BTreeMap<u64, Arc<Page>>,
    /// CLOCK's hand: the next page index it looks at.
    hand: u64,
}

pub(crate) struct PageCache {
    shards: Box<[Mutex<Shard>]>,
    shard_capacity: usize,
}

/// What `insert` did.
pub(crate) struct Inserted {
    /// The cached page for the index: the new one, or one another thread inserted first.
    pub(crate) page: Arc<Page>,
    pub(crate) evicted: usize,
}

impl PageCache {
    /// A cache of about `capacity` pages (rounded up to a multiple of the shard count).
    pub(crate) fn new(capacity: usize) -> Self {
        assert!(
            capacity > 0,
            "a page cache needs room for at least one page"
        );
        PageCache {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        pages: BTreeMap::new(),
                        hand: 0,
                    })
                })
                .collect(),
            shard_capacity: capacity.div_ceil(SHARDS),
        }
    }

    fn shard(&self, index: u64) -> MutexGuard<'_, Shard> {
        self.shards[(index % SHARDS as u64) as usize].lock()
    }

    /// The page at `index`, if cached; marks it referenced.
    /// About how many pages the cache holds before it evicts.
    pub(crate) fn capacity(&self) -> usize {
        self.shard_capacity * SHARDS
    }

    pub(crate) fn get(&self, index: u64) -> Option<Arc<Page>> {
        let shard = self.shard(index);
        let page = shard.pages.get(&index)?;
        page.referenced.store(true, Ordering::Relaxed);
        Some(Arc::clone(page))
    }

    /// Caches `page` unless its index is already cached, then evicts down to capacity.
    pub(crate) fn insert(&self, page: Arc<Page>) -> Inserted {
        let mut shard = self.shard(page.index);
        if let Some(existing) = shard.pages.get(&page.index) {
            existing.referenced.store(true, Ordering::Relaxed);
            return Inserted {
                page: Arc::clone(existing),
                evicted: 0,
            };
        }
        shard.pages.insert(page.index, Arc::clone(&page));
        let excess = shard.pages.len().saturating_sub(self.shard_capacity);
        let evicted = if excess > 0 {
            evict(&mut shard, excess)
        } else {
            0
        };
        Inserted { page, evicted }
    }

    /// Removes the pages in `first..=last` and returns them in index order.
    pub(crate) fn remove_range(&self, first: u64, last: u64) -> Vec<Arc<Page>> {
        let mut removed = Vec::new();
        for shard in &self.shards {
            let mut shard = shard.lock();
            let keys: Vec<u64> = shard.pages.range(first..=last).map(|(&k, _)| k).collect();
            removed.extend(keys.iter().filter_map(|k| shard.pages.remove(k)));
        }
        removed.sort_unstable_by_key(|p| p.index);
        removed
    }

    /// The cached pages in `first..=last`, in index order.
    pub(crate) fn range(&self, first: u64, last: u64) -> Vec<Arc<Page>> {
        let mut found = Vec::new();
        for shard in &self.shards {
            found.extend(
                shard
                    .lock()
                    .pages
                    .range(first..=last)
                    .map(|(_, p)| Arc::clone(p)),
            );
        }
        found.sort_unstable_by_key(|p| p.index);
        found
    }

    /// Evicts every clean page that no mapping holds; returns how many.
    pub(crate) fn drop_clean(&self) -> usize {
        let mut dropped = 0;
        for shard in &self.shards {
            let mut shard = shard.lock();
            let before = shard.pages.len();
            shard.pages.retain(|_, page| !evictable(page));
            dropped += before - shard.pages.len();
        }
        dropped
    }

    /// The number of cached pages.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().pages.len()).sum()
    }
}

/// A page may be evicted if nothing but the cache holds it (no mapping, no thread copying it)
/// and it has nothing to write back. Called with its shard locked, so no new holder appears.
fn evictable(page: &Arc<Page>) -> bool {
    Arc::strong_count(page) == 1 && !page.state().dirty
}

/// Evicts up to `want` pages by CLOCK: the hand sweeps in index order, giving referenced pages
/// a second chance and skipping pages that are mapped, in use or dirty. Gives up after two
/// sweeps, leaving the shard over capacity when everything in it is pinned.
fn evict(shard: &mut Shard, want: usize) -> usize {
    let mut evicted = 0;
    let mut steps = 2 * shard.pages.len();
    while evicted < want && steps > 0 {
        steps -= 1;
        let next = shard
            .pages
            .range(shard.hand..)
            .next()
            .or_else(|| shard.pages.iter().next());
        let Some((&index, page)) = next else { break };
        shard.hand = index + 1;
        if Arc::strong_count(page) != 1 || page.referenced.swap(false, Ordering::Relaxed) {
            continue;
        }
        if evictable(page) {
            shard.pages.remove(&index);
            evicted += 1;
        }
    }
    evicted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(index: u64) -> Arc<Page> {
        Page::new(index, zeroed_page())
    }

    #[test]
    fn insert_keeps_the_first_page_for_an_index() {
        let cache = PageCache::new(64);
        let a = cache.insert(page(3)).page;
        let b = cache.insert(page(3)).page;
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(cache.len(), 1);
        assert!(cache.get(4).is_none());
    }

    #[test]
    fn eviction_keeps_the_cache_bounded_and_spares_pinned_and_dirty_pages() {
        let cache = PageCache::new(SHARDS); // one page per shard
        let pinned = cache.insert(page(0)).page;
        cache.insert(page(SHARDS as u64 * 2)).page.state().dirty = true;
        let mut evicted = 0;
        for i in 1..100 {
            evicted += cache.insert(page(i * SHARDS as u64)).evicted;
        }
        assert!(evicted >= 95, "evicted {evicted}");
        // Shard 0 holds the pinned and the dirty page and at most one more.
        assert!(cache.len() <= SHARDS + 2);
        assert!(cache.get(0).is_some());
        assert!(cache.get(SHARDS as u64 * 2).is_some());
        drop(pinned);
    }

    #[test]
    fn range_removal_and_drop_clean() {
        let cache = PageCache::new(1024);
        for i in 0..100 {
            cache.insert(page(i));
        }
        let removed = cache.remove_range(10, 19);
        assert_eq!(
            removed.iter().map(|p| p.index).collect::<Vec<_>>(),
            (10..20).collect::<Vec<_>>()
        );
        assert_eq!(cache.range(0, u64::MAX).len(), 90);
        let kept = cache.get(50).unwrap();
        assert_eq!(cache.drop_clean(), 89);
        assert_eq!(cache.len(), 1);
        drop(kept);
    }
}
