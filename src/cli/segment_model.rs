//! `fuseprint segment model --model PATH [--manifest FILE] IN -o labels.nii.gz [--confidence conf.nii.gz]`

use crate::inference::{
    init_backend, BackendRequest, Manifest, ModelSession, PatchMode, TRACT_PATCH,
};
use crate::jobs::JobContext;
use crate::segmentation::model::segment_with_model;
use anyhow::Context;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct SegmentModelArgs {
    /// The model: an `.onnx` file (its manifest is the `.json` beside it) or a manifest `.json`.
    #[arg(long)]
    pub model: PathBuf,
    /// A manifest to use instead of the one beside the model.
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// Input image: NIfTI file or DICOM folder.
    pub input: PathBuf,
    /// Output label map (NIfTI).
    #[arg(short = 'o', long)]
    pub output: PathBuf,
    /// Also write the per-voxel probability of the chosen label (NIfTI, float).
    #[arg(long)]
    pub confidence: Option<PathBuf>,
    /// Also write the normalised entropy of the class probabilities (NIfTI, 0 certain .. 1 uniform).
    #[arg(long)]
    pub entropy: Option<PathBuf>,
    /// Inference engine: auto (ONNX Runtime when one loads, else tract), tract, onnxruntime.
    #[arg(long)]
    pub backend: Option<String>,
    /// Run in cubic patches of this size instead of what the manifest says (bounds memory).
    #[arg(long)]
    pub patch: Option<usize>,
    /// Overlap between patches when `--patch` is given.
    #[arg(long, default_value_t = 0.5)]
    pub overlap: f64,
    /// Replace existing output files.
    #[arg(long)]
    pub overwrite: bool,
}

/// Finds the manifest for `--model` / `--manifest` and points it at the right `.onnx`.
pub fn resolve_manifest(model: &Path, manifest: Option<&Path>) -> anyhow::Result<Manifest> {
    let is_json = model
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    Ok(match (manifest, is_json) {
        (Some(m), _) => {
            let mut manifest = Manifest::load(m)?;
            if !is_json {
                manifest.model_file = std::path::absolute(model).unwrap_or(model.to_path_buf());
            }
            manifest
        }
        (None, true) => Manifest::load(model)?,
        (None, false) => Manifest::for_model(model)?,
    })
}

/// Applies `--patch`/`--overlap` to a manifest.
pub fn override_patch(manifest: &mut Manifest, patch: Option<usize>, overlap: f64) {
    if let Some(p) = patch {
        manifest.patch = PatchMode::SlidingWindow {
            size: [p; 3],
            overlap,
        };
    }
}

pub fn run(args: &SegmentModelArgs) -> anyhow::Result<()> {
    let request = match &args.backend {
        Some(b) => BackendRequest::parse(b)?,
        None => BackendRequest::from_env()?,
    };
    let backend = init_backend(&request)?;
    eprintln!("backend: {}", backend.summary());
    if let Some(reason) = &backend.fallback_reason {
        eprintln!("  (ONNX Runtime not used: {reason})");
    }
    let mut manifest = resolve_manifest(&args.model, args.manifest.as_deref())?;
    override_patch(&mut manifest, args.patch, args.overlap);
    if manifest.bound_memory_for(backend.kind) {
        eprintln!(
            "  tract: running whole-volume model {} in {TRACT_PATCH}³ patches to bound memory (--patch to change)",
            manifest.name
        );
    }
    for path in [
        Some(&args.output),
        args.confidence.as_ref(),
        args.entropy.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        if path.exists() && !args.overwrite {
            anyhow::bail!(
                "output exists (pass --overwrite to replace it) ({})",
                path.display()
            );
        }
    }

    let ctx = JobContext::detached();
    let image = crate::io::load_image(&args.input, &ctx)?;
    let mut session = ModelSession::load(&manifest)?;
    let started = std::time::Instant::now();
    let result = segment_with_model(&image.volume, &manifest, &mut session, &ctx)
        .with_context(|| format!("segmenting {}", args.input.display()))?;
    eprintln!(
        "{}: segmented in {:.1} s",
        manifest.name,
        started.elapsed().as_secs_f64()
    );
    for label in result.labels.table.iter() {
        println!(
            "{:>5}  {:<24} {:>10.1} ml",
            label.value,
            label.name,
            result.labels.label_volume_ml(label.value)
        );
    }
    crate::io::nifti::write_labels(&args.output, &result.labels, args.overwrite)?;
    if let Some(path) = &args.confidence {
        crate::io::save_nifti(path, &result.max_probability, args.overwrite)?;
    }
    if let Some(path) = &args.entropy {
        crate::io::save_nifti(path, &result.entropy, args.overwrite)?;
    }
    Ok(())
}
