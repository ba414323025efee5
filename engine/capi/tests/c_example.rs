//! The C example `tests/c/run_model.c`, compiled with `cc -std=c11 -Wall -Wextra -Werror`
//! against `include/mote.h` and a freshly built `libmote.a`, runs the demo model and must match
//! the reference output. Skipped (with a message) only when no C compiler is found.

use mote_tests::{compare, convert_file, repo_root};
use mote_tools::npy::{self, Array};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The cargo target directory and profile directory this test binary was built in:
/// `<target>/<profile>/deps/c_example-<hash>`.
fn target_dirs() -> Option<(PathBuf, PathBuf)> {
    let exe = std::env::current_exe().ok()?;
    let profile_dir = exe.parent()?.parent()?.to_path_buf();
    let root = profile_dir.parent()?.to_path_buf();
    // A cross build nests one level deeper (<target>/<triple>/<profile>); the C compiler here
    // builds for the host, so only the native layout is handled (.ci/run covers aarch64).
    root.join("CACHEDIR.TAG")
        .exists()
        .then_some((root, profile_dir))
}

/// Builds `libmote.a` with the profile this test was built with and returns its path.
fn build_staticlib(root: &Path, profile_dir: &Path) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "test".to_string(),
        Some(other) => other.to_string(),
        None => "test".to_string(),
    };
    let status = Command::new(cargo)
        .args(["build", "-p", "mote-capi", "--lib", "--profile", &profile])
        .env("CARGO_TARGET_DIR", root)
        .current_dir(repo_root())
        .status()
        .expect("cannot run cargo to build libmote.a");
    assert!(status.success(), "cargo build -p mote-capi failed");
    let lib = profile_dir.join("libmote.a");
    assert!(lib.exists(), "{} was not built", lib.display());
    lib
}

fn f32_raw(a: &Array, what: &str) -> Vec<u8> {
    assert_eq!(a.dtype, engine::DType::F32, "{what} must be float32");
    a.data.clone()
}

#[test]
fn c_example_runs_the_demo_model_and_matches_the_reference() {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    if Command::new(&cc).arg("--version").output().is_err() {
        println!("SKIPPED: no C compiler ({cc}); set CC to run the C API example test");
        return;
    }
    let Some((root, profile_dir)) = target_dirs() else {
        println!("SKIPPED: not a native build layout; the C example runs natively only");
        return;
    };
    let lib = build_staticlib(&root, &profile_dir);

    let tmp = std::env::temp_dir().join(format!("mote-capi-c-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let demo = repo_root().join("models/demo");
    let model = convert_file(&demo.join("demo.onnx")).unwrap();
    let input = npy::read(&demo.join("demo.input.npy")).unwrap();
    let want = npy::read(&demo.join("demo.output.npy")).unwrap();
    std::fs::write(tmp.join("demo.mote"), model.as_slice()).unwrap();
    std::fs::write(tmp.join("input.raw"), f32_raw(&input, "demo input")).unwrap();
    std::fs::write(tmp.join("ref.raw"), f32_raw(&want, "demo output")).unwrap();

    let exe = tmp.join("run_model");
    let capi = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-O1", "-I"])
        .arg(capi.join("include"))
        .arg(repo_root().join("tests/c/run_model.c"))
        .arg(&lib)
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(&exe)
        .output()
        .expect("cannot run the C compiler");
    assert!(
        out.status.success(),
        "compiling tests/c/run_model.c failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let run = Command::new(&exe)
        .arg(tmp.join("demo.mote"))
        .arg(tmp.join("input.raw"))
        .arg("--out")
        .arg(tmp.join("out.raw"))
        .arg("--ref")
        .arg(tmp.join("ref.raw"))
        .args(["--tol", "1e-4"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    println!("{stdout}");
    assert!(
        run.status.success(),
        "run_model failed ({}):\n{stdout}\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("path API: same output"), "{stdout}");
    assert!(stdout.contains("matches the reference"), "{stdout}");

    // Check the written output here too, independently of the C program's own comparison.
    let got = Array {
        dtype: engine::DType::F32,
        shape: want.shape.clone(),
        data: std::fs::read(tmp.join("out.raw")).unwrap(),
    };
    compare(&got, &want, 1e-4).unwrap();
    let _ = std::fs::remove_dir_all(&tmp);
}
