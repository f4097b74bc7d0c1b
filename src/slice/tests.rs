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
    send::<SliceWriteGuard<'static, std::cell::Cell<u8>>>(); // like &mut [Cell<u8>]
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
