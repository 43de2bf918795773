//! `tessera bench winograd`: what the Winograd kernels cost in accuracy and tile overlap on
//! YOLOv2 608's fused layers (built-in cfg, generated weights, the built-in sample image),
//! measured by `tessera_backends::winograd_report` (its docs say how).

use anyhow::{Context, Error};

use tessera_backends::gen_weights;
use tessera_backends::kernels::{Form, Winograd};
use tessera_backends::model_files::ModelFiles;
use tessera_backends::winograd_report::{layer_errors, overlap};
use tessera_core::ftp::{FusedStack, Mode};
use tessera_core::model::weights::Weights;

use crate::files;

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
    let net = ModelFiles::default().network()?;
    let upto = args.upto;
    let stack =
        FusedStack::new(&net, upto).with_context(|| format!("fusing layers [0, {upto})"))?;
    let params = gen_weights::params(&net, upto, args.seed);
    let weights = Weights::new(&net, upto, &params).context("viewing the weights")?;
    let wino = Winograd::new().with_form(args.form).prepare(&weights);
    let image = files::load_image_input(None, &net)?;
    println!(
        "tessera bench winograd: YOLOv2 608 layers [0, {upto}), seed {}; error = |out - exact| / (|a|*sum|w*x| + |b|), worst over {} top and {} middle output rows",
        args.seed, args.rows, args.rows
    );
    println!(
        "{:>5} {:<27} {:>5} {:>10} {:>11} {:>11}",
        "layer", "", "form", "outputs", "direct", "winograd"
    );
    let errors = layer_errors(&net, &weights, &wino, upto, &image, args.rows)
        .context("measuring the errors")?;
    for e in &errors {
        println!(
            "{:>5} {:<27} {:>5} {:>10} {:>11.2e} {:>11.2e}",
            e.layer,
            e.name,
            e.form.map_or("-".into(), |f| format!("{f:?}")),
            e.outputs,
            e.direct,
            e.winograd
        );
    }
    println!("tile overlap: multiply-accumulates over the full frame's (plain regions = direct kernels; aligned = Winograd layers' regions rounded to the block grid; blocks = what the Winograd kernel computes, whole blocks)");
    for grid in [(3, 3), (5, 5)] {
        for mode in [Mode::Plain, Mode::Reuse] {
            let o = overlap(&stack, &wino, grid, mode).context("planning")?;
            let f = o.frame as f64;
            println!(
                "  {}x{} {:<6} plain {:.4}  aligned {:.4}  blocks {:.4}  (aligned / plain {:.4})",
                grid.0,
                grid.1,
                if o.reuse { "reuse" } else { "plain" },
                o.plain as f64 / f,
                o.aligned as f64 / f,
                o.blocks as f64 / f,
                o.aligned as f64 / o.plain as f64
            );
        }
    }
    Ok(())
}
