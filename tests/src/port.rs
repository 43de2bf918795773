//! Free TCP ports for tests that listen on real sockets.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::ops::Range;

/// A TCP port that was free on `ip` a moment ago: the OS picks it (bind to port 0), so test
/// binaries running in parallel never choose the same one. For a node that listens on `ip`
/// alone; a loopback cluster sharing one port across addresses takes [`loopback_port`].
/// `ip` is an address or its text (`"127.0.0.1"`, an `IpAddr`, an `Ipv4Addr`).
///
/// # Panics
///
/// If `ip` is not an IP address or nothing can be bound on it (the test cannot run at all).
pub fn free_port(ip: impl ToString) -> u16 {
    let ip: IpAddr = ip.to_string().parse().expect("an IP address");
    TcpListener::bind(SocketAddr::new(ip, 0))
        .and_then(|l| l.local_addr())
        .expect("bind to port 0")
        .port()
}

/// Nodes of a loopback cluster listen on 127.0.0.1 up to this address, all on one port.
pub const LOOPBACK_HOSTS: u8 = 16;

/// Where [`loopback_port`] looks: below Linux's ephemeral range (32768–60999), so no outgoing
/// connection of a parallel test can hold the port on one of the addresses.
const RANGE: Range<u16> = 10_000..32_000;

/// A port free on every address 127.0.0.1..=127.0.0.[`LOOPBACK_HOSTS`] a moment ago, for a
/// cluster whose node `id` listens on 127.0.0.(1 + id) at one shared port. A port handed out
/// by the OS for one address (port 0) need not be free on the others, and lies in the
/// ephemeral range that other tests' connections draw from; this one is drawn at random
/// below it and checked on every address.
///
/// # Panics
///
/// If no free port is found in 1,000 draws (the test cannot run at all).
pub fn loopback_port() -> u16 {
    // std's hasher keys are random per process and differ per state: a random draw each time.
    for draw in 0..1_000u32 {
        let z = RandomState::new().hash_one(draw);
        let port = RANGE.start + (z % u64::from(RANGE.end - RANGE.start)) as u16;
        let free = (1..=LOOPBACK_HOSTS).all(|host| {
            TcpListener::bind(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, host)),
                port,
            ))
            .is_ok()
        });
        if free {
            return port;
        }
    }
    panic!("no port in {RANGE:?} free on 127.0.0.1..={LOOPBACK_HOSTS}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loopback_port_is_below_the_ephemeral_range_and_bindable_everywhere() {
        let p = loopback_port();
        assert!(RANGE.contains(&p));
        for host in 1..=LOOPBACK_HOSTS {
            TcpListener::bind((Ipv4Addr::new(127, 0, 0, host), p)).unwrap();
        }
    }
}
