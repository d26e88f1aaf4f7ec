//! Carrying segment handles across a process launch.
//!
//! A handle serializes to a [`Wire`] reference. A named segment travels as its
//! name and can be opened anywhere. An anonymous segment (a memfd) can only
//! travel with its file descriptor, so it serializes only inside an
//! [`export_scope`] — the launcher opens one around serializing a child's
//! arguments and hands the collected descriptors to the child, which
//! deserializes inside an [`import_scope`]. Anywhere else an anonymous handle
//! fails to serialize with a clear error instead of becoming a reference that
//! silently points nowhere.

use std::cell::RefCell;
use std::os::fd::OwnedFd;

use serde::{Deserialize, Serialize};

/// How a segment handle is written in serialized arguments.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) enum Wire {
    /// A named segment: open it by name.
    Named(String),
    /// An anonymous segment: slot `n` of the descriptors the launcher passed.
    Inherited(u32),
}

thread_local! {
    static HANDLE_ERROR: RefCell<Option<crate::Error>> = const { RefCell::new(None) };
    static EXPORT: RefCell<Option<Vec<OwnedFd>>> = const { RefCell::new(None) };
    static IMPORT: RefCell<Option<Vec<Option<OwnedFd>>>> = const { RefCell::new(None) };
}

/// Runs `f` (which serializes handles) collecting the descriptors of the
/// anonymous segments it serializes; returns `f`'s result and those
/// descriptors, in slot order.
pub(crate) fn export_scope<R>(f: impl FnOnce() -> R) -> (R, Vec<OwnedFd>) {
    let outer = EXPORT.with(|e| e.borrow_mut().replace(Vec::new()));
    let r = f();
    let fds = EXPORT.with(|e| std::mem::replace(&mut *e.borrow_mut(), outer));
    (r, fds.unwrap_or_default())
}

/// Registers `fd` for export; `None` when no export scope is open.
pub(crate) fn export_fd(fd: OwnedFd) -> Option<u32> {
    EXPORT.with(|e| {
        let mut e = e.borrow_mut();
        let fds = e.as_mut()?;
        fds.push(fd);
        Some((fds.len() - 1) as u32)
    })
}

/// Runs `f` (which deserializes handles) with `fds` as the inherited slots.
/// Descriptors no handle claimed are closed when the scope ends.
pub(crate) fn import_scope<R>(fds: Vec<OwnedFd>, f: impl FnOnce() -> R) -> R {
    let slots = fds.into_iter().map(Some).collect();
    let outer = IMPORT.with(|i| i.borrow_mut().replace(slots));
    let r = f();
    IMPORT.with(|i| *i.borrow_mut() = outer);
    r
}

/// Claims inherited slot `n`. Each slot is claimed once; a second claim of the
/// same slot gets a duplicate of the descriptor.
pub(crate) fn import_fd(n: u32) -> Result<OwnedFd, String> {
    IMPORT.with(|i| {
        let mut i = i.borrow_mut();
        let Some(slots) = i.as_mut() else {
            return Err(format!(
                "an inherited anonymous segment (slot {n}) can only be received by a process \
                 launched with shmproc, while it reads its arguments"
            ));
        };
        let count = slots.len();
        match slots.get_mut(n as usize) {
            Some(slot) => match slot.take() {
                Some(fd) => {
                    let copy = fd.try_clone().map_err(|e| e.to_string())?;
                    *slot = Some(fd);
                    Ok(copy)
                }
                None => Err(format!("inherited segment slot {n} is empty")),
            },
            None => Err(format!(
                "inherited segment slot {n} does not exist: expected a slot below {count}"
            )),
        }
    })
}

/// Remembers why a handle failed to (de)serialize. Codecs such as postcard
/// replace a serde custom error by a generic one, so a codec that sees a failure
/// calls [`take_handle_error`] to report the real reason.
pub(crate) fn note_handle_error(e: crate::Error) {
    HANDLE_ERROR.with(|h| *h.borrow_mut() = Some(e));
}

/// Takes the reason the last handle (de)serialization on this thread failed.
pub(crate) fn take_handle_error() -> Option<crate::Error> {
    HANDLE_ERROR.with(|h| h.borrow_mut().take())
}

/// Clears a stale reason before a codec call, so that a later failure that is not
/// about a handle is not blamed on an old one.
pub(crate) fn clear_handle_error() {
    HANDLE_ERROR.with(|h| *h.borrow_mut() = None);
}

/// Why `value` fails to encode, if a handle inside it cannot travel: encodes
/// it again with the reason cleared first. For codecs' error paths, so that
/// the common path pays nothing for a failure that seldom happens.
#[cold]
pub(crate) fn why_encode_fails<T: serde::Serialize + ?Sized>(value: &T) -> Option<crate::Error> {
    clear_handle_error();
    postcard::to_stdvec(value).err()?;
    take_handle_error()
}

/// Why `bytes` fail to decode as a `T`, if a handle inside cannot be
/// opened here (see [`why_encode_fails`]).
#[cold]
pub(crate) fn why_decode_fails<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
) -> Option<crate::Error> {
    clear_handle_error();
    postcard::from_bytes::<T>(bytes).err()?;
    take_handle_error()
}

/// Encodes `value` with postcard; a handle that cannot travel fails with its own
/// error (e.g. "an anonymous queue travels only as an argument of Process::spawn")
/// rather than postcard's generic one.
pub(crate) fn encode<T: serde::Serialize + ?Sized>(
    value: &T,
    context: &str,
) -> crate::Result<Vec<u8>> {
    clear_handle_error();
    postcard::to_stdvec(value)
        .map_err(|e| take_handle_error().unwrap_or_else(|| crate::Error::codec(context, e)))
}

/// Decodes a postcard `T` from `bytes` (see [`encode`]); trailing bytes are an error.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    context: &str,
) -> crate::Result<T> {
    clear_handle_error();
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((v, [])) => Ok(v),
        Ok((_, rest)) => Err(crate::Error::Corrupt {
            segment: context.to_owned(),
            what: "message length".into(),
            expected: "one encoded value and nothing after it".into(),
            found: format!("{} trailing bytes", rest.len()),
        }),
        Err(e) => Err(take_handle_error().unwrap_or_else(|| crate::Error::codec(context, e))),
    }
}
