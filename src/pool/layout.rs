//! The pool segment (one per pool, anonymous) and the message headers that
//! travel through its rings (`docs/protocols/pool.md`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::chan::bytes::{ByteRing, Messages};
use crate::error::{Error, Result};
use crate::segment::{Kind, Placement, Segment, Spec, TypeFingerprint};
use crate::sync::atomic::AtomicU64;
use crate::sync::wait::WaitWord;

/// Pool header: the parent's doorbell (a [`WaitWord`]), alone on its line.
const HEADER: usize = 128;
/// Per slot: task ring control (384), result ring control (384), status (128).
const SLOT_CTL: usize = 896;
const TASK_CTL: usize = 0;
const RESULT_CTL: usize = 384;
const CURRENT: usize = 768;
/// Most slots (workers) a pool segment may describe.
const MAX_SLOTS: u64 = 4096;
/// Largest ring a pool segment may describe.
const MAX_CAP: u64 = 1 << 30;

/// Bytes of each ring (per direction, per worker). Pages are touched only
/// as the ring cycles; the largest single argument or result is half this.
pub(crate) const RING_CAP: u64 = 2 << 20;

/// Marker type naming the layout in the segment's type fingerprint.
struct PoolLayoutV1;

/// Parent -> worker: a piece of tasks.
pub(crate) const MSG_TASK: u8 = 1;
/// Parent -> worker: finish and exit.
pub(crate) const MSG_STOP: u8 = 2;
/// Worker -> parent: initializer done, ready for work.
pub(crate) const MSG_READY: u8 = 1;
/// Worker -> parent: results of consecutive items of a piece.
pub(crate) const MSG_RESULTS: u8 = 2;
/// Worker -> parent: the initializer failed (message follows).
pub(crate) const MSG_INIT_FAILED: u8 = 3;
/// Worker -> parent: the front piece cannot run (message follows).
pub(crate) const MSG_FATAL: u8 = 4;

/// `TASK` header: kind, seq, count, runner offset, runner hash, format.
pub(crate) const TASK_HDR: usize = 1 + 4 + 4 + 8 + 8 + 1;
/// `RESULTS` header: kind, seq, first, count, format.
pub(crate) const RESULTS_HDR: usize = 1 + 4 + 4 + 4 + 1;
/// Body format: postcard, back to back (results: `Outcome<R>` each).
pub(crate) const FMT_POSTCARD: u8 = 0;
/// Body format: 8 raw bytes per value (`fixed.rs`; results: all `Ok`).
pub(crate) const FMT_FIXED: u8 = 1;

/// A `TASK` message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TaskHdr {
    pub seq: u32,
    pub count: u32,
    pub runner: u64,
    pub hash: u64,
    pub fixed: bool,
}

impl TaskHdr {
    pub(crate) fn encode(&self) -> [u8; TASK_HDR] {
        let mut b = [0u8; TASK_HDR];
        b[0] = MSG_TASK;
        b[1..5].copy_from_slice(&self.seq.to_le_bytes());
        b[5..9].copy_from_slice(&self.count.to_le_bytes());
        b[9..17].copy_from_slice(&self.runner.to_le_bytes());
        b[17..25].copy_from_slice(&self.hash.to_le_bytes());
        b[25] = if self.fixed { FMT_FIXED } else { FMT_POSTCARD };
        b
    }

    /// Splits a `TASK` message into header and argument bytes.
    pub(crate) fn decode(msg: &[u8]) -> Option<(TaskHdr, &[u8])> {
        if msg.len() < TASK_HDR || msg[0] != MSG_TASK {
            return None;
        }
        let h = TaskHdr {
            seq: u32::from_le_bytes(msg[1..5].try_into().ok()?),
            count: u32::from_le_bytes(msg[5..9].try_into().ok()?),
            runner: u64::from_le_bytes(msg[9..17].try_into().ok()?),
            hash: u64::from_le_bytes(msg[17..25].try_into().ok()?),
            fixed: match msg[25] {
                FMT_POSTCARD => false,
                FMT_FIXED => true,
                _ => return None,
            },
        };
        Some((h, &msg[TASK_HDR..]))
    }
}

/// A `RESULTS` message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ResultsHdr {
    pub seq: u32,
    pub first: u32,
    pub count: u32,
    pub fixed: bool,
}

impl ResultsHdr {
    pub(crate) fn encode(&self) -> [u8; RESULTS_HDR] {
        let mut b = [0u8; RESULTS_HDR];
        b[0] = MSG_RESULTS;
        b[1..5].copy_from_slice(&self.seq.to_le_bytes());
        b[5..9].copy_from_slice(&self.first.to_le_bytes());
        b[9..13].copy_from_slice(&self.count.to_le_bytes());
        b[13] = if self.fixed { FMT_FIXED } else { FMT_POSTCARD };
        b
    }

    /// Reads the header of a `RESULTS` message (kind already checked).
    pub(crate) fn decode(msg: &[u8]) -> Option<ResultsHdr> {
        if msg.len() < RESULTS_HDR {
            return None;
        }
        Some(ResultsHdr {
            seq: u32::from_le_bytes(msg[1..5].try_into().ok()?),
            first: u32::from_le_bytes(msg[5..9].try_into().ok()?),
            count: u32::from_le_bytes(msg[9..13].try_into().ok()?),
            fixed: match msg[13] {
                FMT_POSTCARD => false,
                FMT_FIXED => true,
                _ => return None,
            },
        })
    }
}

/// Handle to the pool segment.
#[derive(Clone)]
pub(crate) struct PoolSeg {
    seg: Segment,
    slots: u32,
    cap: u64,
}

impl PoolSeg {
    /// A new anonymous pool segment for `slots` workers.
    ///
    /// # Errors
    /// OS errors creating or mapping the memfd.
    pub(crate) fn create(slots: u32, cap: u64) -> Result<PoolSeg> {
        let spec = Spec {
            kind: Kind::Pool,
            ty: TypeFingerprint::of::<PoolLayoutV1>(),
            payload_len: payload_len(slots as u64, cap),
            params: [slots as u64, cap, 0, 0],
        };
        let seg = Segment::create(&spec, &Placement::default(), |_| Ok(()))?;
        Ok(PoolSeg { seg, slots, cap })
    }

    fn from_segment(seg: Segment) -> Result<PoolSeg> {
        let (slots, cap) = (seg.param(0), seg.param(1));
        let ok = (1..=MAX_SLOTS).contains(&slots)
            && (64..=MAX_CAP).contains(&cap)
            && cap % 8 == 0
            && payload_len(slots, cap) <= seg.payload_len() as u64;
        if !ok {
            return Err(Error::Corrupt {
                segment: seg.label(),
                what: "pool parameters".into(),
                expected: format!("1..={MAX_SLOTS} slots of rings 64..={MAX_CAP} bytes that fit"),
                found: format!(
                    "{slots} slots, rings of {cap} bytes, {} payload bytes",
                    seg.payload_len()
                ),
            });
        }
        Ok(PoolSeg {
            seg,
            slots: slots as u32,
            cap,
        })
    }

    /// The segment (for its counters).
    pub(crate) fn segment(&self) -> &Segment {
        &self.seg
    }

    fn slot_off(&self, slot: u32) -> usize {
        HEADER + slot as usize * (SLOT_CTL + 2 * self.cap as usize)
    }

    fn check_slot(&self, slot: u32) -> Result<()> {
        if slot >= self.slots {
            return Err(Error::invalid(
                "pool slot",
                format!("below {}", self.slots),
                slot,
            ));
        }
        Ok(())
    }

    /// The parent's doorbell (the bell of every result ring).
    pub(crate) fn doorbell(&self) -> &WaitWord {
        self.seg
            .view::<WaitWord>(0)
            .expect("header checked at create/open")
    }

    /// Parent -> worker ring of `slot` (its reader sleeps on the ring's own
    /// bell).
    pub(crate) fn task_ring(&self, slot: u32) -> Result<Messages> {
        self.check_slot(slot)?;
        let o = self.slot_off(slot);
        let ring = ByteRing::in_segment(&self.seg, o + TASK_CTL, None, o + SLOT_CTL, self.cap)?;
        Ok(Messages::new(ring, self.seg.label()))
    }

    /// Worker -> parent ring of `slot` (its reader, the parent, sleeps on
    /// the doorbell).
    pub(crate) fn result_ring(&self, slot: u32) -> Result<Messages> {
        self.check_slot(slot)?;
        let o = self.slot_off(slot);
        let data = o + SLOT_CTL + self.cap as usize;
        let ring = ByteRing::in_segment(&self.seg, o + RESULT_CTL, Some(0), data, self.cap)?;
        Ok(Messages::new(ring, self.seg.label()))
    }

    /// The item the worker of `slot` runs: `seq << 32 | (index + 1)`, 0 = none.
    pub(crate) fn current(&self, slot: u32) -> Result<&AtomicU64> {
        self.check_slot(slot)?;
        self.seg.view::<AtomicU64>(self.slot_off(slot) + CURRENT)
    }
}

fn payload_len(slots: u64, cap: u64) -> u64 {
    HEADER as u64 + slots * (SLOT_CTL as u64 + 2 * cap)
}

impl Serialize for PoolSeg {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.seg.serialize_handle(s)
    }
}

impl<'de> Deserialize<'de> for PoolSeg {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let seg =
            Segment::deserialize_handle(d, Kind::Pool, &TypeFingerprint::of::<PoolLayoutV1>())?;
        PoolSeg::from_segment(seg).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_roundtrip() {
        let t = TaskHdr {
            seq: 7,
            count: 3,
            runner: 0xdead_beef_0000_0001,
            hash: 42,
            fixed: true,
        };
        let mut msg = t.encode().to_vec();
        msg.extend_from_slice(b"args");
        assert_eq!(TaskHdr::decode(&msg), Some((t, &b"args"[..])));
        assert_eq!(TaskHdr::decode(&msg[..10]), None);
        let r = ResultsHdr {
            seq: 1,
            first: 2,
            count: 3,
            fixed: false,
        };
        assert_eq!(ResultsHdr::decode(&r.encode()), Some(r));
    }

    #[test]
    fn slots_are_separate() {
        let p = PoolSeg::create(2, 64).unwrap();
        let (t0, t1) = (p.task_ring(0).unwrap(), p.task_ring(1).unwrap());
        let r1 = p.result_ring(1).unwrap();
        assert!(t0.try_send(&[b"zero"]).unwrap());
        assert!(r1.try_send(&[b"one"]).unwrap());
        let mut out = Vec::new();
        assert!(!t1.try_recv(&mut out).unwrap());
        assert!(t0.try_recv(&mut out).unwrap());
        assert_eq!(out, b"zero");
        assert!(r1.try_recv(&mut out).unwrap());
        assert_eq!(out, b"one");
        assert!(p.task_ring(2).is_err());
        assert!(PoolSeg::from_segment(p.seg.clone()).is_ok());
    }
}
