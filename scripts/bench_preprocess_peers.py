#!/usr/bin/env python3
"""Peer denoisers on the exact input `fuseprint bench preprocess --dump D` wrote, scored the same
way (RMSE in HU inside the body against the clean image), so both sides are measured on one
phantom in one run.

Usage: scripts/bench_preprocess_peers.py D     (needs numpy, nibabel, scipy, SimpleITK)
"""
import sys, time
import numpy as np
import nibabel as nib


def load(d, name):
    return np.asarray(nib.load(f"{d}/{name}.nii.gz").dataobj, dtype=np.float32)


def timed(f):
    t = time.perf_counter(); out = f(); return time.perf_counter() - t, out


def main(d):
    clean, noisy, body = load(d, "clean"), load(d, "noisy"), load(d, "body") > 0.5
    rmse = lambda v: float(np.sqrt(np.mean((v[body] - clean[body]) ** 2)))
    print(f"{'peer':<40} {'time_s':>8} {'RMSE_HU':>9}")
    print(f"{'noisy input':<40} {0.0:>8.2f} {rmse(noisy):>9.2f}")

    from scipy import ndimage
    # mode='nearest' replicates borders, as fuseprint's median does.
    secs, out = timed(lambda: ndimage.median_filter(noisy, size=3, mode="nearest"))
    print(f"{'scipy median_filter 3x3x3':<40} {secs:>8.2f} {rmse(out):>9.2f}")

    import SimpleITK as sitk
    img = sitk.GetImageFromArray(np.ascontiguousarray(noisy.transpose(2, 1, 0)))
    back = lambda o: sitk.GetArrayFromImage(o).transpose(2, 1, 0)
    peers = [
        ("SimpleITK Median radius 1", lambda: sitk.Median(img, [1, 1, 1])),
        ("SimpleITK CurvatureFlow 5 it", lambda: sitk.CurvatureFlow(img, 0.0625, 5)),
        ("SimpleITK CurvatureAnisotropicDiff 5 it",
         lambda: sitk.CurvatureAnisotropicDiffusion(img, 0.0625, 3.0, 1, 5)),
        ("SimpleITK Bilateral (σd 1 mm, σr 40 HU)", lambda: sitk.Bilateral(img, 1.0, 40.0)),
    ]
    for name, f in peers:
        secs, out = timed(f)
        print(f"{name:<40} {secs:>8.2f} {rmse(back(out)):>9.2f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/fp-preprocess-bench")
