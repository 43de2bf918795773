//! Whole-frame encoding and decoding: header, payload, seal/open, replay check.

use super::auth::{self, AuthStats, Key, ReplayWindow};
use super::frame::{Frame, HeaderRepr, HEADER_LEN, TAG_LEN};
use super::ids::NodeId;
use super::message::Message;
use super::stream::{Body, FrameEncoder};
use super::{Limits, WireError};

/// Writes `msg` as one frame from `sender` with sequence `seq` into `buf`, sealed with `key`
/// (or in clear when `key` is `None`); returns the frame length.
pub fn encode(
    msg: &Message<'_>,
    sender: NodeId,
    seq: u64,
    key: Option<&Key>,
    buf: &mut [u8],
) -> Result<usize, WireError> {
    msg.check()?;
    let payload_len = u32::try_from(msg.buffer_len()).map_err(|_| WireError::Oversized)?;
    let mut h = HeaderRepr::for_message(msg, sender, seq, key.is_some());
    h.payload_len = payload_len;
    let n = h.frame_len();
    let buf = buf.get_mut(..n).ok_or(WireError::BufferTooSmall)?;
    let mut frame = Frame::new_unchecked(&mut *buf);
    h.emit(&mut frame);
    msg.emit(frame.payload_mut())?;
    if let Some(key) = key {
        let (hdr, payload) = frame.header_and_payload_mut();
        let hdr: &[u8; HEADER_LEN] = (&*hdr).try_into().map_err(|_| WireError::Truncated)?;
        let tag = auth::seal(key, hdr, payload);
        frame.tag_mut().copy_from_slice(&tag);
    }
    Ok(n)
}

/// Decodes one complete frame in `buf` (extra bytes after it are ignored): checks the header
/// against `limits`, the authentication mode against `key` (`None`: this receiver is
/// insecure), verifies and decrypts in place, rejects replays through `window` (the sender's
/// window), parses the message and checks it against the header. Outcomes are counted in
/// `stats`.
pub fn decode<'b>(
    buf: &'b mut [u8],
    key: Option<&Key>,
    limits: &Limits,
    window: &mut ReplayWindow,
    stats: &mut AuthStats,
) -> Result<(HeaderRepr, Message<'b>), WireError> {
    let h = HeaderRepr::parse(&Frame::new_unchecked(&*buf), limits)?;
    let mut frame = Frame::new_checked(buf)?;
    match (key, h.authenticated) {
        (Some(key), true) => {
            let mut tag = [0u8; TAG_LEN];
            tag.copy_from_slice(frame.tag());
            let (hdr, payload) = frame.header_and_payload_mut();
            let hdr: &[u8; HEADER_LEN] = (&*hdr).try_into().map_err(|_| WireError::Truncated)?;
            if let Err(e) = auth::open(key, hdr, payload, &tag) {
                stats.forged += 1;
                return Err(e);
            }
        }
        (None, false) => {}
        (Some(_), false) => {
            stats.forged += 1;
            return Err(WireError::AuthMode);
        }
        (None, true) => return Err(WireError::AuthMode),
    }
    if let Err(e) = window.accept(h.seq) {
        stats.replayed += 1;
        return Err(e);
    }
    let buf = frame.into_inner();
    let payload = &buf[HEADER_LEN..HEADER_LEN + h.payload_len as usize];
    let msg = Message::parse(h.kind, payload, limits)?;
    h.check_consistent(&msg)?;
    stats.accepted += 1;
    Ok((h, msg))
}

/// The sending side of a node: its id, its sequence counter and its key.
#[derive(Debug, Clone)]
pub struct Sender {
    node: NodeId,
    next_seq: u64,
    key: Option<Key>,
}

impl Sender {
    /// A sender for `node` whose first frame carries `first_seq` (see [`auth`](super::auth) on
    /// choosing it), sealing with `key`, or in clear when `None`.
    pub const fn new(node: NodeId, first_seq: u64, key: Option<Key>) -> Self {
        Sender {
            node,
            next_seq: first_seq,
            key,
        }
    }

    /// The node id.
    pub const fn node(&self) -> NodeId {
        self.node
    }

    /// The sequence number of the next frame.
    pub const fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// True when frames are authenticated.
    pub const fn secure(&self) -> bool {
        self.key.is_some()
    }

    /// The sequence for the next frame; the last value, `u64::MAX`, is never used, so the
    /// counter cannot wrap and reuse a nonce.
    fn seq(&self) -> Result<u64, WireError> {
        if self.next_seq == u64::MAX {
            return Err(WireError::Oversized);
        }
        Ok(self.next_seq)
    }

    /// Encodes `msg` into `buf` (see [`encode`]); returns the frame length.
    pub fn encode(&mut self, msg: &Message<'_>, buf: &mut [u8]) -> Result<usize, WireError> {
        let n = encode(msg, self.node, self.seq()?, self.key.as_ref(), buf)?;
        self.next_seq += 1;
        Ok(n)
    }

    /// A streaming encoder for `msg` with the given body (see [`FrameEncoder`]).
    pub fn stream<'a>(
        &mut self,
        msg: &Message<'a>,
        body: Body<'a>,
    ) -> Result<FrameEncoder<'a>, WireError> {
        let e = FrameEncoder::new(msg, body, self.node, self.seq()?, self.key.as_ref())?;
        self.next_seq += 1;
        Ok(e)
    }
}

/// The receiving side of a node: its key (or insecure mode), its limits and its counters.
/// Replay windows are per peer and held by the caller, one per connection.
#[derive(Debug, Clone)]
pub struct Receiver {
    key: Option<Key>,
    limits: Limits,
    stats: AuthStats,
}

impl Receiver {
    /// A receiver accepting frames sealed with `key`, or only clear frames when `None`.
    pub const fn new(key: Option<Key>, limits: Limits) -> Self {
        Receiver {
            key,
            limits,
            stats: AuthStats {
                accepted: 0,
                forged: 0,
                replayed: 0,
            },
        }
    }

    /// The limits.
    pub const fn limits(&self) -> &Limits {
        &self.limits
    }

    /// True when frames must be authenticated.
    pub const fn secure(&self) -> bool {
        self.key.is_some()
    }

    /// Counters so far.
    pub const fn stats(&self) -> AuthStats {
        self.stats
    }

    /// Decodes one frame from a peer whose replay window is `window` (see [`decode`]).
    pub fn decode<'b>(
        &mut self,
        buf: &'b mut [u8],
        window: &mut ReplayWindow,
    ) -> Result<(HeaderRepr, Message<'b>), WireError> {
        decode(
            buf,
            self.key.as_ref(),
            &self.limits,
            window,
            &mut self.stats,
        )
    }
}
