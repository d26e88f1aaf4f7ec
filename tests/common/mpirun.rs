//! Runs `mpirun` jobs for the MPI tests and bench: output captured, a
//! watchdog that kills the whole job (mpirun, its daemons and ranks share a
//! process group), every process reaped.

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
    let output = reader.join().unwrap_or_default() + &ereader.join().unwrap_or_default();
    Ended { code, output, secs }
}
