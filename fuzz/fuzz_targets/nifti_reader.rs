//! Any bytes, as .nii or .nii.gz: the reader returns a typed error or a consistent volume.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(img) = fuseprint::io::nifti::read_nifti_bytes(data, "fuzz.nii") {
        let v = &img.image.volume;
        assert_eq!(v.data().len(), v.geometry().voxel_count());
    }
});
