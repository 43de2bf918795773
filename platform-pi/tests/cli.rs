//! End-to-end tests of the `tessera` command on the real YOLOv2 cfg with generated weights.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tessera(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .output()
        .expect("runs tessera")
}

fn ok(args: &[&str]) -> String {
    let out = tessera(args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "tessera {args:?} failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn fails(args: &[&str], needle: &str) {
    let out = tessera(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "tessera {args:?} should fail");
    assert!(
        err.contains(needle),
        "tessera {args:?}: expected {needle:?} in:\n{err}"
    );
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
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

#[test]
fn yolov2_layers_full_and_tiled_dumps_are_identical() {
    let dir = TempDir::new("layers");
    let cfg = repo()
        .join("data/yolov2-608.cfg")
        .to_string_lossy()
        .into_owned();
    let img = repo()
        .join("data/images/0.jpg")
        .to_string_lossy()
        .into_owned();
    let w = dir.path("yolo.weights");
    ok(&["gen-weights", "--cfg", &cfg, "--seed", "7", "--out", &w]);
    assert_eq!(std::fs::metadata(&w).unwrap().len(), 203_934_260);

    let base = [
        "layers",
        "--cfg",
        &cfg,
        "--weights",
        &w,
        "--input",
        &img,
        "--upto",
        "16",
    ];
    let runs: [(&str, &[&str]); 3] = [
        ("full", &[]),
        ("3x3r", &["--grid", "3x3", "--reuse"]),
        ("5x5", &["--grid", "5x5"]),
    ];
    // The default kernels, both Winograd forms, and the cost model's per-layer choice for a
    // 3x3 grid with reuse (every run with that choice): tiles equal the full frame bit for bit.
    let planned: &[&str] = &["--plan-grid", "3x3", "--plan-reuse"];
    for kernel in ["auto", "winograd", "winograd-f2", "winograd-planned"] {
        let mut dumps = Vec::new();
        for (name, extra) in runs {
            let dump = dir.path(&format!("{name}-{kernel}.f32"));
            let mut args: Vec<&str> = base.to_vec();
            args.extend_from_slice(extra);
            args.extend_from_slice(&["--kernel", kernel, "--dump", &dump]);
            if kernel == "winograd-planned" {
                args.extend_from_slice(planned);
            }
            let text = ok(&args);
            assert!(text.contains("time "), "{text}");
            dumps.push(std::fs::read(&dump).unwrap());
        }
        assert_eq!(dumps[0].len(), 38 * 38 * 256 * 4);
        let values: Vec<f32> = dumps[0]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert!(values.iter().all(|v| v.is_finite()));
        assert!(values.iter().any(|&v| v != values[0]), "output is constant");
        assert!(
            dumps[1] == dumps[0],
            "{kernel}: 3x3 with reuse differs from the full frame"
        );
        assert!(
            dumps[2] == dumps[0],
            "{kernel}: 5x5 differs from the full frame"
        );
    }
}

#[test]
fn raw_input_and_bad_inputs_give_clear_errors() {
    let dir = TempDir::new("bad");
    let cfg = dir.path("tiny.cfg");
    std::fs::write(
        &cfg,
        "[net]\nwidth=20\nheight=16\nchannels=3\n\n[convolutional]\nbatch_normalize=1\nfilters=4\nsize=3\nstride=1\npad=1\nactivation=leaky\n\n[maxpool]\nsize=2\nstride=2\n\n[convolutional]\nfilters=2\nsize=3\nstride=1\npad=1\nactivation=linear\n",
    )
    .unwrap();
    let w = dir.path("tiny.weights");
    ok(&["gen-weights", "--cfg", &cfg, "--seed", "1", "--out", &w]);
    let raw = dir.path("in.f32");
    let values: Vec<u8> = (0..20 * 16 * 3)
        .flat_map(|i| ((i % 7) as f32 / 7.0).to_le_bytes())
        .collect();
    std::fs::write(&raw, &values).unwrap();
    let a = dir.path("a.f32");
    let b = dir.path("b.f32");
    let c = dir.path("c.f32");
    let common = [
        "layers",
        "--cfg",
        &cfg,
        "--weights",
        &w,
        "--input-raw",
        &raw,
        "--upto",
        "3",
    ];
    ok(&[&common[..], &["--kernel", "portable", "--dump", &a]].concat());
    ok(&[
        &common[..],
        &[
            "--kernel", "portable", "--grid", "2x3", "--reuse", "--dump", &b,
        ],
    ]
    .concat());
    ok(&[
        &common[..],
        &["--grid", "4x4", "--kernel", "reference", "--dump", &c],
    ]
    .concat());
    let a = std::fs::read(a).unwrap();
    assert_eq!(a.len(), 10 * 8 * 2 * 4);
    assert!(a == std::fs::read(b).unwrap() && a == std::fs::read(c).unwrap());
    // The default (fast) kernels: tiled equals whole bit for bit too.
    let (d, e) = (dir.path("d-simd.f32"), dir.path("e-simd.f32"));
    let said = ok(&[&common[..], &["--dump", &d]].concat());
    ok(&[&common[..], &["--grid", "2x3", "--reuse", "--dump", &e]].concat());
    let d = std::fs::read(d).unwrap();
    assert_eq!(d.len(), a.len());
    assert_eq!(d, std::fs::read(e).unwrap());
    let auto = if cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
        "Simd"
    } else {
        "Portable"
    };
    assert!(said.contains(&format!("kernel {auto}")), "{said}");

    // Truncated weights, a raw input of the wrong size, absurd grids, a garbage cfg.
    let bytes = std::fs::read(&w).unwrap();
    let short = dir.path("short.weights");
    std::fs::write(&short, &bytes[..bytes.len() - 1]).unwrap();
    let d = dir.path("d.f32");
    fails(
        &[
            "layers",
            "--cfg",
            &cfg,
            "--weights",
            &short,
            "--input-raw",
            &raw,
            "--upto",
            "3",
            "--dump",
            &d,
        ],
        "truncated",
    );
    std::fs::write(&raw, &values[..values.len() - 4]).unwrap();
    fails(
        &[&common[..], &["--dump", &d]].concat(),
        "expected 3840 bytes",
    );
    std::fs::write(&raw, &values).unwrap();
    fails(
        &[&common[..], &["--grid", "0x3", "--dump", &d]].concat(),
        "grid 0x3",
    );
    fails(
        &[&common[..], &["--grid", "9x9", "--dump", &d]].concat(),
        "grid 9x9",
    );
    fails(
        &[&common[..], &["--grid", "3by3", "--dump", &d]].concat(),
        "NxM",
    );
    fails(
        &[
            "layers",
            "--cfg",
            &cfg,
            "--weights",
            &w,
            "--input-raw",
            &raw,
            "--upto",
            "9",
            "--dump",
            &d,
        ],
        "fusing",
    );
    std::fs::write(
        &cfg,
        "[net]\nwidth=20\nheight=16\nchannels=3\n[convolutional]\nfilters=x\n",
    )
    .unwrap();
    fails(&[&common[..], &["--dump", &d]].concat(), "line 6");
    assert!(!Path::new(&d).exists(), "no output on error");
}

#[test]
fn edge_inflight_is_bounded_by_the_source_queue() {
    let cluster = repo().join("cluster.example.toml");
    let c = cluster.to_string_lossy();
    // `--seconds 1` bounds the run should the value ever be accepted.
    for bad in ["0", "3"] {
        fails(
            &[
                "edge",
                "--cluster",
                &c,
                "--id",
                "1",
                "--seconds",
                "1",
                "--inflight",
                bad,
            ],
            "--inflight",
        );
    }
}
