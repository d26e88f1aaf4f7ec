//! Wait/wake on one word as a small trait, so algorithms make no syscalls.
//!
//! Everything that sleeps goes through a [`WaitWord`](super::wait::WaitWord),
//! which calls [`Park::wait`] and [`Park::wake`]. On shared memory the
//! implementation is [`Futex`] (shared futexes) or [`CountingFutex`] (the same,
//! counting the operations that slept in a segment counter); under
//! `--cfg loom` it is [`loom_park::LoomPark`], a tiny futex table over loom's
//! `Mutex`/`Condvar`, so a lost wake-up shows up as a deadlock in the model
//! (the model is iceoryx2's `strategy/mutex.rs`).

use std::time::Instant;

use crate::sync::atomic::AtomicU32;

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Woken, value changed, or spurious: re-check the condition.
    Woken,
    /// The deadline passed.
    TimedOut,
}

/// Blocking primitives an algorithm needs: futex semantics.
pub(crate) trait Park {
    /// Blocks while `*word == expected` until woken or `deadline`.
    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> Wake;
    /// Wakes up to `n` waiters on `word`.
    fn wake(&self, word: &AtomicU32, n: u32);
}

/// Shared futexes: the implementation used on real shared memory.
#[cfg(not(loom))]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Futex;

#[cfg(not(loom))]
impl Park for Futex {
    #[inline]
    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> Wake {
        match crate::sys::futex::wait(word, expected, deadline) {
            crate::sys::futex::WaitOutcome::Woken => Wake::Woken,
            crate::sys::futex::WaitOutcome::TimedOut => Wake::TimedOut,
        }
    }

    #[inline]
    fn wake(&self, word: &AtomicU32, n: u32) {
        crate::sys::futex::wake(word, n);
    }
}

/// Shared futexes that bump a segment counter at the first sleep of one
/// operation ("operations that had to sleep", `segment::counters`): made
/// per operation on its slow path, counted where a futex syscall is paid
/// anyway.
#[cfg(not(loom))]
pub(crate) struct CountingFutex<'a> {
    seg: &'a crate::segment::Segment,
    counter: usize,
    counted: std::cell::Cell<bool>,
}

#[cfg(not(loom))]
impl<'a> CountingFutex<'a> {
    /// Counts into `seg`'s counter `counter` (see `segment::counters`).
    #[inline]
    pub(crate) fn new(seg: &'a crate::segment::Segment, counter: usize) -> Self {
        CountingFutex {
            seg,
            counter,
            counted: std::cell::Cell::new(false),
        }
    }
}

#[cfg(not(loom))]
impl Park for CountingFutex<'_> {
    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> Wake {
        if !self.counted.replace(true) {
            self.seg.bump(self.counter);
        }
        Futex.wait(word, expected, deadline)
    }

    #[inline]
    fn wake(&self, word: &AtomicU32, n: u32) {
        Futex.wake(word, n);
    }
}

/// The loom model of a futex table.
#[cfg(loom)]
pub(crate) mod loom_park {
    use super::*;
    use crate::sync::atomic::Ordering;
    use loom::sync::{Condvar, Mutex};

    /// One mutex+condvar guards every word: `wait` re-checks the word under
    /// the mutex, `wake` notifies under it, exactly the futex guarantee (no
    /// wake-up is lost between the check and the sleep). Deadlines are
    /// ignored: loom has no time, so a timed wait is modelled as one that
    /// gives up at once (loom explores both that and the woken outcome
    /// through the callers' loops).
    #[derive(Default)]
    pub(crate) struct LoomPark {
        lock: Mutex<()>,
        cv: Condvar,
    }

    impl Park for LoomPark {
        fn wait(&self, word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> Wake {
            let guard = self.lock.lock().unwrap();
            if word.load(Ordering::SeqCst) != expected {
                return Wake::Woken;
            }
            if deadline.is_some() {
                drop(guard);
                return Wake::TimedOut;
            }
            drop(self.cv.wait(guard).unwrap());
            Wake::Woken
        }

        fn wake(&self, _word: &AtomicU32, _n: u32) {
            let _guard = self.lock.lock().unwrap();
            self.cv.notify_all();
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    #[test]
    fn futex_wait_returns_on_mismatch_and_times_out() {
        let word = AtomicU32::new(1);
        assert_eq!(Futex.wait(&word, 0, None), Wake::Woken);
        let soon = Instant::now() + Duration::from_millis(2);
        assert_eq!(Futex.wait(&word, 1, Some(soon)), Wake::TimedOut);
        Futex.wake(&word, 1); // nobody sleeps: harmless
    }

    #[test]
    fn futex_wake_releases_a_sleeper() {
        let word = std::sync::Arc::new(AtomicU32::new(0));
        let w2 = word.clone();
        let t = std::thread::spawn(move || {
            while w2.load(Ordering::Acquire) == 0 {
                Futex.wait(&w2, 0, Some(Instant::now() + Duration::from_secs(10)));
            }
        });
        word.store(1, Ordering::Release);
        Futex.wake(&word, u32::MAX);
        t.join().unwrap();
    }
}
