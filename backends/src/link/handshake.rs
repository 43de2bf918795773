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
use tessera_core::wire::{Key, ReplayWindow, Role, WireError, PROBE, TAG_LEN};

/// Payload length of a `Hello` (node id, role, model fingerprint).
const HELLO_PAYLOAD: usize = 11;

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
    /// The `Hello` carries another model fingerprint than the listener's.
    Model,
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
            RefusalReason::Model => 6,
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
            6 => RefusalReason::Model,
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
            RefusalReason::Model => f.write_str(
                "it runs another model (weights, cfg, fused layers, grid, kernel or policy \
                 differ: run `tessera check`)",
            ),
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

/// A probe's `Hello` (`tessera check`): sender [`PROBE`], role [`Role::Probe`], sealed with
/// `key`, sequence number `seq`. A node answers it with its own `Hello` (or a refusal) and
/// closes the connection.
pub fn probe_hello(key: Option<&Key>, seq: u64) -> ([u8; PRE_AUTH_FRAME], usize) {
    let mut buf = [0u8; PRE_AUTH_FRAME];
    let hello = Message::Hello {
        node: PROBE,
        role: Role::Probe,
        model: 0,
    };
    // Cannot fail: a sealed Hello is exactly PRE_AUTH_FRAME bytes, a clear one less.
    let n = wire::encode(&hello, PROBE, seq, key, &mut buf).unwrap_or(0);
    (buf, n)
}

/// What a node answered a probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeAnswer {
    /// Its `Hello`: who it is and the model it runs.
    Hello {
        /// Its node id.
        node: NodeId,
        /// Its role.
        role: Role,
        /// Its model fingerprint.
        model: u64,
    },
    /// It refused the probe (e.g. [`RefusalReason::Auth`]: another key).
    Refused(RefusalReason),
}

/// The whole length of the answer frame whose header is `header` ([`HEADER_LEN`] bytes);
/// anything longer than a `Hello` is refused before it is read.
pub fn probe_answer_len(header: &[u8]) -> Result<usize, WireError> {
    let limits = Limits {
        max_payload: HELLO_PAYLOAD as u32,
        ..Limits::LARGE
    };
    let h = HeaderRepr::parse(&Frame::new_unchecked(header), &limits)?;
    match h.frame_len() {
        n if n > PRE_AUTH_FRAME => Err(WireError::Oversized),
        n => Ok(n),
    }
}

/// Reads a probe's answer (the whole frame, see [`probe_answer_len`]): a clear refusal, or a
/// `Hello` that must verify with `key`.
pub fn parse_probe_answer(frame: &mut [u8], key: Option<&Key>) -> Result<ProbeAnswer, WireError> {
    if let Some(reason) = parse_refusal(frame) {
        return Ok(ProbeAnswer::Refused(reason));
    }
    let limits = Limits {
        max_payload: HELLO_PAYLOAD as u32,
        ..Limits::LARGE
    };
    let mut stats = wire::AuthStats::default();
    match wire::decode(frame, key, &limits, &mut ReplayWindow::new(), &mut stats)? {
        (h, Message::Hello { node, role, model }) if h.sender == node => {
            Ok(ProbeAnswer::Hello { node, role, model })
        }
        _ => Err(WireError::BadValue),
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
            model: u64::MAX,
        };
        let mut buf = [0u8; 256];
        let n = wire::encode(&hello, 7, 1, Some(&Key::new([1; 32])), &mut buf).unwrap();
        assert_eq!(n, PRE_AUTH_FRAME);
        const { assert!(REFUSAL_LEN <= PRE_AUTH_FRAME) };
    }

    #[test]
    fn a_probe_answer_is_a_verified_hello_or_a_refusal() {
        let key = Key::new([9; 32]);
        let (probe, n) = probe_hello(Some(&key), 5);
        assert_eq!(n, PRE_AUTH_FRAME);
        assert_eq!(probe_answer_len(&probe[..HEADER_LEN]), Ok(PRE_AUTH_FRAME));
        let hello = Message::Hello {
            node: 4,
            role: Role::Edge,
            model: 0xfeed,
        };
        let mut buf = [0u8; PRE_AUTH_FRAME];
        let n = wire::encode(&hello, 4, 1, Some(&key), &mut buf).unwrap();
        let answer = parse_probe_answer(&mut buf[..n].to_vec(), Some(&key));
        assert_eq!(
            answer,
            Ok(ProbeAnswer::Hello {
                node: 4,
                role: Role::Edge,
                model: 0xfeed
            })
        );
        // Sealed with another key: it does not verify.
        let other = Key::new([8; 32]);
        assert!(parse_probe_answer(&mut buf[..n], Some(&other)).is_err());
        let mut r = refusal_frame(0, RefusalReason::Auth);
        assert_eq!(
            parse_probe_answer(&mut r, Some(&key)),
            Ok(ProbeAnswer::Refused(RefusalReason::Auth))
        );
        // A header declaring a large frame is refused before anything is read.
        let mut big = [0u8; 64];
        let t = wire::encode(&Message::Heartbeat, 0, 1, None, &mut big).unwrap();
        big[HEADER_LEN - 4..HEADER_LEN].copy_from_slice(&(1u32 << 20).to_le_bytes());
        assert!(probe_answer_len(&big[..t.max(HEADER_LEN)]).is_err());
    }

    #[test]
    fn refusal_round_trip() {
        for r in [
            RefusalReason::Auth,
            RefusalReason::UnknownId,
            RefusalReason::IdInUse,
            RefusalReason::Protocol,
            RefusalReason::Busy,
            RefusalReason::Model,
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
                model: 0,
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
