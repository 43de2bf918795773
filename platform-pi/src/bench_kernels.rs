//! `tessera bench kernels`: the machine's single-core FMA peak, then every fused layer of
//! YOLOv2 608 through the reference, portable and FMA kernels (1 and 2 threads), and a tiled
//! run against the full frame, measured by `tessera_backends::bench` (its docs say how) on the
//! built-in cfg with generated weights (`--seed`) and the built-in sample image, printed by
//! `tessera_backends::kernel_table`.

use anyhow::Error;

use tessera_backends::kernel_bench::KernelBench;
use tessera_backends::kernels::{Form, Isa};

/// Arguments of `tessera bench kernels`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print the figures as one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Seed of the generated weights.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Timed repetitions of each run (the fastest is kept).
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Fraction of each layer's output rows the (slow) reference kernel computes.
    #[arg(long, default_value_t = 0.1)]
    pub reference_rows: f64,
    /// Measure layers [0, upto).
    #[arg(long, default_value_t = 16)]
    pub upto: usize,
    /// Skip the tiled-run check.
    #[arg(long)]
    pub no_tiled: bool,
    /// Run only the tiled checks (direct, and Winograd unless `--no-winograd`) and print
    /// them with their per-layer breakdown; no per-layer timing, no JSON.
    #[arg(long, conflicts_with_all = ["no_tiled", "json"])]
    pub tiled_only: bool,
    /// Time only the FMA kernel (skip the slow reference and portable runs).
    #[arg(long)]
    pub fma_only: bool,
    /// Skip the Winograd kernel (timed by default, 1 and 2 threads, with its own tiled check).
    #[arg(long)]
    pub no_winograd: bool,
    /// Winograd form of the 3x3 layers: f4 (F(4x4,3x3)) or f2 (F(2x2,3x3)).
    #[arg(long, default_value = "f4", value_parser = crate::bench_winograd::parse_form)]
    pub winograd_form: Form,
    /// Instruction set of the FMA and Winograd kernels: scalar, avx2, avx512, neon,
    /// armv7-neon or soft16 (default: the fastest this machine runs). Refused when the
    /// machine lacks it.
    #[arg(long, value_parser = parse_isa)]
    pub isa: Option<Isa>,
}

/// An instruction set by its name (`Isa::name`).
fn parse_isa(s: &str) -> Result<Isa, String> {
    Isa::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = Isa::ALL.into_iter().map(Isa::name).collect();
        format!("unknown instruction set {s:?} ({})", names.join(", "))
    })
}

/// Runs the command (`tessera_backends::kernel_bench`), printing as it measures.
pub fn run(args: &Args) -> Result<(), Error> {
    let bench = KernelBench {
        json: args.json,
        seed: args.seed,
        reps: args.reps,
        reference_rows: args.reference_rows,
        upto: args.upto,
        no_tiled: args.no_tiled,
        tiled_only: args.tiled_only,
        fma_only: args.fma_only,
        winograd: !args.no_winograd,
        form: args.winograd_form,
        isa: args.isa,
    };
    bench.run(|text| print!("{text}"))?;
    Ok(())
}
