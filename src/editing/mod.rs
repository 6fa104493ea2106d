//! Layer 1: hand-editing of label maps, headless (no UI types): brush and eraser on a slice or
//! in 3D, fill-in-slice, scissors, fill between slices, applying a tool's mask, and bounded
//! undo/redo of whole gestures.
//!
//! Every change goes through a [`Gesture`], which enforces the user's [`EditMask`] (Slicer's
//! "editable area", "editable intensity range" and "modify other segments") and label locks,
//! and records what changed as a compressed [`EditDelta`] for the [`UndoHistory`].
//! Positions are world LPS millimetres (`Point3<f64>`) or voxel indices of the label map's grid.

pub mod brush;
pub mod fill;
pub mod gesture;
pub mod history;
pub mod interpolate;
pub mod mask;
pub mod profile;
pub mod scissors;

pub use gesture::{apply_mask, Gesture};
pub use history::{EditDelta, UndoHistory, DEFAULT_UNDO_BUDGET_BYTES};
pub use mask::{EditMask, PaintValue};
pub use profile::{PrintProfile, SegmentationDocument};

use crate::volume::VolumeGeometry;
use nalgebra::Point3;

/// Which slice plane of the label map's own grid a 2D tool works in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SliceOrientation {
    /// `k` fixed (the `i`–`j` plane).
    Axial,
    /// `j` fixed (the `i`–`k` plane).
    Coronal,
    /// `i` fixed (the `j`–`k` plane).
    Sagittal,
}

impl SliceOrientation {
    /// The voxel axis held fixed, then the two in-plane axes.
    pub fn axes(self) -> (usize, usize, usize) {
        match self {
            SliceOrientation::Axial => (2, 0, 1),
            SliceOrientation::Coronal => (1, 0, 2),
            SliceOrientation::Sagittal => (0, 1, 2),
        }
    }

    pub fn fixed_axis(self) -> usize {
        self.axes().0
    }
}

/// Why an edit was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EditError {
    #[error("the intensity image has dims {image:?} but the label map has {labels:?}; resample it onto the label grid first")]
    IntensityGridMismatch {
        image: [usize; 3],
        labels: [usize; 3],
    },
    #[error("the mask has dims {mask:?} but the label map has {labels:?}")]
    MaskGridMismatch {
        mask: [usize; 3],
        labels: [usize; 3],
    },
    #[error("the edit was recorded on a {delta:?} grid but the label map is {labels:?}")]
    DeltaGridMismatch {
        delta: [usize; 3],
        labels: [usize; 3],
    },
    #[error("undo data is corrupt: {0}")]
    CorruptDelta(String),
    #[error("position {0:?} lies outside the label map")]
    OutsideGrid([f64; 3]),
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
}

/// Continuous voxel position of a world point on `geometry`.
pub(crate) fn voxel_of(geometry: &VolumeGeometry, pos_in_world: &Point3<f64>) -> [f64; 3] {
    geometry.voxel_from_world_point(*pos_in_world)
}

/// Nearest voxel index of a world point, if inside the grid.
pub fn nearest_voxel(
    geometry: &VolumeGeometry,
    pos_in_world: &Point3<f64>,
) -> Result<[usize; 3], EditError> {
    let p = voxel_of(geometry, pos_in_world).map(|c| c.round() as i64);
    if geometry.contains_index(p[0], p[1], p[2]) {
        Ok(p.map(|c| c as usize))
    } else {
        Err(EditError::OutsideGrid([
            pos_in_world.x,
            pos_in_world.y,
            pos_in_world.z,
        ]))
    }
}

#[cfg(test)]
pub(crate) mod phantoms {
    use crate::volume::{LabelInfo, LabelMap, LabelTable, Rgba, VolumeGeometry};

    /// An empty map with labels 1 ("bone") and 2 ("vessel") in its table.
    pub fn empty_map(dims: [usize; 3], spacing_mm: [f64; 3]) -> LabelMap {
        let g = VolumeGeometry::axis_aligned(dims, spacing_mm, [0.0; 3]).expect("valid test grid");
        let mut map = LabelMap::empty(g);
        map.table = LabelTable::new();
        map.table
            .insert(LabelInfo::new(1, "bone", Rgba::rgb(240, 230, 200)));
        map.table
            .insert(LabelInfo::new(2, "vessel", Rgba::rgb(200, 30, 30)));
        map
    }

    pub fn count(map: &LabelMap, label: u16) -> usize {
        map.volume.data().iter().filter(|&&v| v == label).count()
    }
}
