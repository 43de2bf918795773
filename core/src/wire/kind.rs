//! Message kinds: the `kind` byte of the frame header.

use super::WireError;

/// Message kinds, the `kind` byte of the frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
#[allow(missing_docs)] // one per `Message` variant, same name
pub enum Kind {
    Hello = 1,
    Register = 2,
    Unregister = 3,
    StealRequest = 4,
    StealReply = 5,
    StealTask = 6,
    Task = 7,
    NoTask = 8,
    TaskRequest = 9,
    Result = 10,
    Strips = 11,
    StripRequest = 12,
    Coverage = 13,
    FrameSubmit = 14,
    FrameDone = 15,
    LayerTask = 16,
    LayerResult = 17,
    Heartbeat = 18,
    Reject = 19,
    CodedTask = 20,
    CodedResult = 21,
    PictureChunk = 22,
    TileTask = 23,
    StripHolders = 24,
}

impl Kind {
    /// Every kind, in code order.
    pub const ALL: [Kind; 24] = [
        Kind::Hello,
        Kind::Register,
        Kind::Unregister,
        Kind::StealRequest,
        Kind::StealReply,
        Kind::StealTask,
        Kind::Task,
        Kind::NoTask,
        Kind::TaskRequest,
        Kind::Result,
        Kind::Strips,
        Kind::StripRequest,
        Kind::Coverage,
        Kind::FrameSubmit,
        Kind::FrameDone,
        Kind::LayerTask,
        Kind::LayerResult,
        Kind::Heartbeat,
        Kind::Reject,
        Kind::CodedTask,
        Kind::CodedResult,
        Kind::PictureChunk,
        Kind::TileTask,
        Kind::StripHolders,
    ];

    /// The kind with wire code `code`.
    pub fn from_u8(code: u8) -> Result<Kind, WireError> {
        match code {
            1..=24 => Ok(Kind::ALL[code as usize - 1]),
            _ => Err(WireError::UnknownKind),
        }
    }
}

impl From<Kind> for u8 {
    fn from(k: Kind) -> u8 {
        k as u8
    }
}
