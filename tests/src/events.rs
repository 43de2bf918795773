//! The event loop of in-memory clusters: a virtual clock with its queue of scheduled events
//! ([`EventQueue`]) and the loop that drives a [`World`] of sans-IO machines on it ([`run`]).
//!
//! The clock jumps to the earliest of the next scheduled event and the earliest time a machine
//! asked to be polled at; events due at the same instant are handled in the order they were
//! scheduled. Nothing depends on the host's speed: a run is a function of its inputs.

use std::collections::BTreeMap;

/// A virtual clock (µs) and the events scheduled on it.
#[derive(Debug)]
pub struct EventQueue<E> {
    /// The current virtual time (µs); moves forward only through [`run`] and the `pop_*` calls,
    /// or when a world sets it on purpose.
    pub now: u64,
    seq: u64,
    events: BTreeMap<(u64, u64), E>,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue {
            now: 0,
            seq: 0,
            events: BTreeMap::new(),
        }
    }
}

impl<E> EventQueue<E> {
    /// An empty queue at time 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Schedules `ev` at `t` (after every event already scheduled at `t`).
    pub fn at(&mut self, t: u64, ev: E) {
        self.seq += 1;
        self.events.insert((t, self.seq), ev);
    }

    /// Events scheduled so far (a counter some worlds mix into their pseudo-random choices).
    pub fn scheduled(&self) -> u64 {
        self.seq
    }

    /// When the next scheduled event is due.
    pub fn next_at(&self) -> Option<u64> {
        self.events.keys().next().map(|k| k.0)
    }

    /// The next event due at or before `t`, the clock moved (forward) to its time.
    pub fn pop_until(&mut self, t: u64) -> Option<E> {
        let entry = self.events.first_entry().filter(|e| e.key().0 <= t)?;
        self.now = self.now.max(entry.key().0);
        Some(entry.remove())
    }

    /// The next event due now.
    pub fn pop_due(&mut self) -> Option<E> {
        self.pop_until(self.now)
    }
}

/// Machines, their links and whatever a test records, driven by [`run`].
pub trait World {
    /// What can be scheduled: a delivery, the end of a computation, a fault...
    type Event;

    /// The world's clock and queue.
    fn queue(&mut self) -> &mut EventQueue<Self::Event>;

    /// Handles an event due now.
    fn handle(&mut self, ev: Self::Event);

    /// Polls the machines that are due (called before every step and after the step's events).
    fn poll(&mut self);

    /// The earliest time a machine asked to be polled at.
    fn poll_at(&self) -> Option<u64>;

    /// True when the test has seen what it waits for (the run stops).
    fn done(&self) -> bool {
        false
    }
}

/// Why [`run`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// [`World::done`] said so.
    Done,
    /// Nothing is scheduled and no machine wants a poll.
    Idle,
    /// The next thing to happen is after the time limit (at the time given).
    Limit(u64),
    /// The step budget ran out (a world that never settles).
    Steps,
}

/// Runs `world` until it is done, idle, its next step lies past `until` (µs), or `max_steps`
/// clock jumps were made.
pub fn run<W: World>(world: &mut W, until: u64, max_steps: usize) -> Stop {
    for _ in 0..max_steps {
        world.poll();
        if world.done() {
            return Stop::Done;
        }
        let next = match (world.queue().next_at(), world.poll_at()) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => match a.or(b) {
                Some(t) => t,
                None => return Stop::Idle,
            },
        };
        if next > until {
            return Stop::Limit(next);
        }
        let q = world.queue();
        q.now = q.now.max(next);
        while let Some(ev) = world.queue().pop_due() {
            world.handle(ev);
        }
    }
    Stop::Steps
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A machine that wants a poll every 10 µs and counts them, plus events.
    struct Ticker {
        q: EventQueue<&'static str>,
        polls: Vec<u64>,
        seen: Vec<(u64, &'static str)>,
        next_poll: u64,
    }

    impl World for Ticker {
        type Event = &'static str;
        fn queue(&mut self) -> &mut EventQueue<&'static str> {
            &mut self.q
        }
        fn handle(&mut self, ev: &'static str) {
            self.seen.push((self.q.now, ev));
        }
        fn poll(&mut self) {
            if self.q.now >= self.next_poll {
                self.polls.push(self.q.now);
                self.next_poll = self.q.now + 10;
            }
        }
        fn poll_at(&self) -> Option<u64> {
            (self.next_poll <= 30).then_some(self.next_poll)
        }
        fn done(&self) -> bool {
            self.seen.len() == 3
        }
    }

    #[test]
    fn events_in_time_then_scheduling_order_and_polls_between() {
        let mut w = Ticker {
            q: EventQueue::new(),
            polls: vec![],
            seen: vec![],
            next_poll: 0,
        };
        w.q.at(15, "b");
        w.q.at(5, "a");
        w.q.at(15, "c");
        assert_eq!(run(&mut w, 100, 1000), Stop::Done);
        assert_eq!(w.seen, vec![(5, "a"), (15, "b"), (15, "c")]);
        assert_eq!(w.polls, vec![0, 10]);
        w.q.at(50, "d");
        w.seen.clear();
        assert_eq!(run(&mut w, 40, 1000), Stop::Limit(50));
        assert_eq!(w.polls, vec![0, 10, 20, 30]);
        assert_eq!(run(&mut w, 100, 1000), Stop::Idle);
        assert_eq!(w.seen, vec![(50, "d")]);
        w.q.at(60, "e");
        assert_eq!(run(&mut w, 100, 0), Stop::Steps);
    }
}
