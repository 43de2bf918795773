//! How a WST data source paces its own tiles by the gateway's receipts
//! (`Config::results_ahead`) and how a thief asks for its next tile before it runs dry
//! (`Config::prefetch`).

use tessera_core::ftp::{FusedStack, Grid, Mode, Partition};
use tessera_core::model::Shape;
use tessera_core::runtime::{Action, Config, Edge, Verdict, Work};
use tessera_core::time::{Duration, Instant};
use tessera_core::wire::{FrameKey, Message, Policy, GATEWAY};
use tessera_testkit::{conv, network, pool};

fn config(policy: Policy) -> Config {
    let n = network(Shape::new(64, 64, 3), [conv(4, 3), pool(), conv(8, 3)]);
    let stack = FusedStack::new(&n, 3).unwrap();
    let grid = Grid::new(3, 3, Partition::Darknet, &stack).unwrap();
    let mut c = Config::new(policy, &stack, grid);
    c.tile_timeout = Duration::from_millis(100);
    c
}

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn drain(e: &mut Edge, now: Instant) -> Vec<Action> {
    std::iter::from_fn(|| e.poll(now)).collect()
}

fn computes(a: &[Action]) -> Vec<Work> {
    a.iter()
        .filter_map(|x| match x {
            Action::Compute(w) => Some(*w),
            _ => None,
        })
        .collect()
}

fn plain(frame: FrameKey, tile: u16) -> Work {
    Work::Tile {
        frame,
        tile,
        mode: Mode::Plain,
    }
}

#[test]
fn a_source_two_results_ahead_leaves_its_tiles_to_thieves_until_a_receipt() {
    let mut cfg = config(Policy::Wst);
    cfg.results_ahead = 2;
    let mut e = Edge::new(cfg, 1, t(0));
    e.on_connected(t(0), GATEWAY);
    drain(&mut e, t(0));
    let f = e.submit_frame(t(1)).unwrap();
    assert_eq!(computes(&drain(&mut e, t(1))), vec![plain(f, 0)]);
    // One result out, unconfirmed: the owner goes on.
    e.on_computed(t(2), plain(f, 0)).unwrap();
    let a = drain(&mut e, t(2));
    assert!(a.contains(&Action::SendResult {
        to: GATEWAY,
        frame: f,
        tile: 0
    }));
    assert_eq!(computes(&a), vec![plain(f, 1)]);
    // Two unconfirmed: it stops (and does not steal elsewhere either) ...
    e.on_computed(t(3), plain(f, 1)).unwrap();
    let a = drain(&mut e, t(3));
    assert!(computes(&a).is_empty(), "{a:?}");
    assert!(!a.iter().any(|x| matches!(
        x,
        Action::Send {
            msg: Message::StealRequest,
            ..
        }
    )));
    // ... while a thief still gets the tail.
    e.on_message(t(4), 2, &Message::StealTask).unwrap();
    assert_eq!(
        drain(&mut e, t(4)),
        vec![Action::SendTask {
            to: 2,
            frame: f,
            tile: 8,
            mode: Mode::Plain
        }]
    );
    // The thief's result is covered: not this node's uplink, still held back.
    let cover = |tile| Message::Coverage { frame: f, tile };
    assert_eq!(e.on_message(t(5), GATEWAY, &cover(8)), Ok(Verdict::Accept));
    assert!(computes(&drain(&mut e, t(5))).is_empty());
    // The gateway confirms tile 0: the owner computes its next tile.
    assert_eq!(e.on_message(t(6), GATEWAY, &cover(0)), Ok(Verdict::Accept));
    assert_eq!(computes(&drain(&mut e, t(6))), vec![plain(f, 2)]);
}

#[test]
fn without_the_limit_a_source_computes_ahead_of_its_receipts() {
    let mut e = Edge::new(config(Policy::Wst), 1, t(0));
    e.on_connected(t(0), GATEWAY);
    drain(&mut e, t(0));
    let f = e.submit_frame(t(1)).unwrap();
    drain(&mut e, t(1));
    for tile in 0..8 {
        e.on_computed(t(2 + tile as u64), plain(f, tile)).unwrap();
        assert_eq!(
            computes(&drain(&mut e, t(2 + tile as u64))),
            vec![plain(f, tile + 1)]
        );
    }
}

#[test]
fn a_prefetching_thief_asks_one_round_trip_before_its_tile_should_be_done() {
    let mut cfg = config(Policy::Wst);
    cfg.prefetch = true;
    let mut e = Edge::new(cfg, 2, t(0));
    e.on_connected(t(0), GATEWAY);
    e.on_connected(t(0), 1);
    let f = FrameKey::new(1, 0);
    let steal = Action::Send {
        to: GATEWAY,
        msg: Message::StealRequest,
    };
    assert_eq!(drain(&mut e, t(0)), vec![steal]);
    let round_trip = |e: &mut Edge, now: u64, tile: u16| {
        let reply = Message::StealReply { victim: Some(1) };
        e.on_message(t(now), GATEWAY, &reply).unwrap();
        assert_eq!(
            drain(e, t(now)),
            vec![Action::Send {
                to: 1,
                msg: Message::StealTask
            }]
        );
        let task = Message::TileTask {
            frame: f,
            tile,
            mode: Mode::Plain,
        };
        assert_eq!(e.on_message(t(now + 1), 1, &task), Ok(Verdict::Accept));
        drain(e, t(now + 1))
    };
    // The first tile: nothing timed yet, so no request while it computes.
    assert_eq!(round_trip(&mut e, 1, 8), vec![Action::Compute(plain(f, 8))]);
    assert_eq!(e.poll_at(), None);
    // 8 took 8 ms; the idle thief asks, and 7 comes 2 ms later.
    e.on_computed(t(10), plain(f, 8)).unwrap();
    assert_eq!(
        drain(&mut e, t(10)),
        vec![
            Action::SendResult {
                to: GATEWAY,
                frame: f,
                tile: 8
            },
            steal
        ]
    );
    assert_eq!(
        round_trip(&mut e, 11, 7),
        vec![Action::Compute(plain(f, 7))]
    );
    // The next request goes 2 ms before 7 should be done (started at 12: t = 18).
    assert_eq!(e.poll_at(), Some(t(18)));
    assert_eq!(drain(&mut e, t(17)), vec![]);
    assert_eq!(drain(&mut e, t(18)), vec![steal]);
    // Tile 6 arrives while 7 computes: it waits, and no third is asked for.
    assert_eq!(round_trip(&mut e, 19, 6), vec![]);
    assert_eq!(e.poll_at(), None);
    // 7 done: 6 starts without a round trip.
    e.on_computed(t(21), plain(f, 7)).unwrap();
    assert_eq!(
        drain(&mut e, t(21)),
        vec![
            Action::SendResult {
                to: GATEWAY,
                frame: f,
                tile: 7
            },
            Action::Compute(plain(f, 6))
        ]
    );
}

#[test]
fn without_prefetch_a_thief_asks_only_when_idle() {
    let mut e = Edge::new(config(Policy::Wst), 2, t(0));
    e.on_connected(t(0), GATEWAY);
    e.on_connected(t(0), 1);
    drain(&mut e, t(0));
    let f = FrameKey::new(1, 0);
    e.on_message(t(1), GATEWAY, &Message::StealReply { victim: Some(1) })
        .unwrap();
    drain(&mut e, t(1));
    let task = Message::TileTask {
        frame: f,
        tile: 8,
        mode: Mode::Plain,
    };
    e.on_message(t(2), 1, &task).unwrap();
    assert_eq!(drain(&mut e, t(2)), vec![Action::Compute(plain(f, 8))]);
}
