//! The kernel benchmark's measurements (std): the single-core FMA peak ([`peak_gflops`]),
//! every fused layer through the reference, portable and FMA kernels on one and
//! [`THREADS_MULTI`] threads ([`bench_layers`]), and a tiled run against the full frame
//! ([`tiled_check`]). Results are plain structs; printing is the caller's.
//!
//! Method: each layer's input is the FMA kernel's output of the layer before. Every timed run
//! is repeated `reps` times and the fastest kept. The reference kernel is slow, so it runs only
//! a band of each layer's output rows (`reference_rows`, a fraction) and its time is scaled to
//! the whole layer. Inputs and outputs sit in 64-byte-aligned buffers, as in
//! [`crate::pipeline::run_frame`].

extern crate alloc;
extern crate std;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use std::time::{Duration, Instant};

use tessera_core::ftp::{frame_macs, FusedStack, Grid, Mode, Partition, PlanError};
use tessera_core::kernel::{KernelError, Kernels, Portable, Reference};
use tessera_core::model::weights::Weights;
use tessera_core::model::{Layer, LayerKind, Network};
use tessera_core::region::{Region, Span};
use tessera_core::tensor::{FeatureView, FeatureViewMut, ViewError};

use crate::kernels::{fma_peak_loop, Fma, Form, Isa, Winograd};
use crate::layer_timer::{per_layer, KernelWork, LayerCalls, LayerTimer};
use crate::pipeline::{run_frame_in, AlignedBuf, FrameBuffers, FrameError};

/// Threads of the multi-core measurement.
pub const THREADS_MULTI: usize = 2;

/// What [`bench_layers`] measures.
#[derive(Clone, Copy, Debug)]
pub struct LayerBench {
    /// Timed repetitions of each run (the fastest is kept).
    pub reps: usize,
    /// Fraction of each layer's output rows the reference kernel computes.
    pub reference_rows: f64,
    /// Time only the FMA kernel (skip the slow reference and portable runs).
    pub fma_only: bool,
    /// Time the Winograd kernel in this form too (one and [`THREADS_MULTI`] threads).
    pub winograd: Option<Form>,
    /// Instruction set of the FMA and Winograd kernels (one this machine runs).
    pub isa: Isa,
}

/// Times of one layer (or of a sum of layers), in seconds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LayerTimes {
    /// What the layer is ("conv 3x3/1  32->64  304x304").
    pub name: String,
    /// Floating-point operations (`2·MACs`; 0 for a max pool).
    pub flop: f64,
    /// Reference kernel, scaled from its band to the whole layer (`None`: not measured).
    pub reference: Option<f64>,
    /// Portable kernel (`None`: not measured).
    pub portable: Option<f64>,
    /// FMA kernel, one thread.
    pub fma1: f64,
    /// FMA kernel, [`THREADS_MULTI`] threads.
    pub fma2: f64,
    /// Winograd kernel (direct FMA on the layers it does not transform), one thread.
    pub wino1: Option<f64>,
    /// Winograd kernel, [`THREADS_MULTI`] threads.
    pub wino2: Option<f64>,
    /// FMA kernel, one thread, on-CPU time ([`thread_cpu_seconds`]).
    pub fma1_cpu: Option<f64>,
    /// Winograd kernel, one thread, on-CPU time.
    pub wino1_cpu: Option<f64>,
}

impl LayerTimes {
    /// The sum of `rows` (a kernel's total is `None` when any layer lacks it), named `name`.
    pub fn total(name: &str, rows: &[LayerTimes]) -> LayerTimes {
        let opt = |f: fn(&LayerTimes) -> Option<f64>| rows.iter().map(f).sum::<Option<f64>>();
        LayerTimes {
            name: name.to_string(),
            flop: rows.iter().map(|r| r.flop).sum(),
            reference: opt(|r| r.reference),
            portable: opt(|r| r.portable),
            fma1: rows.iter().map(|r| r.fma1).sum(),
            fma2: rows.iter().map(|r| r.fma2).sum(),
            wino1: opt(|r| r.wino1),
            wino2: opt(|r| r.wino2),
            fma1_cpu: opt(|r| r.fma1_cpu),
            wino1_cpu: opt(|r| r.wino1_cpu),
        }
    }
}

/// Times of the full frame and of a 3×3 grid with reuse (one thread, the same kernels), with
/// the FLOP ratios and the per-layer breakdown; the outputs were equal bit for bit.
#[derive(Clone, Debug, PartialEq)]
pub struct TiledCheck {
    /// Full frame, seconds.
    pub full: f64,
    /// 3×3 grid with reuse, seconds.
    pub tiled: f64,
    /// Tiled FLOPs over full-frame FLOPs of the plan run (block-wise layers' regions aligned).
    pub flop_ratio: f64,
    /// The same with unaligned regions: what direct kernels compute (the bound's base).
    pub direct_flop_ratio: f64,
    /// Full frame and tiled, on-CPU seconds ([`thread_cpu_seconds`]).
    pub cpu: Option<(f64, f64)>,
    /// Full frame and tiled, the least wall-clock seconds a run spent outside its kernel
    /// calls (copies, strips, buffers). Each run's own: the least frame time less the layers'
    /// least times (which may come from other runs) would count the spread of nine times
    /// more calls as time outside them.
    pub outside: (f64, f64),
    /// Per layer of the stack, the kernel calls of the full and tiled runs (each layer's least
    /// time over the runs).
    pub layers: Vec<TiledLayer>,
}

/// The kernel calls of a tiled check summed over its layers ([`TiledCheck::kernel_sums`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct KernelSums {
    /// On-CPU seconds (else wall clock).
    pub cpu: bool,
    /// Full frame, seconds.
    pub full: f64,
    /// Tiled, seconds.
    pub tiled: f64,
    /// What tiled would take if each layer's time grew as its products (padded lanes
    /// included) from the full frame's: the time the extra work explains.
    pub by_work: f64,
}

/// One layer of the tiled check: its calls in the full frame and in the tiled frame.
#[derive(Clone, Debug, PartialEq)]
pub struct TiledLayer {
    /// What the layer is ([`layer_name`]).
    pub name: String,
    /// The full frame's calls.
    pub full: LayerCalls,
    /// The 3×3 grid's calls (all tiles).
    pub tiled: LayerCalls,
}

impl TiledCheck {
    /// Tiled time over full time.
    pub fn time_ratio(&self) -> f64 {
        self.tiled / self.full
    }

    /// Seconds of the full (`tiled` false) or tiled frame spent outside the kernel calls: the
    /// least over the runs of a run's time less its own calls' ([`TiledCheck::outside`]).
    pub fn outside_kernels(&self, tiled: bool) -> f64 {
        if tiled {
            self.outside.1
        } else {
            self.outside.0
        }
    }

    /// The layers' kernel times summed: on-CPU where every layer has it, else wall clock.
    pub fn kernel_sums(&self) -> KernelSums {
        let cpu = self.layers.iter().all(|l| l.full.cpu_seconds.is_some());
        let mut sums = KernelSums {
            cpu,
            ..KernelSums::default()
        };
        for l in &self.layers {
            let (f, t) = (l.full.time(cpu), l.tiled.time(cpu));
            let (pf, pt) = (l.full.work.products, l.tiled.work.products);
            sums.full += f;
            sums.tiled += t;
            // Pools (no products) count at their measured time.
            sums.by_work += if pf > 0 { f * pt as f64 / pf as f64 } else { t };
        }
        sums
    }

    /// Tiled over full on-CPU time (NaN when not measured).
    pub fn cpu_ratio(&self) -> f64 {
        self.cpu.map_or(f64::NAN, |(f, t)| t / f)
    }

    /// The bound: tiled time ≤ full time × (direct-plan FLOP ratio + 10 %): alignment's extra
    /// work counts against it.
    pub fn within_bound(&self) -> bool {
        self.time_ratio() <= self.direct_flop_ratio + 0.10
    }
}

/// Why a measurement failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// The fused stack or a grid is invalid.
    #[error("plan: {0}")]
    Plan(PlanError),
    /// A buffer does not fit its layer.
    #[error("buffer: {0}")]
    View(ViewError),
    /// Layer `layer` has no parameters in the weights.
    #[error("no parameters for layer {layer}")]
    Weights {
        /// The layer.
        layer: usize,
    },
    /// Layer `layer` is neither a convolution nor a max pool.
    #[error("layer {layer} is not fusable")]
    NotFusable {
        /// The layer.
        layer: usize,
    },
    /// A kernel refused layer `layer`.
    #[error("layer {layer}: {error}")]
    Kernel {
        /// The layer.
        layer: usize,
        /// Why.
        error: KernelError,
    },
    /// Running a frame failed.
    #[error("{0}")]
    Frame(FrameError),
    /// The 3×3 reuse output differs from the full frame's.
    #[error("tiled check: 3x3 reuse output differs from the full frame")]
    TiledDiffers,
    /// The kernels' instruction set does not run on this machine.
    #[error("instruction set {} is not available on this machine", .isa.name())]
    IsaUnavailable {
        /// The instruction set.
        isa: Isa,
    },
}

/// Seconds the calling thread has spent on a CPU (Linux: `/proc/thread-self/schedstat`, in
/// nanoseconds), `None` where that is not available. Unlike wall-clock time it does not count
/// time the thread waited for a core, so one-thread figures stay comparable on a loaded
/// machine (caches and memory bandwidth are still shared).
///
/// The kernel adds the running slice to that sum only when it updates the thread's
/// accounting (a scheduler tick, a switch), so this yields first: yielding updates it, and
/// the figure is then exact to the nanosecond rather than to a tick.
pub fn thread_cpu_seconds() -> Option<f64> {
    std::thread::yield_now();
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

/// The fastest of `reps` runs of `f` on this thread: (wall-clock seconds, on-CPU seconds of
/// this thread, when available).
fn best_cpu<F: FnMut() -> Result<(), BenchError>>(
    reps: usize,
    mut f: F,
) -> Result<(f64, Option<f64>), BenchError> {
    let (mut wall, mut cpu) = (f64::INFINITY, None::<f64>);
    for _ in 0..reps.max(1) {
        let c0 = thread_cpu_seconds();
        let start = Instant::now();
        f()?;
        wall = wall.min(start.elapsed().as_secs_f64());
        if let (Some(a), Some(b)) = (c0, thread_cpu_seconds()) {
            cpu = Some(cpu.map_or(b - a, |c| c.min(b - a)));
        }
    }
    Ok((wall, cpu))
}

/// The fastest of `reps` runs of `f`, wall-clock seconds.
fn best<F: FnMut() -> Result<(), BenchError>>(reps: usize, mut f: F) -> Result<f64, BenchError> {
    let mut t = f64::INFINITY;
    for _ in 0..reps.max(1) {
        let start = Instant::now();
        f()?;
        t = t.min(start.elapsed().as_secs_f64());
    }
    Ok(t)
}

/// Measured single-core FMA peak in GFLOP/s (best of 5 runs of ≈ 0.1 s).
pub fn peak_gflops(isa: Isa) -> f64 {
    let mut iters = 1u64 << 16;
    loop {
        let start = Instant::now();
        let (_, sum) = fma_peak_loop(isa, iters);
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
        iters *= 2;
    }
}

/// A short description of a fusable layer.
pub fn layer_name(layer: &Layer) -> String {
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
) -> Result<(), BenchError> {
    let mut ov = FeatureViewMut::new(out, region, layer.output.c).map_err(BenchError::View)?;
    let res = match &layer.kind {
        LayerKind::Conv(c) => {
            let p = weights.conv(l).ok_or(BenchError::Weights { layer: l })?;
            k.conv(c, layer.input, &p, input, &mut ov)
        }
        LayerKind::MaxPool(p) => k.maxpool(p, layer.input, input, &mut ov),
        _ => return Err(BenchError::NotFusable { layer: l }),
    };
    res.map_err(|error| BenchError::Kernel { layer: l, error })
}

/// Times layers `[0, upto)` of `net` on `image` (the network input, CHW); calls `on_layer`
/// with each layer's times as they come (a long run shows progress).
pub fn bench_layers(
    net: &Network,
    weights: &Weights<'_>,
    upto: usize,
    image: &[f32],
    bench: &LayerBench,
    mut on_layer: impl FnMut(usize, &LayerTimes),
) -> Result<Vec<LayerTimes>, BenchError> {
    let unavailable = || BenchError::IsaUnavailable { isa: bench.isa };
    let fma1 = Fma::with_isa(bench.isa).ok_or_else(unavailable)?;
    let fma2 = fma1.clone().with_threads(THREADS_MULTI);
    let wino1 = Winograd::new()
        .with_isa(bench.isa)
        .ok_or_else(unavailable)?
        .with_form(bench.winograd.unwrap_or(Form::F4))
        .prepare(weights);
    let wino2 = wino1.clone().with_threads(THREADS_MULTI);
    let mut cur = AlignedBuf::from_slice(image);
    let mut rows = Vec::new();
    for (l, layer) in net.layers().iter().take(upto).enumerate() {
        let (i, o) = (layer.input, layer.output);
        let iv = FeatureView::new(cur.as_slice(), Region::full(i.w, i.h), i.c)
            .map_err(BenchError::View)?;
        let full = Region::full(o.w, o.h);
        let mut out_buf = AlignedBuf::new(o.elements().unwrap_or(0));
        let out = out_buf.as_mut_slice();
        // Touch every page before timing (a fresh allocation is mapped lazily).
        out.fill(1.0);
        let mut row = LayerTimes {
            name: layer_name(layer),
            flop: 2.0 * layer.macs() as f64,
            ..LayerTimes::default()
        };
        (row.fma1, row.fma1_cpu) = best_cpu(bench.reps, || {
            run_layer(&fma1, layer, weights, l, &iv, out, full)
        })?;
        row.fma2 = best(bench.reps, || {
            run_layer(&fma2, layer, weights, l, &iv, out, full)
        })?;
        if bench.winograd.is_some() {
            let mut scratch = vec![1.0f32; out.len()];
            let (wall, cpu) = best_cpu(bench.reps, || {
                run_layer(&wino1, layer, weights, l, &iv, &mut scratch, full)
            })?;
            (row.wino1, row.wino1_cpu) = (Some(wall), cpu);
            row.wino2 = Some(best(bench.reps, || {
                run_layer(&wino2, layer, weights, l, &iv, &mut scratch, full)
            })?);
        }
        if !bench.fma_only {
            let mut scratch = vec![1.0f32; out.len()];
            row.portable = Some(best(bench.reps.min(2), || {
                run_layer(&Portable, layer, weights, l, &iv, &mut scratch, full)
            })?);
            let band = ((o.h as f64 * bench.reference_rows).ceil() as u32).clamp(1, o.h);
            let y0 = (o.h - band) / 2;
            let sub = Region::new(Span::new(0, o.w), Span::new(y0, y0 + band));
            let t = best(1, || {
                run_layer(&Reference, layer, weights, l, &iv, &mut scratch, sub)
            })?;
            row.reference = Some(t * o.h as f64 / band as f64);
        }
        on_layer(l, &row);
        rows.push(row);
        cur = out_buf;
    }
    Ok(rows)
}

/// Runs `input` through `stack` whole and as a 3×3 grid with reuse (kernels `k`, the stack
/// aligned to them), best of `reps` each, the two alternating run for run; refuses outputs
/// that differ in any bit. `stack` is
/// the unaligned stack (its plan gives the direct FLOP ratio). Every kernel call is timed
/// ([`LayerTimer`]); each layer's time is its least over the runs, by the wall clock and, in
/// as many runs again, on the CPU.
pub fn tiled_check<K: Kernels + KernelWork>(
    k: &K,
    stack: &FusedStack<'_>,
    weights: &Weights<'_>,
    input: &[f32],
    reps: usize,
) -> Result<TiledCheck, BenchError> {
    let one = Grid::new(1, 1, Partition::Darknet, stack).map_err(BenchError::Plan)?;
    let three = Grid::new(3, 3, Partition::Darknet, stack).map_err(BenchError::Plan)?;
    let timer = LayerTimer::new(k, stack, weights);
    // Each frame's buffers are made once, as a node makes its own: the runs time the layers,
    // not the allocator (a whole frame's buffers are several times a tile's, and their pages
    // would be faulted in and zeroed anew every run).
    let buffers = |grid: &Grid, mode: Mode| {
        FrameBuffers::new(&timer, stack, grid, mode).map_err(BenchError::Frame)
    };
    let (mut bufs_one, mut bufs_three) =
        (buffers(&one, Mode::Plain)?, buffers(&three, Mode::Reuse)?);
    // One timed run of `grid` folded into `best`.
    let rep = |grid: &Grid,
               mode: Mode,
               bufs: &mut FrameBuffers,
               best: &mut Option<FrameRun>|
     -> Result<(), BenchError> {
        let c0 = thread_cpu_seconds();
        let start = Instant::now();
        let stats = run_frame_in(&timer, stack, weights, grid, mode, input, bufs)
            .map_err(BenchError::Frame)?;
        let wall = start.elapsed().as_secs_f64();
        let cpu = c0.zip(thread_cpu_seconds()).map(|(a, b)| b - a);
        let layers = per_layer(k, stack, &timer.take());
        // This run's time outside its own kernel calls.
        let outside = wall - layers.iter().map(|l| l.seconds).sum::<f64>();
        match best.as_mut() {
            Some(b) => {
                b.outside = b.outside.min(outside);
                // Each layer's least time over the runs: one disturbed call (a loaded
                // machine) then spoils one run's layer, not the breakdown.
                least(&mut b.layers, &layers);
                b.wall = b.wall.min(wall);
                b.cpu = match (b.cpu, cpu) {
                    (Some(x), Some(y)) => Some(x.min(y)),
                    (x, y) => x.or(y),
                };
            }
            None => {
                *best = Some(FrameRun {
                    wall,
                    outside,
                    cpu,
                    out: bufs.output().to_vec(),
                    macs: stats.macs,
                    layers,
                })
            }
        }
        Ok(())
    };
    // The full frame and the tiles alternate, run for run: a slow spell of the machine (other
    // processes, a host's neighbours) then falls on both, not on one side of the ratio.
    let (mut full, mut tiled) = (None, None);
    for _ in 0..reps.max(1) {
        rep(&one, Mode::Plain, &mut bufs_one, &mut full)?;
        rep(&three, Mode::Reuse, &mut bufs_three, &mut tiled)?;
    }
    // `reps.max(1)` runs each: there is a fastest.
    let (mut full, mut tiled) = full.zip(tiled).ok_or(BenchError::TiledDiffers)?;
    // Then each layer's on-CPU time, in runs of their own (each reading yields), alternating
    // as well.
    if let Some(on_cpu) = LayerTimer::new(k, stack, weights).on_cpu() {
        let (mut cpu_full, mut cpu_tiled): (Option<Vec<LayerCalls>>, Option<Vec<LayerCalls>>) =
            (None, None);
        for _ in 0..reps.max(1) {
            for (grid, mode, bufs, acc) in [
                (&one, Mode::Plain, &mut bufs_one, &mut cpu_full),
                (&three, Mode::Reuse, &mut bufs_three, &mut cpu_tiled),
            ] {
                run_frame_in(&on_cpu, stack, weights, grid, mode, input, bufs)
                    .map_err(BenchError::Frame)?;
                let layers = per_layer(k, stack, &on_cpu.take());
                match acc.as_mut() {
                    Some(c) => least(c, &layers),
                    None => *acc = Some(layers),
                }
            }
        }
        for (run, cpu) in [(&mut full, cpu_full), (&mut tiled, cpu_tiled)] {
            for (b, c) in run.layers.iter_mut().zip(cpu.iter().flatten()) {
                b.cpu_seconds = Some(c.seconds);
            }
        }
    }
    let same = full.out.len() == tiled.out.len()
        && full
            .out
            .iter()
            .zip(&tiled.out)
            .all(|(a, b)| a.to_bits() == b.to_bits());
    if !same {
        return Err(BenchError::TiledDiffers);
    }
    let plain = frame_macs(stack, &three, Mode::Reuse).map_err(BenchError::Plan)?;
    let layers = stack
        .layers()
        .iter()
        .zip(full.layers.iter().zip(&tiled.layers))
        .map(|(layer, (f, t))| TiledLayer {
            name: layer_name(layer),
            full: *f,
            tiled: *t,
        })
        .collect();
    Ok(TiledCheck {
        full: full.wall,
        tiled: tiled.wall,
        outside: (full.outside, tiled.outside),
        cpu: full.cpu.zip(tiled.cpu),
        flop_ratio: tiled.macs as f64 / full.macs as f64,
        direct_flop_ratio: plain as f64 / full.macs as f64,
        layers,
    })
}

/// Lowers each layer's seconds in `into` to those in `other` where less.
fn least(into: &mut [LayerCalls], other: &[LayerCalls]) {
    for (a, b) in into.iter_mut().zip(other) {
        a.seconds = a.seconds.min(b.seconds);
    }
}

/// A frame's timed runs: the least wall-clock time, the least on-CPU time, the least time of
/// each layer, and the first run's output.
struct FrameRun {
    wall: f64,
    /// The least time outside the kernel calls within one run.
    outside: f64,
    /// The least on-CPU seconds over the runs.
    cpu: Option<f64>,
    out: Vec<f32>,
    macs: u64,
    layers: Vec<LayerCalls>,
}
