//! The process launcher with real processes: spawn and fork, exit codes,
//! signals, timeouts, names, daemons, and segment handles carried to children.
//!
//! Every test that spawns calls `shmproc::init()` first: a re-executed child
//! runs only its own test (selected by name) and `init()` runs its entry there.
//! Every wait is bounded (`WATCHDOG`), and `Reaper` kills and reaps children
//! on every exit path, so a failing test leaves no process behind.

mod common;
use common::Reaper;

use std::time::{Duration, Instant};

use common::{pid_exists, unique_name};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use shmproc::{Error, Event, Process, Queue, RawValue, StartMethod};

/// Upper bound of every wait: a bug fails the test instead of hanging it.
const WATCHDOG: Duration = Duration::from_secs(30);

fn join(p: &Process) -> i32 {
    p.join_timeout(WATCHDOG)
        .unwrap_or_else(|e| panic!("joining {}: {e}", p.name()))
}

/// A shared `u64` cell passed to children as a handle.
struct Cell(RawValue<u64>);

impl Cell {
    fn create(name: Option<String>) -> Cell {
        let b = RawValue::<u64>::builder();
        Cell(match name {
            Some(n) => b.name(&n).create().unwrap(),
            None => b.create().unwrap(),
        })
    }
    fn get(&self) -> u64 {
        self.0.load()
    }
    fn set(&self, v: u64) {
        self.0.store(v)
    }
    /// Waits (bounded) until the cell is non-zero.
    fn wait_nonzero(&self) -> u64 {
        let deadline = Instant::now() + WATCHDOG;
        loop {
            let v = self.get();
            if v != 0 {
                return v;
            }
            assert!(Instant::now() < deadline, "watchdog: cell stayed 0");
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Serialize for Cell {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Cell {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        RawValue::deserialize(d).map(Cell)
    }
}

// ---- entries ---------------------------------------------------------------

fn check_args((n, s, v): (u32, String, Vec<u8>)) -> Result<(), String> {
    if (n, s.as_str(), v.as_slice()) == (7, "seven", &[1, 2, 3][..]) {
        Ok(())
    } else {
        Err(format!("unexpected args {n} {s:?} {v:?}"))
    }
}

fn nothing(_: ()) {}

fn boom(_: ()) {
    panic!("boom on purpose");
}

fn sleep_secs(s: u64) {
    std::thread::sleep(Duration::from_secs(s));
}

/// Returns once `go` is set (bounded: a test that never sets it fails).
fn wait_for_go(go: Event) -> Result<(), String> {
    if go.wait_timeout(WATCHDOG) {
        Ok(())
    } else {
        Err("go was never set".into())
    }
}

fn write_cell((cell, v): (Cell, u64)) {
    cell.set(v);
}

fn check_identity((name, parent_pid): (String, u32)) -> Result<(), String> {
    let me = shmproc::current_process();
    let parent = shmproc::parent_process().ok_or("no parent_process in a child")?;
    if me.name() != name || me.pid() != std::process::id() {
        return Err(format!("current_process: expected {name}, found {me:?}"));
    }
    if parent.pid() != parent_pid || parent.name() != "MainProcess" || !parent.is_alive() {
        return Err(format!(
            "parent_process: expected {parent_pid}, found {parent:?}"
        ));
    }
    Ok(())
}

/// Publishes N of this process's default name `Process-N`.
fn report_default_name(cell: Cell) -> Result<(), String> {
    let me = shmproc::current_process();
    let n = me
        .name()
        .strip_prefix("Process-")
        .and_then(|n| n.parse::<u64>().ok());
    cell.set(n.ok_or(format!("expected a name Process-N, found {}", me.name()))?);
    Ok(())
}

/// Spawns a grandchild and checks its default name extends ours
/// (`Process-3` launches `Process-3:1`, as in Python).
fn spawn_nested(_: ()) -> Result<(), String> {
    let me = shmproc::current_process();
    let g = Process::spawn(nothing, ()).map_err(|e| e.to_string())?;
    let code = g.join_timeout(WATCHDOG).map_err(|e| e.to_string())?;
    let expected = format!("{}:1", me.name());
    if g.name() != expected || code != 0 {
        return Err(format!(
            "grandchild: expected {expected} exiting 0, found {} exiting {code}",
            g.name()
        ));
    }
    Ok(())
}

/// `StartMethod` as an argument (it is not serde).
#[derive(Serialize, Deserialize, Clone, Copy)]
enum Method {
    Spawn,
    Fork,
}

/// Spawns a daemon grandchild that sleeps, publishes its pid, then sleeps.
fn spawn_daemon_then_sleep((cell, method): (Cell, Method)) -> shmproc::Result<()> {
    let method = match method {
        Method::Spawn => StartMethod::Spawn,
        Method::Fork => StartMethod::Fork,
    };
    let g = Process::builder()
        .daemon(true)
        .start_method(method)
        .spawn(sleep_secs, 60)?;
    cell.set(u64::from(g.pid()));
    std::thread::sleep(Duration::from_secs(60));
    Ok(())
}

// ---- tests -----------------------------------------------------------------

#[test]
fn spawn_join_with_args() {
    shmproc::init();
    let mut r = Reaper::new();
    let p =
        r.watch(Process::spawn(check_args, (7u32, "seven".to_string(), vec![1u8, 2, 3])).unwrap());
    assert_eq!(join(&p), 0);
    assert_eq!(p.exitcode(), Some(0));
    let bad = r.watch(Process::spawn(check_args, (8u32, "eight".to_string(), vec![])).unwrap());
    assert_eq!(join(&bad), 1, "an entry returning Err exits with 1");
}

#[test]
fn exit_code_zero_and_closure() {
    shmproc::init();
    let mut r = Reaper::new();
    let p = r.watch(Process::spawn(nothing, ()).unwrap());
    assert_eq!(join(&p), 0);
    let p = r.watch(Process::spawn(|x: u64| assert_eq!(x, 5), 5u64).unwrap());
    assert_eq!(join(&p), 0, "a non-capturing closure is an entry");
}

/// Fails unless stdin is at end of file at once (/dev/null), as opposed to
/// holding the bytes the parent left in its own stdin.
fn stdin_is_empty(_: ()) -> Result<(), String> {
    use std::io::Read;
    let mut buf = [0u8; 64];
    match std::io::stdin().read(&mut buf) {
        Ok(0) => Ok(()),
        other => Err(format!("stdin is not /dev/null: read {other:?}")),
    }
}

#[test]
fn children_get_dev_null_as_stdin() {
    use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
    shmproc::init();
    let mut r = Reaper::new();
    // Our stdin becomes a pipe holding bytes (the write end stays open): a
    // child that inherited it would read them instead of end-of-file.
    let mut fds = [0; 2];
    // SAFETY: pipe writes two new descriptors into the array we own.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both descriptors are new and owned by nobody else.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: write reads 6 bytes from a live buffer.
    let written = unsafe { libc::write(wr.as_raw_fd(), b"parent".as_ptr().cast(), 6) };
    assert_eq!(written, 6);
    // SAFETY: dup returns a new descriptor (or -1), which we then own.
    let saved = unsafe { libc::dup(0) };
    assert!(saved >= 0);
    // SAFETY: as above; `saved` is ours.
    let saved = unsafe { OwnedFd::from_raw_fd(saved) };
    dup_onto(rd.as_fd(), 0);
    let spawned = r.watch(Process::spawn(stdin_is_empty, ()).unwrap());
    let forked = r.watch(
        Process::builder()
            .start_method(StartMethod::Fork)
            .spawn(stdin_is_empty, ())
            .unwrap(),
    );
    let codes = (join(&spawned), join(&forked));
    dup_onto(saved.as_fd(), 0);
    assert_eq!(codes, (0, 0), "children read /dev/null, not our stdin");
    drop(wr);
}

#[test]
fn panicking_entry_exits_nonzero() {
    shmproc::init();
    let mut r = Reaper::new();
    let p = r.watch(Process::spawn(boom, ()).unwrap());
    assert_eq!(join(&p), 101);
    assert_eq!(p.exitcode(), Some(101));
}

#[test]
fn kill_gives_minus_nine() {
    shmproc::init();
    let mut r = Reaper::new();
    let p = r.watch(Process::spawn(sleep_secs, 60u64).unwrap());
    assert!(p.is_alive());
    assert_eq!(p.exitcode(), None);
    p.kill().unwrap();
    assert_eq!(join(&p), -9);
    assert!(!p.is_alive());
    assert_eq!(p.exitcode(), Some(-9));
    p.kill().unwrap(); // a no-op once reaped
}

#[test]
fn terminate_gives_minus_fifteen() {
    shmproc::init();
    let mut r = Reaper::new();
    let p = r.watch(Process::spawn(sleep_secs, 60u64).unwrap());
    p.terminate().unwrap();
    assert_eq!(join(&p), -15);
}

#[test]
fn join_timeout_then_join() {
    shmproc::init();
    let mut r = Reaper::new();
    let p = r.watch(Process::spawn(sleep_secs, 60u64).unwrap());
    let t = Instant::now();
    assert!(matches!(
        p.join_timeout(Duration::from_millis(50)),
        Err(Error::Timeout)
    ));
    assert!(t.elapsed() >= Duration::from_millis(50));
    assert!(p.is_alive());
    p.kill().unwrap();
    assert_eq!(join(&p), -9);
    // Joining again returns the same code at once.
    assert_eq!(p.join_timeout(Duration::ZERO).unwrap(), -9);
}

#[test]
fn sentinel_becomes_readable_when_the_child_ends() {
    shmproc::init();
    let mut r = Reaper::new();
    let p = r.watch(Process::spawn(sleep_secs, 60u64).unwrap());
    let Some(fd) = p.sentinel() else {
        return; // kernel without pidfd: join covers it
    };
    let readable = |ms: i32| {
        let mut pfd = libc::pollfd {
            fd: std::os::fd::AsRawFd::as_raw_fd(&fd),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd on our stack; `fd` is borrowed from `p`.
        unsafe { libc::poll(&mut pfd, 1, ms) == 1 }
    };
    assert!(!readable(0));
    p.kill().unwrap();
    assert!(readable(WATCHDOG.as_millis() as i32));
    assert_eq!(join(&p), -9);
}

#[test]
fn is_alive_transitions() {
    shmproc::init();
    let mut r = Reaper::new();
    let go = Event::new().unwrap();
    let p = r.watch(Process::spawn(wait_for_go, go.clone()).unwrap());
    assert!(p.is_alive()); // it cannot end before `go` is set
    go.set();
    assert_eq!(join(&p), 0);
    assert!(!p.is_alive());
}

#[test]
fn name_pid_and_identity() {
    shmproc::init();
    let mut r = Reaper::new();
    let me = std::process::id();
    let p = r.watch(
        Process::builder()
            .name("worker-x")
            .spawn(check_identity, ("worker-x".to_string(), me))
            .unwrap(),
    );
    assert_eq!(p.name(), "worker-x");
    assert!(p.pid() > 0 && p.pid() != me);
    assert_eq!(join(&p), 0);
    // A default name is Process-N, and the child sees the same one.
    let cell = Cell::create(None);
    let q = r.watch(Process::spawn(report_default_name, Cell(cell.0.clone())).unwrap());
    assert_eq!(join(&q), 0);
    assert_eq!(q.name(), format!("Process-{}", cell.get()));
    assert_eq!(shmproc::current_process().name(), "MainProcess");
    assert!(shmproc::parent_process().is_none());
}

#[test]
fn fork_with_capturing_closure() {
    shmproc::init();
    let mut r = Reaper::new();
    let cell = Cell::create(None);
    let c = Cell(cell.0.clone());
    let word = String::from("captured");
    let p = r.watch(
        Process::builder()
            .name("forked")
            .start_method(StartMethod::Fork)
            .spawn(
                move |n: u64| {
                    assert_eq!(word, "captured");
                    c.set(n + word.len() as u64);
                    assert_eq!(shmproc::current_process().name(), "forked");
                },
                10u64,
            )
            .unwrap(),
    );
    assert_eq!(join(&p), 0);
    assert_eq!(cell.get(), 18);
    let c = Cell(cell.0.clone());
    let p = r.watch(Process::builder().spawn_fork(move || c.set(19)).unwrap());
    assert_eq!(join(&p), 0);
    assert_eq!(cell.get(), 19);
    let p = r.watch(
        Process::builder()
            .start_method(StartMethod::Fork)
            .spawn(boom, ())
            .unwrap(),
    );
    assert_eq!(join(&p), 101);
}

#[test]
fn fork_shares_anonymous_segments() {
    shmproc::init();
    let mut r = Reaper::new();
    let cell = Cell::create(None);
    let c = Cell(cell.0.clone());
    let p = r.watch(
        Process::builder()
            .start_method(StartMethod::Fork)
            .spawn(move |n: u64| c.set(n), 18u64)
            .unwrap(),
    );
    assert_eq!(join(&p), 0);
    assert_eq!(cell.get(), 18);
}

#[test]
fn capturing_closure_with_spawn_is_an_error() {
    shmproc::init();
    let s = String::from("x");
    let e = Process::builder()
        .spawn(move |_: ()| drop(s), ())
        .unwrap_err();
    assert!(e.to_string().contains("non-capturing"), "{e}");
}

#[test]
fn anonymous_segment_reaches_child() {
    shmproc::init();
    let mut r = Reaper::new();
    let cell = Cell::create(None);
    let p = r.watch(Process::spawn(write_cell, (Cell(cell.0.clone()), 42u64)).unwrap());
    assert_eq!(join(&p), 0);
    assert_eq!(cell.get(), 42);
}

#[test]
fn named_segment_reaches_child() {
    shmproc::init();
    let mut r = Reaper::new();
    let name = unique_name("proc-named");
    let cell = Cell::create(Some(name.clone()));
    let p = r.watch(Process::spawn(write_cell, (Cell(cell.0.clone()), 43u64)).unwrap());
    assert_eq!(join(&p), 0);
    assert_eq!(cell.get(), 43);
    drop(cell);
    assert!(!std::path::Path::new(&format!("/dev/shm/shmproc.{name}")).exists());
}

#[test]
fn anonymous_handle_outside_launcher_is_an_error() {
    let cell = Cell::create(None);
    assert!(postcard::to_stdvec(&cell).is_err());
    // Through the crate's codec the reason survives postcard's generic error.
    let q = Queue::<Cell>::new(1).unwrap();
    let e = q.put(&cell).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, shmproc::Error::InvalidArgument { .. }), "{msg}");
    assert!(
        msg.contains("anonymous") && msg.contains("Process::spawn"),
        "{msg}"
    );
}

#[test]
fn daemon_dies_with_parent() {
    shmproc::init();
    daemon_dies_with_parent_by(Method::Spawn);
}

#[test]
fn forked_daemon_dies_with_parent() {
    shmproc::init();
    daemon_dies_with_parent_by(Method::Fork);
}

fn daemon_dies_with_parent_by(method: Method) {
    let mut r = Reaper::new();
    // The orphaned grandchild is re-parented to us rather than to init, so
    // that we can reap it: the test leaves no zombie behind.
    assert_eq!(
        // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer flag, no pointers.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) },
        0
    );
    let cell = Cell::create(None);
    let child =
        r.watch(Process::spawn(spawn_daemon_then_sleep, (Cell(cell.0.clone()), method)).unwrap());
    let grandchild = cell.wait_nonzero() as u32;
    assert!(pid_exists(grandchild));
    child.kill().unwrap();
    assert_eq!(join(&child), -9);
    let deadline = Instant::now() + WATCHDOG;
    while pid_exists(grandchild) {
        assert!(
            Instant::now() < deadline,
            "daemon grandchild {grandchild} outlived its parent"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(grandchild as i32), None);
    assert!(
        matches!(
            status,
            Ok(nix::sys::wait::WaitStatus::Signaled(
                _,
                nix::sys::signal::Signal::SIGKILL,
                _
            ))
        ),
        "{status:?}"
    );
}

#[test]
fn active_children_lists_and_reaps() {
    shmproc::init();
    let mut r = Reaper::new();
    let a = r.watch(Process::spawn(sleep_secs, 60u64).unwrap());
    let b = r.watch(Process::spawn(sleep_secs, 60u64).unwrap());
    let pids: Vec<u32> = shmproc::active_children()
        .iter()
        .map(Process::pid)
        .collect();
    assert!(
        pids.contains(&a.pid()) && pids.contains(&b.pid()),
        "{pids:?}"
    );
    a.kill().unwrap();
    b.kill().unwrap();
    // Unjoined: active_children reaps them once they have ended.
    let deadline = Instant::now() + WATCHDOG;
    loop {
        let left: Vec<u32> = shmproc::active_children()
            .iter()
            .map(Process::pid)
            .collect();
        if !left.contains(&a.pid()) && !left.contains(&b.pid()) {
            break;
        }
        assert!(Instant::now() < deadline, "children never reaped: {left:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(a.exitcode(), Some(-9));
    assert_eq!(b.exitcode(), Some(-9));
}

/// This test deliberately does not call `init()`: its re-executed child runs
/// the test body again, whose spawn must refuse (else it would launch copies
/// of itself), and the parent learns the entry never ran.
#[test]
fn child_without_init_is_reported() {
    let p = match Process::spawn(nothing, ()) {
        Ok(p) => p,
        Err(e) => {
            // We are the child: the launcher refused, as it must.
            assert!(e.to_string().contains("init()"), "{e}");
            return;
        }
    };
    let mut r = Reaper::new();
    let p = r.watch(p);
    let e = p.join_timeout(WATCHDOG).unwrap_err();
    assert!(
        e.to_string().contains("without reaching shmproc::init()"),
        "{e}"
    );
    assert_eq!(p.exitcode(), Some(0));
}

#[test]
fn nested_spawn_names() {
    shmproc::init();
    let mut r = Reaper::new();
    let p = r.watch(Process::spawn(spawn_nested, ()).unwrap());
    assert_eq!(join(&p), 0);
}

#[test]
fn unnamed_thread_needs_test_name() {
    shmproc::init();
    let test = std::thread::current().name().unwrap().to_owned();
    let (refused, p) = std::thread::spawn(move || {
        let refused = Process::spawn(nothing, ()).unwrap_err();
        let p = Process::builder().test_name(test).spawn(nothing, ());
        (refused, p)
    })
    .join()
    .unwrap();
    assert!(refused.to_string().contains("unnamed thread"), "{refused}");
    let mut r = Reaper::new();
    let p = r.watch(p.unwrap());
    assert_eq!(join(&p), 0);
}

#[test]
fn cpu_count_is_positive() {
    assert!(shmproc::cpu_count() >= 1);
}

/// `dup2(src, dst)` (the test swaps its own stdin).
fn dup_onto(src: std::os::fd::BorrowedFd<'_>, dst: i32) {
    use std::os::fd::AsRawFd;
    // SAFETY: dup2 takes two descriptor numbers; `src` is open for the call.
    assert!(unsafe { libc::dup2(src.as_raw_fd(), dst) } >= 0, "dup2");
}
