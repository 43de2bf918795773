//! embedded-nal TCP stack over std sockets (Linux, e.g. a Raspberry Pi).
//!
//! Sockets are non-blocking: `send`, `receive` and `accept` return `nb::Error::WouldBlock`
//! instead of waiting, so one driver thread can serve every peer with bounded work per poll.
//! `connect` is the exception: std has no non-blocking connect, so it waits at most
//! [`StdStack::connect_timeout`] (immediate on loopback and a LAN) and reports failure after.
//! A peer that closed its end is `TcpErrorKind::PipeClosed`, never a silent zero-length read.

extern crate std;

use core::net::{IpAddr, SocketAddr};
use core::time::Duration;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};

use embedded_nal::{nb, TcpClientStack, TcpError, TcpErrorKind, TcpFullStack};

/// An I/O error from a std socket, with its embedded-nal kind.
#[derive(Debug)]
pub struct StdTcpError {
    kind: TcpErrorKind,
    /// The underlying OS error, when there is one.
    pub io: Option<io::ErrorKind>,
}

impl StdTcpError {
    fn closed() -> Self {
        StdTcpError {
            kind: TcpErrorKind::PipeClosed,
            io: None,
        }
    }

    fn misuse() -> Self {
        StdTcpError {
            kind: TcpErrorKind::Other,
            io: Some(io::ErrorKind::InvalidInput),
        }
    }
}

impl From<io::Error> for StdTcpError {
    fn from(e: io::Error) -> Self {
        let kind = match e.kind() {
            io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof
            | io::ErrorKind::NotConnected => TcpErrorKind::PipeClosed,
            _ => TcpErrorKind::Other,
        };
        StdTcpError {
            kind,
            io: Some(e.kind()),
        }
    }
}

impl TcpError for StdTcpError {
    fn kind(&self) -> TcpErrorKind {
        self.kind
    }
}

impl core::fmt::Display for StdTcpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match (self.kind, self.io) {
            (TcpErrorKind::PipeClosed, _) => f.write_str("connection closed by the peer"),
            (_, Some(io)) => write!(f, "socket error: {io}"),
            _ => f.write_str("socket error"),
        }
    }
}

impl std::error::Error for StdTcpError {}

/// A socket of [`StdStack`]: fresh, bound to a port, listening, or connected.
#[derive(Debug)]
pub enum StdSocket {
    /// Created, not yet bound or connected.
    Fresh,
    /// Bound to a local port, not yet listening.
    Bound(u16),
    /// Accepting connections.
    Listening(TcpListener),
    /// A connected stream.
    Connected(TcpStream),
}

/// A std-socket implementation of embedded-nal's TCP stacks.
#[derive(Debug, Clone)]
pub struct StdStack {
    local_ip: IpAddr,
    /// Longest a `connect` may wait.
    pub connect_timeout: Duration,
}

impl StdStack {
    /// A stack whose listening sockets bind to `local_ip` (e.g. `127.0.0.2` for the second
    /// node of a loopback cluster).
    pub fn new(local_ip: IpAddr) -> Self {
        StdStack {
            local_ip,
            connect_timeout: Duration::from_secs(2),
        }
    }

    /// The local address of a listening or connected socket.
    pub fn local_addr(&self, socket: &StdSocket) -> Option<SocketAddr> {
        match socket {
            StdSocket::Listening(l) => l.local_addr().ok(),
            StdSocket::Connected(s) => s.local_addr().ok(),
            _ => None,
        }
    }
}

fn would_block<T>(r: io::Result<T>) -> nb::Result<T, StdTcpError> {
    r.map_err(|e| match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => nb::Error::WouldBlock,
        _ => nb::Error::Other(e.into()),
    })
}

fn prepare(stream: &TcpStream) -> io::Result<()> {
    stream.set_nonblocking(true)?;
    // Frames are written whole; Nagle would only add latency to small control frames.
    stream.set_nodelay(true)
}

impl TcpClientStack for StdStack {
    type TcpSocket = StdSocket;
    type Error = StdTcpError;

    fn socket(&mut self) -> Result<StdSocket, StdTcpError> {
        Ok(StdSocket::Fresh)
    }

    fn connect(
        &mut self,
        socket: &mut StdSocket,
        remote: SocketAddr,
    ) -> nb::Result<(), StdTcpError> {
        if matches!(socket, StdSocket::Connected(_)) {
            return Ok(());
        }
        let stream = TcpStream::connect_timeout(&remote, self.connect_timeout)
            .map_err(|e| nb::Error::Other(e.into()))?;
        prepare(&stream).map_err(|e| nb::Error::Other(e.into()))?;
        *socket = StdSocket::Connected(stream);
        Ok(())
    }

    fn send(&mut self, socket: &mut StdSocket, buffer: &[u8]) -> nb::Result<usize, StdTcpError> {
        let StdSocket::Connected(s) = socket else {
            return Err(nb::Error::Other(StdTcpError::misuse()));
        };
        match would_block(s.write(buffer))? {
            0 if !buffer.is_empty() => Err(nb::Error::Other(StdTcpError::closed())),
            n => Ok(n),
        }
    }

    fn receive(
        &mut self,
        socket: &mut StdSocket,
        buffer: &mut [u8],
    ) -> nb::Result<usize, StdTcpError> {
        let StdSocket::Connected(s) = socket else {
            return Err(nb::Error::Other(StdTcpError::misuse()));
        };
        match would_block(s.read(buffer))? {
            0 if !buffer.is_empty() => Err(nb::Error::Other(StdTcpError::closed())),
            n => Ok(n),
        }
    }

    fn close(&mut self, socket: StdSocket) -> Result<(), StdTcpError> {
        if let StdSocket::Connected(s) = socket {
            // The peer may already be gone; closing is best effort and the fd is freed on drop.
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        Ok(())
    }
}

impl TcpFullStack for StdStack {
    fn bind(&mut self, socket: &mut StdSocket, local_port: u16) -> Result<(), StdTcpError> {
        match socket {
            StdSocket::Fresh => {
                *socket = StdSocket::Bound(local_port);
                Ok(())
            }
            _ => Err(StdTcpError::misuse()),
        }
    }

    fn listen(&mut self, socket: &mut StdSocket) -> Result<(), StdTcpError> {
        let StdSocket::Bound(port) = *socket else {
            return Err(StdTcpError::misuse());
        };
        let listener = TcpListener::bind(SocketAddr::new(self.local_ip, port))?;
        listener.set_nonblocking(true)?;
        *socket = StdSocket::Listening(listener);
        Ok(())
    }

    fn accept(
        &mut self,
        socket: &mut StdSocket,
    ) -> nb::Result<(StdSocket, SocketAddr), StdTcpError> {
        let StdSocket::Listening(l) = socket else {
            return Err(nb::Error::Other(StdTcpError::misuse()));
        };
        let (stream, addr) = would_block(l.accept())?;
        prepare(&stream).map_err(|e| nb::Error::Other(e.into()))?;
        Ok((StdSocket::Connected(stream), addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn block<T>(mut f: impl FnMut() -> nb::Result<T, StdTcpError>) -> Result<T, StdTcpError> {
        let start = Instant::now();
        loop {
            match f() {
                Ok(v) => return Ok(v),
                Err(nb::Error::Other(e)) => return Err(e),
                Err(nb::Error::WouldBlock) => {
                    assert!(start.elapsed() < Duration::from_secs(5), "timed out");
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }

    #[test]
    fn loopback_round_trip_and_close() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let mut stack = StdStack::new(ip);
        let mut listener = stack.socket().unwrap();
        stack.bind(&mut listener, 0).unwrap();
        stack.listen(&mut listener).unwrap();
        let addr = stack.local_addr(&listener).unwrap();
        assert!(matches!(
            stack.accept(&mut listener),
            Err(nb::Error::WouldBlock)
        ));

        let mut client = stack.socket().unwrap();
        block(|| stack.connect(&mut client, addr)).unwrap();
        let (mut server, _) = block(|| stack.accept(&mut listener)).unwrap();
        let mut buf = [0u8; 16];
        assert!(matches!(
            stack.receive(&mut server, &mut buf),
            Err(nb::Error::WouldBlock)
        ));
        assert_eq!(block(|| stack.send(&mut client, b"tessera")).unwrap(), 7);
        assert_eq!(block(|| stack.receive(&mut server, &mut buf)).unwrap(), 7);
        assert_eq!(&buf[..7], b"tessera");

        stack.close(client).unwrap();
        let err = block(|| stack.receive(&mut server, &mut buf)).unwrap_err();
        assert_eq!(err.kind(), TcpErrorKind::PipeClosed);
        stack.close(server).unwrap();
    }

    #[test]
    fn misuse_and_refused_connect_are_errors() {
        let mut stack = StdStack::new("127.0.0.1".parse().unwrap());
        let mut s = stack.socket().unwrap();
        assert!(stack.listen(&mut s).is_err());
        assert!(matches!(stack.send(&mut s, b"x"), Err(nb::Error::Other(_))));
        // Bind a listener, learn its port, drop it: connecting there is refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut c = stack.socket().unwrap();
        let r = stack.connect(&mut c, SocketAddr::new("127.0.0.1".parse().unwrap(), port));
        assert!(matches!(r, Err(nb::Error::Other(_))));
    }
}
