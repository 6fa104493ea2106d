"""The default CT bone model (models/ct_bone.onnx): fixed multi-scale pooling features + a trained
1x1x1 classifier. Cheap enough to train on two shared CPU cores in a minute, and exact: the
features the classifier is trained on are computed by ONNX Runtime from the SAME front-end graph
that is shipped, so training and inference agree to float precision.

    /tmp/venv-train/bin/python training/train_ct_bone.py            # writes models/ct_bone.onnx

Data (../shared/data, never copied into the repo):
  * training: the inferior 56 slices of TotalSegmentator's example_ct (pelvis, hips, femurs,
    lumbar spine), reference bone = TotalSegmentator's bone classes (training/sources.py);
  * held out: the superior 56 slices of the same CT (upper abdomen: ribs, thoracic and lumbar
    vertebrae, contrast-filled aorta and kidneys), scored at its own 3 mm voxels.
The reference is a TotalSegmentator model output, not manual ground truth.

Graph (opset 17, input `input` [1, 1, D, H, W], output `logits` [1, 2, D, H, W], D/H/W dynamic):
  x = clip((HU + 1000) / 3000, 0, 1)        (done by fuseprint: manifest ct_window)
  features = Concat(x, box means, local max, local min, closings, openings, local mean of x^2)
             every box separable (k,1,1)(1,k,1)(1,1,k), stride 1, same padding, windows clipped
             at the volume's edge (the functions of AveragePool with count_include_pad=0 and
             MaxPool; min = -MaxPool(-x))
  hidden   = Relu(Conv1x1(Relu(features)))   (standardisation folded into the weights; the
                                             first Relu is an identity on features >= 0)
  logits   = Conv1x1(hidden)

The features are built from ops the pure-Rust tract engine runs at memory speed (its generic
pooling loops were slow): max/min over a 3-voxel window along an axis = Max/Min of three Slices
of the input Padded with -/+1e9; k-voxel boxes (k = 2r + 1) = r passes of the 3x3x3 box, so
max 3, 5, 9, 15 are steps of one cascade; box means = CumSum of the zero-padded input, the
difference of two Slices, divided by the count of in-volume voxels (the same box sum over a line
of ones). `pooling_front_end` keeps the MaxPool/AveragePool graph; training/check_front_end.py
checks both give the same features (max |difference| 3.2e-6 on example_ct, max/min exact).
"""
import argparse
import json
import os
import sys

import nibabel as nib
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from scipy import ndimage

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sources  # noqa: E402

SEED = 0
HU_MIN, HU_MAX = -1000.0, 2000.0
GRID_MM = 2.0
# Every feature the front end can compute: (kind, box size in model voxels).
ALL_FEATURES = [("x", 1)] + [("mean", k) for k in (3, 5, 9, 15, 25)] \
    + [("max", k) for k in (3, 5, 9, 15)] + [("min", k) for k in (3, 5, 9)] \
    + [("closing", k) for k in (3, 5, 9)] + [("opening", k) for k in (3, 5)] \
    + [("square_mean", k) for k in (5, 9)]
# Candidate recipes, chosen by Dice on an inner validation split of the TRAINING slices (the
# held-out slices play no part in any choice): features, class weighting of the loss.
VARIANTS = {
    "all_balanced": (ALL_FEATURES, "balanced"),
    "all_plain": (ALL_FEATURES, "none"),
    "small_closing_balanced": ([f for f in ALL_FEATURES if f not in (("closing", 9),)], "balanced"),
    "small_closing_plain": ([f for f in ALL_FEATURES if f not in (("closing", 9),)], "none"),
}
# Inner split of the training slices: fit on the inferior ones (pelvis, femurs), validate on the
# rest (L4-L5, sacrum: vertebrae and the spinal canal, closest to what a body CT holds elsewhere).
INNER_FIT_SLICES = 38
HIDDEN = 24
REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


# ------------------------------------------------------------------ graph

# Spatial axes of the [1, C, D, H, W] tensors.
SPATIAL = (2, 3, 4)
# Stands in for "outside the volume" in max/min filters: beyond any input (0..1 after ct_window).
FAR = 1e9
INT64_MAX = np.iinfo(np.int64).max


class Graph:
    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0
        self.consts = {}

    def name(self, stem):
        self.n += 1
        return f"{stem}_{self.n}"

    def op(self, kind, inputs, stem, **attrs):
        out = self.name(stem)
        self.nodes.append(helper.make_node(kind, inputs, [out], name=out, **attrs))
        return out

    def const(self, values, dtype=np.int64):
        """An initializer, shared between nodes asking for the same value."""
        arr = np.asarray(values, dtype=dtype)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self.consts:
            name = f"const_{len(self.consts)}"
            self.inits.append(numpy_helper.from_array(arr, name))
            self.consts[key] = name
        return self.consts[key]

    def pad(self, x, axis, before, after, value):
        pads = [0] * 10
        pads[axis], pads[axis + 5] = before, after
        return self.op("Pad", [x, self.const(pads), self.const(value, np.float32)], "pad",
                       mode="constant")

    def slice(self, x, axis, start, end):
        """x[start:end] along `axis`; negative ends count from the end, so shapes stay dynamic."""
        return self.op("Slice", [x, self.const([start]), self.const([end]), self.const([axis])],
                       "slice")

    # -- legacy front end (ONNX pooling ops): kept to check the fast one computes the same features

    def pool(self, kind, x, k):
        """A k-voxel box along each axis in turn (separable, so k^3 work becomes 3k)."""
        p = k // 2
        for axis in range(3):
            kernel = [1, 1, 1]
            kernel[axis] = k
            pads = [0] * 6
            pads[axis] = pads[axis + 3] = p
            x = self.op(kind, [x], f"{kind.lower()}{k}", kernel_shape=kernel, pads=pads,
                        strides=[1, 1, 1])
        return x

    # -- fast front end: element-wise ops, slices and cumulative sums (tract runs these at memory
    #    speed; its generic pooling loops were ~30 % of the run and their padding copies another 7 %)

    def extreme3(self, kind, x):
        """Max or Min over the 3x3x3 box: per axis, the extreme of three shifted views of the
        input padded with a value no voxel reaches (so outside voxels never win, as in MaxPool)."""
        far = -FAR if kind == "Max" else FAR
        for axis in SPATIAL:
            p = self.pad(x, axis, 1, 1, far)
            x = self.op(kind, [self.slice(p, axis, 0, -2), self.slice(p, axis, 1, -1),
                               self.slice(p, axis, 2, INT64_MAX)], kind.lower())
        return x

    def box_sums(self, x, axis, radii, reach):
        """Sums over windows of radius r along `axis`, for every r in `radii`, from one cumulative
        sum of the input padded with zeros (`reach` >= every r): sum[i] = C[i + r] - C[i - r - 1]."""
        c = self.op("CumSum", [self.pad(x, axis, reach + 1, reach, 0.0),
                               self.const(axis, np.int64)], "cumsum")
        sums = {}
        for r in radii:
            hi_start, hi_end = reach + 1 + r, -(reach - r) if reach > r else INT64_MAX
            lo_start, lo_end = reach - r, -(reach + r + 1)
            sums[r] = self.op("Sub", [self.slice(c, axis, hi_start, hi_end),
                                      self.slice(c, axis, lo_start, lo_end)], "boxsum")
        return sums

    def box_means(self, x, ks):
        """Means over k-voxel boxes (k in `ks`), separable, each pass dividing by the voxels of
        the window inside the volume (AveragePool with count_include_pad=0). The counts are the
        same box sums taken over a line of ones along the axis."""
        radii = [k // 2 for k in ks]
        reach = max(radii)
        counts = {}
        for axis in SPATIAL:
            line = x
            for other in SPATIAL:
                if other != axis:
                    line = self.slice(line, other, 0, 1)
            ones = self.op("Add", [self.op("Mul", [line, self.const(0.0, np.float32)], "zero"),
                                   self.const(1.0, np.float32)], "ones")
            counts[axis] = self.box_sums(ones, axis, radii, reach)
        first = self.box_sums(x, SPATIAL[0], radii, reach)
        means = []
        for r in radii:
            m = self.op("Div", [first[r], counts[SPATIAL[0]][r]], "mean")
            for axis in SPATIAL[1:]:
                s = self.box_sums(m, axis, [r], r)[r]
                m = self.op("Div", [s, counts[axis][r]], "mean")
            means.append(m)
        return means


def pooling_front_end(g, wanted):
    """The front end as first shipped (MaxPool/AveragePool); only used to check `front_end`."""
    def max_(x, k):
        return g.pool("MaxPool", x, k)

    def min_(x, k):
        return g.op("Neg", [max_(g.op("Neg", [x], "neg"), k)], "min")

    x = "input"
    feats = []
    for kind, k in wanted:
        if kind == "x":
            feats.append(x)
        elif kind == "mean":
            feats.append(g.pool("AveragePool", x, k))
        elif kind == "max":
            feats.append(max_(x, k))
        elif kind == "min":
            feats.append(min_(x, k))
        elif kind == "closing":
            feats.append(min_(max_(x, k), k))
        elif kind == "opening":
            feats.append(max_(min_(x, k), k))
        elif kind == "square_mean":
            feats.append(g.pool("AveragePool", g.op("Mul", [x, x], "square"), k))
        else:
            raise ValueError(kind)
    return feats


def cascade(g, kind, x, ks):
    """{k: the k-voxel box Max or Min of x} for every k in `ks` (odd): radius r is r passes of
    the 3x3x3 box, so each smaller box is a step on the way to the larger ones."""
    out, r, y = {}, 0, x
    for k in sorted(set(ks)):
        while r < k // 2:
            y, r = g.extreme3(kind, y), r + 1
        out[k] = y
    return out


def repeat3(g, kind, x, k):
    for _ in range(k // 2):
        x = g.extreme3(kind, x)
    return x


def front_end(g, wanted):
    """Feature maps from `input`; returns the names of the [1, 1, D, H, W] tensors. The same
    functions as `pooling_front_end` (separable boxes, stride 1, same padding, windows clipped at
    the volume's edge), built from ops tract runs fast."""
    x = "input"
    ks = lambda kind: [k for f, k in wanted if f == kind]  # noqa: E731
    maxes = cascade(g, "Max", x, ks("max") + ks("closing"))
    mins = cascade(g, "Min", x, ks("min") + ks("opening"))
    means = dict(zip(ks("mean"), g.box_means(x, ks("mean")))) if ks("mean") else {}
    square = g.op("Mul", [x, x], "square")
    square_means = dict(zip(ks("square_mean"), g.box_means(square, ks("square_mean")))) \
        if ks("square_mean") else {}
    feats = []
    for kind, k in wanted:
        if kind == "x":
            feats.append(x)
        elif kind == "mean":
            feats.append(means[k])
        elif kind == "max":
            feats.append(maxes[k])
        elif kind == "min":
            feats.append(mins[k])
        elif kind == "closing":
            # fills the low-HU marrow inside a bright cortex
            feats.append(repeat3(g, "Min", maxes[k], k))
        elif kind == "opening":
            # removes thin bright specks (calcifications, contrast in small vessels)
            feats.append(repeat3(g, "Max", mins[k], k))
        elif kind == "square_mean":
            feats.append(square_means[k])
        else:
            raise ValueError(kind)
    return feats


def model_proto(g, outputs, out_channels, inits=()):
    graph = helper.make_graph(
        g.nodes, "fuseprint_ct_bone",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, "D", "H", "W"])],
        [helper.make_tensor_value_info(outputs, TensorProto.FLOAT,
                                       [1, out_channels, "D", "H", "W"])],
        list(g.inits) + list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="fuseprint training/train_ct_bone.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def front_end_model(wanted, build=None):
    g = Graph()
    feats = (build or front_end)(g, wanted)
    g.nodes.append(helper.make_node("Concat", feats, ["features"], name="features", axis=1))
    return model_proto(g, "features", len(feats)), len(feats)


def full_model(wanted, w1, b1, w2, b2, build=None):
    g = Graph()
    feats = (build or front_end)(g, wanted)
    g.nodes.append(helper.make_node("Concat", feats, ["features"], name="features", axis=1))
    f, h, k = w1.shape[1], w1.shape[0], w2.shape[0]
    inits = [
        numpy_helper.from_array(w1.reshape(h, f, 1, 1, 1).astype(np.float32), "hidden.weight"),
        numpy_helper.from_array(b1.astype(np.float32), "hidden.bias"),
        numpy_helper.from_array(w2.reshape(k, h, 1, 1, 1).astype(np.float32), "classifier.weight"),
        numpy_helper.from_array(b2.astype(np.float32), "classifier.bias"),
    ]
    # Every feature is >= 0 (the input is 0..1), so this Relu changes nothing; it keeps tract
    # from splitting the Conv over the Concat's 20 inputs (its ConcatThenEinsum pass), which made
    # 20 one-channel products with slow border-tile stores and cost 2.5x the whole front end.
    g.nodes.append(helper.make_node("Relu", ["features"], ["features_kept"], name="features_kept"))
    g.nodes.append(helper.make_node("Conv", ["features_kept", "hidden.weight", "hidden.bias"],
                                    ["hidden"], name="hidden", kernel_shape=[1, 1, 1]))
    g.nodes.append(helper.make_node("Relu", ["hidden"], ["hidden_relu"], name="hidden_relu"))
    g.nodes.append(helper.make_node("Conv", ["hidden_relu", "classifier.weight", "classifier.bias"],
                                    ["logits"], name="classifier", kernel_shape=[1, 1, 1]))
    return model_proto(g, "logits", k, inits)


def session(model):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


# ------------------------------------------------------------------ fuseprint's pipeline, in numpy


def to_model_grid(hu, spacing_mm, order, cval):
    """fuseprint's model grid for an axis-aligned input in the manifest orientation: GRID_MM
    spacing, centred on the input's centre, dims round(extent / GRID_MM) + 1."""
    n_in = np.array(hu.shape)
    n_out = np.round((n_in - 1) * spacing_mm / GRID_MM).astype(int) + 1
    scale = GRID_MM / spacing_mm
    offset = (n_in - 1) / 2 - (n_out - 1) / 2 * scale
    return ndimage.affine_transform(hu, scale, offset, output_shape=tuple(n_out), order=order,
                                    mode="constant", cval=cval)


def from_model_grid(labels, shape, spacing_mm):
    """Nearest-neighbour back onto the input grid."""
    n_in = np.array(shape)
    n_out = np.array(labels.shape)
    scale = spacing_mm / GRID_MM
    offset = (n_out - 1) / 2 - (n_in - 1) / 2 * scale
    return ndimage.affine_transform(labels, scale, offset, output_shape=tuple(shape), order=0,
                                    mode="nearest")


def ct_window(hu):
    return np.clip((hu - HU_MIN) / (HU_MAX - HU_MIN), 0, 1).astype(np.float32)


def features(front, hu_grid):
    x = np.ascontiguousarray(ct_window(hu_grid)[None, None])
    return front.run(["features"], {"input": x})[0][0]  # [F, D, H, W]


# ------------------------------------------------------------------ classifier


def train_mlp(x, y, rng, weighting, steps=2000, batch=8192, lr=1e-2):
    """Two-layer perceptron (the two 1x1x1 convolutions), class-balanced cross-entropy, Adam."""
    f = x.shape[1]
    w1 = rng.normal(0, np.sqrt(2 / f), (HIDDEN, f))
    b1 = np.zeros(HIDDEN)
    w2 = rng.normal(0, np.sqrt(1 / HIDDEN), (2, HIDDEN))
    b2 = np.zeros(2)
    params = [w1, b1, w2, b2]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    class_weight = len(y) / (2 * np.bincount(y, minlength=2)) if weighting == "balanced" \
        else np.ones(2)
    for step in range(1, steps + 1):
        idx = rng.integers(0, len(y), batch)
        xb, yb = x[idx], y[idx]
        wb = class_weight[yb]
        h = np.maximum(xb @ w1.T + b1, 0)
        z = h @ w2.T + b2
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        loss = -(wb * np.log(p[np.arange(batch), yb] + 1e-12)).sum() / wb.sum()
        dz = p.copy()
        dz[np.arange(batch), yb] -= 1
        dz *= (wb / wb.sum())[:, None]
        gw2, gb2 = dz.T @ h, dz.sum(0)
        dh = (dz @ w2) * (h > 0)
        gw1, gb1 = dh.T @ xb, dh.sum(0)
        rate = lr * 0.5 * (1 + np.cos(np.pi * step / steps))
        for i, gr in enumerate([gw1, gb1, gw2, gb2]):
            m[i] = 0.9 * m[i] + 0.1 * gr
            v[i] = 0.999 * v[i] + 0.001 * gr * gr
            params[i] -= rate * (m[i] / (1 - 0.9 ** step)) / (np.sqrt(v[i] / (1 - 0.999 ** step)) + 1e-8)
        if step % 1000 == 0 or step == 1:
            print(f"  step {step:5d} loss {loss:.4f}")
    return params


def mlp_logits(params, x):
    w1, b1, w2, b2 = params
    return np.maximum(x @ w1.T + b1, 0) @ w2.T + b2


def dice(a, b):
    s = a.sum() + b.sum()
    return float(2 * (a & b).sum() / s) if s else 1.0


def bone_reference(seg):
    return np.isin(seg, sorted(sources.TS_BONE))


# ------------------------------------------------------------------ main


def fit(feats, labels, weighting, rng):
    """Classifier on standardised features + the decision offset that maximises Dice on the
    voxels it was fitted on (class weighting shifts the balance); returns folded layers."""
    mean, std = feats.mean(0), feats.std(0) + 1e-6
    xs = (feats - mean) / std
    params = train_mlp(xs, labels, rng, weighting)
    margin = mlp_logits(params, xs)
    margin = margin[:, 1] - margin[:, 0]
    offsets = np.linspace(-4, 4, 81)
    fit_dice = [dice(margin > t, labels > 0) for t in offsets]
    best = float(offsets[int(np.argmax(fit_dice))])
    w1, b1, w2, b2 = params
    w1f = w1 / std[None, :]
    b1f = b1 - w1f @ mean
    b2f = b2.copy()
    b2f[1] -= best / 2
    b2f[0] += best / 2
    return (w1f, b1f, w2, b2f), max(fit_dice), best, margin - best


def folded_margin(layers, feats):
    w1, b1, w2, b2 = layers
    z = np.maximum(feats @ w1.T + b1, 0) @ w2.T + b2
    return z[:, 1] - z[:, 0]


def grid_features(front, hu, seg, spacing, n_feat):
    """Features and reference of `hu` on the model grid, exactly as fuseprint resamples it."""
    hu_grid = to_model_grid(hu, spacing, order=1, cval=float(hu.min()))
    ref_grid = to_model_grid(bone_reference(seg).astype(np.uint8), spacing, order=0, cval=0) > 0
    feats = features(front, hu_grid).reshape(n_feat, -1).T.astype(np.float64)
    return hu_grid, feats, ref_grid.reshape(-1).astype(np.int64)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(REPO, "models", "ct_bone.onnx"))
    args = ap.parse_args()

    img = nib.load(sources.path("totalsegmentator", "example_ct.nii.gz"))
    spacing = np.sqrt((img.affine[:3, :3] ** 2).sum(axis=0))
    assert np.allclose(img.affine[:3, :3], np.diag(spacing)), "example_ct is expected in RAS"
    _, hu_train, seg_train = sources.ts_example(train=True)
    _, hu_test, seg_test = sources.ts_example(train=False)

    # 1. Choose the recipe on the training slices alone: fit inferior, validate superior part.
    front_all = session(front_end_model(ALL_FEATURES)[0])
    n_all = len(ALL_FEATURES)
    parts = {}
    for part, sl in (("fit", slice(0, INNER_FIT_SLICES)), ("val", slice(INNER_FIT_SLICES, None))):
        parts[part] = grid_features(front_all, hu_train[:, :, sl], seg_train[:, :, sl], spacing, n_all)
    scores = {}
    for name, (wanted, weighting) in VARIANTS.items():
        cols = [ALL_FEATURES.index(f) for f in wanted]
        rng = np.random.default_rng(SEED)
        layers, _, _, _ = fit(parts["fit"][1][:, cols], parts["fit"][2], weighting, rng)
        val = folded_margin(layers, parts["val"][1][:, cols]) > 0
        scores[name] = dice(val, parts["val"][2] > 0)
        print(f"variant {name:24s} inner validation Dice {scores[name]:.3f}")
    chosen = max(scores, key=scores.get)
    wanted, weighting = VARIANTS[chosen]
    print(f"chosen: {chosen}")

    # 2. Refit the chosen recipe on all training slices.
    front_model, n_feat = front_end_model(wanted)
    front = session(front_model)
    hu_grid, feats, labels = grid_features(front, hu_train, seg_train, spacing, n_feat)
    print(f"training grid {hu_grid.shape} ({GRID_MM} mm), {n_feat} features, "
          f"bone {labels.mean() * 100:.1f} % of voxels")
    layers, train_dice, best, want = fit(feats, labels, weighting, np.random.default_rng(SEED))
    print(f"training Dice {train_dice:.3f} at decision offset {best:+.2f}")

    model = full_model(wanted, *layers)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    onnx.save(model, args.out)
    full = session(model)

    # The shipped graph gives the same numbers as the classifier that was trained.
    got = full.run(["logits"], {"input": np.ascontiguousarray(ct_window(hu_grid)[None, None])})[0][0]
    got = (got[1] - got[0]).reshape(-1)
    err = float(np.abs(got - want).max())
    print(f"shipped graph vs trained classifier: max |logit margin difference| {err:.2e}")
    assert err < 1e-3 * max(1.0, float(np.abs(want).max()))

    # 3. Held-out slices, through the same pipeline fuseprint uses (model grid and back).
    hu_grid_t = to_model_grid(hu_test, spacing, order=1, cval=float(hu_test.min()))
    logits = full.run(["logits"], {"input": np.ascontiguousarray(ct_window(hu_grid_t)[None, None])})[0][0]
    pred = from_model_grid(np.argmax(logits, axis=0).astype(np.uint8), hu_test.shape, spacing) == 1
    ref = bone_reference(seg_test)
    first = sources.TS_TRAIN_SLICES
    print(f"held-out CT (example_ct slices {first}..{first + hu_test.shape[2]}, {hu_test.shape}, "
          f"{ref.sum()} bone voxels):")
    print(f"  model bone Dice {dice(pred, ref):.3f} ({pred.sum()} voxels)")
    for t in (150, 200, 250):
        print(f"  threshold HU >= {t} Dice {dice(hu_test >= t, ref):.3f}")
    size = os.path.getsize(args.out)
    print(f"wrote {args.out} ({size / 1024:.1f} KiB, {n_feat} features, {HIDDEN} hidden)")


if __name__ == "__main__":
    main()
