//! Real ONNX models through fuseprint's inference path, against references made by ONNX Runtime
//! in Python (../shared/data/models/onnx_from_brainchop, see its MANIFEST section).
//!
//! The engine is the one `FUSEPRINT_BACKEND` selects (default: ONNX Runtime when one loads,
//! else tract), so the same tests check either backend.

mod common;
use common::shared_data;

use fuseprint::inference::{active_backend, BackendKind, InferenceError, Manifest, ModelSession};
use fuseprint::io::nifti::read_labels;
use fuseprint::jobs::JobContext;
use fuseprint::segmentation::model::{segment_with_model, ModelSegmentationError};
use std::path::Path;

fn test_manifest(name: &str) -> Manifest {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/models")
        .join(format!("{name}.json"));
    Manifest::load(&path).expect("test manifest is valid")
}

fn dice(a: &[u16], b: &[u16], label: u16) -> f64 {
    let (mut both, mut na, mut nb) = (0usize, 0usize, 0usize);
    for (&x, &y) in a.iter().zip(b) {
        let (ix, iy) = (x == label, y == label);
        na += ix as usize;
        nb += iy as usize;
        both += (ix && iy) as usize;
    }
    2.0 * both as f64 / (na + nb).max(1) as f64
}

/// Runs `model` on t1_crop and compares every label with the stored reference.
fn reproduces_reference(model: &str, reference: &str) {
    let Some(data) = shared_data() else { return };
    let dir = data.join("models/onnx_from_brainchop");
    let ctx = JobContext::detached();
    let t1 = fuseprint::io::load_image(&dir.join("t1_crop.nii.gz"), &ctx).expect("t1_crop loads");
    let expected = read_labels(&dir.join(reference), &ctx).expect("reference loads");
    let mut manifest = test_manifest(model);
    let mut session = ModelSession::load(&manifest).expect("model loads");
    let backend = active_backend().expect("backend");
    eprintln!("backend: {}", backend.summary());
    if backend.kind == BackendKind::Tract
        && std::env::var_os("FUSEPRINT_TRACT_REAL_MODELS").is_none()
    {
        // On tract (with the patched direct 3D convolution, vendor/tract-core) the whole
        // t1_crop takes minutes on 2 cores, too long for CI, so the reference comparison runs on
        // ONNX Runtime (scripts/test.sh fetches one for CI); tests/tract_conv3d.rs checks
        // mindgrab on tract on a crop.
        assert!(
            std::env::var_os("FUSEPRINT_REQUIRE_ORT").is_none(),
            "ONNX Runtime was required (FUSEPRINT_REQUIRE_ORT) but the active backend is tract: {}",
            backend.summary()
        );
        eprintln!("skipping {model}: tract backend (set ORT_DYLIB_PATH, or FUSEPRINT_TRACT_REAL_MODELS=1 to run it on tract)");
        return;
    }
    // The mode the app runs the model in on this engine: whole, or 128³ patches on tract when
    // the manifest declares no memory that fits.
    manifest.bound_memory_for(backend.kind);

    let started = std::time::Instant::now();
    let out = segment_with_model(&t1.volume, &manifest, &mut session, &ctx).expect("segments");
    eprintln!("{model}: {:.1} s", started.elapsed().as_secs_f64());

    assert!(out.labels.geometry().same_grid(t1.volume.geometry(), 1e-6));
    assert!(expected.geometry().same_grid(t1.volume.geometry(), 1e-6));
    for label in &manifest.labels {
        let d = dice(
            out.labels.volume.data(),
            expected.volume.data(),
            label.value,
        );
        eprintln!(
            "{model} {}: dice {d:.5}, {:.1} ml vs reference {:.1} ml",
            label.name,
            out.labels.label_volume_ml(label.value),
            expected.label_volume_ml(label.value)
        );
        assert!(d >= 0.99, "{model} {}: dice {d} < 0.99", label.name);
    }
    // Confidence maps are probabilities and agree with the labels' certainty.
    let (lo, hi) = out.max_probability.min_max();
    assert!(lo >= 1.0 / manifest.class_count() as f32 - 1e-4 && hi <= 1.0 + 1e-6);
    let (elo, ehi) = out.entropy.min_max();
    assert!(elo >= 0.0 && ehi <= 1.0);
}

#[test]
fn mindgrab_reproduces_the_onnxruntime_brain_mask() {
    reproduces_reference("mindgrab", "mindgrab_on_t1_crop_mask.nii.gz");
}

#[test]
fn model20chan3cls_reproduces_the_onnxruntime_tissue_labels() {
    reproduces_reference(
        "model20chan3cls",
        "model20chan3cls_on_t1_crop_labels.nii.gz",
    );
}

#[test]
fn a_manifest_naming_a_missing_output_is_refused_with_the_model_name() {
    let Some(_) = shared_data() else { return };
    let mut manifest = test_manifest("mindgrab");
    manifest.output.name = "probabilities".into();
    let err = ModelSession::load(&manifest).expect_err("no such output");
    assert!(matches!(err, InferenceError::MissingOutput { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("mindgrab") && msg.contains("logits"),
        "message names model and real outputs: {msg}"
    );
}

#[test]
fn a_model_without_manifest_gets_a_clear_error() {
    let Some(data) = shared_data() else { return };
    let onnx = data.join("models/onnx_from_brainchop/model5_gw_ae.onnx");
    let err = Manifest::for_model(&onnx).expect_err("no manifest beside it");
    let msg = err.to_string();
    assert!(
        msg.contains("model5_gw_ae.json") && msg.contains("normalisation"),
        "{msg}"
    );
}

#[test]
fn a_registration_manifest_is_not_used_for_segmentation() {
    let Some(data) = shared_data() else { return };
    let ctx = JobContext::detached();
    let t1 = fuseprint::io::load_image(
        &data.join("models/onnx_from_brainchop/t1_crop.nii.gz"),
        &ctx,
    )
    .expect("loads");
    let mut manifest = test_manifest("mindgrab");
    manifest.task = fuseprint::inference::Task::Registration;
    let mut session = ModelSession::load(&test_manifest("mindgrab")).expect("loads");
    let err =
        segment_with_model(&t1.volume, &manifest, &mut session, &ctx).expect_err("wrong task");
    assert!(matches!(
        err,
        ModelSegmentationError::NotSegmentation { .. }
    ));
}
