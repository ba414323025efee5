//! `avx512_dwconv_f32`: depthwise and small-group 2-D convolution for strides 1 and 2, any
//! dilation, 16 outputs of a row per vector (see [`crate::kernels::conv_is_direct`]).
//!
//! Four (output row, 16-column chunk) accumulators are in flight at once, each summing all
//! `kh * kw` taps in a register before one store, so the FMA latency is hidden and no
//! accumulator goes through memory. Taps that fall into the padding are masked lanes (masked
//! loads never touch them), so there are no edge loops. Stride 2 loads 32 consecutive inputs
//! and keeps the even ones with one permute.

use super::gemm::act512;
use crate::{Activation, Conv2dGeom};
use core::arch::x86_64::*;

/// Whether [`avx512_dwconv_f32`] handles `g` (a direct convolution, horizontal stride 1 or 2).
pub(crate) fn handles(g: &Conv2dGeom) -> bool {
    (g.stride_w == 1 || g.stride_w == 2) && g.w_in > 0 && g.kw <= MAX_KW
}

/// Widest kernel handled (the per-tap masks live in a fixed array).
const MAX_KW: usize = 16;

/// Bits `lo..hi` of a 16-lane mask (empty when `hi <= lo`).
#[inline]
fn lanes(lo: isize, hi: isize) -> u16 {
    let lo = lo.clamp(0, 16) as u32;
    let hi = hi.clamp(0, 16) as u32;
    let upto = |n: u32| if n >= 16 { 0xffffu32 } else { (1u32 << n) - 1 };
    (upto(hi) & !upto(lo)) as u16
}

/// Where one tap of one accumulator reads: offset in the row and the masks of valid lanes
/// for the (one or two) 16-float loads.
#[derive(Clone, Copy, Default)]
struct Tap {
    p: isize,
    m0: u16,
    m1: u16,
}

impl Tap {
    fn new<const S: usize>(p: isize, w: usize) -> Tap {
        let w = w as isize;
        Tap {
            p,
            m0: lanes(-p, w - p),
            m1: if S == 2 {
                lanes(-(p + 16), w - p - 16)
            } else {
                0
            },
        }
    }
}

/// Inputs `row[t.p + S*l]` for lanes `l < 16`, zero where outside the row.
///
/// # Safety
/// `row` points at the row the masks of `t` were computed for.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn tap<const S: usize>(row: *const f32, t: Tap) -> __m512 {
    // SAFETY: only lanes whose index lies in the row are read (masked loads do not touch the
    // others); the pointer itself is formed with wrapping arithmetic.
    unsafe {
        if S == 1 {
            _mm512_maskz_loadu_ps(t.m0, row.wrapping_offset(t.p))
        } else {
            let lo = _mm512_maskz_loadu_ps(t.m0, row.wrapping_offset(t.p));
            let hi = _mm512_maskz_loadu_ps(t.m1, row.wrapping_offset(t.p + 16));
            let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
            _mm512_permutex2var_ps(lo, even, hi)
        }
    }
}

/// `out = act(conv(input, weight) + bias)` for a grouped convolution with few channels per
/// group (depthwise: one); weight `[c_out, c_in / groups, kh, kw]`.
#[target_feature(enable = "avx512f")]
pub(crate) fn avx512_dwconv_f32(
    g: &Conv2dGeom,
    input: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
) {
    if g.stride_w == 1 {
        dw::<1>(g, input, weight, bias, act, out)
    } else {
        dw::<2>(g, input, weight, bias, act, out)
    }
}

#[target_feature(enable = "avx512f")]
fn dw<const S: usize>(
    g: &Conv2dGeom,
    input: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
) {
    const B: usize = 4;
    let in_plane = g.h_in * g.w_in;
    let out_plane = g.h_out * g.w_out;
    let taps = g.kh * g.kw;
    let chunks = g.w_out.div_ceil(16);
    let cig = g.c_in / g.groups;
    let cog = g.c_out / g.groups;
    // Output rows whose kernel rows all lie inside the input: no per-row padding checks.
    let row_ok = |oh: usize| {
        let top = (oh * g.stride_h) as isize - g.pad_top as isize;
        top >= 0 && top as usize + (g.kh - 1) * g.dil_h < g.h_in
    };
    for b in 0..g.n {
        for c in 0..g.c_out {
            // The group's input planes, one after the other.
            let first_in = b * g.c_in + c / cog * cig;
            let ip = &input[first_in * in_plane..][..cig * in_plane];
            let op = &mut out[(b * g.c_out + c) * out_plane..][..out_plane];
            let w = &weight[c * cig * taps..(c + 1) * cig * taps];
            let bv = _mm512_set1_ps(bias.map_or(0.0, |bs| bs[c]));
            for chunk in 0..chunks {
                let ow0 = chunk * 16;
                let n_out = (g.w_out - ow0).min(16) as isize;
                // The read position and lane masks of each kernel column: the same for every
                // output row of this column chunk.
                let mut tap_at = [Tap::default(); MAX_KW];
                for (kx, t) in tap_at.iter_mut().enumerate().take(g.kw) {
                    let off = (kx * g.dil_w) as isize - g.pad_left as isize;
                    *t = Tap::new::<S>((ow0 * S) as isize + off, g.w_in);
                }
                let tap_at = &tap_at[..g.kw];
                let mut oh = 0;
                while oh < g.h_out {
                    let nb = (g.h_out - oh).min(B);
                    let mut acc = [bv; B];
                    if nb == B && row_ok(oh) && row_ok(oh + B - 1) {
                        // Interior block: every tap row of the B rows is inside the input.
                        let top = oh * g.stride_h - g.pad_top;
                        for ci in 0..cig {
                            let plane = &ip[ci * in_plane..(ci + 1) * in_plane];
                            for ky in 0..g.kh {
                                let ih = top + ky * g.dil_h;
                                let wr = &w[(ci * g.kh + ky) * g.kw..][..g.kw];
                                for (t, &wk) in tap_at.iter().zip(wr) {
                                    let wv = _mm512_set1_ps(wk);
                                    for (j, a) in acc.iter_mut().enumerate() {
                                        let row = &plane[(ih + j * g.stride_h) * g.w_in..];
                                        // SAFETY: `row` starts an input row of w_in floats
                                        // (ih + j*stride_h < h_in by row_ok), the row width
                                        // the masks were computed for.
                                        let x = unsafe { tap::<S>(row.as_ptr(), *t) };
                                        *a = _mm512_fmadd_ps(x, wv, *a);
                                    }
                                }
                            }
                        }
                    } else {
                        for ci in 0..cig {
                            let plane = &ip[ci * in_plane..(ci + 1) * in_plane];
                            for ky in 0..g.kh {
                                // The input row of each accumulator (None: padding).
                                let mut rows = [None; B];
                                for (j, r) in rows.iter_mut().enumerate().take(nb) {
                                    let ih = ((oh + j) * g.stride_h + ky * g.dil_h) as isize
                                        - g.pad_top as isize;
                                    if ih >= 0 && ih < g.h_in as isize {
                                        *r = Some(plane[ih as usize * g.w_in..].as_ptr());
                                    }
                                }
                                let wr = &w[(ci * g.kh + ky) * g.kw..][..g.kw];
                                for (t, &wk) in tap_at.iter().zip(wr) {
                                    let wv = _mm512_set1_ps(wk);
                                    for (a, row) in acc.iter_mut().zip(rows) {
                                        if let Some(row) = row {
                                            // SAFETY: `row` starts an input row of w_in floats,
                                            // the row the masks were computed for.
                                            let x = unsafe { tap::<S>(row, *t) };
                                            *a = _mm512_fmadd_ps(x, wv, *a);
                                        }
                                    }
                                }
                            }
                        }
                    }
                    for (j, a) in acc.iter().enumerate().take(nb) {
                        let at = (oh + j) * g.w_out + ow0;
                        let dst = &mut op[at..at + n_out as usize];
                        // SAFETY: the mask covers exactly the n_out floats of `dst`.
                        unsafe {
                            _mm512_mask_storeu_ps(
                                dst.as_mut_ptr(),
                                lanes(0, n_out),
                                act512(*a, act),
                            )
                        };
                    }
                    oh += nb;
                }
            }
        }
    }
}
