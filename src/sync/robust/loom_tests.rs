//! loom models of the robust lock state machine.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test --lib --release robust`.
//! A lost wake-up shows as a loom deadlock; a broken mutual exclusion as a
//! wrong count; a false take-over as an unexpected `OwnerDied`.

use super::*;
use crate::sync::loom_death::DeathPark;
use loom::sync::Arc;
use loom::thread;

struct World {
    lock: RobustState,
    park: DeathPark,
    /// Data guarded by the lock, accessed with a racy load+store pair.
    data: AtomicU32,
}

fn id(tid: u32) -> TaskId {
    TaskId {
        tid,
        start: 10 + u64::from(tid),
    }
}

fn world() -> Arc<World> {
    Arc::new(World {
        lock: RobustState::default(),
        park: DeathPark::new(Some(owner_of)),
        data: AtomicU32::new(0),
    })
}

fn locked_increment(w: &World, tid: u32) -> Acquired {
    let how = w.lock.lock(id(tid), &w.park, &w.park, None).unwrap();
    // Relaxed load then store: only mutual exclusion makes the sum exact.
    let v = w.data.load(Ordering::Relaxed);
    w.data.store(v + 1, Ordering::Relaxed);
    w.lock.unlock(id(tid), &w.park).unwrap();
    how
}

#[test]
fn loom_robust_mutual_exclusion() {
    loom::model(|| {
        let w = world();
        let w2 = w.clone();
        let t = thread::spawn(move || locked_increment(&w2, 1));
        let a = locked_increment(&w, 2);
        let b = t.join().unwrap();
        assert_eq!(
            (a, b),
            (Acquired::Clean, Acquired::Clean),
            "no false take-over"
        );
        // Relaxed: join ordered everything.
        assert_eq!(w.data.load(Ordering::Relaxed), 2);
        assert_eq!(w.lock.owner(), 0);
    });
}

#[test]
fn loom_robust_three_contenders() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.check(|| {
        let w = world();
        let ts: Vec<_> = (1..=2)
            .map(|t| {
                let w = w.clone();
                thread::spawn(move || locked_increment(&w, t))
            })
            .collect();
        locked_increment(&w, 3);
        for t in ts {
            assert_eq!(t.join().unwrap(), Acquired::Clean);
        }
        assert_eq!(w.data.load(Ordering::Relaxed), 3);
    });
}

/// Thread 1 takes the lock and dies holding it (its death is a flag plus the
/// wake-up that a slice expiry gives in production). Thread 2 must get the
/// lock, reporting `OwnerDied` exactly when thread 1 held it first.
#[test]
fn loom_robust_owner_dies() {
    loom::model(|| {
        let w = world();
        let w1 = w.clone();
        let dier = thread::spawn(move || {
            let how = w1.lock.lock(id(1), &w1.park, &w1.park, None).unwrap();
            assert_eq!(how, Acquired::Clean);
            w1.data.store(1, Ordering::Relaxed);
            w1.park.die(1);
        });
        let how = w.lock.lock(id(2), &w.park, &w.park, None).unwrap();
        // SeqCst: pairs with the dier's flag store.
        let died_first = w.park.dead[1].load(Ordering::SeqCst);
        match how {
            Acquired::OwnerDied => assert!(died_first, "take-over of a live owner"),
            Acquired::Clean => {
                // We got it before thread 1: it cannot have entered yet.
                assert_eq!(w.data.load(Ordering::Relaxed), 0);
            }
        }
        w.lock.unlock(id(2), &w.park).unwrap();
        dier.join().unwrap();
    });
}

/// A holder dies while two others wait: exactly one of them takes over, the
/// other then gets the lock cleanly (the take-over must keep WAITERS so the
/// second sleeper is woken).
#[test]
fn loom_robust_owner_dies_two_waiters() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.check(|| {
        let w = world();
        w.lock.lock(id(1), &w.park, &w.park, None).unwrap();
        let w2 = w.clone();
        let t = thread::spawn(move || {
            let how = w2.lock.lock(id(2), &w2.park, &w2.park, None).unwrap();
            w2.lock.unlock(id(2), &w2.park).unwrap();
            how
        });
        let w3 = w.clone();
        let u = thread::spawn(move || {
            let how = w3.lock.lock(id(3), &w3.park, &w3.park, None).unwrap();
            w3.lock.unlock(id(3), &w3.park).unwrap();
            how
        });
        // Thread 1 (this one) dies holding the lock.
        w.park.die(1);
        let a = t.join().unwrap();
        let b = u.join().unwrap();
        let died = [a, b].iter().filter(|h| **h == Acquired::OwnerDied).count();
        assert_eq!(died, 1, "exactly one take-over: {a:?} {b:?}");
        assert_eq!(w.lock.owner(), 0);
    });
}

/// A timed acquire against a live owner gives up without breaking the lock.
#[test]
fn loom_robust_timeout_then_release() {
    loom::model(|| {
        let w = world();
        let w1 = w.clone();
        let holder = thread::spawn(move || locked_increment(&w1, 1));
        let past = Instant::now();
        match w.lock.lock(id(2), &w.park, &w.park, Some(past)) {
            Ok(how) => {
                assert_eq!(how, Acquired::Clean);
                w.lock.unlock(id(2), &w.park).unwrap();
            }
            Err(e) => assert_eq!(e, AcquireError::Timeout),
        }
        holder.join().unwrap();
        assert_eq!(w.lock.owner(), 0);
        assert_eq!(w.data.load(Ordering::Relaxed), 1);
    });
}
