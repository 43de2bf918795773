//! The cluster file: the example parses, every bad setting is refused with its line, and a
//! written file reads back as what was written.

extern crate alloc;
extern crate std;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use std::time::Duration;

use tessera_core::wire::{Policy, Precision};

use super::*;
use crate::cluster::Pacing;
use crate::coded::tail::{TailPlace, TailScheme};
use crate::dgram::TailTransport;
use crate::pipeline::KernelChoice;

const EXAMPLE: &str = include_str!("../../../cluster.example.toml");

#[test]
fn the_example_parses() {
    let c = Cluster::parse(EXAMPLE).unwrap();
    assert_eq!(c.deployment.spec.policy, Policy::WstS);
    assert_eq!(c.deployment.spec.grid, (3, 3));
    assert_eq!(c.deployment.spec.layers, 16);
    assert!(c.deployment.spec.key.is_some());
    assert_eq!(c.deployment.spec.nodes.len(), 4);
    assert_eq!(c.edges().count(), 3);
    assert!(c.node(1).unwrap().source);
    assert_eq!(
        c.deployment.spec.timeouts.tile,
        Duration::from_millis(10_000)
    );
    // WST-S strips stay local, values go as computed, unless the file says otherwise.
    assert!(c.deployment.spec.local_reuse);
    assert_eq!(c.deployment.spec.transfer, Precision::F32);
    let c = Cluster::parse(&format!(
        "reuse = \"gateway\"\ntransfer = \"f16\"\n{EXAMPLE}"
    ))
    .unwrap();
    assert!(!c.deployment.spec.local_reuse);
    assert_eq!(
        (c.deployment.spec.transfer, c.deployment.spec.local_reuse),
        (Precision::F16, false)
    );
    // Edge-to-edge strips: kept where made, fetched by the link model.
    assert!(!Cluster::parse(EXAMPLE).unwrap().deployment.spec.link_reuse);
    let c = Cluster::parse(&format!("reuse = \"link\"\n{EXAMPLE}")).unwrap();
    assert_eq!(
        (c.deployment.spec.local_reuse, c.deployment.spec.link_reuse),
        (true, true)
    );
    // Convolutions on one thread unless the file says more.
    assert_eq!(c.deployment.spec.threads, 1);
    let c4 = Cluster::parse(&format!("threads = 4\n{EXAMPLE}")).unwrap();
    assert_eq!(c4.deployment.spec.threads, 4);
    // Stealing is paced to the links unless the file turns it off.
    assert_eq!(c.deployment.spec.pacing, Pacing::default());
    let c = Cluster::parse(&format!("results_ahead = 0\nprefetch = false\n{EXAMPLE}")).unwrap();
    assert_eq!(
        c.deployment.spec.pacing,
        Pacing {
            results_ahead: 0,
            prefetch: false
        }
    );
}

fn err(text: &str) -> String {
    Cluster::parse(text).unwrap_err().to_string()
}

#[test]
fn bad_files_say_what_is_wrong() {
    let cases: &[(&str, &str)] = &[
        ("policy = \"fifo\"", "unknown policy"),
        ("grid = \"9x9\"", "outside 1x1..8x8"),
        ("grid = \"3by3\"", "NxM"),
        ("key = \"abcd\"", "64 hex digits"),
        ("layers = 0", "outside 1..=32"),
        ("colour = \"red\"", "unknown field"),
        ("tail = \"raid\"", "unknown tail 'raid': use gateway, cdc:R"),
        ("tail = \"cdc:3\"", "cdc:3 needs more than 3 edges"),
        ("tail_grace_ms = 10", "time a coded tail"),
        (
            "tail_transport = \"datagram\"",
            "tail_transport carries a coded tail",
        ),
        ("tail_copies = 3", "set tail_transport = \"datagram\""),
        ("transfer = \"f8\"", "\"f32\", \"f16\" or \"i8\""),
        ("reuse = \"edges\"", "\"local\", \"gateway\" or \"link\""),
        ("results_ahead = 9", "outside 0..=8"),
        ("threads = 0", "threads = 0 outside 1..=8"),
        ("threads = 9", "threads = 9 outside 1..=8"),
        ("threads = 300", "integer `300`, expected u8"),
    ];
    for (line, needle) in cases {
        let key = line.split('=').next().unwrap().trim();
        let text: String = EXAMPLE
            .lines()
            .filter(|l| {
                !l.trim_start().starts_with(&format!("{key} "))
                    && !l.trim_start().starts_with(&format!("{key}="))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let text = format!("{line}\n{text}");
        let err = err(&text);
        assert!(err.contains(needle), "{line}: {err}");
        assert!(err.starts_with("line 1: "), "{line}: {err}");
    }
    // Winograd with a stripe policy: refused at the kernel's line, not only when a node starts.
    let stripes = EXAMPLE
        .replace("kernel = \"auto\"", "kernel = \"winograd\"")
        .replace("policy = \"wst-s\"", "policy = \"bodp\"");
    let line = 1 + EXAMPLE
        .lines()
        .position(|l| l.starts_with("kernel ="))
        .unwrap();
    let err_stripes = err(&stripes);
    let want = format!("line {line}: kernel = \"winograd\" runs FTP tiles only, not the bodp");
    assert!(err_stripes.contains(&want), "{err_stripes}");
    let dup = EXAMPLE.replace("id = 2", "id = 1");
    assert!(err(&dup).contains("listed twice"));
    let no_gw = EXAMPLE.replace("id = 0", "id = 9");
    assert!(err(&no_gw).contains("no gateway"));
    let both = format!("insecure = true\n{EXAMPLE}");
    assert!(err(&both).contains("not both"));
    let zero = EXAMPLE.replace("tile_ms = 10000", "tile_ms = 0");
    assert!(err(&zero).contains("tile_ms"));
}

#[test]
fn a_coded_tail_is_read_with_its_timing() {
    let text = EXAMPLE.replace(
        "tail = \"gateway\"",
        "tail = \"cdc:1\"\ntail_deadline_ms = 9000\ntail_grace_ms = 500",
    );
    let c = Cluster::parse(&text).unwrap();
    assert_eq!(c.deployment.tail, TailPlace::Coded(TailScheme::Cdc(1)));
    assert_eq!(c.deployment.coded.frame_deadline.total_micros(), 9_000_000);
    assert_eq!(c.deployment.coded.data_grace.total_micros(), 500_000);
    assert_eq!(c.deployment.workers(), vec![1, 2, 3]);
    assert_eq!(
        Cluster::parse(EXAMPLE).unwrap().deployment.tail,
        TailPlace::Gateway
    );
    let late = text.replace("tail_grace_ms = 500", "tail_grace_ms = 9000");
    let e = err(&late);
    let line = line_of(&late, "tail_grace_ms");
    assert!(e.starts_with(&format!("line {line}: ")), "{e}");
    assert!(e.contains("below tail_deadline_ms"), "{e}");
    let zero = text.replace("tail_deadline_ms = 9000", "tail_deadline_ms = 0");
    assert!(err(&zero).contains("tail_deadline_ms must be"));
}

/// The 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn absurd_settings_are_all_reported_at_once_with_their_lines() {
    let text = EXAMPLE
        .replace("127.0.0.1:7700", "127.0.0.1:0")
        .replace(
            "id = 0\naddr = \"127.0.0.1:0\"",
            "id = 0\naddr = \"127.0.0.1:0\"\nsource = true",
        )
        .replace("127.0.0.4:7700", "127.0.0.3:7700")
        .replace("frame_ms = 60000", "frame_ms = 0")
        .replace("connect_ms = 2000", "connect_ms = 0");
    let e = Cluster::parse(&text).unwrap_err();
    let lines: Vec<(Option<usize>, &str)> = e
        .problems
        .iter()
        .map(|p| (p.line, p.message.as_str()))
        .collect();
    let has = |line: usize, needle: &str| {
        lines
            .iter()
            .any(|(l, m)| *l == Some(line) && m.contains(needle))
    };
    assert_eq!(lines.len(), 5, "{e}");
    assert!(has(line_of(&text, "frame_ms"), "frame_ms"), "{e}");
    assert!(has(line_of(&text, "connect_ms"), "connect_ms"), "{e}");
    assert!(has(line_of(&text, "127.0.0.1:0"), "port 0"), "{e}");
    let gw_source = text
        .lines()
        .enumerate()
        .skip(line_of(&text, "127.0.0.1:0"))
        .find(|(_, l)| l.trim() == "source = true")
        .unwrap()
        .0
        + 1;
    assert!(has(gw_source, "on the gateway"), "{e}");
    let second = text.rfind("127.0.0.3:7700").unwrap();
    let second_line = text[..second].matches('\n').count() + 1;
    assert!(has(second_line, "listed twice"), "{e}");
    // In file order.
    let order: Vec<usize> = lines.iter().filter_map(|(l, _)| *l).collect();
    assert!(order.windows(2).all(|w| w[0] <= w[1]), "{e}");
}

#[test]
fn other_absurd_settings_are_refused() {
    let cases: &[(&str, &str, &str)] = &[
        ("127.0.0.2:7700", "0.0.0.0:7700", "not a node's own address"),
        ("tile_ms = 10000", "tile_ms = 60000", "below frame_ms"),
        ("id = 3", "id = 17", "above 16"),
        (
            "peer_dead_ms = 5000",
            "peer_dead_ms = 3600001",
            "peer_dead_ms",
        ),
    ];
    for (from, to, needle) in cases {
        let text = EXAMPLE.replace(from, to);
        let e = err(&text);
        let line = line_of(&text, to);
        assert!(
            e.contains(&format!("line {line}: ")) && e.contains(needle),
            "{to}: {e}"
        );
    }
    // A syntax error keeps toml's own line.
    let e = err(&format!("{EXAMPLE}\n[[nodes]\n"));
    assert!(e.starts_with("line "), "{e}");
}

#[test]
fn host_names_are_resolved_and_bad_addresses_named_with_their_lines() {
    let text = EXAMPLE.replace("127.0.0.3:7700", "localhost:7701");
    let c = Cluster::parse(&text).unwrap();
    let n = c.node(2).unwrap();
    assert!(n.addr.ip().is_loopback() && n.addr.port() == 7701, "{n:?}");
    assert_eq!(c.written[2], "localhost:7701");
    let text = EXAMPLE
        .replace("127.0.0.3:7700", "no-such-host.invalid:7700")
        .replace("127.0.0.4:7700", "127.0.0.4");
    let e = Cluster::parse(&text).unwrap_err();
    let lines: Vec<Option<usize>> = e.problems.iter().map(|p| p.line).collect();
    assert_eq!(
        lines,
        [
            Some(line_of(&text, "no-such-host.invalid")),
            Some(line_of(&text, "\"127.0.0.4\""))
        ],
        "{e}"
    );
    assert!(e.problems[0].message.contains("cannot resolve"), "{e}");
    assert!(e.problems[1].message.contains("HOST:PORT"), "{e}");
}

#[test]
fn a_coded_tail_goes_on_datagrams_only_when_asked_and_keyed() {
    let coded = EXAMPLE.replace("tail = \"gateway\"", "tail = \"cdc:1\"");
    let c = Cluster::parse(&coded).unwrap();
    assert_eq!(c.deployment.tail_transport, TailTransport::Tcp);
    let dgram = coded.replace(
        "tail = \"cdc:1\"",
        "tail = \"cdc:1\"\ntail_transport = \"datagram\"",
    );
    let c = Cluster::parse(&dgram).unwrap();
    assert_eq!(c.deployment.tail_transport, TailTransport::Datagram);
    assert_eq!(c.deployment.coded.copies, 1);
    let thrice = Cluster::parse(&format!("tail_copies = 3\n{dgram}")).unwrap();
    assert_eq!(thrice.deployment.coded.copies, 3);
    assert!(err(&format!("tail_copies = 0\n{dgram}")).contains("tail_copies = 0: 1..=8"));
    // Both ends must agree: the fingerprint tells them apart.
    let tcp = Cluster::parse(&coded).unwrap();
    assert_ne!(c.fingerprint().unwrap(), tcp.fingerprint().unwrap());
    let line = line_of(&dgram, "tail_transport");
    let udp = dgram.replace("\"datagram\"", "\"udp\"");
    let e = err(&udp);
    assert!(e.starts_with(&format!("line {line}: ")), "{e}");
    assert!(e.contains("unknown tail_transport 'udp'"), "{e}");
    let open = dgram.replace("key = ", "insecure = true\n# key = ");
    let e = err(&open);
    assert!(e.contains("authenticates with the cluster key"), "{e}");
}

#[test]
fn a_written_file_reads_back_as_written() {
    let key = [7u8; 32];
    let nodes = vec![
        FileNode::new(0, "127.0.0.1:7700", false),
        FileNode::new(1, "127.0.0.2:7700", true),
        FileNode::new(2, "127.0.0.3:7700", false),
    ];
    let mut f = ClusterFile::new(Policy::Wst, (2, 3), &key, nodes);
    f.kernel = Some(written(KernelChoice::Winograd.name().into()));
    f.tail = Some(written("cdc:1".into()));
    f.reuse = Some(written("link".into()));
    f.results_ahead = Some(written(0));
    f.timeouts = Some(FileTimeouts {
        frame_ms: written(30_000),
        ..FileTimeouts::default()
    });
    let text = f.to_toml().unwrap();
    let c = Cluster::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let spec = &c.deployment.spec;
    assert_eq!(
        (spec.policy, spec.grid, spec.key),
        (Policy::Wst, (2, 3), Some(key))
    );
    assert_eq!(
        (spec.layers, c.deployment.model.seed),
        (DEFAULT_LAYERS, DEFAULT_SEED)
    );
    assert_eq!(spec.kernel, KernelChoice::Winograd);
    assert_eq!(c.deployment.tail, TailPlace::Coded(TailScheme::Cdc(1)));
    assert_eq!((spec.local_reuse, spec.link_reuse), (true, true));
    assert_eq!(spec.pacing.results_ahead, 0);
    let [tile, _, steal_backoff, peer_dead, connect] = DEFAULT_TIMEOUTS_MS;
    let ms = |d: Duration| d.as_millis() as u64;
    let t = spec.timeouts;
    assert_eq!(
        [t.tile, t.frame, t.steal_backoff, t.peer_dead, t.connect].map(ms),
        [tile, 30_000, steal_backoff, peer_dead, connect]
    );
    assert_eq!(
        c.written,
        ["127.0.0.1:7700", "127.0.0.2:7700", "127.0.0.3:7700"]
    );
    assert!(c.node(1).unwrap().source && !c.node(2).unwrap().source);
    // Absent settings stay out of the text (their defaults are read back above).
    assert!(
        !text.contains("insecure") && !text.contains("tail_copies"),
        "{text}"
    );
}

#[test]
fn a_file_without_timeouts_runs_the_defaults() {
    let text = EXAMPLE
        .lines()
        .filter(|l| !l.contains("_ms =") && !l.starts_with("[timeouts]"))
        .map(|l| format!("{l}\n"))
        .collect::<String>();
    let t = Cluster::parse(&text).unwrap().deployment.spec.timeouts;
    assert_eq!(
        [t.tile, t.frame, t.steal_backoff, t.peer_dead, t.connect],
        DEFAULT_TIMEOUTS_MS.map(Duration::from_millis)
    );
}
