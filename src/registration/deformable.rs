//! B-spline free-form deformation on top of a linear registration.
//!
//! The deformation lives in fixed space: `y = A · (x + d(x))`, with `d` a cubic B-spline over
//! a control grid of `control_spacing_mm` aligned with the world axes and covering the fixed
//! image. The metric (Mattes MI by default) drives it with an analytic gradient; a discrete
//! bending penalty (squared second differences of the coefficients) keeps it smooth.

use super::linear::Level;
use super::metric::{self, Metric};
use crate::jobs::{Cancelled, JobContext};
use crate::volume::{Volume, VolumeGeometry};
use nalgebra::{Matrix4, Point3, Vector3};
use rayon::prelude::*;

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BSplineSettings {
    /// Distance between control points (mm) at the finest level; coarser levels double it.
    pub control_spacing_mm: f64,
    /// Weight of the bending penalty relative to the metric.
    pub bending_weight: f64,
    pub max_iterations: usize,
}

impl Default for BSplineSettings {
    fn default() -> Self {
        Self {
            control_spacing_mm: 16.0,
            bending_weight: 0.05,
            max_iterations: 150,
        }
    }
}

/// A cubic B-spline displacement field `d(x)` in fixed world millimetres.
#[derive(Debug, Clone, PartialEq)]
pub struct BSplineDeformation {
    /// World position of control point `(0, 0, 0)`.
    pub origin_mm: Vector3<f64>,
    pub spacing_mm: f64,
    pub dims: [usize; 3],
    /// Displacement coefficients (mm), `i` fastest.
    pub coefficients: Vec<Vector3<f64>>,
}

#[inline]
fn b3(t: f64) -> [f64; 4] {
    let t2 = t * t;
    let t3 = t2 * t;
    let omt = 1.0 - t;
    [
        omt * omt * omt / 6.0,
        (3.0 * t3 - 6.0 * t2 + 4.0) / 6.0,
        (-3.0 * t3 + 3.0 * t2 + 3.0 * t + 1.0) / 6.0,
        t3 / 6.0,
    ]
}

impl BSplineDeformation {
    /// A zero field whose support covers `fixed` (one extra control point below, two above).
    pub fn covering(fixed: &VolumeGeometry, spacing_mm: f64) -> Self {
        let w = fixed.world_from_voxel();
        let d = fixed.dims.map(|n| (n - 1) as f64);
        let mut lo = Vector3::repeat(f64::INFINITY);
        let mut hi = Vector3::repeat(f64::NEG_INFINITY);
        for corner in 0..8 {
            let p = [0, 1, 2].map(|a| if corner >> a & 1 == 1 { d[a] } else { 0.0 });
            let q = w.transform_point(&Point3::from(p));
            lo = lo.inf(&q.coords);
            hi = hi.sup(&q.coords);
        }
        let origin_mm = lo - Vector3::repeat(spacing_mm);
        let dims = [0, 1, 2].map(|a| ((hi[a] - lo[a]) / spacing_mm).floor() as usize + 4);
        Self {
            origin_mm,
            spacing_mm,
            dims,
            coefficients: vec![Vector3::zeros(); dims[0] * dims[1] * dims[2]],
        }
    }

    /// The same displacement on a finer control grid (sampled and refitted by averaging),
    /// so a coarse level's result seeds the next one.
    pub fn refined(&self, fixed: &VolumeGeometry, spacing_mm: f64) -> Self {
        let mut out = Self::covering(fixed, spacing_mm);
        // Interpolating the field at the new control points is a good starting approximation
        // (exact refinement would need the B-spline subdivision rule for non-dyadic grids).
        let [nx, ny, _] = out.dims;
        let origin = out.origin_mm;
        let h = out.spacing_mm;
        out.coefficients = (0..out.coefficients.len())
            .into_par_iter()
            .map(|n| {
                let (i, j, k) = (n % nx, (n / nx) % ny, n / (nx * ny));
                let p = origin + Vector3::new(i as f64, j as f64, k as f64) * h;
                self.displacement(&Point3::from(p))
            })
            .collect();
        out
    }

    #[inline]
    fn support(&self, p: &Point3<f64>) -> Option<([usize; 3], [[f64; 4]; 3])> {
        let mut base = [0usize; 3];
        let mut w = [[0f64; 4]; 3];
        for a in 0..3 {
            let u = (p[a] - self.origin_mm[a]) / self.spacing_mm;
            let f = u.floor();
            let b = f as i64 - 1;
            if b < 0 || b + 3 >= self.dims[a] as i64 {
                return None;
            }
            base[a] = b as usize;
            w[a] = b3(u - f);
        }
        Some((base, w))
    }

    /// `d(p)`; zero outside the control grid's support.
    pub fn displacement(&self, p: &Point3<f64>) -> Vector3<f64> {
        let Some((base, w)) = self.support(p) else {
            return Vector3::zeros();
        };
        let [nx, ny, _] = self.dims;
        let mut d = Vector3::zeros();
        for (c, wz) in w[2].iter().enumerate() {
            for (b, wy) in w[1].iter().enumerate() {
                let row = (base[0]) + nx * ((base[1] + b) + ny * (base[2] + c));
                let wyz = wy * wz;
                for (a, wx) in w[0].iter().enumerate() {
                    d += self.coefficients[row + a] * (wx * wyz);
                }
            }
        }
        d
    }

    /// `x` with `x + d(x) = q`, by fixed-point iteration (converges while the field's
    /// Jacobian stays well below 1, which the bending penalty ensures).
    pub fn inverse_point(&self, q: &Point3<f64>) -> Point3<f64> {
        let mut x = *q;
        for _ in 0..50 {
            let next = q - self.displacement(&x);
            if (next - x).norm() < 1e-6 {
                return next;
            }
            x = next;
        }
        x
    }

    /// Smallest Jacobian determinant of `x ↦ x + d(x)` over a grid of points (folding < 0).
    pub fn min_jacobian_determinant(&self) -> f64 {
        let h = self.spacing_mm;
        let step = h / 2.0;
        let e = 1e-3 * h;
        // Stay strictly inside the support (u in [1, d - 2)) so finite differences never straddle
        // its edge.
        let n = self
            .dims
            .map(|d| ((d as f64 - 3.25) * 2.0).floor().max(1.0) as usize);
        let start = self.origin_mm + Vector3::repeat(1.25 * h);
        (0..n[2])
            .into_par_iter()
            .map(|k| {
                let mut min = f64::INFINITY;
                for j in 0..n[1] {
                    for i in 0..n[0] {
                        let p =
                            Point3::from(start + Vector3::new(i as f64, j as f64, k as f64) * step);
                        let mut jac = nalgebra::Matrix3::identity();
                        for a in 0..3 {
                            let mut dp = Vector3::zeros();
                            dp[a] = e;
                            let col = (self.displacement(&(p + dp)) - self.displacement(&(p - dp)))
                                / (2.0 * e);
                            jac.set_column(a, &(jac.column(a) + col));
                        }
                        min = min.min(jac.determinant());
                    }
                }
                min
            })
            .reduce(|| f64::INFINITY, f64::min)
    }

    pub fn resample(
        &self,
        moving: &Volume<f32>,
        fixed: &VolumeGeometry,
        moving_from_fixed: &Matrix4<f64>,
        fill: f32,
    ) -> Volume<f32> {
        let w = fixed.world_from_voxel();
        let v = moving.geometry().voxel_from_world() * moving_from_fixed;
        Volume::from_fn(fixed.clone(), |[i, j, k]| {
            let x = w.transform_point(&Point3::new(i as f64, j as f64, k as f64));
            let p = v.transform_point(&(x + self.displacement(&x)));
            moving.sample_trilinear([p.x, p.y, p.z]).unwrap_or(fill)
        })
    }

    pub fn resample_labels(
        &self,
        labels: &Volume<u16>,
        fixed: &VolumeGeometry,
        moving_from_fixed: &Matrix4<f64>,
    ) -> Volume<u16> {
        let w = fixed.world_from_voxel();
        let v = labels.geometry().voxel_from_world() * moving_from_fixed;
        Volume::from_fn(fixed.clone(), |[i, j, k]| {
            let x = w.transform_point(&Point3::new(i as f64, j as f64, k as f64));
            let p = v.transform_point(&(x + self.displacement(&x)));
            crate::volume::resample::nearest_at(labels, [p.x, p.y, p.z]).unwrap_or(0)
        })
    }

    /// Similarity and valid fraction on a level's samples.
    pub fn evaluate(&self, level: &Level, linear: &Matrix4<f64>, metric: Metric) -> (f64, f64) {
        let e = eval(self, level, linear, metric, false);
        (e.0, e.2)
    }

    fn bending(&self) -> (f64, Vec<Vector3<f64>>) {
        let [nx, ny, nz] = self.dims;
        let idx = |i: usize, j: usize, k: usize| i + nx * (j + ny * k);
        let mut energy = 0.0;
        let mut grad = vec![Vector3::zeros(); self.coefficients.len()];
        let c = &self.coefficients;
        for k in 0..nz {
            for j in 0..ny {
                for i in 0..nx {
                    let here = idx(i, j, k);
                    let neighbours = [
                        (i > 0 && i + 1 < nx).then(|| (idx(i - 1, j, k), idx(i + 1, j, k))),
                        (j > 0 && j + 1 < ny).then(|| (idx(i, j - 1, k), idx(i, j + 1, k))),
                        (k > 0 && k + 1 < nz).then(|| (idx(i, j, k - 1), idx(i, j, k + 1))),
                    ];
                    for (a, b) in neighbours.into_iter().flatten() {
                        let s = c[a] - c[here] * 2.0 + c[b];
                        energy += s.norm_squared();
                        grad[a] += s * 2.0;
                        grad[b] += s * 2.0;
                        grad[here] -= s * 4.0;
                    }
                }
            }
        }
        let n = self.coefficients.len().max(1) as f64;
        // Per control point, so the weight does not depend on the grid size.
        let norm = 1.0 / n;
        grad.iter_mut().for_each(|g| *g *= norm);
        (energy * norm, grad)
    }
}

/// Similarity, `∂similarity/∂coefficients`, valid fraction.
fn eval(
    field: &BSplineDeformation,
    level: &Level,
    linear: &Matrix4<f64>,
    metric: Metric,
    want_gradient: bool,
) -> (f64, Vec<Vector3<f64>>, f64) {
    let centre = level.samples_centre_mm;
    let vm = level.moving.voxel_from_world * linear;
    let a_t = linear.fixed_view::<3, 3>(0, 0).transpose();
    let looked_up: Vec<Option<(f64, Vector3<f64>)>> = level
        .samples
        .rel_mm
        .par_iter()
        .map(|rel| {
            let x = Point3::from(rel + centre);
            let q = x + field.displacement(&x);
            let p = vm.transform_point(&q);
            level.moving.sample([p.x, p.y, p.z])
        })
        .collect();
    let moving_values: Vec<Option<f64>> = looked_up.iter().map(|h| h.map(|(v, _)| v)).collect();
    let e = metric::evaluate(
        metric,
        level.bins.as_ref(),
        &level.samples.values,
        &level.samples.bins,
        &moving_values,
        want_gradient,
    );
    let valid = e.valid as f64 / level.samples.len().max(1) as f64;
    if !want_gradient {
        return (e.value, Vec::new(), valid);
    }
    let n = field.coefficients.len();
    let [nx, ny, _] = field.dims;
    let grad = level
        .samples
        .rel_mm
        .par_iter()
        .zip(looked_up.par_iter())
        .zip(e.d_value_d_moving.par_iter())
        .fold(
            || vec![Vector3::zeros(); n],
            |mut acc, ((rel, hit), factor)| {
                if let Some((_, g)) = hit {
                    if *factor != 0.0 {
                        let x = Point3::from(rel + centre);
                        if let Some((base, w)) = field.support(&x) {
                            // ∂y/∂φ = A·β, so the coefficient gradient is β · Aᵀ∇M · factor.
                            let v = a_t * g * *factor;
                            for (c, wz) in w[2].iter().enumerate() {
                                for (b, wy) in w[1].iter().enumerate() {
                                    let row = base[0] + nx * ((base[1] + b) + ny * (base[2] + c));
                                    for (aa, wx) in w[0].iter().enumerate() {
                                        acc[row + aa] += v * (wx * wy * wz);
                                    }
                                }
                            }
                        }
                    }
                }
                acc
            },
        )
        .reduce(
            || vec![Vector3::zeros(); n],
            |mut a, b| {
                for (x, y) in a.iter_mut().zip(b) {
                    *x += y;
                }
                a
            },
        );
    (e.value, grad, valid)
}

/// Per-level record of the B-spline stage.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DeformableLevelReport {
    pub control_spacing_mm: f64,
    pub control_points: usize,
    pub iterations: usize,
    pub metric_start: f64,
    pub metric_end: f64,
    pub duration_secs: f64,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DeformableReport {
    pub levels: Vec<DeformableLevelReport>,
    pub max_displacement_mm: f64,
    /// Below zero means the field folds somewhere (it should not).
    pub min_jacobian_determinant: f64,
}

impl DeformableReport {
    pub fn finish(&mut self, field: &BSplineDeformation) {
        self.max_displacement_mm = field
            .coefficients
            .iter()
            .map(|c| c.norm())
            .fold(0.0, f64::max);
        self.min_jacobian_determinant = field.min_jacobian_determinant();
    }
}

/// Optimises a B-spline field on one level by regular-step descent where the step is the
/// largest control-point move (mm), halved whenever the gradient reverses.
pub fn optimise_bspline(
    level: &Level,
    fixed: &VolumeGeometry,
    linear: &Matrix4<f64>,
    previous: Option<BSplineDeformation>,
    settings: &BSplineSettings,
    metric: Metric,
    ctx: &JobContext,
) -> Result<(BSplineDeformation, DeformableLevelReport), Cancelled> {
    let started = std::time::Instant::now();
    // Finest level gets the requested spacing; coarser ones twice it.
    let spacing = if level.spacing_mm
        >= 2.0
            * fixed
                .spacing_mm
                .iter()
                .copied()
                .fold(f64::INFINITY, f64::min)
        && previous.is_none()
    {
        settings.control_spacing_mm * 2.0
    } else {
        settings.control_spacing_mm
    };
    let field = match previous {
        Some(p) if (p.spacing_mm - spacing).abs() < 1e-9 => p,
        Some(p) => p.refined(fixed, spacing),
        None => BSplineDeformation::covering(fixed, spacing),
    };
    let lambda = settings.bending_weight;
    let template = field.clone();
    let unflatten = |x: &[f64]| -> BSplineDeformation {
        let mut f = template.clone();
        for (c, v) in f.coefficients.iter_mut().zip(x.chunks_exact(3)) {
            *c = Vector3::new(v[0], v[1], v[2]);
        }
        f
    };
    let metric_seen = std::cell::Cell::new((f64::NAN, f64::NAN));
    let cost = |x: &[f64]| {
        let f = unflatten(x);
        let (s, g, _) = eval(&f, level, linear, metric, true);
        let (be, bg) = f.bending();
        let (first, _) = metric_seen.get();
        metric_seen.set((if first.is_nan() { s } else { first }, s));
        let grad: Vec<f64> = g
            .iter()
            .zip(&bg)
            .flat_map(|(gm, gb)| {
                let v = -gm + gb * lambda;
                [v.x, v.y, v.z]
            })
            .collect();
        (-s + lambda * be, grad)
    };
    let x0: Vec<f64> = field
        .coefficients
        .iter()
        .flat_map(|c| [c.x, c.y, c.z])
        .collect();
    let scales = vec![1.0; x0.len()];
    let r = super::optimizer::lbfgs(
        cost,
        &x0,
        &scales,
        super::optimizer::StepSettings {
            initial_step_mm: level.spacing_mm.max(0.5),
            min_step_mm: 0.01 * level.spacing_mm,
            max_iterations: settings.max_iterations,
            relaxation: 0.5,
        },
        ctx,
    )?;
    let best = unflatten(&r.params);
    let iterations = r.iterations;
    let metric_start = metric_seen.get().0;
    let metric_end = eval(&best, level, linear, metric, false).0;
    let report = DeformableLevelReport {
        control_spacing_mm: best.spacing_mm,
        control_points: best.coefficients.len(),
        iterations,
        metric_start,
        metric_end,
        duration_secs: started.elapsed().as_secs_f64(),
    };
    Ok((best, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bspline_weights_sum_to_one() {
        for t in [0.0, 0.3, 0.999] {
            let w = b3(t);
            assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn constant_coefficients_give_a_constant_shift_and_invert() {
        let g = VolumeGeometry::axis_aligned([30, 30, 30], [1.0; 3], [0.0; 3]).expect("valid");
        let mut f = BSplineDeformation::covering(&g, 8.0);
        f.coefficients
            .iter_mut()
            .for_each(|c| *c = Vector3::new(1.5, -2.0, 0.5));
        let d = f.displacement(&Point3::new(12.3, 4.5, 20.0));
        assert!((d - Vector3::new(1.5, -2.0, 0.5)).norm() < 1e-12);
        assert!((f.min_jacobian_determinant() - 1.0).abs() < 1e-6);
        // A smooth bump: the inverse undoes the forward map.
        let mut bump = BSplineDeformation::covering(&g, 8.0);
        let n = bump.coefficients.len();
        bump.coefficients[n / 2] = Vector3::new(3.0, 1.0, -2.0);
        for p in [Point3::new(14.0, 15.0, 13.0), Point3::new(3.0, 25.0, 9.0)] {
            let q = p + bump.displacement(&p);
            let back = bump.inverse_point(&q);
            assert!((back - p).norm() < 1e-5);
        }
    }
}
