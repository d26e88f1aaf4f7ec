//! Whether the task that holds something is alive: the one question every
//! crash-safe protocol asks (a lock's owner, a slot's claimer, a stream's
//! lock holder, a pipe end's process), asked on slow paths only.
//!
//! Algorithms take a [`Liveness`] so loom models can decide deaths; real
//! code passes [`ProcLiveness`] (`/proc`, through [`Holder::is_dead`]) or
//! [`CountingLiveness`], which also counts the deaths it finds.

use crate::sys::task::Holder;

/// Decides whether a recorded holder is dead.
pub(crate) trait Liveness {
    /// Whether `holder` is certainly dead (see [`Holder`]'s table).
    fn is_dead(&self, holder: Holder) -> bool;
}

/// Liveness from `/proc`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProcLiveness;

impl Liveness for ProcLiveness {
    #[inline]
    fn is_dead(&self, holder: Holder) -> bool {
        holder.is_dead()
    }
}

/// Liveness from `/proc` that bumps a segment counter for every dead holder
/// it finds (each is recovered next: `segment::counters::RECLAIMED`).
#[cfg(not(loom))]
pub(crate) struct CountingLiveness<'a> {
    seg: &'a crate::segment::Segment,
    counter: usize,
}

#[cfg(not(loom))]
impl<'a> CountingLiveness<'a> {
    /// Counts into `seg`'s counter `counter`.
    pub(crate) fn new(seg: &'a crate::segment::Segment, counter: usize) -> Self {
        CountingLiveness { seg, counter }
    }
}

#[cfg(not(loom))]
impl Liveness for CountingLiveness<'_> {
    fn is_dead(&self, holder: Holder) -> bool {
        let dead = holder.is_dead();
        if dead {
            self.seg.bump(self.counter);
        }
        dead
    }
}
