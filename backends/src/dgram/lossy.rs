//! A UDP stack that loses datagrams on purpose: a seeded fraction of every send, and every
//! datagram to black-holed addresses. Receives are untouched (wrap every node's stack to lose
//! in both directions).

extern crate alloc;

use core::net::{IpAddr, SocketAddr};

use alloc::vec::Vec;
use embedded_nal::{nb, UdpClientStack, UdpFullStack};
use tessera_core::rng::SplitMix64;

/// `S` with a seeded loss on send: one draw per send call, whatever else decides. A dropped
/// datagram is reported as sent, as the network would.
#[derive(Debug)]
pub struct LossyUdp<S> {
    inner: S,
    loss: f64,
    rng: SplitMix64,
    blackholed: Vec<IpAddr>,
    dropped: u64,
    passed: u64,
}

impl<S> LossyUdp<S> {
    /// Drops each datagram with probability `loss` (clamped to `[0, 1]`), drawn from
    /// `SplitMix64::new(seed)`: one draw per datagram.
    pub fn new(inner: S, loss: f64, seed: u64) -> Self {
        LossyUdp {
            inner,
            loss: loss.clamp(0.0, 1.0),
            rng: SplitMix64::new(seed),
            blackholed: Vec::new(),
            dropped: 0,
            passed: 0,
        }
    }

    /// Also drops every datagram sent to host `to`, any port (a peer cut off from this node).
    pub fn blackhole(mut self, to: IpAddr) -> Self {
        self.blackholed.push(to);
        self
    }

    /// Datagrams dropped so far.
    pub const fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Datagrams passed to the inner stack so far.
    pub const fn passed(&self) -> u64 {
        self.passed
    }

    /// The wrapped stack.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// True when the next datagram to `to` is lost (draws once whatever the outcome).
    fn lose(&mut self, to: Option<SocketAddr>) -> bool {
        let random = self.rng.bernoulli(self.loss);
        let lost = random || to.is_some_and(|a| self.blackholed.contains(&a.ip()));
        if lost {
            self.dropped += 1;
        } else {
            self.passed += 1;
        }
        lost
    }
}

/// A socket of [`LossyUdp`]: the inner socket and where `connect` pointed it.
#[derive(Debug)]
pub struct LossySocket<T> {
    inner: T,
    remote: Option<SocketAddr>,
}

impl<T> LossySocket<T> {
    /// The inner stack's socket.
    pub fn inner(&self) -> &T {
        &self.inner
    }
}

impl<S: UdpClientStack> UdpClientStack for LossyUdp<S> {
    type UdpSocket = LossySocket<S::UdpSocket>;
    type Error = S::Error;

    fn socket(&mut self) -> Result<Self::UdpSocket, S::Error> {
        Ok(LossySocket {
            inner: self.inner.socket()?,
            remote: None,
        })
    }

    fn connect(
        &mut self,
        socket: &mut Self::UdpSocket,
        remote: SocketAddr,
    ) -> Result<(), S::Error> {
        self.inner.connect(&mut socket.inner, remote)?;
        socket.remote = Some(remote);
        Ok(())
    }

    fn send(&mut self, socket: &mut Self::UdpSocket, buffer: &[u8]) -> nb::Result<(), S::Error> {
        if self.lose(socket.remote) {
            return Ok(());
        }
        self.inner.send(&mut socket.inner, buffer)
    }

    fn receive(
        &mut self,
        socket: &mut Self::UdpSocket,
        buffer: &mut [u8],
    ) -> nb::Result<(usize, SocketAddr), S::Error> {
        self.inner.receive(&mut socket.inner, buffer)
    }

    fn close(&mut self, socket: Self::UdpSocket) -> Result<(), S::Error> {
        self.inner.close(socket.inner)
    }
}

impl<S: UdpFullStack> UdpFullStack for LossyUdp<S> {
    fn bind(&mut self, socket: &mut Self::UdpSocket, local_port: u16) -> Result<(), S::Error> {
        self.inner.bind(&mut socket.inner, local_port)
    }

    fn send_to(
        &mut self,
        socket: &mut Self::UdpSocket,
        remote: SocketAddr,
        buffer: &[u8],
    ) -> nb::Result<(), S::Error> {
        if self.lose(Some(remote)) {
            return Ok(());
        }
        self.inner.send_to(&mut socket.inner, remote, buffer)
    }
}
