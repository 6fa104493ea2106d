//! Paint and erase brushes: a disk on one slice (any of the three orientations) or a sphere in
//! 3D, swept along the points of a stroke. A whole stroke is one gesture.

use super::{voxel_of, EditError, Gesture, PaintValue, SliceOrientation};
use nalgebra::Point3;

/// Brush shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BrushShape {
    /// A disk of the given radius on the slice the stroke starts in.
    Disk(SliceOrientation),
    /// A ball of the given radius.
    Sphere,
}

/// A brush stroke: the positions the pointer passed through, world LPS mm.
#[derive(Debug, Clone, PartialEq)]
pub struct BrushStroke {
    pub shape: BrushShape,
    pub radius_mm: f64,
    pub points_in_world: Vec<Point3<f64>>,
}

/// Paints (or erases, with [`PaintValue::Erase`]) along the stroke; returns how many voxels
/// changed. Between consecutive points the brush is swept so fast strokes leave no gaps.
pub fn paint_stroke(
    gesture: &mut Gesture<'_>,
    stroke: &BrushStroke,
    value: PaintValue,
) -> Result<usize, EditError> {
    if !(stroke.radius_mm.is_finite() && stroke.radius_mm > 0.0) {
        return Err(EditError::InvalidParameter(format!(
            "brush radius must be a positive number of mm, got {}",
            stroke.radius_mm
        )));
    }
    let g = gesture.geometry().clone();
    let spacing = g.spacing_mm;
    let Some(first) = stroke.points_in_world.first() else {
        return Ok(0);
    };
    let first_voxel = voxel_of(&g, first);
    // A 2D stroke stays on the slice it started in, whatever the pointer's depth later.
    let fixed = match stroke.shape {
        BrushShape::Disk(o) => {
            let axis = o.fixed_axis();
            let s = first_voxel[axis].round() as i64;
            if s < 0 || s >= g.dims[axis] as i64 {
                return Err(EditError::OutsideGrid([first.x, first.y, first.z]));
            }
            Some((axis, s))
        }
        BrushShape::Sphere => None,
    };
    let min_spacing = spacing.iter().copied().fold(f64::INFINITY, f64::min);
    let step_mm = (stroke.radius_mm / 2.0).min(min_spacing).max(1e-3);
    let mut centres: Vec<[f64; 3]> = Vec::new();
    let mut prev: Option<Point3<f64>> = None;
    for p in &stroke.points_in_world {
        if let Some(a) = prev {
            let n = ((p - a).norm() / step_mm).ceil().max(1.0) as usize;
            for s in 1..=n {
                centres.push(voxel_of(&g, &(a + (p - a) * (s as f64 / n as f64))));
            }
        } else {
            centres.push(voxel_of(&g, p));
        }
        prev = Some(*p);
    }
    let radius_vox = spacing.map(|s| (stroke.radius_mm / s).ceil() as i64);
    let r2 = stroke.radius_mm * stroke.radius_mm + 1e-9;
    let mut changed = 0;
    for c in centres {
        let mut lo = [0i64; 3];
        let mut hi = [0i64; 3];
        for a in 0..3 {
            lo[a] = (c[a].round() as i64 - radius_vox[a]).max(0);
            hi[a] = (c[a].round() as i64 + radius_vox[a]).min(g.dims[a] as i64 - 1);
        }
        if let Some((axis, s)) = fixed {
            lo[axis] = s;
            hi[axis] = s;
        }
        for k in lo[2]..=hi[2] {
            for j in lo[1]..=hi[1] {
                for i in lo[0]..=hi[0] {
                    let pos = [i, j, k];
                    let d2: f64 = (0..3)
                        .filter(|&a| fixed.is_none_or(|(axis, _)| axis != a))
                        .map(|a| ((pos[a] as f64 - c[a]) * spacing[a]).powi(2))
                        .sum();
                    if d2 <= r2 {
                        changed +=
                            usize::from(gesture.paint(i as usize, j as usize, k as usize, value));
                    }
                }
            }
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::editing::phantoms::{count, empty_map};
    use crate::editing::{EditMask, UndoHistory};
    use std::f64::consts::PI;

    #[test]
    fn disk_on_each_orientation_has_the_disk_area() {
        for o in [
            SliceOrientation::Axial,
            SliceOrientation::Coronal,
            SliceOrientation::Sagittal,
        ] {
            let mut map = empty_map([60, 60, 60], [0.5, 0.5, 0.5]);
            let stroke = BrushStroke {
                shape: BrushShape::Disk(o),
                radius_mm: 8.0,
                points_in_world: vec![Point3::new(15.0, 15.0, 15.0)],
            };
            let mut g = Gesture::begin(&mut map, "paint", &EditMask::default(), None).expect("ok");
            paint_stroke(&mut g, &stroke, PaintValue::Label(1)).expect("valid");
            g.finish();
            let area_voxels = PI * 8.0 * 8.0 / 0.25;
            let n = count(&map, 1) as f64;
            assert!((n - area_voxels).abs() < 0.02 * area_voxels, "{o:?}: {n}");
            // All on the slice through the centre (voxel 30 along the fixed axis).
            let axis = o.fixed_axis();
            for (idx, &v) in map.volume.data().iter().enumerate() {
                if v != 0 {
                    assert_eq!(map.geometry().index3(idx)[axis], 30);
                }
            }
        }
    }

    #[test]
    fn a_swept_sphere_stroke_is_a_capsule_and_erasing_restores() {
        let mut map = empty_map([80, 40, 40], [1.0; 3]);
        let stroke = BrushStroke {
            shape: BrushShape::Sphere,
            radius_mm: 5.0,
            points_in_world: vec![Point3::new(10.0, 20.0, 20.0), Point3::new(60.0, 20.0, 20.0)],
        };
        let mut history = UndoHistory::default();
        let mut g = Gesture::begin(&mut map, "stroke", &EditMask::default(), None).expect("ok");
        paint_stroke(&mut g, &stroke, PaintValue::Label(2)).expect("valid");
        history.push(g.finish());
        // Capsule: a 50 mm cylinder plus a ball, radius 5 mm.
        let capsule = PI * 25.0 * 50.0 + 4.0 / 3.0 * PI * 125.0;
        let n = count(&map, 2) as f64;
        assert!((n - capsule).abs() < 0.03 * capsule, "{n} vs {capsule}");
        let mut g = Gesture::begin(&mut map, "erase", &EditMask::default(), None).expect("ok");
        paint_stroke(&mut g, &stroke, PaintValue::Erase(Some(2))).expect("valid");
        history.push(g.finish());
        assert_eq!(count(&map, 2), 0);
        history.undo(&mut map).expect("ok");
        assert_eq!(count(&map, 2) as f64, n);
    }

    #[test]
    fn masking_rules_and_locks_are_respected() {
        let mut map = empty_map([20, 20, 3], [1.0; 3]);
        for i in 0..10 {
            for j in 0..20 {
                map.volume.set(i, j, 1, 1);
            }
        }
        let stroke = BrushStroke {
            shape: BrushShape::Disk(SliceOrientation::Axial),
            radius_mm: 30.0,
            points_in_world: vec![Point3::new(10.0, 10.0, 1.0)],
        };
        let paint = |map: &mut crate::volume::LabelMap, mask: &EditMask| {
            let mut g = Gesture::begin(map, "paint", mask, None).expect("ok");
            paint_stroke(&mut g, &stroke, PaintValue::Label(2)).expect("valid")
        };
        let keep_others = EditMask {
            overwrite_other_labels: false,
            ..EditMask::default()
        };
        let mut m = map.clone();
        assert_eq!(paint(&mut m, &keep_others), 200);
        assert_eq!(count(&m, 1), 200);
        let inside_bone = EditMask {
            only_inside_label: Some(1),
            ..keep_others.clone()
        };
        let mut m = map.clone();
        assert_eq!(paint(&mut m, &inside_bone), 200);
        assert_eq!(count(&m, 1), 0);
        let mut m = map.clone();
        if let Some(l) = m.table.get_mut(1) {
            l.locked = true;
        }
        assert_eq!(paint(&mut m, &EditMask::default()), 200);
        assert_eq!(count(&m, 1), 200);
        // Intensity range: the image is bright only where i >= 15.
        let image = crate::volume::Volume::from_fn(map.geometry().clone(), |[i, _, _]| {
            if i >= 15 {
                500.0
            } else {
                0.0
            }
        });
        let bright = EditMask {
            intensity_range: Some((200.0, 3000.0)),
            ..EditMask::default()
        };
        let mut m = map.clone();
        let mut g = Gesture::begin(&mut m, "paint", &bright, Some(&image)).expect("same grid");
        assert_eq!(
            paint_stroke(&mut g, &stroke, PaintValue::Label(2)).expect("valid"),
            100
        );
    }
}
