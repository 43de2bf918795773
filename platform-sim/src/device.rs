//! A smoltcp [`Device`] on the simulated medium: IP packets in, IP packets out.
//!
//! The simulator puts arriving packets into [`SimDevice::deliver`] and takes what the
//! interface transmitted with [`SimDevice::take_sent`]; the medium decides when (and whether)
//! they arrive. Packet buffers are recycled through a free list.

use std::collections::VecDeque;

use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// One node's network device.
pub struct SimDevice {
    rx: VecDeque<Vec<u8>>,
    tx: Vec<Vec<u8>>,
    free: Vec<Vec<u8>>,
    mtu: usize,
}

impl SimDevice {
    /// A device with IP MTU `mtu`.
    pub fn new(mtu: usize) -> SimDevice {
        SimDevice {
            rx: VecDeque::new(),
            tx: Vec::new(),
            free: Vec::new(),
            mtu,
        }
    }

    /// Queues a packet that arrived from the medium.
    pub fn deliver(&mut self, packet: Vec<u8>) {
        self.rx.push_back(packet);
    }

    /// Packets transmitted since the last call (appended to `out`).
    pub fn take_sent(&mut self, out: &mut Vec<Vec<u8>>) {
        out.append(&mut self.tx);
    }

    /// Returns a packet buffer for reuse.
    pub fn recycle(&mut self, mut packet: Vec<u8>) {
        if self.free.len() < 256 {
            packet.clear();
            self.free.push(packet);
        }
    }

    /// Drops every packet waiting to be received (a crashed node).
    pub fn clear(&mut self) {
        self.rx.clear();
        self.tx.clear();
    }
}

/// A received packet.
pub struct Rx(Vec<u8>);

/// A transmit slot.
pub struct Tx<'a> {
    out: &'a mut Vec<Vec<u8>>,
    free: &'a mut Vec<Vec<u8>>,
}

impl phy::RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = self.free.pop().unwrap_or_default();
        buf.resize(len, 0);
        let r = f(&mut buf);
        self.out.push(buf);
        r
    }
}

impl Device for SimDevice {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _: Instant) -> Option<(Rx, Tx<'_>)> {
        let p = self.rx.pop_front()?;
        Some((
            Rx(p),
            Tx {
                out: &mut self.tx,
                free: &mut self.free,
            },
        ))
    }

    fn transmit(&mut self, _: Instant) -> Option<Tx<'_>> {
        Some(Tx {
            out: &mut self.tx,
            free: &mut self.free,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ip;
        c.max_transmission_unit = self.mtu;
        c
    }
}
