//! `Barrier` between real processes, after CPython's `_TestBarrier`: the
//! action runs once per round (in whichever process arrives last), a
//! timed-out party breaks the barrier for the others, `abort()` wakes them,
//! `reset()` makes it usable again, the default timeout, and a party killed
//! while waiting breaks it too.
//!
//! Every test calls `shmproc::init()` first, every wait is bounded (a
//! watchdog ends a hung run), and a `Reaper` kills and reaps children on
//! every exit path. Who waits where is read from the barrier's own
//! `n_waiting()`, never guessed with a sleep.

mod common;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{join, sigkill, wait_for, Reaper, Watchdog, WATCHDOG};
use shmproc::{Barrier, Error, Process, RawArray, RawValue};

const SHORT: Duration = Duration::from_millis(50);

/// Waits (bounded) until `n` parties wait at `b`.
fn until_waiting(b: &Barrier, n: u32) {
    let deadline = Instant::now() + WATCHDOG;
    while b.n_waiting() < n {
        assert!(
            Instant::now() < deadline,
            "watchdog: {n} parties never waited"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

// ---- the action: a fn item every party's process can run -------------------

/// Per process: where the action records the rounds and who ran them. Each
/// process sets it from its arguments before its first wait.
static LOG: OnceLock<(RawValue<u32>, RawArray<u32>)> = OnceLock::new();

/// Counts the round and records the pid of the process that ran it.
fn log_round() {
    let (rounds, ran_in) = LOG.get().expect("the action's log is set");
    let r = rounds.fetch_add(1);
    let _ = ran_in.set(r as usize, std::process::id());
}

/// A party of `action_runs_once_per_round_in_the_last_process`: in round
/// `last_in`, it arrives last (after the other parties wait). After each
/// wait it checks the action ran once for that round already.
fn action_party(
    (b, rounds, ran_in, last_in): (Barrier, RawValue<u32>, RawArray<u32>, u32),
) -> Result<(), String> {
    let _ = LOG.set((rounds.clone(), ran_in));
    for round in 0..3 {
        if round == last_in {
            until_waiting(&b, b.parties() - 1);
        }
        b.wait().map_err(|e| e.to_string())?;
        if rounds.load() != round + 1 {
            return Err(format!(
                "after round {round}: {} actions ran",
                rounds.load()
            ));
        }
    }
    Ok(())
}

#[test]
fn action_runs_once_per_round_in_the_last_process() {
    shmproc::init();
    let _w = Watchdog::new("barrier action");
    let mut r = Reaper::new();
    let rounds = RawValue::new(0u32).unwrap();
    let ran_in = RawArray::<u32>::new(3).unwrap();
    let b = Barrier::builder()
        .parties(3)
        .action(log_round)
        .timeout(WATCHDOG)
        .create()
        .unwrap();
    let _ = LOG.set((rounds.clone(), ran_in.clone()));
    // Child 1 arrives last in round 1, child 2 in round 2, this process in 0.
    let kids: Vec<_> = (1..=2u32)
        .map(|last_in| {
            let args = (b.clone(), rounds.clone(), ran_in.clone(), last_in);
            r.watch(Process::spawn(action_party, args).unwrap())
        })
        .collect();
    action_party((b.clone(), rounds.clone(), ran_in.clone(), 0)).unwrap();
    for k in &kids {
        assert_eq!(join(k), 0);
    }
    assert_eq!(rounds.load(), 3);
    let me = std::process::id();
    assert_eq!(
        ran_in.to_vec(),
        [me, kids[0].pid(), kids[1].pid()],
        "each round's action ran in the process that arrived last"
    );
}

// ---- breaking: timeout, abort, reset, death ---------------------------------

/// Waits at `b` (its default timeout, if any) and reports how it ended:
/// 1 for `BrokenBarrier`, 2 for passing.
fn wait_and_report((b, out): (Barrier, RawValue<u32>)) -> Result<(), String> {
    match b.wait() {
        Err(Error::BrokenBarrier) => out.store(1),
        Ok(_) => out.store(2),
        Err(e) => return Err(e.to_string()),
    }
    Ok(())
}

fn spawn_waiter(r: &mut Reaper, b: &Barrier) -> (Process, RawValue<u32>) {
    let out = RawValue::new(0u32).unwrap();
    let p = r.watch(Process::spawn(wait_and_report, (b.clone(), out.clone())).unwrap());
    (p, out)
}

/// After a break: the waiters report `BrokenBarrier`, a late party fails at
/// once, and after `reset()` a full round passes in every process.
fn check_broken_then_reset(r: &mut Reaper, b: &Barrier, waiters: Vec<(Process, RawValue<u32>)>) {
    for (p, out) in waiters {
        assert_eq!(join(&p), 0);
        assert_eq!(out.load(), 1, "a waiter got BrokenBarrier");
    }
    assert!(b.broken());
    let (late, out) = spawn_waiter(r, b);
    assert_eq!(join(&late), 0);
    assert_eq!(out.load(), 1, "a later wait fails at once");
    b.reset();
    assert!(!b.broken());
    let again: Vec<_> = (1..b.parties()).map(|_| spawn_waiter(r, b)).collect();
    b.wait_timeout(WATCHDOG).unwrap();
    for (p, out) in again {
        assert_eq!(join(&p), 0);
        assert_eq!(out.load(), 2, "usable again after reset");
    }
}

/// CPython's `test_timeout`: a party whose wait times out breaks the
/// barrier; the others get `BrokenBarrier`.
#[test]
fn a_timed_out_party_breaks_the_barrier_for_the_others() {
    shmproc::init();
    let _w = Watchdog::new("barrier timeout");
    let mut r = Reaper::new();
    let b = Barrier::new(4).unwrap();
    let waiters: Vec<_> = (0..2).map(|_| spawn_waiter(&mut r, &b)).collect();
    until_waiting(&b, 2);
    let start = Instant::now();
    // The fourth party is missing: our wait times out.
    let e = b.wait_timeout(SHORT);
    assert!(matches!(e, Err(Error::BrokenBarrier)), "{e:?}");
    assert!(start.elapsed() >= SHORT);
    check_broken_then_reset(&mut r, &b, waiters);
}

/// CPython's `test_default_timeout`: the builder's timeout applies to
/// `wait()` in every process.
#[test]
fn the_default_timeout_breaks_the_barrier_in_a_child() {
    shmproc::init();
    let _w = Watchdog::new("barrier default timeout");
    let mut r = Reaper::new();
    let b = Barrier::builder()
        .parties(2)
        .timeout(SHORT)
        .create()
        .unwrap();
    let (p, out) = spawn_waiter(&mut r, &b);
    assert_eq!(join(&p), 0);
    assert_eq!(out.load(), 1, "the child's wait timed out and broke it");
    assert!(b.broken());
}

/// CPython's `test_abort`: `abort()` wakes the parties waiting in other
/// processes with `BrokenBarrier`.
#[test]
fn abort_wakes_the_waiters_in_other_processes() {
    shmproc::init();
    let _w = Watchdog::new("barrier abort");
    let mut r = Reaper::new();
    let b = Barrier::new(3).unwrap();
    let waiters: Vec<_> = (0..2).map(|_| spawn_waiter(&mut r, &b)).collect();
    until_waiting(&b, 2);
    b.abort();
    check_broken_then_reset(&mut r, &b, waiters);
}

/// CPython's `test_reset`: `reset()` while parties wait gives them
/// `BrokenBarrier` and leaves the barrier usable.
#[test]
fn reset_fails_the_waiters_and_leaves_the_barrier_usable() {
    shmproc::init();
    let _w = Watchdog::new("barrier reset");
    let mut r = Reaper::new();
    let b = Barrier::new(3).unwrap();
    let waiters: Vec<_> = (0..2).map(|_| spawn_waiter(&mut r, &b)).collect();
    until_waiting(&b, 2);
    b.reset();
    assert!(!b.broken(), "reset leaves it usable at once");
    for (p, out) in waiters {
        assert_eq!(join(&p), 0);
        assert_eq!(
            out.load(),
            1,
            "a waiter of the reset round got BrokenBarrier"
        );
    }
    let again: Vec<_> = (0..2).map(|_| spawn_waiter(&mut r, &b)).collect();
    b.wait_timeout(WATCHDOG).unwrap();
    for (p, out) in again {
        assert_eq!(join(&p), 0);
        assert_eq!(out.load(), 2);
    }
}

/// Arrives at `b` and waits there until killed.
fn wait_until_killed((b, ready): (Barrier, RawValue<u32>)) {
    ready.store(1);
    let _ = b.wait();
    std::thread::sleep(Duration::from_secs(600));
}

/// A party killed (SIGKILL) while waiting breaks the barrier: the party
/// waiting with it gets `BrokenBarrier` instead of waiting forever.
#[test]
fn a_party_killed_while_waiting_breaks_the_barrier() {
    shmproc::init();
    let _w = Watchdog::new("barrier dead party");
    let mut r = Reaper::new();
    let b = Barrier::new(3).unwrap();
    let ready = RawValue::new(0u32).unwrap();
    let victim = r.watch(Process::spawn(wait_until_killed, (b.clone(), ready.clone())).unwrap());
    wait_for(&ready, 1);
    until_waiting(&b, 1);
    sigkill(victim.pid());
    assert_eq!(join(&victim), -9);
    let start = Instant::now();
    assert!(matches!(b.wait(), Err(Error::BrokenBarrier)));
    assert!(b.broken());
    assert!(start.elapsed() < WATCHDOG);
    b.reset();
    assert_eq!(b.n_waiting(), 0);
}
