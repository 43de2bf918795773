//! What `tessera bench kernels` prints (`crate::bench`'s measurements): a row per layer with
//! GFLOP/s of the reference, portable, FMA (1 and 2 threads) and Winograd kernels, the totals
//! against the measured FMA peak, and the tiled checks. A layer's GFLOP/s is `2·MACs / time`;
//! max pools have no FLOPs but their time counts in the totals.

extern crate alloc;
extern crate std;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Write as _;

use crate::bench::{KernelSums, LayerTimes, TiledCheck, THREADS_MULTI as THREADS};
use crate::kernel_report::{gflops, secs};
use crate::kernels::Form;

/// The 1, 5 and 15 minute load averages (Linux), for the record of how busy the machine was.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// The line of layer `l` (`usize::MAX`: the totals), after the header when `l` is 0.
pub fn row(l: usize, r: &LayerTimes, peak: f64) -> String {
    let mut out = String::new();
    if l == 0 {
        let _ = writeln!(
            out,
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
        let _ = writeln!(
            out,
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
        return out;
    }
    let g1 = gflops(r.flop, r.fma1);
    let _ = writeln!(
        out,
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
    out
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

/// The totals' row and lines, layer 0's figures and the FMA kernel's tiled check.
pub fn summary(
    peak: f64,
    rows: &[LayerTimes],
    totals: &LayerTimes,
    tiled: Option<&TiledCheck>,
) -> String {
    let mut out = row(usize::MAX, totals, peak);
    let g1 = gflops(totals.flop, totals.fma1);
    let g2 = gflops(totals.flop, totals.fma2);
    let _ = writeln!(
            out,
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
        let _ = writeln!(
            out,
            "layer 0: fma 1 thread {:.1} GFLOP/s ({:.0}% of peak), {} threads {:.1} GFLOP/s",
            gflops(r0.flop, r0.fma1),
            100.0 * gflops(r0.flop, r0.fma1) / peak,
            THREADS,
            gflops(r0.flop, r0.fma2)
        );
    }
    if let Some(t) = tiled {
        let _ = writeln!(
            out,
            "tiled check (fma, 1 thread): 3x3 grid with reuse {:.1} ms vs full frame {:.1} ms: time ratio {:.3}, FLOP ratio {:.3} -> {} (bound: FLOP ratio + 0.10); outputs equal bit for bit",
            t.tiled * 1e3,
            t.full * 1e3,
            t.time_ratio(),
            t.flop_ratio,
            if t.within_bound() { "ok" } else { "OVER" }
        );
        let _ = writeln!(out, "  by on-CPU time: tiled/full {:.3}", t.cpu_ratio());
        out += &tiled_layers(t);
    }
    out
}

/// The tiled check per layer: kernel time tiled (all tiles) against the full frame, on-CPU
/// (wall clock where not measured) and the wall-clock ratio, beside the work ratios (planned
/// outputs, whole blocks, products with padded lanes), and the wall-clock time outside the
/// kernels (copies, strips, buffers).
pub fn tiled_layers(t: &TiledCheck) -> String {
    let mut out = String::new();
    let ratio = |a: u64, b: u64| fig(a as f64 / b as f64, 3, "");
    let sums = t.kernel_sums();
    let cpu = sums.cpu;
    let _ = writeln!(
        out,
        "  {:>3} {:30} {:>11} {:>8} {:>8} {:>7} {:>6} {:>6} {:>6} {:>6} {:>6}",
        "l",
        "layer",
        "calls",
        "full ms",
        "tiled ms",
        "+ms",
        if sums.cpu { "cpu" } else { "wall" },
        "wall",
        "MACs",
        "blocks",
        "prod"
    );
    for (l, r) in t.layers.iter().enumerate() {
        let (f, g) = (&r.full, &r.tiled);
        let (fs, gs) = (r.full.time(cpu), r.tiled.time(cpu));
        let _ = writeln!(
            out,
            "  {:>3} {:30} {:>4} -> {:<4} {:>8.2} {:>8.2} {:>7.2} {:>6.3} {:>6.3} {:>6} {:>6} {:>6}",
            l,
            r.name,
            f.calls,
            g.calls,
            fs * 1e3,
            gs * 1e3,
            (gs - fs) * 1e3,
            gs / fs,
            g.seconds / f.seconds,
            ratio(g.work.macs, f.work.macs),
            ratio(g.work.block_macs, f.work.block_macs),
            ratio(g.work.products, f.work.products),
        );
    }
    let KernelSums {
        full,
        tiled,
        by_work,
        ..
    } = sums;
    let _ = writeln!(
        out,
        "  {:>3} {:30} {:>11} {:>8.2} {:>8.2} {:>7.2} {:>6.3}",
        "",
        "kernel calls",
        "",
        full * 1e3,
        tiled * 1e3,
        (tiled - full) * 1e3,
        tiled / full
    );
    let _ = writeln!(
        out,
        "  if each layer's time grew as its products (padded lanes included): tiled {:.2} ms, ratio {:.3}",
        by_work * 1e3,
        by_work / full
    );
    let (f, g) = (t.outside_kernels(false), t.outside_kernels(true));
    let _ = writeln!(
        out,
        "  outside the kernels (wall clock: copies, strips, buffers): {:.2} -> {:.2} ms ({:+.2})",
        f * 1e3,
        g * 1e3,
        (g - f) * 1e3
    );
    out
}

/// The Winograd kernel's totals (effective GFLOP/s: direct-convolution FLOPs over its time)
/// and its tiled check.
pub fn winograd_summary(form: Form, totals: &LayerTimes, tiled: Option<&TiledCheck>) -> String {
    let mut out = String::new();
    let (w1, w2) = (secs(totals.wino1), secs(totals.wino2));
    if !w1.is_finite() {
        return out;
    }
    let _ = writeln!(
            out,
        "winograd ({form:?} on 3x3 stride-1 layers of >= 16 channels, direct elsewhere): 1 thread {:.1} effective GFLOP/s ({:.2}x fma), {} threads {:.1} ({:.2}x fma, {:.2}x one thread)",
        gflops(totals.flop, w1),
        totals.fma1 / w1,
        THREADS,
        gflops(totals.flop, w2),
        totals.fma2 / w2,
        w1 / w2
    );
    if let (Some(f), Some(w)) = (totals.fma1_cpu, totals.wino1_cpu) {
        let _ = writeln!(
            out,
            "by on-CPU time (waits for a core not counted), 1 thread: fma {:.1} GFLOP/s, winograd {:.1} effective ({:.2}x fma)",
            gflops(totals.flop, f),
            gflops(totals.flop, w),
            f / w
        );
    }
    if let Some(t) = tiled {
        let _ = writeln!(
            out,
            "tiled check (winograd, 1 thread, forms chosen for the grid): 3x3 grid with reuse {:.1} ms vs full frame {:.1} ms: time ratio {:.3}, FLOP ratio {:.3} (direct plan) / {:.3} (aligned plan) -> {} (bound: direct FLOP ratio + 0.10); outputs equal bit for bit",
            t.tiled * 1e3,
            t.full * 1e3,
            t.time_ratio(),
            t.direct_flop_ratio,
            t.flop_ratio,
            if t.within_bound() { "ok" } else { "OVER" }
        );
        let _ = writeln!(out, "  by on-CPU time: tiled/full {:.3}", t.cpu_ratio());
        out += &tiled_layers(t);
    }
    out
}

/// Per-layer forms as `- - F4 - F2 ...` (`-`: direct or a pool).
pub fn forms_line(forms: &[Option<Form>]) -> String {
    forms
        .iter()
        .map(|f| f.map_or("-".to_string(), |f| format!("{f:?}")))
        .collect::<Vec<_>>()
        .join(" ")
}
