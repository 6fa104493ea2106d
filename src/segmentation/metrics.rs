//! Agreement between two segmentations: Dice, Jaccard, 95th-percentile Hausdorff distance,
//! mean symmetric surface distance (mm) and volumes (ml), overall and per label.
//!
//! Surface distances follow the usual definition (DeepMind's `surface-distance`, MONAI): the
//! surface of a mask is its voxels with a face neighbour outside it; each surface voxel of one
//! mask gets the distance to the nearest surface voxel of the other, via an exact EDT in mm.

use super::distance::squared_edt_in_place;
use super::{check_same_grid, Mask, SegmentationError};
use crate::jobs::JobContext;
use crate::volume::{LabelMap, Volume, VolumeGeometry};
use serde::Serialize;
use std::collections::BTreeMap;

/// How well a segmentation `a` agrees with a reference `b`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct OverlapMetrics {
    /// `2|A∩B| / (|A| + |B|)`; 1 when both are empty.
    pub dice: f64,
    /// `|A∩B| / |A∪B|`; 1 when both are empty.
    pub jaccard: f64,
    /// Larger of the two directed 95th percentiles of surface distance (mm); `None` when
    /// either mask is empty.
    pub hausdorff95_mm: Option<f64>,
    /// Mean of all surface distances in both directions (mm); `None` when either is empty.
    pub mean_surface_distance_mm: Option<f64>,
    pub volume_a_ml: f64,
    pub volume_b_ml: f64,
}

/// Metrics of one label of two label maps.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelMetrics {
    pub label: u16,
    pub name: String,
    #[serde(flatten)]
    pub metrics: OverlapMetrics,
}

/// `overall` compares the non-zero masks; `per_label` every label present in either map.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelMapComparison {
    pub overall: OverlapMetrics,
    pub per_label: Vec<LabelMetrics>,
}

/// Compares two masks on the same grid.
pub fn compare_masks(a: &Mask, b: &Mask) -> Result<OverlapMetrics, SegmentationError> {
    check_same_grid("second mask", a.geometry(), b.geometry())?;
    let whole = ([0; 3], a.dims().map(|n| n - 1));
    Ok(compare_by(
        a.geometry(),
        a.data(),
        b.data(),
        whole,
        |v| v != 0,
        |v| v != 0,
    ))
}

/// Compares two label maps on the same grid (resample one onto the other first if needed).
pub fn compare_label_maps(
    a: &LabelMap,
    b: &LabelMap,
    ctx: &JobContext,
) -> Result<LabelMapComparison, SegmentationError> {
    check_same_grid("second label map", a.geometry(), b.geometry())?;
    let g = a.geometry();
    let (da, db) = (a.volume.data(), b.volume.data());
    ctx.set_stage("Comparing label maps");
    let whole = ([0; 3], g.dims.map(|n| n - 1));
    let overall = compare_by(g, da, db, whole, |v| v != 0, |v| v != 0);
    // One pass finds every label's bounding box, so each label is measured in its box only.
    let mut boxes: BTreeMap<u16, ([usize; 3], [usize; 3])> = BTreeMap::new();
    for (idx, (&x, &y)) in da.iter().zip(db).enumerate() {
        if x == 0 && y == 0 {
            continue;
        }
        let p = g.index3(idx);
        for v in [x, y] {
            if v != 0 {
                let e = boxes.entry(v).or_insert((p, p));
                *e = grow_box(*e, p);
            }
        }
    }
    let labels: Vec<u16> = boxes.keys().copied().collect();
    let mut per_label = Vec::with_capacity(labels.len());
    for (n, &label) in labels.iter().enumerate() {
        ctx.check_cancelled()?;
        ctx.set_steps(n, labels.len());
        let name = a
            .table
            .get(label)
            .or_else(|| b.table.get(label))
            .map(|l| l.name.clone())
            .unwrap_or_else(|| format!("Label {label}"));
        let region = boxes.get(&label).copied().unwrap_or(whole);
        let metrics = compare_by(g, da, db, region, |v| v == label, |v| v == label);
        per_label.push(LabelMetrics {
            label,
            name,
            metrics,
        });
    }
    Ok(LabelMapComparison { overall, per_label })
}

fn grow_box(b: ([usize; 3], [usize; 3]), p: [usize; 3]) -> ([usize; 3], [usize; 3]) {
    (
        [0, 1, 2].map(|d| b.0[d].min(p[d])),
        [0, 1, 2].map(|d| b.1[d].max(p[d])),
    )
}

/// Metrics of the voxels where `in_a` / `in_b` hold, which all lie in `region` (inclusive
/// voxel box); surface distances are computed in the bounding box of both masks.
fn compare_by<T: Copy + Send + Sync>(
    g: &VolumeGeometry,
    a: &[T],
    b: &[T],
    region: ([usize; 3], [usize; 3]),
    in_a: impl Fn(T) -> bool + Sync,
    in_b: impl Fn(T) -> bool + Sync,
) -> OverlapMetrics {
    let voxel_ml = g.voxel_volume_mm3() / 1000.0;
    let (mut na, mut nb, mut both) = (0u64, 0u64, 0u64);
    let mut bbox: Option<([usize; 3], [usize; 3])> = None;
    let (lo, hi) = region;
    for k in lo[2]..=hi[2] {
        for j in lo[1]..=hi[1] {
            let row = g.linear_index(0, j, k);
            for i in lo[0]..=hi[0] {
                let (x, y) = (in_a(a[row + i]), in_b(b[row + i]));
                if !(x || y) {
                    continue;
                }
                na += u64::from(x);
                nb += u64::from(y);
                both += u64::from(x && y);
                bbox = Some(match bbox {
                    None => ([i, j, k], [i, j, k]),
                    Some(b) => grow_box(b, [i, j, k]),
                });
            }
        }
    }
    let union = na + nb - both;
    let (dice, jaccard) = if union == 0 {
        (1.0, 1.0)
    } else {
        (
            2.0 * both as f64 / (na + nb) as f64,
            both as f64 / union as f64,
        )
    };
    let (mut hausdorff95_mm, mut mean_surface_distance_mm) = (None, None);
    if let (Some((lo, hi)), true) = (bbox, na > 0 && nb > 0) {
        let crop =
            |data: &[T], inside: &(dyn Fn(T) -> bool + Sync)| crop_mask(g, data, inside, lo, hi);
        let (ma, mb) = (crop(a, &in_a), crop(b, &in_b));
        let a_to_b = directed_surface_distances(&ma, &mb);
        let b_to_a = directed_surface_distances(&mb, &ma);
        let p95 = |d: &[f64]| percentile(d, 95.0);
        hausdorff95_mm = Some(p95(&a_to_b).max(p95(&b_to_a)));
        let total: f64 = a_to_b.iter().chain(&b_to_a).sum();
        mean_surface_distance_mm = Some(total / (a_to_b.len() + b_to_a.len()).max(1) as f64);
    }
    OverlapMetrics {
        dice,
        jaccard,
        hausdorff95_mm,
        mean_surface_distance_mm,
        volume_a_ml: na as f64 * voxel_ml,
        volume_b_ml: nb as f64 * voxel_ml,
    }
}

/// The box `lo..=hi` grown by one voxel of background on every side, so the crop's border is
/// never part of a surface that was not one in the full grid.
fn crop_mask<T: Copy + Sync>(
    g: &VolumeGeometry,
    data: &[T],
    inside: &(dyn Fn(T) -> bool + Sync),
    lo: [usize; 3],
    hi: [usize; 3],
) -> Mask {
    let dims = [0, 1, 2].map(|d| hi[d] - lo[d] + 3);
    let sub = VolumeGeometry::new(dims, g.spacing_mm, g.origin_mm, g.direction)
        .expect("a crop of a valid grid is valid");
    Volume::from_fn(sub, |[i, j, k]| {
        let p = [
            i as i64 + lo[0] as i64 - 1,
            j as i64 + lo[1] as i64 - 1,
            k as i64 + lo[2] as i64 - 1,
        ];
        if g.contains_index(p[0], p[1], p[2]) {
            u8::from(inside(
                data[g.linear_index(p[0] as usize, p[1] as usize, p[2] as usize)],
            ))
        } else {
            0
        }
    })
}

/// Voxels of the mask with a face neighbour outside it (or on the grid's edge).
fn surface(mask: &Mask) -> Mask {
    let g = mask.geometry();
    Volume::from_fn(g.clone(), |[i, j, k]| {
        if mask.at(i, j, k) == 0 {
            return 0;
        }
        let (i, j, k) = (i as i64, j as i64, k as i64);
        let faces = [
            (1, 0, 0),
            (-1, 0, 0),
            (0, 1, 0),
            (0, -1, 0),
            (0, 0, 1),
            (0, 0, -1),
        ];
        u8::from(
            faces
                .iter()
                .any(|(di, dj, dk)| mask.get(i + di, j + dj, k + dk).unwrap_or(0) == 0),
        )
    })
}

/// Distance (mm) from each surface voxel of `from` to the nearest surface voxel of `to`.
fn directed_surface_distances(from: &Mask, to: &Mask) -> Vec<f64> {
    let from_surface = surface(from);
    let mut field = surface(to).map(|v| if v != 0 { 0.0f32 } else { f32::INFINITY });
    squared_edt_in_place(&mut field);
    from_surface
        .data()
        .iter()
        .zip(field.data())
        .filter(|(s, _)| **s != 0)
        .map(|(_, &d2)| (d2 as f64).sqrt())
        .collect()
}

/// `q`-th percentile with linear interpolation between order statistics (numpy's default).
fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let pos = q / 100.0 * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segmentation::phantoms::{grid, sphere};
    use crate::volume::LabelTable;
    use std::f64::consts::PI;

    #[test]
    fn dice_of_shifted_spheres_matches_the_lens_volume() {
        let g = grid([70, 50, 50], [1.0; 3]);
        let (r, d) = (15.0, 10.0);
        let a = sphere(&g, [25.0, 25.0, 25.0], r);
        let b = sphere(&g, [25.0 + d, 25.0, 25.0], r);
        let m = compare_masks(&a, &b).expect("same grid");
        // Two balls of radius r, centres d apart, overlap in a lens of π(4r + d)(2r − d)²/12.
        let lens = PI * (4.0 * r + d) * (2.0 * r - d).powi(2) / 12.0;
        let ball = 4.0 / 3.0 * PI * r.powi(3);
        let dice = lens / ball;
        assert!((m.dice - dice).abs() < 0.01, "{} vs {dice}", m.dice);
        let jaccard = lens / (2.0 * ball - lens);
        assert!((m.jaccard - jaccard).abs() < 0.01);
        let same = compare_masks(&a, &a).expect("same grid");
        assert_eq!(
            (
                same.dice,
                same.hausdorff95_mm,
                same.mean_surface_distance_mm
            ),
            (1.0, Some(0.0), Some(0.0))
        );
    }

    #[test]
    fn hausdorff_of_concentric_spheres_is_the_radius_difference() {
        let g = grid([64, 64, 64], [0.5, 0.5, 0.5]);
        let inner = sphere(&g, [16.0, 16.0, 16.0], 8.0);
        let outer = sphere(&g, [16.0, 16.0, 16.0], 12.0);
        let m = compare_masks(&inner, &outer).expect("same grid");
        let hd = m.hausdorff95_mm.expect("both non-empty");
        let msd = m.mean_surface_distance_mm.expect("both non-empty");
        // Digital surfaces sit within one voxel (0.5 mm) of the spheres.
        assert!((hd - 4.0).abs() <= 0.5, "HD95 {hd}");
        assert!((msd - 4.0).abs() <= 0.5, "MSD {msd}");
        assert!(
            (m.volume_b_ml - 4.0 / 3.0 * PI * 12f64.powi(3) / 1000.0).abs() < 0.02 * m.volume_b_ml
        );
    }

    #[test]
    fn label_maps_compare_overall_and_per_label() {
        let g = grid([30, 20, 20], [1.0; 3]);
        let a = Volume::from_fn(g.clone(), |[i, _, _]| {
            if i < 10 {
                1u16
            } else if i < 20 {
                2
            } else {
                0
            }
        });
        let b = Volume::from_fn(g, |[i, _, _]| {
            if i < 10 {
                1u16
            } else if i < 15 {
                2
            } else {
                0
            }
        });
        let (a, b) = (
            LabelMap::new(a, LabelTable::new()),
            LabelMap::new(b, LabelTable::new()),
        );
        let c = compare_label_maps(&a, &b, &JobContext::detached()).expect("same grid");
        assert!((c.overall.dice - 2.0 * 15.0 / 35.0).abs() < 1e-12);
        assert_eq!(c.per_label.len(), 2);
        assert_eq!(c.per_label[0].metrics.dice, 1.0);
        assert!((c.per_label[1].metrics.dice - 2.0 * 5.0 / 15.0).abs() < 1e-12);
        assert_eq!(c.per_label[1].metrics.hausdorff95_mm, Some(5.0));
    }
}
