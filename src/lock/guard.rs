//! Guards: what a granted request holds, and how it is released.

use core::fmt;
use core::ops::RangeInclusive;

use super::RangeRwLock;
use crate::range::Span;
use crate::tree::NodeId;

/// A queued request whose thread may still unwind before it is granted: dropping it removes
/// the request, so the tree never keeps a pointer to a dead stack frame.
pub(super) struct Pending<'a> {
    pub(super) lock: &'a RangeRwLock,
    pub(super) id: NodeId,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.lock.leave(self.id);
    }
}

/// Where a guard's request lives.
#[derive(Clone, Copy, Debug)]
pub(super) enum Node {
    /// Nowhere: the range is empty.
    Empty,
    /// In the `fast` word (or, if moved since, in `State::moved`).
    Alone,
    /// In the tree.
    Tree(NodeId),
}

/// What a guard holds: its range and where its request lives. (An empty range keeps its
/// position in `start`; the guard stays small, as guards are returned by value.)
#[derive(Clone, Copy, Debug)]
pub(super) struct Hold {
    pub(super) start: u64,
    pub(super) last: u64,
    pub(super) node: Node,
}

impl Hold {
    pub(super) fn new(span: Span, node: Node) -> Hold {
        match span {
            Span::Empty { at } => Hold {
                start: at,
                last: at,
                node,
            },
            Span::Range { start, last } => Hold { start, last, node },
        }
    }

    pub(super) fn span(&self) -> Span {
        match self.node {
            Node::Empty => Span::Empty { at: self.start },
            Node::Alone | Node::Tree(_) => Span::Range {
                start: self.start,
                last: self.last,
            },
        }
    }
}

/// Shared access to a range of a [`RangeRwLock`]; the range is unlocked when it is dropped.
#[must_use = "if unused the range is unlocked at once"]
pub struct RangeReadGuard<'a> {
    pub(super) lock: &'a RangeRwLock,
    pub(super) hold: Hold,
}

/// Exclusive access to a range of a [`RangeRwLock`]; the range is unlocked when it is dropped.
#[must_use = "if unused the range is unlocked at once"]
pub struct RangeWriteGuard<'a> {
    pub(super) lock: &'a RangeRwLock,
    pub(super) hold: Hold,
}

impl RangeReadGuard<'_> {
    /// The locked range, inclusive. An empty request gives an empty range
    /// (`RangeInclusive::is_empty`).
    pub fn range(&self) -> RangeInclusive<u64> {
        self.hold.span().to_inclusive()
    }
}

impl<'a> RangeWriteGuard<'a> {
    /// The locked range, inclusive. An empty request gives an empty range
    /// (`RangeInclusive::is_empty`).
    pub fn range(&self) -> RangeInclusive<u64> {
        self.hold.span().to_inclusive()
    }

    /// Turns this exclusive lock into a shared one over the same range without unlocking it,
    /// and lets in the readers queued behind it (up to the next queued writer on each part of
    /// the range).
    ///
    /// ```
    /// let lock = rangelock::RangeRwLock::new();
    /// let w = lock.write(0..100);
    /// let r = w.downgrade();
    /// assert!(lock.try_read(50..60).is_some());
    /// assert!(lock.try_write(50..60).is_none());
    /// # drop(r);
    /// ```
    pub fn downgrade(self) -> RangeReadGuard<'a> {
        let this = core::mem::ManuallyDrop::new(self);
        let lock = this.lock;
        let hold = this.hold;
        match hold.node {
            Node::Empty => {}
            Node::Alone => lock.downgrade_alone(),
            Node::Tree(id) => {
                let woke = lock.lock_tree().downgrade(id);
                if woke {
                    lock.parker.wake(lock.key());
                }
            }
        }
        RangeReadGuard { lock, hold }
    }
}

impl Drop for RangeReadGuard<'_> {
    fn drop(&mut self) {
        self.lock.release(self.hold.node);
    }
}

impl Drop for RangeWriteGuard<'_> {
    fn drop(&mut self) {
        self.lock.release(self.hold.node);
    }
}

impl fmt::Debug for RangeReadGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RangeReadGuard")
            .field("range", &self.range())
            .finish()
    }
}

impl fmt::Debug for RangeWriteGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RangeWriteGuard")
            .field("range", &self.range())
            .finish()
    }
}
