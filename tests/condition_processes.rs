//! `Condition` between real processes, after CPython's `_TestCondition`:
//! `wait_for` with and without a timeout, `notify(n)`, and a condition built
//! over an existing `Lock` / `RLock` that really shares it (Python's
//! `Condition(lock)`). Every test calls `shmproc::init()` first, every wait
//! is bounded, and a `Reaper` kills and reaps children on every exit path.
//!
//! Children say where they are through `RawValue`s set while they hold the
//! condition's lock: once the parent holds that lock too, every child that
//! said so is inside its wait (it releases the lock only there).

mod common;

use std::time::{Duration, Instant};

use common::{join, wait_for, Reaper, Watchdog, WATCHDOG};
use shmproc::{Condition, Lock, Process, RLock, RawValue};

// ---- entries ---------------------------------------------------------------

/// CPython's `test_waitfor` child: waits until `state` is 4, then reports
/// the value it saw.
fn wait_for_four(
    (cond, state, ready, seen): (Condition, RawValue<u32>, RawValue<u32>, RawValue<u32>),
) -> Result<(), String> {
    let g = cond.acquire().map_err(|e| e.to_string())?;
    ready.store(1);
    let (_g, held) = cond
        .wait_for_timeout(g, WATCHDOG, || state.load() == 4)
        .map_err(|e| e.to_string())?;
    if !held {
        return Err("state never reached 4".into());
    }
    seen.store(state.load());
    Ok(())
}

/// CPython's `test_waitfor_timeout` child: a predicate that stays false
/// times out after (not before) the timeout and gives `false`.
fn wait_for_timeout_child(cond: Condition) -> Result<(), String> {
    let timeout = Duration::from_millis(100);
    let g = cond.acquire().map_err(|e| e.to_string())?;
    let start = Instant::now();
    let (_g, held) = cond
        .wait_for_timeout(g, timeout, || false)
        .map_err(|e| e.to_string())?;
    match (held, start.elapsed()) {
        (false, dt) if dt >= timeout => Ok(()),
        other => Err(format!("expected (false, >= {timeout:?}), found {other:?}")),
    }
}

/// Waits for a ticket, takes it, counts itself through.
fn take_a_ticket(
    (cond, tickets, waiting, through): (Condition, RawValue<u32>, RawValue<u32>, RawValue<u32>),
) -> Result<(), String> {
    let g = cond.acquire().map_err(|e| e.to_string())?;
    waiting.fetch_add(1);
    let (g, held) = cond
        .wait_for_timeout(g, WATCHDOG, || tickets.load() > 0)
        .map_err(|e| e.to_string())?;
    if !held {
        return Err("no ticket within the watchdog".into());
    }
    tickets.fetch_sub(1);
    through.fetch_add(1);
    drop(g);
    Ok(())
}

/// Waits on a condition over `lock`, holding it through the lock's own
/// handle (which travelled apart from the condition's copy of it).
fn wait_with_the_lock(
    (cond, lock, state, ready): (Condition, Lock, RawValue<u32>, RawValue<u32>),
) -> Result<(), String> {
    let g = lock.acquire().map_err(|e| e.to_string())?;
    ready.store(1);
    let (g, held) = cond
        .wait_for_timeout(g, WATCHDOG, || state.load() == 1)
        .map_err(|e| e.to_string())?;
    if !held || !lock.is_locked() {
        return Err(format!("held {held}, locked {}", lock.is_locked()));
    }
    drop(g);
    Ok(())
}

/// Waits on a condition over an `RLock` held two levels deep; reports the
/// depth it finds after the wait.
fn wait_with_the_rlock(
    (cond, lock, state, ready, depth): (
        Condition,
        RLock,
        RawValue<u32>,
        RawValue<u32>,
        RawValue<u32>,
    ),
) -> Result<(), String> {
    let outer = lock.acquire().map_err(|e| e.to_string())?;
    let inner = lock.acquire().map_err(|e| e.to_string())?;
    ready.store(1);
    let (inner, held) = cond
        .wait_for_timeout(inner, WATCHDOG, || state.load() == 1)
        .map_err(|e| e.to_string())?;
    if !held {
        return Err("not notified within the watchdog".into());
    }
    depth.store(lock.depth());
    drop(inner);
    drop(outer);
    Ok(())
}

// ---- tests -----------------------------------------------------------------

#[test]
fn wait_for_sees_the_predicate_become_true_in_another_process() {
    shmproc::init();
    let _w = Watchdog::new("condition wait_for");
    let mut r = Reaper::new();
    let cond = Condition::new().unwrap();
    let state = RawValue::new(0u32).unwrap();
    let ready = RawValue::new(0u32).unwrap();
    let seen = RawValue::new(0u32).unwrap();
    let p = r.watch(
        Process::spawn(
            wait_for_four,
            (cond.clone(), state.clone(), ready.clone(), seen.clone()),
        )
        .unwrap(),
    );
    wait_for(&ready, 1);
    for _ in 0..4 {
        let _g = cond.acquire_timeout(WATCHDOG).unwrap();
        state.fetch_add(1);
        cond.notify(1);
    }
    assert_eq!(join(&p), 0);
    assert_eq!(seen.load(), 4);
}

#[test]
fn wait_for_timeout_is_false_after_the_timeout() {
    shmproc::init();
    let _w = Watchdog::new("condition wait_for_timeout");
    let mut r = Reaper::new();
    let cond = Condition::new().unwrap();
    let p = r.watch(Process::spawn(wait_for_timeout_child, cond.clone()).unwrap());
    assert_eq!(join(&p), 0);
}

/// CPython's `test_notify_n`, with predicates: wake-ups may be spurious, so
/// what `notify(n)` must give is that every ticket finds a taker.
#[test]
fn notify_n_and_notify_all_let_the_ticket_holders_through() {
    shmproc::init();
    let _w = Watchdog::new("condition notify n");
    let mut r = Reaper::new();
    let cond = Condition::new().unwrap();
    let (tickets, waiting, through) = (
        RawValue::new(0u32).unwrap(),
        RawValue::new(0u32).unwrap(),
        RawValue::new(0u32).unwrap(),
    );
    let ps: Vec<_> = (0..4)
        .map(|_| {
            let args = (
                cond.clone(),
                tickets.clone(),
                waiting.clone(),
                through.clone(),
            );
            r.watch(Process::spawn(take_a_ticket, args).unwrap())
        })
        .collect();
    wait_for(&waiting, 4);
    {
        let _g = cond.acquire_timeout(WATCHDOG).unwrap(); // all four are waiting
        tickets.store(2);
        cond.notify(2);
    }
    wait_for(&through, 2);
    {
        let _g = cond.acquire_timeout(WATCHDOG).unwrap();
        assert_eq!(through.load(), 2, "two tickets, two through");
        tickets.store(2);
        cond.notify_all();
    }
    for p in &ps {
        assert_eq!(join(p), 0);
    }
    assert_eq!((through.load(), tickets.load()), (4, 0));
}

/// `Condition::with_lock`: the child holds the lock through its own handle
/// and waits on the condition; the parent's `cond.acquire()` takes the same
/// lock only once the child's wait released it.
#[test]
fn a_condition_over_a_lock_shares_it_across_processes() {
    shmproc::init();
    let _w = Watchdog::new("condition with_lock");
    let mut r = Reaper::new();
    let lock = Lock::new().unwrap();
    let cond = Condition::with_lock(&lock).unwrap();
    let state = RawValue::new(0u32).unwrap();
    let ready = RawValue::new(0u32).unwrap();
    {
        let _held = lock.acquire().unwrap();
        assert!(cond.try_acquire().unwrap().is_none(), "the same lock");
    }
    let p = r.watch(
        Process::spawn(
            wait_with_the_lock,
            (cond.clone(), lock.clone(), state.clone(), ready.clone()),
        )
        .unwrap(),
    );
    wait_for(&ready, 1);
    {
        let g = cond.acquire_timeout(WATCHDOG).unwrap();
        assert!(lock.is_locked(), "cond.acquire() took the lock");
        state.store(1);
        cond.notify_all();
        drop(g);
    }
    assert_eq!(join(&p), 0);
    assert!(!lock.is_locked());
}

/// `Condition::with_rlock`: a wait releases every level (the parent can take
/// the lock) and restores them (the child finds depth 2 again).
#[test]
fn a_condition_over_an_rlock_releases_and_restores_every_level() {
    shmproc::init();
    let _w = Watchdog::new("condition with_rlock");
    let mut r = Reaper::new();
    let lock = RLock::new().unwrap();
    let cond = Condition::with_rlock(&lock).unwrap();
    let (state, ready, depth) = (
        RawValue::new(0u32).unwrap(),
        RawValue::new(0u32).unwrap(),
        RawValue::new(0u32).unwrap(),
    );
    let args = (
        cond.clone(),
        lock.clone(),
        state.clone(),
        ready.clone(),
        depth.clone(),
    );
    let p = r.watch(Process::spawn(wait_with_the_rlock, args).unwrap());
    wait_for(&ready, 1);
    {
        let g = lock.acquire_timeout(WATCHDOG).unwrap(); // free: the wait released both levels
        state.store(1);
        cond.notify_all();
        drop(g);
    }
    assert_eq!(join(&p), 0);
    assert_eq!(depth.load(), 2);
}
