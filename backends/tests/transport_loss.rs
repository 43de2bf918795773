//! The TCP link against datagrams on a lossy wire (smoltcp, virtual time, seeded): without
//! loss both deliver every message in time; with loss TCP still delivers every message but
//! a lost segment costs its retransmission timeout (smoltcp: at least 1 s) and everything
//! queued behind it, while a datagram message is lost alone and the others keep their time.
#![cfg(all(feature = "std", feature = "smoltcp"))]

use tessera_backends::transport_bench::{measure, Transport, TransportRow, TransportSpec};
use tessera_core::time::Duration;

fn spec(sizes: Vec<usize>, losses: Vec<f64>) -> TransportSpec {
    TransportSpec {
        sizes,
        losses,
        messages: 40,
        interval: Duration::from_millis(20),
        one_way: Duration::from_millis(2),
        rate_bps: 20_000_000,
        deadline: Duration::from_millis(200),
        seed: 3,
    }
}

fn cell(rows: &[TransportRow], t: Transport, loss: f64) -> &TransportRow {
    rows.iter()
        .find(|r| r.transport == t && r.loss == loss)
        .unwrap()
}

#[test]
fn loss_costs_tcp_time_and_datagrams_messages() {
    let rows = measure(&spec(vec![4096], vec![0.0, 0.1]));
    for r in &rows {
        eprintln!(
            "{:>8} {:>6} B loss {:.2}: {}/{} delivered, {} in time, p50 {:?} p99 {:?}",
            r.transport.name(),
            r.size,
            r.loss,
            r.delivered,
            r.sent,
            r.in_time,
            r.quantile(0.5),
            r.quantile(0.99)
        );
    }
    for t in [Transport::Tcp, Transport::Datagram] {
        let r = cell(&rows, t, 0.0);
        assert_eq!((r.sent, r.delivered, r.in_time), (40, 40, 40), "{t:?}");
    }
    let tcp = cell(&rows, Transport::Tcp, 0.1);
    let dg = cell(&rows, Transport::Datagram, 0.1);
    assert_eq!(tcp.delivered, 40, "TCP delivers everything, eventually");
    assert!(
        tcp.quantile(0.99).unwrap() >= Duration::from_secs(1),
        "{tcp:?}"
    );
    assert!(dg.delivered < 40, "a datagram message can be lost");
    assert_eq!(
        dg.in_time, dg.delivered,
        "what a datagram delivers is on time"
    );
    assert!(
        dg.in_time > tcp.in_time,
        "datagrams: {} in time, TCP {}",
        dg.in_time,
        tcp.in_time
    );
}
