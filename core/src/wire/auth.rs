//! Frame authentication: ChaCha20-Poly1305 (RFC 8439) with a pre-shared cluster key, and replay
//! protection.
//!
//! * Key: the 32-byte cluster key from the configuration ([`Key`]).
//! * Nonce: `sender as u32 LE ‖ sequence as u64 LE` (12 bytes), both taken from the header, so
//!   the nonce is unique as long as every node id is unique and a sender never reuses a
//!   sequence number under one key. A node must therefore start its counter above anything it
//!   sent before (e.g. microseconds since the Unix epoch at start-up) — receivers enforce it
//!   anyway: a sequence not above the last accepted ones is rejected as a replay.
//! * Associated data: the 32-byte header (so kind, sender, frame, task, sequence and length
//!   are authenticated though sent in clear); the payload is encrypted; the 16-byte tag follows
//!   the payload.
//!
//! The AEAD is composed here from the `chacha20` and `poly1305` crates rather than taken from
//! `chacha20poly1305`, because a one-shot AEAD needs the whole payload in one buffer: the
//! [`Sealer`] encrypts and authenticates chunk by chunk, so a large tensor is streamed from its
//! `f32` source to the socket through a small buffer ([`FrameEncoder`](super::FrameEncoder))
//! and never held twice. The output is byte-for-byte that of RFC 8439 AEAD_CHACHA20_POLY1305
//! (tested against `chacha20poly1305`).
//!
//! All nodes share one key, so authentication proves membership of the cluster, not identity:
//! a member can claim another member's id. The runtime ties the header's sender to the peer's
//! `Hello` on each connection.

use core::fmt;

use chacha20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use chacha20::ChaCha20;
use poly1305::universal_hash::{array::Array, KeyInit, UniversalHash};
use poly1305::Poly1305;

use super::frame::{Frame, HEADER_LEN, TAG_LEN};
use super::WireError;

/// A 32-byte pre-shared cluster key.
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; 32]);

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

impl Key {
    /// The key with these bytes.
    pub const fn new(bytes: [u8; 32]) -> Self {
        Key(bytes)
    }

    /// Parses 64 hexadecimal digits (as written in a cluster file).
    pub fn from_hex(s: &str) -> Result<Self, WireError> {
        let s = s.as_bytes();
        if s.len() != 64 {
            return Err(WireError::BadValue);
        }
        let digit = |c: u8| -> Result<u8, WireError> {
            match c {
                b'0'..=b'9' => Ok(c - b'0'),
                b'a'..=b'f' => Ok(c - b'a' + 10),
                b'A'..=b'F' => Ok(c - b'A' + 10),
                _ => Err(WireError::BadValue),
            }
        };
        let mut k = [0u8; 32];
        for (i, b) in k.iter_mut().enumerate() {
            *b = digit(s[2 * i])? << 4 | digit(s[2 * i + 1])?;
        }
        Ok(Key(k))
    }

    /// The key bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// The 12-byte nonce of a frame from `sender` with sequence `seq`.
pub fn nonce(sender: u16, seq: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(&(sender as u32).to_le_bytes());
    n[4..].copy_from_slice(&seq.to_le_bytes());
    n
}

/// Poly1305 over a byte stream cut at arbitrary points (buffers a partial 16-byte block).
struct Mac {
    mac: Poly1305,
    pending: [u8; 16],
    npending: usize,
}

impl Mac {
    fn update(&mut self, mut data: &[u8]) {
        if self.npending > 0 {
            let n = (16 - self.npending).min(data.len());
            self.pending[self.npending..self.npending + n].copy_from_slice(&data[..n]);
            self.npending += n;
            data = &data[n..];
            if self.npending < 16 {
                return;
            }
            self.mac.update(&[Array(self.pending)]);
            self.npending = 0;
        }
        let (blocks, rest) = Array::slice_as_chunks(data);
        self.mac.update(blocks);
        self.pending[..rest.len()].copy_from_slice(rest);
        self.npending = rest.len();
    }

    /// Pads the data to a block boundary (RFC 8439 `pad16`) and appends the lengths block.
    fn finish(mut self, aad_len: u64, data_len: u64) -> Poly1305 {
        if self.npending > 0 {
            self.mac.update_padded(&self.pending[..self.npending]);
        }
        let mut lens = [0u8; 16];
        lens[..8].copy_from_slice(&aad_len.to_le_bytes());
        lens[8..].copy_from_slice(&data_len.to_le_bytes());
        self.mac.update(&[Array(lens)]);
        self.mac
    }
}

/// The keystream and MAC state for one frame, keyed from its header.
struct State {
    cipher: ChaCha20,
    mac: Mac,
    len: u64,
}

impl State {
    fn new(key: &Key, header: &[u8; HEADER_LEN]) -> Self {
        let f = Frame::new_unchecked(&header[..]);
        Self::with_nonce(key, nonce(f.sender(), f.seq()), header)
    }

    /// The state for `nonce`, with a 32-byte associated data block (a frame's or a
    /// datagram's header).
    fn with_nonce(key: &Key, nonce: [u8; 12], header: &[u8; HEADER_LEN]) -> Self {
        let mut cipher = ChaCha20::new(&Array(key.0), &Array(nonce));
        let mut otk = [0u8; 32];
        cipher.apply_keystream(&mut otk);
        cipher.seek(64u64);
        let mut mac = Mac {
            mac: Poly1305::new(&Array(otk)),
            pending: [0; 16],
            npending: 0,
        };
        // The header is 32 bytes, a whole number of blocks: no padding needed after the AAD.
        mac.update(header);
        State {
            cipher,
            mac,
            len: 0,
        }
    }

    fn finish(self) -> Poly1305 {
        self.mac.finish(HEADER_LEN as u64, self.len)
    }
}

/// Incremental ChaCha20-Poly1305 encryption of one frame's payload.
///
/// Feed the payload in order, in chunks of any size, with [`Sealer::seal_chunk`] (encrypts in
/// place), then [`Sealer::finish`] gives the tag to send after the payload.
pub struct Sealer {
    state: State,
}

impl Sealer {
    /// Starts sealing the payload of the frame whose header is `header` (the nonce is read from
    /// its sender and sequence fields).
    pub fn new(key: &Key, header: &[u8; HEADER_LEN]) -> Self {
        Sealer {
            state: State::new(key, header),
        }
    }

    /// Encrypts the next payload bytes in place and authenticates them.
    pub fn seal_chunk(&mut self, chunk: &mut [u8]) {
        self.state.cipher.apply_keystream(chunk);
        self.state.mac.update(chunk);
        self.state.len += chunk.len() as u64;
    }

    /// Payload bytes sealed so far.
    pub const fn sealed_len(&self) -> u64 {
        self.state.len
    }

    /// The tag.
    pub fn finish(self) -> [u8; TAG_LEN] {
        self.state.finish().finalize().0
    }
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("sealed_len", &self.state.len)
            .finish_non_exhaustive()
    }
}

/// Encrypts `payload` in place and returns the tag (AAD = `header`).
pub fn seal(key: &Key, header: &[u8; HEADER_LEN], payload: &mut [u8]) -> [u8; TAG_LEN] {
    let mut s = Sealer::new(key, header);
    s.seal_chunk(payload);
    s.finish()
}

/// Verifies `tag` over `header` and the encrypted `payload` (in constant time) and, only if it
/// matches, decrypts `payload` in place. On [`WireError::Forged`] the payload is left as
/// received.
pub fn open(
    key: &Key,
    header: &[u8; HEADER_LEN],
    payload: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Result<(), WireError> {
    verify_then_decrypt(State::new(key, header), payload, tag)
}

fn verify_then_decrypt(
    mut st: State,
    payload: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Result<(), WireError> {
    st.mac.update(payload);
    let State {
        mut cipher, mac, ..
    } = st;
    mac.finish(HEADER_LEN as u64, payload.len() as u64)
        .verify(&Array(*tag))
        .map_err(|_| WireError::Forged)?;
    cipher.apply_keystream(payload);
    Ok(())
}

/// Encrypts `payload` in place under an explicit `nonce` and returns the tag (AAD = the
/// 32-byte `header`). For the datagram transport, whose nonces live in their own domain
/// ([`datagram`](super::datagram)); frames use [`seal`].
pub fn seal_with_nonce(
    key: &Key,
    nonce: [u8; 12],
    header: &[u8; HEADER_LEN],
    payload: &mut [u8],
) -> [u8; TAG_LEN] {
    let mut s = Sealer {
        state: State::with_nonce(key, nonce, header),
    };
    s.seal_chunk(payload);
    s.finish()
}

/// [`open`] under an explicit `nonce` (see [`seal_with_nonce`]).
pub fn open_with_nonce(
    key: &Key,
    nonce: [u8; 12],
    header: &[u8; HEADER_LEN],
    payload: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Result<(), WireError> {
    verify_then_decrypt(State::with_nonce(key, nonce, header), payload, tag)
}

/// Counts of authentication outcomes at a receiver.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuthStats {
    /// Frames accepted (tag valid, or insecure mode, and fresh sequence).
    pub accepted: u64,
    /// Frames rejected for a bad tag, or for lacking one on a secure receiver.
    pub forged: u64,
    /// Frames rejected for a replayed or too old sequence number.
    pub replayed: u64,
}

/// Replay protection for the frames of one sender: a sliding window of the last
/// [`ReplayWindow::SIZE`] sequence numbers (as IPsec and WireGuard do).
///
/// A sequence is accepted if it is above every accepted one, or within the window below the
/// highest and not seen yet; anything else is a replay. Over one TCP connection sequences only
/// grow; the window tolerates the reordering of a sender's frames across connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayWindow {
    top: u64,
    seen: u64,
    started: bool,
}

impl ReplayWindow {
    /// Width of the window in sequence numbers.
    pub const SIZE: u64 = 64;

    /// A window that has accepted nothing yet.
    pub const fn new() -> Self {
        ReplayWindow {
            top: 0,
            seen: 0,
            started: false,
        }
    }

    /// The highest accepted sequence, if any.
    pub const fn highest(&self) -> Option<u64> {
        if self.started {
            Some(self.top)
        } else {
            None
        }
    }

    /// Checks `seq` without recording it.
    pub fn check(&self, seq: u64) -> Result<(), WireError> {
        if !self.started || seq > self.top {
            return Ok(());
        }
        let back = self.top - seq;
        if back >= Self::SIZE || self.seen & (1 << back) != 0 {
            Err(WireError::Replayed)
        } else {
            Ok(())
        }
    }

    /// Checks `seq` and records it as accepted.
    pub fn accept(&mut self, seq: u64) -> Result<(), WireError> {
        self.check(seq)?;
        if !self.started {
            self.started = true;
            self.top = seq;
            self.seen = 1;
        } else if seq > self.top {
            let shift = seq - self.top;
            self.seen = if shift >= Self::SIZE {
                0
            } else {
                self.seen << shift
            } | 1;
            self.top = seq;
        } else {
            self.seen |= 1 << (self.top - seq);
        }
        Ok(())
    }
}
