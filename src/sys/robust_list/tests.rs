//! What the kernel does with a linked word, on this kernel, with real
//! processes: forked children (async-signal-safe work only: syscalls and
//! atomics) that link a word and then die in various ways.
//!
//! A sleeper is proven to be woken by the kernel, not by a value change on
//! entry: the test waits until `/proc/self/task/<tid>/syscall` shows it
//! blocked in the futex call on the word before it kills the child, and
//! nothing in the test wakes the word.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::*;
use crate::sys::exit_word::testing::{blocked_in, sleep_once, wait_asleep_on, wait_blocked, Woke};
use crate::sys::exit_word::{self, ExitWord};
use crate::sys::futex::{self, WaitOutcome};
use crate::sys::process::{self as proc, Reap};

/// Upper bound of every wait: a bug fails the test instead of hanging it.
const WATCHDOG: Duration = Duration::from_secs(30);

/// A forked child; killed and reaped on drop (also when the test fails).
struct Child {
    pid: u32,
    reaped: bool,
}

/// Forks a child that runs `body` (which must stay async-signal-safe: the
/// test process has other threads) and `_exit`s with its result.
fn fork_child(body: impl FnOnce() -> i32) -> Child {
    // SAFETY:
    // - the child runs only `body`, which the tests keep to syscalls and
    //   atomics (no lock another thread of the test process may hold);
    // - it ends with `exit_now`, never returning into the harness.
    match unsafe { proc::fork() }.expect("fork") {
        Some(pid) => Child { pid, reaped: false },
        None => {
            let code = catch_unwind(AssertUnwindSafe(body)).unwrap_or(99);
            proc::exit_now(code)
        }
    }
}

impl Child {
    fn kill(&self) {
        proc::send_signal(self.pid, nix::sys::signal::Signal::SIGKILL).expect("kill -9");
    }

    /// Reaps the child (bounded) and returns its exit code.
    fn reap(&mut self) -> i32 {
        let deadline = Instant::now() + WATCHDOG;
        let fd = proc::pidfd_open(self.pid).expect("pidfd");
        loop {
            match proc::try_reap(self.pid).expect("waitpid") {
                Reap::Exited(code) => {
                    self.reaped = true;
                    return code;
                }
                Reap::NotAChild => panic!("child {} reaped elsewhere", self.pid),
                Reap::Running => {
                    use std::os::fd::AsFd;
                    assert!(Instant::now() < deadline, "watchdog: child did not end");
                    proc::wait_pidfd(fd.as_fd(), Some(deadline)).expect("poll");
                }
            }
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = proc::send_signal(self.pid, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(self.pid as i32), None);
        }
    }
}

/// In the child: links `word`, tells the parent (a wake on the word), and
/// blocks until `go` is set; returns the exit status to `_exit` with.
fn link_then_wait(word: &ExitWord, go: &AtomicU32) -> i32 {
    // SAFETY:
    // - the forked child never unmaps the page: it ends with `_exit`;
    // - nothing else in the child uses the page;
    // - we are the child's only thread, outside any signal handler.
    if unsafe { link_word(word.word(), word.page()) }.is_err() {
        return 3;
    }
    futex::wake_all(word.word());
    park_until_go(go)
}

fn park_until_go(go: &AtomicU32) -> i32 {
    // Acquire: pairs with the parent's Release store of `go` (nothing else
    // to read; it is the handshake).
    while go.load(Ordering::Acquire) == 0 {
        futex::wait(go, 0, None);
    }
    0
}

/// Waits (bounded) until the word names thread `tid`; returns the word.
fn wait_registered(word: &AtomicU32, tid: u32) -> u32 {
    let deadline = Instant::now() + WATCHDOG;
    loop {
        let v = word.load(Ordering::SeqCst);
        if exit_word::owner(v) == tid {
            return v;
        }
        assert!(
            !exit_word::is_dead(v),
            "the child died before registering: {v:#x}"
        );
        assert!(
            Instant::now() < deadline,
            "watchdog: the child never registered (word {v:#x})"
        );
        futex::wait(word, v, Some(deadline));
    }
}

/// Starts a thread that announces itself on the exit word and sleeps on it
/// (until the watchdog); returns its thread id. It reports on `tx`.
fn sleeper(word: &'static ExitWord, id: usize, tx: mpsc::Sender<(usize, Woke)>) -> u32 {
    let (tid_tx, tid_rx) = mpsc::channel();
    std::thread::spawn(move || {
        tid_tx.send(crate::sys::task::gettid()).unwrap();
        let _ = tx.send((id, sleep_once(word, Instant::now() + WATCHDOG)));
    });
    tid_rx.recv_timeout(WATCHDOG).expect("sleeper started")
}

fn wait_asleep(tid: u32, word: &ExitWord) {
    wait_asleep_on(tid, word, Instant::now() + WATCHDOG)
}

/// A page for the test's own handshakes (`go`), apart from the exit word's.
fn control() -> &'static ExitWord {
    Box::leak(Box::new(ExitWord::create().unwrap().0))
}

fn exit_word() -> &'static ExitWord {
    Box::leak(Box::new(ExitWord::create().unwrap().0))
}

#[test]
fn sigkill_marks_the_word_and_wakes_the_sleeper() {
    let (word, go) = (exit_word(), control());
    let mut child = fork_child(|| link_then_wait(word, go.word()));
    let v = wait_registered(word.word(), child.pid);
    assert_eq!(v, child.pid, "registered: the child's tid, no other bit");
    let (tx, rx) = mpsc::channel();
    let tid = sleeper(word, 0, tx);
    wait_asleep(tid, word);
    assert_eq!(
        word.word().load(Ordering::SeqCst),
        exit_word::WAITERS | child.pid
    );
    child.kill();
    let (_, woke) = rx.recv_timeout(WATCHDOG).expect("the sleeper woke");
    assert_eq!(woke.outcome, WaitOutcome::Woken, "woken, not timed out");
    assert_eq!(
        woke.word,
        exit_word::OWNER_DIED | exit_word::WAITERS,
        "the kernel set OWNER_DIED, kept WAITERS, cleared the tid"
    );
    assert!(word.has_exited());
    assert_eq!(child.reap(), -libc::SIGKILL);
    eprintln!(
        "sigkill: sleeper woken by the kernel after {:?} (watchdog {WATCHDOG:?})",
        woke.after
    );
}

#[test]
fn normal_exit_marks_the_word() {
    let (word, go) = (exit_word(), control());
    let mut child = fork_child(|| link_then_wait(word, go.word()));
    wait_registered(word.word(), child.pid);
    let (tx, rx) = mpsc::channel();
    let tid = sleeper(word, 0, tx);
    wait_asleep(tid, word);
    // Release: the child's Acquire in `park_until_go` (the handshake).
    go.word().store(1, Ordering::Release);
    futex::wake_all(go.word());
    let (_, woke) = rx.recv_timeout(WATCHDOG).expect("the sleeper woke");
    assert_eq!(woke.outcome, WaitOutcome::Woken);
    assert_eq!(woke.word, exit_word::OWNER_DIED | exit_word::WAITERS);
    assert_eq!(child.reap(), 0);
}

#[test]
fn without_waiters_the_kernel_marks_but_wakes_nobody() {
    let (word, go) = (exit_word(), control());
    let mut child = fork_child(|| link_then_wait(word, go.word()));
    wait_registered(word.word(), child.pid);
    child.kill();
    assert_eq!(child.reap(), -libc::SIGKILL);
    // Reaped means exited: the robust list was walked long before.
    assert_eq!(word.word().load(Ordering::SeqCst), exit_word::OWNER_DIED);
}

#[test]
fn the_kernel_wakes_one_sleeper_and_wake_all_the_rest() {
    let (word, go) = (exit_word(), control());
    let mut child = fork_child(|| link_then_wait(word, go.word()));
    wait_registered(word.word(), child.pid);
    let (tx, rx) = mpsc::channel();
    let tids = [sleeper(word, 0, tx.clone()), sleeper(word, 1, tx)];
    let addr = word.word().as_ptr() as usize;
    for &tid in &tids {
        wait_asleep(tid, word);
    }
    child.kill();
    let (first, woke) = rx.recv_timeout(WATCHDOG).expect("one sleeper woke");
    assert_eq!(woke.outcome, WaitOutcome::Woken);
    // The kernel woke exactly one (FUTEX_WAKE of 1): the other still sleeps.
    assert!(
        blocked_in(tids[1 - first], libc::SYS_futex, addr),
        "the other sleeper is still blocked on the word"
    );
    assert!(rx.try_recv().is_err());
    word.wake_all();
    let (second, woke) = rx.recv_timeout(WATCHDOG).expect("wake_all woke the other");
    assert_eq!((second, woke.outcome), (1 - first, WaitOutcome::Woken));
    assert_eq!(child.reap(), -libc::SIGKILL);
}

/// `struct futex_waitv` (`include/uapi/linux/futex.h`).
#[repr(C)]
struct FutexWaitv {
    val: u64,
    uaddr: u64,
    flags: u32,
    reserved: u32,
}

#[test]
fn a_futex_waitv_sleeper_is_woken_too() {
    let (word, go) = (exit_word(), control());
    let other = control(); // a second word nobody changes
    let mut child = fork_child(|| link_then_wait(word, go.word()));
    wait_registered(word.word(), child.pid);
    let seen = word.prepare_sleep().unwrap();
    // FUTEX2_SIZE_U32 (2), not FUTEX2_PRIVATE: the shared key.
    let waiters = [
        FutexWaitv {
            val: 0,
            uaddr: other.word().as_ptr() as u64,
            flags: 2,
            reserved: 0,
        },
        FutexWaitv {
            val: seen as u64,
            uaddr: word.word().as_ptr() as u64,
            flags: 2,
            reserved: 0,
        },
    ];
    let addr = waiters.as_ptr() as usize;
    let (tx, rx) = mpsc::channel();
    let (tid_tx, tid_rx) = mpsc::channel();
    std::thread::spawn(move || {
        tid_tx.send(crate::sys::task::gettid()).unwrap();
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid, writable timespec.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        ts.tv_sec += WATCHDOG.as_secs() as libc::time_t;
        // SAFETY:
        // - `addr` points to two valid futex_waitv records that outlive the
        //   call (the test waits for this thread's report before returning);
        // - `ts` is a valid absolute CLOCK_MONOTONIC deadline.
        let r = unsafe {
            libc::syscall(
                libc::SYS_futex_waitv,
                addr as *const FutexWaitv,
                2u32,
                0u32,
                &ts as *const libc::timespec,
                libc::CLOCK_MONOTONIC,
            )
        };
        let _ = tx.send(r);
    });
    let tid = tid_rx.recv_timeout(WATCHDOG).unwrap();
    wait_blocked(tid, libc::SYS_futex_waitv, addr, Instant::now() + WATCHDOG);
    child.kill();
    let r = rx
        .recv_timeout(WATCHDOG)
        .expect("the futex_waitv sleeper woke");
    assert_eq!(r, 1, "futex_waitv returns the index of the woken word");
    assert!(word.has_exited());
    assert_eq!(child.reap(), -libc::SIGKILL);
}

#[test]
fn exec_marks_the_word_while_the_child_lives() {
    let (word, go) = (exit_word(), control());
    let sleep = c"/bin/sleep";
    let argv = [sleep.as_ptr(), c"60".as_ptr(), std::ptr::null()];
    let mut child = fork_child(|| {
        let code = link_then_wait(word, go.word());
        if code != 0 {
            return code;
        }
        // SAFETY: `argv` is a null-terminated array of C strings that live
        // in this (copied) address space until the exec replaces it.
        unsafe { libc::execv(sleep.as_ptr(), argv.as_ptr()) };
        4 // exec failed
    });
    wait_registered(word.word(), child.pid);
    let seen = word.prepare_sleep().unwrap();
    // Release: the child's Acquire in `park_until_go`.
    go.word().store(1, Ordering::Release);
    futex::wake_all(go.word());
    let deadline = Instant::now() + WATCHDOG;
    while !word.has_exited() {
        assert!(
            Instant::now() < deadline,
            "watchdog: the exec never marked the word"
        );
        futex::wait(word.word(), seen, Some(deadline));
    }
    assert_eq!(
        proc::try_reap(child.pid).unwrap(),
        Reap::Running,
        "the word says dead, the process lives on in its new image"
    );
    child.kill();
    assert_eq!(
        child.reap(),
        -libc::SIGKILL,
        "killed in `sleep`, not a failed exec"
    );
}

#[test]
fn a_thread_without_a_list_gets_our_own_head() {
    let (word, go) = (exit_word(), control());
    let result = control();
    let mut child = fork_child(|| {
        // SAFETY: a null head with the right length unregisters the
        // thread's list (the kernel accepts it); nothing else runs here.
        if unsafe { libc::syscall(libc::SYS_set_robust_list, 0usize, HEAD_LEN) } != 0 {
            return 5;
        }
        // SAFETY: as in `link_then_wait`.
        match unsafe { link_word(word.word(), word.page()) } {
            Ok(linked) => result
                .word()
                .store(1 + linked.own_head as u32, Ordering::SeqCst),
            Err(_) => return 3,
        };
        futex::wake_all(word.word());
        park_until_go(go.word())
    });
    wait_registered(word.word(), child.pid);
    assert_eq!(
        result.word().load(Ordering::SeqCst),
        2,
        "linked into our own head"
    );
    child.kill();
    assert_eq!(child.reap(), -libc::SIGKILL);
    assert_eq!(word.word().load(Ordering::SeqCst), exit_word::OWNER_DIED);
}

#[test]
fn this_thread_has_a_glibc_head_with_its_offset() {
    let head = registered_head()
        .unwrap()
        .expect("glibc registers a list per thread");
    // SAFETY: the calling thread's head, live while it is.
    let off = unsafe { &*head }.futex_offset.load(Ordering::Relaxed);
    eprintln!("this thread's robust list: futex_offset {off}");
    if cfg!(all(target_env = "gnu", target_arch = "x86_64")) {
        // offsetof(__lock) - offsetof(__list.__next) in pthread_mutex_t.
        assert_eq!(off, -32);
    }
}

#[test]
fn entries_go_only_where_the_room_allows() {
    #[repr(align(64))]
    struct Aligned(AtomicU32);
    let aligned = Aligned(AtomicU32::new(0));
    let w = &aligned.0;
    let a = w.as_ptr() as usize;
    let room = a - 64..a + 64;
    assert_eq!(entry_for(w, -32, &room), Ok(a + 24));
    assert_eq!(entry_for(w, 40, &room), Ok(a - 48));
    assert!(entry_for(w, -8, &room).is_err(), "overlaps the word");
    assert!(entry_for(w, -28, &room).is_err(), "misaligned");
    assert!(entry_for(w, -64, &room).is_err(), "past the room");
    assert!(entry_for(w, isize::MIN, &room).is_err());
}

/// glibc's robust mutexes share the list with our entry: locking and
/// unlocking them around it keeps both working. The kernel marks the word
/// and the mutex still held at the death; the released ones stay free.
#[cfg(target_env = "gnu")]
#[test]
fn glibc_robust_mutexes_keep_working_around_our_entry() {
    let (word, go) = (exit_word(), control());
    // Three process-shared robust mutexes at the start of a shared page
    // (its word, in the middle, is not used), and a result word.
    let shared = control();
    let m = |i: usize| (shared.page().start + 64 * i) as *mut libc::pthread_mutex_t;
    for i in 0..3 {
        init_robust_mutex(m(i));
    }
    let result = shared.word();
    let mut child = fork_child(|| {
        // SAFETY: initialised mutexes in a mapped page; we are the child's
        // only thread.
        unsafe {
            // A locked before the link, B and C after; A and B unlocked
            // again (glibc unlinks them next to our entry); C held at death.
            if libc::pthread_mutex_lock(m(0)) != 0 {
                return 6;
            }
            if link_word(word.word(), word.page()).is_err() {
                return 3;
            }
            if libc::pthread_mutex_lock(m(1)) != 0
                || libc::pthread_mutex_unlock(m(0)) != 0
                || libc::pthread_mutex_lock(m(2)) != 0
                || libc::pthread_mutex_unlock(m(1)) != 0
            {
                return 7;
            }
        }
        // The list as the kernel will walk it: head -> C -> our entry -> head
        // (entries named by the address of their word).
        let Ok(Some(head)) = registered_head() else {
            return 8;
        };
        // SAFETY: this thread's head.
        let head = unsafe { &*head };
        let off = head.futex_offset.load(Ordering::Relaxed);
        let mut words = [0usize; 3];
        let mut n = 0;
        let mut e = head.list.load(Ordering::Relaxed) & !1;
        while e != head as *const Head as usize && n < words.len() {
            words[n] = e.wrapping_add_signed(off);
            // SAFETY: `e` is a live entry of this thread's list (a held
            // mutex or our entry in the mapped page); it points at `next`.
            e = unsafe { *(e as *const usize) } & !1;
            n += 1;
        }
        let expected = [m(2) as usize, word.word().as_ptr() as usize];
        result.store(1 + (words[..n] == expected) as u32, Ordering::SeqCst);
        futex::wake_all(word.word());
        park_until_go(go.word())
    });
    wait_registered(word.word(), child.pid);
    assert_eq!(
        result.load(Ordering::SeqCst),
        2,
        "the child's list is head -> C -> our entry -> head"
    );
    child.kill();
    assert_eq!(child.reap(), -libc::SIGKILL);
    assert_eq!(word.word().load(Ordering::SeqCst), exit_word::OWNER_DIED);
    // SAFETY: initialised process-shared mutexes in a mapped page.
    unsafe {
        assert_eq!(
            libc::pthread_mutex_lock(m(2)),
            libc::EOWNERDEAD,
            "C: its owner died"
        );
        assert_eq!(libc::pthread_mutex_consistent(m(2)), 0);
        assert_eq!(libc::pthread_mutex_unlock(m(2)), 0);
        for i in 0..2 {
            assert_eq!(libc::pthread_mutex_lock(m(i)), 0, "mutex {i} was released");
            assert_eq!(libc::pthread_mutex_unlock(m(i)), 0);
        }
    }
}

/// Initialises a process-shared robust mutex at `m`.
#[cfg(target_env = "gnu")]
fn init_robust_mutex(m: *mut libc::pthread_mutex_t) {
    let mut attr = std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::zeroed();
    // SAFETY: `attr` is storage for an attribute object, initialised first;
    // `m` points to 40 writable bytes of a mapped page, 8-aligned.
    unsafe {
        assert_eq!(libc::pthread_mutexattr_init(attr.as_mut_ptr()), 0);
        assert_eq!(
            libc::pthread_mutexattr_setrobust(attr.as_mut_ptr(), libc::PTHREAD_MUTEX_ROBUST),
            0
        );
        assert_eq!(
            libc::pthread_mutexattr_setpshared(attr.as_mut_ptr(), libc::PTHREAD_PROCESS_SHARED),
            0
        );
        assert_eq!(libc::pthread_mutex_init(m, attr.as_ptr()), 0);
        libc::pthread_mutexattr_destroy(attr.as_mut_ptr());
    }
}
