//! Who made a request: the thread or the task, and where in the program.
//!
//! The deadlock detector (`crate::deadlock`, feature `deadlock_detection`) reads it from every
//! request in a lock, granted or waiting: a slot keeps its holder's, a tree entry its request's,
//! a wait node its waiter's. Without the feature a [`Requester`] and a [`Site`] are empty, so
//! passing them along costs nothing.
//!
//! A request belongs to the thread that made it, or, for an async request, to the task that
//! polled it first (its waker's data pointer names the task). It stays theirs until it is
//! released, wherever its guard goes: a guard sent to another thread still counts as held by
//! the thread that took it, as in `parking_lot` (whose guards cannot move when its deadlock
//! detection is on).

#[cfg(feature = "deadlock_detection")]
use core::panic::Location;
use core::task::Waker;

/// Who made a request (see the module docs): a key naming the thread or task, with flags, and
/// the source location of the call. Empty without `deadlock_detection`.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Requester {
    /// The thread's key (`sync::thread_key`), or `TASK` with the task's waker data; with
    /// `TIMED` and `OWNED` as flags. 0 for nobody (a free slot, or a unit test's entries).
    #[cfg(feature = "deadlock_detection")]
    key: u64,
    #[cfg(feature = "deadlock_detection")]
    at: Option<&'static Location<'static>>,
}

/// The key names a task (a waker's data pointer), not a thread.
#[cfg(feature = "deadlock_detection")]
const TASK: u64 = 1 << 63;
/// A blocking request with a deadline: it is never deadlocked, as it gives up in time.
#[cfg(feature = "deadlock_detection")]
const TIMED: u64 = 1 << 62;
/// Held through an owned (`Arc`) guard, made to be sent to other threads: whether the thread
/// that took it still holds it is unknown.
#[cfg(feature = "deadlock_detection")]
const OWNED: u64 = 1 << 61;
/// The flags that describe the request, not who made it.
#[cfg(feature = "deadlock_detection")]
const FLAGS: u64 = TIMED | OWNED;

impl Requester {
    /// Nobody: a free slot's holder.
    pub(crate) const NOBODY: Requester = Requester {
        #[cfg(feature = "deadlock_detection")]
        key: 0,
        #[cfg(feature = "deadlock_detection")]
        at: None,
    };

    /// A request of the calling thread, made where the caller of the `#[track_caller]` chain
    /// was called; `forever` if it waits without deadline.
    #[cfg_attr(feature = "deadlock_detection", track_caller)]
    #[inline(always)]
    pub(crate) fn thread(forever: bool) -> Requester {
        #[cfg(feature = "deadlock_detection")]
        {
            Requester {
                key: crate::sync::thread_key() | if forever { 0 } else { TIMED },
                at: Some(Location::caller()),
            }
        }
        #[cfg(not(feature = "deadlock_detection"))]
        {
            let _ = forever;
            Requester {}
        }
    }

    /// The same request, for an owned (`Arc`) guard.
    #[inline(always)]
    #[must_use]
    pub(crate) fn owned(self) -> Requester {
        #[cfg(feature = "deadlock_detection")]
        {
            Requester {
                key: self.key | OWNED,
                ..self
            }
        }
        #[cfg(not(feature = "deadlock_detection"))]
        self
    }

    /// A request of the task whose waker is `waker`, made at `site`.
    #[inline(always)]
    pub(crate) fn task(waker: &Waker, site: Site) -> Requester {
        #[cfg(feature = "deadlock_detection")]
        {
            // Addresses fit in 61 bits on every platform the crate runs on.
            Requester {
                key: TASK | (waker.data() as usize as u64 & !(TASK | FLAGS)),
                at: Some(site.0),
            }
        }
        #[cfg(not(feature = "deadlock_detection"))]
        {
            let _ = (waker, site);
            Requester {}
        }
    }
}

#[cfg(feature = "deadlock_detection")]
impl Requester {
    /// The thread or task, without the flags: equal for every request it makes.
    pub(crate) fn owner(self) -> u64 {
        self.key & !FLAGS
    }

    pub(crate) fn is_task(self) -> bool {
        self.key & TASK != 0
    }

    /// The task's waker data, if a task made it.
    pub(crate) fn task_address(self) -> Option<usize> {
        self.is_task()
            .then_some((self.key & !(TASK | FLAGS)) as usize)
    }

    /// A blocking request with a deadline.
    pub(crate) fn is_timed(self) -> bool {
        self.key & TIMED != 0
    }

    /// Held through an owned (`Arc`) guard.
    pub(crate) fn is_owned(self) -> bool {
        self.key & OWNED != 0
    }

    /// Where the request was made.
    pub(crate) fn location(self) -> Option<&'static Location<'static>> {
        self.at
    }
}

/// Where an async request was made (its future created), kept by the future until its first
/// poll makes it a [`Requester`]. Empty without `deadlock_detection`.
#[derive(Clone, Copy)]
pub(crate) struct Site(#[cfg(feature = "deadlock_detection")] &'static Location<'static>);

impl Site {
    /// The caller of the `#[track_caller]` chain.
    #[cfg_attr(feature = "deadlock_detection", track_caller)]
    #[inline(always)]
    pub(crate) fn caller() -> Site {
        Site(
            #[cfg(feature = "deadlock_detection")]
            Location::caller(),
        )
    }
}
