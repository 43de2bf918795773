//! WST-S with `reuse = "link"`: a data source tells a thief where a level-1 tile's strips are
//! (`StripHolders`), the node running the tile fetches them edge to edge or recomputes the
//! overlap as its link model (or a forced rule) says, and a fetch that fails or is late runs
//! the tile `Plain` from its whole input.

use tessera_core::ftp::{FusedStack, Grid, Mode, Partition, Side};
use tessera_core::model::{Network, Shape};
use tessera_core::region::{Region, Span};
use tessera_core::runtime::{
    Action, Config, Edge, Gateway, LinkEstimate, RuntimeError, StripFetch, Verdict, Work,
};
use tessera_core::tensor::FeatureView;
use tessera_core::time::{Duration, Instant};
use tessera_core::wire::{
    FrameKey, Limits, Message, NodeId, Policy, StripHolders, StripsView, WireError, GATEWAY, PROBE,
};
use tessera_testkit::machines::{drain_edge as drain, drain_gw, send, t, NO_TENSOR as NO_INPUT};
use tessera_testkit::{conv, network, pool};

fn net() -> Network {
    network(Shape::new(64, 64, 3), [conv(4, 3), pool(), conv(8, 3)])
}

/// WST-S on a 3x3 grid with strips edge to edge, fetch or recompute chosen by `rule`.
fn config(rule: StripFetch) -> Config {
    let n = net();
    let stack = FusedStack::new(&n, 3).unwrap();
    let grid = Grid::new(3, 3, Partition::Darknet, &stack).unwrap();
    let mut c = Config::new(Policy::WstS, &stack, grid);
    c.tile_timeout = Duration::from_millis(100);
    c.local_reuse = true;
    c.link_reuse = true;
    c.strip_fetch = rule;
    c
}

fn task(frame: FrameKey, tile: u16, mode: Mode) -> Message<'static> {
    Message::Task {
        frame,
        tile,
        mode,
        input: NO_INPUT,
    }
}

/// Tile 7 (row 2, column 1) of a frame of source 1: 4 above and 6 left computed at the
/// source, 8 right computed by edge 4.
fn holders_of_7() -> StripHolders {
    let mut h = StripHolders::default();
    h.set(Side::Above, Some(1));
    h.set(Side::Left, Some(1));
    h.set(Side::Right, Some(4));
    h
}

/// One strip entry (a 1×1 strip of one channel) in `buf`.
fn one_strip(buf: &mut [u8]) -> StripsView<'_> {
    let v = [0.5f32];
    let mut w = StripsView::writer(buf);
    let region = Region::new(Span::new(0, 1), Span::new(0, 1));
    w.push(0, Side::Left, &FeatureView::new(&v, region, 1).unwrap())
        .unwrap();
    w.finish()
}

/// Edge 5, a thief connected to the gateway and to edges 1 (the source) and 4, that asked
/// victim 1 for work at `t(1)`.
fn thief(cfg: Config) -> Edge {
    let mut e = Edge::new(cfg, 5, t(0));
    for p in [GATEWAY, 1, 4] {
        e.on_connected(t(0), p);
    }
    assert_eq!(
        drain(&mut e, t(0)),
        vec![send(GATEWAY, Message::StealRequest)]
    );
    e.on_message(t(1), GATEWAY, &Message::StealReply { victim: Some(1) })
        .unwrap();
    assert_eq!(drain(&mut e, t(1)), vec![send(1, Message::StealTask)]);
    e
}

/// The thief receives level-1 tile 7, lent `Plain` after its holders, at `now`.
fn lend_7(e: &mut Edge, f: FrameKey, now: u64) -> Vec<Action> {
    let holders = Message::StripHolders {
        frame: f,
        tile: 7,
        holders: holders_of_7(),
    };
    assert_eq!(e.on_message(t(now), 1, &holders), Ok(Verdict::Accept));
    assert_eq!(
        e.on_message(t(now), 1, &task(f, 7, Mode::Plain)),
        Ok(Verdict::Accept)
    );
    drain(e, t(now))
}

/// Node `to` is asked for the strip of `tile` of frame `f` on `side`.
fn strip_request(to: NodeId, f: FrameKey, tile: u16, side: Side) -> Action {
    send(
        to,
        Message::StripRequest {
            frame: f,
            tile,
            sides: 1 << side.index(),
        },
    )
}

/// The strips of `tile` of frame `f` on `sides` are sent to `to`.
fn strips_to(to: NodeId, f: FrameKey, tile: u16, sides: u8) -> Action {
    Action::SendStrips {
        to,
        frame: f,
        tile,
        sides,
    }
}

fn requests_for_7(f: FrameKey) -> [Action; 3] {
    // Each neighbour's strip on its side facing 7, from the node holding it.
    [
        strip_request(4, f, 8, Side::Left),
        strip_request(1, f, 4, Side::Below),
        strip_request(1, f, 6, Side::Right),
    ]
}

fn tile7(f: FrameKey, mode: Mode) -> Action {
    Action::Compute(Work::Tile {
        frame: f,
        tile: 7,
        mode,
    })
}

#[test]
fn the_source_lends_level_0_tiles_reuse_and_a_ready_level_1_tile_with_its_holders() {
    let mut e = Edge::new(config(StripFetch::Always), 1, t(0));
    for p in [GATEWAY, 4, 5] {
        e.on_connected(t(0), p);
    }
    drain(&mut e, t(0));
    let f = e.submit_frame(t(0)).unwrap();
    let mut current = match drain(&mut e, t(0)).pop() {
        Some(Action::Compute(w)) => w,
        a => panic!("{a:?}"),
    };
    // Thief 4 steals: level-1 tiles are not ready, so it gets level-0 tile 8, Reuse (it keeps
    // the strips its neighbours will ask it for).
    e.on_message(t(1), 4, &Message::StealTask).unwrap();
    assert_eq!(
        drain(&mut e, t(1)),
        vec![Action::SendTask {
            to: 4,
            frame: f,
            tile: 8,
            mode: Mode::Reuse
        }]
    );
    // The owner computes 4, 0, 2, 6, then starts 1 (every neighbour here).
    for now in 2..6 {
        e.on_computed(t(now), current).unwrap();
        current = match drain(&mut e, t(now)).pop() {
            Some(Action::Compute(w)) => w,
            a => panic!("{a:?}"),
        };
    }
    assert_eq!(
        current,
        Work::Tile {
            frame: f,
            tile: 1,
            mode: Mode::Reuse
        }
    );
    // 8's result reaches the gateway: tile 7 (4 and 6 here, 8 on edge 4) is ready. Thief 5
    // gets it Plain, after where its strips are.
    e.on_message(t(6), GATEWAY, &Message::Coverage { frame: f, tile: 8 })
        .unwrap();
    e.on_message(t(6), 5, &Message::StealTask).unwrap();
    assert_eq!(
        drain(&mut e, t(6)),
        vec![
            send(
                5,
                Message::StripHolders {
                    frame: f,
                    tile: 7,
                    holders: holders_of_7()
                }
            ),
            Action::SendTask {
                to: 5,
                frame: f,
                tile: 7,
                mode: Mode::Plain
            }
        ]
    );
    // The owner finishes 1 and 3 (all neighbours here); tile 5 needs 8's strip from edge 4:
    // asked edge to edge.
    let mut now = 7;
    let a = loop {
        e.on_computed(t(now), current).unwrap();
        let a = drain(&mut e, t(now));
        now += 1;
        match a.last() {
            Some(Action::Compute(w)) => current = *w,
            _ => break a,
        }
        assert!(now < 20, "no fetch");
    };
    assert_eq!(a.last(), Some(&strip_request(4, f, 8, Side::Above)));
    assert!(!a.iter().any(|x| matches!(x, Action::Compute(_))), "{a:?}");
    let mut buf = [0u8; 64];
    let strips = Message::Strips {
        frame: f,
        tile: 8,
        strips: one_strip(&mut buf),
    };
    // From the wrong node: not the one asked.
    assert_eq!(e.on_message(t(now), 5, &strips), Ok(Verdict::Discard));
    assert_eq!(e.on_message(t(now), 4, &strips), Ok(Verdict::Accept));
    assert_eq!(
        drain(&mut e, t(now)),
        vec![Action::Compute(Work::Tile {
            frame: f,
            tile: 5,
            mode: Mode::Reuse
        })]
    );
    assert_eq!(e.stats().link_fetches, 1);
}

#[test]
fn a_thief_told_to_fetch_asks_each_holder_and_runs_reuse_once_every_strip_is_in() {
    let mut e = thief(config(StripFetch::Always));
    let f = FrameKey::new(1, 0);
    let a = lend_7(&mut e, f, 2);
    assert_eq!(a, requests_for_7(f).to_vec());
    let mut buf = [0u8; 64];
    let entry = one_strip(&mut buf);
    let strips = |tile| Message::Strips {
        frame: f,
        tile,
        strips: entry,
    };
    // 8's strips come from edge 4 only; 4's from the source.
    assert_eq!(e.on_message(t(3), 1, &strips(8)), Ok(Verdict::Discard));
    assert_eq!(e.on_message(t(3), 4, &strips(8)), Ok(Verdict::Accept));
    assert_eq!(e.on_message(t(3), 1, &strips(6)), Ok(Verdict::Accept));
    assert!(drain(&mut e, t(3)).is_empty());
    assert_eq!(e.on_message(t(4), 1, &strips(4)), Ok(Verdict::Accept));
    assert_eq!(drain(&mut e, t(4)), vec![tile7(f, Mode::Reuse)]);
    let s = e.stats();
    assert_eq!((s.link_fetches, s.link_recomputes, s.reuse_runs), (1, 0, 1));
}

#[test]
fn a_thief_told_to_recompute_runs_the_tile_plain_at_once() {
    let mut e = thief(config(StripFetch::Never));
    let f = FrameKey::new(1, 0);
    assert_eq!(lend_7(&mut e, f, 2), vec![tile7(f, Mode::Plain)]);
    let s = e.stats();
    assert_eq!((s.link_fetches, s.link_recomputes, s.reuse_runs), (0, 1, 0));
}

#[test]
fn a_failed_or_late_fetch_runs_the_tile_plain_from_its_whole_input() {
    let f = FrameKey::new(1, 0);
    // A holder that no longer has the strips answers with none.
    let mut e = thief(config(StripFetch::Always));
    lend_7(&mut e, f, 2);
    let none = Message::Strips {
        frame: f,
        tile: 8,
        strips: StripsView::EMPTY,
    };
    assert_eq!(e.on_message(t(3), 4, &none), Ok(Verdict::Discard));
    assert_eq!(drain(&mut e, t(3)), vec![tile7(f, Mode::Plain)]);
    assert_eq!(e.stats().plain_fallbacks, 1);
    // A holder that goes away.
    let mut e = thief(config(StripFetch::Always));
    lend_7(&mut e, f, 2);
    e.on_disconnected(t(3), 4);
    assert!(drain(&mut e, t(3)).contains(&tile7(f, Mode::Plain)));
    // A holder that refuses.
    let mut e = thief(config(StripFetch::Always));
    lend_7(&mut e, f, 2);
    e.on_message(t(3), 1, &Message::Reject { code: 1 }).unwrap();
    assert_eq!(drain(&mut e, t(3)), vec![tile7(f, Mode::Plain)]);
    // Strips that never come: the fetch's own timeout, well inside the tile timeout.
    let mut e = thief(config(StripFetch::Always));
    lend_7(&mut e, f, 2);
    let at = e.poll_at().unwrap();
    assert!(at > t(2) && at < t(2 + 100), "{at:?}");
    assert!(drain(&mut e, at).contains(&tile7(f, Mode::Plain)));
}

/// The thief computes level-0 tile 8 (lent `Reuse`) in `took`, then is lent tile 7 of frame
/// `f`: the thief and what its link model chose.
fn model_choice(took: Duration) -> (Edge, Vec<Action>) {
    let cfg = config(StripFetch::Model);
    let mut e = thief(cfg);
    let f = FrameKey::new(1, 0);
    e.on_message(t(2), 1, &task(f, 8, Mode::Reuse)).unwrap();
    let a = drain(&mut e, t(2));
    let w = Work::Tile {
        frame: f,
        tile: 8,
        mode: Mode::Reuse,
    };
    assert!(a.contains(&Action::Compute(w)), "{a:?}");
    let done = t(2) + took;
    e.on_computed(done, w).unwrap();
    // It sends the result and asks again (gateway, then victim 1).
    assert_eq!(
        drain(&mut e, done),
        vec![
            Action::SendResult {
                to: GATEWAY,
                frame: f,
                tile: 8
            },
            send(GATEWAY, Message::StealRequest)
        ]
    );
    e.on_message(done, GATEWAY, &Message::StealReply { victim: Some(1) })
        .unwrap();
    drain(&mut e, done);
    let now = done.total_millis() + 1;
    let a = lend_7(&mut e, f, now);
    (e, a)
}

#[test]
fn the_link_model_fetches_when_it_pays_tries_an_unmeasured_link_once_and_recomputes_on_a_slow_one()
{
    let f = FrameKey::new(1, 0);
    let cfg = config(StripFetch::Model);
    // What is at stake: tile 8's work, the overlap 7 saves, the strips it needs.
    let (tile8, saved) = (cfg.costs.macs(8, Mode::Reuse), cfg.costs.saved_macs(7));
    let bytes: u64 = Side::ALL.iter().map(|&s| cfg.costs.strip_bytes(7, s)).sum();
    assert!(tile8 > 0 && saved > 0 && bytes > 0);
    // Tile 8 in 10 s: the overlap would take 10 s × saved / tile8, far more than the strips at
    // the prior link (5 ms + bytes at 2.5 MB/s): fetch.
    let (_, slow) = model_choice(Duration::from_secs(10));
    assert_eq!(slow, requests_for_7(f).to_vec());
    // Tile 8 in 1 µs: recomputing is instant, but neither holder's link was measured: it
    // fetches once to measure them.
    let (mut e, fast) = model_choice(Duration::from_micros(1));
    assert_eq!(fast, requests_for_7(f).to_vec());
    // The strips come, 20 KiB from each holder, just inside the fetch's timeout.
    let mut buf = vec![0u8; 24 << 10];
    let values = vec![0.5f32; 5 << 10];
    let mut w = StripsView::writer(&mut buf);
    let region = Region::new(Span::new(0, 64), Span::new(0, 80));
    w.push(
        0,
        Side::Left,
        &FeatureView::new(&values, region, 1).unwrap(),
    )
    .unwrap();
    let big = w.finish();
    let now = Instant::from_micros(e.poll_at().unwrap().total_micros() - 1);
    for (from, tile) in [(4, 8), (1, 4), (1, 6)] {
        let m = Message::Strips {
            frame: f,
            tile,
            strips: big,
        };
        e.on_message(now, from, &m).unwrap();
    }
    let w7 = Work::Tile {
        frame: f,
        tile: 7,
        mode: Mode::Reuse,
    };
    assert_eq!(drain(&mut e, now), vec![Action::Compute(w7)]);
    e.on_computed(now, w7).unwrap();
    drain(&mut e, now);
    // Tile 7 of the next frame: both links now measured, the node far faster: recompute.
    e.on_message(now, GATEWAY, &Message::StealReply { victim: Some(1) })
        .unwrap();
    drain(&mut e, now);
    let g = FrameKey::new(1, 1);
    let a = lend_7(&mut e, g, now.total_millis() + 1);
    assert_eq!(a, vec![tile7(g, Mode::Plain)]);
    let s = e.stats();
    assert_eq!((s.link_fetches, s.link_recomputes), (1, 1));
}

#[test]
fn a_holder_serves_strip_requests_from_other_edges_and_refuses_malformed_ones() {
    let mut e = Edge::new(config(StripFetch::Model), 4, t(0));
    for p in [GATEWAY, 5] {
        e.on_connected(t(0), p);
    }
    drain(&mut e, t(0));
    let f = FrameKey::new(1, 0);
    let ask = |tile, sides| Message::StripRequest {
        frame: f,
        tile,
        sides,
    };
    let left = 1 << Side::Left.index();
    assert_eq!(e.on_message(t(1), 5, &ask(8, left)), Ok(Verdict::Accept));
    assert_eq!(drain(&mut e, t(1)), vec![strips_to(5, f, 8, left)]);
    // Level-1 tiles make no strips; tile 8 has no neighbour below.
    let below = 1 << Side::Below.index();
    for bad in [ask(7, left), ask(8, below)] {
        assert!(matches!(
            e.on_message(t(2), 5, &bad),
            Err(RuntimeError::Unexpected { peer: 5, .. })
        ));
    }
    // Holders on a side with no neighbour (tile 7 has none below), or none where there is one.
    let mut wrong = holders_of_7();
    wrong.set(Side::Below, Some(1));
    let mut missing = holders_of_7();
    missing.set(Side::Right, None);
    for h in [wrong, missing] {
        let m = Message::StripHolders {
            frame: f,
            tile: 7,
            holders: h,
        };
        assert!(matches!(
            e.on_message(t(3), 5, &m),
            Err(RuntimeError::Unexpected { peer: 5, .. })
        ));
    }
    // Holders from a node this edge did not ask for work: dropped, counted.
    let m = Message::StripHolders {
        frame: f,
        tile: 7,
        holders: holders_of_7(),
    };
    assert_eq!(e.on_message(t(4), 5, &m), Ok(Verdict::Discard));
    assert_eq!(e.stats().discarded, 1);
    // Without link reuse an edge serves no strips.
    let mut cfg = config(StripFetch::Model);
    cfg.link_reuse = false;
    let mut e = Edge::new(cfg, 4, t(0));
    e.on_connected(t(0), 5);
    assert!(e.on_message(t(1), 5, &ask(8, left)).is_err());
}

#[test]
fn strip_holders_on_the_wire_name_a_node_or_none() {
    let m = Message::StripHolders {
        frame: FrameKey::new(1, 7),
        tile: 7,
        holders: holders_of_7(),
    };
    let mut buf = [0u8; 64];
    let n = m.emit(&mut buf).unwrap();
    assert_eq!(n, 6 + 2 + 8);
    // Below: none (0xffff); right: 4; above: 1; left: 1.
    assert_eq!(&buf[8..n], &[0xff, 0xff, 4, 0, 1, 0, 1, 0]);
    assert_eq!(Message::parse(m.kind(), &buf[..n], &Limits::LARGE), Ok(m));
    assert_eq!(
        Message::parse(m.kind(), &buf[..n - 1], &Limits::LARGE),
        Err(WireError::Truncated)
    );
    // The reserved id cannot be named a holder.
    let mut h = holders_of_7();
    h.set(Side::Below, Some(PROBE));
    let bad = Message::StripHolders {
        frame: FrameKey::new(1, 7),
        tile: 7,
        holders: h,
    };
    assert_eq!(bad.emit(&mut buf), Err(WireError::BadValue));
}

/// A source whose centre tile took 1 s, with the four corners lent at `t(1)`: the level-1
/// tiles all wait for a corner. With a fast link (the strips cost nothing) a corner due about
/// now is worth waiting for: the source holds the tiles (a thief gets `NoTask`) and, once the
/// corners are covered, runs one `Reuse` with their strips fetched from the thieves. With a
/// link so slow that fetching never pays, it does not wait: level-1 tiles go `Plain` at once.
#[test]
fn a_source_holds_level_1_tiles_for_neighbours_about_done_only_when_reuse_would_pay() {
    for fast in [true, false] {
        let mut cfg = config(StripFetch::Model);
        cfg.tile_timeout = Duration::from_secs(10);
        cfg.link_prior = LinkEstimate {
            rtt: Duration::from_micros(0),
            bytes_per_s: if fast { 1 << 40 } else { 1 },
        };
        let mut e = Edge::new(cfg, 1, t(0));
        for p in [GATEWAY, 4, 5, 6, 7, 8] {
            e.on_connected(t(0), p);
        }
        drain(&mut e, t(0));
        let f = e.submit_frame(t(0)).unwrap();
        let centre = Work::Tile {
            frame: f,
            tile: 4,
            mode: Mode::Reuse,
        };
        assert_eq!(drain(&mut e, t(0)).pop(), Some(Action::Compute(centre)));
        // Thieves 4..=7 take the corners from the tail: 8, 6, 2, 0.
        for (thief, tile) in [(4, 8), (5, 6), (6, 2), (7, 0)] {
            e.on_message(t(1), thief, &Message::StealTask).unwrap();
            assert_eq!(
                drain(&mut e, t(1)),
                vec![Action::SendTask {
                    to: thief,
                    frame: f,
                    tile,
                    mode: Mode::Reuse
                }]
            );
        }
        e.on_computed(t(1000), centre).unwrap();
        let a = drain(&mut e, t(1000));
        e.on_message(t(1000), 8, &Message::StealTask).unwrap();
        let lent = drain(&mut e, t(1000));
        if !fast {
            assert!(
                matches!(
                    a.last(),
                    Some(Action::Compute(Work::Tile {
                        mode: Mode::Plain,
                        ..
                    }))
                ),
                "{a:?}"
            );
            assert!(
                matches!(
                    lent.last(),
                    Some(Action::SendTask {
                        to: 8,
                        mode: Mode::Plain,
                        ..
                    })
                ),
                "{lent:?}"
            );
            continue;
        }
        assert!(!a.iter().any(|x| matches!(x, Action::Compute(_))), "{a:?}");
        assert_eq!(lent, vec![send(8, Message::NoTask)]);
        // Corners 0 and 2 come in: tile 1 (0, 2 and the centre) runs Reuse with the strips
        // of 0 and 2 fetched from the thieves that computed them.
        for tile in [0, 2] {
            e.on_message(t(1100), GATEWAY, &Message::Coverage { frame: f, tile })
                .unwrap();
        }
        let a = drain(&mut e, t(1100));
        let want = [
            strip_request(6, f, 2, Side::Left),
            strip_request(7, f, 0, Side::Right),
        ];
        assert_eq!(a, want.to_vec());
    }
}

/// An edge with no connection to a holder asks the gateway, which forwards the request to the
/// edge whose result of that tile came in and sends the strips on; with no known holder, or
/// the holder gone, the asker gets `Reject`.
#[test]
fn strips_go_through_the_gateway_only_when_no_direct_path_exists() {
    let f = FrameKey::new(1, 0);
    // The thief reaches the source but not edge 4, which holds 8's strips.
    let mut e = Edge::new(config(StripFetch::Always), 5, t(0));
    for p in [GATEWAY, 1] {
        e.on_connected(t(0), p);
    }
    drain(&mut e, t(0));
    e.on_message(t(1), GATEWAY, &Message::StealReply { victim: Some(1) })
        .unwrap();
    drain(&mut e, t(1));
    let a = lend_7(&mut e, f, 2);
    let want = [
        strip_request(GATEWAY, f, 8, Side::Left),
        strip_request(1, f, 4, Side::Below),
        strip_request(1, f, 6, Side::Right),
    ];
    assert_eq!(a, want.to_vec());

    let mut g = Gateway::new(config(StripFetch::Always), t(0));
    for p in [1, 4, 5] {
        g.on_connected(t(0), p);
    }
    g.on_message(t(1), 1, &Message::Register { frame: f, tiles: 9 })
        .unwrap();
    drain_gw(&mut g, t(1));
    let result = Message::Result {
        frame: f,
        tile: 8,
        output: NO_INPUT,
    };
    assert_eq!(g.on_message(t(2), 4, &result), Ok(Verdict::Accept));
    drain_gw(&mut g, t(2));
    let left = 1 << Side::Left.index();
    let ask = |tile| Message::StripRequest {
        frame: f,
        tile,
        sides: left,
    };
    g.on_message(t(3), 5, &ask(8)).unwrap();
    assert_eq!(drain_gw(&mut g, t(3)), vec![send(4, ask(8))]);
    let mut buf = [0u8; 64];
    let strips = Message::Strips {
        frame: f,
        tile: 8,
        strips: one_strip(&mut buf),
    };
    // Only the holder's answer is relayed, once.
    assert_eq!(g.on_message(t(4), 1, &strips), Ok(Verdict::Discard));
    assert_eq!(g.on_message(t(4), 4, &strips), Ok(Verdict::Accept));
    assert_eq!(drain_gw(&mut g, t(4)), vec![strips_to(5, f, 8, left)]);
    assert_eq!(g.on_message(t(5), 4, &strips), Ok(Verdict::Discard));
    assert_eq!(g.stats().strips_relayed, 1);
    // No result of 6 yet: nobody to ask.
    let reject = send(5, Message::Reject { code: 1 });
    g.on_message(t(6), 5, &ask(6)).unwrap();
    assert_eq!(drain_gw(&mut g, t(6)), vec![reject]);
    // The holder leaves while a relay waits on it.
    g.on_message(t(7), 5, &ask(8)).unwrap();
    drain_gw(&mut g, t(7));
    g.on_disconnected(t(8), 4);
    assert!(drain_gw(&mut g, t(8)).contains(&reject));
    // A holder edge answers the gateway's relayed request like an edge's.
    let mut h = Edge::new(config(StripFetch::Model), 4, t(0));
    h.on_connected(t(0), GATEWAY);
    drain(&mut h, t(0));
    h.on_message(t(1), GATEWAY, &ask(8)).unwrap();
    assert_eq!(drain(&mut h, t(1)), vec![strips_to(GATEWAY, f, 8, left)]);
}

/// Relays wait for a holder that never answers until their frame is retired, no longer: the
/// relay table fills (the asker is refused and recomputes), and frees when the frame ends.
#[test]
fn relays_to_a_silent_holder_end_with_their_frame() {
    let f = FrameKey::new(1, 0);
    let mut g = Gateway::new(config(StripFetch::Always), t(0));
    for p in [1, 4, 5] {
        g.on_connected(t(0), p);
    }
    let left = 1 << Side::Left.index();
    let ask = |frame, tile| Message::StripRequest {
        frame,
        tile,
        sides: left,
    };
    let result = |frame, tile| Message::Result {
        frame,
        tile,
        output: NO_INPUT,
    };
    g.on_message(t(1), 1, &Message::Register { frame: f, tiles: 9 })
        .unwrap();
    assert_eq!(g.on_message(t(2), 4, &result(f, 8)), Ok(Verdict::Accept));
    drain_gw(&mut g, t(2));
    // Edge 4 holds tile 8's strips and never answers: every ask takes a relay slot until none
    // is left.
    let reject = send(5, Message::Reject { code: 1 });
    let mut forwarded = 0;
    loop {
        g.on_message(t(3), 5, &ask(f, 8)).unwrap();
        let a = drain_gw(&mut g, t(3));
        if a == vec![reject] {
            break;
        }
        assert_eq!(a, vec![send(4, ask(f, 8))]);
        forwarded += 1;
        assert!(forwarded <= 64, "the relay table never filled");
    }
    assert!(forwarded > 0);
    // The frame completes: its relays go with it, and the next frame's asks are relayed.
    for tile in 0..8 {
        g.on_message(t(4), 1, &result(f, tile)).unwrap();
    }
    drain_gw(&mut g, t(4));
    let f2 = FrameKey::new(1, 1);
    g.on_message(
        t(5),
        1,
        &Message::Register {
            frame: f2,
            tiles: 9,
        },
    )
    .unwrap();
    g.on_message(t(5), 4, &result(f2, 8)).unwrap();
    drain_gw(&mut g, t(5));
    g.on_message(t(6), 5, &ask(f2, 8)).unwrap();
    assert_eq!(drain_gw(&mut g, t(6)), vec![send(4, ask(f2, 8))]);
}
