//! The one error type of the runtime. Every variant names what is wrong; none carries heap data,
//! so the core stays `no_std` without `alloc`.

use core::fmt;

/// Everything that can go wrong when opening a `.mote` file or running a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The buffer is shorter than the part named.
    Truncated {
        /// What could not be read.
        what: &'static str,
    },
    /// The first 8 bytes are not the `.mote` magic.
    BadMagic,
    /// The file's major version is not one this build reads.
    UnsupportedVersion {
        /// Major version in the file.
        major: u16,
        /// Minor version in the file.
        minor: u16,
    },
    /// The stored checksum does not match the bytes.
    ChecksumMismatch {
        /// Checksum recorded in the header.
        stored: u64,
        /// Checksum computed over the file.
        computed: u64,
    },
    /// A section is malformed (out of range, misaligned, duplicated, overlapping or missing).
    BadSection {
        /// Section kind id.
        kind: u32,
        /// What is wrong.
        reason: &'static str,
    },
    /// A count or size exceeds a hard cap.
    TooLarge {
        /// What was counted.
        what: &'static str,
        /// The value found.
        value: u64,
        /// The cap.
        cap: u64,
    },
    /// A tensor record is invalid.
    BadTensor {
        /// Tensor index.
        index: u32,
        /// What is wrong.
        reason: &'static str,
    },
    /// A step is invalid (unknown op, bad parameters, operands that do not fit).
    BadStep {
        /// Step index.
        index: u32,
        /// What is wrong.
        reason: &'static str,
    },
    /// The graph input/output table is invalid.
    BadIo {
        /// What is wrong.
        reason: &'static str,
    },
    /// The weights were packed for kernels this build does not have.
    UnsupportedLayout {
        /// Packed-layout id in the file.
        layout: u32,
    },
    /// The kernel set asked for (`MOTE_FORCE_ISA`) is unknown or not supported by this CPU.
    Isa(mote_targets::isa::IsaError),
    /// A buffer does not have the alignment the engine needs.
    Misaligned {
        /// Which buffer.
        what: &'static str,
        /// The alignment required, in bytes.
        required: usize,
    },
    /// The arena given to a session is smaller than the model needs.
    ArenaTooSmall {
        /// Bytes needed (see `Model::arena_size_min`).
        needed: usize,
        /// Bytes given.
        given: usize,
    },
    /// No graph input or output has this name or index.
    UnknownTensor,
    /// Data handed in has the wrong number of elements or the wrong element type.
    WrongInput {
        /// What is wrong.
        reason: &'static str,
        /// Elements (or bytes) expected.
        expected: usize,
        /// Elements (or bytes) given.
        given: usize,
    },
    /// A data-dependent index was out of range while running a step.
    IndexOutOfRange {
        /// Step index.
        step: u32,
        /// The index read from the tensor.
        index: i64,
        /// The axis length.
        len: u64,
    },
    /// The model uses an op whose kernels this build leaves out (a firmware build that
    /// enables only the op families of its own model).
    OpNotBuilt {
        /// Step index.
        step: u32,
        /// The op's name, as `mote inspect` lists it.
        op: &'static str,
        /// The cargo feature of `mote` that builds it in.
        feature: &'static str,
    },
    /// An I/O error in the `std` layer (open/mmap).
    Io {
        /// What failed.
        what: &'static str,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Truncated { what } => write!(f, "file is truncated: {what} does not fit"),
            Error::BadMagic => write!(f, "not a .mote file (bad magic)"),
            Error::UnsupportedVersion { major, minor } => write!(
                f,
                "unsupported .mote version {major}.{minor} (this build reads major {})",
                crate::format::VERSION_MAJOR
            ),
            Error::ChecksumMismatch { stored, computed } => write!(
                f,
                "checksum mismatch: header says {stored:#018x}, contents give {computed:#018x} (file corrupt)"
            ),
            Error::BadSection { kind, reason } => write!(f, "section {kind}: {reason}"),
            Error::TooLarge { what, value, cap } => {
                write!(f, "{what} is {value}, above the cap of {cap}")
            }
            Error::BadTensor { index, reason } => write!(f, "tensor {index}: {reason}"),
            Error::BadStep { index, reason } => write!(f, "step {index}: {reason}"),
            Error::BadIo { reason } => write!(f, "graph inputs/outputs: {reason}"),
            Error::UnsupportedLayout { layout } => write!(
                f,
                "weights are packed in layout {layout}, which this build's kernels cannot read; convert for this target"
            ),
            Error::Isa(e) => write!(f, "MOTE_FORCE_ISA: {e}"),
            Error::Misaligned { what, required } => {
                write!(f, "{what} must be aligned to {required} bytes")
            }
            Error::ArenaTooSmall { needed, given } => {
                write!(f, "arena of {given} bytes is too small: the model needs {needed}")
            }
            Error::UnknownTensor => write!(f, "no graph input or output with that name or index"),
            Error::WrongInput { reason, expected, given } => {
                write!(f, "{reason}: expected {expected}, got {given}")
            }
            Error::IndexOutOfRange { step, index, len } => write!(
                f,
                "step {step}: index {index} read from a tensor is outside an axis of length {len}"
            ),
            Error::OpNotBuilt { step, op, feature } => write!(
                f,
                "step {step}: op {op} is not built into this binary (enable the `{feature}` \
                 feature of the mote crate)"
            ),
            Error::Io { what } => write!(f, "I/O error: {what}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

/// Result with the runtime's [`Error`].
pub type Result<T> = core::result::Result<T, Error>;
