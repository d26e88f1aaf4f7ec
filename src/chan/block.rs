//! Blocking claims on the ring: spin, then sleep on the side's wait word in
//! slices (the policy of `sync/wait.rs`), asking about dead claimers and gone
//! peers between slices.
//!
//! Generic over [`Park`] and [`Liveness`], no syscalls of its own (time is
//! read with `Instant`), so loom drives it too.

use std::time::{Duration, Instant};

use super::ring::{Attempt, Bad, Recheck, Ring, Side, Slots, CLOSED, DISCARDING, OPEN};
use crate::sync::atomic::Ordering;
use crate::sync::liveness::Liveness;
use crate::sync::park::Park;
use crate::sync::wait::{self, Spin, LIVENESS_AFTER, SLICE_MAX};
use crate::sys::task::TaskId;

/// Why a blocking claim stopped without a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The deadline passed.
    Timeout,
    /// Closed (puts), or closed and drained (gets), or the peer end is gone.
    Closed,
    /// Non-blocking call found no slot.
    WouldBlock,
    /// The shared state is corrupt.
    Bad(Bad),
}

impl From<Bad> for Stop {
    fn from(b: Bad) -> Self {
        Stop::Bad(b)
    }
}

/// How a claim may block.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Until {
    /// Do not block (but wait, bounded, for a claim in flight: see
    /// `docs/protocols/queue.md`, "In flight").
    Now,
    /// Do not block at all, not even for a claim in flight: an async
    /// future's attempt, which sleeps in the reactor instead.
    Poll,
    /// Block until this instant.
    Deadline(Instant),
    /// Block as long as needed.
    Forever,
}

impl Until {
    /// From an optional timeout.
    pub(crate) fn after(t: Duration) -> Until {
        match Instant::now().checked_add(t) {
            Some(d) => Until::Deadline(d),
            None => Until::Forever,
        }
    }
    fn deadline(self) -> Option<Instant> {
        match self {
            Until::Deadline(d) => Some(d),
            _ => None,
        }
    }
}

/// Shortest nap while the other side's claim of our slot is in flight.
pub(crate) const NAP_MIN: Duration = Duration::from_micros(20);

/// The environment a blocking claim needs besides the ring.
pub(crate) struct Env<'e, P: Park, L: Liveness> {
    /// Futex wait/wake.
    pub park: &'e P,
    /// Liveness of claimers.
    pub live: &'e L,
    /// Whether the other end is gone (pipes; always false for queues).
    pub gone: &'e dyn Fn() -> bool,
}

/// Claims a slot on `side`, blocking as `until` allows.
///
/// Returns `Attempt::Got`, or (gets without `bulk_ok`) `Attempt::Bulk`.
#[inline]
pub(crate) fn claim<S: Slots, P: Park, L: Liveness>(
    ring: &Ring<'_, S>,
    side: Side,
    me: TaskId,
    bulk_ok: bool,
    env: &Env<'_, P, L>,
    until: Until,
) -> Result<Attempt, Stop> {
    if is_shut_for(ring, side) {
        return Err(Stop::Closed);
    }
    match try_once(ring, side, me, bulk_ok)? {
        Attempt::Stall { pos, state } => {
            claim_slow(ring, side, me, bulk_ok, env, until, pos, state)
        }
        got => Ok(got),
    }
}

#[inline]
fn try_once<S: Slots>(
    ring: &Ring<'_, S>,
    side: Side,
    me: TaskId,
    bulk_ok: bool,
) -> Result<Attempt, Bad> {
    match side {
        Side::Put => ring.try_claim_put(me),
        Side::Get => ring.try_claim_get(me, bulk_ok),
    }
}

/// Whether `side` is refused at once: puts once the ring is closed, gets
/// once it is shut down immediately (gets after a plain close drain first).
#[inline]
pub(crate) fn is_shut_for<S: Slots>(ring: &Ring<'_, S>, side: Side) -> bool {
    match side {
        Side::Put => is_closed(ring),
        Side::Get => is_discarding(ring),
    }
}

/// Whether the ring is closed (or shut down).
#[inline]
pub(crate) fn is_closed<S: Slots>(ring: &Ring<'_, S>) -> bool {
    // Acquire: pairs with close()'s Release (SYNC POINT: closed): a getter
    // that sees it also sees every item published before the close.
    ring.ctrl.sync.0.closed.load(Ordering::Acquire) != OPEN
}

/// Whether the ring was shut down immediately: gets fail at once.
#[inline]
pub(crate) fn is_discarding<S: Slots>(ring: &Ring<'_, S>) -> bool {
    // Relaxed: a get that sees it returns `Closed` and reads nothing.
    ring.ctrl.sync.0.closed.load(Ordering::Relaxed) >= DISCARDING
}

/// Closes the ring (`how`: [`CLOSED`] or [`DISCARDING`]; a shut-down ring
/// stays shut down) and wakes every sleeper.
pub(crate) fn close<S: Slots>(ring: &Ring<'_, S>, how: u32, park: &impl Park) {
    debug_assert!(how == CLOSED || how == DISCARDING);
    // SYNC POINT: closed. Release pairs with is_closed's Acquire; SeqCst:
    // the waker's change of the dekker protocol for sleepers that re-check
    // the word after registering (a joinable queue's joiners).
    ring.ctrl.sync.0.closed.fetch_max(how, Ordering::SeqCst);
    ring.notify_all(park);
}

/// Whether a stalled get at `st` means "nothing left" (not a pending write).
fn drained(side: Side, st: u64) -> bool {
    side == Side::Put || st & super::ring::BUSY == 0 || st & super::ring::FULL != 0
}

#[cold]
#[allow(clippy::too_many_arguments)]
fn claim_slow<S: Slots, P: Park, L: Liveness>(
    ring: &Ring<'_, S>,
    side: Side,
    me: TaskId,
    bulk_ok: bool,
    env: &Env<'_, P, L>,
    until: Until,
    mut pos: u64,
    mut st: u64,
) -> Result<Attempt, Stop> {
    let started = Instant::now();
    let mut stalled_since = started;
    // When the stall last changed: a nap (see `Recheck::InFlight`) lasts
    // about as long as the stall has, so a stopped claimer costs few wake-ups.
    let mut changed_at = started;
    let (mut last_pos, mut last_st) = (pos, st);
    let mut spin = Spin::since(started);
    let mut sleeps: u32 = 0;
    // The stall whose in-flight claimer a liveness check found alive: from
    // then on it is waited for only as the caller's deadline allows.
    let mut stalled_alive: Option<(u64, u64)> = None;
    // Asking whether the peer is gone may read /proc (microseconds): only
    // before sleeping (or giving up, for a non-blocking call), never while
    // spinning, so a peer that answers within the spin costs no syscall.
    loop {
        // Closed puts fail at once; closed gets fail once nothing is pending
        // (at once when shut down immediately).
        if is_closed(ring) && (drained(side, st) || is_discarding(ring)) {
            return Err(Stop::Closed);
        }
        // A claim in flight by the other side (the write of the message we
        // would get, or the read of the one whose slot we would fill) is an
        // item, or room, that is all but there: a put that returned before
        // this call started may own it. Wait for it whatever the deadline,
        // until one liveness check has found its claimer alive but stalled
        // (a dead one is reclaimed; `docs/protocols/queue.md`, "In flight").
        let wait_in_flight = !cfg!(loom)
            && !matches!(until, Until::Poll)
            && ring.in_flight_at(side, pos, st)
            && stalled_alive != Some((pos, st));
        if matches!(until, Until::Now | Until::Poll) && !wait_in_flight {
            if drained(side, st) && (env.gone)() {
                return Err(Stop::Closed);
            }
            ring.check_stall(side, pos, st)?;
            return Err(Stop::WouldBlock);
        }
        let now = Instant::now();
        if let Some(d) = until.deadline() {
            if now >= d && !wait_in_flight {
                return Err(Stop::Timeout);
            }
        }
        if (pos, st) != (last_pos, last_st) {
            (last_pos, last_st, stalled_since, changed_at) = (pos, st, now, now);
        } else if now.duration_since(stalled_since) >= LIVENESS_AFTER && !cfg!(loom) {
            // (Not under loom: real time would make the model's executions
            // differ; the loom models call `reclaim` themselves.)
            ring.check_stall(side, pos, st)?;
            if !ring.reclaim(pos, st, env.live)? {
                stalled_alive = Some((pos, st));
            }
            stalled_since = now;
        }
        if !spin.step_at(now) {
            if drained(side, st) && (env.gone)() {
                return Err(Stop::Closed);
            }
            let end = wait::slice_end(sleeps, now, until.deadline());
            sleeps = sleeps.saturating_add(1);
            let nap = now.duration_since(changed_at).clamp(NAP_MIN, SLICE_MAX);
            ring.wait_slice(side, env.park, end, now + nap, || {
                if is_closed(ring) {
                    Recheck::Ready
                } else {
                    ring.recheck(side, pos, st)
                }
            });
        } else if side == Side::Put && !room_for_a_batch(ring) {
            // Spinning on a full ring: leave the consumers' slots alone until
            // they freed a batch, so we do not steal the line they work on.
            continue;
        }
        match try_once(ring, side, me, bulk_ok)? {
            Attempt::Stall { pos: p, state } => (pos, st) = (p, state),
            got => return Ok(got),
        }
    }
}

/// Whether the hints say a batch of slots is free (an eighth of the ring,
/// 1..=256 slots). A heuristic for spinning producers only: the hints may lag,
/// and the spin phase is bounded in time either way.
#[inline]
fn room_for_a_batch<S: Slots>(ring: &Ring<'_, S>) -> bool {
    let cap = ring.slots.cap();
    let batch = (cap / 8).clamp(1, 256);
    ring.len_hint() + batch <= cap
}

/// Waits until the head slot holds a message ready to claim (true), the
/// ring is closed or `gone()` (true: a get would not block), or `deadline`
/// (false). Spins, then sleeps on the getters' wait word in slices; claims
/// nothing, so a readiness seen here is a hint (another consumer may take
/// the message first).
pub(crate) fn wait_readable<S: Slots, P: Park>(
    ring: &Ring<'_, S>,
    park: &P,
    deadline: Option<Instant>,
    gone: &dyn Fn() -> bool,
) -> bool {
    let start = Instant::now();
    let mut spin = Spin::since(start);
    let mut sleeps = 0;
    loop {
        if ring.peek_ready() || is_closed(ring) {
            return true;
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return gone() || ring.peek_ready();
        }
        if spin.step_at(now) {
            continue;
        }
        // Only before sleeping: it may read /proc.
        if gone() {
            return true;
        }
        let end = wait::slice_end(sleeps, now, deadline);
        sleeps = sleeps.saturating_add(1);
        let nap = now.duration_since(start).clamp(NAP_MIN, SLICE_MAX);
        ring.wait_slice(Side::Get, park, end, now + nap, || {
            if is_closed(ring) {
                Recheck::Ready
            } else {
                ring.peek()
            }
        });
    }
}
