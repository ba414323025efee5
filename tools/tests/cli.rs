//! The `mote` command line: the contract scripts rely on, and its error messages.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The binary under test: the one cargo built for this test, or another build of it named by
/// `MOTE_CLI` (CI checks the static musl builds this way), run through `MOTE_CLI_RUNNER` when
/// set (e.g. `qemu-aarch64` for a cross-built binary; whitespace-separated words).
fn mote_bin() -> PathBuf {
    std::env::var_os("MOTE_CLI")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_mote").into())
        .into()
}

fn mote() -> Command {
    let bin = mote_bin();
    match std::env::var("MOTE_CLI_RUNNER") {
        Ok(r) if !r.trim().is_empty() => {
            let mut words = r.split_whitespace();
            let mut c = Command::new(words.next().unwrap_or_default());
            c.args(words).arg(bin);
            c
        }
        _ => Command::new(bin),
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mote-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn demo_mote(tag: &str) -> PathBuf {
    let out = tmp(&format!("demo-{tag}.mote"));
    let o = mote()
        .args(["convert"])
        .arg(root().join("models/demo/demo.onnx"))
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

#[test]
fn convert_run_inspect_round_trip() {
    let m = demo_mote("roundtrip");
    let out = tmp("logits.npy");
    let o = mote()
        .arg("run")
        .arg(&m)
        .arg("-i")
        .arg(root().join("models/demo/demo.input.npy"))
        .arg("-o")
        .arg(&out)
        .args(["--top", "3"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = mote_tools::npy::read(&out).unwrap();
    let want = mote_tools::npy::read(&root().join("models/demo/demo.output.npy")).unwrap();
    assert_eq!(got.shape, want.shape);
    let f = |a: &mote_tools::npy::Array| -> Vec<f32> {
        a.data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    for (a, b) in f(&got).iter().zip(f(&want)) {
        assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "{a} vs {b}");
    }
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("#1 class"), "{stdout}");

    let dir = tmp("outs");
    let o = mote()
        .arg("run")
        .arg(&m)
        .arg("-i")
        .arg(format!(
            "image={}",
            root().join("models/demo/demo.input.npy").display()
        ))
        .arg("--output-dir")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(dir.join("logits.npy").exists());

    let o = mote()
        .arg("inspect")
        .arg(&m)
        .arg("--json")
        .output()
        .unwrap();
    assert!(o.status.success());
    let j = String::from_utf8_lossy(&o.stdout);
    for key in [
        "\"format_version\":\"1.0\"",
        "\"arena_bytes\"",
        "\"weights_bytes\"",
        "\"name\":\"image\"",
        "\"shape\":[1,3,96,96]",
    ] {
        assert!(j.contains(key), "missing {key} in {j}");
    }
}

#[test]
fn wrong_input_shape_is_a_clear_error() {
    let m = demo_mote("shape");
    let bad = tmp("bad.npy");
    let a = mote_tools::npy::Array {
        dtype: mote::DType::F32,
        shape: vec![1, 3, 32, 32],
        data: vec![0; 4 * 3 * 32 * 32],
    };
    mote_tools::npy::write(&bad, &a).unwrap();
    let o = mote()
        .arg("run")
        .arg(&m)
        .arg("-i")
        .arg(&bad)
        .arg("-o")
        .arg(tmp("x.npy"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("shape [1, 3, 32, 32]") && e.contains("[1, 3, 96, 96]"),
        "{e}"
    );

    let a = mote_tools::npy::Array {
        dtype: mote::DType::I64,
        shape: vec![1, 3, 96, 96],
        data: vec![0; 8 * 3 * 96 * 96],
    };
    mote_tools::npy::write(&bad, &a).unwrap();
    let o = mote()
        .arg("run")
        .arg(&m)
        .arg("-i")
        .arg(&bad)
        .arg("-o")
        .arg(tmp("x.npy"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("dtype int64"));
}

#[test]
fn unsupported_operator_names_op_and_node() {
    // An op mote does not know: rename the op type in a fixture's protobuf (same length, so
    // the encoding stays valid). The op type is the last "Relu" in the file (graph name first).
    let src = std::fs::read(root().join("tests/fixtures/ops/relu/model.onnx")).unwrap();
    let pos = src
        .windows(4)
        .rposition(|w| w == b"Relu")
        .expect("Relu in the protobuf");
    let mut bad = src.clone();
    bad[pos..pos + 4].copy_from_slice(b"Rxlu");
    let p = tmp("unsupported.onnx");
    std::fs::write(&p, bad).unwrap();
    let o = mote()
        .arg("convert")
        .arg(&p)
        .arg("-o")
        .arg(tmp("u.mote"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("Rxlu") && e.contains("not supported") && e.contains("node"),
        "{e}"
    );
    assert!(e.contains("[1, "), "input shapes missing: {e}");
}

#[test]
fn corrupt_file_is_reported_not_crashed() {
    let m = demo_mote("corrupt");
    let mut b = std::fs::read(&m).unwrap();
    let n = b.len();
    b[n / 2] ^= 0x55;
    let p = tmp("corrupt.mote");
    std::fs::write(&p, &b).unwrap();
    let o = mote().arg("inspect").arg(&p).output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("checksum"));
}

#[test]
fn input_shape_fixes_a_dynamic_batch() {
    let dir = root().join("tests/fixtures/dynamic");
    let m = tmp("dynamic.mote");
    let o = mote()
        .arg("convert")
        .arg(dir.join("model.onnx"))
        .arg("-o")
        .arg(&m)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("--input-shape x=N,3,8,8"), "{e}");

    let o = mote()
        .arg("convert")
        .arg(dir.join("model.onnx"))
        .arg("-o")
        .arg(&m)
        .args(["--input-shape", "x=2,3,8,8"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = tmp("dynamic-y.npy");
    let o = mote()
        .arg("run")
        .arg(&m)
        .arg("-i")
        .arg(dir.join("input_0.npy"))
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = mote_tools::npy::read(&out).unwrap();
    let want = mote_tools::npy::read(&dir.join("output_0.npy")).unwrap();
    assert_eq!(got.shape, [2, 5]);
    assert_eq!(got.shape, want.shape);
    let f = |a: &mote_tools::npy::Array| -> Vec<f32> {
        a.data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    let (g, w) = (f(&got), f(&want));
    let scale = w.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    for (a, b) in g.iter().zip(&w) {
        assert!((a - b).abs() <= 1e-4 * scale, "{a} vs {b}");
    }

    for (spec, needle) in [
        ("x=2,N,8,8", "not a dimension size"),
        ("y=2,3,8,8", "inputs: x"),
        ("x=2,4,8,8", "[N, 3, 8, 8]"),
    ] {
        let o = mote()
            .arg("convert")
            .arg(dir.join("model.onnx"))
            .arg("-o")
            .arg(&m)
            .args(["--input-shape", spec])
            .output()
            .unwrap();
        assert!(!o.status.success(), "{spec} accepted");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains(needle), "{spec}: {e}");
    }
}

/// `mote bench --json` reports the kernel set that ran: `MOTE_FORCE_ISA` really selects it,
/// and a name the CPU cannot run is a clear error, not a silent fallback.
#[test]
fn bench_json_and_forced_kernel_sets() {
    let m = demo_mote("bench");
    let input = root().join("models/demo/demo.input.npy");
    let mut names = vec!["generic"];
    // The binary's own architecture (ELF e_machine), which differs from this test's when
    // `MOTE_CLI` names a cross build run under QEMU.
    let mut head = [0u8; 20];
    std::io::Read::read_exact(&mut std::fs::File::open(mote_bin()).unwrap(), &mut head).unwrap();
    let binary_is_x86_64 = head[18..20] == [0x3e, 0];
    match head[18..20] {
        [0x3e, 0] => {
            // x86-64: it runs natively, on this CPU.
            #[cfg(target_arch = "x86_64")]
            {
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    names.push("avx2");
                }
                if std::is_x86_feature_detected!("avx512f") {
                    names.push("avx512");
                }
            }
        }
        [0xb7, 0] => names.push("neon"), // aarch64: NEON is baseline
        _ => {}
    }
    for (isa, threads) in names.into_iter().flat_map(|n| [(n, "1"), (n, "3")]) {
        let o = mote()
            .env("MOTE_FORCE_ISA", isa)
            .arg("bench")
            .arg(&m)
            .arg("-i")
            .arg(&input)
            .args([
                "--iters",
                "3",
                "--warmup",
                "1",
                "--json",
                "--threads",
                threads,
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.contains(&format!("\"isa\":\"{isa}\"")), "{out}");
        assert!(out.contains(&format!("\"threads\":{threads},")), "{out}");
        for key in [
            "\"median_ms\":",
            "\"load_ms\":",
            "\"allocations_per_run\":0,",
        ] {
            assert!(out.contains(key), "{key} missing in {out}");
        }
    }
    let o = mote()
        .arg("bench")
        .arg(&m)
        .args(["--threads", "0"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--threads"));
    let o = mote()
        .env("MOTE_FORCE_ISA", "sse9")
        .arg("bench")
        .arg(&m)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("MOTE_FORCE_ISA") && err.contains("unknown"),
        "{err}"
    );
    if binary_is_x86_64 {
        let o = mote()
            .env("MOTE_FORCE_ISA", "neon")
            .arg("bench")
            .arg(&m)
            .output()
            .unwrap();
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("lacks the neon"), "{err}");
    }
}

#[test]
fn a_closed_stdout_is_not_a_panic() {
    let m = demo_mote("epipe");
    // The child may print everything into the pipe's buffer before the read end is closed (it
    // then exits 0, legitimately); retry until a write really meets the closed pipe.
    let mut saw_epipe = false;
    for _ in 0..20 {
        let mut child = mote()
            .args(["inspect", "-v"])
            .arg(&m)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Close the only read end, usually before the child prints: its writes fail with EPIPE.
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "{err}");
        match o.status.code() {
            Some(141) => {
                saw_epipe = true;
                break;
            }
            Some(0) => continue,
            other => panic!("exit {other:?}: {err}"),
        }
    }
    assert!(saw_epipe, "no attempt wrote to the closed pipe");
}
