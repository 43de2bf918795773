//! Frames as the nodes reported them on standard output: a source edge's
//! `frame O.N: done in MS ms` (from its submission to the gateway's `FrameDone`, the latency
//! the simulator reports) and the gateway's `frame O.N: MS ms in the cluster, ..., tiles
//! [(ID, K), ...]` (from the frame's arrival at the gateway; who computed its tiles).

use std::collections::BTreeMap;

use tessera_core::wire::NodeId;

/// One frame's lines, joined by `(origin, number)`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FrameLog {
    /// The source said it finished (`Some(true)`: done, `Some(false)`: FAILED).
    pub source_done: Option<bool>,
    /// Latency at the source, ms.
    pub source_ms: Option<u64>,
    /// The gateway finished it (`Some(false)`: it said FAILED).
    pub gateway_done: Option<bool>,
    /// Latency at the gateway, ms.
    pub gateway_ms: Option<u64>,
    /// Results accepted per node, per the gateway.
    pub tiles_by: Vec<(NodeId, u32)>,
}

/// Frame key `(origin, number)`.
pub type Key = (NodeId, u32);

fn key(s: &str) -> Option<Key> {
    let (o, n) = s.split_once('.')?;
    Some((o.parse().ok()?, n.parse().ok()?))
}

/// `[(1, 3), (2, 6)]` → `[(1, 3), (2, 6)]`.
fn tiles(s: &str) -> Vec<(NodeId, u32)> {
    s.split(')')
        .filter_map(|p| {
            let p = p
                .trim_start_matches([',', ' ', '[', ']'])
                .trim_start_matches('(');
            let (a, b) = p.split_once(',')?;
            Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
        })
        .collect()
}

/// Reads one source edge's output into `frames`.
pub fn read_source(text: &str, frames: &mut BTreeMap<Key, FrameLog>) {
    for l in text.lines() {
        let Some(rest) = l.strip_prefix("frame ") else {
            continue;
        };
        let Some((k, rest)) = rest.split_once(": ") else {
            continue;
        };
        let Some(k) = key(k) else { continue };
        let done = if rest.starts_with("done in ") {
            true
        } else if rest.starts_with("FAILED in ") {
            false
        } else {
            continue;
        };
        let ms = rest.split_whitespace().nth(2).and_then(|m| m.parse().ok());
        let f = frames.entry(k).or_default();
        f.source_done = Some(done);
        f.source_ms = ms;
    }
}

/// Reads the gateway's output into `frames`.
pub fn read_gateway(text: &str, frames: &mut BTreeMap<Key, FrameLog>) {
    for l in text.lines() {
        let Some(rest) = l.strip_prefix("frame ") else {
            continue;
        };
        if let Some(k) = rest.strip_suffix(" FAILED").and_then(key) {
            frames.entry(k).or_default().gateway_done = Some(false);
            continue;
        }
        let Some((k, rest)) = rest.split_once(": ") else {
            continue;
        };
        let Some(k) = key(k) else { continue };
        let Some((ms, rest)) = rest.split_once(" ms in the cluster") else {
            continue;
        };
        let f = frames.entry(k).or_default();
        f.gateway_done = Some(true);
        f.gateway_ms = ms.trim().parse().ok();
        if let Some((_, t)) = rest.split_once("tiles ") {
            f.tiles_by = tiles(t);
        }
    }
}

/// The link payload bytes a node's processes sent, from the `bytes_sent: N` each process
/// prints in its exit line: `None` when fewer processes said so than were started (one was
/// killed, so its bytes are unknown).
pub fn link_bytes_sent(text: &str, starts: u32) -> Option<u64> {
    let said: Vec<u64> = text
        .lines()
        .filter_map(|l| l.split_once("LinkStats { bytes_sent: "))
        .filter_map(|(_, rest)| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .collect();
    (said.len() as u32 >= starts.max(1)).then(|| said.iter().sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_views_of_a_frame_join() {
        let mut m = BTreeMap::new();
        read_source(
            "edge 1 up, feeding 2 frames\nframe 1.70000: done in 9120 ms\n\
             frame 1.70001: FAILED in 600000 ms\n",
            &mut m,
        );
        read_gateway(
            "gateway up\nframe 1.70000: 9100 ms in the cluster, fused output 10 values, \
             tiles [(1, 4), (2, 5)]\nframe 1.70001 FAILED\n",
            &mut m,
        );
        let a = &m[&(1, 70000)];
        assert_eq!(a.source_ms, Some(9120));
        assert_eq!(a.gateway_ms, Some(9100));
        assert_eq!(a.tiles_by, vec![(1, 4), (2, 5)]);
        let b = &m[&(1, 70001)];
        let exit = "edge 1: fed 4, done 4, link LinkStats { bytes_sent: 26465242, bytes_received: 4783 }\n";
        assert_eq!(link_bytes_sent(exit, 1), Some(26_465_242));
        assert_eq!(
            link_bytes_sent(&format!("{exit}{exit}"), 2),
            Some(52_930_484)
        );
        assert_eq!(link_bytes_sent(exit, 2), None, "a killed life said nothing");
        assert_eq!(link_bytes_sent("frame 1.2: done in 5 ms\n", 1), None);
        assert_eq!(b.source_done, Some(false));
        assert_eq!(b.gateway_done, Some(false));
    }
}
