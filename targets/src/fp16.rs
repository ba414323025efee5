//! IEEE binary16 ("half", fp16) weights: the conversion to f32 every kernel set uses when it
//! loads fp16 weights into a tile, and the element trait that lets the matrix kernels read
//! f32 and fp16 operands alike.
//!
//! fp16 values travel as their bit patterns in a `u16` (the file stores them so, little-endian;
//! the `half` crate's `f16::to_bits` gives the same pattern). Arithmetic stays f32 everywhere:
//! an fp16 weight is widened exactly (every binary16 value is a binary32 value) before it is
//! multiplied, so a kernel over fp16 weights computes bit for bit what it computes over the
//! widened f32 weights.
//!
//! Conversion: [`f16_to_f32`] is the portable, branchy scalar twin (no tables, `no_std`);
//! the SIMD sets use F16C `vcvtph2ps` (AVX2 set: `_mm256_cvtph_ps`; AVX-512: `_mm512_cvtph_ps`)
//! and NEON `fcvtl`. All agree bit for bit on all 65 536 inputs, subnormals, infinities and
//! NaNs included (a NaN keeps its sign and payload and gets the quiet bit, as the hardware
//! instructions do with default-NaN mode off).

/// An element the matrix kernels can read as f32: `f32` itself, or `u16` holding the bits of
/// an IEEE binary16 value.
pub trait Real: Copy + Send + Sync + 'static {
    /// The value as f32 (exact: binary16 widens without rounding).
    fn to_f32(self) -> f32;
}

impl Real for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
}

impl Real for u16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f16_to_f32(self)
    }
}

/// Widens the binary16 value with bits `h` to f32, exactly. A NaN keeps its sign and payload
/// (shifted into the top mantissa bits) and gets the quiet bit set.
#[inline]
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h & 0x8000) as u32) << 16;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let bits = if exp == 0x1f {
        if man == 0 {
            sign | 0x7f80_0000
        } else {
            sign | 0x7fc0_0000 | (man << 13)
        }
    } else if exp != 0 {
        // Normal: rebias the exponent (15 -> 127).
        sign | ((exp + 112) << 23) | (man << 13)
    } else if man == 0 {
        sign
    } else {
        // Subnormal `man * 2^-24`: normalize so the leading 1 lands on bit 10.
        let shift = man.leading_zeros() - 21;
        sign | ((113 - shift) << 23) | (((man << shift) & 0x3ff) << 13)
    };
    f32::from_bits(bits)
}

/// `dst[i] = f16_to_f32(src[i])` for `i < min(src.len(), dst.len())`: the scalar twin of the
/// SIMD conversions.
pub fn f16_slice_to_f32(src: &[u16], dst: &mut [f32]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = f16_to_f32(s);
    }
}

/// Runs `whole` over the full `W`-value blocks of `n` and then once over the tail, copied
/// through a zero-padded stack block so no value past `n` is read or written.
///
/// # Safety
/// `src` holds `n` readable values, `dst` `n` writable ones; `whole(s, d)` converts `W` values
/// and is safe to call on any `W` readable/writable values.
#[inline(always)]
#[cfg(any(
    target_arch = "x86_64",
    all(target_arch = "aarch64", target_feature = "neon")
))]
pub(crate) unsafe fn blocks<const W: usize>(
    src: *const u16,
    dst: *mut f32,
    n: usize,
    whole: impl Fn(*const u16, *mut f32),
) {
    let mut i = 0;
    // SAFETY: blocks lie below n (caller's contract); the tail goes through local arrays.
    unsafe {
        while i + W <= n {
            whole(src.add(i), dst.add(i));
            i += W;
        }
        if i < n {
            let mut s = [0u16; W];
            let mut d = [0f32; W];
            core::ptr::copy_nonoverlapping(src.add(i), s.as_mut_ptr(), n - i);
            whole(s.as_ptr(), d.as_mut_ptr());
            core::ptr::copy_nonoverlapping(d.as_ptr(), dst.add(i), n - i);
        }
    }
}
