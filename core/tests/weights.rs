//! Darknet weights files: header forms, exact round trip, typed errors, no panics.

use proptest::prelude::*;
use tessera_core::model::cfg::parse;
use tessera_core::model::weights::{
    decode, encode_file, encode_params, file_len, param_count, Header, Weights,
};
use tessera_core::model::{Network, WeightsError};
use tessera_core::rng::SplitMix64;

/// Conv (BN) → maxpool → conv (no BN) → route → conv: 3 parameterised layers.
const SMALL: &str = "[net]
width=12
height=10
channels=3

[convolutional]
batch_normalize=1
filters=4
size=3
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
filters=5
size=1
activation=linear

[route]
layers=-1,-2

[convolutional]
batch_normalize=1
filters=2
size=3
stride=2
pad=1
activation=leaky
";

fn small() -> Network {
    parse(SMALL).unwrap()
}

/// Expected parameter counts of [`SMALL`], by hand.
const SMALL_COUNTS: [usize; 5] = [4 * 4 + 4 * 3 * 9, 0, 5 + 5 * 4, 0, 4 * 2 + 2 * 9 * 9];

const V01: Header = Header {
    major: 0,
    minor: 1,
    revision: 0,
    seen: 12_345,
};

const V02: Header = Header {
    major: 0,
    minor: 2,
    revision: 5,
    seen: 0x1234_5678_9abc,
};

fn file(net: &Network, h: &Header, seed: u64) -> (Vec<f32>, Vec<u8>) {
    let n = param_count(net, net.layers().len()).unwrap();
    let mut rng = SplitMix64::new(seed);
    let values: Vec<f32> = (0..n)
        .map(|_| f32::from_bits(rng.next_u64() as u32))
        .collect();
    let mut bytes = vec![0u8; file_len(net, h).unwrap()];
    assert_eq!(
        encode_file(h, net, &values, &mut bytes).unwrap(),
        bytes.len()
    );
    (values, bytes)
}

#[test]
fn small_param_counts() {
    let net = small();
    assert_eq!(net.layers().len(), 5);
    for (i, &c) in SMALL_COUNTS.iter().enumerate() {
        assert_eq!(
            tessera_core::model::weights::layer_param_count(&net, i).unwrap(),
            c,
            "layer {i}"
        );
    }
    assert_eq!(
        param_count(&net, 5).unwrap(),
        SMALL_COUNTS.iter().sum::<usize>()
    );
}

#[test]
fn header_forms() {
    assert_eq!(V01.len(), 16);
    assert_eq!(V02.len(), 20);
    // Darknet: 8-byte seen iff major*10+minor >= 2 && major < 1000 && minor < 1000.
    for (major, minor, wide) in [
        (0, 0, false),
        (0, 1, false),
        (0, 2, true),
        (1, 0, true),
        (999, 999, true),
        (1000, 0, false),
        (0, 1000, false),
        (i32::MAX, i32::MAX, false),
    ] {
        let h = Header {
            major,
            minor,
            revision: 0,
            seen: 7,
        };
        assert_eq!(h.len(), if wide { 20 } else { 16 }, "{major}.{minor}");
        let mut buf = [0xAAu8; 24];
        assert_eq!(h.encode(&mut buf).unwrap(), h.len());
        assert_eq!(Header::parse(&buf[..h.len()]).unwrap(), (h, h.len()));
        assert_eq!(Header::parse(&buf).unwrap(), (h, h.len()));
    }
    let mut buf = [0u8; 20];
    V02.encode(&mut buf).unwrap();
    assert_eq!(
        buf,
        [0, 0, 0, 0, 2, 0, 0, 0, 5, 0, 0, 0, 0xbc, 0x9a, 0x78, 0x56, 0x34, 0x12, 0, 0]
    );
}

#[test]
fn header_errors() {
    let mut buf = [0u8; 20];
    assert_eq!(
        V02.encode(&mut buf[..19]),
        Err(WeightsError::OutputTooSmall {
            needed: 20,
            available: 19
        })
    );
    let big_seen = Header {
        seen: 1 << 31,
        ..V01
    };
    assert_eq!(big_seen.encode(&mut buf), Err(WeightsError::BadHeader));
    let negative = Header { major: -1, ..V02 };
    assert_eq!(negative.encode(&mut buf), Err(WeightsError::BadHeader));
    assert_eq!(
        Header::parse(&[0; 11]),
        Err(WeightsError::Truncated {
            needed: 12,
            available: 11
        })
    );
    V02.encode(&mut buf).unwrap();
    assert_eq!(
        Header::parse(&buf[..19]),
        Err(WeightsError::Truncated {
            needed: 20,
            available: 19
        })
    );
    assert_eq!(Header::parse(&[0xff; 20]), Err(WeightsError::BadHeader));
    // A 4-byte seen that is negative as Darknet's int.
    let mut old = [0u8; 16];
    V01.encode(&mut old).unwrap();
    old[15] = 0x80;
    assert_eq!(Header::parse(&old), Err(WeightsError::BadHeader));
}

#[test]
fn round_trip_is_exact() {
    let net = small();
    for (h, seed) in [(V01, 1), (V02, 2)] {
        let (values, bytes) = file(&net, &h, seed);
        assert_eq!(bytes.len(), h.len() + 4 * values.len());
        // Spot-check the byte layout: first value right after the header, little-endian.
        assert_eq!(
            &bytes[h.len()..h.len() + 4],
            &values[0].to_bits().to_le_bytes()
        );
        for upto in 0..=net.layers().len() {
            let n = param_count(&net, upto).unwrap();
            let mut out = vec![0f32; n + 3];
            out[n..].fill(42.0);
            assert_eq!(decode(&bytes, &net, upto, &mut out).unwrap(), h);
            for (i, (a, b)) in out[..n].iter().zip(&values).enumerate() {
                assert_eq!(a.to_bits(), b.to_bits(), "value {i}, upto {upto}");
            }
            assert!(out[n..].iter().all(|&v| v == 42.0), "wrote past {n}");
        }
    }
}

#[test]
fn decoded_values_land_in_layer_views() {
    let net = small();
    let (values, bytes) = file(&net, &V02, 3);
    let mut out = vec![0f32; values.len()];
    decode(&bytes, &net, 5, &mut out).unwrap();
    let w = Weights::new(&net, 5, &out).unwrap();
    let c0 = w.conv(0).unwrap();
    assert_eq!(c0.biases[0].to_bits(), values[0].to_bits());
    let bn = c0.bn.unwrap();
    assert_eq!(bn.scales[0].to_bits(), values[4].to_bits());
    assert_eq!(bn.variance[3].to_bits(), values[15].to_bits());
    assert_eq!(c0.weights[0].to_bits(), values[16].to_bits());
    let c2 = w.conv(2).unwrap();
    assert!(c2.bn.is_none());
    assert_eq!(c2.biases[0].to_bits(), values[SMALL_COUNTS[0]].to_bits());
}

#[test]
fn decode_errors() {
    let net = small();
    let (values, bytes) = file(&net, &V02, 4);
    let total = bytes.len();
    let mut out = vec![0f32; values.len()];
    assert_eq!(
        decode(&bytes[..total - 1], &net, 5, &mut out),
        Err(WeightsError::Truncated {
            needed: total,
            available: total - 1
        })
    );
    let mut long = bytes.clone();
    long.push(0);
    assert_eq!(
        decode(&long, &net, 5, &mut out),
        Err(WeightsError::TrailingBytes { extra: 1 })
    );
    // Header only.
    assert_eq!(
        decode(&bytes[..20], &net, 5, &mut out),
        Err(WeightsError::Truncated {
            needed: total,
            available: 20
        })
    );
    // Garbage header.
    let mut garbage = bytes.clone();
    garbage[..12].fill(0xff);
    assert_eq!(
        decode(&garbage, &net, 5, &mut out),
        Err(WeightsError::BadHeader)
    );
    // A v0.1 header in a file sized for v0.2: 4 bytes too many.
    let mut relabelled = bytes.clone();
    relabelled[4] = 1;
    assert_eq!(
        decode(&relabelled, &net, 5, &mut out),
        Err(WeightsError::TrailingBytes { extra: 4 })
    );
    assert_eq!(
        decode(&bytes, &net, 6, &mut out),
        Err(WeightsError::LayerOutOfRange)
    );
    let n = param_count(&net, 3).unwrap();
    assert_eq!(
        decode(&bytes, &net, 3, &mut out[..n - 1]),
        Err(WeightsError::OutputTooSmall {
            needed: n,
            available: n - 1
        })
    );
    assert!(decode(&bytes, &net, 3, &mut out[..n]).is_ok());
    assert_eq!(
        decode(&[], &net, 0, &mut []),
        Err(WeightsError::Truncated {
            needed: 12,
            available: 0
        })
    );
}

#[test]
fn encode_errors() {
    let net = small();
    let n = param_count(&net, 5).unwrap();
    let mut bytes = vec![0u8; file_len(&net, &V01).unwrap()];
    assert_eq!(
        encode_file(&V01, &net, &vec![0.0; n - 1], &mut bytes),
        Err(WeightsError::WrongParamCount {
            expected: n,
            actual: n - 1
        })
    );
    let len = bytes.len();
    assert_eq!(
        encode_file(&V01, &net, &vec![0.0; n], &mut bytes[..len - 1]),
        Err(WeightsError::OutputTooSmall {
            needed: len,
            available: len - 1
        })
    );
    let mut out = [0u8; 8];
    assert_eq!(encode_params(&[1.0, -2.5], &mut out), Ok(8));
    assert_eq!(out, [0, 0, 0x80, 0x3f, 0, 0, 0x20, 0xc0]);
    assert_eq!(
        encode_params(&[1.0, 2.0, 3.0], &mut out),
        Err(WeightsError::OutputTooSmall {
            needed: 12,
            available: 8
        })
    );
}

#[test]
fn error_display() {
    assert_eq!(
        WeightsError::TrailingBytes { extra: 3 }.to_string(),
        "3 bytes past the end of the weights"
    );
    let e: Box<dyn std::error::Error> = Box::new(WeightsError::BadHeader);
    assert_eq!(e.to_string(), "bad weights header");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2000), upto in 0usize..8, cap in 0usize..800) {
        let net = small();
        let mut out = vec![0f32; cap];
        let _ = decode(&bytes, &net, upto, &mut out);
        let _ = Header::parse(&bytes);
    }

    #[test]
    fn decode_never_panics_near_valid(seed in any::<u64>(), cut in 0usize..2000, flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4)) {
        let net = small();
        let (values, mut bytes) = file(&net, &V02, seed);
        for (at, v) in flips {
            let i = at % bytes.len();
            bytes[i] ^= v;
        }
        bytes.truncate(cut.max(1));
        let mut out = vec![0f32; values.len()];
        let _ = decode(&bytes, &net, 5, &mut out);
    }

    #[test]
    fn round_trip_any_header(major in 0i32..2000, minor in 0i32..2000, revision in 0i32..10, seen in any::<u32>(), seed in any::<u64>()) {
        let net = small();
        let seen = u64::from(seen >> 1);
        let h = Header { major, minor, revision, seen };
        let (values, bytes) = file(&net, &h, seed);
        let mut out = vec![0f32; values.len()];
        prop_assert_eq!(decode(&bytes, &net, 5, &mut out), Ok(h));
        prop_assert!(out.iter().zip(&values).all(|(a, b)| a.to_bits() == b.to_bits()));
    }
}
