//! Poisoning: the bit pattern a debug run ([`crate::RunOptions::poison_arena`]) writes over
//! memory a step is about to produce, so that a kernel reading bytes the plan never wrote
//! (an output not fully written, a read past what a step produced, two live tensors the
//! planner placed on the same bytes) shows up as NaN or garbage in the outputs instead of
//! silently reading stale, plausible values.
//!
//! One 8-byte word, repeated at its natural alignment, is a NaN in every float type at every
//! aligned lane:
//!
//! ```text
//! bytes (LE)   c1 7f c1 7f c1 7f f8 7f
//! f64          0x7ff8_7fc1_7fc1_7fc1        NaN (exponent all ones, mantissa non-zero)
//! f32          0x7fc1_7fc1, 0x7ff8_7fc1     NaN, NaN
//! f16 / bf16   0x7fc1 0x7fc1 0x7fc1 0x7ff8  NaN in both formats, every lane
//! integers     0x7fc1.. : large garbage (i32 2143387585), out of range as an index
//! ```
//!
//! (`0x7FC00001` repeated is a NaN only as f32: as f64 it is a large finite number and its
//! low f16 lane a tiny subnormal, so this word is used instead.)

/// The poison word: each 8-byte-aligned word of poisoned memory holds it (little-endian).
/// NaN as f64, as both f32 halves and as every f16 and bf16 lane.
pub const WORD: u64 = 0x7FF8_7FC1_7FC1_7FC1;

/// Fills `words` with the poison word.
pub(crate) fn fill_words(words: &mut [u64]) {
    words.fill(WORD);
}

/// Fills `bytes` with the poison word's bytes, phased by address so that each 8-byte-aligned
/// word of memory holds [`WORD`] exactly (what an arena or heap slice at any aligned offset
/// needs).
pub(crate) fn fill_bytes(bytes: &mut [u8]) {
    let pattern = WORD.to_le_bytes();
    let phase = bytes.as_ptr() as usize % 8;
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = pattern[(phase + i) % 8];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_word_is_a_nan_in_every_float_lane() {
        assert!(f64::from_bits(WORD).is_nan());
        for k in 0..2 {
            assert!(f32::from_bits((WORD >> (32 * k)) as u32).is_nan());
        }
        for k in 0..4 {
            let h = (WORD >> (16 * k)) as u16;
            // f16: exponent bits 0x7c00 all set, mantissa non-zero; bf16: 0x7f80 and non-zero.
            assert!(h & 0x7c00 == 0x7c00 && h & 0x03ff != 0, "f16 lane {k}");
            assert!(h & 0x7f80 == 0x7f80 && h & 0x007f != 0, "bf16 lane {k}");
        }
    }

    #[test]
    fn bytes_are_phased_by_address() {
        let mut words = vec![0u64; 4];
        let bytes = bytemuck::cast_slice_mut::<u64, u8>(&mut words);
        fill_bytes(&mut bytes[3..29]);
        assert_eq!(bytes[..3], [0, 0, 0]);
        assert_eq!(words[1], WORD);
        assert_eq!(words[2], WORD);
        let bytes = bytemuck::cast_slice::<u64, u8>(&words);
        assert_eq!(bytes[3..8], WORD.to_le_bytes()[3..8]);
        assert_eq!(bytes[29..], [0, 0, 0]);
    }
}
