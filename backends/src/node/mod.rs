//! The two node processes of a deployed cluster, end to end: what a gateway or an edge loads
//! (only the parameters of the layers it runs), how it starts on the cluster's link, and its
//! main loop until its frames are done or it is asked to stop.
//!
//! The process around it (the `tessera` binary on a device) supplies the cluster
//! ([`Deployment`], from its cluster file), the stop signal, where results go, how frames are
//! read from disk and what is printed: the [`GatewayHost`] and [`EdgeHost`] traits.
//! [`DropLog`] words the link's refusals an operator should hear about.

extern crate alloc;
extern crate std;

mod deployment;
mod drop_log;
mod edge;
mod gateway;
mod set_up;
mod set_up_code;

pub use deployment::{Deployment, SetupError};
pub use drop_log::DropLog;
pub use edge::{run_edge, EdgeEnd, EdgeError, EdgeHost, EdgeRun, EdgeUp, FrameError, SourceCounts};
pub use gateway::{
    run_gateway, GatewayCounts, GatewayEnd, GatewayHost, GatewayRun, GatewayTail, Saved,
};

use alloc::format;
use alloc::string::String;

use tessera_core::wire::datagram::DropReason;

use crate::dgram::DgramStats;
use crate::driver::NodeStats;
use set_up::set_up;
pub use set_up_code::{release_set_up_code, CodeRelease};

/// The link's and the node's counters (and the coded datagrams', when the tail runs on
/// them), for a node's counters line.
pub fn node_counters(s: &NodeStats) -> String {
    let mut line = format!(
        "{} in flight, {} refused, {} sends refused, link {:?}",
        s.frames_in_flight, s.refused, s.sends_refused, s.link
    );
    if let Some(d) = &s.datagrams {
        line += &format!(", datagrams {}", datagram_counters(d));
    }
    line
}

/// A datagram endpoint's counters in one line: sent, delivered, expired, and each drop
/// reason by name (`forged 2`), so an operator or a test reads what was refused and why.
pub fn datagram_counters(d: &DgramStats) -> String {
    let mut line = format!(
        "sent {} messages in {} datagrams ({} unsent late, {} refused), accepted {}, \
         delivered {}, expired {}, wrong_source {}, bad_message {}, socket_errors {}",
        d.sent_messages,
        d.sent_datagrams,
        d.unsent_late,
        d.refused,
        d.rx.accepted,
        d.rx.delivered,
        d.rx.expired,
        d.wrong_source,
        d.bad_message,
        d.socket_errors
    );
    for r in DropReason::ALL {
        line += &format!(", {} {}", r.name(), d.rx.dropped(r));
    }
    line
}
