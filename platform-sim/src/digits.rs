//! The 8×8 handwritten digits data set (`data/digits.csv`: 1797 rows of 64 pixel values 0–16
//! and a label 0–9) and a small MLP trained on it deterministically, in plain Rust.
//!
//! * **Split**: indices shuffled by Fisher–Yates with [`SPLIT_SEED`] (splitmix64), the first
//!   [`TRAIN`] are the training set, the last 360 the test set.
//! * **Model**: 64 → [`HIDDEN`] (ReLU) → 10 (softmax), inputs scaled by 1/16, He-uniform
//!   initialisation from [`INIT_SEED`], minibatch SGD with momentum, one fixed sample order
//!   per epoch from [`ORDER_SEED`]: the same weights on every run on a given platform.
//! * **int8**: the hidden layer quantised for exact coded computing: the raw 0–16 pixels are
//!   already int8, the weights are `round(W/16 / s)` with `s = max|W/16| / 127`, the bias
//!   `round(b / s)` in `i32`; pre-activations are `s · (W_q x + b_q)`.

use std::path::Path;

use tessera_core::deadline::Rng;

/// Pixels per image.
pub const PIXELS: usize = 64;
/// Classes.
pub const CLASSES: usize = 10;
/// Hidden units.
pub const HIDDEN: usize = 32;
/// Training samples (the rest are the test set).
pub const TRAIN: usize = 1437;
/// Seed of the train/test shuffle.
pub const SPLIT_SEED: u64 = 20_240_601;
/// Seed of the weight initialisation.
pub const INIT_SEED: u64 = 7;
/// Seed of the per-epoch sample order.
pub const ORDER_SEED: u64 = 11;
/// Training epochs.
pub const EPOCHS: usize = 60;
/// Minibatch size.
pub const BATCH: usize = 16;
/// Learning rate.
pub const LEARNING_RATE: f32 = 0.05;
/// Momentum.
pub const MOMENTUM: f32 = 0.9;

/// One image: 64 pixel values 0–16 and its label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Row-major pixels.
    pub pixels: [u8; PIXELS],
    /// The digit.
    pub label: u8,
}

/// Why the data set could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DigitsError {
    /// The file could not be read.
    #[error("cannot read digits: {0}")]
    Io(std::io::Error),
    /// A row (1-based line number) does not have 65 fields.
    #[error("line {line}: {have} fields, {} expected", PIXELS + 1)]
    Fields {
        /// Line number.
        line: usize,
        /// Fields found.
        have: usize,
    },
    /// A field is not an integer in range (pixels 0–16, label 0–9).
    #[error("line {line}: field {field} is not a valid value")]
    Value {
        /// Line number.
        line: usize,
        /// Field index (0-based).
        field: usize,
    },
    /// The file holds no samples.
    #[error("no samples")]
    Empty,
}

/// Parses the CSV text; a first line starting with a non-digit is a header.
pub fn parse(text: &str) -> Result<Vec<Sample>, DigitsError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = line.trim();
        if line.is_empty() || (i == 0 && !line.starts_with(|c: char| c.is_ascii_digit())) {
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != PIXELS + 1 {
            return Err(DigitsError::Fields {
                line: line_no,
                have: fields.len(),
            });
        }
        let mut s = Sample {
            pixels: [0; PIXELS],
            label: 0,
        };
        for (f, v) in fields.iter().enumerate() {
            let max = if f == PIXELS { 9 } else { 16 };
            let v: u8 = v
                .trim()
                .parse()
                .ok()
                .filter(|&v| v <= max)
                .ok_or(DigitsError::Value {
                    line: line_no,
                    field: f,
                })?;
            if f == PIXELS {
                s.label = v;
            } else {
                s.pixels[f] = v;
            }
        }
        out.push(s);
    }
    if out.is_empty() {
        return Err(DigitsError::Empty);
    }
    Ok(out)
}

/// Reads and parses a CSV file.
pub fn load(path: &Path) -> Result<Vec<Sample>, DigitsError> {
    parse(&std::fs::read_to_string(path).map_err(DigitsError::Io)?)
}

/// The stated split: shuffled with [`SPLIT_SEED`], first [`TRAIN`] train, the rest test.
pub fn split(samples: &[Sample]) -> (Vec<Sample>, Vec<Sample>) {
    let mut idx: Vec<usize> = (0..samples.len()).collect();
    let mut rng = Rng::new(SPLIT_SEED);
    for i in (1..idx.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        idx.swap(i, j);
    }
    let train = TRAIN.min(samples.len());
    let pick = |r: &[usize]| r.iter().map(|&i| samples[i]).collect();
    (pick(&idx[..train]), pick(&idx[train..]))
}

/// A 64-H-10 perceptron, row-major weights.
#[derive(Clone, Debug, PartialEq)]
pub struct Mlp {
    /// Hidden weights, `HIDDEN × PIXELS`, on inputs scaled to `[0, 1]`.
    pub w1: Vec<f32>,
    /// Hidden bias.
    pub b1: Vec<f32>,
    /// Output weights, `CLASSES × HIDDEN`.
    pub w2: Vec<f32>,
    /// Output bias.
    pub b2: Vec<f32>,
}

fn input(s: &Sample) -> [f32; PIXELS] {
    s.pixels.map(|p| f32::from(p) / 16.0)
}

impl Mlp {
    /// Hidden pre-activations for a sample.
    pub fn hidden_pre(&self, s: &Sample) -> [f32; HIDDEN] {
        let x = input(s);
        let mut h = [0.0f32; HIDDEN];
        for (j, hj) in h.iter_mut().enumerate() {
            *hj = self.b1[j]
                + self.w1[j * PIXELS..(j + 1) * PIXELS]
                    .iter()
                    .zip(&x)
                    .map(|(w, x)| w * x)
                    .sum::<f32>();
        }
        h
    }

    /// Output logits from hidden pre-activations (ReLU applied here).
    pub fn head(&self, pre: &[f32; HIDDEN]) -> [f32; CLASSES] {
        let mut o = [0.0f32; CLASSES];
        for (c, oc) in o.iter_mut().enumerate() {
            *oc = self.b2[c]
                + self.w2[c * HIDDEN..(c + 1) * HIDDEN]
                    .iter()
                    .zip(pre)
                    .map(|(w, h)| w * h.max(0.0))
                    .sum::<f32>();
        }
        o
    }

    /// Predicted class.
    pub fn predict(&self, s: &Sample) -> u8 {
        argmax(&self.head(&self.hidden_pre(s)))
    }

    /// Fraction of `set` classified correctly.
    pub fn accuracy(&self, set: &[Sample]) -> f64 {
        set.iter().filter(|s| self.predict(s) == s.label).count() as f64 / set.len().max(1) as f64
    }
}

/// Index of the largest logit (first on ties).
pub fn argmax(o: &[f32; CLASSES]) -> u8 {
    let mut best = 0;
    for c in 1..CLASSES {
        if o[c] > o[best] {
            best = c;
        }
    }
    best as u8
}

/// Trains the MLP on `train` (see the module docs for the recipe); returns the model and the
/// training loss of the last epoch.
pub fn train(train: &[Sample]) -> (Mlp, f32) {
    let mut rng = Rng::new(INIT_SEED);
    let mut he = |fan_in: usize, n: usize| -> Vec<f32> {
        let a = (6.0 / fan_in as f64).sqrt();
        (0..n)
            .map(|_| ((rng.uniform() * 2.0 - 1.0) * a) as f32)
            .collect()
    };
    let mut m = Mlp {
        w1: he(PIXELS, HIDDEN * PIXELS),
        b1: vec![0.0; HIDDEN],
        w2: he(HIDDEN, CLASSES * HIDDEN),
        b2: vec![0.0; CLASSES],
    };
    let mut v = Mlp {
        w1: vec![0.0; HIDDEN * PIXELS],
        b1: vec![0.0; HIDDEN],
        w2: vec![0.0; CLASSES * HIDDEN],
        b2: vec![0.0; CLASSES],
    };
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut orng = Rng::new(ORDER_SEED);
    let mut last_loss = 0.0;
    for _ in 0..EPOCHS {
        for i in (1..order.len()).rev() {
            let j = (orng.next_u64() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        let mut loss = 0.0f32;
        for batch in order.chunks(BATCH) {
            let mut g = Mlp {
                w1: vec![0.0; HIDDEN * PIXELS],
                b1: vec![0.0; HIDDEN],
                w2: vec![0.0; CLASSES * HIDDEN],
                b2: vec![0.0; CLASSES],
            };
            for &i in batch {
                let s = &train[i];
                let x = input(s);
                let pre = m.hidden_pre(s);
                let o = m.head(&pre);
                let mx = o.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let e: Vec<f32> = o.iter().map(|v| (v - mx).exp()).collect();
                let z: f32 = e.iter().sum();
                loss -= (e[usize::from(s.label)] / z).ln();
                let mut dh = [0.0f32; HIDDEN];
                for (c, &ec) in e.iter().enumerate() {
                    let d = ec / z - if c == usize::from(s.label) { 1.0 } else { 0.0 };
                    g.b2[c] += d;
                    for j in 0..HIDDEN {
                        g.w2[c * HIDDEN + j] += d * pre[j].max(0.0);
                        dh[j] += d * m.w2[c * HIDDEN + j];
                    }
                }
                for j in 0..HIDDEN {
                    if pre[j] > 0.0 {
                        g.b1[j] += dh[j];
                        for (gw, &xv) in g.w1[j * PIXELS..(j + 1) * PIXELS].iter_mut().zip(&x) {
                            *gw += dh[j] * xv;
                        }
                    }
                }
            }
            let scale = LEARNING_RATE / batch.len() as f32;
            for (p, (vel, gr)) in [
                (&mut m.w1, (&mut v.w1, &g.w1)),
                (&mut m.b1, (&mut v.b1, &g.b1)),
                (&mut m.w2, (&mut v.w2, &g.w2)),
                (&mut m.b2, (&mut v.b2, &g.b2)),
            ] {
                for ((p, vel), gr) in p.iter_mut().zip(vel.iter_mut()).zip(gr) {
                    *vel = MOMENTUM * *vel - scale * gr;
                    *p += *vel;
                }
            }
        }
        last_loss = loss / train.len() as f32;
    }
    (m, last_loss)
}

/// The hidden layer quantised to int8 (module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct QuantHidden {
    /// `HIDDEN × PIXELS` int8 weights on raw 0–16 pixels.
    pub w: Vec<i8>,
    /// `i32` bias in units of `scale`.
    pub b: Vec<i32>,
    /// Value of one integer unit.
    pub scale: f32,
}

/// Quantises the hidden layer.
pub fn quantize_hidden(m: &Mlp) -> QuantHidden {
    let max =
        m.w1.iter()
            .map(|w| (w / 16.0).abs())
            .fold(0.0f32, f32::max)
            .max(f32::MIN_POSITIVE);
    let scale = max / 127.0;
    QuantHidden {
        w: m.w1
            .iter()
            .map(|w| (w / 16.0 / scale).round().clamp(-127.0, 127.0) as i8)
            .collect(),
        b: m.b1.iter().map(|b| (b / scale).round() as i32).collect(),
        scale,
    }
}

impl QuantHidden {
    /// Pixels as int8 (exact: 0–16).
    pub fn input(s: &Sample) -> [i8; PIXELS] {
        s.pixels.map(|p| p as i8)
    }

    /// Integer pre-activations to float.
    pub fn dequantize(&self, y: &[i32]) -> [f32; HIDDEN] {
        let mut h = [0.0f32; HIDDEN];
        for (h, &v) in h.iter_mut().zip(y) {
            *h = v as f32 * self.scale;
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_rows_are_typed_errors() {
        let ok = format!("{}5\n", "0,".repeat(64));
        assert_eq!(parse(&ok).unwrap()[0].label, 5);
        assert!(matches!(
            parse("1,2,3\n"),
            Err(DigitsError::Fields { line: 1, have: 3 })
        ));
        let bad = format!("{}17,5\n", "0,".repeat(63));
        assert!(matches!(
            parse(&bad),
            Err(DigitsError::Value { line: 1, field: 63 })
        ));
        let bad_label = format!("{}10\n", "0,".repeat(64));
        assert!(matches!(
            parse(&bad_label),
            Err(DigitsError::Value { field: 64, .. })
        ));
        let junk = format!("p0,p1\n{}x\n", "0,".repeat(64));
        assert!(matches!(
            parse(&junk),
            Err(DigitsError::Value { line: 2, .. })
        ));
        assert!(matches!(parse("header\n"), Err(DigitsError::Empty)));
    }
}
