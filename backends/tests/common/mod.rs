//! Helpers shared by the loopback cluster tests.
#![allow(dead_code)] // each test module uses its own subset

use std::net::SocketAddr;

use tessera_backends::coded::{Activation, LinearLayer, Numeric};
use tessera_backends::driver::Model;
use tessera_backends::link::LinkConfig;
use tessera_core::ftp::{FusedStack, Grid, Mode, Partition};
use tessera_core::kernel::Portable;
use tessera_core::model::weights::param_count;
use tessera_core::model::Shape;
use tessera_core::rng::SplitMix64;
use tessera_core::time::Duration;
use tessera_core::wire::{Key, Limits, NodeId};

/// `n` deterministic values in `[-1, 1)` (SplitMix64 from `seed`).
pub fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut rng = SplitMix64::new(u64::from(seed));
    (0..n).map(|_| rng.uniform_f32(-1.0, 1.0)).collect()
}

/// A coded layer `in_len → rows` with deterministic weights and bias from `seed`.
pub fn linear_layer(
    in_len: usize,
    rows: usize,
    seed: u32,
    activation: Activation,
    numeric: Numeric,
) -> LinearLayer {
    LinearLayer {
        in_len,
        rows,
        weights: values(rows * in_len, seed),
        bias: values(rows, seed + 1),
        activation,
        numeric,
    }
}

/// A TCP port free on every 127.0.0.x a moment ago (every node of a test listens on it, each on its
/// own 127.0.0.x address).
pub fn port() -> u16 {
    tessera_testkit::loopback_port()
}

/// Nodes `0..=last` on 127.0.0.1.. at `port`.
pub fn loopback(last: NodeId, port: u16) -> Vec<(NodeId, SocketAddr)> {
    (0..=last)
        .map(|id| (id, SocketAddr::from(([127, 0, 0, 1 + id as u8], port))))
        .collect()
}

/// Node `me`'s link to every other node of `peers`, authenticated with `key`.
pub fn link(
    me: NodeId,
    peers: &[(NodeId, SocketAddr)],
    port: u16,
    key: &Key,
    peer_dead: Duration,
) -> LinkConfig {
    LinkConfig {
        me,
        port,
        peers: peers.iter().copied().filter(|(q, _)| *q != me).collect(),
        key: Some(key.clone()),
        limits: Limits::LARGE,
        first_seq: 1,
        peer_dead,
        retry: Duration::from_millis(10),
        max_backoff: tessera_backends::link::MAX_BACKOFF,
        connect: Duration::from_secs(2),
        backlog: tessera_backends::link::DEFAULT_BACKLOG,
        handshake: Default::default(),
    }
}

/// The loopback clusters' test net: 48×40×3 in, seven layers (two pools), on `grid`, with
/// deterministic parameters (batch-norm variances positive).
pub fn small_model(grid: (u32, u32)) -> Model {
    use tessera_testkit::{conv, pool};
    let layers = [
        conv(8, 3),
        pool(),
        conv(8, 3),
        conv(4, 1),
        conv(8, 3),
        pool(),
        conv(6, 3),
    ];
    let net = tessera_testkit::network(Shape::new(48, 40, 3), layers);
    let n = net.layers().len();
    let mut params = values(param_count(&net, n).unwrap(), 3);
    // Every 4th block of a BN layer is a variance: make all |x|·0.5 + 0.05.
    params.iter_mut().for_each(|v| *v = v.abs() * 0.5 + 0.05);
    Model::new(net, params, n, grid, Partition::Darknet).unwrap()
}

/// `model`'s output for `image` on one device (the whole frame as one tile).
pub fn single_device(model: &Model, image: &[f32]) -> Vec<f32> {
    let stack = FusedStack::new(&model.net, model.layers).unwrap();
    let grid = Grid::new(1, 1, Partition::Darknet, &stack).unwrap();
    let w = model.weights().unwrap();
    tessera_testkit::tiles::tiled(&Portable, &stack, &grid, Mode::Plain, &w, image)
}
