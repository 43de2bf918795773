//! The bounded queue of a machine's pending actions.

use heapless::Deque;

use crate::wire::{Message, NodeId};

use super::{Action, ACTION_QUEUE};

/// The bounded queue of pending actions.
pub(crate) struct Actions {
    q: Deque<Action, ACTION_QUEUE>,
}

/// Worst-case actions one event may queue; events refuse to start with less room.
pub(crate) const EVENT_BUDGET: usize = 40;

impl Actions {
    pub(crate) const fn new() -> Self {
        Actions { q: Deque::new() }
    }
    pub(crate) fn push(&mut self, a: Action) {
        // Events check `room()` first, so this never overflows; if it did, dropping an action
        // is recovered by the timeouts (never a panic).
        let _ = self.q.push_back(a);
    }
    pub(crate) fn pop(&mut self) -> Option<Action> {
        self.q.pop_front()
    }
    pub(crate) fn room(&self) -> bool {
        ACTION_QUEUE - self.q.len() >= EVENT_BUDGET
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.q.is_empty()
    }
    pub(crate) fn send(&mut self, to: NodeId, msg: Message<'static>) {
        self.push(Action::Send { to, msg });
    }
}
