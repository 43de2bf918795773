//! Coded shard payloads: emit → parse round trips, and every malformed input a typed error.

use tessera_core::code::payload::{PayloadError, ShardPayload, ShardRepr, HEADER_LEN};
use tessera_core::code::Arithmetic;

#[test]
fn round_trip_i32_and_f32() {
    let repr = ShardRepr {
        layer: 30,
        shard: 9,
        arithmetic: Arithmetic::PrimeField,
        rows: 3,
        cols: 2,
    };
    let vals = [1, -2, 3, i32::MIN, i32::MAX, 0];
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit_i32(&vals, &mut buf).unwrap();
    let p = ShardPayload::new_checked(&buf[..], 64).unwrap();
    assert_eq!(ShardRepr::parse(&p).unwrap(), repr);
    let mut back = [0i32; 6];
    assert_eq!(p.read_i32(&mut back).unwrap(), 6);
    assert_eq!(back, vals);
    // Little-endian on the wire whatever the host.
    assert_eq!(&buf[4..8], &[3, 0, 0, 0]);
    assert_eq!(&buf[HEADER_LEN..HEADER_LEN + 4], &[1, 0, 0, 0]);

    let repr = ShardRepr {
        layer: 1,
        shard: 0,
        arithmetic: Arithmetic::Float,
        rows: 1,
        cols: 3,
    };
    let vals = [1.5f32, -0.0, f32::MIN_POSITIVE];
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit_f32(&vals, &mut buf).unwrap();
    let p = ShardPayload::new_checked(&buf[..], 3).unwrap();
    let mut back = [0f32; 3];
    p.read_f32(&mut back).unwrap();
    assert_eq!(back.map(f32::to_bits), vals.map(f32::to_bits));
}

#[test]
fn malformed_payloads_are_typed_errors() {
    let repr = ShardRepr {
        layer: 0,
        shard: 1,
        arithmetic: Arithmetic::Wrapping,
        rows: 2,
        cols: 2,
    };
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit_i32(&[1, 2, 3, 4], &mut buf).unwrap();
    for cut in 0..buf.len() {
        assert!(matches!(
            ShardPayload::new_checked(&buf[..cut], 64),
            Err(PayloadError::Truncated { .. })
        ));
    }
    let mut long = buf.clone();
    long.push(0);
    assert!(matches!(
        ShardPayload::new_checked(&long[..], 64),
        Err(PayloadError::Truncated { .. })
    ));
    assert!(matches!(
        ShardPayload::new_checked(&buf[..], 3),
        Err(PayloadError::TooLarge {
            values: 4,
            limit: 3
        })
    ));
    let mut huge = buf.clone();
    huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    // 2^64 values: more than a 32-bit usize limit can name (TooLarge), or more than the
    // buffer holds on 64-bit hosts (Truncated); a typed error either way.
    assert!(matches!(
        ShardPayload::new_checked(&huge[..], usize::MAX),
        Err(PayloadError::Truncated { .. } | PayloadError::TooLarge { .. })
    ));
    let mut bad = buf.clone();
    bad[2] = 7;
    let p = ShardPayload::new_checked(&bad[..], 64).unwrap();
    assert_eq!(
        ShardRepr::parse(&p),
        Err(PayloadError::Arithmetic { code: 7 })
    );
    let p = ShardPayload::new_checked(&buf[..], 64).unwrap();
    assert!(matches!(
        p.read_i32(&mut [0; 3]),
        Err(PayloadError::Buffer { need: 4, have: 3 })
    ));
    assert!(matches!(
        repr.emit_i32(&[1, 2, 3], &mut buf),
        Err(PayloadError::Buffer { .. })
    ));
    assert!(matches!(
        repr.emit_i32(&[1, 2, 3, 4], &mut [0u8; 5]),
        Err(PayloadError::Buffer { .. })
    ));
}
