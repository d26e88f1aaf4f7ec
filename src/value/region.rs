//! The segment layout shared by `Value`, `Array`, `RawValue` and `RawArray`:
//! an optional robust lock, then `len` elements of a `Pod` type.
//!
//! | payload offset | content |
//! |---------------:|---------|
//! | 0              | `RobustState` (16 bytes; locked kinds only) |
//! | `data_offset`  | `len` × `T`, 16-byte aligned at least |
//!
//! Header params: `[0]` element count, `[1]` data offset, `[2]` element size.
//! On open, the element type is checked by the header's fingerprint
//! (`Incompatible`), then the params against each other and the payload length
//! (`Corrupt`), before any element is touched.

use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use bytemuck::Pod;

use crate::error::{Error, Result};
use crate::segment::{Kind, Placement, Segment, TypeFingerprint, HEADER_LEN};
use crate::sync::lock::create_segment;
use crate::sync::robust::RobustState;

/// Largest element alignment supported: the payload starts `HEADER_LEN` bytes
/// into a page-aligned mapping, so it is aligned to `HEADER_LEN`.
pub(crate) const MAX_ALIGN: usize = HEADER_LEN;
/// Data is aligned to at least this, so integer atomics of any width fit.
const MIN_DATA_ALIGN: usize = 16;

/// Offset of the data and payload length for `len` elements of `T`.
fn layout<T>(locked: bool, len: usize) -> Result<(usize, usize)> {
    let align = std::mem::align_of::<T>();
    if align > MAX_ALIGN {
        return Err(Error::invalid(
            "element alignment",
            format!("at most {MAX_ALIGN}"),
            align,
        ));
    }
    let lock_len = if locked {
        std::mem::size_of::<RobustState>()
    } else {
        0
    };
    let data_align = align.max(MIN_DATA_ALIGN);
    let data_offset = lock_len.div_ceil(data_align) * data_align;
    let payload = len
        .checked_mul(std::mem::size_of::<T>())
        .and_then(|n| n.checked_add(data_offset))
        .ok_or_else(|| Error::invalid("element count", "a size below 2^64 bytes", len))?;
    Ok((data_offset, payload))
}

/// `len` elements of `T` in a segment, with the lock before them if `locked`.
pub(crate) struct Region<T> {
    seg: Segment,
    lock: Option<NonNull<RobustState>>,
    data: NonNull<T>,
    len: usize,
    _t: PhantomData<T>,
}

impl<T> Clone for Region<T> {
    fn clone(&self) -> Self {
        Region {
            seg: self.seg.clone(),
            lock: self.lock,
            data: self.data,
            len: self.len,
            _t: PhantomData,
        }
    }
}

// SAFETY: the pointers point into the mapping `seg` keeps alive; elements are
// `Pod` (plain bytes, no pointers or drop glue), only copied in and out under
// the lock or by atomic word copies, so any thread may do so.
unsafe impl<T: Pod> Send for Region<T> {}
// SAFETY: as for Send: `&Region` hands out no `&T` without the lock.
unsafe impl<T: Pod> Sync for Region<T> {}

impl<T> Region<T> {
    /// The segment.
    pub(crate) fn segment(&self) -> &Segment {
        &self.seg
    }

    /// The element count.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl<T: Pod> Region<T> {
    /// Creates a segment of `kind` holding `init` (or `len` zeroed elements).
    pub(crate) fn create(
        kind: Kind,
        locked: bool,
        init: Option<&[T]>,
        len: usize,
        place: &Placement,
    ) -> Result<Self> {
        let (data_offset, payload) = layout::<T>(locked, len)?;
        let params = [
            len as u64,
            data_offset as u64,
            std::mem::size_of::<T>() as u64,
            0,
        ];
        let seg = create_segment(
            kind,
            TypeFingerprint::of::<T>(),
            payload,
            params,
            place,
            |seg| {
                if let Some(init) = init {
                    let bytes: &[u8] = bytemuck::cast_slice(init);
                    // SAFETY:
                    // - the payload has `data_offset + len * size_of::<T>()` bytes
                    //   (created just now with that length), so the range is in bounds;
                    // - nobody else can reach the segment before it is published.
                    unsafe { store_bytes(seg.payload_ptr().add(data_offset), bytes) };
                }
                Ok(())
            },
        )?;
        Self::from_segment(seg, locked)
    }

    /// Checks the params of an opened segment and locates the lock and data.
    pub(crate) fn from_segment(seg: Segment, locked: bool) -> Result<Self> {
        let corrupt = |what: &str, expected: String, found: String| Error::Corrupt {
            segment: seg.label(),
            what: what.into(),
            expected,
            found,
        };
        let size = seg.param(2);
        if size != std::mem::size_of::<T>() as u64 {
            return Err(corrupt(
                "element size (param 2)",
                std::mem::size_of::<T>().to_string(),
                size.to_string(),
            ));
        }
        let len = usize::try_from(seg.param(0)).map_err(|_| {
            corrupt(
                "element count",
                "below 2^64".into(),
                seg.param(0).to_string(),
            )
        })?;
        let (data_offset, payload) = layout::<T>(locked, len)?;
        if seg.param(1) != data_offset as u64 {
            return Err(corrupt(
                "data offset (param 1)",
                data_offset.to_string(),
                seg.param(1).to_string(),
            ));
        }
        if seg.payload_len() != payload {
            return Err(corrupt(
                "payload length",
                format!("{payload} bytes for {len} elements"),
                format!("{} bytes", seg.payload_len()),
            ));
        }
        let lock = if locked {
            Some(NonNull::from(seg.view::<RobustState>(0)?))
        } else {
            None
        };
        let addr = seg.payload_ptr().wrapping_add(data_offset);
        debug_assert_eq!(addr as usize % std::mem::align_of::<T>(), 0);
        let data = NonNull::new(addr.cast::<T>())
            .ok_or_else(|| corrupt("data pointer", "non-null".into(), "null".into()))?;
        Ok(Region {
            seg,
            lock,
            data,
            len,
            _t: PhantomData,
        })
    }

    /// The robust lock (locked kinds only; `None` for raw ones).
    pub(crate) fn lock(&self) -> Option<&RobustState> {
        // SAFETY:
        // - the pointer came from `Segment::view` (bounds and alignment checked);
        // - `self.seg` keeps the mapping alive as long as `&self`;
        // - RobustState is ShmSafe (atomics only).
        self.lock.map(|p| unsafe { p.as_ref() })
    }

    /// Pointer to element 0; `len` elements follow, in bounds and aligned.
    pub(crate) fn data(&self) -> NonNull<T> {
        self.data
    }

    /// Reads element `i` with relaxed atomic word loads (may tear between words).
    pub(crate) fn load(&self, i: usize) -> Option<T> {
        if i >= self.len {
            return None;
        }
        let mut v = T::zeroed();
        // SAFETY:
        // - `i < len`, so element `i` lies inside the validated data range;
        // - the mapping lives as long as `&self`;
        // - every shared access to these bytes by us is atomic.
        unsafe {
            load_bytes(
                self.data.as_ptr().add(i).cast::<u8>(),
                bytemuck::bytes_of_mut(&mut v),
            )
        };
        Some(v)
    }

    /// Writes element `i` with relaxed atomic word stores.
    pub(crate) fn store(&self, i: usize, v: T) -> bool {
        if i >= self.len {
            return false;
        }
        // SAFETY: as in `load`.
        unsafe {
            store_bytes(
                self.data.as_ptr().add(i).cast::<u8>(),
                bytemuck::bytes_of(&v),
            )
        };
        true
    }

    /// Reads every element (relaxed atomic words).
    pub(crate) fn load_all(&self) -> Vec<T> {
        let mut out = vec![T::zeroed(); self.len];
        // SAFETY: the data range holds `len` elements (validated), the mapping
        // lives as long as `&self`, and our shared accesses are atomic.
        unsafe {
            load_bytes(
                self.data.as_ptr().cast::<u8>(),
                bytemuck::cast_slice_mut(&mut out),
            )
        };
        out
    }

    /// Writes every element from `src` (`src.len() == len`, checked by callers).
    pub(crate) fn store_all(&self, src: &[T]) {
        debug_assert_eq!(src.len(), self.len);
        let n = src.len().min(self.len);
        // SAFETY: at most `len` elements are written into the validated range.
        unsafe {
            store_bytes(
                self.data.as_ptr().cast::<u8>(),
                bytemuck::cast_slice(&src[..n]),
            )
        };
    }
}

/// Copies `dst.len()` bytes out of shared memory at `src` with relaxed atomic
/// loads: 8-byte words where aligned, single bytes elsewhere.
///
/// # Safety
/// - `src..src + dst.len()` is inside a live shared mapping;
/// - every concurrent access to those bytes by this program is atomic.
unsafe fn load_bytes(src: *const u8, dst: &mut [u8]) {
    let mut i = 0;
    while i < dst.len() {
        let p = src.wrapping_add(i);
        if (p as usize) % 8 == 0 && dst.len() - i >= 8 {
            // SAFETY: `p` is 8-aligned with 8 bytes in range (caller's bounds);
            // the mapping outlives the call; accesses are atomic (caller).
            let w = unsafe { AtomicU64::from_ptr(p as *mut u64) }.load(Ordering::Relaxed);
            dst[i..i + 8].copy_from_slice(&w.to_ne_bytes());
            i += 8;
        } else {
            // SAFETY: one byte in range; as above.
            dst[i] = unsafe { AtomicU8::from_ptr(p as *mut u8) }.load(Ordering::Relaxed);
            i += 1;
        }
    }
}

/// Copies `src` into shared memory at `dst` with relaxed atomic stores.
///
/// # Safety
/// As [`load_bytes`], for `dst..dst + src.len()`.
unsafe fn store_bytes(dst: *mut u8, src: &[u8]) {
    let mut i = 0;
    while i < src.len() {
        let p = dst.wrapping_add(i);
        if (p as usize) % 8 == 0 && src.len() - i >= 8 {
            let mut w = [0u8; 8];
            w.copy_from_slice(&src[i..i + 8]);
            // SAFETY: `p` is 8-aligned with 8 bytes in range; see `load_bytes`.
            unsafe { AtomicU64::from_ptr(p.cast::<u64>()) }
                .store(u64::from_ne_bytes(w), Ordering::Relaxed);
            i += 8;
        } else {
            // SAFETY: one byte in range; see `load_bytes`.
            unsafe { AtomicU8::from_ptr(p) }.store(src[i], Ordering::Relaxed);
            i += 1;
        }
    }
}
