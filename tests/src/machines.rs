//! Driving the runtime's state machines by hand: milliseconds as instants, a tensor with no
//! values, draining a machine's actions, a `Send` action.

use tessera_core::region::{Region, Span};
use tessera_core::runtime::{Action, Edge, Gateway};
use tessera_core::time::Instant;
use tessera_core::wire::{Message, NodeId, Precision, Tensor};

/// `ms` milliseconds after the origin.
pub fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

/// A tensor with no values (a task or result whose payload the machines never read).
pub const NO_TENSOR: Tensor<'static> = Tensor {
    region: Region {
        x: Span { start: 0, end: 0 },
        y: Span { start: 0, end: 0 },
    },
    channels: 0,
    data: &[],
    precision: Precision::F32,
};

/// Every action the edge has at `now`.
pub fn drain_edge(e: &mut Edge, now: Instant) -> Vec<Action> {
    std::iter::from_fn(|| e.poll(now)).collect()
}

/// Every action the gateway has at `now`.
pub fn drain_gw(g: &mut Gateway, now: Instant) -> Vec<Action> {
    std::iter::from_fn(|| g.poll(now)).collect()
}

/// The action sending `msg` to `to`.
pub fn send(to: NodeId, msg: Message<'static>) -> Action {
    Action::Send { to, msg }
}
