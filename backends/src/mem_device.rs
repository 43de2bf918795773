//! An in-memory smoltcp device ([`MemDevice`]): the IP packets its interface sends wait in
//! `tx`, the packets put in `rx` are received. Tests and virtual-time measurements carry them
//! between interfaces (with whatever delay and loss they model).

extern crate alloc;

use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;

use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};

/// IP packets in and out of one interface (medium IP, 1500-byte MTU).
#[derive(Debug, Default)]
pub struct MemDevice {
    /// Packets waiting to be received.
    pub rx: VecDeque<Vec<u8>>,
    /// Packets the interface sent.
    pub tx: VecDeque<Vec<u8>>,
}

/// A received packet.
pub struct MemRx(Vec<u8>);

/// Room for a packet to send.
pub struct MemTx<'a>(&'a mut VecDeque<Vec<u8>>);

impl RxToken for MemRx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl TxToken for MemTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut b = vec![0; len];
        let r = f(&mut b);
        self.0.push_back(b);
        r
    }
}

impl Device for MemDevice {
    type RxToken<'a> = MemRx;
    type TxToken<'a> = MemTx<'a>;

    fn receive(&mut self, _: smoltcp::time::Instant) -> Option<(MemRx, MemTx<'_>)> {
        let p = self.rx.pop_front()?;
        Some((MemRx(p), MemTx(&mut self.tx)))
    }

    fn transmit(&mut self, _: smoltcp::time::Instant) -> Option<MemTx<'_>> {
        Some(MemTx(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ip;
        c.max_transmission_unit = 1500;
        c
    }
}
