//! postcard's wire format, written and read by a serde serializer and
//! deserializer of our own that work on one contiguous buffer.
//!
//! The bytes are postcard 1.x's, byte for byte (varints, zig-zag signed
//! integers, length-prefixed strings and sequences; the format is in
//! postcard's `spec`), and the errors are `postcard::Error` values: a peer
//! built with the postcard crate reads what we write and the other way
//! round. `tests.rs` and the `wire` fuzz target compare both directions with
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
pub type Error = postcard::Error;

/// Encodes `value` into the front of `buf`; the encoded bytes.
///
/// # Errors
/// `SerializeBufferFull` when `buf` is too small (its contents are then
/// unspecified), `SerializeSeqLengthUnknown` for a sequence or map of
/// unknown length, or the value's own error.
#[inline]
pub fn to_slice<'b, T: Serialize + ?Sized>(
    value: &T,
    buf: &'b mut [u8],
) -> Result<&'b mut [u8], Error> {
    let mut w = ser::Writer::new(buf);
    value.serialize(&mut w)?;
    Ok(w.into_written())
}

/// Encodes `value` into a new `Vec`.
///
/// # Errors
/// As [`to_slice`], never `SerializeBufferFull`.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    let mut buf = vec![0u8; 256];
    loop {
        match to_slice(value, &mut buf) {
            Ok(out) => {
                let n = out.len();
                buf.truncate(n);
                return Ok(buf);
            }
            Err(Error::SerializeBufferFull) => {
                let len = buf.len() * 4;
                buf.resize(len, 0);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Decodes a `T` from the front of `bytes` (bytes after it are ignored, as
/// `postcard::from_bytes` ignores them).
///
/// # Errors
/// A `Deserialize*` error for bytes that do not encode a `T`, or the
/// type's own error.
#[inline]
pub fn from_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    T::deserialize(&mut de::Reader::new(bytes))
}
