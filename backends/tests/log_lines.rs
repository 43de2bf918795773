//! The link's log lines reach the `log` facade (through `tessera_log` with feature `log`) at
//! the documented levels: dials at debug, peers up at info, refused strangers and peers down
//! at warn, each naming the node, the peer and the address.
#![cfg(feature = "std")]

mod common;

use common::{link, loopback, port};
use std::io::Write;
use std::net::{IpAddr, TcpStream};
use std::sync::Mutex;
use std::time::Instant as StdInstant;

use log::{Level, LevelFilter, Log, Metadata, Record};
use tessera_backends::link::Link;
use tessera_backends::nal_std::StdStack;
use tessera_core::time::{Duration, Instant};
use tessera_core::wire::Key;

/// Keeps every record of this test binary (one test: the logger is process-wide).
struct Capture(Mutex<Vec<(Level, String)>>);

impl Log for Capture {
    fn enabled(&self, _: &Metadata) -> bool {
        true
    }
    fn log(&self, r: &Record) {
        self.0
            .lock()
            .unwrap()
            .push((r.level(), r.args().to_string()));
    }
    fn flush(&self) {}
}

static LINES: Capture = Capture(Mutex::new(Vec::new()));

/// The first captured line containing `needle` (its level and text), if any.
fn line(needle: &str) -> Option<(Level, String)> {
    let lines = LINES.0.lock().unwrap();
    lines.iter().find(|(_, l)| l.contains(needle)).cloned()
}

fn all() -> String {
    let lines = LINES.0.lock().unwrap();
    lines
        .iter()
        .map(|(lvl, l)| format!("{lvl} {l}\n"))
        .collect()
}

/// Polls `links` until `needle` has been logged (30 s liveness bound).
fn poll_until(links: &mut [&mut Link<StdStack>], start: StdInstant, needle: &str) -> Level {
    loop {
        if let Some((level, _)) = line(needle) {
            return level;
        }
        assert!(
            start.elapsed().as_secs() < 30,
            "no line with {needle:?}:\n{}",
            all()
        );
        let now = Instant::from_micros(start.elapsed().as_micros() as u64);
        for l in links.iter_mut() {
            l.poll(now, |_, _| {});
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

#[test]
fn connection_events_are_logged_at_their_levels() {
    log::set_logger(&LINES).unwrap();
    log::set_max_level(LevelFilter::Trace);
    let key = Key::new([3; 32]);
    let port = port();
    let peers = loopback(1, port);
    let dead = Duration::from_secs(5);
    let stack = |id: usize| StdStack::new(IpAddr::from([127, 0, 0, 1 + id as u8]));
    let mut gw = Link::new(stack(0), link(0, &peers, port, &key, dead)).unwrap();
    let mut edge = Link::new(stack(1), link(1, &peers, port, &key, dead)).unwrap();
    let start = StdInstant::now();

    let dial = format!("node 1: dialling peer 0 at 127.0.0.1:{port}");
    assert_eq!(
        poll_until(&mut [&mut gw, &mut edge], start, &dial),
        Level::Debug
    );
    let up = "node 0: peer 1 up (accepted connection, 127.0.0.2)";
    assert_eq!(
        poll_until(&mut [&mut gw, &mut edge], start, up),
        Level::Info
    );
    let up = "node 1: peer 0 up (dialled connection, 127.0.0.1)";
    assert_eq!(
        poll_until(&mut [&mut gw, &mut edge], start, up),
        Level::Info
    );

    // A stranger's garbage: refused, with its address and the reason.
    let mut raw = TcpStream::connect(("127.0.0.1", port)).unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n-----------")
        .unwrap();
    let refused = "node 0: refused a connection from 127.0.0.1: bad frame";
    assert_eq!(poll_until(&mut [&mut gw], start, refused), Level::Warn);

    // The edge leaves: a debug line on its side, the peer down at warn on the gateway's.
    edge.disconnect(0);
    let closed = "node 1: closed the connection to 0";
    assert_eq!(poll_until(&mut [&mut edge], start, closed), Level::Debug);
    let down = "node 0: peer 1 down (127.0.0.2)";
    assert_eq!(poll_until(&mut [&mut gw], start, down), Level::Warn);
}
