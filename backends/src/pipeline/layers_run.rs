//! The fused layers on one machine with any kernel set ([`run_layers`]): reference,
//! portable, SIMD or Winograd (one form, or planned per layer), over a grid, timed and
//! reported — what `tessera layers` runs.

extern crate alloc;
extern crate std;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use std::time::Instant;

use tessera_core::ftp::{FusedStack, Grid, Mode, Partition, PlanError};
use tessera_core::kernel::{Portable, Reference};
use tessera_core::model::weights::{Weights, WeightsError};
use tessera_core::model::Network;

use super::{layers_report, run_frame, FrameError, KernelChoice};
use crate::kernels::{Fma, Form, Winograd};
use crate::model_files::{ModelFileError, ModelFiles};

/// The kernels of a run on one machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayersKernel {
    /// Plain loops (the oracle).
    Reference,
    /// Blocked portable kernel (bit-identical to the reference).
    Portable,
    /// FMA SIMD kernel.
    Simd,
    /// Winograd in one form on 3x3 stride-1 layers, SIMD elsewhere.
    Winograd(Form),
    /// F4, F2 or direct per layer, as the cost model chooses for a grid and mode.
    WinogradPlanned,
    /// SIMD where there is a vector path, portable elsewhere ([`KernelChoice::auto`]).
    Auto,
}

impl LayersKernel {
    /// `Auto` resolved for this machine; every other kernel as it is.
    pub fn resolved(self) -> LayersKernel {
        match (self, KernelChoice::auto()) {
            (LayersKernel::Auto, KernelChoice::Simd) => LayersKernel::Simd,
            (LayersKernel::Auto, KernelChoice::Portable) => LayersKernel::Portable,
            (k, _) => k,
        }
    }

    /// The name reports give it (as the command line spells the choice).
    fn name(self) -> &'static str {
        match self {
            LayersKernel::Reference => "Reference",
            LayersKernel::Portable => "Portable",
            LayersKernel::Simd => "Simd",
            LayersKernel::Winograd(Form::F4) => "Winograd",
            LayersKernel::Winograd(Form::F2) => "WinogradF2",
            LayersKernel::WinogradPlanned => "WinogradPlanned",
            LayersKernel::Auto => "Auto",
        }
    }
}

/// How the layers are split and run.
#[derive(Clone, Copy, Debug)]
pub struct LayersSetup {
    /// Layers `[0, upto)`.
    pub upto: usize,
    /// Tile grid (rows, columns); `(1, 1)` runs the frame whole.
    pub grid: (u32, u32),
    /// Grid rule.
    pub partition: Partition,
    /// Plain tiles or data reuse.
    pub mode: Mode,
    /// Kernel set.
    pub kernel: LayersKernel,
    /// Threads per conv of the SIMD and Winograd kernels.
    pub threads: usize,
    /// With [`LayersKernel::WinogradPlanned`]: plan for this grid and mode instead of the
    /// one run (so a whole-frame run can use a tiled plan's choice).
    pub plan: Option<((u32, u32), Mode)>,
}

/// What [`run_layers`] produced.
#[derive(Debug)]
pub struct LayersRun {
    /// The output of layer `upto − 1` (CHW).
    pub output: Vec<f32>,
    /// The report: work, time, GFLOP/s and the memory plan.
    pub report: String,
    /// The Winograd forms chosen per layer (planned runs only).
    pub forms: Option<String>,
}

/// Why the layers could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayersError {
    /// The layers cannot be fused.
    #[error("fusing layers [0, {upto}): {error}")]
    Fuse {
        /// Layers asked for.
        upto: usize,
        /// Why.
        error: PlanError,
    },
    /// The grid does not fit the stack.
    #[error("grid {rows}x{cols}: {error}")]
    Grid {
        /// Rows.
        rows: u32,
        /// Columns.
        cols: u32,
        /// Why.
        error: PlanError,
    },
    /// The parameters could not be read.
    #[error(transparent)]
    Params(#[from] ModelFileError),
    /// The parameters do not cover the layers.
    #[error("viewing the weights: {0}")]
    Weights(#[from] WeightsError),
    /// The cost model could not choose the Winograd forms.
    #[error("choosing the winograd forms: {0}")]
    Forms(PlanError),
    /// A tile failed.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The memory plan of the report was refused.
    #[error("planning memory: {0}")]
    Report(PlanError),
}

/// `(rows, cols)` of `stack` as a grid.
fn grid_of(
    (rows, cols): (u32, u32),
    partition: Partition,
    stack: &FusedStack<'_>,
) -> Result<Grid, LayersError> {
    Grid::new(rows, cols, partition, stack).map_err(|error| LayersError::Grid { rows, cols, error })
}

/// Runs layers `[0, setup.upto)` of `net` over `input`, the network input, as `setup` says;
/// the layers' parameters come from `model` once the layers are known to fuse.
pub fn run_layers(
    net: &Network,
    model: &ModelFiles,
    input: &[f32],
    setup: &LayersSetup,
) -> Result<LayersRun, LayersError> {
    let upto = setup.upto;
    let stack = FusedStack::new(net, upto).map_err(|error| LayersError::Fuse { upto, error })?;
    let params = model.params(net, upto)?;
    let weights = Weights::new(net, upto, &params)?;
    let grid = grid_of(setup.grid, setup.partition, &stack)?;
    let mode = setup.mode;
    let kernel = setup.kernel.resolved();
    let threads = setup.threads;
    let mut forms = None;
    let t0 = Instant::now();
    let (output, stats) = match kernel {
        LayersKernel::Reference => run_frame(&Reference, &stack, &weights, &grid, mode, input)?,
        LayersKernel::Simd => {
            let simd = Fma::new().with_threads(threads);
            run_frame(&simd, &stack, &weights, &grid, mode, input)?
        }
        LayersKernel::Winograd(form) => {
            let wino = Winograd::new()
                .with_form(form)
                .with_threads(threads)
                .prepare(&weights);
            run_frame(&wino, &stack, &weights, &grid, mode, input)?
        }
        LayersKernel::WinogradPlanned => {
            let (plan_grid, plan_mode) = match setup.plan {
                Some((g, m)) => (grid_of(g, setup.partition, &stack)?, m),
                None => (grid, mode),
            };
            let wino = Winograd::new()
                .with_threads(threads)
                .planned(&stack, &plan_grid, plan_mode)
                .map_err(LayersError::Forms)?;
            forms = Some(format!("{:?}", wino.layer_forms(&stack)));
            let wino = wino.prepare(&weights);
            run_frame(&wino, &stack, &weights, &grid, mode, input)?
        }
        LayersKernel::Portable | LayersKernel::Auto => {
            run_frame(&Portable, &stack, &weights, &grid, mode, input)?
        }
    };
    let secs = t0.elapsed().as_secs_f64();
    let report = layers_report(kernel.name(), &stack, &grid, mode, &stats, secs)
        .map_err(LayersError::Report)?;
    Ok(LayersRun {
        output,
        report,
        forms,
    })
}
