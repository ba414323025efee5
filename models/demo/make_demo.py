"""Builds the bundled demo model: a tiny MobileNet-style image classifier (seeded random
weights, not trained) that exercises the ops mote's families use: conv stem with BatchNorm,
depthwise + pointwise blocks with residuals, an erf-GELU, LayerNorm over channels, global
average pooling and a linear head. Writes demo.onnx, demo.input.npy (seed 0 normal) and
demo.output.npy (onnxruntime's output). Needs: onnx, onnxruntime, numpy.

    python3 models/demo/make_demo.py
"""
import os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(1234)
nodes, inits = [], []
count = [0]


def name(p):
    count[0] += 1
    return f"{p}_{count[0]}"


def const(arr, p="w"):
    n = name(p)
    inits.append(numpy_helper.from_array(np.asarray(arr, dtype=np.float32), n))
    return n


def node(op, ins, **attrs):
    out = name(op.lower())
    nodes.append(helper.make_node(op, ins, [out], name=out, **attrs))
    return out


def conv(x, cin, cout, k, s=1, groups=1, bias=True):
    w = rng.normal(0, (2.0 / (cin // groups * k * k)) ** 0.5, (cout, cin // groups, k, k))
    ins = [x, const(w)]
    if bias:
        ins.append(const(rng.normal(0, 0.05, cout), "b"))
    return node("Conv", ins, kernel_shape=[k, k], strides=[s, s], pads=[k // 2] * 4, group=groups)


def bn(x, c):
    return node("BatchNormalization", [x, const(rng.uniform(0.8, 1.2, c), "g"), const(rng.normal(0, 0.1, c), "beta"),
                                       const(rng.normal(0, 0.1, c), "mean"), const(rng.uniform(0.5, 1.5, c), "var")],
                epsilon=1e-5)


def gelu(x):
    d = node("Div", [x, const(np.array(1.4142135, np.float32), "sqrt2")])
    e = node("Erf", [d])
    a = node("Add", [e, const(np.array(1.0, np.float32), "one")])
    m = node("Mul", [x, a])
    return node("Mul", [m, const(np.array(0.5, np.float32), "half")])


def block(x, c, expand):
    h = node("Relu", [bn(conv(x, c, c * expand, 1, bias=False), c * expand)])
    h = node("Relu", [bn(conv(h, c * expand, c * expand, 3, groups=c * expand, bias=False), c * expand)])
    h = bn(conv(h, c * expand, c, 1, bias=False), c)
    return node("Add", [x, h])


x = "image"
h = node("Relu", [bn(conv(x, 3, 16, 3, s=2, bias=False), 16)])          # 48x48
h = block(h, 16, 2)
h = gelu(conv(h, 16, 32, 3, s=2))                                         # 24x24
h = block(h, 32, 2)
h = conv(h, 32, 48, 3, s=2)                                               # 12x12
# LayerNorm over channels on NCHW, as exporters write it: transpose, normalise, transpose back.
t = node("Transpose", [h], perm=[0, 2, 3, 1])
t = node("LayerNormalization", [t, const(rng.uniform(0.8, 1.2, 48), "ln_g"), const(rng.normal(0, 0.1, 48), "ln_b")],
         axis=-1, epsilon=1e-6)
h = node("Transpose", [t], perm=[0, 3, 1, 2])
h = block(h, 48, 2)
p = node("GlobalAveragePool", [h])
f = node("Flatten", [p], axis=1)
logits = node("Gemm", [f, const(rng.normal(0, 0.2, (10, 48)), "fc_w"), const(rng.normal(0, 0.05, 10), "fc_b")], transB=1)
nodes[-1].output[0] = "logits"

graph = helper.make_graph(nodes, "mote_demo", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 96, 96])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])], inits)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="mote-demo")
model.ir_version = 8
onnx.checker.check_model(model, full_check=True)
onnx.save(model, os.path.join(HERE, "demo.onnx"))

inp = np.random.default_rng(0).standard_normal((1, 3, 96, 96)).astype(np.float32)
so = ort.SessionOptions()
so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
out = ort.InferenceSession(os.path.join(HERE, "demo.onnx"), so, providers=["CPUExecutionProvider"]).run(None, {"image": inp})[0]
np.save(os.path.join(HERE, "demo.input.npy"), inp)
np.save(os.path.join(HERE, "demo.output.npy"), out)
print("wrote demo.onnx", os.path.getsize(os.path.join(HERE, "demo.onnx")), "bytes; top class", int(out.argmax()))
