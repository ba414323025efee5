//! The C ABI of mote: `libmote.a` / `libmote.so` and the header `include/mote.h`
//! (generated from this file by cbindgen; `tests/header.rs` keeps it up to date).
//!
//! The core is `#![no_std]` without `alloc`: handles live in storage the caller provides
//! ([`MoteModel`], [`MoteSession`]: opaque, fixed-size, aligned structs declared in the header),
//! the model bytes are used in place and a session runs on a caller-provided arena. The `std`
//! feature (on by default) adds opening a model from a path (mmap), sessions that own their
//! arena, and catches any panic at the boundary (reported as [`MoteStatus::Internal`]).
//! Without `std`, those two functions exist and return [`MoteStatus::Unsupported`].
//!
//! Contracts shared by every function (also in the header's preamble):
//! - every pointer argument is checked for NULL, every handle for being open, every storage
//!   pointer for alignment, every size against the tensor it names: a violation is a status,
//!   never undefined behaviour on our side (a pointer to too little memory, or to freed memory,
//!   cannot be detected and remains the caller's responsibility);
//! - a model's byte buffer and a session's arena are borrowed, not copied: they must stay valid
//!   and unmodified until the handle is freed.
#![cfg_attr(not(feature = "std"), no_std)]
#![warn(missing_docs)]

use core::ffi::{c_char, c_void, CStr};
use core::fmt::{self, Write as _};
use core::mem::{align_of, size_of};
use core::ptr;
use engine::{DType, Error, Model, Session};

#[cfg(test)]
mod tests;

/// Version of the C ABI: bumped whenever a declaration in `mote.h` changes incompatibly
/// (including the storage sizes). Compare with `mote_abi_version()` at start-up.
pub const MOTE_ABI_VERSION: u32 = 1;
/// Largest tensor rank; `mote_tensor_info.dims` has this many entries.
pub const MOTE_MAX_RANK: usize = 8;
/// Size of `mote_model` storage in 8-byte words (512 bytes; the real state is checked to fit
/// at compile time on every target).
pub const MOTE_MODEL_STORAGE_WORDS: usize = 64;
/// Size of `mote_session` storage in 8-byte words (384 bytes).
pub const MOTE_SESSION_STORAGE_WORDS: usize = 48;
/// Capacity of a handle's error message, terminating NUL included.
pub const MOTE_ERROR_MESSAGE_CAPACITY: usize = 192;

/// The result of every fallible call. `MOTE_STATUS_OK` is 0; errors are grouped by tens:
/// 1-9 bad arguments, 10-19 a bad or unsupported model, 20-29 wrong data for a tensor,
/// 30-39 resources, 40-49 the host system, 50-59 this build.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MoteStatus {
    /// Success.
    Ok = 0,
    /// A pointer argument is NULL.
    NullPointer = 1,
    /// A size argument does not match what the tensor or buffer holds, or is too large.
    BadSize = 2,
    /// A buffer (model bytes, handle storage) is not aligned as required.
    Misaligned = 3,
    /// The handle is not open: never opened, failed to open, or already freed.
    BadHandle = 4,
    /// A string argument is not valid (e.g. a path that is not UTF-8).
    BadString = 5,
    /// The model buffer is shorter than the part being read.
    Truncated = 10,
    /// The buffer is not a `.mote` file (wrong magic bytes).
    BadMagic = 11,
    /// The file's format version is not one this build reads.
    UnsupportedVersion = 12,
    /// The file's checksum does not match its contents.
    ChecksumMismatch = 13,
    /// The file is malformed (a section, tensor, step or the input/output table is invalid, or
    /// a count exceeds a cap).
    CorruptModel = 14,
    /// The weights were packed for kernels this build does not have; convert for this target.
    UnsupportedLayout = 15,
    /// The kernel set forced with `MOTE_FORCE_ISA` is unknown or not supported by this CPU.
    UnsupportedIsa = 16,
    /// The element type of the data does not match the tensor's dtype.
    WrongDtype = 20,
    /// An index read from a tensor while running was out of range (bad input data).
    IndexOutOfRange = 21,
    /// No graph input or output has this index or name.
    UnknownTensor = 22,
    /// The arena is smaller than `mote_model_arena_size_min`.
    ArenaTooSmall = 30,
    /// An allocation failed (std builds only: an owned arena).
    OutOfMemory = 31,
    /// The operating system refused (open or map a file).
    Io = 40,
    /// The function needs a feature this build lacks (e.g. opening a path without std).
    Unsupported = 50,
    /// A bug in mote: a panic was caught at the boundary. Please report it.
    Internal = 51,
}

/// Element types, with the same numbers as in the `.mote` file.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MoteDtype {
    /// IEEE binary32 (`float`).
    F32 = 1,
    /// IEEE binary16, as `uint16_t` bits.
    F16 = 2,
    /// `int8_t`.
    I8 = 3,
    /// `uint8_t`.
    U8 = 4,
    /// `int32_t`.
    I32 = 5,
    /// `int64_t`.
    I64 = 6,
    /// One byte, 0 or 1.
    Bool = 7,
}

impl From<DType> for MoteDtype {
    fn from(d: DType) -> Self {
        match d {
            DType::F32 => MoteDtype::F32,
            DType::F16 => MoteDtype::F16,
            DType::I8 => MoteDtype::I8,
            DType::U8 => MoteDtype::U8,
            DType::I32 => MoteDtype::I32,
            DType::I64 => MoteDtype::I64,
            DType::Bool => MoteDtype::Bool,
        }
    }
}

/// Storage for one model handle. Opaque: declare one (static, on the stack or malloc'ed), pass
/// its address to `mote_model_open_buffer` or `mote_model_open_path`, and never copy or move
/// it while open (sessions point to it).
#[repr(C)]
#[derive(Debug)]
pub struct MoteModel {
    opaque: [u64; MOTE_MODEL_STORAGE_WORDS],
}

/// Storage for one session handle. Opaque, like `mote_model`: open it with
/// `mote_session_open` or `mote_session_open_owned`, never copy or move it while open.
#[repr(C)]
#[derive(Debug)]
pub struct MoteSession {
    opaque: [u64; MOTE_SESSION_STORAGE_WORDS],
}

/// What a graph input or output is. Filled by `mote_model_input_info` / `mote_model_output_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MoteTensorInfo {
    /// The name (the ONNX name), pointing into the model's bytes: valid while the model is open.
    /// NOT NUL-terminated: print it with `printf("%.*s", (int)info.name_len, info.name)`.
    pub name: *const c_char,
    /// Bytes of `name`.
    pub name_len: usize,
    /// Element type.
    pub dtype: MoteDtype,
    /// Number of dimensions.
    pub rank: usize,
    /// The shape, row-major (NCHW / (N, T, C) as in ONNX); entries past `rank` are 0.
    pub dims: [usize; MOTE_MAX_RANK],
    /// Number of elements (the product of the dims).
    pub elem_count: usize,
    /// Bytes of the tensor's data: `elem_count` times the dtype's size.
    pub byte_size: usize,
}

// ---------------------------------------------------------------------------------------------
// Internal handle state, placed in the caller's storage.

const TAG_MODEL_OPEN: u64 = 0x6d6f_7465_6d6f_646c; // "motemodl"
const TAG_MODEL_FAILED: u64 = 0x6d6f_7465_6d66_6169;
const TAG_SESSION_OPEN: u64 = 0x6d6f_7465_7365_7373;
const TAG_SESSION_FAILED: u64 = 0x6d6f_7465_7366_6169;
const TAG_CLOSED: u64 = 0;

/// A NUL-terminated message, truncated at a character boundary to fit.
struct Message {
    buf: [u8; MOTE_ERROR_MESSAGE_CAPACITY],
    len: usize,
}

impl Message {
    const EMPTY: Message = Message {
        buf: [0; MOTE_ERROR_MESSAGE_CAPACITY],
        len: 0,
    };
    fn set(&mut self, args: fmt::Arguments<'_>) {
        self.len = 0;
        self.buf[0] = 0;
        // Errors only mean the message was truncated, which `write_str` already handled.
        let _ = self.write_fmt(args);
    }
    fn as_ptr(&self) -> *const c_char {
        self.buf.as_ptr().cast()
    }
}

impl fmt::Write for Message {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = MOTE_ERROR_MESSAGE_CAPACITY - 1 - self.len;
        let mut n = s.len().min(room);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        self.buf[self.len] = 0;
        if n < s.len() {
            Err(fmt::Error)
        } else {
            Ok(())
        }
    }
}

struct OpenModel {
    model: Model<'static>,
    #[cfg(feature = "std")]
    _map: Option<engine::MappedModel>,
}

struct ModelState {
    tag: u64,
    message: Message,
    open: Option<OpenModel>,
}

struct OpenSession {
    model: *const ModelState,
    arena: *mut u8,
    arena_len: usize,
    isa: mote_targets::Isa,
    #[cfg(feature = "std")]
    _owned: Option<Vec<u8>>,
}

struct SessionState {
    tag: u64,
    message: Message,
    open: Option<OpenSession>,
}

const _: () = {
    assert!(size_of::<ModelState>() <= size_of::<MoteModel>());
    assert!(align_of::<ModelState>() <= align_of::<MoteModel>());
    assert!(size_of::<SessionState>() <= size_of::<MoteSession>());
    assert!(align_of::<SessionState>() <= align_of::<MoteSession>());
    assert!(MOTE_MAX_RANK == engine::format::MAX_RANK);
};

// ---------------------------------------------------------------------------------------------
// Status mapping, guards and pointer checks.

impl From<Error> for MoteStatus {
    fn from(e: Error) -> Self {
        match e {
            Error::Truncated { .. } => MoteStatus::Truncated,
            Error::BadMagic => MoteStatus::BadMagic,
            Error::UnsupportedVersion { .. } => MoteStatus::UnsupportedVersion,
            Error::ChecksumMismatch { .. } => MoteStatus::ChecksumMismatch,
            Error::BadSection { .. }
            | Error::TooLarge { .. }
            | Error::BadTensor { .. }
            | Error::BadStep { .. }
            | Error::BadIo { .. } => MoteStatus::CorruptModel,
            Error::UnsupportedLayout { .. } => MoteStatus::UnsupportedLayout,
            Error::Isa(_) => MoteStatus::UnsupportedIsa,
            Error::Misaligned { .. } => MoteStatus::Misaligned,
            Error::ArenaTooSmall { .. } => MoteStatus::ArenaTooSmall,
            Error::UnknownTensor => MoteStatus::UnknownTensor,
            Error::WrongInput { .. } => MoteStatus::BadSize,
            Error::IndexOutOfRange { .. } => MoteStatus::IndexOutOfRange,
            Error::Io { .. } => MoteStatus::Io,
            Error::OpNotBuilt { .. } => MoteStatus::Unsupported,
        }
    }
}

/// A failure: the status and, for calls on a handle, the message to store in it.
struct Fail {
    status: MoteStatus,
    message: Option<FailMessage>,
}

enum FailMessage {
    Engine(Error),
    Text(&'static str),
    Size {
        what: &'static str,
        index: usize,
        expected: usize,
        given: usize,
    },
    Dtype {
        index: usize,
        dtype: DType,
    },
}

impl fmt::Display for FailMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailMessage::Engine(e) => write!(f, "{e}"),
            FailMessage::Text(t) => f.write_str(t),
            FailMessage::Size {
                what,
                index,
                expected,
                given,
            } => write!(
                f,
                "{what} {index} holds {expected} bytes, the call gave {given}"
            ),
            FailMessage::Dtype { index, dtype } => write!(
                f,
                "tensor {index} is {}, not float32; use the byte-sized call",
                dtype.name()
            ),
        }
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail {
            status: e.into(),
            message: Some(FailMessage::Engine(e)),
        }
    }
}

fn fail(status: MoteStatus, text: &'static str) -> Fail {
    Fail {
        status,
        message: Some(FailMessage::Text(text)),
    }
}

type Res<T> = core::result::Result<T, Fail>;

/// Runs `f`, turning a panic (with std) into [`MoteStatus::Internal`]. Without std a panic
/// goes to the firmware's panic handler; the engine has no panicking path on any input.
fn guard(f: impl FnOnce() -> MoteStatus) -> MoteStatus {
    #[cfg(feature = "std")]
    {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(MoteStatus::Internal)
    }
    #[cfg(not(feature = "std"))]
    {
        f()
    }
}

/// A byte slice from C, or the reason it cannot be one. NULL is accepted for an empty slice.
///
/// # Safety
/// If `p` is not NULL it must point to `len` readable bytes that stay valid and unmodified for
/// `'a`.
unsafe fn bytes_in<'a>(p: *const c_void, len: usize) -> Res<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(fail(MoteStatus::NullPointer, "data pointer is NULL"));
    }
    if len > isize::MAX as usize || (p as usize).checked_add(len).is_none() {
        return Err(fail(MoteStatus::BadSize, "size exceeds the address space"));
    }
    // SAFETY: non-NULL, the range does not wrap and is at most isize::MAX bytes; validity for
    // `len` bytes and 'a is the caller's contract.
    Ok(unsafe { core::slice::from_raw_parts(p.cast::<u8>(), len) })
}

/// Checks a storage pointer and returns it cast to the state type.
fn storage<S, T>(p: *mut S) -> core::result::Result<*mut T, MoteStatus> {
    if p.is_null() {
        return Err(MoteStatus::NullPointer);
    }
    if !(p as usize).is_multiple_of(align_of::<T>()) {
        return Err(MoteStatus::Misaligned);
    }
    Ok(p.cast())
}

/// The open model in `m`.
///
/// # Safety
/// `m` must be NULL or point to a `MoteModel` that is only read during `'a`.
unsafe fn model_ref<'a>(m: *const MoteModel) -> Res<&'a OpenModel> {
    let st = storage::<_, ModelState>(m.cast_mut()).map_err(|s| fail(s, "model handle"))?;
    // SAFETY: non-NULL and aligned for ModelState; the tag is read as a plain u64 (any bit
    // pattern is valid), and only a tag of an open model leads to reading the rest, which
    // `mote_model_open_*` initialised.
    unsafe {
        if ptr::read(ptr::addr_of!((*st).tag)) != TAG_MODEL_OPEN {
            return Err(fail(MoteStatus::BadHandle, "the model is not open"));
        }
        (*st)
            .open
            .as_ref()
            .ok_or(fail(MoteStatus::BadHandle, "the model is not open"))
    }
}

/// Writes a fresh model state into the storage.
///
/// # Safety
/// `st` must be non-NULL, aligned, and point to writable storage of `MoteModel` size.
unsafe fn model_put(st: *mut ModelState, r: Res<OpenModel>) -> MoteStatus {
    let (tag, status, open, msg) = match r {
        Ok(o) => (TAG_MODEL_OPEN, MoteStatus::Ok, Some(o), None),
        Err(e) => (TAG_MODEL_FAILED, e.status, None, e.message),
    };
    let mut state = ModelState {
        tag,
        message: Message::EMPTY,
        open,
    };
    if let Some(m) = msg {
        state.message.set(format_args!("{m}"));
    }
    // SAFETY: the caller's contract; `write` does not read or drop the old contents (which
    // may be uninitialised).
    unsafe { ptr::write(st, state) };
    status
}

fn model_from_bytes(bytes: &'static [u8]) -> Res<OpenModel> {
    Ok(OpenModel {
        model: Model::from_bytes(bytes)?,
        #[cfg(feature = "std")]
        _map: None,
    })
}

/// Copies `info` into the C struct.
fn fill_info(t: &engine::TensorInfo<'_>, out: &mut MoteTensorInfo) {
    let mut dims = [0usize; MOTE_MAX_RANK];
    dims[..t.rank].copy_from_slice(t.shape());
    *out = MoteTensorInfo {
        name: t.name.as_ptr().cast(),
        name_len: t.name.len(),
        dtype: t.dtype.into(),
        rank: t.rank,
        dims,
        elem_count: t.elems(),
        byte_size: t.byte_len,
    };
}

// ---------------------------------------------------------------------------------------------
// Library

/// The library version, e.g. `"0.1.0"`: a static NUL-terminated string.
#[no_mangle]
pub extern "C" fn mote_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The C ABI version this library implements; it must equal the header's `MOTE_ABI_VERSION`.
#[no_mangle]
pub extern "C" fn mote_abi_version() -> u32 {
    MOTE_ABI_VERSION
}

/// A static, NUL-terminated English description of a status code (any value is accepted).
#[no_mangle]
pub extern "C" fn mote_status_str(status: i32) -> *const c_char {
    let s: &'static str = match status {
        0 => "ok\0",
        1 => "a pointer argument is NULL\0",
        2 => "a size does not match the tensor or buffer\0",
        3 => "a buffer is not aligned as required\0",
        4 => "the handle is not open\0",
        5 => "a string argument is invalid\0",
        10 => "the model buffer is truncated\0",
        11 => "not a .mote file\0",
        12 => "unsupported .mote format version\0",
        13 => "model checksum mismatch (file corrupt)\0",
        14 => "the model file is corrupt\0",
        15 => "the weights are packed for another target\0",
        16 => "the forced kernel set is unknown or unsupported\0",
        20 => "the data's element type differs from the tensor's\0",
        21 => "an index in the input data is out of range\0",
        22 => "no graph input or output with that index or name\0",
        30 => "the arena is too small\0",
        31 => "out of memory\0",
        40 => "I/O error\0",
        50 => "not supported by this build\0",
        51 => "internal error (a bug in mote)\0",
        _ => "unknown status code\0",
    };
    s.as_ptr().cast()
}

// ---------------------------------------------------------------------------------------------
// Models

/// Opens a model from a caller buffer, zero-copy: validates the whole file (checksum included)
/// and reads the weights in place afterwards.
///
/// - `model`: storage for the handle (aligned as its type).
/// - `bytes`, `len`: the `.mote` file; 16-byte aligned (else `MOTE_STATUS_MISALIGNED`). The
///   buffer is borrowed, not copied: it must stay valid and unmodified until `mote_model_free`.
///   For firmware, a `const` array in flash with `_Alignas(16)` works.
///
/// On failure the handle is not open, but `mote_model_last_error` describes the problem (free
/// is optional then).
///
/// # Safety
/// `model` must be NULL or point to writable `mote_model` storage; `bytes` must be NULL or
/// point to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn mote_model_open_buffer(
    model: *mut MoteModel,
    bytes: *const c_void,
    len: usize,
) -> MoteStatus {
    guard(|| {
        let st = match storage::<_, ModelState>(model) {
            Ok(st) => st,
            Err(s) => return s,
        };
        let r = if bytes.is_null() {
            Err(fail(MoteStatus::NullPointer, "model bytes pointer is NULL"))
        } else {
            // SAFETY: the caller's contract: `len` readable bytes, kept valid and unmodified
            // until `mote_model_free` (documented), which is what the 'static here stands for;
            // no reference to them outlives the handle.
            unsafe { bytes_in(bytes, len) }.and_then(model_from_bytes)
        };
        // SAFETY: `storage` checked non-NULL and alignment; size is the caller's contract.
        unsafe { model_put(st, r) }
    })
}

/// Opens a `.mote` file by path: memory-maps it read-only (no copy) and validates it. The file
/// must not be modified while open. Builds without std return `MOTE_STATUS_UNSUPPORTED`.
///
/// # Safety
/// `model` as in `mote_model_open_buffer`; `path` must be NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn mote_model_open_path(
    model: *mut MoteModel,
    path: *const c_char,
) -> MoteStatus {
    guard(|| {
        let st = match storage::<_, ModelState>(model) {
            Ok(st) => st,
            Err(s) => return s,
        };
        let r = if path.is_null() {
            Err(fail(MoteStatus::NullPointer, "path is NULL"))
        } else {
            // SAFETY: non-NULL; NUL-terminated by the caller's contract.
            let path = unsafe { CStr::from_ptr(path) };
            open_path(path)
        };
        // SAFETY: `storage` checked non-NULL and alignment; size is the caller's contract.
        unsafe { model_put(st, r) }
    })
}

#[cfg(feature = "std")]
fn open_path(path: &CStr) -> Res<OpenModel> {
    let path = path
        .to_str()
        .map_err(|_| fail(MoteStatus::BadString, "path is not UTF-8"))?;
    let map = engine::MappedModel::open(path)?;
    let bytes = map.bytes();
    // SAFETY: the mapping is owned by the returned value, next to the model that borrows it,
    // and its address does not change when the value moves; it is dropped (unmapped) only
    // with the model, in `mote_model_free`.
    let bytes: &'static [u8] = unsafe { core::slice::from_raw_parts(bytes.as_ptr(), bytes.len()) };
    let model = Model::from_bytes(bytes)?;
    Ok(OpenModel {
        model,
        _map: Some(map),
    })
}

#[cfg(not(feature = "std"))]
fn open_path(_path: &CStr) -> Res<OpenModel> {
    Err(fail(
        MoteStatus::Unsupported,
        "opening a path needs a build with std",
    ))
}

/// Closes a model: unmaps a path-opened file; the storage and the caller's buffer are the
/// caller's again. Every session on the model must be freed first. NULL, a closed or a failed
/// handle are accepted (no-op); the handle is closed afterwards.
///
/// # Safety
/// `model` must be NULL or point to `mote_model` storage that is opened, failed or closed.
#[no_mangle]
pub unsafe extern "C" fn mote_model_free(model: *mut MoteModel) {
    guard(|| {
        let Ok(st) = storage::<_, ModelState>(model) else {
            return MoteStatus::Ok;
        };
        // SAFETY: non-NULL and aligned; the tag is read as a plain u64; only an open or failed
        // tag (written by `model_put`) leads to dropping the initialised state in place.
        unsafe {
            let tag = ptr::read(ptr::addr_of!((*st).tag));
            if tag == TAG_MODEL_OPEN || tag == TAG_MODEL_FAILED {
                ptr::drop_in_place(st);
            }
            ptr::write(ptr::addr_of_mut!((*st).tag), TAG_CLOSED);
        }
        MoteStatus::Ok
    });
}

/// The message of the last failed open of this handle (NUL-terminated, at most
/// `MOTE_ERROR_MESSAGE_CAPACITY` bytes with the NUL); `""` if it opened. Valid until the handle
/// is opened again or freed. For a NULL or never-opened handle, a static text saying so.
///
/// # Safety
/// `model` must be NULL or point to `mote_model` storage.
#[no_mangle]
pub unsafe extern "C" fn mote_model_last_error(model: *const MoteModel) -> *const c_char {
    let Ok(st) = storage::<_, ModelState>(model.cast_mut()) else {
        return c"invalid model handle (NULL or misaligned)".as_ptr();
    };
    // SAFETY: non-NULL and aligned; the message is only read when the tag says `model_put`
    // initialised the state.
    unsafe {
        let tag = ptr::read(ptr::addr_of!((*st).tag));
        if tag == TAG_MODEL_OPEN || tag == TAG_MODEL_FAILED {
            (*st).message.as_ptr()
        } else {
            c"the model handle is not open".as_ptr()
        }
    }
}

/// Calls `f` with the open model, writes the result through `out`.
///
/// # Safety
/// `model` as in [`model_ref`]; `out` NULL or writable and aligned for `T`.
unsafe fn model_query<T>(
    model: *const MoteModel,
    out: *mut T,
    f: impl FnOnce(&Model<'static>) -> Res<T>,
) -> MoteStatus {
    guard(|| {
        if out.is_null() {
            return MoteStatus::NullPointer;
        }
        // SAFETY: the caller's contract.
        let r = unsafe { model_ref(model) }.and_then(|m| f(&m.model));
        match r {
            Ok(v) => {
                // SAFETY: non-NULL; writable and aligned by the caller's contract.
                unsafe { ptr::write(out, v) };
                MoteStatus::Ok
            }
            Err(e) => e.status,
        }
    })
}

/// Writes the arena size a session on this model needs (`mote_session_open`), in bytes. It
/// includes 64 bytes of slack so that any arena start can be aligned.
///
/// # Safety
/// `model`: NULL or `mote_model` storage; `out`: NULL or a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn mote_model_arena_size_min(
    model: *const MoteModel,
    out: *mut usize,
) -> MoteStatus {
    // SAFETY: forwarded contract.
    unsafe { model_query(model, out, |m| Ok(m.arena_size_min())) }
}

/// Writes the number of graph inputs.
///
/// # Safety
/// As `mote_model_arena_size_min`.
#[no_mangle]
pub unsafe extern "C" fn mote_model_input_count(
    model: *const MoteModel,
    out: *mut usize,
) -> MoteStatus {
    // SAFETY: forwarded contract.
    unsafe { model_query(model, out, |m| Ok(m.input_count())) }
}

/// Writes the number of graph outputs.
///
/// # Safety
/// As `mote_model_arena_size_min`.
#[no_mangle]
pub unsafe extern "C" fn mote_model_output_count(
    model: *const MoteModel,
    out: *mut usize,
) -> MoteStatus {
    // SAFETY: forwarded contract.
    unsafe { model_query(model, out, |m| Ok(m.output_count())) }
}

/// Describes graph input `index` (0-based): name, dtype, shape, sizes.
///
/// # Safety
/// `model` as `mote_model_arena_size_min`; `out` NULL or a writable `mote_tensor_info`.
#[no_mangle]
pub unsafe extern "C" fn mote_model_input_info(
    model: *const MoteModel,
    index: usize,
    out: *mut MoteTensorInfo,
) -> MoteStatus {
    // SAFETY: forwarded contract.
    unsafe { tensor_info(model, out, |m| m.input(index)) }
}

/// Describes graph output `index` (0-based).
///
/// # Safety
/// As `mote_model_input_info`.
#[no_mangle]
pub unsafe extern "C" fn mote_model_output_info(
    model: *const MoteModel,
    index: usize,
    out: *mut MoteTensorInfo,
) -> MoteStatus {
    // SAFETY: forwarded contract.
    unsafe { tensor_info(model, out, |m| m.output(index)) }
}

/// # Safety
/// As `mote_model_input_info`.
unsafe fn tensor_info(
    model: *const MoteModel,
    out: *mut MoteTensorInfo,
    get: impl FnOnce(&Model<'static>) -> engine::Result<engine::TensorInfo<'static>>,
) -> MoteStatus {
    // SAFETY: forwarded contract.
    unsafe {
        model_query(model, out, |m| {
            let t = get(m)?;
            let mut info = MoteTensorInfo {
                name: ptr::null(),
                name_len: 0,
                dtype: MoteDtype::F32,
                rank: 0,
                dims: [0; MOTE_MAX_RANK],
                elem_count: 0,
                byte_size: 0,
            };
            fill_info(&t, &mut info);
            Ok(info)
        })
    }
}

/// Writes the index of the graph input called `name` (NUL-terminated, exact match).
///
/// # Safety
/// `model` as `mote_model_arena_size_min`; `name` NULL or NUL-terminated; `out` NULL or a
/// writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn mote_model_input_index(
    model: *const MoteModel,
    name: *const c_char,
    out: *mut usize,
) -> MoteStatus {
    // SAFETY: forwarded contract.
    unsafe { name_index(model, name, out, |m, n| m.input_index(n)) }
}

/// Writes the index of the graph output called `name` (NUL-terminated, exact match).
///
/// # Safety
/// As `mote_model_input_index`.
#[no_mangle]
pub unsafe extern "C" fn mote_model_output_index(
    model: *const MoteModel,
    name: *const c_char,
    out: *mut usize,
) -> MoteStatus {
    // SAFETY: forwarded contract.
    unsafe { name_index(model, name, out, |m, n| m.output_index(n)) }
}

/// # Safety
/// As `mote_model_input_index`.
unsafe fn name_index(
    model: *const MoteModel,
    name: *const c_char,
    out: *mut usize,
    find: impl FnOnce(&Model<'static>, &str) -> engine::Result<usize>,
) -> MoteStatus {
    if name.is_null() {
        return MoteStatus::NullPointer;
    }
    // SAFETY: forwarded contract; `name` is non-NULL and NUL-terminated by contract.
    unsafe {
        model_query(model, out, |m| {
            let n = CStr::from_ptr(name)
                .to_str()
                .map_err(|_| fail(MoteStatus::UnknownTensor, "name is not UTF-8"))?;
            Ok(find(m, n)?)
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Sessions

/// Writes a fresh session state into the storage.
///
/// # Safety
/// `st` must be non-NULL, aligned, and point to writable storage of `MoteSession` size.
unsafe fn session_put(st: *mut SessionState, r: Res<OpenSession>) -> MoteStatus {
    let (tag, status, open, msg) = match r {
        Ok(o) => (TAG_SESSION_OPEN, MoteStatus::Ok, Some(o), None),
        Err(e) => (TAG_SESSION_FAILED, e.status, None, e.message),
    };
    let mut state = SessionState {
        tag,
        message: Message::EMPTY,
        open,
    };
    if let Some(m) = msg {
        state.message.set(format_args!("{m}"));
    }
    // SAFETY: the caller's contract; the old contents are neither read nor dropped.
    unsafe { ptr::write(st, state) };
    status
}

/// Binds an open model to an arena, checking that the arena fits the plan.
///
/// # Safety
/// `model` must be NULL or point to `mote_model` storage that outlives the session;
/// `arena` must point to `arena_len` writable bytes that outlive the session.
unsafe fn session_bind(
    model: *const MoteModel,
    arena: *mut u8,
    arena_len: usize,
) -> Res<OpenSession> {
    // SAFETY: the caller's contract.
    let m = unsafe { model_ref(model) }?;
    let isa = engine::exec::default_isa()?;
    // SAFETY: the caller's contract; the slice lives only for this check.
    let slice = unsafe { core::slice::from_raw_parts_mut(arena, arena_len) };
    Session::with_isa(&m.model, slice, isa)?;
    Ok(OpenSession {
        model: model.cast(),
        arena,
        arena_len,
        isa,
        #[cfg(feature = "std")]
        _owned: None,
    })
}

/// Opens a session of `model` on a caller arena of `arena_len` bytes, at least
/// `mote_model_arena_size_min` (else `MOTE_STATUS_ARENA_TOO_SMALL`). The arena needs no
/// particular alignment (the session aligns its start itself) and no initialisation. The kernel
/// set is the best this CPU has (with std, `MOTE_FORCE_ISA=generic|avx2|avx512|neon` forces one).
///
/// The arena and the model storage are borrowed until `mote_session_free`: neither may be
/// freed, moved or written by the caller meanwhile (reading outputs is fine).
///
/// # Safety
/// `session` NULL or writable `mote_session` storage; `model` NULL or `mote_model` storage;
/// `arena` NULL or `arena_len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn mote_session_open(
    session: *mut MoteSession,
    model: *const MoteModel,
    arena: *mut c_void,
    arena_len: usize,
) -> MoteStatus {
    guard(|| {
        let st = match storage::<_, SessionState>(session) {
            Ok(st) => st,
            Err(s) => return s,
        };
        let r = if arena.is_null() {
            Err(fail(MoteStatus::NullPointer, "arena pointer is NULL"))
        } else if arena_len > isize::MAX as usize
            || (arena as usize).checked_add(arena_len).is_none()
        {
            Err(fail(
                MoteStatus::BadSize,
                "arena size exceeds the address space",
            ))
        } else {
            // SAFETY: the caller's contract (documented above).
            unsafe { session_bind(model, arena.cast(), arena_len) }
        };
        // SAFETY: checked non-NULL and aligned; size is the caller's contract.
        unsafe { session_put(st, r) }
    })
}

/// Opens a session of `model` on an arena the library allocates (`mote_model_arena_size_min`
/// bytes, once) and releases in `mote_session_free`. Builds without std return
/// `MOTE_STATUS_UNSUPPORTED`.
///
/// # Safety
/// `session` NULL or writable `mote_session` storage; `model` NULL or `mote_model` storage
/// that outlives the session.
#[no_mangle]
pub unsafe extern "C" fn mote_session_open_owned(
    session: *mut MoteSession,
    model: *const MoteModel,
) -> MoteStatus {
    guard(|| {
        let st = match storage::<_, SessionState>(session) {
            Ok(st) => st,
            Err(s) => return s,
        };
        // SAFETY: the caller's contract.
        let r = unsafe { open_owned(model) };
        // SAFETY: checked non-NULL and aligned; size is the caller's contract.
        unsafe { session_put(st, r) }
    })
}

/// # Safety
/// As `mote_session_open_owned`.
#[cfg(feature = "std")]
unsafe fn open_owned(model: *const MoteModel) -> Res<OpenSession> {
    // SAFETY: the caller's contract.
    let m = unsafe { model_ref(model) }?;
    let n = m.model.arena_size_min();
    let mut owned = Vec::new();
    owned.try_reserve_exact(n).map_err(|_| {
        fail(
            MoteStatus::OutOfMemory,
            "cannot allocate the session's arena",
        )
    })?;
    owned.resize(n, 0u8);
    let arena = owned.as_mut_ptr();
    // SAFETY: `arena` points to the `n` bytes of `owned`, whose heap buffer does not move
    // when `owned` moves into the session and is freed only with it.
    let mut s = unsafe { session_bind(model, arena, n) }?;
    s._owned = Some(owned);
    Ok(s)
}

#[cfg(not(feature = "std"))]
unsafe fn open_owned(_model: *const MoteModel) -> Res<OpenSession> {
    Err(fail(
        MoteStatus::Unsupported,
        "an owned arena needs a build with std",
    ))
}

/// Closes a session (and frees its arena if it owns one). NULL, a closed or a failed handle
/// are accepted (no-op).
///
/// # Safety
/// `session` must be NULL or point to `mote_session` storage that is opened, failed or closed.
#[no_mangle]
pub unsafe extern "C" fn mote_session_free(session: *mut MoteSession) {
    guard(|| {
        let Ok(st) = storage::<_, SessionState>(session) else {
            return MoteStatus::Ok;
        };
        // SAFETY: non-NULL and aligned; the state is dropped only when its tag says
        // `session_put` initialised it.
        unsafe {
            let tag = ptr::read(ptr::addr_of!((*st).tag));
            if tag == TAG_SESSION_OPEN || tag == TAG_SESSION_FAILED {
                ptr::drop_in_place(st);
            }
            ptr::write(ptr::addr_of_mut!((*st).tag), TAG_CLOSED);
        }
        MoteStatus::Ok
    });
}

/// The message of the last failed call on this session (NUL-terminated), `""` if none failed
/// since it opened. Valid until the next call on the session. For a NULL or closed handle, a
/// static text saying so.
///
/// # Safety
/// `session` must be NULL or point to `mote_session` storage.
#[no_mangle]
pub unsafe extern "C" fn mote_session_last_error(session: *const MoteSession) -> *const c_char {
    let Ok(st) = storage::<_, SessionState>(session.cast_mut()) else {
        return c"invalid session handle (NULL or misaligned)".as_ptr();
    };
    // SAFETY: non-NULL and aligned; the message is only read when the tag says `session_put`
    // initialised the state.
    unsafe {
        let tag = ptr::read(ptr::addr_of!((*st).tag));
        if tag == TAG_SESSION_OPEN || tag == TAG_SESSION_FAILED {
            (*st).message.as_ptr()
        } else {
            c"the session handle is not open".as_ptr()
        }
    }
}

/// Runs `f` on the open session in `session`; stores the failure message in the handle.
///
/// # Safety
/// `session` must be NULL or point to `mote_session` storage whose model and arena (if open)
/// are still valid, used by this thread only for the call.
unsafe fn with_session(
    session: *mut MoteSession,
    f: impl FnOnce(&mut Session<'_, '_>) -> Res<()>,
) -> MoteStatus {
    guard(|| {
        let st = match storage::<_, SessionState>(session) {
            Ok(st) => st,
            Err(s) => return s,
        };
        // SAFETY: non-NULL and aligned; the rest of the state is only touched when the tag
        // says it was initialised by `session_put`.
        let st = unsafe {
            if ptr::read(ptr::addr_of!((*st).tag)) != TAG_SESSION_OPEN {
                return MoteStatus::BadHandle;
            }
            &mut *st
        };
        let Some(open) = st.open.as_ref() else {
            return MoteStatus::BadHandle;
        };
        // SAFETY: the session was opened on this model storage, which the caller keeps valid
        // (documented); `model_ref` re-checks that it is still open.
        let r = unsafe { model_ref(open.model.cast()) }.and_then(|m| {
            // SAFETY: the arena was checked at open and stays the session's alone until it is
            // freed (caller's contract); this is the only live view of it.
            let arena = unsafe { core::slice::from_raw_parts_mut(open.arena, open.arena_len) };
            let mut s = Session::with_isa(&m.model, arena, open.isa)?;
            f(&mut s)
        });
        match r {
            Ok(()) => {
                st.message.set(format_args!(""));
                MoteStatus::Ok
            }
            Err(e) => {
                match e.message {
                    Some(m) => st.message.set(format_args!("{m}")),
                    None => st.message.set(format_args!("")),
                }
                e.status
            }
        }
    })
}

/// Copies `len` bytes at `src` into input `index`, checking the size (and, for typed calls,
/// the dtype) before the caller's memory is touched.
///
/// # Safety
/// `src` must be NULL or point to `len` readable bytes.
unsafe fn write_input(
    s: &mut Session<'_, '_>,
    index: usize,
    src: *const c_void,
    len: usize,
    f32_only: bool,
) -> Res<()> {
    let t = s.model().input(index)?;
    if f32_only && t.dtype != DType::F32 {
        return Err(Fail {
            status: MoteStatus::WrongDtype,
            message: Some(FailMessage::Dtype {
                index,
                dtype: t.dtype,
            }),
        });
    }
    if src.is_null() && len != 0 {
        return Err(fail(MoteStatus::NullPointer, "data pointer is NULL"));
    }
    if t.byte_len != len {
        return Err(Fail {
            status: MoteStatus::BadSize,
            message: Some(FailMessage::Size {
                what: "input",
                index,
                expected: t.byte_len,
                given: len,
            }),
        });
    }
    // SAFETY: the caller's contract; `len` is the input's size, checked above.
    let src = unsafe { bytes_in(src, len) }?;
    s.input_bytes_mut(index)?.copy_from_slice(src);
    Ok(())
}

/// Copies `byte_size` bytes into graph input `index`; `byte_size` must equal the input's
/// `byte_size` (else `MOTE_STATUS_BAD_SIZE`). Data is row-major, native-endian, of the input's
/// dtype; no alignment needed. Inputs keep their values across runs.
///
/// # Safety
/// `session` as for every session call; `data` NULL or `byte_size` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn mote_session_set_input(
    session: *mut MoteSession,
    index: usize,
    data: *const c_void,
    byte_size: usize,
) -> MoteStatus {
    // SAFETY: forwarded contracts.
    unsafe { with_session(session, |s| write_input(s, index, data, byte_size, false)) }
}

/// Copies `count` floats into graph input `index`, which must be float32 (else
/// `MOTE_STATUS_WRONG_DTYPE`) of exactly `count` elements (else `MOTE_STATUS_BAD_SIZE`).
///
/// # Safety
/// `session` as for every session call; `data` NULL or `count` readable floats.
#[no_mangle]
pub unsafe extern "C" fn mote_session_set_input_f32(
    session: *mut MoteSession,
    index: usize,
    data: *const f32,
    count: usize,
) -> MoteStatus {
    // SAFETY: forwarded contracts.
    unsafe {
        with_session(session, |s| {
            let n = count
                .checked_mul(4)
                .ok_or(fail(MoteStatus::BadSize, "count overflows"))?;
            write_input(s, index, data.cast(), n, true)
        })
    }
}

/// `mote_session_set_input` for the input called `name` (NUL-terminated).
///
/// # Safety
/// As `mote_session_set_input`; `name` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn mote_session_set_input_by_name(
    session: *mut MoteSession,
    name: *const c_char,
    data: *const c_void,
    byte_size: usize,
) -> MoteStatus {
    // SAFETY: forwarded contracts.
    unsafe {
        with_session(session, |s| {
            if name.is_null() {
                return Err(fail(MoteStatus::NullPointer, "name is NULL"));
            }
            let n = CStr::from_ptr(name)
                .to_str()
                .map_err(|_| fail(MoteStatus::UnknownTensor, "name is not UTF-8"))?;
            let index = s.model().input_index(n)?;
            write_input(s, index, data, byte_size, false)
        })
    }
}

/// Runs the model once on the current inputs. Allocates nothing.
///
/// # Safety
/// `session` as for every session call.
#[no_mangle]
pub unsafe extern "C" fn mote_session_run(session: *mut MoteSession) -> MoteStatus {
    // SAFETY: forwarded contract.
    unsafe { with_session(session, |s| Ok(s.run()?)) }
}

/// Points `*data` at graph output `index` inside the arena and writes its size in bytes to
/// `*byte_size`: zero-copy. The pointer is 64-byte aligned and valid until the next
/// `mote_session_set_input*`, `mote_session_run` or `mote_session_free` on this session.
///
/// # Safety
/// `session` as for every session call; `data`, `byte_size` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mote_session_output(
    session: *mut MoteSession,
    index: usize,
    data: *mut *const c_void,
    byte_size: *mut usize,
) -> MoteStatus {
    if data.is_null() || byte_size.is_null() {
        return MoteStatus::NullPointer;
    }
    // SAFETY: forwarded contracts; both out pointers are non-NULL and writable by contract.
    unsafe {
        with_session(session, |s| {
            let b = s.output_bytes(index)?;
            ptr::write(data, b.as_ptr().cast());
            ptr::write(byte_size, b.len());
            Ok(())
        })
    }
}

/// Copies graph output `index` into `dst`; `byte_size` must equal the output's size.
///
/// # Safety
/// `session` as for every session call; `dst` NULL or `byte_size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn mote_session_get_output(
    session: *mut MoteSession,
    index: usize,
    dst: *mut c_void,
    byte_size: usize,
) -> MoteStatus {
    // SAFETY: forwarded contracts.
    unsafe { copy_output(session, index, dst, byte_size, false) }
}

/// Copies float32 graph output `index` into `dst` (`count` floats, exactly the output's
/// element count; `MOTE_STATUS_WRONG_DTYPE` if it is not float32).
///
/// # Safety
/// `session` as for every session call; `dst` NULL or `count` writable floats.
#[no_mangle]
pub unsafe extern "C" fn mote_session_get_output_f32(
    session: *mut MoteSession,
    index: usize,
    dst: *mut f32,
    count: usize,
) -> MoteStatus {
    let Some(n) = count.checked_mul(4) else {
        return MoteStatus::BadSize;
    };
    // SAFETY: forwarded contracts.
    unsafe { copy_output(session, index, dst.cast(), n, true) }
}

/// # Safety
/// As `mote_session_get_output`.
unsafe fn copy_output(
    session: *mut MoteSession,
    index: usize,
    dst: *mut c_void,
    byte_size: usize,
    f32_only: bool,
) -> MoteStatus {
    // SAFETY: forwarded contracts.
    unsafe {
        with_session(session, |s| {
            if dst.is_null() {
                return Err(fail(MoteStatus::NullPointer, "destination is NULL"));
            }
            let t = s.model().output(index)?;
            if f32_only && t.dtype != DType::F32 {
                return Err(Fail {
                    status: MoteStatus::WrongDtype,
                    message: Some(FailMessage::Dtype {
                        index,
                        dtype: t.dtype,
                    }),
                });
            }
            let b = s.output_bytes(index)?;
            if b.len() != byte_size {
                return Err(Fail {
                    status: MoteStatus::BadSize,
                    message: Some(FailMessage::Size {
                        what: "output",
                        index,
                        expected: b.len(),
                        given: byte_size,
                    }),
                });
            }
            // SAFETY: `dst` is non-NULL with `byte_size` writable bytes (caller's contract),
            // and cannot overlap the arena the session borrows exclusively.
            ptr::copy_nonoverlapping(b.as_ptr(), dst.cast::<u8>(), b.len());
            Ok(())
        })
    }
}

/// Halts on panic (feature `panic-handler`): a no_std staticlib must carry a panic handler, and
/// C firmware cannot provide a Rust one. The engine has no panicking path on any input; this
/// only satisfies the compiler. Rust firmware uses the `mote` crate directly instead.
#[cfg(all(feature = "panic-handler", not(feature = "std"), not(test)))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {
        core::hint::spin_loop();
    }
}
