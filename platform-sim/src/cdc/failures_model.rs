//! Experiment 2 (`cdc failures-model`): every kill pattern of `f` devices decoded on the host,
//! integer exactness, float error vs the bound, decode time.

use std::error::Error;
use std::fmt::Write as _;
use std::path::Path;

use tessera_core::code::{encode, shard, Arithmetic, Code, Decoder};
use tessera_core::deadline::Rng;

use super::{on_pi, time_ms, write_csv};
use crate::compute::PI3_GFLOPS;

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
    /// Median integer decode time (f data shards lost) on this host, ms.
    pub decode_ms: f64,
    /// Full layer on one device (int8 GEMM) on this host, ms.
    pub layer_ms: f64,
    /// One shard's compute on this host, ms.
    pub shard_ms: f64,
}

impl FailureRow {
    /// The full layer on a simulated Pi 3 ([`PI3_GFLOPS`]), ms.
    pub fn layer_pi_ms(&self, l: &LayerShape) -> f64 {
        2.0 * (l.rows * l.in_len * l.cols) as f64 / (PI3_GFLOPS * 1e6)
    }

    /// The decode on a simulated Pi 3 (host time scaled by the layer's), ms.
    pub fn decode_pi_ms(&self, l: &LayerShape) -> f64 {
        on_pi(self.decode_ms, self.layer_ms, self.layer_pi_ms(l))
    }
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
    let mut csv = String::from("layer,k,f,r,patterns,int_exact,float_err_over_bound,float_err_over_A,decode_pi_ms,layer_pi_ms,host_decode_ms,host_layer_ms,host_shard_ms,decode_over_layer,decode_over_shard\n");
    writeln!(
        s,
        "## Experiment 2: f devices killed, r = f parities, k = 8"
    )?;
    writeln!(s, "every pattern of f killed devices among k + f; int8/i32 (r=1 wrapping, r>=2 GF(2^31-1)) vs the uncoded layer; float vs an exact f64 reference; decode time = median wall time with f data shards lost (plan + decode) on one core of this machine, scaled to a Pi 3 at {PI3_GFLOPS} GFLOP/s by the layer's own compute time on both (layer on a Pi 3 = its FLOPs at that rate); shard = median data-shard compute after a warm-up")?;
    writeln!(s, "| layer | f = r | patterns | int exact | float err / bound | float err / A | decode ms (Pi 3) | layer ms (Pi 3) | decode / layer | decode / shard |")?;
    writeln!(s, "|---|---|---|---|---|---|---|---|---|---|")?;
    for r in &rows {
        let shape = FAILURE_LAYERS
            .iter()
            .find(|l| l.name == r.layer)
            .ok_or("a row of an unknown layer")?;
        let (decode_pi, layer_pi) = (r.decode_pi_ms(shape), r.layer_pi_ms(shape));
        writeln!(
            s,
            "| {} | {} | {} | {} | {:.1e} | {:.1e} | {:.2} | {:.0} | {:.2} % | {:.1} % |",
            r.layer,
            r.f,
            r.patterns,
            if r.int_exact { "yes" } else { "NO" },
            r.float_err_over_bound,
            r.float_rel_err,
            decode_pi,
            layer_pi,
            100.0 * r.decode_ms / r.layer_ms,
            100.0 * r.decode_ms / r.shard_ms
        )?;
        writeln!(
            csv,
            "{},{},{},{},{},{},{:.4},{:.3e},{:.3},{:.1},{:.4},{:.4},{:.4},{:.5},{:.5}",
            r.layer,
            r.k,
            r.f,
            r.f,
            r.patterns,
            r.int_exact,
            r.float_err_over_bound,
            r.float_rel_err,
            decode_pi,
            layer_pi,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_time_reads_in_pi_time_scaled_by_the_layer() {
        let fc = FAILURE_LAYERS[0];
        let row = FailureRow {
            layer: fc.name,
            k: 8,
            f: 1,
            patterns: 9,
            int_exact: true,
            float_err_over_bound: 0.0,
            float_rel_err: 0.0,
            decode_ms: 0.02,
            layer_ms: 0.5,
            shard_ms: 0.07,
        };
        // 2 × 2048 × 2048 FLOPs at 1.53 GFLOP/s.
        let layer = row.layer_pi_ms(&fc);
        assert!((layer - 5.483).abs() < 0.001, "{layer}");
        // The host decoded in 4 % of its layer time: so does the Pi.
        assert!((row.decode_pi_ms(&fc) - 0.04 * layer).abs() < 1e-9);
    }
}
