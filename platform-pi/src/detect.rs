//! `tessera detect`: one frame through the whole network on this machine — the fused stack
//! tile by tile, the tail on the full map, region decoding and NMS — then boxes out.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{anyhow, Error};

pub use tessera_backends::pipeline::DetectKernel;
use tessera_backends::pipeline::{detect_report, detect_with, DetectRun, DetectSetup};
use tessera_core::detect::{DEFAULT_NMS, DEFAULT_THRESH};

use crate::files;
use crate::run_args::{ModelArgs, TileArgs};

/// Arguments of `tessera detect`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The model files.
    #[command(flatten)]
    pub model: ModelArgs,
    /// JPEG or PNG frame [default: the built-in sample image].
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Layers [0, upto) run tile by tile (YOLOv2's fused stack is 16); the rest is the tail.
    #[arg(long, default_value_t = 16)]
    pub upto: usize,
    /// How the fused stack is tiled.
    #[command(flatten)]
    pub tiles: TileArgs,
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
    let model_files = args.model.files();
    let net = model_files.network()?;
    let params = model_files.params(&net, net.layers().len())?;
    let img = files::load_image(args.input.as_deref())?;
    let input = files::network_input(&img, &net)?;
    let grid = args.tiles.grid();
    let setup = DetectSetup {
        upto: args.upto,
        grid,
        partition: args.tiles.partition(),
        mode: args.tiles.mode(),
        thresh: args.thresh,
        nms: args.nms,
    };
    let image = (img.w, img.h);
    let (frame, name) = detect_with(
        args.kernel,
        args.threads,
        &net,
        &params,
        &input,
        image,
        &setup,
    )?;
    // Files first: a closed stdout (`| head`) must not lose them.
    let (png, json) = (args.png.as_deref(), args.json.as_deref());
    files::write_boxes(&img, &frame.detections, &net, png, json)?;
    let run = DetectRun {
        image: (img.w, img.h),
        grid,
        reuse: args.tiles.reuse,
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
