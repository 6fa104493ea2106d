//! Separable building blocks: Gaussian smoothing in mm, a 3×3×3 median, box sums and a
//! line mapper that the recursive filters (B-spline prefilter, 1D bilateral) run on.
//!
//! Borders replicate the edge voxel (zero-flux), which is what CT/MR smoothing expects: it
//! neither darkens the border (zero padding) nor wraps the other side in.

use super::{step, PreprocessError};
use crate::jobs::JobContext;
use crate::volume::Volume;
use rayon::prelude::*;

/// A normalised, truncated (±3σ) Gaussian kernel for `sigma_vox` voxels; `[1]` when σ ≈ 0.
pub fn gaussian_kernel(sigma_vox: f64) -> Vec<f32> {
    if sigma_vox < 1e-3 {
        return vec![1.0];
    }
    let r = (3.0 * sigma_vox).ceil().max(1.0) as i64;
    let w: Vec<f64> = (-r..=r)
        .map(|t| (-(t * t) as f64 / (2.0 * sigma_vox * sigma_vox)).exp())
        .collect();
    let s: f64 = w.iter().sum();
    w.iter().map(|v| (v / s) as f32).collect()
}

/// Convolves `src` along `axis` with a symmetric odd-length `kernel`, writing `dst`.
pub fn convolve_axis(src: &[f32], dst: &mut [f32], dims: [usize; 3], axis: usize, kernel: &[f32]) {
    let [nx, ny, _nz] = dims;
    let r = (kernel.len() / 2) as i64;
    let plane = nx * ny;
    match axis {
        0 => dst
            .par_chunks_mut(nx)
            .zip(src.par_chunks(nx))
            .for_each(|(out, row)| {
                let last = nx as i64 - 1;
                for (i, o) in out.iter_mut().enumerate() {
                    let i = i as i64;
                    let mut acc = 0.0f32;
                    if i >= r && i + r <= last {
                        let base = (i - r) as usize;
                        for (t, w) in kernel.iter().enumerate() {
                            acc += w * row[base + t];
                        }
                    } else {
                        for (t, w) in kernel.iter().enumerate() {
                            let p = (i + t as i64 - r).clamp(0, last) as usize;
                            acc += w * row[p];
                        }
                    }
                    *o = acc;
                }
            }),
        1 => dst
            .par_chunks_mut(plane)
            .zip(src.par_chunks(plane))
            .for_each(|(out, slice)| {
                let last = ny as i64 - 1;
                for j in 0..ny {
                    let orow = &mut out[j * nx..(j + 1) * nx];
                    orow.fill(0.0);
                    for (t, w) in kernel.iter().enumerate() {
                        let q = (j as i64 + t as i64 - r).clamp(0, last) as usize;
                        let irow = &slice[q * nx..(q + 1) * nx];
                        for (o, v) in orow.iter_mut().zip(irow) {
                            *o += w * v;
                        }
                    }
                }
            }),
        _ => {
            let nz = src.len() / plane.max(1);
            let last = nz as i64 - 1;
            dst.par_chunks_mut(plane).enumerate().for_each(|(k, out)| {
                out.fill(0.0);
                for (t, w) in kernel.iter().enumerate() {
                    let q = (k as i64 + t as i64 - r).clamp(0, last) as usize;
                    let islice = &src[q * plane..(q + 1) * plane];
                    for (o, v) in out.iter_mut().zip(islice) {
                        *o += w * v;
                    }
                }
            });
        }
    }
}

/// Separable Gaussian with per-axis σ in voxels, on a raw buffer (no progress: callers wrap).
pub fn gaussian_raw(data: &[f32], dims: [usize; 3], sigma_vox: [f64; 3]) -> Vec<f32> {
    let mut a = data.to_vec();
    let mut b = vec![0.0f32; data.len()];
    for axis in 0..3 {
        let k = gaussian_kernel(sigma_vox[axis]);
        if k.len() == 1 {
            continue;
        }
        convolve_axis(&a, &mut b, dims, axis, &k);
        std::mem::swap(&mut a, &mut b);
    }
    a
}

/// Gaussian smoothing with σ in millimetres (per axis, from the voxel spacing).
pub fn gaussian(
    vol: &Volume<f32>,
    sigma_mm: f64,
    ctx: &JobContext,
) -> Result<Volume<f32>, PreprocessError> {
    if !(sigma_mm.is_finite() && sigma_mm >= 0.0) {
        return Err(super::invalid(
            "sigma_mm",
            format!("{sigma_mm} is not >= 0"),
        ));
    }
    let g = vol.geometry().clone();
    let dims = g.dims;
    let mut a = vol.data().to_vec();
    let mut b = vec![0.0f32; a.len()];
    for axis in 0..3 {
        step(ctx, axis, 3)?;
        let k = gaussian_kernel(sigma_mm / g.spacing_mm[axis]);
        if k.len() == 1 {
            continue;
        }
        convolve_axis(&a, &mut b, dims, axis, &k);
        std::mem::swap(&mut a, &mut b);
    }
    step(ctx, 3, 3)?;
    Ok(Volume::new(g, a)?)
}

/// Box sum of half-width `r` along every axis (replicated borders).
pub fn box_sum_raw(data: &[f32], dims: [usize; 3], r: usize) -> Vec<f32> {
    let k = vec![1.0f32; 2 * r + 1];
    let mut a = data.to_vec();
    let mut b = vec![0.0f32; data.len()];
    for axis in 0..3 {
        if dims[axis] > 1 {
            convolve_axis(&a, &mut b, dims, axis, &k);
            std::mem::swap(&mut a, &mut b);
        }
    }
    a
}

/// Runs `f` on every line of voxels along `axis`, in place. `f` gets the line and a scratch
/// buffer reused across lines of one worker.
pub fn map_lines(
    data: &mut [f32],
    dims: [usize; 3],
    axis: usize,
    f: impl Fn(&mut [f32], &mut Vec<f32>) + Sync,
) {
    let [nx, ny, nz] = dims;
    let plane = nx * ny;
    match axis {
        0 => data
            .par_chunks_mut(nx)
            .for_each_init(Vec::new, |scratch, line| f(line, scratch)),
        1 => data.par_chunks_mut(plane).for_each_init(
            || (Vec::new(), vec![0.0f32; ny]),
            |(scratch, line), slice| {
                for i in 0..nx {
                    for j in 0..ny {
                        line[j] = slice[i + nx * j];
                    }
                    f(line, scratch);
                    for j in 0..ny {
                        slice[i + nx * j] = line[j];
                    }
                }
            },
        ),
        _ => {
            // Lines along k cross every slice: compute per `j` sheet, then scatter.
            let sheets: Vec<Vec<f32>> = (0..ny)
                .into_par_iter()
                .map_init(Vec::new, |scratch, j| {
                    let mut sheet = vec![0.0f32; nx * nz];
                    for i in 0..nx {
                        let line = &mut sheet[i * nz..(i + 1) * nz];
                        for (k, v) in line.iter_mut().enumerate() {
                            *v = data[i + nx * (j + ny * k)];
                        }
                        f(line, scratch);
                    }
                    sheet
                })
                .collect();
            data.par_chunks_mut(plane)
                .enumerate()
                .for_each(|(k, slice)| {
                    for (j, sheet) in sheets.iter().enumerate() {
                        for i in 0..nx {
                            slice[i + nx * j] = sheet[i * nz + k];
                        }
                    }
                });
        }
    }
}

/// 3×3×3 median (replicated borders), by partial selection of the 27 neighbours.
pub fn median3(vol: &Volume<f32>, ctx: &JobContext) -> Result<Volume<f32>, PreprocessError> {
    let g = vol.geometry().clone();
    let [nx, ny, nz] = g.dims;
    let plane = nx * ny;
    let src = vol.data();
    let mut out = vec![0.0f32; src.len()];
    let done = std::sync::atomic::AtomicUsize::new(0);
    let cancelled = std::sync::atomic::AtomicBool::new(false);
    out.par_chunks_mut(plane)
        .enumerate()
        .for_each(|(k, oslice)| {
            if cancelled.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            let ks = [k.saturating_sub(1), k, (k + 1).min(nz - 1)];
            let mut win = [0.0f32; 27];
            for j in 0..ny {
                let js = [j.saturating_sub(1), j, (j + 1).min(ny - 1)];
                for i in 0..nx {
                    let is = [i.saturating_sub(1), i, (i + 1).min(nx - 1)];
                    let mut n = 0;
                    for &kk in &ks {
                        for &jj in &js {
                            let row = kk * plane + jj * nx;
                            for &ii in &is {
                                win[n] = src[row + ii];
                                n += 1;
                            }
                        }
                    }
                    let (_, m, _) = win.select_nth_unstable_by(13, f32::total_cmp);
                    oslice[j * nx + i] = *m;
                }
            }
            let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            if step(ctx, d, nz).is_err() {
                cancelled.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        });
    if cancelled.into_inner() {
        return Err(PreprocessError::Cancelled);
    }
    Ok(Volume::new(g, out)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::VolumeGeometry;

    #[test]
    fn gaussian_preserves_constant_and_mass() {
        let g = VolumeGeometry::axis_aligned([20, 15, 9], [0.8, 1.0, 2.5], [0.0; 3]).expect("g");
        let v = Volume::filled(g.clone(), 37.0f32);
        let s = gaussian(&v, 2.0, &JobContext::detached()).expect("ok");
        assert!(s.data().iter().all(|x| (x - 37.0).abs() < 1e-3));
        // An impulse far from borders keeps its sum and spreads with the right σ along i.
        let mut imp = Volume::filled(g.clone(), 0.0f32);
        imp.set(10, 7, 4, 1.0);
        let s = gaussian(&imp, 1.6, &JobContext::detached()).expect("ok");
        let sum: f32 = s.data().iter().sum();
        assert!((sum - 1.0).abs() < 1e-3, "{sum}");
        let var_i: f32 = (0..20)
            .map(|i| {
                let m: f32 = (0..15)
                    .flat_map(|j| (0..9).map(move |k| (j, k)))
                    .map(|(j, k)| s.at(i, j, k))
                    .sum();
                m * ((i as f32 - 10.0) * 0.8).powi(2)
            })
            .sum();
        assert!((var_i.sqrt() - 1.6).abs() < 0.1, "σ_i {}", var_i.sqrt());
    }

    #[test]
    fn median_removes_impulses_keeps_edges() {
        let g = VolumeGeometry::axis_aligned([12, 12, 6], [1.0; 3], [0.0; 3]).expect("g");
        let mut v = Volume::from_fn(g, |[i, _, _]| if i < 6 { 0.0f32 } else { 100.0 });
        v.set(2, 5, 3, 5000.0);
        let m = median3(&v, &JobContext::detached()).expect("ok");
        assert_eq!(m.at(2, 5, 3), 0.0);
        assert_eq!(m.at(5, 5, 3), 0.0);
        assert_eq!(m.at(6, 5, 3), 100.0);
    }

    #[test]
    fn map_lines_visits_every_axis_line() {
        let dims = [4, 3, 5];
        for axis in 0..3 {
            let mut d: Vec<f32> = (0..60).map(|x| x as f32).collect();
            map_lines(&mut d, dims, axis, |line, _| {
                let first = line[0];
                for v in line.iter_mut() {
                    *v -= first;
                }
            });
            // After subtracting the line's first value, the first voxel of each line is 0
            // and the step along the axis equals the stride.
            let stride = [1.0, 4.0, 12.0][axis];
            let idx = |i: usize, j: usize, k: usize| i + 4 * (j + 3 * k);
            assert_eq!(
                d[idx(1, 1, 1)] - d[[idx(0, 1, 1), idx(1, 0, 1), idx(1, 1, 0)][axis]],
                stride
            );
            assert_eq!(d[[idx(0, 2, 3), idx(2, 0, 3), idx(2, 1, 0)][axis]], 0.0);
        }
    }
}
