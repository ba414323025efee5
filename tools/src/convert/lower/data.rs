//! Lowering of reductions and data movement: Reduce*, Split, Slice, Pad, constant ScatterND.

use super::*;

impl Lowerer {
    /// Reduces `x` over `axes`; `out_index` names the output (`usize::MAX` = temporary).
    pub(super) fn reduce_to(
        &mut self,
        node: &pb::NodeProto,
        x: TId,
        axes: &[usize],
        keep: bool,
        op: ReduceOp,
        out_index: usize,
    ) -> Result<TId> {
        let xs = self.shape(x);
        if xs.len() > MAX_RANK {
            bail!("reduction over rank {}", xs.len());
        }
        if self.dtype(x) != DType::F32 {
            bail!("reduction of {} tensors", self.dtype(x).name());
        }
        let mut mask = 0u32;
        for &ax in axes {
            mask |= 1 << ax;
        }
        let os: Vec<usize> = xs
            .iter()
            .enumerate()
            .filter_map(|(k, &d)| {
                if mask & (1 << k) != 0 {
                    if keep {
                        Some(1)
                    } else {
                        None
                    }
                } else {
                    Some(d)
                }
            })
            .collect();
        let mut dims = [0usize; MAX_RANK];
        dims[..xs.len()].copy_from_slice(&xs);
        let o = if out_index == usize::MAX {
            self.tmp(node, "reduced", DType::F32, os)
        } else {
            self.new_out(node, out_index, DType::F32, os)?
        };
        self.g.emit(
            Op::Reduce {
                op,
                rank: xs.len(),
                dims,
                mask,
            },
            &[Some(x)],
            o,
            &node.name,
        )?;
        Ok(o)
    }

    pub(super) fn reduce(&mut self, node: &pb::NodeProto, a: &Attrs<'_>) -> Result<()> {
        let x = self.inp(node, 0)?;
        let xs = self.shape(x);
        let axes = match self.opt(node, 1)? {
            Some(t) => Some(self.ints(t)?),
            None => a.ints("axes"),
        };
        let axes: Vec<usize> = match axes {
            Some(v) if !v.is_empty() => v
                .iter()
                .map(|&ax| norm_axis(ax, xs.len()))
                .collect::<Result<_>>()?,
            _ => {
                if a.int_or("noop_with_empty_axes", 0) != 0 {
                    return self.set_out(node, 0, x);
                }
                (0..xs.len()).collect()
            }
        };
        let op = match node.op_type.as_str() {
            "ReduceMean" => ReduceOp::Mean,
            "ReduceSum" => ReduceOp::Sum,
            "ReduceMax" => ReduceOp::Max,
            "ReduceMin" => ReduceOp::Min,
            "ReduceProd" => ReduceOp::Prod,
            "ReduceL1" => ReduceOp::L1,
            "ReduceL2" => ReduceOp::L2,
            _ => ReduceOp::SumSquare,
        };
        if self.dtype(x) == DType::I64 && self.g.is_const(x) {
            // Shape arithmetic (e.g. ReduceProd of a shape): fold in integers.
            let v = self.ints(x)?;
            if axes.len() != xs.len() {
                bail!("integer reduction over some axes");
            }
            let r = match op {
                ReduceOp::Sum => v.iter().sum(),
                ReduceOp::Prod => v.iter().product(),
                ReduceOp::Max => *v.iter().max().unwrap_or(&i64::MIN),
                ReduceOp::Min => *v.iter().min().unwrap_or(&i64::MAX),
                _ => bail!("integer {:?}", op),
            };
            let keep = a.int_or("keepdims", 1) != 0;
            let shape = if keep { vec![1; xs.len()] } else { vec![] };
            return self.const_out(node, DType::I64, shape, Data::from_i64(&[r]));
        }
        let keep = a.int_or("keepdims", 1) != 0;
        let o = self.reduce_to(node, x, &axes, keep, op, 0)?;
        self.set_out(node, 0, o)
    }

    /// ScatterND on constants (e.g. attention masks built at export time) folds; on run-time
    /// tensors it is not supported.
    pub(super) fn scatter_nd(&mut self, node: &pb::NodeProto, a: &Attrs<'_>) -> Result<()> {
        let (x, i, u) = (self.inp(node, 0)?, self.inp(node, 1)?, self.inp(node, 2)?);
        if a.string("reduction").is_some_and(|r| r != "none") {
            bail!("ScatterND with a reduction is not supported");
        }
        if !(self.g.is_const(x) && self.g.is_const(i) && self.g.is_const(u)) {
            bail!("ScatterND on run-time tensors is not supported (only constant inputs fold)");
        }
        let (xs, is) = (self.shape(x), self.shape(i));
        let idx = self.ints(i)?;
        let k = *is
            .last()
            .ok_or_else(|| anyhow!("ScatterND indices must have rank >= 1"))?;
        if k > xs.len() || self.dtype(x) != self.dtype(u) {
            bail!("ScatterND index depth {k} exceeds data rank {}", xs.len());
        }
        let es = self.dtype(x).size();
        let slice: usize = xs[k..].iter().product::<usize>() * es;
        let xst = strides_of(&xs);
        let mut data = self.g.value(x).cloned().unwrap_or_default();
        let upd = self.g.value(u).cloned().unwrap_or_default();
        let n = idx.len() / k.max(1);
        if upd.bytes().len() != n * slice {
            bail!("ScatterND updates have the wrong size");
        }
        for j in 0..n {
            let mut off = 0usize;
            for d in 0..k {
                let v = idx[j * k + d];
                let v = if v < 0 { v + xs[d] as i64 } else { v };
                if v < 0 || v >= xs[d] as i64 {
                    bail!(
                        "ScatterND index {} out of range for axis {d} of length {}",
                        idx[j * k + d],
                        xs[d]
                    );
                }
                off += v as usize * xst[d];
            }
            let at = off * es;
            data.bytes_mut()[at..at + slice]
                .copy_from_slice(&upd.bytes()[j * slice..(j + 1) * slice]);
        }
        let dt = self.dtype(x);
        self.const_out(node, dt, xs, data)
    }

    pub(super) fn split(&mut self, node: &pb::NodeProto, a: &Attrs<'_>) -> Result<()> {
        let x = self.inp(node, 0)?;
        let xs = self.shape(x);
        let ax = norm_axis(a.int_or("axis", 0), xs.len())?;
        let n_out = node.output.len();
        let sizes: Vec<usize> = match self.opt(node, 1)? {
            Some(t) => self.ints(t)?.iter().map(|&v| v as usize).collect(),
            None => match a.ints("split") {
                Some(v) => v.iter().map(|&v| v as usize).collect(),
                None => {
                    let parts = a.int_or("num_outputs", n_out as i64) as usize;
                    let chunk = xs[ax].div_ceil(parts.max(1));
                    (0..parts)
                        .map(|i| chunk.min(xs[ax].saturating_sub(i * chunk)))
                        .collect()
                }
            },
        };
        if sizes.len() != n_out || sizes.iter().sum::<usize>() != xs[ax] {
            bail!(
                "Split sizes {sizes:?} do not match axis length {} and {n_out} outputs",
                xs[ax]
            );
        }
        let xst = strides_of(&xs);
        let src: Vec<isize> = xst.iter().map(|&v| v as isize).collect();
        let mut at = 0;
        for (i, &s) in sizes.iter().enumerate() {
            let mut os = xs.clone();
            os[ax] = s;
            let dst: Vec<isize> = strides_of(&os).iter().map(|&v| v as isize).collect();
            let op = make_copy(&os, at * xst[ax], &src, 0, &dst)?;
            let o = self.new_out(node, i, self.dtype(x), os)?;
            self.g.emit(op, &[Some(x)], o, &node.name)?;
            at += s;
        }
        Ok(())
    }

    pub(super) fn slice(&mut self, node: &pb::NodeProto) -> Result<()> {
        let x = self.inp(node, 0)?;
        let xs = self.shape(x);
        let a = Attrs::new(node);
        let legacy = self.opt(node, 1)?.is_none();
        let (starts, ends) = if legacy {
            // Opset < 10: starts/ends/axes are attributes.
            (
                a.ints("starts")
                    .ok_or_else(|| anyhow!("Slice without starts"))?,
                a.ints("ends")
                    .ok_or_else(|| anyhow!("Slice without ends"))?,
            )
        } else {
            (
                self.ints(self.inp(node, 1)?)?,
                self.ints(self.inp(node, 2)?)?,
            )
        };
        let legacy_axes = if legacy { a.ints("axes") } else { None };
        let axes: Vec<usize> = match legacy_axes {
            Some(v) => v
                .iter()
                .map(|&ax| norm_axis(ax, xs.len()))
                .collect::<Result<_>>()?,
            None => match self.opt(node, 3)? {
                Some(t) => self
                    .ints(t)?
                    .iter()
                    .map(|&v| norm_axis(v, xs.len()))
                    .collect::<Result<_>>()?,
                None => (0..starts.len()).collect(),
            },
        };
        let steps = match self.opt(node, 4)? {
            Some(t) => self.ints(t)?,
            None => vec![1; starts.len()],
        };
        if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
            bail!("Slice starts/ends/axes/steps lengths differ");
        }
        let xst = strides_of(&xs);
        let mut os = xs.clone();
        let mut src: Vec<isize> = xst.iter().map(|&v| v as isize).collect();
        let mut off = 0usize;
        for i in 0..starts.len() {
            let (ax, step) = (axes[i], steps[i]);
            if step == 0 {
                bail!("Slice step 0");
            }
            let d = xs[ax] as i64;
            let fix = |v: i64| if v < 0 { v + d } else { v };
            // First index read and element count, with ONNX's clamping rules.
            let (s, len) = if step > 0 {
                let s = fix(starts[i]).clamp(0, d);
                let e = fix(ends[i]).clamp(0, d);
                (s, if e > s { (e - s + step - 1) / step } else { 0 })
            } else {
                let s = fix(starts[i]).clamp(-1, d - 1);
                let e = fix(ends[i]).clamp(-1, d - 1);
                (s, if s > e { (s - e - step - 1) / -step } else { 0 })
            };
            os[ax] = len as usize;
            if len > 0 {
                off += s as usize * xst[ax];
            }
            src[ax] = xst[ax] as isize * step as isize;
        }
        let dst: Vec<isize> = strides_of(&os).iter().map(|&v| v as isize).collect();
        let op = make_copy(&os, off, &src, 0, &dst)?;
        let o = self.new_out(node, 0, self.dtype(x), os)?;
        self.g.emit(op, &[Some(x)], o, &node.name)
    }

    pub(super) fn pad(&mut self, node: &pb::NodeProto, a: &Attrs<'_>) -> Result<()> {
        let x = self.inp(node, 0)?;
        let xs = self.shape(x);
        let r = xs.len();
        let pads = match self.opt(node, 1)? {
            Some(t) => self.ints(t)?,
            None => a.ints("pads").ok_or_else(|| anyhow!("Pad without pads"))?,
        };
        let axes: Vec<usize> = match self.opt(node, 3)? {
            Some(t) => self
                .ints(t)?
                .iter()
                .map(|&v| norm_axis(v, r))
                .collect::<Result<_>>()?,
            None => (0..r).collect(),
        };
        if pads.len() != 2 * axes.len() || r > MAX_RANK {
            bail!("Pad: {} pads for {} axes", pads.len(), axes.len());
        }
        let mut begin = [0isize; MAX_RANK];
        let mut end = [0i64; MAX_RANK];
        for (i, &ax) in axes.iter().enumerate() {
            begin[ax] = pads[i] as isize;
            end[ax] = pads[i + axes.len()];
        }
        let mode = match a.string("mode").as_deref().unwrap_or("constant") {
            "constant" => PadMode::Constant,
            "reflect" => PadMode::Reflect,
            "edge" => PadMode::Edge,
            m => bail!("Pad mode {m:?} is not supported"),
        };
        let dt = self.dtype(x);
        let value: u64 = match self.opt(node, 2)? {
            Some(t) => {
                let d = self
                    .g
                    .value(t)
                    .ok_or_else(|| anyhow!("Pad value must be constant"))?;
                let mut v = [0u8; 8];
                let n = dt.size().min(d.bytes().len());
                v[..n].copy_from_slice(&d.bytes()[..n]);
                u64::from_le_bytes(v)
            }
            None => match a.names().contains(&"value") {
                // Opset < 11: the fill value is a float attribute.
                true if dt == DType::F32 => a.float_or("value", 0.0).to_bits() as u64,
                _ => 0,
            },
        };
        let mut os = vec![];
        let mut in_dims = [0usize; MAX_RANK];
        let mut out_dims = [0usize; MAX_RANK];
        for k in 0..r {
            let o = xs[k] as i64 + begin[k] as i64 + end[k];
            if o < 0 {
                bail!("Pad crops more than axis {k} holds");
            }
            os.push(o as usize);
            in_dims[k] = xs[k];
            out_dims[k] = o as usize;
        }
        let op = Op::Pad {
            mode,
            rank: r,
            in_dims,
            out_dims,
            begin,
            value,
        };
        let o = self.new_out(node, 0, dt, os)?;
        self.g.emit(op, &[Some(x)], o, &node.name)
    }
}
