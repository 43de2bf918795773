//! `backends::demo::run_demo` end to end on a small YOLOv2 (160x160 input): two edges on
//! loopback, the tail on the gateway, the host hearing the report and saving each frame's
//! boxes; and its refusals before anything starts.
#![cfg(all(feature = "codecs", feature = "simd"))]

use std::time::Duration;

use tessera_backends::builtin::{DEFAULT_CFG, DEFAULT_IMAGE, SECOND_IMAGE};
use tessera_backends::demo::{run_demo, DemoError, DemoOutput, DemoPicture, DemoSpec};
use tessera_backends::pipeline::{decode_pixels, KernelChoice};
use tessera_core::detect::Detection;
use tessera_core::ftp::GridShape;
use tessera_core::model::Network;
use tessera_core::wire::Policy;
use tessera_testkit::port::loopback_port;

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// Keeps what the demo says and saves.
#[derive(Default)]
struct Recorder {
    text: String,
    ready: bool,
    saved: Vec<(usize, usize, usize)>,
}

impl DemoOutput for Recorder {
    fn say(&mut self, text: &str) {
        self.text += text;
    }

    fn ready(&mut self) -> Result<(), Failure> {
        self.ready = true;
        Ok(())
    }

    fn save(
        &mut self,
        frame: usize,
        picture: usize,
        dets: &[Detection],
        _net: &Network,
    ) -> Result<String, Failure> {
        assert!(self.ready, "saved before ready");
        self.saved.push((frame, picture, dets.len()));
        Ok(format!("frame{frame}"))
    }
}

fn picture(bytes: &[u8]) -> DemoPicture {
    DemoPicture {
        bytes: bytes.to_vec(),
        size: decode_pixels(bytes).unwrap().size(),
    }
}

#[test]
fn two_edges_run_three_frames_to_boxes_and_bad_counts_are_refused() {
    let dir = std::env::temp_dir().join(format!("tessera-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("yolov2-160.cfg");
    let text = DEFAULT_CFG
        .replace("width=608", "width=160")
        .replace("height=608", "height=160");
    std::fs::write(&cfg, text).unwrap();
    let spec = DemoSpec {
        edges: 2,
        policy: Policy::WstS,
        grid: GridShape { rows: 2, cols: 2 },
        frames: 3,
        sources: 1,
        cfg: Some(cfg),
        seed: 1,
        kernel: KernelChoice::Portable,
        insecure: false,
        port: loopback_port(),
        no_tail: false,
        timeout: Duration::from_secs(120),
        coded_tail: None,
        coded_deadline: Duration::from_secs(60),
        coded_grace: Duration::ZERO,
        kill: None,
        slow: &[],
        absent: &[],
    };
    let pictures = [picture(DEFAULT_IMAGE), picture(SECOND_IMAGE)];
    let mut out = Recorder::default();
    let summary = run_demo(&spec, &pictures, &mut out).unwrap();
    assert_eq!((summary.frames, summary.completed), (3, 3), "{}", out.text);
    // Every frame saved once, the pictures cycled; the second sample has boxes.
    let order: Vec<(usize, usize)> = out.saved.iter().map(|&(f, p, _)| (f, p)).collect();
    assert_eq!(order, [(0, 0), (1, 1), (2, 0)], "{}", out.text);
    assert!(out.saved[1].2 > 0, "{}", out.text);
    assert_eq!(out.saved[0].2, out.saved[2].2, "same picture, same boxes");
    assert!(out.text.contains("tail (gateway alone)"), "{}", out.text);
    assert!(out.text.contains("\n3 frames in "), "{}", out.text);
    std::fs::remove_dir_all(&dir).unwrap();

    // Refused before anything starts: the host hears nothing.
    let mut quiet = Recorder::default();
    let wrong = DemoSpec { sources: 3, ..spec };
    let e = run_demo(&wrong, &pictures, &mut quiet).unwrap_err();
    assert!(
        matches!(
            e,
            DemoError::Sources {
                sources: 3,
                edges: 2
            }
        ),
        "{e}"
    );
    assert!(quiet.text.is_empty() && quiet.saved.is_empty());
    let e = run_demo(
        &DemoSpec {
            sources: 1,
            ..wrong
        },
        &[],
        &mut quiet,
    )
    .unwrap_err();
    assert!(matches!(e, DemoError::NoPictures), "{e}");
}
