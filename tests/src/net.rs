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

/// Layers 0–15 of YOLOv2 at 608×608 (the table of docs/design.md §2.1).
pub fn yolo16() -> Network {
    let mut n = Network::new(Shape::new(608, 608, 3)).expect("608×608×3 is a valid input");
    for k in [
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
    ] {
        n.push(k).expect("YOLOv2's prefix fits a network");
    }
    n
}
