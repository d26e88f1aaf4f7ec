//! What every synchronisation handle shares: a validated pointer into its
//! segment, the `name`/`persist` builder, the serde impls (one macro instead of
//! seven copies) and the production owner-liveness check.

use std::marker::PhantomData;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::segment::{Kind, Placement, Segment, ShmSafe, TypeFingerprint};
use crate::sync::atomic::AtomicU32;
use crate::sync::robust::Liveness;
use crate::sync::wait::{Futex, Park, Wake};
use crate::sys::proc::{self, TaskId};

/// A `T` inside a segment, validated once (bounds, alignment) and then read
/// without re-checking on every call.
pub(crate) struct Mapped<T> {
    seg: Segment,
    ptr: NonNull<T>,
}

impl<T: ShmSafe> Mapped<T> {
    /// The `T` at payload offset `offset` of `seg`.
    pub(crate) fn new(seg: Segment, offset: usize) -> Result<Self> {
        let ptr = NonNull::from(seg.view::<T>(offset)?);
        Ok(Mapped { seg, ptr })
    }
}

impl<T> Mapped<T> {
    /// The segment this lives in.
    pub(crate) fn segment(&self) -> &Segment {
        &self.seg
    }
}

impl<T> Clone for Mapped<T> {
    fn clone(&self) -> Self {
        Mapped {
            seg: self.seg.clone(),
            ptr: self.ptr,
        }
    }
}

impl<T: ShmSafe> std::ops::Deref for Mapped<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY:
        // - `ptr` came from `Segment::view`, which checked bounds and alignment;
        // - `self.seg` keeps that mapping alive at least as long as `&self`;
        // - T: ShmSafe, so every bit pattern is valid and shared mutation is atomic.
        unsafe { self.ptr.as_ref() }
    }
}

// SAFETY: the pointee is ShmSafe (hence Sync: shared access from any thread is
// fine) and the Segment that keeps it mapped is Send + Sync.
unsafe impl<T: ShmSafe> Send for Mapped<T> {}
// SAFETY: as for Send; `&Mapped<T>` only hands out `&T`, and T: Sync.
unsafe impl<T: ShmSafe> Sync for Mapped<T> {}

/// Handles that are one segment of one kind (for open and serde).
pub(crate) trait ShmHandle: Sized {
    /// The segment kind.
    const KIND: Kind;
    /// The element type recorded in the header (none for plain sync objects).
    fn fingerprint() -> TypeFingerprint {
        TypeFingerprint::none()
    }
    /// The segment behind this handle.
    fn segment(&self) -> &Segment;
    /// Builds the handle from a validated segment, checking its params.
    fn from_segment(seg: Segment) -> Result<Self>;
}

/// Opens the named segment `name` as an `H`.
pub(crate) fn open<H: ShmHandle>(name: &str) -> Result<H> {
    proc::install_fork_hook();
    H::from_segment(Segment::open(name, H::KIND, &H::fingerprint())?)
}

/// Deserializes an `H` (serde helper for [`impl_handle_serde`]).
pub(crate) fn deserialize<'de, D, H>(d: D) -> std::result::Result<H, D::Error>
where
    D: serde::Deserializer<'de>,
    H: ShmHandle,
{
    use serde::de::Error as _;
    proc::install_fork_hook();
    let seg = Segment::deserialize_handle(d, H::KIND, &H::fingerprint())?;
    H::from_segment(seg).map_err(D::Error::custom)
}

/// Implements `Serialize`/`Deserialize` for a `ShmHandle` type through
/// `Segment::serialize_handle`/`deserialize_handle`.
macro_rules! impl_handle_serde {
    ($ty:ident $(<$g:ident: $bound:path>)?) => {
        impl $(<$g: $bound>)? serde::Serialize for $ty $(<$g>)? {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                $crate::sync::handle::ShmHandle::segment(self).serialize_handle(s)
            }
        }
        impl<'de $(, $g: $bound)?> serde::Deserialize<'de> for $ty $(<$g>)? {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                $crate::sync::handle::deserialize(d)
            }
        }
    };
}
pub(crate) use impl_handle_serde;

/// `ShmHandle` and serde for a sync object that is one mapped state at payload
/// offset 0 in field `$field` (Lock, RLock, Event).
macro_rules! impl_mapped_handle {
    ($ty:ident, $kind:expr, $field:ident) => {
        impl $crate::sync::handle::ShmHandle for $ty {
            const KIND: $crate::segment::Kind = $kind;
            fn segment(&self) -> &$crate::segment::Segment {
                self.$field.segment()
            }
            fn from_segment(seg: $crate::segment::Segment) -> $crate::Result<Self> {
                Ok($ty {
                    $field: Mapped::new(seg, 0)?,
                })
            }
        }
        $crate::sync::handle::impl_handle_serde!($ty);
    };
}
pub(crate) use impl_mapped_handle;

/// Builds a named (or anonymous) shared object: `X::builder().name("n").create()`.
///
/// `T` is the object built; `C` its kind-specific settings (set through the
/// methods each object adds, e.g. `Semaphore`'s `value`).
///
/// # Examples
/// ```
/// let name = shmproc::segment::unique_name("doc-builder");
/// let lock = shmproc::Lock::builder().name(&name).create()?;
/// assert_eq!(lock.name(), Some(name.as_str()));
/// # Ok::<(), shmproc::Error>(())
/// ```
#[must_use = "a builder does nothing until `create` is called"]
#[derive(Debug, Clone)]
pub struct Builder<T, C = ()> {
    pub(crate) place: Placement,
    pub(crate) config: C,
    _builds: PhantomData<fn() -> T>,
}

impl<T, C> Builder<T, C> {
    pub(crate) fn with_config(config: C) -> Self {
        Builder {
            place: Placement::default(),
            config,
            _builds: PhantomData,
        }
    }

    /// Names the object so unrelated processes can `open` it (default: anonymous).
    /// The name is validated by `create`.
    ///
    /// # Examples
    /// ```
    /// let name = shmproc::segment::unique_name("doc-named");
    /// let ev = shmproc::Event::builder().name(&name).create()?;
    /// assert!(shmproc::Event::open(&name).is_ok());
    /// # drop(ev);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.place.name = Some(name.into());
        self
    }

    /// Keeps a named object after its creator's last handle drops
    /// (default: `false`); remove it with [`crate::unlink`].
    ///
    /// # Examples
    /// ```
    /// let name = shmproc::segment::unique_name("doc-persist");
    /// drop(shmproc::Lock::builder().name(&name).persist(true).create()?);
    /// assert!(shmproc::Lock::open(&name).is_ok()); // still there
    /// shmproc::unlink(&name)?;
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn persist(mut self, persist: bool) -> Self {
        self.place.persist = persist;
        self
    }
}

/// The production owner check: `/proc/<tid>/stat` with a start-time match, and
/// sleep slices of 2 ms doubling to 50 ms between checks.
pub(crate) struct ProcLiveness;

impl Liveness for ProcLiveness {
    fn is_dead(&self, tid: u32, start: Option<u64>) -> bool {
        match start {
            Some(start) => !proc::is_alive(TaskId { tid, start }),
            // Not yet published: dead only once no task has that id.
            None => !proc::pid_exists(tid),
        }
    }

    fn check_interval(&self, n: u32) -> Option<Duration> {
        Some(Duration::from_millis((2u64 << n.min(5)).min(50)))
    }
}

/// Shared futexes that bump the segment's counter `slot` at the first sleep
/// of one operation (one `CountingFutex` per operation): "operations that
/// had to sleep", counted where a futex syscall is paid anyway.
pub(crate) struct CountingFutex<'a> {
    seg: &'a Segment,
    slot: usize,
    counted: std::cell::Cell<bool>,
}

impl<'a> CountingFutex<'a> {
    /// Counts into `seg`'s counter `slot` (see `segment::counters`).
    #[inline]
    pub(crate) fn new(seg: &'a Segment, slot: usize) -> Self {
        CountingFutex {
            seg,
            slot,
            counted: std::cell::Cell::new(false),
        }
    }
}

impl Park for CountingFutex<'_> {
    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> Wake {
        if !self.counted.replace(true) {
            self.seg.bump(self.slot);
        }
        Futex.wait(word, expected, deadline)
    }

    #[inline]
    fn wake(&self, word: &AtomicU32, n: u32) {
        Futex.wake(word, n);
    }
}

/// Shared futexes that bump the segment's counter `slot` at every sleep.
/// Held by a handle (no per-call state), so passing `&SleepCounter` costs
/// what passing `&Futex` does; only `wait`, which sleeps anyway, counts.
#[derive(Clone)]
pub(crate) struct SleepCounter {
    seg: Segment,
    slot: usize,
}

impl SleepCounter {
    /// Counts into `seg`'s counter `slot` (see `segment::counters`).
    pub(crate) fn new(seg: Segment, slot: usize) -> Self {
        SleepCounter { seg, slot }
    }
}

impl Park for SleepCounter {
    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> Wake {
        self.seg.bump(self.slot);
        Futex.wait(word, expected, deadline)
    }

    #[inline]
    fn wake(&self, word: &AtomicU32, n: u32) {
        Futex.wake(word, n);
    }
}

/// "free", or who holds `state` and whether that holder is alive, for
/// `shmproc inspect`.
pub(crate) fn describe_lock(state: &crate::sync::robust::RobustState) -> String {
    match state.holder() {
        None => "free".into(),
        Some((tid, start, waiters)) => {
            let dead = ProcLiveness.is_dead(tid, start);
            format!(
                "held by thread {tid}{}{}",
                if dead {
                    " (dead: the next acquirer recovers it)"
                } else {
                    ""
                },
                if waiters { ", waiters may sleep" } else { "" }
            )
        }
    }
}

/// The absolute deadline `timeout` from now (`None` if it overflows: forever).
pub(crate) fn deadline(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// The calling thread's identity (no syscall once cached).
#[inline]
pub(crate) fn me() -> TaskId {
    proc::current_task_cached()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_liveness_uses_start_time_against_reuse() {
        let me = proc::current_task();
        assert!(!ProcLiveness.is_dead(me.tid, Some(me.start)));
        // Same tid, another start time: the task we knew is gone (reuse).
        assert!(ProcLiveness.is_dead(me.tid, Some(me.start + 1)));
        // Unpublished owner: alive while some task has the id.
        assert!(!ProcLiveness.is_dead(me.tid, None));
        // No task can have an id with bit 31 set (scribbled word).
        assert!(ProcLiveness.is_dead(0x8000_0001, None));
        let gone = std::thread::spawn(proc::current_task).join().unwrap();
        assert!(ProcLiveness.is_dead(gone.tid, Some(gone.start)));
    }

    #[test]
    fn check_interval_grows_to_50ms() {
        let slices: Vec<_> = (0..8)
            .map(|n| ProcLiveness.check_interval(n).unwrap().as_millis())
            .collect();
        assert_eq!(slices, [2, 4, 8, 16, 32, 50, 50, 50]);
    }
}
