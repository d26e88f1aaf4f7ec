//! shmproc: Python's `multiprocessing` for Rust, over shared memory.
//!
//! `Queue`, `Pipe`, `Value`, `Array`, `Lock` and friends, a process launcher
//! and a `Pool`, built on mmap'd segments and cross-process futexes. A peer
//! process that crashes while holding a lock or half-way through a put can
//! neither hang nor corrupt the others.
//!
//! See `docs/architecture.md` for the layers; each shared protocol has its
//! state table in `docs/protocols/`.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

#[cfg(not(loom))]
pub mod array;
mod error;
#[cfg(not(loom))]
pub mod pipe;
#[cfg(not(loom))]
pub mod pool;
pub mod process;
pub mod queue;
pub mod segment;
pub mod sync;
pub mod sys;
#[cfg(not(loom))]
pub mod value;

#[cfg(not(loom))]
pub use array::{Array, ArrayGuard, RawArray};
pub use error::{Error, Result};
#[cfg(not(loom))]
pub use pipe::{Connection, Pipe, PipeBuilder, Receiver, Sender};
#[cfg(not(loom))]
pub use pool::{AsyncResult, Imap, Pool, PoolBuilder};
pub use process::{
    active_children, cpu_count, current_process, init, parent_process, Process, ProcessInfo,
    StartMethod,
};
pub use queue::{Codec, Pod, Serde};
#[cfg(not(loom))]
pub use queue::{JoinableQueue, PodQueue, Queue, QueueBuilder};
pub use segment::unlink;
#[cfg(not(loom))]
pub use sync::{Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore};
#[cfg(not(loom))]
pub use value::{AtomicInt, RawValue, Value, ValueGuard};
