//! Wait/wake as a small trait, so algorithms make no syscalls themselves.
//!
//! The lock state machine and the queue ring call [`Park::wait`] and
//! [`Park::wake`] on their state words. In shared memory the implementation is
//! [`Futex`] (shared futexes); under `--cfg loom` it is `loom_park::LoomPark`,
//! a tiny futex table over loom's `Mutex`/`Condvar`, so a lost wake-up shows up
//! as a deadlock in the model (the model is iceoryx2's `strategy/mutex.rs`).

use std::time::Instant;

use crate::sync::atomic::AtomicU32;

/// How a wait ended.
///
/// # Examples
/// ```
/// use shmproc::sync::wait::{Futex, Park, Wake};
/// use std::sync::atomic::AtomicU32;
/// let word = AtomicU32::new(1);
/// assert_eq!(Futex.wait(&word, 0, None), Wake::Woken); // value differs: at once
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Woken, value changed, or spurious: re-check the condition.
    Woken,
    /// The deadline passed.
    TimedOut,
}

/// Blocking primitives an algorithm needs: futex semantics.
///
/// # Examples
/// ```
/// use shmproc::sync::wait::{Futex, Park, Wake};
/// use std::sync::atomic::AtomicU32;
/// let word = AtomicU32::new(0);
/// let soon = std::time::Instant::now() + std::time::Duration::from_millis(2);
/// assert_eq!(Futex.wait(&word, 0, Some(soon)), Wake::TimedOut);
/// Futex.wake(&word, 1); // nobody sleeps: harmless
/// ```
pub trait Park {
    /// Blocks while `*word == expected` until woken or `deadline`.
    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> Wake;
    /// Wakes up to `n` waiters on `word`.
    fn wake(&self, word: &AtomicU32, n: u32);
    /// Wakes every waiter on `word`.
    fn wake_all(&self, word: &AtomicU32) {
        self.wake(word, u32::MAX);
    }
}

/// Shared futexes: the implementation used on real shared memory.
///
/// # Examples
/// ```
/// use shmproc::sync::wait::{Futex, Park, Wake};
/// use std::sync::atomic::AtomicU32;
/// let word = std::sync::Arc::new(AtomicU32::new(0));
/// let w2 = word.clone();
/// let t = std::thread::spawn(move || while w2.load(std::sync::atomic::Ordering::Acquire) == 0 { Futex.wait(&w2, 0, None); });
/// word.store(1, std::sync::atomic::Ordering::Release);
/// Futex.wake_all(&word);
/// t.join().unwrap();
/// ```
#[cfg(not(loom))]
#[derive(Debug, Clone, Copy, Default)]
pub struct Futex;

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

/// The loom model of a futex table.
#[cfg(loom)]
pub mod loom_park {
    use super::*;
    use crate::sync::atomic::Ordering;
    use loom::sync::{Condvar, Mutex};

    /// One mutex+condvar guards every word: `wait` re-checks the word under the
    /// mutex, `wake` notifies under it, exactly the futex guarantee (no wake-up
    /// is lost between the check and the sleep). Deadlines are ignored: loom has
    /// no time, so a timed wait is modelled as an untimed one that may also wake
    /// spuriously.
    #[derive(Default)]
    pub struct LoomPark {
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
                // A timed wait may give up: let loom explore both outcomes.
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
