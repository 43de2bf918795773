//! Where a firmware author starts: a gateway and two edges driven in memory with the sans-IO
//! state machines. Run: `cargo run -p tessera-core --example embed_cluster`.
//!
//! Everything a real driver does is here, minus the bytes: the "network" is a `Vec` of
//! messages in flight, the "executor" a `Vec` of jobs with a finishing time, and time is a
//! number this loop advances — the machines never read a clock. Edge 1 has the camera (a WST-S
//! data source); edge 2 steals from it. On a device, replace
//!
//! * [`Net`] with your transport: call `on_connected` / `on_disconnected` when a peer's
//!   authenticated connection comes up or goes (the transport owns Hello, heartbeats and
//!   liveness), and `on_message` for each message received;
//! * the tensor-free messages built in [`Net::send`] with real ones (the driver slices a tile's
//!   input from the frame image, streams results and strips from its stores);
//! * the compute queue with your executor, reporting each job with `on_computed`;
//! * the time jumps with sleeping until the earliest `poll_at` or the next I/O event.
//!
//! `run` is also executed by `core/tests/embed_example.rs`, so this example cannot rot.

use tessera_core::ftp::{FusedStack, Grid, Partition};
use tessera_core::model::{Activation, Conv, LayerKind, MaxPool, Network, Shape};
use tessera_core::runtime::{Action, Config, Edge, Gateway, RuntimeError, Verdict, Work};
use tessera_core::time::{Duration, Instant};
use tessera_core::wire::Precision;
use tessera_core::wire::{FrameKey, Message, NodeId, Policy, StripsView, Tensor, GATEWAY};
use tessera_core::{Region, Span};

/// One-way latency of the pretend network.
const LATENCY: Duration = Duration::from_millis(1);
/// Time one tile takes on either edge.
const TILE: Duration = Duration::from_millis(5);
/// Frames the camera edge submits.
pub const FRAMES: usize = 3;
/// The source edge and the helper edge.
const SOURCE: NodeId = 1;
const HELPER: NodeId = 2;

/// A node: one of the two state machines, plus the job it is computing.
// Firmware holds one machine per device, statically: no point boxing the larger one.
#[allow(clippy::large_enum_variant)]
enum Machine {
    Gateway(Gateway),
    Edge(Edge),
}

struct Node {
    id: NodeId,
    machine: Machine,
    /// The job in the executor and when it finishes.
    computing: Option<(Work, Instant)>,
}

impl Node {
    fn on_connected(&mut self, now: Instant, peer: NodeId) {
        match &mut self.machine {
            Machine::Gateway(g) => g.on_connected(now, peer),
            Machine::Edge(e) => e.on_connected(now, peer),
        }
    }

    fn on_message(&mut self, now: Instant, from: NodeId, msg: &Message<'_>) -> Verdict {
        let r = match &mut self.machine {
            Machine::Gateway(g) => g.on_message(now, from, msg),
            Machine::Edge(e) => e.on_message(now, from, msg),
        };
        // A real driver drops the connection on `peer_fault()`; here nothing misbehaves.
        r.unwrap_or_else(|e: RuntimeError| panic!("node {} refused {msg:?}: {e}", self.id))
    }

    fn on_computed(&mut self, now: Instant, work: Work) {
        let _ = match &mut self.machine {
            Machine::Gateway(g) => g.on_computed(now, work),
            Machine::Edge(e) => e.on_computed(now, work),
        };
    }

    fn poll(&mut self, now: Instant) -> Option<Action> {
        match &mut self.machine {
            Machine::Gateway(g) => g.poll(now),
            Machine::Edge(e) => e.poll(now),
        }
    }

    fn poll_at(&self) -> Option<Instant> {
        match &self.machine {
            Machine::Gateway(g) => g.poll_at(),
            Machine::Edge(e) => e.poll_at(),
        }
    }

    fn tiles_computed(&self) -> u32 {
        match &self.machine {
            Machine::Gateway(g) => g.stats().tiles_computed,
            Machine::Edge(e) => e.stats().tiles_computed,
        }
    }
}

/// The pretend network: messages in flight, delivered in order after [`LATENCY`].
#[derive(Default)]
struct Net {
    in_flight: Vec<(Instant, NodeId, NodeId, Message<'static>)>,
}

/// A tensor header without data: this example moves ids, not values.
const NO_DATA: Tensor<'static> = Tensor {
    region: Region {
        x: Span { start: 0, end: 0 },
        y: Span { start: 0, end: 0 },
    },
    channels: 0,
    data: &[],
    precision: Precision::F32,
};

impl Net {
    /// Turns a send action into a message (a real driver attaches the tensors here).
    fn send(&mut self, now: Instant, from: NodeId, action: Action) {
        let (to, msg) = match action {
            Action::Send { to, msg } => (to, msg),
            Action::SubmitFrame { frame } => (
                GATEWAY,
                Message::FrameSubmit {
                    frame,
                    input: NO_DATA,
                },
            ),
            Action::SendTask {
                to,
                frame,
                tile,
                mode,
            } => (
                to,
                Message::Task {
                    frame,
                    tile,
                    mode,
                    input: NO_DATA,
                },
            ),
            Action::SendResult { to, frame, tile } => (
                to,
                Message::Result {
                    frame,
                    tile,
                    output: NO_DATA,
                },
            ),
            Action::SendStrips {
                to, frame, tile, ..
            } => (
                to,
                Message::Strips {
                    frame,
                    tile,
                    strips: StripsView::EMPTY,
                },
            ),
            // BODP actions do not occur under WST-S.
            _ => return,
        };
        self.in_flight.push((now + LATENCY, from, to, msg));
    }

    /// The earliest message due by `now`, if any (FIFO among equal times).
    fn take_due(&mut self, now: Instant) -> Option<(NodeId, NodeId, Message<'static>)> {
        let i = (0..self.in_flight.len())
            .filter(|&i| self.in_flight[i].0 <= now)
            .min_by_key(|&i| self.in_flight[i].0)?;
        let (_, from, to, msg) = self.in_flight.remove(i);
        Some((from, to, msg))
    }
}

/// What a run produced.
#[derive(Debug)]
pub struct Report {
    /// Frames the gateway completed, in order.
    pub completed: Vec<FrameKey>,
    /// Tiles computed by the gateway, edge 1 and edge 2.
    pub tiles: [u32; 3],
    /// Simulated time at the end.
    pub elapsed: Duration,
}

/// A small fused stack (conv, maxpool, conv on a 64×64 image) cut into a 3×3 grid.
fn config() -> Config {
    let conv = |filters| {
        LayerKind::Conv(Conv {
            filters,
            size: 3,
            stride: 1,
            pad: 1,
            batch_norm: true,
            activation: Activation::Leaky,
        })
    };
    let mut net = Network::new(Shape::new(64, 64, 3)).expect("network");
    net.push(conv(4)).expect("layer");
    net.push(LayerKind::MaxPool(MaxPool {
        size: 2,
        stride: 2,
        pad: 1,
    }))
    .expect("layer");
    net.push(conv(8)).expect("layer");
    let stack = FusedStack::new(&net, 3).expect("stack");
    let grid = Grid::new(3, 3, Partition::Darknet, &stack).expect("grid");
    let mut cfg = Config::new(Policy::WstS, &stack, grid);
    cfg.tile_timeout = Duration::from_millis(200);
    cfg
}

/// Runs [`FRAMES`] frames from edge 1 through the gateway with edge 2 stealing.
pub fn run() -> Report {
    let cfg = config();
    let t0 = Instant::ZERO;
    let mut nodes = [
        Node {
            id: GATEWAY,
            machine: Machine::Gateway(Gateway::new(cfg, t0)),
            computing: None,
        },
        Node {
            id: SOURCE,
            machine: Machine::Edge(Edge::new(cfg, SOURCE, t0)),
            computing: None,
        },
        Node {
            id: HELPER,
            machine: Machine::Edge(Edge::new(cfg, HELPER, t0)),
            computing: None,
        },
    ];
    // The transport connected everyone (in any order; here all at once).
    for a in 0..nodes.len() {
        for b in 0..nodes.len() {
            if a != b {
                let peer = nodes[b].id;
                nodes[a].on_connected(t0, peer);
            }
        }
    }
    let mut net = Net::default();
    let mut completed = Vec::new();
    let mut now = t0;
    let mut submitted = 0;
    // Bounded: a run that stalls ends (and the caller's assertions say so).
    while completed.len() < FRAMES && now < Instant::from_millis(10_000) {
        // The camera produces frames as fast as the source may hold them.
        if submitted < FRAMES {
            if let Machine::Edge(e) = &mut nodes[1].machine {
                if e.submit_frame(now).is_ok() {
                    submitted += 1;
                }
            }
        }
        // Events due now: messages, then finished jobs.
        while let Some((from, to, msg)) = net.take_due(now) {
            nodes[to as usize].on_message(now, from, &msg);
        }
        for n in nodes.iter_mut() {
            if let Some((work, at)) = n.computing {
                if at <= now {
                    n.computing = None;
                    n.on_computed(now, work);
                }
            }
        }
        // Drain every machine's actions.
        for n in nodes.iter_mut() {
            while let Some(a) = n.poll(now) {
                match a {
                    Action::Compute(work) => n.computing = Some((work, now + TILE)),
                    Action::FrameComplete { frame } if n.id == GATEWAY => completed.push(frame),
                    Action::FrameComplete { .. } | Action::FrameFailed { .. } => {}
                    Action::LayerComplete { .. } => {}
                    send => net.send(now, n.id, send),
                }
            }
        }
        // Sleep until the next thing happens: a message, a job, a machine's timer.
        let next = net
            .in_flight
            .iter()
            .map(|m| m.0)
            .chain(nodes.iter().filter_map(|n| n.computing.map(|c| c.1)))
            .chain(nodes.iter().filter_map(Node::poll_at))
            .min();
        now = match next {
            Some(t) if t > now => t,
            _ => now + Duration::from_millis(1),
        };
    }
    Report {
        completed,
        tiles: [
            nodes[0].tiles_computed(),
            nodes[1].tiles_computed(),
            nodes[2].tiles_computed(),
        ],
        elapsed: now - t0,
    }
}

fn main() {
    let r = run();
    println!(
        "{} frames in {} ms of simulated time; tiles computed: gateway {}, edge 1 {}, edge 2 {}",
        r.completed.len(),
        r.elapsed.total_millis(),
        r.tiles[0],
        r.tiles[1],
        r.tiles[2]
    );
}
