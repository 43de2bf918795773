//! `tessera detect`: one frame through the whole network on this machine — the fused stack
//! tile by tile, the tail on the full map, region decoding and NMS — then boxes out.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{anyhow, Context, Error};

use tessera_backends::detections_json::to_json;
use tessera_backends::kernels::{Fma, Winograd};
use tessera_backends::model_files::ModelFiles;
pub use tessera_backends::pipeline::DetectKernel;
use tessera_backends::pipeline::{
    detect_frame, detect_report, kernel_name, winograd_name, AnyKernel, DetectRun, DetectSetup,
};
use tessera_core::detect::{DEFAULT_NMS, DEFAULT_THRESH};
use tessera_core::ftp::{GridShape, Mode, Partition};
use tessera_core::model::weights::Weights;
use tessera_core::model::LayerKind;

use crate::config::NodeKernel;
use crate::files;
use crate::image::{write_annotated, Image, ImageFiles};

/// Arguments of `tessera detect`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Darknet cfg file [default: the built-in yolov2-608.cfg].
    #[arg(long)]
    pub cfg: Option<PathBuf>,
    /// Darknet weights file for the whole network [default: generated from --seed].
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Seed of the generated weights when no --weights is given.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// JPEG or PNG frame [default: the built-in sample image].
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Layers [0, upto) run tile by tile (YOLOv2's fused stack is 16); the rest is the tail.
    #[arg(long, default_value_t = 16)]
    pub upto: usize,
    /// Tile grid NxM (N rows, M columns) of the fused stack [default: 1x1].
    #[arg(long)]
    pub grid: Option<GridShape>,
    /// Data-reuse scheduling of the fused stack.
    #[arg(long, requires = "grid")]
    pub reuse: bool,
    /// Balanced tile split instead of the original system's rule.
    #[arg(long)]
    pub balanced: bool,
    /// Kernels: `auto` (SIMD where there is a vector path), `simd`, `portable`
    /// (bit-identical to the reference), `winograd` (F(4x4,3x3) on 3x3 stride-1 layers) or
    /// `winograd-f2` (F(2x2,3x3)).
    #[arg(long, default_value = "auto", value_parser = DetectKernel::parse)]
    pub kernel: DetectKernel,
    /// Threads per conv of the SIMD kernels (results do not depend on it).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Detection threshold on objectness × class probability (Darknet's default).
    #[arg(long, default_value_t = DEFAULT_THRESH)]
    pub thresh: f32,
    /// NMS IoU threshold.
    #[arg(long, default_value_t = DEFAULT_NMS)]
    pub nms: f32,
    /// Boxes listed on stdout (most probable first).
    #[arg(long, default_value_t = 20)]
    pub show: usize,
    /// Where to write the frame with boxes drawn (PNG).
    #[arg(long)]
    pub png: Option<PathBuf>,
    /// Where to write the boxes (JSON).
    #[arg(long)]
    pub json: Option<PathBuf>,
}
/// Runs the command.
pub fn run(args: &Args) -> Result<(), Error> {
    // Checked before the network runs rather than after, when decoding would refuse them.
    for (name, t) in [("--thresh", args.thresh), ("--nms", args.nms)] {
        if !(0.0..=1.0).contains(&t) {
            return Err(anyhow!("{}: {t} is outside [0, 1]", name));
        }
    }
    let model_files = ModelFiles {
        cfg: args.cfg.clone(),
        weights: args.weights.clone(),
        seed: args.seed,
    };
    let net = model_files.network()?;
    let all = net.layers().len();
    let params = model_files.params(&net, all)?;
    let img = match &args.input {
        Some(path) => Image::load(path).with_context(|| format!("loading {}", path.display()))?,
        None => Image::decode(files::DEFAULT_IMAGE).context("decoding the built-in sample")?,
    };
    let grid: (u32, u32) = args.grid.map_or((1, 1), Into::into);
    let partition = if args.balanced {
        Partition::Balanced
    } else {
        Partition::Darknet
    };
    let mode = if args.reuse { Mode::Reuse } else { Mode::Plain };
    let kernels = match args.kernel {
        DetectKernel::Node(NodeKernel::Portable) => AnyKernel::Portable,
        DetectKernel::Node(NodeKernel::Simd) | DetectKernel::Winograd(_) => {
            AnyKernel::Simd(Fma::new().with_threads(args.threads))
        }
    };
    let shape = net.input();
    if shape.c != 3 {
        return Err(anyhow!(
            "preparing the input: network takes {} channels, images have 3",
            shape.c
        ));
    }
    let input = img.letterbox(shape.w as usize, shape.h as usize).data;
    let setup = DetectSetup {
        upto: args.upto,
        grid,
        partition,
        mode,
        thresh: args.thresh,
        nms: args.nms,
    };
    let (frame, name) = if let DetectKernel::Winograd(form) = args.kernel {
        let weights = Weights::new(&net, all, &params).context("viewing the weights")?;
        let wino = Winograd::new()
            .with_form(form)
            .with_threads(args.threads)
            .prepare(&weights);
        let frame = detect_frame(&wino, &net, &params, &input, (img.w, img.h), &setup)?;
        (frame, winograd_name(&wino))
    } else {
        let frame = detect_frame(&kernels, &net, &params, &input, (img.w, img.h), &setup)?;
        (frame, kernel_name(&kernels))
    };
    let classes = match net.layers().last().map(|l| &l.kind) {
        Some(LayerKind::Region(p)) => p.classes,
        _ => 1,
    };
    // Files first: a closed stdout (`| head`) must not lose them.
    if let Some(png) = &args.png {
        write_annotated(&img, &frame.detections, classes, png)
            .with_context(|| format!("writing {}", png.display()))?;
    }
    if let Some(json) = &args.json {
        let text = to_json(&frame.detections, img.w, img.h).context("writing JSON")?;
        std::fs::write(json, text).with_context(|| format!("writing {}", json.display()))?;
    }
    let run = DetectRun {
        image: (img.w, img.h),
        grid,
        reuse: args.reuse,
        kernel: &name,
        upto: args.upto,
        thresh: args.thresh,
        nms: args.nms,
        show: args.show,
    };
    let mut report = detect_report(&net, &run, &frame);
    for path in [&args.png, &args.json].into_iter().flatten() {
        report += &format!("wrote {}\n", path.display());
    }
    // A closed stdout only cuts the report short.
    let _ = std::io::stdout().lock().write_all(report.as_bytes());
    Ok(())
}
