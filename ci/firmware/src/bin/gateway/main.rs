//! The gateway of a Tessera cluster on a Cortex-M4 (qemu `mps2-an386`): the same driver, link
//! and runtime state machine that `tessera gateway` runs on Linux, over smoltcp on the board's
//! LAN9118 Ethernet controller. Linux `tessera edge` processes dial it; it schedules their
//! tiles (WST-S, WST, WSH), keeps the overlap strips, re-dispatches on timeouts and collects
//! each frame's fused output.
//!
//! Its settings come from the build's environment (see `build.rs`: the cluster key, the model
//! fingerprint every node's `Hello` carries, the port, edges, grid, policy and frames to run).
//! For every finished frame it prints one line over semihosting with an FNV-1a digest of the
//! fused output's bits, then exits 0 after the configured number of frames (1 when a frame
//! failed or a setting is wrong).
#![no_std]
#![no_main]

extern crate alloc;

mod clock;
#[path = "../../defmt_uart.rs"]
mod defmt_uart;
mod lan9118;
mod memory;

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::net::{Ipv4Addr, SocketAddr};
use core::panic::PanicInfo;
use core::str::FromStr;

use cortex_m_rt::{entry, exception, ExceptionFrame};
use cortex_m_semihosting::{debug, hprintln};
use smoltcp::iface::SocketStorage;
use smoltcp::wire::HardwareAddress;

use tessera_backends::coded::tail::{CodedTail, Joined, TailJoin, TailScheme};
use tessera_backends::coded::{BoxedGlue, BoxedShards, CodedFinished, CodedPart, InlineShards};
use tessera_backends::driver::{Finished, Inline, Model, Node, ParamSource};
use tessera_backends::gen_weights;
use tessera_backends::link::{HandshakeConfig, LinkConfig, MAX_BACKOFF};
use tessera_backends::nal_smoltcp::{NetConfig, SmolNet, SmolStack};
use tessera_backends::pipeline::boxes;
use tessera_core::detect::{DEFAULT_NMS, DEFAULT_THRESH};
use tessera_core::ftp::{FusedStack, Grid, GridShape, Partition};
use tessera_core::kernel::Portable;
use tessera_core::model::Network;
use tessera_core::runtime::coded::CodedConfig;
use tessera_core::runtime::Config;
use tessera_core::time::Duration;
use tessera_core::wire::{Key, Limits, NodeId, Policy};

use clock::Clock;
use lan9118::Lan9118;

/// Fused layers (YOLOv2's first 16).
const FUSED: usize = 16;
/// qemu user networking: the guest's address and subnet.
const ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
const PREFIX: u8 = 24;
/// Most extra interface polls per loop while received frames wait.
const RX_DRAIN: usize = 64;

/// Exits qemu with `ok` (semihosting `SYS_EXIT`).
fn exit(ok: bool) -> ! {
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    #[allow(clippy::empty_loop)]
    loop {}
}

/// `r`'s value, or exit 1 after a line naming `what` and the error.
fn or_exit<T, E: core::fmt::Debug>(what: &str, r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| {
        hprintln!("gateway: {}: {:?}", what, e);
        exit(false)
    })
}

/// A setting from the build's environment, or exit 1 naming it.
fn setting<T: FromStr>(name: &str, text: &str) -> T {
    match text.parse() {
        Ok(v) => v,
        Err(_) => {
            hprintln!("gateway: bad setting {} = {:?}", name, text);
            exit(false)
        }
    }
}

fn fnv1a(values: &[f32]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for v in values {
        for b in v.to_bits().to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

#[entry]
fn main() -> ! {
    memory::init_heap();
    let port: u16 = setting("TESSERA_GW_PORT", env!("TESSERA_GW_PORT"));
    let edges: NodeId = setting("TESSERA_GW_EDGES", env!("TESSERA_GW_EDGES"));
    let frames: usize = setting("TESSERA_GW_FRAMES", env!("TESSERA_GW_FRAMES"));
    let shape: GridShape = setting("TESSERA_GW_GRID", env!("TESSERA_GW_GRID"));
    let policy: Policy = setting("TESSERA_GW_POLICY", env!("TESSERA_GW_POLICY"));
    let fingerprint = match u64::from_str_radix(env!("TESSERA_GW_FINGERPRINT"), 16) {
        Ok(f) => f,
        Err(_) => {
            hprintln!("gateway: TESSERA_GW_FINGERPRINT is not 16 hex digits");
            exit(false)
        }
    };
    let reuse_local = match env!("TESSERA_GW_REUSE") {
        "local" => true,
        "gateway" => false,
        other => {
            hprintln!("gateway: bad setting TESSERA_GW_REUSE = {:?}", other);
            exit(false)
        }
    };
    let tail = match env!("TESSERA_GW_TAIL") {
        "none" => None,
        t => Some(setting::<TailScheme>("TESSERA_GW_TAIL", t)),
    };
    let tail_deadline: u64 = setting(
        "TESSERA_GW_TAIL_DEADLINE_MS",
        env!("TESSERA_GW_TAIL_DEADLINE_MS"),
    );
    let tail_grace: u64 = setting("TESSERA_GW_TAIL_GRACE_MS", env!("TESSERA_GW_TAIL_GRACE_MS"));
    let seed: u64 = setting("TESSERA_GW_SEED", env!("TESSERA_GW_SEED"));
    let Ok(key) = Key::from_hex(env!("TESSERA_GW_KEY")) else {
        hprintln!("gateway: TESSERA_GW_KEY is not 64 hex digits");
        exit(false)
    };

    let net = or_exit(
        "cfg",
        tessera_core::model::cfg::parse(tessera_backends::builtin::DEFAULT_CFG),
    );
    let grid = (shape.rows, shape.cols);
    // The gateway computes only when no edge is left; it has no parameters to do so here.
    let none = ParamSource(Arc::new(|| None));
    // The layers after the fused ones, coded over the edges: this gateway holds no weights
    // of the coded ones, only their shapes and codes; it runs the pools, routes, reorg and
    // region, and the small 1x1 conv on the route (its parameters generated from the
    // cluster's seed, as the edges generate theirs).
    let workers: Vec<NodeId> = (1..=edges).collect();
    let coded = tail.map(|scheme| {
        let split = or_exit("tail scheme", scheme.layer_scheme(workers.len()));
        or_exit(
            "coded tail",
            CodedTail::for_gateway(&net, FUSED, split, &workers, |j| {
                gen_weights::layer(&net, j, seed)
            }),
        )
    });
    let (image_w, image_h) = (net.input().w as usize, net.input().h as usize);
    let model = Arc::new(or_exit(
        "model",
        Model::deferred(net, FUSED, grid, Partition::Darknet, none),
    ));
    // The region layer's decode reads the network; the node owns the model's other handle.
    let boxes_model = model.clone();
    let cfg = {
        let stack = or_exit("stack", FusedStack::new(&model.net, FUSED));
        let g = or_exit(
            "grid",
            Grid::new(grid.0, grid.1, Partition::Darknet, &stack),
        );
        let mut c = Config::new(policy, &stack, g);
        // qemu is far slower than a Pi: generous, as the loopback tests' timeouts are.
        c.tile_timeout = Duration::from_millis(60_000);
        c.frame_deadline = Duration::from_millis(600_000);
        c.steal_backoff = Duration::from_millis(20);
        // WST-S strips stay on the edges (reuse = "local", the cluster files' default) or go
        // through this gateway's strip cache (reuse = "gateway").
        c.local_reuse = reuse_local;
        c
    };

    let nic = or_exit("LAN9118", unsafe_nic());
    let mac = nic.mac();
    let mut clock = Clock::new(&nic);
    let start = clock.now(&nic);
    hprintln!(
        "gateway: {} {} grid, {} edges, port {}, MAC {}, heap {} KiB PSRAM + {} KiB SRAM, socket buffers {} KiB",
        policy,
        shape,
        edges,
        port,
        mac,
        memory::HEAP_BYTES / 1024,
        memory::SRAM_HEAP_BYTES / 1024,
        memory::SOCKET_BYTES / 1024
    );

    if usize::from(edges) != memory::EDGES {
        hprintln!(
            "gateway: {} edges, but the image was built for {}",
            edges,
            memory::EDGES
        );
        exit(false)
    }
    let storage: &'static mut [SocketStorage<'static>] =
        Box::leak(Box::new([SocketStorage::EMPTY; memory::SOCKETS]));
    let Some(buffers) = memory::socket_buffers() else {
        exit(false)
    };
    let smol = RefCell::new(SmolNet::with_hardware(
        NetConfig {
            address: ADDRESS,
            prefix_len: PREFIX,
            seed: clock.now(&nic).total_micros() ^ 0x7e55_e7a0,
            backlog: memory::BACKLOG,
            first_port: 49152,
        },
        HardwareAddress::Ethernet(mac),
        nic,
        storage,
        buffers,
        start,
    ));
    let link = LinkConfig {
        me: 0,
        port,
        // The gateway never dials (edges dial it); the addresses only name the ids it accepts.
        peers: (1..=edges)
            .map(|id| (id, SocketAddr::from(([10, 0, 2, 2], port))))
            .collect(),
        key: Some(key),
        limits: Limits::LARGE,
        first_seq: 1 + start.total_micros(),
        peer_dead: Duration::from_millis(10_000),
        retry: Duration::from_millis(50),
        max_backoff: MAX_BACKOFF,
        connect: Duration::from_millis(2000),
        backlog: 4 << 20,
        handshake: HandshakeConfig {
            model: fingerprint,
            deadline: Duration::from_millis(10_000),
            ..HandshakeConfig::DEFAULT
        },
    };
    let exec = Inline::new(Portable, model.clone());
    let mut node = or_exit(
        "node",
        Node::new(SmolStack::new(&smol), link, cfg, model, exec, start),
    );

    if let (Some(t), Some(scheme)) = (&coded, tail) {
        let config = CodedConfig {
            data_grace: Duration::from_millis(tail_grace),
            ..CodedConfig::new(Duration::from_millis(tail_deadline))
        };
        let exec: BoxedShards = Box::new(InlineShards::new(Portable));
        let glue: BoxedGlue = Box::new(t.glue(Portable));
        let part = or_exit(
            "coded part",
            CodedPart::new(0, t.model().clone(), config, exec, glue),
        );
        node.attach_coded(part, t.cols());
        hprintln!(
            "gateway: tail {} coded over {} edges ({} coded layers), no coded layer's weights held",
            scheme,
            edges,
            t.conv_layers().len()
        );
    }
    let mut join = coded.as_ref().map(|_| TailJoin::new());
    let mut done = 0usize;
    let mut failed = 0usize;
    let mut drops_seen = 0u64;
    loop {
        let now = {
            let mut s = smol.borrow_mut();
            let now = clock.now(s.device());
            s.poll(now);
            // Empty the controller's small receive FIFO before the node's slower work.
            for _ in 0..RX_DRAIN {
                if !s.device().rx_pending() {
                    break;
                }
                s.poll(now);
            }
            now
        };
        node.poll(now);
        smol.borrow_mut().poll(now);
        let mut joined: Vec<Joined> = Vec::new();
        for mut f in node.take_finished() {
            match f.output.as_mut().filter(|_| f.complete) {
                Some(out) => {
                    hprintln!(
                        "frame {}/{}: fused output {} values, fnv1a {:016x}, tiles {:?}, {:.1} s in the gateway (qemu time), heap {} KiB in use",
                        f.frame.origin,
                        f.frame.number,
                        out.len(),
                        fnv1a(out),
                        f.tiles_by,
                        f.latency.total_micros() as f64 / 1e6,
                        memory::heap_in_use() / 1024
                    );
                    // The coded stage has its own copy: free this one while the tail runs.
                    *out = Vec::new();
                }
                None => hprintln!("frame {}/{}: FAILED", f.frame.origin, f.frame.number),
            }
            match &mut join {
                Some(j) => joined.extend(j.frame(f)),
                None => joined.push(Joined {
                    frame: f,
                    tail: None,
                }),
            }
        }
        if let Some(j) = &mut join {
            for t in node.take_tails() {
                joined.extend(j.tail(t));
            }
        }
        for Joined { frame: f, tail: t } in joined {
            let ok = f.complete
                && match (&coded, &t) {
                    (None, _) => true,
                    (Some(_), Some(t)) if t.quality.is_complete() => {
                        print_boxes(&boxes_model.net, &f, t, (image_w, image_h))
                    }
                    (Some(_), _) => {
                        hprintln!(
                            "frame {}/{}: coded tail lost",
                            f.frame.origin,
                            f.frame.number
                        );
                        false
                    }
                };
            if ok {
                done += 1;
            } else {
                failed += 1;
            }
            node.frame_done(now, f.frame, f.complete);
        }
        let stats = node.stats();
        let drops = stats.link.dropped.total();
        if drops != drops_seen {
            // The log line of a refused connection (a forged or malformed first frame, an
            // unknown id, ...): the counters say which.
            hprintln!(
                "gateway: connection dropped ({} in all): {:?}",
                drops,
                stats.link.dropped
            );
            drops_seen = drops;
        }
        if done + failed >= frames {
            let c = smol.borrow().device().counters();
            hprintln!(
                "gateway: summary frames={} failed={} redispatched={} dropped={} forged={} heap_peak_kib={} nic_rx={} nic_tx={} nic_rx_dropped={}",
                done,
                failed,
                stats.runtime.tiles_redispatched,
                drops,
                stats.link.forged + stats.link.dropped.forged,
                memory::heap_peak() / 1024,
                c.received,
                c.sent,
                c.rx_dropped
            );
            exit(failed == 0)
        }
    }
}

/// Prints a frame's boxes (network-input coordinates, as `tessera gateway --out` writes them);
/// false when they cannot be decoded.
fn print_boxes(net: &Network, f: &Finished, t: &CodedFinished, (w, h): (usize, usize)) -> bool {
    match boxes(net, &t.output, w, h, DEFAULT_THRESH, DEFAULT_NMS) {
        Ok(dets) => {
            hprintln!(
                "frame {}/{}: coded tail in {:.1} s (qemu time), {} boxes",
                f.frame.origin,
                f.frame.number,
                t.latency.total_micros() as f64 / 1e6,
                dets.len()
            );
            for d in &dets {
                hprintln!(
                    "box class {} prob {} x {} y {} w {} h {}",
                    d.class,
                    d.prob,
                    d.x,
                    d.y,
                    d.w,
                    d.h
                );
            }
            true
        }
        Err(e) => {
            hprintln!(
                "frame {}/{}: boxes: {:?}",
                f.frame.origin,
                f.frame.number,
                e
            );
            false
        }
    }
}

fn unsafe_nic() -> Result<Lan9118, lan9118::InitError> {
    // SAFETY: the MPS2 AN386 board has its LAN9118 at `MPS2_BASE`, and this is the only
    // driver created for it.
    unsafe { Lan9118::new(lan9118::MPS2_BASE) }
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    hprintln!(
        "PANIC: {} (heap {} KiB in use, peak {} KiB)",
        info,
        memory::heap_in_use() / 1024,
        memory::heap_peak() / 1024
    );
    exit(false)
}

#[exception]
unsafe fn HardFault(ef: &ExceptionFrame) -> ! {
    hprintln!("HARD FAULT: {:?}", ef);
    exit(false)
}
