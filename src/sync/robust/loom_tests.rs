//! loom models of the robust lock state machine.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test --lib --release robust`.
//! A lost wake-up shows as a loom deadlock; a broken mutual exclusion as a
//! wrong count; a false take-over as an unexpected `OwnerDied`.

use super::*;
use loom::sync::atomic::AtomicBool;
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;

/// The futex table of `park::loom_park`, plus the one thing production slices
/// give: a sleeper on a word whose owner is dead returns at once (its slice
/// expires). A death is a flag set under the table's mutex, so it cannot slip
/// between a waiter's check and its sleep.
struct DeathPark {
    lock: Mutex<()>,
    cv: Condvar,
    dead: [AtomicBool; 4],
}

impl DeathPark {
    fn new() -> Self {
        DeathPark {
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

    fn owner_dead(&self, word: u32) -> bool {
        self.dead
            .get(owner_of(word) as usize)
            .is_some_and(|d| d.load(Ordering::SeqCst))
    }

    /// Thread `tid` dies: from now on it is dead and its slices expire.
    fn die(&self, tid: u32) {
        let _g = self.lock.lock().unwrap();
        self.dead[tid as usize].store(true, Ordering::SeqCst);
        self.cv.notify_all();
    }
}

impl Park for DeathPark {
    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> Wake {
        let guard = self.lock.lock().unwrap();
        let now = word.load(Ordering::SeqCst);
        if now != expected {
            return Wake::Woken;
        }
        if self.owner_dead(now) || deadline.is_some() {
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
        park: DeathPark::new(),
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
