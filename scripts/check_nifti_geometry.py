#!/usr/bin/env python3
"""Cross-check fuseprint's NIfTI geometry against nibabel, and DICOM→NIfTI against pydicom.

Usage:
  scripts/check_nifti_geometry.py --bin target/debug/fuseprint FILE.nii[.gz] ...
  scripts/check_nifti_geometry.py --bin ... --dicom SERIES_DIR [--dicom DIR2 ...]
  scripts/check_nifti_geometry.py --bin ... --variants FILE.nii.gz   (nibabel writes qform-only,
      NIfTI-2 and big-endian copies; fuseprint must place them identically)

Needs nibabel, numpy (and pydicom for --dicom). Exit status 1 on any mismatch.
"""
import argparse, json, os, subprocess, sys, tempfile
import numpy as np
import nibabel as nib

LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
TOL_MM = 1e-3
failures = 0


def fuseprint_info(binary, path):
    out = subprocess.run([binary, "info", "--json", str(path)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def voxel_positions(shape, rng):
    """The 8 corners plus some random voxels, as a 4×N homogeneous index array."""
    nx, ny, nz = shape
    pts = [[i, j, k] for i in (0, nx - 1) for j in (0, ny - 1) for k in (0, nz - 1)]
    pts += rng.integers(0, [nx, ny, nz], size=(64, 3)).tolist()
    return np.vstack([np.array(pts, float).T, np.ones(len(pts))])


def check_file(binary, path, label=None):
    global failures
    img = nib.load(str(path))
    shape = img.shape[:3]
    ours = fuseprint_info(binary, path)
    ours_lps = np.array(ours["world_from_voxel"])
    theirs_lps = LPS_FROM_RAS @ img.affine
    idx = voxel_positions(shape, np.random.default_rng(0))
    err = np.abs(ours_lps @ idx - theirs_lps @ idx).max()
    dims_ok = list(ours["series"][0]["dims"]) == list(shape)
    ok = err < TOL_MM and dims_ok
    failures += not ok
    print(f"{'OK  ' if ok else 'FAIL'} {label or path}: dims {shape} max voxel position error {err:.2e} mm")
    return img


def check_variants(binary, path):
    """nibabel rewrites a file in forms fuseprint must also place identically."""
    img = nib.load(str(path))
    data = np.asanyarray(img.dataobj)
    with tempfile.TemporaryDirectory() as d:
        q = nib.Nifti1Image(data, None)
        q.set_qform(img.affine, code=1)
        q.set_sform(None, code=0)
        p = os.path.join(d, "qform_only.nii.gz"); nib.save(q, p)
        check_file(binary, p, f"{path} as qform-only")
        n2 = nib.Nifti2Image(data, img.affine)
        p = os.path.join(d, "nifti2.nii"); nib.save(n2, p)
        check_file(binary, p, f"{path} as NIfTI-2")
        be = nib.Nifti1Image(data, img.affine, header=nib.Nifti1Header(endianness=">"))
        be.set_sform(img.affine, code=1)
        p = os.path.join(d, "bigendian.nii"); nib.save(be, p)
        check_file(binary, p, f"{path} as big-endian")
        # Both codes zero: nibabel's legacy centred grid.
        leg = nib.Nifti1Image(data, img.affine)
        leg.set_sform(None, code=0); leg.set_qform(None, code=0)
        p = os.path.join(d, "legacy.nii"); nib.save(leg, p)
        check_file(binary, p, f"{path} with no qform/sform")


def check_dicom(binary, series_dir):
    """Convert with fuseprint, read the result with nibabel: every DICOM slice's IPP must lie
    on the volume's (0, 0, k) line, and where it falls on a grid slice (no resampling there)
    the voxel values must equal pydicom's rescaled pixels."""
    global failures
    import pydicom
    slices = []
    for root, _, files in os.walk(series_dir):
        for f in files:
            try:
                ds = pydicom.dcmread(os.path.join(root, f))
            except Exception:
                continue
            if "ImagePositionPatient" in ds and "PixelData" in ds:
                slices.append(ds)
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "series.nii.gz")
        subprocess.run([binary, "convert", str(series_dir), out], check=True, capture_output=True)
        img = nib.load(out)
        lps = LPS_FROM_RAS @ img.affine
        voxel_from_lps = np.linalg.inv(lps)
        data = img.get_fdata()
        worst_pos, worst_val, on_grid = 0.0, 0.0, 0
        for ds in slices:
            ipp = np.array(ds.ImagePositionPatient, float)
            i, j, k = (voxel_from_lps @ np.append(ipp, 1.0))[:3]
            # IPP is the centre of the slice's first pixel: voxel (0, 0, k) in mm.
            worst_pos = max(worst_pos, abs(i) * img.header.get_zooms()[0], abs(j) * img.header.get_zooms()[1])
            # In-plane axes: the far corner pixel must land on voxel (nx-1, ny-1, k) too.
            iop = np.array(ds.ImageOrientationPatient, float)
            rs, cs = (float(v) for v in ds.PixelSpacing)
            corner = ipp + (ds.Columns - 1) * cs * iop[:3] + (ds.Rows - 1) * rs * iop[3:]
            ours = (lps @ np.array([img.shape[0] - 1, img.shape[1] - 1, k, 1.0]))[:3]
            worst_pos = max(worst_pos, np.abs(corner - ours).max())
            kr = int(round(k))
            if abs(k - kr) < 1e-5 and 0 <= kr < img.shape[2]:
                on_grid += 1
                px = ds.pixel_array.astype(float) * float(getattr(ds, "RescaleSlope", 1)) + float(getattr(ds, "RescaleIntercept", 0))
                # pydicom is [row, column]; NIfTI i runs along a row (column index).
                worst_val = max(worst_val, np.abs(data[:, :, kr] - px.T).max())
        ok = worst_pos < 1e-2 and worst_val < 1e-2 and on_grid > 0
        failures += not ok
        print(f"{'OK  ' if ok else 'FAIL'} DICOM {series_dir}: {len(slices)} files, volume {img.shape}, "
              f"max in-plane position error {worst_pos:.2e} mm, {on_grid} slices on the grid, "
              f"max value error there {worst_val:.2e}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--dicom", action="append", default=[])
    ap.add_argument("--variants", action="append", default=[])
    ap.add_argument("files", nargs="*")
    a = ap.parse_args()
    for f in a.files:
        check_file(a.bin, f)
    for f in a.variants:
        check_variants(a.bin, f)
    for d in a.dicom:
        check_dicom(a.bin, d)
    print("all OK" if failures == 0 else f"{failures} FAILED")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
