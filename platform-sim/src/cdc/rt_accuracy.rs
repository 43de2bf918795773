//! Runtime experiment c (`cdc accuracy`): the digits MLP as a coded model, accuracy vs packet
//! loss for uncoded and CDC with both timeout allocators.

use std::error::Error;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use tessera_backends::coded::{Activation, CodedModel, LayerScheme, LinearLayer, Numeric};
use tessera_core::runtime::coded::{Allocator, CodedConfig, Protection};
use tessera_core::time::Duration;

use super::reply::{pi3_wifi_reply_model, PI3_FC_MS};
use super::runtime_setup::rate_for;
use super::{write_csv, RunArgs};
use crate::coded_world::{self, Arrival, CodedSimConfig, Transport};
use crate::digits::{self, Sample, HIDDEN, PIXELS};

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
    transport: Transport,
    copies: u8,
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
                copies,
                ..CodedConfig::new(Duration::from_millis(deadline_ms))
            };
            c.gflops = rate;
            c.arrival = Arrival::Pi3Wifi(pi3_wifi_reply_model());
            c.loss = loss;
            c.seed = seed;
            c.transport = transport;
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
    let (rows, reference, float_acc, frames) = rt_accuracy_rows(
        &a.data,
        a.frames,
        deadline,
        &RT_LOSSES,
        a.seed,
        a.transport.into(),
        a.copies,
    )?;
    let mut s = String::new();
    writeln!(
        s,
        "## Experiment c (runtime): digits MLP accuracy vs packet loss"
    )?;
    writeln!(
        s,
        "64-32-10 MLP (float test accuracy {:.2} %; int8 centralised reference {:.2} %), hidden layer k = {} (4 units per worker), output layer k = {} (2 logits per worker), + r parity shards each on workers 9..8+r; {frames} test images, one frame each, back to back; frame deadline {deadline} ms; shards of the hidden layer compute in 50 ms × Pi 3 reply factor (output layer in 12.5 ms ×); loss = probability each IP packet on every link is dropped; {}; missing rows are zeros; aware = quality-aware allocator (gamma models fitted from the gateway's round trips, 8 samples per worker and layer first); a worker stops a shard at its budget; seed {}",
        100.0 * float_acc,
        100.0 * reference,
        DIGITS_K.0,
        DIGITS_K.1,
        match a.transport {
            super::TransportArg::Datagram => format!(
                "shards and results on authenticated datagrams, each sent {} time(s) (a lost datagram is an erasure, never retransmitted)",
                a.copies
            ),
            super::TransportArg::Tcp =>
                "shards and results on the authenticated TCP link (loss becomes retransmission delay, delay past a timeout an erasure)".to_string(),
        },
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
