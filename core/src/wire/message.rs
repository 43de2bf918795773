//! Message types carried in frame payloads.
//!
//! A [`Message`] borrows its tensors from the received payload (zero copy). Its payload layout
//! is stated once, in the table at the end of this file: each kind's fields in wire order,
//! each with its wire type (a private `Field` impl: length, read, write, check). [`Message::parse`],
//! [`Message::emit_prefix`], [`Message::prefix_len`], [`Message::check`] and
//! [`MAX_PREFIX_LEN`] are all derived from that table. Tensors are CHW `f32` values stored as
//! little-endian bytes ([`Tensor`]); a message's tensor or strips always come last, so their
//! bytes can be streamed after the fixed part.

use crate::ftp::Mode;
use crate::region::Region;

use super::cursor::{Field, Reader, Writer};
use super::holders::StripHolders;
use super::ids::{FrameKey, NodeId, Role};
use super::kind::Kind;
use super::picture::{PictureBytes, PictureFormat};
use super::strips::StripsView;
use super::tensor::Tensor;
use super::{Limits, WireError};

/// A protocol message; tensors borrow from the payload they were parsed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// First message on every connection: who the sender is.
    Hello {
        /// The sender's node id.
        node: NodeId,
        /// The sender's role.
        role: Role,
        /// Fingerprint of the model the sender runs (network, weights, fused layers, grid,
        /// kernel, policy): nodes that disagree would compute different tiles, so a listener
        /// refuses a `Hello` whose fingerprint is not its own.
        model: u64,
    },
    /// Data source → gateway: `frame` has `tiles` stealable tasks queued at the sender.
    Register {
        /// The frame.
        frame: FrameKey,
        /// Tasks left in the source's queue.
        tiles: u16,
    },
    /// Data source → gateway: `frame` has no stealable task left.
    Unregister {
        /// The frame.
        frame: FrameKey,
    },
    /// Thief → gateway: whom may I rob?
    StealRequest,
    /// Gateway → thief: a victim to rob, or none.
    StealReply {
        /// The victim, `None` when no source has work.
        victim: Option<NodeId>,
    },
    /// Thief → victim: give me one task.
    StealTask,
    /// A tile to compute: its layer-0 input region (the reply to `StealTask` or `TaskRequest`).
    Task {
        /// The frame.
        frame: FrameKey,
        /// Tile (task) id `i·M + j`.
        tile: u16,
        /// Plain or reuse computation.
        mode: Mode,
        /// The tile's layer-0 input region.
        input: Tensor<'a>,
    },
    /// A tile to compute from the frame's picture, which the sender shipped to the receiver
    /// before (`PictureChunk`s on the same connection): the receiver cuts the tile's layer-0
    /// input from its own decode of the picture. Otherwise as [`Message::Task`].
    TileTask {
        /// The frame.
        frame: FrameKey,
        /// Tile (task) id `i·M + j`.
        tile: u16,
        /// Plain or reuse computation.
        mode: Mode,
    },
    /// Data source → a node that will compute tiles of `frame`: bytes `offset..offset +
    /// data.len()` of the frame's picture as captured (`total` bytes in all, `width × height`
    /// pixels). Sent once per node and frame, in order, before the first `TileTask`.
    PictureChunk {
        /// The frame.
        frame: FrameKey,
        /// How the bytes encode the pixels.
        format: PictureFormat,
        /// Picture columns.
        width: u16,
        /// Picture rows.
        height: u16,
        /// Bytes of the whole picture.
        total: u32,
        /// Where this chunk starts in the picture.
        offset: u32,
        /// The chunk (at most [`MAX_PICTURE_CHUNK`](super::MAX_PICTURE_CHUNK) bytes).
        data: PictureBytes<'a>,
    },
    /// Reply to `StealTask` or `TaskRequest`: nothing to do.
    NoTask,
    /// Worker → gateway (WSH): give me a task.
    TaskRequest,
    /// A tile's output at the last fused layer.
    Result {
        /// The frame.
        frame: FrameKey,
        /// Tile id.
        tile: u16,
        /// The output region (uncropped).
        output: Tensor<'a>,
    },
    /// A level-0 tile's overlap strips (to the gateway cache or to a neighbour), or the reply to
    /// a `StripRequest`.
    Strips {
        /// The frame.
        frame: FrameKey,
        /// The level-0 tile the strips come from.
        tile: u16,
        /// The entries.
        strips: StripsView<'a>,
    },
    /// Ask for the strips of level-0 tile `tile` on the sides in `sides`.
    StripRequest {
        /// The frame.
        frame: FrameKey,
        /// The level-0 tile holding the strips.
        tile: u16,
        /// Bit `s.index()` set for each wanted [`Side`](crate::ftp::Side) `s` (bits 4..8 must be clear).
        sides: u8,
    },
    /// WST-S with `reuse = "link"`, data source → thief, right before the `Task` or `TileTask`
    /// of level-1 tile `tile` (sent `Plain`, with its whole input): which nodes hold the strips
    /// of its level-0 neighbours. The thief fetches them from there with `StripRequest`s (edge
    /// to edge) and runs the tile `Reuse`, or recomputes the overlap, whichever its link model
    /// says is cheaper.
    StripHolders {
        /// The frame.
        frame: FrameKey,
        /// The level-1 tile about to be lent.
        tile: u16,
        /// Per side, the node holding the neighbour's strips.
        holders: StripHolders,
    },
    /// Gateway → origin: the tile's result and strips are held by the gateway.
    Coverage {
        /// The frame.
        frame: FrameKey,
        /// Tile id.
        tile: u16,
    },
    /// Data source → gateway: the whole network input of a frame (WSH and BODP).
    FrameSubmit {
        /// The frame.
        frame: FrameKey,
        /// The input image tensor.
        input: Tensor<'a>,
    },
    /// Gateway → origin: the frame is finished (`complete` false when it was abandoned). The
    /// origin, or the gateway where it relayed the picture, passes it on to the nodes it
    /// shipped the frame's picture to, which drop what they hold of the frame (its picture,
    /// strips) instead of keeping it until the source's frame numbers move on.
    FrameDone {
        /// The frame.
        frame: FrameKey,
        /// True when every tile came back and the tail ran.
        complete: bool,
    },
    /// BODP: compute `output` rows of layer `layer` from `input` (stripe plus halo).
    LayerTask {
        /// The frame.
        frame: FrameKey,
        /// Layer index.
        layer: u8,
        /// Stripe index.
        stripe: u16,
        /// The output region to compute.
        output: Region,
        /// The input stripe with its halo.
        input: Tensor<'a>,
    },
    /// BODP: the computed stripe of layer `layer`.
    LayerResult {
        /// The frame.
        frame: FrameKey,
        /// Layer index.
        layer: u8,
        /// Stripe index.
        stripe: u16,
        /// The stripe's output.
        output: Tensor<'a>,
    },
    /// Liveness probe; carries nothing.
    Heartbeat,
    /// The receiver refuses the previous message (`code` is an application reason).
    Reject {
        /// Reason code.
        code: u16,
    },
    /// CDC gateway → worker: compute shard `shard` of coded layer `layer` on `input`
    /// (`channels` = the layer's input length, the region's area = its columns) and answer
    /// within `budget_us` of receipt; later results are useless to the gateway.
    CodedTask {
        /// The frame.
        frame: FrameKey,
        /// Coded layer index.
        layer: u8,
        /// Shard index (data shards first, then parities; replicas for 2MR).
        shard: u8,
        /// Time the gateway will wait for the result, µs.
        budget_us: u32,
        /// The layer's input, 4-byte little-endian words (`f32`, or `i32` in integer modes).
        input: Tensor<'a>,
    },
    /// CDC worker → gateway: the shard's result (`channels` = the shard's rows).
    CodedResult {
        /// The frame.
        frame: FrameKey,
        /// Coded layer index.
        layer: u8,
        /// Shard index.
        shard: u8,
        /// The result, 4-byte little-endian words (`f32`, or `i32` in integer modes).
        output: Tensor<'a>,
    },
}

impl<'a> Message<'a> {
    /// The frame this message is about, if any.
    pub const fn frame(&self) -> Option<FrameKey> {
        match *self {
            Message::Register { frame, .. }
            | Message::Unregister { frame }
            | Message::Task { frame, .. }
            | Message::TileTask { frame, .. }
            | Message::PictureChunk { frame, .. }
            | Message::Result { frame, .. }
            | Message::Strips { frame, .. }
            | Message::StripRequest { frame, .. }
            | Message::StripHolders { frame, .. }
            | Message::Coverage { frame, .. }
            | Message::FrameSubmit { frame, .. }
            | Message::FrameDone { frame, .. }
            | Message::LayerTask { frame, .. }
            | Message::LayerResult { frame, .. }
            | Message::CodedTask { frame, .. }
            | Message::CodedResult { frame, .. } => Some(frame),
            _ => None,
        }
    }

    /// The tile (or BODP stripe) this message is about, if any.
    pub const fn task(&self) -> Option<u16> {
        match *self {
            Message::Task { tile, .. }
            | Message::TileTask { tile, .. }
            | Message::Result { tile, .. }
            | Message::Strips { tile, .. }
            | Message::StripRequest { tile, .. }
            | Message::StripHolders { tile, .. }
            | Message::Coverage { tile, .. } => Some(tile),
            Message::LayerTask { stripe, .. } | Message::LayerResult { stripe, .. } => Some(stripe),
            _ => None,
        }
    }
}

impl<'a> Message<'a> {
    /// The tensor that ends the payload, if the message carries one.
    pub const fn tensor(&self) -> Option<Tensor<'a>> {
        match *self {
            Message::Task { input: t, .. }
            | Message::FrameSubmit { input: t, .. }
            | Message::LayerTask { input: t, .. }
            | Message::CodedTask { input: t, .. }
            | Message::Result { output: t, .. }
            | Message::LayerResult { output: t, .. }
            | Message::CodedResult { output: t, .. } => Some(t),
            _ => None,
        }
    }

    /// Parses the payload of a frame of kind `kind`, checking every length against `limits`.
    ///
    /// The whole payload must be consumed: extra bytes are [`WireError::TrailingBytes`].
    pub fn parse(kind: Kind, payload: &'a [u8], limits: &Limits) -> Result<Self, WireError> {
        if payload.len() > limits.max_payload as usize {
            return Err(WireError::Oversized);
        }
        let mut r = Reader::new(payload);
        let m = Message::read_fields(kind, &mut r, limits)?;
        if !r.rest().is_empty() {
            return Err(WireError::TrailingBytes);
        }
        Ok(m)
    }

    /// The bytes that end the payload after the prefix: a tensor's data, or the encoded strip
    /// entries; empty for other messages. They can be streamed from where they lie.
    pub fn trailing_data(&self) -> &'a [u8] {
        match self {
            Message::Strips { strips, .. } => strips.bytes,
            Message::PictureChunk { data, .. } => data.0,
            m => m.tensor().map_or(&[], |t| t.data),
        }
    }

    /// Payload length: `prefix_len() + trailing_data().len()`.
    pub fn buffer_len(&self) -> usize {
        self.prefix_len() + self.trailing_data().len()
    }

    /// Checks what [`Message::parse`] would reject: tensor sizes, inverted regions, side bits.
    pub fn check(&self) -> Result<(), WireError> {
        self.check_fields()
    }

    /// Writes the payload prefix into `buf`; returns [`Message::prefix_len`].
    ///
    /// The trailing tensor's `data` is not read: only its region and channels are written, so
    /// a streaming sender may describe a tensor whose bytes it produces later (see
    /// [`FrameEncoder`](super::FrameEncoder)). Likewise only the strip count of a `Strips`.
    pub fn emit_prefix(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let mut w = Writer::new(buf);
        self.write_fields(&mut w)?;
        debug_assert_eq!(w.pos(), self.prefix_len());
        Ok(w.pos())
    }

    /// Writes the whole payload into `buf`; returns [`Message::buffer_len`].
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        self.check()?;
        let n = self.buffer_len();
        let buf = buf.get_mut(..n).ok_or(WireError::BufferTooSmall)?;
        let p = self.emit_prefix(buf)?;
        buf[p..].copy_from_slice(self.trailing_data());
        Ok(n)
    }
}

/// A tile's mode: one byte, `0` plain, `1` reuse.
impl Field<'_> for Mode {
    type Value = Mode;
    const LEN: usize = 1;
    fn read(r: &mut Reader<'_>, limits: &Limits) -> Result<Mode, WireError> {
        match r.field::<u8>(limits)? {
            0 => Ok(Mode::Plain),
            1 => Ok(Mode::Reuse),
            _ => Err(WireError::BadValue),
        }
    }
    fn write(v: &Mode, w: &mut Writer<'_>) -> Result<(), WireError> {
        w.field::<u8>(&match v {
            Mode::Plain => 0,
            Mode::Reuse => 1,
        })
    }
}

/// A steal victim: a flag, then the node (`0` when there is none, anything else is refused).
impl Field<'_> for Option<NodeId> {
    type Value = Option<NodeId>;
    const LEN: usize = <bool as Field>::LEN + <NodeId as Field>::LEN;
    fn read(r: &mut Reader<'_>, limits: &Limits) -> Result<Option<NodeId>, WireError> {
        let some = r.field::<bool>(limits)?;
        let node = r.field::<NodeId>(limits)?;
        if !some && node != 0 {
            return Err(WireError::BadValue);
        }
        Ok(some.then_some(node))
    }
    fn write(v: &Option<NodeId>, w: &mut Writer<'_>) -> Result<(), WireError> {
        w.field::<bool>(&v.is_some())?;
        w.field::<NodeId>(&v.unwrap_or(0))
    }
}

/// A set of tile sides: one byte, bit [`Side::index`](crate::ftp::Side::index) per side (bits
/// 4..8 must be clear).
struct SideSet;

impl Field<'_> for SideSet {
    type Value = u8;
    const LEN: usize = 1;
    fn read(r: &mut Reader<'_>, limits: &Limits) -> Result<u8, WireError> {
        let s = r.field::<u8>(limits)?;
        SideSet::check(&s)?;
        Ok(s)
    }
    fn write(v: &u8, w: &mut Writer<'_>) -> Result<(), WireError> {
        SideSet::check(v)?;
        w.field::<u8>(v)
    }
    fn check(v: &u8) -> Result<(), WireError> {
        if *v >= 16 {
            return Err(WireError::BadValue);
        }
        Ok(())
    }
}

/// The largest of `lens` (a `const fn`: `Iterator::max` is not one).
const fn max_of(lens: &[usize]) -> usize {
    let (mut i, mut m) = (0, 0);
    while i < lens.len() {
        if lens[i] > m {
            m = lens[i];
        }
        i += 1;
    }
    m
}

/// Derives the codec of [`Message`] from its layout table: each kind's fields in wire order,
/// each with its wire type (`Region` and `Tensor` types stand for their [`Field`] impls;
/// `SideSet` is a `u8` with bits 4..8 clear). Every variant of `Message` and `Kind` must be
/// listed, and the match arms make the compiler check that.
macro_rules! layouts {
    ($($kind:ident { $($f:ident: $t:ty),* $(,)? })*) => {
        impl<'a> Message<'a> {
            /// The header kind of this message.
            pub const fn kind(&self) -> Kind {
                match self {
                    $(Message::$kind { .. } => Kind::$kind,)*
                }
            }

            /// Bytes of the payload before [`Message::trailing_data`]: the fixed fields and,
            /// for a tensor message, the tensor's descriptor.
            pub const fn prefix_len(&self) -> usize {
                match self {
                    $(Message::$kind { .. } => 0 $(+ <$t as Field>::LEN)*,)*
                }
            }

            fn read_fields(
                kind: Kind,
                r: &mut Reader<'a>,
                limits: &Limits,
            ) -> Result<Self, WireError> {
                // Struct expressions evaluate their fields in the order written: wire order.
                Ok(match kind {
                    $(Kind::$kind => Message::$kind { $($f: r.field::<$t>(limits)?,)* },)*
                })
            }

            fn write_fields(&self, w: &mut Writer<'_>) -> Result<(), WireError> {
                match self {
                    $(Message::$kind { $($f,)* } => { $(w.field::<$t>($f)?;)* })*
                }
                Ok(())
            }

            fn check_fields(&self) -> Result<(), WireError> {
                match self {
                    $(Message::$kind { $($f,)* } => { $(<$t as Field>::check($f)?;)* })*
                }
                Ok(())
            }
        }

        /// Largest [`Message::prefix_len`] of any message.
        pub const MAX_PREFIX_LEN: usize = max_of(&[$(0 $(+ <$t as Field>::LEN)*),*]);
    };
}

layouts! {
    Hello { node: NodeId, role: Role, model: u64 }
    Register { frame: FrameKey, tiles: u16 }
    Unregister { frame: FrameKey }
    StealRequest {}
    StealReply { victim: Option<NodeId> }
    StealTask {}
    Task { frame: FrameKey, tile: u16, mode: Mode, input: Tensor }
    NoTask {}
    TaskRequest {}
    Result { frame: FrameKey, tile: u16, output: Tensor }
    Strips { frame: FrameKey, tile: u16, strips: StripsView }
    StripRequest { frame: FrameKey, tile: u16, sides: SideSet }
    Coverage { frame: FrameKey, tile: u16 }
    FrameSubmit { frame: FrameKey, input: Tensor }
    FrameDone { frame: FrameKey, complete: bool }
    LayerTask { frame: FrameKey, layer: u8, stripe: u16, output: Region, input: Tensor }
    LayerResult { frame: FrameKey, layer: u8, stripe: u16, output: Tensor }
    Heartbeat {}
    Reject { code: u16 }
    CodedTask { frame: FrameKey, layer: u8, shard: u8, budget_us: u32, input: Tensor }
    CodedResult { frame: FrameKey, layer: u8, shard: u8, output: Tensor }
    PictureChunk {
        frame: FrameKey, format: PictureFormat, width: u16, height: u16, total: u32,
        offset: u32, data: PictureBytes,
    }
    TileTask { frame: FrameKey, tile: u16, mode: Mode }
    StripHolders { frame: FrameKey, tile: u16, holders: StripHolders }
}
