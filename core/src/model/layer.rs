//! Layer kinds, their parameters and output-shape rules (Darknet's arithmetic, checked).

use heapless::Vec;

use super::network::{ShapeError, MAX_ROUTE_INPUTS};

/// Width, height and channels of a feature map (stored CHW).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Shape {
    /// Columns.
    pub w: u32,
    /// Rows.
    pub h: u32,
    /// Channels.
    pub c: u32,
}

impl Shape {
    /// A `w × h × c` shape.
    pub const fn new(w: u32, h: u32, c: u32) -> Self {
        Shape { w, h, c }
    }

    /// Number of elements, or `None` if it does not fit in `usize`.
    pub fn elements(&self) -> Option<usize> {
        (self.w as usize)
            .checked_mul(self.h as usize)?
            .checked_mul(self.c as usize)
    }
}

/// Activation applied after a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Activation {
    /// `y = x`.
    Linear,
    /// `y = x` if `x > 0`, else `0.1·x` (Darknet's `leaky`).
    Leaky,
}

/// A convolution (Darknet `[convolutional]`, `groups = 1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv {
    /// Output channels.
    pub filters: u32,
    /// Kernel side `k` (square kernels).
    pub size: u32,
    /// Stride `s`.
    pub stride: u32,
    /// Zero padding `p` on each side (Darknet: `pad=1` means `⌊k/2⌋`).
    pub pad: u32,
    /// Batch normalisation (scales, rolling mean and variance) before the bias.
    pub batch_norm: bool,
    /// Activation after normalisation and bias.
    pub activation: Activation,
}

impl Conv {
    /// Output extent along one axis for an input extent `n`: `(n + 2p − k)/s + 1`.
    pub fn out_extent(&self, n: u32) -> Result<u32, ShapeError> {
        if self.size == 0 || self.stride == 0 || self.filters == 0 {
            return Err(ShapeError::ZeroParameter);
        }
        let padded = self
            .pad
            .checked_mul(2)
            .and_then(|p| n.checked_add(p))
            .ok_or(ShapeError::Overflow)?;
        let span = padded
            .checked_sub(self.size)
            .ok_or(ShapeError::KernelLargerThanInput)?;
        Ok(span / self.stride + 1)
    }

    /// Number of weights (`filters · c_in · k²`), checked.
    pub fn weight_count(&self, in_channels: u32) -> Option<usize> {
        (self.filters as usize)
            .checked_mul(in_channels as usize)?
            .checked_mul(self.size as usize)?
            .checked_mul(self.size as usize)
    }
}

/// A max pool (Darknet `[maxpool]`).
///
/// Darknet pads `pad` in total (default `size − 1`) and places windows at offset `−⌊pad/2⌋`;
/// taps outside the map are ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MaxPool {
    /// Window side `z`.
    pub size: u32,
    /// Stride `s`.
    pub stride: u32,
    /// Total padding (Darknet's `padding`, default `size − 1`).
    pub pad: u32,
}

impl MaxPool {
    /// Offset `q` of the first window (left/top padding): `⌊pad/2⌋`.
    pub const fn offset(&self) -> u32 {
        self.pad / 2
    }

    /// Output extent along one axis: `(n + pad − z)/s + 1`.
    pub fn out_extent(&self, n: u32) -> Result<u32, ShapeError> {
        if self.size == 0 || self.stride == 0 {
            return Err(ShapeError::ZeroParameter);
        }
        let padded = n.checked_add(self.pad).ok_or(ShapeError::Overflow)?;
        let span = padded
            .checked_sub(self.size)
            .ok_or(ShapeError::KernelLargerThanInput)?;
        Ok(span / self.stride + 1)
    }
}

/// Concatenation of earlier layers' outputs along channels (Darknet `[route]`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Route {
    /// Absolute indices of the source layers, in concatenation order.
    pub layers: Vec<u16, MAX_ROUTE_INPUTS>,
}

/// Space-to-depth rearrangement (Darknet `[reorg]`, forward direction).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Reorg {
    /// Block side; output is `w/s × h/s × c·s²`.
    pub stride: u32,
}

/// Maximum number of anchor boxes a region layer may carry.
pub const MAX_ANCHORS: usize = 16;

/// YOLOv2 detection head (Darknet `[region]`): shape-preserving, decoded on the gateway.
#[derive(Clone, Debug, PartialEq)]
pub struct RegionParams {
    /// Object classes.
    pub classes: u32,
    /// Box coordinates per anchor (4).
    pub coords: u32,
    /// Anchors per cell.
    pub num: u32,
    /// Anchor `(w, h)` pairs in grid cells, `num` of them.
    pub anchors: Vec<(f32, f32), MAX_ANCHORS>,
    /// Softmax over class scores.
    pub softmax: bool,
    /// Detection threshold from the cfg.
    pub thresh: f32,
}

/// What a layer computes.
#[derive(Clone, Debug, PartialEq)]
pub enum LayerKind {
    /// Convolution with optional batch norm and an activation.
    Conv(Conv),
    /// Max pooling.
    MaxPool(MaxPool),
    /// Channel concatenation of earlier outputs.
    Route(Route),
    /// Space-to-depth.
    Reorg(Reorg),
    /// YOLOv2 detection head.
    Region(RegionParams),
}

impl LayerKind {
    /// True for layers that FTP can fuse (spatially local: conv and maxpool).
    pub const fn is_fusable(&self) -> bool {
        matches!(self, LayerKind::Conv(_) | LayerKind::MaxPool(_))
    }
}

/// A layer with its inferred input and output shapes.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    /// What it computes.
    pub kind: LayerKind,
    /// Shape of its input (for a route: of its first source).
    pub input: Shape,
    /// Shape of its output.
    pub output: Shape,
}

impl Layer {
    /// The convolution parameters, if this is a conv layer.
    pub const fn conv(&self) -> Option<&Conv> {
        match &self.kind {
            LayerKind::Conv(c) => Some(c),
            _ => None,
        }
    }

    /// Multiply-accumulates to compute the whole output (0 for non-conv layers).
    pub fn macs(&self) -> u64 {
        match &self.kind {
            LayerKind::Conv(c) => {
                self.output.w as u64
                    * self.output.h as u64
                    * self.output.c as u64
                    * self.input.c as u64
                    * c.size as u64
                    * c.size as u64
            }
            _ => 0,
        }
    }
}
