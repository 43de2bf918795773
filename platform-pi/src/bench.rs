//! `tessera bench kernels`: the machine's single-core FMA peak, then every fused layer of
//! YOLOv2 608 through the reference, portable and FMA kernels (1 and 2 threads), and a tiled
//! run against the full frame.
//!
//! Method: the network is the built-in cfg with generated weights (`--seed`); the input is the
//! built-in sample image; each layer's input is the FMA kernel's output of the layer before.
//! Every timed run is repeated `--reps` times and the fastest kept. The reference kernel is
//! slow, so it runs only a band of each layer's output rows (`--reference-rows`, a fraction)
//! and its rate is that band's FLOPs over its time. A layer's GFLOP/s is `2·MACs / time`;
//! max pools have no FLOPs but their time counts in the totals. Inputs and outputs sit in
//! 64-byte-aligned buffers, as in `tessera_backends::pipeline::run_frame`.

use std::time::{Duration, Instant};

use serde_json::json;
use tessera_backends::kernels::{fma_peak_loop, Fma, Isa};
use tessera_backends::pipeline::{run_frame, AlignedBuf};
use tessera_core::ftp::{FusedStack, Grid, Mode, Partition};
use tessera_core::kernel::{Kernels, Portable, Reference};
use tessera_core::model::weights::Weights;
use tessera_core::model::{Layer, LayerKind};
use tessera_core::region::{Region, Span};
use tessera_core::tensor::{FeatureView, FeatureViewMut};

use crate::error::{error, Context, Error};
use crate::{files, gen_weights};

/// Threads of the multi-core column.
const THREADS: usize = 2;

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
}

/// Times of one layer, in seconds (reference: scaled to the whole layer).
#[derive(Clone, Debug, Default)]
struct LayerRow {
    name: String,
    flop: f64,
    reference: f64,
    portable: f64,
    fma1: f64,
    fma2: f64,
}

/// The fastest of `reps` runs of `f`, wall-clock seconds.
fn best<F: FnMut() -> Result<(), Error>>(reps: usize, mut f: F) -> Result<f64, Error> {
    let mut t = f64::INFINITY;
    for _ in 0..reps.max(1) {
        let start = Instant::now();
        f()?;
        t = t.min(start.elapsed().as_secs_f64());
    }
    Ok(t)
}

/// The 1, 5 and 15 minute load averages (Linux), for the record of how busy the machine was.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Measured single-core FMA peak in GFLOP/s (best of 5 runs of ≈ 0.1 s).
pub fn peak_gflops(isa: Isa) -> f64 {
    let mut iters = 1u64 << 16;
    loop {
        let start = Instant::now();
        let (flops, sum) = fma_peak_loop(isa, iters);
        std::hint::black_box(sum);
        if start.elapsed() > Duration::from_millis(100) {
            let mut best = 0.0f64;
            for _ in 0..5 {
                let start = Instant::now();
                let (flops, sum) = fma_peak_loop(isa, iters);
                std::hint::black_box(sum);
                best = best.max(flops as f64 / start.elapsed().as_secs_f64() / 1e9);
            }
            return best;
        }
        let _ = flops;
        iters *= 2;
    }
}

fn layer_name(layer: &Layer) -> String {
    match &layer.kind {
        LayerKind::Conv(c) => format!(
            "conv {}x{}/{} {:>3}->{:<3} {}x{}",
            c.size, c.size, c.stride, layer.input.c, c.filters, layer.output.w, layer.output.h
        ),
        LayerKind::MaxPool(p) => format!(
            "max  {}x{}/{} {:>3}        {}x{}",
            p.size, p.size, p.stride, layer.input.c, layer.output.w, layer.output.h
        ),
        _ => "other".into(),
    }
}

/// Runs layer `l` with `k` over `region` of its output.
fn run_layer<K: Kernels>(
    k: &K,
    layer: &Layer,
    weights: &Weights<'_>,
    l: usize,
    input: &FeatureView<'_>,
    out: &mut [f32],
    region: Region,
) -> Result<(), Error> {
    let mut ov = FeatureViewMut::new(out, region, layer.output.c).context(|| "output view")?;
    let res = match &layer.kind {
        LayerKind::Conv(c) => {
            let p = weights
                .conv(l)
                .ok_or_else(|| error("weights", format!("layer {l}")))?;
            k.conv(c, layer.input, &p, input, &mut ov)
        }
        LayerKind::MaxPool(p) => k.maxpool(p, layer.input, input, &mut ov),
        _ => return Err(error("layer", format!("{l} is not fusable"))),
    };
    res.context(|| format!("layer {l}"))
}

/// Runs the command.
pub fn run(args: &Args) -> Result<(), Error> {
    let net = files::load_network(None)?;
    let upto = args.upto;
    let stack = FusedStack::new(&net, upto).context(|| format!("fusing layers [0, {upto})"))?;
    let params = gen_weights::params(&net, upto, args.seed);
    let weights = Weights::new(&net, upto, &params).context(|| "viewing the weights")?;
    let fma1 = Fma::new();
    let fma2 = Fma::new().with_threads(THREADS);
    let isa = fma1.isa();
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
    let mut cur = AlignedBuf::from_slice(&image);
    let mut rows = Vec::new();
    for (l, layer) in net.layers()[..upto].iter().enumerate() {
        let (i, o) = (layer.input, layer.output);
        let iv = FeatureView::new(cur.as_slice(), Region::full(i.w, i.h), i.c)
            .context(|| "input view")?;
        let full = Region::full(o.w, o.h);
        let mut out_buf = AlignedBuf::new(o.elements().unwrap_or(0));
        let out = out_buf.as_mut_slice();
        // Touch every page before timing (a fresh allocation is mapped lazily).
        out.fill(1.0);
        let flop = 2.0 * layer.macs() as f64;
        let mut row = LayerRow {
            name: layer_name(layer),
            flop,
            ..LayerRow::default()
        };
        row.fma1 = best(args.reps, || {
            run_layer(&fma1, layer, &weights, l, &iv, out, full)
        })?;
        row.fma2 = best(args.reps, || {
            run_layer(&fma2, layer, &weights, l, &iv, out, full)
        })?;
        let mut scratch = vec![1.0f32; out.len()];
        if args.fma_only {
            row.portable = f64::NAN;
            row.reference = f64::NAN;
            if !args.json {
                print_row(l, &row, peak);
            }
            rows.push(row);
            cur = out_buf;
            continue;
        }
        row.portable = best(args.reps.min(2), || {
            run_layer(&Portable, layer, &weights, l, &iv, &mut scratch, full)
        })?;
        let band = ((o.h as f64 * args.reference_rows).ceil() as u32).clamp(1, o.h);
        let y0 = (o.h - band) / 2;
        let sub = Region::new(Span::new(0, o.w), Span::new(y0, y0 + band));
        let t = best(1, || {
            run_layer(&Reference, layer, &weights, l, &iv, &mut scratch, sub)
        })?;
        row.reference = t * o.h as f64 / band as f64;
        if !args.json {
            print_row(l, &row, peak);
        }
        rows.push(row);
        cur = out_buf;
    }
    let tiled = if args.no_tiled {
        None
    } else {
        Some(tiled_check(&fma1, &stack, &weights, &image, args.reps)?)
    };
    peak = peak.max(peak_gflops(isa));
    let sum = |f: fn(&LayerRow) -> f64| rows.iter().map(f).sum::<f64>();
    let flop = sum(|r| r.flop);
    let totals = LayerRow {
        name: "total".into(),
        flop,
        reference: sum(|r| r.reference),
        portable: sum(|r| r.portable),
        fma1: sum(|r| r.fma1),
        fma2: sum(|r| r.fma2),
    };
    if args.json {
        println!(
            "{}",
            json(args, &load, isa, peak, &rows, &totals, tiled.as_ref())
        );
    } else {
        println!("load average at the end: {}", loadavg());
        print_summary(peak, &rows, &totals, tiled.as_ref());
    }
    Ok(())
}

/// Times of the full frame and of a 3×3 grid with reuse, with the FLOP ratio.
struct Tiled {
    full: f64,
    tiled: f64,
    flop_ratio: f64,
}

impl Tiled {
    fn time_ratio(&self) -> f64 {
        self.tiled / self.full
    }

    /// The criterion: tiled time ≤ full time × FLOP ratio + 10 %.
    fn ok(&self) -> bool {
        self.time_ratio() <= self.flop_ratio + 0.10
    }
}

fn tiled_check(
    k: &Fma,
    stack: &FusedStack<'_>,
    weights: &Weights<'_>,
    input: &[f32],
    reps: usize,
) -> Result<Tiled, Error> {
    let one = Grid::new(1, 1, Partition::Darknet, stack).context(|| "grid 1x1")?;
    let three = Grid::new(3, 3, Partition::Darknet, stack).context(|| "grid 3x3")?;
    let mut full_out = Vec::new();
    let mut macs = (0, 0);
    let full = best(reps, || {
        let (out, stats) = run_frame(k, stack, weights, &one, Mode::Plain, input)?;
        full_out = out;
        macs.0 = stats.macs;
        Ok(())
    })?;
    let mut tiled_out = Vec::new();
    let tiled = best(reps, || {
        let (out, stats) = run_frame(k, stack, weights, &three, Mode::Reuse, input)?;
        tiled_out = out;
        macs.1 = stats.macs;
        Ok(())
    })?;
    let same = full_out.len() == tiled_out.len()
        && full_out
            .iter()
            .zip(&tiled_out)
            .all(|(a, b)| a.to_bits() == b.to_bits());
    if !same {
        return Err(error(
            "tiled check",
            "3x3 reuse output differs from the full frame",
        ));
    }
    Ok(Tiled {
        full,
        tiled,
        flop_ratio: macs.1 as f64 / macs.0 as f64,
    })
}

fn gflops(flop: f64, t: f64) -> f64 {
    flop / t / 1e9
}

fn print_row(l: usize, r: &LayerRow, peak: f64) {
    if l == 0 {
        println!(
            "{:>5} {:<27} {:>6} | {:>9} {:>9} | {:>9} {:>6} {:>6} | {:>9} {:>6} | {:>8} {:>8}",
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
            "ms 2t"
        );
    }
    let label = if l == usize::MAX {
        "total".to_string()
    } else {
        l.to_string()
    };
    // Not measured (`--fma-only`): a dash, not NaN.
    let fig = |x: f64, digits: usize, unit: &str| {
        if x.is_finite() {
            format!("{x:.digits$}{unit}")
        } else {
            "-".into()
        }
    };
    if r.flop == 0.0 {
        println!(
            "{label:>5} {:<27} {:>6} | {:>9} {:>9} | {:>9} {:>6} {:>6} | {:>9} {:>6} | {:>8.2} {:>8.2}",
            r.name,
            "-",
            "-",
            "-",
            "-",
            "-",
            fig(r.portable / r.fma1, 1, "x"),
            "-",
            format!("{:.2}", r.fma1 / r.fma2),
            r.fma1 * 1e3,
            r.fma2 * 1e3
        );
        return;
    }
    let g1 = gflops(r.flop, r.fma1);
    println!(
        "{label:>5} {:<27} {:>6.2} | {:>9} {:>9} | {:>9.1} {:>5.0}% {:>6} | {:>9.1} {:>5.2}x | {:>8.2} {:>8.2}",
        r.name,
        r.flop / 1e9,
        fig(gflops(r.flop, r.reference), 1, ""),
        fig(gflops(r.flop, r.portable), 1, ""),
        g1,
        100.0 * g1 / peak,
        fig(r.portable / r.fma1, 1, "x"),
        gflops(r.flop, r.fma2),
        r.fma1 / r.fma2,
        r.fma1 * 1e3,
        r.fma2 * 1e3
    );
}

fn print_summary(peak: f64, rows: &[LayerRow], totals: &LayerRow, tiled: Option<&Tiled>) {
    print_row(usize::MAX, totals, peak);
    let g1 = gflops(totals.flop, totals.fma1);
    let g2 = gflops(totals.flop, totals.fma2);
    println!(
        "total {:.2} GFLOP (pool times included): reference {:.1} (sampled), portable {:.1}, fma 1 thread {:.1} GFLOP/s ({:.0}% of the {:.1} GFLOP/s peak, {:.1}x portable), {} threads {:.1} GFLOP/s ({:.2}x one thread)",
        totals.flop / 1e9,
        gflops(totals.flop, totals.reference),
        gflops(totals.flop, totals.portable),
        g1,
        100.0 * g1 / peak,
        peak,
        totals.portable / totals.fma1,
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
            if t.ok() { "ok" } else { "OVER" }
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn json(
    args: &Args,
    load: &str,
    isa: Isa,
    peak: f64,
    rows: &[LayerRow],
    totals: &LayerRow,
    tiled: Option<&Tiled>,
) -> String {
    // Four decimals; NaN and infinities (skipped runs) become `null`.
    let num = |x: f64| (x * 1e4).round() / 1e4;
    let rate = |flop: f64, t: f64| (flop > 0.0).then(|| num(gflops(flop, t)));
    let g1 = gflops(totals.flop, totals.fma1);
    let mut v = json!({
        "network": "yolov2-608",
        "loadavg_start": load,
        "loadavg_end": loadavg(),
        "layers_upto": args.upto,
        "seed": args.seed,
        "reps": args.reps,
        "isa": format!("{isa:?}"),
        "threads_multi": THREADS,
        "reference_rows_fraction": num(args.reference_rows),
        "peak_gflops": num(peak),
        "total_gflop": num(totals.flop / 1e9),
        "total_gflops_reference": num(gflops(totals.flop, totals.reference)),
        "total_gflops_portable": num(gflops(totals.flop, totals.portable)),
        "total_gflops_1t": num(g1),
        "total_gflops_2t": num(gflops(totals.flop, totals.fma2)),
        "fraction_of_peak_1t": num(g1 / peak),
        "speedup_2t": num(totals.fma1 / totals.fma2),
        "ratio_to_portable_1t": num(totals.portable / totals.fma1),
        "layers": rows.iter().enumerate().map(|(l, r)| json!({
            "layer": l,
            "name": r.name.split_whitespace().collect::<Vec<_>>().join(" "),
            "gflop": num(r.flop / 1e9),
            "reference_gflops": rate(r.flop, r.reference),
            "portable_gflops": rate(r.flop, r.portable),
            "gflops_1t": rate(r.flop, r.fma1),
            "gflops_2t": rate(r.flop, r.fma2),
            "fraction_of_peak_1t": (r.flop > 0.0).then(|| num(gflops(r.flop, r.fma1) / peak)),
            "ratio_to_portable_1t": num(r.portable / r.fma1),
            "speedup_2t": num(r.fma1 / r.fma2),
            "time_1t_s": num(r.fma1),
            "time_2t_s": num(r.fma2),
            "time_portable_s": num(r.portable),
        })).collect::<Vec<_>>(),
    });
    if let Some(r0) = rows.first() {
        v["layer0_gflops_1t"] = json!(rate(r0.flop, r0.fma1));
        v["layer0_gflops_2t"] = json!(rate(r0.flop, r0.fma2));
    }
    if let Some(t) = tiled {
        v["tiled"] = json!({
            "grid": "3x3",
            "reuse": true,
            "threads": 1,
            "full_s": num(t.full),
            "tiled_s": num(t.tiled),
            "time_ratio": num(t.time_ratio()),
            "flop_ratio": num(t.flop_ratio),
            "ok": t.ok(),
        });
    }
    v.to_string()
}
