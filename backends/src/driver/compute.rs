//! The work a node computes: one tile through the fused layers, or one layer's stripe (BODP).
//!
//! Jobs own their inputs so an executor may run them on another thread; the same
//! [`execute`] serves a worker thread on Linux and an inline executor in tests and the
//! simulator.

extern crate alloc;

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;

use tessera_core::exec::{
    buffer_elems, buffer_elems_in, input_slot, run_tile, ExecError, StripStore, TileInput, TileJob,
};
use tessera_core::ftp::{FusedStack, Grid, MemoryPlan, Mode, Partition, PlanError, Side, TilePlan};
use tessera_core::kernel::{KernelError, Kernels};
use tessera_core::model::weights::{Weights, WeightsError};
use tessera_core::model::{LayerKind, Network};
use tessera_core::runtime::Work;
use tessera_core::tensor::{region_len, FeatureView, FeatureViewMut};
use tessera_core::Region;
use tessera_log::warn;

use crate::pipeline::{letterbox_window_into, Picture};

/// A network with its parameters and the partition every node of a run agrees on.
#[derive(Clone, Debug)]
pub struct Model {
    /// The network.
    pub net: Network,
    /// Decoded parameters of the fused layers (`weights::param_count(net, layers)` or more);
    /// empty in a [`Model::deferred`] model until [`Model::loaded`].
    pub params: Vec<f32>,
    /// Number of fused layers `L`.
    pub layers: usize,
    /// Grid rows and columns.
    pub grid: (u32, u32),
    /// Partition rule.
    pub partition: Partition,
    /// Where a deferred model's parameters come from.
    source: Option<ParamSource>,
    /// The kernels whose block grid every plan follows ([`Model::with_blocks`]).
    blocks: Option<BlockGrid>,
}

/// Kernels whose conv block grid ([`Kernels::conv_alignment`]) a model's plans are
/// [aligned](FusedStack::aligned) to: block-wise kernels (Winograd F4) then get the input of
/// whole blocks in every tile, so tiles stay bit-identical to the full frame.
#[derive(Clone)]
pub struct BlockGrid(pub alloc::sync::Arc<dyn Kernels + Send + Sync>);

impl core::fmt::Debug for BlockGrid {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("BlockGrid")
    }
}

/// Produces a model's fused-layer parameters on demand (reads or generates them); `None` when
/// it cannot (the source reports why itself).
#[derive(Clone)]
pub struct ParamSource(pub alloc::sync::Arc<dyn Fn() -> Option<Vec<f32>> + Send + Sync>);

impl core::fmt::Debug for ParamSource {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ParamSource")
    }
}

/// Why a model or a job is unusable.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
pub enum ModelError {
    /// The fused stack or grid is invalid.
    #[error("plan: {0}")]
    Plan(PlanError),
    /// The parameters do not fit the network.
    #[error("weights: {0}")]
    Weights(WeightsError),
    /// Running the job failed.
    #[error("tile: {0}")]
    Exec(ExecError),
    /// A BODP layer job failed in its kernel.
    #[error("layer: {0}")]
    Kernel(KernelError),
    /// A deferred model's parameter source produced none.
    #[error("the model's parameters could not be loaded")]
    NoParams,
    /// A tile's input could not be cut from its frame's picture (it did not decode, or the
    /// tile lies outside the network input).
    #[error("tile input: the frame's picture does not make it")]
    Picture,
}

impl Model {
    /// Checks the stack, grid and parameters once.
    pub fn new(
        net: Network,
        params: Vec<f32>,
        layers: usize,
        grid: (u32, u32),
        partition: Partition,
    ) -> Result<Model, ModelError> {
        let m = Model {
            net,
            params,
            layers,
            grid,
            partition,
            source: None,
            blocks: None,
        };
        let stack = m.stack()?;
        Grid::new(grid.0, grid.1, partition, &stack).map_err(ModelError::Plan)?;
        Weights::new(&m.net, layers, &m.params).map_err(ModelError::Weights)?;
        Ok(m)
    }

    /// A model without its parameters: `source` produces them the first time a job needs them
    /// ([`Model::loaded`]; the executors call it). For a node that computes only as a last
    /// resort, e.g. a gateway whose edges are all gone: until then it holds no parameters
    /// (13.1 MiB for YOLOv2's fused layers). The stack and grid are checked now, the
    /// parameters when they are loaded.
    pub fn deferred(
        net: Network,
        layers: usize,
        grid: (u32, u32),
        partition: Partition,
        source: ParamSource,
    ) -> Result<Model, ModelError> {
        let m = Model {
            net,
            params: Vec::new(),
            layers,
            grid,
            partition,
            source: Some(source),
            blocks: None,
        };
        let stack = m.stack()?;
        Grid::new(grid.0, grid.1, partition, &stack).map_err(ModelError::Plan)?;
        Ok(m)
    }

    /// True while a deferred model's parameters are not loaded.
    pub fn is_deferred(&self) -> bool {
        self.source.is_some() && self.params.is_empty()
    }

    /// This model with its parameters: itself, or (deferred) a copy holding what its source
    /// produced, checked against the network.
    pub fn loaded(self: &alloc::sync::Arc<Self>) -> Result<alloc::sync::Arc<Model>, ModelError> {
        let Some(source) = self.source.as_ref().filter(|_| self.params.is_empty()) else {
            return Ok(self.clone());
        };
        let params = (source.0)().ok_or(ModelError::NoParams)?;
        let m = Model::new(
            self.net.clone(),
            params,
            self.layers,
            self.grid,
            self.partition,
        )?;
        Ok(alloc::sync::Arc::new(Model {
            blocks: self.blocks.clone(),
            ..m
        }))
    }

    /// This model with its plans aligned to `blocks`' conv block grid (every node of a run
    /// must align to the same kernels, or tiles miss inputs their kernels read).
    pub fn with_blocks(self, blocks: BlockGrid) -> Model {
        Model {
            blocks: Some(blocks),
            ..self
        }
    }

    /// True when the plans follow a block grid ([`Model::with_blocks`]).
    pub fn has_blocks(&self) -> bool {
        self.blocks.is_some()
    }

    /// The fused stack `[0, L)`, aligned to the model's block grid if it has one.
    pub fn stack(&self) -> Result<FusedStack<'_>, ModelError> {
        let stack = FusedStack::new(&self.net, self.layers).map_err(ModelError::Plan)?;
        Ok(match &self.blocks {
            Some(b) => stack.aligned(&*b.0),
            None => stack,
        })
    }

    /// The grid.
    pub fn grid(&self) -> Result<Grid, ModelError> {
        Grid::new(self.grid.0, self.grid.1, self.partition, &self.stack()?)
            .map_err(ModelError::Plan)
    }

    /// The parameters as per-layer views.
    pub fn weights(&self) -> Result<Weights<'_>, ModelError> {
        Weights::new(&self.net, self.layers, &self.params).map_err(ModelError::Weights)
    }

    /// The plan of `tile` in `mode`.
    pub fn plan(&self, tile: u16, mode: Mode) -> Result<TilePlan, ModelError> {
        let stack = self.stack()?;
        TilePlan::new(&stack, &self.grid()?, tile as usize, mode).map_err(ModelError::Plan)
    }
}

/// A strip of a tile's layer output, owned.
#[derive(Clone, Debug, PartialEq)]
pub struct Strip {
    /// Region of the layer's output map.
    pub region: Region,
    /// Channels.
    pub channels: u32,
    /// CHW values.
    pub data: Vec<f32>,
}

/// Strips keyed by (sender tile, layer, side index), as `exec::StripStore` names them.
pub type Strips = BTreeMap<(u16, u8, u8), Strip>;

/// [`Strips`] seen as the executor's strip store (level-0 tiles `put`, level-1 tiles `get`).
pub struct StripMap<'a>(pub &'a mut Strips);

impl StripMap<'_> {
    /// Bytes of strip values held.
    pub fn bytes(&self) -> usize {
        self.0.values().map(|s| s.data.len() * 4).sum()
    }

    /// Empties every strip but keeps its memory: the next `put` under its key (the next frame
    /// of the same plans) copies into it instead of allocating, and until then `get` finds
    /// nothing there.
    pub fn recycle(&mut self) {
        for s in self.0.values_mut() {
            s.data.clear();
        }
    }
}

impl StripMap<'_> {
    /// The values of the strip `region` × `channels` under the key: those held when the key
    /// holds that strip (a recycled one holds none), else made anew, zero, in the key's
    /// memory.
    fn values(
        &mut self,
        tile: usize,
        layer: usize,
        side: Side,
        region: Region,
        channels: u32,
    ) -> Result<&mut [f32], ExecError> {
        let len = region_len(&region, channels)?;
        let key = (tile as u16, layer as u8, side.index() as u8);
        let s = self.0.entry(key).or_insert_with(|| Strip {
            region,
            channels,
            data: Vec::new(),
        });
        if (s.region, s.channels, s.data.len()) != (region, channels, len) {
            s.region = region;
            s.channels = channels;
            s.data.clear();
            s.data.resize(len, 0.0);
        }
        Ok(&mut s.data)
    }
}

impl StripStore for StripMap<'_> {
    fn put(
        &mut self,
        tile: usize,
        layer: usize,
        side: Side,
        from: &FeatureView<'_>,
        region: Region,
    ) -> Result<(), ExecError> {
        // Checked before the map is touched: a strip the view misses leaves nothing behind.
        from.check_covers(region)?;
        let values = self.values(tile, layer, side, region, from.channels())?;
        Ok(from.copy_part(region, values, region)?)
    }

    fn put_part(
        &mut self,
        tile: usize,
        layer: usize,
        side: Side,
        from: &FeatureView<'_>,
        region: Region,
        part: Region,
    ) -> Result<(), ExecError> {
        from.check_covers(part)?;
        let values = self.values(tile, layer, side, region, from.channels())?;
        Ok(from.copy_part(part, values, region)?)
    }

    fn get(&self, tile: usize, layer: usize, side: Side) -> Option<FeatureView<'_>> {
        let s = self
            .0
            .get(&(tile as u16, layer as u8, side.index() as u8))?;
        FeatureView::new(&s.data, s.region, s.channels).ok()
    }
}

/// The strips of `store` a tile planned as `plan` reads: those its neighbours sent it (a level-1
/// Reuse tile), nothing otherwise. A job carries these instead of the frame's whole store.
pub fn needed_strips(store: &Strips, plan: &TilePlan) -> Strips {
    needed_strips_keys(store, plan)
        .filter_map(|k| store.get(&k).map(|s| (k, s.clone())))
        .collect()
}

/// [`needed_strips`] moved out of `store` instead of copied: for a node that reads each strip
/// once (every strip serves the one neighbour on its side).
pub fn take_strips(store: &mut Strips, plan: &TilePlan) -> Strips {
    let keys: Vec<_> = needed_strips_keys(store, plan).collect();
    keys.into_iter()
        .filter_map(|k| store.remove(&k).map(|s| (k, s)))
        .collect()
}

/// Keys of the strips a tile planned as `plan` reads (see [`needed_strips`]).
fn needed_strips_keys<'s>(
    store: &'s Strips,
    plan: &TilePlan,
) -> impl Iterator<Item = (u16, u8, u8)> + 's {
    let sides: Vec<(u16, u8)> = if plan.is_reduced() {
        Side::ALL
            .iter()
            .filter_map(|&side| {
                let n = plan.neighbour(side)?;
                Some((n as u16, side.opposite().index() as u8))
            })
            .collect()
    } else {
        Vec::new()
    };
    sides.into_iter().flat_map(move |(n, from)| {
        store
            .range((n, 0, 0)..=(n, u8::MAX, u8::MAX))
            .map(|(k, _)| *k)
            .filter(move |k| k.2 == from)
    })
}

/// The two ping-pong buffers of `exec::run_tile`, kept across jobs.
///
/// [`Workspace::new`] sizes them once from the memory plan, for the worst tile of the model's
/// grid in either mode, so a compute thread allocates them once and never again; a
/// [`Workspace::default`] grows to each job's need instead (tools running a few jobs).
#[derive(Debug, Default)]
pub struct Workspace {
    a: Vec<f32>,
    b: Vec<f32>,
}

impl Workspace {
    /// Buffers for every tile job of `model` (`MemoryPlan::tile_buffers_in_elems`: the first
    /// holds the stack's largest output, the second a tile's input cut from a picture beside
    /// the first layers' scratch).
    pub fn new(model: &Model) -> Result<Workspace, ModelError> {
        let stack = model.stack()?;
        // A Reuse plan's capacities also cover every tile's Plain plan.
        let plan =
            MemoryPlan::new(&stack, &model.grid()?, Mode::Reuse).map_err(ModelError::Plan)?;
        // Tiles cut from pictures take their input in the second buffer.
        let [a, b] = plan.tile_buffers_in_elems;
        Ok(Workspace {
            a: vec![0.0; a],
            b: vec![0.0; b],
        })
    }

    /// Elements of both buffers together.
    pub fn len(&self) -> usize {
        self.a.len() + self.b.len()
    }

    /// True before any buffer is allocated.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Both buffers, the larger first, for a job of another kind on the same thread while no
    /// tile runs (a coded shard's result and its band of output rows:
    /// [`crate::coded::CodedModel::compute_shard_in`]).
    #[cfg(feature = "std")]
    pub(crate) fn lend(&mut self) -> (&mut Vec<f32>, &mut Vec<f32>) {
        if self.a.len() >= self.b.len() {
            (&mut self.a, &mut self.b)
        } else {
            (&mut self.b, &mut self.a)
        }
    }

    /// Both buffers, grown to at least `elems` (never shrunk).
    fn buffers(&mut self, elems: [usize; 2]) -> (&mut [f32], &mut [f32]) {
        for (v, n) in [(&mut self.a, elems[0]), (&mut self.b, elems[1])] {
            if v.len() < n {
                v.reserve_exact(n - v.len());
                v.resize(n, 0.0);
            }
        }
        (&mut self.a, &mut self.b)
    }
}

/// Work with its input, ready to run anywhere.
#[derive(Clone, Debug)]
pub struct Job {
    /// What to compute.
    pub work: Work,
    /// Region of the input map held in `input` (a tile's layer-0 input, a stripe plus halo, or
    /// the whole frame a node holds: the job reads the part it needs in place).
    pub input_region: Region,
    /// CHW input values: received for this job, or the frame's image shared with its node.
    pub input: Arc<Vec<f32>>,
    /// The frame's picture as captured, when the tile's input is to be cut from it over
    /// `input_region` (then `input` is empty): the job decodes it into its workspace's idle
    /// buffers, so a node never holds a decoded frame besides them.
    pub picture: Option<Arc<Picture>>,
    /// Neighbours' strips (level-1 Reuse tiles).
    pub strips: Strips,
}

/// The tile's input, `plan.input(0)` of the network input (letterboxed as the source made
/// it), cut from `picture` into the end of `b` where `run_tile` reads it
/// ([`TileInput::InB`]); the picture is decoded into `a`, idle until the tile's first layer
/// writes it (into a buffer of its own when it does not fit).
fn cut_input(
    stack: &FusedStack<'_>,
    plan: &TilePlan,
    picture: &Picture,
    a: &mut [f32],
    b: &mut [f32],
) -> Result<(), ModelError> {
    let shape = stack.input();
    let (w, h) = (shape.w as usize, shape.h as usize);
    let region = plan.input(0);
    let xs = region.x.start as usize..region.x.end as usize;
    let ys = region.y.start as usize..region.y.end as usize;
    if shape.c != 3 || xs.end > w || ys.end > h {
        return Err(ModelError::Picture);
    }
    let mut spill = Vec::new();
    let px = picture
        .pixels_in(bytemuck::cast_slice_mut(a), &mut spill)
        .map_err(|e| {
            warn!("a tile's picture: {}", e);
            ModelError::Picture
        })?;
    let slot = input_slot(stack, plan, b).map_err(ModelError::Exec)?;
    if !letterbox_window_into(&px, w, h, xs, ys, slot) {
        return Err(ModelError::Picture);
    }
    Ok(())
}

/// A tensor or region error of a job, as the error of the tile executor it would be.
fn exec_error(e: impl Into<ExecError>) -> ModelError {
    ModelError::Exec(e.into())
}

/// A finished job.
#[derive(Clone, Debug)]
pub struct Done {
    /// What was computed.
    pub work: Work,
    /// Region of the output (grid tile, or stripe rows).
    pub region: Region,
    /// CHW output values.
    pub output: Vec<f32>,
    /// Strips produced for neighbours (level-0 Reuse tiles).
    pub strips: Strips,
    /// Bytes of feature buffers the job held at once (input, scratch, output, strips).
    pub buffer_bytes: usize,
}

/// Runs `job` with `kernels`, with working buffers allocated for this job only.
pub fn execute<K: Kernels>(kernels: &K, model: &Model, job: Job) -> Result<Done, ModelError> {
    execute_in(kernels, model, job, &mut Workspace::default())
}

/// Runs `job` with `kernels` in `ws`: a tile job allocates only its output (the result it
/// hands back) and the strips it produces.
pub fn execute_in<K: Kernels>(
    kernels: &K,
    model: &Model,
    job: Job,
    ws: &mut Workspace,
) -> Result<Done, ModelError> {
    let stack = model.stack()?;
    let weights = model.weights()?;
    match job.work {
        Work::Tile { tile, mode, .. } => {
            let plan = model.plan(tile, mode)?;
            // A tile of a picture cuts its input into the second buffer, which is sized for it.
            let view;
            let (input, scratch) = match job.picture {
                Some(_) => (TileInput::InB, buffer_elems_in(&stack, &plan)),
                None => {
                    view = FeatureView::new(&job.input, job.input_region, stack.input().c)
                        .map_err(exec_error)?;
                    (TileInput::View(&view), buffer_elems(&stack, &plan))
                }
            };
            let (a, b) = ws.buffers(scratch.map_err(ModelError::Exec)?);
            if let Some(p) = &job.picture {
                cut_input(&stack, &plan, p, a, b)?;
            }
            let region = plan.output(stack.len() - 1);
            let out_c = stack.output().c;
            let mut out = vec![0.0f32; region_len(&region, out_c).map_err(exec_error)?];
            let mut strips = job.strips;
            let mut produced = Strips::new();
            {
                let mut store = StripMap(&mut strips);
                run_tile(
                    TileJob {
                        kernels,
                        stack: &stack,
                        weights: &weights,
                        plan: &plan,
                        input,
                        buf_a: a,
                        buf_b: b,
                        strips: &mut store,
                    },
                    &mut out,
                )
                .map_err(ModelError::Exec)?;
            }
            let strip_bytes: usize = strips.values().map(|s| s.data.len() * 4).sum();
            // The input the tile reads (of a shared frame, no more is the job's; a cut input
            // lies in the buffers).
            let read = region_len(&plan.input(0), stack.input().c).unwrap_or(job.input.len());
            let buffer_bytes = 4 * (read.min(job.input.len()) + ws.len() + out.len()) + strip_bytes;
            // What the tile put beyond what it was given are its own strips.
            for (k, s) in strips {
                if k.0 == tile {
                    produced.insert(k, s);
                }
            }
            Ok(Done {
                work: job.work,
                region,
                output: out,
                strips: produced,
                buffer_bytes,
            })
        }
        Work::Layer { layer, output, .. } => {
            let l = stack
                .layers()
                .get(layer as usize)
                .ok_or(ModelError::Plan(PlanError::Overflow))?;
            let input =
                FeatureView::new(&job.input, job.input_region, l.input.c).map_err(exec_error)?;
            let mut out = vec![0.0f32; region_len(&output, l.output.c).map_err(exec_error)?];
            let mut view = FeatureViewMut::new(&mut out, output, l.output.c).map_err(exec_error)?;
            match &l.kind {
                LayerKind::Conv(c) => {
                    let params = weights.conv(layer as usize).ok_or(ModelError::Exec(
                        ExecError::MissingWeights {
                            layer: layer as usize,
                        },
                    ))?;
                    kernels.conv(c, l.input, &params, &input, &mut view)
                }
                LayerKind::MaxPool(p) => kernels.maxpool(p, l.input, &input, &mut view),
                _ => {
                    return Err(ModelError::Plan(PlanError::NotFusable {
                        layer: layer as usize,
                    }))
                }
            }
            .map_err(ModelError::Kernel)?;
            let buffer_bytes = 4 * (job.input.len() + out.len());
            Ok(Done {
                work: job.work,
                region: output,
                output: out,
                strips: Strips::new(),
                buffer_bytes,
            })
        }
    }
}

/// Runs jobs: inline, on a worker thread, or in simulated time.
pub trait Executor {
    /// Starts `job` (a node runs one job at a time).
    fn start(&mut self, job: Job);
    /// A finished job, if any.
    fn poll(&mut self) -> Option<Result<Done, ModelError>>;
}

/// Runs each job to completion inside `start` (tests, single-threaded tools).
pub struct Inline<K: Kernels> {
    kernels: K,
    model: alloc::sync::Arc<Model>,
    ws: Workspace,
    done: Option<Result<Done, ModelError>>,
}

impl<K: Kernels> Inline<K> {
    /// An inline executor of `model` with `kernels`.
    pub fn new(kernels: K, model: alloc::sync::Arc<Model>) -> Self {
        Inline {
            kernels,
            model,
            ws: Workspace::default(),
            done: None,
        }
    }
}

impl<K: Kernels> Executor for Inline<K> {
    fn start(&mut self, job: Job) {
        let done = self.model.loaded().and_then(|m| {
            self.model = m;
            execute_in(&self.kernels, &self.model, job, &mut self.ws)
        });
        self.done = Some(done);
    }

    fn poll(&mut self) -> Option<Result<Done, ModelError>> {
        self.done.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::sync::Arc;
    use core::sync::atomic::{AtomicUsize, Ordering};
    use tessera_core::kernel::Portable;
    use tessera_core::model::weights::param_count;
    use tessera_core::model::{MaxPool, Shape};
    use tessera_core::wire::FrameKey;
    use tessera_testkit::{conv, network};

    fn net() -> Network {
        let pool = LayerKind::MaxPool(MaxPool {
            size: 2,
            stride: 2,
            pad: 0,
        });
        network(Shape::new(16, 12, 3), [conv(4, 3), pool, conv(5, 3)])
    }

    fn params(n: &Network) -> Vec<f32> {
        (0..param_count(n, 3).unwrap())
            .map(|i| 0.05 + (i % 17) as f32 / 40.0)
            .collect()
    }

    fn job(tile: u16) -> Job {
        let number = tile as u32;
        Job {
            work: Work::Tile {
                frame: FrameKey { origin: 1, number },
                tile,
                mode: Mode::Plain,
            },
            input_region: Region::full(16, 12),
            input: Arc::new((0..16 * 12 * 3).map(|i| (i % 13) as f32 / 13.0).collect()),
            picture: None,
            strips: Strips::new(),
        }
    }

    #[test]
    fn a_deferred_model_loads_its_parameters_at_the_first_job_only() {
        let loaded =
            Arc::new(Model::new(net(), params(&net()), 3, (2, 2), Partition::Darknet).unwrap());
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let source = ParamSource(Arc::new(move || {
            counted.fetch_add(1, Ordering::Relaxed);
            Some(params(&net()))
        }));
        let deferred =
            Arc::new(Model::deferred(net(), 3, (2, 2), Partition::Darknet, source).unwrap());
        assert!(deferred.is_deferred() && deferred.params.is_empty());
        assert!(!loaded.is_deferred());
        let mut lazy = Inline::new(Portable, deferred.clone());
        let mut eager = Inline::new(Portable, loaded);
        assert_eq!(
            calls.load(Ordering::Relaxed),
            0,
            "nothing loaded before a job"
        );
        for tile in 0..4 {
            lazy.start(job(tile));
            eager.start(job(tile));
            let (a, b) = (
                lazy.poll().unwrap().unwrap(),
                eager.poll().unwrap().unwrap(),
            );
            assert_eq!(a.region, b.region);
            assert!(a
                .output
                .iter()
                .zip(&b.output)
                .all(|(x, y)| x.to_bits() == y.to_bits()));
        }
        assert_eq!(
            calls.load(Ordering::Relaxed),
            1,
            "loaded once, at the first job"
        );
        // The shared model itself stays without parameters; the executor keeps its copy.
        assert!(deferred.is_deferred());
    }

    #[test]
    fn a_deferred_model_whose_source_fails_fails_its_jobs() {
        let source = ParamSource(Arc::new(|| None));
        let m = Arc::new(Model::deferred(net(), 3, (2, 2), Partition::Darknet, source).unwrap());
        let mut x = Inline::new(Portable, m.clone());
        x.start(job(0));
        assert_eq!(x.poll().unwrap().unwrap_err(), ModelError::NoParams);
        // Parameters that do not fit the network are refused when loaded.
        let short = ParamSource(Arc::new(|| Some(vec![0.5; 3])));
        let m = Arc::new(Model::deferred(net(), 3, (2, 2), Partition::Darknet, short).unwrap());
        assert!(matches!(m.loaded(), Err(ModelError::Weights(_))));
    }

    #[test]
    fn recycled_strips_keep_their_memory_and_serve_nothing_until_put_again() {
        use tessera_core::region::Span;
        let whole = Region::new(Span::new(0, 4), Span::new(0, 2));
        let data: Vec<f32> = (0..8).map(|i| i as f32).collect();
        let view = FeatureView::new(&data, whole, 1).unwrap();
        let strip = Region::new(Span::new(2, 4), Span::new(0, 2));
        let mut held = Strips::new();
        let mut store = StripMap(&mut held);
        store.put(3, 0, Side::Right, &view, strip).unwrap();
        assert_eq!(
            store.get(3, 0, Side::Right).unwrap().data(),
            &[2.0, 3.0, 6.0, 7.0]
        );
        let before = store.0[&(3, 0, Side::Right.index() as u8)].data.as_ptr();
        store.recycle();
        assert_eq!(store.bytes(), 0);
        assert!(
            store.get(3, 0, Side::Right).is_none(),
            "a stale strip is never read"
        );
        store.put(3, 0, Side::Right, &view, strip).unwrap();
        let after = &store.0[&(3, 0, Side::Right.index() as u8)].data;
        assert_eq!(after.as_ptr(), before, "the strip's memory was reused");
        assert_eq!(store.bytes(), 16);
        // A region outside the view is a typed error.
        let outside = Region::new(Span::new(3, 5), Span::new(0, 2));
        assert!(store.put(3, 1, Side::Right, &view, outside).is_err());
        assert!(
            store.get(3, 1, Side::Right).is_none(),
            "a failed put leaves nothing"
        );
        // A strip sent in parts: filled part by part, begun anew after a recycle.
        let top = Region::new(Span::new(2, 4), Span::new(0, 1));
        let bottom = Region::new(Span::new(2, 4), Span::new(1, 2));
        store
            .put_part(3, 2, Side::Right, &view, strip, bottom)
            .unwrap();
        assert_eq!(
            store.get(3, 2, Side::Right).unwrap().data(),
            &[0.0, 0.0, 6.0, 7.0]
        );
        store
            .put_part(3, 2, Side::Right, &view, strip, top)
            .unwrap();
        assert_eq!(
            store.get(3, 2, Side::Right).unwrap().data(),
            &[2.0, 3.0, 6.0, 7.0]
        );
        store.recycle();
        store
            .put_part(3, 2, Side::Right, &view, strip, top)
            .unwrap();
        assert_eq!(
            store.get(3, 2, Side::Right).unwrap().data(),
            &[2.0, 3.0, 0.0, 0.0]
        );
        assert!(store
            .put_part(3, 2, Side::Right, &view, strip, outside)
            .is_err());
    }
}
