//! Seeded region growing: ITK's connected-threshold and confidence-connected filters.

use super::{Connectivity, Mask, SegmentationError};
use crate::jobs::JobContext;
use crate::volume::{Volume, VolumeGeometry};
use nalgebra::Point3;

/// The voxel nearest a world (LPS mm) point, or an error when it falls outside the grid.
pub fn seed_from_world(
    geometry: &VolumeGeometry,
    pos_in_world: Point3<f64>,
) -> Result<[usize; 3], SegmentationError> {
    let p = geometry.voxel_from_world_point(pos_in_world);
    let idx = p.map(|c| c.round() as i64);
    if geometry.contains_index(idx[0], idx[1], idx[2]) {
        Ok(idx.map(|c| c as usize))
    } else {
        Err(SegmentationError::SeedOutside([
            pos_in_world.x,
            pos_in_world.y,
            pos_in_world.z,
        ]))
    }
}

fn check_seeds(geometry: &VolumeGeometry, seeds: &[[usize; 3]]) -> Result<(), SegmentationError> {
    if seeds.is_empty() {
        return Err(SegmentationError::InvalidParameter(
            "at least one seed is needed".into(),
        ));
    }
    for s in seeds {
        if !geometry.contains_index(s[0] as i64, s[1] as i64, s[2] as i64) {
            return Err(SegmentationError::SeedOutside(s.map(|c| c as f64)));
        }
    }
    Ok(())
}

/// Voxels connected to a seed through voxels with `low <= value <= high`. Seeds outside the
/// range grow nothing.
pub fn connected_threshold(
    image: &Volume<f32>,
    seeds: &[[usize; 3]],
    low: f32,
    high: f32,
    connectivity: Connectivity,
    ctx: &JobContext,
) -> Result<Mask, SegmentationError> {
    let g = image.geometry();
    check_seeds(g, seeds)?;
    let offsets: Vec<[i64; 3]> = connectivity.offsets();
    let mut out = vec![0u8; g.voxel_count()];
    let data = image.data();
    let inside = |v: f32| v >= low && v <= high;
    let mut stack: Vec<usize> = Vec::new();
    for s in seeds {
        let idx = g.linear_index(s[0], s[1], s[2]);
        if inside(data[idx]) && out[idx] == 0 {
            out[idx] = 1;
            stack.push(idx);
        }
    }
    let mut visited = 0usize;
    let total = g.voxel_count();
    while let Some(v) = stack.pop() {
        visited += 1;
        if visited % (1 << 20) == 0 {
            ctx.check_cancelled()?;
            ctx.set_progress((visited as f32 / total as f32).min(0.99));
        }
        let [i, j, k] = g.index3(v);
        for o in &offsets {
            let (a, b, c) = (i as i64 + o[0], j as i64 + o[1], k as i64 + o[2]);
            if !g.contains_index(a, b, c) {
                continue;
            }
            let w = g.linear_index(a as usize, b as usize, c as usize);
            if out[w] == 0 && inside(data[w]) {
                out[w] = 1;
                stack.push(w);
            }
        }
    }
    Ok(Volume::new(g.clone(), out).expect("same grid"))
}

/// ITK's confidence-connected growing: the range is `mean ± multiplier·σ` of the intensities,
/// first around the seeds (a box of `initial_radius` voxels), then of the grown region, repeated
/// `iterations` times. Adapts to the tissue under the seed, so no HU values are needed.
pub fn confidence_connected(
    image: &Volume<f32>,
    seeds: &[[usize; 3]],
    multiplier: f64,
    iterations: usize,
    initial_radius: usize,
    connectivity: Connectivity,
    ctx: &JobContext,
) -> Result<Mask, SegmentationError> {
    let g = image.geometry();
    check_seeds(g, seeds)?;
    if !(multiplier.is_finite() && multiplier > 0.0) {
        return Err(SegmentationError::InvalidParameter(format!(
            "multiplier must be positive, got {multiplier}"
        )));
    }
    let mut stats = RunningStats::default();
    let r = initial_radius as i64;
    for s in seeds {
        for dk in -r..=r {
            for dj in -r..=r {
                for di in -r..=r {
                    if let Some(v) = image.get(s[0] as i64 + di, s[1] as i64 + dj, s[2] as i64 + dk)
                    {
                        stats.add(v);
                    }
                }
            }
        }
    }
    let mut mask = None;
    for round in 0..=iterations {
        let sub = ctx.sub(
            round as f32 / (iterations + 1) as f32,
            (round + 1) as f32 / (iterations + 1) as f32,
        );
        let (mean, sd) = stats.mean_sd();
        let (low, high) = (
            (mean - multiplier * sd) as f32,
            (mean + multiplier * sd) as f32,
        );
        let grown = connected_threshold(image, seeds, low, high, connectivity, &sub)?;
        stats = RunningStats::default();
        for (v, m) in image.data().iter().zip(grown.data()) {
            if *m != 0 {
                stats.add(*v);
            }
        }
        mask = Some(grown);
        if stats.n < 2 {
            break; // the seed region alone: nothing better to estimate from
        }
    }
    Ok(mask.unwrap_or_else(|| super::empty_mask(g)))
}

#[derive(Default)]
struct RunningStats {
    n: u64,
    sum: f64,
    sum_sq: f64,
}

impl RunningStats {
    fn add(&mut self, v: f32) {
        if v.is_finite() {
            self.n += 1;
            self.sum += v as f64;
            self.sum_sq += (v as f64) * (v as f64);
        }
    }
    fn mean_sd(&self) -> (f64, f64) {
        if self.n == 0 {
            return (0.0, 0.0);
        }
        let mean = self.sum / self.n as f64;
        let var = (self.sum_sq / self.n as f64 - mean * mean).max(0.0);
        (mean, var.sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segmentation::count;
    use crate::segmentation::phantoms::{grid, sphere};

    /// Two bright balls that do not touch, on a dark background with mild deterministic noise.
    fn two_balls() -> (Volume<f32>, Mask, Mask) {
        let g = grid([50, 30, 30], [1.0; 3]);
        let a = sphere(&g, [12.0, 15.0, 15.0], 8.0);
        let b = sphere(&g, [37.0, 15.0, 15.0], 8.0);
        let image = Volume::from_fn(g, |[i, j, k]| {
            let noise = ((i * 7 + j * 13 + k * 29) % 11) as f32 - 5.0;
            if a.at(i, j, k) != 0 || b.at(i, j, k) != 0 {
                300.0 + noise
            } else {
                20.0 + noise
            }
        });
        (image, a, b)
    }

    #[test]
    fn connected_threshold_grows_only_the_seeded_ball() {
        let (image, a, _) = two_balls();
        let ctx = JobContext::detached();
        let grown = connected_threshold(
            &image,
            &[[12, 15, 15]],
            200.0,
            400.0,
            Connectivity::Six,
            &ctx,
        )
        .expect("seed inside");
        assert!(grown.data() == a.data());
        let none = connected_threshold(&image, &[[0, 0, 0]], 200.0, 400.0, Connectivity::Six, &ctx)
            .expect("ok");
        assert_eq!(count(&none), 0);
        assert!(
            connected_threshold(&image, &[[60, 0, 0]], 0.0, 1.0, Connectivity::Six, &ctx).is_err()
        );
    }

    #[test]
    fn confidence_connected_finds_the_ball_without_hu_values() {
        let (image, _, b) = two_balls();
        let grown = confidence_connected(
            &image,
            &[[37, 15, 15]],
            2.5,
            3,
            1,
            Connectivity::Six,
            &JobContext::detached(),
        )
        .expect("seed inside");
        assert!(grown.data() == b.data());
    }

    #[test]
    fn world_seed_maps_to_the_nearest_voxel() {
        let g =
            VolumeGeometry::axis_aligned([10, 10, 10], [2.0; 3], [-10.0, 0.0, 5.0]).expect("valid");
        assert_eq!(
            seed_from_world(&g, Point3::new(-5.9, 4.2, 5.0)).expect("inside"),
            [2, 2, 0]
        );
        assert!(seed_from_world(&g, Point3::new(100.0, 0.0, 0.0)).is_err());
    }
}
