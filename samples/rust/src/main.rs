//! sod2 Rust sample: load a plan, run it at two input shapes, print a summary of every output.
//! Inputs are synthetic and deterministic (token ids (i*7)%97+2, attention mask 1), as in the
//! other samples, so `scripts/samples/check.py` can compare with `sod2 run`.
use sod2_runtime::{Plan, Session, TensorIn};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: sod2-sample-rust MODEL.sod2")?;
    let plan = Plan::load(path.as_ref())?;
    println!(
        "sod2 {}: {} inputs, {} outputs",
        env!("CARGO_PKG_VERSION"),
        plan.inputs().len(),
        plan.outputs().len()
    );
    let mut session = Session::new(plan);
    for (batch, seq) in [(1usize, 7usize), (2, 16)] {
        let n = batch * seq;
        let ids: Vec<i64> = (0..n).map(|i| (i as i64 * 7) % 97 + 2).collect();
        let mask = vec![1i64; n];
        let dims = [batch, seq];
        let arena = session.prepare(&[dims.to_vec(), dims.to_vec()])?;
        let outs = session.run(&[TensorIn::i64(&ids, &dims), TensorIn::i64(&mask, &dims)])?;
        println!("shape batch={batch} seq={seq} arena_bytes={arena}");
        for (k, t) in outs.iter().enumerate() {
            let v = t.to_f32().ok_or("expected f32 outputs")?;
            let sum: f64 = v.iter().map(|&x| f64::from(x)).sum();
            let mean_abs = v.iter().map(|&x| f64::from(x).abs()).sum::<f64>() / v.len() as f64;
            let dims: Vec<String> = t.dims.iter().map(|d| d.to_string()).collect();
            println!(
                "output {k} dims [{}] sum={sum:.6} mean_abs={mean_abs:.6} first={:.6}",
                dims.join(", "),
                v[0]
            );
        }
    }
    Ok(())
}
