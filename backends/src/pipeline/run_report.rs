//! What `tessera layers` and `tessera detect` print of a run on one machine: work, time and
//! GFLOP/s, the memory plan of the tiles against the full frame ([`layers_report`]); the time
//! in the fused stack, the tail and decoding, and the boxes found ([`detect_report`]).

extern crate alloc;

use alloc::format;
use alloc::string::String;
use core::fmt::Write as _;

use tessera_core::ftp::{FusedStack, Grid, MemoryPlan, Mode, PlanError};
use tessera_core::model::Network;

use super::{class_name, FrameDetections, FrameStats, PixelBox};

const MIB: f64 = 1024.0 * 1024.0;

/// The report of [`super::run_frame`]'s run of `stack` over `grid` in `mode` with `kernel`
/// (its name), `stats` and `secs` seconds.
pub fn layers_report(
    kernel: &str,
    stack: &FusedStack<'_>,
    grid: &Grid,
    mode: Mode,
    stats: &FrameStats,
    secs: f64,
) -> Result<String, PlanError> {
    let out = stack.output();
    let full_macs = stack.network().macs(stack.len());
    let mut text = format!(
        "layers [0, {}) {}x{}x{} -> {}x{}x{}, grid {}x{}{}, kernel {kernel}\n",
        stack.len(),
        stack.input().w,
        stack.input().h,
        stack.input().c,
        out.w,
        out.h,
        out.c,
        grid.rows(),
        grid.cols(),
        if mode == Mode::Reuse {
            " with reuse"
        } else {
            ""
        },
    );
    let _ = writeln!(
        text,
        "time {:.3} s for {} tiles, {:.2} GFLOP ({:.3}x the full frame's {:.2} GFLOP), {:.1} GFLOP/s",
        secs,
        stats.tiles,
        2.0 * stats.macs as f64 / 1e9,
        stats.macs as f64 / full_macs as f64,
        2.0 * full_macs as f64 / 1e9,
        2.0 * stats.macs as f64 / 1e9 / secs,
    );
    let memory = MemoryPlan::new(stack, grid, mode)?;
    let weight_bytes = MemoryPlan::weight_bytes(stack)?;
    let _ = writeln!(
        text,
        "memory: tile peak {:.2} MiB (in+out of a layer), ping-pong buffers 2 x {:.2} MiB; full frame peak {:.2} MiB ({:.0} % less per device); fused weights {:.2} MiB",
        memory.tile_peak_bytes as f64 / MIB,
        memory.tile_buffer_elems as f64 * 4.0 / MIB,
        memory.full_peak_bytes as f64 / MIB,
        100.0 * (1.0 - memory.tile_peak_bytes as f64 / memory.full_peak_bytes as f64),
        weight_bytes as f64 / MIB,
    );
    let _ = writeln!(
        text,
        "traffic: layer-0 inputs {:.2} MiB, strips {:.2} MiB",
        memory.input_bytes as f64 / MIB,
        stats.strip_bytes as f64 / MIB,
    );
    Ok(text)
}

/// How a detection run was set up, for [`detect_report`].
#[derive(Clone, Copy, Debug)]
pub struct DetectRun<'a> {
    /// The image's size.
    pub image: (usize, usize),
    /// Tile grid (rows, columns) of the fused stack.
    pub grid: (u32, u32),
    /// Data-reuse scheduling.
    pub reuse: bool,
    /// The kernels' name.
    pub kernel: &'a str,
    /// Layers `[0, upto)` ran tile by tile.
    pub upto: usize,
    /// Detection and NMS thresholds.
    pub thresh: f32,
    /// NMS IoU threshold.
    pub nms: f32,
    /// Boxes listed (most probable first).
    pub show: usize,
}

/// The report of [`super::detect_frame`]'s run of `net`: times and GFLOP of the fused stack
/// and the tail, then up to `run.show` boxes in image pixels.
pub fn detect_report(net: &Network, run: &DetectRun<'_>, frame: &FrameDetections) -> String {
    let all = net.layers().len();
    let gflop = |from: usize, to: usize| 2.0 * (net.macs(to) - net.macs(from)) as f64 / 1e9;
    let (w, h) = run.image;
    let mut report = format!(
        "{}x{} image, grid {}x{}{}, kernel {}: layers [0, {}) {:.3} s ({:.1} GFLOP), tail [{}, {}) \
         {:.3} s ({:.1} GFLOP), decode+nms {:.4} s; {} boxes (thresh {}, nms {})\n",
        w,
        h,
        run.grid.0,
        run.grid.1,
        if run.reuse { " with reuse" } else { "" },
        run.kernel,
        run.upto,
        frame.stack_secs,
        gflop(0, run.upto),
        run.upto,
        all,
        frame.tail_secs,
        gflop(run.upto, all),
        frame.decode_secs,
        frame.detections.len(),
        run.thresh,
        run.nms,
    );
    for d in frame.detections.iter().take(run.show) {
        let b = PixelBox::of(d, w, h);
        let _ = writeln!(
            report,
            "{}: {:.0}% ({}, {})-({}, {})",
            class_name(d.class),
            d.prob * 100.0,
            b.left,
            b.top,
            b.right,
            b.bottom
        );
    }
    if frame.detections.len() > run.show {
        let _ = writeln!(report, "... {} more", frame.detections.len() - run.show);
    }
    report
}
