"""Writes the EMOv2 fixture: emov2_tiny.{onnx,input.npy,output.npy} (tiny config, seeded random
weights, onnxruntime reference output checked against PyTorch within 1e-4).

    python3 models/emov2/export.py [--variant tiny|emov2_1m|emov2_2m|emov2_5m] [--out DIR]
        [--torchscript]   # use the TorchScript exporter (dynamo=False) instead of dynamo
"""
import argparse
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
from model import EMOv2, VARIANTS  # noqa: E402
from zoo_util import one_shot_fixture, randomize_  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", default="tiny", choices=sorted(VARIANTS))
    ap.add_argument("--out", default=HERE)
    ap.add_argument("--torchscript", action="store_true")
    a = ap.parse_args()
    cfg = VARIANTS[a.variant]()
    torch.manual_seed(0)
    net = randomize_(EMOv2(cfg), seed=123).eval()
    x = torch.randn(1, 3, cfg.img, cfg.img, generator=torch.Generator().manual_seed(0))
    name = "emov2_tiny" if a.variant == "tiny" else a.variant
    one_shot_fixture(net, x, a.out, name, dynamo=not a.torchscript)


if __name__ == "__main__":
    main()
