"""Label maps the default model is trained on, and the real held-out images it is judged on.

Every source is turned into a *fine* label map (many sub-labels, each later gets its own random
intensity, as in SynthSeg) plus, per fine label, the coarse class the network must predict and a
tissue *kind* used by the CT-like and T1-like intensity priors.

Coarse classes (the model's output channels):
    0 background / air, 1 soft tissue, 2 bone, 3 brain (intracranial contents)
"""
import json
import os

import nibabel as nib
import numpy as np
from scipy import ndimage

SHARED = os.environ.get(
    "FUSEPRINT_SHARED_DATA",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data"),
)
CLASS_NAMES = ["background", "soft tissue", "bone", "brain"]
KINDS = ["air", "lung", "fat", "soft", "organ", "csf", "gm", "wm", "bone"]

# Rows of the ../shared/data TotalSegmentator "total" class map that are bone.
TS_BONE = set(range(25, 51)) | set(range(69, 79)) | set(range(91, 117))
TS_LUNG = set(range(10, 15))
TS_BRAIN = {90}
# Slices (k index) of example_ct kept for training; the rest is the held-out CT.
TS_TRAIN_SLICES = 56


def path(*parts):
    return os.path.join(SHARED, *parts)


class Source:
    """A fine label map on a voxel grid with `spacing_mm`, and per fine label its class and kind."""

    def __init__(self, name, fine, spacing_mm, fine_class, fine_kind):
        self.name = name
        self.fine = fine.astype(np.int32)
        self.spacing_mm = np.asarray(spacing_mm, dtype=np.float64)
        self.fine_class = np.asarray(fine_class, dtype=np.int32)
        self.fine_kind = list(fine_kind)

    def classes(self):
        return self.fine_class[self.fine]


def _body_mask(hu):
    """Body = voxels above -500 HU, holes filled slice by slice, largest component."""
    body = hu > -500
    lab, n = ndimage.label(body)
    if n > 1:
        sizes = ndimage.sum(body, lab, range(1, n + 1))
        body = lab == (1 + int(np.argmax(sizes)))
    for k in range(body.shape[2]):
        body[:, :, k] = ndimage.binary_fill_holes(body[:, :, k])
    return body


def mni_head():
    """Head label map from the clinical CT template (bone, head outline) and the SPM tissue priors
    (grey matter, white matter, CSF) of ../shared/data/templates/clinical_ct_template_mni (2 mm)."""
    d = path("templates", "clinical_ct_template_mni")
    ct = nib.load(os.path.join(d, "scct.nii.gz")).get_fdata()
    gm = nib.load(os.path.join(d, "scgrey.nii.gz")).get_fdata()
    wm = nib.load(os.path.join(d, "scwhite.nii.gz")).get_fdata()
    csf = nib.load(os.path.join(d, "sccsf.nii.gz")).get_fdata()
    # The template is in Rorden's Cormack units: brain sits near 2600, skull above 3000, air near 0.
    head = ndimage.binary_fill_holes(ct > 300)
    brain = (gm + wm + csf) > 0.5
    bone = (ct > 3000) & ~brain & head
    fine = np.zeros(ct.shape, np.int32)
    fine[head] = 1  # soft tissue (scalp, face, neck)
    fine[bone] = 2
    tissue = np.argmax(np.stack([gm, wm, csf]), axis=0)
    fine[brain] = 3 + tissue[brain]
    return Source(
        "mni_head",
        fine,
        [2.0, 2.0, 2.0],
        fine_class=[0, 1, 2, 3, 3, 3],
        fine_kind=["air", "soft", "bone", "gm", "wm", "csf"],
    )


def ts_labels(ct, seg):
    """Fine labels from a TotalSegmentator CT and its label map: every organ/bone its own label,
    the rest of the body split into fat and other soft tissue by HU."""
    body = _body_mask(ct)
    fine = np.zeros(ct.shape, np.int32)
    fine[body & (ct < -20)] = 1  # fat
    fine[body & (ct >= -20)] = 2  # muscle and other soft tissue
    fine_class = [0, 1, 1]
    fine_kind = ["air", "fat", "soft"]
    for v in np.unique(seg):
        v = int(v)
        if v == 0:
            continue
        m = seg == v
        fine[m] = len(fine_class)
        if v in TS_BONE:
            fine_class.append(2)
            fine_kind.append("bone")
        elif v in TS_LUNG:
            fine_class.append(0)
            fine_kind.append("lung")
        elif v in TS_BRAIN:
            fine_class.append(3)
            fine_kind.append("gm")
        else:
            fine_class.append(1)
            fine_kind.append("organ")
    return fine, fine_class, fine_kind


def ts_example(train=True):
    ct_img = nib.load(path("totalsegmentator", "example_ct.nii.gz"))
    ct = np.asarray(ct_img.dataobj).astype(np.float32)
    seg = np.asarray(nib.load(path("totalsegmentator", "example_seg_fast_force_split.nii.gz")).dataobj)
    sl = slice(0, TS_TRAIN_SLICES) if train else slice(TS_TRAIN_SLICES, None)
    return ct_img, ct[:, :, sl], seg[:, :, sl]


def ts_body():
    """Training half (inferior slices: pelvis, hips, femurs, lumbar spine) of TotalSegmentator's example CT."""
    _, ct, seg = ts_example(train=True)
    fine, fc, fk = ts_labels(ct, seg)
    return Source("ts_body_inferior", fine, [3.0, 3.0, 3.0], fc, fk)


ASEG_WM = {2, 41, 7, 46, 16, 28, 60, 77, 85}
ASEG_CSF = {4, 5, 14, 15, 24, 43, 44, 72, 31, 63}


def voxelmorph_brain():
    """The skull-stripped aseg of ../shared/data/voxelmorph/test_scan.npz (1 mm, taken at 2 mm)."""
    seg = np.load(path("voxelmorph", "test_scan.npz"))["seg"].astype(np.int32)[::2, ::2, ::2]
    fine = np.zeros(seg.shape, np.int32)
    fine_class, fine_kind = [0], ["air"]
    for v in np.unique(seg):
        v = int(v)
        if v == 0:
            continue
        fine[seg == v] = len(fine_class)
        fine_class.append(3)
        fine_kind.append("wm" if v in ASEG_WM else "csf" if v in ASEG_CSF else "gm")
    return Source("voxelmorph_aseg", fine, [2.0, 2.0, 2.0], fine_class, fine_kind)


def training_sources():
    return [mni_head(), ts_body(), voxelmorph_brain()]


# ---------------------------------------------------------------- held-out references


def heldout_ct_reference():
    """The superior slices of example_ct (never seen in training) with 4-class reference labels:
    bone and brain from TotalSegmentator's map, lungs background, body outline (> -500 HU, filled)."""
    img, ct, seg = ts_example(train=False)
    fine, fc, _ = ts_labels(ct, seg)
    ref = np.asarray(fc, np.int32)[fine]
    return img, ct, ref


def heldout_mri_reference():
    """brainchop's t1_crop (a real T1 with scalp and skull, 1 mm) with mindgrab's brain mask:
    brain vs not brain (the mask does not separate soft tissue and bone)."""
    d = path("models", "onnx_from_brainchop")
    img = nib.load(os.path.join(d, "t1_crop.nii.gz"))
    mask = np.asarray(nib.load(os.path.join(d, "mindgrab_on_t1_crop_mask.nii.gz")).dataobj) > 0
    return img, np.asarray(img.dataobj).astype(np.float32), mask


if __name__ == "__main__":
    for s in training_sources():
        c = s.classes()
        print(s.name, s.fine.shape, s.spacing_mm, "fine labels", len(s.fine_class),
              "class voxels", [int((c == k).sum()) for k in range(4)])
    img, ct, ref = heldout_ct_reference()
    print("heldout ct", ct.shape, [int((ref == k).sum()) for k in range(4)])
    print(json.dumps(CLASS_NAMES))
