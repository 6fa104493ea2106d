//! What a load job does: read a path (or build the sample) into volumes ready for the document.
//! Runs on the job system, never on the UI thread.

use crate::document::{NewVolume, SeriesChoice};
use crate::jobs::{JobContext, JobError};
use crate::sample::SampleStudy;
use std::path::Path;

/// A finished load: volumes to add, or a folder whose series the user must choose between.
pub enum LoadOutcome {
    Volumes(Vec<NewVolume>),
    ChooseSeries(PendingScan),
}

/// A scanned DICOM folder kept by the app while the series table is shown.
pub struct PendingScan {
    pub choice: SeriesChoice,
}

pub fn load_sample(ctx: &JobContext) -> Result<LoadOutcome, JobError> {
    ctx.set_stage("generating phantom");
    let study = SampleStudy::generate();
    ctx.check_cancelled()?;
    ctx.set_progress(0.8);
    ctx.set_stage("window statistics");
    Ok(LoadOutcome::Volumes(vec![
        NewVolume::prepare(study.ct),
        NewVolume::prepare(study.mr),
    ]))
}

pub fn load_path(path: &Path, ctx: &JobContext) -> Result<LoadOutcome, JobError> {
    ctx.check_cancelled()?;
    Err(JobError::Failed(format!(
        "reading images is not part of this build yet (NIfTI and DICOM readers pending): {}",
        path.display()
    )))
}

pub fn load_scanned_series(
    scan: PendingScan,
    index: usize,
    ctx: &JobContext,
) -> Result<LoadOutcome, JobError> {
    ctx.check_cancelled()?;
    Err(JobError::Failed(format!(
        "series {} of {}: the DICOM reader is not part of this build yet",
        index + 1,
        scan.choice.source
    )))
}
