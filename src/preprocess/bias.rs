//! MR bias-field correction in the spirit of N4 (Tustison et al. 2010).
//!
//! On a shrunken log image inside a mask (Otsu by default), iterate: sharpen the histogram of
//! the current corrected log image by Wiener-deconvolving an assumed Gaussian bias
//! distribution, map each voxel to its expected sharpened value, and fit a smooth field to the
//! residual. Multi-resolution: the field's smoothing scale halves at each level (N4 doubles its
//! B-spline control points).
//!
//! Difference from N4, stated plainly: the smooth fit is a masked Gaussian normalised
//! convolution rather than an approximating B-spline lattice. Both are linear smoothers of the
//! residual with a scale parameter; the Gaussian extrapolates outside the mask smoothly.

use super::filter::gaussian_raw;
use super::normalize::otsu_mask;
use super::{invalid, step, PreprocessError};
use crate::jobs::JobContext;
use crate::volume::{resample, Interpolation, Volume, VolumeGeometry};
use rayon::prelude::*;

#[derive(Debug, Clone, PartialEq)]
pub struct BiasParams {
    /// Shrink factor for the fit (the field is smooth; 4 is N4's usual).
    pub shrink: usize,
    /// Resolution levels; the field σ halves at each.
    pub levels: usize,
    /// Iterations per level.
    pub iterations: usize,
    /// Field smoothing σ at the first level, mm.
    pub field_sigma_mm: f64,
    /// FWHM of the assumed bias distribution in log units (N4: 0.15).
    pub histogram_fwhm: f64,
    /// Stop a level when the field update's RMS falls below this (log units).
    pub convergence: f64,
}

impl Default for BiasParams {
    fn default() -> Self {
        Self {
            shrink: 4,
            levels: 3,
            iterations: 25,
            field_sigma_mm: 60.0,
            histogram_fwhm: 0.15,
            convergence: 1e-4,
        }
    }
}

/// The corrected image and the estimated multiplicative field (geometric mean 1 in the mask).
#[derive(Debug, Clone)]
pub struct BiasResult {
    pub corrected: Volume<f32>,
    pub field: Volume<f32>,
    pub mask: Vec<bool>,
}

/// Estimates and removes a smooth multiplicative field; `mask` defaults to Otsu's foreground.
pub fn correct_bias(
    vol: &Volume<f32>,
    mask: Option<&[bool]>,
    params: &BiasParams,
    ctx: &JobContext,
) -> Result<BiasResult, PreprocessError> {
    if params.shrink == 0 || params.levels == 0 || params.iterations == 0 {
        return Err(invalid(
            "bias params",
            "shrink, levels and iterations must be >= 1",
        ));
    }
    if !(params.field_sigma_mm > 0.0 && params.histogram_fwhm > 0.0) {
        return Err(invalid("bias params", "field σ and FWHM must be > 0"));
    }
    let mask: Vec<bool> = match mask {
        Some(m) if m.len() == vol.data().len() => m.to_vec(),
        Some(_) => return Err(invalid("mask", "length differs from the image")),
        None => otsu_mask(vol),
    };
    // Log is only defined for positive values; the rest leave the fit.
    let mask: Vec<bool> = mask
        .par_iter()
        .zip(vol.data().par_iter())
        .map(|(m, v)| *m && *v > 0.0 && v.is_finite())
        .collect();
    let (cg, log_c, mask_c) = shrink_log(vol, &mask, params.shrink)?;
    let dims_c = cg.dims;
    let n = log_c.len();
    let mut field = vec![0.0f32; n];
    let total = params.levels * params.iterations;
    let mut done = 0;
    let ws: Vec<f32> = mask_c.iter().map(|m| if *m { 1.0 } else { 0.0 }).collect();
    for level in 0..params.levels {
        let sigma_mm = params.field_sigma_mm / (1u32 << level) as f64;
        let sigma_vox = cg.spacing_mm.map(|s| sigma_mm / s);
        let den = gaussian_raw(&ws, dims_c, sigma_vox);
        for _ in 0..params.iterations {
            step(ctx, done, total)?;
            done += 1;
            let corrected: Vec<f32> = log_c.iter().zip(&field).map(|(l, b)| l - b).collect();
            let expected = sharpen(&corrected, &mask_c, params.histogram_fwhm);
            let residual: Vec<f32> = (0..n)
                .map(|i| {
                    if mask_c[i] {
                        corrected[i] - expected[i]
                    } else {
                        0.0
                    }
                })
                .collect();
            let num = gaussian_raw(&residual, dims_c, sigma_vox);
            let mut rms = 0.0f64;
            let mut cnt = 0usize;
            for i in 0..n {
                let u = num[i] / den[i].max(1e-6);
                field[i] += u;
                if mask_c[i] {
                    rms += (u as f64).powi(2);
                    cnt += 1;
                }
            }
            if (rms / cnt.max(1) as f64).sqrt() < params.convergence {
                done += params.iterations.saturating_sub(1) - (done - 1) % params.iterations;
                break;
            }
        }
    }
    let coarse = Volume::new(cg, field)?;
    let mut full = resample(
        &coarse,
        vol.geometry(),
        None,
        Interpolation::Trilinear,
        f32::NAN,
    );
    // Fine voxels beyond the last coarse centre: nearest coarse value instead of NaN.
    let near = resample(&coarse, vol.geometry(), None, Interpolation::Nearest, 0.0);
    for (f, n) in full.data_mut().iter_mut().zip(near.data()) {
        if !f.is_finite() {
            *f = *n;
        }
    }
    let (s, c) = full
        .data()
        .par_iter()
        .zip(mask.par_iter())
        .filter(|(_, m)| **m)
        .map(|(f, _)| (*f as f64, 1usize))
        .reduce(|| (0.0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    let mean = if c > 0 { (s / c as f64) as f32 } else { 0.0 };
    let field = full.map(|b| (b - mean).exp());
    let data: Vec<f32> = vol
        .data()
        .par_iter()
        .zip(field.data().par_iter())
        .map(|(v, f)| v / f)
        .collect();
    step(ctx, total, total)?;
    Ok(BiasResult {
        corrected: Volume::new(vol.geometry().clone(), data)?,
        field,
        mask,
    })
}

/// Block-average of `log(v)` over masked voxels; a coarse voxel is in the mask when at least
/// half its block is. The coarse grid's voxel centres sit at the blocks' centres.
fn shrink_log(
    vol: &Volume<f32>,
    mask: &[bool],
    s: usize,
) -> Result<(VolumeGeometry, Vec<f32>, Vec<bool>), PreprocessError> {
    let g = vol.geometry();
    let dims_c = g.dims.map(|d| d.div_ceil(s));
    let shift = [0, 1, 2].map(|a| {
        if g.dims[a] >= s {
            (s as f64 - 1.0) / 2.0
        } else {
            0.0
        }
    });
    let steps = [0, 1, 2].map(|a| if g.dims[a] >= s { s } else { 1 });
    let dims_c = [0, 1, 2].map(|a| if g.dims[a] >= s { dims_c[a] } else { g.dims[a] });
    let o = g.world_from_voxel_point(shift);
    let cg = VolumeGeometry::new(
        dims_c,
        [0, 1, 2].map(|a| g.spacing_mm[a] * steps[a] as f64),
        [o.x, o.y, o.z],
        g.direction,
    )?;
    let data = vol.data();
    let [nx, ny, nz] = g.dims;
    let (cx, cy, cz) = (dims_c[0], dims_c[1], dims_c[2]);
    let per_slice: Vec<(Vec<f32>, Vec<bool>)> = (0..cz)
        .into_par_iter()
        .map(|kc| {
            let mut sum = vec![0.0f64; cx * cy];
            let mut cnt = vec![0u32; cx * cy];
            let mut all = vec![0u32; cx * cy];
            for k in kc * steps[2]..((kc + 1) * steps[2]).min(nz) {
                for j in 0..ny {
                    let jc = (j / steps[1]).min(cy - 1);
                    for i in 0..nx {
                        let ic = (i / steps[0]).min(cx - 1);
                        let idx = i + nx * (j + ny * k);
                        let c = ic + cx * jc;
                        all[c] += 1;
                        if mask[idx] {
                            sum[c] += (data[idx] as f64).ln();
                            cnt[c] += 1;
                        }
                    }
                }
            }
            let vals = sum
                .iter()
                .zip(&cnt)
                .map(|(s, c)| if *c > 0 { (*s / *c as f64) as f32 } else { 0.0 })
                .collect();
            let m = cnt
                .iter()
                .zip(&all)
                .map(|(c, a)| *c > 0 && 2 * *c >= *a)
                .collect();
            (vals, m)
        })
        .collect();
    let mut log_c = Vec::with_capacity(cx * cy * cz);
    let mut mask_c = Vec::with_capacity(cx * cy * cz);
    for (v, m) in per_slice {
        log_c.extend(v);
        mask_c.extend(m);
    }
    if !mask_c.iter().any(|m| *m) {
        return Err(PreprocessError::EmptyImage {
            what: "bias correction (empty mask)",
        });
    }
    Ok((cg, log_c, mask_c))
}

/// N4's histogram sharpening: the expected true log intensity of each voxel given its
/// observed value, assuming the observed histogram is the true one blurred by a Gaussian
/// bias distribution of the given FWHM (Wiener deconvolution, noise 0.01).
fn sharpen(values: &[f32], mask: &[bool], fwhm: f64) -> Vec<f32> {
    const BINS: usize = 200;
    let (lo, hi) = values
        .iter()
        .zip(mask)
        .filter(|(_, m)| **m)
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), (v, _)| {
            (a.min(*v), b.max(*v))
        });
    if !(lo < hi) {
        return values.to_vec();
    }
    let width = (hi - lo) as f64 / (BINS - 1) as f64;
    let mut hist = vec![0.0f64; BINS];
    for (v, _) in values.iter().zip(mask).filter(|(_, m)| **m) {
        // Linear (Parzen) binning.
        let x = (*v - lo) as f64 / width;
        let b = (x.floor() as usize).min(BINS - 2);
        let t = x - b as f64;
        hist[b] += 1.0 - t;
        hist[b + 1] += t;
    }
    // Pad to twice the size so the circular DFT does not wrap the tails together.
    let m = 2 * BINS.next_power_of_two();
    let sigma_bins = fwhm / (2.0 * (2.0 * 2f64.ln()).sqrt()) / width;
    let mut kernel = vec![0.0f64; m];
    for (t, k) in kernel.iter_mut().enumerate() {
        let d = if t <= m / 2 {
            t as f64
        } else {
            t as f64 - m as f64
        };
        *k = (-0.5 * d * d / (sigma_bins * sigma_bins)).exp();
    }
    let ks: f64 = kernel.iter().sum();
    kernel.iter_mut().for_each(|k| *k /= ks);
    let offset = (m - BINS) / 2;
    let mut padded = vec![0.0f64; m];
    padded[offset..offset + BINS].copy_from_slice(&hist);
    let hf = dft(&padded.iter().map(|v| (*v, 0.0)).collect::<Vec<_>>(), false);
    let kf = dft(&kernel.iter().map(|v| (*v, 0.0)).collect::<Vec<_>>(), false);
    let wiener: Vec<(f64, f64)> = hf
        .iter()
        .zip(&kf)
        .map(|(h, k)| {
            let power = k.0 * k.0 + k.1 * k.1;
            let g = (k.0 / (power + 0.01), -k.1 / (power + 0.01));
            (h.0 * g.0 - h.1 * g.1, h.0 * g.1 + h.1 * g.0)
        })
        .collect();
    let u: Vec<f64> = dft(&wiener, true).iter().map(|c| c.0.max(0.0)).collect();
    // E[true | observed bin] = (g * (u·x)) / (g * u).
    let mut map = vec![0.0f32; BINS];
    let r = (4.0 * sigma_bins).ceil() as i64;
    for (b, out) in map.iter_mut().enumerate() {
        let (mut num, mut den) = (0.0, 0.0);
        for d in -r..=r {
            let p = b as i64 + offset as i64 + d;
            if p < 0 || p >= m as i64 {
                continue;
            }
            let w = (-0.5 * (d * d) as f64 / (sigma_bins * sigma_bins)).exp() * u[p as usize];
            let x = lo as f64 + (p - offset as i64) as f64 * width;
            num += w * x;
            den += w;
        }
        *out = if den > 1e-12 {
            (num / den) as f32
        } else {
            lo + b as f32 * width as f32
        };
    }
    values
        .iter()
        .map(|v| {
            let x = ((*v - lo) as f64 / width).clamp(0.0, (BINS - 1) as f64);
            let b = (x.floor() as usize).min(BINS - 2);
            let t = (x - b as f64) as f32;
            map[b] * (1.0 - t) + map[b + 1] * t
        })
        .collect()
}

/// Plain O(n²) DFT: n is 512, so this costs a fraction of a millisecond per call.
fn dft(x: &[(f64, f64)], inverse: bool) -> Vec<(f64, f64)> {
    let n = x.len();
    let sign = if inverse { 1.0 } else { -1.0 };
    let tw: Vec<(f64, f64)> = (0..n)
        .map(|t| {
            let a = sign * std::f64::consts::TAU * t as f64 / n as f64;
            (a.cos(), a.sin())
        })
        .collect();
    (0..n)
        .map(|k| {
            let (mut re, mut im) = (0.0, 0.0);
            for (t, v) in x.iter().enumerate() {
                let w = tw[(k * t) % n];
                re += v.0 * w.0 - v.1 * w.1;
                im += v.0 * w.1 + v.1 * w.0;
            }
            if inverse {
                (re / n as f64, im / n as f64)
            } else {
                (re, im)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preprocess::{metrics, phantom};

    /// Two-tissue head-like phantom: WM 100 inside GM 70 inside background 0.
    fn brain(g: &VolumeGeometry) -> (Volume<f32>, Vec<bool>) {
        let c = g.center_world();
        let gg = g.clone();
        let v = Volume::from_fn(g.clone(), |[i, j, k]| {
            let w = gg.world_from_voxel_point([i as f64, j as f64, k as f64]) - c;
            let e = (w.x / 70.0).powi(2) + (w.y / 85.0).powi(2) + (w.z / 60.0).powi(2);
            if e < 0.45 {
                100.0
            } else if e < 1.0 {
                70.0
            } else {
                0.0
            }
        });
        let wm = v.data().iter().map(|x| *x == 100.0).collect();
        (v, wm)
    }

    #[test]
    fn removes_known_smooth_field() {
        let g = VolumeGeometry::axis_aligned([80, 96, 72], [2.0; 3], [0.0; 3]).expect("g");
        let (clean, wm) = brain(&g);
        let field = phantom::smooth_bias_field(&g, 0.5);
        let biased: Vec<f32> = clean
            .data()
            .iter()
            .zip(field.data())
            .map(|(v, f)| v * f)
            .collect();
        let biased = phantom::add_gaussian_noise(&Volume::new(g, biased).expect("len"), 1.0, 3);
        let cv_before = metrics::coefficient_of_variation(&biased, &wm);
        let out = correct_bias(
            &biased,
            None,
            &BiasParams::default(),
            &JobContext::detached(),
        )
        .expect("ok");
        let cv_after = metrics::coefficient_of_variation(&out.corrected, &wm);
        let cv_noise = 1.0 / 100.0;
        eprintln!("WM CV {cv_before:.4} -> {cv_after:.4}");
        assert!(cv_before > 0.08, "field too weak to test: {cv_before}");
        assert!(
            cv_after < 0.3 * cv_before && cv_after < 4.0 * cv_noise,
            "CV {cv_before:.4} -> {cv_after:.4}"
        );
    }
}
