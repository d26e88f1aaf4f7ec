//! The byte ring: one writer and one reader at a time move bytes through a
//! ring in shared memory. The one carrier of variable-length data: the bulk
//! stream of queues and pipes (`bulk.rs`, messages larger than a slot) and,
//! through [`Messages`], the pool's task and result channels.
//! Protocol, state table and crash cases: `docs/protocols/bytes.md`.
//!
//! `head` and `tail` count bytes since the ring was (re)set. The writer owns
//! `tail` and the bytes outside `head..tail`; the reader owns `head` and the
//! bytes inside it. Publishing is one store of `tail`, freeing one store of
//! `head`, so a writer that dies mid-write publishes nothing and a reader
//! that dies mid-read frees nothing: the ring stays consistent, and whoever
//! takes over the dead party's role (`bulk.rs`: the next lock holder; the
//! pool: a `reset` before the next worker) knows exactly what was done.
//!
//! | words               | invariant (checked on every load: a peer may scribble) |
//! |---------------------|--------------------------------------------------|
//! | `head <= tail`      | `tail - head <= cap` (wrapping difference)       |
//! | bytes `head..tail`  | written and published; only the reader reads them |
//! | bytes `tail..head+cap` | free; only the writer writes them             |
//!
//! Sleeping: the reader waits on the `data` word (a ring of its own, or a bell
//! shared by several rings, as the pool's result rings share the parent's
//! doorbell), the writer on `space`; both are [`WaitWord`]s used as
//! sequences, with the policy of `sync/wait.rs`.

use std::ptr::NonNull;
use std::time::Instant;

use crate::error::Error;
#[cfg(not(loom))]
use crate::error::Result;
use crate::sync::atomic::{AtomicU64, Ordering, Pad};
use crate::sync::park::Park;
use crate::sync::wait::{wait_until, WaitWord};

/// The shared control words of a byte ring, each hot word on its own line.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct BytesCtl {
    /// Bytes consumed (the reader's; monotonic until a reset).
    head: Pad<AtomicU64>,
    /// Bytes published (the writer's; monotonic until a reset).
    tail: Pad<AtomicU64>,
    /// Sleepers: readers waiting for bytes (unless the ring rings another
    /// bell) and writers waiting for room.
    waits: Pad<Waits>,
}

#[repr(C)]
#[derive(Debug, Default)]
struct Waits {
    data: WaitWord,
    space: WaitWord,
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<BytesCtl>() == 384);

// SAFETY: only fixed-width std atomics (outside loom): every bit pattern is
// valid, there are no pointers, and shared mutation is atomic-only.
#[cfg(not(loom))]
unsafe impl crate::segment::ShmSafe for BytesCtl {}

/// A byte ring's control words, its reader's bell and its bytes.
#[derive(Clone)]
pub(crate) struct ByteRing {
    ctl: NonNull<BytesCtl>,
    bell: NonNull<WaitWord>,
    data: NonNull<u8>,
    cap: u64,
    /// Keeps the memory mapped for as long as the view lives.
    #[cfg(not(loom))]
    _seg: crate::segment::Segment,
}

// SAFETY: the pointers target memory kept alive by `_seg` (or, under loom, by
// the caller of `from_raw`); all shared access is atomics, or bytes accessed
// under the protocol above, so any thread may hold and use the view.
unsafe impl Send for ByteRing {}
// SAFETY: as for Send.
unsafe impl Sync for ByteRing {}

impl std::fmt::Debug for ByteRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByteRing").field("cap", &self.cap).finish()
    }
}

/// A protocol violation found in a byte ring's words (a peer scribbled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadRing {
    /// Which word.
    pub what: &'static str,
    /// What the protocol allows.
    pub expected: String,
    /// What was found.
    pub found: String,
}

impl ByteRing {
    /// The ring whose control is at payload offset `ctl` of `seg`, bytes at
    /// `data..data + cap`, reader's bell at `bell` (`None`: the ring's own).
    ///
    /// # Errors
    /// `Corrupt` if a range falls outside the payload or is misaligned.
    #[cfg(not(loom))]
    pub(crate) fn in_segment(
        seg: &crate::segment::Segment,
        ctl: usize,
        bell: Option<usize>,
        data: usize,
        cap: u64,
    ) -> Result<ByteRing> {
        let c = seg.view::<BytesCtl>(ctl)?;
        let b = match bell {
            Some(off) => seg.view::<WaitWord>(off)?,
            None => &c.waits.0.data,
        };
        let bytes = seg.bytes_at(data, cap as usize)?;
        Ok(ByteRing {
            ctl: NonNull::from(c),
            bell: NonNull::from(b),
            data: bytes,
            cap,
            _seg: seg.clone(),
        })
    }

    /// A ring over memory the caller owns (loom models).
    ///
    /// # Safety
    /// - `ctl` and `bell` point to live, initialised values and `data` to
    ///   `cap > 0` bytes, all valid for as long as the ring is used;
    /// - the bytes are accessed by nobody but rings over the same memory.
    #[cfg(loom)]
    pub(crate) unsafe fn from_raw(
        ctl: &BytesCtl,
        bell: Option<&WaitWord>,
        data: *mut u8,
        cap: u64,
    ) -> ByteRing {
        ByteRing {
            ctl: NonNull::from(ctl),
            bell: NonNull::from(bell.unwrap_or(&ctl.waits.0.data)),
            data: NonNull::new(data).expect("non-null"),
            cap,
        }
    }

    #[inline]
    fn ctl(&self) -> &BytesCtl {
        // SAFETY: checked in bounds and aligned at construction; the memory
        // lives as long as `self` (`_seg`, or `from_raw`'s contract).
        unsafe { self.ctl.as_ref() }
    }

    #[inline]
    fn bell(&self) -> &WaitWord {
        // SAFETY: as in `ctl`.
        unsafe { self.bell.as_ref() }
    }

    /// Bytes the ring holds.
    #[inline]
    pub(crate) fn cap(&self) -> u64 {
        self.cap
    }

    // ---- writer side -------------------------------------------------

    /// Writer: its own published position (`tail`).
    #[inline]
    pub(crate) fn tail(&self) -> u64 {
        // Relaxed: only the writer stores `tail` (a new writer reads it after
        // taking over the role, which orders it: bulk-lock, or a reset).
        self.ctl().tail.0.load(Ordering::Relaxed)
    }

    /// Writer: the free bytes after position `w` (the writer's write
    /// position, published or not).
    ///
    /// # Errors
    /// [`BadRing`] if `head` is not within `cap` bytes behind `w`.
    #[inline]
    pub(crate) fn room(&self, w: u64) -> std::result::Result<u64, BadRing> {
        // SYNC POINT: bytes-space. Acquire: the reader has finished copying
        // the bytes before `head` (its Release), so we may overwrite them.
        let head = self.ctl().head.0.load(Ordering::Acquire);
        let used = w.wrapping_sub(head);
        if used > self.cap {
            return Err(self.bad("head", head, w));
        }
        Ok(self.cap - used)
    }

    /// Writer: copies `src` to position `pos` (wrapping at the end). The
    /// caller checked with [`room`](Self::room) that the bytes are free.
    #[inline]
    pub(crate) fn write(&self, pos: u64, src: &[u8]) {
        debug_assert!(src.len() as u64 <= self.cap);
        let at = (pos % self.cap) as usize;
        let first = src.len().min(self.cap as usize - at);
        let base = self.data.as_ptr();
        // SAFETY:
        // - `at + first <= cap` and `src.len() - first <= cap - first`, so
        //   both copies stay inside the `cap` data bytes checked at
        //   construction; `src` is a distinct buffer;
        // - by the protocol only the writer touches bytes outside
        //   `head..tail`, and the caller checked there is room for them.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), base.add(at), first);
            std::ptr::copy_nonoverlapping(src.as_ptr().add(first), base, src.len() - first);
        }
    }

    /// Writer: publishes every byte before `tail` and wakes a sleeping
    /// reader.
    #[inline]
    pub(crate) fn publish(&self, tail: u64, park: &impl Park) {
        debug_assert!(
            tail.wrapping_sub(self.tail()) <= self.cap,
            "the writer's tail only moves forward, by at most the ring"
        );
        // SYNC POINT: bytes-data. Release publishes the bytes; SeqCst is the
        // waker's change of the dekker protocol (sync/wait.rs) with the
        // reader's bell.
        self.ctl().tail.0.store(tail, Ordering::SeqCst);
        self.bell().notify(park, u32::MAX);
    }

    /// Writer: waits until `need` bytes are free after `w`, or `deadline`.
    /// Returns whether they are (a corrupt `head` counts as "yes": the
    /// caller's next `room` reports it).
    pub(crate) fn wait_space(
        &self,
        w: u64,
        need: u64,
        park: &impl Park,
        deadline: Option<Instant>,
    ) -> bool {
        wait_until(&self.ctl().waits.0.space, park, deadline, || {
            self.room(w).map_or(true, |free| free >= need)
        })
    }

    // ---- reader side -------------------------------------------------

    /// Reader: its own position (`head`).
    #[inline]
    pub(crate) fn head(&self) -> u64 {
        // Relaxed: only the reader stores `head` (as `tail` for the writer).
        self.ctl().head.0.load(Ordering::Relaxed)
    }

    /// Reader: the published bytes after position `r`.
    ///
    /// # Errors
    /// [`BadRing`] if `tail` is not within `cap` bytes ahead of `r`.
    #[inline]
    pub(crate) fn available(&self, r: u64) -> std::result::Result<u64, BadRing> {
        // SYNC POINT: bytes-data. Acquire: the bytes before `tail` are written.
        let tail = self.ctl().tail.0.load(Ordering::Acquire);
        let avail = tail.wrapping_sub(r);
        if avail > self.cap {
            return Err(self.bad("tail", tail, r));
        }
        Ok(avail)
    }

    /// Reader: copies the bytes at `pos` into `dst` (wrapping at the end).
    /// The caller checked with [`available`](Self::available) that they
    /// are published.
    #[inline]
    pub(crate) fn read(&self, pos: u64, dst: &mut [u8]) {
        let (a, b) = self.published(pos, dst.len());
        dst[..a.len()].copy_from_slice(a);
        dst[a.len()..].copy_from_slice(b);
    }

    /// Reader: appends the `len` bytes at `pos` to `out` (no zero-fill).
    #[inline]
    pub(crate) fn read_append(&self, pos: u64, len: usize, out: &mut Vec<u8>) {
        let (a, b) = self.published(pos, len);
        out.reserve(len);
        out.extend_from_slice(a);
        out.extend_from_slice(b);
    }

    /// The `len` published bytes at `pos` as (at most) two slices.
    #[inline]
    fn published(&self, pos: u64, len: usize) -> (&[u8], &[u8]) {
        debug_assert!(len as u64 <= self.cap);
        let len = len.min(self.cap as usize);
        let at = (pos % self.cap) as usize;
        let first = len.min(self.cap as usize - at);
        let base = self.data.as_ptr();
        // SAFETY:
        // - both ranges are inside the `cap` data bytes (`at + first <= cap`,
        //   `len - first <= cap`);
        // - the caller checked the bytes lie in `head..tail`, which the writer
        //   does not write until the reader moves `head` past them; a
        //   scribbling peer can change their values, never their bounds.
        unsafe {
            (
                std::slice::from_raw_parts(base.add(at), first),
                std::slice::from_raw_parts(base, len - first),
            )
        }
    }

    /// Reader: frees every byte before `head` and wakes a sleeping writer.
    #[inline]
    pub(crate) fn consume(&self, head: u64, park: &impl Park) {
        debug_assert!(
            head.wrapping_sub(self.head()) <= self.cap,
            "the reader's head only moves forward, by at most the ring"
        );
        // SYNC POINT: bytes-space. Release: our copies are done before the
        // writer reuses the bytes; SeqCst: the waker's change of the dekker
        // protocol with the writer's `space` word.
        self.ctl().head.0.store(head, Ordering::SeqCst);
        self.ctl().waits.0.space.notify(park, u32::MAX);
    }

    /// Reader: waits until bytes after `r` are published, or `deadline`.
    /// Returns whether there are (a corrupt `tail` counts as "yes").
    pub(crate) fn wait_data(&self, r: u64, park: &impl Park, deadline: Option<Instant>) -> bool {
        wait_until(self.bell(), park, deadline, || {
            self.available(r).map_or(true, |n| n > 0)
        })
    }

    /// Whether bytes are waiting (a hint for a reader deciding whether to
    /// look: `available` does the Acquire).
    #[inline]
    pub(crate) fn has_data(&self) -> bool {
        let c = self.ctl();
        // Relaxed: a hint.
        c.tail.0.load(Ordering::Relaxed) != c.head.0.load(Ordering::Relaxed)
    }

    // ---- taking over -------------------------------------------------

    /// Moves both positions to `pos` (the caller holds both roles: the
    /// party it replaces is dead, or gave up), discarding what was between,
    /// and wakes a writer waiting for room.
    pub(crate) fn skip_to(&self, pos: u64, park: &impl Park) {
        // Relaxed: published by the SeqCst store of `head` below and by the
        // role hand-over (a lock release) that follows.
        self.ctl().tail.0.store(pos, Ordering::Relaxed);
        // SYNC POINT: bytes-space, as in `consume` (the jump may be longer
        // than the ring: a dead writer's whole message).
        self.ctl().head.0.store(pos, Ordering::SeqCst);
        self.ctl().waits.0.space.notify(park, u32::MAX);
    }

    /// Stores `tail` and `head` as a scribbling peer would (tests).
    #[cfg(test)]
    pub(crate) fn scribble(&self, head: u64, tail: u64) {
        // Relaxed: a test's single thread.
        self.ctl().head.0.store(head, Ordering::Relaxed);
        self.ctl().tail.0.store(tail, Ordering::Relaxed);
    }

    /// Empties the ring. Only when neither end can be in use (the other
    /// process is dead and reaped); the next user is launched after this,
    /// and the launch orders these stores.
    pub(crate) fn reset(&self) {
        let c = self.ctl();
        // Relaxed: see above.
        c.head.0.store(0, Ordering::Relaxed);
        c.tail.0.store(0, Ordering::Relaxed);
        c.waits.0.data.reset();
        c.waits.0.space.reset();
    }

    #[cold]
    fn bad(&self, which: &'static str, found: u64, mine: u64) -> BadRing {
        BadRing {
            what: which,
            expected: format!(
                "{which} within {} bytes of the {}'s position {mine}",
                self.cap,
                if which == "head" { "writer" } else { "reader" }
            ),
            found: found.to_string(),
        }
    }
}

impl BadRing {
    /// As an error naming the segment `label`.
    pub(crate) fn into_error(self, label: String) -> Error {
        Error::Corrupt {
            segment: label,
            what: format!("byte ring {}", self.what),
            expected: self.expected,
            found: self.found,
        }
    }
}

#[cfg(not(loom))]
mod messages;
#[cfg(not(loom))]
pub(crate) use messages::Messages;

#[cfg(all(test, loom))]
mod loom_tests;

#[cfg(all(test, not(loom)))]
mod tests;
