//! [`RingSpec`]: what a builder collects for one ring segment (the
//! `QueueBuilder` and the `PipeBuilder`, whose pipes are two such rings),
//! and how it becomes a [`Chan`].

use crate::chan::codec::{fingerprint, Codec};
use crate::chan::layout::{Geometry, MAX_MESSAGE};
use crate::chan::Chan;
use crate::error::Result;
use crate::segment::{Kind, Placement};

/// Sizes, limits and naming of a ring, as set on a builder.
#[derive(Debug, Clone)]
pub(crate) struct RingSpec {
    /// Slots (a queue's `maxsize`, a pipe's `capacity`).
    pub cap: u64,
    /// Inline data bytes per slot; `None`: the codec's default.
    pub slot_size: Option<u64>,
    /// Bytes of the stream area for messages larger than a slot.
    pub bulk_size: u64,
    /// Hard limit on one message.
    pub max_message: u64,
    /// Segment name (a pipe adds a suffix per direction).
    pub name: Option<String>,
    /// Keep a named segment after its creator's last handle drops.
    pub persist: bool,
}

impl RingSpec {
    /// `cap` slots, a `bulk_size` stream area, no limit, anonymous.
    pub(crate) fn new(cap: u64, bulk_size: u64) -> RingSpec {
        RingSpec {
            cap,
            slot_size: None,
            bulk_size,
            max_message: MAX_MESSAGE,
            name: None,
            persist: false,
        }
    }

    /// Sets the slot data size, rounded up to 8 bytes.
    pub(crate) fn set_slot_size(&mut self, bytes: usize) {
        self.slot_size = Some((bytes as u64).div_ceil(8) * 8);
    }

    /// Sets the stream area size, rounded up to 8 bytes.
    pub(crate) fn set_bulk_size(&mut self, bytes: usize) {
        self.bulk_size = (bytes as u64).div_ceil(8) * 8;
    }

    /// The geometry for items of `T` with codec `C` (validated by `Chan::create`).
    pub(crate) fn geometry<T, C: Codec<T>>(&self) -> Geometry {
        Geometry {
            cap: self.cap,
            data_size: self.slot_size.unwrap_or_else(C::default_slot),
            bulk_len: self.bulk_size,
            max_message: self.max_message,
        }
    }

    /// Creates the ring segment of `kind`, named `<name>.<suffix>` when a
    /// suffix is given.
    pub(crate) fn create<T, C: Codec<T>>(&self, kind: Kind, suffix: Option<&str>) -> Result<Chan> {
        let place = Placement {
            name: match suffix {
                Some(s) => self.name.as_ref().map(|n| format!("{n}.{s}")),
                None => self.name.clone(),
            },
            persist: self.persist,
        };
        Chan::create(kind, fingerprint::<T, C>(), self.geometry::<T, C>(), &place)
    }
}
