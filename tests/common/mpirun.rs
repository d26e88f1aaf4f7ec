//! Runs `mpirun` jobs for the MPI tests and bench: output captured, a
//! watchdog that kills the whole job (mpirun, its daemons and ranks share a
//! process group), every process reaped. `mpirun` does not reap everything
//! it started when a job is aborted (ranks it killed, daemons that exit
//! after it): this process becomes a child subreaper, so those orphans come
//! to it, and reaps them after each job.

#![allow(unreachable_pub)] // a module of each includer, shared by path

use std::collections::HashSet;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How one job ended.
pub struct Ended {
    /// Exit status of mpirun (`None`: killed by the watchdog or a signal).
    pub code: Option<i32>,
    /// Its stdout, then its stderr.
    pub output: String,
    pub secs: f64,
}

/// Runs `mpirun --oversubscribe --stdin none ARGS`, killing the job after
/// `timeout`.
pub fn mpirun(args: &[&str], timeout: Duration) -> Ended {
    // SAFETY: prctl(2) with PR_SET_CHILD_SUBREAPER takes an int and has no
    // other precondition.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let before: HashSet<u32> = children().into_iter().collect();
    let mut cmd = Command::new("mpirun");
    cmd.args(["--oversubscribe", "--stdin", "none"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        cmd.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    }
    let t0 = Instant::now();
    let mut child = cmd.spawn().expect("mpirun (install Open MPI: openmpi-bin)");
    let pgid = child.id() as i32;
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let ereader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let code = loop {
        if let Some(st) = child.try_wait().expect("waiting for mpirun") {
            break st.code();
        }
        if t0.elapsed() > timeout {
            // The whole job, mpirun and its ranks: they share its group.
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pgid),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let secs = t0.elapsed().as_secs_f64();
    reap_orphans(&before, Duration::from_secs(10));
    let output = reader.join().unwrap_or_default() + &ereader.join().unwrap_or_default();
    Ended { code, output, secs }
}

/// Process ids of this process's children (from `/proc`).
fn children() -> Vec<u32> {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The parent's pid is the 2nd field after the parenthesized name.
        let ppid: u32 = stat[stat.rfind(')')? + 2..]
            .split(' ')
            .nth(1)?
            .parse()
            .ok()?;
        (ppid == me).then_some(pid)
    })
    .collect()
}

/// Reaps the children that were not ours before the job (orphans of the
/// job, handed to us as subreaper), waiting for them up to `grace`, then
/// killing what is left.
fn reap_orphans(before: &HashSet<u32>, grace: Duration) {
    use nix::sys::wait::{waitpid, WaitPidFlag};
    use nix::unistd::Pid;
    let deadline = Instant::now() + grace;
    loop {
        let orphans: Vec<u32> = children()
            .into_iter()
            .filter(|p| !before.contains(p))
            .collect();
        if orphans.is_empty() {
            return;
        }
        let late = Instant::now() >= deadline;
        for pid in orphans {
            let pid = Pid::from_raw(pid as i32);
            if late {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                let _ = waitpid(pid, None);
            } else {
                // Reaps it if it has exited; otherwise the next round.
                let _ = waitpid(pid, Some(WaitPidFlag::WNOHANG));
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
