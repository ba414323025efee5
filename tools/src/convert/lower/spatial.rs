//! Lowering of windowed ONNX ops: Conv, pooling, BatchNormalization, nearest Resize.

use super::*;

impl Lowerer {
    /// Spatial attributes of Conv and pooling: (kernel, strides, dilations, pads_begin, pads_end).
    pub(super) fn spatial(
        &self,
        a: &Attrs<'_>,
        in_sp: &[usize],
        kernel: &[usize],
    ) -> Result<Spatial> {
        let r = in_sp.len();
        let strides: Vec<usize> = a
            .ints("strides")
            .map(|v| v.iter().map(|&x| x as usize).collect())
            .unwrap_or(vec![1; r]);
        let dil: Vec<usize> = a
            .ints("dilations")
            .map(|v| v.iter().map(|&x| x as usize).collect())
            .unwrap_or(vec![1; r]);
        if strides.len() != r || dil.len() != r || strides.contains(&0) || dil.contains(&0) {
            bail!("bad strides/dilations");
        }
        let auto = a.string("auto_pad").unwrap_or_else(|| "NOTSET".into());
        let ceil = a.int_or("ceil_mode", 0) != 0;
        let (mut pb_, mut pe) = (vec![0usize; r], vec![0usize; r]);
        match auto.as_str() {
            "NOTSET" => {
                if let Some(p) = a.ints("pads") {
                    if p.len() != 2 * r || p.iter().any(|&v| v < 0) {
                        bail!("bad pads {p:?}");
                    }
                    for k in 0..r {
                        pb_[k] = p[k] as usize;
                        pe[k] = p[k + r] as usize;
                    }
                }
            }
            "VALID" => {}
            "SAME_UPPER" | "SAME_LOWER" => {
                for k in 0..r {
                    let out = in_sp[k].div_ceil(strides[k]);
                    let need = ((out - 1) * strides[k] + (kernel[k] - 1) * dil[k] + 1)
                        .saturating_sub(in_sp[k]);
                    let small = need / 2;
                    if auto == "SAME_UPPER" {
                        pb_[k] = small;
                        pe[k] = need - small;
                    } else {
                        pe[k] = small;
                        pb_[k] = need - small;
                    }
                }
            }
            other => bail!("auto_pad {other} is not supported"),
        }
        let mut out = vec![];
        for k in 0..r {
            let span = (kernel[k] - 1) * dil[k] + 1;
            let padded = in_sp[k] + pb_[k] + pe[k];
            if padded < span {
                bail!("window larger than the padded input");
            }
            let o = if ceil {
                let mut o = (padded - span).div_ceil(strides[k]) + 1;
                // The last window must start inside the input or left padding (ONNX rule).
                if (o - 1) * strides[k] >= in_sp[k] + pb_[k] {
                    o -= 1;
                }
                o
            } else {
                (padded - span) / strides[k] + 1
            };
            out.push(o);
        }
        Ok((out, strides, dil, pb_))
    }

    pub(super) fn conv(&mut self, node: &pb::NodeProto, a: &Attrs<'_>) -> Result<()> {
        let (x, w) = (self.inp(node, 0)?, self.inp(node, 1)?);
        let b = self.opt(node, 2)?;
        let (xs, ws) = (self.shape(x), self.shape(w));
        if !(xs.len() == 3 || xs.len() == 4) || ws.len() != xs.len() {
            bail!(
                "only 1-D and 2-D convolutions are supported (input rank {})",
                xs.len()
            );
        }
        let groups = a.int_or("group", 1) as usize;
        let sp = &xs[2..];
        let ks = &ws[2..];
        if let Some(k) = a.ints("kernel_shape") {
            if k.iter().map(|&v| v as usize).collect::<Vec<_>>() != ks {
                bail!("kernel_shape disagrees with the weight shape");
            }
        }
        if groups == 0 || xs[1] != ws[1] * groups {
            bail!(
                "input channels {} != weight channels {} x groups {groups}",
                xs[1],
                ws[1]
            );
        }
        let (out_sp, st, dil, pads) = self.spatial(a, sp, ks)?;
        let one_d = xs.len() == 3;
        let g = Conv2dGeom {
            n: xs[0],
            c_in: xs[1],
            h_in: if one_d { 1 } else { sp[0] },
            w_in: *sp.last().unwrap_or(&1),
            c_out: ws[0],
            h_out: if one_d { 1 } else { out_sp[0] },
            w_out: *out_sp.last().unwrap_or(&1),
            kh: if one_d { 1 } else { ks[0] },
            kw: *ks.last().unwrap_or(&1),
            stride_h: if one_d { 1 } else { st[0] },
            stride_w: *st.last().unwrap_or(&1),
            dil_h: if one_d { 1 } else { dil[0] },
            dil_w: *dil.last().unwrap_or(&1),
            pad_top: if one_d { 0 } else { pads[0] },
            pad_left: *pads.last().unwrap_or(&0),
            groups,
        };
        let mut os = vec![xs[0], ws[0]];
        os.extend(&out_sp);
        let o = self.new_out(node, 0, DType::F32, os)?;
        self.g.emit(
            Op::Conv2d {
                g,
                act: Activation::None,
            },
            &[Some(x), Some(w), b],
            o,
            &node.name,
        )
    }

    pub(super) fn batchnorm(&mut self, node: &pb::NodeProto, a: &Attrs<'_>) -> Result<()> {
        self.only_outputs(node, 1)?;
        if a.int_or("training_mode", 0) != 0 {
            bail!("BatchNormalization in training mode");
        }
        let x = self.inp(node, 0)?;
        let xs = self.shape(x);
        let eps = a.float_or("epsilon", 1e-5);
        let v: Vec<Vec<f32>> = (1..5)
            .map(|i| self.floats(self.inp(node, i)?))
            .collect::<Result<_>>()?;
        let c = *xs
            .get(1)
            .ok_or_else(|| anyhow!("BatchNormalization needs rank >= 2"))?;
        if v.iter().any(|p| p.len() != c) {
            bail!("BatchNormalization parameters must have {c} elements");
        }
        // y = (x - mean) / sqrt(var + eps) * gamma + beta = x * s + (beta - mean * s)
        let s: Vec<f32> = (0..c)
            .map(|i| v[0][i] / (v[3][i] as f64 + eps as f64).sqrt() as f32)
            .collect();
        let bias: Vec<f32> = (0..c).map(|i| v[1][i] - v[2][i] * s[i]).collect();
        let st = self
            .g
            .const_f32(format!("{}::scale", node.name), vec![c], &s)?;
        let bt = self
            .g
            .const_f32(format!("{}::bias", node.name), vec![c], &bias)?;
        let op = Op::ChannelAffine {
            outer: xs[0],
            c,
            inner: xs[2..].iter().product(),
        };
        let o = self.new_out(node, 0, DType::F32, xs)?;
        self.g
            .emit(op, &[Some(x), Some(st), Some(bt)], o, &node.name)
    }

    pub(super) fn pool(&mut self, node: &pb::NodeProto, a: &Attrs<'_>) -> Result<()> {
        self.only_outputs(node, 1)?;
        let x = self.inp(node, 0)?;
        let xs = self.shape(x);
        if !(xs.len() == 3 || xs.len() == 4) {
            bail!("only 1-D and 2-D pooling is supported");
        }
        let ks: Vec<usize> = a
            .ints("kernel_shape")
            .ok_or_else(|| anyhow!("pool without kernel_shape"))?
            .iter()
            .map(|&v| v as usize)
            .collect();
        let sp = &xs[2..];
        if ks.len() != sp.len() || ks.contains(&0) {
            bail!("bad kernel_shape");
        }
        let (out_sp, st, dil, pads) = self.spatial(a, sp, &ks)?;
        let one_d = xs.len() == 3;
        let g = Pool2dGeom {
            planes: xs[0] * xs[1],
            h_in: if one_d { 1 } else { sp[0] },
            w_in: sp[sp.len() - 1],
            h_out: if one_d { 1 } else { out_sp[0] },
            w_out: out_sp[out_sp.len() - 1],
            kh: if one_d { 1 } else { ks[0] },
            kw: ks[ks.len() - 1],
            stride_h: if one_d { 1 } else { st[0] },
            stride_w: st[st.len() - 1],
            dil_h: if one_d { 1 } else { dil[0] },
            dil_w: dil[dil.len() - 1],
            pad_top: if one_d { 0 } else { pads[0] },
            pad_left: pads[pads.len() - 1],
        };
        let kind = if node.op_type == "MaxPool" {
            PoolKind::Max
        } else {
            let cip = a.int_or("count_include_pad", 0) != 0;
            if cip && a.int_or("ceil_mode", 0) != 0 {
                bail!("AveragePool with count_include_pad and ceil_mode together is not supported");
            }
            PoolKind::Avg {
                count_include_pad: cip,
            }
        };
        let mut os = vec![xs[0], xs[1]];
        os.extend(&out_sp);
        let o = self.new_out(node, 0, DType::F32, os)?;
        self.g
            .emit(Op::Pool2d { kind, g }, &[Some(x)], o, &node.name)
    }
    /// Nearest-neighbour Resize/Upsample: one constant-index Gather per resized axis, with the
    /// source index of every output position computed by the ONNX coordinate rules (in f32, as
    /// onnxruntime does). Linear and cubic modes are refused.
    pub(super) fn resize(&mut self, node: &pb::NodeProto, a: &Attrs<'_>) -> Result<()> {
        let x = self.inp(node, 0)?;
        let xs = self.shape(x);
        let mode = a.string("mode").unwrap_or_else(|| "nearest".into());
        if mode != "nearest" {
            bail!(
                "{} mode {mode:?} is not supported (only nearest)",
                node.op_type
            );
        }
        if a.int_or("antialias", 0) != 0 || a.ints("axes").is_some() {
            bail!("Resize with antialias or axes is not supported");
        }
        // Scales / sizes: Upsample and opset-10 Resize take scales as input 1; later Resize
        // takes (roi, scales, sizes) as inputs 1..3.
        let (scales, sizes) = if node.op_type == "Upsample" || self.opset < 11 {
            match self.opt(node, 1)? {
                Some(t) => (Some(self.floats(t)?), None),
                None => (
                    a.ints("scales")
                        .map(|v| v.iter().map(|&x| x as f32).collect()),
                    None,
                ),
            }
        } else {
            let sc = match self.opt(node, 2)? {
                Some(t) if self.g.tensors[t].elems() > 0 => Some(self.floats(t)?),
                _ => None,
            };
            let sz = match self.opt(node, 3)? {
                Some(t) if self.g.tensors[t].elems() > 0 => Some(self.ints(t)?),
                _ => None,
            };
            (sc, sz)
        };
        let r = xs.len();
        let (out, scale): (Vec<usize>, Vec<f32>) = match (scales, sizes) {
            (_, Some(sz)) if sz.len() == r => {
                let o: Vec<usize> = sz.iter().map(|&v| v.max(0) as usize).collect();
                let sc = o
                    .iter()
                    .zip(&xs)
                    .map(|(&o, &i)| o as f32 / i.max(1) as f32)
                    .collect();
                (o, sc)
            }
            (Some(sc), _) if sc.len() == r => {
                let o = sc
                    .iter()
                    .zip(&xs)
                    .map(|(&s, &i)| (i as f32 * s).floor().max(0.0) as usize)
                    .collect();
                (o, sc)
            }
            _ => bail!("{} needs scales or sizes for all {r} axes", node.op_type),
        };
        let ctm = a
            .string("coordinate_transformation_mode")
            .unwrap_or_else(|| {
                if node.op_type == "Upsample" || self.opset < 11 {
                    "asymmetric".into()
                } else {
                    "half_pixel".into()
                }
            });
        let legacy = node.op_type == "Upsample" || self.opset < 11;
        let nearest = a.string("nearest_mode").unwrap_or_else(|| {
            if legacy {
                "floor".into()
            } else {
                "round_prefer_floor".into()
            }
        });
        let mut cur = x;
        for k in 0..r {
            if out[k] == xs[k] && scale[k] == 1.0 {
                continue;
            }
            let (len_in, len_out, s) = (xs[k], out[k], scale[k]);
            let mut idx = Vec::with_capacity(len_out);
            for i in 0..len_out {
                let xi = i as f32;
                let orig = match ctm.as_str() {
                    "half_pixel" => (xi + 0.5) / s - 0.5,
                    "pytorch_half_pixel" => {
                        if len_out > 1 {
                            (xi + 0.5) / s - 0.5
                        } else {
                            0.0
                        }
                    }
                    "align_corners" => {
                        if len_out > 1 {
                            xi * (len_in as f32 - 1.0) / (len_out as f32 - 1.0)
                        } else {
                            0.0
                        }
                    }
                    "asymmetric" => xi / s,
                    "tf_half_pixel_for_nn" => (xi + 0.5) / s,
                    m => bail!("coordinate_transformation_mode {m:?} is not supported"),
                };
                let v = match nearest.as_str() {
                    "round_prefer_floor" => {
                        if orig.fract() == 0.5 || orig.fract() == -0.5 {
                            orig.floor()
                        } else {
                            orig.round()
                        }
                    }
                    "round_prefer_ceil" => {
                        if orig.fract() == 0.5 || orig.fract() == -0.5 {
                            orig.ceil()
                        } else {
                            orig.round()
                        }
                    }
                    "floor" => orig.floor(),
                    "ceil" => orig.ceil(),
                    m => bail!("nearest_mode {m:?} is not supported"),
                };
                idx.push((v.max(0.0) as i64).min(len_in as i64 - 1).max(0));
            }
            let it = self.g.add_const(
                format!("{}::idx{k}", node.name),
                DType::I64,
                vec![len_out],
                Data::from_i64(&idx),
            )?;
            let cs = self.shape(cur);
            let mut os = cs.clone();
            os[k] = len_out;
            let op = Op::Gather {
                outer: cs[..k].iter().product(),
                axis: cs[k],
                inner: cs[k + 1..].iter().product(),
            };
            let last = (k + 1..r).all(|j| out[j] == xs[j] && scale[j] == 1.0);
            let o = if last {
                self.new_out(node, 0, self.dtype(x), os)?
            } else {
                self.tmp(node, "resized", self.dtype(x), os)
            };
            self.g.emit(op, &[Some(cur), Some(it)], o, &node.name)?;
            cur = o;
        }
        if cur == x {
            return self.set_out(node, 0, x);
        }
        Ok(())
    }
}
