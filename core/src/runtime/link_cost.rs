//! The link-cost model of WST-S with `reuse = "link"`: whether a node about to run a level-1
//! tile fetches its neighbours' overlap strips from the edges that hold them, or recomputes the
//! overlap from the tile's whole input.
//!
//! Fetching costs, per holder, one round trip plus the strips' bytes at that link's rate (the
//! holders answer in parallel, so the slowest one counts); recomputing costs the overlap's
//! multiply-adds at this node's own rate. Both rates are measured by the node as it runs
//! ([`PeerLinks`], [`ComputeRate`]); a link not measured yet is assumed to be
//! [`Config::link_prior`](super::Config::link_prior). [`TileCosts`] holds the geometry, computed
//! once from the fused stack and the grid.

use crate::ftp::{tile_macs, FusedStack, Grid, Level, Mode, Side, TilePlan, MAX_TILES};
use crate::time::Duration;
use crate::wire::{NodeId, STRIP_DESC_LEN, VALUE_LEN};

use super::MAX_EDGES;

/// Smallest transfer that measures a link's rate; a smaller one is mostly round trip.
pub const MIN_RATE_SAMPLE: u64 = 16 << 10;

/// How a node chooses between fetching strips and recomputing the overlap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StripFetch {
    /// Whichever the link model says is cheaper.
    #[default]
    Model,
    /// Always fetch (when every holder is reachable): for tests and measurements.
    Always,
    /// Never fetch: recompute every overlap, as `reuse = "local"` does for thieves.
    Never,
}

/// A link as the model sees it: a round trip and a transfer rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkEstimate {
    /// Request to first reply, for a small message.
    pub rtt: Duration,
    /// Payload bytes per second once a transfer runs.
    pub bytes_per_s: u64,
}

impl LinkEstimate {
    /// Time to receive `bytes` over this link, request included.
    pub fn transfer(&self, bytes: u64) -> Duration {
        let us = bytes.saturating_mul(1_000_000) / self.bytes_per_s.max(1);
        Duration::from_micros(self.rtt.total_micros().saturating_add(us))
    }
}

/// Multiply-adds of every tile in both modes, and the strip bytes a level-1 tile receives
/// per side in `Reuse` (as `f32`, descriptors included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TileCosts {
    tiles: u8,
    plain: [u64; MAX_TILES],
    reuse: [u64; MAX_TILES],
    strips: [[u32; 4]; MAX_TILES],
}

impl TileCosts {
    /// Nothing known (a configuration made without the stack): the model never fetches.
    pub const UNKNOWN: TileCosts = TileCosts {
        tiles: 0,
        plain: [0; MAX_TILES],
        reuse: [0; MAX_TILES],
        strips: [[0; 4]; MAX_TILES],
    };

    /// The costs of `grid`'s tiles over `stack` (unknown for a grid the stack does not fit).
    pub fn new(stack: &FusedStack<'_>, grid: &Grid) -> TileCosts {
        let mut c = TileCosts::UNKNOWN;
        let n = grid.tile_count().min(MAX_TILES);
        for t in 0..n {
            let (Ok(plain), Ok(reuse)) = (
                TilePlan::new(stack, grid, t, Mode::Plain),
                TilePlan::new(stack, grid, t, Mode::Reuse),
            ) else {
                return TileCosts::UNKNOWN;
            };
            c.plain[t] = tile_macs(stack, &plain);
            c.reuse[t] = tile_macs(stack, &reuse);
            if grid.level(t) == Level::One {
                for side in Side::ALL {
                    let mut bytes = 0u64;
                    for (l, layer) in stack.layers().iter().enumerate() {
                        let r = reuse.receive(l, side);
                        if r.is_empty() {
                            continue;
                        }
                        let values = r.area().saturating_mul(layer.output.c as u64);
                        bytes = bytes
                            .saturating_add(STRIP_DESC_LEN as u64)
                            .saturating_add(values.saturating_mul(VALUE_LEN as u64));
                    }
                    c.strips[t][side.index()] = bytes.min(u32::MAX as u64) as u32;
                }
            }
        }
        c.tiles = n as u8;
        c
    }

    /// True when nothing is known.
    pub const fn is_unknown(&self) -> bool {
        self.tiles == 0
    }

    /// Multiply-adds of `tile` in `mode` (0 when unknown).
    pub fn macs(&self, tile: u16, mode: Mode) -> u64 {
        let t = tile as usize;
        if t >= self.tiles as usize {
            return 0;
        }
        match mode {
            Mode::Plain => self.plain[t],
            Mode::Reuse => self.reuse[t],
        }
    }

    /// Multiply-adds a `Reuse` run of `tile` saves over a `Plain` one: the overlap.
    pub fn saved_macs(&self, tile: u16) -> u64 {
        self.macs(tile, Mode::Plain)
            .saturating_sub(self.macs(tile, Mode::Reuse))
    }

    /// Bytes of the strips level-1 `tile` receives from its neighbour on `side`.
    pub fn strip_bytes(&self, tile: u16, side: Side) -> u64 {
        let t = tile as usize;
        if t >= self.tiles as usize {
            return 0;
        }
        self.strips[t][side.index()] as u64
    }
}

/// What a node measured of its links to the other nodes (index: node id, at most
/// [`MAX_EDGES`]): round trips of small exchanges and the rate of large ones.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PeerLinks {
    rtt: [Option<Duration>; MAX_EDGES + 1],
    rate: [Option<u64>; MAX_EDGES + 1],
}

impl PeerLinks {
    /// A small exchange with `peer` took `took`. The estimate follows a faster round trip at
    /// once and a slower one by an eighth: a reply may have queued behind other traffic (a
    /// picture sent before a task), which says little about the next request.
    pub(crate) fn note_rtt(&mut self, peer: NodeId, took: Duration) {
        let Some(slot) = self.rtt.get_mut(usize::from(peer)) else {
            return;
        };
        let t = took.total_micros();
        *slot = Some(Duration::from_micros(match *slot {
            Some(old) if old.total_micros() < t => (7 * old.total_micros() + t) / 8,
            _ => t,
        }));
    }

    /// `bytes` came from `peer` `took` after they were asked for: a rate sample once the
    /// round trip is taken off (averaged with the previous estimate); under
    /// [`MIN_RATE_SAMPLE`] bytes, a round-trip sample.
    pub(crate) fn note_transfer(&mut self, peer: NodeId, bytes: u64, took: Duration) {
        if bytes < MIN_RATE_SAMPLE {
            self.note_rtt(peer, took);
            return;
        }
        let rtt = self
            .rtt
            .get(usize::from(peer))
            .copied()
            .flatten()
            .map_or(0, |d| d.total_micros());
        let Some(slot) = self.rate.get_mut(usize::from(peer)) else {
            return;
        };
        let us = took.total_micros().saturating_sub(rtt).max(1);
        let sample = bytes.saturating_mul(1_000_000) / us;
        *slot = Some(match *slot {
            Some(old) => (old + sample) / 2,
            None => sample,
        });
    }

    /// Whether a transfer rate was measured on the link to `peer`.
    pub(crate) fn rate_known(&self, peer: NodeId) -> bool {
        self.rate
            .get(usize::from(peer))
            .is_some_and(|r| r.is_some())
    }

    /// The link to `peer`: what was measured, `prior` for what was not.
    pub(crate) fn estimate(&self, peer: NodeId, prior: LinkEstimate) -> LinkEstimate {
        let i = usize::from(peer);
        LinkEstimate {
            rtt: self.rtt.get(i).copied().flatten().unwrap_or(prior.rtt),
            bytes_per_s: self
                .rate
                .get(i)
                .copied()
                .flatten()
                .unwrap_or(prior.bytes_per_s),
        }
    }
}

/// This node's measured compute rate, multiply-adds per second.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ComputeRate(Option<u64>);

impl ComputeRate {
    /// A job of `macs` multiply-adds took `took` (averaged with the previous estimate).
    pub(crate) fn note(&mut self, macs: u64, took: Duration) {
        if macs == 0 {
            return;
        }
        let sample = macs.saturating_mul(1_000_000) / took.total_micros().max(1);
        self.0 = Some(match self.0 {
            Some(old) => (old + sample) / 2,
            None => sample,
        });
    }

    /// Time to compute `macs` at the measured rate; `None` before any job was timed.
    pub(crate) fn time(&self, macs: u64) -> Option<Duration> {
        let rate = self.0?.max(1);
        Some(Duration::from_micros(macs.saturating_mul(1_000_000) / rate))
    }
}

/// The decision: fetch when the strips arrive before the overlap could be recomputed.
/// `fetch` is the slowest holder's transfer, `recompute` the overlap at this node's rate
/// (`None`: not measured yet, so fetching cannot be shown to pay). `explore`: some holder's
/// link has no measured rate (only strips and `f32` inputs measure one): fetch anyway, once,
/// so it gets one; the fetch timeout bounds what a slow link costs.
pub(crate) fn fetch_pays(
    rule: StripFetch,
    fetch: Duration,
    recompute: Option<Duration>,
    explore: bool,
) -> bool {
    match rule {
        StripFetch::Always => true,
        StripFetch::Never => false,
        StripFetch::Model => recompute.is_some_and(|r| explore || fetch < r),
    }
}

/// How long a fetch may take before the node gives up and recomputes: twice the estimate (a
/// link may be busier than measured) plus the recompute it was meant to save, at least 20 ms,
/// at most `cap` (the tile timeout). Past that, recomputing at once is the faster way out.
pub(crate) fn fetch_timeout(
    fetch: Duration,
    recompute: Option<Duration>,
    cap: Duration,
) -> Duration {
    let us = fetch
        .total_micros()
        .saturating_mul(2)
        .saturating_add(recompute.map_or(0, |r| r.total_micros()))
        .max(20_000);
    Duration::from_micros(us.min(cap.total_micros()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIOR: LinkEstimate = LinkEstimate {
        rtt: Duration::from_millis(5),
        bytes_per_s: 2_500_000,
    };

    #[test]
    fn a_transfer_costs_a_round_trip_plus_its_bytes_at_the_rate() {
        assert_eq!(PRIOR.transfer(0), Duration::from_millis(5));
        assert_eq!(PRIOR.transfer(250_000), Duration::from_millis(105));
    }

    #[test]
    fn the_model_fetches_only_when_the_strips_arrive_before_the_overlap_is_recomputed() {
        let fetch = PRIOR.transfer(250_000); // 105 ms
        let fast = Some(Duration::from_millis(50));
        let slow = Some(Duration::from_millis(200));
        assert!(!fetch_pays(StripFetch::Model, fetch, fast, false));
        assert!(fetch_pays(StripFetch::Model, fetch, slow, false));
        // A link never measured is tried once.
        assert!(fetch_pays(StripFetch::Model, fetch, fast, true));
        // Nothing timed yet: no basis to fetch.
        assert!(!fetch_pays(StripFetch::Model, fetch, None, true));
        assert!(fetch_pays(StripFetch::Always, fetch, fast, false));
        assert!(!fetch_pays(StripFetch::Never, fetch, slow, true));
    }

    #[test]
    fn measured_links_replace_the_prior_and_a_slow_reply_moves_the_round_trip_a_little() {
        let mut links = PeerLinks::default();
        assert_eq!(links.estimate(3, PRIOR), PRIOR);
        assert!(!links.rate_known(3));
        links.note_rtt(3, Duration::from_millis(2));
        assert_eq!(links.estimate(3, PRIOR).rtt, Duration::from_millis(2));
        // A reply that queued behind a picture: the estimate moves by an eighth.
        links.note_rtt(3, Duration::from_millis(82));
        assert_eq!(links.estimate(3, PRIOR).rtt, Duration::from_millis(12));
        // A faster one is taken at once.
        links.note_rtt(3, Duration::from_millis(1));
        assert_eq!(links.estimate(3, PRIOR).rtt, Duration::from_millis(1));
        // 1 MB in 1 ms round trip + 100 ms: 10 MB/s.
        links.note_transfer(3, 1_000_000, Duration::from_millis(101));
        assert_eq!(links.estimate(3, PRIOR).bytes_per_s, 10_000_000);
        assert!(links.rate_known(3));
        // A small transfer is a round trip, not a rate.
        links.note_transfer(5, 100, Duration::from_millis(3));
        assert!(!links.rate_known(5));
        assert_eq!(links.estimate(5, PRIOR).rtt, Duration::from_millis(3));
        // Other peers keep the prior; ids past the table are ignored, never a panic.
        assert_eq!(links.estimate(4, PRIOR), PRIOR);
        links.note_rtt(NodeId::MAX, Duration::from_millis(1));
        links.note_transfer(NodeId::MAX, 1 << 20, Duration::from_millis(1));
        assert_eq!(links.estimate(NodeId::MAX, PRIOR), PRIOR);
    }

    #[test]
    fn the_compute_rate_prices_the_overlap() {
        let mut rate = ComputeRate::default();
        assert_eq!(rate.time(1_000), None);
        rate.note(0, Duration::from_millis(10)); // nothing known about the job: ignored
        assert_eq!(rate.time(1_000), None);
        rate.note(2_000_000, Duration::from_millis(100)); // 20 M MAC/s
        assert_eq!(rate.time(1_000_000), Some(Duration::from_millis(50)));
    }

    #[test]
    fn a_fetch_times_out_after_twice_its_estimate_plus_the_recompute_within_bounds() {
        let cap = Duration::from_secs(2);
        let ms = Duration::from_millis;
        assert_eq!(fetch_timeout(ms(100), Some(ms(300)), cap), ms(500));
        assert_eq!(fetch_timeout(ms(1), None, cap), ms(20));
        assert_eq!(fetch_timeout(ms(5_000), None, cap), cap);
    }
}
