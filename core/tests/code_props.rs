//! Coded computing: encode → compute every shard → drop results → decode, for every `(k, r)` up
//! to the capacity and every erasure pattern. Integer mode must be bit-exact; float mode must
//! stay within `Decoder::error_bound_f32` of the exact (`f64`) result.

use tessera_core::code::{
    encode, replicate, shard, worst_condition, Arithmetic, Code, CodeError, Decoder, MAX_DATA,
    MAX_PARITY,
};
use tessera_core::rng::SplitMix64;

/// Integer layer: computes every shard (data + parity) in the code's arithmetic.
fn int_results(
    code: &Code,
    w: &[i8],
    b: &[i32],
    x: &[i8],
    in_len: usize,
    cols: usize,
) -> Vec<Vec<i32>> {
    let s = code.shard_rows();
    let mut out = Vec::new();
    for d in 0..code.k() {
        let (wd, bd) = encode::data_shard(code, d, w, b, in_len).unwrap();
        let mut y = vec![0; bd.len() * cols];
        shard::gemm_i8(wd, bd, x, in_len, cols, &mut y).unwrap();
        out.push(y);
    }
    for j in 0..code.r() {
        let mut y = vec![0; s * cols];
        match code.int_arithmetic() {
            Arithmetic::Wrapping => {
                let (mut pw, mut pb) = (vec![0i32; s * in_len], vec![0i32; s]);
                encode::parity_wrapping(code, w, b, in_len, &mut pw, &mut pb).unwrap();
                shard::gemm_wrapping(&pw, &pb, x, in_len, cols, &mut y).unwrap();
            }
            _ => {
                let (mut pw, mut pb) = (vec![0u32; s * in_len], vec![0u32; s]);
                encode::parity_mod_p(code, j, w, b, in_len, &mut pw, &mut pb).unwrap();
                shard::gemm_mod_p(&pw, &pb, x, in_len, cols, &mut y).unwrap();
            }
        }
        out.push(y);
    }
    out
}

fn float_results(
    code: &Code,
    w: &[f32],
    b: &[f32],
    x: &[f32],
    in_len: usize,
    cols: usize,
) -> Vec<Vec<f32>> {
    let s = code.shard_rows();
    let mut out = Vec::new();
    for d in 0..code.k() {
        let (wd, bd) = encode::data_shard(code, d, w, b, in_len).unwrap();
        let mut y = vec![0.0; bd.len() * cols];
        shard::gemm_f32(wd, bd, x, in_len, cols, &mut y).unwrap();
        out.push(y);
    }
    for j in 0..code.r() {
        let (mut pw, mut pb) = (vec![0f32; s * in_len], vec![0f32; s]);
        encode::parity_f32(code, j, w, b, in_len, &mut pw, &mut pb).unwrap();
        let mut y = vec![0.0; s * cols];
        shard::gemm_f32(&pw, &pb, x, in_len, cols, &mut y).unwrap();
        out.push(y);
    }
    out
}

/// Every mask over `n` shards with at most `r` zeros, then one mask with `r + 1` zeros.
fn patterns(n: usize, r: usize) -> impl Iterator<Item = u32> {
    (0u32..(1 << n)).filter(move |m| n - m.count_ones() as usize <= r)
}

fn views<T>(res: &[Vec<T>], mask: u32) -> Vec<Option<&[T]>> {
    res.iter()
        .enumerate()
        .map(|(i, v)| (mask >> i & 1 == 1).then_some(v.as_slice()))
        .collect()
}

#[test]
fn integer_decode_is_exact_for_every_k_r_and_erasure_pattern() {
    let mut rng = SplitMix64::new(0x1d3c);
    let (in_len, cols) = (7, 2);
    let mut decodes = 0usize;
    for k in 1..=MAX_DATA {
        for r in 0..=MAX_PARITY {
            let rows = 2 * k + 1; // k ∤ rows for k > 1: padding rows are exercised
            let code = Code::new(rows, k, r).unwrap();
            let w: Vec<i8> = (0..rows * in_len).map(|_| rng.next_u64() as i8).collect();
            let b: Vec<i32> = (0..rows).map(|_| rng.next_u64() as i32 % 100_000).collect();
            let x: Vec<i8> = (0..in_len * cols).map(|_| rng.next_u64() as i8).collect();
            let mut want = vec![0i32; rows * cols];
            shard::gemm_i8(&w, &b, &x, in_len, cols, &mut want).unwrap();
            let res = int_results(&code, &w, &b, &x, in_len, cols);
            for mask in patterns(code.n(), r) {
                let dec = Decoder::from_mask(&code, mask).unwrap();
                let mut got = vec![i32::MIN; rows * cols];
                dec.decode_i32(&views(&res, mask), cols, &mut got).unwrap();
                assert_eq!(got, want, "k = {k}, r = {r}, present mask = {mask:#b}");
                decodes += 1;
            }
            // One loss too many is a typed error, never a wrong answer.
            if code.n() > r + 1 {
                let mask = (1u32 << code.n()) - 1 - ((1 << (r + 1)) - 1);
                assert_eq!(
                    Decoder::from_mask(&code, mask).unwrap_err(),
                    CodeError::NotDecodable {
                        have: k - 1,
                        need: k
                    }
                );
            }
        }
    }
    println!("{decodes} exact integer decodes");
}

#[test]
fn float_decode_stays_within_the_documented_bound() {
    let mut rng = SplitMix64::new(0xf10a7);
    let (in_len, cols) = (9, 2);
    let mut worst_ratio = 0.0f64;
    let mut worst_rel = 0.0f64;
    for k in 1..=MAX_DATA {
        for r in 0..=MAX_PARITY {
            let rows = 2 * k + 1;
            let code = Code::new(rows, k, r).unwrap();
            let w: Vec<f32> = (0..rows * in_len)
                .map(|_| rng.uniform_f32(-1.0, 1.0))
                .collect();
            let b: Vec<f32> = (0..rows).map(|_| rng.uniform_f32(-1.0, 1.0)).collect();
            let x: Vec<f32> = (0..in_len * cols)
                .map(|_| rng.uniform_f32(-1.0, 1.0))
                .collect();
            // Exact result and absolute magnitude A per (shard row, column), in f64.
            let s = code.shard_rows();
            let mut exact = vec![0.0f64; rows * cols];
            let mut mag = vec![0.0f64; s * cols];
            for i in 0..rows {
                for c in 0..cols {
                    let mut y = f64::from(b[i]);
                    let mut a = f64::from(b[i].abs());
                    for t in 0..in_len {
                        let p = f64::from(w[i * in_len + t]) * f64::from(x[t * cols + c]);
                        y += p;
                        a += p.abs();
                    }
                    exact[i * cols + c] = y;
                    let m = &mut mag[(i % s) * cols + c];
                    *m = m.max(a);
                }
            }
            let res = float_results(&code, &w, &b, &x, in_len, cols);
            for mask in patterns(code.n(), r) {
                let dec = Decoder::from_mask(&code, mask).unwrap();
                let mut got = vec![f32::NAN; rows * cols];
                dec.decode_f32(&views(&res, mask), cols, &mut got).unwrap();
                for &d in dec.erased() {
                    for row in code.data_rows(d.into()).unwrap() {
                        for c in 0..cols {
                            let (g, e) = (f64::from(got[row * cols + c]), exact[row * cols + c]);
                            let a = mag[(row % s) * cols + c];
                            let bound = dec.error_bound_f32(in_len, a, e);
                            let err = (g - e).abs();
                            assert!(
                                err <= bound,
                                "k = {k}, r = {r}, mask {mask:#b}, row {row} col {c}: \
                                 got {g}, exact {e}, error {err:e} > bound {bound:e}"
                            );
                            worst_ratio = worst_ratio.max(err / bound);
                            worst_rel = worst_rel.max(err / a);
                        }
                    }
                }
            }
        }
    }
    println!("float decode: worst error/bound = {worst_ratio:.3}, worst error/A = {worst_rel:.3e}");
    assert!(worst_ratio <= 1.0);
}

#[test]
fn single_parity_wraps_and_stays_exact() {
    // Parity sums of 16 extreme shards overflow i32; the data outputs do not.
    let (k, in_len) = (16, 10_000);
    let code = Code::new(k, k, 1).unwrap();
    let w = vec![127i8; k * in_len];
    let b = vec![0i32; k];
    let x = vec![127i8; in_len];
    let res = int_results(&code, &w, &b, &x, in_len, 1);
    let true_parity = 16i64 * 10_000 * 127 * 127;
    assert!(
        true_parity > i64::from(i32::MAX),
        "the parity must overflow"
    );
    for f in 0..k {
        let mask = ((1u32 << (k + 1)) - 1) & !(1 << f);
        let mut got = vec![0i32; k];
        Decoder::from_mask(&code, mask)
            .unwrap()
            .decode_i32(&views(&res, mask), 1, &mut got)
            .unwrap();
        assert!(
            got.iter().all(|&v| v == 10_000 * 127 * 127),
            "f = {f}: {got:?}"
        );
    }
}

/// 3x3 convolution as GEMM (filters = rows, X = im2col): the same code decodes it.
#[test]
fn conv3x3_as_gemm_decodes_exactly() {
    let (c_in, h, wd, c_out) = (3usize, 5usize, 6usize, 10usize);
    let mut rng = SplitMix64::new(33);
    let img: Vec<i8> = (0..c_in * h * wd).map(|_| rng.next_u64() as i8).collect();
    let in_len = c_in * 9;
    let cols = h * wd;
    let mut xcol = vec![0i8; in_len * cols];
    for ci in 0..c_in {
        for ky in 0..3 {
            for kx in 0..3 {
                let t = ci * 9 + ky * 3 + kx;
                for y in 0..h {
                    for xx in 0..wd {
                        let (sy, sx) =
                            (y as isize + ky as isize - 1, xx as isize + kx as isize - 1);
                        if sy >= 0 && sx >= 0 && (sy as usize) < h && (sx as usize) < wd {
                            xcol[t * cols + y * wd + xx] =
                                img[ci * h * wd + sy as usize * wd + sx as usize];
                        }
                    }
                }
            }
        }
    }
    let filt: Vec<i8> = (0..c_out * in_len).map(|_| rng.next_u64() as i8).collect();
    let bias: Vec<i32> = (0..c_out).map(|i| i as i32 * 1000 - 4000).collect();
    // Direct convolution as the reference.
    let mut want = vec![0i32; c_out * cols];
    for co in 0..c_out {
        for y in 0..h {
            for xx in 0..wd {
                let mut acc = bias[co];
                for ci in 0..c_in {
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let (sy, sx) =
                                (y as isize + ky as isize - 1, xx as isize + kx as isize - 1);
                            if sy >= 0 && sx >= 0 && (sy as usize) < h && (sx as usize) < wd {
                                acc += i32::from(filt[co * in_len + ci * 9 + ky * 3 + kx])
                                    * i32::from(img[ci * h * wd + sy as usize * wd + sx as usize]);
                            }
                        }
                    }
                }
                want[co * cols + y * wd + xx] = acc;
            }
        }
    }
    for (k, r) in [(4, 1), (4, 2), (3, 3)] {
        let code = Code::new(c_out, k, r).unwrap();
        let res = int_results(&code, &filt, &bias, &xcol, in_len, cols);
        for mask in patterns(code.n(), r) {
            let mut got = vec![0; c_out * cols];
            Decoder::from_mask(&code, mask)
                .unwrap()
                .decode_i32(&views(&res, mask), cols, &mut got)
                .unwrap();
            assert_eq!(got, want, "k = {k}, r = {r}, mask {mask:#b}");
        }
    }
}

#[test]
fn replication_survives_one_copy_of_each_shard() {
    let (k, in_len) = (4, 6);
    let code = Code::new(8, k, 0).unwrap();
    let mut rng = SplitMix64::new(2);
    let w: Vec<f32> = (0..8 * in_len)
        .map(|_| rng.uniform_f32(-1.0, 1.0))
        .collect();
    let b = vec![0.5f32; 8];
    let x: Vec<f32> = (0..in_len).map(|_| rng.uniform_f32(-1.0, 1.0)).collect();
    let mut want = vec![0.0; 8];
    shard::gemm_f32(&w, &b, &x, in_len, 1, &mut want).unwrap();
    let data = float_results(&code, &w, &b, &x, in_len, 1);
    let res: Vec<Vec<f32>> = (0..replicate::devices(k))
        .map(|i| data[replicate::replica_of(&code, i)].clone())
        .collect();
    for mask in 0u32..(1 << (2 * k)) {
        let mut got = vec![0.0; 8];
        let r = replicate::assemble(&code, &views(&res, mask), 1, &mut got);
        assert_eq!(
            r.is_ok(),
            replicate::decodable(&code, mask.into()),
            "mask {mask:#b}"
        );
        if r.is_ok() {
            assert_eq!(got, want);
        }
    }
}

/// Worst decode condition number of the float construction, every (k, r); the values are the
/// documented conditioning (the table in `core::code`'s module docs).
#[test]
fn float_construction_conditioning() {
    let mut overall = 0.0f64;
    for r in 2..=MAX_PARITY {
        let mut line = format!("r = {r}:");
        for k in 1..=MAX_DATA {
            let c = worst_condition(k, r).unwrap();
            assert!(c.is_finite(), "k = {k}, r = {r} singular");
            line += &format!(" {k}:{c:.0}");
            overall = overall.max(c);
        }
        println!("{line}");
    }
    assert!(worst_condition(16, 1).unwrap() == 1.0);
    // Measured maximum over k ≤ 16, r ≤ 4 is 1.12e4 (k = 16, r = 4).
    assert!(overall < 1.2e4, "worst condition {overall}");
}

#[test]
fn decode_cost_is_small_next_to_the_layer() {
    // A 2048 × 2048 FC layer (the CDC paper's) over k = 8, r = 2: decode ≈ e·(k + ...)/K.
    let code = Code::new(2048, 8, 2).unwrap();
    let layer = 2048usize * 2048;
    for mask in [0b11_1111_1110u32, 0b11_1111_1100] {
        let dec = Decoder::from_mask(&code, mask).unwrap();
        let rel = dec.mul_adds(1) as f64 / layer as f64;
        assert!(rel < 0.01, "decode / layer = {rel}");
    }
}

#[test]
fn bad_input_is_a_typed_error() {
    assert_eq!(
        Code::new(0, 1, 0),
        Err(CodeError::Shape {
            rows: 0,
            k: 1,
            r: 0
        })
    );
    assert!(matches!(Code::new(4, 17, 0), Err(CodeError::Shape { .. })));
    assert!(matches!(Code::new(4, 2, 5), Err(CodeError::Shape { .. })));
    let code = Code::new(6, 3, 2).unwrap();
    assert!(matches!(
        code.data_rows(3),
        Err(CodeError::Index { index: 3, count: 3 })
    ));
    assert!(matches!(code.coeff(2, 0), Err(CodeError::Index { .. })));
    let (w, b) = (vec![1i8; 6 * 4], vec![0i32; 6]);
    let (mut pw, mut pb) = (vec![0i32; 2 * 4], vec![0i32; 2]);
    assert_eq!(
        encode::parity_wrapping(&code, &w, &b, 4, &mut pw, &mut pb),
        Err(CodeError::Mode {
            expected: Arithmetic::PrimeField
        })
    );
    let (mut qw, mut qb) = (vec![0u32; 2 * 4], vec![0u32; 2]);
    assert!(matches!(
        encode::parity_mod_p(&code, 0, &w, &b, 5, &mut qw, &mut qb),
        Err(CodeError::Length { .. })
    ));
    let huge = vec![0i32; 6];
    let wl = vec![0i8; 6 * 70_000];
    let (mut hw, mut hb) = (vec![0u32; 2 * 70_000], vec![0u32; 2]);
    assert!(matches!(
        encode::parity_mod_p(&code, 0, &wl, &huge, 70_000, &mut hw, &mut hb),
        Err(CodeError::Range { .. })
    ));
    let dec = Decoder::from_mask(&code, 0b11110).unwrap();
    let y = vec![0i32; 2];
    let results: Vec<Option<&[i32]>> = vec![None, Some(&y), Some(&y), None, None];
    let mut out = vec![0; 6];
    assert!(matches!(
        dec.decode_i32(&results, 1, &mut out),
        Err(CodeError::MissingShard { shard: 3 | 4 })
    ));
    let short = vec![0i32; 1];
    let results: Vec<Option<&[i32]>> = vec![None, Some(&short), Some(&y), Some(&y), Some(&y)];
    assert!(matches!(
        dec.decode_i32(&results, 1, &mut out),
        Err(CodeError::Length { .. })
    ));
    assert!(matches!(
        dec.decode_i32(&results[..3], 1, &mut out),
        Err(CodeError::Length { .. })
    ));
    assert!(matches!(
        Decoder::new(&code, &[true; 4]),
        Err(CodeError::Length { .. })
    ));
    let mut out = vec![0.0f32; 5];
    assert!(matches!(
        shard::gemm_f32(&[0.0; 4], &[0.0; 2], &[0.0; 2], 2, 1, &mut out),
        Err(CodeError::Length { .. })
    ));
}

/// Garbage in (random masks, lengths, columns, indices): typed errors or correct sizes, never
/// a panic.
#[test]
fn random_garbage_never_panics() {
    let mut rng = SplitMix64::new(0xbad);
    for _ in 0..20_000 {
        let k = (rng.next_u64() % 18) as usize;
        let r = (rng.next_u64() % 6) as usize;
        let rows = (rng.next_u64() % 40) as usize;
        let Ok(code) = Code::new(rows, k, r) else {
            continue;
        };
        let cols = (rng.next_u64() % 3) as usize;
        let mask = rng.next_u64() as u32;
        let lens: Vec<usize> = (0..code.n() + (rng.next_u64() % 2) as usize)
            .map(|i| match rng.next_u64() % 4 {
                0 => (rng.next_u64() % 50) as usize,
                _ => code.result_rows(i).unwrap_or(0) * cols,
            })
            .collect();
        let bufs: Vec<Vec<i32>> = lens
            .iter()
            .map(|&l| vec![rng.next_u64() as i32; l])
            .collect();
        let fbufs: Vec<Vec<f32>> = lens
            .iter()
            .map(|&l| vec![rng.uniform_f32(-1.0, 1.0); l])
            .collect();
        let views: Vec<Option<&[i32]>> = bufs
            .iter()
            .map(|b| (!rng.next_u64().is_multiple_of(5)).then_some(b.as_slice()))
            .collect();
        let fviews: Vec<Option<&[f32]>> = fbufs.iter().map(|b| Some(b.as_slice())).collect();
        let out_len = if rng.next_u64().is_multiple_of(4) {
            3
        } else {
            rows * cols
        };
        if let Ok(dec) = Decoder::from_mask(&code, mask) {
            let mut out = vec![0i32; out_len];
            let _ = dec.decode_i32(&views, cols, &mut out);
            let mut fout = vec![0f32; out_len];
            let _ = dec.decode_f32(&fviews, cols, &mut fout);
        }
        let in_len = (rng.next_u64() % 5) as usize;
        let w = vec![1i8; (rng.next_u64() % 30) as usize];
        let b = vec![1i32; (rng.next_u64() % 10) as usize];
        let (mut ow, mut ob) = (vec![0u32; (rng.next_u64() % 30) as usize], vec![0u32; 3]);
        let _ = encode::parity_mod_p(
            &code,
            (rng.next_u64() % 5) as usize,
            &w,
            &b,
            in_len,
            &mut ow,
            &mut ob,
        );
        let (mut iw, mut ib) = (vec![0i32; (rng.next_u64() % 30) as usize], vec![0i32; 3]);
        let _ = encode::parity_wrapping(&code, &w, &b, in_len, &mut iw, &mut ib);
        let _ = encode::data_shard(&code, (rng.next_u64() % 20) as usize, &w, &b, in_len);
        let mut o = vec![0i32; (rng.next_u64() % 10) as usize];
        let _ = shard::gemm_mod_p(&ow, &ob, &[1i8; 4], in_len, cols, &mut o);
        let _ = replicate::assemble(&code, &views, cols, &mut vec![0i32; out_len]);
    }
}
