//! ImageDecoder (opset 20): a 1-D u8 tensor of encoded image bytes → `[H, W, C]` u8 pixels.
//!
//! Decoding uses the `image` crate (PNG, JPEG, BMP, PNM, TIFF, WebP) and is behind this
//! crate's `image-decoder` cargo feature: the sod2 CLI enables it, the device libraries do
//! not (their size budget). Built without it, a plan with an ImageDecoder step fails to load
//! with an error that says so and how to enable it ([`available`]).
//!
//! The bytes are untrusted: a corrupt, truncated or unknown image is an error naming what is
//! wrong, and an image of more than [`IMAGE_MAX_PIXELS`] pixels is refused from its header,
//! before its pixels are decoded. Output channels follow ONNX's reference (Pillow): RGB, BGR,
//! or Pillow's `convert("L")` luma for Grayscale. JPEG 2000 is refused by name (no pure-Rust
//! decoder is built in).
#[cfg(feature = "image-decoder")]
use sod2_format::DType;
use sod2_format::{OpAttrs, OpCode};

use super::{wrong_attrs, Ctx, Kernel};

pub(super) fn get(op: OpCode) -> Option<Kernel> {
    match op {
        OpCode::ImageDecoder => Some(image_decoder),
        _ => None,
    }
}

/// `Ok` when this runtime decodes images; otherwise the error a plan with an ImageDecoder
/// step gets at load (the runtime was built without the `image-decoder` feature).
pub(crate) fn available() -> Result<(), String> {
    if cfg!(feature = "image-decoder") {
        Ok(())
    } else {
        Err(
            "this runtime was built without image decoding; rebuild it with the cargo \
             feature `image-decoder` of sod2-runtime (the sod2 command line has it)"
                .into(),
        )
    }
}

fn image_decoder(c: &mut Ctx<'_, '_>) -> Result<(), String> {
    let OpAttrs::ImageDecoder { format } = *c.attrs else {
        return Err(wrong_attrs(c));
    };
    #[cfg(not(feature = "image-decoder"))]
    {
        let _ = format;
        available()
    }
    #[cfg(feature = "image-decoder")]
    {
        let (ins, outs) = c.io();
        let x = ins[0].as_ref().ok_or("no input")?;
        if x.dtype != DType::U8 || x.dims.len() != 1 {
            return Err(format!(
                "the encoded image must be a 1-D u8 tensor, got {} of dims {:?}",
                x.dtype.name(),
                x.dims
            ));
        }
        let out = outs[0].as_mut().ok_or("no output")?;
        let (h, w, rgb) = decode::rgb8(x.data)?;
        let px = out.alloc(&[h, w, format.channels()])?;
        decode::write_pixels(&rgb, format, px);
        Ok(())
    }
}

#[cfg(feature = "image-decoder")]
mod decode {
    use std::io::Cursor;

    use ::image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
    use sod2_format::attrs::{PixelFormat, IMAGE_MAX_PIXELS};

    /// The formats decoded (the `image` crate's features this crate enables).
    const FORMATS: [ImageFormat; 6] = [
        ImageFormat::Png,
        ImageFormat::Jpeg,
        ImageFormat::Bmp,
        ImageFormat::Pnm,
        ImageFormat::Tiff,
        ImageFormat::WebP,
    ];

    /// [`FORMATS`] for messages.
    const DECODES: &str = "PNG, JPEG, BMP, PNM, TIFF and WebP";

    /// Decodes `bytes` to `(height, width, RGB8 pixels)`; an image over [`IMAGE_MAX_PIXELS`]
    /// is refused from its header.
    pub(super) fn rgb8(bytes: &[u8]) -> Result<(usize, usize, Vec<u8>), String> {
        let mut reader = ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| format!("cannot read the image: {e}"))?;
        match reader.format() {
            Some(f) if FORMATS.contains(&f) => {}
            Some(f) => {
                return Err(format!(
                    "{f:?} images are not supported (this runtime decodes {DECODES})"
                ))
            }
            None if is_jpeg2000(bytes) => {
                return Err(format!(
                    "JPEG 2000 images are not supported: no JPEG 2000 decoder is built in \
                     (this runtime decodes {DECODES})"
                ))
            }
            None => {
                return Err(format!(
                    "the {} bytes are in no image format this runtime knows (it decodes \
                     {DECODES})",
                    bytes.len()
                ))
            }
        }
        let side = u32::try_from(IMAGE_MAX_PIXELS).unwrap_or(u32::MAX);
        let mut limits = Limits::default();
        limits.max_image_width = Some(side);
        limits.max_image_height = Some(side);
        // The decoder's own buffers: at most 8 bytes (16-bit RGBA) per allowed pixel.
        limits.max_alloc = Some(8 * IMAGE_MAX_PIXELS);
        reader.limits(limits);
        let bad = |e: ::image::ImageError| format!("cannot decode the image: {e}");
        let decoder = reader.into_decoder().map_err(bad)?;
        let (w, h) = decoder.dimensions();
        let pixels = u64::from(w) * u64::from(h);
        if pixels == 0 {
            return Err(format!("the image has no pixels ({w} × {h})"));
        }
        if pixels > IMAGE_MAX_PIXELS {
            return Err(format!(
                "the image is {w} × {h} = {pixels} pixels, over the limit of \
                 {IMAGE_MAX_PIXELS} (IMAGE_MAX_PIXELS)"
            ));
        }
        let rgb = DynamicImage::from_decoder(decoder)
            .map_err(bad)?
            .into_rgb8();
        let (w, h) = (rgb.width() as usize, rgb.height() as usize);
        Ok((h, w, rgb.into_raw()))
    }

    /// Writes RGB8 pixels in `format`: copied, channels swapped (BGR), or Pillow's
    /// `convert("L")` luma, `(19595 R + 38470 G + 7471 B + 2^15) >> 16` (ITU-R 601-2 in 16-bit
    /// fixed point, Pillow's `L24`).
    pub(super) fn write_pixels(rgb: &[u8], format: PixelFormat, out: &mut [u8]) {
        match format {
            PixelFormat::Rgb => out.copy_from_slice(rgb),
            PixelFormat::Bgr => {
                for (o, p) in out.chunks_exact_mut(3).zip(rgb.chunks_exact(3)) {
                    o.copy_from_slice(&[p[2], p[1], p[0]]);
                }
            }
            PixelFormat::Grayscale => {
                for (o, p) in out.iter_mut().zip(rgb.chunks_exact(3)) {
                    let l =
                        19595 * u32::from(p[0]) + 38470 * u32::from(p[1]) + 7471 * u32::from(p[2]);
                    *o = ((l + 0x8000) >> 16) as u8;
                }
            }
        }
    }

    /// Whether `bytes` start like JPEG 2000: a JP2 file's signature box or a raw codestream's
    /// SOC and SIZ markers.
    pub(super) fn is_jpeg2000(bytes: &[u8]) -> bool {
        bytes.starts_with(&[
            0, 0, 0, 0x0c, b'j', b'P', b' ', b' ', 0x0d, 0x0a, 0x87, 0x0a,
        ]) || bytes.starts_with(&[0xff, 0x4f, 0xff, 0x51])
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn grayscale_is_pillows_l24_and_bgr_swaps() {
            let rgb = [
                255, 255, 255, 0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 200, 30,
            ];
            let mut out = [0u8; 6];
            write_pixels(&rgb, PixelFormat::Grayscale, &mut out);
            // Pillow 13.0: Image.frombytes("RGB", (6, 1), bytes(rgb)).convert("L")
            assert_eq!(out, [255, 0, 76, 150, 29, 124]);
            let mut bgr = [0u8; 18];
            write_pixels(&rgb, PixelFormat::Bgr, &mut bgr);
            assert_eq!(&bgr[12..], &[255, 0, 0, 30, 200, 10]);
        }

        #[test]
        fn jpeg2000_is_refused_by_name() {
            let jp2 = [
                0, 0, 0, 0x0c, b'j', b'P', b' ', b' ', 0x0d, 0x0a, 0x87, 0x0a, 0,
            ];
            assert!(is_jpeg2000(&jp2));
            assert!(is_jpeg2000(&[0xff, 0x4f, 0xff, 0x51, 0]));
            assert!(!is_jpeg2000(&[0xff, 0xd8, 0xff]));
            let e = rgb8(&jp2).unwrap_err();
            assert!(e.contains("JPEG 2000"), "{e}");
        }
    }
}
