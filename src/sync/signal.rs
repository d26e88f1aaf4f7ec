//! The non-owning futex algorithms (no syscalls): semaphore, event and
//! condition sequence. See the "Other primitives" table in
//! `docs/protocols/lock.md`. (The barrier, which also tracks its parties,
//! is `barrier_state.rs`; it sleeps with the helpers below.)
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
///
/// # Examples
/// ```
/// use shmproc::sync::{signal::*, wait::Futex};
/// let s = RawSemaphore::default(); // 0 permits
/// let soon = std::time::Instant::now() + std::time::Duration::from_millis(2);
/// assert_eq!(s.acquire(&Futex, Some(soon)), Err(TimedOut));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedOut;

/// Sleeps on `word == seen` counted in `waiters`.
#[inline]
pub(crate) fn sleep<P: Park>(
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
pub(crate) fn anyone_waits(waiters: &AtomicU32) -> bool {
    // SYNC POINT: dekker (with `sleep`): the caller's change of the word
    // precedes this read across the fence.
    fence(Ordering::SeqCst);
    // Relaxed: ordered by the fence above.
    waiters.load(Ordering::Relaxed) != 0
}

/// A counting semaphore: `value` permits, futex on `value == 0`.
///
/// # Examples
/// ```
/// use shmproc::sync::{signal::*, wait::Futex};
/// let s = RawSemaphore::default();
/// s.init(1);
/// assert!(s.try_acquire());
/// assert!(!s.try_acquire());
/// s.release(&Futex, u32::MAX).unwrap();
/// ```
#[repr(C)]
#[derive(Debug, Default)]
pub struct RawSemaphore {
    value: AtomicU32,
    waiters: AtomicU32,
}

/// Why a semaphore release failed.
///
/// # Examples
/// ```
/// use shmproc::sync::{signal::*, wait::Futex};
/// let s = RawSemaphore::default();
/// s.init(1);
/// assert_eq!(s.release(&Futex, 1), Err(AboveMax { value: 1 }));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AboveMax {
    /// The value found when releasing.
    pub value: u32,
}

impl RawSemaphore {
    /// Sets the initial value (before the segment is published).
    ///
    /// # Examples
    /// ```
    /// use shmproc::sync::{signal::*, wait::Futex};
    /// let s = RawSemaphore::default();
    /// s.init(3);
    /// assert_eq!(s.value(), 3);
    /// ```
    pub fn init(&self, value: u32) {
        // Relaxed: published by the segment-ready Release store.
        self.value.store(value, Ordering::Relaxed);
    }

    /// The current value (a snapshot).
    ///
    /// # Examples
    /// ```
    /// use shmproc::sync::{signal::*, wait::Futex};
    /// let s = RawSemaphore::default();
    /// assert_eq!(s.value(), 0);
    /// ```
    pub fn value(&self) -> u32 {
        // Relaxed: a snapshot that orders nothing.
        self.value.load(Ordering::Relaxed)
    }

    /// Takes a permit if one is free.
    ///
    /// # Examples
    /// ```
    /// use shmproc::sync::{signal::*, wait::Futex};
    /// let s = RawSemaphore::default();
    /// assert!(!s.try_acquire());
    /// ```
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
    ///
    /// # Examples
    /// ```
    /// use shmproc::sync::{signal::*, wait::Futex};
    /// let s = RawSemaphore::default();
    /// s.init(1);
    /// assert_eq!(s.acquire(&Futex, None), Ok(()));
    /// ```
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
    ///
    /// # Examples
    /// ```
    /// use shmproc::sync::{signal::*, wait::Futex};
    /// let s = RawSemaphore::default();
    /// s.release(&Futex, u32::MAX).unwrap();
    /// assert_eq!(s.value(), 1);
    /// ```
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
///
/// # Examples
/// ```
/// use shmproc::sync::{signal::*, wait::Futex};
/// let e = RawEvent::default();
/// e.set(&Futex);
/// assert!(e.wait(&Futex, None));
/// ```
#[repr(C)]
#[derive(Debug, Default)]
pub struct RawEvent {
    flag: AtomicU32,
    waiters: AtomicU32,
}

impl RawEvent {
    /// Whether the flag is set.
    ///
    /// # Examples
    /// ```
    /// use shmproc::sync::{signal::*, wait::Futex};
    /// assert!(!RawEvent::default().is_set());
    /// ```
    #[inline]
    pub fn is_set(&self) -> bool {
        // SYNC POINT: event-set (Acquire pairs with `set`).
        self.flag.load(Ordering::Acquire) != 0
    }

    /// Sets the flag and wakes every waiter.
    ///
    /// # Examples
    /// ```
    /// use shmproc::sync::{signal::*, wait::Futex};
    /// let e = RawEvent::default();
    /// e.set(&Futex);
    /// assert!(e.is_set());
    /// ```
    pub fn set<P: Park>(&self, park: &P) {
        // SYNC POINT: event-set (Release pairs with `is_set`).
        self.flag.swap(1, Ordering::Release);
        if anyone_waits(&self.waiters) {
            park.wake_all(&self.flag);
        }
    }

    /// Clears the flag.
    ///
    /// # Examples
    /// ```
    /// use shmproc::sync::{signal::*, wait::Futex};
    /// let e = RawEvent::default();
    /// e.set(&Futex);
    /// e.clear();
    /// assert!(!e.is_set());
    /// ```
    pub fn clear(&self) {
        // Relaxed: clearing publishes nothing; waiters re-check the flag.
        self.flag.store(0, Ordering::Relaxed);
    }

    /// Waits until the flag is set or `deadline` passes; returns whether it is set.
    ///
    /// # Examples
    /// ```
    /// use shmproc::sync::{signal::*, wait::Futex};
    /// let e = RawEvent::default();
    /// let soon = std::time::Instant::now() + std::time::Duration::from_millis(2);
    /// assert!(!e.wait(&Futex, Some(soon)));
    /// ```
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
///
/// # Examples
/// ```
/// use shmproc::sync::{signal::*, wait::Futex};
/// let c = RawCondition::default();
/// let seen = c.prepare();
/// c.notify(&Futex, 1);
/// assert!(c.wait(&Futex, seen, None)); // the sequence moved: returns at once
/// ```
#[repr(C)]
#[derive(Debug, Default)]
pub struct RawCondition {
    seq: AtomicU32,
    waiters: AtomicU32,
}

impl RawCondition {
    /// Call while holding the lock, before releasing it: the sequence to wait on.
    ///
    /// # Examples
    /// ```
    /// use shmproc::sync::{signal::*, wait::Futex};
    /// let c = RawCondition::default();
    /// let a = c.prepare();
    /// c.notify(&Futex, 1);
    /// assert_ne!(c.prepare(), a);
    /// ```
    pub fn prepare(&self) -> u32 {
        // Relaxed: read under the lock; a notifier that takes the lock after us
        // increments it, so any later notify changes it from this value.
        self.seq.load(Ordering::Relaxed)
    }

    /// Sleeps (after the lock was released) until the sequence moves from
    /// `seen`, a spurious wake-up, or `deadline`. Returns false on timeout.
    ///
    /// # Examples
    /// ```
    /// use shmproc::sync::{signal::*, wait::Futex};
    /// let c = RawCondition::default();
    /// let seen = c.prepare();
    /// let soon = std::time::Instant::now() + std::time::Duration::from_millis(2);
    /// assert!(!c.wait(&Futex, seen, Some(soon))); // nobody notified
    /// ```
    pub fn wait<P: Park>(&self, park: &P, seen: u32, deadline: Option<Instant>) -> bool {
        sleep(park, &self.seq, &self.waiters, seen, deadline) == Wake::Woken
    }

    /// Wakes up to `n` waiters.
    ///
    /// # Examples
    /// ```
    /// use shmproc::sync::{signal::*, wait::Futex};
    /// RawCondition::default().notify(&Futex, 1); // nobody waits: no syscall
    /// ```
    pub fn notify<P: Park>(&self, park: &P, n: u32) {
        // Relaxed: the sequence only says "something happened"; the data is
        // published by the lock the notifier holds; `anyone_waits` fences.
        self.seq.fetch_add(1, Ordering::Relaxed);
        if n > 0 && anyone_waits(&self.waiters) {
            park.wake(&self.seq, n);
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
    // SAFETY: two std u32 atomics each: every bit pattern valid, no pointers,
    // all shared mutation atomic.
    unsafe impl ShmSafe for RawSemaphore {}
    // SAFETY: as RawSemaphore.
    unsafe impl ShmSafe for RawEvent {}
    // SAFETY: as RawSemaphore.
    unsafe impl ShmSafe for RawCondition {}
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
}

#[cfg(all(test, loom))]
mod loom_tests;
