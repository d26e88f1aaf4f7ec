//! loom models of the barrier's round state machine.
//!
//! Run: `LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom
//! cargo test --lib --release loom_barrier`.
//! A lost wake-up shows as a loom deadlock; a party released before the
//! action or with a wrong index, a reset party that "passes", or a dead party
//! that goes unnoticed as a failed assertion (or a deadlock).

use super::*;
use crate::sync::loom_death::DeathPark;
use loom::sync::Arc;
use loom::thread;

struct World {
    word: WaitWord,
    outcomes: [AtomicU32; 2],
    records: Vec<Record>,
    park: DeathPark,
    /// Data written before arriving, or by the action.
    data: AtomicU32,
}

impl World {
    fn raw(&self) -> RawBarrier<'_> {
        RawBarrier {
            word: &self.word,
            outcomes: &self.outcomes,
            records: &self.records,
        }
    }

    fn wait(
        &self,
        tid: u32,
        action: Option<&dyn Fn()>,
        deadline: Option<Instant>,
    ) -> Result<u32, BarrierError> {
        self.raw()
            .wait(id(tid), &self.park, &self.park, action, deadline)
    }
}

fn world(parties: usize) -> Arc<World> {
    Arc::new(World {
        word: WaitWord::default(),
        outcomes: [AtomicU32::new(0), AtomicU32::new(0)],
        records: (0..parties).map(|_| Record::default()).collect(),
        park: DeathPark::new(None),
        data: AtomicU32::new(0),
    })
}

fn id(tid: u32) -> TaskId {
    TaskId {
        tid,
        start: 10 + u64::from(tid),
    }
}

/// Two parties: distinct indexes, and each sees what the other wrote
/// before arriving.
#[test]
fn loom_barrier_two_parties() {
    loom::model(|| {
        let w = world(2);
        let w2 = w.clone();
        let t = thread::spawn(move || {
            // Relaxed: the barrier must order it.
            w2.data.fetch_add(1, Ordering::Relaxed);
            let i = w2.wait(1, None, None).unwrap();
            (i, w2.data.load(Ordering::Relaxed))
        });
        w.data.fetch_add(1, Ordering::Relaxed);
        let mine = w.wait(2, None, None).unwrap();
        assert_eq!(w.data.load(Ordering::Relaxed), 2);
        let (theirs, seen) = t.join().unwrap();
        assert_eq!(seen, 2);
        let mut idx = [mine, theirs];
        idx.sort_unstable();
        assert_eq!(idx, [0, 1]);
        assert_eq!(w.raw().n_waiting(), 0);
    });
}

/// The action runs once, in one party, before either party is released.
#[test]
fn loom_barrier_action_runs_once_before_the_release() {
    loom::model(|| {
        let w = world(2);
        let w2 = w.clone();
        let t = thread::spawn(move || {
            let act = || {
                w2.data.fetch_add(1, Ordering::Relaxed);
            };
            w2.wait(1, Some(&act), None).unwrap();
            w2.data.load(Ordering::Relaxed)
        });
        let act = || {
            w.data.fetch_add(1, Ordering::Relaxed);
        };
        w.wait(2, Some(&act), None).unwrap();
        assert_eq!(w.data.load(Ordering::Relaxed), 1);
        assert_eq!(t.join().unwrap(), 1);
    });
}

/// A party whose deadline passes breaks the round: both parties pass, or
/// both get `Broken`, never one of each, and nobody hangs.
#[test]
fn loom_barrier_a_timeout_breaks_the_round_for_both() {
    loom::model(|| {
        let w = world(2);
        let w2 = w.clone();
        let t = thread::spawn(move || w2.wait(1, None, Some(Instant::now())).map(|_| ()));
        let mine = w.wait(2, None, None).map(|_| ());
        let theirs = t.join().unwrap();
        assert_eq!(mine, theirs);
        assert_eq!(mine.is_err(), w.raw().broken());
    });
}

/// A reset fails the party waiting in the old round, even when it looks
/// only after a new round was released, and the new round works.
#[test]
fn loom_barrier_reset_fails_the_waiter_then_a_new_round_passes() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.check(|| {
        let w = world(2);
        let w1 = w.clone();
        let old = thread::spawn(move || w1.wait(1, None, None));
        while w.raw().n_waiting() == 0 {
            thread::yield_now();
        }
        w.raw().reset(&w.park);
        let w3 = w.clone();
        let other = thread::spawn(move || w3.wait(3, None, None));
        let mine = w.wait(2, None, None);
        assert!(mine.is_ok());
        assert!(other.join().unwrap().is_ok());
        assert_eq!(old.join().unwrap(), Err(BarrierError::Broken));
        assert!(!w.raw().broken());
    });
}

/// A party that arrived and died while waiting breaks the round for the
/// party that waits with it.
#[test]
fn loom_barrier_a_dead_waiting_party_breaks_the_round() {
    loom::model(|| {
        let w = world(3);
        // Party 1 arrives (claims its record, counts itself), then dies.
        assert!(matches!(
            w.raw().arrive(id(1), &w.park, &w.park, None),
            Ok(Arrival::Waiting { index: 0, .. })
        ));
        let w2 = w.clone();
        let t = thread::spawn(move || w2.wait(2, None, None));
        w.park.die(1);
        assert_eq!(t.join().unwrap(), Err(BarrierError::Broken));
        assert!(w.raw().broken());
    });
}

/// `abort` fails a waiting party (or one that arrives after it) and every
/// later wait.
#[test]
fn loom_barrier_abort_fails_the_waiter() {
    loom::model(|| {
        let w = world(2);
        let w2 = w.clone();
        let t = thread::spawn(move || w2.wait(1, None, None));
        w.raw().abort(&w.park);
        assert_eq!(t.join().unwrap(), Err(BarrierError::Broken));
        assert_eq!(w.wait(2, None, None), Err(BarrierError::Broken));
    });
}
