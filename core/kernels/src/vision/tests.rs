//! The vision kernels against hand-computed values, and GridSample's fast path against its
//! point-by-point oracle at several shapes and thread counts.
use super::*;
use crate::par;

fn close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * (1.0 + y.abs()),
            "element {i}: {x} vs {y} ({a:?} vs {b:?})"
        );
    }
}

/// GridSample of `x` (dims `xd`) at `grid` (dims `gd`).
fn gs(
    interp: Interp,
    padding: Padding,
    align_corners: bool,
    x: &[f32],
    xd: &[usize],
    grid: &[f32],
    gd: &[usize],
) -> Vec<f32> {
    let p = GridSample {
        interp,
        padding,
        align_corners,
        x,
        x_dims: xd,
        grid,
        grid_dims: gd,
    };
    let n: usize = grid_sample_dims(xd, gd).unwrap().iter().product();
    let mut out = vec![f32::NAN; n];
    grid_sample_f32(&p, &mut out).unwrap();
    out
}

#[test]
fn grid_sample_bilinear_by_hand() {
    use Interp::Linear;
    let x = [1.0, 2.0, 3.0, 4.0];
    let xd = [1, 1, 2, 2];
    // Centre, top-left corner, bottom-right corner (align_corners 0: the corners' outer edges).
    let grid = [0.0, 0.0, -1.0, -1.0, 1.0, 1.0];
    let gd = [1, 1, 3, 2];
    let z = gs(Linear, Padding::Zeros, false, &x, &xd, &grid, &gd);
    close(&z, &[2.5, 0.25, 1.0], 1e-6);
    let b = gs(Linear, Padding::Border, false, &x, &xd, &grid, &gd);
    close(&b, &[2.5, 1.0, 4.0], 1e-6);
    let r = gs(Linear, Padding::Reflection, false, &x, &xd, &grid, &gd);
    close(&r, &[2.5, 1.0, 4.0], 1e-6);
    // align_corners 1: the corners are the pixel centres; (0.5, -1) is 3/4 along the top row.
    let grid = [0.0, 0.0, -1.0, -1.0, 1.0, 1.0, 0.5, -1.0];
    let a = gs(Linear, Padding::Zeros, true, &x, &xd, &grid, &[1, 1, 4, 2]);
    close(&a, &[2.5, 1.0, 4.0, 1.75], 1e-6);
    // Far outside: zeros read nothing, border the corner, reflection mirrors back inside.
    let grid = [-3.0, 0.0];
    let gd = [1, 1, 1, 2];
    close(
        &gs(Linear, Padding::Zeros, true, &x, &xd, &grid, &gd),
        &[0.0],
        0.0,
    );
    close(
        &gs(Linear, Padding::Border, true, &x, &xd, &grid, &gd),
        &[2.0],
        1e-6,
    );
    // x = -1 reflects at 0 to 1: the right column.
    close(
        &gs(Linear, Padding::Reflection, true, &x, &xd, &grid, &gd),
        &[3.0],
        1e-6,
    );
    // Two channels and two batch entries each read their own plane.
    let x2: Vec<f32> = (0..16).map(|v| v as f32).collect();
    let grid = [-1.0, -1.0, 1.0, 1.0];
    let out = gs(
        Linear,
        Padding::Zeros,
        true,
        &x2,
        &[2, 2, 2, 2],
        &grid,
        &[2, 1, 1, 2],
    );
    close(&out, &[0.0, 4.0, 11.0, 15.0], 1e-6);
}

#[test]
fn grid_sample_nearest_rounds_halves_to_even() {
    let x = [10.0, 20.0, 30.0, 40.0];
    let xd = [1, 1, 1, 4];
    // x = 0.5 → 0, 1.0 → 1, 1.5 → 2, 3.5 → 4 (outside).
    let grid = [-0.5, 0.0, -0.25, 0.0, 0.0, 0.0, 1.0, 0.0];
    let gd = [1, 1, 4, 2];
    let z = gs(Interp::Nearest, Padding::Zeros, false, &x, &xd, &grid, &gd);
    close(&z, &[10.0, 20.0, 30.0, 0.0], 0.0);
    let b = gs(Interp::Nearest, Padding::Border, false, &x, &xd, &grid, &gd);
    close(&b, &[10.0, 20.0, 30.0, 40.0], 0.0);
}

#[test]
fn grid_sample_cubic_by_hand() {
    // Keys' weights at t = 0.5: [-0.09375, 0.59375, 0.59375, -0.09375]; at t = 0: [0, 1, 0, 0].
    let x = [2.0, 3.0, 5.0, 7.0, 11.0];
    let xd = [1, 1, 1, 5];
    // align_corners 1 over 5 pixels: g = -0.75 is x = 0.5; g = 0 is the centre pixel.
    let grid = [-0.75, 0.0, 0.0, 0.0];
    let gd = [1, 1, 2, 2];
    let z = gs(Interp::Cubic, Padding::Zeros, true, &x, &xd, &grid, &gd);
    close(&z, &[2.5, 5.0], 1e-6);
    let b = gs(Interp::Cubic, Padding::Border, true, &x, &xd, &grid, &gd);
    close(&b, &[2.3125, 5.0], 1e-6);
    let r = gs(
        Interp::Cubic,
        Padding::Reflection,
        true,
        &x,
        &xd,
        &grid,
        &gd,
    );
    close(&r, &[2.21875, 5.0], 1e-6);
    // 2-D: at a pixel centre the value itself.
    let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    let out = gs(
        Interp::Cubic,
        Padding::Zeros,
        true,
        &x,
        &[1, 1, 3, 3],
        &[0.0, 0.0, 1.0, -1.0],
        &[1, 1, 2, 2],
    );
    close(&out, &[5.0, 3.0], 1e-6);
}

#[test]
fn grid_sample_volumes() {
    // X[d][h][w] = 4d + 2h + w; trilinear is exact on it.
    let x: Vec<f32> = (0..8).map(|v| v as f32).collect();
    let xd = [1, 1, 2, 2, 2];
    let grid = [0.0, 0.0, 0.0, 1.0, -1.0, 1.0, 0.5, 0.0, -1.0];
    let gd = [1, 1, 1, 3, 3];
    let out = gs(Interp::Linear, Padding::Zeros, true, &x, &xd, &grid, &gd);
    close(&out, &[3.5, 5.0, 1.75], 1e-6);
    let out = gs(Interp::Nearest, Padding::Border, true, &x, &xd, &grid, &gd);
    // (0.5, 0.5, 0.5) rounds to (0, 0, 0); (0.75, 0.5, 0) to (1, 0, 0) in (w, h, d).
    close(&out, &[0.0, 5.0, 1.0], 0.0);
}

/// A deterministic pseudo-random sequence in `[lo, hi)`.
fn values(n: usize, seed: u32, lo: f32, hi: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).max(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            lo + (hi - lo) * (s % 10_000) as f32 / 10_000.0
        })
        .collect()
}

#[test]
fn grid_sample_matches_the_reference_at_several_shapes_and_threads() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    let cases: &[(&[usize], &[usize])] = &[
        (&[2, 3, 5, 7], &[2, 4, 6, 2]),
        (&[1, 5, 8, 8], &[1, 9, 3, 2]),
        (&[3, 1, 4, 6], &[3, 2, 11, 2]),
        (&[1, 2, 3, 4, 5], &[1, 2, 3, 4, 3]),
        (&[2, 3, 2, 3, 2], &[2, 1, 2, 5, 3]),
    ];
    for (k, &(xd, gd)) in cases.iter().enumerate() {
        let x = values(xd.iter().product(), 7 + k as u32, -2.0, 2.0);
        let grid = values(gd.iter().product(), 11 + k as u32, -1.4, 1.4);
        for interp in [Interp::Nearest, Interp::Linear, Interp::Cubic] {
            for padding in [Padding::Zeros, Padding::Border, Padding::Reflection] {
                for align_corners in [false, true] {
                    let p = GridSample {
                        interp,
                        padding,
                        align_corners,
                        x: &x,
                        x_dims: xd,
                        grid: &grid,
                        grid_dims: gd,
                    };
                    let n: usize = grid_sample_dims(xd, gd).unwrap().iter().product();
                    let mut want = vec![0.0; n];
                    grid_sample_reference(&p, &mut want).unwrap();
                    for threads in [1, 3] {
                        let mut got = vec![f32::NAN; n];
                        pool.install(|| {
                            par::with_threads(threads, || grid_sample_f32(&p, &mut got))
                        })
                        .unwrap();
                        close(&got, &want, 1e-5);
                    }
                }
            }
        }
    }
}

#[test]
fn grid_sample_rejects_mismatched_operands() {
    let p = GridSample {
        interp: Interp::Linear,
        padding: Padding::Zeros,
        align_corners: false,
        x: &[0.0; 4],
        x_dims: &[1, 1, 2, 2],
        grid: &[0.0; 3],
        grid_dims: &[1, 1, 1, 3],
    };
    let mut out = [0.0];
    assert!(grid_sample_f32(&p, &mut out)
        .unwrap_err()
        .contains("do not fit"));
}

fn roi(p: RoiAlign<'_>) -> Result<Vec<f32>, String> {
    let n = p.batch_indices.len() * p.x_dims[1] * p.out[0] * p.out[1];
    let mut out = vec![f32::NAN; n];
    roi_align_f32(&p, &mut out).map(|()| out)
}

#[test]
fn roi_align_by_hand() {
    // X[y][x] = 4y + x (bilinear is exact on it); channel 1 is channel 0 + 100.
    let x: Vec<f32> = (0..32)
        .map(|v| (v % 16) as f32 + if v >= 16 { 100.0 } else { 0.0 })
        .collect();
    let base = RoiAlign {
        x: &x,
        x_dims: [1, 2, 4, 4],
        rois: &[0.0, 0.0, 2.0, 2.0],
        batch_indices: &[0],
        out: [1, 1],
        sampling_ratio: 2,
        spatial_scale: 1.0,
        half_pixel: false,
        max: false,
    };
    // Samples at 0.5 and 1.5 per dim: the mean is at (1, 1) = 5.
    close(&roi(base).unwrap(), &[5.0, 105.0], 1e-6);
    // half_pixel: the box moves by -0.5, samples at 0 and 1: (0.5, 0.5) = 2.5.
    let hp = RoiAlign {
        half_pixel: true,
        ..base
    };
    close(&roi(hp).unwrap(), &[2.5, 102.5], 1e-6);
    // max: the largest weighted tap of each sample (ONNX's definition), then the largest sample.
    let mx = RoiAlign { max: true, ..base };
    close(&roi(mx).unwrap(), &[2.5, 27.5], 1e-6);
    // Adaptive sampling (ceil(bin) = 2) over 2 × 2 bins, spatial scale 0.5 on a box twice as
    // large; the last bin's samples clamp at the far edge.
    let ad = RoiAlign {
        rois: &[0.0, 0.0, 8.0, 8.0],
        out: [2, 2],
        sampling_ratio: 0,
        spatial_scale: 0.5,
        ..base
    };
    let got = roi(ad).unwrap();
    close(&got[..4], &[5.0, 6.75, 12.0, 13.75], 1e-6);
    // A box outside the map samples nothing but zeros.
    let out = RoiAlign {
        rois: &[20.0, 20.0, 22.0, 22.0],
        ..base
    };
    close(&roi(out).unwrap(), &[0.0, 0.0], 0.0);
    // Several boxes over several batch entries.
    let x2: Vec<f32> = (0..32).map(|v| v as f32).collect();
    let two = RoiAlign {
        x: &x2,
        x_dims: [2, 1, 4, 4],
        rois: &[0.0, 0.0, 2.0, 2.0, 0.0, 0.0, 2.0, 2.0],
        batch_indices: &[1, 0],
        ..base
    };
    close(&roi(two).unwrap(), &[21.0, 5.0], 1e-6);
    let bad = RoiAlign {
        batch_indices: &[1],
        ..base
    };
    assert!(roi(bad).unwrap_err().contains("batch entry 1"));
}

fn fold(x: &[f32], xd: &[usize], p: Col2Im<'_>) -> Vec<f32> {
    let od = p.out_dims(xd).unwrap();
    let mut out = vec![f32::NAN; od.iter().product()];
    col2im_f32(&p, x, xd, &mut out).unwrap();
    out
}

#[test]
fn col2im_by_hand() {
    let g = |image, block, dilations, pads, strides| Col2Im {
        image,
        block,
        dilations,
        pads,
        strides,
    };
    // Ones: each pixel counts the blocks covering it.
    let out = fold(
        &[1.0; 16],
        &[1, 4, 4],
        g(&[3, 3], &[2, 2], &[1, 1], &[0; 4], &[1, 1]),
    );
    close(&out, &[1.0, 2.0, 1.0, 2.0, 4.0, 2.0, 1.0, 2.0, 1.0], 0.0);
    // Padded by one: 4 × 4 block positions, every pixel covered 4 times.
    let out = fold(
        &[1.0; 64],
        &[1, 4, 16],
        g(&[3, 3], &[2, 2], &[1, 1], &[1; 4], &[1, 1]),
    );
    close(&out, &[4.0; 9], 0.0);
    // Stride 2: the blocks tile the image; pixel (y, x) is tap (y%2, x%2) of block (y/2, x/2).
    let x: Vec<f32> = (0..4)
        .flat_map(|k| (0..4).map(move |l| (10 * k + l) as f32))
        .collect();
    let out = fold(
        &x,
        &[1, 4, 4],
        g(&[4, 4], &[2, 2], &[1, 1], &[0; 4], &[2, 2]),
    );
    let want: Vec<f32> = (0..16)
        .map(|i| {
            let (y, x) = (i / 4, i % 4);
            (10 * ((y % 2) * 2 + x % 2) + (y / 2) * 2 + x / 2) as f32
        })
        .collect();
    close(&out, &want, 0.0);
    // 1-D with dilation 3: taps at l and l + 3; pixel 2 is never covered.
    let out = fold(
        &[1.0, 2.0, 3.0, 4.0],
        &[1, 2, 2],
        g(&[5], &[2], &[3], &[0, 0], &[1]),
    );
    close(&out, &[1.0, 2.0, 0.0, 3.0, 4.0], 0.0);
    // 3-D, a 1 × 1 × 1 block over two channels and two batch entries: a reshape.
    let x: Vec<f32> = (0..32).map(|v| v as f32).collect();
    let out = fold(
        &x,
        &[2, 2, 8],
        g(&[2, 2, 2], &[1, 1, 1], &[1; 3], &[0; 6], &[1; 3]),
    );
    close(&out, &x, 0.0);
    // Mismatches are errors.
    let p = g(&[3, 3], &[2, 2], &[1, 1], &[0; 4], &[1, 1]);
    assert!(p
        .out_dims(&[1, 4, 5])
        .unwrap_err()
        .contains("must be [N, C·4, 4]"));
    let p = g(&[1, 3], &[2, 2], &[1, 1], &[0; 4], &[1, 1]);
    assert!(p.blocks().unwrap_err().contains("does not fit"));
}

fn deform(p: DeformConv<'_>) -> Vec<f32> {
    let od = p.out_dims().unwrap();
    let mut out = vec![f32::NAN; od.iter().product()];
    deform_conv_f32(&p, &mut out).unwrap();
    out
}

#[test]
fn deform_conv_by_hand() {
    let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    // The kernel adds the window's top-left and bottom-right taps.
    let w = [1.0, 0.0, 0.0, 1.0];
    let zero = [0.0; 32];
    let base = DeformConv {
        x: &x,
        x_dims: &[1, 1, 3, 3],
        w: &w,
        w_dims: &[1, 1, 2, 2],
        offset: &zero,
        offset_dims: &[1, 8, 2, 2],
        mask: None,
        mask_dims: &[],
        bias: None,
        strides: &[1, 1],
        dilations: &[1, 1],
        pads: &[0; 4],
        group: 1,
        offset_group: 1,
    };
    // No offset: a plain convolution.
    close(&deform(base), &[6.0, 8.0, 12.0, 14.0], 0.0);
    // Every tap one pixel right (offsets are (dy, dx) per tap): the right column reads zeros.
    let mut right = [0.0f32; 32];
    for tap in 0..4 {
        right[(tap * 2 + 1) * 4..(tap * 2 + 2) * 4].fill(1.0);
    }
    close(
        &deform(DeformConv {
            offset: &right,
            ..base
        }),
        &[8.0, 3.0, 14.0, 6.0],
        0.0,
    );
    // Half a pixel down: (0.5, 0) and (1.5, 1) for the first output.
    let mut down = [0.0f32; 32];
    for tap in 0..4 {
        down[tap * 2 * 4..(tap * 2 + 1) * 4].fill(0.5);
    }
    let out = deform(DeformConv {
        offset: &down,
        ..base
    });
    close(&out[..1], &[9.0], 1e-6);
    // A mask of one half, and a bias.
    let half = [0.5; 16];
    close(
        &deform(DeformConv {
            mask: Some(&half),
            mask_dims: &[1, 4, 2, 2],
            bias: Some(&[1.0]),
            ..base
        }),
        &[4.0, 5.0, 7.0, 8.0],
        0.0,
    );
    // Padding at the ends and stride 2: a 2 × 2 output over the 4 × 4 padded input.
    close(
        &deform(DeformConv {
            pads: &[0, 0, 1, 1],
            strides: &[2, 2],
            ..base
        }),
        &[6.0, 3.0, 7.0, 9.0],
        0.0,
    );
    // Two groups and two offset groups: channel 1 (X + 10) shifted right, channel 0 not.
    let x2: Vec<f32> = (1..=9).chain(11..=19).map(|v| v as f32).collect();
    let w2 = [1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0];
    let mut off2 = [0.0f32; 64];
    off2[32..].copy_from_slice(&right);
    let out = deform(DeformConv {
        x: &x2,
        x_dims: &[1, 2, 3, 3],
        w: &w2,
        w_dims: &[2, 1, 2, 2],
        offset: &off2,
        offset_dims: &[1, 16, 2, 2],
        group: 2,
        offset_group: 2,
        ..base
    });
    close(&out, &[6.0, 8.0, 12.0, 14.0, 28.0, 13.0, 34.0, 16.0], 0.0);
    // Mismatched offsets are errors.
    let e = DeformConv {
        offset_dims: &[1, 4, 2, 2],
        ..base
    }
    .out_dims()
    .unwrap_err();
    assert!(
        e.contains("offset has dims [1, 4, 2, 2], expected [1, 8, 2, 2]"),
        "{e}"
    );
}

#[test]
fn deform_conv_in_one_and_three_dims() {
    // 1-D: kernel [1, 1] over [1, 2, 3, 4] with every tap shifted by 0.25.
    let x = [1.0, 2.0, 3.0, 4.0];
    let off = [0.25; 6];
    let out = deform(DeformConv {
        x: &x,
        x_dims: &[1, 1, 4],
        w: &[1.0, 1.0],
        w_dims: &[1, 1, 2],
        offset: &off,
        offset_dims: &[1, 2, 3],
        mask: None,
        mask_dims: &[],
        bias: None,
        strides: &[1],
        dilations: &[1],
        pads: &[0, 0],
        group: 1,
        offset_group: 1,
    });
    // (x + 0.25) + (x + 1.25) for x = 1, 2, then the last tap past the end: 3.25 + 0.75·4.
    close(&out, &[3.5 + 0.0 + 0.0, 5.5, 3.25 + 3.0], 1e-6);
    // 3-D: a 1 × 1 × 1 kernel of 2 with no offset doubles the input.
    let x: Vec<f32> = (0..8).map(|v| v as f32).collect();
    let out = deform(DeformConv {
        x: &x,
        x_dims: &[1, 1, 2, 2, 2],
        w: &[2.0],
        w_dims: &[1, 1, 1, 1, 1],
        offset: &[0.0; 24],
        offset_dims: &[1, 3, 2, 2, 2],
        mask: None,
        mask_dims: &[],
        bias: None,
        strides: &[1; 3],
        dilations: &[1; 3],
        pads: &[0; 6],
        group: 1,
        offset_group: 1,
    });
    let want: Vec<f32> = x.iter().map(|v| 2.0 * v).collect();
    close(&out, &want, 0.0);
}

#[test]
fn max_unpool_by_hand() {
    let x: Vec<u8> = [5.0f32, 6.0, 7.0, 8.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let idx = [5, 7, 13, 15];
    let floats = |b: &[u8]| -> Vec<f32> {
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    let mut out = vec![0xffu8; 64];
    max_unpool(&x, &idx, 4, &[1, 1, 4, 4], &[1, 1, 4, 4], &mut out).unwrap();
    let mut want = [0.0f32; 16];
    for (i, v) in [(5, 5.0), (7, 6.0), (13, 7.0), (15, 8.0)] {
        want[i] = v;
    }
    close(&floats(&out), &want, 0.0);
    // A larger output: the unpooled 4 × 4 sits at the top-left of a 5 × 5.
    let mut out = vec![0xffu8; 100];
    max_unpool(&x, &idx, 4, &[1, 1, 4, 4], &[1, 1, 5, 5], &mut out).unwrap();
    let mut want = [0.0f32; 25];
    for (i, v) in [(6, 5.0), (8, 6.0), (16, 7.0), (18, 8.0)] {
        want[i] = v;
    }
    close(&floats(&out), &want, 0.0);
    // 8-byte elements, a smaller output (positions past it dropped).
    let x64: Vec<u8> = [1i64, 2].iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut out = vec![0xffu8; 8 * 4];
    max_unpool(&x64, &[0, 8], 8, &[1, 1, 3, 3], &[1, 1, 2, 2], &mut out).unwrap();
    let got: Vec<i64> = out
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(got, [1, 0, 0, 0]);
    let e = max_unpool(
        &x,
        &[5, 7, 13, 16],
        4,
        &[1, 1, 4, 4],
        &[1, 1, 4, 4],
        &mut [0; 64],
    );
    assert!(e.unwrap_err().contains("index 16"));
}

#[test]
fn oversized_inputs_are_errors_not_aborts() {
    // An adaptive grid over an enormous box would need billions of samples.
    let x = [0.0f32; 16];
    let p = RoiAlign {
        x: &x,
        x_dims: [1, 1, 4, 4],
        rois: &[0.0, 0.0, 1.0e9, 1.0e9],
        batch_indices: &[0],
        out: [2, 2],
        sampling_ratio: 0,
        spatial_scale: 1.0,
        half_pixel: false,
        max: false,
    };
    assert!(roi(p).unwrap_err().contains("samples"));
    // Image dims whose product overflows.
    let huge = usize::MAX / 2;
    let p = Col2Im {
        image: &[huge, huge],
        block: &[1, 1],
        dilations: &[1, 1],
        pads: &[0; 4],
        strides: &[huge, huge],
    };
    assert!(p.out_dims(&[1, 1, 1]).unwrap_err().contains("too large"));
}
