//! Automatic initialisation: where each object is and how it is oriented, so scanners with
//! different world origins still start the optimiser within its capture range.

use crate::volume::Volume;
use nalgebra::{Matrix3, SymmetricEigen, Vector3};
use rayon::prelude::*;

/// How to choose the starting transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Initialization {
    /// Start from the identity: the world frames already agree (same scanner, or a user's
    /// manual initial transform).
    Identity,
    /// Align the centres of the two image grids.
    GeometricCentre,
    /// Align the centres of mass of the foreground (Otsu threshold) of both images.
    CentreOfMass,
    /// Centre of mass plus candidate rotations from the principal axes; the best after a short
    /// coarse optimisation wins (identity rotation unless another is clearly better).
    PrincipalAxes,
}

/// Foreground moments in world millimetres.
#[derive(Debug, Clone)]
pub struct Moments {
    pub centre_mm: Vector3<f64>,
    /// Covariance of foreground positions (mm²).
    pub covariance: Matrix3<f64>,
    pub foreground_voxels: usize,
    pub threshold: f32,
}

/// Otsu threshold of the finite voxel values (256-bin histogram).
pub fn otsu_threshold(v: &Volume<f32>) -> f32 {
    let (lo, hi) = v.min_max();
    if hi <= lo {
        return lo;
    }
    let bins = 256usize;
    let width = (hi - lo) / bins as f32;
    let hist = v
        .data()
        .par_iter()
        .fold(
            || vec![0u64; bins],
            |mut h, x| {
                if x.is_finite() {
                    let b = (((x - lo) / width) as usize).min(bins - 1);
                    h[b] += 1;
                }
                h
            },
        )
        .reduce(
            || vec![0u64; bins],
            |mut a, b| {
                for (x, y) in a.iter_mut().zip(b) {
                    *x += y;
                }
                a
            },
        );
    let total: u64 = hist.iter().sum();
    let sum_all: f64 = hist
        .iter()
        .enumerate()
        .map(|(i, c)| i as f64 * *c as f64)
        .sum();
    let (mut w0, mut sum0, mut best, mut best_t) = (0f64, 0f64, -1f64, 0usize);
    for (t, c) in hist.iter().enumerate() {
        w0 += *c as f64;
        sum0 += t as f64 * *c as f64;
        let w1 = total as f64 - w0;
        if w0 == 0.0 || w1 == 0.0 {
            continue;
        }
        let (m0, m1) = (sum0 / w0, (sum_all - sum0) / w1);
        let between = w0 * w1 * (m0 - m1) * (m0 - m1);
        if between > best {
            best = between;
            best_t = t;
        }
    }
    lo + width * (best_t as f32 + 1.0)
}

/// Centroid and covariance of the voxels above the Otsu threshold (or of all voxels when
/// nothing is above it).
pub fn foreground_moments(v: &Volume<f32>) -> Moments {
    let threshold = otsu_threshold(v);
    let g = v.geometry();
    let m = g.world_from_voxel();
    let [nx, ny, nz] = g.dims;
    let data = v.data();
    // Every other voxel along each axis of a large image is plenty for moments.
    let step = if g.voxel_count() > 2_000_000 { 2 } else { 1 };
    let acc = (0..nz)
        .into_par_iter()
        .step_by(step)
        .map(|k| {
            let mut s = [0f64; 10];
            for j in (0..ny).step_by(step) {
                for i in (0..nx).step_by(step) {
                    if data[i + nx * (j + ny * k)] > threshold {
                        let w =
                            m.transform_point(&nalgebra::Point3::new(i as f64, j as f64, k as f64));
                        s[0] += 1.0;
                        s[1] += w.x;
                        s[2] += w.y;
                        s[3] += w.z;
                        s[4] += w.x * w.x;
                        s[5] += w.y * w.y;
                        s[6] += w.z * w.z;
                        s[7] += w.x * w.y;
                        s[8] += w.x * w.z;
                        s[9] += w.y * w.z;
                    }
                }
            }
            s
        })
        .reduce(
            || [0f64; 10],
            |mut a, b| {
                for (x, y) in a.iter_mut().zip(b) {
                    *x += y;
                }
                a
            },
        );
    let n = acc[0];
    if n < 1.0 {
        return Moments {
            centre_mm: g.center_world().coords,
            covariance: Matrix3::identity(),
            foreground_voxels: 0,
            threshold,
        };
    }
    let c = Vector3::new(acc[1], acc[2], acc[3]) / n;
    let cov = Matrix3::new(
        acc[4] / n - c.x * c.x,
        acc[7] / n - c.x * c.y,
        acc[8] / n - c.x * c.z,
        acc[7] / n - c.x * c.y,
        acc[5] / n - c.y * c.y,
        acc[9] / n - c.y * c.z,
        acc[8] / n - c.x * c.z,
        acc[9] / n - c.y * c.z,
        acc[6] / n - c.z * c.z,
    );
    Moments {
        centre_mm: c,
        covariance: cov,
        foreground_voxels: n as usize,
        threshold,
    }
}

/// Eigenvectors as columns, sorted by decreasing eigenvalue, forming a proper rotation.
fn principal_axes(cov: &Matrix3<f64>) -> Matrix3<f64> {
    let eig = SymmetricEigen::new(*cov);
    let mut order = [0usize, 1, 2];
    order.sort_by(|a, b| eig.eigenvalues[*b].total_cmp(&eig.eigenvalues[*a]));
    let mut e = Matrix3::zeros();
    for (c, &o) in order.iter().enumerate() {
        e.set_column(c, &eig.eigenvectors.column(o));
    }
    if e.determinant() < 0.0 {
        let flipped = -e.column(2);
        e.set_column(2, &flipped);
    }
    e
}

/// Candidate rotations (moving-from-fixed) mapping the fixed principal axes onto the moving
/// ones, for the four sign choices that keep a proper rotation. Identity comes first.
pub fn principal_axis_rotations(fixed: &Moments, moving: &Moments) -> Vec<Matrix3<f64>> {
    let ef = principal_axes(&fixed.covariance);
    let em = principal_axes(&moving.covariance);
    let mut out = vec![Matrix3::identity()];
    for signs in [
        [1.0, 1.0, 1.0],
        [-1.0, -1.0, 1.0],
        [-1.0, 1.0, -1.0],
        [1.0, -1.0, -1.0],
    ] {
        let s = Matrix3::from_diagonal(&Vector3::from(signs));
        let r = em * s * ef.transpose();
        if (r - Matrix3::identity()).norm() > 1e-3 {
            out.push(r);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::VolumeGeometry;

    #[test]
    fn moments_of_an_offset_box() {
        let g = VolumeGeometry::axis_aligned([40, 30, 20], [1.0, 2.0, 1.5], [-10.0, 5.0, 0.0])
            .expect("valid");
        // Box over i in 10..30, j in 5..15, k in 4..16 with value 100 on a background of 0.
        let v = Volume::from_fn(g.clone(), |[i, j, k]| {
            if (10..30).contains(&i) && (5..15).contains(&j) && (4..16).contains(&k) {
                100.0
            } else {
                0.0
            }
        });
        let m = foreground_moments(&v);
        let expect = g.world_from_voxel_point([19.5, 9.5, 9.5]);
        assert!(
            (m.centre_mm - expect.coords).norm() < 1e-9,
            "{:?}",
            m.centre_mm
        );
        assert_eq!(m.foreground_voxels, 20 * 10 * 12);
        // Longest along x (20 mm), then y (20 mm... 10 voxels × 2 mm), z (18 mm).
        assert!(m.covariance[(0, 0)] > m.covariance[(2, 2)]);
    }

    #[test]
    fn principal_axes_recover_a_rotation() {
        let cov_f = Matrix3::from_diagonal(&Vector3::new(100.0, 25.0, 4.0));
        let r = nalgebra::Rotation3::from_euler_angles(0.3, -0.2, 0.5).into_inner();
        let cov_m = r * cov_f * r.transpose();
        let f = Moments {
            centre_mm: Vector3::zeros(),
            covariance: cov_f,
            foreground_voxels: 1,
            threshold: 0.0,
        };
        let m = Moments {
            covariance: cov_m,
            ..f.clone()
        };
        let cands = principal_axis_rotations(&f, &m);
        assert!(cands.iter().any(|c| (c - r).norm() < 1e-9));
        assert!(cands.iter().all(|c| (c.determinant() - 1.0).abs() < 1e-9));
    }
}
