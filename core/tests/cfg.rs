//! Darknet cfg parser: the real YOLOv2 cfg, error cases with line numbers, and no-panic properties.

use proptest::prelude::*;
use tessera_core::model::cfg::parse;
use tessera_core::model::weights::{file_len, param_count, Header};
use tessera_core::model::{
    Activation, CfgError, CfgErrorKind, LayerKind, Network, Shape, ShapeError,
};

const YOLO: &str = include_str!("../../data/yolov2-608.cfg");

fn yolo() -> Network {
    parse(YOLO).expect("yolov2-608.cfg parses")
}

fn s(w: u32, h: u32, c: u32) -> Shape {
    Shape::new(w, h, c)
}

#[test]
fn yolo_has_32_layers_and_input() {
    let net = yolo();
    assert_eq!(net.input(), s(608, 608, 3));
    assert_eq!(net.layers().len(), 32);
}

/// docs/design.md §2.1: kind, k, s, filters, input, output of layers 0..16.
#[test]
fn yolo_fused_stack_matches_design_table() {
    #[rustfmt::skip]
    let table: [(&str, u32, u32, u32, Shape, Shape); 16] = [
        ("conv", 3, 1, 32, s(608, 608, 3), s(608, 608, 32)),
        ("max", 2, 2, 0, s(608, 608, 32), s(304, 304, 32)),
        ("conv", 3, 1, 64, s(304, 304, 32), s(304, 304, 64)),
        ("max", 2, 2, 0, s(304, 304, 64), s(152, 152, 64)),
        ("conv", 3, 1, 128, s(152, 152, 64), s(152, 152, 128)),
        ("conv", 1, 1, 64, s(152, 152, 128), s(152, 152, 64)),
        ("conv", 3, 1, 128, s(152, 152, 64), s(152, 152, 128)),
        ("max", 2, 2, 0, s(152, 152, 128), s(76, 76, 128)),
        ("conv", 3, 1, 256, s(76, 76, 128), s(76, 76, 256)),
        ("conv", 1, 1, 128, s(76, 76, 256), s(76, 76, 128)),
        ("conv", 3, 1, 256, s(76, 76, 128), s(76, 76, 256)),
        ("max", 2, 2, 0, s(76, 76, 256), s(38, 38, 256)),
        ("conv", 3, 1, 512, s(38, 38, 256), s(38, 38, 512)),
        ("conv", 1, 1, 256, s(38, 38, 512), s(38, 38, 256)),
        ("conv", 3, 1, 512, s(38, 38, 256), s(38, 38, 512)),
        ("conv", 1, 1, 256, s(38, 38, 512), s(38, 38, 256)),
    ];
    let net = yolo();
    for (i, (kind, k, st, filters, input, output)) in table.into_iter().enumerate() {
        let l = &net.layers()[i];
        assert_eq!((l.input, l.output), (input, output), "layer {i}");
        match (&l.kind, kind) {
            (LayerKind::Conv(c), "conv") => {
                assert_eq!((c.size, c.stride, c.filters), (k, st, filters), "layer {i}");
                assert_eq!(c.pad, k / 2, "layer {i}");
                assert!(c.batch_norm, "layer {i}");
                assert_eq!(c.activation, Activation::Leaky, "layer {i}");
            }
            (LayerKind::MaxPool(p), "max") => {
                assert_eq!(
                    (p.size, p.stride, p.pad, p.offset()),
                    (k, st, 1, 0),
                    "layer {i}"
                );
            }
            (other, _) => panic!("layer {i}: expected {kind}, got {other:?}"),
        }
    }
    assert_eq!(net.layers()[15].output, s(38, 38, 256));
}

#[test]
fn yolo_tail_layers() {
    let net = yolo();
    let l = net.layers();
    assert_eq!(l[16].output, s(38, 38, 512));
    assert!(matches!(l[17].kind, LayerKind::MaxPool(_)));
    assert_eq!(l[17].output, s(19, 19, 512));
    for (i, layer) in l.iter().enumerate().take(25).skip(18) {
        assert!(layer.conv().is_some(), "layer {i}");
        assert_eq!(layer.output.w, 19, "layer {i}");
    }
    assert_eq!(l[24].output, s(19, 19, 1024));
    match &l[25].kind {
        LayerKind::Route(r) => assert_eq!(r.layers.as_slice(), &[16]),
        k => panic!("layer 25 is {k:?}"),
    }
    assert_eq!(l[25].output, s(38, 38, 512));
    assert_eq!(l[26].output, s(38, 38, 64));
    assert!(matches!(l[27].kind, LayerKind::Reorg(r) if r.stride == 2));
    assert_eq!((l[27].input, l[27].output), (s(38, 38, 64), s(19, 19, 256)));
    match &l[28].kind {
        LayerKind::Route(r) => assert_eq!(r.layers.as_slice(), &[27, 24]),
        k => panic!("layer 28 is {k:?}"),
    }
    assert_eq!(l[28].output, s(19, 19, 1280));
    assert_eq!(l[29].output, s(19, 19, 1024));
    let last_conv = l[30].conv().expect("layer 30 is a conv");
    assert!(!last_conv.batch_norm);
    assert_eq!(last_conv.activation, Activation::Linear);
    assert_eq!(l[30].output, s(19, 19, 425));
    match &l[31].kind {
        LayerKind::Region(r) => {
            assert_eq!((r.classes, r.coords, r.num, r.softmax), (80, 4, 5, true));
            assert_eq!(r.anchors.len(), 5);
            assert_eq!(r.anchors[0], (0.57273, 0.677385));
            assert_eq!(r.anchors[4], (9.77052, 9.16828));
            assert!((r.thresh - 0.6).abs() < 1e-6);
        }
        k => panic!("layer 31 is {k:?}"),
    }
    assert_eq!(l[31].output, s(19, 19, 425));
    assert_eq!(net.output(), s(19, 19, 425));
}

#[test]
fn yolo_parameter_count_and_file_size() {
    let net = yolo();
    assert_eq!(param_count(&net, 32).unwrap(), 50_983_561);
    let v01 = Header {
        major: 0,
        minor: 1,
        revision: 0,
        seen: 0,
    };
    assert_eq!(v01.len(), 16);
    // The size of the official yolo.weights (16-byte header: version 0.1, 4-byte `seen`).
    assert_eq!(file_len(&net, &v01).unwrap(), 203_934_260);
    let v02 = Header { minor: 2, ..v01 };
    assert_eq!(v02.len(), 20);
    assert_eq!(file_len(&net, &v02).unwrap(), 203_934_264);
    // The fused prefix (layers 0..16).
    let fused: usize = (0..16)
        .map(|i| tessera_core::model::weights::layer_param_count(&net, i).unwrap())
        .sum();
    assert_eq!(param_count(&net, 16).unwrap(), fused);
}

fn fails(text: &str) -> CfgError {
    match parse(text) {
        Ok(net) => panic!("parsed: {net:?}"),
        Err(e) => e,
    }
}

const NET: &str = "[net]\nwidth=32\nheight=32\nchannels=3\n";

fn with_net(rest: &str) -> String {
    format!("{NET}{rest}")
}

#[test]
fn small_cfg_with_comments_whitespace_and_defaults() {
    let text = "\u{feff}; header comment\n[network]\r\n  width = 16 \nheight=16 # inline\nchannels=3\nmomentum=0.9\nweird_key = ???\n\n[convolutional]\nfilters = 8\nsize=3\npad=1\nactivation = linear\njitter=.3\n[maxpool]\nsize=2\nstride=2\n[conv]\nfilters=4\nsize=3\nstride=2\npadding=1\nbatch_normalize=1\nactivation=leaky\ngroups=1\n[max]\n";
    let net = parse(text).unwrap();
    assert_eq!(net.input(), s(16, 16, 3));
    let l = net.layers();
    assert_eq!(l.len(), 4);
    let c0 = l[0].conv().unwrap();
    assert_eq!(
        (c0.size, c0.stride, c0.pad, c0.batch_norm),
        (3, 1, 1, false)
    );
    assert_eq!(l[0].output, s(16, 16, 8));
    assert_eq!(l[1].output, s(8, 8, 8));
    let c2 = l[2].conv().unwrap();
    assert_eq!((c2.stride, c2.pad, c2.batch_norm), (2, 1, true));
    assert_eq!(l[2].output, s(4, 4, 4));
    // [max] with no keys: stride 1, size 1, padding 0.
    match l[3].kind {
        LayerKind::MaxPool(p) => assert_eq!((p.size, p.stride, p.pad), (1, 1, 0)),
        ref k => panic!("{k:?}"),
    }
    assert_eq!(l[3].output, s(4, 4, 4));
}

#[test]
fn error_lines_and_kinds() {
    let cases: &[(String, u32, CfgErrorKind)] = &[
        (with_net("[shortcut]\nfrom=-3\n"), 5, CfgErrorKind::UnknownSection),
        (
            with_net("[convolutional]\nfilters=3x\nsize=3\nactivation=leaky\n"),
            6,
            CfgErrorKind::BadNumber { key: "filters" },
        ),
        (
            with_net("[convolutional]\nsize=3\nactivation=leaky\n[maxpool]\n"),
            5,
            CfgErrorKind::MissingKey { key: "filters" },
        ),
        (
            with_net("[convolutional]\nfilters=125\nactivation=leaky\n[region]\nanchors=1,2,3,4,5\nnum=5\nclasses=20\n"),
            9,
            CfgErrorKind::AnchorCount {
                expected: 10,
                found: 5,
            },
        ),
        (
            with_net("[convolutional]\nfilters=4\nactivation=leaky\n[route]\nlayers=-2\n"),
            9,
            CfgErrorKind::RouteOutOfRange { index: -1 },
        ),
        (
            with_net("[convolutional]\nfilters=4\nactivation=leaky\n[route]\nlayers=0,1\n"),
            9,
            CfgErrorKind::RouteOutOfRange { index: 1 },
        ),
        (
            "# no net\n[convolutional]\nfilters=4\n".into(),
            2,
            CfgErrorKind::NetMissing,
        ),
        ("filters=4\n[net]\n".into(), 1, CfgErrorKind::NetMissing),
        (String::new(), 1, CfgErrorKind::NetMissing),
        (
            with_net("\n[convolutional]\nfilters=4\nactivation=mish\n"),
            8,
            CfgErrorKind::UnknownActivation,
        ),
        (
            with_net("[convolutional]\nfilters=4\nactivation=leaky\ngroups=2\n"),
            8,
            CfgErrorKind::Unsupported { key: "groups" },
        ),
        (
            with_net("[convolutional]\nfilters=4\n"),
            5,
            CfgErrorKind::MissingKey { key: "activation" },
        ),
        (
            with_net("[convolutional]\nfilters=0\nactivation=leaky\n"),
            6,
            CfgErrorKind::OutOfRange { key: "filters" },
        ),
        (
            with_net("[convolutional]\nfilters=4\nsize=100000\nactivation=leaky\n"),
            7,
            CfgErrorKind::OutOfRange { key: "size" },
        ),
        (
            with_net("[convolutional]\nfilters=4\nfilters=4\nactivation=leaky\n"),
            7,
            CfgErrorKind::DuplicateKey { key: "filters" },
        ),
        (
            with_net("[convolutional]\nfilters=4\nsize=7\nactivation=leaky\n[maxpool]\nsize=2\nstride=2\n[convolutional]\nfilters=4\nsize=33\nactivation=leaky\n"),
            12,
            CfgErrorKind::Shape(ShapeError::KernelLargerThanInput),
        ),
        (
            with_net("[convolutional]\nfilters=4\nactivation=leaky\n[net]\n"),
            8,
            CfgErrorKind::DuplicateNet,
        ),
        (
            with_net("[convolutional\n"),
            5,
            CfgErrorKind::Syntax,
        ),
        (
            with_net("[convolutional]\nfilters\n"),
            6,
            CfgErrorKind::Syntax,
        ),
        ("[net]\nwidth=32\nheight=32\n[maxpool]\n".into(), 1, CfgErrorKind::MissingKey { key: "channels" }),
        ("[net]\nwidth=-32\n".into(), 2, CfgErrorKind::BadNumber { key: "width" }),
        (NET.into(), 4, CfgErrorKind::NoLayers),
        (
            with_net("[convolutional]\nfilters=24\nactivation=leaky\n[region]\nanchors=1,1\nnum=1\nclasses=20\n"),
            8,
            CfgErrorKind::RegionChannels {
                expected: 25,
                found: 24,
            },
        ),
        (
            with_net("[convolutional]\nfilters=25\nactivation=leaky\n[region]\nanchors=1,nan\n"),
            9,
            CfgErrorKind::OutOfRange { key: "anchors" },
        ),
        (
            with_net("[convolutional]\nfilters=4\nactivation=leaky\n[route]\nlayers=-1,-1,-1,-1,-1\n"),
            9,
            CfgErrorKind::TooManyRouteInputs,
        ),
        (
            with_net("[convolutional]\nfilters=4\nactivation=leaky\n[route]\nlayers=-1,\n"),
            9,
            CfgErrorKind::BadNumber { key: "layers" },
        ),
        (
            with_net("[reorg]\nstride=3\n"),
            5,
            CfgErrorKind::Shape(ShapeError::ReorgIndivisible),
        ),
    ];
    for (text, line, kind) in cases {
        let e = fails(text);
        assert_eq!((e.line, e.kind), (*line, *kind), "cfg:\n{text}");
    }
}

#[test]
fn too_many_layers() {
    let mut text = with_net("");
    for _ in 0..48 {
        text.push_str("[maxpool]\n");
    }
    assert_eq!(parse(&text).unwrap().layers().len(), 48);
    text.push_str("[maxpool]\n");
    let e = fails(&text);
    assert_eq!((e.line, e.kind), (4 + 49, CfgErrorKind::TooManyLayers));
}

#[test]
fn error_display_names_the_line() {
    let e = fails(&with_net("[shortcut]\n"));
    assert_eq!(e.to_string(), "line 5: unknown section");
    let e = fails(&with_net("[convolutional]\nactivation=leaky\n"));
    assert_eq!(e.to_string(), "line 5: missing `filters`");
    let boxed: Box<dyn std::error::Error> = Box::new(e);
    assert!(boxed.to_string().starts_with("line 5"));
}

/// Replaces the value of the `n`-th `key=value` line of the YOLO cfg.
fn mutate_yolo(n: usize, value: &str) -> String {
    let mut seen = 0;
    YOLO.lines()
        .map(|l| {
            if l.contains('=') && !l.starts_with('#') {
                seen += 1;
                if seen == n + 1 {
                    let key = l.split('=').next().unwrap_or("");
                    return format!("{key}={value}");
                }
            }
            l.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parse_never_panics_on_arbitrary_text(text in "\\PC{0,400}") {
        let _ = parse(&text);
    }

    #[test]
    fn parse_never_panics_on_cfg_like_text(
        lines in proptest::collection::vec(
            prop_oneof![
                Just("[net]".to_string()),
                Just("[convolutional]".to_string()),
                Just("[maxpool]".to_string()),
                Just("[route]".to_string()),
                Just("[reorg]".to_string()),
                Just("[region]".to_string()),
                "(width|height|channels|filters|size|stride|pad|padding|layers|anchors|num|classes|coords|activation|batch_normalize|thresh|softmax)=-?[0-9,. ]{0,12}",
                "activation=(leaky|linear|relu)",
            ],
            0..40,
        )
    ) {
        let _ = parse(&lines.join("\n"));
    }

    #[test]
    fn parse_never_panics_on_mutated_yolo(
        n in 0usize..200,
        value in prop_oneof![
            "-?[0-9]{0,11}",
            "[0-9.eE+-]{0,10}",
            "-?[0-9]{1,3}(,-?[0-9]{1,3}){0,6}",
            "\\PC{0,12}",
        ],
    ) {
        let text = mutate_yolo(n, &value);
        if let Err(e) = parse(&text) {
            // The error points at a real line.
            prop_assert!(e.line >= 1 && e.line as usize <= text.lines().count().max(1));
        }
    }

    #[test]
    fn parse_never_panics_on_truncated_or_spliced_yolo(a in 0usize..3000, b in 0usize..3000) {
        let bytes = YOLO.as_bytes();
        let (a, b) = (a.min(bytes.len()), b.min(bytes.len()));
        let mut v = bytes[..a].to_vec();
        v.extend_from_slice(&bytes[b..]);
        let _ = parse(&String::from_utf8_lossy(&v));
    }
}
