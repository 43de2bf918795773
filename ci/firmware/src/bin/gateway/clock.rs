//! The gateway's clock: the LAN9118's 25 MHz free-running counter, widened to 64 bits.
//!
//! The counter wraps every 171.8 s; the driver loop reads it far more often than that, so a
//! reading below the previous one means exactly one wrap.

use tessera_core::time::Instant;

use crate::lan9118::Lan9118;

/// Counter ticks per microsecond.
const TICKS_PER_MICRO: u64 = 25;

/// Monotonic time since the first reading.
pub struct Clock {
    last: u32,
    high: u64,
}

impl Clock {
    /// A clock starting at the counter's current value.
    pub fn new(nic: &Lan9118) -> Clock {
        Clock {
            last: nic.free_run(),
            high: 0,
        }
    }

    /// Now, from the counter of `nic`.
    pub fn now(&mut self, nic: &Lan9118) -> Instant {
        let raw = nic.free_run();
        if raw < self.last {
            self.high += 1 << 32;
        }
        self.last = raw;
        Instant::from_micros((self.high | u64::from(raw)) / TICKS_PER_MICRO)
    }
}
