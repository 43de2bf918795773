//! Misconfigured or hostile peers against a real `tessera gateway` process (127.0.96.x): an edge
//! with the wrong cluster key is told so and exits non-zero saying why, and the gateway logs the
//! refusals; a second process claiming an id a live edge holds (from another address) is refused
//! and logged while the first keeps it.

mod common;

use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;

use common::Proc;
use tessera_testkit::free_port;

const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const OTHER_KEY: &str = "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// A cluster file in a temporary directory (removed on drop).
struct ClusterFile(PathBuf);

impl ClusterFile {
    /// Gateway 0 and edges 1-2 on 127.0.96.`base`+id; `edge1` overrides edge 1's address.
    fn new(name: &str, key: &str, ports: [u16; 3], edge1: Option<&str>) -> ClusterFile {
        let dir = std::env::temp_dir().join(format!(
            "tessera-refused-peers-{name}-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let e1 = edge1.map_or(format!("127.0.96.2:{}", ports[1]), str::to_string);
        let text = format!(
            "policy = \"wst-s\"\ngrid = \"3x3\"\nkey = \"{key}\"\n\
             [[nodes]]\nid = 0\naddr = \"127.0.96.1:{}\"\n\
             [[nodes]]\nid = 1\naddr = \"{e1}\"\n\
             [[nodes]]\nid = 2\naddr = \"127.0.96.3:{}\"\n",
            ports[0], ports[2]
        );
        let path = dir.join("cluster.toml");
        std::fs::write(&path, text).unwrap();
        ClusterFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for ClusterFile {
    fn drop(&mut self) {
        if let Some(d) = self.0.parent() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn free_ports() -> [u16; 3] {
    [1, 2, 3].map(|host| free_port(Ipv4Addr::new(127, 0, 96, host)))
}

#[test]
fn an_edge_with_the_wrong_key_says_so_and_exits_non_zero() {
    let ports = free_ports();
    let good = ClusterFile::new("good-key", KEY, ports, None);
    let bad = ClusterFile::new("bad-key", OTHER_KEY, ports, None);
    let mut gw = Proc::tessera(&["gateway", "--cluster", good.path(), "--tail", "none"]);
    let mut edge = Proc::tessera(&["edge", "--cluster", bad.path(), "--id", "1"]);
    let code = edge.wait_exit();
    let err = edge.output();
    assert_eq!(code, Some(1), "edge stderr: {err}");
    assert!(err.contains("refused our Hello"), "edge stderr: {err}");
    gw.wait_line("bad tag (wrong cluster key?)");
}

#[test]
fn an_id_held_by_a_live_edge_is_refused_from_another_address_and_logged() {
    let ports = free_ports();
    let cluster = ClusterFile::new("holder", KEY, ports, None);
    // The impostor's file puts id 1 on an address of its own (127.0.96.4).
    let impostor_port = TcpListener::bind((Ipv4Addr::new(127, 0, 96, 4), 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.96.4:{impostor_port}");
    let other = ClusterFile::new("impostor", KEY, ports, Some(&addr));
    let mut gw = Proc::tessera(&[
        "gateway",
        "--cluster",
        cluster.path(),
        "--tail",
        "none",
        "--stats-every",
        "1",
    ]);
    let _holder = Proc::tessera(&["edge", "--cluster", cluster.path(), "--id", "1"]);
    // Edge 1 is the gateway's only peer: a frame received means its Hello was accepted.
    gw.wait_for("edge 1 authenticated", |l| {
        l.contains("LinkStats") && !l.contains("frames_received: 0,")
    });
    let mut impostor = Proc::tessera(&["edge", "--cluster", other.path(), "--id", "1"]);
    gw.wait_line("an id a live connection from another address holds");
    // The impostor learns why it was refused and gives up; the holder was never replaced.
    let code = impostor.wait_exit();
    let err = impostor.output();
    assert_eq!(code, Some(1), "impostor output: {err}");
    assert!(
        err.contains("held by a live connection"),
        "impostor output: {err}"
    );
    let gw_out = gw.output();
    assert!(
        gw_out.contains("duplicate_id: "),
        "gateway output: {gw_out}"
    );
    assert!(gw_out.contains("replaced: 0,"), "gateway output: {gw_out}");
}
