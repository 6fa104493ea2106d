#!/usr/bin/env python3
"""Peer load times on the data `fuseprint bench load --dir D` generated, measured the same
way (best of 3, wall clock) so both can be compared on the same machine at the same load.

Usage: scripts/bench_peers.py D        (needs SimpleITK, pydicom, numpy, nibabel)
"""
import os, sys, time
import numpy as np


def best_of(n, f):
    best = float("inf")
    for _ in range(n):
        t = time.perf_counter(); f(); best = min(best, time.perf_counter() - t)
    return best


def sitk_series(d):
    import SimpleITK as sitk
    r = sitk.ImageSeriesReader()
    r.SetFileNames(r.GetGDCMSeriesFileNames(d))
    return sitk.GetArrayViewFromImage(r.Execute())


def pydicom_numpy(d):
    import pydicom
    ds = [pydicom.dcmread(os.path.join(d, f)) for f in os.listdir(d)]
    ds.sort(key=lambda s: float(s.ImagePositionPatient[2]))
    vol = np.stack([s.pixel_array for s in ds]).astype(np.float32)
    return vol * float(ds[0].RescaleSlope) + float(ds[0].RescaleIntercept)


def sitk_nifti(p):
    import SimpleITK as sitk
    return sitk.GetArrayViewFromImage(sitk.ReadImage(p))


def nibabel_nifti(p):
    import nibabel as nib
    return nib.load(p).get_fdata(dtype=np.float32)


def main():
    d = sys.argv[1]
    series = os.path.join(d, "dicom")
    rows = [
        ("DICOM series", "SimpleITK", lambda: sitk_series(series)),
        ("DICOM series", "pydicom+numpy", lambda: pydicom_numpy(series)),
    ]
    for name in ("ct.nii.gz", "ct_single_member.nii.gz"):
        p = os.path.join(d, name)
        rows.append((name, "SimpleITK", lambda p=p: sitk_nifti(p)))
        rows.append((name, "nibabel", lambda p=p: nibabel_nifti(p)))
    for what, who, f in rows:
        try:
            print(f"{what:<26} {who:<14} {best_of(3, f):.3f} s", flush=True)
        except Exception as e:  # a missing package should not hide the other rows
            print(f"{what:<26} {who:<14} failed: {e}")
    print("load average:", open("/proc/loadavg").read().split()[:3])


if __name__ == "__main__":
    main()
