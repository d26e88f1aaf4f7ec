//! A child's exit word: a futex word in a page that the parent and the
//! child share, which the kernel marks, and on which it wakes a sleeper,
//! when the child's thread dies (by any means, `SIGKILL` included).
//!
//! The child writes its thread id into the word and links the word into
//! its thread's robust-futex list ([`robust_list`](super::robust_list));
//! the parent sleeps on the word (alone, or with other futex words in one
//! `futex_waitv`). The protocol, its state table and its crash cases are
//! in `docs/protocols/exit-word.md`.
//!
//! The word is a wake-up source, never the truth: a child that died before
//! registering leaves it unregistered, a child that execs marks it dead
//! while alive, a hostile child writes anything. Whether the child has
//! exited is always settled by its pidfd and `waitpid`.
//!
//! | word                        | meaning |
//! |-----------------------------|---------|
//! | `0`                         | unregistered: the child has not linked the word (yet, or ever) |
//! | `WAITERS`                   | unregistered, and a waiter sleeps (or is about to) |
//! | `tid`                       | registered: thread `tid` of the child lives |
//! | `WAITERS \| tid`            | registered, and a waiter sleeps |
//! | `OWNER_DIED`                | the thread died (or exec'd) with no waiter: nobody was woken |
//! | `OWNER_DIED \| WAITERS`     | the thread died (or exec'd); the kernel woke one waiter |

use std::ops::Range;
use std::os::fd::{OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};

use memmap2::MmapRaw;

use super::robust_list::{self, LinkError, Linked};
use super::robust_list::{FUTEX_OWNER_DIED, FUTEX_TID_MASK, FUTEX_WAITERS};
use super::{futex, shm};
use crate::error::{Error, Result};

/// Bytes of the shared page: one page, the smallest mapping there is.
pub(crate) const PAGE_LEN: usize = 4096;
/// Where the word sits in the page: the middle, so that the robust-list
/// entry (at `word - futex_offset`, 16 bytes, where the child's C library
/// wants it: glibc on x86-64 puts it 32 bytes after) fits on either side.
const WORD_AT: usize = PAGE_LEN / 2;
const _: () = assert!(WORD_AT % 4 == 0 && WORD_AT + 4 <= PAGE_LEN);

/// Someone may sleep on the word: the kernel wakes one sleeper at the death.
pub(crate) const WAITERS: u32 = FUTEX_WAITERS;
/// The thread the word named has died (or exec'd).
pub(crate) const OWNER_DIED: u32 = FUTEX_OWNER_DIED;
/// The registered thread id (0: unregistered, or dead).
pub(crate) const TID_MASK: u32 = FUTEX_TID_MASK;

/// Whether the word says the child's thread died.
#[inline]
pub(crate) fn is_dead(word: u32) -> bool {
    word & OWNER_DIED != 0
}

/// Whether a waiter has announced itself (the kernel will wake one).
#[inline]
pub(crate) fn has_waiters(word: u32) -> bool {
    word & WAITERS != 0
}

/// The thread id the word names; 0 while unregistered and after the death.
#[allow(
    dead_code,
    reason = "the waiter side: `wait()` and the async reactor sleep on it"
)]
#[inline]
pub(crate) fn owner(word: u32) -> u32 {
    word & TID_MASK
}

/// How many times [`ExitWord::prepare_sleep`] retries its CAS before it
/// gives up on a word that keeps changing (only a hostile child makes it
/// change more than twice: register, die).
const CAS_TRIES: u32 = 4;

/// Most pages of reaped children a process keeps for its next forks
/// (`docs/protocols/exit-word.md`, "Reuse for forks").
const SPARE_MAX: usize = 16;

/// Pages of reaped children, for the next forked children, and the process
/// they belong to: a forked child inherits the list as shared mappings of
/// its parent's pages, which it must never hand out.
struct Spare {
    pid: u32,
    pages: Vec<ExitWord>,
}

/// Taken with `try_lock` only: a child forked while another thread held it
/// gets a locked copy, and must not wait on it.
static SPARE: std::sync::Mutex<Spare> = std::sync::Mutex::new(Spare {
    pid: 0,
    pages: Vec::new(),
});

/// The spare list if it is free and belongs to this process, `me` (an
/// inherited one is emptied first: the mappings copied at the fork are
/// unmapped).
fn spare_list(me: u32) -> Option<std::sync::MutexGuard<'static, Spare>> {
    let mut s = SPARE.try_lock().ok()?;
    if s.pid != me {
        s.pages.clear();
        s.pid = me;
    }
    Some(s)
}

/// One child's exit word: the mapped page and the word in it.
pub(crate) struct ExitWord {
    map: MmapRaw,
}

impl std::fmt::Debug for ExitWord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ExitWord({:#x})", self.word().load(Ordering::Relaxed))
    }
}

impl ExitWord {
    /// Parent side, before launching: a new page (a sealed memfd, mapped
    /// shared) with the word 0, and its descriptor (close-on-exec) for a
    /// re-executed child to inherit. A forked child needs only the mapping.
    ///
    /// # Errors
    /// OS errors from `memfd_create`, sealing or `mmap`.
    pub(crate) fn create() -> Result<(ExitWord, OwnedFd)> {
        let fd = shm::create_anonymous("exit", PAGE_LEN as u64)?;
        let map = shm::map(&fd, PAGE_LEN as u64)?;
        Ok((ExitWord { map }, fd))
    }

    /// Parent side, before a fork: the page of a reaped child if this
    /// process kept one, else a new page (its descriptor is closed at once:
    /// the forked child inherits the mapping).
    ///
    /// # Errors
    /// As [`create`](Self::create).
    pub(crate) fn for_fork() -> Result<ExitWord> {
        if let Some(w) = spare_list(super::task::pid()).and_then(|mut s| s.pages.pop()) {
            return Ok(w);
        }
        Ok(Self::create()?.0)
    }

    /// Parent side: this process, `me`, launched the word's child and
    /// reaped it, so nothing will mark or wait on the word again; the page
    /// is kept for a later fork with the word back at `0` (unmapped if the
    /// list is full or busy).
    pub(crate) fn recycle(self, me: u32) {
        // Relaxed: the next child gets the page only through `fork`, a
        // syscall after this store in program order.
        self.word().store(0, Ordering::Relaxed);
        if let Some(mut s) = spare_list(me) {
            if s.pages.len() < SPARE_MAX {
                s.pages.push(self);
            }
        }
    }

    /// Child side (re-executed): maps the page the parent sent as inherited
    /// descriptor `raw`, and closes the descriptor (the mapping keeps the
    /// page).
    ///
    /// # Errors
    /// `raw` is not open, is not a sealed memfd of [`PAGE_LEN`] bytes, or
    /// cannot be mapped.
    pub(crate) fn adopt(raw: RawFd) -> Result<ExitWord> {
        let fd = shm::adopt_fd(raw)?;
        let len = shm::file_len(&fd)?;
        if !shm::is_sealed(&fd) || len != PAGE_LEN as u64 {
            return Err(Error::invalid(
                "exit word descriptor",
                format!("a sealed memfd of {PAGE_LEN} bytes"),
                format!(
                    "descriptor {raw}: {len} bytes, {}sealed",
                    if shm::is_sealed(&fd) { "" } else { "not " }
                ),
            ));
        }
        let map = shm::map(&fd, PAGE_LEN as u64)?;
        Ok(ExitWord { map })
    }

    /// Child side: names the calling thread in the word and links the word
    /// into the thread's robust list, so that the kernel marks it when the
    /// thread dies. The page stays mapped for the rest of the process's life
    /// (the kernel reads the entry in it at the very end), also when the
    /// link fails. Async-signal-safe: a forked child may call it.
    ///
    /// # Errors
    /// [`LinkError`]: the word is not linked; the parent learns of the exit
    /// at its slice ends, from the pidfd.
    pub(crate) fn arm(self) -> std::result::Result<Linked, LinkError> {
        // Never unmapped, whatever the outcome: the kernel reads the entry
        // when the thread dies. (No allocation: a forked child may be here.)
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY:
        // - the word and the whole page (`room`) stay mapped for the rest of
        //   the process's life: the mapping is never dropped (ManuallyDrop);
        // - the page holds nothing but the word: the rest is the entry's;
        // - the callers (the child's `init()`, the forked child's start) run
        //   on the thread that runs the entry, before any user code, not in
        //   a signal handler.
        unsafe { robust_list::link_word(this.word(), this.page()) }
    }

    /// The addresses of the page in this process.
    pub(crate) fn page(&self) -> Range<usize> {
        let base = self.map.as_mut_ptr() as usize;
        base..base + PAGE_LEN
    }

    /// The futex word (shared memory; the kernel writes it at the death).
    #[inline]
    pub(crate) fn word(&self) -> &AtomicU32 {
        // SAFETY:
        // - the mapping is PAGE_LEN bytes and lives as long as `self`;
        //   WORD_AT + 4 <= PAGE_LEN and WORD_AT is 4-aligned (pages are);
        // - every bit pattern is a valid AtomicU32, and the other processes
        //   and the kernel change the word only with atomic operations.
        unsafe { &*(self.map.as_mut_ptr().add(WORD_AT) as *const AtomicU32) }
    }
}

impl ExitWord {
    /// Whether the word says the child died (false while unregistered). A
    /// hint: an exec marks it too, and a hostile child writes anything.
    #[inline]
    pub(crate) fn has_exited(&self) -> bool {
        // Relaxed: the word publishes no data; the exit status comes from
        // waitpid, a syscall.
        is_dead(self.word().load(Ordering::Relaxed))
    }

    /// Before sleeping on the word: `None` if it already says dead; else
    /// sets `WAITERS` (so that the kernel's death-time wake-up comes) and
    /// returns the exact value to futex-wait on. Sleep in bounded slices:
    /// a child that dies before registering never changes the word.
    pub(crate) fn prepare_sleep(&self) -> Option<u32> {
        let word = self.word();
        // SeqCst (load and CAS): one total order with the child's
        // registration RMW; the kernel's cmpxchg at the death is a full
        // barrier. Either our CAS comes first (the kernel sees WAITERS and
        // wakes) or it fails and we see the death.
        let mut seen = word.load(Ordering::SeqCst);
        for _ in 0..CAS_TRIES {
            if is_dead(seen) {
                return None;
            }
            if has_waiters(seen) {
                return Some(seen);
            }
            match word.compare_exchange(seen, seen | WAITERS, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return Some(seen | WAITERS),
                Err(now) => seen = now,
            }
        }
        // A word that keeps changing: a futex wait on this value returns at
        // once if it changed again, and the caller re-checks.
        (!is_dead(seen)).then_some(seen)
    }

    /// After seeing the death: wakes every other sleeper (the kernel wakes
    /// only one). No syscall if nobody announced a sleep.
    pub(crate) fn wake_all(&self) {
        // Relaxed: WAITERS, once set, stays set; a sleeper that sets it
        // after this load saw the death in `prepare_sleep` and does not sleep.
        if has_waiters(self.word().load(Ordering::Relaxed)) {
            futex::wake_all(self.word());
        }
    }
}

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predicates_follow_the_table() {
        assert!(!is_dead(0) && !has_waiters(0) && owner(0) == 0);
        assert!(!is_dead(WAITERS) && has_waiters(WAITERS));
        assert_eq!(owner(WAITERS | 1234), 1234);
        assert!(is_dead(OWNER_DIED) && owner(OWNER_DIED) == 0);
        assert!(is_dead(OWNER_DIED | WAITERS) && has_waiters(OWNER_DIED | WAITERS));
    }

    #[test]
    fn prepare_sleep_sets_waiters_once() {
        let (w, _fd) = ExitWord::create().unwrap();
        assert_eq!(w.word().load(Ordering::Relaxed), 0);
        assert_eq!(w.prepare_sleep(), Some(WAITERS));
        assert_eq!(w.prepare_sleep(), Some(WAITERS), "already announced");
        w.word().store(WAITERS | 77, Ordering::Relaxed);
        assert_eq!(w.prepare_sleep(), Some(WAITERS | 77));
        w.word().store(77, Ordering::Relaxed);
        assert_eq!(w.prepare_sleep(), Some(WAITERS | 77));
        assert!(!w.has_exited());
        w.word().store(OWNER_DIED, Ordering::Relaxed);
        assert!(w.has_exited());
        assert_eq!(w.prepare_sleep(), None);
        assert_eq!(
            w.word().load(Ordering::Relaxed),
            OWNER_DIED,
            "a dead word is left alone"
        );
    }

    #[test]
    fn adopt_checks_the_descriptor() {
        use std::os::fd::IntoRawFd;
        let (w, fd) = ExitWord::create().unwrap();
        w.word().store(5, Ordering::Relaxed);
        let other = ExitWord::adopt(fd.into_raw_fd()).unwrap();
        assert_eq!(other.word().load(Ordering::Relaxed), 5, "the same page");
        let wrong = shm::create_anonymous("exit-test", 8192).unwrap();
        let e = ExitWord::adopt(wrong.into_raw_fd())
            .unwrap_err()
            .to_string();
        assert!(e.contains("8192 bytes"), "{e}");
        assert!(ExitWord::adopt(100_000).is_err(), "a closed descriptor");
    }
}
