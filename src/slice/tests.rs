//! Unit tests of `SliceRwLock`, its guards and futures.

use super::*;
use core::future::Future;
use std::sync::Arc;
use std::thread;

#[test]
fn sub_slices_read_and_write_their_elements() {
    let s = SliceRwLock::new(vec![1, 2, 3, 4, 5]);
    {
        let mut w = s.write(1..3);
        assert_eq!(*w, [2, 3]);
        w[0] = 20;
        w[1] = 30;
    }
    assert_eq!(*s.read(..), [1, 20, 30, 4, 5]);
    assert_eq!(*s.read(4..), [5]);
    assert_eq!(*s.read(2..2), [] as [i32; 0]);
    assert_eq!(s.len(), 5);
    assert!(!s.is_empty());
}

#[test]
fn writers_exclude_overlaps_only() {
    let s = SliceRwLock::new(vec![0u8; 10]);
    let w = s.write(0..5);
    assert!(s.try_read(4..6).is_none());
    assert!(s.try_write(5..10).is_some());
    assert!(s.try_read_for(0..1, Duration::from_millis(1)).is_none());
    let r = w.downgrade();
    assert_eq!(r.len(), 5);
    assert!(s.try_read(0..10).is_some());
    assert!(s.try_write_until(0..1, Instant::now()).is_none());
    drop(r);
    assert!(s.try_write_for(.., Duration::from_millis(1)).is_some());
    assert!(s.try_read_until(.., Instant::now()).is_some());
}

#[test]
fn disjoint_writers_run_on_several_threads() {
    let s = SliceRwLock::new(vec![0usize; 64]);
    thread::scope(|scope| {
        for t in 0..4 {
            let s = &s;
            scope.spawn(move || {
                for _ in 0..10 {
                    let mut part = s.write(t * 16..(t + 1) * 16);
                    part.iter_mut().for_each(|x| *x += t);
                }
            });
        }
    });
    let v = s.into_inner();
    for (i, x) in v.iter().enumerate() {
        assert_eq!(*x, 10 * (i / 16));
    }
}

#[test]
fn get_mut_and_into_inner_round_trip() {
    let mut s: SliceRwLock<String> = vec!["a".to_string(), "b".to_string()].into();
    s.get_mut()[1].push('!');
    assert_eq!(format!("{:?}", s.read(1..)), "[\"b!\"]");
    assert_eq!(&*s.into_inner(), ["a".to_string(), "b!".to_string()]);
    let b: Box<[u8]> = Box::new([1, 2]);
    assert_eq!(SliceRwLock::from(b).len(), 2);
}

#[test]
#[should_panic(expected = "range end index 6 out of range for slice of length 5")]
fn out_of_bounds_panics_like_slice_indexing() {
    let s = SliceRwLock::new(vec![0; 5]);
    let _ = s.read(0..6);
}

#[test]
#[should_panic(expected = "slice index starts at 3 but ends at 2")]
fn inverted_range_panics_like_slice_indexing() {
    let s = SliceRwLock::new(vec![0; 5]);
    #[allow(clippy::reversed_empty_ranges)]
    let _ = s.write(3..2);
}

#[test]
fn guards_follow_the_reference_rules_for_send_and_sync() {
    fn send<T: Send>() {}
    fn sync<T: Sync>() {}
    // Not for `Cell<u8>`: a write guard can be downgraded on the thread it was sent to (see
    // the `compile_fail` example on `SliceWriteGuard`).
    send::<SliceWriteGuard<'static, u8>>();
    sync::<SliceRwLock<u8>>();
    send::<SliceReadGuard<'static, u8>>();
    sync::<SliceWriteGuard<'static, u8>>();
}

#[test]
fn new_and_into_inner_do_not_copy_the_elements() {
    let v = vec![1u64, 2, 3];
    let at = v.as_ptr();
    let s = SliceRwLock::new(v);
    assert_eq!(s.read(..).as_ptr(), at);
    s.write(1..2)[0] = 20;
    let back = s.into_inner();
    assert_eq!(back.as_ptr(), at);
    assert_eq!(*back, [1, 20, 3]);
}

#[test]
fn arc_guards_deref_to_their_elements_on_any_thread() {
    let s = Arc::new(SliceRwLock::new(vec![0u32; 8]));
    let mut w = s.write_arc(2..4);
    assert!(s.try_read_arc(3..5).is_none());
    let r = s.try_read_arc(4..).expect("disjoint");
    thread::spawn(move || {
        w.copy_from_slice(&[7, 8]);
        let r2 = w.downgrade();
        assert_eq!(*r2, [7, 8]);
    })
    .join()
    .unwrap();
    assert_eq!(*r, [0; 4]);
    drop(r);
    assert_eq!(s.read(..)[..], [0, 0, 7, 8, 0, 0, 0, 0]);
    assert!(s.try_write_arc(..).is_some());
}

#[test]
fn slice_futures_resolve_to_guards_over_their_elements() {
    use std::task::{Context, Poll, Wake, Waker};
    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    let waker = Waker::from(Arc::new(Noop));
    let mut cx = Context::from_waker(&waker);
    let s = Arc::new(SliceRwLock::new(vec![1u8, 2, 3, 4]));
    let held = s.write(0..2);
    let mut owned = core::pin::pin!(s.write_owned(1..3));
    assert!(owned.as_mut().poll(&mut cx).is_pending());
    let mut borrowed = core::pin::pin!(s.read_async(3..));
    let Poll::Ready(tail) = borrowed.as_mut().poll(&mut cx) else {
        panic!("disjoint from every request")
    };
    assert_eq!(*tail, [4]);
    drop(held);
    let Poll::Ready(mut mid) = owned.as_mut().poll(&mut cx) else {
        panic!("granted")
    };
    mid[0] = 9;
    drop(mid);
    let mut read = core::pin::pin!(s.read_owned(..));
    let Poll::Ready(all) = read.as_mut().poll(&mut cx) else {
        panic!("idle")
    };
    assert_eq!(*all, [1, 9, 3, 4]);
    drop(all);
    let mut w = core::pin::pin!(s.write_async(..1));
    let Poll::Ready(mut first) = w.as_mut().poll(&mut cx) else {
        panic!("idle")
    };
    first[0] = 0;
    drop(first);
    assert_eq!(s.read(..1)[0], 0);
}

// ---- Sets --------------------------------------------------------------------------------

use crate::lock::set_tests::{cancelled_at_every_step, counting, poll, the_cancelled_set};
use crate::{RangeSet, SliceMember};
use core::task::Poll;

#[test]
fn a_set_guard_gives_every_member_at_once_shared_or_exclusive() {
    let s = SliceRwLock::new(vec![1, 2, 3, 0, 0, 0, 7]);
    let set = RangeSet::new().read(0..3).write(3..6).read(6..7);
    let mut guard = s.lock_set(&set);
    let mut members = guard.members_mut();
    assert_eq!(members.len(), 3);
    let Some(SliceMember::Shared(src)) = members.next() else {
        panic!("0..3 is shared")
    };
    let Some(SliceMember::Exclusive(dst)) = members.next() else {
        panic!("3..6 is exclusive")
    };
    let Some(SliceMember::Shared(last)) = members.next() else {
        panic!("6..7 is shared")
    };
    assert!(members.next().is_none());
    dst.copy_from_slice(src);
    dst[0] += last[0];
    assert_eq!(guard.get(1), Some(&[8, 2, 3][..]));
    assert_eq!(guard.get(3), None);
    assert!(
        guard.get_mut(0).is_none(),
        "a shared member is not handed out mutably"
    );
    assert!(guard.get_mut(3).is_none());
    guard.get_mut(1).unwrap()[2] = 30;
    assert_eq!(
        guard.members().collect::<Vec<_>>(),
        [&[1, 2, 3][..], &[8, 2, 30], &[7]]
    );
    assert_eq!(format!("{guard:?}"), "[[1, 2, 3], [8, 2, 30], [7]]");
    // Readers get in beside the shared members, nobody beside the exclusive one.
    assert!(s.try_read(0..3).is_some());
    assert!(s.try_write(2..3).is_none());
    assert!(s.try_read(5..6).is_none());
    drop(guard);
    assert_eq!(*s.into_inner(), [1, 2, 3, 8, 2, 30, 7]);
}

#[test]
fn overlapping_members_merge_and_open_ranges_run_to_the_end() {
    let s = SliceRwLock::new(vec![0u8; 10]);
    // 0..4 read and 2..6 write merge into one exclusive member.
    let set = RangeSet::new().read(0..4).write(2..6).read(8..);
    let mut guard = s.lock_set(&set);
    assert_eq!(guard.set().len(), 2);
    let mut members = guard.members_mut();
    members
        .next()
        .unwrap()
        .into_mut()
        .expect("exclusive")
        .fill(1);
    assert_eq!(members.next().unwrap().len(), 2, "8.. runs to the end");
    drop(guard);
    assert_eq!(s.read(..)[..], [1, 1, 1, 1, 1, 1, 0, 0, 0, 0]);
    // `..` is the whole slice, and a range that starts at the end is empty.
    let all = RangeSet::new().write(..);
    assert_eq!(s.lock_set(&all).get(0).unwrap().len(), 10);
    let end = RangeSet::new().write(10..);
    let guard = s.lock_set(&end);
    assert_eq!(guard.get(0), Some(&[][..]));
    assert!(s.try_write(..).is_some(), "nothing of the slice is held");
    drop(guard);
    let empty = RangeSet::new();
    let guard = s.lock_set(&empty);
    assert_eq!(guard.members().len(), 0);
}

#[test]
#[should_panic(expected = "range end index 7 out of range for slice of length 6")]
fn a_set_past_the_end_panics_like_slice_indexing() {
    let s = SliceRwLock::new(vec![0; 6]);
    let set = RangeSet::new().read(0..1).write(5..7);
    let _ = s.lock_set(&set);
}

#[test]
#[should_panic(expected = "range start index 7 out of range for slice of length 6")]
fn an_open_set_range_past_the_end_panics_like_slice_indexing() {
    let s = SliceRwLock::new(vec![0; 6]);
    let set = RangeSet::new().write(7..);
    let _ = s.try_lock_set(&set);
}

#[test]
fn set_futures_check_their_bounds_at_the_call() {
    let s = Arc::new(SliceRwLock::new(vec![0; 6]));
    let set = RangeSet::new().write(6..=6);
    let borrowed = std::panic::catch_unwind(|| drop(s.lock_set_async(&set)));
    let owned = std::panic::catch_unwind(|| drop(s.lock_set_owned(set.clone())));
    let arc = std::panic::catch_unwind(|| drop(s.lock_set_arc(set.clone())));
    let timed = std::panic::catch_unwind(|| drop(s.try_lock_set_for(&set, Duration::ZERO)));
    for outcome in [borrowed, owned, arc, timed] {
        let message = outcome.expect_err("out of bounds");
        assert_eq!(
            message.downcast_ref::<String>().map(String::as_str),
            Some("range end index 7 out of range for slice of length 6")
        );
    }
    assert!(!s.lock.is_locked(..));
}

/// The copy from issue 17: one thread holds `read(0..3)` and wants `write(3..6)`; another
/// queues `write(2..4)` in between. Taken range by range, the first thread waits for the
/// second, which waits for the first. As a set, it cannot happen.
#[test]
fn a_copy_between_sub_slices_deadlocks_range_by_range_and_not_as_a_set() {
    let s = SliceRwLock::fifo(vec![1, 2, 3, 0, 0, 0]);
    thread::scope(|scope| {
        let src = s.read(0..3);
        let other = scope.spawn(|| s.write(2..4).fill(9));
        crate::lock::tests::wait_for_waiting(&s.lock, 1);
        // The second range now waits behind `other`, which waits for `src`: a deadlock.
        assert!(s.try_write_for(3..6, Duration::from_millis(20)).is_none());
        drop(src);
        other.join().unwrap();
    });
    let mut expected = [1, 2, 9, 9, 0, 0];
    assert_eq!(s.read(..)[..], expected);
    let set = RangeSet::new().read(0..3).write(3..6);
    thread::scope(|scope| {
        let mut both = s.lock_set(&set);
        let other = scope.spawn(|| s.write(2..4).fill(5));
        crate::lock::tests::wait_for_waiting(&s.lock, 1);
        let mut members = both.members_mut();
        let src = members.next().unwrap().into_slice();
        let dst = members.next().unwrap().into_mut().unwrap();
        dst.copy_from_slice(src);
        drop(both);
        other.join().unwrap();
    });
    // The copy saw 1, 2, 9 (before `other`), and `other` came after it.
    expected = [1, 2, 5, 5, 2, 9];
    assert_eq!(s.read(..)[..], expected);
}

#[test]
fn try_and_timed_set_requests_fail_whole() {
    let s = SliceRwLock::new(vec![0u8; 8]);
    let set = RangeSet::new().write(0..1).write(5..6);
    let held = s.read(5..6);
    assert!(s.try_lock_set(&set).is_none());
    assert!(s.try_lock_set_for(&set, Duration::from_millis(1)).is_none());
    assert!(s.try_lock_set_until(&set, Instant::now()).is_none());
    assert!(s.try_write(0..1).is_some(), "nothing of the set is held");
    assert_eq!(s.lock.waiting(), 0);
    drop(held);
    let mut guard = s.try_lock_set_until(&set, Instant::now()).unwrap();
    guard.get_mut(0).unwrap()[0] = 1;
    drop(guard);
    let mut guard = s.try_lock_set_for(&set, Duration::ZERO).unwrap();
    guard.get_mut(1).unwrap()[0] = 2;
    drop(guard);
    assert_eq!(s.read(..)[..], [1, 0, 0, 0, 0, 2, 0, 0]);
}

#[test]
fn arc_set_guards_keep_the_slice_alive_and_give_the_set_back() {
    let s = Arc::new(SliceRwLock::new(vec![0u32; 8]));
    let set = RangeSet::new().read(0..2).write(4..8);
    let mut guard = s.lock_set_arc(set.clone());
    assert!(s.try_read_arc(0..2).is_some());
    assert!(s.try_read_arc(5..6).is_none());
    let set = thread::spawn(move || {
        guard.get_mut(1).unwrap().fill(3);
        assert_eq!(format!("{guard:?}"), "[[0, 0], [3, 3, 3, 3]]");
        guard.into_set()
    })
    .join()
    .unwrap();
    assert_eq!(s.read(..)[..], [0, 0, 0, 0, 3, 3, 3, 3]);
    let held = s.read(6..7);
    let set = s.try_lock_set_arc(set).expect_err("6..7 is read");
    drop(held);
    let guard = s.try_lock_set_arc(set).expect("free");
    assert_eq!(guard.members().len(), 2);
    let weak = Arc::downgrade(&s);
    drop(s);
    assert!(weak.upgrade().is_some(), "the guard keeps the slice");
    drop(guard);
    assert!(weak.upgrade().is_none(), "the guard let the slice go");
}

#[test]
fn timed_arc_guards_of_a_slice_wait_at_most_so_long() {
    let s = Arc::new(SliceRwLock::new(vec![0u8; 8]));
    let w = s.write(0..4);
    let past = Instant::now();
    assert!(s.try_read_arc_for(3..5, Duration::from_millis(1)).is_none());
    assert!(s.try_read_arc_until(3..5, past).is_none());
    assert!(s
        .try_write_arc_for(3..5, Duration::from_millis(1))
        .is_none());
    assert!(s.try_write_arc_until(3..5, past).is_none());
    drop(w);
    let mut w = s.try_write_arc_for(3..5, Duration::ZERO).unwrap();
    w.fill(1);
    drop(w);
    let mut w = s.try_write_arc_until(5..6, past).unwrap();
    w[0] = 2;
    let r = s.try_read_arc_for(..5, Duration::ZERO).unwrap();
    let r2 = s.try_read_arc_until(..5, past).unwrap();
    assert_eq!((&*r, &*r2), (&[0, 0, 0, 1, 1][..], &[0, 0, 0, 1, 1][..]));
    drop((r, r2, w));
    assert_eq!(s.lock.waiting(), 0);
    assert!(!s.lock.is_locked(..));
}

#[test]
fn slice_set_futures_are_cancellation_safe_at_every_step() {
    let s = Arc::new(SliceRwLock::new(vec![0u8; 10]));
    let set = the_cancelled_set();
    cancelled_at_every_step(&s.lock, || s.lock_set_async(&set));
    cancelled_at_every_step(&s.lock, || s.lock_set_owned(the_cancelled_set()));
}

#[test]
fn slice_set_futures_resolve_to_guards_over_their_members() {
    let s = Arc::new(SliceRwLock::new(vec![1u8, 2, 3, 4]));
    let (count, waker) = counting();
    let held = s.write(3..4);
    let mut owned = Box::pin(s.lock_set_owned(RangeSet::new().read(0..1).write(3..4)));
    assert_eq!(format!("{owned:?}"), "OwnedSliceSetFuture { .. }");
    assert!(poll(owned.as_mut(), &waker).is_pending());
    let set = RangeSet::new().read(0..2);
    let mut borrowed = core::pin::pin!(s.lock_set_async(&set));
    assert_eq!(format!("{borrowed:?}"), "SliceSetFuture { .. }");
    let Poll::Ready(reads) = poll(borrowed.as_mut(), &waker) else {
        panic!("readers share")
    };
    assert_eq!(reads.get(0), Some(&[1, 2][..]));
    drop(held);
    assert_eq!(count.get(), 1);
    let Poll::Ready(mut guard) = poll(owned.as_mut(), &waker) else {
        panic!("granted")
    };
    guard.get_mut(1).unwrap()[0] = 40;
    drop((guard, reads));
    assert_eq!(s.read(..)[..], [1, 2, 3, 40]);
}

#[test]
fn set_guards_futures_and_members_follow_the_reference_rules() {
    fn send<T: Send>() {}
    fn sync<T: Sync>() {}
    fn owned<T: Send + Sync + 'static>() {}
    fn is_static<T: 'static>() {}
    send::<SliceSetGuard<'static, u8>>();
    sync::<SliceSetGuard<'static, u8>>();
    send::<SliceSetFuture<'static, u8>>();
    send::<crate::SliceMembersMut<'static, u8>>();
    send::<crate::SliceMembers<'static, u8>>();
    owned::<ArcSliceSetGuard<u8>>();
    send::<OwnedSliceSetFuture<u8>>();
    is_static::<OwnedSliceSetFuture<u8>>();
}

#[test]
fn new_takes_the_lock_s_default_and_fifo_and_barging_choose() {
    let mode = |s: SliceRwLock<u8>| s.lock.handoff();
    assert_eq!(
        mode(SliceRwLock::new(vec![0])),
        Some(RangeRwLock::DEFAULT_HANDOFF)
    );
    assert_eq!(mode(SliceRwLock::fifo(vec![0])), None);
    let two = Duration::from_millis(2);
    assert_eq!(mode(SliceRwLock::barging(vec![0], two)), Some(two));
}
