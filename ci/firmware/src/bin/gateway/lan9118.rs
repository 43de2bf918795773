//! A no-alloc smoltcp [`Device`] for the SMSC LAN9118 Ethernet controller (the MPS2 boards'
//! LAN9220 is software compatible), in 32-bit bus mode, polled: no interrupts, no DMA.
//!
//! The controller keeps received frames in its own RX FIFO (about 10 KiB in qemu's model) with
//! one status word each; a frame is read whole, word by word, into the driver's one receive
//! buffer before smoltcp sees it. Transmission writes two command words and the frame's words
//! into the TX FIFO; the controller sends once the last word is in.
//!
//! Register layout (offsets from the controller's base, 32-bit registers):
//!
//! | offset | register | use here |
//! |---|---|---|
//! | 0x00 | RX_DATA_FIFO | a received frame's words, then its CRC |
//! | 0x20 | TX_DATA_FIFO | command A, command B, a frame's words |
//! | 0x40 | RX_STATUS_FIFO | per frame: length with CRC in bits 29:16, error summary bit 15 |
//! | 0x48 | TX_STATUS_FIFO | per sent frame (drained and discarded) |
//! | 0x64 | BYTE_TEST | reads 0x8765_4321: the bus works |
//! | 0x6c | RX_CFG | 0: no offset, no end padding |
//! | 0x70 | TX_CFG | TX_ON |
//! | 0x74 | HW_CFG | soft reset |
//! | 0x7c | RX_FIFO_INF | status words waiting, bits 23:16 |
//! | 0x80 | TX_FIFO_INF | status words waiting 23:16, free data bytes 15:0 |
//! | 0x84 | PMT_CTRL | READY, bit 0 |
//! | 0x9c | FREE_RUN | a 25 MHz free-running counter (see [`Lan9118::free_run`]) |
//! | 0xa4 / 0xa8 | MAC_CSR_CMD / DATA | the MAC's own registers: MAC_CR (1), ADDRH (2), ADDRL (3) |

use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use smoltcp::wire::EthernetAddress;

/// Base address of the controller on the MPS2 AN385/AN386 boards.
pub const MPS2_BASE: usize = 0x4020_0000;

/// Largest Ethernet frame handled (without CRC): a 1500-byte MTU plus the 14-byte header.
pub const MAX_FRAME: usize = 1514;

const RX_DATA_FIFO: usize = 0x00;
const TX_DATA_FIFO: usize = 0x20;
const RX_STATUS_FIFO: usize = 0x40;
const TX_STATUS_FIFO: usize = 0x48;
const BYTE_TEST: usize = 0x64;
const RX_CFG: usize = 0x6c;
const TX_CFG: usize = 0x70;
const HW_CFG: usize = 0x74;
const RX_FIFO_INF: usize = 0x7c;
const TX_FIFO_INF: usize = 0x80;
const PMT_CTRL: usize = 0x84;
const FREE_RUN: usize = 0x9c;
const MAC_CSR_CMD: usize = 0xa4;
const MAC_CSR_DATA: usize = 0xa8;

const BYTE_TEST_VALUE: u32 = 0x8765_4321;
const HW_CFG_SRST: u32 = 1;
const PMT_CTRL_READY: u32 = 1;
const TX_CFG_TX_ON: u32 = 1 << 1;
const CSR_BUSY: u32 = 1 << 31;
const CSR_READ: u32 = 1 << 30;
const MAC_CR: u32 = 1;
const MAC_ADDRH: u32 = 2;
const MAC_ADDRL: u32 = 3;
const MAC_CR_TXEN: u32 = 1 << 3;
const MAC_CR_RXEN: u32 = 1 << 2;
const RX_STATUS_ERROR: u32 = 1 << 15;
const TX_CMD_A_FIRST: u32 = 1 << 13;
const TX_CMD_A_LAST: u32 = 1 << 12;
/// Polls of a busy or not-ready bit before giving up.
const SPINS: u32 = 100_000;

/// Why the controller could not be brought up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitError {
    /// BYTE_TEST did not read back its fixed pattern: no controller (or a wrong bus mode).
    NotFound(u32),
    /// The controller did not come out of reset.
    NotReady,
    /// A MAC register access never completed.
    MacBusy,
}

/// What the driver counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames handed to smoltcp.
    pub received: u32,
    /// Frames sent.
    pub sent: u32,
    /// Received frames dropped: error bit set, or longer than [`MAX_FRAME`].
    pub rx_dropped: u32,
}

/// The controller's registers (the only place that touches them).
struct Regs {
    base: usize,
}

impl Regs {
    fn read(&self, offset: usize) -> u32 {
        // SAFETY: `base` is the controller's MMIO window (checked by `Lan9118::new`'s contract
        // and BYTE_TEST), `offset` one of the 4-byte-aligned register offsets above, all
        // inside its 256-byte window; MMIO must be accessed volatile.
        unsafe { core::ptr::read_volatile((self.base + offset) as *const u32) }
    }

    fn write(&self, offset: usize, value: u32) {
        // SAFETY: as in `read`.
        unsafe { core::ptr::write_volatile((self.base + offset) as *mut u32, value) }
    }

    fn mac_read(&self, reg: u32) -> Result<u32, InitError> {
        self.write(MAC_CSR_CMD, CSR_BUSY | CSR_READ | reg);
        self.mac_wait()?;
        Ok(self.read(MAC_CSR_DATA))
    }

    fn mac_write(&self, reg: u32, value: u32) -> Result<(), InitError> {
        self.write(MAC_CSR_DATA, value);
        self.write(MAC_CSR_CMD, CSR_BUSY | reg);
        self.mac_wait()
    }

    fn mac_wait(&self) -> Result<(), InitError> {
        for _ in 0..SPINS {
            if self.read(MAC_CSR_CMD) & CSR_BUSY == 0 {
                return Ok(());
            }
        }
        Err(InitError::MacBusy)
    }
}

/// The LAN9118 as a smoltcp Ethernet device.
pub struct Lan9118 {
    regs: Regs,
    mac: EthernetAddress,
    rx: [u32; MAX_FRAME.div_ceil(4) + 1],
    counters: Counters,
}

impl Lan9118 {
    /// Resets the controller at `base`, reads its MAC address and turns its transmitter and
    /// receiver on.
    ///
    /// # Safety
    /// `base` must be the address of a LAN9118's register window, and nothing else may
    /// access that window while the returned driver lives.
    pub unsafe fn new(base: usize) -> Result<Lan9118, InitError> {
        let regs = Regs { base };
        let test = regs.read(BYTE_TEST);
        if test != BYTE_TEST_VALUE {
            return Err(InitError::NotFound(test));
        }
        regs.write(HW_CFG, HW_CFG_SRST);
        let mut ready = false;
        for _ in 0..SPINS {
            if regs.read(HW_CFG) & HW_CFG_SRST == 0 && regs.read(PMT_CTRL) & PMT_CTRL_READY != 0 {
                ready = true;
                break;
            }
        }
        if !ready {
            return Err(InitError::NotReady);
        }
        let low = regs.mac_read(MAC_ADDRL)?.to_le_bytes();
        let high = regs.mac_read(MAC_ADDRH)?.to_le_bytes();
        let mac = EthernetAddress([low[0], low[1], low[2], low[3], high[0], high[1]]);
        regs.write(RX_CFG, 0);
        regs.write(TX_CFG, TX_CFG_TX_ON);
        // Exact address filter (promiscuous off), broadcast accepted (ARP).
        regs.mac_write(MAC_CR, MAC_CR_TXEN | MAC_CR_RXEN)?;
        Ok(Lan9118 {
            regs,
            mac,
            rx: [0; MAX_FRAME.div_ceil(4) + 1],
            counters: Counters::default(),
        })
    }

    /// The controller's MAC address.
    pub fn mac(&self) -> EthernetAddress {
        self.mac
    }

    /// What the driver counted.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The controller's free-running counter: 25 MHz, wraps every 171.8 s.
    pub fn free_run(&self) -> u32 {
        self.regs.read(FREE_RUN)
    }

    /// Reads the next good received frame into the receive buffer; its length, or `None`
    /// when none waits. Frames with errors or too long are read out and counted.
    fn next_frame(&mut self) -> Option<usize> {
        loop {
            if (self.regs.read(RX_FIFO_INF) >> 16) & 0xff == 0 {
                return None;
            }
            let status = self.regs.read(RX_STATUS_FIFO);
            let with_crc = ((status >> 16) & 0x3fff) as usize;
            let words = with_crc.div_ceil(4);
            let good = status & RX_STATUS_ERROR == 0 && (4..=MAX_FRAME + 4).contains(&with_crc);
            for i in 0..words {
                let w = self.regs.read(RX_DATA_FIFO);
                if good {
                    self.rx[i] = w;
                }
            }
            if good {
                self.counters.received = self.counters.received.wrapping_add(1);
                return Some(with_crc - 4);
            }
            self.counters.rx_dropped = self.counters.rx_dropped.wrapping_add(1);
        }
    }

    fn send(regs: &Regs, frame: &[u8]) {
        let len = frame.len() as u32;
        regs.write(TX_DATA_FIFO, TX_CMD_A_FIRST | TX_CMD_A_LAST | len);
        regs.write(TX_DATA_FIFO, len);
        for chunk in frame.chunks(4) {
            let mut w = [0u8; 4];
            w[..chunk.len()].copy_from_slice(chunk);
            regs.write(TX_DATA_FIFO, u32::from_le_bytes(w));
        }
        // The per-frame status words are not needed: drain them so the FIFO never fills.
        while (regs.read(TX_FIFO_INF) >> 16) & 0xff != 0 {
            let _ = regs.read(TX_STATUS_FIFO);
        }
    }
}

/// A received frame, borrowed from the driver's receive buffer.
pub struct RxToken<'a> {
    frame: &'a [u8],
}

/// Room to send one frame.
pub struct TxToken<'a> {
    regs: &'a Regs,
    sent: &'a mut u32,
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.frame)
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = [0u8; MAX_FRAME];
        let len = len.min(MAX_FRAME);
        let r = f(&mut buf[..len]);
        Lan9118::send(self.regs, &buf[..len]);
        *self.sent = self.sent.wrapping_add(1);
        r
    }
}

impl Device for Lan9118 {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        let len = self.next_frame()?;
        let Lan9118 {
            regs, rx, counters, ..
        } = self;
        let bytes: &mut [u8] = bytemuck_words(rx);
        Some((
            RxToken {
                frame: &bytes[..len],
            },
            TxToken {
                regs,
                sent: &mut counters.sent,
            },
        ))
    }

    fn transmit(&mut self, _: Instant) -> Option<TxToken<'_>> {
        Some(TxToken {
            regs: &self.regs,
            sent: &mut self.counters.sent,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ethernet;
        c.max_transmission_unit = MAX_FRAME;
        c.max_burst_size = Some(1);
        c
    }
}

/// The receive buffer's words as bytes, in the order the controller filled them
/// (little-endian words: the first byte of the frame is the low byte of the first word).
fn bytemuck_words(words: &mut [u32]) -> &mut [u8] {
    // Little-endian target: the words' in-memory bytes are the frame's bytes in order.
    const _: () = assert!(cfg!(target_endian = "little"));
    // SAFETY: u8 has no alignment or validity requirements; the slice covers exactly the
    // words' bytes and borrows them mutably for its whole life.
    unsafe { core::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), words.len() * 4) }
}
