//! After a burst of 100,000 queued requests is released, the lock gives its memory back
//! (it keeps at most 64 KiB), while steady use still allocates nothing (`tests/alloc.rs`).

use rangelock::RangeRwLock;
use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::sync::atomic::{AtomicIsize, Ordering::SeqCst};
use std::task::{Context, Poll, Wake, Waker};

struct Live;

/// Bytes allocated and not yet freed, by the whole process.
static LIVE: AtomicIsize = AtomicIsize::new(0);

// The casts: a `Layout`'s size never exceeds `isize::MAX`.
#[allow(clippy::cast_possible_wrap)]
// SAFETY: forwards to the system allocator and counts bytes in an atomic.
unsafe impl GlobalAlloc for Live {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, SeqCst);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which we pass on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, SeqCst);
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, SeqCst);
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract, which we pass on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Live = Live;

struct Noop;

impl Wake for Noop {
    fn wake(self: std::sync::Arc<Self>) {}
}

#[test]
fn a_released_burst_of_100_000_queued_requests_leaves_at_most_64_kib() {
    const BURST: u64 = 100_000;
    let waker = Waker::from(std::sync::Arc::new(Noop));
    let mut cx = Context::from_waker(&waker);
    let lock = RangeRwLock::new();
    drop(lock.write(0..1));
    let before = LIVE.load(SeqCst);

    let blocker = lock.write(..);
    let mut queued: Vec<_> = (0..BURST)
        .map(|i| Box::pin(lock.read_async(i..=i)))
        .collect();
    for f in &mut queued {
        assert!(f.as_mut().poll(&mut cx).is_pending());
    }
    assert_eq!(lock.waiting(), BURST as usize);
    let peak = LIVE.load(SeqCst);
    drop(blocker);
    for f in &mut queued {
        let Poll::Ready(guard) = f.as_mut().poll(&mut cx) else {
            panic!("granted when the blocker left")
        };
        drop(guard);
    }
    drop(queued);
    let after = LIVE.load(SeqCst);
    let kept = after - before;
    eprintln!(
        "peak {} KiB above the start, kept {kept} bytes",
        (peak - before) >> 10
    );
    assert!(peak - before > 1 << 20, "the burst did not grow the lock");
    assert!(
        kept <= 64 << 10,
        "the lock kept {kept} bytes after the burst"
    );
}
