//! `Event` (Python's), over [`RawEvent`].

use std::time::Duration;

use crate::error::Result;
use crate::segment::{counters, Kind, TypeFingerprint};
use crate::sync::handle::{self, impl_mapped_handle, Builder, Mapped, ShmHandle};
use crate::sync::lock::create_segment;
use crate::sync::park::CountingFutex;
use crate::sync::park::Futex;
use crate::sync::signal::RawEvent;

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

impl_mapped_handle!(Event, Kind::Event, raw);

impl Event {
    /// Creates an anonymous, clear event.
    ///
    /// # Errors
    /// The OS error if the segment cannot be created or mapped.
    ///
    /// # Examples
    /// ```
    /// let ev = shmproc::Event::new()?;
    /// assert!(!ev.is_set());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn new() -> Result<Event> {
        Event::builder().create()
    }

    /// A builder for a named event.
    ///
    /// # Examples
    /// ```
    /// let name = format!("doc-event-{}", std::process::id());
    /// let ev = shmproc::Event::builder().name(&name).create()?;
    /// shmproc::Event::open(&name)?.set(); // e.g. from another process
    /// assert!(ev.is_set());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn builder() -> Builder<Event> {
        Builder::with_config(())
    }

    /// Opens the named event `name`.
    ///
    /// # Errors
    /// As [`Lock::open`](crate::Lock::open).
    ///
    /// # Examples
    /// ```
    /// let name = format!("doc-event-open-{}", std::process::id());
    /// let _ev = shmproc::Event::builder().name(&name).create()?;
    /// assert!(!shmproc::Event::open(&name)?.is_set());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn open(name: &str) -> Result<Event> {
        handle::open(name)
    }

    /// Sets the flag and wakes every waiter (a syscall only if someone waits).
    ///
    /// # Examples
    /// ```
    /// let ev = shmproc::Event::new()?;
    /// ev.set();
    /// ev.wait(); // returns at once
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn set(&self) {
        self.raw.set(&Futex);
    }

    /// Clears the flag.
    ///
    /// # Examples
    /// ```
    /// let ev = shmproc::Event::new()?;
    /// ev.set();
    /// ev.clear();
    /// assert!(!ev.is_set());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn clear(&self) {
        self.raw.clear();
    }

    /// Whether the flag is set.
    ///
    /// # Examples
    /// ```
    /// let ev = shmproc::Event::new()?;
    /// assert!(!ev.is_set());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn is_set(&self) -> bool {
        self.raw.is_set()
    }

    /// Futexes that count this event's blocked waits.
    fn park(&self) -> CountingFutex<'_> {
        CountingFutex::new(self.raw.segment(), counters::BLOCKED)
    }

    /// Blocks until the flag is set.
    ///
    /// # Examples
    /// ```
    /// let ev = shmproc::Event::new()?;
    /// let ev2 = ev.clone();
    /// let t = std::thread::spawn(move || ev2.wait());
    /// ev.set();
    /// t.join().unwrap();
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn wait(&self) {
        self.raw.wait(&self.park(), None);
    }

    /// Blocks until the flag is set or `timeout` passes; returns whether it is
    /// set (Python's `wait(timeout)`).
    ///
    /// # Examples
    /// ```
    /// let ev = shmproc::Event::new()?;
    /// assert!(!ev.wait_timeout(std::time::Duration::from_millis(5)));
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.raw.wait(&self.park(), handle::deadline(timeout))
    }
}

impl Builder<Event> {
    /// Creates the event.
    ///
    /// # Errors
    /// An invalid name, `EEXIST` if the name is taken, or the OS error.
    ///
    /// # Examples
    /// ```
    /// let ev = shmproc::Event::builder().create()?; // anonymous, like Event::new
    /// # drop(ev);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
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

#[cfg(not(loom))]
impl crate::sync::many::sealed::WaitSource for Event {
    fn readiness(&self) -> crate::sync::many::Readiness {
        if self.is_set() {
            crate::sync::many::Readiness::Ready
        } else {
            crate::sync::many::Readiness::Pending
        }
    }
    fn arm(&self) -> crate::sync::many::Armed {
        crate::sync::many::Armed::counted(self.raw.wait_word(), self.raw.clone())
    }
}

impl Event {
    /// [`wait`](Self::wait) as a future, for any executor (tokio, smol, ...):
    /// it completes once the flag is set, without blocking a thread (the
    /// process's one reactor thread sleeps for it). Dropping it changes
    /// nothing.
    ///
    /// # Examples
    /// ```
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     let mut f = std::pin::pin!(f);
    /// #     let w = std::task::Waker::noop();
    /// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut std::task::Context::from_waker(w)) { return v; } }
    /// # }
    /// let ev = shmproc::Event::new()?;
    /// ev.set();
    /// block_on(ev.wait_async());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn wait_async(&self) -> impl std::future::Future<Output = ()> + Send + '_ {
        let f =
            crate::sync::reactor::Wait::new(self, |e: &&Event, _slow| e.is_set().then_some(Ok(())));
        async move {
            // The attempt never fails.
            let _ = f.await;
        }
    }
}
