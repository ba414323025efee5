//! The blocked GEMM driver behind every SIMD matrix kernel, and its operand sources.
//!
//! Every SIMD micro-kernel computes an `MR x nr` tile (`nr <= NR` of that kernel) of
//! `C = A B` over a chunk of at most [`KC`] steps of the shared dimension:
//!
//! - A is read from a *panel*: `MR` rows interleaved, `a[p * MR + i]` is row `i`, step `p`.
//!   Constant weights are stored in this layout by the converter ([`pack_a_panels`]); anything
//!   else is packed into a stack buffer once per tile row and chunk. fp16 panels
//!   ([`ASource::PanelsF16`]) are widened into that buffer chunk by chunk with the kernel
//!   set's conversion (`MicroKernel::cvt_f16`).
//! - B is read row by row, `b[p * ldb + j]`, straight from the tensor when its rows are
//!   contiguous and in bounds, otherwise from a tile packed by its `BSource` (fp16 B rows are
//!   always packed, widened on the way).
//! - C is written with row stride `ldc`, only rows `< mr` and columns `< nr`.
//!
//! On the last chunk the kernel applies the epilogue in registers: `alpha`, a bias per row or
//! per column, and the activation. `MR` is the same for every SIMD kernel set, so one packed
//! weight layout ([`crate::profile::LAYOUT_PANEL6`]) serves all of them.

use crate::fp16::{f16_to_f32, Real};
use crate::Activation;

/// Rows per A panel, shared by every SIMD micro-kernel.
pub const MR: usize = 6;
/// Steps of the shared dimension per chunk.
pub const KC: usize = 256;
/// The widest tile any micro-kernel handles (columns).
pub const NR_MAX: usize = 64;

/// Where the bias goes.
#[derive(Clone, Copy, Debug)]
pub enum Bias<'a> {
    /// No bias.
    None,
    /// One value per output row (`m` values): convolutions.
    Row(&'a [f32]),
    /// One value per output column (`n` values): matrix multiplies.
    Col(&'a [f32]),
}

/// The epilogue of one tile, in the micro-kernel's terms.
#[derive(Clone, Copy, Debug)]
pub struct Epilogue {
    /// Scale of the product.
    pub alpha: f32,
    /// `MR` row biases for this tile (padded rows read 0), or null.
    pub bias_row: *const f32,
    /// `nr` column biases for this tile, or null.
    pub bias_col: *const f32,
    /// Activation.
    pub act: Activation,
}

/// A micro-kernel: see the module documentation.
pub(crate) trait MicroKernel {
    /// Widest tile.
    const NR: usize;
    /// Computes one tile.
    ///
    /// # Safety
    /// The CPU supports the kernel's instructions; `a` holds `kc * MR` readable values; `b`
    /// rows `p < kc` are readable at `b + p * ldb` for `nr` values; `c` rows `i < mr` are
    /// writable (and readable when `accumulate`) at `c + i * ldc` for `nr` values; `nr <= NR`,
    /// `mr <= MR`; `ep`'s pointers, when not null, hold `MR` (row) or `nr` (column) values.
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
    );

    /// Widens `n` binary16 values at `src` to f32 at `dst` (bit-exact with
    /// [`crate::fp16::f16_to_f32`]), with this kernel set's instructions.
    ///
    /// # Safety
    /// The CPU supports the kernel's instructions; `src` holds `n` readable values and `dst`
    /// `n` writable ones.
    unsafe fn cvt_f16(src: *const u16, dst: *mut f32, n: usize);
}

/// The A operand.
#[derive(Clone, Copy, Debug)]
pub enum ASource<'a> {
    /// Strided: `a(i, p) = data[offset + i * rs + p * cs]`.
    Strided {
        /// Storage.
        data: &'a [f32],
        /// Offset of `(0, 0)`.
        offset: usize,
        /// Row stride.
        rs: usize,
        /// Column stride.
        cs: usize,
    },
    /// Packed by [`pack_a_panels`] for the full `m x k` matrix.
    Panels(&'a [f32]),
    /// As [`ASource::Strided`], binary16 values (bits).
    StridedF16 {
        /// Storage.
        data: &'a [u16],
        /// Offset of `(0, 0)`.
        offset: usize,
        /// Row stride.
        rs: usize,
        /// Column stride.
        cs: usize,
    },
    /// As [`ASource::Panels`], binary16 values (bits).
    PanelsF16(&'a [u16]),
}

impl<'a> ASource<'a> {
    /// `a(i, p)` (the reference reads A through this).
    #[inline]
    pub fn at(&self, k: usize, i: usize, p: usize) -> f32 {
        match *self {
            ASource::Strided {
                data,
                offset,
                rs,
                cs,
            } => data[offset + i * rs + p * cs],
            ASource::Panels(d) => d[(i / MR) * k * MR + p * MR + i % MR],
            ASource::StridedF16 {
                data,
                offset,
                rs,
                cs,
            } => f16_to_f32(data[offset + i * rs + p * cs]),
            ASource::PanelsF16(d) => f16_to_f32(d[(i / MR) * k * MR + p * MR + i % MR]),
        }
    }

    /// The strided source over `data` (f32 or binary16).
    pub fn strided<T: ASourceElem>(data: &'a [T], offset: usize, rs: usize, cs: usize) -> Self {
        T::strided(data, offset, rs, cs)
    }
}

/// The element types an [`ASource`] holds.
pub trait ASourceElem: Real {
    /// [`ASource::Strided`] or [`ASource::StridedF16`].
    fn strided(data: &[Self], offset: usize, rs: usize, cs: usize) -> ASource<'_>;
}

impl ASourceElem for f32 {
    fn strided(data: &[f32], offset: usize, rs: usize, cs: usize) -> ASource<'_> {
        ASource::Strided {
            data,
            offset,
            rs,
            cs,
        }
    }
}

impl ASourceElem for u16 {
    fn strided(data: &[u16], offset: usize, rs: usize, cs: usize) -> ASource<'_> {
        ASource::StridedF16 {
            data,
            offset,
            rs,
            cs,
        }
    }
}

/// Number of values [`pack_a_panels`] writes for an `m x k` matrix.
pub fn panels_len(m: usize, k: usize) -> usize {
    m.div_ceil(MR) * MR * k
}

/// Packs row-major `a` (`m x k`) into panels of [`MR`] rows: panel `t` holds rows
/// `t*MR .. t*MR+MR` interleaved (`[p][i]`), rows past `m` are zero. `out` has
/// [`panels_len`] values.
pub fn pack_a_panels(m: usize, k: usize, a: &[f32], out: &mut [f32]) {
    for t in 0..m.div_ceil(MR) {
        for p in 0..k {
            for i in 0..MR {
                let r = t * MR + i;
                out[t * k * MR + p * MR + i] = if r < m { a[r * k + p] } else { 0.0 };
            }
        }
    }
}

/// The B operand, `k x n`.
pub(crate) trait BSource {
    /// A pointer to `(pc, j0)` and the row stride, when rows `pc .. pc + kc` and columns
    /// `j0 .. j0 + nr` can be read in place.
    fn direct(&self, pc: usize, kc: usize, j0: usize, nr: usize) -> Option<(*const f32, usize)>;
    /// Writes `b(pc + p, j0 + j)` to `dst[p * ld + j]` for `p < kc`, `j < nr`.
    ///
    /// # Safety
    /// The CPU supports `K`'s instructions (fp16 sources widen with [`MicroKernel::cvt_f16`]).
    unsafe fn pack<K: MicroKernel>(
        &self,
        pc: usize,
        kc: usize,
        j0: usize,
        nr: usize,
        dst: &mut [f32],
        ld: usize,
    );
}

/// A strided B matrix of f32 or binary16 values.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StridedB<'a, T = f32> {
    pub data: &'a [T],
    pub offset: usize,
    pub rs: usize,
    pub cs: usize,
}

impl BSource for StridedB<'_, u16> {
    fn direct(&self, _: usize, _: usize, _: usize, _: usize) -> Option<(*const f32, usize)> {
        None
    }
    unsafe fn pack<K: MicroKernel>(
        &self,
        pc: usize,
        kc: usize,
        j0: usize,
        nr: usize,
        dst: &mut [f32],
        ld: usize,
    ) {
        for p in 0..kc {
            let row = self.offset + (pc + p) * self.rs + j0 * self.cs;
            let out = &mut dst[p * ld..p * ld + nr];
            if self.cs == 1 {
                let src = &self.data[row..row + nr];
                // SAFETY: `src` and `out` hold nr values (sliced above, so in bounds); the
                // CPU supports K (caller's contract).
                unsafe { K::cvt_f16(src.as_ptr(), out.as_mut_ptr(), nr) };
            } else {
                for (j, o) in out.iter_mut().enumerate() {
                    *o = f16_to_f32(self.data[row + j * self.cs]);
                }
            }
        }
    }
}

impl BSource for StridedB<'_, f32> {
    fn direct(&self, pc: usize, kc: usize, j0: usize, nr: usize) -> Option<(*const f32, usize)> {
        if self.cs != 1 || kc == 0 || nr == 0 {
            return None;
        }
        let first = self.offset + pc * self.rs + j0;
        let end = first + (kc - 1) * self.rs + nr;
        (end <= self.data.len()).then(|| (self.data[first..].as_ptr(), self.rs))
    }
    unsafe fn pack<K: MicroKernel>(
        &self,
        pc: usize,
        kc: usize,
        j0: usize,
        nr: usize,
        dst: &mut [f32],
        ld: usize,
    ) {
        for p in 0..kc {
            let row = self.offset + (pc + p) * self.rs + j0 * self.cs;
            for j in 0..nr {
                dst[p * ld + j] = self.data[row + j * self.cs];
            }
        }
    }
}

/// The implicit im2col matrix of a convolution group: row `p = (ci, ky, kx)`, column
/// `j = (oh, ow)`; padding reads 0.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Im2col<'a> {
    /// The group's first input plane onwards.
    pub input: &'a [f32],
    pub g: &'a crate::Conv2dGeom,
}

impl BSource for Im2col<'_> {
    fn direct(&self, pc: usize, kc: usize, j0: usize, nr: usize) -> Option<(*const f32, usize)> {
        // A 1x1, stride-1, unpadded convolution is a plain matrix: channel planes are rows.
        let g = self.g;
        if g.kh * g.kw != 1
            || g.stride_h != 1
            || g.stride_w != 1
            || g.pad_top != 0
            || g.pad_left != 0
        {
            return None;
        }
        if g.h_in != g.h_out || g.w_in != g.w_out || kc == 0 || nr == 0 {
            return None;
        }
        let plane = g.h_in * g.w_in;
        let first = pc * plane + j0;
        let end = first + (kc - 1) * plane + nr;
        (end <= self.input.len()).then(|| (self.input[first..].as_ptr(), plane))
    }
    unsafe fn pack<K: MicroKernel>(
        &self,
        pc: usize,
        kc: usize,
        j0: usize,
        nr: usize,
        dst: &mut [f32],
        ld: usize,
    ) {
        let g = self.g;
        let plane = g.h_in * g.w_in;
        let taps = g.kh * g.kw;
        for p in 0..kc {
            let q = pc + p;
            let (ci, t) = (q / taps, q % taps);
            let (ky, kx) = (t / g.kw, t % g.kw);
            let src = &self.input[ci * plane..(ci + 1) * plane];
            let row = &mut dst[p * ld..p * ld + nr];
            let y_off = (ky * g.dil_h) as isize - g.pad_top as isize;
            let x_off = (kx * g.dil_w) as isize - g.pad_left as isize;
            let (mut oh, mut ow) = (j0 / g.w_out, j0 % g.w_out);
            let mut j = 0;
            while j < nr {
                // One output row segment at a time.
                let seg = (g.w_out - ow).min(nr - j);
                let ih = (oh * g.stride_h) as isize + y_off;
                let out = &mut row[j..j + seg];
                if ih < 0 || ih >= g.h_in as isize {
                    out.fill(0.0);
                } else {
                    let irow = &src[ih as usize * g.w_in..(ih as usize + 1) * g.w_in];
                    // Outputs ow + o with 0 <= (ow + o) * stride + x_off < w_in read the row;
                    // the others are padding.
                    let (vlo, vhi) =
                        crate::generic::conv::valid_range(x_off, g.stride_w, g.w_in, g.w_out);
                    let a = vlo.max(ow).min(ow + seg);
                    let b = vhi.min(ow + seg).max(a);
                    let (lo, hi) = (a - ow, b - ow);
                    out[..lo].fill(0.0);
                    out[hi..].fill(0.0);
                    let first = (((ow + lo) * g.stride_w) as isize + x_off).max(0) as usize;
                    if hi > lo && g.stride_w == 1 {
                        out[lo..hi].copy_from_slice(&irow[first..first + (hi - lo)]);
                    } else if hi > lo {
                        for (o, v) in out[lo..hi]
                            .iter_mut()
                            .zip(irow[first..].iter().step_by(g.stride_w))
                        {
                            *o = *v;
                        }
                    }
                }
                j += seg;
                ow = 0;
                oh += 1;
            }
        }
    }
}

/// `out[out_offset + i*ldo + j] = act(alpha * sum_p a(i,p) b(p,j) + bias)` with micro-kernel
/// `K`.
///
/// # Safety
/// The CPU supports `K`'s instructions. Everything else is checked: a geometry that does not
/// fit the slices returns `false` without writing (the caller then runs the reference).
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm<K: MicroKernel>(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: ASource<'_>,
    b: &impl BSource,
    bias: Bias<'_>,
    act: Activation,
    out: &mut [f32],
    out_offset: usize,
    ldo: usize,
) -> bool {
    // The packing buffers live on the stack and are zeroed on entry: size them by need, since
    // many calls (grouped convs, batched attention) are small.
    let b_direct = b_in_place(b, n, k, K::NR);
    // Only f32 panels are read in place; fp16 panels are widened into the A buffer.
    let a_packed = matches!(a, ASource::Panels(_));
    // SAFETY: the caller's contract, forwarded.
    unsafe {
        match (a_packed, b_direct) {
            (true, true) => {
                gemm_impl::<K, 0, 0>(m, n, k, alpha, a, b, bias, act, out, out_offset, ldo)
            }
            (true, false) => gemm_impl::<K, 0, { KC * NR_MAX }>(
                m, n, k, alpha, a, b, bias, act, out, out_offset, ldo,
            ),
            (false, true) => gemm_impl::<K, { KC * MR }, 0>(
                m, n, k, alpha, a, b, bias, act, out, out_offset, ldo,
            ),
            (false, false) => gemm_impl::<K, { KC * MR }, { KC * NR_MAX }>(
                m, n, k, alpha, a, b, bias, act, out, out_offset, ldo,
            ),
        }
    }
}

/// Whether every B tile can be read in place (the first tile's answer holds for all: rows of
/// a strided source are contiguous for all tiles or none).
fn b_in_place(b: &impl BSource, n: usize, k: usize, nr: usize) -> bool {
    k == 0 || n == 0 || b.direct(0, KC.min(k), 0, nr.min(n)).is_some()
}

/// Packs steps `pc .. pc + kc` of A's tile row `t` (rows past `m` zero) into `abuf` as one
/// panel; returns its start.
#[inline(always)]
fn pack_a_strided<T: Real, const AB: usize>(
    m: usize,
    t: usize,
    pc: usize,
    kc: usize,
    abuf: &mut [f32; AB],
    data: &[T],
    (offset, rs, cs): (usize, usize, usize),
) -> *const f32 {
    let mr = MR.min(m - t * MR);
    for i in 0..MR {
        if i < mr {
            let base = offset + (t * MR + i) * rs + pc * cs;
            for p in 0..kc {
                abuf[p * MR + i] = data[base + p * cs].to_f32();
            }
        } else {
            for p in 0..kc {
                abuf[p * MR + i] = 0.0;
            }
        }
    }
    abuf.as_ptr()
}

/// [`gemm`] with packing buffers of `AB` and `BB` floats (0 when the operand is read in
/// place; a tile that then cannot be read in place makes the call return `false`).
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_impl<K: MicroKernel, const AB: usize, const BB: usize>(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: ASource<'_>,
    b: &impl BSource,
    bias: Bias<'_>,
    act: Activation,
    out: &mut [f32],
    out_offset: usize,
    ldo: usize,
) -> bool {
    if m == 0 || n == 0 {
        return true;
    }
    // Bounds of everything the kernels reach through raw pointers.
    let out_end = (m - 1)
        .checked_mul(ldo)
        .and_then(|v| v.checked_add(out_offset + n));
    if out_end.is_none_or(|e| e > out.len()) || (ldo < n && m > 1) {
        return false;
    }
    match bias {
        Bias::Row(v) if v.len() < m => return false,
        Bias::Col(v) if v.len() < n => return false,
        _ => {}
    }
    let strided_fits = |len: usize, offset: usize, rs: usize, cs: usize| {
        k == 0 || offset + (m - 1) * rs + (k - 1) * cs < len
    };
    match a {
        ASource::Panels(d) if d.len() < panels_len(m, k) => return false,
        ASource::PanelsF16(d) if d.len() < panels_len(m, k) => return false,
        ASource::Strided {
            data,
            offset,
            rs,
            cs,
        } if !strided_fits(data.len(), offset, rs, cs) => return false,
        ASource::StridedF16 {
            data,
            offset,
            rs,
            cs,
        } if !strided_fits(data.len(), offset, rs, cs) => return false,
        _ => {}
    }
    // The widened fp16 panels and every packed A go through the buffer.
    if !matches!(a, ASource::Panels(_)) && AB < KC * MR {
        return false;
    }
    let mut abuf = [0f32; AB];
    let mut bbuf = [0f32; BB];
    let mut bias_pad = [0f32; MR];
    let out_ptr = out.as_mut_ptr();
    let nr_k = K::NR;
    let tiles_m = m.div_ceil(MR);
    // k == 0: one pass with an empty chunk writes the epilogue of zero.
    let chunks = k.div_ceil(KC).max(1);
    let a_panel = |t: usize, pc: usize, kc: usize, abuf: &mut [f32; AB]| -> *const f32 {
        match a {
            ASource::Panels(d) => d[t * k * MR + pc * MR..].as_ptr(),
            ASource::PanelsF16(d) => {
                let src = &d[t * k * MR + pc * MR..][..kc * MR];
                let dst = &mut abuf[..kc * MR];
                // SAFETY: both hold kc * MR values (sliced above); the CPU supports K (the
                // caller's contract).
                unsafe { K::cvt_f16(src.as_ptr(), dst.as_mut_ptr(), kc * MR) };
                abuf.as_ptr()
            }
            ASource::Strided {
                data,
                offset,
                rs,
                cs,
            } => pack_a_strided(m, t, pc, kc, abuf, data, (offset, rs, cs)),
            ASource::StridedF16 {
                data,
                offset,
                rs,
                cs,
            } => pack_a_strided(m, t, pc, kc, abuf, data, (offset, rs, cs)),
        }
    };
    let run_tile = |t: usize,
                    j0: usize,
                    nr: usize,
                    pc: usize,
                    kc: usize,
                    ap: *const f32,
                    (bp, ldb): (*const f32, usize),
                    bias_pad: &mut [f32; MR]| {
        let i0 = t * MR;
        let mr = MR.min(m - i0);
        let last = pc + kc >= k;
        let ep = last.then(|| Epilogue {
            alpha,
            bias_row: match bias {
                Bias::Row(v) => {
                    for i in 0..MR {
                        bias_pad[i] = if i < mr { v[i0 + i] } else { 0.0 };
                    }
                    bias_pad.as_ptr()
                }
                _ => core::ptr::null(),
            },
            bias_col: match bias {
                Bias::Col(v) => v[j0..].as_ptr(),
                _ => core::ptr::null(),
            },
            act,
        });
        // SAFETY: bounds checked above: rows i0..i0+mr, columns j0..j0+nr of the output lie
        // in `out`; A and B pointers cover kc steps as the callers build them; the CPU
        // supports K (caller's contract).
        unsafe {
            K::tile(
                kc,
                ap,
                bp,
                ldb,
                out_ptr.add(out_offset + i0 * ldo + j0),
                ldo,
                mr,
                nr,
                pc > 0,
                ep.as_ref(),
            )
        };
    };
    match a {
        ASource::Panels(_) | ASource::PanelsF16(_) => {
            // Weights pre-packed: B tiles outermost, each packed at most once.
            for j0 in (0..n).step_by(nr_k) {
                let nr = nr_k.min(n - j0);
                for c in 0..chunks {
                    let pc = c * KC;
                    let kc = KC.min(k - pc);
                    let bsrc = match b.direct(pc, kc, j0, nr) {
                        Some(d) => d,
                        None if BB >= KC * NR_MAX => {
                            // SAFETY: the CPU supports K (caller's contract).
                            unsafe { b.pack::<K>(pc, kc, j0, nr, &mut bbuf, nr_k) };
                            (bbuf.as_ptr(), nr_k)
                        }
                        None => return false,
                    };
                    for t in 0..tiles_m {
                        let ap = a_panel(t, pc, kc, &mut abuf);
                        run_tile(t, j0, nr, pc, kc, ap, bsrc, &mut bias_pad);
                    }
                }
            }
        }
        ASource::Strided { .. } | ASource::StridedF16 { .. }
            if !b_in_place(b, n, k, nr_k) && n.div_ceil(nr_k) * m <= tiles_m * n =>
        {
            // B must be packed (a transposed operand) and packing it per tile row would cost
            // more than packing A per column of tiles: B tiles outermost, each packed once.
            for j0 in (0..n).step_by(nr_k) {
                let nr = nr_k.min(n - j0);
                for c in 0..chunks {
                    let pc = c * KC;
                    let kc = KC.min(k - pc);
                    if BB < KC * NR_MAX {
                        return false;
                    }
                    // SAFETY: the CPU supports K (caller's contract).
                    unsafe { b.pack::<K>(pc, kc, j0, nr, &mut bbuf, nr_k) };
                    let bsrc = (bbuf.as_ptr(), nr_k);
                    for t in 0..tiles_m {
                        let ap = a_panel(t, pc, kc, &mut abuf);
                        run_tile(t, j0, nr, pc, kc, ap, bsrc, &mut bias_pad);
                    }
                }
            }
        }
        ASource::Strided { .. } | ASource::StridedF16 { .. } => {
            // A packed once per tile row and chunk, reused across the row of tiles.
            for t in 0..tiles_m {
                for c in 0..chunks {
                    let pc = c * KC;
                    let kc = KC.min(k - pc);
                    let ap = a_panel(t, pc, kc, &mut abuf);
                    for j0 in (0..n).step_by(nr_k) {
                        let nr = nr_k.min(n - j0);
                        let bsrc = match b.direct(pc, kc, j0, nr) {
                            Some(d) => d,
                            None if BB >= KC * NR_MAX => {
                                // SAFETY: the CPU supports K (caller's contract).
                                unsafe { b.pack::<K>(pc, kc, j0, nr, &mut bbuf, nr_k) };
                                (bbuf.as_ptr(), nr_k)
                            }
                            None => return false,
                        };
                        run_tile(t, j0, nr, pc, kc, ap, bsrc, &mut bias_pad);
                    }
                }
            }
        }
    }
    true
}
