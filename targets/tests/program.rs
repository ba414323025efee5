//! Element-wise programs are bit-identical to running their instructions one by one as
//! standalone steps over the whole tensor (the kernels the Unary, Binary, Compare, Logic,
//! Where and Cast steps run), on every kernel set this CPU has, for random programs over
//! random broadcast shapes, at sizes around the block and vector widths; and a malformed call
//! is an error, never a panic.

mod common;

use common::{row_major, same, unravel, Rng, REDUCE_OPS};
use mote_targets::generic::elementwise as ew;
use mote_targets::kernels;
use mote_targets::program::{
    program_f32, Instr, LogicOp, Program, ProgramIn, ProgramOut, FOLD_MAX_RUN, PROGRAM_BLOCK,
    PROGRAM_MAX_INSTRS, PROGRAM_REG0, PROGRAM_REGS,
};
use mote_targets::{BinaryOp, CompareOp, Isa, IsaKind, ReduceOp, UnaryOp, MAX_RANK};

fn all_isas() -> Vec<Isa> {
    IsaKind::ALL.into_iter().filter_map(Isa::new).collect()
}

const UNARIES: [UnaryOp; 24] = [
    UnaryOp::Identity,
    UnaryOp::Relu,
    UnaryOp::Clip { lo: -0.5, hi: 2.0 },
    UnaryOp::Sigmoid,
    UnaryOp::Gelu,
    UnaryOp::Erf,
    UnaryOp::Exp,
    UnaryOp::Log,
    UnaryOp::Neg,
    UnaryOp::Sign,
    UnaryOp::Reciprocal,
    UnaryOp::Abs,
    UnaryOp::Sqrt,
    UnaryOp::Tanh,
    UnaryOp::Floor,
    UnaryOp::Ceil,
    UnaryOp::Round,
    UnaryOp::LeakyRelu { alpha: 0.1 },
    UnaryOp::HardSigmoid {
        alpha: 0.2,
        beta: 0.5,
    },
    UnaryOp::HardSwish,
    UnaryOp::Softplus,
    UnaryOp::Silu,
    UnaryOp::PowConst { exp: 2.0 },
    UnaryOp::Affine { k: 0.7, c: -0.3 },
];
const BINARIES: [BinaryOp; 7] = [
    BinaryOp::Add,
    BinaryOp::Sub,
    BinaryOp::Mul,
    BinaryOp::Div,
    BinaryOp::Pow,
    BinaryOp::Max,
    BinaryOp::Min,
];
const COMPARES: [CompareOp; 5] = [
    CompareOp::Equal,
    CompareOp::Less,
    CompareOp::LessOrEqual,
    CompareOp::Greater,
    CompareOp::GreaterOrEqual,
];
const LOGICS: [LogicOp; 4] = [LogicOp::And, LogicOp::Or, LogicOp::Xor, LogicOp::Not];

/// A random valid program over `n_in` operands.
fn random_program(rng: &mut Rng, n_in: usize) -> Program {
    let mut p = Program {
        n_in,
        len: 1 + rng.below(PROGRAM_MAX_INSTRS),
        ..Default::default()
    };
    let mut written: Vec<u8> = vec![];
    for k in 0..p.len {
        let src = |rng: &mut Rng| -> u8 {
            if written.is_empty() || rng.below(3) == 0 {
                rng.below(n_in) as u8
            } else {
                written[rng.below(written.len())]
            }
        };
        let dst = PROGRAM_REG0 + rng.below(PROGRAM_REGS) as u8;
        let ins = match rng.below(if k == 0 { 6 } else { 7 }) {
            0 => Instr::Unary {
                dst,
                a: src(rng),
                op: UNARIES[rng.below(UNARIES.len())],
            },
            1 => Instr::Binary {
                dst,
                a: src(rng),
                b: src(rng),
                op: BINARIES[rng.below(BINARIES.len())],
            },
            2 => Instr::Compare {
                dst,
                a: src(rng),
                b: src(rng),
                op: COMPARES[rng.below(COMPARES.len())],
            },
            3 => Instr::Logic {
                dst,
                a: src(rng),
                b: src(rng),
                op: LOGICS[rng.below(LOGICS.len())],
            },
            4 => Instr::Where {
                dst,
                cond: src(rng),
                a: src(rng),
                b: src(rng),
            },
            5 => Instr::NonZero { dst, a: src(rng) },
            _ => Instr::Const {
                dst,
                value: [0.0, -0.0, 1.0, 0.5, -2.0, f32::NAN][rng.below(6)],
            },
        };
        p.instrs[k] = ins;
        if !written.contains(&dst) {
            written.push(dst);
        }
    }
    p.check().expect("generated program is valid");
    p
}

/// A value drawn to hit ties, zeros of both signs, NaN and infinities now and then.
fn value(rng: &mut Rng) -> f32 {
    match rng.below(20) {
        0 => [0.0, -0.0, 1.0, -1.0, 0.5][rng.below(5)],
        1 => [f32::NAN, f32::INFINITY, f32::NEG_INFINITY][rng.below(3)],
        2..=4 => rng.below(5) as f32 - 2.0,
        _ => rng.f32(-4.0, 4.0),
    }
}

/// Operand `j`: either f32 or bool (as bytes), with its own shape broadcast into `dims`.
struct Operand {
    f: Vec<f32>,
    b: Option<Vec<u8>>,
    strides: [usize; MAX_RANK],
}

fn random_operand(rng: &mut Rng, dims: &[usize]) -> Operand {
    // Each dim is kept or broadcast (size 1 in the operand, stride 0).
    let own: Vec<usize> = dims
        .iter()
        .map(|&d| if rng.below(3) == 0 { 1 } else { d })
        .collect();
    let rm = row_major(&own);
    let mut strides = [0usize; MAX_RANK];
    for k in 0..dims.len() {
        strides[k] = if own[k] == 1 { 0 } else { rm[k] };
    }
    let n: usize = own.iter().product();
    if rng.below(5) == 0 {
        let b: Vec<u8> = (0..n).map(|_| (rng.below(2)) as u8).collect();
        Operand {
            f: vec![],
            b: Some(b),
            strides,
        }
    } else {
        Operand {
            f: (0..n).map(|_| value(rng)).collect(),
            b: None,
            strides,
        }
    }
}

/// The operand expanded to the full iteration, as f32 (bools as their byte value).
fn expand(o: &Operand, dims: &[usize]) -> Vec<f32> {
    let total: usize = dims.iter().product();
    (0..total)
        .map(|i| {
            let idx = unravel(i, dims);
            let off: usize = idx.iter().zip(&o.strides).map(|(a, b)| a * b).sum();
            match &o.b {
                Some(b) => b[off] as f32,
                None => o.f[off],
            }
        })
        .collect()
}

/// The program run instruction by instruction, each over the whole tensor with the
/// standalone step's kernel.
fn reference(isa: Isa, p: &Program, ops: &[Vec<f32>], total: usize) -> Vec<f32> {
    let mut regs = vec![vec![0f32; total]; PROGRAM_REGS];
    let get = |regs: &Vec<Vec<f32>>, s: u8| -> Vec<f32> {
        if s < PROGRAM_REG0 {
            ops[s as usize].clone()
        } else {
            regs[(s - PROGRAM_REG0) as usize].clone()
        }
    };
    let to_u8 = |v: &[f32]| -> Vec<u8> { v.iter().map(|&x| (x != 0.0) as u8).collect() };
    let d1 = [total];
    for ins in p.instrs() {
        let mut out = vec![0f32; total];
        match *ins {
            Instr::Const { value, .. } => out.fill(value),
            Instr::Unary { a, op, .. } => kernels::unary_f32(isa, op, &get(&regs, a), &mut out),
            Instr::Binary { a, b, op, .. } => kernels::binary_f32(
                isa,
                op,
                &d1,
                &get(&regs, a),
                &[1],
                &get(&regs, b),
                &[1],
                &mut out,
            ),
            Instr::Compare { a, b, op, .. } => {
                let mut o = vec![0u8; total];
                ew::compare_f32(op, &d1, &get(&regs, a), &[1], &get(&regs, b), &[1], &mut o);
                out = o.iter().map(|&x| x as f32).collect();
            }
            Instr::Logic { a, b, op, .. } => {
                let mut o = vec![0u8; total];
                let (x, y) = (to_u8(&get(&regs, a)), to_u8(&get(&regs, b)));
                match op {
                    LogicOp::And => ew::logic_u8(0, &d1, &x, &[1], &y, &[1], &mut o),
                    LogicOp::Or => ew::logic_u8(1, &d1, &x, &[1], &y, &[1], &mut o),
                    LogicOp::Xor => ew::logic_u8(2, &d1, &x, &[1], &y, &[1], &mut o),
                    // The executor's Not: xor with a broadcast 1.
                    LogicOp::Not => ew::logic_u8(2, &d1, &x, &[1], &[1u8], &[0], &mut o),
                }
                out = o.iter().map(|&x| x as f32).collect();
            }
            Instr::Where { cond, a, b, .. } => {
                let c: Vec<u8> = get(&regs, cond).iter().map(|&x| (x != 0.0) as u8).collect();
                ew::where_select(
                    &d1,
                    &c,
                    &[1],
                    &get(&regs, a),
                    &[1],
                    &get(&regs, b),
                    &[1],
                    &mut out,
                );
            }
            Instr::NonZero { a, .. } => {
                out = get(&regs, a)
                    .iter()
                    .map(|&x| if x != 0.0 { 1.0 } else { 0.0 })
                    .collect()
            }
        }
        regs[(ins.dst() - PROGRAM_REG0) as usize] = out;
    }
    regs[(p.instrs()[p.len - 1].dst() - PROGRAM_REG0) as usize].clone()
}

fn shape_for(rng: &mut Rng, total: usize) -> Vec<usize> {
    // Split `total` into up to 4 factors (the product stays `total`).
    let mut dims = vec![];
    let mut rest = total;
    for _ in 0..rng.below(4) {
        let f = [1, 2, 3, 5][rng.below(4)];
        if rest.is_multiple_of(f) && rest > 1 {
            dims.push(f);
            rest /= f;
        }
    }
    dims.push(rest);
    let k = rng.below(dims.len());
    dims.rotate_left(k);
    dims
}

#[test]
fn random_programs_match_their_steps_bit_for_bit_on_every_kernel_set() {
    let b = PROGRAM_BLOCK;
    let sizes = [
        1,
        2,
        7,
        15,
        16,
        17,
        33,
        b - 1,
        b,
        b + 1,
        2 * b + 5,
        3 * b,
        1000,
    ];
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut runs = 0;
    for isa in all_isas() {
        for &total in &sizes {
            for _ in 0..12 {
                let dims = shape_for(&mut rng, total);
                let n_in = 1 + rng.below(4);
                let ops: Vec<Operand> =
                    (0..n_in).map(|_| random_operand(&mut rng, &dims)).collect();
                let p = random_program(&mut rng, n_in);
                let full: Vec<Vec<f32>> = ops.iter().map(|o| expand(o, &dims)).collect();
                let want = reference(isa, &p, &full, total);
                let ins: Vec<ProgramIn<'_>> = ops
                    .iter()
                    .map(|o| match &o.b {
                        Some(b) => ProgramIn::Bool(b),
                        None => ProgramIn::F32(&o.f),
                    })
                    .collect();
                let strides: Vec<[usize; MAX_RANK]> = ops.iter().map(|o| o.strides).collect();
                let mut got = vec![0f32; total];
                program_f32(isa, &p, &dims, &ins, &strides, ProgramOut::F32(&mut got)).unwrap();
                for i in 0..total {
                    assert!(
                        same(got[i], want[i]),
                        "{} dims {dims:?} element {i}: got {:e}, want {:e}\n{p:?}",
                        isa.name(),
                        got[i],
                        want[i]
                    );
                }
                // Folded over every trailing run, with every reduction: the same bits as
                // reducing the stored results with this kernel set's Reduce kernel.
                for cut in 0..dims.len() {
                    let len: usize = dims[cut..].iter().product();
                    for op in REDUCE_OPS {
                        let rows = total / len;
                        let mut want_r = vec![0f32; rows];
                        kernels::reduce_f32(isa, op, &[rows, len], 0b10, &got, &mut want_r);
                        let mut got_r = vec![-7f32; rows];
                        let out = ProgramOut::Fold {
                            out: &mut got_r,
                            op,
                            len,
                        };
                        program_f32(isa, &p, &dims, &ins, &strides, out).unwrap();
                        for r in 0..rows {
                            assert!(
                                same(got_r[r], want_r[r]),
                                "{} {op:?} dims {dims:?} runs of {len}, run {r}: got {:e}, want {:e}",
                                isa.name(),
                                got_r[r],
                                want_r[r]
                            );
                        }
                    }
                }
                let mut gb = vec![7u8; total];
                program_f32(isa, &p, &dims, &ins, &strides, ProgramOut::Bool(&mut gb)).unwrap();
                for i in 0..total {
                    assert_eq!(gb[i], (want[i] != 0.0) as u8, "bool output element {i}");
                }
                runs += 1;
            }
        }
    }
    assert!(runs >= 12 * 13);
}

#[test]
fn contiguous_operands_and_in_place_registers() {
    // dst == a for unary and binary (the in-place paths), dst == b, dst == cond.
    let r = |k: u8| PROGRAM_REG0 + k;
    let mut p = Program {
        n_in: 2,
        len: 6,
        ..Default::default()
    };
    p.instrs[0] = Instr::Binary {
        dst: r(0),
        a: 0,
        b: 1,
        op: BinaryOp::Sub,
    };
    p.instrs[1] = Instr::Unary {
        dst: r(0),
        a: r(0),
        op: UnaryOp::Exp,
    };
    p.instrs[2] = Instr::Binary {
        dst: r(0),
        a: r(0),
        b: 0,
        op: BinaryOp::Mul,
    };
    p.instrs[3] = Instr::Binary {
        dst: r(1),
        a: 1,
        b: r(0),
        op: BinaryOp::Div,
    };
    p.instrs[4] = Instr::Compare {
        dst: r(0),
        a: r(1),
        b: r(0),
        op: CompareOp::Less,
    };
    p.instrs[5] = Instr::Where {
        dst: r(0),
        cond: r(0),
        a: r(1),
        b: 1,
    };
    let mut rng = Rng(99);
    for isa in all_isas() {
        for total in [1usize, 31, 128, 129, 777] {
            let x: Vec<f32> = (0..total).map(|_| value(&mut rng)).collect();
            let y: Vec<f32> = (0..total).map(|_| value(&mut rng)).collect();
            let want = reference(isa, &p, &[x.clone(), y.clone()], total);
            let mut got = vec![0f32; total];
            let st = [[1usize, 0, 0, 0, 0, 0, 0, 0]; 2];
            program_f32(
                isa,
                &p,
                &[total],
                &[ProgramIn::F32(&x), ProgramIn::F32(&y)],
                &st,
                ProgramOut::F32(&mut got),
            )
            .unwrap();
            for i in 0..total {
                assert!(same(got[i], want[i]), "{} element {i}", isa.name());
            }
        }
    }
}

#[test]
fn malformed_calls_are_errors() {
    let x = [1.0f32; 8];
    let mut out = [0f32; 8];
    let st = [[1usize, 0, 0, 0, 0, 0, 0, 0]];
    let mut p = Program {
        n_in: 1,
        len: 1,
        ..Default::default()
    };
    p.instrs[0] = Instr::Unary {
        dst: PROGRAM_REG0,
        a: 0,
        op: UnaryOp::Exp,
    };
    let run = |p: &Program, dims: &[usize], out: &mut [f32]| {
        program_f32(
            Isa::GENERIC,
            p,
            dims,
            &[ProgramIn::F32(&x)],
            &st,
            ProgramOut::F32(out),
        )
    };
    assert!(run(&p, &[8], &mut out).is_ok());
    assert!(
        run(&p, &[9], &mut [0f32; 9]).is_err(),
        "reads past the operand"
    );
    assert!(run(&p, &[8], &mut out[..4]).is_err(), "output too short");
    let mut q = p;
    q.instrs[0] = Instr::Unary {
        dst: PROGRAM_REG0,
        a: PROGRAM_REG0 + 1,
        op: UnaryOp::Exp,
    };
    assert!(run(&q, &[8], &mut out).is_err(), "reads an unset register");
    let mut q = p;
    q.instrs[0] = Instr::Unary {
        dst: 0,
        a: 0,
        op: UnaryOp::Exp,
    };
    assert!(run(&q, &[8], &mut out).is_err(), "writes an operand");
    let mut q = p;
    q.len = 0;
    assert!(run(&q, &[8], &mut out).is_err(), "empty");
    q.len = PROGRAM_MAX_INSTRS + 1;
    assert!(run(&q, &[8], &mut out).is_err(), "too long");
    let mut q = p;
    q.n_in = 2;
    assert!(run(&q, &[8], &mut out).is_err(), "missing operand");
    let fold = |len: usize, out: &mut [f32]| {
        let o = ProgramOut::Fold {
            out,
            op: ReduceOp::Sum,
            len,
        };
        program_f32(Isa::GENERIC, &p, &[8], &[ProgramIn::F32(&x)], &st, o)
    };
    assert!(fold(4, &mut out[..2]).is_ok());
    assert!(fold(0, &mut out).is_err(), "runs of 0");
    assert!(fold(3, &mut out).is_err(), "runs that do not divide");
    assert!(fold(2, &mut out[..3]).is_err(), "folded output too short");
    let long = vec![1.0f32; 2 * FOLD_MAX_RUN + 2];
    let o = ProgramOut::Fold {
        out: &mut out[..2],
        op: ReduceOp::Sum,
        len: FOLD_MAX_RUN + 1,
    };
    let dims = [2 * FOLD_MAX_RUN + 2];
    let r = program_f32(Isa::GENERIC, &p, &dims, &[ProgramIn::F32(&long)], &st, o);
    assert!(r.is_err(), "run longer than the fold buffer");
}
