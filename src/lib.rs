//! shmproc: Python's `multiprocessing` for Rust, over shared memory.
//!
//! Two processes, one shared value (the child writes, the parent reads):
//!
//! ```
//! use shmproc::{Process, Value};
//!
//! fn child(answer: Value<u64>) {
//!     answer.set(42);
//! }
//!
//! fn main() -> shmproc::Result<()> {
//!     shmproc::init(); // first line of main: a launched child runs its entry here
//!     let answer = Value::new(0u64)?;
//!     let p = Process::spawn(child, answer.clone())?;
//!     assert_eq!(p.join()?, 0);
//!     println!("hello from process {}: {}", p.pid(), answer.get());
//!     assert_eq!(answer.get(), 42);
//!     Ok(())
//! }
//! ```
//!
//! `Queue`, `Pipe`, `Value`, `Array`, `Lock` and friends, a process launcher
//! and a `Pool`, built on mmap'd segments and cross-process futexes. A peer
//! process that crashes while holding a lock or half-way through a put can
//! neither hang nor corrupt the others.
//!
//! | Python `multiprocessing` | shmproc |
//! |--------------------------|---------|
//! | `Process(target=f, args=a).start()` | [`Process::spawn(f, a)`](Process::spawn) |
//! | `Value('i', 0)`, `Array('d', 10)` | [`Value::new(0i32)`](Value::new), [`Array::<f64>::new(10)`](Array::new) |
//! | `Lock()`, `RLock()`, `Semaphore(n)`, `Event()`, `Condition()`, `Barrier(n)` | [`Lock`], [`RLock`], [`Semaphore`], [`Event`], [`Condition`], [`Barrier`] |
//! | `shared_memory.SharedMemory(name=...)` | any object's `builder().name(..)`, then `open(name)` elsewhere |
//!
//! `docs/guide-from-python.md` maps every call and the pitfalls shmproc removes.
//!
//! Tools: the `shmproc` binary (`cargo install --path .`) lists, inspects and
//! cleans up named segments ([`inspect`] is its library side). Lifecycle
//! events (segments created, opened and unlinked, processes spawned and
//! exited, locks recovered from dead holders) go through the [`log`] facade:
//! silent unless the application installs a logger.
//!
//! See `docs/architecture.md` for the layers; each shared protocol has its
//! state table in `docs/protocols/`.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

#[cfg(not(loom))]
pub mod array;
mod error;
#[cfg(not(loom))]
pub mod inspect;
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
