//! loom models of the slot ring (run with
//! `LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg loom" cargo test --lib --release loom_`).
//!
//! The preemption bound keeps the runs to seconds. Unbounded, loom 0.7.2 trips
//! its own internal assertion (`match_rmw_to_stores`: two stores with the same
//! modification order) on the blocking loops' many RMWs of one word after
//! minutes — a limit of the checker, not a finding.
//!
//! The slots live on the heap with loom atomics; each slot's data is a loom
//! `UnsafeCell`, so a missing Acquire/Release between a writer and a reader
//! shows up as a data race, and a lost wake-up as a deadlock (LoomPark).

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;

use super::*;
use crate::chan::block::{claim, Env, Until};
use crate::sync::park::loom_park::LoomPark;

struct HeapSlots {
    slots: Vec<Slot>,
    data: Vec<UnsafeCell<u64>>,
}

// SAFETY: the data cells are only accessed by the slot's current owner under
// the ring protocol, which is what the model checks.
unsafe impl Sync for HeapSlots {}
// SAFETY: as above.
unsafe impl Send for HeapSlots {}

impl Slots for HeapSlots {
    fn cap(&self) -> u64 {
        self.slots.len() as u64
    }
    fn slot(&self, idx: u64) -> &Slot {
        &self.slots[idx as usize]
    }
}

struct Model {
    ctrl: RingCtrl,
    slots: HeapSlots,
    park: LoomPark,
}

struct NeverDead;
impl Liveness for NeverDead {
    fn is_dead(&self, _: Holder) -> bool {
        false
    }
}
struct DeadTid(u32);
impl Liveness for DeadTid {
    fn is_dead(&self, h: Holder) -> bool {
        h.tid() == self.0
    }
}

fn model(cap: u64) -> Arc<Model> {
    let slots: Vec<Slot> = (0..cap).map(|_| Slot::default()).collect();
    for (i, s) in slots.iter().enumerate() {
        s.state.store(i as u64, Ordering::Relaxed);
    }
    Arc::new(Model {
        ctrl: RingCtrl::default(),
        slots: HeapSlots {
            slots,
            data: (0..cap).map(|_| UnsafeCell::new(0)).collect(),
        },
        park: LoomPark::default(),
    })
}

fn who(tid: u32) -> TaskId {
    TaskId { tid, start: 1 }
}

fn never_gone() -> bool {
    false
}

impl Model {
    fn ring(&self) -> Ring<'_, HeapSlots> {
        Ring {
            ctrl: &self.ctrl,
            slots: &self.slots,
        }
    }

    fn put(&self, me: TaskId, v: u64) {
        let env = Env {
            park: &self.park,
            live: &NeverDead,
            gone: &never_gone,
        };
        let ring = self.ring();
        let Ok(Attempt::Got(c)) = claim(&ring, Side::Put, me, false, &env, Until::Forever) else {
            panic!("put failed");
        };
        let idx = (c.pos % self.slots.cap()) as usize;
        // SAFETY: we own the slot (WRITING); loom checks nobody else touches it.
        self.slots.data[idx].with_mut(|p| unsafe { *p = v });
        ring.publish(c, 8, 0, &self.park);
    }

    fn get(&self, me: TaskId, live: &impl Liveness) -> Option<u64> {
        let env = Env {
            park: &self.park,
            live,
            gone: &never_gone,
        };
        let ring = self.ring();
        let Ok(Attempt::Got(c)) = claim(&ring, Side::Get, me, false, &env, Until::Forever) else {
            panic!("get failed");
        };
        let idx = (c.pos % self.slots.cap()) as usize;
        let v = if c.flags & DEAD != 0 {
            None
        } else {
            // SAFETY: we own the slot (READING); the writer published it.
            Some(self.slots.data[idx].with(|p| unsafe { *p }))
        };
        ring.release(c, &self.park);
        v
    }
}

#[test]
fn loom_spsc_in_order() {
    loom::model(|| {
        let m = model(1);
        let m2 = m.clone();
        let p = thread::spawn(move || {
            m2.put(who(1), 10);
            m2.put(who(1), 11);
        });
        assert_eq!(m.get(who(2), &NeverDead), Some(10));
        assert_eq!(m.get(who(2), &NeverDead), Some(11));
        p.join().unwrap();
    });
}

#[test]
fn loom_two_producers_one_consumer() {
    loom::model(|| {
        let m = model(2);
        let hs: Vec<_> = (0..2u32)
            .map(|i| {
                let m = m.clone();
                thread::spawn(move || m.put(who(10 + i), u64::from(i)))
            })
            .collect();
        let mut got = [m.get(who(1), &NeverDead), m.get(who(1), &NeverDead)];
        got.sort();
        assert_eq!(got, [Some(0), Some(1)]);
        for h in hs {
            h.join().unwrap();
        }
    });
}

#[test]
fn loom_two_consumers_each_item_once() {
    loom::model(|| {
        let m = model(1);
        let m1 = m.clone();
        let c1 = thread::spawn(move || m1.get(who(21), &NeverDead));
        let m2 = m.clone();
        let c2 = thread::spawn(move || m2.get(who(22), &NeverDead));
        m.put(who(1), 5);
        m.put(who(1), 6);
        let mut got = [c1.join().unwrap(), c2.join().unwrap()];
        got.sort();
        assert_eq!(got, [Some(5), Some(6)]);
    });
}

#[test]
fn loom_dead_writer_becomes_tombstone() {
    loom::model(|| {
        let m = model(2);
        // Writer 7 claims position 0 and dies before publishing.
        let ring = m.ring();
        let Ok(Attempt::Got(_)) = ring.try_claim_put(who(7)) else {
            panic!("claim failed")
        };
        let m2 = m.clone();
        let p = thread::spawn(move || m2.put(who(8), 42));
        // The consumer stalls on position 0 until it reclaims it.
        let ring = m.ring();
        loop {
            match ring.try_claim_get(who(9), false).unwrap() {
                Attempt::Stall { pos, state } => {
                    if !ring.reclaim(pos, state, &DeadTid(7)).unwrap() {
                        thread::yield_now();
                    }
                }
                Attempt::Got(c) => {
                    assert!(c.flags & DEAD != 0, "position 0 is the tombstone");
                    ring.release(c, &m.park);
                    break;
                }
                Attempt::Bulk => unreachable!(),
            }
        }
        p.join().unwrap();
        assert_eq!(m.get(who(9), &NeverDead), Some(42));
    });
}

#[test]
fn loom_dead_reader_slot_is_freed() {
    loom::model(|| {
        let m = model(1);
        m.put(who(1), 5);
        // Reader 7 claims position 0 and dies before releasing it.
        let ring = m.ring();
        let Ok(Attempt::Got(_)) = ring.try_claim_get(who(7), false) else {
            panic!("claim failed")
        };
        let m2 = m.clone();
        let c = thread::spawn(move || m2.get(who(9), &NeverDead));
        // The producer stalls on the held slot until it frees it.
        let ring = m.ring();
        loop {
            match ring.try_claim_put(who(1)).unwrap() {
                Attempt::Stall { pos, state } => {
                    if !ring.reclaim(pos, state, &DeadTid(7)).unwrap() {
                        thread::yield_now();
                    }
                }
                Attempt::Got(cl) => {
                    let idx = (cl.pos % m.slots.cap()) as usize;
                    // SAFETY: we own the slot (WRITING).
                    m.slots.data[idx].with_mut(|p| unsafe { *p = 6 });
                    ring.publish(cl, 8, 0, &m.park);
                    break;
                }
                Attempt::Bulk => unreachable!(),
            }
        }
        assert_eq!(
            c.join().unwrap(),
            Some(6),
            "only the dead reader's message is lost"
        );
    });
}

impl Model {
    /// Puts `vals` as one run (as `Chan::put_batch`): a blocking claim for
    /// the first, direct claims after it, Release-store publishes, one
    /// `end_run`. A direct claim that fails ends the run and blocks.
    fn put_run(&self, me: TaskId, vals: &[u64]) {
        let env = Env {
            park: &self.park,
            live: &NeverDead,
            gone: &never_gone,
        };
        let ring = self.ring();
        let (mut next, mut n) = (0u64, 0u32);
        for &v in vals {
            let c = if n > 0 && ring.try_claim_put_at(next, me) {
                Claim {
                    pos: next,
                    flags: 0,
                }
            } else {
                if n > 0 {
                    ring.end_run(Side::Get, next, n, &self.park);
                    n = 0;
                }
                let Ok(Attempt::Got(c)) = claim(&ring, Side::Put, me, false, &env, Until::Forever)
                else {
                    panic!("put failed");
                };
                c
            };
            let idx = (c.pos % self.slots.cap()) as usize;
            // SAFETY: we own the slot (WRITING); loom checks nobody else touches it.
            self.slots.data[idx].with_mut(|p| unsafe { *p = v });
            ring.publish(c, 8, 0, &self.park);
            (next, n) = (c.pos + 1, n + 1);
        }
        if n > 0 {
            ring.end_run(Side::Get, next, n, &self.park);
        }
    }

    /// Gets one item blocking, then up to `more` ready ones as a run (as
    /// `Chan::get_batch`), freeing each slot with a Release store.
    fn get_run(&self, me: TaskId, more: usize) -> Vec<u64> {
        let env = Env {
            park: &self.park,
            live: &NeverDead,
            gone: &never_gone,
        };
        let ring = self.ring();
        let Ok(Attempt::Got(mut c)) = claim(&ring, Side::Get, me, false, &env, Until::Forever)
        else {
            panic!("get failed");
        };
        let mut out = Vec::new();
        loop {
            let idx = (c.pos % self.slots.cap()) as usize;
            // SAFETY: we own the slot (READING); the writer published it.
            out.push(self.slots.data[idx].with(|p| unsafe { *p }));
            ring.release(c, &self.park);
            if out.len() > more {
                break;
            }
            match ring.try_claim_get_at(c.pos + 1, me) {
                Some(n) => c = n,
                None => break,
            }
        }
        ring.end_run(Side::Put, c.pos + 1, out.len() as u32, &self.park);
        out
    }
}

#[test]
fn loom_runs_lose_no_wakeup_and_keep_order() {
    loom::model(|| {
        let m = model(2);
        let m2 = m.clone();
        // Three items through two slots: the producer's run breaks on a full
        // ring and must be woken by the consumer's run end, and vice versa.
        let p = thread::spawn(move || m2.put_run(who(1), &[1, 2, 3]));
        let mut got = m.get_run(who(2), 1);
        while got.len() < 3 {
            got.extend(m.get_run(who(2), 2 - got.len()));
        }
        assert_eq!(got, [1, 2, 3]);
        p.join().unwrap();
    });
}
