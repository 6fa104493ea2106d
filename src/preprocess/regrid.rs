//! Geometry operations: resampling with a cubic B-spline kernel (besides the nearest and
//! trilinear ones in `volume::resample`), isotropic resampling, cropping to a voxel or world
//! box, and exact reorientation to a canonical LPS/RAS-aligned grid (no interpolation).

use super::filter::map_lines;
use super::{invalid, step, PreprocessError};
use crate::jobs::JobContext;
use crate::volume::{resample, Interpolation, Volume, VolumeGeometry};
use nalgebra::{Matrix3, Matrix4, Point3};
use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Interpolation kernel for images (labels always use nearest: `volume::resample_labels`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    Nearest,
    Linear,
    /// Cubic B-spline interpolation (Unser's prefilter, so it interpolates the samples).
    CubicBSpline,
}

/// Resamples `src` onto `target` (same world frame). Outside the source gets `fill`.
pub fn resample_to(
    src: &Volume<f32>,
    target: &VolumeGeometry,
    kernel: Kernel,
    fill: f32,
    ctx: &JobContext,
) -> Result<Volume<f32>, PreprocessError> {
    ctx.check_cancelled()?;
    match kernel {
        Kernel::Nearest => Ok(resample(src, target, None, Interpolation::Nearest, fill)),
        Kernel::Linear => Ok(resample(src, target, None, Interpolation::Trilinear, fill)),
        Kernel::CubicBSpline => resample_bspline(src, target, fill, ctx),
    }
}

/// Cubic B-spline coefficients of `data` (in place), mirror boundaries.
pub fn bspline_coefficients(data: &mut [f32], dims: [usize; 3]) {
    let z = 3f64.sqrt() - 2.0;
    for axis in 0..3 {
        if dims[axis] < 2 {
            continue;
        }
        map_lines(data, dims, axis, |line, scratch| {
            scratch.clear();
            scratch.extend(line.iter().map(|v| *v as f64 as f32));
            let mut c: Vec<f64> = line.iter().map(|v| 6.0 * *v as f64).collect();
            let n = c.len();
            // Causal init: truncated mirror sum (|z|^k < 1e-7 after ~12 terms).
            let horizon = n.min(14);
            let mut zn = 1.0;
            let mut sum = 0.0;
            for v in c.iter().take(horizon) {
                sum += zn * v;
                zn *= z;
            }
            c[0] = sum;
            for k in 1..n {
                c[k] += z * c[k - 1];
            }
            c[n - 1] = (z / (z * z - 1.0)) * (z * c[n - 2] + c[n - 1]);
            for k in (0..n - 1).rev() {
                c[k] = z * (c[k + 1] - c[k]);
            }
            for (o, v) in line.iter_mut().zip(&c) {
                *o = *v as f32;
            }
        });
    }
}

#[inline]
fn bspline_weights(t: f64) -> [f64; 4] {
    let t2 = t * t;
    let t3 = t2 * t;
    [
        (1.0 - t).powi(3) / 6.0,
        (4.0 - 6.0 * t2 + 3.0 * t3) / 6.0,
        (1.0 + 3.0 * t + 3.0 * t2 - 3.0 * t3) / 6.0,
        t3 / 6.0,
    ]
}

#[inline]
fn mirror(i: i64, n: usize) -> usize {
    let n = n as i64;
    if n == 1 {
        return 0;
    }
    let period = 2 * n - 2;
    let mut i = i.rem_euclid(period);
    if i >= n {
        i = period - i;
    }
    i as usize
}

fn resample_bspline(
    src: &Volume<f32>,
    target: &VolumeGeometry,
    fill: f32,
    ctx: &JobContext,
) -> Result<Volume<f32>, PreprocessError> {
    let sd = src.dims();
    let mut coef = src.data().to_vec();
    bspline_coefficients(&mut coef, sd);
    let m: Matrix4<f64> = src.geometry().voxel_from_world() * target.world_from_voxel();
    let [nx, ny, nz] = target.dims;
    let mut out = vec![fill; target.voxel_count()];
    let done = AtomicUsize::new(0);
    let cancelled = AtomicBool::new(false);
    let (sx, sxy) = (sd[0], sd[0] * sd[1]);
    out.par_chunks_mut(nx * ny)
        .enumerate()
        .for_each(|(k, slice)| {
            if cancelled.load(Ordering::Relaxed) {
                return;
            }
            for j in 0..ny {
                for i in 0..nx {
                    let p = m.transform_point(&Point3::new(i as f64, j as f64, k as f64));
                    let p = [p.x, p.y, p.z];
                    if (0..3).any(|a| !(p[a] >= -0.5 && p[a] <= sd[a] as f64 - 0.5)) {
                        continue;
                    }
                    let mut idx = [[0usize; 4]; 3];
                    let mut w = [[0f64; 4]; 3];
                    for a in 0..3 {
                        let f = p[a].floor();
                        w[a] = bspline_weights(p[a] - f);
                        for t in 0..4 {
                            idx[a][t] = mirror(f as i64 - 1 + t as i64, sd[a]);
                        }
                    }
                    let mut acc = 0.0f64;
                    for (tz, wz) in w[2].iter().enumerate() {
                        for (ty, wy) in w[1].iter().enumerate() {
                            let base = idx[2][tz] * sxy + idx[1][ty] * sx;
                            let mut row = 0.0f64;
                            for (tx, wx) in w[0].iter().enumerate() {
                                row += wx * coef[base + idx[0][tx]] as f64;
                            }
                            acc += wz * wy * row;
                        }
                    }
                    slice[j * nx + i] = acc as f32;
                }
            }
            let d = done.fetch_add(1, Ordering::Relaxed) + 1;
            if step(ctx, d, nz).is_err() {
                cancelled.store(true, Ordering::Relaxed);
            }
        });
    if cancelled.into_inner() {
        return Err(PreprocessError::Cancelled);
    }
    Ok(Volume::new(target.clone(), out)?)
}

/// The grid with `spacing_mm` along every axis covering the same field of view (origin kept,
/// `size = round(old size × old spacing / new spacing)`, as ITK/SimpleITK do).
pub fn isotropic_geometry(
    g: &VolumeGeometry,
    spacing_mm: f64,
) -> Result<VolumeGeometry, PreprocessError> {
    if !(spacing_mm.is_finite() && spacing_mm > 0.0) {
        return Err(invalid("spacing_mm", format!("{spacing_mm} is not > 0")));
    }
    let dims = [0, 1, 2]
        .map(|a| ((g.dims[a] as f64 * g.spacing_mm[a] / spacing_mm).round() as usize).max(1));
    Ok(VolumeGeometry::new(
        dims,
        [spacing_mm; 3],
        g.origin_mm,
        g.direction,
    )?)
}

/// Crops to voxels `lo[a] ..= hi[a]` (inclusive, clamped to the grid). Geometry exact:
/// the new first voxel sits where the old voxel `lo` was.
pub fn crop_voxels(
    vol: &Volume<f32>,
    lo: [i64; 3],
    hi: [i64; 3],
) -> Result<Volume<f32>, PreprocessError> {
    let g = vol.geometry();
    let mut a0 = [0usize; 3];
    let mut dims = [0usize; 3];
    for a in 0..3 {
        let l = lo[a].max(0);
        let h = hi[a].min(g.dims[a] as i64 - 1);
        if h < l {
            return Err(invalid(
                "crop box",
                format!(
                    "axis {a}: {}..={} misses the grid 0..{}",
                    lo[a], hi[a], g.dims[a]
                ),
            ));
        }
        a0[a] = l as usize;
        dims[a] = (h - l + 1) as usize;
    }
    let o = g.world_from_voxel_point(a0.map(|v| v as f64));
    let ng = VolumeGeometry::new(dims, g.spacing_mm, [o.x, o.y, o.z], g.direction)?;
    let src = vol.data();
    let mut data = Vec::with_capacity(ng.voxel_count());
    for k in 0..dims[2] {
        for j in 0..dims[1] {
            let start = g.linear_index(a0[0], a0[1] + j, a0[2] + k);
            data.extend_from_slice(&src[start..start + dims[0]]);
        }
    }
    Ok(Volume::new(ng, data)?)
}

/// Crops to the voxels whose centres lie inside the world (LPS mm) box spanned by two corners.
pub fn crop_world(
    vol: &Volume<f32>,
    corner_a_mm: [f64; 3],
    corner_b_mm: [f64; 3],
) -> Result<Volume<f32>, PreprocessError> {
    let g = vol.geometry();
    let (mut lo, mut hi) = ([f64::INFINITY; 3], [f64::NEG_INFINITY; 3]);
    for n in 0..8 {
        let c = [0, 1, 2].map(|a| {
            if n >> a & 1 == 0 {
                corner_a_mm[a]
            } else {
                corner_b_mm[a]
            }
        });
        let v = g.voxel_from_world_point(Point3::from(c));
        for a in 0..3 {
            lo[a] = lo[a].min(v[a]);
            hi[a] = hi[a].max(v[a]);
        }
    }
    let lo_i = lo.map(|v| (v - 1e-6).ceil() as i64);
    let hi_i = hi.map(|v| (v + 1e-6).floor() as i64);
    crop_voxels(vol, lo_i, hi_i)
}

/// Canonical axis orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Canonical {
    /// `i` → Left, `j` → Posterior, `k` → Superior (DICOM order).
    Lps,
    /// `i` → Right, `j` → Anterior, `k` → Superior (NIfTI/neurological order).
    Ras,
}

/// Permutes and flips axes so `i, j, k` run closest to the canonical world axes. Exact: every
/// voxel keeps its value and its world position; no interpolation.
pub fn reorient(vol: &Volume<f32>, to: Canonical) -> Result<Volume<f32>, PreprocessError> {
    let g = vol.geometry();
    let want_positive = match to {
        Canonical::Lps => [true, true, true],
        Canonical::Ras => [false, false, true],
    };
    // For each new axis: which old axis, and whether it is reversed.
    let mut from = [usize::MAX; 3];
    let mut flip = [false; 3];
    for old in 0..3 {
        let (w, positive) = g.closest_world_axis(old);
        if from[w] != usize::MAX {
            return Err(PreprocessError::Geometry(format!(
                "axes {} and {old} both run closest to world axis {w}: too oblique to reorient without interpolation",
                from[w]
            )));
        }
        from[w] = old;
        flip[w] = positive != want_positive[w];
    }
    let dims = [0, 1, 2].map(|a| g.dims[from[a]]);
    let spacing = [0, 1, 2].map(|a| g.spacing_mm[from[a]]);
    let mut dir = Matrix3::zeros();
    let mut first_old = [0.0; 3];
    for a in 0..3 {
        let col = g.direction.column(from[a]) * if flip[a] { -1.0 } else { 1.0 };
        dir.set_column(a, &col);
        first_old[from[a]] = if flip[a] {
            (g.dims[from[a]] - 1) as f64
        } else {
            0.0
        };
    }
    let o = g.world_from_voxel_point(first_old);
    let ng = VolumeGeometry::new(dims, spacing, [o.x, o.y, o.z], dir)?;
    let src = vol.data();
    let data: Vec<f32> = (0..ng.voxel_count())
        .into_par_iter()
        .map(|n| {
            let new = ng.index3(n);
            let mut old = [0usize; 3];
            for a in 0..3 {
                old[from[a]] = if flip[a] {
                    dims[a] - 1 - new[a]
                } else {
                    new[a]
                };
            }
            src[g.linear_index(old[0], old[1], old[2])]
        })
        .collect();
    Ok(Volume::new(ng, data)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bspline_interpolates_samples_and_cubics() {
        let g = VolumeGeometry::axis_aligned([24, 20, 18], [1.0, 1.2, 1.5], [0.0; 3]).expect("g");
        let gg = g.clone();
        // A smooth field: B-spline interpolation should beat trilinear by far.
        let f = move |p: Point3<f64>| {
            ((p.x * 0.25).sin() * (p.y * 0.2).cos() + 0.01 * p.z * p.z) as f32
        };
        let v = Volume::from_fn(g.clone(), |[i, j, k]| {
            f(gg.world_from_voxel_point([i as f64, j as f64, k as f64]))
        });
        let ctx = JobContext::detached();
        let same = resample_to(&v, &g, Kernel::CubicBSpline, 0.0, &ctx).expect("ok");
        let err_same = crate::preprocess::metrics::rmse(&same, &v, None);
        assert!(err_same < 1e-4, "interpolating at the samples: {err_same}");
        let target =
            VolumeGeometry::axis_aligned([30, 25, 14], [0.63, 0.71, 0.93], [3.3, 4.1, 2.7])
                .expect("g");
        let tg = target.clone();
        let truth = Volume::from_fn(target.clone(), |[i, j, k]| {
            f(tg.world_from_voxel_point([i as f64, j as f64, k as f64]))
        });
        let cubic = resample_to(&v, &target, Kernel::CubicBSpline, 0.0, &ctx).expect("ok");
        let lin = resample_to(&v, &target, Kernel::Linear, 0.0, &ctx).expect("ok");
        let (ec, el) = (
            crate::preprocess::metrics::rmse(&cubic, &truth, None),
            crate::preprocess::metrics::rmse(&lin, &truth, None),
        );
        assert!(ec < 0.5 * el, "cubic {ec} vs linear {el}");
    }

    #[test]
    fn crop_keeps_world_positions() {
        let rot = nalgebra::Rotation3::from_euler_angles(0.1, 0.2, 0.3).into_inner();
        let g = VolumeGeometry::new([10, 9, 8], [0.5, 0.7, 1.1], [1.0, 2.0, 3.0], rot).expect("g");
        let v = Volume::from_fn(g.clone(), |[i, j, k]| (i + 10 * j + 100 * k) as f32);
        let c = crop_voxels(&v, [2, 3, -4], [5, 100, 4]).expect("ok");
        assert_eq!(c.dims(), [4, 6, 5]);
        for (n, val) in c.data().iter().enumerate() {
            let [i, j, k] = c.geometry().index3(n);
            let w = c
                .geometry()
                .world_from_voxel_point([i as f64, j as f64, k as f64]);
            let old = g.voxel_from_world_point(w).map(|x| x.round() as usize);
            assert_eq!(*val, v.at(old[0], old[1], old[2]));
        }
        assert!(crop_voxels(&v, [20, 0, 0], [30, 1, 1]).is_err());
        // World box around voxel centres 2..=4 along i of an axis-aligned grid.
        let ga = VolumeGeometry::axis_aligned([10, 4, 4], [2.0, 1.0, 1.0], [-10.0, 0.0, 0.0])
            .expect("g");
        let va = Volume::from_fn(ga, |[i, _, _]| i as f32);
        let w = crop_world(&va, [-6.0, -1.0, -1.0], [-1.5, 10.0, 10.0]).expect("ok");
        assert_eq!(w.dims(), [3, 4, 4]);
        assert_eq!(w.at(0, 0, 0), 2.0);
        assert_eq!(w.geometry().origin_mm, [-6.0, 0.0, 0.0]);
    }

    #[test]
    fn reorient_is_exact_and_canonical() {
        // i → Right, j → Inferior, k → Posterior ("RIP").
        let dir = Matrix3::new(-1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, -1.0, 0.0);
        let g = VolumeGeometry::new([5, 6, 7], [0.5, 0.7, 1.1], [3.0, -2.0, 8.0], dir).expect("g");
        let v = Volume::from_fn(g.clone(), |[i, j, k]| (i + 10 * j + 100 * k) as f32);
        for (to, code) in [(Canonical::Lps, "LPS"), (Canonical::Ras, "RAS")] {
            let r = reorient(&v, to).expect("ok");
            assert_eq!(r.geometry().orientation_code(), code);
            for (n, val) in r.data().iter().enumerate() {
                let [i, j, k] = r.geometry().index3(n);
                let w = r
                    .geometry()
                    .world_from_voxel_point([i as f64, j as f64, k as f64]);
                let old = g.voxel_from_world_point(w);
                let oi = old.map(|x| x.round());
                assert!(
                    (0..3).all(|a| (old[a] - oi[a]).abs() < 1e-9),
                    "not on the old grid"
                );
                assert_eq!(*val, v.at(oi[0] as usize, oi[1] as usize, oi[2] as usize));
            }
        }
    }

    #[test]
    fn isotropic_grid_covers_field_of_view() {
        let g = VolumeGeometry::axis_aligned([100, 80, 30], [0.8, 0.8, 3.0], [0.0; 3]).expect("g");
        let iso = isotropic_geometry(&g, 0.8).expect("ok");
        assert_eq!(iso.dims, [100, 80, 113]);
        assert_eq!(iso.spacing_mm, [0.8; 3]);
    }
}
