//! Pipe ends as task arguments: an end serializes as the wire form of its
//! segments (`Wire`) and registers itself in the receiving process.

use std::marker::PhantomData;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ends::{self, End, Role};
use super::{Connection, Receiver, Sender};
use crate::chan::codec::Codec;
use crate::chan::Chan;
use crate::error::Result;
use crate::segment::{Kind, Segment, Wire};

struct Handle<'a>(Option<&'a End>);

impl Serialize for Handle<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        match self.0 {
            None => s.serialize_none(),
            Some(e) => {
                let wire = e.chan.seg.to_wire().map_err(S::Error::custom)?;
                if matches!(wire, Wire::Inherited(_)) {
                    ends::send_in_transit(&e.chan, e.role);
                }
                s.serialize_some(&wire)
            }
        }
    }
}

impl<T, C: Codec<T>> Serialize for Connection<T, C> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        (Handle(self.tx.as_ref()), Handle(self.rx.as_ref())).serialize(s)
    }
}

fn open_end<T, C: Codec<T>>(w: Option<Wire>, role: Role) -> Result<Option<End>> {
    let Some(w) = w else { return Ok(None) };
    let seg = Segment::from_wire(w, Kind::Pipe, &crate::chan::codec::fingerprint::<T, C>())?;
    Ok(Some(ends::register_received(Chan::open(seg)?, role)?))
}

impl<'de, T, C: Codec<T>> Deserialize<'de> for Connection<T, C> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (tx, rx) = <(Option<Wire>, Option<Wire>)>::deserialize(d)?;
        Ok(Connection {
            tx: open_end::<T, C>(tx, Role::Sender).map_err(D::Error::custom)?,
            rx: open_end::<T, C>(rx, Role::Receiver).map_err(D::Error::custom)?,
            _t: PhantomData,
        })
    }
}

impl<T, C: Codec<T>> Serialize for Receiver<T, C> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}
impl<'de, T, C: Codec<T>> Deserialize<'de> for Receiver<T, C> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let c = Connection::deserialize(d)?;
        if c.rx.is_none() || c.tx.is_some() {
            return Err(D::Error::custom(
                "expected a pipe receiver, found another end",
            ));
        }
        Ok(Receiver(c))
    }
}
impl<T, C: Codec<T>> Serialize for Sender<T, C> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}
impl<'de, T, C: Codec<T>> Deserialize<'de> for Sender<T, C> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let c = Connection::deserialize(d)?;
        if c.tx.is_none() || c.rx.is_some() {
            return Err(D::Error::custom(
                "expected a pipe sender, found another end",
            ));
        }
        Ok(Sender(c))
    }
}
