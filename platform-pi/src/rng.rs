//! SplitMix64, from the backends (the parameter generator and the simulator share it).

pub use tessera_backends::rng::SplitMix64;
