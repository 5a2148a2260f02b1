//! Numeric element types: one trait over f32, f64 and the integer types, and a macro that
//! calls a generic function for a tensor's element type.

/// Numeric element types.
pub(crate) trait Num: bytemuck::Pod + PartialOrd + Default {
    fn add(self, o: Self) -> Self;
    fn sub(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    fn div(self, o: Self) -> Self;
    fn rem(self, o: Self, fmod: bool) -> Self;
    fn pow(self, o: Self) -> Self;
    fn to_f64(self) -> f64;
    fn from_f64(v: f64) -> Self;
    fn from_i64(v: i64) -> Self;
    fn to_i64(self) -> i64;
    const FLOAT: bool;
}

macro_rules! num_float {
    ($t:ty) => {
        impl Num for $t {
            fn add(self, o: Self) -> Self {
                self + o
            }
            fn sub(self, o: Self) -> Self {
                self - o
            }
            fn mul(self, o: Self) -> Self {
                self * o
            }
            fn div(self, o: Self) -> Self {
                self / o
            }
            fn rem(self, o: Self, fmod: bool) -> Self {
                let r = self % o;
                if fmod || r == 0.0 || (r < 0.0) == (o < 0.0) {
                    r
                } else {
                    r + o
                }
            }
            fn pow(self, o: Self) -> Self {
                self.powf(o)
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            fn from_i64(v: i64) -> Self {
                v as $t
            }
            fn to_i64(self) -> i64 {
                self as i64
            }
            const FLOAT: bool = true;
        }
    };
}
macro_rules! num_int {
    ($t:ty) => {
        impl Num for $t {
            fn add(self, o: Self) -> Self {
                self.wrapping_add(o)
            }
            fn sub(self, o: Self) -> Self {
                self.wrapping_sub(o)
            }
            fn mul(self, o: Self) -> Self {
                self.wrapping_mul(o)
            }
            fn div(self, o: Self) -> Self {
                if o == 0 {
                    0
                } else {
                    self.wrapping_div(o)
                }
            }
            #[allow(unused_comparisons)]
            fn rem(self, o: Self, fmod: bool) -> Self {
                if o == 0 {
                    return 0;
                }
                let r = self.wrapping_rem(o);
                if fmod || r == 0 || (r < 0) == (o < 0) {
                    r
                } else {
                    r.wrapping_add(o)
                }
            }
            fn pow(self, o: Self) -> Self {
                (self as f64).powf(o as f64) as $t
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            fn from_i64(v: i64) -> Self {
                v as $t
            }
            fn to_i64(self) -> i64 {
                self as i64
            }
            const FLOAT: bool = false;
        }
    };
}
num_float!(f32);
num_float!(f64);
num_int!(i8);
num_int!(i16);
num_int!(i32);
num_int!(i64);
num_int!(u8);
num_int!(u16);
num_int!(u32);
num_int!(u64);

/// Calls `$f::<T>($args)` for the numeric type of `$dt`.
macro_rules! dispatch {
    ($dt:expr, $f:ident ( $($a:expr),* )) => {
        match $dt {
            sod2_format::DType::F32 => $f::<f32>($($a),*),
            sod2_format::DType::F64 => $f::<f64>($($a),*),
            sod2_format::DType::I8 => $f::<i8>($($a),*),
            sod2_format::DType::I16 => $f::<i16>($($a),*),
            sod2_format::DType::I32 => $f::<i32>($($a),*),
            sod2_format::DType::I64 => $f::<i64>($($a),*),
            sod2_format::DType::U8 | sod2_format::DType::Bool => $f::<u8>($($a),*),
            sod2_format::DType::U16 => $f::<u16>($($a),*),
            sod2_format::DType::U32 => $f::<u32>($($a),*),
            sod2_format::DType::U64 => $f::<u64>($($a),*),
            d => Err(format!("element type {} is not supported by this kernel", d.name())),
        }
    };
}
pub(crate) use dispatch;
