//! The bulk stream: how a message larger than a slot travels.
//!
//! One writer at a time (the `put_lock` holder) streams the message through a
//! byte ring after putting a descriptor `{start, len}` in the slot ring; one
//! reader at a time (the `get_lock` holder) claims descriptors and reads the
//! bytes `[start, start + len)` followed by an 8-byte commit trailer. Readers
//! self-synchronise on `start`: bytes before it belong to messages whose
//! reader died and are skipped. See `docs/protocols/queue.md`, "Bulk stream".

use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use super::block::{spin_phase, Until, SLICE};
use super::chan::{me, task_dead, Chan};
use super::ring::{Attempt, Bad, Side, BULK, LIVENESS_AFTER};
use crate::error::{Error, Result};
use crate::sync::wait::{Futex, Park};

/// Trailer of a committed message: this constant xor its start offset.
const COMMIT: u64 = 0x5348_4d50_424c_4b21;
/// How long a get that found a descriptor waits for its bytes at least.
const STREAM_GRACE: std::time::Duration = std::time::Duration::from_millis(100);
/// Largest piece published at once, so the reader copies while we write
/// (64 KiB moved 1 MiB messages at 19–22 GB/s where 16 KiB pieces gave
/// 11–18 on the same runs: fewer hand-overs of the position lines).
const CHUNK: u64 = 64 * 1024;

fn lock_value() -> u64 {
    let m = me();
    (u64::from(m.tid) << 32) | u64::from(m.start_lo)
}

/// Sleeps on `word` (registered in `waiters`) until woken, `until`, or
/// `ready()` holds after registering (Dekker with [`wake_if`]).
fn sleep_on(word: &AtomicU32, waiters: &AtomicU32, until: Instant, ready: impl Fn() -> bool) {
    // Spin first, as blocking claims do: a peer that is copying the next
    // chunk answers within microseconds, a futex round trip costs tens.
    let started = Instant::now();
    let mut spins = 0;
    while spin_phase(&mut spins, started, Instant::now()) {
        if ready() {
            return;
        }
    }
    // SeqCst: read before registering (see Ring::wait_slice).
    let seen = word.load(Ordering::SeqCst);
    // SeqCst + fence: Dekker with wake_if's load of `waiters`.
    waiters.fetch_add(1, Ordering::SeqCst);
    fence(Ordering::SeqCst);
    if !ready() {
        Futex.wait(word, seen, Some(until));
    }
    // Relaxed: a counter; staleness costs one needless wake.
    waiters.fetch_sub(1, Ordering::Relaxed);
}

/// Wakes every sleeper on `word` if `waiters` says someone sleeps. Callers
/// made their change with a SeqCst store or RMW first.
fn wake_if(word: &AtomicU32, waiters: &AtomicU32) {
    // SeqCst: must not move before the caller's SeqCst change (Dekker).
    if waiters.load(Ordering::SeqCst) != 0 {
        // SeqCst: ordered after the registration it observed.
        word.fetch_add(1, Ordering::SeqCst);
        Futex.wake_all(word);
    }
}

impl Chan {
    /// Takes a bulk lock; `Ok(true)` when taken over from a dead holder.
    fn bulk_lock(&self, word: &AtomicU64, until: Until) -> Result<bool> {
        let b = &self.control().bulk.0;
        let mine = lock_value();
        let mut last = 0;
        let mut since = Instant::now();
        loop {
            // SYNC POINT bulk-lock: Acquire pairs with bulk_unlock's Release; the
            // previous holder's cursor writes are visible to us.
            let held = match word.compare_exchange(0, mine, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return Ok(false),
                Err(h) => h,
            };
            let now = Instant::now();
            if held != last {
                (last, since) = (held, now);
            } else if now.duration_since(since) >= LIVENESS_AFTER {
                since = now;
                if task_dead((held >> 32) as u32, Some(held as u32))
                    // Acquire: same SYNC POINT bulk-lock (the dead holder's writes).
                    && word
                        .compare_exchange(held, mine, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                {
                    return Ok(true);
                }
            }
            let end = match until {
                Until::Now => return Err(Error::Empty),
                Until::Deadline(d) if now >= d => return Err(Error::Timeout),
                Until::Deadline(d) => d.min(now + SLICE),
                Until::Forever => now + SLICE,
            };
            // Relaxed: re-checked by the CAS above.
            sleep_on(&b.locks, &b.lock_waiters, end, || {
                word.load(Ordering::Relaxed) == 0
            });
        }
    }

    fn bulk_unlock(&self, word: &AtomicU64) {
        let b = &self.control().bulk.0;
        // SYNC POINT bulk-lock: Release publishes our cursor writes. SeqCst for
        // the Dekker pair with lock sleepers.
        word.store(0, Ordering::SeqCst);
        wake_if(&b.locks, &b.lock_waiters);
    }

    fn bulk_bad(&self, what: &'static str, found: u64) -> Error {
        self.corrupt(Bad { what, found })
    }

    /// Puts a message larger than a slot through the bulk stream.
    pub(crate) fn bulk_put(
        &self,
        bytes: &[u8],
        until: Until,
        gone: &dyn Fn() -> bool,
    ) -> Result<()> {
        let b = &self.control().bulk.0;
        self.bulk_lock(&b.put_lock, until).map_err(|e| match e {
            Error::Empty => Error::Full,
            e => e,
        })?;
        let mut drain = false;
        let r = self.bulk_put_locked(bytes, until, gone, &mut drain);
        if drain {
            self.bulk_unlock(&b.get_lock);
        }
        self.bulk_unlock(&b.put_lock);
        r
    }

    fn bulk_put_locked(
        &self,
        bytes: &[u8],
        until: Until,
        gone: &dyn Fn() -> bool,
        drain: &mut bool,
    ) -> Result<()> {
        let b = &self.control().bulk.0;
        // Relaxed: only the put_lock holder writes w_pos and w_end (bulk-lock).
        let w = b.w_pos.load(Ordering::Relaxed);
        let e = b.w_end.load(Ordering::Relaxed);
        if e > w {
            // A writer died (or gave up) mid-message: mark it aborted, then
            // advance over the rest of it (no bytes are written: the reader
            // discards the message by the mark).
            if e - w > self.geo.max_message + 8 {
                return Err(self.bulk_bad("bulk message end (beyond any message)", e));
            }
            // Relaxed: published by the w_pos stores in stream_write.
            let dead_start = b.w_start.load(Ordering::Relaxed);
            b.aborted
                .store(dead_start.wrapping_add(1), Ordering::Relaxed);
            self.seg.bump(crate::segment::counters::RECLAIMED);
            self.stream_write(w, e - w, None, drain, gone, until, &mut |_, _, _| {})?;
            if *drain {
                // We drained the dead writer's message; ours gets a reader.
                *drain = false;
                self.bulk_unlock(&b.get_lock);
            }
        }
        // Relaxed: as above; we hold the lock.
        let start = b.w_pos.load(Ordering::Relaxed);
        let len = bytes.len() as u64;
        let total = len + 8;
        let end = start
            .checked_add(total)
            .ok_or_else(|| self.bulk_bad("bulk write position (overflow)", start))?;
        // Relaxed: read by the next lock holder after the bulk-lock SYNC POINT.
        b.w_start.store(start, Ordering::Relaxed);
        b.w_end.store(end, Ordering::Relaxed);
        let mut desc = [0u8; 16];
        desc[..8].copy_from_slice(&start.to_le_bytes());
        desc[8..].copy_from_slice(&len.to_le_bytes());
        let pos = match self.put_inline(&desc, BULK, until, gone) {
            Ok(pos) => pos,
            Err(err) => {
                // Relaxed: as above.
                b.w_end.store(start, Ordering::Relaxed);
                return Err(err);
            }
        };
        let trailer = (COMMIT ^ start).to_le_bytes();
        self.stream_write(
            start,
            total,
            Some(pos),
            drain,
            gone,
            until,
            &mut |dst, off, n| {
                let off = off as usize;
                let body = bytes.len().saturating_sub(off).min(n);
                // SAFETY: `dst` has `n >= body` writable stream bytes; the source
                // range off..off+body is inside `bytes`; they do not overlap.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        bytes.as_ptr().add(off.min(bytes.len())),
                        dst,
                        body,
                    )
                };
                for i in body..n {
                    let t = off + i - bytes.len();
                    // SAFETY: i < n, inside the `n` writable bytes at `dst`; t < 8
                    // because the piece ends at or before the trailer's end.
                    unsafe { dst.add(i).write(trailer[t]) };
                }
            },
        )
    }

    /// Writes `total` bytes at stream position `w`, `fill(dst, offset, n)`
    /// producing each piece, waiting for the reader to make room. `desc` is
    /// the position of the message's descriptor (None when padding a dead
    /// writer's message); `drain` is set once we hold the read lock of a dead
    /// reader and discard the bytes ourselves.
    #[allow(clippy::too_many_arguments)] // one call per use; a struct would only rename them
    fn stream_write(
        &self,
        mut w: u64,
        total: u64,
        desc: Option<u64>,
        drain: &mut bool,
        gone: &dyn Fn() -> bool,
        until: Until,
        fill: &mut dyn FnMut(*mut u8, u64, usize),
    ) -> Result<()> {
        let b = &self.control().bulk.0;
        let cap = self.geo.bulk_len;
        let start = w;
        let end = w + total;
        let mut stalled = Instant::now();
        let give_up = give_up_at(until);
        while w < end {
            // SYNC POINT bulk-space: Acquire pairs with the reader's r_pos
            // store; it has finished reading the bytes before r.
            let r = b.r_pos.load(Ordering::Acquire);
            let used = w.wrapping_sub(r);
            if used > cap {
                return Err(self.bulk_bad("bulk read position (outside the stream window)", r));
            }
            if *drain && desc.is_none() {
                // Padding a dead writer's message nobody reads: jump over it.
                // SeqCst: SYNC POINT bulk-data / bulk-space, as below.
                b.w_pos.store(end, Ordering::SeqCst);
                b.r_pos.store(end, Ordering::SeqCst);
                wake_if(&b.space, &b.space_waiters);
                return Ok(());
            }
            if used == cap {
                if *drain {
                    // SeqCst: SYNC POINT bulk-space (we are the reader now).
                    b.r_pos.store(w, Ordering::SeqCst);
                    continue;
                }
                if gone() {
                    return Err(Error::Closed);
                }
                if give_up.is_some_and(|d| Instant::now() >= d) {
                    // Leave w_end > w_pos: the reader (or the next writer)
                    // finds the message abandoned and skips it.
                    return Err(match until {
                        Until::Now => Error::Full,
                        _ => Error::Timeout,
                    });
                }
                if stalled.elapsed() >= LIVENESS_AFTER {
                    stalled = Instant::now();
                    self.reader_gone(r, w, start, desc, drain);
                    continue;
                }
                let until = Instant::now() + SLICE;
                // Relaxed: a change is re-read with Acquire at the loop top.
                sleep_on(&b.space, &b.space_waiters, until, || {
                    b.r_pos.load(Ordering::Relaxed) != r
                });
                continue;
            }
            stalled = Instant::now();
            let n = (cap - used).min(end - w).min(cap - w % cap).min(CHUNK);
            // In bounds: w % cap + n <= cap, the stream area's length.
            let dst = self.bulk_ptr().wrapping_add((w % cap) as usize);
            fill(dst, w - start, n as usize);
            w += n;
            // SYNC POINT bulk-data: Release publishes the bytes to the reader's
            // Acquire of w_pos. SeqCst for the Dekker pair with data sleepers.
            b.w_pos.store(w, Ordering::SeqCst);
            wake_if(&b.data, &b.data_waiters);
        }
        Ok(())
    }

    /// The writer found no room for a while: if the read lock's holder is
    /// dead (or the lock is free although our descriptor was taken: its
    /// reader timed out), take the lock and discard what nobody will read: every byte if
    /// our own descriptor was claimed (by the dead reader: readers claim under
    /// the lock), else the bytes before our message (then release the lock
    /// for our message's reader).
    #[cold]
    fn reader_gone(&self, r: u64, w: u64, msg_start: u64, desc: Option<u64>, drain: &mut bool) {
        let b = &self.control().bulk.0;
        // Relaxed: the CAS below decides (and Acquires).
        let held = b.get_lock.load(Ordering::Relaxed);
        let ours_taken = desc.is_none_or(|p| !self.ring().is_unclaimed(p, BULK));
        // A free lock with our descriptor taken: its reader gave up (timeout).
        let abandoned = held == 0 && ours_taken;
        if !abandoned && (held == 0 || !task_dead((held >> 32) as u32, Some(held as u32))) {
            return;
        }
        // Acquire: SYNC POINT bulk-lock, taking over from the dead reader.
        if b.get_lock
            .compare_exchange(held, lock_value(), Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        let to = if ours_taken { w } else { msg_start.max(r) };
        // SeqCst: SYNC POINT bulk-space (and Dekker with space sleepers).
        b.r_pos.store(to, Ordering::SeqCst);
        wake_if(&b.space, &b.space_waiters);
        if ours_taken {
            *drain = true;
        } else {
            self.bulk_unlock(&b.get_lock);
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
        let b = &self.control().bulk.0;
        self.bulk_lock(&b.get_lock, until)?;
        let r = self.bulk_get_locked(out, until, gone);
        self.bulk_unlock(&b.get_lock);
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
        if len > self.geo.max_message || len <= self.geo.data_size {
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
                // Relaxed: ordered by the Acquire loads of w_pos in stream_read.
                let aborted = self.control().bulk.0.aborted.load(Ordering::Relaxed);
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
        let b = &self.control().bulk.0;
        let cap = self.geo.bulk_len;
        let body_end = end - 8;
        // Relaxed: only the get_lock holder writes r_pos (bulk-lock).
        let mut r = b.r_pos.load(Ordering::Relaxed);
        if r > start {
            // Someone skipped past this message (its earlier reader died).
            return Ok(false);
        }
        let mut stalled = Instant::now();
        // A deadline still holds mid-message; a non-blocking get that found a
        // descriptor waits a little for its bytes.
        let give_up = give_up_at(until);
        while r < end {
            // SYNC POINT bulk-data: pairs with the writer's w_pos store.
            let w = b.w_pos.load(Ordering::Acquire);
            let avail = w.wrapping_sub(r);
            if avail > cap {
                return Err(self.bulk_bad("bulk write position (outside the stream window)", w));
            }
            if avail == 0 {
                if give_up.is_some_and(|d| Instant::now() >= d) {
                    // We drop the message we hold; later readers skip its
                    // bytes (they re-synchronise on their own start).
                    return Err(Error::Timeout);
                }
                if Instant::now().duration_since(stalled) >= LIVENESS_AFTER {
                    stalled = Instant::now();
                    if let Some(skip) = self.writer_gone(r, end)? {
                        return Ok(skip);
                    }
                }
                // Relaxed: re-read with Acquire at the loop top.
                sleep_on(&b.data, &b.data_waiters, Instant::now() + SLICE, || {
                    b.w_pos.load(Ordering::Relaxed) != r
                });
                continue;
            }
            stalled = Instant::now();
            let n = avail.min(end - r).min(cap - r % cap);
            // In bounds: r % cap + n <= cap.
            let src = self.bulk_ptr().wrapping_add((r % cap) as usize) as *const u8;
            for (lo, hi, dst) in [(start, body_end, Dst::Out), (body_end, end, Dst::Trailer)] {
                let a = r.max(lo);
                let z = (r + n).min(hi);
                if a >= z {
                    continue;
                }
                let k = (z - a) as usize;
                let s = src.wrapping_add((a - r) as usize);
                match dst {
                    Dst::Out => {
                        debug_assert!(out.len() + k <= out.capacity());
                        // SAFETY:
                        // - s..s+k is inside the stream area (a - r + k <= n);
                        // - `out` has room: its capacity is len, and bytes
                        //   [start, body_end) are appended once, in order;
                        // - the writer published these bytes (w_pos Acquire) and
                        //   will not overwrite them before we advance r_pos.
                        unsafe {
                            std::ptr::copy_nonoverlapping(s, out.as_mut_ptr().add(out.len()), k);
                            out.set_len(out.len() + k);
                        }
                    }
                    Dst::Trailer => {
                        let off = (a - body_end) as usize;
                        // SAFETY: off + k <= 8 (a, z in [body_end, end)); the
                        // source is inside the stream area as above.
                        unsafe {
                            std::ptr::copy_nonoverlapping(s, trailer.as_mut_ptr().add(off), k)
                        };
                    }
                }
            }
            r += n;
            // SYNC POINT bulk-space: Release tells the writer we are done with
            // these bytes. SeqCst for the Dekker pair with space sleepers.
            b.r_pos.store(r, Ordering::SeqCst);
            wake_if(&b.space, &b.space_waiters);
        }
        Ok(true)
    }

    /// The reader found no bytes for a while: if the writer of its message is
    /// dead, take its lock and skip the message (`Some(false)`).
    #[cold]
    fn writer_gone(&self, r: u64, end: u64) -> Result<Option<bool>> {
        let b = &self.control().bulk.0;
        // Acquire: SYNC POINT bulk-lock (a released lock publishes w_pos).
        let held = b.put_lock.load(Ordering::Acquire);
        if held == 0 {
            // Acquire: as for the lock.
            if b.w_pos.load(Ordering::Acquire) != r {
                return Ok(None);
            }
            // The lock is free and our bytes never came: the writer gave up
            // (its deadline passed) after announcing the message.
        } else if !task_dead((held >> 32) as u32, Some(held as u32)) {
            return Ok(None);
        }
        // Acquire: SYNC POINT bulk-lock, taking over from the dead (or gone)
        // holder.
        if b.put_lock
            .compare_exchange(held, lock_value(), Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return Ok(None);
        }
        // We hold both locks: jump every cursor past the dead message.
        let to = end.max(r);
        // Relaxed: published by the lock release / SeqCst store below.
        b.w_end.store(to, Ordering::Relaxed);
        b.w_pos.store(to, Ordering::Relaxed);
        // SeqCst: SYNC POINT bulk-space (and Dekker with space sleepers).
        b.r_pos.store(to, Ordering::SeqCst);
        wake_if(&b.space, &b.space_waiters);
        self.bulk_unlock(&b.put_lock);
        Ok(Some(false))
    }
}

/// When a stream transfer that has started gives up: a deadline still holds
/// mid-message, and a non-blocking call waits a little for its peer.
fn give_up_at(until: Until) -> Option<Instant> {
    match until {
        Until::Now => Some(Instant::now() + STREAM_GRACE),
        Until::Deadline(d) => Some(d.max(Instant::now() + STREAM_GRACE)),
        Until::Forever => None,
    }
}

#[derive(Clone, Copy)]
enum Dst {
    Out,
    Trailer,
}
