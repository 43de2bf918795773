//! Small fixed-size sets: tiles of a frame, connected peers, sides of a tile.

use crate::ftp::{Grid, Side, MAX_TILES};
use crate::wire::NodeId;

/// A set of tile ids (`< MAX_TILES`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct TileSet(u64);

const _: () = assert!(MAX_TILES <= 64, "TileSet is one u64");

impl TileSet {
    pub(crate) fn contains(&self, t: u16) -> bool {
        t < 64 && self.0 & (1 << t) != 0
    }
    pub(crate) fn insert(&mut self, t: u16) {
        if t < 64 {
            self.0 |= 1 << t;
        }
    }
    pub(crate) fn remove(&mut self, t: u16) {
        if t < 64 {
            self.0 &= !(1 << t);
        }
    }
    pub(crate) fn len(&self) -> u16 {
        self.0.count_ones() as u16
    }
    /// The members of `self` not in `other`.
    pub(crate) fn difference(&self, other: TileSet) -> TileSet {
        TileSet(self.0 & !other.0)
    }
}

/// A set of node ids: the peers a machine was told are connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct PeerSet([u64; 4]);

impl PeerSet {
    /// Ids past 255 are never members (no cluster has that many nodes).
    pub(crate) fn contains(&self, p: NodeId) -> bool {
        p < 256 && self.0[p as usize / 64] & (1 << (p % 64)) != 0
    }
    pub(crate) fn insert(&mut self, p: NodeId) {
        if p < 256 {
            self.0[p as usize / 64] |= 1 << (p % 64);
        }
    }
    pub(crate) fn remove(&mut self, p: NodeId) {
        if p < 256 {
            self.0[p as usize / 64] &= !(1 << (p % 64));
        }
    }
}

/// Bit mask of `sides`.
pub(crate) fn side_bit(s: Side) -> u8 {
    1 << s.index()
}

/// Bit mask of the sides of `tile` that have a neighbour.
pub(crate) fn neighbour_sides(grid: &Grid, tile: u16) -> u8 {
    Side::ALL
        .iter()
        .filter(|&&s| grid.neighbour(tile as usize, s).is_some())
        .fold(0, |m, &s| m | side_bit(s))
}
