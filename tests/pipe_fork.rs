//! Pipe ends that reach a child by `fork` capture
//! (`Process::builder().spawn_fork(move || ..)`): the child holds them as a
//! process of its own, so dropping the parent's copy does not make the other
//! end report `Closed` while the child still uses its end; and an end the
//! child did not capture is not held by it.
//!
//! The children wait for a `go` flag: every check the parent makes before
//! setting it sees the child alive and holding (or not holding) its end,
//! without guessing how far the child got.

mod common;
// The tests of this binary fork, so they take turns (`one_at_a_time`).
use common::{join, one_at_a_time, wait_for, Reaper, Watchdog, WATCHDOG};

use std::time::Duration;

use shmproc::{Error, Pipe, Process, RawValue};

#[test]
fn a_sender_captured_by_fork_sends_after_the_parent_dropped_its_copy() {
    shmproc::init();
    let _turn = one_at_a_time();
    let _w = Watchdog::new("fork-captured sender");
    let mut r = Reaper::new();
    let (rx, tx) = Pipe::simplex::<u32>();
    let go = RawValue::new(0u32).unwrap();
    let g2 = go.clone();
    // `tx` moves into the closure: after this line the parent has no copy.
    let p = r.watch(
        Process::builder()
            .spawn_fork(move || {
                wait_for(&g2, 1);
                tx.send(&42).unwrap();
                tx.send(&43).unwrap();
            })
            .unwrap(),
    );
    // The child holds the sender: nothing to receive yet, and not closed.
    assert!(
        !rx.poll(Duration::from_millis(20)),
        "reported gone or ready"
    );
    assert!(matches!(rx.try_recv(), Err(Error::Empty)));
    go.store(1);
    assert_eq!(rx.recv_timeout(WATCHDOG).unwrap(), 42);
    assert_eq!(rx.recv_timeout(WATCHDOG).unwrap(), 43);
    // The child dropped its end and exited: now the sender is gone.
    assert!(matches!(rx.recv_timeout(WATCHDOG), Err(Error::Closed)));
    assert_eq!(join(&p), 0);
}

#[test]
fn a_duplex_end_captured_by_fork_answers_after_the_parent_dropped_its_copy() {
    shmproc::init();
    let _turn = one_at_a_time();
    let _w = Watchdog::new("fork-captured duplex");
    let mut r = Reaper::new();
    let (a, b) = Pipe::duplex::<String>();
    let p = r.watch(
        Process::builder()
            .spawn_fork(move || {
                while let Ok(s) = b.recv() {
                    b.send(&format!("{s}!")).unwrap();
                }
            })
            .unwrap(),
    );
    for i in 0..100 {
        a.send(&format!("m{i}")).unwrap();
        assert_eq!(a.recv_timeout(WATCHDOG).unwrap(), format!("m{i}!"));
    }
    drop(a); // the child's recv sees Closed and it exits
    assert_eq!(join(&p), 0);
}

#[test]
fn an_end_the_forked_child_did_not_capture_is_not_held_by_it() {
    shmproc::init();
    let _turn = one_at_a_time();
    let _w = Watchdog::new("fork without capture");
    let mut r = Reaper::new();
    let (rx, tx) = Pipe::simplex::<u32>();
    let (go, started) = (RawValue::new(0u32).unwrap(), RawValue::new(0u32).unwrap());
    let (g2, s2) = (go.clone(), started.clone());
    let p = r.watch(
        Process::builder()
            .spawn_fork(move || {
                s2.store(1);
                wait_for(&g2, 1);
            })
            .unwrap(),
    );
    wait_for(&started, 1);
    tx.send(&7).unwrap();
    drop(tx); // the only sender the child could hold is a copy it never took
    assert_eq!(rx.recv_timeout(WATCHDOG).unwrap(), 7);
    assert!(
        matches!(rx.recv_timeout(WATCHDOG), Err(Error::Closed)),
        "the running child made the sender look alive"
    );
    assert!(p.is_alive());
    go.store(1);
    assert_eq!(join(&p), 0);
}

#[test]
fn a_sender_the_forked_child_drops_at_once_is_gone_while_it_runs() {
    shmproc::init();
    let _turn = one_at_a_time();
    let _w = Watchdog::new("fork then drop");
    let mut r = Reaper::new();
    let (rx, tx) = Pipe::simplex::<u32>();
    let go = RawValue::new(0u32).unwrap();
    let g2 = go.clone();
    let p = r.watch(
        Process::builder()
            .spawn_fork(move || {
                tx.send(&1).unwrap();
                drop(tx);
                wait_for(&g2, 1);
            })
            .unwrap(),
    );
    assert_eq!(rx.recv_timeout(WATCHDOG).unwrap(), 1);
    assert!(
        matches!(rx.recv_timeout(WATCHDOG), Err(Error::Closed)),
        "the child dropped its sender"
    );
    assert!(p.is_alive());
    go.store(1);
    assert_eq!(join(&p), 0);
}
