//! The non-owning futex algorithms (no syscalls): semaphore, event and
//! condition sequence. See the "Other primitives" table in
//! `docs/protocols/lock.md`. (The barrier, which also tracks its parties, is
//! `barrier_state.rs`.)
//!
//! Each is one [`WaitWord`] whose word is the primitive's state (a permit
//! count, a flag, a sequence): waiters spin per the policy,
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

#[cfg(not(loom))]
mod shm {
    use super::*;
    use crate::segment::ShmSafe;
    const _: () = assert!(std::mem::size_of::<RawSemaphore>() == 8);
    const _: () = assert!(std::mem::size_of::<RawEvent>() == 8);
    const _: () = assert!(std::mem::size_of::<RawCondition>() == 8);
    // SAFETY: one WaitWord each (two std u32 atomics): every bit pattern
    // valid, no pointers, all shared mutation atomic.
    unsafe impl ShmSafe for RawSemaphore {}
    // SAFETY: as RawSemaphore.
    unsafe impl ShmSafe for RawEvent {}
    // SAFETY: as RawSemaphore.
    unsafe impl ShmSafe for RawCondition {}
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
}

#[cfg(all(test, loom))]
mod loom_tests;
