//! defmt's global logger on the board's UART0 (an ARM CMSDK APB UART; qemu: `-serial
//! file:F`), so the log lines of `tessera-log` (the link's peers up and down, refused
//! connections, the runtime's re-dispatches) leave the board as defmt frames, decoded on the
//! host with the image's ELF (`defmt-print -e IMAGE < F`).
//!
//! Registers (offsets from the UART's base): DATA 0x00, STATE 0x04 (bit 0: transmit buffer
//! full), CTRL 0x08 (bit 0: transmit enable), BAUDDIV 0x10 (at least 16).

use core::sync::atomic::{AtomicBool, Ordering};

/// UART0 of the MPS2 AN385/AN386 boards.
const UART0: usize = 0x4000_4000;
const DATA: usize = 0x00;
const STATE: usize = 0x04;
const CTRL: usize = 0x08;
const BAUDDIV: usize = 0x10;
const STATE_TX_FULL: u32 = 1;
const CTRL_TX_ENABLE: u32 = 1;

static TAKEN: AtomicBool = AtomicBool::new(false);
static ENABLED: AtomicBool = AtomicBool::new(false);
static mut RESTORE: critical_section::RestoreState = critical_section::RestoreState::invalid();
static mut ENCODER: defmt::Encoder = defmt::Encoder::new();

fn reg(offset: usize) -> *mut u32 {
    (UART0 + offset) as *mut u32
}

fn put(bytes: &[u8]) {
    if !ENABLED.swap(true, Ordering::Relaxed) {
        // SAFETY: UART0's registers on this board; only this logger touches the UART.
        unsafe {
            core::ptr::write_volatile(reg(BAUDDIV), 16);
            core::ptr::write_volatile(reg(CTRL), CTRL_TX_ENABLE);
        }
    }
    for &b in bytes {
        // SAFETY: as above; STATE is read-only, DATA takes one byte when not full.
        unsafe {
            while core::ptr::read_volatile(reg(STATE)) & STATE_TX_FULL != 0 {}
            core::ptr::write_volatile(reg(DATA), u32::from(b));
        }
    }
}

#[defmt::global_logger]
struct UartLogger;

// SAFETY: `acquire` enters a critical section and refuses re-entry, so `ENCODER` and
// `RESTORE` are used by one frame at a time; `release` leaves the section it entered.
unsafe impl defmt::Logger for UartLogger {
    fn acquire() {
        // SAFETY: paired with the `release` in `Logger::release`.
        let restore = unsafe { critical_section::acquire() };
        if TAKEN.swap(true, Ordering::Relaxed) {
            panic!("defmt logger taken reentrantly");
        }
        // SAFETY: inside the critical section, with the logger taken.
        unsafe {
            RESTORE = restore;
            (*core::ptr::addr_of_mut!(ENCODER)).start_frame(put);
        }
    }

    unsafe fn flush() {}

    unsafe fn release() {
        // SAFETY: the caller acquired the logger (defmt's contract).
        unsafe {
            (*core::ptr::addr_of_mut!(ENCODER)).end_frame(put);
            TAKEN.store(false, Ordering::Relaxed);
            critical_section::release(RESTORE);
        }
    }

    unsafe fn write(bytes: &[u8]) {
        // SAFETY: the caller acquired the logger (defmt's contract).
        unsafe { (*core::ptr::addr_of_mut!(ENCODER)).write(bytes, put) }
    }
}
