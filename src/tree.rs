//! The augmented interval tree: an AVL tree of inclusive `[start, last]` intervals, ordered by
//! `(start, tie)`, where every node also records the largest `last` in its subtree.
//!
//! Invariants (checked by `check` in the tests):
//! - in-order traversal visits keys `(start, tie)` in strictly increasing order;
//! - `height(n) = 1 + max(height(left), height(right))`, and the two differ by at most one;
//! - `max_last(n) = max(last(n), max_last(left), max_last(right))`.
//!
//! The overlap search prunes on both: a subtree whose `max_last` is below the query's start
//! holds no overlap, and once a node starts after the query's last, neither it nor its right
//! subtree can overlap. A search costs O(log n + k) for k overlaps; insert and remove are
//! O(log n).
//!
//! Nodes live in a slab (`Vec`) and link by index, so the tree needs no `unsafe` and no
//! allocation once the slab has grown to the largest number of live nodes: freed slots are
//! chained through their `left` link and reused first.

/// The index of a node in the tree's slab. Stable from `insert` until `remove`.
pub(crate) type NodeId = u32;

/// The null link.
const NIL: NodeId = NodeId::MAX;

#[derive(Debug)]
struct Slot<T> {
    start: u64,
    last: u64,
    /// Orders nodes with equal `start`; unique among live nodes.
    tie: u64,
    /// Largest `last` in this subtree.
    max_last: u64,
    left: NodeId,
    right: NodeId,
    height: u8,
    /// `None` while the slot is on the free chain.
    value: Option<T>,
}

/// An interval tree of values `T` keyed by inclusive `[start, last]` ranges.
#[derive(Debug)]
pub(crate) struct IntervalTree<T> {
    slots: Vec<Slot<T>>,
    root: NodeId,
    /// Head of the chain of free slots, linked through `left`.
    free: NodeId,
    len: usize,
}

impl<T> IntervalTree<T> {
    pub(crate) const fn new() -> Self {
        IntervalTree {
            slots: Vec::new(),
            root: NIL,
            free: NIL,
            len: 0,
        }
    }

    /// The number of intervals in the tree.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Inserts `[start, last]` with `value`; `(start, tie)` must be unique among live nodes.
    pub(crate) fn insert(&mut self, start: u64, last: u64, tie: u64, value: T) -> NodeId {
        debug_assert!(start <= last);
        let slot = Slot {
            start,
            last,
            tie,
            max_last: last,
            left: NIL,
            right: NIL,
            height: 1,
            value: Some(value),
        };
        let id = if self.free != NIL {
            let id = self.free;
            self.free = self.slots[id as usize].left;
            self.slots[id as usize] = slot;
            id
        } else {
            let id = NodeId::try_from(self.slots.len())
                .ok()
                .filter(|&id| id != NIL)
                .expect("more than u32::MAX - 1 requests queued on one lock");
            self.slots.push(slot);
            id
        };
        self.root = self.insert_at(self.root, id);
        self.len += 1;
        id
    }

    /// Removes node `id`, returning its `(start, last, value)`.
    ///
    /// # Panics
    ///
    /// If `id` is not a live node.
    pub(crate) fn remove(&mut self, id: NodeId) -> (u64, u64, T) {
        let key = self.key(id);
        assert!(
            self.slot(id).value.is_some(),
            "node {id} is not in the tree"
        );
        self.root = self.remove_at(self.root, key);
        self.len -= 1;
        let free = self.free;
        let slot = &mut self.slots[id as usize];
        slot.left = free;
        slot.right = NIL;
        self.free = id;
        let value = slot.value.take().expect("checked above");
        (slot.start, slot.last, value)
    }

    /// The interval of node `id`.
    pub(crate) fn span(&self, id: NodeId) -> (u64, u64) {
        let slot = self.slot(id);
        (slot.start, slot.last)
    }

    /// The value of node `id`.
    pub(crate) fn get(&self, id: NodeId) -> &T {
        self.slot(id)
            .value
            .as_ref()
            .expect("node is not in the tree")
    }

    /// The value of node `id`, mutably.
    pub(crate) fn get_mut(&mut self, id: NodeId) -> &mut T {
        self.slots[id as usize]
            .value
            .as_mut()
            .expect("node is not in the tree")
    }

    /// Calls `f` on every node whose interval overlaps `[start, last]`, in `(start, tie)` order.
    pub(crate) fn for_each_overlap(&mut self, start: u64, last: u64, mut f: impl FnMut(&mut T)) {
        self.visit(self.root, start, last, &mut f);
    }

    /// Whether any node overlapping `[start, last]` satisfies `pred`; stops at the first.
    pub(crate) fn any_overlap(&self, start: u64, last: u64, pred: impl Fn(&T) -> bool) -> bool {
        self.find(self.root, start, last, &pred)
    }

    fn visit(&mut self, n: NodeId, start: u64, last: u64, f: &mut impl FnMut(&mut T)) {
        if n == NIL || self.slot(n).max_last < start {
            return;
        }
        let (left, right) = (self.slot(n).left, self.slot(n).right);
        self.visit(left, start, last, f);
        let slot = &mut self.slots[n as usize];
        if slot.start > last {
            return;
        }
        if slot.last >= start {
            f(slot.value.as_mut().expect("live node"));
        }
        self.visit(right, start, last, f);
    }

    fn find(&self, n: NodeId, start: u64, last: u64, pred: &impl Fn(&T) -> bool) -> bool {
        if n == NIL || self.slot(n).max_last < start {
            return false;
        }
        let slot = self.slot(n);
        if self.find(slot.left, start, last, pred) {
            return true;
        }
        if slot.start > last {
            return false;
        }
        (slot.last >= start && pred(slot.value.as_ref().expect("live node")))
            || self.find(slot.right, start, last, pred)
    }

    fn slot(&self, n: NodeId) -> &Slot<T> {
        &self.slots[n as usize]
    }

    fn key(&self, n: NodeId) -> (u64, u64) {
        (self.slot(n).start, self.slot(n).tie)
    }

    fn height(&self, n: NodeId) -> u8 {
        if n == NIL {
            0
        } else {
            self.slot(n).height
        }
    }

    fn max_last(&self, n: NodeId) -> u64 {
        if n == NIL {
            0
        } else {
            self.slot(n).max_last
        }
    }

    /// Recomputes the height and `max_last` of `n` from its children.
    fn update(&mut self, n: NodeId) {
        let (left, right) = (self.slot(n).left, self.slot(n).right);
        let height = 1 + self.height(left).max(self.height(right));
        let max_last = self
            .slot(n)
            .last
            .max(self.max_last(left))
            .max(self.max_last(right));
        let slot = &mut self.slots[n as usize];
        slot.height = height;
        slot.max_last = max_last;
    }

    fn rotate_right(&mut self, n: NodeId) -> NodeId {
        let l = self.slot(n).left;
        self.slots[n as usize].left = self.slot(l).right;
        self.slots[l as usize].right = n;
        self.update(n);
        self.update(l);
        l
    }

    fn rotate_left(&mut self, n: NodeId) -> NodeId {
        let r = self.slot(n).right;
        self.slots[n as usize].right = self.slot(r).left;
        self.slots[r as usize].left = n;
        self.update(n);
        self.update(r);
        r
    }

    /// Restores the AVL balance and augmentation of `n`, returning the subtree's new root.
    fn rebalance(&mut self, n: NodeId) -> NodeId {
        self.update(n);
        let (left, right) = (self.slot(n).left, self.slot(n).right);
        let (hl, hr) = (self.height(left), self.height(right));
        if hl > hr + 1 {
            if self.height(self.slot(left).left) < self.height(self.slot(left).right) {
                let l = self.rotate_left(left);
                self.slots[n as usize].left = l;
            }
            self.rotate_right(n)
        } else if hr > hl + 1 {
            if self.height(self.slot(right).right) < self.height(self.slot(right).left) {
                let r = self.rotate_right(right);
                self.slots[n as usize].right = r;
            }
            self.rotate_left(n)
        } else {
            n
        }
    }

    fn insert_at(&mut self, n: NodeId, new: NodeId) -> NodeId {
        if n == NIL {
            return new;
        }
        if self.key(new) < self.key(n) {
            let l = self.insert_at(self.slot(n).left, new);
            self.slots[n as usize].left = l;
        } else {
            let r = self.insert_at(self.slot(n).right, new);
            self.slots[n as usize].right = r;
        }
        self.rebalance(n)
    }

    fn remove_at(&mut self, n: NodeId, key: (u64, u64)) -> NodeId {
        assert!(n != NIL, "interval tree corrupted: key {key:?} not found");
        let here = self.key(n);
        if key < here {
            let l = self.remove_at(self.slot(n).left, key);
            self.slots[n as usize].left = l;
        } else if key > here {
            let r = self.remove_at(self.slot(n).right, key);
            self.slots[n as usize].right = r;
        } else {
            let (left, right) = (self.slot(n).left, self.slot(n).right);
            if left == NIL {
                return right;
            }
            if right == NIL {
                return left;
            }
            let (rest, successor) = self.remove_min(right);
            self.slots[successor as usize].left = left;
            self.slots[successor as usize].right = rest;
            return self.rebalance(successor);
        }
        self.rebalance(n)
    }

    /// Unlinks the leftmost node of subtree `n`: returns the subtree's new root and that node.
    fn remove_min(&mut self, n: NodeId) -> (NodeId, NodeId) {
        let left = self.slot(n).left;
        if left == NIL {
            return (self.slot(n).right, n);
        }
        let (rest, min) = self.remove_min(left);
        self.slots[n as usize].left = rest;
        (self.rebalance(n), min)
    }

    /// Checks every invariant in the module docs; returns the in-order `(start, last, tie)`.
    #[cfg(test)]
    pub(crate) fn check(&self) -> Vec<(u64, u64, u64)> {
        fn walk<T>(t: &IntervalTree<T>, n: NodeId, out: &mut Vec<(u64, u64, u64)>) -> (u8, u64) {
            if n == NIL {
                return (0, 0);
            }
            let s = t.slot(n);
            assert!(s.value.is_some(), "free slot {n} linked into the tree");
            let (hl, ml) = walk(t, s.left, out);
            out.push((s.start, s.last, s.tie));
            let (hr, mr) = walk(t, s.right, out);
            assert!(hl.abs_diff(hr) <= 1, "node {n} unbalanced: {hl} vs {hr}");
            assert_eq!(s.height, 1 + hl.max(hr), "node {n} height");
            assert_eq!(s.max_last, s.last.max(ml).max(mr), "node {n} max_last");
            (s.height, s.max_last)
        }
        let mut out = Vec::new();
        walk(self, self.root, &mut out);
        assert_eq!(out.len(), self.len, "len");
        for pair in out.windows(2) {
            assert!(
                (pair[0].0, pair[0].2) < (pair[1].0, pair[1].2),
                "order: {pair:?}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testrng::Rng;

    fn overlaps(tree: &mut IntervalTree<u64>, start: u64, last: u64) -> Vec<u64> {
        let mut found = Vec::new();
        tree.for_each_overlap(start, last, |&mut v| found.push(v));
        found.sort_unstable();
        found
    }

    #[test]
    fn insert_search_remove_small() {
        let mut t = IntervalTree::new();
        let a = t.insert(0, 9, 0, 100);
        let b = t.insert(5, 14, 1, 101);
        let _c = t.insert(20, 29, 2, 102);
        t.check();
        assert_eq!(overlaps(&mut t, 8, 8), vec![100, 101]);
        assert_eq!(overlaps(&mut t, 15, 19), Vec::<u64>::new());
        assert_eq!(overlaps(&mut t, 0, u64::MAX), vec![100, 101, 102]);
        assert_eq!(t.remove(a), (0, 9, 100));
        t.check();
        assert_eq!(overlaps(&mut t, 0, 5), vec![101]);
        assert_eq!(t.span(b), (5, 14));
        assert_eq!(*t.get(b), 101);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn equal_starts_are_ordered_by_tie() {
        let mut t = IntervalTree::new();
        let ids: Vec<_> = (0..50).map(|i| t.insert(7, 7 + i, i, i)).collect();
        assert_eq!(
            t.check().iter().map(|e| e.2).collect::<Vec<_>>(),
            (0..50).collect::<Vec<_>>()
        );
        for id in ids.into_iter().step_by(2) {
            t.remove(id);
            t.check();
        }
        assert_eq!(overlaps(&mut t, 0, 7).len(), 25);
    }

    #[test]
    fn freed_slots_are_reused_without_growing() {
        let mut t = IntervalTree::new();
        let mut ids: Vec<_> = (0..64)
            .map(|i| t.insert(i * 10, i * 10 + 5, i, i))
            .collect();
        let cap = t.slots.len();
        for round in 1..10u64 {
            for id in ids.drain(..) {
                t.remove(id);
            }
            assert_eq!(t.len(), 0);
            ids = (0..64)
                .map(|i| t.insert(i * 7, i * 7 + round, i, i))
                .collect();
            t.check();
            assert_eq!(t.slots.len(), cap, "slab grew although slots were free");
        }
    }

    #[test]
    fn height_stays_logarithmic_for_sorted_inserts() {
        let mut t = IntervalTree::new();
        let n: u64 = if cfg!(miri) { 512 } else { 4096 };
        for i in 0..n {
            t.insert(i, i, i, i);
        }
        t.check();
        // AVL height is below 1.45 log2(n + 2).
        let bound = (1.45 * ((n + 2) as f64).log2()) as u8;
        assert!(
            t.height(t.root) <= bound,
            "height {} > {bound}",
            t.height(t.root)
        );
    }

    /// Random inserts, removes and searches against a plain list.
    #[test]
    fn matches_a_list_under_random_operations() {
        let rounds = if cfg!(miri) { 300 } else { 20_000 };
        for seed in 0..if cfg!(miri) { 2 } else { 8 } {
            let mut rng = Rng::new(seed);
            let mut t = IntervalTree::new();
            let mut model: Vec<(NodeId, u64, u64, u64)> = Vec::new();
            for op in 0..rounds {
                match rng.below(3) {
                    0 | 1 if model.len() < 200 => {
                        let start = rng.below(1000);
                        let last = start + rng.below(100);
                        let id = t.insert(start, last, op, op);
                        model.push((id, start, last, op));
                    }
                    0 | 1 if !model.is_empty() => {
                        let (id, start, last, v) =
                            model.swap_remove(rng.below(model.len() as u64) as usize);
                        assert_eq!(t.remove(id), (start, last, v), "seed {seed} op {op}");
                    }
                    _ => {
                        let start = rng.below(1100);
                        let last = start + rng.below(50);
                        let mut want: Vec<u64> = model
                            .iter()
                            .filter(|m| m.1 <= last && m.2 >= start)
                            .map(|m| m.3)
                            .collect();
                        want.sort_unstable();
                        assert_eq!(overlaps(&mut t, start, last), want, "seed {seed} op {op}");
                        assert_eq!(t.any_overlap(start, last, |_| true), !want.is_empty());
                    }
                }
                if op % 97 == 0 {
                    t.check();
                }
            }
            t.check();
        }
    }

    #[test]
    #[should_panic(expected = "not in the tree")]
    fn removing_a_free_node_panics() {
        let mut t = IntervalTree::new();
        let a = t.insert(0, 1, 0, 0);
        t.remove(a);
        t.remove(a);
    }

    /// The checker itself must catch a broken augmentation.
    #[test]
    #[should_panic(expected = "max_last")]
    fn check_catches_a_stale_max_last() {
        let mut t = IntervalTree::new();
        for i in 0..8 {
            t.insert(i, i, i, i);
        }
        let root = t.root;
        t.slots[root as usize].max_last = 3;
        t.check();
    }
}
