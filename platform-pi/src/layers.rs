//! `tessera layers`: run the fused layers on one machine and dump the result.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{anyhow, Context, Error};
use clap::ValueEnum;

use tessera_backends::kernels::{Fma, Form, Winograd};
use tessera_backends::model_files::ModelFiles;
use tessera_backends::pipeline::{layers_report, run_frame, KernelChoice as NodeKernel};
use tessera_core::ftp::{FusedStack, Grid, GridShape, Mode, Partition};
use tessera_core::kernel::{Portable, Reference};
use tessera_core::model::weights::Weights;

use crate::files;

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
    /// Darknet cfg file [default: the built-in yolov2-608.cfg].
    #[arg(long)]
    pub cfg: Option<PathBuf>,
    /// Darknet weights file for the whole network [default: generated from --seed].
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Seed of the generated weights when no --weights is given.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
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
    /// Tile grid NxM (N rows, M columns); without it the frame runs whole.
    #[arg(long)]
    pub grid: Option<GridShape>,
    /// Data-reuse scheduling (checkerboard order, overlap strips).
    #[arg(long, requires = "grid")]
    pub reuse: bool,
    /// Balanced tile split instead of the original system's rule.
    #[arg(long)]
    pub balanced: bool,
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

/// Runs the command.
pub fn run(args: &Args) -> Result<(), Error> {
    let model_files = ModelFiles {
        cfg: args.cfg.clone(),
        weights: args.weights.clone(),
        seed: args.seed,
    };
    let net = model_files.network()?;
    let stack = FusedStack::new(&net, args.upto)
        .with_context(|| format!("fusing layers [0, {})", args.upto))?;
    let params = model_files.params(&net, args.upto)?;
    let weights = Weights::new(&net, args.upto, &params).context("viewing the weights")?;
    let shape = net.input();
    let elements = shape
        .elements()
        .ok_or_else(|| anyhow!("input: size overflows"))?;
    let input = match &args.input_raw {
        Some(raw) => files::load_raw(raw, elements)?,
        None => files::load_image_input(args.input.as_deref(), &net)?,
    };
    let (rows, cols) = args.grid.map_or((1, 1), Into::into);
    let partition = if args.balanced {
        Partition::Balanced
    } else {
        Partition::Darknet
    };
    let grid =
        Grid::new(rows, cols, partition, &stack).with_context(|| format!("grid {rows}x{cols}"))?;
    let mode = if args.reuse { Mode::Reuse } else { Mode::Plain };
    let kernel = match args.kernel {
        KernelChoice::Auto if NodeKernel::auto() == NodeKernel::Simd => KernelChoice::Simd,
        KernelChoice::Auto => KernelChoice::Portable,
        k => k,
    };
    let t0 = Instant::now();
    let (output, stats) = match kernel {
        KernelChoice::Reference => run_frame(&Reference, &stack, &weights, &grid, mode, &input)?,
        KernelChoice::Simd => {
            let simd = Fma::new().with_threads(args.threads);
            run_frame(&simd, &stack, &weights, &grid, mode, &input)?
        }
        KernelChoice::Winograd | KernelChoice::WinogradF2 => {
            let form = if kernel == KernelChoice::Winograd {
                Form::F4
            } else {
                Form::F2
            };
            let wino = Winograd::new()
                .with_form(form)
                .with_threads(args.threads)
                .prepare(&weights);
            run_frame(&wino, &stack, &weights, &grid, mode, &input)?
        }
        KernelChoice::WinogradPlanned => {
            let (plan_grid, plan_mode) = match args.plan_grid {
                Some(g) => {
                    let (r, c) = g.into();
                    let g = Grid::new(r, c, partition, &stack)
                        .with_context(|| format!("plan grid {r}x{c}"))?;
                    (
                        g,
                        if args.plan_reuse {
                            Mode::Reuse
                        } else {
                            Mode::Plain
                        },
                    )
                }
                None => (grid, mode),
            };
            let wino = Winograd::new()
                .with_threads(args.threads)
                .planned(&stack, &plan_grid, plan_mode)
                .context("choosing the winograd forms")?;
            eprintln!("winograd forms per layer: {:?}", wino.layer_forms(&stack));
            let wino = wino.prepare(&weights);
            run_frame(&wino, &stack, &weights, &grid, mode, &input)?
        }
        _ => run_frame(&Portable, &stack, &weights, &grid, mode, &input)?,
    };
    let elapsed = t0.elapsed();
    if let Some(dump) = &args.dump {
        files::write_raw(dump, &output)?;
    }
    print!(
        "{}",
        layers_report(
            &format!("{kernel:?}"),
            &stack,
            &grid,
            mode,
            &stats,
            elapsed.as_secs_f64()
        )
        .context("planning memory")?
    );
    if let Some(dump) = &args.dump {
        println!("wrote {}", dump.display());
    }
    Ok(())
}
