use super::*;
use crate::segment::unique_name;

#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Point {
    x: f64,
    y: f64,
    tag: u32,
    pad: u32,
}

#[test]
fn smoke() {
    let v = Value::new(5u32).unwrap();
    assert_eq!(v.get(), 5);
    v.set(6);
    {
        let mut g = v.lock().unwrap();
        assert!(!g.owner_died());
        *g += 1;
        assert!(matches!(v.try_lock(), Ok(None)));
    }
    assert_eq!(v.get(), 7);
}

#[test]
fn struct_values_and_named_open() {
    let name = unique_name("value-point");
    let p = Point {
        x: 1.0,
        y: -2.5,
        tag: 9,
        pad: 0,
    };
    let a = Value::builder().name(&name).value(p).create().unwrap();
    let b = Value::<Point>::open(&name).unwrap();
    assert_eq!(b.get(), p);
    b.lock().unwrap().tag = 10;
    assert_eq!(a.get().tag, 10);
    let e = Value::<u64>::open(&name).unwrap_err();
    assert!(matches!(e, Error::Incompatible { .. }), "{e}");
    let e = crate::Array::<Point>::open(&name).unwrap_err();
    assert!(matches!(e, Error::Incompatible { .. }), "{e}");
}

#[test]
fn atomics_bypass_lock() {
    let v = Value::new(0i64).unwrap();
    let ts: Vec<_> = (0..4)
        .map(|_| {
            let v = v.clone();
            std::thread::spawn(move || {
                for _ in 0..10_000 {
                    v.fetch_add(1);
                }
            })
        })
        .collect();
    for t in ts {
        t.join().unwrap();
    }
    assert_eq!(v.load(), 40_000);
    assert_eq!(v.swap(-1), 40_000);
    assert_eq!(v.compare_exchange(-1, 3), Ok(-1));
    assert_eq!(v.compare_exchange(-1, 4), Err(3));
    assert_eq!(v.fetch_or(4), 3);
    assert_eq!(v.fetch_and(6), 7);
    assert_eq!(v.fetch_xor(1), 6);
    assert_eq!(v.fetch_max(100), 7);
    assert_eq!(v.fetch_min(1), 100);
    assert_eq!(v.fetch_sub(1), 1);
    v.store(9);
    assert_eq!(v.get(), 9);
}

#[test]
fn locked_increments_from_threads_are_exact() {
    let v = Value::new(0u64).unwrap();
    let ts: Vec<_> = (0..4)
        .map(|_| {
            let v = v.clone();
            std::thread::spawn(move || {
                for _ in 0..10_000 {
                    *v.lock().unwrap() += 1;
                }
            })
        })
        .collect();
    for t in ts {
        t.join().unwrap();
    }
    assert_eq!(v.get(), 40_000);
}

#[test]
fn dead_thread_holding_value_lock_is_reported() {
    let v = Value::new(1u8).unwrap();
    let v2 = v.clone();
    std::thread::spawn(move || {
        let mut g = v2.lock().unwrap();
        *g = 2;
        std::mem::forget(g);
    })
    .join()
    .unwrap();
    let g = v.lock_timeout(std::time::Duration::from_secs(10)).unwrap();
    assert!(g.owner_died());
    assert_eq!(*g, 2);
}

#[test]
#[should_panic(expected = "drop the guard")]
fn get_while_holding_guard_panics_instead_of_deadlocking() {
    let v = Value::new(1u8).unwrap();
    let _g = v.lock().unwrap();
    let _ = v.get();
}

#[test]
fn raw_value_roundtrip() {
    let name = unique_name("rawvalue");
    let v = RawValue::builder()
        .name(&name)
        .value(3u16)
        .create()
        .unwrap();
    let w = RawValue::<u16>::open(&name).unwrap();
    w.set(4);
    assert_eq!(v.get(), 4);
    assert_eq!(v.fetch_add(1), 4);
    assert_eq!(w.load(), 5);
    assert!(matches!(
        Value::<u16>::open(&name),
        Err(Error::Incompatible { .. })
    ));
    let p = RawValue::new(Point {
        x: 3.0,
        y: 4.0,
        tag: 1,
        pad: 0,
    })
    .unwrap();
    assert_eq!(p.get().y, 4.0);
}

#[test]
fn corrupt_params_are_rejected() {
    use crate::segment::{Placement, Spec};
    let cases: [([u64; 4], u64); 4] = [
        ([2, 16, 8, 0], 32), // a Value with 2 elements
        ([1, 8, 8, 0], 24),  // wrong data offset
        ([1, 16, 4, 0], 24), // wrong element size
        ([1, 16, 8, 0], 40), // payload too long
    ];
    for (params, payload_len) in cases {
        let name = unique_name("value-corrupt");
        let spec = Spec {
            kind: Kind::Value,
            ty: TypeFingerprint::of::<u64>(),
            payload_len,
            params,
        };
        let place = Placement {
            name: Some(name.clone()),
            persist: false,
        };
        let _seg = Segment::create(&spec, &place, |_| Ok(())).unwrap();
        let e = Value::<u64>::open(&name).unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }), "{params:?}: {e}");
    }
}

#[test]
fn handles_are_send_sync_serde() {
    fn check<T: Clone + Send + Sync + serde::Serialize + serde::de::DeserializeOwned>() {}
    check::<Value<u64>>();
    check::<RawValue<Point>>();
    check::<crate::Array<f32>>();
    check::<crate::RawArray<u8>>();
    let name = unique_name("value-serde");
    let v = Value::builder().name(&name).value(77u32).create().unwrap();
    let back: Value<u32> = postcard::from_bytes(&postcard::to_allocvec(&v).unwrap()).unwrap();
    assert_eq!(back.get(), 77);
}
