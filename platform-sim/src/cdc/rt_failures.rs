//! Runtime experiment b (`cdc failures`): `f` workers killed mid-layer with `r = f`,
//! exactness, error vs the bound, decode cost.

use std::error::Error;
use std::fmt::Write as _;
use std::sync::Arc;

use tessera_backends::coded::{CodedModel, LayerScheme};
use tessera_core::runtime::coded::Protection;
use tessera_core::time::Duration;

use super::reply::PI3_FC_MS;
use super::runtime_setup::{fc_inputs, fc_layer, rate_for, RT_FC, RT_K};
use super::{on_pi, time_ms, write_csv, RunArgs};
use crate::coded_world::{self, CodedSimConfig};

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
    /// The layer's k data shards at the simulated workers' rate (one Pi 3), ms.
    pub layer_pi_ms: f64,
    /// The decode on that Pi 3: the host's decode time scaled by the layer's, ms.
    pub decode_pi_ms: f64,
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
                let layer_flops: u64 = (0..k).map(|d| model.shard_flops(0, d, 1)).sum();
                let layer_pi_ms = layer_flops as f64 / (c.gflops * 1e6);
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
                    layer_pi_ms,
                    decode_pi_ms: on_pi(decode_ms, layer_ms, layer_pi_ms),
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
    let mut csv = String::from("numeric,f,r,killed,mid_job,frames,complete,exact,recovered_layers,max_abs_err,max_err_over_bound,decode_pi_ms,layer_pi_ms,host_decode_ms,host_layer_ms,decode_over_layer,decode_flops_over_layer,latency_before_ms,latency_after_ms\n");
    writeln!(s, "## Experiment b (runtime): f workers killed mid-layer, r = f, FC {RT_FC}x{RT_FC}, k = {RT_K}")?;
    writeln!(
        s,
        "{frames} frames back to back per row, workers killed in the middle of a shard job about 1 s after the start (mid-job: every killed worker was computing); shard compute 50 ms (no reply factor); exact = output bit-identical to CodedModel::reference (int8: all must be); err/bound = largest |err| over Decoder::error_bound_f32 of the frame's erasure pattern (float); decode = wall time of CodedModel::finish_layer with the killed shards erased on this machine (median of 15), expressed on the simulated Pi 3 by the ratio of the layer's k data shards there (their FLOPs at the workers' rate) to the same shards computed here; flops = Decoder::mul_adds / (rows x K); seed {}",
        a.seed
    )?;
    writeln!(s, "| numeric | f = r | killed workers | mid-job | done/complete | exact | recovered layers | max abs err | err / bound | decode ms (Pi 3) | layer ms (Pi 3) | decode/layer (time) | decode/layer (FLOPs) | latency before / after kill ms |")?;
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
            r.decode_pi_ms,
            r.layer_pi_ms,
            100.0 * r.decode_ms / r.layer_ms,
            100.0 * r.flop_ratio,
            r.latency.0,
            r.latency.1
        )?;
        writeln!(
            csv,
            "{},{},{},{killed},{},{},{},{},{},{:.3e},{:.3e},{:.3},{:.1},{:.4},{:.4},{:.4},{:.6},{:.2},{:.2}",
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
            r.decode_pi_ms,
            r.layer_pi_ms,
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
