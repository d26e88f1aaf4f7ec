//! Cross-process synchronisation primitives over futex words in shared memory.
//!
//! The waiting vocabulary every layer above sleeps with: `atomic` (the one
//! shim naming std or loom atomics), `park` (wait/wake on a word as a trait,
//! real futexes or a loom table), `wait` (the one wait word and the one
//! spin-then-sleep policy) and `liveness` (is the holder alive).
//!
//! Algorithms (no syscalls, loom-checked): `robust` (the robust lock state
//! machine), `signal` (semaphore, event, condition sequence) and
//! `barrier_state` (the barrier's rounds and parties).
//! Public types wrap them in segments: [`Lock`], [`RLock`], [`Semaphore`],
//! [`BoundedSemaphore`], [`Event`], [`Condition`], [`Barrier`]. Protocol:
//! `docs/protocols/lock.md`.

pub(crate) mod atomic;
pub(crate) mod barrier_state;
pub(crate) mod liveness;
#[cfg(not(loom))]
pub(crate) mod many;
pub(crate) mod park;
#[cfg(not(loom))]
pub(crate) mod reactor;
pub(crate) mod robust;
pub(crate) mod signal;
pub(crate) mod wait;

#[cfg(not(loom))]
mod barrier;
#[cfg(not(loom))]
mod condition;
#[cfg(not(loom))]
mod event;
#[cfg(not(loom))]
pub(crate) mod handle;
#[cfg(not(loom))]
pub(crate) mod lock;
#[cfg(not(loom))]
mod rlock;
#[cfg(not(loom))]
mod semaphore;

#[cfg(not(loom))]
pub use barrier::{Barrier, BarrierConfig};
#[cfg(not(loom))]
pub use condition::{Condition, ConditionGuard, WaitGuard};
#[cfg(not(loom))]
pub use event::Event;
#[cfg(not(loom))]
pub use handle::Builder;
#[cfg(not(loom))]
pub use lock::{Lock, LockGuard};
#[cfg(not(loom))]
pub use rlock::{RLock, RLockGuard};
#[cfg(not(loom))]
pub use semaphore::{BoundedSemaphore, Semaphore, SemaphoreGuard};

#[cfg(all(test, loom))]
mod loom_death;
#[cfg(all(test, not(loom)))]
mod tests;
