//! The network's tail as coded (CDC) layers across the edges.
//!
//! Every convolution of the tail (`[from, end)`; for YOLOv2 from 16: layers 16, 18–24, 26, 29
//! and 30) becomes one coded layer of a [`CodedModel`]: its filters split over `k` data shards
//! plus parity (or replicas), each edge holding only its shards' weights. Batch norm is folded
//! into the weights and bias exactly as the SIMD kernel folds it (`a = γ/(√σ² + 10⁻⁶)` in double
//! precision, `w' = w·a`, `b' = β − μ·a`, rounded to f32), and the activation (leaky or linear)
//! is applied by the gateway after decoding.
//!
//! Everything else runs on the gateway in a [`TailGlue`]: max pools through the core kernels,
//! route, reorg and region through `tessera_core::kernel::tail`, as the plain tail
//! ([`crate::tail`]) does. The glue keeps, per frame, the outputs a later route reads (layer 16
//! for route 25, layer 24 for route 28) until that route ran, and forgets the frame when it
//! finishes.
//!
//! [`CodedTailStage`] runs the stage on a loopback cluster: one coded worker node per edge (own
//! threads, its own 127.0.0.x address on a second port) and the coded gateway node, polled by
//! the caller's loop.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration as StdDuration, Instant as StdInstant, SystemTime, UNIX_EPOCH};

use tessera_backends::coded::{
    Activation, CodedFinished, CodedModel, CodedModelError, CodedNode, CodedNodeStats, ConvGeom,
    Glue, InlineShards, LayerScheme, LinearLayer, Numeric, ShardDone, ShardExecutor, ShardJob,
};
use tessera_backends::kernels::Fma;
use tessera_backends::link::LinkConfig;
use tessera_backends::nal_std::StdStack;
use tessera_core::kernel::{tail, KernelError, Kernels, Portable};
use tessera_core::model::weights::{ConvParams, Weights};
use tessera_core::model::{Activation as ConvActivation, Conv, LayerKind, MaxPool, Network, Shape};
use tessera_core::runtime::coded::{CodedConfig, Protection, MAX_CODED_LAYERS};
use tessera_core::tensor::{FeatureView, FeatureViewMut};
use tessera_core::time::{Duration, Instant};
use tessera_core::wire::{FrameKey, Key, Limits, NodeId, GATEWAY};
use tessera_core::Region;

use crate::config::NodeKernel;
use crate::error::{error, Context, Error};

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
    Scheme(String),
    /// The coded model refused.
    Model(CodedModelError),
    /// A gateway layer (pool, route, reorg, region) failed.
    Glue {
        /// The layer.
        layer: usize,
        /// Why.
        message: String,
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
            CodedTailError::Scheme(s) => f.write_str(s),
            CodedTailError::Model(e) => write!(f, "coded model: {e}"),
            CodedTailError::Glue { layer, message } => write!(f, "tail layer {layer}: {message}"),
        }
    }
}

impl std::error::Error for CodedTailError {}

impl From<CodedModelError> for CodedTailError {
    fn from(e: CodedModelError) -> Self {
        CodedTailError::Model(e)
    }
}

/// How the tail's layers are split over the edges (`--coded-tail`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TailScheme {
    /// `cdc:R`: `edges − R` data shards plus `R` parity shards.
    Cdc(usize),
    /// `2mr`: `⌊edges/2⌋` data shards, each computed twice.
    TwoMr,
    /// `uncoded`: one data shard per edge, no protection.
    Uncoded,
}

impl TailScheme {
    /// Parses `cdc:R`, `2mr` or `uncoded`.
    pub fn parse(s: &str) -> Result<TailScheme, String> {
        let bad = || {
            format!(
                "unknown coded tail scheme '{s}': use cdc:R (R parity shards, R >= 1), 2mr or \
                 uncoded"
            )
        };
        match s {
            "2mr" => Ok(TailScheme::TwoMr),
            "uncoded" => Ok(TailScheme::Uncoded),
            _ => {
                let r = s
                    .strip_prefix("cdc:")
                    .and_then(|r| r.parse::<usize>().ok())
                    .ok_or_else(bad)?;
                if r == 0 {
                    return Err(bad());
                }
                Ok(TailScheme::Cdc(r))
            }
        }
    }

    /// The split of every tail layer over `edges` workers.
    pub fn layer_scheme(self, edges: usize) -> Result<LayerScheme, CodedTailError> {
        let refuse = |why: String| Err(CodedTailError::Scheme(why));
        match self {
            TailScheme::Cdc(r) if r >= edges => refuse(format!(
                "--coded-tail cdc:{r} needs more than {r} edges (k = edges − R data shards), \
                 there are {edges}"
            )),
            TailScheme::Cdc(r) => Ok(LayerScheme {
                k: edges - r,
                r,
                protection: Protection::Coded,
            }),
            TailScheme::TwoMr if edges < 2 => refuse(format!(
                "--coded-tail 2mr needs 2 or more edges, there are {edges}"
            )),
            TailScheme::TwoMr => Ok(LayerScheme {
                k: edges / 2,
                r: 0,
                protection: Protection::Replicated,
            }),
            TailScheme::Uncoded => Ok(LayerScheme {
                k: edges,
                r: 0,
                protection: Protection::Coded,
            }),
        }
    }
}

impl fmt::Display for TailScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TailScheme::Cdc(r) => write!(f, "cdc:{r}"),
            TailScheme::TwoMr => f.write_str("2mr"),
            TailScheme::Uncoded => f.write_str("uncoded"),
        }
    }
}

/// The kernels of a node, chosen at run time.
#[derive(Clone, Copy, Debug)]
pub enum TailKernel {
    /// [`Portable`] (bit-identical to the reference).
    Portable,
    /// The SIMD [`Fma`] kernels.
    Simd(Fma),
}

impl TailKernel {
    /// The kernels of `k`.
    pub fn of(k: NodeKernel) -> TailKernel {
        match k {
            NodeKernel::Portable => TailKernel::Portable,
            NodeKernel::Simd => TailKernel::Simd(Fma::new()),
        }
    }
}

impl Kernels for TailKernel {
    fn conv(
        &self,
        conv: &Conv,
        map: Shape,
        params: &ConvParams<'_>,
        input: &FeatureView<'_>,
        out: &mut FeatureViewMut<'_>,
    ) -> Result<(), KernelError> {
        match self {
            TailKernel::Portable => Portable.conv(conv, map, params, input, out),
            TailKernel::Simd(k) => k.conv(conv, map, params, input, out),
        }
    }

    fn maxpool(
        &self,
        pool: &MaxPool,
        map: Shape,
        input: &FeatureView<'_>,
        out: &mut FeatureViewMut<'_>,
    ) -> Result<(), KernelError> {
        match self {
            TailKernel::Portable => Portable.maxpool(pool, map, input, out),
            TailKernel::Simd(k) => k.maxpool(pool, map, input, out),
        }
    }
}

/// A convolution's weights and bias with its batch norm folded in, as the SIMD kernel folds
/// it: `a = γ/(√σ² + 10⁻⁶)` (f64, ε on the root as Darknet), `w' = w·a`, `b' = β − μ·a`.
pub fn fold_batch_norm(params: &ConvParams<'_>, filters: usize) -> (Vec<f32>, Vec<f32>) {
    let Some(bn) = &params.bn else {
        return (params.weights.to_vec(), params.biases.to_vec());
    };
    let per = params.weights.len() / filters.max(1);
    let mut w = Vec::with_capacity(params.weights.len());
    let mut b = Vec::with_capacity(filters);
    for o in 0..filters {
        let denom = (bn.variance[o] as f64).sqrt() + 0.000001f32 as f64;
        let a = bn.scales[o] as f64 / denom;
        w.extend(
            params.weights[o * per..(o + 1) * per]
                .iter()
                .map(|&x| (x as f64 * a) as f32),
        );
        b.push((params.biases[o] as f64 - bn.mean[o] as f64 * a) as f32);
    }
    (w, b)
}

/// The coded tail of a network: its model and where each coded layer sits in the network.
#[derive(Clone, Debug)]
pub struct CodedTail {
    net: Arc<Network>,
    from: usize,
    convs: Arc<[usize]>,
    /// Last route reading each layer's output (0: none).
    route_use: Arc<[usize]>,
    model: Arc<CodedModel>,
    scheme: LayerScheme,
}

impl CodedTail {
    /// The tail `[from, end)` of `net` with `weights` (covering it), every convolution split
    /// by `scheme` over `workers` (shard `i` on `workers[i % len]`).
    pub fn new(
        net: &Network,
        weights: &Weights<'_>,
        from: usize,
        scheme: LayerScheme,
        workers: &[NodeId],
    ) -> Result<CodedTail, CodedTailError> {
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
        let mut coded = Vec::new();
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
                    let params = weights
                        .conv(j)
                        .ok_or(CodedTailError::Weights { layer: j })?;
                    let (w, b) = fold_batch_norm(&params, c.filters as usize);
                    coded.push((
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
                    ));
                    convs.push(j);
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
        let schemes = vec![scheme; coded.len()];
        let model = CodedModel::with_geometry(coded, &schemes, workers)?;
        let tail = CodedTail {
            net: Arc::new(net.clone()),
            from,
            convs: convs.into(),
            route_use: route_use.into(),
            model: Arc::new(model),
            scheme,
        };
        tail.check_glue()?;
        Ok(tail)
    }

    /// Runs every gateway step once on zeros, so a tail whose pools, routes, reorgs or region
    /// do not fit is refused here rather than mid-frame.
    fn check_glue(&self) -> Result<(), CodedTailError> {
        let mut glue = self.glue(TailKernel::Portable);
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
        TailGlue {
            kernels,
            net: self.net.clone(),
            convs: self.convs.clone(),
            route_use: self.route_use.clone(),
            frames: BTreeMap::new(),
            failures: Arc::new(AtomicU64::new(0)),
        }
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
                message: "a gateway step between coded layers failed".into(),
            });
        }
        Ok(out)
    }
}

/// The gateway's work between the coded layers of one tail: pools, routes, reorgs and the
/// region head, with the outputs routes read kept per frame.
pub struct TailGlue<K> {
    kernels: K,
    net: Arc<Network>,
    convs: Arc<[usize]>,
    route_use: Arc<[usize]>,
    /// Per frame, the outputs still to be read, by layer.
    frames: BTreeMap<FrameKey, BTreeMap<usize, Vec<f32>>>,
    failures: Arc<AtomicU64>,
}

impl<K: Kernels> TailGlue<K> {
    /// Frames whose outputs the glue holds.
    pub fn frames_held(&self) -> usize {
        self.frames.len()
    }

    /// Counts steps that failed (their output replaced by an empty map); shared with clones of
    /// the returned handle.
    pub fn failures(&self) -> Arc<AtomicU64> {
        self.failures.clone()
    }

    /// Layer `done` of `frame` produced `output`: runs layers `done+1 .. until` and returns the
    /// output of `until − 1` (the input of coded layer `until`, or the tail's output when
    /// `until` is the network's end, then forgetting the frame).
    fn step(
        &mut self,
        frame: FrameKey,
        done: usize,
        output: Vec<f32>,
        until: usize,
    ) -> Result<Vec<f32>, CodedTailError> {
        let end = until >= self.net.layers().len();
        let r = self.run(frame, done, output, until);
        if end || r.is_err() {
            self.frames.remove(&frame);
        }
        r
    }

    fn run(
        &mut self,
        frame: FrameKey,
        done: usize,
        output: Vec<f32>,
        until: usize,
    ) -> Result<Vec<f32>, CodedTailError> {
        let layers = self.net.layers();
        let store = self.frames.entry(frame).or_default();
        store.insert(done, output);
        for j in done + 1..until {
            let layer = &layers[j];
            let fail = |message: String| CodedTailError::Glue { layer: j, message };
            let len = layer
                .output
                .elements()
                .ok_or_else(|| fail("output size overflows".into()))?;
            let mut out = vec![0.0f32; len];
            let prev = || {
                store
                    .get(&(j - 1))
                    .ok_or_else(|| fail(format!("output of layer {} is gone", j - 1)))
            };
            match &layer.kind {
                LayerKind::Conv(_) => {
                    return Err(fail("a convolution outside the coded model".into()));
                }
                LayerKind::MaxPool(pool) => {
                    let map = layer.input;
                    let src = FeatureView::new(prev()?, Region::full(map.w, map.h), map.c)
                        .map_err(|e| fail(e.to_string()))?;
                    let o = layer.output;
                    let mut dst = FeatureViewMut::new(&mut out, Region::full(o.w, o.h), o.c)
                        .map_err(|e| fail(e.to_string()))?;
                    self.kernels
                        .maxpool(pool, map, &src, &mut dst)
                        .map_err(|e| fail(e.to_string()))?;
                }
                LayerKind::Route(r) => {
                    let mut sources = Vec::with_capacity(r.layers.len());
                    for &src in r.layers.iter() {
                        let src = src as usize;
                        let data = store
                            .get(&src)
                            .ok_or_else(|| fail(format!("route source {src} is gone")))?;
                        sources.push((&data[..], layers[src].output));
                    }
                    tail::route(&sources, &mut out).map_err(|e| fail(e.to_string()))?;
                }
                LayerKind::Reorg(r) => {
                    tail::reorg(prev()?, layer.input, r.stride, &mut out)
                        .map_err(|e| fail(e.to_string()))?;
                }
                LayerKind::Region(p) => {
                    tail::region(prev()?, layer.input, p, &mut out)
                        .map_err(|e| fail(e.to_string()))?;
                }
            }
            store.insert(j, out);
            // Outputs no later layer of this segment or route reads.
            let route_use = &self.route_use;
            store.retain(|&i, _| i >= j || route_use[i] > j);
        }
        let last = until - 1;
        if self.route_use[last] > last {
            Ok(store.get(&last).cloned().unwrap_or_default())
        } else {
            Ok(store.remove(&last).unwrap_or_default())
        }
    }

    fn glue_step(&mut self, frame: FrameKey, layer: usize, output: Vec<f32>) -> Vec<f32> {
        let done = self.convs[layer];
        let until = self
            .convs
            .get(layer + 1)
            .copied()
            .unwrap_or(self.net.layers().len());
        match self.step(frame, done, output, until) {
            Ok(v) => v,
            Err(e) => {
                // Cannot happen for a tail `CodedTail::new` checked; the empty map makes the
                // next layer expire and the frame report the loss.
                self.failures.fetch_add(1, Ordering::Relaxed);
                eprintln!("coded tail, frame {}.{}: {e}", frame.origin, frame.number);
                Vec::new()
            }
        }
    }
}

impl<K: Kernels> Glue for TailGlue<K> {
    fn between(&mut self, frame: FrameKey, layer: usize, output: Vec<f32>) -> Vec<f32> {
        self.glue_step(frame, layer, output)
    }

    fn finish(&mut self, frame: FrameKey, output: Vec<f32>) -> Vec<f32> {
        let last = self.convs.len() - 1;
        let out = self.glue_step(frame, last, output);
        self.frames.remove(&frame);
        out
    }
}

/// Computes shards on a dedicated thread (so the node keeps serving its link while a shard
/// of a large layer computes); an optional slowdown models a straggler (the thread sleeps
/// `(factor − 1) ×` the compute time after each shard). Dropping it (a killed device) drops
/// the queued shards and ends the thread after the shard in progress.
pub struct ThreadShards {
    jobs: Option<Sender<(Arc<CodedModel>, ShardJob)>>,
    done: Receiver<ShardDone>,
    cancel: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ThreadShards {
    /// A compute thread with `kernels`.
    pub fn new<K: Kernels + Send + 'static>(kernels: K, slowdown: f64) -> ThreadShards {
        let (jobs, rx) = mpsc::channel::<(Arc<CodedModel>, ShardJob)>();
        let (tx, done) = mpsc::channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let stop = cancel.clone();
        let thread = std::thread::Builder::new()
            .name("tessera-coded-compute".into())
            .spawn(move || {
                for (model, job) in rx {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let t0 = StdInstant::now();
                    let output = model.compute_shard_with(&kernels, job.work, job.cols, &job.input);
                    if slowdown > 1.0 {
                        let until = t0 + t0.elapsed().mul_f64(slowdown);
                        while StdInstant::now() < until && !stop.load(Ordering::Relaxed) {
                            std::thread::sleep(StdDuration::from_millis(2));
                        }
                    }
                    if tx
                        .send(ShardDone {
                            work: job.work,
                            output,
                        })
                        .is_err()
                    {
                        break;
                    }
                }
            })
            .expect("spawn a coded compute thread");
        ThreadShards {
            jobs: Some(jobs),
            done,
            cancel,
            thread: Some(thread),
        }
    }
}

impl ShardExecutor for ThreadShards {
    fn start(&mut self, model: &Arc<CodedModel>, job: ShardJob) {
        if let Some(tx) = &self.jobs {
            let _ = tx.send((model.clone(), job));
        }
    }

    fn poll(&mut self) -> Option<ShardDone> {
        self.done.try_recv().ok()
    }
}

impl Drop for ThreadShards {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How to start a [`CodedTailStage`].
#[derive(Clone, Debug)]
pub struct StageSpec {
    /// Edges (coded workers 1..=edges).
    pub edges: u16,
    /// Port of every coded node (each on its 127.0.0.x address, as the FTP cluster).
    pub port: u16,
    /// Cluster key (`None`: unauthenticated).
    pub key: Option<[u8; 32]>,
    /// Kernels of the workers and the gateway's pools.
    pub kernel: NodeKernel,
    /// A frame leaves the stage this long after it entered, complete or not.
    pub deadline: StdDuration,
    /// Once parity could decode a layer, how long its pending data shards may still come (then
    /// the layer is the data shards' exact rows rather than a float decode).
    pub data_grace: StdDuration,
    /// Workers computing `factor` times slower.
    pub slow: Vec<(NodeId, f64)>,
    /// Workers never started.
    pub absent: Vec<NodeId>,
}

struct WorkerThread {
    id: NodeId,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<CodedNodeStats>>,
}

impl WorkerThread {
    fn halt(&mut self) -> Option<CodedNodeStats> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().and_then(|t| t.join().ok())
    }
}

impl Drop for WorkerThread {
    fn drop(&mut self) {
        self.halt();
    }
}

type GatewayNode = CodedNode<StdStack, InlineShards<TailKernel>, TailGlue<TailKernel>>;

/// A tail frame out of the stage.
#[derive(Debug)]
pub struct TailDone {
    /// The frame's key in the FTP run (what the caller submitted it as).
    pub frame: FrameKey,
    /// What the coded stage produced.
    pub finished: CodedFinished,
    /// From submission to the stage to its end, wall time (includes waiting for a slot).
    pub wall: StdDuration,
}

/// Counters of a finished stage.
#[derive(Debug, Default)]
pub struct StageStats {
    /// Per node (0: gateway).
    pub nodes: BTreeMap<NodeId, CodedNodeStats>,
    /// Failed glue steps.
    pub glue_failures: u64,
}

/// The coded tail on a loopback cluster: workers on their own threads, the gateway polled by
/// the caller.
pub struct CodedTailStage {
    gateway: GatewayNode,
    workers: Vec<WorkerThread>,
    stats: BTreeMap<NodeId, CodedNodeStats>,
    clock: StdInstant,
    pending: VecDeque<(FrameKey, Vec<f32>, StdInstant)>,
    keys: BTreeMap<FrameKey, (FrameKey, StdInstant)>,
    cols: usize,
    failures: Arc<AtomicU64>,
    started: StdInstant,
}

/// Address of node `id` of a loopback cluster on `port`.
pub fn loopback_addr(id: NodeId, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + id as u8)), port)
}

impl CodedTailStage {
    /// Starts the coded gateway (here) and a worker on each present edge.
    pub fn start(tail: &CodedTail, spec: &StageSpec) -> Result<CodedTailStage, Error> {
        let kernel = TailKernel::of(spec.kernel);
        let first_seq = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(1);
        let link = |id: NodeId, peers: Vec<(NodeId, SocketAddr)>| LinkConfig {
            me: id,
            port: spec.port,
            peers,
            key: spec.key.map(Key::new),
            limits: Limits::LARGE,
            first_seq,
            peer_dead: Duration::from_secs(3),
            retry: Duration::from_millis(50),
        };
        let config = CodedConfig {
            data_grace: Duration::from_micros(spec.data_grace.as_micros() as u64),
            ..CodedConfig::new(Duration::from_micros(spec.deadline.as_micros() as u64))
        };
        let edges: Vec<(NodeId, SocketAddr)> = (1..=spec.edges)
            .map(|id| (id, loopback_addr(id, spec.port)))
            .collect();
        let glue = tail.glue(kernel);
        let failures = glue.failures();
        let gateway = CodedNode::with_glue(
            StdStack::new(loopback_addr(GATEWAY, spec.port).ip()),
            link(GATEWAY, edges.clone()),
            tail.model().clone(),
            config,
            InlineShards::new(kernel),
            glue,
        )
        .map_err(|e| error("starting the coded gateway", e.to_string()))?;
        let mut workers = Vec::new();
        for (id, addr) in edges.iter().copied() {
            if spec.absent.contains(&id) {
                continue;
            }
            let slowdown = spec
                .slow
                .iter()
                .find(|(n, _)| *n == id)
                .map_or(1.0, |&(_, f)| f);
            let exec = match kernel {
                TailKernel::Portable => ThreadShards::new(Portable, slowdown),
                TailKernel::Simd(k) => ThreadShards::new(k, slowdown),
            };
            let mut node = CodedNode::new(
                StdStack::new(addr.ip()),
                link(id, vec![(GATEWAY, loopback_addr(GATEWAY, spec.port))]),
                tail.model().clone(),
                config,
                exec,
            )
            .map_err(|e| {
                error(
                    format!("starting coded worker {id} on {addr}"),
                    e.to_string(),
                )
            })?;
            let stop = Arc::new(AtomicBool::new(false));
            let flag = stop.clone();
            let clock = StdInstant::now();
            let thread = std::thread::Builder::new()
                .name(format!("tessera-coded-{id}"))
                .spawn(move || {
                    while !flag.load(Ordering::Relaxed) {
                        node.poll(Instant::from_micros(clock.elapsed().as_micros() as u64));
                        std::thread::sleep(StdDuration::from_micros(200));
                    }
                    node.stats()
                })
                .context(|| "spawning a coded worker thread")?;
            workers.push(WorkerThread {
                id,
                stop,
                thread: Some(thread),
            });
        }
        Ok(CodedTailStage {
            gateway,
            workers,
            stats: BTreeMap::new(),
            clock: StdInstant::now(),
            pending: VecDeque::new(),
            keys: BTreeMap::new(),
            cols: tail.cols(),
            failures,
            started: StdInstant::now(),
        })
    }

    /// Queues `frame`'s fused-stack output (CHW) for the coded tail.
    pub fn submit(&mut self, frame: FrameKey, input: Vec<f32>) {
        self.pending.push_back((frame, input, StdInstant::now()));
    }

    /// Frames submitted and not finished yet.
    pub fn outstanding(&self) -> usize {
        self.pending.len() + self.keys.len()
    }

    /// Stops edge `id`'s worker (threads joined, sockets closed), as a killed device.
    pub fn kill(&mut self, id: NodeId) {
        if let Some(i) = self.workers.iter().position(|w| w.id == id) {
            let mut w = self.workers.remove(i);
            if let Some(s) = w.halt() {
                self.stats.insert(id, s);
            }
        }
    }

    /// Polls the gateway: submits queued frames once the live workers are connected (or after
    /// a grace of 5 s), returns the frames finished.
    pub fn poll(&mut self) -> Result<Vec<TailDone>, Error> {
        let now = Instant::from_micros(self.clock.elapsed().as_micros() as u64);
        self.gateway.poll(now);
        let up = self.gateway.link().peers_up().count();
        let ready = up >= self.workers.len() || self.started.elapsed() > StdDuration::from_secs(5);
        while ready && !self.pending.is_empty() {
            let (_, input, _) = &self.pending[0];
            match self.gateway.submit(now, input, self.cols) {
                Ok(key) => {
                    let (frame, _, t0) = self.pending.pop_front().expect("checked non-empty");
                    self.keys.insert(key, (frame, t0));
                }
                Err(tessera_backends::coded::CodedSubmitError::Stage(_)) => break,
                Err(e) => return Err(error("submitting to the coded tail", e.to_string())),
            }
        }
        Ok(self
            .gateway
            .take_finished()
            .into_iter()
            .filter_map(|f| {
                let (frame, t0) = self.keys.remove(&f.frame)?;
                Some(TailDone {
                    frame,
                    finished: f,
                    wall: t0.elapsed(),
                })
            })
            .collect())
    }

    /// Stops every worker; returns the counters.
    pub fn stop(mut self) -> StageStats {
        for mut w in std::mem::take(&mut self.workers) {
            if let Some(s) = w.halt() {
                self.stats.insert(w.id, s);
            }
        }
        self.stats.insert(GATEWAY, self.gateway.stats());
        StageStats {
            nodes: std::mem::take(&mut self.stats),
            glue_failures: self.failures.load(Ordering::Relaxed),
        }
    }
}

/// Largest absolute difference of two maps (infinite if their lengths differ).
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from((x - y).abs()))
        .fold(0.0, f64::max)
}

/// True when two maps hold the same bits.
pub fn bit_identical(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}
