//! Cortex-M4F test image (qemu `mps2-an386`): a tiny network run tile by tile on the target
//! must match its full-frame run bit for bit.
//!
//! Exits through semihosting: 0 when every check passes, 1 on a mismatch, a kernel error, a
//! panic or a hard fault.
#![no_std]
#![no_main]

mod defmt_uart;
mod ftp;
mod name;
mod net;

use core::panic::PanicInfo;

use cortex_m_rt::{entry, exception, ExceptionFrame};
use cortex_m_semihosting::{debug, hprintln};

use tessera_core::kernel::{Kernels, Portable, Reference};

/// Exits qemu with `code` (semihosting `SYS_EXIT`).
fn exit(ok: bool) -> ! {
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    // Only reached without a semihosting host.
    #[allow(clippy::empty_loop)]
    loop {}
}

#[entry]
fn main() -> ! {
    hprintln!("tessera firmware test: {}", net::describe());
    let mut failures = 0u32;
    let mut checks = 0u32;
    let mut record = |name: &str, result: Result<(), net::Failure>| {
        checks += 1;
        match result {
            Ok(()) => hprintln!("ok   {}", name),
            Err(e) => {
                failures += 1;
                hprintln!("FAIL {}: {:?}", name, e);
            }
        }
    };

    let fx = net::Fixture::new();
    record(
        "portable full frame == reference full frame",
        fx.portable_matches_reference(),
    );
    for &(gx, gy) in &[(2u32, 2u32), (3, 3), (4, 2)] {
        record_grid(&mut record, &fx, "reference", &Reference, gx, gy);
        record_grid(&mut record, &fx, "portable", &Portable, gx, gy);
    }
    ftp::checks(&fx, &mut record);

    hprintln!("{} checks, {} failed", checks, failures);
    exit(failures == 0 && checks > 0)
}

fn record_grid<K: Kernels>(
    record: &mut impl FnMut(&str, Result<(), net::Failure>),
    fx: &net::Fixture,
    kname: &str,
    k: &K,
    gx: u32,
    gy: u32,
) {
    let mut name = name::Name::new();
    let _ = core::fmt::write(
        &mut name,
        format_args!("{kname} kernels: {gx}x{gy} tiles == full frame"),
    );
    record(name.as_str(), fx.tiled_matches_full(k, gx, gy));
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    hprintln!("PANIC: {}", info);
    exit(false)
}

#[exception]
unsafe fn HardFault(ef: &ExceptionFrame) -> ! {
    hprintln!("HARD FAULT: {:?}", ef);
    exit(false)
}
