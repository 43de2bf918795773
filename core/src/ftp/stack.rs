//! The fused prefix of a network and backward region propagation (docs/design.md §2.3).

use super::{PlanError, MAX_FUSED};
use crate::kernel::{align_region, input_span, Kernels};
use crate::model::{Layer, LayerKind, Network, Shape};
use crate::region::Region;

/// Layers `[0, L)` of a network, all conv or maxpool, that FTP runs tile by tile.
///
/// A stack may carry a per-layer output alignment ([`FusedStack::aligned`]): the region math
/// then rounds each such layer's output region out to its block grid before taking the
/// layer's input region, so tiles hold every input their kernel's whole blocks read.
#[derive(Clone, Copy, Debug)]
pub struct FusedStack<'a> {
    net: &'a Network,
    len: usize,
    align: [u8; MAX_FUSED],
}

impl<'a> FusedStack<'a> {
    /// Fuses layers `[0, layers)` of `net`; `1 ≤ layers ≤ MAX_FUSED`, within the network, and
    /// every fused layer must be a conv or a maxpool.
    pub fn new(net: &'a Network, layers: usize) -> Result<Self, PlanError> {
        let max = MAX_FUSED.min(net.layers().len());
        if layers == 0 || layers > max {
            return Err(PlanError::StackLength { layers, max });
        }
        if let Some(layer) = net.layers()[..layers]
            .iter()
            .position(|l| !l.kind.is_fusable())
        {
            return Err(PlanError::NotFusable { layer });
        }
        Ok(FusedStack {
            net,
            len: layers,
            align: [1; MAX_FUSED],
        })
    }

    /// This stack with each conv layer's output alignment taken from `kernels`
    /// ([`Kernels::conv_alignment`]; at most 255, larger values count as 1). Plans made from
    /// the result give every tile the input a block-wise kernel needs, so tiles stay
    /// bit-identical to the full frame with it.
    pub fn aligned<K: Kernels + ?Sized>(mut self, kernels: &K) -> Self {
        for (l, layer) in self.layers().iter().enumerate() {
            self.align[l] = match &layer.kind {
                LayerKind::Conv(c) => u8::try_from(kernels.conv_alignment(c, layer.input))
                    .unwrap_or(1)
                    .max(1),
                _ => 1,
            };
        }
        self
    }

    /// The output alignment of layer `layer` (1: none; see [`FusedStack::aligned`]).
    pub fn alignment(&self, layer: usize) -> u32 {
        self.align.get(layer).map_or(1, |&m| u32::from(m))
    }

    /// The whole network.
    pub const fn network(&self) -> &'a Network {
        self.net
    }

    /// Number of fused layers `L` (never 0).
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Always false: a stack fuses at least one layer.
    pub const fn is_empty(&self) -> bool {
        false
    }

    /// The fused layers, in order.
    pub fn layers(&self) -> &'a [Layer] {
        &self.net.layers()[..self.len]
    }

    /// Shape of layer 0's input (the image).
    pub fn input(&self) -> Shape {
        self.layers()[0].input
    }

    /// Shape of layer `L − 1`'s output (the map the grid is laid over).
    pub fn output(&self) -> Shape {
        self.layers()[self.len - 1].output
    }

    /// Multiply-accumulates of the unpartitioned stack.
    pub fn macs(&self) -> u64 {
        self.net.macs(self.len)
    }

    /// The region of layer `layer`'s input that its output region `out` depends on (general
    /// conv formula and offset maxpool windows, clamped to the map; an aligned layer's `out`
    /// first rounded out to its block grid). Empty for a layer index outside the stack.
    pub fn back(&self, layer: usize, out: Region) -> Region {
        let Some(l) = self.layers().get(layer) else {
            return Region::default();
        };
        let out = align_region(out, self.alignment(layer), l.output.w, l.output.h);
        let (size, stride, pad) = match &l.kind {
            LayerKind::Conv(c) => (c.size, c.stride, c.pad),
            LayerKind::MaxPool(p) => (p.size, p.stride, p.offset()),
            _ => return Region::default(),
        };
        let r = Region::new(
            input_span(out.x, size, stride, pad, l.input.w),
            input_span(out.y, size, stride, pad, l.input.h),
        );
        if r.is_empty() {
            Region::default()
        } else {
            r
        }
    }
}
