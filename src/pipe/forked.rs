//! Pipe ends captured by a forked child (`Process::builder().spawn_fork(move
//! || ..)`, or the `Fork` start method): the child holds them as a process
//! of its own, so the other end does not read as gone when the parent drops
//! its copy. See "Ends captured by a fork" in `docs/protocols/pipe.md`.
//!
//! A child inherits a copy of every end in the parent's memory but can only
//! reach the ones its closure (and arguments) captured. Rust cannot list what
//! a closure captured, but the parent can watch it: its copy of the closure
//! is dropped right after the fork, and exactly the captured ends lose a
//! reference then. So, in the parent, after `fork` and before it drops its
//! copy: every live end this process is registered for gets one more count
//! on our own entry (so dropping the copy cannot make it look gone); after
//! the drop, the child is registered for each end whose reference count
//! fell, and the extra counts are taken back.

use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use super::ends::{for_fork, End, EndInner, Role};
use crate::chan::Chan;
use crate::sys::task;

/// Every end this process has registered (weakly: this list keeps none
/// alive). Pruned of dropped ends when it would grow.
static LIVE: Mutex<Vec<Weak<EndInner>>> = Mutex::new(Vec::new());

/// Notes a newly registered end.
pub(crate) fn track(end: &End) {
    let mut live = LIVE.lock();
    if live.len() == live.capacity() {
        live.retain(|w| w.strong_count() > 0);
    }
    live.push(Arc::downgrade(end));
}

/// One end held for a forked child while the parent finds out whether the
/// child captured it.
struct Held {
    end: Weak<EndInner>,
    /// References to the end before the parent dropped the child's share.
    before: usize,
    chan: Chan,
    role: Role,
    /// This process's entry, which carries the extra count.
    slot: usize,
}

/// The ends held for one forked child; see the module docs.
pub(crate) struct Handover {
    child: u32,
    me: u32,
    held: Vec<Held>,
}

/// Call in the parent right after forking `child`, before dropping what was
/// moved into it (the closure and its arguments); then
/// [`settle`](Handover::settle).
pub(crate) fn hand_over(child: u32) -> Handover {
    let me = task::pid();
    let ends: Vec<Weak<EndInner>> = LIVE.lock().clone();
    let mut held = Vec::new();
    if !ends.is_empty() {
        let start = task::start_time(me).unwrap_or(1);
        for w in ends {
            let Some(end) = w.upgrade() else { continue };
            let Some(slot) = for_fork::hold(&end, me, start) else {
                continue;
            };
            let (chan, role) = (end.chan.clone(), end.role);
            drop(end);
            held.push(Held {
                before: w.strong_count(),
                end: w,
                chan,
                role,
                slot,
            });
        }
    }
    Handover { child, me, held }
}

impl Handover {
    /// Call once the parent has dropped its copies of what went to the
    /// child: registers the child for the ends that lost a reference, and
    /// takes the extra counts back.
    pub(crate) fn settle(self) {
        if self.held.is_empty() {
            return;
        }
        // The child exists (it is ours and not reaped yet): its start time is
        // what its entries are checked against.
        let start = task::start_time(self.child).unwrap_or(1);
        for h in self.held {
            if h.end.strong_count() < h.before {
                for_fork::register_child(&h.chan, h.role, self.child, start);
            }
            for_fork::unhold(&h.chan, h.role, h.slot, self.me);
        }
    }
}
