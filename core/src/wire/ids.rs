//! Who and what a message is about: node ids, node roles and frame keys.

use core::fmt;

use super::cursor::{get_u16, get_u32, put, Field, Reader, Writer};
use super::{Limits, WireError};

/// A cluster node: `0` is the gateway, edges are numbered from `1`.
pub type NodeId = u16;

/// The gateway's node id.
pub const GATEWAY: NodeId = 0;

/// The sender id of a probe `Hello` ([`Role::Probe`]): no node may have it.
pub const PROBE: NodeId = NodeId::MAX;

/// Names one frame of the cluster: frames are numbered per data source (`origin`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct FrameKey {
    /// The node whose data source produced the frame.
    pub origin: NodeId,
    /// The frame's number at that source.
    pub number: u32,
}

/// `origin.number`, as the CLI and the logs name frames.
impl fmt::Display for FrameKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.origin, self.number)
    }
}

impl FrameKey {
    /// The frame `number` of source `origin`.
    pub const fn new(origin: NodeId, number: u32) -> Self {
        FrameKey { origin, number }
    }
}

/// A frame key on the wire: origin, then number.
mod field {
    use core::ops::Range;

    pub const ORIGIN: Range<usize> = 0..2;
    pub const NUMBER: Range<usize> = 2..6;
    pub const LEN: usize = NUMBER.end;
}

impl Field<'_> for FrameKey {
    type Value = FrameKey;
    const LEN: usize = field::LEN;
    fn read(r: &mut Reader<'_>, _: &Limits) -> Result<FrameKey, WireError> {
        let b = r.take(field::LEN)?;
        Ok(FrameKey {
            origin: get_u16(b, field::ORIGIN),
            number: get_u32(b, field::NUMBER),
        })
    }
    fn write(k: &FrameKey, w: &mut Writer<'_>) -> Result<(), WireError> {
        let b = w.slot(field::LEN)?;
        put(b, field::ORIGIN, &k.origin.to_le_bytes());
        put(b, field::NUMBER, &k.number.to_le_bytes());
        Ok(())
    }
}

/// What a node is in the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The coordinator: registry, strip cache, result merge and network tail.
    Gateway,
    /// A worker (and possibly a data source).
    Edge,
    /// Not a node: a diagnostic (`tessera check`) asking a node who it is. A node answers a
    /// verified probe `Hello` with its own and closes the connection.
    Probe,
}

impl Role {
    /// Every role, in wire-code order.
    pub const ALL: [Role; 3] = [Role::Gateway, Role::Edge, Role::Probe];

    /// Wire code (index in [`Role::ALL`]).
    pub const fn code(self) -> u8 {
        match self {
            Role::Gateway => 0,
            Role::Edge => 1,
            Role::Probe => 2,
        }
    }

    /// The role with wire code `code`.
    pub fn from_code(code: u8) -> Result<Role, WireError> {
        Role::ALL
            .get(code as usize)
            .copied()
            .ok_or(WireError::BadValue)
    }
}

/// A role on the wire: its one-byte code.
impl Field<'_> for Role {
    type Value = Role;
    const LEN: usize = 1;
    fn read(r: &mut Reader<'_>, limits: &Limits) -> Result<Role, WireError> {
        Role::from_code(r.field::<u8>(limits)?)
    }
    fn write(v: &Role, w: &mut Writer<'_>) -> Result<(), WireError> {
        w.field::<u8>(&v.code())
    }
}
