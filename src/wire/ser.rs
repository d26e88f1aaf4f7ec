//! The serializer: postcard's format into a slice or onto the end of a
//! `Vec`, with no temporaries.

use serde::ser::{self, Serialize};

use super::Error;

/// Where encoded bytes go: a borrowed slice ([`SliceOut`], bounded) or the
/// end of a `Vec` ([`VecOut`], growing).
pub(super) trait Out {
    /// Appends one byte.
    fn push(&mut self, b: u8) -> Result<(), Error>;
    /// Appends `bytes`.
    fn extend(&mut self, bytes: &[u8]) -> Result<(), Error>;
    /// Appends `v` as a LEB128 varint: 7 bits per byte, low first, the high
    /// bit set on all but the last byte (postcard's `varint`).
    #[inline]
    fn varint64(&mut self, mut v: u64) -> Result<(), Error> {
        while v >= 0x80 {
            self.push(v as u8 | 0x80)?;
            v >>= 7;
        }
        self.push(v as u8)
    }
}

/// A borrowed buffer; `pos` bytes are written so far.
pub(super) struct SliceOut<'b> {
    buf: &'b mut [u8],
    pos: usize,
}

impl<'b> SliceOut<'b> {
    pub(super) fn new(buf: &'b mut [u8]) -> Self {
        SliceOut { buf, pos: 0 }
    }

    /// The written part of the buffer.
    pub(super) fn into_written(self) -> &'b mut [u8] {
        &mut self.buf[..self.pos]
    }
}

impl Out for SliceOut<'_> {
    #[inline]
    fn push(&mut self, b: u8) -> Result<(), Error> {
        match self.buf.get_mut(self.pos) {
            Some(slot) => {
                *slot = b;
                self.pos += 1;
                Ok(())
            }
            None => Err(Error::SerializeBufferFull),
        }
    }

    #[inline]
    fn extend(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let end = self.pos + bytes.len();
        let Some(dst) = self.buf.get_mut(self.pos..end) else {
            return Err(Error::SerializeBufferFull);
        };
        copy_short(dst, bytes);
        self.pos = end;
        Ok(())
    }

    /// One bounds check per byte written, no temporary.
    #[inline]
    fn varint64(&mut self, mut v: u64) -> Result<(), Error> {
        if v < 0x80 {
            return self.push(v as u8);
        }
        let rest = &mut self.buf[self.pos..];
        let mut i = 0;
        while v >= 0x80 {
            *rest.get_mut(i).ok_or(Error::SerializeBufferFull)? = v as u8 | 0x80;
            v >>= 7;
            i += 1;
        }
        *rest.get_mut(i).ok_or(Error::SerializeBufferFull)? = v as u8;
        self.pos += i + 1;
        Ok(())
    }
}

/// The end of a borrowed `Vec`, which grows as needed (never full).
pub(super) struct VecOut<'v>(pub(super) &'v mut Vec<u8>);

impl Out for VecOut<'_> {
    #[inline]
    fn push(&mut self, b: u8) -> Result<(), Error> {
        self.0.push(b);
        Ok(())
    }

    /// Short runs byte by byte (no `memcpy` call per varint-sized copy,
    /// `docs/decisions.md`), longer ones at once.
    #[inline]
    fn extend(&mut self, bytes: &[u8]) -> Result<(), Error> {
        if bytes.len() <= 16 {
            self.0.reserve(bytes.len());
            for &b in bytes {
                self.0.push(b);
            }
        } else {
            self.0.extend_from_slice(bytes);
        }
        Ok(())
    }
}

/// The serializer over an [`Out`].
pub(super) struct Writer<O>(pub(super) O);

impl<O: Out> Writer<O> {
    #[inline]
    fn push(&mut self, b: u8) -> Result<(), Error> {
        self.0.push(b)
    }

    #[inline]
    fn extend(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.0.extend(bytes)
    }

    #[inline]
    fn varint64(&mut self, v: u64) -> Result<(), Error> {
        self.0.varint64(v)
    }

    /// [`Out::varint64`] for 128-bit values (rare: byte by byte).
    fn varint128(&mut self, mut v: u128) -> Result<(), Error> {
        while v >= 0x80 {
            self.push(v as u8 | 0x80)?;
            v >>= 7;
        }
        self.push(v as u8)
    }
}

/// Copies `src` into `dst` (same length). Short copies, the usual strings of
/// a message, go through fixed-size moves instead of a `memcpy` call.
#[inline(always)]
fn copy_short(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    if n > 16 {
        dst.copy_from_slice(src);
    } else if n >= 8 {
        // Two overlapping 8-byte moves cover 8..=16 bytes.
        dst[..8].copy_from_slice(&src[..8]);
        dst[n - 8..].copy_from_slice(&src[n - 8..]);
    } else if n >= 4 {
        dst[..4].copy_from_slice(&src[..4]);
        dst[n - 4..].copy_from_slice(&src[n - 4..]);
    } else {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = *s;
        }
    }
}

fn zigzag64(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn zigzag128(v: i128) -> u128 {
    ((v << 1) ^ (v >> 127)) as u128
}

impl<O: Out> ser::Serializer for &mut Writer<O> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn is_human_readable(&self) -> bool {
        false
    }

    #[inline]
    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.push(u8::from(v))
    }
    #[inline]
    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.push(v as u8)
    }
    #[inline]
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.varint64(zigzag64(v.into()))
    }
    #[inline]
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.varint64(zigzag64(v.into()))
    }
    #[inline]
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        self.varint64(zigzag64(v))
    }
    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        self.varint128(zigzag128(v))
    }
    #[inline]
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.push(v)
    }
    #[inline]
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.varint64(v.into())
    }
    #[inline]
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.varint64(v.into())
    }
    #[inline]
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        self.varint64(v)
    }
    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        self.varint128(v)
    }
    #[inline]
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.extend(&v.to_bits().to_le_bytes())
    }
    #[inline]
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        self.extend(&v.to_bits().to_le_bytes())
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.serialize_str(v.encode_utf8(&mut [0u8; 4]))
    }
    #[inline]
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.serialize_bytes(v.as_bytes())
    }
    #[inline]
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        self.varint64(v.len() as u64)?;
        self.extend(v)
    }
    #[inline]
    fn serialize_none(self) -> Result<(), Error> {
        self.push(0)
    }
    #[inline]
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        self.push(1)?;
        value.serialize(self)
    }
    #[inline]
    fn serialize_unit(self) -> Result<(), Error> {
        Ok(())
    }
    #[inline]
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        Ok(())
    }
    #[inline]
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
    ) -> Result<(), Error> {
        self.varint64(index.into())
    }
    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }
    #[inline]
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.varint64(index.into())?;
        value.serialize(self)
    }
    #[inline]
    fn serialize_seq(self, len: Option<usize>) -> Result<Self, Error> {
        self.varint64(len.ok_or(Error::SerializeSeqLengthUnknown)? as u64)?;
        Ok(self)
    }
    #[inline]
    fn serialize_tuple(self, _len: usize) -> Result<Self, Error> {
        Ok(self)
    }
    #[inline]
    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Self, Error> {
        Ok(self)
    }
    #[inline]
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self, Error> {
        self.varint64(index.into())?;
        Ok(self)
    }
    #[inline]
    fn serialize_map(self, len: Option<usize>) -> Result<Self, Error> {
        self.serialize_seq(len)
    }
    #[inline]
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self, Error> {
        Ok(self)
    }
    #[inline]
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self, Error> {
        self.varint64(index.into())?;
        Ok(self)
    }

    /// As postcard: the length first (a counting pass), then the text.
    fn collect_str<T: std::fmt::Display + ?Sized>(self, value: &T) -> Result<(), Error> {
        use std::fmt::Write;
        struct Count(usize);
        impl Write for Count {
            fn write_str(&mut self, s: &str) -> std::fmt::Result {
                self.0 += s.len();
                Ok(())
            }
        }
        struct Text<'w, O>(&'w mut Writer<O>);
        impl<O: Out> Write for Text<'_, O> {
            fn write_str(&mut self, s: &str) -> std::fmt::Result {
                self.0.extend(s.as_bytes()).map_err(|_| std::fmt::Error)
            }
        }
        let mut count = Count(0);
        write!(count, "{value}").map_err(|_| Error::CollectStrError)?;
        self.varint64(count.0 as u64)?;
        write!(Text(self), "{value}").map_err(|_| Error::CollectStrError)
    }
}

/// The compound serializers: each element or field in order, nothing else
/// (lengths were written up front).
macro_rules! compound {
    ($trait:ident, $method:ident $(, $key:ident)?) => {
        impl<O: Out> ser::$trait for &mut Writer<O> {
            type Ok = ();
            type Error = Error;
            #[inline]
            fn $method<T: Serialize + ?Sized>(
                &mut self,
                $($key: &'static str,)?
                value: &T,
            ) -> Result<(), Error> {
                value.serialize(&mut **self)
            }
            #[inline]
            fn end(self) -> Result<(), Error> {
                Ok(())
            }
        }
    };
}

compound!(SerializeSeq, serialize_element);
compound!(SerializeTuple, serialize_element);
compound!(SerializeTupleStruct, serialize_field);
compound!(SerializeTupleVariant, serialize_field);
compound!(SerializeStruct, serialize_field, _key);
compound!(SerializeStructVariant, serialize_field, _key);

impl<O: Out> ser::SerializeMap for &mut Writer<O> {
    type Ok = ();
    type Error = Error;
    #[inline]
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        key.serialize(&mut **self)
    }
    #[inline]
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        value.serialize(&mut **self)
    }
    #[inline]
    fn end(self) -> Result<(), Error> {
        Ok(())
    }
}
