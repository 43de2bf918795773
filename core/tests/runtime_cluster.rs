//! In-memory cluster: one Gateway and K Edges exchange messages with a per-link delay on a
//! virtual clock that jumps to the next delivery, computation or `poll_at`. Compute actions take
//! a per-device time and only mark work done (no kernels). Checks that every policy completes
//! every frame with each tile's result accepted exactly once at the gateway, reuse readiness,
//! fault handling (killed edge, straggler), fairness between sources, and determinism.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use tessera_core::ftp::{FusedStack, Grid, Level, Mode, Partition, Side};

use tessera_core::region::Region;
use tessera_core::runtime::{Action, Config, Edge, Gateway, RuntimeError, Verdict, Work};
use tessera_core::time::{Duration, Instant};
use tessera_core::wire::Precision;
use tessera_core::wire::{FrameKey, Message, NodeId, Policy, StripsView, Tensor};
use tessera_testkit::{run, yolo16, EventQueue, Stop, World};

/// A message without tensors (the harness moves no data).
#[derive(Clone, Copy, Debug)]
enum Msg {
    Ctrl(Message<'static>),
    Task(FrameKey, u16, Mode),
    Result(FrameKey, u16),
    Strips(FrameKey, u16),
    Submit(FrameKey),
    LayerTask(FrameKey, u8, u16, Region),
    /// The stripe's output region (MoDNN before the last layer: zero columns wide).
    LayerResult(FrameKey, u8, u16, Region),
}

const EMPTY: Tensor<'static> = Tensor {
    region: Region {
        x: tessera_core::Span { start: 0, end: 0 },
        y: tessera_core::Span { start: 0, end: 0 },
    },
    channels: 0,
    data: &[],
    precision: Precision::F32,
};

impl Msg {
    fn message(&self) -> Message<'static> {
        match *self {
            Msg::Ctrl(c) => c,
            Msg::Task(frame, tile, mode) => Message::Task {
                frame,
                tile,
                mode,
                input: EMPTY,
            },
            Msg::Result(frame, tile) => Message::Result {
                frame,
                tile,
                output: EMPTY,
            },
            Msg::Strips(frame, tile) => Message::Strips {
                frame,
                tile,
                strips: StripsView::EMPTY,
            },
            Msg::Submit(frame) => Message::FrameSubmit {
                frame,
                input: EMPTY,
            },
            Msg::LayerTask(frame, layer, stripe, output) => Message::LayerTask {
                frame,
                layer,
                stripe,
                output,
                input: EMPTY,
            },
            Msg::LayerResult(frame, layer, stripe, region) => Message::LayerResult {
                frame,
                layer,
                stripe,
                output: Tensor { region, ..EMPTY },
            },
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Ev {
    Deliver { from: NodeId, to: NodeId, msg: Msg },
    Computed { node: NodeId, work: Work },
    Submit { node: NodeId },
    Kill { node: NodeId },
}

/// A scenario.
#[derive(Clone)]
struct Setup {
    policy: Policy,
    grid: u32,
    edges: usize,
    /// Compute time of one tile (µs), per node id (0 = gateway); missing → `tile_us`.
    slow: Vec<(NodeId, u64)>,
    tile_us: u64,
    delay_us: u64,
    /// (source node, frames, interval µs).
    sources: Vec<(NodeId, usize, u64)>,
    kill: Option<(NodeId, u64)>,
    fallback: bool,
    tile_timeout_us: u64,
}

impl Setup {
    fn new(policy: Policy, grid: u32, edges: usize) -> Setup {
        Setup {
            policy,
            grid,
            edges,
            slow: vec![],
            tile_us: 10_000,
            delay_us: 1_000,
            sources: vec![(1, 2, 5_000)],
            kill: None,
            fallback: true,
            tile_timeout_us: 60_000,
        }
    }
}

#[derive(Default, Debug)]
struct Report {
    /// (frame, tile) → accepted results at the gateway (edge results and own computations).
    accepted: BTreeMap<(FrameKey, u16), u32>,
    /// (frame, layer, stripe) → accepted BODP stripes.
    stripes: BTreeMap<(FrameKey, u8), u32>,
    complete: BTreeMap<FrameKey, u64>,
    failed: Vec<FrameKey>,
    submitted: BTreeMap<FrameKey, u64>,
    source_done: BTreeSet<FrameKey>,
    errors: Vec<(u64, NodeId, NodeId, RuntimeError)>,
    discarded: u32,
    /// Level-1 tile computations: (reuse, plain).
    level1: (u32, u32),
    /// Tiles computed per node.
    per_node: BTreeMap<NodeId, u32>,
    trace: Vec<String>,
    end: u64,
}

struct Cluster {
    s: Setup,
    cfg: Config,
    q: EventQueue<Ev>,
    gw: Gateway,
    edges: Vec<Edge>,
    dead: BTreeSet<NodeId>,
    busy: BTreeSet<NodeId>,
    left: HashMap<NodeId, usize>,
    r: Report,
    // Reuse readiness bookkeeping.
    strips_at_gw: BTreeSet<(FrameKey, u16)>,
    covered_at: BTreeSet<(NodeId, FrameKey, u16)>,
    computed_at: BTreeSet<(NodeId, FrameKey, u16)>,
    last_link: HashMap<(NodeId, NodeId), u64>,
    /// Output rows of the stripes each node computed: (node, frame, layer, stripe).
    stripe_out: HashMap<(NodeId, FrameKey, u8, u16), Region>,
}

impl Cluster {
    fn new(s: Setup) -> Cluster {
        let net = yolo16();
        let stack = FusedStack::new(&net, 16).unwrap();
        let grid = Grid::new(s.grid, s.grid, Partition::Darknet, &stack).unwrap();
        let mut cfg = Config::new(s.policy, &stack, grid);
        cfg.tile_timeout = Duration::from_micros(s.tile_timeout_us);
        cfg.steal_backoff = Duration::from_millis(5);
        cfg.frame_deadline = Duration::from_secs(20);
        cfg.gateway_fallback = s.fallback;
        let t0 = Instant::ZERO;
        let gw = Gateway::new(cfg, t0);
        let edges = (1..=s.edges)
            .map(|i| Edge::new(cfg, i as NodeId, t0))
            .collect();
        let mut c = Cluster {
            cfg,
            q: EventQueue::new(),
            gw,
            edges,
            dead: BTreeSet::new(),
            busy: BTreeSet::new(),
            left: HashMap::new(),
            r: Report::default(),
            strips_at_gw: BTreeSet::new(),
            covered_at: BTreeSet::new(),
            computed_at: BTreeSet::new(),
            last_link: HashMap::new(),
            stripe_out: HashMap::new(),
            s,
        };
        // Every pair of nodes is connected (the transport's job; here, from the start).
        for e in 1..=c.s.edges as NodeId {
            c.gw.on_connected(Instant::ZERO, e);
            c.edges[e as usize - 1].on_connected(Instant::ZERO, 0);
            for o in (1..=c.s.edges as NodeId).filter(|&o| o != e) {
                c.edges[e as usize - 1].on_connected(Instant::ZERO, o);
            }
        }
        for (node, frames, _) in c.s.sources.clone() {
            c.left.insert(node, frames);
            c.push(10_000, Ev::Submit { node });
        }
        if let Some((node, at)) = c.s.kill {
            c.push(at, Ev::Kill { node });
        }
        c
    }

    fn push(&mut self, at: u64, ev: Ev) {
        self.q.at(at, ev);
    }

    fn tile_us(&self, node: NodeId) -> u64 {
        self.s
            .slow
            .iter()
            .find(|s| s.0 == node)
            .map_or(self.s.tile_us, |s| s.1)
    }

    fn send(&mut self, from: NodeId, to: NodeId, msg: Msg) {
        if self.dead.contains(&to) || self.dead.contains(&from) {
            return;
        }
        // FIFO per link.
        let at = (self.q.now + self.s.delay_us).max(*self.last_link.get(&(from, to)).unwrap_or(&0));
        self.last_link.insert((from, to), at);
        self.push(at, Ev::Deliver { from, to, msg });
    }

    fn neighbours(&self, tile: u16) -> Vec<u16> {
        Side::ALL
            .iter()
            .filter_map(|&s| self.cfg.grid.neighbour(tile as usize, s))
            .map(|n| n as u16)
            .collect()
    }

    fn ready_for(&self, node: NodeId, frame: FrameKey, tile: u16) -> bool {
        self.neighbours(tile).iter().all(|&n| {
            self.covered_at.contains(&(node, frame, n))
                || self.computed_at.contains(&(node, frame, n))
        })
    }

    fn act(&mut self, node: NodeId, a: Action) {
        self.r
            .trace
            .push(format!("{} n{} {:?}", self.q.now, node, a));
        let level1 = |t: u16| self.cfg.grid.level(t as usize) == Level::One;
        match a {
            Action::Send { to, msg } => self.send(node, to, Msg::Ctrl(msg)),
            Action::SubmitFrame { frame } => self.send(node, 0, Msg::Submit(frame)),
            Action::SendTask {
                to,
                frame,
                tile,
                mode,
            } => {
                if self.s.policy == Policy::WstS && level1(tile) {
                    // Readiness follows delivery: a Reuse tile's neighbours' strips are at the
                    // gateway and the victim knew it; a Plain one had a neighbour not covered.
                    let known = self
                        .neighbours(tile)
                        .iter()
                        .all(|&n| self.covered_at.contains(&(node, frame, n)) || node == 0);
                    if mode == Mode::Reuse {
                        assert!(
                            known,
                            "victim {node} lent Reuse tile {tile} of {frame:?} before coverage"
                        );
                        for n in self.neighbours(tile) {
                            assert!(
                                self.strips_at_gw.contains(&(frame, n)),
                                "Reuse tile {tile} lent while strips of {n} are not at the gateway"
                            );
                        }
                    } else {
                        assert!(
                            !known || node == 0,
                            "victim {node} lent Plain tile {tile} though covered"
                        );
                    }
                }
                self.send(node, to, Msg::Task(frame, tile, mode))
            }
            Action::SendResult { to, frame, tile } => self.send(node, to, Msg::Result(frame, tile)),
            Action::SendStrips {
                to,
                frame,
                tile,
                sides,
            } => {
                assert_ne!(sides, 0);
                self.send(node, to, Msg::Strips(frame, tile))
            }
            Action::SendLayerTask {
                to,
                frame,
                layer,
                stripe,
                output,
            } => self.send(node, to, Msg::LayerTask(frame, layer, stripe, output)),
            Action::SendHalo {
                to,
                frame,
                layer,
                stripe,
                output,
                ..
            } => {
                assert_eq!(self.s.policy, Policy::Modnn);
                self.send(node, to, Msg::Strips(frame, stripe));
                self.send(node, to, Msg::LayerTask(frame, layer, stripe, output));
            }
            Action::RestartLayers { .. } => assert_eq!(self.s.policy, Policy::Modnn),
            Action::SendLayerResult {
                to,
                frame,
                layer,
                stripe,
            } => {
                let mut out = self.stripe_out[&(node, frame, layer, stripe)];
                if self.s.policy == Policy::Modnn && layer < 15 {
                    // The stripe stays here: its boundary rows, then a result with no values.
                    self.send(node, to, Msg::Strips(frame, stripe));
                    out.x.end = out.x.start;
                }
                self.send(node, to, Msg::LayerResult(frame, layer, stripe, out))
            }
            Action::Compute(w) => {
                assert!(
                    self.busy.insert(node),
                    "node {node} asked to compute twice at once"
                );
                let us = match w {
                    Work::Tile { frame, tile, mode } => {
                        if self.s.policy == Policy::WstS && level1(tile) {
                            let ready = self.ready_for(node, frame, tile);
                            if mode == Mode::Reuse {
                                self.r.level1.0 += 1;
                                for n in self.neighbours(tile) {
                                    assert!(
                                        self.strips_at_gw.contains(&(frame, n))
                                            || self.computed_at.contains(&(node, frame, n)),
                                        "node {node} runs Reuse tile {tile} without strips of {n}"
                                    );
                                }
                            } else {
                                self.r.level1.1 += 1;
                                // Plain at the owner only when some neighbour was not ready
                                // (a thief runs Plain what it was lent Plain).
                                if frame.origin == node {
                                    assert!(!ready, "source {node} ran ready tile {tile} Plain");
                                }
                            }
                        }
                        self.tile_us(node)
                    }
                    Work::Layer {
                        frame,
                        layer,
                        stripe,
                        output,
                    } => {
                        self.stripe_out.insert((node, frame, layer, stripe), output);
                        let tiles = (self.s.grid * self.s.grid) as u64;
                        let h = 608u64;
                        let rows = output.height() as u64 * 608
                            / self.cfg.layers.output(0).map_or(608, |o| o.1) as u64;
                        (self.tile_us(node) * tiles * rows.min(h) / h / 16).max(1)
                    }
                };
                let at = self.q.now + us;
                self.push(at, Ev::Computed { node, work: w });
            }
            Action::LayerComplete { frame, layer } => {
                assert_eq!(node, 0);
                *self.r.stripes.entry((frame, layer)).or_default() += 1;
            }
            Action::FrameComplete { frame } => {
                if node == 0 {
                    assert!(
                        self.r.complete.insert(frame, self.q.now).is_none(),
                        "{frame:?} twice"
                    );
                } else {
                    assert_eq!(frame.origin, node);
                    self.r.source_done.insert(frame);
                }
            }
            Action::FrameFailed { frame } => {
                if node == 0 {
                    self.r.failed.push(frame);
                }
            }
            other => panic!("unknown action {other:?}"),
        }
    }

    fn on_disconnect(&mut self, at: NodeId, peer: NodeId) {
        if self.dead.contains(&at) {
            return;
        }
        let now = Instant::from_micros(self.q.now);
        if at == 0 {
            self.gw.on_disconnected(now, peer);
        } else {
            self.edges[at as usize - 1].on_disconnected(now, peer);
        }
    }

    fn drain(&mut self, node: NodeId) {
        if self.dead.contains(&node) {
            return;
        }
        let now = Instant::from_micros(self.q.now);
        loop {
            let a = if node == 0 {
                self.gw.poll(now)
            } else {
                self.edges[node as usize - 1].poll(now)
            };
            match a {
                Some(a) => self.act(node, a),
                None => break,
            }
        }
    }

    fn node_poll_at(&self, node: NodeId) -> Option<u64> {
        if self.dead.contains(&node) {
            return None;
        }
        let at = if node == 0 {
            self.gw.poll_at()
        } else {
            self.edges[node as usize - 1].poll_at()
        };
        at.map(|t| t.total_micros())
    }

    fn nodes(&self) -> Vec<NodeId> {
        (0..=self.s.edges as NodeId).collect()
    }

    fn finished(&self) -> bool {
        let total: usize = self.s.sources.iter().map(|s| s.1).sum();
        self.left.values().all(|&l| l == 0)
            && self.r.complete.len() + self.r.failed.len() >= total
            && self.busy.is_empty()
    }

    fn deliver(&mut self, from: NodeId, to: NodeId, msg: Msg) {
        let now = Instant::from_micros(self.q.now);
        let m = msg.message();
        let res = if to == 0 {
            self.gw.on_message(now, from, &m)
        } else {
            self.edges[to as usize - 1].on_message(now, from, &m)
        };
        match res {
            Ok(v) => {
                if v == Verdict::Discard {
                    self.r.discarded += 1;
                }
                if v == Verdict::Accept {
                    match msg {
                        Msg::Result(frame, tile) if to == 0 => {
                            *self.r.accepted.entry((frame, tile)).or_default() += 1;
                        }
                        Msg::Strips(frame, tile) if to == 0 => {
                            self.strips_at_gw.insert((frame, tile));
                        }
                        Msg::Ctrl(Message::Coverage { frame, tile }) => {
                            self.covered_at.insert((to, frame, tile));
                        }
                        _ => {}
                    }
                }
            }
            Err(e) => self.r.errors.push((self.q.now, from, to, e)),
        }
    }

    fn run(mut self) -> Report {
        let limit = 30_000_000; // 30 s virtual
        for n in self.nodes() {
            self.drain(n);
        }
        let stop = run(&mut self, limit, usize::MAX);
        assert_eq!(stop, Stop::Done, "{:?}", self.r);
        self.r.end = self.q.now;
        if std::env::var("RT_TRACE").is_ok() {
            for l in &self.r.trace {
                eprintln!("{l}");
            }
        }
        // Let the last FrameDone notices arrive.
        let grace = self.q.now + 5 * self.s.delay_us;
        while let Some(ev) = self.q.pop_until(grace) {
            self.event(ev);
        }
        self.r
    }

    fn event(&mut self, ev: Ev) {
        let now = Instant::from_micros(self.q.now);
        match ev {
            Ev::Deliver { from, to, msg } => {
                if self.dead.contains(&to) || self.dead.contains(&from) {
                    return;
                }
                self.deliver(from, to, msg);
                self.drain(to);
            }
            Ev::Computed { node, work } => {
                if self.dead.contains(&node) {
                    return;
                }
                self.busy.remove(&node);
                *self.r.per_node.entry(node).or_default() += 1;
                let res = if node == 0 {
                    self.gw.on_computed(now, work)
                } else {
                    self.edges[node as usize - 1].on_computed(now, work)
                };
                match res {
                    Ok(v) => {
                        if let Work::Tile { frame, tile, mode } = work {
                            if node == 0 && v == Verdict::Accept {
                                *self.r.accepted.entry((frame, tile)).or_default() += 1;
                                if mode == Mode::Reuse {
                                    self.strips_at_gw.insert((frame, tile));
                                }
                            }
                            self.computed_at.insert((node, frame, tile));
                        }
                    }
                    Err(e) => self.r.errors.push((self.q.now, node, node, e)),
                }
                self.drain(node);
            }
            Ev::Submit { node } => {
                let left = self.left.get(&node).copied().unwrap_or(0);
                if left == 0 || self.dead.contains(&node) {
                    return;
                }
                let res = if node == 0 {
                    self.gw.submit_frame(now)
                } else {
                    self.edges[node as usize - 1].submit_frame(now)
                };
                let interval = self.s.sources.iter().find(|s| s.0 == node).unwrap().2;
                match res {
                    Ok(key) => {
                        self.r.submitted.insert(key, self.q.now);
                        self.left.insert(node, left - 1);
                        if left > 1 {
                            self.push(self.q.now + interval, Ev::Submit { node });
                        }
                    }
                    Err(_) => self.push(self.q.now + interval.max(1_000), Ev::Submit { node }),
                }
                self.drain(node);
            }
            Ev::Kill { node } => {
                self.dead.insert(node);
                self.busy.remove(&node);
                self.left.insert(node, 0);
                for n in self.nodes() {
                    if n != node {
                        self.on_disconnect(n, node);
                        self.drain(n);
                    }
                }
            }
        }
    }
}

/// Every frame completes once; each tile (FTP) accepted exactly once; every BODP layer once.
fn check_complete(s: &Setup, r: &Report) {
    assert!(
        r.errors.is_empty(),
        "{}: errors: {:?}",
        r.policy_dbg(s),
        r.errors
    );
    assert!(
        r.failed.is_empty(),
        "{}: failed frames: {:?}",
        r.policy_dbg(s),
        r.failed
    );
    let total: usize = s.sources.iter().map(|s| s.1).sum();
    assert_eq!(r.complete.len(), total, "complete {:?}", r.complete);
    let tiles = (s.grid * s.grid) as u16;
    for &frame in r.complete.keys() {
        if matches!(s.policy, Policy::Bodp | Policy::Modnn) {
            for layer in 0..16u8 {
                let n = r.stripes.get(&(frame, layer)).copied().unwrap_or(0);
                // A MoDNN frame that lost a worker ran its early layers again from layer 0.
                let again = s.policy == Policy::Modnn && layer < 15;
                assert!(
                    n == 1 || (again && n > 1),
                    "{frame:?} layer {layer} completed {n} times"
                );
            }
        } else {
            for tile in 0..tiles {
                assert_eq!(
                    r.accepted.get(&(frame, tile)),
                    Some(&1),
                    "{frame:?} tile {tile}: {:?}",
                    r.policy_dbg(s)
                );
            }
        }
        if frame.origin != 0 && s.kill.is_none_or(|k| k.0 != frame.origin) {
            assert!(
                r.source_done.contains(&frame),
                "source never told {frame:?} is done"
            );
        }
    }
}

impl Report {
    fn policy_dbg(&self, s: &Setup) -> String {
        format!("{:?} {}x{} {} edges", s.policy, s.grid, s.grid, s.edges)
    }

    fn latency(&self, frame: FrameKey) -> u64 {
        self.complete[&frame] - self.submitted[&frame]
    }
}

const POLICIES: [Policy; 5] = Policy::ALL;

#[test]
fn every_policy_grid_and_cluster_size_completes_every_frame() {
    for policy in POLICIES {
        for grid in [3, 5] {
            for edges in [1, 2, 4] {
                let s = Setup::new(policy, grid, edges);
                let r = Cluster::new(s.clone()).run();
                check_complete(&s, &r);
                assert_eq!(r.discarded, 0, "{}", r.policy_dbg(&s));
                if edges > 1 && !matches!(policy, Policy::Bodp | Policy::Modnn) {
                    // Work spreads: more than one edge computed tiles.
                    let workers = r.per_node.iter().filter(|(&n, &c)| n != 0 && c > 0).count();
                    assert!(workers > 1, "{}: {:?}", r.policy_dbg(&s), r.per_node);
                }
            }
        }
    }
}

#[test]
fn more_edges_finish_sooner() {
    for policy in POLICIES {
        let one = Cluster::new(Setup::new(policy, 5, 1)).run();
        let four = Cluster::new(Setup::new(policy, 5, 4)).run();
        assert!(
            four.end < one.end,
            "{policy:?}: 4 edges {} vs 1 edge {}",
            four.end,
            one.end
        );
    }
}

#[test]
fn wst_s_reuses_when_covered_and_falls_back_otherwise() {
    // One source alone: every level-1 tile finds its neighbours computed locally → Reuse.
    let s = Setup::new(Policy::WstS, 5, 1);
    let r = Cluster::new(s.clone()).run();
    check_complete(&s, &r);
    assert_eq!(r.level1, (2 * 12, 0), "5x5 has 12 level-1 tiles per frame");

    // A slow thief holds level-0 tiles: the source runs some level-1 tiles Plain (the harness
    // asserts each Plain one had a neighbour not covered, each Reuse one had every strip at the
    // gateway or local).
    let mut s = Setup::new(Policy::WstS, 3, 2);
    s.slow = vec![(2, 120_000)];
    s.tile_timeout_us = 300_000;
    s.sources = vec![(1, 1, 0)];
    let r = Cluster::new(s.clone()).run();
    check_complete(&s, &r);
    assert!(
        r.level1.0 > 0 && r.level1.1 > 0,
        "reuse/plain {:?}",
        r.level1
    );

    // Several thieves: thieves run Reuse tiles fetched from the gateway cache.
    let s = Setup::new(Policy::WstS, 5, 4);
    let r = Cluster::new(s.clone()).run();
    check_complete(&s, &r);
    assert!(r.level1.0 > 0, "reuse/plain {:?}", r.level1);
}

#[test]
fn killed_edge_mid_frame_still_completes() {
    for policy in POLICIES {
        for grid in [3, 5] {
            let mut s = Setup::new(policy, grid, 3);
            // Edge 3 (a worker) dies while the first frame is running.
            s.kill = Some((3, 30_000));
            let r = Cluster::new(s.clone()).run();
            check_complete(&s, &r);
        }
    }
}

#[test]
fn last_edge_killed_gateway_computes() {
    for policy in [Policy::Wsh, Policy::Bodp, Policy::Modnn] {
        let mut s = Setup::new(policy, 3, 2);
        s.kill = Some((2, 25_000));
        s.sources = vec![(1, 1, 0)];
        // Edge 1 submits then dies too: the gateway holds the input and finishes alone.
        let mut s2 = s.clone();
        s2.edges = 1;
        s2.kill = Some((1, 25_000));
        let r = Cluster::new(s2.clone()).run();
        check_complete(&s2, &r);
        assert!(
            r.per_node.get(&0).copied().unwrap_or(0) > 0,
            "{policy:?}: gateway computed nothing"
        );
    }
}

#[test]
fn gateway_as_source_with_and_without_edges() {
    for policy in POLICIES {
        for edges in [0, 2] {
            let mut s = Setup::new(policy, 3, edges);
            s.sources = vec![(0, 2, 5_000)];
            let r = Cluster::new(s.clone()).run();
            check_complete(&s, &r);
            if edges == 0 {
                assert!(r.per_node[&0] > 0);
            }
        }
    }
}

#[test]
fn straggler_is_worked_around_and_late_duplicates_discarded() {
    for policy in POLICIES {
        for grid in [3, 5] {
            let mut s = Setup::new(policy, grid, 3);
            // Edge 3 takes 20x longer than everyone else, past the tile timeout.
            s.slow = vec![(3, 200_000)];
            s.tile_timeout_us = 40_000;
            let r = Cluster::new(s.clone()).run();
            check_complete(&s, &r);
            let fast = Cluster::new(Setup {
                slow: vec![],
                ..s.clone()
            })
            .run();
            // The straggler costs at most a few timeouts, not its 20x compute time per tile.
            assert!(
                r.end < fast.end + 8 * 200_000,
                "{}: straggler {} vs no straggler {}",
                r.policy_dbg(&s),
                r.end,
                fast.end
            );
        }
    }
    // The late results of a straggler that was re-dispatched are discarded.
    let mut s = Setup::new(Policy::Wsh, 3, 2);
    s.slow = vec![(2, 150_000)];
    s.tile_timeout_us = 30_000;
    s.sources = vec![(1, 3, 10_000)];
    let r = Cluster::new(s.clone()).run();
    check_complete(&s, &r);
    assert!(r.discarded > 0, "no late duplicate seen");
}

#[test]
fn two_sources_both_progress() {
    for policy in POLICIES {
        let mut s = Setup::new(policy, 3, 4);
        s.sources = vec![(1, 6, 20_000), (2, 6, 20_000)];
        let r = Cluster::new(s.clone()).run();
        check_complete(&s, &r);
        let lat = |o: NodeId| -> Vec<u64> {
            r.complete
                .keys()
                .filter(|k| k.origin == o)
                .map(|&k| r.latency(k))
                .collect()
        };
        let (a, b) = (lat(1), lat(2));
        assert_eq!((a.len(), b.len()), (6, 6));
        let max = |v: &[u64]| *v.iter().max().unwrap();
        let mean = |v: &[u64]| v.iter().sum::<u64>() / v.len() as u64;
        // No starvation: neither source's worst latency is far off the other's average.
        assert!(
            max(&a) < 3 * mean(&b) + 50_000 && max(&b) < 3 * mean(&a) + 50_000,
            "{policy:?}: latencies {a:?} vs {b:?}"
        );
        // Frames overlap in the cluster.
        let f1 = FrameKey::new(1, 0);
        let f2 = FrameKey::new(2, 0);
        assert!(r.submitted[&f2] < r.complete[&f1] && r.submitted[&f1] < r.complete[&f2]);
    }
}

#[test]
fn same_inputs_same_trace() {
    for policy in POLICIES {
        let mut s = Setup::new(policy, 5, 4);
        s.sources = vec![(1, 2, 7_000), (2, 2, 9_000)];
        s.slow = vec![(4, 90_000)];
        s.kill = Some((3, 40_000));
        let a = Cluster::new(s.clone()).run();
        let b = Cluster::new(s.clone()).run();
        assert!(a.trace.len() > 100);
        assert_eq!(a.trace, b.trace, "{policy:?}");
    }
}

impl World for Cluster {
    type Event = Ev;

    fn queue(&mut self) -> &mut EventQueue<Ev> {
        &mut self.q
    }

    fn handle(&mut self, ev: Ev) {
        self.event(ev);
    }

    /// Drains every node whose `poll_at` has come (a delivery or computation drains its node
    /// at once, in [`Cluster::event`]).
    fn poll(&mut self) {
        for n in self.nodes() {
            if self.node_poll_at(n).is_some_and(|t| t <= self.q.now) {
                self.drain(n);
            }
        }
    }

    fn poll_at(&self) -> Option<u64> {
        self.nodes()
            .iter()
            .filter_map(|&n| self.node_poll_at(n))
            .min()
    }

    fn done(&self) -> bool {
        self.finished()
    }
}
