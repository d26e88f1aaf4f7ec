//! loom models of the semaphore, event and condition algorithms.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test --lib --release signal`.
//! A lost wake-up shows as a loom deadlock.

use super::*;
use crate::sync::atomic::AtomicU32;
use crate::sync::liveness::Liveness;
use crate::sync::park::loom_park::LoomPark;
use crate::sync::robust::RobustState;
use crate::sys::task::{Holder, TaskId};
use loom::sync::Arc;
use loom::thread;

#[test]
fn loom_semaphore_one_permit_excludes() {
    loom::model(|| {
        let s = Arc::new((
            RawSemaphore::default(),
            LoomPark::default(),
            AtomicU32::new(0),
        ));
        s.0.init(1);
        let worker = |s: &(RawSemaphore, LoomPark, AtomicU32)| {
            s.0.acquire(&s.1, None).unwrap();
            // Relaxed load+store: only the permit makes the sum exact.
            let v = s.2.load(Ordering::Relaxed);
            s.2.store(v + 1, Ordering::Relaxed);
            s.0.release(&s.1, 1).unwrap();
        };
        let s2 = s.clone();
        let t = thread::spawn(move || worker(&s2));
        worker(&s);
        t.join().unwrap();
        assert_eq!(s.2.load(Ordering::Relaxed), 2);
        assert_eq!(s.0.value(), 1);
    });
}

#[test]
fn loom_event_set_wakes_waiter() {
    loom::model(|| {
        let e = Arc::new((RawEvent::default(), LoomPark::default()));
        let e2 = e.clone();
        let t = thread::spawn(move || e2.0.wait(&e2.1, None));
        e.0.set(&e.1);
        assert!(t.join().unwrap());
    });
}

struct Alive;
impl Liveness for Alive {
    fn is_dead(&self, _: Holder) -> bool {
        false
    }
}

/// The Condition protocol: the waiter reads `seq` under the lock, unlocks,
/// sleeps; the notifier sets the predicate under the lock and notifies.
#[test]
fn loom_condition_no_lost_notify() {
    loom::model(|| {
        struct C {
            lock: RobustState,
            cond: RawCondition,
            park: LoomPark,
            ready: AtomicU32,
        }
        let c = Arc::new(C {
            lock: RobustState::default(),
            cond: RawCondition::default(),
            park: LoomPark::default(),
            ready: AtomicU32::new(0),
        });
        let me = |tid| TaskId { tid, start: 1 };
        let c2 = c.clone();
        let t = thread::spawn(move || {
            c2.lock.lock(me(1), &c2.park, &Alive, None).unwrap();
            c2.ready.store(1, Ordering::Relaxed);
            c2.cond.notify(&c2.park, 1);
            c2.lock.unlock(me(1), &c2.park).unwrap();
        });
        c.lock.lock(me(2), &c.park, &Alive, None).unwrap();
        while c.ready.load(Ordering::Relaxed) == 0 {
            let seen = c.cond.prepare();
            c.lock.unlock(me(2), &c.park).unwrap();
            c.cond.wait(&c.park, seen, None);
            c.lock.lock(me(2), &c.park, &Alive, None).unwrap();
        }
        c.lock.unlock(me(2), &c.park).unwrap();
        t.join().unwrap();
    });
}
