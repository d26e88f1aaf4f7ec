//! Message types shared by the tests, the fuzz harness and the bench
//! (each includes this file by path): a ~100-byte market-data record and
//! values that use every part of serde's data model.

#![allow(dead_code)] // each includer uses a subset
#![allow(unreachable_pub)] // a module of each includer, shared by path

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A ~100-byte message, as a market-data or log record would be: two
/// strings, numbers of every size, a short vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tick {
    pub seq: u64,
    pub ts_ns: u64,
    pub symbol: String,
    pub venue: String,
    pub price: f64,
    pub qty: u32,
    pub flags: u32,
    pub levels: Vec<u32>,
}

impl Tick {
    /// The bench's message number `seq` (47 to 54 bytes encoded).
    pub fn new(seq: u64) -> Tick {
        Tick {
            seq,
            ts_ns: seq.wrapping_mul(7919),
            symbol: "EURUSD.SPOT.FX".into(),
            venue: "XLON-MTF".into(),
            price: 1.0842 + seq as f64 * 1e-9,
            qty: (seq % 1000) as u32,
            flags: 3,
            levels: vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
        }
    }
}

/// A unit struct.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unit;

/// A newtype struct.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Newtype(pub i32);

/// Every kind of enum variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Shape {
    Empty,
    Circle(f32),
    Pair(i16, u16),
    Named { id: u128, tag: char, on: bool },
}

/// Tuples, options, sequences, maps, units, newtypes and bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mixed {
    pub small: (u8, i8, i64, i128),
    pub maybe: Option<Vec<Shape>>,
    pub map: BTreeMap<u32, String>,
    pub unit: (),
    pub marker: Unit,
    pub wrapped: Newtype,
    pub bytes: Vec<u8>,
}
