//! The tile queue of one frame at the node that holds its input: a data source (WST, WST-S:
//! the owner computes from the head, thieves take from the tail) or the gateway (WSH: workers
//! pull from the head).

use heapless::Vec;

use crate::ftp::Mode;
use crate::ftp::{Grid, Level, Side, MAX_TILES};
use crate::time::{Duration, Instant};
use crate::wire::{FrameKey, NodeId, StripHolders, GATEWAY};

use super::sets::TileSet;
use crate::time::earliest;

/// Where a tile of a queued frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TileState {
    /// Waiting in the queue.
    Queued,
    /// Being computed (or its strips fetched) on this node.
    Running,
    /// Handed to `to`; re-queued at `deadline` unless covered first.
    Lent { to: NodeId, deadline: Instant },
    /// Computed here, or its result is known to be at the gateway.
    Done,
}

/// One frame's tiles at the node holding its input.
#[derive(Clone, Debug)]
pub(crate) struct SrcFrame {
    pub key: FrameKey,
    /// Arrival order: frames are served oldest first, so none starves.
    pub seq: u64,
    pub deadline: Instant,
    pub tiles: u16,
    /// Queued tiles, head first.
    queue: Vec<u8, MAX_TILES>,
    state: [TileState; MAX_TILES],
    /// Computed on this node: its strips are in the local store.
    pub local: TileSet,
    /// The gateway holds the result (and, with reuse, a level-0 tile's strips).
    pub covered: TileSet,
    /// The gateway was told this frame has stealable tiles.
    pub registered: bool,
    /// The node each tile was last lent to (`GATEWAY`: never lent): under [`Reuse::Link`], a
    /// covered level-0 tile's strips are there.
    lent_to: [NodeId; MAX_TILES],
    /// When each tile started running here or was lent.
    since: [Instant; MAX_TILES],
}

/// How a data source's tiles reuse overlap strips.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reuse {
    /// No reuse (WSH, WST): every tile `Plain`.
    Off,
    /// WST-S with the gateway's strip cache: strips go where they are needed.
    Shared,
    /// WST-S with strips that stay where they were made (`Config::local_reuse`).
    Local,
    /// WST-S with strips that stay where they were made and go edge to edge to a level-1
    /// tile's node when its link model says so (`Config::link_reuse`).
    Link,
}

impl Reuse {
    /// The rule for the gateway's own frames: it lends no strips edge to edge, so `Link` is
    /// `Local` there.
    pub(crate) fn at_gateway(self) -> Reuse {
        match self {
            Reuse::Link => Reuse::Local,
            r => r,
        }
    }
}

/// Which end of the queue a tile is taken from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// The owner (or a WSH worker).
    Head,
    /// A thief.
    Tail,
}

/// A tile picked for computation or lending, with what it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pick {
    pub tile: u16,
    pub mode: Mode,
    /// A level-1 Reuse tile: per side, the node holding the neighbour's strips (the source
    /// itself for strips it made; the gateway for strips in its cache; under [`Reuse::Link`]
    /// the edge a neighbour was lent to). Shared thieves fetch every side from the gateway and
    /// get none here.
    pub holders: Option<StripHolders>,
}

impl SrcFrame {
    pub(crate) fn new(
        key: FrameKey,
        seq: u64,
        deadline: Instant,
        grid: &Grid,
        reuse: Reuse,
    ) -> Self {
        let mut queue = Vec::new();
        let n = grid.tile_count().min(MAX_TILES);
        if reuse != Reuse::Off {
            for t in grid.schedule() {
                let _ = queue.push(t as u8);
            }
            // Within each level, the tiles with most neighbours (most halo, the largest) go
            // where they are taken first, level 0 at the head (the owner) and level 1 at the
            // tail (thieves), so the largest tile is not left for the last round.
            let sides = |t: u8| {
                Side::ALL
                    .iter()
                    .filter(|&&s| grid.neighbour(t as usize, s).is_some())
                    .count()
            };
            let split = queue
                .iter()
                .position(|&t| grid.level(t as usize) == Level::One)
                .unwrap_or(queue.len());
            let (zero, one) = queue.split_at_mut(split);
            // Stable (ties keep the level order) and allocation-free: at most 25 tiles.
            insertion_sort_by_key(zero, |t| core::cmp::Reverse(sides(t)));
            insertion_sort_by_key(one, sides);
        } else {
            for t in 0..n {
                let _ = queue.push(t as u8);
            }
        }
        SrcFrame {
            key,
            seq,
            deadline,
            tiles: n as u16,
            queue,
            state: [TileState::Queued; MAX_TILES],
            local: TileSet::default(),
            covered: TileSet::default(),
            registered: false,
            lent_to: [GATEWAY; MAX_TILES],
            since: [Instant::ZERO; MAX_TILES],
        }
    }

    /// Starts the frame over for a gateway that may know nothing of it (a restarted one):
    /// every tile queued again, computed ones too, since their results went to the old
    /// gateway; `running` (a tile of this frame being computed here) stays running.
    pub(crate) fn restart(&mut self, grid: &Grid, reuse: Reuse, running: Option<(u16, Instant)>) {
        *self = SrcFrame::new(self.key, self.seq, self.deadline, grid, reuse);
        if let Some((t, since)) = running {
            self.run(t, since);
        }
    }

    pub(crate) fn queued(&self) -> u16 {
        self.queue.len() as u16
    }

    /// Where the strips of each existing neighbour of level-1 `t` are, or `None` when some
    /// neighbour is not ready. A neighbour computed here is held here (by the owner, or by the
    /// thief it is lent to under [`Reuse::Link`]); otherwise it must be covered: its strips are
    /// at the gateway ([`Reuse::Shared`]) or on the edge it was lent to ([`Reuse::Link`]).
    /// With [`Reuse::Local`] every neighbour must have been computed here.
    fn readiness(&self, grid: &Grid, t: u16, owner: bool, reuse: Reuse) -> Option<StripHolders> {
        let mut holders = StripHolders::default();
        for side in Side::ALL {
            let Some(n) = grid.neighbour(t as usize, side) else {
                continue;
            };
            let n = n as u16;
            let here = self.local.contains(n);
            let holder = match reuse {
                _ if here && (owner || reuse == Reuse::Link) => self.key.origin,
                Reuse::Shared if self.covered.contains(n) => GATEWAY,
                Reuse::Link if self.covered.contains(n) && self.lent_to[n as usize] != GATEWAY => {
                    self.lent_to[n as usize]
                }
                _ => return None,
            };
            holders.set(side, Some(holder));
        }
        Some(holders)
    }

    /// The tile to take from `end` and its mode. With reuse, level-0 tiles run `Reuse` (plain
    /// compute that keeps its strips); a level-1 tile runs `Reuse` only when every neighbour is
    /// ready, and tiles that would have to fall back to `Plain` are passed over while a ready
    /// one exists further in. With [`Reuse::Local`] a thief's tiles are all `Plain` and the
    /// owner's level-1 tiles need every neighbour computed here. With [`Reuse::Link`] a ready
    /// level-1 tile comes with its strips' holders, thieves' included: the node that runs it
    /// decides whether to fetch them (and a thief gets it `Plain`, see `Config::link_reuse`).
    pub(crate) fn pick(&self, grid: &Grid, reuse: Reuse, end: End) -> Option<Pick> {
        self.pick_or_hold(grid, reuse, end, |_| false)
    }

    /// As [`SrcFrame::pick`], but a level-1 tile that is not ready runs `Plain` only when
    /// `hold` says its neighbours are not worth waiting for (see [`SrcFrame::worth_waiting`]);
    /// `None` when every queued tile is such a tile.
    pub(crate) fn pick_or_hold(
        &self,
        grid: &Grid,
        reuse: Reuse,
        end: End,
        hold: impl Fn(u16) -> bool,
    ) -> Option<Pick> {
        let plain = |t: u8| Pick {
            tile: t as u16,
            mode: Mode::Plain,
            holders: None,
        };
        let first = match end {
            End::Head => *self.queue.first()?,
            End::Tail => *self.queue.last()?,
        };
        let owner = end == End::Head;
        if reuse == Reuse::Off || (reuse == Reuse::Local && !owner) {
            return Some(plain(first));
        }
        let check = |t: u8| -> Option<Pick> {
            if grid.level(t as usize) == Level::Zero {
                return Some(Pick {
                    tile: t as u16,
                    mode: Mode::Reuse,
                    holders: None,
                });
            }
            self.readiness(grid, t as u16, owner, reuse)
                .map(|holders| Pick {
                    tile: t as u16,
                    mode: Mode::Reuse,
                    holders: (owner || reuse == Reuse::Link).then_some(holders),
                })
        };
        let found = match end {
            End::Head => self.queue.iter().find_map(|&t| check(t)),
            End::Tail => self.queue.iter().rev().find_map(|&t| check(t)),
        };
        if found.is_some() {
            return found;
        }
        // Nothing ready: the first tile not worth waiting for, Plain.
        let fallback = |&t: &u8| !hold(t as u16);
        match end {
            End::Head => self.queue.iter().find(|t| fallback(t)),
            End::Tail => self.queue.iter().rev().find(|t| fallback(t)),
        }
        .map(|&t| plain(t))
    }

    /// Whether level-1 `t`, not ready, is better left queued until its neighbours are done
    /// than run `Plain` now: every neighbour not done is being computed (here or lent), none
    /// is overdue (running past twice its expected time, `expect`), and the last is expected
    /// done sooner than `penalty` (what running `Plain` costs over running `Reuse` once the
    /// strips are in). `expect` is `None` when nothing was timed yet: then never.
    pub(crate) fn worth_waiting(
        &self,
        grid: &Grid,
        t: u16,
        now: Instant,
        expect: impl Fn(u16) -> Option<Duration>,
        penalty: Duration,
    ) -> bool {
        let (mut until, mut waiting) = (now, false);
        for side in Side::ALL {
            let Some(n) = grid.neighbour(t as usize, side) else {
                continue;
            };
            let n = n as u16;
            if self.done(n) || self.covered.contains(n) {
                continue;
            }
            match self.state.get(n as usize) {
                Some(TileState::Running | TileState::Lent { .. }) => waiting = true,
                _ => return false,
            }
            let Some(e) = expect(n) else {
                return false;
            };
            let since = self.since[n as usize];
            if now > since + e + e {
                return false;
            }
            until = until.max(since + e);
        }
        // Nothing in progress (every neighbour done, yet the tile not ready): nothing to wait for.
        waiting && until.saturating_duration_since(now) < penalty
    }

    fn unqueue(&mut self, t: u16) {
        if let Some(i) = self.queue.iter().position(|&q| q as u16 == t) {
            self.queue.remove(i);
        }
    }

    /// Takes `t` out of the queue to compute it here.
    pub(crate) fn run(&mut self, t: u16, now: Instant) {
        self.unqueue(t);
        if t < self.tiles {
            self.since[t as usize] = now;
            self.state[t as usize] = TileState::Running;
        }
    }

    /// Takes `t` out of the queue and lends it to `to` until `deadline`.
    pub(crate) fn lend(&mut self, t: u16, to: NodeId, now: Instant, deadline: Instant) {
        self.unqueue(t);
        if t < self.tiles {
            self.state[t as usize] = TileState::Lent { to, deadline };
            self.lent_to[t as usize] = to;
            self.since[t as usize] = now;
        }
    }

    /// Puts `t` back at the head (a local run abandoned, a lent tile lost).
    pub(crate) fn requeue(&mut self, t: u16) {
        if t >= self.tiles || self.state[t as usize] == TileState::Done {
            return;
        }
        self.state[t as usize] = TileState::Queued;
        if !self.queue.iter().any(|&q| q as u16 == t) {
            let _ = self.queue.insert(0, t as u8);
        }
    }

    /// `t` was computed here.
    pub(crate) fn computed(&mut self, t: u16) {
        if t < self.tiles {
            self.unqueue(t);
            self.state[t as usize] = TileState::Done;
            self.local.insert(t);
        }
    }

    /// The gateway holds `t`'s result: whoever computed it, it is done.
    pub(crate) fn cover(&mut self, t: u16) {
        if t < self.tiles {
            self.unqueue(t);
            if self.state[t as usize] != TileState::Running {
                self.state[t as usize] = TileState::Done;
            }
            self.covered.insert(t);
        }
    }

    /// `t` is done: computed here, or its result is at the gateway.
    pub(crate) fn done(&self, t: u16) -> bool {
        t < self.tiles && self.state[t as usize] == TileState::Done
    }

    /// Re-queues lent tiles whose deadline passed; true if any.
    pub(crate) fn expire(&mut self, now: Instant) -> bool {
        let mut any = false;
        for t in 0..self.tiles {
            if let TileState::Lent { deadline, .. } = self.state[t as usize] {
                if deadline <= now {
                    self.requeue(t);
                    any = true;
                }
            }
        }
        any
    }

    /// Re-queues every tile lent to `peer`; true if any.
    pub(crate) fn peer_gone(&mut self, peer: NodeId) -> bool {
        let mut any = false;
        for t in 0..self.tiles {
            if let TileState::Lent { to, .. } = self.state[t as usize] {
                if to == peer {
                    self.requeue(t);
                    any = true;
                }
            }
        }
        any
    }

    /// The earliest lent-tile deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let mut at = None;
        for t in 0..self.tiles {
            if let TileState::Lent { deadline, .. } = self.state[t as usize] {
                at = earliest(at, Some(deadline));
            }
        }
        at
    }
}

/// Index of the oldest frame (by `seq`) of `slots` satisfying `f`.
pub(crate) fn oldest<T>(
    slots: &[Option<T>],
    seq: impl Fn(&T) -> u64,
    f: impl Fn(&T) -> bool,
) -> Option<usize> {
    slots
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.as_ref().filter(|s| f(s)).map(|s| (seq(s), i)))
        .min()
        .map(|(_, i)| i)
}

/// A stable in-place sort for short slices; `slice::sort_by_key` needs `alloc`.
fn insertion_sort_by_key<K: Ord>(v: &mut [u8], key: impl Fn(u8) -> K) {
    for i in 1..v.len() {
        let mut j = i;
        while j > 0 && key(v[j - 1]) > key(v[j]) {
            v.swap(j - 1, j);
            j -= 1;
        }
    }
}
