//! `mote compare`: the report's shape (text and JSON) and its figures for an f32 and an fp16
//! conversion of the demo model against the ONNX original.

use std::path::{Path, PathBuf};
use std::process::Command;

fn mote() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mote"))
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mote-compare-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn run(args: &[&std::ffi::OsStr]) -> String {
    let o = mote().args(args).output().unwrap();
    assert!(
        o.status.success(),
        "mote {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn convert(quant: &str) -> PathBuf {
    let out = tmp(&format!("demo-{quant}.mote"));
    let onnx = root().join("models/demo/demo.onnx");
    run(&[
        "convert".as_ref(),
        onnx.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--quant".as_ref(),
        quant.as_ref(),
    ]);
    out
}

/// The values of every `"key":value` in a JSON text, in order.
fn fields<'a>(json: &'a str, key: &str) -> Vec<&'a str> {
    let pat = format!("\"{key}\":");
    json.match_indices(&pat)
        .map(|(i, _)| {
            let rest = &json[i + pat.len()..];
            let end = rest.find([',', '}', ']']).unwrap_or(rest.len());
            &rest[..end]
        })
        .collect()
}

fn num(s: &str) -> f64 {
    match s {
        "\"inf\"" => f64::INFINITY,
        other => other
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {other}")),
    }
}

#[test]
fn f32_and_fp16_against_the_onnx_model() {
    let onnx = root().join("models/demo/demo.onnx");
    let input = root().join("models/demo/demo.input.npy");
    let mut sqnr = vec![];
    for quant in ["f32", "fp16"] {
        let m = convert(quant);
        let json = run(&[
            "compare".as_ref(),
            onnx.as_os_str(),
            m.as_os_str(),
            "-i".as_ref(),
            input.as_os_str(),
            "--json".as_ref(),
        ]);
        assert!(json.trim_start().starts_with('{') && json.trim_end().ends_with('}'));
        assert_eq!(fields(&json, "random"), ["false"]);
        // One output (the logits, [1, classes]) then the layers.
        let names = fields(&json, "name");
        assert!(names[0].contains("logits") || !names.is_empty());
        let cos: Vec<f64> = fields(&json, "cosine").into_iter().map(num).collect();
        let top1 = fields(&json, "top1");
        let matched = num(fields(&json, "matched")[0]);
        assert!(matched >= 3.0, "{quant}: {matched} layers matched\n{json}");
        assert_eq!(
            cos.len(),
            1 + matched as usize,
            "one cosine per output and layer"
        );
        let bound = if quant == "f32" { 0.999999 } else { 0.9999 };
        assert!(cos.iter().all(|&c| c >= bound), "{quant}: {cos:?}");
        assert_eq!(top1[0], "1e0", "{quant}: the top class agrees");
        let f16 = num(fields(&json, "f16_consts")[0]);
        assert_eq!(f16 > 0.0, quant == "fp16", "{quant}: float16 constants");
        sqnr.push(num(fields(&json, "sqnr_db")[0]));
    }
    // fp16 weights cost accuracy that f32 does not.
    assert!(
        sqnr[1] < sqnr[0],
        "SQNR f32 {} dB, fp16 {} dB",
        sqnr[0],
        sqnr[1]
    );
    assert!(sqnr[1] > 40.0, "fp16 SQNR {} dB", sqnr[1]);
}

#[test]
fn random_inputs_are_said_and_text_lists_outputs_and_layers() {
    let onnx = root().join("models/demo/demo.onnx");
    let m = convert("fp16");
    let text = run(&[
        "compare".as_ref(),
        onnx.as_os_str(),
        m.as_os_str(),
        "--inputs".as_ref(),
        "2".as_ref(),
    ]);
    assert!(
        text.contains("2 set(s) of seeded random-normal values"),
        "{text}"
    );
    assert!(text.contains("outputs:") && text.contains("SQNR dB") && text.contains("cosine"));
    assert!(
        text.contains("step outputs matched an ONNX tensor"),
        "{text}"
    );
    let outs = run(&[
        "compare".as_ref(),
        onnx.as_os_str(),
        m.as_os_str(),
        "--no-layers".as_ref(),
        "--json".as_ref(),
    ]);
    assert_eq!(fields(&outs, "matched"), ["0"]);
    assert_eq!(fields(&outs, "random"), ["true"]);
}
