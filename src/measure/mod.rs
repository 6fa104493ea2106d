//! Layer 1: measurements on volumes and label maps, in world LPS millimetres.
//!
//! Pure functions of their inputs (no files, no UI): distance between two points, angle at a
//! vertex, intensity (HU) statistics inside a region, and label volumes in millilitres.
//! [`Measurement`] is the plain-data form a project stores and the UI lists.
//!
//! Partial voxels: a voxel belongs to a region when its **centre** lies inside it (a sphere
//! or box in world millimetres, or a label's voxel nearest to that centre). Volumes are
//! `voxel count × voxel volume` (the parallelepiped spanned by the spacing and direction, so
//! an oblique or sheared grid measures the same as an axis-aligned one). For a sphere of
//! radius `r` the centre rule's error is unbiased and shrinks with the voxel size: about
//! ±`3 · spacing / r` relative for a single sphere, far less on average.

mod region;

pub use region::{region_stats, Region, RegionStats};

use crate::volume::LabelMap;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MeasureError {
    #[error("an angle needs two arms of non-zero length (a point coincides with the vertex)")]
    DegenerateAngle,
    #[error("{0} is not a finite position in millimetres")]
    BadPoint(String),
    #[error("the region is empty: {0}")]
    EmptyRegion(String),
    #[error("the region is invalid: {0}")]
    BadRegion(String),
}

fn check_point(p: [f64; 3]) -> Result<(), MeasureError> {
    if p.iter().all(|v| v.is_finite()) {
        Ok(())
    } else {
        Err(MeasureError::BadPoint(format!("{p:?}")))
    }
}

fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn norm(v: [f64; 3]) -> f64 {
    (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt()
}

/// Straight-line distance between two world points, millimetres.
pub fn distance_mm(a: [f64; 3], b: [f64; 3]) -> Result<f64, MeasureError> {
    check_point(a)?;
    check_point(b)?;
    Ok(norm(sub(a, b)))
}

/// The angle at `vertex` between the arms to `a` and `c`, degrees in [0, 180].
pub fn angle_deg(a: [f64; 3], vertex: [f64; 3], c: [f64; 3]) -> Result<f64, MeasureError> {
    for p in [a, vertex, c] {
        check_point(p)?;
    }
    let (u, v) = (sub(a, vertex), sub(c, vertex));
    let (nu, nv) = (norm(u), norm(v));
    if nu < 1e-9 || nv < 1e-9 {
        return Err(MeasureError::DegenerateAngle);
    }
    // atan2 of |u×v| and u·v stays accurate near 0° and 180°, where acos loses digits.
    let cross = [
        u[1] * v[2] - u[2] * v[1],
        u[2] * v[0] - u[0] * v[2],
        u[0] * v[1] - u[1] * v[0],
    ];
    let dot = u[0] * v[0] + u[1] * v[1] + u[2] * v[2];
    Ok(norm(cross).atan2(dot).to_degrees())
}

/// One row of a label-volume table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelVolume {
    pub value: u16,
    pub name: String,
    pub voxel_count: u64,
    pub volume_ml: f64,
}

/// Volume of every label present (and every label of the table, at 0 ml when empty),
/// sorted by value: voxel count × voxel volume.
pub fn label_volumes(map: &LabelMap) -> Vec<LabelVolume> {
    let histogram = map.histogram();
    let voxel_ml = map.geometry().voxel_volume_mm3() / 1000.0;
    let mut values: Vec<u16> = map.table.iter().map(|l| l.value).collect();
    values.extend(map.values_present());
    values.sort_unstable();
    values.dedup();
    values
        .into_iter()
        .map(|value| {
            let voxel_count = histogram.get(value as usize).copied().unwrap_or(0);
            LabelVolume {
                value,
                name: map
                    .table
                    .get(value)
                    .map(|l| l.name.clone())
                    .unwrap_or_else(|| format!("Label {value}")),
                voxel_count,
                volume_ml: voxel_count as f64 * voxel_ml,
            }
        })
        .collect()
}

/// What a stored measurement measures. Volumes and label maps are referred to by their
/// position in the project's lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MeasurementKind {
    Distance {
        a_mm: [f64; 3],
        b_mm: [f64; 3],
    },
    Angle {
        a_mm: [f64; 3],
        vertex_mm: [f64; 3],
        c_mm: [f64; 3],
    },
    /// Intensity statistics of `volume` inside `region` (a label region reads `label_map`).
    RegionStats {
        volume: usize,
        region: Region,
        label_map: Option<usize>,
    },
    LabelVolume {
        label_map: usize,
        value: u16,
    },
}

/// A named measurement as the user placed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub name: String,
    #[serde(flatten)]
    pub kind: MeasurementKind,
}

impl Measurement {
    /// Distance and angle, which need no image: `"42.1 mm"`, `"87.3°"`; `None` for the others.
    pub fn geometric_value_text(&self) -> Option<String> {
        match &self.kind {
            MeasurementKind::Distance { a_mm, b_mm } => {
                distance_mm(*a_mm, *b_mm).ok().map(|d| format!("{d:.1} mm"))
            }
            MeasurementKind::Angle {
                a_mm,
                vertex_mm,
                c_mm,
            } => angle_deg(*a_mm, *vertex_mm, *c_mm)
                .ok()
                .map(|a| format!("{a:.1}°")),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::{LabelInfo, LabelTable, Rgba, Volume, VolumeGeometry};
    use nalgebra::Rotation3;

    #[test]
    fn distance_and_angle_on_known_triangles() {
        assert_eq!(distance_mm([1.0, 2.0, 3.0], [4.0, 6.0, 3.0]), Ok(5.0));
        let right = angle_deg([10.0, 0.0, 0.0], [0.0; 3], [0.0, 0.0, -3.0]).expect("angle");
        assert!((right - 90.0).abs() < 1e-12, "{right}");
        let sixty = angle_deg([1.0, 0.0, 0.0], [0.0; 3], [0.5, 3f64.sqrt() / 2.0, 0.0]);
        assert!((sixty.expect("angle") - 60.0).abs() < 1e-12);
        // Nearly straight: acos would lose this; atan2 keeps it.
        let tiny = angle_deg([-1.0, 0.0, 0.0], [0.0; 3], [1.0, 1e-7, 0.0]).expect("angle");
        assert!(
            (tiny - (180.0 - 1e-7f64.to_degrees())).abs() < 1e-9,
            "{tiny}"
        );
        assert_eq!(
            angle_deg([0.0; 3], [0.0; 3], [1.0, 0.0, 0.0]),
            Err(MeasureError::DegenerateAngle)
        );
        assert!(distance_mm([f64::NAN, 0.0, 0.0], [0.0; 3]).is_err());
    }

    #[test]
    fn label_volume_uses_spacing_and_ignores_obliquity() {
        let spacing = [0.5, 0.8, 2.0];
        let fill = |g: VolumeGeometry| {
            let v = Volume::from_fn(g, |[i, j, k]| match (i < 5, j < 4, k < 3) {
                (true, true, true) => 1u16,
                (false, _, _) if k == 0 => 2,
                _ => 0,
            });
            let mut table = LabelTable::new();
            table.insert(LabelInfo::new(1, "bone", Rgba::rgb(255, 255, 255)));
            table.insert(LabelInfo::new(9, "unused", Rgba::rgb(1, 2, 3)));
            LabelMap::new(v, table)
        };
        let straight =
            fill(VolumeGeometry::axis_aligned([10, 10, 10], spacing, [0.0; 3]).expect("g"));
        let rot = Rotation3::from_euler_angles(0.4, -0.7, 1.1).into_inner();
        let oblique =
            fill(VolumeGeometry::new([10, 10, 10], spacing, [5.0, -3.0, 8.0], rot).expect("g"));
        let voxel_ml = 0.5 * 0.8 * 2.0 / 1000.0;
        for rows in [label_volumes(&straight), label_volumes(&oblique)] {
            let by_value = |v: u16| rows.iter().find(|r| r.value == v).expect("row");
            assert_eq!(by_value(1).voxel_count, 5 * 4 * 3);
            assert!((by_value(1).volume_ml - 60.0 * voxel_ml).abs() < 1e-12);
            assert_eq!(by_value(1).name, "bone");
            assert_eq!(by_value(2).voxel_count, 5 * 10);
            assert_eq!(by_value(2).name, "Label 2");
            assert_eq!(by_value(9).voxel_count, 0);
            assert_eq!(rows.len(), 3);
        }
    }

    #[test]
    fn measurements_serialise_with_their_kind() {
        let m = Measurement {
            name: "width".into(),
            kind: MeasurementKind::Distance {
                a_mm: [0.0; 3],
                b_mm: [3.0, 4.0, 0.0],
            },
        };
        let json = serde_json::to_string(&m).expect("json");
        assert!(json.contains("\"kind\":\"distance\""), "{json}");
        let back: Measurement = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, m);
        assert_eq!(m.geometric_value_text().as_deref(), Some("5.0 mm"));
    }
}
