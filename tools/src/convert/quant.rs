//! Int8 post-training quantization (`mote convert --quant int8 --calibrate DATA`).
//!
//! The fp32 graph is written to a `.mote` in memory and run by mote's own session over the
//! calibration inputs; every step's output is read as it is produced
//! ([`mote::Session::run_inspected`]) into a per-tensor min/max and histogram. From those:
//!
//! * activations are per-tensor asymmetric `u8` (range from the chosen estimator, always
//!   including 0), weights per-output-channel symmetric `i8` in `[-127, 127]`, biases `i32` in
//!   the accumulator's scale (the contract of `mote_targets::q8`);
//! * convolutions (dense, pointwise, grouped; depthwise only with `INT8_DEPTHWISE`) and
//!   MatMul/Gemm with constant weights of at least [`MIN_MACS`] multiply-adds per output
//!   position and [`MIN_K`] per output value become `QConv2d`/`QMatMul`; a fused ReLU/clip
//!   becomes the `u8` output bounds; an f32-output int8 layer applies the SiLU/GELU/sigmoid
//!   that follows it itself;
//! * everything else stays f32, with `Quantize`/`Dequantize` steps where an int8 layer meets
//!   an f32 one; consecutive int8 layers pass `u8` directly.

use super::ir::{Data, Graph, TId};
use super::{pack, plan, write};
use anyhow::{anyhow, bail, Context, Result};
use mote::ops::{q_depthwise, MatMulGeom, Op, QOut, QParams};
use mote::DType;
use mote_targets::q8;
use mote_targets::{Activation, Conv2dGeom, UnaryOp};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// Layers with fewer multiply-adds per output position (pixel or row: `k × output channels`)
/// stay f32: the quantize/dequantize steps around them would cost more than the int8 GEMM
/// saves, and tiny reductions lose the most accuracy.
pub const MIN_MACS: usize = 256;

/// Layers whose outputs each reduce fewer values (a channel mix: a grouped 1x1 conv with 2
/// channels per group has many outputs but 2 products each) stay f32 for the same reason.
pub const MIN_K: usize = 4;

/// Whether depthwise convolutions become `QConv2d`. Off: the int8 depthwise kernels multiply in
/// `i32` lanes (16 per AVX-512 vector, as many as f32 FMA), so they are no faster than the f32
/// kernels, and the quantize/dequantize steps around them cost extra (measured on EMOv2-1M:
/// 15 int8 depthwise steps 10.0 ms against 2.9 ms in f32, `mote bench --profile`).
const INT8_DEPTHWISE: bool = false;

/// Calibration inputs per run of `--calibrate random` when no count is given.
pub const RANDOM_SAMPLES: usize = 32;

const BINS: usize = 2048;

/// How an activation's range is chosen from its calibration values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Estimator {
    /// The observed minimum and maximum.
    MinMax,
    /// The 0.01 % and 99.99 % quantiles (clips rare outliers).
    #[default]
    Percentile,
    /// The range (observed range shrunk by a factor) minimising the expected squared error
    /// of quantizing the observed values.
    Mse,
}

impl Estimator {
    /// Parses `minmax`, `percentile` or `mse`.
    pub fn parse(s: &str) -> Result<Estimator> {
        Ok(match s {
            "minmax" => Estimator::MinMax,
            "percentile" => Estimator::Percentile,
            "mse" => Estimator::Mse,
            _ => bail!("unknown calibration estimator {s:?} (use minmax, percentile or mse)"),
        })
    }
}

/// What `--quant int8` was given.
#[derive(Clone, Debug, Default)]
pub struct Int8Options {
    /// `--calibrate`: an `.npy` stack, a folder of `.npy` files, a folder per input, or
    /// `random[:N]` (testing only). `None` refuses the conversion with a message.
    pub calibrate: Option<String>,
    /// `--calib`.
    pub estimator: Estimator,
}

/// What quantization did, for the command line.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Where the calibration inputs came from.
    pub calibration: String,
    /// Calibration inputs run.
    pub samples: usize,
    /// Layers now int8 (ONNX node names).
    pub int8: Vec<String>,
    /// Conv/MatMul layers that stayed f32, and why.
    pub kept_f32: Vec<(String, String)>,
    /// Quantize and Dequantize steps added.
    pub converts: (usize, usize),
}

/// Calibration inputs: `samples[s][i]` is input `i` of sample `s`.
pub type Samples = Vec<Vec<Vec<f32>>>;

/// Loads calibration inputs for the graph's inputs.
pub fn load_samples(g: &Graph, spec: &str) -> Result<(Samples, String)> {
    let ins: Vec<(String, Vec<usize>, DType)> = g
        .inputs
        .iter()
        .map(|&t| {
            let te = &g.tensors[t];
            (te.name.clone(), te.shape.clone(), te.dtype)
        })
        .collect();
    if let Some((name, _, d)) = ins.iter().find(|x| x.2 != DType::F32) {
        bail!(
            "int8 calibration needs float32 graph inputs; input {name:?} is {}",
            d.name()
        );
    }
    if let Some(rest) = spec.strip_prefix("random") {
        let n = match rest.strip_prefix(':') {
            Some(c) => c
                .parse::<usize>()
                .ok()
                .filter(|&n| n > 0)
                .with_context(|| format!("--calibrate {spec}: {c:?} is not a sample count"))?,
            None if rest.is_empty() => RANDOM_SAMPLES,
            None => bail!("--calibrate {spec:?}: write random or random:N"),
        };
        let mut rng = Normal::new(0x6d6f7465);
        let s = (0..n)
            .map(|_| {
                ins.iter()
                    .map(|(_, shape, _)| (0..shape.iter().product()).map(|_| rng.next()).collect())
                    .collect()
            })
            .collect();
        return Ok((
            s,
            format!("random normal inputs ({n}, seeded) — FOR TESTING ONLY, not real data"),
        ));
    }
    let path = Path::new(spec);
    let per_input = |p: &Path, shape: &[usize]| -> Result<Vec<Vec<f32>>> {
        let elems: usize = shape.iter().product();
        if p.is_dir() {
            let mut files: Vec<_> = std::fs::read_dir(p)
                .with_context(|| format!("cannot read {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "npy"))
                .collect();
            files.sort();
            if files.is_empty() {
                bail!("{} holds no .npy files", p.display());
            }
            files
                .iter()
                .map(|f| {
                    let a = crate::npy::read(f)?;
                    let v = f32_data(&a).with_context(|| format!("in {}", f.display()))?;
                    if v.len() != elems {
                        bail!(
                            "{}: {} values, the input {:?} takes {elems}",
                            f.display(),
                            v.len(),
                            shape
                        );
                    }
                    Ok(v)
                })
                .collect()
        } else {
            let a = crate::npy::read(p)?;
            let v = f32_data(&a).with_context(|| format!("in {}", p.display()))?;
            if elems == 0 || v.len() % elems != 0 || a.shape.is_empty() {
                bail!(
                    "{}: shape {:?} is not a stack [N, ...] of inputs shaped {:?}",
                    p.display(),
                    a.shape,
                    shape
                );
            }
            Ok(v.chunks(elems).map(|c| c.to_vec()).collect())
        }
    };
    let cols: Vec<Vec<Vec<f32>>> = if ins.len() == 1 {
        vec![per_input(path, &ins[0].1)?]
    } else {
        if !path.is_dir() {
            bail!(
                "the model has {} inputs: --calibrate takes a folder with one subfolder (or \
                 .npy stack) per input name",
                ins.len()
            );
        }
        ins.iter()
            .map(|(name, shape, _)| {
                let dir = path.join(name);
                let stack = path.join(format!("{name}.npy"));
                let p = if dir.exists() { dir } else { stack };
                per_input(&p, shape).with_context(|| format!("calibration data of {name:?}"))
            })
            .collect::<Result<_>>()?
    };
    let n = cols.iter().map(|c| c.len()).min().unwrap_or(0);
    if n == 0 || cols.iter().any(|c| c.len() != n) {
        bail!("calibration data: every input needs the same non-zero number of samples");
    }
    let mut s: Samples = vec![vec![]; n];
    for c in cols {
        for (k, v) in c.into_iter().enumerate() {
            s[k].push(v);
        }
    }
    Ok((s, format!("{spec} ({n} samples)")))
}

fn f32_data(a: &crate::npy::Array) -> Result<Vec<f32>> {
    if a.dtype != DType::F32 {
        bail!("calibration data must be float32 (or float64)");
    }
    Ok(mote::view::cast::<f32>(Data::from_bytes(&a.data).bytes())?.to_vec())
}

/// A seeded standard-normal generator (xorshift64* and Box–Muller): calibration and tests do
/// not depend on a random-number crate.
#[derive(Debug, Clone)]
pub struct Normal {
    s: u64,
    spare: Option<f32>,
}

impl Normal {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Normal {
        Normal {
            s: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
            spare: None,
        }
    }
    fn uniform(&mut self) -> f64 {
        self.s ^= self.s >> 12;
        self.s ^= self.s << 25;
        self.s ^= self.s >> 27;
        let v = self.s.wrapping_mul(0x2545_f491_4f6c_dd1d);
        ((v >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    /// The next value.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> f32 {
        if let Some(v) = self.spare.take() {
            return v;
        }
        let (u1, u2) = (self.uniform(), self.uniform());
        let r = (-2.0 * u1.ln()).sqrt();
        let t = 2.0 * std::f64::consts::PI * u2;
        self.spare = Some((r * t.sin()) as f32);
        (r * t.cos()) as f32
    }
}

/// One candidate int8 layer.
#[derive(Clone, Debug)]
struct Layer {
    x: TId,
    y: TId,
    kind: LayerKind,
    /// Rows of the int8 weight: one per output channel, `k` values each (f32, alpha folded).
    rows: Vec<Vec<f32>>,
    bias: Vec<f32>,
    act: Activation,
}

#[derive(Clone, Copy, Debug)]
enum LayerKind {
    Conv(Conv2dGeom),
    MatMul {
        p: usize,
        n: usize,
        k: usize,
        a_rs: usize,
        a_cs: usize,
    },
}

/// Rows of A and their stride when the batch dims collapse into one uniformly strided row
/// axis and B is shared by every batch (a constant weight).
fn matmul_rows(m: &MatMulGeom) -> Option<(usize, usize)> {
    let mut rows = m.m;
    let mut stride = (m.m > 1).then_some(m.a_rs);
    for d in (0..m.batch_rank).rev() {
        if m.batch[d] == 1 {
            continue;
        }
        let s = stride.unwrap_or(m.a_bs[d]);
        if m.b_bs[d] != 0 || m.a_bs[d] != rows * s {
            return None;
        }
        stride = Some(s);
        rows *= m.batch[d];
    }
    Some((rows, stride.unwrap_or(m.a_rs)))
}

fn candidate(g: &Graph, i: usize) -> Result<Option<Layer>, String> {
    let s = &g.steps[i];
    let w = s.inputs[1].ok_or("no weight")?;
    if !g.is_const(w) {
        return Err("weights are computed at run time".into());
    }
    let bias = match s.inputs[2] {
        Some(b) if !g.is_const(b) => return Err("bias is computed at run time".into()),
        Some(b) => Some(g.f32_values(b).map_err(|e| e.to_string())?),
        None => None,
    };
    let x = s.inputs[0].ok_or("no input")?;
    if g.tensors[x].dtype != DType::F32 {
        return Err("input is not float32".into());
    }
    let wv = g.f32_values(w).map_err(|e| e.to_string())?;
    let (kind, rows, act, macs, outs) = match s.op {
        Op::Conv2d { g: geom, act } => {
            if q_depthwise(&geom) && !INT8_DEPTHWISE {
                return Err(
                    "depthwise: the f32 kernel is faster than the int8 one (i32 products, \
                            no dot-product instruction applies to a single-channel window)"
                        .into(),
                );
            }
            let k = geom.c_in / geom.groups * geom.kh * geom.kw;
            let rows: Vec<Vec<f32>> = wv.chunks(k.max(1)).map(|c| c.to_vec()).collect();
            (LayerKind::Conv(geom), rows, act, k * geom.c_out, geom.c_out)
        }
        Op::MatMul(m) => {
            let (p, a_rs) = matmul_rows(&m).ok_or("batched operands do not collapse into rows")?;
            let rows: Vec<Vec<f32>> = (0..m.n)
                .map(|j| {
                    (0..m.k)
                        .map(|c| wv[c * m.b_rs + j * m.b_cs] * m.alpha)
                        .collect()
                })
                .collect();
            let kind = LayerKind::MatMul {
                p,
                n: m.n,
                k: m.k,
                a_rs,
                a_cs: m.a_cs,
            };
            (kind, rows, m.act, m.k * m.n, m.n)
        }
        _ => return Ok(None),
    };
    let k = rows.first().map_or(0, |r| r.len());
    if k > q8::MAX_QK {
        return Err(format!(
            "reduction of {k} exceeds the int8 kernels' {}",
            q8::MAX_QK
        ));
    }
    if macs < MIN_MACS || k < MIN_K {
        return Err(format!(
            "{macs} multiply-adds per output position, {k} per output value (int8 needs \
             {MIN_MACS} and {MIN_K}): the quantize and dequantize steps around it would cost \
             more than the int8 products save"
        ));
    }
    let bias = bias.unwrap_or_else(|| vec![0.0; outs]);
    Ok(Some(Layer {
        x,
        y: s.output,
        kind,
        rows,
        bias,
        act,
    }))
}

/// Steps whose result jumps on small input changes (the hash/sign path of binary
/// attention): their producers stay f32.
fn discontinuous(op: &Op) -> bool {
    matches!(
        op,
        Op::Unary {
            op: UnaryOp::Sign | UnaryOp::Floor | UnaryOp::Ceil | UnaryOp::Round
        } | Op::Compare { .. }
            | Op::ArgMax { .. }
    )
}

/// SiLU/GELU/sigmoid epilogues of layers that may go int8 become separate f32 steps, so that
/// calibration sees the layer's own output range.
pub fn split_activations(g: &mut Graph) -> Result<()> {
    // Only layers that may go int8: the others (depthwise, tiny, computed weights) keep their
    // activation fused in the f32 kernel's epilogue.
    let eligible: Vec<bool> = (0..g.steps.len())
        .map(|i| matches!(candidate(g, i), Ok(Some(_))))
        .collect();
    let steps = std::mem::take(&mut g.steps);
    for (mut s, eligible) in steps.into_iter().zip(eligible) {
        if !eligible {
            g.steps.push(s);
            continue;
        }
        let act = match &mut s.op {
            Op::Conv2d { act, .. } => act,
            Op::MatMul(m) => &mut m.act,
            _ => {
                g.steps.push(s);
                continue;
            }
        };
        let u = match *act {
            Activation::Sigmoid => UnaryOp::Sigmoid,
            Activation::Gelu => UnaryOp::Gelu,
            Activation::Silu => UnaryOp::Silu,
            _ => {
                g.steps.push(s);
                continue;
            }
        };
        *act = Activation::None;
        let y = s.output;
        let te = g.tensors[y].clone();
        let pre = g.add(format!("{}::pre_act", te.name), DType::F32, te.shape);
        s.output = pre;
        let origin = s.origin.clone();
        g.steps.push(s);
        g.emit(Op::Unary { op: u }, &[Some(pre)], y, &origin)?;
    }
    Ok(())
}

/// Per-tensor calibration statistics (by storage root).
#[derive(Clone, Debug)]
struct Stat {
    lo: f32,
    hi: f32,
    hist: Vec<u64>,
}

impl Stat {
    fn bin(&self, v: f32) -> usize {
        let w = (self.hi - self.lo) / BINS as f32;
        if w <= 0.0 {
            return 0;
        }
        (((v - self.lo) / w) as usize).min(BINS - 1)
    }
    fn observe_range(&mut self, v: &[f32]) {
        for &x in v {
            if x.is_finite() {
                self.lo = self.lo.min(x);
                self.hi = self.hi.max(x);
            }
        }
    }
    fn observe_hist(&mut self, v: &[f32]) {
        for &x in v {
            if x.is_finite() {
                let b = self.bin(x);
                self.hist[b] += 1;
            }
        }
    }
    /// The `(lo, hi)` range to quantize to, including 0.
    fn range(&self, e: Estimator) -> (f32, f32) {
        let total: u64 = self.hist.iter().sum();
        let w = (self.hi - self.lo) / BINS as f32;
        let edge = |b: usize| self.lo + w * b as f32;
        let (lo, hi) = match e {
            _ if total == 0 || w <= 0.0 => (self.lo, self.hi),
            Estimator::MinMax => (self.lo, self.hi),
            Estimator::Percentile => {
                let cut = (total as f64 * 1e-4) as u64;
                let (mut acc, mut a) = (0u64, 0usize);
                while a < BINS - 1 && acc + self.hist[a] <= cut {
                    acc += self.hist[a];
                    a += 1;
                }
                let (mut acc, mut b) = (0u64, BINS - 1);
                while b > 0 && acc + self.hist[b] <= cut {
                    acc += self.hist[b];
                    b -= 1;
                }
                (edge(a), edge(b + 1))
            }
            Estimator::Mse => {
                let (lo0, hi0) = (self.lo.min(0.0), self.hi.max(0.0));
                let mut best = (f64::INFINITY, lo0, hi0);
                for step in 0..=40 {
                    let f = 1.0 - step as f32 * 0.02;
                    let (lo, hi) = (lo0 * f, hi0 * f);
                    let (scale, zp) = qparams(lo, hi);
                    let mut err = 0f64;
                    for (b, &c) in self.hist.iter().enumerate() {
                        if c == 0 {
                            continue;
                        }
                        let v = edge(b) + 0.5 * w;
                        let r = q8::dequantize_one(q8::quantize_one(v, scale, zp), scale, zp);
                        err += c as f64 * ((v - r) as f64).powi(2);
                    }
                    if err < best.0 {
                        best = (err, lo, hi);
                    }
                }
                (best.1, best.2)
            }
        };
        (lo.min(0.0), hi.max(0.0))
    }
}

/// `(scale, zero point)` of the `u8` range covering `[lo, hi]` (`lo <= 0 <= hi`).
fn qparams(lo: f32, hi: f32) -> (f32, u8) {
    let scale = ((hi - lo) / 255.0).max(1e-8);
    let zp = (-lo / scale).round().clamp(0.0, 255.0) as u8;
    (scale, zp)
}

/// Runs the fp32 graph over `samples` and returns each f32 tensor's range (by root).
fn calibrate(g: &Graph, samples: &Samples, est: Estimator) -> Result<HashMap<TId, (f32, f32)>> {
    let mut c = g.clone();
    let layout = pack::pack_weights(&mut c, mote_targets::profile::LAYOUT_REFERENCE)?;
    let p = plan::plan(&c);
    let bytes = write::write(&c, &p, layout)?;
    let buf = mote::AlignedBytes::copy_from(&bytes);
    let model = mote::Model::from_bytes(buf.as_slice())
        .map_err(|e| anyhow!("internal: the fp32 calibration model does not validate: {e}"))?;
    let mut owned = mote::OwnedSession::new(&model)?;
    // Which step completes each root (several steps may write parts of one tensor).
    let mut last: HashMap<usize, TId> = HashMap::new();
    let mut done: HashMap<TId, usize> = HashMap::new();
    for (i, s) in c.steps.iter().enumerate() {
        done.insert(c.root(s.output), i);
    }
    for (&r, &i) in &done {
        if c.tensors[r].dtype == DType::F32 {
            last.insert(i, r);
        }
    }
    let mut stats: HashMap<TId, Stat> = HashMap::new();
    let new_stat = || Stat {
        lo: f32::INFINITY,
        hi: f32::NEG_INFINITY,
        hist: vec![0; BINS],
    };
    let bar = indicatif::ProgressBar::new(2 * samples.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("calibrating {bar:30} {pos}/{len} runs {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    for pass in 0..2 {
        for sample in samples {
            let mut sess = owned.session()?;
            for (k, v) in sample.iter().enumerate() {
                sess.set_input(k, v)?;
                let r = c.root(c.inputs[k]);
                let st = stats.entry(r).or_insert_with(new_stat);
                if pass == 0 {
                    st.observe_range(v);
                } else {
                    st.observe_hist(v);
                }
            }
            let mut err = None;
            sess.run_inspected(|i, _, _, bytes| {
                let Some(&r) = last.get(&i) else { return };
                match mote::view::cast::<f32>(bytes) {
                    Ok(v) => {
                        let st = stats.entry(r).or_insert_with(new_stat);
                        if pass == 0 {
                            st.observe_range(v);
                        } else {
                            st.observe_hist(v);
                        }
                    }
                    Err(e) => err = Some(e),
                }
            })?;
            if let Some(e) = err {
                bail!("internal: calibration read a misaligned tensor: {e}");
            }
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    Ok(stats
        .into_iter()
        .filter(|(_, s)| s.lo <= s.hi)
        .map(|(t, s)| (t, s.range(est)))
        .collect())
}

/// Per-output-channel symmetric `i8` weights and their scales.
fn quantize_rows(rows: &[Vec<f32>]) -> (Vec<Vec<i8>>, Vec<f32>) {
    rows.iter()
        .map(|r| {
            let amax = r.iter().fold(0f32, |a, &v| a.max(v.abs()));
            let s = if amax > 0.0 && amax.is_finite() {
                amax / 127.0
            } else {
                1.0
            };
            let q = r
                .iter()
                .map(|&v| (v / s).round().clamp(-127.0, 127.0) as i8)
                .collect();
            (q, s)
        })
        .unzip()
}

/// The quantized constants of one layer.
struct QLayer {
    weights: Vec<i8>,
    rq: Vec<u8>,
    q: QParams,
}

fn build(l: &Layer, sx: f32, x_zp: u8, out: Option<(f32, u8)>) -> Result<QLayer, String> {
    let (wq, ws) = quantize_rows(&l.rows);
    let c = wq.len();
    let k = l.rows.first().map_or(0, |r| r.len());
    let bias: Vec<i32> = l
        .bias
        .iter()
        .zip(&ws)
        .map(|(&b, &s)| (b as f64 / (sx as f64 * s as f64)).round().clamp(-2e9, 2e9) as i32)
        .collect();
    let mut rq: Vec<u8> = bias.iter().flat_map(|b| b.to_le_bytes()).collect();
    let q = match out {
        Some((sy, zp)) => {
            let mut mults = vec![];
            let mut shifts = vec![];
            for &s in &ws {
                let real = sx as f64 * s as f64 / sy as f64;
                let (m, sh) = q8::quantize_multiplier(real)
                    .ok_or_else(|| format!("requantization factor {real:e} is out of range"))?;
                mults.extend_from_slice(&m.to_le_bytes());
                shifts.push(sh as u8);
            }
            rq.extend(mults);
            rq.extend(shifts);
            let qv = |v: f32| q8::quantize_one(v, sy, zp);
            let (lo, hi) = match l.act {
                Activation::None => (0, 255),
                Activation::Relu => (zp, 255),
                Activation::Clip { lo, hi } => (qv(lo), qv(hi)),
                _ => return Err("internal: unsplit activation".into()),
            };
            if lo > hi {
                return Err("clip bounds are empty after quantization".into());
            }
            QParams {
                x_zp,
                out: QOut::U8 { zp, lo, hi },
            }
        }
        None => {
            for &s in &ws {
                rq.extend_from_slice(&(sx * s).to_le_bytes());
            }
            QParams {
                x_zp,
                out: QOut::F32 { act: l.act },
            }
        }
    };
    let flat: Vec<i8> = wq.concat();
    let weights = match l.kind {
        LayerKind::Conv(g) if q_depthwise(&g) => flat,
        LayerKind::Conv(g) => {
            let m = g.c_out / g.groups;
            let plen = q8::qgemm_packed_len(m, k);
            let mut out = vec![0i8; plen * g.groups];
            for grp in 0..g.groups {
                q8::pack_qgemm_weights(
                    &flat[grp * m * k..(grp + 1) * m * k],
                    m,
                    k,
                    &mut out[grp * plen..(grp + 1) * plen],
                );
            }
            out
        }
        LayerKind::MatMul { .. } => {
            let mut out = vec![0i8; q8::qgemm_packed_len(c, k)];
            q8::pack_qgemm_weights(&flat, c, k, &mut out);
            out
        }
    };
    Ok(QLayer { weights, rq, q })
}

/// Calibrates `g` (an optimized fp32 graph whose outputs are final) on `samples` and rewrites
/// its eligible layers to int8.
pub fn quantize(g: &mut Graph, samples: &Samples, est: Estimator) -> Result<Report> {
    let stats = calibrate(g, samples, est)?;
    let mut rep = Report {
        samples: samples.len(),
        ..Default::default()
    };
    // Writers and readers by storage root.
    let mut writers: HashMap<TId, usize> = HashMap::new();
    let mut readers: HashMap<TId, Vec<(usize, usize)>> = HashMap::new();
    for (i, s) in g.steps.iter().enumerate() {
        *writers.entry(g.root(s.output)).or_default() += 1;
        for (k, t) in s.inputs.iter().enumerate() {
            if let Some(t) = t {
                readers.entry(g.root(*t)).or_default().push((i, k));
            }
        }
    }
    let mut layers: HashMap<usize, Layer> = HashMap::new();
    for i in 0..g.steps.len() {
        let origin = g.steps[i].origin.clone();
        match candidate(g, i) {
            Ok(None) => {}
            Ok(Some(l)) => {
                let (rx, ry) = (g.root(l.x), g.root(l.y));
                if writers.get(&ry) != Some(&1) {
                    rep.kept_f32
                        .push((origin, "its output is assembled by several steps".into()));
                } else if readers
                    .get(&ry)
                    .is_some_and(|rd| rd.iter().any(|&(j, _)| discontinuous(&g.steps[j].op)))
                {
                    rep.kept_f32.push((
                        origin,
                        "a sign/compare/rounding step reads it (int8 noise would flip it)".into(),
                    ));
                } else if !stats.contains_key(&rx) || !stats.contains_key(&ry) {
                    rep.kept_f32
                        .push((origin, "no calibration values reached it".into()));
                } else {
                    layers.insert(i, l);
                }
            }
            Err(why) => rep.kept_f32.push((origin, why)),
        }
    }
    let out_roots: HashSet<TId> = g.outputs.iter().map(|&t| g.root(t)).collect();
    // Build every layer's constants; a layer whose requantization cannot be expressed stays
    // f32 (its neighbours then see an f32 tensor).
    let mut built: HashMap<usize, (QLayer, bool)> = HashMap::new();
    loop {
        built.clear();
        let mut dropped = None;
        let mut ids: Vec<usize> = layers.keys().copied().collect();
        ids.sort_unstable();
        for &i in &ids {
            let l = &layers[&i];
            let ry = g.root(l.y);
            let rd = readers.get(&ry).map(Vec::as_slice).unwrap_or(&[]);
            let int8_readers = rd.iter().any(|&(j, k)| k == 0 && layers.contains_key(&j));
            let f32_readers = out_roots.contains(&ry)
                || rd.iter().any(|&(j, k)| k != 0 || !layers.contains_key(&j));
            let dw = matches!(l.kind, LayerKind::Conv(geom) if q_depthwise(&geom));
            let u8_out = int8_readers || dw || !matches!(l.act, Activation::None);
            let (sx, x_zp) = {
                let (lo, hi) = stats[&g.root(l.x)];
                qparams(lo, hi)
            };
            let out = if u8_out {
                let (lo, hi) = stats[&ry];
                Some(qparams(lo, hi))
            } else {
                None
            };
            match build(l, sx, x_zp, out) {
                Ok(b) => {
                    built.insert(i, (b, u8_out && f32_readers));
                }
                Err(why) => {
                    dropped = Some((i, why));
                    break;
                }
            }
        }
        match dropped {
            Some((i, why)) => {
                layers.remove(&i);
                rep.kept_f32.push((g.steps[i].origin.clone(), why));
            }
            None => break,
        }
    }
    // An f32-output layer whose only reader is a SiLU/GELU/sigmoid step (the epilogue
    // `split_activations` took out for calibration) applies it itself and writes that step's
    // output: one pass over the tensor less (same kernel, same bits).
    // Layer -> the output it writes instead of its own; the activation steps it absorbed.
    let mut writes_to: HashMap<usize, TId> = HashMap::new();
    let mut absorbed: HashSet<usize> = HashSet::new();
    for (&i, (b, _)) in &mut built {
        let l = &layers[&i];
        let ry = g.root(l.y);
        let QOut::F32 {
            act: Activation::None,
        } = b.q.out
        else {
            continue;
        };
        let (Some(&[(j, 0)]), false) =
            (readers.get(&ry).map(Vec::as_slice), out_roots.contains(&ry))
        else {
            continue;
        };
        let act = match g.steps[j].op {
            Op::Unary { op: UnaryOp::Silu } => Activation::Silu,
            Op::Unary { op: UnaryOp::Gelu } => Activation::Gelu,
            Op::Unary {
                op: UnaryOp::Sigmoid,
            } => Activation::Sigmoid,
            Op::Unary { op: UnaryOp::Relu } => Activation::Relu,
            _ => continue,
        };
        let y = g.steps[j].output;
        if j <= i || g.tensors[y].shape != g.tensors[l.y].shape || g.tensors[y].dtype != DType::F32
        {
            continue;
        }
        b.q.out = QOut::F32 { act };
        writes_to.insert(i, y);
        absorbed.insert(j);
    }
    // Rewrite the step list.
    let old = std::mem::take(&mut g.steps);
    let mut qver: HashMap<TId, TId> = HashMap::new();
    for (i, s) in old.into_iter().enumerate() {
        let (Some(l), Some((b, dequant))) = (layers.get(&i), built.remove(&i)) else {
            // A fused activation step (its layer writes its output) goes away.
            if !absorbed.contains(&i) {
                g.steps.push(s);
            }
            continue;
        };
        let origin = s.origin.clone();
        let rx = g.root(l.x);
        let xshape = g.tensors[l.x].shape.clone();
        let xq = match qver.get(&rx) {
            Some(&t) if g.tensors[t].shape == xshape => t,
            Some(&t) => g.alias(format!("{}::q8", g.tensors[l.x].name), t, xshape)?,
            None => {
                let (lo, hi) = stats[&rx];
                let (scale, zp) = qparams(lo, hi);
                let t = g.add(format!("{}::q8", g.tensors[l.x].name), DType::U8, xshape);
                g.emit(Op::Quantize { scale, zp }, &[Some(l.x)], t, &origin)?;
                rep.converts.0 += 1;
                qver.insert(rx, t);
                t
            }
        };
        let op = match l.kind {
            LayerKind::Conv(geom) => Op::QConv2d { g: geom, q: b.q },
            LayerKind::MatMul {
                p,
                n,
                k,
                a_rs,
                a_cs,
            } => Op::QMatMul {
                p,
                n,
                k,
                a_rs,
                a_cs,
                q: b.q,
            },
        };
        let wname = format!("{}::w8", origin);
        let nw = b.weights.len();
        let wb: Vec<u8> = b.weights.iter().map(|&v| v as u8).collect();
        let w = g.add_const(wname, DType::I8, vec![nw], Data::from_bytes(&wb))?;
        let nrq = b.rq.len();
        let rq = g.add_const(
            format!("{origin}::rq"),
            DType::I8,
            vec![nrq],
            Data::from_bytes(&b.rq),
        )?;
        let scratch_len = op
            .q_scratch_len()
            .ok_or_else(|| anyhow!("{origin}: int8 geometry too large"))?;
        let scratch = (scratch_len > 0)
            .then(|| g.add(format!("{origin}::scratch"), DType::U8, vec![scratch_len]));
        let yshape = g.tensors[l.y].shape.clone();
        match b.q.out {
            QOut::U8 { .. } => {
                let yq = g.add(format!("{}::q8", g.tensors[l.y].name), DType::U8, yshape);
                g.emit(op, &[Some(xq), Some(w), Some(rq), scratch], yq, &origin)?;
                qver.insert(g.root(l.y), yq);
                let (lo, hi) = stats[&g.root(l.y)];
                let (scale, zp) = qparams(lo, hi);
                if dequant {
                    g.emit(Op::Dequantize { scale, zp }, &[Some(yq)], l.y, &origin)?;
                    rep.converts.1 += 1;
                }
            }
            QOut::F32 { .. } => {
                let y = writes_to.get(&i).copied().unwrap_or(l.y);
                g.emit(op, &[Some(xq), Some(w), Some(rq), scratch], y, &origin)?
            }
        }
        rep.int8.push(origin);
    }
    Ok(rep)
}

/// Checks the `--quant int8` options before any work: calibration data is required.
pub fn require_calibration(o: &Int8Options) -> Result<&str> {
    o.calibrate.as_deref().ok_or_else(|| {
        anyhow!(
            "--quant int8 needs calibration data: pass --calibrate DATA, where DATA is an .npy \
             stack [N, ...] of inputs, a folder of .npy files (one input each), or for a model \
             with several inputs a folder with one subfolder per input name; \
             --calibrate random[:N] calibrates on random normal inputs (for testing only)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimators_include_zero_and_clip_outliers() {
        let mut s = Stat {
            lo: f32::INFINITY,
            hi: f32::NEG_INFINITY,
            hist: vec![0; BINS],
        };
        let mut v: Vec<f32> = (0..100_000)
            .map(|i| (i % 1000) as f32 / 1000.0 + 1.0)
            .collect();
        v.push(100.0);
        s.observe_range(&v);
        s.observe_hist(&v);
        assert_eq!(s.range(Estimator::MinMax), (0.0, 100.0));
        let (lo, hi) = s.range(Estimator::Percentile);
        assert_eq!(lo, 0.0);
        assert!(hi < 3.0, "{hi}");
        let (_, hi) = s.range(Estimator::Mse);
        assert!(hi < 100.0);
    }

    #[test]
    fn normal_generator_is_standard() {
        let mut r = Normal::new(7);
        let v: Vec<f64> = (0..200_000).map(|_| r.next() as f64).collect();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
        assert!(
            mean.abs() < 0.01 && (var - 1.0).abs() < 0.02,
            "{mean} {var}"
        );
    }
}
