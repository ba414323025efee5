//! The FFT convolution: `irfft(rfft(u, n) ⊙ H, n)`, real part, optionally sliced along the
//! signal axis, with a constant spectrum `H` (LMUFormer's memory as PyTorch's dynamo exporter
//! writes it) becomes one Conv step over `u`.
//!
//! The whole chain is linear and shift-equivariant in `u`, so its output is the circular
//! convolution `z[t] = Σ_s u[s] c[(t − s) mod n]` with the constant kernel `c = IRFFT(H)`
//! (computed in f64 with the same transform the converter folds DFTs with). Only the output
//! samples the slice keeps are computed, over the non-zero part of `u` (a trailing zero `Pad`
//! in front of the forward DFT is looked through), so a zero-padded `n ≥ 2L − 1` product becomes
//! the causal convolution with `L` taps and `L − 1` zeros of left padding, and a product that
//! wraps around still comes out exact (a longer kernel). Broadcasting between the signal's dims
//! and the spectrum's dims picks the conv's shape: signal-only dims are the batch, shared dims
//! the groups, spectrum-only dims the outputs per group (LMUFormer: one input channel, `order`
//! output channels).
//!
//! The match runs after the chain's last node is lowered (the general DFT lowering has already
//! emitted its steps; they become dead and `passes::remove_dead` drops them) and only rebinds
//! that node's output, so any mismatch simply keeps the general, exact lowering.

use super::dft::DftSpec;
use super::*;

/// Nodes after an IRFFT that the conv can absorb: a chain of single-consumer Slice/Squeeze.
#[derive(Clone, Debug)]
pub(super) struct Chain {
    /// The onesided inverse DFT node.
    pub inv: usize,
    /// Slice/Squeeze nodes after it, in order (the last one, or `inv`, is the anchor).
    pub down: Vec<usize>,
}

/// Where each ONNX tensor comes from, and the chains keyed by their last node.
#[derive(Default)]
pub(super) struct FftPlan {
    producer: HashMap<String, usize>,
    /// Chains by the index of their last node.
    pub chains: HashMap<usize, Chain>,
}

impl FftPlan {
    /// Finds every IRFFT node and the Slice/Squeeze chain after it.
    pub fn of(g: &pb::GraphProto) -> FftPlan {
        let mut producer = HashMap::new();
        let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, n) in g.node.iter().enumerate() {
            for o in &n.output {
                producer.insert(o.clone(), i);
            }
            for inp in &n.input {
                consumers.entry(inp.as_str()).or_default().push(i);
            }
        }
        let outputs: Vec<&str> = g.output.iter().map(|v| v.name.as_str()).collect();
        let mut chains = HashMap::new();
        for (i, n) in g.node.iter().enumerate() {
            let a = Attrs::new(n);
            if n.op_type != "DFT" || a.int_or("inverse", 0) == 0 || a.int_or("onesided", 0) == 0 {
                continue;
            }
            let mut down = vec![];
            let mut cur = i;
            while let Some(out) = g.node[cur].output.first() {
                if outputs.contains(&out.as_str()) {
                    break;
                }
                match consumers.get(out.as_str()).map(|v| v.as_slice()) {
                    Some(&[c]) if matches!(g.node[c].op_type.as_str(), "Slice" | "Squeeze") => {
                        down.push(c);
                        cur = c;
                    }
                    _ => break,
                }
            }
            chains.insert(cur, Chain { inv: i, down });
        }
        FftPlan { producer, chains }
    }
}

/// A real or imaginary part of a onesided forward DFT's output, taken by a Slice.
struct Part {
    fwd: usize,
    im: bool,
}

impl Lowerer {
    /// Tries to replace the chain ending at `anchor` by a Conv; logs why not when it cannot.
    pub(super) fn fuse_fft_conv(&mut self, g: &pb::GraphProto, plan: &FftPlan, anchor: usize) {
        let Some(chain) = plan.chains.get(&anchor) else {
            return;
        };
        match self.fft_conv(g, plan, chain, anchor) {
            Ok(Some(steps)) => log::info!(
                "node {:?}: FFT convolution -> {steps}",
                g.node[chain.inv].name
            ),
            Ok(None) => {}
            Err(e) => log::debug!(
                "node {:?}: not an FFT convolution with a constant kernel ({e:#}); kept as DFTs",
                g.node[chain.inv].name
            ),
        }
    }

    fn producer_node<'g>(
        &self,
        g: &'g pb::GraphProto,
        plan: &FftPlan,
        name: &str,
        op: &str,
    ) -> Result<&'g pb::NodeProto> {
        let n = plan
            .producer
            .get(name)
            .map(|&i| &g.node[i])
            .ok_or_else(|| anyhow!("{name:?} has no producer"))?;
        if n.op_type != op {
            bail!("{name:?} comes from {} instead of {op}", n.op_type);
        }
        Ok(n)
    }

    /// `name` = Slice(A, [0 or 1], [1 or 2], axes=[last]) with A from a onesided forward DFT.
    fn spectrum_part(&self, g: &pb::GraphProto, plan: &FftPlan, name: &str) -> Result<Part> {
        let s = self.producer_node(g, plan, name, "Slice")?;
        let data = self.inp(s, 0)?;
        let r = self.shape(data).len() as i64;
        let (st, en) = (self.ints(self.inp(s, 1)?)?, self.ints(self.inp(s, 2)?)?);
        let axes = match self.opt(s, 3)? {
            Some(t) => self.ints(t)?,
            None => (0..st.len() as i64).collect(),
        };
        let steps = match self.opt(s, 4)? {
            Some(t) => self.ints(t)?,
            None => vec![1; st.len()],
        };
        let last = |a: i64| a == -1 || a == r - 1;
        let im = match (
            st.as_slice(),
            en.as_slice(),
            axes.as_slice(),
            steps.as_slice(),
        ) {
            ([0], [1], [a], [1]) if last(*a) => false,
            ([1], [e], [a], [1]) if last(*a) && *e >= 2 => true,
            _ => bail!("{name:?} is not a re/im slice"),
        };
        let fwd_name = s.input.first().cloned().unwrap_or_default();
        let f = self.producer_node(g, plan, &fwd_name, "DFT")?;
        let fa = Attrs::new(f);
        if fa.int_or("inverse", 0) != 0 || fa.int_or("onesided", 0) == 0 {
            bail!("{fwd_name:?} is not a onesided forward DFT");
        }
        Ok(Part {
            fwd: plan.producer[&fwd_name],
            im,
        })
    }

    /// One factor of the complex product: a spectrum part times a constant.
    fn product(&self, g: &pb::GraphProto, plan: &FftPlan, name: &str) -> Result<(Part, TId)> {
        let m = self.producer_node(g, plan, name, "Mul")?;
        for (p, c) in [(0, 1), (1, 0)] {
            let ct = self.inp(m, c)?;
            if !self.g.is_const(ct) {
                continue;
            }
            if let Ok(part) = self.spectrum_part(g, plan, &m.input[p]) {
                return Ok((part, ct));
            }
        }
        bail!("{name:?} is not a DFT part times a constant")
    }

    fn same_const(&self, a: TId, b: TId) -> bool {
        a == b
            || (self.shape(a) == self.shape(b)
                && self.dtype(a) == self.dtype(b)
                && self.g.value(a).map(|d| d.bytes()) == self.g.value(b).map(|d| d.bytes()))
    }

    fn fft_conv(
        &mut self,
        g: &pb::GraphProto,
        plan: &FftPlan,
        chain: &Chain,
        anchor: usize,
    ) -> Result<Option<String>> {
        let inv = &g.node[chain.inv];
        let out_name = g.node[anchor]
            .output
            .first()
            .ok_or_else(|| anyhow!("no output"))?
            .clone();
        let final_t = *self
            .names
            .get(&out_name)
            .ok_or_else(|| anyhow!("{out_name:?} not lowered"))?;
        if self.g.is_const(final_t) {
            return Ok(None); // folded already: nothing to run
        }
        let (_, ispec) = self.dft_spec(inv)?;
        let n = ispec.n;
        // The complex product: Concat(Sub(ar·br, ai·bi), Add(ar·bi, ai·br)) on the last axis.
        let cat = self.producer_node(g, plan, &inv.input[0], "Concat")?;
        let rank = ispec.shape.len() as i64;
        let cax = Attrs::new(cat).int_or("axis", 0);
        if cat.input.len() != 2 || !(cax == -1 || cax == rank - 1) {
            bail!("the IRFFT input is not a [re, im] Concat");
        }
        let sub = self.producer_node(g, plan, &cat.input[0], "Sub")?;
        let add = self.producer_node(g, plan, &cat.input[1], "Add")?;
        let p1 = self.product(g, plan, &sub.input[0])?;
        let p2 = self.product(g, plan, &sub.input[1])?;
        let p3 = self.product(g, plan, &add.input[0])?;
        let p4 = self.product(g, plan, &add.input[1])?;
        let fwd = p1.0.fwd;
        if [&p2, &p3, &p4].iter().any(|p| p.0.fwd != fwd) {
            bail!("the products use different forward DFTs");
        }
        if p1.0.im || !p2.0.im {
            bail!("the real part is not re·re − im·im");
        }
        let (br, bi) = (p1.1, p2.1);
        let (p3, p4) = if p3.0.im { (p4, p3) } else { (p3, p4) };
        if p3.0.im || !p4.0.im || !self.same_const(p3.1, bi) || !self.same_const(p4.1, br) {
            bail!("the imaginary part is not re·im + im·re");
        }
        let (xf, fspec) = self.dft_spec(&g.node[fwd])?;
        if fspec.n != n || fspec.axis != ispec.axis {
            bail!("forward and inverse DFTs differ in length or axis");
        }
        let r = fspec.shape.len();
        if fspec.axis != r - 2 {
            bail!("the DFT axis is not the last signal axis");
        }
        // The signal: look through a zero Pad at the end of the signal axis.
        let (u, mut len) = self.unpadded(xf, &fspec)?;
        if len > n {
            bail!("the signal is longer than the DFT (cropped)");
        }
        len = len.min(fspec.shape[fspec.axis]);
        // Broadcast dims (all but the signal axis and the re/im dim), aligned on the right.
        let kb = n / 2 + 1;
        let (brs, bis) = (self.shape(br), self.shape(bi));
        let bs = broadcast_shape(&[&brs, &bis])?;
        let rr = r.max(bs.len());
        let pad = |s: &[usize]| -> Vec<usize> {
            let mut v = vec![1; rr - s.len()];
            v.extend(s);
            v
        };
        let (xs, cs) = (pad(&fspec.shape), pad(&bs));
        if cs[rr - 1] != 1 || !(cs[rr - 2] == 1 || cs[rr - 2] == kb) {
            bail!("the constant spectrum {bs:?} does not line up with {kb} bins");
        }
        let (mut nb, mut groups, mut per) = (1usize, 1usize, 1usize);
        let mut stage = 0;
        let mut d_shape = vec![];
        for k in 0..rr - 2 {
            let (x, c) = (xs[k], cs[k]);
            let d = if x == 1 { c } else { x };
            if (x != 1 && c != 1 && x != c) || d == 0 {
                bail!("dims {x} and {c} do not broadcast");
            }
            d_shape.push(d);
            if d == 1 {
                continue;
            }
            let s = match (x == d, c == d) {
                (true, false) => 0,
                (true, true) => 1,
                _ => 2,
            };
            if s < stage {
                bail!("the output's dims are not ordered batch, groups, outputs");
            }
            stage = s;
            match s {
                0 => nb *= d,
                1 => groups *= d,
                _ => per *= d,
            }
        }
        // The samples the chain keeps.
        let (t0, t_len, shape) = self.kept_range(g, chain, &d_shape, n)?;
        if shape != self.shape(final_t) {
            bail!(
                "internal: chain shape {shape:?} != lowered {:?}",
                self.shape(final_t)
            );
        }
        // Kernel rows (group-major, then output), each c = IRFFT(br + i·bi) in f64.
        let rows = groups * per;
        let bstr = |s: &[usize]| bstrides(s, &cs);
        let (sr, si) = (bstr(&brs), bstr(&bis));
        let (vr, vi) = (self.floats(br)?, self.floats(bi)?);
        let c_dims: Vec<usize> = cs[..rr - 2].to_vec();
        let c_st = strides_of(&c_dims);
        let spec = DftSpec {
            shape: vec![1, kb, 2],
            axis: 1,
            n,
            inverse: true,
            onesided: true,
        };
        let mut kern = vec![];
        for row in 0..rows {
            let mut off_r = 0isize;
            let mut off_i = 0isize;
            let mut rem = row;
            for k in 0..rr - 2 {
                let idx = rem / c_st[k];
                rem %= c_st[k];
                off_r += idx as isize * sr[k];
                off_i += idx as isize * si[k];
            }
            let mut spectrum = vec![0f64; kb * 2];
            for b in 0..kb {
                let kr = off_r + b as isize * sr[rr - 2];
                let ki = off_i + b as isize * si[rr - 2];
                spectrum[2 * b] = vr[kr as usize] as f64;
                spectrum[2 * b + 1] = vi[ki as usize] as f64;
            }
            kern.push(spec.apply(&spectrum));
        }
        // Taps e = t − s over t ∈ [t0, t0 + t_len), s ∈ [0, len): drop the ends that carry only
        // float32 rounding noise of the spectrum (at most 1e-6 of the kernel's L1 norm, summed).
        let coef = |row: usize, e: i64| kern[row][e.rem_euclid(n as i64) as usize];
        let (mut lo, mut hi) = (t0 as i64 - len as i64 + 1, (t0 + t_len) as i64 - 1);
        let col = |e: i64| (0..rows).map(|r| coef(r, e).abs()).fold(0f64, f64::max);
        let l1 = (0..rows)
            .map(|r| (lo..=hi).map(|e| coef(r, e).abs()).sum::<f64>())
            .fold(0f64, f64::max);
        let budget = 1e-6 * l1;
        let mut dropped = 0f64;
        while lo <= hi {
            let (a, b) = (col(lo), col(hi));
            let (v, from_lo) = if a <= b { (a, true) } else { (b, false) };
            if dropped + v > budget {
                break;
            }
            dropped += v;
            if from_lo {
                lo += 1;
            } else {
                hi -= 1;
            }
        }
        let hi = hi.max(t0 as i64);
        let lo = lo.min(hi);
        let taps = (hi - lo + 1) as usize;
        let pad_left = (hi - t0 as i64) as usize;
        let mut w = Vec::with_capacity(rows * taps);
        for row in 0..rows {
            for j in 0..taps {
                w.push(coef(row, hi - j as i64) as f32);
            }
        }
        let name = &g.node[anchor].name;
        let wt = self
            .g
            .const_f32(format!("{name}::fft_conv_kernel"), vec![rows, 1, taps], &w)?;
        let xin = self
            .g
            .alias(format!("{name}::fft_conv_in"), u, vec![nb, groups, len])?;
        let geom = Conv2dGeom {
            n: nb,
            c_in: groups,
            h_in: 1,
            w_in: len,
            c_out: rows,
            h_out: 1,
            w_out: t_len,
            kh: 1,
            kw: taps,
            stride_h: 1,
            stride_w: 1,
            dil_h: 1,
            dil_w: 1,
            pad_top: 0,
            pad_left,
            groups,
        };
        let o = self.g.add(
            format!("{name}::fft_conv"),
            DType::F32,
            vec![nb, rows, t_len],
        );
        self.g.emit(
            Op::Conv2d {
                g: geom,
                act: Activation::None,
            },
            &[Some(xin), Some(wt), None],
            o,
            name,
        )?;
        let t = self.g.alias(out_name.clone(), o, shape)?;
        self.names.insert(out_name, t);
        Ok(Some(format!(
            "Conv {groups}->{rows} channels (groups {groups}), {taps} taps, left pad {pad_left}, {t_len} outputs over {len} samples (dropped tap mass {dropped:.1e})"
        )))
    }

    /// The signal under the forward DFT's input `xf` (`[.., N, 1]`): the input of a zero Pad
    /// that only extends the signal axis at its end, if there is one. Returns the tensor (laid
    /// out as `[.., len]`) and `len`.
    fn unpadded(&self, xf: TId, spec: &DftSpec) -> Result<(TId, usize)> {
        let xs = self.shape(xf);
        let r = xs.len();
        let root = self.g.root(xf);
        let pad = self
            .g
            .steps
            .iter()
            .rev()
            .find(|s| self.g.root(s.output) == root);
        if let Some(s) = pad {
            if let Op::Pad {
                mode: PadMode::Constant,
                rank,
                in_dims,
                out_dims,
                begin,
                value: 0,
            } = s.op
            {
                let od = &out_dims[..rank];
                let same = od == xs.as_slice() || od == &xs[..r - 1];
                let only_end = (0..rank)
                    .all(|k| begin[k] == 0 && (k == spec.axis || in_dims[k] == out_dims[k]));
                if let (true, true, Some(x)) = (same, only_end, s.inputs[0]) {
                    return Ok((x, in_dims[spec.axis]));
                }
            }
        }
        Ok((xf, xs[spec.axis]))
    }

    /// Follows the Slice/Squeeze nodes after the IRFFT: returns the first kept sample, the
    /// count, and the resulting shape. Anything other than the real part's trivial slice, a
    /// squeeze of the re/im dim, or a unit-step slice of the signal axis is no match.
    fn kept_range(
        &self,
        g: &pb::GraphProto,
        chain: &Chain,
        d_shape: &[usize],
        n: usize,
    ) -> Result<(usize, usize, Vec<usize>)> {
        let sig = d_shape.len();
        let (mut t0, mut t_len, mut has_c) = (0usize, n, true);
        let shape_of = |t_len: usize, has_c: bool| {
            let mut s = d_shape.to_vec();
            s.push(t_len);
            if has_c {
                s.push(1);
            }
            s
        };
        for &i in &chain.down {
            let node = &g.node[i];
            let r = shape_of(t_len, has_c).len() as i64;
            let norm = |a: i64| if a < 0 { a + r } else { a };
            match node.op_type.as_str() {
                "Squeeze" => {
                    let axes = match self.opt(node, 1)? {
                        Some(t) => self.ints(t)?,
                        None => Attrs::new(node)
                            .ints("axes")
                            .ok_or_else(|| anyhow!("Squeeze without axes"))?,
                    };
                    if !(has_c && axes.len() == 1 && norm(axes[0]) == r - 1) {
                        bail!("a Squeeze of other dims than re/im");
                    }
                    has_c = false;
                }
                _ => {
                    if self.opt(node, 1)?.is_none() {
                        bail!("a legacy Slice");
                    }
                    let st = self.ints(self.inp(node, 1)?)?;
                    let en = self.ints(self.inp(node, 2)?)?;
                    let axes = match self.opt(node, 3)? {
                        Some(t) => self.ints(t)?,
                        None => (0..st.len() as i64).collect(),
                    };
                    let steps = match self.opt(node, 4)? {
                        Some(t) => self.ints(t)?,
                        None => vec![1; st.len()],
                    };
                    if en.len() != st.len() || axes.len() != st.len() || steps.len() != st.len() {
                        bail!("a malformed Slice");
                    }
                    for k in 0..st.len() {
                        let ax = norm(axes[k]);
                        let dim = if ax == sig as i64 {
                            t_len as i64
                        } else if has_c && ax == r - 1 {
                            1
                        } else {
                            bail!("a Slice of other dims than the signal");
                        };
                        if steps[k] != 1 {
                            bail!("a strided Slice");
                        }
                        let fix = |v: i64| (if v < 0 { v + dim } else { v }).clamp(0, dim);
                        let (s, e) = (fix(st[k]), fix(en[k]));
                        if e <= s {
                            bail!("an empty Slice");
                        }
                        if ax == sig as i64 {
                            t0 += s as usize;
                            t_len = (e - s) as usize;
                        }
                    }
                }
            }
        }
        Ok((t0, t_len, shape_of(t_len, has_c)))
    }
}
