//! Sampling and indexing: GridSample, RoiAlign, Col2Im, DeformConv, MaxUnpool
//! (`kernels::vision`) and TensorScatter (`kernels::cache`).
//!
//! Each kernel computes its output dims from its inputs (Col2Im's and MaxUnpool's from the
//! values of their shape inputs) and `Out::alloc` checks them against the plan's.
use smallvec::SmallVec;
use sod2_format::attrs::{GridMode, GridPadding};
use sod2_format::{DType, OpAttrs, OpCode};
use sod2_kernels::cache::{self, TensorScatter};
use sod2_kernels::vision::{self, Col2Im, DeformConv, GridSample, Interp, Padding, RoiAlign};

use super::{f32_only, ints_of, typed, typed_mut, wrong_attrs, Ctx, Kernel};

pub(crate) fn get(op: OpCode) -> Option<Kernel> {
    Some(match op {
        OpCode::GridSample => grid_sample,
        OpCode::RoiAlign => roi_align,
        OpCode::Col2Im => col2im,
        OpCode::DeformConv => deform_conv,
        OpCode::MaxUnpool => max_unpool,
        OpCode::TensorScatter => tensor_scatter,
        _ => return None,
    })
}

/// Per-dim lists held inline.
type List = SmallVec<[usize; 8]>;

fn grid_sample(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let OpAttrs::GridSample(a) = c.attrs else {
        return Err(wrong_attrs(c));
    };
    let (ins, outs) = c.io();
    let x = ins.first().and_then(Option::as_ref).ok_or("X is missing")?;
    let grid = ins
        .get(1)
        .and_then(Option::as_ref)
        .ok_or("grid is missing")?;
    let out = outs
        .first_mut()
        .and_then(Option::as_mut)
        .ok_or("Y is missing")?;
    for dt in [x.dtype, grid.dtype, out.dtype] {
        f32_only(dt)?;
    }
    let od = vision::grid_sample_dims(x.dims, grid.dims)?;
    let (xv, gv) = (typed::<f32>(x.data), typed::<f32>(grid.data));
    let p = GridSample {
        interp: match a.mode {
            GridMode::Nearest => Interp::Nearest,
            GridMode::Linear => Interp::Linear,
            GridMode::Cubic => Interp::Cubic,
        },
        padding: match a.padding {
            GridPadding::Zeros => Padding::Zeros,
            GridPadding::Border => Padding::Border,
            GridPadding::Reflection => Padding::Reflection,
        },
        align_corners: a.align_corners,
        x: &xv,
        x_dims: x.dims,
        grid: &gv,
        grid_dims: grid.dims,
    };
    vision::grid_sample_f32(&p, typed_mut::<f32>(out.alloc(&od)?)?)
}

fn roi_align(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let OpAttrs::RoiAlign(a) = *c.attrs else {
        return Err(wrong_attrs(c));
    };
    let (ins, outs) = c.io();
    let input = |i: usize| ins.get(i).and_then(Option::as_ref);
    let x = input(0).ok_or("X is missing")?;
    let rois = input(1).ok_or("rois is missing")?;
    let bi = input(2).ok_or("batch_indices is missing")?;
    let out = outs
        .first_mut()
        .and_then(Option::as_mut)
        .ok_or("Y is missing")?;
    for dt in [x.dtype, rois.dtype, out.dtype] {
        f32_only(dt)?;
    }
    let [n, ch, h, w] = *x.dims else {
        return Err(format!("X has dims {:?}, expected [N, C, H, W]", x.dims));
    };
    let r = bi.dims.iter().product::<usize>();
    if bi.dims.len() != 1 || rois.dims != [r, 4] {
        return Err(format!(
            "rois {:?} and batch_indices {:?} must be [R, 4] and [R]",
            rois.dims, bi.dims
        ));
    }
    let (xv, rv, bv) = (typed::<f32>(x.data), typed::<f32>(rois.data), ints_of(bi)?);
    let p = RoiAlign {
        x: &xv,
        x_dims: [n, ch, h, w],
        rois: &rv,
        batch_indices: &bv,
        out: [a.output_height, a.output_width],
        sampling_ratio: a.sampling_ratio,
        spatial_scale: a.spatial_scale,
        half_pixel: a.half_pixel,
        max: a.max,
    };
    let od = [r, ch, a.output_height, a.output_width];
    vision::roi_align_f32(&p, typed_mut::<f32>(out.alloc(&od)?)?)
}

/// The values of a 1-D shape input as sizes (negative values are errors).
fn sizes(c: &Ctx<'_, '_>, i: usize, name: &str) -> Result<List, String> {
    let v = ints_of(c.input(i)?)?;
    v.iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("{name} holds {d}: sizes are ≥ 0")))
        .collect()
}

fn col2im(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let OpAttrs::Col2Im(a) = c.attrs else {
        return Err(wrong_attrs(c));
    };
    let image = sizes(c, 1, "image_shape")?;
    let block = sizes(c, 2, "block_shape")?;
    let nd = image.len();
    let or = |v: &Option<Vec<usize>>, len: usize, d: usize| -> List {
        v.as_deref()
            .map_or_else(|| SmallVec::from_elem(d, len), List::from_slice)
    };
    let (dilations, pads, strides) = (
        or(&a.dilations, nd, 1),
        or(&a.pads, 2 * nd, 0),
        or(&a.strides, nd, 1),
    );
    let p = Col2Im {
        image: &image,
        block: &block,
        dilations: &dilations,
        pads: &pads,
        strides: &strides,
    };
    let (ins, outs) = c.io();
    let x = ins
        .first()
        .and_then(Option::as_ref)
        .ok_or("input is missing")?;
    let out = outs
        .first_mut()
        .and_then(Option::as_mut)
        .ok_or("output is missing")?;
    f32_only(x.dtype)?;
    f32_only(out.dtype)?;
    let od = p.out_dims(x.dims)?;
    let xv = typed::<f32>(x.data);
    vision::col2im_f32(&p, &xv, x.dims, typed_mut::<f32>(out.alloc(&od)?)?)
}

fn deform_conv(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let OpAttrs::DeformConv(a) = c.attrs else {
        return Err(wrong_attrs(c));
    };
    let (ins, outs) = c.io();
    let input = |i: usize| ins.get(i).and_then(Option::as_ref);
    let x = input(0).ok_or("X is missing")?;
    let w = input(1).ok_or("W is missing")?;
    let off = input(2).ok_or("offset is missing")?;
    let (b, mask) = (input(3), input(4));
    let out = outs
        .first_mut()
        .and_then(Option::as_mut)
        .ok_or("Y is missing")?;
    for t in [Some(x), Some(w), Some(off), b, mask].into_iter().flatten() {
        f32_only(t.dtype)?;
    }
    f32_only(out.dtype)?;
    let ns = a.window.spatial;
    if x.dims.len() != ns + 2 {
        return Err(format!(
            "X has dims {:?}; the attributes describe {ns} spatial dims",
            x.dims
        ));
    }
    if let Some(k) = &a.window.kernel {
        if w.dims.get(2..) != Some(&k[..]) {
            return Err(format!("W has dims {:?}, kernel_shape says {k:?}", w.dims));
        }
    }
    let (xv, wv, ov) = (
        typed::<f32>(x.data),
        typed::<f32>(w.data),
        typed::<f32>(off.data),
    );
    let bv = b.map(|t| typed::<f32>(t.data));
    let mv = mask.map(|t| typed::<f32>(t.data));
    let p = DeformConv {
        x: &xv,
        x_dims: x.dims,
        w: &wv,
        w_dims: w.dims,
        offset: &ov,
        offset_dims: off.dims,
        mask: mv.as_deref(),
        mask_dims: mask.map_or(&[], |m| m.dims),
        bias: bv.as_deref(),
        strides: &a.window.strides,
        dilations: &a.window.dilations,
        pads: &a.window.pads,
        group: a.group,
        offset_group: a.offset_group,
    };
    let od = p.out_dims()?;
    vision::deform_conv_f32(&p, typed_mut::<f32>(out.alloc(&od)?)?)
}

fn max_unpool(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let OpAttrs::MaxUnpool(win) = c.attrs else {
        return Err(wrong_attrs(c));
    };
    let shape = match c.opt_input(2) {
        Some(_) => Some(sizes(c, 2, "output_shape")?),
        None => None,
    };
    let (ins, outs) = c.io();
    let x = ins.first().and_then(Option::as_ref).ok_or("X is missing")?;
    let idx = ins.get(1).and_then(Option::as_ref).ok_or("I is missing")?;
    let out = outs
        .first_mut()
        .and_then(Option::as_mut)
        .ok_or("Y is missing")?;
    let ns = win.spatial;
    if x.dims.len() != ns + 2 || idx.dims != x.dims || out.dtype != x.dtype {
        return Err(format!(
            "X {:?} and I {:?} must have the same dims, with {ns} spatial dims",
            x.dims, idx.dims
        ));
    }
    if idx.dtype != DType::I64 {
        return Err(format!("I is {}, expected int64", idx.dtype.name()));
    }
    let kernel = win.kernel.as_deref().ok_or("kernel_shape is missing")?;
    let mut inferred: List = List::from_slice(&x.dims[..2]);
    for (k, (&size, &kk)) in x.dims[2..].iter().zip(kernel).enumerate() {
        // (in − 1)·stride − pads + kernel, as ONNX's reference infers it.
        let d = (size as i64 - 1) * win.strides[k] as i64 + kk as i64
            - win.pads[k] as i64
            - win.pads[k + ns] as i64;
        inferred.push(d.max(0) as usize);
    }
    let od = shape.unwrap_or_else(|| inferred.clone());
    let bytes = od
        .iter()
        .try_fold(x.dtype.size(), |a, &d| a.checked_mul(d))
        .filter(|&b| b <= isize::MAX as usize);
    if bytes.is_none() {
        return Err(format!("output_shape {od:?} is too large"));
    }
    let iv = typed::<i64>(idx.data);
    let elem = x.dtype.size();
    vision::max_unpool(x.data, &iv, elem, &inferred, &od, out.alloc(&od)?)
}

fn tensor_scatter(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let OpAttrs::TensorScatter(a) = *c.attrs else {
        return Err(wrong_attrs(c));
    };
    let write = match c.opt_input(2) {
        Some(w) => Some(ints_of(w)?),
        None => None,
    };
    let (ins, outs) = c.io();
    let past = ins
        .first()
        .and_then(Option::as_ref)
        .ok_or("past_cache is missing")?;
    let upd = ins
        .get(1)
        .and_then(Option::as_ref)
        .ok_or("update is missing")?;
    let out = outs
        .first_mut()
        .and_then(Option::as_mut)
        .ok_or("present_cache is missing")?;
    let r = past.dims.len();
    let axis = if a.axis < 0 {
        a.axis + r as i64
    } else {
        a.axis
    };
    let axis = usize::try_from(axis)
        .ok()
        .filter(|&x| x < r)
        .ok_or_else(|| format!("axis {} is outside the cache's rank {r}", a.axis))?;
    let fits = upd.dims.len() == r
        && (0..r).all(|k| k == axis || upd.dims[k] == past.dims[k])
        && upd.dtype == past.dtype
        && out.dtype == past.dtype;
    if !fits {
        return Err(format!(
            "update {:?} must match past_cache {:?} (and its type) but along axis {axis}",
            upd.dims, past.dims
        ));
    }
    let p = TensorScatter {
        dims: past.dims,
        axis,
        len: upd.dims[axis],
        write_indices: write.as_deref(),
        circular: a.circular,
        elem: past.dtype.size(),
    };
    cache::tensor_scatter(&p, past.data, upd.data, out.alloc(past.dims)?)
}
