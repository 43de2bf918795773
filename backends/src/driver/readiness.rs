//! Sleeping until a node has something to do (std): socket readiness, a deadline, or a wake
//! from another thread.
//!
//! Built on `mio` rather than `polling`: `mio` registers sockets through a safe API (this crate
//! denies `unsafe`; `polling` 3 makes `add` unsafe), its `Waker` is the cross-thread wake, and
//! its sockets already do the non-blocking connect [`StdStack`]
//! needs. Registration is edge-triggered: a socket wakes the loop when it changes state (bytes
//! arrived, a connect finished, send space freed after a send hit `WouldBlock`), so the loop
//! must finish what it can before sleeping again; the link says so through `poll_at`.

extern crate alloc;
extern crate std;

use alloc::sync::Arc;
use core::net::IpAddr;
use std::io;
use std::time::Duration;

use mio::{Events, Poll, Token, Waker};

use crate::nal_std::StdStack;

/// The token of the cross-thread waker (socket tokens count up from 1).
const WAKE: Token = Token(usize::MAX);

/// Wakes a [`Readiness`] from another thread (a finished job, a submitted frame, a stop).
#[derive(Clone, Debug)]
pub struct Wake(Arc<Waker>);

impl Wake {
    /// Wakes the loop (at once if it sleeps, or makes its next wait return at once).
    pub fn wake(&self) {
        // Fails only if the poll is gone, i.e. the loop has ended: nothing left to wake.
        let _ = self.0.wake();
    }
}

/// A node loop's sleep: returns when a socket of its stack is ready, a [`Wake`] fired, or a
/// deadline passed.
#[derive(Debug)]
pub struct Readiness {
    poll: Poll,
    events: Events,
    wake: Wake,
}

impl Readiness {
    /// A new poll set with its waker.
    pub fn new() -> io::Result<Self> {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKE)?;
        Ok(Readiness {
            poll,
            events: Events::with_capacity(64),
            wake: Wake(Arc::new(waker)),
        })
    }

    /// A stack whose sockets (listening on `local_ip`) wake this poll.
    pub fn stack(&self, local_ip: IpAddr) -> io::Result<StdStack> {
        let registry = self.poll.registry().try_clone()?;
        Ok(StdStack::with_registry(local_ip, Arc::new(registry)))
    }

    /// A handle other threads use to wake the loop.
    pub fn waker(&self) -> Wake {
        self.wake.clone()
    }

    /// Sleeps until a registered socket is ready, a [`Wake`] fired, or `timeout` passed
    /// (`None`: no deadline). Returns how many readiness events (including wakes) arrived.
    pub fn wait(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => Ok(self.events.iter().count()),
            // A signal cut the sleep short: the caller just polls its node early.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wake_from_another_thread_ends_the_wait() {
        let mut r = Readiness::new().unwrap();
        let w = r.waker();
        let t = std::thread::spawn(move || w.wake());
        // Without the wake this would sleep forever (no deadline).
        assert!(r.wait(None).unwrap() >= 1);
        t.join().unwrap();
        // Nothing pending: a zero deadline returns with no events.
        assert_eq!(r.wait(Some(Duration::ZERO)).unwrap(), 0);
    }
}
