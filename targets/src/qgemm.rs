//! The int8 GEMM driver behind the SIMD [`crate::q8::qgemm`] kernels: operand checks, the
//! activation repack and the tile loop.
//!
//! Every micro-kernel computes an [`MR`]` × nr` tile (`nr ≤ NR` of that kernel) over the whole
//! reduction, the accumulators in registers from start to end:
//!
//! - the weights come straight from the packed panel ([`crate::q8::pack_qgemm_weights`]): for
//!   quad `q`, row `r`, the 32-bit word at `w + 32q + 4r` holds `w[r][4q .. 4q+4]`;
//! - the activations come from the scratch, repacked once per call as *k-quads per column*:
//!   byte `t` of column `j` of quad `q` is at `q × 4n + 4j + t` (`x(4q + t, j)`, `0` past `k`,
//!   each byte XORed with the kernel's [`QMicroKernel::XOR`]), so one 32-bit lane holds four
//!   consecutive `k` of one column and `16 / 8 / 4` consecutive columns fill a vector;
//! - each row's accumulator starts at the value the driver computes from the bias and the
//!   panel's row sums (the zero-point correction), so the kernel only adds raw products;
//! - the epilogue (requantization or the f32 scale) runs in registers and writes rows `< mr`,
//!   columns `< nr` through the output's strides.
//!
//! Every sum is an `i32` sum mod 2^32, so the order of the products does not change a bit of
//! the result: the kernels equal the reference exactly.

use crate::q8::{self, QMat, QOut, Requant, QGEMM_MR};

/// Rows per tile (the packed panel height).
pub(crate) const MR: usize = QGEMM_MR;

/// What a tile writes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum TileOut {
    /// Requantized bytes: per row multiplier and shift, then the common zero point and clamp.
    U8 {
        out: *mut u8,
        mult: [i32; MR],
        shift: [i8; MR],
        zp: u8,
        lo: u8,
        hi: u8,
    },
    /// `acc as f32 × scale[r]`.
    F32 { out: *mut f32, scale: [f32; MR] },
}

/// Where and how a tile writes element `(r, j)`: at `out + r × rs + j × cs` for `r < mr`,
/// `j < nr`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TileDst {
    pub out: TileOut,
    pub rs: usize,
    pub cs: usize,
    pub mr: usize,
    pub nr: usize,
}

/// The `t` of [`q8::requantize`] (`31 + shift`, clamped to `[1, 61]`).
#[inline(always)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) fn requant_t(shift: i8) -> u32 {
    (31 + shift as i32).clamp(1, 61) as u32
}

/// An int8 micro-kernel: see the module documentation.
pub(crate) trait QMicroKernel {
    /// Widest tile (columns).
    const NR: usize;
    /// What the repack XORs into every activation byte (`0x80` turns `u8` into `s8 = x − 128`
    /// for the signed-by-signed NEON products).
    const XOR: u8;
    /// Computes one tile.
    ///
    /// # Safety
    /// The CPU has the kernel's instructions; `w` points at a packed panel of `k4 / 4` quads
    /// (`8 × k4` readable bytes); `x` points at column `j0` of the repacked activations, and
    /// quad `q`'s columns `0 .. nr` are readable at `x + q × ldx` (`4 × nr` bytes); `dst`
    /// addresses writable elements for rows `< mr ≤ MR` and columns `< nr ≤ NR`.
    unsafe fn tile(
        k4: usize,
        w: *const i8,
        x: *const u8,
        ldx: usize,
        init: &[i32; MR],
        dst: &TileDst,
    );
}

/// What to do with the accumulators (see [`run`]).
pub(crate) enum Epi<'a, 'b> {
    /// [`q8::qgemm`].
    Requant(&'b Requant<'a>, &'b mut [u8]),
    /// [`q8::qgemm_f32out`].
    F32 {
        bias: &'a [i32],
        scale: &'a [f32],
        out: &'b mut [f32],
    },
}

/// Whether `offset + i × rs + j × cs` for `i < m`, `j < n` stays below `len` and no two
/// elements share an index (a kernel writes in another order than the reference, so aliased
/// outputs go to the reference). `m, n > 0`.
fn out_ok(m: usize, n: usize, o: &QOut, len: usize) -> bool {
    let last = (m - 1)
        .checked_mul(o.rs)
        .and_then(|a| (n - 1).checked_mul(o.cs).and_then(|b| a.checked_add(b)))
        .and_then(|a| a.checked_add(o.offset));
    let in_bounds = matches!(last, Some(l) if l < len);
    let distinct = m == 1 && (n == 1 || o.cs > 0)
        || n == 1 && o.rs > 0
        || o.cs > 0 && o.rs >= n.saturating_mul(o.cs)
        || o.rs > 0 && o.cs >= m.saturating_mul(o.rs);
    in_bounds && distinct
}

/// Whether every `x(kk, j)` (`kk < k`, `j < n`) is in bounds. `n > 0`.
fn x_ok(k: usize, n: usize, x: &QMat<'_>) -> bool {
    if k == 0 {
        return true;
    }
    let last = (k - 1)
        .checked_mul(x.rs)
        .and_then(|a| (n - 1).checked_mul(x.cs).and_then(|b| a.checked_add(b)))
        .and_then(|a| a.checked_add(x.offset));
    matches!(last, Some(l) if l < x.data.len())
}

/// Writes the activations in the kernels' layout (module documentation) to `dst`
/// (`qgemm_k4(k) × n` bytes). Operands are checked by the caller.
fn repack(k: usize, n: usize, x: &QMat<'_>, xor: u8, dst: &mut [u8]) {
    let k4 = q8::qgemm_k4(k);
    for (q, quad) in dst[..k4 * n].chunks_exact_mut(4 * n).enumerate() {
        for t in 0..4 {
            let kk = 4 * q + t;
            if kk >= k {
                for col in quad.chunks_exact_mut(4) {
                    col[t] = xor;
                }
                continue;
            }
            let row = x.offset + kk * x.rs;
            if x.cs == 1 && t == 0 && 4 * q + 3 < k {
                // A whole quad of contiguous rows: interleaved 16 columns at a time.
                let r = |i: usize| &x.data[row + i * x.rs..row + i * x.rs + n];
                interleave4([r(0), r(1), r(2), r(3)], xor, quad);
                break;
            }
            if x.cs == 1 {
                let src = &x.data[row..row + n];
                for (col, &v) in quad.chunks_exact_mut(4).zip(src) {
                    col[t] = v ^ xor;
                }
            } else {
                for (j, col) in quad.chunks_exact_mut(4).enumerate() {
                    col[t] = x.data[row + j * x.cs] ^ xor;
                }
            }
        }
    }
}

/// `out[4j + t] = rows[t][j] ^ xor` for `j < n` (`rows[t].len() == n`, `out.len() == 4n`).
fn interleave4(rows: [&[u8]; 4], xor: u8, out: &mut [u8]) {
    let n = out.len() / 4;
    let mut j = 0;
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::*;
        while j + 16 <= n {
            // SAFETY: SSE2 is part of x86-64; bytes j .. j + 16 of each row and 4j .. 4j + 64
            // of `out` are in bounds (j + 16 ≤ n).
            unsafe {
                let fx = _mm_set1_epi8(xor as i8);
                let ld = |t: usize| {
                    let v = _mm_loadu_si128(rows[t].as_ptr().add(j) as *const __m128i);
                    _mm_xor_si128(v, fx)
                };
                let (a, b, c, d) = (ld(0), ld(1), ld(2), ld(3));
                let (ab0, ab1) = (_mm_unpacklo_epi8(a, b), _mm_unpackhi_epi8(a, b));
                let (cd0, cd1) = (_mm_unpacklo_epi8(c, d), _mm_unpackhi_epi8(c, d));
                let o = out.as_mut_ptr().add(4 * j) as *mut __m128i;
                _mm_storeu_si128(o, _mm_unpacklo_epi16(ab0, cd0));
                _mm_storeu_si128(o.add(1), _mm_unpackhi_epi16(ab0, cd0));
                _mm_storeu_si128(o.add(2), _mm_unpacklo_epi16(ab1, cd1));
                _mm_storeu_si128(o.add(3), _mm_unpackhi_epi16(ab1, cd1));
            }
            j += 16;
        }
    }
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    {
        use core::arch::aarch64::*;
        while j + 16 <= n {
            // SAFETY: NEON is part of the aarch64 base architecture; bytes j .. j + 16 of each
            // row and 4j .. 4j + 64 of `out` are in bounds (j + 16 ≤ n).
            unsafe {
                let fx = vdupq_n_u8(xor);
                let ld = |t: usize| veorq_u8(vld1q_u8(rows[t].as_ptr().add(j)), fx);
                let v = uint8x16x4_t(ld(0), ld(1), ld(2), ld(3));
                vst4q_u8(out.as_mut_ptr().add(4 * j), v);
            }
            j += 16;
        }
    }
    for (jj, col) in out.chunks_exact_mut(4).enumerate().skip(j) {
        for (c, r) in col.iter_mut().zip(&rows) {
            *c = r[jj] ^ xor;
        }
    }
}

/// The little-endian `i32` row sum of row `r` of a panel whose weights take `wlen` bytes.
fn row_sum(panel: &[i8], wlen: usize, r: usize) -> i32 {
    let b = &panel[wlen + 4 * r..wlen + 4 * r + 4];
    i32::from_le_bytes([b[0] as u8, b[1] as u8, b[2] as u8, b[3] as u8])
}

/// [`q8::qgemm`] / [`q8::qgemm_f32out`] with micro-kernel `K`. Returns `false`, having
/// written nothing, when an operand is too short or the output aliases itself (the caller
/// then runs the reference, which reports it the reference's way).
///
/// # Safety
/// The CPU has `K`'s instructions.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn run<K: QMicroKernel>(
    m: usize,
    n: usize,
    k: usize,
    packed: &[i8],
    x: &QMat<'_>,
    x_zp: u8,
    epi: Epi<'_, '_>,
    dst: &QOut,
    scratch: &mut [u8],
) -> bool {
    let (bias, out_len) = match &epi {
        Epi::Requant(rq, out) => {
            if rq.multiplier.len() < m || rq.shift.len() < m || rq.lo > rq.hi {
                return false;
            }
            (rq.bias, out.len())
        }
        Epi::F32 { bias, scale, out } => {
            if scale.len() < m {
                return false;
            }
            (*bias, out.len())
        }
    };
    if m == 0 || n == 0 {
        return true;
    }
    let k4 = q8::qgemm_k4(k);
    if bias.len() < m
        || k > q8::MAX_QK
        || packed.len() < q8::qgemm_packed_len(m, k)
        || scratch.len() < q8::qgemm_scratch_len(k, n)
        || !x_ok(k, n, x)
        || !out_ok(m, n, dst, out_len)
    {
        return false;
    }
    repack(k, n, x, K::XOR, scratch);
    // Σ w (x − zp) = Σ w (x ^ XOR) + (XOR − zp) Σ w: x ^ 0x80 read as s8 is x − 128.
    let corr = K::XOR as i32 - x_zp as i32;
    let wlen = k4 * MR;
    let panel_len = wlen + 4 * MR;
    let ldx = 4 * n;
    let xs = scratch.as_ptr();
    let (rq, scale, out_u8, out_f32) = match epi {
        Epi::Requant(rq, o) => (Some(rq), &[][..], o.as_mut_ptr(), core::ptr::null_mut()),
        Epi::F32 { scale, out, .. } => (None, scale, core::ptr::null_mut(), out.as_mut_ptr()),
    };
    let mut j0 = 0;
    while j0 < n {
        let nr = K::NR.min(n - j0);
        for (p, panel) in packed[..m.div_ceil(MR) * panel_len]
            .chunks_exact(panel_len)
            .enumerate()
        {
            let i0 = p * MR;
            let mr = MR.min(m - i0);
            let mut init = [0i32; MR];
            for (r, v) in init.iter_mut().enumerate().take(mr) {
                *v = bias[i0 + r].wrapping_add(corr.wrapping_mul(row_sum(panel, wlen, r)));
            }
            let at = dst.offset + i0 * dst.rs + j0 * dst.cs;
            let out = match rq {
                Some(rq) => {
                    let (mut mult, mut shift) = ([0; MR], [0; MR]);
                    mult[..mr].copy_from_slice(&rq.multiplier[i0..i0 + mr]);
                    shift[..mr].copy_from_slice(&rq.shift[i0..i0 + mr]);
                    TileOut::U8 {
                        out: out_u8.wrapping_add(at),
                        mult,
                        shift,
                        zp: rq.out_zp,
                        lo: rq.lo,
                        hi: rq.hi,
                    }
                }
                None => {
                    let mut sc = [0.0; MR];
                    sc[..mr].copy_from_slice(&scale[i0..i0 + mr]);
                    TileOut::F32 {
                        out: out_f32.wrapping_add(at),
                        scale: sc,
                    }
                }
            };
            let tile = TileDst {
                out,
                rs: dst.rs,
                cs: dst.cs,
                mr,
                nr,
            };
            // SAFETY: the CPU has K's instructions (caller); the panel holds k4 / 4 quads of
            // 32 bytes; the scratch holds k4 / 4 quad rows of 4n bytes and j0 + nr ≤ n; the
            // output elements of rows i0 .. i0 + mr and columns j0 .. j0 + nr are in bounds
            // (out_ok) and belong to this tile only.
            unsafe { K::tile(k4, panel.as_ptr(), xs.add(4 * j0), ldx, &init, &tile) };
        }
        j0 += nr;
    }
    true
}
