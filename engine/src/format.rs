//! The `.mote` file format, version 1: constants, record layouts, header and section parsing,
//! and the checksum. See `engine/FORMAT.md` for the byte-level description.
//!
//! This module reads untrusted bytes and contains no `unsafe` code: every read goes through
//! [`le_u32`]/[`le_u64`], which check bounds and return errors.
#![forbid(unsafe_code)]

use crate::error::{Error, Result};

/// The 8 magic bytes every `.mote` file starts with (PNG-style: catches text-mode mangling).
pub const MAGIC: [u8; 8] = *b"MOTE\0\r\n\x1a";
/// Major version this build reads and writes; a file with another major is refused.
pub const VERSION_MAJOR: u16 = 1;
/// Minor version this build writes; readers accept any minor of their major.
pub const VERSION_MINOR: u16 = 0;
/// Size of the fixed header.
pub const HEADER_LEN: usize = 64;
/// Size of one section-table entry.
pub const SECTION_ENTRY_LEN: usize = 24;
/// Size of one tensor record.
pub const TENSOR_RECORD_LEN: usize = 64;
/// Size of one step record.
pub const STEP_RECORD_LEN: usize = 32;
/// Alignment of every constant tensor inside the weights section, of the weights section in
/// the file, and of every tensor in the arena.
pub const DATA_ALIGN: usize = 64;
/// Alignment the file buffer itself must have in memory.
pub const BUFFER_ALIGN: usize = 16;
/// Maximum tensor rank.
pub const MAX_RANK: usize = mote_targets::MAX_RANK;
/// Maximum operands (inputs) of one step.
pub const MAX_STEP_INPUTS: usize = 4;

/// Caps on counts, so hostile files cannot make validation loop for ever.
pub mod caps {
    /// Sections in the table.
    pub const SECTIONS: u32 = 32;
    /// Tensors.
    pub const TENSORS: u64 = 1 << 20;
    /// Steps.
    pub const STEPS: u64 = 1 << 20;
    /// Graph inputs plus outputs.
    pub const IO: u64 = 4096;
    /// Elements of one tensor.
    pub const ELEMENTS: u64 = 1 << 34;
    /// Parameter words of one step.
    pub const STEP_PARAMS: u32 = 256;
    /// Arena bytes.
    pub const ARENA: u64 = 1 << 40;
    /// Inner-loop iterations of one step whose work nothing else bounds (pooling windows).
    pub const STEP_WORK: u64 = 1 << 36;
}

/// Section kinds. New kinds are appended; a reader ignores kinds it does not know.
pub mod section {
    /// UTF-8 names, referenced by (offset, length).
    pub const STRINGS: u32 = 1;
    /// Tensor records.
    pub const TENSORS: u32 = 2;
    /// Step records.
    pub const STEPS: u32 = 3;
    /// Little-endian u32 parameter words referenced by steps.
    pub const PARAMS: u32 = 4;
    /// Graph inputs and outputs: `u32 n_in, u32 n_out`, then tensor ids.
    pub const IO: u32 = 5;
    /// Constant tensor bytes, each 64-byte aligned.
    pub const WEIGHTS: u32 = 6;
    /// Highest kind this build knows.
    pub const LAST_KNOWN: u32 = WEIGHTS;
    /// Kinds that must be present.
    pub const REQUIRED: [u32; 6] = [STRINGS, TENSORS, STEPS, PARAMS, IO, WEIGHTS];
}

/// Element types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DType {
    /// IEEE binary32.
    F32 = 1,
    /// IEEE binary16.
    F16 = 2,
    /// Signed 8-bit.
    I8 = 3,
    /// Unsigned 8-bit.
    U8 = 4,
    /// Signed 32-bit.
    I32 = 5,
    /// Signed 64-bit.
    I64 = 6,
    /// Boolean, one byte, 0 or 1.
    Bool = 7,
}

impl DType {
    /// Decodes a dtype id.
    pub fn from_u8(v: u8) -> Option<DType> {
        Some(match v {
            1 => DType::F32,
            2 => DType::F16,
            3 => DType::I8,
            4 => DType::U8,
            5 => DType::I32,
            6 => DType::I64,
            7 => DType::Bool,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
            DType::I64 => 8,
        }
    }

    /// Lower-case name, as numpy spells it.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::F16 => "float16",
            DType::I8 => "int8",
            DType::U8 => "uint8",
            DType::I32 => "int32",
            DType::I64 => "int64",
            DType::Bool => "bool",
        }
    }
}

/// Where a tensor's bytes live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Storage {
    /// In the weights section of the file (read-only, used in place).
    Const = 0,
    /// In the arena, at the planned offset.
    Arena = 1,
}

/// Reads a little-endian u16 at `at`, or reports `what` as truncated.
pub fn le_u16(b: &[u8], at: usize, what: &'static str) -> Result<u16> {
    let s = b
        .get(at..at.checked_add(2).ok_or(Error::Truncated { what })?)
        .ok_or(Error::Truncated { what })?;
    Ok(u16::from_le_bytes([s[0], s[1]]))
}

/// Reads a little-endian u32 at `at`, or reports `what` as truncated.
pub fn le_u32(b: &[u8], at: usize, what: &'static str) -> Result<u32> {
    let s = b
        .get(at..at.checked_add(4).ok_or(Error::Truncated { what })?)
        .ok_or(Error::Truncated { what })?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// Reads a little-endian u64 at `at`, or reports `what` as truncated.
pub fn le_u64(b: &[u8], at: usize, what: &'static str) -> Result<u64> {
    let s = b
        .get(at..at.checked_add(8).ok_or(Error::Truncated { what })?)
        .ok_or(Error::Truncated { what })?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Ok(u64::from_le_bytes(a))
}

/// The fixed 64-byte header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Major version.
    pub major: u16,
    /// Minor version.
    pub minor: u16,
    /// Flags (none defined in 1.0; must be 0).
    pub flags: u32,
    /// Packed-layout id (see `mote_targets::profile`).
    pub layout: u32,
    /// Entries in the section table.
    pub section_count: u32,
    /// Total file length in bytes.
    pub file_len: u64,
    /// Arena bytes the memory plan needs.
    pub arena_size: u64,
    /// Checksum over the file (see [`checksum`]).
    pub checksum: u64,
}

/// Byte offset of the checksum field in the header.
pub const CHECKSUM_AT: usize = 40;

impl Header {
    /// Parses and checks the header fields that do not depend on the rest of the file.
    pub fn parse(b: &[u8]) -> Result<Header> {
        if b.len() < HEADER_LEN {
            return Err(if b.len() >= 8 && b[..8] != MAGIC {
                Error::BadMagic
            } else {
                Error::Truncated { what: "header" }
            });
        }
        if b[..8] != MAGIC {
            return Err(Error::BadMagic);
        }
        let h = Header {
            major: le_u16(b, 8, "header")?,
            minor: le_u16(b, 10, "header")?,
            flags: le_u32(b, 12, "header")?,
            layout: le_u32(b, 16, "header")?,
            section_count: le_u32(b, 20, "header")?,
            file_len: le_u64(b, 24, "header")?,
            arena_size: le_u64(b, 32, "header")?,
            checksum: le_u64(b, CHECKSUM_AT, "header")?,
        };
        if h.major != VERSION_MAJOR {
            return Err(Error::UnsupportedVersion {
                major: h.major,
                minor: h.minor,
            });
        }
        if h.file_len != b.len() as u64 {
            return Err(if h.file_len > b.len() as u64 {
                Error::Truncated {
                    what: "file (header length is larger than the buffer)",
                }
            } else {
                Error::BadSection {
                    kind: 0,
                    reason: "buffer is longer than the length in the header",
                }
            });
        }
        if h.section_count > caps::SECTIONS {
            return Err(Error::TooLarge {
                what: "section count",
                value: h.section_count as u64,
                cap: caps::SECTIONS as u64,
            });
        }
        if h.arena_size > caps::ARENA {
            return Err(Error::TooLarge {
                what: "arena size",
                value: h.arena_size,
                cap: caps::ARENA,
            });
        }
        Ok(h)
    }

    /// Encodes the header (checksum as given).
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut o = [0u8; HEADER_LEN];
        o[..8].copy_from_slice(&MAGIC);
        o[8..10].copy_from_slice(&self.major.to_le_bytes());
        o[10..12].copy_from_slice(&self.minor.to_le_bytes());
        o[12..16].copy_from_slice(&self.flags.to_le_bytes());
        o[16..20].copy_from_slice(&self.layout.to_le_bytes());
        o[20..24].copy_from_slice(&self.section_count.to_le_bytes());
        o[24..32].copy_from_slice(&self.file_len.to_le_bytes());
        o[32..40].copy_from_slice(&self.arena_size.to_le_bytes());
        o[40..48].copy_from_slice(&self.checksum.to_le_bytes());
        o
    }
}

/// One section-table entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SectionEntry {
    /// Section kind (see [`section`]).
    pub kind: u32,
    /// Byte offset from the start of the file.
    pub offset: u64,
    /// Byte length.
    pub len: u64,
}

impl SectionEntry {
    /// Parses entry `i` of the table.
    pub fn parse(b: &[u8], i: usize) -> Result<SectionEntry> {
        let at = HEADER_LEN + i * SECTION_ENTRY_LEN;
        Ok(SectionEntry {
            kind: le_u32(b, at, "section table")?,
            offset: le_u64(b, at + 8, "section table")?,
            len: le_u64(b, at + 16, "section table")?,
        })
    }

    /// Encodes the entry.
    pub fn encode(&self) -> [u8; SECTION_ENTRY_LEN] {
        let mut o = [0u8; SECTION_ENTRY_LEN];
        o[0..4].copy_from_slice(&self.kind.to_le_bytes());
        o[8..16].copy_from_slice(&self.offset.to_le_bytes());
        o[16..24].copy_from_slice(&self.len.to_le_bytes());
        o
    }
}

/// A tensor record as stored (64 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorRecord {
    /// Name: byte offset into the strings section.
    pub name_off: u32,
    /// Name: byte length.
    pub name_len: u32,
    /// Element type id ([`DType`]).
    pub dtype: u8,
    /// Rank (`<= MAX_RANK`).
    pub rank: u8,
    /// Storage id ([`Storage`]).
    pub storage: u8,
    /// Dimensions; entries past `rank` are 0.
    pub dims: [u32; MAX_RANK],
    /// Offset in the weights section (const) or in the arena.
    pub offset: u64,
    /// Byte length (elements × dtype size).
    pub byte_len: u64,
}

impl TensorRecord {
    /// Parses record `i` of a tensors section.
    pub fn parse(sec: &[u8], i: usize) -> Result<TensorRecord> {
        let at = i * TENSOR_RECORD_LEN;
        let w = "tensor record";
        let mut dims = [0u32; MAX_RANK];
        for (k, d) in dims.iter_mut().enumerate() {
            *d = le_u32(sec, at + 16 + 4 * k, w)?;
        }
        let flags = le_u32(sec, at + 8, w)?.to_le_bytes();
        Ok(TensorRecord {
            name_off: le_u32(sec, at, w)?,
            name_len: le_u32(sec, at + 4, w)?,
            dtype: flags[0],
            rank: flags[1],
            storage: flags[2],
            dims,
            offset: le_u64(sec, at + 48, w)?,
            byte_len: le_u64(sec, at + 56, w)?,
        })
    }

    /// Encodes the record.
    pub fn encode(&self) -> [u8; TENSOR_RECORD_LEN] {
        let mut o = [0u8; TENSOR_RECORD_LEN];
        o[0..4].copy_from_slice(&self.name_off.to_le_bytes());
        o[4..8].copy_from_slice(&self.name_len.to_le_bytes());
        o[8] = self.dtype;
        o[9] = self.rank;
        o[10] = self.storage;
        for (k, d) in self.dims.iter().enumerate() {
            o[16 + 4 * k..20 + 4 * k].copy_from_slice(&d.to_le_bytes());
        }
        o[48..56].copy_from_slice(&self.offset.to_le_bytes());
        o[56..64].copy_from_slice(&self.byte_len.to_le_bytes());
        o
    }
}

/// Marks an absent optional operand in a step record.
pub const NO_TENSOR: u32 = u32::MAX;

/// A step record as stored (32 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepRecord {
    /// Op id (see `crate::ops::OpCode`).
    pub op: u16,
    /// Input tensor ids; [`NO_TENSOR`] where an optional operand is absent.
    pub inputs: [u32; MAX_STEP_INPUTS],
    /// Output tensor id.
    pub output: u32,
    /// First parameter word in the params section.
    pub params_at: u32,
    /// Number of parameter words.
    pub params_len: u32,
}

impl StepRecord {
    /// Parses record `i` of a steps section.
    pub fn parse(sec: &[u8], i: usize) -> Result<StepRecord> {
        let at = i * STEP_RECORD_LEN;
        let w = "step record";
        let mut inputs = [0u32; MAX_STEP_INPUTS];
        for (k, t) in inputs.iter_mut().enumerate() {
            *t = le_u32(sec, at + 4 + 4 * k, w)?;
        }
        Ok(StepRecord {
            op: le_u16(sec, at, w)?,
            inputs,
            output: le_u32(sec, at + 20, w)?,
            params_at: le_u32(sec, at + 24, w)?,
            params_len: le_u32(sec, at + 28, w)?,
        })
    }

    /// Encodes the record.
    pub fn encode(&self) -> [u8; STEP_RECORD_LEN] {
        let mut o = [0u8; STEP_RECORD_LEN];
        o[0..2].copy_from_slice(&self.op.to_le_bytes());
        for (k, t) in self.inputs.iter().enumerate() {
            o[4 + 4 * k..8 + 4 * k].copy_from_slice(&t.to_le_bytes());
        }
        o[20..24].copy_from_slice(&self.output.to_le_bytes());
        o[24..28].copy_from_slice(&self.params_at.to_le_bytes());
        o[28..32].copy_from_slice(&self.params_len.to_le_bytes());
        o
    }
}

const CK_PRIME: u64 = 0x0000_0100_0000_01b3;
const CK_SEED: [u64; 4] = [
    0xcbf2_9ce4_8422_2325,
    0x8422_2325_cbf2_9ce4,
    0x9e37_79b9_7f4a_7c15,
    0x7f4a_7c15_9e37_79b9,
];

/// The file checksum: four interleaved FNV-1a-style lanes over little-endian u64 words of
/// `file[0..40] ++ file[48..]` (the checksum field itself is skipped), the tail zero-padded,
/// the lanes folded together with the total length. Fast (one multiply per 8 bytes per lane)
/// and catches every single-byte change; it is an integrity check, not a signature.
pub fn checksum(file: &[u8]) -> u64 {
    let mut lanes = CK_SEED;
    let head = file.get(..CHECKSUM_AT.min(file.len())).unwrap_or(&[]);
    let tail = file.get(CHECKSUM_AT + 8..).unwrap_or(&[]);
    let mut word_index = 0usize;
    let mut feed = |w: u64, lanes: &mut [u64; 4]| {
        let l = &mut lanes[word_index & 3];
        *l = (*l ^ w).wrapping_mul(CK_PRIME);
        word_index += 1;
    };
    for part in [head, tail] {
        let mut chunks = part.chunks_exact(8);
        for c in &mut chunks {
            let mut a = [0u8; 8];
            a.copy_from_slice(c);
            feed(u64::from_le_bytes(a), &mut lanes);
        }
        let rem = chunks.remainder();
        if !rem.is_empty() {
            let mut a = [0u8; 8];
            a[..rem.len()].copy_from_slice(rem);
            feed(
                u64::from_le_bytes(a) ^ ((rem.len() as u64) << 60),
                &mut lanes,
            );
        }
    }
    let mut h = (file.len() as u64).wrapping_mul(CK_PRIME);
    for l in lanes {
        h = (h ^ l).wrapping_mul(CK_PRIME);
        h ^= h >> 29;
    }
    h
}

/// Rounds `x` up to a multiple of `align` (a power of two).
pub const fn align_up(x: u64, align: u64) -> u64 {
    (x + align - 1) & !(align - 1)
}
