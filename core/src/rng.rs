//! The one seeded generator of the workspace: SplitMix64 (Steele, Lea & Flood 2014), 64 bits of
//! state, passes BigCrush, trivially seedable, and the same stream on every platform, so that
//! generated weights, simulations and tests reproduce anywhere. The core never draws from the OS.

/// The state's step per draw (the golden-ratio increment).
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64 state.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator seeded with `seed` (its first draw mixes `seed + GOLDEN`).
    pub const fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// Moves past the next `n` draws of [`next_u64`](Self::next_u64) at once (each draw of
    /// [`uniform`](Self::uniform), [`uniform_open`](Self::uniform_open),
    /// [`uniform_f32`](Self::uniform_f32) and [`bernoulli`](Self::bernoulli) is one): the state
    /// only steps by a constant.
    pub fn skip(&mut self, n: u64) {
        self.0 = self.0.wrapping_add(n.wrapping_mul(GOLDEN));
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` (53 bits).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `(0, 1)` (53 bits, centred in their interval): safe under a logarithm.
    pub fn uniform_open(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
    }

    /// An index below `n` (the draw modulo `n`: a bias of at most `n / 2^64`); 0 when `n` is 0.
    pub fn below(&mut self, n: usize) -> usize {
        match n {
            0 => 0,
            n => (self.next_u64() % n as u64) as usize,
        }
    }

    /// Uniform in `[lo, hi)` as `f32`, from the top 24 bits (exact in `f32`).
    pub fn uniform_f32(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }

    /// Standard normal (Box–Muller, one of the pair; two draws).
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform_open(), self.uniform());
        libm::sqrt(-2.0 * libm::log(u)) * libm::cos(core::f64::consts::TAU * v)
    }

    /// `true` with probability `p` (one draw, whatever `p`).
    pub fn bernoulli(&mut self, p: f64) -> bool {
        self.uniform() < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference stream of SplitMix64 seeded with 1234567 (the algorithm's published
    /// test vector), and `skip` lands where drawing would.
    #[test]
    fn reference_stream_and_skip() {
        let mut r = SplitMix64::new(1_234_567);
        let want = [
            6_457_827_717_110_365_317,
            3_203_168_211_198_807_973,
            9_817_491_932_198_370_423,
        ];
        for w in want {
            assert_eq!(r.next_u64(), w);
        }
        let mut a = SplitMix64::new(9);
        let mut b = SplitMix64::new(9);
        for _ in 0..5 {
            a.next_u64();
        }
        b.skip(5);
        assert_eq!(a.next_u64(), b.next_u64());
    }
}
