//! Helpers shared by the fuzz targets: a cursor that decodes fuzz bytes into small decisions,
//! the split of a case into a plan and its parameters, and the bounds that keep a case fast.

/// Largest dim a fuzzed shape gets (a plan's own literal dims are kept as they are).
pub const MAX_DIM: usize = 8;
/// Largest number of elements of one fuzzed input tensor.
pub const MAX_ELEMENTS: usize = 4096;
/// Memory a fuzzed session may hold (arena and execution-sized tensors): 64 MiB.
pub const SESSION_MEMORY: usize = 64 << 20;
/// Kernels' working memory cap (process-wide): 64 MiB.
pub const KERNEL_MEMORY: usize = 64 << 20;

/// Reads decisions from fuzz bytes; past the end every read is 0, so a short input is still
/// a complete case.
pub struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, at: 0 }
    }
    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.at >= self.bytes.len()
    }
    /// The next byte (0 past the end).
    pub fn u8(&mut self) -> u8 {
        let b = self.bytes.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }
    /// The next two bytes, little-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    /// The next eight bytes, little-endian.
    pub fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.u8();
        }
        u64::from_le_bytes(b)
    }
    /// `n` bytes (fewer at the end).
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let start = self.at.min(self.bytes.len());
        let end = start.saturating_add(n).min(self.bytes.len());
        self.at = self.at.saturating_add(n);
        &self.bytes[start..end]
    }
}

/// Splits a case laid out as `plan ++ params ++ [len(params)]` (the last byte counts the
/// parameter bytes, so the plan keeps its magic at offset 0 for the dictionary and the seeds).
pub fn split_params(data: &[u8]) -> (&[u8], &[u8]) {
    let Some((&n, rest)) = data.split_last() else {
        return (&[], &[]);
    };
    let n = usize::from(n).min(rest.len());
    rest.split_at(rest.len() - n)
}

/// A fuzzed shape for an input whose plan dims read `dims` (sod2's syntax): a literal dim is
/// kept unless the fuzz byte's top bit asks for another size; a symbolic one gets
/// `0..=MAX_DIM`. The element count is capped at [`MAX_ELEMENTS`] by shrinking the last dims.
pub fn fuzz_shape(dims: &[String], c: &mut Cursor<'_>) -> Vec<usize> {
    let mut out: Vec<usize> = dims
        .iter()
        .map(|d| {
            let b = c.u8();
            match d.trim().parse::<usize>() {
                Ok(lit) if b & 0x80 == 0 => lit,
                _ => usize::from(b) % (MAX_DIM + 1),
            }
        })
        .collect();
    // A rank-changing byte now and then: plans must refuse inputs of the wrong rank.
    match c.u8() {
        0xfe => {
            out.push(1);
        }
        0xff => {
            out.pop();
        }
        _ => {}
    }
    for i in (0..out.len()).rev() {
        let total = out.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if total.is_some_and(|t| t <= MAX_ELEMENTS) {
            break;
        }
        out[i] = out[i].min(1);
    }
    out
}

/// `len` bytes of tensor data drawn from the cursor, repeated when the cursor runs short.
pub fn fuzz_data(len: usize, c: &mut Cursor<'_>) -> Vec<u8> {
    let seed = c.take(len.min(256));
    if seed.is_empty() {
        return vec![0; len];
    }
    seed.iter().copied().cycle().take(len).collect()
}
