//! [`Chan`]: a ring in a mapped segment, the byte-message channel that
//! `Queue`, `JoinableQueue` and `Pipe` are built on.
//!
//! Messages up to a slot's data size travel inline in one slot; larger ones
//! travel through the bulk stream (`bulk.rs`), announced by a descriptor slot.

use std::ptr::NonNull;

use super::block::{self, Env, Stop, Until};
use super::bytes::ByteRing;
use super::layout::{Control, Geometry, CONTROL_LEN, FRONT_LEN, FRONT_OFFSET, SLOT_HEADER};
use super::ring::{Attempt, Bad, Claim, Ring, Side, Slot, Slots, DEAD};
use crate::error::{Error, Result};
use crate::segment::{counters, Kind, Placement, Segment, ShmSafe, Spec, TypeFingerprint};
use crate::sync::liveness::CountingLiveness;
use crate::sync::park::{CountingFutex, Futex};
use crate::sys::task;

/// Copies `n` bytes from `src` to `dst`. Messages of 4 to 16 bytes (most
/// `Pod` items, bulk descriptors) move with two fixed-size loads and stores,
/// which may overlap, instead of a `memcpy` call (`docs/decisions.md`,
/// "Queue get: one Result, decoding inlined").
///
/// # Safety
/// - `src` is valid for reads and `dst` for writes of `n` bytes;
/// - the two ranges do not overlap.
#[inline(always)]
unsafe fn copy_bytes(src: *const u8, dst: *mut u8, n: usize) {
    if (8..=16).contains(&n) {
        // SAFETY: 8 <= n (and the caller's contract).
        unsafe { copy_ends::<u64>(src, dst, n) }
    } else if (4..8).contains(&n) {
        // SAFETY: 4 <= n (and the caller's contract).
        unsafe { copy_ends::<u32>(src, dst, n) }
    } else {
        // SAFETY: the caller's contract.
        unsafe { std::ptr::copy_nonoverlapping(src, dst, n) };
    }
}

/// Copies `n` bytes as two `T`-sized moves, the first and the last bytes
/// (overlapping when `n < 2 * size_of::<T>()`).
///
/// # Safety
/// As [`copy_bytes`], and `size_of::<T>() <= n <= 2 * size_of::<T>()`.
#[inline(always)]
unsafe fn copy_ends<T: Copy>(src: *const u8, dst: *mut u8, n: usize) {
    use std::ptr::{read_unaligned, write_unaligned};
    let k = n - std::mem::size_of::<T>();
    // SAFETY: [0, size) and [k, n) lie in both ranges (size <= n, caller);
    // unaligned reads and writes need no alignment; both reads come before
    // the writes, and the ranges do not overlap (caller).
    unsafe {
        let (a, b) = (
            read_unaligned(src.cast::<T>()),
            read_unaligned(src.add(k).cast::<T>()),
        );
        write_unaligned(dst.cast::<T>(), a);
        write_unaligned(dst.add(k).cast::<T>(), b);
    }
}

/// Slots in a mapped segment.
#[derive(Clone)]
pub(crate) struct ShmSlots {
    base: NonNull<u8>,
    stride: usize,
    cap: u64,
    /// `cap - 1` when cap is a power of two (index by mask), else 0.
    mask: u64,
}

impl Slots for ShmSlots {
    #[inline]
    fn cap(&self) -> u64 {
        self.cap
    }
    #[inline]
    fn index(&self, pos: u64) -> u64 {
        // A mask instead of a division for power-of-two rings; cap 1
        // indexes 0 either way.
        if self.mask != 0 || self.cap == 1 {
            pos & self.mask
        } else {
            pos % self.cap
        }
    }
    #[inline]
    fn slot(&self, idx: u64) -> &Slot {
        debug_assert!(idx < self.cap);
        let idx = idx.min(self.cap - 1) as usize;
        // SAFETY:
        // - idx < cap and the segment holds cap * stride slot bytes from base
        //   (Geometry::of checked the payload length), so the Slot is in bounds;
        // - base is 8-aligned (payload offset CONTROL_LEN) and stride is a multiple of
        //   8, Slot's alignment;
        // - Slot is all atomics (ShmSafe); the owning Chan keeps the mapping
        //   alive for as long as `self` is borrowed.
        unsafe { &*(self.base.as_ptr().add(idx * self.stride) as *const Slot) }
    }
}

/// A mapped ring segment with its validated geometry.
pub(crate) struct Chan {
    pub(crate) seg: Segment,
    pub(crate) geo: Geometry,
    slots: ShmSlots,
    ctrl: NonNull<Control>,
    /// The bulk stream (`None` when the segment has no stream area).
    pub(crate) bulk: Option<ByteRing>,
}

// SAFETY: Chan holds raw pointers into the mapping its Segment (Send + Sync,
// an Arc) keeps alive; all shared state behind them is atomics or bytes
// accessed under the ring protocol, so any thread may use it.
unsafe impl Send for Chan {}
// SAFETY: as above.
unsafe impl Sync for Chan {}

impl Clone for Chan {
    fn clone(&self) -> Self {
        Chan {
            seg: self.seg.clone(),
            geo: self.geo,
            slots: self.slots.clone(),
            ctrl: self.ctrl,
            bulk: self.bulk.clone(),
        }
    }
}

impl std::fmt::Debug for Chan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chan")
            .field("segment", &self.seg)
            .field("geometry", &self.geo)
            .finish()
    }
}

impl Chan {
    /// Creates a ring segment.
    pub(crate) fn create(
        kind: Kind,
        ty: TypeFingerprint,
        geo: Geometry,
        place: &Placement,
    ) -> Result<Chan> {
        geo.check_new()?;
        let spec = Spec {
            kind,
            ty,
            payload_len: geo.payload_len(),
            params: geo.params(),
        };
        let seg = Segment::create(&spec, place, |s| {
            // The file is zero-filled: slot i must start FREE(i), i.e. seq i.
            for i in 0..geo.cap {
                let off = CONTROL_LEN + (i * geo.stride()) as usize;
                // Relaxed: published by the segment-ready Release store.
                s.view::<Slot>(off)?
                    .state
                    .store(i & 0xffff_ffff, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(())
        })?;
        Chan::from_segment(seg, geo)
    }

    /// Wraps an opened segment after validating its geometry.
    pub(crate) fn open(seg: Segment) -> Result<Chan> {
        let geo = Geometry::of(&seg)?;
        Chan::from_segment(seg, geo)
    }

    fn from_segment(seg: Segment, geo: Geometry) -> Result<Chan> {
        let base = seg.payload_ptr();
        // The geometry was validated against the payload length, so these
        // offsets are inside the mapping; wrapping_add needs no unsafe.
        let slots = ShmSlots {
            base: NonNull::new(base.wrapping_add(CONTROL_LEN)).expect("mapping is non-null"),
            stride: geo.stride() as usize,
            cap: geo.cap,
            mask: if geo.cap.is_power_of_two() {
                geo.cap - 1
            } else {
                0
            },
        };
        let ctrl = NonNull::new(base as *mut Control).expect("mapping is non-null");
        let bulk = match geo.bulk_len {
            0 => None,
            len => Some(ByteRing::in_segment(
                &seg,
                std::mem::offset_of!(Control, bulk),
                None,
                geo.bulk_offset() as usize,
                len,
            )?),
        };
        Ok(Chan {
            seg,
            geo,
            slots,
            ctrl,
            bulk,
        })
    }

    /// What `shmproc inspect` shows: depth, totals (the head and tail
    /// positions count every message claimed), sleepers, geometry. Snapshots
    /// of untrusted words: for display only.
    pub(crate) fn describe(&self) -> Vec<(&'static str, String)> {
        use std::sync::atomic::Ordering::Relaxed;
        let ring = self.ring();
        let c = &self.control().ring;
        let sync = &c.sync.0;
        // Relaxed: display snapshots that order nothing.
        vec![
            ("depth", format!("{}/{}", ring.len(), self.geo.cap)),
            ("puts", c.tail.0.load(Relaxed).to_string()),
            ("gets", c.head.0.load(Relaxed).to_string()),
            (
                "closed",
                if sync.closed.load(Relaxed) != 0 {
                    "yes"
                } else {
                    "no"
                }
                .into(),
            ),
            ("getters asleep", sync.items.waiters().to_string()),
            ("putters asleep", sync.space.waiters().to_string()),
            ("slot data bytes", self.geo.data_size.to_string()),
            ("bulk stream bytes", self.geo.bulk_len.to_string()),
        ]
    }

    /// The front end's own words (`layout.rs`): a `T` of at most
    /// [`FRONT_LEN`] bytes at the start of the front area.
    pub(crate) fn front<T: ShmSafe>(&self) -> &T {
        const { assert!(std::mem::size_of::<T>() <= FRONT_LEN) };
        self.seg
            .view::<T>(FRONT_OFFSET)
            .expect("the control block (checked on open) holds the front area")
    }

    /// The control block.
    #[inline]
    pub(crate) fn control(&self) -> &Control {
        // SAFETY:
        // - the payload starts with CONTROL_LEN bytes of Control (checked);
        // - Control needs 128-byte alignment: mmap gives page alignment and
        //   HEADER_LEN (256, a power of two) keeps the payload 256-aligned;
        // - Control is ShmSafe; `self.seg` keeps the mapping alive.
        unsafe { self.ctrl.as_ref() }
    }

    /// The ring view.
    #[inline]
    pub(crate) fn ring(&self) -> Ring<'_, ShmSlots> {
        Ring {
            ctrl: &self.control().ring,
            slots: &self.slots,
        }
    }

    /// Copies `bytes` (at most `data_size`) into the data of a slot we
    /// claimed for writing.
    #[inline]
    pub(crate) fn fill(&self, c: Claim, bytes: &[u8]) {
        let n = bytes.len().min(self.geo.data_size as usize);
        // SAFETY:
        // - data(pos) points at data_size >= n bytes inside the mapping;
        // - we own the slot (WRITING by us) until we publish it, so no reader
        //   touches these bytes; source and destination do not overlap.
        unsafe { copy_bytes(bytes.as_ptr(), self.data(c.pos), n) };
    }

    /// Pointer to the data bytes of the slot at `pos`.
    #[inline]
    pub(crate) fn data(&self, pos: u64) -> *mut u8 {
        let idx = self.slots.index(pos) as usize;
        // In bounds: idx < cap and each slot has SLOT_HEADER + data_size bytes.
        self.slots
            .base
            .as_ptr()
            .wrapping_add(idx * self.slots.stride + SLOT_HEADER)
    }

    /// Converts a protocol violation into an error naming this segment.
    pub(crate) fn corrupt(&self, b: Bad) -> Error {
        Error::Corrupt {
            segment: self.seg.label(),
            what: b.what.into(),
            expected: "a state the queue protocol allows".into(),
            found: format!("{:#x}", b.found),
        }
    }

    pub(crate) fn stop(&self, s: Stop, side: Side) -> Error {
        match s {
            Stop::Timeout => Error::Timeout,
            Stop::Closed => Error::Closed,
            Stop::WouldBlock if side == Side::Put => Error::Full,
            Stop::WouldBlock => Error::Empty,
            Stop::Bad(b) => self.corrupt(b),
        }
    }

    /// Claims a slot, blocking as `until` says, `gone` telling a pipe's end.
    ///
    /// The first attempt is inlined into the caller, so the claim stays in
    /// registers; the rest is [`claim_slow`](Self::claim_slow)
    /// (`docs/decisions.md` has the store-forwarding stalls this avoids).
    #[inline]
    pub(crate) fn claim(
        &self,
        side: Side,
        bulk_ok: bool,
        until: Until,
        gone: &dyn Fn() -> bool,
    ) -> Result<Attempt> {
        let ring = self.ring();
        let first = match side {
            _ if block::is_shut_for(&ring, side) => None,
            Side::Put => ring.try_claim_put(task::me()).ok(),
            Side::Get => ring.try_claim_get(task::me(), bulk_ok).ok(),
        };
        match first {
            Some(got @ Attempt::Got(_)) => Ok(got),
            _ => self.claim_slow(side, bulk_ok, until, gone),
        }
    }

    /// [`claim`](Self::claim) after a first attempt found no slot (or the
    /// ring closed, or corrupt: the attempt is repeated and reported here).
    #[inline(never)]
    fn claim_slow(
        &self,
        side: Side,
        bulk_ok: bool,
        until: Until,
        gone: &dyn Fn() -> bool,
    ) -> Result<Attempt> {
        let counter = match side {
            Side::Put => counters::BLOCKED,
            Side::Get => counters::GET_SLEEPS,
        };
        let env = Env {
            park: &CountingFutex::new(&self.seg, counter),
            live: &CountingLiveness::new(&self.seg, counters::RECLAIMED),
            gone,
        };
        block::claim(&self.ring(), side, task::me(), bulk_ok, &env, until)
            .map_err(|s| self.stop(s, side))
    }

    /// Puts one inline message (`bytes.len() <= data_size`) with `flags`
    /// (0 or BULK); returns its position.
    #[inline]
    pub(crate) fn put_inline(
        &self,
        bytes: &[u8],
        flags: u64,
        until: Until,
        gone: &dyn Fn() -> bool,
    ) -> Result<u64> {
        debug_assert!(bytes.len() as u64 <= self.geo.data_size);
        let Attempt::Got(c) = self.claim(Side::Put, false, until, gone)? else {
            unreachable!("puts never report Bulk");
        };
        self.fill(c, bytes);
        self.ring().publish(c, bytes.len() as u32, flags, &Futex);
        Ok(c.pos)
    }

    /// Reads a claimed inline slot into `out` (cleared first) and frees it.
    /// Returns false for a tombstone (nothing read).
    #[inline]
    pub(crate) fn take_inline(&self, c: Claim, out: &mut Vec<u8>) -> Result<bool> {
        let ring = self.ring();
        let len = u64::from(ring.msg_len(c));
        let ok = c.flags & DEAD == 0;
        let res = if !ok {
            Ok(false)
        } else if len > self.geo.data_size {
            Err(self.corrupt(Bad {
                what: "message length in a slot (above the slot size)",
                found: len,
            }))
        } else {
            out.clear();
            out.reserve(len as usize);
            // SAFETY:
            // - data(pos) has data_size >= len readable bytes in the mapping;
            // - `out` has capacity >= len after reserve; the ranges do not overlap;
            // - we own the slot (READING by us) so the writer has finished;
            //   after the copy the first len bytes of `out` are initialised.
            unsafe {
                copy_bytes(self.data(c.pos), out.as_mut_ptr(), len as usize);
                out.set_len(len as usize);
            }
            Ok(true)
        };
        ring.release(c, &Futex);
        res
    }

    /// Decodes a claimed inline slot with `dec(len, fill)` (`fill` copies
    /// the message into a buffer of `len` bytes) and frees it as soon as its
    /// bytes are copied out (also if `dec` panics or never asks for them),
    /// so the slot is not held while `dec` allocates. `None` for a tombstone.
    #[inline(always)]
    pub(crate) fn take_inline_with<R, D>(&self, c: Claim, dec: &mut D) -> Result<Option<R>>
    where
        D: FnMut(usize, &mut dyn FnMut(&mut [u8])) -> Result<R>,
    {
        /// Frees the slot once, whatever happens.
        struct Free<'a>(&'a Chan, Claim, bool);
        impl Drop for Free<'_> {
            fn drop(&mut self) {
                if !self.2 {
                    self.0.ring().release(self.1, &Futex);
                }
            }
        }
        let mut free = Free(self, c, false);
        let len = u64::from(self.ring().msg_len(c));
        if c.flags & DEAD != 0 {
            return Ok(None);
        }
        if len > self.geo.data_size {
            return Err(self.corrupt(Bad {
                what: "message length in a slot (above the slot size)",
                found: len,
            }));
        }
        let src = self.data(c.pos) as *const u8;
        dec(len as usize, &mut |dst: &mut [u8]| {
            let n = dst.len().min(len as usize);
            if free.2 {
                // Asked twice: the slot is no longer ours.
                dst.fill(0);
                return;
            }
            // SAFETY:
            // - src has data_size >= len >= n readable bytes in the mapping;
            // - dst is a distinct, writable buffer of at least n bytes;
            // - we own the slot (READING by us): `free` releases it only
            //   after this copy.
            unsafe { copy_bytes(src, dst.as_mut_ptr(), n) };
            free.2 = true;
            self.ring().release(c, &Futex);
        })
        .map(Some)
    }

    /// Gets one message and decodes it with `dec` (see `take_inline_with`),
    /// skipping tombstones and aborted bulk messages. `dec`'s error is the
    /// call's (one `Result`, not a nested one), and `dec` has one call site
    /// here (the bulk branch is out of line), so it is inlined and its result
    /// stays out of memory (`docs/decisions.md`, "Queue get: one Result,
    /// decoding inlined").
    #[inline(always)]
    pub(crate) fn get_with<R, D>(
        &self,
        until: Until,
        gone: &dyn Fn() -> bool,
        dec: &mut D,
    ) -> Result<R>
    where
        D: FnMut(usize, &mut dyn FnMut(&mut [u8])) -> Result<R>,
    {
        loop {
            match self.claim(Side::Get, false, until, gone)? {
                Attempt::Got(c) => {
                    if let Some(r) = self.take_inline_with(c, dec)? {
                        return Ok(r);
                    }
                }
                Attempt::Bulk => {
                    if let Some(r) = self.bulk_get_with(until, gone, dec)? {
                        return Ok(r);
                    }
                }
                Attempt::Stall { .. } => unreachable!("claim never returns a stall"),
            }
        }
    }

    /// The bulk branch of [`get_with`](Self::get_with): out of line, so that
    /// `dec` has one call site on the hot path and is inlined there.
    #[cold]
    #[inline(never)]
    fn bulk_get_with<R, D>(
        &self,
        until: Until,
        gone: &dyn Fn() -> bool,
        dec: &mut D,
    ) -> Result<Option<R>>
    where
        D: FnMut(usize, &mut dyn FnMut(&mut [u8])) -> Result<R>,
    {
        let mut v = Vec::new();
        if !self.bulk_get(&mut v, until, gone)? {
            return Ok(None);
        }
        dec(v.len(), &mut |dst: &mut [u8]| {
            let n = dst.len().min(v.len());
            dst[..n].copy_from_slice(&v[..n]);
        })
        .map(Some)
    }

    /// Copies a claimed slot's bytes into `dst` (a bulk descriptor) and frees it.
    pub(crate) fn take_descriptor(&self, c: Claim) -> Result<[u8; 16]> {
        let mut v = Vec::with_capacity(16);
        self.take_inline(c, &mut v).and_then(|_| {
            <[u8; 16]>::try_from(v.as_slice()).map_err(|_| {
                self.corrupt(Bad {
                    what: "bulk descriptor length",
                    found: v.len() as u64,
                })
            })
        })
    }

    /// Puts a message of any size (inline or bulk).
    pub(crate) fn put(&self, bytes: &[u8], until: Until, gone: &dyn Fn() -> bool) -> Result<()> {
        if bytes.len() as u64 <= self.geo.data_size {
            return self.put_inline(bytes, 0, until, gone).map(|_| ());
        }
        self.put_large(bytes, until, gone)
    }

    #[cold]
    fn put_large(&self, bytes: &[u8], until: Until, gone: &dyn Fn() -> bool) -> Result<()> {
        let limit = if self.geo.bulk_len == 0 {
            self.geo.data_size
        } else {
            self.geo.max_message
        };
        if bytes.len() as u64 > limit {
            return Err(Error::MessageTooLarge {
                size: bytes.len(),
                max: limit as usize,
            });
        }
        self.bulk_put(bytes, until, gone)
    }

    /// Gets one message into `out`, skipping tombstones and aborted bulk
    /// messages.
    pub(crate) fn get(
        &self,
        out: &mut Vec<u8>,
        until: Until,
        gone: &dyn Fn() -> bool,
    ) -> Result<()> {
        loop {
            match self.claim(Side::Get, false, until, gone)? {
                Attempt::Got(c) => {
                    if self.take_inline(c, out)? {
                        return Ok(());
                    }
                }
                Attempt::Bulk => {
                    if self.bulk_get(out, until, gone)? {
                        return Ok(());
                    }
                }
                Attempt::Stall { .. } => unreachable!("claim never returns a stall"),
            }
        }
    }

    /// Waits until a get would not block (a message is ready, the ring is
    /// closed, or `gone()`), or `deadline`; see [`block::wait_readable`].
    pub(crate) fn wait_readable(
        &self,
        deadline: Option<std::time::Instant>,
        gone: &dyn Fn() -> bool,
    ) -> bool {
        block::wait_readable(&self.ring(), &Futex, deadline, gone)
    }

    /// Closes the ring: puts fail, gets drain then fail.
    pub(crate) fn close(&self) {
        block::close(&self.ring(), super::ring::CLOSED, &Futex);
    }

    /// Shuts the ring down at once: puts and gets fail with `Closed` from now
    /// on, and what is queued is never handed out (Python 3.13's
    /// `shutdown(immediate=True)`).
    pub(crate) fn shut_down(&self) {
        block::close(&self.ring(), super::ring::DISCARDING, &Futex);
    }

    /// Whether the ring was shut down immediately.
    pub(crate) fn is_discarding(&self) -> bool {
        block::is_discarding(&self.ring())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn copy_bytes_copies_every_length_exactly() {
        let src: Vec<u8> = (1..=40).collect();
        for n in 0..=32 {
            let mut dst = [0u8; 40];
            // SAFETY: both buffers have 40 >= n bytes and do not overlap.
            unsafe { super::copy_bytes(src.as_ptr(), dst.as_mut_ptr(), n) };
            assert_eq!(&dst[..n], &src[..n], "length {n}");
            assert!(
                dst[n..].iter().all(|&b| b == 0),
                "length {n} wrote past its end"
            );
        }
    }
}
