//! Test support: sleepers on an exit word, and proof that a sleeper is
//! blocked in the kernel (so that a wake-up it reports came from a wake,
//! not from a value that differed on entry).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::ExitWord;
use crate::sys::futex::{self, WaitOutcome};

/// What a sleeper saw.
#[derive(Debug)]
pub(crate) struct Woke {
    pub outcome: WaitOutcome,
    /// The word right after the wait.
    pub word: u32,
    /// How long the wait lasted.
    pub after: Duration,
}

/// Announces a sleep on `word` and sleeps once, until woken or `deadline`.
///
/// # Panics
/// If the word already says dead (the caller expects a live child).
pub(crate) fn sleep_once(word: &ExitWord, deadline: Instant) -> Woke {
    let seen = word.prepare_sleep().expect("the child is alive");
    let start = Instant::now();
    let outcome = futex::wait(word.word(), seen, Some(deadline));
    Woke {
        outcome,
        word: word.word().load(Ordering::SeqCst),
        after: start.elapsed(),
    }
}

/// Whether thread `tid` of this process is blocked in system call `nr`
/// with `arg0` as its first argument (`/proc/self/task/<tid>/syscall`).
pub(crate) fn blocked_in(tid: u32, nr: libc::c_long, arg0: usize) -> bool {
    let Ok(s) = std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall")) else {
        return false;
    };
    let mut fields = s.split_whitespace();
    let call = fields.next().and_then(|f| f.parse::<libc::c_long>().ok());
    let first = fields
        .next()
        .and_then(|f| usize::from_str_radix(f.trim_start_matches("0x"), 16).ok());
    call == Some(nr) && first == Some(arg0)
}

/// Waits (until `deadline`, then panics) until thread `tid` sleeps in the
/// futex call on `word`.
pub(crate) fn wait_asleep_on(tid: u32, word: &ExitWord, deadline: Instant) {
    wait_blocked(
        tid,
        libc::SYS_futex,
        word.word().as_ptr() as usize,
        deadline,
    )
}

/// Waits (until `deadline`, then panics) until thread `tid` sleeps in
/// system call `nr` with first argument `arg0`.
pub(crate) fn wait_blocked(tid: u32, nr: libc::c_long, arg0: usize, deadline: Instant) {
    while !blocked_in(tid, nr, arg0) {
        assert!(
            Instant::now() < deadline,
            "watchdog: the sleeper never slept"
        );
        std::thread::yield_now();
    }
}
