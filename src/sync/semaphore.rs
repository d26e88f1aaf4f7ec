//! `Semaphore` and `BoundedSemaphore` (Python's), over [`RawSemaphore`].
//!
//! Not robust to a dead participant: a process that dies holding a permit
//! leaves it taken, as in Python. Use the `_timeout` variants where that matters.

use std::marker::PhantomData;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::segment::{counters, Kind, Segment, TypeFingerprint};
use crate::sync::handle::{self, impl_handle_serde, Builder, Mapped, ShmHandle};
use crate::sync::lock::create_segment;
use crate::sync::park::CountingFutex;
use crate::sync::park::Futex;
use crate::sync::signal::RawSemaphore;

/// The state both semaphore kinds share: the words and the release bound.
#[derive(Clone)]
struct Core {
    raw: Mapped<RawSemaphore>,
    /// Largest value `release` may reach (`u32::MAX`: unbounded).
    max: u32,
}

impl Core {
    fn create(kind: Kind, value: u32, max: u32, b: &crate::segment::Placement) -> Result<Segment> {
        create_segment(
            kind,
            TypeFingerprint::none(),
            std::mem::size_of::<RawSemaphore>(),
            [u64::from(value), u64::from(max), 0, 0],
            b,
            |seg| {
                seg.view::<RawSemaphore>(0)?.init(value);
                Ok(())
            },
        )
    }

    fn from_segment(seg: Segment) -> Result<Core> {
        let max = seg.param(1);
        let max = u32::try_from(max).map_err(|_| Error::Corrupt {
            segment: seg.label(),
            what: "semaphore bound (param 1)".into(),
            expected: "at most 4294967295".into(),
            found: max.to_string(),
        })?;
        Ok(Core {
            raw: Mapped::new(seg, 0)?,
            max,
        })
    }

    fn acquire(&self, deadline: Option<Instant>) -> Result<SemaphoreGuard<'_>> {
        self.raw
            .acquire(
                &CountingFutex::new(self.raw.segment(), counters::BLOCKED),
                deadline,
            )
            .map_err(|_| Error::Timeout)?;
        Ok(SemaphoreGuard {
            core: self,
            _not_send: PhantomData,
        })
    }

    fn try_acquire(&self) -> Option<SemaphoreGuard<'_>> {
        // Not `then_some`: a guard built for nothing would release a permit
        // on drop.
        if !self.raw.try_acquire() {
            return None;
        }
        Some(SemaphoreGuard {
            core: self,
            _not_send: PhantomData,
        })
    }

    fn release(&self) -> Result<()> {
        self.raw.release(&Futex, self.max).map_err(|e| {
            Error::invalid(
                "semaphore release",
                format!(
                    "a value below its bound {} (released too many times)",
                    self.max
                ),
                format!("value {}", e.value),
            )
        })
    }
}

/// A held permit of a [`Semaphore`] or [`BoundedSemaphore`]; returned on drop
/// (use [`forget`](SemaphoreGuard::forget) to keep it taken, e.g. to hand it
/// to another process that calls `release`).
///
/// # Examples
/// ```
/// let s = shmproc::Semaphore::new(1)?;
/// {
///     let _permit = s.acquire()?;
///     assert_eq!(s.value(), 0);
/// }
/// assert_eq!(s.value(), 1);
/// # Ok::<(), shmproc::Error>(())
/// ```
#[must_use = "the permit is returned as soon as the guard is dropped"]
pub struct SemaphoreGuard<'a> {
    core: &'a Core,
    _not_send: PhantomData<*const ()>,
}

impl SemaphoreGuard<'_> {
    /// Keeps the permit taken; someone must `release` it later.
    ///
    /// # Examples
    /// ```
    /// let s = shmproc::Semaphore::new(1)?;
    /// s.acquire()?.forget();
    /// assert_eq!(s.value(), 0); // still taken
    /// s.release()?;
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn forget(self) {
        std::mem::forget(self);
    }
}

impl Drop for SemaphoreGuard<'_> {
    fn drop(&mut self) {
        // A bounded semaphore released by hand meanwhile may be at its bound:
        // then this permit was already returned, and nothing is lost.
        let _ = self.core.release();
    }
}

impl std::fmt::Debug for SemaphoreGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SemaphoreGuard")
    }
}

macro_rules! semaphore_type {
    ($(#[$doc:meta])* $ty:ident, $kind:expr, bounded = $bounded:expr) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $ty {
            core: Core,
        }

        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("segment", self.core.raw.segment())
                    .field("value", &self.value())
                    .finish()
            }
        }

        impl ShmHandle for $ty {
            const KIND: Kind = $kind;
            fn segment(&self) -> &Segment {
                self.core.raw.segment()
            }
            fn from_segment(seg: Segment) -> Result<Self> {
                Ok($ty { core: Core::from_segment(seg)? })
            }
        }
        impl_handle_serde!($ty);

        impl $ty {
            /// Creates an anonymous semaphore holding `value` permits.
            ///
            /// # Errors
            /// The OS error if the segment cannot be created or mapped.
            ///
            /// # Examples
            /// ```
            #[doc = concat!("let s = shmproc::", stringify!($ty), "::new(2)?;")]
            /// assert_eq!(s.value(), 2);
            /// # Ok::<(), shmproc::Error>(())
            /// ```
            pub fn new(value: u32) -> Result<$ty> {
                $ty::builder().value(value).create()
            }

            /// A builder for a named semaphore (default value 1, as Python).
            ///
            /// # Examples
            /// ```
            #[doc = concat!("use shmproc::", stringify!($ty), " as S;")]
            /// let name = format!("doc-sem-{}", std::process::id());
            /// let s = S::builder().name(&name).value(2).create()?;
            /// let other = S::open(&name)?; // e.g. in another process
            /// let _permit = other.acquire()?;
            /// assert_eq!(s.value(), 1);
            /// # Ok::<(), shmproc::Error>(())
            /// ```
            pub fn builder() -> Builder<$ty, u32> {
                Builder::with_config(1)
            }

            /// Opens the named semaphore `name`.
            ///
            /// # Errors
            /// As [`Lock::open`](crate::Lock::open).
            ///
            /// # Examples
            /// ```
            #[doc = concat!("use shmproc::", stringify!($ty), " as S;")]
            /// let name = format!("doc-sem-open-{}", std::process::id());
            /// let s = S::builder().name(&name).value(2).create()?;
            /// let other = S::open(&name)?; // e.g. in another process
            /// let _permit = other.acquire()?;
            /// assert_eq!(s.value(), 1);
            /// # Ok::<(), shmproc::Error>(())
            /// ```
            pub fn open(name: &str) -> Result<$ty> {
                handle::open(name)
            }

            /// Takes a permit, blocking until one is free.
            ///
            /// # Errors
            /// None in practice; `Result` for symmetry with the other acquires.
            ///
            /// # Examples
            /// ```
            #[doc = concat!("let s = shmproc::", stringify!($ty), "::new(1)?;")]
            /// let permit = s.acquire()?;
            /// assert_eq!(s.value(), 0);
            /// drop(permit); // returned
            /// assert_eq!(s.value(), 1);
            /// # Ok::<(), shmproc::Error>(())
            /// ```
            pub fn acquire(&self) -> Result<SemaphoreGuard<'_>> {
                self.core.acquire(None)
            }

            /// Takes a permit, waiting at most `timeout`.
            ///
            /// # Errors
            /// `Timeout` if none became free in time.
            ///
            /// # Examples
            /// ```
            #[doc = concat!("let s = shmproc::", stringify!($ty), "::new(1)?;")]
            /// let _permit = s.acquire()?;
            /// assert!(s.acquire_timeout(std::time::Duration::from_millis(5)).is_err());
            /// # Ok::<(), shmproc::Error>(())
            /// ```
            pub fn acquire_timeout(&self, timeout: Duration) -> Result<SemaphoreGuard<'_>> {
                self.core.acquire(handle::deadline(timeout))
            }

            /// Takes a permit if one is free now; `Ok(None)` if none is
            /// (Python's `acquire(block=False)` returning `False`).
            ///
            /// # Errors
            /// None today; the `Result` keeps the shape of the other acquires.
            ///
            /// # Examples
            /// ```
            #[doc = concat!("let s = shmproc::", stringify!($ty), "::new(1)?;")]
            /// let _a = s.try_acquire()?.expect("one permit");
            /// assert!(s.try_acquire()?.is_none()); // none left
            /// # Ok::<(), shmproc::Error>(())
            /// ```
            pub fn try_acquire(&self) -> Result<Option<SemaphoreGuard<'_>>> {
                Ok(self.core.try_acquire())
            }

            /// Returns a permit (one taken with a forgotten guard, or by another
            /// process), waking one waiter if any sleeps.
            ///
            /// # Errors
            /// `InvalidArgument` if the value is already at its bound: the initial
            /// value for a `BoundedSemaphore` (Python `ValueError`), `u32::MAX`
            /// for a `Semaphore`.
            ///
            /// # Examples
            /// ```
            #[doc = concat!("let s = shmproc::", stringify!($ty), "::new(1)?;")]
            /// s.acquire()?.forget(); // keep the permit past the guard
            /// s.release()?; // and give it back
            /// assert_eq!(s.value(), 1);
            /// # Ok::<(), shmproc::Error>(())
            /// ```
            pub fn release(&self) -> Result<()> {
                self.core.release()
            }

            /// The number of free permits now (a snapshot; Python `get_value`).
            ///
            /// # Examples
            /// ```
            #[doc = concat!("let s = shmproc::", stringify!($ty), "::new(3)?;")]
            /// assert_eq!(s.value(), 3);
            /// # Ok::<(), shmproc::Error>(())
            /// ```
            pub fn value(&self) -> u32 {
                self.core.raw.value()
            }

            /// The most permits `release` may reach (`u32::MAX`: unbounded).
            #[allow(dead_code)] // shown for BoundedSemaphore only
            pub(crate) fn max_value(&self) -> u32 {
                self.core.max
            }
        }

        impl Builder<$ty, u32> {
            /// The initial number of permits.
            ///
            /// # Examples
            /// ```
            #[doc = concat!("let s = shmproc::", stringify!($ty), "::builder().value(4).create()?;")]
            /// assert_eq!(s.value(), 4);
            /// # Ok::<(), shmproc::Error>(())
            /// ```
            pub fn value(mut self, value: u32) -> Self {
                self.config = value;
                self
            }

            /// Creates the semaphore.
            ///
            /// # Errors
            /// An invalid name, `EEXIST` if the name is taken, or the OS error.
            ///
            /// # Examples
            /// ```
            #[doc = concat!("let s = shmproc::", stringify!($ty), "::builder().value(1).create()?;")]
            /// assert_eq!(s.value(), 1);
            /// # Ok::<(), shmproc::Error>(())
            /// ```
            pub fn create(self) -> Result<$ty> {
                let max = if $bounded { self.config } else { u32::MAX };
                let seg = Core::create($kind, self.config, max, &self.place)?;
                $ty::from_segment(seg)
            }
        }
    };
}

semaphore_type!(
    /// A counting semaphore shared between processes (Python
    /// `multiprocessing.Semaphore`).
    ///
    /// # Examples
    /// ```
    /// let sem = shmproc::Semaphore::new(2)?;
    /// let a = sem.acquire()?;
    /// let b = sem.acquire()?;
    /// assert!(sem.try_acquire()?.is_none()); // no third permit
    /// drop(a);
    /// assert_eq!(sem.value(), 1);
    /// # drop(b);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    Semaphore,
    Kind::Semaphore,
    bounded = false
);

semaphore_type!(
    /// A semaphore whose value may never exceed its initial value (Python
    /// `multiprocessing.BoundedSemaphore`): a release too many is an error.
    ///
    /// # Examples
    /// ```
    /// let sem = shmproc::BoundedSemaphore::new(1)?;
    /// assert!(sem.release().is_err()); // above the initial value
    /// sem.acquire()?.forget();
    /// sem.release()?;
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    BoundedSemaphore,
    Kind::BoundedSemaphore,
    bounded = true
);
