//! The launch record a re-executed child reads in `init()`.
//!
//! The parent writes one [`Boot`] (postcard) into a sealed-off memfd that
//! only the child inherits, and names it in the environment variable
//! [`ENV`] as `<descriptor>:<nonce in hex>`. The nonce is repeated inside the
//! record, so a stale variable (leaked into an unrelated program) never makes
//! a process read some other descriptor as its launch record: it must be a
//! regular file that starts with the same nonce. See `docs/protocols/launch.md`.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The environment variable that marks a launched child.
pub(crate) const ENV: &str = "SHMPROC_CHILD";

/// Version of the launch record; bumped when [`Boot`] changes.
pub(crate) const BOOT_VERSION: u32 = 2;

/// Largest launch record a child accepts (arguments included).
const MAX_BOOT_LEN: u64 = 1 << 30;

/// Everything a re-executed child needs to run its entry.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Boot {
    /// [`BOOT_VERSION`]; first, with the nonce, so both decode alone.
    pub version: u32,
    pub nonce: u64,
    /// Device and inode of the parent's `/proc/self/exe`.
    pub exe: (u64, u64),
    /// Offset of the entry's trampoline from `sys::code::anchor`.
    pub entry_offset: u64,
    /// Hash of the entry's types (checked by the trampoline).
    pub entry_hash: u64,
    pub name: String,
    pub daemon: bool,
    /// The child's identity path (default names of its own children).
    pub identity: Vec<u32>,
    pub parent_name: String,
    pub parent_pid: u32,
    pub parent_start: u64,
    /// Inherited descriptors of anonymous segments, in slot order.
    pub fds: Vec<RawFd>,
    /// A duplicate of the parent's stdout, when the child's own stdout was
    /// pointed at /dev/null to hide a test harness's banner.
    pub stdout: Option<RawFd>,
    /// The page holding the child's exit word (`sys::exit_word`), which the
    /// child links into its robust list first thing in `init()`.
    pub exit_word: Option<RawFd>,
    /// The entry's arguments, postcard-encoded.
    pub args: Vec<u8>,
}

pub(crate) use crate::sys::code::exe_identity;

/// Writes `boot` into a new close-on-exec memfd and returns it. One byte
/// follows the record: 0, until the child sets it to 1 on reaching `init()`
/// (see [`mark_started`]).
///
/// # Errors
/// Encoding or OS errors; `MessageTooLarge` for a record over 1 GiB.
pub(crate) fn write(boot: &Boot) -> Result<OwnedFd> {
    let mut bytes = postcard::to_stdvec(boot).map_err(|e| Error::codec("launch record", e))?;
    bytes.push(0);
    if bytes.len() as u64 > MAX_BOOT_LEN {
        // The child would not take it for a launch record.
        return Err(Error::MessageTooLarge {
            size: bytes.len(),
            max: MAX_BOOT_LEN as usize,
        });
    }
    let fd = nix::sys::memfd::memfd_create(c"shmproc.boot", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
        .map_err(|e| Error::os("memfd_create for a launch record", e))?;
    let mut file = File::from(fd);
    file.write_all(&bytes)
        .map_err(|e| Error::os("writing a launch record", e))?;
    Ok(OwnedFd::from(file))
}

/// Sets the started byte (the last one) of the record in `file`.
pub(crate) fn mark_started(file: &File) {
    if let Ok(m) = file.metadata() {
        if m.len() > 0 {
            // Best effort: if this fails the parent reports that the child
            // never reached init(), which is the safe side.
            let _ = file.write_all_at(&[1], m.len() - 1);
        }
    }
}

/// Whether the child whose record is in `file` reached `init()`.
pub(crate) fn started(file: &File) -> bool {
    let Ok(m) = file.metadata() else {
        return false;
    };
    let mut b = [0u8];
    m.len() > 0 && file.read_exact_at(&mut b, m.len() - 1).is_ok() && b[0] == 1
}

/// The value of [`ENV`] for a record in `fd`.
pub(crate) fn env_value(fd: &OwnedFd, nonce: u64) -> String {
    format!("{}:{nonce:x}", fd.as_raw_fd())
}

/// Parses the value of [`ENV`]; `None` if it is not `<fd>:<hex nonce>`.
pub(crate) fn parse_env(v: &str) -> Option<(RawFd, u64)> {
    let (fd, nonce) = v.split_once(':')?;
    let fd: RawFd = fd.parse().ok()?;
    let nonce = u64::from_str_radix(nonce, 16).ok()?;
    (fd > 2).then_some((fd, nonce))
}

/// Reads the record from inherited descriptor `fd`, taking ownership of it
/// (the file is returned to set the started byte). `Ok(None)` when `fd` is not a launch record carrying `nonce` (a stale
/// variable): the descriptor is then left alone, not closed.
///
/// # Errors
/// A descriptor that is a launch record but cannot be read or decoded.
pub(crate) fn read(fd: RawFd, nonce: u64) -> Result<Option<(Boot, File)>> {
    // SAFETY: fstat writes into the zeroed `st` we own; a descriptor that is
    // not open yields EBADF, never memory unsafety.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid, writable stat buffer.
    if unsafe { libc::fstat(fd, &mut st) } < 0 {
        return Ok(None);
    }
    let len = st.st_size as u64;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG || !(8..=MAX_BOOT_LEN).contains(&len) {
        return Ok(None);
    }
    // The record starts with postcard varints: version, then the nonce. Read
    // the whole file only after checking the nonce, through a File that does
    // not close the descriptor until it proves to be ours.
    // SAFETY: `fd` is open (fstat succeeded); ManuallyDrop keeps it open if
    // this turns out not to be our record.
    let file =
        std::mem::ManuallyDrop::new(unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) });
    // Varints: at most 5 bytes for the version, 10 for the nonce.
    let mut head = [0u8; 15];
    let head_len = head.len().min(len as usize);
    if file.read_exact_at(&mut head[..head_len], 0).is_err() {
        return Ok(None);
    }
    let head: (u32, u64) = match postcard::take_from_bytes::<(u32, u64)>(&head[..head_len]) {
        Ok((head, _)) => head,
        Err(_) => return Ok(None),
    };
    if head.1 != nonce {
        return Ok(None);
    }
    // Ours: from here on the descriptor is owned (and closed) by `file`.
    let file = std::mem::ManuallyDrop::into_inner(file);
    if head.0 != BOOT_VERSION {
        return Err(Error::Incompatible {
            segment: "launch record".into(),
            expected: format!("version {BOOT_VERSION}"),
            found: format!("version {}", head.0),
        });
    }
    let mut bytes = vec![0u8; len as usize];
    file.read_exact_at(&mut bytes, 0)
        .map_err(|e| Error::os("reading the launch record", e))?;
    // The last byte is the started flag, not part of the record.
    postcard::from_bytes(&bytes[..bytes.len() - 1])
        .map(|b| Some((b, file)))
        .map_err(|e| Error::codec("launch record", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_roundtrip_and_garbage() {
        assert_eq!(parse_env("7:ff"), Some((7, 255)));
        assert_eq!(parse_env("1:ff"), None, "stdio is never a record");
        assert_eq!(parse_env("x:1"), None);
        assert_eq!(parse_env("9"), None);
        assert_eq!(parse_env("9:zz"), None);
    }

    fn sample(nonce: u64) -> Boot {
        Boot {
            version: BOOT_VERSION,
            nonce,
            exe: (1, 2),
            entry_offset: 3,
            entry_hash: 4,
            name: "Process-1".into(),
            daemon: true,
            identity: vec![1],
            parent_name: "MainProcess".into(),
            parent_pid: 5,
            parent_start: 6,
            fds: vec![10, 11],
            stdout: None,
            exit_word: Some(12),
            args: vec![1, 2, 3],
        }
    }

    #[test]
    fn record_roundtrip() {
        let fd = write(&sample(0xabc)).unwrap();
        let raw = fd.as_raw_fd();
        // A wrong nonce leaves the descriptor open and reports "not ours".
        assert!(read(raw, 0xabd).unwrap().is_none());
        std::mem::forget(fd); // `read` takes ownership on success
        let (b, file) = read(raw, 0xabc).unwrap().unwrap();
        assert!(!started(&file));
        mark_started(&file);
        assert!(started(&file));
        assert_eq!(
            (b.name.as_str(), b.fds, b.args),
            ("Process-1", vec![10, 11], vec![1, 2, 3])
        );
    }

    #[test]
    fn non_records_are_ignored() {
        let (r, w) = nix::unistd::pipe().unwrap();
        assert!(
            read(r.as_raw_fd(), 1).unwrap().is_none(),
            "a pipe is not a record"
        );
        drop((r, w));
        assert!(
            read(1000, 1).unwrap().is_none(),
            "a closed descriptor is not a record"
        );
    }
}
