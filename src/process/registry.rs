//! Who this process is, who its parent is, and which children it still has
//! to reap.
//!
//! The state lives in one leaked [`Globals`] behind an atomic pointer, keyed
//! by the process id: a child (forked or re-executed) installs a fresh one
//! without taking any lock, so a lock held by another thread at `fork` time
//! can never deadlock it. A process made by a `fork` outside shmproc notices
//! the stale pid and starts afresh with no children.

use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::Shared;
use crate::sys;

/// A process's identity as `current_process()` and `parent_process()` report
/// it: name, pid, whether it is a daemon.
///
/// # Examples
/// ```
/// shmproc::init();
/// let me = shmproc::current_process();
/// assert_eq!(me.name(), "MainProcess");
/// assert_eq!(me.pid(), std::process::id());
/// assert!(me.is_alive());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    name: String,
    pid: u32,
    daemon: bool,
    /// Start time of `pid` (clock ticks since boot), to tell a reused pid apart.
    start: u64,
}

impl ProcessInfo {
    pub(crate) fn new(name: String, pid: u32, daemon: bool, start: u64) -> Self {
        ProcessInfo {
            name,
            pid,
            daemon,
            start,
        }
    }

    /// The process's name: `"MainProcess"` for a process shmproc did not
    /// launch, else the name given to the builder or `"Process-N"`.
    ///
    /// # Examples
    /// ```no_run
    /// shmproc::init();
    /// assert_eq!(shmproc::current_process().name(), "MainProcess");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id.
    ///
    /// # Examples
    /// ```
    /// assert_eq!(shmproc::current_process().pid(), std::process::id());
    /// ```
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the process was launched as a daemon.
    ///
    /// # Examples
    /// ```
    /// assert!(!shmproc::current_process().daemon());
    /// ```
    pub fn daemon(&self) -> bool {
        self.daemon
    }

    /// Whether the process is still running (a reused pid does not count).
    ///
    /// # Examples
    /// ```
    /// assert!(shmproc::current_process().is_alive());
    /// ```
    pub fn is_alive(&self) -> bool {
        sys::task::TaskId::is_alive(sys::task::TaskId {
            tid: self.pid,
            start: self.start,
        })
    }
}

/// Everything process-wide the launcher keeps.
pub(crate) struct Globals {
    /// The process these globals belong to.
    pid: u32,
    pub(crate) me: ProcessInfo,
    pub(crate) parent: Option<ProcessInfo>,
    /// Python's `_identity`: `[]` for the main process, `[1]` for its first
    /// child, `[1, 2]` for that child's second child. Default names come from it.
    pub(crate) identity: Vec<u32>,
    /// How many children this process has launched.
    counter: AtomicU32,
    /// Children not reaped yet.
    children: Mutex<Vec<Arc<Shared>>>,
}

static GLOBALS: AtomicPtr<Globals> = AtomicPtr::new(std::ptr::null_mut());

impl Globals {
    fn main_process() -> Globals {
        let pid = sys::task::pid();
        Globals {
            pid,
            me: ProcessInfo::new(
                "MainProcess".into(),
                pid,
                false,
                sys::task::start_time(pid).unwrap_or(0),
            ),
            parent: None,
            identity: Vec::new(),
            counter: AtomicU32::new(0),
            children: Mutex::new(Vec::new()),
        }
    }

    /// The identity and default name of the next child.
    pub(crate) fn next_child(&self) -> (Vec<u32>, String) {
        // Relaxed: a unique number is all that is needed.
        let n = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
        let mut id = self.identity.clone();
        id.push(n);
        let parts: Vec<String> = id.iter().map(u32::to_string).collect();
        let name = format!("Process-{}", parts.join(":"));
        (id, name)
    }

    /// Records a child to reap later.
    pub(crate) fn add_child(&self, child: Arc<Shared>) {
        self.children.lock().push(child);
    }

    /// Reaps every child that has ended; returns those still running.
    pub(crate) fn reap_finished(&self) -> Vec<Arc<Shared>> {
        let mut children = self.children.lock();
        children.retain(|c| c.poll_running());
        children.clone()
    }
}

/// This process's globals, created on first use.
pub(crate) fn globals() -> &'static Globals {
    // SYNC POINT: globals-install. Pairs with the Release in `install`.
    let p = GLOBALS.load(Ordering::Acquire);
    if !p.is_null() {
        // SAFETY: non-null pointers in GLOBALS come from Box::into_raw in
        // `install` and are never freed, so the reference is valid forever.
        let g = unsafe { &*p };
        if g.pid == sys::task::pid() {
            return g;
        }
    }
    globals_slow(p)
}

#[cold]
fn globals_slow(seen: *mut Globals) -> &'static Globals {
    // Either nothing is installed yet, or these globals are a forked copy
    // from a parent (a fork shmproc did not make): keep the parent's
    // identity of ourselves, without its children.
    let mut fresh = Globals::main_process();
    if !seen.is_null() {
        // SAFETY: as in `globals`: installed pointers are never freed.
        let old = unsafe { &*seen };
        fresh.me.name = old.me.name.clone();
        fresh.identity = old.identity.clone();
    }
    let new = Box::into_raw(Box::new(fresh));
    // SYNC POINT: globals-install. Release publishes the new Globals' fields.
    match GLOBALS.compare_exchange(seen, new, Ordering::AcqRel, Ordering::Acquire) {
        // SAFETY: `new` came from Box::into_raw above and is now never freed.
        Ok(_) => unsafe { &*new },
        Err(_) => {
            // Another thread installed first: use theirs, free ours (never shared).
            // SAFETY: `new` was not published, so we own it exclusively.
            drop(unsafe { Box::from_raw(new) });
            globals()
        }
    }
}

/// Installs the globals of a freshly launched child (re-executed or forked).
/// Lock-free; the previous globals (a fork's copy of the parent's) are leaked.
pub(crate) fn install_child(name: String, daemon: bool, identity: Vec<u32>, parent: ProcessInfo) {
    let pid = sys::task::pid();
    let g = Globals {
        pid,
        me: ProcessInfo::new(name, pid, daemon, sys::task::start_time(pid).unwrap_or(0)),
        parent: Some(parent),
        identity,
        counter: AtomicU32::new(0),
        children: Mutex::new(Vec::new()),
    };
    // SYNC POINT: globals-install. Release publishes the new Globals' fields.
    GLOBALS.store(Box::into_raw(Box::new(g)), Ordering::Release);
}

/// The number of CPUs this process may run on (its affinity mask and cgroup
/// quota taken into account, like Python's `os.process_cpu_count()`); at least 1.
///
/// # Examples
/// ```
/// assert!(shmproc::cpu_count() >= 1);
/// ```
pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// This process: `"MainProcess"`, or the name it was launched with.
///
/// # Examples
/// ```
/// shmproc::init();
/// assert_eq!(shmproc::current_process().name(), "MainProcess");
/// ```
pub fn current_process() -> ProcessInfo {
    globals().me.clone()
}

/// The process that launched this one, if shmproc launched it; `None` in a
/// main process.
///
/// # Examples
/// ```
/// shmproc::init();
/// assert!(shmproc::parent_process().is_none());
/// ```
pub fn parent_process() -> Option<ProcessInfo> {
    globals().parent.clone()
}

/// The children of this process that are still running. Like Python, this
/// reaps every child that has ended (so none stays a zombie).
///
/// # Examples
/// ```
/// shmproc::init();
/// assert!(shmproc::active_children().is_empty());
/// ```
pub fn active_children() -> Vec<super::Process> {
    globals()
        .reap_finished()
        .into_iter()
        .map(super::Process::from_shared)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_follow_python() {
        let g = Globals::main_process();
        assert_eq!(g.next_child(), (vec![1], "Process-1".to_string()));
        assert_eq!(g.next_child(), (vec![2], "Process-2".to_string()));
        let mut child = Globals::main_process();
        child.identity = vec![3];
        assert_eq!(child.next_child(), (vec![3, 1], "Process-3:1".to_string()));
    }

    #[test]
    fn main_process_identity() {
        let me = current_process();
        assert_eq!(me.pid(), std::process::id());
        assert!(!me.daemon() && me.is_alive());
        assert!(parent_process().is_none());
        let gone = ProcessInfo::new("x".into(), me.pid(), false, me.start + 1);
        assert!(!gone.is_alive(), "another start time is another process");
    }
}
