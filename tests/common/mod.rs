//! Helpers shared by the integration tests: a reaper that kills and reaps
//! children on every exit path, bounded joins and waits, and a watchdog.

#![allow(dead_code)] // each test file uses a subset
#![allow(unreachable_pub)] // a private module of each test crate

use std::time::{Duration, Instant};

use shmproc::{Process, RawValue};

pub mod logs;

/// Serialises the tests of one binary that must not overlap: tests that
/// fork (`fork` copies only the calling thread, so a lock another test's
/// thread holds at that moment would stay locked for ever in the child: the
/// documented `StartMethod::Fork` caveat), and tests that count this
/// process's threads (another test's threads would be counted too).
pub fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

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

/// Waits (bounded by [`WATCHDOG`]) until `done()` holds, checking every
/// millisecond; `what` names the awaited state in the watchdog's message.
pub fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + WATCHDOG;
    while !done() {
        assert!(Instant::now() < deadline, "watchdog: never {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits (bounded) until `flag` reaches `n`.
pub fn wait_for(flag: &RawValue<u32>, n: u32) {
    wait_until(&format!("flag reached {n}"), || flag.load() >= n);
}

/// Field `label` of the named segment `name` as a number, read the way
/// `shmproc inspect` reads it (`shmproc::inspect::details`): a counter such
/// as "blocked acquires" or "get sleeps (empty)", or a gauge such as
/// "getters asleep".
pub fn counter(name: &str, label: &str) -> u64 {
    let fields =
        shmproc::inspect::details(name).unwrap_or_else(|e| panic!("inspecting {name}: {e}"));
    let (_, v) = fields
        .iter()
        .find(|(k, _)| *k == label)
        .unwrap_or_else(|| panic!("{name} shows no {label:?}: {fields:?}"));
    v.parse()
        .unwrap_or_else(|_| panic!("{label:?} of {name} is not a number: {v}"))
}

/// Waits (bounded) until field `label` of segment `name` reaches `n`: the
/// handshake for "a waiter has gone to sleep", on the crate's own counters
/// (bumped just before the futex wait) instead of a guessed sleep.
pub fn wait_for_counter(name: &str, label: &str, n: u64) {
    wait_until(&format!("{label:?} of {name} reached {n}"), || {
        counter(name, label) >= n
    });
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

/// A name no other test (or test run) uses: prefix, pid and a counter.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    // Relaxed: only uniqueness matters.
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// Whether process `pid` exists and is not a zombie (`/proc/<pid>/stat`).
pub fn pid_exists(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    !matches!(state, Some("Z") | Some("X") | Some("x") | None)
}
