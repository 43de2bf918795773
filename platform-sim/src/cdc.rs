//! Coded distributed computing experiments (issue 6), run by `tessera-sim cdc …`:
//!
//! 1. [`latency`]: layer latency p50/p99/p99.9 under the Pi 3 WiFi reply-time model for an
//!    uncoded split, 2MR, CDC r = 1 and r = 2, and the extra devices each needs.
//! 2. [`failures`]: `f` devices killed with `r = f` parities: every kill pattern decoded,
//!    integer mode bit-exact, float within the bound, decode time vs the layer's compute.
//! 3. [`accuracy`]: the digits MLP's hidden layer over 8 actors; accuracy vs packet loss for
//!    uncoded, CDC r = 1/2, and the two deadline allocators.
//!
//! All three are Monte Carlo over `tessera_core::deadline` delay models with seeded generators
//! (not the packet-level smoltcp simulator: a coded layer is not yet dispatched by the
//! runtime's gateway, see the report). Experiment 2's times are wall-clock measurements.

use std::error::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use tessera_core::code::{encode, replicate, shard, Arithmetic, Code, Decoder};
use tessera_core::deadline::{
    expected_recovery, gamma, optimize, uniform, Graph, LinkDelay, Rng, Schedule,
};

use std::sync::Arc;

use tessera_backends::coded::{Activation, CodedModel, LayerScheme, LinearLayer, Numeric};
use tessera_core::runtime::coded::{Allocator, CodedConfig, Protection};
use tessera_core::time::Duration;

use crate::coded_world::{self, Arrival, CodedSimConfig};
use crate::digits::{self, QuantHidden, Sample, HIDDEN, PIXELS};

/// `tessera-sim cdc` arguments.
#[derive(clap::Args, Debug)]
pub struct CdcArgs {
    /// Which experiment.
    #[command(subcommand)]
    pub what: CdcCmd,
}

/// The CDC experiments: `latency`, `failures`, `accuracy` run the coded stage through the
/// runtime in the simulator (`coded_world`); the `*-model` ones are the earlier Monte Carlo
/// models (cheap, kept for comparison).
#[derive(clap::Subcommand, Debug)]
pub enum CdcCmd {
    /// Trains the digits MLP (fixed seeds, stated split) and prints its accuracy.
    TrainDigits(DataArgs),
    /// Experiment a (runtime): layer latency under the Pi 3 WiFi reply-time model.
    Latency(RunArgs),
    /// Experiment b (runtime): f workers killed mid-layer with r = f; exactness, decode cost.
    Failures(RunArgs),
    /// Experiment c (runtime): digits accuracy vs packet loss, both allocators.
    Accuracy(RunArgs),
    /// Experiment 1 as a Monte Carlo model of the reply times (no runtime).
    LatencyModel(OutArgs),
    /// Experiment 2 on the host: every kill pattern decoded, decode time (no runtime).
    FailuresModel(OutArgs),
    /// Experiment 3 as a Monte Carlo model (no runtime).
    AccuracyModel(DataArgs),
    /// Experiment 3b: uniform vs quality-aware budgets on random dataflow graphs (model).
    Qla(OutArgs),
    /// The runtime experiments, the models, and the report page `cdc.html` in `--out`.
    All(RunArgs),
}

/// Output directory for CSVs.
#[derive(clap::Args, Debug, Clone)]
pub struct OutArgs {
    /// Directory the CSV files are written to.
    #[arg(long, default_value = "out/cdc")]
    pub out: PathBuf,
}

/// Data file and output directory.
#[derive(clap::Args, Debug, Clone)]
pub struct DataArgs {
    /// The digits CSV.
    #[arg(long, default_value = "data/digits.csv")]
    pub data: PathBuf,
    /// Directory the CSV files are written to.
    #[arg(long, default_value = "out/cdc")]
    pub out: PathBuf,
    /// Deadline tightness ρ of experiment 3 (0 = every link's 0.1 % quantile, 1 = 99.9 %).
    #[arg(long, default_value_t = RHO)]
    pub rho: f64,
}

/// Runs a `cdc` subcommand, printing its tables.
pub fn run(a: &CdcArgs) -> Result<(), Box<dyn Error>> {
    match &a.what {
        CdcCmd::TrainDigits(d) => print!("{}", train_digits(&d.data)?),
        CdcCmd::Latency(r) => print!("{}", rt_latency(r)?.0),
        CdcCmd::Failures(r) => print!("{}", rt_failures(r)?.0),
        CdcCmd::Accuracy(r) => print!("{}", rt_accuracy(r)?.0),
        CdcCmd::LatencyModel(o) => print!("{}", latency(&o.out, LATENCY_TRIALS)?),
        CdcCmd::FailuresModel(o) => print!("{}", failures(&o.out)?),
        CdcCmd::Qla(o) => print!("{}", qla(&o.out)?),
        CdcCmd::AccuracyModel(d) => {
            print!("{}", accuracy(&d.data, &d.out, d.rho, ACCURACY_REPS)?)
        }
        CdcCmd::All(r) => all(r)?,
    }
    Ok(())
}

/// `tessera-sim cdc all`: everything, and `cdc.html` in `--out`.
pub fn all(r: &RunArgs) -> Result<(), Box<dyn Error>> {
    let t = train_digits(&r.data)?;
    print!("{t}");
    let (a, lat) = rt_latency(r)?;
    print!("{a}");
    let (b, fail) = rt_failures(r)?;
    print!("{b}");
    let (c, acc) = rt_accuracy(r)?;
    print!("{c}");
    let mut models = latency(&r.out, LATENCY_TRIALS)?;
    models.push_str(&failures(&r.out)?);
    models.push_str(&accuracy(&r.data, &r.out, RHO, ACCURACY_REPS)?);
    models.push_str(&qla(&r.out)?);
    print!("{models}");
    let html = crate::report::cdc_html(r, &t, &a, &lat, &b, &fail, &c, &acc, &models);
    let p = write_csv(&r.out, "cdc.html", &html)?;
    println!("(report: {})", p.display());
    Ok(())
}

fn write_csv(dir: &Path, name: &str, text: &str) -> Result<PathBuf, Box<dyn Error>> {
    std::fs::create_dir_all(dir)?;
    let p = dir.join(name);
    std::fs::write(&p, text)?;
    Ok(p)
}

/// `tessera-sim cdc train-digits`: split, train, float and int8 test accuracy.
pub fn train_digits(data: &Path) -> Result<String, Box<dyn Error>> {
    let all = digits::load(data)?;
    let (train, test) = digits::split(&all);
    let t0 = Instant::now();
    let (m, loss) = digits::train(&train);
    let q = digits::quantize_hidden(&m);
    let mut s = String::new();
    writeln!(s, "## digits MLP 64-{HIDDEN}-10")?;
    writeln!(
        s,
        "{} samples; split: Fisher-Yates(seed {}) then first {} train / last {} test",
        all.len(),
        digits::SPLIT_SEED,
        train.len(),
        test.len()
    )?;
    writeln!(
        s,
        "SGD momentum {} lr {} batch {} epochs {} (init seed {}, order seed {}): final train loss {loss:.4}, {:.2} s",
        digits::MOMENTUM,
        digits::LEARNING_RATE,
        digits::BATCH,
        digits::EPOCHS,
        digits::INIT_SEED,
        digits::ORDER_SEED,
        t0.elapsed().as_secs_f64()
    )?;
    writeln!(
        s,
        "test accuracy: float {:.2} %, int8 hidden layer {:.2} %; train accuracy {:.2} %",
        100.0 * m.accuracy(&test),
        100.0 * int8_accuracy(&m, &q, &test),
        100.0 * m.accuracy(&train)
    )?;
    Ok(s)
}

fn int8_accuracy(m: &digits::Mlp, q: &QuantHidden, set: &[Sample]) -> f64 {
    let ok = set
        .iter()
        .filter(|s| {
            let mut y = [0i32; HIDDEN];
            let x = QuantHidden::input(s);
            shard::gemm_i8(&q.w, &q.b, &x, PIXELS, 1, &mut y).is_ok()
                && digits::argmax(&m.head(&q.dequantize(&y))) == s.label
        })
        .count();
    ok as f64 / set.len().max(1) as f64
}

// ---------------------------------------------------------------------------------------------
// Experiment 1

/// Monte Carlo trials per scheme in experiment 1.
pub const LATENCY_TRIALS: usize = 200_000;
/// Compute time of the CDC paper's 2048-wide FC layer on one Pi 3 (DESIGN-NOTES §6), ms: the
/// minimum reply time of the arrival model.
pub const PI3_FC_MS: f64 = 50.0;

/// The Pi 3 WiFi reply-time model: `50 ms + Gamma(κ, θ)`, with `κ, θ` solved so that 34 % of
/// replies arrive within 100 ms and 42 % within 150 ms (the CDC paper's 4-Pi measurement,
/// DESIGN-NOTES §6; the note flags that sentence as inconsistent, so this is a heavy-tail
/// model fitted to the only two figures given, not a measured distribution).
pub fn pi3_wifi_reply_model() -> LinkDelay {
    let (p1, p2) = (0.34, 0.42);
    let (x1, x2) = (100.0 - PI3_FC_MS, 150.0 - PI3_FC_MS);
    let theta_for = |k: f64| {
        // cdf(k, θ, x1) decreases in θ: bisect log θ.
        let (mut lo, mut hi) = (-10.0f64, 30.0f64);
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            if gamma::cdf(k, mid.exp(), x1) > p1 {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        (0.5 * (lo + hi)).exp()
    };
    let (mut lo, mut hi) = (0.01f64, 10.0f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if gamma::cdf(mid, theta_for(mid), x2) < p2 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let shape = 0.5 * (lo + hi);
    LinkDelay {
        loc: PI3_FC_MS,
        shape,
        scale: theta_for(shape),
        loss: 0.0,
    }
}

/// Redundancy schemes of one layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// `k` devices, wait for all.
    Uncoded,
    /// Every device duplicated, wait for one copy of each.
    TwoMr,
    /// `k + r` devices, wait for any `k`.
    Cdc(usize),
}

impl Scheme {
    fn name(&self) -> String {
        match self {
            Scheme::Uncoded => "uncoded".into(),
            Scheme::TwoMr => "2MR".into(),
            Scheme::Cdc(r) => format!("CDC r={r}"),
        }
    }
    fn devices(&self, k: usize) -> usize {
        match *self {
            Scheme::Uncoded => k,
            Scheme::TwoMr => replicate::devices(k),
            Scheme::Cdc(r) => k + r,
        }
    }
    /// Probability that the layer is complete by `t` for i.i.d. reply CDF value `f = F(t)`.
    fn complete_prob(&self, k: usize, f: f64) -> f64 {
        match *self {
            Scheme::Uncoded => f.powi(k as i32),
            Scheme::TwoMr => (1.0 - (1.0 - f) * (1.0 - f)).powi(k as i32),
            Scheme::Cdc(r) => {
                let n = k + r;
                (k..=n)
                    .map(|i| binom(n, i) * f.powi(i as i32) * (1.0 - f).powi((n - i) as i32))
                    .sum()
            }
        }
    }
    /// One Monte Carlo layer latency from `replies` (one per device).
    fn latency(&self, k: usize, replies: &mut [f64]) -> f64 {
        match *self {
            Scheme::Uncoded => replies.iter().copied().fold(0.0, f64::max),
            Scheme::TwoMr => (0..k)
                .map(|d| replies[d].min(replies[d + k]))
                .fold(0.0, f64::max),
            Scheme::Cdc(_) => {
                replies.sort_by(f64::total_cmp);
                replies[k - 1]
            }
        }
    }
}

fn binom(n: usize, i: usize) -> f64 {
    (0..i).fold(1.0, |acc, j| acc * (n - j) as f64 / (j + 1) as f64)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// Row of experiment 1.
#[derive(Clone, Debug, PartialEq)]
pub struct LatencyRow {
    /// Data shards.
    pub k: usize,
    /// Scheme.
    pub scheme: Scheme,
    /// Devices used.
    pub devices: usize,
    /// Monte Carlo p50, p99, p99.9 (ms).
    pub mc: [f64; 3],
    /// Exact p50, p99, p99.9 from the order-statistic CDF (ms).
    pub exact: [f64; 3],
}

/// Experiment 1 rows for `k ∈ {3, 8}` and every scheme.
pub fn latency_rows(trials: usize, seed: u64) -> Vec<LatencyRow> {
    let model = pi3_wifi_reply_model();
    let mut rows = Vec::new();
    for k in [3usize, 8] {
        for scheme in [
            Scheme::Uncoded,
            Scheme::TwoMr,
            Scheme::Cdc(1),
            Scheme::Cdc(2),
        ] {
            let n = scheme.devices(k);
            let mut rng = Rng::new(seed ^ (k as u64) << 8 ^ n as u64);
            let mut lat = Vec::with_capacity(trials);
            let mut replies = vec![0.0; n];
            for _ in 0..trials {
                for r in replies.iter_mut() {
                    *r = model.sample(&mut rng).unwrap_or(f64::INFINITY);
                }
                lat.push(scheme.latency(k, &mut replies));
            }
            lat.sort_by(f64::total_cmp);
            let qs = [0.5, 0.99, 0.999];
            let mc = qs.map(|q| percentile(&lat, q));
            let exact = qs.map(|q| {
                let (mut lo, mut hi) = (model.loc, model.loc + 1.0);
                while scheme.complete_prob(k, gamma::cdf(model.shape, model.scale, hi - model.loc))
                    < q
                {
                    hi = model.loc + 2.0 * (hi - model.loc);
                }
                for _ in 0..100 {
                    let mid = 0.5 * (lo + hi);
                    let f = gamma::cdf(model.shape, model.scale, mid - model.loc);
                    if scheme.complete_prob(k, f) < q {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
                0.5 * (lo + hi)
            });
            rows.push(LatencyRow {
                k,
                scheme,
                devices: n,
                mc,
                exact,
            });
        }
    }
    rows
}

/// `tessera-sim cdc latency`.
pub fn latency(out: &Path, trials: usize) -> Result<String, Box<dyn Error>> {
    let model = pi3_wifi_reply_model();
    let rows = latency_rows(trials, 0x1a7e);
    let mut s = String::new();
    let mut csv = String::from("k,scheme,devices,extra_devices,p50_ms,p99_ms,p999_ms,exact_p50_ms,exact_p99_ms,exact_p999_ms\n");
    writeln!(s, "## Experiment 1: layer latency, Pi 3 WiFi reply model")?;
    writeln!(
        s,
        "reply time = {:.0} ms + Gamma(shape {:.3}, scale {:.1} ms): P(<=100 ms) = {:.3}, P(<=150 ms) = {:.3}, mean {:.0} ms; {trials} Monte Carlo layers per row (seeded), exact = order-statistic CDF",
        model.loc,
        model.shape,
        model.scale,
        gamma::cdf(model.shape, model.scale, 100.0 - model.loc),
        gamma::cdf(model.shape, model.scale, 150.0 - model.loc),
        model.mean()
    )?;
    writeln!(s, "| k | scheme | devices | extra | p50 ms | p99 ms | p99.9 ms | exact p50 / p99 / p99.9 ms |")?;
    writeln!(s, "|---|---|---|---|---|---|---|---|")?;
    for r in &rows {
        writeln!(
            s,
            "| {} | {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} / {:.0} / {:.0} |",
            r.k,
            r.scheme.name(),
            r.devices,
            r.devices - r.k,
            r.mc[0],
            r.mc[1],
            r.mc[2],
            r.exact[0],
            r.exact[1],
            r.exact[2]
        )?;
        writeln!(
            csv,
            "{},{},{},{},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3}",
            r.k,
            r.scheme.name(),
            r.devices,
            r.devices - r.k,
            r.mc[0],
            r.mc[1],
            r.mc[2],
            r.exact[0],
            r.exact[1],
            r.exact[2]
        )?;
    }
    let p = write_csv(out, "cdc_latency.csv", &csv)?;
    writeln!(s, "(CSV: {})\n", p.display())?;
    Ok(s)
}

// ---------------------------------------------------------------------------------------------
// Experiment 2

/// A layer for experiment 2: `rows` outputs, `in_len` inputs, `cols` columns.
#[derive(Clone, Copy, Debug)]
pub struct LayerShape {
    /// Name in the table.
    pub name: &'static str,
    /// Output rows (filters).
    pub rows: usize,
    /// Input length `K`.
    pub in_len: usize,
    /// Output columns (`H·W` for a conv, 1 for FC).
    pub cols: usize,
}

/// Experiment 2's layers: the CDC paper's FC, YOLOv2's last 1×1 conv (1024 → 425 at 19×19),
/// and a 3×3 conv (64 → 128 at 19×19) as GEMM.
pub const FAILURE_LAYERS: [LayerShape; 3] = [
    LayerShape {
        name: "fc 2048x2048",
        rows: 2048,
        in_len: 2048,
        cols: 1,
    },
    LayerShape {
        name: "conv1x1 1024->425 @19x19",
        rows: 425,
        in_len: 1024,
        cols: 361,
    },
    LayerShape {
        name: "conv3x3 64->128 @19x19",
        rows: 128,
        in_len: 576,
        cols: 361,
    },
];

/// Row of experiment 2.
#[derive(Clone, Debug, PartialEq)]
pub struct FailureRow {
    /// Layer.
    pub layer: &'static str,
    /// Data shards.
    pub k: usize,
    /// Devices killed = parities.
    pub f: usize,
    /// Kill patterns decoded.
    pub patterns: usize,
    /// Whether every integer decode was bit-exact.
    pub int_exact: bool,
    /// Largest float error / bound over every pattern.
    pub float_err_over_bound: f64,
    /// Largest float error relative to the output magnitude `A`.
    pub float_rel_err: f64,
    /// Median integer decode time (f data shards lost), ms.
    pub decode_ms: f64,
    /// Full layer on one device (int8 GEMM), ms.
    pub layer_ms: f64,
    /// One shard's compute, ms.
    pub shard_ms: f64,
}

fn time_ms<F: FnMut()>(mut f: F) -> f64 {
    let t0 = Instant::now();
    f();
    t0.elapsed().as_secs_f64() * 1e3
}

/// Experiment 2 rows: `k = 8`, `f = r ∈ 1..=4`, every pattern of `f` killed devices.
pub fn failure_rows(
    layers: &[LayerShape],
    k: usize,
    max_f: usize,
) -> Result<Vec<FailureRow>, Box<dyn Error>> {
    let mut rows = Vec::new();
    for (li, l) in layers.iter().enumerate() {
        let mut rng = Rng::new(0xfa11 + li as u64);
        let wi: Vec<i8> = (0..l.rows * l.in_len)
            .map(|_| rng.next_u64() as i8)
            .collect();
        let bi: Vec<i32> = (0..l.rows)
            .map(|_| (rng.next_u64() % 20_001) as i32 - 10_000)
            .collect();
        let xi: Vec<i8> = (0..l.in_len * l.cols)
            .map(|_| rng.next_u64() as i8)
            .collect();
        let wf: Vec<f32> = wi.iter().map(|&v| f32::from(v) / 128.0).collect();
        let bf: Vec<f32> = bi.iter().map(|&v| v as f32 / 1e4).collect();
        let xf: Vec<f32> = xi.iter().map(|&v| f32::from(v) / 128.0).collect();
        let mut want_i = vec![0i32; l.rows * l.cols];
        let layer_ms = time_ms(|| {
            let _ = shard::gemm_i8(&wi, &bi, &xi, l.in_len, l.cols, &mut want_i);
        });
        // Exact float reference and magnitudes A per (row, col), f64.
        let mut exact = vec![0.0f64; l.rows * l.cols];
        let mut mag = vec![0.0f64; l.rows * l.cols];
        for i in 0..l.rows {
            let w = &wf[i * l.in_len..(i + 1) * l.in_len];
            for c in 0..l.cols {
                let (mut y, mut a) = (f64::from(bf[i]), f64::from(bf[i].abs()));
                for (t, &wv) in w.iter().enumerate() {
                    let p = f64::from(wv) * f64::from(xf[t * l.cols + c]);
                    y += p;
                    a += p.abs();
                }
                exact[i * l.cols + c] = y;
                mag[i * l.cols + c] = a;
            }
        }
        for f in 1..=max_f {
            let code = Code::new(l.rows, k, f)?;
            let s = code.shard_rows();
            let n = code.n();
            // Every shard's result, both modes.
            let mut res_i: Vec<Vec<i32>> = Vec::new();
            let mut res_f: Vec<Vec<f32>> = Vec::new();
            let mut shard_times = Vec::new();
            for d in 0..k {
                let (w, b) = encode::data_shard(&code, d, &wi, &bi, l.in_len)?;
                let mut y = vec![0; b.len() * l.cols];
                let _ = shard::gemm_i8(w, b, &xi, l.in_len, l.cols, &mut y); // warm-up
                shard_times.push(time_ms(|| {
                    let _ = shard::gemm_i8(w, b, &xi, l.in_len, l.cols, &mut y);
                }));
                res_i.push(y);
                let (w, b) = encode::data_shard(&code, d, &wf, &bf, l.in_len)?;
                let mut y = vec![0.0; b.len() * l.cols];
                shard::gemm_f32(w, b, &xf, l.in_len, l.cols, &mut y)?;
                res_f.push(y);
            }
            for j in 0..f {
                let mut y = vec![0; s * l.cols];
                if code.int_arithmetic() == Arithmetic::Wrapping {
                    let (mut pw, mut pb) = (vec![0i32; s * l.in_len], vec![0i32; s]);
                    encode::parity_wrapping(&code, &wi, &bi, l.in_len, &mut pw, &mut pb)?;
                    shard::gemm_wrapping(&pw, &pb, &xi, l.in_len, l.cols, &mut y)?;
                } else {
                    let (mut pw, mut pb) = (vec![0u32; s * l.in_len], vec![0u32; s]);
                    encode::parity_mod_p(&code, j, &wi, &bi, l.in_len, &mut pw, &mut pb)?;
                    shard::gemm_mod_p(&pw, &pb, &xi, l.in_len, l.cols, &mut y)?;
                }
                res_i.push(y);
                let (mut pw, mut pb) = (vec![0f32; s * l.in_len], vec![0f32; s]);
                encode::parity_f32(&code, j, &wf, &bf, l.in_len, &mut pw, &mut pb)?;
                let mut y = vec![0.0; s * l.cols];
                shard::gemm_f32(&pw, &pb, &xf, l.in_len, l.cols, &mut y)?;
                res_f.push(y);
            }
            let (mut patterns, mut exact_all) = (0, true);
            let (mut worst_ratio, mut worst_rel) = (0.0f64, 0.0f64);
            let mut times = Vec::new();
            let mut out_i = vec![0i32; l.rows * l.cols];
            let mut out_f = vec![0f32; l.rows * l.cols];
            for mask in 0u32..(1 << n) {
                if n - mask.count_ones() as usize != f {
                    continue;
                }
                patterns += 1;
                let vi: Vec<Option<&[i32]>> = res_i
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (mask >> i & 1 == 1).then_some(v.as_slice()))
                    .collect();
                let vf: Vec<Option<&[f32]>> = res_f
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (mask >> i & 1 == 1).then_some(v.as_slice()))
                    .collect();
                let mut dec_result = Ok(());
                let t = time_ms(|| {
                    dec_result = Decoder::from_mask(&code, mask)
                        .and_then(|d| d.decode_i32(&vi, l.cols, &mut out_i));
                });
                dec_result?;
                if (mask & ((1 << k) - 1)).count_ones() as usize == k - f {
                    times.push(t);
                }
                exact_all &= out_i == want_i;
                let dec = Decoder::from_mask(&code, mask)?;
                dec.decode_f32(&vf, l.cols, &mut out_f)?;
                for &d in dec.erased() {
                    for row in code.data_rows(d.into())? {
                        for c in 0..l.cols {
                            let at = row * l.cols + c;
                            // A for the bound: largest magnitude over the rows mixed with it.
                            let t = row % s;
                            let a = (0..k)
                                .map(|dd| dd * s + t)
                                .filter(|&rr| rr < l.rows)
                                .map(|rr| mag[rr * l.cols + c])
                                .fold(0.0f64, f64::max);
                            let err = (f64::from(out_f[at]) - exact[at]).abs();
                            let bound = dec.error_bound_f32(l.in_len, a, exact[at]);
                            worst_ratio = worst_ratio.max(err / bound);
                            worst_rel = worst_rel.max(err / a);
                        }
                    }
                }
            }
            times.sort_by(f64::total_cmp);
            shard_times.sort_by(f64::total_cmp);
            let shard_ms = shard_times[shard_times.len() / 2];
            rows.push(FailureRow {
                layer: l.name,
                k,
                f,
                patterns,
                int_exact: exact_all,
                float_err_over_bound: worst_ratio,
                float_rel_err: worst_rel,
                decode_ms: times.get(times.len() / 2).copied().unwrap_or(0.0),
                layer_ms,
                shard_ms,
            });
        }
    }
    Ok(rows)
}

/// `tessera-sim cdc failures`.
pub fn failures(out: &Path) -> Result<String, Box<dyn Error>> {
    let rows = failure_rows(&FAILURE_LAYERS, 8, 4)?;
    let mut s = String::new();
    let mut csv = String::from("layer,k,f,r,patterns,int_exact,float_err_over_bound,float_err_over_A,decode_ms,layer_ms,shard_ms,decode_over_layer,decode_over_shard\n");
    writeln!(
        s,
        "## Experiment 2: f devices killed, r = f parities, k = 8"
    )?;
    writeln!(s, "every pattern of f killed devices among k + f; int8/i32 (r=1 wrapping, r>=2 GF(2^31-1)) vs the uncoded layer; float vs an exact f64 reference; decode time = median wall time with f data shards lost (plan + decode), one core of this machine; shard = median data-shard compute after a warm-up")?;
    writeln!(s, "| layer | f = r | patterns | int exact | float err / bound | float err / A | decode ms | layer ms | decode / layer | decode / shard |")?;
    writeln!(s, "|---|---|---|---|---|---|---|---|---|---|")?;
    for r in &rows {
        writeln!(
            s,
            "| {} | {} | {} | {} | {:.1e} | {:.1e} | {:.3} | {:.1} | {:.2} % | {:.1} % |",
            r.layer,
            r.f,
            r.patterns,
            if r.int_exact { "yes" } else { "NO" },
            r.float_err_over_bound,
            r.float_rel_err,
            r.decode_ms,
            r.layer_ms,
            100.0 * r.decode_ms / r.layer_ms,
            100.0 * r.decode_ms / r.shard_ms
        )?;
        writeln!(
            csv,
            "{},{},{},{},{},{},{:.4},{:.3e},{:.4},{:.4},{:.4},{:.5},{:.5}",
            r.layer,
            r.k,
            r.f,
            r.f,
            r.patterns,
            r.int_exact,
            r.float_err_over_bound,
            r.float_rel_err,
            r.decode_ms,
            r.layer_ms,
            r.shard_ms,
            r.decode_ms / r.layer_ms,
            r.decode_ms / r.shard_ms
        )?;
    }
    let p = write_csv(out, "cdc_failures.csv", &csv)?;
    writeln!(s, "(CSV: {})\n", p.display())?;
    Ok(s)
}

// ---------------------------------------------------------------------------------------------
// Experiment 3

/// Monte Carlo repetitions of the test set per cell in experiment 3.
pub const ACCURACY_REPS: usize = 30;
/// Actors computing the hidden layer.
pub const ACTORS: usize = 8;
/// Default latency tightness `ρ` of experiment 3's deadline (DESIGN-NOTES §8).
pub const RHO: f64 = 0.5;
/// WCETs (ms) of the sensor, a hidden-layer actor and the output actor.
pub const WCET: (f64, f64, f64) = (0.2, 1.0, 0.2);

/// Links of experiment 3: QLA-RTS' reference ranges (shape 2–3, scale 1–1.5 ms, no offset),
/// drawn with seed `seed`, with loss `loss`.
pub fn digits_links(seed: u64, loss: f64) -> (Vec<LinkDelay>, Vec<LinkDelay>) {
    let mut rng = Rng::new(seed);
    let mut draw = || LinkDelay {
        loc: 0.0,
        shape: 2.0 + rng.uniform(),
        scale: 1.0 + 0.5 * rng.uniform(),
        loss,
    };
    let li = (0..ACTORS).map(|_| draw()).collect();
    let lo = (0..ACTORS).map(|_| draw()).collect();
    (li, lo)
}

/// A column of experiment 3.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AccuracyCase {
    /// Column name.
    pub name: &'static str,
    /// Parity actors (of the 8).
    pub r: usize,
    /// Budget policy.
    pub budget: Budget,
}

/// How exchanges are timed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    /// No deadline: only loss erases.
    None,
    /// Uniform-slack baseline at tightness ρ.
    Uniform,
    /// Quality/latency-aware allocator at ρ (QLA SNR for r = 0, expected recovery else).
    Aware,
}

/// The columns of experiment 3.
pub const ACCURACY_CASES: [AccuracyCase; 7] = [
    AccuracyCase {
        name: "uncoded",
        r: 0,
        budget: Budget::None,
    },
    AccuracyCase {
        name: "CDC r=1",
        r: 1,
        budget: Budget::None,
    },
    AccuracyCase {
        name: "CDC r=2",
        r: 2,
        budget: Budget::None,
    },
    AccuracyCase {
        name: "uncoded+uniform",
        r: 0,
        budget: Budget::Uniform,
    },
    AccuracyCase {
        name: "uncoded+aware",
        r: 0,
        budget: Budget::Aware,
    },
    AccuracyCase {
        name: "CDC r=2+uniform",
        r: 2,
        budget: Budget::Uniform,
    },
    AccuracyCase {
        name: "CDC r=2+aware",
        r: 2,
        budget: Budget::Aware,
    },
];

/// Per-actor budgets `(δ_in, δ_out)` in ms.
pub type ActorBudgets = Vec<(f64, f64)>;

/// Budgets `(δ_in, δ_out)` per actor for a case (∞ without deadline), and the model's
/// prediction of the expected recovered fraction.
pub fn budgets(
    case: &AccuracyCase,
    rho: f64,
    li: &[LinkDelay],
    lo: &[LinkDelay],
) -> Result<(ActorBudgets, f64), Box<dyn Error>> {
    let g = Graph::fan_out(WCET.0, WCET.1, WCET.2, li, lo)?;
    let k = ACTORS - case.r;
    let sched: Schedule = match case.budget {
        Budget::None => return Ok((vec![(f64::INFINITY, f64::INFINITY); ACTORS], f64::NAN)),
        Budget::Uniform => uniform(&g, g.deadline_at(rho))?,
        Budget::Aware => {
            let l = g.deadline_at(rho);
            let base = uniform(&g, l)?;
            if case.r == 0 {
                optimize(&g, l, &base, |g, t| g.snr(t).unwrap_or(0.0))
            } else {
                optimize(&g, l, &base, |g, t| expected_recovery(g, k, t))
            }
        }
    };
    let t = sched.starts();
    let b = (0..ACTORS)
        .map(|i| Ok((g.budget(t, i)?, g.budget(t, ACTORS + i)?)))
        .collect::<Result<Vec<_>, tessera_core::deadline::GraphError>>()?;
    Ok((b, expected_recovery(&g, k, t)))
}

/// A coded hidden layer: code, data-shard views and parity weights (int8 exact mode).
struct CodedHidden {
    code: Code,
    parity_wrap: Vec<(Vec<i32>, Vec<i32>)>,
    parity_p: Vec<(Vec<u32>, Vec<u32>)>,
}

impl CodedHidden {
    fn new(q: &QuantHidden, r: usize) -> Result<Self, Box<dyn Error>> {
        let code = Code::new(HIDDEN, ACTORS - r, r)?;
        let s = code.shard_rows();
        let (mut parity_wrap, mut parity_p) = (Vec::new(), Vec::new());
        for j in 0..r {
            if code.int_arithmetic() == Arithmetic::Wrapping {
                let (mut w, mut b) = (vec![0i32; s * PIXELS], vec![0i32; s]);
                encode::parity_wrapping(&code, &q.w, &q.b, PIXELS, &mut w, &mut b)?;
                parity_wrap.push((w, b));
            } else {
                let (mut w, mut b) = (vec![0u32; s * PIXELS], vec![0u32; s]);
                encode::parity_mod_p(&code, j, &q.w, &q.b, PIXELS, &mut w, &mut b)?;
                parity_p.push((w, b));
            }
        }
        Ok(CodedHidden {
            code,
            parity_wrap,
            parity_p,
        })
    }

    /// Runs the actors flagged present and decodes (or zero-fills what cannot be recovered).
    fn forward(
        &self,
        q: &QuantHidden,
        x: &[i8; PIXELS],
        present: u32,
    ) -> Result<[i32; HIDDEN], Box<dyn Error>> {
        let (k, s) = (self.code.k(), self.code.shard_rows());
        let mut res: Vec<Option<Vec<i32>>> = vec![None; self.code.n()];
        for (i, slot) in res.iter_mut().enumerate() {
            if present >> i & 1 == 0 {
                continue;
            }
            let mut y;
            if i < k {
                let (w, b) = encode::data_shard(&self.code, i, &q.w, &q.b, PIXELS)?;
                y = vec![0; b.len()];
                shard::gemm_i8(w, b, x, PIXELS, 1, &mut y)?;
            } else {
                y = vec![0; s];
                if let Some((w, b)) = self.parity_wrap.get(i - k) {
                    shard::gemm_wrapping(w, b, x, PIXELS, 1, &mut y)?;
                } else if let Some((w, b)) = self.parity_p.get(i - k) {
                    shard::gemm_mod_p(w, b, x, PIXELS, 1, &mut y)?;
                }
            }
            *slot = Some(y);
        }
        let views: Vec<Option<&[i32]>> = res.iter().map(|r| r.as_deref()).collect();
        let mut out = [0i32; HIDDEN];
        match Decoder::from_mask(&self.code, present) {
            Ok(dec) => dec.decode_i32(&views, 1, &mut out)?,
            Err(_) => {
                // Not decodable: the data shards that arrived, zeros elsewhere.
                for d in 0..k {
                    if let Some(Some(y)) = views.get(d) {
                        let rows = self.code.data_rows(d)?;
                        out[rows].copy_from_slice(y);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Row of experiment 3: accuracy per case at one loss rate.
#[derive(Clone, Debug, PartialEq)]
pub struct AccuracyRow {
    /// Packet loss rate.
    pub loss: f64,
    /// Accuracy per [`ACCURACY_CASES`] entry.
    pub acc: Vec<f64>,
    /// Fraction of hidden outputs missing (after decode) per case.
    pub missing: Vec<f64>,
    /// Model-predicted expected recovered fraction per case (NaN without a deadline).
    pub predicted: Vec<f64>,
}

/// Experiment 3 over `losses`, `reps` passes over the test set per cell.
pub fn accuracy_rows(
    m: &digits::Mlp,
    q: &QuantHidden,
    test: &[Sample],
    losses: &[f64],
    rho: f64,
    reps: usize,
) -> Result<Vec<AccuracyRow>, Box<dyn Error>> {
    let coded: Vec<CodedHidden> = (0..=2)
        .map(|r| CodedHidden::new(q, r))
        .collect::<Result<_, _>>()?;
    let mut rows = Vec::new();
    for (li_idx, &loss) in losses.iter().enumerate() {
        let (lin, lout) = digits_links(0xd1617, loss);
        let mut row = AccuracyRow {
            loss,
            acc: Vec::new(),
            missing: Vec::new(),
            predicted: Vec::new(),
        };
        for (ci, case) in ACCURACY_CASES.iter().enumerate() {
            let (b, pred) = budgets(case, rho, &lin, &lout)?;
            let ch = &coded[case.r];
            let mut rng = Rng::new(0xacc0 ^ (li_idx as u64) << 16 ^ ci as u64);
            let (mut ok, mut trials, mut missing) = (0usize, 0usize, 0usize);
            for _ in 0..reps {
                for s in test {
                    let mut present = 0u32;
                    for i in 0..ACTORS {
                        let inp = lin[i].sample(&mut rng).is_some_and(|d| d <= b[i].0);
                        let outp = lout[i].sample(&mut rng).is_some_and(|d| d <= b[i].1);
                        if inp && outp {
                            present |= 1 << i;
                        }
                    }
                    let x = QuantHidden::input(s);
                    let y = ch.forward(q, &x, present)?;
                    let decodable = present.count_ones() as usize >= ch.code.k();
                    if !decodable {
                        missing += (0..ch.code.k())
                            .filter(|d| present >> d & 1 == 0)
                            .map(|d| ch.code.data_rows(d).map_or(0, |r| r.len()))
                            .sum::<usize>();
                    }
                    if digits::argmax(&m.head(&q.dequantize(&y))) == s.label {
                        ok += 1;
                    }
                    trials += 1;
                }
            }
            row.acc.push(ok as f64 / trials as f64);
            row.missing.push(missing as f64 / (trials * HIDDEN) as f64);
            row.predicted.push(pred);
        }
        rows.push(row);
    }
    Ok(rows)
}

/// `tessera-sim cdc accuracy`.
pub fn accuracy(data: &Path, out: &Path, rho: f64, reps: usize) -> Result<String, Box<dyn Error>> {
    let all = digits::load(data)?;
    let (train, test) = digits::split(&all);
    let (m, _) = digits::train(&train);
    let q = digits::quantize_hidden(&m);
    let losses: Vec<f64> = (0..=6).map(|i| f64::from(i) * 0.1).collect();
    let rows = accuracy_rows(&m, &q, &test, &losses, rho, reps)?;
    let (lin, lout) = digits_links(0xd1617, 0.0);
    let g = Graph::fan_out(WCET.0, WCET.1, WCET.2, &lin, &lout)?;
    let mut s = String::new();
    writeln!(s, "## Experiment 3: digits MLP accuracy vs packet loss")?;
    writeln!(
        s,
        "hidden layer (int8, {HIDDEN} units) over {ACTORS} actors: uncoded k=8; CDC r=1 k=7; r=2 k=6 (exact decode); every message (sensor -> actor and actor -> output) lost independently with the given rate and delayed by Gamma(2-3, 1-1.5 ms) (seeded links); deadline columns: frame deadline at rho = {rho} = {:.2} ms (L_lo {:.2}, L_hi {:.2}), WCETs {:?} ms, late = lost; aware = pattern search on QLA SNR (uncoded) or expected recovery (CDC); {reps} passes over the {} test images per cell (Monte Carlo, core::deadline samplers)",
        g.deadline_at(rho),
        g.quantile_latency(0.001),
        g.quantile_latency(0.999),
        WCET,
        test.len()
    )?;
    write!(s, "| loss |")?;
    let mut csv = String::from("loss");
    for c in &ACCURACY_CASES {
        write!(s, " {} |", c.name)?;
        write!(csv, ",{0}_acc,{0}_missing,{0}_predicted_recovery", c.name)?;
    }
    csv.push('\n');
    writeln!(s)?;
    writeln!(s, "|---|{}", "---|".repeat(ACCURACY_CASES.len()))?;
    for r in &rows {
        write!(s, "| {:.0} % |", 100.0 * r.loss)?;
        write!(csv, "{:.2}", r.loss)?;
        for i in 0..ACCURACY_CASES.len() {
            write!(s, " {:.1} |", 100.0 * r.acc[i])?;
            write!(
                csv,
                ",{:.4},{:.4},{:.4}",
                r.acc[i], r.missing[i], r.predicted[i]
            )?;
        }
        writeln!(s)?;
        csv.push('\n');
    }
    writeln!(
        s,
        "(accuracy %, CSV with missing-output fractions and model predictions: {})\n",
        write_csv(out, &format!("cdc_accuracy_rho{rho}.csv"), &csv)?.display()
    )?;
    Ok(s)
}

// ---------------------------------------------------------------------------------------------
// Experiment 3b: the allocators on random graphs (the QLA-RTS setting)

/// A random layered dataflow graph of `actors` actors (QLA-RTS-style), about 3 actors per
/// layer: the first layer are sources, the last sinks, every other actor fed by 1–3 actors of earlier layers with gains in
/// `[0.5, 1.5]`; WCETs 0.5–2 ms; links shape 2–3, scale 1–1.5 ms, 1 % loss.
pub fn random_graph(actors: usize, seed: u64) -> Result<Graph, Box<dyn Error>> {
    use tessera_core::deadline::{Actor, Channel};
    let mut rng = Rng::new(seed);
    let mut g = Graph::new();
    let layers = (actors / 3).max(2);
    let layer_of = |a: usize| a * layers / actors;
    for a in 0..actors {
        let source = layer_of(a) == 0;
        let sink = layer_of(a) == layers - 1;
        g.add_actor(Actor {
            wcet: 0.5 + 1.5 * rng.uniform(),
            input_weight: if source { 1.0 } else { 0.0 },
            sink_weight: if sink { 1.0 } else { 0.0 },
        })?;
        if source {
            continue;
        }
        let first_of_layer = (0..a).find(|&b| layer_of(b) == layer_of(a)).unwrap_or(a);
        let fan_in = 1 + (rng.next_u64() % 3) as usize;
        let mut used = 0u64;
        for _ in 0..fan_in {
            let from = (rng.next_u64() % first_of_layer as u64) as usize;
            if used >> from & 1 == 1 {
                continue;
            }
            used |= 1 << from;
            let link = LinkDelay {
                loc: 0.0,
                shape: 2.0 + rng.uniform(),
                scale: 1.0 + 0.5 * rng.uniform(),
                loss: 0.01,
            };
            g.add_channel(Channel {
                from,
                to: a,
                weight: 0.5 + rng.uniform(),
                link,
            })?;
        }
    }
    Ok(g)
}

/// Row of experiment 3b: mean SNR of the two allocators over random graphs.
#[derive(Clone, Debug, PartialEq)]
pub struct QlaRow {
    /// Actors per graph.
    pub actors: usize,
    /// Tightness.
    pub rho: f64,
    /// Graphs.
    pub graphs: usize,
    /// Mean SNR (dB) of the uniform baseline.
    pub uniform_db: f64,
    /// Mean SNR (dB) of the quality-aware allocator.
    pub aware_db: f64,
    /// Mean relative gain in linear SNR.
    pub gain: f64,
}

/// Experiment 3b over `sizes × rhos`, `graphs` seeded graphs each.
pub fn qla_rows(
    sizes: &[usize],
    rhos: &[f64],
    graphs: usize,
) -> Result<Vec<QlaRow>, Box<dyn Error>> {
    let mut rows = Vec::new();
    for &actors in sizes {
        for &rho in rhos {
            let (mut u_db, mut a_db, mut gain) = (0.0, 0.0, 0.0);
            for seed in 0..graphs as u64 {
                let g = random_graph(actors, 1000 * actors as u64 + seed)?;
                let l = g.deadline_at(rho);
                let base = uniform(&g, l)?;
                let opt = optimize(&g, l, &base, |g, t| g.snr(t).unwrap_or(0.0));
                let (b, o) = (g.snr(base.starts())?, g.snr(opt.starts())?);
                u_db += 10.0 * b.log10();
                a_db += 10.0 * o.log10();
                gain += o / b - 1.0;
            }
            let n = graphs as f64;
            rows.push(QlaRow {
                actors,
                rho,
                graphs,
                uniform_db: u_db / n,
                aware_db: a_db / n,
                gain: gain / n,
            });
        }
    }
    Ok(rows)
}

/// `tessera-sim cdc qla`: the allocators on random graphs.
pub fn qla(out: &Path) -> Result<String, Box<dyn Error>> {
    let rows = qla_rows(&[10, 30], &[0.1, 0.3, 0.5], 20)?;
    let mut s = String::new();
    let mut csv = String::from("actors,rho,graphs,uniform_snr_db,aware_snr_db,mean_gain\n");
    writeln!(
        s,
        "## Experiment 3b: uniform vs quality-aware budgets on random dataflow graphs"
    )?;
    writeln!(s, "layered random DAGs (~3 actors per layer, first layer sources, last layer sinks, fan-in 1-3, gains 0.5-1.5, WCET 0.5-2 ms, links Gamma(2-3, 1-1.5 ms), 1 % loss), deadline L(rho); QLA-RTS SNR model; 20 seeded graphs per row")?;
    writeln!(
        s,
        "| actors | rho | uniform SNR dB | aware SNR dB | mean SNR gain |"
    )?;
    writeln!(s, "|---|---|---|---|---|")?;
    for r in &rows {
        writeln!(
            s,
            "| {} | {} | {:.2} | {:.2} | {:+.1} % |",
            r.actors,
            r.rho,
            r.uniform_db,
            r.aware_db,
            100.0 * r.gain
        )?;
        writeln!(
            csv,
            "{},{},{},{:.4},{:.4},{:.4}",
            r.actors, r.rho, r.graphs, r.uniform_db, r.aware_db, r.gain
        )?;
    }
    writeln!(
        s,
        "(CSV: {})\n",
        write_csv(out, "cdc_qla.csv", &csv)?.display()
    )?;
    Ok(s)
}

// ---------------------------------------------------------------------------------------------
// The three experiments through the runtime (coded_world): CodedNode gateway and workers over
// smoltcp on the simulated Pi 3 WiFi medium.

/// Arguments of the runtime experiments.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// The digits CSV (accuracy).
    #[arg(long, default_value = "data/digits.csv")]
    pub data: PathBuf,
    /// Directory the CSV files (and tables) are written to.
    #[arg(long, default_value = "out/cdc")]
    pub out: PathBuf,
    /// Frames per configuration (default: 2000 latency, 24 failures, the whole test split
    /// for accuracy).
    #[arg(long)]
    pub frames: Option<usize>,
    /// Seed of every random draw.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Accuracy: frame deadline, ms (default [`RT_DIGITS_DEADLINE_MS`]).
    #[arg(long)]
    pub deadline_ms: Option<u64>,
}

/// Data shards of experiment a's layer.
pub const RT_K: usize = 8;
/// Experiment a's layer: the CDC paper's 2048-wide FC layer (int8, 2048 × 2048).
pub const RT_FC: usize = 2048;
/// Frames per scheme in experiment a.
pub const RT_LATENCY_FRAMES: usize = 2000;

fn fc_layer(rows: usize, in_len: usize, seed: u64, int8: bool) -> LinearLayer {
    let mut rng = crate::rng::Rng::new(seed);
    let a = (1.0 / in_len as f64).sqrt();
    LinearLayer {
        in_len,
        rows,
        weights: (0..rows * in_len)
            .map(|_| ((rng.uniform() * 2.0 - 1.0) * a) as f32)
            .collect(),
        bias: (0..rows)
            .map(|_| ((rng.uniform() - 0.5) * 0.1) as f32)
            .collect(),
        activation: Activation::Relu,
        numeric: if int8 {
            Numeric::Int8 {
                in_scale: 1.0 / 127.0,
                w_scale: a as f32 / 127.0,
            }
        } else {
            Numeric::Float
        },
    }
}

fn fc_inputs(n: usize, len: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = crate::rng::Rng::new(seed);
    (0..n)
        .map(|_| {
            (0..len)
                .map(|_| (rng.uniform() * 2.0 - 1.0) as f32)
                .collect()
        })
        .collect()
}

fn layer_scheme(s: Scheme, k: usize) -> LayerScheme {
    match s {
        Scheme::Uncoded => LayerScheme {
            k,
            r: 0,
            protection: Protection::Coded,
        },
        Scheme::TwoMr => LayerScheme {
            k,
            r: 0,
            protection: Protection::Replicated,
        },
        Scheme::Cdc(r) => LayerScheme {
            k,
            r,
            protection: Protection::Coded,
        },
    }
}

/// Rate (GFLOP/s) at which shard `shard` of layer `l` computes in `ms`.
fn rate_for(model: &CodedModel, l: usize, ms: f64) -> f64 {
    model.shard_flops(l, 0, 1) as f64 / (ms * 1e3) / 1e3
}

fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    percentile(sorted, q)
}

/// Row of runtime experiment a.
#[derive(Clone, Debug, PartialEq)]
pub struct RtLatencyRow {
    /// Scheme.
    pub scheme: Scheme,
    /// Frames submitted back to back (`None`) or one per period (ms).
    pub period_ms: Option<f64>,
    /// Workers.
    pub devices: usize,
    /// Frames left the stage / decoded in full.
    pub frames: (usize, usize),
    /// Layer latency p50, p99, p99.9, ms (first send to decode).
    pub p: [f64; 3],
    /// Mean layer latency, ms.
    pub mean: f64,
    /// MiB on the medium per frame.
    pub mib_per_frame: f64,
    /// Results discarded (after decode) and shard jobs dropped late by workers.
    pub discarded: (u64, u64),
    /// The same percentiles from the order-statistic model (reply times i.i.d.), ms.
    pub model: [f64; 3],
    /// Virtual seconds, wall seconds.
    pub time: (f64, f64),
}

/// Runtime experiment a: one int8 2048×2048 FC layer, k = 8, every scheme; a shard computes
/// in 50 ms at the chosen rate, times the Pi 3 reply factor per job (`coded_world` docs).
pub fn rt_latency_rows(
    frames: usize,
    seed: u64,
    period: Option<Duration>,
) -> Result<Vec<RtLatencyRow>, Box<dyn Error>> {
    let model_rows = latency_rows(20_000, 0x1a7e);
    let inputs = fc_inputs(8, RT_FC, seed ^ 0xfc);
    let layer = fc_layer(RT_FC, RT_FC, 0xfc2048, true);
    let mut rows = Vec::new();
    for scheme in [
        Scheme::Uncoded,
        Scheme::TwoMr,
        Scheme::Cdc(1),
        Scheme::Cdc(2),
    ] {
        let n = scheme.devices(RT_K);
        let workers: Vec<u16> = (1..=n as u16).collect();
        let model = Arc::new(CodedModel::new(
            vec![layer.clone()],
            &[layer_scheme(scheme, RT_K)],
            &workers,
        )?);
        let mut c = CodedSimConfig::new(
            model.clone(),
            n as u16,
            inputs.clone(),
            frames,
            Duration::from_secs(30),
        );
        c.gflops = rate_for(&model, 0, PI3_FC_MS);
        c.arrival = Arrival::Pi3Wifi(pi3_wifi_reply_model());
        c.seed = seed;
        c.period = period;
        let t0 = Instant::now();
        let o = coded_world::run(&c);
        let wall = t0.elapsed().as_secs_f64();
        let mut lat: Vec<f64> = o
            .frames
            .iter()
            .filter_map(|f| f.layers.first())
            .map(|l| l.latency.total_micros() as f64 / 1e3)
            .collect();
        lat.sort_by(f64::total_cmp);
        let late: u64 = o
            .nodes
            .iter()
            .filter_map(|(_, s)| s.worker.map(|w| u64::from(w.late)))
            .sum();
        let m = model_rows
            .iter()
            .find(|r| r.k == RT_K && r.scheme == scheme)
            .map_or([f64::NAN; 3], |r| r.exact);
        rows.push(RtLatencyRow {
            scheme,
            period_ms: period.map(|p| p.total_micros() as f64 / 1e3),
            devices: n,
            frames: (o.frames.len(), o.complete()),
            p: [0.5, 0.99, 0.999].map(|q| pct(&lat, q)),
            mean: lat.iter().sum::<f64>() / lat.len().max(1) as f64,
            mib_per_frame: o.medium.0 as f64 / 1048576.0 / o.frames.len().max(1) as f64,
            discarded: (u64::from(o.gateway.discarded), late),
            model: m,
            time: ((o.virtual_us - o.ready_at) as f64 / 1e6, wall),
        });
    }
    Ok(rows)
}

impl RtLatencyRow {
    /// The scheme's name.
    pub fn scheme_name(&self) -> String {
        self.scheme.name()
    }
}

/// `tessera-sim cdc latency`: runtime experiment a (back to back, and one frame per second).
pub fn rt_latency(a: &RunArgs) -> Result<(String, Vec<RtLatencyRow>), Box<dyn Error>> {
    let frames = a.frames.unwrap_or(RT_LATENCY_FRAMES);
    let rows = rt_latency_rows(frames, a.seed, None)?;
    let mut s = String::new();
    let mut csv = String::from("scheme,submission,devices,extra_devices,frames,complete,p50_ms,p99_ms,p999_ms,mean_ms,model_p50_ms,model_p99_ms,model_p999_ms,mib_per_frame,discarded_results,late_jobs_dropped,virtual_s,wall_s\n");
    writeln!(
        s,
        "## Experiment a (runtime): layer latency, int8 FC {RT_FC}x{RT_FC}, k = {RT_K}, Pi 3 WiFi"
    )?;
    writeln!(
        s,
        "CodedNode gateway + workers over smoltcp on the simulated WiFi medium (Pi 3 preset, authenticated links); a shard computes in {PI3_FC_MS} ms × D/{PI3_FC_MS} ms per job, D ~ Pi 3 reply model (50 ms + Gamma, module cdc), real int8 results; {frames} frames per row, seed {}; latency = first send to decode of the layer; model = order-statistic percentiles of the reply model alone (no network, no queueing)",
        a.seed
    )?;
    writeln!(s, "| scheme | submission | devices | extra | done/complete | p50 ms | p99 ms | p99.9 ms | mean ms | model p50/p99/p99.9 | MiB/frame | discarded / dropped late |")?;
    writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|")?;
    for r in &rows {
        let sub = r
            .period_ms
            .map_or("back to back".to_string(), |p| format!("every {p:.0} ms"));
        writeln!(
            s,
            "| {} | {sub} | {} | {} | {}/{} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0}/{:.0}/{:.0} | {:.2} | {} / {} |",
            r.scheme.name(),
            r.devices,
            r.devices - RT_K,
            r.frames.0,
            r.frames.1,
            r.p[0],
            r.p[1],
            r.p[2],
            r.mean,
            r.model[0],
            r.model[1],
            r.model[2],
            r.mib_per_frame,
            r.discarded.0,
            r.discarded.1
        )?;
        writeln!(
            csv,
            "{},{},{},{},{},{},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3},{:.4},{},{},{:.1},{:.2}",
            r.scheme.name(),
            sub,
            r.devices,
            r.devices - RT_K,
            r.frames.0,
            r.frames.1,
            r.p[0],
            r.p[1],
            r.p[2],
            r.mean,
            r.model[0],
            r.model[1],
            r.model[2],
            r.mib_per_frame,
            r.discarded.0,
            r.discarded.1,
            r.time.0,
            r.time.1
        )?;
    }
    let p = write_csv(&a.out, "cdc_rt_latency.csv", &csv)?;
    writeln!(s, "(CSV: {})\n", p.display())?;
    write_csv(&a.out, "cdc_rt_latency.txt", &s)?;
    Ok((s, rows))
}

/// Frames per kill pattern in runtime experiment b.
pub const RT_FAILURE_FRAMES: usize = 24;

/// Row of runtime experiment b.
#[derive(Clone, Debug, PartialEq)]
pub struct RtFailureRow {
    /// `int8` or `float`.
    pub numeric: &'static str,
    /// Workers killed = parity shards.
    pub f: usize,
    /// The workers killed (shard `i` runs on worker `i + 1`; parity shards are `k..`).
    pub killed: Vec<u16>,
    /// Whether each killed worker was computing a shard when it died.
    pub mid_job: bool,
    /// Frames left the stage / decoded in full.
    pub frames: (usize, usize),
    /// Frames equal to the reference bit for bit.
    pub exact: usize,
    /// Layers decoded with erased data shards recovered from parity.
    pub recovered: u32,
    /// Largest |output − reference|, and the largest ratio of it to the decode's bound.
    pub max_err: (f32, f64),
    /// Median host wall time of `finish_layer` with the erasures of the pattern, ms.
    pub decode_ms: f64,
    /// Median host wall time of the layer computed centrally (the k data shards), ms.
    pub layer_ms: f64,
    /// Decode multiply-adds over the layer's.
    pub flop_ratio: f64,
    /// Mean frame latency before / after the kill, ms.
    pub latency: (f64, f64),
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Host timing of the layer centrally and of `finish_layer` with `erased` data shards.
fn decode_timing(
    model: &CodedModel,
    input: &[f32],
    erased: &[usize],
) -> Result<(f64, f64, f64), Box<dyn Error>> {
    use tessera_core::code::Decoder;
    use tessera_core::runtime::coded::ShardWork;
    use tessera_core::wire::FrameKey;
    let spec = model.plan().layers()[0];
    let n = spec.shards();
    let k = spec.code().k();
    let words = model.input_words(0, input);
    let work = |s: usize| ShardWork {
        frame: FrameKey::new(0, 0),
        layer: 0,
        shard: s as u8,
    };
    let mut results = Vec::new();
    for s in 0..n {
        results.push(model.compute_shard(work(s), 1, &words)?);
    }
    let mut central = Vec::new();
    let mut decode = Vec::new();
    for _ in 0..15 {
        central.push(time_ms(|| {
            for s in 0..k {
                let _ = std::hint::black_box(model.compute_shard(work(s), 1, &words));
            }
        }));
        let views: Vec<Option<&[u32]>> = (0..n)
            .map(|s| (!erased.contains(&s)).then(|| &results[s][..]))
            .collect();
        decode.push(time_ms(|| {
            let _ = std::hint::black_box(model.finish_layer(0, &views, 1, true));
        }));
    }
    let mask = (0..n)
        .filter(|s| !erased.contains(s))
        .fold(0u32, |m, s| m | 1 << s);
    let dec = Decoder::from_mask(spec.code(), mask)?;
    let layer = model.layer(0).map_or(1, |l| l.rows * l.in_len);
    Ok((
        median(central),
        median(decode),
        dec.mul_adds(1) as f64 / layer as f64,
    ))
}

/// Runtime experiment b: int8 and float FC 2048×2048, k = 8, r = f, f workers killed while
/// frames are in flight (fixed 50 ms shard compute, no reply-time factor).
pub fn rt_failure_rows(frames: usize, seed: u64) -> Result<Vec<RtFailureRow>, Box<dyn Error>> {
    let k = RT_K;
    let inputs = fc_inputs(8, RT_FC, seed ^ 0xfa11);
    let mut rows = Vec::new();
    for int8 in [true, false] {
        let layer = fc_layer(RT_FC, RT_FC, 0xfc2048, int8);
        let w_abs: Vec<f32> = layer.weights.iter().map(|w| w.abs()).collect();
        for (f, patterns) in [
            (1usize, vec![vec![3u16], vec![9]]),
            (2, vec![vec![2, 7], vec![4, 10], vec![1, 8]]),
        ] {
            let workers: Vec<u16> = (1..=(k + f) as u16).collect();
            let scheme = LayerScheme {
                k,
                r: f,
                protection: Protection::Coded,
            };
            let model = Arc::new(CodedModel::new(vec![layer.clone()], &[scheme], &workers)?);
            for killed in patterns {
                let mut c = CodedSimConfig::new(
                    model.clone(),
                    (k + f) as u16,
                    inputs.clone(),
                    frames,
                    Duration::from_secs(5),
                );
                c.gflops = rate_for(&model, 0, PI3_FC_MS);
                c.check = true;
                c.seed = seed;
                // Mid-layer: a probe run without faults (identical up to the crash, same
                // seed) names a shard job of the first killed worker starting after 1 s;
                // the crash lands in its middle.
                let probe = coded_world::run(&c);
                let at = probe
                    .jobs
                    .iter()
                    .filter(|j| j.node == killed[0] && j.start >= probe.ready_at + 1_000_000)
                    .map(|j| (j.start + j.end) / 2 - probe.ready_at)
                    .min()
                    .unwrap_or(1_000_000);
                c.faults = killed
                    .iter()
                    .map(|&node| crate::world::Fault::Crash { node, at })
                    .collect();
                let o = coded_world::run(&c);
                let crash = o.ready_at + at;
                let mid_job = killed.iter().all(|&w| {
                    o.jobs
                        .iter()
                        .any(|j| j.node == w && j.start <= crash && j.end > crash)
                });
                let exact = o.frames.iter().filter(|x| x.exact == Some(true)).count();
                // Float: every output within the decode's bound.
                let mut worst = (0.0f32, 0.0f64);
                for fr in &o.frames {
                    let x = &inputs[fr.index % inputs.len()];
                    let want = model.reference(x, 1)?;
                    let present = fr.layers.first().map_or(0, |l| l.present);
                    let dec = tessera_core::code::Decoder::from_mask(
                        model.plan().layers()[0].code(),
                        present,
                    )?;
                    for (i, (a, b)) in fr.output.iter().zip(&want).enumerate() {
                        let err = (a - b).abs();
                        let mag: f64 = w_abs[i * RT_FC..(i + 1) * RT_FC]
                            .iter()
                            .zip(x)
                            .map(|(w, v)| f64::from(w * v.abs()))
                            .sum::<f64>()
                            + f64::from(layer.bias[i].abs());
                        let bound = dec.error_bound_f32(RT_FC, mag, f64::from(b.abs()));
                        worst.0 = worst.0.max(err);
                        if err > 0.0 {
                            worst.1 = worst.1.max(f64::from(err) / bound.max(f64::MIN_POSITIVE));
                        }
                    }
                }
                let erased: Vec<usize> = killed.iter().map(|&w| w as usize - 1).collect();
                let (layer_ms, decode_ms, flop_ratio) = decode_timing(&model, &inputs[0], &erased)?;
                let mean = |v: Vec<f64>| v.iter().sum::<f64>() / v.len().max(1) as f64;
                rows.push(RtFailureRow {
                    numeric: if int8 { "int8" } else { "float" },
                    f,
                    killed,
                    mid_job,
                    frames: (o.frames.len(), o.complete()),
                    exact,
                    recovered: o.gateway.recovered,
                    max_err: worst,
                    decode_ms,
                    layer_ms,
                    flop_ratio,
                    latency: (
                        mean(
                            o.frames
                                .iter()
                                .filter(|x| x.finished <= crash)
                                .map(|x| x.latency_ms())
                                .collect(),
                        ),
                        mean(
                            o.frames
                                .iter()
                                .filter(|x| x.submitted > crash)
                                .map(|x| x.latency_ms())
                                .collect(),
                        ),
                    ),
                });
            }
        }
    }
    Ok(rows)
}

/// `tessera-sim cdc failures`: runtime experiment b.
pub fn rt_failures(a: &RunArgs) -> Result<(String, Vec<RtFailureRow>), Box<dyn Error>> {
    let frames = a.frames.map_or(RT_FAILURE_FRAMES, |f| f.min(200));
    let rows = rt_failure_rows(frames, a.seed)?;
    let mut s = String::new();
    let mut csv = String::from("numeric,f,r,killed,mid_job,frames,complete,exact,recovered_layers,max_abs_err,max_err_over_bound,decode_ms,layer_ms,decode_over_layer,decode_flops_over_layer,latency_before_ms,latency_after_ms\n");
    writeln!(s, "## Experiment b (runtime): f workers killed mid-layer, r = f, FC {RT_FC}x{RT_FC}, k = {RT_K}")?;
    writeln!(
        s,
        "{frames} frames back to back per row, workers killed in the middle of a shard job about 1 s after the start (mid-job: every killed worker was computing); shard compute 50 ms (no reply factor); exact = output bit-identical to CodedModel::reference (int8: all must be); err/bound = largest |err| over Decoder::error_bound_f32 of the frame's erasure pattern (float); decode = host wall time of CodedModel::finish_layer with the killed shards erased vs the k data shards computed centrally on this machine (median of 15), flops = Decoder::mul_adds / (rows x K); seed {}",
        a.seed
    )?;
    writeln!(s, "| numeric | f = r | killed workers | mid-job | done/complete | exact | recovered layers | max abs err | err / bound | decode ms | layer ms | decode/layer (time) | decode/layer (FLOPs) | latency before / after kill ms |")?;
    writeln!(
        s,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )?;
    for r in &rows {
        let killed = r
            .killed
            .iter()
            .map(|w| w.to_string())
            .collect::<Vec<_>>()
            .join("+");
        writeln!(
            s,
            "| {} | {} | {killed} | {} | {}/{} | {} | {} | {:.2e} | {:.2e} | {:.3} | {:.3} | {:.1} % | {:.3} % | {:.0} / {:.0} |",
            r.numeric,
            r.f,
            if r.mid_job { "yes" } else { "no" },
            r.frames.0,
            r.frames.1,
            r.exact,
            r.recovered,
            r.max_err.0,
            r.max_err.1,
            r.decode_ms,
            r.layer_ms,
            100.0 * r.decode_ms / r.layer_ms,
            100.0 * r.flop_ratio,
            r.latency.0,
            r.latency.1
        )?;
        writeln!(
            csv,
            "{},{},{},{killed},{},{},{},{},{},{:.3e},{:.3e},{:.4},{:.4},{:.4},{:.6},{:.2},{:.2}",
            r.numeric,
            r.f,
            r.f,
            r.mid_job,
            r.frames.0,
            r.frames.1,
            r.exact,
            r.recovered,
            r.max_err.0,
            r.max_err.1,
            r.decode_ms,
            r.layer_ms,
            r.decode_ms / r.layer_ms,
            r.flop_ratio,
            r.latency.0,
            r.latency.1
        )?;
    }
    let p = write_csv(&a.out, "cdc_rt_failures.csv", &csv)?;
    writeln!(s, "(CSV: {})\n", p.display())?;
    write_csv(&a.out, "cdc_rt_failures.txt", &s)?;
    Ok((s, rows))
}

/// Default frame deadline of runtime experiment c, ms.
pub const RT_DIGITS_DEADLINE_MS: u64 = 3000;
/// Packet loss rates of runtime experiment c.
pub const RT_LOSSES: [f64; 7] = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6];

/// A column of runtime experiment c.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RtAccuracyCase {
    /// Column name.
    pub name: &'static str,
    /// Parity shards of each layer.
    pub r: usize,
    /// Timeout allocator.
    pub allocator: Allocator,
}

/// The columns of runtime experiment c.
pub const RT_ACCURACY_CASES: [RtAccuracyCase; 6] = [
    RtAccuracyCase {
        name: "uncoded+uniform",
        r: 0,
        allocator: Allocator::Uniform,
    },
    RtAccuracyCase {
        name: "uncoded+aware",
        r: 0,
        allocator: Allocator::QualityAware,
    },
    RtAccuracyCase {
        name: "CDC r=1+uniform",
        r: 1,
        allocator: Allocator::Uniform,
    },
    RtAccuracyCase {
        name: "CDC r=1+aware",
        r: 1,
        allocator: Allocator::QualityAware,
    },
    RtAccuracyCase {
        name: "CDC r=2+uniform",
        r: 2,
        allocator: Allocator::Uniform,
    },
    RtAccuracyCase {
        name: "CDC r=2+aware",
        r: 2,
        allocator: Allocator::QualityAware,
    },
];

/// Data shards of the digits MLP's hidden layer (32 units, 4 per worker) and of its output
/// layer (10 logits, 2 per worker).
pub const DIGITS_K: (usize, usize) = (8, 5);

/// The digits MLP as a coded model: hidden 64 → 32 (ReLU) and output 32 → 10, both int8
/// (inputs: pixels / 16, exactly the raw 0–16 pixels; hidden activations on a scale set by
/// their maximum over the training set), `r` parity shards each, workers `1..=8 + r`.
pub fn digits_model(
    m: &digits::Mlp,
    train: &[Sample],
    r: usize,
) -> Result<CodedModel, Box<dyn Error>> {
    let wmax = |w: &[f32]| w.iter().fold(0.0f32, |a, b| a.max(b.abs())).max(1e-12);
    let hmax = train
        .iter()
        .flat_map(|s| m.hidden_pre(s))
        .fold(0.0f32, f32::max)
        .max(1e-6);
    let hidden = LinearLayer {
        in_len: PIXELS,
        rows: HIDDEN,
        weights: m.w1.clone(),
        bias: m.b1.clone(),
        activation: Activation::Relu,
        numeric: Numeric::Int8 {
            in_scale: 1.0 / 16.0,
            w_scale: wmax(&m.w1) / 127.0,
        },
    };
    let out = LinearLayer {
        in_len: HIDDEN,
        rows: digits::CLASSES,
        weights: m.w2.clone(),
        bias: m.b2.clone(),
        activation: Activation::Linear,
        numeric: Numeric::Int8 {
            in_scale: hmax / 127.0,
            w_scale: wmax(&m.w2) / 127.0,
        },
    };
    let s = |k| LayerScheme {
        k,
        r,
        protection: Protection::Coded,
    };
    let workers: Vec<u16> = (1..=(DIGITS_K.0 + r) as u16).collect();
    Ok(CodedModel::new(
        vec![hidden, out],
        &[s(DIGITS_K.0), s(DIGITS_K.1)],
        &workers,
    )?)
}

fn digits_input(s: &Sample) -> Vec<f32> {
    s.pixels.iter().map(|&p| f32::from(p) / 16.0).collect()
}

fn argmax_slice(o: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in o.iter().enumerate() {
        if *v > o[best] {
            best = i;
        }
    }
    best
}

/// One cell of runtime experiment c.
#[derive(Clone, Debug, PartialEq)]
pub struct RtAccuracyCell {
    /// Test accuracy (argmax of the stage's output).
    pub accuracy: f64,
    /// Mean `quality.fraction`.
    pub quality: f64,
    /// Frames decoded in full.
    pub complete: f64,
    /// Mean frame latency, ms.
    pub latency_ms: f64,
    /// Layer timeouts the quality-aware allocator chose from fitted models.
    pub fitted_budgets: u32,
}

/// Row of runtime experiment c: one loss rate.
#[derive(Clone, Debug, PartialEq)]
pub struct RtAccuracyRow {
    /// Packet loss rate on every link.
    pub loss: f64,
    /// Per [`RT_ACCURACY_CASES`] entry.
    pub cells: Vec<RtAccuracyCell>,
}

/// Runtime experiment c's rows, the int8 reference's and the float model's test accuracy, and
/// the frames per cell.
pub type RtAccuracyRun = (Vec<RtAccuracyRow>, f64, f64, usize);

/// Runtime experiment c over `losses`: every test image one frame, back to back.
pub fn rt_accuracy_rows(
    data: &Path,
    frames: Option<usize>,
    deadline_ms: u64,
    losses: &[f64],
    seed: u64,
) -> Result<RtAccuracyRun, Box<dyn Error>> {
    let all = digits::load(data)?;
    let (train, test) = digits::split(&all);
    let (m, _) = digits::train(&train);
    let frames = frames.unwrap_or(test.len());
    let inputs: Vec<Vec<f32>> = test.iter().map(digits_input).collect();
    let models: Vec<Arc<CodedModel>> = (0..=2)
        .map(|r| digits_model(&m, &train, r).map(Arc::new))
        .collect::<Result<_, _>>()?;
    let reference = test
        .iter()
        .filter(|s| {
            models[0]
                .reference(&digits_input(s), 1)
                .is_ok_and(|o| argmax_slice(&o) == s.label as usize)
        })
        .count() as f64
        / test.len() as f64;
    let rate = rate_for(&models[0], 0, PI3_FC_MS);
    let mut rows = Vec::new();
    for &loss in losses {
        let mut cells = Vec::new();
        for case in &RT_ACCURACY_CASES {
            let model = models[case.r].clone();
            let mut c = CodedSimConfig::new(
                model,
                (DIGITS_K.0 + case.r) as u16,
                inputs.clone(),
                frames,
                Duration::from_millis(deadline_ms),
            );
            c.coded = CodedConfig {
                allocator: case.allocator,
                ..CodedConfig::new(Duration::from_millis(deadline_ms))
            };
            c.gflops = rate;
            c.arrival = Arrival::Pi3Wifi(pi3_wifi_reply_model());
            c.loss = loss;
            c.seed = seed;
            let o = coded_world::run(&c);
            let n = o.frames.len().max(1) as f64;
            let ok = o
                .frames
                .iter()
                .filter(|f| argmax_slice(&f.output) == test[f.index % test.len()].label as usize)
                .count();
            cells.push(RtAccuracyCell {
                accuracy: ok as f64 / frames as f64,
                quality: o
                    .frames
                    .iter()
                    .map(|f| f64::from(f.quality.fraction))
                    .sum::<f64>()
                    / n,
                complete: o.complete() as f64 / n,
                latency_ms: o.frames.iter().map(|f| f.latency_ms()).sum::<f64>() / n,
                fitted_budgets: o.gateway.fitted_budgets,
            });
        }
        rows.push(RtAccuracyRow { loss, cells });
    }
    Ok((rows, reference, m.accuracy(&test), frames))
}

/// `tessera-sim cdc accuracy`: runtime experiment c.
pub fn rt_accuracy(a: &RunArgs) -> Result<(String, Vec<RtAccuracyRow>), Box<dyn Error>> {
    let deadline = a.deadline_ms.unwrap_or(RT_DIGITS_DEADLINE_MS);
    let (rows, reference, float_acc, frames) =
        rt_accuracy_rows(&a.data, a.frames, deadline, &RT_LOSSES, a.seed)?;
    let mut s = String::new();
    writeln!(
        s,
        "## Experiment c (runtime): digits MLP accuracy vs packet loss"
    )?;
    writeln!(
        s,
        "64-32-10 MLP (float test accuracy {:.2} %; int8 centralised reference {:.2} %), hidden layer k = {} (4 units per worker), output layer k = {} (2 logits per worker), + r parity shards each on workers 9..8+r; {frames} test images, one frame each, back to back; frame deadline {deadline} ms; shards of the hidden layer compute in 50 ms × Pi 3 reply factor (output layer in 12.5 ms ×); loss = probability each IP packet on every link is dropped (TCP retransmits: loss becomes delay, delay past a timeout an erasure, missing rows are zeros); aware = quality-aware allocator (gamma models fitted from the gateway's round trips, 8 samples per worker and layer first); seed {}",
        100.0 * float_acc,
        100.0 * reference,
        DIGITS_K.0,
        DIGITS_K.1,
        a.seed
    )?;
    let mut csv = String::from("loss");
    write!(s, "| loss |")?;
    for c in &RT_ACCURACY_CASES {
        write!(s, " {} acc % / quality |", c.name)?;
        write!(
            csv,
            ",{0}_acc,{0}_quality,{0}_complete,{0}_latency_ms,{0}_fitted_budgets",
            c.name
        )?;
    }
    writeln!(s)?;
    csv.push('\n');
    writeln!(s, "|---|{}", "---|".repeat(RT_ACCURACY_CASES.len()))?;
    for r in &rows {
        write!(s, "| {:.0} % |", 100.0 * r.loss)?;
        write!(csv, "{:.2}", r.loss)?;
        for c in &r.cells {
            write!(s, " {:.1} / {:.3} |", 100.0 * c.accuracy, c.quality)?;
            write!(
                csv,
                ",{:.4},{:.4},{:.4},{:.1},{}",
                c.accuracy, c.quality, c.complete, c.latency_ms, c.fitted_budgets
            )?;
        }
        writeln!(s)?;
        csv.push('\n');
    }
    let p = write_csv(&a.out, "cdc_rt_accuracy.csv", &csv)?;
    writeln!(
        s,
        "(accuracy % / mean quality.fraction; CSV with complete-frame fractions, latencies and fitted budgets: {})\n",
        p.display()
    )?;
    write_csv(&a.out, "cdc_rt_accuracy.txt", &s)?;
    Ok((s, rows))
}
