//! Unit tests of the slot ring on the heap (std atomics, no blocking).
use super::*;
use crate::sync::park::Futex;

struct VecSlots(Vec<Slot>);
impl Slots for VecSlots {
    fn cap(&self) -> u64 {
        self.0.len() as u64
    }
    fn slot(&self, idx: u64) -> &Slot {
        &self.0[idx as usize]
    }
}

fn ring_of(cap: u64) -> (RingCtrl, VecSlots) {
    let slots: Vec<Slot> = (0..cap).map(|_| Slot::default()).collect();
    for (i, s) in slots.iter().enumerate() {
        s.state.store(i as u64, Ordering::Relaxed);
    }
    (RingCtrl::default(), VecSlots(slots))
}

const ME: TaskId = TaskId { tid: 5, start: 9 };

fn put(r: &Ring<'_, VecSlots>) -> u64 {
    let Ok(Attempt::Got(c)) = r.try_claim_put(ME) else {
        panic!("put stalled")
    };
    r.publish(c, 8, 0, &Futex);
    c.pos
}

fn get(r: &Ring<'_, VecSlots>) -> u64 {
    let Ok(Attempt::Got(c)) = r.try_claim_get(ME, false) else {
        panic!("get stalled")
    };
    r.release(c, &Futex);
    c.pos
}

#[test]
fn regressed_hints_catch_up_in_order() {
    let (ctrl, slots) = ring_of(4);
    let r = Ring {
        ctrl: &ctrl,
        slots: &slots,
    };
    for i in 0..40 {
        assert_eq!(put(&r), i);
        assert_eq!(get(&r), i);
    }
    // A claimer preempted for many laps stores an ancient hint.
    ctrl.tail.0.store(3, Ordering::Relaxed);
    ctrl.head.0.store(1, Ordering::Relaxed);
    assert_eq!(put(&r), 40, "no position skipped, none reused");
    assert_eq!(get(&r), 40);
    assert_eq!(r.len_hint(), 0);
}

#[test]
fn full_and_empty_stalls_are_protocol_states() {
    let (ctrl, slots) = ring_of(2);
    let r = Ring {
        ctrl: &ctrl,
        slots: &slots,
    };
    let Ok(Attempt::Stall { pos, state }) = r.try_claim_get(ME, false) else {
        panic!("empty ring must stall")
    };
    r.check_stall(Side::Get, pos, state).unwrap();
    put(&r);
    put(&r);
    let Ok(Attempt::Stall { pos, state }) = r.try_claim_put(ME) else {
        panic!("full ring must stall")
    };
    r.check_stall(Side::Put, pos, state).unwrap();
    // A scribbled state is not.
    slots.0[0].state.store(u64::MAX, Ordering::Relaxed);
    assert!(r.check_stall(Side::Put, pos, u64::MAX).is_err());
}

#[test]
fn reclaim_needs_a_dead_claimer() {
    struct Alive;
    impl Liveness for Alive {
        fn is_dead(&self, _: Holder) -> bool {
            false
        }
    }
    struct Dead;
    impl Liveness for Dead {
        fn is_dead(&self, h: Holder) -> bool {
            assert_eq!(
                h,
                Holder::low_bits(5, 9, 16),
                "the tag names the claim's start time"
            );
            true
        }
    }
    let (ctrl, slots) = ring_of(2);
    let r = Ring {
        ctrl: &ctrl,
        slots: &slots,
    };
    let Ok(Attempt::Got(_)) = r.try_claim_put(ME) else {
        panic!()
    };
    let Ok(Attempt::Stall { pos, state }) = r.try_claim_get(ME, false) else {
        panic!("a claimed, unpublished slot stalls gets")
    };
    assert!(!r.reclaim(pos, state, &Alive).unwrap());
    assert!(r.reclaim(pos, state, &Dead).unwrap());
    let Ok(Attempt::Got(c)) = r.try_claim_get(ME, false) else {
        panic!("the tombstone is claimable")
    };
    assert!(c.flags & DEAD != 0);
}

#[test]
fn len_counts_claims_not_hints() {
    let (ctrl, slots) = ring_of(8);
    let r = Ring {
        ctrl: &ctrl,
        slots: &slots,
    };
    for _ in 0..3 {
        put(&r);
    }
    get(&r);
    assert_eq!(r.len(), 2);
    // Two claimers' hint stores landed out of order: the hints lag.
    ctrl.tail.0.store(1, Ordering::Relaxed);
    ctrl.head.0.store(0, Ordering::Relaxed);
    assert_eq!(r.len_hint(), 1, "the hints alone undercount");
    assert_eq!(r.len(), 2, "the slot states say 2");
    // A hint a lap behind, and a slot claimed but not yet published.
    for _ in 0..6 {
        put(&r);
    }
    for _ in 0..8 {
        get(&r);
    }
    let Ok(Attempt::Got(_)) = r.try_claim_put(ME) else {
        panic!("room")
    };
    ctrl.tail.0.store(0, Ordering::Relaxed);
    ctrl.head.0.store(0, Ordering::Relaxed);
    assert_eq!(r.len(), 1, "an item whose put is under way counts");
}
