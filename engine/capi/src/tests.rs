//! The C API driven from Rust as a C caller would: the demo model against its reference, then
//! the error matrix (NULL everywhere, sizes, alignment, corrupt files, unknown tensors, closed
//! handles). These are unit tests because the crate builds `libmote.*` only (no rlib: its lib
//! name `mote` would collide with the engine's); `tests/c_example.rs` drives the real library
//! from C.

use super::*;
use mote_tests::{compare, convert_file, repo_root};
use mote_tools::npy::{self, Array};
use std::ffi::{CStr, CString};

fn model_storage() -> Box<MoteModel> {
    Box::new(MoteModel {
        opaque: [0; MOTE_MODEL_STORAGE_WORDS],
    })
}

fn session_storage() -> Box<MoteSession> {
    Box::new(MoteSession {
        opaque: [0; MOTE_SESSION_STORAGE_WORDS],
    })
}

fn text(p: *const c_char) -> String {
    assert!(!p.is_null());
    // SAFETY: every message pointer the API returns is NUL-terminated and outlives this call.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

struct Fixture {
    bytes: engine::AlignedBytes,
    input: Array,
    want: Array,
}

fn demo() -> Fixture {
    let dir = repo_root().join("models/demo");
    Fixture {
        bytes: convert_file(&dir.join("demo.onnx")).unwrap(),
        input: npy::read(&dir.join("demo.input.npy")).unwrap(),
        want: npy::read(&dir.join("demo.output.npy")).unwrap(),
    }
}

fn op_fixture(name: &str) -> Fixture {
    let dir = repo_root().join("tests/fixtures/ops").join(name);
    Fixture {
        bytes: convert_file(&dir.join("model.onnx")).unwrap(),
        input: npy::read(&dir.join("input_0.npy")).unwrap(),
        want: npy::read(&dir.join("output_0.npy")).unwrap(),
    }
}

/// Opens `bytes` in `m`, panicking with the library's message on failure.
fn open(m: &mut MoteModel, bytes: &[u8]) {
    // SAFETY: `m` is model storage; `bytes` outlives every use of `m` in these tests.
    let st = unsafe { mote_model_open_buffer(m, bytes.as_ptr().cast(), bytes.len()) };
    assert_eq!(st, MoteStatus::Ok, "{}", text(model_error(m)));
}

fn output_array(s: &mut MoteSession, m: &MoteModel, want: &Array) -> Array {
    let mut info = MaybeInfo::new();
    assert_eq!(
        // SAFETY: valid handles and out pointers.
        unsafe { mote_model_output_info(m, 0, info.as_mut()) },
        MoteStatus::Ok
    );
    let mut data = vec![0u8; info.0.byte_size];
    // SAFETY: `data` holds `byte_size` bytes.
    let st = unsafe { mote_session_get_output(s, 0, data.as_mut_ptr().cast(), data.len()) };
    assert_eq!(st, MoteStatus::Ok, "{}", text(session_error(s)));
    Array {
        dtype: want.dtype,
        shape: info.0.dims[..info.0.rank].to_vec(),
        data,
    }
}

struct MaybeInfo(MoteTensorInfo);
impl MaybeInfo {
    fn new() -> Self {
        MaybeInfo(MoteTensorInfo {
            name: ptr::null(),
            name_len: 0,
            dtype: MoteDtype::Bool,
            rank: 99,
            dims: [0; MOTE_MAX_RANK],
            elem_count: 0,
            byte_size: 0,
        })
    }
    fn as_mut(&mut self) -> *mut MoteTensorInfo {
        &mut self.0
    }
    fn name(&self) -> &str {
        // SAFETY: the API points `name` at `name_len` bytes of the open model.
        let b = unsafe { core::slice::from_raw_parts(self.0.name.cast::<u8>(), self.0.name_len) };
        std::str::from_utf8(b).unwrap()
    }
}

#[test]
fn demo_runs_through_the_buffer_api_on_a_caller_arena_and_matches_the_reference() {
    let f = demo();
    let mut m = model_storage();
    open(&mut m, f.bytes.as_slice());
    assert_eq!(text(model_error(&m)), "");

    let (mut n_in, mut n_out, mut arena_len) = (0usize, 0usize, 0usize);
    // SAFETY: valid handle, writable outs (for the three calls below).
    unsafe {
        assert_eq!(mote_model_input_count(&*m, &mut n_in), MoteStatus::Ok);
        assert_eq!(mote_model_output_count(&*m, &mut n_out), MoteStatus::Ok);
        assert_eq!(
            mote_model_arena_size_min(&*m, &mut arena_len),
            MoteStatus::Ok
        );
    }
    let model = engine::Model::from_bytes(f.bytes.as_slice()).unwrap();
    assert_eq!((n_in, n_out), (model.input_count(), model.output_count()));
    assert_eq!(arena_len, model.arena_size_min());

    let mut info = MaybeInfo::new();
    assert_eq!(
        // SAFETY: valid handle and out pointer.
        unsafe { mote_model_input_info(&*m, 0, info.as_mut()) },
        MoteStatus::Ok
    );
    let t = model.input(0).unwrap();
    assert_eq!(info.name(), t.name);
    assert_eq!(info.0.dtype, MoteDtype::F32);
    assert_eq!(&info.0.dims[..info.0.rank], f.input.shape.as_slice());
    assert!(info.0.dims[info.0.rank..].iter().all(|&d| d == 0));
    assert_eq!(info.0.byte_size, f.input.data.len());
    assert_eq!(info.0.elem_count * 4, info.0.byte_size);
    let name = CString::new(info.name()).unwrap();
    let mut idx = usize::MAX;
    assert_eq!(
        // SAFETY: valid handle, NUL-terminated name, writable out.
        unsafe { mote_model_input_index(&*m, name.as_ptr(), &mut idx) },
        MoteStatus::Ok
    );
    assert_eq!(idx, 0);

    // An arena of exactly the minimum size, starting at an odd address: the session aligns it.
    let mut arena = vec![0u8; arena_len + 1];
    let mut s = session_storage();
    // SAFETY: `arena[1..]` holds `arena_len` bytes and outlives the session (freed below).
    let st = unsafe { mote_session_open(&mut *s, &*m, arena[1..].as_mut_ptr().cast(), arena_len) };
    assert_eq!(st, MoteStatus::Ok, "{}", text(session_error(&s)));
    // SAFETY: the input bytes match the input's size.
    let st = unsafe {
        mote_session_set_input(&mut *s, 0, f.input.data.as_ptr().cast(), f.input.data.len())
    };
    assert_eq!(st, MoteStatus::Ok);
    // SAFETY: valid session.
    assert_eq!(unsafe { mote_session_run(&mut *s) }, MoteStatus::Ok);
    let got = output_array(&mut s, &m, &f.want);
    compare(&got, &f.want, 1e-4).unwrap();

    // Zero-copy view and the typed copy agree with the byte copy.
    let (mut p, mut n) = (ptr::null::<c_void>(), 0usize);
    assert_eq!(
        // SAFETY: valid session and outs.
        unsafe { mote_session_output(&mut *s, 0, &mut p, &mut n) },
        MoteStatus::Ok
    );
    assert_eq!(p as usize % 64, 0);
    assert_eq!(
        // SAFETY: the API points `p` at `n` bytes of the arena, valid until the next call.
        unsafe { core::slice::from_raw_parts(p.cast::<u8>(), n) },
        &got.data[..]
    );
    let mut floats = vec![0f32; n / 4];
    // SAFETY: `floats` holds `n / 4` floats.
    let st = unsafe { mote_session_get_output_f32(&mut *s, 0, floats.as_mut_ptr(), floats.len()) };
    assert_eq!(st, MoteStatus::Ok);
    assert_eq!(engine::view::bytes_of(&floats), &got.data[..]);

    // By name, with the f32 call: same result.
    let mut zeros = vec![0f32; f.input.data.len() / 4];
    // SAFETY: sizes match; then the real data by name.
    unsafe {
        assert_eq!(
            mote_session_set_input_f32(&mut *s, 0, zeros.as_mut_ptr(), zeros.len()),
            MoteStatus::Ok
        );
        assert_eq!(
            mote_session_set_input_by_name(
                &mut *s,
                name.as_ptr(),
                f.input.data.as_ptr().cast(),
                f.input.data.len()
            ),
            MoteStatus::Ok
        );
        assert_eq!(mote_session_run(&mut *s), MoteStatus::Ok);
    }
    assert_eq!(output_array(&mut s, &m, &f.want).data, got.data);

    // SAFETY: session before model; both were open.
    unsafe {
        mote_session_free(&mut *s);
        mote_model_free(&mut *m);
    }
    // Closed handles are refused, not dereferenced.
    // SAFETY: closed handles are valid arguments.
    unsafe {
        assert_eq!(mote_session_run(&mut *s), MoteStatus::BadHandle);
        assert_eq!(
            mote_model_input_count(&*m, &mut n_in),
            MoteStatus::BadHandle
        );
        mote_session_free(&mut *s);
        mote_model_free(&mut *m);
    }
}

fn model_error(m: &MoteModel) -> *const c_char {
    // SAFETY: `m` is model storage.
    unsafe { mote_model_last_error(m) }
}

fn session_error(s: &MoteSession) -> *const c_char {
    // SAFETY: `s` is session storage.
    unsafe { mote_session_last_error(s) }
}

#[test]
fn path_api_and_owned_arena_give_the_same_output() {
    let f = demo();
    let path = std::env::temp_dir().join(format!("mote-capi-{}.mote", std::process::id()));
    std::fs::write(&path, f.bytes.as_slice()).unwrap();
    let cpath = CString::new(path.to_str().unwrap()).unwrap();
    let mut m = model_storage();
    // SAFETY: storage and a NUL-terminated path.
    let st = unsafe { mote_model_open_path(&mut *m, cpath.as_ptr()) };
    assert_eq!(st, MoteStatus::Ok, "{}", text(model_error(&m)));
    let mut s = session_storage();
    assert_eq!(
        // SAFETY: valid storage and model.
        unsafe { mote_session_open_owned(&mut *s, &*m) },
        MoteStatus::Ok
    );
    // SAFETY: sizes match.
    unsafe {
        assert_eq!(
            mote_session_set_input(&mut *s, 0, f.input.data.as_ptr().cast(), f.input.data.len()),
            MoteStatus::Ok
        );
        assert_eq!(mote_session_run(&mut *s), MoteStatus::Ok);
    }
    compare(&output_array(&mut s, &m, &f.want), &f.want, 1e-4).unwrap();
    // SAFETY: open handles, session first.
    unsafe {
        mote_session_free(&mut *s);
        mote_model_free(&mut *m);
    }
    let _ = std::fs::remove_file(&path);

    // A missing file is an I/O status with a message.
    let missing = CString::new("/no/such/dir/model.mote").unwrap();
    // SAFETY: storage and a NUL-terminated path.
    let st = unsafe { mote_model_open_path(&mut *m, missing.as_ptr()) };
    assert_eq!(st, MoteStatus::Io);
    assert!(text(model_error(&m)).contains("cannot open"));
    // SAFETY: a failed handle may be freed.
    unsafe { mote_model_free(&mut *m) };
}

#[test]
fn null_pointers_are_statuses() {
    let f = demo();
    let mut m = model_storage();
    let mut n = 0usize;
    let mut info = MaybeInfo::new();
    let name = c"x";
    let null_m: *mut MoteModel = ptr::null_mut();
    let null_s: *mut MoteSession = ptr::null_mut();
    let data = [0u8; 16];
    // SAFETY: every call below is given NULL for at least one pointer, which the API checks;
    // the other pointers are valid.
    unsafe {
        let b = f.bytes.as_slice();
        assert_eq!(
            mote_model_open_buffer(null_m, b.as_ptr().cast(), b.len()),
            MoteStatus::NullPointer
        );
        assert_eq!(
            mote_model_open_buffer(&mut *m, ptr::null(), b.len()),
            MoteStatus::NullPointer
        );
        assert!(text(mote_model_last_error(&*m)).contains("NULL"));
        assert_eq!(
            mote_model_open_path(null_m, name.as_ptr()),
            MoteStatus::NullPointer
        );
        assert_eq!(
            mote_model_open_path(&mut *m, ptr::null()),
            MoteStatus::NullPointer
        );
        assert_eq!(
            mote_model_arena_size_min(null_m, &mut n),
            MoteStatus::NullPointer
        );
        assert_eq!(
            mote_model_input_count(null_m, &mut n),
            MoteStatus::NullPointer
        );
        assert_eq!(
            mote_model_output_count(null_m, &mut n),
            MoteStatus::NullPointer
        );
        assert_eq!(
            mote_model_input_info(null_m, 0, info.as_mut()),
            MoteStatus::NullPointer
        );
        assert_eq!(
            mote_model_output_info(null_m, 0, info.as_mut()),
            MoteStatus::NullPointer
        );
        assert_eq!(
            mote_model_input_index(null_m, name.as_ptr(), &mut n),
            MoteStatus::NullPointer
        );
        assert_eq!(
            mote_model_output_index(null_m, name.as_ptr(), &mut n),
            MoteStatus::NullPointer
        );
        assert!(!text(mote_model_last_error(null_m)).is_empty());
        mote_model_free(null_m);

        open(&mut m, b);
        assert_eq!(
            mote_model_arena_size_min(&*m, ptr::null_mut()),
            MoteStatus::NullPointer
        );
        assert_eq!(
            mote_model_input_count(&*m, ptr::null_mut()),
            MoteStatus::NullPointer
        );
        assert_eq!(
            mote_model_output_count(&*m, ptr::null_mut()),
            MoteStatus::NullPointer
        );
        assert_eq!(
            mote_model_input_info(&*m, 0, ptr::null_mut()),
            MoteStatus::NullPointer
        );
        assert_eq!(
            mote_model_output_info(&*m, 0, ptr::null_mut()),
            MoteStatus::NullPointer
        );
        assert_eq!(
            mote_model_input_index(&*m, ptr::null(), &mut n),
            MoteStatus::NullPointer
        );
        assert_eq!(
            mote_model_input_index(&*m, name.as_ptr(), ptr::null_mut()),
            MoteStatus::NullPointer
        );
        assert_eq!(
            mote_model_output_index(&*m, ptr::null(), &mut n),
            MoteStatus::NullPointer
        );

        let mut s = session_storage();
        let mut arena = vec![0u8; f.bytes.as_slice().len() * 4 + (1 << 20)];
        let a = arena.as_mut_ptr().cast::<c_void>();
        assert_eq!(
            mote_session_open(null_s, &*m, a, arena.len()),
            MoteStatus::NullPointer
        );
        assert_eq!(
            mote_session_open(&mut *s, ptr::null(), a, arena.len()),
            MoteStatus::NullPointer
        );
        assert_eq!(
            mote_session_open(&mut *s, &*m, ptr::null_mut(), arena.len()),
            MoteStatus::NullPointer
        );
        assert!(text(mote_session_last_error(&*s)).contains("NULL"));
        assert_eq!(
            mote_session_open_owned(null_s, &*m),
            MoteStatus::NullPointer
        );
        assert_eq!(
            mote_session_open_owned(&mut *s, ptr::null()),
            MoteStatus::NullPointer
        );
        assert_eq!(
            mote_session_set_input(null_s, 0, data.as_ptr().cast(), 16),
            MoteStatus::NullPointer
        );
        assert_eq!(
            mote_session_set_input_f32(null_s, 0, ptr::null(), 4),
            MoteStatus::NullPointer
        );
        assert_eq!(
            mote_session_set_input_by_name(null_s, name.as_ptr(), data.as_ptr().cast(), 16),
            MoteStatus::NullPointer
        );
        assert_eq!(mote_session_run(null_s), MoteStatus::NullPointer);
        let (mut p, mut len) = (ptr::null::<c_void>(), 0usize);
        assert_eq!(
            mote_session_output(null_s, 0, &mut p, &mut len),
            MoteStatus::NullPointer
        );
        assert_eq!(
            mote_session_get_output(null_s, 0, arena.as_mut_ptr().cast(), 40),
            MoteStatus::NullPointer
        );
        assert_eq!(
            mote_session_get_output_f32(null_s, 0, ptr::null_mut(), 10),
            MoteStatus::NullPointer
        );
        assert!(!text(mote_session_last_error(null_s)).is_empty());
        mote_session_free(null_s);

        let owned = mote_session_open_owned(&mut *s, &*m);
        assert_eq!(owned, MoteStatus::Ok);
        assert_eq!(
            mote_session_set_input(&mut *s, 0, ptr::null(), 16),
            MoteStatus::NullPointer
        );
        assert_eq!(
            mote_session_set_input_f32(&mut *s, 0, ptr::null(), 4),
            MoteStatus::NullPointer
        );
        assert_eq!(
            mote_session_set_input_by_name(&mut *s, ptr::null(), data.as_ptr().cast(), 16),
            MoteStatus::NullPointer
        );
        assert_eq!(
            mote_session_output(&mut *s, 0, ptr::null_mut(), &mut len),
            MoteStatus::NullPointer
        );
        assert_eq!(
            mote_session_output(&mut *s, 0, &mut p, ptr::null_mut()),
            MoteStatus::NullPointer
        );
        assert_eq!(
            mote_session_get_output(&mut *s, 0, ptr::null_mut(), 40),
            MoteStatus::NullPointer
        );
        assert_eq!(
            mote_session_get_output_f32(&mut *s, 0, ptr::null_mut(), 10),
            MoteStatus::NullPointer
        );
        assert!(text(mote_session_last_error(&*s)).contains("NULL"));
        mote_session_free(&mut *s);
        mote_model_free(&mut *m);
    }
}

#[test]
fn sizes_alignment_and_unknown_tensors_are_statuses() {
    let f = demo();
    let b = f.bytes.as_slice();
    let mut m = model_storage();
    open(&mut m, b);
    let mut need = 0usize;
    // SAFETY: valid handle and out.
    unsafe { mote_model_arena_size_min(&*m, &mut need) };
    let mut s = session_storage();
    let mut arena = vec![0u8; need];
    let mut n = 0usize;
    let mut info = MaybeInfo::new();
    // SAFETY: every pointer is valid for the size given; the sizes and indices are what is
    // wrong.
    unsafe {
        // Too-small arena: the message names both sizes.
        let st = mote_session_open(&mut *s, &*m, arena.as_mut_ptr().cast(), need / 2);
        assert_eq!(st, MoteStatus::ArenaTooSmall);
        let msg = text(mote_session_last_error(&*s));
        assert!(msg.contains(&need.to_string()), "{msg}");
        assert_eq!(mote_session_run(&mut *s), MoteStatus::BadHandle);

        // Misaligned handle storage.
        let mut raw = vec![0u64; MOTE_SESSION_STORAGE_WORDS + 1];
        let odd = raw.as_mut_ptr().cast::<u8>().add(4).cast::<MoteSession>();
        assert_eq!(
            mote_session_open(odd, &*m, arena.as_mut_ptr().cast(), need),
            MoteStatus::Misaligned
        );
        let odd_m = raw.as_mut_ptr().cast::<u8>().add(4).cast::<MoteModel>();
        assert_eq!(
            mote_model_open_buffer(odd_m, b.as_ptr().cast(), b.len()),
            MoteStatus::Misaligned
        );

        // Unknown indices and names.
        assert_eq!(
            mote_model_input_info(&*m, 1, info.as_mut()),
            MoteStatus::UnknownTensor
        );
        assert_eq!(
            mote_model_output_info(&*m, usize::MAX, info.as_mut()),
            MoteStatus::UnknownTensor
        );
        assert_eq!(
            mote_model_input_index(&*m, c"no such input".as_ptr(), &mut n),
            MoteStatus::UnknownTensor
        );
        assert_eq!(
            mote_model_output_index(&*m, c"no such output".as_ptr(), &mut n),
            MoteStatus::UnknownTensor
        );

        assert_eq!(
            mote_session_open(&mut *s, &*m, arena.as_mut_ptr().cast(), need),
            MoteStatus::Ok
        );
        let d = &f.input.data;
        assert_eq!(
            mote_session_set_input(&mut *s, 0, d.as_ptr().cast(), d.len() - 4),
            MoteStatus::BadSize
        );
        let msg = text(mote_session_last_error(&*s));
        assert!(
            msg.contains(&d.len().to_string()) && msg.contains(&(d.len() - 4).to_string()),
            "{msg}"
        );
        assert_eq!(
            mote_session_set_input(&mut *s, 0, d.as_ptr().cast(), d.len() + 1),
            MoteStatus::BadSize
        );
        assert_eq!(
            mote_session_set_input_f32(&mut *s, 0, d.as_ptr().cast(), d.len()),
            MoteStatus::BadSize
        );
        assert_eq!(
            mote_session_set_input_f32(&mut *s, 0, d.as_ptr().cast(), usize::MAX),
            MoteStatus::BadSize
        );
        assert_eq!(
            mote_session_set_input(&mut *s, 1, d.as_ptr().cast(), d.len()),
            MoteStatus::UnknownTensor
        );
        assert_eq!(
            mote_session_set_input_by_name(&mut *s, c"nope".as_ptr(), d.as_ptr().cast(), d.len()),
            MoteStatus::UnknownTensor
        );
        assert!(text(mote_session_last_error(&*s)).contains("no graph input"));
        let mut out = [0f32; 11];
        assert_eq!(
            mote_session_get_output_f32(&mut *s, 0, out.as_mut_ptr(), 11),
            MoteStatus::BadSize
        );
        assert_eq!(
            mote_session_get_output_f32(&mut *s, 0, out.as_mut_ptr(), 9),
            MoteStatus::BadSize
        );
        assert_eq!(
            mote_session_get_output(&mut *s, 0, out.as_mut_ptr().cast(), 44),
            MoteStatus::BadSize
        );
        assert_eq!(
            mote_session_get_output_f32(&mut *s, 1, out.as_mut_ptr(), 10),
            MoteStatus::UnknownTensor
        );
        let (mut p, mut len) = (ptr::null::<c_void>(), 0usize);
        assert_eq!(
            mote_session_output(&mut *s, 1, &mut p, &mut len),
            MoteStatus::UnknownTensor
        );
        // A success clears the message.
        assert_eq!(
            mote_session_get_output_f32(&mut *s, 0, out.as_mut_ptr(), 10),
            MoteStatus::Ok
        );
        assert_eq!(text(mote_session_last_error(&*s)), "");

        // Freeing the model first leaves the session refusing to run, not reading freed state.
        mote_model_free(&mut *m);
        assert_eq!(mote_session_run(&mut *s), MoteStatus::BadHandle);
        mote_session_free(&mut *s);
    }
}

#[test]
fn corrupt_misaligned_and_foreign_buffers_are_refused_with_a_message() {
    let f = demo();
    let good = f.bytes.as_slice();
    let mut m = model_storage();
    let try_open = |m: &mut MoteModel, b: &[u8]| -> (MoteStatus, String) {
        // SAFETY: `b` is valid for its length; `m` is storage.
        let st = unsafe { mote_model_open_buffer(m, b.as_ptr().cast(), b.len()) };
        (st, text(model_error(m)))
    };

    // Misaligned: the same bytes one byte off a 16-byte boundary.
    let mut shifted = vec![0u128; good.len() / 16 + 2];
    let sb = &mut engine::view::bytes_of_mut(&mut shifted)[1..good.len() + 1];
    sb.copy_from_slice(good);
    let (st, msg) = try_open(&mut m, sb);
    assert_eq!(st, MoteStatus::Misaligned, "{msg}");
    assert!(msg.contains("16"), "{msg}");

    // One flipped byte in the middle: the checksum catches it.
    let mut bad = good.to_vec();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x40;
    let bad = engine::AlignedBytes::copy_from(&bad);
    let (st, msg) = try_open(&mut m, bad.as_slice());
    assert_eq!(st, MoteStatus::ChecksumMismatch, "{msg}");
    assert!(msg.contains("checksum"), "{msg}");
    // A failed handle is not open.
    let mut n = 0usize;
    assert_eq!(
        // SAFETY: failed handle, valid out.
        unsafe { mote_model_input_count(&*m, &mut n) },
        MoteStatus::BadHandle
    );

    let truncated = engine::AlignedBytes::copy_from(&good[..good.len() - 100]);
    let (st, msg) = try_open(&mut m, truncated.as_slice());
    assert_eq!(st, MoteStatus::Truncated, "{msg}");

    let not_mote = engine::AlignedBytes::copy_from(&[0x7fu8; 256]);
    let (st, _) = try_open(&mut m, not_mote.as_slice());
    assert_eq!(st, MoteStatus::BadMagic);
    let (st, _) = try_open(&mut m, &[]);
    assert_eq!(st, MoteStatus::Truncated);

    // A later good open on the same storage works, and its message is empty.
    let (st, msg) = try_open(&mut m, good);
    assert_eq!((st, msg.as_str()), (MoteStatus::Ok, ""));
    // SAFETY: open handle.
    unsafe { mote_model_free(&mut *m) };
}

#[test]
fn dtype_checked_calls_refuse_other_dtypes() {
    // An int64 input.
    let f = op_fixture("cast_i64_input");
    assert_eq!(f.input.dtype, engine::DType::I64);
    let mut m = model_storage();
    open(&mut m, f.bytes.as_slice());
    let mut s = session_storage();
    // SAFETY: valid handles, sizes as given.
    unsafe {
        assert_eq!(mote_session_open_owned(&mut *s, &*m), MoteStatus::Ok);
        let d = &f.input.data;
        let st = mote_session_set_input_f32(&mut *s, 0, d.as_ptr().cast(), d.len() / 4);
        assert_eq!(st, MoteStatus::WrongDtype);
        assert!(text(mote_session_last_error(&*s)).contains("int64"));
        assert_eq!(
            mote_session_set_input(&mut *s, 0, d.as_ptr().cast(), d.len()),
            MoteStatus::Ok
        );
        assert_eq!(mote_session_run(&mut *s), MoteStatus::Ok);
        mote_session_free(&mut *s);
        mote_model_free(&mut *m);
    }

    // An int64 output (ArgMax), read by bytes and checked against the reference.
    let f = op_fixture("argmax_axis1_keep1_ties");
    open(&mut m, f.bytes.as_slice());
    // SAFETY: valid handles, sizes as given.
    unsafe {
        assert_eq!(mote_session_open_owned(&mut *s, &*m), MoteStatus::Ok);
        let d = &f.input.data;
        assert_eq!(
            mote_session_set_input(&mut *s, 0, d.as_ptr().cast(), d.len()),
            MoteStatus::Ok
        );
        assert_eq!(mote_session_run(&mut *s), MoteStatus::Ok);
        let mut out = vec![0f32; f.want.data.len() / 4];
        let st = mote_session_get_output_f32(&mut *s, 0, out.as_mut_ptr(), out.len());
        assert_eq!(st, MoteStatus::WrongDtype);
        compare(&output_array(&mut s, &m, &f.want), &f.want, 0.0).unwrap();
        mote_session_free(&mut *s);
        mote_model_free(&mut *m);
    }
}

#[test]
fn status_strings_versions_and_messages() {
    let all = [
        MoteStatus::Ok,
        MoteStatus::NullPointer,
        MoteStatus::BadSize,
        MoteStatus::Misaligned,
        MoteStatus::BadHandle,
        MoteStatus::BadString,
        MoteStatus::Truncated,
        MoteStatus::BadMagic,
        MoteStatus::UnsupportedVersion,
        MoteStatus::ChecksumMismatch,
        MoteStatus::CorruptModel,
        MoteStatus::UnsupportedLayout,
        MoteStatus::UnsupportedIsa,
        MoteStatus::WrongDtype,
        MoteStatus::IndexOutOfRange,
        MoteStatus::UnknownTensor,
        MoteStatus::ArenaTooSmall,
        MoteStatus::OutOfMemory,
        MoteStatus::Io,
        MoteStatus::Unsupported,
        MoteStatus::Internal,
    ];
    let unknown = text(mote_status_str(-1));
    assert_eq!(unknown, "unknown status code");
    let mut seen = std::collections::HashSet::new();
    for s in all {
        let t = text(mote_status_str(s as i32));
        assert_ne!(t, unknown, "{s:?}");
        assert!(seen.insert(t), "{s:?} shares its text");
    }
    assert_eq!(text(mote_status_str(1000)), unknown);
    assert_eq!(text(mote_version()), env!("CARGO_PKG_VERSION"));
    assert_eq!(mote_abi_version(), MOTE_ABI_VERSION);

    // Messages are truncated at a character boundary and stay NUL-terminated.
    let mut msg = Message::EMPTY;
    let long = "é".repeat(MOTE_ERROR_MESSAGE_CAPACITY);
    msg.set(format_args!("{long}"));
    assert!(msg.len < MOTE_ERROR_MESSAGE_CAPACITY && msg.len.is_multiple_of(2));
    assert_eq!(msg.buf[msg.len], 0);
    assert!(std::str::from_utf8(&msg.buf[..msg.len]).is_ok());
}
