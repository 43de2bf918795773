//! The frame header: a checked zero-copy view ([`Frame`]) and its meaning ([`HeaderRepr`]).
//!
//! ```text
//!  offset  size  field
//!       0     4  magic  b"TSRW"
//!       4     1  version (1)
//!       5     1  kind (message kind, `Kind`)
//!       6     1  flags (bit 0: authenticated; other bits must be 0)
//!       7     1  reserved (0)
//!       8     2  sender NodeId
//!      10     2  frame origin NodeId   (0 when the message names no frame)
//!      12     4  frame number          (0 when the message names no frame)
//!      16     2  task: tile or stripe  (0 when the message names none)
//!      18     2  reserved (0)
//!      20     8  sequence (per-sender counter; the AEAD nonce)
//!      28     4  payload length (bytes, tag excluded)
//!      32     …  payload, then a 16-byte Poly1305 tag when authenticated
//! ```
//! All integers little-endian.

use super::ids::{FrameKey, NodeId};
use super::kind::Kind;
use super::message::Message;
use super::{Limits, WireError};

/// The first four bytes of every frame.
pub const MAGIC: [u8; 4] = *b"TSRW";
/// The protocol version this crate speaks.
pub const VERSION: u8 = 1;
/// Header length in bytes.
pub const HEADER_LEN: usize = field::HEADER_LEN;
/// Authentication tag length in bytes.
pub const TAG_LEN: usize = 16;
/// Flag bit: the frame is encrypted and carries a tag.
pub const FLAG_AUTH: u8 = 0x01;

mod field {
    use core::ops::Range;

    pub const MAGIC: Range<usize> = 0..4;
    pub const VERSION: usize = 4;
    pub const KIND: usize = 5;
    pub const FLAGS: usize = 6;
    pub const RESERVED0: usize = 7;
    pub const SENDER: Range<usize> = 8..10;
    pub const ORIGIN: Range<usize> = 10..12;
    pub const NUMBER: Range<usize> = 12..16;
    pub const TASK: Range<usize> = 16..18;
    pub const RESERVED1: Range<usize> = 18..20;
    pub const SEQ: Range<usize> = 20..28;
    pub const LEN: Range<usize> = 28..32;
    pub const HEADER_LEN: usize = LEN.end;
}

/// A read/write view of a frame over any buffer.
///
/// After [`Frame::check_len`] succeeds no accessor panics; [`Frame::check_header_len`] is enough
/// for the header accessors alone (a stream decoder checks the header before the payload
/// arrives).
#[derive(Debug, Clone)]
pub struct Frame<T: AsRef<[u8]>> {
    buf: T,
}

macro_rules! get {
    ($name:ident, $ty:ty, $f:expr, $doc:literal) => {
        #[doc = $doc]
        pub fn $name(&self) -> $ty {
            let mut a = [0u8; core::mem::size_of::<$ty>()];
            a.copy_from_slice(&self.buf.as_ref()[$f]);
            <$ty>::from_le_bytes(a)
        }
    };
}

macro_rules! set {
    ($name:ident, $ty:ty, $f:expr, $doc:literal) => {
        #[doc = $doc]
        pub fn $name(&mut self, v: $ty) {
            self.buf.as_mut()[$f].copy_from_slice(&v.to_le_bytes());
        }
    };
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without checking it (for emitting into a buffer sized by the caller).
    pub const fn new_unchecked(buf: T) -> Self {
        Frame { buf }
    }

    /// Wraps a buffer and checks that it holds the whole frame ([`Frame::check_len`]).
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let f = Self::new_unchecked(buf);
        f.check_len()?;
        Ok(f)
    }

    /// Checks that the buffer holds a header.
    pub fn check_header_len(&self) -> Result<(), WireError> {
        if self.buf.as_ref().len() < HEADER_LEN {
            Err(WireError::Truncated)
        } else {
            Ok(())
        }
    }

    /// Checks that the buffer holds the header, the declared payload and the tag if flagged.
    /// Extra bytes after the frame are allowed (and ignored by [`Frame::payload`]).
    pub fn check_len(&self) -> Result<(), WireError> {
        self.check_header_len()?;
        match self.total_len() {
            Some(n) if n <= self.buf.as_ref().len() => Ok(()),
            _ => Err(WireError::Truncated),
        }
    }

    /// Consumes the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buf
    }

    /// The magic bytes.
    pub fn magic(&self) -> [u8; 4] {
        let mut m = [0; 4];
        m.copy_from_slice(&self.buf.as_ref()[field::MAGIC]);
        m
    }

    /// Protocol version.
    pub fn version(&self) -> u8 {
        self.buf.as_ref()[field::VERSION]
    }

    /// Raw message kind.
    pub fn kind(&self) -> u8 {
        self.buf.as_ref()[field::KIND]
    }

    /// Raw flags.
    pub fn flags(&self) -> u8 {
        self.buf.as_ref()[field::FLAGS]
    }

    /// True when the authentication flag is set.
    pub fn authenticated(&self) -> bool {
        self.flags() & FLAG_AUTH != 0
    }

    /// Reserved byte 7.
    pub fn reserved0(&self) -> u8 {
        self.buf.as_ref()[field::RESERVED0]
    }

    get!(sender, u16, field::SENDER, "Sending node.");
    get!(origin, u16, field::ORIGIN, "Frame origin node.");
    get!(number, u32, field::NUMBER, "Frame number at its origin.");
    get!(task, u16, field::TASK, "Tile or stripe.");
    get!(reserved1, u16, field::RESERVED1, "Reserved bytes 18..20.");
    get!(seq, u64, field::SEQ, "Sender's sequence number.");
    get!(
        payload_len,
        u32,
        field::LEN,
        "Payload length (tag excluded)."
    );

    /// Tag length implied by the flags (0 or [`TAG_LEN`]).
    pub fn tag_len(&self) -> usize {
        if self.authenticated() {
            TAG_LEN
        } else {
            0
        }
    }

    /// Header + payload + tag, or `None` if that overflows `usize`.
    pub fn total_len(&self) -> Option<usize> {
        HEADER_LEN
            .checked_add(self.payload_len() as usize)?
            .checked_add(self.tag_len())
    }

    /// The header bytes (the AEAD associated data).
    pub fn header(&self) -> &[u8] {
        &self.buf.as_ref()[..HEADER_LEN]
    }

    /// The payload bytes. Needs [`Frame::check_len`].
    pub fn payload(&self) -> &[u8] {
        let end = HEADER_LEN + self.payload_len() as usize;
        &self.buf.as_ref()[HEADER_LEN..end]
    }

    /// The tag bytes (empty when unauthenticated). Needs [`Frame::check_len`].
    pub fn tag(&self) -> &[u8] {
        let start = HEADER_LEN + self.payload_len() as usize;
        &self.buf.as_ref()[start..start + self.tag_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Sets the magic.
    pub fn set_magic(&mut self, m: [u8; 4]) {
        self.buf.as_mut()[field::MAGIC].copy_from_slice(&m);
    }

    /// Sets the version.
    pub fn set_version(&mut self, v: u8) {
        self.buf.as_mut()[field::VERSION] = v;
    }

    /// Sets the raw kind.
    pub fn set_kind(&mut self, k: u8) {
        self.buf.as_mut()[field::KIND] = k;
    }

    /// Sets the raw flags.
    pub fn set_flags(&mut self, f: u8) {
        self.buf.as_mut()[field::FLAGS] = f;
    }

    /// Sets reserved byte 7.
    pub fn set_reserved0(&mut self, v: u8) {
        self.buf.as_mut()[field::RESERVED0] = v;
    }

    set!(set_sender, u16, field::SENDER, "Sets the sender.");
    set!(set_origin, u16, field::ORIGIN, "Sets the frame origin.");
    set!(set_number, u32, field::NUMBER, "Sets the frame number.");
    set!(set_task, u16, field::TASK, "Sets the task.");
    set!(
        set_reserved1,
        u16,
        field::RESERVED1,
        "Sets reserved bytes 18..20."
    );
    set!(set_seq, u64, field::SEQ, "Sets the sequence number.");
    set!(set_payload_len, u32, field::LEN, "Sets the payload length.");

    /// The header and the payload, split for in-place sealing. Needs [`Frame::check_len`].
    pub fn header_and_payload_mut(&mut self) -> (&mut [u8], &mut [u8]) {
        let end = HEADER_LEN + self.payload_len() as usize;
        let (h, rest) = self.buf.as_mut()[..end].split_at_mut(HEADER_LEN);
        (h, rest)
    }

    /// The payload bytes, mutable. Needs [`Frame::check_len`].
    pub fn payload_mut(&mut self) -> &mut [u8] {
        self.header_and_payload_mut().1
    }

    /// The tag bytes, mutable. Needs [`Frame::check_len`].
    pub fn tag_mut(&mut self) -> &mut [u8] {
        let start = HEADER_LEN + self.payload_len() as usize;
        let n = self.tag_len();
        &mut self.buf.as_mut()[start..start + n]
    }
}

/// The meaning of a frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HeaderRepr {
    /// Message kind.
    pub kind: Kind,
    /// True when the payload is encrypted and followed by a tag.
    pub authenticated: bool,
    /// Sending node.
    pub sender: NodeId,
    /// The frame the message is about (`FrameKey::default()` when none).
    pub frame: FrameKey,
    /// The tile or stripe the message is about (0 when none).
    pub task: u16,
    /// The sender's sequence number (strictly increasing per sender; the AEAD nonce).
    pub seq: u64,
    /// Payload length in bytes (tag excluded).
    pub payload_len: u32,
}

impl HeaderRepr {
    /// The header for sending `msg` (frame and task copied from it) with a payload of
    /// `msg.buffer_len()` bytes.
    pub fn for_message(msg: &Message<'_>, sender: NodeId, seq: u64, authenticated: bool) -> Self {
        HeaderRepr {
            kind: msg.kind(),
            authenticated,
            sender,
            frame: msg.frame().unwrap_or_default(),
            task: msg.task().unwrap_or(0),
            seq,
            payload_len: msg.buffer_len() as u32,
        }
    }

    /// Parses a header, checking magic, version, kind, flags, reserved bits and the payload
    /// length against `limits` (the payload itself need not be present).
    pub fn parse<T: AsRef<[u8]>>(frame: &Frame<T>, limits: &Limits) -> Result<Self, WireError> {
        frame.check_header_len()?;
        if frame.magic() != MAGIC {
            return Err(WireError::BadMagic);
        }
        if frame.version() != VERSION {
            return Err(WireError::UnknownVersion);
        }
        let kind = Kind::from_u8(frame.kind())?;
        if frame.flags() & !FLAG_AUTH != 0 || frame.reserved0() != 0 || frame.reserved1() != 0 {
            return Err(WireError::BadValue);
        }
        if frame.payload_len() > limits.max_payload {
            return Err(WireError::Oversized);
        }
        Ok(HeaderRepr {
            kind,
            authenticated: frame.authenticated(),
            sender: frame.sender(),
            frame: FrameKey::new(frame.origin(), frame.number()),
            task: frame.task(),
            seq: frame.seq(),
            payload_len: frame.payload_len(),
        })
    }

    /// Writes the header into `frame` (whose buffer must hold [`HEADER_LEN`] bytes).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut Frame<T>) {
        frame.set_magic(MAGIC);
        frame.set_version(VERSION);
        frame.set_kind(self.kind.into());
        frame.set_flags(if self.authenticated { FLAG_AUTH } else { 0 });
        frame.set_reserved0(0);
        frame.set_sender(self.sender);
        frame.set_origin(self.frame.origin);
        frame.set_number(self.frame.number);
        frame.set_task(self.task);
        frame.set_reserved1(0);
        frame.set_seq(self.seq);
        frame.set_payload_len(self.payload_len);
    }

    /// The header as bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        self.emit(&mut Frame::new_unchecked(&mut b[..]));
        b
    }

    /// Tag length this header implies.
    pub const fn tag_len(&self) -> usize {
        if self.authenticated {
            TAG_LEN
        } else {
            0
        }
    }

    /// Whole frame length: header, payload, tag.
    pub const fn frame_len(&self) -> usize {
        HEADER_LEN + self.payload_len as usize + self.tag_len()
    }

    /// Checks that the header's frame key and task agree with the message's.
    pub fn check_consistent(&self, msg: &Message<'_>) -> Result<(), WireError> {
        if self.kind != msg.kind()
            || self.frame != msg.frame().unwrap_or_default()
            || self.task != msg.task().unwrap_or(0)
        {
            return Err(WireError::Inconsistent);
        }
        Ok(())
    }
}
