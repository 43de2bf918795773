//! `tessera-sim`: runs simulated Tessera clusters.

fn main() {}
