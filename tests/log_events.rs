//! Lifecycle events go through the `log` facade: silent unless the
//! application installs a logger; with one, segments created, opened and
//! unlinked and processes spawned and exited are reported.

use std::sync::Mutex;
use std::time::Duration;

use shmproc::{Lock, Process};

/// Keeps every record's text.
struct Capture(Mutex<Vec<String>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, r: &log::Record<'_>) {
        self.0
            .lock()
            .unwrap()
            .push(format!("{} {}", r.level(), r.args()));
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

/// Fails, so the exit code is non-zero (1).
fn quick_fail(_: ()) -> Result<(), String> {
    Err("on purpose".into())
}

#[test]
fn lifecycle_events_reach_an_installed_logger() {
    shmproc::init();
    log::set_logger(&CAPTURE).unwrap();
    log::set_max_level(log::LevelFilter::Debug);

    let name = shmproc::segment::unique_name("log-ev");
    let lock = Lock::builder().name(&name).create().unwrap();
    let other = Lock::open(&name).unwrap();
    drop(other);
    drop(lock);
    let p = Process::spawn(quick_fail, ()).unwrap();
    assert_eq!(p.join_timeout(Duration::from_secs(60)).unwrap(), 1);
    let pid = p.pid();

    let seen = CAPTURE.0.lock().unwrap().clone();
    let has = |want: &str| seen.iter().any(|l| l.contains(want));
    assert!(has(&format!("created lock segment {name}")), "{seen:#?}");
    assert!(has(&format!("opened lock segment {name}")), "{seen:#?}");
    assert!(has(&format!("unlinked named segment {name}")), "{seen:#?}");
    assert!(has(&format!("spawned process {}", p.name())), "{seen:#?}");
    assert!(has(&format!("(pid {pid}) exited with 1")), "{seen:#?}");
    assert!(!std::path::Path::new(&format!("/dev/shm/shmproc.{name}")).exists());
}
