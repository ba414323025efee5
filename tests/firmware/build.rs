//! Puts memory.x on the linker search path and turns the model and its reference data into
//! files `src/main.rs` embeds: the `.mote` (path in `MOTE_FW_MODEL`, default `demo.mote` here,
//! written by `mote convert --target cortex-m7`), and the raw little-endian f32 payloads of the
//! demo's input and onnxruntime output `.npy` files.
use std::env;
use std::fs;
use std::path::{Path, PathBuf};

fn npy_f32_payload(path: &Path) -> Vec<u8> {
    let b = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        b.starts_with(b"\x93NUMPY"),
        "{}: not an .npy file",
        path.display()
    );
    let (hlen, start) = match b[6] {
        1 => (u16::from_le_bytes([b[8], b[9]]) as usize, 10),
        _ => (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12),
    };
    let header = std::str::from_utf8(&b[start..start + hlen]).expect("npy header");
    assert!(
        header.contains("'descr': '<f4'") && header.contains("'fortran_order': False"),
        "{}: expected a C-order little-endian f32 array, header {header}",
        path.display()
    );
    b[start + hlen..].to_vec()
}

fn main() {
    let here = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    fs::copy(here.join("memory.x"), out.join("memory.x")).unwrap();
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");

    let model = env::var_os("MOTE_FW_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| here.join("demo.mote"));
    println!("cargo:rerun-if-env-changed=MOTE_FW_MODEL");
    println!("cargo:rerun-if-changed={}", model.display());
    let bytes = fs::read(&model).unwrap_or_else(|e| {
        panic!(
            "{}: {e}\nconvert the demo first: cargo run --release -p mote-tools -- convert \
             models/demo/demo.onnx --target cortex-m7 -o tests/firmware/demo.mote",
            model.display()
        )
    });
    // Header field at offset 32: the arena bytes the memory plan needs (engine/FORMAT.md).
    let arena = u64::from_le_bytes(bytes[32..40].try_into().unwrap());
    fs::write(out.join("model.mote"), &bytes).unwrap();
    fs::write(
        out.join("arena.rs"),
        // Session::new aligns the arena start itself and may skip up to 64 bytes.
        format!("const ARENA_BYTES: usize = {arena} + 64;\n"),
    )
    .unwrap();

    let demo = here.join("../../models/demo");
    for (name, file) in [
        ("input.f32", "demo.input.npy"),
        ("output.f32", "demo.output.npy"),
    ] {
        let p = demo.join(file);
        println!("cargo:rerun-if-changed={}", p.display());
        fs::write(out.join(name), npy_f32_payload(&p)).unwrap();
    }
}
