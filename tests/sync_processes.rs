//! Lock, RLock, Semaphore, Event, Condition and Barrier between real
//! processes (launched with `shmproc::Process`), including a holder killed by
//! SIGKILL. Every test calls `shmproc::init()` first (a re-executed child runs
//! its entry there), every wait is bounded, and a `Reaper` kills and reaps
//! children on every exit path.

mod common;

use std::time::{Duration, Instant};

use common::{counter, join, sigkill, wait_for, wait_for_counter, Reaper, WATCHDOG};
use shmproc::{
    Barrier, Condition, Error, Event, Lock, Process, RLock, RawArray, RawValue, Semaphore,
};

const INCREMENTS: u64 = 100_000;

// ---- entries ---------------------------------------------------------------

/// Increments a plain (non-atomic read-modify-write) counter under the lock.
fn locked_increments((lock, counter): (Lock, RawValue<u64>)) -> Result<(), String> {
    for _ in 0..INCREMENTS {
        let g = lock.acquire().map_err(|e| e.to_string())?;
        // get+set, not fetch_add: only the lock makes the total exact.
        counter.set(counter.get() + 1);
        drop(g);
    }
    Ok(())
}

/// Takes the lock, says so, and sleeps holding it until killed.
fn hold_until_killed((lock, ready): (Lock, RawValue<u32>)) {
    let _g = lock.acquire().unwrap();
    ready.store(1);
    std::thread::sleep(Duration::from_secs(120));
}

fn hold_rlock_until_killed((lock, ready): (RLock, RawValue<u32>)) {
    let _a = lock.acquire().unwrap();
    let _b = lock.acquire().unwrap();
    ready.store(1);
    std::thread::sleep(Duration::from_secs(120));
}

/// Records how many processes are inside the semaphore at once.
fn inside_semaphore((sem, inside, max): (Semaphore, RawValue<u32>, RawValue<u32>)) {
    for _ in 0..300 {
        let _g = sem.acquire().unwrap();
        let n = inside.fetch_add(1) + 1;
        max.fetch_max(n);
        std::thread::sleep(Duration::from_micros(50));
        inside.fetch_sub(1);
    }
}

fn wait_event(ev: Event) -> Result<(), String> {
    if ev.wait_timeout(WATCHDOG) {
        Ok(())
    } else {
        Err("event not set within the watchdog".into())
    }
}

fn wait_condition(
    (cond, flag, ready): (Condition, RawValue<u32>, RawValue<u32>),
) -> Result<(), String> {
    let mut g = cond.acquire().map_err(|e| e.to_string())?;
    ready.store(1);
    let deadline = Instant::now() + WATCHDOG;
    while flag.load() == 0 {
        if Instant::now() >= deadline {
            return Err("not notified within the watchdog".into());
        }
        g = cond.wait_timeout(g, WATCHDOG).map_err(|e| e.to_string())?.0;
    }
    Ok(())
}

fn barrier_party((b, slot, indexes): (Barrier, usize, RawArray<u32>)) -> Result<(), String> {
    for round in 0..3 {
        let i = b.wait_timeout(WATCHDOG).map_err(|e| e.to_string())?;
        indexes
            .set(round * 3 + slot, i + 1)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

// ---- tests -----------------------------------------------------------------

#[test]
fn lock_four_processes_count_exactly() {
    shmproc::init();
    let mut r = Reaper::new();
    let lock = Lock::new().unwrap();
    let counter = RawValue::new(0u64).unwrap();
    let ps: Vec<_> = (0..4)
        .map(|_| {
            r.watch(Process::spawn(locked_increments, (lock.clone(), counter.clone())).unwrap())
        })
        .collect();
    for p in &ps {
        assert_eq!(join(p), 0);
    }
    assert_eq!(counter.get(), 4 * INCREMENTS);
    assert!(!lock.is_locked());
}

/// Starts a child (watched by `r`) that holds `lock` until it is killed;
/// returns once the child holds it.
fn spawn_holder(r: &mut Reaper, lock: &Lock) -> Process {
    let ready = RawValue::new(0u32).unwrap();
    let p = r.watch(Process::spawn(hold_until_killed, (lock.clone(), ready.clone())).unwrap());
    wait_for(&ready, 1);
    p
}

#[test]
fn sigkilled_lock_holder_is_recovered_by_a_sleeping_waiter() {
    shmproc::init();
    let mut r = Reaper::new();
    let name = common::unique_name("sync-kill-sleeper");
    let lock = Lock::builder().name(&name).create().unwrap();
    let p = spawn_holder(&mut r, &lock);
    let e = lock.acquire_timeout(Duration::from_millis(50)).unwrap_err();
    assert!(matches!(e, Error::Timeout), "{e}");
    // A waiter is asleep on the lock when the holder dies: the lock's
    // "blocked acquires" counter moves once the waiter goes to sleep.
    let slept = counter(&name, "blocked acquires");
    let l2 = lock.clone();
    let waiter = std::thread::spawn(move || l2.acquire_timeout(WATCHDOG).map(|g| g.owner_died()));
    wait_for_counter(&name, "blocked acquires", slept + 1);
    sigkill(p.pid());
    assert_eq!(join(&p), -9);
    let died = waiter.join().unwrap();
    assert!(died.expect("recovered"), "owner_died() after SIGKILL");
    let g = lock.acquire().unwrap();
    assert!(!g.owner_died(), "reported once, then clean");
}

#[test]
fn sigkilled_lock_holder_is_recovered_by_try_acquire() {
    shmproc::init();
    let mut r = Reaper::new();
    let name = common::unique_name("sync-kill-named");
    let lock = Lock::builder().name(&name).create().unwrap();
    let p = spawn_holder(&mut r, &lock);
    assert!(matches!(lock.try_acquire(), Ok(None)), "held by the child");
    sigkill(p.pid());
    assert_eq!(join(&p), -9);
    let reopened = Lock::open(&name).unwrap();
    let g = reopened
        .try_acquire()
        .unwrap()
        .expect("recovered from the dead holder");
    assert!(g.owner_died());
}

#[test]
fn sigkilled_rlock_holder_is_recovered() {
    shmproc::init();
    let mut r = Reaper::new();
    let lock = RLock::new().unwrap();
    let ready = RawValue::new(0u32).unwrap();
    let p =
        r.watch(Process::spawn(hold_rlock_until_killed, (lock.clone(), ready.clone())).unwrap());
    wait_for(&ready, 1);
    assert_eq!(lock.depth(), 2);
    sigkill(p.pid());
    assert_eq!(join(&p), -9);
    let g = lock.acquire_timeout(WATCHDOG).unwrap();
    assert!(g.owner_died());
    assert_eq!(lock.depth(), 1);
}

#[test]
fn semaphore_two_never_admits_a_third_process() {
    shmproc::init();
    let mut r = Reaper::new();
    let sem = Semaphore::new(2).unwrap();
    let inside = RawValue::new(0u32).unwrap();
    let max = RawValue::new(0u32).unwrap();
    let ps: Vec<_> = (0..4)
        .map(|_| {
            r.watch(
                Process::spawn(inside_semaphore, (sem.clone(), inside.clone(), max.clone()))
                    .unwrap(),
            )
        })
        .collect();
    for p in &ps {
        assert_eq!(join(p), 0);
    }
    let max = max.load();
    assert!(
        (1..=2).contains(&max),
        "{max} processes inside a Semaphore(2)"
    );
    assert_eq!(sem.value(), 2);
}

#[test]
fn event_wakes_waiters_in_other_processes() {
    shmproc::init();
    let mut r = Reaper::new();
    let name = common::unique_name("sync-event");
    let ev = Event::builder().name(&name).create().unwrap();
    let ps: Vec<_> = (0..2)
        .map(|_| r.watch(Process::spawn(wait_event, ev.clone()).unwrap()))
        .collect();
    // Both children are asleep in `wait` (each counts one blocked wait).
    wait_for_counter(&name, "blocked waits", 2);
    ev.set();
    for p in &ps {
        assert_eq!(join(p), 0);
    }
}

#[test]
fn condition_wakes_waiter_in_other_process() {
    shmproc::init();
    let mut r = Reaper::new();
    let cond = Condition::new().unwrap();
    let flag = RawValue::new(0u32).unwrap();
    let ready = RawValue::new(0u32).unwrap();
    let p = r.watch(
        Process::spawn(wait_condition, (cond.clone(), flag.clone(), ready.clone())).unwrap(),
    );
    wait_for(&ready, 1);
    {
        // The child released the lock inside `wait`, so this succeeds.
        let _g = cond.acquire_timeout(WATCHDOG).unwrap();
        flag.store(1);
        cond.notify_all();
    }
    assert_eq!(join(&p), 0);
}

#[test]
fn barrier_wakes_parties_in_other_processes() {
    shmproc::init();
    let mut r = Reaper::new();
    let b = Barrier::new(3).unwrap();
    let indexes = RawArray::<u32>::new(9).unwrap();
    let ps: Vec<_> = (1..3)
        .map(|slot| {
            r.watch(Process::spawn(barrier_party, (b.clone(), slot, indexes.clone())).unwrap())
        })
        .collect();
    for round in 0..3 {
        let i = b.wait_timeout(WATCHDOG).unwrap();
        indexes.set(round * 3, i + 1).unwrap();
    }
    for p in &ps {
        assert_eq!(join(p), 0);
    }
    let all = indexes.to_vec();
    for round in all.chunks(3) {
        let mut round = round.to_vec();
        round.sort_unstable();
        assert_eq!(
            round,
            [1, 2, 3],
            "distinct indexes 0..3 in each round: {all:?}"
        );
    }
}

#[test]
fn timeouts_return_timeout() {
    shmproc::init();
    let mut r = Reaper::new();
    let lock = Lock::new().unwrap();
    let p = spawn_holder(&mut r, &lock);
    let d = Duration::from_millis(30);
    let start = Instant::now();
    assert!(matches!(lock.acquire_timeout(d), Err(Error::Timeout)));
    assert!(start.elapsed() >= d);
    let sem = Semaphore::new(0).unwrap();
    assert!(matches!(sem.acquire_timeout(d), Err(Error::Timeout)));
    assert!(!Event::new().unwrap().wait_timeout(d));
    // A barrier wait that times out breaks it (Python's semantics).
    assert!(matches!(
        Barrier::new(2).unwrap().wait_timeout(d),
        Err(Error::BrokenBarrier)
    ));
    let cond = Condition::new().unwrap();
    let (_g, notified) = cond.wait_timeout(cond.acquire().unwrap(), d).unwrap();
    assert!(!notified);
    sigkill(p.pid());
    assert_eq!(join(&p), -9);
}

/// A guard alive at `fork()` is copied into the child; dropping the copy there
/// must not release the parent's lock.
#[test]
fn guard_copied_by_fork_releases_nothing() {
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::{fork, ForkResult};
    let lock = Lock::new().unwrap();
    let guard = lock.acquire().unwrap();
    // SAFETY: the child only drops a guard, reads the lock word and exits
    // with `_exit`; glibc makes malloc usable in a forked child.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            drop(guard);
            let code = if lock.is_locked() { 0 } else { 1 };
            // SAFETY: _exit ends the child without running the parent's
            // destructors or the test harness.
            unsafe { libc::_exit(code) };
        }
        ForkResult::Parent { child } => {
            let status = waitpid(child, None).expect("waitpid");
            assert_eq!(
                status,
                WaitStatus::Exited(child, 0),
                "the child released our lock"
            );
            assert!(lock.is_locked());
            assert!(!guard.owner_died());
            drop(guard);
            assert!(!lock.is_locked());
        }
    }
}
