//! Per-object statistics in shared memory, shown by `shmproc inspect`.
//!
//! Every segment header ends with 16 64-bit words (offset 128, their
//! own two cache lines, so bumping one never contends with the payload's hot
//! words). They are bumped only where an operation already pays for a system
//! call or a rare event: a futex sleep, an owner-died recovery, a reclaimed
//! slot. Fast paths never touch them; totals that fast paths maintain anyway
//! (a queue's head and tail positions are its total gets and puts) are read
//! from the kind's own state instead. `docs/decisions.md` has the measurements.
//!
//! Slot meanings (one table for every kind, so a slot never means two things):
//!
//! | slot | constant        | kinds | counts |
//! |-----:|-----------------|-------|--------|
//! | 0 | [`BLOCKED`]         | every blocking kind | operations that had to sleep at least once (lock and semaphore acquires, event, condition and barrier waits; queue and pipe puts on a full ring) |
//! | 1 | [`OWNER_DIED`]      | lock, rlock, condition, value, array | acquisitions that recovered the lock from a holder that died |
//! | 2 | [`CONDITION_WAITS`] | condition | `wait` calls that slept |
//! | 3 | [`GET_SLEEPS`]      | queue, joinable queue, pipe | gets that had to sleep at least once on an empty ring |
//! | 4 | [`RECLAIMED`]       | queue, joinable queue, pipe | slots and bulk messages reclaimed from claimers that died |
//! | 5 | [`WORKERS_REPLACED`] | pool | workers that ended and were replaced |
//! | 6 | [`TASKS_FAILED`]    | pool | tasks failed with `WorkerDied` (their worker died holding them) |
//!
//! Counters are statistics, not state: every reader treats them as untrusted
//! numbers, and a peer that scribbles on them changes nothing but the display.

use std::sync::atomic::{AtomicBool, Ordering};

use super::header::{Kind, COUNTERS};
use super::Segment;

/// Operations that had to sleep at least once.
///
/// # Examples
/// ```
/// use shmproc::inspect::{self, counters::BLOCKED};
/// let name = format!("doc-blocked-{}", std::process::id());
/// let lock = shmproc::Lock::builder().name(&name).create()?;
/// let _g = lock.acquire()?;
/// let l2 = lock.clone();
/// std::thread::spawn(move || l2.acquire_timeout(std::time::Duration::from_millis(5)).is_err())
///     .join()
///     .unwrap();
/// assert_eq!(inspect::info(&name)?.counters[BLOCKED], 1); // the one that slept
/// # Ok::<(), shmproc::Error>(())
/// ```
pub const BLOCKED: usize = 0;
/// Lock acquisitions that took the lock over from a dead holder.
///
/// # Examples
/// ```
/// use shmproc::inspect::{counters, Kind};
/// assert!(counters::names(Kind::Value).contains(&(counters::OWNER_DIED, "owner-died recoveries")));
/// ```
pub const OWNER_DIED: usize = 1;
/// `Condition::wait` calls.
///
/// # Examples
/// ```
/// use shmproc::inspect::{counters, Kind};
/// assert!(counters::names(Kind::Condition).iter().any(|(s, _)| *s == counters::CONDITION_WAITS));
/// ```
pub const CONDITION_WAITS: usize = 2;

/// Queue and pipe gets that had to sleep at least once on an empty ring
/// (puts that slept on a full ring count in [`BLOCKED`]).
///
/// # Examples
/// ```
/// use shmproc::inspect::{counters, Kind};
/// assert!(counters::names(Kind::Queue).iter().any(|(s, _)| *s == counters::GET_SLEEPS));
/// ```
pub const GET_SLEEPS: usize = 3;
/// Queue and pipe slots (and bulk messages) reclaimed from a claimer that
/// died holding them.
///
/// # Examples
/// ```
/// use shmproc::inspect::{counters, Kind};
/// assert!(counters::names(Kind::Pipe).iter().any(|(s, _)| *s == counters::RECLAIMED));
/// ```
pub const RECLAIMED: usize = 4;
/// Pool workers that ended (died, or reached `maxtasksperchild`) and were
/// replaced.
///
/// # Examples
/// ```
/// use shmproc::inspect::{counters, Kind};
/// assert!(counters::names(Kind::Pool).contains(&(counters::WORKERS_REPLACED, "workers replaced")));
/// ```
pub const WORKERS_REPLACED: usize = 5;
/// Pool tasks failed with `WorkerDied` because their worker died holding them.
///
/// # Examples
/// ```
/// use shmproc::inspect::{counters, Kind};
/// assert!(counters::names(Kind::Pool).iter().any(|(s, _)| *s == counters::TASKS_FAILED));
/// ```
pub const TASKS_FAILED: usize = 6;

/// Process-wide switch: when off, [`Segment::bump`] does nothing.
static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns counting on or off for this process (default: on).
///
/// Counters are only bumped on slow paths, so this exists to measure what
/// they cost (`cargo bench --bench counters`), not to make anything faster.
///
/// # Examples
/// ```
/// shmproc::inspect::counters::set_enabled(false);
/// assert!(!shmproc::inspect::counters::enabled());
/// shmproc::inspect::counters::set_enabled(true);
/// ```
pub fn set_enabled(on: bool) {
    // Relaxed: a switch read on its own; no data is published through it.
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether this process bumps counters (see [`set_enabled`]).
///
/// # Examples
/// ```
/// assert!(shmproc::inspect::counters::enabled());
/// ```
pub fn enabled() -> bool {
    // Relaxed: see `set_enabled`.
    ENABLED.load(Ordering::Relaxed)
}

/// The counters a kind maintains, as `(slot, name)` pairs, for display.
///
/// # Examples
/// ```
/// use shmproc::inspect::{counters, Kind};
/// assert_eq!(counters::names(Kind::Lock)[1], (counters::OWNER_DIED, "owner-died recoveries"));
/// ```
pub fn names(kind: Kind) -> &'static [(usize, &'static str)] {
    const LOCKED: &[(usize, &str)] = &[
        (BLOCKED, "blocked acquires"),
        (OWNER_DIED, "owner-died recoveries"),
    ];
    match kind {
        Kind::Lock | Kind::RLock | Kind::Value | Kind::Array => LOCKED,
        Kind::Condition => &[
            (BLOCKED, "blocked acquires"),
            (OWNER_DIED, "owner-died recoveries"),
            (CONDITION_WAITS, "waits"),
        ],
        Kind::Semaphore | Kind::BoundedSemaphore => &[(BLOCKED, "blocked acquires")],
        Kind::Event | Kind::Barrier => &[(BLOCKED, "blocked waits")],
        Kind::Pool => &[
            (WORKERS_REPLACED, "workers replaced"),
            (TASKS_FAILED, "tasks failed by a worker's death"),
        ],
        Kind::Queue | Kind::JoinableQueue | Kind::Pipe => &[
            (BLOCKED, "put sleeps (full)"),
            (GET_SLEEPS, "get sleeps (empty)"),
            (RECLAIMED, "reclaimed from dead claimers"),
        ],
        Kind::RawValue | Kind::RawArray => &[],
    }
}

impl Segment {
    /// Adds one to counter `slot` (if counting is [`enabled`]). Call it only
    /// on slow paths; an out-of-range slot is ignored.
    #[cold]
    #[inline(never)]
    pub(crate) fn bump(&self, slot: usize) {
        if slot < COUNTERS && enabled() {
            // Relaxed: a statistic; nothing is published or ordered by it.
            self.header().counters[slot].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A snapshot of this segment's counters (meanings: [`names`]).
    pub(crate) fn counters(&self) -> [u64; COUNTERS] {
        self.header().counters()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::{Placement, Spec, TypeFingerprint};

    #[test]
    fn bump_counts_in_range_slots() {
        let spec = Spec {
            kind: Kind::Lock,
            ty: TypeFingerprint::none(),
            payload_len: 16,
            params: [0; 4],
        };
        let seg = Segment::create(&spec, &Placement::default(), |_| Ok(())).unwrap();
        seg.bump(BLOCKED);
        seg.bump(BLOCKED);
        seg.bump(OWNER_DIED);
        seg.bump(COUNTERS); // ignored
        assert_eq!(seg.counters()[..3], [2, 1, 0]);
        // `set_enabled` is process-wide: other tests of this binary would see
        // it, so its doctest (a process of its own) checks it instead.
    }

    #[test]
    fn every_kind_names_distinct_slots() {
        for kind in Kind::ALL {
            let n = names(kind);
            for (i, (slot, _)) in n.iter().enumerate() {
                assert!(*slot < COUNTERS);
                assert!(n[..i].iter().all(|(s, _)| s != slot), "{kind}");
            }
        }
    }
}
