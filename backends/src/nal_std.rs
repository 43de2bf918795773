//! embedded-nal TCP and UDP stacks over std sockets (Linux, e.g. a Raspberry Pi).
//!
//! Every socket is non-blocking: `send`, `receive`, `accept` and `connect` return
//! `nb::Error::WouldBlock` instead of waiting, so one driver thread serves every peer with
//! bounded work per poll. A `connect` starts the handshake and returns `WouldBlock`; later calls
//! on the same socket report completion (peer address known) or failure (`SO_ERROR`), so a peer
//! that never answers a SYN costs nothing but a socket in the connecting state (the caller
//! decides when to give up, see `LinkConfig::connect`).
//! A peer that closed its end is `TcpErrorKind::PipeClosed`, never a silent zero-length read.
//!
//! Outgoing connections leave from the stack's own address (`local_ip`, when it is a specific
//! address of the same kind, loopback or not, as the peer's): the link tells peers apart by
//! source address (caps on unauthenticated connections, who may hold a node id), and on a
//! loopback cluster every connect would otherwise come from 127.0.0.1.
//!
//! Sockets are `mio` sockets. A stack made with [`StdStack::with_registry`] registers each one
//! for readable and writable readiness, edge-triggered, so a driver loop can sleep in
//! [`mio::Poll::poll`] until a socket has something to do (see `driver::readiness::Readiness`).
//! Edge-triggered writable readiness fires only on a change (connect completed, send buffer
//! space freed after a send hit `WouldBlock`), so sockets without a pending backlog or connect
//! never wake the loop for it.
//!
//! UDP ([`StdUdpStack`], for the datagram transport) is a stack of its own over the same
//! address and registry (one type implementing both would make every `socket()` call on it
//! ambiguous): non-blocking too, `receive` and `send` say `WouldBlock` rather than wait.

extern crate alloc;
extern crate std;

use alloc::sync::Arc;
use core::net::{IpAddr, SocketAddr};
use std::io::{self, Read, Write};

use embedded_nal::{
    nb, TcpClientStack, TcpError, TcpErrorKind, TcpFullStack, UdpClientStack, UdpFullStack,
};
use mio::event::Source;
use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Interest, Registry, Token};

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

/// A socket of [`StdStack`]: fresh, bound to a port, listening, connecting or connected.
#[derive(Debug)]
pub enum StdSocket {
    /// Created, not yet bound or connected.
    Fresh,
    /// Bound to a local port, not yet listening.
    Bound(u16),
    /// Accepting connections.
    Listening(TcpListener),
    /// A connect in progress (handshake not finished).
    Connecting(TcpStream),
    /// A connected stream.
    Connected(TcpStream),
}

/// A std-socket implementation of embedded-nal's TCP stacks.
#[derive(Debug, Clone)]
pub struct StdStack {
    local_ip: IpAddr,
    /// Where new sockets are registered for readiness, if anywhere.
    registry: Option<Arc<Registry>>,
    /// Token of the next registered socket (tokens only tell sockets apart in traces).
    next_token: usize,
}

impl StdStack {
    /// A stack whose listening sockets bind to `local_ip` (e.g. `127.0.0.2` for the second
    /// node of a loopback cluster). Its sockets are not registered anywhere: the caller polls.
    pub fn new(local_ip: IpAddr) -> Self {
        StdStack {
            local_ip,
            registry: None,
            next_token: 0,
        }
    }

    /// A stack that registers every socket it opens with `registry` (readable and writable,
    /// edge-triggered), so the owner of the matching `mio::Poll` wakes when one is ready.
    pub fn with_registry(local_ip: IpAddr, registry: Arc<Registry>) -> Self {
        StdStack {
            registry: Some(registry),
            ..StdStack::new(local_ip)
        }
    }

    /// The local address of a listening, connecting or connected socket.
    pub fn local_addr(&self, socket: &StdSocket) -> Option<SocketAddr> {
        match socket {
            StdSocket::Listening(l) => l.local_addr().ok(),
            StdSocket::Connecting(s) | StdSocket::Connected(s) => s.local_addr().ok(),
            _ => None,
        }
    }

    fn register(&mut self, source: &mut impl Source) -> io::Result<()> {
        let Some(r) = &self.registry else {
            return Ok(());
        };
        self.next_token = self.next_token.wrapping_add(1);
        r.register(
            source,
            Token(self.next_token),
            Interest::READABLE | Interest::WRITABLE,
        )
    }

    fn deregister(&self, source: &mut impl Source) {
        if let Some(r) = &self.registry {
            // Closing the fd removes it from the poll set anyway; this only keeps mio's
            // bookkeeping tidy, so a failure changes nothing.
            let _ = r.deregister(source);
        }
    }

    /// Starts a non-blocking connect to `remote`, from `local_ip` when that can reach it.
    fn start_connect(&self, remote: SocketAddr) -> io::Result<TcpStream> {
        let ip = self.local_ip;
        let bindable = !ip.is_unspecified()
            && ip.is_ipv4() == remote.is_ipv4()
            && ip.is_loopback() == remote.ip().is_loopback();
        if !bindable {
            return TcpStream::connect(remote);
        }
        use socket2::{Domain, Protocol, Socket, Type};
        let s = Socket::new(
            Domain::for_address(remote),
            Type::STREAM,
            Some(Protocol::TCP),
        )?;
        s.set_nonblocking(true)?;
        if s.bind(&SocketAddr::new(ip, 0).into()).is_err() {
            // Not an address of this host (misconfiguration shows up elsewhere): let the
            // kernel choose, as without binding.
            return TcpStream::connect(remote);
        }
        match s.connect(&remote.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        Ok(TcpStream::from_std(s.into()))
    }

    /// Where a connect in progress stands: done, still waiting, or failed.
    fn finish_connect(stream: &TcpStream) -> nb::Result<(), StdTcpError> {
        if let Some(e) = stream.take_error().map_err(other)? {
            return Err(nb::Error::Other(e.into()));
        }
        match stream.peer_addr() {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Err(nb::Error::WouldBlock),
            Err(e) => Err(nb::Error::Other(e.into())),
        }
    }
}

fn other(e: io::Error) -> nb::Error<StdTcpError> {
    nb::Error::Other(e.into())
}

/// `WouldBlock` (and an interrupted call) as `nb`'s, any other error as the stack's.
fn would_block<T, E: From<io::Error>>(r: io::Result<T>) -> nb::Result<T, E> {
    r.map_err(|e| match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => nb::Error::WouldBlock,
        _ => nb::Error::Other(e.into()),
    })
}

impl TcpClientStack for StdStack {
    type TcpSocket = StdSocket;
    type Error = StdTcpError;

    fn socket(&mut self) -> Result<StdSocket, StdTcpError> {
        Ok(StdSocket::Fresh)
    }

    /// Starts a connect on a fresh socket and returns `WouldBlock` until it completes; a
    /// failed handshake (refused, unreachable) is an error and leaves the socket fresh.
    fn connect(
        &mut self,
        socket: &mut StdSocket,
        remote: SocketAddr,
    ) -> nb::Result<(), StdTcpError> {
        match socket {
            StdSocket::Connected(_) => return Ok(()),
            StdSocket::Fresh => {
                let mut stream = self.start_connect(remote).map_err(other)?;
                self.register(&mut stream).map_err(other)?;
                *socket = StdSocket::Connecting(stream);
            }
            StdSocket::Connecting(_) => {}
            _ => return Err(nb::Error::Other(StdTcpError::misuse())),
        }
        let StdSocket::Connecting(stream) = socket else {
            return Err(nb::Error::Other(StdTcpError::misuse()));
        };
        match Self::finish_connect(stream) {
            Ok(()) => {
                // Frames are written whole; Nagle would only delay small control frames.
                stream.set_nodelay(true).map_err(other)?;
                let StdSocket::Connecting(stream) = core::mem::replace(socket, StdSocket::Fresh)
                else {
                    return Err(nb::Error::Other(StdTcpError::misuse()));
                };
                *socket = StdSocket::Connected(stream);
                Ok(())
            }
            Err(nb::Error::WouldBlock) => Err(nb::Error::WouldBlock),
            Err(e) => {
                if let StdSocket::Connecting(mut s) = core::mem::replace(socket, StdSocket::Fresh) {
                    self.deregister(&mut s);
                }
                Err(e)
            }
        }
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
        match socket {
            StdSocket::Connected(mut s) => {
                self.deregister(&mut s);
                // The peer may already be gone; closing is best effort and the fd is freed
                // on drop.
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
            StdSocket::Connecting(mut s) => self.deregister(&mut s),
            StdSocket::Listening(mut l) => self.deregister(&mut l),
            StdSocket::Fresh | StdSocket::Bound(_) => {}
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
        let mut listener = TcpListener::bind(SocketAddr::new(self.local_ip, port))?;
        self.register(&mut listener)?;
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
        let (mut stream, addr) = would_block(l.accept())?;
        stream.set_nodelay(true).map_err(other)?;
        self.register(&mut stream).map_err(other)?;
        Ok((StdSocket::Connected(stream), addr))
    }
}

/// Receive and send buffer asked for each UDP socket, bytes.
pub const UDP_BUFFER: usize = 4 << 20;

/// An I/O error from a std UDP socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StdUdpError(pub io::ErrorKind);

impl From<io::Error> for StdUdpError {
    fn from(e: io::Error) -> Self {
        StdUdpError(e.kind())
    }
}

impl core::fmt::Display for StdUdpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "UDP socket error: {}", self.0)
    }
}

impl std::error::Error for StdUdpError {}

/// A UDP socket of [`StdStack`]: not opened yet, or bound (and maybe connected to `remote`).
#[derive(Debug)]
pub enum StdUdpSocket {
    /// Created, not bound.
    Fresh,
    /// Bound to a local port; `remote` is where `send` goes (set by `connect`).
    Open {
        /// The socket.
        socket: UdpSocket,
        /// The connected peer, if any.
        remote: Option<SocketAddr>,
    },
}

/// embedded-nal's UDP stacks over std sockets: the address and readiness registry of a
/// [`StdStack`] (see [`StdStack::udp`]).
#[derive(Debug, Clone)]
pub struct StdUdpStack {
    inner: StdStack,
}

impl StdStack {
    /// A UDP stack on the same address, registering its sockets with the same registry.
    pub fn udp(&self) -> StdUdpStack {
        StdUdpStack {
            inner: self.clone(),
        }
    }
}

impl StdUdpStack {
    /// A UDP stack bound to `local_ip`, its sockets registered nowhere (the caller polls).
    pub fn new(local_ip: IpAddr) -> Self {
        StdStack::new(local_ip).udp()
    }

    /// The local address of an open UDP socket (e.g. the port a bind to port 0 got).
    pub fn local_addr(&self, socket: &StdUdpSocket) -> Option<SocketAddr> {
        match socket {
            StdUdpSocket::Open { socket, .. } => socket.local_addr().ok(),
            StdUdpSocket::Fresh => None,
        }
    }

    /// Binds a fresh UDP socket to `port` on the stack's address and registers it.
    fn open_udp(&mut self, socket: &mut StdUdpSocket, port: u16) -> Result<(), StdUdpError> {
        if !matches!(socket, StdUdpSocket::Fresh) {
            return Err(StdUdpError(io::ErrorKind::InvalidInput));
        }
        let mut s = UdpSocket::bind(SocketAddr::new(self.inner.local_ip, port))?;
        // A message of many datagrams arrives as a burst: the default receive buffer
        // (208 KiB, about 90 Ethernet-sized datagrams) would drop its tail. Best effort: Linux
        // caps the request at net.core.rmem_max / wmem_max (docs/datagram.md).
        let sock = socket2::SockRef::from(&s);
        let _ = sock.set_recv_buffer_size(UDP_BUFFER);
        let _ = sock.set_send_buffer_size(UDP_BUFFER);
        self.inner.register(&mut s)?;
        *socket = StdUdpSocket::Open {
            socket: s,
            remote: None,
        };
        Ok(())
    }
}

impl UdpClientStack for StdUdpStack {
    type UdpSocket = StdUdpSocket;
    type Error = StdUdpError;

    fn socket(&mut self) -> Result<StdUdpSocket, StdUdpError> {
        Ok(StdUdpSocket::Fresh)
    }

    /// Binds to an ephemeral port on the stack's address; `send` then goes to `remote`.
    fn connect(
        &mut self,
        socket: &mut StdUdpSocket,
        remote: SocketAddr,
    ) -> Result<(), StdUdpError> {
        if matches!(socket, StdUdpSocket::Fresh) {
            self.open_udp(socket, 0)?;
        }
        match socket {
            StdUdpSocket::Open { remote: r, .. } => {
                *r = Some(remote);
                Ok(())
            }
            StdUdpSocket::Fresh => Err(StdUdpError(io::ErrorKind::InvalidInput)),
        }
    }

    fn send(&mut self, socket: &mut StdUdpSocket, buffer: &[u8]) -> nb::Result<(), StdUdpError> {
        let StdUdpSocket::Open {
            remote: Some(remote),
            ..
        } = socket
        else {
            return Err(nb::Error::Other(StdUdpError(io::ErrorKind::NotConnected)));
        };
        let remote = *remote;
        self.send_to(socket, remote, buffer)
    }

    fn receive(
        &mut self,
        socket: &mut StdUdpSocket,
        buffer: &mut [u8],
    ) -> nb::Result<(usize, SocketAddr), StdUdpError> {
        let StdUdpSocket::Open { socket, .. } = socket else {
            return Err(nb::Error::Other(StdUdpError(io::ErrorKind::NotConnected)));
        };
        would_block(socket.recv_from(buffer))
    }

    fn close(&mut self, socket: StdUdpSocket) -> Result<(), StdUdpError> {
        if let StdUdpSocket::Open { mut socket, .. } = socket {
            self.inner.deregister(&mut socket);
        }
        Ok(())
    }
}

impl UdpFullStack for StdUdpStack {
    fn bind(&mut self, socket: &mut StdUdpSocket, local_port: u16) -> Result<(), StdUdpError> {
        self.open_udp(socket, local_port)
    }

    fn send_to(
        &mut self,
        socket: &mut StdUdpSocket,
        remote: SocketAddr,
        buffer: &[u8],
    ) -> nb::Result<(), StdUdpError> {
        let StdUdpSocket::Open { socket, .. } = socket else {
            return Err(nb::Error::Other(StdUdpError(io::ErrorKind::NotConnected)));
        };
        let n = would_block(socket.send_to(buffer, remote))?;
        if n != buffer.len() {
            // Datagrams are sent whole or not at all; a short count is a broken socket.
            return Err(nb::Error::Other(StdUdpError(io::ErrorKind::WriteZero)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;
    use std::time::Instant;

    fn block<T, E>(mut f: impl FnMut() -> nb::Result<T, E>) -> Result<T, E> {
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
    fn connects_leave_from_the_stack_address() {
        let mut server = StdStack::new("127.13.0.1".parse().unwrap());
        let mut listener = server.socket().unwrap();
        server.bind(&mut listener, 0).unwrap();
        server.listen(&mut listener).unwrap();
        let addr = server.local_addr(&listener).unwrap();
        let mut client = StdStack::new("127.13.0.9".parse().unwrap());
        let mut c = client.socket().unwrap();
        block(|| client.connect(&mut c, addr)).unwrap();
        let (s, from) = block(|| server.accept(&mut listener)).unwrap();
        assert_eq!(from.ip(), "127.13.0.9".parse::<IpAddr>().unwrap());
        client.close(c).unwrap();
        server.close(s).unwrap();
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
        let r =
            block(|| stack.connect(&mut c, SocketAddr::new("127.0.0.1".parse().unwrap(), port)));
        assert!(r.is_err());
        // A failed connect leaves the socket fresh, ready for another attempt.
        assert!(matches!(c, StdSocket::Fresh));
    }

    /// A listener whose accept queue is full: Linux drops further SYNs, as a powered-off peer
    /// on WiFi would (no RST comes back). Returns the listener and the connection filling it.
    fn syn_sink() -> (socket2::Socket, std::net::TcpStream, SocketAddr) {
        use socket2::{Domain, Socket, Type};
        let l = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        l.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        l.listen(0).unwrap();
        let addr = l.local_addr().unwrap().as_socket().unwrap();
        let filler = std::net::TcpStream::connect(addr).unwrap();
        (l, filler, addr)
    }

    #[test]
    fn connect_to_a_silent_peer_does_not_block() {
        let (_l, _filler, addr) = syn_sink();
        let mut stack = StdStack::new("127.0.0.1".parse().unwrap());
        let mut c = stack.socket().unwrap();
        // The old blocking connect waited `connect_timeout` and then failed: here every call
        // returns at once, still in progress.
        for _ in 0..3 {
            assert!(matches!(
                stack.connect(&mut c, addr),
                Err(nb::Error::WouldBlock)
            ));
            assert!(matches!(c, StdSocket::Connecting(_)));
        }
        assert!(matches!(stack.send(&mut c, b"x"), Err(nb::Error::Other(_))));
        stack.close(c).unwrap();
    }

    #[test]
    fn registered_sockets_wake_a_poll() {
        let mut poll = mio::Poll::new().unwrap();
        let registry = Arc::new(poll.registry().try_clone().unwrap());
        let mut stack = StdStack::with_registry("127.0.0.1".parse().unwrap(), registry);
        let mut listener = stack.socket().unwrap();
        stack.bind(&mut listener, 0).unwrap();
        stack.listen(&mut listener).unwrap();
        let addr = stack.local_addr(&listener).unwrap();
        let mut events = mio::Events::with_capacity(8);
        let mut client = stack.socket().unwrap();
        let _ = stack.connect(&mut client, addr);
        // The pending connection makes the listener readable: poll returns without a timeout.
        poll.poll(&mut events, None).unwrap();
        assert!(!events.is_empty());
        let (server, _) = block(|| stack.accept(&mut listener)).unwrap();
        block(|| stack.connect(&mut client, addr)).unwrap();
        stack.close(client).unwrap();
        stack.close(server).unwrap();
    }

    #[test]
    fn udp_datagrams_between_two_bound_sockets() {
        let mut a = StdUdpStack::new("127.0.0.1".parse().unwrap());
        let mut b = StdStack::new("127.0.0.1".parse().unwrap()).udp();
        let (mut sa, mut sb) = (a.socket().unwrap(), b.socket().unwrap());
        a.bind(&mut sa, 0).unwrap();
        b.bind(&mut sb, 0).unwrap();
        let (aa, ba) = (a.local_addr(&sa).unwrap(), b.local_addr(&sb).unwrap());
        let mut buf = [0u8; 64];
        assert!(matches!(
            b.receive(&mut sb, &mut buf),
            Err(nb::Error::WouldBlock)
        ));
        block(|| a.send_to(&mut sa, ba, b"one")).unwrap();
        let (n, from) = block(|| b.receive(&mut sb, &mut buf)).unwrap();
        assert_eq!((&buf[..n], from), (&b"one"[..], aa));
        // A connected client socket answers to the bound one.
        let mut c = a.socket().unwrap();
        a.connect(&mut c, ba).unwrap();
        block(|| a.send(&mut c, b"two")).unwrap();
        let (n, _) = block(|| b.receive(&mut sb, &mut buf)).unwrap();
        assert_eq!(&buf[..n], b"two");
        // Misuse is an error, not a panic.
        let mut fresh = a.socket().unwrap();
        assert!(a.send(&mut fresh, b"x").is_err());
        assert!(a.bind(&mut sa, 0).is_err());
        a.close(sa).unwrap();
        a.close(c).unwrap();
        b.close(sb).unwrap();
    }
}
