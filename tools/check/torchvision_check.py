"""Cross-check mote against onnxruntime on torchvision architectures it has never seen.

Developer tool, not part of CI (it needs PyTorch: `pip install torch torchvision onnxscript
onnx onnxruntime`). For each architecture, with seeded random weights (BatchNorm statistics
randomised so folding is exercised, zero-initialised heads filled), it exports ONNX with both
PyTorch exporters (dynamo, opset 18; TorchScript, opset 17), runs onnxruntime, converts and
runs with mote, and prints the max abs difference against 1e-4 x max(1, max|ref|).

    cargo build --release -p mote-tools
    python3 tools/check/torchvision_check.py [--out DIR] [ARCH ...]
"""
import argparse
import os
import subprocess
import sys
import warnings

import numpy as np
import onnxruntime as ort
import torch
import torchvision
from torchvision.models.vision_transformer import VisionTransformer

warnings.filterwarnings("ignore")
M = torchvision.models
ARCHS = {
    "resnet18": (lambda: M.resnet18(num_classes=10), 64),
    "mobilenet_v2": (lambda: M.mobilenet_v2(num_classes=10), 64),
    "mobilenet_v3_small": (lambda: M.mobilenet_v3_small(num_classes=10), 64),
    "efficientnet_b0": (lambda: M.efficientnet_b0(num_classes=10), 64),
    "squeezenet1_1": (lambda: M.squeezenet1_1(num_classes=10), 64),
    "shufflenet_v2_x0_5": (lambda: M.shufflenet_v2_x0_5(num_classes=10), 64),
    "densenet121": (lambda: M.densenet121(num_classes=10), 64),
    "regnet_y_400mf": (lambda: M.regnet_y_400mf(num_classes=10), 64),
    "mnasnet0_5": (lambda: M.mnasnet0_5(num_classes=10), 64),
    "convnext_tiny": (lambda: M.convnext_tiny(num_classes=10), 64),
    "swin_t": (lambda: M.swin_t(num_classes=10), 64),
    "vit_tiny": (lambda: VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
                                           hidden_dim=64, mlp_dim=128, num_classes=10), 32),
    "googlenet": (lambda: M.googlenet(num_classes=10, aux_logits=False, init_weights=True), 64),
}
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MOTE = os.path.join(ROOT, "target", "release", "mote")


def export(name, dynamo, out):
    make, res = ARCHS[name]
    torch.manual_seed(0)
    m = make().eval()
    with torch.no_grad():
        for p in m.parameters():
            if p.abs().max() == 0:
                p.normal_(0, 0.05)
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.normal_(0, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
    x = torch.randn(1, 3, res, res)
    tag = f"{name}_{'dynamo' if dynamo else 'torchscript'}"
    path = os.path.join(out, tag + ".onnx")
    torch.onnx.export(m, (x,), path, dynamo=dynamo, opset_version=18 if dynamo else 17)
    np.save(os.path.join(out, tag + ".in.npy"), x.numpy())
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    ref = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    return tag, path, ref


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/tmp/mote-torchvision")
    ap.add_argument("archs", nargs="*")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    bad = 0
    for name in args.archs or list(ARCHS):
        for dynamo in (True, False):
            try:
                tag, path, ref = export(name, dynamo, args.out)
            except Exception as e:  # exporter problems are not mote's
                print(f"EXPORT-FAIL {name} dynamo={dynamo}: {str(e).splitlines()[0][:160]}")
                continue
            mote_file = os.path.join(args.out, tag + ".mote")
            out_npy = os.path.join(args.out, tag + ".out.npy")
            conv = subprocess.run([MOTE, "convert", path, "-o", mote_file], capture_output=True, text=True)
            if conv.returncode != 0:
                print(f"CONVERT-FAIL {tag}: {conv.stderr.strip()[:300]}")
                bad += 1
                continue
            run = subprocess.run([MOTE, "run", mote_file, "-i", os.path.join(args.out, tag + ".in.npy"), "-o", out_npy],
                                 capture_output=True, text=True)
            if run.returncode != 0:
                print(f"RUN-FAIL {tag}: {run.stderr.strip()[:300]}")
                bad += 1
                continue
            got = np.load(out_npy)
            d = float(np.abs(got - ref).max())
            tol = 1e-4 * max(1.0, float(np.abs(ref).max()))
            ok = d <= tol
            bad += not ok
            print(f"{'OK ' if ok else 'BAD'} {tag}: max abs diff {d:.2e} (tol {tol:.1e}); {conv.stdout.strip().split(': ')[-1]}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
