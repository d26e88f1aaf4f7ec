//! The wire format against the postcard crate: the same bytes out, the same
//! values (or the same errors) back, for arbitrary values and bytes.

use std::fmt::Debug;

use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{from_bytes, take_from_bytes, to_extend, to_slice, to_vec, Error};

#[path = "../../tests/common/messages.rs"]
mod messages;
use messages::{Mixed, Newtype, Shape, Tick, Unit};

fn tick() -> impl Strategy<Value = Tick> {
    (
        any::<u64>(),
        any::<u64>(),
        ".{0,20}",
        "[A-Z]{0,12}",
        any::<f64>(),
        any::<u32>(),
        any::<u32>(),
        prop::collection::vec(any::<u32>(), 0..12),
    )
        .prop_map(
            |(seq, ts_ns, symbol, venue, price, qty, flags, levels)| Tick {
                seq,
                ts_ns,
                symbol,
                venue,
                price,
                qty,
                flags,
                levels,
            },
        )
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        Just(Shape::Empty),
        any::<f32>().prop_map(Shape::Circle),
        (any::<i16>(), any::<u16>()).prop_map(|(a, b)| Shape::Pair(a, b)),
        (any::<u128>(), any::<char>(), any::<bool>()).prop_map(|(id, tag, on)| Shape::Named {
            id,
            tag,
            on
        }),
    ]
}

fn mixed() -> impl Strategy<Value = Mixed> {
    (
        (any::<u8>(), any::<i8>(), any::<i64>(), any::<i128>()),
        prop::option::of(prop::collection::vec(shape(), 0..4)),
        prop::collection::btree_map(any::<u32>(), ".{0,6}", 0..4),
        any::<i32>(),
        prop::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(|(small, maybe, map, n, bytes)| Mixed {
            small,
            maybe,
            map,
            unit: (),
            marker: Unit,
            wrapped: Newtype(n),
            bytes,
        })
}

/// Same bytes as postcard, decodes back, and every shorter buffer is
/// `SerializeBufferFull`.
fn same_encoding<T>(v: &T) -> Result<(), TestCaseError>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let ours = to_vec(v).unwrap();
    prop_assert_eq!(&ours, &postcard::to_stdvec(v).unwrap());
    prop_assert_eq!(&from_bytes::<T>(&ours).unwrap(), v);
    let mut buf = vec![0u8; ours.len()];
    for short in 0..ours.len() {
        prop_assert_eq!(
            to_slice(v, &mut buf[..short]).unwrap_err(),
            Error::SerializeBufferFull
        );
    }
    prop_assert_eq!(&*to_slice(v, &mut buf).unwrap(), &ours[..]);
    // Appended after what a Vec already holds.
    let mut grown = vec![0xAA, 0xBB];
    to_extend(v, &mut grown).unwrap();
    prop_assert_eq!(&grown[..2], &[0xAA, 0xBB]);
    prop_assert_eq!(&grown[2..], &ours[..]);
    Ok(())
}

/// Decoding arbitrary bytes gives what postcard gives: the same value or
/// the same error.
fn same_decoding<T>(bytes: &[u8]) -> Result<(), TestCaseError>
where
    T: DeserializeOwned + PartialEq + Debug,
{
    let ours = from_bytes::<T>(bytes);
    let theirs = postcard::from_bytes::<T>(bytes);
    match (&ours, &theirs) {
        // NaN != NaN: compare the encodings.
        (Ok(a), Ok(b)) if a != b => prop_assert_eq!(format!("{a:?}"), format!("{b:?}")),
        _ => prop_assert_eq!(ours, theirs),
    }
    // The same bytes left over after the value.
    let ours = take_from_bytes::<T>(bytes).map(|(_, rest)| rest);
    let theirs = postcard::take_from_bytes::<T>(bytes).map(|(_, rest)| rest);
    prop_assert_eq!(ours, theirs);
    Ok(())
}

proptest! {
    #[test]
    fn ticks_encode_as_postcard(t in tick()) {
        same_encoding(&t)?;
    }

    #[test]
    fn mixed_values_encode_as_postcard(m in mixed()) {
        same_encoding(&m)?;
    }

    #[test]
    fn arbitrary_bytes_decode_as_postcard(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        same_decoding::<Tick>(&bytes)?;
        same_decoding::<Mixed>(&bytes)?;
        same_decoding::<Shape>(&bytes)?;
        same_decoding::<(u16, i16, u32, i32, char, bool, Option<u8>)>(&bytes)?;
        same_decoding::<(u64, u128, i128, String)>(&bytes)?;
    }

    #[test]
    fn mangled_encodings_decode_as_postcard(
        t in tick(),
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = postcard::to_stdvec(&t).unwrap();
        for (at, x) in flips {
            let n = bytes.len();
            bytes[at % n] ^= x;
        }
        same_decoding::<Tick>(&bytes)?;
    }
}

#[test]
fn varint_edges_match_postcard() {
    for v in [
        0u64,
        127,
        128,
        16383,
        16384,
        u32::MAX as u64,
        u64::MAX - 1,
        u64::MAX,
    ] {
        same_encoding(&v).unwrap();
        same_encoding(&(v as u32, v as u16, v as i64, v as i32)).unwrap();
    }
    for v in [0u128, u64::MAX as u128 + 1, u128::MAX] {
        same_encoding(&v).unwrap();
        same_encoding(&(v as i128)).unwrap();
    }
    // Too long, and a last byte with bits past the type's width.
    for bytes in [
        &[0x80u8; 11][..],
        &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
        &[0xff, 0xff, 0xff, 0xff, 0x1f],
        &[0xff, 0xff, 0x04],
        &[0x80],
    ] {
        same_decoding::<u64>(bytes).unwrap();
        same_decoding::<u32>(bytes).unwrap();
        same_decoding::<u16>(bytes).unwrap();
        same_decoding::<u128>(bytes).unwrap();
    }
}

#[test]
fn strings_chars_and_unknown_lengths() {
    same_encoding(&"Grüße, 世界 🦀".to_string()).unwrap();
    same_encoding(&'🦀').unwrap();
    // Invalid UTF-8 (a lone continuation byte), and a char longer than 4.
    same_decoding::<String>(&[2, b'a', 0x80]).unwrap();
    same_decoding::<char>(&[5, b'a', b'b', b'c', b'd', b'e']).unwrap();
    same_decoding::<char>(&[2, b'a', b'b']).unwrap();
    // A huge claimed length is an error, not an allocation.
    same_decoding::<Vec<u64>>(&[0xff, 0xff, 0xff, 0xff, 0x0f]).unwrap();
    struct Unsized;
    impl Serialize for Unsized {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq((0..3).filter(|_| true))
        }
    }
    assert_eq!(
        to_vec(&Unsized).unwrap_err(),
        postcard::to_stdvec(&Unsized).unwrap_err()
    );
    struct Shown;
    impl Serialize for Shown {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_str(&format_args!("{}-{}", 12, "ab"))
        }
    }
    assert_eq!(
        to_vec(&Shown).unwrap(),
        postcard::to_stdvec(&Shown).unwrap()
    );
}

#[test]
fn nesting_is_bounded_not_a_stack_overflow() {
    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    enum Tree {
        Leaf,
        Node(Box<Tree>),
    }
    // Node(Node(...(Leaf))): a variant index 1 per level (one nesting level:
    // the enum), then Leaf's index 0.
    let deep = |n: usize| {
        let mut b = vec![1u8; n];
        b.push(0);
        b
    };
    // Shallow enough: the same value as postcard.
    same_decoding::<Tree>(&deep(100)).unwrap();
    assert!(from_bytes::<Tree>(&deep(100)).is_ok());
    // Far deeper than any stack allows for postcard: an error here.
    assert_eq!(
        from_bytes::<Tree>(&deep(1_000_000)).unwrap_err(),
        Error::DeserializeBadEncoding
    );
    assert_eq!(
        from_bytes::<Vec<Vec<Vec<u8>>>>(&[1, 1, 0]).unwrap(),
        vec![vec![Vec::<u8>::new()]]
    );
}
