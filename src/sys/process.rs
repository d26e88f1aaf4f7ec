//! Child processes: fork, pidfd, reaping, signals, parent-death signal, and
//! the descriptor tweaks a launched child needs.
//!
//! Functions marked *async-signal-safe* make no allocation and take no lock:
//! they may run between `fork` and `exec` (in a `pre_exec` hook).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Instant;

use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::error::{Error, Result};

/// How a reaped child ended, as Python's `exitcode`: the exit status, or
/// minus the number of the signal that killed it.
pub(crate) type ExitCode = i32;

/// The result of a non-blocking reap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reap {
    /// The child is still running.
    Running,
    /// The child ended and is now reaped (no zombie left).
    Exited(ExitCode),
    /// `pid` is not (or no longer) a child of this process (`ECHILD`).
    NotAChild,
}

/// Reaps child `pid` if it has ended, without blocking (`waitpid(WNOHANG)`).
///
/// # Errors
/// An OS error other than `ECHILD` (which is [`Reap::NotAChild`]).
pub(crate) fn try_reap(pid: u32) -> Result<Reap> {
    loop {
        match waitpid(Pid::from_raw(pid as i32), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(Reap::Exited(code)),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(Reap::Exited(-(sig as i32))),
            Ok(WaitStatus::StillAlive) => return Ok(Reap::Running),
            // Stopped/continued are only reported with WUNTRACED/WCONTINUED,
            // which we never pass; treat anything else as still running.
            Ok(_) => return Ok(Reap::Running),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::ECHILD) => return Ok(Reap::NotAChild),
            Err(e) => return Err(Error::os(format!("waitpid({pid})"), e)),
        }
    }
}

/// Opens a pidfd for `pid` (`pidfd_open`, Linux 5.3+); `None` where the
/// kernel lacks it (`ENOSYS`) or forbids it, so callers fall back to polling.
pub(crate) fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and a flags word and returns a new
    // descriptor or -1; no pointers are involved.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the syscall succeeded, so `fd` is a fresh descriptor (opened
    // with O_CLOEXEC by the kernel) owned by nobody else.
    Some(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Waits until `pidfd` becomes readable (its process ended) or `deadline`
/// passes; `true` when the process ended. Retries on `EINTR`.
///
/// # Errors
/// The OS error from `poll`.
pub(crate) fn wait_pidfd(pidfd: BorrowedFd<'_>, deadline: Option<Instant>) -> Result<bool> {
    loop {
        let timeout_ms: libc::c_int = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                // Round up so that a wake-up never comes before the deadline.
                let ms = left.as_nanos().div_ceil(1_000_000);
                ms.min(libc::c_int::MAX as u128) as libc::c_int
            }
        };
        let mut pfd = libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY:
        // - `pfd` is a valid, writable pollfd array of length 1 on our stack;
        // - the descriptor is borrowed, so it stays open during the call.
        let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(Error::os("poll on a pidfd", e));
        }
        if n > 0 {
            return Ok(true);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(false);
        }
    }
}

/// Sends `sig` to process `pid`.
///
/// The caller must know that `pid` still names its child: a child that was
/// not yet reaped keeps its pid (as a zombie), so signalling under the lock
/// that guards reaping cannot hit a recycled pid.
///
/// # Errors
/// The OS error from `kill` (`ESRCH` cannot happen for an unreaped child).
pub(crate) fn send_signal(pid: u32, sig: Signal) -> Result<()> {
    nix::sys::signal::kill(Pid::from_raw(pid as i32), sig)
        .map_err(|e| Error::os(format!("sending {sig} to process {pid}"), e))
}

/// Clears `FD_CLOEXEC` on `fd` so that it survives `exec`.
/// Async-signal-safe.
///
/// # Errors
/// The raw OS error from `fcntl`.
pub(crate) fn clear_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFD/F_SETFD take an int descriptor and an int flag word; a
    // bad descriptor yields EBADF, never memory unsafety.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Asks the kernel to send SIGKILL to this process when the *thread* that
/// forked it exits, then checks that this parent is still `parent`
/// (it may have died before the request): if not, kills itself with SIGKILL
/// at once, as the parent's death would have. Async-signal-safe.
///
/// # Errors
/// The raw OS error from `prctl`.
pub(crate) fn die_with_parent(parent: u32) -> io::Result<()> {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number; the trailing arguments
    // are unused and passed as 0.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: getppid cannot fail and takes no arguments.
    if unsafe { libc::getppid() } as u32 != parent {
        // The parent died between fork and prctl: die now, by the very
        // signal its death would have sent.
        // SAFETY: kill and getpid take integers; signalling ourselves with
        // SIGKILL ends the process without running any user-space code.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        // SAFETY: _exit has no preconditions (reached only if kill failed).
        unsafe { libc::_exit(1) };
    }
    Ok(())
}

/// Forks the process.
///
/// # Safety
/// - In the child, only async-signal-safe work is sound if the parent had
///   other threads (locks they held stay locked forever in the child).
/// - The child must end with [`exit_now`], never by returning into code that
///   would run the parent's destructors twice.
pub(crate) unsafe fn fork() -> Result<Option<u32>> {
    // SAFETY: the caller upholds the child-side rules above.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { child }) => Ok(Some(child.as_raw() as u32)),
        Ok(nix::unistd::ForkResult::Child) => Ok(None),
        Err(e) => Err(Error::os("fork", e)),
    }
}

/// Ends the process at once with `code`: no destructors, no `atexit`
/// handlers, no stdio flush (flush first).
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and has no preconditions.
    unsafe { libc::_exit(code) }
}

/// 64 random bits from the kernel (`getrandom`).
///
/// # Errors
/// The OS error from `getrandom`.
pub(crate) fn random_u64() -> Result<u64> {
    let mut buf = [0u8; 8];
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: the pointer and length describe the unfilled tail of `buf`,
        // which is valid for writes.
        let n = unsafe {
            libc::getrandom(
                buf[done..].as_mut_ptr() as *mut libc::c_void,
                buf.len() - done,
                0,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(Error::os("getrandom", e));
        }
        done += n as usize;
    }
    Ok(u64::from_ne_bytes(buf))
}

/// Duplicates `src` onto descriptor `dst` (closing what `dst` was).
///
/// # Errors
/// The OS error from `dup2`.
pub(crate) fn dup_onto(src: BorrowedFd<'_>, dst: RawFd) -> Result<()> {
    // SAFETY: dup2 takes two int descriptors; a bad one yields EBADF.
    if unsafe { libc::dup2(src.as_raw_fd(), dst) } < 0 {
        return Err(Error::os(
            format!("dup2 onto descriptor {dst}"),
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn reap_not_a_child() {
        // Process 1 is never our child.
        assert_eq!(try_reap(1).unwrap(), Reap::NotAChild);
    }

    #[test]
    fn random_differs() {
        assert_ne!(random_u64().unwrap(), random_u64().unwrap());
    }

    #[test]
    fn pidfd_of_self_times_out() {
        let Some(fd) = pidfd_open(std::process::id()) else {
            return; // kernel without pidfd: nothing to test
        };
        let deadline = Instant::now() + Duration::from_millis(20);
        use std::os::fd::AsFd;
        assert!(!wait_pidfd(fd.as_fd(), Some(deadline)).unwrap());
        assert!(Instant::now() >= deadline);
    }
}
