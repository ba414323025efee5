//! ONNX `DFT` (opset 17: `axis` attribute; opset 20: `axis` input).
//!
//! A DFT of a constant folds at conversion, computed in f64. Otherwise a DFT along an axis of
//! length N is a product with a constant real matrix: real input `[.., N, .., 1]` times the
//! `[N, K·2]` matrix of interleaved cos/sin columns, complex input `[.., N, .., 2]` times the
//! `[N·2, K·2]` matrix of 2×2 real blocks `[[cos, s·sin], [−s·sin, cos]]`; one MatMul step when
//! the axis is the last signal axis, with a Copy before and after to bring the axis last
//! otherwise. Twiddles are computed in f64 from `(k·t) mod n`, so they are exact to f32
//! rounding for every length.
//!
//! Semantics (ONNX DFT-17/20, checked against onnxruntime 1.32): `dft_length` n zero-pads or
//! crops the input along the axis; forward `y[k] = Σ_t x[t] e^{−2πi kt/n}`, inverse
//! `x[t] = (1/n) Σ_k y[k] e^{2πi kt/n}`; `onesided=1` forward (real input only) keeps bins
//! `0..=n/2`; `onesided=1` inverse (complex input only, IRFFT) takes bins `0..=n/2` of a
//! Hermitian spectrum and returns n real samples `[.., n, .., 1]` (default n = 2·(bins−1)); the
//! imaginary parts of bin 0 and of bin n/2 (n even) do not contribute.

use super::*;

/// One DFT node, resolved against its input shape.
#[derive(Clone, Debug)]
pub(super) struct DftSpec {
    /// Input shape (last dim 1 = real, 2 = complex).
    pub shape: Vec<usize>,
    /// Signal axis (normalized, `< rank − 1`).
    pub axis: usize,
    /// Transform length (`dft_length`).
    pub n: usize,
    pub inverse: bool,
    pub onesided: bool,
}

impl DftSpec {
    fn irfft(&self) -> bool {
        self.inverse && self.onesided
    }
    /// Input samples along the axis that the transform reads (the rest is cropped).
    pub fn n_used(&self) -> usize {
        self.shape[self.axis].min(self.n)
    }
    /// Output length along the axis.
    pub fn k_out(&self) -> usize {
        if self.onesided && !self.inverse {
            self.n / 2 + 1
        } else {
            self.n
        }
    }
    /// Output parts per element: 1 for IRFFT (real), else 2.
    pub fn c_out(&self) -> usize {
        if self.irfft() {
            1
        } else {
            2
        }
    }
    pub fn out_shape(&self) -> Vec<usize> {
        let mut s = self.shape.clone();
        s[self.axis] = self.k_out();
        let r = s.len();
        s[r - 1] = self.c_out();
        s
    }
    /// The transform as a real matrix `[n_used·c_in, k_out·c_out]` (row-major): output
    /// `(k, q)` = Σ over `(t, p)` of input `(t, p)` times entry `[(t, p), (k, q)]`.
    pub fn matrix(&self) -> (usize, usize, Vec<f64>) {
        let c_in = self.shape[self.shape.len() - 1];
        let (n, rows_t, k_out, c_out) = (self.n, self.n_used(), self.k_out(), self.c_out());
        let rows = rows_t * c_in;
        let cols = k_out * c_out;
        let mut w = vec![0f64; rows * cols];
        let angle = |a: usize, b: usize| {
            2.0 * std::f64::consts::PI * ((a as u128 * b as u128) % n as u128) as f64 / n as f64
        };
        if self.irfft() {
            // Rows: bin k (re, im); columns: sample j.
            for k in 0..rows_t {
                let wk = if k == 0 || (n % 2 == 0 && k == n / 2) {
                    1.0
                } else {
                    2.0
                };
                for j in 0..k_out {
                    let th = angle(k, j);
                    w[(2 * k) * cols + j] = wk * th.cos() / n as f64;
                    w[(2 * k + 1) * cols + j] = -wk * th.sin() / n as f64;
                }
            }
            return (rows, cols, w);
        }
        let (s, scale) = if self.inverse {
            (1.0, 1.0 / n as f64)
        } else {
            (-1.0, 1.0)
        };
        for t in 0..rows_t {
            for k in 0..k_out {
                let th = angle(k, t);
                let (c, sn) = (th.cos() * scale, s * th.sin() * scale);
                // (xr + i·xi)(c + i·sn) = xr·c − xi·sn + i(xr·sn + xi·c)
                w[(t * c_in) * cols + 2 * k] = c;
                w[(t * c_in) * cols + 2 * k + 1] = sn;
                if c_in == 2 {
                    w[(t * 2 + 1) * cols + 2 * k] = -sn;
                    w[(t * 2 + 1) * cols + 2 * k + 1] = c;
                }
            }
        }
        (rows, cols, w)
    }
    /// Applies the transform in f64 (constant folding and the reference for fusions).
    pub fn apply(&self, x: &[f64]) -> Vec<f64> {
        let r = self.shape.len();
        let c_in = self.shape[r - 1];
        let outer: usize = self.shape[..self.axis].iter().product();
        let inner: usize = self.shape[self.axis + 1..r - 1].iter().product();
        let len = self.shape[self.axis];
        let (rows, cols, w) = self.matrix();
        let (k_out, c_out) = (self.k_out(), self.c_out());
        let mut y = vec![0f64; outer * k_out * inner * c_out];
        for o in 0..outer {
            for i in 0..inner {
                for row in 0..rows {
                    let (t, p) = (row / c_in, row % c_in);
                    let v = x[((o * len + t) * inner + i) * c_in + p];
                    if v == 0.0 {
                        continue;
                    }
                    for col in 0..cols {
                        let (k, q) = (col / c_out, col % c_out);
                        y[((o * k_out + k) * inner + i) * c_out + q] += v * w[row * cols + col];
                    }
                }
            }
        }
        y
    }
}

impl Lowerer {
    /// Reads a DFT node's attributes and constant inputs; an unsupported or non-constant
    /// parameter is an error that says which.
    pub(super) fn dft_spec(&self, node: &pb::NodeProto) -> Result<(TId, DftSpec)> {
        let a = Attrs::new(node);
        let x = self.inp(node, 0)?;
        let shape = self.shape(x);
        let r = shape.len();
        if self.dtype(x) != DType::F32 {
            bail!(
                "DFT of a {} tensor (mote supports float32)",
                self.dtype(x).name()
            );
        }
        if r < 2 || !matches!(shape[r - 1], 1 | 2) {
            bail!("DFT input must end in a dimension of 1 (real) or 2 (complex), got {shape:?}");
        }
        let axis = if self.opset >= 20 {
            match self.opt(node, 2)? {
                Some(t) => {
                    let v = self.ints(t).context("DFT axis must be a constant")?;
                    *v.first()
                        .ok_or_else(|| anyhow!("DFT axis input is empty"))?
                }
                None => -2,
            }
        } else {
            a.int_or("axis", 1)
        };
        let ax = if axis < 0 { axis + r as i64 } else { axis };
        if ax < 0 || ax > r as i64 - 2 {
            bail!("DFT axis {axis} is out of range for input rank {r} (the last dim holds re/im)");
        }
        let axis = ax as usize;
        let inverse = a.int_or("inverse", 0) != 0;
        let onesided = a.int_or("onesided", 0) != 0;
        let complex = shape[r - 1] == 2;
        if onesided && !inverse && complex {
            bail!("onesided forward DFT of a complex input (ONNX allows onesided only for real input)");
        }
        if onesided && inverse && !complex {
            bail!("onesided inverse DFT (IRFFT) of a real input (ONNX requires a complex input)");
        }
        let len = shape[axis];
        let n = match self.opt(node, 1)? {
            Some(t) => {
                let v = self.ints(t).context("DFT dft_length must be a constant")?;
                let n = *v
                    .first()
                    .ok_or_else(|| anyhow!("DFT dft_length is empty"))?;
                if n < 1 {
                    bail!("DFT dft_length {n} must be positive");
                }
                n as usize
            }
            None if inverse && onesided => 2 * len.saturating_sub(1),
            None => len,
        };
        if n == 0 {
            bail!("DFT of length 0");
        }
        if inverse && onesided && len != n / 2 + 1 {
            // With any other bin count onnxruntime's result is not the Hermitian inverse (it
            // mirrors a different set of bins), so there is no agreed answer to match.
            bail!(
                "onesided inverse DFT (IRFFT) with {len} bins and dft_length {n}: mote needs exactly floor(n/2)+1 = {} bins",
                n / 2 + 1
            );
        }
        Ok((
            x,
            DftSpec {
                shape,
                axis,
                n,
                inverse,
                onesided,
            },
        ))
    }

    pub(super) fn dft(&mut self, node: &pb::NodeProto) -> Result<()> {
        self.only_outputs(node, 1)?;
        let (x, spec) = self.dft_spec(node)?;
        let os = spec.out_shape();
        if self.g.is_const(x) {
            let xv: Vec<f64> = self.floats(x)?.iter().map(|&v| v as f64).collect();
            let y: Vec<f32> = spec.apply(&xv).iter().map(|&v| v as f32).collect();
            return self.const_out(node, DType::F32, os, Data::from_f32(&y));
        }
        let r = spec.shape.len();
        let c_in = spec.shape[r - 1];
        let len = spec.shape[spec.axis];
        let outer: usize = spec.shape[..spec.axis].iter().product();
        let inner: usize = spec.shape[spec.axis + 1..r - 1].iter().product();
        let (rows, cols, w) = spec.matrix();
        let w32: Vec<f32> = w.iter().map(|&v| v as f32).collect();
        let wt = self
            .g
            .const_f32(format!("{}::dft_matrix", node.name), vec![rows, cols], &w32)?;
        let (k_out, c_out) = (spec.k_out(), spec.c_out());
        let mm = |m: usize| MatMulGeom {
            m,
            n: cols,
            k: rows,
            a_rs: len * c_in,
            a_cs: 1,
            b_rs: cols,
            b_cs: 1,
            alpha: 1.0,
            ..Default::default()
        };
        if inner == 1 {
            let o = self.new_out(node, 0, DType::F32, os)?;
            return self.g.emit(
                Op::MatMul(mm(outer)),
                &[Some(x), Some(wt), None],
                o,
                &node.name,
            );
        }
        // Bring the axis last: [outer, len, inner, c] -> [outer, inner, len, c].
        let src: Vec<isize> = [len * inner * c_in, c_in, inner * c_in, 1]
            .iter()
            .map(|&v| v as isize)
            .collect();
        let dims = [outer, inner, len, c_in];
        let dst: Vec<isize> = strides_of(&dims).iter().map(|&v| v as isize).collect();
        let xt = self.tmp(node, "axis_last", DType::F32, dims.to_vec());
        self.g.emit(
            make_copy(&dims, 0, &src, 0, &dst)?,
            &[Some(x)],
            xt,
            &node.name,
        )?;
        let yt = self.tmp(
            node,
            "spectrum",
            DType::F32,
            vec![outer, inner, k_out, c_out],
        );
        self.g.emit(
            Op::MatMul(mm(outer * inner)),
            &[Some(xt), Some(wt), None],
            yt,
            &node.name,
        )?;
        // And back: [outer, inner, k_out, c] -> [outer, k_out, inner, c].
        let dims = [outer, k_out, inner, c_out];
        let src: Vec<isize> = [inner * k_out * c_out, c_out, k_out * c_out, 1]
            .iter()
            .map(|&v| v as isize)
            .collect();
        let dst: Vec<isize> = strides_of(&dims).iter().map(|&v| v as isize).collect();
        let o = self.new_out(node, 0, DType::F32, os)?;
        self.g.emit(
            make_copy(&dims, 0, &src, 0, &dst)?,
            &[Some(yt)],
            o,
            &node.name,
        )
    }
}
