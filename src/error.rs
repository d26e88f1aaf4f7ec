//! The one error type of the crate.
//!
//! Every message is lower-case and names what was expected and what was found;
//! OS errors keep their errno as `source()`.

use std::fmt;

/// Result alias used throughout shmproc.
///
/// # Examples
/// ```
/// fn make() -> shmproc::Result<shmproc::Lock> {
///     shmproc::Lock::new()
/// }
/// assert!(make().is_ok());
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in shmproc.
///
/// Variants users match on are stable: `Timeout`, `Empty`, `Full`, `Closed`,
/// `WorkerDied`, `TaskPanicked`, `MessageTooLarge`, `Incompatible`, `Corrupt`, `Io`,
/// `BrokenBarrier`.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// let lock = shmproc::Lock::new()?;
/// let _held = lock.acquire()?;
/// let l2 = lock.clone();
/// let r = std::thread::spawn(move || match l2.acquire_timeout(Duration::from_millis(5)) {
///     Err(shmproc::Error::Timeout) => "timed out",
///     Err(_) => "other error",
///     Ok(_) => "acquired",
/// });
/// assert_eq!(r.join().unwrap(), "timed out");
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A blocking call with a timeout ran out of time.
    #[error("timed out")]
    Timeout,
    /// A `Barrier` wait found the barrier broken, or it broke while waiting
    /// (a wait timed out, `abort()`, a party died waiting, or the action
    /// panicked); it stays broken until `reset()` (Python's
    /// `BrokenBarrierError`).
    #[error(
        "broken barrier: expected a barrier to pass, found it broken (a wait timed out, \
         abort() was called, a party died while waiting or the action panicked); \
         reset() repairs it"
    )]
    BrokenBarrier,
    /// A non-blocking receive found nothing to take.
    #[error("empty: nothing to receive")]
    Empty,
    /// A non-blocking send found no room.
    #[error("full: no room to send")]
    Full,
    /// The object was closed, or its other end is gone.
    #[error("closed")]
    Closed,
    /// A worker process died while it held a task.
    #[error("worker process {pid} died{}", fmt_signal(*.signal))]
    WorkerDied {
        /// The worker's process id.
        pid: u32,
        /// The signal that killed it, if it was killed by one.
        signal: Option<i32>,
    },
    /// A task panicked; the message is the panic payload when it was a string.
    #[error("task panicked: {message}")]
    TaskPanicked {
        /// The panic message.
        message: String,
    },
    /// A message exceeds a configured hard limit.
    #[error("message too large: {size} bytes, the limit is {max} bytes")]
    MessageTooLarge {
        /// Size of the message in bytes.
        size: usize,
        /// The configured limit in bytes.
        max: usize,
    },
    /// A segment exists but is of another kind, element type, size or layout version.
    #[error("incompatible segment {segment}: expected {expected}, found {found}")]
    Incompatible {
        /// Which segment (its name, or `anonymous`).
        segment: String,
        /// What the opener expected.
        expected: String,
        /// What the segment holds.
        found: String,
    },
    /// A segment whose header or shared state fails validation.
    #[error("corrupt segment {segment}: {what}: expected {expected}, found {found}")]
    Corrupt {
        /// Which segment (its name, or `anonymous`).
        segment: String,
        /// Which field or structure failed validation.
        what: String,
        /// What a valid segment holds there.
        expected: String,
        /// What was found.
        found: String,
    },
    /// A caller passed an argument that cannot be used.
    #[error("invalid argument {what}: expected {expected}, found {found}")]
    InvalidArgument {
        /// Which argument.
        what: &'static str,
        /// What is accepted.
        expected: String,
        /// What was passed.
        found: String,
    },
    /// A message could not be encoded or decoded.
    #[error("codec error {context}: {source}")]
    Codec {
        /// What was being encoded or decoded.
        context: String,
        /// The underlying postcard error.
        #[source]
        source: postcard::Error,
    },
    /// An operating-system call failed.
    #[error("{context}: {source}")]
    Os {
        /// What was being done.
        context: String,
        /// The OS error, with its errno.
        #[source]
        source: std::io::Error,
    },
    /// An I/O error without more context.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

fn fmt_signal(signal: Option<i32>) -> String {
    match signal {
        Some(sig) => format!(" by signal {sig}"),
        None => String::new(),
    }
}

impl Error {
    /// An OS error with context, from the current `errno`-style error.
    pub(crate) fn os(context: impl fmt::Display, source: impl Into<std::io::Error>) -> Self {
        Error::Os {
            context: context.to_string(),
            source: source.into(),
        }
    }

    /// An invalid argument error.
    pub(crate) fn invalid(
        what: &'static str,
        expected: impl fmt::Display,
        found: impl fmt::Display,
    ) -> Self {
        Error::InvalidArgument {
            what,
            expected: expected.to_string(),
            found: found.to_string(),
        }
    }

    /// A codec error with context.
    #[allow(dead_code)] // first used by the queue and pipe codecs
    pub(crate) fn codec(context: impl fmt::Display, source: postcard::Error) -> Self {
        Error::Codec {
            context: context.to_string(),
            source,
        }
    }

    /// The OS errno behind this error, if any.
    ///
    /// # Examples
    /// ```
    /// let e = shmproc::Lock::open("no-such-lock-anywhere").unwrap_err();
    /// assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
    /// ```
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Os { source, .. } | Error::Io(source) => source.raw_os_error(),
            _ => None,
        }
    }
}

impl From<nix::Error> for Error {
    fn from(e: nix::Error) -> Self {
        Error::Io(std::io::Error::from(e))
    }
}
