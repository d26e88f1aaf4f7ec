//! Length-prefixed messages over a [`ByteRing`]: the pool's per-worker task
//! and result channels (`docs/protocols/pool.md`).
//!
//! A message is a `u32` length and its bytes. A writer may write several
//! messages and publish them with one store (batching saves a shared store
//! per message and the reader a cache miss). Each end keeps process-local
//! copies of the other end's position and re-reads the shared word only when
//! its copy says "full" / "empty", so the ends do not pull each other's
//! cache line on every message.

use std::sync::atomic::{AtomicU64 as LocalU64, Ordering::Relaxed as Local};
use std::time::Instant;

use super::ByteRing;
use crate::error::{Error, Result};
use crate::sync::park::Futex;

/// Length prefix of a message.
const LEN: u64 = 4;

/// One end's view of a message ring.
pub(crate) struct Messages {
    pub(super) ring: ByteRing,
    /// The writer's last view of `head`, the reader's of `tail`.
    seen_head: LocalU64,
    seen_tail: LocalU64,
    /// The writer's write position: `tail` plus what was written and not
    /// published yet.
    written: LocalU64,
    /// Names the segment in errors.
    label: String,
}

impl Messages {
    /// Messages over `ring`; `label` names its segment in errors.
    pub(crate) fn new(ring: ByteRing, label: String) -> Messages {
        let tail = ring.tail();
        Messages {
            ring,
            seen_head: LocalU64::new(0),
            seen_tail: LocalU64::new(0),
            written: LocalU64::new(tail),
            label,
        }
    }

    /// The largest message body the ring takes.
    pub(crate) fn max_message(&self) -> usize {
        (self.ring.cap() / 2) as usize
    }

    /// Writer: appends one message made of `parts` and publishes it (and
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

    /// Writer: appends one message made of `parts` without publishing it:
    /// the reader sees it at the next [`publish`](Self::publish). `Ok(false)`
    /// if there is no room now (publish, then wait).
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
        let need = LEN + total as u64;
        let tail = self.written.load(Local);
        let cap = self.ring.cap();
        // An older `head` than the shared one only understates the room.
        let head = self.seen_head.load(Local);
        if cap - tail.wrapping_sub(head).min(cap) < need {
            let room = self
                .ring
                .room(tail)
                .map_err(|b| b.into_error(self.label.clone()))?;
            self.seen_head
                .store(tail.wrapping_add(room).wrapping_sub(cap), Local);
            if room < need {
                return Ok(false);
            }
        }
        let mut pos = tail;
        self.ring.write(pos, &(total as u32).to_le_bytes());
        pos += LEN;
        for p in parts {
            self.ring.write(pos, p);
            pos += p.len() as u64;
        }
        debug_assert_eq!(pos - tail, need, "a message is its prefix and its parts");
        self.written.store(pos, Local);
        Ok(true)
    }

    /// Writer: makes every message written so far visible (and wakes a
    /// sleeping reader). Cheap when there is nothing new.
    pub(crate) fn publish(&self) {
        let pos = self.written.load(Local);
        if self.ring.tail() != pos {
            self.ring.publish(pos, &Futex);
        }
    }

    /// Reader: moves the next message into `out`; `Ok(false)` if empty.
    ///
    /// # Errors
    /// `Corrupt` if the positions or the length prefix are impossible.
    pub(crate) fn try_recv(&self, out: &mut Vec<u8>) -> Result<bool> {
        let head = self.ring.head();
        let mut used = self.seen_tail.load(Local).wrapping_sub(head);
        if used == 0 || used > self.ring.cap() {
            used = self
                .ring
                .available(head)
                .map_err(|b| b.into_error(self.label.clone()))?;
            self.seen_tail.store(head.wrapping_add(used), Local);
            if used == 0 {
                return Ok(false);
            }
        }
        if used < LEN {
            return Err(self.corrupt("message length", "at least 4 bytes queued", used));
        }
        let mut len = [0u8; 4];
        self.ring.read(head, &mut len);
        let len = u64::from(u32::from_le_bytes(len));
        if LEN + len > used {
            return Err(self.corrupt("message length", format!("at most {}", used - LEN), len));
        }
        out.clear();
        self.ring.read_append(head + LEN, len as usize, out);
        self.ring.consume(head + LEN + len, &Futex);
        Ok(true)
    }

    /// Whether a message is waiting (reader side; a hint).
    pub(crate) fn has_data(&self) -> bool {
        self.ring.has_data()
    }

    /// Reader: waits until a message is there or `deadline` passes.
    /// Returns whether data is there.
    pub(crate) fn wait_data(&self, deadline: Option<Instant>) -> bool {
        self.ring.wait_data(self.ring.head(), &Futex, deadline)
    }

    /// Writer: waits until a message body of `len` bytes fits or `deadline`
    /// passes. Returns whether it fits.
    pub(crate) fn wait_space(&self, len: usize, deadline: Option<Instant>) -> bool {
        let w = self.written.load(Local);
        self.ring.wait_space(w, LEN + len as u64, &Futex, deadline)
    }

    /// Empties the ring and forgets unpublished messages. Only when neither
    /// end can be in use (the other process is dead and reaped).
    pub(crate) fn reset(&self) {
        self.ring.reset();
        self.seen_head.store(0, Local);
        self.seen_tail.store(0, Local);
        self.written.store(0, Local);
    }

    #[cold]
    fn corrupt(&self, what: &str, expected: impl ToString, found: impl ToString) -> Error {
        Error::Corrupt {
            segment: self.label.clone(),
            what: what.into(),
            expected: expected.to_string(),
            found: found.to_string(),
        }
    }
}
