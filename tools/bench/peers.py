#!/usr/bin/env python3
"""Model-level peer comparison: mote vs onnxruntime vs tract, same models, same inputs, one run.

For every model: convert it with `mote convert`, time it with `mote bench --json`, time the
ONNX file in onnxruntime and in tract (the PyPI `tract` package) on the same inputs, check that
mote and tract compute what onnxruntime computes (max abs difference of the outputs), and print
one markdown table with the ratios mote/ORT and mote/tract (> 1 means mote is slower).

    python3 tools/bench/peers.py                                  # fixtures + demo, 1 thread
    python3 tools/bench/peers.py --model m.onnx --input m.npy --iters 200 --json out.json
    python3 tools/bench/peers.py --quant fp16,int8     # also mote with fp16 weights and int8

With --quant, mote also runs each model converted with those precisions (int8 calibrated on
32 seeded random-normal inputs, `--calibrate random:32`: a test calibration, said so in the
report) and a second table gives their time, file size and agreement with onnxruntime's fp32
outputs.

Requirements: tools/bench/requirements.txt. See tools/bench/README.md for what the numbers mean.
"""

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# anyhow (inside tract) appends a stack backtrace to every error when RUST_BACKTRACE is set;
# the table wants the message only. Must be set before tract is loaded.
os.environ["RUST_LIB_BACKTRACE"] = "0"

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DEFAULT_FIXTURES = REPO.parent / "shared" / "fixtures"
DEMO = REPO / "models" / "demo" / "demo.onnx"
# The conformance fixtures, in the order the table lists them; other *.onnx files in the
# fixtures folder follow, sorted by name.
FIXTURE_ORDER = [
    "emov2_1m",
    "spartan_t",
    "ecoformer_pvtv2_b0",
    "lmuformer_seq_tdconv",
    "lmuformer_step",
    "lmuformer_spiking_step",
]
# Same bound as the conformance tests: 1e-4 * max(1, max|ref|).
TOL_REL = 1e-4


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def short(err, limit=90):
    """The first line of an error (and its root cause for chained Rust errors), table-safe."""
    text = str(err).split("Stack backtrace")[0]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    msg = lines[0]
    if msg.lower().startswith("error: "):
        msg = msg[len("error: "):]
    if "Caused by:" in lines:
        root = lines[-1].lstrip("0123456789: ")
        if root and root != msg:
            msg = f"{msg}: {root}"
    msg = msg.replace("|", "/").replace("\n", " ")
    return msg if len(msg) <= limit else msg[: limit - 1] + "…"


def safe_name(name):
    """The file name `mote run --output-dir` gives an output (alphanumerics and ._- kept)."""
    return "".join(c if (c.isalnum() or c in "._-") else "_" for c in name)


# ---------------------------------------------------------------------------------------------
# Models and inputs


class ModelAction(argparse.Action):
    """`--model X.onnx` starts an entry; a following `--input F` attaches to it."""

    def __call__(self, parser, ns, value, option_string=None):
        models = getattr(ns, "models") or []
        if option_string == "--model":
            models.append({"onnx": Path(value), "inputs": []})
        else:
            if not models:
                parser.error("--input must follow the --model it belongs to")
            models[-1]["inputs"].append(Path(value))
        ns.models = models


def graph_inputs(onnx_path):
    """[(name, shape with None for dynamic dims, numpy dtype)] of the real graph inputs."""
    import onnx
    from onnx import helper

    m = onnx.load(str(onnx_path), load_external_data=False)
    inits = {i.name for i in m.graph.initializer}
    out = []
    for vi in m.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                 for d in tt.shape.dim]
        out.append((vi.name, shape, np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type))))
    return out


def fits(arr, shape):
    return arr.ndim == len(shape) and all(s is None or s == d for s, d in zip(shape, arr.shape))


def fit(arr, shape, dtype, what):
    """`arr` as one call's input of `shape`: as is, or its first entry when the file holds a
    sequence (one entry per call / timestep, e.g. [T, 1, 128] for an input [1, 128])."""
    if fits(arr, shape):
        return np.ascontiguousarray(arr, dtype=dtype), ""
    if arr.ndim == len(shape) + 1 and fits(arr[0], shape):
        return np.ascontiguousarray(arr[0], dtype=dtype), "[0]"
    raise ValueError(f"{what} has shape {list(arr.shape)}, the model expects {shape}")


def load_inputs(onnx_path, given):
    """The arrays for every graph input, and a line saying where each came from.

    Given files: a .npz holds inputs by name; a .npy is the next input in order. Without
    them: a sibling NAME*.npz that holds every input by name (the step fixtures' mid-stream
    call), else NAME.input.npy for the first input and NAME.<input>.npy for the others; what is
    still missing is zeros (state inputs start at zero)."""
    specs = graph_inputs(onnx_path)
    stem = onnx_path.name[: -len(".onnx")] if onnx_path.name.endswith(".onnx") else onnx_path.stem
    folder = onnx_path.parent
    found = {}  # name -> (array, source)
    if given:
        pending = [s for s in specs]
        for f in given:
            if f.suffix == ".npz":
                with np.load(f) as z:
                    for name, shape, dt in specs:
                        if name in z.files:
                            a, sl = fit(z[name], shape, dt, f"{f}[{name}]")
                            found[name] = (a, f"{f.name}[{name}]{sl}")
                pending = [s for s in pending if s[0] not in found]
            else:
                if not pending:
                    raise ValueError(f"more input files than the model has inputs ({len(specs)})")
                name, shape, dt = pending.pop(0)
                a, sl = fit(np.load(f), shape, dt, str(f))
                found[name] = (a, f"{f.name}{sl}")
    else:
        names = {s[0] for s in specs}
        for npz in sorted(folder.glob(f"{stem}*.npz")):
            with np.load(npz) as z:
                if names <= set(z.files):
                    for name, shape, dt in specs:
                        a, sl = fit(z[name], shape, dt, f"{npz}[{name}]")
                        found[name] = (a, f"{npz.name}{sl}")
                    break
        if not found:
            for k, (name, shape, dt) in enumerate(specs):
                for cand in ([folder / f"{stem}.input.npy"] if k == 0 else []) + [
                    folder / f"{stem}.{safe_name(name)}.npy"
                ]:
                    if cand.exists():
                        a, sl = fit(np.load(cand), shape, dt, str(cand))
                        found[name] = (a, f"{cand.name}{sl}")
                        break
    arrays, zeros = {}, []
    for name, shape, dt in specs:
        if name in found:
            arrays[name] = found[name][0]
        elif None in shape:
            raise ValueError(f"no data for input {name!r}, whose shape {shape} is dynamic")
        else:
            arrays[name] = np.zeros(shape, dtype=dt)
            zeros.append(name)
    if all(n in zeros for n, _, _ in specs):
        raise ValueError("no input data found (pass --input)")
    srcs = sorted({src.split("[")[0] + ("[0]" if src.endswith("[0]") else "")
                   for n, (a, src) in found.items()})
    source = ", ".join(srcs)
    if zeros:
        source += f"; zeros: {', '.join(zeros)}"
    return specs, arrays, source


def discover(args):
    """The models to run: [(display name, onnx path, given input files)]."""
    out = []
    explicit = args.models or []
    if args.fixtures is not None or not explicit:
        fx = Path(args.fixtures) if args.fixtures is not None else DEFAULT_FIXTURES
        if fx.is_dir():
            found = sorted(fx.glob("*.onnx"), key=lambda p: (
                FIXTURE_ORDER.index(p.stem) if p.stem in FIXTURE_ORDER else len(FIXTURE_ORDER),
                p.name))
            out += [(p.stem, p, []) for p in found]
        elif args.fixtures is not None:
            sys.exit(f"error: fixtures folder {fx} does not exist")
        else:
            log(f"note: no fixtures at {fx}; running the demo model only")
        if not explicit and DEMO.exists():
            out.append(("demo", DEMO, []))
    for m in explicit:
        if not m["onnx"].exists():
            sys.exit(f"error: model {m['onnx']} does not exist")
        for f in m["inputs"]:
            if not f.exists():
                sys.exit(f"error: input {f} does not exist")
        out.append((m["onnx"].stem, m["onnx"], m["inputs"]))
    if args.only:
        keep = [k.strip() for k in args.only.split(",") if k.strip()]
        out = [m for m in out if any(k in m[0] for k in keep)]
    if not out:
        sys.exit("error: no models to run")
    return out


# ---------------------------------------------------------------------------------------------
# Engines


def timed(fn, iters, warmup):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t) * 1e3)
    ts.sort()
    return {"median_ms": statistics.median(ts), "min_ms": ts[0],
            "p90_ms": ts[min(len(ts) - 1, int(round(0.9 * (len(ts) - 1))))]}


def sh(cmd, what):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        err = (r.stderr.strip() or r.stdout.strip() or f"exit {r.returncode}")
        last = err.splitlines()[-1]
        raise RuntimeError(f"{what}: {last[7:] if last.lower().startswith('error: ') else last}")
    return r.stdout


class Mote:
    def __init__(self, binary, target):
        self.bin = binary
        self.target = target

    def prepare(self, onnx_path, specs, arrays, work, quant=None):
        """Converts the model and writes its inputs; returns (mote file, -i args, convert ms)."""
        mote_file = work / (onnx_path.stem + (f".{quant}" if quant else "") + ".mote")
        cmd = [str(self.bin), "convert", str(onnx_path), "-o", str(mote_file)]
        if self.target:
            cmd += ["--target", self.target]
        # Without --quant the target's default applies (fp16 for rpi5/jetson-orin); the f32
        # row is f32 whatever the target.
        cmd += ["--quant", quant or "f32"]
        if quant == "int8":
            cmd += ["--calibrate", "random:32"]
        for name, shape, _ in specs:
            if None in shape:
                cmd += ["--input-shape", f"{name}=" + ",".join(map(str, arrays[name].shape))]
        t = time.perf_counter()
        sh(cmd, "convert")
        convert_ms = (time.perf_counter() - t) * 1e3
        idir = work / (onnx_path.stem + ".inputs")
        idir.mkdir(exist_ok=True)
        iargs = []
        for name, _, _ in specs:
            f = idir / (safe_name(name) + ".npy")
            np.save(f, arrays[name])
            iargs += ["-i", f"{name}={f}"]
        return mote_file, iargs, convert_ms

    def bench(self, mote_file, iargs, iters, warmup, threads):
        out = sh([str(self.bin), "bench", str(mote_file), *iargs, "--iters", str(iters),
                  "--warmup", str(warmup), "--threads", str(threads), "--json"], "bench")
        for line in reversed(out.splitlines()):
            if line.startswith("{"):
                return json.loads(line)
        raise RuntimeError(f"bench: no JSON in its output: {out[-200:]!r}")

    def outputs(self, mote_file, iargs, names, work):
        odir = work / (mote_file.stem + ".outputs")
        sh([str(self.bin), "run", str(mote_file), *iargs, "--output-dir", str(odir)], "run")
        return [np.load(odir / (safe_name(n) + ".npy")) for n in names]


def ort_session(onnx_path, threads):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])


def tract_runnable(onnx_path, specs, arrays):
    import tract

    m = tract.onnx().load(str(onnx_path))
    for k, (name, _, dt) in enumerate(specs):
        a = arrays[name]
        m.set_input_fact(k, ",".join([str(d) for d in a.shape] + [tract_dt(dt)]))
    # The "default" runtime is tract's normal path: declutter, optimize, plan.
    return tract.runtime_for_name("default").prepare(m.into_model())


def tract_dt(dt):
    return {"float32": "f32", "float64": "f64", "float16": "f16", "int64": "i64",
            "int32": "i32", "int16": "i16", "int8": "i8", "uint8": "u8", "uint16": "u16",
            "uint32": "u32", "uint64": "u64", "bool": "bool"}[np.dtype(dt).name]


def binding_overhead(iters, threads):
    """Per-call cost of the Python bindings on an Identity of one float: ORT and tract are
    timed from Python, mote inside its own process, so this is what their times include and
    mote's does not."""
    import onnx
    import onnxruntime as ort  # noqa: F401
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "id",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    out = {}
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "identity.onnx"
        onnx.save(model, str(p))
        x = np.zeros([1], np.float32)
        n = max(iters, 200)
        try:
            s = ort_session(p, threads)
            out["ort_us"] = timed(lambda: s.run(None, {"x": x}), n, 20)["median_ms"] * 1e3
        except Exception as e:  # noqa: BLE001
            out["ort_error"] = short(e)
        try:
            import tract

            st = tract_runnable(p, [("x", [1], np.dtype(np.float32))], {"x": x}).spawn_state()
            tx = tract.Tensor.from_numpy(x)
            out["tract_us"] = timed(lambda: st.run([tx]), n, 20)["median_ms"] * 1e3
        except Exception as e:  # noqa: BLE001
            out["tract_error"] = short(e)
    return out


def max_abs_diff(got, ref):
    """Largest |got - ref| over all outputs, and whether it is inside the conformance bound."""
    if len(got) != len(ref):
        raise ValueError(f"{len(got)} outputs, onnxruntime has {len(ref)}")
    worst, ok = 0.0, True
    for g, r in zip(got, ref):
        g, r = np.asarray(g), np.asarray(r)
        if g.shape != r.shape:
            raise ValueError(f"output shape {list(g.shape)}, onnxruntime {list(r.shape)}")
        if g.size == 0:
            continue
        d = float(np.max(np.abs(g.astype(np.float64) - r.astype(np.float64))))
        scale = max(1.0, float(np.max(np.abs(r.astype(np.float64)))))
        worst = max(worst, d)
        ok = ok and d <= TOL_REL * scale
    return worst, ok


def agreement(got, ref):
    """Cosine similarity of all outputs together and whether the first output's argmax agrees."""
    g = np.concatenate([np.asarray(x, np.float64).ravel() for x in got])
    r = np.concatenate([np.asarray(x, np.float64).ravel() for x in ref])
    cos = float(g @ r / max(np.linalg.norm(g) * np.linalg.norm(r), 1e-30))
    top1 = bool(np.argmax(np.asarray(got[0])) == np.argmax(np.asarray(ref[0])))
    return cos, top1


def run_model(name, onnx_path, given, args, mote, work):
    rec = {"model": name, "onnx": str(onnx_path)}
    try:
        specs, arrays, source = load_inputs(onnx_path, given)
    except Exception as e:  # noqa: BLE001
        rec["error"] = f"inputs: {short(e)}"
        return rec
    rec["inputs"] = {n: {"shape": list(arrays[n].shape), "dtype": arrays[n].dtype.name}
                     for n, _, _ in specs}
    rec["input_source"] = source
    feeds = {n: arrays[n] for n, _, _ in specs}

    ref = None
    ort_out_names = None
    sess = None
    log(f"[{name}] onnxruntime: load")
    try:
        t = time.perf_counter()
        sess = ort_session(onnx_path, args.threads)
        rec["ort"] = {"load_ms": (time.perf_counter() - t) * 1e3}
        ort_out_names = [o.name for o in sess.get_outputs()]
        ref = sess.run(None, feeds)
    except Exception as e:  # noqa: BLE001
        rec["ort"] = {"error": short(e)}

    log(f"[{name}] mote: convert")
    mfile = iargs = None
    try:
        mfile, iargs, conv_ms = mote.prepare(onnx_path, specs, arrays, work)
        rec["mote"] = {"convert_ms": conv_ms}
    except Exception as e:  # noqa: BLE001
        rec["mote"] = {"error": short(e)}

    reduced = {}
    for q in args.quant:
        log(f"[{name}] mote {q}: convert")
        try:
            qfile, _, _ = mote.prepare(onnx_path, specs, arrays, work, quant=q)
            e = {"bytes": qfile.stat().st_size}
            if mfile is not None:
                e["size_vs_f32"] = e["bytes"] / mfile.stat().st_size
            if ref is not None:
                got = mote.outputs(qfile, iargs, ort_out_names, work)
                d, _ = max_abs_diff(got, ref)
                cos, top1 = agreement(got, ref)
                e.update(max_abs_diff_vs_ort=d, cosine_vs_ort=cos, top1_same=top1)
            reduced[q] = qfile
        except Exception as ex:  # noqa: BLE001
            e = {"error": short(ex)}
        rec[f"mote_{q}"] = e

    st = tx = None
    log(f"[{name}] tract: load")
    try:
        import tract

        t = time.perf_counter()
        runnable = tract_runnable(onnx_path, specs, arrays)
        rec["tract"] = {"load_ms": (time.perf_counter() - t) * 1e3}
        st = runnable.spawn_state()
        tx = [tract.Tensor.from_numpy(arrays[n]) for n, _, _ in specs]
        tout = [o.to_numpy() for o in st.run(tx)]
        if ref is not None:
            d, ok = max_abs_diff(tout, ref)
            rec["tract"].update(max_abs_diff_vs_ort=d, within_tol=ok)
    except Exception as e:  # noqa: BLE001
        rec["tract"] = {"error": short(e)}
        st = None

    if mfile is not None and ref is not None:
        try:
            got = mote.outputs(mfile, iargs, ort_out_names, work)
            d, ok = max_abs_diff(got, ref)
            rec["mote"].update(max_abs_diff_vs_ort=d, within_tol=ok)
        except Exception as e:  # noqa: BLE001
            rec["mote"]["diff_error"] = short(e)

    # Each round times the three engines one after the other; a result is the smallest
    # median over the rounds (the round least disturbed by other work on the machine).
    for r in range(args.rounds):
        tag = f" (round {r + 1}/{args.rounds})" if args.rounds > 1 else ""
        if mfile is not None and "error" not in rec["mote"]:
            log(f"[{name}] mote: bench{tag}")
            try:
                b = mote.bench(mfile, iargs, args.iters, args.warmup, args.threads)
                if "median_ms" not in rec["mote"] or b["median_ms"] < rec["mote"]["median_ms"]:
                    rec["mote"].update({k: b[k] for k in (
                        "median_ms", "min_ms", "p90_ms", "load_ms", "first_run_ms",
                        "allocations_per_run", "threads") if k in b})
            except Exception as e:  # noqa: BLE001
                rec["mote"]["error"] = short(e)
        for q, qfile in reduced.items():
            e = rec[f"mote_{q}"]
            if "error" in e:
                continue
            log(f"[{name}] mote {q}: bench{tag}")
            try:
                b = mote.bench(qfile, iargs, args.iters, args.warmup, args.threads)
                if "median_ms" not in e or b["median_ms"] < e["median_ms"]:
                    e.update({k: b[k] for k in ("median_ms", "allocations_per_run") if k in b})
            except Exception as ex:  # noqa: BLE001
                e["error"] = short(ex)
        if sess is not None and ref is not None:
            log(f"[{name}] onnxruntime: time{tag}")
            res = timed(lambda: sess.run(None, feeds), args.iters, args.warmup)
            if "median_ms" not in rec["ort"] or res["median_ms"] < rec["ort"]["median_ms"]:
                rec["ort"].update(res)
        if st is not None:
            log(f"[{name}] tract: time{tag}")
            res = timed(lambda: st.run(tx), args.iters, args.warmup)
            if "median_ms" not in rec["tract"] or res["median_ms"] < rec["tract"]["median_ms"]:
                rec["tract"].update(res)
    del sess, st
    m = rec.get("mote", {}).get("median_ms")
    for peer, key in (("ort", "mote_over_ort"), ("tract", "mote_over_tract")):
        p = rec.get(peer, {}).get("median_ms")
        if m is not None and p:
            rec[key] = m / p
    ort_ms = rec.get("ort", {}).get("median_ms")
    for q in args.quant:
        e = rec[f"mote_{q}"]
        if e.get("median_ms") is not None:
            if m:
                e["vs_mote_f32"] = e["median_ms"] / m
            if ort_ms:
                e["vs_ort_f32"] = e["median_ms"] / ort_ms
    return rec


# ---------------------------------------------------------------------------------------------
# Report


def cpu_model():
    """The CPU's name and the SIMD features that matter to kernels (x86 flags, Arm features)."""
    name, flags = None, set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, val = line.partition(":")
            key = key.strip().lower()
            if key == "model name" and name is None:
                name = val.strip()
            elif key in ("flags", "features") and not flags:
                flags = set(val.split())
    except OSError:
        pass
    if name is None:
        try:  # Raspberry Pi, Jetson: the board, not the core
            name = Path("/proc/device-tree/model").read_text().strip("\0\n ")
        except OSError:
            name = platform.processor() or platform.machine()
    simd = [f for f in ("sse4_2", "avx", "fma", "avx2", "avx512f", "avx512_vnni", "neon",
                        "asimd", "asimddp", "sve") if f in flags]
    return f"{name} ({platform.machine()}" + (f"; {' '.join(simd)}" if simd else "") + ")"


def git_rev():
    try:
        rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain",
                                "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return rev + ("+dirty" if dirty else "") if rev else "unknown"
    except OSError:
        return "unknown"


def fms(v):
    if v is None:
        return "—"
    return (f"{v:.4f}" if v < 0.1 else f"{v:.3f}" if v < 10 else f"{v:.2f}" if v < 100
            else f"{v:.1f}")


def cell(rec, engine, key="median_ms"):
    e = rec.get(engine, {})
    if "error" in e:
        return f"n/a ({e['error']})"
    return fms(e.get(key))


def diff_cell(rec, engine):
    e = rec.get(engine, {})
    if "max_abs_diff_vs_ort" in e:
        d = f"{e['max_abs_diff_vs_ort']:.1e}"
        return d if e["within_tol"] else f"{d} (over tol)"
    if "diff_error" in e:
        return f"n/a ({e['diff_error']})"
    return "—"


def ratio(v):
    return "—" if v is None else f"{v:.2f}"


def table(recs):
    head = ["model", "mote ms", "ORT ms", "tract ms", "mote/ORT", "mote/tract",
            "mote load ms", "allocs/run", "max abs diff mote vs ORT", "max abs diff tract vs ORT"]
    rows = ["| " + " | ".join(head) + " |", "|" + "|".join(
        ["---"] + ["---:"] * 7 + ["---:", "---:"]) + "|"]
    for r in recs:
        if "error" in r:
            rows.append(f"| {r['model']} | n/a ({r['error']}) |" + " |" * (len(head) - 2))
            continue
        m = r.get("mote", {})
        allocs = m.get("allocations_per_run")
        rows.append("| " + " | ".join([
            r["model"], cell(r, "mote"), cell(r, "ort"), cell(r, "tract"),
            ratio(r.get("mote_over_ort")), ratio(r.get("mote_over_tract")),
            fms(m.get("load_ms")) if "error" not in m else "—",
            "—" if allocs is None else str(allocs),
            diff_cell(r, "mote"), diff_cell(r, "tract"),
        ]) + " |")
    return "\n".join(rows)


def reduced_table(recs, quants):
    head = ["model", "weights", "mote ms", "× mote f32", "mote / ORT f32", "file × f32",
            "cosine vs ORT", "top-1 as ORT", "allocs/run"]
    rows = ["| " + " | ".join(head) + " |", "|" + "|".join(["---", "---"] + ["---:"] * 7) + "|"]
    for r in recs:
        for q in quants:
            e = r.get(f"mote_{q}")
            if e is None:
                continue
            if "error" in e:
                rows.append(f"| {r['model']} | {q} | n/a ({e['error']}) |" + " |" * 6)
                continue
            cos = e.get("cosine_vs_ort")
            top1 = e.get("top1_same")
            rows.append("| " + " | ".join([
                r["model"], q, fms(e.get("median_ms")), ratio(e.get("vs_mote_f32")),
                ratio(e.get("vs_ort_f32")),
                "—" if e.get("size_vs_f32") is None else f"{e['size_vs_f32']:.3f}",
                "—" if cos is None else f"{cos:.8f}",
                "—" if top1 is None else ("yes" if top1 else "no"),
                str(e.get("allocations_per_run", "—")),
            ]) + " |")
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser(
        description="Time mote, onnxruntime and tract on the same models and inputs.")
    ap.add_argument("--model", action=ModelAction, dest="models", default=None,
                    metavar="X.onnx", help="a model to run (repeatable); replaces the defaults "
                    "unless --fixtures is also given")
    ap.add_argument("--input", action=ModelAction, dest="models", metavar="X.npy|X.npz",
                    help="input for the preceding --model: .npy for the next input in order, "
                    ".npz for inputs by name (repeatable)")
    ap.add_argument("--fixtures", metavar="DIR", default=None,
                    help=f"run every *.onnx in DIR (default: {DEFAULT_FIXTURES}, plus the demo)")
    ap.add_argument("--only", metavar="A,B", help="keep the models whose name contains one of these")
    ap.add_argument("--iters", type=int, default=50, help="timed runs per engine (default 50)")
    ap.add_argument("--warmup", type=int, default=10, help="untimed runs first (default 10)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="time all engines this many times, keep each one's best median")
    ap.add_argument("--threads", type=int, default=1, help="threads per engine (default 1)")
    ap.add_argument("--target", help="passed to `mote convert --target`")
    ap.add_argument("--quant", default="", metavar="fp16,int8",
                    help="also time mote with these weight precisions (int8: calibrated on 32 "
                    "random-normal inputs, a test calibration)")
    ap.add_argument("--mote", type=Path, default=REPO / "target" / "release" / "mote",
                    help="the mote binary (default: target/release/mote in the repository)")
    ap.add_argument("--json", type=Path, metavar="OUT", help="also write every number to OUT")
    ap.add_argument("--work-dir", type=Path,
                    help="keep converted models, inputs and outputs here (default: a temp dir)")
    args = ap.parse_args()
    if args.iters < 1 or args.warmup < 0 or args.rounds < 1 or args.threads < 1:
        ap.error("--iters, --rounds and --threads must be >= 1, --warmup >= 0")
    args.quant = [q for q in args.quant.split(",") if q]
    for q in args.quant:
        if q not in ("fp16", "int8"):
            ap.error(f"--quant takes fp16 and/or int8, not {q!r}")

    if not args.mote.is_file() or not os.access(args.mote, os.X_OK):
        sys.exit(f"error: mote binary not found at {args.mote}\n"
                 f"build it with:  cargo build --release -p mote-tools   (in {REPO})\n"
                 "or point at one with --mote PATH")
    missing = []
    for mod in ("onnxruntime", "onnx", "tract"):
        try:
            __import__(mod)
        except ImportError:
            missing.append(mod)
    if missing:
        sys.exit(f"error: missing Python packages: {', '.join(missing)}\n"
                 f"install with:  pip install -r {REPO / 'tools/bench/requirements.txt'}")
    import onnxruntime
    import tract

    models = discover(args)
    mote = Mote(args.mote.resolve(), args.target)
    command = shlex.join(["python3"] + sys.argv)
    started = datetime.datetime.now(datetime.timezone.utc)

    log("measuring the Python binding overhead per call")
    overhead = binding_overhead(args.iters, args.threads)
    recs = []
    with tempfile.TemporaryDirectory(prefix="mote-peers-") as tmp:
        work = args.work_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for k, (name, path, given) in enumerate(models):
            sub = work / f"{k:02d}_{name}"
            sub.mkdir(exist_ok=True)
            recs.append(run_model(name, path, given, args, mote, sub))

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    versions = {"mote": git_rev(), "onnxruntime": onnxruntime.__version__,
                "tract": tract.version(), "numpy": np.__version__,
                "python": platform.python_version()}
    machine = {"cpu": cpu_model(), "logical_cpus": os.cpu_count(),
               "loadavg_at_end": [round(x, 2) for x in load] if load else None,
               "os": platform.platform()}

    out = [f"$ {command}", "",
           f"- date: {started.strftime('%Y-%m-%d %H:%M UTC')}",
           f"- machine: {machine['cpu']}, {machine['logical_cpus']} logical CPUs"
           + (f", load average {machine['loadavg_at_end'][0]} at the end" if load else ""),
           f"- threads: {args.threads}; each engine: {args.warmup} warm-up run(s), then median of "
           f"{args.iters} timed runs" + (f", best of {args.rounds} rounds" if args.rounds > 1 else ""),
           f"- versions: mote {versions['mote']}"
           + (f" (--target {args.target})" if args.target else "")
           + f", onnxruntime {versions['onnxruntime']}, tract {versions['tract']}"]
    ov = []
    if "ort_us" in overhead:
        ov.append(f"onnxruntime {overhead['ort_us']:.1f} µs")
    if "tract_us" in overhead:
        ov.append(f"tract {overhead['tract_us']:.1f} µs")
    if ov:
        out.append(f"- Python binding overhead per call (Identity of one float), included in the "
                   f"ORT and tract times, not in mote's: {', '.join(ov)}")
    if args.threads > 1:
        out.append("- tract's Python API has no thread setting: tract runs on 1 thread")
    out += ["", "mote/ORT and mote/tract: > 1 means mote is slower. Max abs diff: over all outputs, "
            f"against onnxruntime; \"over tol\" means above {TOL_REL:g} × max(1, max|ORT|).", "",
            table(recs), ""]
    if args.quant:
        out += ["Reduced precision (mote only; the same inputs; int8 calibrated on 32 seeded "
                "random-normal inputs with `--calibrate random:32`, a test calibration; "
                "cosine and top-1 against onnxruntime's fp32 outputs):", "",
                reduced_table(recs, args.quant), ""]
    notes = [f"- {r['model']}: inputs from {r['input_source']}" for r in recs if "input_source" in r]
    if notes:
        out += ["Inputs:", ""] + notes + [""]
    print("\n".join(out), flush=True)

    if args.json:
        args.json.write_text(json.dumps({
            "command": command, "date": started.isoformat(), "machine": machine,
            "versions": versions, "threads": args.threads, "iters": args.iters,
            "warmup": args.warmup, "rounds": args.rounds, "target": args.target,
            "quant": args.quant,
            "binding_overhead": overhead, "models": recs}, indent=2) + "\n")
        log(f"wrote {args.json}")


if __name__ == "__main__":
    main()
