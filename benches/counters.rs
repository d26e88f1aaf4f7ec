//! What the per-object counters cost: the same workloads with counting on
//! and off (`shmproc::inspect::counters::set_enabled`, set in every process
//! of the workload), interleaved in one run, median of `ROUNDS`.
//!
//! `cargo bench --bench counters`; `SHMPROC_BENCH_QUICK=1` for a short run.
//! One line per workload:
//!
//! `RESULT <workload> shmproc=<counters on> counters_off=<counters off> unit=<u> ratio=<on/off>`
//!
//! ratio 1.00 means no cost; below 1 means counting costs throughput.
//! Workloads: SPSC 8-byte Pod items through a `PodQueue` between two
//! processes (the consumer often finds the ring empty and sleeps: each sleep
//! bumps `GET_SLEEPS`), and a Value lock hammered by two processes (each
//! acquire that sleeps bumps `BLOCKED`).

use std::time::Instant;

use shmproc::inspect::counters;
use shmproc::{PodQueue, Process, Value};

fn quick() -> bool {
    std::env::var_os("SHMPROC_BENCH_QUICK").is_some_and(|v| v != "0")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

/// Runs `f(counting)` alternately on and off, `rounds` times each, and
/// prints the medians.
fn compare(workload: &str, unit: &str, rounds: usize, f: impl Fn(bool) -> f64) {
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        // Alternate which goes first, so drift does not favour one side.
        for counting in [r % 2 == 0, r % 2 == 1] {
            counters::set_enabled(counting);
            let v = f(counting);
            if counting {
                on.push(v)
            } else {
                off.push(v)
            }
        }
    }
    counters::set_enabled(true);
    let (on, off) = (median(on), median(off));
    println!(
        "RESULT {workload} shmproc={on:.3} counters_off={off:.3} unit={unit} ratio={:.3}",
        on / off
    );
}

// ----------------------------------------------------------------- SPSC queue

fn produce((q, n, counting): (PodQueue<u64>, u64, bool)) {
    counters::set_enabled(counting);
    for i in 0..n {
        q.put(&i).expect("put");
    }
}

/// A producer process puts `n` u64s, this process gets them; M msgs/s.
fn spsc_pod8(n: u64, counting: bool) -> f64 {
    let name = format!("bench-counters-q-{}", std::process::id());
    let q = PodQueue::<u64>::builder()
        .name(&name)
        .maxsize(1024)
        .create()
        .expect("queue");
    let t0 = Instant::now();
    let p = Process::spawn(produce, (q.clone(), n, counting)).expect("spawn");
    let mut sum = 0u64;
    for _ in 0..n {
        sum = sum.wrapping_add(q.get().expect("get"));
    }
    let dt = t0.elapsed();
    p.join().expect("join");
    assert_eq!(sum, n * (n - 1) / 2, "checksum");
    let c = shmproc::inspect::info(&name).expect("info").counters;
    let sleeps = c[counters::BLOCKED] + c[counters::GET_SLEEPS];
    if counting {
        eprintln!("spsc_pod8: {sleeps} sleeps for {n} messages");
    } else {
        assert_eq!(sleeps, 0, "counting was off");
    }
    n as f64 / dt.as_secs_f64() / 1e6
}

// ------------------------------------------------------- contended Value lock

fn add_under_lock((v, n, counting): (Value<u64>, u64, bool)) {
    counters::set_enabled(counting);
    for _ in 0..n {
        *v.lock().expect("lock") += 1;
    }
}

/// Two processes add 1 under the lock `n` times each; Mops/s. Prints (once)
/// how many acquires slept, read back through the counters, to show that the
/// workload does reach the counted slow path.
fn value_lock_2proc(n: u64, counting: bool) -> f64 {
    let name = format!("bench-counters-{}", std::process::id());
    let v = Value::builder().name(&name).create().expect("value");
    let t0 = Instant::now();
    let p = Process::spawn(add_under_lock, (v.clone(), n, counting)).expect("spawn");
    add_under_lock((v.clone(), n, counting));
    p.join().expect("join");
    let dt = t0.elapsed();
    assert_eq!(v.get(), 2 * n, "lost increments");
    let blocked = shmproc::inspect::info(&name).expect("info").counters[counters::BLOCKED];
    if counting {
        eprintln!("value_lock_2proc: {blocked} of {} acquires slept", 2 * n);
    } else {
        assert_eq!(blocked, 0, "counting was off");
    }
    2.0 * n as f64 / dt.as_secs_f64() / 1e6
}

fn main() {
    shmproc::init();
    let q = quick();
    let rounds = if q { 3 } else { 7 };
    let n = if q { 200_000 } else { 2_000_000 };
    let nq = if q { 2_000_000 } else { 10_000_000 };
    compare("counters_spsc_pod8", "Mmsg/s", rounds, |c| spsc_pod8(nq, c));
    compare("counters_value_lock_2proc", "Mops/s", rounds, |c| {
        value_lock_2proc(n, c)
    });
}
