//! Layer and network builders for tests.

use tessera_core::model::{Activation, Conv, LayerKind, MaxPool, Network, Shape};

/// A stride-1 `size`×`size` conv with Darknet's `pad=1` (`⌊size/2⌋`), batch norm and a leaky
/// activation: every conv of YOLOv2's fused prefix.
pub fn conv(filters: u32, size: u32) -> LayerKind {
    LayerKind::Conv(Conv {
        filters,
        size,
        stride: 1,
        pad: size / 2,
        batch_norm: true,
        activation: Activation::Leaky,
    })
}

/// A 2×2 stride-2 max pool as the cfg parser builds it (Darknet's default `padding = size − 1`).
pub fn pool() -> LayerKind {
    LayerKind::MaxPool(MaxPool {
        size: 2,
        stride: 2,
        pad: 1,
    })
}

/// A network on `input` made of `layers`, in order.
///
/// # Panics
///
/// If the input or a layer is refused (a test's network is fixed, so that is a bug in the test).
pub fn network(input: Shape, layers: impl IntoIterator<Item = LayerKind>) -> Network {
    let mut n = Network::new(input).expect("a valid input shape");
    for k in layers {
        n.push(k).expect("a layer that fits the network");
    }
    n
}

/// Layers 0–15 of YOLOv2 at 608×608 (the table of docs/design.md §2.1).
pub fn yolo16() -> Network {
    network(
        Shape::new(608, 608, 3),
        [
            conv(32, 3),
            pool(),
            conv(64, 3),
            pool(),
            conv(128, 3),
            conv(64, 1),
            conv(128, 3),
            pool(),
            conv(256, 3),
            conv(128, 1),
            conv(256, 3),
            pool(),
            conv(512, 3),
            conv(256, 1),
            conv(512, 3),
            conv(256, 1),
        ],
    )
}
