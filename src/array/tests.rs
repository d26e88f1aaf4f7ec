use super::*;
use crate::segment::unique_name;

#[test]
fn smoke() {
    let a = Array::<u32>::new(5).unwrap();
    assert_eq!(a.len(), 5);
    assert!(!a.is_empty());
    assert_eq!(a.to_vec(), [0; 5]);
    a.set(4, 9).unwrap();
    assert_eq!(a.get(4), Some(9));
    assert_eq!(a.get(5), None);
    assert!(a.set(5, 1).is_err());
    let mut g = a.lock().unwrap();
    g[0] = 1;
    g.sort_unstable_by(|x, y| y.cmp(x));
    assert!(!g.owner_died());
    drop(g);
    assert_eq!(a.to_vec(), [9, 1, 0, 0, 0]);
}

#[test]
fn named_open_checks_type_and_length() {
    let name = unique_name("array-named");
    let a = Array::builder()
        .name(&name)
        .data(&[1.5f64, 2.5])
        .create()
        .unwrap();
    let b = Array::<f64>::open(&name).unwrap();
    assert_eq!(b.len(), 2);
    b.set(0, 7.0).unwrap();
    assert_eq!(a.to_vec(), [7.0, 2.5]);
    assert!(matches!(
        Array::<f32>::open(&name),
        Err(Error::Incompatible { .. })
    ));
    assert!(matches!(
        RawArray::<f64>::open(&name),
        Err(Error::Incompatible { .. })
    ));
}

#[test]
fn empty_and_zero_sized() {
    let a = Array::<u64>::new(0).unwrap();
    assert!(a.is_empty());
    assert!(a.lock().unwrap().is_empty());
    let r = RawArray::<u8>::from_slice(&[]).unwrap();
    assert_eq!(r.to_vec(), Vec::<u8>::new());
}

#[test]
fn locked_array_sums_from_threads() {
    let a = Array::<u64>::new(3).unwrap();
    let ts: Vec<_> = (0..4)
        .map(|_| {
            let a = a.clone();
            std::thread::spawn(move || {
                for _ in 0..5_000 {
                    let mut g = a.lock().unwrap();
                    for x in g.iter_mut() {
                        *x += 1;
                    }
                }
            })
        })
        .collect();
    for t in ts {
        t.join().unwrap();
    }
    assert_eq!(a.to_vec(), [20_000; 3]);
}

#[test]
fn dead_thread_holding_array_lock_is_reported() {
    let a = Array::<u8>::from_slice(&[1, 2]).unwrap();
    let a2 = a.clone();
    std::thread::spawn(move || std::mem::forget(a2.lock().unwrap()))
        .join()
        .unwrap();
    assert!(a.try_lock().unwrap().unwrap().owner_died());
}

#[test]
fn raw_array_unaligned_elements() {
    // 3-byte elements: copies mix 8-byte words and single bytes.
    let data: Vec<[u8; 3]> = (0..11u8).map(|i| [i, i + 1, i + 2]).collect();
    let r = RawArray::from_slice(&data).unwrap();
    assert_eq!(r.to_vec(), data);
    r.set(7, [9, 9, 9]).unwrap();
    assert_eq!(r.get(7), Some([9, 9, 9]));
    assert_eq!(r.get(6), Some([6, 7, 8]));
    let rev: Vec<_> = data.iter().rev().copied().collect();
    r.copy_from_slice(&rev).unwrap();
    assert_eq!(r.to_vec(), rev);
    assert!(r.copy_from_slice(&rev[1..]).is_err());
    assert!(r.set(11, [0; 3]).is_err());
}
