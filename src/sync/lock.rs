//! `Lock` and `RLock`: robust cross-process mutexes.
//!
//! The state machine is [`crate::sync::robust`]; its protocol, state table and
//! crash cases are in `docs/protocols/lock.md`. This file maps it into a
//! segment, supplies real futexes and the `/proc` liveness check, and wraps it
//! in guards that release on drop.

use std::marker::PhantomData;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::segment::counters;
use crate::segment::{Kind, Placement, Segment, Spec, TypeFingerprint};
use crate::sync::handle::{self, impl_mapped_handle, Builder, Mapped, ShmHandle};
use crate::sync::liveness::ProcLiveness;
use crate::sync::park::{CountingFutex, Futex};
use crate::sync::robust::{AcquireError, Acquired, RobustState};
use crate::sys::task::{self, TaskId};

/// Creates a segment of `kind` with `payload_len` zeroed bytes (plus `init`).
pub(crate) fn create_segment(
    kind: Kind,
    ty: TypeFingerprint,
    payload_len: usize,
    params: [u64; 4],
    place: &Placement,
    init: impl FnOnce(&Segment) -> Result<()>,
) -> Result<Segment> {
    task::install_fork_hook();
    let spec = Spec {
        kind,
        ty,
        payload_len: payload_len as u64,
        params,
    };
    Segment::create(&spec, place, init)
}

/// Acquires `state` (living in `seg`) for the calling thread; returns its id
/// and whether the previous owner died holding the lock. An acquire that
/// sleeps bumps `seg`'s `BLOCKED` counter, a take-over its `OWNER_DIED`
/// counter: both on slow paths only.
#[inline]
pub(crate) fn lock_state(
    state: &RobustState,
    seg: &Segment,
    deadline: Option<Instant>,
) -> Result<(TaskId, bool)> {
    let me = task::me();
    if state.lock_fast(me) {
        return Ok((me, false));
    }
    lock_state_slow(state, seg, me, deadline)
}

#[cold]
#[inline(never)]
fn lock_state_slow(
    state: &RobustState,
    seg: &Segment,
    me: TaskId,
    deadline: Option<Instant>,
) -> Result<(TaskId, bool)> {
    let park = CountingFutex::new(seg, counters::BLOCKED);
    match state.lock(me, &park, &ProcLiveness, deadline) {
        Ok(Acquired::Clean) => Ok((me, false)),
        Ok(Acquired::OwnerDied) => Ok((me, owner_died(seg))),
        Err(e) => Err(acquire_error(e)),
    }
}

/// Takes `state` (living in `seg`) without sleeping (recovering it from a
/// dead owner); `None` while a live owner (the caller included) holds it.
pub(crate) fn try_lock_state(state: &RobustState, seg: &Segment) -> Result<Option<(TaskId, bool)>> {
    let me = task::me();
    match state.try_lock(me, &ProcLiveness) {
        Ok(Acquired::Clean) => Ok(Some((me, false))),
        Ok(Acquired::OwnerDied) => Ok(Some((me, owner_died(seg)))),
        Err(AcquireError::Timeout) => Ok(None),
        Err(e) => Err(acquire_error(e)),
    }
}

/// Counts a take-over from a dead holder; always `true`.
#[cold]
fn owner_died(seg: &Segment) -> bool {
    seg.bump(counters::OWNER_DIED);
    log::info!(
        "shmproc: recovered {} {} from a holder that died",
        seg.kind(),
        seg.label()
    );
    true
}

#[cold]
fn acquire_error(e: AcquireError) -> Error {
    match e {
        AcquireError::Timeout => Error::Timeout,
        AcquireError::WouldDeadlock => Error::invalid(
            "lock acquire",
            "a lock the calling thread does not hold (Lock is not reentrant: use RLock)",
            "a lock already held by the calling thread",
        ),
    }
}

/// A robust lock shared between processes (Python `multiprocessing.Lock`).
///
/// If the holder dies (even by `SIGKILL`) the next acquirer gets the lock and
/// [`LockGuard::owner_died`] reports it, like `EOWNERDEAD` for a robust pthread
/// mutex. Uncontended acquire and release make no system call.
///
/// # Examples
/// ```
/// let lock = shmproc::Lock::new()?;
/// {
///     let guard = lock.acquire()?;
///     assert!(!guard.owner_died());
///     assert!(lock.try_acquire()?.is_none()); // held
/// } // released here
/// assert!(lock.try_acquire()?.is_some());
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Clone)]
pub struct Lock {
    state: Mapped<RobustState>,
}

impl std::fmt::Debug for Lock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lock")
            .field("segment", self.state.segment())
            .field("owner", &self.state.owner())
            .finish()
    }
}

impl_mapped_handle!(Lock, Kind::Lock, state);

impl Lock {
    /// Creates an anonymous, unlocked lock.
    ///
    /// # Errors
    /// The OS error if the segment cannot be created or mapped.
    ///
    /// # Examples
    /// ```
    /// let lock = shmproc::Lock::new()?;
    /// assert!(!lock.is_locked());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn new() -> Result<Lock> {
        Lock::builder().create()
    }

    /// A builder for a named lock: `Lock::builder().name("n").create()`.
    ///
    /// # Examples
    /// ```
    /// let name = format!("doc-lock-{}", std::process::id());
    /// let lock = shmproc::Lock::builder().name(&name).create()?;
    /// let _g = lock.acquire()?;
    /// assert!(shmproc::Lock::open(&name)?.is_locked()); // seen through another handle
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn builder() -> Builder<Lock> {
        Builder::with_config(())
    }

    /// Opens the named lock `name` created by another process.
    ///
    /// # Errors
    /// `Io`/`Os` (e.g. `ENOENT`) if it does not exist, `Incompatible` if the
    /// name holds another kind of object, `Corrupt` if it fails validation.
    ///
    /// # Examples
    /// ```
    /// let name = format!("doc-lock-open-{}", std::process::id());
    /// let _lock = shmproc::Lock::builder().name(&name).create()?;
    /// assert!(shmproc::Lock::open(&name)?.try_acquire()?.is_some());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn open(name: &str) -> Result<Lock> {
        handle::open(name)
    }

    /// Acquires the lock, blocking as long as it takes.
    ///
    /// # Errors
    /// `InvalidArgument` if the calling thread already holds it (a `Lock` is not
    /// reentrant; blocking would never end).
    ///
    /// # Examples
    /// ```
    /// let lock = shmproc::Lock::new()?;
    /// let guard = lock.acquire()?;
    /// assert!(lock.acquire().is_err()); // not reentrant: an error, not a deadlock
    /// drop(guard);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    #[inline]
    pub fn acquire(&self) -> Result<LockGuard<'_>> {
        lock_state(&self.state, self.state.segment(), None)
            .map(|(me, died)| LockGuard::new(&self.state, me, died))
    }

    /// Acquires the lock, waiting at most `timeout`.
    ///
    /// # Errors
    /// `Timeout` if it is still held by a live owner after `timeout`; as
    /// [`acquire`](Self::acquire) otherwise.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// let lock = shmproc::Lock::new()?;
    /// let _g = lock.acquire()?;
    /// let l2 = lock.clone();
    /// let r = std::thread::spawn(move || l2.acquire_timeout(Duration::from_millis(5)).is_err());
    /// assert!(r.join().unwrap()); // held by this thread: timed out
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<LockGuard<'_>> {
        self.acquire_deadline(handle::deadline(timeout))
    }

    /// Acquires the lock, waiting until `deadline` (`None`: forever).
    pub(crate) fn acquire_deadline(&self, deadline: Option<Instant>) -> Result<LockGuard<'_>> {
        lock_state(&self.state, self.state.segment(), deadline)
            .map(|(me, died)| LockGuard::new(&self.state, me, died))
    }

    /// The robust state (a `Condition` over this lock waits with it).
    pub(crate) fn robust(&self) -> &RobustState {
        &self.state
    }

    /// Acquires the lock if it is free (or its holder is dead), without
    /// waiting; `Ok(None)` if a live owner holds it, the calling thread
    /// included (Python's `acquire(block=False)` returning `False`,
    /// parking_lot's `try_lock` returning `None`).
    ///
    /// # Errors
    /// None today; the `Result` keeps the shape of the other acquires.
    ///
    /// # Examples
    /// ```
    /// let lock = shmproc::Lock::new()?;
    /// let g = lock.try_acquire()?.expect("free");
    /// assert!(lock.try_acquire()?.is_none()); // held
    /// drop(g);
    /// assert!(lock.try_acquire()?.is_some());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    #[inline]
    pub fn try_acquire(&self) -> Result<Option<LockGuard<'_>>> {
        Ok(try_lock_state(&self.state, self.state.segment())?
            .map(|(me, died)| LockGuard::new(&self.state, me, died)))
    }

    /// Whether some thread holds the lock now (a snapshot).
    ///
    /// # Examples
    /// ```
    /// let lock = shmproc::Lock::new()?;
    /// let g = lock.acquire()?;
    /// assert!(lock.is_locked());
    /// drop(g);
    /// assert!(!lock.is_locked());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn is_locked(&self) -> bool {
        self.state.owner() != 0
    }

    /// The segment's name, if it is named.
    ///
    /// # Examples
    /// ```
    /// assert_eq!(shmproc::Lock::new()?.name(), None); // anonymous
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.state.segment().name()
    }

    /// Who holds it, for `shmproc inspect`.
    pub(crate) fn describe(&self) -> Vec<(&'static str, String)> {
        vec![("lock", handle::describe_lock(&self.state))]
    }
}

impl Builder<Lock> {
    /// Creates the lock.
    ///
    /// # Errors
    /// An invalid name, `EEXIST` if the name is taken, or the OS error.
    ///
    /// # Examples
    /// ```
    /// let lock = shmproc::Lock::builder().create()?; // anonymous, like Lock::new
    /// # drop(lock);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn create(self) -> Result<Lock> {
        let seg = create_segment(
            Kind::Lock,
            TypeFingerprint::none(),
            std::mem::size_of::<RobustState>(),
            [0; 4],
            &self.place,
            |_| Ok(()),
        )?;
        Lock::from_segment(seg)
    }
}

/// A held [`Lock`] (or a `Condition`'s lock); releases it on drop.
///
/// Not `Send`: the lock is owned by the thread that acquired it.
/// ```compile_fail
/// fn needs_send<T: Send>(_: T) {}
/// let lock = shmproc::Lock::new().unwrap();
/// needs_send(lock.acquire().unwrap());
/// ```
///
/// # Examples
/// ```
/// let lock = shmproc::Lock::new()?;
/// let guard = lock.acquire()?;
/// assert!(!guard.owner_died());
/// drop(guard); // released
/// assert!(!lock.is_locked());
/// # Ok::<(), shmproc::Error>(())
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a> {
    pub(crate) state: &'a RobustState,
    me: TaskId,
    owner_died: bool,
    _not_send: PhantomData<*const ()>,
}

impl<'a> LockGuard<'a> {
    pub(crate) fn new(state: &'a RobustState, me: TaskId, owner_died: bool) -> Self {
        LockGuard {
            state,
            me,
            owner_died,
            _not_send: PhantomData,
        }
    }

    /// The same guard with the owner-died flag of a re-acquisition (after a
    /// `Condition` wait).
    pub(crate) fn with_owner_died(mut self, died: bool) -> Self {
        self.owner_died = died;
        self
    }

    /// Whether the previous holder died holding the lock: what it guarded
    /// may be half-written.
    ///
    /// # Examples
    /// ```
    /// let lock = shmproc::Lock::new()?;
    /// let l2 = lock.clone();
    /// // A thread that ends holding the lock, as a killed process would:
    /// std::thread::spawn(move || std::mem::forget(l2.acquire().unwrap())).join().unwrap();
    /// assert!(lock.acquire()?.owner_died());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn owner_died(&self) -> bool {
        self.owner_died
    }

    /// Releases the lock now, reporting whether we still held it.
    ///
    /// # Errors
    /// `InvalidArgument` if the lock no longer names this thread (a peer took
    /// it over or scribbled on it); the lock is then left as it is.
    ///
    /// # Examples
    /// ```
    /// let lock = shmproc::Lock::new()?;
    /// lock.acquire()?.release()?;
    /// assert!(!lock.is_locked());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn release(self) -> Result<()> {
        let r = release_state(self.state, self.me);
        std::mem::forget(self);
        r
    }
}

/// Releases `state` held by `me` (the guard's thread), as a crate error.
///
/// A guard copied into a forked child names the parent's thread; the child's
/// identity differs (the atfork hook reset it), so the copy releases nothing.
#[inline]
pub(crate) fn release_state(state: &RobustState, me: TaskId) -> Result<()> {
    if task::me() != me {
        return Err(forked_guard());
    }
    state.unlock(me, &Futex).map_err(|e| {
        Error::invalid(
            "lock release",
            format!("a lock held by thread {}", me.tid),
            format!("one held by thread {} (taken over?)", e.found),
        )
    })
}

#[cold]
pub(crate) fn forked_guard() -> Error {
    Error::invalid(
        "lock release",
        "the thread that acquired the lock",
        "a guard inherited through fork (the parent still holds the lock)",
    )
}

impl Drop for LockGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        // A lock taken over meanwhile (or a guard copied by fork) is not ours
        // to release: leave it.
        let _ = release_state(self.state, self.me);
    }
}

impl std::fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard")
            .field("owner_died", &self.owner_died)
            .finish()
    }
}

#[cfg(test)]
mod tests;
