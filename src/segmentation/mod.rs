//! Layer 2: segmentation. The classical half lives here (thresholds, region growing, connected
//! components, morphology in millimetres, smoothing, metrics); model inference will join it in
//! `model.rs`.
//!
//! Every tool takes voxels on a grid and returns a binary [`Mask`] on the same grid (`1` inside,
//! `0` outside), so tools compose and the caller decides how a mask becomes a label (through
//! `editing`, which applies the user's masking rules and records undo). Distances and sizes are
//! in millimetres from the grid's spacing, never in voxels.

pub mod components;
pub mod distance;
pub mod gaussian;
pub mod logical;
pub mod metrics;
pub mod morphology;
pub mod region_grow;
pub mod runs;
pub mod threshold;

use crate::volume::{LabelMap, Volume, VolumeGeometry};

/// A binary mask: `1` inside, `0` outside, on the grid of the image it was made from.
pub type Mask = Volume<u8>;

/// Why a segmentation tool refused its input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SegmentationError {
    #[error("grids differ: {what} has dims {actual:?}, expected {expected:?}")]
    GridMismatch {
        what: &'static str,
        expected: [usize; 3],
        actual: [usize; 3],
    },
    #[error("seed {0:?} lies outside the image")]
    SeedOutside([f64; 3]),
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    #[error("cancelled")]
    Cancelled,
}

impl From<crate::jobs::Cancelled> for SegmentationError {
    fn from(_: crate::jobs::Cancelled) -> Self {
        SegmentationError::Cancelled
    }
}

/// Voxel neighbourhood used by connectivity-based tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Connectivity {
    /// Face neighbours only.
    Six,
    /// Face, edge and corner neighbours (what surgeons expect of "one piece of bone").
    #[default]
    TwentySix,
}

impl Connectivity {
    /// Neighbour offsets `(di, dj, dk)`, excluding the voxel itself.
    pub fn offsets(self) -> Vec<[i64; 3]> {
        let mut out = Vec::with_capacity(26);
        for dk in -1..=1i64 {
            for dj in -1..=1i64 {
                for di in -1..=1i64 {
                    let n = di.abs() + dj.abs() + dk.abs();
                    if n == 0 || (self == Connectivity::Six && n > 1) {
                        continue;
                    }
                    out.push([di, dj, dk]);
                }
            }
        }
        out
    }
}

/// An all-zero mask on `geometry`.
pub fn empty_mask(geometry: &VolumeGeometry) -> Mask {
    Volume::filled(geometry.clone(), 0)
}

/// The voxels of `label` in `map` as a mask.
pub fn mask_of_label(map: &LabelMap, label: u16) -> Mask {
    map.volume.map(|v| u8::from(v == label))
}

/// The voxels of any non-zero label as a mask.
pub fn mask_of_foreground(map: &LabelMap) -> Mask {
    map.volume.map(|v| u8::from(v != 0))
}

/// Number of voxels set in a mask.
pub fn count(mask: &Mask) -> usize {
    use rayon::prelude::*;
    mask.data().par_iter().filter(|&&v| v != 0).count()
}

/// Volume of a mask in millilitres.
pub fn volume_ml(mask: &Mask) -> f64 {
    count(mask) as f64 * mask.geometry().voxel_volume_mm3() / 1000.0
}

pub(crate) fn check_same_grid(
    what: &'static str,
    expected: &VolumeGeometry,
    actual: &VolumeGeometry,
) -> Result<(), SegmentationError> {
    if expected.dims != actual.dims {
        return Err(SegmentationError::GridMismatch {
            what,
            expected: expected.dims,
            actual: actual.dims,
        });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod phantoms {
    //! Synthetic shapes with known answers, shared by the unit tests.
    use super::Mask;
    use crate::volume::{Volume, VolumeGeometry};

    pub fn grid(dims: [usize; 3], spacing_mm: [f64; 3]) -> VolumeGeometry {
        VolumeGeometry::axis_aligned(dims, spacing_mm, [0.0; 3]).expect("valid test grid")
    }

    /// Voxels whose centre lies within `radius_mm` of `centre_mm` (in grid millimetres).
    pub fn sphere(g: &VolumeGeometry, centre_mm: [f64; 3], radius_mm: f64) -> Mask {
        let s = g.spacing_mm;
        Volume::from_fn(g.clone(), |[i, j, k]| {
            let d2 = (i as f64 * s[0] - centre_mm[0]).powi(2)
                + (j as f64 * s[1] - centre_mm[1]).powi(2)
                + (k as f64 * s[2] - centre_mm[2]).powi(2);
            u8::from(d2 <= radius_mm * radius_mm)
        })
    }
}
