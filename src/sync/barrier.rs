//! `Barrier` (Python's), over the round state machine of
//! [`barrier_state`](crate::sync::barrier_state). Protocol:
//! `docs/protocols/barrier.md`.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::segment::header::fnv1a;
use crate::segment::{counters, Kind, Segment, ShmSafe, TypeFingerprint};
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::sync::barrier_state::{BarrierError, RawBarrier, Record, MAX_PARTIES};
use crate::sync::handle::{self, impl_handle_serde, Builder, Mapped, ShmHandle};
use crate::sync::liveness::ProcLiveness;
use crate::sync::lock::create_segment;
use crate::sync::park::{CountingFutex, Futex};
use crate::sync::wait::WaitWord;
use crate::sys::code;

/// Outcome slots (see `RawBarrier`): a party learns how its round ended as
/// long as fewer than this many resets happened since.
const OUTCOMES: usize = 1024;

/// The barrier's action as the segment records it: the offset of
/// `run_action::<F>` from the code anchor, the hash of `F`, the executable
/// it was taken in, and a seal over the four (0 everywhere: no action).
#[repr(C)]
#[derive(Default)]
struct ActionRef {
    offset: AtomicU64,
    hash: AtomicU64,
    exe_dev: AtomicU64,
    exe_ino: AtomicU64,
    seal: AtomicU64,
}

/// Everything but the records, at payload offset 0; the records follow.
#[repr(C)]
struct BarrierShm {
    word: WaitWord,
    _reserved: [AtomicU32; 2],
    action: ActionRef,
    outcomes: [AtomicU32; OUTCOMES],
}

const RECORDS_AT: usize = std::mem::size_of::<BarrierShm>();
const _: () = assert!(RECORDS_AT == 4152 && RECORDS_AT % 8 == 0);

// SAFETY: fixed-width std atomics only (and arrays of them): every bit
// pattern valid, no pointers, all shared mutation atomic.
unsafe impl ShmSafe for ActionRef {}
// SAFETY: as ActionRef; WaitWord is ShmSafe.
unsafe impl ShmSafe for BarrierShm {}

/// A barrier action rebuilt in this process: `(hash, run) -> hash matched`.
type ActionFn = fn(u64, bool) -> bool;

fn action_hash<F>() -> u64 {
    // A tag keeps actions apart from entries and runners of the same type.
    fnv1a(std::any::type_name::<F>().as_bytes()) ^ 0x6261_7272_6163_7431
}

/// Runs the zero-sized action `F` if `hash` names it (`run`), or only says
/// whether it does.
fn run_action<F: Fn()>(hash: u64, run: bool) -> bool {
    if hash != action_hash::<F>() {
        return false;
    }
    match code::conjure::<F>() {
        Some(f) if run => f(),
        Some(_) => {}
        None => return false,
    }
    true
}

fn seal(offset: u64, hash: u64, (dev, ino): (u64, u64)) -> u64 {
    let mut b = [0u8; 32];
    for (i, v) in [offset, hash, dev, ino].into_iter().enumerate() {
        b[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
    }
    fnv1a(&b) | 1
}

/// A reusable barrier for a fixed number of parties, with Python's
/// semantics (`multiprocessing.Barrier`).
///
/// `wait` returns the arrival index, `0..parties`, distinct for each party
/// of one round. An optional [`action`](Builder::action) runs once per
/// round, in the last party to arrive, before the others are released. A
/// wait that times out, an [`abort`](Self::abort), a party that dies while
/// waiting, or a panicking action *breaks* the barrier: every waiter and
/// every later `wait` gets [`Error::BrokenBarrier`] until
/// [`reset`](Self::reset). A party that dies before it arrives leaves the
/// round short, as in Python: use a timeout where that matters.
///
/// # Examples
/// ```
/// let barrier = shmproc::Barrier::new(2)?;
/// let b2 = barrier.clone();
/// let t = std::thread::spawn(move || b2.wait().unwrap());
/// let mine = barrier.wait()?;
/// assert_eq!(mine + t.join().unwrap(), 1); // indexes 0 and 1
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Clone)]
pub struct Barrier {
    shm: Mapped<BarrierShm>,
    parties: u32,
    timeout: Option<Duration>,
    action: Option<(ActionFn, u64)>,
}

impl std::fmt::Debug for Barrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Barrier")
            .field("segment", self.shm.segment())
            .field("parties", &self.parties)
            .field("waiting", &self.n_waiting())
            .field("broken", &self.broken())
            .field("timeout", &self.timeout)
            .field("action", &self.action.is_some())
            .finish()
    }
}

impl ShmHandle for Barrier {
    const KIND: Kind = Kind::Barrier;
    fn segment(&self) -> &Segment {
        self.shm.segment()
    }
    fn from_segment(seg: Segment) -> Result<Self> {
        Barrier::map(seg, true)
    }
}
impl_handle_serde!(Barrier);

/// Settings of a barrier being built: see [`Barrier::builder`].
///
/// # Examples
/// ```
/// let b: shmproc::Builder<shmproc::Barrier, shmproc::BarrierConfig> =
///     shmproc::Barrier::builder().parties(2);
/// # drop(b);
/// ```
#[derive(Debug, Clone, Default)]
pub struct BarrierConfig {
    parties: u32,
    timeout: Option<Duration>,
    /// `(offset of run_action::<F>, hash of F)`, or the type name of an
    /// action that is not zero-sized (refused by `create`).
    action: Option<std::result::Result<(u64, u64), &'static str>>,
}

impl Barrier {
    /// Maps a barrier segment; `strict` also refuses an action this process
    /// cannot run (another executable's): every party may have to run it.
    fn map(seg: Segment, strict: bool) -> Result<Barrier> {
        let parties = seg.param(0);
        if !(1..=u64::from(MAX_PARTIES)).contains(&parties) {
            return Err(corrupt(
                &seg,
                "barrier parties (param 0)",
                "1 to 65535",
                parties,
            ));
        }
        let timeout = match seg.param(1) {
            0 => None,
            ns => Some(Duration::from_nanos(ns - 1)),
        };
        let shm: Mapped<BarrierShm> = Mapped::new(seg.clone(), 0)?;
        seg.view_slice::<Record>(RECORDS_AT, parties as usize)?;
        let action = match Barrier::action_of(&seg, &shm.action) {
            Ok(a) => a,
            Err(e) if strict => return Err(e),
            Err(_) => None,
        };
        Ok(Barrier {
            shm,
            parties: parties as u32,
            timeout,
            action,
        })
    }

    /// The action the segment names, rebuilt for this process.
    fn action_of(seg: &Segment, a: &ActionRef) -> Result<Option<(ActionFn, u64)>> {
        // Relaxed: written before the segment was published (its Acquire
        // check on open orders them).
        let (offset, hash) = (
            a.offset.load(Ordering::Relaxed),
            a.hash.load(Ordering::Relaxed),
        );
        let exe = (
            a.exe_dev.load(Ordering::Relaxed),
            a.exe_ino.load(Ordering::Relaxed),
        );
        let sealed = a.seal.load(Ordering::Relaxed);
        if sealed == 0 {
            return Ok(None);
        }
        if sealed != seal(offset, hash, exe) {
            return Err(corrupt(
                seg,
                "barrier action record",
                "a sealed record",
                "a bad seal",
            ));
        }
        let mine = code::exe_identity()?;
        if exe != mine {
            return Err(Error::Incompatible {
                segment: seg.label(),
                expected: format!(
                    "a barrier whose action this executable can run (device {}, inode {})",
                    mine.0, mine.1
                ),
                found: format!(
                    "an action of another executable (device {}, inode {})",
                    exe.0, exe.1
                ),
            });
        }
        // SAFETY:
        // - the seal matches, so the record was written whole by
        //   `Builder::create`, which took `offset` as the code offset of a
        //   `run_action::<F>` instance (type `ActionFn`) in its process;
        // - that process ran the very same executable file (device and inode
        //   match ours), in which the offset names the same function; fn
        //   pointers and usize have the same size on every Linux target.
        let f = unsafe { std::mem::transmute::<usize, ActionFn>(code::code_addr(offset)) };
        if !f(hash, false) {
            return Err(corrupt(
                seg,
                "barrier action",
                "the recorded action's type",
                "another",
            ));
        }
        Ok(Some((f, hash)))
    }

    /// The shared state, borrowed.
    fn raw(&self) -> Result<RawBarrier<'_>> {
        Ok(RawBarrier {
            word: &self.shm.word,
            outcomes: &self.shm.outcomes,
            records: self
                .shm
                .segment()
                .view_slice::<Record>(RECORDS_AT, self.parties as usize)?,
        })
    }

    /// Creates an anonymous barrier for `parties` parties (no action, no
    /// default timeout).
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

    /// A builder: [`parties`](Builder::parties), and optionally a
    /// [`name`](Builder::name), an [`action`](Builder::action) and a default
    /// [`timeout`](Builder::timeout) (Python's `Barrier(parties, action,
    /// timeout)`).
    ///
    /// # Examples
    /// ```
    /// let name = format!("doc-barrier-{}", std::process::id());
    /// let b = shmproc::Barrier::builder().name(&name).parties(3).create()?;
    /// assert_eq!(shmproc::Barrier::open(&name)?.parties(), 3);
    /// # drop(b);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn builder() -> Builder<Barrier, BarrierConfig> {
        Builder::with_config(BarrierConfig::default())
    }

    /// Opens the named barrier `name`.
    ///
    /// # Errors
    /// As [`Lock::open`](crate::Lock::open); `Corrupt` if its party count or
    /// action record is invalid; `Incompatible` if its action belongs to
    /// another executable (this process could not run it).
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

    /// Waits until all parties have called `wait` (for at most the default
    /// [`timeout`](Builder::timeout), if one was set); returns this party's
    /// arrival index. The last party to arrive runs the action first.
    ///
    /// # Errors
    /// [`Error::BrokenBarrier`] if the barrier is or becomes broken while
    /// waiting (the default timeout passing breaks it, as in Python);
    /// `Corrupt` if the shared count is out of range (a peer scribbled).
    ///
    /// # Panics
    /// If this party runs the action and the action panics (the barrier is
    /// broken first, so the other parties get `BrokenBarrier`).
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
        self.wait_deadline(self.timeout.and_then(handle::deadline))
    }

    /// As [`wait`](Self::wait), giving up after `timeout` (instead of the
    /// default): a wait that times out breaks the barrier for every party.
    ///
    /// # Errors
    /// [`Error::BrokenBarrier`] when the timeout passes (the barrier is then
    /// broken), or as [`wait`](Self::wait).
    ///
    /// # Examples
    /// ```
    /// let b = shmproc::Barrier::new(2)?;
    /// let alone = b.wait_timeout(std::time::Duration::from_millis(5));
    /// assert!(matches!(alone, Err(shmproc::Error::BrokenBarrier)));
    /// assert!(b.broken()); // for everyone, until reset
    /// b.reset();
    /// assert!(!b.broken());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<u32> {
        self.wait_deadline(handle::deadline(timeout))
    }

    fn wait_deadline(&self, deadline: Option<Instant>) -> Result<u32> {
        let park = CountingFutex::new(self.shm.segment(), counters::BLOCKED);
        let run = self.action.map(|(f, hash)| {
            move || {
                f(hash, true);
            }
        });
        let action = run.as_ref().map(|r| r as &dyn Fn());
        self.raw()?
            .wait(
                crate::sys::task::me(),
                &park,
                &ProcLiveness,
                action,
                deadline,
            )
            .map_err(|e| match e {
                BarrierError::Broken => Error::BrokenBarrier,
                BarrierError::Corrupt { count } => corrupt(
                    self.shm.segment(),
                    "barrier count",
                    format!("at most {} parties", self.parties),
                    count,
                ),
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

    /// How many parties wait in the current round, 0 when broken (Python
    /// `n_waiting`; a snapshot).
    ///
    /// # Examples
    /// ```
    /// assert_eq!(shmproc::Barrier::new(4)?.n_waiting(), 0);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn n_waiting(&self) -> u32 {
        self.raw().map_or(0, |r| r.n_waiting())
    }

    /// Whether the barrier is broken (Python `broken`).
    ///
    /// # Examples
    /// ```
    /// let b = shmproc::Barrier::new(2)?;
    /// assert!(!b.broken());
    /// b.abort();
    /// assert!(b.broken());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn broken(&self) -> bool {
        self.raw().is_ok_and(|r| r.broken())
    }

    /// Breaks the barrier (Python `abort`): every waiter, and every later
    /// `wait` until [`reset`](Self::reset), gets [`Error::BrokenBarrier`].
    /// Useful when a party cannot go on, so that the others do not wait for
    /// it.
    ///
    /// # Examples
    /// ```
    /// let b = shmproc::Barrier::new(2)?;
    /// b.abort();
    /// assert!(matches!(b.wait(), Err(shmproc::Error::BrokenBarrier)));
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn abort(&self) {
        if let Ok(r) = self.raw() {
            r.abort(&Futex);
        }
    }

    /// Returns the barrier to its empty state (Python `reset`): parties
    /// waiting now get [`Error::BrokenBarrier`]; later waits start a new
    /// round.
    ///
    /// # Examples
    /// ```
    /// let b = shmproc::Barrier::new(1)?;
    /// b.abort();
    /// b.reset();
    /// assert_eq!(b.wait()?, 0);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn reset(&self) {
        if let Ok(r) = self.raw() {
            r.reset(&Futex);
        }
    }

    /// The default timeout of [`wait`](Self::wait), if one was set.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// let b = shmproc::Barrier::builder().parties(2).timeout(Duration::from_secs(1)).create()?;
    /// assert_eq!(b.timeout(), Some(Duration::from_secs(1)));
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// `shmproc inspect`'s fields for a barrier segment (its action need not
    /// be runnable here: the inspector is another executable).
    pub(crate) fn describe(seg: Segment) -> Result<Vec<(&'static str, String)>> {
        let b = Barrier::map(seg, false)?;
        Ok(vec![
            ("parties", b.parties().to_string()),
            ("waiting", b.n_waiting().to_string()),
            ("broken", b.broken().to_string()),
        ])
    }
}

#[cold]
fn corrupt(seg: &Segment, what: &str, expected: impl ToString, found: impl ToString) -> Error {
    Error::Corrupt {
        segment: seg.label(),
        what: what.into(),
        expected: expected.to_string(),
        found: found.to_string(),
    }
}

impl Builder<Barrier, BarrierConfig> {
    /// The number of parties, 1 to 65535.
    ///
    /// # Examples
    /// ```
    /// let b = shmproc::Barrier::builder().parties(5).create()?;
    /// assert_eq!(b.parties(), 5);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn parties(mut self, parties: u32) -> Self {
        self.config.parties = parties;
        self
    }

    /// A function the last party to arrive runs once per round, before the
    /// others are released (Python's `action`). It must be a fn item or a
    /// non-capturing closure: like a process entry, it is named by its
    /// place in the executable, so every process that opens or receives the
    /// barrier can run it. If it panics, the barrier breaks and the panic
    /// goes on in that party.
    ///
    /// # Examples
    /// ```
    /// fn round_done() {
    ///     println!("all parties arrived");
    /// }
    /// let b = shmproc::Barrier::builder().parties(1).action(round_done).create()?;
    /// b.wait()?; // prints
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn action<F: Fn() + Send + Sync + 'static>(mut self, f: F) -> Self {
        drop(f);
        self.config.action = Some(if std::mem::size_of::<F>() == 0 {
            let r: ActionFn = run_action::<F>;
            Ok((code::code_offset(r as usize), action_hash::<F>()))
        } else {
            Err(std::any::type_name::<F>())
        });
        self
    }

    /// The timeout of [`Barrier::wait`] (Python's `timeout`; default: none).
    /// All handles of the barrier share it.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// let b = shmproc::Barrier::builder().parties(2).timeout(Duration::from_millis(5)).create()?;
    /// assert!(b.wait().is_err()); // alone: times out, breaks
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = Some(timeout);
        self
    }

    /// Creates the barrier.
    ///
    /// # Errors
    /// `InvalidArgument` for a party count outside 1..=65535 or an action
    /// that captures (is not zero-sized), an invalid name, `EEXIST` if the
    /// name is taken, or the OS error.
    ///
    /// # Examples
    /// ```
    /// let b = shmproc::Barrier::builder().parties(1).create()?;
    /// assert_eq!(b.wait()?, 0); // one party: passes at once
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn create(self) -> Result<Barrier> {
        let c = self.config;
        if !(1..=MAX_PARTIES).contains(&c.parties) {
            return Err(Error::invalid(
                "barrier parties",
                format!("1 to {MAX_PARTIES}"),
                c.parties,
            ));
        }
        let action = match c.action {
            None => None,
            Some(Ok(a)) => Some((a, code::exe_identity()?)),
            Some(Err(name)) => {
                return Err(Error::invalid(
                    "barrier action",
                    "a fn item or a non-capturing closure (it is called by its place in the executable)",
                    format!("{name}, which captures state"),
                ))
            }
        };
        let timeout = c.timeout.map_or(0, |t| {
            u64::try_from(t.as_nanos())
                .unwrap_or(u64::MAX - 1)
                .min(u64::MAX - 1)
                + 1
        });
        let seg = create_segment(
            Kind::Barrier,
            TypeFingerprint::none(),
            RECORDS_AT + std::mem::size_of::<Record>() * c.parties as usize,
            [u64::from(c.parties), timeout, 0, 0],
            &self.place,
            |seg| {
                if let Some(((offset, hash), exe)) = action {
                    let a = &seg.view::<BarrierShm>(0)?.action;
                    // Relaxed: published by the segment's ready store.
                    a.offset.store(offset, Ordering::Relaxed);
                    a.hash.store(hash, Ordering::Relaxed);
                    a.exe_dev.store(exe.0, Ordering::Relaxed);
                    a.exe_ino.store(exe.1, Ordering::Relaxed);
                    a.seal.store(seal(offset, hash, exe), Ordering::Relaxed);
                }
                Ok(())
            },
        )?;
        Barrier::from_segment(seg)
    }
}
