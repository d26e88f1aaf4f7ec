//! Where everything of a queue or pipe segment lives, and its validation.
//!
//! ```text
//! payload offset  what
//!      0          Control                                        2048 bytes
//!                   0  ring control: tail | head | wait words     384
//!                 384  bulk stream: byte ring control             384
//!                 768  bulk stream: locks and message cursors     128
//!                 896  the front end's own words (pipe end tables,
//!                      a joinable queue's task count)            1152
//!   2048          cap slots of (16-byte Slot header + data_size bytes)
//!   2048+cap*stride  bulk stream bytes (bulk_len, may be 0)
//! ```
//! Header params: `[cap, data_size, bulk_len, max_message]`.

use crate::chan::bytes::BytesCtl;
use crate::chan::ring::{RingCtrl, Slot, MAX_CAP};
use crate::error::{Error, Result};
use crate::segment::{Segment, ShmSafe};
use crate::sync::atomic::{AtomicU64, Pad};
use crate::sync::robust::RobustState;

/// Bytes of control before the first slot.
pub(crate) const CONTROL_LEN: usize = 2048;
/// Bytes of a slot header.
pub(crate) const SLOT_HEADER: usize = 16;
/// Smallest slot data size (a bulk descriptor is 16 bytes).
pub(crate) const MIN_DATA: u64 = 16;
/// Largest slot data size.
pub(crate) const MAX_DATA: u64 = 1 << 20;
/// Largest bulk stream area.
pub(crate) const MAX_BULK: u64 = 1 << 30;
/// Largest message the bulk stream carries when no limit is configured.
pub(crate) const MAX_MESSAGE: u64 = 1 << 40;
/// Payload offset of the front end's words.
pub(crate) const FRONT_OFFSET: usize = 896;
/// Bytes of the front end's words.
pub(crate) const FRONT_LEN: usize = CONTROL_LEN - FRONT_OFFSET;

/// The bulk stream's locks and the cursor of the message being written
/// (see `docs/protocols/queue.md`, "Bulk stream").
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct BulkLocks {
    /// The writer's lock (robust: a dead holder is taken over).
    pub(crate) put_lock: RobustState,
    /// The reader's lock.
    pub(crate) get_lock: RobustState,
    /// End (incl. trailer) of the message the put_lock holder is writing.
    pub(crate) w_end: AtomicU64,
    /// Start of the message the put_lock holder is writing.
    pub(crate) w_start: AtomicU64,
    /// `start + 1` of the last message aborted by its writer's death (0: none).
    pub(crate) aborted: AtomicU64,
}

/// The bulk stream: a byte ring and its locks.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct BulkCtrl {
    /// Positions and wait words of the stream bytes.
    pub(crate) bytes: BytesCtl,
    /// Who writes and who reads, and the message being written.
    pub(crate) locks: Pad<BulkLocks>,
}

/// Everything before the slots.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Control {
    /// Ring control: tail, head, wait words.
    pub(crate) ring: RingCtrl,
    /// Bulk stream control.
    pub(crate) bulk: BulkCtrl,
    /// The front end's words: it views its own `#[repr(C)]` struct of
    /// atomics here (at most [`FRONT_LEN`] bytes).
    front: [AtomicU64; FRONT_LEN / 8],
}

const _: () = assert!(std::mem::size_of::<RingCtrl>() == 384);
const _: () = assert!(std::mem::size_of::<BulkCtrl>() == 512);
const _: () = assert!(std::mem::offset_of!(Control, front) == FRONT_OFFSET);
const _: () = assert!(std::mem::size_of::<Control>() == CONTROL_LEN);
const _: () = assert!(std::mem::size_of::<Slot>() == SLOT_HEADER);

// SAFETY: Control is #[repr(C)], made only of fixed-width atomics (every bit
// pattern valid, shared mutation atomic-only), no pointers.
unsafe impl ShmSafe for Control {}
// SAFETY: as for Control.
unsafe impl ShmSafe for Slot {}

/// Validated geometry of a ring segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    /// Slots.
    pub(crate) cap: u64,
    /// Data bytes per slot (multiple of 8).
    pub(crate) data_size: u64,
    /// Bulk stream bytes (0: no messages larger than a slot).
    pub(crate) bulk_len: u64,
    /// Hard message size limit (bytes).
    pub(crate) max_message: u64,
}

impl Geometry {
    /// Bytes from one slot to the next.
    pub(crate) fn stride(&self) -> u64 {
        SLOT_HEADER as u64 + self.data_size
    }

    /// Payload bytes a segment of this geometry has.
    pub(crate) fn payload_len(&self) -> u64 {
        CONTROL_LEN as u64 + self.cap * self.stride() + self.bulk_len
    }

    /// Offset of the bulk stream.
    pub(crate) fn bulk_offset(&self) -> u64 {
        CONTROL_LEN as u64 + self.cap * self.stride()
    }

    /// The header params.
    pub(crate) fn params(&self) -> [u64; 4] {
        [self.cap, self.data_size, self.bulk_len, self.max_message]
    }

    /// Checks a geometry asked for by a caller.
    pub(crate) fn check_new(&self) -> Result<()> {
        if self.cap == 0 || self.cap > MAX_CAP {
            return Err(Error::invalid(
                "maxsize",
                format!("1..={MAX_CAP} items"),
                self.cap,
            ));
        }
        if !(MIN_DATA..=MAX_DATA).contains(&self.data_size) || self.data_size % 8 != 0 {
            return Err(Error::invalid(
                "slot size",
                format!("a multiple of 8 in {MIN_DATA}..={MAX_DATA} bytes"),
                self.data_size,
            ));
        }
        if self.bulk_len > MAX_BULK
            || self.bulk_len % 8 != 0
            || (self.bulk_len != 0 && self.bulk_len < 64)
        {
            return Err(Error::invalid(
                "bulk size",
                format!("0 or a multiple of 8 in 64..={MAX_BULK} bytes"),
                self.bulk_len,
            ));
        }
        if self.max_message == 0 || self.max_message > MAX_MESSAGE {
            return Err(Error::invalid(
                "max message size",
                format!("1..={MAX_MESSAGE} bytes"),
                self.max_message,
            ));
        }
        Ok(())
    }

    /// Reads and validates the geometry of an opened segment.
    pub(crate) fn of(seg: &Segment) -> Result<Geometry> {
        let g = Geometry {
            cap: seg.param(0),
            data_size: seg.param(1),
            bulk_len: seg.param(2),
            max_message: seg.param(3),
        };
        g.check_new().map_err(|e| Error::Corrupt {
            segment: seg.label(),
            what: "ring parameters".into(),
            expected: "valid capacity, slot, bulk and message sizes".into(),
            found: e.to_string(),
        })?;
        let need = g.payload_len();
        if need != seg.payload_len() as u64 {
            return Err(Error::Corrupt {
                segment: seg.label(),
                what: "payload length".into(),
                expected: format!("{need} bytes for {g:?}"),
                found: format!("{} bytes", seg.payload_len()),
            });
        }
        Ok(g)
    }
}
