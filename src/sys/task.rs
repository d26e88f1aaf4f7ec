//! Tasks (threads and processes): who we are, and whether a task that a
//! shared word names is still alive.
//!
//! A thread or process id alone cannot name a holder across time: Linux reuses
//! ids. An id plus its start time (field 22 of `/proc/<id>/stat`, in clock
//! ticks since boot) does: no two tasks alive at different times share both.
//! [`TaskId`] is that pair for a task we know; [`Holder`] is what a shared
//! word recorded of one (all of its start time, its low bits, or nothing yet),
//! and the one liveness question every protocol asks.

use std::cell::Cell;
use std::fs;

/// The identity of a thread: its kernel thread id and its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct TaskId {
    /// Kernel thread id (`gettid`); the process id for a main thread.
    pub tid: u32,
    /// Start time in clock ticks since boot, never 0 for a live task.
    pub start: u64,
}

impl TaskId {
    /// Whether this task (id and start time) is still alive.
    pub(crate) fn is_alive(self) -> bool {
        !Holder::exact(self).is_dead()
    }
}

/// A task as a shared word recorded it: its id and the bits of its start
/// time the word had room for. Asking whether it is dead reads `/proc`
/// (microseconds): slow paths only.
///
/// | recorded              | dead when                                        |
/// |-----------------------|--------------------------------------------------|
/// | id, whole start time  | no task has the id, or it started at another time |
/// | id, low bits of start | no task has the id, or those bits differ          |
/// | id only (not yet)     | no task has the id                                |
///
/// A zombie counts as dead in every row (it can never release anything).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Holder {
    tid: u32,
    start: u64,
    /// Which bits of `start` are known (0: none recorded yet).
    known: u64,
}

impl Holder {
    /// A holder whose whole start time was recorded.
    pub(crate) fn exact(who: TaskId) -> Holder {
        Holder {
            tid: who.tid,
            start: who.start,
            known: u64::MAX,
        }
    }

    /// A holder of which only the low `bits` bits of the start time were
    /// recorded (`start_lo` holds them).
    pub(crate) fn low_bits(tid: u32, start_lo: u64, bits: u32) -> Holder {
        let known = if bits >= 64 {
            u64::MAX
        } else {
            (1u64 << bits) - 1
        };
        Holder {
            tid,
            start: start_lo & known,
            known,
        }
    }

    /// A holder that has not recorded its start time yet (it is between
    /// winning a word and publishing itself).
    pub(crate) fn unrecorded(tid: u32) -> Holder {
        Holder {
            tid,
            start: 0,
            known: 0,
        }
    }

    /// The recorded thread (or process) id.
    pub(crate) fn tid(&self) -> u32 {
        self.tid
    }

    /// Whether the task is certainly dead (the table above).
    pub(crate) fn is_dead(&self) -> bool {
        let Ok(stat) = fs::read_to_string(format!("/proc/{}/stat", self.tid)) else {
            return true;
        };
        let state = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next());
        if matches!(state, Some("Z") | Some("X") | Some("x")) {
            return true;
        }
        match parse_start_time(&stat) {
            Some(start) => start & self.known != self.start,
            None => true,
        }
    }
}

thread_local! {
    // Cached (pid, identity) of the current thread. `pid` detects a fork: a
    // forked child inherits the parent's thread-locals but has another pid.
    static CURRENT: Cell<Option<(u32, TaskId)>> = const { Cell::new(None) };
}

/// The current process id.
pub(crate) fn pid() -> u32 {
    std::process::id()
}

/// The current thread's kernel id.
pub(crate) fn gettid() -> u32 {
    // SAFETY: gettid takes no arguments and cannot fail.
    unsafe { libc::gettid() as u32 }
}

/// The current thread's identity, read afresh if the cache was made by
/// another process (a fork). Costs a `getpid`; hot paths use [`me`].
pub(crate) fn current() -> TaskId {
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

/// The calling thread's identity, without any syscall once cached: what
/// every protocol records as "who holds this".
///
/// After a `fork` the child's cache would still name the parent thread, so
/// every fork path in shmproc calls [`forget_current`] in the child, and
/// [`install_fork_hook`] covers forks made by other code.
#[inline]
pub(crate) fn me() -> TaskId {
    CURRENT.with(|c| match c.get() {
        Some((_, id)) => id,
        None => current(),
    })
}

/// Drops the cached identity of the current thread (call in a forked child).
pub(crate) fn forget_current() {
    CURRENT.with(|c| c.set(None));
}

extern "C" fn atfork_child() {
    forget_current();
}

/// Registers (once) a `pthread_atfork` child handler that clears the cached
/// identity, so a `fork()` made by code outside shmproc cannot make a child
/// take locks under its parent's thread id.
pub(crate) fn install_fork_hook() {
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
pub(crate) fn start_time(id: u32) -> Option<u64> {
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

/// Whether process `pid` exists (any start time); zombies count as dead.
pub(crate) fn pid_exists(pid: u32) -> bool {
    !Holder::unrecorded(pid).is_dead()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_task_is_alive() {
        let me = current();
        assert_eq!(me.tid, gettid());
        assert_eq!(super::me(), me);
        assert!(me.start > 0);
        assert!(me.is_alive());
        let reused = TaskId {
            tid: me.tid,
            start: me.start + 1,
        };
        assert!(!reused.is_alive(), "same id, another start: a reuse");
    }

    #[test]
    fn parse_handles_parens_in_comm() {
        let line = "123 (a) b (c)) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 4242 99";
        assert_eq!(parse_start_time(line), Some(4242));
        assert_eq!(parse_start_time("garbage"), None);
    }

    #[test]
    fn holder_rows() {
        let me = current();
        assert!(!Holder::exact(me).is_dead());
        assert!(!Holder::low_bits(me.tid, me.start, 16).is_dead());
        assert!(!Holder::low_bits(me.tid, me.start & 0xffff, 16).is_dead());
        assert!(Holder::low_bits(me.tid, me.start ^ 1, 16).is_dead());
        assert!(!Holder::unrecorded(me.tid).is_dead());
        // No task can have an id with bit 31 set (a scribbled word).
        assert!(Holder::unrecorded(0x8000_0001).is_dead());
        assert!(pid_exists(pid()));
    }

    #[test]
    fn exited_threads_are_dead() {
        let id = std::thread::spawn(current).join().unwrap();
        assert!(!id.is_alive());
        assert!(Holder::exact(id).is_dead());
    }
}
