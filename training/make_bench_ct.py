"""A 256^3 CT in Hounsfield units for `fuseprint bench inference` with the default model:
TotalSegmentator's example_ct (3 mm) resampled trilinearly to 1.5 mm on a 256^3 grid centred on it
(outside: -1024 HU), RAS. The brainchop 256^3 conform of CT_AVM is not in HU, so it is not used.

    /tmp/venv-train/bin/python training/make_bench_ct.py /tmp/ct_256.nii.gz
"""
import sys

import nibabel as nib
import numpy as np
from scipy import ndimage

import sources


def main():
    out = sys.argv[1]
    img = nib.load(sources.path("totalsegmentator", "example_ct.nii.gz"))
    hu = np.asarray(img.dataobj).astype(np.float32)
    spacing = np.sqrt((img.affine[:3, :3] ** 2).sum(axis=0))
    n_in = np.array(hu.shape)
    n_out = np.array([256, 256, 256])
    scale = 1.5 / spacing
    offset = (n_in - 1) / 2 - (n_out - 1) / 2 * scale
    v = ndimage.affine_transform(hu, scale, offset, output_shape=(256, 256, 256), order=1,
                                 mode="constant", cval=-1024.0)
    affine = img.affine.copy()
    affine[:3, :3] = img.affine[:3, :3] @ np.diag(scale)
    affine[:3, 3] = img.affine[:3, :3] @ offset + img.affine[:3, 3]
    nib.save(nib.Nifti1Image(np.round(v).astype(np.int16), affine), out)
    print("wrote", out, v.shape)


if __name__ == "__main__":
    main()
