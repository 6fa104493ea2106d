//! Separable Gaussian smoothing in millimetres, f32, parallel over rows.
//!
//! Each axis pass is written as a sum of whole shifted rows times a weight, so the inner loop is
//! a contiguous multiply-add the compiler vectorises, even for the `j` and `k` passes whose
//! lines are strided in memory.

use super::SegmentationError;
use crate::volume::Volume;
use rayon::prelude::*;

/// Kernel half-width in standard deviations (scipy's `truncate` default, for like-for-like
/// comparisons).
const TRUNCATE_SIGMAS: f64 = 4.0;

/// Normalised 1D kernel for a standard deviation in voxels; `None` when the blur along this
/// axis would be negligible.
fn kernel(sigma_voxels: f64) -> Option<Vec<f32>> {
    if sigma_voxels < 0.05 {
        return None;
    }
    let radius = (TRUNCATE_SIGMAS * sigma_voxels + 0.5).floor().max(1.0) as i64;
    let w: Vec<f64> = (-radius..=radius)
        .map(|x| (-0.5 * (x as f64 / sigma_voxels).powi(2)).exp())
        .collect();
    let sum: f64 = w.iter().sum();
    Some(w.iter().map(|v| (v / sum) as f32).collect())
}

/// Blurs `image` with an isotropic Gaussian of `sigma_mm` (borders repeat the edge voxel).
pub fn gaussian_smooth(
    image: &Volume<f32>,
    sigma_mm: f64,
) -> Result<Volume<f32>, SegmentationError> {
    if !(sigma_mm.is_finite() && sigma_mm >= 0.0) {
        return Err(SegmentationError::InvalidParameter(format!(
            "sigma must be a finite, non-negative number of mm, got {sigma_mm}"
        )));
    }
    let [nx, ny, nz] = image.dims();
    let s = image.geometry().spacing_mm;
    let mut data = image.data().to_vec();
    if let Some(w) = kernel(sigma_mm / s[0]) {
        let r = w.len() / 2;
        data.par_chunks_mut(nx).for_each_init(
            || (vec![0f32; nx + 2 * r], vec![0f32; nx]),
            |(padded, acc), row| {
                padded[..r].fill(row[0]);
                padded[r..r + nx].copy_from_slice(row);
                padded[r + nx..].fill(row[nx - 1]);
                acc.fill(0.0);
                for (t, &wt) in w.iter().enumerate() {
                    for (a, &p) in acc.iter_mut().zip(&padded[t..t + nx]) {
                        *a += wt * p;
                    }
                }
                row.copy_from_slice(acc);
            },
        );
    }
    if let Some(w) = kernel(sigma_mm / s[1]) {
        data.par_chunks_mut(nx * ny).for_each_init(
            || vec![0f32; nx * ny],
            |copy, slice| {
                copy.copy_from_slice(slice);
                for j in 0..ny {
                    let out = &mut slice[j * nx..(j + 1) * nx];
                    blend_rows(out, &w, |jj| &copy[jj * nx..(jj + 1) * nx], j, ny);
                }
            },
        );
    }
    if let Some(w) = kernel(sigma_mm / s[2]) {
        // Along k the taps are whole slices apart: keep the unblurred copies of the 2r + 1
        // slices the current output slice needs in a ring, and overwrite slices in place in
        // increasing k (slice k's original is in the ring before it is overwritten). This
        // needs 2r + 1 slices of scratch instead of a second volume.
        let r = w.len() / 2;
        let n = nx * ny;
        let ring_len = 2 * r + 1;
        let mut ring: Vec<Vec<f32>> = (0..ring_len.min(nz)).map(|_| vec![0f32; n]).collect();
        let slot = |src: usize| src % ring_len;
        let load = |ring: &mut Vec<Vec<f32>>, data: &[f32], src: usize| {
            ring[slot(src)]
                .par_chunks_mut(nx)
                .zip(data[src * n..(src + 1) * n].par_chunks(nx))
                .for_each(|(dst, from)| dst.copy_from_slice(from));
        };
        for src in 0..r.min(nz) {
            load(&mut ring, &data, src);
        }
        for k in 0..nz {
            if k + r < nz {
                load(&mut ring, &data, k + r);
            }
            let ring = &ring;
            data[k * n..(k + 1) * n]
                .par_chunks_mut(nx)
                .enumerate()
                .for_each(|(j, out)| {
                    blend_rows(out, &w, |kk| &ring[slot(kk)][j * nx..(j + 1) * nx], k, nz);
                });
        }
    }
    Ok(Volume::new(image.geometry().clone(), data).expect("same grid"))
}

/// `out = Σ_t w[t] · row(clamp(at + t − r))`, the rows taken along the blurred axis.
#[inline]
fn blend_rows<'a>(
    out: &mut [f32],
    w: &[f32],
    row: impl Fn(usize) -> &'a [f32],
    at: usize,
    n: usize,
) {
    let r = (w.len() / 2) as i64;
    out.fill(0.0);
    for (t, &wt) in w.iter().enumerate() {
        let src = (at as i64 + t as i64 - r).clamp(0, n as i64 - 1) as usize;
        for (o, &v) in out.iter_mut().zip(row(src)) {
            *o += wt * v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segmentation::phantoms::grid;

    #[test]
    fn impulse_spreads_into_a_gaussian_of_the_right_width() {
        let g = grid([41, 31, 21], [0.5, 1.0, 2.0]);
        let mut image = Volume::filled(g, 0f32);
        image.set(20, 15, 10, 1.0);
        let sigma = 2.0;
        let out = gaussian_smooth(&image, sigma).expect("valid sigma");
        let total: f64 = out.data().iter().map(|&v| v as f64).sum();
        assert!((total - 1.0).abs() < 1e-4, "mass {total}");
        // The variance along each axis, in mm², equals sigma² (sampled Gaussian, truncated at 4σ).
        for (axis, spacing) in [(0usize, 0.5), (1, 1.0), (2, 2.0)] {
            let mut var = 0.0;
            for (idx, &v) in out.data().iter().enumerate() {
                let p = out.geometry().index3(idx)[axis] as f64;
                let c = [20.0, 15.0, 10.0][axis];
                var += v as f64 * ((p - c) * spacing).powi(2);
            }
            assert!((var - sigma * sigma).abs() < 0.1, "axis {axis}: {var}");
        }
    }

    #[test]
    fn constant_image_is_unchanged() {
        let g = grid([9, 8, 7], [1.0; 3]);
        let out = gaussian_smooth(&Volume::filled(g, 3.5f32), 1.5).expect("valid");
        assert!(out.data().iter().all(|&v| (v - 3.5).abs() < 1e-5));
        assert!(gaussian_smooth(&out, -1.0).is_err());
    }
}
