//! Multi-resolution images in physical space: Gaussian smoothing in millimetres, integer
//! subsampling, and a moving image stored with its gradient for fast metric derivatives.

use crate::volume::{Volume, VolumeGeometry};
use nalgebra::{Matrix3, Matrix4, Vector3};
use rayon::prelude::*;

/// Smooths with a Gaussian of `sigma_mm` (per world-independent voxel axis) and keeps every
/// `f`-th voxel, `f = round(target_spacing / spacing)` per axis (at least 1). The first
/// voxel centre stays where it was, so world positions are preserved exactly.
pub fn smooth_and_shrink(v: &Volume<f32>, target_spacing_mm: f64) -> Volume<f32> {
    let g = v.geometry();
    let factors: [usize; 3] = [0, 1, 2].map(|a| {
        let f = (target_spacing_mm / g.spacing_mm[a]).round();
        (f.max(1.0) as usize).min(g.dims[a].max(1))
    });
    let sigma_mm: [f64; 3] = [0, 1, 2].map(|a| {
        if factors[a] > 1 {
            0.5 * factors[a] as f64 * g.spacing_mm[a]
        } else {
            0.0
        }
    });
    if factors == [1, 1, 1] {
        return gaussian_blur(v, sigma_mm);
    }
    // Blur and decimate one axis at a time, computing only the kept outputs: each pass then
    // runs on an already reduced volume.
    // The first pass reads the input in place: copying a full-resolution CT first cost more
    // than the pass itself.
    let mut reduced: Option<Vec<f32>> = None;
    let mut dims = g.dims;
    for axis in 0..3 {
        let sigma_vox = sigma_mm[axis] / g.spacing_mm[axis];
        let kernel = if sigma_vox >= 0.33 {
            gaussian_kernel(sigma_vox)
        } else {
            vec![1.0]
        };
        let src = reduced.as_deref().unwrap_or(v.data());
        let (d, n) = blur_decimate_axis(src, dims, axis, &kernel, factors[axis]);
        reduced = Some(d);
        dims = n;
    }
    let data = reduced.unwrap_or_default();
    let spacing = [0, 1, 2].map(|a| g.spacing_mm[a] * factors[a] as f64);
    match VolumeGeometry::new(dims, spacing, g.origin_mm, g.direction)
        .ok()
        .and_then(|geometry| Volume::new(geometry, data).ok())
    {
        Some(v) => v,
        None => gaussian_blur(v, sigma_mm),
    }
}

/// Gaussian along `axis`, keeping every `f`-th output along it.
fn blur_decimate_axis(
    src: &[f32],
    dims: [usize; 3],
    axis: usize,
    kernel: &[f32],
    f: usize,
) -> (Vec<f32>, [usize; 3]) {
    let mut out_dims = dims;
    out_dims[axis] = dims[axis].div_ceil(f);
    let [nx, ny, nz] = dims;
    let [ox, oy, _] = out_dims;
    let r = (kernel.len() / 2) as i64;
    let stride = [1usize, nx, nx * ny][axis];
    let n_axis = dims[axis] as i64;
    let mut out = vec![0f32; out_dims.iter().product()];
    out.par_chunks_mut(ox * oy)
        .enumerate()
        .for_each(|(ko, dst)| {
            for jo in 0..oy {
                for io in 0..ox {
                    let mut o = [io, jo, ko];
                    o[axis] *= f;
                    let (i, j, k) = (o[0], o[1], o[2]);
                    let centre = i + nx * (j + ny * k);
                    let pos = o[axis] as i64;
                    let mut acc = 0f32;
                    for (t, w) in kernel.iter().enumerate() {
                        let p = (pos + t as i64 - r).clamp(0, n_axis - 1);
                        let idx = centre as i64 + (p - pos) * stride as i64;
                        acc += w * src[idx as usize];
                    }
                    dst[io + ox * jo] = acc;
                }
            }
        });
    let _ = nz;
    (out, out_dims)
}

/// Separable Gaussian blur, `sigma_mm` per voxel axis; axes with sigma below a third of a
/// voxel are left alone. Edges replicate the border voxel.
pub fn gaussian_blur(v: &Volume<f32>, sigma_mm: [f64; 3]) -> Volume<f32> {
    let g = v.geometry().clone();
    let mut data = v.data().to_vec();
    for axis in 0..3 {
        let sigma_vox = sigma_mm[axis] / g.spacing_mm[axis];
        if sigma_vox < 0.33 || g.dims[axis] < 2 {
            continue;
        }
        let kernel = gaussian_kernel(sigma_vox);
        data = blur_axis(&data, g.dims, axis, &kernel);
    }
    Volume::new(g, data).expect("blur keeps the voxel count")
}

fn gaussian_kernel(sigma: f64) -> Vec<f32> {
    let radius = (3.0 * sigma).ceil().max(1.0) as i64;
    let w: Vec<f64> = (-radius..=radius)
        .map(|o| (-(o * o) as f64 / (2.0 * sigma * sigma)).exp())
        .collect();
    let sum: f64 = w.iter().sum();
    w.iter().map(|x| (x / sum) as f32).collect()
}

fn blur_axis(src: &[f32], dims: [usize; 3], axis: usize, kernel: &[f32]) -> Vec<f32> {
    let [nx, ny, nz] = dims;
    let r = (kernel.len() / 2) as i64;
    let plane = nx * ny;
    let mut out = vec![0f32; src.len()];
    out.par_chunks_mut(plane)
        .enumerate()
        .for_each(|(k, dst)| match axis {
            0 => {
                for j in 0..ny {
                    let row = &src[k * plane + j * nx..k * plane + (j + 1) * nx];
                    let d = &mut dst[j * nx..(j + 1) * nx];
                    for (i, out_v) in d.iter_mut().enumerate() {
                        let mut acc = 0f32;
                        for (t, w) in kernel.iter().enumerate() {
                            let ii = (i as i64 + t as i64 - r).clamp(0, nx as i64 - 1) as usize;
                            acc += w * row[ii];
                        }
                        *out_v = acc;
                    }
                }
            }
            1 => {
                let slice = &src[k * plane..(k + 1) * plane];
                for j in 0..ny {
                    let d = &mut dst[j * nx..(j + 1) * nx];
                    for (t, w) in kernel.iter().enumerate() {
                        let jj = (j as i64 + t as i64 - r).clamp(0, ny as i64 - 1) as usize;
                        let s = &slice[jj * nx..(jj + 1) * nx];
                        for (o, x) in d.iter_mut().zip(s) {
                            *o += w * x;
                        }
                    }
                }
            }
            _ => {
                for (t, w) in kernel.iter().enumerate() {
                    let kk = (k as i64 + t as i64 - r).clamp(0, nz as i64 - 1) as usize;
                    let s = &src[kk * plane..(kk + 1) * plane];
                    for (o, x) in dst.iter_mut().zip(s) {
                        *o += w * x;
                    }
                }
            }
        });
    out
}

/// A moving image ready for metric evaluation: value and voxel-space gradient interleaved,
/// plus the maps from world millimetres to continuous voxel positions.
pub struct GradientImage {
    pub dims: [usize; 3],
    /// `[value, ∂/∂i, ∂/∂j, ∂/∂k]` per voxel, `i` fastest.
    pub texels: Vec<[f32; 4]>,
    pub voxel_from_world: Matrix4<f64>,
    /// Transposed linear part of `voxel_from_world`: turns a voxel gradient into a world one.
    pub world_grad_from_voxel_grad: Matrix3<f64>,
    pub geometry: VolumeGeometry,
}

impl GradientImage {
    pub fn new(v: &Volume<f32>) -> Self {
        let g = v.geometry().clone();
        let [nx, ny, nz] = g.dims;
        let data = v.data();
        let plane = nx * ny;
        let mut texels = vec![[0f32; 4]; data.len()];
        texels
            .par_chunks_mut(plane)
            .enumerate()
            .for_each(|(k, dst)| {
                for j in 0..ny {
                    for i in 0..nx {
                        let at = |i: usize, j: usize, k: usize| data[i + nx * (j + ny * k)];
                        let central = |lo: f32, hi: f32, span: usize| {
                            if span == 0 {
                                0.0
                            } else {
                                (hi - lo) / span as f32
                            }
                        };
                        let (i0, i1) = (i.saturating_sub(1), (i + 1).min(nx - 1));
                        let (j0, j1) = (j.saturating_sub(1), (j + 1).min(ny - 1));
                        let (k0, k1) = (k.saturating_sub(1), (k + 1).min(nz - 1));
                        dst[i + nx * j] = [
                            at(i, j, k),
                            central(at(i0, j, k), at(i1, j, k), i1 - i0),
                            central(at(i, j0, k), at(i, j1, k), j1 - j0),
                            central(at(i, j, k0), at(i, j, k1), k1 - k0),
                        ];
                    }
                }
            });
        let voxel_from_world = g.voxel_from_world();
        let lin = voxel_from_world.fixed_view::<3, 3>(0, 0).into_owned();
        Self {
            dims: g.dims,
            texels,
            voxel_from_world,
            world_grad_from_voxel_grad: lin.transpose(),
            geometry: g,
        }
    }

    /// The trilinear cell around a continuous voxel position: the index of its first corner, the
    /// steps to the next corner along i, j, k (0 on an axis one voxel thick) and the fractions
    /// within the cell; `None` outside `[0, n − 1]` on any axis.
    #[inline]
    fn cell(&self, p: [f64; 3]) -> Option<(usize, [usize; 3], [f64; 3])> {
        let d = self.dims;
        let mut base = [0usize; 3];
        let mut frac = [0f64; 3];
        for a in 0..3 {
            let c = p[a];
            let max = (d[a] - 1) as f64;
            if !(c >= 0.0 && c <= max) {
                return None;
            }
            if d[a] == 1 {
                continue;
            }
            let f = c.floor().min(max - 1.0);
            base[a] = f as usize;
            frac[a] = c - f;
        }
        let si = usize::from(d[0] > 1);
        let sj = if d[1] > 1 { d[0] } else { 0 };
        let sk = if d[2] > 1 { d[0] * d[1] } else { 0 };
        let i0 = base[0] + d[0] * (base[1] + d[1] * base[2]);
        Some((i0, [si, sj, sk], frac))
    }

    /// Value and world-space gradient at a continuous voxel position; `None` outside
    /// `[0, n − 1]` on any axis (no extrapolation, as ITK's metrics do).
    #[inline]
    pub fn sample(&self, p: [f64; 3]) -> Option<(f64, Vector3<f64>)> {
        let (i0, [si, sj, sk], frac) = self.cell(p)?;
        let t = &self.texels;
        let [fx, fy, fz] = frac.map(|f| f as f32);
        let lerp4 = |a: &[f32; 4], b: &[f32; 4], w: f32| -> [f32; 4] {
            [
                a[0] + (b[0] - a[0]) * w,
                a[1] + (b[1] - a[1]) * w,
                a[2] + (b[2] - a[2]) * w,
                a[3] + (b[3] - a[3]) * w,
            ]
        };
        let c00 = lerp4(&t[i0], &t[i0 + si], fx);
        let c10 = lerp4(&t[i0 + sj], &t[i0 + sj + si], fx);
        let c01 = lerp4(&t[i0 + sk], &t[i0 + sk + si], fx);
        let c11 = lerp4(&t[i0 + sk + sj], &t[i0 + sk + sj + si], fx);
        let c0 = lerp4(&c00, &c10, fy);
        let c1 = lerp4(&c01, &c11, fy);
        let v = lerp4(&c0, &c1, fz);
        let grad_vox = Vector3::new(v[1] as f64, v[2] as f64, v[3] as f64);
        Some((v[0] as f64, self.world_grad_from_voxel_grad * grad_vox))
    }
}

impl GradientImage {
    /// Value and world-space gradient of the trilinear interpolant itself (the gradient is
    /// exact, piecewise, rather than the interpolated central differences of [`Self::sample`]).
    /// A metric built on differences of warped values (NGF) needs it: there the smoothed
    /// gradient's error does not average out, and its analytic derivative pointed 45° off the
    /// finite-difference one.
    #[inline]
    pub fn sample_exact(&self, p: [f64; 3]) -> Option<(f64, Vector3<f64>)> {
        let (i0, [si, sj, sk], frac) = self.cell(p)?;
        let t = &self.texels;
        let v = |o: usize| t[i0 + o][0] as f64;
        let c = [
            [[v(0), v(si)], [v(sj), v(sj + si)]],
            [[v(sk), v(sk + si)], [v(sk + sj), v(sk + sj + si)]],
        ];
        let [fx, fy, fz] = frac;
        let lerp = |a: f64, b: f64, w: f64| a + (b - a) * w;
        // c[z][y][x]
        let along_x =
            |z: usize, y: usize| (lerp(c[z][y][0], c[z][y][1], fx), c[z][y][1] - c[z][y][0]);
        let (x00, dx00) = along_x(0, 0);
        let (x10, dx10) = along_x(0, 1);
        let (x01, dx01) = along_x(1, 0);
        let (x11, dx11) = along_x(1, 1);
        let y0 = lerp(x00, x10, fy);
        let y1 = lerp(x01, x11, fy);
        let value = lerp(y0, y1, fz);
        let gx = lerp(lerp(dx00, dx10, fy), lerp(dx01, dx11, fy), fz);
        let gy = lerp(x10 - x00, x11 - x01, fz);
        let gz = y1 - y0;
        let grad_vox = Vector3::new(gx, gy, gz);
        Some((value, self.world_grad_from_voxel_grad * grad_vox))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blur_preserves_constant_and_mean() {
        let g =
            VolumeGeometry::axis_aligned([20, 18, 16], [1.0, 0.5, 2.0], [0.0; 3]).expect("valid");
        let c = Volume::filled(g.clone(), 3.5f32);
        let b = gaussian_blur(&c, [2.0, 2.0, 2.0]);
        assert!(b.data().iter().all(|v| (v - 3.5).abs() < 1e-4));
        let spike = Volume::from_fn(
            g,
            |[i, j, k]| {
                if [i, j, k] == [10, 9, 8] {
                    1000.0
                } else {
                    0.0
                }
            },
        );
        // Kernels stay inside the grid, so no mass is lost to border replication.
        let b = gaussian_blur(&spike, [1.5, 1.0, 3.0]);
        let sum: f32 = b.data().iter().sum();
        assert!((sum - 1000.0).abs() < 0.5, "mass {sum}");
        assert!(b.at(10, 9, 8) < 1000.0 && b.at(11, 9, 8) > 0.0);
    }

    #[test]
    fn shrink_keeps_world_positions() {
        let g = VolumeGeometry::axis_aligned([40, 40, 10], [0.5, 0.5, 2.0], [5.0, -3.0, 1.0])
            .expect("valid");
        let ramp = {
            let gg = g.clone();
            Volume::from_fn(g, move |[i, j, k]| {
                let w = gg.world_from_voxel_point([i as f64, j as f64, k as f64]);
                (w.x - 2.0 * w.y + 0.5 * w.z) as f32
            })
        };
        let small = smooth_and_shrink(&ramp, 2.0);
        assert_eq!(small.dims(), [10, 10, 10]);
        // A linear ramp survives smoothing away from the borders.
        let w = small.geometry().world_from_voxel_point([5.0, 5.0, 5.0]);
        let expect = w.x - 2.0 * w.y + 0.5 * w.z;
        assert!((small.at(5, 5, 5) as f64 - expect).abs() < 1e-3);
    }

    #[test]
    fn gradient_image_gives_world_gradient() {
        let g = VolumeGeometry::new(
            [20, 20, 20],
            [0.5, 1.0, 2.0],
            [0.0; 3],
            nalgebra::Rotation3::from_euler_angles(0.2, 0.1, -0.3).into_inner(),
        )
        .expect("valid");
        let gg = g.clone();
        let ramp = Volume::from_fn(g.clone(), move |[i, j, k]| {
            let w = gg.world_from_voxel_point([i as f64, j as f64, k as f64]);
            (3.0 * w.x - w.y + 2.0 * w.z) as f32
        });
        let gi = GradientImage::new(&ramp);
        let (v, grad) = gi.sample([7.3, 9.9, 4.5]).expect("inside");
        let w = g.world_from_voxel_point([7.3, 9.9, 4.5]);
        assert!((v - (3.0 * w.x - w.y + 2.0 * w.z)).abs() < 1e-3);
        assert!(
            (grad - Vector3::new(3.0, -1.0, 2.0)).norm() < 1e-3,
            "{grad:?}"
        );
        assert!(gi.sample([-0.1, 0.0, 0.0]).is_none());
    }
}
