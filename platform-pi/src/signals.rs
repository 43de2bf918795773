//! SIGTERM/SIGINT (stop gracefully; a second one exits at once) and SIGUSR1 (print the
//! counters) for the long-running node commands.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
use signal_hook::flag;

/// Flags set by signals, polled by a node command's main loop.
pub struct Signals {
    stop: Arc<AtomicBool>,
    report: Arc<AtomicBool>,
}

impl Signals {
    /// Installs the handlers. The first SIGTERM or SIGINT asks for a graceful stop; a second
    /// one, while that stop is under way, exits at once with status 130.
    pub fn install() -> io::Result<Signals> {
        let stop = Arc::new(AtomicBool::new(false));
        let report = Arc::new(AtomicBool::new(false));
        for sig in [SIGTERM, SIGINT] {
            // Registered first, so it sees the flag as it was before this signal.
            flag::register_conditional_shutdown(sig, 130, stop.clone())?;
            flag::register(sig, stop.clone())?;
        }
        flag::register(SIGUSR1, report.clone())?;
        Ok(Signals { stop, report })
    }

    /// A graceful stop was asked for.
    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// SIGUSR1 arrived since the last call.
    pub fn take_report(&self) -> bool {
        self.report.swap(false, Ordering::Relaxed)
    }
}
