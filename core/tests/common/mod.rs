//! Networks shared by the core's integration tests.
#![allow(dead_code)] // each test binary uses a subset

use tessera_core::model::{Activation, Conv, LayerKind, MaxPool, Network, Shape};

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

pub fn pool() -> LayerKind {
    LayerKind::MaxPool(MaxPool {
        size: 2,
        stride: 2,
        pad: 1,
    })
}

/// Layers 0–15 of YOLOv2 at 608×608 (docs/design.md §2.1 table).
pub fn yolo16() -> Network {
    let mut n = Network::new(Shape::new(608, 608, 3)).unwrap();
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
        n.push(k).unwrap();
    }
    n
}
