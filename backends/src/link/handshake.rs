//! The first frame of a connection: what may be buffered before it verifies, and the refusal
//! a listener sends back when it does not.
//!
//! A refused dialler is told why with one *unauthenticated* `Reject { code }` frame written
//! just before the listener closes (a refusal cannot be sealed: the reason may be that the
//! dialler has the wrong key). Anyone on the path could forge one, so the dialler treats it as
//! a hint: it is counted and reported, re-dialled with the usual backoff, and only a run of
//! refusals ([`HandshakeConfig::max_refusals`](super::HandshakeConfig::max_refusals)) makes
//! the link give up. A connection closed without a refusal is an ordinary failed dial.

use core::fmt;

use tessera_core::wire::{self, Frame, HeaderRepr, Kind, Limits, Message, NodeId, HEADER_LEN};
use tessera_core::wire::{ReplayWindow, TAG_LEN};

/// Payload length of a `Hello` (node id, role).
const HELLO_PAYLOAD: usize = 3;

/// Most bytes one connection may buffer before its first frame verifies: a sealed `Hello`
/// (a refusal, clear and 2 bytes of payload, is smaller). A header declaring more drops the
/// connection at once, so a peer without the key never makes the link allocate for it.
pub const PRE_AUTH_FRAME: usize = HEADER_LEN + HELLO_PAYLOAD + TAG_LEN;

/// Why a listener refused a dialler's `Hello` (the `code` of the refusal frame).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusalReason {
    /// The `Hello` did not verify: wrong key, or one side runs without authentication.
    Auth,
    /// The `Hello` names a node the listener does not know.
    UnknownId,
    /// Another live connection, from another address, holds that node id.
    IdInUse,
    /// Not a `Hello`, or a malformed or oversized first frame.
    Protocol,
    /// The listener is at its cap of waiting connections (try again later).
    Busy,
    /// A code this build does not know.
    Other(u16),
}

impl RefusalReason {
    /// The wire code.
    pub const fn code(self) -> u16 {
        match self {
            RefusalReason::Auth => 1,
            RefusalReason::UnknownId => 2,
            RefusalReason::IdInUse => 3,
            RefusalReason::Protocol => 4,
            RefusalReason::Busy => 5,
            RefusalReason::Other(c) => c,
        }
    }

    /// The reason with wire code `code`.
    pub const fn from_code(code: u16) -> Self {
        match code {
            1 => RefusalReason::Auth,
            2 => RefusalReason::UnknownId,
            3 => RefusalReason::IdInUse,
            4 => RefusalReason::Protocol,
            5 => RefusalReason::Busy,
            c => RefusalReason::Other(c),
        }
    }

    /// True when retrying cannot help by itself (a configuration error on one side): these
    /// count towards giving up, a busy listener does not.
    pub const fn is_persistent(self) -> bool {
        !matches!(self, RefusalReason::Busy)
    }
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefusalReason::Auth => f.write_str("Hello did not verify (different cluster keys?)"),
            RefusalReason::UnknownId => f.write_str("our node id is not in its cluster file"),
            RefusalReason::IdInUse => {
                f.write_str("our node id is held by a live connection from another address")
            }
            RefusalReason::Protocol => f.write_str("our first frame was malformed"),
            RefusalReason::Busy => f.write_str("too many connections waiting to authenticate"),
            RefusalReason::Other(c) => write!(f, "refusal code {c}"),
        }
    }
}

/// A peer refused our `Hello`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The peer that refused.
    pub peer: NodeId,
    /// Its reason.
    pub reason: RefusalReason,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node {} refused our Hello: {}", self.peer, self.reason)
    }
}

/// Length of a refusal frame.
pub(super) const REFUSAL_LEN: usize = HEADER_LEN + 2;

/// A refusal frame from `me` (clear: see the module docs).
pub(super) fn refusal_frame(me: NodeId, reason: RefusalReason) -> [u8; REFUSAL_LEN] {
    let mut buf = [0u8; REFUSAL_LEN];
    let msg = Message::Reject {
        code: reason.code(),
    };
    // Cannot fail: the buffer is exactly the frame's length.
    let _ = wire::encode(&msg, me, 0, None, &mut buf);
    buf
}

/// The reason in `frame` when it is a clear refusal, `None` for anything else.
pub(super) fn parse_refusal(frame: &mut [u8]) -> Option<RefusalReason> {
    let limits = Limits {
        max_payload: 2,
        ..Limits::LARGE
    };
    let h = HeaderRepr::parse(&Frame::new_unchecked(&*frame), &limits).ok()?;
    if h.authenticated || h.kind != Kind::Reject {
        return None;
    }
    let mut stats = wire::AuthStats::default();
    match wire::decode(frame, None, &limits, &mut ReplayWindow::new(), &mut stats) {
        Ok((_, Message::Reject { code })) => Some(RefusalReason::from_code(code)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_core::wire::{Key, Role};

    #[test]
    fn a_sealed_hello_and_a_refusal_fit_the_pre_auth_cap() {
        let hello = Message::Hello {
            node: 7,
            role: Role::Edge,
        };
        let mut buf = [0u8; 256];
        let n = wire::encode(&hello, 7, 1, Some(&Key::new([1; 32])), &mut buf).unwrap();
        assert_eq!(n, PRE_AUTH_FRAME);
        const { assert!(REFUSAL_LEN <= PRE_AUTH_FRAME) };
    }

    #[test]
    fn refusal_round_trip() {
        for r in [
            RefusalReason::Auth,
            RefusalReason::UnknownId,
            RefusalReason::IdInUse,
            RefusalReason::Protocol,
            RefusalReason::Busy,
            RefusalReason::Other(900),
        ] {
            let mut f = refusal_frame(3, r);
            assert_eq!(parse_refusal(&mut f), Some(r));
            assert_eq!(RefusalReason::from_code(r.code()), r);
        }
        // A sealed Reject or a Hello is not a refusal.
        let mut buf = [0u8; 64];
        let n = wire::encode(
            &Message::Reject { code: 1 },
            3,
            1,
            Some(&Key::new([1; 32])),
            &mut buf,
        )
        .unwrap();
        assert_eq!(parse_refusal(&mut buf[..n]), None);
        let n = wire::encode(
            &Message::Hello {
                node: 3,
                role: Role::Edge,
            },
            3,
            1,
            None,
            &mut buf,
        )
        .unwrap();
        assert_eq!(parse_refusal(&mut buf[..n]), None);
    }
}
