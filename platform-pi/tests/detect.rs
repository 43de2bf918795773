//! The YOLOv2 tail and `tessera detect` end to end on generated weights.

use std::path::PathBuf;
use std::process::Command;

use tessera_backends::gen_weights;
use tessera_backends::model_files::ModelFiles;
use tessera_backends::pipeline::{boxes, run_tail, Tail, TailError};
use tessera_core::detect::{DEFAULT_NMS, DEFAULT_THRESH};
use tessera_core::kernel::tail::entry_index;
use tessera_core::kernel::Portable;
use tessera_core::model::weights::Weights;
use tessera_core::model::Shape;
use tessera_core::rng::SplitMix64;
use tessera_pi::image::{Image, ImageFiles};

/// A layer-15-like map: leaky-ReLU-shaped values of the right order.
fn layer15_output(seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    (0..38 * 38 * 256)
        .map(|_| {
            let v = rng.uniform_f32(-1.0, 3.0);
            if v > 0.0 {
                v
            } else {
                0.1 * v
            }
        })
        .collect()
}

#[test]
fn yolov2_tail_runs_end_to_end_and_deterministically() {
    let net = ModelFiles::default().network().unwrap();
    let params = gen_weights::params(&net, 32, 7);
    let weights = Weights::new(&net, 32, &params).unwrap();
    let input = layer15_output(3);
    // One layer per step, timed here (the library reads no clock).
    let mut tail = Tail::new(&net, 16, &input, &[]).unwrap();
    let mut layer_times = Vec::new();
    loop {
        let t0 = std::time::Instant::now();
        let Some(l) = tail.step(&Portable, &weights).unwrap() else {
            break;
        };
        layer_times.push((l, t0.elapsed()));
    }
    let a = tail.finish();
    eprintln!(
        "tail [16, 32) per layer: {:?}",
        layer_times
            .iter()
            .map(|(l, t)| format!("{l}: {:.0} ms", t.as_secs_f64() * 1e3))
            .collect::<Vec<_>>()
    );
    assert_eq!(a.shape, Shape::new(19, 19, 425));
    assert_eq!(a.output.len(), 19 * 19 * 425);
    assert_eq!(a.layers, 16);
    assert_eq!(
        layer_times.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
        (16..32).collect::<Vec<_>>()
    );
    assert!(a.output.iter().all(|v| v.is_finite()));
    // Activated region: objectness in [0, 1], class probabilities summing to 1.
    let cells = 19 * 19;
    for n in 0..5 {
        for loc in [0, 180, 360] {
            let obj = a.output[entry_index(85, cells, n, 4, loc)];
            assert!((0.0..=1.0).contains(&obj), "{obj}");
            let sum: f32 = (0..80)
                .map(|j| a.output[entry_index(85, cells, n, 5 + j, loc)])
                .sum();
            assert!((sum - 1.0).abs() < 1e-4, "{sum}");
        }
    }
    let spread = a.output.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(spread > 0.0 && spread < 1e4, "{spread}");
    let b = run_tail(&Portable, &net, &weights, 16, &input, &[]).unwrap();
    assert_eq!(b.layers, 16);
    assert!(
        a.output
            .iter()
            .zip(&b.output)
            .all(|(x, y)| x.to_bits() == y.to_bits()),
        "two runs differ"
    );
    // Random weights give arbitrary boxes; a low threshold makes sure some are decoded.
    let d1 = boxes(&net, &a.output, 640, 480, 0.001, DEFAULT_NMS).unwrap();
    let d2 = boxes(&net, &b.output, 640, 480, 0.001, DEFAULT_NMS).unwrap();
    assert!(!d1.is_empty());
    assert_eq!(d1, d2);
    let strict = boxes(&net, &a.output, 640, 480, DEFAULT_THRESH, DEFAULT_NMS).unwrap();
    assert!(strict.len() <= d1.len());
}

#[test]
fn tail_refuses_bad_inputs() {
    let net = ModelFiles::default().network().unwrap();
    let params = gen_weights::params(&net, 32, 7);
    let weights = Weights::new(&net, 32, &params).unwrap();
    let input = layer15_output(3);
    let err = |r: Result<_, TailError>| {
        let e = r.unwrap_err();
        (e, e.to_string())
    };
    let (e, text) = err(run_tail(&Portable, &net, &weights, 16, &input[1..], &[]));
    assert!(
        matches!(e, TailError::InputSize { got, layer: 15, .. } if got == input.len() - 1),
        "{e:?}"
    );
    assert!(text.contains("values"), "{text}");
    for from in [0, 32] {
        let (e, text) = err(run_tail(&Portable, &net, &weights, from, &input, &[]));
        assert_eq!(e, TailError::Range { from, layers: 32 });
        assert!(text.contains("tail must start"), "{text}");
    }
    // From layer 26 (input: layer 25's output) the route at 28 also reads layer 24.
    let out25 = vec![0.5f32; 38 * 38 * 512];
    let (e, text) = err(run_tail(&Portable, &net, &weights, 26, &out25, &[]));
    assert_eq!(
        e,
        TailError::Missing {
            layer: 28,
            source: 24
        }
    );
    assert!(text.contains("route source 24 was not given"), "{text}");
    let few = Weights::new(&net, 16, &params).unwrap();
    let (e, text) = err(run_tail(&Portable, &net, &few, 16, &input, &[]));
    assert_eq!(e, TailError::Weights { layer: 16 });
    assert!(text.contains("do not cover"), "{text}");
}

#[test]
fn tail_can_start_later_with_earlier_outputs() {
    let net = ModelFiles::default().network().unwrap();
    let params = gen_weights::params(&net, 32, 9);
    let weights = Weights::new(&net, 32, &params).unwrap();
    // Start at 26 with made-up outputs of 25 (= layer 16's) and 24: the route at 28 reads 24.
    let out25: Vec<f32> = (0..38 * 38 * 512).map(|i| (i % 7) as f32 * 0.1).collect();
    let out24: Vec<f32> = (0..19 * 19 * 1024).map(|i| (i % 5) as f32 * 0.2).collect();
    let a = run_tail(&Portable, &net, &weights, 26, &out25, &[(24, &out24)]).unwrap();
    assert_eq!(a.shape, Shape::new(19, 19, 425));
    assert_eq!(a.layers, 6);
    let other24: Vec<f32> = out24.iter().map(|v| v + 0.3).collect();
    let b = run_tail(&Portable, &net, &weights, 26, &out25, &[(24, &other24)]).unwrap();
    assert_ne!(a.output, b.output, "the route really reads layer 24");
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("tessera-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn path(&self, f: &str) -> String {
        self.0.join(f).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tessera(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .output()
        .expect("runs tessera");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "tessera {args:?} failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// The integer after `"key": ` at each occurrence.
fn ints(json: &str, key: &str) -> Vec<i64> {
    let pat = format!("\"{key}\": ");
    json.match_indices(&pat)
        .map(|(i, _)| {
            let rest = &json[i + pat.len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '-'))
                .unwrap();
            rest[..end].parse().unwrap()
        })
        .collect()
}

#[test]
fn detect_command_writes_png_and_json_identically_whole_and_tiled() {
    let dir = TempDir::new("detect");
    let image = repo().join("data/images/1.jpg");
    let image = image.to_str().unwrap();
    let run = |grid: &[&str], tag: &str| {
        let (png, json) = (
            dir.path(&format!("{tag}.png")),
            dir.path(&format!("{tag}.json")),
        );
        let mut args = vec!["detect", "--seed", "5", "--input", image];
        args.extend_from_slice(grid);
        args.extend_from_slice(&["--png", &png, "--json", &json]);
        let stdout = tessera(&args);
        (stdout, png, std::fs::read_to_string(&json).unwrap())
    };
    let (out, png, json) = run(&[], "whole");
    let (_, _, tiled) = run(&["--grid", "3x3", "--reuse"], "tiled");
    assert_eq!(json, tiled, "tiled fused stack must give the same boxes");
    let src = Image::load(std::path::Path::new(image)).unwrap();
    let drawn = Image::load(std::path::Path::new(&png)).unwrap();
    assert_eq!((drawn.w, drawn.h), (src.w, src.h));
    assert_eq!(ints(&json, "width"), [src.w as i64]);
    assert_eq!(ints(&json, "height"), [src.h as i64]);
    let classes = ints(&json, "class_id");
    assert!(
        !classes.is_empty(),
        "a low threshold decodes some boxes:\n{out}"
    );
    assert!(classes.iter().all(|c| (0..80).contains(c)));
    assert!(out.contains(&format!("{} boxes", classes.len())), "{out}");
    let (l, r) = (ints(&json, "left"), ints(&json, "right"));
    let (t, b) = (ints(&json, "top"), ints(&json, "bottom"));
    for i in 0..classes.len() {
        assert!(0 <= l[i] && l[i] <= r[i] && r[i] < src.w as i64, "box {i}");
        assert!(0 <= t[i] && t[i] <= b[i] && b[i] < src.h as i64, "box {i}");
    }
    assert!(json.trim_start().starts_with('{') && json.trim_end().ends_with('}'));
    // The annotated frame differs from the source where boxes are drawn.
    let changed = src
        .data
        .iter()
        .zip(&drawn.data)
        .filter(|(a, b)| (*a - *b).abs() > 1.5 / 255.0)
        .count();
    assert!(changed > 0);
}
