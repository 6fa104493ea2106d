//! Intensity statistics inside a sphere, a box or a label (see the module docs for which
//! voxels count).

use super::MeasureError;
use crate::volume::{LabelMap, Volume, VolumeGeometry};
use nalgebra::{Matrix4, Point3};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Where to measure, in world LPS millimetres.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "shape", rename_all = "snake_case")]
pub enum Region {
    Sphere {
        centre_mm: [f64; 3],
        radius_mm: f64,
    },
    /// A box whose faces are perpendicular to the world (LPS) axes.
    Box {
        min_mm: [f64; 3],
        max_mm: [f64; 3],
    },
    /// The voxels of one label of a label map (which may lie on another grid).
    Label {
        value: u16,
    },
}

/// Statistics of the voxel values inside a region (NaN voxels, i.e. no data, are skipped).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionStats {
    pub voxel_count: u64,
    /// `voxel_count × voxel volume` of the measured image, millilitres.
    pub volume_ml: f64,
    pub mean: f64,
    /// Sample standard deviation (n − 1); 0 for a single voxel.
    pub sd: f64,
    pub min: f64,
    pub max: f64,
    /// Middle value; the mean of the two middle values for an even count.
    pub median: f64,
}

/// Voxel index ranges (inclusive) of `volume` that can hold centres inside the world box
/// `lo..hi`; `None` when the box misses the grid.
fn index_bounds(g: &VolumeGeometry, lo: [f64; 3], hi: [f64; 3]) -> Option<[(usize, usize); 3]> {
    let mut vmin = [f64::INFINITY; 3];
    let mut vmax = [f64::NEG_INFINITY; 3];
    for corner in 0..8 {
        let p = Point3::from([0, 1, 2].map(|a| if corner >> a & 1 == 1 { hi[a] } else { lo[a] }));
        let v = g.voxel_from_world_point(p);
        for a in 0..3 {
            vmin[a] = vmin[a].min(v[a]);
            vmax[a] = vmax[a].max(v[a]);
        }
    }
    let mut out = [(0, 0); 3];
    for a in 0..3 {
        let first = vmin[a].floor().max(0.0);
        let last = vmax[a].ceil().min(g.dims[a] as f64 - 1.0);
        if !(first <= last) {
            return None;
        }
        out[a] = (first as usize, last as usize);
    }
    Some(out)
}

fn summarise(mut values: Vec<f32>, voxel_ml: f64) -> Option<RegionStats> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let mean = values.par_iter().map(|v| *v as f64).sum::<f64>() / n as f64;
    let squares = values
        .par_iter()
        .map(|v| (*v as f64 - mean).powi(2))
        .sum::<f64>();
    let sd = if n > 1 {
        (squares / (n - 1) as f64).sqrt()
    } else {
        0.0
    };
    let (min, max) = values
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), v| {
            (a.min(*v), b.max(*v))
        });
    let upper = *values.select_nth_unstable_by(n / 2, f32::total_cmp).1 as f64;
    let median = if n % 2 == 1 {
        upper
    } else {
        // The largest of the lower half is the other middle value.
        let lower = values[..n / 2]
            .iter()
            .copied()
            .fold(f32::NEG_INFINITY, f32::max) as f64;
        (lower + upper) / 2.0
    };
    Some(RegionStats {
        voxel_count: n as u64,
        volume_ml: n as f64 * voxel_ml,
        mean,
        sd,
        min: min as f64,
        max: max as f64,
        median,
    })
}

/// Values of `volume` at voxels in `bounds` whose world centre passes `inside`.
fn collect(
    volume: &Volume<f32>,
    bounds: [(usize, usize); 3],
    inside: impl Fn(&Point3<f64>, [usize; 3]) -> bool + Sync,
) -> Vec<f32> {
    let world_from_voxel: Matrix4<f64> = volume.geometry().world_from_voxel();
    let [(i0, i1), (j0, j1), (k0, k1)] = bounds;
    (k0..=k1)
        .into_par_iter()
        .flat_map_iter(|k| {
            let mut slice = Vec::new();
            for j in j0..=j1 {
                for i in i0..=i1 {
                    let p = world_from_voxel
                        .transform_point(&Point3::new(i as f64, j as f64, k as f64));
                    if inside(&p, [i, j, k]) {
                        let v = volume.at(i, j, k);
                        if !v.is_nan() {
                            slice.push(v);
                        }
                    }
                }
            }
            slice
        })
        .collect()
}

/// Statistics of `volume` inside `region`. A [`Region::Label`] needs `labels`; when the
/// label map lies on another grid, each voxel of `volume` takes the label of the nearest
/// label voxel to its centre.
pub fn region_stats(
    volume: &Volume<f32>,
    region: &Region,
    labels: Option<&LabelMap>,
) -> Result<RegionStats, MeasureError> {
    let g = volume.geometry();
    let voxel_ml = g.voxel_volume_mm3() / 1000.0;
    let values = match region {
        Region::Sphere {
            centre_mm,
            radius_mm,
        } => {
            super::check_point(*centre_mm)?;
            if !(radius_mm.is_finite() && *radius_mm > 0.0) {
                return Err(MeasureError::BadRegion(format!(
                    "sphere radius {radius_mm} mm must be positive"
                )));
            }
            let c = *centre_mm;
            let r = *radius_mm;
            let lo = c.map(|v| v - r);
            let hi = c.map(|v| v + r);
            let centre = Point3::from(c);
            index_bounds(g, lo, hi)
                .map(|b| collect(volume, b, |p, _| (p - centre).norm_squared() <= r * r))
                .unwrap_or_default()
        }
        Region::Box { min_mm, max_mm } => {
            super::check_point(*min_mm)?;
            super::check_point(*max_mm)?;
            if (0..3).any(|a| min_mm[a] > max_mm[a]) {
                return Err(MeasureError::BadRegion(format!(
                    "box corner {min_mm:?} is not below {max_mm:?}"
                )));
            }
            let (lo, hi) = (*min_mm, *max_mm);
            index_bounds(g, lo, hi)
                .map(|b| {
                    collect(volume, b, |p, _| {
                        (0..3).all(|a| p[a] >= lo[a] && p[a] <= hi[a])
                    })
                })
                .unwrap_or_default()
        }
        Region::Label { value } => {
            let map = labels.ok_or_else(|| {
                MeasureError::BadRegion("a label region needs its label map".into())
            })?;
            let value = *value;
            let all = [0, 1, 2].map(|a| (0, g.dims[a] - 1));
            if map.geometry().same_grid(g, 1e-3) {
                let data = map.volume.data();
                collect(volume, all, |_, [i, j, k]| {
                    data[g.linear_index(i, j, k)] == value
                })
            } else {
                let label_from_world = map.geometry().voxel_from_world();
                collect(volume, all, |p, _| {
                    let v = label_from_world.transform_point(p);
                    map.volume
                        .get(v.x.round() as i64, v.y.round() as i64, v.z.round() as i64)
                        == Some(value)
                })
            }
        }
    };
    summarise(values, voxel_ml).ok_or_else(|| {
        MeasureError::EmptyRegion(match region {
            Region::Label { value } => format!("no voxel of label {value} in the image"),
            _ => "no voxel centre of the image lies inside it".into(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::{LabelTable, VolumeGeometry};
    use nalgebra::Rotation3;

    /// Value = world x + 10 · world y (so every voxel's value says where it is).
    fn ramp(g: VolumeGeometry) -> Volume<f32> {
        let m = g.world_from_voxel();
        Volume::from_fn(g, |[i, j, k]| {
            let p = m.transform_point(&Point3::new(i as f64, j as f64, k as f64));
            (p.x + 10.0 * p.y) as f32
        })
    }

    #[test]
    fn box_stats_match_a_brute_force_count() {
        let g = VolumeGeometry::axis_aligned([20, 20, 10], [1.0, 1.0, 2.0], [-10.0, -10.0, 0.0])
            .expect("g");
        let v = ramp(g);
        // x in [-2, 2] (5 columns), y in [0, 1] (2 rows), z in [4, 8] (3 slices).
        let s = region_stats(
            &v,
            &Region::Box {
                min_mm: [-2.0, -0.5, 3.5],
                max_mm: [2.0, 1.0, 8.0],
            },
            None,
        )
        .expect("stats");
        assert_eq!(s.voxel_count, 5 * 2 * 3);
        assert!((s.volume_ml - 30.0 * 2.0 / 1000.0).abs() < 1e-12);
        // Mean of x is 0, of y is 0.5: mean = 5.
        assert!((s.mean - 5.0).abs() < 1e-9, "{}", s.mean);
        assert_eq!((s.min, s.max), (-2.0, 12.0));
        assert!((s.median - 5.0).abs() < 1e-9, "{}", s.median);
    }

    #[test]
    fn sphere_volume_converges_on_an_oblique_grid() {
        let rot = Rotation3::from_euler_angles(0.3, 0.5, -0.2).into_inner();
        let g = VolumeGeometry::new([80, 80, 80], [0.5, 0.5, 0.5], [-20.0, -20.0, -20.0], rot)
            .expect("g");
        let centre = g.center_world();
        let v = Volume::filled(g, 40.0f32);
        let r = 12.0;
        let s = region_stats(
            &v,
            &Region::Sphere {
                centre_mm: [centre.x, centre.y, centre.z],
                radius_mm: r,
            },
            None,
        )
        .expect("stats");
        let exact_ml = 4.0 / 3.0 * std::f64::consts::PI * r * r * r / 1000.0;
        assert!(
            (s.volume_ml - exact_ml).abs() / exact_ml < 0.01,
            "{} ml vs {exact_ml}",
            s.volume_ml
        );
        assert_eq!(
            (s.mean, s.sd, s.min, s.max, s.median),
            (40.0, 0.0, 40.0, 40.0, 40.0)
        );
    }

    #[test]
    fn label_region_on_the_same_and_on_another_grid() {
        let g = VolumeGeometry::axis_aligned([10, 10, 4], [1.0; 3], [0.0; 3]).expect("g");
        let v = ramp(g.clone());
        let labels = Volume::from_fn(g, |[i, j, _]| u16::from(i >= 6 && j < 2) * 3);
        let map = LabelMap::new(labels, LabelTable::new());
        let s = region_stats(&v, &Region::Label { value: 3 }, Some(&map)).expect("stats");
        assert_eq!(s.voxel_count, 4 * 2 * 4);
        // x in 6..=9 (mean 7.5), y in 0..=1 (mean 0.5): mean 12.5; sd by hand below.
        assert!((s.mean - 12.5).abs() < 1e-9);
        let values: Vec<f64> = (0..4)
            .flat_map(|_| (6..10).flat_map(|x| (0..2).map(move |y| (x + 10 * y) as f64)))
            .collect();
        let sd = (values.iter().map(|x| (x - 12.5).powi(2)).sum::<f64>() / 31.0).sqrt();
        assert!((s.sd - sd).abs() < 1e-9, "{} vs {sd}", s.sd);
        assert_eq!(s.median, 12.5);

        // The same label on a half-resolution grid covering the same space.
        let coarse_g =
            VolumeGeometry::axis_aligned([5, 5, 2], [2.0; 3], [0.5, 0.5, 0.5]).expect("g");
        let coarse = Volume::from_fn(coarse_g, |[i, j, _]| u16::from(i >= 3 && j < 1) * 3);
        let coarse = LabelMap::new(coarse, LabelTable::new());
        let s2 = region_stats(&v, &Region::Label { value: 3 }, Some(&coarse)).expect("stats");
        assert_eq!(s2.voxel_count, s.voxel_count);
        assert!((s2.mean - s.mean).abs() < 1e-9);

        let err = region_stats(&v, &Region::Label { value: 9 }, Some(&map)).expect_err("empty");
        assert!(matches!(err, MeasureError::EmptyRegion(_)));
        let far = Region::Sphere {
            centre_mm: [500.0, 0.0, 0.0],
            radius_mm: 3.0,
        };
        assert!(matches!(
            region_stats(&v, &far, None),
            Err(MeasureError::EmptyRegion(_))
        ));
    }
}
