//! `tessera bench kernels`: the machine's single-core FMA peak, then every fused layer of
//! YOLOv2 608 through the reference, portable and FMA kernels (1 and 2 threads), and a tiled
//! run against the full frame, measured by `tessera_backends::bench` (its docs say how) on the
//! built-in cfg with generated weights (`--seed`) and the built-in sample image, printed by
//! `tessera_backends::kernel_table`.

use anyhow::{Context, Error};

use tessera_backends::bench::{bench_layers, peak_gflops, tiled_check, LayerBench, LayerTimes};
use tessera_backends::gen_weights;
use tessera_backends::kernel_report::{KernelReport, KernelRun};
use tessera_backends::kernel_table::{forms_line, loadavg, row, summary, winograd_summary};
use tessera_backends::kernels::{Fma, Form, Winograd};
use tessera_backends::model_files::ModelFiles;
use tessera_core::ftp::{FusedStack, Grid, Mode, Partition};
use tessera_core::model::weights::Weights;

use crate::files;

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
}

/// Runs the command.
pub fn run(args: &Args) -> Result<(), Error> {
    let net = ModelFiles::default().network()?;
    let upto = args.upto;
    let stack =
        FusedStack::new(&net, upto).with_context(|| format!("fusing layers [0, {upto})"))?;
    let params = gen_weights::params(&net, upto, args.seed);
    let weights = Weights::new(&net, upto, &params).context("viewing the weights")?;
    let fma = Fma::new();
    let isa = fma.isa();
    let load = loadavg();
    let mut peak = peak_gflops(isa);
    if !args.json {
        println!(
            "tessera bench kernels: YOLOv2 608 layers [0, {upto}), seed {}, best of {} runs, FMA kernel {:?}, load average {load}",
            args.seed, args.reps, isa
        );
        println!("measured single-core FMA peak: {peak:.1} GFLOP/s (measured again at the end; the higher is used)");
    }
    let image = files::load_image_input(None, &net)?;
    let bench = LayerBench {
        reps: args.reps,
        reference_rows: args.reference_rows,
        fma_only: args.fma_only,
        winograd: (!args.no_winograd).then_some(args.winograd_form),
    };
    let rows = if args.tiled_only {
        Vec::new()
    } else {
        bench_layers(&net, &weights, upto, &image, &bench, |l, r| {
            if !args.json {
                print!("{}", row(l, r, peak));
            }
        })
        .context("measuring the layers")?
    };
    let tiled = if args.no_tiled {
        None
    } else {
        Some(tiled_check(&fma, &stack, &weights, &image, args.reps).context("tiled check")?)
    };
    let tiled_wino = if args.no_tiled || args.no_winograd {
        None
    } else {
        // The per-layer choice the cost model makes for the 3x3 grid with reuse, on the full
        // frame too (bit-identical tiles need the same choice).
        let three = Grid::new(3, 3, Partition::Darknet, &stack).context("3x3 grid")?;
        let wino = Winograd::new()
            .with_form(args.winograd_form)
            .planned(&stack, &three, Mode::Reuse)
            .context("choosing the winograd forms")?;
        if !args.json {
            println!(
                "winograd forms chosen for 3x3 with reuse (per layer, - = direct): {}",
                forms_line(&wino.layer_forms(&stack))
            );
        }
        let wino = wino.prepare(&weights);
        Some(
            tiled_check(&wino, &stack, &weights, &image, args.reps)
                .context("tiled check (winograd)")?,
        )
    };
    if args.tiled_only {
        for (name, t) in [("fma", &tiled), ("winograd", &tiled_wino)] {
            if let Some(t) = t {
                println!(
                    "tiled check ({name}, 1 thread): 3x3 with reuse {:.2} ms vs full frame {:.2} ms: time ratio {:.3} (on-CPU {:.3}), FLOP ratio {:.3}, direct FLOP ratio {:.3}, bound {:.3}",
                    t.tiled * 1e3,
                    t.full * 1e3,
                    t.time_ratio(),
                    t.cpu_ratio(),
                    t.flop_ratio,
                    t.direct_flop_ratio,
                    t.direct_flop_ratio + 0.10
                );
                print!("{}", tessera_backends::kernel_table::tiled_layers(t));
            }
        }
        println!("load average at the end: {}", loadavg());
        return Ok(());
    }
    peak = peak.max(peak_gflops(isa));
    let totals = LayerTimes::total("total", &rows);
    if args.json {
        let run = KernelRun {
            upto,
            seed: args.seed,
            reps: args.reps,
            reference_rows: args.reference_rows,
            load: [load, loadavg()],
            isa,
            peak,
            winograd: (!args.no_winograd).then_some(args.winograd_form),
        };
        let report = KernelReport::new(&run, &rows, &totals, tiled.as_ref(), tiled_wino.as_ref());
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("load average at the end: {}", loadavg());
        print!("{}", summary(peak, &rows, &totals, tiled.as_ref()));
        print!(
            "{}",
            winograd_summary(args.winograd_form, &totals, tiled_wino.as_ref())
        );
    }
    Ok(())
}
