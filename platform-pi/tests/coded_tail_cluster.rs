//! A coded tail from the cluster file, as a user deploys it: a gateway and three edges as
//! separate `tessera gateway` / `tessera edge` processes on 127.0.0.x reading one file with
//! `tail = "cdc:1"`. Every frame leaves the coded stage complete, and the boxes the gateway
//! writes equal, byte for byte, those of the same cluster run in one process
//! (`local::run_local` with a `TailSpec`).
//!
//! The network is YOLOv2 at 160×160 with its 1024-filter convolutions cut to 256 (generated
//! weights; every process and the in-process run parse the same cfg): the coded tail's shape
//! (routes, reorg, region) is YOLOv2's, its arithmetic a fraction. The data grace is longer
//! than any shard takes, so every layer is its data shards' exact concatenation in both runs
//! (a float parity decode would be close, not bit-equal). Waits are bounded only so a broken
//! cluster fails instead of hanging; every child is killed by PID when its handle drops.
//!
//! The same cluster with `tail_transport = "datagram"` runs the tail's shards and results as
//! authenticated UDP datagrams on each node's port, with the parity edge losing 30 % of the
//! datagrams it sends (`TESSERA_DEV_DGRAM_LOSS`): while only parity is lost the boxes are
//! byte-equal again. A lone edge shows what it does with datagrams that are junk, forged,
//! replayed or from the wrong address: dropped and counted, never a crash.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera_backends::builtin::DEFAULT_CFG;
use tessera_backends::cluster::ClusterSpec;
use tessera_backends::cluster_file::{written, ClusterFile, FileNode, FileTimeouts};
use tessera_backends::coded::tail::{CodedTail, TailScheme};
use tessera_backends::detections_json::to_json;
use tessera_backends::dgram::DEV_LOSS_VAR;
use tessera_backends::gen_weights;
use tessera_backends::local::{fused_model, run_local, Faults, TailSpec};
use tessera_backends::pipeline::boxes;
use tessera_core::detect::{DEFAULT_NMS, DEFAULT_THRESH};
use tessera_core::model::weights::Weights;
use tessera_core::model::{cfg, Network};
use tessera_core::runtime::coded::CodedConfig;
use tessera_core::time::Duration as CoreDuration;
use tessera_core::wire::{FrameKey, Policy};
use tessera_pi::image::{Image, ImageFiles};
use tessera_testkit::loopback_port;

const BIN: &str = env!("CARGO_BIN_EXE_tessera");
const KEY: [u8; 32] = [0x3c; 32];
const SEED: u64 = 7;
const LAYERS: usize = 16;
const EDGES: u16 = 3;
/// Longer than any shard takes on a loaded machine: layers wait for their data shards.
const GRACE_MS: u64 = 20_000;
const DEADLINE_MS: u64 = 120_000;
/// Longest wait for the whole run (a loaded CI machine is slow, not broken).
const WAIT: Duration = Duration::from_secs(300);

fn images() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/images");
    vec![dir.join("0.jpg"), dir.join("1.jpg")]
}

fn small_cfg() -> String {
    DEFAULT_CFG
        .replace("width=608", "width=160")
        .replace("height=608", "height=160")
        .replace("filters=1024", "filters=256")
}

/// A child killed (by PID) and reaped when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `tessera ARGS`, its output in `out`.{out,err}; `loss`: its
/// `TESSERA_DEV_DGRAM_LOSS`.
fn spawn(args: &[&str], out: &Path, loss: Option<&str>) -> Proc {
    let log = |ext: &str| std::fs::File::create(out.with_extension(ext)).unwrap();
    let mut cmd = Command::new(BIN);
    match loss {
        Some(l) => cmd.env(DEV_LOSS_VAR, l),
        None => cmd.env_remove(DEV_LOSS_VAR),
    };
    Proc(
        cmd.args(args)
            .stdout(Stdio::from(log("out")))
            .stderr(Stdio::from(log("err")))
            .spawn()
            .expect("spawn tessera"),
    )
}

/// The directory of one run, removed at the end.
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes the cluster file (and its cfg) into `dir` with the nodes on `port`, the coded tail
/// on datagrams if `datagram`; returns its path.
fn cluster_file(dir: &Path, port: u16, grace_ms: u64, datagram: bool) -> String {
    let cfg_path = dir.join("yolo160.cfg");
    std::fs::write(&cfg_path, small_cfg()).unwrap();
    let nodes = (0..=EDGES)
        .map(|id| FileNode::new(id, format!("127.0.0.{}:{port}", id + 1), id == 1))
        .collect();
    let mut f = ClusterFile::new(Policy::WstS, (3, 3), &KEY, nodes);
    f.layers = Some(written(LAYERS));
    f.seed = SEED;
    f.kernel = Some(written("portable".into()));
    f.cfg = Some(cfg_path);
    f.tail = Some(written("cdc:1".into()));
    f.tail_deadline_ms = Some(written(DEADLINE_MS));
    f.tail_grace_ms = Some(written(grace_ms));
    f.tail_transport = datagram.then(|| written("datagram".into()));
    f.timeouts = Some(FileTimeouts {
        tile_ms: written(20_000),
        frame_ms: written(240_000),
        steal_backoff_ms: written(20),
        peer_dead_ms: written(3000),
        connect_ms: written(1000),
    });
    let file = dir.join("cluster.toml");
    std::fs::write(&file, f.to_toml().unwrap()).unwrap();
    file.display().to_string()
}

/// The boxes JSON of each frame the processes ran, in frame order, and the gateway's stdout.
/// `datagram`: the coded tail on datagrams; `loss`: each edge's `TESSERA_DEV_DGRAM_LOSS`, if any.
fn run_processes(
    dir: &Path,
    grace_ms: u64,
    datagram: bool,
    loss: &[(u16, &str)],
) -> (Vec<String>, String) {
    let file = cluster_file(dir, loopback_port(), grace_ms, datagram);
    let loss_of = |id: u16| loss.iter().find(|(e, _)| *e == id).map(|&(_, l)| l);
    let out = dir.join("out");
    let (out_s, frames) = (out.display().to_string(), images().len().to_string());
    let mut gateway = spawn(
        &[
            "gateway",
            "--cluster",
            &file,
            "--frames",
            &frames,
            "--out",
            &out_s,
        ],
        &dir.join("gateway"),
        None,
    );
    let mut edges: Vec<Proc> = (2..=EDGES)
        .map(|id| {
            let id = id.to_string();
            spawn(
                &["edge", "--cluster", &file, "--id", &id],
                &dir.join(format!("edge{id}")),
                loss_of(id.parse().unwrap()),
            )
        })
        .collect();
    let inputs: Vec<String> = images().iter().map(|p| p.display().to_string()).collect();
    let mut args = vec!["edge", "--cluster", &file, "--id", "1"];
    for i in &inputs {
        args.extend(["--input", i]);
    }
    edges.push(spawn(&args, &dir.join("edge1"), loss_of(1)));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = gateway.0.try_wait().unwrap() {
            break s;
        }
        let log = std::fs::read_to_string(dir.join("gateway.err")).unwrap_or_default();
        assert!(
            start.elapsed() < WAIT,
            "the gateway did not finish its frames; stderr: {log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    drop(edges);
    let said = std::fs::read_to_string(dir.join("gateway.out")).unwrap();
    assert!(status.success(), "gateway: {status}\n{said}");
    // Each frame's line says its tail ran coded; none failed.
    let frames: Vec<&str> = said.lines().filter(|l| l.starts_with("frame ")).collect();
    assert_eq!(frames.len(), images().len(), "{said}");
    assert!(frames.iter().all(|l| l.contains(", coded tail ")), "{said}");
    // frame-1-N.json, N from the source's start time, in feeding order.
    let mut files: Vec<(u32, PathBuf)> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_string();
            let n = name.strip_prefix("frame-1-")?.strip_suffix(".json")?;
            Some((n.parse().ok()?, p))
        })
        .collect();
    files.sort();
    let boxes = files
        .iter()
        .map(|(_, p)| std::fs::read_to_string(p).unwrap())
        .collect();
    (boxes, said)
}

/// The cluster in this process (TCP link): each frame's boxes JSON as the gateway writes it.
fn in_process() -> Vec<String> {
    let net = cfg::parse(&small_cfg()).unwrap();
    let params = gen_weights::params(&net, net.layers().len(), SEED);
    let inputs: Vec<Vec<f32>> = images()
        .iter()
        .map(|p| Image::load_letterboxed(p, 160, 160).unwrap().data)
        .collect();
    run_in_process(&net, &params, &inputs)
}

/// The same cluster in this process: each frame's boxes JSON as the gateway writes it.
fn run_in_process(net: &Network, params: &[f32], inputs: &[Vec<f32>]) -> Vec<String> {
    let weights = Weights::new(net, net.layers().len(), params).unwrap();
    let split = TailScheme::Cdc(1).layer_scheme(EDGES as usize).unwrap();
    let tail = CodedTail::new(net, &weights, LAYERS, split, &[1, 2, 3]).unwrap();
    let micros = |ms: u64| CoreDuration::from_micros(ms * 1000);
    let spec = TailSpec {
        tail: Arc::new(tail),
        config: CodedConfig {
            data_grace: micros(GRACE_MS),
            ..CodedConfig::new(micros(DEADLINE_MS))
        },
    };
    let port = loopback_port();
    let cluster = ClusterSpec::loopback(Policy::WstS, (3, 3), EDGES, 1, port, Some(KEY), LAYERS);
    let model = fused_model(net, params, LAYERS, cluster.grid).unwrap();
    let run = run_local(
        &cluster,
        model,
        inputs,
        &Faults::default(),
        WAIT,
        Some(&spec),
    )
    .unwrap();
    let (w, h) = (net.input().w as usize, net.input().h as usize);
    (0..inputs.len())
        .map(|n| {
            let done = &run.tails[&FrameKey::new(1, n as u32)];
            assert!(done.quality.is_complete(), "frame {n}: {:?}", done.quality);
            let dets = boxes(net, &done.output, w, h, DEFAULT_THRESH, DEFAULT_NMS).unwrap();
            to_json(&dets, w, h).unwrap()
        })
        .collect()
}

#[test]
fn gateway_and_edges_run_the_files_coded_tail_as_the_one_process_run_does() {
    let dir = std::env::temp_dir().join(format!("tessera-coded-cluster-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dir = Dir(dir);
    let (separate, _) = run_processes(&dir.0, GRACE_MS, false, &[]);
    let together = in_process();
    assert_eq!(separate.len(), together.len());
    for (n, (a, b)) in separate.iter().zip(&together).enumerate() {
        assert_eq!(a, b, "frame {n}: separate processes vs one process");
    }
    // Boxes were found (generated weights find plenty), and differ between the frames: the
    // comparison is not of two empty reports.
    for (n, json) in together.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        let found = v["detections"].as_array().map_or(0, Vec::len);
        assert!(found > 0, "frame {n}: no boxes: {json}");
    }
    assert_ne!(together[0], together[1]);
}

#[test]
fn a_tail_the_cluster_cannot_run_is_refused_at_start_with_its_line() {
    let dir = std::env::temp_dir().join(format!("tessera-coded-refused-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dir = Dir(dir);
    let example = include_str!("../../cluster.example.toml");
    let line = example
        .lines()
        .position(|l| l.starts_with("tail = "))
        .unwrap()
        + 1;
    let run = |text: &str, args: &[&str]| {
        let file = dir.0.join("cluster.toml");
        std::fs::write(&file, text).unwrap();
        let file = file.display().to_string();
        let out = Command::new(BIN)
            .args(args)
            .args(["--cluster", &file])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} started");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let cases = [
        (
            "cdc:3",
            format!("line {line}: coded tail cdc:3 needs more than 3 edges"),
        ),
        (
            "raid",
            format!("line {line}: unknown tail 'raid': use gateway"),
        ),
    ];
    for (tail, says) in cases {
        let text = example.replace("tail = \"gateway\"", &format!("tail = \"{tail}\""));
        for args in [&["gateway"][..], &["edge", "--id", "2"][..]] {
            let e = run(&text, args);
            assert!(e.contains(&says), "{tail} {args:?}: {e}");
        }
    }
    // A gateway told to stop at the fused output cannot hold a coded tail's results.
    let coded = example.replace("tail = \"gateway\"", "tail = \"cdc:1\"");
    let e = run(&coded, &["gateway", "--tail", "none"]);
    assert!(e.contains("--tail none, but") && e.contains("cdc:1"), "{e}");
}

/// Counter `name` of the `datagrams ...` part of a node's counters line (`name N`).
fn counter(line: &str, name: &str) -> u64 {
    let (_, d) = line
        .split_once(", datagrams ")
        .unwrap_or_else(|| panic!("no datagram counters in: {line}"));
    let at = d
        .find(&format!("{name} "))
        .unwrap_or_else(|| panic!("no {name} in: {line}"));
    d[at + name.len() + 1..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{name} is no count in: {line}"))
}

/// The last counters line of `who` in `said` that has datagram counters.
fn counters_line<'s>(said: &'s str, who: &str) -> &'s str {
    said.lines()
        .rev()
        .find(|l| l.starts_with(who) && l.contains("datagrams "))
        .unwrap_or_else(|| panic!("no {who} line with datagram counters: {said}"))
}

#[test]
fn on_datagrams_with_the_parity_edge_losing_a_third_the_boxes_are_the_same() {
    let dir = std::env::temp_dir().join(format!("tessera-coded-dgram-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dir = Dir(dir);
    // cdc:1 over three edges: data shards on edges 1 and 2, parity on edge 3, whose sent
    // datagrams are lost at 30 % (seeded). A lost parity result costs nothing: the data shards
    // arrive within the grace and each layer is their exact concatenation.
    let (separate, said) = run_processes(&dir.0, GRACE_MS, true, &[(3, "0.3:11")]);
    let warned = std::fs::read_to_string(dir.0.join("edge3.err")).unwrap();
    assert!(
        warned.contains(&format!("WARNING: {DEV_LOSS_VAR}")),
        "{warned}"
    );
    let together = in_process();
    assert_eq!(separate.len(), together.len());
    for (n, (a, b)) in separate.iter().zip(&together).enumerate() {
        assert_eq!(a, b, "frame {n}: datagram processes vs one process on TCP");
    }
    // The shards went as datagrams, and the parity edge's losses show: every task sent would
    // have been answered, fewer answers were delivered.
    let line = counters_line(&said, "gateway:");
    let (sent, delivered) = (counter(line, "sent"), counter(line, "delivered"));
    assert!(sent >= 2 * 3, "{line}");
    assert!(delivered < sent, "{line}");
    assert_eq!(counter(line, "forged"), 0, "{line}");
}

#[test]
fn an_edge_drops_and_counts_junk_forged_replayed_and_misaddressed_datagrams() {
    use tessera_core::wire::datagram::{DatagramSender, DEFAULT_DATAGRAM_LEN};
    use tessera_core::wire::Key;

    let dir = std::env::temp_dir().join(format!("tessera-dgram-junk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dir = Dir(dir);
    let port = loopback_port();
    let file = cluster_file(&dir.0, port, GRACE_MS, true);
    // The test stands at the gateway's UDP address (no gateway runs): edge 2 takes datagrams
    // from there as the gateway's.
    let sock = std::net::UdpSocket::bind(("127.0.0.1", port)).unwrap();
    let out = dir.0.join("edge2");
    let mut edge = spawn(
        &["edge", "--cluster", &file, "--id", "2", "--seconds", "8"],
        &out,
        None,
    );
    let start = Instant::now();
    while !std::fs::read_to_string(out.with_extension("out"))
        .unwrap_or_default()
        .contains("edge 2 up")
    {
        assert!(start.elapsed() < WAIT, "edge 2 did not start");
        assert!(edge.0.try_wait().unwrap().is_none(), "edge 2 exited early");
        std::thread::sleep(Duration::from_millis(50));
    }
    let seal = |tx: &mut DatagramSender, body: &[u8]| {
        // Kind 0xEE is no message kind: authentic, but not a message.
        let lifetime = CoreDuration::from_millis(500);
        let mut out = tx.start(0xEE, lifetime, body.len()).unwrap();
        let mut buf = vec![0u8; DEFAULT_DATAGRAM_LEN];
        let n = tx.next_datagram(&mut out, body, &mut buf).unwrap().unwrap();
        buf.truncate(n);
        buf
    };
    let mut as_gateway = DatagramSender::new(0, Key::new(KEY), 1, DEFAULT_DATAGRAM_LEN).unwrap();
    let authentic = seal(&mut as_gateway, b"not a message");
    let mut forged = seal(&mut as_gateway, b"not a message either");
    *forged.last_mut().unwrap() ^= 1;
    let mut as_edge1 = DatagramSender::new(1, Key::new(KEY), 1, DEFAULT_DATAGRAM_LEN).unwrap();
    let misaddressed = seal(&mut as_edge1, b"edge 1, says the header");
    let to = format!("127.0.0.3:{port}");
    for d in [&b"junk"[..], &forged, &authentic, &authentic, &misaddressed] {
        sock.send_to(d, &to).unwrap();
    }
    let status = loop {
        if let Some(s) = edge.0.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < WAIT, "edge 2 did not stop");
        std::thread::sleep(Duration::from_millis(100));
    };
    let said = std::fs::read_to_string(out.with_extension("out")).unwrap();
    assert!(status.success(), "edge 2: {status}\n{said}");
    let line = counters_line(&said, "edge 2:");
    for (name, n) in [
        ("malformed", 1),
        ("forged", 1),
        ("replayed", 1),
        ("wrong_source", 1),
        ("bad_message", 1),
        ("accepted", 1),
    ] {
        assert_eq!(counter(line, name), n, "{name}: {line}");
    }
    // The operator hears of them too, by reason.
    let log = std::fs::read_to_string(out.with_extension("err")).unwrap();
    for reason in ["malformed", "forged", "replayed", "wrong_source"] {
        assert!(
            log.contains(&format!("edge 2: dropped 1 datagram(s): {reason}")),
            "{reason}: {log}"
        );
    }
}

/// True when two JSON values have the same shape and strings, and numbers within
/// `10⁻³·max(1, |v|)` (as `detections_match`: a parity decode moves boxes by about `10⁻⁵`).
fn json_close(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value as V;
    match (a, b) {
        (V::Number(x), V::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            (x - y).abs() <= 1e-3 * x.abs().max(y.abs()).max(1.0)
        }
        (V::Array(x), V::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_close(x, y))
        }
        (V::Object(x), V::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_close(v, w)))
        }
        _ => a == b,
    }
}

#[test]
fn on_datagrams_with_a_data_edge_losing_its_results_parity_recovers_every_frame() {
    let dir = std::env::temp_dir().join(format!("tessera-coded-dgram-data-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dir = Dir(dir);
    // Edge 2 holds data shard 1 and loses 60 % of the datagrams it sends: most of its results
    // never arrive, and after a short grace each such layer is decoded from edge 1's data
    // shard and edge 3's parity (one shard lost of three: r = 1 covers it).
    let (separate, said) = run_processes(&dir.0, 500, true, &[(2, "0.6:5")]);
    assert!(!said.contains("FAILED"), "{said}");
    let together = in_process();
    assert_eq!(separate.len(), together.len());
    for (n, (a, b)) in separate.iter().zip(&together).enumerate() {
        let (a, b): (serde_json::Value, serde_json::Value) = (
            serde_json::from_str(a).unwrap(),
            serde_json::from_str(b).unwrap(),
        );
        assert!(json_close(&a, &b), "frame {n}: {a}\nvs {b}");
    }
    // Results were lost (fewer delivered than tasks sent), yet every frame decoded.
    let line = counters_line(&said, "gateway:");
    assert!(counter(line, "delivered") < counter(line, "sent"), "{line}");
}
