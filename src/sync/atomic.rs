//! The one place that names the atomics used by the lock-free algorithms:
//! std's normally, loom's under `--cfg loom` so the same algorithm code can be
//! model-checked on the heap (the model is tokio's `src/loom/mod.rs`).
//!
//! Structures that are placed in shared memory use std atomics directly (loom
//! atomics have another size); algorithms are generic over where they live.

#[cfg(not(loom))]
pub use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

#[cfg(loom)]
pub use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
