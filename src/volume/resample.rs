//! Resampling one grid onto another, through an optional world-to-world transform.

use super::{Volume, VolumeGeometry};
use nalgebra::{Matrix4, Point3};
use rayon::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interpolation {
    Nearest,
    Trilinear,
}

/// Samples `src` at every voxel centre of `target`.
///
/// `source_from_target_world` maps a world point of the target grid to the world point to read
/// in `src` (identity when both images share a world frame, e.g. after registration this is
/// `moving_from_fixed`). Points outside `src` get `fill`.
pub fn resample(
    src: &Volume<f32>,
    target: &VolumeGeometry,
    source_from_target_world: Option<&Matrix4<f64>>,
    interpolation: Interpolation,
    fill: f32,
) -> Volume<f32> {
    let src_voxel_from_target_voxel =
        voxel_mapping(src.geometry(), target, source_from_target_world);
    let data = map_grid(
        target,
        &src_voxel_from_target_voxel,
        |p| match interpolation {
            Interpolation::Nearest => nearest_at(src, p).unwrap_or(fill),
            Interpolation::Trilinear => trilinear_at(src, p).unwrap_or(fill),
        },
    );
    Volume::new(target.clone(), data).expect("map_grid yields one value per target voxel")
}

/// Nearest-neighbour resampling for labels (never blends two label values).
pub fn resample_labels(
    src: &Volume<u16>,
    target: &VolumeGeometry,
    source_from_target_world: Option<&Matrix4<f64>>,
) -> Volume<u16> {
    let m = voxel_mapping(src.geometry(), target, source_from_target_world);
    let data = map_grid(target, &m, |p| nearest_at(src, p).unwrap_or(0));
    Volume::new(target.clone(), data).expect("map_grid yields one value per target voxel")
}

fn voxel_mapping(
    src: &VolumeGeometry,
    target: &VolumeGeometry,
    world: Option<&Matrix4<f64>>,
) -> Matrix4<f64> {
    let world = world.copied().unwrap_or_else(Matrix4::identity);
    src.voxel_from_world() * world * target.world_from_voxel()
}

fn map_grid<T: Copy + Send>(
    target: &VolumeGeometry,
    m: &Matrix4<f64>,
    f: impl Fn([f64; 3]) -> T + Sync,
) -> Vec<T> {
    let [nx, ny, nz] = target.dims;
    let slices: Vec<Vec<T>> = (0..nz)
        .into_par_iter()
        .map(|k| {
            let mut out = Vec::with_capacity(nx * ny);
            // Affine: step along i by a constant vector.
            let di = m.transform_vector(&nalgebra::Vector3::new(1.0, 0.0, 0.0));
            for j in 0..ny {
                let mut p = m.transform_point(&Point3::new(0.0, j as f64, k as f64));
                for _ in 0..nx {
                    out.push(f([p.x, p.y, p.z]));
                    p += di;
                }
            }
            out
        })
        .collect();
    slices.concat()
}

/// Nearest voxel to a continuous position, `None` beyond half a voxel outside the grid.
pub fn nearest_at<T: Copy + Send + Sync>(v: &Volume<T>, p: [f64; 3]) -> Option<T> {
    let idx = p.map(|c| c.round());
    let d = v.dims();
    if (0..3).any(|a| !(idx[a] >= 0.0 && idx[a] < d[a] as f64)) {
        return None;
    }
    Some(v.at(idx[0] as usize, idx[1] as usize, idx[2] as usize))
}

/// Trilinear interpolation; positions within half a voxel outside the grid clamp to the edge.
pub fn trilinear_at(v: &Volume<f32>, p: [f64; 3]) -> Option<f32> {
    let d = v.dims();
    let mut base = [0usize; 3];
    let mut frac = [0f64; 3];
    for a in 0..3 {
        let c = p[a];
        if !(c >= -0.5 && c <= d[a] as f64 - 0.5) {
            return None;
        }
        let c = c.clamp(0.0, (d[a] - 1) as f64);
        let f = c.floor();
        base[a] = (f as usize).min(d[a].saturating_sub(2));
        frac[a] = if d[a] == 1 { 0.0 } else { c - base[a] as f64 };
    }
    let g = v.geometry();
    let step = [1usize, d[0], d[0] * d[1]].map(|s| s);
    let i0 = g.linear_index(base[0], base[1], base[2]);
    let si = if d[0] > 1 { step[0] } else { 0 };
    let sj = if d[1] > 1 { step[1] } else { 0 };
    let sk = if d[2] > 1 { step[2] } else { 0 };
    let data = v.data();
    let at = |o: usize| data[i0 + o] as f64;
    let [fx, fy, fz] = frac;
    let c00 = at(0) * (1.0 - fx) + at(si) * fx;
    let c10 = at(sj) * (1.0 - fx) + at(sj + si) * fx;
    let c01 = at(sk) * (1.0 - fx) + at(sk + si) * fx;
    let c11 = at(sk + sj) * (1.0 - fx) + at(sk + sj + si) * fx;
    let c0 = c00 * (1.0 - fy) + c10 * fy;
    let c1 = c01 * (1.0 - fy) + c11 * fy;
    Some((c0 * (1.0 - fz) + c1 * fz) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::{Rotation3, Translation3};

    fn linear_ramp(g: VolumeGeometry) -> Volume<f32> {
        // value = world x + 2 y - z: trilinear must reproduce a linear field exactly.
        let gg = g.clone();
        Volume::from_fn(g, move |[i, j, k]| {
            let w = gg.world_from_voxel_point([i as f64, j as f64, k as f64]);
            (w.x + 2.0 * w.y - w.z) as f32
        })
    }

    #[test]
    fn trilinear_reproduces_linear_field_on_oblique_grid() {
        let src_g =
            VolumeGeometry::axis_aligned([40, 40, 40], [1.0, 1.0, 1.5], [-20.0, -20.0, -30.0])
                .expect("valid");
        let src = linear_ramp(src_g);
        let rot = Rotation3::from_euler_angles(0.2, 0.1, -0.3).into_inner();
        let target = VolumeGeometry::new([10, 12, 8], [1.7, 0.9, 2.1], [-5.0, -4.0, -6.0], rot)
            .expect("valid");
        let out = resample(&src, &target, None, Interpolation::Trilinear, f32::NAN);
        for k in 0..8 {
            for j in 0..12 {
                for i in 0..10 {
                    let w = target.world_from_voxel_point([i as f64, j as f64, k as f64]);
                    let expect = w.x + 2.0 * w.y - w.z;
                    let got = out.at(i, j, k) as f64;
                    assert!(
                        (got - expect).abs() < 1e-3,
                        "({i},{j},{k}): {got} vs {expect}"
                    );
                }
            }
        }
    }

    #[test]
    fn identity_resample_is_exact() {
        let g = VolumeGeometry::axis_aligned([5, 6, 7], [0.5, 0.7, 1.1], [3.0, 2.0, 1.0])
            .expect("valid");
        let v = Volume::from_fn(g.clone(), |[i, j, k]| (i * 31 + j * 7 + k) as f32);
        let out = resample(&v, &g, None, Interpolation::Trilinear, -1.0);
        assert_eq!(out.data(), v.data());
        let labels = v.map(|x| x as u16);
        assert_eq!(resample_labels(&labels, &g, None).data(), labels.data());
    }

    #[test]
    fn world_transform_shifts_content_and_fills_outside() {
        let g = VolumeGeometry::axis_aligned([10, 1, 1], [1.0; 3], [0.0; 3]).expect("valid");
        let v = Volume::from_fn(g.clone(), |[i, _, _]| i as f32);
        // Read the source 3 mm further along x.
        let shift = Translation3::new(3.0, 0.0, 0.0).to_homogeneous();
        let out = resample(&v, &g, Some(&shift), Interpolation::Nearest, -1.0);
        assert_eq!(
            out.data(),
            &[3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, -1.0, -1.0, -1.0]
        );
    }

    #[test]
    fn nearest_labels_never_blend() {
        let g = VolumeGeometry::axis_aligned([4, 4, 4], [1.0; 3], [0.0; 3]).expect("valid");
        let v = Volume::from_fn(g, |[i, _, _]| if i < 2 { 1u16 } else { 7 });
        let fine =
            VolumeGeometry::axis_aligned([13, 4, 4], [0.25, 1.0, 1.0], [0.0; 3]).expect("valid");
        let out = resample_labels(&v, &fine, None);
        assert!(out.data().iter().all(|&x| x == 1 || x == 7));
    }
}
