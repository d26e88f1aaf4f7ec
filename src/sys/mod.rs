//! The only layer that makes raw system calls.
//!
//! - `futex`: shared (never private) futex wait/wake with absolute monotonic deadlines.
//! - `shm`: memfd (sealed) and `shm_open` segment files, mapping, unlinking.
//! - `task`: who we are, and whether a task a shared word names is alive
//!   (id + start time against pid reuse).
//! - `process`: child processes: fork, pidfd, reaping, signals, parent-death signal.
//! - `robust_list`: linking a futex word into the calling thread's robust
//!   list, so that the kernel marks it when the thread dies.
//! - `exit_word`: a child's exit word, the page that holds it, and the
//!   waiter's side of it (`docs/protocols/exit-word.md`).
//! - `clock`: a coarse millisecond clock for cheap bookkeeping.
//! - `code`: naming a function across processes of one executable.

#[cfg(not(target_os = "linux"))]
compile_error!("shmproc needs Linux: futexes, memfd_create and pidfd are Linux interfaces");

pub(crate) mod clock;
pub(crate) mod code;
pub(crate) mod exit_word;
pub(crate) mod futex;
pub(crate) mod process;
pub(crate) mod robust_list;
pub(crate) mod shm;
pub(crate) mod task;
