//! Naming a function across processes that run the same executable: its
//! offset from a fixed function of this crate, and the executable's
//! identity (used by the launcher's entry points, the pool's task runners
//! and barrier actions).
//!
//! A function pointer means nothing in another process, but an *offset*
//! between two functions of the same binary does: address-space layout
//! randomisation moves the whole image, not the functions inside it. So one
//! process sends `f`'s address minus [`anchor`]'s, and the other adds its own
//! `anchor` back (the approach of the `procspawn` crate). Both must run the
//! same executable file ([`exe_identity`]), and callers check a hash of the
//! function's types before calling what they rebuilt.

use std::os::unix::fs::MetadataExt;

use crate::error::{Error, Result};

/// A fixed function of this crate that code offsets are measured from.
#[inline(never)]
pub(crate) fn anchor() -> u64 {
    // A distinct body so no optimisation folds it into another function.
    0x5348_4d50_524f_4341
}

/// The offset of a function at `addr` from [`anchor`]: meaningful in any
/// process running the same executable image.
pub(crate) fn code_offset(addr: usize) -> u64 {
    addr.wrapping_sub(anchor as fn() -> u64 as usize) as u64
}

/// The address in this process of the function at `offset` from [`anchor`].
/// Only an address: calling it is the caller's `unsafe` business.
pub(crate) fn code_addr(offset: u64) -> usize {
    (anchor as fn() -> u64 as usize).wrapping_add(offset as usize)
}

/// Rebuilds a zero-sized function value (fn item or non-capturing closure)
/// out of nothing; `None` if `F` is not zero-sized.
pub(crate) fn conjure<F>() -> Option<F> {
    if std::mem::size_of::<F>() != 0 {
        return None;
    }
    // SAFETY: F is zero-sized (checked above), so it has no bytes to be
    // invalid; callers only pass fn items or non-capturing closures (they
    // check it before sending one), whose value carries no state or invariant.
    Some(unsafe { std::mem::zeroed() })
}

/// Device and inode of the running executable.
///
/// # Errors
/// The OS error from `stat("/proc/self/exe")`.
pub(crate) fn exe_identity() -> Result<(u64, u64)> {
    let m =
        std::fs::metadata("/proc/self/exe").map_err(|e| Error::os("stat of /proc/self/exe", e))?;
    Ok((m.dev(), m.ino()))
}
