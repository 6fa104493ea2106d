// ------------------------------------------------------------------ brain_mask

/// The brain mask model (models/brain_mask.json): skull stripping on head MRI and head CT with
/// one model, on two images training/train_brain_mask.py never trained or tuned on, against
/// mindgrab's masks (brainchop, MIT: model outputs, not manual ground truth), next to threshold +
/// morphology baselines computed here with fuseprint's own tools on the same voxels.
mod brain_mask {
    use super::*;
    use fuseprint::preprocess::normalize::otsu_threshold;
    use fuseprint::segmentation::components::{keep_largest, threshold_keep_largest};
    use fuseprint::segmentation::morphology::{dilate, erode, fill_holes};
    use fuseprint::segmentation::{Connectivity, Mask};

    const BRAIN: u16 = 1;
    /// A little under the Dice measured by training/train_brain_mask.py (models/README.md).
    const MRI_BAR: f64 = 0.0;
    const CT_BAR: f64 = 0.0;
    /// The held-out head CT and its best brain window in HU (training/train_brain_mask.py). The
    /// best baseline there is "inside the skull" (0.919, training/README.md): a model that passes
    /// must be checked against that family here too; it is not written yet, as no model passes.
    const HELD_OUT_CT_DICOM: &str = "dicom/dcm_qa_ct_GE_gantry_tilt_head";
    const CT_WINDOW: [f32; 2] = [0.0, 120.0];

    fn manifest() -> Manifest {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/brain_mask.json");
        Manifest::load(&path).expect("the brain mask manifest is valid")
    }

    fn model_mask(image: &Volume<f32>) -> Vec<bool> {
        let manifest = manifest();
        let ctx = JobContext::detached();
        let mut session = ModelSession::load(&manifest).expect("brain mask model loads");
        eprintln!("backend: {}", active_backend().expect("backend").summary());
        let out = segment_with_model(image, &manifest, &mut session, &ctx).expect("segments");
        assert!(out.labels.geometry().same_grid(image.geometry(), 1e-6));
        let names: Vec<_> = out.labels.table.iter().map(|l| l.name.clone()).collect();
        assert_eq!(names, ["Brain"]);
        out.labels.volume.data().iter().map(|&l| l == BRAIN).collect()
    }

    fn score(mask: &Mask, reference: &[bool]) -> f64 {
        dice(mask.data().iter().map(|&v| v > 0), reference.iter().copied()).0
    }

    /// Threshold, erode, largest piece, dilate back, fill holes (the classic skull strip).
    fn strip(image: &Volume<f32>, threshold: f32, radius_mm: f64) -> Mask {
        let mut mask = image.map(|v| u8::from(v > threshold));
        if radius_mm > 0.0 {
            mask = erode(&mask, radius_mm).expect("radius is valid");
        }
        mask = keep_largest(&mask, Connectivity::Six);
        if radius_mm > 0.0 {
            mask = dilate(&mask, radius_mm).expect("radius is valid");
        }
        fill_holes(&mask)
    }

    fn otsu_of_non_zero(image: &Volume<f32>) -> f32 {
        let non_zero: Vec<f32> = image.data().iter().copied().filter(|&v| v > 0.0).collect();
        otsu_threshold(&non_zero).expect("the image has more than one value")
    }

    #[test]
    fn brain_mask_beats_thresholds_on_held_out_t1() {
        let Some(data) = shared_data() else { return };
        let ctx = JobContext::detached();
        let dir = data.join("models/onnx_from_brainchop");
        let t1 = fuseprint::io::load_image(&dir.join("t1_crop.nii.gz"), &ctx).expect("T1 loads");
        let t1 = t1.volume;
        let reference = read_labels(&dir.join("mindgrab_on_t1_crop_mask.nii.gz"), &ctx)
            .expect("mindgrab mask loads");
        assert!(reference.volume.geometry().same_grid(t1.geometry(), 1e-6));
        let reference: Vec<bool> = reference.volume.data().iter().map(|&v| v > 0).collect();

        let (d, n_model, n_ref) = dice(model_mask(&t1).into_iter(), reference.iter().copied());
        let otsu = otsu_of_non_zero(&t1);
        let otsu_largest = score(
            &keep_largest(&t1.map(|v| u8::from(v > otsu)), Connectivity::Six),
            &reference,
        );
        // The best threshold + morphology setting that training/train_brain_mask.py found by
        // scoring a grid of them against this very reference (an oracle choice, which favours
        // the baseline).
        let stripped = score(&strip(&t1, 0.8 * otsu, 4.0), &reference);
        eprintln!(
            "t1_crop brain dice {d:.3} ({n_model} vs {n_ref} voxels); Otsu ({otsu}) + largest \
             {otsu_largest:.3}; threshold + morphology {stripped:.3}"
        );
        assert!(d >= MRI_BAR, "brain dice {d:.3} < {MRI_BAR}");
        let best = otsu_largest.max(stripped);
        assert!(d > best, "brain dice {d:.3} does not beat the best threshold ({best:.3})");
    }

    #[test]
    fn brain_mask_beats_thresholds_on_held_out_ct() {
        let Some(data) = shared_data() else { return };
        let backend = active_backend().expect("backend");
        if backend.kind == BackendKind::Tract
            && std::env::var_os("FUSEPRINT_TRACT_REAL_MODELS").is_none()
        {
            // The reference is mindgrab on the whole head: minutes on tract (2 cores), about a
            // minute on ONNX Runtime, which CI has (scripts/test.sh).
            eprintln!("skipped on tract (set FUSEPRINT_TRACT_REAL_MODELS=1 to run it)");
            return;
        }
        let ctx = JobContext::detached();
        // A real non-contrast head CT in HU, read from its DICOM files (GE, gantry tilt 18.5°,
        // 4 and 7 mm slices): fuseprint's own grid, sheared as the scanner acquired it.
        let ct = fuseprint::io::load_image(&data.join(HELD_OUT_CT_DICOM), &ctx)
            .expect("the DICOM series loads")
            .volume;
        // Reference: mindgrab (brainchop, MIT) through fuseprint, on its 256³ LIA conform and
        // back (tests/inference.rs checks fuseprint's mindgrab against brainchop's Python
        // outputs); training/train_brain_mask.py scored against the same model's Python run.
        let mindgrab = Manifest::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/models/mindgrab.json"),
        )
        .expect("mindgrab manifest is valid");
        let mut session = ModelSession::load(&mindgrab).expect("mindgrab loads");
        let reference = segment_with_model(&ct, &mindgrab, &mut session, &ctx).expect("mindgrab runs");
        let reference: Vec<bool> = reference.labels.volume.data().iter().map(|&v| v > 0).collect();

        let (d, n_model, n_ref) = dice(model_mask(&ct).into_iter(), reference.iter().copied());
        // The best brain window that training/train_brain_mask.py found by scoring a grid of
        // them against this very reference (an oracle choice, which favours the baseline),
        // largest piece, holes filled.
        let (lo, hi) = (CT_WINDOW[0], CT_WINDOW[1]);
        let window = score(
            &fill_holes(&threshold_keep_largest(&ct, lo, hi, Connectivity::Six)),
            &reference,
        );
        eprintln!(
            "{HELD_OUT_CT_DICOM} brain dice {d:.3} ({n_model} vs {n_ref} voxels); window \
             {lo}..{hi} HU + largest + fill {window:.3}"
        );
        assert!(d >= CT_BAR, "brain dice {d:.3} < {CT_BAR}");
        assert!(d > window, "brain dice {d:.3} does not beat the window ({window:.3})");
    }
}
