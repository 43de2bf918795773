//! embedded-nal TCP and UDP stacks over smoltcp: the same [`Link`](crate::link) and driver that run on
//! Linux sockets run on a smoltcp [`Interface`], in the simulator or on a target without an OS.
//!
//! No allocation: the caller provides the socket storage and every socket's receive and
//! transmit buffers once, at [`SmolNet::new`]; sockets are then recycled from that fixed pool
//! (the pool running dry is an `Err`, never a panic as smoltcp's `SocketSet::add` would).
//!
//! Shape. A [`SmolNet`] owns the interface, its device and the socket pool; the platform keeps
//! it in a `RefCell` and polls it ([`SmolNet::poll`], [`SmolNet::poll_at`]) around the node's
//! own poll, while the node's link reaches it through the cheap handle [`SmolStack`]. Time is
//! passed in with each `poll`; the stack's calls use the instant of the last poll.
//!
//! Semantics that differ from std sockets, chosen to fit the link's non-blocking use:
//! - `connect` returns `Ok` as soon as the SYN is queued (it never blocks): until the
//!   handshake completes `send` and `receive` say `WouldBlock`; a refused or reset connection
//!   then reports `PipeClosed`. Every connection takes an explicit local port from a rotating
//!   ephemeral range (smoltcp needs a non-zero one).
//! - Listening keeps [`NetConfig::backlog`] sockets in LISTEN on the port (smoltcp turns the
//!   listening socket itself into the connection); `accept` hands out an established one and
//!   puts a fresh pool socket in LISTEN in its place.
//! - `close` aborts (the pool socket is free again at once). The link only closes connections
//!   it has given up on, so nothing in flight is wanted any more.
//!
//! UDP (the datagram transport): [`SmolNet::add_udp`] adds UDP sockets with their own packet
//! buffers to a pool of their own (room for them must be left in the socket storage). A
//! `bind` to port 0 or a `connect` takes an ephemeral port; a full transmit buffer is
//! `WouldBlock`; a received datagram larger than the caller's buffer is dropped by smoltcp and
//! reported as `Truncated`.

use core::cell::RefCell;
use core::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

use embedded_nal::{
    nb, TcpClientStack, TcpError, TcpErrorKind, TcpFullStack, UdpClientStack, UdpFullStack,
};
use smoltcp::iface::{Config, Interface, PollResult, SocketHandle, SocketSet, SocketStorage};
use smoltcp::phy::Device;
use smoltcp::socket::{tcp, udp};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, IpEndpoint};
use tessera_core::time::Instant;

/// Most sockets one [`SmolNet`] manages (connections plus listening backlog).
pub const MAX_SOCKETS: usize = 48;

/// Most UDP sockets one [`SmolNet`] manages.
pub const MAX_UDP_SOCKETS: usize = 8;

/// First port of the ephemeral range used for outgoing connections.
pub const EPHEMERAL_FIRST: u16 = 49152;

/// Why a socket operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SmolError {
    /// Every pool socket is in use.
    NoSocket,
    /// The operation does not fit the socket's state (e.g. `send` on a listener).
    InvalidState,
    /// The address is not IPv4, or has no route.
    Unaddressable,
    /// The connection was closed, refused or reset.
    Closed,
    /// A received datagram was larger than the buffer given (and was dropped).
    Truncated,
}

impl TcpError for SmolError {
    fn kind(&self) -> TcpErrorKind {
        match self {
            SmolError::Closed => TcpErrorKind::PipeClosed,
            _ => TcpErrorKind::Other,
        }
    }
}

impl core::fmt::Display for SmolError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            SmolError::NoSocket => "no free socket in the pool",
            SmolError::InvalidState => "socket in the wrong state",
            SmolError::Unaddressable => "address not reachable (IPv4 only)",
            SmolError::Closed => "connection closed",
            SmolError::Truncated => "datagram larger than the receive buffer (dropped)",
        })
    }
}

impl core::error::Error for SmolError {}

/// Addressing and pool settings of one [`SmolNet`].
#[derive(Clone, Copy, Debug)]
pub struct NetConfig {
    /// This node's IPv4 address.
    pub address: Ipv4Addr,
    /// Prefix length of the (single, on-link) subnet.
    pub prefix_len: u8,
    /// Seed of smoltcp's PRNG (initial sequence numbers): distinct per node.
    pub seed: u64,
    /// Sockets kept in LISTEN per listening port (concurrent handshakes accepted).
    pub backlog: usize,
    /// First ephemeral port tried by `connect` (distinct per node keeps traces readable).
    pub first_port: u16,
}

/// What a pool socket is used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Use {
    Free,
    Listening(u16),
    Taken,
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    handle: SocketHandle,
    used: Use,
}

/// A socket of [`SmolStack`].
#[derive(Debug, PartialEq, Eq)]
pub enum SmolSocket {
    /// Created, not bound or connected.
    Fresh,
    /// Bound to a local port, not listening yet.
    Bound(u16),
    /// Listening on a port (the backlog sockets live in the pool).
    Listening(u16),
    /// A connection: index of its pool socket.
    Connected(usize),
}

/// One node's smoltcp interface, device and socket pool.
pub struct SmolNet<'a, D: Device> {
    iface: Interface,
    device: D,
    sockets: SocketSet<'a>,
    slots: heapless::Vec<Slot, MAX_SOCKETS>,
    /// UDP sockets: handle and whether a `SmolUdpSocket` holds it.
    udp: heapless::Vec<(SocketHandle, bool), MAX_UDP_SOCKETS>,
    /// Sockets the storage holds.
    capacity: usize,
    now: smoltcp::time::Instant,
    next_port: u16,
    backlog: usize,
}

fn smol_instant(t: Instant) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros(t.total_micros() as i64)
}

impl<'a, D: Device> SmolNet<'a, D> {
    /// An interface on `device` with one socket per `(rx, tx)` buffer pair (at most
    /// `storage.len()` and [`MAX_SOCKETS`]). TCP windows follow the buffers: a receive buffer
    /// over 64 KiB enables window scaling.
    pub fn new<B>(
        cfg: NetConfig,
        device: D,
        storage: &'a mut [SocketStorage<'a>],
        buffers: B,
        now: Instant,
    ) -> Self
    where
        B: IntoIterator<Item = (&'a mut [u8], &'a mut [u8])>,
    {
        Self::with_hardware(cfg, HardwareAddress::Ip, device, storage, buffers, now)
    }

    /// As [`SmolNet::new`], on a device whose medium needs a hardware address: an Ethernet
    /// controller (`HardwareAddress::Ethernet`, with smoltcp's `medium-ethernet` feature
    /// enabled by the platform) answers ARP for `cfg.address` and resolves on-link peers.
    pub fn with_hardware<B>(
        cfg: NetConfig,
        hardware: HardwareAddress,
        mut device: D,
        storage: &'a mut [SocketStorage<'a>],
        buffers: B,
        now: Instant,
    ) -> Self
    where
        B: IntoIterator<Item = (&'a mut [u8], &'a mut [u8])>,
    {
        let capacity = storage.len();
        let cap = capacity.min(MAX_SOCKETS);
        let mut config = Config::new(hardware);
        config.random_seed = cfg.seed;
        let mut iface = Interface::new(config, &mut device, smol_instant(now));
        iface.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::new(IpAddress::Ipv4(cfg.address), cfg.prefix_len));
        });
        let mut sockets = SocketSet::new(storage);
        let mut slots = heapless::Vec::new();
        for (rx, tx) in buffers.into_iter().take(cap) {
            let mut s = tcp::Socket::new(tcp::SocketBuffer::new(rx), tcp::SocketBuffer::new(tx));
            // Frames are written whole; Nagle would only delay small control frames.
            s.set_nagle_enabled(false);
            let handle = sockets.add(s);
            let _ = slots.push(Slot {
                handle,
                used: Use::Free,
            });
        }
        SmolNet {
            iface,
            device,
            sockets,
            slots,
            udp: heapless::Vec::new(),
            capacity,
            now: smol_instant(now),
            next_port: cfg.first_port.max(EPHEMERAL_FIRST),
            backlog: cfg.backlog.max(1),
        }
    }

    /// Processes received packets and transmits what the sockets have queued, at `now`.
    /// Returns true when a socket's state may have changed.
    pub fn poll(&mut self, now: Instant) -> bool {
        self.now = smol_instant(now);
        let changed = self
            .iface
            .poll(self.now, &mut self.device, &mut self.sockets)
            == PollResult::SocketStateChanged;
        self.relisten();
        changed
    }

    /// When the interface next needs a poll without new packets (retransmissions, delayed
    /// ACKs), or `None`.
    pub fn poll_at(&mut self) -> Option<Instant> {
        self.iface
            .poll_at(self.now, &self.sockets)
            .map(|t| Instant::from_micros(t.total_micros().max(0) as u64))
    }

    /// Adds a UDP socket with these packet buffers (`*_meta`: one entry per datagram queued,
    /// `rx`/`tx`: their payload bytes) to the UDP pool. Needs a free place in the socket
    /// storage given to [`SmolNet::new`] and in [`MAX_UDP_SOCKETS`] ([`SmolError::NoSocket`]).
    pub fn add_udp(
        &mut self,
        rx_meta: &'a mut [udp::PacketMetadata],
        rx: &'a mut [u8],
        tx_meta: &'a mut [udp::PacketMetadata],
        tx: &'a mut [u8],
    ) -> Result<(), SmolError> {
        if self.slots.len() + self.udp.len() >= self.capacity || self.udp.is_full() {
            return Err(SmolError::NoSocket);
        }
        let s = udp::Socket::new(
            udp::PacketBuffer::new(rx_meta, rx),
            udp::PacketBuffer::new(tx_meta, tx),
        );
        let handle = self.sockets.add(s);
        self.udp
            .push((handle, false))
            .map_err(|_| SmolError::NoSocket)
    }

    /// The device (e.g. to hand it received packets or take transmitted ones).
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.device
    }

    /// The device.
    pub fn device(&self) -> &D {
        &self.device
    }

    /// Pool sockets in use (connections and listeners).
    pub fn sockets_in_use(&self) -> usize {
        self.slots.iter().filter(|s| s.used != Use::Free).count()
    }

    /// Bytes queued for transmission and not yet acknowledged, over all connections.
    pub fn send_queued(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.used == Use::Taken)
            .map(|s| self.sockets.get::<tcp::Socket>(s.handle).send_queue())
            .sum()
    }

    fn socket(&mut self, slot: usize) -> Result<&mut tcp::Socket<'a>, SmolError> {
        let s = self.slots.get(slot).ok_or(SmolError::InvalidState)?;
        if s.used != Use::Taken {
            return Err(SmolError::InvalidState);
        }
        Ok(self.sockets.get_mut::<tcp::Socket>(s.handle))
    }

    fn free_slot(&self) -> Option<usize> {
        self.slots.iter().position(|s| s.used == Use::Free)
    }

    /// Keeps `backlog` sockets listening on every listening port; a listener whose handshake
    /// failed (back to CLOSED) listens again.
    fn relisten(&mut self) {
        let mut ports: heapless::Vec<u16, MAX_SOCKETS> = heapless::Vec::new();
        for s in self.slots.iter_mut() {
            if let Use::Listening(p) = s.used {
                let sock = self.sockets.get_mut::<tcp::Socket>(s.handle);
                if sock.state() == tcp::State::Closed && sock.listen(p).is_err() {
                    s.used = Use::Free;
                    continue;
                }
                if !ports.contains(&p) {
                    let _ = ports.push(p);
                }
            }
        }
        for p in ports {
            self.fill_backlog(p);
        }
    }

    fn fill_backlog(&mut self, port: u16) -> usize {
        let mut have = self
            .slots
            .iter()
            .filter(|s| s.used == Use::Listening(port))
            .count();
        while have < self.backlog {
            let Some(i) = self.free_slot() else { break };
            let sock = self.sockets.get_mut::<tcp::Socket>(self.slots[i].handle);
            sock.abort();
            if sock.listen(port).is_err() {
                break;
            }
            self.slots[i].used = Use::Listening(port);
            have += 1;
        }
        have
    }

    fn release(&mut self, slot: usize) {
        if let Some(s) = self.slots.get_mut(slot) {
            self.sockets.get_mut::<tcp::Socket>(s.handle).abort();
            s.used = Use::Free;
        }
    }

    fn ephemeral_port(&mut self) -> u16 {
        loop {
            let p = self.next_port;
            self.next_port = if p == u16::MAX {
                EPHEMERAL_FIRST
            } else {
                p + 1
            };
            let busy = self.slots.iter().any(|s| {
                s.used == Use::Taken
                    && self
                        .sockets
                        .get::<tcp::Socket>(s.handle)
                        .local_endpoint()
                        .is_some_and(|e| e.port == p)
            });
            if !busy {
                return p;
            }
        }
    }
}

impl<'a, D: Device> SmolNet<'a, D> {
    /// Takes a free UDP socket and binds it to `port` (an ephemeral one when 0).
    fn open_udp(&mut self, port: u16) -> Result<usize, SmolError> {
        let i = self
            .udp
            .iter()
            .position(|(_, used)| !used)
            .ok_or(SmolError::NoSocket)?;
        let port = if port == 0 {
            self.ephemeral_port()
        } else {
            port
        };
        let sock = self.sockets.get_mut::<udp::Socket>(self.udp[i].0);
        sock.close();
        sock.bind(port).map_err(|_| SmolError::Unaddressable)?;
        self.udp[i].1 = true;
        Ok(i)
    }

    fn udp_socket(&mut self, i: usize) -> Result<&mut udp::Socket<'a>, SmolError> {
        match self.udp.get(i) {
            Some(&(h, true)) => Ok(self.sockets.get_mut::<udp::Socket>(h)),
            _ => Err(SmolError::InvalidState),
        }
    }
}

/// A UDP socket of [`SmolStack`].
#[derive(Debug, PartialEq, Eq)]
pub enum SmolUdpSocket {
    /// Created, not bound.
    Fresh,
    /// Bound: index of its pool socket, and where `send` goes (set by `connect`).
    Bound(usize, Option<SocketAddr>),
}

/// The embedded-nal face of a [`SmolNet`] kept in a `RefCell`.
pub struct SmolStack<'n, 'a, D: Device> {
    net: &'n RefCell<SmolNet<'a, D>>,
}

impl<'n, 'a, D: Device> SmolStack<'n, 'a, D> {
    /// A stack handle over `net`.
    pub fn new(net: &'n RefCell<SmolNet<'a, D>>) -> Self {
        SmolStack { net }
    }
}

fn endpoint(remote: SocketAddr) -> Result<IpEndpoint, SmolError> {
    match remote.ip() {
        IpAddr::V4(a) => Ok(IpEndpoint::new(IpAddress::Ipv4(a), remote.port())),
        IpAddr::V6(_) => Err(SmolError::Unaddressable),
    }
}

impl<D: Device> TcpClientStack for SmolStack<'_, '_, D> {
    type TcpSocket = SmolSocket;
    type Error = SmolError;

    fn socket(&mut self) -> Result<SmolSocket, SmolError> {
        Ok(SmolSocket::Fresh)
    }

    fn connect(
        &mut self,
        socket: &mut SmolSocket,
        remote: SocketAddr,
    ) -> nb::Result<(), SmolError> {
        match *socket {
            SmolSocket::Connected(_) => return Ok(()),
            SmolSocket::Fresh => {}
            _ => return Err(nb::Error::Other(SmolError::InvalidState)),
        }
        let remote = endpoint(remote)?;
        let mut net = self.net.borrow_mut();
        let slot = net.free_slot().ok_or(SmolError::NoSocket)?;
        let port = net.ephemeral_port();
        let handle = net.slots[slot].handle;
        let SmolNet { iface, sockets, .. } = &mut *net;
        let sock = sockets.get_mut::<tcp::Socket>(handle);
        sock.abort();
        sock.connect(iface.context(), remote, port)
            .map_err(|_| SmolError::Unaddressable)?;
        net.slots[slot].used = Use::Taken;
        *socket = SmolSocket::Connected(slot);
        Ok(())
    }

    fn send(&mut self, socket: &mut SmolSocket, buffer: &[u8]) -> nb::Result<usize, SmolError> {
        let SmolSocket::Connected(slot) = *socket else {
            return Err(nb::Error::Other(SmolError::InvalidState));
        };
        let mut net = self.net.borrow_mut();
        let sock = net.socket(slot)?;
        if !sock.may_send() {
            return match sock.state() {
                tcp::State::SynSent | tcp::State::SynReceived => Err(nb::Error::WouldBlock),
                _ => Err(nb::Error::Other(SmolError::Closed)),
            };
        }
        match sock.send_slice(buffer) {
            Ok(0) if !buffer.is_empty() => Err(nb::Error::WouldBlock),
            Ok(n) => Ok(n),
            Err(_) => Err(nb::Error::Other(SmolError::Closed)),
        }
    }

    fn receive(
        &mut self,
        socket: &mut SmolSocket,
        buffer: &mut [u8],
    ) -> nb::Result<usize, SmolError> {
        let SmolSocket::Connected(slot) = *socket else {
            return Err(nb::Error::Other(SmolError::InvalidState));
        };
        let mut net = self.net.borrow_mut();
        let sock = net.socket(slot)?;
        if sock.can_recv() {
            return match sock.recv_slice(buffer) {
                Ok(0) if !buffer.is_empty() => Err(nb::Error::WouldBlock),
                Ok(n) => Ok(n),
                Err(_) => Err(nb::Error::Other(SmolError::Closed)),
            };
        }
        match sock.state() {
            tcp::State::SynSent | tcp::State::SynReceived | tcp::State::Established => {
                Err(nb::Error::WouldBlock)
            }
            // Closed, refused, reset, or the peer sent FIN and everything was read.
            _ => Err(nb::Error::Other(SmolError::Closed)),
        }
    }

    fn close(&mut self, socket: SmolSocket) -> Result<(), SmolError> {
        let mut net = self.net.borrow_mut();
        match socket {
            SmolSocket::Connected(slot) => net.release(slot),
            SmolSocket::Listening(port) => {
                for i in 0..net.slots.len() {
                    if net.slots[i].used == Use::Listening(port) {
                        net.release(i);
                    }
                }
            }
            SmolSocket::Fresh | SmolSocket::Bound(_) => {}
        }
        Ok(())
    }
}

impl<D: Device> TcpFullStack for SmolStack<'_, '_, D> {
    fn bind(&mut self, socket: &mut SmolSocket, local_port: u16) -> Result<(), SmolError> {
        match socket {
            SmolSocket::Fresh if local_port != 0 => {
                *socket = SmolSocket::Bound(local_port);
                Ok(())
            }
            SmolSocket::Fresh => Err(SmolError::Unaddressable),
            _ => Err(SmolError::InvalidState),
        }
    }

    fn listen(&mut self, socket: &mut SmolSocket) -> Result<(), SmolError> {
        let SmolSocket::Bound(port) = *socket else {
            return Err(SmolError::InvalidState);
        };
        if self.net.borrow_mut().fill_backlog(port) == 0 {
            return Err(SmolError::NoSocket);
        }
        *socket = SmolSocket::Listening(port);
        Ok(())
    }

    fn accept(
        &mut self,
        socket: &mut SmolSocket,
    ) -> nb::Result<(SmolSocket, SocketAddr), SmolError> {
        let SmolSocket::Listening(port) = *socket else {
            return Err(nb::Error::Other(SmolError::InvalidState));
        };
        let mut net = self.net.borrow_mut();
        let found = net.slots.iter().enumerate().find_map(|(i, s)| {
            if s.used != Use::Listening(port) {
                return None;
            }
            let sock = net.sockets.get::<tcp::Socket>(s.handle);
            match sock.state() {
                tcp::State::Established | tcp::State::CloseWait => {
                    sock.remote_endpoint().map(|e| (i, e))
                }
                _ => None,
            }
        });
        let Some((i, remote)) = found else {
            return Err(nb::Error::WouldBlock);
        };
        net.slots[i].used = Use::Taken;
        net.fill_backlog(port);
        let IpAddress::Ipv4(a) = remote.addr;
        let addr = SocketAddr::V4(SocketAddrV4::new(a, remote.port));
        Ok((SmolSocket::Connected(i), addr))
    }
}

impl<D: Device> UdpClientStack for SmolStack<'_, '_, D> {
    type UdpSocket = SmolUdpSocket;
    type Error = SmolError;

    fn socket(&mut self) -> Result<SmolUdpSocket, SmolError> {
        Ok(SmolUdpSocket::Fresh)
    }

    fn connect(&mut self, socket: &mut SmolUdpSocket, remote: SocketAddr) -> Result<(), SmolError> {
        endpoint(remote)?;
        match socket {
            SmolUdpSocket::Fresh => {
                let i = self.net.borrow_mut().open_udp(0)?;
                *socket = SmolUdpSocket::Bound(i, Some(remote));
            }
            SmolUdpSocket::Bound(_, r) => *r = Some(remote),
        }
        Ok(())
    }

    fn send(&mut self, socket: &mut SmolUdpSocket, buffer: &[u8]) -> nb::Result<(), SmolError> {
        let SmolUdpSocket::Bound(_, Some(remote)) = *socket else {
            return Err(nb::Error::Other(SmolError::InvalidState));
        };
        self.send_to(socket, remote, buffer)
    }

    fn receive(
        &mut self,
        socket: &mut SmolUdpSocket,
        buffer: &mut [u8],
    ) -> nb::Result<(usize, SocketAddr), SmolError> {
        let SmolUdpSocket::Bound(i, _) = *socket else {
            return Err(nb::Error::Other(SmolError::InvalidState));
        };
        let mut net = self.net.borrow_mut();
        match net.udp_socket(i)?.recv_slice(buffer) {
            Ok((n, meta)) => {
                let IpAddress::Ipv4(a) = meta.endpoint.addr;
                Ok((n, SocketAddr::V4(SocketAddrV4::new(a, meta.endpoint.port))))
            }
            Err(udp::RecvError::Exhausted) => Err(nb::Error::WouldBlock),
            Err(udp::RecvError::Truncated) => Err(nb::Error::Other(SmolError::Truncated)),
        }
    }

    fn close(&mut self, socket: SmolUdpSocket) -> Result<(), SmolError> {
        if let SmolUdpSocket::Bound(i, _) = socket {
            let mut net = self.net.borrow_mut();
            net.udp_socket(i)?.close();
            net.udp[i].1 = false;
        }
        Ok(())
    }
}

impl<D: Device> UdpFullStack for SmolStack<'_, '_, D> {
    fn bind(&mut self, socket: &mut SmolUdpSocket, local_port: u16) -> Result<(), SmolError> {
        if *socket != SmolUdpSocket::Fresh {
            return Err(SmolError::InvalidState);
        }
        let i = self.net.borrow_mut().open_udp(local_port)?;
        *socket = SmolUdpSocket::Bound(i, None);
        Ok(())
    }

    fn send_to(
        &mut self,
        socket: &mut SmolUdpSocket,
        remote: SocketAddr,
        buffer: &[u8],
    ) -> nb::Result<(), SmolError> {
        let SmolUdpSocket::Bound(i, _) = *socket else {
            return Err(nb::Error::Other(SmolError::InvalidState));
        };
        let remote = endpoint(remote)?;
        let mut net = self.net.borrow_mut();
        match net.udp_socket(i)?.send_slice(buffer, remote) {
            Ok(()) => Ok(()),
            Err(udp::SendError::BufferFull) => Err(nb::Error::WouldBlock),
            Err(udp::SendError::Unaddressable) => Err(nb::Error::Other(SmolError::Unaddressable)),
        }
    }
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    extern crate std;
    use super::*;
    use crate::mem_device::MemDevice as Wire;
    use std::vec;
    use std::vec::Vec;

    fn cfg(last: u8) -> NetConfig {
        NetConfig {
            address: Ipv4Addr::new(10, 0, 0, last),
            prefix_len: 24,
            seed: last as u64,
            backlog: 1,
            first_port: EPHEMERAL_FIRST,
        }
    }

    #[test]
    fn udp_datagrams_between_two_interfaces() {
        let mut storage_a = [SocketStorage::EMPTY; 1];
        let mut storage_b = [SocketStorage::EMPTY; 1];
        let mut mem: Vec<Vec<u8>> = (0..4).map(|_| vec![0u8; 4096]).collect();
        let mut metas: Vec<Vec<udp::PacketMetadata>> = (0..4)
            .map(|_| vec![udp::PacketMetadata::EMPTY; 4])
            .collect();
        let [m0, m1, m2, m3] = &mut metas[..] else {
            unreachable!()
        };
        let [b0, b1, b2, b3] = &mut mem[..] else {
            unreachable!()
        };
        let none = core::iter::empty::<(&mut [u8], &mut [u8])>();
        let a = RefCell::new(SmolNet::new(
            cfg(1),
            Wire::default(),
            &mut storage_a,
            none,
            Instant::ZERO,
        ));
        let none = core::iter::empty::<(&mut [u8], &mut [u8])>();
        let b = RefCell::new(SmolNet::new(
            cfg(2),
            Wire::default(),
            &mut storage_b,
            none,
            Instant::ZERO,
        ));
        a.borrow_mut().add_udp(m0, b0, m1, b1).unwrap();
        b.borrow_mut().add_udp(m2, b2, m3, b3).unwrap();
        // The storage holds one socket: a second is a typed refusal, not smoltcp's panic.
        let (mut m4, mut b4) = ([udp::PacketMetadata::EMPTY; 1], [0u8; 8]);
        let (mut m5, mut b5) = ([udp::PacketMetadata::EMPTY; 1], [0u8; 8]);
        assert_eq!(
            a.borrow_mut().add_udp(&mut m4, &mut b4, &mut m5, &mut b5),
            Err(SmolError::NoSocket)
        );
        let (mut sa, mut sb) = (SmolStack::new(&a), SmolStack::new(&b));
        let mut x = UdpClientStack::socket(&mut sa).unwrap();
        let mut y = UdpClientStack::socket(&mut sb).unwrap();
        UdpFullStack::bind(&mut sb, &mut y, 7000).unwrap();
        let to = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 7000);
        UdpClientStack::connect(&mut sa, &mut x, to).unwrap();
        UdpClientStack::send(&mut sa, &mut x, b"datagram").unwrap();
        let mut buf = [0u8; 64];
        assert!(matches!(
            UdpClientStack::receive(&mut sb, &mut y, &mut buf),
            Err(nb::Error::WouldBlock)
        ));
        let t = Instant::from_millis(1);
        a.borrow_mut().poll(t);
        let packets: Vec<Vec<u8>> = a.borrow_mut().device_mut().tx.drain(..).collect();
        assert_eq!(packets.len(), 1);
        b.borrow_mut().device_mut().rx.extend(packets);
        b.borrow_mut().poll(t);
        let (n, from) = UdpClientStack::receive(&mut sb, &mut y, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"datagram");
        assert_eq!(from.ip(), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        assert!(from.port() >= EPHEMERAL_FIRST);
        // A datagram larger than the caller's buffer is a typed error.
        UdpFullStack::send_to(&mut sa, &mut x, to, &[7u8; 100]).unwrap();
        a.borrow_mut().poll(t);
        let packets: Vec<Vec<u8>> = a.borrow_mut().device_mut().tx.drain(..).collect();
        b.borrow_mut().device_mut().rx.extend(packets);
        b.borrow_mut().poll(t);
        assert!(matches!(
            UdpClientStack::receive(&mut sb, &mut y, &mut buf),
            Err(nb::Error::Other(SmolError::Truncated))
        ));
        UdpClientStack::close(&mut sa, x).unwrap();
        UdpClientStack::close(&mut sb, y).unwrap();
    }
}
