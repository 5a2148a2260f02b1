//! Runs an ONNX model with tract on `.npy` inputs and prints one JSON line:
//! `{"median_ms", "p90_ms", "first_run_ms", "mode"}` or `{"error": "..."}`.
//! `mode` is `symbolic` when tract optimised and ran the model with its dynamic dims left
//! symbolic (one optimised model for every shape, like sod2's plan), else `pinned` (the input
//! shapes of this run fixed before optimisation). `optimize_ms` is the load + optimisation time.
//!
//! With prior inputs (another shape), a symbolic model runs them first, so `first_run_ms` is the
//! first run after a shape change (a pinned model cannot run another shape; its first run is cold).
//!
//! usage: sod2-tract-runner MODEL.onnx RUNS K IN_1.npy..IN_K.npy [PRIOR_1.npy..PRIOR_K.npy]
use std::time::Instant;

use tract_onnx::prelude::*;
use tract_onnx::prelude::tract_data::internal::bail;

/// A little-endian, C-order `.npy` of f32 / i64 / bool / i32 / f64.
fn read_npy(path: &str) -> TractResult<Tensor> {
    let b = std::fs::read(path)?;
    if b.len() < 10 || &b[..6] != b"\x93NUMPY" {
        bail!("{path}: not a .npy file");
    }
    let (hlen, start) = if b[6] == 1 {
        (u16::from_le_bytes([b[8], b[9]]) as usize, 10)
    } else {
        (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12)
    };
    let header = std::str::from_utf8(&b[start..start + hlen])?;
    let descr = header.split("'descr':").nth(1).and_then(|s| s.split('\'').nth(1)).unwrap_or("");
    if header.contains("'fortran_order': True") {
        bail!("{path}: Fortran order");
    }
    let shape_txt = header.split('(').nth(1).and_then(|s| s.split(')').next()).unwrap_or("");
    let shape: Vec<usize> = shape_txt
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<Result<_, _>>()?;
    let data = &b[start + hlen..];
    let n: usize = shape.iter().product();
    macro_rules! typed {
        ($t:ty) => {{
            let sz = std::mem::size_of::<$t>();
            if data.len() < n * sz {
                bail!("{path}: short data");
            }
            let v: Vec<$t> = data[..n * sz]
                .chunks_exact(sz)
                .map(|c| <$t>::from_le_bytes(c.try_into().unwrap()))
                .collect();
            Tensor::from_shape(&shape, &v)?
        }};
    }
    Ok(match descr {
        "<f4" => typed!(f32),
        "<f8" => typed!(f64),
        "<i8" => typed!(i64),
        "<i4" => typed!(i32),
        "|b1" | "|u1" => {
            let v: Vec<bool> = data[..n].iter().map(|&x| x != 0).collect();
            Tensor::from_shape(&shape, &v)?
        }
        d => bail!("{path}: dtype {d} not handled"),
    })
}

fn run() -> TractResult<String> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        bail!("usage: sod2-tract-runner MODEL.onnx RUNS K IN.npy.. [PRIOR.npy..]");
    }
    let runs: usize = args[2].parse()?;
    let k: usize = args[3].parse()?;
    let files = &args[4..];
    if files.len() < k {
        bail!("{k} inputs expected");
    }
    let inputs: Vec<Tensor> = files[..k].iter().map(|p| read_npy(p)).collect::<TractResult<_>>()?;
    let prior: Vec<Tensor> = files[k..].iter().map(|p| read_npy(p)).collect::<TractResult<_>>()?;
    let t = Instant::now();
    // Symbolic dims first (one optimised model for every shape); if tract cannot optimise or
    // run the model that way, pin this run's input shapes.
    let symbolic = tract_onnx::onnx()
        .model_for_path(&args[1])
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .and_then(|p| {
            p.run(inputs.iter().map(|x| x.clone().into()).collect())?;
            Ok(p)
        });
    let (plan, mode) = match symbolic {
        Ok(p) => (p, "symbolic"),
        Err(_) => {
            let mut m = tract_onnx::onnx().model_for_path(&args[1])?;
            for (i, x) in inputs.iter().enumerate() {
                m = m.with_input_fact(i, InferenceFact::dt_shape(x.datum_type(), x.shape()))?;
            }
            (m.into_optimized()?.into_runnable()?, "pinned")
        }
    };
    let optimize_ms = t.elapsed().as_secs_f64() * 1e3;
    if mode == "symbolic" && prior.len() == k {
        for _ in 0..2 {
            plan.run(prior.iter().map(|x| x.clone().into()).collect())?;
        }
    }
    let feed = || -> TVec<TValue> { inputs.iter().map(|x| x.clone().into()).collect() };
    let t = Instant::now();
    plan.run(feed())?;
    let first = t.elapsed().as_secs_f64() * 1e3;
    let mut ts = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let f = feed();
        let t = Instant::now();
        plan.run(f)?;
        ts.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ts.sort_by(|a, b| a.total_cmp(b));
    let p90 = ts[((ts.len() as f64 * 0.9).ceil() as usize).clamp(1, ts.len()) - 1];
    Ok(format!(
        "{{\"median_ms\": {:.4}, \"p90_ms\": {p90:.4}, \"first_run_ms\": {first:.4}, \"optimize_ms\": {optimize_ms:.2}, \"mode\": \"{mode}\"}}",
        ts[ts.len() / 2]
    ))
}

fn main() {
    match run() {
        Ok(s) => println!("{s}"),
        Err(e) => println!("{{\"error\": {:?}}}", format!("{e:#}").replace('\n', " ")),
    }
}
