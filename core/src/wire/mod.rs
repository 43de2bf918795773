//! The Tessera wire protocol: framed, versioned, authenticated messages between cluster nodes.
//!
//! Every message travels in one *frame*: a fixed 32-byte header ([`Frame`], [`HeaderRepr`]), a
//! payload whose layout depends on the message kind ([`Message`]), and — on authenticated
//! frames — a 16-byte ChaCha20-Poly1305 tag. All integers and tensor values are little-endian
//! whatever the host.
//!
//! The contract follows smoltcp: after `check_len()` (or `new_checked`) no accessor of a view
//! panics; use `new_checked` on untrusted input and `new_unchecked` only when emitting into a
//! buffer you sized yourself. Parsing checks *meaning* (kinds, enum values, lengths against the
//! receiver's [`Limits`]) and reports a typed [`WireError`]: a malformed frame is never a panic
//! or an allocation. The round trip `emit → parse` is the specification.
//!
//! Layers, bottom up:
//! * the values messages carry: node ids and [`FrameKey`]s, the run's [`Policy`], [`Tensor`]s
//!   and overlap strips ([`StripsView`], [`StripsWriter`]), each with its wire form stated once
//!   (a private `Field` impl over bounds-checked cursors);
//! * [`message`]: [`Message`] payloads, one layout table from which [`Message::parse`],
//!   [`Message::emit`] and the lengths are derived; [`Kind`], the header's kind byte;
//! * [`frame`]: the header view [`Frame`] and [`HeaderRepr`] (byte table there);
//! * [`auth`]: ChaCha20-Poly1305 [`seal`] / [`open`], the incremental [`Sealer`], [`Key`],
//!   [`ReplayWindow`] and [`AuthStats`];
//! * [`encode`] / [`decode`] (and the stateful [`Sender`] / [`Receiver`]): a whole frame in one
//!   buffer;
//! * [`FrameEncoder`]: a frame pulled out chunk by chunk, tensors converted and sealed on the
//!   fly, so a large tensor is never copied into a frame buffer; [`FrameDecoder`]: stream bytes
//!   in, whole frames out, bounded by the caller's buffer;
//! * [`datagram`]: the other transport, for messages worth less late than lost: the
//!   datagram layout, a fragmenter and a reassembler with per-message deadlines.
//!
//! ```
//! use tessera_core::wire::{self, AuthStats, FrameKey, Key, Limits, Message, ReplayWindow};
//! let key = Key::new([7; 32]);
//! let msg = Message::Register { frame: FrameKey::new(2, 41), tiles: 9 };
//! let mut buf = [0u8; 128];
//! let n = wire::encode(&msg, 2, 1000, Some(&key), &mut buf)?;
//! let (mut window, mut stats) = (ReplayWindow::new(), AuthStats::default());
//! let (header, parsed) = wire::decode(&mut buf[..n], Some(&key), &Limits::LARGE, &mut window, &mut stats)?;
//! assert_eq!((header.sender, header.seq, parsed), (2, 1000, msg));
//! # Ok::<(), wire::WireError>(())
//! ```

use core::fmt;

pub mod auth;
mod codec;
mod cursor;
pub mod datagram;
mod decoder;
pub mod frame;
mod holders;
mod ids;
mod kind;
pub mod message;
mod picture;
mod policy;
mod precision;
mod stream;
mod strips;
mod tensor;

pub use auth::{open, seal, AuthStats, Key, ReplayWindow, Sealer};
pub use codec::{decode, encode, Receiver, Sender};
pub use decoder::FrameDecoder;
pub use frame::{Frame, HeaderRepr, FLAG_AUTH, HEADER_LEN, MAGIC, TAG_LEN, VERSION};
pub use holders::StripHolders;
pub use ids::{FrameKey, NodeId, Role, GATEWAY, PROBE};
pub use kind::Kind;
pub use message::{Message, MAX_PREFIX_LEN};
pub use picture::{PictureBytes, PictureFormat, MAX_PICTURE_CHUNK};
pub use policy::{ParsePolicyError, Policy};
pub use precision::{f16_from_f32, f16_to_f32, Precision};
pub use stream::{Body, FrameEncoder, StripSource};
pub use strips::{StripEntry, StripsIter, StripsView, StripsWriter, STRIP_DESC_LEN};
pub use tensor::{decode_f32, encode_f32, tensor_byte_len, Tensor, TENSOR_DESC_LEN, VALUE_LEN};

/// The receiver's bounds on what it accepts from the network.
///
/// Every length read from the wire is checked against these before it is used, so a peer cannot
/// make the receiver read past a buffer or accept a tensor larger than it planned for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted payload, in bytes (header and tag excluded).
    pub max_payload: u32,
    /// Largest accepted channel count of a tensor.
    pub max_channels: u32,
    /// Largest accepted coordinate of a region (every span end is `<= max_side`).
    pub max_side: u32,
}

impl Limits {
    /// Permissive bounds for tests and tools: 64 MiB payloads, 4096 channels, sides up to 4096.
    pub const LARGE: Limits = Limits {
        max_payload: 64 << 20,
        max_channels: 4096,
        max_side: 4096,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::LARGE
    }
}

/// Why bytes could not be parsed, emitted, opened or sealed as a Tessera frame.
///
/// One small `Copy` enum for the whole protocol: any of these on a received frame means the
/// connection is to be dropped (and, for [`WireError::Forged`] or [`WireError::Replayed`],
/// counted in [`AuthStats`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    /// The buffer ends before the structure it should hold.
    Truncated,
    /// Bytes are left over after the structure (a payload longer than its message).
    TrailingBytes,
    /// A declared length or dimension exceeds the receiver's [`Limits`].
    Oversized,
    /// The frame does not start with the protocol magic.
    BadMagic,
    /// The frame's protocol version is not supported.
    UnknownVersion,
    /// The frame's message kind is not known.
    UnknownKind,
    /// A field holds a value outside its range (enum tag, reserved bits, inverted region...).
    BadValue,
    /// A tensor's data length differs from `4 × channels × area`.
    TensorSize,
    /// The output buffer is too small for what is being emitted.
    BufferTooSmall,
    /// The header fields disagree with the payload (frame key, tile, kind).
    Inconsistent,
    /// The authentication tag does not match: wrong key, or a forged or corrupted frame.
    Forged,
    /// The frame's sequence number was already accepted from that sender, or is too old.
    Replayed,
    /// An unauthenticated frame reached a receiver that requires authentication, or the reverse.
    AuthMode,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WireError::Truncated => "frame is truncated",
            WireError::TrailingBytes => "payload has trailing bytes",
            WireError::Oversized => "declared length exceeds the receiver's limits",
            WireError::BadMagic => "bad frame magic",
            WireError::UnknownVersion => "unsupported protocol version",
            WireError::UnknownKind => "unknown message kind",
            WireError::BadValue => "field value out of range",
            WireError::TensorSize => "tensor data length does not match its shape",
            WireError::BufferTooSmall => "output buffer too small",
            WireError::Inconsistent => "frame header disagrees with its payload",
            WireError::Forged => "authentication tag mismatch (forged frame or wrong key)",
            WireError::Replayed => "replayed or stale sequence number",
            WireError::AuthMode => "authentication mode mismatch (secure vs insecure)",
        })
    }
}

impl core::error::Error for WireError {}
