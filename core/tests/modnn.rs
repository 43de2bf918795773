//! MoDNN as published, at the gateway: stripes stay on their workers across YOLOv2's 16 fused
//! layers, only the overlap rows move (through the gateway), and a worker lost after layer 0
//! restarts the frame. The row rules (`modnn_next_rows`, `modnn_boundaries`, `modnn_missing`)
//! are checked over random biased partitions: what a worker lacks is always among the
//! boundary rows the others sent, and it is a row or two, not a stripe.

use proptest::prelude::*;

use tessera_core::ftp::{FusedStack, Grid, Partition};
use tessera_core::region::{Region, Span};
use tessera_core::runtime::{
    modnn_boundaries, modnn_missing, modnn_next_rows, Action, Config, Gateway, Verdict,
};
use tessera_core::time::{Duration, Instant};
use tessera_core::wire::{FrameKey, Message, NodeId, Policy, StripsView, Tensor};
use tessera_testkit::machines::{t, NO_TENSOR as EMPTY};
use tessera_testkit::yolo16;

/// Row bands of `height` rows cut at the cumulative `weights`.
fn partition(height: u32, weights: &[u32]) -> Vec<Span> {
    let total: u32 = weights.iter().sum();
    let mut cum = 0;
    weights
        .iter()
        .map(|w| {
            let start = height * cum / total;
            cum += w;
            Span::new(start, height * cum / total)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_worker_lacks_only_rows_its_neighbours_sent(
        weights in prop::collection::vec(1u32..20, 1..8),
    ) {
        let net = yolo16();
        let stack = FusedStack::new(&net, 16).unwrap();
        let layers = stack.layers();
        let mut held = partition(layers[0].output.h, &weights);
        for layer in 1..layers.len() {
            let (in_h, out_h, w) = (layers[layer - 1].output.h, layers[layer].output.h, layers[layer].output.w);
            let next: Vec<Span> = held.iter().map(|&r| modnn_next_rows(r, in_h, out_h)).collect();
            // The stripes tile the layer, in order.
            let mut end = 0;
            for r in &next {
                prop_assert_eq!(r.start, end);
                end = r.end;
            }
            prop_assert_eq!(end, out_h);
            let sent: Vec<[Span; 2]> =
                held.iter().map(|&r| modnn_boundaries(&stack, layer - 1, r)).collect();
            for (k, out) in next.iter().enumerate().filter(|(_, r)| !r.is_empty()) {
                let output = Region::new(Span::new(0, w), *out);
                for band in modnn_missing(&stack, layer, output, held[k]) {
                    // A row or two above and below: a halo, never a stripe.
                    prop_assert!(band.len() <= 2, "layer {} stripe {}: {:?}", layer, k, band);
                    for row in band.start..band.end {
                        let from_others = sent
                            .iter()
                            .enumerate()
                            .any(|(j, b)| j != k && b.iter().any(|s| s.contains(row)));
                        prop_assert!(from_others, "layer {} stripe {} row {}", layer, k, row);
                    }
                }
            }
            held = next;
        }
    }
}

/// A MoDNN gateway with edges `1..=n` connected, and the frame edge 1 submits at `t(1)`.
fn gateway(n: NodeId) -> (Gateway, FrameKey, Vec<Action>) {
    let net = yolo16();
    let stack = FusedStack::new(&net, 16).unwrap();
    let grid = Grid::new(3, 3, Partition::Darknet, &stack).unwrap();
    let mut cfg = Config::new(Policy::Modnn, &stack, grid);
    cfg.tile_timeout = Duration::from_secs(10);
    let mut g = Gateway::new(cfg, t(0));
    for e in 1..=n {
        g.on_connected(t(0), e);
    }
    let frame = FrameKey::new(1, 0);
    let submit = Message::FrameSubmit {
        frame,
        input: EMPTY,
    };
    assert_eq!(g.on_message(t(1), 1, &submit), Ok(Verdict::Accept));
    let a = std::iter::from_fn(|| g.poll(t(1))).collect();
    (g, frame, a)
}

/// Every stripe of `layer` answered by its worker as a MoDNN worker does: boundary rows
/// (`Strips`), then a result over its rows (zero columns before the last layer).
fn answer(
    g: &mut Gateway,
    now: Instant,
    frame: FrameKey,
    layer: u8,
    stripes: &[(NodeId, u16, Region)],
) {
    for &(to, stripe, out) in stripes {
        let strips = Message::Strips {
            frame,
            tile: stripe,
            strips: StripsView::EMPTY,
        };
        assert_eq!(g.on_message(now, to, &strips), Ok(Verdict::Accept));
        let mut region = out;
        if layer < 15 {
            region.x.end = region.x.start;
        }
        let result = Message::LayerResult {
            frame,
            layer,
            stripe,
            output: Tensor { region, ..EMPTY },
        };
        assert_eq!(
            g.on_message(now, to, &result),
            Ok(Verdict::Accept),
            "layer {layer} stripe {stripe}"
        );
    }
}

#[test]
fn stripes_stay_on_their_workers_and_only_halos_move() {
    let net = yolo16();
    let stack = FusedStack::new(&net, 16).unwrap();
    let (mut g, frame, a) = gateway(3);
    // Layer 0: each edge gets its stripe's input from the frame (the scatter).
    let mut stripes: Vec<(NodeId, u16, Region)> = a
        .iter()
        .filter_map(|x| match *x {
            Action::SendLayerTask {
                to,
                layer: 0,
                stripe,
                output,
                ..
            } => Some((to, stripe, output)),
            _ => None,
        })
        .collect();
    assert_eq!(stripes.iter().map(|s| s.0).collect::<Vec<_>>(), [1, 2, 3]);
    let mut now = 10;
    let mut halo_rows = 0;
    for layer in 0..16u8 {
        answer(&mut g, t(now), frame, layer, &stripes);
        let a: Vec<Action> = std::iter::from_fn(|| g.poll(t(now))).collect();
        assert_eq!(a[0], Action::LayerComplete { frame, layer });
        if layer == 15 {
            assert_eq!(a[1], Action::FrameComplete { frame });
            break;
        }
        assert!(
            !a.iter().any(|x| matches!(x, Action::SendLayerTask { .. })),
            "layer {}: a stripe's input shipped again: {a:?}",
            layer + 1
        );
        let next: Vec<(NodeId, u16, Region, Span)> = a
            .iter()
            .filter_map(|x| match *x {
                Action::SendHalo {
                    to,
                    layer: l,
                    stripe,
                    output,
                    held,
                    ..
                } => {
                    assert_eq!(l, layer + 1);
                    Some((to, stripe, output, held))
                }
                _ => None,
            })
            .collect();
        assert_eq!(next.len(), stripes.len(), "layer {}", layer + 1);
        for (&(to, stripe, output, held), &(was, k, prev)) in next.iter().zip(&stripes) {
            // The same worker, over the rows it computed.
            assert_eq!((to, stripe), (was, k));
            assert_eq!(held, prev.y);
            for band in modnn_missing(&stack, layer as usize + 1, output, held) {
                halo_rows += band.len();
            }
        }
        stripes = next.iter().map(|&(to, k, out, _)| (to, k, out)).collect();
        now += 10;
    }
    // Three stripes, two inner boundaries: a row each way at each of the 12 convolutions
    // (11 of them 3x3 after layer 0), and none to speak of at the pools.
    assert!(
        halo_rows > 0 && halo_rows <= 2 * 2 * 15,
        "{halo_rows} rows forwarded"
    );
}

#[test]
fn a_worker_lost_after_layer_0_restarts_the_frame_over_the_others() {
    let (mut g, frame, a) = gateway(3);
    let stripes: Vec<(NodeId, u16, Region)> = a
        .iter()
        .filter_map(|x| match *x {
            Action::SendLayerTask {
                to, stripe, output, ..
            } => Some((to, stripe, output)),
            _ => None,
        })
        .collect();
    answer(&mut g, t(10), frame, 0, &stripes);
    let _: Vec<Action> = std::iter::from_fn(|| g.poll(t(10))).collect();
    // Edge 3 holds layer 0's last stripe and leaves during layer 1.
    g.on_disconnected(t(20), 3);
    let a: Vec<Action> = std::iter::from_fn(|| g.poll(t(20))).collect();
    assert_eq!(a[0], Action::RestartLayers { frame });
    let again: Vec<(NodeId, u8)> = a
        .iter()
        .filter_map(|x| match *x {
            Action::SendLayerTask { to, layer, .. } => Some((to, layer)),
            _ => None,
        })
        .collect();
    assert_eq!(again, [(1, 0), (2, 0)]);
    // A late layer-1 result from the old split is discarded.
    let stale = Message::LayerResult {
        frame,
        layer: 1,
        stripe: 0,
        output: EMPTY,
    };
    assert_eq!(g.on_message(t(21), 1, &stale), Ok(Verdict::Discard));
}
