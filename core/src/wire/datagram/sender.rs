//! The sending side: a node's datagram counter and message numbers ([`DatagramSender`]), and
//! a message cut into datagrams one at a time ([`Outgoing`]) into the caller's buffer.

use core::fmt;

use crate::time::Duration;
use crate::wire::auth::{seal_with_nonce, Key};
use crate::wire::frame::TAG_LEN;
use crate::wire::NodeId;

use super::header::DatagramRepr;
use super::{nonce, DGRAM_HEADER_LEN, DGRAM_OVERHEAD, MAX_FRAGMENTS};

/// Why a message could not be cut into datagrams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// The datagram size leaves no room for a payload byte after header and tag.
    DatagramTooSmall,
    /// The message needs more than [`MAX_FRAGMENTS`] datagrams of this size (or over 4 GiB).
    TooLarge,
    /// The output buffer is smaller than the next datagram.
    BufferTooSmall,
    /// The bytes given are not the length the message was started with.
    WrongLength,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendError::DatagramTooSmall => "datagram size leaves no room for a payload",
            SendError::TooLarge => "message needs too many datagrams",
            SendError::BufferTooSmall => "output buffer smaller than the datagram",
            SendError::WrongLength => "message length differs from the one started",
        })
    }
}

impl core::error::Error for SendError {}

/// A node's sending state: key, datagram counter and message numbers.
///
/// The counter is the AEAD nonce (with the sender id, in the datagram domain), so it must
/// never repeat under one key: start it above anything sent before (e.g. microseconds since
/// the Unix epoch at start-up, as the link's frame sequence).
#[derive(Clone, Debug)]
pub struct DatagramSender {
    node: NodeId,
    key: Key,
    counter: u64,
    message: u32,
    max_datagram: usize,
}

/// A message being sent: which fragment comes next. It does not hold the message, so an
/// owner may keep both and resume after a full send buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outgoing {
    kind: u8,
    message: u32,
    len: u32,
    count: u16,
    next: u16,
    lifetime_us: u32,
}

impl Outgoing {
    /// Datagrams the message takes.
    pub const fn fragments(&self) -> u16 {
        self.count
    }

    /// Datagrams emitted so far.
    pub const fn emitted(&self) -> u16 {
        self.next
    }

    /// True once every datagram was emitted.
    pub const fn is_done(&self) -> bool {
        self.next >= self.count
    }

    /// The message number.
    pub const fn message(&self) -> u32 {
        self.message
    }
}

impl DatagramSender {
    /// Sender `node` sealing with `key`, first counter `first_counter`, datagrams of at most
    /// `max_datagram` bytes (header and tag included; e.g. [`super::DEFAULT_DATAGRAM_LEN`]).
    pub fn new(
        node: NodeId,
        key: Key,
        first_counter: u64,
        max_datagram: usize,
    ) -> Result<Self, SendError> {
        if max_datagram <= DGRAM_OVERHEAD {
            return Err(SendError::DatagramTooSmall);
        }
        Ok(DatagramSender {
            node,
            key,
            counter: first_counter,
            message: 0,
            max_datagram,
        })
    }

    /// This node.
    pub const fn node(&self) -> NodeId {
        self.node
    }

    /// The counter the next datagram gets.
    pub const fn next_counter(&self) -> u64 {
        self.counter
    }

    /// Largest datagram emitted, bytes.
    pub const fn max_datagram(&self) -> usize {
        self.max_datagram
    }

    /// Datagrams a message of `len` bytes takes (`Err` past [`MAX_FRAGMENTS`]).
    pub fn fragments_for(&self, len: usize) -> Result<u16, SendError> {
        let per = self.max_datagram - DGRAM_OVERHEAD;
        let n = len.div_ceil(per).max(1);
        if n > MAX_FRAGMENTS || u32::try_from(len).is_err() {
            return Err(SendError::TooLarge);
        }
        Ok(n as u16)
    }

    /// Starts a message of `len` bytes of `kind`, which the receiver waits `lifetime` for
    /// after its first fragment (saturating at `u32::MAX` µs, 71 minutes). Takes a message
    /// number.
    pub fn start(
        &mut self,
        kind: u8,
        lifetime: Duration,
        len: usize,
    ) -> Result<Outgoing, SendError> {
        let count = self.fragments_for(len)?;
        let message = self.message;
        self.message = self.message.wrapping_add(1);
        Ok(Outgoing {
            kind,
            message,
            len: len as u32,
            count,
            next: 0,
            lifetime_us: lifetime.total_micros().min(u64::from(u32::MAX)) as u32,
        })
    }

    /// Seals the next datagram of `out` (whose bytes are `message`) into `buf` and returns
    /// its length, or `None` once all were emitted. Takes one counter per datagram; an error
    /// takes nothing and leaves `out` where it was.
    pub fn next_datagram(
        &mut self,
        out: &mut Outgoing,
        message: &[u8],
        buf: &mut [u8],
    ) -> Result<Option<usize>, SendError> {
        if message.len() != out.len as usize {
            return Err(SendError::WrongLength);
        }
        if out.is_done() {
            return Ok(None);
        }
        let repr = DatagramRepr {
            kind: out.kind,
            sender: self.node,
            counter: self.counter,
            message: out.message,
            len: out.len,
            index: out.next,
            count: out.count,
            lifetime_us: out.lifetime_us,
        };
        let part = &message[repr.fragment()];
        let total = DGRAM_HEADER_LEN + part.len() + TAG_LEN;
        let Some(buf) = buf.get_mut(..total) else {
            return Err(SendError::BufferTooSmall);
        };
        let (h, rest) = buf.split_at_mut(DGRAM_HEADER_LEN);
        let (payload, tag) = rest.split_at_mut(part.len());
        let mut header = [0u8; DGRAM_HEADER_LEN];
        repr.emit(&mut header);
        h.copy_from_slice(&header);
        payload.copy_from_slice(part);
        tag.copy_from_slice(&seal_with_nonce(
            &self.key,
            nonce(self.node, self.counter),
            &header,
            payload,
        ));
        self.counter = self.counter.wrapping_add(1);
        out.next += 1;
        Ok(Some(total))
    }
}
