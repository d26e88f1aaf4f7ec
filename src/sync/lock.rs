//! `Lock` and `RLock`: robust cross-process mutexes.
//!
//! The state machine is [`crate::sync::robust`]; its protocol, state table and
//! crash cases are in `docs/protocols/lock.md`. This file maps it into a
//! segment, supplies real futexes and the `/proc` liveness check, and wraps it
//! in guards that release on drop.

use std::marker::PhantomData;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::segment::{Kind, Placement, Segment, ShmSafe, Spec, TypeFingerprint};
use crate::sync::atomic::{AtomicU32, Ordering};
use crate::sync::handle::{self, impl_handle_serde, Builder, Mapped, ProcLiveness, ShmHandle};
use crate::sync::robust::{AcquireError, Acquired, RobustState};
use crate::sync::wait::Futex;
use crate::sys::proc::{self, TaskId};

/// Creates a segment of `kind` with `payload_len` zeroed bytes (plus `init`).
pub(crate) fn create_segment(
    kind: Kind,
    ty: TypeFingerprint,
    payload_len: usize,
    params: [u64; 4],
    place: &Placement,
    init: impl FnOnce(&Segment) -> Result<()>,
) -> Result<Segment> {
    proc::install_fork_hook();
    let spec = Spec {
        kind,
        ty,
        payload_len: payload_len as u64,
        params,
    };
    Segment::create(&spec, place, init)
}

/// Acquires `state` for the calling thread; returns its id and whether the
/// previous owner died holding the lock.
#[inline]
pub(crate) fn lock_state(state: &RobustState, deadline: Option<Instant>) -> Result<(TaskId, bool)> {
    let me = handle::me();
    match state.lock(me, &Futex, &ProcLiveness, deadline) {
        Ok(how) => Ok((me, how == Acquired::OwnerDied)),
        Err(e) => Err(acquire_error(e)),
    }
}

/// Takes `state` without sleeping (recovering it from a dead owner).
pub(crate) fn try_lock_state(state: &RobustState) -> Result<(TaskId, bool)> {
    let me = handle::me();
    match state.try_lock(me, &ProcLiveness) {
        Ok(how) => Ok((me, how == Acquired::OwnerDied)),
        Err(e) => Err(acquire_error(e)),
    }
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
///     assert!(lock.try_acquire().is_err()); // held
/// } // released here
/// assert!(lock.try_acquire().is_ok());
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

impl ShmHandle for Lock {
    const KIND: Kind = Kind::Lock;
    fn fingerprint() -> TypeFingerprint {
        TypeFingerprint::none()
    }
    fn segment(&self) -> &Segment {
        self.state.segment()
    }
    fn from_segment(seg: Segment) -> Result<Self> {
        Ok(Lock {
            state: Mapped::new(seg, 0)?,
        })
    }
}
impl_handle_serde!(Lock);

impl Lock {
    /// Creates an anonymous, unlocked lock.
    ///
    /// # Errors
    /// The OS error if the segment cannot be created or mapped.
    pub fn new() -> Result<Lock> {
        Lock::builder().create()
    }

    /// A builder for a named lock: `Lock::builder().name("n").create()`.
    pub fn builder() -> Builder<Lock> {
        Builder::with_config(())
    }

    /// Opens the named lock `name` created by another process.
    ///
    /// # Errors
    /// `Io`/`Os` (e.g. `ENOENT`) if it does not exist, `Incompatible` if the
    /// name holds another kind of object, `Corrupt` if it fails validation.
    pub fn open(name: &str) -> Result<Lock> {
        handle::open(name)
    }

    /// Acquires the lock, blocking as long as it takes.
    ///
    /// # Errors
    /// `InvalidArgument` if the calling thread already holds it (a `Lock` is not
    /// reentrant; blocking would never end).
    #[inline]
    pub fn acquire(&self) -> Result<LockGuard<'_>> {
        lock_state(&self.state, None).map(|(me, died)| LockGuard::new(&self.state, me, died))
    }

    /// Acquires the lock, waiting at most `timeout`.
    ///
    /// # Errors
    /// `Timeout` if it is still held by a live owner after `timeout`; as
    /// [`acquire`](Self::acquire) otherwise.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<LockGuard<'_>> {
        lock_state(&self.state, handle::deadline(timeout))
            .map(|(me, died)| LockGuard::new(&self.state, me, died))
    }

    /// Acquires the lock if it is free (or its holder is dead), without waiting.
    ///
    /// # Errors
    /// `Timeout` if a live owner holds it (a zero timeout, as Python's
    /// `acquire(block=False)`).
    #[inline]
    pub fn try_acquire(&self) -> Result<LockGuard<'_>> {
        try_lock_state(&self.state).map(|(me, died)| LockGuard::new(&self.state, me, died))
    }

    /// Whether some thread holds the lock now (a snapshot).
    pub fn is_locked(&self) -> bool {
        self.state.owner() != 0
    }

    /// The segment's name, if it is named.
    pub fn name(&self) -> Option<&str> {
        self.state.segment().name()
    }
}

impl Builder<Lock> {
    /// Creates the lock.
    ///
    /// # Errors
    /// An invalid name, `EEXIST` if the name is taken, or the OS error.
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

    /// Whether the previous holder died holding the lock: what it guarded
    /// may be half-written.
    pub fn owner_died(&self) -> bool {
        self.owner_died
    }

    /// Releases the lock now, reporting whether we still held it.
    ///
    /// # Errors
    /// `InvalidArgument` if the lock no longer names this thread (a peer took
    /// it over or scribbled on it); the lock is then left as it is.
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
    if handle::me() != me {
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
fn forked_guard() -> Error {
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

/// The shared state of an [`RLock`]: the robust lock and the recursion count.
#[repr(C)]
#[derive(Debug, Default)]
struct RLockState {
    lock: RobustState,
    /// Recursion depth; only the owner touches it.
    count: AtomicU32,
    _reserved: AtomicU32,
}

const _: () = assert!(std::mem::size_of::<RLockState>() == 24);
// SAFETY: a RobustState (ShmSafe) and two u32 atomics: every bit pattern is
// valid, no pointers, all shared mutation atomic.
unsafe impl ShmSafe for RLockState {}

/// A reentrant robust lock (Python `multiprocessing.RLock`): the holding
/// thread may acquire it again; it is released when every guard has dropped.
///
/// # Examples
/// ```
/// let lock = shmproc::RLock::new()?;
/// let outer = lock.acquire()?;
/// let inner = lock.acquire()?; // same thread: no deadlock
/// assert_eq!(lock.depth(), 2);
/// drop(inner);
/// drop(outer);
/// assert_eq!(lock.depth(), 0);
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Clone)]
pub struct RLock {
    state: Mapped<RLockState>,
}

impl std::fmt::Debug for RLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RLock")
            .field("segment", self.state.segment())
            .field("owner", &self.state.lock.owner())
            .finish()
    }
}

impl ShmHandle for RLock {
    const KIND: Kind = Kind::RLock;
    fn fingerprint() -> TypeFingerprint {
        TypeFingerprint::none()
    }
    fn segment(&self) -> &Segment {
        self.state.segment()
    }
    fn from_segment(seg: Segment) -> Result<Self> {
        Ok(RLock {
            state: Mapped::new(seg, 0)?,
        })
    }
}
impl_handle_serde!(RLock);

impl RLock {
    /// Creates an anonymous, unlocked reentrant lock.
    ///
    /// # Errors
    /// The OS error if the segment cannot be created or mapped.
    pub fn new() -> Result<RLock> {
        RLock::builder().create()
    }

    /// A builder for a named reentrant lock.
    pub fn builder() -> Builder<RLock> {
        Builder::with_config(())
    }

    /// Opens the named reentrant lock `name`.
    ///
    /// # Errors
    /// As [`Lock::open`].
    pub fn open(name: &str) -> Result<RLock> {
        handle::open(name)
    }

    /// Acquires the lock (again, if this thread holds it), blocking as needed.
    ///
    /// # Errors
    /// `InvalidArgument` if the recursion depth would exceed `u32::MAX`.
    pub fn acquire(&self) -> Result<RLockGuard<'_>> {
        self.acquire_deadline(None)
    }

    /// Acquires the lock, waiting at most `timeout`.
    ///
    /// # Errors
    /// `Timeout` if another live thread still holds it after `timeout`.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<RLockGuard<'_>> {
        self.acquire_deadline(handle::deadline(timeout))
    }

    /// Acquires the lock if it is free, ours, or its holder is dead.
    ///
    /// # Errors
    /// `Timeout` if another live thread holds it.
    pub fn try_acquire(&self) -> Result<RLockGuard<'_>> {
        if let Some(g) = self.reenter()? {
            return Ok(g);
        }
        let (me, died) = try_lock_state(&self.state.lock)?;
        Ok(self.first_guard(me, died))
    }

    fn acquire_deadline(&self, deadline: Option<Instant>) -> Result<RLockGuard<'_>> {
        if let Some(g) = self.reenter()? {
            return Ok(g);
        }
        let (me, died) = lock_state(&self.state.lock, deadline)?;
        Ok(self.first_guard(me, died))
    }

    /// A nested guard if this thread holds the lock already.
    fn reenter(&self) -> Result<Option<RLockGuard<'_>>> {
        let me = handle::me();
        if !self.state.lock.is_held_by(me) {
            return Ok(None);
        }
        // Relaxed: only the owner (this thread) touches the count.
        let depth = self.state.count.load(Ordering::Relaxed);
        let Some(next) = depth.checked_add(1) else {
            return Err(Error::invalid(
                "rlock depth",
                "below 4294967295 nested acquisitions",
                depth,
            ));
        };
        self.state.count.store(next, Ordering::Relaxed);
        Ok(Some(RLockGuard::new(self, me, false)))
    }

    fn first_guard(&self, me: TaskId, died: bool) -> RLockGuard<'_> {
        // Relaxed: only the owner touches the count; a take-over resets it.
        self.state.count.store(1, Ordering::Relaxed);
        RLockGuard::new(self, me, died)
    }

    /// How many guards the holder has now (0 when free); a snapshot.
    pub fn depth(&self) -> u32 {
        if self.state.lock.owner() == 0 {
            return 0;
        }
        // Relaxed: a snapshot.
        self.state.count.load(Ordering::Relaxed)
    }

    /// Whether the calling thread holds the lock.
    pub fn is_owned(&self) -> bool {
        self.state.lock.is_held_by(handle::me())
    }
}

impl Builder<RLock> {
    /// Creates the reentrant lock.
    ///
    /// # Errors
    /// An invalid name, `EEXIST` if the name is taken, or the OS error.
    pub fn create(self) -> Result<RLock> {
        let seg = create_segment(
            Kind::RLock,
            TypeFingerprint::none(),
            std::mem::size_of::<RLockState>(),
            [0; 4],
            &self.place,
            |_| Ok(()),
        )?;
        RLock::from_segment(seg)
    }
}

/// One level of a held [`RLock`]; the lock is released when the outermost
/// guard drops. Not `Send`.
#[must_use = "the level is released as soon as the guard is dropped"]
pub struct RLockGuard<'a> {
    lock: &'a RLock,
    me: TaskId,
    owner_died: bool,
    _not_send: PhantomData<*const ()>,
}

impl<'a> RLockGuard<'a> {
    fn new(lock: &'a RLock, me: TaskId, owner_died: bool) -> Self {
        RLockGuard {
            lock,
            me,
            owner_died,
            _not_send: PhantomData,
        }
    }

    /// Whether the previous holder died holding the lock.
    pub fn owner_died(&self) -> bool {
        self.owner_died
    }

    /// Releases this level now.
    ///
    /// # Errors
    /// `InvalidArgument` if this thread no longer holds the lock (it was taken
    /// over, or a peer scribbled on it): releasing from a non-owner is refused.
    pub fn release(self) -> Result<()> {
        let r = self.release_level();
        std::mem::forget(self);
        r
    }

    fn release_level(&self) -> Result<()> {
        let st = &self.lock.state;
        if handle::me() != self.me {
            return Err(forked_guard());
        }
        if !st.lock.is_held_by(self.me) {
            return Err(Error::invalid(
                "rlock release",
                format!("an rlock held by thread {}", self.me.tid),
                format!("one held by thread {}", st.lock.owner()),
            ));
        }
        // Relaxed: only the owner touches the count.
        let depth = st.count.load(Ordering::Relaxed);
        if depth > 1 {
            st.count.store(depth - 1, Ordering::Relaxed);
            return Ok(());
        }
        st.count.store(0, Ordering::Relaxed);
        release_state(&st.lock, self.me)
    }
}

impl Drop for RLockGuard<'_> {
    fn drop(&mut self) {
        let _ = self.release_level();
    }
}

impl std::fmt::Debug for RLockGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RLockGuard")
            .field("owner_died", &self.owner_died)
            .finish()
    }
}

#[cfg(test)]
mod tests;
