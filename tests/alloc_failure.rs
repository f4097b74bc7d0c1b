//! Running out of memory inside the lock is a panic that leaves the lock exactly as it was:
//! every fallible step (growing the tree's slabs) comes before any change of state. A global
//! allocator refuses large allocations on request, so the tree cannot grow.

use rangelock::RangeRwLock;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::catch_unwind;

struct Refusing;

thread_local! {
    static REFUSE: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: forwards to the system allocator, or returns null (an allowed answer) while this
// thread asked for failures; the flag is a const-initialised thread-local without destructor.
unsafe impl GlobalAlloc for Refusing {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // Only the tree's slabs are this large; small allocations (a panic's message) go on.
        if layout.size() >= 2048 && REFUSE.with(Cell::get) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which we pass on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size >= 2048 && REFUSE.with(Cell::get) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract, which we pass on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Refusing = Refusing;

/// A lock left half-changed tends to hang the next request: run with a watchdog, so that such
/// a bug fails the test instead of stalling the suite.
#[test]
fn a_request_that_cannot_grow_the_tree_panics_and_changes_nothing() {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        scenario();
        done.send(()).unwrap();
    });
    finished
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the lock hung (or the scenario panicked) after the failed allocation");
}

fn scenario() {
    let lock = RangeRwLock::new();
    // Two fast-path holders: the next conflicting request must move them into the tree,
    // which needs the tree's first slabs.
    let a = lock.write(0..10);
    let b = lock.read(20..30);
    // A quiet hook: the default one may capture a backtrace, which would need memory too.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    REFUSE.with(|r| r.set(true));
    let failed = catch_unwind(|| lock.try_write(5..25).is_some());
    REFUSE.with(|r| r.set(false));
    std::panic::set_hook(hook);
    let message = failed.expect_err("the tree could not grow, so the request panicked");
    let message = message
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| message.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default();
    assert!(message.contains("memory"), "panic message: {message:?}");

    // Both holders still hold, exclusively as before: no second writer gets in.
    assert!(
        lock.try_write(0..10).is_none(),
        "a second writer over a held range"
    );
    assert!(lock.try_read(5..6).is_none());
    assert!(lock.try_write(25..26).is_none());
    assert!(lock.try_read(25..26).is_some());
    assert_eq!(lock.waiting(), 0, "the failed request left nothing queued");
    drop((a, b));
    assert!(!lock.is_locked(..));
    let all = lock.try_write(..).expect("idle again");
    drop(all);
    // And the tree grows normally once memory is back.
    let held: Vec<_> = (0..100u64).map(|i| lock.read(i * 10..i * 10 + 5)).collect();
    assert!(lock.try_write(0..1).is_none());
    drop(held);
}
