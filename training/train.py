"""Train fuseprint's default head/body tissue model (background, soft tissue, bone, brain).

SynthSeg recipe: every step draws a label map (training/sources.py), deforms it with a random
affine, paints each fine label with a random intensity (CT-like, T1-like or fully random), adds
blur, bias field, noise and gamma, normalises like the manifest (1-99 percentile, clipped) and
trains a small MeshNet (dilated 3D convolutions) to recover the coarse classes. So the network
never sees a real image during training and is contrast-agnostic by construction.

PyTorch was not installable here (the CPU wheel index is unreachable, the PyPI wheel pulls
several GB of CUDA libraries), so the network is written in JAX (CPU) and exported to ONNX by
training/export_onnx.py with onnx.helper.

    python training/train.py --minutes 40 --out /tmp/train-work
"""
import argparse
import os
import pickle
import time

import jax
import jax.numpy as jnp
import numpy as np
from scipy import ndimage

import sources

N_CLASSES = 4
CHANNELS = 8
DILATIONS = [1, 2, 4, 8, 4, 2, 1]
PATCH = 32
SPACING_MM = 2.0


# ---------------------------------------------------------------- synthesis


def random_rotation(rng, max_deg):
    a = np.deg2rad(rng.uniform(-max_deg, max_deg, 3))
    rx = np.array([[1, 0, 0], [0, np.cos(a[0]), -np.sin(a[0])], [0, np.sin(a[0]), np.cos(a[0])]])
    ry = np.array([[np.cos(a[1]), 0, np.sin(a[1])], [0, 1, 0], [-np.sin(a[1]), 0, np.cos(a[1])]])
    rz = np.array([[np.cos(a[2]), -np.sin(a[2]), 0], [np.sin(a[2]), np.cos(a[2]), 0], [0, 0, 1]])
    return rx @ ry @ rz


def sample_geometry(rng, src):
    """Fine labels of a PATCH^3 block at SPACING_MM, randomly rotated, scaled, flipped, permuted."""
    perm = np.eye(3)[rng.permutation(3)]
    flips = np.diag(rng.choice([-1.0, 1.0], 3))
    scale = np.diag(rng.uniform(0.85, 1.15, 3))
    # output voxel (PATCH grid, SPACING_MM) -> source voxel
    m = np.diag(1.0 / src.spacing_mm) @ random_rotation(rng, 15) @ scale @ perm @ flips * SPACING_MM
    # centre on a random voxel of the foreground, most of the time
    fg = np.argwhere(src.fine > 0)
    centre = fg[rng.integers(len(fg))] if rng.random() < 0.9 else rng.uniform(0, src.fine.shape)
    centre = centre + rng.normal(0, 4, 3)
    offset = centre - m @ np.full(3, (PATCH - 1) / 2)
    return ndimage.affine_transform(
        src.fine, m, offset=offset, output_shape=(PATCH,) * 3, order=0, mode="constant", cval=0
    )


CT_HU = {"air": (-1000, 10), "lung": (-820, 60), "fat": (-100, 20), "soft": (45, 15),
         "organ": (50, 25), "csf": (8, 5), "gm": (40, 4), "wm": (28, 4), "bone": (700, 350)}
T1 = {"air": (0.02, 0.02), "lung": (0.03, 0.03), "fat": (0.9, 0.08), "soft": (0.35, 0.1),
      "organ": (0.45, 0.15), "csf": (0.15, 0.05), "gm": (0.45, 0.05), "wm": (0.65, 0.05),
      "bone": (0.12, 0.08)}


def label_intensities(rng, kinds):
    """Mean and noise std per fine label, from one of three intensity regimes."""
    regime = rng.choice(["ct", "t1", "random"], p=[0.35, 0.25, 0.4])
    means, stds = [], []
    for kind in kinds:
        if regime == "ct":
            mu, spread = CT_HU[kind]
            means.append(rng.normal(mu, spread))
            stds.append(rng.uniform(2, 25) if kind != "bone" else rng.uniform(20, 200))
        elif regime == "t1":
            mu, spread = T1[kind]
            means.append(rng.normal(mu, spread))
            stds.append(rng.uniform(0.0, 0.04))
        else:
            means.append(rng.uniform(0, 0.15) if kind == "air" else rng.uniform(0, 1))
            stds.append(rng.uniform(0.0, 0.06))
    return regime, np.array(means), np.array(stds)


def synthesise(rng, src):
    fine = sample_geometry(rng, src)
    regime, means, stds = label_intensities(rng, src.fine_kind)
    img = means[fine] + rng.normal(0, 1, fine.shape) * stds[fine]
    # partial volume / thick slices: anisotropic blur
    sigma = rng.uniform(0, 1.0, 3)
    if rng.random() < 0.3:
        sigma[rng.integers(3)] = rng.uniform(1.0, 2.0)
    img = ndimage.gaussian_filter(img, sigma)
    if regime != "ct":
        bias = ndimage.zoom(rng.normal(0, 0.25, (4, 4, 4)), PATCH / 4, order=1)
        img = img * np.exp(bias[:PATCH, :PATCH, :PATCH])
    img = normalise(img)
    if regime != "ct":
        img = np.clip(img, 0, 1) ** np.exp(rng.normal(0, 0.25))
    img = img + rng.normal(0, rng.uniform(0, 0.03), img.shape)
    return img.astype(np.float32), src.fine_class[fine].astype(np.int32)


def normalise(img):
    """As the manifest's `percentile` normalisation: 1st..99th percentile to 0..1, clipped."""
    lo, hi = np.percentile(img, [1, 99])
    return np.clip((img - lo) / (hi - lo if hi > lo else 1.0), 0, 1)


# ---------------------------------------------------------------- model


def init_params(rng):
    params = []
    c_in = 1
    for _ in DILATIONS:
        fan_in = c_in * 27
        w = rng.normal(0, np.sqrt(2.0 / fan_in), (CHANNELS, c_in, 3, 3, 3)).astype(np.float32)
        params.append((w, np.zeros(CHANNELS, np.float32)))
        c_in = CHANNELS
    w = rng.normal(0, np.sqrt(1.0 / CHANNELS), (N_CLASSES, CHANNELS, 1, 1, 1)).astype(np.float32)
    params.append((w, np.zeros(N_CLASSES, np.float32)))
    return [(jnp.asarray(w), jnp.asarray(b)) for w, b in params]


def conv3(h, w, d):
    """3x3x3 convolution with dilation d and zero padding d (ONNX Conv, pads = dilations).

    Written as 27 shifted channel mixes: XLA's CPU kernel for dilated 3D convolutions was 4x
    slower here."""
    _, _, D, H, W = h.shape
    hp = jnp.pad(h, ((0, 0), (0, 0), (d, d), (d, d), (d, d)))
    out = 0
    for a in range(3):
        for b in range(3):
            for c in range(3):
                shifted = hp[:, :, a * d:a * d + D, b * d:b * d + H, c * d:c * d + W]
                out = out + jnp.einsum("oc,ncdhw->nodhw", w[:, :, a, b, c], shifted)
    return out


def forward(params, x):
    """x: [N, 1, D, H, W] -> logits [N, K, D, H, W]; zero padding keeps the size (as the ONNX graph)."""
    h = x
    for (w, b), d in zip(params[:-1], DILATIONS):
        h = jax.nn.relu(conv3(h, w, d) + b[None, :, None, None, None])
    w, b = params[-1]
    return jnp.einsum("oc,ncdhw->nodhw", w[:, :, 0, 0, 0], h) + b[None, :, None, None, None]


def loss_fn(params, x, y):
    logits = forward(params, x)
    logp = jax.nn.log_softmax(logits, axis=1)
    onehot = jax.nn.one_hot(y, N_CLASSES, axis=1)
    ce = -jnp.mean(jnp.sum(onehot * logp, axis=1))
    p = jnp.exp(logp)
    inter = jnp.sum(p * onehot, axis=(0, 2, 3, 4))
    denom = jnp.sum(p, axis=(0, 2, 3, 4)) + jnp.sum(onehot, axis=(0, 2, 3, 4))
    present = jnp.sum(onehot, axis=(0, 2, 3, 4)) > 0
    dice = jnp.where(present, 2 * inter / (denom + 1e-5), 1.0)
    return ce + (1.0 - jnp.mean(dice))


@jax.jit
def train_step(params, m, v, t, x, y, lr):
    loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
    b1, b2 = 0.9, 0.999
    new_p, new_m, new_v = [], [], []
    for (w, b), (gw, gb), (mw, mb), (vw, vb) in zip(params, grads, m, v):
        out = []
        for p_, g, m_, v_ in ((w, gw, mw, vw), (b, gb, mb, vb)):
            m_ = b1 * m_ + (1 - b1) * g
            v_ = b2 * v_ + (1 - b2) * g * g
            mh = m_ / (1 - b1 ** t)
            vh = v_ / (1 - b2 ** t)
            out.append((p_ - lr * mh / (jnp.sqrt(vh) + 1e-8), m_, v_))
        new_p.append((out[0][0], out[1][0]))
        new_m.append((out[0][1], out[1][1]))
        new_v.append((out[0][2], out[1][2]))
    return new_p, new_m, new_v, loss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=40)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default="/tmp/train-work")
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    srcs = sources.training_sources()
    weights = np.array([0.5, 0.3, 0.2])
    ckpt = os.path.join(args.out, "checkpoint.pkl")
    if args.resume and os.path.exists(ckpt):
        with open(ckpt, "rb") as f:
            state = pickle.load(f)
        params, step = [(jnp.asarray(w), jnp.asarray(b)) for w, b in state["params"]], state["step"]
        print("resumed at step", step, flush=True)
    else:
        params, step = init_params(rng), 0
    m = [(jnp.zeros_like(w), jnp.zeros_like(b)) for w, b in params]
    v = [(jnp.zeros_like(w), jnp.zeros_like(b)) for w, b in params]
    n_params = sum(int(w.size + b.size) for w, b in params)
    print(f"MeshNet {CHANNELS} channels, dilations {DILATIONS}, {n_params} parameters", flush=True)
    start = time.time()
    losses = []
    while time.time() - start < args.minutes * 60:
        xs, ys = [], []
        for _ in range(args.batch):
            src = srcs[rng.choice(len(srcs), p=weights)]
            x, y = synthesise(rng, src)
            xs.append(x[None])
            ys.append(y)
        step += 1
        frac = min(1.0, (time.time() - start) / (args.minutes * 60))
        lr = args.lr * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * frac)))
        params, m, v, loss = train_step(params, m, v, step, jnp.asarray(np.stack(xs)),
                                        jnp.asarray(np.stack(ys)), lr)
        losses.append(float(loss))
        if step % 5 == 0:
            el = time.time() - start
            print(f"step {step} loss {np.mean(losses[-5:]):.4f} lr {lr:.2e} "
                  f"elapsed {el / 60:.1f} min", flush=True)
        if step % 20 == 0:
            save(ckpt, params, step)
    save(ckpt, params, step)
    print("done", step, "steps", flush=True)


def save(path, params, step):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        pickle.dump({"params": [(np.asarray(w), np.asarray(b)) for w, b in params],
                     "step": step, "channels": CHANNELS, "dilations": DILATIONS,
                     "classes": N_CLASSES}, f)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
