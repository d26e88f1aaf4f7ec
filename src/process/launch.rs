//! [`StartMethod::Spawn`](super::StartMethod::Spawn): re-execute
//! `/proc/self/exe` with a launch record and the inherited descriptors.

use std::ffi::OsString;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use serde::Serialize;

use super::boot::{self, Boot, BOOT_VERSION, ENV};
use super::{child, entry, registry, EntryReturn};
use crate::error::{Error, Result};
use crate::segment::transfer;
use crate::sys;

/// Which command-line arguments a re-executed child gets.
#[derive(Debug, Clone, Default)]
pub(crate) enum ChildArgs {
    /// None in a normal program; in a libtest harness, those that select the
    /// spawning thread's test (libtest names each test's thread after it).
    #[default]
    Auto,
    /// Select this libtest test.
    Test(String),
    /// Exactly these.
    Raw(Vec<OsString>),
}

/// Launches the child; returns its pid and the launch record file (whose
/// last byte tells whether the child reached `init()`).
pub(super) fn spawn<F, A, R>(
    child_args_how: &ChildArgs,
    daemon: bool,
    args: &A,
    name: &str,
    identity: Vec<u32>,
    exit_word: BorrowedFd<'_>,
) -> Result<(u32, File)>
where
    F: FnOnce(A) -> R,
    A: Serialize + serde::de::DeserializeOwned,
    R: EntryReturn,
{
    if child::init_missing() {
        return Err(Error::invalid(
            "launch",
            "a launched child that called shmproc::init() first (in main, or in the test)",
            "a launched child spawning before calling shmproc::init(): it would launch \
             copies of itself",
        ));
    }
    let context = format!("arguments of type {}", std::any::type_name::<A>());
    let (bytes, fds) = transfer::export_scope(|| transfer::encode(args, &context));
    let bytes = bytes?;
    let (child_args, hide_banner) = child_args(child_args_how)?;
    // The parent's stdout, for a child whose own stdout hides libtest's banner.
    let stdout = if hide_banner {
        Some(
            std::io::stdout()
                .as_fd()
                .try_clone_to_owned()
                .map_err(|e| Error::os("duplicating stdout for a child", e))?,
        )
    } else {
        None
    };
    let me = registry::current_process();
    let nonce = sys::process::random_u64()?;
    let record = Boot {
        version: BOOT_VERSION,
        nonce,
        exe: boot::exe_identity()?,
        entry_offset: entry::entry_offset::<F, A, R>(),
        entry_hash: entry::entry_hash::<F, A, R>(),
        name: name.to_owned(),
        daemon,
        identity,
        parent_name: me.name().to_owned(),
        parent_pid: me.pid(),
        parent_start: sys::task::start_time(me.pid()).unwrap_or(0),
        fds: fds.iter().map(AsRawFd::as_raw_fd).collect(),
        stdout: stdout.as_ref().map(AsRawFd::as_raw_fd),
        exit_word: Some(exit_word.as_raw_fd()),
        args: bytes,
    };
    let record_fd = boot::write(&record)?;
    let mut keep: Vec<RawFd> = record.fds.clone();
    keep.extend(record.stdout);
    keep.extend(record.exit_word);
    keep.push(record_fd.as_raw_fd());
    let mut cmd = Command::new("/proc/self/exe");
    if let Some(arg0) = std::env::args_os().next() {
        cmd.arg0(arg0);
    }
    cmd.args(child_args)
        .env(ENV, boot::env_value(&record_fd, nonce))
        // As Python's children: stdin is /dev/null, so a child never
        // competes with its parent for the terminal or a pipe.
        .stdin(Stdio::null());
    if hide_banner {
        cmd.stdout(Stdio::null());
    }
    let parent = me.pid();
    // SAFETY: the hook runs in the forked child before exec. It allocates
    // nothing and takes no lock: it iterates a Vec moved into it and calls
    // only fcntl, prctl, getppid and _exit, all async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            for fd in &keep {
                sys::process::clear_cloexec(*fd)?;
            }
            if daemon {
                sys::process::die_with_parent(parent)?;
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| Error::os("re-executing /proc/self/exe for a child", e))?;
    // Dropping `child` neither waits nor kills; we reap by pid. Our copies
    // of the inherited descriptors close here.
    drop((fds, stdout));
    Ok((child.id(), File::from(record_fd)))
}

/// The arguments for the child's command line, and whether its stdout should
/// hide a test harness's banner (`running 1 test`).
fn child_args(how: &ChildArgs) -> Result<(Vec<OsString>, bool)> {
    match how {
        ChildArgs::Raw(args) => Ok((args.clone(), false)),
        ChildArgs::Test(name) => Ok((test_args(name), true)),
        ChildArgs::Auto => {
            if !is_test_binary() {
                return Ok((Vec::new(), false));
            }
            let thread = std::thread::current();
            match thread.name() {
                // `harness = false` tests and benches run from main.
                Some("main") => Ok((Vec::new(), false)),
                Some(test) => Ok((test_args(test), true)),
                None => Err(Error::invalid(
                    "spawning thread",
                    "a libtest test's own thread (named after the test), or \
                     ProcessBuilder::test_name / ProcessBuilder::child_args",
                    "an unnamed thread of a test binary: the child would not know which \
                     test to run",
                )),
            }
        }
    }
}

/// Resolves [`ChildArgs::Auto`] for the calling thread now, so that children
/// launched later from another thread (a pool's supervisor) run the same test.
#[cfg_attr(loom, allow(dead_code))] // the pool is not built under loom
pub(super) fn pin(how: &ChildArgs) -> Result<ChildArgs> {
    match how {
        ChildArgs::Auto if is_test_binary() => match std::thread::current().name() {
            Some("main") => Ok(ChildArgs::Raw(Vec::new())),
            Some(test) => Ok(ChildArgs::Test(test.to_owned())),
            None => child_args(how).map(|_| ChildArgs::Auto), // its clear error
        },
        ChildArgs::Auto => Ok(ChildArgs::Raw(Vec::new())),
        other => Ok(other.clone()),
    }
}

/// libtest arguments that run exactly `test` (even if `#[ignore]`d),
/// without capturing its output.
fn test_args(test: &str) -> Vec<OsString> {
    [
        test,
        "--exact",
        "--nocapture",
        "--test-threads=1",
        "--include-ignored",
        "-q",
    ]
    .into_iter()
    .map(OsString::from)
    .collect()
}

/// Whether this executable looks like a cargo test binary
/// (`target/<profile>/deps/<name>-<hash>`).
fn is_test_binary() -> bool {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().and_then(|d| d.file_name()).map(|d| d == "deps"))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_thread_selects_its_own_test() {
        // Unit tests run from target/<profile>/deps/, on a thread named after the test.
        let (args, hide) = child_args(&ChildArgs::Auto).unwrap();
        let me = std::thread::current().name().unwrap().to_owned();
        assert!(me.ends_with("test_thread_selects_its_own_test"), "{me}");
        assert_eq!(args[0], OsString::from(&me));
        assert!(args.contains(&OsString::from("--exact")));
        assert!(hide);
        let (raw, hide) = child_args(&ChildArgs::Raw(vec!["a".into()])).unwrap();
        assert_eq!((raw, hide), (vec![OsString::from("a")], false));
        let unnamed = std::thread::spawn(|| child_args(&ChildArgs::Auto).is_err());
        assert!(
            unnamed.join().unwrap(),
            "an unnamed thread of a test binary is refused"
        );
    }
}
