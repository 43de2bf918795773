//! Message-level checks of the gateway and edge state machines: exact sequences, typed errors
//! for peers and messages out of protocol, capacities, wrap-around, timeouts, and random
//! message streams that must never panic.

use proptest::prelude::*;

use tessera_core::ftp::{FusedStack, Grid, Mode, Partition, Side};
use tessera_core::model::{Network, Shape};
use tessera_core::region::{Region, Span};
use tessera_core::runtime::{
    Action, Config, Edge, Gateway, RuntimeError, SubmitError, Verdict, Work, MAX_EDGES,
    MAX_FRAMES_PER_SOURCE, MAX_IDLE_BACKOFF, REJECT_NO_STRIPS,
};
use tessera_core::time::{Duration, Instant};
use tessera_core::wire::{
    FrameKey, Kind, Message, NodeId, Policy, Role, StripsView, Tensor, GATEWAY,
};
use tessera_testkit::machines::{drain_edge, drain_gw, send, t, NO_TENSOR as EMPTY};
use tessera_testkit::{conv, network, pool};

fn net() -> Network {
    network(Shape::new(64, 64, 3), [conv(4, 3), pool(), conv(8, 3)])
}

fn config(policy: Policy) -> Config {
    let n = net();
    let stack = FusedStack::new(&n, 3).unwrap();
    let grid = Grid::new(3, 3, Partition::Darknet, &stack).unwrap();
    let mut c = Config::new(policy, &stack, grid);
    c.tile_timeout = Duration::from_millis(100);
    c
}

fn hello(node: NodeId) -> Message<'static> {
    Message::Hello {
        node,
        role: Role::Edge,
        model: 0,
    }
}

fn result(frame: FrameKey, tile: u16) -> Message<'static> {
    Message::Result {
        frame,
        tile,
        output: EMPTY,
    }
}

fn task(frame: FrameKey, tile: u16) -> Message<'static> {
    Message::Task {
        frame,
        tile,
        mode: Mode::Plain,
        input: EMPTY,
    }
}

#[test]
fn gateway_refuses_unknown_peers_and_forged_hellos() {
    let mut g = Gateway::new(config(Policy::Wsh), t(0));
    let f = FrameKey::new(3, 0);
    assert_eq!(
        g.on_message(t(1), 3, &result(f, 0)),
        Err(RuntimeError::UnknownPeer { peer: 3 })
    );
    // A Hello is the transport's business: it does not make a peer known.
    assert_eq!(
        g.on_message(t(1), 3, &hello(3)),
        Err(RuntimeError::UnknownPeer { peer: 3 })
    );
    assert_eq!(g.alive_edges(), 0);
    g.on_connected(t(1), GATEWAY); // itself: ignored
    g.on_connected(t(1), 3);
    g.on_connected(t(1), 3); // twice: one peer
    assert_eq!(g.alive_edges(), 1);
    // Session messages passed up anyway change nothing.
    assert_eq!(g.on_message(t(1), 3, &hello(3)), Ok(Verdict::Accept));
    assert_eq!(
        g.on_message(t(1), 3, &Message::Heartbeat),
        Ok(Verdict::Accept)
    );
    assert!(drain_gw(&mut g, t(1)).is_empty());
    // A result for a frame that never existed is discarded, an impossible tile is an error.
    assert_eq!(g.on_message(t(2), 3, &result(f, 0)), Ok(Verdict::Discard));
    assert_eq!(
        g.on_message(t(2), 3, &result(f, 9)),
        Err(RuntimeError::TileOutOfRange { tile: 9, tiles: 9 })
    );
    // Messages the gateway never receives.
    for m in [
        task(f, 0),
        Message::NoTask,
        Message::Coverage { frame: f, tile: 0 },
    ] {
        let e = g.on_message(t(3), 3, &m).unwrap_err();
        assert!(e.peer_fault(), "{m:?}: {e:?}");
    }
    // Messages of another policy.
    assert!(matches!(
        g.on_message(t(3), 3, &Message::StealRequest),
        Err(RuntimeError::Unexpected {
            kind: Kind::StealRequest,
            ..
        })
    ));
}

#[test]
fn edge_refuses_tasks_nobody_asked_for() {
    let mut e = Edge::new(config(Policy::Wst), 1, t(0));
    let f = FrameKey::new(2, 0);
    // Not connected to the gateway yet.
    assert_eq!(
        e.on_message(t(0), GATEWAY, &Message::Heartbeat),
        Err(RuntimeError::UnknownPeer { peer: GATEWAY })
    );
    e.on_connected(t(0), GATEWAY);
    let a = drain_edge(&mut e, t(0));
    assert_eq!(a, vec![send(GATEWAY, Message::StealRequest)]);
    // A Task from a node that is not the victim we asked, and from the gateway under WST.
    assert!(matches!(
        e.on_message(t(1), 7, &task(f, 0)),
        Err(RuntimeError::Unexpected {
            peer: 7,
            kind: Kind::Task
        })
    ));
    assert!(e.on_message(t(1), GATEWAY, &task(f, 0)).is_err());
    // The gateway names victim 2 before this edge is connected to it: nothing is sent, and the
    // thief asks again as soon as 2 comes up (not after a tile timeout).
    let reply = Message::StealReply { victim: Some(2) };
    assert_eq!(e.on_message(t(2), GATEWAY, &reply), Ok(Verdict::Accept));
    assert_eq!(drain_edge(&mut e, t(2)), vec![]);
    assert!(e
        .poll_at()
        .is_some_and(|at| at <= t(2) + config(Policy::Wst).steal_backoff));
    e.on_connected(t(2), 2);
    assert_eq!(
        drain_edge(&mut e, t(2)),
        vec![send(GATEWAY, Message::StealRequest)]
    );
    // Connected now: only 2 may answer.
    assert_eq!(e.on_message(t(2), GATEWAY, &reply), Ok(Verdict::Accept));
    assert_eq!(drain_edge(&mut e, t(2)), vec![send(2, Message::StealTask)]);
    assert!(e.on_message(t(3), 5, &task(f, 0)).is_err());
    assert_eq!(e.on_message(t(3), 2, &task(f, 4)), Ok(Verdict::Accept));
    let w = Work::Tile {
        frame: f,
        tile: 4,
        mode: Mode::Plain,
    };
    assert_eq!(drain_edge(&mut e, t(3)), vec![Action::Compute(w)]);
    // Messages an edge never receives; wrong work reported.
    assert!(e.on_message(t(4), 3, &result(f, 0)).is_err());
    assert!(
        e.on_message(t(4), 1, &Message::Heartbeat).is_err(),
        "from itself"
    );
    let other = Work::Tile {
        frame: f,
        tile: 5,
        mode: Mode::Plain,
    };
    assert_eq!(e.on_computed(t(5), other), Err(RuntimeError::NotComputing));
    assert_eq!(e.on_computed(t(5), w), Ok(Verdict::Accept));
    assert_eq!(
        drain_edge(&mut e, t(5)),
        vec![
            Action::SendResult {
                to: GATEWAY,
                frame: f,
                tile: 4
            },
            send(GATEWAY, Message::StealRequest),
        ]
    );
    assert_eq!(e.on_computed(t(6), w), Err(RuntimeError::NotComputing));
}

#[test]
fn wsh_sequence_parks_idle_workers_and_pushes_work() {
    let mut g = Gateway::new(config(Policy::Wsh), t(0));
    for e in [1, 2] {
        g.on_connected(t(0), e);
    }
    // Worker 2 asks before any frame: NoTask, parked.
    g.on_message(t(1), 2, &Message::TaskRequest).unwrap();
    assert_eq!(drain_gw(&mut g, t(1)), vec![send(2, Message::NoTask)]);
    // Source 1 submits: the parked worker gets the head tile without asking again.
    let f = FrameKey::new(1, 0);
    let submit = Message::FrameSubmit {
        frame: f,
        input: EMPTY,
    };
    assert_eq!(g.on_message(t(2), 1, &submit), Ok(Verdict::Accept));
    assert_eq!(
        g.on_message(t(2), 1, &submit),
        Ok(Verdict::Discard),
        "duplicate"
    );
    let a = drain_gw(&mut g, t(2));
    assert_eq!(
        a,
        vec![Action::SendTask {
            to: 2,
            frame: f,
            tile: 0,
            mode: Mode::Plain
        }]
    );
    // Worker 1 pulls the next tiles; results come back; a late duplicate is discarded.
    for tile in 1..9 {
        g.on_message(t(3), 1, &Message::TaskRequest).unwrap();
        assert_eq!(
            drain_gw(&mut g, t(3)),
            vec![Action::SendTask {
                to: 1,
                frame: f,
                tile,
                mode: Mode::Plain
            }]
        );
        assert_eq!(g.on_message(t(4), 1, &result(f, tile)), Ok(Verdict::Accept));
        assert_eq!(
            g.on_message(t(4), 1, &result(f, tile)),
            Ok(Verdict::Discard)
        );
    }
    // Tile 0 is late at worker 2: re-dispatched to worker 1 after the tile timeout.
    g.on_message(t(5), 1, &Message::TaskRequest).unwrap();
    assert_eq!(drain_gw(&mut g, t(5)), vec![send(1, Message::NoTask)]);
    assert_eq!(g.poll_at(), Some(t(102)));
    assert_eq!(
        drain_gw(&mut g, t(102)),
        vec![Action::SendTask {
            to: 1,
            frame: f,
            tile: 0,
            mode: Mode::Plain
        }]
    );
    assert_eq!(g.on_message(t(110), 1, &result(f, 0)), Ok(Verdict::Accept));
    assert_eq!(
        drain_gw(&mut g, t(110)),
        vec![
            Action::FrameComplete { frame: f },
            send(
                1,
                Message::FrameDone {
                    frame: f,
                    complete: true
                }
            ),
        ]
    );
    // The straggler's result arrives after the frame is gone.
    assert_eq!(g.on_message(t(120), 2, &result(f, 0)), Ok(Verdict::Discard));
    assert_eq!(g.stats().tiles_redispatched, 1);
}

#[test]
fn wst_gateway_round_robins_victims_and_wakes_thieves() {
    let mut g = Gateway::new(config(Policy::Wst), t(0));
    for e in [1, 2, 3] {
        g.on_connected(t(0), e);
    }
    // No victim yet: thief 3 is told none, then woken by the first Register.
    g.on_message(t(1), 3, &Message::StealRequest).unwrap();
    assert_eq!(
        drain_gw(&mut g, t(1)),
        vec![send(3, Message::StealReply { victim: None })]
    );
    let (f1, f2) = (FrameKey::new(1, 0), FrameKey::new(2, 0));
    g.on_message(
        t(2),
        1,
        &Message::Register {
            frame: f1,
            tiles: 9,
        },
    )
    .unwrap();
    assert_eq!(
        drain_gw(&mut g, t(2)),
        vec![send(
            3,
            Message::Register {
                frame: f1,
                tiles: 1
            }
        )]
    );
    g.on_message(
        t(2),
        2,
        &Message::Register {
            frame: f2,
            tiles: 9,
        },
    )
    .unwrap();
    // A source never names itself a register for another origin.
    assert!(g
        .on_message(
            t(2),
            2,
            &Message::Register {
                frame: f1,
                tiles: 9
            }
        )
        .is_err());
    let mut victims = vec![];
    for _ in 0..4 {
        g.on_message(t(3), 3, &Message::StealRequest).unwrap();
        for a in drain_gw(&mut g, t(3)) {
            if let Action::Send {
                msg: Message::StealReply { victim },
                ..
            } = a
            {
                victims.push(victim);
            }
        }
    }
    assert_eq!(victims, vec![Some(1), Some(2), Some(1), Some(2)]);
    // Source 1 never robs itself.
    g.on_message(t(4), 1, &Message::StealRequest).unwrap();
    assert_eq!(
        drain_gw(&mut g, t(4)),
        vec![send(1, Message::StealReply { victim: Some(2) })]
    );
    // A thief's result reaches the gateway: Coverage goes to the origin.
    assert_eq!(g.on_message(t(5), 3, &result(f1, 8)), Ok(Verdict::Accept));
    assert_eq!(
        drain_gw(&mut g, t(5)),
        vec![send(1, Message::Coverage { frame: f1, tile: 8 })]
    );
}

#[test]
fn wst_victim_lends_from_the_tail_and_takes_back_lost_tiles() {
    let mut e = Edge::new(config(Policy::Wst), 1, t(0));
    e.on_connected(t(0), GATEWAY);
    drain_edge(&mut e, t(0));
    let f = e.submit_frame(t(1)).unwrap();
    let a = drain_edge(&mut e, t(1));
    assert_eq!(
        a[0],
        send(GATEWAY, Message::Register { frame: f, tiles: 9 })
    );
    let w0 = Work::Tile {
        frame: f,
        tile: 0,
        mode: Mode::Plain,
    };
    assert_eq!(a[1], Action::Compute(w0), "the owner starts at the head");
    // Thief 5 takes the tail; thief 6 the next one.
    e.on_message(t(2), 5, &Message::StealTask).unwrap();
    e.on_message(t(2), 6, &Message::StealTask).unwrap();
    let lent: Vec<_> = drain_edge(&mut e, t(2));
    assert_eq!(
        lent,
        vec![
            Action::SendTask {
                to: 5,
                frame: f,
                tile: 8,
                mode: Mode::Plain
            },
            Action::SendTask {
                to: 6,
                frame: f,
                tile: 7,
                mode: Mode::Plain
            },
        ]
    );
    // Thief 5 disconnects: tile 8 goes back to the head, the owner computes it next.
    e.on_disconnected(t(3), 5);
    e.on_computed(t(4), w0).unwrap();
    let a = drain_edge(&mut e, t(4));
    assert!(a.contains(&Action::Compute(Work::Tile {
        frame: f,
        tile: 8,
        mode: Mode::Plain
    })));
    // Thief 6's tile times out: re-queued at the head (after tile_timeout = 100 ms).
    assert!(e.poll_at().unwrap() <= t(102));
    drain_edge(&mut e, t(102));
    e.on_computed(
        t(103),
        Work::Tile {
            frame: f,
            tile: 8,
            mode: Mode::Plain,
        },
    )
    .unwrap();
    let a = drain_edge(&mut e, t(103));
    assert!(
        a.contains(&Action::Compute(Work::Tile {
            frame: f,
            tile: 7,
            mode: Mode::Plain
        })),
        "{a:?}"
    );
    assert!(e.stats().tiles_redispatched >= 2);
    // FrameDone from the gateway retires the frame; a second one is discarded.
    let done = Message::FrameDone {
        frame: f,
        complete: true,
    };
    assert_eq!(e.on_message(t(200), GATEWAY, &done), Ok(Verdict::Accept));
    assert!(drain_edge(&mut e, t(200)).contains(&Action::FrameComplete { frame: f }));
    assert_eq!(e.on_message(t(201), GATEWAY, &done), Ok(Verdict::Discard));
}

#[test]
fn wst_s_coverage_follows_strip_delivery() {
    let mut g = Gateway::new(config(Policy::WstS), t(0));
    for e in [1, 2] {
        g.on_connected(t(0), e);
    }
    let f = FrameKey::new(1, 0);
    g.on_message(t(1), 1, &Message::Register { frame: f, tiles: 9 })
        .unwrap();
    drain_gw(&mut g, t(1));
    // Tile 0 (level 0): the result alone does not make it covered.
    assert_eq!(g.on_message(t(2), 2, &result(f, 0)), Ok(Verdict::Accept));
    assert_eq!(drain_gw(&mut g, t(2)), vec![]);
    let req = Message::StripRequest {
        frame: f,
        tile: 0,
        sides: 0b0011,
    };
    g.on_message(t(3), 2, &req).unwrap();
    assert_eq!(
        drain_gw(&mut g, t(3)),
        vec![send(
            2,
            Message::Reject {
                code: REJECT_NO_STRIPS
            }
        )]
    );
    let strips = Message::Strips {
        frame: f,
        tile: 0,
        strips: StripsView::EMPTY,
    };
    assert_eq!(g.on_message(t(4), 2, &strips), Ok(Verdict::Accept));
    assert_eq!(g.on_message(t(4), 2, &strips), Ok(Verdict::Discard));
    assert_eq!(
        drain_gw(&mut g, t(4)),
        vec![send(1, Message::Coverage { frame: f, tile: 0 })]
    );
    g.on_message(t(5), 2, &req).unwrap();
    assert_eq!(
        drain_gw(&mut g, t(5)),
        vec![Action::SendStrips {
            to: 2,
            frame: f,
            tile: 0,
            sides: 0b0011
        }]
    );
    // Strips of a level-1 tile do not exist; reserved side bits are refused.
    let bad = Message::Strips {
        frame: f,
        tile: 1,
        strips: StripsView::EMPTY,
    };
    assert!(g.on_message(t(6), 2, &bad).is_err());
    let bad = Message::StripRequest {
        frame: f,
        tile: 0,
        sides: 0x10,
    };
    assert!(g.on_message(t(6), 2, &bad).is_err());
}

/// A WST-S data source (edge 1) with one frame submitted, computing its first tile: the edge,
/// the frame and that work. Checkerboard order, the tiles with most neighbours first within
/// a level (the 3x3 centre, 4, leads), level-0 tiles in Reuse mode (they keep their strips).
fn wst_s_source(cfg: Config) -> (Edge, FrameKey, Work) {
    let mut e = Edge::new(cfg, 1, t(0));
    e.on_connected(t(0), GATEWAY);
    drain_edge(&mut e, t(0));
    let f = e.submit_frame(t(0)).unwrap();
    let mut a = drain_edge(&mut e, t(0));
    let first = Work::Tile {
        frame: f,
        tile: 4,
        mode: Mode::Reuse,
    };
    assert_eq!(a.pop(), Some(Action::Compute(first)));
    (e, f, first)
}

#[test]
fn wst_s_source_reuses_with_local_and_fetched_strips() {
    let (mut e, f, first) = wst_s_source(config(Policy::WstS));
    // Thief 4 steals the tail: level-1 tiles are not ready, so it gets level-0 tile 8.
    e.on_message(t(1), 4, &Message::StealTask).unwrap();
    assert_eq!(
        drain_edge(&mut e, t(1)),
        vec![Action::SendTask {
            to: 4,
            frame: f,
            tile: 8,
            mode: Mode::Reuse
        }]
    );
    let mut now = 2;
    let mut current = first;
    // The owner computes 4, 0, 2, 6 (level 0), then level-1 tile 1 (neighbours 0, 2, 4 local).
    for expect in [0u16, 2, 6, 1, 3] {
        e.on_computed(t(now), current).unwrap();
        let a = drain_edge(&mut e, t(now));
        let Some(Action::Compute(w)) = a.last().copied() else {
            panic!("{a:?}")
        };
        assert_eq!(
            w,
            Work::Tile {
                frame: f,
                tile: expect,
                mode: Mode::Reuse
            }
        );
        current = w;
        now += 1;
    }
    // Tile 1 is done here: the strips of 0 and 4 facing it have no reader left; those facing
    // 5 (not computed yet) are still wanted.
    assert!(!e.strip_wanted(f, 0, Side::Right));
    assert!(!e.strip_wanted(f, 4, Side::Above));
    assert!(e.strip_wanted(f, 2, Side::Below));
    assert!(e.strip_wanted(f, 4, Side::Right));
    // Tile 5 needs 8's strips (computed by the thief, not covered yet): falls back to Plain.
    e.on_computed(t(now), current).unwrap();
    let a = drain_edge(&mut e, t(now));
    assert_eq!(
        a.last(),
        Some(&Action::Compute(Work::Tile {
            frame: f,
            tile: 5,
            mode: Mode::Plain
        }))
    );
    current = Work::Tile {
        frame: f,
        tile: 5,
        mode: Mode::Plain,
    };
    now += 1;
    // Tile 3 done, 5 running Plain: 2's and 4's strips facing 5 stay until 5 is done.
    assert!(!e.strip_wanted(f, 4, Side::Left));
    assert!(e.strip_wanted(f, 2, Side::Below));
    // Another source's frame is not the edge's to judge.
    let other = FrameKey {
        origin: 2,
        number: f.number,
    };
    assert!(e.strip_wanted(other, 0, Side::Right));
    // Coverage for 8 arrives: tile 7 (neighbours 4, 6 local, 8 remote) fetches 8's strip on
    // its left side before running Reuse.
    e.on_message(t(now), GATEWAY, &Message::Coverage { frame: f, tile: 8 })
        .unwrap();
    e.on_computed(t(now), current).unwrap();
    let a = drain_edge(&mut e, t(now));
    assert!(
        a.contains(&send(
            GATEWAY,
            Message::StripRequest {
                frame: f,
                tile: 8,
                sides: 1 << 3
            }
        )),
        "{a:?}"
    );
    assert!(!a.iter().any(|x| matches!(x, Action::Compute(_))));
    let strips = Message::Strips {
        frame: f,
        tile: 8,
        strips: StripsView::EMPTY,
    };
    assert_eq!(
        e.on_message(t(now + 1), GATEWAY, &strips),
        Ok(Verdict::Accept)
    );
    assert_eq!(
        drain_edge(&mut e, t(now + 1)),
        vec![Action::Compute(Work::Tile {
            frame: f,
            tile: 7,
            mode: Mode::Reuse
        })]
    );
    assert_eq!(
        e.on_message(t(now + 2), GATEWAY, &strips),
        Ok(Verdict::Discard)
    );
    // Tile 5 (run Plain) is done: no reader is left for the strips facing it; 4's strip
    // facing 7 (running) is its job's.
    assert!(!e.strip_wanted(f, 2, Side::Below));
    assert!(!e.strip_wanted(f, 4, Side::Right));
    assert!(e.strip_wanted(f, 4, Side::Below));
}

#[test]
fn wst_s_with_local_reuse_moves_no_strips() {
    let mut cfg = config(Policy::WstS);
    cfg.local_reuse = true;
    let (mut e, f, first) = wst_s_source(cfg);
    // A thief gets the tail tile (level-1 tile 7) Plain: it recomputes the overlap instead of
    // fetching strips.
    e.on_message(t(1), 4, &Message::StealTask).unwrap();
    assert_eq!(
        drain_edge(&mut e, t(1)),
        vec![Action::SendTask {
            to: 4,
            frame: f,
            tile: 7,
            mode: Mode::Plain
        }]
    );
    // The owner keeps its level-0 strips (Reuse) and sends none; its level-1 tiles, whose
    // neighbours are all local, run Reuse without fetching anything.
    let mut current = first;
    for (now, expect) in (2..).zip([0u16, 2, 6, 8, 1, 3, 5]) {
        e.on_computed(t(now), current).unwrap();
        let a = drain_edge(&mut e, t(now));
        let moved = a.iter().any(|x| {
            matches!(
                x,
                Action::SendStrips { .. }
                    | Action::Send {
                        msg: Message::StripRequest { .. },
                        ..
                    }
            )
        });
        assert!(!moved, "{a:?}");
        current = Work::Tile {
            frame: f,
            tile: expect,
            mode: Mode::Reuse,
        };
        assert_eq!(a.last(), Some(&Action::Compute(current)));
    }
    // Thieves get every tile Plain, level-0 ones too: strips kept there would have no reader.
    let (mut e, f, _) = wst_s_source(cfg);
    for _ in 0..4 {
        // Thieves take 7, 5, 3, 1 (Plain), then level-0 tile 8.
        e.on_message(t(1), 4, &Message::StealTask).unwrap();
        drain_edge(&mut e, t(1));
    }
    e.on_message(t(1), 4, &Message::StealTask).unwrap();
    assert_eq!(
        drain_edge(&mut e, t(1)),
        vec![Action::SendTask {
            to: 4,
            frame: f,
            tile: 8,
            mode: Mode::Plain
        }]
    );
    // The gateway covers a level-0 tile on its result alone.
    let mut cfg = config(Policy::WstS);
    cfg.local_reuse = true;
    let mut g = Gateway::new(cfg, t(0));
    g.on_connected(t(0), 1);
    g.on_connected(t(0), 2);
    g.on_message(t(1), 1, &Message::Register { frame: f, tiles: 9 })
        .unwrap();
    drain_gw(&mut g, t(1));
    assert_eq!(g.on_message(t(2), 2, &result(f, 0)), Ok(Verdict::Accept));
    assert_eq!(
        drain_gw(&mut g, t(2)),
        vec![send(1, Message::Coverage { frame: f, tile: 0 })]
    );
}

#[test]
fn bodp_splits_layers_and_redispatches_late_stripes() {
    let mut g = Gateway::new(config(Policy::Bodp), t(0));
    for e in [1, 2] {
        g.on_connected(t(0), e);
    }
    let f = FrameKey::new(1, 0);
    let submit = Message::FrameSubmit {
        frame: f,
        input: EMPTY,
    };
    g.on_message(t(1), 1, &submit).unwrap();
    let a = drain_gw(&mut g, t(1));
    let rows = |a: &[Action]| -> Vec<(NodeId, u8, u16, Region)> {
        a.iter()
            .filter_map(|x| match *x {
                Action::SendLayerTask {
                    to,
                    layer,
                    stripe,
                    output,
                    ..
                } => Some((to, layer, stripe, output)),
                _ => None,
            })
            .collect()
    };
    let full = |y0, y1| Region::new(Span::new(0, 64), Span::new(y0, y1));
    assert_eq!(
        rows(&a),
        vec![(1, 0, 0, full(0, 32)), (2, 0, 1, full(32, 64))]
    );
    assert_eq!(g.stripe_region(f, 0, 1), Some(full(32, 64)));
    let lr = |layer, stripe| Message::LayerResult {
        frame: f,
        layer,
        stripe,
        // A result names its stripe's rows (no values: the machines move none).
        output: Tensor {
            region: Region::new(
                Span::new(0, 0),
                Span::new(32 * stripe as u32, 32 * (stripe as u32 + 1)),
            ),
            ..EMPTY
        },
    };
    // Edge 1 answers fast; edge 2 is late: its stripe moves to edge 1.
    assert_eq!(g.on_message(t(11), 1, &lr(0, 0)), Ok(Verdict::Accept));
    assert_eq!(g.on_message(t(11), 1, &lr(0, 0)), Ok(Verdict::Discard));
    assert_eq!(
        g.on_message(t(11), 1, &lr(0, 7)),
        Err(RuntimeError::StripeOutOfRange {
            layer: 0,
            stripe: 7
        })
    );
    assert_eq!(drain_gw(&mut g, t(11)), vec![]);
    let a = drain_gw(&mut g, t(101));
    assert_eq!(rows(&a), vec![(1, 0, 1, full(32, 64))]);
    // The late original and the re-dispatch race; the first wins, the other is discarded.
    assert_eq!(g.on_message(t(105), 2, &lr(0, 1)), Ok(Verdict::Accept));
    assert_eq!(g.on_message(t(110), 1, &lr(0, 1)), Ok(Verdict::Discard));
    let a = drain_gw(&mut g, t(110));
    assert_eq!(a[0], Action::LayerComplete { frame: f, layer: 0 });
    // Layer 1 (the pool, 32 rows): edge 2 answered again, so both share it, biased by the
    // measured speed (edge 1 was ten times faster).
    let r = rows(&a);
    assert_eq!(r.len(), 2, "{a:?}");
    assert!(r[0].3.height() > r[1].3.height(), "{r:?}");
}

#[test]
fn capacities_are_typed_errors() {
    // Frames per source.
    let mut e = Edge::new(config(Policy::Wsh), 1, t(0));
    assert_eq!(e.submit_frame(t(0)), Err(SubmitError::NoGateway));
    e.on_connected(t(0), GATEWAY);
    for _ in 0..MAX_FRAMES_PER_SOURCE {
        e.submit_frame(t(0)).unwrap();
        drain_edge(&mut e, t(0));
    }
    assert_eq!(e.submit_frame(t(0)), Err(SubmitError::TooManyFrames));
    let mut g = Gateway::new(config(Policy::Wst), t(0));
    for _ in 0..MAX_FRAMES_PER_SOURCE {
        g.submit_frame(t(0)).unwrap();
    }
    assert_eq!(g.submit_frame(t(0)), Err(SubmitError::TooManyFrames));
    // Peers.
    let mut g = Gateway::new(config(Policy::Wsh), t(0));
    for p in 1..=MAX_EDGES as NodeId {
        g.on_connected(t(0), p);
    }
    g.on_connected(t(0), 99);
    assert_eq!(g.alive_edges(), MAX_EDGES);
    assert_eq!(
        g.on_message(t(0), 99, &Message::TaskRequest),
        Err(RuntimeError::UnknownPeer { peer: 99 })
    );
    // An undrained action queue refuses new events instead of overflowing.
    let mut busy = None;
    for i in 0..100 {
        if let Err(e) = g.on_message(t(1), 1, &Message::TaskRequest) {
            busy = Some((i, e));
            break;
        }
    }
    assert!(matches!(busy, Some((_, RuntimeError::Busy))), "{busy:?}");
    assert!(!drain_gw(&mut g, t(1)).is_empty());
    assert!(g.on_message(t(1), 1, &Message::TaskRequest).is_ok());
}

#[test]
fn frame_numbers_wrap_and_stale_frames_are_discarded() {
    let mut g = Gateway::new(config(Policy::Wsh), t(0));
    g.on_connected(t(0), 1);
    let submit = |n| Message::FrameSubmit {
        frame: FrameKey::new(1, n),
        input: EMPTY,
    };
    assert_eq!(
        g.on_message(t(1), 1, &submit(u32::MAX)),
        Ok(Verdict::Accept)
    );
    assert_eq!(g.on_message(t(1), 1, &submit(0)), Ok(Verdict::Accept));
    // Far-off or older numbers are not new frames.
    assert_eq!(g.on_message(t(1), 1, &submit(1_000)), Ok(Verdict::Discard));
    assert_eq!(
        g.on_message(t(1), 1, &submit(u32::MAX - 1)),
        Ok(Verdict::Discard)
    );
    // Another peer cannot submit in 1's name.
    g.on_connected(t(1), 2);
    assert!(g.on_message(t(1), 2, &submit(1)).is_err());
    assert_eq!(g.frames_in_flight(), 2);
}

#[test]
fn departed_peer_is_forgotten_and_its_tiles_move() {
    let mut g = Gateway::new(config(Policy::Wsh), t(0));
    g.on_connected(t(0), 1);
    g.on_connected(t(0), 2);
    let f = FrameKey::new(1, 0);
    g.on_message(
        t(0),
        1,
        &Message::FrameSubmit {
            frame: f,
            input: EMPTY,
        },
    )
    .unwrap();
    g.on_message(t(0), 2, &Message::TaskRequest).unwrap();
    drain_gw(&mut g, t(0));
    // Silence is the transport's to judge: without an event, time alone drops nobody.
    let now = 1_500;
    assert!(drain_gw(&mut g, t(now)).is_empty());
    assert_eq!(g.alive_edges(), 2);
    g.on_disconnected(t(now), 2);
    assert_eq!(g.alive_edges(), 1);
    assert_eq!(
        g.on_message(t(now), 2, &Message::TaskRequest),
        Err(RuntimeError::UnknownPeer { peer: 2 })
    );
    // Tile 0 (lent to 2) is handed to edge 1.
    g.on_message(t(now), 1, &Message::TaskRequest).unwrap();
    assert_eq!(
        drain_gw(&mut g, t(now)),
        vec![Action::SendTask {
            to: 1,
            frame: f,
            tile: 0,
            mode: Mode::Plain
        }]
    );
}

/// A random message from a random peer.
fn arb_msg() -> impl Strategy<Value = (NodeId, Message<'static>)> {
    let frame =
        (0u16..4, prop_oneof![0u32..3, Just(u32::MAX)]).prop_map(|(o, n)| FrameKey::new(o, n));
    let tile = prop_oneof![0u16..10, Just(u16::MAX)];
    let msg = prop_oneof![
        (0u16..5).prop_map(hello),
        (frame.clone(), 0u16..12).prop_map(|(frame, tiles)| Message::Register { frame, tiles }),
        frame
            .clone()
            .prop_map(|frame| Message::Unregister { frame }),
        Just(Message::StealRequest),
        proptest::option::of(0u16..5).prop_map(|victim| Message::StealReply { victim }),
        Just(Message::StealTask),
        (frame.clone(), tile.clone(), any::<bool>()).prop_map(|(frame, tile, r)| Message::Task {
            frame,
            tile,
            mode: if r { Mode::Reuse } else { Mode::Plain },
            input: EMPTY
        }),
        Just(Message::NoTask),
        Just(Message::TaskRequest),
        (frame.clone(), tile.clone()).prop_map(|(f, t)| result(f, t)),
        (frame.clone(), tile.clone()).prop_map(|(frame, tile)| Message::Strips {
            frame,
            tile,
            strips: StripsView::EMPTY
        }),
        (frame.clone(), tile.clone(), any::<u8>())
            .prop_map(|(frame, tile, sides)| Message::StripRequest { frame, tile, sides }),
        (frame.clone(), tile.clone()).prop_map(|(frame, tile)| Message::Coverage { frame, tile }),
        frame.clone().prop_map(|frame| Message::FrameSubmit {
            frame,
            input: EMPTY
        }),
        (frame.clone(), any::<bool>())
            .prop_map(|(frame, complete)| Message::FrameDone { frame, complete }),
        (frame.clone(), 0u8..5, 0u16..20).prop_map(|(frame, layer, stripe)| Message::LayerTask {
            frame,
            layer,
            stripe,
            output: Region::new(Span::new(0, 64), Span::new(0, 8)),
            input: EMPTY
        }),
        (frame.clone(), 0u8..5, 0u16..20).prop_map(|(frame, layer, stripe)| {
            Message::LayerResult {
                frame,
                layer,
                stripe,
                output: EMPTY,
            }
        }),
        Just(Message::Heartbeat),
        any::<u16>().prop_map(|code| Message::Reject { code }),
    ];
    (0u16..5, msg)
}

#[derive(Clone, Debug)]
enum Step {
    Msg(NodeId, Message<'static>),
    Tick(u64),
    Computed,
    Submit,
    Disconnect(NodeId),
    Connect(NodeId),
    /// The gateway's driver made (or gave up on) the oldest complete frame's result.
    Confirm(bool),
}

fn arb_steps() -> impl Strategy<Value = Vec<Step>> {
    proptest::collection::vec(
        prop_oneof![
            6 => arb_msg().prop_map(|(p, m)| Step::Msg(p, m)),
            1 => (0u64..300).prop_map(Step::Tick),
            1 => Just(Step::Computed),
            1 => Just(Step::Submit),
            1 => (0u16..5).prop_map(Step::Disconnect),
            1 => (0u16..5).prop_map(Step::Connect),
            1 => any::<bool>().prop_map(Step::Confirm),
        ],
        0..80,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever peers send, in whatever order, nodes answer with values, never a panic, and
    /// keep their queues bounded.
    #[test]
    fn random_streams_never_panic(
        policy in 0usize..Policy::ALL.len(),
        confirm_done in any::<bool>(),
        steps in arb_steps(),
    ) {
        let policy = Policy::ALL[policy];
        let mut cfg = config(policy);
        cfg.confirm_done = confirm_done;
        let mut g = Gateway::new(cfg, t(0));
        let mut complete: Vec<FrameKey> = Vec::new();
        let mut e = Edge::new(cfg, 1, t(0));
        e.on_connected(t(0), GATEWAY);
        let mut now = 0;
        let mut gw_work: Option<Work> = None;
        let mut edge_work: Option<Work> = None;
        for step in steps {
            match step {
                Step::Msg(from, m) => {
                    let _ = g.on_message(t(now), from, &m);
                    let _ = e.on_message(t(now), from, &m);
                }
                Step::Tick(ms) => now += ms,
                Step::Computed => {
                    if let Some(w) = gw_work.take() {
                        let _ = g.on_computed(t(now), w);
                    }
                    if let Some(w) = edge_work.take() {
                        let _ = e.on_computed(t(now), w);
                    }
                }
                Step::Submit => {
                    let _ = g.submit_frame(t(now));
                    let _ = e.submit_frame(t(now));
                }
                Step::Disconnect(p) => {
                    g.on_disconnected(t(now), p);
                    e.on_disconnected(t(now), p);
                }
                Step::Connect(p) => {
                    g.on_connected(t(now), p);
                    e.on_connected(t(now), p);
                }
                Step::Confirm(ok) => {
                    if !complete.is_empty() {
                        let f = complete.remove(0);
                        prop_assert_eq!(g.frame_done(t(now), f, ok), Ok(confirm_done));
                    }
                }
            }
            for a in drain_gw(&mut g, t(now)) {
                match a {
                    Action::Compute(w) => {
                        prop_assert!(gw_work.is_none(), "gateway computes twice");
                        gw_work = Some(w);
                    }
                    Action::FrameComplete { frame } => complete.push(frame),
                    _ => {}
                }
            }
            for a in drain_edge(&mut e, t(now)) {
                if let Action::Compute(w) = a {
                    prop_assert!(edge_work.is_none(), "edge computes twice");
                    edge_work = Some(w);
                }
            }
            prop_assert!(
                g.frames_in_flight() + g.frames_awaiting_done()
                    <= tessera_core::runtime::MAX_GATEWAY_FRAMES
            );
            // Every complete frame not yet confirmed waits (and only with confirm_done).
            if confirm_done {
                prop_assert!(g.frames_awaiting_done() >= complete.len());
            } else {
                prop_assert_eq!(g.frames_awaiting_done(), 0);
            }
            prop_assert!(e.frames_in_flight() <= MAX_FRAMES_PER_SOURCE);
            if let Some(at) = g.poll_at() {
                prop_assert!(at >= t(now) || at == t(now));
            }
        }
    }
}

#[test]
fn frames_in_flight_at_a_lost_gateway_are_resubmitted_oldest_first() {
    for policy in [Policy::WstS, Policy::Wsh] {
        // A source numbering from a per-start value (here near the wrap).
        let mut e = Edge::with_first_frame(config(policy), 1, t(0), u32::MAX);
        e.on_connected(t(0), GATEWAY);
        let a = e.submit_frame(t(0)).unwrap();
        let b = e.submit_frame(t(0)).unwrap();
        assert_eq!((a.number, b.number), (u32::MAX, 0), "{policy:?}");
        drain_edge(&mut e, t(0));
        // WST-S: the source is computing a tile of `a` (its own queue, from the head).
        let computing = policy == Policy::WstS;
        // The gateway crashes: the frames wait, nothing new is submitted.
        e.on_disconnected(t(10), GATEWAY);
        assert!(drain_edge(&mut e, t(10)).is_empty(), "{policy:?}");
        assert_eq!(e.frames_in_flight(), 2);
        assert_eq!(e.submit_frame(t(11)), Err(SubmitError::NoGateway));
        e.on_disconnected(t(11), GATEWAY);
        assert!(drain_edge(&mut e, t(11)).is_empty());
        // The restarted gateway comes up: both frames start over there, oldest first, with
        // every tile queued again (the old gateway's results are gone).
        e.on_connected(t(20), GATEWAY);
        let again: Vec<Action> = drain_edge(&mut e, t(20))
            .into_iter()
            .filter(|x| !matches!(x, Action::Compute(_)))
            .filter(|x| {
                !matches!(
                    x,
                    Action::Send {
                        msg: Message::StealRequest | Message::TaskRequest,
                        ..
                    }
                )
            })
            .collect();
        let want = if policy == Policy::Wsh {
            vec![
                Action::SubmitFrame { frame: a },
                Action::SubmitFrame { frame: b },
            ]
        } else {
            // Tile 0 of `a` was running when the gateway went: it stays running, so `a`
            // re-registers 8 tiles, `b` all 9.
            let tiles_a = if computing { 8 } else { 9 };
            vec![
                send(
                    GATEWAY,
                    Message::Register {
                        frame: a,
                        tiles: tiles_a,
                    },
                ),
                send(GATEWAY, Message::Register { frame: b, tiles: 9 }),
            ]
        };
        assert_eq!(again, want, "{policy:?}");
        // A second up event changes nothing; new frames flow with new numbers.
        e.on_connected(t(21), GATEWAY);
        assert!(drain_edge(&mut e, t(21)).is_empty(), "{policy:?}");
        let c = e.submit_frame(t(22)).unwrap();
        assert_eq!(c.number, 1);
        // Their deadlines still run: they fail at the source if the gateway cannot finish them.
        let late = t(22) + config(policy).frame_deadline + config(policy).tile_timeout;
        let failed = drain_edge(&mut e, late)
            .into_iter()
            .filter(|x| matches!(x, Action::FrameFailed { .. }))
            .count();
        assert_eq!(failed, 3, "{policy:?}");
    }
}

#[test]
fn a_restarted_edge_rejoins_the_gateway() {
    let mut g = Gateway::new(config(Policy::Wsh), t(0));
    g.on_connected(t(0), 1);
    g.on_connected(t(0), 2);
    g.submit_frame(t(0)).unwrap();
    g.on_message(t(0), 2, &Message::TaskRequest).unwrap();
    let lent = drain_gw(&mut g, t(0));
    assert!(
        matches!(lent[..], [Action::SendTask { to: 2, tile: 0, .. }]),
        "{lent:?}"
    );
    // Edge 2 dies and comes back with the same id before the tile times out.
    g.on_disconnected(t(5), 2);
    g.on_connected(t(6), 2);
    assert_eq!(g.alive_edges(), 2);
    // Its old tile went back to the queue; the new incarnation gets work again.
    g.on_message(t(7), 2, &Message::TaskRequest).unwrap();
    let again = drain_gw(&mut g, t(7));
    assert!(
        matches!(again[..], [Action::SendTask { to: 2, tile: 0, .. }]),
        "{again:?}"
    );
}

/// An idle thief turned away by a gateway with nothing to offer asks less and less often (up to
/// `MAX_IDLE_BACKOFF`), and a `Register` notice brings it back at once.
#[test]
fn an_idle_thief_backs_off_until_work_appears() {
    let cfg = config(Policy::Wst);
    let mut e = Edge::new(cfg, 1, t(0));
    e.on_connected(t(0), GATEWAY);
    assert_eq!(
        drain_edge(&mut e, t(0)),
        vec![send(GATEWAY, Message::StealRequest)]
    );
    let none = Message::StealReply { victim: None };
    let mut now = t(0);
    let mut waits = Vec::new();
    for _ in 0..12 {
        assert_eq!(e.on_message(now, GATEWAY, &none), Ok(Verdict::Accept));
        assert!(drain_edge(&mut e, now).is_empty());
        let at = e.poll_at().expect("a backing-off thief has a timer");
        waits.push(at.saturating_duration_since(now).total_micros());
        // Nothing before the timer; the request at it.
        assert!(drain_edge(&mut e, Instant::from_micros(at.total_micros() - 1)).is_empty());
        now = at;
        assert_eq!(
            drain_edge(&mut e, now),
            vec![send(GATEWAY, Message::StealRequest)]
        );
    }
    assert_eq!(waits[0], cfg.steal_backoff.total_micros());
    assert!(waits.windows(2).all(|w| w[1] >= w[0]), "{waits:?}");
    assert_eq!(*waits.last().unwrap(), MAX_IDLE_BACKOFF.total_micros());
    // Work appears: the gateway's notice ends the wait and the next empty answer starts short.
    assert_eq!(e.on_message(now, GATEWAY, &none), Ok(Verdict::Accept));
    let notice = Message::Register {
        frame: FrameKey::new(2, 0),
        tiles: 1,
    };
    assert_eq!(e.on_message(now, GATEWAY, &notice), Ok(Verdict::Accept));
    assert_eq!(
        drain_edge(&mut e, now),
        vec![send(GATEWAY, Message::StealRequest)]
    );
    assert_eq!(e.on_message(now, GATEWAY, &none), Ok(Verdict::Accept));
    assert_eq!(
        e.poll_at().map(|at| at.saturating_duration_since(now)),
        Some(cfg.steal_backoff)
    );
}

/// The gateway's `Register` notice goes to every thief it turned away, naming a frame that
/// thief may steal from (never its own), whatever order the frames registered in.
#[test]
fn a_work_notice_names_a_frame_the_thief_may_steal() {
    let mut g = Gateway::new(config(Policy::Wst), t(0));
    for p in [1, 2] {
        g.on_connected(t(0), p);
    }
    let _ = drain_gw(&mut g, t(0));
    // Both ask while nothing is registered: both turned away.
    for p in [1, 2] {
        assert_eq!(
            g.on_message(t(1), p, &Message::StealRequest),
            Ok(Verdict::Accept)
        );
    }
    assert_eq!(
        drain_gw(&mut g, t(1)),
        vec![
            send(1, Message::StealReply { victim: None }),
            send(2, Message::StealReply { victim: None }),
        ]
    );
    // Edge 1 registers a frame: edge 2 hears of it, edge 1 (its source) does not.
    let f1 = FrameKey::new(1, 0);
    let reg = |frame| Message::Register { frame, tiles: 9 };
    assert_eq!(g.on_message(t(2), 1, &reg(f1)), Ok(Verdict::Accept));
    assert_eq!(
        drain_gw(&mut g, t(2)),
        vec![send(
            2,
            Message::Register {
                frame: f1,
                tiles: 1
            }
        )]
    );
    // Edge 2 registers one: edge 1, still hungry, hears of edge 2's frame, not of its own.
    let f2 = FrameKey::new(2, 0);
    assert_eq!(g.on_message(t(3), 2, &reg(f2)), Ok(Verdict::Accept));
    assert_eq!(
        drain_gw(&mut g, t(3)),
        vec![send(
            1,
            Message::Register {
                frame: f2,
                tiles: 1
            }
        )]
    );
}

/// Runs every tile of WSH frame `f` at worker 2 up to (not including) the `FrameComplete`.
fn wsh_run_all_but_last(g: &mut Gateway, f: FrameKey, at: u64) {
    let submit = Message::FrameSubmit {
        frame: f,
        input: EMPTY,
    };
    assert_eq!(g.on_message(t(at), 1, &submit), Ok(Verdict::Accept));
    drain_gw(g, t(at));
    for tile in 0..8 {
        g.on_message(t(at), 2, &Message::TaskRequest).unwrap();
        drain_gw(g, t(at));
        assert_eq!(
            g.on_message(t(at), 2, &result(f, tile)),
            Ok(Verdict::Accept)
        );
        drain_gw(g, t(at));
    }
    g.on_message(t(at), 2, &Message::TaskRequest).unwrap();
    drain_gw(g, t(at));
}

#[test]
fn with_confirm_done_the_source_hears_done_only_after_the_driver_has_the_result() {
    let mut c = config(Policy::Wsh);
    c.confirm_done = true;
    let mut g = Gateway::new(c, t(0));
    g.on_connected(t(0), 1);
    g.on_connected(t(0), 2);
    let f = FrameKey::new(1, 0);
    wsh_run_all_but_last(&mut g, f, 1);
    assert_eq!(g.on_message(t(2), 2, &result(f, 8)), Ok(Verdict::Accept));
    // All tiles in: the driver gets the frame, the source hears nothing yet.
    assert_eq!(
        drain_gw(&mut g, t(2)),
        vec![Action::FrameComplete { frame: f }]
    );
    assert_eq!((g.frames_in_flight(), g.frames_awaiting_done()), (0, 1));
    // A re-submission (the source reconnected meanwhile) is no new frame.
    let submit = Message::FrameSubmit {
        frame: f,
        input: EMPTY,
    };
    assert_eq!(g.on_message(t(3), 1, &submit), Ok(Verdict::Discard));
    // The driver made the result: now the source is told.
    assert_eq!(g.frame_done(t(4), f, true), Ok(true));
    assert_eq!(
        drain_gw(&mut g, t(4)),
        vec![send(
            1,
            Message::FrameDone {
                frame: f,
                complete: true
            }
        )]
    );
    assert_eq!(g.frames_awaiting_done(), 0);
    // Once only; an unknown frame is not waiting.
    assert_eq!(g.frame_done(t(5), f, true), Ok(false));
    assert_eq!(g.frame_done(t(5), FrameKey::new(1, 7), true), Ok(false));
    assert!(drain_gw(&mut g, t(5)).is_empty());
}

#[test]
fn a_confirmed_done_waits_for_its_source_to_reconnect_until_the_deadline() {
    let mut c = config(Policy::Wsh);
    c.confirm_done = true;
    c.frame_deadline = Duration::from_millis(1_000);
    let mut g = Gateway::new(c, t(0));
    g.on_connected(t(0), 1);
    g.on_connected(t(0), 2);
    let (f0, f1) = (FrameKey::new(1, 0), FrameKey::new(1, 1));
    for (f, at) in [(f0, 1), (f1, 2)] {
        wsh_run_all_but_last(&mut g, f, at);
        g.on_message(t(at), 2, &result(f, 8)).unwrap();
        drain_gw(&mut g, t(at));
    }
    g.on_disconnected(t(3), 1);
    // Confirmed while the source is away: kept, not sent to nobody.
    assert_eq!(g.frame_done(t(4), f0, true), Ok(true));
    assert_eq!(g.frame_done(t(4), f1, false), Ok(true));
    assert!(drain_gw(&mut g, t(4)).is_empty());
    assert_eq!(g.frames_awaiting_done(), 2);
    // It comes back: both are told at once, in the order they were confirmed.
    g.on_connected(t(5), 1);
    let a = drain_gw(&mut g, t(5));
    assert!(a.contains(&send(
        1,
        Message::FrameDone {
            frame: f0,
            complete: true
        }
    )));
    assert!(a.contains(&send(
        1,
        Message::FrameDone {
            frame: f1,
            complete: false
        }
    )));
    assert_eq!(g.frames_awaiting_done(), 0);
    // A source that never returns: the confirmed entry goes at the frame's deadline.
    let f2 = FrameKey::new(1, 2);
    wsh_run_all_but_last(&mut g, f2, 6);
    g.on_message(t(6), 2, &result(f2, 8)).unwrap();
    drain_gw(&mut g, t(6));
    g.on_disconnected(t(7), 1);
    assert_eq!(g.frame_done(t(8), f2, true), Ok(true));
    assert_eq!(g.poll_at(), Some(t(1_006)));
    assert!(drain_gw(&mut g, t(1_006)).is_empty());
    assert_eq!(g.frames_awaiting_done(), 0);
}

#[test]
fn frames_awaiting_done_hold_their_slots_so_the_backlog_is_bounded() {
    let mut c = config(Policy::Wst);
    c.confirm_done = true;
    let mut g = Gateway::new(c, t(0));
    // The gateway's own frames: complete them by computing (no edge: fallback).
    let mut keys = Vec::new();
    while let Ok(k) = g.submit_frame(t(0)) {
        keys.push(k);
    }
    assert_eq!(keys.len(), MAX_FRAMES_PER_SOURCE);
    let mut completed = Vec::new();
    for _ in 0..1000 {
        let mut any = false;
        for a in drain_gw(&mut g, t(1)) {
            any = true;
            match a {
                Action::Compute(w) => {
                    g.on_computed(t(1), w).unwrap();
                }
                Action::FrameComplete { frame } => completed.push(frame),
                _ => {}
            }
        }
        if !any {
            break;
        }
    }
    assert_eq!(completed.len(), MAX_FRAMES_PER_SOURCE);
    assert_eq!(g.frames_awaiting_done(), MAX_FRAMES_PER_SOURCE);
    // No result made yet: no room for a new frame.
    assert_eq!(g.submit_frame(t(2)), Err(SubmitError::TooManyFrames));
    assert_eq!(g.frame_done(t(3), completed[0], true), Ok(true));
    assert!(drain_gw(&mut g, t(3)).is_empty(), "own frames tell nobody");
    assert!(g.submit_frame(t(4)).is_ok());
}

#[test]
fn a_steal_reply_after_its_request_timed_out_is_discarded_not_refused() {
    // Under loss a victim's Task can come after the thief's request timed out: it is dropped
    // quietly (the victim's tile timeout covers the tile) instead of as a protocol error,
    // which cost the connection and every message queued on it.
    let mut e = Edge::new(config(Policy::Wst), 1, t(0));
    let f = FrameKey::new(2, 0);
    e.on_connected(t(0), GATEWAY);
    e.on_connected(t(0), 2);
    assert_eq!(
        drain_edge(&mut e, t(0)),
        vec![send(GATEWAY, Message::StealRequest)]
    );
    let reply = Message::StealReply { victim: Some(2) };
    assert_eq!(e.on_message(t(1), GATEWAY, &reply), Ok(Verdict::Accept));
    assert_eq!(drain_edge(&mut e, t(1)), vec![send(2, Message::StealTask)]);
    // The request times out (tile_timeout 100 ms); the thief asks the gateway again.
    assert_eq!(
        drain_edge(&mut e, t(200)),
        vec![send(GATEWAY, Message::StealRequest)]
    );
    assert_eq!(e.on_message(t(250), 2, &task(f, 4)), Ok(Verdict::Discard));
    assert_eq!(drain_edge(&mut e, t(250)), vec![]);
    // One request, one reply: a second Task from 2 was never asked for.
    assert!(matches!(
        e.on_message(t(260), 2, &task(f, 5)),
        Err(RuntimeError::Unexpected {
            peer: 2,
            kind: Kind::Task
        })
    ));
    // A node never asked stays refused.
    assert!(e.on_message(t(260), 3, &task(f, 6)).is_err());
}

#[test]
fn an_own_reuse_tile_whose_job_failed_is_computed_again_plain() {
    let mut e = Edge::new(config(Policy::WstS), 1, t(0));
    e.on_connected(t(0), GATEWAY);
    let _ = drain_edge(&mut e, t(0));
    let f = e.submit_frame(t(1)).unwrap();
    let first = drain_edge(&mut e, t(1))
        .into_iter()
        .find_map(|a| match a {
            Action::Compute(w) => Some(w),
            _ => None,
        })
        .expect("the source computes a tile of its own frame");
    let Work::Tile { tile, mode, .. } = first else {
        panic!("{first:?}");
    };
    assert_eq!(mode, Mode::Reuse, "WST-S computes with reuse");
    // The model refused the job (a strip went missing): Plain from the tile's input.
    e.on_compute_failed(t(2));
    let plain = Work::Tile {
        frame: f,
        tile,
        mode: Mode::Plain,
    };
    assert_eq!(drain_edge(&mut e, t(2)), vec![Action::Compute(plain)]);
    assert_eq!(e.stats().plain_fallbacks, 1);
    // Plain fails too: the edge gives the work up instead of computing forever.
    e.on_compute_failed(t(3));
    assert_eq!(e.on_computed(t(4), plain), Err(RuntimeError::NotComputing));
}
