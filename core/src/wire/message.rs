//! Message types carried in frame payloads.
//!
//! A [`Message`] borrows its tensors from the received payload (zero copy); its wire layout is
//! given by [`Message::parse`] / [`Message::emit`]. Tensors are CHW `f32` values stored as
//! little-endian bytes ([`Tensor`]).

use core::fmt;

use crate::ftp::{Mode, Side};
use crate::region::{Region, Span};
use crate::tensor::FeatureView;

use super::WireError;

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

    /// Views `bytes` as exactly `count` encoded entries (as kept by a strip cache), checking
    /// each against `limits`.
    pub fn new_checked(
        count: u16,
        bytes: &'a [u8],
        limits: &super::Limits,
    ) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        for _ in 0..count {
            r.strip_entry(limits)?;
        }
        if !r.rest().is_empty() {
            return Err(WireError::TrailingBytes);
        }
        Ok(StripsView { count, bytes })
    }

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

impl<'a> Reader<'a> {
    pub(crate) const fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    fn frame_key(&mut self) -> Result<FrameKey, WireError> {
        Ok(FrameKey {
            origin: self.u16()?,
            number: self.u32()?,
        })
    }

    fn flag(&mut self) -> Result<bool, WireError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(WireError::BadValue),
        }
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

    pub(crate) fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(self.array()?))
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
    CodedTask = 20,
    CodedResult = 21,
}

impl Kind {
    /// Every kind, in code order.
    pub const ALL: [Kind; 21] = [
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
    ];

    /// The kind with wire code `code`.
    pub fn from_u8(code: u8) -> Result<Kind, WireError> {
        match code {
            1..=21 => Ok(Kind::ALL[code as usize - 1]),
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
            Message::CodedTask { .. } => Kind::CodedTask,
            Message::CodedResult { .. } => Kind::CodedResult,
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
            | Message::Result { tile, .. }
            | Message::Strips { tile, .. }
            | Message::StripRequest { tile, .. }
            | Message::Coverage { tile, .. } => Some(tile),
            Message::LayerTask { stripe, .. } | Message::LayerResult { stripe, .. } => Some(stripe),
            _ => None,
        }
    }
}

/// Bytes of a tensor's descriptor on the wire (region `x0 x1 y0 y1`, channels), before its data.
pub const TENSOR_DESC_LEN: usize = 20;
/// Bytes of a strip entry's descriptor (layer, side, tensor descriptor), before its data.
pub const STRIP_DESC_LEN: usize = 2 + TENSOR_DESC_LEN;
/// Largest [`Message::prefix_len`] of any message.
pub const MAX_PREFIX_LEN: usize = 6 + 1 + 2 + 16 + TENSOR_DESC_LEN;

/// A bounds-checked little-endian writer into a caller's buffer.
pub(crate) struct Writer<'b> {
    buf: &'b mut [u8],
    pos: usize,
}

impl<'b> Writer<'b> {
    pub(crate) fn new(buf: &'b mut [u8]) -> Self {
        Writer { buf, pos: 0 }
    }

    pub(crate) const fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) -> Result<(), WireError> {
        let end = self
            .pos
            .checked_add(b.len())
            .ok_or(WireError::BufferTooSmall)?;
        self.buf
            .get_mut(self.pos..end)
            .ok_or(WireError::BufferTooSmall)?
            .copy_from_slice(b);
        self.pos = end;
        Ok(())
    }

    /// Reserves `n` bytes and returns them for the caller to fill.
    pub(crate) fn slot(&mut self, n: usize) -> Result<&mut [u8], WireError> {
        let end = self.pos.checked_add(n).ok_or(WireError::BufferTooSmall)?;
        let s = self
            .buf
            .get_mut(self.pos..end)
            .ok_or(WireError::BufferTooSmall)?;
        self.pos = end;
        Ok(s)
    }

    pub(crate) fn u8(&mut self, v: u8) -> Result<(), WireError> {
        self.bytes(&[v])
    }

    pub(crate) fn u16(&mut self, v: u16) -> Result<(), WireError> {
        self.bytes(&v.to_le_bytes())
    }

    pub(crate) fn u32(&mut self, v: u32) -> Result<(), WireError> {
        self.bytes(&v.to_le_bytes())
    }

    pub(crate) fn u64(&mut self, v: u64) -> Result<(), WireError> {
        self.bytes(&v.to_le_bytes())
    }

    fn frame_key(&mut self, k: FrameKey) -> Result<(), WireError> {
        self.u16(k.origin)?;
        self.u32(k.number)
    }

    pub(crate) fn region(&mut self, r: &Region) -> Result<(), WireError> {
        if r.x.start > r.x.end || r.y.start > r.y.end {
            return Err(WireError::BadValue);
        }
        for v in [r.x.start, r.x.end, r.y.start, r.y.end] {
            self.u32(v)?;
        }
        Ok(())
    }

    /// Writes a tensor descriptor (not its data).
    pub(crate) fn tensor_desc(&mut self, region: &Region, channels: u32) -> Result<(), WireError> {
        self.region(region)?;
        self.u32(channels)
    }
}

fn role_code(r: Role) -> u8 {
    match r {
        Role::Gateway => 0,
        Role::Edge => 1,
        Role::Probe => 2,
    }
}

fn mode_code(m: TileMode) -> u8 {
    match m {
        TileMode::Plain => 0,
        TileMode::Reuse => 1,
    }
}

impl Policy {
    /// Every policy, in code order.
    pub const ALL: [Policy; 4] = [Policy::Wsh, Policy::Wst, Policy::WstS, Policy::Bodp];

    /// Wire code (index in [`Policy::ALL`]).
    pub const fn code(self) -> u8 {
        match self {
            Policy::Wsh => 0,
            Policy::Wst => 1,
            Policy::WstS => 2,
            Policy::Bodp => 3,
        }
    }

    /// The policy with wire code `code`.
    pub fn from_code(code: u8) -> Result<Policy, WireError> {
        Policy::ALL
            .get(code as usize)
            .copied()
            .ok_or(WireError::BadValue)
    }
}

/// The trailing tensor of a message, if its payload ends in one.
fn trailing_tensor<'a>(m: &Message<'a>) -> Option<Tensor<'a>> {
    match *m {
        Message::Task { input, .. }
        | Message::FrameSubmit { input, .. }
        | Message::LayerTask { input, .. }
        | Message::CodedTask { input, .. } => Some(input),
        Message::Result { output, .. }
        | Message::LayerResult { output, .. }
        | Message::CodedResult { output, .. } => Some(output),
        _ => None,
    }
}

impl<'a> Message<'a> {
    /// Parses the payload of a frame of kind `kind`, checking every length against `limits`.
    ///
    /// The whole payload must be consumed: extra bytes are [`WireError::TrailingBytes`].
    pub fn parse(kind: Kind, payload: &'a [u8], limits: &super::Limits) -> Result<Self, WireError> {
        if payload.len() > limits.max_payload as usize {
            return Err(WireError::Oversized);
        }
        let mut r = Reader::new(payload);
        let m = match kind {
            Kind::Hello => Message::Hello {
                node: r.u16()?,
                role: match r.u8()? {
                    0 => Role::Gateway,
                    1 => Role::Edge,
                    2 => Role::Probe,
                    _ => return Err(WireError::BadValue),
                },
                model: r.u64()?,
            },
            Kind::Register => Message::Register {
                frame: r.frame_key()?,
                tiles: r.u16()?,
            },
            Kind::Unregister => Message::Unregister {
                frame: r.frame_key()?,
            },
            Kind::StealRequest => Message::StealRequest,
            Kind::StealReply => {
                let some = r.flag()?;
                let node = r.u16()?;
                if !some && node != 0 {
                    return Err(WireError::BadValue);
                }
                Message::StealReply {
                    victim: some.then_some(node),
                }
            }
            Kind::StealTask => Message::StealTask,
            Kind::Task => Message::Task {
                frame: r.frame_key()?,
                tile: r.u16()?,
                mode: match r.u8()? {
                    0 => TileMode::Plain,
                    1 => TileMode::Reuse,
                    _ => return Err(WireError::BadValue),
                },
                input: r.tensor(limits)?,
            },
            Kind::NoTask => Message::NoTask,
            Kind::TaskRequest => Message::TaskRequest,
            Kind::Result => Message::Result {
                frame: r.frame_key()?,
                tile: r.u16()?,
                output: r.tensor(limits)?,
            },
            Kind::Strips => {
                let frame = r.frame_key()?;
                let tile = r.u16()?;
                let count = r.u16()?;
                let bytes = r.rest();
                for _ in 0..count {
                    r.strip_entry(limits)?;
                }
                let used = bytes.len() - r.rest().len();
                Message::Strips {
                    frame,
                    tile,
                    strips: StripsView {
                        count,
                        bytes: &bytes[..used],
                    },
                }
            }
            Kind::StripRequest => Message::StripRequest {
                frame: r.frame_key()?,
                tile: r.u16()?,
                sides: match r.u8()? {
                    s if s < 16 => s,
                    _ => return Err(WireError::BadValue),
                },
            },
            Kind::Coverage => Message::Coverage {
                frame: r.frame_key()?,
                tile: r.u16()?,
            },
            Kind::FrameSubmit => Message::FrameSubmit {
                frame: r.frame_key()?,
                input: r.tensor(limits)?,
            },
            Kind::FrameDone => Message::FrameDone {
                frame: r.frame_key()?,
                complete: r.flag()?,
            },
            Kind::LayerTask => Message::LayerTask {
                frame: r.frame_key()?,
                layer: r.u8()?,
                stripe: r.u16()?,
                output: r.region(limits)?,
                input: r.tensor(limits)?,
            },
            Kind::LayerResult => Message::LayerResult {
                frame: r.frame_key()?,
                layer: r.u8()?,
                stripe: r.u16()?,
                output: r.tensor(limits)?,
            },
            Kind::Heartbeat => Message::Heartbeat,
            Kind::Reject => Message::Reject { code: r.u16()? },
            Kind::CodedTask => Message::CodedTask {
                frame: r.frame_key()?,
                layer: r.u8()?,
                shard: r.u8()?,
                budget_us: r.u32()?,
                input: r.tensor(limits)?,
            },
            Kind::CodedResult => Message::CodedResult {
                frame: r.frame_key()?,
                layer: r.u8()?,
                shard: r.u8()?,
                output: r.tensor(limits)?,
            },
        };
        if !r.rest().is_empty() {
            return Err(WireError::TrailingBytes);
        }
        Ok(m)
    }

    /// Bytes of the payload before [`Message::trailing_data`]: the fixed fields and, for a
    /// tensor message, the tensor's descriptor.
    pub fn prefix_len(&self) -> usize {
        match self {
            Message::Hello { .. } => 11,
            Message::Register { .. } => 8,
            Message::Unregister { .. } => 6,
            Message::StealRequest
            | Message::StealTask
            | Message::NoTask
            | Message::TaskRequest
            | Message::Heartbeat => 0,
            Message::StealReply { .. } => 3,
            Message::Task { .. } => 9 + TENSOR_DESC_LEN,
            Message::Result { .. } => 8 + TENSOR_DESC_LEN,
            Message::Strips { .. } => 10,
            Message::StripRequest { .. } => 9,
            Message::Coverage { .. } => 8,
            Message::FrameSubmit { .. } => 6 + TENSOR_DESC_LEN,
            Message::FrameDone { .. } => 7,
            Message::LayerTask { .. } => 9 + 16 + TENSOR_DESC_LEN,
            Message::LayerResult { .. } => 9 + TENSOR_DESC_LEN,
            Message::Reject { .. } => 2,
            Message::CodedTask { .. } => 12 + TENSOR_DESC_LEN,
            Message::CodedResult { .. } => 8 + TENSOR_DESC_LEN,
        }
    }

    /// The bytes that end the payload after the prefix: a tensor's data, or the encoded strip
    /// entries; empty for other messages. They can be streamed from where they lie.
    pub fn trailing_data(&self) -> &'a [u8] {
        match self {
            Message::Strips { strips, .. } => strips.bytes,
            m => trailing_tensor(m).map_or(&[], |t| t.data),
        }
    }

    /// Payload length: `prefix_len() + trailing_data().len()`.
    pub fn buffer_len(&self) -> usize {
        self.prefix_len() + self.trailing_data().len()
    }

    /// Checks what [`Message::parse`] would reject: tensor sizes, inverted regions, side bits.
    pub fn check(&self) -> Result<(), WireError> {
        if let Some(t) = trailing_tensor(self) {
            t.check()?;
        }
        if let Message::LayerTask { output: r, .. } = self {
            if r.x.start > r.x.end || r.y.start > r.y.end {
                return Err(WireError::BadValue);
            }
        }
        if let Message::StripRequest { sides, .. } = self {
            if *sides >= 16 {
                return Err(WireError::BadValue);
            }
        }
        Ok(())
    }

    /// Writes the payload prefix into `buf`; returns [`Message::prefix_len`].
    ///
    /// The trailing tensor's `data` is not read: only its region and channels are written, so
    /// a streaming sender may describe a tensor whose bytes it produces later (see
    /// [`FrameEncoder`](super::FrameEncoder)).
    pub fn emit_prefix(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let mut w = Writer::new(buf);
        match *self {
            Message::Hello { node, role, model } => {
                w.u16(node)?;
                w.u8(role_code(role))?;
                w.u64(model)?;
            }
            Message::Register { frame, tiles } => {
                w.frame_key(frame)?;
                w.u16(tiles)?;
            }
            Message::Unregister { frame } => w.frame_key(frame)?,
            Message::StealRequest
            | Message::StealTask
            | Message::NoTask
            | Message::TaskRequest
            | Message::Heartbeat => {}
            Message::StealReply { victim } => {
                w.u8(victim.is_some() as u8)?;
                w.u16(victim.unwrap_or(0))?;
            }
            Message::Task {
                frame,
                tile,
                mode,
                input,
            } => {
                w.frame_key(frame)?;
                w.u16(tile)?;
                w.u8(mode_code(mode))?;
                w.tensor_desc(&input.region, input.channels)?;
            }
            Message::Result {
                frame,
                tile,
                output,
            } => {
                w.frame_key(frame)?;
                w.u16(tile)?;
                w.tensor_desc(&output.region, output.channels)?;
            }
            Message::Strips {
                frame,
                tile,
                strips,
            } => {
                w.frame_key(frame)?;
                w.u16(tile)?;
                w.u16(strips.count)?;
            }
            Message::StripRequest { frame, tile, sides } => {
                if sides >= 16 {
                    return Err(WireError::BadValue);
                }
                w.frame_key(frame)?;
                w.u16(tile)?;
                w.u8(sides)?;
            }
            Message::Coverage { frame, tile } => {
                w.frame_key(frame)?;
                w.u16(tile)?;
            }
            Message::FrameSubmit { frame, input } => {
                w.frame_key(frame)?;
                w.tensor_desc(&input.region, input.channels)?;
            }
            Message::FrameDone { frame, complete } => {
                w.frame_key(frame)?;
                w.u8(complete as u8)?;
            }
            Message::LayerTask {
                frame,
                layer,
                stripe,
                output,
                input,
            } => {
                w.frame_key(frame)?;
                w.u8(layer)?;
                w.u16(stripe)?;
                w.region(&output)?;
                w.tensor_desc(&input.region, input.channels)?;
            }
            Message::LayerResult {
                frame,
                layer,
                stripe,
                output,
            } => {
                w.frame_key(frame)?;
                w.u8(layer)?;
                w.u16(stripe)?;
                w.tensor_desc(&output.region, output.channels)?;
            }
            Message::Reject { code } => w.u16(code)?,
            Message::CodedTask {
                frame,
                layer,
                shard,
                budget_us,
                input,
            } => {
                w.frame_key(frame)?;
                w.u8(layer)?;
                w.u8(shard)?;
                w.u32(budget_us)?;
                w.tensor_desc(&input.region, input.channels)?;
            }
            Message::CodedResult {
                frame,
                layer,
                shard,
                output,
            } => {
                w.frame_key(frame)?;
                w.u8(layer)?;
                w.u8(shard)?;
                w.tensor_desc(&output.region, output.channels)?;
            }
        }
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

impl<'b> StripsView<'b> {
    /// Starts writing strip entries into `buf` (for a [`Message::Strips`] to send).
    pub fn writer(buf: &'b mut [u8]) -> StripsWriter<'b> {
        StripsWriter {
            buf,
            len: 0,
            count: 0,
        }
    }
}

/// Appends strip entries to a caller's buffer; [`StripsWriter::finish`] views them.
#[derive(Debug)]
pub struct StripsWriter<'b> {
    buf: &'b mut [u8],
    len: usize,
    count: u16,
}

impl<'b> StripsWriter<'b> {
    fn entry(
        &mut self,
        layer: u8,
        side: Side,
        region: &Region,
        channels: u32,
    ) -> Result<&mut [u8], WireError> {
        if self.count == u16::MAX {
            return Err(WireError::Oversized);
        }
        let n = tensor_byte_len(region, channels).ok_or(WireError::TensorSize)?;
        let mut w = Writer::new(&mut self.buf[self.len..]);
        w.u8(layer)?;
        w.u8(side.index() as u8)?;
        w.tensor_desc(region, channels)?;
        w.slot(n)?;
        let start = self.len + STRIP_DESC_LEN;
        self.len = start + n;
        self.count += 1;
        Ok(&mut self.buf[start..self.len])
    }

    /// Appends the strip `view` of fused layer `layer` on `side`, encoding its values.
    pub fn push(&mut self, layer: u8, side: Side, view: &FeatureView<'_>) -> Result<(), WireError> {
        let out = self.entry(layer, side, &view.region(), view.channels())?;
        encode_f32(view.data(), out);
        Ok(())
    }

    /// Appends a strip already in wire form.
    pub fn push_tensor(&mut self, layer: u8, side: Side, t: &Tensor<'_>) -> Result<(), WireError> {
        t.check()?;
        let out = self.entry(layer, side, &t.region, t.channels)?;
        out.copy_from_slice(t.data);
        Ok(())
    }

    /// Number of entries so far.
    pub const fn count(&self) -> u16 {
        self.count
    }

    /// The entries written.
    pub fn finish(self) -> StripsView<'b> {
        let (bytes, _) = self.buf.split_at(self.len);
        StripsView {
            count: self.count,
            bytes,
        }
    }
}
