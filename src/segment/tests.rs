use super::*;
use std::io::Write;

fn spec(kind: Kind, payload_len: u64) -> Spec {
    Spec {
        kind,
        ty: TypeFingerprint::of::<u64>(),
        payload_len,
        params: [7, 0, 0, 0],
    }
}

fn named(prefix: &str) -> Placement {
    Placement {
        name: Some(unique_name(prefix)),
        persist: false,
    }
}

fn shm_file(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("/dev/shm/{}{name}", sys::shm::NAME_PREFIX))
}

#[test]
fn create_open_roundtrip() {
    let place = named("seg-rt");
    let name = place.name.clone().unwrap();
    let seg = Segment::create(&spec(Kind::Value, 64), &place, |s| {
        s.view::<AtomicU64>(0)?.store(42, Ordering::Relaxed);
        Ok(())
    })
    .unwrap();
    let other = Segment::open(&name, Kind::Value, &TypeFingerprint::of::<u64>()).unwrap();
    assert_eq!(other.param(0), 7);
    assert_eq!(other.header().type_name(), "u64");
    assert_eq!(
        other.view::<AtomicU64>(0).unwrap().load(Ordering::Relaxed),
        42
    );
    assert_eq!(other.payload_len(), 64);
    assert_eq!(
        seg.header()
            .creator_pid
            .load(std::sync::atomic::Ordering::Relaxed),
        std::process::id()
    );
    drop(other);
    assert!(shm_file(&name).exists());
    drop(seg);
    assert!(!shm_file(&name).exists(), "creator's last handle unlinks");
}

#[test]
fn persist_keeps_name_until_unlink() {
    let mut place = named("seg-persist");
    place.persist = true;
    let name = place.name.clone().unwrap();
    drop(Segment::create(&spec(Kind::Lock, 8), &place, |_| Ok(())).unwrap());
    assert!(shm_file(&name).exists());
    unlink(&name).unwrap();
    assert!(!shm_file(&name).exists());
    let e = unlink(&name).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOENT), "{e}");
}

#[test]
fn duplicate_name_is_refused() {
    let place = named("seg-dup");
    let _a = Segment::create(&spec(Kind::Lock, 8), &place, |_| Ok(())).unwrap();
    let e = Segment::create(&spec(Kind::Lock, 8), &place, |_| Ok(())).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EEXIST), "{e}");
}

#[test]
fn missing_name_is_io_error() {
    let e = Segment::open(
        &unique_name("seg-missing"),
        Kind::Lock,
        &TypeFingerprint::none(),
    )
    .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOENT), "{e}");
    assert!(e.to_string().contains("opening named segment"), "{e}");
}

#[test]
fn bad_names_are_rejected() {
    for n in ["", "../etc", "a/b"] {
        let e = Segment::open(n, Kind::Lock, &TypeFingerprint::none()).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    }
}

#[test]
fn other_kind_or_type_is_incompatible() {
    let place = named("seg-kind");
    let name = place.name.clone().unwrap();
    let _seg = Segment::create(&spec(Kind::Value, 8), &place, |_| Ok(())).unwrap();
    let e = Segment::open(&name, Kind::Queue, &TypeFingerprint::of::<u64>()).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::Incompatible { .. }), "{msg}");
    assert!(
        msg.contains("expected a queue") && msg.contains("found a value"),
        "{msg}"
    );
    let e = Segment::open(&name, Kind::Value, &TypeFingerprint::of::<u32>()).unwrap_err();
    assert!(matches!(e, Error::Incompatible { .. }), "{e}");
    assert!(e.to_string().contains("u32"), "{e}");
}

/// Writes `bytes` as the named segment file, as a hostile or foreign process could.
fn write_raw(name: &str, bytes: &[u8]) -> RawFile {
    let path = shm_file(name);
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(bytes).unwrap();
    RawFile(path)
}

struct RawFile(std::path::PathBuf);
impl Drop for RawFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn valid_header_bytes(payload: usize) -> Vec<u8> {
    let place = named("seg-img");
    let seg = Segment::create(&spec(Kind::Value, payload as u64), &place, |_| Ok(())).unwrap();
    // SAFETY: the mapping has HEADER_LEN + payload bytes and nobody writes it now.
    unsafe { std::slice::from_raw_parts(seg.inner.map.as_ptr(), HEADER_LEN + payload).to_vec() }
}

fn open_raw(bytes: &[u8]) -> Error {
    let name = unique_name("seg-raw");
    let _f = write_raw(&name, bytes);
    Segment::open(&name, Kind::Value, &TypeFingerprint::of::<u64>()).unwrap_err()
}

#[test]
fn truncated_file_is_corrupt() {
    let e = open_raw(&[0u8; 10]);
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("file length"), "{e}");
    let img = valid_header_bytes(64);
    let e = open_raw(&img[..HEADER_LEN + 8]);
    assert!(e.to_string().contains("total length"), "{e}");
}

#[test]
fn garbage_is_corrupt() {
    let e = open_raw(&[0xAB; 256]);
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("magic"), "{e}");
    let mut img = valid_header_bytes(8);
    img[16..20].copy_from_slice(&0xdead_beef_u32.to_le_bytes());
    let e = open_raw(&img);
    assert!(e.to_string().contains("init state"), "{e}");
    let mut img = valid_header_bytes(8);
    img[12..16].copy_from_slice(&999u32.to_le_bytes());
    let e = open_raw(&img);
    assert!(e.to_string().contains("unknown kind 999"), "{e}");
    let mut img = valid_header_bytes(8);
    img[8..12].copy_from_slice(&77u32.to_le_bytes());
    let e = open_raw(&img);
    assert!(matches!(e, Error::Incompatible { .. }), "{e}");
    assert!(e.to_string().contains("layout version 77"), "{e}");
}

#[test]
fn view_is_bounds_checked() {
    let seg = Segment::create(&spec(Kind::Value, 16), &Placement::default(), |_| Ok(())).unwrap();
    assert!(matches!(
        seg.view::<AtomicU32>(2),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(seg.view::<AtomicU64>(8).is_ok());
    assert!(matches!(
        seg.view::<AtomicU64>(16),
        Err(Error::Corrupt { .. })
    ));
    assert!(matches!(
        seg.view_slice::<AtomicU64>(0, usize::MAX),
        Err(Error::Corrupt { .. })
    ));
}

#[test]
fn anonymous_handles_travel_only_in_a_scope() {
    let seg = Segment::create(&spec(Kind::Value, 8), &Placement::default(), |s| {
        s.view::<AtomicU64>(0)?.store(5, Ordering::Relaxed);
        Ok(())
    })
    .unwrap();
    let e = seg.to_wire().unwrap_err();
    assert!(e.to_string().contains("anonymous value"), "{e}");
    let (wire, fds) = transfer::export_scope(|| seg.to_wire().unwrap());
    assert_eq!(wire, Wire::Inherited(0));
    assert_eq!(fds.len(), 1);
    let back = transfer::import_scope(fds, || {
        Segment::from_wire(wire.clone(), Kind::Value, &TypeFingerprint::of::<u64>())
    })
    .unwrap();
    assert_eq!(
        back.view::<AtomicU64>(0).unwrap().load(Ordering::Relaxed),
        5
    );
    let e = Segment::from_wire(
        Wire::Inherited(0),
        Kind::Value,
        &TypeFingerprint::of::<u64>(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("launched with shmproc"), "{e}");
    let e = transfer::import_scope(Vec::new(), || {
        Segment::from_wire(
            Wire::Inherited(3),
            Kind::Value,
            &TypeFingerprint::of::<u64>(),
        )
    })
    .unwrap_err();
    assert!(e.to_string().contains("does not exist"), "{e}");
}
