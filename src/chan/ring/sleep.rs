//! Sleeping and waking on the slot ring: the two wait words (getters on
//! `items`, putters on `space`), the re-check a sleeper makes after
//! registering and what it means (`docs/protocols/queue.md`, "Blocking").

use std::time::Instant;

use super::*;
use crate::sync::park::Wake;

/// What a sleeper's re-check after registering found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recheck {
    /// Something changed (or is ready): do not sleep, retry.
    Ready,
    /// Nothing changed: sleep until woken (a later claim sees us).
    Sleep,
    /// The other side claimed the slot we wait for and has not finished: its
    /// `notify` may have come before our registration, so no wake-up
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
    /// The wait word of `side`'s sleepers.
    #[inline]
    fn wait_word(&self, side: Side) -> &WaitWord {
        let s = &self.ctrl.sync.0;
        match side {
            Side::Get => &s.items,
            Side::Put => &s.space,
        }
    }

    /// Wakes up to `n` sleepers of `side` if any sleep. Call after an
    /// ordinary claim's hand-over (its SeqCst claim CAS is the waker's change
    /// of the dekker protocol: it also orders registrations made meanwhile),
    /// or after a SeqCst fence that follows publishing `n` items or freeing
    /// `n` slots (runs).
    #[inline]
    pub(crate) fn notify(&self, side: Side, n: u32, park: &impl Park) {
        self.wait_word(side).notify(park, n);
    }

    /// Wakes every sleeper on both sides (close, end gone).
    pub(crate) fn notify_all(&self, park: &impl Park) {
        self.wait_word(Side::Get).bump_wake(park, u32::MAX);
        self.wait_word(Side::Put).bump_wake(park, u32::MAX);
    }

    /// Sleeps once on `side`'s wait word until woken or `until`, unless
    /// `check()` (re-checked after registering as a sleeper) says there is no
    /// need ([`Recheck::Ready`]) or that a claim the other side made may have
    /// missed our registration ([`Recheck::InFlight`]: then sleep at most
    /// until `nap_until`, as nobody promised a wake-up). Callers loop; a slice
    /// ends after at most `until`.
    #[cold]
    pub(crate) fn wait_slice(
        &self,
        side: Side,
        park: &impl Park,
        until: Option<Instant>,
        nap_until: Instant,
        check: impl Fn() -> Recheck,
    ) -> Wake {
        let ww = self.wait_word(side);
        let seen = ww.seen();
        // SeqCst: as `seen`, for the hand-over that ends a nap.
        #[cfg(loom)]
        let seen_naps = self.ctrl.sync.0.naps.load(Ordering::SeqCst);
        // Either the claimer's `notify` sees our registration, or our
        // re-check below sees its claim (SYNC POINT: dekker, sync/wait.rs).
        let reg = ww.register();
        match check() {
            Recheck::Ready => Wake::Woken,
            Recheck::Sleep => reg.wait(park, seen, until),
            #[cfg(not(loom))]
            Recheck::InFlight => {
                // Nobody promised a wake-up: sleep until a short deadline.
                let end = until.map_or(nap_until, |u| u.min(nap_until));
                reg.wait(park, seen, Some(end))
            }
            #[cfg(loom)]
            Recheck::InFlight => {
                let _ = nap_until;
                park.wait(&self.ctrl.sync.0.naps, seen_naps, until)
            }
        }
    }

    /// Whether the stalled state `st` at `pos` is a claim in flight by the
    /// other side of `side` (see `in_flight`).
    #[inline]
    pub(crate) fn in_flight_at(&self, side: Side, pos: u64, st: u64) -> bool {
        in_flight(side, st, pos, self.slots.cap())
    }

    /// What a sleeper's re-check of the stalled slot at `pos` (last seen as
    /// `seen`) on `side` says; `closed` counts as a change.
    pub(crate) fn recheck(&self, side: Side, pos: u64, seen: u64) -> Recheck {
        // SeqCst: the re-check of SYNC POINT: dekker (ordered after the
        // registration in wait_slice by its fence; SeqCst for loom).
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
    pub(crate) fn peek_ready(&self) -> bool {
        self.peek() == Recheck::Ready
    }

    /// The head slot as a getter's sleep re-check sees it: a message ready,
    /// one being written, or nothing.
    pub(crate) fn peek(&self) -> Recheck {
        // Relaxed: a hint, as in try_claim_get.
        let head = self.ctrl.head.0.load(Ordering::Relaxed);
        // SeqCst: Acquire for SYNC POINT: slot-full (a caller may act on the
        // answer), and the re-check of SYNC POINT: dekker (wait_slice).
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

impl<S: Slots> Ring<'_, S> {
    /// The tail slot as a putter's sleep re-check sees it: room to claim, a
    /// read of the message one lap back in flight, or full.
    pub(crate) fn peek_put(&self) -> Recheck {
        // Relaxed: a hint, as in try_claim_put.
        let tail = self.ctrl.tail.0.load(Ordering::Relaxed);
        // SeqCst: the re-check of SYNC POINT: dekker (wait_slice).
        let st = self.slot(tail).state.load(Ordering::SeqCst);
        if dist(st, tail) == 0 && is_free(st) {
            Recheck::Ready
        } else if in_flight(Side::Put, st, tail, self.slots.cap()) {
            Recheck::InFlight
        } else {
            Recheck::Sleep
        }
    }
}
