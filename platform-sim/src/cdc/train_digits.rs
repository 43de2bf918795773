//! `tessera-sim cdc train-digits`: the digits MLP trained with fixed seeds, its float and int8
//! test accuracy.

use std::error::Error;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use tessera_core::code::shard;

use crate::digits::{self, QuantHidden, Sample, HIDDEN, PIXELS};

/// `tessera-sim cdc train-digits`: split, train, float and int8 test accuracy.
pub fn train_digits(data: &Path) -> Result<String, Box<dyn Error>> {
    let all = digits::load(data)?;
    let (train, test) = digits::split(&all);
    let t0 = Instant::now();
    let (m, loss) = digits::train(&train);
    let q = digits::quantize_hidden(&m);
    let mut s = String::new();
    writeln!(s, "## digits MLP 64-{HIDDEN}-10")?;
    writeln!(
        s,
        "{} samples; split: Fisher-Yates(seed {}) then first {} train / last {} test",
        all.len(),
        digits::SPLIT_SEED,
        train.len(),
        test.len()
    )?;
    writeln!(
        s,
        "SGD momentum {} lr {} batch {} epochs {} (init seed {}, order seed {}): final train loss {loss:.4}, {:.2} s",
        digits::MOMENTUM,
        digits::LEARNING_RATE,
        digits::BATCH,
        digits::EPOCHS,
        digits::INIT_SEED,
        digits::ORDER_SEED,
        t0.elapsed().as_secs_f64()
    )?;
    writeln!(
        s,
        "test accuracy: float {:.2} %, int8 hidden layer {:.2} %; train accuracy {:.2} %",
        100.0 * m.accuracy(&test),
        100.0 * int8_accuracy(&m, &q, &test),
        100.0 * m.accuracy(&train)
    )?;
    Ok(s)
}

fn int8_accuracy(m: &digits::Mlp, q: &QuantHidden, set: &[Sample]) -> f64 {
    let ok = set
        .iter()
        .filter(|s| {
            let mut y = [0i32; HIDDEN];
            let x = QuantHidden::input(s);
            shard::gemm_i8(&q.w, &q.b, &x, PIXELS, 1, &mut y).is_ok()
                && digits::argmax(&m.head(&q.dequantize(&y))) == s.label
        })
        .count();
    ok as f64 / set.len().max(1) as f64
}
