//! [`StartMethod::Fork`](super::StartMethod::Fork): fork and run the entry
//! in the copy, which never returns into the parent's code.

use std::io::Write;
use std::os::fd::AsFd;
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::entry::{EntryReturn, EXIT_LAUNCH, EXIT_PANIC};
use super::registry::{self, ProcessInfo};
use crate::error::Result;
use crate::sys;
use crate::sys::exit_word::ExitWord;

/// Forks; the child arms `exit` (its exit word), runs `f(args)` and exits;
/// the parent gets the child's pid and `exit` back.
pub(super) fn spawn<F, A, R>(
    f: F,
    args: A,
    name: &str,
    daemon: bool,
    identity: Vec<u32>,
    exit: ExitWord,
) -> Result<(u32, ExitWord)>
where
    F: FnOnce(A) -> R,
    R: EntryReturn,
{
    // Whatever sits in the stdio buffers now would be written twice.
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    let parent = registry::current_process();
    let name = name.to_owned();
    // SAFETY:
    // - the child runs only `child`, which ends with `exit_now` and never
    //   returns into the caller's frames (no destructor runs twice);
    // - that the parent has no other threads holding locks the entry needs
    //   is the documented contract of StartMethod::Fork.
    match unsafe { sys::process::fork() }? {
        Some(pid) => {
            // The pipe ends `f` and `args` captured now belong to the child
            // too; dropping our copies must not make them look gone.
            #[cfg(not(loom))]
            let handover = crate::pipe::forked::hand_over(pid);
            drop(f);
            drop(args);
            #[cfg(not(loom))]
            handover.settle();
            Ok((pid, exit))
        }
        None => child(f, args, name, daemon, identity, parent, exit),
    }
}

fn child<F, A, R>(
    f: F,
    args: A,
    name: String,
    daemon: bool,
    identity: Vec<u32>,
    parent: ProcessInfo,
    exit: ExitWord,
) -> !
where
    F: FnOnce(A) -> R,
    R: EntryReturn,
{
    // First: from here on the kernel marks the word whenever we die.
    // (glibc emptied this thread's robust list at the fork.)
    if let Err(e) = exit.arm() {
        log::warn!("shmproc: forked child {name} cannot arm its exit word: {e}");
    }
    sys::task::forget_current();
    // As Python's children (and ours started by re-exec): stdin is /dev/null.
    if let Ok(null) = std::fs::File::open("/dev/null") {
        let _ = sys::process::dup_onto(null.as_fd(), 0);
    }
    if daemon && sys::process::die_with_parent(parent.pid()).is_err() {
        sys::process::exit_now(EXIT_LAUNCH);
    }
    registry::install_child(name, daemon, identity, parent);
    let code = catch_unwind(AssertUnwindSafe(|| f(args).exit_code())).unwrap_or(EXIT_PANIC);
    let _ = std::io::stdout().flush();
    sys::process::exit_now(code)
}
