//! `Event` (Python's), over [`RawEvent`].

use std::time::Duration;

use crate::error::Result;
use crate::segment::{Kind, Segment, TypeFingerprint};
use crate::sync::handle::{self, impl_handle_serde, Builder, Mapped, ShmHandle};
use crate::sync::lock::create_segment;
use crate::sync::signal::RawEvent;
use crate::sync::wait::Futex;

/// A flag processes can wait on (Python `multiprocessing.Event`).
///
/// # Examples
/// ```
/// use std::time::Duration;
/// let ev = shmproc::Event::new()?;
/// assert!(!ev.wait_timeout(Duration::from_millis(1)));
/// ev.set();
/// assert!(ev.is_set());
/// ev.wait(); // returns at once
/// ev.clear();
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Clone)]
pub struct Event {
    raw: Mapped<RawEvent>,
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("segment", self.raw.segment())
            .field("set", &self.is_set())
            .finish()
    }
}

impl ShmHandle for Event {
    const KIND: Kind = Kind::Event;
    fn fingerprint() -> TypeFingerprint {
        TypeFingerprint::none()
    }
    fn segment(&self) -> &Segment {
        self.raw.segment()
    }
    fn from_segment(seg: Segment) -> Result<Self> {
        Ok(Event {
            raw: Mapped::new(seg, 0)?,
        })
    }
}
impl_handle_serde!(Event);

impl Event {
    /// Creates an anonymous, clear event.
    ///
    /// # Errors
    /// The OS error if the segment cannot be created or mapped.
    pub fn new() -> Result<Event> {
        Event::builder().create()
    }

    /// A builder for a named event.
    pub fn builder() -> Builder<Event> {
        Builder::with_config(())
    }

    /// Opens the named event `name`.
    ///
    /// # Errors
    /// As [`Lock::open`](crate::Lock::open).
    pub fn open(name: &str) -> Result<Event> {
        handle::open(name)
    }

    /// Sets the flag and wakes every waiter (a syscall only if someone waits).
    pub fn set(&self) {
        self.raw.set(&Futex);
    }

    /// Clears the flag.
    pub fn clear(&self) {
        self.raw.clear();
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.raw.is_set()
    }

    /// Blocks until the flag is set.
    pub fn wait(&self) {
        self.raw.wait(&Futex, None);
    }

    /// Blocks until the flag is set or `timeout` passes; returns whether it is
    /// set (Python's `wait(timeout)`).
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.raw.wait(&Futex, handle::deadline(timeout))
    }
}

impl Builder<Event> {
    /// Creates the event.
    ///
    /// # Errors
    /// An invalid name, `EEXIST` if the name is taken, or the OS error.
    pub fn create(self) -> Result<Event> {
        let seg = create_segment(
            Kind::Event,
            TypeFingerprint::none(),
            std::mem::size_of::<RawEvent>(),
            [0; 4],
            &self.place,
            |_| Ok(()),
        )?;
        Event::from_segment(seg)
    }
}
