//! The bulk stream: how a message larger than a slot travels.
//!
//! One writer at a time (the `put_lock` holder) streams the message through
//! the segment's [`ByteRing`] after putting a descriptor `{start, len}` in the
//! slot ring; one reader at a time (the `get_lock` holder) claims descriptors
//! and reads the bytes `[start, start + len)` followed by an 8-byte commit
//! trailer. Readers self-synchronise on `start`: bytes before it belong to
//! messages whose reader died and are skipped. Both locks are robust locks
//! (`sync/robust.rs`): a holder's death is found and the lock taken over.
//! See `docs/protocols/queue.md`, "Bulk stream", and
//! `docs/protocols/bytes.md` for the ring itself.

use std::time::{Duration, Instant};

use super::block::Until;
use super::bytes::{BadRing, ByteRing};
use super::layout::BulkLocks;
use super::mapped::Chan;
use super::ring::{Attempt, Bad, Side, BULK};
use crate::error::{Error, Result};
use crate::segment::counters;
use crate::sync::atomic::Ordering;
use crate::sync::liveness::ProcLiveness;
use crate::sync::park::Futex;
use crate::sync::robust::{AcquireError, RobustState};
use crate::sync::wait::{LIVENESS_AFTER, SLICE_MAX};
use crate::sys::task;

/// Trailer of a committed message: this constant xor its start offset.
const COMMIT: u64 = 0x5348_4d50_424c_4b21;
/// How long a get that found a descriptor waits for its bytes at least.
const STREAM_GRACE: Duration = Duration::from_millis(100);
/// Largest piece published at once, so the reader copies while we write
/// (`docs/decisions.md`, "Bulk stream: 2 MiB area by default, 64 KiB pieces").
const CHUNK: u64 = 64 * 1024;

impl Chan {
    fn locks(&self) -> &BulkLocks {
        &self.control().bulk.locks.0
    }

    fn stream(&self) -> &ByteRing {
        // Only called for messages larger than a slot, which `put_large`
        // refuses when there is no stream area; a descriptor read from a ring
        // without one is refused as corrupt before the stream is touched.
        self.bulk
            .as_ref()
            .expect("bulk stream used on a ring without a stream area")
    }

    /// Takes a bulk lock for the calling thread (taking it over from a dead
    /// holder), blocking as `until` allows.
    fn bulk_lock(&self, lock: &RobustState, until: Until) -> Result<()> {
        let me = task::me();
        let r = match until {
            Until::Now | Until::Poll => lock.try_lock(me, &ProcLiveness),
            Until::Deadline(d) => lock.lock(me, &Futex, &ProcLiveness, Some(d)),
            Until::Forever => lock.lock(me, &Futex, &ProcLiveness, None),
        };
        match r {
            Ok(_) => Ok(()),
            Err(AcquireError::Timeout) if matches!(until, Until::Now | Until::Poll) => {
                Err(Error::Empty)
            }
            Err(AcquireError::Timeout) => Err(Error::Timeout),
            Err(AcquireError::WouldDeadlock) => {
                Err(self.bulk_bad("bulk lock (already held by this thread)", 0))
            }
        }
    }

    fn bulk_unlock(&self, lock: &RobustState) {
        // An error means the lock was taken from us, which only happens to a
        // dead holder (or by a scribbling peer): nothing of ours to undo.
        let r = lock.unlock(task::me(), &Futex);
        debug_assert!(r.is_ok(), "bulk lock taken over from a live holder");
    }

    fn bulk_bad(&self, what: &'static str, found: u64) -> Error {
        self.corrupt(Bad { what, found })
    }

    fn ring_bad(&self, b: BadRing) -> Error {
        b.into_error(self.seg.label())
    }

    /// Puts a message larger than a slot through the bulk stream.
    pub(crate) fn bulk_put(
        &self,
        bytes: &[u8],
        until: Until,
        gone: &dyn Fn() -> bool,
    ) -> Result<()> {
        let l = self.locks();
        self.bulk_lock(&l.put_lock, until).map_err(|e| match e {
            Error::Empty => Error::Full,
            e => e,
        })?;
        let mut drain = false;
        let r = self.bulk_put_locked(bytes, until, gone, &mut drain);
        if drain {
            self.bulk_unlock(&l.get_lock);
        }
        self.bulk_unlock(&l.put_lock);
        r
    }

    fn bulk_put_locked(
        &self,
        bytes: &[u8],
        until: Until,
        gone: &dyn Fn() -> bool,
        drain: &mut bool,
    ) -> Result<()> {
        let l = self.locks();
        let stream = self.stream();
        // Relaxed: only the put_lock holder writes the tail and w_end; the
        // lock's Acquire (SYNC POINT: lock-handoff) ordered the last holder's.
        let w = stream.tail();
        let e = l.w_end.load(Ordering::Relaxed);
        if e > w {
            // A writer died (or gave up) mid-message: mark it aborted, then
            // advance over the rest of it (no bytes are written: the reader
            // discards the message by the mark).
            if e - w > self.geo.max_message + 8 {
                return Err(self.bulk_bad("bulk message end (beyond any message)", e));
            }
            // Relaxed: as above.
            let dead_start = l.w_start.load(Ordering::Relaxed);
            l.aborted
                .store(dead_start.wrapping_add(1), Ordering::Relaxed);
            self.seg.bump(counters::RECLAIMED);
            self.stream_write(w, e - w, None, drain, gone, until)?;
            if *drain {
                // We drained the dead writer's message; ours gets a reader.
                *drain = false;
                self.bulk_unlock(&l.get_lock);
            }
        }
        let start = stream.tail();
        let len = bytes.len() as u64;
        let end = start
            .checked_add(len + 8)
            .ok_or_else(|| self.bulk_bad("bulk write position (overflow)", start))?;
        // Relaxed: read by the next lock holder after SYNC POINT: lock-handoff.
        l.w_start.store(start, Ordering::Relaxed);
        l.w_end.store(end, Ordering::Relaxed);
        let mut desc = [0u8; 16];
        desc[..8].copy_from_slice(&start.to_le_bytes());
        desc[8..].copy_from_slice(&len.to_le_bytes());
        let pos = match self.put_inline(&desc, BULK, until, gone) {
            Ok(pos) => pos,
            Err(err) => {
                // Relaxed: as above.
                l.w_end.store(start, Ordering::Relaxed);
                return Err(err);
            }
        };
        let msg = Msg {
            body: bytes,
            trailer: (COMMIT ^ start).to_le_bytes(),
            desc: pos,
        };
        self.stream_write(start, len + 8, Some(msg), drain, gone, until)
    }

    /// Writes `total` bytes of `msg` (or, with `None`, skips over the rest
    /// of a dead writer's message) at stream position `w`, waiting for the
    /// reader to make room. `drain` is set once we hold the read lock of a
    /// dead reader and discard the bytes ourselves.
    fn stream_write(
        &self,
        mut w: u64,
        total: u64,
        msg: Option<Msg<'_>>,
        drain: &mut bool,
        gone: &dyn Fn() -> bool,
        until: Until,
    ) -> Result<()> {
        let stream = self.stream();
        let start = w;
        let end = w + total;
        let mut stalled = Instant::now();
        let give_up = give_up_at(until);
        while w < end {
            let room = stream.room(w).map_err(|b| self.ring_bad(b))?;
            if *drain && msg.is_none() {
                // Padding a dead writer's message nobody reads: jump over it.
                stream.skip_to(end, &Futex);
                return Ok(());
            }
            if room == 0 {
                if *drain {
                    // We are the reader now: discard what we wrote.
                    stream.consume(w, &Futex);
                    continue;
                }
                if gone() {
                    return Err(Error::Closed);
                }
                if give_up.is_some_and(|d| Instant::now() >= d) {
                    // Leave w_end past the tail: the reader (or the next
                    // writer) finds the message abandoned and skips it.
                    return Err(match until {
                        Until::Now | Until::Poll => Error::Full,
                        _ => Error::Timeout,
                    });
                }
                if stalled.elapsed() >= LIVENESS_AFTER {
                    stalled = Instant::now();
                    self.reader_gone(w, start, msg.map(|m| m.desc), drain);
                    continue;
                }
                stream.wait_space(w, 1, &Futex, Some(Instant::now() + SLICE_MAX));
                continue;
            }
            stalled = Instant::now();
            let n = room.min(end - w).min(CHUNK);
            if let Some(m) = &msg {
                m.write(stream, w, w - start, n);
            }
            w += n;
            stream.publish(w, &Futex);
        }
        Ok(())
    }

    /// The writer found no room for a while: if the read lock's holder is
    /// dead (or the lock is free although our descriptor was taken: its
    /// reader timed out), take the lock and discard what nobody will read:
    /// every byte if our own descriptor was claimed (by the dead reader:
    /// readers claim under the lock), else the bytes before our message (then
    /// release the lock for our message's reader).
    #[cold]
    fn reader_gone(&self, w: u64, msg_start: u64, desc: Option<u64>, drain: &mut bool) {
        let l = self.locks();
        let ours_taken = desc.is_none_or(|p| !self.ring().is_unclaimed(p, BULK));
        if l.get_lock.owner() == 0 && !ours_taken {
            return; // our reader has not come yet
        }
        // Taken when free (its reader gave up) or its holder is dead.
        if l.get_lock.try_lock(task::me(), &ProcLiveness).is_err() {
            return;
        }
        let stream = self.stream();
        let to = if ours_taken {
            w
        } else {
            msg_start.max(stream.head())
        };
        stream.consume(to, &Futex);
        if ours_taken {
            *drain = true;
        } else {
            self.bulk_unlock(&l.get_lock);
        }
    }

    /// Gets a bulk message (the head holds a descriptor). `Ok(false)` when
    /// the message was aborted or skipped and nothing was delivered.
    pub(crate) fn bulk_get(
        &self,
        out: &mut Vec<u8>,
        until: Until,
        gone: &dyn Fn() -> bool,
    ) -> Result<bool> {
        let l = self.locks();
        self.bulk_lock(&l.get_lock, until)?;
        let r = self.bulk_get_locked(out, until, gone);
        self.bulk_unlock(&l.get_lock);
        r
    }

    fn bulk_get_locked(
        &self,
        out: &mut Vec<u8>,
        until: Until,
        gone: &dyn Fn() -> bool,
    ) -> Result<bool> {
        let c = match self.claim(Side::Get, true, until, gone)? {
            Attempt::Got(c) if c.flags & BULK == 0 => return self.take_inline(c, out),
            Attempt::Got(c) => c,
            _ => unreachable!("claim with bulk_ok returns Got or an error"),
        };
        let d = self.take_descriptor(c)?;
        let start = u64::from_le_bytes(d[..8].try_into().expect("8 bytes"));
        let len = u64::from_le_bytes(d[8..].try_into().expect("8 bytes"));
        if self.bulk.is_none() || len > self.geo.max_message || len <= self.geo.data_size {
            return Err(self.bulk_bad("bulk message length (outside slot size..=limit)", len));
        }
        let end = start
            .checked_add(len + 8)
            .ok_or_else(|| self.bulk_bad("bulk message start (overflow)", start))?;
        out.clear();
        out.try_reserve_exact(len as usize)
            .map_err(|_| Error::MessageTooLarge {
                size: len as usize,
                max: out.capacity(),
            })?;
        let mut trailer = [0u8; 8];
        self.stream_read(start, end, out, &mut trailer, until)
            .map(|complete| {
                // Relaxed: ordered by the Acquire loads of the tail in stream_read.
                let aborted = self.locks().aborted.load(Ordering::Relaxed);
                complete
                    && u64::from_le_bytes(trailer) == COMMIT ^ start
                    && aborted != start.wrapping_add(1)
            })
            .inspect(|ok| {
                if !ok {
                    out.clear();
                }
            })
    }

    /// Reads stream bytes up to `end`: those before `start` are skipped, then
    /// `end - start - 8` go to `out`, the last 8 to `trailer`. `Ok(false)`
    /// when the message was skipped (its writer died).
    fn stream_read(
        &self,
        start: u64,
        end: u64,
        out: &mut Vec<u8>,
        trailer: &mut [u8; 8],
        until: Until,
    ) -> Result<bool> {
        let stream = self.stream();
        let body_end = end - 8;
        let mut r = stream.head();
        if r > start {
            // Someone skipped past this message (its earlier reader died).
            return Ok(false);
        }
        let mut stalled = Instant::now();
        // A deadline still holds mid-message; a non-blocking get that found a
        // descriptor waits a little for its bytes.
        let give_up = give_up_at(until);
        while r < end {
            let avail = stream.available(r).map_err(|b| self.ring_bad(b))?;
            if avail == 0 {
                if give_up.is_some_and(|d| Instant::now() >= d) {
                    // We drop the message we hold; later readers skip its
                    // bytes (they re-synchronise on their own start).
                    return Err(Error::Timeout);
                }
                if stalled.elapsed() >= LIVENESS_AFTER {
                    stalled = Instant::now();
                    if let Some(skip) = self.writer_gone(r, end)? {
                        return Ok(skip);
                    }
                }
                stream.wait_data(r, &Futex, Some(Instant::now() + SLICE_MAX));
                continue;
            }
            stalled = Instant::now();
            let n = avail.min(end - r).min(stream.cap() - r % stream.cap());
            // The piece [r, r + n) as parts of the body and of the trailer
            // (bytes before `start` are skipped).
            let (a, z) = (r.max(start), (r + n).min(body_end));
            if a < z {
                debug_assert!(out.len() + (z - a) as usize <= out.capacity());
                stream.read_append(a, (z - a) as usize, out);
            }
            let (a, z) = (r.max(body_end), r + n);
            if a < z {
                let off = (a - body_end) as usize;
                stream.read(a, &mut trailer[off..off + (z - a) as usize]);
            }
            r += n;
            stream.consume(r, &Futex);
        }
        Ok(true)
    }

    /// The reader found no bytes for a while: if the writer of its message is
    /// dead (or gave up after announcing it), take its lock and skip the
    /// message (`Some(false)`).
    #[cold]
    fn writer_gone(&self, r: u64, end: u64) -> Result<Option<bool>> {
        let l = self.locks();
        let stream = self.stream();
        if l.put_lock.owner() == 0 && stream.available(r).map_err(|b| self.ring_bad(b))? > 0 {
            return Ok(None); // bytes came meanwhile
        }
        // Taken when free (the writer gave up: our bytes never came) or its
        // holder is dead.
        if l.put_lock.try_lock(task::me(), &ProcLiveness).is_err() {
            return Ok(None);
        }
        if stream.available(r).map_err(|b| self.ring_bad(b))? > 0 {
            self.bulk_unlock(&l.put_lock);
            return Ok(None);
        }
        // We hold both locks: jump every cursor past the dead message.
        let to = end.max(r);
        // Relaxed: published by the lock release below.
        l.w_end.store(to, Ordering::Relaxed);
        stream.skip_to(to, &Futex);
        self.bulk_unlock(&l.put_lock);
        Ok(Some(false))
    }
}

/// A message being streamed: its body, its commit trailer, and the position
/// of its descriptor in the slot ring.
#[derive(Clone, Copy)]
struct Msg<'a> {
    body: &'a [u8],
    trailer: [u8; 8],
    desc: u64,
}

impl Msg<'_> {
    /// Writes bytes `off..off + n` of body-then-trailer at stream position `w`.
    fn write(&self, stream: &ByteRing, w: u64, off: u64, n: u64) {
        let len = self.body.len() as u64;
        let (a, z) = (off.min(len), (off + n).min(len));
        if a < z {
            stream.write(w, &self.body[a as usize..z as usize]);
        }
        let (a, z) = (off.max(len), off + n);
        if a < z {
            let t = (a - len) as usize;
            stream.write(w + (a - off), &self.trailer[t..t + (z - a) as usize]);
        }
    }
}

/// When a stream transfer that has started gives up: a deadline still holds
/// mid-message, and a non-blocking call waits a little for its peer.
fn give_up_at(until: Until) -> Option<Instant> {
    match until {
        Until::Now | Until::Poll => Some(Instant::now() + STREAM_GRACE),
        Until::Deadline(d) => Some(d.max(Instant::now() + STREAM_GRACE)),
        Until::Forever => None,
    }
}
