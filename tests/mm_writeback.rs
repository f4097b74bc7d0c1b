//! Write-back is serialised per page: two overlapping `sync`s must not land an older copy of a
//! page after a newer one (the store would then hold stale data while the page is clean, and a
//! read after eviction would return it).

mod common;

use common::{Hook, Hooked, Op};
use rangelock::mm::{Access, AddressSpace, PAGE_SIZE};
use rangelock::RangeRwLock;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A store whose first page write (once armed) waits at a gate until the test opens it.
struct Gated {
    armed: AtomicBool,
    /// (a write is waiting at the gate, the gate is open)
    gate: Mutex<(bool, bool)>,
    changed: Condvar,
}

impl Gated {
    fn new() -> Self {
        Gated {
            armed: AtomicBool::new(false),
            gate: Mutex::new((false, false)),
            changed: Condvar::new(),
        }
    }

    fn wait_until_held(&self) {
        let mut gate = self.gate.lock().unwrap();
        while !gate.0 {
            gate = self.changed.wait(gate).unwrap();
        }
    }

    fn open(&self) {
        self.gate.lock().unwrap().1 = true;
        self.changed.notify_all();
    }
}

impl Hook for Gated {
    fn before(&self, op: Op) -> io::Result<()> {
        if op == Op::WritePage && self.armed.swap(false, SeqCst) {
            let mut gate = self.gate.lock().unwrap();
            gate.0 = true;
            self.changed.notify_all();
            while !gate.1 {
                gate = self.changed.wait(gate).unwrap();
            }
        }
        Ok(())
    }
}

#[test]
fn overlapping_syncs_never_land_an_older_copy_last() {
    let space: Arc<AddressSpace<RangeRwLock, Hooked<Gated>>> =
        Arc::new(AddressSpace::with_lock(Hooked::new(Gated::new())));
    space.truncate(PAGE_SIZE as u64).unwrap();
    let page = space.fault(0, Access::Write).unwrap();
    page.write(0, b"version 2").unwrap();

    // Sync A copies version 2 and is held inside the store's write.
    space.backing().hook.armed.store(true, SeqCst);
    let a = std::thread::spawn({
        let space = space.clone();
        move || space.sync()
    });
    space.backing().hook.wait_until_held();

    // A mapping writes version 3, and sync B starts while A's write is still in flight.
    page.write(0, b"version 3").unwrap();
    let b = std::thread::spawn({
        let space = space.clone();
        move || space.sync()
    });
    // Without per-page serialisation B writes version 3 and returns at once; with it, B waits
    // for A. Give B the chance to finish (or to block) before A's stale copy lands.
    let until = Instant::now() + Duration::from_millis(200);
    while !b.is_finished() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(1));
    }
    space.backing().hook.open();
    a.join().unwrap().unwrap();
    b.join().unwrap().unwrap();

    // The store must hold the newest version: evict the page and read it back from there.
    drop(page);
    assert_eq!(space.drop_caches(), 1, "the page is clean and unmapped");
    let mut buf = [0; 9];
    space.read(0, &mut buf).unwrap();
    assert_eq!(
        &buf, b"version 3",
        "an older write-back landed after a newer one"
    );
}
