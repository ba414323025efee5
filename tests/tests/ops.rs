//! Every operator fixture in `tests/fixtures/ops` converts, runs and matches onnxruntime.

use mote_tests::{check_fixture_dir, repo_root};

#[test]
fn every_op_fixture_matches_onnxruntime() {
    let (n, failures) = check_fixture_dir(&repo_root().join("tests/fixtures/ops"), 1e-4).unwrap();
    assert!(n > 100, "only {n} cases listed");
    assert!(
        failures.is_empty(),
        "{} of {n} op fixtures failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
