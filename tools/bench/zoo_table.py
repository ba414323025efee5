#!/usr/bin/env python3
"""The per-family demo table of the README: every fixture in models/, converted, run and timed.

For each fixture: `mote convert` (ONNX nodes -> mote steps), `mote run --top 1` on the stored
input (the top class and its logit), the largest difference to the stored onnxruntime output,
and the median of `mote bench --threads 1`. Streaming fixtures (`*_step`) are timed per call on
zero inputs; their outputs are checked call by call in tests/tests/zoo.rs, not here.

    python3 tools/bench/zoo_table.py                 # uses target/release/mote
    python3 tools/bench/zoo_table.py --mote PATH --iters 200

Needs numpy. Prints one markdown table.
"""

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]

# (family, fixture, streaming)
FIXTURES = [
    ("EMOv2", "emov2/emov2_tiny", False),
    ("SpaRTAN", "spartan/spartan_tiny", False),
    ("EcoFormer", "ecoformer/ecoformer_tiny", False),
    ("LMUFormer, whole clip", "lmuformer/lmuformer_seq", False),
    ("LMUFormer, FFT memory", "lmuformer/lmuformer_fft", False),
    ("LMUFormer, FFT memory, H in the graph", "lmuformer/lmuformer_fft_long", False),
    ("LMUFormer, streaming", "lmuformer/lmuformer_step", True),
    ("LMUFormer, spiking streaming", "lmuformer/lmuformer_spiking_step", True),
    ("demo (not a family)", "demo/demo", False),
]


def sh(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed:\n{r.stderr}")
    return r.stdout + r.stderr


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mote", default=str(REPO / "target" / "release" / "mote"))
    ap.add_argument("--iters", type=int, default=200)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for family, stem, streaming in FIXTURES:
            onnx = REPO / "models" / f"{stem}.onnx"
            name = Path(stem).name
            out = Path(tmp) / f"{name}.mote"
            conv = sh([args.mote, "convert", onnx, "-o", out])
            m = re.search(r"(\d+) ONNX nodes -> (\d+) steps", conv)
            nodes, steps = (m.group(1), m.group(2)) if m else ("?", "?")
            inp = REPO / "models" / f"{stem}.input.npy"
            if streaming:
                result, err = "per call, see zoo.rs", "–"
                bench = ["--iters", str(args.iters)]
            else:
                ran = sh([args.mote, "run", out, "-i", inp, "--top", "1", "-o", Path(tmp) / "o.npy"])
                top = re.search(r"#1 class (\d+): (-?[\d.]+)", ran)
                result = f"class {top.group(1)}, {top.group(2)}" if top else "?"
                ref = np.load(REPO / "models" / f"{stem}.output.npy")
                got = np.load(Path(tmp) / "o.npy")
                err = f"{float(np.max(np.abs(got.astype(np.float64) - ref))):.1e}"
                bench = ["-i", inp, "--iters", str(args.iters)]
            b = json.loads(sh([args.mote, "bench", out, "--threads", "1", "--json", *bench]).strip().splitlines()[-1])
            cmd = f"`mote run {name}.mote -i models/{stem}.input.npy --top 3`" if not streaming else "stream"
            rows.append((family, f"`{name}`", cmd, f"{nodes} → {steps}", result, err, f"{b['median_ms']:.3f} ms"))
    print("| family | fixture | command | ONNX nodes → steps | output (top-1) | max diff vs onnxruntime | median, 1 thread |")
    print("|---|---|---|---:|---|---:|---:|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
