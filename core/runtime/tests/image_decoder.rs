//! ImageDecoder through the whole pipeline (import, analysis, planner, plan file, session): one
//! plan decodes images of several sizes (its H and W are bound when the step runs), in every
//! format and pixel format, from bytes encoded here with the `image` crate; corrupt, hostile
//! and unsupported inputs are typed errors. Built without the `image-decoder` feature, a plan
//! with an ImageDecoder step fails to load with an error naming the feature.
use std::sync::Arc;

use sod2_onnx::proto::*;
use sod2_runtime::{Plan, RuntimeError};

#[path = "common/onnx.rs"]
mod onnx;
use onnx::{model_bytes, node, value_info};

/// `img = ImageDecoder(bytes)` with `pixel_format` (absent: the default, RGB).
fn model(pixel_format: Option<&str>) -> Vec<u8> {
    let attrs = pixel_format
        .map(|f| AttributeProto {
            name: Some("pixel_format".into()),
            r#type: Some(attribute_proto::AttributeType::String as i32),
            s: Some(f.as_bytes().to_vec()),
            ..Default::default()
        })
        .into_iter()
        .collect();
    let graph = GraphProto {
        name: Some("g".into()),
        node: vec![node("ImageDecoder", &["bytes"], &["img"], attrs)],
        input: vec![value_info("bytes", 2, Some(&["n"]))],
        output: vec![value_info("img", 2, None)],
        ..Default::default()
    };
    model_bytes(graph, 20)
}

fn load(bytes: &[u8]) -> Result<Arc<Plan>, RuntimeError> {
    let m = sod2_onnx::import_bytes(bytes, None).unwrap();
    let a = sod2_analysis::analyze(&m, &sod2_analysis::Options::default()).unwrap();
    let p = sod2_planner::plan(&m, &a, &sod2_planner::Options::default()).unwrap();
    Plan::from_bytes(&sod2_format::write(&p.plan, &p.weights, 0))
}

#[cfg(not(feature = "image-decoder"))]
#[test]
fn without_the_feature_loading_names_it() {
    match load(&model(None)) {
        Err(RuntimeError::Kernel { kernel, msg, .. }) => {
            assert_eq!(kernel, "ImageDecoder");
            assert!(msg.contains("without image decoding"), "{msg}");
            assert!(msg.contains("`image-decoder`"), "{msg}");
        }
        other => panic!(
            "expected a kernel error at load, got {:?}",
            other.map(|_| ())
        ),
    }
}

#[cfg(feature = "image-decoder")]
mod decoding {
    use std::io::Cursor;

    use image::{ImageFormat, RgbImage};
    use sod2_runtime::{DType, Session, TensorIn};

    use super::*;

    /// Decodes `encoded` with session `s`: (dims, pixels).
    fn decode(s: &mut Session, encoded: &[u8]) -> Result<(Vec<usize>, Vec<u8>), RuntimeError> {
        let d = [encoded.len()];
        let out = s.run(&[TensorIn::raw(DType::U8, encoded, &d)])?;
        assert_eq!(out[0].dtype, DType::U8);
        Ok((out[0].dims.clone(), out[0].data.clone()))
    }

    /// An image of `w × h` whose pixels vary in every channel.
    fn picture(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            let v = x * 31 + y * 17;
            image::Rgb([
                (v % 251) as u8,
                ((x * 7 + y * 101) % 256) as u8,
                ((v * 3 + 40) % 256) as u8,
            ])
        })
    }

    fn encode(img: &RgbImage, f: ImageFormat) -> Vec<u8> {
        let mut buf = Cursor::new(Vec::new());
        img.write_to(&mut buf, f).unwrap();
        buf.into_inner()
    }

    fn luma(rgb: &[u8]) -> Vec<u8> {
        rgb.chunks_exact(3)
            .map(|p| {
                let l = 19595 * u32::from(p[0]) + 38470 * u32::from(p[1]) + 7471 * u32::from(p[2]);
                ((l + 0x8000) >> 16) as u8
            })
            .collect()
    }

    const SIZES: [(u32, u32); 5] = [(1, 1), (3, 2), (2, 7), (16, 9), (33, 65)];

    #[test]
    fn lossless_formats_round_trip_at_several_sizes() {
        let mut rgb_s = Session::new(load(&model(None)).unwrap());
        let mut bgr_s = Session::new(load(&model(Some("BGR"))).unwrap());
        let mut gray_s = Session::new(load(&model(Some("Grayscale"))).unwrap());
        for f in [
            ImageFormat::Png,
            ImageFormat::Bmp,
            ImageFormat::Pnm,
            ImageFormat::Tiff,
            ImageFormat::WebP,
        ] {
            for (w, h) in SIZES {
                let img = picture(w, h);
                let bytes = encode(&img, f);
                let (hh, ww) = (h as usize, w as usize);
                let (d, px) = decode(&mut rgb_s, &bytes).unwrap();
                assert_eq!(d, [hh, ww, 3], "{f:?} {w}x{h}");
                assert_eq!(px, img.as_raw().as_slice(), "{f:?} {w}x{h} RGB");
                let (d, px) = decode(&mut bgr_s, &bytes).unwrap();
                assert_eq!(d, [hh, ww, 3]);
                let want: Vec<u8> = img
                    .as_raw()
                    .chunks_exact(3)
                    .flat_map(|p| [p[2], p[1], p[0]])
                    .collect();
                assert_eq!(px, want, "{f:?} {w}x{h} BGR");
                let (d, px) = decode(&mut gray_s, &bytes).unwrap();
                assert_eq!(d, [hh, ww, 1]);
                assert_eq!(px, luma(img.as_raw()), "{f:?} {w}x{h} Grayscale");
            }
        }
    }

    #[test]
    fn jpeg_decodes_as_the_image_crate_does() {
        let mut s = Session::new(load(&model(None)).unwrap());
        for (w, h) in SIZES {
            let bytes = encode(&picture(w, h), ImageFormat::Jpeg);
            let want = image::load_from_memory(&bytes).unwrap().into_rgb8();
            let (d, px) = decode(&mut s, &bytes).unwrap();
            assert_eq!(d, [h as usize, w as usize, 3]);
            assert_eq!(px, want.as_raw().as_slice(), "{w}x{h}");
        }
    }

    /// The kernel's message of a failed run.
    fn refused(s: &mut Session, bytes: &[u8]) -> String {
        match decode(s, bytes) {
            Err(RuntimeError::Kernel { kernel, msg, .. }) => {
                assert_eq!(kernel, "ImageDecoder");
                msg
            }
            other => panic!("expected a kernel error, got {:?}", other.map(|(d, _)| d)),
        }
    }

    #[test]
    fn corrupt_hostile_and_unsupported_inputs_are_errors() {
        let mut s = Session::new(load(&model(None)).unwrap());
        let png = encode(&picture(16, 9), ImageFormat::Png);
        // Truncated in the pixel data, and in the header.
        let e = refused(&mut s, &png[..png.len() - 20]);
        assert!(e.contains("cannot decode"), "{e}");
        let e = refused(&mut s, &png[..12]);
        assert!(e.contains("cannot decode"), "{e}");
        // Bytes of no known format; no bytes at all are outside the input's range (n ≥ 1).
        let e = refused(&mut s, b"hello, not an image at all");
        assert!(e.contains("no image format"), "{e}");
        assert!(
            matches!(decode(&mut s, &[]), Err(RuntimeError::OutOfRange { .. })),
            "an empty input"
        );
        // A PNM header claiming 100000 x 100000 pixels: refused before any pixel is decoded.
        let e = refused(&mut s, b"P6\n100000 100000\n255\n\x01\x02\x03");
        assert!(e.contains("over the limit"), "{e}");
        // A grayscale one of 70000 x 70000.
        let e = refused(&mut s, b"P5\n70000 70000\n255\n");
        assert!(e.contains("over the limit"), "{e}");
        // JPEG 2000 is named; a known but unsupported format too.
        let jp2 = [
            0, 0, 0, 0x0c, b'j', b'P', b' ', b' ', 0x0d, 0x0a, 0x87, 0x0a, 0, 0,
        ];
        let e = refused(&mut s, &jp2);
        assert!(e.contains("JPEG 2000"), "{e}");
        let e = refused(&mut s, b"GIF89a\x01\x00\x01\x00\x00\x00\x00;");
        assert!(e.contains("Gif images are not supported"), "{e}");
        // Corrupted bytes inside a JPEG, a TIFF and a WebP: an error or an image, never a panic.
        for f in [ImageFormat::Jpeg, ImageFormat::Tiff, ImageFormat::WebP] {
            let mut bytes = encode(&picture(33, 65), f);
            let n = bytes.len();
            for k in (n / 4..n).step_by(n / 7 + 1) {
                bytes[k] ^= 0x5a;
            }
            if let Ok((d, px)) = decode(&mut s, &bytes) {
                assert_eq!(px.len(), d.iter().product::<usize>());
            }
        }
        // The session still decodes a good image afterwards.
        let (d, _) = decode(&mut s, &png).unwrap();
        assert_eq!(d, [9, 16, 3]);
    }
}
