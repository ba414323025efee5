//! The dispatching entry points: one function per kernel family taking the [`Isa`] chosen at
//! load. Each runs the fastest kernel of that set that handles the geometry and falls back to
//! the scalar reference in [`crate::generic`] for the rest, so every geometry is covered on
//! every set.

#[cfg(target_arch = "x86_64")]
use crate::gemm::BSource;
use crate::gemm::{ASource, ASourceElem, Bias, Im2col, StridedB};
use crate::generic;
use crate::generic::gemm::MatRef;
use crate::isa::{Isa, IsaKind};
use crate::q8;
use crate::{Activation, Conv2dGeom, UnaryOp};

/// Convolution weights as stored in the file.
#[derive(Clone, Copy, Debug)]
pub enum ConvWeights<'a> {
    /// `[c_out, c_in / groups, kh, kw]`, row-major.
    Plain(&'a [f32]),
    /// Per group, the `c_out / groups x (c_in / groups * kh * kw)` matrix packed by
    /// [`crate::gemm::pack_a_panels`], groups one after the other
    /// ([`crate::profile::LAYOUT_PANEL6`]).
    Panels(&'a [f32]),
    /// As [`ConvWeights::Plain`], binary16 values (bits).
    PlainF16(&'a [u16]),
    /// As [`ConvWeights::Panels`], binary16 values (bits).
    PanelsF16(&'a [u16]),
}

impl ConvWeights<'_> {
    /// Whether the values are stored panel-packed.
    pub fn is_panels(&self) -> bool {
        matches!(self, ConvWeights::Panels(_) | ConvWeights::PanelsF16(_))
    }
}

/// `dst[i] = src[i]` widened from binary16 to f32 for `i < min(src.len(), dst.len())`, with
/// the kernel set's conversion instructions (bit-exact with [`crate::fp16::f16_to_f32`] on
/// every set).
pub fn convert_f16_f32(isa: Isa, src: &[u16], dst: &mut [f32]) {
    let n = src.len().min(dst.len());
    #[cfg(any(
        target_arch = "x86_64",
        all(target_arch = "aarch64", target_feature = "neon")
    ))]
    let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
    match isa.kind() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` proves AVX-512F; both slices hold n values.
        IsaKind::Avx512 => unsafe { crate::x86_64::fp16::avx512_cvt_f16_f32(s, d, n) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` proves AVX2, FMA and F16C; both slices hold n values.
        IsaKind::Avx2 => unsafe { crate::x86_64::fp16::f16c_cvt_f16_f32(s, d, n) },
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        // SAFETY: NEON is part of the aarch64 base architecture; both slices hold n values.
        IsaKind::Neon => unsafe { crate::aarch64::fp16::neon_cvt_f16_f32(s, d, n) },
        _ => crate::fp16::f16_slice_to_f32(&src[..n], &mut dst[..n]),
    }
}

/// Whether a convolution is depthwise (one input and one output channel per group).
pub fn conv_is_depthwise(g: &Conv2dGeom) -> bool {
    g.groups == g.c_in && g.groups == g.c_out && g.groups > 1
}

/// Whether a convolution runs as a direct (per-output-row) kernel rather than a GEMM:
/// grouped convolutions with at most [`DIRECT_MAX_GROUP_CHANNELS`] input channels per group,
/// depthwise ones included. Their GEMMs would be too small to pay for a tile.
pub fn conv_is_direct(g: &Conv2dGeom) -> bool {
    g.groups > 1 && g.c_in / g.groups <= DIRECT_MAX_GROUP_CHANNELS
}

/// See [`conv_is_direct`].
pub const DIRECT_MAX_GROUP_CHANNELS: usize = 4;

/// Longest reduction the one-output-position (matrix-vector) convolution path gathers on the
/// stack; longer ones run as a GEMM.
#[cfg(target_arch = "x86_64")]
const GEMV_MAX_K: usize = 4096;

/// Whether a convolution runs as a GEMM (and so has panel-packed weights in
/// [`crate::profile::LAYOUT_PANEL6`] files): every convolution that is not
/// [`conv_is_direct`].
pub fn conv_uses_panels(g: &Conv2dGeom) -> bool {
    !conv_is_direct(g)
}

/// Values of a panel-packed convolution weight (see [`ConvWeights::Panels`]).
pub fn conv_panels_len(g: &Conv2dGeom) -> usize {
    let (cog, k) = (g.c_out / g.groups, g.c_in / g.groups * g.kh * g.kw);
    g.groups * crate::gemm::panels_len(cog, k)
}

/// Packs plain convolution weights into [`ConvWeights::Panels`] order.
pub fn pack_conv_weights(g: &Conv2dGeom, plain: &[f32], out: &mut [f32]) {
    let (cog, k) = (g.c_out / g.groups, g.c_in / g.groups * g.kh * g.kw);
    let per = crate::gemm::panels_len(cog, k);
    for gi in 0..g.groups {
        crate::gemm::pack_a_panels(
            cog,
            k,
            &plain[gi * cog * k..(gi + 1) * cog * k],
            &mut out[gi * per..(gi + 1) * per],
        );
    }
}

/// `out[offset + i*ldo + j] = act(alpha * sum_k a(i,k) b(k,j) + bias[j])`, as
/// [`generic::gemm::gemm_f32`]. Either operand may hold binary16 values (`u16`): they are
/// widened while tiles are packed, so the result is bit-identical to the same call over the
/// widened f32 values.
// Without SIMD kernels the sources built for them go unused.
#[cfg_attr(
    not(any(
        target_arch = "x86_64",
        all(target_arch = "aarch64", target_feature = "neon")
    )),
    allow(unused_variables)
)]
pub fn gemm_f32<TA: MatElem, TB: MatElem>(
    isa: Isa,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: MatRef<'_, TA>,
    b: MatRef<'_, TB>,
    bias: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
    out_offset: usize,
    ldo: usize,
) {
    let asrc = ASource::strided(a.data, a.offset, a.rs, a.cs);
    let bias_s = bias.map_or(Bias::None, Bias::Col);
    let done = TB::simd_gemm(
        isa, m, n, k, alpha, asrc, b, bias_s, act, out, out_offset, ldo,
    );
    if !done {
        generic::gemm::gemm_f32(m, n, k, alpha, a, b, bias, act, out, out_offset, ldo);
    }
}

/// The element types of [`gemm_f32`]'s operands: `f32`, and `u16` for binary16 values.
pub trait MatElem: ASourceElem {
    /// The SIMD GEMM of `isa` with this B; `false` when `isa` has none or the geometry does not
    /// fit the slices (the caller then runs the reference).
    #[doc(hidden)]
    fn simd_gemm(
        isa: Isa,
        m: usize,
        n: usize,
        k: usize,
        alpha: f32,
        a: ASource<'_>,
        b: MatRef<'_, Self>,
        bias: Bias<'_>,
        act: Activation,
        out: &mut [f32],
        out_offset: usize,
        ldo: usize,
    ) -> bool;
}

macro_rules! mat_elem {
    ($t:ty) => {
        impl MatElem for $t {
            fn simd_gemm(
                isa: Isa,
                m: usize,
                n: usize,
                k: usize,
                alpha: f32,
                a: ASource<'_>,
                b: MatRef<'_, $t>,
                bias: Bias<'_>,
                act: Activation,
                out: &mut [f32],
                out_offset: usize,
                ldo: usize,
            ) -> bool {
                let b = StridedB {
                    data: b.data,
                    offset: b.offset,
                    rs: b.rs,
                    cs: b.cs,
                };
                simd_gemm(isa, m, n, k, alpha, a, &b, bias, act, out, out_offset, ldo)
            }
        }
    };
}
mat_elem!(f32);
mat_elem!(u16);

/// The blocked GEMM driver with `isa`'s micro-kernel; `false` without one (generic) or when
/// the geometry does not fit the slices.
#[cfg_attr(
    not(any(
        target_arch = "x86_64",
        all(target_arch = "aarch64", target_feature = "neon")
    )),
    allow(unused_variables)
)]
fn simd_gemm(
    isa: Isa,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: ASource<'_>,
    b: &impl crate::gemm::BSource,
    bias: Bias<'_>,
    act: Activation,
    out: &mut [f32],
    out_offset: usize,
    ldo: usize,
) -> bool {
    match isa.kind() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` proves AVX-512F (Isa::new checks).
        IsaKind::Avx512 => unsafe {
            crate::gemm::gemm::<crate::x86_64::gemm::Avx512Gemm6x64>(
                m, n, k, alpha, a, b, bias, act, out, out_offset, ldo,
            )
        },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` proves AVX2, FMA and F16C.
        IsaKind::Avx2 => unsafe {
            crate::gemm::gemm::<crate::x86_64::gemm::Avx2Gemm6x16>(
                m, n, k, alpha, a, b, bias, act, out, out_offset, ldo,
            )
        },
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        // SAFETY: NEON is part of the aarch64 base architecture.
        IsaKind::Neon => unsafe {
            crate::gemm::gemm::<crate::aarch64::gemm::NeonGemm6x16>(
                m, n, k, alpha, a, b, bias, act, out, out_offset, ldo,
            )
        },
        _ => false,
    }
}

/// `out = act(conv(input, weight) + bias)`, as [`generic::conv::conv2d_f32`].
#[cfg_attr(
    not(any(
        target_arch = "x86_64",
        all(target_arch = "aarch64", target_feature = "neon")
    )),
    allow(unused_variables)
)]
pub fn conv2d_f32(
    isa: Isa,
    g: &Conv2dGeom,
    input: &[f32],
    weight: ConvWeights<'_>,
    bias: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
) {
    if g.groups == 0 {
        // Refused by `Op::validate` ("conv groups must divide the channel counts"); returning
        // here keeps the group divisions below free of a panic path.
        return;
    }
    if let (true, ConvWeights::PlainF16(w)) = (conv_is_direct(g), weight) {
        if conv_direct_f16_fits(g) {
            return conv_direct_f16(isa, g, input, w, bias, act, out);
        }
    }
    if let (true, ConvWeights::Plain(w)) = (conv_is_direct(g), weight) {
        let dw = conv_is_depthwise(g);
        let done = match isa.kind() {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `isa` proves AVX-512F.
            IsaKind::Avx512 if crate::x86_64::dwconv::handles(g) => unsafe {
                crate::x86_64::dwconv::avx512_dwconv_f32(g, input, w, bias, act, out);
                true
            },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `isa` proves AVX-512F.
            IsaKind::Avx512 if dw => unsafe {
                dw_avx512(g, input, w, bias, act, out);
                true
            },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `isa` proves AVX2 and FMA.
            IsaKind::Avx2 if dw => unsafe {
                dw_avx2(g, input, w, bias, act, out);
                true
            },
            #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
            // SAFETY: NEON is part of the aarch64 base architecture.
            IsaKind::Neon if dw => unsafe {
                dw_neon(g, input, w, bias, act, out);
                true
            },
            IsaKind::Generic => {
                generic::conv::conv2d_f32(g, input, w, bias, act, out);
                true
            }
            // Small-group convolutions on the other sets: the GEMM path over plain weights.
            _ => false,
        };
        if done {
            return;
        }
    }
    let cig = g.c_in / g.groups;
    let cog = g.c_out / g.groups;
    let k = cig * g.kh * g.kw;
    let in_plane = g.h_in * g.w_in;
    let out_plane = g.h_out * g.w_out;
    let per = crate::gemm::panels_len(cog, k);
    for b in 0..g.n {
        for gi in 0..g.groups {
            let a = match weight {
                ConvWeights::Plain(w) => ASource::strided(w, gi * cog * k, k, 1),
                ConvWeights::PlainF16(w) => ASource::strided(w, gi * cog * k, k, 1),
                ConvWeights::Panels(w) => ASource::Panels(&w[gi * per..(gi + 1) * per]),
                ConvWeights::PanelsF16(w) => ASource::PanelsF16(&w[gi * per..(gi + 1) * per]),
            };
            let bsrc = Im2col {
                input: &input[(b * g.c_in + gi * cig) * in_plane..],
                g,
            };
            let bias_s = bias.map_or(Bias::None, |v| Bias::Row(&v[gi * cog..]));
            let off = (b * g.c_out + gi * cog) * out_plane;
            // One output position (a streaming step's temporal conv): a matrix-vector product.
            #[cfg(target_arch = "x86_64")]
            if let (IsaKind::Avx512, 1, true) = (isa.kind(), out_plane, k <= GEMV_MAX_K) {
                let mut x = [0f32; GEMV_MAX_K];
                let bias_p = bias.map_or(core::ptr::null(), |v| v[gi * cog..].as_ptr());
                let dst = &mut out[off..off + cog];
                match a {
                    ASource::Panels(p) => {
                        // SAFETY: `isa` proves AVX-512F (the im2col source converts nothing).
                        unsafe {
                            bsrc.pack::<crate::x86_64::gemm::Avx512Gemm6x64>(0, k, 0, 1, &mut x, 1)
                        };
                        // SAFETY: `isa` proves AVX-512F; `p` holds the group's panels
                        // (validated length), `x` k values, `dst` cog outputs at stride 1,
                        // the bias cog values.
                        unsafe {
                            crate::x86_64::gemm::avx512_gemv_f32_panels(
                                cog,
                                k,
                                p.as_ptr(),
                                x.as_ptr(),
                                bias_p,
                                act,
                                dst.as_mut_ptr(),
                                1,
                            )
                        };
                        continue;
                    }
                    ASource::PanelsF16(p) => {
                        // SAFETY: as above.
                        unsafe {
                            bsrc.pack::<crate::x86_64::gemm::Avx512Gemm6x64>(0, k, 0, 1, &mut x, 1)
                        };
                        // SAFETY: as above, the panels holding binary16 values.
                        unsafe {
                            crate::x86_64::gemm::avx512_gemv_f16_panels(
                                cog,
                                k,
                                p.as_ptr(),
                                x.as_ptr(),
                                bias_p,
                                act,
                                dst.as_mut_ptr(),
                                1,
                            )
                        };
                        continue;
                    }
                    _ => {}
                }
            }
            let done = simd_gemm(
                isa, cog, out_plane, k, 1.0, a, &bsrc, bias_s, act, out, off, out_plane,
            );
            if !done {
                conv_group_ref(g, b, gi, input, a, bias, act, out);
            }
        }
    }
}

/// Floats of the stack buffer a direct convolution's binary16 weights are widened into.
const DIRECT_F16_BUF: usize = 4096;

/// Whether a direct convolution ([`conv_is_direct`]) with binary16 plain weights runs its
/// direct kernel (three groups' weights fit the widening buffer); otherwise it runs as a GEMM.
pub fn conv_direct_f16_fits(g: &Conv2dGeom) -> bool {
    let per_group = (g.c_out / g.groups.max(1)) * (g.c_in / g.groups.max(1)) * g.kh * g.kw;
    conv_is_direct(g) && per_group.saturating_mul(3) <= DIRECT_F16_BUF
}

/// A direct convolution over binary16 weights: blocks of at least two groups, their weights
/// widened into a stack buffer, each block run by the f32 direct kernel (which computes every
/// group on its own, so the result is bit-identical to the f32 kernel over widened weights).
fn conv_direct_f16(
    isa: Isa,
    g: &Conv2dGeom,
    input: &[f32],
    w: &[u16],
    bias: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
) {
    let (cig, cog) = (g.c_in / g.groups, g.c_out / g.groups);
    let per_group = cog * cig * g.kh * g.kw;
    let (in_plane, out_plane) = (g.h_in * g.w_in, g.h_out * g.w_out);
    // At least 3 (conv_direct_f16_fits).
    let block = DIRECT_F16_BUF / per_group.max(1);
    let mut buf = [0f32; DIRECT_F16_BUF];
    for b in 0..g.n {
        let mut g0 = 0;
        while g0 < g.groups {
            let left = g.groups - g0;
            let mut ng = block.min(left);
            // Never leave a last block of one group: it would not be a direct convolution.
            if left - ng == 1 {
                ng -= 1;
            }
            let sub = Conv2dGeom {
                n: 1,
                c_in: ng * cig,
                c_out: ng * cog,
                groups: ng,
                ..*g
            };
            let wb = &mut buf[..ng * per_group];
            convert_f16_f32(isa, &w[g0 * per_group..(g0 + ng) * per_group], wb);
            let x = &input[(b * g.c_in + g0 * cig) * in_plane..][..ng * cig * in_plane];
            let o = &mut out[(b * g.c_out + g0 * cog) * out_plane..][..ng * cog * out_plane];
            let bs = bias.map(|v| &v[g0 * cog..(g0 + ng) * cog]);
            conv2d_f32(isa, &sub, x, ConvWeights::Plain(wb), bs, act, o);
            g0 += ng;
        }
    }
}

/// Reference for one batch item and group of a convolution whose weights come as an
/// [`ASource`] (plain or panels): the loops and summation order of
/// [`generic::conv::conv2d_f32`], so the result is bit-identical to it.
fn conv_group_ref(
    g: &Conv2dGeom,
    b: usize,
    gi: usize,
    input: &[f32],
    a: ASource<'_>,
    bias: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
) {
    let cig = g.c_in / g.groups;
    let cog = g.c_out / g.groups;
    let k = cig * g.kh * g.kw;
    let in_plane = g.h_in * g.w_in;
    let out_plane = g.h_out * g.w_out;
    for col in 0..cog {
        let co = gi * cog + col;
        let o0 = (b * g.c_out + co) * out_plane;
        let oplane = &mut out[o0..o0 + out_plane];
        oplane.fill(0.0);
        for ci in 0..cig {
            let iplane = &input[(b * g.c_in + gi * cig + ci) * in_plane..][..in_plane];
            for ky in 0..g.kh {
                let y_off = (ky * g.dil_h) as isize - g.pad_top as isize;
                for oh in 0..g.h_out {
                    let ih = (oh * g.stride_h) as isize + y_off;
                    if ih < 0 || ih >= g.h_in as isize {
                        continue;
                    }
                    let irow = &iplane[ih as usize * g.w_in..(ih as usize + 1) * g.w_in];
                    let orow = &mut oplane[oh * g.w_out..(oh + 1) * g.w_out];
                    for kx in 0..g.kw {
                        let wv = a.at(k, col, (ci * g.kh + ky) * g.kw + kx);
                        let x_off = (kx * g.dil_w) as isize - g.pad_left as isize;
                        let (lo, hi) =
                            crate::generic::conv::valid_range(x_off, g.stride_w, g.w_in, g.w_out);
                        for ow in lo..hi {
                            let iw = ((ow * g.stride_w) as isize + x_off) as usize;
                            orow[ow] += irow[iw] * wv;
                        }
                    }
                }
            }
        }
        let bv = bias.map(|bs| bs[co]);
        for v in oplane.iter_mut() {
            let acc = match bv {
                Some(bv) => *v + bv,
                None => *v,
            };
            *v = generic::activation::activate(acc, act);
        }
    }
}

#[cfg(any(
    target_arch = "x86_64",
    all(target_arch = "aarch64", target_feature = "neon")
))]
fn act_as_unary(act: Activation) -> Option<UnaryOp> {
    match act {
        Activation::None => None,
        Activation::Relu => Some(UnaryOp::Relu),
        Activation::Clip { lo, hi } => Some(UnaryOp::Clip { lo, hi }),
        Activation::Sigmoid => Some(UnaryOp::Sigmoid),
        Activation::Gelu => Some(UnaryOp::Gelu),
        Activation::Silu => Some(UnaryOp::Silu),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn dw_avx512(
    g: &Conv2dGeom,
    input: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
) {
    crate::dwconv::dwconv_body(g, input, w, bias, act, out, |row, act| {
        if let Some(op) = act_as_unary(act) {
            // The closure inherits the enclosing function's target features.
            crate::x86_64::elementwise::avx512_unary_f32(op, None, row)
        }
    })
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dw_avx2(
    g: &Conv2dGeom,
    input: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
) {
    crate::dwconv::dwconv_body(g, input, w, bias, act, out, |row, act| {
        if let Some(op) = act_as_unary(act) {
            // The closure inherits the enclosing function's target features.
            crate::x86_64::elementwise::avx2_unary_f32(op, None, row)
        }
    })
}

#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
#[target_feature(enable = "neon")]
fn dw_neon(
    g: &Conv2dGeom,
    input: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
) {
    crate::dwconv::dwconv_body(g, input, w, bias, act, out, |row, act| {
        if let Some(op) = act_as_unary(act) {
            // The closure inherits the enclosing function's target features.
            crate::aarch64::elementwise::neon_unary_f32(op, None, row)
        }
    })
}

/// `out[i] = op(x[i])`, as [`generic::activation::unary_f32`].
pub fn unary_f32(isa: Isa, op: UnaryOp, x: &[f32], out: &mut [f32]) {
    match isa.kind() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` proves AVX-512F.
        IsaKind::Avx512 if crate::x86_64::elementwise::vectorized(op) => unsafe {
            crate::x86_64::elementwise::avx512_unary_f32(op, Some(x), out)
        },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` proves AVX2 and FMA.
        IsaKind::Avx2 if crate::x86_64::elementwise::vectorized(op) => unsafe {
            crate::x86_64::elementwise::avx2_unary_f32(op, Some(x), out)
        },
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        // SAFETY: NEON is part of the aarch64 base architecture.
        IsaKind::Neon if crate::aarch64::elementwise::vectorized(op) => unsafe {
            crate::aarch64::elementwise::neon_unary_f32(op, Some(x), out)
        },
        _ => generic::activation::unary_f32(op, x, out),
    }
}

/// `x[i] = act(x[i])`: a fused activation applied after the fact (the f32 output of an int8
/// layer), with the same kernels as [`unary_inplace_f32`] and so the same bits as a separate
/// `Unary` step.
pub fn activation_inplace_f32(isa: Isa, act: Activation, x: &mut [f32]) {
    let op = match act {
        Activation::None => return,
        Activation::Relu => UnaryOp::Relu,
        Activation::Clip { lo, hi } => UnaryOp::Clip { lo, hi },
        Activation::Sigmoid => UnaryOp::Sigmoid,
        Activation::Gelu => UnaryOp::Gelu,
        Activation::Silu => UnaryOp::Silu,
    };
    unary_inplace_f32(isa, op, x)
}

/// `x[i] = op(x[i])`, as [`generic::activation::unary_inplace_f32`].
pub fn unary_inplace_f32(isa: Isa, op: UnaryOp, x: &mut [f32]) {
    match isa.kind() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` proves AVX-512F.
        IsaKind::Avx512 if crate::x86_64::elementwise::vectorized(op) => unsafe {
            crate::x86_64::elementwise::avx512_unary_f32(op, None, x)
        },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` proves AVX2 and FMA.
        IsaKind::Avx2 if crate::x86_64::elementwise::vectorized(op) => unsafe {
            crate::x86_64::elementwise::avx2_unary_f32(op, None, x)
        },
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        // SAFETY: NEON is part of the aarch64 base architecture.
        IsaKind::Neon if crate::aarch64::elementwise::vectorized(op) => unsafe {
            crate::aarch64::elementwise::neon_unary_f32(op, None, x)
        },
        _ => generic::activation::unary_inplace_f32(op, x),
    }
}

/// Softmax over the middle axis of `[outer, axis, inner]`, as [`generic::norm::softmax_f32`].
pub fn softmax_f32(
    isa: Isa,
    outer: usize,
    axis: usize,
    inner: usize,
    log: bool,
    x: &[f32],
    out: &mut [f32],
) {
    match isa.kind() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` proves AVX-512F.
        IsaKind::Avx512 if inner == 1 && axis > 0 => unsafe {
            crate::x86_64::elementwise::avx512_softmax_rows(
                axis,
                log,
                &x[..outer * axis],
                &mut out[..outer * axis],
            )
        },
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        // SAFETY: NEON is part of the aarch64 base architecture.
        IsaKind::Neon if inner == 1 && axis > 0 => unsafe {
            crate::aarch64::elementwise::neon_softmax_rows(
                axis,
                log,
                &x[..outer * axis],
                &mut out[..outer * axis],
            )
        },
        _ => generic::norm::softmax_f32(outer, axis, inner, log, x, out),
    }
}

/// LayerNormalization over `outer` rows of `size` contiguous values, as
/// [`generic::norm::layernorm_f32`]. The AVX-512 kernel sums the mean and the variance in
/// lanes and multiplies by `1 / sqrt(var + eps)`: it differs from the reference by rounding
/// only (a few ulps of the row's magnitude over its standard deviation, relative).
pub fn layernorm_f32(
    isa: Isa,
    outer: usize,
    size: usize,
    eps: f32,
    x: &[f32],
    scale: Option<&[f32]>,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    match isa.kind() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` proves AVX-512F.
        IsaKind::Avx512 => unsafe {
            crate::x86_64::norm::avx512_layernorm_f32(outer, size, eps, x, scale, bias, out)
        },
        _ => generic::norm::layernorm_f32(outer, size, eps, x, scale, bias, out),
    }
}

/// LayerNormalization over the middle axis of `[outer, size, inner]`, as
/// [`generic::norm::layernorm_axis_f32`] (bit-identical on every set).
pub fn layernorm_axis_f32(
    isa: Isa,
    outer: usize,
    size: usize,
    inner: usize,
    eps: f32,
    x: &[f32],
    scale: Option<&[f32]>,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    match isa.kind() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` proves AVX-512F.
        IsaKind::Avx512 => unsafe {
            crate::x86_64::norm::avx512_layernorm_axis_f32(
                outer, size, inner, eps, x, scale, bias, out,
            )
        },
        _ => generic::norm::layernorm_axis_f32(outer, size, inner, eps, x, scale, bias, out),
    }
}

/// InstanceNormalization over `[n, c, spatial]`, as [`generic::norm::instancenorm_f32`],
/// with the error of [`layernorm_f32`].
pub fn instancenorm_f32(
    isa: Isa,
    n: usize,
    c: usize,
    spatial: usize,
    eps: f32,
    x: &[f32],
    scale: &[f32],
    bias: &[f32],
    out: &mut [f32],
) {
    match isa.kind() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` proves AVX-512F.
        IsaKind::Avx512 => unsafe {
            crate::x86_64::norm::avx512_instancenorm_f32(n, c, spatial, eps, x, scale, bias, out)
        },
        _ => generic::norm::instancenorm_f32(n, c, spatial, eps, x, scale, bias, out),
    }
}

/// Reduction of `x` (shape `dims`) over the axes of `axes_mask`, as
/// [`generic::reduce::reduce_f32`]. On AVX-512, reductions whose reduced axes form one
/// contiguous block (all ops but Prod) are vectorized: over the innermost axes the run is
/// summed in lanes (rounding differs from the sequential reference; Max/Min are exact up to
/// the sign of zero ties, NaN propagates), over a block with kept inner axes the result is
/// bit-identical. Every other pattern runs the reference.
pub fn reduce_f32(
    isa: Isa,
    op: crate::ReduceOp,
    dims: &[usize],
    axes_mask: u32,
    x: &[f32],
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if isa.kind() == IsaKind::Avx512 && crate::x86_64::norm::reduce_vectorized(op) {
        if let Some((outer, red, inner)) = crate::x86_64::norm::reduce_blocks(dims, axes_mask) {
            // SAFETY: `isa` proves AVX-512F.
            unsafe { crate::x86_64::norm::avx512_reduce_f32(op, outer, red, inner, x, out) };
            return;
        }
    }
    let _ = isa;
    generic::reduce::reduce_f32(op, dims, axes_mask, x, out)
}

/// Broadcasting binary arithmetic, as [`generic::elementwise::binary_f32`] and bit-identical
/// to it. On AVX-512 every op but Pow runs row by row over the merged broadcast iteration,
/// vectorized where each operand's innermost stride is 0 or 1.
pub fn binary_f32(
    isa: Isa,
    op: crate::BinaryOp,
    dims: &[usize],
    a: &[f32],
    a_strides: &[usize],
    b: &[f32],
    b_strides: &[usize],
    out: &mut [f32],
) {
    let done = match isa.kind() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` proves AVX-512F.
        IsaKind::Avx512 => unsafe {
            crate::x86_64::norm::avx512_binary_f32(op, dims, a, a_strides, b, b_strides, out)
        },
        _ => false,
    };
    if !done {
        generic::elementwise::binary_f32(op, dims, a, a_strides, b, b_strides, out)
    }
}

/// In place form of [`binary_f32`], as [`generic::elementwise::binary_inplace_f32`] and
/// bit-identical to it.
pub fn binary_inplace_f32(
    isa: Isa,
    op: crate::BinaryOp,
    dims: &[usize],
    a: &mut [f32],
    b: &[f32],
    b_strides: &[usize],
) {
    let done = match isa.kind() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` proves AVX-512F.
        IsaKind::Avx512 => unsafe {
            crate::x86_64::norm::avx512_binary_inplace_f32(op, dims, a, b, b_strides)
        },
        _ => false,
    };
    if !done {
        generic::elementwise::binary_inplace_f32(op, dims, a, b, b_strides)
    }
}

/// `y = x * scale[c] + bias[c]` over `[outer, c, inner]`, as
/// [`generic::elementwise::channel_affine_f32`] and bit-identical to it.
pub fn channel_affine_f32(
    isa: Isa,
    outer: usize,
    channels: usize,
    inner: usize,
    x: &[f32],
    scale: &[f32],
    bias: &[f32],
    out: &mut [f32],
) {
    match isa.kind() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` proves AVX-512F.
        IsaKind::Avx512 => unsafe {
            crate::x86_64::norm::avx512_channel_affine_f32(
                outer,
                channels,
                inner,
                Some(x),
                scale,
                bias,
                out,
            )
        },
        _ => generic::elementwise::channel_affine_f32(outer, channels, inner, x, scale, bias, out),
    }
}

/// In place form of [`channel_affine_f32`], as
/// [`generic::elementwise::channel_affine_inplace_f32`] and bit-identical to it.
pub fn channel_affine_inplace_f32(
    isa: Isa,
    outer: usize,
    channels: usize,
    inner: usize,
    x: &mut [f32],
    scale: &[f32],
    bias: &[f32],
) {
    match isa.kind() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` proves AVX-512F.
        IsaKind::Avx512 => unsafe {
            crate::x86_64::norm::avx512_channel_affine_f32(
                outer, channels, inner, None, scale, bias, x,
            )
        },
        _ => {
            generic::elementwise::channel_affine_inplace_f32(outer, channels, inner, x, scale, bias)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// int8 (the contract and reference: [`crate::q8`])

/// The int8 matrix kernels ([`qgemm`], [`qgemm_f32out`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QgemmKind {
    /// The scalar reference ([`q8::qgemm`]).
    Reference,
    /// AVX2, 16-bit products (`vpmaddwd`), 8 × 8 tiles.
    Avx2,
    /// AVX-512 VNNI (`vpdpbusd`), 8 × 48 tiles.
    Avx512Vnni,
    /// NEON without the dot product (`smull` + `sadalp`), 8 × 4 tiles.
    Neon,
    /// NEON with FEAT_DotProd (`sdot`), 8 × 12 tiles.
    NeonDot,
}

impl QgemmKind {
    /// Every kind.
    pub const ALL: [QgemmKind; 5] = [
        QgemmKind::Reference,
        QgemmKind::Avx2,
        QgemmKind::Avx512Vnni,
        QgemmKind::Neon,
        QgemmKind::NeonDot,
    ];
}

/// An int8 matrix kernel this CPU runs. The only ways to get one check support, so the
/// dispatching functions may call its `#[target_feature]` code soundly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct QgemmKernel(QgemmKind);

impl QgemmKernel {
    /// `kind`, if it belongs to `isa`'s kernel set and this CPU has its instructions: AVX2
    /// runs under `avx2` and `avx512` (the AVX-512 fallback on CPUs without VNNI), VNNI under
    /// `avx512` when CPUID reports it; NEON under `neon`, the dot product when the CPU has
    /// FEAT_DotProd (detected at run time with `std`, else when the build enables it).
    pub fn new(isa: Isa, kind: QgemmKind) -> Option<QgemmKernel> {
        let ok = match kind {
            QgemmKind::Reference => true,
            QgemmKind::Avx2 => matches!(isa.kind(), IsaKind::Avx2 | IsaKind::Avx512),
            #[cfg(target_arch = "x86_64")]
            QgemmKind::Avx512Vnni => {
                isa.kind() == IsaKind::Avx512 && crate::isa::x86_has_avx512vnni()
            }
            QgemmKind::Neon => isa.kind() == IsaKind::Neon,
            #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
            QgemmKind::NeonDot => isa.kind() == IsaKind::Neon && aarch64_has_dotprod(),
            #[allow(unreachable_patterns)]
            _ => false,
        };
        ok.then_some(QgemmKernel(kind))
    }

    /// The fastest int8 matrix kernel of `isa` on this CPU (what [`qgemm`] runs).
    pub fn best(isa: Isa) -> QgemmKernel {
        QgemmKind::ALL
            .into_iter()
            .rev()
            .find_map(|k| QgemmKernel::new(isa, k))
            .unwrap_or(QgemmKernel(QgemmKind::Reference))
    }

    /// Which kernel.
    pub fn kind(self) -> QgemmKind {
        self.0
    }
}

#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
fn aarch64_has_dotprod() -> bool {
    #[cfg(feature = "std")]
    {
        std::arch::is_aarch64_feature_detected!("dotprod")
    }
    #[cfg(not(feature = "std"))]
    {
        cfg!(target_feature = "dotprod")
    }
}

/// Runs `kernel` through the driver; `false` when it did not (the reference, or an operand
/// the driver leaves to the reference).
#[cfg(any(
    target_arch = "x86_64",
    all(target_arch = "aarch64", target_feature = "neon")
))]
#[allow(clippy::too_many_arguments)]
fn qgemm_run(
    kernel: QgemmKernel,
    m: usize,
    n: usize,
    k: usize,
    packed: &[i8],
    x: &q8::QMat<'_>,
    x_zp: u8,
    epi: crate::qgemm::Epi<'_, '_>,
    dst: &q8::QOut,
    scratch: &mut [u8],
) -> bool {
    match kernel.kind() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the kernel token proves AVX-512F and VNNI (QgemmKernel::new checks).
        QgemmKind::Avx512Vnni => unsafe {
            crate::qgemm::run::<crate::x86_64::qgemm::Avx512VnniQgemm8x48>(
                m, n, k, packed, x, x_zp, epi, dst, scratch,
            )
        },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the kernel token proves AVX2.
        QgemmKind::Avx2 => unsafe {
            crate::qgemm::run::<crate::x86_64::qgemm::Avx2Qgemm8x8>(
                m, n, k, packed, x, x_zp, epi, dst, scratch,
            )
        },
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        // SAFETY: NEON is part of the aarch64 base architecture.
        QgemmKind::Neon => unsafe {
            crate::qgemm::run::<crate::aarch64::qgemm::NeonQgemm8x4>(
                m, n, k, packed, x, x_zp, epi, dst, scratch,
            )
        },
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        // SAFETY: the kernel token proves FEAT_DotProd.
        QgemmKind::NeonDot => unsafe {
            crate::qgemm::run::<crate::aarch64::qgemm::NeonDotQgemm8x12>(
                m, n, k, packed, x, x_zp, epi, dst, scratch,
            )
        },
        _ => false,
    }
}

/// [`q8::qgemm`] on `isa`'s fastest int8 kernel ([`QgemmKernel::best`]); bit-identical to it.
#[allow(clippy::too_many_arguments)]
pub fn qgemm(
    isa: Isa,
    m: usize,
    n: usize,
    k: usize,
    packed: &[i8],
    x: q8::QMat<'_>,
    x_zp: u8,
    rq: &q8::Requant<'_>,
    out: &mut [u8],
    dst: q8::QOut,
    scratch: &mut [u8],
) {
    qgemm_with(
        QgemmKernel::best(isa),
        m,
        n,
        k,
        packed,
        x,
        x_zp,
        rq,
        out,
        dst,
        scratch,
    )
}

/// [`q8::qgemm`] on `kernel`. Operands the kernel cannot take (too short, an output that
/// aliases itself) run the reference.
#[allow(clippy::too_many_arguments)]
pub fn qgemm_with(
    kernel: QgemmKernel,
    m: usize,
    n: usize,
    k: usize,
    packed: &[i8],
    x: q8::QMat<'_>,
    x_zp: u8,
    rq: &q8::Requant<'_>,
    out: &mut [u8],
    dst: q8::QOut,
    scratch: &mut [u8],
) {
    #[cfg(any(
        target_arch = "x86_64",
        all(target_arch = "aarch64", target_feature = "neon")
    ))]
    let done = qgemm_run(
        kernel,
        m,
        n,
        k,
        packed,
        &x,
        x_zp,
        crate::qgemm::Epi::Requant(rq, &mut *out),
        &dst,
        scratch,
    );
    #[cfg(not(any(
        target_arch = "x86_64",
        all(target_arch = "aarch64", target_feature = "neon")
    )))]
    let done = {
        let _ = kernel;
        false
    };
    if !done {
        q8::qgemm(m, n, k, packed, x, x_zp, rq, out, dst, scratch);
    }
}

/// [`q8::qgemm_f32out`] on `isa`'s fastest int8 kernel; bit-identical to it.
#[allow(clippy::too_many_arguments)]
pub fn qgemm_f32out(
    isa: Isa,
    m: usize,
    n: usize,
    k: usize,
    packed: &[i8],
    x: q8::QMat<'_>,
    x_zp: u8,
    bias: &[i32],
    scale: &[f32],
    out: &mut [f32],
    dst: q8::QOut,
    scratch: &mut [u8],
) {
    qgemm_f32out_with(
        QgemmKernel::best(isa),
        m,
        n,
        k,
        packed,
        x,
        x_zp,
        bias,
        scale,
        out,
        dst,
        scratch,
    )
}

/// [`q8::qgemm_f32out`] on `kernel`, as [`qgemm_with`].
#[allow(clippy::too_many_arguments)]
pub fn qgemm_f32out_with(
    kernel: QgemmKernel,
    m: usize,
    n: usize,
    k: usize,
    packed: &[i8],
    x: q8::QMat<'_>,
    x_zp: u8,
    bias: &[i32],
    scale: &[f32],
    out: &mut [f32],
    dst: q8::QOut,
    scratch: &mut [u8],
) {
    #[cfg(any(
        target_arch = "x86_64",
        all(target_arch = "aarch64", target_feature = "neon")
    ))]
    let done = qgemm_run(
        kernel,
        m,
        n,
        k,
        packed,
        &x,
        x_zp,
        crate::qgemm::Epi::F32 {
            bias,
            scale,
            out: &mut *out,
        },
        &dst,
        scratch,
    );
    #[cfg(not(any(
        target_arch = "x86_64",
        all(target_arch = "aarch64", target_feature = "neon")
    )))]
    let done = {
        let _ = kernel;
        false
    };
    if !done {
        q8::qgemm_f32out(m, n, k, packed, x, x_zp, bias, scale, out, dst, scratch);
    }
}

/// [`q8::qdwconv2d`] (depthwise int8 convolution); bit-identical to it. AVX-512, AVX2 and
/// NEON run horizontal strides 1 and 2; the rest runs the reference.
pub fn qdwconv2d(
    isa: Isa,
    g: &Conv2dGeom,
    x: &[u8],
    x_zp: u8,
    w: &[i8],
    rq: &q8::Requant<'_>,
    out: &mut [u8],
) {
    match isa.kind() {
        #[cfg(target_arch = "x86_64")]
        IsaKind::Avx512 if crate::x86_64::qdwconv::handles(g, x.len(), w.len(), rq, out.len()) => {
            // SAFETY: `isa` proves AVX-512F; `handles` checked the geometry and lengths.
            unsafe { crate::x86_64::qdwconv::avx512_qdwconv2d_u8s8(g, x, x_zp, w, rq, out) }
        }
        #[cfg(target_arch = "x86_64")]
        IsaKind::Avx2 if crate::x86_64::qdwconv::handles(g, x.len(), w.len(), rq, out.len()) => {
            // SAFETY: `isa` proves AVX2; `handles` checked the geometry and lengths.
            unsafe { crate::x86_64::qdwconv::avx2_qdwconv2d_u8s8(g, x, x_zp, w, rq, out) }
        }
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        IsaKind::Neon if crate::aarch64::qdwconv::handles(g, x.len(), w.len(), rq, out.len()) => {
            // SAFETY: NEON is part of the aarch64 base architecture; `handles` checked the
            // geometry and lengths.
            unsafe { crate::aarch64::qdwconv::neon_qdwconv2d_u8s8(g, x, x_zp, w, rq, out) }
        }
        _ => q8::qdwconv2d(g, x, x_zp, w, rq, out),
    }
}

/// [`q8::quantize_u8`]; bit-identical to it (vectorized on AVX-512, AVX2 and NEON).
pub fn quantize_u8(isa: Isa, x: &[f32], scale: f32, zp: u8, out: &mut [u8]) {
    match isa.kind() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` proves AVX-512F.
        IsaKind::Avx512 => unsafe { crate::x86_64::quant::avx512_quantize_u8(x, scale, zp, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` proves AVX2.
        IsaKind::Avx2 => unsafe { crate::x86_64::quant::avx2_quantize_u8(x, scale, zp, out) },
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        // SAFETY: NEON is part of the aarch64 base architecture.
        IsaKind::Neon => unsafe { crate::aarch64::quant::neon_quantize_u8(x, scale, zp, out) },
        _ => q8::quantize_u8(x, scale, zp, out),
    }
}

/// [`q8::dequantize_u8`]; bit-identical to it (vectorized on AVX-512, AVX2 and NEON).
pub fn dequantize_u8(isa: Isa, q: &[u8], scale: f32, zp: u8, out: &mut [f32]) {
    match isa.kind() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` proves AVX-512F.
        IsaKind::Avx512 => unsafe { crate::x86_64::quant::avx512_dequantize_u8(q, scale, zp, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` proves AVX2.
        IsaKind::Avx2 => unsafe { crate::x86_64::quant::avx2_dequantize_u8(q, scale, zp, out) },
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        // SAFETY: NEON is part of the aarch64 base architecture.
        IsaKind::Neon => unsafe { crate::aarch64::quant::neon_dequantize_u8(q, scale, zp, out) },
        _ => q8::dequantize_u8(q, scale, zp, out),
    }
}
