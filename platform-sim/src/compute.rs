//! Simulated computation: every job takes `FLOPs / rate × slowdown` of virtual time; the
//! result is either computed for real (`driver::compute::execute` with the portable kernels,
//! for small nets whose outputs are checked) or, in the cost model, a zero-filled output of
//! the right shape (and zero strips of the right regions), labelled as such in every report.
//!
//! # Default rate
//!
//! `PI3_GFLOPS = 1.53`: calibrated to the papers' own single-device time, not to a kernel
//! benchmark. The DeepThings evaluation reports MoDNN at 8.1 s and 2.1× on 6 devices, i.e. 17.0 s for YOLOv2's
//! fused layers 0–15 on one Pi 3 (darknet-nnpack); those layers are 13.0 G multiply-adds =
//! 26.0 GFLOP (docs/design.md §1.2), hence 26.0 / 17.0 = 1.53 GFLOP/s. It keeps the
//! compute/communication ratio of the papers' testbed, which decides every speedup.
//! `PI3_NEON_GFLOPS = 3.0` is what a good 4-core NEON conv kernel reaches on the Pi 3's
//! Cortex-A53 at 1.2 GHz (peak 4 cores × 1.2 GHz × 4 FLOP/cycle = 19.2 GFLOP/s; 15–20 %
//! efficiency for direct/GEMM conv with 1 GB of LPDDR2 is typical); `--gflops 3` selects it.
//!
//! [`pi3_neon_gflops`] derives a Pi 3 rate from Tessera's own NEON direct kernel instead, by
//! instruction counts (docs/report.md, "A Pi 3 at our NEON kernels' speed"): the micro-kernel
//! (`backends/src/kernels/neon.rs`) computes a tile of 6 output channels × 16 columns of one
//! output row; each step (one input channel and kernel tap) issues 24 `fmla` on q registers,
//! 4 input loads and 6 weight broadcasts. A Cortex-A53 issues one 128-bit `fmla` every two
//! cycles and its loads beside them, so a step takes [`NEON_STEP_CYCLES`]; a layer takes
//! ⌈C_out/6⌉ × ⌈W_out/16⌉ × H_out × C_in·k² steps, split over the 4 cores, at 1.2 GHz.
//! Nothing else is charged (no cache miss, no thread start, no pool, no throttling): an upper
//! bound on the speed our kernels could reach on a Pi 3, not a measurement.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use tessera_backends::driver::{execute, Done, Executor, Job, Model, ModelError, Strip, Strips};
use tessera_core::exec::scratch_elems;
use tessera_core::ftp::{tile_macs, Side};
use tessera_core::kernel::Portable;
use tessera_core::model::LayerKind;
use tessera_core::runtime::Work;
use tessera_core::tensor::region_len;
use tessera_core::wire::NodeId;

use crate::job_clock::{JobClock, PendingJob};

/// Pi 3 rate calibrated to the DeepThings evaluation's single-device time (see the module docs), GFLOP/s.
pub const PI3_GFLOPS: f64 = 1.53;
/// A good NEON kernel on a Pi 3 (see the module docs), GFLOP/s.
pub const PI3_NEON_GFLOPS: f64 = 3.0;

/// Cortex-A53 clock of a Raspberry Pi 3 B, Hz.
pub const PI3_CLOCK_HZ: f64 = 1.2e9;
/// Cortex-A53 cores of a Pi 3, each running a share of a layer's output channels.
pub const PI3_CORES: u32 = 4;
/// Output channels × columns of one NEON micro-kernel tile (6 × 4 vectors of 4 lanes).
pub const NEON_TILE: (u32, u32) = (6, 16);
/// Cycles of one micro-kernel step: 24 `fmla` at one per two cycles (the step's 4 loads and 6
/// broadcasts dual-issue beside them).
pub const NEON_STEP_CYCLES: u64 = 48;

/// The rate Tessera's NEON direct kernel reaches on a Pi 3 over `model`'s fused convolutions by
/// instruction counts (see the module docs): their FLOPs over the cycles of their micro-kernel
/// steps on [`PI3_CORES`] cores at [`PI3_CLOCK_HZ`], GFLOP/s.
pub fn pi3_neon_gflops(model: &Model) -> f64 {
    let Ok(stack) = model.stack() else { return 0.0 };
    let (mut flops, mut cycles) = (0u64, 0u64);
    for l in stack.layers() {
        let LayerKind::Conv(c) = &l.kind else {
            continue;
        };
        let taps = (l.input.c * c.size * c.size) as u64;
        let (o, i) = (l.output, NEON_TILE);
        let steps = o.c.div_ceil(i.0) as u64 * o.w.div_ceil(i.1) as u64 * o.h as u64 * taps;
        cycles += steps * NEON_STEP_CYCLES;
        flops += 2 * (o.c * o.w * o.h) as u64 * taps;
    }
    let seconds = cycles as f64 / PI3_CORES as f64 / PI3_CLOCK_HZ;
    flops as f64 / seconds.max(f64::MIN_POSITIVE) / 1e9
}

/// How jobs are computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernels {
    /// Real kernels (values checked); timing from the cost model all the same.
    Real,
    /// Zero-filled outputs of the right size; timing from the cost model.
    CostOnly,
}

/// One job as it ran, for the Gantt view and the trace.
#[derive(Clone, Copy, Debug)]
pub struct JobRecord {
    /// Node index in the world.
    pub node: usize,
    /// Node id in its cluster.
    pub id: NodeId,
    /// The work.
    pub work: Work,
    /// Start, µs.
    pub start: u64,
    /// End, µs.
    pub end: u64,
    /// FLOPs charged.
    pub flops: u64,
}

/// State shared between a node's executor and the simulator.
pub type ExecShared = JobClock<JobRecord>;

/// FLOPs of `work` (2 per multiply-add; pooling is not counted, as in `ftp::tile_macs`).
pub fn job_flops(model: &Model, work: &Work) -> u64 {
    let Ok(stack) = model.stack() else { return 0 };
    match *work {
        Work::Tile { tile, mode, .. } => model
            .plan(tile, mode)
            .map_or(0, |p| 2 * tile_macs(&stack, &p)),
        Work::Layer { layer, output, .. } => match stack.layers().get(layer as usize) {
            Some(l) => match &l.kind {
                LayerKind::Conv(c) => {
                    2 * output.area()
                        * l.output.c as u64
                        * l.input.c as u64
                        * (c.size * c.size) as u64
                }
                _ => 0,
            },
            None => 0,
        },
    }
}

/// The cost model's result: zero-filled output (and strips) of the shapes `execute` returns.
pub fn zero_done(model: &Model, job: Job) -> Result<Done, ModelError> {
    let stack = model.stack()?;
    match job.work {
        Work::Tile { tile, mode, .. } => {
            let plan = model.plan(tile, mode)?;
            let last = stack.len() - 1;
            let region = plan.output(last);
            let out_c = stack.output().c;
            let n = region_len(&region, out_c).map_err(|e| ModelError::Exec(e.into()))?;
            let mut strips = Strips::new();
            for (l, layer) in stack.layers().iter().enumerate().take(last) {
                for side in Side::ALL {
                    let r = plan.send(l, side);
                    if r.is_empty() {
                        continue;
                    }
                    let len =
                        region_len(&r, layer.output.c).map_err(|e| ModelError::Exec(e.into()))?;
                    let strip = Strip {
                        region: r,
                        channels: layer.output.c,
                        data: vec![0.0; len],
                    };
                    strips.insert((tile, l as u8, side.index() as u8), strip);
                }
            }
            let scratch = scratch_elems(&stack, &plan).map_err(ModelError::Exec)?;
            let given: usize = job.strips.values().map(|s| s.data.len() * 4).sum();
            let made: usize = strips.values().map(|s| s.data.len() * 4).sum();
            Ok(Done {
                work: job.work,
                region,
                output: vec![0.0; n],
                strips,
                buffer_bytes: 4 * (job.input.len() + 2 * scratch + n) + given + made,
            })
        }
        Work::Layer { layer, output, .. } => {
            let c = stack.layers().get(layer as usize).map_or(0, |l| l.output.c);
            let n = region_len(&output, c).map_err(|e| ModelError::Exec(e.into()))?;
            Ok(Done {
                work: job.work,
                region: output,
                output: vec![0.0; n],
                strips: Strips::new(),
                buffer_bytes: 4 * (job.input.len() + n),
            })
        }
    }
}

/// A node's executor in virtual time.
pub struct SimExecutor {
    shared: Rc<RefCell<ExecShared>>,
    model: Arc<Model>,
    kernels: Kernels,
    flops_per_us: f64,
    node: usize,
    id: NodeId,
    pending: PendingJob<Result<Done, ModelError>>,
}

impl SimExecutor {
    /// An executor of node `node` (id `id`) at `gflops`.
    pub fn new(
        shared: Rc<RefCell<ExecShared>>,
        model: Arc<Model>,
        kernels: Kernels,
        gflops: f64,
        node: usize,
        id: NodeId,
    ) -> SimExecutor {
        SimExecutor {
            shared,
            model,
            kernels,
            flops_per_us: gflops * 1e3,
            node,
            id,
            pending: PendingJob::default(),
        }
    }
}

impl Executor for SimExecutor {
    fn start(&mut self, job: Job) {
        let mut sh = self.shared.borrow_mut();
        let flops = job_flops(&self.model, &job.work);
        let (start, end) = sh.begin(flops as f64 / self.flops_per_us);
        sh.jobs.push(JobRecord {
            node: self.node,
            id: self.id,
            work: job.work,
            start: start.total_micros(),
            end: end.total_micros(),
            flops,
        });
        let done = match self.kernels {
            Kernels::Real => execute(&Portable, &self.model, job),
            Kernels::CostOnly => zero_done(&self.model, job),
        };
        self.pending.hold(end, done);
    }

    fn poll(&mut self) -> Option<Result<Done, ModelError>> {
        self.pending.take_due(&self.shared)
    }
}
