//! How a coded tail's shards and results travel between the gateway and its workers
//! ([`TailTransport`], a cluster file's `tail_transport`).

extern crate alloc;

use alloc::string::{String, ToString};
use core::fmt;
use core::str::FromStr;

/// The coded tail's transport: the node's TCP link (the default), or authenticated datagrams
/// on the node's UDP port of the same number (see `docs/datagram.md`). Everything else (FTP
/// tiles, control, Hello and liveness) stays on the link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TailTransport {
    /// On the link: a lost segment delays every message behind it.
    #[default]
    Tcp,
    /// On datagrams: a lost datagram loses its message at once, an erasure the parity covers.
    Datagram,
}

/// A `tail_transport` value that is neither `tcp` nor `datagram`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown tail_transport '{0}': use \"tcp\" or \"datagram\"")]
pub struct TransportError(pub String);

impl FromStr for TailTransport {
    type Err = TransportError;

    fn from_str(s: &str) -> Result<TailTransport, TransportError> {
        match s {
            "tcp" => Ok(TailTransport::Tcp),
            "datagram" => Ok(TailTransport::Datagram),
            _ => Err(TransportError(s.to_string())),
        }
    }
}

impl fmt::Display for TailTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TailTransport::Tcp => "tcp",
            TailTransport::Datagram => "datagram",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spells_round_trip_and_bad_values_are_named() {
        for s in ["tcp", "datagram"] {
            assert_eq!(s.parse::<TailTransport>().unwrap().to_string(), s);
        }
        for bad in ["", "udp", "TCP", "datagrams"] {
            let e = bad.parse::<TailTransport>().unwrap_err();
            assert_eq!(e, TransportError(bad.to_string()));
            assert!(e.to_string().contains("use \"tcp\" or \"datagram\""), "{e}");
        }
    }
}
