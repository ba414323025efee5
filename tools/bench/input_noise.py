#!/usr/bin/env python3
"""How far an fp32 model's outputs move under tiny input noise, in onnxruntime.

This is the floor for judging reduced precision. If the fp32 model itself loses top-1
agreement when unit-variance random inputs get noise of 1e-4, then int8 (or fp16) accuracy on
those inputs cannot be held to a top-1 bound. SpaRTAN is such a model: its per-pixel ArgMax
picks flip.

    python3 tools/bench/input_noise.py ../shared/fixtures/spartan_t.onnx [--trials 20]

Every float input is drawn from N(0, 1) (dynamic dimensions set to 1), run, then run again
with `eps × N(0, 1)` added. The script prints the top-1 agreement of the first output and the
minimum cosine over all outputs. onnxruntime is the only dependency (tools/bench/requirements.txt).
"""

import argparse

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="an ONNX model")
    ap.add_argument("--trials", type=int, default=20, help="random inputs per noise level")
    ap.add_argument("--eps", default="1e-4,1e-3,1e-2", help="noise levels, comma-separated")
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(args.model, so, providers=["CPUExecutionProvider"])
    ins = [(i.name, [d if isinstance(d, int) else 1 for d in i.shape]) for i in sess.get_inputs()
           if i.type == "tensor(float)"]
    if len(ins) != len(sess.get_inputs()):
        raise SystemExit("only models whose inputs are all float32 are supported")
    rng = np.random.default_rng(args.seed)

    def run(feeds):
        outs = sess.run(None, feeds)
        return (np.concatenate([np.asarray(o, np.float64).ravel() for o in outs]),
                np.asarray(outs[0]).ravel())

    for eps in (float(e) for e in args.eps.split(",")):
        agree, cos_min = 0, 1.0
        for _ in range(args.trials):
            x = {n: rng.standard_normal(s).astype(np.float32) for n, s in ins}
            y = {n: (v + eps * rng.standard_normal(v.shape)).astype(np.float32) for n, v in x.items()}
            (a, a0), (b, b0) = run(x), run(y)
            agree += int(a0.argmax() == b0.argmax())
            cos_min = min(cos_min, float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-30)))
        print(f"noise {eps:g}: top-1 agreement {agree}/{args.trials}, min cosine {cos_min:.6f}")


if __name__ == "__main__":
    main()
