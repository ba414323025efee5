//! A validated, zero-copy view of a `.mote` file.
#![forbid(unsafe_code)]

use crate::error::{Error, Result};
use crate::format::{
    caps, checksum, le_u32, section, DType, Header, SectionEntry, StepRecord, Storage,
    TensorRecord, BUFFER_ALIGN, DATA_ALIGN, HEADER_LEN, MAX_RANK, MAX_STEP_INPUTS, NO_TENSOR,
    SECTION_ENTRY_LEN, STEP_RECORD_LEN, TENSOR_RECORD_LEN,
};
use crate::ops::{step_error, Op, Operand, ParamReader};

/// Everything about one tensor, decoded from its record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorInfo<'a> {
    /// Index in the tensor table.
    pub index: u32,
    /// Name (the ONNX name for graph inputs and outputs).
    pub name: &'a str,
    /// Element type.
    pub dtype: DType,
    /// Rank.
    pub rank: usize,
    /// Dims; entries past `rank` are 0.
    pub dims: [usize; MAX_RANK],
    /// Where the bytes live.
    pub storage: Storage,
    /// Offset in the weights section or the arena.
    pub offset: usize,
    /// Bytes.
    pub byte_len: usize,
}

impl TensorInfo<'_> {
    /// The shape, row-major.
    pub fn shape(&self) -> &[usize] {
        &self.dims[..self.rank]
    }
    /// Number of elements.
    pub fn elems(&self) -> usize {
        self.byte_len / self.dtype.size()
    }
    pub(crate) fn operand(&self) -> Operand {
        Operand {
            dtype: self.dtype,
            elems: self.elems(),
        }
    }
}

/// One decoded step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Step {
    /// The operation and its parameters.
    pub op: Op,
    /// Operand tensor ids (`None` = absent optional operand).
    pub inputs: [Option<u32>; MAX_STEP_INPUTS],
    /// Output tensor id.
    pub output: u32,
}

/// A `.mote` model borrowed from a byte buffer (an mmap, flash, or any slice). Constructing one
/// validates the whole file; afterwards no accessor can fail on a well-formed index, and weights
/// are read in place.
#[derive(Clone, Copy, Debug)]
pub struct Model<'a> {
    header: Header,
    strings: &'a [u8],
    tensors: &'a [u8],
    steps: &'a [u8],
    params: &'a [u8],
    io: &'a [u8],
    weights: &'a [u8],
    n_inputs: usize,
    n_outputs: usize,
}

fn sec_err(kind: u32, reason: &'static str) -> Error {
    Error::BadSection { kind, reason }
}

impl<'a> Model<'a> {
    /// Validates `bytes` as a `.mote` file and borrows it. The buffer must be 16-byte aligned
    /// (mmap and [`crate::AlignedBytes`] are).
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Model<'a>> {
        let header = Header::parse(bytes)?;
        if !(bytes.as_ptr() as usize).is_multiple_of(BUFFER_ALIGN) {
            return Err(Error::Misaligned {
                what: "model buffer",
                required: BUFFER_ALIGN,
            });
        }
        if header.flags != 0 {
            return Err(sec_err(0, "unknown header flags"));
        }
        if !mote_targets::profile::layout_supported(header.layout) {
            return Err(Error::UnsupportedLayout {
                layout: header.layout,
            });
        }
        let table_end = HEADER_LEN + header.section_count as usize * SECTION_ENTRY_LEN;
        if table_end > bytes.len() {
            return Err(Error::Truncated {
                what: "section table",
            });
        }
        let computed = checksum(bytes);
        if computed != header.checksum {
            return Err(Error::ChecksumMismatch {
                stored: header.checksum,
                computed,
            });
        }

        let mut found: [Option<(usize, usize)>; section::LAST_KNOWN as usize + 1] =
            [None; section::LAST_KNOWN as usize + 1];
        let mut ranges = [(0u64, 0u64); caps::SECTIONS as usize];
        for i in 0..header.section_count as usize {
            let e = SectionEntry::parse(bytes, i)?;
            let end = e
                .offset
                .checked_add(e.len)
                .ok_or_else(|| sec_err(e.kind, "offset + length overflows"))?;
            if e.offset < table_end as u64 {
                return Err(sec_err(e.kind, "starts inside the header or section table"));
            }
            if end > bytes.len() as u64 {
                return Err(sec_err(e.kind, "extends past the end of the file"));
            }
            let align = if e.kind == section::WEIGHTS {
                DATA_ALIGN as u64
            } else {
                8
            };
            if e.offset % align != 0 {
                return Err(sec_err(e.kind, "misaligned offset"));
            }
            for &(s, t) in &ranges[..i] {
                if e.offset < t && s < end {
                    return Err(sec_err(e.kind, "overlaps another section"));
                }
            }
            ranges[i] = (e.offset, end);
            if e.kind == 0 {
                return Err(sec_err(0, "section kind 0 is reserved"));
            }
            if let Some(slot) = found.get_mut(e.kind as usize) {
                if slot.is_some() {
                    return Err(sec_err(e.kind, "appears twice"));
                }
                *slot = Some((e.offset as usize, end as usize));
            } else if header.minor == 0 {
                return Err(sec_err(
                    e.kind,
                    "unknown section kind in a version 1.0 file",
                ));
            }
        }
        let get = |k: u32| -> Result<&'a [u8]> {
            let (s, e) = found
                .get(k as usize)
                .copied()
                .flatten()
                .ok_or_else(|| sec_err(k, "required section is missing"))?;
            bytes
                .get(s..e)
                .ok_or_else(|| sec_err(k, "extends past the end of the file"))
        };
        for k in section::REQUIRED {
            get(k)?;
        }
        let strings = get(section::STRINGS)?;
        let tensors = get(section::TENSORS)?;
        let steps = get(section::STEPS)?;
        let params = get(section::PARAMS)?;
        let io = get(section::IO)?;
        let weights = get(section::WEIGHTS)?;
        if tensors.len() % TENSOR_RECORD_LEN != 0 {
            return Err(sec_err(
                section::TENSORS,
                "length is not a whole number of records",
            ));
        }
        if steps.len() % STEP_RECORD_LEN != 0 {
            return Err(sec_err(
                section::STEPS,
                "length is not a whole number of records",
            ));
        }
        if params.len() % 4 != 0 {
            return Err(sec_err(
                section::PARAMS,
                "length is not a whole number of words",
            ));
        }
        let n_tensors = (tensors.len() / TENSOR_RECORD_LEN) as u64;
        if n_tensors > caps::TENSORS {
            return Err(Error::TooLarge {
                what: "tensor count",
                value: n_tensors,
                cap: caps::TENSORS,
            });
        }
        let n_steps = (steps.len() / STEP_RECORD_LEN) as u64;
        if n_steps > caps::STEPS {
            return Err(Error::TooLarge {
                what: "step count",
                value: n_steps,
                cap: caps::STEPS,
            });
        }
        let n_inputs = le_u32(io, 0, "io section")? as usize;
        let n_outputs = le_u32(io, 4, "io section")? as usize;
        let n_io = n_inputs as u64 + n_outputs as u64;
        if n_io > caps::IO {
            return Err(Error::TooLarge {
                what: "graph input + output count",
                value: n_io,
                cap: caps::IO,
            });
        }
        if io.len() as u64 != 8 + 4 * n_io {
            return Err(Error::BadIo {
                reason: "io section length does not match its counts",
            });
        }
        if n_outputs == 0 {
            return Err(Error::BadIo {
                reason: "the graph has no outputs",
            });
        }

        let m = Model {
            header,
            strings,
            tensors,
            steps,
            params,
            io,
            weights,
            n_inputs,
            n_outputs,
        };
        m.validate()?;
        Ok(m)
    }

    fn validate(&self) -> Result<()> {
        let arena = self.header.arena_size;
        for i in 0..self.tensor_count() {
            let idx = i as u32;
            let bad = |reason| Error::BadTensor { index: idx, reason };
            let r = TensorRecord::parse(self.tensors, i)?;
            let ne = (r.name_off as usize)
                .checked_add(r.name_len as usize)
                .ok_or(bad("name out of range"))?;
            let name = self
                .strings
                .get(r.name_off as usize..ne)
                .ok_or(bad("name out of range"))?;
            core::str::from_utf8(name).map_err(|_| bad("name is not UTF-8"))?;
            let dtype = DType::from_u8(r.dtype).ok_or(bad("unknown dtype"))?;
            if r.rank as usize > MAX_RANK {
                return Err(bad("rank above 8"));
            }
            if r.dims[r.rank as usize..].iter().any(|&d| d != 0) {
                return Err(bad("dims past the rank are not zero"));
            }
            let mut elems: u64 = 1;
            for &d in &r.dims[..r.rank as usize] {
                elems = elems
                    .checked_mul(d as u64)
                    .ok_or(bad("element count overflows"))?;
                if elems > caps::ELEMENTS {
                    return Err(Error::TooLarge {
                        what: "tensor elements",
                        value: elems,
                        cap: caps::ELEMENTS,
                    });
                }
            }
            if r.byte_len != elems * dtype.size() as u64 {
                return Err(bad("byte length does not match dtype and shape"));
            }
            let end = r
                .offset
                .checked_add(r.byte_len)
                .ok_or(bad("offset overflows"))?;
            match r.storage {
                0 => {
                    if r.offset % DATA_ALIGN as u64 != 0 {
                        return Err(bad("constant data is not 64-byte aligned"));
                    }
                    if end > self.weights.len() as u64 {
                        return Err(bad("constant data extends past the weights section"));
                    }
                }
                1 => {
                    if r.offset % DATA_ALIGN as u64 != 0 {
                        return Err(bad("arena offset is not 64-byte aligned"));
                    }
                    if end > arena {
                        return Err(bad("extends past the arena"));
                    }
                }
                _ => return Err(bad("unknown storage")),
            }
        }
        let io_tensor = |at: usize| -> Result<TensorInfo<'a>> {
            let id = le_u32(self.io, at, "io section")?;
            let t = self.tensor(id).map_err(|_| Error::BadIo {
                reason: "tensor id out of range",
            })?;
            if t.storage != Storage::Arena {
                return Err(Error::BadIo {
                    reason: "graph inputs and outputs must live in the arena",
                });
            }
            Ok(t)
        };
        for k in 0..self.n_inputs + self.n_outputs {
            io_tensor(8 + 4 * k)?;
        }
        for i in 0..self.step_count() {
            let s = self.step(i)?;
            if let Some((feature, false)) = s.op.feature() {
                return Err(Error::OpNotBuilt {
                    step: i as u32,
                    op: s.op.name(),
                    feature,
                });
            }
            let err = step_error(i as u32);
            let out = self
                .tensor(s.output)
                .map_err(|_| err("output tensor id out of range"))?;
            if out.storage != Storage::Arena {
                return Err(err("output must live in the arena"));
            }
            let mut ops = [None; MAX_STEP_INPUTS];
            for (k, (slot, id)) in ops.iter_mut().zip(s.inputs.iter()).enumerate() {
                if let Some(id) = *id {
                    let t = self
                        .tensor(id)
                        .map_err(|_| err("input tensor id out of range"))?;
                    let overlaps = t.storage == Storage::Arena
                        && t.offset < out.offset + out.byte_len
                        && out.offset < t.offset + t.byte_len;
                    // Operand 0 of an element-wise op may *be* the output (computed in place).
                    let in_place = k == 0
                        && s.op.in_place_ok()
                        && t.offset == out.offset
                        && t.byte_len == out.byte_len
                        && t.dtype == out.dtype;
                    if overlaps && !in_place {
                        return Err(err("an input overlaps the output in the arena"));
                    }
                    *slot = Some(t.operand());
                }
            }
            // An int8 layer's scratch is written while its other operands are read: it must be
            // arena memory that no other operand of the step touches.
            if let Some(k) = s.op.scratch_slot() {
                if let Some(id) = s.inputs[k] {
                    let t = self
                        .tensor(id)
                        .map_err(|_| err("input tensor id out of range"))?;
                    if t.storage != Storage::Arena {
                        return Err(err("scratch must live in the arena"));
                    }
                    for (j, other) in s.inputs.iter().enumerate() {
                        let Some(o) = other.filter(|_| j != k) else {
                            continue;
                        };
                        let o = self
                            .tensor(o)
                            .map_err(|_| err("input tensor id out of range"))?;
                        if o.storage == Storage::Arena
                            && o.offset < t.offset + t.byte_len
                            && t.offset < o.offset + o.byte_len
                        {
                            return Err(err("scratch overlaps another operand in the arena"));
                        }
                    }
                }
            }
            s.op.validate(self.header.layout, &ops, &out.operand())
                .map_err(err)?;
        }
        Ok(())
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }
    /// Format version `(major, minor)`.
    pub fn version(&self) -> (u16, u16) {
        (self.header.major, self.header.minor)
    }
    /// Packed-layout id of the weights.
    pub fn layout(&self) -> u32 {
        self.header.layout
    }
    /// Arena bytes the memory plan uses.
    pub fn arena_size(&self) -> usize {
        self.header.arena_size as usize
    }
    /// Smallest arena a [`crate::Session`] accepts: the plan plus slack to align its start.
    pub fn arena_size_min(&self) -> usize {
        self.arena_size() + DATA_ALIGN
    }
    /// Bytes of the weights section.
    pub fn weights_size(&self) -> usize {
        self.weights.len()
    }
    /// Number of tensors.
    pub fn tensor_count(&self) -> usize {
        self.tensors.len() / TENSOR_RECORD_LEN
    }
    /// Number of steps.
    pub fn step_count(&self) -> usize {
        self.steps.len() / STEP_RECORD_LEN
    }
    /// Number of graph inputs.
    pub fn input_count(&self) -> usize {
        self.n_inputs
    }
    /// Number of graph outputs.
    pub fn output_count(&self) -> usize {
        self.n_outputs
    }

    /// Tensor `id`.
    pub fn tensor(&self, id: u32) -> Result<TensorInfo<'a>> {
        let bad = |reason| Error::BadTensor { index: id, reason };
        if id as usize >= self.tensor_count() {
            return Err(bad("tensor id out of range"));
        }
        let r = TensorRecord::parse(self.tensors, id as usize)?;
        let ne = (r.name_off as usize).saturating_add(r.name_len as usize);
        let name = self
            .strings
            .get(r.name_off as usize..ne)
            .and_then(|b| core::str::from_utf8(b).ok())
            .ok_or(bad("bad name"))?;
        let dtype = DType::from_u8(r.dtype).ok_or(bad("unknown dtype"))?;
        let storage = match r.storage {
            0 => Storage::Const,
            1 => Storage::Arena,
            _ => return Err(bad("unknown storage")),
        };
        let rank = (r.rank as usize).min(MAX_RANK);
        let mut dims = [0usize; MAX_RANK];
        for (d, &s) in dims.iter_mut().zip(&r.dims[..rank]) {
            *d = s as usize;
        }
        Ok(TensorInfo {
            index: id,
            name,
            dtype,
            rank,
            dims,
            storage,
            offset: r.offset as usize,
            byte_len: r.byte_len as usize,
        })
    }

    /// Step `i`, decoded.
    pub fn step(&self, i: usize) -> Result<Step> {
        let err = step_error(i as u32);
        let r = StepRecord::parse(self.steps, i)?;
        if r.params_len > caps::STEP_PARAMS {
            return Err(Error::TooLarge {
                what: "step parameter words",
                value: r.params_len as u64,
                cap: caps::STEP_PARAMS as u64,
            });
        }
        let mut pr = ParamReader::new(self.params, r.params_at, r.params_len).map_err(&err)?;
        let op = Op::decode(r.op, &mut pr).map_err(&err)?;
        let mut inputs = [None; MAX_STEP_INPUTS];
        for (d, &s) in inputs.iter_mut().zip(&r.inputs) {
            *d = if s == NO_TENSOR { None } else { Some(s) };
        }
        Ok(Step {
            op,
            inputs,
            output: r.output,
        })
    }

    /// Graph input `i`.
    pub fn input(&self, i: usize) -> Result<TensorInfo<'a>> {
        if i >= self.n_inputs {
            return Err(Error::UnknownTensor);
        }
        self.tensor(le_u32(self.io, 8 + 4 * i, "io section")?)
    }
    /// Graph output `i`.
    pub fn output(&self, i: usize) -> Result<TensorInfo<'a>> {
        if i >= self.n_outputs {
            return Err(Error::UnknownTensor);
        }
        self.tensor(le_u32(self.io, 8 + 4 * (self.n_inputs + i), "io section")?)
    }
    /// Index of the graph input called `name`.
    pub fn input_index(&self, name: &str) -> Result<usize> {
        (0..self.n_inputs)
            .find(|&i| self.input(i).map(|t| t.name == name).unwrap_or(false))
            .ok_or(Error::UnknownTensor)
    }
    /// Index of the graph output called `name`.
    pub fn output_index(&self, name: &str) -> Result<usize> {
        (0..self.n_outputs)
            .find(|&i| self.output(i).map(|t| t.name == name).unwrap_or(false))
            .ok_or(Error::UnknownTensor)
    }

    /// The bytes of a constant tensor, in place in the file.
    pub fn const_bytes(&self, t: &TensorInfo<'_>) -> Result<&'a [u8]> {
        if t.storage != Storage::Const {
            return Err(Error::BadTensor {
                index: t.index,
                reason: "not a constant",
            });
        }
        self.weights
            .get(t.offset..t.offset + t.byte_len)
            .ok_or(Error::BadTensor {
                index: t.index,
                reason: "out of range",
            })
    }
}
