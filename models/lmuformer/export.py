"""Writes the LMUFormer fixtures (tiny config, seeded random weights, references computed by
onnxruntime and checked against PyTorch within 1e-4):

* lmuformer_seq.*   whole clip [1, 16, 16] -> [1, 5], LMU memory as a time-domain causal Conv
* lmuformer_fft.*   the same model and weights, memory as rfft/irfft (ONNX DFT); at this size
                    the exporter folds the spectrum of the constant impulse response into two
                    constants, so the graph holds 2 DFT nodes (forward on u, inverse)
* lmuformer_fft_long.*  memory 64, 80 frames [1, 80, 16] -> [1, 5]: M x 2N = 10240 exceeds the
                    exporter's constant-folding limit (8192 elements), so the DFT of the impulse
                    response stays in the graph (3 DFT nodes), as in full-size models
* lmuformer_step.*  one frame per call, 8 state tensors (N + 5 = 21 calls)
* lmuformer_spiking_step.*  spiking model, one frame per call, 20 state tensors

Step fixtures: NAME.input.npy [calls, 1, mel] (x_t per call), NAME.valid.npy [calls, 6],
NAME.output.npy [calls, 1, classes] (logits per call) and NAME.feat.npy [calls, 1, C] (block
output per call), from onnxruntime streaming the ONNX file itself from all-zero state.

    python3 models/lmuformer/export.py [--variant tiny|gsc] [--memory conv|fft] [--only NAME] [--out DIR]

`--memory` picks the memory form of lmuformer_seq (default conv); lmuformer_fft is always FFT.
"""
import argparse
import dataclasses
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
import model as M  # noqa: E402
from zoo_util import check_close, export, one_shot_fixture, op_histogram, ort_session, randomize_  # noqa: E402


def build(cfg, seed=0):
    """Seeded weights; BN running statistics from one train-mode pass over a seeded batch of 8
    clips (so every BN sees inputs of its own scale), then BN affine γ ~ U(0.75, 1.25) and
    β ~ N(0, 0.25²) (spiking: β ~ N(0.6, 0.25²), so that every LIF population fires)."""
    torch.manual_seed(seed)
    cls = M.SpikingLMUFormer if cfg.spiking else M.LMUFormer
    net = randomize_(cls(cfg), seed=123)
    g = torch.Generator().manual_seed(1)
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    with torch.no_grad():
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative average
        net.train()
        net(torch.randn(8, cfg.seq, cfg.mel, generator=g))
        net.eval()
        for m in bns:
            m.weight.copy_(0.75 + 0.5 * torch.rand(m.weight.shape, generator=g))
            m.bias.copy_((0.6 if cfg.spiking else 0.0) + 0.25 * torch.randn(m.bias.shape, generator=g))
    return net


def step_fixture(seq_net, cfg, x, out_dir, name):
    step = (M.SpikingLMUFormerStep if cfg.spiking else M.LMUFormerStep)(seq_net).eval()
    states = M.step_state_shapes(cfg)
    with torch.no_grad():
        want_final = seq_net(x)
        xs, valids, logits, feats = M.stream(step, cfg, x)
    # The last call sees the whole clip: its logits are the whole-clip model's output.
    d_seq = check_close(f"{name} final call vs whole clip", logits[-1], want_final)
    args = (xs[0], valids[0], *[torch.zeros(s) for s in states.values()])
    in_names = ["x_t", "valid"] + [f"{s}_in" for s in states]
    out_names = ["logits", "feat"] + [f"{s}_out" for s in states]
    path = os.path.join(out_dir, f"{name}.onnx")
    m = export(step, args, path, in_names, out_names)
    sess = ort_session(path)
    state = {f"{s}_in": np.zeros(sh, np.float32) for s, sh in states.items()}
    ort_logits, ort_feats = [], []
    for t in range(len(xs)):
        outs = sess.run(None, {"x_t": xs[t].numpy(), "valid": valids[t].numpy(), **state})
        named = dict(zip(out_names, outs))
        ort_logits.append(named["logits"])
        ort_feats.append(named["feat"])
        state = {f"{s}_in": named[f"{s}_out"] for s in states}
    d_l = check_close(f"{name} logits", np.stack(ort_logits), torch.stack(logits).numpy())
    d_f = check_close(f"{name} feat", np.stack(ort_feats), torch.stack(feats).numpy())
    np.save(os.path.join(out_dir, f"{name}.input.npy"), torch.stack(xs).numpy().astype(np.float32))
    np.save(os.path.join(out_dir, f"{name}.valid.npy"), torch.stack(valids).numpy().astype(np.float32))
    np.save(os.path.join(out_dir, f"{name}.output.npy"), np.stack(ort_logits).astype(np.float32))
    np.save(os.path.join(out_dir, f"{name}.feat.npy"), np.stack(ort_feats).astype(np.float32))
    print(f"{name}: {len(m.graph.node)} nodes, {os.path.getsize(path)} bytes, {len(xs)} calls; "
          f"torch vs onnxruntime logits {d_l:.2e}, feat {d_f:.2e}; final call vs whole clip {d_seq:.2e}; "
          f"ops {op_histogram(m)}")


def spike_rates(net, x):
    """Fraction of spikes per LIF call of the whole-clip spiking model."""
    rates, orig = [], M.lif_step

    def rec(*a):
        v, s = orig(*a)
        rates.append(float(s.mean()))
        return v, s
    M.lif_step = rec
    try:
        with torch.no_grad():
            net(x)
    finally:
        M.lif_step = orig
    return rates


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", default="tiny", choices=["tiny", "gsc"])
    ap.add_argument("--memory", default="conv", choices=["conv", "fft"])
    ap.add_argument("--only", default=None, help="write only this fixture")
    ap.add_argument("--out", default=HERE)
    a = ap.parse_args()
    cfg = M.tiny() if a.variant == "tiny" else M.gsc()
    scfg = M.tiny(spiking=True) if a.variant == "tiny" else M.gsc_spiking()
    x = torch.randn(1, cfg.seq, cfg.mel, generator=torch.Generator().manual_seed(0))
    todo = ["lmuformer_seq", "lmuformer_fft", "lmuformer_fft_long", "lmuformer_step", "lmuformer_spiking_step"]
    if a.only:
        todo = [a.only]

    net = build(cfg)
    net_fft = build(cfg)
    net_fft.mem.mode = "fft"
    net.mem.mode = a.memory
    with torch.no_grad():
        # The FFT and time-domain memories compute the same function (and equal the recurrence).
        u = torch.relu(torch.randn(1, 1, cfg.seq, generator=torch.Generator().manual_seed(5)))
        mc = M.LMUMemory(cfg.memory, cfg.seq, cfg.theta, "conv")(u)
        mf = M.LMUMemory(cfg.memory, cfg.seq, cfg.theta, "fft")(u)
        m, rec = torch.zeros(cfg.memory), []
        for t in range(cfg.seq):
            m = net.mem.A @ m + net.mem.B * u[0, 0, t]
            rec.append(m)
        rec = torch.stack(rec, 1)
        print(f"memory: fft vs conv {check_close('fft vs conv', mf, mc):.2e}, "
              f"conv vs recurrence {check_close('conv vs recurrence', mc[0], rec):.2e}")
        check_close("fft model vs conv model", net_fft(x), build(cfg)(x))

    if "lmuformer_seq" in todo:
        one_shot_fixture(net, x, a.out, "lmuformer_seq", input_name="x")
    if "lmuformer_fft" in todo:
        one_shot_fixture(net_fft, x, a.out, "lmuformer_fft", input_name="x")
    if "lmuformer_fft_long" in todo and a.variant == "tiny":
        lcfg = dataclasses.replace(cfg, memory=64, seq=80, theta=80.0)
        lx = torch.randn(1, lcfg.seq, lcfg.mel, generator=torch.Generator().manual_seed(0))
        lnet = build(lcfg)
        with torch.no_grad():
            want = lnet(lx)
            lnet.mem.mode = "fft"
            check_close("long: fft model vs conv model", lnet(lx), want)
        one_shot_fixture(lnet, lx, a.out, "lmuformer_fft_long", input_name="x")
    if "lmuformer_step" in todo:
        step_fixture(build(cfg), cfg, x, a.out, "lmuformer_step")
    if "lmuformer_spiking_step" in todo:
        snet = build(scfg)
        r = spike_rates(snet, x)
        print(f"spiking: {len(r)} LIF calls, spike rates {min(r):.3f}..{max(r):.3f}")
        step_fixture(snet, scfg, x, a.out, "lmuformer_spiking_step")


if __name__ == "__main__":
    main()
