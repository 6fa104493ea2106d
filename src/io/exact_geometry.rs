//! A voxel grid in JSON with full `f64` precision, shared by the label sidecar and the project
//! file. Numbers are Rust's shortest round-trip decimal strings because JSON number parsing is
//! not guaranteed to be correctly rounded everywhere.

use nalgebra::Matrix3;
use serde::{Deserialize, Serialize};

use crate::volume::VolumeGeometry;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ExactGeometry {
    pub(crate) dims: [usize; 3],
    spacing_mm: [String; 3],
    origin_mm: [String; 3],
    /// Row-major 3×3: `direction[r][c]`; columns are the voxel axes' world directions.
    direction: [[String; 3]; 3],
}

impl ExactGeometry {
    pub(crate) fn of(g: &VolumeGeometry) -> Self {
        let text = |v: f64| format!("{v:?}");
        let d = &g.direction;
        Self {
            dims: g.dims,
            spacing_mm: g.spacing_mm.map(text),
            origin_mm: g.origin_mm.map(text),
            direction: [0, 1, 2].map(|r| [0, 1, 2].map(|c| text(d[(r, c)]))),
        }
    }

    /// The grid, or why the stored numbers do not make one.
    pub(crate) fn geometry(&self) -> Result<VolumeGeometry, String> {
        let num = |s: &String| {
            s.parse::<f64>()
                .map_err(|_| format!("{s:?} is not a number"))
        };
        let three = |a: &[String; 3]| -> Result<[f64; 3], String> {
            Ok([num(&a[0])?, num(&a[1])?, num(&a[2])?])
        };
        let spacing_mm = three(&self.spacing_mm)?;
        let origin_mm = three(&self.origin_mm)?;
        let rows = [
            three(&self.direction[0])?,
            three(&self.direction[1])?,
            three(&self.direction[2])?,
        ];
        let direction = Matrix3::from_fn(|r, c| rows[r][c]);
        // Validate through `new`, but keep the stored cosines bit for bit (`new` renormalises
        // them, which can move the last bit).
        VolumeGeometry::new(self.dims, spacing_mm, origin_mm, direction)
            .map_err(|e| e.to_string())?;
        Ok(VolumeGeometry {
            dims: self.dims,
            spacing_mm,
            origin_mm,
            direction,
        })
    }
}
