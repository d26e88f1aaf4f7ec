//! A single-producer single-consumer byte ring in shared memory: the pool's
//! per-worker task and result channels (`docs/protocols/pool.md`).
//!
//! `head` and `tail` count bytes since the ring was (re)set. A message is a
//! `u32` length and its bytes, stored modulo the capacity (copies are split
//! at the end). Only the producer writes `tail` and the bytes in
//! `head..tail`'s complement; only the consumer writes `head`. Publishing is
//! one store of `tail`, so a producer that dies mid-write publishes nothing.
//!
//! Sleeping: a consumer sleeps on a *bell* word (its own, or the pool's
//! doorbell shared by all result rings), a producer waiting for room on
//! `space_wait`. Sleeper: `word = 1` (SeqCst), re-check, futex-wait while 1.
//! Waker: publish (SeqCst), then if `word == 1` swap it to 0 and wake. The
//! two SeqCst pairs forbid the store->load reordering that would lose a
//! wake-up (each side would otherwise miss the other's store).

use std::ptr::NonNull;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::segment::{Segment, ShmSafe};
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::sync::wait::{Futex, Park};

/// Length prefix of a message.
const LEN: u64 = 4;

/// How long a waiter spins before it sleeps on a futex. A futex wake-up
/// costs ~30 µs here, a cache-line hand-off ~70 ns: short tasks stay on the
/// spinning path; idle waiters sleep soon, which matters on 2 shared cores.
pub(crate) const SPIN: Duration = Duration::from_micros(50);

/// Control words of one ring, each hot word on its own 128-byte line.
#[repr(C)]
pub(crate) struct RingCtl {
    head: AtomicU64,
    _pad_head: [AtomicU64; 15],
    tail: AtomicU64,
    _pad_tail: [AtomicU64; 15],
    /// The consumer's bell, for rings whose consumer sleeps alone (task rings).
    pub(crate) data_wait: AtomicU32,
    /// 1 while the producer sleeps waiting for room.
    space_wait: AtomicU32,
    _pad_wait: [AtomicU64; 15],
}

const _: () = assert!(std::mem::size_of::<RingCtl>() == 384);

// SAFETY: only fixed-width atomics (every bit pattern valid, shared mutation
// atomic-only), no pointers.
unsafe impl ShmSafe for RingCtl {}

/// One end's view of a ring. Holds the segment, so the pointers stay valid.
pub(crate) struct Ring {
    _seg: Segment,
    ctl: NonNull<RingCtl>,
    bell: NonNull<AtomicU32>,
    data: *mut u8,
    cap: u64,
    /// The producer's last view of `head` and the consumer's of `tail`
    /// (process-local): re-read from the shared line only when the cached
    /// value says "full" / "empty", so the two ends do not pull each
    /// other's cache line on every message.
    seen_head: std::sync::atomic::AtomicU64,
    seen_tail: std::sync::atomic::AtomicU64,
    /// The producer's write position: `tail` plus what was written and not
    /// published yet (process-local; see [`Ring::try_write`]).
    written: std::sync::atomic::AtomicU64,
}

// SAFETY: the pointers target the shared mapping kept alive by `_seg`; all
// shared access goes through atomics, and the bytes are written only by the
// single producer outside `head..tail` (protocol above), so the handle may
// move between threads.
unsafe impl Send for Ring {}
// SAFETY: as for Send; the pool serializes each end's use by its own lock
// (the dispatcher state) or uses it from one thread (the worker).
unsafe impl Sync for Ring {}

impl Ring {
    /// A view of the ring whose control block is at payload offset `ctl`,
    /// bytes at `data..data + cap`, consumer bell at `bell`.
    ///
    /// # Errors
    /// `Corrupt` if any range falls outside the payload.
    pub(crate) fn new(
        seg: &Segment,
        ctl: usize,
        bell: usize,
        data: usize,
        cap: u64,
    ) -> Result<Ring> {
        let ctl_ref = seg.view::<RingCtl>(ctl)?;
        // Relaxed: the producer's own position (only it writes `tail`).
        let tail = ctl_ref.tail.load(Ordering::Relaxed);
        let c = NonNull::from(ctl_ref);
        let b = NonNull::from(seg.view::<AtomicU32>(bell)?);
        let bytes = seg.view_slice::<AtomicU32>(data, (cap / 4) as usize)?;
        Ok(Ring {
            _seg: seg.clone(),
            ctl: c,
            bell: b,
            data: bytes.as_ptr() as *mut u8,
            cap,
            seen_head: std::sync::atomic::AtomicU64::new(0),
            seen_tail: std::sync::atomic::AtomicU64::new(0),
            written: std::sync::atomic::AtomicU64::new(tail),
        })
    }

    fn ctl(&self) -> &RingCtl {
        // SAFETY: checked in bounds and aligned in `new`; the mapping lives
        // as long as `_seg`; RingCtl is ShmSafe.
        unsafe { self.ctl.as_ref() }
    }

    fn bell(&self) -> &AtomicU32 {
        // SAFETY: as in `ctl`.
        unsafe { self.bell.as_ref() }
    }

    /// The largest message body the ring takes.
    pub(crate) fn max_message(&self) -> usize {
        (self.cap / 2) as usize
    }

    /// Producer: appends one message made of `parts` and publishes it (and
    /// any written before); `Ok(false)` if there is no room now.
    ///
    /// # Errors
    /// `MessageTooLarge` above [`max_message`](Self::max_message); `Corrupt`
    /// if the shared positions are impossible.
    pub(crate) fn try_send(&self, parts: &[&[u8]]) -> Result<bool> {
        let sent = self.try_write(parts)?;
        if sent {
            self.publish();
        }
        Ok(sent)
    }

    /// Producer: appends one message made of `parts` without publishing
    /// it: the consumer sees it at the next [`publish`](Self::publish).
    /// Batching saves a shared store (and the consumer a cache miss) per
    /// message. `Ok(false)` if there is no room now (publish, then wait).
    ///
    /// # Errors
    /// As [`try_send`](Self::try_send).
    pub(crate) fn try_write(&self, parts: &[&[u8]]) -> Result<bool> {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if total > self.max_message() {
            return Err(Error::MessageTooLarge {
                size: total,
                max: self.max_message(),
            });
        }
        let c = self.ctl();
        // Relaxed (local): only this producer writes.
        let tail = self.written.load(std::sync::atomic::Ordering::Relaxed);
        // Relaxed (local cache): an older `head` than the shared one only
        // understates the room.
        let mut head = self.seen_head.load(std::sync::atomic::Ordering::Relaxed);
        if self.cap - tail.wrapping_sub(head).min(self.cap) < LEN + total as u64 {
            // SYNC POINT: ring-space. Acquire: the consumer has finished
            // copying the bytes before `head` (its Release), so we may
            // overwrite them.
            head = c.head.load(Ordering::Acquire);
            self.seen_head
                .store(head, std::sync::atomic::Ordering::Relaxed);
            let used = self.check(head, tail)?;
            if self.cap - used < LEN + total as u64 {
                return Ok(false);
            }
        }
        let mut pos = tail;
        self.write(pos, &(total as u32).to_le_bytes());
        pos += LEN;
        for p in parts {
            self.write(pos, p);
            pos += p.len() as u64;
        }
        // Relaxed (local): see above.
        self.written
            .store(pos, std::sync::atomic::Ordering::Relaxed);
        Ok(true)
    }

    /// Producer: makes every message written so far visible (and wakes a
    /// sleeping consumer). Cheap when there is nothing new.
    pub(crate) fn publish(&self) {
        let c = self.ctl();
        // Relaxed (local) / Relaxed (only this producer writes `tail`).
        let pos = self.written.load(std::sync::atomic::Ordering::Relaxed);
        if c.tail.load(Ordering::Relaxed) == pos {
            return;
        }
        // SYNC POINT: ring-data. Release publishes the bytes; SeqCst orders
        // this store before the bell load below (Dekker pair with `wait_data`).
        c.tail.store(pos, Ordering::SeqCst);
        ring_bell(self.bell());
    }

    /// Consumer: moves the next message into `out`; `Ok(false)` if empty.
    ///
    /// # Errors
    /// `Corrupt` if the positions or the length prefix are impossible.
    pub(crate) fn try_recv(&self, out: &mut Vec<u8>) -> Result<bool> {
        let c = self.ctl();
        // Relaxed: only this consumer writes `head`.
        let head = c.head.load(Ordering::Relaxed);
        // Relaxed (local cache): a `tail` read before with Acquire.
        let mut tail = self.seen_tail.load(std::sync::atomic::Ordering::Relaxed);
        if tail == head {
            // SYNC POINT: ring-data. Acquire: the bytes before `tail` are written.
            tail = c.tail.load(Ordering::Acquire);
            self.seen_tail
                .store(tail, std::sync::atomic::Ordering::Relaxed);
            if head == tail {
                return Ok(false);
            }
        }
        let used = self.check(head, tail)?;
        let mut len = [0u8; 4];
        if used < LEN {
            return Err(self.corrupt("message length", "at least 4 bytes queued", used));
        }
        self.read(head, &mut len);
        let len = u32::from_le_bytes(len) as u64;
        if LEN + len > used {
            return Err(self.corrupt("message length", format!("at most {}", used - LEN), len));
        }
        out.clear();
        self.read_into(head + LEN, len as usize, out);
        // SYNC POINT: ring-space. Release: our copy is done before the
        // producer reuses the bytes; SeqCst orders it before the
        // `space_wait` load (Dekker pair with `wait_space`).
        c.head.store(head + LEN + len, Ordering::SeqCst);
        ring_bell(&c.space_wait);
        Ok(true)
    }

    /// Whether a message is waiting (consumer side).
    pub(crate) fn has_data(&self) -> bool {
        let c = self.ctl();
        // Relaxed: a hint; `try_recv` does the Acquire.
        c.tail.load(Ordering::Relaxed) != c.head.load(Ordering::Relaxed)
    }

    /// Consumer: waits until a message is there or `deadline` passes
    /// (spins for [`SPIN`] first). Returns whether data is there.
    pub(crate) fn wait_data(&self, deadline: Option<Instant>) -> bool {
        let c = self.ctl();
        let ready = || c.tail.load(Ordering::SeqCst) != c.head.load(Ordering::Relaxed);
        sleep_until(self.bell(), ready, deadline)
    }

    /// Producer: waits until a message body of `len` bytes fits or
    /// `deadline` passes. Returns whether it fits.
    pub(crate) fn wait_space(&self, len: usize, deadline: Option<Instant>) -> bool {
        let c = self.ctl();
        let need = LEN + len as u64;
        let fits = || {
            let used = c
                .tail
                .load(Ordering::Relaxed)
                .wrapping_sub(c.head.load(Ordering::SeqCst));
            used <= self.cap && self.cap - used >= need
        };
        sleep_until(&c.space_wait, fits, deadline)
    }

    /// Empties the ring. Only when neither end can be in use (the other
    /// process is dead and reaped).
    pub(crate) fn reset(&self) {
        let c = self.ctl();
        // Relaxed: no other process uses the ring any more; the next user
        // is launched after this, and the launch orders these stores.
        c.head.store(0, Ordering::Relaxed);
        c.tail.store(0, Ordering::Relaxed);
        c.data_wait.store(0, Ordering::Relaxed);
        c.space_wait.store(0, Ordering::Relaxed);
        self.seen_head
            .store(0, std::sync::atomic::Ordering::Relaxed);
        self.seen_tail
            .store(0, std::sync::atomic::Ordering::Relaxed);
        self.written.store(0, std::sync::atomic::Ordering::Relaxed);
    }

    /// Validates positions read from shared memory; returns bytes in use.
    fn check(&self, head: u64, tail: u64) -> Result<u64> {
        let used = tail.wrapping_sub(head);
        if used > self.cap {
            return Err(self.corrupt(
                "ring positions",
                format!("tail - head <= {}", self.cap),
                format!("head {head}, tail {tail}"),
            ));
        }
        Ok(used)
    }

    #[cold]
    fn corrupt(&self, what: &str, expected: impl ToString, found: impl ToString) -> Error {
        Error::Corrupt {
            segment: "pool".into(),
            what: what.into(),
            expected: expected.to_string(),
            found: found.to_string(),
        }
    }

    fn write(&self, pos: u64, src: &[u8]) {
        let at = (pos % self.cap) as usize;
        let first = src.len().min(self.cap as usize - at);
        // SAFETY:
        // - `at + first <= cap` and `src.len() - first <= cap - first`, so both
        //   copies stay inside the `cap` data bytes checked in `new`;
        // - by the ring protocol only this producer touches bytes outside
        //   `head..tail`, and `try_send` checked there is room for them.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.data.add(at), first);
            std::ptr::copy_nonoverlapping(src.as_ptr().add(first), self.data, src.len() - first);
        }
    }

    /// Appends the `len` bytes at `pos` to `out` (no zero-fill first).
    fn read_into(&self, pos: u64, len: usize, out: &mut Vec<u8>) {
        let at = (pos % self.cap) as usize;
        let first = len.min(self.cap as usize - at);
        // SAFETY:
        // - both ranges are inside the data bytes checked in `new` (`at +
        //   first <= cap`, `len - first <= cap`), and `len <= used <= cap`
        //   was checked by the caller;
        // - the bytes lie in `head..tail`, which the producer does not write
        //   until this consumer moves `head` past them.
        let (a, b) = unsafe {
            (
                std::slice::from_raw_parts(self.data.add(at), first),
                std::slice::from_raw_parts(self.data, len - first),
            )
        };
        out.reserve(len);
        out.extend_from_slice(a);
        out.extend_from_slice(b);
    }

    fn read(&self, pos: u64, dst: &mut [u8]) {
        let at = (pos % self.cap) as usize;
        let first = dst.len().min(self.cap as usize - at);
        // SAFETY:
        // - both ranges are inside the data bytes (as in `write`), and
        //   `dst.len() <= used <= cap` was checked by the caller;
        // - the bytes lie in `head..tail`, which the producer does not write
        //   until this consumer moves `head` past them.
        unsafe {
            std::ptr::copy_nonoverlapping(self.data.add(at), dst.as_mut_ptr(), first);
            std::ptr::copy_nonoverlapping(
                self.data,
                dst.as_mut_ptr().add(first),
                dst.len() - first,
            );
        }
    }
}

/// Waker side of a bell: wakes the sleeper if one announced itself.
#[inline]
pub(crate) fn ring_bell(bell: &AtomicU32) {
    // SeqCst: after the caller's SeqCst publish (see the module comment).
    if bell.load(Ordering::SeqCst) != 0 && bell.swap(0, Ordering::SeqCst) != 0 {
        Futex.wake(bell, u32::MAX);
    }
}

/// Spins for [`SPIN`], then sleeps on `bell` until `ready()` or `deadline`.
pub(crate) fn sleep_until(
    bell: &AtomicU32,
    ready: impl Fn() -> bool,
    deadline: Option<Instant>,
) -> bool {
    let start = Instant::now();
    let mut i = 0u32;
    loop {
        if ready() {
            return true;
        }
        i = i.wrapping_add(1);
        if i % 64 == 0 {
            // Give the core away now and then: with more processes than
            // cores the one we wait for may need it.
            std::thread::yield_now();
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return false;
            }
            if now - start >= SPIN {
                break;
            }
        }
        std::hint::spin_loop();
    }
    sleep_until_slow(bell, ready, deadline)
}

#[cold]
fn sleep_until_slow(bell: &AtomicU32, ready: impl Fn() -> bool, deadline: Option<Instant>) -> bool {
    loop {
        // SeqCst: this store must be visible before `ready()` reads the
        // position (Dekker pair with the publisher's store then bell load).
        bell.store(1, Ordering::SeqCst);
        if ready() {
            return true;
        }
        if Futex.wait(bell, 1, deadline) == crate::sync::wait::Wake::TimedOut && !ready() {
            return false;
        }
        if ready() {
            return true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::{Kind, Placement, Spec, TypeFingerprint};

    fn ring(cap: u64) -> (Ring, Ring) {
        let spec = Spec {
            kind: Kind::Pool,
            ty: TypeFingerprint::none(),
            payload_len: 384 + 128 + cap,
            params: [0; 4],
        };
        let seg = Segment::create(&spec, &Placement::default(), |_| Ok(())).unwrap();
        let a = Ring::new(&seg, 0, 384, 512, cap).unwrap();
        let b = Ring::new(&seg, 0, 384, 512, cap).unwrap();
        (a, b)
    }

    #[test]
    fn smoke_and_wrap() {
        let (tx, rx) = ring(64);
        let mut out = Vec::new();
        assert!(!rx.try_recv(&mut out).unwrap());
        for round in 0..50u8 {
            let msg = [round; 13];
            assert!(tx.try_send(&[&msg[..5], &msg[5..]]).unwrap());
            assert!(tx.try_send(&[&msg[..3]]).unwrap());
            assert!(rx.try_recv(&mut out).unwrap());
            assert_eq!(out, msg);
            assert!(rx.try_recv(&mut out).unwrap());
            assert_eq!(out, [round; 3]);
        }
    }

    #[test]
    fn written_messages_appear_on_publish() {
        let (tx, rx) = ring(64);
        let mut out = Vec::new();
        assert!(tx.try_write(&[b"one"]).unwrap());
        assert!(tx.try_write(&[b"two"]).unwrap());
        assert!(!rx.try_recv(&mut out).unwrap(), "not published yet");
        tx.publish();
        assert!(rx.try_recv(&mut out).unwrap());
        assert_eq!(out, b"one");
        assert!(rx.try_recv(&mut out).unwrap());
        assert_eq!(out, b"two");
        // Room counts unpublished bytes too.
        assert!(tx.try_write(&[&[0; 32]]).unwrap());
        assert!(!tx.try_write(&[&[0; 32]]).unwrap());
    }

    #[test]
    fn reset_forgets_unpublished_messages() {
        let (tx, rx) = ring(64);
        assert!(tx.try_send(&[b"old"]).unwrap());
        tx.reset();
        tx.publish();
        let mut out = Vec::new();
        assert!(!rx.try_recv(&mut out).unwrap(), "a reset ring is empty");
        assert!(tx.try_send(&[b"new"]).unwrap());
        assert!(rx.try_recv(&mut out).unwrap());
        assert_eq!(out, b"new");
    }

    #[test]
    fn capacity_and_limits() {
        let (tx, rx) = ring(64);
        assert!(matches!(
            tx.try_send(&[&[0; 33]]),
            Err(Error::MessageTooLarge { .. })
        ));
        assert!(tx.try_send(&[&[1; 32]]).unwrap());
        assert!(tx.try_send(&[&[2; 24]]).unwrap());
        assert!(!tx.try_send(&[&[3; 1]]).unwrap(), "64 bytes used: full");
        assert!(!tx.wait_space(1, Some(Instant::now())));
        let mut out = Vec::new();
        assert!(rx.try_recv(&mut out).unwrap());
        assert!(tx.wait_space(1, Some(Instant::now())));
    }

    #[test]
    fn corrupt_positions_are_errors() {
        let (tx, rx) = ring(64);
        tx.ctl().tail.store(1000, Ordering::Relaxed);
        let mut out = Vec::new();
        assert!(matches!(rx.try_recv(&mut out), Err(Error::Corrupt { .. })));
        tx.ctl().tail.store(8, Ordering::Relaxed);
        tx.write(0, &u32::MAX.to_le_bytes());
        assert!(matches!(rx.try_recv(&mut out), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn spsc_threads_with_sleep() {
        let (tx, rx) = ring(256);
        let n = 20_000u32;
        let t = std::thread::spawn(move || {
            for i in 0..n {
                let b = i.to_le_bytes();
                while !tx.try_send(&[&b]).unwrap() {
                    assert!(tx.wait_space(4, Some(Instant::now() + Duration::from_secs(10))));
                }
                if i % 5000 == 0 {
                    std::thread::sleep(Duration::from_millis(2)); // make the consumer sleep
                }
            }
        });
        let mut out = Vec::new();
        for i in 0..n {
            while !rx.try_recv(&mut out).unwrap() {
                assert!(
                    rx.wait_data(Some(Instant::now() + Duration::from_secs(10))),
                    "watchdog"
                );
            }
            assert_eq!(out, i.to_le_bytes());
        }
        t.join().unwrap();
    }
}
