//! An in-memory embedded-nal stack with scripted peers (for [`replay`](super::replay) and
//! tests of the link without sockets).

extern crate alloc;

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::net::SocketAddr;

use embedded_nal::{nb, TcpClientStack, TcpError, TcpErrorKind, TcpFullStack};

/// A failed operation of [`MemStack`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MemError(pub TcpErrorKind);

impl TcpError for MemError {
    fn kind(&self) -> TcpErrorKind {
        self.0
    }
}

/// One scripted connection: what the remote end sends, and what it received.
#[derive(Debug, Default)]
pub struct MemConn {
    /// Bytes the remote end sends, not yet read.
    pub input: VecDeque<u8>,
    /// Most bytes one `receive` returns.
    pub chunk: usize,
    /// Once `input` is drained: the remote end closed (true) or stays silent (false).
    pub eof: bool,
    /// Bytes the local end sent.
    pub output: Vec<u8>,
    /// Bytes the local end read.
    pub consumed: usize,
    /// The local end closed it.
    pub closed: bool,
}

/// A socket of [`MemStack`].
#[derive(Debug)]
pub enum MemSocket {
    /// Not bound or connected.
    Fresh,
    /// Bound or listening.
    Listening,
    /// Connection number `n` of the stack.
    Conn(usize),
}

/// An in-memory TCP stack: connections are scripted with [`MemStack::incoming`] (accepted by
/// the listener) and [`MemStack::outgoing`] (taken by the next connect; without one a connect
/// is refused).
#[derive(Debug, Default)]
pub struct MemStack {
    accept: VecDeque<(usize, SocketAddr)>,
    dial: VecDeque<usize>,
    conns: Vec<MemConn>,
}

impl MemStack {
    /// An empty stack.
    pub fn new() -> Self {
        Self::default()
    }

    fn add(&mut self, input: &[u8], chunk: usize, eof: bool) -> usize {
        self.conns.push(MemConn {
            input: input.iter().copied().collect(),
            chunk: chunk.max(1),
            eof,
            ..MemConn::default()
        });
        self.conns.len() - 1
    }

    /// Queues a connection from `from` for the listener; returns its number.
    pub fn incoming(&mut self, from: SocketAddr, input: &[u8], chunk: usize, eof: bool) -> usize {
        let n = self.add(input, chunk, eof);
        self.accept.push_back((n, from));
        n
    }

    /// Scripts the connection the next connect gets; returns its number.
    pub fn outgoing(&mut self, input: &[u8], chunk: usize, eof: bool) -> usize {
        let n = self.add(input, chunk, eof);
        self.dial.push_back(n);
        n
    }

    /// Connection number `n`.
    pub fn conn(&self, n: usize) -> &MemConn {
        &self.conns[n]
    }

    fn open(&mut self, s: &MemSocket) -> Result<&mut MemConn, MemError> {
        match s {
            MemSocket::Conn(n) if !self.conns[*n].closed => Ok(&mut self.conns[*n]),
            MemSocket::Conn(_) => Err(MemError(TcpErrorKind::PipeClosed)),
            _ => Err(MemError(TcpErrorKind::Other)),
        }
    }
}

impl TcpClientStack for MemStack {
    type TcpSocket = MemSocket;
    type Error = MemError;

    fn socket(&mut self) -> Result<MemSocket, MemError> {
        Ok(MemSocket::Fresh)
    }

    fn connect(&mut self, s: &mut MemSocket, _remote: SocketAddr) -> nb::Result<(), MemError> {
        match s {
            MemSocket::Conn(_) => Ok(()),
            MemSocket::Fresh => match self.dial.pop_front() {
                Some(n) => {
                    *s = MemSocket::Conn(n);
                    Ok(())
                }
                None => Err(nb::Error::Other(MemError(TcpErrorKind::Other))),
            },
            MemSocket::Listening => Err(nb::Error::Other(MemError(TcpErrorKind::Other))),
        }
    }

    fn send(&mut self, s: &mut MemSocket, buf: &[u8]) -> nb::Result<usize, MemError> {
        let c = self.open(s)?;
        c.output.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn receive(&mut self, s: &mut MemSocket, buf: &mut [u8]) -> nb::Result<usize, MemError> {
        let c = self.open(s)?;
        let n = buf.len().min(c.chunk).min(c.input.len());
        if n == 0 {
            return match (buf.is_empty(), c.eof) {
                (false, true) => Err(nb::Error::Other(MemError(TcpErrorKind::PipeClosed))),
                _ => Err(nb::Error::WouldBlock),
            };
        }
        for (d, b) in buf.iter_mut().zip(c.input.drain(..n)) {
            *d = b;
        }
        c.consumed += n;
        Ok(n)
    }

    fn close(&mut self, s: MemSocket) -> Result<(), MemError> {
        if let MemSocket::Conn(n) = s {
            self.conns[n].closed = true;
        }
        Ok(())
    }
}

impl TcpFullStack for MemStack {
    fn bind(&mut self, s: &mut MemSocket, _port: u16) -> Result<(), MemError> {
        *s = MemSocket::Listening;
        Ok(())
    }

    fn listen(&mut self, _s: &mut MemSocket) -> Result<(), MemError> {
        Ok(())
    }

    fn accept(&mut self, _s: &mut MemSocket) -> nb::Result<(MemSocket, SocketAddr), MemError> {
        let (n, from) = self.accept.pop_front().ok_or(nb::Error::WouldBlock)?;
        Ok((MemSocket::Conn(n), from))
    }
}
