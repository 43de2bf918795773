//! `tessera layers`: run the fused layers on one machine and dump the result.

use std::path::PathBuf;

use anyhow::{anyhow, Error};
use clap::ValueEnum;

use tessera_backends::kernels::Form;
use tessera_backends::pipeline::{run_layers, LayersKernel, LayersSetup};
use tessera_core::ftp::GridShape;

use crate::files;
use crate::run_args::{mode, ModelArgs, TileArgs};

/// Which kernel set runs the layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KernelChoice {
    /// Plain loops (the oracle).
    Reference,
    /// Blocked portable kernel (bit-identical to the reference).
    Portable,
    /// FMA SIMD kernel (AVX2+FMA or NEON, detected at run time; `--threads`).
    Simd,
    /// Winograd F(4x4,3x3) on 3x3 stride-1 layers of 16+ channels, the SIMD kernel elsewhere
    /// (`--threads`; within a stated bound of the reference, tiles bit-identical to the frame,
    /// tile regions rounded to its 4x4 blocks).
    Winograd,
    /// Winograd F(2x2,3x3) likewise (fewer savings, smaller errors, tiles as with direct).
    WinogradF2,
    /// F4, F2 or direct per layer, as a cost model chooses for the grid and mode run (tiles
    /// bit-identical to the whole frame run with the same choice: `--plan-grid`).
    WinogradPlanned,
    /// SIMD where there is a vector path (x86_64, aarch64), portable elsewhere.
    Auto,
}

/// Arguments of `tessera layers`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The model files.
    #[command(flatten)]
    pub model: ModelArgs,
    /// JPEG or PNG frame, letterboxed to the network input as Darknet does
    /// [default: the built-in sample image].
    #[arg(long, conflicts_with = "input_raw")]
    pub input: Option<PathBuf>,
    /// CHW little-endian f32 tensor of the network's input size.
    #[arg(long)]
    pub input_raw: Option<PathBuf>,
    /// Run layers [0, upto) (YOLOv2's fused stack is 16 layers).
    #[arg(long, default_value_t = 16)]
    pub upto: usize,
    /// How the fused stack is tiled.
    #[command(flatten)]
    pub tiles: TileArgs,
    /// Kernel set (`portable` and `reference` agree bit for bit).
    #[arg(long, value_enum, default_value_t = KernelChoice::Auto)]
    pub kernel: KernelChoice,
    /// Threads per conv for `--kernel simd`.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// With `--kernel winograd-planned`: choose the forms for this grid (NxM) instead of the
    /// one run, so a whole-frame run can use a tiled plan's choice.
    #[arg(long)]
    pub plan_grid: Option<GridShape>,
    /// With `--plan-grid`: choose for that grid with data reuse.
    #[arg(long, requires = "plan_grid")]
    pub plan_reuse: bool,
    /// Where to write the output (raw little-endian f32, CHW).
    #[arg(long)]
    pub dump: Option<PathBuf>,
}

impl From<KernelChoice> for LayersKernel {
    fn from(k: KernelChoice) -> LayersKernel {
        match k {
            KernelChoice::Reference => LayersKernel::Reference,
            KernelChoice::Portable => LayersKernel::Portable,
            KernelChoice::Simd => LayersKernel::Simd,
            KernelChoice::Winograd => LayersKernel::Winograd(Form::F4),
            KernelChoice::WinogradF2 => LayersKernel::Winograd(Form::F2),
            KernelChoice::WinogradPlanned => LayersKernel::WinogradPlanned,
            KernelChoice::Auto => LayersKernel::Auto,
        }
    }
}

/// Runs the command (`tessera_backends::pipeline::run_layers`).
pub fn run(args: &Args) -> Result<(), Error> {
    let model_files = args.model.files();
    let net = model_files.network()?;
    let elements = net
        .input()
        .elements()
        .ok_or_else(|| anyhow!("input: size overflows"))?;
    let input = match &args.input_raw {
        Some(raw) => files::load_raw(raw, elements)?,
        None => files::load_image_input(args.input.as_deref(), &net)?,
    };
    let setup = LayersSetup {
        upto: args.upto,
        grid: args.tiles.grid(),
        partition: args.tiles.partition(),
        mode: args.tiles.mode(),
        kernel: args.kernel.into(),
        threads: args.threads,
        plan: args.plan_grid.map(|g| (g.into(), mode(args.plan_reuse))),
    };
    let run = run_layers(&net, &model_files, &input, &setup)?;
    if let Some(forms) = &run.forms {
        eprintln!("winograd forms per layer: {forms}");
    }
    if let Some(dump) = &args.dump {
        files::write_raw(dump, &run.output)?;
    }
    print!("{}", run.report);
    if let Some(dump) = &args.dump {
        println!("wrote {}", dump.display());
    }
    Ok(())
}
