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

/// The timeout argument of a futex call: null (no deadline) or `ts`, which
/// must outlive the call.
fn timespec_ptr(ts: &Option<libc::timespec>) -> *const libc::timespec {
    ts.as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec)
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
        let ts_ptr = timespec_ptr(&ts);
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

/// Most words one `futex_waitv` call takes (the kernel's `FUTEX_WAITV_MAX`).
pub(crate) const WAITV_MAX: usize = 128;

/// `struct futex_waitv` of `linux/futex.h`.
#[repr(C)]
struct FutexWaitv {
    val: u64,
    uaddr: u64,
    flags: u32,
    reserved: u32,
}

/// `FUTEX2_SIZE_U32`: a 32-bit word; no `FUTEX2_PRIVATE`: the words are
/// shared between processes.
const FUTEX2_SIZE_U32: u32 = 0x02;

/// How a wait on several words ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ManyOutcome {
    /// A word differed on entry, or was woken (its index when the kernel
    /// says which), or a spurious wake-up: re-check every word.
    Woken(Option<usize>),
    /// The deadline passed.
    TimedOut,
}

/// Blocks until one of `words` (at most [`WAITV_MAX`], each with the value
/// to sleep on) is woken or differs from its value, or `deadline`: Linux's
/// `futex_waitv` (5.16+), shared futexes, absolute `CLOCK_MONOTONIC`
/// deadline. Callers re-check their conditions after any outcome.
///
/// # Panics
/// If `words` is empty or longer than [`WAITV_MAX`] (callers split).
pub(crate) fn wait_many(words: &[(&AtomicU32, u32)], deadline: Option<Instant>) -> ManyOutcome {
    let addrs: Vec<(usize, u32)> = words
        .iter()
        .map(|(w, v)| (w.as_ptr() as usize, *v))
        .collect();
    wait_many_at(&addrs, deadline)
}

/// As [`wait_many`], with the words given by address: for a sleeper (the
/// async reactor) whose words may be unmapped by their owners while it
/// sleeps. The kernel validates every address (`EFAULT`, reported here as a
/// spurious wake-up); nothing is read through them in user space.
///
/// # Panics
/// As [`wait_many`].
pub(crate) fn wait_many_at(words: &[(usize, u32)], deadline: Option<Instant>) -> ManyOutcome {
    assert!(
        (1..=WAITV_MAX).contains(&words.len()),
        "futex_waitv takes 1..=128 words"
    );
    let waiters: Vec<FutexWaitv> = words
        .iter()
        .map(|&(addr, v)| FutexWaitv {
            val: u64::from(v),
            uaddr: addr as u64,
            flags: FUTEX2_SIZE_U32,
            reserved: 0,
        })
        .collect();
    loop {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return ManyOutcome::TimedOut;
        }
        let ts = deadline.map(deadline_timespec);
        let ts_ptr = timespec_ptr(&ts);
        // SAFETY:
        // - `waiters` holds `words.len()` initialised `futex_waitv` entries
        //   (reserved fields 0); the kernel reads the words at their
        //   addresses itself and fails with EFAULT for one that is not
        //   mapped: no Rust reference is made to them here;
        // - `ts_ptr` is null or points to `ts`, which outlives the call;
        // - flags 0 and CLOCK_MONOTONIC: an absolute monotonic deadline.
        let r = unsafe {
            libc::syscall(
                libc::SYS_futex_waitv,
                waiters.as_ptr(),
                waiters.len() as libc::c_uint,
                0 as libc::c_uint,
                ts_ptr,
                libc::CLOCK_MONOTONIC,
            )
        };
        if r >= 0 {
            return ManyOutcome::Woken(Some(r as usize));
        }
        match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::EINTR) | Some(libc::ERESTART) => continue,
            Some(libc::ETIMEDOUT) => return ManyOutcome::TimedOut,
            // EAGAIN: a word differed on entry. Anything else (ENOSYS on a
            // kernel before 5.16 is refused at the first use, see
            // `sync::many`) is treated as a spurious wake-up.
            _ => return ManyOutcome::Woken(None),
        }
    }
}

/// Whether this kernel has `futex_waitv` (5.16+).
pub(crate) fn has_waitv() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        // SAFETY: zero words and a null timeout: the kernel checks the count
        // (EINVAL) before touching any pointer; ENOSYS when the call is missing.
        let r = unsafe {
            libc::syscall(
                libc::SYS_futex_waitv,
                std::ptr::null::<FutexWaitv>(),
                0 as libc::c_uint,
                0 as libc::c_uint,
                std::ptr::null::<libc::timespec>(),
                libc::CLOCK_MONOTONIC,
            )
        };
        !(r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS))
    })
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
