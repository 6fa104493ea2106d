//! What a load job does: read a path (or build the sample) into volumes ready for the document.
//! Runs on the job system, never on the UI thread.

use crate::document::{NewVolume, SeriesChoice, SeriesRow};
use crate::io::dicom::{self, DicomScan};
use crate::io::{self, FileKind, IoError};
use crate::jobs::{JobContext, JobError};
use crate::sample::{self, SampleStudy};
use std::path::Path;

/// A finished load: volumes to add, or a folder whose series the user must choose between.
pub enum LoadOutcome {
    /// Volumes to add, and optionally where to put the crosshair (world LPS mm).
    Volumes(Vec<NewVolume>, Option<[f64; 3]>),
    ChooseSeries(PendingScan),
}

/// A scanned DICOM folder kept by the app while the series table is shown.
pub struct PendingScan {
    pub scan: DicomScan,
    pub choice: SeriesChoice,
}

pub fn load_sample(ctx: &JobContext) -> Result<LoadOutcome, JobError> {
    ctx.set_stage("generating phantom");
    let study = SampleStudy::generate();
    ctx.check_cancelled()?;
    ctx.set_progress(0.8);
    ctx.set_stage("window statistics");
    // Open on the lesion: the slices through it also cross the vessel and the skull, so the
    // first picture shows every tissue of the phantom.
    let focus = Some(sample::LESION_CENTER_MM);
    Ok(LoadOutcome::Volumes(
        vec![NewVolume::prepare(study.ct), NewVolume::prepare(study.mr)],
        focus,
    ))
}

/// A NIfTI file, a DICOM file or a DICOM folder. A folder with one series loads it; with
/// several, the user picks from the series table (the likely primary one is suggested).
pub fn load_path(path: &Path, ctx: &JobContext) -> Result<LoadOutcome, JobError> {
    ctx.check_cancelled()?;
    match io::detect_kind(path).map_err(job_error)? {
        FileKind::Nifti => {
            ctx.set_stage("reading NIfTI");
            let image = io::load_image(path, &ctx.sub(0.0, 0.9)).map_err(job_error)?;
            ctx.set_stage("window statistics");
            Ok(LoadOutcome::Volumes(vec![NewVolume::prepare(image)], None))
        }
        FileKind::Dicom => {
            let scan = dicom::scan(path, &ctx.sub(0.0, 0.3)).map_err(job_error)?;
            match scan.series.len() {
                0 => Err(JobError::Failed(format!(
                    "no DICOM image series found ({} files skipped): {}",
                    scan.skipped.len(),
                    path.display()
                ))),
                1 => load_one_series(&scan, 0, &ctx.sub(0.3, 1.0)),
                _ => {
                    let choice = series_choice(&scan);
                    Ok(LoadOutcome::ChooseSeries(PendingScan { scan, choice }))
                }
            }
        }
    }
}

/// Loads the series the user picked from the table.
pub fn load_scanned_series(
    scan: PendingScan,
    index: usize,
    ctx: &JobContext,
) -> Result<LoadOutcome, JobError> {
    load_one_series(&scan.scan, index, ctx)
}

fn load_one_series(
    scan: &DicomScan,
    index: usize,
    ctx: &JobContext,
) -> Result<LoadOutcome, JobError> {
    let image = dicom::load_series(scan, index, &ctx.sub(0.0, 0.9)).map_err(job_error)?;
    ctx.set_stage("window statistics");
    Ok(LoadOutcome::Volumes(vec![NewVolume::prepare(image)], None))
}

fn series_choice(scan: &DicomScan) -> SeriesChoice {
    SeriesChoice {
        source: scan.root.display().to_string(),
        rows: scan
            .series
            .iter()
            .map(|s| SeriesRow {
                number: s.number.map(|n| n.to_string()).unwrap_or_default(),
                modality: s.modality.code().to_string(),
                description: s.description.clone(),
                dims: s.dims,
                spacing_mm: s.spacing_mm,
                slice_count: s.slice_count,
                transfer_syntax: s.transfer_syntax.clone(),
                warnings: series_notes(s),
            })
            .collect(),
        suggested: dicom::primary_series(scan).map(|(index, _)| index),
    }
}

/// The reader's warnings plus why a series cannot or should not be opened.
fn series_notes(s: &dicom::SeriesInfo) -> Vec<String> {
    let mut notes = s.warnings.clone();
    if s.is_localizer {
        notes.push("localizer".to_string());
    }
    match &s.problem {
        Some(dicom::Problem::Syntax { reason, .. }) => {
            notes.push(format!("cannot decode: {reason}"))
        }
        Some(dicom::Problem::Image(reason)) => notes.push(format!("cannot load: {reason}")),
        None => {}
    }
    notes
}

fn job_error(e: IoError) -> JobError {
    match e {
        IoError::Cancelled => JobError::Cancelled,
        other => JobError::Failed(other.to_string()),
    }
}
