#!/usr/bin/env python3
"""Checks that ITK (through SimpleITK) reads fuseprint's transform.tfm and maps points as we do.

`fuseprint register ... -o DIR` writes DIR/transform.tfm and DIR/report.json; the report holds
`transform_samples`: fixed points (LPS mm) and the moving points fuseprint maps them to with its
own transform (4x4 plus, for --deformable, the B-spline field). ITK's convention is the same:
a transform file maps FIXED physical points to MOVING physical points (LPS). This script reads
the .tfm with SimpleITK, maps the same fixed points, and reports the largest disagreement.
For a linear result it also checks the 4x4 in report.json directly.

    python3 -m venv /tmp/venv-reg && /tmp/venv-reg/bin/pip install SimpleITK numpy
    /tmp/venv-reg/bin/python scripts/check_tfm.py DIR [--tolerance-mm 1e-4]

Exit status 0 when every point agrees within the tolerance.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", type=Path, help="output folder of `fuseprint register`")
    ap.add_argument("--tolerance-mm", type=float, default=1e-4)
    args = ap.parse_args()

    report = json.loads((args.dir / "report.json").read_text())
    tfm = sitk.ReadTransform(str(args.dir / "transform.tfm"))
    print(f"SimpleITK {sitk.Version_VersionString()} read {tfm.GetName()}")
    if tfm.GetName() == "CompositeTransform":
        composite = sitk.CompositeTransform(tfm)
        for i in range(composite.GetNumberOfTransforms()):
            print(f"  [{i}] {composite.GetNthTransform(i).GetName()}")

    samples = report.get("transform_samples") or []
    if not samples:
        print("report.json has no transform_samples", file=sys.stderr)
        return 2
    worst = 0.0
    for s in samples:
        fixed = s["fixed_mm"]
        ours = np.array(s["moving_mm"])
        itk = np.array(tfm.TransformPoint(fixed))
        err = float(np.linalg.norm(itk - ours))
        worst = max(worst, err)
        print(
            f"  fixed {np.round(fixed, 3)} -> fuseprint {np.round(ours, 4)}  ITK {np.round(itk, 4)}  |diff| {err:.2e} mm"
        )

    m = np.array(report["registration"]["moving_from_fixed"])
    if report["registration"].get("deformable") is None:
        for s in samples:
            p = np.append(np.array(s["fixed_mm"]), 1.0)
            via_matrix = (m @ p)[:3]
            itk = np.array(tfm.TransformPoint(s["fixed_mm"]))
            worst = max(worst, float(np.linalg.norm(via_matrix - itk)))
        print("  4x4 in report.json checked against ITK too")

    ok = worst <= args.tolerance_mm
    print(f"largest disagreement {worst:.3e} mm: {'OK' if ok else 'MISMATCH'} (tolerance {args.tolerance_mm} mm)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
