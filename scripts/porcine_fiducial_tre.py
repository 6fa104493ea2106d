#!/usr/bin/env python3
"""Target registration error at the gold fiducials of the porcine CT + T2 MR pair.

The MRI-DIR porcine phantom (../shared/data/registration/mri_dir_porcine_phantom) holds gold
fiducials but no list of their positions, so we locate them ourselves:

- CT: gold saturates the scanner (>= 2000 HU where bone stays below): threshold, connected
  components of at least MIN_CT_VOXELS voxels, intensity-weighted centroids (LPS mm).
- MR (T2): gold is a signal void. Around where fuseprint's transform puts each CT fiducial,
  search a SEARCH_MM neighbourhood for the darkest small blob relative to its surroundings
  (mean of a small ball minus mean of a shell, on the MR grid), then take the void-weighted
  centroid of the blob.

TRE per fiducial = |detected MR position - transform(CT position)|. The MR slices are 2.5 mm
thick, so the detection itself is uncertain by about +-1 mm along S.

    /tmp/venv-reg/bin/python scripts/porcine_fiducial_tre.py OUT_DIR_OF_FUSEPRINT_REGISTER
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

DATA = Path(__file__).resolve().parent.parent / ".." / "shared" / "data" / "registration" / "mri_dir_porcine_phantom"
CT_THRESHOLD_HU = 2000.0
MIN_CT_VOXELS = 15
SEARCH_MM = 8.0
BALL_MM = 1.2
SHELL_MM = (2.5, 4.5)


def ct_fiducials(ct):
    cc = sitk.ConnectedComponent(ct >= CT_THRESHOLD_HU)
    stats = sitk.LabelIntensityStatisticsImageFilter()
    stats.Execute(cc, ct)
    return [
        np.array(stats.GetCenterOfGravity(label))
        for label in stats.GetLabels()
        if stats.GetNumberOfPixels(label) >= MIN_CT_VOXELS
    ]


def mr_void_near(mr, arr, predicted):
    """Darkest blob near `predicted` (LPS mm); returns its centroid (LPS mm) and contrast."""
    spacing = np.array(mr.GetSpacing())  # x, y, z
    centre = np.array(mr.TransformPhysicalPointToContinuousIndex(predicted.tolist()))
    r = np.ceil((SEARCH_MM + SHELL_MM[1]) / spacing).astype(int)
    lo = np.maximum(np.floor(centre).astype(int) - r, 0)
    hi = np.minimum(np.floor(centre).astype(int) + r + 1, np.array(mr.GetSize()))
    sub = arr[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]].astype(np.float64)  # z, y, x
    zz, yy, xx = np.meshgrid(
        (np.arange(lo[2], hi[2]) - 0) * spacing[2],
        (np.arange(lo[1], hi[1]) - 0) * spacing[1],
        (np.arange(lo[0], hi[0]) - 0) * spacing[0],
        indexing="ij",
    )
    c_mm = centre * spacing
    best = None
    # Candidate centres: every voxel within SEARCH_MM of the prediction.
    cand = np.argwhere(
        (zz - c_mm[2]) ** 2 + (yy - c_mm[1]) ** 2 + (xx - c_mm[0]) ** 2 <= SEARCH_MM**2
    )
    for z, y, x in cand:
        d2 = (zz - zz[z, y, x]) ** 2 + (yy - yy[z, y, x]) ** 2 + (xx - xx[z, y, x]) ** 2
        ball = d2 <= BALL_MM**2
        shell = (d2 >= SHELL_MM[0] ** 2) & (d2 <= SHELL_MM[1] ** 2)
        if ball.sum() == 0 or shell.sum() < 10:
            continue
        contrast = sub[shell].mean() - sub[ball].mean()
        if best is None or contrast > best[0]:
            best = (contrast, z, y, x, sub[shell].mean())
    if best is None:
        return None, 0.0
    contrast, z, y, x, background = best
    d2 = (zz - zz[z, y, x]) ** 2 + (yy - yy[z, y, x]) ** 2 + (xx - xx[z, y, x]) ** 2
    near = d2 <= SHELL_MM[0] ** 2
    w = np.clip(background - sub, 0.0, None) * near
    if w.sum() <= 0:
        return None, 0.0
    idx = np.array([(xx * w).sum(), (yy * w).sum(), (zz * w).sum()]) / w.sum() / spacing
    point = np.array(mr.TransformContinuousIndexToPhysicalPoint(idx.tolist()))
    return point, contrast / max(background, 1e-6)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir", type=Path, help="output folder of `fuseprint register CT MR -o DIR`")
    ap.add_argument("--json", type=Path, help="write the per-fiducial table here")
    args = ap.parse_args()
    ct = sitk.ReadImage(str(DATA / "ct_from_dicom_2x_inplane.nii.gz"), sitk.sitkFloat32)
    mr = sitk.ReadImage(str(DATA / "mr_t2_from_dicom.nii.gz"), sitk.sitkFloat32)
    tfm = sitk.ReadTransform(str(args.out_dir / "transform.tfm"))
    arr = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(mr, 0.4))
    rows = []
    for n, p in enumerate(ct_fiducials(ct)):
        predicted = np.array(tfm.TransformPoint(p.tolist()))
        found, contrast = mr_void_near(mr, arr, predicted)
        if found is None:
            print(f"fiducial {n}: CT {np.round(p, 2)} -> no void found near {np.round(predicted, 2)}")
            continue
        err = found - predicted
        rows.append(
            {
                "ct_mm": p.round(3).tolist(),
                "mr_predicted_mm": predicted.round(3).tolist(),
                "mr_detected_mm": found.round(3).tolist(),
                "void_contrast": round(float(contrast), 3),
                "tre_mm": round(float(np.linalg.norm(err)), 3),
                "tre_in_plane_mm": round(float(np.linalg.norm(err[:2])), 3),
                "tre_si_mm": round(float(abs(err[2])), 3),
            }
        )
        r = rows[-1]
        print(
            f"fiducial {n}: CT {np.round(p, 1)}  void contrast {r['void_contrast']:.2f}  "
            f"TRE {r['tre_mm']:.2f} mm (in-plane {r['tre_in_plane_mm']:.2f}, S {r['tre_si_mm']:.2f})"
        )
    if not rows:
        print("no fiducial pairs found")
        return 1
    tre = np.array([r["tre_mm"] for r in rows])
    print(f"{len(rows)} fiducials: TRE mean {tre.mean():.2f} mm, median {np.median(tre):.2f}, max {tre.max():.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
