//! The barrier's round state machine (no syscalls): Python's `Barrier`
//! semantics across processes. Protocol, state table and crash cases:
//! `docs/protocols/barrier.md`.
//!
//! It blocks only through [`Park`] and learns whether a party is dead only
//! through [`Liveness`] (the robust lock's: `/proc` in production, a flag in
//! the loom models), so the same code runs on real futexes between processes
//! and on loom's model.
//!
//! `state` (the futex word): generation in bits 17..32, [`BROKEN`] = bit 16,
//! arrival count in bits 0..16.
//!
//! | `state`              | meaning |
//! |----------------------|---------|
//! | `g, c < parties`     | round `g` filling: `c` parties arrived (records `0..c` claimed for `g`) |
//! | `g, c == parties`    | round `g` complete: its last party runs the action, then releases |
//! | `g + 1, 0`           | round `g` released (or reset): round `g + 1` filling |
//! | `g, BROKEN, c`       | round `g` broken (a timeout, `abort`, a dead party, a panicking action): every wait fails until `reset` |
//!
//! A party first claims the record of the index it is about to take (its
//! thread id and start time, tagged with the round), then counts itself with
//! a CAS of `state`; a party that finds a record claimed but not counted
//! counts it for its claimer. So every counted party has a record other
//! parties can check for liveness, even one that dies right after claiming.

use std::time::Instant;

use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::sync::liveness::Liveness;
use crate::sync::park::{Park, Wake};
use crate::sync::wait::{self, WaitWord};
use crate::sys::task::{Holder, TaskId};

/// Largest number of parties (the count has 16 bits).
pub(crate) const MAX_PARTIES: u32 = 0xffff;
const COUNT_MASK: u32 = 0xffff;
/// Set while the current round is broken.
pub(crate) const BROKEN: u32 = 1 << 16;
const GEN_SHIFT: u32 = 17;
const GEN_ONE: u32 = 1 << GEN_SHIFT;

/// Whether the round of `state` is broken.
#[inline]
pub(crate) fn is_broken(state: u32) -> bool {
    state & BROKEN != 0
}

/// The arrival count of `state`.
#[inline]
fn count(state: u32) -> u32 {
    state & COUNT_MASK
}

/// The round (generation, 15 bits) of `state`.
#[inline]
fn gen(state: u32) -> u32 {
    state >> GEN_SHIFT
}

/// The state that starts the round after `state`'s: count 0, not broken.
#[inline]
fn next_round(state: u32) -> u32 {
    (state & !(COUNT_MASK | BROKEN)).wrapping_add(GEN_ONE)
}

/// A record's claim: the round in the high half, the party's thread id in
/// the low half (never 0 for a claimed record).
#[inline]
fn tag(round: u32, tid: u32) -> u64 {
    u64::from(round) << 32 | u64::from(tid)
}

#[inline]
fn claimed_in(claim: u64, round: u32) -> bool {
    (claim >> 32) as u32 == round && claim as u32 != 0
}

/// The value an outcome slot holds when round `round` ended by `reset`.
#[inline]
fn reset_mark(round: u32) -> u32 {
    round << 1 | 1
}

/// One party's arrival in a round: who it is, for liveness checks.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct Record {
    /// `tag(round, tid)`, claimed by CAS.
    claim: AtomicU64,
    /// The party's start time (pid-reuse check).
    start: AtomicU64,
    /// Equals `claim` once `start` is stored (published).
    echo: AtomicU64,
}

#[cfg(not(loom))]
mod shm {
    use super::*;
    const _: () = assert!(std::mem::size_of::<Record>() == 24);
    // SAFETY: three std u64 atomics, as above.
    unsafe impl crate::segment::ShmSafe for Record {}
}

/// Why a barrier wait failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BarrierError {
    /// The round was broken (or reset) before it was released.
    Broken,
    /// The shared count is above the party count (a peer scribbled).
    Corrupt {
        /// The count found.
        count: u32,
    },
}

/// Where an arrival stands.
enum Arrival {
    /// Counted as `index` in round `round`: wait for its end.
    Waiting { round: u32, index: u32 },
    /// The round already ended, released: passed as `index`.
    Passed(u32),
}

/// One barrier's shared state, borrowed from wherever it lives.
///
/// `outcomes[g % len]` holds [`reset_mark`]`(g)` once round `g` ended by a
/// reset: a party that wakes after its round ended (and the state moved on,
/// maybe by several rounds) learns there whether it passed or was reset.
/// Only resets write it, while their round is broken and can no longer be
/// released; nothing clears it.
pub(crate) struct RawBarrier<'a> {
    /// The state (a wait word: the state is its futex word).
    pub(crate) word: &'a WaitWord,
    /// Round outcomes (at least one slot).
    pub(crate) outcomes: &'a [AtomicU32],
    /// One record per party: `records.len()` is the party count.
    pub(crate) records: &'a [Record],
}

impl RawBarrier<'_> {
    fn parties(&self) -> u32 {
        self.records.len() as u32
    }

    fn load(&self) -> u32 {
        // SYNC POINT: barrier-state (Acquire pairs with the AcqRel/Release
        // CASes of arrivals, releases and resets).
        self.word.word().load(Ordering::Acquire)
    }

    /// Arrives and waits until every party has arrived; the last one runs
    /// `action` before the others are released. Returns the arrival index,
    /// `0..parties` (the last to arrive gets `parties - 1`).
    ///
    /// # Errors
    /// `Broken` if the round breaks (this wait's `deadline` passing breaks
    /// it; so do `abort`, `reset`, a dead party and a panicking action) or
    /// was broken already; `Corrupt` for an impossible count.
    ///
    /// # Panics
    /// Whatever `action` panics with, after breaking the round.
    pub(crate) fn wait<P: Park, L: Liveness>(
        &self,
        me: TaskId,
        park: &P,
        live: &L,
        action: Option<&dyn Fn()>,
        deadline: Option<Instant>,
    ) -> Result<u32, BarrierError> {
        debug_assert!((1..=MAX_PARTIES).contains(&self.parties()) && !self.outcomes.is_empty());
        match self.arrive(me, park, live, deadline)? {
            Arrival::Passed(index) => Ok(index),
            Arrival::Waiting { round, index } if index + 1 == self.parties() => {
                self.complete(park, round, index, action)
            }
            Arrival::Waiting { round, index } => {
                self.wait_round(park, live, round, index, deadline)
            }
        }
    }

    /// Claims the next index's record, then counts the arrival.
    fn arrive<P: Park, L: Liveness>(
        &self,
        me: TaskId,
        park: &P,
        live: &L,
        deadline: Option<Instant>,
    ) -> Result<Arrival, BarrierError> {
        let parties = self.parties();
        let mut checks = 0;
        loop {
            let s = self.load();
            if is_broken(s) {
                return Err(BarrierError::Broken);
            }
            let (round, c) = (gen(s), count(s));
            if c > parties {
                return Err(BarrierError::Corrupt { count: c });
            }
            if c == parties {
                // The last round's action runs: wait for its release.
                self.sleep_once(park, live, s, None, &mut checks, deadline);
                continue;
            }
            let rec = &self.records[c as usize];
            // SYNC POINT: barrier-record (Acquire pairs with the claimer's
            // AcqRel CAS: counting it for the claimer passes its writes on).
            let r = rec.claim.load(Ordering::Acquire);
            if claimed_in(r, round) {
                // Claimed for this round, not counted yet: count it for its
                // claimer. AcqRel as every arrival (see `count_in`).
                let _ = self.word.word().compare_exchange(
                    s,
                    s + 1,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                );
                continue;
            }
            let mine = tag(round, me.tid);
            // SYNC POINT: barrier-record. AcqRel: releases our writes to the
            // party that counts us; a stale claim is overwritten only by CAS.
            if rec
                .claim
                .compare_exchange(r, mine, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            // Relaxed: published by the Release store of `echo`.
            rec.start.store(me.start, Ordering::Relaxed);
            // SYNC POINT: barrier-echo (Release pairs with `party_dead`).
            rec.echo.store(mine, Ordering::Release);
            return self.count_in(s, round, c);
        }
    }

    /// Counts our claimed index `c` of `round` (unless a helper did).
    fn count_in(&self, mut s: u32, round: u32, c: u32) -> Result<Arrival, BarrierError> {
        loop {
            // SYNC POINT: barrier-state. AcqRel: each arrival releases what its
            // party wrote and acquires the earlier arrivals.
            match self
                .word
                .word()
                .compare_exchange(s, s + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(Arrival::Waiting { round, index: c }),
                Err(now) if gen(now) != round => return self.ended(round, c).map(Arrival::Passed),
                Err(now) if is_broken(now) => return Err(BarrierError::Broken),
                // Only our claimed record lets the count pass `c`: a helper.
                Err(now) if count(now) > c => return Ok(Arrival::Waiting { round, index: c }),
                Err(now) => s = now,
            }
        }
    }

    /// The last party: runs the action (breaking the round if it panics),
    /// then releases the round.
    fn complete<P: Park>(
        &self,
        park: &P,
        round: u32,
        index: u32,
        action: Option<&dyn Fn()>,
    ) -> Result<u32, BarrierError> {
        if let Some(action) = action {
            /// Breaks the round if the action unwinds.
            struct BreakOnUnwind<'b, 'a, P: Park>(&'b RawBarrier<'a>, &'b P, u32);
            impl<P: Park> Drop for BreakOnUnwind<'_, '_, P> {
                fn drop(&mut self) {
                    if std::thread::panicking() {
                        self.0.break_round(self.1, self.2);
                    }
                }
            }
            let guard = BreakOnUnwind(self, park, round);
            action();
            drop(guard);
        }
        // Relaxed: the CAS below validates.
        let mut s = self.word.word().load(Ordering::Relaxed);
        loop {
            if gen(s) != round {
                return self.ended(round, index); // reset during the action
            }
            if is_broken(s) {
                return Err(BarrierError::Broken);
            }
            if count(s) != self.parties() {
                return Err(BarrierError::Corrupt { count: count(s) });
            }
            // SYNC POINT: barrier-state. AcqRel: the waiters that see the new
            // round also see every party's writes and the action's; SeqCst:
            // the waker's change of SYNC POINT: dekker (sync/wait.rs).
            match self.word.word().compare_exchange(
                s,
                next_round(s),
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.word.wake(park, u32::MAX);
                    return Ok(index);
                }
                Err(now) => s = now,
            }
        }
    }

    /// Waits, counted as `index` of `round`, until the round ends.
    fn wait_round<P: Park, L: Liveness>(
        &self,
        park: &P,
        live: &L,
        round: u32,
        index: u32,
        deadline: Option<Instant>,
    ) -> Result<u32, BarrierError> {
        let mut checks = 0;
        loop {
            let s = self.load();
            if gen(s) != round {
                return self.ended(round, index);
            }
            if is_broken(s) {
                return Err(BarrierError::Broken);
            }
            self.sleep_once(park, live, s, Some(index), &mut checks, deadline);
        }
    }

    /// How a round we were counted in ended, once the state moved past it.
    fn ended(&self, round: u32, index: u32) -> Result<u32, BarrierError> {
        let slot = &self.outcomes[round as usize % self.outcomes.len()];
        // Relaxed: ordered by the Acquire load or CAS that saw the new round
        // (the reset stored this before its Release CAS, and every later
        // change of the state is a read-modify-write in its release sequence).
        if slot.load(Ordering::Relaxed) == reset_mark(round) {
            Err(BarrierError::Broken)
        } else {
            Ok(index)
        }
    }

    /// Sleeps on `s` for one slice. When the slice ends with nothing
    /// changed: a passed `deadline` breaks the round, and so does a dead
    /// party (our successor among the arrivals, `index + 1`, or for a party
    /// not yet counted, the last party, which runs the action). The caller
    /// then reads the state again: the round may have been released just
    /// before the break (which then changed nothing).
    fn sleep_once<P: Park, L: Liveness>(
        &self,
        park: &P,
        live: &L,
        s: u32,
        index: Option<u32>,
        checks: &mut u32,
        deadline: Option<Instant>,
    ) {
        let interval = wait::slice(*checks);
        let until = match (interval.map(|d| Instant::now() + d), deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let woke = self.word.sleep_on(park, s, until);
        if woke == Wake::Woken && interval.is_some() {
            return;
        }
        if self.load() != s {
            return; // something happened: the caller looks again
        }
        if woke == Wake::TimedOut && deadline.is_some_and(|d| Instant::now() >= d) {
            self.break_round(park, gen(s));
            return;
        }
        *checks = checks.saturating_add(1);
        let n = count(s).min(self.parties());
        let watched = match index {
            Some(i) => (n > 1).then(|| (i + 1) % n),
            None => (n == self.parties()).then(|| n - 1),
        };
        if watched.is_some_and(|j| self.party_dead(live, gen(s), j)) {
            self.break_round(park, gen(s));
        }
    }

    /// Whether the party counted as `j` in `round` is dead.
    fn party_dead<L: Liveness>(&self, live: &L, round: u32, j: u32) -> bool {
        let Some(rec) = self.records.get(j as usize) else {
            return false;
        };
        // SYNC POINT: barrier-record.
        let claim = rec.claim.load(Ordering::Acquire);
        if !claimed_in(claim, round) {
            return false; // moved on (or scribbled): nothing to judge
        }
        // SYNC POINT: barrier-echo (Acquire pairs with the claimer's Release).
        let published = rec.echo.load(Ordering::Acquire) == claim;
        // Relaxed: ordered after the Acquire of `echo`.
        let start = published.then(|| rec.start.load(Ordering::Relaxed));
        let holder = match start {
            Some(start) => Holder::exact(TaskId {
                tid: claim as u32,
                start,
            }),
            None => Holder::unrecorded(claim as u32),
        };
        if !live.is_dead(holder) {
            return false;
        }
        // Relaxed: still the same party's record (a late round would have
        // reclaimed it; the caller's break is tied to the round anyway).
        rec.claim.load(Ordering::Relaxed) == claim
    }

    /// Breaks `round` if it is still the current, unbroken round.
    fn break_round<P: Park>(&self, park: &P, round: u32) {
        // Relaxed: breaking publishes no data; waiters re-read the state.
        let mut s = self.word.word().load(Ordering::Relaxed);
        while gen(s) == round && !is_broken(s) {
            // SeqCst on success: the waker's change of SYNC POINT: dekker.
            match self.word.word().compare_exchange_weak(
                s,
                s | BROKEN,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.word.wake(park, u32::MAX);
                    return;
                }
                Err(now) => s = now,
            }
        }
    }

    /// Breaks the current round (Python's `abort`): its waiters and every
    /// later wait fail until [`reset`](Self::reset).
    pub(crate) fn abort<P: Park>(&self, park: &P) {
        // Relaxed: as in `break_round`.
        let mut s = self.word.word().load(Ordering::Relaxed);
        while !is_broken(s) {
            // SeqCst on success: as in `break_round`.
            match self.word.word().compare_exchange_weak(
                s,
                s | BROKEN,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => s = now,
            }
        }
        self.word.wake(park, u32::MAX);
    }

    /// Ends the current round as broken (its waiters fail) and starts a new,
    /// empty one (Python's `reset`).
    pub(crate) fn reset<P: Park>(&self, park: &P) {
        // First break the round: a broken round can no longer be released,
        // so its outcome below cannot be contradicted.
        let mut s = self.load();
        while !is_broken(s) {
            // Relaxed: the Release CAS below publishes.
            match self.word.word().compare_exchange_weak(
                s,
                s | BROKEN,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => s |= BROKEN,
                Err(now) => s = now,
            }
        }
        let round = gen(s);
        // Relaxed: published by the Release CAS below.
        self.outcomes[round as usize % self.outcomes.len()]
            .store(reset_mark(round), Ordering::Relaxed);
        // SYNC POINT: barrier-state. Release: whoever sees the new round sees
        // the outcome. A broken state changes only by a reset: if this fails,
        // another reset started the new round already.
        // SeqCst on success: also the waker's change of SYNC POINT: dekker.
        let _ = self.word.word().compare_exchange(
            s,
            next_round(s),
            Ordering::SeqCst,
            Ordering::Relaxed,
        );
        self.word.wake(park, u32::MAX);
    }

    /// Whether the current round is broken.
    pub(crate) fn broken(&self) -> bool {
        // Relaxed: a snapshot.
        is_broken(self.word.word().load(Ordering::Relaxed))
    }

    /// How many parties wait in the current round (0 when broken); a
    /// snapshot.
    pub(crate) fn n_waiting(&self) -> u32 {
        // Relaxed: a snapshot.
        let s = self.word.word().load(Ordering::Relaxed);
        if is_broken(s) {
            0
        } else {
            count(s).min(self.parties())
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::park::Futex;
    use std::time::Duration;

    struct Dead(Vec<u32>);
    impl Liveness for Dead {
        fn is_dead(&self, h: Holder) -> bool {
            self.0.contains(&h.tid())
        }
    }

    struct Shm {
        word: WaitWord,
        outcomes: Vec<AtomicU32>,
        records: Vec<Record>,
    }

    fn shm(parties: usize) -> Shm {
        Shm {
            word: WaitWord::default(),
            outcomes: (0..4).map(|_| AtomicU32::new(0)).collect(),
            records: (0..parties).map(|_| Record::default()).collect(),
        }
    }

    impl Shm {
        fn raw(&self) -> RawBarrier<'_> {
            RawBarrier {
                word: &self.word,
                outcomes: &self.outcomes,
                records: &self.records,
            }
        }
    }

    fn id(tid: u32) -> TaskId {
        TaskId {
            tid,
            start: 100 + u64::from(tid),
        }
    }

    fn soon() -> Option<Instant> {
        Some(Instant::now() + Duration::from_millis(10))
    }

    #[test]
    fn one_party_passes_and_runs_the_action_every_round() {
        let s = shm(1);
        let ran = std::cell::Cell::new(0);
        let action = || ran.set(ran.get() + 1);
        for _ in 0..3 {
            assert_eq!(
                s.raw()
                    .wait(id(1), &Futex, &Dead(vec![]), Some(&action), None),
                Ok(0)
            );
        }
        assert_eq!(ran.get(), 3);
        assert_eq!(gen(s.word.word().load(Ordering::Relaxed)), 3);
    }

    #[test]
    fn a_timeout_breaks_the_round_until_reset() {
        let s = shm(2);
        let b = s.raw();
        assert_eq!(
            b.wait(id(1), &Futex, &Dead(vec![]), None, soon()),
            Err(BarrierError::Broken)
        );
        assert!(b.broken());
        assert_eq!(b.n_waiting(), 0);
        assert_eq!(
            b.wait(id(2), &Futex, &Dead(vec![]), None, None),
            Err(BarrierError::Broken),
            "a later wait fails at once"
        );
        b.reset(&Futex);
        assert!(!b.broken());
        assert_eq!(b.n_waiting(), 0);
        // The reset round is marked; the new one is not.
        assert_eq!(b.ended(0, 0), Err(BarrierError::Broken));
        assert_eq!(b.ended(1, 0), Ok(0));
    }

    #[test]
    fn a_dead_waiting_party_breaks_the_round() {
        let s = shm(3);
        let b = s.raw();
        // Party 7 arrives and "dies" waiting: its record names it.
        assert!(matches!(
            b.arrive(id(7), &Futex, &Dead(vec![]), None),
            Ok(Arrival::Waiting { index: 0, .. })
        ));
        assert_eq!(b.n_waiting(), 1);
        assert_eq!(
            b.wait(id(8), &Futex, &Dead(vec![7]), None, None),
            Err(BarrierError::Broken)
        );
        assert!(b.broken());
    }

    #[test]
    fn a_claimed_record_is_counted_by_the_next_party() {
        let s = shm(3);
        let b = s.raw();
        // A party claimed index 0 and stopped before counting itself.
        s.records[0].claim.store(tag(0, 7), Ordering::Relaxed);
        assert!(matches!(
            b.arrive(id(8), &Futex, &Dead(vec![]), None),
            Ok(Arrival::Waiting { index: 1, .. })
        ));
        assert_eq!(b.n_waiting(), 2);
    }

    #[test]
    fn a_panicking_action_breaks_the_round() {
        let s = shm(1);
        let b = s.raw();
        let boom = || panic!("action failed");
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            b.wait(id(1), &Futex, &Dead(vec![]), Some(&boom), None)
        }));
        assert!(r.is_err());
        assert!(b.broken());
    }

    #[test]
    fn corrupt_counts_are_errors() {
        let s = shm(2);
        s.word.word().store(9, Ordering::Relaxed);
        assert_eq!(
            s.raw().wait(id(1), &Futex, &Dead(vec![]), None, None),
            Err(BarrierError::Corrupt { count: 9 })
        );
    }

    #[test]
    fn threads_pass_many_rounds_with_distinct_indexes() {
        use std::sync::Arc;
        let s = Arc::new(shm(3));
        let ts: Vec<_> = (1..=3u32)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    (0..500)
                        .map(|_| {
                            s.raw()
                                .wait(id(t), &Futex, &Dead(vec![]), None, None)
                                .unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let all: Vec<Vec<u32>> = ts.into_iter().map(|t| t.join().unwrap()).collect();
        for round in 0..500 {
            let mut idx: Vec<u32> = all.iter().map(|v| v[round]).collect();
            idx.sort_unstable();
            assert_eq!(idx, [0, 1, 2], "round {round}");
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests;
