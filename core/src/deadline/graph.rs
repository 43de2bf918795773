//! A periodic dataflow graph with per-channel delay models, and its QLA-RTS quality.
//!
//! Actors are added in topological order (every channel goes from a lower to a higher actor
//! index; back edges are not modelled). A schedule gives each actor a start offset `t_a` (ms);
//! the channel budget (timeout) is `δ_e = t_v − (t_u + c_u)`.
//!
//! **Quality.** Under the linearity assumption a source contributes power `w_in²`; along a
//! channel `P_v += w_e²·P_u` (all delivered) and `Q_v += w_e²·π_e(δ_e)·Q_u` (expected
//! delivered); at a sink `SNR = P/(P − Q)`. QLA-RTS (docs/design.md §7.2) writes the
//! full-delivery term as an amplitude `S_v += |w_e| S_u` squared at the sink; that equals `P`
//! on a chain, but on a fan-in of `n` paths it makes the SNR finite even when everything
//! arrives, so we propagate power. Both forms rank schedules identically on a single-sink graph.

use core::fmt;

use super::link::LinkDelay;

/// Most actors in a graph.
pub const MAX_ACTORS: usize = 40;
/// Most channels in a graph.
pub const MAX_CHANNELS: usize = 80;
/// Largest SNR reported (a lossless, fully delivered graph would be infinite).
pub const SNR_CAP: f64 = 1e12;

/// An actor: worst-case execution time and its source/sink weights.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Actor {
    /// WCET `c_a` (ms).
    pub wcet: f64,
    /// Weight of the external input it reads (0 if it is not a source).
    pub input_weight: f64,
    /// Weight of its output in the objective (0 if it is not a sink).
    pub sink_weight: f64,
}

/// A channel `from → to` with linear gain and delay model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Channel {
    /// Producer actor.
    pub from: usize,
    /// Consumer actor (`> from`).
    pub to: usize,
    /// Linear gain `w_e`.
    pub weight: f64,
    /// Delay distribution of the link.
    pub link: LinkDelay,
}

/// Why a graph or schedule operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GraphError {
    /// The graph's fixed capacity is exhausted.
    Full {
        /// The capacity.
        capacity: usize,
    },
    /// A channel does not go forward between existing actors.
    BadChannel {
        /// Producer.
        from: usize,
        /// Consumer.
        to: usize,
    },
    /// A schedule or output slice has the wrong length.
    Length {
        /// Elements needed.
        need: usize,
        /// Elements given.
        have: usize,
    },
    /// The deadline is shorter than the graph's critical path of WCETs (microseconds).
    Infeasible {
        /// The deadline.
        deadline_us: u64,
        /// Sum of WCETs on the longest path.
        critical_us: u64,
    },
    /// A parameter is out of its domain (non-finite, negative, a fan-out of 0 workers...).
    Parameter,
}

impl fmt::Display for GraphError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            GraphError::Full { capacity } => write!(f, "graph full ({capacity})"),
            GraphError::BadChannel { from, to } => {
                write!(
                    f,
                    "channel {from} -> {to} is not forward between existing actors"
                )
            }
            GraphError::Length { need, have } => write!(f, "{have} entries given, {need} needed"),
            GraphError::Infeasible {
                deadline_us,
                critical_us,
            } => write!(
                f,
                "deadline {deadline_us} us is shorter than the critical path {critical_us} us"
            ),
            GraphError::Parameter => f.write_str("parameter out of range"),
        }
    }
}

impl core::error::Error for GraphError {}

/// A dataflow graph in fixed capacity.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    actors: heapless::Vec<Actor, MAX_ACTORS>,
    channels: heapless::Vec<Channel, MAX_CHANNELS>,
}

impl Graph {
    /// An empty graph.
    pub const fn new() -> Self {
        Graph {
            actors: heapless::Vec::new(),
            channels: heapless::Vec::new(),
        }
    }

    /// Adds an actor, returning its index.
    pub fn add_actor(&mut self, actor: Actor) -> Result<usize, GraphError> {
        if !(actor.wcet >= 0.0 && actor.wcet.is_finite()) {
            return Err(GraphError::Parameter);
        }
        self.actors.push(actor).map_err(|_| GraphError::Full {
            capacity: MAX_ACTORS,
        })?;
        Ok(self.actors.len() - 1)
    }

    /// Adds a channel, returning its index.
    pub fn add_channel(&mut self, channel: Channel) -> Result<usize, GraphError> {
        let Channel { from, to, .. } = channel;
        if from >= to || to >= self.actors.len() {
            return Err(GraphError::BadChannel { from, to });
        }
        self.channels.push(channel).map_err(|_| GraphError::Full {
            capacity: MAX_CHANNELS,
        })?;
        Ok(self.channels.len() - 1)
    }

    /// `sensor → n workers → output`: actor 0 is the sensor (source), `1..=n` the workers,
    /// `n + 1` the output actor (sink). Channels `0..n` are sensor → worker `i + 1` over
    /// `links_in[i]`, channels `n..2n` worker `i + 1` → output over `links_out[i]`.
    pub fn fan_out(
        wcet_sensor: f64,
        wcet_worker: f64,
        wcet_output: f64,
        links_in: &[LinkDelay],
        links_out: &[LinkDelay],
    ) -> Result<Graph, GraphError> {
        let n = links_in.len();
        if n == 0 {
            return Err(GraphError::Parameter);
        }
        if links_out.len() != n {
            return Err(GraphError::Length {
                need: n,
                have: links_out.len(),
            });
        }
        let mut g = Graph::new();
        g.add_actor(Actor {
            wcet: wcet_sensor,
            input_weight: 1.0,
            sink_weight: 0.0,
        })?;
        for _ in 0..n {
            g.add_actor(Actor {
                wcet: wcet_worker,
                input_weight: 0.0,
                sink_weight: 0.0,
            })?;
        }
        let out = g.add_actor(Actor {
            wcet: wcet_output,
            input_weight: 0.0,
            sink_weight: 1.0,
        })?;
        for (i, &link) in links_in.iter().enumerate() {
            g.add_channel(Channel {
                from: 0,
                to: i + 1,
                weight: 1.0,
                link,
            })?;
        }
        for (i, &link) in links_out.iter().enumerate() {
            g.add_channel(Channel {
                from: i + 1,
                to: out,
                weight: 1.0,
                link,
            })?;
        }
        Ok(g)
    }

    /// The actors.
    pub fn actors(&self) -> &[Actor] {
        &self.actors
    }
    /// The channels.
    pub fn channels(&self) -> &[Channel] {
        &self.channels
    }

    /// Whether actor `a` has no incoming channel.
    pub fn is_source(&self, a: usize) -> bool {
        !self.channels.iter().any(|c| c.to == a)
    }

    fn check_schedule(&self, t: &[f64]) -> Result<(), GraphError> {
        if t.len() != self.actors.len() {
            return Err(GraphError::Length {
                need: self.actors.len(),
                have: t.len(),
            });
        }
        Ok(())
    }

    /// Budget `δ_e = t_v − (t_u + c_u)` of channel `e` under schedule `t`.
    pub fn budget(&self, t: &[f64], e: usize) -> Result<f64, GraphError> {
        self.check_schedule(t)?;
        let c = self.channels.get(e).ok_or(GraphError::Length {
            need: e + 1,
            have: self.channels.len(),
        })?;
        Ok(t[c.to] - t[c.from] - self.actors[c.from].wcet)
    }

    /// End-to-end latency: latest sink finish minus earliest source start.
    pub fn latency(&self, t: &[f64]) -> Result<f64, GraphError> {
        self.check_schedule(t)?;
        let (mut start, mut end) = (f64::INFINITY, f64::NEG_INFINITY);
        for (a, actor) in self.actors.iter().enumerate() {
            if self.is_source(a) {
                start = start.min(t[a]);
            }
            if actor.sink_weight > 0.0 {
                end = end.max(t[a] + actor.wcet);
            }
        }
        Ok(end - start)
    }

    /// Whether `t` respects every precedence (`δ_e ≥ 0`), starts no earlier than 0 and
    /// finishes every sink within `deadline`.
    pub fn feasible(&self, t: &[f64], deadline: f64) -> bool {
        if t.len() != self.actors.len() || t.iter().any(|v| !v.is_finite() || *v < 0.0) {
            return false;
        }
        let slack = 1e-9 * deadline.abs().max(1.0);
        self.channels
            .iter()
            .all(|c| t[c.to] - t[c.from] - self.actors[c.from].wcet >= -slack)
            && self
                .actors
                .iter()
                .zip(t)
                .all(|(a, &ta)| a.sink_weight <= 0.0 || ta + a.wcet <= deadline + slack)
    }

    /// Sink-weighted mean SNR (linear) of schedule `t`, capped at [`SNR_CAP`].
    pub fn snr(&self, t: &[f64]) -> Result<f64, GraphError> {
        self.check_schedule(t)?;
        let mut p = [0.0f64; MAX_ACTORS];
        let mut q = [0.0f64; MAX_ACTORS];
        for (a, actor) in self.actors.iter().enumerate() {
            p[a] = actor.input_weight * actor.input_weight;
            q[a] = p[a];
        }
        // Channels may be listed in any order; actors are topologically ordered, so visiting
        // consumers in index order finishes every producer first.
        for v in 0..self.actors.len() {
            for c in self.channels.iter().filter(|c| c.to == v) {
                let delta = t[v] - t[c.from] - self.actors[c.from].wcet;
                let w2 = c.weight * c.weight;
                p[v] += w2 * p[c.from];
                q[v] += w2 * c.link.delivery(delta) * q[c.from];
            }
        }
        let (mut num, mut den) = (0.0, 0.0);
        for (a, actor) in self.actors.iter().enumerate() {
            if actor.sink_weight > 0.0 {
                let lost = p[a] - q[a];
                let snr = if lost <= p[a] / SNR_CAP {
                    SNR_CAP
                } else {
                    p[a] / lost
                };
                num += actor.sink_weight * snr;
                den += actor.sink_weight;
            }
        }
        if den > 0.0 {
            Ok(num / den)
        } else {
            Err(GraphError::Parameter)
        }
    }

    /// End-to-end latency when every channel budget is its delay quantile `q` and actors start
    /// as soon as possible (`L_lo` at `q = 0.001`, `L_hi` at `q = 0.999`).
    pub fn quantile_latency(&self, q: f64) -> f64 {
        let mut t = [0.0f64; MAX_ACTORS];
        let mut end = 0.0f64;
        for v in 0..self.actors.len() {
            for c in self.channels.iter().filter(|c| c.to == v) {
                t[v] = t[v].max(t[c.from] + self.actors[c.from].wcet + c.link.quantile(q));
            }
            if self.actors[v].sink_weight > 0.0 {
                end = end.max(t[v] + self.actors[v].wcet);
            }
        }
        end
    }

    /// Deadline at tightness `ρ`: `L_lo + ρ·(L_hi − L_lo)` (docs/design.md §7.2).
    pub fn deadline_at(&self, rho: f64) -> f64 {
        let lo = self.quantile_latency(0.001);
        let hi = self.quantile_latency(0.999);
        lo + rho * (hi - lo)
    }
}
