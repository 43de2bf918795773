//! The scheduling policy of a run: its wire code and its one spelling in files and flags.

use core::fmt;
use core::str::FromStr;

use super::WireError;

/// Scheduling policy of a run.
///
/// Spelt `wsh`, `wst`, `wst-s`, `bodp` and `modnn` in cluster files, scenarios and command-line flags
/// ([`Policy::name`], [`Display`](fmt::Display), [`FromStr`], which ignores ASCII case); the
/// report label is the upper-case form ([`Policy::label`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Policy {
    /// Work sharing: the gateway queues every tile and workers pull.
    Wsh,
    /// Work stealing: thieves rob data-source edges; the gateway keeps the victim registry.
    Wst,
    /// Work stealing with data-reuse scheduling (overlap strips exchanged).
    WstS,
    /// Gateway-resident BODP: a 1-D biased partition, layer by layer, the gateway holding
    /// each whole feature map and shipping every stripe's input out at every layer.
    Bodp,
    /// MoDNN as published: a 1-D biased partition whose stripes stay on the workers across
    /// the fused layers; only the overlap rows move between layers, through the gateway.
    Modnn,
}

impl Policy {
    /// Every policy, in code order.
    pub const ALL: [Policy; 5] = [
        Policy::Wsh,
        Policy::Wst,
        Policy::WstS,
        Policy::Bodp,
        Policy::Modnn,
    ];

    /// Wire code (index in [`Policy::ALL`]).
    pub const fn code(self) -> u8 {
        match self {
            Policy::Wsh => 0,
            Policy::Wst => 1,
            Policy::WstS => 2,
            Policy::Bodp => 3,
            Policy::Modnn => 4,
        }
    }

    /// The policy with wire code `code`.
    pub fn from_code(code: u8) -> Result<Policy, WireError> {
        Policy::ALL
            .get(code as usize)
            .copied()
            .ok_or(WireError::BadValue)
    }

    /// True for the policies that run layer by layer in stripes (BODP, MoDNN), not fused tiles.
    pub const fn layered(self) -> bool {
        matches!(self, Policy::Bodp | Policy::Modnn)
    }

    /// The policy's name in files and flags: `wsh`, `wst`, `wst-s`, `bodp` or `modnn`.
    pub const fn name(self) -> &'static str {
        match self {
            Policy::Wsh => "wsh",
            Policy::Wst => "wst",
            Policy::WstS => "wst-s",
            Policy::Bodp => "bodp",
            Policy::Modnn => "modnn",
        }
    }

    /// The policy's label in reports and plots: `WSH`, `WST`, `WST-S`, `BODP` or `MoDNN`.
    pub const fn label(self) -> &'static str {
        match self {
            Policy::Wsh => "WSH",
            Policy::Wst => "WST",
            Policy::WstS => "WST-S",
            Policy::Bodp => "BODP",
            Policy::Modnn => "MoDNN",
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A string is not the name of a [`Policy`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParsePolicyError;

impl fmt::Display for ParsePolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown policy (expected wsh, wst, wst-s, bodp or modnn)")
    }
}

impl core::error::Error for ParsePolicyError {}

impl FromStr for Policy {
    type Err = ParsePolicyError;

    /// Parses [`Policy::name`], ignoring ASCII case.
    fn from_str(s: &str) -> Result<Policy, ParsePolicyError> {
        Policy::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s))
            .ok_or(ParsePolicyError)
    }
}
