//! Reading named segments without trusting them: what `shmproc ls`, `inspect`
//! and `clean` are built on.
//!
//! The header is read with `pread` into a buffer (no mapping: a file of any
//! size or content, even one truncated meanwhile, can only yield a status
//! such as [`Status::Corrupt`], never a crash). Who uses a segment is found by
//! scanning `/proc/<pid>/maps` and `/proc/<pid>/fd` of every process this user
//! may read. Kind-specific details (queue depth, lock owner) are the object
//! layers' business: see [`crate::inspect`].

use std::collections::HashMap;
use std::fs::File;
use std::mem::offset_of;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use super::header::{
    Header, Kind, COUNTERS, HEADER_LEN, INIT_READY, LAYOUT_VERSION, MAGIC, PARAMS,
};
use super::{Segment, TypeFingerprint};
use crate::error::{Error, Result};
use crate::sys::shm::NAME_PREFIX;
use crate::sys::task::{self, TaskId};

/// Where named segments live.
const SHM_DIR: &str = "/dev/shm";

/// Whether a segment's header passed validation.
///
/// # Examples
/// ```
/// use shmproc::inspect::{info, Status};
/// let name = format!("doc-status-{}", std::process::id());
/// let _ev = shmproc::Event::builder().name(&name).create()?;
/// assert_eq!(info(&name)?.status, Status::Ready);
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// A valid header of a known kind, initialised, matching the file size.
    Ready,
    /// The creator has not finished initialising it (or died doing so).
    Initialising,
    /// Written by another layout version of shmproc.
    Incompatible(String),
    /// Not a valid shmproc segment: what is wrong with it.
    Corrupt(String),
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Ready => f.write_str("ready"),
            Status::Initialising => f.write_str("initialising"),
            Status::Incompatible(why) => write!(f, "incompatible: {why}"),
            Status::Corrupt(why) => write!(f, "corrupt: {why}"),
        }
    }
}

/// What a named segment's header says, read without trusting it.
///
/// Fields that the header could not vouch for are `None` (or empty).
///
/// # Examples
/// ```
/// let name = format!("doc-seginfo-{}", std::process::id());
/// let _v = shmproc::Value::builder().name(&name).value(1u32).create()?;
/// let i = shmproc::inspect::info(&name)?;
/// assert_eq!((i.type_name.as_str(), i.type_size), ("u32", 4));
/// assert_eq!(i.creator, Some(std::process::id()));
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct SegmentInfo {
    /// The name, without the `shmproc.` prefix.
    pub name: String,
    /// The file's size in bytes.
    pub file_len: u64,
    /// Whether the header is valid.
    pub status: Status,
    /// The object kind, if the header names a known one.
    pub kind: Option<Kind>,
    /// The element type's name as recorded (truncated to 32 bytes).
    pub type_name: String,
    /// `size_of` the element type.
    pub type_size: u32,
    /// The layout version in the header.
    pub version: u32,
    /// The pid of the process that created it, if the header is readable.
    pub creator: Option<u32>,
    /// That process's start time (clock ticks since boot): with the pid,
    /// names it across pid reuse.
    creator_start: Option<u64>,
    /// Whether that creator still runs (pid *and* start time match, so a
    /// reused pid does not count), if known.
    pub creator_alive: Option<bool>,
    /// The kind-specific header parameters.
    pub params: [u64; PARAMS],
    /// The statistics counters (meanings: [`super::counters::names`]).
    pub counters: [u64; COUNTERS],
    /// Other processes that map it or hold it open (never this process).
    pub users: Vec<u32>,
}

impl SegmentInfo {
    /// Whether `clean` may remove it: nobody uses it and its creator is known
    /// dead, or (with `corrupt`) its header names no creator at all.
    ///
    /// # Examples
    /// ```
    /// let name = format!("doc-orphan-{}", std::process::id());
    /// let _l = shmproc::Lock::builder().name(&name).create()?;
    /// // Our creator (this process) is alive: never an orphan.
    /// assert!(!shmproc::inspect::info(&name)?.is_orphan(true));
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn is_orphan(&self, corrupt: bool) -> bool {
        self.users.is_empty()
            && match self.creator_alive {
                Some(alive) => !alive,
                None => corrupt,
            }
    }
}

/// The file behind a segment name (any name without `/` or NUL: `ls` shows
/// foreign files under our prefix too, and `rm` must be able to remove them).
fn path_of(name: &str) -> Result<PathBuf> {
    if name.is_empty() || name.contains(['/', '\0']) {
        return Err(Error::invalid(
            "segment name",
            "a name without '/' or NUL",
            format!("{name:?}"),
        ));
    }
    Ok(PathBuf::from(format!("{SHM_DIR}/{NAME_PREFIX}{name}")))
}

/// Names (without prefix) of every `shmproc.*` file in `/dev/shm`, sorted;
/// names that are not UTF-8 are shown lossily.
fn names() -> Result<Vec<String>> {
    let dir = std::fs::read_dir(SHM_DIR).map_err(|e| Error::os("reading /dev/shm", e))?;
    let mut names: Vec<String> = dir
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.strip_prefix(NAME_PREFIX).map(str::to_owned)
        })
        .collect();
    names.sort();
    Ok(names)
}

/// Every named segment of this user, each with its header status.
///
/// A file that vanishes while being listed is skipped; one that cannot be
/// read is listed as corrupt.
///
/// # Errors
/// The OS error if `/dev/shm` cannot be read.
pub(crate) fn list() -> Result<Vec<SegmentInfo>> {
    let users = users_by_name();
    let mut out = Vec::new();
    for name in names()? {
        match read_info(&name, &users) {
            Ok(info) => out.push(info),
            Err(Error::Os { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => out.push(unreadable(&name, e, &users)),
        }
    }
    Ok(out)
}

/// The header of the named segment `name`.
///
/// # Errors
/// An invalid name, or the OS error (e.g. `ENOENT`) opening the file. A file
/// that is not a valid segment is not an error: its [`Status`] says why.
///
/// # Examples
/// ```
/// let name = format!("doc-info-{}", std::process::id());
/// let lock = shmproc::Lock::builder().name(&name).create()?;
/// let info = shmproc::inspect::info(&name)?;
/// assert_eq!(info.kind, Some(shmproc::inspect::Kind::Lock));
/// assert_eq!(info.creator_alive, Some(true));
/// # Ok::<(), shmproc::Error>(())
/// ```
pub fn info(name: &str) -> Result<SegmentInfo> {
    read_info(name, &users_by_name())
}

fn unreadable(name: &str, e: Error, users: &HashMap<String, Vec<u32>>) -> SegmentInfo {
    SegmentInfo {
        name: name.to_owned(),
        file_len: 0,
        status: Status::Corrupt(format!("unreadable: {e}")),
        kind: None,
        type_name: String::new(),
        type_size: 0,
        version: 0,
        creator: None,
        creator_start: None,
        creator_alive: None,
        params: [0; PARAMS],
        counters: [0; COUNTERS],
        users: users.get(name).cloned().unwrap_or_default(),
    }
}

/// A little-endian field of the header image at the offset of `Header`'s field.
fn u32_at(img: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(img[off..off + 4].try_into().expect("4 bytes"))
}
fn u64_at(img: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(img[off..off + 8].try_into().expect("8 bytes"))
}

fn read_info(name: &str, users: &HashMap<String, Vec<u32>>) -> Result<SegmentInfo> {
    let path = path_of(name)?;
    let file =
        File::open(&path).map_err(|e| Error::os(format!("opening {}", path.display()), e))?;
    let file_len = file
        .metadata()
        .map_err(|e| Error::os(format!("stat of {}", path.display()), e))?
        .len();
    let mut img = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        match file.read_at(&mut img[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::os(format!("reading {}", path.display()), e)),
        }
    }
    let mut info = unreadable(name, Error::Closed, users);
    info.file_len = file_len;
    if got < HEADER_LEN {
        info.status = Status::Corrupt(format!(
            "file is {file_len} bytes, shorter than the {HEADER_LEN}-byte header"
        ));
        return Ok(info);
    }
    let magic = u64_at(&img, offset_of!(Header, magic));
    let init = u32_at(&img, offset_of!(Header, init));
    if magic != MAGIC {
        info.status = if magic == 0 && init == 0 {
            Status::Initialising
        } else {
            Status::Corrupt(format!("magic {magic:#018x}, expected {MAGIC:#018x}"))
        };
        return Ok(info);
    }
    // The identity words (offsets 0..64) are the same in every layout version.
    info.version = u32_at(&img, offset_of!(Header, version));
    let pid = u32_at(&img, offset_of!(Header, creator_pid));
    let start = u64_at(&img, offset_of!(Header, creator_start));
    if pid != 0 {
        let who = TaskId { tid: pid, start };
        info.creator = Some(who.tid);
        info.creator_start = Some(who.start);
        info.creator_alive = Some(who.is_alive());
    }
    if info.version != LAYOUT_VERSION {
        info.status = Status::Incompatible(format!(
            "layout version {}, this build reads {LAYOUT_VERSION}",
            info.version
        ));
        return Ok(info);
    }
    let raw_kind = u32_at(&img, offset_of!(Header, kind));
    info.kind = Kind::from_u32(raw_kind);
    info.type_size = u32_at(&img, offset_of!(Header, type_size));
    let p = offset_of!(Header, params);
    info.params = std::array::from_fn(|i| u64_at(&img, p + 8 * i));
    let c = offset_of!(Header, counters);
    info.counters = std::array::from_fn(|i| u64_at(&img, c + 8 * i));
    let t = offset_of!(Header, type_name);
    let tn = &img[t..t + 32];
    let end = tn.iter().position(|b| *b == 0).unwrap_or(tn.len());
    info.type_name = String::from_utf8_lossy(&tn[..end]).into_owned();
    let total = u64_at(&img, offset_of!(Header, total_len));
    info.status = if init == 0 {
        Status::Initialising
    } else if init != INIT_READY {
        Status::Corrupt(format!("init state {init:#x}, expected {INIT_READY:#x}"))
    } else if info.kind.is_none() {
        Status::Corrupt(format!("unknown kind {raw_kind}"))
    } else if total != file_len {
        Status::Corrupt(format!(
            "header says {total} bytes, the file has {file_len}"
        ))
    } else {
        Status::Ready
    };
    Ok(info)
}

/// Maps the named segment as whatever its header says it is (any kind and
/// element type), fully validated, for kind-specific inspection.
///
/// # Errors
/// As [`Segment::open`]; `Corrupt` for an unknown kind.
pub(crate) fn open_as_found(name: &str) -> Result<Segment> {
    // The header only: no need to scan /proc for users here.
    let info = read_info(name, &HashMap::new())?;
    let kind = info.kind.ok_or_else(|| Error::Corrupt {
        segment: name.to_owned(),
        what: "kind".into(),
        expected: "a known kind".into(),
        found: info.status.to_string(),
    })?;
    let fd = crate::sys::shm::open_named(name)?;
    // Re-read the type words from the file just opened (the name may have been
    // re-created since `info`): the open validates them against the mapping.
    let mut img = [0u8; HEADER_LEN];
    File::from(
        fd.try_clone()
            .map_err(|e| Error::os("dup of segment fd", e))?,
    )
    .read_exact_at(&mut img, 0)
    .map_err(|e| Error::os(format!("reading segment {name:?}"), e))?;
    let ty = TypeFingerprint {
        size: u32_at(&img, offset_of!(Header, type_size)),
        align: u32_at(&img, offset_of!(Header, type_align)),
        hash: u64_at(&img, offset_of!(Header, type_hash)),
        name: "(as recorded)",
    };
    Segment::from_fd(fd, Some(name.to_owned()), kind, &ty)
}

/// Removes the named segment file `name` (any name `list` shows, including
/// foreign or corrupt files under our prefix). Mappings stay valid.
///
/// # Errors
/// An invalid name, or the OS error (e.g. `ENOENT`).
///
/// # Examples
/// ```
/// let name = format!("doc-remove-{}", std::process::id());
/// std::fs::write(format!("/dev/shm/shmproc.{name}"), b"junk")?;
/// shmproc::inspect::remove(&name)?;
/// assert!(shmproc::inspect::info(&name).is_err());
/// # Ok::<(), shmproc::Error>(())
/// ```
pub fn remove(name: &str) -> Result<()> {
    let path = path_of(name)?;
    std::fs::remove_file(&path)
        .map_err(|e| Error::os(format!("removing {}", path.display()), e))?;
    log::info!("shmproc: removed named segment {name}");
    Ok(())
}

/// What [`clean`] did with one segment.
///
/// # Examples
/// ```
/// for c in shmproc::inspect::clean("doc-no-such-prefix-", false)? {
///     println!("{} {}: {}", if c.removed { "removed" } else { "kept" }, c.name, c.reason);
/// }
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Cleaned {
    /// The segment name.
    pub name: String,
    /// `true` if it was removed.
    pub removed: bool,
    /// Why it was removed or kept.
    pub reason: String,
}

/// Removes every named segment whose name starts with `prefix` (`""`: all),
/// whose creator is dead and which no live process maps or holds open (with
/// `corrupt`, also those whose header names no creator). Reports every
/// segment it considered.
///
/// Before removing, the header is read again: a name re-created meanwhile by
/// a live process is kept.
///
/// # Errors
/// The OS error if `/dev/shm` cannot be read; failures to remove one segment
/// are reported in its [`Cleaned::reason`].
///
/// # Examples
/// ```
/// let name = format!("doc-clean-{}", std::process::id());
/// let _l = shmproc::Lock::builder().name(&name).create()?;
/// let report = shmproc::inspect::clean(&name, false)?;
/// assert!(!report[0].removed); // its creator (us) is alive
/// # Ok::<(), shmproc::Error>(())
/// ```
pub fn clean(prefix: &str, corrupt: bool) -> Result<Vec<Cleaned>> {
    let mut out = Vec::new();
    for s in list()?.into_iter().filter(|s| s.name.starts_with(prefix)) {
        let keep = |reason: String| Cleaned {
            name: s.name.clone(),
            removed: false,
            reason,
        };
        if !s.is_orphan(corrupt) {
            let why = if !s.users.is_empty() {
                format!("in use by pid {}", join_pids(&s.users))
            } else if s.creator_alive == Some(true) {
                format!("creator {} is alive", s.creator.unwrap_or(0))
            } else {
                format!("{} (use --corrupt to remove)", s.status)
            };
            out.push(keep(why));
            continue;
        }
        // Re-check just before removing: same creator, still unused.
        match info(&s.name) {
            Ok(again)
                if (again.creator, again.creator_start) == (s.creator, s.creator_start)
                    && again.is_orphan(corrupt) => {}
            Ok(_) => {
                out.push(keep("changed while cleaning".into()));
                continue;
            }
            Err(e) => {
                out.push(keep(e.to_string()));
                continue;
            }
        }
        let reason = match s.creator {
            Some(pid) => format!("creator {pid} is dead and nobody uses it"),
            None => format!("{} and nobody uses it", s.status),
        };
        out.push(match remove(&s.name) {
            Ok(()) => Cleaned {
                name: s.name.clone(),
                removed: true,
                reason,
            },
            Err(e) => keep(e.to_string()),
        });
    }
    Ok(out)
}

fn join_pids(pids: &[u32]) -> String {
    pids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// For every `shmproc.*` name, the other processes that map it (from
/// `/proc/<pid>/maps`) or hold it open (`/proc/<pid>/fd`). Processes we may
/// not read (other users) are skipped: they cannot open our 0600 files.
fn users_by_name() -> HashMap<String, Vec<u32>> {
    let me = task::pid();
    let mut users: HashMap<String, Vec<u32>> = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return users;
    };
    let prefix = format!("{SHM_DIR}/{NAME_PREFIX}");
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let mut found: Vec<String> = Vec::new();
        if let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) {
            for line in maps.lines() {
                if let Some(i) = line.find(&prefix) {
                    let rest = &line[i + prefix.len()..];
                    if !rest.ends_with(" (deleted)") {
                        found.push(rest.to_owned());
                    }
                }
            }
        }
        if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
            for fd in fds.flatten() {
                if let Ok(target) = std::fs::read_link(fd.path()) {
                    let t = target.to_string_lossy();
                    if let Some(rest) = t.strip_prefix(&prefix) {
                        if !rest.ends_with(" (deleted)") {
                            found.push(rest.to_owned());
                        }
                    }
                }
            }
        }
        found.sort();
        found.dedup();
        for name in found {
            users.entry(name).or_default().push(pid);
        }
    }
    users
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::{unique_name, Placement, Spec};
    use std::io::Write;

    struct RawFile(PathBuf);
    impl Drop for RawFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn raw(name: &str, bytes: &[u8]) -> RawFile {
        let p = path_of(name).unwrap();
        std::fs::File::create(&p).unwrap().write_all(bytes).unwrap();
        RawFile(p)
    }

    #[test]
    fn garbage_files_are_listed_as_corrupt() {
        let short = unique_name("insp-short");
        let junk = unique_name("insp-junk");
        let _a = raw(&short, b"hello");
        let _b = raw(&junk, &[0xAB; 4096]);
        let all = list().unwrap();
        let s = all.iter().find(|s| s.name == short).unwrap();
        assert!(
            matches!(&s.status, Status::Corrupt(w) if w.contains("shorter")),
            "{s:?}"
        );
        assert_eq!(s.creator_alive, None);
        let j = all.iter().find(|s| s.name == junk).unwrap();
        assert!(
            matches!(&j.status, Status::Corrupt(w) if w.contains("magic")),
            "{j:?}"
        );
        assert!(!j.is_orphan(false) && j.is_orphan(true));
        assert!(open_as_found(&junk).is_err());
    }

    #[test]
    fn live_segment_reads_back() {
        let name = unique_name("insp-live");
        let spec = Spec {
            kind: Kind::Semaphore,
            ty: TypeFingerprint::of::<u64>(),
            payload_len: 64,
            params: [7, 0, 0, 0],
        };
        let place = Placement {
            name: Some(name.clone()),
            persist: false,
        };
        let seg = Segment::create(&spec, &place, |s| {
            s.bump(super::super::counters::BLOCKED);
            Ok(())
        })
        .unwrap();
        let i = info(&name).unwrap();
        assert_eq!(i.status, Status::Ready);
        assert_eq!(i.kind, Some(Kind::Semaphore));
        assert_eq!(i.type_name, "u64");
        assert_eq!(i.params[0], 7);
        assert_eq!(i.counters[0], 1);
        assert_eq!(i.creator, Some(task::pid()));
        assert_eq!(i.creator_alive, Some(true));
        assert_eq!(i.file_len, HEADER_LEN as u64 + 64);
        assert!(i.users.is_empty(), "this process is never listed");
        assert!(!i.is_orphan(true));
        let again = open_as_found(&name).unwrap();
        assert_eq!(again.kind(), Kind::Semaphore);
        drop(again);
        drop(seg);
        assert!(info(&name).is_err(), "unlinked on drop");
    }

    #[test]
    fn names_with_slashes_are_refused() {
        assert!(path_of("../etc").is_err());
        assert!(path_of("").is_err());
        assert!(remove("a/b").is_err());
    }
}
