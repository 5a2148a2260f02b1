//! Little-endian primitive encoding of the metadata section, with bounds-checked decoding.
use crate::FormatError;

/// Appends primitives to a byte vector.
#[derive(Default)]
pub(crate) struct Enc {
    pub buf: Vec<u8>,
}

impl Enc {
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn f32(&mut self, v: f32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn str(&mut self, s: &str) {
        self.len(s.len());
        self.buf.extend_from_slice(s.as_bytes());
    }
    pub fn len(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
    pub fn opt_u32(&mut self, v: Option<u32>) {
        self.u32(v.map_or(u32::MAX, |x| x));
    }
}

/// Reads primitives from a byte slice; every read is bounds-checked.
pub(crate) struct Dec<'a> {
    buf: &'a [u8],
    pos: usize,
    section: &'static str,
}

impl<'a> Dec<'a> {
    pub fn new(buf: &'a [u8], section: &'static str) -> Self {
        Dec {
            buf,
            pos: 0,
            section,
        }
    }
    pub fn at_end(&self) -> bool {
        self.pos == self.buf.len()
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(FormatError::Truncated {
                section: self.section,
                at: self.pos as u64,
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    pub fn u8(&mut self) -> Result<u8, FormatError> {
        Ok(self.take(1)?[0])
    }
    pub fn u16(&mut self) -> Result<u16, FormatError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    pub fn u32(&mut self) -> Result<u32, FormatError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn u64(&mut self) -> Result<u64, FormatError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    pub fn i64(&mut self) -> Result<i64, FormatError> {
        Ok(self.u64()? as i64)
    }
    pub fn f32(&mut self) -> Result<f32, FormatError> {
        Ok(f32::from_bits(self.u32()?))
    }
    /// A count of items that each take at least `min_item` bytes: rejected when the rest of the
    /// section cannot hold them (so a corrupted count never makes us allocate gigabytes).
    pub fn len(&mut self, min_item: usize) -> Result<usize, FormatError> {
        let n = self.u32()? as usize;
        let rest = self.buf.len() - self.pos;
        if n.saturating_mul(min_item.max(1)) > rest {
            return Err(FormatError::Invalid {
                section: self.section,
                what: format!("count {n} at byte {} exceeds the section", self.pos - 4),
            });
        }
        Ok(n)
    }
    pub fn str(&mut self) -> Result<String, FormatError> {
        let n = self.len(1)?;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| FormatError::Invalid {
            section: self.section,
            what: "string is not UTF-8".into(),
        })
    }
    pub fn opt_u32(&mut self) -> Result<Option<u32>, FormatError> {
        let v = self.u32()?;
        Ok((v != u32::MAX).then_some(v))
    }
}
