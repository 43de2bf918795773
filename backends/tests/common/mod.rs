//! Helpers shared by the loopback cluster tests.
#![allow(dead_code)] // each test binary uses its own subset

/// `n` deterministic values in `[-1, 1)` (xorshift32 from `seed`).
pub fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut x = seed.wrapping_mul(2654435761).max(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x % 2000) as f32 / 1000.0 - 1.0
        })
        .collect()
}

/// A TCP port free on 127.0.0.1 a moment ago (every node of a test listens on it, each on its
/// own 127.0.0.x address).
pub fn port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
