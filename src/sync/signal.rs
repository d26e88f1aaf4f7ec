//! The non-owning futex algorithms (no syscalls): semaphore, event, condition
//! sequence and barrier. See the "Other primitives" table in
//! `docs/protocols/lock.md`.
//!
//! Each is a futex word plus a `waiters` counter. A waiter increments `waiters`,
//! then a `fence(SeqCst)`, then the futex re-checks the word; a waker changes the
//! word, then a `fence(SeqCst)`, then reads `waiters`. The two SeqCst fences are
//! totally ordered, so either the waker sees the waiter and wakes it, or the
//! waiter's futex sees the new word and does not sleep (the Dekker pattern): no
//! lost wake-up, and no `FUTEX_WAKE` when nobody waits. (Fences rather than
//! SeqCst accesses: that is the textbook form, and loom models only the fence.)
//!
//! Every value read from the words is untrusted (a peer may write anything):
//! each is checked, and every loop either makes progress by a CAS or sleeps on
//! the exact value it saw.

use std::time::Instant;

use crate::sync::atomic::{fence, AtomicU32, Ordering};
use crate::sync::wait::{Park, Wake};

/// The deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedOut;

/// Sleeps on `word == seen` counted in `waiters`.
#[inline]
fn sleep<P: Park>(
    park: &P,
    word: &AtomicU32,
    waiters: &AtomicU32,
    seen: u32,
    deadline: Option<Instant>,
) -> Wake {
    // Relaxed + SeqCst fence: the increment precedes the futex's re-read of
    // `word` across the fence (SYNC POINT: dekker, with `anyone_waits`).
    waiters.fetch_add(1, Ordering::Relaxed);
    fence(Ordering::SeqCst);
    let r = park.wait(word, seen, deadline);
    // Relaxed: the count only decides whether wakers make a syscall.
    waiters.fetch_sub(1, Ordering::Relaxed);
    r
}

/// Whether a waker must issue a wake (someone counted in `waiters`).
#[inline]
fn anyone_waits(waiters: &AtomicU32) -> bool {
    // SYNC POINT: dekker (with `sleep`): the caller's change of the word
    // precedes this read across the fence.
    fence(Ordering::SeqCst);
    // Relaxed: ordered by the fence above.
    waiters.load(Ordering::Relaxed) != 0
}

/// A counting semaphore: `value` permits, futex on `value == 0`.
#[repr(C)]
#[derive(Debug, Default)]
pub struct RawSemaphore {
    value: AtomicU32,
    waiters: AtomicU32,
}

/// Why a semaphore release failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AboveMax {
    /// The value found when releasing.
    pub value: u32,
}

impl RawSemaphore {
    /// Sets the initial value (before the segment is published).
    pub fn init(&self, value: u32) {
        // Relaxed: published by the segment-ready Release store.
        self.value.store(value, Ordering::Relaxed);
    }

    /// The current value (a snapshot).
    pub fn value(&self) -> u32 {
        // Relaxed: a snapshot that orders nothing.
        self.value.load(Ordering::Relaxed)
    }

    /// Takes a permit if one is free.
    #[inline]
    pub fn try_acquire(&self) -> bool {
        // Relaxed: the CAS validates the value.
        let mut v = self.value.load(Ordering::Relaxed);
        while v > 0 {
            // SYNC POINT: semaphore-permit (Acquire pairs with `release`).
            match self
                .value
                .compare_exchange_weak(v, v - 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => v = now,
            }
        }
        false
    }

    /// Takes a permit, sleeping until one is free or `deadline` passes.
    #[inline]
    pub fn acquire<P: Park>(&self, park: &P, deadline: Option<Instant>) -> Result<(), TimedOut> {
        if self.try_acquire() {
            return Ok(());
        }
        self.acquire_slow(park, deadline)
    }

    #[cold]
    fn acquire_slow<P: Park>(&self, park: &P, deadline: Option<Instant>) -> Result<(), TimedOut> {
        loop {
            if self.try_acquire() {
                return Ok(());
            }
            if sleep(park, &self.value, &self.waiters, 0, deadline) == Wake::TimedOut {
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
    pub fn release<P: Park>(&self, park: &P, max: u32) -> Result<(), AboveMax> {
        // SYNC POINT: semaphore-permit (Release pairs with `try_acquire`).
        let r = self
            .value
            .fetch_update(Ordering::Release, Ordering::Relaxed, |v| {
                (v < max).then_some(v + 1)
            });
        match r {
            Ok(_) => {
                if anyone_waits(&self.waiters) {
                    park.wake(&self.value, 1);
                }
                Ok(())
            }
            Err(value) => Err(AboveMax { value }),
        }
    }
}

/// A manual-reset event: `flag` 0 (clear) or non-zero (set).
#[repr(C)]
#[derive(Debug, Default)]
pub struct RawEvent {
    flag: AtomicU32,
    waiters: AtomicU32,
}

impl RawEvent {
    /// Whether the flag is set.
    #[inline]
    pub fn is_set(&self) -> bool {
        // SYNC POINT: event-set (Acquire pairs with `set`).
        self.flag.load(Ordering::Acquire) != 0
    }

    /// Sets the flag and wakes every waiter.
    pub fn set<P: Park>(&self, park: &P) {
        // SYNC POINT: event-set (Release pairs with `is_set`).
        self.flag.swap(1, Ordering::Release);
        if anyone_waits(&self.waiters) {
            park.wake_all(&self.flag);
        }
    }

    /// Clears the flag.
    pub fn clear(&self) {
        // Relaxed: clearing publishes nothing; waiters re-check the flag.
        self.flag.store(0, Ordering::Relaxed);
    }

    /// Waits until the flag is set or `deadline` passes; returns whether it is set.
    pub fn wait<P: Park>(&self, park: &P, deadline: Option<Instant>) -> bool {
        loop {
            if self.is_set() {
                return true;
            }
            if sleep(park, &self.flag, &self.waiters, 0, deadline) == Wake::TimedOut {
                return self.is_set();
            }
        }
    }
}

/// A condition variable's sequence word (the lock lives beside it).
#[repr(C)]
#[derive(Debug, Default)]
pub struct RawCondition {
    seq: AtomicU32,
    waiters: AtomicU32,
}

impl RawCondition {
    /// Call while holding the lock, before releasing it: the sequence to wait on.
    pub fn prepare(&self) -> u32 {
        // Relaxed: read under the lock; a notifier that takes the lock after us
        // increments it, so any later notify changes it from this value.
        self.seq.load(Ordering::Relaxed)
    }

    /// Sleeps (after the lock was released) until the sequence moves from
    /// `seen`, a spurious wake-up, or `deadline`. Returns false on timeout.
    pub fn wait<P: Park>(&self, park: &P, seen: u32, deadline: Option<Instant>) -> bool {
        sleep(park, &self.seq, &self.waiters, seen, deadline) == Wake::Woken
    }

    /// Wakes up to `n` waiters.
    pub fn notify<P: Park>(&self, park: &P, n: u32) {
        // Relaxed: the sequence only says "something happened"; the data is
        // published by the lock the notifier holds; `anyone_waits` fences.
        self.seq.fetch_add(1, Ordering::Relaxed);
        if n > 0 && anyone_waits(&self.waiters) {
            park.wake(&self.seq, n);
        }
    }
}

/// Largest number of parties a barrier accepts (the count has 16 bits).
pub const MAX_PARTIES: u32 = 0xffff;
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
pub struct RawBarrier {
    state: AtomicU32,
    waiters: AtomicU32,
}

/// Why a barrier wait failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarrierError {
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
    pub fn wait<P: Park>(
        &self,
        park: &P,
        parties: u32,
        deadline: Option<Instant>,
    ) -> Result<u32, BarrierError> {
        debug_assert!((1..=MAX_PARTIES).contains(&parties));
        // Relaxed: the CAS validates; its AcqRel orders the data.
        let mut s = self.state.load(Ordering::Relaxed);
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
            // wrote and acquires the earlier arrivals.
            match self
                .state
                .compare_exchange_weak(s, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) if last => {
                    if anyone_waits(&self.waiters) {
                        park.wake_all(&self.state);
                    }
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
        loop {
            // SYNC POINT: barrier-arrive (Acquire of the last arrival's CAS).
            let s = self.state.load(Ordering::Acquire);
            if s & !COUNT_MASK != gen {
                return Ok(index);
            }
            if sleep(park, &self.state, &self.waiters, s, deadline) == Wake::TimedOut {
                return self.withdraw(gen, index);
            }
        }
    }

    /// Takes our arrival back after a timeout, unless the generation moved on
    /// meanwhile (then we passed the barrier after all).
    fn withdraw(&self, gen: u32, index: u32) -> Result<u32, BarrierError> {
        // Acquire: if the generation moved we passed, and read what others wrote.
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            if s & !COUNT_MASK != gen {
                return Ok(index);
            }
            if s & COUNT_MASK == 0 {
                return Err(BarrierError::Corrupt { count: 0 });
            }
            // SYNC POINT: barrier-arrive.
            match self
                .state
                .compare_exchange_weak(s, s - 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Err(BarrierError::TimedOut),
                Err(now) => s = now,
            }
        }
    }

    /// How many parties are waiting now (a snapshot).
    pub fn waiting(&self) -> u32 {
        // Relaxed: a snapshot.
        self.state.load(Ordering::Relaxed) & COUNT_MASK
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
    // SAFETY: two std u32 atomics each: every bit pattern valid, no pointers,
    // all shared mutation atomic.
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
    use crate::sync::wait::Futex;
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
        b.state.store(7, Ordering::Relaxed);
        assert_eq!(
            b.wait(&Futex, 2, None),
            Err(BarrierError::Corrupt { count: 7 })
        );
    }
}

#[cfg(all(test, loom))]
mod loom_tests;
