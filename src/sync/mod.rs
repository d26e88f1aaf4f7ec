//! Cross-process synchronisation primitives over futex words in shared memory.

pub mod atomic;
pub mod wait;
