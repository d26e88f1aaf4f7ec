//! Shared futex wait/wake (the model is std's `sys/pal/unix/futex.rs`).
//!
//! The futexes live in shared memory that several processes map, so they are
//! never `FUTEX_PRIVATE_FLAG`: private futexes are keyed by (mm, address) and
//! would never see a waker in another process.
//!
//! Deadlines are absolute `CLOCK_MONOTONIC` instants passed to
//! `FUTEX_WAIT_BITSET`, so spurious wake-ups and `EINTR` do not stretch them.

use std::sync::atomic::AtomicU32;
use std::time::Instant;

/// What a futex wait ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitOutcome {
    /// Woken, the value differed on entry, or a spurious wake-up: re-check the word.
    Woken,
    /// The deadline passed.
    TimedOut,
}

/// Converts an `Instant` deadline to an absolute `CLOCK_MONOTONIC` timespec.
///
/// `Instant` is `CLOCK_MONOTONIC` on Linux, so the difference to now added to the
/// current monotonic clock is the same instant, within the clock read's jitter.
fn deadline_timespec(deadline: Instant) -> libc::timespec {
    let now = Instant::now();
    let remaining = deadline.saturating_duration_since(now);
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let secs = remaining.as_secs().min(i64::MAX as u64 / 2) as i64;
    let mut sec = ts.tv_sec.saturating_add(secs);
    let mut nsec = ts.tv_nsec + remaining.subsec_nanos() as libc::c_long;
    // Normalise: tv_nsec must stay in 0..1e9 or the kernel answers EINVAL.
    if nsec >= 1_000_000_000 {
        nsec -= 1_000_000_000;
        sec = sec.saturating_add(1);
    }
    libc::timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    }
}

/// Blocks while `*word == expected`, until woken or until `deadline`.
///
/// Returns at once (as `Woken`) if the word already differs. Callers loop and
/// re-check their condition: a `Woken` result promises nothing about the word.
pub(crate) fn wait(word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> WaitOutcome {
    loop {
        if let Some(d) = deadline {
            if Instant::now() >= d {
                return WaitOutcome::TimedOut;
            }
        }
        let ts = deadline.map(deadline_timespec);
        let ts_ptr = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY:
        // - `word` is a live reference to an aligned u32 for the whole call;
        // - `ts_ptr` is null or points to `ts`, which outlives the call;
        // - FUTEX_WAIT_BITSET without FUTEX_PRIVATE_FLAG is the shared variant;
        //   with FUTEX_BITSET_MATCH_ANY it behaves as FUTEX_WAIT with an absolute deadline.
        let r = unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAIT_BITSET,
                expected,
                ts_ptr,
                std::ptr::null::<u32>(),
                libc::FUTEX_BITSET_MATCH_ANY,
            )
        };
        if r == 0 {
            return WaitOutcome::Woken;
        }
        match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::ETIMEDOUT) => return WaitOutcome::TimedOut,
            // EAGAIN: the value differed on entry. Anything else (EFAULT cannot
            // happen for a live reference) is treated as a spurious wake-up.
            _ => return WaitOutcome::Woken,
        }
    }
}

/// Wakes up to `n` waiters blocked on `word`; returns how many were woken.
pub(crate) fn wake(word: &AtomicU32, n: u32) -> usize {
    let n = n.min(i32::MAX as u32) as i32;
    // SAFETY: `word` is a live reference to an aligned u32; FUTEX_WAKE (shared) reads
    // no user memory besides the futex key, and takes no other pointer arguments.
    let r = unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, n) };
    r.max(0) as usize
}

/// Wakes every waiter blocked on `word`.
pub(crate) fn wake_all(word: &AtomicU32) -> usize {
    wake(word, i32::MAX as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn value_mismatch_returns_at_once() {
        let w = AtomicU32::new(1);
        assert_eq!(wait(&w, 0, None), WaitOutcome::Woken);
    }

    #[test]
    fn deadline_times_out() {
        let w = AtomicU32::new(0);
        let start = Instant::now();
        let d = start + Duration::from_millis(30);
        assert_eq!(wait(&w, 0, Some(d)), WaitOutcome::TimedOut);
        assert!(Instant::now() >= d);
    }

    #[test]
    fn past_deadline_times_out_at_once() {
        let w = AtomicU32::new(0);
        let d = Instant::now() - Duration::from_millis(1);
        assert_eq!(wait(&w, 0, Some(d)), WaitOutcome::TimedOut);
    }

    #[test]
    fn wake_releases_waiter() {
        let w = Arc::new(AtomicU32::new(0));
        let w2 = w.clone();
        let t = std::thread::spawn(move || {
            while w2.load(Ordering::Acquire) == 0 {
                wait(&w2, 0, Some(Instant::now() + Duration::from_secs(10)));
            }
        });
        std::thread::sleep(Duration::from_millis(20));
        w.store(1, Ordering::Release);
        wake_all(&w);
        t.join().unwrap();
    }
}
