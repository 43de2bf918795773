//! What `tessera check` asks each node: a TCP connect, a probe `Hello` sealed with the
//! cluster key, and the node's answer (its id and model fingerprint, or a refusal such as a
//! different key), each step bounded by a timeout.

extern crate alloc;
extern crate std;

use alloc::format;
use alloc::string::{String, ToString};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use tessera_core::wire::{Key, HEADER_LEN};

use crate::cluster::epoch_micros;
use crate::link::handshake::{parse_probe_answer, probe_answer_len, probe_hello, ProbeAnswer};
use crate::link::PRE_AUTH_FRAME;

/// What probing one node found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// No TCP connection (what the socket said).
    Unreachable(String),
    /// Connected, but no answer came (closed or silent: what happened).
    NoAnswer(String),
    /// An answer that is not a verified `Hello` nor a refusal.
    Garbled(String),
    /// A refusal or the node's `Hello`.
    Answer(ProbeAnswer),
}

/// Probes the node at `addr` with a `Hello` sealed with `key`, waiting at most `timeout` for
/// the connect and again for the answer.
pub fn probe(addr: SocketAddr, key: Option<&Key>, timeout: Duration) -> Probe {
    let mut s = match TcpStream::connect_timeout(&addr, timeout) {
        Ok(s) => s,
        Err(e) => return Probe::Unreachable(unreachable_why(&e)),
    };
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    let (hello, n) = probe_hello(key, epoch_micros().max(1));
    if let Err(e) = s.write_all(&hello[..n]) {
        return Probe::NoAnswer(format!("sending the probe: {e}"));
    }
    let mut frame = [0u8; PRE_AUTH_FRAME];
    if let Err(e) = s.read_exact(&mut frame[..HEADER_LEN]) {
        return Probe::NoAnswer(match e.kind() {
            ErrorKind::UnexpectedEof => "closed without answering (not a tessera node?)".into(),
            ErrorKind::WouldBlock | ErrorKind::TimedOut => "no answer in time".into(),
            _ => e.to_string(),
        });
    }
    let len = match probe_answer_len(&frame[..HEADER_LEN]) {
        Ok(len) => len,
        Err(e) => return Probe::Garbled(format!("answer header: {e}")),
    };
    if let Err(e) = s.read_exact(&mut frame[HEADER_LEN..len]) {
        return Probe::NoAnswer(format!("reading the answer: {e}"));
    }
    match parse_probe_answer(&mut frame[..len], key) {
        Ok(a) => Probe::Answer(a),
        Err(e) => Probe::Garbled(format!("answer did not verify ({e}): another key?")),
    }
}

/// Why a connect failed, in an operator's words.
fn unreachable_why(e: &std::io::Error) -> String {
    match e.kind() {
        ErrorKind::ConnectionRefused => "connection refused (is tessera running there?)".into(),
        ErrorKind::TimedOut | ErrorKind::WouldBlock => {
            "no answer to connect (down or firewalled?)".into()
        }
        _ => e.to_string(),
    }
}
