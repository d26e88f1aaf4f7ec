//! Where everything of a queue or pipe segment lives, and its validation.
//!
//! ```text
//! payload offset  what
//!      0          Control: ring control (tail | head | sync words), bulk
//!                 control, two end tables (pipes)             1024 bytes
//!   1024          cap slots of (16-byte Slot header + data_size bytes)
//!   1024+cap*stride  bulk stream bytes (bulk_len, may be 0)
//! ```
//! Header params: `[cap, data_size, bulk_len, max_message]`.

use crate::error::{Error, Result};
use crate::queue::ring::{Pad, RingCtrl, Slot, MAX_CAP};
use crate::segment::{Segment, ShmSafe};
use std::sync::atomic::{AtomicU32, AtomicU64};

/// Bytes of control before the first slot.
pub const CONTROL_LEN: usize = 1024;
/// Bytes of a slot header.
pub const SLOT_HEADER: usize = 16;
/// Smallest slot data size (a bulk descriptor is 16 bytes).
pub const MIN_DATA: u64 = 16;
/// Largest slot data size.
pub const MAX_DATA: u64 = 1 << 20;
/// Largest bulk stream area.
pub const MAX_BULK: u64 = 1 << 30;
/// Largest message the bulk stream carries when no limit is configured.
pub const MAX_MESSAGE: u64 = 1 << 40;
/// Entries per end table.
pub const END_ENTRIES: usize = 15;

/// Control words of the bulk stream (see `docs/protocols/queue.md`).
#[repr(C)]
#[derive(Debug, Default)]
pub struct BulkCtrl {
    /// Writer lock: `tid << 32 | start_lo` of the holder, 0 when free.
    pub put_lock: AtomicU64,
    /// Reader lock, same encoding.
    pub get_lock: AtomicU64,
    /// Bytes written and published (monotonic).
    pub w_pos: AtomicU64,
    /// Bytes consumed (monotonic).
    pub r_pos: AtomicU64,
    /// End (incl. trailer) of the message the put_lock holder is writing.
    pub w_end: AtomicU64,
    /// Start of the message the put_lock holder is writing.
    pub w_start: AtomicU64,
    /// `start + 1` of the last message aborted by its writer's death (0: none).
    pub aborted: AtomicU64,
    /// Futex: bumped when `w_pos` moves while a reader sleeps.
    pub data: AtomicU32,
    /// Futex: bumped when `r_pos` moves while a writer sleeps.
    pub space: AtomicU32,
    /// Futex: bumped when a lock is released while someone waits for it.
    pub locks: AtomicU32,
    /// Readers asleep on `data`.
    pub data_waiters: AtomicU32,
    /// Writers asleep on `space`.
    pub space_waiters: AtomicU32,
    /// Lock waiters asleep on `locks`.
    pub lock_waiters: AtomicU32,
}

/// One process holding an end of a pipe: pid, its start time, handle count.
#[repr(C)]
#[derive(Debug, Default)]
pub struct EndEntry {
    /// Process id, 0 when the entry is free.
    pub pid: AtomicU32,
    /// How many registrations (handles' shared states) the process holds.
    pub count: AtomicU32,
    /// The process's start time (pid-reuse check).
    pub start: AtomicU64,
}

/// The processes holding one end of a pipe.
#[repr(C)]
#[derive(Debug, Default)]
pub struct EndTable {
    /// Entries; a free entry has pid 0.
    pub entries: [EndEntry; END_ENTRIES],
    /// Non-zero once some registration failed because the table was full
    /// (then the end is assumed alive forever).
    pub overflow: AtomicU32,
    /// Non-zero once any process registered at this end (a named pipe's
    /// other end may not have connected yet: that end is not gone).
    pub connected: AtomicU32,
    /// Reserved.
    pub spare: [AtomicU32; 2],
}

/// Everything before the slots.
#[repr(C)]
#[derive(Debug, Default)]
pub struct Control {
    /// Ring control: tail, head, sync words.
    pub ring: RingCtrl,
    /// Bulk stream control.
    pub bulk: Pad<BulkCtrl>,
    /// Pipes: `[senders, receivers]`.
    pub ends: [EndTable; 2],
}

const _: () = assert!(std::mem::size_of::<RingCtrl>() == 384);
const _: () = assert!(std::mem::size_of::<Control>() == CONTROL_LEN);
const _: () = assert!(std::mem::size_of::<Slot>() == SLOT_HEADER);

// SAFETY: Control is #[repr(C)], made only of fixed-width atomics (every bit
// pattern valid, shared mutation atomic-only), no pointers.
unsafe impl ShmSafe for Control {}
// SAFETY: as for Control.
unsafe impl ShmSafe for Slot {}

/// Validated geometry of a ring segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Slots.
    pub cap: u64,
    /// Data bytes per slot (multiple of 8).
    pub data_size: u64,
    /// Bulk stream bytes (0: no messages larger than a slot).
    pub bulk_len: u64,
    /// Hard message size limit (bytes).
    pub max_message: u64,
}

impl Geometry {
    /// Bytes from one slot to the next.
    pub fn stride(&self) -> u64 {
        SLOT_HEADER as u64 + self.data_size
    }

    /// Payload bytes a segment of this geometry has.
    pub fn payload_len(&self) -> u64 {
        CONTROL_LEN as u64 + self.cap * self.stride() + self.bulk_len
    }

    /// Offset of the bulk stream.
    pub fn bulk_offset(&self) -> u64 {
        CONTROL_LEN as u64 + self.cap * self.stride()
    }

    /// The header params.
    pub fn params(&self) -> [u64; 4] {
        [self.cap, self.data_size, self.bulk_len, self.max_message]
    }

    /// Checks a geometry asked for by a caller.
    pub fn check_new(&self) -> Result<()> {
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
    pub fn of(seg: &Segment) -> Result<Geometry> {
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
