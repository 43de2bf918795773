//! The gateway's work between coded layers ([`TailGlue`]): the convolutions it runs itself
//! (on the portable kernel), max pools through its kernels, route, reorg and region through
//! `tessera_core::kernel::tail`.

extern crate alloc;

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicUsize, Ordering};

use tessera_core::kernel::{tail, KernelError, Kernels, Portable};
use tessera_core::model::weights::ConvParams;
use tessera_core::model::{Layer, LayerKind, Network};
use tessera_core::tensor::{FeatureView, FeatureViewMut, ViewError};
use tessera_core::wire::FrameKey;
use tessera_core::Region;

use super::super::Glue;
use super::CodedTailError;

/// Why a gateway step between coded layers failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GlueError {
    /// The layer's output size overflows.
    Overflow,
    /// A convolution the coded model does not hold and the gateway has no parameters of.
    Conv,
    /// An output the layer reads is not held (any more).
    Gone {
        /// The layer whose output is missing.
        source: usize,
    },
    /// A map does not fit its view.
    View(ViewError),
    /// The conv or max-pool kernel refused its views.
    Kernel(KernelError),
    /// A route, reorg or region refused its maps.
    Op(tail::TailError),
    /// A step between coded layers failed (counted by [`TailGlue::failures`]).
    Failed,
}

impl fmt::Display for GlueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GlueError::Overflow => f.write_str("output size overflows"),
            GlueError::Conv => {
                f.write_str("a convolution neither coded nor with parameters on the gateway")
            }
            GlueError::Gone { source } => write!(f, "output of layer {source} is gone"),
            GlueError::View(e) => write!(f, "{e}"),
            GlueError::Kernel(e) => write!(f, "{e}"),
            GlueError::Op(e) => write!(f, "{e}"),
            GlueError::Failed => f.write_str("a gateway step between coded layers failed"),
        }
    }
}

impl core::error::Error for GlueError {}

/// Parameters (Darknet order) of the tail convolutions the gateway runs itself, by layer.
pub(super) type GatewayConvs = Arc<BTreeMap<usize, Vec<f32>>>;

/// The gateway's work between the coded layers of one tail: its own convolutions, pools,
/// routes, reorgs and the region head, with the outputs routes read kept per frame.
pub struct TailGlue<K> {
    kernels: K,
    net: Arc<Network>,
    convs: Arc<[usize]>,
    route_use: Arc<[usize]>,
    gateway_convs: GatewayConvs,
    /// Per frame, the outputs still to be read, by layer.
    frames: BTreeMap<FrameKey, BTreeMap<usize, Vec<f32>>>,
    failures: Arc<AtomicUsize>,
    last_failure: Option<CodedTailError>,
}

impl<K: Kernels> TailGlue<K> {
    /// The glue of the tail of `net` whose coded layers are `convs`, with `route_use` the last
    /// route reading each layer's output (0: none), running the convolutions of
    /// `gateway_convs` itself.
    pub(super) fn new(
        kernels: K,
        net: Arc<Network>,
        convs: Arc<[usize]>,
        route_use: Arc<[usize]>,
        gateway_convs: GatewayConvs,
    ) -> TailGlue<K> {
        TailGlue {
            kernels,
            net,
            convs,
            route_use,
            gateway_convs,
            frames: BTreeMap::new(),
            failures: Arc::new(AtomicUsize::new(0)),
            last_failure: None,
        }
    }

    /// Frames whose outputs the glue holds.
    pub fn frames_held(&self) -> usize {
        self.frames.len()
    }

    /// Counts steps that failed (their output replaced by an empty map); shared with clones of
    /// the returned handle.
    pub fn failures(&self) -> Arc<AtomicUsize> {
        self.failures.clone()
    }

    /// The most recent failed step's error, if any.
    pub fn last_failure(&self) -> Option<&CodedTailError> {
        self.last_failure.as_ref()
    }

    /// Layer `done` of `frame` produced `output`: runs layers `done+1 .. until` and returns the
    /// output of `until − 1` (the input of coded layer `until`, or the tail's output when
    /// `until` is the network's end, then forgetting the frame).
    pub(super) fn step(
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
            let fail = |error: GlueError| CodedTailError::Glue { layer: j, error };
            let len = layer.output.elements().ok_or(fail(GlueError::Overflow))?;
            let mut out = vec![0.0f32; len];
            let read = |source: usize| store.get(&source).ok_or(fail(GlueError::Gone { source }));
            let op = |e| fail(GlueError::Op(e));
            match &layer.kind {
                LayerKind::Conv(conv) => {
                    let params = self
                        .gateway_convs
                        .get(&j)
                        .and_then(|raw| ConvParams::of(layer, raw))
                        .ok_or(fail(GlueError::Conv))?;
                    // On the portable kernel whatever the gateway's: the tail's output then
                    // does not depend on which gateway runs it (a board's or a Linux one's), as
                    // it does not for the pools (exact on every kernel) and the coded layers
                    // (the workers compute them). YOLOv2's layer 26 is 47 M multiply-adds.
                    whole_maps(layer, read(j - 1)?, &mut out, |src, dst| {
                        Portable.conv(conv, layer.input, &params, src, dst)
                    })
                    .map_err(fail)?;
                }
                LayerKind::MaxPool(pool) => {
                    whole_maps(layer, read(j - 1)?, &mut out, |src, dst| {
                        self.kernels.maxpool(pool, layer.input, src, dst)
                    })
                    .map_err(fail)?;
                }
                LayerKind::Route(r) => {
                    let mut sources = Vec::with_capacity(r.layers.len());
                    for &src in r.layers.iter() {
                        let src = src as usize;
                        sources.push((&read(src)?[..], layers[src].output));
                    }
                    tail::route(&sources, &mut out).map_err(op)?;
                }
                LayerKind::Reorg(r) => {
                    tail::reorg(read(j - 1)?, layer.input, r.stride, &mut out).map_err(op)?;
                }
                LayerKind::Region(p) => {
                    tail::region(read(j - 1)?, layer.input, p, &mut out).map_err(op)?;
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
                self.last_failure = Some(e);
                Vec::new()
            }
        }
    }
}

/// Runs `kernel` from `layer`'s whole input map `input` into its whole output map `out`.
fn whole_maps(
    layer: &Layer,
    input: &[f32],
    out: &mut [f32],
    kernel: impl FnOnce(&FeatureView<'_>, &mut FeatureViewMut<'_>) -> Result<(), KernelError>,
) -> Result<(), GlueError> {
    let (i, o) = (layer.input, layer.output);
    let src = FeatureView::new(input, Region::full(i.w, i.h), i.c).map_err(GlueError::View)?;
    let mut dst = FeatureViewMut::new(out, Region::full(o.w, o.h), o.c).map_err(GlueError::View)?;
    kernel(&src, &mut dst).map_err(GlueError::Kernel)
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

    fn failed_steps(&self) -> u64 {
        self.failures.load(Ordering::Relaxed) as u64
    }
}
