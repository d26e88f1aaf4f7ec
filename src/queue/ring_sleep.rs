//! Sleeping and waking on the slot ring (SYNC POINT sleep): the sleeper
//! counts, the futex words, the re-check a sleeper makes after registering
//! and what it means (`docs/protocols/queue.md`, "Blocking").

use std::time::Instant;

use super::*;

/// What a sleeper's re-check after registering found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recheck {
    /// Something changed (or is ready): do not sleep, retry.
    Ready,
    /// Nothing changed: sleep until woken (a later claim sees us).
    Sleep,
    /// The other side claimed the slot we wait for and has not finished: its
    /// `sleepers` load may have come before our registration, so no wake-up
    /// is promised. Nap briefly instead of sleeping.
    InFlight,
}

/// Whether the stalled state `st` at `pos` on `side` is a claim in flight by
/// the side that would wake us: a write of `pos` (getters wait for it) or a
/// read of the message one lap back (putters wait for it).
#[inline]
fn in_flight(side: Side, st: u64, pos: u64, cap: u64) -> bool {
    match side {
        Side::Get => dist(st, pos) == 0 && is_writing(st),
        Side::Put => i64::from(dist(st, pos)) == -(cap as i64) && is_reading(st),
    }
}

impl<S: Slots> Ring<'_, S> {
    /// Whether `side` has sleepers (or a party about to sleep). Called after
    /// a SeqCst claim (ordinary claims: after its hand-over, which loads
    /// registrations made meanwhile too) or a SeqCst fence (runs): the load
    /// half of SYNC POINT sleep.
    #[inline]
    fn sleepers(&self, side: Side) -> bool {
        let s = &self.ctrl.sync.0;
        let count = match side {
            Side::Get => &s.getters,
            Side::Put => &s.putters,
        };
        // Loom models SeqCst accesses as AcqRel but supports SeqCst fences; in
        // the C++ model the SeqCst RMW before and the SeqCst load below are
        // already totally ordered, so real builds skip the extra fence.
        #[cfg(loom)]
        fence(Ordering::SeqCst);
        // SeqCst: this load must not move before the SeqCst claim or fence
        // (Dekker: see `wait_slice`).
        count.load(Ordering::SeqCst) != 0
    }

    /// Wakes up to `n` sleepers of `side` if any sleep (call after an
    /// ordinary claim's hand-over, or after a SeqCst fence that follows
    /// publishing `n` items or freeing `n` slots).
    #[inline]
    pub fn notify(&self, side: Side, n: u32, park: &impl Park) {
        if self.sleepers(side) {
            let s = &self.ctrl.sync.0;
            let word = match side {
                Side::Get => &s.items,
                Side::Put => &s.space,
            };
            Self::notify_slow(word, n, park);
        }
    }

    #[cold]
    fn notify_slow(word: &AtomicU32, n: u32, park: &impl Park) {
        // SeqCst: ordered after the waiter's registration it observed.
        word.fetch_add(1, Ordering::SeqCst);
        park.wake(word, n);
    }

    /// Wakes every sleeper on both sides (close, end gone).
    pub fn notify_all(&self, park: &impl Park) {
        let s = &self.ctrl.sync.0;
        // SeqCst: as in notify_slow.
        s.items.fetch_add(1, Ordering::SeqCst);
        s.space.fetch_add(1, Ordering::SeqCst);
        park.wake_all(&s.items);
        park.wake_all(&s.space);
    }

    /// Sleeps once on `side`'s futex until woken or `until`, unless
    /// `check()` (re-checked after registering as a sleeper) says there is no
    /// need ([`Recheck::Ready`]) or that a claim the other side made may have
    /// missed our registration ([`Recheck::InFlight`]: then sleep at most
    /// until `nap_until`, as nobody promised a wake-up). Callers loop; a slice
    /// ends after at most `until`.
    #[cold]
    pub fn wait_slice(
        &self,
        side: Side,
        park: &impl Park,
        until: Option<Instant>,
        nap_until: Instant,
        check: impl Fn() -> Recheck,
    ) -> Wake {
        let s = &self.ctrl.sync.0;
        let (count, word) = match side {
            Side::Get => (&s.getters, &s.items),
            Side::Put => (&s.putters, &s.space),
        };
        // SeqCst: read before registering, so a bump after our registration
        // makes the futex wait return at once.
        let seen = word.load(Ordering::SeqCst);
        // SeqCst: as `seen`, for the hand-over that ends a nap.
        #[cfg(loom)]
        let seen_naps = s.naps.load(Ordering::SeqCst);
        // SeqCst + fence: Dekker with a claim's `sleepers` load (or a run's
        // `notify`) — either the claimer sees our registration, or our
        // re-check below sees its claim.
        count.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let r = match check() {
            Recheck::Ready => Wake::Woken,
            Recheck::Sleep => park.wait(word, seen, until),
            #[cfg(not(loom))]
            Recheck::InFlight => {
                // Nobody promised a wake-up: sleep until a short deadline.
                let end = until.map_or(nap_until, |u| u.min(nap_until));
                park.wait(word, seen, Some(end))
            }
            #[cfg(loom)]
            Recheck::InFlight => {
                let _ = nap_until;
                park.wait(&s.naps, seen_naps, until)
            }
        };
        // Relaxed: only a counter; a stale value costs one needless wake.
        count.fetch_sub(1, Ordering::Relaxed);
        r
    }

    /// What a sleeper's re-check of the stalled slot at `pos` (last seen as
    /// `seen`) on `side` says; `closed` counts as a change.
    pub fn recheck(&self, side: Side, pos: u64, seen: u64) -> Recheck {
        // SeqCst: the re-check half of the Dekker pair in wait_slice.
        let st = self.slot(pos).state.load(Ordering::SeqCst);
        if st != seen {
            Recheck::Ready
        } else if in_flight(side, st, pos, self.slots.cap()) {
            Recheck::InFlight
        } else {
            Recheck::Sleep
        }
    }

    /// Whether the slot at the head holds a message ready to claim now.
    pub fn peek_ready(&self) -> bool {
        self.peek() == Recheck::Ready
    }

    /// The head slot as a getter's sleep re-check sees it: a message ready,
    /// one being written, or nothing.
    pub fn peek(&self) -> Recheck {
        // Relaxed: a hint, as in try_claim_get.
        let head = self.ctrl.head.0.load(Ordering::Relaxed);
        // SeqCst: Acquire for SYNC POINT slot-full (a caller may act on the
        // answer), and the re-check half of the Dekker pair in wait_slice.
        let st = self.slot(head).state.load(Ordering::SeqCst);
        if dist(st, head) == 0 && is_ready(st) {
            Recheck::Ready
        } else if in_flight(Side::Get, st, head, self.slots.cap()) {
            Recheck::InFlight
        } else {
            Recheck::Sleep
        }
    }
}
