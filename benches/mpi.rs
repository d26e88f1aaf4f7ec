//! The Pool over MPI against its peers, in one run (cargo feature `mpi`):
//!
//! ```sh
//! cargo bench --features mpi --bench mpi          # 5 rounds, medians (~1 min)
//! SHMPROC_BENCH_QUICK=1 cargo bench --features mpi --bench mpi   # 1 round, small sizes
//! ```
//!
//! Run outside MPI, this binary is the driver: each round runs, one after
//! the other, its own MPI jobs (3 ranks: rank 0 and 2 worker ranks; and 2
//! ranks: rank 0 and one worker rank with a local shared-memory pool of 2
//! processes under it), the Python peer's jobs (`mpi4py.futures`'
//! `MPIPoolExecutor` under `mpirun -n 3 python3 -m mpi4py.futures`, same
//! rank count), a local `Pool::new(2)` in this process, and both layouts
//! again on two simulated hosts (`.ci/mpi-agent`: rank 0 on one, the
//! workers on the other, over TCP). Lines as
//! `benches/compare.rs` prints them (`docs/performance.md`):
//!
//! `RESULT <workload> shmproc=<value> <peer>=<value> unit=<unit> ratio=<r>`

#[path = "../tests/common/mpirun.rs"]
mod mpirun;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use shmproc::Pool;

/// The tiny task (Python's `tiny` doubles too).
fn tiny(x: u64) -> u64 {
    x.wrapping_mul(2)
}

/// One rank per host: the rank maps its share on a local pool of
/// `LOCAL_WORKERS` processes (started once per rank, kept for the job).
fn per_host(range: (u64, u64)) -> Vec<u64> {
    static LOCAL: OnceLock<Pool> = OnceLock::new();
    LOCAL
        .get_or_init(|| Pool::new(LOCAL_WORKERS).expect("the rank's local pool"))
        .map(tiny, range.0..range.1)
        .expect("local map")
}

const LOCAL_WORKERS: usize = 2;

/// Maps timed in each measurement, after [`WARM_MAPS`] untimed ones; the
/// median is the figure. Rank 0 and the local pool are measured alike: the
/// first maps of a process pay for page faults the later ones do not (the
/// allocator keeps the freed result vector's pages once it has seen one).
const TIMED_MAPS: usize = 5;
const WARM_MAPS: usize = 2;

/// The median of [`TIMED_MAPS`] runs of `once` (a rate) after [`WARM_MAPS`].
fn steady_rate(mut once: impl FnMut() -> f64) -> f64 {
    for _ in 0..WARM_MAPS {
        once();
    }
    median((0..TIMED_MAPS).map(|_| once()).collect()).unwrap_or(0.0)
}

fn map_rate(pool: &Pool, n: u64) -> f64 {
    steady_rate(|| {
        let t0 = Instant::now();
        let r = pool.map(tiny, 0..n).expect("map");
        let dt = t0.elapsed();
        assert_eq!(r[n as usize - 1], (n - 1) * 2);
        n as f64 / dt.as_secs_f64()
    })
}

fn apply_ns(pool: &Pool, n: u64) -> f64 {
    let t0 = Instant::now();
    for i in 0..n {
        assert_eq!(pool.apply_async(tiny, i).get().expect("get"), i * 2);
    }
    t0.elapsed().as_nanos() as f64 / n as f64
}

/// Rank 0 of an MPI job: measures, prints `name=value` lines.
fn rank0(what: &str, n: u64, applies: u64) {
    let pool = Pool::builder().mpi().build().expect("an MPI pool");
    match what {
        "per-core" => {
            println!("map={}", map_rate(&pool, n));
            apply_ns(&pool, applies / 10);
            println!("apply={}", apply_ns(&pool, applies));
        }
        "per-host" => {
            let ranks = pool.processes() as u64;
            let run = || {
                let t0 = Instant::now();
                let shares = (4 * ranks).min(n);
                let ranges: Vec<(u64, u64)> = (0..shares)
                    .map(|k| (k * n / shares, (k + 1) * n / shares))
                    .collect();
                let parts = pool.map(per_host, ranges).expect("map");
                let out: Vec<u64> = parts.into_iter().flatten().collect();
                let dt = t0.elapsed();
                assert_eq!(out[n as usize - 1], (n - 1) * 2);
                n as f64 / dt.as_secs_f64()
            };
            println!("map={}", steady_rate(run));
        }
        other => panic!("unknown workload {other}"),
    }
}

/// `key=value` from a job's output.
fn value(out: &str, key: &str) -> Option<f64> {
    out.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('=')?.trim().parse().ok())
}

fn job(args: &[&str]) -> Option<String> {
    let e = mpirun::mpirun(args, Duration::from_secs(300));
    if e.code != Some(0) {
        eprintln!(
            "job {args:?} failed ({:?}, after {:.1} s):\n{}",
            e.code, e.secs, e.output
        );
        return None;
    }
    Some(e.output)
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied()
}

fn result(workload: &str, ours: &[f64], peer: &str, theirs: &[f64], unit: &str, higher: bool) {
    let (m, p) = (median(ours.to_vec()), median(theirs.to_vec()));
    let show = |v: Option<f64>| v.map_or("unavailable".to_string(), |v| format!("{v:.1}"));
    let (Some(m), Some(p)) = (m, p) else {
        // One side's jobs failed (their output is above): the other's
        // figure still shows.
        println!(
            "RESULT {workload} shmproc={} {peer}={} unit={unit} ratio=nan",
            show(m),
            show(p)
        );
        return;
    };
    let ratio = if higher { m / p } else { p / m };
    println!("RESULT {workload} shmproc={m:.1} {peer}={p:.1} unit={unit} ratio={ratio:.2}");
}

fn driver() {
    let quick = std::env::var_os("SHMPROC_BENCH_QUICK").is_some();
    let (rounds, n, applies, py_applies) = if quick {
        (1, 200_000u64, 2_000u64, 200u64)
    } else {
        (5, 1_000_000, 20_000, 2_000)
    };
    let me = std::env::current_exe().expect("own path");
    let me = me.to_str().expect("UTF-8 path");
    let (ns, aps) = (n.to_string(), applies.to_string());
    let peer = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/peers/mpi4py_pool.py");
    let agent = concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/mpi-agent");
    let py = |workload: &str, count: u64| {
        let count = count.to_string();
        let args = [
            "-n",
            "3",
            "python3",
            "-m",
            "mpi4py.futures",
            peer,
            workload,
            &count,
        ];
        job(&args).and_then(|o| o.trim().lines().last()?.trim().parse::<f64>().ok())
    };
    let local = Pool::new(2).expect("a local pool");
    let t_start = Instant::now();
    let mut s = Samples::default();
    for _ in 0..rounds {
        if let Some(o) = job(&["-n", "3", me, "per-core", &ns, &aps]) {
            s.map.extend(value(&o, "map"));
            s.apply.extend(value(&o, "apply"));
        }
        if let Some(o) = job(&["-n", "2", me, "per-host", &ns, &aps]) {
            s.per_host.extend(value(&o, "map"));
        }
        // Two simulated hosts (`.ci/mpi-agent`): rank 0 on nodeA, the
        // workers on nodeB, so every piece crosses TCP.
        let two = |hosts: &str, ranks: &str, what: &str| {
            let args = [
                "--mca",
                "plm_rsh_agent",
                agent,
                "--host",
                hosts,
                "-n",
                ranks,
                me,
                what,
                &ns,
                &aps,
            ];
            job(&args).and_then(|o| value(&o, "map"))
        };
        s.tcp_per_core
            .extend(two("nodeA:1,nodeB:2", "3", "per-core"));
        s.tcp_per_host
            .extend(two("nodeA:1,nodeB:1", "2", "per-host"));
        s.py_map.extend(py("map", n));
        s.py_apply.extend(py("apply", py_applies));
        s.local.push(map_rate(&local, n));
    }
    let w = "2 worker ranks";
    println!("# {n} tasks per map, {rounds} round(s), medians; {w}");
    result(
        "mpi_pool_map_tiny",
        &s.map,
        "mpi4py_futures_map",
        &s.py_map,
        "tasks/s",
        true,
    );
    result(
        "mpi_pool_apply_rtt",
        &s.apply,
        "mpi4py_futures_submit_result",
        &s.py_apply,
        "ns",
        false,
    );
    result(
        "mpi_pool_map_vs_local_pool_one_host",
        &s.map,
        "local_pool_2_workers",
        &s.local,
        "tasks/s",
        true,
    );
    result(
        "mpi_one_rank_per_host_with_local_pool_2",
        &s.per_host,
        "mpi_one_rank_per_core",
        &s.map,
        "tasks/s",
        true,
    );
    result(
        "mpi_two_hosts_one_rank_per_host_with_local_pool_2",
        &s.tcp_per_host,
        "mpi_two_hosts_one_rank_per_core",
        &s.tcp_per_core,
        "tasks/s",
        true,
    );
    println!("# done in {:.1} s", t_start.elapsed().as_secs_f64());
}

#[derive(Default)]
struct Samples {
    map: Vec<f64>,
    apply: Vec<f64>,
    per_host: Vec<f64>,
    py_map: Vec<f64>,
    py_apply: Vec<f64>,
    local: Vec<f64>,
    tcp_per_core: Vec<f64>,
    tcp_per_host: Vec<f64>,
}

fn main() {
    shmproc::init(); // ranks 1.. serve here; local workers run their entry here
    let args: Vec<String> = std::env::args().skip(1).collect();
    if std::env::var_os("OMPI_COMM_WORLD_SIZE").is_none() {
        driver();
        return;
    }
    let n = args
        .get(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let applies = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(20_000);
    rank0(args.first().map_or("per-core", String::as_str), n, applies);
}
