//! The network's tail as coded (CDC) layers across the edges.
//!
//! Every convolution of the tail (`[from, end)`; for YOLOv2 from 16: layers 16, 18–24, 29 and
//! 30) becomes one coded layer of a [`CodedModel`]: its filters split over `k` data shards
//! plus parity (or replicas), each edge holding only its shards' weights. Batch norm is folded
//! into the weights and bias exactly as the SIMD kernel folds it
//! (`tessera_core::kernel::batch_norm::fold`: `a = γ/(√σ² + ε)` in double precision,
//! `w' = w·a`, `b' = β − μ·a`, rounded to f32), and the activation (leaky or linear) is applied
//! by the gateway after decoding.
//!
//! A convolution with fewer parameters than input values (YOLOv2's layer 26, the 1x1 conv on
//! the route from layer 16) is the exception: the gateway holds its parameters and runs it, so
//! its input (3.0 MB for YOLOv2-608) never travels to, nor waits in, any worker.
//!
//! Everything else runs on the gateway in a [`TailGlue`]: those convolutions on the portable
//! kernel (so the output does not depend on the gateway's kernels), max pools through the
//! gateway's kernels, route, reorg and region through
//! `tessera_core::kernel::tail`, as the plain tail ([`crate::pipeline::run_tail`]) does. The
//! glue keeps, per frame, the outputs a later route reads (layer 16 for route 25, layer 24 for
//! route 28) until that route ran, and forgets the frame when it finishes.

extern crate alloc;

mod check;
mod compare;
mod glue;
mod join;
mod place;
mod scheme;
mod summary;
mod worker;

pub use check::{check, detections_match, CheckError, CodedCheck};
pub use compare::{bit_identical, max_abs_diff};
use glue::GatewayConvs;
pub use glue::{GlueError, TailGlue};
pub use join::{Joined, TailJoin};
pub use place::{PlaceError, TailPlace};
pub use scheme::{SchemeError, TailScheme};
pub use summary::CheckSummary;
pub use worker::{worker_model, WorkerTailError};

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::Ordering;

use super::{Activation, CodedModel, CodedModelError, ConvGeom, LayerScheme, LinearLayer, Numeric};
use tessera_core::kernel::batch_norm;
use tessera_core::kernel::{Kernels, Portable};
use tessera_core::model::weights::{ConvParams, Weights};
use tessera_core::model::{Activation as ConvActivation, Layer, LayerKind, Network, Shape};
use tessera_core::runtime::coded::MAX_CODED_LAYERS;
use tessera_core::wire::{FrameKey, NodeId, GATEWAY};

/// Why the tail cannot run coded.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum CodedTailError {
    /// `from` is not inside the network (it must be 1..layers).
    Range {
        /// First tail layer asked for.
        from: usize,
        /// Layers of the network.
        layers: usize,
    },
    /// The first tail layer is not a convolution (its input must be the stack output the
    /// coded gateway receives).
    FirstNotConv {
        /// The layer.
        layer: usize,
    },
    /// A tail convolution is not stride 1 with "same" padding and an odd kernel.
    NotSame {
        /// The layer.
        layer: usize,
        /// Kernel side.
        size: u32,
        /// Stride.
        stride: u32,
        /// Padding.
        pad: u32,
    },
    /// A tail route reads a layer before the tail (the glue only sees the tail's outputs).
    RouteOutside {
        /// The route layer.
        layer: usize,
        /// The source it reads.
        source: usize,
    },
    /// More tail convolutions than a coded model holds.
    TooManyConvs {
        /// Convolutions in the tail.
        count: usize,
    },
    /// The weights do not cover a tail convolution.
    Weights {
        /// The layer.
        layer: usize,
    },
    /// The scheme does not fit the edges.
    Scheme(SchemeError),
    /// The coded model refused.
    Model(CodedModelError),
    /// A gateway layer (pool, route, reorg, region) failed.
    Glue {
        /// The layer.
        layer: usize,
        /// Why.
        error: GlueError,
    },
}

impl fmt::Display for CodedTailError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodedTailError::Range { from, layers } => {
                write!(
                    f,
                    "the tail must start inside layers 1..{layers}, not at {from}"
                )
            }
            CodedTailError::FirstNotConv { layer } => write!(
                f,
                "tail layer {layer} is not a convolution: a coded tail must start with one"
            ),
            CodedTailError::NotSame {
                layer,
                size,
                stride,
                pad,
            } => write!(
                f,
                "tail layer {layer} is a {size}x{size} convolution with stride {stride} and \
                 padding {pad}: coded layers must be stride 1 with \"same\" padding"
            ),
            CodedTailError::RouteOutside { layer, source } => write!(
                f,
                "route {layer} reads layer {source}, which is before the tail"
            ),
            CodedTailError::TooManyConvs { count } => write!(
                f,
                "the tail has {count} convolutions, a coded model holds at most \
                 {MAX_CODED_LAYERS}"
            ),
            CodedTailError::Weights { layer } => {
                write!(f, "the weights do not cover tail layer {layer}")
            }
            CodedTailError::Scheme(e) => write!(f, "{e}"),
            CodedTailError::Model(e) => write!(f, "coded model: {e}"),
            CodedTailError::Glue { layer, error } => write!(f, "tail layer {layer}: {error}"),
        }
    }
}

impl core::error::Error for CodedTailError {}

impl From<CodedModelError> for CodedTailError {
    fn from(e: CodedModelError) -> Self {
        CodedTailError::Model(e)
    }
}

/// A convolution's weights and bias with its batch norm folded in, as the SIMD kernel folds
/// it ([`batch_norm::fold`]): `w' = w·a` with `a` in double precision, `b' = β − μ·a`.
pub fn fold_batch_norm(params: &ConvParams<'_>, filters: usize) -> (Vec<f32>, Vec<f32>) {
    let (scales, b) = folds(params, filters);
    let mut w = params.weights.to_vec();
    scale_filters(&mut w, scales.as_deref());
    (w, b)
}

/// As [`fold_batch_norm`] on conv layer `l`'s parameters `raw` (in Darknet order), folding in
/// place: the weights are `raw`'s own buffer, so no second copy of the layer is made.
/// `None` if `l` is no convolution or `raw` does not hold its parameters.
fn fold_batch_norm_owned(l: &Layer, mut raw: Vec<f32>) -> Option<(Vec<f32>, Vec<f32>)> {
    let filters = l.conv()?.filters as usize;
    let params = ConvParams::of(l, &raw)?;
    let (scales, b) = folds(&params, filters);
    let len = params.weights.len();
    let head = params.biases.len() + params.bn.map_or(0, |bn| 3 * bn.scales.len());
    raw.drain(..head);
    raw.truncate(len);
    scale_filters(&mut raw, scales.as_deref());
    Some((raw, b))
}

/// Per filter, the scale multiplied into its weights (`None` without batch norm: they stay)
/// and its bias.
fn folds(params: &ConvParams<'_>, filters: usize) -> (Option<Vec<f64>>, Vec<f32>) {
    let f: Vec<_> = (0..filters).map(|o| batch_norm::fold(params, o)).collect();
    let scales = params
        .bn
        .is_some()
        .then(|| f.iter().map(|f| f.scale).collect());
    (scales, f.iter().map(|f| f.shift).collect())
}

/// Multiplies each filter's weights (`w` split evenly over `scales`) by its scale.
fn scale_filters(w: &mut [f32], scales: Option<&[f64]>) {
    let Some(scales) = scales else {
        return;
    };
    let per = w.len() / scales.len().max(1);
    for (chunk, &a) in w.chunks_exact_mut(per.max(1)).zip(scales) {
        for x in chunk {
            *x = (*x as f64 * a) as f32;
        }
    }
}

/// Whether tail convolution `l` runs on the gateway, in the glue, rather than coded: when it
/// has fewer parameters than input values, the gateway holding its parameters costs less than
/// every worker receiving (and holding) its input. YOLOv2's layer 26 (a 1x1 conv on the route
/// from layer 16) has 33 K parameters and a 739 K-value input: coded, it sent 3.0 MB to every
/// worker each frame, the largest input a worker held. The first tail convolution always runs
/// coded: its input is the fused output the stage starts from.
fn on_gateway(l: &Layer, first: bool) -> bool {
    let (Some(c), Some(inputs)) = (l.conv(), l.input.elements()) else {
        return false;
    };
    let per_filter = if c.batch_norm { 4 } else { 1 };
    let params = c
        .weight_count(l.input.c)
        .and_then(|w| w.checked_add(c.filters as usize * per_filter));
    !first && params.is_some_and(|p| p < inputs)
}

/// The tail `[from, end)` of `net` checked for running coded.
struct Layout {
    /// Network index of each coded convolution (stride 1, "same").
    coded: Vec<usize>,
    /// Network index of each convolution the gateway runs ([`on_gateway`]).
    gateway: Vec<usize>,
    /// Per layer, the last route reading its output (0: none).
    route_use: Vec<usize>,
}

/// [`Layout`] of the tail `[from, end)` of `net`, or why it cannot run coded.
fn layout(net: &Network, from: usize) -> Result<Layout, CodedTailError> {
    let layers = net.layers();
    if from == 0 || from >= layers.len() {
        return Err(CodedTailError::Range {
            from,
            layers: layers.len(),
        });
    }
    if !matches!(layers[from].kind, LayerKind::Conv(_)) {
        return Err(CodedTailError::FirstNotConv { layer: from });
    }
    let mut route_use = vec![0usize; layers.len()];
    let mut convs = Vec::new();
    let mut gateway = Vec::new();
    for (j, l) in layers.iter().enumerate().skip(from) {
        match &l.kind {
            LayerKind::Conv(c) => {
                let same = c.stride == 1 && c.size % 2 == 1 && c.pad == c.size / 2;
                if !same || l.input.w != l.output.w || l.input.h != l.output.h {
                    return Err(CodedTailError::NotSame {
                        layer: j,
                        size: c.size,
                        stride: c.stride,
                        pad: c.pad,
                    });
                }
                if on_gateway(l, j == from) {
                    gateway.push(j);
                } else {
                    convs.push(j);
                }
            }
            LayerKind::Route(r) => {
                for &src in r.layers.iter() {
                    let src = src as usize;
                    if src < from {
                        return Err(CodedTailError::RouteOutside {
                            layer: j,
                            source: src,
                        });
                    }
                    route_use[src] = route_use[src].max(j);
                }
            }
            _ => {}
        }
    }
    if convs.len() > MAX_CODED_LAYERS {
        return Err(CodedTailError::TooManyConvs { count: convs.len() });
    }
    Ok(Layout {
        coded: convs,
        gateway,
        route_use,
    })
}

/// Convolution `l` (checked by [`layout`]) as a float coded layer of folded weights `w` and
/// bias `b`; `None` if `l` is no convolution.
fn coded_layer(l: &Layer, w: Vec<f32>, b: Vec<f32>) -> Option<(LinearLayer, Option<ConvGeom>)> {
    let c = l.conv()?;
    Some((
        LinearLayer {
            in_len: l.input.c as usize,
            rows: c.filters as usize,
            weights: w,
            bias: b,
            activation: match c.activation {
                ConvActivation::Leaky => Activation::Leaky,
                ConvActivation::Linear => Activation::Linear,
            },
            numeric: Numeric::Float,
        },
        Some(ConvGeom {
            size: c.size,
            width: l.input.w,
            height: l.input.h,
        }),
    ))
}

/// [`CodedModel::with_geometry`] or [`CodedModel::plan_only`].
type CodedModelFn = fn(
    Vec<(LinearLayer, Option<ConvGeom>)>,
    &[LayerScheme],
    &[NodeId],
) -> Result<CodedModel, CodedModelError>;

/// The coded tail of a network: its model and where each coded layer sits in the network.
#[derive(Clone, Debug)]
pub struct CodedTail {
    net: Arc<Network>,
    from: usize,
    convs: Arc<[usize]>,
    /// Last route reading each layer's output (0: none).
    route_use: Arc<[usize]>,
    /// Parameters of the convolutions the gateway runs itself ([`on_gateway`]).
    gateway_convs: GatewayConvs,
    model: Arc<CodedModel>,
    scheme: LayerScheme,
}

/// Conv layer `params` as one buffer in Darknet order (biases, batch norm, weights).
fn darknet_order(params: &ConvParams<'_>) -> Vec<f32> {
    let mut raw = params.biases.to_vec();
    if let Some(bn) = params.bn {
        raw.extend_from_slice(bn.scales);
        raw.extend_from_slice(bn.mean);
        raw.extend_from_slice(bn.variance);
    }
    raw.extend_from_slice(params.weights);
    raw
}

impl CodedTail {
    /// The tail `[from, end)` of `net` with `weights` (covering it), every convolution split
    /// by `scheme` over `workers` (shard `i` on `workers[i % len]`), except those the gateway
    /// runs itself ([`CodedTail::gateway_layers`]).
    pub fn new(
        net: &Network,
        weights: &Weights<'_>,
        from: usize,
        scheme: LayerScheme,
        workers: &[NodeId],
    ) -> Result<CodedTail, CodedTailError> {
        let layer = |j: usize| {
            let missing = CodedTailError::Weights { layer: j };
            let params = weights.conv(j).ok_or(missing.clone())?;
            let l = &net.layers()[j];
            let (w, b) = fold_batch_norm(&params, l.conv().map_or(0, |c| c.filters as usize));
            coded_layer(l, w, b).ok_or(missing)
        };
        let raw = |j: usize| weights.conv(j).map(|p| darknet_order(&p));
        Self::build(
            net,
            from,
            scheme,
            workers,
            layer,
            raw,
            CodedModel::with_geometry,
        )
    }

    /// The tail as the coded gateway holds it: the same layers, codes and plan as
    /// [`CodedTail::new`] without the coded layers' parameters ([`CodedModel::plan_only`]):
    /// the gateway sends inputs, decodes and glues, the workers hold the shards. `params(j)`
    /// gives (in Darknet order) the parameters of each convolution `j` the gateway runs itself
    /// ([`CodedTail::gateway_layers`]); `None` refuses the tail.
    pub fn for_gateway(
        net: &Network,
        from: usize,
        scheme: LayerScheme,
        workers: &[NodeId],
        params: impl FnMut(usize) -> Option<Vec<f32>>,
    ) -> Result<CodedTail, CodedTailError> {
        let layer = |j: usize| {
            coded_layer(&net.layers()[j], Vec::new(), Vec::new())
                .ok_or(CodedTailError::Weights { layer: j })
        };
        Self::build(
            net,
            from,
            scheme,
            workers,
            layer,
            params,
            CodedModel::plan_only,
        )
    }

    /// Network index of each convolution of the tail `[from, end)` of `net` that the gateway
    /// runs itself rather than coded: those with fewer parameters than input values (for
    /// YOLOv2 from 16: layer 26).
    pub fn gateway_layers(net: &Network, from: usize) -> Result<Vec<usize>, CodedTailError> {
        Ok(layout(net, from)?.gateway)
    }

    /// The tail of `net` from `from`: each coded layer as `layer` makes it (by network
    /// index), each gateway convolution's parameters as `raw` gives them, the model as
    /// `model` builds it from the coded layers.
    fn build(
        net: &Network,
        from: usize,
        scheme: LayerScheme,
        workers: &[NodeId],
        layer: impl FnMut(usize) -> Result<(LinearLayer, Option<ConvGeom>), CodedTailError>,
        mut raw: impl FnMut(usize) -> Option<Vec<f32>>,
        model: CodedModelFn,
    ) -> Result<CodedTail, CodedTailError> {
        let Layout {
            coded: convs,
            gateway,
            route_use,
        } = layout(net, from)?;
        let coded = convs
            .iter()
            .copied()
            .map(layer)
            .collect::<Result<Vec<_>, CodedTailError>>()?;
        let gateway_convs = gateway
            .into_iter()
            .map(|j| {
                raw(j)
                    .map(|p| (j, p))
                    .ok_or(CodedTailError::Weights { layer: j })
            })
            .collect::<Result<BTreeMap<_, _>, _>>()?;
        let schemes = vec![scheme; coded.len()];
        let model = model(coded, &schemes, workers)?;
        let tail = CodedTail {
            net: Arc::new(net.clone()),
            from,
            convs: convs.into(),
            route_use: route_use.into(),
            gateway_convs: Arc::new(gateway_convs),
            model: Arc::new(model),
            scheme,
        };
        tail.check_glue()?;
        Ok(tail)
    }

    /// Runs every gateway step once on zeros, so a tail whose pools, routes, reorgs or region
    /// do not fit is refused here rather than mid-frame.
    fn check_glue(&self) -> Result<(), CodedTailError> {
        let mut glue = self.glue(Portable);
        let frame = FrameKey::new(GATEWAY, u32::MAX - 1);
        let n = self.convs.len();
        for (l, &j) in self.convs.iter().enumerate() {
            let out = vec![0.0f32; self.net.layers()[j].output.elements().unwrap_or(0)];
            if l + 1 < n {
                glue.step(frame, j, out, self.convs[l + 1])?;
            } else {
                glue.step(frame, j, out, self.net.layers().len())?;
            }
        }
        Ok(())
    }

    /// The coded model (every node builds the same).
    pub fn model(&self) -> &Arc<CodedModel> {
        &self.model
    }

    /// The split of every layer.
    pub fn scheme(&self) -> LayerScheme {
        self.scheme
    }

    /// Network index of each coded layer.
    pub fn conv_layers(&self) -> &[usize] {
        &self.convs
    }

    /// First tail layer.
    pub fn from(&self) -> usize {
        self.from
    }

    /// Columns of a frame: the area of the first coded layer's map.
    pub fn cols(&self) -> usize {
        self.model.conv(0).map_or(1, |g| g.cols())
    }

    /// Shape of the tail's output (the last layer's).
    pub fn output_shape(&self) -> Shape {
        self.net.output()
    }

    /// Bytes of the coded layers' (folded) parameters: what one device running the whole tail
    /// holds.
    pub fn whole_tail_bytes(&self) -> usize {
        (0..self.model.len())
            .filter_map(|l| self.model.layer(l))
            .map(|l| 4 * (l.weights.len() + l.bias.len()))
            .sum()
    }

    /// The gateway's glue computing with `kernels`.
    pub fn glue<K: Kernels>(&self, kernels: K) -> TailGlue<K> {
        TailGlue::new(
            kernels,
            self.net.clone(),
            self.convs.clone(),
            self.route_use.clone(),
            self.gateway_convs.clone(),
        )
    }

    /// The centralised run with the same arithmetic as the coded one: every layer's data
    /// shards computed with `kernels` on one node, decoded (concatenated), glued. Workers
    /// computing with the SIMD kernels must be compared with this run with the same kernels.
    pub fn reference<K: Kernels + Clone>(
        &self,
        kernels: &K,
        input: &[f32],
    ) -> Result<Vec<f32>, CodedTailError> {
        let mut glue = self.glue(kernels.clone());
        let failures = glue.failures();
        let out = self
            .model
            .reference_with(kernels, input, self.cols(), &mut glue)?;
        if failures.load(Ordering::Relaxed) > 0 {
            return Err(CodedTailError::Glue {
                layer: self.convs[0],
                error: GlueError::Failed,
            });
        }
        Ok(out)
    }
}
