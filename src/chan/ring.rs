//! The slot ring: a Vyukov bounded MPMC queue whose slot claims record the
//! claimer, so a claim left by a dead process can be found and undone.
//!
//! No syscalls here: blocking goes through [`Park`] and liveness through
//! [`Liveness`], so the same code runs on shared memory and under loom.
//! See `docs/protocols/queue.md` for the state table and the crash cases;
//! sleeping and waking (the wait words, the re-check) are in `ring/sleep.rs`.
//!
//! # Slot state word (`u64`)
//!
//! | bits   | field | meaning                                             |
//! |--------|-------|-----------------------------------------------------|
//! | 0..32  | seq   | low 32 bits of the position the slot is at          |
//! | 32..60 | tid   | thread id of the claimer while [`BUSY`], else 0     |
//! | 60     | BUSY  | claimed by `tid` (writing if not FULL, reading if FULL) |
//! | 61     | FULL  | holds a published message for position `seq`        |
//! | 62     | BULK  | the message is a bulk-stream descriptor             |
//! | 63     | DEAD  | tombstone of a writer that died: skip it            |
//!
//! | state           | flags         | next                                   |
//! |-----------------|---------------|----------------------------------------|
//! | FREE(p)         | 0             | → WRITING(p) by a producer's CAS        |
//! | WRITING(p, w)   | BUSY          | → FULL(p) by w; → TOMB(p) if w is dead  |
//! | FULL(p)         | FULL [+BULK]  | → READING(p) by a consumer's CAS        |
//! | READING(p, r)   | FULL+BUSY     | → FREE(p+cap) by r, or by anyone if r is dead |
//! | TOMB(p)         | FULL+DEAD     | → READING like FULL, then skipped       |

use crate::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering, Pad};
use crate::sync::liveness::Liveness;
use crate::sync::park::Park;
use crate::sync::wait::WaitWord;
use crate::sys::task::{Holder, TaskId};

/// Claimed by the thread in the tid field.
pub(crate) const BUSY: u64 = 1 << 60;
/// Holds a published message.
pub(crate) const FULL: u64 = 1 << 61;
/// The message is a bulk descriptor.
pub(crate) const BULK: u64 = 1 << 62;
/// Tombstone of a dead writer.
pub(crate) const DEAD: u64 = 1 << 63;
const TID_SHIFT: u32 = 32;
const TID_MASK: u64 = (1 << 28) - 1;
/// Largest ring capacity: seq comparisons are wrapping 32-bit differences.
pub(crate) const MAX_CAP: u64 = 1 << 24;
/// Retries of a claim loop before the ring state is declared corrupt. Each
/// retry means another party made progress or a stale index was refreshed.
const RETRIES: u32 = 1 << 20;

#[inline]
fn seq_of(st: u64) -> u32 {
    st as u32
}
#[inline]
fn tid_of(st: u64) -> u32 {
    ((st >> TID_SHIFT) & TID_MASK) as u32
}
#[inline]
fn flags_of(st: u64) -> u64 {
    st & (BUSY | FULL | BULK | DEAD)
}
#[inline]
fn enc(pos: u64, flags: u64, tid: u32) -> u64 {
    debug_assert_eq!(flags & !(BUSY | FULL | BULK | DEAD), 0, "only state flags");
    debug_assert!(u64::from(tid) <= TID_MASK, "thread ids are below 2^28");
    debug_assert_eq!(
        flags & BUSY != 0,
        tid != 0,
        "a claimed state names its claimer"
    );
    (pos & 0xffff_ffff) | flags | ((u64::from(tid) & TID_MASK) << TID_SHIFT)
}
/// Signed distance from position `pos` to the slot's seq (wrapping).
#[inline]
fn dist(st: u64, pos: u64) -> i32 {
    seq_of(st).wrapping_sub(pos as u32) as i32
}
#[inline]
fn is_free(st: u64) -> bool {
    flags_of(st) == 0 && tid_of(st) == 0
}
#[inline]
fn is_ready(st: u64) -> bool {
    st & FULL != 0 && st & BUSY == 0
}
#[inline]
fn is_reading(st: u64) -> bool {
    st & (FULL | BUSY) == FULL | BUSY
}
#[inline]
fn is_writing(st: u64) -> bool {
    st & (FULL | BUSY) == BUSY
}

/// One slot's control words; its data bytes follow it in shared memory.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct Slot {
    /// The state word (table above).
    pub(crate) state: AtomicU64,
    /// Length of the message in the data bytes (validated by readers).
    pub(crate) len: AtomicU32,
    /// `(low 16 bits of seq << 16) | low 16 bits of the claimer's start
    /// time`: tells a dead claimer from a live task that reuses its thread id.
    pub(crate) tag: AtomicU32,
}

/// The tag of a claim of position `pos` by `me`.
#[inline]
fn tag(pos: u64, me: TaskId) -> u32 {
    ((pos as u32) << 16) | (me.start as u32 & 0xffff)
}

/// `closed` word: open.
pub(crate) const OPEN: u32 = 0;
/// `closed` word: puts fail; gets drain what is left, then fail.
pub(crate) const CLOSED: u32 = 1;
/// `closed` word: shut down immediately: puts and gets fail at once, what is
/// queued is discarded (never handed out).
pub(crate) const DISCARDING: u32 = 2;

/// Words that blocking and closing use.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct SyncWords {
    /// Getters sleep here; bumped when an item is published while they do.
    pub(crate) items: WaitWord,
    /// Putters sleep here; bumped when a slot is freed while they do.
    pub(crate) space: WaitWord,
    /// [`OPEN`], [`CLOSED`] or [`DISCARDING`] (it only grows).
    pub(crate) closed: AtomicU32,
    /// Loom only: bumped at every hand-over, so a nap (`Recheck::InFlight`)
    /// can end when the claim it waits for completes; real naps end by
    /// time, which loom does not model.
    #[cfg(loom)]
    pub(crate) naps: AtomicU32,
}

/// The ring's shared control block.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct RingCtrl {
    /// Next position to claim for writing (a hint: slot states are the truth).
    pub(crate) tail: Pad<AtomicU64>,
    /// Next position to claim for reading (a hint).
    pub(crate) head: Pad<AtomicU64>,
    /// Blocking and closing.
    pub(crate) sync: Pad<SyncWords>,
}

/// Where the slots are: shared memory or, under loom, the heap.
pub(crate) trait Slots {
    /// Number of slots, 1..=[`MAX_CAP`] (validated on open).
    fn cap(&self) -> u64;
    /// Slot `idx`, `idx < cap`.
    fn slot(&self, idx: u64) -> &Slot;
    /// The slot index of position `pos`: `pos % cap` (implementations
    /// replace the division by a mask when cap is a power of two).
    #[inline]
    fn index(&self, pos: u64) -> u64 {
        pos % self.cap()
    }
}

/// A claimed slot: position and the state it was claimed in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Claim {
    /// The position.
    pub(crate) pos: u64,
    /// Flags of the message (BULK, DEAD) for a read claim, plus [`NOTIFY`]
    /// (one word, not a separate bool, so a claim moves as two registers).
    pub(crate) flags: u64,
}

/// In [`Claim::flags`] only (never in a state word, where this bit belongs
/// to the tid): an ordinary (SeqCst) claim, so [`Ring::publish`] or
/// [`Ring::release`] loads the other side's sleeper count after the
/// hand-over and wakes one sleeper. Run claims leave this to `end_run`.
pub(crate) const NOTIFY: u64 = 1 << 59;

impl Claim {
    /// Whether ending this claim must look for sleepers of the other side.
    #[inline]
    pub(crate) fn notifies(&self) -> bool {
        self.flags & NOTIFY != 0
    }
}

/// Outcome of a non-blocking claim attempt.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Attempt {
    /// Claimed.
    Got(Claim),
    /// No slot now; `pos` is the blocking position and `state` its state word.
    Stall {
        /// The position that blocks.
        pos: u64,
        /// Its state word when seen.
        state: u64,
    },
    /// (Reads only) the next message is a bulk descriptor and the caller did
    /// not ask for those: take the bulk read lock, then retry.
    Bulk,
}

/// The ring state contradicts the protocol (a peer scribbled on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bad {
    /// What was wrong.
    pub(crate) what: &'static str,
    /// The offending value.
    pub(crate) found: u64,
}

/// Which way a wait goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// Waiting to put.
    Put,
    /// Waiting to get.
    Get,
}

/// A view of one ring: control block plus slots.
pub(crate) struct Ring<'a, S: Slots> {
    /// The control block.
    pub(crate) ctrl: &'a RingCtrl,
    /// The slots.
    pub(crate) slots: &'a S,
}

impl<'a, S: Slots> Ring<'a, S> {
    #[inline]
    fn slot(&self, pos: u64) -> &'a Slot {
        self.slots.slot(self.slots.index(pos))
    }

    /// Tries to claim the slot at the tail for writing.
    #[inline]
    pub(crate) fn try_claim_put(&self, me: TaskId) -> Result<Attempt, Bad> {
        // Relaxed: the tail is a hint; the slot state decides (Acquire below).
        let mut tail = self.ctrl.tail.0.load(Ordering::Relaxed);
        for _ in 0..RETRIES {
            let slot = self.slot(tail);
            // SYNC POINT: slot-free. pairs with the consumer's release (FREE
            // store); its reads of the old data happen before our writes.
            let st = slot.state.load(Ordering::Acquire);
            match dist(st, tail) {
                0 if is_free(st) => {
                    let mine = enc(tail, BUSY, me.tid);
                    // SeqCst on success: Acquire for SYNC POINT: slot-free
                    // as above, and the waker's change of SYNC POINT: dekker
                    // (sync/wait.rs) with a getter's registration; the load
                    // half is `notify` after our publish.
                    match slot
                        .state
                        .compare_exchange(st, mine, Ordering::SeqCst, Ordering::Relaxed)
                    {
                        Ok(_) => {
                            // Relaxed: read only by liveness checks, which
                            // accept a missing tag.
                            slot.tag.store(tag(tail, me), Ordering::Relaxed);
                            self.advance(&self.ctrl.tail.0, tail);
                            return Ok(Attempt::Got(Claim {
                                pos: tail,
                                flags: NOTIFY,
                            }));
                        }
                        // Another producer took this position: try the next
                        // one (its claim moves the hint; rereading the hint
                        // and bumping it cost two more contended accesses).
                        Err(now) if dist(now, tail) == 0 && !is_free(now) => {
                            tail = tail.wrapping_add(1)
                        }
                        Err(_) => continue,
                    }
                }
                // Claimed by another producer: the next position.
                0 => tail = tail.wrapping_add(1),
                d if d < 0 => {
                    return Ok(Attempt::Stall {
                        pos: tail,
                        state: st,
                    })
                }
                d => tail = self.catch_up(&self.ctrl.tail.0, tail, d),
            }
        }
        Err(Bad {
            what: "tail position (no progress)",
            found: tail,
        })
    }

    /// Publishes a claimed write as FULL (with `flags`: BULK or 0) with a
    /// plain Release store, then (ordinary claims) wakes a getter if one
    /// sleeps.
    ///
    /// No CAS: nobody else changes a WRITING(p, w) slot while w lives
    /// (reclaim needs w dead), so a CAS would only guard against a
    /// scribbling peer, whose change is then overwritten (garbage but safe).
    #[inline]
    pub(crate) fn publish(&self, c: Claim, len: u32, flags: u64, park: &impl Park) {
        debug_assert_eq!(flags & !BULK, 0, "a publish adds FULL and at most BULK");
        debug_assert_eq!(
            c.flags & (BULK | DEAD),
            0,
            "a write claim has no message flags"
        );
        let slot = self.slot(c.pos);
        // Relaxed: published by the Release store below.
        slot.len.store(len, Ordering::Relaxed);
        // SYNC POINT: slot-full. Release publishes data and len to the
        // consumer's Acquire claim.
        self.hand_over(&slot.state, c.pos, enc(c.pos, FULL | flags, 0), park);
        if c.notifies() {
            self.notify(Side::Get, 1, park);
        }
    }

    /// Ends a claim of position `pos` by storing `next` (Release) in its
    /// slot's state word: a plain store, as nobody else changes a claimed
    /// slot while its claimer lives. Under loom a swap that checks this, and
    /// a bump of `naps` that ends the naps of parties waiting for it.
    #[inline]
    fn hand_over(&self, state: &AtomicU64, pos: u64, next: u64, park: &impl Park) {
        #[cfg(not(loom))]
        {
            let _ = (pos, park);
            state.store(next, Ordering::Release);
        }
        #[cfg(loom)]
        {
            let prev = state.swap(next, Ordering::SeqCst);
            assert!(
                prev & BUSY != 0 && dist(prev, pos) == 0,
                "a claimed slot changed under its claimer: {prev:#x}"
            );
            self.ctrl.sync.0.naps.fetch_add(1, Ordering::SeqCst);
            park.wake(&self.ctrl.sync.0.naps, u32::MAX);
        }
    }

    /// Tries to claim the slot at the head for reading. Bulk descriptors are
    /// claimed only with `bulk_ok` (the caller holds the bulk read lock).
    #[inline]
    pub(crate) fn try_claim_get(&self, me: TaskId, bulk_ok: bool) -> Result<Attempt, Bad> {
        // Relaxed: a hint, as for the tail.
        let mut head = self.ctrl.head.0.load(Ordering::Relaxed);
        for _ in 0..RETRIES {
            let slot = self.slot(head);
            // SYNC POINT: slot-full. pairs with `publish`; the data and len
            // written before it are visible after this load.
            let st = slot.state.load(Ordering::Acquire);
            match dist(st, head) {
                0 if is_ready(st) => {
                    if st & BULK != 0 && !bulk_ok {
                        return Ok(Attempt::Bulk);
                    }
                    let flags = st & (BULK | DEAD);
                    // SeqCst on success: Acquire for SYNC POINT: slot-full,
                    // and the waker's change of SYNC POINT: dekker with a
                    // putter's registration.
                    match slot.state.compare_exchange(
                        st,
                        enc(head, FULL | BUSY | flags, me.tid),
                        Ordering::SeqCst,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => {
                            // Relaxed: as in try_claim_put.
                            slot.tag.store(tag(head, me), Ordering::Relaxed);
                            self.advance(&self.ctrl.head.0, head);
                            return Ok(Attempt::Got(Claim {
                                pos: head,
                                flags: flags | NOTIFY,
                            }));
                        }
                        // Another consumer took this position: the next one
                        // (as for producers).
                        Err(now) if dist(now, head) == 0 && is_reading(now) => {
                            head = head.wrapping_add(1)
                        }
                        Err(_) => continue,
                    }
                }
                // Claimed by another consumer: the next position.
                0 if is_reading(st) => head = head.wrapping_add(1),
                d if d <= 0 => {
                    return Ok(Attempt::Stall {
                        pos: head,
                        state: st,
                    })
                }
                d => head = self.catch_up(&self.ctrl.head.0, head, d),
            }
        }
        Err(Bad {
            what: "head position (no progress)",
            found: head,
        })
    }

    /// The length a writer recorded in a claimed slot (untrusted).
    #[inline]
    pub(crate) fn msg_len(&self, c: Claim) -> u32 {
        // Relaxed: ordered by the Acquire claim of the slot.
        self.slot(c.pos).len.load(Ordering::Relaxed)
    }

    /// Frees a slot after reading it, for the producer one lap later, with
    /// a plain Release store (no CAS, as in [`publish`](Self::publish)),
    /// then (ordinary claims) wakes a putter if one sleeps.
    #[inline]
    pub(crate) fn release(&self, c: Claim, park: &impl Park) {
        // SYNC POINT: slot-free. Release orders our reads of the data before
        // the next writer's writes.
        self.hand_over(
            &self.slot(c.pos).state,
            c.pos,
            enc(c.pos.wrapping_add(self.slots.cap()), 0, 0),
            park,
        );
        if c.notifies() {
            self.notify(Side::Put, 1, park);
        }
    }

    /// Run claims (batches): claims position `pos` for writing if its slot
    /// is FREE(pos) now, without touching the tail hint (the run's claimer
    /// moves it once with [`end_run`](Self::end_run)). One CAS, as a single
    /// claim, but the run's slots share the producer's cache lines.
    #[inline]
    pub(crate) fn try_claim_put_at(&self, pos: u64, me: TaskId) -> bool {
        let slot = self.slot(pos);
        // No load first: a CAS on a line another core wrote fetches it for
        // writing in one coherence transaction; a load would fetch it shared
        // and the CAS would then need a second one to own it.
        // Acquire on success: SYNC POINT: slot-free.
        let ok = slot
            .state
            .compare_exchange(
                enc(pos, 0, 0),
                enc(pos, BUSY, me.tid),
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .is_ok();
        if ok {
            // Relaxed: as in try_claim_put.
            slot.tag.store(tag(pos, me), Ordering::Relaxed);
        }
        ok
    }

    /// Claims position `pos` for reading if its slot holds an inline message
    /// or a tombstone, FULL(pos), now (not a bulk descriptor); returns the
    /// claim. The head hint is left to [`end_run`](Self::end_run).
    #[inline]
    pub(crate) fn try_claim_get_at(&self, pos: u64, me: TaskId) -> Option<Claim> {
        let slot = self.slot(pos);
        // No load first (see try_claim_put_at); a tombstone takes a second
        // CAS. Acquire on success: SYNC POINT: slot-full.
        let mut flags = 0;
        if let Err(st) = slot.state.compare_exchange(
            enc(pos, FULL, 0),
            enc(pos, FULL | BUSY, me.tid),
            Ordering::Acquire,
            Ordering::Relaxed,
        ) {
            if st != enc(pos, FULL | DEAD, 0) {
                return None;
            }
            flags = DEAD;
            // Acquire on success: SYNC POINT: slot-full.
            slot.state
                .compare_exchange(
                    st,
                    enc(pos, FULL | BUSY | DEAD, me.tid),
                    Ordering::Acquire,
                    Ordering::Relaxed,
                )
                .ok()?;
        }
        // Relaxed: as in try_claim_put.
        slot.tag.store(tag(pos, me), Ordering::Relaxed);
        // No NOTIFY: the run's end notifies (end_run).
        Some(Claim { pos, flags })
    }

    /// Ends a run of `n` published writes (`side` Get: wakes getters) or
    /// released reads (`side` Put: wakes putters) ending before `next`:
    /// moves the hint to `next` and notifies sleepers once. The run's direct
    /// claims do not load the sleeper count; the SeqCst fence orders the
    /// run's claims and Release stores before the load here (SYNC POINT:
    /// dekker, with the registration in `wait_slice`).
    #[inline]
    pub(crate) fn end_run(&self, side: Side, next: u64, n: u32, park: &impl Park) {
        debug_assert!(n > 0, "only a run that handled a slot ends");
        let hint = match side {
            Side::Get => &self.ctrl.tail.0,
            Side::Put => &self.ctrl.head.0,
        };
        // Relaxed: the hints carry no data (as in advance).
        hint.store(next, Ordering::Relaxed);
        // SeqCst: orders the run before `notify`'s load (see above).
        fence(Ordering::SeqCst);
        self.notify(side, n, park);
    }

    /// The claimer of position `pos` moves the hint past it. A plain store
    /// (no locked instruction on the fast path): it may move the hint back
    /// if others went on meanwhile, but never past an unclaimed position,
    /// and `catch_up` repairs any regression in one step.
    #[inline]
    fn advance(&self, word: &AtomicU64, pos: u64) {
        // Relaxed: the hints carry no data (slot states do).
        word.store(pos.wrapping_add(1), Ordering::Relaxed);
    }

    /// Our hint `at` is behind: the slot there is `d > 0` positions ahead,
    /// a multiple of cap. Position `at + d - cap` went through that slot, so
    /// every position up to it is claimed: move the hint just past it.
    #[cold]
    fn catch_up(&self, word: &AtomicU64, at: u64, d: i32) -> u64 {
        debug_assert!(d > 0, "only a hint that is behind catches up");
        let cap = self.slots.cap();
        let skip = (d as u64).saturating_sub(cap);
        // Relaxed: a hint, as in `advance`.
        let _ = word.compare_exchange(
            at,
            at.wrapping_add(skip).wrapping_add(1),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        word.load(Ordering::Relaxed)
    }

    /// Whether the message published at `pos` with `flags` is still there,
    /// unclaimed.
    pub(crate) fn is_unclaimed(&self, pos: u64, flags: u64) -> bool {
        // Acquire: SYNC POINT: slot-full (the caller acts on the answer).
        self.slot(pos).state.load(Ordering::Acquire) == enc(pos, FULL | flags, 0)
    }

    /// The number of messages in the ring (claimed for writing, not yet
    /// claimed for reading), clamped to `0..=cap`: exact when no put or get
    /// is under way, approximate while others put or get.
    ///
    /// The `tail` and `head` hints may lag behind the claims (a claimer's
    /// plain store can land after a later claimer's), so this does not
    /// subtract them: it walks from each hint over the slots to the first
    /// position not yet claimed on that side (the slot states are the truth),
    /// as a claimer's `catch_up` would. A few loads; never on a fast path.
    pub(crate) fn len(&self) -> u64 {
        // Relaxed: a snapshot; a ring shut down immediately holds nothing
        // anyone will get.
        if self.ctrl.sync.0.closed.load(Ordering::Relaxed) >= DISCARDING {
            return 0;
        }
        // Relaxed: hints, the starting points of the walks.
        let tail = self.settle(Side::Put, self.ctrl.tail.0.load(Ordering::Relaxed));
        let head = self.settle(Side::Get, self.ctrl.head.0.load(Ordering::Relaxed));
        tail.wrapping_sub(head).min(self.slots.cap()) * u64::from(tail >= head)
    }

    /// The first position at or after `hint` that is not yet claimed for
    /// writing (`side` Put) or for reading (`side` Get), read off the slot
    /// states. Bounded: a scribbled ring yields some position, never a hang.
    fn settle(&self, side: Side, hint: u64) -> u64 {
        let cap = self.slots.cap();
        let mut p = hint;
        for _ in 0..=cap + 1 {
            // Acquire: SYNC POINT: slot-full / slot-free, as a claimer's load
            // (the answer is a snapshot either way).
            let st = self.slot(p).state.load(Ordering::Acquire);
            let d = dist(st, p);
            let claimed = match side {
                Side::Put => !is_free(st),
                Side::Get => is_reading(st),
            };
            if d == 0 && claimed {
                p = p.wrapping_add(1);
            } else if d > 0 && d as u64 >= cap {
                // The slot went through position p + d - cap: every position
                // up to it is claimed on this side (see `catch_up`).
                p = p.wrapping_add(d as u64 - cap + 1);
            } else {
                return p;
            }
        }
        p
    }

    /// Positions between the head and tail hints, clamped to `0..=cap`: a
    /// cheap estimate for heuristics (see [`len`](Self::len) for the count).
    pub(crate) fn len_hint(&self) -> u64 {
        // Relaxed: a snapshot, documented as approximate.
        let tail = self.ctrl.tail.0.load(Ordering::Relaxed);
        let head = self.ctrl.head.0.load(Ordering::Relaxed);
        tail.wrapping_sub(head).min(self.slots.cap()) * u64::from(tail >= head)
    }

    /// Slow path of a stalled claim: if the slot at `pos` is held by a dead
    /// claimer, undo its claim (a dead writer's slot becomes a tombstone, a
    /// dead reader's slot becomes free). Returns whether it changed anything.
    #[cold]
    pub(crate) fn reclaim(&self, pos: u64, st: u64, live: &impl Liveness) -> Result<bool, Bad> {
        if st & BUSY == 0 {
            return Ok(false);
        }
        let slot = self.slot(pos);
        let tid = tid_of(st);
        if tid == 0 {
            return Err(Bad {
                what: "claimed slot without a claimer",
                found: st,
            });
        }
        // Relaxed: the tag is advisory: without it (not written yet, or of
        // another claim) the claimer is dead only once its tid is gone.
        let t = slot.tag.load(Ordering::Relaxed);
        let holder = if t >> 16 == seq_of(st) & 0xffff {
            Holder::low_bits(tid, u64::from(t & 0xffff), 16)
        } else {
            Holder::unrecorded(tid)
        };
        if !live.is_dead(holder) {
            return Ok(false);
        }
        let seq_pos = pos.wrapping_add(dist(st, pos) as i64 as u64);
        let next = if is_writing(st) {
            enc(seq_pos, FULL | DEAD, 0)
        } else {
            enc(seq_pos.wrapping_add(self.slots.cap()), 0, 0)
        };
        // SeqCst: as publish/release (it is one of them, done for the dead).
        let done = slot
            .state
            .compare_exchange(st, next, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok();
        Ok(done)
    }

    /// Whether the stalled state `st` at `pos` on `side` is a legal protocol
    /// state (else the ring was scribbled on).
    pub(crate) fn check_stall(&self, side: Side, pos: u64, st: u64) -> Result<(), Bad> {
        let d = dist(st, pos);
        let cap = self.slots.cap();
        let ok = match side {
            // Full: the slot still holds the message one lap back.
            Side::Put => i64::from(d) == -(cap as i64) && st & (FULL | BUSY) != 0,
            // Empty: free or being written for this lap, or still being read
            // one lap back.
            Side::Get => {
                (d == 0 && (is_free(st) || is_writing(st)))
                    || (i64::from(d) == -(cap as i64) && is_reading(st))
            }
        };
        if ok {
            Ok(())
        } else {
            Err(Bad {
                what: "slot state (outside the protocol)",
                found: st,
            })
        }
    }
}

mod sleep;
pub(crate) use sleep::Recheck;

#[cfg(all(test, loom))]
mod loom_tests;

#[cfg(all(test, not(loom)))]
mod tests;
