//! postcard's wire format, written and read by a serde serializer and
//! deserializer of our own that work on contiguous buffers: queue and pipe
//! messages, and the pool's task and result pieces.
//!
//! The bytes are postcard 1.x's, byte for byte (varints, zig-zag signed
//! integers, length-prefixed strings and sequences; the format is in
//! postcard's `spec`), and the errors are `postcard::Error` values: a peer
//! built with the postcard crate reads what we write and the other way
//! round. One difference: values nested more than 128 deep do not decode
//! (`DeserializeBadEncoding`), so that a hostile message for a recursive
//! type cannot overflow the reader's stack. `tests.rs` and the `wire` fuzz target compare both directions with
//! the postcard crate on arbitrary values and bytes.
//!
//! Why not call postcard itself (as we did): its slice flavor copies every
//! varint through a temporary with a variable-length copy (a `memcpy` call
//! per field), and strings are checked by `core::str::from_utf8` byte by
//! byte. For a ~100-byte struct with two strings and ten numbers, encoding
//! here takes about half the instructions and decoding about three quarters
//! (`docs/decisions.md`, "serde codec"); the message costs of a queue are
//! mostly these.

mod de;
mod ser;

#[cfg(test)]
mod tests;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The error type: postcard's, so messages read the same as before.
pub(crate) type Error = postcard::Error;

/// Encodes `value` into the front of `buf`; the encoded bytes.
///
/// # Errors
/// `SerializeBufferFull` when `buf` is too small (its contents are then
/// unspecified), `SerializeSeqLengthUnknown` for a sequence or map of
/// unknown length, or the value's own error.
#[inline]
pub(crate) fn to_slice<'b, T: Serialize + ?Sized>(
    value: &T,
    buf: &'b mut [u8],
) -> Result<&'b mut [u8], Error> {
    let mut w = ser::Writer(ser::SliceOut::new(buf));
    value.serialize(&mut w)?;
    Ok(w.0.into_written())
}

/// Appends the encoding of `value` to `out` (on error, `out` may hold a
/// partial encoding: the caller truncates).
///
/// # Errors
/// As [`to_slice`], never `SerializeBufferFull`.
#[inline]
pub(crate) fn to_extend<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), Error> {
    value.serialize(&mut ser::Writer(ser::VecOut(out)))
}

/// Encodes `value` into a new `Vec`.
///
/// # Errors
/// As [`to_slice`], never `SerializeBufferFull`.
pub(crate) fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    to_extend(value, &mut out)?;
    Ok(out)
}

/// Decodes a `T` from the front of `bytes` (bytes after it are ignored, as
/// `postcard::from_bytes` ignores them).
///
/// # Errors
/// A `Deserialize*` error for bytes that do not encode a `T`, or the
/// type's own error.
#[inline]
pub(crate) fn from_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    T::deserialize(&mut de::Reader::new(bytes))
}

/// Decodes a `T` from the front of `bytes`; the `T` and the bytes after it
/// (as `postcard::take_from_bytes`).
///
/// # Errors
/// As [`from_bytes`].
#[inline]
pub(crate) fn take_from_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, &[u8]), Error> {
    let mut r = de::Reader::new(bytes);
    let t = T::deserialize(&mut r)?;
    Ok((t, r.rest()))
}
