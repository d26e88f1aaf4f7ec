//! Pipes between real processes: round trips, and `Closed` after the other
//! end's process exits or is SIGKILLed (buffered messages first).

mod common;
use common::{counter, wait_until, Reaper, Watchdog, WATCHDOG};

use std::time::{Duration, Instant};

use shmproc::{Connection, Error, Pipe, Process, Sender};

fn echo(c: Connection<String>) {
    while let Ok(s) = c.recv() {
        c.send(&format!("{s}!")).unwrap();
    }
}

#[test]
fn duplex_round_trips_with_a_child() {
    shmproc::init();
    let (a, b) = Pipe::duplex::<String>();
    let p = Process::spawn(echo, b).unwrap();
    let _r = Reaper::of(&[&p]);
    for i in 0..1000 {
        a.send(&format!("m{i}")).unwrap();
        assert_eq!(a.recv_timeout(WATCHDOG).unwrap(), format!("m{i}!"));
    }
    drop(a);
    // The child's recv sees Closed once our end is gone, and it exits.
    assert_eq!(p.join_timeout(WATCHDOG).unwrap(), 0);
}

fn send_three_and_exit(tx: Sender<u32>) {
    for i in 0..3 {
        tx.send(&i).unwrap();
    }
}

#[test]
fn closed_after_sender_exits() {
    shmproc::init();
    let (rx, tx) = Pipe::simplex::<u32>();
    let p = Process::spawn(send_three_and_exit, tx).unwrap();
    let _r = Reaper::of(&[&p]);
    // Our copy of the sender was moved into the launch: only the child holds it.
    for i in 0..3 {
        assert_eq!(rx.recv_timeout(WATCHDOG).unwrap(), i);
    }
    assert!(matches!(rx.recv_timeout(WATCHDOG), Err(Error::Closed)));
    assert_eq!(p.join_timeout(WATCHDOG).unwrap(), 0);
}

fn send_two_then_hang(tx: Sender<u32>) {
    tx.send(&1).unwrap();
    tx.send(&2).unwrap();
    std::thread::sleep(Duration::from_secs(600));
}

#[test]
fn closed_after_sender_is_killed() {
    shmproc::init();
    let (rx, tx) = Pipe::simplex::<u32>();
    let p = Process::spawn(send_two_then_hang, tx).unwrap();
    let _r = Reaper::of(&[&p]);
    assert_eq!(rx.recv_timeout(WATCHDOG).unwrap(), 1);
    // Kill while the receiver is blocked, and with one message still buffered.
    let deadline = Instant::now() + WATCHDOG;
    while !rx.poll(Duration::from_millis(10)) {
        assert!(Instant::now() < deadline);
    }
    p.kill().unwrap();
    assert_eq!(p.join_timeout(WATCHDOG).unwrap(), -9);
    assert_eq!(rx.recv_timeout(WATCHDOG).unwrap(), 2);
    assert!(matches!(rx.recv_timeout(WATCHDOG), Err(Error::Closed)));
}

/// Connects to the named pipe `name`, takes one message, then hangs.
fn connect_recv_one_then_hang(name: String) {
    let c: Connection<u32> = Pipe::connect(&name).unwrap();
    let _ = c.recv();
    std::thread::sleep(Duration::from_secs(600));
}

#[test]
fn blocked_sender_sees_closed_after_receiver_is_killed() {
    shmproc::init();
    let _w = Watchdog::new("blocked sender");
    // Named (listen/connect), so that the pipe's counters are readable.
    let name = common::unique_name("pipe-dead-receiver");
    let tx: Connection<u32> = Pipe::builder().name(&name).capacity(2).listen().unwrap();
    let p = Process::spawn(connect_recv_one_then_hang, name.clone()).unwrap();
    let _r = Reaper::of(&[&p]);
    // The receiver dies while the sender is asleep on the full pipe: once
    // the child has taken its message ("gets" 1) the pipe fills and stays
    // full, and the sender's blocked put shows as a sleeping putter.
    let killer = {
        let p = p.clone();
        std::thread::spawn(move || {
            let ab = format!("{name}.ab");
            wait_until("the child took a message", || counter(&ab, "gets") >= 1);
            wait_until("the sender sleeps on the full pipe", || {
                counter(&ab, "putters asleep") >= 1
            });
            p.kill().unwrap();
        })
    };
    let mut r = Ok(());
    for i in 0..10 {
        r = tx.send(&i);
        if r.is_err() {
            break;
        }
    }
    assert!(matches!(r, Err(Error::Closed)), "{r:?}");
    killer.join().unwrap();
    p.join_timeout(WATCHDOG).unwrap();
}

fn connect_and_echo(name: String) -> Result<(), String> {
    let c: Connection<String> = Pipe::connect(&name).map_err(|e| e.to_string())?;
    while let Ok(s) = c.recv() {
        c.send(&format!("{s}?")).map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[test]
fn named_pipe_listen_and_connect_from_another_process() {
    shmproc::init();
    let name = common::unique_name("pipe-named");
    let l: Connection<String> = Pipe::builder().name(&name).listen().unwrap();
    // Nobody connected yet: the other end is not gone, receives just wait.
    assert!(matches!(
        l.recv_timeout(Duration::from_millis(50)),
        Err(Error::Timeout)
    ));
    l.send(&"early".to_string()).unwrap();
    let p = Process::spawn(connect_and_echo, name.clone()).unwrap();
    let _r = Reaper::of(&[&p]);
    assert_eq!(l.recv_timeout(WATCHDOG).unwrap(), "early?");
    l.send(&"x".to_string()).unwrap();
    assert_eq!(l.recv_timeout(WATCHDOG).unwrap(), "x?");
    drop(l);
    assert_eq!(p.join_timeout(WATCHDOG).unwrap(), 0);
    for suffix in ["ab", "ba"] {
        let path = format!("/dev/shm/shmproc.{name}.{suffix}");
        assert!(!std::path::Path::new(&path).exists(), "{path} left behind");
    }
}
