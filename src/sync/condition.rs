//! `Condition` (Python's): a sequence futex over a robust lock, its own (in
//! the same segment) or an existing [`Lock`] / [`RLock`] (Python's
//! `Condition(lock)`).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::segment::{counters, Kind, Segment, TypeFingerprint};
use crate::sync::handle::{self, Builder, Mapped, ShmHandle};
use crate::sync::lock::{create_segment, lock_state, release_state, try_lock_state, LockGuard};
use crate::sync::park::{CountingFutex, Futex};
use crate::sync::robust::RobustState;
use crate::sync::signal::RawCondition;
use crate::sync::{Lock, RLock, RLockGuard};

/// Payload offset of the sequence word, after the condition's own lock.
const SEQ_OFFSET: usize = std::mem::size_of::<RobustState>();

/// Segment param 0: which lock the condition waits with.
const OWN_LOCK: u64 = 0;
const WITH_LOCK: u64 = 1;
const WITH_RLOCK: u64 = 2;

/// The lock a condition releases while it waits.
#[derive(Clone)]
enum CondLock {
    /// The robust lock at payload offset 0 of the condition's segment.
    Own(Mapped<RobustState>),
    /// An existing lock (`Condition::with_lock`).
    Lock(Lock),
    /// An existing reentrant lock (`Condition::with_rlock`): a wait releases
    /// every level and restores them.
    RLock(RLock),
}

/// A condition variable over a robust lock (Python
/// `multiprocessing.Condition`).
///
/// [`Condition::new`] gives it a lock of its own; [`Condition::with_lock`] /
/// [`Condition::with_rlock`] build it over an existing lock, which it then
/// really shares: holding that lock is holding the condition's.
///
/// Acquire the lock (with [`acquire`](Self::acquire), or the lock's own
/// `acquire`), then [`wait`](Self::wait) with the guard: the lock is released
/// while waiting and re-acquired before `wait` returns (its guard reports
/// `owner_died()` if a holder died meanwhile). Waits may wake spuriously:
/// re-check the predicate in a loop, or let [`wait_for`](Self::wait_for) do
/// it. Notify while holding the lock, or a waiter that has not yet started to
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
    cond: Mapped<RawCondition>,
    lock: CondLock,
}

impl std::fmt::Debug for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, owner) = match &self.lock {
            CondLock::Own(s) => ("own", s.owner()),
            CondLock::Lock(l) => ("Lock", l.robust().owner()),
            CondLock::RLock(r) => ("RLock", r.robust().owner()),
        };
        f.debug_struct("Condition")
            .field("segment", self.cond.segment())
            .field("lock", &kind)
            .field("owner", &owner)
            .finish()
    }
}

impl ShmHandle for Condition {
    const KIND: Kind = Kind::Condition;
    fn segment(&self) -> &Segment {
        self.cond.segment()
    }
    /// A condition with its own lock (opened by name, or listed); one over
    /// another lock only travels with that lock (see the serde impls).
    fn from_segment(seg: Segment) -> Result<Self> {
        match seg.param(0) {
            OWN_LOCK => Ok(Condition {
                cond: Mapped::new(seg.clone(), SEQ_OFFSET)?,
                lock: CondLock::Own(Mapped::new(seg, 0)?),
            }),
            WITH_LOCK | WITH_RLOCK => Err(Error::Incompatible {
                segment: seg.label(),
                expected: "a condition with its own lock (one built over another lock \
                           travels only as a launch argument, with that lock)"
                    .into(),
                found: "a condition over a separate lock".into(),
            }),
            other => Err(corrupt_lock_kind(&seg, other)),
        }
    }
}

#[cold]
fn corrupt_lock_kind(seg: &Segment, found: u64) -> Error {
    Error::Corrupt {
        segment: seg.label(),
        what: "condition lock kind (param 0)".into(),
        expected: "0 (own lock), 1 (a Lock) or 2 (an RLock)".into(),
        found: found.to_string(),
    }
}

/// How a condition travels: its segment, then its lock unless it is its own.
#[derive(Serialize, Deserialize)]
enum LockWire {
    Own,
    Lock(Lock),
    RLock(RLock),
}

/// A segment as a handle of kind `Condition` inside a larger serde value.
struct SegWire(Segment);

impl Serialize for SegWire {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.serialize_handle(s)
    }
}

impl<'de> Deserialize<'de> for SegWire {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Segment::deserialize_handle(d, Kind::Condition, &TypeFingerprint::none()).map(SegWire)
    }
}

impl Serialize for Condition {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let lock = match &self.lock {
            CondLock::Own(_) => LockWire::Own,
            CondLock::Lock(l) => LockWire::Lock(l.clone()),
            CondLock::RLock(r) => LockWire::RLock(r.clone()),
        };
        (SegWire(self.cond.segment().clone()), lock).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        crate::sys::task::install_fork_hook();
        let (SegWire(seg), lock) = <(SegWire, LockWire)>::deserialize(d)?;
        Condition::assemble(seg, lock).map_err(D::Error::custom)
    }
}

impl Condition {
    /// The condition in `seg` with the lock that travelled with it; the
    /// segment's record of its lock kind must agree.
    fn assemble(seg: Segment, lock: LockWire) -> Result<Condition> {
        let (want, lock) = match lock {
            LockWire::Own => return Condition::from_segment(seg),
            LockWire::Lock(l) => (WITH_LOCK, CondLock::Lock(l)),
            LockWire::RLock(r) => (WITH_RLOCK, CondLock::RLock(r)),
        };
        if seg.param(0) != want {
            return Err(corrupt_lock_kind(&seg, seg.param(0)));
        }
        Ok(Condition {
            cond: Mapped::new(seg, SEQ_OFFSET)?,
            lock,
        })
    }

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

    /// Creates an anonymous condition over `lock` (Python's
    /// `Condition(lock)`): the condition shares that lock, so a guard from
    /// `lock.acquire()` is one [`wait`](Self::wait) accepts, and
    /// [`acquire`](Self::acquire) takes `lock`.
    ///
    /// # Errors
    /// The OS error if the segment cannot be created or mapped.
    ///
    /// # Examples
    /// ```
    /// let lock = shmproc::Lock::new()?;
    /// let cond = shmproc::Condition::with_lock(&lock)?;
    /// let g = lock.acquire()?;
    /// assert!(cond.try_acquire()?.is_none()); // the same lock
    /// let (_g, notified) = cond.wait_timeout(g, std::time::Duration::from_millis(5))?;
    /// assert!(!notified);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn with_lock(lock: &Lock) -> Result<Condition> {
        Condition::create_over(WITH_LOCK, CondLock::Lock(lock.clone()))
    }

    /// Creates an anonymous condition over the reentrant `lock` (Python's
    /// `Condition(RLock())`): a wait releases the lock whatever the depth the
    /// caller holds it at, and restores that depth before it returns.
    ///
    /// # Errors
    /// The OS error if the segment cannot be created or mapped.
    ///
    /// # Examples
    /// ```
    /// let lock = shmproc::RLock::new()?;
    /// let cond = shmproc::Condition::with_rlock(&lock)?;
    /// let outer = lock.acquire()?;
    /// let inner = lock.acquire()?;
    /// let (inner, _) = cond.wait_timeout(inner, std::time::Duration::from_millis(5))?;
    /// assert_eq!(lock.depth(), 2); // both levels held again
    /// # drop((inner, outer));
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn with_rlock(lock: &RLock) -> Result<Condition> {
        Condition::create_over(WITH_RLOCK, CondLock::RLock(lock.clone()))
    }

    fn create_over(kind: u64, lock: CondLock) -> Result<Condition> {
        let seg = create_segment(
            Kind::Condition,
            TypeFingerprint::none(),
            SEQ_OFFSET + std::mem::size_of::<RawCondition>(),
            [kind, 0, 0, 0],
            &Default::default(),
            |_| Ok(()),
        )?;
        Ok(Condition {
            cond: Mapped::new(seg, SEQ_OFFSET)?,
            lock,
        })
    }

    /// A builder for a named condition (with its own lock).
    ///
    /// # Examples
    /// ```
    /// let name = format!("doc-cond-{}", std::process::id());
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
    /// let name = format!("doc-cond-open-{}", std::process::id());
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
    pub fn acquire(&self) -> Result<ConditionGuard<'_>> {
        self.acquire_deadline(None)
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
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<ConditionGuard<'_>> {
        self.acquire_deadline(handle::deadline(timeout))
    }

    fn acquire_deadline(&self, deadline: Option<Instant>) -> Result<ConditionGuard<'_>> {
        Ok(ConditionGuard(match &self.lock {
            CondLock::Own(s) => {
                let (me, died) = lock_state(s, s.segment(), deadline)?;
                Held::Lock(LockGuard::new(s, me, died))
            }
            CondLock::Lock(l) => Held::Lock(match deadline {
                None => l.acquire()?,
                Some(_) => l.acquire_deadline(deadline)?,
            }),
            CondLock::RLock(r) => Held::RLock(r.acquire_deadline(deadline)?),
        }))
    }

    /// Acquires the condition's lock if it is free (or its holder is dead);
    /// `Ok(None)` if a live owner holds it.
    ///
    /// # Errors
    /// As [`RLock::try_acquire`](crate::RLock::try_acquire) for a condition
    /// over an `RLock`; none otherwise.
    ///
    /// # Examples
    /// ```
    /// let cond = shmproc::Condition::new()?;
    /// let g = cond.try_acquire()?;
    /// assert!(g.is_some());
    /// assert!(cond.try_acquire()?.is_none()); // held
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn try_acquire(&self) -> Result<Option<ConditionGuard<'_>>> {
        Ok(match &self.lock {
            CondLock::Own(s) => try_lock_state(s, s.segment())?
                .map(|(me, died)| ConditionGuard(Held::Lock(LockGuard::new(s, me, died)))),
            CondLock::Lock(l) => l.try_acquire()?.map(|g| ConditionGuard(Held::Lock(g))),
            CondLock::RLock(r) => r.try_acquire()?.map(|g| ConditionGuard(Held::RLock(g))),
        })
    }

    /// Releases the lock held by `guard`, waits for a notification (or a
    /// spurious wake-up), then re-acquires the lock. `guard` is a guard of
    /// the condition's lock: from [`acquire`](Self::acquire), or from the
    /// `Lock`/`RLock` the condition was built over.
    ///
    /// # Errors
    /// `InvalidArgument` if the calling thread does not hold the condition's
    /// lock (`guard` is of another lock: Python's "cannot wait on
    /// un-acquired lock"), or if the lock was taken over from it meanwhile.
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
    pub fn wait<'a, G: WaitGuard<'a>>(&'a self, guard: G) -> Result<G> {
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
    pub fn wait_timeout<'a, G: WaitGuard<'a>>(
        &'a self,
        guard: G,
        timeout: Duration,
    ) -> Result<(G, bool)> {
        self.wait_deadline(guard, handle::deadline(timeout))
    }

    /// Waits until `predicate()` is true (Python's `wait_for`): checks it
    /// first, then after every wake-up, always with the lock held. Returns
    /// the guard, the lock held and the predicate true.
    ///
    /// # Errors
    /// As [`wait`](Self::wait).
    ///
    /// # Examples
    /// ```
    /// let cond = shmproc::Condition::new()?;
    /// let n = shmproc::Value::new(0u32)?;
    /// let (c2, n2) = (cond.clone(), n.clone());
    /// let t = std::thread::spawn(move || {
    ///     for _ in 0..3 {
    ///         let _g = c2.acquire().unwrap();
    ///         n2.set(n2.get() + 1);
    ///         c2.notify_all();
    ///     }
    /// });
    /// let g = cond.wait_for(cond.acquire()?, || n.get() == 3)?;
    /// assert_eq!(n.get(), 3);
    /// # drop(g);
    /// # t.join().unwrap();
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn wait_for<'a, G: WaitGuard<'a>>(
        &'a self,
        guard: G,
        predicate: impl FnMut() -> bool,
    ) -> Result<G> {
        self.wait_for_deadline(guard, None, predicate)
            .map(|(g, _)| g)
    }

    /// As [`wait_for`](Self::wait_for), giving up after `timeout`: returns
    /// the guard (the lock held again) and the predicate's last value,
    /// `false` if the time ran out first (Python's return value).
    ///
    /// # Errors
    /// As [`wait`](Self::wait).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// let cond = shmproc::Condition::new()?;
    /// let (_g, held) = cond.wait_for_timeout(cond.acquire()?, Duration::from_millis(5), || false)?;
    /// assert!(!held);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn wait_for_timeout<'a, G: WaitGuard<'a>>(
        &'a self,
        guard: G,
        timeout: Duration,
        predicate: impl FnMut() -> bool,
    ) -> Result<(G, bool)> {
        self.wait_for_deadline(guard, handle::deadline(timeout), predicate)
    }

    fn wait_for_deadline<'a, G: WaitGuard<'a>>(
        &'a self,
        mut guard: G,
        deadline: Option<Instant>,
        mut predicate: impl FnMut() -> bool,
    ) -> Result<(G, bool)> {
        loop {
            if predicate() {
                return Ok((guard, true));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok((guard, false));
            }
            guard = self.wait_deadline(guard, deadline)?.0;
        }
    }

    fn wait_deadline<'a, G: WaitGuard<'a>>(
        &'a self,
        guard: G,
        deadline: Option<Instant>,
    ) -> Result<(G, bool)> {
        let (state, seg) = self.lock_state();
        let me = crate::sys::task::me();
        // Python's check: the calling thread holds the condition's lock. A
        // guard whose address differs may be of another mapping of the same
        // lock (a condition and its lock that travelled separately).
        if !std::ptr::eq(guard.state_addr(), state as *const RobustState as *const ())
            && !state.is_held_by(me)
        {
            return Err(Error::invalid(
                "condition wait guard",
                "a guard of this condition's lock, held by the calling thread",
                "a guard of another lock (the condition's lock is not held)",
            ));
        }
        let depth = match &self.lock {
            CondLock::RLock(r) => r.take_depth(),
            _ => 1,
        };
        let seen = self.cond.prepare();
        if let Err(e) = release_state(state, me) {
            // Not ours any more (taken over): the guard has nothing to release.
            std::mem::forget(guard);
            return Err(e);
        }
        let park = CountingFutex::new(self.cond.segment(), counters::CONDITION_WAITS);
        let notified = self.cond.wait(&park, seen, deadline);
        let relocked = lock_state(state, seg, None);
        let (_, died) = match relocked {
            Ok(r) => r,
            Err(e) => {
                std::mem::forget(guard);
                return Err(e);
            }
        };
        if let CondLock::RLock(r) = &self.lock {
            r.restore_depth(depth);
        }
        Ok((guard.relocked(died), notified))
    }

    /// The robust lock a wait releases and the segment it lives in.
    fn lock_state(&self) -> (&RobustState, &Segment) {
        match &self.lock {
            CondLock::Own(s) => (s, s.segment()),
            CondLock::Lock(l) => (l.robust(), l.segment()),
            CondLock::RLock(r) => (r.robust(), r.segment()),
        }
    }

    /// Who holds its lock, for `shmproc inspect`.
    pub(crate) fn describe(&self) -> Vec<(&'static str, String)> {
        vec![("lock", handle::describe_lock(self.lock_state().0))]
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
    /// Creates the condition (with its own lock).
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
            [OWN_LOCK, 0, 0, 0],
            &self.place,
            |_| Ok(()),
        )?;
        Condition::from_segment(seg)
    }
}

/// A held lock of a [`Condition`], from [`Condition::acquire`]: the
/// condition's own lock or the `Lock`/`RLock` it was built over. Releases
/// it on drop. Not `Send`.
///
/// # Examples
/// ```
/// let cond = shmproc::Condition::new()?;
/// let g = cond.acquire()?;
/// assert!(!g.owner_died());
/// g.release()?;
/// assert!(cond.try_acquire()?.is_some());
/// # Ok::<(), shmproc::Error>(())
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
#[derive(Debug)]
pub struct ConditionGuard<'a>(Held<'a>);

#[derive(Debug)]
enum Held<'a> {
    Lock(LockGuard<'a>),
    RLock(RLockGuard<'a>),
}

impl ConditionGuard<'_> {
    /// Whether the previous holder died holding the lock.
    ///
    /// # Examples
    /// ```
    /// let cond = shmproc::Condition::new()?;
    /// assert!(!cond.acquire()?.owner_died());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn owner_died(&self) -> bool {
        match &self.0 {
            Held::Lock(g) => g.owner_died(),
            Held::RLock(g) => g.owner_died(),
        }
    }

    /// Releases the lock now (one level of an `RLock`).
    ///
    /// # Errors
    /// As [`LockGuard::release`].
    ///
    /// # Examples
    /// ```
    /// let cond = shmproc::Condition::new()?;
    /// cond.acquire()?.release()?;
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn release(self) -> Result<()> {
        match self.0 {
            Held::Lock(g) => g.release(),
            Held::RLock(g) => g.release(),
        }
    }
}

mod sealed {
    /// What a condition wait needs of a guard; implemented in this crate only.
    pub trait Sealed: Sized {
        /// The address of the lock state the guard holds (its identity in
        /// this mapping).
        fn state_addr(&self) -> *const ();
        /// The same guard after the wait re-acquired the lock, with the
        /// owner-died flag of that acquisition.
        fn relocked(self, owner_died: bool) -> Self;
    }
}

/// A guard [`Condition::wait`] and friends accept: a [`ConditionGuard`], or
/// the [`LockGuard`] / [`RLockGuard`] of the lock the condition was built
/// over. Sealed: implemented for those three only.
///
/// # Examples
/// ```
/// use shmproc::WaitGuard;
/// fn wait_once<'a, G: WaitGuard<'a>>(c: &'a shmproc::Condition, g: G) -> shmproc::Result<G> {
///     Ok(c.wait_timeout(g, std::time::Duration::from_millis(1))?.0)
/// }
/// let cond = shmproc::Condition::new()?;
/// drop(wait_once(&cond, cond.acquire()?)?);
/// # Ok::<(), shmproc::Error>(())
/// ```
pub trait WaitGuard<'a>: sealed::Sealed {}

impl sealed::Sealed for LockGuard<'_> {
    fn state_addr(&self) -> *const () {
        self.state as *const RobustState as *const ()
    }
    fn relocked(self, owner_died: bool) -> Self {
        self.with_owner_died(owner_died)
    }
}
impl<'a> WaitGuard<'a> for LockGuard<'a> {}

impl sealed::Sealed for RLockGuard<'_> {
    fn state_addr(&self) -> *const () {
        self.lock_ref().robust() as *const RobustState as *const ()
    }
    fn relocked(self, owner_died: bool) -> Self {
        self.with_owner_died(owner_died)
    }
}
impl<'a> WaitGuard<'a> for RLockGuard<'a> {}

impl sealed::Sealed for ConditionGuard<'_> {
    fn state_addr(&self) -> *const () {
        match &self.0 {
            Held::Lock(g) => g.state_addr(),
            Held::RLock(g) => g.state_addr(),
        }
    }
    fn relocked(self, owner_died: bool) -> Self {
        ConditionGuard(match self.0 {
            Held::Lock(g) => Held::Lock(g.relocked(owner_died)),
            Held::RLock(g) => Held::RLock(g.relocked(owner_died)),
        })
    }
}
impl<'a> WaitGuard<'a> for ConditionGuard<'a> {}
