//! A channel as something to wait for, without blocking: whether a get or a
//! put would go through now, and its side's wait word armed for a sleep
//! (`shmproc::wait` and the async futures; `docs/protocols/wait.md`).

use super::block;
use super::mapped::Chan;
use super::ring::{Recheck, Side};
use crate::sync::many::{Armed, Readiness};

impl Chan {
    /// Whether a get (`Side::Get`) or a put (`Side::Put`) would go through
    /// now, or fail at once because the ring is closed: `Ready`. A claim of
    /// the other side in flight on the slot in question: `Soon`.
    pub(crate) fn readiness(&self, side: Side) -> Readiness {
        let ring = self.ring();
        if block::is_closed(&ring) && (side == Side::Put || block::is_discarding(&ring)) {
            return Readiness::Ready;
        }
        let r = match side {
            Side::Get => ring.peek(),
            Side::Put => ring.peek_put(),
        };
        match r {
            Recheck::Ready => Readiness::Ready,
            Recheck::InFlight => Readiness::Soon,
            // A closed ring with nothing left to drain fails a get at once.
            Recheck::Sleep if block::is_closed(&ring) => Readiness::Ready,
            Recheck::Sleep => Readiness::Pending,
        }
    }

    /// Arms `side`'s wait word (getters wait on `items`, putters on
    /// `space`); the armed word keeps this channel's segment mapped.
    pub(crate) fn arm(&self, side: Side) -> Armed {
        let s = &self.control().ring.sync.0;
        let ww = match side {
            Side::Get => &s.items,
            Side::Put => &s.space,
        };
        Armed::counted(ww, self.seg.clone())
    }
}
