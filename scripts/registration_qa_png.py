#!/usr/bin/env python3
"""QA picture of a porcine CT -> T2 MR registration made by `fuseprint register`:
per chosen CT slice, the CT, a CT/MR checkerboard (32-pixel tiles) and the MR resampled onto
the CT with the CT's bone outline (> 300 HU) in red. Shown 2x.

    /tmp/venv-reg/bin/pip install SimpleITK numpy pillow
    /tmp/venv-reg/bin/python scripts/registration_qa_png.py OUT_DIR 120,204 docs/screenshots/registration_porcine.png
"""
import SimpleITK as sitk, numpy as np, sys
from PIL import Image
from pathlib import Path
d=str(Path(__file__).resolve().parent.parent/'..'/'shared'/'data'/'registration'/'mri_dir_porcine_phantom')+'/'
out=sys.argv[1]
ct=sitk.GetArrayFromImage(sitk.ReadImage(d+'ct_from_dicom_2x_inplane.nii.gz')).astype(float)
mr=sitk.GetArrayFromImage(sitk.ReadImage(out+'/moving_on_fixed.nii.gz')).astype(float)
def norm(a,lo,hi): return np.clip((a-lo)/(hi-lo)*255,0,255).astype(np.uint8)
rows=[]
for k in [int(x) for x in sys.argv[2].split(',')]:
    c=norm(ct[k],-300,1200); m=norm(mr[k],0,np.percentile(mr[mr>0],99) if (mr>0).any() else 1)
    cb=c.copy(); n=32
    for i in range(0,c.shape[0],n):
        for j in range(0,c.shape[1],n):
            if ((i//n)+(j//n))%2: cb[i:i+n,j:j+n]=m[i:i+n,j:j+n]
    # CT bone edges in red over MR
    rgb=np.stack([m,m,m],-1)
    bone=ct[k]>300
    edge=bone ^ np.roll(bone,1,0) | bone ^ np.roll(bone,1,1)
    rgb[edge]=[255,0,0]
    rows.append(np.concatenate([np.stack([c]*3,-1),np.stack([cb]*3,-1),rgb],1))
img=np.concatenate(rows,0)
Image.fromarray(img).resize((img.shape[1]*2,img.shape[0]*2),Image.NEAREST).save(sys.argv[3])
