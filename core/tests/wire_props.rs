//! Property tests: parsers never panic on arbitrary bytes; emit → parse is the identity on
//! random messages; streaming and buffered encodings agree; any bit flip of a sealed frame is
//! rejected.

use proptest::prelude::*;
use tessera_core::ftp::{Mode, Side};
use tessera_core::wire::{
    self, open, AuthStats, Body, FrameDecoder, FrameEncoder, FrameKey, Key, Kind, Limits, Message,
    PictureBytes, PictureFormat, ReplayWindow, Role, StripHolders, StripsView, Tensor, HEADER_LEN,
};
use tessera_core::{Region, Span};

const KEY: Key = Key::new([0xa5; 32]);

type Rect = (u32, u32, u32, u32);

#[derive(Clone, Debug)]
struct Spec {
    kind: u8,
    a: u16,
    b: u32,
    c: u16,
    d: u8,
    flag: bool,
    region: (u32, u32, u32, u32),
    out: (u32, u32, u32, u32),
    channels: u32,
    seed: u32,
    strips: Vec<(u8, u8, Rect, u32)>,
}

fn rect() -> impl Strategy<Value = (u32, u32, u32, u32)> {
    (0u32..600, 0u32..6, 0u32..600, 0u32..6)
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        (
            1u8..=24,
            any::<u16>(),
            any::<u32>(),
            any::<u16>(),
            any::<u8>(),
            any::<bool>(),
        ),
        (rect(), rect(), 0u32..4, any::<u32>()),
        proptest::collection::vec((any::<u8>(), 0u8..4, rect(), 0u32..3), 0..4),
    )
        .prop_map(
            |((kind, a, b, c, d, flag), (region, out, channels, seed), strips)| Spec {
                kind,
                a,
                b,
                c,
                d,
                flag,
                region,
                out,
                channels,
                seed,
                strips,
            },
        )
}

fn reg((x, w, y, h): (u32, u32, u32, u32)) -> Region {
    Region::new(Span::new(x, x + w), Span::new(y, y + h))
}

fn noise(n: usize, mut s: u32) -> Vec<u8> {
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 24) as u8
        })
        .collect()
}

/// Owned backing for a spec's message.
struct Built {
    data: Vec<u8>,
    strips: Vec<u8>,
}

fn build(s: &Spec) -> Built {
    let r = reg(s.region);
    let n = 4 * s.channels as usize * r.area() as usize;
    let mut strips = vec![0u8; 4096];
    let len = {
        let mut w = StripsView::writer(&mut strips);
        for (i, (layer, side, rr, ch)) in s.strips.iter().enumerate() {
            let rr = reg(*rr);
            let d = noise(4 * *ch as usize * rr.area() as usize, s.seed ^ i as u32);
            let t = Tensor::new(rr, *ch, &d).unwrap();
            w.push_tensor(*layer, Side::ALL[*side as usize], &t)
                .unwrap();
        }
        w.finish().as_bytes().len()
    };
    strips.truncate(len);
    Built {
        data: noise(n, s.seed),
        strips,
    }
}

fn message<'a>(s: &Spec, b: &'a Built) -> Message<'a> {
    let frame = FrameKey::new(s.a, s.b);
    let t = Tensor::new(reg(s.region), s.channels, &b.data).unwrap();
    match Kind::from_u8(s.kind).unwrap() {
        Kind::Hello => Message::Hello {
            node: s.a,
            role: if s.flag { Role::Edge } else { Role::Gateway },
            model: u64::from(s.b) << 32 | u64::from(s.c),
        },
        Kind::Register => Message::Register { frame, tiles: s.c },
        Kind::Unregister => Message::Unregister { frame },
        Kind::StealRequest => Message::StealRequest,
        Kind::StealReply => Message::StealReply {
            victim: s.flag.then_some(s.c),
        },
        Kind::StealTask => Message::StealTask,
        Kind::Task => Message::Task {
            frame,
            tile: s.c,
            mode: if s.flag { Mode::Reuse } else { Mode::Plain },
            input: t,
        },
        Kind::NoTask => Message::NoTask,
        Kind::TaskRequest => Message::TaskRequest,
        Kind::Result => Message::Result {
            frame,
            tile: s.c,
            output: t,
        },
        Kind::Strips => Message::Strips {
            frame,
            tile: s.c,
            strips: StripsView::new_checked(s.strips.len() as u16, &b.strips, &Limits::LARGE)
                .unwrap(),
        },
        Kind::StripRequest => Message::StripRequest {
            frame,
            tile: s.c,
            sides: s.d & 15,
        },
        Kind::Coverage => Message::Coverage { frame, tile: s.c },
        Kind::FrameSubmit => Message::FrameSubmit { frame, input: t },
        Kind::FrameDone => Message::FrameDone {
            frame,
            complete: s.flag,
        },
        Kind::LayerTask => Message::LayerTask {
            frame,
            layer: s.d,
            stripe: s.c,
            output: reg(s.out),
            input: t,
        },
        Kind::LayerResult => Message::LayerResult {
            frame,
            layer: s.d,
            stripe: s.c,
            output: t,
        },
        Kind::Heartbeat => Message::Heartbeat,
        Kind::Reject => Message::Reject { code: s.c },
        Kind::CodedTask => Message::CodedTask {
            frame,
            layer: s.d,
            shard: s.c as u8,
            budget_us: u32::from(s.c) << 8 | u32::from(s.d),
            input: t,
        },
        Kind::CodedResult => Message::CodedResult {
            frame,
            layer: s.d,
            shard: s.c as u8,
            output: t,
        },
        Kind::PictureChunk => Message::PictureChunk {
            frame,
            format: [PictureFormat::Rgb8, PictureFormat::Jpeg, PictureFormat::Png]
                [s.d as usize % 3],
            width: s.a,
            height: s.c,
            total: s.b,
            offset: s.b / 3,
            data: PictureBytes(&b.data),
        },
        Kind::TileTask => Message::TileTask {
            frame,
            tile: s.c,
            mode: if s.flag { Mode::Reuse } else { Mode::Plain },
        },
        // Any id but the reserved one (`PROBE`) names a holder; `d`'s bits say which sides have one.
        Kind::StripHolders => Message::StripHolders {
            frame,
            tile: s.c,
            holders: StripHolders(core::array::from_fn(|i| {
                (s.d & (1 << i) != 0).then_some(s.a.wrapping_add(i as u16) % 0xffff)
            })),
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn parse_never_panics(kind in 0u8..=255, bytes in proptest::collection::vec(any::<u8>(), 0..200),
                          max_payload in 0u32..300, max_channels in 0u32..8, max_side in 0u32..1000) {
        let l = Limits { max_payload, max_channels, max_side };
        if let Ok(k) = Kind::from_u8(kind) {
            if let Ok(m) = Message::parse(k, &bytes, &l) {
                // Whatever parses re-emits to the same bytes.
                let mut out = vec![0u8; m.buffer_len()];
                prop_assert_eq!(m.emit(&mut out), Ok(bytes.len()));
                prop_assert_eq!(&out, &bytes);
                if let Message::Strips { strips, .. } = m {
                    prop_assert_eq!(strips.iter().count(), strips.count() as usize);
                }
            }
        }
    }

    #[test]
    fn decode_and_decoder_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300),
                                      secure in any::<bool>(), chunk in 1usize..50, cap in 0usize..200) {
        let key = secure.then_some(&KEY);
        let l = Limits { max_payload: 256, max_channels: 8, max_side: 64 };
        let mut w = ReplayWindow::new();
        let mut st = AuthStats::default();
        let _ = wire::decode(&mut bytes.clone(), key, &l, &mut w, &mut st);
        let mut dec = FrameDecoder::new(vec![0u8; cap], l);
        'outer: for piece in bytes.chunks(chunk) {
            dec.feed(piece);
            let _ = dec.needed();
            loop {
                match dec.next_frame() {
                    Ok(Some(f)) => { let _ = wire::decode(f, key, &l, &mut w, &mut st); }
                    Ok(None) => break,
                    Err(_) => break 'outer,
                }
            }
        }
    }

    #[test]
    fn open_never_panics(h in proptest::collection::vec(any::<u8>(), HEADER_LEN..=HEADER_LEN),
                         payload in proptest::collection::vec(any::<u8>(), 0..100),
                         tag in any::<[u8; 16]>()) {
        let h: [u8; HEADER_LEN] = h.try_into().unwrap();
        let mut p = payload.clone();
        prop_assert!(open(&KEY, &h, &mut p, &tag).is_err());
        prop_assert_eq!(p, payload);
    }

    #[test]
    fn random_messages_round_trip(s in spec(), secure in any::<bool>(), chunk in 1usize..300,
                                  seq in any::<u64>(), sender in any::<u16>()) {
        let b = build(&s);
        let m = message(&s, &b);
        let key = secure.then_some(&KEY);
        // Payload.
        let mut p = vec![0u8; m.buffer_len()];
        prop_assert_eq!(m.emit(&mut p), Ok(p.len()));
        prop_assert_eq!(Message::parse(m.kind(), &p, &Limits::LARGE), Ok(m));
        // Whole frame.
        let mut buf = vec![0u8; m.buffer_len() + 64];
        let n = wire::encode(&m, sender, seq, key, &mut buf).unwrap();
        let frame = buf[..n].to_vec();
        // Streamed in random chunks: same bytes.
        let mut e = FrameEncoder::new(&m, Body::Message, sender, seq, key).unwrap();
        let mut streamed = Vec::new();
        let mut c = vec![0u8; chunk];
        loop {
            let k = e.fill(&mut c);
            if k == 0 { break; }
            streamed.extend_from_slice(&c[..k]);
        }
        prop_assert_eq!(&streamed, &frame);
        let mut w = ReplayWindow::new();
        let mut st = AuthStats::default();
        let (h, back) = wire::decode(&mut buf[..n], key, &Limits::LARGE, &mut w, &mut st).unwrap();
        prop_assert_eq!(back, m);
        prop_assert_eq!((h.sender, h.seq), (sender, seq));
    }

    #[test]
    fn any_bit_flip_of_a_sealed_frame_is_rejected(s in spec(), bit in any::<usize>()) {
        let b = build(&s);
        let m = message(&s, &b);
        let mut buf = vec![0u8; m.buffer_len() + 64];
        let n = wire::encode(&m, 1, 1, Some(&KEY), &mut buf).unwrap();
        let bit = bit % (8 * n);
        buf[bit / 8] ^= 1 << (bit % 8);
        let mut w = ReplayWindow::new();
        let mut st = AuthStats::default();
        prop_assert!(wire::decode(&mut buf[..n], Some(&KEY), &Limits::LARGE, &mut w, &mut st).is_err());
        prop_assert_eq!(st.accepted, 0);
    }
}
