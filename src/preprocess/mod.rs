//! Layer 1: preprocessing before registration and segmentation — denoising, MR bias-field
//! correction, intensity normalisation, resampling/cropping/reorientation and CT metal-artefact
//! reduction (issue 7).
//!
//! Every operation works on `Volume<f32>` in LPS millimetres, takes its parameters in mm and
//! HU (or the image's own units for MR), and reports progress / honours cancel through a
//! [`JobContext`]. Numerics are f32 with separable passes and rayon over slices; nothing here
//! allocates per voxel.

pub mod bias;
pub mod denoise;
pub mod filter;
pub mod mar;
pub mod metrics;
pub mod normalize;
pub mod phantom;
pub mod regrid;

use crate::jobs::{Cancelled, JobContext};

/// Why a preprocessing step refused or stopped.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum PreprocessError {
    #[error("cancelled")]
    Cancelled,
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter { name: &'static str, reason: String },
    #[error("the image has no voxels usable for {what}")]
    EmptyImage { what: &'static str },
    #[error("geometry: {0}")]
    Geometry(String),
}

impl From<Cancelled> for PreprocessError {
    fn from(_: Cancelled) -> Self {
        PreprocessError::Cancelled
    }
}

impl From<crate::volume::GeometryError> for PreprocessError {
    fn from(e: crate::volume::GeometryError) -> Self {
        PreprocessError::Geometry(e.to_string())
    }
}

impl From<crate::volume::VolumeError> for PreprocessError {
    fn from(e: crate::volume::VolumeError) -> Self {
        PreprocessError::Geometry(e.to_string())
    }
}

pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> PreprocessError {
    PreprocessError::InvalidParameter {
        name,
        reason: reason.into(),
    }
}

/// Reports `done / total` and polls cancel in one call (the ITK pattern).
pub(crate) fn step(ctx: &JobContext, done: usize, total: usize) -> Result<(), PreprocessError> {
    ctx.set_steps(done, total);
    ctx.check_cancelled()?;
    Ok(())
}
