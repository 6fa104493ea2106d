//! `fuseprint bench inference`: a model on an image (default: a brainchop model on t1_crop),
//! timed, with peak memory and, where a reference exists, Dice against it (for the brainchop
//! models: the ONNX Runtime Python reference). Run once per backend (the engine is chosen once
//! per process): `--backend tract`, then `--backend onnxruntime` with `ORT_DYLIB_PATH` set.
//! The default model on a CT: `--manifest models/ct_bone.json --input ct.nii.gz`.

use super::segment_model::override_patch;
use crate::inference::{init_backend, BackendRequest, Manifest, ModelSession, PatchMode};
use crate::jobs::JobContext;
use crate::segmentation::model::segment_with_model;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct BenchInferenceArgs {
    /// The shared data folder.
    #[arg(long, default_value = "../shared/data")]
    pub data: PathBuf,
    /// Manifest of the model to run (mindgrab or model20chan3cls from tests/models).
    #[arg(long, default_value = "tests/models/mindgrab.json")]
    pub manifest: PathBuf,
    /// Inference engine: auto, tract, onnxruntime.
    #[arg(long)]
    pub backend: Option<String>,
    /// Cubic patch size (sliding window) instead of the manifest's mode.
    #[arg(long)]
    pub patch: Option<usize>,
    #[arg(long, default_value_t = 0.5)]
    pub overlap: f64,
    /// Run the whole model grid in one piece, whatever the manifest says.
    #[arg(long, conflicts_with = "patch")]
    pub whole: bool,
    /// Image to segment instead of t1_crop (NIfTI or DICOM folder).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Reference label map on the input's grid for Dice (default: the brainchop reference when
    /// the input is t1_crop; none otherwise).
    #[arg(long)]
    pub reference: Option<PathBuf>,
}

/// Peak resident memory of this process (Linux `VmHWM`), MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

pub fn run(args: &BenchInferenceArgs) -> anyhow::Result<()> {
    let request = match &args.backend {
        Some(b) => BackendRequest::parse(b)?,
        None => BackendRequest::from_env()?,
    };
    let backend = init_backend(&request)?;
    println!("backend: {}", backend.summary());
    let mut manifest = Manifest::load(&args.manifest)?;
    override_patch(&mut manifest, args.patch, args.overlap);
    if args.whole {
        manifest.patch = PatchMode::WholeVolume;
    } else if manifest.bound_memory_for(backend.kind) {
        println!("tract: whole-volume model in 128³ patches to bound memory (--whole to override)");
    }
    let dir = args.data.join("models/onnx_from_brainchop");
    let ctx = JobContext::detached();
    let input = args
        .input
        .clone()
        .unwrap_or_else(|| dir.join("t1_crop.nii.gz"));
    let image = crate::io::load_image(&input, &ctx)?;
    let reference_path = match (&args.reference, &args.input) {
        (Some(r), _) => Some(r.clone()),
        (None, Some(_)) => None,
        (None, None) => Some(dir.join(match manifest.name.as_str() {
            "model20chan3cls" => "model20chan3cls_on_t1_crop_labels.nii.gz",
            _ => "mindgrab_on_t1_crop_mask.nii.gz",
        })),
    };
    let reference = match &reference_path {
        Some(p) => Some(crate::io::nifti::read_labels(p, &ctx)?),
        None => None,
    };
    let rss_before = peak_rss_mib().unwrap_or(0.0);

    let t0 = Instant::now();
    let mut session = ModelSession::load(&manifest)?;
    let load_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let out = segment_with_model(&image.volume, &manifest, &mut session, &ctx)?;
    let run_s = t1.elapsed().as_secs_f64();
    println!(
        "{} on {} {:?} ({:?}): load {load_s:.2} s, segment {run_s:.2} s, peak RSS {:.0} MiB (before model {:.0} MiB)",
        manifest.name,
        input.display(),
        image.volume.dims(),
        manifest.patch,
        peak_rss_mib().unwrap_or(f64::NAN),
        rss_before
    );
    for label in &manifest.labels {
        let Some(reference) = &reference else {
            println!(
                "  {}: {:.1} ml",
                label.name,
                out.labels.label_volume_ml(label.value)
            );
            continue;
        };
        let (a, b) = (out.labels.volume.data(), reference.volume.data());
        let (mut both, mut na, mut nb) = (0usize, 0usize, 0usize);
        for (&x, &y) in a.iter().zip(b) {
            na += (x == label.value) as usize;
            nb += (y == label.value) as usize;
            both += (x == label.value && y == label.value) as usize;
        }
        println!(
            "  {}: dice vs reference {:.5} ({:.1} ml vs {:.1} ml)",
            label.name,
            2.0 * both as f64 / (na + nb).max(1) as f64,
            out.labels.label_volume_ml(label.value),
            reference.label_volume_ml(label.value)
        );
    }
    Ok(())
}
