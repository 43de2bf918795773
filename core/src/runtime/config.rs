//! The settings every node of a run shares, and the output extents of the fused layers.

use crate::ftp::{FusedStack, Grid, MAX_FUSED};
use crate::time::Duration;
use crate::wire::Policy;

use super::link_cost::{LinkEstimate, StripFetch, TileCosts};
use super::source::Reuse;

/// Output extents `(width, height)` of every fused layer: what BODP splits into stripes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackShape {
    len: u8,
    out: [(u32, u32); MAX_FUSED],
}

impl StackShape {
    /// The output extents of `stack`'s layers.
    pub fn from_stack(stack: &FusedStack<'_>) -> StackShape {
        let mut s = StackShape {
            len: 0,
            out: [(0, 0); MAX_FUSED],
        };
        for (l, layer) in stack.layers().iter().enumerate() {
            s.out[l] = (layer.output.w, layer.output.h);
            s.len = l as u8 + 1;
        }
        s
    }

    /// Extents given directly (at most [`MAX_FUSED`] layers are kept).
    pub fn from_extents(extents: &[(u32, u32)]) -> StackShape {
        let mut s = StackShape {
            len: 0,
            out: [(0, 0); MAX_FUSED],
        };
        for (l, &e) in extents.iter().take(MAX_FUSED).enumerate() {
            s.out[l] = e;
            s.len = l as u8 + 1;
        }
        s
    }

    /// Number of fused layers.
    pub const fn len(&self) -> usize {
        self.len as usize
    }

    /// True when no layer is described.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `(width, height)` of layer `layer`'s output.
    pub fn output(&self, layer: usize) -> Option<(u32, u32)> {
        if layer < self.len() {
            Some(self.out[layer])
        } else {
            None
        }
    }
}

/// Settings shared by every node of a run (the gateway's and the edges' must agree on
/// `policy` and `grid`).
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Scheduling policy.
    pub policy: Policy,
    /// The tile grid (tile count, checkerboard levels, neighbours).
    pub grid: Grid,
    /// Output extents of the fused layers (BODP stripes).
    pub layers: StackShape,
    /// A dispatched tile or stripe not back within this is dispatched again (the first result
    /// wins, later ones are discarded). Also bounds every request/reply exchange.
    pub tile_timeout: Duration,
    /// A thief that found no work (no victim, or the victim had nothing) asks again after this,
    /// unless the gateway announces a new registration first.
    pub steal_backoff: Duration,
    /// A frame not finished this long after it entered the cluster is abandoned
    /// ([`Action::FrameFailed`](super::Action::FrameFailed)).
    pub frame_deadline: Duration,
    /// Gateway only: compute tiles (or stripes) itself while no edge is alive.
    pub gateway_fallback: bool,
    /// Gateway only: a complete frame's `FrameDone` waits for
    /// [`Gateway::frame_done`](super::Gateway::frame_done) (the driver holds the final result,
    /// e.g. after the tail), and the frame keeps its slot until then, so the backlog of
    /// finished frames is bounded by [`MAX_GATEWAY_FRAMES`](super::MAX_GATEWAY_FRAMES) and a
    /// source, which holds a frame until `FrameDone`, feeds no faster than results are made.
    pub confirm_done: bool,
    /// WST-S: overlap strips stay on the node that computed them; nothing sends or fetches
    /// strips. A level-1 tile runs `Reuse` only on the node that computed all its level-0
    /// neighbours (the data source, or the gateway for its own frames); every tile lent to a
    /// thief runs `Plain` (the thief recomputes the overlap instead of fetching it). Reuse then
    /// saves compute where it is free and never costs bytes: WST-S sends what WST sends.
    /// Off: strips go through the gateway's cache (docs/design.md §5).
    pub local_reuse: bool,
    /// WST-S, `reuse = "link"` (takes precedence over `local_reuse`): strips stay on the node
    /// that computed them, as with `local_reuse`, but a node about to run a level-1 tile whose
    /// neighbours' strips sit on other edges fetches them from there, edge to edge, when its
    /// link model says that is cheaper than recomputing the overlap ([`Config::strip_fetch`]).
    /// Thieves then run level-0 tiles `Reuse` (keeping their strips for the neighbours) and get
    /// level-1 tiles `Plain`, with a `StripHolders` message saying where the strips are.
    pub link_reuse: bool,
    /// `reuse = "link"`: how fetch or recompute is chosen (the link model by default; always
    /// or never, to force either in tests). Each node decides for itself, so nodes may differ.
    pub strip_fetch: StripFetch,
    /// `reuse = "link"`: the link assumed to a peer before anything was measured on it.
    pub link_prior: LinkEstimate,
    /// Multiply-adds and strip bytes per tile, for the link model ([`Config::new`] fills it
    /// from the stack; [`Config::with_shape`] leaves it unknown, and the model then never
    /// fetches).
    pub costs: TileCosts,
    /// WST/WST-S data source: the most of its own tiles it keeps ahead of the gateway
    /// (computed here, their `Coverage` not yet back) before it leaves its other queued tiles
    /// to thieves. Where results leave slower than they are computed (a slow uplink), more
    /// would only wait behind the link while an idle thief could compute them and send them
    /// over its own. `Coverage` is the gateway's receipt, so the limit follows the measured
    /// link without a rate estimate; a link faster than compute never reaches it. 0: no limit.
    pub results_ahead: u8,
    /// WST/WST-S thief: ask for the next tile while computing a stolen one (at most one task
    /// waits), one steal round trip before the current tile should be done (both as last
    /// measured), so a thief neither sits idle for a round trip between tiles nor holds a
    /// tile idle behind its current one that its owner could have computed.
    pub prefetch: bool,
}

impl Config {
    /// A configuration with the default timeouts: tile 2 s, steal backoff 50 ms, frame 60 s,
    /// gateway fallback on, `FrameDone` as soon as every tile is in (`confirm_done` off), no limit
    /// on results ahead, no prefetch; strips through the gateway under WST-S, and a link prior
    /// of 5 ms and 2.5 MB/s (20 Mbit/s) for `reuse = "link"`. Connection liveness is not the machines' concern: the
    /// transport reports peers up and down.
    pub fn new(policy: Policy, stack: &FusedStack<'_>, grid: Grid) -> Config {
        let mut c = Config::with_shape(policy, StackShape::from_stack(stack), grid);
        c.costs = TileCosts::new(stack, &grid);
        c
    }

    /// As [`Config::new`] from extents already extracted.
    pub fn with_shape(policy: Policy, layers: StackShape, grid: Grid) -> Config {
        Config {
            policy,
            grid,
            layers,
            tile_timeout: Duration::from_secs(2),
            steal_backoff: Duration::from_millis(50),
            frame_deadline: Duration::from_secs(60),
            gateway_fallback: true,
            confirm_done: false,
            local_reuse: false,
            link_reuse: false,
            strip_fetch: StripFetch::Model,
            link_prior: LinkEstimate {
                rtt: Duration::from_millis(5),
                bytes_per_s: 2_500_000,
            },
            costs: TileCosts::UNKNOWN,
            results_ahead: 0,
            prefetch: false,
        }
    }

    pub(crate) fn tiles(&self) -> u16 {
        self.grid.tile_count() as u16
    }

    pub(crate) fn reuse(&self) -> bool {
        self.policy == Policy::WstS
    }

    /// How tiles of a data source's queue reuse strips.
    pub(crate) fn reuse_mode(&self) -> Reuse {
        match (self.reuse(), self.link_reuse, self.local_reuse) {
            (false, _, _) => Reuse::Off,
            (true, true, _) => Reuse::Link,
            (true, false, false) => Reuse::Shared,
            (true, false, true) => Reuse::Local,
        }
    }

    /// Level-0 strips go to the gateway's cache, which covers a level-0 tile only once it
    /// holds them.
    pub(crate) fn strips_at_gateway(&self) -> bool {
        self.reuse_mode() == Reuse::Shared
    }

    /// Layer by layer in stripes: BODP or MoDNN.
    pub(crate) fn layered(&self) -> bool {
        self.policy.layered()
    }

    pub(crate) fn stealing(&self) -> bool {
        matches!(self.policy, Policy::Wst | Policy::WstS)
    }
}
