//! `tessera bench kernels`: the machine's single-core FMA peak, then every fused layer of
//! YOLOv2 608 through the reference, portable and FMA kernels (1 and 2 threads), and a tiled
//! run against the full frame, measured by `tessera_backends::bench` (its docs say how) on the
//! built-in cfg with generated weights (`--seed`) and the built-in sample image. A layer's
//! GFLOP/s is `2·MACs / time`; max pools have no FLOPs but their time counts in the totals.

use anyhow::{Context, Error};

use tessera_backends::bench::{
    bench_layers, peak_gflops, tiled_check, LayerBench, LayerTimes, TiledCheck, THREADS_MULTI,
};
use tessera_backends::gen_weights;
use tessera_backends::kernel_report::{gflops, secs, KernelReport, KernelRun};
use tessera_backends::kernels::{Fma, Form, Winograd};
use tessera_backends::model_files::ModelFiles;
use tessera_core::ftp::{FusedStack, Grid, Mode, Partition};
use tessera_core::model::weights::Weights;

use crate::files;

const THREADS: usize = THREADS_MULTI;

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

/// The 1, 5 and 15 minute load averages (Linux), for the record of how busy the machine was.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
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
    let rows = bench_layers(&net, &weights, upto, &image, &bench, |l, row| {
        if !args.json {
            print_row(l, row, peak);
        }
    })
    .context("measuring the layers")?;
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
        print_summary(peak, &rows, &totals, tiled.as_ref());
        print_winograd(args.winograd_form, &totals, tiled_wino.as_ref());
    }
    Ok(())
}

fn print_row(l: usize, r: &LayerTimes, peak: f64) {
    if l == 0 {
        println!(
            "{:>5} {:<27} {:>6} | {:>9} {:>9} | {:>9} {:>6} {:>6} | {:>9} {:>6} | {:>8} {:>8} | {:>7} {:>7}",
            "layer",
            "",
            "GFLOP",
            "reference",
            "portable",
            "fma 1t",
            "%peak",
            "xport",
            "fma 2t",
            "x1t",
            "ms 1t",
            "ms 2t",
            "wino 1t",
            "wino 2t"
        );
    }
    let label = if l == usize::MAX {
        "total".to_string()
    } else {
        l.to_string()
    };
    if r.flop == 0.0 {
        println!(
            "{label:>5} {:<27} {:>6} | {:>9} {:>9} | {:>9} {:>6} {:>6} | {:>9} {:>6} | {:>8.2} {:>8.2} | {:>7} {:>7}",
            r.name,
            "-",
            "-",
            "-",
            "-",
            "-",
            fig(secs(r.portable) / r.fma1, 1, "x"),
            "-",
            format!("{:.2}", r.fma1 / r.fma2),
            r.fma1 * 1e3,
            r.fma2 * 1e3,
            fig(secs(r.wino1) * 1e3, 2, "ms"),
            fig(secs(r.wino2) * 1e3, 2, "ms")
        );
        return;
    }
    let g1 = gflops(r.flop, r.fma1);
    println!(
        "{label:>5} {:<27} {:>6.2} | {:>9} {:>9} | {:>9.1} {:>5.0}% {:>6} | {:>9.1} {:>5.2}x | {:>8.2} {:>8.2} | {:>7} {:>7}",
        r.name,
        r.flop / 1e9,
        fig(gflops(r.flop, secs(r.reference)), 1, ""),
        fig(gflops(r.flop, secs(r.portable)), 1, ""),
        g1,
        100.0 * g1 / peak,
        fig(secs(r.portable) / r.fma1, 1, "x"),
        gflops(r.flop, r.fma2),
        r.fma1 / r.fma2,
        r.fma1 * 1e3,
        r.fma2 * 1e3,
        fig(gflops(r.flop, secs(r.wino1)), 1, ""),
        fig(gflops(r.flop, secs(r.wino2)), 1, "")
    );
}

/// A figure with `digits` decimals and its unit, or a dash where it was not measured
/// (`--fma-only`), never NaN.
fn fig(x: f64, digits: usize, unit: &str) -> String {
    if x.is_finite() {
        format!("{x:.digits$}{unit}")
    } else {
        "-".into()
    }
}

fn print_summary(peak: f64, rows: &[LayerTimes], totals: &LayerTimes, tiled: Option<&TiledCheck>) {
    print_row(usize::MAX, totals, peak);
    let g1 = gflops(totals.flop, totals.fma1);
    let g2 = gflops(totals.flop, totals.fma2);
    println!(
        "total {:.2} GFLOP (pool times included): reference {} (sampled), portable {}, fma 1 thread {:.1} GFLOP/s ({:.0}% of the {:.1} GFLOP/s peak, {} portable), {} threads {:.1} GFLOP/s ({:.2}x one thread)",
        totals.flop / 1e9,
        fig(gflops(totals.flop, secs(totals.reference)), 1, ""),
        fig(gflops(totals.flop, secs(totals.portable)), 1, ""),
        g1,
        100.0 * g1 / peak,
        peak,
        fig(secs(totals.portable) / totals.fma1, 1, "x"),
        THREADS,
        g2,
        totals.fma1 / totals.fma2
    );
    if let Some(r0) = rows.first().filter(|r| r.flop > 0.0) {
        println!(
            "layer 0: fma 1 thread {:.1} GFLOP/s ({:.0}% of peak), {} threads {:.1} GFLOP/s",
            gflops(r0.flop, r0.fma1),
            100.0 * gflops(r0.flop, r0.fma1) / peak,
            THREADS,
            gflops(r0.flop, r0.fma2)
        );
    }
    if let Some(t) = tiled {
        println!(
            "tiled check (fma, 1 thread): 3x3 grid with reuse {:.1} ms vs full frame {:.1} ms: time ratio {:.3}, FLOP ratio {:.3} -> {} (bound: FLOP ratio + 0.10); outputs equal bit for bit",
            t.tiled * 1e3,
            t.full * 1e3,
            t.time_ratio(),
            t.flop_ratio,
            if t.within_bound() { "ok" } else { "OVER" }
        );
        println!("  by on-CPU time: tiled/full {:.3}", t.cpu_ratio());
    }
}

/// Per-layer forms as `- - F4 - F2 ...` (`-`: direct or a pool).
fn forms_line(forms: &[Option<Form>]) -> String {
    forms
        .iter()
        .map(|f| f.map_or("-".to_string(), |f| format!("{f:?}")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The Winograd kernel's totals (effective GFLOP/s: direct-convolution FLOPs over its time)
/// and its tiled check.
fn print_winograd(form: Form, totals: &LayerTimes, tiled: Option<&TiledCheck>) {
    let (w1, w2) = (secs(totals.wino1), secs(totals.wino2));
    if !w1.is_finite() {
        return;
    }
    println!(
        "winograd ({form:?} on 3x3 stride-1 layers of >= 16 channels, direct elsewhere): 1 thread {:.1} effective GFLOP/s ({:.2}x fma), {} threads {:.1} ({:.2}x fma, {:.2}x one thread)",
        gflops(totals.flop, w1),
        totals.fma1 / w1,
        THREADS,
        gflops(totals.flop, w2),
        totals.fma2 / w2,
        w1 / w2
    );
    if let (Some(f), Some(w)) = (totals.fma1_cpu, totals.wino1_cpu) {
        println!(
            "by on-CPU time (waits for a core not counted), 1 thread: fma {:.1} GFLOP/s, winograd {:.1} effective ({:.2}x fma)",
            gflops(totals.flop, f),
            gflops(totals.flop, w),
            f / w
        );
    }
    if let Some(t) = tiled {
        println!(
            "tiled check (winograd, 1 thread, forms chosen for the grid): 3x3 grid with reuse {:.1} ms vs full frame {:.1} ms: time ratio {:.3}, FLOP ratio {:.3} (direct plan) / {:.3} (aligned plan) -> {} (bound: direct FLOP ratio + 0.10); outputs equal bit for bit",
            t.tiled * 1e3,
            t.full * 1e3,
            t.time_ratio(),
            t.direct_flop_ratio,
            t.flop_ratio,
            if t.within_bound() { "ok" } else { "OVER" }
        );
        println!("  by on-CPU time: tiled/full {:.3}", t.cpu_ratio());
    }
}
