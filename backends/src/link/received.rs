//! A message received from an authenticated peer, owning the buffer it arrived in.
//!
//! A connection receives into a buffer of `f32` words viewed as bytes ([`FrameBuf`]), and
//! hands a large frame's buffer over whole: the driver turns the message's tensor into its
//! values in that same allocation ([`Received::into_values`]), so a tile input is held once
//! (as it arrives), not once as bytes and again as values.

extern crate alloc;

use alloc::vec::Vec;
use core::ops::Range;

use tessera_core::wire::{Kind, Limits, Message, Tensor, HEADER_LEN};

/// Bytes of one `f32` value on the wire.
const VALUE_LEN: usize = core::mem::size_of::<f32>();

/// A frame's storage: `f32` words, so a tensor in it can become a `Vec<f32>` in place.
#[derive(Default)]
pub(super) struct FrameBuf {
    words: Vec<f32>,
}

impl FrameBuf {
    /// Capacity in bytes.
    pub fn len(&self) -> usize {
        self.words.len() * VALUE_LEN
    }

    /// Grows to hold at least `bytes` (new bytes zeroed).
    pub fn grow_to(&mut self, bytes: usize) {
        let words = bytes.div_ceil(VALUE_LEN);
        if self.words.len() < words {
            self.words.resize(words, 0.0);
        }
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        bytemuck::cast_slice(&self.words)
    }

    /// The bytes, writable.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        bytemuck::cast_slice_mut(&mut self.words)
    }

    /// A buffer holding a copy of the first `bytes` bytes (a small frame is copied out and the
    /// connection keeps its buffer for the next one).
    pub fn copy_of(&self, bytes: usize) -> FrameBuf {
        let mut b = FrameBuf::default();
        b.grow_to(bytes);
        b.bytes_mut()[..bytes].copy_from_slice(&self.bytes()[..bytes]);
        b
    }
}

/// Where a tensor's values lie in a [`Received`] buffer (see [`Received::span`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpan(Range<usize>);

impl TensorSpan {
    /// Number of values.
    pub fn values(&self) -> usize {
        self.0.len() / VALUE_LEN
    }
}

/// A verified, decrypted message from a peer, with the buffer it arrived in.
pub struct Received {
    buf: FrameBuf,
    kind: Kind,
    payload_len: usize,
    limits: Limits,
}

impl Received {
    /// The decrypted frame in `buf` (payload right after the header), already parsed once
    /// under `limits`.
    pub(super) fn new(buf: FrameBuf, kind: Kind, payload_len: usize, limits: Limits) -> Self {
        Received {
            buf,
            kind,
            payload_len,
            limits,
        }
    }

    /// The message kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    fn payload(&self) -> &[u8] {
        &self.buf.bytes()[HEADER_LEN..HEADER_LEN + self.payload_len]
    }

    /// The message, viewed in the buffer (parsing a checked payload again cannot fail; a
    /// failure would read as a heartbeat, which changes nothing).
    pub fn message(&self) -> Message<'_> {
        Message::parse(self.kind, self.payload(), &self.limits).unwrap_or(Message::Heartbeat)
    }

    /// Where `t`, a tensor of [`Received::message`], lies in the buffer (`None` for a tensor
    /// of another buffer).
    pub fn span(&self, t: &Tensor<'_>) -> Option<TensorSpan> {
        let base = self.buf.bytes().as_ptr() as usize;
        let start = (t.data.as_ptr() as usize).checked_sub(base)?;
        let end = start.checked_add(t.data.len())?;
        let payload = HEADER_LEN..HEADER_LEN + self.payload_len;
        (start >= payload.start && end <= payload.end && t.data.len().is_multiple_of(VALUE_LEN))
            .then_some(TensorSpan(start..end))
    }

    /// The values of the tensor at `span`, made in the buffer itself: its bytes move to the
    /// front and are read as `f32` (little-endian on the wire), then the rest is cut off.
    pub fn into_values(self, span: TensorSpan) -> Vec<f32> {
        let mut words = self.buf.words;
        let n = span.values();
        bytemuck::cast_slice_mut::<f32, u8>(&mut words).copy_within(span.0, 0);
        words.truncate(n);
        if cfg!(target_endian = "big") {
            for w in &mut words {
                *w = f32::from_bits(u32::from_le(w.to_bits()));
            }
        }
        words
    }

    /// Bytes held.
    pub fn buffer_bytes(&self) -> usize {
        self.buf.len()
    }
}

impl core::fmt::Debug for Received {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Received")
            .field("kind", &self.kind)
            .field("payload_len", &self.payload_len)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_core::wire::FrameKey;
    use tessera_core::Region;

    /// A `Task` frame's bytes (header left zero) with `values` as its input.
    fn task(values: &[f32]) -> Received {
        let region = Region::full(values.len() as u32, 1);
        let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let msg = Message::Task {
            frame: FrameKey {
                origin: 1,
                number: 7,
            },
            tile: 3,
            mode: tessera_core::ftp::Mode::Plain,
            input: Tensor::new(region, 1, &data).unwrap(),
        };
        let len = msg.buffer_len();
        let mut buf = FrameBuf::default();
        buf.grow_to(HEADER_LEN + len + 16);
        msg.emit(&mut buf.bytes_mut()[HEADER_LEN..HEADER_LEN + len])
            .unwrap();
        Received::new(buf, msg.kind(), len, Limits::LARGE)
    }

    #[test]
    fn a_tensor_becomes_its_values_in_the_same_buffer() {
        let values: Vec<f32> = (0..1000).map(|i| i as f32 * 0.5 - 7.25).collect();
        let r = task(&values);
        let Message::Task { input, tile, .. } = r.message() else {
            panic!("not a task");
        };
        assert_eq!(tile, 3);
        let span = r.span(&input).expect("the tensor lies in the buffer");
        assert_eq!(span.values(), 1000);
        let before = r.buf.words.as_ptr();
        let out = r.into_values(span);
        assert_eq!(out, values);
        assert_eq!(out.as_ptr(), before, "no new allocation");
    }

    #[test]
    fn a_tensor_of_another_buffer_has_no_span() {
        let r = task(&[1.0, 2.0]);
        let other = [0u8; 8];
        let t = Tensor::new(Region::full(2, 1), 1, &other).unwrap();
        assert_eq!(r.span(&t), None);
    }
}
