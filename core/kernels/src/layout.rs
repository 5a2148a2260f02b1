//! Data movement, element-size generic (`es` bytes per element).
use crate::scratch::{reserve, ScratchRefused};
use crate::shape::{numel, strides, Dims};

/// Transposes `x` (dims `d`) by `perm`.
pub fn transpose(x: &[u8], d: &[usize], perm: &[usize], out: &mut [u8], es: usize) {
    let xs = strides(d);
    // Output dims with their input strides; size-1 dims dropped, neighbours that stay
    // neighbours in the input merged.
    let mut od = Dims::new();
    let mut ps = Dims::new();
    for &p in perm {
        let (n, st) = (d[p], xs[p]);
        if n == 1 {
            continue;
        }
        match (od.last_mut(), ps.last_mut()) {
            (Some(ln), Some(ls)) if *ls == st * n => {
                *ln *= n;
                *ls = st;
            }
            _ => {
                od.push(n);
                ps.push(st);
            }
        }
    }
    if od.is_empty() {
        let k = es.min(out.len()).min(x.len());
        out[..k].copy_from_slice(&x[..k]);
        return;
    }
    let r = od.len();
    if ps[r - 1] == 1 {
        // The innermost output dim is contiguous in the input: copy whole runs (short runs,
        // such as an attention head's columns, as fixed-size moves rather than memcpy calls).
        let run = od[r - 1] * es;
        fn runs<const B: usize>(x: &[u8], out: &mut [u8], od: &[usize], ps: &[usize], es: usize) {
            let r = od.len();
            crate::shape::for_each_offset(&od[..r - 1], [&ps[..r - 1]], |o, [i]| {
                let src: &[u8; B] = x[i * es..i * es + B].try_into().unwrap_or(&[0; B]);
                if let Ok(dst) = <&mut [u8; B]>::try_from(&mut out[o * B..(o + 1) * B]) {
                    *dst = *src;
                }
            });
        }
        match run {
            16 => runs::<16>(x, out, &od, &ps, es),
            32 => runs::<32>(x, out, &od, &ps, es),
            64 => runs::<64>(x, out, &od, &ps, es),
            128 => runs::<128>(x, out, &od, &ps, es),
            _ => crate::shape::for_each_offset(&od[..r - 1], [&ps[..r - 1]], |o, [i]| {
                out[o * run..(o + 1) * run].copy_from_slice(&x[i * es..i * es + run])
            }),
        }
        return;
    }
    // A (batched) matrix transpose, e.g. NCHW <-> NHWC: `((batches, batch stride), (rows,
    // columns, column stride))`.
    type Matrix = ((usize, usize), (usize, usize, usize));
    let matrix: Option<Matrix> = ((r == 2 && ps[0] == 1) || (r == 3 && ps[1] == 1)).then(|| {
        let batch = if r == 3 { (od[0], ps[0]) } else { (1, 0) };
        (batch, (od[r - 2], od[r - 1], ps[r - 1]))
    });
    fn typed<T: bytemuck::Pod>(
        x: &[u8],
        out: &mut [u8],
        od: &[usize],
        ps: &[usize],
        matrix: Option<Matrix>,
    ) -> bool {
        match (
            bytemuck::try_cast_slice::<u8, T>(x),
            bytemuck::try_cast_slice_mut::<u8, T>(out),
        ) {
            (Ok(xt), Ok(ot)) => {
                match matrix {
                    // In square blocks, so both the reads and the writes stay within a few
                    // cache lines.
                    Some(((nb, sb), (rows, cols, sj))) => {
                        blocked_transpose(xt, ot, nb, sb, rows, cols, sj)
                    }
                    None => crate::shape::for_each_offset(od, [ps], |o, [i]| ot[o] = xt[i]),
                }
                true
            }
            _ => false,
        }
    }
    /// `out[b][i][j] = x[b * sb + j * sj + i]` for `b < nb`, `i < rows`, `j < cols`.
    fn blocked_transpose<T: Copy>(
        x: &[T],
        out: &mut [T],
        nb: usize,
        sb: usize,
        rows: usize,
        cols: usize,
        sj: usize,
    ) {
        const B: usize = 16;
        for b in 0..nb {
            let ob = &mut out[b * rows * cols..(b + 1) * rows * cols];
            let xb = &x[b * sb..];
            for i0 in (0..rows).step_by(B) {
                let i1 = (i0 + B).min(rows);
                for j0 in (0..cols).step_by(B) {
                    let j1 = (j0 + B).min(cols);
                    for i in i0..i1 {
                        let orow = &mut ob[i * cols + j0..i * cols + j1];
                        for (o, j) in orow.iter_mut().zip(j0..j1) {
                            *o = xb[j * sj + i];
                        }
                    }
                }
            }
        }
    }
    if let (4, Some((batch, mat))) = (es, matrix) {
        // A matrix of 4-byte values: squares transposed in vector registers (moves and
        // shuffles only, so any bit pattern passes through unchanged).
        if let (Ok(xf), Ok(of)) = (
            bytemuck::try_cast_slice::<u8, f32>(x),
            bytemuck::try_cast_slice_mut::<u8, f32>(out),
        ) {
            let isa = crate::simd::Isa::detect();
            if crate::simd::transpose(isa, xf, of, batch, mat).is_ok() {
                return;
            }
        }
    }
    let done = match es {
        1 => typed::<u8>(x, out, &od, &ps, matrix),
        2 => typed::<u16>(x, out, &od, &ps, matrix),
        4 => typed::<u32>(x, out, &od, &ps, matrix),
        8 => typed::<u64>(x, out, &od, &ps, matrix),
        _ => false,
    };
    if !done {
        crate::shape::for_each_offset(&od, [&ps], |o, [i]| {
            out[o * es..o * es + es].copy_from_slice(&x[i * es..i * es + es])
        });
    }
}

/// Strided slice: per axis a start (already clamped) and a step; `od` is the output shape.
/// Walks the output with an odometer (no division per element) and copies whole runs where
/// the innermost step is 1.
pub fn slice(
    x: &[u8],
    d: &[usize],
    starts: &[i64],
    steps: &[i64],
    out: &mut [u8],
    od: &[usize],
    es: usize,
) {
    let n = numel(od);
    if n == 0 {
        return;
    }
    let r = od.len();
    if r == 0 {
        out[..es].copy_from_slice(&x[..es]);
        return;
    }
    let xs = strides(d);
    let base: i64 = starts.iter().zip(&xs).map(|(&s, &st)| s * st as i64).sum();
    let ss: smallvec::SmallVec<[i64; 8]> = steps
        .iter()
        .zip(&xs)
        .map(|(&s, &st)| s * st as i64)
        .collect();
    // Trailing axes taken whole (start 0, step 1, full length) are one contiguous block per
    // element of the axis before them: copied as blocks of `tail` elements (an identity slice
    // of [.., 256, 1] copied element by element ran 20x slower).
    let mut r = r;
    let mut tail = 1usize;
    while r > 1 && steps[r - 1] == 1 && starts[r - 1] == 0 && od[r - 1] == d[r - 1] {
        tail *= d[r - 1];
        r -= 1;
    }
    let eb = es * tail;
    let inner = od[r - 1];
    let s_in = ss[r - 1];
    let mut idx: Dims = smallvec::smallvec![0usize; r - 1];
    let mut off = base;
    let mut o = 0;
    loop {
        if s_in == 1 {
            let i = off as usize * es;
            out[o * eb..(o + inner) * eb].copy_from_slice(&x[i..i + inner * eb]);
        } else {
            for k in 0..inner {
                let i = (off + k as i64 * s_in) as usize * es;
                out[(o + k) * eb..(o + k + 1) * eb].copy_from_slice(&x[i..i + eb]);
            }
        }
        o += inner;
        // Advance the outer odometer.
        let mut k = r - 1;
        loop {
            if k == 0 {
                return;
            }
            k -= 1;
            idx[k] += 1;
            off += ss[k];
            if idx[k] < od[k] {
                break;
            }
            off -= ss[k] * od[k] as i64;
            idx[k] = 0;
        }
    }
}

/// Concatenates along `axis`.
pub fn concat(parts: &[(&[u8], &[usize])], axis: usize, out: &mut [u8], es: usize) {
    let outer: usize = parts.first().map_or(1, |(_, d)| d[..axis].iter().product());
    let mut pos = 0;
    for o in 0..outer {
        for (data, d) in parts {
            let chunk = d[axis..].iter().product::<usize>() * es;
            out[pos..pos + chunk].copy_from_slice(&data[o * chunk..(o + 1) * chunk]);
            pos += chunk;
        }
    }
}

/// Gather along `axis` with (already normalised, in-range) indices.
/// Indices are taken modulo the axis length from below (`-1` is the last); the caller has
/// checked they lie in `-n..n`.
pub fn gather(x: &[u8], d: &[usize], axis: usize, idx: &[i64], out: &mut [u8], es: usize) {
    let outer: usize = d[..axis].iter().product();
    let inner: usize = d[axis + 1..].iter().product::<usize>() * es;
    let n = d[axis];
    let mut pos = 0;
    for o in 0..outer {
        for &i in idx {
            let i = if i < 0 { i + n as i64 } else { i } as usize;
            let src = (o * n + i) * inner;
            out[pos..pos + inner].copy_from_slice(&x[src..src + inner]);
            pos += inner;
        }
    }
}

/// How [`pad`] pads.
#[derive(Clone, Copy, Debug)]
pub struct Pad<'a> {
    /// Padding at the beginning of each axis (the end's follows from the output dims).
    pub begin: &'a [i64],
    /// `constant`, `reflect`, `edge` or `wrap`.
    pub mode: &'a str,
    /// The constant (`es` bytes).
    pub value: &'a [u8],
}

/// Pads `x` (dims `d`) into `out` (dims `od`, elements of `es` bytes) with a constant, or by
/// `reflect` / `edge` / `wrap`.
pub fn pad(x: &[u8], d: &[usize], p: &Pad<'_>, out: &mut [u8], od: &[usize], es: usize) {
    let Pad {
        begin: pads_begin,
        mode,
        value,
    } = *p;
    let xs = strides(d);
    let os = strides(od);
    for o in 0..numel(od) {
        let mut rem = o;
        let mut off = 0usize;
        let mut inside = true;
        for k in 0..od.len() {
            let oi = (rem / os[k]) as i64;
            rem %= os[k];
            let mut i = oi - pads_begin[k];
            let n = d[k] as i64;
            if i < 0 || i >= n {
                match mode {
                    "edge" => i = i.clamp(0, n - 1),
                    "reflect" if n > 1 => {
                        let p = 2 * (n - 1);
                        i = i.rem_euclid(p);
                        if i >= n {
                            i = p - i;
                        }
                    }
                    "reflect" => i = 0,
                    "wrap" => i = i.rem_euclid(n),
                    _ => inside = false,
                }
            }
            if !inside {
                break;
            }
            off += i as usize * xs[k];
        }
        let dst = &mut out[o * es..o * es + es];
        if inside {
            dst.copy_from_slice(&x[off * es..off * es + es]);
        } else {
            dst.copy_from_slice(value);
        }
    }
}

/// Tiles `x` by `reps`.
pub fn tile(x: &[u8], d: &[usize], out: &mut [u8], od: &[usize], es: usize) {
    let xs = strides(d);
    let os = strides(od);
    for o in 0..numel(od) {
        let mut rem = o;
        let mut off = 0;
        for k in 0..od.len() {
            off += ((rem / os[k]) % d[k]) * xs[k];
            rem %= os[k];
        }
        out[o * es..o * es + es].copy_from_slice(&x[off * es..off * es + es]);
    }
}

/// Resize of an N-d f32 tensor. `coord(axis, out_index) -> input coordinate` (float).
/// Per-axis tables (source index for nearest; low, high and weight for linear) are computed once,
/// then the output is walked without allocating. The tables live in per-thread buffers that
/// only grow; a growth past the cap of [`crate::scratch::set_limit`] (or that the allocator
/// refuses) is a refusal, and `out` is left unwritten.
pub fn resize_f32(
    x: &[f32],
    d: &[usize],
    out: &mut [f32],
    od: &[usize],
    coord: impl Fn(usize, usize) -> f64,
    mode: &str,
    nearest: &str,
) -> Result<(), ScratchRefused> {
    let xs = strides(d);
    let r = d.len();
    if numel(od) == 0 {
        return Ok(());
    }
    // Per-axis tables, flattened: axis k's entries start at `at[k]` (one per output index).
    let mut at: Dims = smallvec::smallvec![0; r + 1];
    for k in 0..r {
        at[k + 1] = at[k] + od[k];
    }
    if mode == "nearest" {
        // src[k][i]: element offset (already times the stride) along axis k for output index i
        let mut tab = RESIZE_NEAREST.with(|t| t.take());
        tab.clear();
        // (A refusal drops the table: it is rebuilt, fallibly, on the next call.)
        reserve(&mut tab, at[r])?;
        tab.extend((0..r).flat_map(|k| {
            let (coord, xs) = (&coord, &xs);
            (0..od[k]).map(move |i| {
                let c = coord(k, i);
                let v = match nearest {
                    "floor" => c.floor(),
                    "ceil" => c.ceil(),
                    "round_prefer_ceil" => (c + 0.5).floor(),
                    _ => {
                        if c.fract() == 0.5 {
                            c.floor()
                        } else {
                            c.round()
                        }
                    }
                };
                (v.max(0.0) as usize).min(d[k] - 1) * xs[k]
            })
        }));
        let src = |k: usize| &tab[at[k]..at[k + 1]];
        let last = r - 1;
        let w = od[last];
        let cols = RowPattern::of(src(last));
        let mut idx: Dims = smallvec::smallvec![0usize; r];
        let mut o = 0;
        let mut prev_base = None;
        'rows: loop {
            let base: usize = (0..last).map(|k| src(k)[idx[k]]).sum();
            if prev_base == Some(base) && o >= w {
                // The same source row as the output row before (an upsampled row): copy it.
                out.copy_within(o - w..o, o);
            } else {
                let xrow = &x[base..];
                let orow = &mut out[o..o + w];
                match cols {
                    RowPattern::Every(f) => {
                        for (v, &xv) in orow.iter_mut().zip(xrow.iter().step_by(f)) {
                            *v = xv;
                        }
                    }
                    RowPattern::Repeat(f) => {
                        let mut chunks = orow.chunks_exact_mut(f);
                        for (vs, &xv) in (&mut chunks).zip(xrow) {
                            vs.fill(xv);
                        }
                        let tail = chunks.into_remainder();
                        if let Some(&xv) = xrow.get(w / f) {
                            tail.fill(xv);
                        }
                    }
                    RowPattern::Table => {
                        for (v, &sl) in orow.iter_mut().zip(src(last)) {
                            *v = xrow[sl];
                        }
                    }
                }
            }
            prev_base = Some(base);
            o += w;
            // advance the outer index
            let mut k = last;
            loop {
                if k == 0 {
                    break 'rows;
                }
                k -= 1;
                idx[k] += 1;
                if idx[k] < od[k] {
                    break;
                }
                idx[k] = 0;
            }
        }
        RESIZE_NEAREST.with(|t| t.set(tab));
        return Ok(());
    }
    // (multi)linear: per axis (low offset, high offset, weight of high)
    let mut flat = RESIZE_LINEAR.with(|t| t.take());
    flat.clear();
    reserve(&mut flat, at[r])?;
    flat.extend((0..r).flat_map(|k| {
        let (coord, xs) = (&coord, &xs);
        (0..od[k]).map(move |i| {
            let c = coord(k, i).clamp(0.0, (d[k] - 1) as f64);
            let lo = c.floor() as usize;
            let hi = (lo + 1).min(d[k] - 1);
            (lo * xs[k], hi * xs[k], c - lo as f64)
        })
    }));
    linear(x, d, out, od, &xs, &flat, &at);
    RESIZE_LINEAR.with(|t| t.set(flat));
    Ok(())
}

/// How a nearest resize's output row reads its input row, from the last axis' source
/// offsets: every `f`-th input value (downsampling by an integer factor, `f = 1` a copy), each
/// input value `f` times over (upsampling by an integer factor), or any other table.
#[derive(Clone, Copy, Debug, PartialEq)]
enum RowPattern {
    /// `src[i] = i · f`.
    Every(usize),
    /// `src[i] = ⌊i / f⌋` (the last repeat may be cut short).
    Repeat(usize),
    /// Anything else: read through the table.
    Table,
}

impl RowPattern {
    fn of(src: &[usize]) -> RowPattern {
        let f = src.get(1).copied().unwrap_or(1).max(1);
        if src.iter().enumerate().all(|(i, &s)| s == i * f) {
            return RowPattern::Every(f);
        }
        let f = src.iter().take_while(|&&s| s == 0).count();
        if f > 1 && src.iter().enumerate().all(|(i, &s)| s == i / f) {
            return RowPattern::Repeat(f);
        }
        RowPattern::Table
    }
}

thread_local! {
    /// Resize's per-axis tables, reused by every call on this thread.
    static RESIZE_NEAREST: std::cell::Cell<Vec<usize>> = const { std::cell::Cell::new(Vec::new()) };
    static RESIZE_LINEAR: std::cell::Cell<Vec<(usize, usize, f64)>> =
        const { std::cell::Cell::new(Vec::new()) };
}

/// (Multi)linear resize from per-axis (low offset, high offset, weight of high) tables
/// (axis `k`'s entries at `at[k]..at[k + 1]` of `flat`).
fn linear(
    x: &[f32],
    d: &[usize],
    out: &mut [f32],
    od: &[usize],
    xs: &[usize],
    flat: &[(usize, usize, f64)],
    at: &[usize],
) {
    let r = d.len();
    let tab = |k: usize| &flat[at[k]..at[k + 1]];
    // Fast path: only the last two axes are interpolated (NCHW images): per plane, each output
    // row blends two input rows, each output column two input columns (f32 weights).
    let identity = |k: usize| {
        od[k] == d[k]
            && tab(k)
                .iter()
                .enumerate()
                .all(|(i, &(lo, hi, t))| lo == i * xs[k] && (t == 0.0 || hi == lo))
    };
    if r >= 2 && (0..r - 2).all(identity) {
        let (ih, iw, oh, ow) = (d[r - 2], d[r - 1], od[r - 2], od[r - 1]);
        let planes = numel(&d[..r - 2]);
        let cols = tab(r - 1);
        for p in 0..planes {
            let xp = &x[p * ih * iw..(p + 1) * ih * iw];
            let op = &mut out[p * oh * ow..(p + 1) * oh * ow];
            for (oy, orow) in op.chunks_mut(ow).enumerate() {
                let (ylo, yhi, ty) = tab(r - 2)[oy];
                let (ty, r0, r1) = (ty as f32, &xp[ylo..ylo + iw], &xp[yhi..yhi + iw]);
                for (o, &(xlo, xhi, tx)) in orow.iter_mut().zip(cols) {
                    let tx = tx as f32;
                    let top = r0[xlo] + (r0[xhi] - r0[xlo]) * tx;
                    let bot = r1[xlo] + (r1[xhi] - r1[xlo]) * tx;
                    *o = top + (bot - top) * ty;
                }
            }
        }
        return;
    }
    let mut idx: Dims = smallvec::smallvec![0usize; r];
    for slot in out.iter_mut().take(numel(od)) {
        let mut acc = 0f64;
        for corner in 0..(1usize << r) {
            let mut off = 0;
            let mut w = 1.0;
            for k in 0..r {
                let (lo, hi, t) = tab(k)[idx[k]];
                if corner >> k & 1 == 1 {
                    off += hi;
                    w *= t;
                } else {
                    off += lo;
                    w *= 1.0 - t;
                }
                if w == 0.0 {
                    break;
                }
            }
            if w != 0.0 {
                acc += f64::from(x[off]) * w;
            }
        }
        *slot = acc as f32;
        for k in (0..r).rev() {
            idx[k] += 1;
            if idx[k] < od[k] {
                break;
            }
            idx[k] = 0;
        }
    }
}

/// Upper / lower triangle of the last two dims, diagonal offset `k`.
pub fn trilu(x: &[u8], d: &[usize], k: i64, upper: bool, out: &mut [u8], es: usize) {
    let r = d.len();
    let (rows, cols) = (d[r - 2], d[r - 1]);
    let mats = numel(&d[..r - 2]);
    // Per row, the kept columns are one contiguous run: `j >= i + k` (upper) or `j <= i + k`.
    let clamp = |v: i64| v.clamp(0, cols as i64) as usize;
    for m in 0..mats {
        for i in 0..rows {
            let (keep_from, keep_to) = if upper {
                (clamp(i as i64 + k), cols)
            } else {
                (0, clamp(i as i64 + k + 1))
            };
            let row = (m * rows + i) * cols * es;
            let (o, xr) = (&mut out[row..row + cols * es], &x[row..row + cols * es]);
            let (a, b) = (keep_from * es, keep_to.max(keep_from) * es);
            o[..a].fill(0);
            o[a..b].copy_from_slice(&xr[a..b]);
            o[b..].fill(0);
        }
    }
}

/// Cumulative sum along `axis`.
pub fn cumsum<T: Copy + std::ops::Add<Output = T> + Default>(
    x: &[T],
    d: &[usize],
    axis: usize,
    exclusive: bool,
    reverse: bool,
    out: &mut [T],
) {
    let scan = Scan {
        dims: d,
        axis,
        exclusive,
        reverse,
    };
    cumulate(x, &scan, T::default(), |a, b| a + b, out);
}

/// A cumulative operation along one axis (CumSum, CumProd).
#[derive(Clone, Copy, Debug)]
pub struct Scan<'a> {
    /// The tensor's dims.
    pub dims: &'a [usize],
    /// The axis accumulated along.
    pub axis: usize,
    /// Each output leaves out its own element (the first gets the identity).
    pub exclusive: bool,
    /// Accumulate from the end of the axis.
    pub reverse: bool,
}

/// Accumulates `x` along `p.axis` with `f`, starting from `identity` (0 for a sum, 1 for a
/// product), into `out` (of `x`'s dims). Each output row is the previous output row combined
/// with one input row, so nothing is allocated.
pub fn cumulate<T: Copy>(x: &[T], p: &Scan<'_>, identity: T, f: impl Fn(T, T) -> T, out: &mut [T]) {
    let d = p.dims;
    let outer: usize = d[..p.axis].iter().product();
    let n = d[p.axis];
    let inner: usize = d[p.axis + 1..].iter().product();
    let at = |o: usize, s: usize| (o * n + if p.reverse { n - 1 - s } else { s }) * inner;
    for o in 0..outer {
        for s in 0..n {
            let b = at(o, s);
            if s == 0 {
                for j in b..b + inner {
                    out[j] = if p.exclusive {
                        identity
                    } else {
                        f(identity, x[j])
                    };
                }
                continue;
            }
            let prev = at(o, s - 1);
            // Exclusive: the previous output combined with the previous input.
            let src = if p.exclusive { prev } else { b };
            for j in 0..inner {
                out[b + j] = f(out[prev + j], x[src + j]);
            }
        }
    }
}

/// Reverses, for each batch entry `b`, the first `lens[b]` steps along the time axis and
/// copies the rest (ONNX `ReverseSequence`). The batch and time axes are dims 0 and 1 in
/// either order (`batch_first`: batch is dim 0); each `(batch, time)` entry is a contiguous
/// block of `block` bytes.
pub fn reverse_sequence(
    x: &[u8],
    d: &[usize],
    batch_first: bool,
    lens: &[i64],
    block: usize,
    out: &mut [u8],
) -> Result<(), String> {
    let (nb, nt) = if batch_first {
        (d[0], d[1])
    } else {
        (d[1], d[0])
    };
    if lens.len() != nb {
        return Err(format!(
            "ReverseSequence: {} sequence lengths for a batch of {nb}",
            lens.len()
        ));
    }
    for (b, &len) in lens.iter().enumerate() {
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= nt)
            .ok_or_else(|| format!("ReverseSequence: sequence length {len} outside 0..={nt}"))?;
        for t in 0..nt {
            let src_t = if t < len { len - 1 - t } else { t };
            let at = |t: usize| if batch_first { b * nt + t } else { t * nb + b } * block;
            let (src, dst) = (at(src_t), at(t));
            out[dst..dst + block].copy_from_slice(&x[src..src + block]);
        }
    }
    Ok(())
}

/// The indices of `axis_len` selected by `condition` (ONNX `Compress`): those `i` with a
/// non-zero `condition[i]`. A condition shorter than the axis selects nothing past its end; a
/// longer one may not select past the axis. The list is allocated fallibly (within the cap of
/// [`crate::scratch::set_limit`]): a refusal is an error.
pub fn compress_indices(condition: &[u8], axis_len: usize) -> Result<Vec<usize>, String> {
    if let Some(i) = condition.iter().skip(axis_len).position(|&c| c != 0) {
        return Err(format!(
            "Compress: the condition selects index {} of an axis of {axis_len}",
            axis_len + i
        ));
    }
    let cond = &condition[..axis_len.min(condition.len())];
    let mut keep = Vec::new();
    reserve(&mut keep, cond.iter().filter(|&&c| c != 0).count())?;
    keep.extend(
        cond.iter()
            .enumerate()
            .filter_map(|(i, &c)| (c != 0).then_some(i)),
    );
    Ok(keep)
}

/// Copies the slices `keep` of `axis` (dims `d`, elements of `es` bytes) into `out`.
pub fn compress(x: &[u8], d: &[usize], axis: usize, keep: &[usize], es: usize, out: &mut [u8]) {
    let outer: usize = d[..axis].iter().product();
    let n = d[axis];
    let inner = d[axis + 1..].iter().product::<usize>() * es;
    let mut at = 0;
    for o in 0..outer {
        for &k in keep {
            let src = (o * n + k) * inner;
            out[at..at + inner].copy_from_slice(&x[src..src + inner]);
            at += inner;
        }
    }
}

#[cfg(test)]
mod row_pattern_tests {
    use super::RowPattern;

    #[test]
    fn integer_factors_are_recognised_and_others_read_the_table() {
        assert_eq!(RowPattern::of(&[0, 1, 2, 3]), RowPattern::Every(1));
        assert_eq!(RowPattern::of(&[0, 2, 4]), RowPattern::Every(2));
        assert_eq!(RowPattern::of(&[0]), RowPattern::Every(1));
        assert_eq!(RowPattern::of(&[0, 0, 1, 1, 2, 2]), RowPattern::Repeat(2));
        assert_eq!(RowPattern::of(&[0, 0, 0, 1, 1, 1]), RowPattern::Repeat(3));
        assert_eq!(RowPattern::of(&[0, 0, 1, 1, 2]), RowPattern::Repeat(2));
        // A non-integer factor, an offset start: the table.
        assert_eq!(RowPattern::of(&[0, 1, 3, 4]), RowPattern::Table);
        assert_eq!(RowPattern::of(&[1]), RowPattern::Table);
        assert_eq!(RowPattern::of(&[0, 0, 0]), RowPattern::Repeat(3));
        assert_eq!(RowPattern::of(&[0, 0, 1, 2]), RowPattern::Table);
    }
}

#[cfg(test)]
mod scan_tests {
    use super::*;

    fn scan(d: &[usize], axis: usize, exclusive: bool, reverse: bool) -> Scan<'_> {
        Scan {
            dims: d,
            axis,
            exclusive,
            reverse,
        }
    }

    #[test]
    fn cumulative_products_by_hand() {
        let x = [1.0f64, 2.0, 3.0, 4.0, 5.0];
        let mut o = [0.0; 5];
        let mul = |a: f64, b: f64| a * b;
        for (ex, rev, want) in [
            (false, false, [1.0, 2.0, 6.0, 24.0, 120.0]),
            (true, false, [1.0, 1.0, 2.0, 6.0, 24.0]),
            (false, true, [120.0, 120.0, 60.0, 20.0, 5.0]),
            (true, true, [120.0, 60.0, 20.0, 5.0, 1.0]),
        ] {
            cumulate(&x, &scan(&[5], 0, ex, rev), 1.0, mul, &mut o);
            assert_eq!(o, want, "exclusive {ex} reverse {rev}");
        }
        // [[1, 2, 3], [4, 5, 6]] along each axis, and a 3-D tensor along its middle axis.
        let x = [1i32, 2, 3, 4, 5, 6];
        let mut o = [0; 6];
        cumulate(&x, &scan(&[2, 3], 0, false, false), 1, |a, b| a * b, &mut o);
        assert_eq!(o, [1, 2, 3, 4, 10, 18]);
        cumulate(&x, &scan(&[2, 3], 1, false, false), 1, |a, b| a * b, &mut o);
        assert_eq!(o, [1, 2, 6, 4, 20, 120]);
        let x: Vec<i64> = (1..=12).collect();
        let mut o = vec![0; 12];
        cumulate(
            &x,
            &scan(&[2, 3, 2], 1, true, true),
            1,
            |a, b| a * b,
            &mut o,
        );
        assert_eq!(o, [15, 24, 5, 6, 1, 1, 99, 120, 11, 12, 1, 1]);
        // The sum is the same walk from 0.
        let mut s = vec![0; 12];
        cumsum(&x, &[2, 3, 2], 2, false, false, &mut s);
        assert_eq!(s, [1, 3, 3, 7, 5, 11, 7, 15, 9, 19, 11, 23]);
    }

    #[test]
    fn reverse_sequence_in_both_layouts() {
        // ONNX's examples: time-major [4, 4] with lengths [4, 3, 2, 1], and batch-major.
        let x: Vec<u8> = (0..16).collect();
        let mut o = vec![0u8; 16];
        reverse_sequence(&x, &[4, 4], true, &[1, 2, 3, 4], 1, &mut o).unwrap();
        assert_eq!(o, [0, 1, 2, 3, 5, 4, 6, 7, 10, 9, 8, 11, 15, 14, 13, 12]);
        let xt = [0u8, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15];
        reverse_sequence(&xt, &[4, 4], false, &[4, 3, 2, 1], 1, &mut o).unwrap();
        assert_eq!(o, [3, 6, 9, 12, 2, 5, 8, 13, 1, 4, 10, 14, 0, 7, 11, 15]);
        // Blocks of 2 elements of 2 bytes: [batch 2, time 3, 2] with lengths [3, 0].
        let x: Vec<u8> = (0..24).collect();
        let mut o = vec![0u8; 24];
        reverse_sequence(&x, &[2, 3, 2], true, &[3, 0], 4, &mut o).unwrap();
        let want: Vec<u8> = [8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3]
            .into_iter()
            .chain(12..24)
            .collect();
        assert_eq!(o, want);
        assert!(reverse_sequence(&x, &[2, 3, 2], true, &[4, 0], 4, &mut o).is_err());
        assert!(reverse_sequence(&x, &[2, 3, 2], true, &[-1, 0], 4, &mut o).is_err());
        assert!(reverse_sequence(&x, &[2, 3, 2], true, &[1], 4, &mut o).is_err());
    }

    #[test]
    fn compress_along_an_axis_and_flattened() {
        let x: Vec<u8> = (1..=6).collect();
        let keep = compress_indices(&[0, 1, 1], 3).unwrap();
        let mut o = vec![0u8; 4];
        compress(&x, &[3, 2], 0, &keep, 1, &mut o);
        assert_eq!(o, [3, 4, 5, 6]);
        let keep = compress_indices(&[0, 1], 2).unwrap();
        let mut o = vec![0u8; 3];
        compress(&x, &[3, 2], 1, &keep, 1, &mut o);
        assert_eq!(o, [2, 4, 6]);
        // Flattened, with a condition shorter than the input.
        let keep = compress_indices(&[0, 1, 0, 0, 1], 6).unwrap();
        let mut o = vec![0u8; 2];
        compress(&x, &[6], 0, &keep, 1, &mut o);
        assert_eq!(o, [2, 5]);
        // Two-byte elements along the middle axis of [2, 3, 1].
        let x: Vec<u8> = (0..12).collect();
        let keep = compress_indices(&[1, 0, 1], 3).unwrap();
        let mut o = vec![0u8; 8];
        compress(&x, &[2, 3, 1], 1, &keep, 2, &mut o);
        assert_eq!(o, [0, 1, 4, 5, 6, 7, 10, 11]);
        // Selecting past the axis is an error; unselected extra entries are not.
        assert!(compress_indices(&[1, 0, 0, 1], 3).is_err());
        assert_eq!(compress_indices(&[1, 0, 0, 0], 3).unwrap(), [0]);
    }
}
