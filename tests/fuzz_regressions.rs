//! Replays every input kept in `fuzz/regressions/<target>/` (minimized
//! crashers and seeds) through the fuzz harnesses, so a fixed crash stays
//! fixed under a plain `cargo test`.

#[path = "../fuzz/src/lib.rs"]
#[allow(unreachable_pub)] // the fuzz crate's public harnesses, included here
mod harness;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("regressions folder") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "md") {
            continue;
        }
        let data = std::fs::read(&path).expect("read input");
        eprintln!("replaying {}", path.display());
        run(&data);
        n += 1;
    }
    assert!(n > 0, "no inputs in {}", dir.display());
}

#[test]
fn ops_regressions() {
    replay("ops", harness::run_ops);
}

#[test]
fn segment_regressions() {
    replay("segment", harness::run_segment);
}

#[test]
fn wire_regressions() {
    replay("wire", harness::run_wire);
}
