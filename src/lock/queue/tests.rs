//! The accounting, single-threaded, against models.

use super::*;
use crate::lock::wait::{WaitNode, WakeList, GRANTED, NOTIFIED};
use crate::sync::Parker;
use crate::testrng::Rng;

/// A live request of a test: its ranges (the `Vec`'s buffer never moves, so the node may point
/// at it), its key and its node (boxed: it must not move while queued).
struct Req {
    parts: Vec<Part>,
    seq: u64,
    node: Box<WaitNode>,
}

impl Req {
    fn held(&self, state: &State) -> bool {
        self.parts.iter().all(|p| state.is_held(p.start, self.seq))
    }
}

fn conflict(a: &Part, b: &Part) -> bool {
    a.start <= b.last && b.start <= a.last && a.mode.conflicts(b.mode)
}

fn conflicts_any(a: &[Part], b: &[Part]) -> bool {
    a.iter().any(|x| b.iter().any(|y| conflict(x, y)))
}

/// 1 to 3 disjoint, sorted parts in `[0, space]`, each read or write.
fn random_parts(rng: &mut Rng, space: u64) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut at = rng.below(space + 1);
    for _ in 0..=rng.below(3) {
        if at > space {
            break;
        }
        let last = (at + rng.below(8)).min(space);
        let mode = if rng.below(2) == 0 {
            Mode::Read
        } else {
            Mode::Write
        };
        parts.push(Part {
            start: at,
            last,
            mode,
        });
        at = last + 1 + rng.below(4);
    }
    parts
}

/// The FIFO model: a request is granted iff no earlier live request has a conflicting part.
fn model_granted(live: &[Req], i: usize) -> bool {
    !live[..i]
        .iter()
        .any(|earlier| conflicts_any(&live[i].parts, &earlier.parts))
}

fn check_fifo(state: &State, live: &[Req], ctx: &str) {
    let mut waiting = 0;
    for (i, req) in live.iter().enumerate() {
        let want = model_granted(live, i);
        assert_eq!(req.held(state), want, "request {i} ({ctx})");
        waiting += usize::from(!want);
    }
    assert_eq!(state.waiting, waiting, "waiting count ({ctx})");
    assert_eq!(state.requests, live.len(), "request count ({ctx})");
    let entries: usize = live.iter().map(|r| r.parts.len()).sum();
    assert_eq!(state.tree.len(), entries, "entry count ({ctx})");
}

/// Random requests (single ranges and sets), releases, give-ups and downgrades; after every
/// step the granted set is exactly what the model allows together, `try` succeeds exactly when
/// nothing conflicting is queued, a step links a node to be woken exactly when its request
/// became granted, and `is_locked` agrees with the model.
#[test]
fn granted_set_matches_the_fifo_model() {
    let parker = Parker::new();
    let steps = if cfg!(miri) { 150 } else { 4_000 };
    for seed in 0..if cfg!(miri) { 2 } else { 40 } {
        let mut rng = Rng::new(seed);
        let mut state = State::new();
        let mut live: Vec<Req> = Vec::new();
        let space = 1 + rng.below(64);
        for step in 0..steps {
            let ctx = format!("seed {seed} step {step}");
            let before: Vec<u64> = (0..live.len())
                .filter(|&i| !model_granted(&live, i))
                .map(|i| live[i].seq)
                .collect();
            let mut wake = WakeList::new(&parker);
            let op = rng.below(10);
            if op < 5 || live.is_empty() {
                let parts = random_parts(&mut rng, space);
                let try_only = rng.below(4) == 0;
                let free = !live.iter().any(|r| conflicts_any(&parts, &r.parts));
                let node = Box::new(WaitNode::new());
                state.reserve(parts.len());
                match state.enqueue(&parts, Some(&node), try_only) {
                    Some(q) => {
                        assert!(!try_only || free, "try succeeded past a conflict ({ctx})");
                        assert_eq!(q.granted, free, "({ctx})");
                        live.push(Req {
                            parts,
                            seq: q.seq,
                            node,
                        });
                    }
                    None => assert!(try_only && !free, "try failed without conflict ({ctx})"),
                }
            } else if op < 9 {
                // Release a granted request, or give up a waiting one: the same step.
                let i = rng.below(live.len() as u64) as usize;
                let req = live.remove(i);
                state.leave(&req.parts, req.seq, &mut wake);
            } else {
                let writers: Vec<(usize, usize)> = (0..live.len())
                    .filter(|&i| model_granted(&live, i))
                    .flat_map(|i| (0..live[i].parts.len()).map(move |j| (i, j)))
                    .filter(|&(i, j)| live[i].parts[j].mode == Mode::Write)
                    .collect();
                if writers.is_empty() {
                    continue;
                }
                let (i, j) = writers[rng.below(writers.len() as u64) as usize];
                let part = live[i].parts[j];
                live[i].parts[j].mode = Mode::Read;
                state.downgrade(part, live[i].seq, &mut wake);
                assert!(
                    live[i].held(&state),
                    "a downgraded writer keeps its place ({ctx})"
                );
            }
            let linked: Vec<usize> = wake.iter().map(super::super::wait::WaitNode::key).collect();
            drop(wake); // grants what it linked
            check_fifo(&state, &live, &ctx);
            for (i, req) in live.iter().enumerate() {
                let newly = model_granted(&live, i) && before.contains(&req.seq);
                assert_eq!(
                    linked.contains(&req.node.key()),
                    newly,
                    "request {i} woken wrongly ({ctx})"
                );
                if newly {
                    assert_eq!(req.node.state(), GRANTED, "({ctx})");
                }
            }
            for query in 0..2 {
                let start = rng.below(space + 2);
                let last = start + rng.below(4) + query;
                let want = live.iter().enumerate().any(|(i, r)| {
                    model_granted(&live, i)
                        && r.parts.iter().any(|p| p.start <= last && p.last >= start)
                });
                assert_eq!(state.is_locked(start, last), want, "is_locked ({ctx})");
            }
        }
        state.tree.check();
    }
}

/// Barging locks: random requests that wait outside the tree, releases and downgrades. A
/// release notifies exactly the outside requests with a part overlapping the released range
/// that nothing left in the tree conflicts with (any other that stays could be waiting for
/// it), and the list's count stays exact.
#[test]
fn a_release_notifies_exactly_the_outside_waiters_it_frees() {
    let parker = Parker::new();
    let steps = if cfg!(miri) { 100 } else { 1_500 };
    for seed in 0..if cfg!(miri) { 2 } else { 12 } {
        let mut rng = Rng::new(1000 + seed);
        let mut state = State::new();
        let mut held: Vec<Req> = Vec::new();
        // Requests waiting outside, and whether they have been notified.
        let mut outside: Vec<(Req, bool)> = Vec::new();
        let space = 1 + rng.below(40);
        let mut notified = 0;
        for step in 0..steps {
            let ctx = format!("seed {seed} step {step}");
            let mut wake = WakeList::new(&parker);
            let op = rng.below(10);
            let mut released = None;
            if op < 5 || held.is_empty() {
                let parts = random_parts(&mut rng, space);
                let node = Box::new(WaitNode::new());
                state.reserve(parts.len());
                let queued = state.enqueue(&parts, None, true);
                let seq = queued.map_or(0, |q| q.seq);
                let req = Req { parts, seq, node };
                if queued.is_some() {
                    held.push(req);
                } else {
                    assert!(
                        held.iter().any(|r| conflicts_any(&req.parts, &r.parts)),
                        "a try failed without a conflict ({ctx})"
                    );
                    state.outside.push(&req.node, &req.parts);
                    outside.push((req, false));
                }
            } else if op < 8 {
                let req = held.remove(rng.below(held.len() as u64) as usize);
                state.leave(&req.parts, req.seq, &mut wake);
                released = Some(req.parts);
            } else if op < 9 {
                // An owner gives up: a node still in the list leaves it.
                if let Some(i) = outside.iter().position(|(_, n)| !n) {
                    let (req, _) = outside.remove(i);
                    assert!(state.outside.unlink(&req.node), "({ctx})");
                    assert!(!state.outside.unlink(&req.node), "unlinked twice ({ctx})");
                }
            } else if let Some((i, j)) = held
                .iter()
                .enumerate()
                .flat_map(|(i, r)| (0..r.parts.len()).map(move |j| (i, j)))
                .find(|&(i, j)| held[i].parts[j].mode == Mode::Write)
            {
                let part = held[i].parts[j];
                held[i].parts[j].mode = Mode::Read;
                state.downgrade(part, held[i].seq, &mut wake);
                released = Some(vec![part]);
            }
            drop(wake);
            for (req, was) in &mut outside {
                let now = req.node.state() == NOTIFIED;
                let hit = released.as_ref().is_some_and(|gone| {
                    gone.iter().any(|g| {
                        req.parts
                            .iter()
                            .any(|p| p.start <= g.last && g.start <= p.last)
                    })
                });
                // Not while a holder still in the tree is in its way.
                let blocked = held.iter().any(|h| conflicts_any(&req.parts, &h.parts));
                let hit = hit && !blocked;
                assert_eq!(now, *was || hit, "notified wrongly ({ctx})");
                notified += usize::from(now && !*was);
                *was = now;
            }
            let listed = outside.iter().filter(|(_, n)| !n).count();
            assert_eq!(state.outside.len(), listed, "outside count ({ctx})");
            outside.retain(|(_, n)| !n);
        }
        assert!(notified > 0 || cfg!(miri), "seed {seed}: nobody notified");
        for (req, _) in &outside {
            assert!(state.outside.unlink(&req.node));
        }
        state.tree.check();
    }
}

#[test]
fn a_set_waits_for_every_conflict_and_takes_one_queue_position() {
    let parker = Parker::new();
    let mut state = State::new();
    let part = |start, last, mode| Part { start, last, mode };
    let a = [part(0, 9, Mode::Write)];
    let b = [part(20, 29, Mode::Read)];
    let qa = state.enqueue(&a, None, false).unwrap();
    let qb = state.enqueue(&b, None, false).unwrap();
    // The set overlaps both holders; it holds neither part while it waits.
    let set = [part(5, 6, Mode::Read), part(25, 25, Mode::Write)];
    let node = WaitNode::new();
    let qs = state.enqueue(&set, Some(&node), false).unwrap();
    assert!(!qs.granted);
    assert_eq!(node.blocking(), 2);
    assert!(!state.is_held(5, qs.seq) && !state.is_held(25, qs.seq));
    // A later reader of 6 conflicts with the writer `a` only (readers share the set's part).
    let later = [part(6, 6, Mode::Read)];
    let node2 = WaitNode::new();
    let ql = state.enqueue(&later, Some(&node2), false).unwrap();
    assert_eq!(node2.blocking(), 1);
    let mut wake = WakeList::new(&parker);
    state.leave(&a, qa.seq, &mut wake);
    assert_eq!(wake.iter().count(), 1, "only the later reader is free");
    drop(wake);
    assert_eq!(node2.state(), GRANTED);
    assert!(!state.is_held(5, qs.seq));
    let mut wake = WakeList::new(&parker);
    state.leave(&b, qb.seq, &mut wake);
    drop(wake);
    assert_eq!(node.state(), GRANTED);
    assert!(state.is_held(5, qs.seq) && state.is_held(25, qs.seq));
    let mut wake = WakeList::new(&parker);
    state.leave(&set, qs.seq, &mut wake);
    state.leave(&later, ql.seq, &mut wake);
    assert_eq!(state.requests, 0);
    state.tree.check();
}
