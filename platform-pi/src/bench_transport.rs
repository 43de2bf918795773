//! `tessera bench transport`: the authenticated TCP link against the datagram transport on a
//! lossy wire — two smoltcp nodes in virtual time (`tessera_backends::transport_bench`), one
//! message of each size every interval, every IP packet lost with the given probability. The
//! table says, per size and loss, how many messages arrived within the deadline and the
//! latency of those that arrived: the figures behind which messages travel on datagrams
//! (docs/datagram.md).

use anyhow::Error;
use clap::Args as ClapArgs;

use tessera_backends::transport_bench::TransportSpec;
use tessera_backends::transport_table::report;
use tessera_core::time::Duration;

/// Arguments of `tessera bench transport`.
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Message sizes, bytes (control message, coded result, coded shard input, tile result).
    #[arg(long, value_delimiter = ',', default_value = "64,1024,6144,65536")]
    pub sizes: Vec<usize>,
    /// Fractions of IP packets lost, each direction.
    #[arg(long, value_delimiter = ',', default_value = "0,0.05,0.1,0.2,0.3")]
    pub loss: Vec<f64>,
    /// Messages per cell.
    #[arg(long, default_value_t = 200)]
    pub messages: usize,
    /// Time between two messages, ms.
    #[arg(long, default_value_t = 50)]
    pub interval_ms: u64,
    /// One-way delay, ms.
    #[arg(long, default_value_t = 2)]
    pub one_way_ms: u64,
    /// Wire rate, Mbit/s.
    #[arg(long, default_value_t = 20)]
    pub rate_mbps: u64,
    /// A message is useful within this; datagram messages live this long, ms.
    #[arg(long, default_value_t = 200)]
    pub deadline_ms: u64,
    /// Seed of the loss.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Runs `tessera bench transport`.
pub fn run(args: &Args) -> Result<(), Error> {
    let spec = TransportSpec {
        sizes: args.sizes.clone(),
        losses: args.loss.clone(),
        messages: args.messages,
        interval: Duration::from_millis(args.interval_ms),
        one_way: Duration::from_millis(args.one_way_ms),
        rate_bps: args.rate_mbps * 1_000_000,
        deadline: Duration::from_millis(args.deadline_ms),
        seed: args.seed,
    };
    print!("{}", report(&spec)?);
    Ok(())
}
