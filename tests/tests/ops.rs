//! Every operator fixture in `tests/fixtures/ops` converts, runs and matches onnxruntime.

use mote::Model;
use mote_tests::{compare, convert_file, read_numbered, repo_root, run_model};

#[test]
fn every_op_fixture_matches_onnxruntime() {
    let dir = repo_root().join("tests/fixtures/ops");
    let cases = std::fs::read_to_string(dir.join("cases.txt")).expect("cases.txt");
    let mut failures = vec![];
    let mut n = 0;
    for case in cases.lines().map(str::trim).filter(|c| !c.is_empty()) {
        n += 1;
        let cdir = dir.join(case);
        let r = (|| -> anyhow::Result<f64> {
            let bytes = convert_file(&cdir.join("model.onnx"))?;
            let model = Model::from_bytes(bytes.as_slice())?;
            let inputs = read_numbered(&cdir, "input")?;
            let want = read_numbered(&cdir, "output")?;
            let got = run_model(&model, &inputs)?;
            let mut worst = 0.0f64;
            for (k, (g, w)) in got.iter().zip(&want).enumerate() {
                worst =
                    worst.max(compare(g, w, 1e-4).map_err(|e| anyhow::anyhow!("output {k}: {e}"))?);
            }
            Ok(worst)
        })();
        match r {
            Ok(d) => println!("{case}: ok (max abs diff {d:.2e})"),
            Err(e) => failures.push(format!("{case}: {e:#}")),
        }
    }
    assert!(n > 100, "only {n} cases listed");
    assert!(
        failures.is_empty(),
        "{} of {n} op fixtures failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
