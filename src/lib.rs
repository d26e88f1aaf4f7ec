//! shmproc: Python's `multiprocessing` for Rust, over shared memory.
//!
//! Two processes and a queue between them:
//!
//! ```
//! use shmproc::{Process, Queue};
//!
//! fn worker((q, n): (Queue<String>, u32)) {
//!     q.put(&format!("hello {n} from process {}", std::process::id())).unwrap();
//! }
//!
//! fn main() -> shmproc::Result<()> {
//!     shmproc::init(); // first line of main: a launched child runs its entry here
//!     let q = Queue::<String>::new(16)?;
//!     let p = Process::spawn(worker, (q.clone(), 7))?;
//!     let greeting = q.get()?;
//!     println!("{greeting}");
//!     assert_eq!(greeting, format!("hello 7 from process {}", p.pid()));
//!     assert_eq!(p.join()?, 0);
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
//! | `Queue(maxsize)`, `JoinableQueue()` | [`Queue::new(maxsize)`](Queue::new), [`JoinableQueue`] |
//! | `Pipe()`, `Pipe(duplex=False)` | [`Pipe::duplex`], [`Pipe::simplex`] |
//! | `Pool(4).map(f, xs)` | [`Pool::new(4)?.map(f, xs)`](Pool::map) |
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
// Under loom only the algorithms and their models are exercised.
#![cfg_attr(loom, allow(dead_code, unreachable_pub))]

#[cfg(not(loom))]
mod array;
mod chan;
mod error;
#[cfg(not(loom))]
pub mod inspect;
#[cfg(not(loom))]
mod pipe;
#[cfg(not(loom))]
mod pool;
#[cfg(not(loom))]
mod process;
#[cfg(not(loom))]
mod queue;
mod segment;
mod sync;
mod sys;
#[cfg(not(loom))]
mod value;
#[cfg(not(loom))]
mod wire;

#[cfg(not(loom))]
pub use array::{Array, ArrayConfig, ArrayGuard, RawArray};
pub use error::{Error, Result};
#[cfg(not(loom))]
pub use pipe::{Connection, Pipe, PipeBuilder, Receiver, Sender};
#[cfg(not(loom))]
pub use pool::{AsyncResult, AsyncResultFuture, Imap, Invoke, Pool, PoolBuilder, Star};
#[cfg(not(loom))]
pub use process::{
    active_children, cpu_count, current_process, parent_process, EntryReturn, Process,
    ProcessBuilder, ProcessInfo, StartMethod,
};
#[cfg(not(loom))]
pub use queue::{Codec, JoinableQueue, Pod, PodQueue, Queue, QueueBuilder, Serde};
pub use segment::unlink;
#[cfg(not(loom))]
pub use sync::many::{wait, Waitable};
#[cfg(all(feature = "stream", not(loom)))]
pub use sync::reactor::ItemStream;
#[cfg(not(loom))]
pub use sync::{
    Barrier, BarrierConfig, BoundedSemaphore, Builder, Condition, ConditionGuard, Event, Lock,
    LockGuard, RLock, RLockGuard, Semaphore, SemaphoreGuard, WaitGuard,
};
#[cfg(not(loom))]
pub use value::{AtomicInt, RawValue, Value, ValueGuard};

/// Runs a launched child's entry; returns at once in any other process.
///
/// Call it first in `main`, and first in every test that spawns processes.
/// In a process that shmproc launched with [`StartMethod::Spawn`] it reads
/// the launch record, runs the entry under `catch_unwind` and exits: status 0
/// when the entry returns (or returns `Ok`), 1 when it returns `Err` (printed
/// like a failing `main`), 101 when it panics (printed by the panic hook, as
/// Rust does). It never returns there, so code after it runs only in the
/// parent. Calling it again, or in a program that never spawns, costs one
/// environment lookup.
///
/// With the cargo feature `mpi`, in a process that `mpirun` (or another MPI
/// launcher) started, it also joins the MPI job: rank 0 returns and may
/// build a [`Pool`] over the other ranks with `Pool::builder().mpi()`;
/// ranks 1.. serve that pool's
/// tasks here and exit when rank 0 exits, never returning either.
///
/// # Examples
/// ```
/// // first line of `main`:
/// shmproc::init();
/// // ... the program, which may spawn processes ...
/// assert!(shmproc::parent_process().is_none());
/// ```
pub fn init() {
    #[cfg(not(loom))]
    process::run_if_launched();
    #[cfg(all(feature = "mpi", not(loom)))]
    pool::mpi::init();
}
