//! Lowering of element-wise ONNX ops: arithmetic (with integer constant folding), comparisons, logic, unary functions.

use super::*;

impl Lowerer {
    pub(super) fn as_i64(&mut self, node: &pb::NodeProto, i: TId) -> Result<TId> {
        match self.dtype(i) {
            DType::I64 => Ok(i),
            DType::I32 => {
                let o = self.tmp(node, "idx64", DType::I64, self.shape(i));
                self.g.emit(Op::Cast, &[Some(i)], o, &node.name)?;
                Ok(o)
            }
            other => bail!("indices must be int64 or int32, found {}", other.name()),
        }
    }

    pub(super) fn unary(&mut self, node: &pb::NodeProto, op: UnaryOp) -> Result<()> {
        let x = self.inp(node, 0)?;
        if self.dtype(x) != DType::F32 {
            if self.g.is_const(x)
                && matches!(op, UnaryOp::Neg | UnaryOp::Abs)
                && self.dtype(x) == DType::I64
            {
                let v: Vec<i64> = self
                    .ints(x)?
                    .iter()
                    .map(|&v| if op == UnaryOp::Neg { -v } else { v.abs() })
                    .collect();
                return self.const_out(node, DType::I64, self.shape(x), Data::from_i64(&v));
            }
            bail!(
                "{} on {} tensors is not supported (float32 only)",
                node.op_type,
                self.dtype(x).name()
            );
        }
        let o = self.new_out(node, 0, DType::F32, self.shape(x))?;
        self.g.emit(Op::Unary { op }, &[Some(x)], o, &node.name)
    }

    pub(super) fn int_binary(&mut self, node: &pb::NodeProto, x: TId, y: TId) -> Result<()> {
        let (xv, yv) = (self.ints(x)?, self.ints(y)?);
        let (xs, ys) = (self.shape(x), self.shape(y));
        let os = broadcast_shape(&[&xs, &ys])?;
        let (sx, sy) = (bstrides(&xs, &os), bstrides(&ys, &os));
        let n: usize = os.iter().product();
        let ost = strides_of(&os);
        let mut out = Vec::with_capacity(n);
        for flat in 0..n {
            let (mut ix, mut iy) = (0isize, 0isize);
            for k in 0..os.len() {
                let c = (flat / ost[k] % os[k]) as isize;
                ix += c * sx[k];
                iy += c * sy[k];
            }
            let (p, q) = (xv[ix as usize], yv[iy as usize]);
            out.push(match node.op_type.as_str() {
                "Add" => p.wrapping_add(q),
                "Sub" => p.wrapping_sub(q),
                "Mul" => p.wrapping_mul(q),
                "Div" => {
                    if q == 0 {
                        bail!("integer division by zero");
                    }
                    p.wrapping_div(q)
                }
                "Max" => p.max(q),
                "Min" => p.min(q),
                "Pow" => p.wrapping_pow(q.clamp(0, 64) as u32),
                "Mod" => {
                    if q == 0 {
                        bail!("integer modulo by zero");
                    }
                    ((p % q) + q) % q
                }
                other => bail!("integer {other}"),
            });
        }
        self.const_out(node, DType::I64, os, Data::from_i64(&out))
    }

    pub(super) fn binary(&mut self, node: &pb::NodeProto) -> Result<()> {
        let n_in = node.input.len();
        if n_in < 2 {
            let x = self.inp(node, 0)?;
            return self.set_out(node, 0, x);
        }
        if n_in > 2 {
            bail!(
                "variadic {} with {n_in} inputs is not supported",
                node.op_type
            );
        }
        let (x, y) = (self.inp(node, 0)?, self.inp(node, 1)?);
        let (dx, dy) = (self.dtype(x), self.dtype(y));
        if matches!(dx, DType::I64 | DType::I32) && matches!(dy, DType::I64 | DType::I32) {
            if self.g.is_const(x) && self.g.is_const(y) {
                return self.int_binary(node, x, y);
            }
            bail!(
                "integer {} on run-time tensors is not supported",
                node.op_type
            );
        }
        if node.op_type == "Mod" {
            bail!(
                "Mod on {} tensors is only supported for integer constants",
                dx.name()
            );
        }
        if dx != DType::F32 || dy != DType::F32 {
            bail!(
                "{} on {} and {} is not supported",
                node.op_type,
                dx.name(),
                dy.name()
            );
        }
        let op = match node.op_type.as_str() {
            "Add" => BinaryOp::Add,
            "Sub" => BinaryOp::Sub,
            "Mul" => BinaryOp::Mul,
            "Div" => BinaryOp::Div,
            "Pow" => BinaryOp::Pow,
            "Max" => BinaryOp::Max,
            _ => BinaryOp::Min,
        };
        let (xs, ys) = (self.shape(x), self.shape(y));
        let os = broadcast_shape(&[&xs, &ys])?;
        // x ^ c with a scalar constant exponent is a unary op.
        if op == BinaryOp::Pow && self.g.is_const(y) && self.g.tensors[y].elems() == 1 && os == xs {
            let e = self.floats(y)?[0];
            let o = self.new_out(node, 0, DType::F32, os)?;
            return self.g.emit(
                Op::Unary {
                    op: UnaryOp::PowConst { exp: e },
                },
                &[Some(x)],
                o,
                &node.name,
            );
        }
        let bc = make_bcast(&os, [&xs, &ys])?;
        let o = self.new_out(node, 0, DType::F32, os)?;
        self.g
            .emit(Op::Binary { op, bc }, &[Some(x), Some(y)], o, &node.name)
    }

    /// Variadic Sum / Mean / Max / Min as a chain of binary steps.
    pub(super) fn variadic(&mut self, node: &pb::NodeProto) -> Result<()> {
        let ins: Vec<TId> = (0..node.input.len())
            .map(|i| self.inp(node, i))
            .collect::<Result<_>>()?;
        let op = match node.op_type.as_str() {
            "Sum" | "Mean" => "Add",
            other => other,
        };
        if ins.len() == 1 && node.op_type != "Mean" {
            return self.set_out(node, 0, ins[0]);
        }
        let mut acc = ins[0];
        let last_binary = if node.op_type == "Mean" {
            ins.len()
        } else {
            ins.len() - 1
        };
        for (k, &t) in ins.iter().enumerate().skip(1) {
            let out_name = if k == last_binary {
                node.output[0].clone()
            } else {
                format!("{}::acc{k}#{}", node.name, self.g.tensors.len())
            };
            let step = pb::NodeProto {
                input: vec![
                    self.g.tensors[acc].name.clone(),
                    self.g.tensors[t].name.clone(),
                ],
                output: vec![out_name.clone()],
                name: node.name.clone(),
                op_type: op.to_string(),
                ..Default::default()
            };
            self.names.insert(self.g.tensors[acc].name.clone(), acc);
            self.names.insert(self.g.tensors[t].name.clone(), t);
            self.binary(&step)?;
            acc = self.names[&out_name];
        }
        if node.op_type == "Mean" {
            let xs = self.shape(acc);
            let o = self.new_out(node, 0, DType::F32, xs)?;
            let k = 1.0 / ins.len() as f32;
            self.g.emit(
                Op::Unary {
                    op: UnaryOp::Affine { k, c: 0.0 },
                },
                &[Some(acc)],
                o,
                &node.name,
            )?;
        }
        Ok(())
    }

    pub(super) fn compare(&mut self, node: &pb::NodeProto) -> Result<()> {
        let (mut x, mut y) = (self.inp(node, 0)?, self.inp(node, 1)?);
        let op = match node.op_type.as_str() {
            "Equal" => CompareOp::Equal,
            "Less" => CompareOp::Less,
            "LessOrEqual" => CompareOp::LessOrEqual,
            "Greater" => CompareOp::Greater,
            _ => CompareOp::GreaterOrEqual,
        };
        // Integer comparisons: constants fold exactly; run-time integers are compared as f32
        // only when they are small enough to be exact there, which we cannot know: refuse.
        for t in [&mut x, &mut y] {
            if self.dtype(*t) != DType::F32 {
                if self.dtype(*t) == DType::Bool || !self.g.is_const(*t) {
                    bail!(
                        "{} on {} tensors is not supported",
                        node.op_type,
                        self.dtype(*t).name()
                    );
                }
                let v: Vec<f32> = self.ints(*t)?.iter().map(|&v| v as f32).collect();
                if self.ints(*t)?.iter().any(|&v| v.unsigned_abs() > 1 << 24) {
                    bail!("integer comparison with values beyond 2^24");
                }
                let s = self.shape(*t);
                *t = self.g.const_f32(format!("{}::as_f32", node.name), s, &v)?;
            }
        }
        let (xs, ys) = (self.shape(x), self.shape(y));
        let os = broadcast_shape(&[&xs, &ys])?;
        let bc = make_bcast(&os, [&xs, &ys])?;
        let o = self.new_out(node, 0, DType::Bool, os)?;
        self.g
            .emit(Op::Compare { op, bc }, &[Some(x), Some(y)], o, &node.name)
    }

    pub(super) fn logic(&mut self, node: &pb::NodeProto) -> Result<()> {
        let x = self.inp(node, 0)?;
        if node.op_type == "Not" {
            let xs = self.shape(x);
            let bc = make_bcast(&xs, [&xs, &xs])?;
            let o = self.new_out(node, 0, DType::Bool, xs)?;
            return self
                .g
                .emit(Op::Logic { kind: 3, bc }, &[Some(x)], o, &node.name);
        }
        let y = self.inp(node, 1)?;
        let kind = match node.op_type.as_str() {
            "And" => 0,
            "Or" => 1,
            _ => 2,
        };
        let (xs, ys) = (self.shape(x), self.shape(y));
        let os = broadcast_shape(&[&xs, &ys])?;
        let bc = make_bcast(&os, [&xs, &ys])?;
        let o = self.new_out(node, 0, DType::Bool, os)?;
        self.g
            .emit(Op::Logic { kind, bc }, &[Some(x), Some(y)], o, &node.name)
    }
}
