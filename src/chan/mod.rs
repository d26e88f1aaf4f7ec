//! The channel layer: byte messages between any number of processes, in one
//! segment, with blocking, batches and crash recovery. `queue/` and `pipe/`
//! are thin typed front ends over it.
//!
//! Reading order: `mapped.rs` ([`Chan`]: a ring in a segment, put/get of
//! byte messages), `ring.rs` (the slot ring algorithm, no syscalls) and
//! `ring/sleep.rs` (how its waiters sleep), `block.rs` (blocking claims:
//! spin, sleep, liveness), `batch.rs` (runs of slots), `bytes.rs` (the byte
//! ring) and `bulk.rs` (messages larger than a slot, streamed through it),
//! `layout.rs` (where everything lives in the segment), `spec.rs` (what a
//! builder collects) and `codec.rs` (items to bytes). Protocols:
//! `docs/protocols/queue.md` and `docs/protocols/bytes.md`.

#[cfg(not(loom))]
mod batch;
pub(crate) mod block;
#[cfg(not(loom))]
mod bulk;
pub(crate) mod bytes;
#[cfg(not(loom))]
pub(crate) mod codec;
#[cfg(not(loom))]
pub(crate) mod layout;
#[cfg(not(loom))]
mod mapped;
#[cfg(not(loom))]
mod ready;
pub(crate) mod ring;
#[cfg(not(loom))]
pub(crate) mod spec;

#[cfg(not(loom))]
pub(crate) use mapped::Chan;
