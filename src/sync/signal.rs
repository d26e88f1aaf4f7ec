//! The non-owning futex algorithms (no syscalls): semaphore, event, condition
//! sequence and barrier. See the "Other primitives" table in
//! `docs/protocols/lock.md`.
//!
//! Each is one [`WaitWord`] whose word is the primitive's state (a permit
//! count, a flag, a sequence, a barrier state): waiters spin per the policy,
//! then sleep on the exact value they saw; wakers change the state with a
//! SeqCst RMW and wake only when the count says someone sleeps (the dekker
//! protocol of `sync/wait.rs`).
//!
//! Every value read from the words is untrusted (a peer may write anything):
//! each is checked, and every loop either makes progress by a CAS or sleeps on
//! the exact value it saw.

use std::time::Instant;

use crate::sync::atomic::Ordering;
use crate::sync::park::{Park, Wake};
use crate::sync::wait::{Spin, WaitWord};

/// The deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimedOut;

/// Spins per the policy until `done()`, then returns false (sleep next).
#[inline]
fn spin_until(done: impl Fn() -> bool) -> bool {
    let mut spin = Spin::new();
    loop {
        if done() {
            return true;
        }
        if !spin.step() {
            return false;
        }
    }
}

/// A counting semaphore: `value` permits, futex on `value == 0`.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct RawSemaphore {
    /// The word is the number of free permits.
    value: WaitWord,
}

/// Why a semaphore release failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AboveMax {
    /// The value found when releasing.
    pub value: u32,
}

impl RawSemaphore {
    /// Sets the initial value (before the segment is published).
    pub(crate) fn init(&self, value: u32) {
        // Relaxed: published by the segment-ready Release store.
        self.value.word().store(value, Ordering::Relaxed);
    }

    /// The current value (a snapshot).
    pub(crate) fn value(&self) -> u32 {
        // Relaxed: a snapshot that orders nothing.
        self.value.word().load(Ordering::Relaxed)
    }

    /// Takes a permit if one is free.
    #[inline]
    pub(crate) fn try_acquire(&self) -> bool {
        // Relaxed: the CAS validates the value.
        let mut v = self.value.word().load(Ordering::Relaxed);
        while v > 0 {
            // SYNC POINT: semaphore-permit (Acquire pairs with `release`).
            match self.value.word().compare_exchange_weak(
                v,
                v - 1,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => v = now,
            }
        }
        false
    }

    /// Takes a permit, sleeping until one is free or `deadline` passes.
    #[inline]
    pub(crate) fn acquire<P: Park>(
        &self,
        park: &P,
        deadline: Option<Instant>,
    ) -> Result<(), TimedOut> {
        if self.try_acquire() {
            return Ok(());
        }
        self.acquire_slow(park, deadline)
    }

    #[cold]
    fn acquire_slow<P: Park>(&self, park: &P, deadline: Option<Instant>) -> Result<(), TimedOut> {
        if spin_until(|| self.try_acquire()) {
            return Ok(());
        }
        loop {
            if self.try_acquire() {
                return Ok(());
            }
            if self.value.sleep_on(park, 0, deadline) == Wake::TimedOut {
                return if self.try_acquire() {
                    Ok(())
                } else {
                    Err(TimedOut)
                };
            }
        }
    }

    /// Returns a permit; fails without changing anything when the value is
    /// already `max` (use `u32::MAX` for an unbounded semaphore).
    #[inline]
    pub(crate) fn release<P: Park>(&self, park: &P, max: u32) -> Result<(), AboveMax> {
        // SYNC POINT: semaphore-permit (Release pairs with `try_acquire`).
        // SeqCst: the waker's change of the dekker protocol (sync/wait.rs).
        let r = self
            .value
            .word()
            .fetch_update(Ordering::SeqCst, Ordering::Relaxed, |v| {
                (v < max).then_some(v + 1)
            });
        match r {
            Ok(_) => {
                self.value.wake(park, 1);
                Ok(())
            }
            Err(value) => Err(AboveMax { value }),
        }
    }
}

/// A manual-reset event: `flag` 0 (clear) or non-zero (set).
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct RawEvent {
    /// The word is the flag.
    flag: WaitWord,
}

impl RawEvent {
    /// Whether the flag is set.
    #[inline]
    pub(crate) fn is_set(&self) -> bool {
        // SYNC POINT: event-set (Acquire pairs with `set`).
        self.flag.word().load(Ordering::Acquire) != 0
    }

    /// Sets the flag and wakes every waiter.
    pub(crate) fn set<P: Park>(&self, park: &P) {
        // SYNC POINT: event-set (Release pairs with `is_set`). SeqCst: the
        // waker's change of the dekker protocol (sync/wait.rs).
        self.flag.word().swap(1, Ordering::SeqCst);
        self.flag.wake(park, u32::MAX);
    }

    /// The flag's wait word (waiters on several objects arm it).
    pub(crate) fn wait_word(&self) -> &WaitWord {
        &self.flag
    }

    /// Clears the flag.
    pub(crate) fn clear(&self) {
        // Relaxed: clearing publishes nothing; waiters re-check the flag.
        self.flag.word().store(0, Ordering::Relaxed);
    }

    /// Waits until the flag is set or `deadline` passes; returns whether it is set.
    pub(crate) fn wait<P: Park>(&self, park: &P, deadline: Option<Instant>) -> bool {
        if spin_until(|| self.is_set()) {
            return true;
        }
        loop {
            if self.is_set() {
                return true;
            }
            if self.flag.sleep_on(park, 0, deadline) == Wake::TimedOut {
                return self.is_set();
            }
        }
    }
}

/// A condition variable's sequence word (the lock lives beside it).
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct RawCondition {
    /// The word is a sequence bumped by every notify.
    seq: WaitWord,
}

impl RawCondition {
    /// Call while holding the lock, before releasing it: the sequence to wait on.
    pub(crate) fn prepare(&self) -> u32 {
        // Relaxed: read under the lock; a notifier that takes the lock after us
        // increments it, so any later notify changes it from this value.
        self.seq.word().load(Ordering::Relaxed)
    }

    /// Sleeps (after the lock was released) until the sequence moves from
    /// `seen`, a spurious wake-up, or `deadline`. Returns false on timeout.
    pub(crate) fn wait<P: Park>(&self, park: &P, seen: u32, deadline: Option<Instant>) -> bool {
        // Relaxed: a notify's data is published by the lock its caller holds.
        if spin_until(|| self.seq.word().load(Ordering::Relaxed) != seen) {
            return true;
        }
        self.seq.sleep_on(park, seen, deadline) == Wake::Woken
    }

    /// Wakes up to `n` waiters.
    pub(crate) fn notify<P: Park>(&self, park: &P, n: u32) {
        // SeqCst: the waker's change of the dekker protocol (sync/wait.rs);
        // the data itself is published by the lock the notifier holds.
        self.seq.word().fetch_add(1, Ordering::SeqCst);
        if n > 0 {
            self.seq.wake(park, n);
        }
    }
}

/// Largest number of parties a barrier accepts (the count has 16 bits).
pub(crate) const MAX_PARTIES: u32 = 0xffff;
const COUNT_MASK: u32 = 0xffff;
const GEN_ONE: u32 = 1 << 16;

/// A reusable barrier: `state = generation << 16 | arrived`.
///
/// | `state`        | meaning |
/// |----------------|---------|
/// | `g << 16 \| c` | generation `g`, `c < parties` parties waiting |
/// | `(g+1) << 16`  | the last party of `g` arrived: `g` released |
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct RawBarrier {
    /// The word is the state above.
    state: WaitWord,
}

/// Why a barrier wait failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BarrierError {
    /// The deadline passed; our arrival was withdrawn.
    TimedOut,
    /// The shared count is not below the party count (a peer scribbled).
    Corrupt {
        /// The count found.
        count: u32,
    },
}

impl RawBarrier {
    /// Arrives and waits until `parties` parties have arrived; returns the
    /// arrival index (0 for the first, `parties - 1` for the one that
    /// released the others).
    pub(crate) fn wait<P: Park>(
        &self,
        park: &P,
        parties: u32,
        deadline: Option<Instant>,
    ) -> Result<u32, BarrierError> {
        debug_assert!((1..=MAX_PARTIES).contains(&parties));
        // Relaxed: the CAS validates; it orders the data.
        let mut s = self.state.word().load(Ordering::Relaxed);
        let (gen, index) = loop {
            let count = s & COUNT_MASK;
            if count >= parties {
                return Err(BarrierError::Corrupt { count });
            }
            let last = count + 1 == parties;
            let next = if last {
                (s & !COUNT_MASK).wrapping_add(GEN_ONE)
            } else {
                s + 1
            };
            // SYNC POINT: barrier-arrive. AcqRel: each arrival releases what it
            // wrote and acquires the earlier arrivals; SeqCst: the waker's
            // change of the dekker protocol (sync/wait.rs).
            match self.state.word().compare_exchange_weak(
                s,
                next,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) if last => {
                    self.state.wake(park, u32::MAX);
                    return Ok(count);
                }
                Ok(_) => break (s & !COUNT_MASK, count),
                Err(now) => s = now,
            }
        };
        self.wait_generation(park, gen, index, deadline)
    }

    fn wait_generation<P: Park>(
        &self,
        park: &P,
        gen: u32,
        index: u32,
        deadline: Option<Instant>,
    ) -> Result<u32, BarrierError> {
        // SYNC POINT: barrier-arrive (Acquire of the last arrival's CAS).
        let passed = || self.state.word().load(Ordering::Acquire) & !COUNT_MASK != gen;
        if spin_until(passed) {
            return Ok(index);
        }
        loop {
            // SYNC POINT: barrier-arrive (as above).
            let s = self.state.word().load(Ordering::Acquire);
            if s & !COUNT_MASK != gen {
                return Ok(index);
            }
            if self.state.sleep_on(park, s, deadline) == Wake::TimedOut {
                return self.withdraw(gen, index);
            }
        }
    }

    /// Takes our arrival back after a timeout, unless the generation moved on
    /// meanwhile (then we passed the barrier after all).
    fn withdraw(&self, gen: u32, index: u32) -> Result<u32, BarrierError> {
        // Acquire: if the generation moved we passed, and read what others wrote.
        let mut s = self.state.word().load(Ordering::Acquire);
        loop {
            if s & !COUNT_MASK != gen {
                return Ok(index);
            }
            if s & COUNT_MASK == 0 {
                return Err(BarrierError::Corrupt { count: 0 });
            }
            // SYNC POINT: barrier-arrive.
            match self.state.word().compare_exchange_weak(
                s,
                s - 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Err(BarrierError::TimedOut),
                Err(now) => s = now,
            }
        }
    }

    /// How many parties are waiting now (a snapshot).
    pub(crate) fn waiting(&self) -> u32 {
        // Relaxed: a snapshot.
        self.state.word().load(Ordering::Relaxed) & COUNT_MASK
    }
}

#[cfg(not(loom))]
mod shm {
    use super::*;
    use crate::segment::ShmSafe;
    const _: () = assert!(std::mem::size_of::<RawSemaphore>() == 8);
    const _: () = assert!(std::mem::size_of::<RawEvent>() == 8);
    const _: () = assert!(std::mem::size_of::<RawCondition>() == 8);
    const _: () = assert!(std::mem::size_of::<RawBarrier>() == 8);
    // SAFETY: one WaitWord each (two std u32 atomics): every bit pattern
    // valid, no pointers, all shared mutation atomic.
    unsafe impl ShmSafe for RawSemaphore {}
    // SAFETY: as RawSemaphore.
    unsafe impl ShmSafe for RawEvent {}
    // SAFETY: as RawSemaphore.
    unsafe impl ShmSafe for RawCondition {}
    // SAFETY: as RawSemaphore.
    unsafe impl ShmSafe for RawBarrier {}
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::park::Futex;
    use std::time::Duration;

    fn soon() -> Option<Instant> {
        Some(Instant::now() + Duration::from_millis(10))
    }

    #[test]
    fn semaphore_counts_and_bounds() {
        let s = RawSemaphore::default();
        s.init(2);
        assert!(s.try_acquire());
        assert_eq!(s.acquire(&Futex, soon()), Ok(()));
        assert!(!s.try_acquire());
        assert_eq!(s.acquire(&Futex, soon()), Err(TimedOut));
        s.release(&Futex, 2).unwrap();
        s.release(&Futex, 2).unwrap();
        assert_eq!(s.release(&Futex, 2), Err(AboveMax { value: 2 }));
        assert_eq!(s.value(), 2);
    }

    #[test]
    fn event_set_clear() {
        let e = RawEvent::default();
        assert!(!e.wait(&Futex, soon()));
        e.set(&Futex);
        assert!(e.wait(&Futex, None));
        e.clear();
        assert!(!e.is_set());
    }

    #[test]
    fn barrier_generations_and_withdraw() {
        let b = RawBarrier::default();
        assert_eq!(b.wait(&Futex, 1, None), Ok(0));
        assert_eq!(b.wait(&Futex, 2, soon()), Err(BarrierError::TimedOut));
        assert_eq!(b.waiting(), 0, "the timed-out arrival was withdrawn");
        b.state.word().store(7, Ordering::Relaxed);
        assert_eq!(
            b.wait(&Futex, 2, None),
            Err(BarrierError::Corrupt { count: 7 })
        );
    }
}

#[cfg(all(test, loom))]
mod loom_tests;
