//! Linking one futex word into the calling thread's robust-futex list, so
//! that the kernel marks the word, and wakes a sleeper on it, when the
//! thread dies: by return, `exit`, a crash or `SIGKILL` (and when it execs).
//!
//! Linux keeps one pointer per thread to a list in user memory
//! (`set_robust_list(2)`). On every exit and exec the kernel walks it
//! (`exit_robust_list` in `kernel/futex/core.c`) and, for every entry whose
//! word (`entry + head.futex_offset`) holds the dying thread's id, sets
//! `FUTEX_OWNER_DIED`, keeps `FUTEX_WAITERS`, clears the id, and wakes one
//! *shared* waiter if `FUTEX_WAITERS` was set (`handle_futex_death`).
//!
//! A thread has one list, and glibc registers one per thread for its robust
//! mutexes. So we insert our entry at the head of that list, exactly as
//! glibc's own `ENQUEUE_MUTEX` does: the list is doubly linked, an entry is
//! a `{prev, next}` pair, and the list points at `next` (musl's layout is the
//! same). Where no list is registered we register one of our own.
//! `docs/protocols/exit-word.md` has the states and the crash cases.

use std::fmt;
use std::mem::size_of;
use std::ops::Range;
use std::sync::atomic::{compiler_fence, AtomicIsize, AtomicU32, AtomicUsize, Ordering};

/// `FUTEX_WAITERS` (`include/uapi/linux/futex.h`): someone may sleep on the word.
pub(crate) const FUTEX_WAITERS: u32 = 0x8000_0000;
/// `FUTEX_OWNER_DIED`: the kernel found the owner dead.
pub(crate) const FUTEX_OWNER_DIED: u32 = 0x4000_0000;
/// `FUTEX_TID_MASK`: the owner's thread id.
pub(crate) const FUTEX_TID_MASK: u32 = 0x3fff_ffff;

/// The kernel's `struct robust_list_head`.
#[repr(C)]
struct Head {
    /// The first entry (the address of its `next` field, bit 0 = PI), or
    /// the head itself when the list is empty.
    list: AtomicUsize,
    /// Where an entry's futex word is, relative to the entry.
    futex_offset: AtomicIsize,
    /// An entry being added or removed (glibc's business, never ours).
    list_op_pending: AtomicUsize,
}

const HEAD_LEN: usize = size_of::<Head>();
const _: () = assert!(HEAD_LEN == 3 * size_of::<usize>());

/// Where an entry's word sits under our own head: the entry (`prev`, then
/// `next`) right after the word, at `word + 8`; the list points at `next`.
const OWN_FUTEX_OFFSET: isize = -16;

/// Our own head, for a thread that has none registered.
static OWN: Head = Head {
    list: AtomicUsize::new(0),
    futex_offset: AtomicIsize::new(OWN_FUTEX_OFFSET),
    list_op_pending: AtomicUsize::new(0),
};
/// The process that registered [`OWN`] (a forked copy must register afresh:
/// the kernel forgets every robust list at `fork`).
static OWN_PID: AtomicU32 = AtomicU32::new(0);

/// How a word was linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Linked {
    /// The list's `futex_offset` (glibc x86-64: -32; ours: -16).
    pub futex_offset: isize,
    /// Whether the list is ours (no head was registered) or the C library's.
    pub own_head: bool,
}

/// Why a word could not be linked. Carries no allocation: a forked child
/// of a threaded parent may hit it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkError {
    /// `get_robust_list` or `set_robust_list` failed with this errno.
    Syscall(&'static str, i32),
    /// The registered head has another size than `struct robust_list_head`.
    HeadSize(usize),
    /// The registered list belongs to a C library whose entry layout we do
    /// not know (only glibc's and musl's are).
    UnknownLibc,
    /// The entry (`word - futex_offset`, 16 bytes) would fall outside the
    /// room the caller reserved, overlap the word, or be misaligned.
    Misplaced(isize),
    /// Another thread of this process uses our own head.
    OwnHeadTaken,
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LinkError::Syscall(call, errno) => write!(
                f,
                "{call} failed: {}",
                std::io::Error::from_raw_os_error(errno)
            ),
            LinkError::HeadSize(n) => write!(
                f,
                "expected a robust list head of {HEAD_LEN} bytes, found one of {n}"
            ),
            LinkError::UnknownLibc => f.write_str(
                "expected glibc's or musl's robust list, found one of an unknown C library",
            ),
            LinkError::Misplaced(off) => write!(
                f,
                "expected a futex offset that puts the entry in the reserved room, \
                 aligned and clear of the word, found {off}"
            ),
            LinkError::OwnHeadTaken => f.write_str(
                "expected our robust list head to be free, found it registered by another thread",
            ),
        }
    }
}

/// The robust list head registered for the calling thread, if any.
fn registered_head() -> Result<Option<*const Head>, LinkError> {
    let mut head: usize = 0;
    let mut len: usize = 0;
    // SAFETY:
    // - pid 0 names the calling thread, whose list we may always read;
    // - `head` and `len` are valid, writable, word-sized locals.
    let r = unsafe {
        libc::syscall(
            libc::SYS_get_robust_list,
            0 as libc::c_long,
            &mut head as *mut usize,
            &mut len as *mut usize,
        )
    };
    if r != 0 {
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        return Err(LinkError::Syscall("get_robust_list", errno));
    }
    if head == 0 {
        return Ok(None);
    }
    if len != HEAD_LEN {
        return Err(LinkError::HeadSize(len));
    }
    Ok(Some(head as *const Head))
}

/// Claims our own head for the calling thread, reset to an empty list; not
/// registered yet.
fn claim_own_head() -> Result<&'static Head, LinkError> {
    let me = crate::sys::task::pid();
    // Relaxed: the head is only ever used by the thread that claims it.
    if OWN_PID.swap(me, Ordering::Relaxed) == me {
        return Err(LinkError::OwnHeadTaken);
    }
    // An empty list points at its head.
    OWN.list
        .store(&OWN as *const Head as usize, Ordering::Relaxed);
    OWN.list_op_pending.store(0, Ordering::Relaxed);
    Ok(&OWN)
}

/// Writes the calling thread's id into `word` (keeping `FUTEX_WAITERS`) and
/// links the word into the thread's robust list, at its head. The entry
/// (16 bytes) goes at `word - futex_offset`, which must lie in `room`.
/// There is no unlink: the entry stays until the thread dies or execs.
///
/// Async-signal-safe (no allocation, no lock): a forked child may call it.
///
/// # Errors
/// [`LinkError`]: nothing was linked (the word may name the thread).
///
/// # Safety
/// - `word` and all of `room` stay mapped, readable and writable, for the
///   rest of the calling thread's life (until it exits or execs): the
///   kernel reads the entry and writes the word then;
/// - nothing else in this process uses the bytes of `room` other than the
///   word (the entry is written there);
/// - no robust pthread mutex operation of the calling thread is under way
///   (do not call from a signal handler): the C library updates the list
///   without a lock, as only its own thread touches it.
pub(crate) unsafe fn link_word(word: &AtomicU32, room: Range<usize>) -> Result<Linked, LinkError> {
    let registered = registered_head()?;
    if registered.is_some() && !cfg!(any(target_env = "gnu", target_env = "musl")) {
        return Err(LinkError::UnknownLibc);
    }
    let futex_offset = match registered {
        // SAFETY: a registered head is the calling thread's (glibc's or
        // musl's thread descriptor, live while the thread is). Relaxed:
        // only this thread touches its head.
        Some(head) => unsafe { &*head }.futex_offset.load(Ordering::Relaxed),
        None => OWN_FUTEX_OFFSET,
    };
    let entry = entry_for(word, futex_offset, &room)?;
    let head: &Head = match registered {
        // SAFETY: as above.
        Some(head) => unsafe { &*head },
        None => claim_own_head()?,
    };
    // 1. The word names this thread, keeping a waiter's FUTEX_WAITERS bit;
    //    before the entry is reachable, so the kernel never finds the entry
    //    without our id (it would leave the word alone).
    let tid = crate::sys::task::gettid() & FUTEX_TID_MASK;
    // SeqCst: one total order with the parent's CAS that sets FUTEX_WAITERS.
    let _ = word.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
        Some((v & FUTEX_WAITERS) | tid)
    });
    // SAFETY: `entry` is 8-aligned and its 16 bytes lie in `room`
    // (`entry_for` checked), which the caller reserves for it and keeps
    // mapped for the thread's life.
    let node = unsafe { &*(entry as *const [AtomicUsize; 2]) };
    let head_addr = head as *const Head as usize;
    // 2. Enqueue at the head, as glibc's ENQUEUE_MUTEX_BOTH: our `prev` is
    //    the head, our `next` the old first entry (its PI bit kept), and the
    //    old first entry's `prev` (the word before its `next`) is us.
    //    Relaxed: only this thread and, when it dies, the kernel in this
    //    thread's context read the list, after all of these stores.
    let first = head.list.load(Ordering::Relaxed);
    node[0].store(head_addr, Ordering::Relaxed);
    node[1].store(first, Ordering::Relaxed);
    let first_next = first & !1;
    if first_next != head_addr {
        // SAFETY: the first entry of a non-empty list is a robust mutex
        // this thread holds (glibc's or musl's), live while held; its
        // `prev` field is the word before its `next`, and the C library
        // writes it there too when it enqueues a mutex.
        let prev = unsafe { &*((first_next - size_of::<usize>()) as *const AtomicUsize) };
        prev.store(entry + size_of::<usize>(), Ordering::Relaxed);
    }
    // The entry is complete before the head points at it: a signal may end
    // the thread between any two instructions.
    compiler_fence(Ordering::SeqCst);
    head.list
        .store(entry + size_of::<usize>(), Ordering::Relaxed);
    if registered.is_none() {
        register(head)?;
    }
    Ok(Linked {
        futex_offset,
        own_head: registered.is_none(),
    })
}

/// The address of the entry (its `prev` field) for `word` under
/// `futex_offset`: 8-aligned, inside `room`, clear of the word.
fn entry_for(
    word: &AtomicU32,
    futex_offset: isize,
    room: &Range<usize>,
) -> Result<usize, LinkError> {
    let w = word.as_ptr() as usize;
    let misplaced = LinkError::Misplaced(futex_offset);
    // The list points at `next`, one word after the entry's start.
    let next = futex_offset
        .checked_neg()
        .and_then(|d| w.checked_add_signed(d))
        .ok_or(misplaced)?;
    let entry = next.checked_sub(size_of::<usize>()).ok_or(misplaced)?;
    let end = entry.checked_add(2 * size_of::<usize>()).ok_or(misplaced)?;
    let clear_of_word = end <= w || entry >= w + size_of::<u32>();
    if entry % align_of::<usize>() != 0 || entry < room.start || end > room.end || !clear_of_word {
        return Err(misplaced);
    }
    Ok(entry)
}

/// Registers our own head for the calling thread.
fn register(head: &Head) -> Result<(), LinkError> {
    // SAFETY:
    // - `head` is our static head: valid for the whole process life;
    // - the length is exactly that of `struct robust_list_head`.
    let r = unsafe { libc::syscall(libc::SYS_set_robust_list, head as *const Head, HEAD_LEN) };
    if r != 0 {
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        return Err(LinkError::Syscall("set_robust_list", errno));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
