//! The deserializer: postcard's format from one slice. Every length and
//! varint is checked against the bytes left (the bytes may come from a
//! hostile peer); errors are postcard's, for the same inputs.

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use super::Error;

/// How deep values may nest (options, newtypes, sequences, maps, tuples,
/// structs, enums inside each other), as serde_json's default. Deeper input
/// is `DeserializeBadEncoding` (postcard has no limit): a hostile message for
/// a recursive type must not overflow the stack.
const MAX_DEPTH: u32 = 128;

/// Reads from a borrowed buffer; `pos` bytes are consumed so far, inside
/// `depth` nested values.
pub(super) struct Reader<'de> {
    bytes: &'de [u8],
    pos: usize,
    depth: u32,
}

impl<'de> Reader<'de> {
    pub(super) fn new(bytes: &'de [u8]) -> Self {
        Reader {
            bytes,
            pos: 0,
            depth: 0,
        }
    }

    /// Runs `f` one nesting level deeper, or fails past [`MAX_DEPTH`].
    #[inline]
    fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, Error>) -> Result<T, Error> {
        if self.depth >= MAX_DEPTH {
            return Err(Error::DeserializeBadEncoding);
        }
        self.depth += 1;
        let r = f(self);
        self.depth -= 1;
        r
    }

    /// The bytes not read yet.
    pub(super) fn rest(&self) -> &'de [u8] {
        &self.bytes[self.pos..]
    }

    #[inline]
    fn pop(&mut self) -> Result<u8, Error> {
        let b = *self
            .bytes
            .get(self.pos)
            .ok_or(Error::DeserializeUnexpectedEnd)?;
        self.pos += 1;
        Ok(b)
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'de [u8], Error> {
        let bytes = self.bytes;
        let out = self
            .pos
            .checked_add(n)
            .and_then(|end| bytes.get(self.pos..end))
            .ok_or(Error::DeserializeUnexpectedEnd)?;
        self.pos += n;
        Ok(out)
    }

    /// A varint of at most `MAX` bytes whose last byte may be at most
    /// `LAST` (so the value fits the type: u16 3/3, u32 5/15, u64 10/1).
    /// A one-byte varint (values below 128) takes one check.
    #[inline(always)]
    fn varint<const MAX: usize, const LAST: u8>(&mut self) -> Result<u64, Error> {
        match self.bytes.get(self.pos) {
            Some(&b) if b < 0x80 => {
                self.pos += 1;
                Ok(b.into())
            }
            _ => self.varint_long::<MAX, LAST>(),
        }
    }

    fn varint_long<const MAX: usize, const LAST: u8>(&mut self) -> Result<u64, Error> {
        let rest = self.rest();
        let mut out = 0u64;
        for i in 0..MAX {
            let b = *rest.get(i).ok_or(Error::DeserializeUnexpectedEnd)?;
            out |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                if i == MAX - 1 && b > LAST {
                    return Err(Error::DeserializeBadVarint);
                }
                self.pos += i + 1;
                return Ok(out);
            }
        }
        Err(Error::DeserializeBadVarint)
    }

    #[inline]
    fn u16(&mut self) -> Result<u16, Error> {
        self.varint::<3, 0b11>().map(|v| v as u16)
    }
    #[inline]
    fn u32(&mut self) -> Result<u32, Error> {
        self.varint::<5, 0b1111>().map(|v| v as u32)
    }
    #[inline]
    fn u64(&mut self) -> Result<u64, Error> {
        self.varint::<10, 0b1>()
    }
    /// Lengths are `usize` varints (64-bit here).
    #[inline]
    fn len(&mut self) -> Result<usize, Error> {
        self.u64().map(|v| v as usize)
    }

    fn u128(&mut self) -> Result<u128, Error> {
        let mut out = 0u128;
        for i in 0..19 {
            let b = self.pop()?;
            out |= u128::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                if i == 18 && b > 0b11 {
                    return Err(Error::DeserializeBadVarint);
                }
                return Ok(out);
            }
        }
        Err(Error::DeserializeBadVarint)
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// A length-prefixed string, checked as UTF-8.
    #[inline]
    fn str(&mut self) -> Result<&'de str, Error> {
        let n = self.len()?;
        utf8(self.take(n)?).ok_or(Error::DeserializeBadUtf8)
    }
}

/// `bytes` as a `str` if they are UTF-8. ASCII, the usual case, is checked
/// a word at a time (`core::str::from_utf8` took ~10 instructions a byte
/// on short strings).
#[inline]
fn utf8(bytes: &[u8]) -> Option<&str> {
    if bytes.is_ascii() {
        // SAFETY: every byte is below 0x80, and ASCII is valid UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        std::str::from_utf8(bytes).ok()
    }
}

fn unzigzag64(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn unzigzag128(v: u128) -> i128 {
    ((v >> 1) as i128) ^ -((v & 1) as i128)
}

/// Elements of a sequence (or fields of a struct or tuple): `left` more.
struct Seq<'a, 'de> {
    r: &'a mut Reader<'de>,
    left: usize,
}

impl<'de> de::SeqAccess<'de> for Seq<'_, 'de> {
    type Error = Error;

    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.r).map(Some)
    }

    /// As postcard: the claimed count, unless fewer bytes are left than
    /// that (a hostile length must not size an allocation).
    #[inline]
    fn size_hint(&self) -> Option<usize> {
        (self.r.bytes.len() - self.r.pos >= self.left).then_some(self.left)
    }
}

/// Entries of a map: `left` more.
struct Map<'a, 'de> {
    r: &'a mut Reader<'de>,
    left: usize,
}

impl<'de> de::MapAccess<'de> for Map<'_, 'de> {
    type Error = Error;

    #[inline]
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.r).map(Some)
    }

    #[inline]
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        seed.deserialize(&mut *self.r)
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

impl<'de> de::Deserializer<'de> for &mut Reader<'de> {
    type Error = Error;

    fn is_human_readable(&self) -> bool {
        false
    }

    /// The format is not self-describing.
    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(Error::WontImplement)
    }
    #[inline]
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.pop()? {
            0 => visitor.visit_bool(false),
            1 => visitor.visit_bool(true),
            _ => Err(Error::DeserializeBadBool),
        }
    }
    #[inline]
    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_i8(self.pop()? as i8)
    }
    #[inline]
    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_i16(unzigzag64(self.u16()?.into()) as i16)
    }
    #[inline]
    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_i32(unzigzag64(self.u32()?.into()) as i32)
    }
    #[inline]
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_i64(unzigzag64(self.u64()?))
    }
    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_i128(unzigzag128(self.u128()?))
    }
    #[inline]
    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u8(self.pop()?)
    }
    #[inline]
    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u16(self.u16()?)
    }
    #[inline]
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u32(self.u32()?)
    }
    #[inline]
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u64(self.u64()?)
    }
    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u128(self.u128()?)
    }
    #[inline]
    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_f32(f32::from_le_bytes(self.array()?))
    }
    #[inline]
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_f64(f64::from_le_bytes(self.array()?))
    }
    /// A string of at most 4 bytes whose first char is taken (as postcard).
    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let n = self.len()?;
        if n > 4 {
            return Err(Error::DeserializeBadChar);
        }
        let c = utf8(self.take(n)?)
            .and_then(|s| s.chars().next())
            .ok_or(Error::DeserializeBadChar)?;
        visitor.visit_char(c)
    }
    #[inline]
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_borrowed_str(self.str()?)
    }
    #[inline]
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_str(self.str()?)
    }
    #[inline]
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let n = self.len()?;
        visitor.visit_borrowed_bytes(self.take(n)?)
    }
    #[inline]
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let n = self.len()?;
        visitor.visit_bytes(self.take(n)?)
    }
    #[inline]
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.pop()? {
            0 => visitor.visit_none(),
            1 => self.nested(|r| visitor.visit_some(r)),
            _ => Err(Error::DeserializeBadOption),
        }
    }
    #[inline]
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
    #[inline]
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
    #[inline]
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.nested(|r| visitor.visit_newtype_struct(r))
    }
    #[inline]
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let left = self.len()?;
        self.nested(|r| visitor.visit_seq(Seq { r, left }))
    }
    #[inline]
    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        self.nested(|r| visitor.visit_seq(Seq { r, left: len }))
    }
    #[inline]
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_tuple(len, visitor)
    }
    #[inline]
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let left = self.len()?;
        self.nested(|r| visitor.visit_map(Map { r, left }))
    }
    #[inline]
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_tuple(fields.len(), visitor)
    }
    #[inline]
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.nested(|r| visitor.visit_enum(r))
    }
    /// Field and variant names are never written.
    fn deserialize_identifier<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(Error::WontImplement)
    }
    /// Skipping needs a self-describing format.
    fn deserialize_ignored_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(Error::WontImplement)
    }
}

impl<'de> de::EnumAccess<'de> for &mut Reader<'de> {
    type Error = Error;
    type Variant = Self;

    /// The variant index, a u32 varint.
    #[inline]
    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), Error> {
        let index = self.u32()?;
        let v = seed.deserialize(IntoDeserializer::<Error>::into_deserializer(index))?;
        Ok((v, self))
    }
}

impl<'de> de::VariantAccess<'de> for &mut Reader<'de> {
    type Error = Error;

    #[inline]
    fn unit_variant(self) -> Result<(), Error> {
        Ok(())
    }
    #[inline]
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(self)
    }
    #[inline]
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_tuple(self, len, visitor)
    }
    #[inline]
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_tuple(self, fields.len(), visitor)
    }
}
