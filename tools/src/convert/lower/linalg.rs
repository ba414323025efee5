//! Lowering of matrix products: Gemm, MatMul, Einsum, and the transposes they need.

use super::*;

impl Lowerer {
    pub(super) fn gemm(&mut self, node: &pb::NodeProto, a: &Attrs<'_>) -> Result<()> {
        let (x, y) = (self.inp(node, 0)?, self.inp(node, 1)?);
        let c = self.opt(node, 2)?;
        let (ta, tb) = (a.int_or("transA", 0) != 0, a.int_or("transB", 0) != 0);
        let (alpha, beta) = (a.float_or("alpha", 1.0), a.float_or("beta", 1.0));
        let (xs, ys) = (self.shape(x), self.shape(y));
        if xs.len() != 2 || ys.len() != 2 {
            bail!("Gemm needs rank-2 operands");
        }
        let (m, k) = if ta { (xs[1], xs[0]) } else { (xs[0], xs[1]) };
        let (k2, n) = if tb { (ys[1], ys[0]) } else { (ys[0], ys[1]) };
        if k != k2 {
            bail!("Gemm inner dimensions differ ({k} vs {k2})");
        }
        let mut bias = None;
        let mut late_c = None;
        if let Some(c) = c {
            let cs = self.shape(c);
            if self.g.is_const(c) && self.g.tensors[c].elems() == n && cs.last() == Some(&n) {
                let v: Vec<f32> = self.floats(c)?.iter().map(|&v| v * beta).collect();
                bias = Some(
                    self.g
                        .const_f32(format!("{}::bias", node.name), vec![n], &v)?,
                );
            } else if beta != 0.0 {
                late_c = Some(c);
            }
        }
        let g = MatMulGeom {
            m,
            n,
            k,
            a_rs: if ta { 1 } else { xs[1] },
            a_cs: if ta { xs[1] } else { 1 },
            b_rs: if tb { 1 } else { ys[1] },
            b_cs: if tb { ys[1] } else { 1 },
            alpha,
            ..Default::default()
        };
        let out = if late_c.is_some() {
            self.tmp(node, "ab", DType::F32, vec![m, n])
        } else {
            self.new_out(node, 0, DType::F32, vec![m, n])?
        };
        self.g
            .emit(Op::MatMul(g), &[Some(x), Some(y), bias], out, &node.name)?;
        if let Some(c) = late_c {
            let mut c = c;
            if beta != 1.0 {
                let cs = self.shape(c);
                let t = self.tmp(node, "betac", DType::F32, cs);
                self.g.emit(
                    Op::Unary {
                        op: UnaryOp::Affine { k: beta, c: 0.0 },
                    },
                    &[Some(c)],
                    t,
                    &node.name,
                )?;
                c = t;
            }
            let cs = self.shape(c);
            let os = broadcast_shape(&[&[m, n], &cs])?;
            let bc = make_bcast(&os, [&[m, n], &cs])?;
            let o = self.new_out(node, 0, DType::F32, os)?;
            self.g.emit(
                Op::Binary {
                    op: BinaryOp::Add,
                    bc,
                },
                &[Some(out), Some(c)],
                o,
                &node.name,
            )?;
        }
        Ok(())
    }

    /// numpy-style matmul with optional per-column bias. Returns the output tensor (named after
    /// the node's first output).
    pub(super) fn matmul(
        &mut self,
        node: &pb::NodeProto,
        x: TId,
        y: TId,
        bias: Option<TId>,
        alpha: f32,
    ) -> Result<TId> {
        let (mut xs, mut ys) = (self.shape(x), self.shape(y));
        if self.dtype(x) != DType::F32 || self.dtype(y) != DType::F32 {
            bail!("MatMul on non-float32 tensors");
        }
        let (x1, y1) = (xs.len() == 1, ys.len() == 1);
        if x1 {
            xs.insert(0, 1);
        }
        if y1 {
            ys.push(1);
        }
        if xs.is_empty() || ys.is_empty() {
            bail!("MatMul of a scalar");
        }
        let (m, k) = (xs[xs.len() - 2], xs[xs.len() - 1]);
        let (k2, n) = (ys[ys.len() - 2], ys[ys.len() - 1]);
        if k != k2 {
            bail!("MatMul inner dimensions differ ({k} vs {k2})");
        }
        let (xb, yb) = (&xs[..xs.len() - 2], &ys[..ys.len() - 2]);
        let batch = broadcast_shape(&[xb, yb])?;
        if batch.len() > 6 {
            bail!("MatMul with more than 6 batch dims");
        }
        let xst = bstrides(xb, &batch);
        let yst = bstrides(yb, &batch);
        let mut g = MatMulGeom {
            batch_rank: batch.len(),
            m,
            n,
            k,
            a_rs: k,
            a_cs: 1,
            b_rs: n,
            b_cs: 1,
            alpha,
            ..Default::default()
        };
        for i in 0..batch.len() {
            g.batch[i] = batch[i];
            g.a_bs[i] = xst[i] as usize * m * k;
            g.b_bs[i] = yst[i] as usize * k * n;
        }
        let mut os = batch.clone();
        if !x1 {
            os.push(m);
        }
        if !y1 {
            os.push(n);
        }
        let o = self.new_out(node, 0, DType::F32, os)?;
        self.g
            .emit(Op::MatMul(g), &[Some(x), Some(y), bias], o, &node.name)?;
        Ok(o)
    }

    pub(super) fn transpose(
        &mut self,
        node: &pb::NodeProto,
        x: TId,
        perm: &[usize],
        out_index: Option<usize>,
    ) -> Result<TId> {
        let xs = self.shape(x);
        if perm.len() != xs.len() {
            bail!(
                "transpose permutation {perm:?} does not match rank {}",
                xs.len()
            );
        }
        let xst = strides_of(&xs);
        let os: Vec<usize> = perm.iter().map(|&p| xs[p]).collect();
        let src: Vec<isize> = perm.iter().map(|&p| xst[p] as isize).collect();
        let dst: Vec<isize> = strides_of(&os).iter().map(|&v| v as isize).collect();
        let op = make_copy(&os, 0, &src, 0, &dst)?;
        let o = match out_index {
            Some(i) => self.new_out(node, i, self.dtype(x), os)?,
            None => self.tmp(node, "transposed", self.dtype(x), os),
        };
        // An identity permutation (after dropping size-1 dims) is a view.
        if let Op::Copy(c) = op {
            let ident = (0..c.rank).all(|k| c.src_strides[k] == c.dst_strides[k]) && c.src_off == 0;
            if ident && !self.g.is_const(x) {
                let shape = self.g.tensors[o].shape.clone();
                let name = self.g.tensors[o].name.clone();
                let t = self.g.alias(name.clone(), x, shape)?;
                if out_index.is_some() {
                    self.names.insert(name, t);
                }
                return Ok(t);
            }
        }
        self.g.emit(op, &[Some(x)], o, &node.name)?;
        Ok(o)
    }

    pub(super) fn einsum(&mut self, node: &pb::NodeProto, a: &Attrs<'_>) -> Result<()> {
        let eq: String = a
            .string("equation")
            .ok_or_else(|| anyhow!("Einsum without equation"))?
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let eq = self.expand_ellipsis(node, &eq)?;
        let (lhs, rhs) = match eq.split_once("->") {
            Some((l, r)) => (l.to_string(), r.to_string()),
            None => (eq.clone(), implicit_output(&eq)),
        };
        let terms: Vec<Vec<char>> = lhs.split(',').map(|t| t.chars().collect()).collect();
        let out: Vec<char> = rhs.chars().collect();
        if terms.len() != node.input.len() || terms.is_empty() || terms.len() > 2 {
            bail!("Einsum {eq:?}: only one or two operands are supported");
        }
        let ins: Vec<TId> = (0..terms.len())
            .map(|i| self.inp(node, i))
            .collect::<Result<_>>()?;
        let mut size: HashMap<char, usize> = HashMap::new();
        for (t, &x) in terms.iter().zip(&ins) {
            let s = self.shape(x);
            if s.len() != t.len() {
                bail!("Einsum term {t:?} does not match operand rank {}", s.len());
            }
            let mut seen = vec![];
            for (&c, &d) in t.iter().zip(&s) {
                if seen.contains(&c) {
                    bail!("Einsum with a repeated index within one operand (diagonal) is not supported");
                }
                seen.push(c);
                match size.get(&c) {
                    Some(&e) if e != d && e != 1 && d != 1 => {
                        bail!("Einsum index {c} has sizes {e} and {d}")
                    }
                    Some(&e) if e >= d => {}
                    _ => {
                        size.insert(c, d);
                    }
                }
            }
        }
        // Sum away indices that appear in one operand only and not in the output.
        let mut terms = terms;
        let mut ins = ins;
        for i in 0..terms.len() {
            let lonely: Vec<usize> = terms[i]
                .iter()
                .enumerate()
                .filter(|(_, c)| {
                    !out.contains(c)
                        && !terms
                            .iter()
                            .enumerate()
                            .any(|(j, t)| j != i && t.contains(c))
                })
                .map(|(k, _)| k)
                .collect();
            if !lonely.is_empty() {
                let r = self.reduce_to(node, ins[i], &lonely, false, ReduceOp::Sum, usize::MAX)?;
                ins[i] = r;
                terms[i] = terms[i]
                    .iter()
                    .enumerate()
                    .filter(|(k, _)| !lonely.contains(k))
                    .map(|(_, &c)| c)
                    .collect();
            }
        }
        let final_name = node.output[0].clone();
        if terms.len() == 1 {
            let perm: Vec<usize> = out
                .iter()
                .map(|c| {
                    terms[0]
                        .iter()
                        .position(|x| x == c)
                        .ok_or_else(|| anyhow!("output index {c} not in input"))
                })
                .collect::<Result<_>>()?;
            let o = self.transpose(node, ins[0], &perm, Some(0))?;
            self.names.insert(final_name, o);
            return Ok(());
        }
        let (ta, tb) = (&terms[0], &terms[1]);
        let contracted: Vec<char> = ta
            .iter()
            .copied()
            .filter(|c| tb.contains(c) && !out.contains(c))
            .collect();
        let os: Vec<usize> = out
            .iter()
            .map(|c| {
                size.get(c)
                    .copied()
                    .ok_or_else(|| anyhow!("unknown output index {c}"))
            })
            .collect::<Result<_>>()?;
        if contracted.is_empty() {
            // Element-wise product with broadcasting in the output's index order.
            let stride_of = |t: &Vec<char>, s: &[usize]| -> Vec<isize> {
                let st = strides_of(s);
                out.iter()
                    .map(|c| match t.iter().position(|x| x == c) {
                        Some(p) if s[p] != 1 => st[p] as isize,
                        _ => 0,
                    })
                    .collect()
            };
            let (sa, sb) = (
                stride_of(ta, &self.shape(ins[0])),
                stride_of(tb, &self.shape(ins[1])),
            );
            let mut strides = vec![sa, sb];
            let dims = compact(&os, &mut strides);
            let mut bc = Bcast::<2> {
                rank: dims.len(),
                ..Default::default()
            };
            bc.dims[..dims.len()].copy_from_slice(&dims);
            for i in 0..2 {
                for (k, &s) in strides[i].iter().enumerate() {
                    bc.strides[i][k] = s as usize;
                }
            }
            let o = self.new_out(node, 0, DType::F32, os)?;
            return self.g.emit(
                Op::Binary {
                    op: BinaryOp::Mul,
                    bc,
                },
                &[Some(ins[0]), Some(ins[1])],
                o,
                &node.name,
            );
        }
        let batch: Vec<char> = out
            .iter()
            .copied()
            .filter(|c| ta.contains(c) && tb.contains(c))
            .collect();
        let afree: Vec<char> = out
            .iter()
            .copied()
            .filter(|c| ta.contains(c) && !tb.contains(c))
            .collect();
        let bfree: Vec<char> = out
            .iter()
            .copied()
            .filter(|c| tb.contains(c) && !ta.contains(c))
            .collect();
        // Bring A to [batch, afree, contracted] and B to [batch, contracted, bfree].
        let order_a: Vec<char> = batch
            .iter()
            .chain(&afree)
            .chain(&contracted)
            .copied()
            .collect();
        let order_b: Vec<char> = batch
            .iter()
            .chain(&contracted)
            .chain(&bfree)
            .copied()
            .collect();
        let perm_a: Vec<usize> = order_a
            .iter()
            .map(|c| ta.iter().position(|x| x == c).unwrap_or(0))
            .collect();
        let perm_b: Vec<usize> = order_b
            .iter()
            .map(|c| tb.iter().position(|x| x == c).unwrap_or(0))
            .collect();
        let a2 = self.transpose(node, ins[0], &perm_a, None)?;
        let b2 = self.transpose(node, ins[1], &perm_b, None)?;
        let sz = |cs: &[char]| -> usize { cs.iter().map(|c| size[c]).product() };
        let (m, n, k) = (sz(&afree), sz(&bfree), sz(&contracted));
        let sa = self.shape(a2);
        let sb = self.shape(b2);
        let nb = batch.len();
        let mut ash = sa[..nb].to_vec();
        ash.extend([m, k]);
        let mut bsh = sb[..nb].to_vec();
        bsh.extend([k, n]);
        let a3 = self.g.alias(format!("{}::a", node.name), a2, ash)?;
        let b3 = self.g.alias(format!("{}::b", node.name), b2, bsh)?;
        let tmp_node = pb::NodeProto {
            output: vec![format!("{}::mm", node.name)],
            name: node.name.clone(),
            ..Default::default()
        };
        let mm = self.matmul(&tmp_node, a3, b3, None, 1.0)?;
        // Result is [batch, afree, bfree]; permute to the requested output order.
        let have: Vec<char> = batch.iter().chain(&afree).chain(&bfree).copied().collect();
        let mut hs: Vec<usize> = batch.iter().map(|c| size[c]).collect();
        hs.extend(afree.iter().map(|c| size[c]));
        hs.extend(bfree.iter().map(|c| size[c]));
        let mm = self.g.alias(format!("{}::mmv", node.name), mm, hs)?;
        let perm: Vec<usize> = out
            .iter()
            .map(|c| have.iter().position(|x| x == c).unwrap_or(0))
            .collect();
        let o = self.transpose(node, mm, &perm, Some(0))?;
        self.names.insert(final_name, o);
        Ok(())
    }

    /// Rewrites `...` in an Einsum equation into explicit fresh indices (right-aligned, so
    /// operands with fewer ellipsis dims broadcast as numpy does).
    pub(super) fn expand_ellipsis(&self, node: &pb::NodeProto, eq: &str) -> Result<String> {
        if !eq.contains("...") {
            return Ok(eq.to_string());
        }
        let (lhs, rhs) = match eq.split_once("->") {
            Some((l, r)) => (l, Some(r)),
            None => (eq, None),
        };
        let fresh: Vec<char> = ('\u{3b1}'..='\u{3c9}')
            .filter(|c| !eq.contains(*c))
            .collect();
        let mut terms = vec![];
        let mut max_e = 0usize;
        for (i, t) in lhs.split(',').enumerate() {
            let rank = self.shape(self.inp(node, i)?).len();
            let letters = t.replace("...", "").chars().count();
            let e = if t.contains("...") {
                rank.checked_sub(letters).ok_or_else(|| {
                    anyhow!("Einsum term {t:?} has more indices than its operand's rank {rank}")
                })?
            } else {
                0
            };
            max_e = max_e.max(e);
            terms.push((t.to_string(), e));
        }
        if max_e > fresh.len() {
            bail!("Einsum ellipsis covers too many dims");
        }
        let ell = |e: usize| -> String { fresh[max_e - e..max_e].iter().collect() };
        let new_lhs: Vec<String> = terms
            .iter()
            .map(|(t, e)| t.replace("...", &ell(*e)))
            .collect();
        let new_rhs = match rhs {
            Some(r) => r.replace("...", &ell(max_e)),
            None => ell(max_e) + &implicit_output(&lhs.replace("...", "")),
        };
        Ok(format!("{}->{}", new_lhs.join(","), new_rhs))
    }
}

/// The output of an Einsum equation without `->`: the indices that appear exactly once, in
/// alphabetical order (ONNX / numpy implicit mode).
fn implicit_output(lhs: &str) -> String {
    let mut counts: HashMap<char, usize> = HashMap::new();
    for c in lhs.chars().filter(|c| c.is_alphabetic()) {
        *counts.entry(c).or_default() += 1;
    }
    let mut r: Vec<char> = counts
        .into_iter()
        .filter(|&(_, n)| n == 1)
        .map(|(c, _)| c)
        .collect();
    r.sort();
    r.into_iter().collect()
}
