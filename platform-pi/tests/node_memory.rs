//! Peak resident memory of real `tessera gateway` / `tessera edge` processes (YOLOv2-608,
//! wst-s, generated weights), at 3x3 and 5x5, read from `/proc/PID/status` while they run.
//!
//! Bounds, with 25 % headroom: the gateway without the tail within its 24 MiB target; every
//! non-source edge within its memory plan (fused parameters + two worst-tile ping-pong buffers)
//! plus 16 MiB for code, stacks, allocator arenas and the conv kernel's scratch; the source edge
//! within that plus its queued frames and their copies. A node that loaded the whole model
//! (204 MB of parameters), kept per-job buffers or kept per-frame data would exceed them. The edge targets
//! (32 / 24 MiB) are printed beside the figures, not asserted: see `tessera bench cluster`.

use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::time::Duration;

use tessera_pi::config::NodeKernel;
use tessera_pi::node_memory::{measure, plan_bytes, table, Role, RssSetup, FRAME_BYTES};
use tessera_pi::nodes::SOURCE_QUEUE;

const MIB: u64 = 1024 * 1024;

/// Free ports on 127.0.`net`.1-4 (each address its own, so parallel binaries cannot collide
/// on an address they do not use; this test alone uses 127.0.70-71.x).
fn ports(net: u8) -> [u16; 4] {
    let mut p = [0u16; 4];
    for (i, port) in p.iter_mut().enumerate() {
        let l = TcpListener::bind((Ipv4Addr::new(127, 0, net, i as u8 + 1), 0)).unwrap();
        *port = l.local_addr().unwrap().port();
    }
    p
}

#[test]
fn node_processes_keep_only_what_they_run() {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_tessera"));
    let mut runs = Vec::new();
    for (net, grid) in [(70u8, (3, 3)), (71, (5, 5))] {
        runs.push(
            measure(&RssSetup {
                exe: exe.clone(),
                grid,
                tail: false,
                // Enough frames that a per-frame leak shows: helpers used to keep every frame's
                // strips (+0.7 MiB a frame at 3x3), which 40 frames take past the bound.
                frames: 40,
                max_frames: 60,
                kernel: NodeKernel::auto(),
                net,
                ports: ports(net),
                timeout: Duration::from_secs(300),
            })
            .unwrap(),
        );
    }
    println!("{}", table(&runs));
    for r in &runs {
        let plan = plan_bytes(r.grid).unwrap();
        let edge = (plan + 16 * MIB) * 5 / 4;
        for n in &r.nodes {
            let bound = match n.role {
                Role::Gateway => n.target_bytes.unwrap() * 5 / 4,
                Role::Edge => edge,
                // Queued frames, each once more in flight (submit, letterbox).
                Role::SourceEdge => edge + 2 * SOURCE_QUEUE as u64 * FRAME_BYTES * 5 / 4,
                Role::GatewayWithTail => unreachable!("no tail here"),
            };
            assert!(
                n.peak_bytes <= bound,
                "{}x{} node {} ({}): VmHWM {:.1} MiB > {:.1} MiB",
                r.grid.0,
                r.grid.1,
                n.id,
                n.role.name(),
                n.peak_bytes as f64 / MIB as f64,
                bound as f64 / MIB as f64
            );
            if n.id != 0 {
                assert!(n.tiles > 0, "edge {} computed no tile: not measured", n.id);
            }
        }
    }
}
