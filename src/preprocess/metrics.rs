//! Error against a known clean image: RMSE, PSNR, SSIM inside a mask, coefficient of
//! variation within a tissue, and where a step edge crosses 50 % (boundary shift).

use super::filter::gaussian_raw;
use crate::volume::Volume;
use rayon::prelude::*;

/// Root-mean-square difference over voxels where `mask` is set (all when `None`).
pub fn rmse(a: &Volume<f32>, b: &Volume<f32>, mask: Option<&[bool]>) -> f64 {
    let (sum, n) = a
        .data()
        .par_iter()
        .zip(b.data().par_iter())
        .enumerate()
        .filter(|(n, _)| mask.is_none_or(|m| m[*n]))
        .map(|(_, (x, y))| (((x - y) as f64).powi(2), 1usize))
        .reduce(|| (0.0, 0), |p, q| (p.0 + q.0, p.1 + q.1));
    if n == 0 {
        0.0
    } else {
        (sum / n as f64).sqrt()
    }
}

/// PSNR in dB with `peak` the clean image's dynamic range.
pub fn psnr(rmse: f64, peak: f64) -> f64 {
    20.0 * (peak / rmse.max(1e-12)).log10()
}

/// Mean SSIM over the mask, local statistics from a Gaussian window of σ 1.5 voxels, with
/// `dynamic_range` L (C1 = (0.01 L)², C2 = (0.03 L)²), as in Wang et al. 2004.
pub fn ssim(
    clean: &Volume<f32>,
    test: &Volume<f32>,
    mask: Option<&[bool]>,
    dynamic_range: f64,
) -> f64 {
    let dims = clean.dims();
    let s = [1.5; 3];
    let x = clean.data();
    let y = test.data();
    let mx = gaussian_raw(x, dims, s);
    let my = gaussian_raw(y, dims, s);
    let xx: Vec<f32> = x.par_iter().map(|v| v * v).collect();
    let yy: Vec<f32> = y.par_iter().map(|v| v * v).collect();
    let xy: Vec<f32> = x.par_iter().zip(y).map(|(a, b)| a * b).collect();
    let sxx = gaussian_raw(&xx, dims, s);
    let syy = gaussian_raw(&yy, dims, s);
    let sxy = gaussian_raw(&xy, dims, s);
    let c1 = (0.01 * dynamic_range).powi(2);
    let c2 = (0.03 * dynamic_range).powi(2);
    let (sum, n) = (0..x.len())
        .into_par_iter()
        .filter(|n| mask.is_none_or(|m| m[*n]))
        .map(|n| {
            let (ux, uy) = (mx[n] as f64, my[n] as f64);
            let vx = (sxx[n] as f64 - ux * ux).max(0.0);
            let vy = (syy[n] as f64 - uy * uy).max(0.0);
            let cxy = sxy[n] as f64 - ux * uy;
            let v = ((2.0 * ux * uy + c1) * (2.0 * cxy + c2))
                / ((ux * ux + uy * uy + c1) * (vx + vy + c2));
            (v, 1usize)
        })
        .reduce(|| (0.0, 0), |p, q| (p.0 + q.0, p.1 + q.1));
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

/// Coefficient of variation (σ / mean) of the voxels in `mask`.
pub fn coefficient_of_variation(v: &Volume<f32>, mask: &[bool]) -> f64 {
    let vals: Vec<f64> = v
        .data()
        .iter()
        .zip(mask)
        .filter(|(_, m)| **m)
        .map(|(x, _)| *x as f64)
        .collect();
    if vals.len() < 2 {
        return 0.0;
    }
    let mean = vals.iter().sum::<f64>() / vals.len() as f64;
    let var = vals.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (vals.len() - 1) as f64;
    var.sqrt() / mean.abs().max(1e-12)
}

/// Where a profile first crosses halfway between `low` and `high` (linear interpolation
/// between samples), in sample units; `None` when it never does.
pub fn half_crossing(profile: &[f32], low: f32, high: f32) -> Option<f64> {
    let mid = 0.5 * (low + high);
    profile.windows(2).enumerate().find_map(|(n, w)| {
        let (a, b) = (w[0] - mid, w[1] - mid);
        if a == 0.0 {
            Some(n as f64)
        } else if a * b < 0.0 || b == 0.0 {
            Some(n as f64 + (a / (a - b)) as f64)
        } else {
            None
        }
    })
}
