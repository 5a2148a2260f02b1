//! Signal processing and linear-algebra glue: DFT, STFT, MelWeightMatrix and Det. Output dims
//! are computed here from the inputs' dims and values (a run-time `dft_length`, axis or
//! `frame_step` makes them execution-determined) and checked against the plan where it knows
//! them. The kernels compute in f64 over f32 or f64 tensors (f16 / bf16 through the shim).
use sod2_format::attrs::dft_axis_ok;
use sod2_format::{DType, OpAttrs, OpCode};
use sod2_kernels::math::Real;
use sod2_kernels::shape::numel;
use sod2_kernels::{det, signal};

use super::{floats_of, ints_of, typed, typed_mut, wrong_attrs, Ctx, Kernel};

pub(crate) fn get(op: OpCode) -> Option<Kernel> {
    Some(match op {
        OpCode::Det => det_op,
        OpCode::DFT => dft,
        OpCode::STFT => stft,
        OpCode::MelWeightMatrix => mel_weight_matrix,
        _ => return None,
    })
}

/// The one integer of scalar input `i` (`None`: absent).
fn scalar_int(c: &Ctx<'_, '_>, i: usize, what: &str) -> Result<Option<i64>, String> {
    let Some(x) = c.opt_input(i) else {
        return Ok(None);
    };
    match ints_of(x)?.as_ref() {
        [v] => Ok(Some(*v)),
        v => Err(format!("{what} holds {} values, expected 1", v.len())),
    }
}

/// A length input: at least 1.
fn length(v: i64, what: &str) -> Result<usize, String> {
    usize::try_from(v)
        .ok()
        .filter(|&n| n >= 1)
        .ok_or_else(|| format!("{what} is {v}, must be at least 1"))
}

fn not_float(op: &str, d: DType) -> String {
    format!("{op} on {} is not supported (f32 or f64)", d.name())
}

fn det_op(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    fn go<T: Real + bytemuck::Pod>(c: &mut Ctx<'_, '_>) -> Result<(), String> {
        let (ins, outs) = c.io();
        let x = ins[0].as_ref().ok_or("no input")?;
        let r = x.dims.len();
        if r < 2 || x.dims[r - 1] != x.dims[r - 2] {
            return Err(format!("Det needs [..., M, M], got {:?}", x.dims));
        }
        let xs = typed::<T>(x.data);
        let o = typed_mut::<T>(
            outs[0]
                .as_mut()
                .ok_or("no output")?
                .alloc(&x.dims[..r - 2])?,
        )?;
        det::det(&xs, x.dims[r - 1], o)
    }
    match c.input(0)?.dtype {
        DType::F32 => go::<f32>(c),
        DType::F64 => go::<f64>(c),
        d => Err(not_float("Det", d)),
    }
}

fn dft(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let OpAttrs::Dft(a) = *c.attrs else {
        return Err(wrong_attrs(c));
    };
    let dims = c.input(0)?.dims;
    let r = dims.len();
    let given = match a.axis {
        Some(ax) => ax,
        None => scalar_int(c, 2, "DFT's axis")?.unwrap_or(-2),
    };
    if !dft_axis_ok(given, r) {
        return Err(format!(
            "DFT: axis {given} is outside [-{r}, -2] ∪ [0, {}] for an input of rank {r}",
            r as i64 - 2
        ));
    }
    let axis = if given < 0 { given + r as i64 } else { given } as usize;
    let n = match scalar_int(c, 1, "DFT's dft_length")? {
        Some(v) => length(v, "DFT's dft_length")?,
        None if a.inverse && a.onesided => length(
            2 * (dims[axis] as i64 - 1),
            "the default dft_length of a one-sided inverse DFT, 2·(bins − 1),",
        )?,
        None => length(dims[axis] as i64, "the DFT axis's length")?,
    };
    let p = signal::Dft {
        dims,
        axis,
        length: n,
        inverse: a.inverse,
        onesided: a.onesided,
    };
    fn go<T: Real + bytemuck::Pod>(c: &mut Ctx<'_, '_>, p: &signal::Dft<'_>) -> Result<(), String> {
        let (ins, outs) = c.io();
        let x = ins[0].as_ref().ok_or("no input")?;
        let xs = typed::<T>(x.data);
        let o = typed_mut::<T>(outs[0].as_mut().ok_or("no output")?.alloc(&p.out_dims())?)?;
        signal::dft(&xs, p, o)
    }
    match c.input(0)?.dtype {
        DType::F32 => go::<f32>(c, &p),
        DType::F64 => go::<f64>(c, &p),
        d => Err(not_float("DFT", d)),
    }
}

fn stft(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let OpAttrs::Stft { onesided } = *c.attrs else {
        return Err(wrong_attrs(c));
    };
    let dims = c.input(0)?.dims;
    if dims.len() != 3 {
        return Err(format!(
            "STFT: the signal must be [batch, length, 1 or 2], got {dims:?}"
        ));
    }
    let step = scalar_int(c, 1, "STFT's frame_step")?.ok_or("STFT: frame_step is missing")?;
    let step = length(step, "STFT's frame_step")?;
    let window = c.opt_input(2).map(|w| w.dims);
    if let Some(w) = window {
        if w.len() != 1 {
            return Err(format!("STFT: the window must have rank 1, got {w:?}"));
        }
    }
    let frame_length = match scalar_int(c, 3, "STFT's frame_length")? {
        Some(v) => length(v, "STFT's frame_length")?,
        None => length(
            window.map_or(dims[1], |w| w[0]) as i64,
            "STFT's frame length",
        )?,
    };
    let p = signal::Stft {
        dims,
        step,
        frame_length,
        onesided,
    };
    fn go<T: Real + bytemuck::Pod>(
        c: &mut Ctx<'_, '_>,
        p: &signal::Stft<'_>,
    ) -> Result<(), String> {
        let od = p.out_dims()?;
        let (ins, outs) = c.io();
        let x = ins[0].as_ref().ok_or("no input")?;
        let xs = typed::<T>(x.data);
        let w = match ins.get(2).and_then(Option::as_ref) {
            Some(w) if w.dtype != x.dtype => {
                return Err(format!(
                    "STFT: the window is {}, the signal {}",
                    w.dtype.name(),
                    x.dtype.name()
                ))
            }
            Some(w) => Some(typed::<T>(w.data)),
            None => None,
        };
        let o = typed_mut::<T>(outs[0].as_mut().ok_or("no output")?.alloc(&od)?)?;
        signal::stft(&xs, w.as_deref(), p, o)
    }
    match c.input(0)?.dtype {
        DType::F32 => go::<f32>(c, &p),
        DType::F64 => go::<f64>(c, &p),
        d => Err(not_float("STFT", d)),
    }
}

fn mel_weight_matrix(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let int = |i: usize, what: &str| -> Result<i64, String> {
        scalar_int(c, i, what)?.ok_or_else(|| format!("MelWeightMatrix: {what} is missing"))
    };
    let bins = int(0, "num_mel_bins")?;
    let bins = usize::try_from(bins).map_err(|_| format!("num_mel_bins is {bins}, must be ≥ 0"))?;
    let dft_length = length(int(1, "dft_length")?, "MelWeightMatrix's dft_length")?;
    let sample_rate = int(2, "sample_rate")? as f64;
    let float = |i: usize, what: &str| -> Result<f64, String> {
        match floats_of(c.input(i)?)?.as_slice() {
            [v] => Ok(*v),
            v => Err(format!("{what} holds {} values, expected 1", v.len())),
        }
    };
    let p = signal::MelWeights {
        bins,
        dft_length,
        sample_rate,
        lower_hz: float(3, "lower_edge_hertz")?,
        upper_hz: float(4, "upper_edge_hertz")?,
    };
    let od = p.out_dims();
    let mut w = sod2_kernels::scratch::filled(numel(&od), 0.0)?;
    signal::mel_weight_matrix(&p, &mut w)?;
    let o = c.out(0)?;
    match o.dtype {
        DType::F32 => {
            let out = typed_mut::<f32>(o.alloc(&od)?)?;
            out.iter_mut().zip(&w).for_each(|(d, s)| *d = *s as f32);
        }
        DType::F64 => typed_mut::<f64>(o.alloc(&od)?)?.copy_from_slice(&w),
        d => return Err(not_float("MelWeightMatrix", d)),
    }
    Ok(())
}
