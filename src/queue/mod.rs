//! `Queue<T>` and `JoinableQueue<T>`: bounded multi-producer multi-consumer
//! queues in shared memory, each item delivered to exactly one consumer.
//!
//! A thin typed front end over the channel layer (`src/chan/`): this folder
//! turns items into byte messages with a codec and adds what only queues
//! have (`tasks.rs`: a joinable queue's count of unfinished tasks). Reading
//! order: `api.rs` (Queue), `joinable.rs`, then `src/chan/mod.rs` and
//! `docs/protocols/queue.md` for the machinery and its crash cases.

mod aio;
mod api;
mod joinable;
mod tasks;

pub use crate::chan::codec::{Codec, Pod, Serde};
pub use api::{Queue, QueueBuilder};
pub use joinable::JoinableQueue;
pub(crate) use tasks::unfinished;

/// A queue of `bytemuck::Pod` items, copied without encoding.
///
/// # Examples
/// ```
/// let q = shmproc::PodQueue::<[f32; 4]>::new(8)?;
/// q.put(&[1.0, 2.0, 3.0, 4.0])?;
/// assert_eq!(q.get()?, [1.0, 2.0, 3.0, 4.0]);
/// # Ok::<(), shmproc::Error>(())
/// ```
pub type PodQueue<T> = Queue<T, Pod>;
