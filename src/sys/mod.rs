//! The only layer that makes raw system calls.
//!
//! - `futex`: shared (never private) futex wait/wake with absolute monotonic deadlines.
//! - `shm`: memfd (sealed) and `shm_open` segment files, mapping, unlinking.
//! - `task`: who we are, and whether a task a shared word names is alive
//!   (id + start time against pid reuse).
//! - `process`: child processes: fork, pidfd, reaping, signals, parent-death signal.
//! - `clock`: a coarse millisecond clock for cheap bookkeeping.
//! - `code`: naming a function across processes of one executable.

#[cfg(not(target_os = "linux"))]
compile_error!("shmproc needs Linux: futexes, memfd_create and pidfd are Linux interfaces");

pub(crate) mod clock;
pub(crate) mod code;
pub(crate) mod futex;
pub(crate) mod process;
pub(crate) mod shm;
pub(crate) mod task;
