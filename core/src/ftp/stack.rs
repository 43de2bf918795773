//! The fused prefix of a network and backward region propagation (docs/design.md §2.3).

use super::{PlanError, MAX_FUSED};
use crate::kernel::input_span;
use crate::model::{Layer, LayerKind, Network, Shape};
use crate::region::Region;

/// Layers `[0, L)` of a network, all conv or maxpool, that FTP runs tile by tile.
#[derive(Clone, Copy, Debug)]
pub struct FusedStack<'a> {
    net: &'a Network,
    len: usize,
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
        Ok(FusedStack { net, len: layers })
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
    /// conv formula and offset maxpool windows, clamped to the map). Empty for a layer index
    /// outside the stack.
    pub fn back(&self, layer: usize, out: Region) -> Region {
        let Some(l) = self.layers().get(layer) else {
            return Region::default();
        };
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
