//! What running a network on one device needs at least — its parameters and its largest
//! activations — computed from shapes alone, so a network too large for a device is refused
//! with a typed error before anything is allocated (a 16384 × 16384 input would otherwise
//! ask the allocator for 34 GB at its first layer and abort the process).

use super::weights::layer_param_count;
use super::{LayerKind, Network, Shape};

/// Bytes a network needs at least on one device (f32 parameters and activations).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footprint {
    /// Parameters of every layer.
    pub params_bytes: u64,
    /// The largest input plus output of one layer, plus the outputs kept for later route
    /// layers (live at once when the whole frame runs on one device).
    pub activation_bytes: u64,
}

/// Why a network's footprint was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FootprintError {
    /// A size overflows 64 bits.
    Overflow,
    /// The network needs more than the limit.
    TooLarge {
        /// Bytes needed (parameters plus activations).
        needed: u64,
        /// The limit, bytes.
        limit: u64,
    },
}

impl core::fmt::Display for FootprintError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FootprintError::Overflow => f.write_str("the network's size overflows 64 bits"),
            FootprintError::TooLarge { needed, limit } => write!(
                f,
                "the network needs at least {} MiB (parameters and activations), more than \
                 the limit of {} MiB",
                needed.div_ceil(1 << 20),
                limit >> 20
            ),
        }
    }
}

impl core::error::Error for FootprintError {}

fn bytes(s: Shape) -> Result<u64, FootprintError> {
    (s.w as u64)
        .checked_mul(s.h as u64)
        .and_then(|v| v.checked_mul(s.c as u64))
        .and_then(|v| v.checked_mul(4))
        .ok_or(FootprintError::Overflow)
}

impl Footprint {
    /// The footprint of the whole of `net`.
    pub fn of(net: &Network) -> Result<Footprint, FootprintError> {
        let layers = net.layers();
        let mut params: u64 = 0;
        let mut peak: u64 = 0;
        // Outputs a route reads later: a layer referenced by several routes counts once.
        let mut kept = [false; super::MAX_LAYERS];
        for (i, l) in layers.iter().enumerate() {
            let p = layer_param_count(net, i).map_err(|_| FootprintError::Overflow)? as u64;
            params = p
                .checked_mul(4)
                .and_then(|p| params.checked_add(p))
                .ok_or(FootprintError::Overflow)?;
            let io = bytes(l.input)?
                .checked_add(bytes(l.output)?)
                .ok_or(FootprintError::Overflow)?;
            peak = peak.max(io);
            if let LayerKind::Route(r) = &l.kind {
                for &src in r.layers.iter() {
                    if let Some(k) = kept.get_mut(src as usize) {
                        *k = true;
                    }
                }
            }
        }
        let mut activations = peak;
        for (l, _) in layers.iter().zip(kept.iter()).filter(|(_, &k)| k) {
            activations = activations
                .checked_add(bytes(l.output)?)
                .ok_or(FootprintError::Overflow)?;
        }
        Ok(Footprint {
            params_bytes: params,
            activation_bytes: activations,
        })
    }

    /// Parameters plus activations, bytes.
    pub fn total(&self) -> u64 {
        self.params_bytes.saturating_add(self.activation_bytes)
    }

    /// The footprint of `net` if it is at most `limit` bytes.
    pub fn check(net: &Network, limit: u64) -> Result<Footprint, FootprintError> {
        let f = Footprint::of(net)?;
        if f.total() > limit {
            return Err(FootprintError::TooLarge {
                needed: f.total(),
                limit,
            });
        }
        Ok(f)
    }
}
