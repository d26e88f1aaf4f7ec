//! The only layer that makes raw system calls.
//!
//! - [`futex`]: shared (never private) futex wait/wake with absolute monotonic deadlines.
//! - [`shm`]: memfd (sealed) and `shm_open` segment files, mapping, unlinking.
//! - [`proc`]: thread/process identity, start times (pid-reuse checks), liveness.
//! - [`process`]: child processes: fork, pidfd, reaping, signals, parent-death signal.
//! - [`clock`]: a coarse millisecond clock for cheap bookkeeping.
//! - `code`: naming a function across processes of one executable.

#[cfg(not(target_os = "linux"))]
compile_error!("shmproc needs Linux: futexes, memfd_create and pidfd are Linux interfaces");

pub mod clock;
pub(crate) mod code;
pub mod futex;
pub mod proc;
pub mod process;
pub mod shm;
