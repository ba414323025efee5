//! `mote convert`: ONNX -> lowered steps -> passes -> memory plan -> `.mote` bytes.

pub mod chanmix;
pub mod fp16;
pub mod ir;
pub mod lower;
pub mod onnx;
pub mod pack;
pub mod passes;
pub mod plan;
pub mod quant;
pub mod write;

use anyhow::{Context, Result};
use mote::ops::Op;
use std::path::Path;

/// What a conversion produced, for reporting.
#[derive(Debug)]
pub struct Converted {
    /// The `.mote` file.
    pub bytes: Vec<u8>,
    /// ONNX nodes in the source graph.
    pub onnx_nodes: usize,
    /// Steps in the converted model.
    pub steps: usize,
    /// What int8 quantization did (`--quant int8`).
    pub int8: Option<quant::Report>,
    /// The weight precision the file got (the `--quant` asked for, or the profile's default).
    pub quant: Quant,
    /// What the fp16 pass changed (`Quant::Fp16` only).
    pub fp16: Option<fp16::Fp16Report>,
}

/// Weight precision of a conversion (`mote convert --quant`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Quant {
    /// Every weight in f32.
    F32,
    /// The large weights (GEMM convolutions, MatMul/Gemm constants) in IEEE binary16,
    /// widened to f32 as the kernels load them.
    Fp16,
    /// Post-training int8 quantization (needs calibration data).
    Int8,
}

impl Quant {
    /// The name `--quant` takes.
    pub fn name(self) -> &'static str {
        match self {
            Quant::F32 => "f32",
            Quant::Fp16 => "fp16",
            Quant::Int8 => "int8",
        }
    }

    /// The precision a profile gets when `--quant` is not given.
    pub fn default_for(profile: &mote_targets::profile::Profile) -> Quant {
        match profile.weights {
            mote_targets::profile::WeightPrecision::F32 => Quant::F32,
            mote_targets::profile::WeightPrecision::F16 => Quant::Fp16,
        }
    }
}

/// Options for [`convert`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Target profile name (see `mote_targets::profile`).
    pub target: String,
    /// Run the fusion passes.
    pub optimize: bool,
    /// Shapes for graph inputs, by name (the CLI's `--input-shape NAME=D0,D1,...`): each
    /// replaces the declared shape of that input, fixing its dynamic dimensions. It must have
    /// the declared rank and agree with every declared static dimension.
    pub input_shapes: Vec<(String, Vec<usize>)>,
    /// Fuse chains of element-wise steps into `Elementwise` programs (with `optimize`).
    pub fuse_elementwise: bool,
    /// Weight precision; `None` takes the target profile's default (fp16 for `rpi5` and
    /// `jetson-orin`, f32 elsewhere).
    pub quant: Option<Quant>,
    /// Calibration for `--quant int8` (ignored otherwise; `--calibrate` without int8 is refused).
    pub int8: quant::Int8Options,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            target: "generic".into(),
            optimize: true,
            input_shapes: vec![],
            fuse_elementwise: true,
            quant: None,
            int8: quant::Int8Options::default(),
        }
    }
}

/// Parses an input-shape override `NAME=D0,D1,...` (as `--input-shape` takes it) into an
/// entry of [`Options::input_shapes`]. The name is everything before the last `=`.
pub fn parse_input_shape(spec: &str) -> Result<(String, Vec<usize>)> {
    let (name, dims) = spec
        .rsplit_once('=')
        .filter(|(n, _)| !n.is_empty())
        .with_context(|| format!("{spec:?} is not NAME=D0,D1,... (e.g. image=1,3,224,224)"))?;
    let shape = dims
        .split(',')
        .map(|d| {
            d.trim()
                .parse::<usize>()
                .ok()
                .filter(|&x| x > 0)
                .with_context(|| {
                    format!(
                        "{spec:?}: {d:?} is not a dimension size (a positive integer; write NAME=D0,D1,...)"
                    )
                })
        })
        .collect::<Result<Vec<usize>>>()?;
    Ok((name.to_string(), shape))
}

/// Converts an ONNX file. An internal failure (a converter bug) is reported as an error, not a
/// crash.
pub fn convert(path: &Path, opts: &Options) -> Result<Converted> {
    match std::panic::catch_unwind(|| convert_inner(path, opts)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            anyhow::bail!(
                "internal converter error on {} ({msg}); please report it with the model",
                path.display()
            )
        }
    }
}

fn convert_inner(path: &Path, opts: &Options) -> Result<Converted> {
    let profile = if opts.target == "host" {
        Some(mote_targets::profile::host())
    } else {
        mote_targets::profile::find(&opts.target)
    };
    let profile = profile.with_context(|| {
        let names: Vec<&str> = mote_targets::profile::PROFILES
            .iter()
            .map(|p| p.name)
            .collect();
        format!(
            "unknown target {:?} (known: host, {})",
            opts.target,
            names.join(", ")
        )
    })?;
    let quant = opts.quant.unwrap_or_else(|| Quant::default_for(profile));
    let calibrate = match quant {
        Quant::Int8 => Some(quant::require_calibration(&opts.int8)?),
        _ if opts.int8.calibrate.is_some() => {
            anyhow::bail!(
                "--calibrate is for --quant int8 (this conversion is {})",
                quant.name()
            )
        }
        _ => None,
    };
    let proto = onnx::load_proto(path)?;
    let onnx_nodes = proto.graph.as_ref().map(|g| g.node.len()).unwrap_or(0);
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut g = lower::lower_model(&proto, dir, opts)?;
    log::info!("lowered {onnx_nodes} ONNX nodes to {} steps", g.steps.len());
    if opts.optimize {
        passes::optimize_with(&mut g, opts.fuse_elementwise)?;
        log::info!("{} steps after fusion", g.steps.len());
    }
    let mut int8 = None;
    if let Some(spec) = calibrate {
        quant::split_activations(&mut g)?;
        finalize_outputs(&mut g)?;
        let (samples, label) = quant::load_samples(&g, spec)?;
        let mut rep = quant::quantize(&mut g, &samples, opts.int8.estimator)?;
        rep.calibration = label;
        int8 = Some(rep);
    } else {
        finalize_outputs(&mut g)?;
    }
    if opts.optimize {
        plan::assign_in_place(&mut g);
    }
    let layout = pack::pack_weights(&mut g, profile.layout)?;
    let fp16 = match quant {
        Quant::Fp16 => {
            let r = fp16::weights_to_fp16(&mut g)?;
            log::info!(
                "fp16: {} weights converted ({} bytes saved), {} kept f32 (range or precision)",
                r.converted,
                r.bytes_saved,
                r.kept_f32
            );
            Some(r)
        }
        _ => None,
    };
    let plan = plan::plan(&g);
    let bytes = write::write(&g, &plan, layout)?;
    Ok(Converted {
        steps: g.steps.len(),
        bytes,
        onnx_nodes,
        int8,
        quant,
        fp16,
    })
}

/// Graph outputs must be arena tensors of their own: copy out constants, graph inputs, and
/// tensors that are also another output.
fn finalize_outputs(g: &mut ir::Graph) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for k in 0..g.outputs.len() {
        let t = g.outputs[k];
        let r = g.root(t);
        let needs_copy =
            g.is_const(t) || g.inputs.iter().any(|&i| g.root(i) == r) || !seen.insert(r);
        if needs_copy {
            let te = g.tensors[t].clone();
            let name = g.output_names.get(k).cloned().unwrap_or(te.name.clone());
            let o = g.add(format!("{name}::out"), te.dtype, te.shape.clone());
            let st: Vec<isize> = ir::strides_of(&te.shape)
                .iter()
                .map(|&s| s as isize)
                .collect();
            let op: Op = lower::make_copy(&te.shape, 0, &st, 0, &st)?;
            g.steps.push(ir::StepDesc {
                op,
                inputs: [Some(t), None, None, None],
                output: o,
                origin: "output copy".into(),
            });
            g.outputs[k] = o;
            seen.insert(o);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_input_shape;

    #[test]
    fn input_shape_specs_parse() {
        assert_eq!(
            parse_input_shape("image=1,3,224,224").unwrap(),
            ("image".to_string(), vec![1, 3, 224, 224])
        );
        assert_eq!(
            parse_input_shape("a=b=2, 5").unwrap(),
            ("a=b".to_string(), vec![2, 5])
        );
        for bad in ["image", "=1,2", "x=", "x=1,,2", "x=1,N", "x=0,3", "x=-1"] {
            assert!(parse_input_shape(bad).is_err(), "{bad} parsed");
        }
    }
}
