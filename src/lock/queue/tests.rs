//! The accounting, single-threaded, against models.

use super::*;
use crate::lock::wait::{WaitNode, WakeList, COVER_SCAN, GRANTED, NOTIFIED, WAITING};
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
                let queued = if try_only {
                    let seq = state.queue_granted(&parts, true, Requester::NOBODY).ok();
                    seq.map(|seq| Queued { seq, granted: true })
                } else {
                    Some(state.enqueue(&parts, &node, Requester::NOBODY))
                };
                match queued {
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

/// The outside list's rule: a listed request is covered by a notified one (and is not notified
/// itself) if it is a writer of one range that contains the notified request's one range.
/// Only the oldest `COVER_SCAN` notified requests are looked at.
fn model_covers(listed: &[Part], notified: &[Part]) -> bool {
    matches!((listed, notified), ([l], [n])
        if l.mode == Mode::Write && l.start <= n.start && n.last <= l.last)
}

/// The model of one notification pass over `[start, last]`: in list order, a listed request
/// with a part in it moves out (notified) unless `blockers` conflict with it or a request
/// already out covers it.
fn model_notify(
    listed: &mut Vec<Req>,
    out: &mut Vec<Req>,
    blockers: &[&[Part]],
    start: u64,
    last: u64,
) {
    let mut i = 0;
    while i < listed.len() {
        let parts = &listed[i].parts;
        let hit = parts.iter().any(|p| p.start <= last && start <= p.last)
            && !blockers.iter().any(|b| conflicts_any(parts, b))
            && !out
                .iter()
                .take(COVER_SCAN)
                .any(|o| model_covers(parts, &o.parts));
        if hit {
            out.push(listed.remove(i));
        } else {
            i += 1;
        }
    }
}

/// The requests of a test of the outside list, and the model of what it must do.
#[derive(Default)]
struct OutsideModel {
    held: Vec<Req>,
    /// Waiting outside, in list order.
    listed: Vec<Req>,
    /// Notified, not back yet.
    out: Vec<Req>,
}

impl OutsideModel {
    /// A try that does not wait: the request holds its ranges, or waits outside.
    fn try_take(&mut self, state: &mut State, mut req: Req) {
        state.reserve(req.parts.len());
        if let Ok(seq) = state.queue_granted(&req.parts, true, Requester::NOBODY) {
            req.seq = seq;
            self.held.push(req);
            return;
        }
        assert!(
            self.held
                .iter()
                .any(|r| conflicts_any(&req.parts, &r.parts)),
            "a try failed without a conflict"
        );
        req.node.reset();
        state.outside.push(&req.node, &req.parts);
        self.listed.push(req);
    }

    /// One notification pass over `part`, with `also` still in the tree besides the holders.
    fn notify(&mut self, part: &Part, also: &[Part]) {
        let mut blockers: Vec<&[Part]> = self.held.iter().map(|h| &h.parts[..]).collect();
        blockers.push(also);
        model_notify(
            &mut self.listed,
            &mut self.out,
            &blockers,
            part.start,
            part.last,
        );
    }

    /// Holder `i` releases: its parts leave the tree one by one, each followed by a pass.
    fn release(&mut self, state: &mut State, i: usize, wake: &mut WakeList<'_>) {
        let req = self.held.remove(i);
        state.leave(&req.parts, req.seq, wake);
        for (k, part) in req.parts.iter().enumerate() {
            self.notify(part, &req.parts[k + 1..]);
        }
    }

    /// Liveness and the list's bookkeeping, after a step.
    fn check(&self, state: &State, ctx: &str) -> usize {
        let mut covered = 0;
        for req in &self.listed {
            assert_eq!(
                req.node.state(),
                WAITING,
                "a listed request was notified ({ctx})"
            );
            let blocked = self
                .held
                .iter()
                .any(|h| conflicts_any(&req.parts, &h.parts));
            let by = self
                .out
                .iter()
                .take(COVER_SCAN)
                .any(|o| model_covers(&req.parts, &o.parts));
            assert!(blocked || by, "a listed request nobody will notify ({ctx})");
            covered += usize::from(by && !blocked);
        }
        for req in &self.out {
            assert_eq!(
                req.node.state(),
                NOTIFIED,
                "a request was not notified ({ctx})"
            );
        }
        assert_eq!(
            state.outside.len(),
            self.listed.len(),
            "outside count ({ctx})"
        );
        let needed = self.listed.iter().any(|l| {
            !self
                .out
                .iter()
                .take(COVER_SCAN)
                .any(|o| model_covers(&l.parts, &o.parts))
        });
        if self.listed.len() <= 16 {
            assert_eq!(state.outside.needs_parked(), needed, "PARKED ({ctx})");
        } else {
            assert!(state.outside.needs_parked(), "PARKED ({ctx})");
        }
        covered
    }
}

/// Barging locks: random requests that wait outside the tree, releases, downgrades, notified
/// requests that come back (and get their ranges or wait again) or give up. Against a model:
/// a release notifies, in list order, the listed requests with a part in the released range
/// that nothing left in the tree conflicts with and that no notified request covers; a
/// notified request that gives up passes its notification on.
///
/// Liveness: after every step each listed request is blocked by a holder (whose release looks
/// at it again) or covered by a notified request (which comes back); and at the end, releasing
/// the holders and letting the notified requests come back one by one serves every request.
#[test]
fn a_release_notifies_exactly_the_outside_waiters_it_frees() {
    let parker = Parker::new();
    let steps = if cfg!(miri) { 100 } else { 1_500 };
    let (mut notified, mut covered) = (0, 0);
    for seed in 0..if cfg!(miri) { 2 } else { 12 } {
        let mut rng = Rng::new(1000 + seed);
        let mut m = OutsideModel::default();
        // Declared after the nodes: if an assertion fails, its lists go first.
        let mut state = State::new();
        let space = 1 + rng.below(40);
        for step in 0..steps {
            let ctx = format!("seed {seed} step {step}");
            let mut wake = WakeList::new(&parker);
            let op = rng.below(12);
            let was_out = m.out.len();
            let pick = |rng: &mut Rng, n: usize| rng.below(n as u64) as usize;
            if op < 5 || m.held.is_empty() {
                let mut parts = random_parts(&mut rng, space);
                if rng.below(2) == 0 {
                    parts.truncate(1);
                }
                let req = Req {
                    parts,
                    seq: 0,
                    node: Box::new(WaitNode::new()),
                };
                m.try_take(&mut state, req);
            } else if op < 7 {
                let i = pick(&mut rng, m.held.len());
                m.release(&mut state, i, &mut wake);
            } else if op < 8 && !m.listed.is_empty() {
                // An owner gives up: a node still in the list leaves it.
                let req = m.listed.remove(pick(&mut rng, m.listed.len()));
                assert!(state.outside.unlink(&req.node), "({ctx})");
                assert!(!state.outside.unlink(&req.node), "unlinked twice ({ctx})");
            } else if op < 10 && !m.out.is_empty() {
                // A notified request comes back and tries again.
                let req = m.out.remove(pick(&mut rng, m.out.len()));
                assert!(state.outside.returned(&req.node), "({ctx})");
                assert!(!state.outside.returned(&req.node), "back twice ({ctx})");
                m.try_take(&mut state, req);
            } else if op < 11 && !m.out.is_empty() {
                // A notified request gives up and passes its notification on.
                let req = m.out.remove(pick(&mut rng, m.out.len()));
                assert!(state.outside.returned(&req.node), "({ctx})");
                state.pass_on(&req.parts, &mut wake);
                for part in &req.parts {
                    m.notify(part, &[]);
                }
            } else if let Some((i, j)) = m
                .held
                .iter()
                .enumerate()
                .flat_map(|(i, r)| (0..r.parts.len()).map(move |j| (i, j)))
                .find(|&(i, j)| m.held[i].parts[j].mode == Mode::Write)
            {
                let part = m.held[i].parts[j];
                m.held[i].parts[j].mode = Mode::Read;
                state.downgrade(part, m.held[i].seq, &mut wake);
                m.notify(&part, &[]);
            }
            drop(wake);
            notified += m.out.len().saturating_sub(was_out);
            covered += m.check(&state, &ctx);
        }
        // Everyone is served: holders release, notified requests come back one at a time.
        let mut rounds = 0;
        while !(m.held.is_empty() && m.listed.is_empty() && m.out.is_empty()) {
            rounds += 1;
            assert!(rounds < 100_000, "seed {seed}: the drain does not end");
            let mut wake = WakeList::new(&parker);
            if !m.held.is_empty() {
                m.release(&mut state, m.held.len() - 1, &mut wake);
            } else if !m.out.is_empty() {
                let req = m.out.remove(0);
                assert!(state.outside.returned(&req.node));
                m.try_take(&mut state, req);
            } else {
                panic!("seed {seed}: {} listed requests stranded", m.listed.len());
            }
            drop(wake);
        }
        state.tree.check();
    }
    assert!(notified > 0, "nobody notified");
    assert!(covered > 0 || cfg!(miri), "no request was ever covered");
}

/// A listed writer is compared only with the oldest `COVER_SCAN` notified requests, so that a
/// release stays linear in the list: one covered by a later notified request is notified too.
#[test]
fn only_the_oldest_notified_requests_cover_a_listed_one() {
    let parker = Parker::new();
    let write = |at| {
        vec![Part {
            start: at,
            last: at,
            mode: Mode::Write,
        }]
    };
    let reqs: Vec<Req> = (0..=COVER_SCAN as u64)
        .map(|at| Req {
            parts: write(at),
            seq: 0,
            node: Box::new(WaitNode::new()),
        })
        .collect();
    // Listed after the others: a writer of the range of the last one notified.
    let late = Req {
        parts: write(COVER_SCAN as u64),
        seq: 0,
        node: Box::new(WaitNode::new()),
    };
    let mut state = State::new();
    for req in reqs.iter().chain([&late]) {
        state.outside.push(&req.node, &req.parts);
    }
    let mut wake = WakeList::new(&parker);
    // One release over all of them: each single is notified in list order, then `late` is
    // looked at with `COVER_SCAN + 1` requests out.
    state.notify_outside(0, COVER_SCAN as u64, &mut wake);
    drop(wake);
    assert!(reqs.iter().all(|r| r.node.state() == NOTIFIED));
    assert_eq!(
        late.node.state(),
        NOTIFIED,
        "compared with more than COVER_SCAN"
    );
    for req in reqs.iter().chain([&late]) {
        assert!(state.outside.returned(&req.node));
    }
}

#[test]
fn a_set_waits_for_every_conflict_and_takes_one_queue_position() {
    let parker = Parker::new();
    let mut state = State::new();
    let part = |start, last, mode| Part { start, last, mode };
    let a = [part(0, 9, Mode::Write)];
    let b = [part(20, 29, Mode::Read)];
    let qa = state.queue_granted(&a, false, Requester::NOBODY).unwrap();
    let qb = state.queue_granted(&b, false, Requester::NOBODY).unwrap();
    // The set overlaps both holders; it holds neither part while it waits.
    let set = [part(5, 6, Mode::Read), part(25, 25, Mode::Write)];
    let node = WaitNode::new();
    let qs = state.enqueue(&set, &node, Requester::NOBODY);
    assert!(!qs.granted);
    assert_eq!(node.blocking(), 2);
    assert!(!state.is_held(5, qs.seq) && !state.is_held(25, qs.seq));
    // A later reader of 6 conflicts with the writer `a` only (readers share the set's part).
    let later = [part(6, 6, Mode::Read)];
    let node2 = WaitNode::new();
    let ql = state.enqueue(&later, &node2, Requester::NOBODY);
    assert_eq!(node2.blocking(), 1);
    let mut wake = WakeList::new(&parker);
    state.leave(&a, qa, &mut wake);
    assert_eq!(wake.iter().count(), 1, "only the later reader is free");
    drop(wake);
    assert_eq!(node2.state(), GRANTED);
    assert!(!state.is_held(5, qs.seq));
    let mut wake = WakeList::new(&parker);
    state.leave(&b, qb, &mut wake);
    drop(wake);
    assert_eq!(node.state(), GRANTED);
    assert!(state.is_held(5, qs.seq) && state.is_held(25, qs.seq));
    let mut wake = WakeList::new(&parker);
    state.leave(&set, qs.seq, &mut wake);
    state.leave(&later, ql.seq, &mut wake);
    assert_eq!(state.requests, 0);
    state.tree.check();
}
