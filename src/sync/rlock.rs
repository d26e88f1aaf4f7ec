//! `RLock`: a reentrant robust lock (the robust state machine of
//! `docs/protocols/lock.md` plus a recursion count only the owner touches).

use std::marker::PhantomData;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::segment::{Kind, ShmSafe, TypeFingerprint};
use crate::sync::atomic::{AtomicU32, Ordering};
use crate::sync::handle::{self, impl_mapped_handle, Builder, Mapped, ShmHandle};
use crate::sync::lock::{create_segment, forked_guard, lock_state, release_state, try_lock_state};
use crate::sync::robust::RobustState;
use crate::sys::task::{self, TaskId};

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

impl_mapped_handle!(RLock, Kind::RLock, state);

impl RLock {
    /// Creates an anonymous, unlocked reentrant lock.
    ///
    /// # Errors
    /// The OS error if the segment cannot be created or mapped.
    ///
    /// # Examples
    /// ```
    /// let lock = shmproc::RLock::new()?;
    /// assert_eq!(lock.depth(), 0);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn new() -> Result<RLock> {
        RLock::builder().create()
    }

    /// A builder for a named reentrant lock.
    ///
    /// # Examples
    /// ```
    /// let name = format!("doc-rlock-{}", std::process::id());
    /// let lock = shmproc::RLock::builder().name(&name).create()?;
    /// let _g = lock.acquire()?;
    /// assert_eq!(shmproc::RLock::open(&name)?.depth(), 1);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn builder() -> Builder<RLock> {
        Builder::with_config(())
    }

    /// Opens the named reentrant lock `name`.
    ///
    /// # Errors
    /// As [`Lock::open`](crate::Lock::open).
    ///
    /// # Examples
    /// ```
    /// let name = format!("doc-rlock-open-{}", std::process::id());
    /// let _lock = shmproc::RLock::builder().name(&name).create()?;
    /// assert!(shmproc::RLock::open(&name)?.try_acquire()?.is_some());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn open(name: &str) -> Result<RLock> {
        handle::open(name)
    }

    /// Acquires the lock (again, if this thread holds it), blocking as needed.
    ///
    /// # Errors
    /// `InvalidArgument` if the recursion depth would exceed `u32::MAX`.
    ///
    /// # Examples
    /// ```
    /// let lock = shmproc::RLock::new()?;
    /// let a = lock.acquire()?;
    /// let b = lock.acquire()?; // reentrant
    /// assert_eq!(lock.depth(), 2);
    /// # drop((b, a));
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn acquire(&self) -> Result<RLockGuard<'_>> {
        self.acquire_deadline(None)
    }

    /// Acquires the lock, waiting at most `timeout`.
    ///
    /// # Errors
    /// `Timeout` if another live thread still holds it after `timeout`.
    ///
    /// # Examples
    /// ```
    /// let lock = shmproc::RLock::new()?;
    /// let _g = lock.acquire_timeout(std::time::Duration::from_millis(5))?;
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<RLockGuard<'_>> {
        self.acquire_deadline(handle::deadline(timeout))
    }

    /// Acquires the lock if it is free, ours, or its holder is dead;
    /// `Ok(None)` if another live thread holds it.
    ///
    /// # Errors
    /// `InvalidArgument` if the recursion depth would exceed `u32::MAX`.
    ///
    /// # Examples
    /// ```
    /// let lock = shmproc::RLock::new()?;
    /// let _a = lock.try_acquire()?;
    /// assert!(lock.try_acquire()?.is_some()); // the holder may re-enter
    /// let l2 = lock.clone();
    /// assert!(std::thread::spawn(move || l2.try_acquire().unwrap().is_none()).join().unwrap());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn try_acquire(&self) -> Result<Option<RLockGuard<'_>>> {
        if let Some(g) = self.reenter()? {
            return Ok(Some(g));
        }
        Ok(try_lock_state(&self.state.lock, self.state.segment())?
            .map(|(me, died)| self.first_guard(me, died)))
    }

    /// Acquires the lock (again, if ours), waiting until `deadline`.
    pub(crate) fn acquire_deadline(&self, deadline: Option<Instant>) -> Result<RLockGuard<'_>> {
        if let Some(g) = self.reenter()? {
            return Ok(g);
        }
        let (me, died) = lock_state(&self.state.lock, self.state.segment(), deadline)?;
        Ok(self.first_guard(me, died))
    }

    /// A nested guard if this thread holds the lock already.
    fn reenter(&self) -> Result<Option<RLockGuard<'_>>> {
        let me = task::me();
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

    /// Who holds it, for `shmproc inspect`.
    pub(crate) fn describe(&self) -> Vec<(&'static str, String)> {
        vec![("lock", handle::describe_lock(&self.state.lock))]
    }

    /// The robust lock under the recursion count (a `Condition` over this
    /// lock releases and re-acquires it around a wait).
    pub(crate) fn robust(&self) -> &RobustState {
        &self.state.lock
    }

    /// The recursion depth, set to 0 (a `Condition` wait is about to release
    /// the lock whatever its depth, as Python's `_release_save`). Only the
    /// owner calls it.
    pub(crate) fn take_depth(&self) -> u32 {
        // Relaxed: only the owner touches the count.
        self.state.count.swap(0, Ordering::Relaxed)
    }

    /// Restores the depth saved by [`take_depth`](Self::take_depth) once the
    /// lock is held again (Python's `_acquire_restore`).
    pub(crate) fn restore_depth(&self, depth: u32) {
        // Relaxed: only the owner touches the count.
        self.state.count.store(depth.max(1), Ordering::Relaxed);
    }

    /// How many guards the holder has now (0 when free); a snapshot.
    ///
    /// # Examples
    /// ```
    /// let lock = shmproc::RLock::new()?;
    /// let _g = lock.acquire()?;
    /// assert_eq!(lock.depth(), 1);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn depth(&self) -> u32 {
        if self.state.lock.owner() == 0 {
            return 0;
        }
        // Relaxed: a snapshot.
        self.state.count.load(Ordering::Relaxed)
    }

    /// Whether the calling thread holds the lock.
    ///
    /// # Examples
    /// ```
    /// let lock = shmproc::RLock::new()?;
    /// let _g = lock.acquire()?;
    /// assert!(lock.is_owned());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn is_owned(&self) -> bool {
        self.state.lock.is_held_by(task::me())
    }
}

impl Builder<RLock> {
    /// Creates the reentrant lock.
    ///
    /// # Errors
    /// An invalid name, `EEXIST` if the name is taken, or the OS error.
    ///
    /// # Examples
    /// ```
    /// let lock = shmproc::RLock::builder().create()?;
    /// # drop(lock);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
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
///
/// # Examples
/// ```
/// let lock = shmproc::RLock::new()?;
/// let guard = lock.acquire()?;
/// assert!(!guard.owner_died());
/// drop(guard);
/// assert_eq!(lock.depth(), 0);
/// # Ok::<(), shmproc::Error>(())
/// ```
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

    /// The lock this level belongs to.
    pub(crate) fn lock_ref(&self) -> &'a RLock {
        self.lock
    }

    /// The same level with the owner-died flag of a re-acquisition (after a
    /// `Condition` wait).
    pub(crate) fn with_owner_died(mut self, died: bool) -> Self {
        self.owner_died = died;
        self
    }

    /// Whether the previous holder died holding the lock.
    ///
    /// # Examples
    /// ```
    /// let lock = shmproc::RLock::new()?;
    /// assert!(!lock.acquire()?.owner_died());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn owner_died(&self) -> bool {
        self.owner_died
    }

    /// Releases this level now.
    ///
    /// # Errors
    /// `InvalidArgument` if this thread no longer holds the lock (it was taken
    /// over, or a peer scribbled on it): releasing from a non-owner is refused.
    ///
    /// # Examples
    /// ```
    /// let lock = shmproc::RLock::new()?;
    /// lock.acquire()?.release()?;
    /// assert_eq!(lock.depth(), 0);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn release(self) -> Result<()> {
        let r = self.release_level();
        std::mem::forget(self);
        r
    }

    fn release_level(&self) -> Result<()> {
        let st = &self.lock.state;
        if task::me() != self.me {
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
