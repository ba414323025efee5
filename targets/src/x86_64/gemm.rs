//! GEMM micro-kernels: `avx512_gemm_f32_6x64` and `avx2_gemm_f32_6x16` (see [`crate::gemm`]).

use super::math::{gelu256, gelu512, sigmoid256, sigmoid512};
use crate::gemm::{Epilogue, MicroKernel, MR};
use crate::Activation;
use core::arch::x86_64::*;

/// AVX-512: 6 rows x up to 4 vectors of 16 columns; 24 accumulators in registers.
#[derive(Debug)]
pub(crate) struct Avx512Gemm6x64;

impl MicroKernel for Avx512Gemm6x64 {
    const NR: usize = 64;
    unsafe fn cvt_f16(src: *const u16, dst: *mut f32, n: usize) {
        // SAFETY: forwarded contract (MicroKernel::cvt_f16).
        unsafe { super::fp16::avx512_cvt_f16_f32(src, dst, n) }
    }
    unsafe fn tile(
        kc: usize,
        a: *const f32,
        b: *const f32,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
        mr: usize,
        nr: usize,
        accumulate: bool,
        ep: Option<&Epilogue>,
    ) {
        // SAFETY: forwarded contract (MicroKernel::tile), nr <= 64 selects the vector count.
        unsafe {
            match nr.div_ceil(16) {
                0 | 1 => avx512_gemm_f32_6x64::<1>(kc, a, b, ldb, c, ldc, mr, nr, accumulate, ep),
                2 => avx512_gemm_f32_6x64::<2>(kc, a, b, ldb, c, ldc, mr, nr, accumulate, ep),
                3 => avx512_gemm_f32_6x64::<3>(kc, a, b, ldb, c, ldc, mr, nr, accumulate, ep),
                _ => avx512_gemm_f32_6x64::<4>(kc, a, b, ldb, c, ldc, mr, nr, accumulate, ep),
            }
        }
    }
}

#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn act512(v: __m512, act: Activation) -> __m512 {
    match act {
        Activation::None => v,
        // Constant first: NaN propagates (see elementwise.rs).
        Activation::Relu => _mm512_max_ps(_mm512_setzero_ps(), v),
        Activation::Clip { lo, hi } => {
            _mm512_min_ps(_mm512_set1_ps(hi), _mm512_max_ps(_mm512_set1_ps(lo), v))
        }
        Activation::Sigmoid => sigmoid512(v),
        Activation::Gelu => gelu512(_mm512_max_ps(_mm512_set1_ps(-20.0), v)),
        // As the unary SiLU kernel (elementwise.rs), so fusing it changes no bit.
        Activation::Silu => {
            let c = _mm512_max_ps(_mm512_set1_ps(-120.0), v);
            _mm512_mul_ps(c, sigmoid512(c))
        }
    }
}

#[target_feature(enable = "avx512f")]
unsafe fn avx512_gemm_f32_6x64<const NV: usize>(
    kc: usize,
    a: *const f32,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    mr: usize,
    nr: usize,
    accumulate: bool,
    ep: Option<&Epilogue>,
) {
    let tail = nr - (NV - 1) * 16;
    let mut masks = [0xffffu16; NV];
    masks[NV - 1] = if tail >= 16 {
        0xffff
    } else {
        (1u16 << tail) - 1
    };
    let mut acc = [[_mm512_setzero_ps(); NV]; MR];
    // SAFETY: (whole body) pointer ranges are the MicroKernel::tile contract; masked lanes are
    // never touched.
    unsafe {
        if accumulate {
            for i in 0..MR {
                if i < mr {
                    for v in 0..NV {
                        acc[i][v] = _mm512_maskz_loadu_ps(masks[v], c.add(i * ldc + v * 16));
                    }
                }
            }
        }
        for p in 0..kc {
            let bp = b.add(p * ldb);
            let mut bv = [_mm512_setzero_ps(); NV];
            for v in 0..NV {
                bv[v] = _mm512_maskz_loadu_ps(masks[v], bp.add(v * 16));
            }
            let ap = a.add(p * MR);
            for i in 0..MR {
                let ai = _mm512_set1_ps(*ap.add(i));
                for v in 0..NV {
                    acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
                }
            }
        }
        if let Some(ep) = ep {
            if ep.alpha != 1.0 {
                let al = _mm512_set1_ps(ep.alpha);
                for row in acc.iter_mut() {
                    for x in row.iter_mut() {
                        *x = _mm512_mul_ps(*x, al);
                    }
                }
            }
            if !ep.bias_row.is_null() {
                for i in 0..MR {
                    let bi = _mm512_set1_ps(*ep.bias_row.add(i));
                    for v in 0..NV {
                        acc[i][v] = _mm512_add_ps(acc[i][v], bi);
                    }
                }
            }
            if !ep.bias_col.is_null() {
                for v in 0..NV {
                    let bc = _mm512_maskz_loadu_ps(masks[v], ep.bias_col.add(v * 16));
                    for row in acc.iter_mut() {
                        row[v] = _mm512_add_ps(row[v], bc);
                    }
                }
            }
            if ep.act != Activation::None {
                for row in acc.iter_mut() {
                    for x in row.iter_mut() {
                        *x = act512(*x, ep.act);
                    }
                }
            }
        }
        for i in 0..MR {
            if i < mr {
                for v in 0..NV {
                    _mm512_mask_storeu_ps(c.add(i * ldc + v * 16), masks[v], acc[i][v]);
                }
            }
        }
    }
}

/// AVX2: 6 rows x 2 vectors of 8 columns; 12 accumulators.
#[derive(Debug)]
pub(crate) struct Avx2Gemm6x16;

impl MicroKernel for Avx2Gemm6x16 {
    const NR: usize = 16;
    unsafe fn cvt_f16(src: *const u16, dst: *mut f32, n: usize) {
        // SAFETY: forwarded contract (MicroKernel::cvt_f16).
        unsafe { super::fp16::f16c_cvt_f16_f32(src, dst, n) }
    }
    unsafe fn tile(
        kc: usize,
        a: *const f32,
        b: *const f32,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
        mr: usize,
        nr: usize,
        accumulate: bool,
        ep: Option<&Epilogue>,
    ) {
        // SAFETY: forwarded contract.
        unsafe {
            if nr == 16 {
                avx2_gemm_f32_6x16::<true>(kc, a, b, ldb, c, ldc, mr, nr, accumulate, ep)
            } else {
                avx2_gemm_f32_6x16::<false>(kc, a, b, ldb, c, ldc, mr, nr, accumulate, ep)
            }
        }
    }
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn act256(v: __m256, act: Activation) -> __m256 {
    match act {
        Activation::None => v,
        Activation::Relu => _mm256_max_ps(_mm256_setzero_ps(), v),
        Activation::Clip { lo, hi } => {
            _mm256_min_ps(_mm256_set1_ps(hi), _mm256_max_ps(_mm256_set1_ps(lo), v))
        }
        Activation::Sigmoid => sigmoid256(v),
        Activation::Gelu => gelu256(_mm256_max_ps(_mm256_set1_ps(-20.0), v)),
        Activation::Silu => {
            let c = _mm256_max_ps(_mm256_set1_ps(-120.0), v);
            _mm256_mul_ps(c, sigmoid256(c))
        }
    }
}

/// Eight floats at `p`, all of them (`FULL`) or the lanes of `mask`.
///
/// # Safety
/// The loaded lanes are readable.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn load8<const FULL: bool>(p: *const f32, mask: __m256i) -> __m256 {
    // SAFETY: the caller's contract.
    unsafe {
        if FULL {
            _mm256_loadu_ps(p)
        } else {
            _mm256_maskload_ps(p, mask)
        }
    }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_gemm_f32_6x16<const FULL: bool>(
    kc: usize,
    a: *const f32,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    mr: usize,
    nr: usize,
    accumulate: bool,
    ep: Option<&Epilogue>,
) {
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr as i32), lanes);
    let m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr as i32 - 8), lanes);
    let mut acc = [[_mm256_setzero_ps(); 2]; MR];
    // SAFETY: (whole body) pointer ranges are the MicroKernel::tile contract; with FULL all 16
    // columns are in range, otherwise masked lanes are never touched.
    unsafe {
        if accumulate {
            for i in 0..MR {
                if i < mr {
                    acc[i][0] = load8::<FULL>(c.add(i * ldc), m0);
                    acc[i][1] = load8::<FULL>(c.add(i * ldc + 8), m1);
                }
            }
        }
        for p in 0..kc {
            let bp = b.add(p * ldb);
            let b0 = load8::<FULL>(bp, m0);
            let b1 = load8::<FULL>(bp.add(8), m1);
            let ap = a.add(p * MR);
            for i in 0..MR {
                let ai = _mm256_broadcast_ss(&*ap.add(i));
                acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
                acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
            }
        }
        if let Some(ep) = ep {
            if ep.alpha != 1.0 {
                let al = _mm256_set1_ps(ep.alpha);
                for row in acc.iter_mut() {
                    for x in row.iter_mut() {
                        *x = _mm256_mul_ps(*x, al);
                    }
                }
            }
            if !ep.bias_row.is_null() {
                for i in 0..MR {
                    let bi = _mm256_set1_ps(*ep.bias_row.add(i));
                    acc[i][0] = _mm256_add_ps(acc[i][0], bi);
                    acc[i][1] = _mm256_add_ps(acc[i][1], bi);
                }
            }
            if !ep.bias_col.is_null() {
                let b0 = load8::<FULL>(ep.bias_col, m0);
                let b1 = load8::<FULL>(ep.bias_col.add(8), m1);
                for row in acc.iter_mut() {
                    row[0] = _mm256_add_ps(row[0], b0);
                    row[1] = _mm256_add_ps(row[1], b1);
                }
            }
            if ep.act != Activation::None {
                for row in acc.iter_mut() {
                    for x in row.iter_mut() {
                        *x = act256(*x, ep.act);
                    }
                }
            }
        }
        for i in 0..MR {
            if i < mr {
                let p = c.add(i * ldc);
                if FULL {
                    _mm256_storeu_ps(p, acc[i][0]);
                    _mm256_storeu_ps(p.add(8), acc[i][1]);
                } else {
                    _mm256_maskstore_ps(p, m0, acc[i][0]);
                    _mm256_maskstore_ps(p.add(8), m1, acc[i][1]);
                }
            }
        }
    }
}

/// `avx512_gemv_f32_panels`: `out[i * ldo] = act(sum_p a(i, p) x[p] + bias[i])` for `i < m`,
/// A in 6-row panels ([`crate::gemm::pack_a_panels`] order), `x` of `k` values. One masked
/// 6-lane FMA per step and panel: the GEMM tile would spend 6 broadcasts and 6 FMAs on one
/// useful column.
///
/// # Safety
/// `a` holds `m.div_ceil(6) * 6 * k` values, `x` `k`, `out` `(m - 1) * ldo + 1`, `bias` (if not
/// null) `m`.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn avx512_gemv_f32_panels(
    m: usize,
    k: usize,
    a: *const f32,
    x: *const f32,
    bias: *const f32,
    act: Activation,
    out: *mut f32,
    ldo: usize,
) {
    // SAFETY: (whole body) reads stay within the panels, `x` and `bias` as the contract says;
    // the 6-lane mask never touches the next panel's values beyond what exists (each panel row
    // `p` has 6 values and the last read of panel t ends at its own end).
    unsafe {
        for t in 0..m.div_ceil(MR) {
            let pa = a.add(t * k * MR);
            let mut acc0 = _mm512_setzero_ps();
            let mut acc1 = _mm512_setzero_ps();
            let mut p = 0;
            while p + 1 < k {
                let x0 = _mm512_set1_ps(*x.add(p));
                let x1 = _mm512_set1_ps(*x.add(p + 1));
                acc0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(0x3f, pa.add(p * MR)), x0, acc0);
                acc1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(0x3f, pa.add((p + 1) * MR)), x1, acc1);
                p += 2;
            }
            if p < k {
                let x0 = _mm512_set1_ps(*x.add(p));
                acc0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(0x3f, pa.add(p * MR)), x0, acc0);
            }
            let mut v = _mm512_add_ps(acc0, acc1);
            let rows = (m - t * MR).min(MR);
            if !bias.is_null() {
                let mb = ((1u32 << rows) - 1) as u16;
                v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mb, bias.add(t * MR)));
            }
            let v = act512(v, act);
            let mut lanes = [0f32; 16];
            _mm512_storeu_ps(lanes.as_mut_ptr(), v);
            for (i, &l) in lanes.iter().take(rows).enumerate() {
                *out.add((t * MR + i) * ldo) = l;
            }
        }
    }
}

/// `avx512_gemv_f16_panels`: [`avx512_gemv_f32_panels`] over binary16 panels, widened
/// [`crate::gemm::KC`] steps at a time into a stack buffer. The summation order is that of the
/// f32 kernel (chunks hold an even number of steps), so the result is bit-identical to it over
/// the widened panels.
///
/// # Safety
/// As [`avx512_gemv_f32_panels`], with `a` holding binary16 values.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn avx512_gemv_f16_panels(
    m: usize,
    k: usize,
    a: *const u16,
    x: *const f32,
    bias: *const f32,
    act: Activation,
    out: *mut f32,
    ldo: usize,
) {
    use crate::gemm::KC;
    const _: () = assert!(KC.is_multiple_of(2));
    let mut buf = [0f32; KC * MR];
    // SAFETY: (whole body) as in avx512_gemv_f32_panels; each chunk widens kc * MR values of
    // the panel (inside it) into `buf`, which holds KC * MR.
    unsafe {
        for t in 0..m.div_ceil(MR) {
            let pa = a.add(t * k * MR);
            let mut acc0 = _mm512_setzero_ps();
            let mut acc1 = _mm512_setzero_ps();
            for pc in (0..k).step_by(KC) {
                let kc = KC.min(k - pc);
                super::fp16::avx512_cvt_f16_f32(pa.add(pc * MR), buf.as_mut_ptr(), kc * MR);
                let (pb, xc) = (buf.as_ptr(), x.add(pc));
                let mut p = 0;
                while p + 1 < kc {
                    let x0 = _mm512_set1_ps(*xc.add(p));
                    let x1 = _mm512_set1_ps(*xc.add(p + 1));
                    acc0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(0x3f, pb.add(p * MR)), x0, acc0);
                    acc1 = _mm512_fmadd_ps(
                        _mm512_maskz_loadu_ps(0x3f, pb.add((p + 1) * MR)),
                        x1,
                        acc1,
                    );
                    p += 2;
                }
                if p < kc {
                    let x0 = _mm512_set1_ps(*xc.add(p));
                    acc0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(0x3f, pb.add(p * MR)), x0, acc0);
                }
            }
            let mut v = _mm512_add_ps(acc0, acc1);
            let rows = (m - t * MR).min(MR);
            if !bias.is_null() {
                let mb = ((1u32 << rows) - 1) as u16;
                v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mb, bias.add(t * MR)));
            }
            let v = act512(v, act);
            let mut lanes = [0f32; 16];
            _mm512_storeu_ps(lanes.as_mut_ptr(), v);
            for (i, &l) in lanes.iter().take(rows).enumerate() {
                *out.add((t * MR + i) * ldo) = l;
            }
        }
    }
}
