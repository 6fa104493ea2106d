//! `fuseprint convert IN OUT.nii.gz [--series N|UID] [--force]`.

use super::progress::run_with_progress;
use crate::io::{self, FileKind, IoError, LoadedImage};
use crate::jobs::JobContext;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct ConvertArgs {
    /// A DICOM folder or file, or a NIfTI file.
    pub input: PathBuf,
    /// Output .nii or .nii.gz.
    pub output: PathBuf,
    /// Which series of a DICOM folder: its index in `fuseprint info` or its SeriesInstanceUID.
    #[arg(long)]
    pub series: Option<String>,
    /// Replace OUT if it exists.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: ConvertArgs) -> anyhow::Result<()> {
    let name = args
        .output
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if !(name.ends_with(".nii") || name.ends_with(".nii.gz")) {
        anyhow::bail!(
            "output must end in .nii or .nii.gz: {}",
            args.output.display()
        );
    }
    // Refuse before doing the (possibly long) load; the write re-checks atomically.
    if !args.force && args.output.exists() {
        return Err(IoError::WouldOverwrite { path: args.output }.into());
    }
    let (input, output, series, force) = (args.input, args.output, args.series, args.force);
    let (image, note) = run_with_progress("convert", move |ctx| {
        let (image, note) = load_for_convert(&input, series.as_deref(), &ctx.sub(0.0, 0.8))?;
        ctx.set_stage("Writing NIfTI");
        io::save_nifti(&output, &image, force)?;
        Ok::<_, IoError>((image, note))
    })?;
    if let Some(note) = note {
        eprintln!("note: {note}");
    }
    for w in &image.meta.warnings {
        eprintln!("warning: {w}");
    }
    let g = image.volume.geometry();
    println!(
        "wrote {}x{}x{} voxels, spacing {:.3}x{:.3}x{:.3} mm",
        g.dims[0], g.dims[1], g.dims[2], g.spacing_mm[0], g.spacing_mm[1], g.spacing_mm[2]
    );
    Ok(())
}

/// Loads the image to convert, and a note when a series was picked for the user.
pub fn load_for_convert(
    input: &Path,
    series: Option<&str>,
    ctx: &JobContext,
) -> Result<(LoadedImage, Option<String>), IoError> {
    match io::detect_kind(input)? {
        FileKind::Nifti => Ok((io::nifti::read_nifti(input, ctx)?.image, None)),
        FileKind::Dicom => io::load_dicom_series(input, series, ctx),
    }
}
