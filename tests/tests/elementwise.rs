//! `Elementwise` program steps: the converter's fusion changes no bit of any result (each
//! fixture converted with and without it, run on every kernel set this CPU has), fused chains
//! become the expected steps, and malformed program parameters are refused at load without a
//! panic.

use mote::ops::{code, Op, Operand, ParamReader};
use mote::{AlignedBytes, DType, Model};
use mote_tests::{available_isas, read_numbered, repo_root, run_model_isa};
use mote_tools::convert::{convert, Options};
use std::path::Path;

fn convert_with(onnx: &Path, fuse_elementwise: bool) -> AlignedBytes {
    let c = convert(
        onnx,
        &Options {
            fuse_elementwise,
            ..Options::default()
        },
    )
    .unwrap_or_else(|e| panic!("{}: {e:#}", onnx.display()));
    AlignedBytes::copy_from(&c.bytes)
}

fn step_names(m: &Model<'_>) -> Vec<&'static str> {
    (0..m.step_count())
        .map(|i| m.step(i).unwrap().op.name())
        .collect()
}

/// Converts `onnx` with and without the element-wise fusion, runs both on `inputs` with every
/// kernel set and asserts identical output bytes. Returns (steps fused, steps unfused).
fn assert_fusion_exact(
    name: &str,
    onnx: &Path,
    inputs: &[mote_tools::npy::Array],
) -> (usize, usize) {
    let fused = convert_with(onnx, true);
    let plain = convert_with(onnx, false);
    let mf = Model::from_bytes(fused.as_slice()).unwrap();
    let mp = Model::from_bytes(plain.as_slice()).unwrap();
    for isa in available_isas() {
        let a = run_model_isa(&mf, inputs, isa).unwrap();
        let b = run_model_isa(&mp, inputs, isa).unwrap();
        assert_eq!(a.len(), b.len());
        for (k, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!(
                x.data == y.data,
                "{name} on {}: output {k} differs with the element-wise fusion",
                isa.name()
            );
        }
    }
    (mf.step_count(), mp.step_count())
}

#[test]
fn fusion_is_bit_identical_on_every_op_fixture() {
    let dir = repo_root().join("tests/fixtures/ops");
    let cases = std::fs::read_to_string(dir.join("cases.txt")).unwrap();
    let (mut changed, mut saved) = (0, 0);
    for case in cases.lines().map(str::trim).filter(|c| !c.is_empty()) {
        let d = dir.join(case);
        let inputs = read_numbered(&d, "input").unwrap();
        let onnx = d.join("model.onnx");
        let (f, p) = assert_fusion_exact(case, &onnx, &inputs);
        assert!(f <= p, "{case}: {f} steps fused, {p} without");
        if f < p {
            changed += 1;
            saved += p - f;
        }
    }
    println!("{changed} op fixtures fused, {saved} steps fewer");
    assert!(changed >= 10, "only {changed} fixtures have a fused chain");
}

#[test]
fn fusion_is_bit_identical_on_the_zoo_models() {
    for (family, name) in [
        ("lmuformer", "lmuformer_spiking_step"),
        ("lmuformer", "lmuformer_step"),
        ("spartan", "spartan_tiny"),
        ("ecoformer", "ecoformer_tiny"),
        ("emov2", "emov2_tiny"),
        ("lmuformer", "lmuformer_seq"),
    ] {
        let dir = repo_root().join("models").join(family);
        let onnx = dir.join(format!("{name}.onnx"));
        let m = Model::from_bytes(convert_with(&onnx, false).as_slice())
            .map(|m| {
                (0..m.input_count())
                    .map(|i| m.input(i).unwrap())
                    .map(|t| (t.dtype, t.shape().to_vec()))
                    .collect::<Vec<_>>()
            })
            .unwrap();
        // Deterministic inputs of the model's own shapes: features in [-2, 2), masks all
        // true, so the spiking neurons fire and reset.
        let mut seed = 0x9e37_79b9u32;
        let inputs: Vec<mote_tools::npy::Array> = m
            .iter()
            .map(|(dt, shape)| {
                let n: usize = shape.iter().product();
                let data = match dt {
                    DType::F32 => (0..n)
                        .flat_map(|_| {
                            seed ^= seed << 13;
                            seed ^= seed >> 17;
                            seed ^= seed << 5;
                            ((seed >> 8) as f32 / (1 << 24) as f32 * 4.0 - 2.0).to_le_bytes()
                        })
                        .collect(),
                    DType::Bool => vec![1u8; n],
                    other => panic!("{name}: input dtype {other:?}"),
                };
                mote_tools::npy::Array {
                    dtype: *dt,
                    shape: shape.clone(),
                    data,
                }
            })
            .collect();
        let (f, p) = assert_fusion_exact(name, &onnx, &inputs);
        println!("{name}: {p} steps -> {f} with element-wise programs");
        // The plain LMUFormer's element-wise work is all in conv/matmul epilogues.
        assert!(
            f < p || name == "lmuformer_seq",
            "{name}: nothing fused ({p} steps)"
        );
    }
}

fn fixture_steps(case: &str) -> Vec<&'static str> {
    let onnx = repo_root().join(format!("tests/fixtures/ops/{case}/model.onnx"));
    let b = convert_with(&onnx, true);
    let m = Model::from_bytes(b.as_slice()).unwrap();
    step_names(&m)
}

#[test]
fn chains_become_programs() {
    // h = v + (x - v) / tau feeds the threshold and the reset: both programs compute it (it
    // is cheap), so its own step dies. The spike is a graph output, written by one program
    // and read by the other: the nine-step neuron becomes two steps.
    assert_eq!(fixture_steps("ew_lif_step"), ["Elementwise", "Elementwise"]);
    assert_eq!(fixture_steps("ew_broadcast_4_inputs"), ["Elementwise"]);
    assert_eq!(fixture_steps("ew_div_pow_erf_sigmoid"), ["Elementwise"]);
    // |w| has fewer elements than the output: it stays a step of its own, an operand.
    assert_eq!(
        fixture_steps("ew_compare_chain_bool_out"),
        ["Unary", "Elementwise"]
    );
    // The sum is a graph output: the chain splits there and both values are written.
    assert_eq!(
        fixture_steps("ew_middle_output"),
        ["Elementwise", "Elementwise"]
    );
    // The SiLU and activation fusions run first.
    assert_eq!(fixture_steps("silu_after_conv"), ["Conv2d"]);
    assert_eq!(
        fixture_steps("silu_sigmoid_also_output"),
        ["Unary", "Binary"]
    );
}

/// Deterministic xorshift.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn malformed_programs_are_refused_without_panic() {
    // Random word lists, and valid encodings with random words changed, truncated or
    // extended: decoding and validation return an error or a program that runs.
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut valid = vec![];
    for case in [
        "ew_lif_step",
        "ew_broadcast_4_inputs",
        "ew_div_pow_erf_sigmoid",
    ] {
        let onnx = repo_root().join(format!("tests/fixtures/ops/{case}/model.onnx"));
        let b = convert_with(&onnx, true);
        let m = Model::from_bytes(b.as_slice()).unwrap();
        for i in 0..m.step_count() {
            let op = m.step(i).unwrap().op;
            if let Op::Elementwise { .. } = op {
                let mut w = vec![];
                op.encode(&mut |x| w.push(x));
                valid.push(w);
            }
        }
    }
    assert!(valid.len() >= 3);
    let (mut ok, mut refused) = (0, 0);
    for trial in 0..20_000 {
        let words: Vec<u32> = if trial % 4 == 0 {
            let n = rng.below(80) as usize;
            (0..n)
                .map(|_| match rng.below(4) {
                    0 => rng.next() as u32,
                    _ => rng.below(14) as u32,
                })
                .collect()
        } else {
            let mut w = valid[rng.below(valid.len() as u64) as usize].clone();
            for _ in 0..1 + rng.below(3) {
                match rng.below(5) {
                    0 if !w.is_empty() => {
                        let n = rng.below(w.len() as u64) as usize;
                        w.truncate(n);
                    }
                    1 => w.push(rng.below(12) as u32),
                    _ if !w.is_empty() => {
                        let k = rng.below(w.len() as u64) as usize;
                        w[k] = match rng.below(3) {
                            0 => rng.next() as u32,
                            _ => rng.below(14) as u32,
                        };
                    }
                    _ => {}
                }
            }
            w
        };
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        let mut r = ParamReader::new(&bytes, 0, words.len() as u32).unwrap();
        let Ok(op) = Op::decode(code::ELEMENTWISE, &mut r) else {
            refused += 1;
            continue;
        };
        let Op::Elementwise { bc, prog } = op else {
            panic!("decoded another op");
        };
        // Operands sized to what the strides reach; the step must validate and run.
        let Some(total) = bc.dims().iter().try_fold(1usize, |a, &d| a.checked_mul(d)) else {
            continue;
        };
        if total > 1 << 16 {
            continue;
        }
        let mut ins = [None; 4];
        let mut bufs = vec![];
        for j in 0..prog.n_in {
            let reach = bc
                .dims()
                .iter()
                .zip(bc.strides(j))
                .map(|(&d, &s)| d.saturating_sub(1).saturating_mul(s))
                .fold(0usize, usize::saturating_add);
            if reach > 1 << 16 {
                break;
            }
            bufs.push(vec![0.5f32; reach + 1]);
            ins[j] = Some(Operand {
                dtype: DType::F32,
                elems: reach + 1,
            });
        }
        if bufs.len() != prog.n_in {
            continue;
        }
        let out = Operand {
            dtype: DType::F32,
            elems: total,
        };
        op.validate(0, &ins, &out)
            .expect("a decoded program with fitting operands validates");
        let mut srcs: [Option<(DType, &[u8])>; 4] = [None; 4];
        for (j, b) in bufs.iter().enumerate() {
            srcs[j] = Some((DType::F32, mote::view::bytes_of(b.as_slice())));
        }
        let mut o = vec![0f32; total];
        let ob = mote::view::bytes_of_mut(o.as_mut_slice());
        mote::exec::eval(mote::exec::Ctx::REFERENCE, &op, &srcs, DType::F32, ob)
            .expect("a validated program runs");
        ok += 1;
    }
    println!("{ok} programs decoded and ran, {refused} refused");
    assert!(ok > 100 && refused > 1000, "{ok} ran, {refused} refused");
}
