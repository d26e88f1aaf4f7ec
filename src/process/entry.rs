//! Finding a child's entry point in a re-executed binary.
//!
//! A function pointer means nothing in another process, but an *offset*
//! between two functions of the same binary does: address-space layout
//! randomisation moves the whole image, not the functions inside it. So the
//! parent monomorphizes [`trampoline`] for the entry's types, sends its
//! address minus the address of `sys::code::anchor`, and the child adds its own
//! `anchor` back (the approach of the `procspawn` crate).
//!
//! Guards, because calling a wrong address would be undefined behaviour:
//! the parent's and the child's executables must be the same file
//! (device and inode of `/proc/self/exe`, checked before the call), and the
//! trampoline first compares a hash of its own type names with the one the
//! parent sent. Only zero-sized entries (fn items, non-capturing closures)
//! can be rebuilt in the child, which the launcher checks.

use std::fmt;
use std::os::fd::OwnedFd;

use serde::de::DeserializeOwned;

use crate::segment::header::fnv1a;
use crate::segment::transfer;
// The offset mechanism is shared with the pool's runners and barrier actions.
pub(crate) use crate::sys::code::{code_addr, code_offset, conjure};

/// Exit status of a child whose entry panicked (Rust's own status for a
/// panicking `main`).
pub(crate) const EXIT_PANIC: i32 = 101;
/// Exit status of a child whose entry returned an `Err`.
pub(crate) const EXIT_ERROR: i32 = 1;
/// Exit status of a child that could not start its entry (arguments that do
/// not decode, a mismatched entry, an unreadable launch record).
pub(crate) const EXIT_LAUNCH: i32 = 2;

/// What an entry point may return: `()` (exit status 0) or a
/// `Result<(), E>` (0, or 1 after printing the error like a failing `main`).
///
/// # Examples
/// ```
/// use shmproc::EntryReturn;
/// assert_eq!(().exit_code(), 0);
/// assert_eq!(Err::<(), _>("bad").exit_code(), 1);
/// ```
pub trait EntryReturn {
    /// The child's exit status for this value.
    fn exit_code(self) -> i32;

    /// `Ok(())`, or the error as text (used for a pool's initializer, whose
    /// failure is reported to the parent rather than printed).
    fn into_outcome(self) -> Result<(), String>;
}

impl EntryReturn for () {
    fn exit_code(self) -> i32 {
        0
    }

    fn into_outcome(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: fmt::Debug> EntryReturn for Result<(), E> {
    fn exit_code(self) -> i32 {
        match self {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("Error: {e:?}");
                EXIT_ERROR
            }
        }
    }

    fn into_outcome(self) -> Result<(), String> {
        self.map_err(|e| format!("{e:?}"))
    }
}

/// The monomorphized entry the child calls: `(expected hash, argument bytes,
/// inherited descriptors) -> exit status`.
pub(crate) type Trampoline = fn(u64, &[u8], Vec<OwnedFd>) -> i32;

/// The hash of an entry's types that the parent sends and the trampoline checks.
pub(crate) fn entry_hash<F, A, R>() -> u64 {
    let names = [
        std::any::type_name::<F>(),
        std::any::type_name::<A>(),
        std::any::type_name::<R>(),
    ];
    let mut h = fnv1a(names.join("|").as_bytes());
    h ^= (std::mem::size_of::<A>() as u64).rotate_left(32);
    h
}

/// The offset of `trampoline::<F, A, R>` from `sys::code::anchor`, to send to a child.
pub(crate) fn entry_offset<F, A, R>() -> u64
where
    F: FnOnce(A) -> R,
    A: DeserializeOwned,
    R: EntryReturn,
{
    let t: Trampoline = trampoline::<F, A, R>;
    code_offset(t as usize)
}

/// Rebuilds the trampoline from an offset received from the parent.
///
/// # Safety
/// - `offset` was computed by [`entry_offset`] in a process running the very
///   same executable file (the caller has compared `/proc/self/exe`'s device
///   and inode), and the executable is statically linked with shmproc, so the
///   offset names a `trampoline` instance in this image.
pub(crate) unsafe fn trampoline_at(offset: u64) -> Trampoline {
    let addr = code_addr(offset);
    // SAFETY: by the caller's guarantee `addr` is the address of a function
    // with the `Trampoline` signature in this image; fn pointers and usize
    // have the same size on every Linux target.
    unsafe { std::mem::transmute::<usize, Trampoline>(addr) }
}

/// Decodes the arguments (inside an import scope, so anonymous handles claim
/// their inherited descriptors), rebuilds the zero-sized entry and runs it.
fn trampoline<F, A, R>(expected: u64, bytes: &[u8], fds: Vec<OwnedFd>) -> i32
where
    F: FnOnce(A) -> R,
    A: DeserializeOwned,
    R: EntryReturn,
{
    if expected != entry_hash::<F, A, R>() || std::mem::size_of::<F>() != 0 {
        eprintln!(
            "shmproc: launch failed: expected the entry the parent sent (hash {expected:#x}), \
             found {} (hash {:#x})",
            std::any::type_name::<F>(),
            entry_hash::<F, A, R>()
        );
        return EXIT_LAUNCH;
    }
    let context = std::any::type_name::<A>();
    let args: A = match transfer::import_scope(fds, || transfer::decode(bytes, context)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!(
                "shmproc: launch failed: expected arguments of type {}, found bytes that do \
                 not decode: {e}",
                std::any::type_name::<A>()
            );
            return EXIT_LAUNCH;
        }
    };
    let Some(f) = conjure::<F>() else {
        return EXIT_LAUNCH; // not zero-sized: refused above already
    };
    f(args).exit_code()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(x: u32) -> Result<(), String> {
        if x == 7 {
            Ok(())
        } else {
            Err(format!("not seven: {x}"))
        }
    }

    #[test]
    fn offset_roundtrip_calls_the_entry() {
        fn item_offset<F: FnOnce(u32) -> Result<(), String>>(_: &F) -> (u64, u64) {
            (
                entry_offset::<F, u32, Result<(), String>>(),
                entry_hash::<F, u32, Result<(), String>>(),
            )
        }
        let (off, hash) = item_offset(&entry);
        // SAFETY: the offset was computed in this very process.
        let t = unsafe { trampoline_at(off) };
        let seven = postcard::to_stdvec(&7u32).unwrap();
        assert_eq!(t(hash, &seven, Vec::new()), 0);
        let eight = postcard::to_stdvec(&8u32).unwrap();
        assert_eq!(t(hash, &eight, Vec::new()), EXIT_ERROR);
        assert_eq!(t(hash ^ 1, &seven, Vec::new()), EXIT_LAUNCH);
        assert_eq!(t(hash, &[], Vec::new()), EXIT_LAUNCH);
    }
}
