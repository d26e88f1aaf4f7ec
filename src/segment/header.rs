//! The header every segment starts with, and what it identifies.
//!
//! Layout (256 bytes, `#[repr(C)]`, every field an atomic so that reading a
//! header a hostile peer is scribbling on is a race on values, never UB):
//!
//! | offset | field           | meaning                                          |
//! |-------:|-----------------|--------------------------------------------------|
//! |      0 | `magic`         | [`MAGIC`] (`"SHMPROC\0"` little-endian)           |
//! |      8 | `version`       | [`LAYOUT_VERSION`]                               |
//! |     12 | `kind`          | [`Kind`] of object                               |
//! |     16 | `init`          | 0 while the creator initialises, [`INIT_READY`] after |
//! |     20 | `type_size`     | `size_of::<T>()` of the element type             |
//! |     24 | `type_align`    | `align_of::<T>()`                                |
//! |     28 | `flags`         | reserved, 0                                      |
//! |     32 | `type_hash`     | FNV-1a of `type_name::<T>()`                     |
//! |     40 | `total_len`     | header + payload bytes = the file's size         |
//! |     48 | `creator_pid`   | pid of the creating process                      |
//! |     52 | `reserved`      | 0                                                |
//! |     56 | `creator_start` | start time of the creator (pid-reuse check)      |
//! |     64 | `params[0..4]`  | kind-specific parameters (capacity, length, ...) |
//! |     96 | `type_name`     | first 32 bytes of `type_name::<T>()`, for tools   |
//! |    128 | `counters[0..16]` | statistics bumped on slow paths (see [`crate::segment::counters`]) |
//!
//! The payload starts at [`HEADER_LEN`]. See `docs/protocols/segment.md`.

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64};

/// `"SHMPROC\0"` read as a little-endian u64.
///
/// # Examples
/// ```
/// assert_eq!(&shmproc::segment::MAGIC.to_le_bytes(), b"SHMPROC\0");
/// ```
pub const MAGIC: u64 = u64::from_le_bytes(*b"SHMPROC\0");
/// Bumped whenever any shared layout changes incompatibly (2: the counters
/// block made the header 256 bytes; 3: a barrier's party records and round
/// outcomes).
///
/// # Examples
/// ```
/// assert_eq!(shmproc::segment::LAYOUT_VERSION, 3);
/// ```
pub const LAYOUT_VERSION: u32 = 3;
/// The `init` word once the creator has finished initialising.
///
/// # Examples
/// ```
/// assert_eq!(&shmproc::segment::INIT_READY.to_be_bytes(), b"REDY");
/// ```
pub const INIT_READY: u32 = 0x5245_4459; // "REDY"
/// Size of the header; the payload starts here (four cache lines: two of
/// identity, two of counters, so counter updates never share a line with the
/// payload's hot words). A power of two: the payload is aligned to it.
///
/// # Examples
/// ```
/// assert_eq!(shmproc::segment::HEADER_LEN, 256);
/// ```
pub const HEADER_LEN: usize = 256;
/// Words (8 bytes each) of the element type's name kept in the header.
///
/// # Examples
/// ```
/// assert_eq!(shmproc::segment::header::TYPE_NAME_WORDS * 8, 32); // bytes of the name kept
/// ```
pub const TYPE_NAME_WORDS: usize = 4;
/// How many kind-specific parameters the header carries.
///
/// # Examples
/// ```
/// assert_eq!(shmproc::segment::header::PARAMS, 4);
/// ```
pub const PARAMS: usize = 4;
/// How many statistics counters the header carries.
///
/// # Examples
/// ```
/// assert_eq!(shmproc::segment::COUNTERS, 16);
/// ```
pub const COUNTERS: usize = 16;

/// The segment header. All fields are written by the creator before `init` is
/// published and never change afterwards.
///
/// # Examples
/// ```
/// # use shmproc::segment::{Kind, Placement, Segment, Spec, TypeFingerprint};
/// # let spec = Spec { kind: Kind::Value, ty: TypeFingerprint::of::<u64>(), payload_len: 64, params: [1, 2, 3, 4] };
/// # let seg = Segment::create(&spec, &Placement::default(), |_| Ok(()))?;
/// let h = seg.header();
/// assert_eq!(h.type_name(), "u64");
/// assert_eq!(h.counters(), [0; 16]);
/// # Ok::<(), shmproc::Error>(())
/// ```
#[repr(C, align(64))]
#[derive(Debug)]
pub struct Header {
    pub(crate) magic: AtomicU64,
    pub(crate) version: AtomicU32,
    pub(crate) kind: AtomicU32,
    pub(crate) init: AtomicU32,
    pub(crate) type_size: AtomicU32,
    pub(crate) type_align: AtomicU32,
    pub(crate) flags: AtomicU32,
    pub(crate) type_hash: AtomicU64,
    pub(crate) total_len: AtomicU64,
    pub(crate) creator_pid: AtomicU32,
    pub(crate) reserved: AtomicU32,
    pub(crate) creator_start: AtomicU64,
    pub(crate) params: [AtomicU64; PARAMS],
    pub(crate) type_name: [AtomicU64; TYPE_NAME_WORDS],
    /// Statistics, written (Relaxed `fetch_add`) only on slow paths; their
    /// meaning per kind is in [`crate::segment::counters`].
    pub(crate) counters: [AtomicU64; COUNTERS],
}

const _: () = assert!(std::mem::size_of::<Header>() == HEADER_LEN);
const _: () = assert!(HEADER_LEN.is_power_of_two());
const _: () = assert!(std::mem::offset_of!(Header, params) == 64);
const _: () = assert!(std::mem::offset_of!(Header, counters) == 128);

/// What kind of object a segment holds. Stored as a u32; values are part of
/// the layout and never reused.
///
/// # Examples
/// ```
/// use shmproc::segment::Kind;
/// assert_eq!(Kind::Queue.to_string(), "queue");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Kind {
    /// `Lock`
    Lock = 1,
    /// `RLock`
    RLock = 2,
    /// `Semaphore`
    Semaphore = 3,
    /// `BoundedSemaphore`
    BoundedSemaphore = 4,
    /// `Event`
    Event = 5,
    /// `Condition`
    Condition = 6,
    /// `Barrier`
    Barrier = 7,
    /// `Value<T>`
    Value = 8,
    /// `RawValue<T>`
    RawValue = 9,
    /// `Array<T>`
    Array = 10,
    /// `RawArray<T>`
    RawArray = 11,
    /// `Queue<T>`
    Queue = 12,
    /// `JoinableQueue<T>`
    JoinableQueue = 13,
    /// One direction of a `Pipe`
    Pipe = 14,
    /// A `Pool`'s shared state
    Pool = 15,
}

impl Kind {
    /// Every kind, for lookups by number.
    ///
    /// # Examples
    /// ```
    /// assert!(shmproc::segment::Kind::ALL.len() >= 15);
    /// ```
    pub const ALL: [Kind; 15] = [
        Kind::Lock,
        Kind::RLock,
        Kind::Semaphore,
        Kind::BoundedSemaphore,
        Kind::Event,
        Kind::Condition,
        Kind::Barrier,
        Kind::Value,
        Kind::RawValue,
        Kind::Array,
        Kind::RawArray,
        Kind::Queue,
        Kind::JoinableQueue,
        Kind::Pipe,
        Kind::Pool,
    ];

    /// The kind stored as `raw`, if any.
    ///
    /// # Examples
    /// ```
    /// use shmproc::segment::Kind;
    /// assert_eq!(Kind::from_u32(Kind::Lock as u32), Some(Kind::Lock));
    /// assert_eq!(Kind::from_u32(999), None);
    /// ```
    pub fn from_u32(raw: u32) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| *k as u32 == raw)
    }

    /// Lower-case name, as used in messages and by the CLI.
    ///
    /// # Examples
    /// ```
    /// assert_eq!(shmproc::segment::Kind::BoundedSemaphore.name(), "bounded semaphore");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Kind::Lock => "lock",
            Kind::RLock => "rlock",
            Kind::Semaphore => "semaphore",
            Kind::BoundedSemaphore => "bounded semaphore",
            Kind::Event => "event",
            Kind::Condition => "condition",
            Kind::Barrier => "barrier",
            Kind::Value => "value",
            Kind::RawValue => "raw value",
            Kind::Array => "array",
            Kind::RawArray => "raw array",
            Kind::Queue => "queue",
            Kind::JoinableQueue => "joinable queue",
            Kind::Pipe => "pipe",
            Kind::Pool => "pool",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Identifies the element type a segment was created for: size, alignment and
/// a hash of its type name. Two programs built from the same source agree;
/// a type rename or a layout change is caught as `Incompatible`.
///
/// # Examples
/// ```
/// use shmproc::segment::TypeFingerprint;
/// assert_ne!(TypeFingerprint::of::<u32>(), TypeFingerprint::of::<i32>()); // same size, other name
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeFingerprint {
    /// `size_of::<T>()`.
    pub size: u32,
    /// `align_of::<T>()`.
    pub align: u32,
    /// FNV-1a hash of `type_name::<T>()`.
    pub hash: u64,
    /// The type name, for messages (not stored in the segment).
    pub name: &'static str,
}

impl TypeFingerprint {
    /// The fingerprint of `T`.
    ///
    /// # Examples
    /// ```
    /// let f = shmproc::segment::TypeFingerprint::of::<[u16; 3]>();
    /// assert_eq!((f.size, f.align), (6, 2));
    /// ```
    pub fn of<T>() -> Self {
        let name = std::any::type_name::<T>();
        TypeFingerprint {
            size: std::mem::size_of::<T>() as u32,
            align: std::mem::align_of::<T>() as u32,
            hash: fnv1a(name.as_bytes()),
            name,
        }
    }

    /// The fingerprint used by objects with no element type (locks, events...).
    ///
    /// # Examples
    /// ```
    /// assert_eq!(shmproc::segment::TypeFingerprint::none().size, 0);
    /// ```
    pub fn none() -> Self {
        Self::of::<()>()
    }
}

impl Header {
    /// The element type name recorded by the creator (up to 32 bytes; a name cut
    /// inside a UTF-8 sequence or scribbled by a peer is shown lossily).
    ///
    /// # Examples
    /// ```
    /// # use shmproc::segment::{Kind, Placement, Segment, Spec, TypeFingerprint};
    /// # let spec = Spec { kind: Kind::Value, ty: TypeFingerprint::of::<u64>(), payload_len: 64, params: [1, 2, 3, 4] };
    /// # let seg = Segment::create(&spec, &Placement::default(), |_| Ok(()))?;
    /// assert_eq!(seg.header().type_name(), "u64");
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn type_name(&self) -> String {
        let mut bytes = Vec::with_capacity(TYPE_NAME_WORDS * 8);
        for w in &self.type_name {
            // Relaxed: immutable after init; a torn read only garbles a display string.
            bytes.extend_from_slice(&w.load(std::sync::atomic::Ordering::Relaxed).to_le_bytes());
        }
        let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
        String::from_utf8_lossy(&bytes[..end]).into_owned()
    }

    /// A snapshot of the statistics counters (see [`crate::segment::counters`]).
    ///
    /// # Examples
    /// ```
    /// # use shmproc::segment::{Kind, Placement, Segment, Spec, TypeFingerprint};
    /// # let spec = Spec { kind: Kind::Value, ty: TypeFingerprint::of::<u64>(), payload_len: 64, params: [1, 2, 3, 4] };
    /// # let seg = Segment::create(&spec, &Placement::default(), |_| Ok(()))?;
    /// assert_eq!(seg.header().counters()[0], 0);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn counters(&self) -> [u64; COUNTERS] {
        // Relaxed: statistics, each word read on its own; nothing is published.
        std::array::from_fn(|i| self.counters[i].load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Stores the first 32 bytes of `name` (zero-padded).
    pub(crate) fn set_type_name(&self, name: &str) {
        let mut buf = [0u8; TYPE_NAME_WORDS * 8];
        let n = name.len().min(buf.len());
        buf[..n].copy_from_slice(&name.as_bytes()[..n]);
        for (w, chunk) in self.type_name.iter().zip(buf.chunks_exact(8)) {
            let word = u64::from_le_bytes(chunk.try_into().expect("chunks of 8"));
            // Relaxed: published by the Release store of `init`.
            w.store(word, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// 64-bit FNV-1a: tiny, stable across builds and platforms.
///
/// # Examples
/// ```
/// assert_eq!(shmproc::segment::header::fnv1a(b""), 0xcbf2_9ce4_8422_2325);
/// ```
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}
