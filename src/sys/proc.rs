//! Thread and process identity, start times and liveness.
//!
//! A process or thread id alone cannot name an owner across time: Linux reuses
//! ids. An id plus its start time (field 22 of `/proc/<id>/stat`, in clock ticks
//! since boot) does: no two tasks alive at different times share both.

use std::cell::Cell;
use std::fs;

/// The identity of a thread: its kernel thread id and its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TaskId {
    /// Kernel thread id (`gettid`); the process id for a main thread.
    pub tid: u32,
    /// Start time in clock ticks since boot, never 0 for a live task.
    pub start: u64,
}

thread_local! {
    // Cached (pid, tid, start) of the current thread. `pid` detects a fork: a
    // forked child inherits the parent's thread-locals but has another pid.
    static CURRENT: Cell<Option<(u32, TaskId)>> = const { Cell::new(None) };
}

/// The current process id.
pub fn pid() -> u32 {
    std::process::id()
}

/// The current thread's kernel id.
pub fn gettid() -> u32 {
    // SAFETY: gettid takes no arguments and cannot fail.
    unsafe { libc::gettid() as u32 }
}

/// The current thread's identity, cached per thread.
///
/// The cache is keyed by the process id, so a forked child re-reads it; the
/// `getpid` check costs one cheap syscall, so lock fast paths use
/// [`current_task_cached`] instead.
pub fn current_task() -> TaskId {
    let pid = pid();
    CURRENT.with(|c| match c.get() {
        Some((p, id)) if p == pid => id,
        _ => {
            let tid = gettid();
            let start = start_time(tid).unwrap_or(1);
            let id = TaskId { tid, start };
            c.set(Some((pid, id)));
            id
        }
    })
}

/// The current thread's identity without any syscall once cached.
///
/// After a `fork` the child's cache would still name the parent thread, so
/// every fork path in shmproc calls [`forget_current_task`] in the child, and
/// [`install_fork_hook`] covers forks made by other code.
#[inline]
pub fn current_task_cached() -> TaskId {
    CURRENT.with(|c| match c.get() {
        Some((_, id)) => id,
        None => current_task(),
    })
}

/// Drops the cached identity of the current thread (call in a forked child).
pub fn forget_current_task() {
    CURRENT.with(|c| c.set(None));
}

extern "C" fn atfork_child() {
    forget_current_task();
}

/// Registers (once) a `pthread_atfork` child handler that clears the cached
/// identity, so a `fork()` made by code outside shmproc cannot make a child
/// take locks under its parent's thread id.
pub fn install_fork_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: `atfork_child` is an `extern "C" fn()` that only touches a
        // thread-local Cell, which is async-signal-safe enough for the child side
        // of fork (no allocation, no locks).
        unsafe { libc::pthread_atfork(None, None, Some(atfork_child)) };
    });
}

/// Reads the start time (clock ticks since boot) of task `id` from
/// `/proc/<id>/stat`; `None` if no such task exists now.
///
/// `/proc/<tid>` resolves thread ids too, although they are not listed.
pub fn start_time(id: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{id}/stat")).ok()?;
    parse_start_time(&stat)
}

/// Parses field 22 (`starttime`) of a `/proc/<id>/stat` line. The command name
/// (field 2) is in parentheses and may contain spaces or parentheses, so fields
/// are counted after the last `)`.
fn parse_start_time(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After ')' come fields 3.. ; starttime is field 22, so index 22 - 3 = 19.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the task `who` (id and start time) is still alive.
///
/// A task that exists with another start time is a reuse of the id: the task
/// we knew is dead. A zombie counts as dead (it can never release anything).
pub fn is_alive(who: TaskId) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{}/stat", who.tid)) else {
        return false;
    };
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    if matches!(state, Some("Z") | Some("X") | Some("x")) {
        return false;
    }
    match parse_start_time(&stat) {
        Some(start) => start == who.start,
        None => false,
    }
}

/// Whether process `pid` exists (any start time); zombies count as dead.
pub fn pid_exists(pid: u32) -> bool {
    match start_time(pid) {
        Some(start) => is_alive(TaskId { tid: pid, start }),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_task_is_alive() {
        let me = current_task();
        assert_eq!(me.tid, gettid());
        assert!(me.start > 0);
        assert!(is_alive(me));
        assert!(!is_alive(TaskId {
            tid: me.tid,
            start: me.start + 1
        }));
    }

    #[test]
    fn parse_handles_parens_in_comm() {
        let line = "123 (a) b (c)) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 4242 99";
        assert_eq!(parse_start_time(line), Some(4242));
        assert_eq!(parse_start_time("garbage"), None);
    }

    #[test]
    fn thread_ids_resolve() {
        let id = std::thread::spawn(current_task).join().unwrap();
        // The thread has exited: its id must read as dead.
        assert!(!is_alive(id));
    }
}
