//! Golden bytes: one message of every kind, and whole frames, against fixed byte strings.
//!
//! The round-trip tests prove that `parse` undoes `emit`; these prove the layout itself does
//! not move (a refactor of the codec, or a field reordered on both sides, fails here). The
//! payloads below were written by hand from the layout tables, not copied from the encoder's
//! output, and every field holds a distinct value, so a swapped field shows as swapped bytes.
//! The sealed frame's ciphertext and tag cannot be derived by hand: they were recorded from
//! the encoder before `wire/` was split into one file per concept.

use tessera_core::ftp::{Mode, Side};
use tessera_core::tensor::FeatureView;
use tessera_core::wire::{
    self, AuthStats, Body, FrameEncoder, FrameKey, Key, Kind, Limits, Message, ReplayWindow, Role,
    StripSource, StripsView, Tensor,
};
use tessera_core::wire::{PictureBytes, PictureFormat, Precision, StripHolders};
use tessera_core::{Region, Span};

/// Frame `0x05060708` of origin `0x0304`: `04 03` then `08 07 06 05` on the wire.
const FK: FrameKey = FrameKey::new(0x0304, 0x0506_0708);
const FK_HEX: &str = "040308070605";

/// Two channels over the 1×1 region `x 1..2, y 3..4`: values 1.0 and -2.0.
const TENSOR: [u8; 8] = [0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0];
/// The tensor's descriptor (`x0 x1 y0 y1 channels`, u32 each) and data.
const TENSOR_HEX: &str = "01000000020000000300000004000000020000000000803f000000c0";

/// Strip count 2, then the entries (layer, side, descriptor, data): layer 2 below over
/// `5..6 × 7..8` (0.5), layer 3 left over `9..10 × 11..12` (-1.0), one channel each.
const STRIPS_HEX: &str = concat!(
    "0200",
    "0200",
    "05000000060000000700000008000000",
    "01000000",
    "0000003f",
    "0303",
    "090000000a0000000b0000000c000000",
    "01000000",
    "000080bf",
);

fn region(x0: u32, x1: u32, y0: u32, y1: u32) -> Region {
    Region::new(Span::new(x0, x1), Span::new(y0, y1))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

const STRIP_VALUES: [[f32; 1]; 2] = [[0.5], [-1.0]];

fn strip_sources() -> [StripSource<'static>; 2] {
    [
        StripSource {
            layer: 2,
            side: Side::Below,
            view: FeatureView::new(&STRIP_VALUES[0], region(5, 6, 7, 8), 1).unwrap(),
        },
        StripSource {
            layer: 3,
            side: Side::Left,
            view: FeatureView::new(&STRIP_VALUES[1], region(9, 10, 11, 12), 1).unwrap(),
        },
    ]
}

/// One message of every kind (and both `StealReply` forms) with its payload in hex.
fn golden<'a>(t: Tensor<'a>, strips: StripsView<'a>) -> Vec<(Message<'a>, String)> {
    let fk = |rest: &str| format!("{FK_HEX}{rest}");
    vec![
        (
            Message::Hello {
                node: 0x0102,
                role: Role::Edge,
                model: 0x1122_3344_5566_7788,
            },
            "0201".to_owned() + "01" + "8877665544332211",
        ),
        (
            Message::Register {
                frame: FK,
                tiles: 0x090a,
            },
            fk("0a09"),
        ),
        (Message::Unregister { frame: FK }, fk("")),
        (Message::StealRequest, String::new()),
        (
            Message::StealReply {
                victim: Some(0x0b0c),
            },
            "010c0b".into(),
        ),
        (Message::StealReply { victim: None }, "000000".into()),
        (Message::StealTask, String::new()),
        (
            Message::Task {
                frame: FK,
                tile: 0x0d0e,
                mode: Mode::Reuse,
                input: t,
            },
            fk(&format!("0e0d01{TENSOR_HEX}")),
        ),
        (Message::NoTask, String::new()),
        (Message::TaskRequest, String::new()),
        (
            Message::Result {
                frame: FK,
                tile: 0x0f10,
                output: t,
            },
            fk(&format!("100f{TENSOR_HEX}")),
        ),
        (
            Message::Strips {
                frame: FK,
                tile: 0x1112,
                strips,
            },
            fk(&format!("1211{STRIPS_HEX}")),
        ),
        (
            Message::StripRequest {
                frame: FK,
                tile: 0x1314,
                sides: 0b1010,
            },
            fk("14130a"),
        ),
        (
            Message::Coverage {
                frame: FK,
                tile: 0x1516,
            },
            fk("1615"),
        ),
        (
            Message::FrameSubmit {
                frame: FK,
                input: t,
            },
            fk(TENSOR_HEX),
        ),
        (
            Message::FrameDone {
                frame: FK,
                complete: true,
            },
            fk("01"),
        ),
        (
            Message::LayerTask {
                frame: FK,
                layer: 0x17,
                stripe: 0x1819,
                output: region(0x1a, 0x1b, 0x1c, 0x1d),
                input: t,
            },
            fk(&format!(
                "171918{}{TENSOR_HEX}",
                "1a0000001b0000001c0000001d000000"
            )),
        ),
        (
            Message::LayerResult {
                frame: FK,
                layer: 0x1e,
                stripe: 0x1f20,
                output: t,
            },
            fk(&format!("1e201f{TENSOR_HEX}")),
        ),
        (Message::Heartbeat, String::new()),
        (Message::Reject { code: 0x2122 }, "2221".into()),
        (
            Message::CodedTask {
                frame: FK,
                layer: 0x23,
                shard: 0x24,
                budget_us: 0x2526_2728,
                input: t,
            },
            fk(&format!("232428272625{TENSOR_HEX}")),
        ),
        (
            Message::CodedResult {
                frame: FK,
                layer: 0x29,
                shard: 0x2a,
                output: t,
            },
            fk(&format!("292a{TENSOR_HEX}")),
        ),
        (
            Message::PictureChunk {
                frame: FK,
                format: PictureFormat::Png,
                width: 0x2b2c,
                height: 0x2d2e,
                total: 0x2f30_3132,
                offset: 0x3334_3536,
                data: PictureBytes(&[0x37, 0x38]),
            },
            fk("022c2b2e2d3231302f36353433020000003738"),
        ),
        (
            Message::TileTask {
                frame: FK,
                tile: 0x3940,
                mode: Mode::Reuse,
            },
            fk("403901"),
        ),
        (
            // Holders by side (below, right, above, left): node 1, none (0xffff), 0x0203, none.
            Message::StripHolders {
                frame: FK,
                tile: 0x3940,
                holders: StripHolders([Some(1), None, Some(0x0203), None]),
            },
            fk("40390100ffff0302ffff"),
        ),
        (
            // The f16 tensor (1.0, -2.0): precision tag 1 in the top byte of the channel word.
            Message::Result {
                frame: FK,
                tile: 0x4142,
                output: Tensor::packed(region(1, 2, 3, 4), 2, Precision::F16, &F16_TENSOR).unwrap(),
            },
            fk(concat!(
                "4241",
                "01000000020000000300000004000000",
                "02000001",
                "003c00c0"
            )),
        ),
    ]
}

/// The golden tensor's values (1.0, -2.0) as little-endian halves.
const F16_TENSOR: [u8; 4] = [0x00, 0x3c, 0x00, 0xc0];

/// Runs `f` on the golden table (the strips are encoded into a local buffer).
fn with_golden(f: impl FnOnce(&[(Message<'_>, String)])) {
    let t = Tensor::new(region(1, 2, 3, 4), 2, &TENSOR).unwrap();
    let mut sbuf = [0u8; 128];
    let mut w = StripsView::writer(&mut sbuf);
    for s in strip_sources() {
        w.push(s.layer, s.side, &s.view).unwrap();
    }
    let strips = w.finish();
    f(&golden(t, strips));
}

#[test]
fn every_kind_has_a_golden_payload() {
    with_golden(|table| {
        for k in Kind::ALL {
            assert!(table.iter().any(|(m, _)| m.kind() == k), "{k:?} missing");
        }
    });
}

#[test]
fn descriptor_and_prefix_lengths_are_the_documented_ones() {
    assert_eq!(wire::TENSOR_DESC_LEN, 20);
    assert_eq!(wire::STRIP_DESC_LEN, 22);
    // LayerTask: frame key 6, layer 1, stripe 2, region 16, tensor descriptor 20.
    assert_eq!(wire::MAX_PREFIX_LEN, 45);
    with_golden(|table| {
        let longest = table.iter().map(|(m, _)| m.prefix_len()).max();
        assert_eq!(longest, Some(wire::MAX_PREFIX_LEN));
    });
}

#[test]
fn payloads_are_the_golden_bytes() {
    with_golden(|table| {
        for (m, want) in table {
            let mut buf = [0u8; 256];
            let n = m.emit(&mut buf).unwrap();
            assert_eq!(hex(&buf[..n]), *want, "emit {:?}", m.kind());
            assert_eq!(m.buffer_len(), n, "buffer_len {:?}", m.kind());
            let bytes = unhex(want);
            let parsed = Message::parse(m.kind(), &bytes, &Limits::LARGE).unwrap();
            assert_eq!(parsed, *m, "parse {:?}", m.kind());
        }
    });
}

/// `Coverage` from sender `0x3132`, sequence `0x3334353637383940`, in clear: the 32-byte
/// header (fields in order: magic `TSRW`, version 1, kind 13, flags, reserved, sender, origin,
/// number, task, reserved, sequence, payload length 8), then the payload.
#[rustfmt::skip]
const COVERAGE_FRAME: &str = concat!(
    "54535257", "01", "0d", "00", "00", "3231", "0403", "08070605", "1615", "0000", "4039383736353433", "08000000",
    "040308070605", "1615",
);

/// The same frame sealed with key `[0x42; 32]`: flags bit 0 set, then the ciphertext and the
/// tag (recorded, see the file's doc).
#[rustfmt::skip]
const COVERAGE_SEALED: &str = concat!(
    "54535257", "01", "0d", "01", "00", "3231", "0403", "08070605", "1615", "0000", "4039383736353433", "08000000",
    "535efb75a0e0c8f4", "8e2a64bfe90f895bcde5aabbedad96fa",
);

#[test]
fn frames_are_the_golden_bytes() {
    let m = Message::Coverage {
        frame: FK,
        tile: 0x1516,
    };
    let key = Key::new([0x42; 32]);
    for (k, want) in [(None, COVERAGE_FRAME), (Some(&key), COVERAGE_SEALED)] {
        let mut buf = [0u8; 128];
        let n = wire::encode(&m, 0x3132, 0x3334_3536_3738_3940, k, &mut buf).unwrap();
        assert_eq!(hex(&buf[..n]), want, "sealed: {}", k.is_some());
        let mut e = FrameEncoder::new(&m, Body::Message, 0x3132, 0x3334_3536_3738_3940, k).unwrap();
        let mut streamed = [0u8; 128];
        let s = e.fill(&mut streamed);
        assert_eq!(
            hex(&streamed[..s]),
            want,
            "streamed, sealed: {}",
            k.is_some()
        );
        let mut bytes = unhex(want);
        let (mut window, mut stats) = (ReplayWindow::new(), AuthStats::default());
        let (_, parsed) =
            wire::decode(&mut bytes, k, &Limits::LARGE, &mut window, &mut stats).unwrap();
        assert_eq!(parsed, m);
    }
}

/// A `Strips` frame streamed from views (`Body::Strips`) writes the same golden payload as
/// one built from encoded entries.
#[test]
fn streamed_strips_are_the_golden_bytes() {
    let sources = strip_sources();
    let m = Message::Strips {
        frame: FK,
        tile: 0x1112,
        strips: StripsView::EMPTY,
    };
    let mut e = FrameEncoder::new(&m, Body::Strips(&sources), 1, 2, None).unwrap();
    let mut out = [0u8; 256];
    let n = e.fill(&mut out);
    assert!(e.is_done());
    assert_eq!(
        hex(&out[wire::HEADER_LEN..n]),
        format!("{FK_HEX}1211{STRIPS_HEX}")
    );
}
