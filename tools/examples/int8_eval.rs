//! Int8 accuracy and size against fp32, for the int8 report:
//! `cargo run --release -p mote-tools --example int8_eval -- MODEL.onnx [CALIB] [ESTIMATOR]`.
//!
//! Converts MODEL fp32 and int8 (calibration `CALIB`, default `random:32`: 32 seeded
//! random-normal inputs), runs both on 100 other seeded random-normal inputs and prints the
//! minimum and mean cosine similarity of the outputs, the top-1 agreement of output 0, the file
//! sizes, and the layers that stayed f32.

use anyhow::{Context, Result};
use mote::{AlignedBytes, Model, OwnedSession};
use mote_tools::convert::quant::{Estimator, Int8Options, Normal};
use mote_tools::convert::{convert, Options, Quant};
use std::path::PathBuf;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(
        args.next()
            .context("usage: int8_eval MODEL.onnx [CALIB] [EST]")?,
    );
    let calib = args.next().unwrap_or_else(|| "random:32".into());
    let est = Estimator::parse(&args.next().unwrap_or_else(|| "percentile".into()))?;
    let f = convert(&path, &Options::default())?;
    let q = convert(
        &path,
        &Options {
            quant: Some(Quant::Int8),
            int8: Int8Options {
                calibrate: Some(calib),
                estimator: est,
            },
            ..Options::default()
        },
    )?;
    let (fb, qb) = (
        AlignedBytes::copy_from(&f.bytes),
        AlignedBytes::copy_from(&q.bytes),
    );
    let (fm, qm) = (
        Model::from_bytes(fb.as_slice())?,
        Model::from_bytes(qb.as_slice())?,
    );
    let (mut fo, mut qo) = (OwnedSession::new(&fm)?, OwnedSession::new(&qm)?);
    let (mut fs, mut qs) = (fo.session()?, qo.session()?);
    let mut rng = Normal::new(0xd1ff_e7e7);
    let (mut cmin, mut csum, mut agree) = (f64::INFINITY, 0f64, 0usize);
    const N: usize = 100;
    for _ in 0..N {
        for i in 0..fm.input_count() {
            let v: Vec<f32> = (0..fm.input(i)?.elems()).map(|_| rng.next()).collect();
            fs.set_input(i, &v)?;
            qs.set_input(i, &v)?;
        }
        fs.run()?;
        qs.run()?;
        let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
        for o in 0..fm.output_count() {
            let (a, b) = (fs.output::<f32>(o)?, qs.output::<f32>(o)?);
            for (&x, &y) in a.iter().zip(b) {
                dot += x as f64 * y as f64;
                na += x as f64 * x as f64;
                nb += y as f64 * y as f64;
            }
            if o == 0 {
                let am = |v: &[f32]| {
                    v.iter()
                        .enumerate()
                        .max_by(|x, y| x.1.total_cmp(y.1))
                        .map(|x| x.0)
                };
                agree += (am(a) == am(b)) as usize;
            }
        }
        let c = dot / (na.sqrt() * nb.sqrt()).max(1e-30);
        cmin = cmin.min(c);
        csum += c;
    }
    let r = q.int8.as_ref().context("no int8 report")?;
    println!(
        "{}: cosine min {cmin:.5} mean {:.5}, top-1 agreement {agree}/{N}, size {} -> {} bytes ({:.3}x), {} int8 layers, {} Quantize, {} Dequantize",
        path.display(),
        csum / N as f64,
        f.bytes.len(),
        q.bytes.len(),
        q.bytes.len() as f64 / f.bytes.len() as f64,
        r.int8.len(),
        r.converts.0,
        r.converts.1
    );
    let mut why: std::collections::BTreeMap<&str, usize> = Default::default();
    for (_, w) in &r.kept_f32 {
        let key = w.split(" (").next().unwrap_or(w);
        *why.entry(if key.contains("multiply-adds") {
            "below the MAC threshold"
        } else {
            key
        })
        .or_default() += 1;
    }
    for (w, n) in why {
        println!("  kept f32: {n} x {w}");
    }
    Ok(())
}
