//! Free TCP ports for tests that listen on real sockets.

use std::net::{IpAddr, SocketAddr, TcpListener};

/// A TCP port that was free on `ip` a moment ago: the OS picks it (bind to port 0), so test
/// binaries running in parallel never choose the same one. `ip` is an address or its text
/// (`"127.0.0.1"`, an `IpAddr`, an `Ipv4Addr`).
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
