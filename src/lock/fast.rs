//! The idle-lock fast path: a request that finds no other request takes the lock alone in the
//! `fast` word, and the first request to arrive while it holds is what moves it into the tree.

use core::ops::{Deref, DerefMut};

use super::queue::{Mode, State};
use super::RangeRwLock;
use crate::sync::{MutexGuard, Ordering};

// The `fast` word: a tag in the low three bits, a claim generation above them.
pub(super) const TAG: u64 = 0b111;
/// No request at all: the next one may take the lock alone, without the tree.
pub(super) const EMPTY: u64 = 0;
/// A request has claimed the lock alone and is publishing its range in `fast_start/last`.
pub(super) const CLAIMED: u64 = 1;
/// One request holds the lock alone, shared, over the published range.
pub(super) const HELD_READ: u64 = 2;
/// One request holds the lock alone, exclusive, over the published range.
pub(super) const HELD_WRITE: u64 = 3;
/// Requests queue in the tree, under the internal mutex.
pub(super) const TREE: u64 = 4;
/// As `TREE`, and the request that held the lock alone now is node `State::moved`.
pub(super) const MOVED: u64 = 5;
/// Every claim adds one generation, so a mover that read the range of an earlier claim fails
/// its compare-exchange instead of moving the wrong range.
pub(super) const GENERATION: u64 = TAG + 1;

impl RangeRwLock {
    /// Takes the lock alone if no request at all is present: the uncontended fast path.
    #[inline]
    pub(super) fn try_alone(&self, start: u64, last: u64, mode: Mode) -> bool {
        let word = self.fast.load(Ordering::Relaxed);
        if word & TAG != EMPTY {
            return false;
        }
        let claimed = (word & !TAG).wrapping_add(GENERATION) | CLAIMED;
        // Acquire: the previous holder's release (fast or through the tree) happens before.
        if self
            .fast
            .compare_exchange(word, claimed, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        self.fast_start.store(start, Ordering::Relaxed);
        self.fast_last.store(last, Ordering::Relaxed);
        let held = match mode {
            Mode::Read => HELD_READ,
            Mode::Write => HELD_WRITE,
        };
        // Release: a mover that sees `held` sees the range stored above.
        self.fast.store(claimed & !TAG | held, Ordering::Release);
        true
    }

    /// Locks the internal mutex with the tree in charge: a request that holds the lock alone
    /// is moved into the tree first (waiting out a claim still publishing its range).
    pub(super) fn lock_tree(&self) -> Tree<'_> {
        let mut state = self.state.lock();
        let mut spins = 0;
        loop {
            let word = self.fast.load(Ordering::Acquire);
            let generation = word & !TAG;
            match word & TAG {
                EMPTY => {
                    let tree = generation | TREE;
                    if self
                        .fast
                        .compare_exchange(word, tree, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                    {
                        break;
                    }
                }
                CLAIMED => crate::sync::spin_wait(&mut spins),
                tag @ (HELD_READ | HELD_WRITE) => {
                    let start = self.fast_start.load(Ordering::Relaxed);
                    let last = self.fast_last.load(Ordering::Relaxed);
                    // Fails if the holder left (or another claim replaced it) meanwhile.
                    let moved = generation | MOVED;
                    if self
                        .fast
                        .compare_exchange(word, moved, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                    {
                        let mode = if tag == HELD_WRITE {
                            Mode::Write
                        } else {
                            Mode::Read
                        };
                        let queued = state
                            .enqueue(start, last, mode, None, false, None)
                            .expect("a waiting request is always queued");
                        debug_assert!(queued.granted, "the lone holder met a conflict");
                        state.moved = Some(queued.id);
                        break;
                    }
                }
                _ => break, // TREE or MOVED
            }
        }
        Tree { lock: self, state }
    }

    /// Releases a request that took the lock alone.
    #[inline]
    pub(super) fn leave_alone(&self) {
        let word = self.fast.load(Ordering::Relaxed);
        if matches!(word & TAG, HELD_READ | HELD_WRITE)
            && self
                .fast
                .compare_exchange(
                    word,
                    word & !TAG | EMPTY,
                    Ordering::Release,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return;
        }
        self.leave_moved();
    }

    /// Releases a request that took the lock alone, which a later request moved into the tree.
    #[cold]
    pub(super) fn leave_moved(&self) {
        let woke = {
            let mut tree = self.state.lock();
            let id = tree.moved.take().expect("a moved request");
            let word = self.fast.load(Ordering::Relaxed);
            debug_assert_eq!(word & TAG, MOVED);
            // Only changed under the mutex now; `Tree::drop` turns it `EMPTY` if that was all.
            self.fast.store(word & !TAG | TREE, Ordering::Relaxed);
            let mut tree = Tree {
                lock: self,
                state: tree,
            };
            tree.leave(id)
        };
        if woke {
            self.parker.wake(self.key());
        }
    }

    /// Downgrades a write request that took the lock alone.
    pub(super) fn downgrade_alone(&self) {
        let word = self.fast.load(Ordering::Relaxed);
        if word & TAG == HELD_WRITE
            && self
                .fast
                .compare_exchange(
                    word,
                    word & !TAG | HELD_READ,
                    Ordering::Release,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return;
        }
        let woke = {
            let mut tree = self.lock_tree();
            let id = tree.moved.expect("a moved request");
            tree.downgrade(id)
        };
        if woke {
            self.parker.wake(self.key());
        }
    }
}

/// The internal state, locked, with the tree in charge of the lock. When it is dropped with
/// no request left, the lock goes back to `EMPTY`, where the fast path works again.
pub(super) struct Tree<'a> {
    pub(super) lock: &'a RangeRwLock,
    pub(super) state: MutexGuard<'a, State>,
}

impl Deref for Tree<'_> {
    type Target = State;

    fn deref(&self) -> &State {
        &self.state
    }
}

impl DerefMut for Tree<'_> {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.state
    }
}

impl Drop for Tree<'_> {
    fn drop(&mut self) {
        if self.state.tree.len() == 0 {
            let word = self.lock.fast.load(Ordering::Relaxed);
            debug_assert_eq!(word & TAG, TREE, "an empty tree outside tree mode");
            // Release: the next fast claim sees everything done under the mutex.
            self.lock.fast.store(word & !TAG | EMPTY, Ordering::Release);
        }
    }
}
