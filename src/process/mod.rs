//! The process launcher: [`Process`], [`init`](crate::init), and Python's module functions
//! [`cpu_count`], [`current_process`], [`parent_process`], [`active_children`].
//!
//! - `builder.rs`: [`ProcessBuilder`] and the two start methods (`launch.rs`
//!   re-executes the binary, `fork.rs` forks);
//! - `entry.rs`: how a re-executed child finds its entry function;
//! - `boot.rs`: the launch record a child reads; `child.rs`: the child's
//!   side of [`init`](crate::init);
//! - `registry.rs`: who we are, who our parent is, children to reap.
//!
//! The protocol is in `docs/protocols/launch.md`.

mod boot;
mod builder;
mod child;
pub(crate) mod entry;
mod fork;
mod launch;
mod registry;
#[cfg(test)]
mod tests;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::sys;
use crate::sys::exit_word::ExitWord;
use crate::sys::process::Reap;

pub use builder::ProcessBuilder;
pub(crate) use child::run_if_launched;
pub use entry::EntryReturn;
pub use registry::{active_children, cpu_count, current_process, parent_process, ProcessInfo};

/// How a child process is started.
///
/// # Examples
/// ```no_run
/// use shmproc::{Process, StartMethod};
/// shmproc::init();
/// let counter = 41;
/// let p = Process::builder()
///     .start_method(StartMethod::Fork)
///     .spawn(move |x: u32| assert_eq!(counter + x, 42), 1)?;
/// assert_eq!(p.join()?, 0);
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum StartMethod {
    /// Re-execute the current binary (`/proc/self/exe`); the child runs its
    /// entry from [`init`](crate::init). Arguments are serialized; the entry must be a fn
    /// item or a non-capturing closure. Safe whatever threads the parent runs.
    #[default]
    Spawn,
    /// `fork()` the parent: fast, and the entry may be a capturing closure.
    /// **Unsafe to use once the parent has started threads**: a lock another
    /// thread held at the fork (stdout's, an allocator's, a `Mutex` of the
    /// program's) stays locked forever in the child, which may then hang.
    Fork,
}

/// A launched child process. Clones refer to the same child.
///
/// Dropping a `Process` neither waits for nor kills the child: like Python,
/// the child keeps running, and it is reaped by a later `join`, by
/// [`active_children`], or by the next spawn (so it does not stay a zombie
/// while this process launches more). A daemon child is killed when its
/// parent dies.
///
/// # Examples
/// ```no_run
/// use shmproc::Process;
///
/// fn worker(n: u32) {
///     println!("hello from child {n}");
/// }
///
/// fn main() -> shmproc::Result<()> {
///     shmproc::init();
///     let p = Process::spawn(worker, 7)?;
///     assert_eq!(p.join()?, 0);
///     Ok(())
/// }
/// ```
#[derive(Clone)]
pub struct Process {
    shared: Arc<Shared>,
}

/// What the parent knows about one child.
pub(crate) struct Shared {
    pid: u32,
    name: String,
    daemon: bool,
    method: StartMethod,
    /// Becomes readable when the child ends; `None` on kernels without pidfd.
    pidfd: Option<OwnedFd>,
    /// The process that launched the child (a forked grandchild holding a
    /// copy of this handle must not wait on a process that is not its child).
    owner: u32,
    /// The launch record of a re-executed child, whose last byte tells
    /// whether the child reached `init()`.
    boot: Option<std::fs::File>,
    /// The child's exit word, marked by the kernel when the child dies
    /// (`docs/protocols/exit-word.md`); mapped as long as this record lives.
    exit: Option<ExitWord>,
    /// Held while reaping or signalling, so a signal never reaches a pid
    /// that was reaped (and perhaps reused) in between.
    state: Mutex<State>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // A reaped child's page may serve a later fork of this process (a
        // fork's copy of the record, in another process, only unmaps it).
        if *self.state.get_mut() == State::Running {
            return;
        }
        let me = sys::task::pid();
        if self.owner == me {
            if let Some(w) = self.exit.take() {
                w.recycle(me);
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    Exited(i32),
    /// Reaped by someone else (e.g. a `waitpid(-1)` outside shmproc).
    Lost,
    /// A re-executed child that ended (with this code) without reaching
    /// `init()`: its entry never ran.
    NoEntry(i32),
}

impl Shared {
    fn poll(&self) -> Result<State> {
        let mut state = self.state.lock();
        if *state == State::Running {
            self.check_owner()?;
            *state = match sys::process::try_reap(self.pid)? {
                Reap::Running => State::Running,
                Reap::Exited(code) => match &self.boot {
                    // A signal may well come before init(): only a normal
                    // exit without reaching init() means the entry was lost.
                    Some(file) if code >= 0 && !boot::started(file) => State::NoEntry(code),
                    _ => State::Exited(code),
                },
                Reap::NotAChild => State::Lost,
            };
            if *state != State::Running {
                log_exit(self.pid, &self.name, *state);
            }
        }
        Ok(*state)
    }

    /// What is known without a syscall: the state cached by the last poll.
    fn cached(&self) -> State {
        *self.state.lock()
    }

    /// The outcome `join` gives for an ended child; `None` while it runs.
    fn outcome(&self, state: State) -> Option<Result<i32>> {
        match state {
            State::Running => None,
            State::Exited(code) => Some(Ok(code)),
            State::Lost => Some(Err(Error::os(
                format!("waiting for process {}", self.pid),
                std::io::Error::from_raw_os_error(libc::ECHILD),
            ))),
            State::NoEntry(code) => Some(Err(no_entry(self.pid, code))),
        }
    }

    /// `true` while the child runs (reaping it if it has ended).
    pub(crate) fn poll_running(&self) -> bool {
        matches!(self.poll(), Ok(State::Running))
    }

    /// Whether the child has ended, from the kernel's process state (never
    /// from the exit word): reaps it if this process launched it, else
    /// asks its pidfd (a forked copy of the handle cannot reap).
    fn has_exited_now(&self) -> bool {
        match self.poll() {
            Ok(state) => state != State::Running,
            Err(_) => match &self.pidfd {
                Some(fd) => {
                    sys::process::wait_pidfd(fd.as_fd(), Some(Instant::now())).unwrap_or(false)
                }
                None => !sys::task::pid_exists(self.pid),
            },
        }
    }

    fn check_owner(&self) -> Result<()> {
        if self.owner != sys::task::pid() {
            return Err(Error::invalid(
                "process handle",
                format!("a child of this process ({})", sys::task::pid()),
                format!("process {}, a child of process {}", self.pid, self.owner),
            ));
        }
        Ok(())
    }

    fn signal(&self, sig: Signal) -> Result<()> {
        let state = self.state.lock();
        if *state != State::Running {
            return Ok(()); // already ended: nothing to signal, like Python
        }
        self.check_owner()?;
        // Holding `state` means nobody reaps the child meanwhile, so `pid`
        // is still ours (a zombie at worst) and cannot have been reused.
        sys::process::send_signal(self.pid, sig)
    }

    fn wait(&self, deadline: Option<Instant>) -> Result<i32> {
        let mut backoff = Duration::from_millis(1);
        loop {
            match self.poll()? {
                State::Exited(code) => return Ok(code),
                State::Lost => {
                    return Err(Error::os(
                        format!("waiting for process {}", self.pid),
                        std::io::Error::from_raw_os_error(libc::ECHILD),
                    ))
                }
                State::NoEntry(code) => return Err(no_entry(self.pid, code)),
                State::Running => {}
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(Error::Timeout);
            }
            match &self.pidfd {
                Some(fd) => {
                    if !sys::process::wait_pidfd(fd.as_fd(), deadline)? {
                        return Err(Error::Timeout);
                    }
                    // Readable means ended; the next poll reaps it. A
                    // concurrent reaper may have won: poll sees that too.
                    // Should the kernel report readiness before waitpid
                    // can reap, a short nap keeps this from spinning.
                    if self.poll()? == State::Running {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                None => {
                    // No pidfd (kernel < 5.3): poll with a growing sleep.
                    let mut nap = backoff;
                    if let Some(d) = deadline {
                        nap = nap.min(d.saturating_duration_since(Instant::now()));
                    }
                    std::thread::sleep(nap);
                    backoff = (backoff * 2).min(Duration::from_millis(50));
                }
            }
        }
    }
}

/// The `log` event for a child that has ended (once: when it is reaped).
#[cold]
fn log_exit(pid: u32, name: &str, state: State) {
    match state {
        State::Exited(code) if code < 0 => {
            log::info!("shmproc: process {name} (pid {pid}) killed by signal {}", -code)
        }
        State::Exited(code) => log::debug!("shmproc: process {name} (pid {pid}) exited with {code}"),
        State::NoEntry(code) => log::warn!(
            "shmproc: process {name} (pid {pid}) exited with {code} without reaching shmproc::init()"
        ),
        State::Lost => log::warn!("shmproc: process {name} (pid {pid}) was reaped outside shmproc"),
        State::Running => {}
    }
}

#[cold]
fn no_entry(pid: u32, code: i32) -> Error {
    Error::invalid(
        "launched child",
        "a child that runs its entry from shmproc::init(), the first line of main \
         (and of the test that spawns it, in a test binary)",
        format!(
            "process {pid} exited with status {code} without reaching shmproc::init(), \
             so its entry never ran"
        ),
    )
}

impl Process {
    /// Launches `f(args)` in a new process with the default start method
    /// ([`StartMethod::Spawn`]): the binary is re-executed and runs `f` from
    /// [`init`](crate::init), which must be the first line of `main` (and of a test that
    /// spawns). `f` must be a fn item or a non-capturing closure (a capturing
    /// closure is a compile-time error); `args` are serialized with serde,
    /// and shmproc handles inside them (anonymous ones included) reach the child.
    ///
    /// # Errors
    /// Arguments that cannot be serialized, or OS errors while launching.
    ///
    /// # Examples
    /// ```no_run
    /// use shmproc::Process;
    ///
    /// fn add((a, b): (u32, u32)) {
    ///     assert_eq!(a + b, 3);
    /// }
    ///
    /// fn main() -> shmproc::Result<()> {
    ///     shmproc::init();
    ///     let p = Process::spawn(add, (1, 2))?;
    ///     assert_eq!(p.join()?, 0);
    ///     Ok(())
    /// }
    /// ```
    ///
    /// A capturing closure does not compile (its captures cannot be rebuilt
    /// in a re-executed child):
    /// ```compile_fail
    /// let name = String::from("x");
    /// let p = shmproc::Process::spawn(move |_: ()| println!("{name}"), ());
    /// ```
    pub fn spawn<F, A, R>(f: F, args: A) -> Result<Process>
    where
        F: FnOnce(A) -> R,
        A: Serialize + DeserializeOwned,
        R: EntryReturn,
    {
        const {
            assert!(
                std::mem::size_of::<F>() == 0,
                "Process::spawn needs a fn item or a non-capturing closure; pass data in `args`, \
                 or use Process::builder().start_method(StartMethod::Fork)"
            )
        };
        ProcessBuilder::new().spawn(f, args)
    }

    /// A builder to set the name, daemon flag and start method.
    ///
    /// # Examples
    /// ```no_run
    /// use shmproc::Process;
    /// fn work(_: ()) {}
    /// shmproc::init();
    /// let p = Process::builder().name("worker").daemon(true).spawn(work, ())?;
    /// assert_eq!(p.name(), "worker");
    /// p.join()?;
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn builder() -> ProcessBuilder {
        ProcessBuilder::new()
    }

    pub(crate) fn from_shared(shared: Arc<Shared>) -> Process {
        Process { shared }
    }

    /// Waits for the child to end and returns its exit code (see
    /// [`exitcode`](Self::exitcode)).
    ///
    /// # Errors
    /// `Os` with `ECHILD` if the child was reaped behind shmproc's back, or
    /// `InvalidArgument` when called in a process that did not launch it.
    ///
    /// # Examples
    /// ```no_run
    /// # fn work(_: ()) {}
    /// # shmproc::init();
    /// let p = shmproc::Process::spawn(work, ())?;
    /// assert_eq!(p.join()?, 0);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn join(&self) -> Result<i32> {
        self.shared.wait(None)
    }

    /// Waits at most `timeout` for the child to end.
    ///
    /// # Errors
    /// [`Error::Timeout`] if it is still running then; otherwise as
    /// [`join`](Self::join).
    ///
    /// # Examples
    /// ```no_run
    /// # use std::time::Duration;
    /// # fn work(_: ()) { std::thread::sleep(Duration::from_secs(5)) }
    /// # shmproc::init();
    /// let p = shmproc::Process::spawn(work, ())?;
    /// assert!(matches!(p.join_timeout(Duration::from_millis(10)), Err(shmproc::Error::Timeout)));
    /// p.kill()?;
    /// assert_eq!(p.join()?, -9);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn join_timeout(&self, timeout: Duration) -> Result<i32> {
        self.shared.wait(Some(Instant::now() + timeout))
    }

    /// Whether the child is still running (reaps it if it has ended).
    ///
    /// # Examples
    /// ```no_run
    /// use shmproc::Process;
    /// fn work(_: ()) { std::thread::sleep(std::time::Duration::from_millis(100)) }
    /// shmproc::init();
    /// let p = Process::spawn(work, ())?;
    /// assert!(p.is_alive());
    /// p.join()?;
    /// assert!(!p.is_alive());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn is_alive(&self) -> bool {
        self.shared.poll_running()
    }

    /// `None` while the child runs; then its exit status, or minus the
    /// number of the signal that killed it (`-9` after [`kill`](Self::kill)),
    /// as Python's `exitcode`. A panicking entry gives 101, an entry returning
    /// `Err` gives 1.
    ///
    /// # Examples
    /// ```no_run
    /// use shmproc::Process;
    /// fn work(_: ()) {}
    /// shmproc::init(); // first line of main
    /// let p = Process::spawn(work, ())?;
    /// p.join()?;
    /// assert_eq!(p.exitcode(), Some(0));
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn exitcode(&self) -> Option<i32> {
        match self.shared.poll() {
            Ok(State::Exited(code) | State::NoEntry(code)) => Some(code),
            _ => None,
        }
    }

    /// Sends SIGTERM (the child's exit code becomes -15 unless it handles it).
    /// Does nothing if the child has already been reaped.
    ///
    /// # Errors
    /// The OS error from `kill`, or `InvalidArgument` in a process that did
    /// not launch this child.
    ///
    /// # Examples
    /// ```no_run
    /// use shmproc::Process;
    /// fn work(_: ()) { std::thread::sleep(std::time::Duration::from_secs(60)) }
    /// shmproc::init(); // first line of main
    /// let p = Process::spawn(work, ())?;
    /// p.terminate()?;
    /// assert_eq!(p.join()?, -15); // SIGTERM
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn terminate(&self) -> Result<()> {
        self.shared.signal(Signal::SIGTERM)
    }

    /// Sends SIGKILL (exit code -9). Does nothing if the child has already
    /// been reaped.
    ///
    /// # Errors
    /// As [`terminate`](Self::terminate).
    ///
    /// # Examples
    /// ```no_run
    /// use shmproc::Process;
    /// fn work(_: ()) { std::thread::sleep(std::time::Duration::from_secs(60)) }
    /// shmproc::init(); // first line of main
    /// let p = Process::spawn(work, ())?;
    /// p.kill()?;
    /// assert_eq!(p.join()?, -9);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn kill(&self) -> Result<()> {
        self.shared.signal(Signal::SIGKILL)
    }

    /// The child's process id.
    ///
    /// # Examples
    /// ```no_run
    /// use shmproc::Process;
    /// fn work(_: ()) {}
    /// shmproc::init(); // first line of main
    /// let p = Process::spawn(work, ())?;
    /// println!("child pid {}", p.pid());
    /// p.join()?;
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn pid(&self) -> u32 {
        self.shared.pid
    }

    /// The child's name (given to the builder, or `"Process-N"`).
    ///
    /// # Examples
    /// ```no_run
    /// use shmproc::Process;
    /// fn work(_: ()) {}
    /// shmproc::init(); // first line of main
    /// let p = Process::spawn(work, ())?;
    /// assert!(p.name().starts_with("Process-"));
    /// p.join()?;
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Whether the child is a daemon (killed when its parent dies).
    ///
    /// # Examples
    /// ```no_run
    /// use shmproc::Process;
    /// fn work(_: ()) {}
    /// shmproc::init(); // first line of main
    /// let p = Process::spawn(work, ())?;
    /// assert!(!p.daemon());
    /// p.join()?;
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn daemon(&self) -> bool {
        self.shared.daemon
    }

    /// A descriptor that becomes readable (`poll`/`epoll` `POLLIN`) when the
    /// child ends, like Python's `sentinel`: a supervisor can wait for any
    /// of many children at once. `None` on kernels without pidfd (< 5.3).
    /// Reading it is not reaping: call [`join`](Self::join) or
    /// [`exitcode`](Self::exitcode) afterwards.
    ///
    /// # Examples
    /// ```no_run
    /// use shmproc::Process;
    /// fn work(_: ()) {}
    /// shmproc::init(); // first line of main
    /// let p = Process::spawn(work, ())?;
    /// use std::os::fd::AsRawFd;
    /// if let Some(fd) = p.sentinel() {
    ///     let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    ///     // SAFETY: one valid pollfd.
    ///     unsafe { libc::poll(&mut pfd, 1, -1) }; // until the child ends
    /// }
    /// p.join()?;
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn sentinel(&self) -> Option<BorrowedFd<'_>> {
        self.shared.pidfd.as_ref().map(|fd| fd.as_fd())
    }

    /// The start method the child was launched with.
    ///
    /// # Examples
    /// ```no_run
    /// use shmproc::Process;
    /// fn work(_: ()) {}
    /// shmproc::init(); // first line of main
    /// let p = Process::spawn(work, ())?;
    /// assert_eq!(p.start_method(), shmproc::StartMethod::Spawn);
    /// p.join()?;
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn start_method(&self) -> StartMethod {
        self.shared.method
    }
}

/// The waiter's side: what `wait()` and the async reactor use.
impl Process {
    /// The child's exit word, to sleep on together with other futex words
    /// (`docs/protocols/exit-word.md`); `None` for a handle without one.
    /// The word only wakes: whether the child has exited is
    /// [`has_exited_now`](Self::has_exited_now)'s answer.
    pub(crate) fn exit_word(&self) -> Option<&ExitWord> {
        self.shared.exit.as_ref()
    }

    /// Whether the child has exited, without blocking: the kernel's answer
    /// (`waitpid`, which reaps it, or the pidfd), never the exit word's.
    /// Waiters ask it at every wake-up and slice end.
    pub(crate) fn has_exited_now(&self) -> bool {
        self.shared.has_exited_now()
    }

    /// After the exit word said dead: waits, at most until `deadline`, for
    /// the kernel to finish the exit (the word changes early in the exit,
    /// before the process can be reaped: microseconds, `docs/protocols/exit-word.md`).
    /// `true` once [`has_exited_now`](Self::has_exited_now); `false` at the
    /// deadline, e.g. after an exec, which marks the word of a live child.
    #[cfg(test)]
    pub(crate) fn settle_exit(&self, deadline: Instant) -> bool {
        if self.has_exited_now() {
            return true;
        }
        if let Some(fd) = &self.shared.pidfd {
            // An error (none is expected from poll) falls to the check below.
            let _ = sys::process::wait_pidfd(fd.as_fd(), Some(deadline));
        }
        self.has_exited_now()
    }
}

const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Process>();
};

impl std::fmt::Debug for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Process")
            .field("name", &self.shared.name)
            .field("pid", &self.shared.pid)
            .field("daemon", &self.shared.daemon)
            .field("state", &*self.shared.state.lock())
            .finish()
    }
}

/// A word nothing changes, for a child without an exit word: its exit is
/// found at slice ends (by its pidfd).
static NO_WORD: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl crate::sync::many::sealed::WaitSource for Process {
    fn readiness(&self) -> crate::sync::many::Readiness {
        use crate::sync::many::Readiness;
        if self.shared.cached() != State::Running {
            return Readiness::Ready;
        }
        match self.exit_word() {
            Some(w) if w.has_exited() => {
                // The kernel wakes one sleeper at the death: wake the others.
                w.wake_all();
                // The word changes early in the exit (or at an exec): the
                // kernel's own answer decides; until it does, look again soon.
                if self.has_exited_now() {
                    Readiness::Ready
                } else {
                    Readiness::Soon
                }
            }
            _ => Readiness::Pending,
        }
    }
    fn ready_slow(&self) -> bool {
        self.has_exited_now()
    }
    fn arm(&self) -> crate::sync::many::Armed {
        // The exit word: the kernel changes it and wakes a sleeper when the
        // child dies (`docs/protocols/exit-word.md`). Without one (a child
        // that never armed it), slices and `ready_slow` find the exit.
        match self
            .exit_word()
            .and_then(|w| w.prepare_sleep().map(|v| (w, v)))
        {
            Some((w, v)) => crate::sync::many::Armed::plain(w.word(), v, self.clone()),
            None => crate::sync::many::Armed::plain(&NO_WORD, 0, ()),
        }
    }
}

impl Process {
    /// [`join`](Self::join) as a future, for any executor: it completes when
    /// the child has ended (also by `SIGKILL`), without blocking a thread.
    ///
    /// # Errors
    /// As [`join`](Self::join).
    ///
    /// # Examples
    /// ```no_run
    /// # fn work(_: ()) {}
    /// # async fn demo() -> shmproc::Result<()> {
    /// let child = shmproc::Process::spawn(work, ())?;
    /// let code: i32 = child.join_async().await?;
    /// assert_eq!(code, 0);
    /// # Ok(()) }
    /// ```
    pub fn join_async(&self) -> impl std::future::Future<Output = Result<i32>> + Send + '_ {
        crate::sync::reactor::Wait::new(self, |p: &&Process, slow| {
            let state = if slow {
                match p.shared.poll() {
                    Ok(s) => s,
                    Err(e) => return Some(Err(e)),
                }
            } else {
                p.shared.cached()
            };
            p.shared.outcome(state)
        })
    }
}
