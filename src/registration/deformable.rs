//! B-spline free-form deformation on top of a linear registration.
//!
//! The deformation lives in fixed space: `y = A · (x + d(x))`, with `d` a cubic B-spline over
//! a control grid of `control_spacing_mm` aligned with the world axes and covering the fixed
//! image. A similarity with an analytic gradient drives it: the registration's own metric
//! (Mattes MI) on random samples by default, or normalised gradient fields (see `ngf`); a
//! discrete bending penalty (squared second differences of the coefficients) and a divergence
//! penalty keep it smooth.
//!
//! What limits it on the warped benchmark (TRE 1.90 mm, target 1 mm): not the grid (its best
//! fit of the true warp is 0.08 mm on 32 mm control points, see
//! `bspline_grids_represent_the_benchmark_warp`), and not mainly the linear stage: started at
//! the true linear motion and kept there (`bench register --oracle-linear`) the field still
//! ends at 1.51 mm (1.64 mm on noise- and bias-free images). The metric is: with a weaker
//! bending penalty (200 instead of 800) MI keeps rising while the field drifts to 17 mm
//! displacements and 2.9–3.4 mm TRE, from the true linear start and on clean images alike.
//! The penalties hold the field near a compromise that recovers about half of the warp.
//!
//! MIND-SSC (see `mind`), the literature's CT↔MR answer, did not beat it either: best found
//! TRE 1.93 mm (p95 3.33, max 4.46) vs MI's 1.90 (p95 3.55, max 4.53), at 8.8 s wall instead
//! of 2.2 s, fitted on the 2.4 mm images with a variance floor of 10 × the median, bending
//! 0.5 and divergence 1, MIND's own defaults (`BSplineSettings::for_metric`; `bench register
//! --deformable-only --deformable-metric mind`). On the 4.8 mm images MI uses every MIND field
//! (bending 0.8–800) raised MIND where it was fitted and lowered it on the finer kept level,
//! so the pipeline discarded it.
//!
//! elastix 5.0.1 on the same pair (`bench register --write-phantom`, `scripts/elastix_peer.py`:
//! rigid → affine → B-spline, Mattes MI, ASGD with fresh random samples every iteration,
//! 3 levels, grid 128 → 64 → 32 mm) does no better: TRE 2.34 mm with 500 iterations a level,
//! 2.29 mm with a bending energy penalty, after an affine stage at 2.76 mm (ours: 3.09 mm
//! linear, 1.90 mm in all). The limit is the phantom's uniform brain, not the optimiser: with
//! a smooth pattern inside it (`bench register --textured 0.25`, an experiment behind a flag,
//! never the benchmark) the same defaults reach 1.44 mm, and 0.86 mm fitted on the 2.4 mm
//! images (`--bspline-image-mm 2.4`).

use super::linear::Level;
use super::metric::{self, Metric};
use crate::jobs::{Cancelled, JobContext};
use crate::volume::{Volume, VolumeGeometry};
use nalgebra::{Matrix4, Point3, Vector3};
use rayon::prelude::*;

/// What drives the B-spline stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub enum DeformableMetric {
    /// The registration's own metric (Mattes MI for CT↔MR) on random samples. Still the
    /// default: on the warped benchmark it ends at TRE 1.90 mm, NGF at 2.56 mm (bending 800;
    /// 2.69 mm at bending 200, NGF rising as the field leaves the truth).
    #[default]
    Intensity,
    /// Normalised gradient fields on the level's edge voxels (see `ngf`).
    NormalizedGradientFields,
    /// SSD of MIND-SSC descriptors on the level's whole fixed grid (see `mind`). Its scale
    /// is about a hundredth of MI's: the default bending 800 holds it at the identity, 0.5–8
    /// lets it move.
    Mind,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BSplineSettings {
    pub metric: DeformableMetric,
    /// NGF: ε (per image) as a multiple of its noise-level gradient.
    pub ngf_epsilon_scale: f64,
    /// MIND: the descriptor's variance `V` kept at least this multiple of its median (see
    /// `mind::mind_ssc`); 0 is Heinrich's clamp alone. On the benchmark (2.4 mm images):
    /// floor 0 TRE 2.63 mm and 4: 2.40 mm at bending 8; 10: 2.06 and 30: 2.16 at bending 2.
    pub mind_noise_floor: f64,
    /// Distance between control points (mm) at the last B-spline level; each coarser level
    /// doubles it (see `grid_levels`).
    pub control_spacing_mm: f64,
    /// Weight (mm²) of the bending penalty, the mean of |∂²d|² over the control grid,
    /// relative to the metric.
    pub bending_weight: f64,
    pub max_iterations: usize,
    /// Fixed samples per level for this stage.
    pub samples: usize,
    /// Run an affine stage between the rigid one and the field. Under a local warp the affine
    /// intensity optimum follows the high-contrast outer shells rather than the interior: on
    /// the benchmark it helped a little (TRE 2.63 vs 2.81 mm, bending 0.005), on a port of the
    /// same phantom with other noise it drifted to 9.5 mm, where rigid alone stayed at 3.3 mm.
    pub affine_first: bool,
    /// Control grids, coarse to fine, each half the spacing of the one before and ending at
    /// `control_spacing_mm`. One 32 mm grid (which represents the benchmark warp to 0.3 mm):
    /// a 16 mm grid after it raised MI but moved the isolated-warp TRE from 1.41 to 1.72 mm,
    /// and a 48 mm grid alone ended at 3.3 mm.
    pub grid_levels: usize,
    /// Stop a level once an accepted step moves no coefficient by more than this fraction
    /// of the level's voxel. 0.001 ran every level to its iteration cap on the benchmark for
    /// the same TRE (2.38 mm) at three times the cost, so convergence is not what limits it.
    pub min_step_voxels: f64,
    /// Fixed-image MI bins of equal sample count rather than equal width (see
    /// `SampleSet::assign_bins_by_rank`).
    pub rank_fixed_bins: bool,
    /// Weight of the mean squared divergence of the field (see
    /// `BSplineDeformation::divergence`).
    pub divergence_weight: f64,
    /// Pyramid spacing (mm) of the images the last control grid is fitted on; `None`: the
    /// coarsest level (coarser grids always take the coarse levels). On the benchmark,
    /// 3.6 mm instead of 4.8 mm: TRE 1.85 vs 1.94 mm averaged over four sample seeds (per seed
    /// −0.19 to +0.07 mm) for 0.5–1 s more CPU; 2.4 mm: 1.78 mm on one seed, at twice the
    /// cost. Within the seed spread, so not the default.
    pub image_spacing_mm: Option<f64>,
    /// Draw this stage's samples inside the fixed object only (see
    /// `sampling::foreground_mask`), unless the user gave a fixed mask. Worse on the
    /// benchmark (TRE 2.47 vs 1.90 mm): without the air around the head MI rose from 1.04 to
    /// 1.33 (vs 1.18 with it) on fields 12 mm off the truth.
    pub foreground_samples: bool,
    /// Mattes MI histogram bins of this stage; `None`: the registration's own (32). 16 bins:
    /// TRE 2.3–2.6 mm; 64 bins: 1.96–2.06 mm (three seeds each).
    pub mi_bins: Option<usize>,
}

impl Default for BSplineSettings {
    fn default() -> Self {
        Self {
            metric: DeformableMetric::default(),
            ngf_epsilon_scale: 1.0,
            mind_noise_floor: 10.0,
            control_spacing_mm: 32.0,
            bending_weight: 800.0,
            max_iterations: 150,
            samples: 100_000,
            affine_first: true,
            grid_levels: 1,
            min_step_voxels: 0.01,
            rank_fixed_bins: true,
            divergence_weight: 1000.0,
            image_spacing_mm: None,
            foreground_samples: false,
            mi_bins: None,
        }
    }
}

impl BSplineSettings {
    /// The defaults tuned for `metric`. MIND's SSD is about a hundredth of MI's scale and its
    /// fields fitted on the coarse 4.8 mm images did not hold on finer ones, so it gets weaker
    /// penalties and the 2.4 mm images (the best found on the benchmark, see the module doc).
    pub fn for_metric(metric: DeformableMetric) -> Self {
        let defaults = Self::default();
        match metric {
            DeformableMetric::Mind => Self {
                metric,
                bending_weight: 0.5,
                divergence_weight: 1.0,
                image_spacing_mm: Some(2.4),
                ..defaults
            },
            _ => Self { metric, ..defaults },
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
        let supports = Supports::new(self, level);
        let e = eval(self, level, &supports, linear, metric, false);
        (e.0, e.2)
    }

    /// Mean squared divergence `∇·d` (central differences of the coefficients) over the
    /// control points, and its gradient. Soft tissue is close to incompressible; a field
    /// that locally expands or compresses can raise MI without aligning anything, by
    /// thickening a high-contrast shell (skull, bone) so that the fixed image's
    /// partial-volume samples at its edges all read the moving shell's plateau.
    fn divergence(&self) -> (f64, Vec<Vector3<f64>>) {
        let [nx, ny, nz] = self.dims;
        let idx = |i: usize, j: usize, k: usize| i + nx * (j + ny * k);
        let c = &self.coefficients;
        let inv_2h = 0.5 / self.spacing_mm;
        let mut energy = 0.0;
        let mut grad = vec![Vector3::zeros(); c.len()];
        for k in 1..nz.saturating_sub(1) {
            for j in 1..ny.saturating_sub(1) {
                for i in 1..nx.saturating_sub(1) {
                    let pairs = [
                        (idx(i - 1, j, k), idx(i + 1, j, k)),
                        (idx(i, j - 1, k), idx(i, j + 1, k)),
                        (idx(i, j, k - 1), idx(i, j, k + 1)),
                    ];
                    let div: f64 = pairs
                        .iter()
                        .enumerate()
                        .map(|(a, (lo, hi))| (c[*hi][a] - c[*lo][a]) * inv_2h)
                        .sum();
                    energy += div * div;
                    for (a, (lo, hi)) in pairs.iter().enumerate() {
                        grad[*hi][a] += 2.0 * div * inv_2h;
                        grad[*lo][a] -= 2.0 * div * inv_2h;
                    }
                }
            }
        }
        let norm = 1.0 / c.len().max(1) as f64;
        grad.iter_mut().for_each(|g| *g *= norm);
        (energy * norm, grad)
    }

    fn bending(&self) -> (f64, Vec<Vector3<f64>>) {
        let [nx, ny, nz] = self.dims;
        let idx = |i: usize, j: usize, k: usize| i + nx * (j + ny * k);
        let mut energy = 0.0;
        let mut grad = vec![Vector3::zeros(); self.coefficients.len()];
        let c = &self.coefficients;
        // Second differences over h² approximate ∂²d (1/mm), and their mean over the control
        // points the volume average of |∂²d|², whatever the grid. Unscaled differences made
        // the same smooth field cost (32/16)⁴ = 16 times more on a 32 mm grid than on a 16 mm
        // one: the coarse level, which must carry most of the warp, was over-regularised to
        // half its amplitude.
        let inv_h2 = 1.0 / (self.spacing_mm * self.spacing_mm);
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
                        let s = (c[a] - c[here] * 2.0 + c[b]) * inv_h2;
                        energy += s.norm_squared();
                        grad[a] += s * (2.0 * inv_h2);
                        grad[b] += s * (2.0 * inv_h2);
                        grad[here] -= s * (4.0 * inv_h2);
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

/// Where each sample of a level sits in the control grid. The field lives in fixed space and
/// the samples never move there, so the 64 B-spline weights are computed once per level
/// rather than once per sample per iteration.
pub(crate) struct Supports {
    /// Flat index of the support's first control point; `None` outside the grid's support.
    pub(crate) first: Vec<Option<u32>>,
    pub(crate) weights: Vec<[[f32; 4]; 3]>,
}

impl Supports {
    pub(crate) fn new(field: &BSplineDeformation, level: &Level) -> Self {
        let centre = level.samples_centre_mm;
        let rel = &level.samples.rel_mm;
        Self::from_fn(field, rel.len(), |n| Point3::from(rel[n] + centre))
    }

    /// Supports of `count` points, the `n`-th at `position(n)` (fixed world mm).
    pub(crate) fn from_fn(
        field: &BSplineDeformation,
        count: usize,
        position: impl Fn(usize) -> Point3<f64> + Sync,
    ) -> Self {
        let [nx, ny, _] = field.dims;
        let (first, weights) = (0..count)
            .into_par_iter()
            .with_min_len(CHUNK)
            .map(|n| match field.support(&position(n)) {
                Some((b, w)) => (
                    Some((b[0] + nx * (b[1] + ny * b[2])) as u32),
                    w.map(|a| a.map(|x| x as f32)),
                ),
                None => (None, [[0.0; 4]; 3]),
            })
            .unzip();
        Self { first, weights }
    }

    /// `x + d(x)` for point `i` of the set these supports were built for (`x` itself where the
    /// point lies outside the grid's support).
    #[inline]
    pub(crate) fn displaced(
        &self,
        i: usize,
        x: Point3<f64>,
        field: &BSplineDeformation,
    ) -> Point3<f64> {
        match self.first[i] {
            Some(first) => {
                x + displacement_at(
                    &field.coefficients,
                    field.dims,
                    first as usize,
                    &self.weights[i],
                )
            }
            None => x,
        }
    }
}

/// `Σ_points β(point) · vector(point)` per control point: the chain rule from a per-point
/// derivative with respect to the displacement to the coefficients.
pub(crate) fn scatter_to_coefficients(
    field: &BSplineDeformation,
    supports: &Supports,
    vectors: &[Vector3<f64>],
) -> Vec<Vector3<f64>> {
    let n = field.coefficients.len();
    let [nx, ny, _] = field.dims;
    vectors
        .par_chunks(CHUNK)
        .zip(supports.first.par_chunks(CHUNK))
        .zip(supports.weights.par_chunks(CHUNK))
        .fold(
            || vec![Vector3::zeros(); n],
            |mut acc, ((vs, firsts), weights)| {
                for ((v, first), w) in vs.iter().zip(firsts).zip(weights) {
                    let Some(first) = first else { continue };
                    if *v == Vector3::zeros() {
                        continue;
                    }
                    for (c, wz) in w[2].iter().enumerate() {
                        for (b, wy) in w[1].iter().enumerate() {
                            let row = *first as usize + nx * (b + ny * c);
                            let vyz = v * (wy * wz) as f64;
                            for (aa, wx) in w[0].iter().enumerate() {
                                acc[row + aa] += vyz * *wx as f64;
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
        )
}

/// The voxel index (as a point) of the `n`-th voxel of a grid of `dims`, `i` fastest: the
/// dense metrics (NGF, MIND) walk their level's fixed grid by linear index.
#[inline]
pub(crate) fn voxel_point(n: usize, dims: [usize; 3]) -> Point3<f64> {
    let [nx, ny, _] = dims;
    Point3::new(
        (n % nx) as f64,
        ((n / nx) % ny) as f64,
        (n / (nx * ny)) as f64,
    )
}

/// `d` at one sample from its precomputed support.
#[inline]
fn displacement_at(
    coefficients: &[Vector3<f64>],
    dims: [usize; 3],
    first: usize,
    w: &[[f32; 4]; 3],
) -> Vector3<f64> {
    let [nx, ny, _] = dims;
    let mut d = Vector3::zeros();
    for (c, wz) in w[2].iter().enumerate() {
        for (b, wy) in w[1].iter().enumerate() {
            let row = first + nx * (b + ny * c);
            let wyz = (wy * wz) as f64;
            let cs = &coefficients[row..row + 4];
            d += cs[0] * (w[0][0] as f64 * wyz)
                + cs[1] * (w[0][1] as f64 * wyz)
                + cs[2] * (w[0][2] as f64 * wyz)
                + cs[3] * (w[0][3] as f64 * wyz);
        }
    }
    d
}

/// Similarity, `∂similarity/∂coefficients`, valid fraction.
fn eval(
    field: &BSplineDeformation,
    level: &Level,
    supports: &Supports,
    linear: &Matrix4<f64>,
    metric: Metric,
    want_gradient: bool,
) -> (f64, Vec<Vector3<f64>>, f64) {
    let centre = level.samples_centre_mm;
    let vm = level.moving.voxel_from_world * linear;
    let a_t = linear.fixed_view::<3, 3>(0, 0).transpose();
    let background = level.moving_range.0;
    let looked_up: Vec<Option<(f64, Vector3<f64>)>> = level
        .samples
        .rel_mm
        .par_iter()
        .enumerate()
        .with_min_len(CHUNK)
        .map(|(i, rel)| {
            let q = supports.displaced(i, Point3::from(rel + centre), field);
            let p = vm.transform_point(&q);
            level.moving.sample([p.x, p.y, p.z])
        })
        .collect();
    // A sample pushed out of the moving image reads the background rather than leaving the
    // histogram: a free field would otherwise "improve" the metric by pushing every sample
    // it cannot explain out of the image.
    let moving_values: Vec<Option<f64>> = looked_up
        .iter()
        .map(|h| Some(h.map_or(background, |(v, _)| v)))
        .collect();
    let inside = looked_up.iter().filter(|h| h.is_some()).count();
    let e = metric::evaluate(
        metric,
        level.bins.as_ref(),
        &level.samples.values,
        &level.samples.bins,
        &moving_values,
        want_gradient,
    );
    let valid = inside as f64 / level.samples.len().max(1) as f64;
    if !want_gradient {
        return (e.value, Vec::new(), valid);
    }
    // ∂y/∂φ = A·β, so the coefficient gradient is β · Aᵀ∇M · factor.
    let vectors: Vec<Vector3<f64>> = looked_up
        .par_iter()
        .zip(e.d_value_d_moving.par_iter())
        .with_min_len(CHUNK)
        .map(|(hit, factor)| match hit {
            Some((_, g)) if *factor != 0.0 => a_t * g * *factor,
            _ => Vector3::zeros(),
        })
        .collect();
    let grad = scatter_to_coefficients(field, supports, &vectors);
    (e.value, grad, valid)
}

const CHUNK: usize = 4096;

/// The B-spline stage's similarity on one level, prepared once (sample supports, or the NGF
/// grid with its fixed normals and noise levels).
pub(crate) enum Similarity {
    Samples { supports: Supports, metric: Metric },
    Ngf(Box<super::ngf::NgfGrid>),
    Mind(Box<super::mind::MindGrid>),
}

impl Similarity {
    pub(crate) fn new(
        settings: &BSplineSettings,
        field: &BSplineDeformation,
        level: &Level,
        linear: &Matrix4<f64>,
        metric: Metric,
    ) -> Self {
        match settings.metric {
            DeformableMetric::Intensity => Self::Samples {
                supports: Supports::new(field, level),
                metric,
            },
            DeformableMetric::NormalizedGradientFields => Self::Ngf(Box::new(
                super::ngf::NgfGrid::new(level, field, linear, settings.ngf_epsilon_scale),
            )),
            DeformableMetric::Mind => Self::Mind(Box::new(super::mind::MindGrid::new(
                level,
                field,
                linear,
                settings.mind_noise_floor,
            ))),
        }
    }

    /// Similarity, its gradient with respect to the coefficients (empty unless
    /// `want_gradient`), valid fraction.
    pub(crate) fn evaluate(
        &self,
        field: &BSplineDeformation,
        level: &Level,
        linear: &Matrix4<f64>,
        want_gradient: bool,
    ) -> (f64, Vec<Vector3<f64>>, f64) {
        match self {
            Self::Samples { supports, metric } => {
                eval(field, level, supports, linear, *metric, want_gradient)
            }
            Self::Ngf(grid) => grid.evaluate(field, level, linear, want_gradient),
            Self::Mind(grid) => grid.evaluate(field, want_gradient),
        }
    }
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
    /// Why the field was dropped and the linear result kept, when it was (the field must
    /// raise the similarity on the finest level's samples, which it was not fitted to).
    pub discarded: Option<String>,
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
    spacing: f64,
    settings: &BSplineSettings,
    metric: Metric,
    ctx: &JobContext,
) -> Result<(BSplineDeformation, DeformableLevelReport), Cancelled> {
    let started = std::time::Instant::now();
    // Finest level gets the requested spacing; coarser ones twice it.
    let field = match previous {
        Some(p) if (p.spacing_mm - spacing).abs() < 1e-9 => p,
        Some(p) => p.refined(fixed, spacing),
        None => BSplineDeformation::covering(fixed, spacing),
    };
    let lambda = settings.bending_weight;
    let mu = settings.divergence_weight;
    let similarity = Similarity::new(settings, &field, level, linear, metric);
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
        let (s, g, _) = similarity.evaluate(&f, level, linear, true);
        let (be, bg) = f.bending();
        let (de, dg) = f.divergence();
        let (first, _) = metric_seen.get();
        metric_seen.set((if first.is_nan() { s } else { first }, s));
        let grad: Vec<f64> = g
            .iter()
            .zip(&bg)
            .zip(&dg)
            .flat_map(|((gm, gb), gd)| {
                let v = -gm + gb * lambda + gd * mu;
                [v.x, v.y, v.z]
            })
            .collect();
        (-s + lambda * be + mu * de, grad)
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
            min_step_mm: settings.min_step_voxels * level.spacing_mm,
            max_iterations: settings.max_iterations,
            relaxation: 0.5,
        },
        ctx,
    )?;
    let best = unflatten(&r.params);
    let iterations = r.iterations;
    let metric_start = metric_seen.get().0;
    let metric_end = similarity.evaluate(&best, level, linear, false).0;
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
    use crate::registration::linear::FixedBins;

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

    /// The benchmark's faded sine warp and nothing else: no linear part, both images on the
    /// benchmark CT grid at half resolution (1.8 × 1.8 × 2 mm), MR noise and bias as in the
    /// benchmark. Isolates the B-spline stage from the linear ones.
    fn warp_only_phantom() -> crate::registration::phantom::Phantom {
        use crate::registration::phantom::PhantomSpec;
        let mut spec = PhantomSpec::benchmark(true);
        let g = &spec.fixed;
        spec.fixed = VolumeGeometry::axis_aligned(
            g.dims.map(|n| n / 2),
            g.spacing_mm.map(|s| s * 2.0),
            g.origin_mm,
        )
        .expect("valid");
        spec.moving = spec.fixed.clone();
        spec.truth.linear = Matrix4::identity();
        spec.generate()
    }

    /// Runs the B-spline stage alone from the identity over `schedule` (image spacing, control
    /// spacing), as the pipeline does after its linear stages.
    fn bspline_only(
        ph: &crate::registration::phantom::Phantom,
        schedule: &[(f64, f64)],
        settings: &BSplineSettings,
    ) -> (BSplineDeformation, Vec<DeformableLevelReport>) {
        let metric = Metric::default();
        let centre = Vector3::zeros();
        let identity = Matrix4::identity();
        let mut field = None;
        let mut reports = Vec::new();
        for (n, &(image_mm, grid_mm)) in schedule.iter().enumerate() {
            let level = Level::build(&ph.ct, &ph.mr, image_mm, metric, 1000, &centre, None, 0)
                .with_samples(
                    metric,
                    settings.samples,
                    None,
                    100 + n as u64,
                    if settings.rank_fixed_bins {
                        FixedBins::EqualCount
                    } else {
                        FixedBins::EqualWidth
                    },
                );
            let (f, r) = optimise_bspline(
                &level,
                ph.ct.geometry(),
                &identity,
                field.take(),
                grid_mm,
                settings,
                metric,
                &JobContext::detached(),
            )
            .expect("not cancelled");
            reports.push(r);
            field = Some(f);
        }
        (field.expect("at least one level"), reports)
    }

    #[test]
    fn bspline_stage_alone_recovers_the_benchmark_warp() {
        use crate::registration::qa::target_registration_error;
        let ph = warp_only_phantom();
        let points = ph.target_points(5.0);
        let truth = ph.spec.truth.clone();
        let before = target_registration_error(&points, |p| *p, |p| truth.apply(p));
        let settings = BSplineSettings::default();
        // The pipeline's schedule: one 32 mm grid on the coarse images.
        let schedule = [(3.6, settings.control_spacing_mm)];
        let (field, reports) = bspline_only(&ph, &schedule, &settings);
        let after =
            target_registration_error(&points, |p| p + field.displacement(p), |p| truth.apply(p));
        eprintln!("levels: {reports:#?}");
        eprintln!(
            "warp alone: TRE mean {:.3} max {:.3} mm -> B-spline mean {:.3} max {:.3} mm",
            before.mean_mm, before.max_mm, after.mean_mm, after.max_mm
        );
        assert!(
            before.mean_mm > 1.5,
            "the warp is too weak to test: {before:?}"
        );
        // Measured: 2.61 -> 1.41 mm (was 2.61 -> 2.00 with the unscaled bending penalty, no
        // divergence term and a 32 + 16 mm schedule). The 1 mm is not reached yet:
        // with weaker penalties MI climbs past its value at the truth (1.20 on this level's
        // samples, 1.30-1.40 for fields 4-8 mm off), so the metric, not the optimiser, limits.
        assert!(after.mean_mm < 1.6, "{after:?} from {before:?}");
        assert!(
            after.mean_mm < 0.6 * before.mean_mm,
            "{after:?} from {before:?}"
        );
        assert!(field.min_jacobian_determinant() > 0.0);
    }

    /// A rigidly moved small phantom at its 4 mm level with `samples` fixed samples, and a
    /// random field on a 20 mm grid: where both gradient checks run.
    fn gradient_check_setup(samples: usize) -> (Matrix4<f64>, Level, BSplineDeformation) {
        use crate::registration::phantom::{rigid_about, PhantomSpec, TrueTransform};
        use crate::registration::sampling::Rng;
        let c = Vector3::zeros();
        let truth = TrueTransform {
            linear: rigid_about(&c, [0.0, 0.0, 3.0], [1.0, -1.0, 0.5]),
            warp: None,
        };
        let mut spec = PhantomSpec::small(40, 0.5, truth.clone());
        spec.mr_noise = 0.0;
        let ph = spec.generate();
        let level = Level::build(&ph.ct, &ph.mr, 4.0, Metric::default(), samples, &c, None, 3);
        let mut field = BSplineDeformation::covering(ph.ct.geometry(), 20.0);
        let mut rng = Rng::new(9);
        field
            .coefficients
            .iter_mut()
            .for_each(|v| *v = Vector3::new(rng.normal(), rng.normal(), rng.normal()) * 0.8);
        (truth.linear, level, field)
    }

    /// `grad` against central differences (step `h`) of `value`, on the 12 control points with
    /// the largest gradient, where finite differences are reliable: same direction (cosine
    /// > 0.95) and length within 0.8–1.25.
    fn assert_gradient_matches_finite_differences(
        field: &BSplineDeformation,
        grad: &[Vector3<f64>],
        h: f64,
        value: impl Fn(&BSplineDeformation) -> f64,
    ) {
        let mut order: Vec<usize> = (0..grad.len()).collect();
        order.sort_by(|a, b| grad[*b].norm().total_cmp(&grad[*a].norm()));
        let (mut dot, mut n_fd, mut n_an) = (0.0, 0.0, 0.0);
        for &cp in order.iter().take(12) {
            for axis in 0..3 {
                let mut plus = field.clone();
                plus.coefficients[cp][axis] += h;
                let mut minus = field.clone();
                minus.coefficients[cp][axis] -= h;
                let fd = (value(&plus) - value(&minus)) / (2.0 * h);
                let an = grad[cp][axis];
                dot += fd * an;
                n_fd += fd * fd;
                n_an += an * an;
            }
        }
        let cosine = dot / (n_fd.sqrt() * n_an.sqrt()).max(1e-300);
        let ratio = n_an.sqrt() / n_fd.sqrt().max(1e-300);
        assert!(cosine > 0.95, "cosine {cosine}");
        assert!((0.8..1.25).contains(&ratio), "|analytic| / |fd| = {ratio}");
    }

    #[test]
    fn metric_gradient_matches_finite_differences() {
        // Smoothed a voxel and a half so the interpolated gradient is close to the exact
        // derivative of the interpolated image.
        let (linear, level, field) = gradient_check_setup(20_000);
        let metric = Metric::default();
        let supports = Supports::new(&field, &level);
        let (_, grad, _) = eval(&field, &level, &supports, &linear, metric, true);
        assert_gradient_matches_finite_differences(&field, &grad, 0.05, |f| {
            eval(f, &level, &supports, &linear, metric, false).0
        });
    }

    /// A B-spline on `spacing_mm` that interpolates `d` at the control points (iterated
    /// residual correction from the quasi-interpolant).
    fn fitted_field(
        g: &VolumeGeometry,
        spacing_mm: f64,
        d: impl Fn(&Point3<f64>) -> Vector3<f64>,
    ) -> BSplineDeformation {
        let mut f = BSplineDeformation::covering(g, spacing_mm);
        let [nx, ny, _] = f.dims;
        let at = |n: usize| {
            let (i, j, k) = (n % nx, (n / nx) % ny, n / (nx * ny));
            Point3::from(f.origin_mm + Vector3::new(i as f64, j as f64, k as f64) * spacing_mm)
        };
        let points: Vec<Point3<f64>> = (0..f.coefficients.len()).map(at).collect();
        let target: Vec<Vector3<f64>> = points.iter().map(&d).collect();
        f.coefficients = target.clone();
        for _ in 0..30 {
            let now: Vec<Vector3<f64>> = points.iter().map(|p| f.displacement(p)).collect();
            for ((c, t), n) in f.coefficients.iter_mut().zip(&target).zip(&now) {
                *c += t - n;
            }
        }
        f
    }

    /// The least-squares B-spline on `spacing_mm` for displacements `d` at `points`
    /// (conjugate gradients on the normal equations, a tiny ridge for control points no
    /// point constrains).
    fn least_squares_field(
        g: &VolumeGeometry,
        spacing_mm: f64,
        points: &[Point3<f64>],
        d: impl Fn(&Point3<f64>) -> Vector3<f64>,
    ) -> BSplineDeformation {
        let mut f = BSplineDeformation::covering(g, spacing_mm);
        let supports = Supports::from_fn(&f, points.len(), |n| points[n]);
        let target: Vec<Vector3<f64>> = points.iter().map(&d).collect();
        let ridge = 1e-6 * points.len() as f64 / f.coefficients.len() as f64;
        let apply = |c: &[Vector3<f64>]| -> Vec<Vector3<f64>> {
            let at: Vec<Vector3<f64>> = (0..points.len())
                .into_par_iter()
                .map(|n| match supports.first[n] {
                    Some(first) => displacement_at(c, f.dims, first as usize, &supports.weights[n]),
                    None => Vector3::zeros(),
                })
                .collect();
            let mut out = scatter_to_coefficients(&f, &supports, &at);
            out.iter_mut().zip(c).for_each(|(o, c)| *o += c * ridge);
            out
        };
        let dot = |a: &[Vector3<f64>], b: &[Vector3<f64>]| -> f64 {
            a.iter().zip(b).map(|(x, y)| x.dot(y)).sum()
        };
        let mut x = vec![Vector3::zeros(); f.coefficients.len()];
        let mut r = scatter_to_coefficients(&f, &supports, &target);
        let mut p = r.clone();
        let mut rr = dot(&r, &r);
        for _ in 0..200 {
            let ap = apply(&p);
            let alpha = rr / dot(&p, &ap).max(1e-300);
            x.iter_mut().zip(&p).for_each(|(x, p)| *x += p * alpha);
            r.iter_mut().zip(&ap).for_each(|(r, a)| *r -= a * alpha);
            let next = dot(&r, &r);
            if next < 1e-20 {
                break;
            }
            p.iter_mut()
                .zip(&r)
                .for_each(|(p, r)| *p = r + *p * (next / rr));
            rr = next;
        }
        f.coefficients = x;
        f
    }

    /// The representational floor of each control grid: the best B-spline fit of the true
    /// benchmark warp over the target points (the linear part known exactly). A grid whose
    /// floor is near the 1 mm target cannot reach it whatever the metric and optimiser do.
    #[test]
    fn bspline_grids_represent_the_benchmark_warp() {
        use crate::registration::phantom::PhantomSpec;
        use crate::registration::qa::target_registration_error;
        let spec = PhantomSpec::benchmark(true);
        let warp = spec.truth.warp.expect("warped");
        let fixed = spec.fixed.clone();
        let ph = PhantomSpec::small(8, 1.0, spec.truth.clone()).generate();
        let points = ph.target_points(5.0);
        // Denser points to fit on than to measure at, so the fit cannot hide between them.
        let dense = ph.target_points(3.0);
        let before = target_registration_error(&points, |p| *p, |p| p + warp.displacement(p));
        let mut floors = Vec::new();
        for spacing in [48.0, 32.0, 24.0, 16.0] {
            let f = least_squares_field(&fixed, spacing, &dense, |p| warp.displacement(p));
            let tre = target_registration_error(
                &points,
                |p| p + f.displacement(p),
                |p| p + warp.displacement(p),
            );
            eprintln!(
                "grid {spacing} mm: floor mean {:.3} p95 {:.3} max {:.3} mm (warp {:.3} mean)",
                tre.mean_mm, tre.p95_mm, tre.max_mm, before.mean_mm
            );
            floors.push(tre.mean_mm);
        }
        // A 100 mm wavelength over 32 mm control points: well inside what cubic B-splines
        // represent, so the stage's errors above this floor are the metric's and optimiser's.
        assert!(floors[1] < 0.25 * before.mean_mm, "{floors:?}");
        assert!(floors[3] <= floors[1] + 1e-6, "{floors:?}");
    }

    /// The probe of where a metric peaks, NGF and MI side by side: on the warp-only phantom
    /// the field that represents the true warp must score above the identity, the warp
    /// under- and over-shot, and the truth plus smooth random fields of 4 and 8 mm.
    #[test]
    fn ngf_peaks_at_the_true_warp() {
        use crate::registration::sampling::Rng;
        let ph = warp_only_phantom();
        let warp = ph.spec.truth.warp.expect("warped");
        let metric = Metric::default();
        let level = Level::build(
            &ph.ct,
            &ph.mr,
            3.6,
            metric,
            1000,
            &Vector3::zeros(),
            None,
            0,
        );
        let identity = Matrix4::identity();
        let truth = fitted_field(ph.ct.geometry(), 32.0, |p| warp.displacement(p));
        let zero = BSplineDeformation::covering(ph.ct.geometry(), 32.0);
        let grid = super::super::ngf::NgfGrid::new(&level, &zero, &identity, 1.0);
        let mi_level = level.with_samples(metric, 100_000, None, 100, FixedBins::EqualCount);
        let mi = Similarity::new(
            &BSplineSettings {
                metric: DeformableMetric::Intensity,
                ..Default::default()
            },
            &zero,
            &mi_level,
            &identity,
            metric,
        );
        let score = |f: &BSplineDeformation| {
            (
                grid.evaluate(f, &level, &identity, false).0,
                mi.evaluate(f, &mi_level, &identity, false).0,
            )
        };
        let (at_truth, mi_at_truth) = score(&truth);
        eprintln!("truth: NGF {at_truth:.5}, MI {mi_at_truth:.5}");
        let mut rng = Rng::new(21);
        let mut others = Vec::new();
        for s in [0.0, 0.5, 1.5] {
            let mut f = truth.clone();
            f.coefficients.iter_mut().for_each(|c| *c *= s);
            others.push((format!("truth x {s}"), f));
        }
        for magnitude in [2.0, 4.0, 8.0] {
            for _ in 0..2 {
                let mut noise = zero.clone();
                noise
                    .coefficients
                    .iter_mut()
                    .for_each(|c| *c = Vector3::new(rng.normal(), rng.normal(), rng.normal()));
                let max = noise
                    .coefficients
                    .iter()
                    .map(|c| c.norm())
                    .fold(0.0, f64::max);
                let mut f = truth.clone();
                for (c, n) in f.coefficients.iter_mut().zip(&noise.coefficients) {
                    *c += n * (magnitude / max);
                }
                others.push((format!("truth + {magnitude} mm"), f));
            }
        }
        let scored: Vec<(String, f64, f64)> = others
            .iter()
            .map(|(name, f)| {
                let (ngf, mi) = score(f);
                eprintln!("{name}: NGF {ngf:.5}, MI {mi:.5}");
                (name.clone(), ngf, mi)
            })
            .collect();
        // The first two random fields (2 mm) are printed, not asserted: measured, they scored
        // the same as the truth to 1e-4 (NGF 0.93421 and 0.93429 vs 0.93418; MI 1.17593 vs
        // 1.17604): most of such a field slides edges along themselves, which no intensity
        // metric sees, so the bending penalty decides there. Both metrics peak at the truth
        // against everything else, MI more sharply (4 mm: -0.018 vs NGF -0.002).
        for (n, (name, ngf, mi)) in scored.iter().enumerate() {
            if n == 3 || n == 4 {
                continue;
            }
            assert!(
                *ngf < at_truth,
                "{name}: NGF {ngf} vs {at_truth} at the truth"
            );
            assert!(
                *mi < mi_at_truth,
                "{name}: MI {mi} vs {mi_at_truth} at the truth"
            );
        }
    }

    #[test]
    fn ngf_gradient_matches_finite_differences() {
        let (linear, level, field) = gradient_check_setup(1000);
        let grid = super::super::ngf::NgfGrid::new(&level, &field, &linear, 1.0);
        let (value, grad, _) = grid.evaluate(&field, &level, &linear, true);
        assert!(value > 0.0 && value <= 1.0, "NGF {value}");
        assert_gradient_matches_finite_differences(&field, &grad, 0.02, |f| {
            grid.evaluate(f, &level, &linear, false).0
        });
    }

    #[test]
    fn mind_gradient_matches_finite_differences() {
        let (linear, level, field) = gradient_check_setup(1000);
        let grid = super::super::mind::MindGrid::new(&level, &field, &linear, 4.0);
        let (value, grad, valid) = grid.evaluate(&field, true);
        assert!(value < 0.0 && value > -1.0, "MIND SSD {value}");
        assert!(valid > 0.5, "valid {valid}");
        assert_gradient_matches_finite_differences(&field, &grad, 0.02, |f| {
            grid.evaluate(f, false).0
        });
    }

    #[test]
    fn ngf_bspline_stage_reduces_the_benchmark_warp() {
        use crate::registration::qa::target_registration_error;
        let ph = warp_only_phantom();
        let points = ph.target_points(5.0);
        let truth = ph.spec.truth.clone();
        let before = target_registration_error(&points, |p| *p, |p| truth.apply(p));
        let settings = BSplineSettings {
            metric: DeformableMetric::NormalizedGradientFields,
            ..Default::default()
        };
        let (field, reports) = bspline_only(&ph, &[(3.6, settings.control_spacing_mm)], &settings);
        let after =
            target_registration_error(&points, |p| p + field.displacement(p), |p| truth.apply(p));
        eprintln!("levels: {reports:#?}");
        eprintln!(
            "warp alone: TRE mean {:.3} p95 {:.3} max {:.3} mm -> NGF B-spline mean {:.3} p95 {:.3} max {:.3} mm",
            before.mean_mm, before.p95_mm, before.max_mm, after.mean_mm, after.p95_mm, after.max_mm
        );
        assert!(
            before.mean_mm > 1.5,
            "the warp is too weak to test: {before:?}"
        );
        assert!(
            after.mean_mm < 0.85 * before.mean_mm,
            "{after:?} from {before:?}"
        );
        assert!(field.min_jacobian_determinant() > 0.0);
    }
}
