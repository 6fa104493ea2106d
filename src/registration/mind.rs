//! MIND-SSC (Heinrich et al. 2012, 2013) for the B-spline stage.
//!
//! Each voxel gets 12 channels, one per pair of its six-neighbourhood at distance √2
//! (the self-similarity context): `D_c(x)`, the 3³-box-filtered squared difference between
//! the image shifted by the two ends of pair `c`, turned into `exp(−D_c / V)` with `V` the
//! mean of the 12 `D_c` (clamped to [0.001, 1000] × its image mean), then divided by the
//! vector's largest channel. The descriptor depends on local structure only, not on the
//! intensity mapping, so CT and MR descriptors can be compared by plain SSD.
//!
//! The moving descriptor is computed once per level in moving space and read through the
//! transform (Heinrich's approach): the similarity is `−mean_x,c (M_c(T(x)) − F_c(x))²` over
//! the level's fixed voxels and its gradient the per-channel chain rule of an intensity
//! metric, `∂W_c/∂φ = β · Aᵀ ∇M_c(y)`, with the exact gradient of the trilinear interpolant.

use super::deformable::{scatter_to_coefficients, voxel_point, BSplineDeformation, Supports};
use super::linear::Level;
use crate::volume::Volume;
use nalgebra::{Matrix3, Matrix4, Vector3};
use rayon::prelude::*;

pub const CHANNELS: usize = 12;
pub type Descriptor = [f32; CHANNELS];

/// The 12 neighbour pairs of the self-similarity context: for each pair of axes and each
/// sign combination, the offsets `(±e_a, ±e_b)`.
fn ssc_pairs() -> [([i64; 3], [i64; 3]); CHANNELS] {
    let mut pairs = [([0i64; 3], [0i64; 3]); CHANNELS];
    let mut n = 0;
    for (a, b) in [(0, 1), (0, 2), (1, 2)] {
        for sa in [-1i64, 1] {
            for sb in [-1i64, 1] {
                let mut p = [0i64; 3];
                let mut q = [0i64; 3];
                p[a] = sa;
                q[b] = sb;
                pairs[n] = (p, q);
                n += 1;
            }
        }
    }
    pairs
}

#[inline]
fn clamped(i: usize, o: i64, n: usize) -> usize {
    (i as i64 + o).clamp(0, n as i64 - 1) as usize
}

/// 3-tap box filter along `axis` with clamped borders.
fn box3(values: &[Descriptor], dims: [usize; 3], axis: usize) -> Vec<Descriptor> {
    let [nx, ny, _] = dims;
    let stride = [1, nx, nx * ny][axis];
    (0..values.len())
        .into_par_iter()
        .with_min_len(4096)
        .map(|n| {
            let coord = [n % nx, (n / nx) % ny, n / (nx * ny)][axis];
            let lo = if coord > 0 { n - stride } else { n };
            let hi = if coord + 1 < dims[axis] {
                n + stride
            } else {
                n
            };
            let mut out = [0f32; CHANNELS];
            for c in 0..CHANNELS {
                out[c] = (values[lo][c] + values[n][c] + values[hi][c]) * (1.0 / 3.0);
            }
            out
        })
        .collect()
}

/// MIND-SSC of an image on its own grid, `i` fastest. `noise_floor`: `V` is also kept at
/// least this multiple of its median over the image (0: Heinrich's clamp alone).
pub fn mind_ssc(image: &Volume<f32>, noise_floor: f64) -> Vec<Descriptor> {
    descriptor(image.dims(), image.data(), noise_floor)
}

fn descriptor(dims: [usize; 3], data: &[f32], noise_floor: f64) -> Vec<Descriptor> {
    let [nx, ny, nz] = dims;
    let pairs = ssc_pairs();
    let squared: Vec<Descriptor> = (0..data.len())
        .into_par_iter()
        .with_min_len(4096)
        .map(|n| {
            let (i, j, k) = (n % nx, (n / nx) % ny, n / (nx * ny));
            let at = |o: &[i64; 3]| {
                data[clamped(i, o[0], nx) + nx * (clamped(j, o[1], ny) + ny * clamped(k, o[2], nz))]
            };
            let mut d = [0f32; CHANNELS];
            for (c, (p, q)) in pairs.iter().enumerate() {
                let diff = at(p) - at(q);
                d[c] = diff * diff;
            }
            d
        })
        .collect();
    let mut distances = squared;
    for axis in 0..3 {
        distances = box3(&distances, dims, axis);
    }
    let variance: Vec<f32> = distances
        .par_iter()
        .map(|d| d.iter().sum::<f32>() / CHANNELS as f32)
        .collect();
    let mean = variance.par_iter().map(|&v| v as f64).sum::<f64>() / variance.len().max(1) as f64;
    // A flat image has no structure at all: every channel then reads 1.
    let mean = mean.max(1e-20) as f32;
    // Where an image is flat its V is its noise: a noise-free CT then reads all ones there and
    // a noisy MR a random vector, a mismatch that no alignment removes and that a free field
    // can lower by moving flat tissue onto whatever reads closest to flat. A floor at a
    // multiple of the median V (the noise, where flat regions dominate) makes noise alone
    // read close to all ones in both images.
    let median = if noise_floor > 0.0 && !variance.is_empty() {
        let mut sorted = variance.clone();
        let mid = sorted.len() / 2;
        *sorted.select_nth_unstable_by(mid, f32::total_cmp).1 as f64
    } else {
        0.0
    };
    let lo = (0.001 * mean).max((noise_floor * median) as f32);
    let hi = (1000.0 * mean).max(lo);
    distances
        .par_iter()
        .zip(variance.par_iter())
        .map(|(d, &v)| {
            let v = v.clamp(lo, hi);
            let mut out = d.map(|x| (-x / v).exp());
            let max = out.iter().copied().fold(0f32, f32::max).max(1e-20);
            out.iter_mut().for_each(|x| *x /= max);
            out
        })
        .collect()
}

/// A moving descriptor image read by trilinear interpolation.
struct MovingDescriptors {
    dims: [usize; 3],
    values: Vec<Descriptor>,
    voxel_from_world: Matrix4<f64>,
}

impl MovingDescriptors {
    /// Channels and their voxel-space gradients (the trilinear interpolant's own) at a
    /// continuous voxel position; `None` outside `[0, n − 1]` on any axis.
    #[inline]
    fn sample(&self, p: [f64; 3]) -> Option<(Descriptor, [[f32; 3]; CHANNELS])> {
        let d = self.dims;
        let mut base = [0usize; 3];
        let mut frac = [0f32; 3];
        let mut step = [0usize; 3];
        let strides = [1, d[0], d[0] * d[1]];
        for a in 0..3 {
            let max = (d[a] - 1) as f64;
            if !(p[a] >= 0.0 && p[a] <= max) {
                return None;
            }
            if d[a] == 1 {
                continue;
            }
            let f = p[a].floor().min(max - 1.0);
            base[a] = f as usize;
            frac[a] = (p[a] - f) as f32;
            step[a] = strides[a];
        }
        let i0 = base[0] + d[0] * (base[1] + d[1] * base[2]);
        let v = |o: usize| &self.values[i0 + o];
        let [sx, sy, sz] = step;
        let corners = [
            v(0),
            v(sx),
            v(sy),
            v(sy + sx),
            v(sz),
            v(sz + sx),
            v(sz + sy),
            v(sz + sy + sx),
        ];
        let [fx, fy, fz] = frac;
        let (gx, gy, gz) = (1.0 - fx, 1.0 - fy, 1.0 - fz);
        let mut value = [0f32; CHANNELS];
        let mut grad = [[0f32; 3]; CHANNELS];
        for c in 0..CHANNELS {
            let k = |n: usize| corners[n][c];
            let x00 = k(0) * gx + k(1) * fx;
            let x10 = k(2) * gx + k(3) * fx;
            let x01 = k(4) * gx + k(5) * fx;
            let x11 = k(6) * gx + k(7) * fx;
            let y0 = x00 * gy + x10 * fy;
            let y1 = x01 * gy + x11 * fy;
            value[c] = y0 * gz + y1 * fz;
            let dx00 = k(1) - k(0);
            let dx10 = k(3) - k(2);
            let dx01 = k(5) - k(4);
            let dx11 = k(7) - k(6);
            let dx = (dx00 * gy + dx10 * fy) * gz + (dx01 * gy + dx11 * fy) * fz;
            let dy = (x10 - x00) * gz + (x11 - x01) * fz;
            let dz = y1 - y0;
            grad[c] = [dx, dy, dz];
        }
        Some((value, grad))
    }
}

/// A level prepared for MIND: the fixed descriptors on the fixed level grid, the moving
/// ones on the same grid (the moving image read through the linear transform once, so
/// that each channel's neighbour pair points the same way in both images whatever the
/// rotation or axis order between their grids), and the fixed voxels' B-spline supports.
pub(crate) struct MindGrid {
    dims: [usize; 3],
    world_from_voxel: Matrix4<f64>,
    fixed: Vec<Descriptor>,
    moving: MovingDescriptors,
    supports: Supports,
}

impl MindGrid {
    pub(crate) fn new(
        level: &Level,
        field: &BSplineDeformation,
        linear: &Matrix4<f64>,
        noise_floor: f64,
    ) -> Self {
        let fixed = level.fixed.as_ref();
        let dims = fixed.dims();
        let world_from_voxel = fixed.geometry().world_from_voxel();
        let vm = level.moving.voxel_from_world * linear;
        let background = level.moving_range.0 as f32;
        // The moving grid is the fixed one shifted by half a voxel (one more voxel per axis to
        // cover it): on the very same grid every fixed voxel would read the moving descriptors
        // at their nodes, where the trilinear interpolant has a kink, and the zero field would
        // sit in a false minimum of the interpolation (measured: the optimiser never left it).
        let moving_dims = dims.map(|n| n + 1);
        let half = Matrix4::new_translation(&Vector3::repeat(0.5));
        let moving_world_from_voxel = world_from_voxel * half.try_inverse().unwrap_or(half);
        let moving_values: Vec<f32> = (0..moving_dims.iter().product::<usize>())
            .into_par_iter()
            .with_min_len(4096)
            .map(|n| {
                let p = vm.transform_point(
                    &moving_world_from_voxel.transform_point(&voxel_point(n, moving_dims)),
                );
                level
                    .moving
                    .sample([p.x, p.y, p.z])
                    .map_or(background, |(v, _)| v as f32)
            })
            .collect();
        let (fixed_descriptors, moving_descriptors) = rayon::join(
            || mind_ssc(fixed, noise_floor),
            || descriptor(moving_dims, &moving_values, noise_floor),
        );
        let count = fixed_descriptors.len();
        Self {
            dims,
            world_from_voxel,
            fixed: fixed_descriptors,
            moving: MovingDescriptors {
                dims: moving_dims,
                values: moving_descriptors,
                voxel_from_world: half * fixed.geometry().voxel_from_world(),
            },
            supports: Supports::from_fn(field, count, |n| {
                world_from_voxel.transform_point(&voxel_point(n, dims))
            }),
        }
    }

    /// `−mean (M_c(T(x)) − F_c(x))²`, its gradient with respect to the coefficients (empty
    /// unless `want_gradient`), and the fraction of fixed voxels inside the moving image.
    /// A voxel pushed out of the moving image reads descriptor 0 (no gradient), so leaving
    /// the image costs rather than excuses it. The linear transform is the one given to
    /// `new`, where the moving image was resampled through it.
    pub(crate) fn evaluate(
        &self,
        field: &BSplineDeformation,
        want_gradient: bool,
    ) -> (f64, Vec<Vector3<f64>>, f64) {
        let vm = self.moving.voxel_from_world;
        // ∂(moving voxel)/∂d, transposed: turns a voxel gradient into a displacement one.
        let b_t: Matrix3<f64> = vm.fixed_view::<3, 3>(0, 0).transpose();
        let per_voxel: Vec<(f64, Vector3<f64>, bool)> = self
            .fixed
            .par_iter()
            .enumerate()
            .with_min_len(4096)
            .map(|(n, f)| {
                let x = self
                    .world_from_voxel
                    .transform_point(&voxel_point(n, self.dims));
                let q = self.supports.displaced(n, x, field);
                let p = vm.transform_point(&q);
                match self.moving.sample([p.x, p.y, p.z]) {
                    Some((m, g)) => {
                        let mut ssd = 0.0;
                        let mut dv = [0f32; 3];
                        for c in 0..CHANNELS {
                            let r = m[c] - f[c];
                            ssd += (r * r) as f64;
                            for a in 0..3 {
                                dv[a] += 2.0 * r * g[c][a];
                            }
                        }
                        let dv = Vector3::new(dv[0] as f64, dv[1] as f64, dv[2] as f64);
                        (ssd, b_t * dv, true)
                    }
                    None => (
                        f.iter().map(|&x| (x * x) as f64).sum(),
                        Vector3::zeros(),
                        false,
                    ),
                }
            })
            .collect();
        let norm = 1.0 / (self.fixed.len().max(1) * CHANNELS) as f64;
        let value = -per_voxel.par_iter().map(|(s, _, _)| s).sum::<f64>() * norm;
        let inside = per_voxel.iter().filter(|(_, _, i)| *i).count();
        let valid = inside as f64 / self.fixed.len().max(1) as f64;
        if !want_gradient {
            return (value, Vec::new(), valid);
        }
        let vectors: Vec<Vector3<f64>> = per_voxel.par_iter().map(|(_, g, _)| -g * norm).collect();
        let grad = scatter_to_coefficients(field, &self.supports, &vectors);
        (value, grad, valid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::VolumeGeometry;

    /// Two overlapping balls on a smooth ramp: edges in every direction and flat regions.
    fn structured_image() -> Volume<f32> {
        let g = VolumeGeometry::axis_aligned([24, 22, 20], [1.0, 1.2, 1.5], [0.0; 3])
            .expect("valid geometry");
        Volume::from_fn(g, |[i, j, k]| {
            let p = [i as f32, j as f32 * 1.2, k as f32 * 1.5];
            let ball = |c: [f32; 3], r: f32| {
                let d2: f32 = (0..3).map(|a| (p[a] - c[a]).powi(2)).sum();
                if d2 < r * r {
                    1.0
                } else {
                    0.0
                }
            };
            20.0 * ball([10.0, 12.0, 14.0], 7.0) + 35.0 * ball([15.0, 10.0, 12.0], 5.0) + 0.3 * p[0]
        })
    }

    #[test]
    fn descriptor_ignores_an_inverting_intensity_remap() {
        let ct_like = structured_image();
        let mr_like = Volume::from_fn(ct_like.geometry().clone(), |[i, j, k]| {
            100.0 - 2.0 * ct_like.get(i as i64, j as i64, k as i64).expect("inside")
        });
        let a = mind_ssc(&ct_like, 0.0);
        let b = mind_ssc(&mr_like, 0.0);
        let mut worst = 0f32;
        let mut spread = 0f32;
        for (x, y) in a.iter().zip(&b) {
            for c in 0..CHANNELS {
                worst = worst.max((x[c] - y[c]).abs());
                assert!((0.0..=1.0 + 1e-6).contains(&x[c]), "channel {c}: {}", x[c]);
            }
            let min = x.iter().copied().fold(1f32, f32::min);
            spread = spread.max(1.0 - min);
        }
        assert!(worst < 1e-4, "descriptors differ by {worst}");
        // Not trivially constant: at the balls' edges some channels fall well below the max.
        assert!(spread > 0.5, "largest in-voxel spread {spread}");
    }

    #[test]
    fn descriptor_differs_where_the_structure_moves() {
        let a = structured_image();
        let shifted = Volume::from_fn(a.geometry().clone(), |[i, j, k]| {
            a.get(i as i64 - 2, j as i64, k as i64).unwrap_or(0.0)
        });
        let (da, ds) = (mind_ssc(&a, 0.0), mind_ssc(&shifted, 0.0));
        let ssd: f64 = da
            .iter()
            .zip(&ds)
            .flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| ((p - q) * (p - q)) as f64))
            .sum();
        assert!(ssd > 1.0, "SSD {ssd}");
    }
}
