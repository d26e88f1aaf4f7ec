//! The exit word of launched children, with real processes: both start
//! methods arm it, the kernel marks it and wakes a sleeper at the child's
//! death, and `has_exited_now` tells the truth where the word cannot (a
//! child that never reached `init()`).
//!
//! These are unit tests (the waiter's interface is crate-internal): each
//! test that spawns calls `init()` first, and its re-executed child runs
//! only that test (selected by name), whose `init()` runs the entry.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{Process, StartMethod};
use crate::sync::Event;
use crate::sys::exit_word::testing::{blocked_in, sleep_once, wait_asleep_on, Woke};
use crate::sys::exit_word::{self, ExitWord};
use crate::sys::futex::WaitOutcome;

/// Upper bound of every wait: a bug fails the test instead of hanging it.
const WATCHDOG: Duration = Duration::from_secs(30);

/// Kills and reaps its child when dropped (also when the test fails).
struct Reaper(Process);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.join_timeout(WATCHDOG);
    }
}

/// The child's entry: waits (bounded) until the parent sets `go`.
fn wait_for_go(go: Event) {
    go.wait_timeout(WATCHDOG);
}

fn launch(method: StartMethod, go: &Event) -> Reaper {
    let p = Process::builder()
        .start_method(method)
        .spawn(wait_for_go, go.clone())
        .expect("spawn");
    Reaper(p)
}

fn word_of(p: &Process) -> &ExitWord {
    p.exit_word().expect("a launched child has an exit word")
}

/// Polls (bounded) until the child has named one of its threads in its
/// word; returns that thread id, checked to be a thread of the child.
fn wait_registered(p: &Process) -> u32 {
    let deadline = Instant::now() + WATCHDOG;
    loop {
        let v = word_of(p).word().load(std::sync::atomic::Ordering::SeqCst);
        let tid = exit_word::owner(v);
        if tid != 0 {
            let task = format!("/proc/{}/task/{tid}", p.pid());
            assert!(
                std::path::Path::new(&task).exists(),
                "{task}: not the child's"
            );
            return tid;
        }
        assert!(!exit_word::is_dead(v), "died before registering: {v:#x}");
        assert!(Instant::now() < deadline, "watchdog: word stayed {v:#x}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Starts a sleeper on `p`'s exit word, which reports `(id, what it saw)`
/// on `tx`; returns its thread id once it is blocked in the kernel.
fn sleeper<'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    p: &Process,
    id: usize,
    tx: mpsc::Sender<(usize, Woke)>,
) -> u32 {
    let (tid_tx, tid_rx) = mpsc::channel();
    let p2 = p.clone();
    scope.spawn(move || {
        tid_tx.send(crate::sys::task::gettid()).unwrap();
        let _ = tx.send((id, sleep_once(word_of(&p2), Instant::now() + WATCHDOG)));
    });
    let tid = tid_rx.recv_timeout(WATCHDOG).expect("sleeper started");
    wait_asleep_on(tid, word_of(p), Instant::now() + WATCHDOG);
    tid
}

/// One sleeper; returns the receiver of what it will see.
fn one_sleeper<'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    p: &Process,
) -> mpsc::Receiver<(usize, Woke)> {
    let (tx, rx) = mpsc::channel();
    sleeper(scope, p, 0, tx);
    rx
}

/// The kernel's wake-up reached the sleeper: woken (not timed out) with the
/// word dead; then the exit settles and the child is reaped.
fn assert_woken_by_death(p: &Process, woke: &Woke) {
    assert_eq!(woke.outcome, WaitOutcome::Woken, "woken, not timed out");
    assert_eq!(
        woke.word,
        exit_word::OWNER_DIED | exit_word::WAITERS,
        "the kernel set OWNER_DIED, kept WAITERS, cleared the tid"
    );
    assert!(word_of(p).has_exited());
    assert!(
        word_of(p).prepare_sleep().is_none(),
        "a dead word is not slept on"
    );
    assert!(p.settle_exit(Instant::now() + WATCHDOG), "the exit settles");
    assert!(p.has_exited_now());
}

fn killed_child_wakes_a_sleeper(method: StartMethod) {
    let go = Event::new().unwrap();
    let r = launch(method, &go);
    wait_registered(&r.0);
    std::thread::scope(|s| {
        let rx = one_sleeper(s, &r.0);
        r.0.kill().unwrap();
        let (_, woke) = rx.recv_timeout(WATCHDOG).expect("the sleeper woke");
        assert_woken_by_death(&r.0, &woke);
    });
    assert_eq!(r.0.exitcode(), Some(-9));
}

fn exiting_child_wakes_a_sleeper(method: StartMethod) {
    let go = Event::new().unwrap();
    let r = launch(method, &go);
    wait_registered(&r.0);
    std::thread::scope(|s| {
        let rx = one_sleeper(s, &r.0);
        go.set();
        let (_, woke) = rx.recv_timeout(WATCHDOG).expect("the sleeper woke");
        // The word changes early in the exit, before the child can be
        // reaped: how long until it can, on this machine.
        let woken = Instant::now();
        assert!(p_settles(&r.0));
        eprintln!(
            "{method:?} child: woken {:?} after the sleep began; reapable {:?} after the wake",
            woke.after,
            woken.elapsed()
        );
        assert_woken_by_death(&r.0, &woke);
    });
    assert_eq!(r.0.exitcode(), Some(0));
}

fn p_settles(p: &Process) -> bool {
    p.settle_exit(Instant::now() + WATCHDOG)
}

#[test]
fn spawned_child_killed_wakes_a_sleeper() {
    crate::init();
    killed_child_wakes_a_sleeper(StartMethod::Spawn);
}

#[test]
fn forked_child_killed_wakes_a_sleeper() {
    crate::init();
    killed_child_wakes_a_sleeper(StartMethod::Fork);
}

#[test]
fn spawned_child_exiting_wakes_a_sleeper() {
    crate::init();
    exiting_child_wakes_a_sleeper(StartMethod::Spawn);
}

#[test]
fn forked_child_exiting_wakes_a_sleeper() {
    crate::init();
    exiting_child_wakes_a_sleeper(StartMethod::Fork);
}

#[test]
fn two_sleepers_both_wake() {
    crate::init();
    let go = Event::new().unwrap();
    let r = launch(StartMethod::Spawn, &go);
    wait_registered(&r.0);
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel();
        let tids = [sleeper(s, &r.0, 0, tx.clone()), sleeper(s, &r.0, 1, tx)];
        r.0.kill().unwrap();
        let (first, woke) = rx.recv_timeout(WATCHDOG).expect("one sleeper woke");
        assert_woken_by_death(&r.0, &woke);
        // The kernel wakes one (FUTEX_WAKE of 1): the other still sleeps,
        // until the one that saw the death passes it on.
        let addr = word_of(&r.0).word().as_ptr() as usize;
        assert!(blocked_in(tids[1 - first], libc::SYS_futex, addr));
        word_of(&r.0).wake_all();
        let (second, other) = rx.recv_timeout(WATCHDOG).expect("wake_all woke the other");
        assert_eq!(second, 1 - first);
        assert_woken_by_death(&r.0, &other);
    });
}

/// Deliberately no `init()`: the re-executed child runs this body again,
/// its spawn is refused, and it exits without ever reaching `init()`, so
/// its exit word is never registered. The parent's sleeper is not woken;
/// `has_exited_now` (the slice-end check) still sees the exit.
#[test]
fn child_that_never_reaches_init_leaves_the_word_unregistered() {
    let go = Event::new().unwrap();
    let p = match Process::spawn(wait_for_go, go.clone()) {
        Ok(p) => p,
        Err(e) => {
            // We are the child: the launcher refused, as it must.
            assert!(e.to_string().contains("init()"), "{e}");
            return;
        }
    };
    let r = Reaper(p);
    let word = word_of(&r.0);
    let deadline = Instant::now() + WATCHDOG;
    let mut slice = 0;
    // What a waiter does: sleep a slice on the word, then ask the kernel.
    while !r.0.has_exited_now() {
        assert!(Instant::now() < deadline, "watchdog: the child never ended");
        let end = crate::sync::wait::slice_end(slice, Instant::now(), Some(deadline));
        let woke = sleep_once(word, end.unwrap());
        assert_eq!(
            woke.outcome,
            WaitOutcome::TimedOut,
            "nobody wakes an unregistered word"
        );
        slice += 1;
    }
    let v = word.word().load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        v & !exit_word::WAITERS,
        0,
        "never registered: 0, or the parent's WAITERS bit alone ({v:#x})"
    );
    assert!(!word.has_exited());
    assert_eq!(r.0.exitcode(), Some(0));
}

#[test]
fn every_launched_child_has_its_own_word() {
    crate::init();
    let go = Event::new().unwrap();
    let a = launch(StartMethod::Spawn, &go);
    let b = launch(StartMethod::Fork, &go);
    let (ta, tb) = (wait_registered(&a.0), wait_registered(&b.0));
    assert_ne!(ta, tb);
    assert_ne!(word_of(&a.0).page(), word_of(&b.0).page());
    assert!(!a.0.has_exited_now() && !b.0.has_exited_now());
    go.set();
    assert!(p_settles(&a.0) && p_settles(&b.0));
    assert_eq!((a.0.exitcode(), b.0.exitcode()), (Some(0), Some(0)));
    assert!(word_of(&a.0).has_exited() && word_of(&b.0).has_exited());
}
