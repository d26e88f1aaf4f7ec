//! The child side of a launch: [`run_if_launched`], the launcher's part of
//! [`crate::init`].

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};

use super::boot::{self, Boot, ENV};
use super::entry::{self, EXIT_LAUNCH, EXIT_PANIC};
use super::registry::{self, ProcessInfo};
use crate::sys;
use crate::sys::exit_word::ExitWord;

/// Set once `init()` has looked at the environment in this process.
static INIT_SEEN: AtomicBool = AtomicBool::new(false);

/// The launcher's part of [`crate::init`]: in a process that shmproc
/// launched with `StartMethod::Spawn`, runs its entry and exits (never
/// returns); returns at once in any other process.
pub(crate) fn run_if_launched() {
    // Relaxed: a flag this process alone reads, ordered by program order.
    INIT_SEEN.store(true, Ordering::Relaxed);
    let Some(value) = std::env::var_os(ENV) else {
        return;
    };
    // Consume the marker so that programs this child runs do not inherit it.
    std::env::remove_var(ENV);
    let Some((fd, nonce)) = value.to_str().and_then(boot::parse_env) else {
        return;
    };
    match boot::read(fd, nonce) {
        Ok(Some((b, file))) => {
            boot::mark_started(&file);
            drop(file);
            run(b)
        }
        Ok(None) => {} // a stale marker from some other program: a normal process
        Err(e) => fail(&format!("cannot read the launch record: {e}")),
    }
}

/// Whether this process was launched by shmproc and has not called `init()`
/// yet: spawning from there would launch a child that runs the same code
/// again, so the launcher refuses.
pub(crate) fn init_missing() -> bool {
    // Relaxed: see `init`.
    !INIT_SEEN.load(Ordering::Relaxed) && std::env::var_os(ENV).is_some()
}

#[cold]
fn fail(msg: &str) -> ! {
    eprintln!("shmproc: launch failed: {msg}");
    std::process::exit(EXIT_LAUNCH)
}

/// Maps the exit word's page the parent sent and links the word into this
/// thread's robust list. A failure only costs the parent speed (it finds
/// the exit at its next slice end, from the pidfd): logged, not fatal.
fn arm_exit_word(fd: std::os::fd::RawFd) {
    match ExitWord::adopt(fd) {
        Ok(word) => {
            if let Err(e) = word.arm() {
                log::warn!("shmproc: cannot arm this child's exit word: {e}");
            }
        }
        Err(e) => log::warn!("shmproc: cannot map this child's exit word: {e}"),
    }
}

fn run(b: Boot) -> ! {
    // First: from here on the kernel marks the exit word whenever we die.
    if let Some(fd) = b.exit_word {
        arm_exit_word(fd);
    }
    match boot::exe_identity() {
        Ok(exe) if exe == b.exe => {}
        Ok(exe) => fail(&format!(
            "expected the parent's executable (device {}, inode {}), found device {}, inode {}",
            b.exe.0, b.exe.1, exe.0, exe.1
        )),
        Err(e) => fail(&e.to_string()),
    }
    if let Some(out) = b.stdout {
        match sys::shm::adopt_fd(out) {
            Ok(out) => {
                let _ = std::io::stdout().flush();
                if let Err(e) = sys::process::dup_onto(out.as_fd(), libc::STDOUT_FILENO) {
                    fail(&e.to_string());
                }
            }
            Err(e) => fail(&e.to_string()),
        }
    }
    let mut fds: Vec<OwnedFd> = Vec::with_capacity(b.fds.len());
    for raw in &b.fds {
        match sys::shm::adopt_fd(*raw) {
            Ok(fd) => fds.push(fd),
            Err(e) => fail(&e.to_string()),
        }
    }
    let parent = ProcessInfo::new(b.parent_name, b.parent_pid, false, b.parent_start);
    registry::install_child(b.name, b.daemon, b.identity, parent);
    // SAFETY: the offset was computed by `entry_offset` in the parent, and
    // the executable is the same file as the parent's (device and inode
    // compared above), so it names a trampoline in this image.
    let trampoline = unsafe { entry::trampoline_at(b.entry_offset) };
    let code = match catch_unwind(AssertUnwindSafe(|| trampoline(b.entry_hash, &b.args, fds))) {
        Ok(code) => code,
        Err(_) => EXIT_PANIC, // the panic hook has printed the message
    };
    // `exit` flushes stdout and runs no destructor of the caller's stack,
    // which in a test harness is libtest's.
    std::process::exit(code)
}
