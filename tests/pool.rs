//! The Pool with real worker processes: every method, every failure case.
//!
//! Every test calls `shmproc::init()` first (a re-executed worker runs only
//! its own test, and `init()` runs the worker there). A `Watchdog` ends the
//! test binary if a test hangs (workers are daemons and die with it); pools
//! are dropped (terminated, reaped) on every exit path, panics included.

mod common;
use common::{Watchdog, WATCHDOG};

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::unique_name;
use shmproc::{Error, Event, Pool, Semaphore};

/// Whether `pid` is gone (not even a zombie).
fn gone(pid: u32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

// ---- task functions (fn items: they run in the workers) -------------------

fn square(x: u64) -> u64 {
    x * x
}

fn add(a: u64, b: u64) -> u64 {
    a + b
}

fn concat(a: String, b: u32, c: char) -> String {
    format!("{a}{b}{c}")
}

fn pid_of(_: u64) -> u32 {
    std::process::id()
}

fn panic_on_7(x: u64) -> u64 {
    if x == 7 {
        panic!("seven is not allowed");
    }
    x
}

/// Kills its own worker with SIGKILL on 15 (as the OOM killer would).
fn sigkill_on_15(x: u64) -> u64 {
    if x == 15 {
        // SAFETY: raise only sends a signal to this process.
        unsafe { libc::raise(libc::SIGKILL) };
    }
    x
}

/// As `sigkill_on_15`, for arguments that travel as postcard, not scalars.
fn sigkill_on_kill(s: String) -> String {
    if s == "kill" {
        // SAFETY: raise only sends a signal to this process.
        unsafe { libc::raise(libc::SIGKILL) };
    }
    s.to_uppercase()
}

fn abort_on_3(x: u64) -> u64 {
    if x == 3 {
        std::process::abort();
    }
    x
}

fn exit_on_3(x: u64) -> u64 {
    if x == 3 {
        std::process::exit(3);
    }
    x
}

/// Runs out of memory: the allocation fails under a small address-space
/// limit and Rust aborts, as a worker hit by the OOM killer would die.
fn oom(mib: usize) -> usize {
    let limit = libc::rlimit {
        rlim_cur: 64 << 20,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads the struct we pass; it only lowers our own limit.
    unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) };
    // black_box: release builds may drop an unused allocation altogether.
    let v = std::hint::black_box(vec![1u8; mib << 20]);
    v.len()
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// Returns `v` once the named event `gate` is set (at once for an empty
/// name): a task whose end the test decides. Bounded, so that a test
/// whose gate is never opened fails on its assertions, not on a hang.
fn gated((v, gate): (u64, String)) -> u64 {
    if !gate.is_empty() {
        let ev = Event::open(&gate).expect("opening the gate");
        ev.wait_timeout(WATCHDOG / 2);
    }
    v
}

/// Says that it started (releases the named semaphore `started`), then
/// blocks until its worker is killed.
fn start_then_block(started: String) -> u64 {
    Semaphore::open(&started)
        .and_then(|s| s.release())
        .expect("announcing the start");
    loop {
        std::thread::park();
    }
}

/// A named semaphore at 0 that tasks release as they start, and its name.
fn start_counter(prefix: &str) -> (Semaphore, String) {
    let name = unique_name(prefix);
    let sem = Semaphore::builder().name(&name).value(0).create().unwrap();
    (sem, name)
}

/// Waits (bounded) until `n` tasks have announced their start on `sem`.
fn wait_started(sem: &Semaphore, n: usize) {
    for _ in 0..n {
        sem.acquire_timeout(WATCHDOG)
            .expect("a task started")
            .forget();
    }
}

static LEVEL: AtomicU64 = AtomicU64::new(0);

fn set_level(level: u64) {
    LEVEL.store(level, Ordering::SeqCst);
}

fn failing_init(_: ()) -> Result<(), String> {
    Err("no database here".into())
}

fn panicking_init(_: ()) {
    panic!("initializer exploded");
}

fn read_level(x: u64) -> u64 {
    LEVEL.load(Ordering::SeqCst) + x
}

// ---- methods -------------------------------------------------------------

#[test]
fn map_keeps_order() {
    shmproc::init();
    let _w = Watchdog::new("map_keeps_order");
    let pool = Pool::new(2).unwrap();
    let v = pool.map(square, 0..10_000u64).unwrap();
    assert_eq!(v, (0..10_000u64).map(square).collect::<Vec<_>>());
    // An input without an exact size is collected first.
    let odd = (0..1000u64).filter(|x| x % 2 == 1);
    assert_eq!(
        pool.map(square, odd.clone()).unwrap(),
        odd.map(square).collect::<Vec<_>>()
    );
    assert!(pool.map(square, Vec::<u64>::new()).unwrap().is_empty());
    // A closure without captures, strings in and out.
    let s = pool
        .map(|s: String| s.to_uppercase(), ["a", "b"].map(String::from))
        .unwrap();
    assert_eq!(s, ["A", "B"]);
}

/// An input whose exact size hint is wrong.
struct Lying {
    left: u64,
    claims: usize,
}

impl Iterator for Lying {
    type Item = u64;
    fn next(&mut self) -> Option<u64> {
        self.left = self.left.checked_sub(1)?;
        Some(self.left)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.claims, Some(self.claims))
    }
}

fn panic_from_5000(x: u64) -> u64 {
    assert!(x < 5000, "task {x} fails");
    x
}

#[test]
fn map_streams_in_windows_and_stops_at_the_first_failure() {
    shmproc::init();
    let _w = Watchdog::new("map_streams");
    // Pieces of one task: many windows, results still in input order.
    let pool = Pool::builder().processes(2).chunksize(1).build().unwrap();
    let v = pool.map(square, 0..20_000u64).unwrap();
    assert_eq!(v, (0..20_000u64).map(square).collect::<Vec<_>>());
    // A size hint that is wrong either way: the input decides.
    for (left, claims) in [(20, 10), (5, 30), (3000, 0)] {
        let got = pool.map(square, Lying { left, claims }).unwrap();
        assert_eq!(got, (0..left).rev().map(square).collect::<Vec<_>>());
    }
    // Every task from 5000 on fails: the error is the lowest one's, even
    // when a later failure arrives first, and the pool serves on.
    let pool = Pool::builder().processes(2).chunksize(100).build().unwrap();
    for _ in 0..3 {
        match pool.map(panic_from_5000, (0..10_000u64).rev()) {
            Err(Error::TaskPanicked { message }) => assert_eq!(message, "task 9999 fails"),
            other => panic!("expected TaskPanicked, found {other:?}"),
        }
        match pool.map(panic_from_5000, 0..10_000u64) {
            Err(Error::TaskPanicked { message }) => assert_eq!(message, "task 5000 fails"),
            other => panic!("expected TaskPanicked, found {other:?}"),
        }
        assert_eq!(pool.map(square, 0..1000u64).unwrap()[999], 999 * 999);
    }
}

#[test]
fn map_with_chunksize_and_default_size() {
    shmproc::init();
    let _w = Watchdog::new("map_with_chunksize");
    let pool = Pool::builder().chunksize(7).build().unwrap();
    assert_eq!(pool.processes(), shmproc::cpu_count());
    assert_eq!(pool.map(square, 0..100u64).unwrap()[99], 99 * 99);
}

#[test]
fn starmap_spreads_tuples() {
    shmproc::init();
    let _w = Watchdog::new("starmap");
    let pool = Pool::new(2).unwrap();
    let pairs: Vec<(u64, u64)> = (0..100).map(|i| (i, 2 * i)).collect();
    assert_eq!(
        pool.starmap(add, pairs).unwrap(),
        (0..100).map(|i| 3 * i).collect::<Vec<_>>()
    );
    let triples = vec![("a".to_string(), 1, 'x'), ("b".to_string(), 2, 'y')];
    assert_eq!(pool.starmap(concat, triples).unwrap(), ["a1x", "b2y"]);
}

#[test]
fn apply_and_apply_async() {
    shmproc::init();
    let _w = Watchdog::new("apply");
    let pool = Pool::new(2).unwrap();
    assert_eq!(pool.apply(square, 12).unwrap(), 144);
    // The task cannot end before the gate opens.
    let gate = unique_name("pool-apply-gate");
    let open = Event::builder().name(&gate).create().unwrap();
    let r = pool.apply_async(gated, (300, gate));
    assert!(!r.ready());
    assert!(matches!(
        r.get_timeout(Duration::from_millis(10)),
        Err(Error::Timeout)
    ));
    open.set();
    r.wait();
    assert!(r.ready());
    assert_eq!(r.get_timeout(Duration::from_secs(0)).unwrap(), 300);
    assert!(matches!(
        r.get_timeout(Duration::from_secs(0)),
        Err(Error::InvalidArgument { .. })
    ));
    let many: Vec<_> = (0..50u64).map(|i| pool.apply_async(square, i)).collect();
    let got: Vec<u64> = many.into_iter().map(|r| r.get().unwrap()).collect();
    assert_eq!(got, (0..50u64).map(square).collect::<Vec<_>>());
}

#[test]
fn map_async_collects_later() {
    shmproc::init();
    let _w = Watchdog::new("map_async");
    let pool = Pool::new(2).unwrap();
    let r = pool.map_async(square, 0..5000u64);
    let r2 = pool.map_async(add_one, vec![1u64, 2, 3]);
    assert!(r.wait_timeout(WATCHDOG));
    assert_eq!(r.get().unwrap()[4999], 4999 * 4999);
    assert_eq!(r2.get().unwrap(), vec![2, 3, 4]);
}

fn add_one(x: u64) -> u64 {
    x + 1
}

#[test]
fn imap_streams_an_endless_input_in_order() {
    shmproc::init();
    let _w = Watchdog::new("imap");
    let pool = Pool::new(2).unwrap();
    let first: Vec<u64> = pool
        .imap(square, 0u64..)
        .take(2000)
        .map(Result::unwrap)
        .collect();
    assert_eq!(first, (0..2000u64).map(square).collect::<Vec<_>>());
    // The pool still serves after an abandoned imap.
    let v: Vec<u64> = pool.imap(square, 0..10u64).map(Result::unwrap).collect();
    assert_eq!(v, (0..10u64).map(square).collect::<Vec<_>>());
    assert_eq!(pool.imap(square, Vec::<u64>::new()).count(), 0);
}

#[test]
fn imap_unordered_yields_everything() {
    shmproc::init();
    let _w = Watchdog::new("imap_unordered");
    let pool = Pool::new(2).unwrap();
    // The first task ends only once a later one has come out.
    let gate = unique_name("pool-unordered-gate");
    let open = Event::builder().name(&gate).create().unwrap();
    let input = [(200u64, gate)]
        .into_iter()
        .chain((0..7).map(|_| (1u64, String::new())));
    let mut it = pool.imap_unordered(gated, input);
    let mut got = vec![it.next().unwrap().unwrap()];
    open.set();
    got.extend(it.map(Result::unwrap));
    let mut sorted = got.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [1, 1, 1, 1, 1, 1, 1, 200]);
    assert_eq!(got[0], 1, "a fast task comes before the slow one: {got:?}");
    let mut all: Vec<u64> = pool
        .imap_unordered(square, 0..5000u64)
        .map(Result::unwrap)
        .collect();
    all.sort_unstable();
    assert_eq!(all, (0..5000u64).map(square).collect::<Vec<_>>());
}

#[test]
fn slow_tasks_are_not_stacked_behind_a_busy_worker() {
    shmproc::init();
    let _w = Watchdog::new("slow tasks");
    let pool = Pool::new(2).unwrap();
    // Both workers learn that their pieces are slow (over 20 ms)...
    assert_eq!(pool.map(sleep_ms, [40u64, 40]).unwrap(), [40, 40]);
    // ...so a long task does not get a deep queue of quick ones behind it:
    // the long one ends only once six quick ones have come out (if more
    // than two waited behind it, it ends at its gate's timeout, first).
    let gate = unique_name("pool-slow-gate");
    let open = Event::builder().name(&gate).create().unwrap();
    let input = [(500u64, gate)]
        .into_iter()
        .chain((0..8).map(|_| (1u64, String::new())));
    let mut got = Vec::new();
    for r in pool.imap_unordered(gated, input) {
        got.push(r.unwrap());
        if got.iter().filter(|&&x| x == 1).count() == 6 {
            open.set();
        }
    }
    let before = got.iter().position(|&x| x == 500).unwrap();
    assert!(
        before >= 6,
        "quick tasks waited behind the slow one: {got:?}"
    );
}

// ---- failures ------------------------------------------------------------

#[test]
fn panicking_task_fails_only_itself() {
    shmproc::init();
    let _w = Watchdog::new("panicking task");
    let pool = Pool::new(2).unwrap();
    let pids = pool.pids();
    let got: Vec<_> = pool.imap(panic_on_7, 0..20u64).collect();
    for (i, r) in got.iter().enumerate() {
        match r {
            Err(Error::TaskPanicked { message }) => {
                assert_eq!(i, 7);
                assert_eq!(message, "seven is not allowed");
            }
            Ok(v) => assert_eq!(*v, i as u64),
            Err(e) => panic!("task {i}: {e}"),
        }
    }
    assert!(got[7].is_err());
    match pool.map(panic_on_7, 0..100u64) {
        Err(Error::TaskPanicked { message }) => assert_eq!(message, "seven is not allowed"),
        other => panic!("expected TaskPanicked, found {other:?}"),
    }
    assert!(matches!(
        pool.apply(panic_on_7, 7),
        Err(Error::TaskPanicked { .. })
    ));
    // The workers survived.
    assert_eq!(pool.pids(), pids);
    assert_eq!(pool.apply(square, 3).unwrap(), 9);
}

/// Panics with CPython's test message, `"x" * 1024**2`, on 3.
fn panic_1mib_on_3(x: u64) -> u64 {
    if x == 3 {
        panic!("{}", "x".repeat(1 << 20));
    }
    x
}

/// As `panic_1mib_on_3`, for `starmap`.
fn panic_1mib_on_3_star(x: u64, y: u64) -> u64 {
    panic_1mib_on_3(x) + y
}

/// Panics with a 1 MiB message while starting.
fn panicking_init_1mib(_: ()) {
    panic!("{}", "x".repeat(1 << 20));
}

/// A 1 MiB panic message, cut to fit the result ring with its marker.
fn assert_long_panic(r: &Result<u64, Error>, what: &str) {
    match r {
        Err(Error::TaskPanicked { message }) => {
            assert!(
                message.starts_with("xxxxxxxx"),
                "{what}: {}",
                &message[..40]
            );
            assert!(
                message.ends_with("... [truncated: the message had 1048576 bytes]"),
                "{what}: {}",
                &message[message.len().saturating_sub(80)..]
            );
            assert!(message.len() > 1000, "{what}: as much as fits is kept");
        }
        other => panic!("{what}: expected TaskPanicked, found {other:?}"),
    }
}

/// A panic is `TaskPanicked` whatever its message's size, through every
/// method (CPython's `test_map_handle_iterable_exception` family raises
/// `ValueError("x" * 1024**2)`); the ring's limit cuts the message, it
/// does not turn the panic into `MessageTooLarge`.
#[test]
fn a_panic_with_a_1mib_message_is_task_panicked_in_every_method() {
    shmproc::init();
    let _w = Watchdog::new("1 MiB panic");
    let pool = Pool::new(2).unwrap();
    let first = |r: Result<Vec<u64>, Error>| r.map(|v| v[0]);
    assert_long_panic(&first(pool.map(panic_1mib_on_3, 0..10u64)), "map");
    assert_long_panic(
        &first(pool.map_async(panic_1mib_on_3, 0..10u64).get()),
        "map_async",
    );
    let pairs: Vec<(u64, u64)> = (0..10).map(|x| (x, 1)).collect();
    assert_long_panic(&first(pool.starmap(panic_1mib_on_3_star, pairs)), "starmap");
    assert_long_panic(&pool.apply(panic_1mib_on_3, 3), "apply");
    assert_long_panic(&pool.apply_async(panic_1mib_on_3, 3).get(), "apply_async");
    let got: Vec<_> = pool.imap(panic_1mib_on_3, 0..10u64).collect();
    assert_long_panic(&got[3], "imap");
    assert!(got
        .iter()
        .enumerate()
        .all(|(i, r)| i == 3 || r.as_ref().ok() == Some(&(i as u64))));
    let got: Vec<_> = pool.imap_unordered(panic_1mib_on_3, 0..10u64).collect();
    let failed: Vec<_> = got.iter().filter(|r| r.is_err()).collect();
    assert_eq!(failed.len(), 1);
    assert_long_panic(failed[0], "imap_unordered");
    match Pool::builder()
        .processes(1)
        .initializer(panicking_init_1mib, ())
        .build()
    {
        Err(Error::TaskPanicked { message }) => {
            assert!(message.contains("xxxxxxxx"), "{}", &message[..80]);
            assert!(message.contains("[truncated: the message had 1048576 bytes]"));
        }
        other => panic!("initializer: expected TaskPanicked, found {other:?}"),
    }
}

#[test]
fn sigkilled_worker_fails_its_task_and_is_replaced() {
    shmproc::init();
    let _w = Watchdog::new("sigkill");
    let pool = Pool::new(2).unwrap();
    let got: Vec<_> = pool.imap(sigkill_on_15, 0..40u64).collect();
    for (i, r) in got.iter().enumerate() {
        match r {
            Err(Error::WorkerDied { signal, .. }) => {
                assert_eq!(i, 15);
                assert_eq!(*signal, Some(libc::SIGKILL));
            }
            Ok(v) => assert_eq!(*v, i as u64),
            Err(e) => panic!("task {i}: {e}"),
        }
    }
    assert!(got[15].is_err());
    // The pool goes on, at full size.
    assert_eq!(pool.map(square, 0..100u64).unwrap()[9], 81);
    assert_eq!(pool.pids().len(), 2);
}

#[test]
fn death_inside_a_chunk_fails_one_task_and_reruns_the_rest() {
    shmproc::init();
    let _w = Watchdog::new("chunk death");
    let pool = Pool::builder().processes(2).chunksize(10).build().unwrap();
    let got: Vec<_> = pool.imap(sigkill_on_15, 0..40u64).collect();
    let failed: Vec<usize> = got
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_err())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(failed, [15]);
    assert!(matches!(
        got[15],
        Err(Error::WorkerDied {
            signal: Some(9),
            ..
        })
    ));
    assert!(matches!(
        pool.map(sigkill_on_15, 0..40u64),
        Err(Error::WorkerDied { .. })
    ));
    // The same with postcard-encoded arguments of varying sizes.
    let words: Vec<String> = (0..40)
        .map(|i| {
            if i == 23 {
                "kill".to_string()
            } else {
                "w".repeat(i % 7 + 1)
            }
        })
        .collect();
    let got: Vec<_> = pool.imap(sigkill_on_kill, words.clone()).collect();
    for (i, r) in got.iter().enumerate() {
        match r {
            Ok(s) => assert_eq!(*s, words[i].to_uppercase()),
            Err(Error::WorkerDied { .. }) => assert_eq!(i, 23),
            Err(e) => panic!("task {i}: {e}"),
        }
    }
    assert!(got[23].is_err());
    let died = pool.apply_async(sigkill_on_15, 15);
    assert!(matches!(died.get(), Err(Error::WorkerDied { .. })));
    assert_eq!(pool.apply(square, 5).unwrap(), 25);
}

#[test]
fn abort_and_exit_are_worker_deaths() {
    shmproc::init();
    let _w = Watchdog::new("abort");
    let pool = Pool::new(2).unwrap();
    let r = pool.apply(abort_on_3, 3);
    assert!(
        matches!(
            r,
            Err(Error::WorkerDied {
                signal: Some(libc::SIGABRT),
                ..
            })
        ),
        "{r:?}"
    );
    let r = pool.apply(exit_on_3, 3);
    assert!(
        matches!(r, Err(Error::WorkerDied { signal: None, .. })),
        "{r:?}"
    );
    assert_eq!(pool.map(abort_on_3, 4..8u64).unwrap(), [4, 5, 6, 7]);
}

#[test]
fn out_of_memory_is_a_worker_death() {
    shmproc::init();
    let _w = Watchdog::new("oom");
    let pool = Pool::new(1).unwrap();
    let r = pool.apply(oom, 4096);
    assert!(
        matches!(
            r,
            Err(Error::WorkerDied {
                signal: Some(libc::SIGABRT),
                ..
            })
        ),
        "{r:?}"
    );
    assert_eq!(pool.apply(square, 6).unwrap(), 36);
}

#[test]
fn zero_processes_is_an_error() {
    shmproc::init();
    assert!(matches!(Pool::new(0), Err(Error::InvalidArgument { .. })));
}

#[test]
fn externally_killed_busy_worker() {
    shmproc::init();
    let _w = Watchdog::new("external kill");
    let pool = Pool::new(2).unwrap();
    let pids = pool.pids();
    let (started, name) = start_counter("pool-external-kill");
    let slow: Vec<_> = (0..2)
        .map(|_| pool.apply_async(start_then_block, name.clone()))
        .collect();
    // Both tasks run (one per worker: a worker runs one at a time) and
    // block: each worker holds its task when the signal lands.
    wait_started(&started, 2);
    for pid in &pids {
        // SAFETY: kill only sends a signal; the pids are our unreaped children.
        unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
    }
    for r in slow {
        match r.get() {
            Err(Error::WorkerDied { pid, signal }) => {
                assert!(pids.contains(&pid));
                assert_eq!(signal, Some(9));
            }
            other => panic!("expected WorkerDied, found {other:?}"),
        }
    }
    assert_eq!(pool.apply(square, 4).unwrap(), 16);
    let new = pool.pids();
    assert!(new.iter().all(|p| !pids.contains(p)), "{pids:?} -> {new:?}");
    for pid in pids {
        assert!(gone(pid), "worker {pid} left a zombie");
    }
}

#[test]
fn initializer_runs_in_every_worker() {
    shmproc::init();
    let _w = Watchdog::new("initializer");
    let pool = Pool::builder()
        .processes(2)
        .initializer(set_level, 100)
        .build()
        .unwrap();
    assert_eq!(
        pool.map(read_level, 0..50u64).unwrap(),
        (100..150).collect::<Vec<_>>()
    );
}

#[test]
fn failing_initializer_is_a_clear_error() {
    shmproc::init();
    let _w = Watchdog::new("failing initializer");
    match Pool::builder()
        .processes(2)
        .initializer(failing_init, ())
        .build()
    {
        Err(Error::TaskPanicked { message }) => {
            assert!(
                message.contains("initializer") && message.contains("no database here"),
                "{message}"
            );
        }
        other => panic!("expected an initializer error, found {other:?}"),
    }
    match Pool::builder()
        .processes(1)
        .initializer(panicking_init, ())
        .build()
    {
        Err(Error::TaskPanicked { message }) => {
            assert!(message.contains("initializer exploded"), "{message}")
        }
        other => panic!("expected an initializer error, found {other:?}"),
    }
}

/// Succeeds in the first worker only: it leaves a marker file behind.
fn init_once(marker: String) -> Result<(), String> {
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&marker)
    {
        Ok(_) => Ok(()),
        Err(e) => Err(format!("marker {marker} already there: {e}")),
    }
}

#[test]
fn initializer_failing_in_a_replacement_breaks_the_pool() {
    shmproc::init();
    let _w = Watchdog::new("replacement initializer");
    // Unique per run (pid + counter + clock), removed on every exit path: a
    // marker left by a failed run must not fail a later run that reuses the pid.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let marker = std::env::temp_dir().join(format!(
        "shmproc-{}-{nanos}",
        common::unique_name("pool-init")
    ));
    struct RemoveOnDrop(std::path::PathBuf);
    impl Drop for RemoveOnDrop {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _cleanup = RemoveOnDrop(marker.clone());
    let m = marker.to_string_lossy().into_owned();
    let pool = Pool::builder()
        .processes(1)
        .initializer(init_once, m)
        .build()
        .unwrap();
    assert_eq!(pool.apply(square, 2).unwrap(), 4);
    assert!(matches!(
        pool.apply(sigkill_on_15, 15),
        Err(Error::WorkerDied { .. })
    ));
    // The replacement's initializer fails: every later task says why.
    let r = pool.apply_async(square, 3).get();
    match r {
        Err(Error::TaskPanicked { message }) => {
            assert!(message.contains("already there"), "{message}")
        }
        other => panic!("expected the initializer's error, found {other:?}"),
    }
    assert!(matches!(
        pool.map(square, 0..3u64),
        Err(Error::TaskPanicked { .. })
    ));
}

#[test]
fn imap_started_before_close_finishes_after_join() {
    shmproc::init();
    let _w = Watchdog::new("imap after join");
    let pool = Pool::new(2).unwrap();
    let mut it = pool.imap(square, 0..2000u64);
    assert_eq!(it.next().unwrap().unwrap(), 0);
    pool.close();
    pool.join().unwrap();
    // What was sent before join came back in order; what was outstanding
    // fails with Closed; then the iterator ends without pulling more input.
    let rest: Vec<_> = it.collect();
    assert!(rest.len() < 1999, "the input is not drained after join");
    let ok = rest.iter().take_while(|r| r.is_ok()).count();
    assert!(ok >= 1);
    for (i, r) in rest.iter().enumerate().take(ok) {
        assert_eq!(*r.as_ref().unwrap(), square(i as u64 + 1));
    }
    assert!(rest[ok..].iter().all(|r| matches!(r, Err(Error::Closed))));
}

#[test]
fn maxtasksperchild_replaces_workers() {
    shmproc::init();
    let _w = Watchdog::new("maxtasksperchild");
    let pool = Pool::builder()
        .processes(1)
        .maxtasksperchild(2)
        .build()
        .unwrap();
    let pids: Vec<u32> = (0..6).map(|i| pool.apply(pid_of, i).unwrap()).collect();
    assert_eq!(pids[0], pids[1]);
    assert_eq!(pids[2], pids[3]);
    assert_eq!(pids[4], pids[5]);
    assert!(pids[0] != pids[2] && pids[2] != pids[4], "{pids:?}");
    for pid in &pids[..4] {
        assert!(gone(*pid), "retired worker {pid} left a zombie");
    }
}

/// A pool of one worker that retires after every task, closed while tasks
/// are still queued: every task runs, each in a fresh worker, and the join
/// returns (CPython's `test_pool_worker_lifetime_early_close`).
#[test]
fn maxtasksperchild_early_close_runs_every_task_in_fresh_workers() {
    shmproc::init();
    let _w = Watchdog::new("maxtasksperchild early close");
    let pool = Pool::builder()
        .processes(1)
        .maxtasksperchild(1)
        .build()
        .unwrap();
    let results: Vec<_> = (0..6).map(|i| pool.apply_async(pid_of, i)).collect();
    pool.close();
    pool.join().unwrap();
    let mut pids: Vec<u32> = results.into_iter().map(|r| r.get().unwrap()).collect();
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), 6, "one worker per task");
}

#[test]
fn terminate_stops_busy_workers_promptly() {
    shmproc::init();
    let _w = Watchdog::new("terminate");
    let pool = Pool::new(2).unwrap();
    let pids = pool.pids();
    // Tasks that never end by themselves: terminate returns (within the
    // watchdog) only if it stops them rather than waiting for them.
    let (started, name) = start_counter("pool-terminate");
    let (slow, one) = std::thread::scope(|s| {
        // A blocking map waiting in another thread (the streaming path):
        // once its tasks run, one in each worker, the thread is inside `map`.
        let blocked = s.spawn(|| pool.map(start_then_block, vec![name.clone(); 4]));
        wait_started(&started, 2);
        // Queued behind the busy workers.
        let slow = pool.map_async(start_then_block, vec![name.clone(); 4]);
        let one = pool.apply_async(start_then_block, name.clone());
        pool.terminate();
        assert!(matches!(blocked.join().unwrap(), Err(Error::Closed)));
        (slow, one)
    });
    assert!(matches!(slow.get(), Err(Error::Closed)));
    assert!(matches!(one.get(), Err(Error::Closed)));
    for pid in pids {
        assert!(gone(pid), "worker {pid} still there after terminate");
    }
    assert!(matches!(pool.map(square, 0..3u64), Err(Error::Closed)));
    pool.join().unwrap();
}

#[test]
fn drop_terminates_and_reaps() {
    shmproc::init();
    let _w = Watchdog::new("drop");
    let pool = Pool::new(2).unwrap();
    let pids = pool.pids();
    let pending = pool.apply_async(sleep_ms, 30_000);
    drop(pool);
    assert!(matches!(pending.get(), Err(Error::Closed)));
    for pid in pids {
        assert!(gone(pid), "worker {pid} still there after drop");
    }
}

#[test]
fn close_then_join_finishes_the_work() {
    shmproc::init();
    let _w = Watchdog::new("close/join");
    let pool = Pool::new(2).unwrap();
    let pids = pool.pids();
    assert!(matches!(pool.join(), Err(Error::InvalidArgument { .. })));
    let r = pool.map_async(sleep_ms, vec![50u64; 6]);
    pool.close();
    assert!(matches!(pool.apply(square, 1), Err(Error::Closed)));
    // Calls that cannot start are ready at once with the error; an imap
    // over an endless input yields it once and ends (no input is pulled).
    let late = pool.apply_async(square, 1);
    assert!(late.ready());
    assert!(matches!(late.get(), Err(Error::Closed)));
    assert!(matches!(
        pool.map_async(square, 0..10u64).get(),
        Err(Error::Closed)
    ));
    let mut endless = pool.imap(square, 0..);
    assert!(matches!(endless.next(), Some(Err(Error::Closed))));
    assert!(endless.next().is_none());
    let mut unordered = pool.imap_unordered(square, 0..);
    assert!(matches!(unordered.next(), Some(Err(Error::Closed))));
    assert!(unordered.next().is_none());
    pool.join().unwrap();
    assert_eq!(r.get().unwrap(), vec![50u64; 6]);
    for pid in pids {
        assert!(gone(pid), "worker {pid} still there after join");
    }
}

#[test]
fn oversized_argument_is_rejected() {
    shmproc::init();
    let _w = Watchdog::new("oversized");
    let pool = Pool::new(1).unwrap();
    let big = vec![0u8; 4 << 20];
    assert!(matches!(
        pool.apply(|v: Vec<u8>| v.len(), big.clone()),
        Err(Error::MessageTooLarge { .. })
    ));
    // The async forms report it through their result, ready at once.
    let r = pool.apply_async(|v: Vec<u8>| v.len(), big.clone());
    assert!(r.ready());
    assert!(matches!(r.get(), Err(Error::MessageTooLarge { .. })));
    assert!(matches!(
        pool.map_async(|v: Vec<u8>| v.len(), vec![vec![0u8; 10], big])
            .get(),
        Err(Error::MessageTooLarge { .. })
    ));
    let ok = vec![1u8; 100_000];
    assert_eq!(pool.apply(|v: Vec<u8>| v.len(), ok).unwrap(), 100_000);
    assert!(matches!(
        pool.apply(|n: usize| vec![0u8; n], 4 << 20),
        Err(Error::MessageTooLarge { .. })
    ));
    let big_results = pool
        .map(|n: usize| vec![7u8; n], vec![300_000usize; 8])
        .unwrap();
    assert!(big_results.iter().all(|v| v.len() == 300_000));
}
