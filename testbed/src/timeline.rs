//! A scenario's faults as a time-ordered list of actions on processes, nftables rules and
//! CPU quotas (times in µs from the moment every link is up, as in the simulator).

use tessera_core::wire::NodeId;
use tessera_sim::scenario::TestbedFault;
use tessera_sim::world::Fault;

use crate::filter::{rule, Drop, Rule};
use crate::names::Names;

/// One action.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Action {
    /// Rule `k` added.
    Apply(usize),
    /// Rule `k` deleted.
    Remove(usize),
    /// The node's process killed (SIGKILL; its silence rule was applied just before).
    Kill(NodeId),
    /// The node's process started again.
    Start(NodeId),
    /// The node's compute slowed by this factor (quota divided by it).
    Slow(NodeId, f64),
    /// SIGSTOP.
    Freeze(NodeId),
    /// SIGCONT.
    Thaw(NodeId),
}

/// The rules and the actions of a scenario's faults.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    /// Every rule any action names.
    pub rules: Vec<Rule>,
    /// `(µs, action)`, in time order (ties in scenario order).
    pub actions: Vec<(u64, Action)>,
}

impl Timeline {
    fn rule(&mut self, r: Rule, from: u64, until: Option<u64>) {
        let k = self.rules.len();
        self.rules.push(r);
        self.actions.push((from, Action::Apply(k)));
        if let Some(u) = until {
            self.actions.push((u, Action::Remove(k)));
        }
    }

    fn next_id(&self) -> usize {
        self.rules.len()
    }
}

/// Builds the timeline of `faults` and `testbed` in a cell of `nodes` nodes.
pub fn build(names: &Names, nodes: NodeId, faults: &[Fault], testbed: &[TestbedFault]) -> Timeline {
    let mut t = Timeline::default();
    // A crashed node stays silent until restarted: its silence rule's index, per node.
    let mut silent: Vec<(NodeId, usize)> = Vec::new();
    for f in faults {
        match *f {
            Fault::Crash { node, at } => {
                let k = t.next_id();
                t.rule(rule(names, k, node, Drop::Silence), at, None);
                t.actions.push((at, Action::Kill(node)));
                silent.push((node, k));
            }
            Fault::Straggler { node, at, factor } => {
                t.actions.push((at, Action::Slow(node, factor)))
            }
            Fault::Loss {
                from,
                until,
                rate,
                link,
            } => match link {
                Some((a, b)) => {
                    for (x, y) in [(a, b), (b, a)] {
                        let k = t.next_id();
                        let d = Drop::Loss { to: Some(y), rate };
                        t.rule(rule(names, k, x, d), from, Some(until));
                    }
                }
                None => {
                    for x in 0..nodes {
                        let k = t.next_id();
                        let d = Drop::Loss { to: None, rate };
                        t.rule(rule(names, k, x, d), from, Some(until));
                    }
                }
            },
            Fault::LinkDown { a, b, from, until } => {
                for (x, y) in [(a, b), (b, a)] {
                    let k = t.next_id();
                    t.rule(rule(names, k, x, Drop::All { to: y }), from, Some(until));
                }
            }
        }
    }
    for f in testbed {
        match *f {
            TestbedFault::Freeze { node, from, until } => {
                t.actions.push((from, Action::Freeze(node)));
                t.actions.push((until, Action::Thaw(node)));
            }
            TestbedFault::Restart { node, at } => {
                if let Some(i) = silent.iter().position(|&(n, _)| n == node) {
                    let (_, k) = silent.remove(i);
                    t.actions.push((at, Action::Remove(k)));
                }
                t.actions.push((at, Action::Start(node)));
            }
        }
    }
    // Stable: at one instant, a crash's rule goes before its kill, a restart's rule removal
    // before its start.
    t.actions.sort_by_key(|&(at, _)| at);
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_is_silence_then_kill_and_a_restart_lifts_the_silence_first() {
        let names = Names::new("t").unwrap();
        let t = build(
            &names,
            3,
            &[Fault::Crash { node: 2, at: 1_000 }],
            &[TestbedFault::Restart { node: 2, at: 5_000 }],
        );
        assert_eq!(
            t.actions,
            vec![
                (1_000, Action::Apply(0)),
                (1_000, Action::Kill(2)),
                (5_000, Action::Remove(0)),
                (5_000, Action::Start(2)),
            ]
        );
        assert_eq!(t.rules[0].ns, "t-n2");
    }

    #[test]
    fn a_loss_burst_on_every_link_is_one_rule_per_sender() {
        let names = Names::new("t").unwrap();
        let t = build(
            &names,
            3,
            &[Fault::Loss {
                from: 10,
                until: 20,
                rate: 0.1,
                link: None,
            }],
            &[],
        );
        assert_eq!(t.rules.len(), 3);
        assert_eq!(t.actions.len(), 6);
        assert!(t.actions[..3].iter().all(|&(at, _)| at == 10));
    }
}
