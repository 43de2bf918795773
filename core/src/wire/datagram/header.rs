//! The datagram header: a checked zero-copy view ([`Datagram`]) and its meaning
//! ([`DatagramRepr`]). Byte table in the [module docs](super).

use crate::time::Duration;
use crate::wire::cursor::{get_u16, get_u32, put};
use crate::wire::frame::TAG_LEN;
use crate::wire::NodeId;

use super::{DropReason, DGRAM_HEADER_LEN, DGRAM_MAGIC, DGRAM_VERSION, MAX_FRAGMENTS};

pub(crate) mod field {
    use core::ops::Range;

    pub const MAGIC: Range<usize> = 0..4;
    pub const VERSION: usize = 4;
    pub const KIND: usize = 5;
    pub const SENDER: Range<usize> = 6..8;
    pub const COUNTER: Range<usize> = 8..16;
    pub const MESSAGE: Range<usize> = 16..20;
    pub const LEN: Range<usize> = 20..24;
    pub const INDEX: Range<usize> = 24..26;
    pub const COUNT: Range<usize> = 26..28;
    pub const LIFETIME: Range<usize> = 28..32;
    pub const HEADER_LEN: usize = LIFETIME.end;
}

/// A datagram over any buffer: header, fragment payload, tag.
///
/// [`Datagram::new_checked`] checks only that the header and a tag fit; every accessor then
/// stays in bounds. Meaning (magic, version, fragment arithmetic) is checked by
/// [`DatagramRepr::parse`].
#[derive(Clone, Debug)]
pub struct Datagram<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Datagram<T> {
    /// Wraps `buf` after checking it holds a header and a tag ([`DropReason::Malformed`]
    /// otherwise).
    pub fn new_checked(buf: T) -> Result<Self, DropReason> {
        if buf.as_ref().len() < DGRAM_HEADER_LEN + TAG_LEN {
            return Err(DropReason::Malformed);
        }
        Ok(Datagram { buf })
    }

    /// The header bytes (the AEAD associated data).
    pub fn header(&self) -> &[u8; DGRAM_HEADER_LEN] {
        // `new_checked` guaranteed the length: the fallback is never taken.
        self.buf
            .as_ref()
            .first_chunk()
            .unwrap_or(&[0; DGRAM_HEADER_LEN])
    }

    /// The fragment's payload bytes (encrypted as received).
    pub fn payload(&self) -> &[u8] {
        let b = self.buf.as_ref();
        &b[DGRAM_HEADER_LEN..b.len() - TAG_LEN]
    }

    /// The tag.
    pub fn tag(&self) -> [u8; TAG_LEN] {
        let b = self.buf.as_ref();
        let mut t = [0u8; TAG_LEN];
        t.copy_from_slice(&b[b.len() - TAG_LEN..]);
        t
    }

    /// Consumes the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buf
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Datagram<T> {
    /// The header and the payload, split for opening in place (`None` cannot happen after
    /// `new_checked`).
    pub fn header_and_payload_mut(&mut self) -> Option<(&[u8; DGRAM_HEADER_LEN], &mut [u8])> {
        let b = self.buf.as_mut();
        let end = b.len().checked_sub(TAG_LEN)?;
        let (h, p) = b[..end].split_first_chunk_mut::<DGRAM_HEADER_LEN>()?;
        Some((h, p))
    }
}

/// The meaning of a datagram header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DatagramRepr {
    /// Kind of the message (opaque to this layer; the runtime's message kind).
    pub kind: u8,
    /// Sending node.
    pub sender: NodeId,
    /// The sender's datagram counter: the nonce, and the key of the replay window.
    pub counter: u64,
    /// The sender's message number (all fragments of a message share it).
    pub message: u32,
    /// Length of the whole message in bytes.
    pub len: u32,
    /// This fragment's index, `< count`.
    pub index: u16,
    /// Fragments of the message, `1..=MAX_FRAGMENTS`.
    pub count: u16,
    /// How long after its first fragment arrives the receiver waits for the rest, µs.
    pub lifetime_us: u32,
}

impl DatagramRepr {
    /// Parses and checks the header of `d`: magic, version, fragment arithmetic
    /// ([`DropReason::Malformed`]), and that the payload is exactly this fragment's share.
    pub fn parse<T: AsRef<[u8]>>(d: &Datagram<T>) -> Result<Self, DropReason> {
        let h = d.header();
        if h[field::MAGIC] != DGRAM_MAGIC || h[field::VERSION] != DGRAM_VERSION {
            return Err(DropReason::Malformed);
        }
        let mut c = [0u8; 8];
        c.copy_from_slice(&h[field::COUNTER]);
        let r = DatagramRepr {
            kind: h[field::KIND],
            sender: get_u16(h, field::SENDER),
            counter: u64::from_le_bytes(c),
            message: get_u32(h, field::MESSAGE),
            len: get_u32(h, field::LEN),
            index: get_u16(h, field::INDEX),
            count: get_u16(h, field::COUNT),
            lifetime_us: get_u32(h, field::LIFETIME),
        };
        let fits = r.count >= 1
            && r.count as usize <= MAX_FRAGMENTS
            && r.index < r.count
            && u32::from(r.count) <= r.len.max(1);
        if !fits || r.fragment().len() != d.payload().len() {
            return Err(DropReason::Malformed);
        }
        Ok(r)
    }

    /// Writes the header.
    pub fn emit(&self, h: &mut [u8; DGRAM_HEADER_LEN]) {
        put(h, field::MAGIC, &DGRAM_MAGIC);
        h[field::VERSION] = DGRAM_VERSION;
        h[field::KIND] = self.kind;
        put(h, field::SENDER, &self.sender.to_le_bytes());
        put(h, field::COUNTER, &self.counter.to_le_bytes());
        put(h, field::MESSAGE, &self.message.to_le_bytes());
        put(h, field::LEN, &self.len.to_le_bytes());
        put(h, field::INDEX, &self.index.to_le_bytes());
        put(h, field::COUNT, &self.count.to_le_bytes());
        put(h, field::LIFETIME, &self.lifetime_us.to_le_bytes());
    }

    /// The byte range of the message this fragment carries: fragment `i` of `n` holds
    /// `[i·len/n, (i+1)·len/n)`, so shares differ by at most one byte and none is empty.
    pub fn fragment(&self) -> core::ops::Range<usize> {
        fragment_range(self.len, self.index, self.count)
    }

    /// The receiver's wait for the rest of the message.
    pub const fn lifetime(&self) -> Duration {
        Duration::from_micros(self.lifetime_us as u64)
    }
}

/// Byte range of fragment `index` of `count` in a message of `len` bytes (`count >= 1`).
pub(crate) fn fragment_range(len: u32, index: u16, count: u16) -> core::ops::Range<usize> {
    let n = u64::from(count.max(1));
    let at = |i: u64| (i * u64::from(len) / n) as usize;
    at(u64::from(index))..at(u64::from(index) + 1)
}
