"""Shared helpers for the model-zoo export scripts (`models/<family>/export.py`).

Needs: torch, onnx, onnxruntime, onnxscript, numpy. Not used by CI (CI reads only the committed
fixtures).
"""
import os

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

OPSET = 18


def randomize_(model: nn.Module, seed: int) -> nn.Module:
    """Re-draws the parameters that the usual initialisation leaves trivial (BN statistics and
    affine, LayerNorm/GroupNorm affine, zero biases, tiny layer scales) from a seeded generator, so
    that a fixture exercises every term of the arithmetic. Not trained weights."""
    g = torch.Generator().manual_seed(seed)

    def normal(t, std, mean=0.0):
        t.copy_(mean + std * torch.randn(t.shape, generator=g))

    def uniform(t, lo, hi):
        t.copy_(lo + (hi - lo) * torch.rand(t.shape, generator=g))

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                normal(m.running_mean, 0.1)
                uniform(m.running_var, 0.5, 1.5)
                uniform(m.weight, 0.75, 1.25)
                normal(m.bias, 0.1)
            elif isinstance(m, (nn.LayerNorm, nn.GroupNorm)):
                uniform(m.weight, 0.75, 1.25)
                normal(m.bias, 0.05)
            elif isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)) and m.bias is not None:
                normal(m.bias, 0.05)
        for name, p in model.named_parameters(recurse=True):
            leaf = name.rsplit(".", 1)[-1]
            if leaf in ("gamma", "scale_1", "scale_2", "layer_scale"):
                uniform(p, 0.2, 0.6)
    return model


def export(model: nn.Module, args: tuple, path: str, input_names, output_names, dynamo=True):
    """Exports at opset 18 with static shapes. dynamo=True uses torch.export + onnxscript (needed
    for torch.fft); dynamo=False is the TorchScript exporter."""
    model.eval()
    if dynamo:
        prog = torch.onnx.export(model, args, dynamo=True, opset_version=OPSET,
                                 input_names=list(input_names), output_names=list(output_names),
                                 external_data=False, verbose=False)
        prog.save(path)
    else:
        torch.onnx.export(model, args, path, dynamo=False, opset_version=OPSET,
                          input_names=list(input_names), output_names=list(output_names))
    m = onnx.load(path)
    # The dynamo exporter annotates every node with its Python stack trace and module path
    # (local file paths, and most of the file's bytes): drop them.
    for n in m.graph.node:
        del n.metadata_props[:]
        n.doc_string = ""
    del m.metadata_props[:]
    m.graph.doc_string = ""
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, path)
    return m


def ort_session(path: str):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def check_close(name: str, a, b, tol=1e-4):
    """Fails unless max|a - b| <= tol * max(1, max|b|); returns the max abs difference."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    d = float(np.abs(a - b).max()) if a.size else 0.0
    bound = tol * max(1.0, float(np.abs(b).max()) if b.size else 0.0)
    if not d <= bound:
        raise SystemExit(f"{name}: max abs diff {d:.3e} exceeds {bound:.3e}")
    return d


def op_histogram(m: onnx.ModelProto):
    h = {}
    for n in m.graph.node:
        h[n.op_type] = h.get(n.op_type, 0) + 1
    return dict(sorted(h.items(), key=lambda kv: (-kv[1], kv[0])))


def one_shot_fixture(model: nn.Module, x: torch.Tensor, here: str, name: str,
                     input_name="input", output_name="logits", dynamo=True):
    """Exports `model` on the single input `x`, runs onnxruntime, checks it against PyTorch
    (1e-4 relative) and writes NAME.onnx, NAME.input.npy, NAME.output.npy into `here`."""
    model.eval()
    with torch.no_grad():
        want = model(x).numpy()
    path = os.path.join(here, f"{name}.onnx")
    m = export(model, (x,), path, [input_name], [output_name], dynamo=dynamo)
    got = ort_session(path).run(None, {input_name: x.numpy()})[0]
    d = check_close(name, got, want)
    np.save(os.path.join(here, f"{name}.input.npy"), x.numpy().astype(np.float32))
    np.save(os.path.join(here, f"{name}.output.npy"), got.astype(np.float32))
    print(f"{name}: {len(m.graph.node)} nodes, {os.path.getsize(path)} bytes, "
          f"torch vs onnxruntime {d:.2e}, ops {op_histogram(m)}")
    return m
