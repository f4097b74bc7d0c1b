//! Bad input panics at the caller's line, not inside the crate (`#[track_caller]` all the way
//! down), with a message that names the bad value.

use rangelock::mm::MemBacking;
use rangelock::{RangeRwLock, RangeSet, SliceRwLock};
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

/// An entry point, named, called with bad input.
type Case<'a> = (&'static str, Box<dyn FnOnce() + 'a>);

/// Runs `f`, which must panic; returns the panic's file and message.
fn panic_of(f: impl FnOnce()) -> (String, String) {
    let seen = Arc::new(Mutex::new(None));
    let hook_seen = seen.clone();
    let previous = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        let file = info
            .location()
            .map(|l| l.file().to_owned())
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| {
                info.payload()
                    .downcast_ref::<&str>()
                    .map(std::string::ToString::to_string)
            })
            .unwrap_or_default();
        *hook_seen.lock().unwrap() = Some((file, message));
    }));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    panic::set_hook(previous);
    assert!(result.is_err(), "expected a panic");
    let seen = seen.lock().unwrap().take();
    seen.expect("the hook saw the panic")
}

#[test]
#[allow(clippy::reversed_empty_ranges)] // inverted on purpose
fn every_range_panic_points_at_the_caller() {
    let here = file!();
    let lock = Arc::new(RangeRwLock::new());
    let slice = Arc::new(SliceRwLock::new(vec![0u8; 8]));
    let cases: Vec<Case> = vec![
        ("write", Box::new(|| drop(lock.write(10..5)))),
        ("try_read", Box::new(|| drop(lock.try_read(10..5)))),
        ("write_arc", Box::new(|| drop(lock.write_arc(10..5)))),
        ("write_async", Box::new(|| drop(lock.write_async(10..5)))),
        ("read_owned", Box::new(|| drop(lock.read_owned(10..5)))),
        ("is_locked", Box::new(|| assert!(lock.is_locked(10..5)))),
        (
            "RangeSet::write",
            Box::new(|| drop(RangeSet::new().write(10..5))),
        ),
        (
            "slice ..=usize::MAX",
            Box::new(|| drop(slice.read(..=usize::MAX))),
        ),
        ("slice past the end", Box::new(|| drop(slice.write(0..9)))),
        (
            "slice write_async",
            Box::new(|| drop(slice.write_async(5..3))),
        ),
        ("slice read_arc", Box::new(|| drop(slice.read_arc(0..9)))),
        ("MemBacking::new", Box::new(|| drop(MemBacking::new(100)))),
    ];
    for (what, f) in cases {
        let (file, message) = panic_of(f);
        assert_eq!(file, here, "{what}: panicked at {file} ({message})");
        assert!(!message.is_empty(), "{what}: no message");
    }
    let (_, message) = panic_of(|| drop(MemBacking::new(100)));
    assert!(message.contains("100"), "the capacity is named: {message}");
    let (_, message) = panic_of(|| drop(slice.read(..=usize::MAX)));
    assert!(message.contains("maximum usize"), "{message}");
}
