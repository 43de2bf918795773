//! The network's tail: layers `[L, end)` on full maps after the fused stack.
//!
//! Conv and maxpool run through the caller's kernels over the whole map; route, reorg and
//! region through `tessera_core::kernel::tail`. Each layer's output is kept until the last
//! layer that reads it (YOLOv2's route at 25 reads layer 16, the first tail layer), then freed.
//! [`Tail`] runs one layer per step (a caller can time or interleave them); [`run_tail`] runs
//! them all.

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use tessera_core::kernel::tail as ops;
use tessera_core::kernel::{KernelError, Kernels};
use tessera_core::model::weights::Weights;
use tessera_core::model::{LayerKind, Network, Shape};
use tessera_core::tensor::{FeatureView, FeatureViewMut, ViewError};
use tessera_core::Region;

/// Why the tail could not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TailError {
    /// `from` is not inside the network (it must be 1..layers).
    Range {
        /// First tail layer asked for.
        from: usize,
        /// Layers of the network.
        layers: usize,
    },
    /// The input is not the size of layer `from − 1`'s output.
    InputSize {
        /// Values given.
        got: usize,
        /// The layer whose output the input stands for.
        layer: usize,
        /// Its output shape.
        shape: Shape,
    },
    /// An earlier output names a layer the network does not have.
    NoLayer {
        /// The index given.
        layer: usize,
    },
    /// A layer's output size overflows.
    Overflow {
        /// The layer.
        layer: usize,
    },
    /// A layer reads an output that was not given (or already freed).
    Missing {
        /// The reading layer.
        layer: usize,
        /// The output it reads.
        source: usize,
    },
    /// The weights do not cover a tail convolution.
    Weights {
        /// The layer.
        layer: usize,
    },
    /// A map does not fit its view.
    View {
        /// The layer.
        layer: usize,
        /// Why.
        error: ViewError,
    },
    /// A kernel refused its views.
    Kernel {
        /// The layer.
        layer: usize,
        /// Why.
        error: KernelError,
    },
    /// A route, reorg or region refused its maps.
    Op {
        /// The layer.
        layer: usize,
        /// Why.
        error: ops::TailError,
    },
}

impl fmt::Display for TailError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TailError::Range { from, layers } => write!(
                f,
                "running the tail: tail must start inside layers 1..{layers}, not at {from}"
            ),
            TailError::InputSize { got, layer, shape } => write!(
                f,
                "running the tail: input holds {got} values, layer {layer} outputs {}x{}x{}",
                shape.w, shape.h, shape.c
            ),
            TailError::NoLayer { layer } => write!(f, "running the tail: no layer {layer}"),
            TailError::Overflow { layer } => {
                write!(f, "tail layer {layer}: output size overflows")
            }
            TailError::Missing { layer, source } if source + 1 == *layer => {
                write!(f, "tail layer {layer}: output of layer {source} is gone")
            }
            TailError::Missing { layer, source } => {
                write!(f, "tail layer {layer}: route source {source} was not given")
            }
            TailError::Weights { layer } => {
                write!(f, "tail layer {layer}: the weights do not cover this layer")
            }
            TailError::View { layer, error } => write!(f, "tail layer {layer}: {error}"),
            TailError::Kernel { layer, error } => write!(f, "tail layer {layer}: {error}"),
            TailError::Op { layer, error } => write!(f, "tail layer {layer}: {error}"),
        }
    }
}

impl core::error::Error for TailError {}

/// The tail's result.
#[derive(Debug)]
pub struct TailRun {
    /// Output of the last layer (for YOLOv2 the activated region map), CHW.
    pub output: Vec<f32>,
    /// Its shape.
    pub shape: Shape,
    /// Layers run.
    pub layers: usize,
}

/// The tail of one frame, run a layer per [`Tail::step`].
pub struct Tail<'n> {
    net: &'n Network,
    next: usize,
    ran: usize,
    /// The last layer reading each output, so it can be dropped after that.
    last_use: Vec<usize>,
    outputs: Vec<Option<Vec<f32>>>,
}

impl<'n> Tail<'n> {
    /// The tail `[from, end)` of `net`. `input` is the output of layer `from − 1` (the
    /// stitched fused-stack output); `earlier` gives the outputs of layers before `from − 1`
    /// that a tail route reads (none for YOLOv2 from 16).
    pub fn new(
        net: &'n Network,
        from: usize,
        input: &[f32],
        earlier: &[(usize, &[f32])],
    ) -> Result<Tail<'n>, TailError> {
        let layers = net.layers();
        if from == 0 || from >= layers.len() {
            return Err(TailError::Range {
                from,
                layers: layers.len(),
            });
        }
        let in_shape = layers[from - 1].output;
        if Some(input.len()) != in_shape.elements() {
            return Err(TailError::InputSize {
                got: input.len(),
                layer: from - 1,
                shape: in_shape,
            });
        }
        let mut last_use: Vec<usize> = (0..layers.len()).map(|i| i + 1).collect();
        for (j, l) in layers.iter().enumerate().skip(from) {
            if let LayerKind::Route(r) = &l.kind {
                for &src in r.layers.iter() {
                    last_use[src as usize] = last_use[src as usize].max(j);
                }
            }
        }
        let mut outputs: Vec<Option<Vec<f32>>> = vec![None; layers.len()];
        outputs[from - 1] = Some(input.to_vec());
        for &(i, data) in earlier {
            outputs
                .get_mut(i)
                .ok_or(TailError::NoLayer { layer: i })?
                .replace(data.to_vec());
        }
        Ok(Tail {
            net,
            next: from,
            ran: 0,
            last_use,
            outputs,
        })
    }

    /// The layer the next step runs (`None`: the tail is done).
    pub fn next_layer(&self) -> Option<usize> {
        (self.next < self.net.layers().len()).then_some(self.next)
    }

    /// Runs the next layer with `kernels` and `weights` (covering the tail's convolutions);
    /// returns its index, or `None` when every layer ran.
    pub fn step<K: Kernels>(
        &mut self,
        kernels: &K,
        weights: &Weights<'_>,
    ) -> Result<Option<usize>, TailError> {
        let Some(j) = self.next_layer() else {
            return Ok(None);
        };
        let layers = self.net.layers();
        let layer = &layers[j];
        let view = |error| TailError::View { layer: j, error };
        let kernel = |error| TailError::Kernel { layer: j, error };
        let op = |error| TailError::Op { layer: j, error };
        let out_len = layer
            .output
            .elements()
            .ok_or(TailError::Overflow { layer: j })?;
        let mut out = vec![0.0f32; out_len];
        let outputs = &self.outputs;
        let read = |source: usize| {
            outputs[source]
                .as_deref()
                .ok_or(TailError::Missing { layer: j, source })
        };
        let (map, o) = (layer.input, layer.output);
        match &layer.kind {
            LayerKind::Conv(conv) => {
                let params = weights.conv(j).ok_or(TailError::Weights { layer: j })?;
                let src = FeatureView::new(read(j - 1)?, Region::full(map.w, map.h), map.c)
                    .map_err(view)?;
                let mut dst =
                    FeatureViewMut::new(&mut out, Region::full(o.w, o.h), o.c).map_err(view)?;
                kernels
                    .conv(conv, map, &params, &src, &mut dst)
                    .map_err(kernel)?;
            }
            LayerKind::MaxPool(pool) => {
                let src = FeatureView::new(read(j - 1)?, Region::full(map.w, map.h), map.c)
                    .map_err(view)?;
                let mut dst =
                    FeatureViewMut::new(&mut out, Region::full(o.w, o.h), o.c).map_err(view)?;
                kernels.maxpool(pool, map, &src, &mut dst).map_err(kernel)?;
            }
            LayerKind::Route(r) => {
                let mut sources = Vec::with_capacity(r.layers.len());
                for &src in r.layers.iter() {
                    let src = src as usize;
                    sources.push((read(src)?, layers[src].output));
                }
                ops::route(&sources, &mut out).map_err(op)?;
            }
            LayerKind::Reorg(r) => {
                ops::reorg(read(j - 1)?, map, r.stride, &mut out).map_err(op)?;
            }
            LayerKind::Region(p) => {
                ops::region(read(j - 1)?, map, p, &mut out).map_err(op)?;
            }
        }
        self.outputs[j] = Some(out);
        for (i, slot) in self.outputs.iter_mut().enumerate().take(j) {
            if self.last_use[i] <= j {
                *slot = None;
            }
        }
        self.next += 1;
        self.ran += 1;
        Ok(Some(j))
    }

    /// The last layer's output (empty if the tail did not run to its end).
    pub fn finish(mut self) -> TailRun {
        let last = self.net.layers().len() - 1;
        TailRun {
            output: self.outputs[last].take().unwrap_or_default(),
            shape: self.net.layers()[last].output,
            layers: self.ran,
        }
    }
}

/// Runs layers `[from, end)` of `net` on full maps (see [`Tail::new`] for `input` and
/// `earlier`). `weights` must cover the tail's conv layers.
pub fn run_tail<K: Kernels>(
    kernels: &K,
    net: &Network,
    weights: &Weights<'_>,
    from: usize,
    input: &[f32],
    earlier: &[(usize, &[f32])],
) -> Result<TailRun, TailError> {
    let mut tail = Tail::new(net, from, input, earlier)?;
    while tail.step(kernels, weights)?.is_some() {}
    Ok(tail.finish())
}
