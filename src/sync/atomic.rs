//! The one place that names the atomics used by the lock-free algorithms:
//! std's normally, loom's under `--cfg loom` so the same algorithm code can be
//! model-checked on the heap (the model is tokio's `src/loom/mod.rs`).
//!
//! Structures that are placed in shared memory use these types; under loom
//! they live on the heap (loom atomics have another size, so the layout
//! assertions are `cfg(not(loom))`).

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

/// Pads and aligns a field to its own pair of cache lines (adjacent-line
/// prefetch pulls lines in pairs), so words written by different parties
/// never share a line (the model is crossbeam's `CachePadded`).
#[repr(C, align(128))]
#[derive(Debug, Default)]
pub(crate) struct Pad<T>(pub T);
