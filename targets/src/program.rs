//! Element-wise programs: a short straight-line chain of unary, binary, compare, logic, select
//! and cast instructions run over a broadcast iteration in blocks of [`PROGRAM_BLOCK`]
//! elements, so a chain of element-wise steps reads its inputs and writes its output once.
//!
//! Every instruction computes what the standalone step computes, with the same f32 operations:
//! binary arithmetic, comparisons and selects are exact IEEE operations (no FMA contraction),
//! and unary functions run through [`crate::kernels::unary_f32`] of the same kernel set, one
//! block at a time. Blocks start at multiples of [`PROGRAM_BLOCK`] (a multiple of every
//! vector width), so each element goes through the same vector or tail code as in the
//! standalone step: the result is bit-identical to running the steps one by one.
//!
//! Values are f32. Booleans are 0.0 / 1.0; a boolean operand is read as its byte value, and
//! every instruction that takes a boolean tests `!= 0`, as the standalone steps do.

use crate::generic::elementwise::binary;
use crate::isa::{Isa, IsaKind};
use crate::{BinaryOp, CompareOp, ReduceOp, UnaryOp, MAX_RANK};

/// Most instructions in one program.
pub const PROGRAM_MAX_INSTRS: usize = 32;
/// Registers of a program.
pub const PROGRAM_REGS: usize = 8;
/// Most operands (inputs) of a program.
pub const PROGRAM_OPERANDS: usize = 4;
/// Slot number of register 0: slots `0..PROGRAM_OPERANDS` name operands, slots
/// `PROGRAM_REG0..PROGRAM_REG0 + PROGRAM_REGS` registers.
pub const PROGRAM_REG0: u8 = PROGRAM_OPERANDS as u8;
/// Elements per block (a multiple of 16, the widest vector).
pub const PROGRAM_BLOCK: usize = 128;

/// Boolean functions of [`Instr::Logic`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogicOp {
    /// `a && b`.
    And,
    /// `a || b`.
    Or,
    /// `a != b`.
    Xor,
    /// `!a` (`b` is not read).
    Not,
}

/// One instruction. `dst` is a register slot; sources are operand or register slots (see
/// [`PROGRAM_REG0`]). A destination may be one of the instruction's own sources.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Instr {
    /// `dst = value`.
    Const {
        /// Destination slot.
        dst: u8,
        /// The value.
        value: f32,
    },
    /// `dst = op(a)`, as the Unary step.
    Unary {
        /// Destination slot.
        dst: u8,
        /// Source slot.
        a: u8,
        /// Function.
        op: UnaryOp,
    },
    /// `dst = a op b`, as the Binary step.
    Binary {
        /// Destination slot.
        dst: u8,
        /// First source slot.
        a: u8,
        /// Second source slot.
        b: u8,
        /// Operation.
        op: BinaryOp,
    },
    /// `dst = (a op b) ? 1 : 0`, as the Compare step.
    Compare {
        /// Destination slot.
        dst: u8,
        /// First source slot.
        a: u8,
        /// Second source slot.
        b: u8,
        /// Comparison.
        op: CompareOp,
    },
    /// `dst = op(a != 0, b != 0) ? 1 : 0`, as the Logic step.
    Logic {
        /// Destination slot.
        dst: u8,
        /// First source slot.
        a: u8,
        /// Second source slot (not read by `Not`).
        b: u8,
        /// Function.
        op: LogicOp,
    },
    /// `dst = cond != 0 ? a : b`, as the Where step.
    Where {
        /// Destination slot.
        dst: u8,
        /// Condition slot.
        cond: u8,
        /// Slot chosen where the condition holds.
        a: u8,
        /// Slot chosen elsewhere.
        b: u8,
    },
    /// `dst = a != 0 ? 1 : 0` (NaN is true), as a Cast to bool.
    NonZero {
        /// Destination slot.
        dst: u8,
        /// Source slot.
        a: u8,
    },
}

impl Instr {
    /// The destination slot.
    pub fn dst(&self) -> u8 {
        match *self {
            Instr::Const { dst, .. }
            | Instr::Unary { dst, .. }
            | Instr::Binary { dst, .. }
            | Instr::Compare { dst, .. }
            | Instr::Logic { dst, .. }
            | Instr::Where { dst, .. }
            | Instr::NonZero { dst, .. } => dst,
        }
    }

    /// The source slots read (`None` for unused positions).
    pub fn sources(&self) -> [Option<u8>; 3] {
        match *self {
            Instr::Const { .. } => [None; 3],
            Instr::Unary { a, .. } | Instr::NonZero { a, .. } => [Some(a), None, None],
            Instr::Logic {
                a,
                op: LogicOp::Not,
                ..
            } => [Some(a), None, None],
            Instr::Binary { a, b, .. }
            | Instr::Compare { a, b, .. }
            | Instr::Logic { a, b, .. } => [Some(a), Some(b), None],
            Instr::Where { cond, a, b, .. } => [Some(cond), Some(a), Some(b)],
        }
    }
}

/// A straight-line program; its result is the destination of its last instruction.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Program {
    /// Operands it reads (`<= PROGRAM_OPERANDS`).
    pub n_in: usize,
    /// Instructions in use.
    pub len: usize,
    /// The instructions (`..len`).
    pub instrs: [Instr; PROGRAM_MAX_INSTRS],
}

impl Default for Program {
    fn default() -> Self {
        Program {
            n_in: 0,
            len: 0,
            instrs: [Instr::Const { dst: 0, value: 0.0 }; PROGRAM_MAX_INSTRS],
        }
    }
}

impl Program {
    /// The instructions in use.
    pub fn instrs(&self) -> &[Instr] {
        &self.instrs[..self.len.min(PROGRAM_MAX_INSTRS)]
    }

    /// Checks that the program can run: `1..=PROGRAM_MAX_INSTRS` instructions, `n_in` in
    /// `1..=PROGRAM_OPERANDS`, every destination a register, every source an operand below
    /// `n_in` or a register written by an earlier instruction.
    pub fn check(&self) -> Result<(), &'static str> {
        if self.len == 0 || self.len > PROGRAM_MAX_INSTRS {
            return Err("element-wise program length out of range");
        }
        if self.n_in == 0 || self.n_in > PROGRAM_OPERANDS {
            return Err("element-wise program operand count out of range");
        }
        let mut written = [false; PROGRAM_REGS];
        for ins in self.instrs() {
            for s in ins.sources().into_iter().flatten() {
                let ok = if s < PROGRAM_REG0 {
                    (s as usize) < self.n_in
                } else {
                    written
                        .get((s - PROGRAM_REG0) as usize)
                        .copied()
                        .unwrap_or(false)
                };
                if !ok {
                    return Err(
                        "element-wise program reads an unset register or a missing operand",
                    );
                }
            }
            let d = ins.dst();
            if d < PROGRAM_REG0 || (d - PROGRAM_REG0) as usize >= PROGRAM_REGS {
                return Err("element-wise program writes outside its registers");
            }
            written[(d - PROGRAM_REG0) as usize] = true;
        }
        Ok(())
    }
}

/// An operand of [`program_f32`]: f32 values or booleans (bytes, read as their value).
#[derive(Clone, Copy, Debug)]
pub enum ProgramIn<'a> {
    /// f32 values.
    F32(&'a [f32]),
    /// Booleans.
    Bool(&'a [u8]),
}

impl ProgramIn<'_> {
    fn len(&self) -> usize {
        match self {
            ProgramIn::F32(v) => v.len(),
            ProgramIn::Bool(v) => v.len(),
        }
    }
}

/// The output of [`program_f32`].
#[derive(Debug)]
pub enum ProgramOut<'a> {
    /// f32 values.
    F32(&'a mut [f32]),
    /// Booleans: the result `!= 0` as 0 / 1.
    Bool(&'a mut [u8]),
    /// The results reduced by `op` over consecutive runs of `len` (the trailing iteration
    /// dims, at most [`FOLD_MAX_RUN`]): `out[r]` reduces results `r·len .. (r+1)·len`,
    /// bit-identical to writing them out and reducing them with
    /// [`crate::kernels::reduce_f32`] on the same kernel set.
    Fold {
        /// One value per run.
        out: &'a mut [f32],
        /// The reduction.
        op: ReduceOp,
        /// Values per run (non-zero, divides the iteration size).
        len: usize,
    },
}

type Block = [f32; PROGRAM_BLOCK];

/// A source of one instruction in one block.
enum Val<'a> {
    /// Values (an operand, or a register other than the destination).
    S(&'a [f32]),
    /// The destination register itself.
    Dst,
}

/// Why [`program_f32`] refused to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgramError(pub &'static str);

/// Runs `prog` over the broadcast iteration `dims` (rank `<= MAX_RANK`): operand `j` is read
/// at `sum_k i_k × strides[j][k]`, the output is contiguous. Operands past `prog.n_in` are
/// ignored. Checks the program ([`Program::check`]) and every reach before it runs, so a bad
/// call is an error, never a panic.
pub fn program_f32(
    isa: Isa,
    prog: &Program,
    dims: &[usize],
    ins: &[ProgramIn<'_>],
    strides: &[[usize; MAX_RANK]],
    out: ProgramOut<'_>,
) -> Result<(), ProgramError> {
    prog.check().map_err(ProgramError)?;
    let n_in = prog.n_in;
    if dims.len() > MAX_RANK || ins.len() < n_in || strides.len() < n_in {
        return Err(ProgramError("element-wise program operands missing"));
    }
    let mut total = 1usize;
    for &d in dims {
        total = total
            .checked_mul(d)
            .ok_or(ProgramError("element-wise program size overflows"))?;
    }
    let (out_len, need) = match &out {
        ProgramOut::F32(o) => (o.len(), total),
        ProgramOut::Bool(o) => (o.len(), total),
        ProgramOut::Fold { out, len, .. } => {
            if *len == 0 || !total.is_multiple_of(*len) {
                return Err(ProgramError(
                    "element-wise reduction runs do not divide the iteration",
                ));
            }
            if *len > FOLD_MAX_RUN {
                return Err(ProgramError("element-wise reduction run too long"));
            }
            (out.len(), total / len)
        }
    };
    if out_len < need {
        return Err(ProgramError("element-wise program output too short"));
    }
    if total == 0 {
        return Ok(());
    }
    for j in 0..n_in {
        let mut reach = 0usize;
        for (&d, &s) in dims.iter().zip(&strides[j]) {
            reach = (d - 1)
                .checked_mul(s)
                .and_then(|x| x.checked_add(reach))
                .ok_or(ProgramError("element-wise program operand reach overflows"))?;
        }
        if reach >= ins[j].len() {
            return Err(ProgramError("element-wise program reads past an operand"));
        }
    }
    match isa.kind() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` proves AVX-512F.
        IsaKind::Avx512 => unsafe { run_avx512(isa, prog, dims, ins, strides, out, total) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` proves AVX2 and FMA.
        IsaKind::Avx2 => unsafe { run_avx2(isa, prog, dims, ins, strides, out, total) },
        // NEON is the aarch64 baseline: the plain loops already use it.
        IsaKind::Generic | IsaKind::Neon => run(isa, prog, dims, ins, strides, out, total),
        #[allow(unreachable_patterns)]
        _ => run(isa, prog, dims, ins, strides, out, total),
    }
    Ok(())
}

// The exact instructions are plain loops: compiled inside a `target_feature` function they are
// vectorized at that width, with the same IEEE operations.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn run_avx512(
    isa: Isa,
    prog: &Program,
    dims: &[usize],
    ins: &[ProgramIn<'_>],
    strides: &[[usize; MAX_RANK]],
    out: ProgramOut<'_>,
    total: usize,
) {
    run(isa, prog, dims, ins, strides, out, total)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn run_avx2(
    isa: Isa,
    prog: &Program,
    dims: &[usize],
    ins: &[ProgramIn<'_>],
    strides: &[[usize; MAX_RANK]],
    out: ProgramOut<'_>,
    total: usize,
) {
    run(isa, prog, dims, ins, strides, out, total)
}

/// Longest run a [`ProgramOut::Fold`] reduces: results are gathered into a buffer of this
/// many values and reduced whole runs at a time by the kernel set's Reduce kernel.
pub const FOLD_MAX_RUN: usize = 1024;

/// How one operand is read per block.
#[derive(Clone, Copy)]
enum Access {
    /// f32, contiguous with the output: sliced in place.
    Flat,
    /// One value broadcast everywhere: filled into its buffer once.
    Splat,
    /// Gathered into its buffer for every block.
    Gather,
}

/// Row-major strides of `dims`.
fn row_major(dims: &[usize]) -> [usize; MAX_RANK] {
    let mut s = [0usize; MAX_RANK];
    let mut acc = 1usize;
    for k in (0..dims.len()).rev() {
        s[k] = acc;
        acc = acc.saturating_mul(dims[k]);
    }
    s
}

/// `d.copy_from_slice(s)` for the short runs of a broadcast gather: whole 16-value chunks
/// (the last one overlapping) instead of a call to `memcpy` per run.
#[inline(always)]
fn copy_run(d: &mut [f32], s: &[f32]) {
    const C: usize = 16;
    let n = d.len().min(s.len());
    if n < C {
        d[..n].copy_from_slice(&s[..n]);
        return;
    }
    let mut i = 0;
    loop {
        let at = i.min(n - C);
        if let (Ok(src), Ok(dst)) = (
            <&[f32; C]>::try_from(&s[at..at + C]),
            <&mut [f32; C]>::try_from(&mut d[at..at + C]),
        ) {
            *dst = *src;
        }
        if at == n - C {
            return;
        }
        i += C;
    }
}

/// Moves the multi-index `at` over `dims` (row-major) `n` elements on.
#[inline(always)]
fn advance(dims: &[usize], at: &mut [usize; MAX_RANK], n: usize) {
    let mut carry = n;
    for k in (0..dims.len()).rev() {
        if carry == 0 {
            break;
        }
        let v = at[k] + carry;
        if v < dims[k] {
            at[k] = v;
            carry = 0;
        } else {
            at[k] = v % dims[k];
            carry = v / dims[k];
        }
    }
}

/// Copies `dst.len()` values of operand `x` (read with `strides` over `dims`) starting at the
/// output multi-index `at` into `dst`.
#[inline(always)]
fn gather(
    x: ProgramIn<'_>,
    dims: &[usize],
    strides: &[usize; MAX_RANK],
    at: &[usize; MAX_RANK],
    dst: &mut [f32],
) {
    let rank = dims.len();
    let mut idx = *at;
    let mut off = 0usize;
    for k in 0..rank {
        off += idx[k] * strides[k];
    }
    let len = dst.len();
    let last = rank - 1;
    let s = strides[last];
    let mut i = 0;
    while i < len {
        let run = (dims[last] - idx[last]).min(len - i);
        let d = &mut dst[i..i + run];
        match x {
            ProgramIn::F32(v) => match s {
                0 => d.fill(v[off]),
                1 => copy_run(d, &v[off..off + run]),
                _ => d
                    .iter_mut()
                    .enumerate()
                    .for_each(|(j, o)| *o = v[off + j * s]),
            },
            ProgramIn::Bool(v) => d
                .iter_mut()
                .enumerate()
                .for_each(|(j, o)| *o = v[off + j * s] as f32),
        }
        i += run;
        idx[last] += run;
        off += run * s;
        // Carry into the outer dims.
        let mut k = last;
        while idx[k] == dims[k] && k > 0 {
            off -= dims[k] * strides[k];
            idx[k] = 0;
            k -= 1;
            idx[k] += 1;
            off += strides[k];
        }
    }
}

#[inline(always)]
fn run(
    isa: Isa,
    prog: &Program,
    dims: &[usize],
    ins: &[ProgramIn<'_>],
    strides: &[[usize; MAX_RANK]],
    mut out: ProgramOut<'_>,
    total: usize,
) {
    let n_in = prog.n_in;
    // Size-1 dims dropped, neighbours merged where every operand is laid out contiguously
    // across them (as the broadcast kernels plan), so gathers copy long runs.
    let mut md = [1usize; MAX_RANK];
    let mut ms = [[0usize; MAX_RANK]; PROGRAM_OPERANDS];
    let mut rank = 0;
    for (k, &n) in dims.iter().enumerate() {
        if n == 1 {
            continue;
        }
        let merge =
            rank > 0 && (0..n_in).all(|j| strides[j][k].checked_mul(n) == Some(ms[j][rank - 1]));
        if merge {
            md[rank - 1] *= n;
            for j in 0..n_in {
                ms[j][rank - 1] = strides[j][k];
            }
            continue;
        }
        md[rank] = n;
        for j in 0..n_in {
            ms[j][rank] = strides[j][k];
        }
        rank += 1;
    }
    // A single element is a rank-1 iteration of one.
    let dims = &md[..rank.max(1)];
    let strides = &ms[..];
    let rm = row_major(dims);
    let mut access = [Access::Gather; PROGRAM_OPERANDS];
    let mut bufs = [[0f32; PROGRAM_BLOCK]; PROGRAM_OPERANDS];
    for j in 0..n_in {
        let st = &strides[j];
        let flat = dims
            .iter()
            .zip(st.iter().zip(&rm))
            .all(|(&d, (&s, &r))| d == 1 || s == r);
        let splat = dims.iter().zip(st).all(|(&d, &s)| d == 1 || s == 0);
        access[j] = match ins[j] {
            ProgramIn::F32(_) if flat => Access::Flat,
            x if splat => {
                let v = match x {
                    ProgramIn::F32(v) => v[0],
                    ProgramIn::Bool(v) => v[0] as f32,
                };
                bufs[j].fill(v);
                Access::Splat
            }
            _ => Access::Gather,
        };
    }
    let mut regs = [[0f32; PROGRAM_BLOCK]; PROGRAM_REGS];
    let mut tmp = [0f32; PROGRAM_BLOCK];
    // [`ProgramOut::Fold`]: results wait in `fbuf` until `chunk` (whole runs) are there.
    let mut fbuf = [0f32; FOLD_MAX_RUN];
    let (mut fill, mut row) = (0usize, 0usize);
    let chunk = match &out {
        ProgramOut::Fold { len, .. } => FOLD_MAX_RUN / len * len,
        _ => 0,
    };
    // The multi-index of `start`, advanced block by block (no division per operand).
    let mut at = [0usize; MAX_RANK];
    let mut start = 0;
    while start < total {
        let len = PROGRAM_BLOCK.min(total - start);
        for j in 0..n_in {
            if let Access::Gather = access[j] {
                gather(ins[j], dims, &strides[j], &at, &mut bufs[j][..len]);
            }
        }
        advance(dims, &mut at, len);
        let mut opnd: [&[f32]; PROGRAM_OPERANDS] = [&[]; PROGRAM_OPERANDS];
        for j in 0..n_in {
            opnd[j] = match (access[j], ins[j]) {
                (Access::Flat, ProgramIn::F32(v)) => &v[start..start + len],
                _ => &bufs[j][..len],
            };
        }
        for ins in prog.instrs() {
            exec(isa, ins, &opnd, &mut regs, &mut tmp, len);
        }
        let res = &regs[(prog.instrs()[prog.len - 1].dst() - PROGRAM_REG0) as usize][..len];
        match &mut out {
            ProgramOut::F32(o) => o[start..start + len].copy_from_slice(res),
            ProgramOut::Bool(o) => o[start..start + len]
                .iter_mut()
                .zip(res)
                .for_each(|(o, &v)| *o = (v != 0.0) as u8),
            ProgramOut::Fold { out, op, len: run } => {
                let mut rest = res;
                while !rest.is_empty() {
                    let take = (chunk - fill).min(rest.len());
                    fbuf[fill..fill + take].copy_from_slice(&rest[..take]);
                    fill += take;
                    rest = &rest[take..];
                    if fill == chunk || start + len == total && rest.is_empty() {
                        // Whole runs (the iteration is a multiple of the run length).
                        let rows = fill / *run;
                        if let Some(o) = out.get_mut(row..row + rows) {
                            crate::kernels::reduce_f32(
                                isa,
                                *op,
                                &[rows, *run],
                                0b10,
                                &fbuf[..fill],
                                o,
                            );
                        }
                        row += rows;
                        fill = 0;
                    }
                }
            }
        }
        start += len;
    }
}

/// Runs one instruction on one block of `len` values.
#[inline(always)]
fn exec(
    isa: Isa,
    ins: &Instr,
    opnd: &[&[f32]; PROGRAM_OPERANDS],
    regs: &mut [Block; PROGRAM_REGS],
    tmp: &mut Block,
    len: usize,
) {
    let dst = (ins.dst() - PROGRAM_REG0) as usize;
    let (lo, rest) = regs.split_at_mut(dst);
    let (d, hi) = rest.split_at_mut(1);
    let d = &mut d[0][..len];
    let val = |s: u8| -> Val<'_> {
        if s < PROGRAM_REG0 {
            Val::S(opnd[s as usize])
        } else {
            let r = (s - PROGRAM_REG0) as usize;
            match r.cmp(&dst) {
                core::cmp::Ordering::Less => Val::S(&lo[r][..len]),
                core::cmp::Ordering::Greater => Val::S(&hi[r - dst - 1][..len]),
                core::cmp::Ordering::Equal => Val::Dst,
            }
        }
    };
    // Sources that are the destination itself read a copy taken before the write.
    // (A unary function of the destination runs in place instead.)
    let aliased = !matches!(ins, Instr::Unary { .. })
        && ins
            .sources()
            .into_iter()
            .flatten()
            .any(|s| matches!(val(s), Val::Dst));
    let t = &mut tmp[..len];
    if aliased {
        t.copy_from_slice(d);
    }
    let t: &[f32] = t;
    let get = |s: u8| -> &[f32] {
        match val(s) {
            Val::S(x) => x,
            Val::Dst => t,
        }
    };
    match *ins {
        Instr::Const { value, .. } => d.fill(value),
        Instr::Unary { a, op, .. } => match val(a) {
            Val::Dst => crate::kernels::unary_inplace_f32(isa, op, d),
            Val::S(x) => crate::kernels::unary_f32(isa, op, x, d),
        },
        Instr::Binary { a, b, op, .. } => {
            let (x, y) = (get(a), get(b));
            match op {
                BinaryOp::Add => map2(x, y, d, |p, q| p + q),
                BinaryOp::Sub => map2(x, y, d, |p, q| p - q),
                BinaryOp::Mul => map2(x, y, d, |p, q| p * q),
                BinaryOp::Div => map2(x, y, d, |p, q| p / q),
                _ => map2(x, y, d, |p, q| binary(p, q, op)),
            }
        }
        Instr::Compare { a, b, op, .. } => {
            let (x, y) = (get(a), get(b));
            let f = |c: bool| if c { 1.0 } else { 0.0 };
            match op {
                CompareOp::Equal => map2(x, y, d, |p, q| f(p == q)),
                CompareOp::Less => map2(x, y, d, |p, q| f(p < q)),
                CompareOp::LessOrEqual => map2(x, y, d, |p, q| f(p <= q)),
                CompareOp::Greater => map2(x, y, d, |p, q| f(p > q)),
                CompareOp::GreaterOrEqual => map2(x, y, d, |p, q| f(p >= q)),
            }
        }
        Instr::Logic { a, b, op, .. } => {
            let f = |c: bool| if c { 1.0 } else { 0.0 };
            let x = get(a);
            match op {
                LogicOp::And => map2(x, get(b), d, |p, q| f(p != 0.0 && q != 0.0)),
                LogicOp::Or => map2(x, get(b), d, |p, q| f(p != 0.0 || q != 0.0)),
                LogicOp::Xor => map2(x, get(b), d, |p, q| f((p != 0.0) != (q != 0.0))),
                LogicOp::Not => map2(x, x, d, |p, _| f(p == 0.0)),
            }
        }
        Instr::Where { cond, a, b, .. } => {
            let (c, x, y) = (get(cond), get(a), get(b));
            for (((o, &c), &p), &q) in d.iter_mut().zip(c).zip(x).zip(y) {
                *o = if c != 0.0 { p } else { q };
            }
        }
        Instr::NonZero { a, .. } => {
            let x = get(a);
            map2(x, x, d, |p, _| if p != 0.0 { 1.0 } else { 0.0 })
        }
    }
}

#[inline(always)]
fn map2(x: &[f32], y: &[f32], d: &mut [f32], f: impl Fn(f32, f32) -> f32) {
    for ((o, &p), &q) in d.iter_mut().zip(x).zip(y) {
        *o = f(p, q);
    }
}
