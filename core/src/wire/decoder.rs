//! Sans-IO framing of a byte stream: accumulate bytes, yield whole frames.

use super::frame::{Frame, HeaderRepr, HEADER_LEN};
use super::{Limits, WireError};

/// Accumulates stream bytes into a caller-provided buffer and yields complete frames.
///
/// Read from the socket into [`FrameDecoder::space`] and [`FrameDecoder::commit`] the count (no
/// intermediate copy), or [`FrameDecoder::feed`] a slice; then take frames with
/// [`FrameDecoder::next_frame`] and hand each to [`decode`](super::decode). The header is
/// checked as soon as its 32 bytes are in — magic, version, kind, flags, and the declared length
/// against the [`Limits`] and the buffer's capacity — so an oversized or garbage frame is an
/// error before any of its payload is read. After an error the decoder stays failed (the
/// connection is to be dropped): the stream cannot be resynchronised.
#[derive(Debug)]
pub struct FrameDecoder<B> {
    buf: B,
    len: usize,
    /// Length of the frame last yielded, dropped on the next call.
    consumed: usize,
    limits: Limits,
    failed: Option<WireError>,
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> FrameDecoder<B> {
    /// A decoder over `buf`; frames longer than the buffer are rejected.
    pub fn new(buf: B, limits: Limits) -> Self {
        FrameDecoder {
            buf,
            len: 0,
            consumed: 0,
            limits,
            failed: None,
        }
    }

    /// Buffer capacity (the largest frame accepted).
    pub fn capacity(&self) -> usize {
        self.buf.as_ref().len()
    }

    /// Bytes buffered and not yet yielded.
    pub fn buffered(&self) -> usize {
        self.len - self.consumed
    }

    /// The error that stopped the decoder, if any.
    pub const fn failed(&self) -> Option<WireError> {
        self.failed
    }

    fn compact(&mut self) {
        if self.consumed > 0 {
            self.buf.as_mut().copy_within(self.consumed..self.len, 0);
            self.len -= self.consumed;
            self.consumed = 0;
        }
    }

    /// Free space to read stream bytes into; follow with [`FrameDecoder::commit`].
    pub fn space(&mut self) -> &mut [u8] {
        self.compact();
        &mut self.buf.as_mut()[self.len..]
    }

    /// Records that `n` bytes were written at the start of [`FrameDecoder::space`] (clamped to
    /// the free space).
    pub fn commit(&mut self, n: usize) {
        self.compact();
        self.len = (self.len + n).min(self.capacity());
    }

    /// Copies as much of `data` as fits; returns the count taken.
    pub fn feed(&mut self, data: &[u8]) -> usize {
        let space = self.space();
        let n = data.len().min(space.len());
        space[..n].copy_from_slice(&data[..n]);
        self.commit(n);
        n
    }

    /// Bytes still needed to complete the next frame (at least the rest of a header); 0 when a
    /// frame is ready. Reading at most this much keeps the next frame's bytes in the socket.
    pub fn needed(&self) -> usize {
        let avail = self.buffered();
        let start = self.consumed;
        if avail < HEADER_LEN {
            return HEADER_LEN - avail;
        }
        let f = Frame::new_unchecked(&self.buf.as_ref()[start..self.len]);
        f.total_len().map_or(0, |t| t.saturating_sub(avail))
    }

    /// The next complete frame (header, payload, tag), mutable so it can be opened in place;
    /// `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<&mut [u8]>, WireError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        self.compact();
        if self.capacity() < HEADER_LEN {
            return Err(self.fail(WireError::BufferTooSmall));
        }
        if self.len < HEADER_LEN {
            return Ok(None);
        }
        let h = match HeaderRepr::parse(&Frame::new_unchecked(self.buf.as_ref()), &self.limits) {
            Ok(h) => h,
            Err(e) => return Err(self.fail(e)),
        };
        let total = h.frame_len();
        if total > self.capacity() {
            return Err(self.fail(WireError::Oversized));
        }
        if self.len < total {
            return Ok(None);
        }
        self.consumed = total;
        Ok(Some(&mut self.buf.as_mut()[..total]))
    }

    fn fail(&mut self, e: WireError) -> WireError {
        self.failed = Some(e);
        e
    }
}
