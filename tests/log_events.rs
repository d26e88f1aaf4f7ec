//! Lifecycle events go through the `log` facade: silent unless the
//! application installs a logger; with one, segments created, opened and
//! unlinked and processes spawned and exited are reported.

use std::time::Duration;

use shmproc::{Error, Lock, Pool, Process};

mod common;
use common::logs::{capture, seen};

/// Kills its own pool worker on 0 (as the OOM killer would).
fn die_on_zero(x: u64) -> u64 {
    if x == 0 {
        // SAFETY: raise only sends a signal to this process.
        unsafe { libc::raise(libc::SIGKILL) };
    }
    x
}

/// Fails, so the exit code is non-zero (1).
fn quick_fail(_: ()) -> Result<(), String> {
    Err("on purpose".into())
}

#[test]
fn lifecycle_events_reach_an_installed_logger() {
    shmproc::init();
    capture();

    let name = common::unique_name("log-ev");
    let lock = Lock::builder().name(&name).create().unwrap();
    let other = Lock::open(&name).unwrap();
    drop(other);
    drop(lock);
    let p = Process::spawn(quick_fail, ()).unwrap();
    assert_eq!(p.join_timeout(Duration::from_secs(60)).unwrap(), 1);
    let pid = p.pid();

    let seen = seen();
    let has = |want: &str| seen.iter().any(|l| l.contains(want));
    assert!(has(&format!("created lock segment {name}")), "{seen:#?}");
    assert!(has(&format!("opened lock segment {name}")), "{seen:#?}");
    assert!(has(&format!("unlinked named segment {name}")), "{seen:#?}");
    assert!(has(&format!("spawned process {}", p.name())), "{seen:#?}");
    assert!(has(&format!("(pid {pid}) exited with 1")), "{seen:#?}");
    assert!(!std::path::Path::new(&format!("/dev/shm/shmproc.{name}")).exists());
}

#[test]
fn a_dead_pool_worker_is_reported_and_its_replacement_too() {
    shmproc::init();
    capture();
    let pool = Pool::new(1).unwrap();
    let before = pool.pids()[0];
    let e = pool.apply(die_on_zero, 0).unwrap_err();
    assert!(matches!(e, Error::WorkerDied { .. }), "{e}");
    // The next task is served by the replacement.
    assert_eq!(pool.apply(die_on_zero, 5).unwrap(), 5);
    let after = pool.pids()[0];
    assert_ne!(before, after);
    drop(pool);
    let seen = seen();
    let has = |want: &str| seen.iter().any(|l| l.contains(want));
    assert!(
        has(&format!(
            "pool worker {before} (slot 0) ended with Some(-9) holding 1 piece(s)"
        )),
        "{seen:#?}"
    );
    assert!(
        has(&format!(
            "pool worker {before} (slot 0) replaced by {after}"
        )),
        "{seen:#?}"
    );
}
