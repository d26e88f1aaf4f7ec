//! Our `Lock` beside `std::sync::Mutex` and `parking_lot::Mutex`.
//!
//! Prints one line per comparison:
//! `RESULT <workload> shmproc=<v> <peer>=<v> unit=<u> ratio=<r>` where
//! `ratio > 1` means shmproc is better (throughputs divided, latencies
//! inverted). Workloads:
//! - `lock_uncontended`: acquire + release on one thread (ns per pair);
//! - `lock_contended_2`: two workers each doing N lock/increment/unlock on one
//!   lock — two *processes* for shmproc, two threads for the in-process peers
//!   (million operations per second, both workers together).
//!
//! `SHMPROC_BENCH_QUICK=1` makes it finish in a few seconds.

use std::hint::black_box;
use std::time::{Duration, Instant};

use shmproc::{Barrier, Lock, Process, RawValue};

fn quick() -> bool {
    std::env::var_os("SHMPROC_BENCH_QUICK").is_some_and(|v| v != "0")
}

/// Best (smallest) of `rounds` timings of `f`.
fn best_of(rounds: usize, mut f: impl FnMut() -> Duration) -> Duration {
    (0..rounds).map(|_| f()).min().unwrap_or_default()
}

fn result(workload: &str, ours: f64, peer: &str, theirs: f64, unit: &str, higher_is_better: bool) {
    let ratio = if higher_is_better {
        ours / theirs
    } else {
        theirs / ours
    };
    println!("RESULT {workload} shmproc={ours:.2} {peer}={theirs:.2} unit={unit} ratio={ratio:.2}");
}

// ---- uncontended -----------------------------------------------------------

fn uncontended(iters: u64, rounds: usize) {
    let lock = Lock::new().expect("lock");
    let ours = best_of(rounds, || {
        let t = Instant::now();
        for _ in 0..iters {
            drop(black_box(lock.acquire().expect("acquire")));
        }
        t.elapsed()
    });
    let std_m = std::sync::Mutex::new(0u64);
    let std_t = best_of(rounds, || {
        let t = Instant::now();
        for _ in 0..iters {
            drop(black_box(std_m.lock().expect("std lock")));
        }
        t.elapsed()
    });
    let pl = parking_lot::Mutex::new(0u64);
    let pl_t = best_of(rounds, || {
        let t = Instant::now();
        for _ in 0..iters {
            drop(black_box(pl.lock()));
        }
        t.elapsed()
    });
    let ns = |d: Duration| d.as_nanos() as f64 / iters as f64;
    result(
        "lock_uncontended",
        ns(ours),
        "std_mutex",
        ns(std_t),
        "ns/op",
        false,
    );
    result(
        "lock_uncontended",
        ns(ours),
        "parking_lot",
        ns(pl_t),
        "ns/op",
        false,
    );
}

// ---- contended, 2 workers --------------------------------------------------

/// A worker process: meet at the barrier (ready, go), do `n` locked
/// increments, meet again (done).
fn worker((lock, counter, barrier, n): (Lock, RawValue<u64>, Barrier, u64)) -> shmproc::Result<()> {
    barrier.wait()?;
    barrier.wait()?;
    for _ in 0..n {
        let g = lock.acquire()?;
        counter.set(counter.get() + 1);
        drop(g);
    }
    barrier.wait()?;
    Ok(())
}

fn two_processes(n: u64) -> shmproc::Result<Duration> {
    let lock = Lock::new()?;
    let counter = RawValue::new(0u64)?;
    let barrier = Barrier::new(3)?;
    let ps = (0..2)
        .map(|_| Process::spawn(worker, (lock.clone(), counter.clone(), barrier.clone(), n)))
        .collect::<shmproc::Result<Vec<_>>>()?;
    // Ready (children started), then time from before "go" to "done": the
    // clock is read before the barrier so a descheduled main cannot miss work.
    barrier.wait_timeout(Duration::from_secs(60))?;
    let t = Instant::now();
    barrier.wait_timeout(Duration::from_secs(60))?;
    barrier.wait_timeout(Duration::from_secs(600))?;
    let elapsed = t.elapsed();
    for p in &ps {
        p.join()?;
    }
    assert_eq!(counter.get(), 2 * n, "lost increments");
    Ok(elapsed)
}

fn two_threads<M: Sync>(n: u64, m: &M, inc: impl Fn(&M) + Sync) -> Duration {
    let barrier = std::sync::Barrier::new(3);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                barrier.wait();
                barrier.wait();
                for _ in 0..n {
                    inc(m);
                }
                barrier.wait();
            });
        }
        barrier.wait();
        let t = Instant::now();
        barrier.wait();
        barrier.wait();
        t.elapsed()
    })
}

fn contended(n: u64, rounds: usize) -> shmproc::Result<()> {
    let mut ours = Duration::MAX;
    for _ in 0..rounds {
        ours = ours.min(two_processes(n)?);
    }
    let std_m = std::sync::Mutex::new(0u64);
    let std_t = best_of(rounds, || {
        two_threads(n, &std_m, |m| *m.lock().expect("std lock") += 1)
    });
    let pl = parking_lot::Mutex::new(0u64);
    let pl_t = best_of(rounds, || two_threads(n, &pl, |m| *m.lock() += 1));
    let mops = |d: Duration| (2 * n) as f64 / d.as_secs_f64() / 1e6;
    result(
        "lock_contended_2",
        mops(ours),
        "std_mutex_threads",
        mops(std_t),
        "Mops/s",
        true,
    );
    result(
        "lock_contended_2",
        mops(ours),
        "parking_lot_threads",
        mops(pl_t),
        "Mops/s",
        true,
    );
    Ok(())
}

fn main() -> shmproc::Result<()> {
    shmproc::init();
    // `cargo bench` passes `--bench`; `cargo test --benches` runs it without:
    // keep that run short as well.
    let quick = quick() || !std::env::args().any(|a| a == "--bench");
    let (iters, n, rounds) = if quick {
        (1_000_000, 100_000, 2)
    } else {
        (20_000_000, 2_000_000, 5)
    };
    uncontended(iters, rounds);
    contended(n, rounds)?;
    Ok(())
}
