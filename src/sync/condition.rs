//! `Condition` (Python's): a robust lock and a sequence futex in one segment.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::segment::{counters, Kind, Segment, TypeFingerprint};
use crate::sync::handle::{self, impl_handle_serde, Builder, CountingFutex, Mapped, ShmHandle};
use crate::sync::lock::{create_segment, lock_state, try_lock_state, LockGuard};
use crate::sync::robust::RobustState;
use crate::sync::signal::RawCondition;
use crate::sync::wait::Futex;

/// Payload offset of the sequence word, after the lock.
const SEQ_OFFSET: usize = std::mem::size_of::<RobustState>();

/// A condition variable over its own robust lock (Python
/// `multiprocessing.Condition`).
///
/// Acquire the lock with [`acquire`](Self::acquire), then [`wait`](Self::wait)
/// with the guard: the lock is released while waiting and re-acquired before
/// `wait` returns (its guard reports `owner_died()` if a holder died
/// meanwhile). Waits may wake spuriously: re-check the predicate in a loop.
/// Notify while holding the lock, or a waiter that has not yet started to
/// wait can miss the notification.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// let cond = shmproc::Condition::new()?;
/// let guard = cond.acquire()?;
/// let (guard, notified) = cond.wait_timeout(guard, Duration::from_millis(5))?;
/// assert!(!notified); // nobody notified: timed out, lock held again
/// cond.notify_all();
/// drop(guard);
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Clone)]
pub struct Condition {
    lock: Mapped<RobustState>,
    cond: Mapped<RawCondition>,
}

impl std::fmt::Debug for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Condition")
            .field("segment", self.lock.segment())
            .field("owner", &self.lock.owner())
            .finish()
    }
}

impl ShmHandle for Condition {
    const KIND: Kind = Kind::Condition;
    fn segment(&self) -> &Segment {
        self.lock.segment()
    }
    fn from_segment(seg: Segment) -> Result<Self> {
        Ok(Condition {
            cond: Mapped::new(seg.clone(), SEQ_OFFSET)?,
            lock: Mapped::new(seg, 0)?,
        })
    }
}
impl_handle_serde!(Condition);

impl Condition {
    /// Creates an anonymous condition with its own (unlocked) lock.
    ///
    /// # Errors
    /// The OS error if the segment cannot be created or mapped.
    ///
    /// # Examples
    /// ```
    /// let cond = shmproc::Condition::new()?;
    /// let _g = cond.acquire()?;
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn new() -> Result<Condition> {
        Condition::builder().create()
    }

    /// A builder for a named condition.
    ///
    /// # Examples
    /// ```
    /// let name = shmproc::segment::unique_name("doc-cond");
    /// let cond = shmproc::Condition::builder().name(&name).create()?;
    /// let _other = shmproc::Condition::open(&name)?;
    /// # drop(cond);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn builder() -> Builder<Condition> {
        Builder::with_config(())
    }

    /// Opens the named condition `name`.
    ///
    /// # Errors
    /// As [`Lock::open`](crate::Lock::open).
    ///
    /// # Examples
    /// ```
    /// let name = shmproc::segment::unique_name("doc-cond-open");
    /// let _cond = shmproc::Condition::builder().name(&name).create()?;
    /// assert!(shmproc::Condition::open(&name)?.try_acquire()?.is_some());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn open(name: &str) -> Result<Condition> {
        handle::open(name)
    }

    /// Acquires the condition's lock.
    ///
    /// # Errors
    /// As [`Lock::acquire`](crate::Lock::acquire).
    ///
    /// # Examples
    /// ```
    /// let cond = shmproc::Condition::new()?;
    /// let g = cond.acquire()?;
    /// assert!(!g.owner_died());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn acquire(&self) -> Result<LockGuard<'_>> {
        lock_state(&self.lock, self.lock.segment(), None)
            .map(|(me, died)| LockGuard::new(&self.lock, me, died))
    }

    /// Acquires the condition's lock, waiting at most `timeout`.
    ///
    /// # Errors
    /// `Timeout`, or as [`Lock::acquire`](crate::Lock::acquire).
    ///
    /// # Examples
    /// ```
    /// let cond = shmproc::Condition::new()?;
    /// let _g = cond.acquire_timeout(std::time::Duration::from_millis(5))?;
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<LockGuard<'_>> {
        lock_state(&self.lock, self.lock.segment(), handle::deadline(timeout))
            .map(|(me, died)| LockGuard::new(&self.lock, me, died))
    }

    /// Acquires the condition's lock if it is free (or its holder is dead);
    /// `Ok(None)` if a live owner holds it.
    ///
    /// # Errors
    /// None today; the `Result` keeps the shape of the other acquires.
    ///
    /// # Examples
    /// ```
    /// let cond = shmproc::Condition::new()?;
    /// let g = cond.try_acquire()?;
    /// assert!(g.is_some());
    /// assert!(cond.try_acquire()?.is_none()); // held
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn try_acquire(&self) -> Result<Option<LockGuard<'_>>> {
        Ok(try_lock_state(&self.lock, self.lock.segment())?
            .map(|(me, died)| LockGuard::new(&self.lock, me, died)))
    }

    /// Releases the lock held by `guard`, waits for a notification (or a
    /// spurious wake-up), then re-acquires the lock.
    ///
    /// # Errors
    /// `InvalidArgument` if `guard` is not this condition's lock, or if the
    /// lock was taken over from us while we held it.
    ///
    /// # Examples
    /// ```
    /// let cond = shmproc::Condition::new()?;
    /// let ready = shmproc::Value::new(0u8)?;
    /// let (c2, r2) = (cond.clone(), ready.clone());
    /// let t = std::thread::spawn(move || {
    ///     let _g = c2.acquire().unwrap();
    ///     r2.set(1);
    ///     c2.notify_all();
    /// });
    /// let mut g = cond.acquire()?;
    /// while ready.get() == 0 {
    ///     g = cond.wait(g)?;
    /// }
    /// drop(g);
    /// t.join().unwrap();
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn wait<'a>(&'a self, guard: LockGuard<'a>) -> Result<LockGuard<'a>> {
        self.wait_deadline(guard, None).map(|(g, _)| g)
    }

    /// As [`wait`](Self::wait), giving up after `timeout`; the bool is `false`
    /// if the timeout expired (Python's return value). The lock is held again
    /// in both cases.
    ///
    /// # Errors
    /// As [`wait`](Self::wait).
    ///
    /// # Examples
    /// ```
    /// let cond = shmproc::Condition::new()?;
    /// let g = cond.acquire()?;
    /// let (_g, notified) = cond.wait_timeout(g, std::time::Duration::from_millis(5))?;
    /// assert!(!notified);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn wait_timeout<'a>(
        &'a self,
        guard: LockGuard<'a>,
        timeout: Duration,
    ) -> Result<(LockGuard<'a>, bool)> {
        self.wait_deadline(guard, handle::deadline(timeout))
    }

    fn wait_deadline<'a>(
        &'a self,
        guard: LockGuard<'a>,
        deadline: Option<Instant>,
    ) -> Result<(LockGuard<'a>, bool)> {
        if !std::ptr::eq(guard.state, &*self.lock) {
            return Err(Error::invalid(
                "condition wait guard",
                "a guard of this condition's lock",
                "a guard of another lock",
            ));
        }
        let seen = self.cond.prepare();
        guard.release()?;
        let park = CountingFutex::new(self.cond.segment(), counters::CONDITION_WAITS);
        let notified = self.cond.wait(&park, seen, deadline);
        let (me, died) = lock_state(&self.lock, self.lock.segment(), None)?;
        Ok((LockGuard::new(&self.lock, me, died), notified))
    }

    /// Who holds its lock, for `shmproc inspect`.
    pub(crate) fn describe(&self) -> Vec<(&'static str, String)> {
        vec![("lock", handle::describe_lock(&self.lock))]
    }

    /// Wakes up to `n` waiters (a syscall only if someone waits).
    ///
    /// # Examples
    /// ```
    /// let cond = shmproc::Condition::new()?;
    /// cond.notify(1); // nobody waits: no syscall
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn notify(&self, n: u32) {
        self.cond.notify(&Futex, n);
    }

    /// Wakes every waiter.
    ///
    /// # Examples
    /// ```
    /// let cond = shmproc::Condition::new()?;
    /// cond.notify_all();
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn notify_all(&self) {
        self.cond.notify(&Futex, u32::MAX);
    }
}

impl Builder<Condition> {
    /// Creates the condition.
    ///
    /// # Errors
    /// An invalid name, `EEXIST` if the name is taken, or the OS error.
    ///
    /// # Examples
    /// ```
    /// let cond = shmproc::Condition::builder().create()?;
    /// # drop(cond);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn create(self) -> Result<Condition> {
        let seg = create_segment(
            Kind::Condition,
            TypeFingerprint::none(),
            SEQ_OFFSET + std::mem::size_of::<RawCondition>(),
            [0; 4],
            &self.place,
            |_| Ok(()),
        )?;
        Condition::from_segment(seg)
    }
}
