//! fp16 -> f32 conversion for weight tiles: `neon_cvt_f16_f32` (`fcvtl`, base aarch64).
//! Scalar twin: [`crate::fp16::f16_to_f32`]. The instruction is emitted with `asm!` because
//! the intrinsic's `float16x4_t` needs the unstable `f16` type.

use crate::fp16::blocks;
use core::arch::aarch64::*;
use core::arch::asm;

/// Converts `n` binary16 values at `src` to f32 at `dst`, 4 per instruction.
///
/// # Safety
/// `src` holds `n` readable values, `dst` `n` writable ones.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn neon_cvt_f16_f32(src: *const u16, dst: *mut f32, n: usize) {
    // SAFETY: `blocks` hands over 4 readable and writable values at a time (caller's
    // contract); `fcvtl` only reads and writes the named registers.
    unsafe {
        blocks::<4>(src, dst, n, |s, d| {
            let h = vld1_u16(s);
            let f: float32x4_t;
            asm!(
                "fcvtl {f:v}.4s, {h:v}.4h",
                f = lateout(vreg) f,
                h = in(vreg) h,
                options(pure, nomem, nostack, preserves_flags)
            );
            vst1q_f32(d, f);
        })
    }
}
