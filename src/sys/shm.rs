//! Segment files: anonymous (`memfd_create`, sealed) and named (`shm_open`),
//! and their mappings.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use memmap2::{MmapOptions, MmapRaw};
use nix::fcntl::OFlag;
use nix::fcntl::{FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MFdFlags};
use nix::sys::mman::{shm_open, shm_unlink};
use nix::sys::stat::Mode;

use crate::error::{Error, Result};

/// Prefix of every named segment in `/dev/shm` (and of memfd names).
pub(crate) const NAME_PREFIX: &str = "shmproc.";

/// Creates an anonymous segment file of `len` bytes, sealed against grow and
/// shrink so no process that receives it can truncate it under a reader
/// (which would turn reads into SIGBUS).
pub(crate) fn create_anonymous(label: &str, len: u64) -> Result<OwnedFd> {
    let name = CString::new(format!("{NAME_PREFIX}{label}"))
        .map_err(|_| Error::invalid("segment label", "no NUL byte", label))?;
    let fd = memfd_create(
        name.as_c_str(),
        MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
    )
    .map_err(|e| Error::os("memfd_create", e))?;
    let file = File::from(fd);
    file.set_len(len)
        .map_err(|e| Error::os(format!("sizing anonymous segment to {len} bytes"), e))?;
    nix::fcntl::fcntl(
        &file,
        FcntlArg::F_ADD_SEALS(
            SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_SEAL,
        ),
    )
    .map_err(|e| Error::os("sealing anonymous segment", e))?;
    Ok(OwnedFd::from(file))
}

/// Whether `fd` carries the grow and shrink seals (a memfd made by us).
pub(crate) fn is_sealed(fd: &OwnedFd) -> bool {
    match nix::fcntl::fcntl(fd, FcntlArg::F_GET_SEALS) {
        Ok(bits) => {
            let seals = SealFlag::from_bits_truncate(bits);
            seals.contains(SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SHRINK)
        }
        Err(_) => false,
    }
}

/// The `/dev/shm` path name of a validated segment name.
pub(crate) fn shm_path(name: &str) -> String {
    format!("/{NAME_PREFIX}{name}")
}

/// Creates a named segment of `len` bytes; fails with `AlreadyExists` if the name
/// is taken. Owner-only permissions (0600).
pub(crate) fn create_named(name: &str, len: u64) -> Result<OwnedFd> {
    let path = shm_path(name);
    let fd = shm_open(
        path.as_str(),
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR | OFlag::O_CLOEXEC,
        Mode::S_IRUSR | Mode::S_IWUSR,
    )
    .map_err(|e| Error::os(format!("creating named segment {name:?}"), e))?;
    let file = File::from(fd);
    if let Err(e) = file.set_len(len) {
        let _ = shm_unlink(path.as_str());
        return Err(Error::os(
            format!("sizing named segment {name:?} to {len} bytes"),
            e,
        ));
    }
    Ok(OwnedFd::from(file))
}

/// Opens an existing named segment read-write.
pub(crate) fn open_named(name: &str) -> Result<OwnedFd> {
    let path = shm_path(name);
    shm_open(
        path.as_str(),
        OFlag::O_RDWR | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::os(format!("opening named segment {name:?}"), e))
}

/// Removes a named segment's name; mappings stay valid until unmapped.
pub(crate) fn unlink_named(name: &str) -> Result<()> {
    shm_unlink(shm_path(name).as_str())
        .map_err(|e| Error::os(format!("unlinking named segment {name:?}"), e))
}

/// The current size of the file behind `fd`.
pub(crate) fn file_len(fd: &OwnedFd) -> Result<u64> {
    let st = nix::sys::stat::fstat(fd).map_err(|e| Error::os("fstat on segment", e))?;
    Ok(st.st_size as u64)
}

/// Maps `len` bytes of `fd` shared and read-write.
pub(crate) fn map(fd: &OwnedFd, len: u64) -> Result<MmapRaw> {
    let len_usize = usize::try_from(len)
        .map_err(|_| Error::invalid("segment length", "at most usize::MAX", len))?;
    MmapOptions::new()
        .len(len_usize)
        .map_raw(fd.as_raw_fd())
        .map_err(|e| Error::os(format!("mapping {len} bytes"), e))
}

/// Duplicates `fd` (close-on-exec set).
pub(crate) fn dup(fd: &OwnedFd) -> Result<OwnedFd> {
    fd.try_clone()
        .map_err(|e| Error::os("dup of segment fd", e))
}

/// Takes ownership of a raw fd received from a parent process, after checking
/// that it is open.
pub(crate) fn adopt_fd(raw: i32) -> Result<OwnedFd> {
    // SAFETY: F_GETFD on any integer is harmless: it only queries the fd table.
    let r = unsafe { libc::fcntl(raw, libc::F_GETFD) };
    if r < 0 {
        return Err(Error::os(
            format!("inherited segment fd {raw}"),
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: the fd is open (checked above) and the launcher hands each
    // inherited fd to exactly one adopter, so nothing else owns or closes it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}
