//! `Barrier` (Python's), over [`RawBarrier`].

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::segment::{counters, Kind, Segment, TypeFingerprint};
use crate::sync::handle::{self, impl_handle_serde, Builder, Mapped, ShmHandle};
use crate::sync::lock::create_segment;
use crate::sync::park::CountingFutex;
use crate::sync::signal::{BarrierError, RawBarrier, MAX_PARTIES};

/// A reusable barrier for a fixed number of parties (Python
/// `multiprocessing.Barrier`).
///
/// `wait` returns the arrival index, `0..parties`, distinct for each party of
/// one round (Python's return value). Unlike Python, a `wait_timeout` that
/// times out withdraws its own arrival instead of breaking the barrier for
/// everyone. A party that dies leaves the round short, as in Python.
///
/// # Examples
/// ```
/// let barrier = shmproc::Barrier::new(1)?;
/// assert_eq!(barrier.wait()?, 0); // one party: passes at once
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Clone)]
pub struct Barrier {
    raw: Mapped<RawBarrier>,
    parties: u32,
}

impl std::fmt::Debug for Barrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Barrier")
            .field("segment", self.raw.segment())
            .field("parties", &self.parties)
            .field("waiting", &self.n_waiting())
            .finish()
    }
}

impl ShmHandle for Barrier {
    const KIND: Kind = Kind::Barrier;
    fn segment(&self) -> &Segment {
        self.raw.segment()
    }
    fn from_segment(seg: Segment) -> Result<Self> {
        let parties = seg.param(0);
        if !(1..=u64::from(MAX_PARTIES)).contains(&parties) {
            return Err(Error::Corrupt {
                segment: seg.label(),
                what: "barrier parties (param 0)".into(),
                expected: format!("1 to {MAX_PARTIES}"),
                found: parties.to_string(),
            });
        }
        Ok(Barrier {
            raw: Mapped::new(seg, 0)?,
            parties: parties as u32,
        })
    }
}
impl_handle_serde!(Barrier);

impl Barrier {
    /// Creates an anonymous barrier for `parties` parties.
    ///
    /// # Errors
    /// `InvalidArgument` unless `1 <= parties <= 65535`; the OS error if the
    /// segment cannot be created.
    ///
    /// # Examples
    /// ```
    /// let b = shmproc::Barrier::new(2)?;
    /// assert_eq!(b.parties(), 2);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn new(parties: u32) -> Result<Barrier> {
        Barrier::builder().parties(parties).create()
    }

    /// A builder for a named barrier; set [`parties`](Builder::parties).
    ///
    /// # Examples
    /// ```
    /// let name = format!("doc-barrier-{}", std::process::id());
    /// let b = shmproc::Barrier::builder().name(&name).parties(3).create()?;
    /// assert_eq!(shmproc::Barrier::open(&name)?.parties(), 3);
    /// # drop(b);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn builder() -> Builder<Barrier, u32> {
        Builder::with_config(0)
    }

    /// Opens the named barrier `name`.
    ///
    /// # Errors
    /// As [`Lock::open`](crate::Lock::open); `Corrupt` if its party count is
    /// out of range.
    ///
    /// # Examples
    /// ```
    /// let name = format!("doc-barrier-open-{}", std::process::id());
    /// let _b = shmproc::Barrier::builder().name(&name).parties(2).create()?;
    /// assert_eq!(shmproc::Barrier::open(&name)?.n_waiting(), 0);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn open(name: &str) -> Result<Barrier> {
        handle::open(name)
    }

    /// Waits until all parties have called `wait`; returns this party's
    /// arrival index.
    ///
    /// # Errors
    /// `Corrupt` if the shared count is out of range (a peer scribbled on it).
    ///
    /// # Examples
    /// ```
    /// let b = shmproc::Barrier::new(2)?;
    /// let b2 = b.clone();
    /// let t = std::thread::spawn(move || b2.wait().unwrap());
    /// let mine = b.wait()?;
    /// assert_eq!(mine + t.join().unwrap(), 1); // indexes 0 and 1
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn wait(&self) -> Result<u32> {
        self.wait_deadline(None)
    }

    /// As [`wait`](Self::wait), giving up after `timeout`.
    ///
    /// # Errors
    /// `Timeout` (our arrival is withdrawn), or `Corrupt` as for `wait`.
    ///
    /// # Examples
    /// ```
    /// let b = shmproc::Barrier::new(2)?;
    /// assert!(b.wait_timeout(std::time::Duration::from_millis(5)).is_err()); // alone
    /// assert_eq!(b.n_waiting(), 0); // the arrival was withdrawn
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<u32> {
        self.wait_deadline(handle::deadline(timeout))
    }

    fn wait_deadline(&self, deadline: Option<Instant>) -> Result<u32> {
        self.raw
            .wait(
                &CountingFutex::new(self.raw.segment(), counters::BLOCKED),
                self.parties,
                deadline,
            )
            .map_err(|e| match e {
                BarrierError::TimedOut => Error::Timeout,
                BarrierError::Corrupt { count } => Error::Corrupt {
                    segment: self.raw.segment().label(),
                    what: "barrier count".into(),
                    expected: format!("below {} parties", self.parties),
                    found: count.to_string(),
                },
            })
    }

    /// The number of parties (Python `parties`).
    ///
    /// # Examples
    /// ```
    /// assert_eq!(shmproc::Barrier::new(4)?.parties(), 4);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn parties(&self) -> u32 {
        self.parties
    }

    /// How many parties wait in the current round (a snapshot).
    ///
    /// # Examples
    /// ```
    /// assert_eq!(shmproc::Barrier::new(4)?.n_waiting(), 0);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn n_waiting(&self) -> u32 {
        self.raw.waiting()
    }
}

impl Builder<Barrier, u32> {
    /// The number of parties, 1 to 65535.
    ///
    /// # Examples
    /// ```
    /// let b = shmproc::Barrier::builder().parties(5).create()?;
    /// assert_eq!(b.parties(), 5);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn parties(mut self, parties: u32) -> Self {
        self.config = parties;
        self
    }

    /// Creates the barrier.
    ///
    /// # Errors
    /// `InvalidArgument` for a party count outside 1..=65535, an invalid name,
    /// `EEXIST` if the name is taken, or the OS error.
    ///
    /// # Examples
    /// ```
    /// let b = shmproc::Barrier::builder().parties(1).create()?;
    /// assert_eq!(b.wait()?, 0); // one party: passes at once
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn create(self) -> Result<Barrier> {
        if !(1..=MAX_PARTIES).contains(&self.config) {
            return Err(Error::invalid(
                "barrier parties",
                format!("1 to {MAX_PARTIES}"),
                self.config,
            ));
        }
        let seg = create_segment(
            Kind::Barrier,
            TypeFingerprint::none(),
            std::mem::size_of::<RawBarrier>(),
            [u64::from(self.config), 0, 0, 0],
            &self.place,
            |_| Ok(()),
        )?;
        Barrier::from_segment(seg)
    }
}
