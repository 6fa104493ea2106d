//! Normalised gradient fields (Haber & Modersitzki 2006) for the B-spline stage.
//!
//! Per voxel `v` of a pyramid level's fixed grid, with `W = M ∘ T` the moving image read
//! through the current transform:
//!
//! `r(v) = (∇F · ∇W)² / ((|∇F|² + ε_F²) (|∇W|² + ε_W²))`,
//!
//! one when the edges of both images are parallel (or anti-parallel: CT bone is bright where
//! MR shows it dark) and zero where either is flat or the edges cross. The similarity is
//! `Σ r / Σ |n_F|²` with `n_F = ∇F / |∇F|_ε`, the share of the fixed image's edge structure
//! the moving image explains (1 = every edge matched).
//!
//! Unlike mutual information it has no joint histogram to reshape: a field cannot raise it by
//! thickening or thinning a shell, only by putting moving edges where the fixed ones are. `∇W`
//! is taken by central differences on the grid after warping (as in FAIR), so it includes the
//! field's own Jacobian, and the analytic derivative follows by the adjoint of those
//! differences: `∂S/∂W(u)`, then `∂W(u)/∂φ = β(u) · Aᵀ∇M(y(u))` as for any intensity metric.

use super::deformable::{scatter_to_coefficients, voxel_point, BSplineDeformation, Supports};
use super::linear::Level;
use crate::volume::Volume;
use nalgebra::{Matrix4, Vector3};
use rayon::prelude::*;

/// A level's fixed grid prepared for NGF: the fixed normals, the noise levels, and the
/// voxels that matter with their B-spline supports.
pub(crate) struct NgfGrid {
    dims: [usize; 3],
    world_from_voxel: Matrix4<f64>,
    /// `1 / 2h` per grid axis.
    inv_2h: [f64; 3],
    /// `∇F / sqrt(|∇F|² + ε_F²)`, zero on the border (no central difference there).
    fixed_normals: Vec<[f32; 3]>,
    /// Interior voxels whose `|n_F|²` exceeds `EDGE_FLOOR`, the only ones that score.
    edges: Vec<u32>,
    /// `edges` and their six neighbours: the voxels whose warped value the score reads,
    /// ascending. Flat regions (most of a CT) are never warped.
    active: Vec<u32>,
    /// `Σ |n_F|²` over `edges`: the score of a perfect alignment.
    norm: f64,
    /// `ε_W²`.
    eps_moving_sq: f64,
    pub(crate) eps_fixed: f64,
    pub(crate) eps_moving: f64,
    /// B-spline supports of `active`.
    supports: Supports,
}

/// Voxels whose fixed normal is this short score at most this much each (`r ≤ |n_F|²`), so
/// leaving them out changes the value by well under a percent.
const EDGE_FLOOR: f32 = 0.01;

/// The moving image read through the transform at the active voxels.
struct Warped {
    /// On the whole grid; voxels that are not active read the background (never used).
    values: Vec<f32>,
    /// Per active voxel, `Aᵀ ∇M(y)`, the derivative of `W` with respect to the displacement;
    /// `None` outside the moving image (the value then reads the background).
    d_value_d_displacement: Vec<Option<Vector3<f32>>>,
    inside: usize,
}

/// ε for one image: its typical gradient where there is no edge (the median over the grid,
/// where flat tissue and background dominate, i.e. the noise level), but at least 1 % of the
/// strong edges' gradient so that a noise-free image (a phantom CT) still gets a finite one.
fn noise_epsilon(mut magnitudes: Vec<f32>) -> f64 {
    if magnitudes.is_empty() {
        return 1.0;
    }
    magnitudes.sort_unstable_by(f32::total_cmp);
    let at = |q: f64| magnitudes[((magnitudes.len() - 1) as f64 * q) as usize] as f64;
    at(0.5).max(0.01 * at(0.99)).max(1e-6)
}

/// Central-difference gradient of `values` at interior voxel `n` (grid axes, per mm).
#[inline]
fn central_gradient(values: &[f32], n: usize, strides: [usize; 3], inv_2h: [f64; 3]) -> [f64; 3] {
    [0, 1, 2].map(|a| (values[n + strides[a]] as f64 - values[n - strides[a]] as f64) * inv_2h[a])
}

impl NgfGrid {
    /// Prepares `level`'s fixed grid; `ε_W` comes from the moving image as `field` and
    /// `linear` map it at the start, so it is measured on the same grid as `∇F`.
    pub(crate) fn new(
        level: &Level,
        field: &BSplineDeformation,
        linear: &Matrix4<f64>,
        epsilon_scale: f64,
    ) -> Self {
        let fixed: &Volume<f32> = &level.fixed;
        let g = fixed.geometry();
        let dims = g.dims;
        let count: usize = dims.iter().product();
        let world_from_voxel = g.world_from_voxel();
        let inv_2h = [0, 1, 2].map(|a| 0.5 / g.spacing_mm[a]);
        let all: Vec<u32> = (0..count as u32).collect();
        let mut grid = Self {
            dims,
            world_from_voxel,
            inv_2h,
            fixed_normals: Vec::new(),
            edges: Vec::new(),
            supports: Supports::from_fn(field, count, |n| {
                world_from_voxel.transform_point(&voxel_point(n, dims))
            }),
            active: all,
            norm: 1.0,
            eps_moving_sq: 1.0,
            eps_fixed: 1.0,
            eps_moving: 1.0,
        };
        let magnitudes = |gradients: &[Option<[f64; 3]>]| -> Vec<f32> {
            gradients
                .iter()
                .flatten()
                .map(|g| norm3(g) as f32)
                .collect()
        };
        let fixed_gradients = grid.gradients(fixed.data());
        grid.eps_fixed = epsilon_scale * noise_epsilon(magnitudes(&fixed_gradients));
        let warped = grid.warp(field, level, linear);
        grid.eps_moving =
            epsilon_scale * noise_epsilon(magnitudes(&grid.gradients(&warped.values)));
        grid.eps_moving_sq = grid.eps_moving * grid.eps_moving;
        let e2 = grid.eps_fixed * grid.eps_fixed;
        grid.fixed_normals = fixed_gradients
            .iter()
            .map(|g| match g {
                Some(g) => {
                    let s = 1.0 / (g[0] * g[0] + g[1] * g[1] + g[2] * g[2] + e2).sqrt();
                    [0, 1, 2].map(|a| (g[a] * s) as f32)
                }
                None => [0.0; 3],
            })
            .collect();
        let strength = |n: &[f32; 3]| n[0] * n[0] + n[1] * n[1] + n[2] * n[2];
        grid.edges = (0..count as u32)
            .filter(|&n| strength(&grid.fixed_normals[n as usize]) > EDGE_FLOOR)
            .collect();
        grid.norm = grid
            .edges
            .iter()
            .map(|&n| strength(&grid.fixed_normals[n as usize]) as f64)
            .sum::<f64>()
            .max(1e-12);
        let strides = grid.strides();
        let mut wanted = vec![false; count];
        for &n in &grid.edges {
            let n = n as usize;
            wanted[n] = true;
            for s in strides {
                wanted[n - s] = true;
                wanted[n + s] = true;
            }
        }
        grid.active = (0..count as u32).filter(|&n| wanted[n as usize]).collect();
        let active = &grid.active;
        grid.supports = Supports::from_fn(field, active.len(), |i| {
            world_from_voxel.transform_point(&voxel_point(active[i] as usize, dims))
        });
        grid
    }

    fn strides(&self) -> [usize; 3] {
        [1, self.dims[0], self.dims[0] * self.dims[1]]
    }

    fn interior(&self, n: usize) -> bool {
        let [nx, ny, nz] = self.dims;
        let (i, j, k) = (n % nx, (n / nx) % ny, n / (nx * ny));
        i > 0 && j > 0 && k > 0 && i + 1 < nx && j + 1 < ny && k + 1 < nz
    }

    /// Central-difference gradients of a grid image; `None` on the border.
    fn gradients(&self, values: &[f32]) -> Vec<Option<[f64; 3]>> {
        let strides = self.strides();
        (0..values.len())
            .into_par_iter()
            .with_min_len(4096)
            .map(|n| {
                self.interior(n)
                    .then(|| central_gradient(values, n, strides, self.inv_2h))
            })
            .collect()
    }

    fn warp(&self, field: &BSplineDeformation, level: &Level, linear: &Matrix4<f64>) -> Warped {
        let vm = level.moving.voxel_from_world * linear;
        let a_t = linear.fixed_view::<3, 3>(0, 0).transpose();
        let background = level.moving_range.0 as f32;
        let looked_up: Vec<(f32, Option<Vector3<f32>>)> = self
            .active
            .par_iter()
            .enumerate()
            .with_min_len(4096)
            .map(|(i, &n)| {
                let x = self
                    .world_from_voxel
                    .transform_point(&voxel_point(n as usize, self.dims));
                let q = self.supports.displaced(i, x, field);
                let p = vm.transform_point(&q);
                match level.moving.sample_exact([p.x, p.y, p.z]) {
                    Some((v, g)) => (v as f32, Some((a_t * g).map(|c| c as f32))),
                    None => (background, None),
                }
            })
            .collect();
        let inside = looked_up.iter().filter(|(_, g)| g.is_some()).count();
        let mut values = vec![background; self.dims.iter().product()];
        for (&n, (v, _)) in self.active.iter().zip(&looked_up) {
            values[n as usize] = *v;
        }
        Warped {
            values,
            d_value_d_displacement: looked_up.into_iter().map(|(_, g)| g).collect(),
            inside,
        }
    }

    /// Similarity, `∂similarity/∂coefficients` (empty unless `want_gradient`), and the
    /// fraction of the voxels read that map inside the moving image.
    pub(crate) fn evaluate(
        &self,
        field: &BSplineDeformation,
        level: &Level,
        linear: &Matrix4<f64>,
        want_gradient: bool,
    ) -> (f64, Vec<Vector3<f64>>, f64) {
        let warped = self.warp(field, level, linear);
        let valid = warped.inside as f64 / self.active.len().max(1) as f64;
        let strides = self.strides();
        let e2 = self.eps_moving_sq;
        // r per edge voxel and q = ∂r/∂∇W.
        let per_edge: Vec<(f64, [f32; 3])> = self
            .edges
            .par_iter()
            .with_min_len(4096)
            .map(|&n| {
                let n = n as usize;
                let gw = central_gradient(&warped.values, n, strides, self.inv_2h);
                let nf = self.fixed_normals[n].map(|c| c as f64);
                let dot = nf[0] * gw[0] + nf[1] * gw[1] + nf[2] * gw[2];
                let denom = 1.0 / (gw[0] * gw[0] + gw[1] * gw[1] + gw[2] * gw[2] + e2);
                let r = dot * dot * denom;
                // ∂r/∂g = 2 (n·g) n / D − 2 (n·g)² g / D².
                let dr =
                    [0, 1, 2].map(|a| (2.0 * dot * denom * nf[a] - 2.0 * r * denom * gw[a]) as f32);
                (r, dr)
            })
            .collect();
        let inv_norm = 1.0 / self.norm;
        let value = per_edge.par_iter().map(|(r, _)| r).sum::<f64>() * inv_norm;
        if !want_gradient {
            return (value, Vec::new(), valid);
        }
        let mut q = vec![[0f32; 3]; warped.values.len()];
        for (&n, (_, dr)) in self.edges.iter().zip(&per_edge) {
            q[n as usize] = *dr;
        }
        // Adjoint of the central differences: g_a(v) = (W(v + e_a) − W(v − e_a)) / 2h, so
        // ∂S/∂W(u) = Σ_a (q_a(u − e_a) − q_a(u + e_a)) / 2h.
        let len = q.len();
        let vectors: Vec<Vector3<f64>> = self
            .active
            .par_iter()
            .zip(warped.d_value_d_displacement.par_iter())
            .with_min_len(4096)
            .map(|(&u, dw)| {
                let Some(dw) = dw else {
                    return Vector3::zeros();
                };
                let u = u as usize;
                let mut d = 0.0;
                for a in 0..3 {
                    let s = strides[a];
                    let below = if u >= s { q[u - s][a] } else { 0.0 };
                    let above = if u + s < len { q[u + s][a] } else { 0.0 };
                    d += (below - above) as f64 * self.inv_2h[a];
                }
                dw.map(|c| c as f64) * (d * inv_norm)
            })
            .collect();
        let grad = scatter_to_coefficients(field, &self.supports, &vectors);
        (value, grad, valid)
    }
}

#[inline]
fn norm3(g: &[f64; 3]) -> f64 {
    (g[0] * g[0] + g[1] * g[1] + g[2] * g[2]).sqrt()
}
