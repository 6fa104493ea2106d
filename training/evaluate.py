"""Held-out Dice of the default model on REAL images, next to threshold baselines.

Held out (never used in training):
  * CT: the superior 56 slices of TotalSegmentator's example_ct (upper abdomen: ribs, lumbar and
    thoracic vertebrae, liver); reference bone = TotalSegmentator's bone labels, background = outside
    the body outline (> -500 HU, filled) and the lungs, soft tissue = the rest of the body.
    Baseline for bone: HU >= 200.
  * MRI: brainchop's t1_crop (T1 with scalp and skull, 1 mm); reference = mindgrab's brain mask.
    Baseline for brain: Otsu threshold, largest connected component.

    python training/evaluate.py --write-inputs /tmp/train-work      # the held-out CT crop as NIfTI
    python training/evaluate.py --onnx models/head_tissue.onnx        # Python ORT, approximate pipeline
    python training/evaluate.py --ct-pred ct_labels.nii.gz --mri-pred t1_labels.nii.gz
                                      # labels written by `fuseprint segment model` (the real pipeline)
"""
import argparse
import os

import nibabel as nib
import numpy as np
from scipy import ndimage

import sources

BRAIN, BONE, SOFT, BACKGROUND = 3, 2, 1, 0


def dice(a, b):
    s = a.sum() + b.sum()
    return float(2 * (a & b).sum() / s) if s else 1.0


def otsu(values, bins=256):
    hist, edges = np.histogram(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres) / np.maximum(w0, 1)
    m1 = (np.sum(hist * centres) - np.cumsum(hist * centres)) / np.maximum(w1, 1)
    return centres[int(np.argmax(w0 * w1 * (m0 - m1) ** 2))]


def largest_component(mask):
    lab, n = ndimage.label(mask)
    if n <= 1:
        return mask
    sizes = ndimage.sum(mask, lab, range(1, n + 1))
    return lab == (1 + int(np.argmax(sizes)))


def heldout_ct_path(folder):
    return os.path.join(folder, "heldout_ct_superior.nii.gz")


def write_inputs(folder):
    img, ct, _ = sources.heldout_ct_reference()
    affine = img.affine.copy()
    # the crop starts at slice TS_TRAIN_SLICES
    affine[:3, 3] = img.affine[:3, :3] @ np.array([0, 0, sources.TS_TRAIN_SLICES]) + img.affine[:3, 3]
    out = heldout_ct_path(folder)
    nib.save(nib.Nifti1Image(ct.astype(np.int16), affine), out)
    print("wrote", out)


def predict_python(onnx_path, img, data):
    """Approximation of fuseprint's pipeline: zoom to 2 mm, 1-99 percentile, run, zoom back."""
    import onnxruntime as ort
    spacing = np.sqrt((img.affine[:3, :3] ** 2).sum(axis=0))
    zoom = spacing / 2.0
    small = ndimage.zoom(data.astype(np.float32), zoom, order=1)
    lo, hi = np.percentile(small, [1, 99])
    small = np.clip((small - lo) / (hi - lo), 0, 1).astype(np.float32)
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    logits = sess.run(None, {"input": small[None, None]})[0][0]
    labels = np.argmax(logits, axis=0).astype(np.uint8)
    back = ndimage.zoom(labels, np.array(data.shape) / np.array(labels.shape), order=0)
    out = np.zeros(data.shape, np.uint8)
    s = tuple(slice(0, min(a, b)) for a, b in zip(data.shape, back.shape))
    out[s] = back[s]
    return out


def report_ct(pred):
    img, ct, ref = sources.heldout_ct_reference()
    print("CT held-out (example_ct superior slices), voxels", ct.shape)
    for k, name in enumerate(sources.CLASS_NAMES[:3]):
        print(f"  {name:12s} model dice {dice(pred == k, ref == k):.3f}")
    base = ct >= 200
    print(f"  bone baseline HU>=200 dice {dice(base, ref == BONE):.3f}")
    return {n: dice(pred == k, ref == k) for k, n in enumerate(sources.CLASS_NAMES[:3])}


def report_mri(pred):
    img, t1, mask = sources.heldout_mri_reference()
    print("MRI held-out (t1_crop vs mindgrab brain mask)")
    print(f"  brain model dice {dice(pred == BRAIN, mask):.3f} "
          f"({(pred == BRAIN).sum() / 1000:.0f} ml vs {mask.sum() / 1000:.0f} ml)")
    t = otsu(t1[t1 > 0])
    base = largest_component(t1 > t)
    print(f"  brain baseline Otsu (>{t:.0f}, largest component) dice {dice(base, mask):.3f}")
    return dice(pred == BRAIN, mask)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--write-inputs")
    ap.add_argument("--onnx")
    ap.add_argument("--ct-pred")
    ap.add_argument("--mri-pred")
    args = ap.parse_args()
    if args.write_inputs:
        write_inputs(args.write_inputs)
        return
    if args.onnx:
        img, ct, _ = sources.heldout_ct_reference()
        report_ct(predict_python(args.onnx, img, ct))
        img, t1, _ = sources.heldout_mri_reference()
        report_mri(predict_python(args.onnx, img, t1))
    if args.ct_pred:
        report_ct(np.asarray(nib.load(args.ct_pred).dataobj))
    if args.mri_pred:
        report_mri(np.asarray(nib.load(args.mri_pred).dataobj))


if __name__ == "__main__":
    main()
