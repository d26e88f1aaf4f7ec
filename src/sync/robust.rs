//! The robust mutex state machine (no syscalls): see `docs/protocols/lock.md`.
//!
//! [`RobustState`] is 16 bytes that live in shared memory. It blocks only through
//! [`Park`] and learns whether an owner is dead only through [`Liveness`], so the
//! same code runs on real futexes between processes and on loom's model.
//!
//! State of `word` (bits): owner thread id in bits 0..30, [`WAITERS`] = bit 30.
//!
//! | `word`          | meaning                                  |
//! |-----------------|------------------------------------------|
//! | `0`             | free                                     |
//! | `T`             | held by thread `T`, nobody sleeps        |
//! | `T \| WAITERS`  | held by `T`, someone may sleep on `word` |

use std::time::Instant;

use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::sync::liveness::Liveness;
use crate::sync::park::{Park, Wake};
use crate::sync::wait::{self, Spin};
use crate::sys::task::{Holder, TaskId};

/// Set while a waiter may be sleeping on the word.
pub(crate) const WAITERS: u32 = 1 << 30;

/// Whether `word` is free.
#[inline]
pub(crate) fn is_free(word: u32) -> bool {
    owner_of(word) == 0
}

/// The owner bits of `word` (everything but [`WAITERS`]; bit 31 is never set
/// by us, so a word with it names a thread that cannot exist).
#[inline]
pub(crate) fn owner_of(word: u32) -> u32 {
    word & !WAITERS
}

/// Whether a waiter may be sleeping on `word`.
#[inline]
pub(crate) fn has_waiters(word: u32) -> bool {
    word & WAITERS != 0
}

/// The holder an owner word names: exact once the owner published its
/// start time (`start`), else only its id.
fn recorded(owner: u32, start: Option<u64>) -> Holder {
    match start {
        Some(start) => Holder::exact(TaskId { tid: owner, start }),
        None => Holder::unrecorded(owner),
    }
}

/// How a lock was acquired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acquired {
    /// Taken from a free state or a live owner's release.
    Clean,
    /// Taken over from an owner that died holding it: the data it guards may be
    /// half-written.
    OwnerDied,
}

/// Why an acquire failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AcquireError {
    /// The deadline passed (or, for `try_lock`, the lock is held by a live owner).
    Timeout,
    /// The calling thread already holds this lock.
    WouldDeadlock,
}

/// Release by a thread that does not own the lock (the word names someone else).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NotOwner {
    /// The owner bits found in the word.
    pub found: u32,
}

/// The shared state of one robust lock. See the module docs for `word`.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct RobustState {
    word: AtomicU32,
    /// Equals the tid in `word` once the owner has stored `owner_start`; 0 otherwise.
    owner_tid: AtomicU32,
    /// The owner's start time (pid-reuse check).
    owner_start: AtomicU64,
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<RobustState>() == 16);

// SAFETY: three fixed-width std atomics (outside loom), every bit pattern valid,
// no pointers; all shared mutation is atomic.
#[cfg(not(loom))]
unsafe impl crate::segment::ShmSafe for RobustState {}

impl RobustState {
    /// The owner bits of the word now (0 = free); a snapshot, for diagnostics.
    pub(crate) fn owner(&self) -> u32 {
        // Relaxed: a snapshot that orders nothing.
        owner_of(self.word.load(Ordering::Relaxed))
    }

    /// Who holds the lock as far as its words recorded it, and whether
    /// waiters may sleep; `None` when free. A snapshot for diagnostics
    /// (`shmproc inspect`).
    pub(crate) fn holder(&self) -> Option<(Holder, bool)> {
        // Relaxed: a snapshot that orders nothing; the echo check below only
        // decides whether the start time shown belongs to this owner.
        let w = self.word.load(Ordering::Relaxed);
        let owner = owner_of(w);
        if owner == 0 {
            return None;
        }
        let start = (self.owner_tid.load(Ordering::Relaxed) == owner)
            .then(|| self.owner_start.load(Ordering::Relaxed));
        Some((recorded(owner, start), has_waiters(w)))
    }

    /// Whether the caller `me` holds the lock (tid and published start time match).
    pub(crate) fn is_held_by(&self, me: TaskId) -> bool {
        // Relaxed: the only writer of a word naming `me` is `me` itself (or a
        // scribbler, against which no ordering helps).
        owner_of(self.word.load(Ordering::Relaxed)) == me.tid
            && self.owner_tid.load(Ordering::Relaxed) == me.tid
            && self.owner_start.load(Ordering::Relaxed) == me.start
    }

    /// The uncontended acquire alone: takes a free lock for `me` and says
    /// whether it did (callers then go to [`lock`](Self::lock), which retries
    /// it first). Lets wrappers keep their slow-path bookkeeping out of line.
    #[inline]
    pub(crate) fn lock_fast(&self, me: TaskId) -> bool {
        // SYNC POINT: lock-handoff (Acquire pairs with the Release of `unlock`).
        if self
            .word
            .compare_exchange(0, me.tid, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            self.publish(me);
            return true;
        }
        false
    }

    /// Acquires the lock for `me`, blocking until `deadline` (`None`: forever).
    #[inline]
    pub(crate) fn lock<P: Park, L: Liveness>(
        &self,
        me: TaskId,
        park: &P,
        live: &L,
        deadline: Option<Instant>,
    ) -> Result<Acquired, AcquireError> {
        debug_assert!(me.tid != 0 && me.tid < WAITERS, "thread ids are below 2^30");
        if self.lock_fast(me) {
            return Ok(Acquired::Clean);
        }
        self.lock_slow(me, park, live, deadline)
    }

    /// Takes the lock if it is free, or if its owner is dead (then `OwnerDied`).
    /// Never sleeps; a held lock gives `Timeout`.
    pub(crate) fn try_lock<L: Liveness>(
        &self,
        me: TaskId,
        live: &L,
    ) -> Result<Acquired, AcquireError> {
        if self.lock_fast(me) {
            return Ok(Acquired::Clean);
        }
        self.try_lock_slow(me, live)
    }

    #[cold]
    fn try_lock_slow<L: Liveness>(&self, me: TaskId, live: &L) -> Result<Acquired, AcquireError> {
        // Relaxed: the CAS below re-validates and carries the Acquire.
        let w = self.word.load(Ordering::Relaxed);
        if is_free(w) {
            // A corrupt free word with stray bits, or a release in between.
            return match self.word.compare_exchange(
                w,
                me.tid | (w & WAITERS),
                Ordering::Acquire, // SYNC POINT: lock-handoff.
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.publish(me);
                    Ok(Acquired::Clean)
                }
                Err(_) => Err(AcquireError::Timeout),
            };
        }
        if self.take_over(w, me, live) {
            return Ok(Acquired::OwnerDied);
        }
        Err(AcquireError::Timeout)
    }

    #[cold]
    fn lock_slow<P: Park, L: Liveness>(
        &self,
        me: TaskId,
        park: &P,
        live: &L,
        deadline: Option<Instant>,
    ) -> Result<Acquired, AcquireError> {
        let mut spin = Spin::new();
        let mut checks = 0;
        // Once we have slept we take the lock with WAITERS set: others may sleep.
        let mut slept = false;
        loop {
            // Relaxed: every decision below is re-validated by a CAS.
            let w = self.word.load(Ordering::Relaxed);
            if is_free(w) {
                let new = me.tid | if slept { WAITERS } else { 0 };
                // SYNC POINT: lock-handoff.
                if self
                    .word
                    .compare_exchange_weak(w, new, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    self.publish(me);
                    return Ok(Acquired::Clean);
                }
                continue;
            }
            if !has_waiters(w) && spin.step() {
                continue;
            }
            if owner_of(w) == me.tid {
                if self.is_held_by(me) {
                    return Err(AcquireError::WouldDeadlock);
                }
                // Our tid with another start: a dead thread whose tid we reuse.
                if self.take_over(w, me, live) {
                    return Ok(Acquired::OwnerDied);
                }
                continue;
            }
            // Relaxed: setting WAITERS publishes nothing; the futex re-checks the
            // word atomically, so a release between this CAS and the sleep is seen.
            if !has_waiters(w)
                && self
                    .word
                    .compare_exchange(w, w | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            let w = w | WAITERS;
            let interval = wait::slice(checks);
            let slice_end = interval.map(|d| Instant::now() + d);
            let until = match (slice_end, deadline) {
                (Some(s), Some(d)) => Some(s.min(d)),
                (s, d) => s.or(d),
            };
            let woke = park.wait(&self.word, w, until);
            slept = true;
            if woke == Wake::TimedOut && deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(AcquireError::Timeout);
            }
            if woke == Wake::TimedOut || interval.is_none() {
                checks = checks.saturating_add(1);
                if self.take_over(w, me, live) {
                    return Ok(Acquired::OwnerDied);
                }
            }
        }
    }

    /// Takes the lock over from the owner seen in `seen` if that owner is dead.
    /// Returns whether we now hold it.
    fn take_over<L: Liveness>(&self, seen: u32, me: TaskId, live: &L) -> bool {
        // SYNC POINT: owner-published (Acquire pairs with `publish`'s Release; the
        // word read first sees the owner's CAS, which follows the previous
        // owner's unpublish in the word's release sequence).
        let w = self.word.load(Ordering::Acquire);
        let owner = owner_of(w);
        if owner == 0 || owner != owner_of(seen) {
            // Free (the caller retries) or changed hands: nothing to take over.
            return false;
        }
        // SYNC POINT: owner-published.
        let echo = self.owner_tid.load(Ordering::Acquire);
        // Relaxed: ordered after the Acquire of `owner_tid` above.
        let start = (echo == owner).then(|| self.owner_start.load(Ordering::Relaxed));
        if owner == me.tid {
            // Our tid with another start time: a dead thread whose tid we reuse.
            if start == Some(me.start) {
                return false;
            }
        } else if !live.is_dead(recorded(owner, start)) {
            return false;
        }
        // Re-read: a holder that released and re-acquired while we looked at
        // /proc must not be robbed. Relaxed/Acquire as above.
        if self.owner_tid.load(Ordering::Acquire) != echo
            || start.is_some_and(|s| self.owner_start.load(Ordering::Relaxed) != s)
        {
            return false;
        }
        // Acquire: the new owner reads what the dead one wrote (half-written or not).
        if self
            .word
            .compare_exchange(w, me.tid | WAITERS, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        self.publish(me);
        true
    }

    /// Records `me`'s start time so waiters can check its liveness.
    #[inline]
    fn publish(&self, me: TaskId) {
        // Relaxed: made visible by the Release store of `owner_tid` below.
        self.owner_start.store(me.start, Ordering::Relaxed);
        // SYNC POINT: owner-published.
        self.owner_tid.store(me.tid, Ordering::Release);
    }

    /// Releases the lock held by `me`, waking one sleeper if any may sleep.
    ///
    /// # Errors
    /// `NotOwner` if the word does not name `me` (the lock was taken over, or
    /// a peer scribbled on it); the word is then left alone.
    #[inline]
    pub(crate) fn unlock<P: Park>(&self, me: TaskId, park: &P) -> Result<(), NotOwner> {
        // Relaxed: ordered before the Release CAS below. (If we turn out not to
        // be the owner, the real owner now reads as unpublished: it can still
        // only be declared dead once its tid is gone, never while alive.)
        self.owner_tid.store(0, Ordering::Relaxed);
        // SYNC POINT: lock-handoff (Release pairs with the acquirers' Acquire).
        if self
            .word
            .compare_exchange(me.tid, 0, Ordering::Release, Ordering::Relaxed)
            .is_ok()
        {
            return Ok(());
        }
        self.unlock_slow(me, park)
    }

    #[cold]
    fn unlock_slow<P: Park>(&self, me: TaskId, park: &P) -> Result<(), NotOwner> {
        loop {
            // Relaxed: re-validated by the CAS.
            let w = self.word.load(Ordering::Relaxed);
            if owner_of(w) != me.tid {
                return Err(NotOwner { found: owner_of(w) });
            }
            // SYNC POINT: lock-handoff.
            if self
                .word
                .compare_exchange(w, 0, Ordering::Release, Ordering::Relaxed)
                .is_ok()
            {
                if has_waiters(w) {
                    park.wake(&self.word, 1);
                }
                return Ok(());
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::park::Futex;
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    /// Liveness by a set of dead tids.
    struct Dead(Vec<u32>, AtomicBool);
    impl Liveness for Dead {
        fn is_dead(&self, h: Holder) -> bool {
            self.1.store(true, Ordering::Relaxed);
            self.0.contains(&h.tid())
        }
    }

    fn id(tid: u32) -> TaskId {
        TaskId {
            tid,
            start: 100 + u64::from(tid),
        }
    }

    #[test]
    fn lock_unlock_states() {
        let s = RobustState::default();
        let live = Dead(vec![], AtomicBool::new(false));
        assert_eq!(s.lock(id(5), &Futex, &live, None), Ok(Acquired::Clean));
        assert_eq!(s.owner(), 5);
        assert!(s.is_held_by(id(5)));
        assert!(!s.is_held_by(TaskId { tid: 5, start: 1 }));
        assert_eq!(s.try_lock(id(6), &live), Err(AcquireError::Timeout));
        assert_eq!(s.unlock(id(6), &Futex), Err(NotOwner { found: 5 }));
        assert_eq!(s.unlock(id(5), &Futex), Ok(()));
        assert_eq!(s.owner(), 0);
        assert_eq!(s.unlock(id(5), &Futex), Err(NotOwner { found: 0 }));
    }

    #[test]
    fn relock_by_owner_is_reported() {
        let s = RobustState::default();
        let live = Dead(vec![], AtomicBool::new(false));
        s.lock(id(5), &Futex, &live, None).unwrap();
        assert_eq!(
            s.lock(id(5), &Futex, &live, None),
            Err(AcquireError::WouldDeadlock)
        );
    }

    #[test]
    fn timeout_against_live_owner() {
        let s = RobustState::default();
        let live = Dead(vec![], AtomicBool::new(false));
        s.lock(id(5), &Futex, &live, None).unwrap();
        let d = Instant::now() + Duration::from_millis(20);
        assert_eq!(
            s.lock(id(6), &Futex, &live, Some(d)),
            Err(AcquireError::Timeout)
        );
        assert!(Instant::now() >= d);
        assert!(live.1.load(Ordering::Relaxed), "slices checked liveness");
        assert!(has_waiters(s.word.load(Ordering::Relaxed)));
    }

    #[test]
    fn dead_owner_is_taken_over() {
        let s = RobustState::default();
        let live = Dead(vec![5], AtomicBool::new(false));
        s.lock(id(5), &Futex, &live, None).unwrap();
        assert_eq!(s.lock(id(6), &Futex, &live, None), Ok(Acquired::OwnerDied));
        assert!(s.is_held_by(id(6)));
        assert_eq!(s.unlock(id(5), &Futex), Err(NotOwner { found: 6 }));
        s.unlock(id(6), &Futex).unwrap();
        assert_eq!(s.try_lock(id(7), &live), Ok(Acquired::Clean));
    }

    #[test]
    fn try_lock_takes_over_dead_owner() {
        let s = RobustState::default();
        let live = Dead(vec![5], AtomicBool::new(false));
        s.lock(id(5), &Futex, &live, None).unwrap();
        assert_eq!(s.try_lock(id(6), &live), Ok(Acquired::OwnerDied));
    }

    #[test]
    fn scribbled_word_heals() {
        let s = RobustState::default();
        // Bit 31 names no thread: the production liveness says dead.
        s.word.store(0x8000_0001, Ordering::Relaxed);
        let live = Dead(vec![0x8000_0001], AtomicBool::new(false));
        assert_eq!(s.lock(id(6), &Futex, &live, None), Ok(Acquired::OwnerDied));
        s.unlock(id(6), &Futex).unwrap();
        // A free word with stray WAITERS is still free.
        s.word.store(WAITERS, Ordering::Relaxed);
        assert_eq!(s.try_lock(id(6), &live), Ok(Acquired::Clean));
    }

    #[test]
    fn reused_own_tid_with_stale_word_is_taken_over() {
        let s = RobustState::default();
        let live = Dead(vec![], AtomicBool::new(false));
        // A dead thread with tid 5 (another start time) left the lock held.
        s.lock(TaskId { tid: 5, start: 1 }, &Futex, &live, None)
            .unwrap();
        assert_eq!(s.lock(id(5), &Futex, &live, None), Ok(Acquired::OwnerDied));
    }

    #[test]
    fn threads_count_exactly() {
        use std::sync::Arc;
        struct Alive;
        impl Liveness for Alive {
            fn is_dead(&self, _: Holder) -> bool {
                false
            }
        }
        let s = Arc::new((RobustState::default(), AtomicU64::new(0)));
        let ts: Vec<_> = (1..=4)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        s.0.lock(id(t), &Futex, &Alive, None).unwrap();
                        // Relaxed load+store (not fetch_add): only the lock
                        // makes the count exact.
                        let v = s.1.load(Ordering::Relaxed);
                        s.1.store(v + 1, Ordering::Relaxed);
                        s.0.unlock(id(t), &Futex).unwrap();
                    }
                })
            })
            .collect();
        for t in ts {
            t.join().unwrap();
        }
        assert_eq!(s.1.load(Ordering::Relaxed), 80_000);
    }
}

#[cfg(all(test, loom))]
mod loom_tests;
