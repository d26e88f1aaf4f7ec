//! The Pool over MPI ranks (cargo feature `mpi`), under real `mpirun` jobs.
//!
//! `cargo test --features mpi --test mpi` runs this binary outside MPI: it
//! is then the *driver*. It checks the error of `.mpi()` without `mpirun`,
//! then runs itself as MPI jobs and checks how each ends:
//!
//! - `cases` with 3 ranks on this host, and with 4 ranks on two simulated
//!   hosts (`.ci/mpi-agent` starts each "remote" Open MPI daemon here, so
//!   the job has two nodes and ranks on different nodes talk over TCP):
//!   rank 0 runs every case of [`CASES`] and prints a summary;
//! - `refused`: one rank runs a copy of this binary with one byte more;
//! - the fail-stop cases (a worker rank killed by SIGKILL, a panic outside
//!   a task on a worker rank, a panic on rank 0 with work out): the job
//!   must end with an error within seconds, never hang.
//!
//! Under `mpirun`, `shmproc::init()` keeps ranks 1.. serving; only rank 0
//! runs `main`'s code after it. Every job has a watchdog in the driver
//! (its process group is killed), and every case one on rank 0.

mod common;
#[path = "common/mpirun.rs"]
mod mpirun;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use shmproc::{Error, Pool};

// ---- task functions (fn items: they run on the worker ranks) ---------------

fn square(x: u64) -> u64 {
    x * x
}

fn add(a: u64, b: u64) -> u64 {
    a + b
}

fn shout(s: String) -> String {
    s.to_uppercase() + "!"
}

fn boom(x: u64) -> u64 {
    if x == 2 {
        panic!("boom at {x}");
    }
    x
}

fn pid_of(_: u64) -> u32 {
    std::process::id()
}

fn sleepy(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// A task that asks for an MPI pool of its own (on a worker rank).
fn nested_pool(_: u64) -> String {
    match Pool::builder().mpi().build() {
        Ok(_) => "built".into(),
        Err(e) => e.to_string(),
    }
}

fn len_of(v: Vec<u8>) -> usize {
    v.len()
}

fn bytes(n: usize) -> Vec<u8> {
    vec![7u8; n]
}

static LEVEL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn set_level(level: u64) {
    LEVEL.store(level, std::sync::atomic::Ordering::Relaxed);
}

fn failing_init(level: u64) -> Result<(), String> {
    Err(format!("level {level} is not allowed"))
}

fn level(_: u64) -> u64 {
    LEVEL.load(std::sync::atomic::Ordering::Relaxed)
}

/// A chunk summed by a local shared-memory pool of this worker rank (one
/// rank per host, a process per core under it).
fn local_sum(range: (u64, u64)) -> u64 {
    let local = Pool::new(2).expect("a local pool on the worker rank");
    let s = local
        .map(square, range.0..range.1)
        .expect("local map")
        .iter()
        .sum();
    drop(local); // its workers are reaped here, not orphaned at exit
    s
}

/// A worker rank that dies the hard way on item 300.
fn die_on_300(x: u64) -> u64 {
    if x == 300 {
        // SAFETY: kill(2) of our own pid with a valid signal.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
    x
}

/// A result whose encoding panics: the panic happens in the worker's loop,
/// outside the task's `catch_unwind`.
struct Unsendable;

impl serde::Serialize for Unsendable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        panic!("deliberate panic while encoding a result")
    }
}

impl<'de> serde::Deserialize<'de> for Unsendable {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Ok(Unsendable)
    }
}

fn unsendable(_: u64) -> Unsendable {
    Unsendable
}

// ---- cases (rank 0 of the `cases` job) ------------------------------------

type Case = (&'static str, fn());

const CASES: &[Case] = &[
    ("map_keeps_order", map_keeps_order),
    ("imap_is_lazy_and_ordered", imap_is_lazy_and_ordered),
    ("starmap", starmap),
    ("apply_and_async", apply_and_async),
    ("panicking_task_and_the_pool_goes_on", panicking_task),
    ("work_spreads_over_every_rank", work_spreads_over_every_rank),
    ("close_join_terminate", close_join_terminate),
    ("initializer", initializer),
    ("builder_choices", builder_choices),
    ("large_arguments_and_results", large_arguments_and_results),
    ("two_pools_at_once", two_pools_at_once),
    ("a_local_pool_under_each_rank", a_local_pool_under_each_rank),
];

fn workers() -> usize {
    let size: usize = std::env::var("OMPI_COMM_WORLD_SIZE")
        .ok()
        .and_then(|s| s.parse().ok())
        .expect("OMPI_COMM_WORLD_SIZE under mpirun");
    size - 1
}

fn mpi_pool() -> Pool {
    Pool::builder().mpi().build().expect("an MPI pool")
}

fn map_keeps_order() {
    let pool = mpi_pool();
    assert_eq!(pool.processes(), workers());
    let n = 100_000u64;
    let got = pool.map(square, 0..n).unwrap();
    assert_eq!(got.len(), n as usize);
    assert!(got.iter().enumerate().all(|(i, v)| *v == (i as u64).pow(2)));
    let words: Vec<String> = ["a", "bb", "ccc"].iter().map(|s| s.to_string()).collect();
    assert_eq!(pool.map(shout, words).unwrap(), ["A!", "BB!", "CCC!"]);
    assert!(pool.map(square, Vec::<u64>::new()).unwrap().is_empty());
    // An input without an exact size is collected first.
    let odd = (0..1000u64).filter(|x| x % 2 == 1);
    let want: Vec<u64> = (0..1000u64).filter(|x| x % 2 == 1).map(square).collect();
    assert_eq!(pool.map(square, odd).unwrap(), want);
}

fn imap_is_lazy_and_ordered() {
    let pool = mpi_pool();
    // An endless input: only a window ahead is pulled.
    let first: Vec<u64> = pool
        .imap(square, 0u64..)
        .take(2000)
        .map(Result::unwrap)
        .collect();
    assert_eq!(first, (0..2000u64).map(square).collect::<Vec<_>>());
    let mut all: Vec<u64> = pool
        .imap_unordered(square, 0..1000u64)
        .map(Result::unwrap)
        .collect();
    all.sort_unstable();
    assert_eq!(all, (0..1000u64).map(square).collect::<Vec<_>>());
}

fn starmap() {
    let pool = mpi_pool();
    assert_eq!(pool.starmap(add, [(1, 2), (3, 4)]).unwrap(), [3, 7]);
    let pairs: Vec<(u64, u64)> = (0..10_000).map(|i| (i, 2 * i)).collect();
    let sums = pool.starmap(add, pairs).unwrap();
    assert!(sums.iter().enumerate().all(|(i, s)| *s == 3 * i as u64));
}

fn apply_and_async() {
    let pool = mpi_pool();
    assert_eq!(pool.apply(square, 7).unwrap(), 49);
    let pending: Vec<_> = (0..50u64).map(|i| pool.apply_async(square, i)).collect();
    for (i, r) in pending.into_iter().enumerate() {
        assert_eq!(r.get().unwrap(), (i as u64).pow(2));
    }
    let m = pool.map_async(square, 0..1000u64);
    let slow = pool.apply_async(sleepy, 20);
    assert!(slow.wait_timeout(Duration::from_secs(30)));
    assert!(slow.ready());
    assert_eq!(slow.get_timeout(Duration::from_secs(1)).unwrap(), 20);
    assert_eq!(m.get().unwrap()[999], 999 * 999);
}

fn panicking_task() {
    let pool = mpi_pool();
    match pool.apply(boom, 2) {
        Err(Error::TaskPanicked { message }) => assert_eq!(message, "boom at 2"),
        other => panic!("expected TaskPanicked, found {other:?}"),
    }
    // The pool goes on: same ranks, same results.
    assert_eq!(pool.apply(square, 3).unwrap(), 9);
    assert!(matches!(
        pool.map(boom, 0..10u64),
        Err(Error::TaskPanicked { .. })
    ));
    let items: Vec<_> = pool.imap(boom, 0..5u64).collect();
    assert!(matches!(items[1], Ok(1)));
    assert!(matches!(&items[2], Err(Error::TaskPanicked { message }) if message == "boom at 2"));
    assert!(matches!(items[4], Ok(4)));
    assert_eq!(pool.map(square, 0..10u64).unwrap()[9], 81);
}

fn work_spreads_over_every_rank() {
    let pool = Pool::builder().mpi().chunksize(1).build().unwrap();
    let ranks: BTreeSet<u32> = pool.pids().into_iter().collect();
    assert_eq!(ranks.len(), workers(), "pids of the worker ranks");
    assert!(!ranks.contains(&std::process::id()));
    let ran: BTreeSet<u32> = pool.map(pid_of, 0..64u64).unwrap().into_iter().collect();
    assert_eq!(ran, ranks, "every worker rank ran tasks");
}

fn close_join_terminate() {
    let pool = mpi_pool();
    let r = pool.map_async(square, 0..10_000u64);
    assert!(pool.join().is_err(), "join before close");
    pool.close();
    assert!(matches!(pool.map(square, [1u64]), Err(Error::Closed)));
    assert!(matches!(pool.apply(square, 1), Err(Error::Closed)));
    assert!(matches!(
        pool.imap(square, [1u64]).next(),
        Some(Err(Error::Closed))
    ));
    pool.join().unwrap();
    assert_eq!(r.get().unwrap().len(), 10_000);

    // Terminate with tasks out: they fail at once; the ranks finish them
    // and their results are dropped, not given to the next pool.
    let pool = mpi_pool();
    let slow = pool.map_async(sleepy, vec![100u64; 8]);
    let one = pool.apply_async(sleepy, 100);
    pool.terminate();
    assert!(matches!(slow.get(), Err(Error::Closed)));
    assert!(matches!(one.get(), Err(Error::Closed)));
    pool.join().unwrap();
    drop(pool);
    let next = mpi_pool();
    assert_eq!(next.map(sleepy, [1u64, 2, 3]).unwrap(), [1, 2, 3]);
    assert_eq!(next.map(square, 0..1000u64).unwrap()[10], 100);
}

fn initializer() {
    let pool = Pool::builder()
        .mpi()
        .initializer(set_level, 7)
        .chunksize(1)
        .build()
        .unwrap();
    assert!(pool.map(level, 0..32u64).unwrap().iter().all(|l| *l == 7));
    match Pool::builder().mpi().initializer(failing_init, 3).build() {
        Err(Error::TaskPanicked { message }) => {
            assert!(
                message.contains("initializer failed in rank 1"),
                "{message}"
            );
            assert!(message.contains("level 3 is not allowed"), "{message}");
        }
        other => panic!("expected TaskPanicked, found {other:?}"),
    }
    // The ranks serve on after a failed initializer.
    assert_eq!(mpi_pool().apply(square, 5).unwrap(), 25);
}

fn builder_choices() {
    assert!(matches!(
        Pool::builder().mpi().maxtasksperchild(2).build(),
        Err(Error::InvalidArgument {
            what: "maxtasksperchild",
            ..
        })
    ));
    assert!(matches!(
        Pool::builder().mpi().processes(workers() + 1).build(),
        Err(Error::InvalidArgument {
            what: "processes",
            ..
        })
    ));
    let one = Pool::builder()
        .mpi()
        .processes(1)
        .chunksize(1)
        .build()
        .unwrap();
    assert_eq!(one.processes(), 1);
    let nested = one.apply(nested_pool, 0).unwrap();
    assert!(nested.contains("a task on worker rank 1"), "{nested}");
    let pids: BTreeSet<u32> = one.map(pid_of, 0..16u64).unwrap().into_iter().collect();
    assert_eq!(pids.len(), 1);
    assert_eq!(pids.into_iter().collect::<Vec<_>>(), one.pids());
}

fn large_arguments_and_results() {
    let pool = mpi_pool();
    // Above a local pool's 1 MiB ring limit: MPI messages may be larger.
    assert_eq!(pool.apply(len_of, vec![1u8; 4 << 20]).unwrap(), 4 << 20);
    let big = pool.apply(bytes, 3 << 20).unwrap();
    assert_eq!((big.len(), big[12345]), (3 << 20, 7));
    let lens = pool.map(len_of, vec![vec![0u8; 100_000]; 20]).unwrap();
    assert!(lens.iter().all(|l| *l == 100_000));
}

fn two_pools_at_once() {
    let a = mpi_pool();
    let b = mpi_pool();
    std::thread::scope(|s| {
        let ta = s.spawn(|| a.map(square, 0..50_000u64).unwrap());
        let tb = s.spawn(|| b.map(shout, vec!["x".to_string(); 5000]).unwrap());
        assert_eq!(ta.join().unwrap()[49_999], 49_999 * 49_999);
        assert!(tb.join().unwrap().iter().all(|s| s == "X!"));
    });
    drop(a);
    assert_eq!(b.apply(square, 4).unwrap(), 16);
}

fn a_local_pool_under_each_rank() {
    let pool = Pool::builder().mpi().chunksize(1).build().unwrap();
    // And one on rank 0 beside the MPI pool: its workers never join the job.
    let here = Pool::new(2).unwrap();
    assert_eq!(here.map(square, 0..100u64).unwrap()[9], 81);
    let chunks: Vec<(u64, u64)> = (0..8).map(|k| (k * 1000, (k + 1) * 1000)).collect();
    let total: u64 = pool.map(local_sum, chunks).unwrap().iter().sum();
    assert_eq!(total, (0..8000u64).map(square).sum::<u64>());
}

fn run_cases() -> i32 {
    let mut failed = 0;
    for (name, case) in CASES {
        let _w = common::Watchdog::new(name);
        let t0 = Instant::now();
        match std::panic::catch_unwind(case) {
            Ok(()) => println!("test {name} ... ok ({:.2} s)", t0.elapsed().as_secs_f64()),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    println!("{} passed, {failed} failed", CASES.len() - failed);
    i32::from(failed > 0)
}

/// A job whose rank 2 runs another build: the pool must refuse it by name.
fn refused() -> i32 {
    match Pool::builder().mpi().build() {
        Err(Error::InvalidArgument {
            what: "MPI ranks",
            found,
            ..
        }) if found.contains("rank 2") => {}
        other => {
            println!("expected rank 2 refused, found {other:?}");
            return 1;
        }
    }
    // Rank 1 runs this build: a pool of it alone works.
    let one = Pool::builder().mpi().processes(1).build().unwrap();
    assert_eq!(one.map(square, 0..100u64).unwrap()[9], 81);
    println!("refused: ok");
    0
}

fn fail_stop(case: &str) -> i32 {
    let pool = mpi_pool();
    match case {
        "sigkill" => {
            let _ = pool.map(die_on_300, 0..10_000u64);
        }
        "worker-panic" => {
            let _ = pool.apply(unsendable, 1);
        }
        "root-panic" => {
            let _out = pool.map_async(sleepy, vec![300u64; 40]);
            panic!("deliberate panic on rank 0 with tasks out");
        }
        other => panic!("unknown case {other}"),
    }
    // The job should have ended before this line.
    println!("fail-stop case {case}: rank 0 went on");
    0
}

// ---- the driver -------------------------------------------------------------

fn driver() -> i32 {
    let me = std::env::current_exe().expect("own path");
    let me = me.to_str().expect("a UTF-8 path");
    let mut failed = Vec::new();
    let mut passed = 0;
    let mut check = |name: &str, ok: bool, detail: &str| {
        if ok {
            println!("test {name} ... ok");
            passed += 1;
        } else {
            println!("test {name} ... FAILED\n{detail}");
            failed.push(name.to_owned());
        }
    };

    // Without mpirun: a clear error, no pool.
    let e = Pool::builder().mpi().build().map(|_| ()).unwrap_err();
    check(
        "without_mpirun_is_a_clear_error",
        e.to_string().contains("started by mpirun"),
        &e.to_string(),
    );

    let mut job = |name: &str, args: Vec<&str>, want_ok: bool, needle: &str, limit: f64| {
        let e = mpirun::mpirun(&args, Duration::from_secs(240));
        let ok = e.code.is_some_and(|c| (c == 0) == want_ok)
            && e.output.contains(needle)
            && e.secs <= limit;
        let detail = format!(
            "  job {args:?}: exit {:?} after {:.1} s (limit {limit} s), expected {} and {needle:?}\n{}",
            e.code,
            e.secs,
            if want_ok { "success" } else { "failure" },
            e.output
        );
        check(&format!("{name} ({:.1} s)", e.secs), ok, &detail);
        // The cases rank 0 ran in that job.
        for l in e.output.lines().filter(|l| l.starts_with("test ")) {
            println!("  {l}");
        }
    };

    job(
        "cases_on_one_host_3_ranks",
        vec!["-n", "3", me, "cases"],
        true,
        " passed, 0 failed",
        240.0,
    );
    let agent = concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/mpi-agent");
    job(
        "cases_on_two_simulated_hosts_4_ranks",
        vec![
            "--mca",
            "plm_rsh_agent",
            agent,
            "--host",
            "nodeA:2,nodeB:2",
            "--mca",
            "mpi_yield_when_idle",
            "1",
            "-n",
            "4",
            me,
            "cases",
        ],
        true,
        " passed, 0 failed",
        240.0,
    );
    for dir in ["/tmp/mpi-sim-", "/dev/shm/mpi-sim-"] {
        for host in ["nodeA", "nodeB"] {
            let _ = std::fs::remove_dir(format!("{dir}{host}")); // the agent's, if empty
        }
    }
    // A copy of this binary with one byte more is another build.
    let copy = std::env::temp_dir().join(format!("shmproc-mpi-other-{}", std::process::id()));
    let mut other = std::fs::read(me).expect("reading own binary");
    other.push(0);
    std::fs::write(&copy, other).expect("writing the copy");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let copy_s = copy.to_str().expect("UTF-8").to_owned();
    job(
        "a_rank_running_another_binary_is_refused",
        vec!["-n", "2", me, "refused", ":", "-n", "1", &copy_s, "refused"],
        true,
        "refused: ok",
        60.0,
    );
    let _ = std::fs::remove_file(&copy);
    // Fail-stop: each job must end, with an error, within seconds.
    job(
        "a_worker_rank_killed_by_sigkill_ends_the_job",
        vec!["-n", "3", me, "sigkill"],
        false,
        "signal 9",
        30.0,
    );
    job(
        "a_panic_outside_a_task_ends_the_job",
        vec!["-n", "3", me, "worker-panic"],
        false,
        "a panic outside a task",
        30.0,
    );
    job(
        "a_panic_on_rank_0_ends_the_job",
        vec!["-n", "3", me, "root-panic"],
        false,
        "deliberate panic on rank 0",
        30.0,
    );
    println!("{passed} passed, {} failed", failed.len());
    i32::from(!failed.is_empty())
}

fn main() {
    shmproc::init(); // ranks 1.. of a job serve here and never return
    let case = std::env::args().nth(1).unwrap_or_default();
    let under_mpirun = std::env::var_os("OMPI_COMM_WORLD_SIZE").is_some();
    let code = match (under_mpirun, case.as_str()) {
        (false, _) => driver(),
        (true, "cases" | "") => run_cases(),
        (true, "refused") => refused(),
        (true, other) => fail_stop(other),
    };
    std::process::exit(code);
}
