//! A network: an input shape and a bounded list of layers with inferred shapes.

use core::fmt;

use heapless::Vec;

use super::layer::{Layer, LayerKind, Shape};

/// Most layers a [`Network`] holds (YOLOv2 has 32).
pub const MAX_LAYERS: usize = 48;
/// Most source layers of one route layer.
pub const MAX_ROUTE_INPUTS: usize = 4;

/// Why a layer's shape could not be inferred.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShapeError {
    /// More than [`MAX_LAYERS`] layers.
    TooManyLayers,
    /// A size, stride, filter count or dimension is zero.
    ZeroParameter,
    /// The kernel or window is larger than the padded input.
    KernelLargerThanInput,
    /// An intermediate size overflowed.
    Overflow,
    /// A route names a layer that does not exist yet.
    RouteOutOfRange,
    /// Route sources differ in width or height, or the route is empty.
    RouteMismatch,
    /// Reorg stride does not divide the input width and height.
    ReorgIndivisible,
}

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ShapeError::TooManyLayers => "too many layers",
            ShapeError::ZeroParameter => "zero size, stride, filter count or dimension",
            ShapeError::KernelLargerThanInput => "kernel larger than the padded input",
            ShapeError::Overflow => "size overflow",
            ShapeError::RouteOutOfRange => "route refers to a layer that does not exist yet",
            ShapeError::RouteMismatch => "route sources differ in width or height",
            ShapeError::ReorgIndivisible => "reorg stride does not divide the input size",
        })
    }
}

impl core::error::Error for ShapeError {}

/// A feed-forward network with shapes inferred as layers are pushed.
#[derive(Clone, Debug, PartialEq)]
pub struct Network {
    input: Shape,
    layers: Vec<Layer, MAX_LAYERS>,
}

impl Network {
    /// An empty network taking `input`-shaped tensors.
    pub fn new(input: Shape) -> Result<Self, ShapeError> {
        if input.w == 0 || input.h == 0 || input.c == 0 {
            return Err(ShapeError::ZeroParameter);
        }
        input.elements().ok_or(ShapeError::Overflow)?;
        Ok(Network {
            input,
            layers: Vec::new(),
        })
    }

    /// Shape of the network input.
    pub const fn input(&self) -> Shape {
        self.input
    }

    /// The layers, in order.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// Shape of the last layer's output (the input shape when empty).
    pub fn output(&self) -> Shape {
        self.layers.last().map_or(self.input, |l| l.output)
    }

    /// Appends a layer after inferring its shapes from the current output.
    pub fn push(&mut self, kind: LayerKind) -> Result<&Layer, ShapeError> {
        if self.layers.is_full() {
            return Err(ShapeError::TooManyLayers);
        }
        let prev = self.output();
        let (input, output) = match &kind {
            LayerKind::Conv(c) => {
                let out = Shape::new(c.out_extent(prev.w)?, c.out_extent(prev.h)?, c.filters);
                c.weight_count(prev.c).ok_or(ShapeError::Overflow)?;
                (prev, out)
            }
            LayerKind::MaxPool(p) => (
                prev,
                Shape::new(p.out_extent(prev.w)?, p.out_extent(prev.h)?, prev.c),
            ),
            LayerKind::Route(r) => {
                let mut first: Option<Shape> = None;
                let mut c: u32 = 0;
                for &i in r.layers.iter() {
                    let s = self
                        .layers
                        .get(i as usize)
                        .ok_or(ShapeError::RouteOutOfRange)?
                        .output;
                    match first {
                        Some(f) if (f.w, f.h) != (s.w, s.h) => {
                            return Err(ShapeError::RouteMismatch)
                        }
                        None => first = Some(s),
                        _ => {}
                    }
                    c = c.checked_add(s.c).ok_or(ShapeError::Overflow)?;
                }
                let f = first.ok_or(ShapeError::RouteMismatch)?;
                (f, Shape::new(f.w, f.h, c))
            }
            LayerKind::Reorg(r) => {
                let s = r.stride;
                if s == 0 {
                    return Err(ShapeError::ZeroParameter);
                }
                if !prev.w.is_multiple_of(s) || !prev.h.is_multiple_of(s) {
                    return Err(ShapeError::ReorgIndivisible);
                }
                let c = s
                    .checked_mul(s)
                    .and_then(|s2| prev.c.checked_mul(s2))
                    .ok_or(ShapeError::Overflow)?;
                (prev, Shape::new(prev.w / s, prev.h / s, c))
            }
            LayerKind::Region(_) => (prev, prev),
        };
        if output.w == 0 || output.h == 0 || output.c == 0 {
            return Err(ShapeError::ZeroParameter);
        }
        output.elements().ok_or(ShapeError::Overflow)?;
        self.layers
            .push(Layer {
                kind,
                input,
                output,
            })
            .map_err(|_| ShapeError::TooManyLayers)?;
        Ok(self.layers.last().expect("just pushed"))
    }

    /// Multiply-accumulates of layers `[0, upto)`.
    pub fn macs(&self, upto: usize) -> u64 {
        self.layers.iter().take(upto).map(Layer::macs).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Activation, Conv, MaxPool};

    fn conv(filters: u32, size: u32, stride: u32) -> LayerKind {
        LayerKind::Conv(Conv {
            filters,
            size,
            stride,
            pad: size / 2,
            batch_norm: true,
            activation: Activation::Leaky,
        })
    }

    #[test]
    fn infers_conv_and_pool_shapes() {
        let mut n = Network::new(Shape::new(608, 608, 3)).unwrap();
        assert_eq!(
            n.push(conv(32, 3, 1)).unwrap().output,
            Shape::new(608, 608, 32)
        );
        let pool = LayerKind::MaxPool(MaxPool {
            size: 2,
            stride: 2,
            pad: 1,
        });
        assert_eq!(n.push(pool).unwrap().output, Shape::new(304, 304, 32));
        assert_eq!(
            n.push(conv(8, 3, 2)).unwrap().output,
            Shape::new(152, 152, 8)
        );
    }

    #[test]
    fn rejects_absurd_layers() {
        let mut n = Network::new(Shape::new(4, 4, 3)).unwrap();
        let unpadded = LayerKind::Conv(Conv {
            filters: 8,
            size: 9,
            stride: 1,
            pad: 0,
            batch_norm: false,
            activation: Activation::Linear,
        });
        assert_eq!(n.push(unpadded), Err(ShapeError::KernelLargerThanInput));
        assert_eq!(n.push(conv(8, 3, 0)), Err(ShapeError::ZeroParameter));
        assert_eq!(
            Network::new(Shape::new(0, 4, 3)).unwrap_err(),
            ShapeError::ZeroParameter
        );
        let huge = LayerKind::Conv(Conv {
            filters: u32::MAX,
            size: 1,
            stride: 1,
            pad: u32::MAX,
            batch_norm: false,
            activation: Activation::Linear,
        });
        assert!(n.push(huge).is_err());
        assert!(n.layers().is_empty());
    }
}
