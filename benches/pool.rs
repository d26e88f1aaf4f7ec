//! Quick self-bench of the Pool (the side-by-side comparison with Python and
//! rayon lives in the compare bench). Prints one line per measurement.
//! `SHMPROC_BENCH_QUICK=1` shrinks the workloads.

use std::time::{Duration, Instant};

use rayon::prelude::*;
use shmproc::Pool;

fn square(x: u64) -> u64 {
    x.wrapping_mul(x)
}

/// About 2 ms of arithmetic.
fn burn(seed: u64) -> u64 {
    let mut x = seed;
    for _ in 0..2_000_000 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
    }
    x
}

fn best<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed()
        })
        .min()
        .unwrap()
}

fn main() -> shmproc::Result<()> {
    shmproc::init();
    let quick = std::env::var_os("SHMPROC_BENCH_QUICK").is_some();
    let n: u64 = if quick { 200_000 } else { 1_000_000 };
    let runs = if quick { 3 } else { 7 };
    let pool = Pool::new(2)?;
    if std::env::var_os("SHMPROC_BENCH_APPLY_ONLY").is_some() {
        for _ in 0..5 {
            let t = Instant::now();
            for i in 0..5000 {
                pool.apply_async(square, i).unwrap().get().unwrap();
            }
            println!(
                "apply round trip: {:.1} us",
                t.elapsed().as_secs_f64() * 1e6 / 5000.0
            );
        }
        return Ok(());
    }
    if std::env::var_os("SHMPROC_BENCH_IMAP_ONLY").is_some() {
        for _ in 0..10 {
            let t = best(1, || {
                pool.imap(square, 0..100_000u64)
                    .unwrap()
                    .map(Result::unwrap)
                    .count()
            });
            println!("pool.imap: {:.0} k tasks/s", 1e5 / t.as_secs_f64() / 1e3);
        }
        return Ok(());
    }
    if std::env::var_os("SHMPROC_BENCH_MAP_ONLY").is_some() {
        for _ in 0..20 {
            let t = best(1, || pool.map(square, 0..n).unwrap());
            println!(
                "pool.map: {:.1} M tasks/s",
                n as f64 / t.as_secs_f64() / 1e6
            );
        }
        return Ok(());
    }

    let t = best(runs, || pool.map(square, 0..n).unwrap());
    println!(
        "pool.map tiny tasks, 2 workers: {:.1} M tasks/s ({n} in {t:?})",
        n as f64 / t.as_secs_f64() / 1e6
    );
    let t = best(runs, || {
        (0..n).into_par_iter().map(square).collect::<Vec<u64>>()
    });
    println!(
        "rayon par_iter (threads): {:.1} M tasks/s ({n} in {t:?})",
        n as f64 / t.as_secs_f64() / 1e6
    );

    let m: u64 = if quick { 20_000 } else { 100_000 };
    let t = best(runs, || {
        pool.imap(square, 0..m).unwrap().map(Result::unwrap).count()
    });
    println!(
        "pool.imap chunksize 1: {:.0} k tasks/s ({m} in {t:?})",
        m as f64 / t.as_secs_f64() / 1e3
    );
    let t = best(runs, || {
        pool.imap_unordered(square, 0..m)
            .unwrap()
            .map(Result::unwrap)
            .count()
    });
    println!(
        "pool.imap_unordered chunksize 1: {:.0} k tasks/s ({m} in {t:?})",
        m as f64 / t.as_secs_f64() / 1e3
    );

    let k = if quick { 2_000 } else { 20_000 };
    let t = Instant::now();
    for i in 0..k {
        pool.apply_async(square, i).unwrap().get().unwrap();
    }
    println!(
        "apply_async().get() round trip: {:.1} us",
        t.elapsed().as_secs_f64() * 1e6 / k as f64
    );

    let jobs: Vec<u64> = (0..if quick { 40 } else { 200 }).collect();
    let one = Pool::new(1)?;
    let t1 = best(3, || one.map(burn, jobs.clone()).unwrap());
    let t2 = best(3, || pool.map(burn, jobs.clone()).unwrap());
    println!(
        "cpu-bound map: 1 worker {t1:?}, 2 workers {t2:?}, speed-up {:.2}x",
        t1.as_secs_f64() / t2.as_secs_f64()
    );
    Ok(())
}
