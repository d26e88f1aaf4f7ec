//! One shared-memory region: create, open, validate, map, unlink, transfer.
//!
//! A [`Segment`] is a cheap, clonable handle (an `Arc`) to one mapping. Every
//! shared object (lock, queue, value, ...) owns one segment: a [`Header`]
//! followed by the object's payload. Opening validates the file size and the
//! whole header before any payload byte is touched; see
//! `docs/protocols/segment.md` for the layout and the init protocol.

pub mod counters;
pub(crate) mod header;
pub(crate) mod inspect;
pub(crate) mod name;
pub(crate) mod transfer;

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use memmap2::MmapRaw;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};
use crate::sys::{self, futex};
pub use header::Kind;
pub(crate) use header::{Header, TypeFingerprint, HEADER_LEN, INIT_READY, LAYOUT_VERSION, MAGIC};
#[cfg(test)]
pub(crate) use name::unique_name;
pub use name::unlink;
pub(crate) use transfer::Wire;

/// How long an opener waits for a creator to finish initialising.
const INIT_WAIT: Duration = Duration::from_secs(2);

/// Types that may be viewed in shared memory by reference.
///
/// # Safety
/// Implementors guarantee that:
/// - every bit pattern is a valid value (a peer may have written anything);
/// - all interior mutability is through atomics (several processes access it
///   at once without any lock Rust knows about);
/// - the type holds no pointers, references or `usize`-sized fields whose
///   meaning depends on the process.
pub(crate) unsafe trait ShmSafe: Sync + Sized {}

// SAFETY: atomics of fixed width accept every bit pattern and synchronise
// across processes (they compile to plain lock-free instructions on shared memory).
unsafe impl ShmSafe for AtomicU32 {}
// SAFETY: as for AtomicU32.
unsafe impl ShmSafe for AtomicU64 {}
// SAFETY: an array of ShmSafe elements has no padding beyond theirs and every
// element accepts every bit pattern.
unsafe impl<T: ShmSafe, const N: usize> ShmSafe for [T; N] {}

/// What a new segment is: its kind, element type, payload size and parameters.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    /// The object kind.
    pub kind: Kind,
    /// The element type.
    pub ty: TypeFingerprint,
    /// Payload bytes after the header.
    pub payload_len: u64,
    /// Kind-specific parameters, stored in the header.
    pub params: [u64; header::PARAMS],
}

/// Where a new segment lives.
#[derive(Debug, Clone, Default)]
pub(crate) struct Placement {
    /// `None` for an anonymous segment, else the name (validated).
    pub name: Option<String>,
    /// Keep a named segment after the creator's last handle drops.
    pub persist: bool,
}

/// A handle to one mapped segment. Clones share the mapping.
#[derive(Clone)]
pub(crate) struct Segment {
    inner: Arc<Inner>,
}

struct Inner {
    map: MmapRaw,
    /// Kept for anonymous segments so they can be passed to children.
    fd: Option<OwnedFd>,
    name: Option<String>,
    kind: Kind,
    /// Unlink the name when this (creating) process drops its last handle.
    unlink_on_drop: bool,
    /// The process that created this handle: a forked child must not unlink.
    handle_pid: u32,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.unlink_on_drop && sys::task::pid() == self.handle_pid {
            if let Some(name) = &self.name {
                if sys::shm::unlink_named(name).is_ok() {
                    log::debug!("shmproc: unlinked named segment {name} (creator's last handle)");
                }
            }
        }
    }
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("kind", &self.inner.kind)
            .field("name", &self.inner.name)
            .field("len", &self.inner.map.len())
            .finish()
    }
}

impl Segment {
    /// Creates a segment, runs `init` on it (the payload is zeroed), then
    /// publishes it as ready. A named segment whose name is taken fails with
    /// an `Os` error carrying `EEXIST`.
    pub(crate) fn create(
        spec: &Spec,
        place: &Placement,
        init: impl FnOnce(&Segment) -> Result<()>,
    ) -> Result<Segment> {
        let total = (HEADER_LEN as u64)
            .checked_add(spec.payload_len)
            .ok_or_else(|| Error::invalid("segment size", "below 2^64 bytes", spec.payload_len))?;
        let fd = match &place.name {
            Some(n) => {
                name::validate(n)?;
                sys::shm::create_named(n, total)?
            }
            None => sys::shm::create_anonymous(spec.kind.name(), total)?,
        };
        let map = match sys::shm::map(&fd, total) {
            Ok(m) => m,
            Err(e) => {
                if let Some(n) = &place.name {
                    let _ = sys::shm::unlink_named(n);
                }
                return Err(e);
            }
        };
        let seg = Segment {
            inner: Arc::new(Inner {
                map,
                fd: if place.name.is_none() { Some(fd) } else { None },
                name: place.name.clone(),
                kind: spec.kind,
                unlink_on_drop: place.name.is_some() && !place.persist,
                handle_pid: sys::task::pid(),
            }),
        };
        // From here on, dropping `seg` on an error path unlinks the name.
        let h = seg.header();
        let me = sys::task::current();
        // Relaxed: nothing is visible to openers before the Release store of `init`.
        h.magic.store(MAGIC, Ordering::Relaxed);
        h.version.store(LAYOUT_VERSION, Ordering::Relaxed);
        h.kind.store(spec.kind as u32, Ordering::Relaxed);
        h.type_size.store(spec.ty.size, Ordering::Relaxed);
        h.type_align.store(spec.ty.align, Ordering::Relaxed);
        h.type_hash.store(spec.ty.hash, Ordering::Relaxed);
        h.set_type_name(spec.ty.name);
        h.total_len.store(total, Ordering::Relaxed);
        h.creator_pid.store(sys::task::pid(), Ordering::Relaxed);
        h.creator_start.store(
            sys::task::start_time(sys::task::pid()).unwrap_or(me.start),
            Ordering::Relaxed,
        );
        for (slot, v) in h.params.iter().zip(spec.params) {
            slot.store(v, Ordering::Relaxed);
        }
        init(&seg)?;
        // SYNC POINT: segment-ready. Publishes the header and the payload's
        // initial state to openers, which Acquire-load `init`.
        h.init.store(INIT_READY, Ordering::Release);
        futex::wake_all(&h.init);
        log::debug!(
            "shmproc: created {} segment {} ({} bytes)",
            spec.kind,
            place.name.as_deref().unwrap_or("(anonymous)"),
            total
        );
        Ok(seg)
    }

    /// Opens the named segment `name`, expecting `kind` and element type `ty`.
    pub(crate) fn open(name: &str, kind: Kind, ty: &TypeFingerprint) -> Result<Segment> {
        name::validate(name)?;
        let fd = sys::shm::open_named(name)?;
        Self::from_fd(fd, Some(name.to_owned()), kind, ty)
    }

    /// Maps and validates the segment behind `fd` (anonymous when `name` is None).
    pub(crate) fn from_fd(
        fd: OwnedFd,
        name: Option<String>,
        kind: Kind,
        ty: &TypeFingerprint,
    ) -> Result<Segment> {
        let label = name.clone().unwrap_or_else(|| "anonymous".to_owned());
        let corrupt = |what: &str, expected: String, found: String| Error::Corrupt {
            segment: label.clone(),
            what: what.to_owned(),
            expected,
            found,
        };
        let len = sys::shm::file_len(&fd)?;
        if len < HEADER_LEN as u64 {
            return Err(corrupt(
                "file length",
                format!("at least {HEADER_LEN} bytes"),
                format!("{len} bytes"),
            ));
        }
        let map = sys::shm::map(&fd, len)?;
        let seg = Segment {
            inner: Arc::new(Inner {
                map,
                fd: if name.is_none() { Some(fd) } else { None },
                name,
                kind,
                unlink_on_drop: false,
                handle_pid: sys::task::pid(),
            }),
        };
        seg.validate(len, kind, ty, &corrupt)?;
        log::debug!("shmproc: opened {kind} segment {label} ({len} bytes)");
        Ok(seg)
    }

    fn validate(
        &self,
        file_len: u64,
        kind: Kind,
        ty: &TypeFingerprint,
        corrupt: &dyn Fn(&str, String, String) -> Error,
    ) -> Result<()> {
        let h = self.header();
        let incompatible = |expected: String, found: String| Error::Incompatible {
            segment: self.label(),
            expected,
            found,
        };
        // Relaxed: the magic is checked before waiting so that a file that is
        // not ours fails at once; it is re-read after the Acquire below.
        let magic = h.magic.load(Ordering::Relaxed);
        if magic != MAGIC && magic != 0 {
            return Err(corrupt(
                "magic",
                format!("{MAGIC:#018x}"),
                format!("{magic:#018x}"),
            ));
        }
        let deadline = Instant::now() + INIT_WAIT;
        loop {
            // SYNC POINT: segment-ready (pairs with the creator's Release store).
            let state = h.init.load(Ordering::Acquire);
            match state {
                INIT_READY => break,
                0 => {
                    if futex::wait(&h.init, 0, Some(deadline)) == futex::WaitOutcome::TimedOut
                        && h.init.load(Ordering::Acquire) != INIT_READY
                    {
                        return Err(corrupt(
                            "init state",
                            "ready within 2 s of opening".into(),
                            "still initialising (creator died or stalled?)".into(),
                        ));
                    }
                }
                other => {
                    return Err(corrupt(
                        "init state",
                        format!("{INIT_READY:#x} or 0"),
                        format!("{other:#x}"),
                    ))
                }
            }
        }
        // Relaxed: the Acquire load of `init` above ordered these reads.
        let magic = h.magic.load(Ordering::Relaxed);
        if magic != MAGIC {
            return Err(corrupt(
                "magic",
                format!("{MAGIC:#018x}"),
                format!("{magic:#018x}"),
            ));
        }
        let version = h.version.load(Ordering::Relaxed);
        if version != LAYOUT_VERSION {
            return Err(incompatible(
                format!("layout version {LAYOUT_VERSION}"),
                format!("layout version {version}"),
            ));
        }
        let raw_kind = h.kind.load(Ordering::Relaxed);
        match Kind::from_u32(raw_kind) {
            Some(k) if k == kind => {}
            Some(k) => return Err(incompatible(format!("a {kind}"), format!("a {k}"))),
            None => {
                return Err(corrupt(
                    "kind",
                    format!("a {kind}"),
                    format!("unknown kind {raw_kind}"),
                ))
            }
        }
        let (size, align, hash) = (
            h.type_size.load(Ordering::Relaxed),
            h.type_align.load(Ordering::Relaxed),
            h.type_hash.load(Ordering::Relaxed),
        );
        if (size, align, hash) != (ty.size, ty.align, ty.hash) {
            return Err(incompatible(
                format!(
                    "element type {} (size {}, align {})",
                    ty.name, ty.size, ty.align
                ),
                format!("another element type (size {size}, align {align}, name hash {hash:#x})"),
            ));
        }
        let total = h.total_len.load(Ordering::Relaxed);
        if total != file_len {
            return Err(corrupt(
                "total length",
                format!("{file_len} (the file's size)"),
                total.to_string(),
            ));
        }
        Ok(())
    }

    /// The header at the start of the mapping.
    pub(crate) fn header(&self) -> &Header {
        // SAFETY:
        // - the mapping is at least HEADER_LEN bytes (checked on open; set on create);
        // - mmap returns page-aligned memory, more than Header's 64-byte alignment;
        // - Header is all atomics, valid for every bit pattern (ShmSafe-like), and
        //   the reference lives no longer than `self`, which keeps the mapping.
        unsafe { &*(self.inner.map.as_mut_ptr() as *const Header) }
    }

    /// Kind-specific parameter `i` from the header (untrusted: validate it).
    pub(crate) fn param(&self, i: usize) -> u64 {
        // Relaxed: header fields are immutable after the Acquire of `init`.
        self.header().params[i].load(Ordering::Relaxed)
    }

    /// Payload length in bytes (mapping length minus the header).
    pub(crate) fn payload_len(&self) -> usize {
        self.inner.map.len() - HEADER_LEN
    }

    /// A reference to a `T` at payload offset `offset`, bounds- and
    /// alignment-checked.
    pub(crate) fn view<T: ShmSafe>(&self, offset: usize) -> Result<&T> {
        self.view_slice::<T>(offset, 1).map(|s| &s[0])
    }

    /// A slice of `count` `T`s at payload offset `offset`, bounds- and
    /// alignment-checked.
    pub(crate) fn view_slice<T: ShmSafe>(&self, offset: usize, count: usize) -> Result<&[T]> {
        let size = std::mem::size_of::<T>();
        let end = count
            .checked_mul(size)
            .and_then(|n| n.checked_add(offset))
            .filter(|end| *end <= self.payload_len());
        let Some(_) = end else {
            return Err(Error::Corrupt {
                segment: self.label(),
                what: "payload length".into(),
                expected: format!("room for {count} x {size} bytes at offset {offset}"),
                found: format!("{} payload bytes", self.payload_len()),
            });
        };
        let addr = self.payload_ptr() as usize + offset;
        if addr % std::mem::align_of::<T>() != 0 {
            return Err(Error::invalid(
                "payload offset",
                format!("a multiple of {}", std::mem::align_of::<T>()),
                offset,
            ));
        }
        // SAFETY:
        // - `offset + count * size <= payload_len`, so the range is inside the mapping;
        // - `addr` is aligned for T (checked above);
        // - T: ShmSafe, so any bytes are a valid T and shared mutation is atomic-only;
        // - the slice borrows `self`, which keeps the mapping alive.
        Ok(unsafe { std::slice::from_raw_parts(addr as *const T, count) })
    }

    /// A pointer to the `len` plain bytes at payload offset `offset`,
    /// bounds-checked (for data that protocols move with plain copies: ring
    /// bytes, array elements). Callers synchronise their accesses themselves.
    pub(crate) fn bytes_at(&self, offset: usize, len: usize) -> Result<std::ptr::NonNull<u8>> {
        if offset
            .checked_add(len)
            .is_none_or(|end| end > self.payload_len())
        {
            return Err(Error::Corrupt {
                segment: self.label(),
                what: "payload length".into(),
                expected: format!("room for {len} bytes at offset {offset}"),
                found: format!("{} payload bytes", self.payload_len()),
            });
        }
        // In bounds (checked above), so wrapping_add needs no unsafe.
        Ok(
            std::ptr::NonNull::new(self.payload_ptr().wrapping_add(offset))
                .expect("mapping is non-null"),
        )
    }

    /// Raw pointer to the first payload byte. Callers that write through it must
    /// keep within [`payload_len`](Self::payload_len) and synchronise themselves.
    pub(crate) fn payload_ptr(&self) -> *mut u8 {
        // HEADER_LEN is within the mapping (checked on open and create), so the
        // offset pointer stays in bounds; wrapping_add needs no unsafe.
        self.inner.map.as_mut_ptr().wrapping_add(HEADER_LEN)
    }

    /// The segment's name, if it is named.
    pub(crate) fn name(&self) -> Option<&str> {
        self.inner.name.as_deref()
    }

    /// The kind this handle was created or opened as.
    pub(crate) fn kind(&self) -> Kind {
        self.inner.kind
    }

    /// The name, or `anonymous`, for messages.
    pub(crate) fn label(&self) -> String {
        self.inner
            .name
            .clone()
            .unwrap_or_else(|| "anonymous".into())
    }

    /// The reference this handle serializes to, registering an anonymous
    /// segment's descriptor with the current export scope.
    pub(crate) fn to_wire(&self) -> Result<Wire> {
        if let Some(n) = &self.inner.name {
            return Ok(Wire::Named(n.clone()));
        }
        let fd = self.inner.fd.as_ref().ok_or_else(|| {
            Error::invalid(
                "segment handle",
                "a named segment or an anonymous one with its descriptor",
                "neither",
            )
        })?;
        let dup = sys::shm::dup(fd)?;
        transfer::export_fd(dup).map(Wire::Inherited).ok_or_else(|| {
            Error::invalid(
                "handle to serialize",
                format!(
                    "a named {} (an anonymous one travels only as an argument of Process::spawn or a Pool task)",
                    self.inner.kind
                ),
                format!("an anonymous {}", self.inner.kind),
            )
        })
    }

    /// Opens the segment a [`Wire`] reference names, expecting `kind` and `ty`.
    pub(crate) fn from_wire(wire: Wire, kind: Kind, ty: &TypeFingerprint) -> Result<Segment> {
        match wire {
            Wire::Named(n) => Segment::open(&n, kind, ty),
            Wire::Inherited(slot) => {
                let fd = transfer::import_fd(slot).map_err(|found| {
                    Error::invalid(
                        "inherited segment",
                        "a descriptor passed by the launcher",
                        found,
                    )
                })?;
                if !sys::shm::is_sealed(&fd) {
                    return Err(Error::invalid(
                        "inherited segment",
                        "a sealed shmproc memfd",
                        "an unsealed descriptor",
                    ));
                }
                Segment::from_fd(fd, None, kind, ty)
            }
        }
    }

    /// Serializes this handle (for the `Serialize` impls of shared objects).
    pub(crate) fn serialize_handle<S: Serializer>(
        &self,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        match self.to_wire() {
            Ok(wire) => wire.serialize(s),
            Err(e) => {
                let msg = e.to_string();
                transfer::note_handle_error(e);
                Err(S::Error::custom(msg))
            }
        }
    }

    /// Deserializes a handle of `kind`/`ty` (for the `Deserialize` impls).
    pub(crate) fn deserialize_handle<'de, D: Deserializer<'de>>(
        d: D,
        kind: Kind,
        ty: &TypeFingerprint,
    ) -> std::result::Result<Segment, D::Error> {
        use serde::de::Error as _;
        let wire = Wire::deserialize(d)?;
        Segment::from_wire(wire, kind, ty).map_err(|e| {
            let msg = e.to_string();
            transfer::note_handle_error(e);
            D::Error::custom(msg)
        })
    }
}

#[cfg(test)]
mod tests;
