//! Where a tile's overlap strips are: [`StripHolders`], the field of
//! [`Message::StripHolders`](super::Message::StripHolders) that a WST-S data source sends a
//! thief with a level-1 tile under `reuse = "link"`, so the thief can fetch the strips edge to
//! edge (or recompute the overlap when its link model says that is cheaper).

use crate::ftp::Side;

use super::cursor::{Field, Reader, Writer};
use super::ids::{NodeId, PROBE};
use super::{Limits, WireError};

/// Per side of a tile ([`Side::index`] order), the node holding the strips of the level-0
/// neighbour on that side, if one is known. On the wire: four little-endian `u16`s, the node id
/// or `0xFFFF` ([`PROBE`], which no node has) for none; a holder that is `PROBE` cannot be
/// written ([`WireError::BadValue`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct StripHolders(pub [Option<NodeId>; 4]);

impl StripHolders {
    /// The holder of the strips on `side`.
    pub const fn on(&self, side: Side) -> Option<NodeId> {
        self.0[side.index()]
    }

    /// Sets the holder of the strips on `side`.
    pub fn set(&mut self, side: Side, holder: Option<NodeId>) {
        self.0[side.index()] = holder;
    }
}

impl Field<'_> for StripHolders {
    type Value = StripHolders;
    const LEN: usize = 4 * <u16 as Field>::LEN;
    fn read(r: &mut Reader<'_>, limits: &Limits) -> Result<StripHolders, WireError> {
        let mut h = StripHolders::default();
        for slot in h.0.iter_mut() {
            let id = r.field::<u16>(limits)?;
            *slot = (id != PROBE).then_some(id);
        }
        Ok(h)
    }
    fn write(v: &StripHolders, w: &mut Writer<'_>) -> Result<(), WireError> {
        StripHolders::check(v)?;
        for slot in v.0 {
            w.field::<u16>(&slot.unwrap_or(PROBE))?;
        }
        Ok(())
    }
    fn check(v: &StripHolders) -> Result<(), WireError> {
        if v.0.contains(&Some(PROBE)) {
            return Err(WireError::BadValue);
        }
        Ok(())
    }
}
