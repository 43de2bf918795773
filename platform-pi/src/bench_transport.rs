//! `tessera bench transport`: the authenticated TCP link against the datagram transport on a
//! lossy wire — two smoltcp nodes in virtual time (`tessera_backends::transport_bench`), one
//! message of each size every interval, every IP packet lost with the given probability. The
//! table says, per size and loss, how many messages arrived within the deadline and the
//! latency of those that arrived: the figures behind which messages travel on datagrams
//! (docs/datagram.md).

use anyhow::{anyhow, Error};
use clap::Args as ClapArgs;

use tessera_backends::transport_bench::{measure, TransportRow, TransportSpec};
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

fn ms(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| {
        format!("{:.1}", d.total_micros() as f64 / 1000.0)
    })
}

/// Runs `tessera bench transport`.
pub fn run(args: &Args) -> Result<(), Error> {
    if let Some(l) = args.loss.iter().find(|l| !(0.0..=1.0).contains(*l)) {
        return Err(anyhow!("reading --loss: '{l}' is not a fraction 0..1"));
    }
    if args.sizes.is_empty() || args.messages == 0 || args.rate_mbps == 0 {
        return Err(anyhow!(
            "reading --sizes, --messages, --rate-mbps: need at least one size, one message and a rate"
        ));
    }
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
    println!(
        "smoltcp, virtual time: {} messages every {} ms, one-way {} ms, {} Mbit/s, deadline {} ms, seed {}",
        args.messages, args.interval_ms, args.one_way_ms, args.rate_mbps, args.deadline_ms, args.seed
    );
    println!(
        "{:>9} {:>7} {:>5} {:>10} {:>9} {:>9} {:>9} {:>9}",
        "transport", "bytes", "loss", "delivered", "in time", "p50 ms", "p99 ms", "max ms"
    );
    for r in measure(&spec) {
        print_row(&r);
    }
    Ok(())
}

fn print_row(r: &TransportRow) {
    let pct = |n: usize| format!("{:.1}%", 100.0 * n as f64 / r.sent.max(1) as f64);
    println!(
        "{:>9} {:>7} {:>5.2} {:>10} {:>9} {:>9} {:>9} {:>9}",
        r.transport.name(),
        r.bytes,
        r.loss,
        pct(r.delivered),
        pct(r.in_time),
        ms(r.quantile(0.5)),
        ms(r.quantile(0.99)),
        ms(r.quantile(1.0)),
    );
}
