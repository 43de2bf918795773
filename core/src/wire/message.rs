//! Message types carried in frame payloads.
//!
//! A [`Message`] borrows its tensors from the received payload (zero copy); its wire layout is
//! given by [`Message::parse`] / [`Message::emit`]. Tensors are CHW `f32` values stored as
//! little-endian bytes ([`Tensor`]).

use crate::ftp::{Mode, Side};
use crate::region::{Region, Span};
use crate::tensor::FeatureView;

use super::WireError;

/// A cluster node: `0` is the gateway, edges are numbered from `1`.
pub type NodeId = u16;

/// The gateway's node id.
pub const GATEWAY: NodeId = 0;

/// Names one frame of the cluster: frames are numbered per data source (`origin`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct FrameKey {
    /// The node whose data source produced the frame.
    pub origin: NodeId,
    /// The frame's number at that source.
    pub number: u32,
}

impl FrameKey {
    /// The frame `number` of source `origin`.
    pub const fn new(origin: NodeId, number: u32) -> Self {
        FrameKey { origin, number }
    }
}

/// What a node is in the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The coordinator: registry, strip cache, result merge and network tail.
    Gateway,
    /// A worker (and possibly a data source).
    Edge,
}

/// Scheduling policy of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Policy {
    /// Work sharing: the gateway queues every tile and workers pull.
    Wsh,
    /// Work stealing: thieves rob data-source edges; the gateway keeps the victim registry.
    Wst,
    /// Work stealing with data-reuse scheduling (overlap strips exchanged).
    WstS,
    /// The MoDNN baseline: 1-D biased partition, layer-by-layer through the gateway.
    Bodp,
}

/// How a tile is to be computed (the wire form of [`ftp::Mode`](crate::ftp::Mode)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum TileMode {
    /// Whole dependency cone, no strips needed.
    #[default]
    Plain,
    /// Reduced regions; the worker needs the neighbours' overlap strips.
    Reuse,
}

impl From<Mode> for TileMode {
    fn from(m: Mode) -> Self {
        match m {
            Mode::Plain => TileMode::Plain,
            Mode::Reuse => TileMode::Reuse,
        }
    }
}

impl From<TileMode> for Mode {
    fn from(m: TileMode) -> Self {
        match m {
            TileMode::Plain => Mode::Plain,
            TileMode::Reuse => Mode::Reuse,
        }
    }
}

/// Size in bytes of one tensor value on the wire.
pub const VALUE_LEN: usize = 4;

/// A CHW `f32` tensor over `channels × region`, as little-endian bytes borrowed from a buffer.
///
/// `data.len()` must be `4 × channels × region.area()`; [`Tensor::new`] and the parser check it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tensor<'a> {
    /// The region of the feature map the values cover (absolute coordinates).
    pub region: Region,
    /// Number of channels.
    pub channels: u32,
    /// `channels × height × width` little-endian `f32`, channel-major, then row, then column.
    pub data: &'a [u8],
}

/// Bytes needed for `channels × region` values, or `None` if it overflows `usize`.
pub fn tensor_byte_len(region: &Region, channels: u32) -> Option<usize> {
    (region.width() as usize)
        .checked_mul(region.height() as usize)?
        .checked_mul(channels as usize)?
        .checked_mul(VALUE_LEN)
}

impl<'a> Tensor<'a> {
    /// A tensor over `data`, which must hold exactly `4 × channels × area` bytes.
    pub fn new(region: Region, channels: u32, data: &'a [u8]) -> Result<Self, WireError> {
        let t = Tensor {
            region,
            channels,
            data,
        };
        t.check()?;
        Ok(t)
    }

    /// Checks the data length against the shape.
    pub fn check(&self) -> Result<(), WireError> {
        match tensor_byte_len(&self.region, self.channels) {
            Some(n) if n == self.data.len() => Ok(()),
            _ => Err(WireError::TensorSize),
        }
    }

    /// Number of `f32` values (`data.len() / 4`).
    pub const fn len(&self) -> usize {
        self.data.len() / VALUE_LEN
    }

    /// True when the tensor holds no value.
    pub const fn is_empty(&self) -> bool {
        self.data.len() < VALUE_LEN
    }

    /// The values, decoded one by one.
    pub fn values(&self) -> impl Iterator<Item = f32> + 'a {
        self.data
            .chunks_exact(VALUE_LEN)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Decodes the values into the first `self.len()` elements of `out`; returns that count.
    pub fn read_f32(&self, out: &mut [f32]) -> Result<usize, WireError> {
        let n = self.len();
        let out = out.get_mut(..n).ok_or(WireError::BufferTooSmall)?;
        decode_f32(self.data, out);
        Ok(n)
    }

    /// Encodes `values` (CHW over `channels × region`) into `buf` and views the result.
    pub fn from_f32(
        region: Region,
        channels: u32,
        values: &[f32],
        buf: &'a mut [u8],
    ) -> Result<Tensor<'a>, WireError> {
        let n = tensor_byte_len(&region, channels).ok_or(WireError::TensorSize)?;
        if values.len() * VALUE_LEN != n {
            return Err(WireError::TensorSize);
        }
        let buf = buf.get_mut(..n).ok_or(WireError::BufferTooSmall)?;
        encode_f32(values, buf);
        Ok(Tensor {
            region,
            channels,
            data: buf,
        })
    }

    /// Encodes a feature view into `buf` and views the result.
    pub fn from_view(view: &FeatureView<'_>, buf: &'a mut [u8]) -> Result<Tensor<'a>, WireError> {
        Tensor::from_f32(view.region(), view.channels(), view.data(), buf)
    }
}

/// Writes `values` as little-endian bytes into `out` (`out.len()` must be `4 × values.len()`;
/// extra bytes of either side are left alone).
pub fn encode_f32(values: &[f32], out: &mut [u8]) {
    for (v, b) in values.iter().zip(out.chunks_exact_mut(VALUE_LEN)) {
        b.copy_from_slice(&v.to_le_bytes());
    }
}

/// Reads little-endian `f32` bytes into `out` (pairs up to the shorter of both).
pub fn decode_f32(bytes: &[u8], out: &mut [f32]) {
    for (b, v) in bytes.chunks_exact(VALUE_LEN).zip(out.iter_mut()) {
        *v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
}

/// One overlap strip of a level-0 tile: the output of fused layer `layer` along `side`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StripEntry<'a> {
    /// Fused layer whose output the strip holds.
    pub layer: u8,
    /// The tile side (towards the neighbour that needs it).
    pub side: Side,
    /// The strip values.
    pub tensor: Tensor<'a>,
}

/// The strip entries of a [`Message::Strips`] payload, validated, iterated without copying.
///
/// Build one for sending with [`StripsView::writer`]; a received one comes from
/// [`Message::parse`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StripsView<'a> {
    pub(crate) count: u16,
    pub(crate) bytes: &'a [u8],
}

impl<'a> StripsView<'a> {
    /// No strips.
    pub const EMPTY: StripsView<'static> = StripsView {
        count: 0,
        bytes: &[],
    };

    /// Number of entries.
    pub const fn count(&self) -> u16 {
        self.count
    }

    /// The encoded entries (without the leading count).
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The entries in wire order.
    pub fn iter(&self) -> StripsIter<'a> {
        StripsIter {
            rest: self.bytes,
            left: self.count,
        }
    }
}

impl<'a> IntoIterator for StripsView<'a> {
    type Item = StripEntry<'a>;
    type IntoIter = StripsIter<'a>;
    fn into_iter(self) -> StripsIter<'a> {
        self.iter()
    }
}

/// Iterator over the entries of a [`StripsView`].
#[derive(Clone, Debug)]
pub struct StripsIter<'a> {
    pub(crate) rest: &'a [u8],
    pub(crate) left: u16,
}

impl<'a> Iterator for StripsIter<'a> {
    type Item = StripEntry<'a>;

    fn next(&mut self) -> Option<StripEntry<'a>> {
        if self.left == 0 {
            return None;
        }
        // The bytes were validated when the view was built, so this cannot fail; stop if it does.
        let mut r = Reader::new(self.rest);
        match r.strip_entry(&NO_LIMITS) {
            Ok(e) => {
                self.left -= 1;
                self.rest = r.rest();
                Some(e)
            }
            Err(_) => {
                self.left = 0;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

/// Limits used to re-read bytes that were already checked.
const NO_LIMITS: super::Limits = super::Limits {
    max_payload: u32::MAX,
    max_channels: u32::MAX,
    max_side: u32::MAX,
};

/// A bounds-checked little-endian cursor over a payload.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

#[allow(dead_code)] // the codec lands next
impl<'a> Reader<'a> {
    pub(crate) const fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    pub(crate) const fn rest(&self) -> &'a [u8] {
        self.buf
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.buf.len() {
            return Err(WireError::Truncated);
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn region(&mut self, limits: &super::Limits) -> Result<Region, WireError> {
        let (x0, x1, y0, y1) = (self.u32()?, self.u32()?, self.u32()?, self.u32()?);
        let r = Region::new(Span::new(x0, x1), Span::new(y0, y1));
        check_region(&r, limits)?;
        Ok(r)
    }

    pub(crate) fn tensor(&mut self, limits: &super::Limits) -> Result<Tensor<'a>, WireError> {
        let region = self.region(limits)?;
        let channels = self.u32()?;
        if channels > limits.max_channels {
            return Err(WireError::Oversized);
        }
        let n = tensor_byte_len(&region, channels).ok_or(WireError::Oversized)?;
        if n > limits.max_payload as usize {
            return Err(WireError::Oversized);
        }
        if n > self.buf.len() {
            return Err(WireError::TensorSize);
        }
        Ok(Tensor {
            region,
            channels,
            data: self.take(n)?,
        })
    }

    pub(crate) fn strip_entry(
        &mut self,
        limits: &super::Limits,
    ) -> Result<StripEntry<'a>, WireError> {
        let layer = self.u8()?;
        let side = side_from_u8(self.u8()?)?;
        let tensor = self.tensor(limits)?;
        Ok(StripEntry {
            layer,
            side,
            tensor,
        })
    }
}

/// A region is valid on the wire when no span is inverted and every end is within the limits.
pub(crate) fn check_region(r: &Region, limits: &super::Limits) -> Result<(), WireError> {
    if r.x.start > r.x.end || r.y.start > r.y.end {
        return Err(WireError::BadValue);
    }
    if r.x.end > limits.max_side || r.y.end > limits.max_side {
        return Err(WireError::Oversized);
    }
    Ok(())
}

/// The side with wire code `code` (its [`Side::index`]).
pub(crate) fn side_from_u8(code: u8) -> Result<Side, WireError> {
    Side::ALL
        .get(code as usize)
        .copied()
        .ok_or(WireError::BadValue)
}

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
}

impl Kind {
    /// Every kind, in code order.
    pub const ALL: [Kind; 19] = [
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
    ];

    /// The kind with wire code `code`.
    pub fn from_u8(code: u8) -> Result<Kind, WireError> {
        match code {
            1..=19 => Ok(Kind::ALL[code as usize - 1]),
            _ => Err(WireError::UnknownKind),
        }
    }
}

impl From<Kind> for u8 {
    fn from(k: Kind) -> u8 {
        k as u8
    }
}

/// A protocol message; tensors borrow from the payload they were parsed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// First message on every connection: who the sender is.
    Hello {
        /// The sender's node id.
        node: NodeId,
        /// The sender's role.
        role: Role,
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
        mode: TileMode,
        /// The tile's layer-0 input region.
        input: Tensor<'a>,
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
        /// Bit `s.index()` set for each wanted [`Side`] `s` (bits 4..8 must be clear).
        sides: u8,
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
    /// Gateway → origin: the frame is finished (`complete` false when it was abandoned).
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
}

impl Message<'_> {
    /// The header kind of this message.
    pub const fn kind(&self) -> Kind {
        match self {
            Message::Hello { .. } => Kind::Hello,
            Message::Register { .. } => Kind::Register,
            Message::Unregister { .. } => Kind::Unregister,
            Message::StealRequest => Kind::StealRequest,
            Message::StealReply { .. } => Kind::StealReply,
            Message::StealTask => Kind::StealTask,
            Message::Task { .. } => Kind::Task,
            Message::NoTask => Kind::NoTask,
            Message::TaskRequest => Kind::TaskRequest,
            Message::Result { .. } => Kind::Result,
            Message::Strips { .. } => Kind::Strips,
            Message::StripRequest { .. } => Kind::StripRequest,
            Message::Coverage { .. } => Kind::Coverage,
            Message::FrameSubmit { .. } => Kind::FrameSubmit,
            Message::FrameDone { .. } => Kind::FrameDone,
            Message::LayerTask { .. } => Kind::LayerTask,
            Message::LayerResult { .. } => Kind::LayerResult,
            Message::Heartbeat => Kind::Heartbeat,
            Message::Reject { .. } => Kind::Reject,
        }
    }

    /// The frame this message is about, if any.
    pub const fn frame(&self) -> Option<FrameKey> {
        match *self {
            Message::Register { frame, .. }
            | Message::Unregister { frame }
            | Message::Task { frame, .. }
            | Message::Result { frame, .. }
            | Message::Strips { frame, .. }
            | Message::StripRequest { frame, .. }
            | Message::Coverage { frame, .. }
            | Message::FrameSubmit { frame, .. }
            | Message::FrameDone { frame, .. }
            | Message::LayerTask { frame, .. }
            | Message::LayerResult { frame, .. } => Some(frame),
            _ => None,
        }
    }

    /// The tile (or BODP stripe) this message is about, if any.
    pub const fn task(&self) -> Option<u16> {
        match *self {
            Message::Task { tile, .. }
            | Message::Result { tile, .. }
            | Message::Strips { tile, .. }
            | Message::StripRequest { tile, .. }
            | Message::Coverage { tile, .. } => Some(tile),
            Message::LayerTask { stripe, .. } | Message::LayerResult { stripe, .. } => {
                Some(stripe)
            }
            _ => None,
        }
    }
}
