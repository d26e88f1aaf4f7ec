//! The `shmproc` command-line tool end to end: the built binary against named
//! segments this test creates, including one whose creator (a child launched
//! with `shmproc::Process`) is killed with SIGKILL. Every segment is removed
//! and every child reaped on every exit path (guards); every wait is bounded.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{counter, join, sigkill, wait_for, wait_until, Reaper, WATCHDOG};
use shmproc::{Event, Lock, PodQueue, Process, RawValue, Semaphore, Value};

/// Output of one run of the tool.
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs the `shmproc` binary with `args`, killing it after the watchdog.
fn cli(args: &[&str]) -> Out {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shmproc"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running the shmproc binary");
    let deadline = Instant::now() + WATCHDOG;
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("watchdog: shmproc {args:?} did not finish");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().expect("collecting output");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The `ls` row of segment `name`, split into columns (the last, STATE, may
/// contain spaces: it is everything after the seventh column).
fn row(ls: &str, name: &str) -> Option<Vec<String>> {
    ls.lines().skip(1).find_map(|l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        (cols.first() == Some(&name)).then(|| {
            let mut v: Vec<String> = cols[..7.min(cols.len())]
                .iter()
                .map(|s| s.to_string())
                .collect();
            v.push(cols.get(7..).map(|s| s.join(" ")).unwrap_or_default());
            v
        })
    })
}

/// The value of `key:` in `inspect` output.
fn field(out: &str, key: &str) -> Option<String> {
    out.lines().find_map(|l| {
        l.strip_prefix(key)
            .and_then(|r| r.strip_prefix(':'))
            .map(|v| v.trim().to_owned())
    })
}

/// Unlinks the named segments (and raw files) when dropped, even on panic.
struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = std::fs::remove_file(shm_path(n));
        }
    }
}

fn shm_path(name: &str) -> PathBuf {
    PathBuf::from(format!("/dev/shm/shmproc.{name}"))
}

fn unique(prefix: &str) -> String {
    common::unique_name(prefix)
}

/// Creates a named Value and keeps it until killed (it never drops it).
fn create_and_hang((name, ready): (String, RawValue<u32>)) {
    let v = Value::builder().name(&name).value(7u64).create().unwrap();
    ready.store(1);
    std::thread::sleep(Duration::from_secs(120));
    drop(v);
}

#[test]
fn ls_and_inspect_show_live_objects() {
    shmproc::init();
    let (lname, sname, vname, ename) = (
        unique("cli-lock"),
        unique("cli-sem"),
        unique("cli-val"),
        unique("cli-ev"),
    );
    let _c = Cleanup(vec![
        lname.clone(),
        sname.clone(),
        vname.clone(),
        ename.clone(),
    ]);
    let lock = Lock::builder().name(&lname).create().unwrap();
    let _sem = Semaphore::builder().name(&sname).value(3).create().unwrap();
    let _val = Value::builder().name(&vname).value(42u64).create().unwrap();
    let ev = Event::builder().name(&ename).create().unwrap();
    ev.set();

    let held = lock.acquire().unwrap();
    // A second thread blocks on the held lock until its timeout: one blocked acquire.
    std::thread::scope(|s| {
        s.spawn(|| {
            assert!(lock.acquire_timeout(Duration::from_millis(20)).is_err());
        });
    });

    let out = cli(&["ls"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.starts_with("NAME"), "{}", out.stdout);
    let me = std::process::id().to_string();
    let r = row(&out.stdout, &lname).unwrap_or_else(|| panic!("{lname} in {}", out.stdout));
    assert_eq!(&r[1..7], ["lock", "()", "272", &me, "yes", &me], "{r:?}");
    assert!(r[7].starts_with("held by thread"), "{r:?}");
    let r = row(&out.stdout, &sname).unwrap();
    assert_eq!(
        (r[1].as_str(), r[7].as_str()),
        ("semaphore", "value 3"),
        "{r:?}"
    );
    let r = row(&out.stdout, &vname).unwrap();
    assert_eq!((r[1].as_str(), r[2].as_str()), ("value", "u64"), "{r:?}");
    assert_eq!(r[7], "data [42]", "{r:?}");
    let r = row(&out.stdout, &ename).unwrap();
    assert_eq!((r[1].as_str(), r[7].as_str()), ("event", "set"), "{r:?}");

    let out = cli(&["inspect", &lname]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let o = &out.stdout;
    assert_eq!(field(o, "status").as_deref(), Some("ready"), "{o}");
    assert_eq!(field(o, "kind").as_deref(), Some("lock"), "{o}");
    assert_eq!(
        field(o, "creator"),
        Some(format!("pid {me} (alive)")),
        "{o}"
    );
    assert!(
        field(o, "lock").unwrap().starts_with("held by thread"),
        "{o}"
    );
    assert_eq!(field(o, "blocked acquires").as_deref(), Some("1"), "{o}");
    assert_eq!(
        field(o, "owner-died recoveries").as_deref(),
        Some("0"),
        "{o}"
    );
    drop(held);
    let out = cli(&["inspect", &lname]);
    assert_eq!(
        field(&out.stdout, "lock").as_deref(),
        Some("free"),
        "{}",
        out.stdout
    );

    let out = cli(&["inspect", &vname]);
    let o = &out.stdout;
    assert_eq!(
        field(o, "element type").as_deref(),
        Some("u64 (8 bytes)"),
        "{o}"
    );
    assert_eq!(field(o, "data").as_deref(), Some("[42]"), "{o}");

    let out = cli(&["inspect", &unique("cli-absent")]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("No such file"), "{}", out.stderr);
}

#[test]
fn killed_creator_is_cleaned_once_nobody_maps_it() {
    shmproc::init();
    let prefix = unique("cli-clean");
    let name = format!("{prefix}-val");
    let _c = Cleanup(vec![name.clone()]);
    let mut reaper = Reaper::new();
    let ready = RawValue::new(0u32).unwrap();
    let child =
        reaper.watch(Process::spawn(create_and_hang, (name.clone(), ready.clone())).unwrap());
    wait_for(&ready, 1);
    let pid = child.pid().to_string();

    let out = cli(&["ls"]);
    let r = row(&out.stdout, &name).unwrap_or_else(|| panic!("{name} in {}", out.stdout));
    assert_eq!(&r[4..7], [pid.as_str(), "yes", pid.as_str()], "{r:?}");
    let out = cli(&["clean", "--prefix", &prefix]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains(&format!("kept {name}")),
        "{}",
        out.stdout
    );
    assert!(shm_path(&name).exists());

    sigkill(child.pid());
    assert_eq!(join(&child), -9);
    let out = cli(&["ls"]);
    let r = row(&out.stdout, &name).unwrap();
    assert_eq!(&r[4..7], [pid.as_str(), "no", "-"], "{r:?}");
    let out = cli(&["inspect", &name]);
    assert_eq!(
        field(&out.stdout, "creator"),
        Some(format!("pid {pid} (dead)")),
        "{}",
        out.stdout
    );

    // While this process maps it, it stays.
    let v = Value::<u64>::open(&name).unwrap();
    assert_eq!(v.get(), 7);
    let out = cli(&["clean", "--prefix", &prefix]);
    let me = std::process::id();
    assert!(
        out.stdout
            .contains(&format!("kept {name}: in use by pid {me}")),
        "{}",
        out.stdout
    );
    assert!(shm_path(&name).exists());
    drop(v);

    let out = cli(&["clean", "--dry-run", "--prefix", &prefix]);
    assert!(
        out.stdout.contains(&format!("would remove {name}")),
        "{}",
        out.stdout
    );
    assert!(shm_path(&name).exists(), "dry run removes nothing");
    let out = cli(&["clean", "--prefix", &prefix]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains(&format!("removed {name}")),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("1 removed"), "{}", out.stdout);
    assert!(!shm_path(&name).exists());
}

#[test]
fn rm_removes_and_reports_missing() {
    let name = unique("cli-rm");
    let _c = Cleanup(vec![name.clone()]);
    drop(Lock::builder().name(&name).persist(true).create().unwrap());
    assert!(shm_path(&name).exists(), "persisted");
    let out = cli(&["rm", &name]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout.trim(), format!("removed {name}"));
    assert!(!shm_path(&name).exists());
    let out = cli(&["rm", &name]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains(&format!("cannot remove {name}")),
        "{}",
        out.stderr
    );
    let out = cli(&["rm", "../../etc/passwd"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("without '/'"), "{}", out.stderr);
}

#[test]
fn garbage_files_are_shown_as_corrupt_and_cleaned_only_on_request() {
    let prefix = unique("cli-junk");
    let (short, noise, badkind) = (
        format!("{prefix}-short"),
        format!("{prefix}-noise"),
        format!("{prefix}-kind"),
    );
    let _c = Cleanup(vec![short.clone(), noise.clone(), badkind.clone()]);
    let write = |name: &str, bytes: &[u8]| {
        std::fs::File::create(shm_path(name))
            .unwrap()
            .write_all(bytes)
            .unwrap();
    };
    write(&short, b"not a segment");
    write(&noise, &[0x5a; 4096]);
    // A real header with the kind word scribbled.
    let lname = format!("{prefix}-src");
    let _c2 = Cleanup(vec![lname.clone()]);
    let lock = Lock::builder().name(&lname).create().unwrap();
    let mut img = std::fs::read(shm_path(&lname)).unwrap();
    drop(lock);
    img[12..16].copy_from_slice(&999u32.to_le_bytes());
    write(&badkind, &img);

    let out = cli(&["ls"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r = row(&out.stdout, &short).unwrap();
    assert!(r[7].starts_with("corrupt: file is 13 bytes"), "{r:?}");
    let r = row(&out.stdout, &noise).unwrap();
    assert!(r[7].starts_with("corrupt: magic"), "{r:?}");
    let r = row(&out.stdout, &badkind).unwrap();
    assert_eq!(r[7], "corrupt: unknown kind 999", "{r:?}");
    for n in [&short, &noise, &badkind] {
        let out = cli(&["inspect", n]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let status = field(&out.stdout, "status").unwrap_or_default();
        assert!(status.starts_with("corrupt"), "{}", out.stdout);
    }

    let out = cli(&["clean", "--prefix", &prefix]);
    assert!(out.stdout.contains("0 removed"), "{}", out.stdout);
    assert!(shm_path(&short).exists() && shm_path(&noise).exists());
    let out = cli(&["clean", "--corrupt", "--prefix", &prefix]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!shm_path(&short).exists() && !shm_path(&noise).exists());
    // Its header names this (live) process as creator: kept even with --corrupt.
    assert!(shm_path(&badkind).exists(), "{}", out.stdout);
    assert!(
        out.stdout.contains(&format!("kept {badkind}: creator")),
        "{}",
        out.stdout
    );
}

#[test]
fn queue_depth_totals_and_sleeps_are_shown() {
    let name = unique("cli-queue");
    let _c = Cleanup(vec![name.clone()]);
    let q = PodQueue::<u64>::builder()
        .name(&name)
        .maxsize(16)
        .create()
        .unwrap();
    for i in 0..5 {
        q.put(&i).unwrap();
    }
    assert_eq!(q.get().unwrap(), 0);
    assert_eq!(q.get().unwrap(), 1);
    let out = cli(&["ls"]);
    let r = row(&out.stdout, &name).unwrap_or_else(|| panic!("{name} in {}", out.stdout));
    assert_eq!((r[1].as_str(), r[2].as_str()), ("queue", "u64"), "{r:?}");
    assert_eq!(r[7], "depth 3/16", "{r:?}");

    // Empty it, then wait on it: a get that sleeps. A timed get that spent
    // its time preempted in the spin phase times out without sleeping, so
    // repeat until one has slept (the counter is what `inspect` shows).
    for _ in 0..3 {
        q.get().unwrap();
    }
    wait_until("a timed get slept", || {
        assert!(matches!(
            q.get_timeout(Duration::from_millis(30)),
            Err(shmproc::Error::Timeout)
        ));
        counter(&name, "get sleeps (empty)") >= 1
    });
    let out = cli(&["inspect", &name]);
    let o = &out.stdout;
    assert_eq!(field(o, "depth").as_deref(), Some("0/16"), "{o}");
    assert_eq!(field(o, "puts").as_deref(), Some("5"), "{o}");
    assert_eq!(field(o, "gets").as_deref(), Some("5"), "{o}");
    assert_eq!(field(o, "closed").as_deref(), Some("no"), "{o}");
    assert_eq!(field(o, "put sleeps (full)").as_deref(), Some("0"), "{o}");
    let sleeps: u64 = field(o, "get sleeps (empty)").unwrap().parse().unwrap();
    assert!(sleeps >= 1, "{o}");
    assert_eq!(
        field(o, "reclaimed from dead claimers").as_deref(),
        Some("0"),
        "{o}"
    );
    q.close();
    let out = cli(&["inspect", &name]);
    assert_eq!(
        field(&out.stdout, "closed").as_deref(),
        Some("yes"),
        "{}",
        out.stdout
    );
}
