//! `tessera bench winograd`: what the Winograd kernels cost in accuracy and tile overlap on
//! YOLOv2 608's fused layers (built-in cfg, generated weights, the built-in sample image),
//! measured and worded by `tessera_backends::winograd_bench` (its docs say how).

use anyhow::Error;

use tessera_backends::kernels::Form;
use tessera_backends::winograd_bench::WinogradBench;

/// Arguments of `tessera bench winograd`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Seed of the generated weights.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output rows compared per band (two bands per layer: the top rows and the middle).
    #[arg(long, default_value_t = 4)]
    pub rows: u32,
    /// Layers [0, upto).
    #[arg(long, default_value_t = 16)]
    pub upto: usize,
    /// Winograd form of the 3x3 layers: f4 (F(4x4,3x3)) or f2 (F(2x2,3x3)).
    #[arg(long, default_value = "f4", value_parser = parse_form)]
    pub form: Form,
}

/// `f2` or `f4`.
pub fn parse_form(s: &str) -> Result<Form, String> {
    match s {
        "f2" => Ok(Form::F2),
        "f4" => Ok(Form::F4),
        _ => Err(format!("unknown form {s:?} (f2, f4)")),
    }
}

/// Runs the command.
pub fn run(args: &Args) -> Result<(), Error> {
    let bench = WinogradBench {
        seed: args.seed,
        rows: args.rows,
        upto: args.upto,
        form: args.form,
    };
    print!("{}", bench.run()?);
    Ok(())
}
