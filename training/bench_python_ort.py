"""Python ONNX Runtime reference timings for `fuseprint bench inference` (issue 6).

    python training/bench_python_ort.py mindgrab ../shared/data/models/onnx_from_brainchop/mindgrab.onnx \
        ../shared/data/models/onnx_from_brainchop/t1_crop.nii.gz
    python training/bench_python_ort.py ct_bone models/ct_bone.onnx /tmp/ct_256.nii.gz

mindgrab: brainchop preprocessing (min-max, crop to voxels above 0.5 x max grown by 20, whole crop
in one run), as ../shared/data/_tools/run_meshnet_onnx.py. ct_bone (models/ct_bone.json): the image
zoomed to the manifest's 2 mm grid, HU window -1000..2000 scaled to 0..1, whole grid in one run. Prints the time of
session.run alone and the process's peak RSS (VmHWM).
"""
import sys
import time

import nibabel as nib
import numpy as np
import onnxruntime as ort
from scipy import ndimage


def vm_hwm_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main():
    kind, model, image = sys.argv[1:4]
    img = nib.load(image)
    v = img.get_fdata(dtype=np.float32)
    if kind == "mindgrab":
        v = (v - v.min()) / (v.max() - v.min())
        idx = np.argwhere(v > 0.5 * v.max())
        lo = np.maximum(idx.min(0) - 20, 0)
        hi = np.minimum(idx.max(0) + 20, np.array(v.shape) - 1)
        x = v[lo[0]:hi[0] + 1, lo[1]:hi[1] + 1, lo[2]:hi[2] + 1]
    else:
        spacing = np.sqrt((img.affine[:3, :3] ** 2).sum(axis=0))
        x = ndimage.zoom(v, spacing / 2.0, order=1)
        x = np.clip((x + 1000.0) / 3000.0, 0, 1)
    x = np.ascontiguousarray(x[None, None], dtype=np.float32)
    before = vm_hwm_mib()
    t = time.time()
    so = ort.SessionOptions()
    s = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    load = time.time() - t
    t = time.time()
    logits = s.run(["logits"], {"input": x})[0]
    run = time.time() - t
    print(f"python onnxruntime {ort.__version__} {kind} tensor {x.shape[2:]}: load {load:.2f} s, "
          f"run {run:.2f} s, peak RSS {vm_hwm_mib():.0f} MiB (before session {before:.0f} MiB), "
          f"classes {logits.shape[1]}")


if __name__ == "__main__":
    main()
