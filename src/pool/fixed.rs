//! The pool's fast codec for scalar arguments and results: a value that
//! serializes as one integer, float, bool or char travels as 8 raw
//! little-endian bytes, with no varint and no enum tag. Found out through
//! serde itself (no `'static` bound, no type-name guessing): the serializer
//! below accepts exactly one scalar and refuses anything else, and the
//! caller falls back to postcard for that piece or message.
//!
//! `map` of a million `u64 -> u64` tasks spends most of its time encoding
//! and decoding; this path makes that a copy.

use serde::de::{self, Visitor};
use serde::ser::{self, Impossible, Serialize};
use serde::Deserializer;

/// Bytes per value.
pub(crate) const WIDTH: usize = 8;

/// "Not a single scalar": the caller uses postcard instead.
#[derive(Debug)]
pub(crate) struct NotFixed;

impl std::fmt::Display for NotFixed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("expected a single scalar value")
    }
}

impl std::error::Error for NotFixed {}

impl ser::Error for NotFixed {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        NotFixed
    }
}

impl de::Error for NotFixed {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        NotFixed
    }
}

/// Encodes `v` as 8 bytes if it is a single scalar.
#[inline]
pub(crate) fn encode<T: Serialize + ?Sized>(v: &T) -> Option<[u8; WIDTH]> {
    v.serialize(Fixed).ok().map(u64::to_le_bytes)
}

/// Decodes a value encoded by [`encode`] from the first 8 bytes of `b`.
///
/// # Errors
/// `NotFixed` if `b` is short or `T` asks for something else than the
/// scalar it was encoded as.
#[inline]
pub(crate) fn decode<T: de::DeserializeOwned>(b: &[u8]) -> Result<T, NotFixed> {
    let w: [u8; WIDTH] = b
        .get(..WIDTH)
        .and_then(|s| s.try_into().ok())
        .ok_or(NotFixed)?;
    T::deserialize(FixedDe(u64::from_le_bytes(w)))
}

struct Fixed;

macro_rules! scalar {
    ($($name:ident: $t:ty => $e:expr),* $(,)?) => {
        $(
            #[inline]
            fn $name(self, v: $t) -> Result<u64, NotFixed> {
                #[allow(clippy::redundant_closure_call)]
                Ok(($e)(v))
            }
        )*
    };
}

macro_rules! refuse {
    ($($name:ident($($arg:ty),*)),* $(,)?) => {
        $(
            fn $name(self, $(_: $arg),*) -> Result<u64, NotFixed> {
                Err(NotFixed)
            }
        )*
    };
}

impl ser::Serializer for Fixed {
    type Ok = u64;
    type Error = NotFixed;
    type SerializeSeq = Impossible<u64, NotFixed>;
    type SerializeTuple = Impossible<u64, NotFixed>;
    type SerializeTupleStruct = Impossible<u64, NotFixed>;
    type SerializeTupleVariant = Impossible<u64, NotFixed>;
    type SerializeMap = Impossible<u64, NotFixed>;
    type SerializeStruct = Impossible<u64, NotFixed>;
    type SerializeStructVariant = Impossible<u64, NotFixed>;

    scalar! {
        serialize_bool: bool => u64::from,
        serialize_i8: i8 => |v: i8| v as i64 as u64,
        serialize_i16: i16 => |v: i16| v as i64 as u64,
        serialize_i32: i32 => |v: i32| v as i64 as u64,
        serialize_i64: i64 => |v: i64| v as u64,
        serialize_u8: u8 => u64::from,
        serialize_u16: u16 => u64::from,
        serialize_u32: u32 => u64::from,
        serialize_u64: u64 => |v| v,
        serialize_f32: f32 => |v: f32| u64::from(v.to_bits()),
        serialize_f64: f64 => f64::to_bits,
        serialize_char: char => |v: char| u64::from(u32::from(v)),
    }

    refuse! {
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_none(),
        serialize_unit(),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str),
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<u64, NotFixed> {
        Err(NotFixed)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<u64, NotFixed> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<u64, NotFixed> {
        Err(NotFixed)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, NotFixed> {
        Err(NotFixed)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, NotFixed> {
        Err(NotFixed)
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, NotFixed> {
        Err(NotFixed)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, NotFixed> {
        Err(NotFixed)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, NotFixed> {
        Err(NotFixed)
    }
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, NotFixed> {
        Err(NotFixed)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, NotFixed> {
        Err(NotFixed)
    }
}

/// A deserializer over one 8-byte scalar.
struct FixedDe(u64);

macro_rules! visit {
    ($($name:ident => $visit:ident($e:expr)),* $(,)?) => {
        $(
            #[inline]
            fn $name<V: Visitor<'de>>(self, v: V) -> Result<V::Value, NotFixed> {
                #[allow(clippy::redundant_closure_call)]
                v.$visit(($e)(self.0))
            }
        )*
    };
}

impl<'de> Deserializer<'de> for FixedDe {
    type Error = NotFixed;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, NotFixed> {
        Err(NotFixed)
    }

    visit! {
        deserialize_bool => visit_bool(|x: u64| x != 0),
        deserialize_i8 => visit_i8(|x: u64| x as i8),
        deserialize_i16 => visit_i16(|x: u64| x as i16),
        deserialize_i32 => visit_i32(|x: u64| x as i32),
        deserialize_i64 => visit_i64(|x: u64| x as i64),
        deserialize_u8 => visit_u8(|x: u64| x as u8),
        deserialize_u16 => visit_u16(|x: u64| x as u16),
        deserialize_u32 => visit_u32(|x: u64| x as u32),
        deserialize_u64 => visit_u64(|x: u64| x),
        deserialize_f32 => visit_f32(|x: u64| f32::from_bits(x as u32)),
        deserialize_f64 => visit_f64(f64::from_bits),
    }

    fn deserialize_char<V: Visitor<'de>>(self, v: V) -> Result<V::Value, NotFixed> {
        v.visit_char(char::from_u32(self.0 as u32).ok_or(NotFixed)?)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, NotFixed> {
        v.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        i128 u128 str string bytes byte_buf option unit unit_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Meters(f64);

    #[test]
    fn scalars_roundtrip() {
        fn rt<T: Serialize + de::DeserializeOwned + PartialEq + std::fmt::Debug>(v: T) {
            let b = encode(&v).expect("a scalar");
            assert_eq!(decode::<T>(&b).unwrap(), v);
        }
        rt(u64::MAX);
        rt(-5i8);
        rt(i64::MIN);
        rt(3.5f32);
        rt(-0.25f64);
        rt(true);
        rt('é');
        rt(Meters(2.5));
    }

    #[test]
    fn everything_else_is_refused() {
        assert!(encode(&"text").is_none());
        assert!(encode(&(1u8, 2u8)).is_none());
        assert!(encode(&Some(1u32)).is_none());
        assert!(encode(&vec![1u8]).is_none());
        assert!(encode(&()).is_none());
        assert!(decode::<String>(&[0; 8]).is_err());
        assert!(decode::<u64>(&[0; 7]).is_err());
        assert!(decode::<char>(&u64::MAX.to_le_bytes()).is_err());
    }
}
