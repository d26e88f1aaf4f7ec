//! `maxtasksperchild`: workers retire and are replaced, and a healthy worker
//! is never taken for a broken one (after CPython's
//! `test_pool_worker_lifetime`; the early-close case is in `pool.rs`).
//!
//! Alone in its binary with a capturing logger: the pool reports every
//! worker that ends other than by a clean exit with nothing in flight
//! ("ended with ..."), so a worker killed for a message it was entitled to
//! send shows up here and nowhere else's events are mixed in.

mod common;
use common::{Watchdog, WATCHDOG};

use std::time::{Duration, Instant};

use common::logs::{capture, seen};
use shmproc::Pool;

/// Worker ends that were not a clean exit with nothing in flight.
fn unclean_ends() -> Vec<String> {
    seen()
        .into_iter()
        .filter(|l| l.contains("ended with"))
        .collect()
}

fn square(x: u64) -> u64 {
    x * x
}

/// `x * x` and the pid of the worker that computed it.
fn square_where(x: u64) -> (u64, u32) {
    (x * x, std::process::id())
}

/// Waits (bounded) until the pool has `n` workers and none of them is in
/// `retired`: the replacements are launched.
fn wait_for_replacements(pool: &Pool, n: usize, retired: &[u32]) {
    let deadline = Instant::now() + WATCHDOG;
    loop {
        let pids = pool.pids();
        if pids.len() == n && pids.iter().all(|p| !retired.contains(p)) {
            return;
        }
        assert!(Instant::now() < deadline, "watchdog: no replacements");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// 10 000 tasks through pools of 2 workers that retire after every piece,
/// each pool closed and joined as soon as the replacements of the last
/// workers are launched: the join meets workers that have not reported
/// ready yet. None may be killed.
#[test]
fn no_worker_is_killed_as_broken_with_maxtasksperchild_1() {
    shmproc::init();
    capture();
    let _w = Watchdog::new("maxtasksperchild 1");
    let mut tasks = 0u64;
    for round in 0..20u64 {
        let pool = Pool::builder()
            .processes(2)
            .maxtasksperchild(1)
            .build()
            .unwrap();
        let xs = round * 500..(round + 1) * 500;
        let want: Vec<u64> = xs.clone().map(square).collect();
        let (got, served): (Vec<u64>, Vec<u32>) =
            pool.map(square_where, xs).unwrap().into_iter().unzip();
        assert_eq!(got, want);
        tasks += 500;
        wait_for_replacements(&pool, 2, &served);
        pool.close();
        pool.join().unwrap();
    }
    assert_eq!(tasks, 10_000);
    let ends = unclean_ends();
    assert!(ends.is_empty(), "workers ended badly: {ends:#?}");
}
