//! The driver with a peer that does not read: sends past the link's backlog cap are refused
//! and counted in `NodeStats::sends_refused`, nothing grows without bound, and the refused
//! frame is recovered by the runtime's timeouts (it fails at its source, as documented on
//! `Node`'s send handling).
#![cfg(feature = "std")]

use crate::common;

use common::{link, loopback, port, values};
use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant as StdInstant;

use tessera_backends::driver::{Inline, Model, Node};
use tessera_backends::embedded_nal::{nb, TcpClientStack, TcpFullStack};
use tessera_backends::link::{Link, LinkEvent};
use tessera_backends::nal_std::{StdSocket, StdStack, StdTcpError};
use tessera_core::ftp::{FusedStack, Grid, Partition};
use tessera_core::kernel::Portable;
use tessera_core::model::weights::param_count;
use tessera_core::model::{Activation, Conv, LayerKind, Network, Shape};
use tessera_core::runtime::Config;
use tessera_core::time::{Duration, Instant};
use tessera_core::wire::{Key, Policy};

/// std sockets whose sends all block once `stall` is set: from the sender's side, a peer
/// that stopped reading and whose socket buffers are full.
struct Stalling {
    inner: StdStack,
    stall: Rc<Cell<bool>>,
}

impl TcpClientStack for Stalling {
    type TcpSocket = StdSocket;
    type Error = StdTcpError;
    fn socket(&mut self) -> Result<StdSocket, StdTcpError> {
        self.inner.socket()
    }
    fn connect(&mut self, s: &mut StdSocket, to: SocketAddr) -> nb::Result<(), StdTcpError> {
        self.inner.connect(s, to)
    }
    fn send(&mut self, s: &mut StdSocket, b: &[u8]) -> nb::Result<usize, StdTcpError> {
        if self.stall.get() {
            return Err(nb::Error::WouldBlock);
        }
        self.inner.send(s, b)
    }
    fn receive(&mut self, s: &mut StdSocket, b: &mut [u8]) -> nb::Result<usize, StdTcpError> {
        self.inner.receive(s, b)
    }
    fn close(&mut self, s: StdSocket) -> Result<(), StdTcpError> {
        self.inner.close(s)
    }
}

impl TcpFullStack for Stalling {
    fn bind(&mut self, s: &mut StdSocket, port: u16) -> Result<(), StdTcpError> {
        self.inner.bind(s, port)
    }
    fn listen(&mut self, s: &mut StdSocket) -> Result<(), StdTcpError> {
        self.inner.listen(s)
    }
    fn accept(&mut self, s: &mut StdSocket) -> nb::Result<(StdSocket, SocketAddr), StdTcpError> {
        self.inner.accept(s)
    }
}

fn model() -> Arc<Model> {
    let mut net = Network::new(Shape::new(48, 40, 3)).unwrap();
    for filters in [8, 6] {
        net.push(LayerKind::Conv(Conv {
            filters,
            size: 3,
            stride: 1,
            pad: 1,
            batch_norm: false,
            activation: Activation::Leaky,
        }))
        .unwrap();
    }
    let layers = net.layers().len();
    let params = values(param_count(&net, layers).unwrap(), 3);
    Arc::new(Model::new(net, params, layers, (2, 2), Partition::Darknet).unwrap())
}

#[test]
fn a_frame_refused_for_a_full_backlog_is_counted_and_fails_at_its_source() {
    let model = model();
    let stack = FusedStack::new(&model.net, model.layers).unwrap();
    let grid = Grid::new(2, 2, Partition::Darknet, &stack).unwrap();
    // Work sharing: the source sends each whole frame to the gateway.
    let mut cfg = Config::new(Policy::Wsh, &stack, grid);
    cfg.tile_timeout = Duration::from_secs(1);
    cfg.frame_deadline = Duration::from_secs(2);
    let p = port();
    let peers = loopback(1, p);
    let key = Key::new([3; 32]);
    let frame_bytes = 48 * 40 * 3 * 4;
    let mut edge_link = link(1, &peers, p, &key, Duration::from_secs(600));
    // Room for one frame and a half: the second frame finds the first still queued.
    edge_link.backlog = frame_bytes * 3 / 2;
    let stall = Rc::new(Cell::new(false));
    let mut edge = Node::new(
        Stalling {
            inner: StdStack::new(peers[1].1.ip()),
            stall: stall.clone(),
        },
        edge_link,
        cfg,
        model.clone(),
        Inline::new(Portable, model.clone()),
        Instant::ZERO,
    )
    .unwrap();
    let mut gateway = Link::new(
        StdStack::new(peers[0].1.ip()),
        link(0, &peers, p, &key, Duration::from_secs(600)),
    )
    .unwrap();

    let wall = StdInstant::now();
    let mut t = 0u64;
    while !(edge.link().is_up(0) && gateway.is_up(1)) {
        assert!(wall.elapsed().as_secs() < 20, "never connected");
        t += 1_000;
        gateway.poll(Instant::from_micros(t), |_, _: LinkEvent| {});
        edge.poll(Instant::from_micros(t));
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    // From now on the gateway takes nothing.
    stall.set(true);
    let image = values(48 * 40 * 3, 5);
    let now = Instant::from_micros(t);
    edge.submit(now, image.clone()).unwrap();
    assert_eq!(
        edge.stats().sends_refused,
        0,
        "the first frame finds an empty backlog"
    );
    let queued = edge.link().backlog(0);
    assert!(queued >= frame_bytes, "{queued}");
    edge.submit(now, image.clone()).unwrap();
    assert_eq!(edge.stats().sends_refused, 1);
    assert_eq!(edge.stats().link.sends_refused, 1);
    assert_eq!(
        edge.link().backlog(0),
        queued,
        "a refused frame adds nothing"
    );

    // The runtime's deadline ends both frames at the source, failed; the link stays up.
    for step in 1..=50 {
        edge.poll(Instant::from_micros(t + step * 100_000));
    }
    let finished = edge.take_finished();
    assert_eq!(finished.len(), 2, "{finished:?}");
    assert!(finished.iter().all(|f| !f.complete), "{finished:?}");
    assert!(edge.link().is_up(0));
    assert!(
        edge.link().backlog(0) <= queued + 1024,
        "heartbeats at most"
    );
}
