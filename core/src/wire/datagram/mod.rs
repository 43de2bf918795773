//! The datagram transport's wire layer: messages cut into authenticated datagrams
//! ([`DatagramSender`], [`Outgoing`]) and put back together under a deadline
//! ([`Reassembler`]), for traffic that is worth less late than lost (coded shards and their
//! results): no datagram is ever retransmitted; a message whose fragments do not all arrive
//! within its lifetime is dropped whole.
//!
//! ```text
//!  offset  size  field
//!       0     4  magic  b"TSDG"
//!       4     1  version (1)
//!       5     1  kind (the message's kind; opaque to this layer)
//!       6     2  sender NodeId
//!       8     8  counter (per-sender datagram counter: AEAD nonce, replay window)
//!      16     4  message number (per sender; shared by a message's fragments)
//!      20     4  message length (bytes, the whole message)
//!      24     2  fragment index (< count)
//!      26     2  fragment count (1..=MAX_FRAGMENTS, <= max(length, 1))
//!      28     4  lifetime (µs the receiver waits for the rest after the first fragment)
//!      32     …  fragment payload, encrypted: bytes [i·len/n, (i+1)·len/n) of the message
//!     end-16 16  Poly1305 tag
//! ```
//! All integers little-endian. The payload's length is the datagram's (UDP keeps datagram
//! boundaries) less header and tag, and must be exactly the fragment's share.
//!
//! * Authentication: ChaCha20-Poly1305 with the cluster key, the 32-byte header as
//!   associated data. The nonce is `sender u16 LE ‖ 0x00 ‖ 0x80 ‖ counter u64 LE`
//!   ([`nonce`]): frames use `sender u32 LE ‖ sequence`, whose byte 3 is always zero, so the
//!   two transports can never share a nonce under the one key.
//! * Replay: a sliding window of [`ReplayWindow::SIZE`](crate::wire::ReplayWindow::SIZE)
//!   counters per sender; a counter below it is out of window, one inside already seen is a
//!   replay. Checked before decryption and recorded after it.
//! * Deadlines: the receiver starts a message's clock at its first fragment (no clock
//!   synchronisation needed) and waits `min(lifetime, max_lifetime)`; then the message is
//!   expired, its slot freed and its late fragments dropped. Numbers of finished messages are
//!   remembered per sender (a second window), so a straggler never reopens one.
//! * Bounds: [`MAX_FRAGMENTS`] per message, the caller's slots and buffers, a fixed table of
//!   senders. Every dropped datagram is a [`DropReason`] and a counter in
//!   [`DatagramStats`].
//!
//! ```
//! use tessera_core::time::{Duration, Instant};
//! use tessera_core::wire::datagram::{DatagramSender, Reassembler};
//! use tessera_core::wire::Key;
//! let key = Key::new([3; 32]);
//! let mut tx = DatagramSender::new(4, key.clone(), 1, 100).unwrap();
//! // Two reassembly slots of 512 bytes, up to four senders.
//! let mut rx: Reassembler<[u8; 512], 2, 4> =
//!     Reassembler::new(key, Duration::from_secs(1), [[0; 512]; 2]);
//! let msg: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
//! let mut out = tx.start(7, Duration::from_millis(50), msg.len()).unwrap();
//! let mut got = None;
//! let mut buf = [0u8; 100];
//! while let Some(n) = tx.next_datagram(&mut out, &msg, &mut buf).unwrap() {
//!     if let Some(d) = rx.receive(Instant::ZERO, &mut buf[..n]).unwrap() {
//!         got = Some((d.sender, d.kind, d.data.to_vec()));
//!     }
//! }
//! assert_eq!(got, Some((4, 7, msg)));
//! ```

mod drop;
mod header;
mod reassembler;
mod sender;

pub use drop::{DatagramStats, DropReason};
pub use header::{Datagram, DatagramRepr};
pub use reassembler::{Delivered, Reassembler};
pub use sender::{DatagramSender, Outgoing, SendError};

use super::frame::TAG_LEN;
use super::NodeId;

/// The first four bytes of every datagram.
pub const DGRAM_MAGIC: [u8; 4] = *b"TSDG";
/// The datagram layout version.
pub const DGRAM_VERSION: u8 = 1;
/// Header length in bytes.
pub const DGRAM_HEADER_LEN: usize = header::field::HEADER_LEN;
/// Bytes of every datagram that are not payload: header and tag.
pub const DGRAM_OVERHEAD: usize = DGRAM_HEADER_LEN + TAG_LEN;
/// Most fragments of one message (a receiver keeps one bit per fragment).
pub const MAX_FRAGMENTS: usize = 4096;
/// The default datagram size: the UDP payload that fits a 1500-byte Ethernet MTU without IP
/// fragmentation (1500 − 20 IPv4 − 8 UDP), so a lost frame costs one datagram.
pub const DEFAULT_DATAGRAM_LEN: usize = 1472;
/// Byte 3 of every datagram nonce (always 0 in a frame's nonce).
const NONCE_DOMAIN: u8 = 0x80;

/// The 12-byte nonce of the datagram from `sender` with `counter`.
pub const fn nonce(sender: NodeId, counter: u64) -> [u8; 12] {
    let s = sender.to_le_bytes();
    let c = counter.to_le_bytes();
    [
        s[0],
        s[1],
        0,
        NONCE_DOMAIN,
        c[0],
        c[1],
        c[2],
        c[3],
        c[4],
        c[5],
        c[6],
        c[7],
    ]
}
