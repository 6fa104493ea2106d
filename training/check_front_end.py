"""Checks that the shipped front end (element-wise ops, slices, cumulative sums) computes the same
20 features as the MaxPool/AveragePool graph the classifier was first designed on, with ONNX
Runtime on real CT: per feature, the max |difference| over the whole model grid.

    /tmp/venv-train/bin/python training/check_front_end.py [CT.nii.gz ...]

Default: TotalSegmentator's example_ct (all slices) on the 2 mm model grid.
"""
import os
import sys

import nibabel as nib
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sources  # noqa: E402
import train_ct_bone as t  # noqa: E402

TOLERANCE = 1e-4


def main():
    paths = sys.argv[1:] or [sources.path("totalsegmentator", "example_ct.nii.gz")]
    fast = t.session(t.front_end_model(t.ALL_FEATURES)[0])
    pooling = t.session(t.front_end_model(t.ALL_FEATURES, t.pooling_front_end)[0])
    worst = 0.0
    for path in paths:
        img = nib.load(path)
        hu = img.get_fdata(dtype=np.float32)
        spacing = np.sqrt((img.affine[:3, :3] ** 2).sum(axis=0))
        grid = t.to_model_grid(hu, spacing, order=1, cval=float(hu.min()))
        a = t.features(fast, grid)
        b = t.features(pooling, grid)
        print(f"{os.path.basename(path)}: model grid {grid.shape}")
        for (kind, k), fa, fb in zip(t.ALL_FEATURES, a, b):
            d = float(np.abs(fa - fb).max())
            worst = max(worst, d)
            print(f"  {kind:12s} {k:3d}  max |fast - pooling| {d:.2e}")
    print(f"worst {worst:.2e} (tolerance {TOLERANCE:.0e})")
    assert worst <= TOLERANCE


if __name__ == "__main__":
    main()
