//! LSTM / GRU / RNN through the whole pipeline (ONNX import, RDP, planner, plan file, session)
//! at symbolic `seq` and `batch`: one plan per model, run at several shapes on one and two
//! threads, every output against the scalar reference of `sod2_kernels::rnn`.
use sod2_kernels::rnn::{recurrence_reference, Act, Cell, Lens, Recurrence, RecurrenceOut};
use sod2_onnx::proto::*;
use sod2_runtime::{DType, Plan, Session, TensorIn};

#[path = "common/onnx.rs"]
mod onnx;
use onnx::{f32s as init, model_bytes, value_info};

/// Values in `[-scale, scale]` from a small LCG.
fn data(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005) | 1;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// One recurrent layer's configuration and weights.
struct Layer {
    op: &'static str,
    cell: Cell,
    reversed: &'static [bool],
    batch_first: bool,
    input: usize,
    hidden: usize,
    w: Vec<f32>,
    r: Vec<f32>,
    b: Vec<f32>,
    p: Vec<f32>,
}

impl Layer {
    fn new(op: &'static str, direction: &str, batch_first: bool, seed: u64) -> Layer {
        let cell = match op {
            "LSTM" => Cell::Lstm {
                input_forget: false,
            },
            "GRU" => Cell::Gru {
                linear_before_reset: true,
            },
            _ => Cell::Simple,
        };
        let reversed: &'static [bool] = match direction {
            "forward" => &[false],
            "reverse" => &[true],
            _ => &[false, true],
        };
        let (input, hidden, dirs, g) = (5, 6, reversed.len(), cell.gates());
        Layer {
            op,
            cell,
            reversed,
            batch_first,
            input,
            hidden,
            w: data(dirs * g * hidden * input, seed, 0.6),
            r: data(dirs * g * hidden * hidden, seed + 1, 0.6),
            b: data(dirs * 2 * g * hidden, seed + 2, 0.4),
            p: data(dirs * 3 * hidden, seed + 3, 0.5),
        }
    }

    fn dirs(&self) -> usize {
        self.reversed.len()
    }

    fn lstm(&self) -> bool {
        self.op == "LSTM"
    }

    /// The ONNX model: X, sequence_lens, initial_h (and initial_c) as inputs with symbolic
    /// seq and batch; W, R, B (and P) as initializers; every output.
    fn model(&self, direction: &str) -> Vec<u8> {
        let (dirs, g, h, i) = (self.dirs(), self.cell.gates(), self.hidden, self.input);
        let d = dirs.to_string();
        let (hs, is) = (h.to_string(), i.to_string());
        let x: [&str; 3] = if self.batch_first {
            ["batch", "seq", &is]
        } else {
            ["seq", "batch", &is]
        };
        let st: [&str; 3] = if self.batch_first {
            ["batch", &d, &hs]
        } else {
            [&d, "batch", &hs]
        };
        let mut inputs = vec![
            value_info("x", 1, Some(&x)),
            value_info("lens", 6, Some(&["batch"])),
            value_info("h0", 1, Some(&st)),
        ];
        let mut names = vec!["x", "w", "r", "b", "lens", "h0"];
        let mut inits = vec![
            init("w", &[dirs, g * h, i], &self.w),
            init("r", &[dirs, g * h, h], &self.r),
            init("b", &[dirs, 2 * g * h], &self.b),
        ];
        let mut outs = vec!["y", "y_h"];
        if self.lstm() {
            inputs.push(value_info("c0", 1, Some(&st)));
            names.extend(["c0", "p"]);
            inits.push(init("p", &[dirs, 3 * h], &self.p));
            outs.push("y_c");
        }
        let attr = |name: &str, i: Option<i64>, s: Option<&str>| AttributeProto {
            name: Some(name.into()),
            r#type: Some(if i.is_some() { 2 } else { 3 }),
            i,
            s: s.map(|s| s.as_bytes().to_vec()),
            ..Default::default()
        };
        let graph = GraphProto {
            node: vec![NodeProto {
                op_type: Some(self.op.into()),
                name: Some("rnn".into()),
                input: names.iter().map(|s| s.to_string()).collect(),
                output: outs.iter().map(|s| s.to_string()).collect(),
                attribute: vec![
                    attr("hidden_size", Some(h as i64), None),
                    attr("layout", Some(i64::from(self.batch_first)), None),
                    attr("direction", None, Some(direction)),
                    attr(
                        "linear_before_reset",
                        Some(i64::from(self.op == "GRU")),
                        None,
                    ),
                ],
                ..Default::default()
            }],
            input: inputs,
            output: outs.iter().map(|o| value_info(o, 1, None)).collect(),
            initializer: inits,
            ..Default::default()
        };
        model_bytes(graph, 17)
    }
}

fn compile(bytes: &[u8], opt: sod2_planner::Opt) -> Vec<u8> {
    let m = sod2_onnx::import_bytes(bytes, None).unwrap();
    let ranges = ["seq", "batch"]
        .iter()
        .map(|n| sod2_analysis::DimRange {
            name: n.to_string(),
            lo: 1,
            hi: 64,
        })
        .collect();
    let a = sod2_analysis::analyze(
        &m,
        &sod2_analysis::Options {
            ranges,
            ..Default::default()
        },
    )
    .unwrap();
    let p = sod2_planner::plan(
        &m,
        &a,
        &sod2_planner::Options {
            opt,
            ..Default::default()
        },
    )
    .unwrap();
    sod2_format::write(&p.plan, &p.weights, 0)
}

#[test]
fn recurrent_layers_match_the_reference_at_every_shape() {
    let mut seed = 10;
    for op in ["LSTM", "GRU", "RNN"] {
        for direction in ["forward", "reverse", "bidirectional"] {
            for batch_first in [false, true] {
                seed += 10;
                let layer = Layer::new(op, direction, batch_first, seed);
                for opt in [sod2_planner::Opt::None, sod2_planner::Opt::default()] {
                    let plan = Plan::from_bytes(&compile(&layer.model(direction), opt)).unwrap();
                    for threads in [1, 2] {
                        let mut s = Session::new(plan.clone());
                        s.set_threads(threads).unwrap();
                        for (seq, batch) in [(1, 1), (6, 3), (3, 20)] {
                            check(&layer, &mut s, seq, batch, seed);
                        }
                    }
                }
            }
        }
    }
}

/// Runs `s` at one shape and compares every output with the reference.
fn check(l: &Layer, s: &mut Session, seq: usize, batch: usize, seed: u64) {
    let (dirs, h, lstm) = (l.dirs(), l.hidden, l.lstm());
    let x = data(seq * batch * l.input, seed + seq as u64, 1.0);
    let lens: Vec<i32> = (0..batch)
        .map(|b| (1 + (b * 5 + seq) % seq) as i32)
        .collect();
    let h0 = data(dirs * batch * h, seed + 7, 1.0);
    let c0 = data(dirs * batch * h, seed + 8, 1.0);
    let xd = if l.batch_first {
        [batch, seq, l.input]
    } else {
        [seq, batch, l.input]
    };
    let sd = if l.batch_first {
        [batch, dirs, h]
    } else {
        [dirs, batch, h]
    };
    let lens_bytes: Vec<u8> = lens.iter().flat_map(|v| v.to_le_bytes()).collect();
    let bd = [batch];
    let mut ins = vec![
        TensorIn::f32(&x, &xd),
        TensorIn::raw(DType::I32, &lens_bytes, &bd),
        TensorIn::f32(&h0, &sd),
    ];
    if lstm {
        ins.push(TensorIn::f32(&c0, &sd));
    }
    let got = s.run(&ins).unwrap();
    let acts: Vec<Act> = match l.cell {
        Cell::Simple => vec![Act::Tanh],
        Cell::Gru { .. } => vec![Act::Sigmoid, Act::Tanh],
        Cell::Lstm { .. } => vec![Act::Sigmoid, Act::Tanh, Act::Tanh],
    }
    .repeat(dirs);
    let n_state = dirs * batch * h;
    let (mut y, mut yh, mut yc) = (
        vec![0f32; seq * n_state],
        vec![0f32; n_state],
        vec![0f32; n_state],
    );
    recurrence_reference(
        &Recurrence {
            cell: l.cell,
            seq,
            batch,
            input: l.input,
            hidden: h,
            reversed: l.reversed,
            batch_first: l.batch_first,
            x: &x,
            w: &l.w,
            r: &l.r,
            b: Some(&l.b),
            seq_lens: Some(Lens::I32(&lens)),
            initial_h: Some(&h0),
            initial_c: lstm.then_some(&c0[..]),
            p: lstm.then_some(&l.p[..]),
            acts: &acts,
            clip: None,
        },
        RecurrenceOut {
            y: Some(&mut y),
            y_h: Some(&mut yh),
            y_c: lstm.then_some(&mut yc[..]),
        },
    )
    .unwrap();
    let yd: Vec<usize> = if l.batch_first {
        vec![batch, seq, dirs, h]
    } else {
        vec![seq, dirs, batch, h]
    };
    let want = [(&y, yd), (&yh, sd.to_vec()), (&yc, sd.to_vec())];
    assert_eq!(got.len(), if lstm { 3 } else { 2 });
    for (t, (w, wd)) in got.iter().zip(want) {
        assert_eq!(t.dims, wd, "{} {}", l.op, t.name);
        let v = t.to_f32().unwrap();
        for (k, (a, e)) in v.iter().zip(w.iter()).enumerate() {
            assert!(
                (a - e).abs() <= 1e-4 + 1e-4 * e.abs(),
                "{} {:?} bf {} seq {seq} batch {batch} {}[{k}]: {a} vs {e}",
                l.op,
                l.reversed,
                l.batch_first,
                t.name
            );
        }
    }
}
