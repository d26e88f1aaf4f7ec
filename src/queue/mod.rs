//! `Queue<T>` and `JoinableQueue<T>`: bounded multi-producer multi-consumer
//! queues in shared memory, each item delivered to exactly one consumer.
//!
//! Reading order: this file (API), `chan.rs` (a ring in a segment),
//! `ring.rs` (the slot ring algorithm, no syscalls), `block.rs` (spin, then
//! futex), `bulk.rs` (messages larger than a slot), and
//! `docs/protocols/queue.md` for the state tables and crash cases.
//! `spec.rs` holds what a builder collects for one ring (shared with the
//! pipe's builder).

#[cfg(not(loom))]
mod batch;
pub(crate) mod block;
#[cfg(not(loom))]
mod bulk;
#[cfg(not(loom))]
pub(crate) mod chan;
pub mod codec;
#[cfg(not(loom))]
mod joinable;
#[cfg(not(loom))]
pub(crate) mod layout;
pub(crate) mod ring;
#[cfg(not(loom))]
pub(crate) mod spec;

#[cfg(not(loom))]
pub use api::{Queue, QueueBuilder};
pub use codec::{Codec, Pod, Serde};
#[cfg(not(loom))]
pub use joinable::JoinableQueue;

/// A queue of `bytemuck::Pod` items, copied without encoding.
///
/// # Examples
/// ```
/// let q = shmproc::PodQueue::<[f32; 4]>::new(8)?;
/// q.put(&[1.0, 2.0, 3.0, 4.0])?;
/// assert_eq!(q.get()?, [1.0, 2.0, 3.0, 4.0]);
/// # Ok::<(), shmproc::Error>(())
/// ```
#[cfg(not(loom))]
pub type PodQueue<T> = Queue<T, Pod>;

#[cfg(not(loom))]
pub(crate) mod api;
