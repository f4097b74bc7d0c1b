//! The locks are `UnwindSafe` and `RefUnwindSafe` (there is no poisoning), so `catch_unwind`
//! takes code that uses them without `AssertUnwindSafe`, and a panic under it releases what
//! the code held.

use rangelock::{
    ArcRangeReadGuard, ArcRangeSetGuard, ArcRangeWriteGuard, RangeReadGuard, RangeRwLock, RangeSet,
    RangeSetGuard, RangeWriteGuard, SliceRwLock,
};
use std::panic::{catch_unwind, RefUnwindSafe, UnwindSafe};
use std::sync::Arc;

fn unwind_safe<T: UnwindSafe + RefUnwindSafe>() {}

#[test]
fn the_locks_and_their_guards_are_unwind_safe() {
    unwind_safe::<RangeRwLock>();
    unwind_safe::<Arc<RangeRwLock>>();
    unwind_safe::<&RangeRwLock>();
    unwind_safe::<RangeReadGuard<'static>>();
    unwind_safe::<RangeWriteGuard<'static>>();
    unwind_safe::<ArcRangeReadGuard>();
    unwind_safe::<ArcRangeWriteGuard>();
    unwind_safe::<RangeSetGuard<'static>>();
    unwind_safe::<ArcRangeSetGuard>();
    // A slice is as unwind-safe as its elements.
    unwind_safe::<SliceRwLock<u8>>();
    unwind_safe::<SliceRwLock<String>>();
    unwind_safe::<Arc<SliceRwLock<Vec<u64>>>>();
}

#[test]
fn catch_unwind_takes_a_closure_that_locks_and_the_panic_releases_the_range() {
    let lock = RangeRwLock::new();
    let caught = catch_unwind(|| {
        let _g = lock.write(10..20);
        panic!("while holding 10..20");
    });
    assert!(caught.is_err());
    assert!(!lock.is_locked(..), "the panic released the range");

    let lock = Arc::new(RangeRwLock::new());
    let owned = Arc::clone(&lock);
    let caught = catch_unwind(move || {
        let _g = owned.lock_set_arc(RangeSet::new().write(0..1).read(5..6));
        panic!("while holding a set");
    });
    assert!(caught.is_err());
    assert!(lock.try_write(..).is_some());
}

#[test]
fn a_slice_writer_that_panics_leaves_its_writes_and_no_poison() {
    let s = SliceRwLock::new(vec![0u8; 4]);
    let caught = catch_unwind(|| {
        let mut g = s.write(1..3);
        g[0] = 1;
        panic!("half way");
    });
    assert!(caught.is_err());
    assert_eq!(s.read(..)[..], [0, 1, 0, 0]);
    s.write(..).fill(2);
    assert_eq!(s.read(..)[..], [2; 4]);
}
