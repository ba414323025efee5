//! The `mote` command line: convert, run, inspect.

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, Subcommand};
use mote::{DType, MappedModel, Model, OwnedSession};
use mote_tools::convert::{convert, parse_input_shape, Options, Quant};
use mote_tools::npy;
use std::path::{Path, PathBuf};
use std::time::Instant;

mod bench;

#[global_allocator]
static ALLOC: bench::CountingAlloc = bench::CountingAlloc;

#[derive(Parser)]
#[command(
    name = "mote",
    version,
    about = "mote: a small-model inference engine for edge devices"
)]
struct Cli {
    /// Print diagnostics (log output) to stderr.
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Convert an ONNX model into a .mote file.
    Convert {
        /// The ONNX model (external .onnx.data files are read from its folder).
        model: PathBuf,
        /// Where to write the .mote file.
        #[arg(short, long)]
        output: PathBuf,
        /// Target board profile: host (this machine's best), generic, x86-64-v3, x86-64-v4, rpi3,
        /// rpi4, rpi5, jetson-nano, jetson-orin, cortex-m7. It picks the packed weight layout.
        #[arg(long, default_value = "host")]
        target: String,
        /// Skip the fusion passes (for debugging).
        #[arg(long)]
        no_fuse: bool,
        /// Keep chains of element-wise steps as separate steps instead of one `Elementwise`
        /// program each (to compare against them).
        #[arg(long)]
        no_fuse_elementwise: bool,
        /// Fix the shape of a graph input, NAME=D0,D1,... (e.g. image=1,3,224,224): for models
        /// exported with dynamic dimensions. Repeat for several inputs.
        #[arg(long = "input-shape", value_name = "NAME=D0,D1,...", value_parser = parse_input_shape_arg)]
        input_shape: Vec<(String, Vec<usize>)>,
        /// Weight precision: f32, fp16 (GEMM/MatMul weights as IEEE half, computed in f32),
        /// int8. Default: the target's (fp16 for rpi5 and jetson-orin, f32 elsewhere).
        #[arg(long, value_enum)]
        quant: Option<Quant>,
        /// Calibration inputs for --quant int8: an .npy stack [N, ...], a folder of .npy files
        /// (one input each), a folder with one subfolder per input name, or random[:N] (random
        /// normal inputs, for testing only).
        #[arg(long, value_name = "DATA")]
        calibrate: Option<String>,
        /// Activation range estimator for --quant int8: minmax, percentile or mse.
        #[arg(long, default_value = "percentile")]
        calib: String,
    },
    /// Run a .mote model on .npy inputs.
    Run {
        /// The .mote model.
        model: PathBuf,
        /// Inputs: FILE.npy for the inputs in order, or NAME=FILE.npy.
        #[arg(short, long = "input", required = true)]
        inputs: Vec<String>,
        /// Output file (single-output models).
        #[arg(short, long, conflicts_with = "output_dir")]
        output: Option<PathBuf>,
        /// Write every output as DIR/NAME.npy, NAME being the output name.
        #[arg(long)]
        output_dir: Option<PathBuf>,
        /// Print the top-K classes of the first output.
        #[arg(long, default_value_t = 0)]
        top: usize,
        /// Threads per session (default: the machine's physical cores).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Time a .mote model: load time, min/median/p90 latency, allocations per run.
    Bench {
        /// The .mote model.
        model: PathBuf,
        /// Inputs (.npy, in order or NAME=FILE); without them, deterministic random values.
        #[arg(short, long = "input")]
        inputs: Vec<String>,
        /// Timed runs.
        #[arg(long, default_value_t = 100)]
        iters: usize,
        /// Untimed runs before timing.
        #[arg(long, default_value_t = 10)]
        warmup: usize,
        /// Threads per session (default: the machine's physical cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Machine-readable output (median_ms, load_ms, allocations_per_run, ...).
        #[arg(long)]
        json: bool,
        /// Also time every step and print the time per kind of op.
        #[arg(long)]
        profile: bool,
    },
    /// Compare a converted .mote model with its ONNX original (run in fp32 by tract-onnx):
    /// max abs error, SQNR, cosine similarity and, for classifier-like outputs, top-1/top-5
    /// agreement, per output and per layer that maps back to an ONNX node output.
    Compare {
        /// The ONNX model (the reference).
        onnx: PathBuf,
        /// The converted .mote model.
        model: PathBuf,
        /// Inputs (.npy, in order or NAME=FILE); without them, seeded random-normal inputs.
        #[arg(short, long = "input")]
        inputs: Vec<String>,
        /// Random input sets to run when no -i is given.
        #[arg(long = "inputs", default_value_t = 1)]
        random_sets: usize,
        /// Seed of the random inputs.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Compare the graph outputs only, not the intermediate tensors.
        #[arg(long)]
        no_layers: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Describe a .mote model.
    Inspect {
        /// The .mote model.
        model: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

fn print_int8_report(r: &mote_tools::convert::quant::Report) {
    println!("int8: calibrated on {}", r.calibration);
    println!(
        "int8: {} layers int8, {} Quantize and {} Dequantize steps",
        r.int8.len(),
        r.converts.0,
        r.converts.1
    );
    for (layer, why) in &r.kept_f32 {
        println!("int8: kept f32: {layer}: {why}");
    }
}

fn parse_input_shape_arg(s: &str) -> Result<(String, Vec<usize>), String> {
    parse_input_shape(s).map_err(|e| format!("{e:#}"))
}

struct StderrLogger;
impl log::Log for StderrLogger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, r: &log::Record<'_>) {
        eprintln!("[{}] {}", r.level(), r.args());
    }
    fn flush(&self) {}
}
static LOGGER: StderrLogger = StderrLogger;

fn main() {
    // `mote inspect model.mote | head`: once the reader is gone, `println!` panics on EPIPE.
    // Exit quietly instead, with the status a shell gives a process killed by SIGPIPE.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let p = info.payload();
        let msg = p
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| p.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        default_hook(info)
    }));
    let cli = Cli::parse();
    if cli.verbose {
        let _ = log::set_logger(&LOGGER);
        log::set_max_level(if std::env::var_os("MOTE_TRACE").is_some() {
            log::LevelFilter::Trace
        } else {
            log::LevelFilter::Debug
        });
    }
    if let Err(e) = dispatch(cli.cmd) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn dispatch(cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Convert {
            model,
            output,
            target,
            no_fuse,
            no_fuse_elementwise,
            input_shape,
            quant,
            calibrate,
            calib,
        } => {
            let t = Instant::now();
            let int8 = mote_tools::convert::quant::Int8Options {
                calibrate,
                estimator: mote_tools::convert::quant::Estimator::parse(&calib)?,
            };
            let c = convert(
                &model,
                &Options {
                    target,
                    optimize: !no_fuse,
                    input_shapes: input_shape,
                    fuse_elementwise: !no_fuse_elementwise,
                    quant,
                    int8,
                },
            )?;
            std::fs::write(&output, &c.bytes)
                .with_context(|| format!("cannot write {}", output.display()))?;
            let m = Model::from_bytes(mote::AlignedBytes::copy_from(&c.bytes).as_slice())
                .map(|m| (m.arena_size(), m.weights_size()))
                .map_err(|e| anyhow!("internal: the converted file does not validate: {e}"))?;
            println!(
                "{} -> {}: {} ONNX nodes -> {} steps, {} weights {} bytes, arena {} bytes, {:.2} s",
                model.display(),
                output.display(),
                c.onnx_nodes,
                c.steps,
                c.quant.name(),
                m.1,
                m.0,
                t.elapsed().as_secs_f64()
            );
            if let Some(r) = &c.int8 {
                print_int8_report(r);
            }
            Ok(())
        }
        Cmd::Run {
            model,
            inputs,
            output,
            output_dir,
            top,
            threads,
        } => run(
            &model,
            &inputs,
            output,
            output_dir,
            top,
            threads_or_default(threads)?,
        ),
        Cmd::Bench {
            model,
            inputs,
            iters,
            warmup,
            threads,
            json,
            profile,
        } => {
            let data = {
                let mapped = open(&model)?;
                let m = mapped
                    .model()
                    .map_err(|e| anyhow!("{}: {e}", model.display()))?;
                read_inputs(&m, &inputs)?
                    .into_iter()
                    .map(|(i, a)| (i, a.data))
                    .collect::<Vec<_>>()
            };
            bench::bench(
                &model,
                &data,
                &bench::BenchOpts {
                    iters,
                    warmup,
                    threads: threads_or_default(threads)?,
                    json,
                    profile,
                },
            )
        }
        Cmd::Compare {
            onnx,
            model,
            inputs,
            random_sets,
            seed,
            no_layers,
            json,
        } => {
            let mapped = open(&model)?;
            let m = mapped
                .model()
                .map_err(|e| anyhow!("{}: {e}", model.display()))?;
            let opts = mote_tools::compare::CompareOptions {
                inputs,
                random_sets,
                seed,
                layers: !no_layers,
            };
            let r = mote_tools::compare::compare(&onnx, &m, &opts)?;
            if json {
                println!("{}", r.to_json());
            } else {
                print!("{}", r.to_text());
            }
            Ok(())
        }
        Cmd::Inspect { model, json } => {
            inspect(&model, json, log::max_level() >= log::LevelFilter::Debug)
        }
    }
}

fn open(path: &Path) -> Result<MappedModel> {
    MappedModel::open(path).map_err(|e| anyhow!("{}: {e}", path.display()))
}

/// Reads `-i` specs (`FILE` for the next unnamed input, or `NAME=FILE`) and checks each file's
/// shape and dtype against the model: `(input index, array)` pairs.
fn read_inputs(model: &Model<'_>, inputs: &[String]) -> Result<Vec<(usize, npy::Array)>> {
    let mut out: Vec<(usize, npy::Array)> = vec![];
    let mut next_positional = 0usize;
    let mut given = vec![false; model.input_count()];
    for spec in inputs {
        let (idx, file) = match spec.split_once('=') {
            Some((name, file)) if model.input_index(name).is_ok() => {
                (model.input_index(name)?, file)
            }
            Some((name, _)) if !Path::new(spec).exists() => {
                let names: Vec<String> = (0..model.input_count())
                    .filter_map(|i| model.input(i).ok())
                    .map(|t| t.name.to_string())
                    .collect();
                bail!(
                    "the model has no input named {name:?} (inputs: {})",
                    names.join(", ")
                )
            }
            _ => {
                while next_positional < given.len() && given[next_positional] {
                    next_positional += 1;
                }
                (next_positional, spec.as_str())
            }
        };
        let info = model.input(idx).map_err(|_| {
            anyhow!(
                "more -i files than the model has inputs ({})",
                model.input_count()
            )
        })?;
        let a = npy::read(Path::new(file))?;
        if a.shape != info.shape() {
            bail!(
                "input {:?} ({file}) has shape {:?}, the model expects {:?}",
                info.name,
                a.shape,
                info.shape()
            );
        }
        if a.dtype != info.dtype {
            bail!(
                "input {:?} ({file}) has dtype {}, the model expects {}",
                info.name,
                a.dtype.name(),
                info.dtype.name()
            );
        }
        given[idx] = true;
        out.push((idx, a));
    }
    Ok(out)
}

/// `--threads`, checked, or the number of physical cores.
fn threads_or_default(threads: Option<usize>) -> Result<usize> {
    match threads {
        Some(0) => bail!("--threads must be at least 1"),
        Some(n) if n > mote::pool::MAX_THREADS => {
            bail!(
                "--threads {n}: at most {} are supported",
                mote::pool::MAX_THREADS
            )
        }
        Some(n) => Ok(n),
        None => Ok(physical_cores()),
    }
}

/// Physical cores (hyper-threads share a core's FMA units, so they do not speed up kernels):
/// distinct (package, core) pairs in Linux's sysfs topology, else the logical CPU count.
fn physical_cores() -> usize {
    let logical = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut cores = std::collections::BTreeSet::new();
    for cpu in 0..logical.max(1) * 4 {
        let dir = format!("/sys/devices/system/cpu/cpu{cpu}/topology");
        let read = |f: &str| std::fs::read_to_string(format!("{dir}/{f}")).ok();
        if let (Some(p), Some(c)) = (read("physical_package_id"), read("core_id")) {
            cores.insert((p.trim().to_string(), c.trim().to_string()));
        }
    }
    if cores.is_empty() {
        logical
    } else {
        cores
            .len()
            .clamp(1, logical.clamp(1, mote::pool::MAX_THREADS))
    }
}

fn run(
    path: &Path,
    inputs: &[String],
    output: Option<PathBuf>,
    output_dir: Option<PathBuf>,
    top: usize,
    threads: usize,
) -> Result<()> {
    let mapped = open(path)?;
    let model = mapped
        .model()
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let mut owned = OwnedSession::with_threads(&model, threads)?;
    let mut s = owned.session()?;
    let data = read_inputs(&model, inputs)?;
    let mut given = vec![false; model.input_count()];
    for (idx, a) in data {
        s.input_bytes_mut(idx)?.copy_from_slice(&a.data);
        given[idx] = true;
    }
    if let Some(missing) = given.iter().position(|g| !g) {
        bail!("no data given for input {:?}", model.input(missing)?.name);
    }
    let t = Instant::now();
    s.run()?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    if model.output_count() > 1 && output.is_some() {
        bail!(
            "the model has {} outputs: use --output-dir",
            model.output_count()
        );
    }
    for i in 0..model.output_count() {
        let info = model.output(i)?;
        let a = npy::Array {
            dtype: info.dtype,
            shape: info.shape().to_vec(),
            data: s.output_bytes(i)?.to_vec(),
        };
        if let Some(o) = &output {
            npy::write(o, &a)?;
        }
        if let Some(d) = &output_dir {
            std::fs::create_dir_all(d)?;
            let safe: String = info
                .name
                .chars()
                .map(|c| {
                    if c.is_alphanumeric() || "._-".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            npy::write(&d.join(format!("{safe}.npy")), &a)?;
        }
    }
    println!("ran {} in {ms:.2} ms", path.display());
    if top > 0 {
        let info = model.output(0)?;
        if info.dtype == DType::F32 {
            let v = s.output::<f32>(0)?;
            let mut idx: Vec<usize> = (0..v.len()).collect();
            idx.sort_by(|&a, &b| v[b].total_cmp(&v[a]));
            for (r, &i) in idx.iter().take(top).enumerate() {
                println!("  #{} class {i}: {:.5}", r + 1, v[i]);
            }
        }
    }
    Ok(())
}

fn shape_str(s: &[usize]) -> String {
    format!(
        "[{}]",
        s.iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(",")
    )
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn inspect(path: &Path, json: bool, detail: bool) -> Result<()> {
    let mapped = open(path)?;
    let m = mapped
        .model()
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let (maj, min) = m.version();
    let desc = |t: mote::TensorInfo<'_>| {
        (
            t.name.to_string(),
            t.dtype.name().to_string(),
            t.shape().to_vec(),
        )
    };
    let ins: Vec<_> = (0..m.input_count())
        .map(|i| m.input(i).map(desc))
        .collect::<mote::Result<_>>()?;
    let outs: Vec<_> = (0..m.output_count())
        .map(|i| m.output(i).map(desc))
        .collect::<mote::Result<_>>()?;
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    let mut steps = vec![];
    for i in 0..m.step_count() {
        let s = m.step(i)?;
        *counts.entry(s.op.name()).or_default() += 1;
        let out = m.tensor(s.output)?;
        steps.push((s.op.name(), out.name.to_string(), out.shape().to_vec()));
    }
    if json {
        let tj = |v: &[(String, String, Vec<usize>)]| -> String {
            v.iter()
                .map(|(n, d, s)| {
                    format!(
                        "{{\"name\":{},\"dtype\":\"{d}\",\"shape\":{}}}",
                        json_str(n),
                        shape_str(s)
                    )
                })
                .collect::<Vec<_>>()
                .join(",")
        };
        let cj = counts
            .iter()
            .map(|(k, v)| format!("\"{k}\":{v}"))
            .collect::<Vec<_>>()
            .join(",");
        let sj = steps
            .iter()
            .map(|(o, n, s)| {
                format!(
                    "{{\"op\":\"{o}\",\"output\":{},\"shape\":{}}}",
                    json_str(n),
                    shape_str(s)
                )
            })
            .collect::<Vec<_>>()
            .join(",");
        println!(
            "{{\"format_version\":\"{maj}.{min}\",\"layout\":{},\"file_bytes\":{},\"weights_bytes\":{},\"arena_bytes\":{},\"inputs\":[{}],\"outputs\":[{}],\"step_count\":{},\"op_counts\":{{{cj}}},\"steps\":[{sj}]}}",
            m.layout(),
            mapped.bytes().len(),
            m.weights_size(),
            m.arena_size(),
            tj(&ins),
            tj(&outs),
            m.step_count()
        );
        return Ok(());
    }
    println!(
        "{}: .mote {maj}.{min}, layout {}",
        path.display(),
        m.layout()
    );
    println!(
        "  file {} bytes, weights {} bytes, arena {} bytes",
        mapped.bytes().len(),
        m.weights_size(),
        m.arena_size()
    );
    for (n, d, s) in &ins {
        println!("  input  {n}: {d} {}", shape_str(s));
    }
    for (n, d, s) in &outs {
        println!("  output {n}: {d} {}", shape_str(s));
    }
    println!(
        "  {} steps: {}",
        m.step_count(),
        counts
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (i, (o, n, s)) in steps.iter().enumerate() {
        println!("    {i:4} {o:<16} -> {n} {}", shape_str(s));
        if detail {
            println!("         {:?}", m.step(i)?);
        }
    }
    Ok(())
}
