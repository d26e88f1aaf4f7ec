//! A loom `Park` where tasks can die, shared by the models of the robust
//! lock and the barrier (`robust/loom_tests.rs`, `barrier_state/loom_tests.rs`).
//!
//! The futex table of `park::loom_park` (one mutex and condvar: `wait`
//! re-checks the word under the mutex, `wake` notifies under it, so a lost
//! wake-up shows as a deadlock), plus what production sleep slices give: a
//! sleeper returns at once (its slice expires) and looks at liveness when
//! the task it depends on is dead: the owner its word names (the robust
//! lock), or any task (the barrier, whose sleepers watch their peers). A death is a flag set under the table's mutex, so it cannot
//! slip between a sleeper's check and its sleep. It is also the models'
//! `Liveness` (task ids 0..4). A timed wait may give up at once, so loom
//! explores both outcomes.

use std::time::Instant;

use loom::sync::atomic::AtomicBool;
use loom::sync::{Condvar, Mutex};

use crate::sync::atomic::{AtomicU32, Ordering};
use crate::sync::liveness::Liveness;
use crate::sync::park::{Park, Wake};
use crate::sys::task::Holder;

pub(crate) struct DeathPark {
    lock: Mutex<()>,
    cv: Condvar,
    pub(crate) dead: [AtomicBool; 4],
    /// The task a sleeper on a word depends on (`None`: any task).
    owner: Option<fn(u32) -> u32>,
}

impl DeathPark {
    /// Slices expire for a sleeper on word `w` once task `owner(w)` is dead,
    /// or once any task is dead if `owner` is `None`.
    pub(crate) fn new(owner: Option<fn(u32) -> u32>) -> Self {
        DeathPark {
            owner,
            lock: Mutex::new(()),
            cv: Condvar::new(),
            dead: [
                AtomicBool::new(false),
                AtomicBool::new(false),
                AtomicBool::new(false),
                AtomicBool::new(false),
            ],
        }
    }

    fn expired(&self, word: u32) -> bool {
        match self.owner {
            Some(owner) => self.is_dead(Holder::unrecorded(owner(word))),
            None => self.dead.iter().any(|d| d.load(Ordering::SeqCst)),
        }
    }

    /// Task `tid` dies: from now on it is dead and slices expire.
    pub(crate) fn die(&self, tid: u32) {
        let _g = self.lock.lock().unwrap();
        self.dead[tid as usize].store(true, Ordering::SeqCst);
        self.cv.notify_all();
    }
}

impl Park for DeathPark {
    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> Wake {
        let guard = self.lock.lock().unwrap();
        if word.load(Ordering::SeqCst) != expected {
            return Wake::Woken;
        }
        if self.expired(expected) || deadline.is_some() {
            return Wake::TimedOut;
        }
        drop(self.cv.wait(guard).unwrap());
        Wake::Woken
    }

    fn wake(&self, _word: &AtomicU32, _n: u32) {
        let _g = self.lock.lock().unwrap();
        self.cv.notify_all();
    }
}

impl Liveness for DeathPark {
    fn is_dead(&self, h: Holder) -> bool {
        self.dead
            .get(h.tid() as usize)
            .is_some_and(|d| d.load(Ordering::SeqCst))
    }
}
