//! The `std` layer: open a `.mote` file by path (mmap) and run it; aligned in-memory copies.

use mote::{AlignedBytes, Model, OwnedSession};
use mote_tests::{compare, repo_root};
use mote_tools::convert::{convert, Options};
use mote_tools::npy::{self, Array};

#[test]
fn model_open_maps_a_file_and_runs_it() {
    let demo = repo_root().join("models/demo");
    let c = convert(&demo.join("demo.onnx"), &Options::default()).unwrap();
    let path = std::env::temp_dir().join(format!("mote-std-io-{}.mote", std::process::id()));
    std::fs::write(&path, &c.bytes).unwrap();
    let mapped = Model::open(&path).unwrap();
    let model = mapped.model().unwrap();
    let input = npy::read(&demo.join("demo.input.npy")).unwrap();
    let want = npy::read(&demo.join("demo.output.npy")).unwrap();
    let mut owned = OwnedSession::new(&model).unwrap();
    let mut s = owned.session().unwrap();
    s.input_bytes_mut(0).unwrap().copy_from_slice(&input.data);
    s.run().unwrap();
    let got = Array {
        dtype: mote::DType::F32,
        shape: want.shape.clone(),
        data: s.output_bytes(0).unwrap().to_vec(),
    };
    compare(&got, &want, 1e-4).unwrap();
    // Typed access checks the dtype.
    assert_eq!(s.output::<f32>(0).unwrap().len(), 10);
    assert!(s.output::<i64>(0).is_err());
    let _ = std::fs::remove_file(&path);
    // A missing file is an I/O error, not a panic.
    assert!(matches!(
        Model::open(repo_root().join("no/such/file.mote")),
        Err(mote::Error::Io { .. })
    ));
}

#[test]
fn aligned_bytes_are_16_byte_aligned() {
    for len in [0usize, 1, 15, 16, 17, 1000] {
        let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let a = AlignedBytes::copy_from(&data);
        assert_eq!(a.as_slice(), &data[..]);
        assert_eq!(a.as_slice().as_ptr() as usize % 16, 0, "len {len}");
    }
}

#[test]
fn session_rejects_a_small_arena_and_aligns_a_misaligned_one() {
    let c = convert(
        &repo_root().join("models/demo/demo.onnx"),
        &Options::default(),
    )
    .unwrap();
    let bytes = AlignedBytes::copy_from(&c.bytes);
    let model = Model::from_bytes(bytes.as_slice()).unwrap();
    let mut small = vec![0u8; model.arena_size()];
    // Without the alignment slack the plan may not fit.
    let r = mote::Session::new(&model, &mut small[1..]);
    assert!(matches!(r, Err(mote::Error::ArenaTooSmall { .. })));
    let mut big = vec![0u8; model.arena_size_min() + 1];
    assert!(mote::Session::new(&model, &mut big[1..]).is_ok());
}
