use super::*;
use crate::rnn::{recurrence_reference, Cell, Recurrence};

/// Values in `[-scale, scale]` from a small LCG.
fn data(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// The block's scale and zero point as ONNX Runtime writes them out.
fn ort_params(x: &[f32]) -> (f32, i32) {
    let lo = x.iter().fold(0f32, |a, &v| a.min(v));
    let hi = x.iter().fold(0f32, |a, &v| a.max(v));
    let scale = if hi == lo { 1.0 } else { (hi - lo) / 255.0 };
    let zero = (0.0 - lo / scale).clamp(0.0, 255.0).round_ties_even() as i32;
    (scale, zero)
}

#[test]
fn dynamic_product_matches_hand_quantization() {
    let (m, n, k) = (3, 4, 5);
    let a = data(m * k, 1, 2.0);
    let b: Vec<i8> = (0..k * n)
        .map(|i| ((i as i32 * 37) % 127 - 60) as i8)
        .collect();
    for scales in [
        vec![0.02f32],
        (0..n).map(|j| 0.01 * (j + 1) as f32).collect(),
    ] {
        let (sa, za) = ort_params(&a);
        let mut c = vec![0f32; m * n];
        let (mut qa, mut acc) = (vec![0u8; m * k], vec![0i32; m * n]);
        dynamic_qgemm(
            &a,
            (m, n, k),
            Q8::I8(&b),
            3,
            &scales,
            &mut c,
            false,
            (&mut qa, &mut acc),
        )
        .unwrap();
        for i in 0..m {
            for j in 0..n {
                let mut s = 0i32;
                for kk in 0..k {
                    let q = ((a[i * k + kk] / sa).round_ties_even() as i32 + za).clamp(0, 255);
                    s += (q - za) * (i32::from(b[kk * n + j]) - 3);
                }
                let sb = scales[if scales.len() == 1 { 0 } else { j }];
                let want = s as f32 * (sa * sb);
                assert_eq!(c[i * n + j], want, "({i}, {j})");
            }
        }
        // Accumulating adds the same values.
        let before = c.clone();
        dynamic_qgemm(
            &a,
            (m, n, k),
            Q8::I8(&b),
            3,
            &scales,
            &mut c,
            true,
            (&mut qa, &mut acc),
        )
        .unwrap();
        for (x, y) in c.iter().zip(&before) {
            assert_eq!(*x, y + y);
        }
    }
}

#[test]
fn all_zero_block_quantizes_with_scale_one() {
    assert_eq!(block_params(&[0.0; 6]), (1.0, 0));
    assert_eq!(block_params(&[]), (1.0, 0));
    let (s, z) = block_params(&[-1.0, 0.5]);
    assert_eq!((s, i32::from(z)), ort_params(&[-1.0, 0.5]));
}

/// Per-tensor symmetric `i8` (or asymmetric `u8`) quantization of `w` (`[dirs, rows, cols]`),
/// and its dequantized transpose in ONNX LSTM's layout (`[dirs, cols, rows]`).
fn quantize_weights(
    w: &[f32],
    dirs: usize,
    rows: usize,
    cols: usize,
    signed: bool,
) -> (Vec<u8>, Vec<f32>, Vec<i32>, Vec<f32>) {
    let n = rows * cols;
    let (mut q, mut scales, mut zeros, mut deq) =
        (vec![0u8; w.len()], vec![], vec![], vec![0f32; w.len()]);
    for d in 0..dirs {
        let wd = &w[d * n..(d + 1) * n];
        let m = wd.iter().fold(0f32, |a, v| a.max(v.abs()));
        let (scale, zero, lo, hi) = if signed {
            (m / 127.0, 0, -128, 127)
        } else {
            (2.0 * m / 255.0, 128, 0, 255)
        };
        scales.push(scale);
        zeros.push(zero);
        for i in 0..rows {
            for j in 0..cols {
                let v = wd[i * cols + j];
                let qi = ((v / scale).round_ties_even() as i32 + zero).clamp(lo, hi);
                q[d * n + i * cols + j] = qi as u8;
                deq[d * n + j * rows + i] = (qi - zero) as f32 * scale;
            }
        }
    }
    (q, scales, zeros, deq)
}

/// The quantized layer against the float LSTM over the dequantized weights: they differ by
/// the activations' quantization only.
#[test]
fn close_to_the_float_lstm_of_the_dequantized_weights() {
    let (seq, batch, ni, h) = (5, 3, 6, 4);
    for (dirs, signed, lens, y_present) in [
        (1, true, None, true),
        (2, false, Some(vec![5i32, 2, 4]), true),
        (2, true, Some(vec![3i32, 5, 1]), false),
    ] {
        let reversed: &[bool] = if dirs == 1 { &[false] } else { &[false, true] };
        let x = data(seq * batch * ni, 2, 1.5);
        let wt = data(dirs * ni * 4 * h, 3, 0.6);
        let rt = data(dirs * h * 4 * h, 4, 0.6);
        let (wq, ws, wz, wdeq) = quantize_weights(&wt, dirs, ni, 4 * h, signed);
        let (rq, rs, rz, rdeq) = quantize_weights(&rt, dirs, h, 4 * h, signed);
        let wi: Vec<i8> = wq.iter().map(|&v| v as i8).collect();
        let ri: Vec<i8> = rq.iter().map(|&v| v as i8).collect();
        let b = data(dirs * 8 * h, 5, 0.3);
        let ih = data(dirs * batch * h, 6, 0.5);
        let ic = data(dirs * batch * h, 7, 0.5);
        let pp = data(dirs * 3 * h, 8, 0.2);
        let acts: Vec<Act> = [Act::Sigmoid, Act::Tanh, Act::Tanh].repeat(dirs);
        let lens_v = lens.as_deref().map(Lens::I32);
        let q = QLstm {
            seq,
            batch,
            input: ni,
            hidden: h,
            reversed,
            input_forget: false,
            x: &x,
            w: QWeights {
                data: if signed { Q8::I8(&wi) } else { Q8::U8(&wq) },
                scale: &ws,
                zero: &wz,
            },
            r: QWeights {
                data: if signed { Q8::I8(&ri) } else { Q8::U8(&rq) },
                scale: &rs,
                zero: &rz,
            },
            b: Some(&b),
            seq_lens: lens_v,
            initial_h: Some(&ih),
            initial_c: Some(&ic),
            p: Some(&pp),
            acts: &acts,
            clip: None,
        };
        let f = Recurrence {
            cell: Cell::Lstm {
                input_forget: false,
            },
            seq,
            batch,
            input: ni,
            hidden: h,
            reversed,
            batch_first: false,
            x: &x,
            w: &wdeq,
            r: &rdeq,
            b: Some(&b),
            seq_lens: lens_v,
            initial_h: Some(&ih),
            initial_c: Some(&ic),
            p: Some(&pp),
            acts: &acts,
            clip: None,
        };
        let state = dirs * batch * h;
        let (mut y1, mut h1, mut c1) = (
            vec![0f32; seq * state],
            vec![0f32; state],
            vec![0f32; state],
        );
        let (mut y2, mut h2, mut c2) = (
            vec![0f32; seq * state],
            vec![0f32; state],
            vec![0f32; state],
        );
        qlstm(
            &q,
            RecurrenceOut {
                y: y_present.then_some(&mut y1[..]),
                y_h: Some(&mut h1),
                y_c: Some(&mut c1),
            },
        )
        .unwrap();
        recurrence_reference(
            &f,
            RecurrenceOut {
                y: Some(&mut y2),
                y_h: Some(&mut h2),
                y_c: Some(&mut c2),
            },
        )
        .unwrap();
        let pairs: Vec<(&[f32], &[f32])> = if y_present {
            vec![(&y1, &y2), (&h1, &h2), (&c1, &c2)]
        } else {
            vec![(&h1, &h2), (&c1, &c2)]
        };
        for (a, e) in pairs {
            for (i, (u, v)) in a.iter().zip(e).enumerate() {
                assert!((u - v).abs() < 0.03, "dirs {dirs} [{i}]: {u} vs {v}");
            }
        }
        if let Some(l) = &lens {
            // Outputs past a sequence's end are zero.
            if y_present {
                for (bi, &len) in l.iter().enumerate() {
                    for t in len as usize..seq {
                        for d in 0..dirs {
                            let at = ((t * dirs + d) * batch + bi) * h;
                            assert!(y1[at..at + h].iter().all(|&v| v == 0.0));
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn bad_operands_are_errors() {
    let x = [0f32; 2];
    let w = [0i8; 8];
    let r = [0i8; 4];
    let acts = [Act::Sigmoid, Act::Tanh, Act::Tanh];
    let mut q = QLstm {
        seq: 1,
        batch: 1,
        input: 2,
        hidden: 1,
        reversed: &[false],
        input_forget: false,
        x: &x,
        w: QWeights {
            data: Q8::I8(&w),
            scale: &[0.1],
            zero: &[0],
        },
        r: QWeights {
            data: Q8::I8(&r[..1]),
            scale: &[0.1],
            zero: &[0],
        },
        b: None,
        seq_lens: None,
        initial_h: None,
        initial_c: None,
        p: None,
        acts: &acts,
        clip: None,
    };
    // R holds 1 value for 1 x 4.
    assert!(qlstm(&q, RecurrenceOut::default()).is_err());
    q.r.data = Q8::I8(&r);
    assert!(qlstm(&q, RecurrenceOut::default()).is_ok());
    q.w.scale = &[0.1, 0.2];
    assert!(qlstm(&q, RecurrenceOut::default()).is_err());
    q.w.scale = &[0.1];
    q.seq_lens = Some(Lens::I32(&[2]));
    assert!(qlstm(&q, RecurrenceOut::default()).is_err());
}
