#!/usr/bin/env python3
"""An experiment for issue #6 (tract within 2x of ONNX Runtime on MeshNets), kept so it can be rerun.

tract 0.23 has fast convolution kernels only for 2D, so this rewrites every 3x3x3 (dilated) Conv of
a brainchop MeshNet into ops tract does run fast, for one fixed input shape, and checks with ONNX
Runtime that the rewritten model gives the same logits:

  direct2d  D becomes the batch axis; one 2D Conv over (H, W) whose output channels are the three
            depth taps stacked (padded to a multiple of 4, so tract picks its direct spatial conv);
            the taps are then shifted along D (Slice + Pad) and summed.
  matmul    in-plane im2col made explicit: nine (H, W)-shifted copies (Pad + Slice + Concat, K = 9 C)
            and one MatMul giving the three depth taps, then shifted along D and summed.

Usage: scripts/meshnet_conv3d_rewrite.py MODEL.onnx OUT.onnx D H W --variant direct2d|matmul [--check]
(needs numpy, onnx; --check also onnxruntime). Run OUT.onnx through fuseprint with a copy of the
model's manifest whose model_file points at it: `fuseprint bench inference --manifest M.json
--backend tract --patch D` (the shape must match what fuseprint feeds the model).
Results are in models/README.md ("tract is far slower ...").
"""
import argparse
import numpy as np
import onnx
from onnx import helper, numpy_helper


def i64(*v):
    return np.array(v, np.int64)


class Builder:
    def __init__(self):
        self.nodes, self.inits = [], []

    def const(self, name, arr):
        self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def node(self, op, inputs, output, **attrs):
        self.nodes.append(helper.make_node(op, inputs, [output], **attrs))
        return output


def shift_sum_depth_taps(b, y, t, co, d, depth, channel_axis, depth_axis):
    """out[z] = sum_k Y_k[z + (k-1) d], zero outside, where Y_k is channel group k of `y`."""
    parts = []
    for k in range(3):
        off = (k - 1) * d
        lo, hi = max(0, off), min(depth, depth + off)
        starts, ends, axes = [0, 0], [0, 0], [channel_axis, depth_axis]
        starts[0], ends[0], starts[1], ends[1] = k * co, (k + 1) * co, lo, hi
        part = b.node("Slice", [y, b.const(t(f"y{k}s"), i64(*starts)), b.const(t(f"y{k}e"), i64(*ends)),
                                b.const(t(f"y{k}a"), i64(*axes))], t(f"y{k}"))
        before, after = max(0, -off), max(0, off)
        if before or after:
            pads = [0] * 8
            pads[depth_axis], pads[4 + depth_axis] = before, after
            part = b.node("Pad", [part, b.const(t(f"y{k}p"), i64(*pads))], t(f"y{k}pd"))
        parts.append(part)
    return b.node("Add", [b.node("Add", [parts[0], parts[1]], t("a01")), parts[2]], t("sum"))


def rewrite_direct2d(b, x, wt, d, shape, t):
    D, H, W = shape
    co, ci = wt.shape[:2]
    padded = (3 * co + 3) // 4 * 4
    w2 = np.zeros((padded, ci, 3, 3), np.float32)
    for k in range(3):
        w2[k * co:(k + 1) * co] = wt[:, :, k]
    r = b.node("Reshape", [b.node("Transpose", [x], t("t"), perm=[0, 2, 1, 3, 4]),
                           b.const(t("s1"), i64(D, ci, H, W))], t("r"))
    y = b.node("Conv", [r, b.const(t("w2"), w2)], t("c"), dilations=[d, d], kernel_shape=[3, 3],
               pads=[d, d, d, d], strides=[1, 1])
    s = shift_sum_depth_taps(b, y, t, co, d, D, channel_axis=1, depth_axis=0)
    s = b.node("Reshape", [s, b.const(t("s2"), i64(1, D, co, H, W))], t("r2"))
    return b.node("Transpose", [s], t("t2"), perm=[0, 2, 1, 3, 4])


def rewrite_matmul(b, x, wt, d, shape, t):
    D, H, W = shape
    co, ci = wt.shape[:2]
    # Rows k*co + o (depth tap k), columns (kh*3 + kw)*ci + c.
    w2 = wt.transpose(2, 0, 3, 4, 1).reshape(3 * co, 9 * ci).astype(np.float32)
    p = b.node("Pad", [b.node("Reshape", [x, b.const(t("s0"), i64(ci, D, H, W))], t("r")),
                       b.const(t("pd"), i64(0, 0, d, d, 0, 0, d, d))], t("p"))
    taps = [b.node("Slice", [p, b.const(t(f"k{kh}{kw}s"), i64(kh * d, kw * d)),
                             b.const(t(f"k{kh}{kw}e"), i64(kh * d + H, kw * d + W)),
                             b.const(t(f"k{kh}{kw}a"), i64(2, 3))], t(f"k{kh}{kw}"))
            for kh in range(3) for kw in range(3)]
    col = b.node("Reshape", [b.node("Concat", taps, t("cat"), axis=0),
                             b.const(t("s1"), i64(9 * ci, D * H * W))], t("col"))
    y = b.node("Reshape", [b.node("MatMul", [b.const(t("w2"), w2), col], t("mm")),
                           b.const(t("s2"), i64(3 * co, D, H, W))], t("y"))
    s = shift_sum_depth_taps(b, y, t, co, d, D, channel_axis=0, depth_axis=1)
    return b.node("Reshape", [s, b.const(t("s3"), i64(1, co, D, H, W))], t("r5"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model"); ap.add_argument("out")
    ap.add_argument("shape", nargs=3, type=int)
    ap.add_argument("--variant", choices=["direct2d", "matmul"], required=True)
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    m = onnx.load(a.model)
    g = m.graph
    inits = {i.name: i for i in g.initializer}
    for io in list(g.input) + list(g.output):
        dims = io.type.tensor_type.shape.dim
        for dim, v in zip(dims[len(dims) - 3:], a.shape):
            dim.ClearField("dim_param"); dim.dim_value = v
    del g.value_info[:]
    b = Builder()
    rewrite = rewrite_direct2d if a.variant == "direct2d" else rewrite_matmul
    for n in g.node:
        attrs = {x.name: helper.get_attribute_value(x) for x in n.attribute}
        if n.op_type != "Conv" or list(attrs.get("kernel_shape", [])) != [3, 3, 3]:
            b.nodes.append(n); continue
        if len(set(attrs["dilations"])) != 1 or attrs.get("group", 1) != 1 or \
                list(attrs["pads"]) != [attrs["dilations"][0]] * 6:
            raise SystemExit(f"{n.name}: only 'same'-padded isotropic dilated 3x3x3 convs are rewritten")
        prefix = n.name or n.output[0]
        t = lambda s, p=prefix: f"{p}_{s}"
        out = rewrite(b, n.input[0], numpy_helper.to_array(inits[n.input[1]]), attrs["dilations"][0], a.shape, t)
        if len(n.input) > 2:
            bias = numpy_helper.to_array(inits[n.input[2]]).reshape(1, -1, 1, 1, 1)
            out = b.node("Add", [out, b.const(t("b"), bias)], t("biased"))
        b.node("Identity", [out], n.output[0])
    used = {i for n in b.nodes for i in n.input}
    kept = [i for i in g.initializer if i.name in used]
    del g.node[:]; g.node.extend(b.nodes)
    del g.initializer[:]; g.initializer.extend(kept + b.inits)
    onnx.checker.check_model(m)
    onnx.save(m, a.out)
    print("wrote", a.out)
    if a.check:
        import onnxruntime as ort
        ort.set_default_logger_severity(3)
        x = np.random.RandomState(0).rand(1, 1, *a.shape).astype(np.float32)
        fixed = onnx.load(a.model)
        for io in list(fixed.graph.input) + list(fixed.graph.output):
            dims = io.type.tensor_type.shape.dim
            for dim, v in zip(dims[len(dims) - 3:], a.shape):
                dim.ClearField("dim_param"); dim.dim_value = v
        ref = ort.InferenceSession(fixed.SerializeToString()).run(None, {g.input[0].name: x})[0]
        got = ort.InferenceSession(a.out).run(None, {g.input[0].name: x})[0]
        print(f"max |logit difference| {np.abs(ref - got).max():.3g} (logits up to {np.abs(ref).max():.3g})")


if __name__ == "__main__":
    main()
