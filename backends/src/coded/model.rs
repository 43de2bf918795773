//! A chain of linear layers prepared for coded computing: every shard's weights encoded once
//! (data slices, parity combinations, replicas), the shard computation a worker runs, and the
//! gateway's decode, bias-free finish (activation, requantisation) of each layer.
//!
//! Layers compute `Y = W·X + b` (`W` is `rows × in_len`, `X` is `in_len × cols` row-major: an
//! FC layer has `cols = 1`, a 1x1 convolution is its CHW map with `cols = H·W`), then the
//! activation. A layer with a [`ConvGeom`] is a stride-1 "same" convolution computed directly
//! by the core conv kernel on the CHW input map (`in_len` channels, `cols = H·W`), its rows
//! being filters of `in_len·size²` weights: convolution is linear in the filters, so parity
//! filters (combinations of data filters) give the combinations of their outputs. [`Numeric::Int8`] layers quantise their input (`x_q = round(x / in_scale)`,
//! clamped to ±127), weights (`w_q = round(w / w_scale)`) and bias
//! (`b_q = round(b / (w_scale·in_scale))`) and compute in `i32`, so coded decoding is exact;
//! [`Numeric::Float`] layers decode within the bound of `code::decode`. Values cross the wire
//! as 4-byte words: `f32` bits, or `i32` (int8 inputs sign-extended).

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;

use tessera_core::code::{encode, replicate, shard, Arithmetic, Code, CodeError, Decoder};
use tessera_core::kernel::{Kernels, Portable};
use tessera_core::model::weights::ConvParams;
use tessera_core::model::{Activation as ConvActivation, Conv, Shape};
use tessera_core::region::Span;
use tessera_core::runtime::coded::{
    CodedError, CodedLayerSpec, CodedPlan, Protection, ShardWork, MAX_CODED_LAYERS,
};
use tessera_core::tensor::{FeatureView, FeatureViewMut};
use tessera_core::wire::NodeId;
use tessera_core::Region;

/// The non-linearity applied after a layer's decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// None.
    Linear,
    /// `max(x, 0)`.
    Relu,
    /// Darknet's leaky ReLU, `x < 0 → 0.1·x`.
    Leaky,
}

impl Activation {
    fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Linear => x,
            Activation::Relu => x.max(0.0),
            Activation::Leaky if x < 0.0 => 0.1 * x,
            Activation::Leaky => x,
        }
    }
}

/// How a layer's arithmetic is done.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Numeric {
    /// `f32` throughout.
    Float,
    /// int8 inputs and weights, `i32` accumulation (exact decoding).
    Int8 {
        /// Value of one input unit.
        in_scale: f32,
        /// Value of one weight unit.
        w_scale: f32,
    },
}

/// One linear layer with its parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearLayer {
    /// Inputs per column (`K`).
    pub in_len: usize,
    /// Output rows (`m`).
    pub rows: usize,
    /// `rows × in_len`, row-major.
    pub weights: Vec<f32>,
    /// `rows`.
    pub bias: Vec<f32>,
    /// Applied after decoding.
    pub activation: Activation,
    /// Float or int8.
    pub numeric: Numeric,
}

/// A stride-1 convolution with "same" padding (`⌊size/2⌋`) on a `width × height` map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    /// Kernel side (odd).
    pub size: u32,
    /// Map width (input and output).
    pub width: u32,
    /// Map height (input and output).
    pub height: u32,
}

impl ConvGeom {
    /// Columns of the layer's input and output: `width · height`.
    pub const fn cols(&self) -> usize {
        self.width as usize * self.height as usize
    }
}

/// How one layer is split: `k` data shards, `r` parity shards, coded or replicated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerScheme {
    /// Data shards.
    pub k: usize,
    /// Parity shards ([`Protection::Coded`] only; `0` is the uncoded split).
    pub r: usize,
    /// Coded or 2MR.
    pub protection: Protection,
}

/// Why a coded model could not be built or used.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CodedModelError {
    /// Layer `layer`'s parameters do not match its shape, or consecutive layers do not chain.
    #[error("layer {layer}: parameters do not match rows × in_len, or it does not take the previous layer's rows")]
    Shape {
        /// Layer index.
        layer: usize,
    },
    /// Layers and schemes differ in number, or there are more than `MAX_CODED_LAYERS`.
    #[error("need one scheme per layer and 1..={} layers", MAX_CODED_LAYERS)]
    Layers,
    /// A convolution layer is not float, has an even or zero kernel, or an empty map.
    #[error(
        "layer {layer}: coded convolutions must be float, with an odd kernel on a non-empty map"
    )]
    Conv {
        /// Layer index.
        layer: usize,
    },
    /// A scale is not a positive finite number.
    #[error("layer {layer}: int8 scales must be positive and finite")]
    Scale {
        /// Layer index.
        layer: usize,
    },
    /// No workers were given.
    #[error("no workers")]
    NoWorkers,
    /// The code or the stage refused.
    #[error("{0}")]
    Coded(CodedError),
    /// A worker's model ([`CodedModel::for_worker`]) was asked for a shard another node holds.
    #[error("layer {layer}: shard {shard} is assigned to another node, this one does not hold its parameters")]
    NotHeld {
        /// Layer index.
        layer: usize,
        /// Shard index.
        shard: usize,
    },
    /// An input or result has the wrong length.
    #[error("{have} values where {need} are needed")]
    Length {
        /// Words needed.
        need: usize,
        /// Words given.
        have: usize,
    },
}

impl From<CodeError> for CodedModelError {
    fn from(e: CodeError) -> Self {
        CodedModelError::Coded(CodedError::Code(e))
    }
}

impl From<CodedError> for CodedModelError {
    fn from(e: CodedError) -> Self {
        CodedModelError::Coded(e)
    }
}

/// One shard's parameters, in the arithmetic it computes with.
#[derive(Clone, Debug, PartialEq)]
enum ShardParams {
    /// Float data or parity shard.
    F32 { w: Vec<f32>, b: Vec<f32> },
    /// int8 data shard.
    I8 { w: Vec<i8>, b: Vec<i32> },
    /// Single-parity integer shard (wrapping `i32`).
    Wrapping { w: Vec<i32>, b: Vec<i32> },
    /// `GF(p)` parity shard.
    ModP { w: Vec<u32>, b: Vec<u32> },
}

impl ShardParams {
    fn bytes(&self) -> usize {
        match self {
            ShardParams::F32 { w, b } => 4 * (w.len() + b.len()),
            ShardParams::I8 { w, b } => w.len() + 4 * b.len(),
            ShardParams::Wrapping { w, b } => 4 * (w.len() + b.len()),
            ShardParams::ModP { w, b } => 4 * (w.len() + b.len()),
        }
    }
}

/// A layer ready to run coded.
#[derive(Clone, Debug, PartialEq)]
struct Prepared {
    /// The layer; a worker's model keeps its shape, activation and numeric only (weights and
    /// bias empty).
    layer: LinearLayer,
    conv: Option<ConvGeom>,
    spec: CodedLayerSpec,
    /// Parameters of every shard (index = shard; replicas equal their data shard's); `None`
    /// for a shard a worker's model does not hold.
    shards: Vec<Option<ShardParams>>,
}

/// Which shards a model holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Holds {
    /// Every shard and the layers' weights: the gateway's (and a one-process run's) model.
    All,
    /// Only the shards assigned to this worker.
    Worker(NodeId),
    /// No shard and no weights: codes, geometry and plan only, all a coded gateway needs
    /// (it sends inputs, decodes and glues; workers compute).
    Plan,
}

/// Layers, their codes and the shards' parameters. The gateway holds every shard and every
/// layer's weights ([`CodedModel::with_geometry`]); a worker holds only the shards assigned
/// to it ([`CodedModel::for_worker`]), built one layer at a time.
#[derive(Clone, Debug, PartialEq)]
pub struct CodedModel {
    layers: Vec<Prepared>,
    plan: CodedPlan,
    holds: Holds,
}

/// `x` rounded to an integer in `[-limit, limit]` (NaN: 0).
fn round_clamped(x: f32, limit: f32) -> f32 {
    let q = tessera_core::round::round_half_away(x);
    if q.is_nan() {
        0.0
    } else {
        q.clamp(-limit, limit)
    }
}

fn quantize(x: f32, scale: f32) -> i8 {
    round_clamped(x / scale, 127.0) as i8
}

impl CodedModel {
    /// Prepares `layers` split by `schemes`; shard `i` of every layer runs on
    /// `workers[i % workers.len()]`.
    pub fn new(
        layers: Vec<LinearLayer>,
        schemes: &[LayerScheme],
        workers: &[NodeId],
    ) -> Result<CodedModel, CodedModelError> {
        let layers = layers.into_iter().map(|l| Ok((l, None))).enumerate();
        Self::build(layers, schemes, workers, true, Holds::All)
    }

    /// As [`CodedModel::new`] with convolution layers (a layer with a [`ConvGeom`] has
    /// `weights.len() == rows · in_len · size²`). Consecutive layers need not chain: the
    /// gateway's [`Glue`](super::Glue) turns one layer's output into the next one's input.
    pub fn with_geometry(
        layers: Vec<(LinearLayer, Option<ConvGeom>)>,
        schemes: &[LayerScheme],
        workers: &[NodeId],
    ) -> Result<CodedModel, CodedModelError> {
        let layers = layers.into_iter().map(Ok).enumerate();
        Self::build(layers, schemes, workers, false, Holds::All)
    }

    /// Worker `node`'s model: as [`CodedModel::with_geometry`], holding only the shards
    /// assigned to `node` (the others, and every layer's weights, dropped). `layers` gives
    /// each layer with its index, once, in any order (largest first keeps the peak lowest:
    /// the shards made so far are smallest when the largest layer is held whole); it is
    /// consumed one layer at a time and each layer is dropped once `node`'s shards of it are
    /// made, so a lazy iterator (reading each layer's parameters when asked) never holds more
    /// than one layer; its first error stops the build. The shards are identical to those of
    /// the full model ([`CodedModel::retain_worker`]).
    pub fn for_worker<E, I>(
        layers: I,
        schemes: &[LayerScheme],
        workers: &[NodeId],
        node: NodeId,
    ) -> Result<CodedModel, E>
    where
        E: From<CodedModelError>,
        I: IntoIterator<Item = (usize, Result<(LinearLayer, Option<ConvGeom>), E>)>,
    {
        Self::build(layers, schemes, workers, false, Holds::Worker(node))
    }

    /// The coded gateway's model: as [`CodedModel::with_geometry`] without any shard or
    /// weights (each layer is given with empty `weights` and `bias`, its shape only), so a
    /// gateway never holds the tail's parameters.
    pub fn plan_only(
        layers: Vec<(LinearLayer, Option<ConvGeom>)>,
        schemes: &[LayerScheme],
        workers: &[NodeId],
    ) -> Result<CodedModel, CodedModelError> {
        let layers = layers.into_iter().map(Ok).enumerate();
        Self::build(layers, schemes, workers, false, Holds::Plan)
    }

    /// This model as worker `node` holds it: the shards assigned to `node` only, no layer
    /// weights (what [`CodedModel::for_worker`] builds without ever holding every layer).
    pub fn retain_worker(mut self, node: NodeId) -> CodedModel {
        for p in &mut self.layers {
            p.keep_only(Holds::Worker(node));
        }
        self.holds = Holds::Worker(node);
        self
    }

    /// Prepares the layers given with their index (each once, in any order; `chain` checks
    /// each layer takes its predecessor's rows, the layers given in order).
    fn build<E, I>(
        layers: I,
        schemes: &[LayerScheme],
        workers: &[NodeId],
        chain: bool,
        holds: Holds,
    ) -> Result<CodedModel, E>
    where
        E: From<CodedModelError>,
        I: IntoIterator<Item = (usize, Result<(LinearLayer, Option<ConvGeom>), E>)>,
    {
        if schemes.is_empty() || schemes.len() > MAX_CODED_LAYERS {
            return Err(CodedModelError::Layers.into());
        }
        if workers.is_empty() {
            return Err(CodedModelError::NoWorkers.into());
        }
        let mut slots: Vec<Option<Prepared>> = vec![None; schemes.len()];
        for (i, item) in layers {
            let s = schemes.get(i).ok_or(CodedModelError::Layers)?;
            if slots[i].is_some() {
                return Err(CodedModelError::Layers.into());
            }
            let (layer, conv) = item?;
            let chains = !chain
                || i == 0
                || slots[i - 1]
                    .as_ref()
                    .is_some_and(|p| p.layer.rows == layer.in_len);
            if !chains {
                return Err(CodedModelError::Shape { layer: i }.into());
            }
            slots[i] = Some(prepare_layer(layer, conv, s, workers, i, holds)?);
        }
        let prepared: Vec<Prepared> = slots
            .into_iter()
            .collect::<Option<_>>()
            .ok_or(CodedModelError::Layers)?;
        let specs: Vec<CodedLayerSpec> = prepared.iter().map(|p| p.spec).collect();
        Ok(CodedModel {
            layers: prepared,
            plan: CodedPlan::new(&specs).map_err(CodedModelError::from)?,
            holds,
        })
    }

    /// The worker whose shards only this model holds (`None`: it holds every shard, or none
    /// on a [`CodedModel::plan_only`] model).
    pub fn worker(&self) -> Option<NodeId> {
        match self.holds {
            Holds::All | Holds::Plan => None,
            Holds::Worker(n) => Some(n),
        }
    }

    /// The plan the gateway runs.
    pub fn plan(&self) -> &CodedPlan {
        &self.plan
    }

    /// Number of layers.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Always false (a model has at least one layer).
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// Layer `l`'s parameters (on a worker's model, its shape, activation and numeric only:
    /// weights and bias are empty).
    pub fn layer(&self, l: usize) -> Option<&LinearLayer> {
        self.layers.get(l).map(|p| &p.layer)
    }

    /// Inputs per column of the first layer.
    pub fn in_len(&self) -> usize {
        self.layers[0].layer.in_len
    }

    /// Output rows of the last layer.
    pub fn out_len(&self) -> usize {
        self.layers[self.layers.len() - 1].layer.rows
    }

    /// Floating-point operations of one shard of layer `l` over `cols` columns (2 per
    /// multiply-add).
    pub fn shard_flops(&self, l: usize, shard: usize, cols: usize) -> u64 {
        let Some(p) = self.layers.get(l) else {
            return 0;
        };
        let rows = p.spec.shard_rows(shard).unwrap_or(0);
        let cols = p.conv.map_or(cols, |g| g.cols());
        2 * (rows * p.row_len() * cols) as u64
    }

    /// Columns of layer `l` for a frame of `cols` columns: the map's area for a convolution,
    /// `cols` otherwise.
    pub fn layer_cols(&self, l: usize, cols: usize) -> usize {
        self.layers
            .get(l)
            .and_then(|p| p.conv)
            .map_or(cols, |g| g.cols())
    }

    /// Layer `l`'s convolution geometry, if it is one.
    pub fn conv(&self, l: usize) -> Option<ConvGeom> {
        self.layers.get(l).and_then(|p| p.conv)
    }

    /// Bytes of shard parameters `node` holds for the whole model.
    pub fn worker_param_bytes(&self, node: NodeId) -> usize {
        self.layers
            .iter()
            .map(|p| {
                p.spec
                    .workers()
                    .iter()
                    .enumerate()
                    .filter(|(_, &w)| w == node)
                    .map(|(s, _)| {
                        p.shards
                            .get(s)
                            .and_then(Option::as_ref)
                            .map_or(0, ShardParams::bytes)
                    })
                    .sum::<usize>()
            })
            .sum()
    }

    /// Layer `l`'s input as wire words: `f32` bits, or the int8 quantisation sign-extended.
    pub fn input_words(&self, l: usize, x: &[f32]) -> Vec<u32> {
        match self.layers.get(l).map(|p| p.layer.numeric) {
            Some(Numeric::Int8 { in_scale, .. }) => x
                .iter()
                .map(|&v| i32::from(quantize(v, in_scale)) as u32)
                .collect(),
            _ => x.iter().map(|v| v.to_bits()).collect(),
        }
    }

    /// What shard `work.shard` of layer `work.layer` computes on `input` (wire words,
    /// `in_len × cols`): its result as wire words (`shard rows × cols`).
    pub fn compute_shard(
        &self,
        work: ShardWork,
        cols: usize,
        input: &[u32],
    ) -> Result<Vec<u32>, CodedModelError> {
        self.compute_shard_with(&Portable, work, cols, input)
    }

    /// As [`compute_shard`](Self::compute_shard), convolutions run by `kernels` (all kernels
    /// of this crate keep each output's summation order, so results are the same).
    pub fn compute_shard_with<K: Kernels>(
        &self,
        kernels: &K,
        work: ShardWork,
        cols: usize,
        input: &[u32],
    ) -> Result<Vec<u32>, CodedModelError> {
        let mut out = Vec::new();
        Ok(
            match self.shard(
                kernels,
                work,
                cols,
                input,
                &mut out,
                &mut Vec::new(),
                CONV_BAND_BYTES,
            )? {
                Computed::Words(w) => w,
                Computed::InOut(n) => {
                    // The same allocation, as words (in-place collect: same size and alignment).
                    out.truncate(n);
                    out.into_iter().map(f32::to_bits).collect()
                }
            },
        )
    }

    /// [`compute_shard_with`](Self::compute_shard_with) on memory a compute thread holds
    /// anyway: `input`'s own allocation becomes the result (cut to the result's length, no
    /// larger than the input for YOLOv2's tail), and `buf` (grown if short, never shrunk; its
    /// values are overwritten) takes what is computed on the way. A convolution wider than
    /// 1×1 with no more filters than input channels is computed in place, in bands of output
    /// rows sized so that the kernels' padded input of a band fits in `pad_bytes` (the
    /// caller's scratch for it): each band goes to `buf`, then into the input rows no later
    /// band reads, the last `size / 2` rows held back in `buf` until the next band is done.
    /// Others are computed in `buf` and copied into the input's allocation. Either way a shard
    /// never holds a result beside its input.
    pub fn compute_shard_in<K: Kernels>(
        &self,
        kernels: &K,
        work: ShardWork,
        cols: usize,
        mut input: Vec<u32>,
        buf: &mut Vec<f32>,
        pad_bytes: usize,
    ) -> Result<Vec<u32>, CodedModelError> {
        let (p, params, rows) = self.checked(work, cols, input.len())?;
        if let (Some(g), ShardParams::F32 { w, b }) = (p.conv, params) {
            let in_len = p.layer.in_len;
            let band = band_rows(g.size as usize, g.width as usize, in_len, pad_bytes);
            let x: &mut [f32] = bytemuck::cast_slice_mut(&mut input);
            if let Some(done) = conv_shard_in_place(kernels, g, in_len, rows, w, b, x, buf, band) {
                done.ok_or(CodedModelError::Conv {
                    layer: work.layer as usize,
                })?;
                input.truncate(rows * cols);
                input.shrink_to_fit();
                return Ok(input);
            }
        }
        let mut part = Vec::new();
        Ok(
            match self.shard(kernels, work, cols, &input, buf, &mut part, pad_bytes)? {
                Computed::Words(w) => w,
                Computed::InOut(n) => into_words(input, &buf[..n]),
            },
        )
    }

    /// Layer `work.layer`'s record, shard `work.shard`'s parameters and rows, once the shard
    /// is known, held, and given an input of `len` words fitting `cols`.
    fn checked(
        &self,
        work: ShardWork,
        cols: usize,
        len: usize,
    ) -> Result<(&Prepared, &ShardParams, usize), CodedModelError> {
        let p = self
            .layers
            .get(work.layer as usize)
            .ok_or(CodedModelError::Coded(CodedError::OutOfRange))?;
        let s = work.shard as usize;
        let params = p
            .shards
            .get(s)
            .ok_or(CodedModelError::Coded(CodedError::OutOfRange))?
            .as_ref()
            .ok_or(CodedModelError::NotHeld {
                layer: work.layer as usize,
                shard: s,
            })?;
        let need = p.layer.in_len.saturating_mul(cols);
        let geometry_ok = p.conv.is_none_or(|g| g.cols() == cols);
        if len != need || cols == 0 || !geometry_ok {
            return Err(CodedModelError::Length { need, have: len });
        }
        Ok((p, params, p.spec.shard_rows(s)?))
    }

    /// Computes a shard: a float convolution's result into `out[..n]` (`InOut(n)`, its bands
    /// in `band`, each band's padded input within about `pad_bytes`), others as new words.
    #[allow(clippy::too_many_arguments)]
    fn shard<K: Kernels>(
        &self,
        kernels: &K,
        work: ShardWork,
        cols: usize,
        input: &[u32],
        out: &mut Vec<f32>,
        band: &mut Vec<f32>,
        pad_bytes: usize,
    ) -> Result<Computed, CodedModelError> {
        let (p, params, rows) = self.checked(work, cols, input.len())?;
        let in_len = p.layer.in_len;
        if let (Some(g), ShardParams::F32 { w, b }) = (p.conv, params) {
            // The wire words read as floats in place (no copy of the input).
            let x: &[f32] = bytemuck::cast_slice(input);
            let n = rows * cols;
            grow(out, n);
            if rows > 0 {
                let rows_per_band = band_rows(g.size as usize, g.width as usize, in_len, pad_bytes);
                conv_shard(
                    kernels,
                    g,
                    in_len,
                    rows,
                    w,
                    b,
                    x,
                    &mut out[..n],
                    band,
                    rows_per_band,
                )
                .ok_or(CodedModelError::Conv {
                    layer: work.layer as usize,
                })?;
            }
            return Ok(Computed::InOut(n));
        }
        let int_x = || -> Vec<i8> { input.iter().map(|&w| w as i32 as i8).collect() };
        Ok(Computed::Words(match params {
            ShardParams::F32 { w, b } => {
                let x: &[f32] = bytemuck::cast_slice(input);
                let mut out = vec![0.0f32; rows * cols];
                shard::gemm_f32(w, b, x, in_len, cols, &mut out)?;
                out.into_iter().map(f32::to_bits).collect()
            }
            ShardParams::I8 { w, b } => {
                let mut out = vec![0i32; rows * cols];
                shard::gemm_i8(w, b, &int_x(), in_len, cols, &mut out)?;
                out.into_iter().map(|v| v as u32).collect()
            }
            ShardParams::Wrapping { w, b } => {
                let mut out = vec![0i32; rows * cols];
                shard::gemm_wrapping(w, b, &int_x(), in_len, cols, &mut out)?;
                out.into_iter().map(|v| v as u32).collect()
            }
            ShardParams::ModP { w, b } => {
                let mut out = vec![0i32; rows * cols];
                shard::gemm_mod_p(w, b, &int_x(), in_len, cols, &mut out)?;
                out.into_iter().map(|v| v as u32).collect()
            }
        }))
    }

    /// Rows × cols words expected from shard `shard` of layer `l`.
    pub fn result_len(&self, l: usize, shard: usize, cols: usize) -> Option<usize> {
        let p = self.layers.get(l)?;
        Some(p.spec.shard_rows(shard).ok()? * self.layer_cols(l, cols))
    }

    /// Gateway: layer `l`'s output (`rows × cols`, after activation) from the shard results
    /// (`results[i]`: shard `i`'s words or `None`). With `decode` the results in hand must
    /// determine the output (parity or replicas recover erased data shards); without it,
    /// rows of missing data shards are zero ([`CodedAction::Expired`]).
    ///
    /// [`CodedAction::Expired`]: tessera_core::runtime::coded::CodedAction::Expired
    pub fn finish_layer(
        &self,
        l: usize,
        results: &[Option<&[u32]>],
        cols: usize,
        decode: bool,
    ) -> Result<Vec<f32>, CodedModelError> {
        let p = self
            .layers
            .get(l)
            .ok_or(CodedModelError::Coded(CodedError::OutOfRange))?;
        let code = p.spec.code();
        let n = p.spec.shards();
        if results.len() != n {
            return Err(CodedModelError::Length {
                need: n,
                have: results.len(),
            });
        }
        for (s, r) in results.iter().enumerate() {
            let need = p.spec.shard_rows(s)? * cols;
            if let Some(r) = r {
                if r.len() != need {
                    return Err(CodedModelError::Length {
                        need,
                        have: r.len(),
                    });
                }
            }
        }
        let m = code.rows() * cols;
        // Without a decode, keep only data shards (and their replicas): parity is useless alone.
        let usable: Vec<Option<&[u32]>> = results
            .iter()
            .enumerate()
            .map(|(s, r)| match p.spec.protection() {
                Protection::Coded if !decode && s >= code.k() => None,
                _ => *r,
            })
            .collect();
        let int = matches!(p.layer.numeric, Numeric::Int8 { .. });
        let mut pre = vec![0.0f32; m];
        if int {
            let ints: Vec<Option<Vec<i32>>> = usable
                .iter()
                .map(|r| r.map(|r| r.iter().map(|&w| w as i32).collect()))
                .collect();
            let views: Vec<Option<&[i32]>> = ints.iter().map(|r| r.as_deref()).collect();
            let mut y = vec![0i32; m];
            self.assemble(p, &views, cols, decode, &mut y)?;
            let Numeric::Int8 { in_scale, w_scale } = p.layer.numeric else {
                unreachable!("checked int above")
            };
            let unit = in_scale * w_scale;
            let rows_present = self.rows_present(p, &views);
            for (row, chunk) in pre.chunks_exact_mut(cols).enumerate() {
                let ys = &y[row * cols..(row + 1) * cols];
                for (o, &v) in chunk.iter_mut().zip(ys) {
                    // A zero-filled row stays zero (no bias): missing, not computed.
                    *o = if rows_present[row] {
                        v as f32 * unit
                    } else {
                        0.0
                    };
                }
            }
        } else {
            // The results' words are the values' bits: viewed, not copied (a gateway decodes
            // layers of megabytes, a microcontroller's among them).
            let views: Vec<Option<&[f32]>> = usable
                .iter()
                .map(|r| r.map(bytemuck::cast_slice::<u32, f32>))
                .collect();
            self.assemble(p, &views, cols, decode, &mut pre)?;
        }
        for v in pre.iter_mut() {
            *v = p.layer.activation.apply(*v);
        }
        Ok(pre)
    }

    /// Which output rows are real given the data shards (or replicas) present.
    fn rows_present<T>(&self, p: &Prepared, views: &[Option<&[T]>]) -> Vec<bool> {
        let code = p.spec.code();
        let mut rows = vec![false; code.rows()];
        let all = views.iter().filter(|v| v.is_some()).count().ge(&code.k());
        for d in 0..code.k() {
            let here = views[d].is_some()
                || (p.spec.protection() == Protection::Replicated
                    && views.get(d + code.k()).is_some_and(|v| v.is_some()));
            let decoded = all && p.spec.protection() == Protection::Coded;
            if here || decoded {
                if let Ok(r) = code.data_rows(d) {
                    rows[r].iter_mut().for_each(|x| *x = true);
                }
            }
        }
        rows
    }

    /// Decodes (or copies the data shards present) into `out` (`rows × cols`, zeros where
    /// nothing arrived).
    fn assemble<T: Copy + Default + Decodable>(
        &self,
        p: &Prepared,
        views: &[Option<&[T]>],
        cols: usize,
        decode: bool,
        out: &mut [T],
    ) -> Result<(), CodedModelError> {
        let code = p.spec.code();
        out.iter_mut().for_each(|v| *v = T::default());
        let copy = |d: usize, res: &[T], out: &mut [T]| {
            if let Ok(r) = code.data_rows(d) {
                if let Some(dst) = out.get_mut(r.start * cols..r.end * cols) {
                    dst.copy_from_slice(&res[..dst.len()]);
                }
            }
        };
        match p.spec.protection() {
            Protection::Replicated if decode => {
                replicate::assemble(code, views, cols, out)?;
            }
            Protection::Replicated => {
                for d in 0..code.k() {
                    if let Some(r) = views[d].or(views[d + code.k()]) {
                        copy(d, r, out);
                    }
                }
            }
            Protection::Coded if decode => {
                let mask = views
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| v.is_some())
                    .fold(0u32, |m, (i, _)| m | 1 << i);
                let dec = Decoder::from_mask(code, mask)?;
                T::decode(&dec, views, cols, out)?;
            }
            Protection::Coded => {
                for (d, r) in views.iter().enumerate().take(code.k()) {
                    if let Some(r) = r {
                        copy(d, r, out);
                    }
                }
            }
        }
        Ok(())
    }

    /// The whole chain on one node with the same arithmetic (the centralised reference a coded
    /// run must reproduce exactly in integer mode).
    pub fn reference(&self, input: &[f32], cols: usize) -> Result<Vec<f32>, CodedModelError> {
        self.reference_with(&Portable, input, cols, &mut super::Chain)
    }

    /// As [`reference`](Self::reference) with convolutions run by `kernels` (compare workers
    /// with the run of the same kernels) and `glue` between the layers (as the gateway runs
    /// it; the frame key passed to the glue is origin 0, number `u32::MAX`).
    pub fn reference_with<K: Kernels, G: super::Glue>(
        &self,
        kernels: &K,
        input: &[f32],
        frame_cols: usize,
        glue: &mut G,
    ) -> Result<Vec<f32>, CodedModelError> {
        let frame = tessera_core::wire::FrameKey::new(0, u32::MAX);
        let mut x = input.to_vec();
        for (l, p) in self.layers.iter().enumerate() {
            let cols = self.layer_cols(l, frame_cols);
            let words = self.input_words(l, &x);
            let k = p.spec.code().k();
            let results: Vec<Vec<u32>> = (0..k)
                .map(|d| {
                    self.compute_shard_with(
                        kernels,
                        ShardWork {
                            frame,
                            layer: l as u8,
                            shard: d as u8,
                        },
                        cols,
                        &words,
                    )
                })
                .collect::<Result<_, _>>()?;
            let mut views: Vec<Option<&[u32]>> = results.iter().map(|r| Some(&r[..])).collect();
            views.resize(p.spec.shards(), None);
            let out = self.finish_layer(l, &views, cols, true)?;
            x = if l + 1 < self.layers.len() {
                glue.between(frame, l, out)
            } else {
                glue.finish(frame, out)
            };
        }
        Ok(x)
    }
}

/// Element types the decoder handles.
trait Decodable: Sized {
    fn decode(
        dec: &Decoder,
        views: &[Option<&[Self]>],
        cols: usize,
        out: &mut [Self],
    ) -> Result<(), CodeError>;
}

impl Decodable for f32 {
    fn decode(
        dec: &Decoder,
        views: &[Option<&[f32]>],
        cols: usize,
        out: &mut [f32],
    ) -> Result<(), CodeError> {
        dec.decode_f32(views, cols, out)
    }
}

impl Decodable for i32 {
    fn decode(
        dec: &Decoder,
        views: &[Option<&[i32]>],
        cols: usize,
        out: &mut [i32],
    ) -> Result<(), CodeError> {
        dec.decode_i32(views, cols, out)
    }
}

/// Checks `layer` (index `index`) against its shape, makes its code and spec under `scheme`
/// over `workers`, and encodes the shards `holds` keeps; a worker's copy drops the weights.
fn prepare_layer(
    mut layer: LinearLayer,
    conv: Option<ConvGeom>,
    scheme: &LayerScheme,
    workers: &[NodeId],
    index: usize,
    holds: Holds,
) -> Result<Prepared, CodedModelError> {
    if let Some(g) = conv {
        let odd = g.size % 2 == 1;
        if !odd || g.cols() == 0 || layer.numeric != Numeric::Float {
            return Err(CodedModelError::Conv { layer: index });
        }
    }
    let taps = conv.map_or(1, |g| (g.size * g.size) as usize);
    let row_len = layer.in_len.saturating_mul(taps);
    // A plan-only layer comes without weights.
    let sized = |len: usize, want: usize| len == want || (holds == Holds::Plan && len == 0);
    let shape_ok = sized(layer.weights.len(), layer.rows.saturating_mul(row_len))
        && sized(layer.bias.len(), layer.rows)
        && layer.rows > 0
        && layer.in_len > 0;
    if !shape_ok {
        return Err(CodedModelError::Shape { layer: index });
    }
    let r = match scheme.protection {
        Protection::Replicated => 0,
        Protection::Coded => scheme.r,
    };
    let code = Code::new(layer.rows, scheme.k, r)?;
    let n = match scheme.protection {
        Protection::Coded => code.n(),
        Protection::Replicated => replicate::devices(code.k()),
    };
    let assigned: Vec<NodeId> = (0..n).map(|i| workers[i % workers.len()]).collect();
    let spec = CodedLayerSpec::new(code, scheme.protection, &assigned)?;
    let held: Vec<bool> = assigned
        .iter()
        .map(|&w| holds == Holds::All || holds == Holds::Worker(w))
        .collect();
    let shards = match sole_float_shard(&layer, &spec, &held) {
        Some((s, d)) => {
            let mut shards = vec![None; n];
            shards[s] = Some(match d.checked_sub(code.k()) {
                None => take_data_shard(&mut layer, &code, d, row_len, index)?,
                Some(j) => take_parity_shard(&mut layer, &code, j, row_len, index)?,
            });
            shards
        }
        None => {
            let source = Source::of(&layer, index)?;
            (0..n)
                .map(|s| held[s].then(|| source.shard(&spec, s, row_len)).transpose())
                .collect::<Result<Vec<_>, _>>()?
        }
    };
    let mut p = Prepared {
        layer,
        conv,
        spec,
        shards,
    };
    p.keep_only(holds);
    Ok(p)
}

/// The one shard held (`held[s]`) of a float layer: (shard, data shard `d < k` or parity
/// `k + j`; a replica names the data shard it copies). A worker makes such a shard in the
/// layer's own buffer ([`take_data_shard`], [`take_parity_shard`]).
fn sole_float_shard(
    layer: &LinearLayer,
    spec: &CodedLayerSpec,
    held: &[bool],
) -> Option<(usize, usize)> {
    let mut mine = held.iter().enumerate().filter(|(_, &h)| h).map(|(s, _)| s);
    let (Some(s), None) = (mine.next(), mine.next()) else {
        return None;
    };
    let d = match spec.protection() {
        Protection::Replicated => replicate::replica_of(spec.code(), s),
        Protection::Coded => s,
    };
    (layer.numeric == Numeric::Float).then_some((s, d))
}

/// Data shard `d` of float `layer` (layer `index`, `row_len` weights per row) cut out of the layer's own
/// weight buffer, which the layer gives up: the same values as [`encode::data_shard`]'s
/// slice, without a second copy of the shard beside the layer's weights.
fn take_data_shard(
    layer: &mut LinearLayer,
    code: &Code,
    d: usize,
    row_len: usize,
    index: usize,
) -> Result<ShardParams, CodedModelError> {
    let rows = code.data_rows(d)?;
    let b = layer
        .bias
        .get(rows.clone())
        .ok_or(CodedModelError::Shape { layer: index })?
        .to_vec();
    let mut w = core::mem::take(&mut layer.weights);
    w.truncate(rows.end * row_len);
    w.drain(..rows.start * row_len);
    w.shrink_to_fit();
    Ok(ShardParams::F32 { w, b })
}

/// Parity shard `j` of float `layer` (layer `index`, `row_len` weights per row) computed in the
/// layer's own weight buffer, which the layer gives up: the same values as
/// [`encode::parity_f32`] (each value summed in `f64` over the data shards in order), without
/// a second buffer beside the whole layer. In place is safe: parity row `t` overwrites data
/// row `t` of shard 0 only after reading it, and reads the other shards' rows `d·s + t`,
/// which lie past every parity row.
fn take_parity_shard(
    layer: &mut LinearLayer,
    code: &Code,
    j: usize,
    row_len: usize,
    index: usize,
) -> Result<ShardParams, CodedModelError> {
    let (s, rows) = (code.shard_rows(), code.rows());
    if j >= code.r() || layer.weights.len() != rows * row_len || layer.bias.len() != rows {
        return Err(CodedModelError::Shape { layer: index });
    }
    let coeffs = (0..code.k())
        .map(|d| code.coeff(j, d))
        .collect::<Result<Vec<f64>, _>>()?;
    let mut w = core::mem::take(&mut layer.weights);
    let mut b = core::mem::take(&mut layer.bias);
    for t in 0..s {
        for c in 0..row_len {
            let mut acc = 0.0f64;
            for (d, &k) in coeffs.iter().enumerate() {
                let row = d * s + t;
                if row < rows {
                    acc += k * f64::from(w[row * row_len + c]);
                }
            }
            w[t * row_len + c] = acc as f32;
        }
        let mut bias = 0.0f64;
        for (d, &k) in coeffs.iter().enumerate() {
            let row = d * s + t;
            if row < rows {
                bias += k * f64::from(b[row]);
            }
        }
        b[t] = bias as f32;
    }
    w.truncate(s * row_len);
    w.shrink_to_fit();
    b.truncate(s);
    b.shrink_to_fit();
    Ok(ShardParams::F32 { w, b })
}

/// A layer's parameters in the arithmetic its shards are encoded from.
enum Source<'a> {
    /// Float weights and bias, as given.
    F32 { w: &'a [f32], b: &'a [f32] },
    /// Quantised weights and bias (`i32` bias in units of `w_scale·in_scale`).
    I8 { w: Vec<i8>, b: Vec<i32> },
}

impl<'a> Source<'a> {
    /// `layer`'s parameters (layer `index`), quantised when it is int8.
    fn of(layer: &'a LinearLayer, index: usize) -> Result<Self, CodedModelError> {
        let Numeric::Int8 { in_scale, w_scale } = layer.numeric else {
            return Ok(Source::F32 {
                w: &layer.weights,
                b: &layer.bias,
            });
        };
        let ok = |v: f32| v.is_finite() && v > 0.0;
        if !ok(in_scale) || !ok(w_scale) {
            return Err(CodedModelError::Scale { layer: index });
        }
        Ok(Source::I8 {
            w: layer
                .weights
                .iter()
                .map(|&w| quantize(w, w_scale))
                .collect(),
            b: layer
                .bias
                .iter()
                .map(|&b| round_clamped(b / (w_scale * in_scale), (1 << 24) as f32) as i32)
                .collect(),
        })
    }

    /// Shard `s`'s parameters under `spec` (`in_len` weights per row): a data shard's slice
    /// of rows, a parity shard's combination of every row, a replica its data shard's.
    fn shard(
        &self,
        spec: &CodedLayerSpec,
        s: usize,
        in_len: usize,
    ) -> Result<ShardParams, CodedModelError> {
        let code = spec.code();
        let d = match spec.protection() {
            Protection::Replicated => replicate::replica_of(code, s),
            Protection::Coded => s,
        };
        let s_rows = code.shard_rows();
        if d < code.k() {
            return Ok(match self {
                Source::F32 { w, b } => {
                    let (w, b) = encode::data_shard(code, d, w, b, in_len)?;
                    ShardParams::F32 {
                        w: w.to_vec(),
                        b: b.to_vec(),
                    }
                }
                Source::I8 { w, b } => {
                    let (w, b) = encode::data_shard(code, d, w, b, in_len)?;
                    ShardParams::I8 {
                        w: w.to_vec(),
                        b: b.to_vec(),
                    }
                }
            });
        }
        let j = d - code.k();
        Ok(match self {
            Source::F32 { w, b } => {
                let mut pw = vec![0.0f32; s_rows * in_len];
                let mut pb = vec![0.0f32; s_rows];
                encode::parity_f32(code, j, w, b, in_len, &mut pw, &mut pb)?;
                ShardParams::F32 { w: pw, b: pb }
            }
            Source::I8 { w, b } if code.int_arithmetic() == Arithmetic::Wrapping => {
                let mut pw = vec![0i32; s_rows * in_len];
                let mut pb = vec![0i32; s_rows];
                encode::parity_wrapping(code, w, b, in_len, &mut pw, &mut pb)?;
                ShardParams::Wrapping { w: pw, b: pb }
            }
            Source::I8 { w, b } => {
                let mut pw = vec![0u32; s_rows * in_len];
                let mut pb = vec![0u32; s_rows];
                encode::parity_mod_p(code, j, w, b, in_len, &mut pw, &mut pb)?;
                ShardParams::ModP { w: pw, b: pb }
            }
        })
    }
}

impl Prepared {
    /// Weights per output row.
    fn row_len(&self) -> usize {
        self.layer.in_len * self.conv.map_or(1, |g| (g.size * g.size) as usize)
    }

    /// Drops what `holds` does not keep: another worker's shards and the layer's weights.
    fn keep_only(&mut self, holds: Holds) {
        let node = match holds {
            Holds::All => return,
            Holds::Worker(node) => Some(node),
            Holds::Plan => None,
        };
        for (s, shard) in self.shards.iter_mut().enumerate() {
            if node.is_none() || self.spec.workers().get(s) != node.as_ref() {
                *shard = None;
            }
        }
        self.layer.weights = Vec::new();
        self.layer.bias = Vec::new();
    }
}

/// A shard's result: new words, or the first `n` values of the caller's buffer.
enum Computed {
    Words(Vec<u32>),
    InOut(usize),
}

/// Grows `v` to at least `len` elements (never shrinks it: a compute thread keeps it).
fn grow(v: &mut Vec<f32>, len: usize) {
    if v.len() < len {
        // Exactly: a doubled capacity would stay resident for good.
        v.reserve_exact(len - v.len());
        v.resize(len, 0.0);
    }
}

/// `values` as wire words in `words`' allocation when it is long enough (cut to their length
/// and shrunk: the tail's pages go back), in a new one otherwise.
fn into_words(mut words: Vec<u32>, values: &[f32]) -> Vec<u32> {
    if words.len() < values.len() {
        return values.iter().map(|v| v.to_bits()).collect();
    }
    words.truncate(values.len());
    for (w, v) in words.iter_mut().zip(values) {
        *w = v.to_bits();
    }
    words.shrink_to_fit();
    words
}

/// Bytes of padded input a coded convolution's kernel works on at once when the caller names
/// no scratch of its own ([`CodedModel::compute_shard_with`]): a shard's output rows are
/// computed in bands whose padded input rows fit, not over the whole padded map (YOLOv2's
/// 19x19x1280 input padded is 3.3 MB of kernel scratch, kept by the thread between calls).
pub(crate) const CONV_BAND_BYTES: usize = 1024 * 1024;

/// Widest vector, in `f32` lanes, the kernels pad a row to (AVX-512's 16).
const PAD_LANES: usize = 16;

/// Output rows of a band of a `size × size` convolution over a `width`-wide, `in_len`-channel
/// map whose padded input fits `pad_bytes` (at least one). As the FMA kernels lay it out: rows
/// of whole vectors plus `size − 1` columns, each channel's plane rounded up to an odd number
/// of 64-byte lines (at most 32 values more).
fn band_rows(size: usize, width: usize, in_len: usize, pad_bytes: usize) -> usize {
    let row = width.div_ceil(PAD_LANES) * PAD_LANES + size - 1;
    let per_channel = pad_bytes / 4 / in_len.max(1);
    (per_channel.saturating_sub(32) / row.max(1))
        .saturating_sub(size - 1)
        .max(1)
}

/// A float convolution's parts, as the kernels take them.
fn conv_parts<'w>(
    g: ConvGeom,
    in_len: usize,
    rows: usize,
    w: &'w [f32],
    b: &'w [f32],
) -> (Conv, Shape, Region, ConvParams<'w>) {
    let conv = Conv {
        filters: rows as u32,
        size: g.size,
        stride: 1,
        pad: g.size / 2,
        batch_norm: false,
        activation: ConvActivation::Linear,
    };
    (
        conv,
        Shape::new(g.width, g.height, in_len as u32),
        Region::full(g.width, g.height),
        ConvParams {
            biases: b,
            bn: None,
            weights: w,
        },
    )
}

/// The output rows `y0..y1` of the whole map, as a region.
fn rows_region(g: ConvGeom, y0: usize, y1: usize) -> Region {
    Region::new(Span::new(0, g.width), Span::new(y0 as u32, y1 as u32))
}

/// One shard of a convolution: `rows` filters (`w`, `b`, no batch norm, linear) over the
/// `in_len`-channel map `x`, into `out` (`rows × cols`). `None` if the kernel refuses. Wider
/// than 1×1, it runs in bands of `band` output rows; each output keeps its own summation
/// order, so the result is the whole map's bit for bit.
#[allow(clippy::too_many_arguments)]
fn conv_shard<K: Kernels>(
    kernels: &K,
    g: ConvGeom,
    in_len: usize,
    rows: usize,
    w: &[f32],
    b: &[f32],
    x: &[f32],
    out: &mut [f32],
    part: &mut Vec<f32>,
    band: usize,
) -> Option<()> {
    let (conv, map, full, params) = conv_parts(g, in_len, rows, w, b);
    let src = FeatureView::new(x, full, in_len as u32).ok()?;
    let (width, height) = (g.width as usize, g.height as usize);
    if g.size == 1 || band >= height {
        let mut dst = FeatureViewMut::new(out, full, rows as u32).ok()?;
        return kernels.conv(&conv, map, &params, &src, &mut dst).ok();
    }
    grow(part, rows * band * width);
    for y0 in (0..height).step_by(band) {
        let y1 = (y0 + band).min(height);
        let plane = (y1 - y0) * width;
        let region = rows_region(g, y0, y1);
        let mut dst = FeatureViewMut::new(&mut part[..rows * plane], region, rows as u32).ok()?;
        kernels.conv(&conv, map, &params, &src, &mut dst).ok()?;
        for (c, values) in part[..rows * plane].chunks_exact(plane).enumerate() {
            let at = c * height * width + y0 * width;
            out.get_mut(at..at + plane)?.copy_from_slice(values);
        }
    }
    Some(())
}

/// [`conv_shard`] with the result written over its own input `x` (its first
/// `rows × height × width` values): band by band, each band computed into `buf`, then its
/// rows below the first input row a later band reads copied into `x` (those input rows are
/// dead in every channel, and output channel `c` lands on input channel `c`'s rows), the
/// rest (`size / 2` rows) held in `buf` until the next band is done. The kernels read a band's
/// input rows only (`size / 2` beyond it on each side), so every band sees the input as it
/// came. `None` when it does not apply (a 1×1 or single-band convolution, more filters than
/// input channels, bands shorter than `size / 2`): compute it elsewhere; `Some(None)` if the
/// kernel refused.
#[allow(clippy::too_many_arguments)]
fn conv_shard_in_place<K: Kernels>(
    kernels: &K,
    g: ConvGeom,
    in_len: usize,
    rows: usize,
    w: &[f32],
    b: &[f32],
    x: &mut [f32],
    buf: &mut Vec<f32>,
    band: usize,
) -> Option<Option<()>> {
    let (width, height) = (g.width as usize, g.height as usize);
    let hold = g.size as usize / 2;
    // A band held in `buf` is at most what `buf` takes besides the held rows, when it is
    // already larger than the smallest band (a compute thread's tile buffer is not grown).
    let fit = (buf.len() / (rows * width).max(1)).saturating_sub(hold);
    let band = if fit > hold { band.min(fit) } else { band };
    if g.size == 1 || band >= height || band < hold || rows == 0 || rows > in_len {
        return None;
    }
    let (conv, map, full, params) = conv_parts(g, in_len, rows, w, b);
    let plane_hw = height * width;
    grow(buf, rows * (band + hold) * width);
    let (cur, held) = buf.split_at_mut(rows * band * width);
    // Output rows `held_rows` of every channel wait in `held` (channel `c` at `c·hold·width`).
    let mut held_rows = 0..0;
    for y0 in (0..height).step_by(band) {
        let y1 = (y0 + band).min(height);
        let plane = (y1 - y0) * width;
        {
            let Ok(src) = FeatureView::new(x, full, in_len as u32) else {
                return Some(None);
            };
            let region = rows_region(g, y0, y1);
            let Ok(mut dst) = FeatureViewMut::new(&mut cur[..rows * plane], region, rows as u32)
            else {
                return Some(None);
            };
            if kernels.conv(&conv, map, &params, &src, &mut dst).is_err() {
                return Some(None);
            }
        }
        // Input rows from `free` on are read by the next band (a full one: `band ≥ hold`).
        let free = if y1 == height { height } else { y1 - hold };
        for c in 0..rows {
            let base = c * plane_hw;
            let n = held_rows.len() * width;
            let at = base + held_rows.start * width;
            x[at..at + n].copy_from_slice(&held[c * hold * width..][..n]);
            let n = (free - y0) * width;
            let at = base + y0 * width;
            x[at..at + n].copy_from_slice(&cur[c * plane..][..n]);
            let n = (y1 - free) * width;
            held[c * hold * width..][..n]
                .copy_from_slice(&cur[c * plane + (free - y0) * width..][..n]);
        }
        held_rows = free..y1;
    }
    Some(Some(()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_core::kernel::Portable;

    /// A 3x3 shard over a map wide enough in channels to run in bands gives the whole map's
    /// convolution bit for bit (portable and FMA kernels).
    #[test]
    fn banded_conv_shards_equal_the_whole_map() {
        let (width, height, in_len, rows) = (5u32, 47u32, 1024usize, 3usize);
        let band = band_rows(3, width as usize, in_len, CONV_BAND_BYTES);
        assert!(
            band < height as usize / 2,
            "the test must cross bands: {band}"
        );
        let g = ConvGeom {
            size: 3,
            width,
            height,
        };
        let val = |i: usize, m: usize| ((i * 7919) % m) as f32 / m as f32 - 0.5;
        let x: Vec<f32> = (0..in_len * g.cols()).map(|i| val(i, 97)).collect();
        let w: Vec<f32> = (0..rows * in_len * 9).map(|i| val(i, 89) * 0.1).collect();
        let b: Vec<f32> = (0..rows).map(|i| i as f32 * 0.25).collect();
        let whole = |kernels: &dyn Fn(&mut [f32])| {
            let mut out = vec![0.0f32; rows * g.cols()];
            kernels(&mut out);
            out
        };
        let conv = Conv {
            filters: rows as u32,
            size: 3,
            stride: 1,
            pad: 1,
            batch_norm: false,
            activation: ConvActivation::Linear,
        };
        let map = Shape::new(width, height, in_len as u32);
        let params = ConvParams {
            biases: &b,
            bn: None,
            weights: &w,
        };
        let full = Region::full(width, height);
        let src = FeatureView::new(&x, full, in_len as u32).unwrap();
        let expect = whole(&|out| {
            let mut dst = FeatureViewMut::new(out, full, rows as u32).unwrap();
            Portable.conv(&conv, map, &params, &src, &mut dst).unwrap();
        });
        let mut banded = vec![0.0f32; rows * g.cols()];
        // A band buffer lent by a compute thread holds an earlier job's values: overwritten.
        let mut part = vec![f32::NAN; 7];
        conv_shard(
            &Portable,
            g,
            in_len,
            rows,
            &w,
            &b,
            &x,
            &mut banded,
            &mut part,
            band,
        )
        .unwrap();
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&banded), bits(&expect));
        #[cfg(feature = "simd")]
        {
            let fma = crate::kernels::Fma::new();
            let expect = whole(&|out| {
                let mut dst = FeatureViewMut::new(out, full, rows as u32).unwrap();
                fma.conv(&conv, map, &params, &src, &mut dst).unwrap();
            });
            part.iter_mut().for_each(|v| *v = f32::NAN);
            conv_shard(
                &fma,
                g,
                in_len,
                rows,
                &w,
                &b,
                &x,
                &mut banded,
                &mut part,
                band,
            )
            .unwrap();
            assert_eq!(bits(&banded), bits(&expect));
        }
    }

    /// The whole map's convolution of `x` by `rows` filters of `size × size`, on `kernels`.
    fn whole_map<K: Kernels>(
        kernels: &K,
        g: ConvGeom,
        in_len: usize,
        rows: usize,
        w: &[f32],
        b: &[f32],
        x: &[f32],
    ) -> Vec<u32> {
        let (conv, map, full, params) = conv_parts(g, in_len, rows, w, b);
        let src = FeatureView::new(x, full, in_len as u32).unwrap();
        let mut out = vec![0.0f32; rows * g.cols()];
        let mut dst = FeatureViewMut::new(&mut out, full, rows as u32).unwrap();
        kernels.conv(&conv, map, &params, &src, &mut dst).unwrap();
        out.iter().map(|v| v.to_bits()).collect()
    }

    /// Computed over its own input, band by band (bands of 1 to 9 rows, the last one short or
    /// not; 3x3 and 5x5; as many filters as input channels and fewer), a shard gives the whole
    /// map's convolution bit for bit, from a buffer holding an earlier job's values; a band
    /// shorter than the rows it holds back, a 1×1 or more filters than channels are refused.
    fn in_place_equals_the_whole_map<K: Kernels>(kernels: &K) {
        let val = |i: usize, m: usize| ((i * 7919) % m) as f32 / m as f32 - 0.5;
        for (size, width, height, in_len, rows) in
            [(3, 7, 11, 24, 24), (3, 5, 13, 32, 9), (5, 6, 12, 16, 16)]
        {
            let g = ConvGeom {
                size,
                width,
                height,
            };
            let x: Vec<f32> = (0..in_len * g.cols()).map(|i| val(i, 97)).collect();
            let k = (size * size) as usize;
            let w: Vec<f32> = (0..rows * in_len * k).map(|i| val(i, 89) * 0.1).collect();
            let b: Vec<f32> = (0..rows).map(|i| i as f32 * 0.25).collect();
            let expect = whole_map(kernels, g, in_len, rows, &w, &b, &x);
            let hold = size as usize / 2;
            for band in hold..10 {
                let mut y = x.clone();
                let mut buf = Vec::new();
                let done =
                    conv_shard_in_place(kernels, g, in_len, rows, &w, &b, &mut y, &mut buf, band);
                if band >= height as usize {
                    assert_eq!(done, None, "one band: computed elsewhere");
                    continue;
                }
                assert_eq!(done, Some(Some(())), "{size}x{size}, band {band}");
                let got: Vec<u32> = y[..rows * g.cols()].iter().map(|v| v.to_bits()).collect();
                assert_eq!(got, expect, "{size}x{size} {in_len}->{rows}, band {band}");
                // A buffer lent by a compute thread holds an earlier job's values.
                buf.iter_mut().for_each(|v| *v = f32::NAN);
                let mut y = x.clone();
                conv_shard_in_place(kernels, g, in_len, rows, &w, &b, &mut y, &mut buf, band);
                let again: Vec<u32> = y[..rows * g.cols()].iter().map(|v| v.to_bits()).collect();
                assert_eq!(again, expect, "{size}x{size}, band {band}, a used buffer");
            }
            if hold > 1 {
                let mut y = x.clone();
                let short =
                    conv_shard_in_place(kernels, g, in_len, rows, &w, &b, &mut y, &mut vec![], 1);
                assert_eq!(short, None);
            }
        }
        let g = ConvGeom {
            size: 3,
            width: 4,
            height: 9,
        };
        let mut y = vec![0.5f32; 4 * g.cols()];
        let (w, b) = (vec![0.1f32; 5 * 4 * 9], vec![0.0f32; 5]);
        let more = conv_shard_in_place(kernels, g, 4, 5, &w, &b, &mut y, &mut vec![], 2);
        assert_eq!(more, None, "more filters than input channels");
        let g1 = ConvGeom {
            size: 1,
            width: 4,
            height: 9,
        };
        let (w, b) = (vec![0.1f32; 2 * 4], vec![0.0f32; 2]);
        let one = conv_shard_in_place(kernels, g1, 4, 2, &w, &b, &mut y, &mut vec![], 2);
        assert_eq!(one, None, "a 1x1 convolution");
    }

    #[test]
    fn in_place_shards_equal_the_whole_map_portable() {
        in_place_equals_the_whole_map(&Portable);
    }

    #[cfg(feature = "simd")]
    #[test]
    fn in_place_shards_equal_the_whole_map_fma() {
        in_place_equals_the_whole_map(&crate::kernels::Fma::new());
    }

    /// A band's padded input, laid out as the FMA kernels do, fits the bytes it was sized
    /// for (YOLOv2's tail maps: 38x38x256, 19x19x512, 19x19x1024, 19x19x1280).
    #[test]
    fn bands_fit_their_padded_input_budget() {
        for (width, in_len) in [(38usize, 256usize), (19, 512), (19, 1024), (19, 1280)] {
            for budget in [256 * 1024, 640 * 1024, 1_000_000, CONV_BAND_BYTES] {
                let band = band_rows(3, width, in_len, budget);
                let wp = width.div_ceil(PAD_LANES) * PAD_LANES + 2;
                let lines = ((band + 2) * wp).div_ceil(16);
                let bytes = (lines | 1) * 16 * in_len * 4;
                assert!(
                    band == 1 || bytes <= budget,
                    "{width}x{in_len}: {band} rows, {bytes} > {budget}"
                );
            }
        }
    }
}
