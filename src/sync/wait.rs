//! The one way shmproc waits: a [`WaitWord`] (a futex word and a count of
//! its sleepers) and one spin-then-sleep policy ([`Spin`], [`slice`]).
//!
//! Every place that sleeps uses these: the semaphore, event, condition and
//! barrier algorithms (the word is their state), the slot ring's getters and
//! putters, the byte ring's reader and writer, the pool's doorbell (the word
//! is a sequence bumped by wakers). Locks keep their own state machine (the
//! waiter bit lives in the lock word, `robust.rs`) but spin with [`Spin`] and
//! sleep in [`slice`]s.
//!
//! # The wake-up protocol (SYNC POINT: dekker)
//!
//! | side   | steps |
//! |--------|-------|
//! | waiter | read `seen` (the word); register (`waiters += 1`, SeqCst RMW); SeqCst fence; re-check its condition; futex-wait while `word == seen`; unregister |
//! | waker  | make its change with a SeqCst store or RMW, or follow it with a SeqCst fence; load `waiters` (SeqCst); if non-zero, wake (bumping the word first when the word is a sequence) |
//!
//! All these SeqCst operations are in one total order, so either the waker's
//! load sees the registration and wakes, or the waiter's re-check (after its
//! fence) sees the change and does not sleep: no lost wake-up, and no
//! `FUTEX_WAKE` syscall when nobody sleeps. A wake that comes between the
//! re-check and the futex call changes the word first, so the kernel sees
//! `word != seen` and the wait returns at once.
//!
//! Loom models SeqCst RMWs and loads as AcqRel/Acquire (it supports SeqCst
//! fences), so under loom the waker side adds the fence the C++ model does
//! not need.
//!
//! # The policy (measured in `docs/decisions.md`, "One wait word")
//!
//! A cache-line hand-off between two processes costs ~70 ns here, a futex
//! wake-up ~30 µs one way. So a waiter first spins for [`SPIN`] (catching a
//! peer that is awake), yielding the core every [`YIELD_EVERY`] steps so that
//! oversubscribed cores (more processes than cores) let the peer run; then it
//! sleeps. Sleeps last at most a [`slice`] (10 ms doubling to 50 ms), after
//! which the waiter asks whether the party it waits for is alive: a dead
//! party never wakes anyone.

use std::time::{Duration, Instant};

use crate::sync::atomic::{fence, AtomicU32, Ordering};
use crate::sync::park::{Park, Wake};

/// How long a waiter spins before it sleeps.
pub(crate) const SPIN: Duration = Duration::from_micros(60);
/// Every this many spin steps, the spinner yields the core once.
const YIELD_EVERY: u32 = 8;
/// `spin_loop` hints per spin step (the steps in between read the clock).
const PAUSES: u32 = 16;
/// The polling step ([`Spin::polling`]), for a waiter of one answer to its
/// own request (a pool's task and result waits): one hint per step, the
/// clock read every [`POLL_CLOCK_EVERY`] steps, and the core yielded once
/// [`POLL_YIELD_AFTER`] has passed since the last yield (a step's cost
/// varies with what the caller checks: a worker's check is a load, a pool
/// caller's a pump of every result ring).
const POLL_PAUSES: u32 = 1;
const POLL_CLOCK_EVERY: u32 = 8;
const POLL_YIELD_AFTER: Duration = Duration::from_micros(2);
/// How long a stall (the same blocking state) lasts before the waiter asks
/// whether the party holding it is alive.
pub(crate) const LIVENESS_AFTER: Duration = Duration::from_millis(20);
/// The first sleep slice: longer than a scheduler tick (4 ms at HZ=250,
/// 10 ms at HZ=100), so that its timer rarely has to reprogram the CPU's
/// timer (a deadline before the next tick cost ~5 us per sleep here:
/// `docs/decisions.md`, "Sleep slices start at 10 ms").
pub(crate) const SLICE_MIN: Duration = Duration::from_millis(10);
/// The longest sleep slice.
pub(crate) const SLICE_MAX: Duration = Duration::from_millis(50);

/// How long the `n`-th sleep (from 0) of one wait may last before the
/// waiter re-checks the liveness of what it waits for: [`SLICE_MIN`]
/// doubling to [`SLICE_MAX`]. `None` under loom: there is no time, and the models wake
/// a sleeper whose party dies (see the loom futex tables).
#[inline]
pub(crate) fn slice(n: u32) -> Option<Duration> {
    if cfg!(loom) {
        return None;
    }
    Some(SLICE_MIN.saturating_mul(1 << n.min(5)).min(SLICE_MAX))
}

/// The end of a sleep that starts `now` with slice `n`, never past `deadline`.
#[inline]
pub(crate) fn slice_end(n: u32, now: Instant, deadline: Option<Instant>) -> Option<Instant> {
    match (slice(n).map(|s| now + s), deadline) {
        (Some(s), Some(d)) => Some(s.min(d)),
        (s, d) => s.or(d),
    }
}

/// The spin phase of one wait.
///
/// ```text
/// let mut spin = Spin::new();
/// while !ready() {
///     if !spin.step() { /* sleep on a WaitWord */ }
/// }
/// ```
#[derive(Debug)]
pub(crate) struct Spin {
    started: Instant,
    steps: u32,
    budget: Duration,
    /// `spin_loop` hints per step.
    pauses: u32,
    /// The clock is read every this many steps (by [`step_until`](Self::step_until)).
    clock_every: u32,
    yields: Yields,
}

/// When a spinner gives its core away.
#[derive(Debug)]
enum Yields {
    /// Every this many steps.
    Every(u32),
    /// At a clock read, once this long has passed since `last`.
    After { period: Duration, last: Instant },
}

impl Spin {
    /// A spin phase starting now.
    #[inline]
    pub(crate) fn new() -> Spin {
        Spin::since(Instant::now())
    }

    /// A spin phase that started at `started`.
    #[inline]
    pub(crate) fn since(started: Instant) -> Spin {
        Spin {
            started,
            steps: 0,
            budget: SPIN,
            pauses: PAUSES,
            clock_every: 1,
            yields: Yields::Every(YIELD_EVERY),
        }
    }

    /// A spin phase starting now that lasts `budget` instead of [`SPIN`]:
    /// for peers that cannot wake a sleeper and are only seen by polling
    /// (MPI ranks).
    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    #[inline]
    pub(crate) fn lasting(budget: Duration) -> Spin {
        Spin {
            budget,
            ..Spin::new()
        }
    }

    /// A spin phase starting now with the polling step ([`POLL_PAUSES`],
    /// [`POLL_CLOCK_EVERY`], [`POLL_YIELD_AFTER`]), for a round trip's
    /// waiter, whose answer comes once and ends the wait (the slot ring's
    /// spinners keep the plain step: fewer reads of a line the peer writes
    /// let a stream of items flow). Step it with [`step_until`](Self::step_until).
    #[inline]
    pub(crate) fn polling() -> Spin {
        let started = Instant::now();
        Spin {
            pauses: POLL_PAUSES,
            clock_every: POLL_CLOCK_EVERY,
            yields: Yields::After {
                period: POLL_YIELD_AFTER,
                last: started,
            },
            ..Spin::since(started)
        }
    }

    /// One step of spinning (reads the clock); false once the phase is over.
    #[inline]
    pub(crate) fn step(&mut self) -> bool {
        self.step_at(Instant::now())
    }

    /// One step, reading the clock only every `clock_every` steps; false
    /// once the phase is over or `deadline` has passed (the caller tells
    /// which if it needs to).
    #[inline]
    pub(crate) fn step_until(&mut self, deadline: Option<Instant>) -> bool {
        if self.steps % self.clock_every != 0 && !cfg!(loom) {
            self.steps = self.steps.wrapping_add(1);
            self.pause();
            return true;
        }
        let now = Instant::now();
        deadline.is_none_or(|d| now < d) && self.step_at(now)
    }

    /// One step at `now` (for callers that read the clock anyway); false
    /// once the phase is over. Under loom always false: spinning only
    /// multiplies the interleavings.
    #[inline]
    pub(crate) fn step_at(&mut self, now: Instant) -> bool {
        if cfg!(loom) || now.duration_since(self.started) >= self.budget {
            return false;
        }
        self.steps = self.steps.wrapping_add(1);
        let give_way = match &mut self.yields {
            Yields::Every(n) => self.steps % *n == 0,
            Yields::After { period, last } => {
                let due = now.duration_since(*last) >= *period;
                if due {
                    *last = now;
                }
                due
            }
        };
        if give_way {
            // Let a runnable peer on this core go on (oversubscribed
            // machines); returns at once when nobody else wants the core.
            std::thread::yield_now();
        } else {
            self.pause();
        }
        true
    }

    #[inline]
    fn pause(&self) {
        for _ in 0..self.pauses {
            std::hint::spin_loop();
        }
    }
}

/// A futex word and the count of parties asleep (or about to sleep) on it.
/// 8 bytes, `#[repr(C)]`, in shared memory; every value is untrusted (a
/// scribbled count costs at most a needless wake or a slice of sleep).
///
/// The word is either the state itself (a semaphore's value, an event's
/// flag: wakers change it and call [`wake`](Self::wake)) or a sequence that
/// only says "something changed" (rings, bells: wakers call
/// [`notify`](Self::notify), which bumps it).
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct WaitWord {
    word: AtomicU32,
    waiters: AtomicU32,
}

/// A registration as a sleeper on a [`WaitWord`]; dropping it unregisters.
pub(crate) struct Registered<'a>(&'a WaitWord);

impl Registered<'_> {
    /// Sleeps while the word is `seen` (read before registering), until
    /// woken or `deadline`.
    #[inline]
    pub(crate) fn wait(&self, park: &impl Park, seen: u32, deadline: Option<Instant>) -> Wake {
        park.wait(&self.0.word, seen, deadline)
    }
}

impl Drop for Registered<'_> {
    #[inline]
    fn drop(&mut self) {
        // Relaxed: the count only decides whether wakers make a syscall; a
        // stale value costs one needless wake.
        self.0.waiters.fetch_sub(1, Ordering::Relaxed);
    }
}

impl WaitWord {
    /// The futex word (for algorithms whose state it is).
    #[inline]
    pub(crate) fn word(&self) -> &AtomicU32 {
        &self.word
    }

    /// Waiter: the value to sleep on, read before registering, so a change
    /// made after the registration makes the futex wait return at once.
    #[inline]
    pub(crate) fn seen(&self) -> u32 {
        // SeqCst: part of the dekker protocol (module docs).
        self.word.load(Ordering::SeqCst)
    }

    /// Waiter: registers as a sleeper. Re-check the condition after this,
    /// then [`Registered::wait`] if it still does not hold.
    #[inline]
    pub(crate) fn register(&self) -> Registered<'_> {
        // SYNC POINT: dekker. SeqCst RMW then SeqCst fence: the registration
        // precedes the caller's re-check in the total order.
        self.waiters.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        Registered(self)
    }

    /// Undoes one [`register`](Self::register) whose guard was forgotten
    /// (an armed wait handed to the async reactor).
    pub(crate) fn unregister(&self) {
        // Relaxed: as in `Registered::drop`.
        self.waiters.fetch_sub(1, Ordering::Relaxed);
    }

    /// Waiter: sleeps once (until woken, a change of the word from `seen`,
    /// read with [`seen`](Self::seen) before the caller last checked its
    /// condition, or `deadline`) unless `ready()`, re-checked after
    /// registering, holds.
    #[inline]
    pub(crate) fn sleep(
        &self,
        park: &impl Park,
        seen: u32,
        deadline: Option<Instant>,
        ready: impl FnOnce() -> bool,
    ) -> Wake {
        let reg = self.register();
        if ready() {
            return Wake::Woken;
        }
        reg.wait(park, seen, deadline)
    }

    /// Waiter, for state words: sleeps once while the word is `seen`.
    #[inline]
    pub(crate) fn sleep_on(&self, park: &impl Park, seen: u32, deadline: Option<Instant>) -> Wake {
        self.register().wait(park, seen, deadline)
    }

    /// Sleeps while the word is `seen` without registering: wakers that
    /// wake only registered sleepers pass this one by; only a
    /// [`bump_wake`](Self::bump_wake) (or `deadline`) ends it early. For a
    /// party that wants to be woken by some wakers and not others (the
    /// pool's supervisor while callers pump for themselves).
    #[inline]
    pub(crate) fn doze(&self, park: &impl Park, seen: u32, deadline: Option<Instant>) -> Wake {
        park.wait(&self.word, seen, deadline)
    }

    /// Waker: whether anyone sleeps or is about to. The caller's change was
    /// a SeqCst store or RMW, or is followed by a SeqCst fence.
    #[inline]
    pub(crate) fn has_waiters(&self) -> bool {
        #[cfg(loom)]
        fence(Ordering::SeqCst);
        // SYNC POINT: dekker (the load half; module docs).
        self.waiters.load(Ordering::SeqCst) != 0
    }

    /// Waker, for state words: after changing the word (SeqCst), wakes up
    /// to `n` sleepers if any.
    #[inline]
    pub(crate) fn wake(&self, park: &impl Park, n: u32) {
        if self.has_waiters() {
            park.wake(&self.word, n);
        }
    }

    /// Waker, for sequences: after changing what the word guards (SeqCst,
    /// or fenced), bumps the word and wakes up to `n` sleepers, if any sleep.
    #[inline]
    pub(crate) fn notify(&self, park: &impl Park, n: u32) {
        if self.has_waiters() {
            self.bump_wake(park, n);
        }
    }

    /// Bumps the word and wakes up to `n` sleepers, whether or not any
    /// registered (closing, or waking a party that sleeps unregistered).
    #[cold]
    pub(crate) fn bump_wake(&self, park: &impl Park, n: u32) {
        // SeqCst: ordered after the registration the caller observed, so
        // the sleeper's futex sees a new value.
        self.word.fetch_add(1, Ordering::SeqCst);
        park.wake(&self.word, n);
    }

    /// Waiters registered now (a snapshot, for `shmproc inspect`).
    pub(crate) fn waiters(&self) -> u32 {
        // Relaxed: a display snapshot.
        self.waiters.load(Ordering::Relaxed)
    }

    /// Resets both words (only when nobody can use them: the segment is
    /// being recycled for a new peer).
    pub(crate) fn reset(&self) {
        // Relaxed: published by whatever hands the segment to the next user.
        self.word.store(0, Ordering::Relaxed);
        self.waiters.store(0, Ordering::Relaxed);
    }
}

/// Spins per the policy ([`Spin::polling`] steps: its callers, the byte
/// ring's reader and writer, wait for one answer or one batch of room) until
/// `ready()`, then sleeps on `ww` in slices until
/// `ready()` or `deadline`. Returns whether `ready()` held. For waits whose
/// waker cannot die unnoticed (or whose caller checks liveness itself
/// between calls).
pub(crate) fn wait_until(
    ww: &WaitWord,
    park: &impl Park,
    deadline: Option<Instant>,
    ready: impl Fn() -> bool,
) -> bool {
    let mut spin = Spin::polling();
    loop {
        if ready() {
            return true;
        }
        if !spin.step_until(deadline) {
            break;
        }
    }
    if deadline.is_some_and(|d| Instant::now() >= d) {
        return ready();
    }
    wait_until_slow(ww, park, deadline, ready)
}

#[cold]
fn wait_until_slow(
    ww: &WaitWord,
    park: &impl Park,
    deadline: Option<Instant>,
    ready: impl Fn() -> bool,
) -> bool {
    let mut n = 0;
    loop {
        let end = slice_end(n, Instant::now(), deadline);
        if ww.sleep(park, ww.seen(), end, &ready) == Wake::TimedOut {
            if ready() {
                return true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
            n = n.saturating_add(1);
        }
        if ready() {
            return true;
        }
    }
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<WaitWord>() == 8);

// SAFETY: two std u32 atomics (outside loom): every bit pattern is valid,
// there are no pointers, and all shared mutation is atomic.
#[cfg(not(loom))]
unsafe impl crate::segment::ShmSafe for WaitWord {}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::park::Futex;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    #[test]
    fn slices_grow_to_50ms() {
        let ms: Vec<_> = (0..8).map(|n| slice(n).unwrap().as_millis()).collect();
        assert_eq!(ms, [10, 20, 40, 50, 50, 50, 50, 50]);
    }

    #[test]
    fn spin_ends() {
        let mut s = Spin::since(Instant::now() - SPIN);
        assert!(!s.step());
        let mut s = Spin::new();
        assert!(s.step());
    }

    #[test]
    fn sleep_returns_at_once_when_ready_after_registering() {
        let ww = WaitWord::default();
        assert_eq!(ww.sleep(&Futex, ww.seen(), None, || true), Wake::Woken);
        assert_eq!(ww.waiters(), 0, "unregistered on return");
    }

    #[test]
    fn notify_bumps_only_with_waiters() {
        let ww = WaitWord::default();
        ww.notify(&Futex, 1);
        assert_eq!(ww.seen(), 0, "nobody waits: no bump, no syscall");
        let reg = ww.register();
        ww.notify(&Futex, 1);
        assert_eq!(ww.seen(), 1);
        drop(reg);
    }

    #[test]
    fn wait_until_wakes_on_notify_and_times_out() {
        let ww = Arc::new(WaitWord::default());
        let flag = Arc::new(AtomicBool::new(false));
        let (w2, f2) = (ww.clone(), flag.clone());
        let t = std::thread::spawn(move || {
            wait_until(&w2, &Futex, None, || f2.load(Ordering::Acquire))
        });
        flag.store(true, Ordering::SeqCst);
        ww.notify(&Futex, u32::MAX);
        assert!(t.join().unwrap());
        let soon = Instant::now() + Duration::from_millis(3);
        assert!(!wait_until(&ww, &Futex, Some(soon), || false));
        assert!(Instant::now() >= soon);
    }
}
