//! Cross-process synchronisation primitives over futex words in shared memory.
//!
//! Algorithms (no syscalls, generic over [`wait::Park`], loom-checked):
//! [`robust`] (the robust lock state machine), [`signal`] (semaphore,
//! event, condition sequence) and `barrier_state` (the barrier's rounds). Public types wrap them in segments:
//! [`Lock`], [`RLock`], [`Semaphore`], [`BoundedSemaphore`], [`Event`],
//! [`Condition`], [`Barrier`]. Protocol: `docs/protocols/lock.md`.

pub mod atomic;
pub(crate) mod barrier_state;
pub mod robust;
pub mod signal;
pub mod wait;

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
