//! Streaming a frame to a byte sink through a small buffer, sealing as it goes.
//!
//! A tile result can be megabytes of `f32`. Rather than serialising it into a frame-sized
//! buffer (a second copy of the tensor), the sender builds a [`FrameEncoder`] and pulls the
//! frame out chunk by chunk with [`FrameEncoder::fill`], writing each chunk to its socket: the
//! header first (it is the AEAD associated data, so its payload length is computed up front),
//! then the payload produced straight from the source (`f32` values are converted to
//! little-endian bytes into the chunk and encrypted there by the incremental
//! [`Sealer`]), then the tag. The receiver still needs the whole frame to verify
//! the tag before it acts on it, so it buffers one frame ([`FrameDecoder`](super::FrameDecoder)).

use crate::ftp::Side;
use crate::region::Region;
use crate::tensor::FeatureView;

use super::auth::{Key, Sealer};
use super::cursor::Writer;
use super::frame::{HeaderRepr, HEADER_LEN, TAG_LEN};
use super::ids::NodeId;
use super::message::{Message, MAX_PREFIX_LEN};
use super::precision::Precision;
use super::strips::{StripDesc, StripsView, STRIP_DESC_LEN};
use super::tensor::{encode_f32, tensor_byte_len, TensorDesc, VALUE_LEN};
use super::WireError;

/// One strip to stream in a [`Message::Strips`] frame.
#[derive(Clone, Copy, Debug)]
pub struct StripSource<'a> {
    /// Fused layer.
    pub layer: u8,
    /// Side.
    pub side: Side,
    /// The values.
    pub view: FeatureView<'a>,
}

/// Where the bytes after a message's prefix come from.
#[derive(Clone, Copy, Debug)]
pub enum Body<'a> {
    /// The message's own [`Message::trailing_data`] (tensor bytes or encoded strips).
    Message,
    /// `f32` values of the message's trailing tensor (whose `data` is then ignored and may be
    /// empty); there must be exactly `channels × area` of them.
    Values(&'a [f32]),
    /// The values of the message's trailing tensor region read from a view that covers it with
    /// the same channels (e.g. a tile's input streamed out of the whole frame, no copy made).
    Region(FeatureView<'a>),
    /// Strip entries for a [`Message::Strips`] (whose own `strips` are then ignored).
    Strips(&'a [StripSource<'a>]),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    /// Header and prefix, from `head`.
    Head,
    /// Bytes of the source at `pos`.
    Data,
    /// Descriptor of strip `idx`.
    StripDesc,
    /// Values of strip `idx` at `pos`.
    StripData,
    /// The tag.
    Tag,
    Done,
}

/// A pull encoder of one frame: call [`FrameEncoder::fill`] until it returns 0.
#[derive(Debug)]
pub struct FrameEncoder<'a> {
    head: [u8; HEADER_LEN + MAX_PREFIX_LEN],
    head_len: usize,
    body: Body<'a>,
    /// The trailing tensor's region (what a [`Body::Region`] streams).
    region: Region,
    data: &'a [u8],
    sealer: Option<Sealer>,
    tag: [u8; TAG_LEN],
    tag_len: usize,
    part: Part,
    idx: usize,
    pos: usize,
    /// The current strip's descriptor.
    desc: [u8; STRIP_DESC_LEN],
    total: usize,
    emitted: usize,
}

impl<'a> FrameEncoder<'a> {
    /// An encoder for `msg` with `body`, from `sender` with sequence `seq`, sealed with `key`
    /// (clear when `None`). Checks the body against the message.
    pub fn new(
        msg: &Message<'a>,
        body: Body<'a>,
        sender: NodeId,
        seq: u64,
        key: Option<&Key>,
    ) -> Result<Self, WireError> {
        let body_len = match body {
            Body::Message => {
                msg.check()?;
                msg.trailing_data().len()
            }
            Body::Values(v) => {
                let (region, channels) = tensor_of(msg)?;
                let n = tensor_byte_len(&region, channels).ok_or(WireError::TensorSize)?;
                if v.len().checked_mul(VALUE_LEN) != Some(n) {
                    return Err(WireError::TensorSize);
                }
                n
            }
            Body::Region(view) => {
                let (region, channels) = tensor_of(msg)?;
                if view.channels() != channels || !view.region().covers(&region) {
                    return Err(WireError::TensorSize);
                }
                tensor_byte_len(&region, channels).ok_or(WireError::TensorSize)?
            }
            Body::Strips(s) => {
                if !matches!(msg, Message::Strips { .. }) || s.len() > u16::MAX as usize {
                    return Err(WireError::BadValue);
                }
                let mut n = 0usize;
                for e in s {
                    let d = e.view.data().len() * VALUE_LEN;
                    n = n
                        .checked_add(STRIP_DESC_LEN + d)
                        .ok_or(WireError::Oversized)?;
                }
                n
            }
        };
        let payload_len = msg
            .prefix_len()
            .checked_add(body_len)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or(WireError::Oversized)?;
        let mut h = HeaderRepr::for_message(msg, sender, seq, key.is_some());
        h.payload_len = payload_len;
        let mut head = [0u8; HEADER_LEN + MAX_PREFIX_LEN];
        let hdr = h.to_bytes();
        head[..HEADER_LEN].copy_from_slice(&hdr);
        let plen = match (*msg, body) {
            // The prefix counts the streamed entries, not the message's own.
            (Message::Strips { frame, tile, .. }, Body::Strips(s)) => Message::Strips {
                frame,
                tile,
                strips: StripsView {
                    count: s.len() as u16,
                    bytes: &[],
                },
            }
            .emit_prefix(&mut head[HEADER_LEN..])?,
            _ => msg.emit_prefix(&mut head[HEADER_LEN..])?,
        };
        let mut sealer = key.map(|k| Sealer::new(k, &hdr));
        if let Some(s) = sealer.as_mut() {
            s.seal_chunk(&mut head[HEADER_LEN..HEADER_LEN + plen]);
        }
        Ok(FrameEncoder {
            head,
            head_len: HEADER_LEN + plen,
            body,
            region: tensor_of(msg).map_or(Region::full(0, 0), |(r, _)| r),
            data: match body {
                Body::Message => msg.trailing_data(),
                _ => &[],
            },
            sealer,
            tag: [0; TAG_LEN],
            tag_len: h.tag_len(),
            part: Part::Head,
            idx: 0,
            pos: 0,
            desc: [0; STRIP_DESC_LEN],
            total: h.frame_len(),
            emitted: 0,
        })
    }

    /// Length of the whole frame.
    pub const fn frame_len(&self) -> usize {
        self.total
    }

    /// Bytes not yet produced.
    pub const fn remaining(&self) -> usize {
        self.total - self.emitted
    }

    /// True when the whole frame was produced.
    pub fn is_done(&self) -> bool {
        self.part == Part::Done
    }

    /// Writes the next bytes of the frame into `out`; returns how many (0 only when done or
    /// `out` is empty). Chunk boundaries are arbitrary; `out` may be as small as one byte.
    pub fn fill(&mut self, out: &mut [u8]) -> usize {
        let mut n = 0;
        while n < out.len() && self.part != Part::Done {
            let dst = &mut out[n..];
            // `sealed` = payload bytes written to `dst` in this step (to encrypt in place).
            let (w, sealed) = match self.part {
                Part::Head => {
                    let src = &self.head[self.pos..self.head_len];
                    let k = src.len().min(dst.len());
                    dst[..k].copy_from_slice(&src[..k]);
                    self.pos += k;
                    if self.pos == self.head_len {
                        self.next_after_head();
                    }
                    // The prefix was sealed when the encoder was built.
                    (k, false)
                }
                Part::Data => {
                    let k = match self.body {
                        Body::Values(v) => {
                            let k = copy_values(v, self.pos, dst);
                            self.pos += k;
                            if self.pos == v.len() * VALUE_LEN {
                                self.part = Part::Tag;
                                self.pos = 0;
                            }
                            k
                        }
                        Body::Region(view) => {
                            let k = copy_region(&view, self.region, self.pos, dst);
                            self.pos += k;
                            if self.pos == region_bytes(self.region, view.channels()) {
                                self.part = Part::Tag;
                                self.pos = 0;
                            }
                            k
                        }
                        _ => {
                            let src = &self.data[self.pos..];
                            let k = src.len().min(dst.len());
                            dst[..k].copy_from_slice(&src[..k]);
                            self.pos += k;
                            if self.pos == self.data.len() {
                                self.part = Part::Tag;
                                self.pos = 0;
                            }
                            k
                        }
                    };
                    (k, true)
                }
                Part::StripDesc => {
                    let src = &self.desc[self.pos..];
                    let k = src.len().min(dst.len());
                    dst[..k].copy_from_slice(&src[..k]);
                    self.pos += k;
                    if self.pos == STRIP_DESC_LEN {
                        self.part = Part::StripData;
                        self.pos = 0;
                        self.strip_data_done();
                    }
                    (k, true)
                }
                Part::StripData => {
                    let v = match self.body {
                        Body::Strips(s) => s[self.idx].view.data(),
                        _ => &[],
                    };
                    let k = copy_values(v, self.pos, dst);
                    self.pos += k;
                    self.strip_data_done();
                    (k, true)
                }
                Part::Tag => {
                    if self.pos == 0 {
                        if let Some(s) = self.sealer.take() {
                            self.tag = s.finish();
                        }
                    }
                    let src = &self.tag[self.pos.min(self.tag_len)..self.tag_len];
                    let k = src.len().min(dst.len());
                    dst[..k].copy_from_slice(&src[..k]);
                    self.pos += k;
                    if self.pos >= self.tag_len {
                        self.part = Part::Done;
                    }
                    (k, false)
                }
                Part::Done => (0, false),
            };
            if sealed {
                if let Some(s) = self.sealer.as_mut() {
                    s.seal_chunk(&mut dst[..w]);
                }
            }
            n += w;
            self.emitted += w;
        }
        n
    }

    fn next_after_head(&mut self) {
        self.pos = 0;
        self.part = match self.body {
            Body::Strips(_) => {
                self.idx = 0;
                self.start_strip()
            }
            Body::Values(v) if !v.is_empty() => Part::Data,
            Body::Region(v) if region_bytes(self.region, v.channels()) > 0 => Part::Data,
            Body::Message if !self.data.is_empty() => Part::Data,
            _ => Part::Tag,
        };
    }

    /// Prepares the descriptor of strip `idx`, or moves to the tag after the last one.
    fn start_strip(&mut self) -> Part {
        let Body::Strips(s) = self.body else {
            return Part::Tag;
        };
        let Some(e) = s.get(self.idx) else {
            return Part::Tag;
        };
        let desc = StripDesc {
            layer: e.layer,
            side: e.side,
            tensor: TensorDesc {
                region: e.view.region(),
                channels: e.view.channels(),
                precision: Precision::F32,
            },
        };
        // Regions of views are never inverted and the descriptor fits: this cannot fail.
        let ok = Writer::new(&mut self.desc)
            .field::<StripDesc>(&desc)
            .is_ok();
        debug_assert!(ok);
        Part::StripDesc
    }

    /// After strip data progress: move to the next strip when this one is complete.
    fn strip_data_done(&mut self) {
        let Body::Strips(s) = self.body else { return };
        if self.pos == s[self.idx].view.data().len() * VALUE_LEN {
            self.idx += 1;
            self.pos = 0;
            self.part = self.start_strip();
        }
    }
}

/// The region and channels of the trailing tensor of `msg` (`BadValue`: it has none, or one
/// packed in a smaller precision: streamed values are `f32`).
fn tensor_of(msg: &Message<'_>) -> Result<(Region, u32), WireError> {
    let t = msg.tensor().ok_or(WireError::BadValue)?;
    if t.precision != Precision::F32 {
        return Err(WireError::BadValue);
    }
    Ok((t.region, t.channels))
}

/// Bytes of `channels × region` values (checked against overflow when the encoder was built).
fn region_bytes(region: Region, channels: u32) -> usize {
    region.area() as usize * channels as usize * VALUE_LEN
}

/// Copies the little-endian bytes of `region`'s values in `view` (CHW, row by row) starting at
/// byte `pos` into `dst`; returns the count.
fn copy_region(view: &FeatureView<'_>, region: Region, pos: usize, dst: &mut [u8]) -> usize {
    let w = region.width() as usize;
    let h = region.height() as usize;
    let row_bytes = w * VALUE_LEN;
    let end = region_bytes(region, view.channels());
    let (mut k, mut p) = (0, pos);
    while k < dst.len() && p < end {
        // Row `r` of the region, counted over channels then rows.
        let r = p / row_bytes;
        let (c, y) = ((r / h) as u32, region.y.start + (r % h) as u32);
        let x0 = (region.x.start - view.region().x.start) as usize;
        let row = &view.row(c, y)[x0..x0 + w];
        let n = copy_values(row, p % row_bytes, &mut dst[k..]);
        k += n;
        p += n;
    }
    k
}

/// Copies the little-endian bytes of `v` starting at byte `pos` into `dst`; returns the count.
fn copy_values(v: &[f32], pos: usize, dst: &mut [u8]) -> usize {
    let end = (v.len() * VALUE_LEN).min(pos + dst.len());
    let mut k = 0;
    let mut p = pos;
    // Leading partial value.
    while p < end && !p.is_multiple_of(VALUE_LEN) {
        dst[k] = v[p / VALUE_LEN].to_le_bytes()[p % VALUE_LEN];
        k += 1;
        p += 1;
    }
    // Whole values.
    let whole = (end - p) / VALUE_LEN;
    encode_f32(
        &v[p / VALUE_LEN..p / VALUE_LEN + whole],
        &mut dst[k..k + whole * VALUE_LEN],
    );
    k += whole * VALUE_LEN;
    p += whole * VALUE_LEN;
    // Trailing partial value.
    while p < end {
        dst[k] = v[p / VALUE_LEN].to_le_bytes()[p % VALUE_LEN];
        k += 1;
        p += 1;
    }
    k
}
