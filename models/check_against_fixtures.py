"""Checks the zoo's reference definitions (models/<family>/model.py) against the conformance
fixtures made from the authors' code (../shared/fixtures, see its README):

1. op structure: each family exported at the fixture's configuration (same exporter, opset 18),
   ONNX op-type histograms side by side;
2. same function: the fixture's weights loaded into our module (initializers matched by the
   last component of their name and by shape, in order; linear weights recovered from the
   Gemm/MatMul that reads them; a BatchNorm the exporter folded away becomes the identity) and
   our output compared with the fixture's onnxruntime output (1e-4 × max(1, max|ref|));
3. the LMU constants (Ā, B̄, impulse response H) computed from the spec against the fixture's.

Needs torch, onnx, onnxruntime, onnxscript (not run in CI). Takes a few minutes (the full-size
exports).

    python3 models/check_against_fixtures.py [--fixtures ../shared/fixtures] [--skip-export]
"""
import argparse
import os
import sys
import tempfile

import numpy as np
import onnx
import torch
from onnx import numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from zoo_util import export, op_histogram  # noqa: E402


def family(name):
    """Imports models/<name>/model.py as its own module."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(f"zoo_{name}", os.path.join(HERE, name, "model.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def kind(name, pool=()):
    """The state-dict leaf (`weight`, `bias`, `running_mean`, ...), with a BatchNorm's affine
    told apart from a conv's (it has a `running_mean` beside it in `pool`)."""
    prefix, leaf = name.rsplit(".", 1) if "." in name else ("", name)
    leaf = "bias" if leaf.endswith("bias") else leaf
    if leaf in ("weight", "bias") and f"{prefix}.running_mean" in pool:
        leaf = "bn_" + leaf
    return leaf


def named_weights(m: onnx.ModelProto, aliases=None):
    """State-dict-like tensors of an exported graph: initializers with module-path names, plus
    linear weights/biases recovered from Gemm (B, C) and MatMul + Add(bias) nodes."""
    aliases = aliases or {}
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    out = {k: v for k, v in inits.items() if "." in k and not k.endswith("/shape")}
    producer = {o: n for n in m.graph.node for o in n.output}
    for n in m.graph.node:
        if n.op_type == "Gemm" and len(n.input) == 3 and n.input[2] in inits:
            b = n.input[1]
            attrs = {a.name: a.i for a in n.attribute}
            if b in inits and "." in b and b.endswith("weight"):
                out[b[: -len("weight")] + "bias"] = inits[n.input[2]]
            elif b in inits:
                w = inits[b] if attrs.get("transB", 0) else inits[b].T
                out[f"gemm:{n.name}.weight"] = w
                out[f"gemm:{n.name}.bias"] = inits[n.input[2]]
        if n.op_type == "Add":
            consts = [i for i in n.input if i in inits]
            mm = [producer.get(i) for i in n.input if i not in inits]
            if not (consts and mm and mm[0] is not None):
                continue
            src = mm[0]
            if src.op_type == "MatMul" and src.input[1] in inits and consts[0].endswith(".bias"):
                # Linear as MatMul(x, Wᵀ) + bias
                out[consts[0][: -len("bias")] + "weight"] = inits[src.input[1]].T
            elif src.op_type == "Gemm" and len(src.input) == 2 and src.input[1].endswith(".weight"):
                # Linear as Gemm without C, then Add(bias)
                out[src.input[1][: -len("weight")] + "bias"] = inits[consts[0]].reshape(-1)
    for prefix, k in aliases.items():
        for name in list(inits):
            if name.startswith(prefix) and name not in out:
                out[f"{name}.{k}"] = inits[name]
    return out


def spartan_unnamed(m: onnx.ModelProto):
    """SpaRTAN tensors the exporter leaves unnamed, in graph order: the GroupNorm(1) affine
    (InstanceNormalization -> Reshape -> Mul(w [C,1,1]) -> Add(b [C,1,1])) and the complex
    modulation (Sub(Mul(re, a), Mul(im, b)) with a, b of shape [1,1,1,K,1])."""
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    producer = {o: n for n in m.graph.node for o in n.output}
    consumers = {}
    for n in m.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    def only(name, op):
        c = [n for n in consumers.get(name, []) if n.op_type == op]
        return c[0] if len(c) == 1 else None

    def const(n):
        return next(inits[i] for i in n.input if i in inits)
    gn, cplx = [], []
    for n in m.graph.node:
        if n.op_type == "InstanceNormalization":
            r = only(n.output[0], "Reshape")
            mul = r and only(r.output[0], "Mul")
            add = mul and only(mul.output[0], "Add")
            gn.append((const(mul).reshape(-1), const(add).reshape(-1)))
        if n.op_type == "Sub":
            src = [producer.get(i) for i in n.input]
            if all(p is not None and p.op_type == "Mul" and any(i in inits and inits[i].ndim == 5 for i in p.input)
                   for p in src):
                a, b = const(src[0]), const(src[1])
                cplx.append(np.stack([a.reshape(-1), b.reshape(-1)], -1))
    return gn, cplx


def load_spartan_unnamed(net, m):
    gn, cplx = spartan_unnamed(m)
    norms = [mod for mod in net.modules() if type(mod).__name__ == "GN1"]
    mixers = [mod for mod in net.modules() if type(mod).__name__ == "CMixer"]
    assert len(norms) == len(gn) and len(mixers) == len(cplx), (len(norms), len(gn), len(mixers), len(cplx))
    with torch.no_grad():
        for mod, (w, b) in zip(norms, gn):
            mod.weight.copy_(torch.from_numpy(w))
            mod.bias.copy_(torch.from_numpy(b))
        for mod, c in zip(mixers, cplx):
            mod.complex.copy_(torch.from_numpy(c).reshape(mod.complex.shape))
    return len(gn) * 2 + len(cplx)


def lmu_names(prefix, spiking):
    """Our LMUFormer state-dict key -> the authors' (their module names, as in the fixtures)."""
    import re
    emb = [(r"^convs\.0\.", "patch_embed.proj_conv."), (r"^convs\.(\d)\.", r"patch_embed.proj_conv\1."),
           (r"^bns\.0\.", "patch_embed.proj_bn."), (r"^bns\.(\d)\.", r"patch_embed.proj_bn\1.")] if spiking else \
          [(r"^convs\.(\d)\.", r"patch_embed.conv_layers.\1.0."), (r"^bns\.(\d)\.", r"patch_embed.conv_layers.\1.3.")]
    rules = emb + [(r"^rpe\.", "patch_embed.rpe_conv."), (r"^prev_bn\.", "block.0.attn.prev_bn."),
                   (r"^w_u\.", "block.0.attn.lmu.W_u."), (r"^bn_u\.", "block.0.attn.lmu.bn_u."),
                   (r"^bn_m\.", "block.0.attn.lmu.bn_m."), (r"^w_h\.", "block.0.attn.lmu.W_h."),
                   (r"^bn_h\.", "block.0.attn.lmu.bn_h."), (r"^mem\.H$", "block.0.attn.lmu.H"),
                   (r"^proj\.", "block.0.attn.proj_conv."), (r"^proj_bn\.", "block.0.attn.proj_bn."),
                   (r"^fc(\d)\.", r"block.0.mlp.fc\1_conv."), (r"^fc(\d)_bn\.", r"block.0.mlp.fc\1_bn."),
                   (r"^head_bn\.", "head_bn."), (r"^head\.", "head.")]

    def f(key):
        for pat, rep in rules:
            if re.match(pat, key):
                return prefix + re.sub(pat, rep, key)
        return None
    return f


def load_mapped(module, weights, rename):
    """Copies the fixture tensor `rename(key)` into each of our keys (a bias the exporter named
    `weight_bias` included); a BatchNorm with no tensors in the fixture (folded into the layer
    before it) becomes the identity. Returns (loaded, ours unmatched, fixture unused)."""
    sd, used, missing, loaded = module.state_dict(), set(), [], 0
    for key, t in sd.items():
        if key.endswith("num_batches_tracked") or key in ("mem.A", "mem.B"):
            continue
        n = rename(key)
        if n is not None and n not in weights and n.endswith(".bias"):
            n = n[: -len("bias")] + "weight_bias"
        if n is None or n not in weights:
            missing.append(key)
            continue
        used.add(n)
        sd[key] = torch.from_numpy(np.array(weights[n], copy=True)).reshape(t.shape).to(t.dtype)
        loaded += 1
    # A bias the graph does not have at all, next to a weight it has, was zero: the exporter
    # drops an Add of zeros.
    for key in [k for k in missing if k.endswith(".bias") and k[: -len("bias")] + "weight" not in missing]:
        sd[key] = torch.zeros_like(sd[key])
        missing.remove(key)
    module.load_state_dict(sd)
    missing = identity_bns(module, missing)
    return loaded, missing, [n for n in weights if n not in used]


def identity_bns(module, missing):
    with torch.no_grad():
        for name, m in module.named_modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                keys = [f"{name}.{k}" for k in ("weight", "bias", "running_mean", "running_var")]
                if all(k in missing for k in keys):
                    m.weight.fill_(1)
                    m.bias.zero_()
                    m.running_mean.zero_()
                    m.running_var.fill_(1 - m.eps)
                    missing = [k for k in missing if k not in keys]
    return missing


def load(module, weights, skip=()):
    """Copies `weights` into `module`'s state dict by (kind, shape) in order. A BatchNorm whose
    tensors are all missing is set to the identity (the exporter folded it into the conv before).
    Returns (number loaded, our keys left unmatched,
    fixture names left unused)."""
    queues = {}
    for name, arr in weights.items():
        queues.setdefault((kind(name, weights), tuple(arr.shape)), []).append(name)
    used, missing, loaded = set(), [], 0
    sd = module.state_dict()
    for key, t in sd.items():
        if key.endswith("num_batches_tracked") or any(s in key for s in skip):
            continue
        q = queues.get((kind(key, sd), tuple(t.shape)), [])
        if not q and t.numel() > 0:
            # same values, other layout (e.g. [C] vs [1, C, 1, 1])
            q = [n for (k, _), names in queues.items() if k == kind(key, sd) for n in names
                 if weights[n].size == t.numel() and n not in used][:1]
        if q:
            n = q[0]
            for queue in queues.values():
                if n in queue:
                    queue.remove(n)
            used.add(n)
            sd[key] = torch.from_numpy(np.array(weights[n], copy=True)).reshape(t.shape).to(t.dtype)
            loaded += 1
        else:
            missing.append(key)
    # A bias the graph does not have at all, next to a weight it has, was zero: the exporter
    # drops an Add of zeros.
    for key in [k for k in missing if k.endswith(".bias") and k[: -len("bias")] + "weight" not in missing]:
        sd[key] = torch.zeros_like(sd[key])
        missing.remove(key)
    module.load_state_dict(sd)
    missing = identity_bns(module, missing)
    return loaded, missing, [n for n in weights if n not in used]


def rel_diff(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max()), 1e-4 * max(1.0, float(np.abs(b).max()))


def histogram_table(ours: onnx.ModelProto, theirs: onnx.ModelProto):
    h1, h2 = op_histogram(ours), op_histogram(theirs)
    ops = sorted(set(h1) | set(h2), key=lambda o: (-max(h1.get(o, 0), h2.get(o, 0)), o))
    rows = [f"    {'op':<24}{'ours':>7}{'fixture':>9}"]
    for o in ops:
        mark = "" if h1.get(o, 0) == h2.get(o, 0) else "  *"
        rows.append(f"    {o:<24}{h1.get(o, 0):>7}{h2.get(o, 0):>9}{mark}")
    rows.append(f"    {'total':<24}{len(ours.graph.node):>7}{len(theirs.graph.node):>9}")
    return "\n".join(rows)


def report(title, lines):
    print(f"\n## {title}\n")
    for ln in lines:
        print(ln)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", default=os.path.join(HERE, "..", "..", "shared", "fixtures"))
    ap.add_argument("--skip-export", action="store_true", help="only the weight/function checks")
    a = ap.parse_args()
    fx = a.fixtures
    with tempfile.TemporaryDirectory(prefix="zoo_check_") as tmp:
        run(a, fx, tmp)


def run(a, fx, tmp):
    fixture = {n: onnx.load(os.path.join(fx, f"{n}.onnx")) for n in
               ["emov2_1m", "spartan_t", "ecoformer_pvtv2_b0", "lmuformer_seq_tdconv", "lmuformer_step",
                "lmuformer_spiking_step"]}
    npy = lambda n, s="output": np.load(os.path.join(fx, f"{n}.{s}.npy"))  # noqa: E731

    emo, spa, eco, lmu = family("emov2"), family("spartan"), family("ecoformer"), family("lmuformer")
    img = torch.from_numpy(npy("emov2_1m", "input"))

    cases = [
        ("emov2_1m", lambda: emo.EMOv2(emo.emov2_1m()), img, (), {}, False),
        ("spartan_t", lambda: spa.SpaRTAN(spa.spartan_t()), torch.from_numpy(npy("spartan_t", "input")),
         ("norm_a.", "norm_b.", "complex"), {}, False),
        ("ecoformer_pvtv2_b0", lambda: eco.EcoFormer(eco.pvtv2_b0()),
         torch.from_numpy(npy("ecoformer_pvtv2_b0", "input")), (), {"unsqueeze": "anchor", "detach": "A"}, False),
        ("lmuformer_seq_tdconv", lambda: lmu.LMUFormer(lmu.gsc()),
         torch.from_numpy(npy("lmuformer_seq_tdconv", "input")), ("mem.A", "mem.B"), {}, lmu_names("", False)),
    ]
    for name, make, x, skip, aliases, by_name in cases:
        net = make().eval()
        lines = []
        if not a.skip_export:
            path = os.path.join(tmp, f"{name}.onnx")
            ours = export(net, (x,), path, ["input"], ["logits"])
            lines.append(f"op histogram (ours: this model exported at the fixture's config; * = differs):")
            lines.append(histogram_table(ours, fixture[name]))
        w = named_weights(fixture[name], aliases)
        loaded, missing, unused = load_mapped(net, w, by_name) if by_name else load(net, w, skip)
        if name == "spartan_t":
            loaded += load_spartan_unnamed(net, fixture[name])
        lines.append(f"weights: {loaded} tensors loaded; ours unmatched: {missing[:8]}{'...' if len(missing) > 8 else ''}"
                     f" ({len(missing)}); fixture unused: {unused[:8]}{'...' if len(unused) > 8 else ''} ({len(unused)})")
        with torch.no_grad():
            got = net(x).numpy()
        d, tol = rel_diff(got, npy(name))
        lines.append(f"output with the fixture's weights vs the fixture's onnxruntime output: max abs diff {d:.3e} "
                     f"(tolerance {tol:.1e}): {'SAME FUNCTION' if d <= tol else 'DIFFERENT'}")
        report(name, lines)

    # The LMU constants.
    abar, bbar = lmu.lmu_matrices(256, 128.0)
    w = named_weights(fixture["lmuformer_step"])
    inits = {i.name: numpy_helper.to_array(i) for i in fixture["lmuformer_step"].graph.initializer}
    h_fix = named_weights(fixture["lmuformer_seq_tdconv"])["block.0.attn.lmu.H"]
    h_ours = lmu.LMUMemory(256, 128, 128.0).H.numpy()
    lines = [f"Ā vs fixture (permute = Āᵀ): {np.abs(abar.numpy().T - inits['permute']).max():.3e}; "
             f"B̄: {np.abs(bbar.numpy() - inits['permute_1'][0]).max():.3e}; "
             f"H (M×N impulse response): {np.abs(h_ours - h_fix).max():.3e} (max |H| {np.abs(h_fix).max():.3f})"]
    report("LMU constants (M = 256, θ = 128)", lines)

    # Step models: stream the fixture's 133 calls through our step module with its weights.
    for name, cfg, cls, step_cls in [("lmuformer_step", lmu.gsc(), lmu.LMUFormer, lmu.LMUFormerStep),
                                     ("lmuformer_spiking_step", lmu.gsc_spiking(), lmu.SpikingLMUFormer,
                                      lmu.SpikingLMUFormerStep)]:
        seq = cls(cfg).eval()
        lines = []
        xs, valid, want = npy(name, "input"), npy(name, "valid"), npy(name)
        step = step_cls(seq).eval()
        states = lmu.step_state_shapes(cfg)
        if not a.skip_export:
            path = os.path.join(tmp, f"{name}.onnx")
            args = (torch.from_numpy(xs[0]), torch.from_numpy(valid[0]), *[torch.zeros(s) for s in states.values()])
            ours = export(step, args, path, ["x_t", "valid"] + [f"{s}_in" for s in states],
                          ["logits", "feat"] + [f"{s}_out" for s in states])
            lines.append("op histogram (ours vs fixture; * = differs):")
            lines.append(histogram_table(ours, fixture[name]))
        w = named_weights(fixture[name])
        if not cfg.spiking:
            # Same weights as the whole-clip fixture (its README); take what the step graph
            # does not name (biases the exporter merged into unnamed constants).
            w.update({"m." + k: v for k, v in named_weights(fixture["lmuformer_seq_tdconv"]).items()
                      if "m." + k not in w and not k.startswith(("block.0.attn.proj", "block.0.mlp"))})
        loaded, missing, unused = load_mapped(seq, w, lmu_names("m.", cfg.spiking))
        lines.append(f"weights: {loaded} tensors loaded; ours unmatched: {missing} ; fixture unused: {unused}")
        state = [torch.zeros(s) for s in states.values()]
        worst, tol = 0.0, 0.0
        with torch.no_grad():
            for t in range(xs.shape[0]):
                out = step(torch.from_numpy(xs[t]), torch.from_numpy(valid[t]), *state)
                state = list(out[2:])
                d, tl = rel_diff(out[0].numpy(), want[t])
                worst, tol = max(worst, d), max(tol, tl)
        lines.append(f"logits of all {xs.shape[0]} calls with the fixture's weights vs its onnxruntime output: "
                     f"worst max abs diff {worst:.3e} (tolerance {tol:.1e}): {'SAME FUNCTION' if worst <= tol else 'DIFFERENT'}")
        report(name, lines)


if __name__ == "__main__":
    main()
