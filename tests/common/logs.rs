//! A logger that keeps every record's text, for tests of the crate's `log`
//! events. One per test binary: `log` takes a single logger per process.

use std::sync::Mutex;

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

/// Installs the capturing logger once for this test binary (tests share it).
pub fn capture() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        log::set_logger(&CAPTURE).unwrap();
        log::set_max_level(log::LevelFilter::Debug);
    });
}

/// Every record so far, as `"<level> <text>"`.
pub fn seen() -> Vec<String> {
    capture();
    CAPTURE.0.lock().unwrap().clone()
}
