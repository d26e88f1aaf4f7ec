//! Looking at the named segments of this user from outside: what the
//! `shmproc` command-line tool shows (`ls`, `inspect`, `rm`, `clean`).
//!
//! The header level (status, kind, element type, creator and its liveness,
//! counters, which processes use a segment) comes from
//! [`info`], which reads files without trusting them. This module adds what only the object layers know (a
//! lock's holder, a semaphore's value, a queue's depth): each kind
//! describes a segment it has validated as it would on `open`, so a
//! corrupt payload gives an error line, never a crash.
//!
//! # Examples
//! ```
//! let name = format!("doc-inspect-{}", std::process::id());
//! let sem = shmproc::Semaphore::builder().name(&name).value(3).create()?;
//! let found = shmproc::inspect::list()?;
//! let me = found.iter().find(|e| e.info.name == name).unwrap();
//! assert_eq!(me.summary, "value 3");
//! let fields = shmproc::inspect::details(&name)?;
//! assert!(fields.iter().any(|(k, v)| *k == "value" && v == "3"));
//! # drop(sem);
//! # Ok::<(), shmproc::Error>(())
//! ```

use crate::error::Result;
pub use crate::segment::counters;
pub use crate::segment::inspect::{clean, info, remove, Cleaned, SegmentInfo, Status};
pub use crate::segment::Kind;
use crate::segment::{inspect::open_as_found, Segment};
use crate::sync::handle::ShmHandle;
use crate::sync::{Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore};

/// One listed segment: its header and a one-line kind-specific summary.
///
/// # Examples
/// ```
/// for e in shmproc::inspect::list()? {
///     println!("{}: {}", e.info.name, e.summary);
/// }
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Entry {
    /// What the header says.
    pub info: SegmentInfo,
    /// E.g. `value 3`, `held by thread 812`, `depth 5/16`; the error for a
    /// segment whose payload fails validation; empty if not ready.
    pub summary: String,
}

/// Every named segment of this user with a summary of its state.
///
/// # Errors
/// The OS error if `/dev/shm` cannot be read.
///
/// # Examples
/// ```
/// for e in shmproc::inspect::list()? {
///     println!("{} {} {}", e.info.name, e.info.status, e.summary);
/// }
/// # Ok::<(), shmproc::Error>(())
/// ```
pub fn list() -> Result<Vec<Entry>> {
    Ok(crate::segment::inspect::list()?
        .into_iter()
        .map(|info| {
            let summary = if info.status == Status::Ready {
                match describe_named(&info.name) {
                    Ok(fields) => summarize(&fields),
                    Err(e) => format!("error: {e}"),
                }
            } else {
                String::new()
            };
            Entry { info, summary }
        })
        .collect())
}

/// The kind-specific fields and the named counters of segment `name`.
///
/// # Errors
/// The OS error opening it, `Corrupt`/`Incompatible` if it fails validation
/// (the header-level [`info`] still works on such files).
///
/// # Examples
/// ```
/// let name = format!("doc-details-{}", std::process::id());
/// let lock = shmproc::Lock::builder().name(&name).create()?;
/// let _g = lock.acquire()?;
/// let fields = shmproc::inspect::details(&name)?;
/// assert!(fields.iter().any(|(k, v)| *k == "lock" && v.starts_with("held by thread")));
/// assert!(fields.iter().any(|(k, _)| *k == "blocked acquires"));
/// # Ok::<(), shmproc::Error>(())
/// ```
pub fn details(name: &str) -> Result<Vec<(&'static str, String)>> {
    describe_named(name)
}

fn describe_named(name: &str) -> Result<Vec<(&'static str, String)>> {
    let seg = open_as_found(name)?;
    let mut fields = describe(seg.clone())?;
    let values = seg.counters();
    for (slot, label) in counters::names(seg.kind()) {
        fields.push((label, values[*slot].to_string()));
    }
    Ok(fields)
}

/// What the object layer of `seg`'s kind can tell about it.
fn describe(seg: Segment) -> Result<Vec<(&'static str, String)>> {
    let kind = seg.kind();
    Ok(match kind {
        Kind::Lock => Lock::from_segment(seg)?.describe(),
        Kind::RLock => {
            let l = RLock::from_segment(seg)?;
            let mut f = l.describe();
            f.push(("depth", l.depth().to_string()));
            f
        }
        Kind::Condition => Condition::from_segment(seg)?.describe(),
        Kind::Semaphore => {
            vec![("value", Semaphore::from_segment(seg)?.value().to_string())]
        }
        Kind::BoundedSemaphore => {
            let s = BoundedSemaphore::from_segment(seg)?;
            vec![
                ("value", s.value().to_string()),
                ("max", s.max_value().to_string()),
            ]
        }
        Kind::Event => {
            let set = Event::from_segment(seg)?.is_set();
            vec![("flag", if set { "set" } else { "clear" }.to_owned())]
        }
        Kind::Barrier => Barrier::describe(seg)?,
        Kind::Value | Kind::Array => crate::value::region::describe(&seg, true)?,
        Kind::RawValue | Kind::RawArray => crate::value::region::describe(&seg, false)?,
        Kind::Queue | Kind::Pipe => crate::chan::Chan::open(seg)?.describe(),
        Kind::JoinableQueue => {
            let chan = crate::chan::Chan::open(seg)?;
            let mut f = chan.describe();
            f.push((
                "unfinished tasks",
                crate::queue::unfinished(&chan).to_string(),
            ));
            f
        }
        Kind::Pool => Vec::new(),
    })
}

/// The one-line summary `ls` shows: the most telling field.
fn summarize(fields: &[(&'static str, String)]) -> String {
    for key in [
        "depth", "value", "flag", "waiting", "data", "lock", "elements",
    ] {
        if let Some((k, v)) = fields.iter().find(|(k, _)| *k == key) {
            return match *k {
                "lock" | "flag" => v.clone(),
                "waiting" => format!("{v} waiting"),
                _ => format!("{k} {v}"),
            };
        }
    }
    String::new()
}
