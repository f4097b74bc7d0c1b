//! The augmented interval tree: a B+tree of inclusive `[start, last]` intervals keyed by
//! `(start, tie)`, where every child pointer also records the largest `last` below it.
//!
//! Why a B+tree: an overlap search or an insert touches one node per level, and a node is a few
//! contiguous arrays that the CPU scans in cache; a binary tree takes one cache miss per level
//! of a path three to four times longer (Chinner's point about rbtree-based range locks).
//!
//! Layout: leaves hold up to [`B`] entries sorted by key, in parallel arrays; an inner node
//! holds up to [`B`] children with, per child, a lower bound of its keys and the largest `last`
//! in its subtree. Nodes live in two slabs (`Vec`s) and link by index, so there is no `unsafe`
//! here, and nothing is allocated once the slabs have grown, apart from what [`reserve`] asks for.
//!
//! Invariants (checked by `check` in the tests):
//! - every leaf is at the same depth (`height` inner levels above it);
//! - keys are strictly increasing in in-order traversal; the entries below child `i` of an
//!   inner node are `>= keys[i]` (for `i >= 1`) and `< keys[i + 1]`;
//! - `max_last[i]` is the largest `last` below child `i`;
//! - no node is empty, except a root leaf when the tree is empty.
//!
//! Removal does not rebalance (a node is freed when it empties); instead a tree that has become
//! sparse after a burst is rebuilt compactly, and an empty tree gives back memory above
//! [`RETAIN_BYTES`], so a burst does not pin its peak memory while steady state allocates
//! nothing.
//!
//! [`reserve`]: IntervalTree::reserve

/// Entries per leaf, and children per inner node.
pub(crate) const B: usize = 16;

/// Memory an emptied tree keeps for reuse (hysteresis against allocating on every burst).
pub(crate) const RETAIN_BYTES: usize = 16 << 10;

/// Index of a node in its slab.
type Idx = u32;

/// No node.
const NIL: Idx = Idx::MAX;

/// Deepest tree: `B / 2` children per split node, so 12 inner levels exceed `u32` nodes.
const MAX_HEIGHT: usize = 12;

/// A key: start, then a tie-break unique among entries with the same start.
pub(crate) type Key = (u64, u64);

#[derive(Clone)]
struct Leaf<V> {
    len: u8,
    /// Next free leaf, while this one is on the free chain.
    next_free: Idx,
    /// The entries in key order. One array of records rather than one array per field: an
    /// insert or remove moves the tail of the leaf with one copy instead of three.
    e: [LeafEntry<V>; B],
}

/// An entry: its key is `(start, val.tie())`, so a leaf entry of the lock is 32 bytes, and
/// leaves move fewer bytes when they shift.
#[derive(Clone, Copy, Default)]
struct LeafEntry<V> {
    start: u64,
    last: u64,
    val: V,
}

impl<V: Tied> LeafEntry<V> {
    fn key(&self) -> Key {
        (self.start, self.val.tie())
    }

    /// `self.key() == key`, reading the tie only when the starts are equal.
    #[inline]
    fn has_key(&self, key: Key) -> bool {
        self.start == key.0 && self.val.tie() == key.1
    }

    /// `self.key() > key`, reading the tie only when the starts are equal.
    #[inline]
    fn is_after(&self, key: Key) -> bool {
        self.start > key.0 || (self.start == key.0 && self.val.tie() > key.1)
    }
}

/// A value in the tree, which carries the tie-break of its entry's key.
pub(crate) trait Tied: Copy + Default {
    fn tie(&self) -> u64;
}

#[derive(Clone)]
struct Inner {
    len: u8,
    next_free: Idx,
    /// `(starts[i], ties[i])` (for `i >= 1`) is a lower bound of the keys below child `i`;
    /// index 0 is not used for searching.
    starts: [u64; B],
    ties: [u64; B],
    max_last: [u64; B],
    child: [Idx; B],
}

/// An interval tree of values `V` keyed by `(start, tie)`, each with an inclusive `last`.
pub(crate) struct IntervalTree<V> {
    leaves: Vec<Leaf<V>>,
    inners: Vec<Inner>,
    free_leaf: Idx,
    free_inner: Idx,
    /// Nodes on the free chains.
    free_leaves: usize,
    free_inners: usize,
    root: Idx,
    /// Inner levels above the leaves (0: the root is a leaf).
    height: usize,
    len: usize,
    /// Inserts that are known to need no allocation: set by [`reserve`](Self::reserve) when it
    /// counts the spare nodes, cleared by a split. An insert without a split takes no node and
    /// a removal only frees them, so neither makes it wrong.
    headroom: usize,
}

/// One step of a root-to-leaf path: an inner node and the child taken.
#[derive(Clone, Copy)]
struct Step {
    node: Idx,
    child: u32,
}

impl Step {
    const NONE: Step = Step {
        node: NIL,
        child: 0,
    };

    fn at(node: Idx, child: usize) -> Step {
        Step {
            node,
            child: child as u32,
        }
    }
}

impl<V: Tied> IntervalTree<V> {
    pub(crate) const fn new() -> Self {
        IntervalTree {
            leaves: Vec::new(),
            inners: Vec::new(),
            free_leaf: NIL,
            free_inner: NIL,
            free_leaves: 0,
            free_inners: 0,
            root: NIL,
            height: 0,
            len: 0,
            headroom: 0,
        }
    }

    /// The number of entries.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Bytes held by the slabs.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.leaves.capacity() * core::mem::size_of::<Leaf<V>>()
            + self.inners.capacity() * core::mem::size_of::<Inner>()
    }

    /// Makes sure that `inserts` calls of [`insert`](Self::insert) will not allocate, so that
    /// a caller can reserve before it changes any state of its own.
    ///
    /// # Panics
    ///
    /// If the memory cannot be had (before anything in the tree changes).
    #[inline]
    pub(crate) fn reserve(&mut self, inserts: usize) {
        if inserts > self.headroom {
            self.reserve_nodes(inserts);
        }
    }

    /// [`reserve`](Self::reserve) by counting the spare nodes.
    #[cold]
    #[inline(never)]
    fn reserve_nodes(&mut self, inserts: usize) {
        // An insert may split one node per level and add a root: one leaf and `height + 1`
        // inner nodes at most. The root splits again only after its two halves gained
        // `B - 2` children, each a split of at least `B / 2` inserts, so `k` inserts raise the
        // height by at most `1 + k / 64`.
        let leaves = inserts + usize::from(self.root == NIL);
        let inners = inserts * (self.height + 2 + inserts / 64);
        let spare_leaves = self.free_leaves + (self.leaves.capacity() - self.leaves.len());
        let spare_inners = self.free_inners + (self.inners.capacity() - self.inners.len());
        if spare_leaves < leaves || spare_inners < inners {
            // Beyond the current length, what the free chains cannot give.
            self.grow(
                leaves.saturating_sub(self.free_leaves),
                inners.saturating_sub(self.free_inners),
            );
        }
        self.headroom = inserts;
    }

    #[cold]
    fn grow(&mut self, leaves: usize, inners: usize) {
        // At least double, so that growth is amortised; `try_reserve` so that running out of
        // memory is a panic with a message rather than an abort.
        let leaves = leaves.max(self.leaves.len()).max(4);
        let inners = inners.max(self.inners.len()).max(2);
        assert!(
            !(self.leaves.len() + leaves >= NIL as usize
                || self.inners.len() + inners >= NIL as usize),
            "range lock: more than {} tree nodes",
            NIL - 1
        );
        if self.leaves.try_reserve(leaves).is_err() || self.inners.try_reserve(inners).is_err() {
            out_of_memory();
        }
    }

    fn new_leaf(&mut self) -> Idx {
        let leaf = Leaf {
            len: 0,
            next_free: NIL,
            e: [LeafEntry::default(); B],
        };
        if self.free_leaf == NIL {
            debug_assert!(
                self.leaves.len() < self.leaves.capacity(),
                "insert without reserve"
            );
            self.leaves.push(leaf);
            (self.leaves.len() - 1) as Idx
        } else {
            let id = self.free_leaf;
            self.free_leaf = self.leaves[id as usize].next_free;
            self.free_leaves -= 1;
            self.leaves[id as usize] = leaf;
            id
        }
    }

    fn new_inner(&mut self) -> Idx {
        let inner = Inner {
            len: 0,
            next_free: NIL,
            starts: [0; B],
            ties: [0; B],
            max_last: [0; B],
            child: [NIL; B],
        };
        if self.free_inner == NIL {
            debug_assert!(
                self.inners.len() < self.inners.capacity(),
                "insert without reserve"
            );
            self.inners.push(inner);
            (self.inners.len() - 1) as Idx
        } else {
            let id = self.free_inner;
            self.free_inner = self.inners[id as usize].next_free;
            self.free_inners -= 1;
            self.inners[id as usize] = inner;
            id
        }
    }

    fn free_leaf(&mut self, id: Idx) {
        self.leaves[id as usize].len = 0;
        self.leaves[id as usize].next_free = self.free_leaf;
        self.free_leaf = id;
        self.free_leaves += 1;
    }

    fn free_inner(&mut self, id: Idx) {
        self.inners[id as usize].len = 0;
        self.inners[id as usize].next_free = self.free_inner;
        self.free_inner = id;
        self.free_inners += 1;
    }

    /// The child of inner node `n` whose key range holds `key`.
    #[inline(always)]
    fn child_for(&self, n: Idx, key: Key) -> usize {
        let inner = &self.inners[n as usize];
        let len = inner.len as usize;
        let mut i = 1;
        while i < len && inner.starts[i] < key.0 {
            i += 1;
        }
        while i < len && inner.starts[i] == key.0 && inner.ties[i] <= key.1 {
            i += 1;
        }
        i - 1
    }

    /// The largest `last` in leaf `n`.
    fn leaf_max(&self, n: Idx) -> u64 {
        let leaf = &self.leaves[n as usize];
        leaf.e[..leaf.len as usize]
            .iter()
            .map(|e| e.last)
            .max()
            .unwrap_or(0)
    }

    /// The largest `last` below inner node `n`.
    fn inner_max(&self, n: Idx) -> u64 {
        let inner = &self.inners[n as usize];
        inner.max_last[..inner.len as usize]
            .iter()
            .copied()
            .max()
            .unwrap_or(0)
    }

    /// Inserts `[start, last]` under key `(start, tie)`, which must not be in the tree. Does
    /// not allocate if [`reserve`](Self::reserve) was called for it.
    pub(crate) fn insert(&mut self, start: u64, tie: u64, last: u64, val: V) {
        debug_assert!(start <= last);
        self.reserve(1);
        let key = (start, tie);
        if self.root == NIL {
            self.root = self.new_leaf();
            self.height = 0;
        }
        let mut path = [Step::NONE; MAX_HEIGHT];
        let mut n = self.root;
        for step in &mut path[..self.height] {
            let i = self.child_for(n, key);
            let inner = &mut self.inners[n as usize];
            inner.max_last[i] = inner.max_last[i].max(last);
            *step = Step::at(n, i);
            n = inner.child[i];
        }
        let pos = leaf_pos(&self.leaves[n as usize], key);
        self.insert_at(&path[..self.height], n, pos, key, last, val);
    }

    /// Inserts the entry at `pos` of leaf `n`, at the end of `path` (whose bounds already
    /// cover it), splitting the leaf if it is full.
    #[inline]
    fn insert_at(&mut self, path: &[Step], n: Idx, pos: usize, key: Key, last: u64, val: V) {
        self.len += 1;
        let leaf = &mut self.leaves[n as usize];
        if (leaf.len as usize) < B {
            leaf_insert(leaf, pos, key, last, val);
        } else {
            self.split_leaf(path, n, pos, key, last, val);
        }
    }

    /// [`insert_at`](Self::insert_at) a full leaf: the upper half moves to a new right
    /// sibling, then the entry goes in its half.
    #[cold]
    #[inline(never)]
    fn split_leaf(&mut self, path: &[Step], n: Idx, pos: usize, key: Key, last: u64, val: V) {
        self.headroom = 0;
        let right = self.new_leaf();
        let half = B / 2;
        let (l, r) = two_leaves(&mut self.leaves, n, right);
        r.e[..half].copy_from_slice(&l.e[half..]);
        r.len = half as u8;
        l.len = half as u8;
        if pos <= half {
            leaf_insert(l, pos, key, last, val);
        } else {
            leaf_insert(r, pos - half, key, last, val);
        }
        let sep = r.e[0].key();
        let (left_max, right_max) = (self.leaf_max(n), self.leaf_max(right));
        self.add_child(path, n, left_max, sep, right, right_max);
    }

    /// Inserts `[start, last]` under key `(start, tie)`, which must not be in the tree, unless
    /// entries that overlap it have values that `blocks`: then nothing changes, and the
    /// number of those entries is returned (just 1 with `first_only`). Counts and inserts
    /// in one descent. Does not allocate if [`reserve`](Self::reserve) was called for it.
    #[inline]
    pub(crate) fn insert_unless(
        &mut self,
        start: u64,
        tie: u64,
        last: u64,
        val: V,
        first_only: bool,
        blocks: impl Fn(&V) -> bool,
    ) -> usize {
        debug_assert!(start <= last);
        let key = (start, tie);
        if self.root == NIL {
            self.insert(start, tie, last, val);
            return 0;
        }
        let mut path = [Step::NONE; MAX_HEIGHT];
        let mut count = 0;
        let mut n = self.root;
        for (level, step) in (0..self.height).rev().zip(&mut path) {
            // One pass over the children: the one the key goes to (the last whose lower bound
            // is not above the key), and the others that may hold overlapping entries (those
            // before it whose bound reaches `start`, those after it that start by `last`).
            let inner = &self.inners[n as usize];
            let len = inner.len as usize;
            let mut counted = |j: usize| {
                if inner.max_last[j] >= start {
                    let child = inner.child[j];
                    count += self.count_overlaps(child, level, start, last, first_only, &blocks);
                }
                first_only && count > 0
            };
            let mut i = 0;
            let mut j = 1;
            while j < len
                && (inner.starts[j] < key.0 || (inner.starts[j] == key.0 && inner.ties[j] <= key.1))
            {
                if counted(i) {
                    return count;
                }
                i = j;
                j += 1;
            }
            while j < len && inner.starts[j] <= last {
                if counted(j) {
                    return count;
                }
                j += 1;
            }
            *step = Step::at(n, i);
            n = inner.child[i];
        }
        let leaf = &self.leaves[n as usize];
        let len = leaf.len as usize;
        let mut pos = len;
        for j in 0..len {
            let e = &leaf.e[j];
            if e.start > last {
                pos = pos.min(j);
                break;
            }
            if pos == len && e.is_after(key) {
                pos = j;
            }
            if e.last >= start && blocks(&e.val) {
                count += 1;
                if first_only {
                    return count;
                }
            }
        }
        if count > 0 {
            return count;
        }
        if len == B {
            // Before anything changes: the split may need nodes.
            self.reserve(1);
        }
        let path = &path[..self.height];
        for &Step { node, child } in path {
            let max = &mut self.inners[node as usize].max_last[child as usize];
            *max = (*max).max(last);
        }
        self.insert_at(path, n, pos, key, last, val);
        0
    }

    /// The number of entries below node `n` (`level` levels above the leaves) that overlap
    /// `[start, last]` and have values that `blocks`; with `first_only`, at most 1.
    fn count_overlaps(
        &self,
        n: Idx,
        level: usize,
        start: u64,
        last: u64,
        first_only: bool,
        blocks: &impl Fn(&V) -> bool,
    ) -> usize {
        let mut count = 0;
        if level == 0 {
            let leaf = &self.leaves[n as usize];
            for e in &leaf.e[..leaf.len as usize] {
                if e.start > last {
                    break;
                }
                if e.last >= start && blocks(&e.val) {
                    count += 1;
                    if first_only {
                        break;
                    }
                }
            }
            return count;
        }
        let inner = &self.inners[n as usize];
        for i in 0..inner.len as usize {
            if i > 0 && inner.starts[i] > last {
                break;
            }
            if inner.max_last[i] >= start {
                count +=
                    self.count_overlaps(inner.child[i], level - 1, start, last, first_only, blocks);
                if first_only && count > 0 {
                    break;
                }
            }
        }
        count
    }

    /// After node `left` split off `right` (with lower bound `sep`), records `right` in the
    /// parent at the end of `path`, splitting upwards as needed.
    fn add_child(
        &mut self,
        path: &[Step],
        left: Idx,
        left_max: u64,
        sep: Key,
        right: Idx,
        right_max: u64,
    ) {
        let Some((&Step { node: p, child }, above)) = path.split_last() else {
            // `left` was the root: a new root above both.
            let root = self.new_inner();
            let inner = &mut self.inners[root as usize];
            inner.len = 2;
            (inner.starts[1], inner.ties[1]) = sep;
            inner.child[..2].copy_from_slice(&[left, right]);
            inner.max_last[..2].copy_from_slice(&[left_max, right_max]);
            self.root = root;
            self.height += 1;
            debug_assert!(self.height <= MAX_HEIGHT);
            return;
        };
        let i = child as usize;
        let inner = &mut self.inners[p as usize];
        inner.max_last[i] = left_max;
        let len = inner.len as usize;
        if len < B {
            inner_insert(inner, i + 1, sep, right_max, right);
            return;
        }
        let sibling = self.new_inner();
        let half = B / 2;
        let (l, r) = two_inners(&mut self.inners, p, sibling);
        r.starts[..half].copy_from_slice(&l.starts[half..]);
        r.ties[..half].copy_from_slice(&l.ties[half..]);
        r.max_last[..half].copy_from_slice(&l.max_last[half..]);
        r.child[..half].copy_from_slice(&l.child[half..]);
        r.len = half as u8;
        l.len = half as u8;
        if i < half {
            inner_insert(l, i + 1, sep, right_max, right);
        } else {
            inner_insert(r, i + 1 - half, sep, right_max, right);
        }
        let up = (r.starts[0], r.ties[0]);
        let (left_max, right_max) = (self.inner_max(p), self.inner_max(sibling));
        self.add_child(above, p, left_max, up, sibling, right_max);
    }

    /// Descends to the leaf that holds `key`, recording the path; returns the leaf and the
    /// entry's position in it, if present.
    fn find(&self, key: Key, path: &mut [Step; MAX_HEIGHT]) -> Option<(Idx, usize)> {
        if self.root == NIL {
            return None;
        }
        let mut n = self.root;
        for step in &mut path[..self.height] {
            let i = self.child_for(n, key);
            *step = Step::at(n, i);
            n = self.inners[n as usize].child[i];
        }
        let leaf = &self.leaves[n as usize];
        (0..leaf.len as usize)
            .find(|&j| leaf.e[j].has_key(key))
            .map(|j| (n, j))
    }

    /// The `last` and value of entry `(start, tie)`.
    #[cfg(test)]
    pub(crate) fn get(&self, start: u64, tie: u64) -> Option<(u64, &V)> {
        let mut path = [Step::NONE; MAX_HEIGHT];
        let (n, j) = self.find((start, tie), &mut path)?;
        let leaf = &self.leaves[n as usize];
        Some((leaf.e[j].last, &leaf.e[j].val))
    }

    /// The value of entry `(start, tie)`, mutably.
    pub(crate) fn get_mut(&mut self, start: u64, tie: u64) -> Option<&mut V> {
        let mut path = [Step::NONE; MAX_HEIGHT];
        let (n, j) = self.find((start, tie), &mut path)?;
        Some(&mut self.leaves[n as usize].e[j].val)
    }

    /// Removes entry `(start, tie)`, returning its `last` and value.
    #[inline]
    pub(crate) fn remove(&mut self, start: u64, tie: u64) -> Option<(u64, V)> {
        if self.root == NIL {
            return None;
        }
        // The common case: the leaf keeps entries and the bound above it stays. One descent,
        // no path kept; anything else takes the path again.
        let key = (start, tie);
        let mut n = self.root;
        let mut bound = u64::MAX;
        for _ in 0..self.height {
            let i = self.child_for(n, key);
            let inner = &self.inners[n as usize];
            bound = inner.max_last[i];
            n = inner.child[i];
        }
        let leaf = &mut self.leaves[n as usize];
        let len = leaf.len as usize;
        let j = (0..len).find(|&j| leaf.e[j].has_key(key))?;
        let (last, val) = (leaf.e[j].last, leaf.e[j].val);
        if self.height > 0 && (len == 1 || last == bound) {
            return self.remove_along_path(key);
        }
        shift_left(&mut leaf.e, j, len);
        leaf.len -= 1;
        self.len -= 1;
        Some((last, val))
    }

    /// [`remove`](Self::remove) of an entry whose leaf empties or whose `last` bounds the
    /// leaf: the bounds above are lowered, an empty leaf leaves its parent.
    #[cold]
    #[inline(never)]
    fn remove_along_path(&mut self, key: Key) -> Option<(u64, V)> {
        let mut path = [Step::NONE; MAX_HEIGHT];
        let (n, j) = self.find(key, &mut path)?;
        let leaf = &mut self.leaves[n as usize];
        let len = leaf.len as usize;
        let (last, val) = (leaf.e[j].last, leaf.e[j].val);
        shift_left(&mut leaf.e, j, len);
        leaf.len -= 1;
        self.len -= 1;
        let path = &path[..self.height];
        if let Some(&Step { node, child }) = path.last() {
            if leaf.len == 0 {
                self.free_leaf(n);
                self.unlink_child(path);
            } else if self.inners[node as usize].max_last[child as usize] == last {
                // The removed entry was the leaf's maximum: lower the bounds above.
                let max = self.leaf_max(n);
                self.lower_max(path, max);
            }
        }
        self.collapse_root();
        Some((last, val))
    }

    /// Removes the child at the end of `path` (already freed) from its parent.
    fn unlink_child(&mut self, path: &[Step]) {
        let Some((&Step { node: p, child }, above)) = path.split_last() else {
            return;
        };
        let i = child as usize;
        let inner = &mut self.inners[p as usize];
        let len = inner.len as usize;
        shift_left(&mut inner.starts, i, len);
        shift_left(&mut inner.ties, i, len);
        shift_left(&mut inner.max_last, i, len);
        shift_left(&mut inner.child, i, len);
        inner.len -= 1;
        if inner.len == 0 {
            self.free_inner(p);
            self.unlink_child(above);
        } else {
            let max = self.inner_max(p);
            self.lower_max(above, max);
        }
    }

    /// Sets the bound of the child at the end of `path` to `max`, and on up while it changes
    /// a parent's maximum.
    fn lower_max(&mut self, path: &[Step], mut max: u64) {
        for &Step { node, child } in path.iter().rev() {
            let child = child as usize;
            let inner = &mut self.inners[node as usize];
            if inner.max_last[child] == max {
                return;
            }
            inner.max_last[child] = max;
            max = self.inner_max(node);
        }
    }

    /// Drops root levels with a single child.
    fn collapse_root(&mut self) {
        while self.height > 0 && self.inners[self.root as usize].len == 1 {
            let old = self.root;
            self.root = self.inners[old as usize].child[0];
            self.free_inner(old);
            self.height -= 1;
        }
    }

    /// Calls `f(start, last, tie, value)` on every entry whose interval overlaps
    /// `[start, last]`, in key order. Stops early if `f` returns `false`.
    #[inline]
    pub(crate) fn for_each_overlap(
        &mut self,
        start: u64,
        last: u64,
        mut f: impl FnMut(u64, u64, u64, &mut V) -> bool,
    ) {
        if self.root != NIL {
            self.visit(self.root, self.height, start, last, &mut f);
        }
    }

    fn visit(
        &mut self,
        n: Idx,
        level: usize,
        start: u64,
        last: u64,
        f: &mut impl FnMut(u64, u64, u64, &mut V) -> bool,
    ) -> bool {
        if level == 0 {
            let leaf = &mut self.leaves[n as usize];
            for j in 0..leaf.len as usize {
                let e = &mut leaf.e[j];
                if e.start > last {
                    break;
                }
                if e.last >= start && !f(e.start, e.last, e.val.tie(), &mut e.val) {
                    return false;
                }
            }
            return true;
        }
        let len = self.inners[n as usize].len as usize;
        for i in 0..len {
            let inner = &self.inners[n as usize];
            if i > 0 && inner.starts[i] > last {
                break;
            }
            if inner.max_last[i] >= start {
                let child = inner.child[i];
                if !self.visit(child, level - 1, start, last, f) {
                    return false;
                }
            }
        }
        true
    }

    /// Whether any entry overlapping `[start, last]` satisfies `pred`.
    pub(crate) fn any_overlap(&self, start: u64, last: u64, pred: impl Fn(&V) -> bool) -> bool {
        self.count(start, last, true, pred) > 0
    }

    /// The number of entries overlapping `[start, last]` that satisfy `pred`; with
    /// `first_only`, at most 1.
    pub(crate) fn count(
        &self,
        start: u64,
        last: u64,
        first_only: bool,
        pred: impl Fn(&V) -> bool,
    ) -> usize {
        if self.root == NIL {
            return 0;
        }
        self.count_overlaps(self.root, self.height, start, last, first_only, &pred)
    }

    /// Gives memory back after a burst: an empty tree keeps at most [`RETAIN_BYTES`]; a tree
    /// whose leaves are on average less than an eighth full is rebuilt compactly. Never
    /// allocates when it cannot (the rebuild is skipped then).
    #[inline]
    pub(crate) fn trim(&mut self) {
        if self.len == 0 {
            if self.heap_bytes() > RETAIN_BYTES {
                *self = IntervalTree::new();
            }
            return;
        }
        let live_leaves = self.leaves.len() - self.free_leaves;
        if live_leaves >= 8 && self.len * 8 < live_leaves * B {
            self.rebuild();
        }
    }

    /// Rebuilds the tree with leaves three quarters full, in slabs just big enough.
    #[cold]
    fn rebuild(&mut self) {
        let mut entries: Vec<(u64, u64, u64, V)> = Vec::new();
        if entries.try_reserve_exact(self.len).is_err() {
            return;
        }
        self.for_each_overlap(0, u64::MAX, |s, l, t, v| {
            entries.push((s, t, l, *v));
            true
        });
        let mut fresh = IntervalTree::new();
        let per_leaf = B * 3 / 4;
        let leaves = entries.len().div_ceil(per_leaf);
        if fresh.leaves.try_reserve_exact(leaves).is_err()
            || fresh
                .inners
                .try_reserve_exact(leaves.div_ceil(per_leaf - 1) * 2 + 2)
                .is_err()
        {
            return;
        }
        // Bottom-up: full-ish leaves, then inner levels over them.
        let mut level: Vec<(Idx, Key, u64)> = Vec::new();
        if level.try_reserve_exact(leaves).is_err() {
            return;
        }
        for chunk in entries.chunks(per_leaf) {
            let id = fresh.new_leaf();
            let leaf = &mut fresh.leaves[id as usize];
            for (j, &(s, t, l, v)) in chunk.iter().enumerate() {
                debug_assert_eq!(v.tie(), t);
                leaf.e[j] = LeafEntry {
                    start: s,
                    last: l,
                    val: v,
                };
            }
            leaf.len = chunk.len() as u8;
            let max = chunk.iter().map(|e| e.2).max().unwrap_or(0);
            level.push((id, (chunk[0].0, chunk[0].1), max));
        }
        let mut height = 0;
        while level.len() > 1 {
            let mut up = Vec::new();
            if up
                .try_reserve_exact(level.len().div_ceil(per_leaf))
                .is_err()
            {
                return;
            }
            for chunk in level.chunks(per_leaf) {
                if fresh.inners.len() == fresh.inners.capacity()
                    && fresh.inners.try_reserve(1).is_err()
                {
                    return;
                }
                let id = fresh.new_inner();
                let inner = &mut fresh.inners[id as usize];
                for (i, &(child, key, max)) in chunk.iter().enumerate() {
                    (inner.starts[i], inner.ties[i]) = key;
                    inner.child[i] = child;
                    inner.max_last[i] = max;
                }
                inner.len = chunk.len() as u8;
                let max = chunk.iter().map(|c| c.2).max().unwrap_or(0);
                up.push((id, chunk[0].1, max));
            }
            level = up;
            height += 1;
        }
        fresh.root = level[0].0;
        fresh.height = height;
        fresh.len = entries.len();
        *self = fresh;
    }

    /// Checks every invariant in the module docs; for tests.
    #[cfg(test)]
    pub(crate) fn check(&self) {
        if self.root == NIL {
            assert_eq!(self.len, 0);
            return;
        }
        let mut count = 0;
        let mut prev: Option<Key> = None;
        self.check_node(self.root, self.height, None, None, &mut count, &mut prev);
        assert_eq!(count, self.len, "entry count");
        if self.height == 0 && self.len == 0 {
            return;
        }
        let live = self.leaves.len() - self.free_leaves + self.inners.len() - self.free_inners;
        let mut reachable = 0;
        self.count_nodes(self.root, self.height, &mut reachable);
        assert_eq!(live, reachable, "leaked or doubly linked nodes");
    }

    #[cfg(test)]
    fn count_nodes(&self, n: Idx, level: usize, count: &mut usize) {
        *count += 1;
        if level > 0 {
            let inner = &self.inners[n as usize];
            for &c in &inner.child[..inner.len as usize] {
                self.count_nodes(c, level - 1, count);
            }
        }
    }

    /// Checks the subtree at `n`; returns its largest `last`.
    #[cfg(test)]
    fn check_node(
        &self,
        n: Idx,
        level: usize,
        low: Option<Key>,
        high: Option<Key>,
        count: &mut usize,
        prev: &mut Option<Key>,
    ) -> u64 {
        if level == 0 {
            let leaf = &self.leaves[n as usize];
            assert!(leaf.len > 0 || n == self.root, "empty leaf below the root");
            let mut max = 0;
            for j in 0..leaf.len as usize {
                let key = leaf.e[j].key();
                assert!(leaf.e[j].start <= leaf.e[j].last, "inverted interval");
                assert!(prev.is_none_or(|p| p < key), "keys out of order");
                assert!(low.is_none_or(|l| l <= key), "key below its lower bound");
                assert!(high.is_none_or(|h| key < h), "key above its upper bound");
                *prev = Some(key);
                max = max.max(leaf.e[j].last);
                *count += 1;
            }
            return max;
        }
        let inner = &self.inners[n as usize];
        let len = inner.len as usize;
        assert!(len > 0, "empty inner node");
        assert!(n != self.root || len > 1, "root with one child");
        let mut max = 0;
        for i in 0..len {
            let lo = if i == 0 {
                low
            } else {
                Some((inner.starts[i], inner.ties[i]))
            };
            let hi = if i + 1 < len {
                Some((inner.starts[i + 1], inner.ties[i + 1]))
            } else {
                high
            };
            let m = self.check_node(inner.child[i], level - 1, lo, hi, count, prev);
            assert_eq!(inner.max_last[i], m, "stale max_last");
            max = max.max(m);
        }
        max
    }
}

#[cold]
#[inline(never)]
fn out_of_memory() -> ! {
    panic!("range lock: out of memory for its request tree")
}

/// Where `key` goes in `leaf`: after every smaller key.
#[inline]
fn leaf_pos<V: Tied>(leaf: &Leaf<V>, key: Key) -> usize {
    let len = leaf.len as usize;
    (0..len).find(|&j| leaf.e[j].is_after(key)).unwrap_or(len)
}

fn leaf_insert<V: Tied>(leaf: &mut Leaf<V>, pos: usize, key: Key, last: u64, val: V) {
    debug_assert_eq!(val.tie(), key.1, "an entry's value carries its tie");
    let len = leaf.len as usize;
    shift_right(&mut leaf.e, pos, len);
    leaf.e[pos] = LeafEntry {
        start: key.0,
        last,
        val,
    };
    leaf.len += 1;
}

fn inner_insert(inner: &mut Inner, pos: usize, key: Key, max: u64, child: Idx) {
    let len = inner.len as usize;
    shift_right(&mut inner.starts, pos, len);
    shift_right(&mut inner.ties, pos, len);
    shift_right(&mut inner.max_last, pos, len);
    shift_right(&mut inner.child, pos, len);
    (inner.starts[pos], inner.ties[pos]) = key;
    inner.max_last[pos] = max;
    inner.child[pos] = child;
    inner.len += 1;
}

/// Moves `a[pos..len]` one place right (`len < B`). A loop, not `copy_within`: the runs are
/// a few elements long, and a `memmove` call costs more than moving them (leaf entries too:
/// `memmove` took 4 to 8 % of `held_3` and `held_100` in perf).
#[inline]
fn shift_right<T: Copy>(a: &mut [T; B], pos: usize, len: usize) {
    let mut k = len;
    while k > pos {
        a[k] = a[k - 1];
        k -= 1;
    }
}

/// Moves `a[pos + 1..len]` one place left, over `a[pos]`.
#[inline]
fn shift_left<T: Copy>(a: &mut [T; B], pos: usize, len: usize) {
    for k in pos..len - 1 {
        a[k] = a[k + 1];
    }
}

/// Two distinct leaves of the slab, mutably.
fn two_leaves<V>(slab: &mut [Leaf<V>], a: Idx, b: Idx) -> (&mut Leaf<V>, &mut Leaf<V>) {
    two(slab, a as usize, b as usize)
}

fn two_inners(slab: &mut [Inner], a: Idx, b: Idx) -> (&mut Inner, &mut Inner) {
    two(slab, a as usize, b as usize)
}

fn two<T>(slab: &mut [T], a: usize, b: usize) -> (&mut T, &mut T) {
    assert_ne!(a, b);
    if a < b {
        let (lo, hi) = slab.split_at_mut(b);
        (&mut lo[a], &mut hi[0])
    } else {
        let (lo, hi) = slab.split_at_mut(a);
        (&mut hi[0], &mut lo[b])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testrng::Rng;
    use std::collections::BTreeMap;

    /// The model: key -> (last, value).
    type Model = BTreeMap<Key, (u64, u32)>;

    /// Test values: the tie, and a number.
    impl Tied for (u64, u32) {
        fn tie(&self) -> u64 {
            self.0
        }
    }

    fn overlaps_in(model: &Model, start: u64, last: u64) -> Vec<(u64, u64, u64, u32)> {
        model
            .iter()
            .filter(|(&(s, _), &(l, _))| s <= last && l >= start)
            .map(|(&(s, t), &(l, v))| (s, l, t, v))
            .collect()
    }

    fn overlaps_of(
        tree: &mut IntervalTree<(u64, u32)>,
        start: u64,
        last: u64,
    ) -> Vec<(u64, u64, u64, u32)> {
        let mut out = Vec::new();
        tree.for_each_overlap(start, last, |s, l, t, v| {
            out.push((s, l, t, v.1));
            true
        });
        out
    }

    /// Random inserts, removes, lookups and overlap queries against a `BTreeMap` model, with
    /// the invariants checked after every step; bursts make the tree grow deep and shrink.
    #[test]
    #[allow(clippy::many_single_char_names)] // s, t, l, v: an entry's start, tie, last, value
    fn matches_a_model_under_random_operations() {
        let rounds = if cfg!(miri) { 1 } else { 8 };
        for seed in 0..rounds {
            let mut rng = Rng::new(seed);
            let mut tree = IntervalTree::<(u64, u32)>::new();
            let mut model = Model::new();
            let space = [64, 1_000, 1 << 40][seed as usize % 3];
            let steps = if cfg!(miri) { 300 } else { 6_000 };
            let mut tie = 0u64;
            for step in 0..steps {
                // Phases: grow, churn, shrink.
                let grow = match (step * 3 / steps, rng.below(10)) {
                    (0, r) => r < 8,
                    (1, r) => r < 5,
                    (_, r) => r < 2,
                };
                if grow || model.is_empty() {
                    let start = rng.below(space);
                    let last = start.saturating_add(rng.below(space / 8 + 1)).min(space);
                    // Equal starts are common: the tie orders them.
                    tie += 1;
                    let v = rng.below(1000) as u32;
                    tree.reserve(1);
                    if rng.below(2) == 0 {
                        tree.insert(start, tie, last, (tie, v));
                        model.insert((start, tie), (last, v));
                    } else {
                        // Blocked by overlapping entries with a value divisible by 5.
                        let first_only = rng.below(2) == 0;
                        let blocked = overlaps_in(&model, start, last)
                            .iter()
                            .filter(|o| o.3 % 5 == 0)
                            .count();
                        let want = if first_only { blocked.min(1) } else { blocked };
                        let got = tree.insert_unless(start, tie, last, (tie, v), first_only, |v| {
                            v.1 % 5 == 0
                        });
                        assert_eq!(got, want, "entries blocking [{start}, {last}]");
                        if blocked == 0 {
                            model.insert((start, tie), (last, v));
                        }
                    }
                } else {
                    let i = rng.below(model.len() as u64) as usize;
                    let (&(s, t), &(l, v)) = model.iter().nth(i).unwrap();
                    assert_eq!(tree.get(s, t), Some((l, &(t, v))));
                    assert_eq!(tree.remove(s, t), Some((l, (t, v))));
                    assert_eq!(tree.remove(s, t), None);
                    model.remove(&(s, t));
                }
                if step % 7 == 0 {
                    tree.check();
                }
                let qs = rng.below(space);
                let ql = qs.saturating_add(rng.below(space / 4 + 1));
                assert_eq!(overlaps_of(&mut tree, qs, ql), overlaps_in(&model, qs, ql));
                let want = model
                    .iter()
                    .any(|(&(s, _), &(l, v))| s <= ql && l >= qs && v % 2 == 0);
                assert_eq!(tree.any_overlap(qs, ql, |v| v.1 % 2 == 0), want);
                assert_eq!(tree.len(), model.len());
            }
            tree.check();
        }
    }

    #[test]
    fn an_overlap_walk_can_stop_early_and_modify_values() {
        let mut tree = IntervalTree::<(u64, u32)>::new();
        for i in 0..100u64 {
            tree.insert(i * 10, i, i * 10 + 5, (i, 0));
        }
        let mut seen = 0;
        tree.for_each_overlap(0, u64::MAX, |_, _, _, v| {
            v.1 += 1;
            seen += 1;
            seen < 30
        });
        assert_eq!(seen, 30);
        assert_eq!(tree.get(290, 29), Some((295, &(29, 1))));
        assert_eq!(tree.get(300, 30), Some((305, &(30, 0))));
        tree.get_mut(300, 30).unwrap().1 = 7;
        assert_eq!(tree.get(300, 30), Some((305, &(30, 7))));
        tree.check();
    }

    #[test]
    fn the_full_range_and_the_top_of_the_space_are_found() {
        let mut tree = IntervalTree::<(u64, u32)>::new();
        tree.insert(0, 0, u64::MAX, (0, 1));
        tree.insert(u64::MAX, 1, u64::MAX, (1, 2));
        for i in 0..40u64 {
            tree.insert(1000 + i, 2 + i, 1000 + i, (2 + i, 3));
        }
        assert_eq!(overlaps_of(&mut tree, u64::MAX, u64::MAX).len(), 2);
        assert_eq!(overlaps_of(&mut tree, 5, 5).len(), 1);
        assert_eq!(overlaps_of(&mut tree, 1010, 1011).len(), 3);
        tree.check();
    }

    /// A burst leaves no more than `RETAIN_BYTES` behind once it is gone, and a sparse tree is
    /// rebuilt small; steady use keeps its memory.
    #[test]
    fn memory_goes_back_after_a_burst() {
        let n = if cfg!(miri) { 500 } else { 100_000 };
        let mut tree = IntervalTree::<(u64, u32)>::new();
        for i in 0..n {
            tree.insert(i * 2, i, i * 2, (i, 0));
        }
        let peak = tree.heap_bytes();
        // Leave one in 64: sparse leaves.
        for i in 0..n {
            if i % 64 != 0 {
                tree.remove(i * 2, i).unwrap();
            }
            if i % 1024 == 0 {
                tree.trim();
            }
        }
        tree.trim();
        tree.check();
        assert!(
            tree.heap_bytes() * 8 < peak,
            "sparse tree kept {} of {peak} bytes",
            tree.heap_bytes()
        );
        for i in (0..n).step_by(64) {
            tree.remove(i * 2, i).unwrap();
        }
        tree.trim();
        assert!(tree.heap_bytes() <= RETAIN_BYTES);
        // Small steady use stays allocated between uses.
        tree.reserve(1);
        tree.insert(1, 1, 1, (1, 1));
        let kept = tree.heap_bytes();
        tree.remove(1, 1);
        tree.trim();
        assert_eq!(tree.heap_bytes(), kept);
    }
}
