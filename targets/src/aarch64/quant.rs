//! `neon_quantize_u8` and `neon_dequantize_u8`: [`crate::q8::quantize_u8`] and
//! [`crate::q8::dequantize_u8`] 8 values per step, with the reference's single IEEE operations
//! (`fdiv`, not a reciprocal product; `frintn`, round half even; NaN to the zero point), so
//! every bit matches.

use core::arch::aarch64::*;

/// `out[i] = quantize_one(x[i], scale, zp)` for `i < min(x.len(), out.len())`.
#[target_feature(enable = "neon")]
pub(crate) fn neon_quantize_u8(x: &[f32], scale: f32, zp: u8, out: &mut [u8]) {
    let len = x.len().min(out.len());
    let s = vdupq_n_f32(scale);
    let (lo, hi) = (vdupq_n_f32(-512.0), vdupq_n_f32(512.0));
    let zpv = vdupq_n_s32(zp as i32);
    let (b0, b255) = (vdupq_n_s32(0), vdupq_n_s32(255));
    let one = |v: float32x4_t| {
        let v = vdivq_f32(v, s);
        let ok = vceqq_f32(v, v);
        let r = vminq_f32(vmaxq_f32(vrndnq_f32(v), lo), hi);
        let q = vaddq_s32(vcvtq_s32_f32(r), zpv);
        let q = vminq_s32(vmaxq_s32(q, b0), b255);
        vreinterpretq_u32_s32(vbslq_s32(ok, q, zpv))
    };
    let mut i = 0;
    while i + 8 <= len {
        // SAFETY: values i .. i + 8 exist in both slices.
        unsafe {
            let a = one(vld1q_f32(x.as_ptr().add(i)));
            let b = one(vld1q_f32(x.as_ptr().add(i + 4)));
            let h = vcombine_u16(vmovn_u32(a), vmovn_u32(b));
            vst1_u8(out.as_mut_ptr().add(i), vmovn_u16(h));
        }
        i += 8;
    }
    crate::q8::quantize_u8(&x[i..len], scale, zp, &mut out[i..len]);
}

/// `out[i] = dequantize_one(q[i], scale, zp)` for `i < min(q.len(), out.len())`.
#[target_feature(enable = "neon")]
pub(crate) fn neon_dequantize_u8(q: &[u8], scale: f32, zp: u8, out: &mut [f32]) {
    let len = q.len().min(out.len());
    let s = vdupq_n_f32(scale);
    let zpv = vdupq_n_s32(zp as i32);
    let mut i = 0;
    while i + 8 <= len {
        // SAFETY: values i .. i + 8 exist in both slices.
        unsafe {
            let h = vmovl_u8(vld1_u8(q.as_ptr().add(i)));
            let a = vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(h)));
            let b = vreinterpretq_s32_u32(vmovl_high_u16(h));
            let fa = vmulq_f32(vcvtq_f32_s32(vsubq_s32(a, zpv)), s);
            let fb = vmulq_f32(vcvtq_f32_s32(vsubq_s32(b, zpv)), s);
            vst1q_f32(out.as_mut_ptr().add(i), fa);
            vst1q_f32(out.as_mut_ptr().add(i + 4), fb);
        }
        i += 8;
    }
    crate::q8::dequantize_u8(&q[i..len], scale, zp, &mut out[i..len]);
}
