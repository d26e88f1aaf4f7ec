//! [`ProcessBuilder`]: name, daemon flag, start method, and how a re-executed child
//! finds its way back to `init()` in a test harness.

use std::ffi::OsString;
use std::os::fd::AsFd;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::launch::{self, ChildArgs};
use super::{fork, registry, EntryReturn, Process, Shared, StartMethod, State};
use crate::error::{Error, Result};
use crate::sys;
use crate::sys::exit_word::ExitWord;

/// Configures and launches a [`Process`].
///
/// # Examples
/// ```no_run
/// use shmproc::{Process, StartMethod};
///
/// fn work(n: u64) {
///     println!("{} got {n}", shmproc::current_process().name());
/// }
///
/// fn main() -> shmproc::Result<()> {
///     shmproc::init();
///     let p = Process::builder()
///         .name("cruncher")
///         .daemon(true)
///         .start_method(StartMethod::Spawn)
///         .spawn(work, 7)?;
///     p.join()?;
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until `spawn` is called"]
pub struct ProcessBuilder {
    name: Option<String>,
    pub(super) daemon: bool,
    method: StartMethod,
    pub(super) child_args: ChildArgs,
}

impl ProcessBuilder {
    /// A builder with the defaults: a `"Process-N"` name, not a daemon,
    /// [`StartMethod::Spawn`].
    ///
    /// # Examples
    /// ```no_run
    /// use shmproc::ProcessBuilder;
    /// fn work(_: ()) {}
    /// shmproc::init();
    /// let p = ProcessBuilder::new().name("w").spawn(work, ())?;
    /// p.join()?;
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn new() -> ProcessBuilder {
        ProcessBuilder::default()
    }

    /// The child's name, as [`Process::name`] and, in the child,
    /// `current_process().name()` report it.
    ///
    /// # Examples
    /// ```no_run
    /// fn work(_: ()) { assert_eq!(shmproc::current_process().name(), "loader"); }
    /// shmproc::init();
    /// let p = shmproc::Process::builder().name("loader").spawn(work, ())?;
    /// assert_eq!(p.join()?, 0);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> ProcessBuilder {
        self.name = Some(name.into());
        self
    }

    /// A daemon child is killed (SIGKILL) when its parent dies.
    ///
    /// The kernel's parent-death signal follows the parent *thread* that
    /// launched the child: if that thread exits while the parent process goes
    /// on, the daemon is killed too. Launch daemons from a thread that lives
    /// as long as they should (e.g. the main thread).
    ///
    /// # Examples
    /// ```no_run
    /// fn work(_: ()) {}
    /// shmproc::init();
    /// let p = shmproc::Process::builder().daemon(true).spawn(work, ())?;
    /// assert!(p.daemon());
    /// p.join()?;
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn daemon(mut self, daemon: bool) -> ProcessBuilder {
        self.daemon = daemon;
        self
    }

    /// How to start the child (default [`StartMethod::Spawn`]).
    ///
    /// # Examples
    /// ```no_run
    /// use shmproc::{Process, StartMethod};
    /// fn work(n: u32) { println!("{n}"); }
    /// shmproc::init();
    /// let p = Process::builder().start_method(StartMethod::Fork).spawn(work, 7)?;
    /// p.join()?;
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn start_method(mut self, method: StartMethod) -> ProcessBuilder {
        self.method = method;
        self
    }

    /// For a re-executed child of a libtest test binary: the test to run in
    /// the child (whose first line must be `shmproc::init()`). Needed only
    /// when spawning from a thread that is not the test's own thread (libtest
    /// names each test's thread after the test, and that name is used by
    /// default).
    ///
    /// # Examples
    /// ```no_run
    /// fn work(_: ()) {}
    /// #[test]
    /// fn spawns_from_a_helper_thread() {
    ///     shmproc::init();
    ///     std::thread::spawn(|| {
    ///         let p = shmproc::Process::builder()
    ///             .test_name("spawns_from_a_helper_thread")
    ///             .spawn(work, ())
    ///             .unwrap();
    ///         p.join().unwrap();
    ///     })
    ///     .join()
    ///     .unwrap();
    /// }
    /// ```
    pub fn test_name(mut self, test: impl Into<String>) -> ProcessBuilder {
        self.child_args = ChildArgs::Test(test.into());
        self
    }

    /// For unusual harnesses: exactly these command-line arguments for a
    /// re-executed child, which must lead it to call `shmproc::init()` before
    /// anything else.
    ///
    /// # Examples
    /// ```no_run
    /// fn work(_: ()) {}
    /// shmproc::init();
    /// // A harness whose children need `--child` to reach `shmproc::init()`.
    /// let p = shmproc::Process::builder().child_args(["--child"]).spawn(work, ())?;
    /// p.join()?;
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn child_args<I, S>(mut self, args: I) -> ProcessBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.child_args = ChildArgs::Raw(args.into_iter().map(Into::into).collect());
        self
    }

    /// Fixes, in the calling thread, which test a re-executed child of a
    /// test binary runs, so that the builder can launch from other threads.
    #[cfg_attr(loom, allow(dead_code))] // the pool is not built under loom
    pub(crate) fn pin_child_args(mut self) -> Result<ProcessBuilder> {
        self.child_args = launch::pin(&self.child_args)?;
        Ok(self)
    }

    /// Forks a child that runs the closure `f` (which may capture anything),
    /// whatever start method was set: shorthand for
    /// `.start_method(StartMethod::Fork).spawn(|()| f(), ())`. The
    /// [`StartMethod::Fork`] caveat about threads applies.
    ///
    /// # Errors
    /// OS errors from `fork`.
    ///
    /// # Examples
    /// ```no_run
    /// shmproc::init();
    /// let greeting = String::from("hello");
    /// let p = shmproc::Process::builder().spawn_fork(move || println!("{greeting}"))?;
    /// assert_eq!(p.join()?, 0);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn spawn_fork<F, R>(self, f: F) -> Result<Process>
    where
        F: FnOnce() -> R,
        R: EntryReturn,
    {
        self.start_method(StartMethod::Fork)
            .spawn(move |()| f(), ())
    }

    /// Launches `f(args)` in a new process.
    ///
    /// With [`StartMethod::Spawn`], `f` must be a fn item or a non-capturing
    /// closure and `args` are serialized (shmproc handles inside them reach
    /// the child); with [`StartMethod::Fork`], `f` may capture anything and
    /// `args` are moved into the child as they are.
    ///
    /// # Errors
    /// `InvalidArgument` for a capturing closure with `Spawn`, or when called
    /// from a launched child that has not called `init()`, or from an unnamed
    /// thread of a test binary (see [`test_name`](Self::test_name));
    /// `Codec` for arguments that cannot be serialized; OS errors.
    ///
    /// # Examples
    /// ```no_run
    /// fn add((a, b): (u32, u32)) -> Result<(), String> {
    ///     if a + b == 3 { Ok(()) } else { Err("bad sum".into()) }
    /// }
    /// shmproc::init();
    /// let p = shmproc::Process::builder().name("adder").spawn(add, (1, 2))?;
    /// assert_eq!(p.join()?, 0);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn spawn<F, A, R>(self, f: F, args: A) -> Result<Process>
    where
        F: FnOnce(A) -> R,
        A: Serialize + DeserializeOwned,
        R: EntryReturn,
    {
        let g = registry::globals();
        g.reap_finished();
        let (identity, default_name) = g.next_child();
        let name = self.name.clone().unwrap_or(default_name);
        // The child's exit word: the kernel marks it when the child dies
        // (docs/protocols/exit-word.md).
        let (pid, boot, exit) = match self.method {
            StartMethod::Spawn => {
                if std::mem::size_of::<F>() != 0 {
                    return Err(Error::invalid(
                        "entry",
                        "a fn item or a non-capturing closure with StartMethod::Spawn \
                         (or StartMethod::Fork for a capturing closure)",
                        format!("{} ({} bytes)", std::any::type_name::<F>(), size_of::<F>()),
                    ));
                }
                let (exit, exit_fd) = ExitWord::create()?;
                let (pid, boot) = launch::spawn::<F, A, R>(
                    &self.child_args,
                    self.daemon,
                    &args,
                    &name,
                    identity,
                    exit_fd.as_fd(),
                )?;
                (pid, Some(boot), exit)
            }
            StartMethod::Fork => {
                // The forked child inherits the mapping; no descriptor.
                let exit = ExitWord::for_fork()?;
                let (pid, exit) = fork::spawn(f, args, &name, self.daemon, identity, exit)?;
                (pid, None, exit)
            }
        };
        let shared = Arc::new(Shared {
            pid,
            name,
            daemon: self.daemon,
            method: self.method,
            pidfd: sys::process::pidfd_open(pid),
            owner: sys::task::pid(),
            boot,
            exit: Some(exit),
            state: Mutex::new(State::Running),
        });
        log::debug!(
            "shmproc: spawned process {} (pid {pid}, {:?})",
            shared.name,
            self.method
        );
        g.add_child(shared.clone());
        Ok(Process::from_shared(shared))
    }
}
