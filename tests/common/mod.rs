//! Helpers shared by the integration tests: a reaper that kills and reaps
//! children on every exit path, bounded joins and waits, and a watchdog.

#![allow(dead_code)] // each test file uses a subset

use std::time::{Duration, Instant};

use shmproc::{Process, RawValue};

pub mod logs;

/// Upper bound of every wait: a bug fails the test instead of hanging it.
pub const WATCHDOG: Duration = Duration::from_secs(60);

/// Kills and reaps the processes it holds when dropped (also on panic).
pub struct Reaper(Vec<Process>);

impl Reaper {
    pub fn new() -> Self {
        Reaper(Vec::new())
    }

    /// A reaper for processes already started.
    pub fn of(ps: &[&Process]) -> Self {
        Reaper(ps.iter().map(|p| (*p).clone()).collect())
    }

    pub fn watch(&mut self, p: Process) -> Process {
        self.0.push(p.clone());
        p
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = p.kill();
            let _ = p.join_timeout(WATCHDOG);
        }
    }
}

/// Joins `p` (bounded) and returns its exit code.
pub fn join(p: &Process) -> i32 {
    p.join_timeout(WATCHDOG)
        .unwrap_or_else(|e| panic!("joining {}: {e}", p.name()))
}

/// Waits (bounded) until `flag` reaches `n`.
pub fn wait_for(flag: &RawValue<u32>, n: u32) {
    let deadline = Instant::now() + WATCHDOG;
    while flag.load() < n {
        assert!(Instant::now() < deadline, "watchdog: flag stayed below {n}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Sends SIGKILL to the process `pid` (as an external killer would).
pub fn sigkill(pid: u32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill -9");
}

/// Runs `f` on a thread and fails the test (instead of hanging) if it takes
/// longer than `secs`.
pub fn watchdog<R: Send + 'static>(secs: u64, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .expect("watchdog: test blocked too long")
}

/// Ends the whole test process (exit 99) if the test holding it runs longer
/// than [`WATCHDOG`]: a hang fails the run instead of stalling it. Dropping
/// it (the test ended) disarms it.
pub struct Watchdog(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Watchdog {
    /// Arms a watchdog for the test named `what`.
    pub fn new(what: &'static str) -> Watchdog {
        use std::sync::atomic::Ordering;
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let d = done.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            // SeqCst: a plain flag between two threads; any order would do.
            while !d.load(Ordering::SeqCst) {
                if start.elapsed() > WATCHDOG {
                    eprintln!("watchdog: {what} hung for {WATCHDOG:?}");
                    std::process::exit(99);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Watchdog(done)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // SeqCst: as in `new`.
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}
