//! The event loop both simulated worlds share ([`Core::run`]): one virtual clock, the packets
//! in flight on the [`Medium`]s, scripted crashes and stragglers, node stepping and the trace
//! hash. A world supplies its node kind ([`SimNode`]) and what it does with frames
//! ([`Workload`]: when it is done, how frames enter, what a finished frame becomes).
//!
//! Determinism: the clock jumps to the earliest of the next packet arrival, every node's next
//! wake-up (the node's and the interface's `poll_at`, the running job's end), the next fault
//! and the workload's next event; nodes due at the same instant step in index order; packets
//! due at the same instant arrive in sending order. The trace hash covers every packet (time,
//! endpoints, length, fate), every job (node, work, end), every fault, every submitted and
//! finished frame.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::Ipv4Addr;
use std::rc::Rc;

use tessera_backends::nal_smoltcp::SmolNet;
use tessera_core::time::Instant;

use crate::device::SimDevice;
use crate::fault::Fault;
use crate::job_clock::JobClock;
use crate::medium::{Fate, Medium};

/// FNV-1a, 64 bit.
#[derive(Clone, Copy, Debug)]
pub struct TraceHash(pub u64);

impl TraceHash {
    /// The FNV-1a offset basis.
    pub fn new() -> Self {
        TraceHash(0xcbf2_9ce4_8422_2325)
    }

    /// Hashes `words`, little-endian bytes in order.
    pub fn add(&mut self, words: &[u64]) {
        for w in words {
            for b in w.to_le_bytes() {
                self.0 ^= b as u64;
                self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
            }
        }
    }
}

impl Default for TraceHash {
    fn default() -> Self {
        TraceHash::new()
    }
}

/// Most extra polls of a node at one instant for frames waiting in its sockets.
const MORE_ROUNDS: usize = 1024;

/// What the loop needs of a node kind (`driver::Node`, `coded::CodedNode`).
pub trait SimNode {
    /// What the node reports when a frame leaves it.
    type Finished;
    /// The record its executor keeps of each job (in its [`JobClock`]).
    type Job: TracedJob;
    /// Runs the node at `now`.
    fn poll(&mut self, now: Instant);
    /// When the node next wants to run without new packets, or `None`.
    fn poll_at(&self) -> Option<Instant>;
    /// Frames that left the node since the last call.
    fn take_finished(&mut self) -> Vec<Self::Finished>;
    /// Peers whose links are up.
    fn peers_up(&self) -> usize;
    /// The last poll read a frame, and more may wait behind it in a socket (the link reads
    /// one frame per connection and poll; readiness will not report the rest again). Nodes
    /// without such a link have nothing waiting.
    fn more(&self) -> bool {
        false
    }
}

/// Implements [`SimNode`] for `$node` (with `$finished` frames and `$job` records) by its
/// inherent methods of the same names: both node kinds of `backends` have them, and
/// `peers_up` counts its link's.
macro_rules! impl_sim_node {
    ($node:ty, $finished:ty, $job:ty) => {
        impl $crate::sim_core::SimNode for $node {
            type Finished = $finished;
            type Job = $job;
            fn poll(&mut self, now: tessera_core::time::Instant) {
                // Inherent methods take precedence: these delegate, not recurse.
                Self::poll(self, now)
            }
            fn poll_at(&self) -> Option<tessera_core::time::Instant> {
                Self::poll_at(self)
            }
            fn take_finished(&mut self) -> Vec<$finished> {
                Self::take_finished(self)
            }
            fn peers_up(&self) -> usize {
                self.link().peers_up().count()
            }
            fn more(&self) -> bool {
                self.link().more()
            }
        }
    };
}
pub(crate) use impl_sim_node;

/// A job record as the trace sees it.
pub trait TracedJob: Copy {
    /// `(kind, a, b)`: the work, in three words.
    fn work_words(&self) -> [u64; 3];
    /// End of the job, µs.
    fn end(&self) -> u64;
}

/// What a world does with frames around the shared loop, on nodes of kind `N`. Every hook
/// gets the [`Core`].
pub trait Workload<N: SimNode> {
    /// A node's own wake-up in the past (a link dialling a peer whose connection is still
    /// being set up) is retried this many µs later, not every µs.
    const PAST_WAKE_US: u64;

    /// Every node is connected: frames may start.
    fn connected(&self, core: &Core<'_, '_, N>) -> bool;

    /// Called once when [`Workload::connected`] first holds (`core.ready_at` is set).
    fn on_ready(&mut self, core: &mut Core<'_, '_, N>);

    /// After the cluster is ready: the run is over (every frame out, or no one left to send).
    fn done(&self, core: &Core<'_, '_, N>) -> bool;

    /// The workload's own next event, µs (`u64::MAX`: none).
    fn next_event(&self) -> u64 {
        u64::MAX
    }

    /// The clock reached `t` (faults applied, packets not yet delivered).
    fn at(&mut self, _core: &mut Core<'_, '_, N>, _t: u64) {}

    /// Node `i` was polled once the cluster is ready: frames may be submitted now.
    fn polled(&mut self, core: &mut Core<'_, '_, N>, i: usize);

    /// Node `i` reported `f`.
    fn finished(&mut self, core: &mut Core<'_, '_, N>, i: usize, f: N::Finished);
}

/// A packet on its way: ordered by arrival, then by sending order.
struct InFlight {
    at: u64,
    seq: u64,
    to: usize,
    packet: Vec<u8>,
}

impl PartialEq for InFlight {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for InFlight {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// The state both worlds share. Nodes are indexed `medium × per + local id`: each medium
/// carries `per` nodes, and a fault's node id applies on every medium.
pub struct Core<'n, 'a, N: SimNode> {
    /// Each node's interface.
    pub nets: &'n [RefCell<SmolNet<'a, SimDevice>>],
    /// The nodes.
    pub nodes: Vec<N>,
    /// Each node's executor state.
    pub execs: Vec<Rc<RefCell<JobClock<N::Job>>>>,
    /// The media (one per cluster).
    pub media: Vec<Medium>,
    /// Nodes per medium.
    pub per: usize,
    /// When each node next steps, µs (`u64::MAX`: not until a packet arrives).
    pub wake: Vec<u64>,
    /// False once a node crashed.
    pub alive: Vec<bool>,
    /// The virtual clock, µs.
    pub now: u64,
    /// Every node is connected (frames start).
    pub ready: bool,
    /// When that happened, µs (fault times count from it).
    pub ready_at: u64,
    /// The trace hash.
    pub hash: TraceHash,
    /// Trace events.
    pub events: u64,
    /// Node steps taken.
    pub steps: u64,
    faults: &'n [Fault],
    faults_done: Vec<bool>,
    limit: u64,
    node_at: BTreeMap<Ipv4Addr, usize>,
    queue: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    sent: Vec<Vec<u8>>,
}

impl<'n, 'a, N: SimNode> Core<'n, 'a, N> {
    /// A world at time zero, every node due: node `i` has address `addresses[i]`, interface
    /// `nets[i]`, executor state `execs[i]`, and sits on medium `i / per` of `media`; the run
    /// stops at `limit` µs.
    pub fn new(
        addresses: &[Ipv4Addr],
        nets: &'n [RefCell<SmolNet<'a, SimDevice>>],
        nodes: Vec<N>,
        execs: Vec<Rc<RefCell<JobClock<N::Job>>>>,
        media: Vec<Medium>,
        faults: &'n [Fault],
        limit: u64,
    ) -> Self {
        let n = nodes.len();
        Core {
            nets,
            nodes,
            execs,
            per: n / media.len().max(1),
            media,
            wake: vec![0; n],
            alive: vec![true; n],
            now: 0,
            ready: false,
            ready_at: 0,
            hash: TraceHash::new(),
            events: 0,
            steps: 0,
            faults,
            faults_done: vec![false; faults.len()],
            limit,
            node_at: addresses.iter().enumerate().map(|(i, &a)| (a, i)).collect(),
            queue: BinaryHeap::new(),
            seq: 0,
            sent: Vec::new(),
        }
    }

    /// Adds an event to the trace.
    pub fn trace(&mut self, words: &[u64]) {
        self.events += 1;
        self.hash.add(words);
    }

    /// Every job every node started, node by node.
    pub fn jobs(&self) -> Vec<N::Job> {
        self.execs
            .iter()
            .flat_map(|x| x.borrow().jobs.clone())
            .collect()
    }

    /// Runs `w` until it is done or nothing is left to happen before the time limit.
    pub fn run<W: Workload<N>>(&mut self, w: &mut W) {
        while !(self.ready && w.done(self)) {
            let next_packet = self.queue.peek().map_or(u64::MAX, |p| p.0.at);
            let next_wake = self.wake.iter().copied().min().unwrap_or(u64::MAX);
            let t = next_packet
                .min(next_wake)
                .min(self.next_fault())
                .min(w.next_event());
            if t == u64::MAX || t > self.limit {
                self.now = self.now.max(self.limit.min(t));
                break;
            }
            self.now = t;
            self.apply_faults();
            w.at(self, t);
            while self.queue.peek().is_some_and(|p| p.0.at == t) {
                let Reverse(p) = self.queue.pop().expect("peeked");
                if self.alive[p.to] {
                    self.nets[p.to].borrow_mut().device_mut().deliver(p.packet);
                    self.wake[p.to] = t;
                }
            }
            // By index, re-reading `wake`: a step may wake a later node for this instant.
            for i in 0..self.nodes.len() {
                if self.wake[i] <= t {
                    if self.alive[i] {
                        self.step(w, i);
                    } else {
                        self.wake[i] = u64::MAX;
                    }
                }
            }
            if !self.ready && w.connected(self) {
                self.ready = true;
                self.ready_at = self.now;
                for m in &mut self.media {
                    m.origin = Some(self.now);
                }
                w.on_ready(self);
                self.trace(&[self.now, 1]);
            }
        }
    }

    /// When the next crash or straggler is due (they count from `ready_at`), µs.
    fn next_fault(&self) -> u64 {
        if !self.ready {
            return u64::MAX;
        }
        self.faults
            .iter()
            .zip(&self.faults_done)
            .filter(|(_, d)| !**d)
            .filter_map(|(f, _)| match *f {
                Fault::Crash { at, .. } | Fault::Straggler { at, .. } => {
                    Some(self.ready_at.saturating_add(at))
                }
                _ => None,
            })
            .min()
            .unwrap_or(u64::MAX)
    }

    /// Applies the crashes and stragglers due by now, on every medium. (Loss and link
    /// outages are the media's own.)
    fn apply_faults(&mut self) {
        if !self.ready {
            return;
        }
        for k in 0..self.faults.len() {
            if self.faults_done[k] {
                continue;
            }
            match self.faults[k] {
                Fault::Crash { node, at } if self.ready_at.saturating_add(at) <= self.now => {
                    for c in 0..self.media.len() {
                        let i = c * self.per + node as usize;
                        if i < self.alive.len() {
                            self.alive[i] = false;
                            self.nets[i].borrow_mut().device_mut().clear();
                            self.wake[i] = u64::MAX;
                        }
                    }
                    self.faults_done[k] = true;
                    self.trace(&[self.now, 100, node as u64]);
                }
                Fault::Straggler { node, at, factor }
                    if self.ready_at.saturating_add(at) <= self.now =>
                {
                    for c in 0..self.media.len() {
                        if let Some(x) = self.execs.get(c * self.per + node as usize) {
                            x.borrow_mut().slowdown = factor;
                        }
                    }
                    self.faults_done[k] = true;
                    self.trace(&[self.now, 101, node as u64]);
                }
                _ => {}
            }
        }
    }

    /// Runs node `i` at `now`: its interface, the node, the workload's submissions, the
    /// interface again (to send what the node wrote), then its packets go on the medium and
    /// its finished frames to the workload; last, when it wants to run next.
    fn step<W: Workload<N>>(&mut self, w: &mut W, i: usize) {
        let now = self.now;
        let t = Instant::from_micros(now);
        self.steps += 1;
        self.execs[i].borrow_mut().now = t;
        self.nets[i].borrow_mut().poll(t);
        let jobs_before = self.execs[i].borrow().jobs.len();
        self.nodes[i].poll(t);
        // Frames that arrived together are all read at this instant, as the node thread does
        // on Linux (a zero wait while the link has more); otherwise the second of two
        // messages in one segment waited for the node's next packet or heartbeat.
        let mut rounds = 0;
        while self.nodes[i].more() && rounds < MORE_ROUNDS {
            self.nodes[i].poll(t);
            rounds += 1;
        }
        if self.ready {
            w.polled(self, i);
        }
        self.nets[i].borrow_mut().poll(t);
        let jobs_after = self.execs[i].borrow().jobs.len();
        for k in jobs_before..jobs_after {
            let j = self.execs[i].borrow().jobs[k];
            let [kind, a, b] = j.work_words();
            self.trace(&[now, 2, i as u64, kind, a, b, j.end()]);
        }
        self.transmit(i);
        for f in self.nodes[i].take_finished() {
            w.finished(self, i, f);
        }
        let mut next = u64::MAX;
        if let Some(p) = self.nodes[i].poll_at() {
            let p = p.total_micros();
            next = next.min(if p <= now { now + W::PAST_WAKE_US } else { p });
        }
        if let Some(p) = self.nets[i].borrow_mut().poll_at() {
            next = next.min(p.total_micros().max(now + 1));
        }
        if let Some(p) = self.execs[i].borrow().busy_until {
            next = next.min(p.total_micros().max(now + 1));
        }
        self.wake[i] = next;
    }

    /// Puts node `i`'s sent packets on its medium. A packet for an unknown address or
    /// another medium is dropped; a lost one, or one for a crashed node, is traced and its
    /// buffer recycled.
    fn transmit(&mut self, i: usize) {
        let c = i / self.per;
        let mut sent = std::mem::take(&mut self.sent);
        self.nets[i].borrow_mut().device_mut().take_sent(&mut sent);
        for p in sent.drain(..) {
            // IPv4 destination: bytes 16..20.
            let to = match p.get(16..20) {
                Some(&[a, b, c, d]) => match self.node_at.get(&Ipv4Addr::new(a, b, c, d)) {
                    Some(&to) => to,
                    None => continue,
                },
                _ => continue,
            };
            if to / self.per != c {
                continue;
            }
            let (a, b) = (i % self.per, to % self.per);
            let fate = self.media[c].send(self.now, a, b, p.len());
            let at = match fate {
                Fate::Arrives(at) if self.alive[to] => at,
                _ => u64::MAX,
            };
            self.trace(&[self.now, 4, i as u64, to as u64, p.len() as u64, at]);
            if at != u64::MAX {
                self.seq += 1;
                self.queue.push(Reverse(InFlight {
                    at,
                    seq: self.seq,
                    to,
                    packet: p,
                }));
            } else {
                self.nets[i].borrow_mut().device_mut().recycle(p);
            }
        }
        self.sent = sent;
    }
}
