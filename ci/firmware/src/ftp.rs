//! Checks through the FTP API: every tile of a grid run with `exec::run_tile` (its input cropped
//! to the tile's own cone, buffers sized by `MemoryPlan`), stitched, must equal the 1×1 grid
//! run bit for bit, in Plain and Reuse mode.

use core::fmt::Write;

use tessera_core::exec::{
    run_tile, ArrayStripStore, ExecError, NoStrips, StripStore, TileInput, TileJob,
};
use tessera_core::ftp::{FusedStack, Grid, Level, MemoryPlan, Mode, Partition, TilePlan};
use tessera_core::kernel::{Kernels, Portable, Reference};
use tessera_core::tensor::{copy_overlap, FeatureView, FeatureViewMut};
use tessera_core::Region;

use crate::name::Name;
use crate::net::{compare, Failure, Fixture, INPUT, INPUT_LEN, LAYERS, MAP_CAP, OUTPUT_LEN};

/// Strip store capacity: up to 9 tiles × 4 layers × 4 sides strips, 8 Ki values.
type Store = ArrayStripStore<160, 8192>;

/// Grids checked: `(rows, cols, partition)`.
const GRIDS: [(u32, u32, Partition); 5] = [
    (2, 2, Partition::Darknet),
    (3, 3, Partition::Darknet),
    (3, 3, Partition::Balanced),
    (2, 3, Partition::Balanced),
    (4, 4, Partition::Darknet),
];

/// Runs every FTP check, reporting each through `record`.
pub fn checks(fx: &Fixture, record: &mut impl FnMut(&str, Result<(), Failure>)) {
    let mut full = [f32::NAN; OUTPUT_LEN];
    let base = frame(
        fx,
        &Reference,
        1,
        1,
        Partition::Darknet,
        Mode::Plain,
        None,
        &mut full,
    )
    .and_then(|_| compare(&full, &fx.full, Region::full(8, 8)));
    record("ftp: 1x1 grid run_tile == direct kernel full frame", base);
    for (rows, cols, partition) in GRIDS {
        for mode in [Mode::Plain, Mode::Reuse] {
            for (kname, portable) in [("reference", false), ("portable", true)] {
                let mut name = Name::new();
                let _ = write!(
                    name,
                    "ftp: {kname} {mode:?} {rows}x{cols} {partition:?} == 1x1 grid"
                );
                let mut got = [f32::NAN; OUTPUT_LEN];
                let res = if portable {
                    frame(fx, &Portable, rows, cols, partition, mode, None, &mut got)
                } else {
                    frame(fx, &Reference, rows, cols, partition, mode, None, &mut got)
                };
                record(
                    name.as_str(),
                    res.and_then(|_| compare(&got, &full, Region::full(8, 8))),
                );
            }
        }
    }
    // Reuse with one level-1 tile falling back to Plain (its neighbours' strips "lost").
    let mut got = [f32::NAN; OUTPUT_LEN];
    let res = frame(
        fx,
        &Portable,
        3,
        3,
        Partition::Darknet,
        Mode::Reuse,
        Some(1),
        &mut got,
    )
    .and_then(|_| compare(&got, &full, Region::full(8, 8)));
    record("ftp: Reuse 3x3 with tile 1 falling back to Plain", res);
    record(
        "ftp: reduced tile without strips reports MissingStrip",
        missing_strip(fx),
    );
}

/// Runs one frame on a `rows × cols` grid in `mode` and stitches the tiles into `result`
/// (8×8×4 CHW). `fallback`: a tile run in Plain mode whatever `mode` says.
#[allow(clippy::too_many_arguments)]
fn frame<K: Kernels>(
    fx: &Fixture,
    k: &K,
    rows: u32,
    cols: u32,
    partition: Partition,
    mode: Mode,
    fallback: Option<usize>,
    result: &mut [f32; OUTPUT_LEN],
) -> Result<(), Failure> {
    let stack = FusedStack::new(&fx.net, LAYERS).map_err(Failure::Plan)?;
    let grid = Grid::new(rows, cols, partition, &stack).map_err(Failure::Plan)?;
    let mem = MemoryPlan::new(&stack, &grid, mode).map_err(Failure::Plan)?;
    if mem.tile_buffer_elems > MAP_CAP
        || mem.tile_input_elems > INPUT_LEN
        || mem.tile_output_elems > OUTPUT_LEN
    {
        return Err(Failure::Capacity);
    }
    if mode == Mode::Reuse && grid.tile_count() > 1 && mem.strip_bytes == 0 {
        return Err(Failure::Ftp("Reuse plan exchanges no strip"));
    }
    let weights = fx.weights()?;
    let full_in = fx.input_view()?;
    let out_shape = stack.output();
    // Exactly the sizes the memory plan asks for: run_tile rejects anything shorter.
    let mut a = [f32::NAN; MAP_CAP];
    let mut b = [f32::NAN; MAP_CAP];
    let (a, b) = (
        &mut a[..mem.tile_buffer_elems],
        &mut b[..mem.tile_buffer_elems],
    );
    let mut store = Store::new();
    let mut reduced = 0;
    for t in grid.schedule() {
        let m = if fallback == Some(t) {
            Mode::Plain
        } else {
            mode
        };
        let plan = TilePlan::new(&stack, &grid, t, m).map_err(Failure::Plan)?;
        reduced += plan.is_reduced() as u32;
        // The tile sees only its own input cone.
        let mut own = [f32::NAN; INPUT_LEN];
        let mut iv = FeatureViewMut::new(&mut own, plan.input(0), INPUT.c)?;
        copy_overlap(&full_in, &mut iv);
        let tile_in = iv.as_view();
        let mut out = [f32::NAN; OUTPUT_LEN];
        let got = run_tile(
            TileJob {
                kernels: k,
                stack: &stack,
                weights: &weights,
                plan: &plan,
                input: TileInput::View(&tile_in),
                buf_a: &mut *a,
                buf_b: &mut *b,
                strips: &mut store,
            },
            &mut out,
        )
        .map_err(Failure::Exec)?;
        if got.region() != grid.tile_region(t) {
            return Err(Failure::Ftp("run_tile returned another region"));
        }
        let mut dst = FeatureViewMut::new(
            &mut result[..],
            Region::full(out_shape.w, out_shape.h),
            out_shape.c,
        )?;
        copy_overlap(&got, &mut dst);
    }
    if mode == Mode::Reuse && grid.tile_count() > 1 {
        if reduced == 0 {
            return Err(Failure::Ftp("no level-1 tile ran reduced"));
        }
        if store.is_empty() {
            return Err(Failure::Ftp("no strip was stored"));
        }
    }
    Ok(())
}

/// A level-1 Reuse tile run before its neighbours must fail with `MissingStrip`.
fn missing_strip(fx: &Fixture) -> Result<(), Failure> {
    let stack = FusedStack::new(&fx.net, LAYERS).map_err(Failure::Plan)?;
    let grid = Grid::new(2, 2, Partition::Darknet, &stack).map_err(Failure::Plan)?;
    let t = (0..grid.tile_count())
        .find(|&t| grid.level(t) == Level::One)
        .ok_or(Failure::Ftp("no level-1 tile"))?;
    let plan = TilePlan::new(&stack, &grid, t, Mode::Reuse).map_err(Failure::Plan)?;
    let weights = fx.weights()?;
    let mut a = [0.0f32; MAP_CAP];
    let mut b = [0.0f32; MAP_CAP];
    let mut out = [0.0f32; OUTPUT_LEN];
    let input = FeatureView::new(&fx.input, Region::full(INPUT.w, INPUT.h), INPUT.c)?;
    let mut none = NoStrips;
    if none.get(0, 0, tessera_core::ftp::Side::Below).is_some() {
        return Err(Failure::Ftp("NoStrips returned a strip"));
    }
    match run_tile(
        TileJob {
            kernels: &Reference,
            stack: &stack,
            weights: &weights,
            plan: &plan,
            input: TileInput::View(&input),
            buf_a: &mut a,
            buf_b: &mut b,
            strips: &mut none,
        },
        &mut out,
    ) {
        Err(ExecError::MissingStrip { .. }) => Ok(()),
        Err(e) => Err(Failure::Exec(e)),
        Ok(_) => Err(Failure::Ftp("ran without strips")),
    }
}
