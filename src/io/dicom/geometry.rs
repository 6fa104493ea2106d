//! From slice positions to a volume grid in LPS millimetres.
//!
//! DICOM patient space is LPS, so ImagePositionPatient / ImageOrientationPatient give the grid
//! directly. Slices are ordered by their position projected on the slice normal (row × col),
//! never by file name or instance number; the slice step comes from those positions, never
//! from SliceThickness.
//!
//! Handling of awkward stacks (reported in `warnings`):
//! - gantry tilt (slice origins not along the normal): the `k` axis follows the line through the
//!   slice origins, giving a sheared but world-exact grid (no resampling);
//! - irregular spacing or missing slices: the stack is resampled onto a regular grid at the
//!   median step, by linear interpolation between the two neighbouring acquired slices.

use nalgebra::{Matrix3, Vector3};

/// Where output slice `k` comes from: `lower` and `upper` acquired slices, blended by `weight`
/// (0 = all `lower`). Regular stacks have `lower == upper == k`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SliceSource {
    pub lower: usize,
    pub upper: usize,
    pub weight: f32,
}

/// The grid of a stack of parallel slices.
#[derive(Debug, Clone, PartialEq)]
pub struct StackLayout {
    pub dims: [usize; 3],
    pub spacing_mm: [f64; 3],
    pub origin_mm: [f64; 3],
    /// Columns: unit LPS directions of `i`, `j`, `k` (`k` is sheared under gantry tilt).
    pub direction: Matrix3<f64>,
    /// One entry per output slice.
    pub sources: Vec<SliceSource>,
    /// Angle between the `k` axis and the slice normal, degrees.
    pub tilt_deg: f64,
    pub resampled: bool,
    pub warnings: Vec<String>,
}

/// Position of a slice along the normal of `orientation` (row × col).
pub fn slice_normal(orientation: &[f64; 6]) -> Vector3<f64> {
    let row = Vector3::new(orientation[0], orientation[1], orientation[2]);
    let col = Vector3::new(orientation[3], orientation[4], orientation[5]);
    row.cross(&col).normalize()
}

pub fn normal_position(orientation: &[f64; 6], position: &[f64; 3]) -> f64 {
    slice_normal(orientation).dot(&Vector3::from(*position))
}

/// Lays out slices that are already sorted by ascending [`normal_position`] and have distinct
/// positions. `fallback_step_mm` is used only for a single slice.
pub fn plan_stack(
    orientation: &[f64; 6],
    pixel_spacing: [f64; 2],
    rows: usize,
    cols: usize,
    positions: &[[f64; 3]],
    fallback_step_mm: f64,
) -> Result<StackLayout, String> {
    let row = Vector3::new(orientation[0], orientation[1], orientation[2]);
    let col = Vector3::new(orientation[3], orientation[4], orientation[5]);
    let normal = slice_normal(orientation);
    if !normal.iter().all(|v| v.is_finite()) || row.dot(&col).abs() > 1e-2 {
        return Err("ImageOrientationPatient row and column are not perpendicular".to_string());
    }
    // PixelSpacing is [between rows, between columns]: columns advance along i.
    let in_plane = [pixel_spacing[1], pixel_spacing[0]];
    let n = positions.len();
    if n == 0 {
        return Err("no slices".to_string());
    }
    let origin = positions[0];
    let mut warnings = Vec::new();
    if n == 1 {
        let step = if fallback_step_mm.is_finite() && fallback_step_mm > 0.0 {
            fallback_step_mm
        } else {
            1.0
        };
        return Ok(StackLayout {
            dims: [cols, rows, 1],
            spacing_mm: [in_plane[0], in_plane[1], step],
            origin_mm: origin,
            direction: Matrix3::from_columns(&[row, col, normal]),
            sources: vec![SliceSource {
                lower: 0,
                upper: 0,
                weight: 0.0,
            }],
            tilt_deg: 0.0,
            resampled: false,
            warnings,
        });
    }

    let s: Vec<f64> = positions
        .iter()
        .map(|p| normal.dot(&Vector3::from(*p)))
        .collect();
    let steps: Vec<f64> = s.windows(2).map(|w| w[1] - w[0]).collect();
    if let Some(bad) = steps.iter().position(|d| !(*d > 1e-4)) {
        return Err(format!(
            "slices {} and {} are at the same position along the normal",
            bad,
            bad + 1
        ));
    }
    let mut sorted_steps = steps.clone();
    sorted_steps.sort_by(f64::total_cmp);
    let median_step = sorted_steps[sorted_steps.len() / 2];
    let (min_step, max_step) = (sorted_steps[0], sorted_steps[sorted_steps.len() - 1]);
    let tolerance = (0.01 * median_step).max(0.01);
    let regular = max_step - min_step <= tolerance;

    // Line through the slice origins, per millimetre along the normal; its normal component is 1.
    let p0 = Vector3::from(positions[0]);
    let p_last = Vector3::from(positions[n - 1]);
    let along = (p_last - p0) / (s[n - 1] - s[0]);
    let in_plane_shift = along - normal * along.dot(&normal);
    let tilt_deg = in_plane_shift.norm().atan().to_degrees();
    let max_off_line = positions
        .iter()
        .zip(&s)
        .map(|(p, si)| (Vector3::from(*p) - (p0 + along * (si - s[0]))).norm())
        .fold(0.0, f64::max);
    if max_off_line > 0.1_f64.max(0.05 * median_step) {
        warnings.push(format!(
            "slice origins deviate up to {max_off_line:.2} mm from a straight line (variable tilt or table shift); the grid follows the first and last slice"
        ));
    }
    // Shear only when it moves the last slice by a visible amount (>0.05 mm).
    let sheared = in_plane_shift.norm() * (s[n - 1] - s[0]) > 0.05;
    let k_dir = if sheared { along.normalize() } else { normal };
    let k_len_per_normal_mm = if sheared { along.norm() } else { 1.0 };
    if sheared {
        warnings.push(format!(
            "gantry tilt {tilt_deg:.2}°: kept as a sheared grid (k axis along the slice origins, not perpendicular to the slices); world positions are exact, no resampling"
        ));
    }

    let (sources, nk, step_normal) = if regular {
        let step = (s[n - 1] - s[0]) / (n - 1) as f64;
        let sources = (0..n)
            .map(|k| SliceSource {
                lower: k,
                upper: k,
                weight: 0.0,
            })
            .collect();
        (sources, n, step)
    } else {
        let span = s[n - 1] - s[0];
        // Resample at the finest acquired step so no acquired detail is lost, unless one
        // tiny step would blow the volume up; then at the median step.
        let grid_step = if span / min_step + 1.0 <= 8.0 * n as f64 {
            min_step
        } else {
            median_step
        };
        let nk = ((span / grid_step).round() as usize).max(1) + 1;
        let step = span / (nk - 1) as f64;
        let mut sources = Vec::with_capacity(nk);
        let mut a = 0;
        for k in 0..nk {
            let target = s[0] + step * k as f64;
            while a + 1 < n - 1 && s[a + 1] <= target {
                a += 1;
            }
            let b = (a + 1).min(n - 1);
            let w = if b == a {
                0.0
            } else {
                ((target - s[a]) / (s[b] - s[a])).clamp(0.0, 1.0)
            };
            // Snap to an acquired slice when the target lands on it.
            let (lower, upper, weight) = if w < 1e-4 {
                (a, a, 0.0)
            } else if w > 1.0 - 1e-4 {
                (b, b, 0.0)
            } else {
                (a, b, w as f32)
            };
            sources.push(SliceSource {
                lower,
                upper,
                weight,
            });
        }
        // Steps that are whole multiples of the usual step are missing slices; anything else
        // is a variable-spacing protocol.
        let multiple = |d: f64| {
            let m = (d / median_step).round();
            m >= 1.0 && (d - m * median_step).abs() <= tolerance * m
        };
        if steps.iter().all(|d| multiple(*d)) {
            let gaps: Vec<String> = steps
                .iter()
                .enumerate()
                .filter(|(_, d)| (**d / median_step).round() >= 2.0)
                .map(|(i, d)| {
                    format!(
                        "{} missing after slice {i} ({d:.2} mm gap)",
                        (d / median_step).round() as usize - 1
                    )
                })
                .collect();
            warnings.push(format!(
                "missing slices: {}; the gaps are filled by linear interpolation ({nk} slices every {step:.3} mm)",
                gaps.join(", ")
            ));
        } else {
            warnings.push(format!(
                "irregular slice spacing ({min_step:.3}..{max_step:.3} mm along the normal): {n} acquired slices resampled to {nk} slices every {step:.3} mm by linear interpolation between neighbouring slices"
            ));
        }
        (sources, nk, step)
    };

    Ok(StackLayout {
        dims: [cols, rows, nk],
        spacing_mm: [in_plane[0], in_plane[1], step_normal * k_len_per_normal_mm],
        origin_mm: origin,
        direction: Matrix3::from_columns(&[row, col, k_dir]),
        sources,
        tilt_deg: if sheared { tilt_deg } else { 0.0 },
        resampled: !regular,
        warnings,
    })
}

/// "axial LPS", "coronal LSP", "oblique sagittal PSL": the plane nearest to the slices and,
/// for each of `i`, `j`, `k`, the patient direction it points towards.
pub fn describe_orientation(direction: &Matrix3<f64>, slice_normal: &Vector3<f64>) -> String {
    let code: String = (0..3)
        .map(|c| {
            let v = direction.column(c);
            let (axis, val) = (0..3)
                .map(|a| (a, v[a]))
                .max_by(|x, y| x.1.abs().total_cmp(&y.1.abs()))
                .unwrap_or((0, 0.0));
            match (axis, val >= 0.0) {
                (0, true) => 'L',
                (0, false) => 'R',
                (1, true) => 'P',
                (1, false) => 'A',
                (_, true) => 'S',
                (_, false) => 'I',
            }
        })
        .collect();
    let (axis, largest) = (0..3)
        .map(|a| (a, slice_normal[a].abs()))
        .max_by(|x, y| x.1.total_cmp(&y.1))
        .unwrap_or((2, 1.0));
    let plane = match axis {
        0 => "sagittal",
        1 => "coronal",
        _ => "axial",
    };
    // Within ~10° of a cardinal plane counts as that plane.
    if largest < 0.985 {
        format!("oblique {plane} {code}")
    } else {
        format!("{plane} {code}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AXIAL: [f64; 6] = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];

    fn stack(step: &[f64], shift_y_per_mm: f64) -> Vec<[f64; 3]> {
        let mut z = 0.0;
        let mut out = vec![[0.0, 0.0, 0.0]];
        for d in step {
            z += d;
            out.push([0.0, shift_y_per_mm * z, z]);
        }
        out
    }

    #[test]
    fn regular_axial_stack() {
        let l = plan_stack(&AXIAL, [0.5, 0.7], 4, 3, &stack(&[2.0; 4], 0.0), 1.0).expect("ok");
        assert_eq!(l.dims, [3, 4, 5]);
        assert_eq!(l.spacing_mm[0], 0.7);
        assert_eq!(l.spacing_mm[1], 0.5);
        assert!((l.spacing_mm[2] - 2.0).abs() < 1e-12);
        assert!(l.warnings.is_empty());
        assert!(!l.resampled);
        assert_eq!(l.tilt_deg, 0.0);
    }

    #[test]
    fn tilt_gives_sheared_k_axis_through_every_slice() {
        let tan = 20f64.to_radians().tan();
        let pos = stack(&[3.0; 5], tan);
        let l = plan_stack(&AXIAL, [1.0, 1.0], 2, 2, &pos, 1.0).expect("ok");
        assert!((l.tilt_deg - 20.0).abs() < 1e-9, "{}", l.tilt_deg);
        for (k, p) in pos.iter().enumerate() {
            let w = Vector3::from(l.origin_mm) + l.direction.column(2) * l.spacing_mm[2] * k as f64;
            assert!((w - Vector3::from(*p)).norm() < 1e-9);
        }
        assert!(l.warnings.iter().any(|w| w.contains("gantry tilt")));
    }

    #[test]
    fn gap_is_detected_and_filled() {
        let pos = stack(&[2.0, 2.0, 4.0, 2.0], 0.0);
        let l = plan_stack(&AXIAL, [1.0, 1.0], 2, 2, &pos, 1.0).expect("ok");
        assert_eq!(l.dims[2], 6);
        assert!(l.resampled);
        assert_eq!(l.sources[3].lower, 2);
        assert_eq!(l.sources[3].upper, 3);
        assert!((l.sources[3].weight - 0.5).abs() < 1e-6);
        assert_eq!(l.sources[4].lower, 3);
        assert_eq!(l.sources[4].weight, 0.0);
        assert!(l.warnings.iter().any(|w| w.contains("missing slices")));
        // Variable spacing: resampled at the finest step, acquired slices kept where they fall.
        let pos = stack(&[1.0, 3.0, 3.0], 0.0);
        let l = plan_stack(&AXIAL, [1.0, 1.0], 2, 2, &pos, 1.0).expect("ok");
        assert_eq!(l.dims[2], 8);
        assert!(l
            .warnings
            .iter()
            .any(|w| w.contains("irregular slice spacing")));
        assert_eq!(l.sources[4].lower, 2);
        assert_eq!(l.sources[4].weight, 0.0);
    }

    #[test]
    fn duplicate_positions_are_refused() {
        let pos = vec![[0.0; 3], [0.0; 3]];
        assert!(plan_stack(&AXIAL, [1.0, 1.0], 2, 2, &pos, 1.0).is_err());
    }

    #[test]
    fn orientation_names() {
        let sag = Matrix3::from_columns(&[
            Vector3::new(0.0, 1.0, 0.0),
            Vector3::new(0.0, 0.0, -1.0),
            Vector3::new(-1.0, 0.0, 0.0),
        ]);
        assert_eq!(
            describe_orientation(&sag, &Vector3::new(-1.0, 0.0, 0.0)),
            "sagittal PIR"
        );
        assert_eq!(
            describe_orientation(&Matrix3::identity(), &Vector3::z()),
            "axial LPS"
        );
    }
}
