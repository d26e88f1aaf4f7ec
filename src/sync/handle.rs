//! What every synchronisation handle shares: a validated pointer into its
//! segment, the `name`/`persist` builder, the serde impls (one macro instead of
//! seven copies) and the lock description `shmproc inspect` shows.

use std::marker::PhantomData;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::segment::{Kind, Placement, Segment, ShmSafe, TypeFingerprint};
use crate::sync::liveness::{Liveness, ProcLiveness};
use crate::sys::task;

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
    task::install_fork_hook();
    H::from_segment(Segment::open(name, H::KIND, &H::fingerprint())?)
}

/// Deserializes an `H` (serde helper for [`impl_handle_serde`]).
pub(crate) fn deserialize<'de, D, H>(d: D) -> std::result::Result<H, D::Error>
where
    D: serde::Deserializer<'de>,
    H: ShmHandle,
{
    use serde::de::Error as _;
    task::install_fork_hook();
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
/// let name = format!("doc-builder-{}", std::process::id());
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
    /// let name = format!("doc-named-{}", std::process::id());
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
    /// let name = format!("doc-persist-{}", std::process::id());
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

/// "free", or who holds `state` and whether that holder is alive, for
/// `shmproc inspect`.
pub(crate) fn describe_lock(state: &crate::sync::robust::RobustState) -> String {
    match state.holder() {
        None => "free".into(),
        Some((holder, waiters)) => {
            let dead = ProcLiveness.is_dead(holder);
            format!(
                "held by thread {}{}{}",
                holder.tid(),
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
