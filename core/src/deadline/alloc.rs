//! Budget allocators: turn a frame deadline into per-actor start offsets and per-channel
//! timeouts.
//!
//! * [`uniform`] (the baseline): each source→sink path's slack `L − Σ c_a` is divided equally
//!   among its channels, a channel on several paths keeps its smallest share, actors start as
//!   soon as possible.
//! * [`optimize`] (quality/latency-aware): coordinate pattern search over the start offsets,
//!   (single actors and whole downstream sets) from the baseline, maximising any objective (the QLA SNR [`Graph::snr`], or
//!   [`expected_recovery`] for a coded fan-out) subject to the precedence and deadline
//!   constraints. It only ever accepts improvements, so it keeps the baseline when there is no
//!   gain.

use super::graph::{Graph, GraphError, MAX_ACTORS};
use super::recovery::{recovered, MAX_DELIVERIES};

/// Start offsets (ms) for the actors of a graph.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    t: [f64; MAX_ACTORS],
    n: usize,
}

impl Schedule {
    /// The start offsets, one per actor.
    pub fn starts(&self) -> &[f64] {
        &self.t[..self.n]
    }
}

/// Smallest step the pattern search tries, relative to the deadline.
const MIN_STEP: f64 = 1e-6;
/// Objective evaluations the pattern search may spend.
const MAX_EVALS: usize = 20_000;

fn critical(g: &Graph) -> f64 {
    let mut fin = [0.0f64; MAX_ACTORS];
    let mut worst = 0.0f64;
    for (v, a) in g.actors().iter().enumerate() {
        let start = g
            .channels()
            .iter()
            .filter(|c| c.to == v)
            .map(|c| fin[c.from])
            .fold(0.0, f64::max);
        fin[v] = start + a.wcet;
        if a.sink_weight > 0.0 {
            worst = worst.max(fin[v]);
        }
    }
    worst
}

/// The uniform-slack baseline for deadline `deadline` (ms).
#[allow(clippy::needless_range_loop)] // path-length DP indexes two tables in step
pub fn uniform(g: &Graph, deadline: f64) -> Result<Schedule, GraphError> {
    let n = g.actors().len();
    let crit = critical(g);
    if !(deadline.is_finite() && deadline >= crit) {
        return Err(GraphError::Infeasible {
            deadline_us: (deadline.max(0.0) * 1e3) as u64,
            critical_us: (crit * 1e3) as u64,
        });
    }
    // fwd[a][l]: largest Σ WCET over source→a paths with l channels (a included), −∞ if none;
    // bwd[a][l]: the same over a→sink paths.
    let neg = f64::NEG_INFINITY;
    let mut fwd = [[neg; MAX_ACTORS]; MAX_ACTORS];
    let mut bwd = [[neg; MAX_ACTORS]; MAX_ACTORS];
    for v in 0..n {
        let c_v = g.actors()[v].wcet;
        if g.is_source(v) {
            fwd[v][0] = c_v;
        }
        for ch in g.channels().iter().filter(|c| c.to == v) {
            for l in 1..n {
                let prev = fwd[ch.from][l - 1];
                if prev > neg {
                    fwd[v][l] = fwd[v][l].max(prev + c_v);
                }
            }
        }
    }
    for v in (0..n).rev() {
        let c_v = g.actors()[v].wcet;
        if g.actors()[v].sink_weight > 0.0 {
            bwd[v][0] = c_v;
        }
        for ch in g.channels().iter().filter(|c| c.from == v) {
            for l in 1..n {
                let next = bwd[ch.to][l - 1];
                if next > neg {
                    bwd[v][l] = bwd[v][l].max(next + c_v);
                }
            }
        }
    }
    let mut t = [0.0f64; MAX_ACTORS];
    for v in 0..n {
        for ch in g.channels().iter().filter(|c| c.to == v) {
            let mut share = f64::INFINITY;
            for l1 in 0..n {
                for l2 in 0..n - l1 {
                    let (a, b) = (fwd[ch.from][l1], bwd[v][l2]);
                    if a > neg && b > neg {
                        let len = (l1 + l2 + 1) as f64;
                        share = share.min((deadline - a - b) / len);
                    }
                }
            }
            if !share.is_finite() {
                share = 0.0; // a channel on no source→sink path: no slack to give
            }
            t[v] = t[v].max(t[ch.from] + g.actors()[ch.from].wcet + share.max(0.0));
        }
    }
    Ok(Schedule { t, n })
}

/// Pattern search from `start`, maximising `objective(graph, starts)` under the precedence and
/// deadline constraints; source actors stay where `start` put them. Each sweep tries, for
/// every other actor, moving it alone and moving it together with everything downstream of it
/// (so a tight chain can shift as one), by `±step`; the step halves when no move improves.
pub fn optimize<F>(g: &Graph, deadline: f64, start: &Schedule, mut objective: F) -> Schedule
where
    F: FnMut(&Graph, &[f64]) -> f64,
{
    let mut best = *start;
    if start.n != g.actors().len() || !g.feasible(start.starts(), deadline) {
        return best;
    }
    // down[a]: bit mask of a and every actor reachable from it (MAX_ACTORS ≤ 64).
    let mut down = [0u64; MAX_ACTORS];
    for a in (0..best.n).rev() {
        down[a] |= 1 << a;
        for c in g.channels().iter().filter(|c| c.from == a) {
            down[a] |= down[c.to];
        }
    }
    let mut value = objective(g, best.starts());
    let mut step = deadline / 4.0;
    let mut evals = 0;
    while step > deadline * MIN_STEP && evals < MAX_EVALS {
        let mut improved = false;
        for a in (0..best.n).filter(|&a| !g.is_source(a)) {
            let moves = [1u64 << a, down[a]];
            'moves: for (m, &mask) in moves.iter().enumerate() {
                if m == 1 && mask == 1 << a {
                    continue; // nothing downstream: same as the single move
                }
                for dir in [1.0, -1.0] {
                    let mut cand = best;
                    for (b, t) in cand.t.iter_mut().enumerate().take(best.n) {
                        if mask >> b & 1 == 1 {
                            *t += dir * step;
                        }
                    }
                    if !g.feasible(cand.starts(), deadline) {
                        continue;
                    }
                    evals += 1;
                    let v = objective(g, cand.starts());
                    if v > value * (1.0 + 1e-12) {
                        best = cand;
                        value = v;
                        improved = true;
                        break 'moves;
                    }
                }
            }
        }
        if !improved {
            step *= 0.5;
        }
    }
    best
}

const _: () = assert!(MAX_ACTORS <= 64, "downstream sets are u64 masks");

/// Expected fraction of a coded layer's output recovered, for a [`Graph::fan_out`] graph whose
/// workers `1..=k` compute data shards and `k+1..=n` parity shards: with `D` data and `R`
/// parity results in time (independent, worker `i` delivering with probability
/// `π_in,i · π_out,i`), the output is complete if `D + R ≥ k`, else the `D/k` that arrived
/// (the [recovery model](super::recovery::recovered) with equal shares). `k = n` is the
/// uncoded split (expected fraction delivered).
pub fn expected_recovery(g: &Graph, k: usize, t: &[f64]) -> f64 {
    let n = g.channels().len() / 2;
    if k == 0 || k > n || t.len() != g.actors().len() {
        return 0.0;
    }
    let deliver = |i: usize| -> f64 {
        let (cin, cout) = (&g.channels()[i], &g.channels()[n + i]);
        let din = t[cin.to] - t[cin.from] - g.actors()[cin.from].wcet;
        let dout = t[cout.to] - t[cout.from] - g.actors()[cout.from].wcet;
        cin.link.delivery(din) * cout.link.delivery(dout)
    };
    let mut p = [0.0f64; MAX_DELIVERIES];
    for (i, slot) in p.iter_mut().enumerate().take(n) {
        *slot = deliver(i);
    }
    recovered(&p[..n], k, |_| 1.0 / k as f64)
}
