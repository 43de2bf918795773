//! The kernel benchmark's figures as one JSON object (`tessera bench kernels --json`): GFLOP/s
//! per layer and in total for each kernel, from [`crate::bench`]'s measured times. A layer's
//! GFLOP/s is `2·MACs / time`; for the Winograd kernel that is its effective rate (the direct
//! convolution's FLOPs over its time: it performs fewer). Figures keep four decimals; a kernel
//! that was not measured (or a layer without FLOPs, a max pool) is `null`.

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use serde::Serialize;

use crate::bench::{LayerTimes, TiledCheck, THREADS_MULTI};
use crate::kernels::{Form, Isa};

/// How the benchmark ran.
#[derive(Clone, Debug)]
pub struct KernelRun {
    /// Layers `[0, upto)` were measured.
    pub upto: usize,
    /// Seed of the generated weights.
    pub seed: u64,
    /// Timed repetitions of each run.
    pub reps: usize,
    /// Fraction of each layer's rows the reference kernel computed.
    pub reference_rows: f64,
    /// Load averages (1, 5, 15 minutes) at the start and at the end.
    pub load: [String; 2],
    /// The FMA kernel's instruction set.
    pub isa: Isa,
    /// Single-core FMA peak, GFLOP/s.
    pub peak: f64,
    /// The Winograd kernel's form, when it was timed.
    pub winograd: Option<Form>,
}

/// The JSON report.
#[derive(Clone, Debug, Serialize)]
pub struct KernelReport {
    network: &'static str,
    loadavg_start: String,
    loadavg_end: String,
    layers_upto: usize,
    seed: u64,
    reps: usize,
    isa: String,
    threads_multi: usize,
    reference_rows_fraction: f64,
    peak_gflops: f64,
    total_gflop: f64,
    total_gflops_reference: f64,
    total_gflops_portable: f64,
    total_gflops_1t: f64,
    total_gflops_2t: f64,
    fraction_of_peak_1t: f64,
    speedup_2t: f64,
    ratio_to_portable_1t: f64,
    layers: Vec<LayerReport>,
    layer0_gflops_1t: Option<f64>,
    layer0_gflops_2t: Option<f64>,
    /// `F2` or `F4` (`null`: not timed).
    winograd_form: Option<String>,
    /// Winograd kernel, effective GFLOP/s (direct-convolution FLOPs ÷ time), 1 thread.
    total_gflops_winograd_1t: f64,
    /// Winograd kernel, effective GFLOP/s, [`THREADS_MULTI`] threads.
    total_gflops_winograd_2t: f64,
    winograd_speedup_2t: f64,
    winograd_over_fma_1t: f64,
    winograd_over_fma_2t: f64,
    /// FMA kernel, one thread, GFLOP/s by on-CPU time (time waiting for a core not counted:
    /// comparable on a loaded machine; `null` where the OS does not report it).
    total_gflops_1t_cpu: Option<f64>,
    /// Winograd kernel, one thread, effective GFLOP/s by on-CPU time.
    total_gflops_winograd_1t_cpu: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tiled: Option<TiledReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tiled_winograd: Option<TiledReport>,
}

/// One layer's figures.
#[derive(Clone, Debug, Serialize)]
struct LayerReport {
    layer: usize,
    name: String,
    gflop: f64,
    reference_gflops: Option<f64>,
    portable_gflops: Option<f64>,
    gflops_1t: Option<f64>,
    gflops_2t: Option<f64>,
    fraction_of_peak_1t: Option<f64>,
    ratio_to_portable_1t: f64,
    speedup_2t: f64,
    time_1t_s: f64,
    time_2t_s: f64,
    time_portable_s: f64,
    winograd_gflops_1t: Option<f64>,
    winograd_gflops_2t: Option<f64>,
    winograd_time_1t_s: f64,
    winograd_time_2t_s: f64,
    /// Winograd one-thread time over two-thread time.
    winograd_speedup_2t: f64,
    time_1t_cpu_s: Option<f64>,
    winograd_time_1t_cpu_s: Option<f64>,
}

/// The tiled run against the full frame.
#[derive(Clone, Debug, Serialize)]
struct TiledReport {
    grid: &'static str,
    reuse: bool,
    threads: usize,
    full_s: f64,
    tiled_s: f64,
    time_ratio: f64,
    /// Tiled over full FLOPs of the plan run (block-aligned regions).
    flop_ratio: f64,
    /// The same for unaligned regions (direct kernels): the bound's base.
    direct_flop_ratio: f64,
    /// Tiled over full on-CPU time (`null`: not measured).
    time_ratio_cpu: Option<f64>,
    ok: bool,
    /// Seconds outside the kernel calls (copies, strips, buffers), full frame and tiled.
    outside_kernels_full_s: f64,
    outside_kernels_tiled_s: f64,
    /// The kernel calls summed: full and tiled seconds (on-CPU when `kernel_cpu`), and the
    /// tiled time each layer's products (padded lanes included) would explain.
    kernel_cpu: bool,
    kernel_full_s: f64,
    kernel_tiled_s: f64,
    kernel_tiled_by_work_s: f64,
    /// Per layer, the kernel calls of the two runs.
    layers: Vec<TiledLayerReport>,
}

/// One layer of the tiled check: tiled (all tiles) against the full frame.
#[derive(Clone, Debug, Serialize)]
struct TiledLayerReport {
    layer: usize,
    name: String,
    calls_full: usize,
    calls_tiled: usize,
    full_s: f64,
    tiled_s: f64,
    time_ratio: f64,
    /// On-CPU seconds (`null`: not measured) and their ratio.
    full_cpu_s: Option<f64>,
    tiled_cpu_s: Option<f64>,
    time_ratio_cpu: Option<f64>,
    /// Direct-convolution GFLOP of the regions computed, full frame and tiled (0 for pools).
    gflop_full: f64,
    gflop_tiled: f64,
    /// Tiled over full: planned outputs, outputs in whole blocks, products with padded lanes.
    flop_ratio: Option<f64>,
    block_ratio: Option<f64>,
    product_ratio: Option<f64>,
}

/// Four decimals (NaN and infinities stay so, and serialize as `null`).
fn num(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

/// Seconds to the microsecond (a max pool's call takes 0.1 ms or less).
fn num_s(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// GFLOP/s of `flop` in `t` seconds.
pub fn gflops(flop: f64, t: f64) -> f64 {
    flop / t / 1e9
}

/// Seconds of a kernel, NaN when it was not measured.
pub fn secs(t: Option<f64>) -> f64 {
    t.unwrap_or(f64::NAN)
}

/// GFLOP/s of a layer with FLOPs (`None` for a max pool).
fn rate(flop: f64, t: f64) -> Option<f64> {
    (flop > 0.0).then(|| num(gflops(flop, t)))
}

impl KernelReport {
    /// The report of `rows` (one per layer), their `totals` and the tiled check.
    pub fn new(
        run: &KernelRun,
        rows: &[LayerTimes],
        totals: &LayerTimes,
        tiled: Option<&TiledCheck>,
        tiled_winograd: Option<&TiledCheck>,
    ) -> KernelReport {
        let peak = run.peak;
        let g1 = gflops(totals.flop, totals.fma1);
        let layers = rows
            .iter()
            .enumerate()
            .map(|(l, r)| LayerReport {
                layer: l,
                name: r.name.split_whitespace().collect::<Vec<_>>().join(" "),
                gflop: num(r.flop / 1e9),
                reference_gflops: rate(r.flop, secs(r.reference)),
                portable_gflops: rate(r.flop, secs(r.portable)),
                gflops_1t: rate(r.flop, r.fma1),
                gflops_2t: rate(r.flop, r.fma2),
                fraction_of_peak_1t: (r.flop > 0.0).then(|| num(gflops(r.flop, r.fma1) / peak)),
                ratio_to_portable_1t: num(secs(r.portable) / r.fma1),
                speedup_2t: num(r.fma1 / r.fma2),
                time_1t_s: num_s(r.fma1),
                time_2t_s: num_s(r.fma2),
                time_portable_s: num_s(secs(r.portable)),
                winograd_gflops_1t: rate(r.flop, secs(r.wino1)),
                winograd_gflops_2t: rate(r.flop, secs(r.wino2)),
                winograd_time_1t_s: num_s(secs(r.wino1)),
                winograd_time_2t_s: num_s(secs(r.wino2)),
                winograd_speedup_2t: num(secs(r.wino1) / secs(r.wino2)),
                time_1t_cpu_s: r.fma1_cpu.map(num_s),
                winograd_time_1t_cpu_s: r.wino1_cpu.map(num_s),
            })
            .collect();
        let [loadavg_start, loadavg_end] = run.load.clone();
        KernelReport {
            network: "yolov2-608",
            loadavg_start,
            loadavg_end,
            layers_upto: run.upto,
            seed: run.seed,
            reps: run.reps,
            isa: format!("{:?}", run.isa),
            threads_multi: THREADS_MULTI,
            reference_rows_fraction: num(run.reference_rows),
            peak_gflops: num(peak),
            total_gflop: num(totals.flop / 1e9),
            total_gflops_reference: num(gflops(totals.flop, secs(totals.reference))),
            total_gflops_portable: num(gflops(totals.flop, secs(totals.portable))),
            total_gflops_1t: num(g1),
            total_gflops_2t: num(gflops(totals.flop, totals.fma2)),
            fraction_of_peak_1t: num(g1 / peak),
            speedup_2t: num(totals.fma1 / totals.fma2),
            ratio_to_portable_1t: num(secs(totals.portable) / totals.fma1),
            layers,
            layer0_gflops_1t: rows.first().and_then(|r| rate(r.flop, r.fma1)),
            layer0_gflops_2t: rows.first().and_then(|r| rate(r.flop, r.fma2)),
            winograd_form: run.winograd.map(|f| format!("{f:?}")),
            total_gflops_winograd_1t: num(gflops(totals.flop, secs(totals.wino1))),
            total_gflops_winograd_2t: num(gflops(totals.flop, secs(totals.wino2))),
            winograd_speedup_2t: num(secs(totals.wino1) / secs(totals.wino2)),
            winograd_over_fma_1t: num(totals.fma1 / secs(totals.wino1)),
            winograd_over_fma_2t: num(totals.fma2 / secs(totals.wino2)),
            total_gflops_1t_cpu: totals.fma1_cpu.map(|t| num(gflops(totals.flop, t))),
            total_gflops_winograd_1t_cpu: totals.wino1_cpu.map(|t| num(gflops(totals.flop, t))),
            tiled: tiled.map(TiledReport::of),
            tiled_winograd: tiled_winograd.map(TiledReport::of),
        }
    }
}

impl TiledReport {
    fn of(t: &TiledCheck) -> TiledReport {
        let sums = t.kernel_sums();
        TiledReport {
            grid: "3x3",
            reuse: true,
            threads: 1,
            full_s: num(t.full),
            tiled_s: num(t.tiled),
            time_ratio: num(t.time_ratio()),
            flop_ratio: num(t.flop_ratio),
            direct_flop_ratio: num(t.direct_flop_ratio),
            time_ratio_cpu: t.cpu.map(|_| num(t.cpu_ratio())),
            ok: t.within_bound(),
            outside_kernels_full_s: num(t.outside_kernels(false)),
            outside_kernels_tiled_s: num(t.outside_kernels(true)),
            kernel_cpu: sums.cpu,
            kernel_full_s: sums.full,
            kernel_tiled_s: sums.tiled,
            kernel_tiled_by_work_s: sums.by_work,
            layers: t
                .layers
                .iter()
                .enumerate()
                .map(|(layer, r)| {
                    let (f, g) = (&r.full.work, &r.tiled.work);
                    let ratio = |a: u64, b: u64| (b > 0).then(|| num(a as f64 / b as f64));
                    TiledLayerReport {
                        layer,
                        name: r.name.split_whitespace().collect::<Vec<_>>().join(" "),
                        calls_full: r.full.calls,
                        calls_tiled: r.tiled.calls,
                        full_s: r.full.seconds,
                        tiled_s: r.tiled.seconds,
                        time_ratio: num(r.tiled.seconds / r.full.seconds),
                        full_cpu_s: r.full.cpu_seconds,
                        tiled_cpu_s: r.tiled.cpu_seconds,
                        time_ratio_cpu: r
                            .tiled
                            .cpu_seconds
                            .zip(r.full.cpu_seconds)
                            .map(|(t, f)| num(t / f)),
                        gflop_full: num(2.0 * f.macs as f64 / 1e9),
                        gflop_tiled: num(2.0 * g.macs as f64 / 1e9),
                        flop_ratio: ratio(g.macs, f.macs),
                        block_ratio: ratio(g.block_macs, f.block_macs),
                        product_ratio: ratio(g.products, f.products),
                    }
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    #[test]
    fn unmeasured_kernels_and_pools_are_null() {
        let conv = LayerTimes {
            name: "conv 3x3/1  3->32".to_string(),
            flop: 2e9,
            reference: None,
            portable: Some(2.0),
            fma1: 0.5,
            fma2: 0.25,
            wino1: Some(0.25),
            wino2: None,
            fma1_cpu: Some(0.5),
            wino1_cpu: None,
        };
        let pool = LayerTimes {
            name: "max 2x2/2".to_string(),
            flop: 0.0,
            ..conv.clone()
        };
        let rows = vec![conv, pool];
        let run = KernelRun {
            upto: 2,
            seed: 1,
            reps: 3,
            reference_rows: 0.1,
            load: ["0.5 0.4 0.3".to_string(), "0.6 0.4 0.3".to_string()],
            isa: Isa::Scalar,
            peak: 8.0,
            winograd: Some(Form::F4),
        };
        let totals = LayerTimes::total("total", &rows);
        let r = KernelReport::new(&run, &rows, &totals, None, None);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["layers"][0]["gflops_1t"], 4.0);
        assert_eq!(v["layers"][0]["fraction_of_peak_1t"], 0.5);
        assert_eq!(v["layers"][0]["name"], "conv 3x3/1 3->32");
        assert!(v["layers"][0]["reference_gflops"].is_null());
        assert!(v["layers"][1]["gflops_1t"].is_null());
        assert!(v["total_gflops_reference"].is_null());
        assert_eq!(v["speedup_2t"], 2.0);
        assert_eq!(v["layer0_gflops_2t"], 8.0);
        assert!(v.get("tiled").is_none());
        assert_eq!(v["layers"][0]["winograd_gflops_1t"], 8.0);
        assert!(v["layers"][0]["winograd_gflops_2t"].is_null());
        assert!(v["layers"][0]["winograd_speedup_2t"].is_null());
        assert_eq!(v["winograd_over_fma_1t"], 2.0);
        assert_eq!(v["winograd_form"], "F4");
        assert!(v["total_gflops_winograd_2t"].is_null());
        // 2 GFLOP over the conv's and the pool's 0.5 s each.
        assert_eq!(v["total_gflops_1t_cpu"], 2.0);
        assert_eq!(v["layers"][0]["time_1t_cpu_s"], 0.5);
        // Times to the microsecond, not to 0.1 ms.
        let mut fast = rows[1].clone();
        fast.fma2 = 12.3456e-6;
        let r = KernelReport::new(&run, &[fast.clone()], &fast, None, None);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["layers"][0]["time_2t_s"], 12e-6);
        assert!(v["total_gflops_winograd_1t_cpu"].is_null());
    }

    #[test]
    fn tiled_breakdown_per_layer_and_by_work() {
        use crate::bench::{TiledCheck, TiledLayer};
        use crate::layer_timer::{CallWork, LayerCalls};
        let calls = |n, s: f64, macs, products| LayerCalls {
            calls: n,
            seconds: s,
            cpu_seconds: Some(s / 2.0),
            work: CallWork {
                macs,
                block_macs: macs,
                products,
            },
        };
        let conv = TiledLayer {
            name: "conv".to_string(),
            full: calls(1, 0.02, 100, 100),
            tiled: calls(9, 0.04, 110, 150),
        };
        let pool = TiledLayer {
            name: "max".to_string(),
            full: calls(1, 0.002, 0, 0),
            tiled: calls(9, 0.004, 0, 0),
        };
        let t = TiledCheck {
            full: 0.025,
            tiled: 0.05,
            flop_ratio: 1.1,
            direct_flop_ratio: 1.1,
            cpu: None,
            outside: (0.001, 0.006),
            layers: vec![conv, pool],
        };
        // On-CPU: the conv 10 -> 20 ms, the pool 1 -> 2 ms; by work the conv would take 15.
        let sums = t.kernel_sums();
        assert!(sums.cpu);
        assert!((sums.by_work - 0.017).abs() < 1e-12 && (sums.tiled - 0.022).abs() < 1e-12);
        let r = TiledReport::of(&t);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["layers"][0]["product_ratio"], 1.5);
        assert_eq!(v["layers"][0]["time_ratio_cpu"], 2.0);
        assert_eq!(v["layers"][0]["calls_tiled"], 9);
        assert!(v["layers"][1]["product_ratio"].is_null());
        assert_eq!(v["kernel_tiled_by_work_s"], 0.017);
        // Wall clock outside the kernels: as measured within a run.
        assert_eq!(t.outside_kernels(true), 0.006);
        assert_eq!(v["outside_kernels_tiled_s"], 0.006);
    }
}
