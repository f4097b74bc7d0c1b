//! Acquire and release allocate nothing once warmed up, uncontended and contended.
//! A global allocator counts each thread's allocations in a thread-local counter.
//! (With `deadlock_detection` a request that waits records what it waits for, in a registry
//! that allocates: the contended cases are skipped then.)

use rangelock::RangeRwLock;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Barrier;
use std::time::Duration;

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; the counter is a const-initialised thread-local
// without destructor, so touching it never allocates or re-enters the allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which we pass on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract, which we pass on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_by_this_thread() -> u64 {
    ALLOCS.with(Cell::get)
}

/// Runs `round(i)` 100 times to warm up (the tree's slab grows to its largest queue), then
/// 10,000 times more: the allocations this thread made in those.
fn allocations_after_warm_up(mut round: impl FnMut(u64)) -> u64 {
    for i in 0..100 {
        round(i);
    }
    let before = allocations_by_this_thread();
    for i in 0..10_000 {
        round(i);
    }
    allocations_by_this_thread() - before
}

#[test]
fn uncontended_acquire_and_release_allocate_nothing_after_warm_up() {
    let lock = RangeRwLock::new();
    let held: Vec<_> = (0..100u64)
        .map(|i| lock.read(i * 10_000..i * 10_000 + 4096))
        .collect();
    let round = |i: u64| {
        let _r = lock.read(i * 7..i * 7 + 4096);
        let _w = lock.write(2_000_000 + i..2_000_000 + i + 10);
        let _t = lock.try_write_for(3_000_000.., Duration::from_millis(1));
        let _e = lock.write(5..5);
    };
    assert_eq!(allocations_after_warm_up(round), 0);
    drop(held);
}

/// The counter is real: growing the lock's tree beyond its warm size does allocate.
#[test]
fn the_counter_sees_the_tree_grow() {
    let lock = RangeRwLock::new();
    let before = allocations_by_this_thread();
    let held: Vec<_> = (0..1000u64).map(|i| lock.read(i..=i)).collect();
    assert!(allocations_by_this_thread() - before > 0);
    drop(held);
}

#[test]
#[cfg_attr(
    feature = "deadlock_detection",
    ignore = "the deadlock detector records each wait"
)]
fn contended_acquire_release_and_wake_allocate_nothing_after_warm_up() {
    const THREADS: usize = 4;
    let lock = RangeRwLock::new();
    let start = Barrier::new(THREADS + 1);
    let measure = Barrier::new(THREADS);
    let contended = AtomicU64::new(0);
    let allocations = AtomicU64::new(0);
    std::thread::scope(|s| {
        let blocker = lock.write(1_000..1_001);
        for t in 0..THREADS as u64 {
            let (lock, start, measure) = (&lock, &start, &measure);
            let (contended, allocations) = (&contended, &allocations);
            s.spawn(move || {
                // Park once so that parking_lot_core's per-thread data exists.
                assert!(lock
                    .try_write_for(1_000..1_001, Duration::from_millis(1))
                    .is_none());
                start.wait();
                let round = |i: u64| {
                    let range = (i + t) % 8..(i + t) % 8 + 4;
                    if i % 3 == 0 {
                        let _r = lock.read(range);
                    } else {
                        let _w = lock.try_write(range.clone()).unwrap_or_else(|| {
                            contended.fetch_add(1, SeqCst);
                            lock.write(range)
                        });
                        if i % 8 == 0 {
                            // Hold it across a yield, so that others queue and park behind it.
                            std::thread::yield_now();
                        }
                    }
                };
                for i in 0..2_000 {
                    round(i);
                }
                measure.wait();
                let before = allocations_by_this_thread();
                for i in 0..20_000 {
                    round(i);
                }
                allocations.fetch_add(allocations_by_this_thread() - before, SeqCst);
            });
        }
        start.wait();
        drop(blocker);
    });
    assert!(contended.load(SeqCst) > 0, "the workload never waited");
    assert_eq!(allocations.load(SeqCst), 0);
}

/// A waker that does nothing (built once, before measuring).
struct Noop;

impl std::task::Wake for Noop {
    fn wake(self: std::sync::Arc<Self>) {}
}

#[test]
#[cfg_attr(
    feature = "deadlock_detection",
    ignore = "the deadlock detector records each wait"
)]
fn async_owned_and_set_requests_allocate_nothing_after_warm_up() {
    use std::future::Future;
    use std::task::{Context, Poll};
    let lock = std::sync::Arc::new(RangeRwLock::new());
    let waker = std::task::Waker::from(std::sync::Arc::new(Noop));
    let mut cx = Context::from_waker(&waker);
    let set = rangelock::RangeSet::new().write(0..10).read(100..200);
    let round = |i: u64, cx: &mut Context<'_>| {
        // Uncontended: the fast path.
        let mut f = std::pin::pin!(lock.write_async(i..i + 10));
        assert!(matches!(f.as_mut().poll(cx), Poll::Ready(_)));
        let owned = lock.write_arc(1_000 + i..1_010 + i);
        drop(lock.try_read_arc(5_000..5_001));
        // Contended: queued with a waker, granted, polled again.
        let mut f = std::pin::pin!(lock.read_owned(1_000 + i..1_001 + i));
        assert!(f.as_mut().poll(cx).is_pending());
        drop(owned);
        assert!(matches!(f.as_mut().poll(cx), Poll::Ready(_)));
        // A set, blocking and async.
        drop(lock.lock_set(&set));
        let mut f = std::pin::pin!(lock.lock_set_async(&set));
        assert!(matches!(f.as_mut().poll(cx), Poll::Ready(_)));
    };
    assert_eq!(allocations_after_warm_up(|i| round(i, &mut cx)), 0);
}

#[test]
#[cfg_attr(
    feature = "deadlock_detection",
    ignore = "the deadlock detector records each wait"
)]
fn timed_owned_and_owned_set_requests_allocate_nothing_after_warm_up() {
    use rangelock::RangeSet;
    use std::future::Future;
    use std::task::{Context, Poll};
    use std::time::Instant;
    let lock = std::sync::Arc::new(RangeRwLock::new());
    let waker = std::task::Waker::from(std::sync::Arc::new(Noop));
    let mut cx = Context::from_waker(&waker);
    let set = RangeSet::new().write(0..10).read(100..200);
    // Owned by the guards and futures that lock it, and given back by `into_set`.
    let mut owned = Some(RangeSet::new().write(20..30).write(300..310));
    let ms = Duration::from_millis(1);
    let mut round = |i: u64, cx: &mut Context<'_>| {
        // Timed, granted at once.
        drop(lock.try_lock_set_for(&set, ms));
        drop(lock.try_lock_set_until(&set, Instant::now() + ms));
        drop(lock.try_read_arc_for(i..=i, ms));
        drop(lock.try_write_arc_until(i..=i, Instant::now() + ms));
        // Timed, queued and given up at the deadline.
        let held = lock.read(5..6);
        assert!(lock.try_lock_set_until(&set, Instant::now()).is_none());
        assert!(lock.try_write_arc_until(5..6, Instant::now()).is_none());
        drop(held);
        // An owned set, blocking and async (queued, then granted), each time the same set.
        let guard = lock.lock_set_arc(owned.take().unwrap());
        owned = Some(guard.into_set());
        let held = lock.write(25..26);
        let mut f = std::pin::pin!(lock.lock_set_owned(owned.take().unwrap()));
        assert!(f.as_mut().poll(cx).is_pending());
        drop(held);
        let Poll::Ready(guard) = f.as_mut().poll(cx) else {
            panic!("granted, but pending")
        };
        owned = Some(guard.into_set());
    };
    assert_eq!(allocations_after_warm_up(|i| round(i, &mut cx)), 0);
}

#[test]
#[cfg_attr(
    feature = "deadlock_detection",
    ignore = "the deadlock detector records each wait"
)]
fn slice_set_requests_allocate_nothing_after_warm_up() {
    use rangelock::{RangeSet, SliceRwLock};
    use std::future::Future;
    use std::task::{Context, Poll};
    let s = std::sync::Arc::new(SliceRwLock::new(vec![0u64; 64]));
    let waker = std::task::Waker::from(std::sync::Arc::new(Noop));
    let mut cx = Context::from_waker(&waker);
    let set = RangeSet::new().read(0..8).write(32..40);
    let mut owned = Some(RangeSet::new().write(8..16).write(48..));
    let mut round = |cx: &mut Context<'_>| {
        let mut guard = s.lock_set(&set);
        let mut members = guard.members_mut();
        let src = members.next().unwrap().into_slice();
        members
            .next()
            .unwrap()
            .into_mut()
            .unwrap()
            .copy_from_slice(src);
        drop(guard);
        drop(s.try_lock_set_for(&set, Duration::from_millis(1)));
        let mut f = std::pin::pin!(s.lock_set_async(&set));
        assert!(matches!(f.as_mut().poll(cx), Poll::Ready(_)));
        let guard = s.lock_set_arc(owned.take().unwrap());
        owned = Some(guard.into_set());
        let held = s.read(60..61);
        let mut f = std::pin::pin!(s.lock_set_owned(owned.take().unwrap()));
        assert!(f.as_mut().poll(cx).is_pending());
        drop(held);
        let Poll::Ready(mut guard) = f.as_mut().poll(cx) else {
            panic!("granted, but pending")
        };
        guard.get_mut(1).unwrap()[0] += 1;
        owned = Some(guard.into_set());
    };
    assert_eq!(allocations_after_warm_up(|_| round(&mut cx)), 0);
    assert_eq!(s.read(48..49)[0], 10_100);
}
