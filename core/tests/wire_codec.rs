//! Wire protocol: every message kind round-trips, every error kind is reachable, streaming
//! encoder and stream decoder agree with the one-buffer codec.

use tessera_core::ftp::{Mode, Side};
use tessera_core::tensor::{copy_overlap, FeatureView, FeatureViewMut};
use tessera_core::wire::{
    self, AuthStats, Body, Frame, FrameDecoder, FrameEncoder, FrameKey, HeaderRepr, Key, Kind,
    Limits, Message, Policy, Receiver, ReplayWindow, Role, Sender, StripSource, StripsView, Tensor,
    WireError, HEADER_LEN, TAG_LEN,
};
use tessera_core::wire::{PictureBytes, PictureFormat, Precision, StripHolders};
use tessera_core::{Region, Span};

const KEY: Key = Key::new([0x42; 32]);
const FK: FrameKey = FrameKey::new(3, 0xdead_beef);

fn region(x0: u32, x1: u32, y0: u32, y1: u32) -> Region {
    Region::new(Span::new(x0, x1), Span::new(y0, y1))
}

fn values(n: usize, seed: f32) -> Vec<f32> {
    (0..n).map(|i| seed + i as f32 * 0.25 - 3.0).collect()
}

fn bytes_of(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// One message of every kind, tensors borrowing from `a` (2×3×4 values) and `b` (strips).
fn every_message<'a>(a: &'a [u8], strips: StripsView<'a>) -> Vec<Message<'a>> {
    let t = Tensor::new(region(10, 14, 20, 23), 2, a).unwrap();
    vec![
        Message::Hello {
            node: 0,
            role: Role::Gateway,
            model: 0x0123_4567_89ab_cdef,
        },
        Message::Hello {
            node: 5,
            role: Role::Edge,
            model: 0,
        },
        Message::Hello {
            node: u16::MAX,
            role: Role::Probe,
            model: u64::MAX,
        },
        Message::Register {
            frame: FK,
            tiles: 25,
        },
        Message::Unregister { frame: FK },
        Message::StealRequest,
        Message::StealReply { victim: Some(4) },
        Message::StealReply { victim: None },
        Message::StealTask,
        Message::Task {
            frame: FK,
            tile: 7,
            mode: Mode::Reuse,
            input: t,
        },
        Message::Task {
            frame: FK,
            tile: 8,
            mode: Mode::Plain,
            input: t,
        },
        Message::NoTask,
        Message::TaskRequest,
        Message::Result {
            frame: FK,
            tile: 24,
            output: t,
        },
        Message::Strips {
            frame: FK,
            tile: 0,
            strips,
        },
        Message::Strips {
            frame: FK,
            tile: 2,
            strips: StripsView::EMPTY,
        },
        Message::StripRequest {
            frame: FK,
            tile: 4,
            sides: 0b1010,
        },
        Message::Coverage { frame: FK, tile: 6 },
        Message::FrameSubmit {
            frame: FK,
            input: t,
        },
        Message::FrameDone {
            frame: FK,
            complete: true,
        },
        Message::FrameDone {
            frame: FK,
            complete: false,
        },
        Message::LayerTask {
            frame: FK,
            layer: 3,
            stripe: 1,
            output: region(0, 304, 0, 100),
            input: t,
        },
        Message::LayerResult {
            frame: FK,
            layer: 3,
            stripe: 1,
            output: t,
        },
        Message::Heartbeat,
        Message::Reject { code: 0xbeef },
        Message::CodedTask {
            frame: FK,
            layer: 1,
            shard: 9,
            budget_us: 250_000,
            input: t,
        },
        Message::CodedResult {
            frame: FK,
            layer: 1,
            shard: 9,
            output: t,
        },
        Message::PictureChunk {
            frame: FK,
            format: PictureFormat::Jpeg,
            width: 640,
            height: 480,
            total: 70_000,
            offset: 65_536,
            data: PictureBytes(&a[..20]),
        },
        Message::TileTask {
            frame: FK,
            tile: 4,
            mode: Mode::Reuse,
        },
        Message::StripHolders {
            frame: FK,
            tile: 5,
            holders: StripHolders([Some(2), Some(0), None, Some(7)]),
        },
        // Results packed in f16 (2 bytes a value) and i8 (a scale per channel, a byte a value).
        Message::Result {
            frame: FK,
            tile: 3,
            output: Tensor::packed(region(10, 14, 20, 23), 2, Precision::F16, &a[..48]).unwrap(),
        },
        Message::Result {
            frame: FK,
            tile: 3,
            output: Tensor::packed(region(10, 14, 20, 23), 2, Precision::I8, &a[..32]).unwrap(),
        },
        // Empty tensor.
        Message::Result {
            frame: FK,
            tile: 1,
            output: Tensor::new(region(5, 5, 0, 9), 3, &[]).unwrap(),
        },
    ]
}

fn with_fixture(f: impl FnOnce(&[Message<'_>])) {
    let a = bytes_of(&values(24, 1.5));
    let s1 = values(2 * 3, -1.0);
    let s2 = values(2 * 2 * 4, 8.0);
    let mut sbuf = vec![0u8; 512];
    let mut w = StripsView::writer(&mut sbuf);
    w.push(
        0,
        Side::Below,
        &FeatureView::new(&s1, region(0, 3, 9, 11), 1).unwrap(),
    )
    .unwrap();
    w.push(
        2,
        Side::Left,
        &FeatureView::new(&s2, region(4, 6, 0, 4), 2).unwrap(),
    )
    .unwrap();
    let strips = w.finish();
    let msgs = every_message(&a, strips);
    f(&msgs);
}

#[test]
fn every_kind_is_covered() {
    with_fixture(|msgs| {
        for k in Kind::ALL {
            assert!(msgs.iter().any(|m| m.kind() == k), "{k:?} missing");
            assert_eq!(Kind::from_u8(k as u8), Ok(k));
        }
    });
}

#[test]
fn payload_round_trip() {
    with_fixture(|msgs| {
        for m in msgs {
            let mut buf = vec![0u8; m.buffer_len()];
            assert_eq!(m.emit(&mut buf), Ok(m.buffer_len()));
            let back = Message::parse(m.kind(), &buf, &Limits::LARGE).unwrap();
            assert_eq!(&back, m);
            // Too small a buffer is an error, not a panic.
            if m.buffer_len() > 0 {
                assert_eq!(
                    m.emit(&mut buf[..m.buffer_len() - 1]),
                    Err(WireError::BufferTooSmall)
                );
            }
        }
    });
}

#[test]
fn frame_round_trip_secure_and_insecure() {
    with_fixture(|msgs| {
        for key in [Some(&KEY), None] {
            let mut window = ReplayWindow::new();
            let mut stats = AuthStats::default();
            for (i, m) in msgs.iter().enumerate() {
                let mut buf = vec![0u8; 1024];
                let n = wire::encode(m, 9, 100 + i as u64, key, &mut buf).unwrap();
                assert_eq!(
                    n,
                    HEADER_LEN + m.buffer_len() + if key.is_some() { TAG_LEN } else { 0 }
                );
                if key.is_some() && m.buffer_len() > 8 {
                    // Encrypted: the payload is not in clear.
                    let mut clear = vec![0u8; m.buffer_len()];
                    m.emit(&mut clear).unwrap();
                    assert_ne!(&buf[HEADER_LEN..HEADER_LEN + m.buffer_len()], &clear[..]);
                }
                let (h, back) =
                    wire::decode(&mut buf[..n], key, &Limits::LARGE, &mut window, &mut stats)
                        .unwrap();
                assert_eq!(&back, m);
                assert_eq!(h.kind, m.kind());
                assert_eq!(h.sender, 9);
                assert_eq!(h.seq, 100 + i as u64);
                assert_eq!(h.frame, m.frame().unwrap_or_default());
                assert_eq!(h.task, m.task().unwrap_or(0));
                assert_eq!(h.authenticated, key.is_some());
            }
            assert_eq!(stats.accepted, msgs.len() as u64);
        }
    });
}

#[test]
fn header_repr_round_trip() {
    let h = HeaderRepr {
        kind: Kind::Result,
        authenticated: true,
        sender: 0xabcd,
        frame: FrameKey::new(0x1234, 0x5678_9abc),
        task: 35,
        seq: u64::MAX - 1,
        payload_len: 1 << 20,
    };
    let b = h.to_bytes();
    assert_eq!(&b[..4], b"TSRW");
    let f = Frame::new_unchecked(&b[..]);
    assert_eq!(HeaderRepr::parse(&f, &Limits::LARGE), Ok(h));
    assert_eq!(f.sender(), 0xabcd);
    assert_eq!(f.seq(), u64::MAX - 1);
    assert_eq!(h.frame_len(), HEADER_LEN + (1 << 20) + TAG_LEN);
    // Header alone passes check_header_len, not check_len.
    assert!(f.check_header_len().is_ok());
    assert_eq!(f.check_len(), Err(WireError::Truncated));
}

/// Emits a valid insecure frame for `m` and lets `tweak` damage it.
fn damaged(m: &Message<'_>, tweak: impl FnOnce(&mut Vec<u8>)) -> Result<(), WireError> {
    let mut buf = vec![0u8; 1024];
    let n = wire::encode(m, 1, 1, None, &mut buf).unwrap();
    buf.truncate(n);
    tweak(&mut buf);
    let mut w = ReplayWindow::new();
    let mut s = AuthStats::default();
    wire::decode(&mut buf, None, &Limits::LARGE, &mut w, &mut s).map(|_| ())
}

fn set_len(buf: &mut [u8], len: u32) {
    buf[28..32].copy_from_slice(&len.to_le_bytes());
}

#[test]
fn every_error_kind() {
    let data = bytes_of(&values(24, 0.0));
    let t = Tensor::new(region(0, 4, 0, 3), 2, &data).unwrap();
    let res = Message::Result {
        frame: FK,
        tile: 1,
        output: t,
    };
    let l = Limits::LARGE;

    // Truncated: header, payload, field.
    assert_eq!(damaged(&res, |b| b.truncate(20)), Err(WireError::Truncated));
    assert_eq!(damaged(&res, |b| b.truncate(40)), Err(WireError::Truncated));
    assert_eq!(
        Message::parse(Kind::Register, &[1, 2, 3], &l),
        Err(WireError::Truncated)
    );
    // Trailing bytes.
    assert_eq!(
        Message::parse(Kind::Heartbeat, &[0], &l),
        Err(WireError::TrailingBytes)
    );
    // Oversized: payload, channels, side, tensor bytes.
    let small = Limits {
        max_payload: 64,
        max_channels: 1,
        max_side: 3,
    };
    let mut w = ReplayWindow::new();
    let mut s = AuthStats::default();
    let mut buf = vec![0u8; 1024];
    let n = wire::encode(&res, 1, 1, None, &mut buf).unwrap();
    assert_eq!(
        wire::decode(&mut buf[..n], None, &small, &mut w, &mut s).map(|_| ()),
        Err(WireError::Oversized)
    );
    let mut p = vec![0u8; res.buffer_len()];
    res.emit(&mut p).unwrap();
    let lim_ch = Limits {
        max_channels: 1,
        ..l
    };
    assert_eq!(
        Message::parse(Kind::Result, &p, &lim_ch),
        Err(WireError::Oversized)
    );
    let lim_side = Limits { max_side: 3, ..l };
    assert_eq!(
        Message::parse(Kind::Result, &p, &lim_side),
        Err(WireError::Oversized)
    );
    let lim_payload = Limits {
        max_payload: 50,
        ..l
    };
    assert_eq!(
        Message::parse(Kind::Result, &p[..40], &lim_payload),
        Err(WireError::Oversized)
    );
    // Bad magic, version, kind.
    assert_eq!(damaged(&res, |b| b[0] = b'X'), Err(WireError::BadMagic));
    assert_eq!(damaged(&res, |b| b[4] = 2), Err(WireError::UnknownVersion));
    assert_eq!(damaged(&res, |b| b[5] = 0), Err(WireError::UnknownKind));
    assert_eq!(damaged(&res, |b| b[5] = 200), Err(WireError::UnknownKind));
    // Bad values: flags, reserved, enum tags, inverted region, side bits.
    assert_eq!(damaged(&res, |b| b[6] = 2), Err(WireError::BadValue));
    assert_eq!(damaged(&res, |b| b[7] = 1), Err(WireError::BadValue));
    assert_eq!(damaged(&res, |b| b[19] = 1), Err(WireError::BadValue));
    assert_eq!(
        Message::parse(Kind::Hello, &[1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0], &l),
        Err(WireError::BadValue)
    );
    // A Hello without its model fingerprint (an older node's) is short.
    assert_eq!(
        Message::parse(Kind::Hello, &[1, 0, 1], &l),
        Err(WireError::Truncated)
    );
    assert_eq!(
        Message::parse(Kind::StealReply, &[2, 0, 0], &l),
        Err(WireError::BadValue)
    );
    assert_eq!(
        Message::parse(Kind::StealReply, &[0, 1, 0], &l),
        Err(WireError::BadValue)
    );
    assert_eq!(
        Message::parse(Kind::FrameDone, &[0, 0, 0, 0, 0, 0, 7], &l),
        Err(WireError::BadValue)
    );
    assert_eq!(
        Message::parse(Kind::StripRequest, &[0, 0, 0, 0, 0, 0, 0, 0, 16], &l),
        Err(WireError::BadValue)
    );
    let mut inv = p.clone();
    inv[8..12].copy_from_slice(&9u32.to_le_bytes()); // x.start 9 > x.end 4
    assert_eq!(
        Message::parse(Kind::Result, &inv, &l),
        Err(WireError::BadValue)
    );
    let mut task = vec![0u8; 9 + 20];
    task[8] = 2; // mode
    assert_eq!(
        Message::parse(Kind::Task, &task, &l),
        Err(WireError::BadValue)
    );
    let mut strip = vec![0u8; 10 + 22];
    strip[8] = 1; // one entry
    strip[11] = 4; // side 4
    assert_eq!(
        Message::parse(Kind::Strips, &strip, &l),
        Err(WireError::BadValue)
    );
    // Tensor size: data shorter than declared, or a Tensor built with the wrong length.
    assert_eq!(
        Message::parse(Kind::Result, &p[..p.len() - 4], &l),
        Err(WireError::TensorSize)
    );
    assert_eq!(
        Tensor::new(region(0, 2, 0, 2), 1, &[0; 12]),
        Err(WireError::TensorSize)
    );
    let bad = Message::Result {
        frame: FK,
        tile: 1,
        output: Tensor {
            region: region(0, 2, 0, 2),
            channels: 1,
            data: &[0; 12],
            precision: Precision::F32,
        },
    };
    assert_eq!(bad.emit(&mut [0; 64]), Err(WireError::TensorSize));
    // A declared payload longer than the message: trailing bytes.
    assert_eq!(
        damaged(&Message::Heartbeat, |b| {
            set_len(b, 2);
            b.extend_from_slice(&[0, 0]);
        }),
        Err(WireError::TrailingBytes)
    );
    // Buffer too small.
    assert_eq!(
        wire::encode(&res, 1, 1, None, &mut [0u8; 40]),
        Err(WireError::BufferTooSmall)
    );
    assert_eq!(t.read_f32(&mut [0.0; 3]), Err(WireError::BufferTooSmall));
    // Inconsistent header and payload.
    assert_eq!(damaged(&res, |b| b[16] = 9), Err(WireError::Inconsistent));
    assert_eq!(damaged(&res, |b| b[12] ^= 1), Err(WireError::Inconsistent));
    // Auth mode, forged and replayed are in wire_auth.rs.
    for e in [
        WireError::Truncated,
        WireError::AuthMode,
        WireError::Forged,
        WireError::Replayed,
    ] {
        let text = e.to_string();
        assert!(!text.is_empty());
        let _: &dyn core::error::Error = &e;
    }
}

#[test]
fn tensor_helpers_little_endian() {
    let v = [1.0f32, -2.5, f32::MAX, 0.0, 3.25, -0.0];
    let mut buf = [0u8; 24];
    let t = Tensor::from_f32(region(0, 3, 0, 2), 1, &v, &mut buf).unwrap();
    assert_eq!(&t.data[..4], &[0, 0, 0x80, 0x3f]); // 1.0f32 little-endian
    let mut out = [0f32; 8];
    assert_eq!(t.read_f32(&mut out), Ok(6));
    assert_eq!(&out[..6], &v);
    assert!(t.values().eq(v.iter().copied()));
    let view = FeatureView::new(&v, region(0, 3, 0, 2), 1).unwrap();
    let mut buf2 = [0u8; 24];
    assert_eq!(Tensor::from_view(&view, &mut buf2).unwrap(), t);
    assert_eq!(
        Tensor::from_f32(region(0, 3, 0, 2), 1, &v[..5], &mut [0u8; 24]),
        Err(WireError::TensorSize)
    );
    for p in Policy::ALL {
        assert_eq!(Policy::from_code(p.code()), Ok(p));
    }
    assert_eq!(Policy::from_code(5), Err(WireError::BadValue));
}

#[test]
fn strips_view_iterates_entries() {
    with_fixture(|msgs| {
        let Some(Message::Strips { strips, .. }) = msgs
            .iter()
            .find(|m| matches!(m, Message::Strips { tile: 0, .. }))
        else {
            panic!()
        };
        let e: Vec<_> = strips.iter().collect();
        assert_eq!(e.len(), 2);
        assert_eq!(strips.count(), 2);
        assert_eq!((e[0].layer, e[0].side), (0, Side::Below));
        assert_eq!((e[1].layer, e[1].side), (2, Side::Left));
        assert_eq!(e[1].tensor.region, region(4, 6, 0, 4));
        assert!(e[1].tensor.values().eq(values(16, 8.0)));
    });
}

fn drain(mut e: FrameEncoder<'_>, chunk: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut c = vec![0u8; chunk];
    let total = e.frame_len();
    loop {
        let n = e.fill(&mut c);
        if n == 0 {
            break;
        }
        out.extend_from_slice(&c[..n]);
    }
    assert!(e.is_done());
    assert_eq!(e.remaining(), 0);
    assert_eq!(out.len(), total);
    out
}

#[test]
fn streaming_encoder_matches_buffered_encode() {
    with_fixture(|msgs| {
        for key in [Some(&KEY), None] {
            for m in msgs {
                let mut buf = vec![0u8; 1024];
                let n = wire::encode(m, 4, 77, key, &mut buf).unwrap();
                for chunk in [1, 3, 16, 33, 4096] {
                    let e = FrameEncoder::new(m, Body::Message, 4, 77, key).unwrap();
                    assert_eq!(drain(e, chunk), buf[..n], "{m:?} chunk {chunk}");
                }
            }
        }
    });
}

#[test]
fn streaming_from_f32_values_and_feature_views() {
    let v = values(2 * 5 * 7, 0.5);
    let r = region(1, 8, 2, 7);
    let b = bytes_of(&v);
    let full = Message::Result {
        frame: FK,
        tile: 3,
        output: Tensor::new(r, 2, &b).unwrap(),
    };
    let described = Message::Result {
        frame: FK,
        tile: 3,
        output: Tensor {
            region: r,
            channels: 2,
            data: &[],
            precision: Precision::F32,
        },
    };
    let mut buf = vec![0u8; 1024];
    let n = wire::encode(&full, 2, 5, Some(&KEY), &mut buf).unwrap();
    for chunk in [1, 5, 64, 1000] {
        let e = FrameEncoder::new(&described, Body::Values(&v), 2, 5, Some(&KEY)).unwrap();
        assert_eq!(drain(e, chunk), buf[..n]);
    }
    assert_eq!(
        FrameEncoder::new(&described, Body::Values(&v[1..]), 2, 5, None).unwrap_err(),
        WireError::TensorSize
    );
    assert_eq!(
        FrameEncoder::new(&Message::Heartbeat, Body::Values(&v), 2, 5, None).unwrap_err(),
        WireError::BadValue
    );

    // The same tensor streamed out of a larger map it sits in == its values copied out.
    let big_r = region(0, 10, 0, 9);
    let big = values(2 * 10 * 9, 0.25);
    let view = FeatureView::new(&big, big_r, 2).unwrap();
    let mut cut = vec![0.0f32; 2 * 5 * 7];
    copy_overlap(&view, &mut FeatureViewMut::new(&mut cut, r, 2).unwrap());
    let copied = FrameEncoder::new(&described, Body::Values(&cut), 2, 5, Some(&KEY)).unwrap();
    let expected = drain(copied, 1000);
    for chunk in [1, 3, 5, 29, 64, 1000] {
        let e = FrameEncoder::new(&described, Body::Region(view), 2, 5, Some(&KEY)).unwrap();
        assert_eq!(e.frame_len(), expected.len());
        assert_eq!(drain(e, chunk), expected, "chunk {chunk}");
    }
    let short = FeatureView::new(&big, region(2, 10, 0, 9), 2).unwrap();
    let thin = FeatureView::new(&big, big_r, 1).unwrap();
    for bad in [short, thin] {
        assert_eq!(
            FrameEncoder::new(&described, Body::Region(bad), 2, 5, None).unwrap_err(),
            WireError::TensorSize
        );
    }

    // Strips straight from feature views == StripsWriter + encode.
    let s1 = values(3 * 2, 1.0);
    let s2 = values(4, 2.0);
    let e1 = FeatureView::new(&s1, region(0, 3, 5, 7), 1).unwrap();
    let e2 = FeatureView::new(&s2, region(3, 4, 0, 2), 2).unwrap();
    let mut sb = vec![0u8; 256];
    let mut w = StripsView::writer(&mut sb);
    w.push(1, Side::Right, &e1).unwrap();
    w.push(4, Side::Above, &e2).unwrap();
    let strips = w.finish();
    let m = Message::Strips {
        frame: FK,
        tile: 4,
        strips,
    };
    let n = wire::encode(&m, 6, 1, Some(&KEY), &mut buf).unwrap();
    let src = [
        StripSource {
            layer: 1,
            side: Side::Right,
            view: e1,
        },
        StripSource {
            layer: 4,
            side: Side::Above,
            view: e2,
        },
    ];
    let shell = Message::Strips {
        frame: FK,
        tile: 4,
        strips: StripsView::EMPTY,
    };
    for chunk in [1, 7, 22, 500] {
        let e = FrameEncoder::new(&shell, Body::Strips(&src), 6, 1, Some(&KEY)).unwrap();
        assert_eq!(drain(e, chunk), buf[..n]);
    }
}

#[test]
fn decoder_yields_frames_from_any_chunking() {
    with_fixture(|msgs| {
        let mut sender = Sender::new(3, 1_000, Some(KEY.clone()));
        let mut stream = Vec::new();
        for m in msgs {
            let mut buf = vec![0u8; 1024];
            let n = sender.encode(m, &mut buf).unwrap();
            stream.extend_from_slice(&buf[..n]);
        }
        assert_eq!(sender.next_seq(), 1_000 + msgs.len() as u64);
        for chunk in [1, 2, 31, 32, 33, 100, 10_000] {
            let mut rx = Receiver::new(Some(KEY.clone()), Limits::LARGE);
            let mut window = ReplayWindow::new();
            let mut dec = FrameDecoder::new(vec![0u8; 512], Limits::LARGE);
            let mut got = 0;
            for piece in stream.chunks(chunk) {
                let mut rest = piece;
                while !rest.is_empty() {
                    // Read through space()/commit() as a socket would.
                    let space = dec.space();
                    let k = space.len().min(rest.len());
                    space[..k].copy_from_slice(&rest[..k]);
                    dec.commit(k);
                    rest = &rest[k..];
                    while let Some(f) = dec.next_frame().unwrap() {
                        let (_, m) = rx.decode(f, &mut window).unwrap();
                        assert_eq!(m, msgs[got]);
                        got += 1;
                    }
                }
            }
            assert_eq!(got, msgs.len());
            assert_eq!(dec.buffered(), 0);
            assert_eq!(rx.stats().accepted, msgs.len() as u64);
        }
    });
}

#[test]
fn decoder_rejects_oversized_before_payload_and_stays_failed() {
    let mut h = HeaderRepr::for_message(&Message::Heartbeat, 1, 1, false);
    h.payload_len = 10_000;
    let mut dec = FrameDecoder::new([0u8; 256], Limits::LARGE);
    assert_eq!(dec.needed(), HEADER_LEN);
    assert_eq!(dec.feed(&h.to_bytes()), HEADER_LEN);
    assert_eq!(dec.next_frame().unwrap_err(), WireError::Oversized);
    assert_eq!(dec.failed(), Some(WireError::Oversized));
    assert_eq!(dec.next_frame().unwrap_err(), WireError::Oversized);
    // Within the buffer but over the limits.
    let mut dec = FrameDecoder::new(
        [0u8; 256],
        Limits {
            max_payload: 16,
            ..Limits::LARGE
        },
    );
    h.payload_len = 100;
    dec.feed(&h.to_bytes());
    assert_eq!(dec.next_frame().unwrap_err(), WireError::Oversized);
    // Garbage is rejected as soon as a header's worth is in.
    let mut dec = FrameDecoder::new([0u8; 256], Limits::LARGE);
    dec.feed(&[0xff; 31]);
    assert_eq!(dec.next_frame(), Ok(None));
    dec.feed(&[0xff]);
    assert_eq!(dec.next_frame().unwrap_err(), WireError::BadMagic);
    // needed() counts the payload once the header is in.
    let mut dec = FrameDecoder::new([0u8; 256], Limits::LARGE);
    h.payload_len = 10;
    dec.feed(&h.to_bytes());
    assert_eq!(dec.needed(), 10);
    assert_eq!(dec.next_frame(), Ok(None));
}

#[test]
fn sender_never_wraps_its_sequence_and_tiny_decoder_fails() {
    let mut s = Sender::new(1, u64::MAX - 1, None);
    let mut buf = [0u8; 64];
    assert!(s.encode(&Message::Heartbeat, &mut buf).is_ok());
    assert_eq!(
        s.encode(&Message::Heartbeat, &mut buf),
        Err(WireError::Oversized)
    );
    assert_eq!(
        s.stream(&Message::Heartbeat, Body::Message).unwrap_err(),
        WireError::Oversized
    );
    let mut dec = FrameDecoder::new([0u8; 16], Limits::LARGE);
    assert_eq!(dec.next_frame().unwrap_err(), WireError::BufferTooSmall);
}
