//! Splitting steps over a thread pool gives the same bits as one thread: on every op fixture
//! (with the split threshold at one multiply-add, so every convolution and matrix product is
//! split, batch, group and row edges included) and on the conformance fixtures, for every
//! kernel set and both weight layouts.

use mote::{Model, ThreadPool};
use mote_tests::{
    available_isas, compare, convert_file_for, read_numbered, repo_root, run_model_with,
    shared_fixtures,
};

fn pools() -> Vec<ThreadPool> {
    [2, 3, 7]
        .into_iter()
        .map(|t| ThreadPool::new(t).expect("pool").with_min_part_macs(1))
        .collect()
}

#[test]
fn op_fixtures_split_over_threads_are_bit_identical() {
    let dir = repo_root().join("tests/fixtures/ops");
    let cases = std::fs::read_to_string(dir.join("cases.txt")).expect("cases.txt");
    let pools = pools();
    let isas = available_isas();
    let mut n = 0;
    for case in cases.lines().map(str::trim).filter(|c| !c.is_empty()) {
        let cdir = dir.join(case);
        let inputs = read_numbered(&cdir, "input").expect("inputs");
        for target in ["generic", "x86-64-v4"] {
            let bytes = convert_file_for(&cdir.join("model.onnx"), target).expect("convert");
            let model = Model::from_bytes(bytes.as_slice()).expect("valid");
            for &isa in &isas {
                let one = run_model_with(&model, &inputs, isa, None).expect("run");
                for pool in &pools {
                    let got = run_model_with(&model, &inputs, isa, Some(pool)).expect("run");
                    for (k, (g, w)) in got.iter().zip(&one).enumerate() {
                        assert!(
                            g.data == w.data,
                            "{case} {target} {} output {k}: {} threads differ from 1",
                            isa.name(),
                            pool.threads()
                        );
                    }
                }
            }
        }
        n += 1;
    }
    assert!(n > 100, "only {n} cases");
    // The splits really ran (conv and matmul fixtures on every pool).
    for pool in &pools {
        assert!(pool.jobs() > 50, "{} jobs split", pool.jobs());
        println!("{} threads: {} steps split", pool.threads(), pool.jobs());
    }
}

#[test]
fn conformance_fixtures_split_over_threads_are_bit_identical() {
    let Some(dir) = shared_fixtures() else {
        eprintln!("../shared/fixtures not found: skipped");
        return;
    };
    // The default threshold, as sessions use it, and a pool that splits everything.
    let pools = [
        ThreadPool::new(2).expect("pool"),
        ThreadPool::new(3).expect("pool").with_min_part_macs(1),
    ];
    for name in [
        "emov2_1m",
        "spartan_t",
        "ecoformer_pvtv2_b0",
        "lmuformer_seq_tdconv",
    ] {
        let input = mote_tools::npy::read(&dir.join(format!("{name}.input.npy"))).expect("input");
        let want = mote_tools::npy::read(&dir.join(format!("{name}.output.npy"))).expect("output");
        let bytes =
            convert_file_for(&dir.join(format!("{name}.onnx")), "x86-64-v4").expect("convert");
        let model = Model::from_bytes(bytes.as_slice()).expect("valid");
        for isa in available_isas() {
            let one = run_model_with(&model, std::slice::from_ref(&input), isa, None).expect("run");
            for pool in &pools {
                let got = run_model_with(&model, std::slice::from_ref(&input), isa, Some(pool))
                    .expect("run");
                assert!(
                    got[0].data == one[0].data,
                    "{name} {}: {} threads differ from 1",
                    isa.name(),
                    pool.threads()
                );
                compare(&got[0], &want, 1e-4).expect("matches onnxruntime");
            }
        }
    }
    for pool in &pools {
        assert!(pool.jobs() > 0, "no step was split");
        println!("{} threads: {} steps split", pool.threads(), pool.jobs());
    }
}
