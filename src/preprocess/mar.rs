//! Metal-artefact reduction for CT by sinogram inpainting (LI-MAR, Kalender 1987; NMAR,
//! Meyer et al. 2010), slice by slice.
//!
//! What it does: finds metal (HU above a threshold, connected components of a minimum size,
//! dilated by a margin), forward-projects each affected axial slice with a **parallel-beam**
//! Radon transform, replaces the metal trace in the sinogram by interpolation (linear, or
//! normalised by a tissue-class prior for NMAR), and adds the filtered back-projection of the
//! sinogram *change* to the image. Only voxels outside the metal change; the metal is put back.
//!
//! What it cannot do: the scanner's raw (fan/cone-beam, polychromatic) projections are not
//! available, so this re-projects the reconstructed image; the streak model is the 2D
//! parallel-beam approximation of it. Information truly lost along the metal trace cannot be
//! recovered, structures hidden inside the trace (e.g. bone between two implants) come back
//! smoothed, and the metal's own HU are untouched (saturated on most scanners anyway).

use super::{invalid, step, PreprocessError};
use crate::jobs::JobContext;
use crate::volume::Volume;
use rayon::prelude::*;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How the metal trace is filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarMethod {
    /// Linear interpolation across the trace per projection angle.
    Linear,
    /// Normalised MAR: interpolate the sinogram divided by the projection of a
    /// tissue-class prior (air / water / bone) built from the LI result.
    Normalized,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MarParams {
    /// Voxels above this (HU) may be metal; cortical bone stays below ~2000 HU.
    pub metal_threshold_hu: f32,
    /// Components smaller than this many voxels are ignored (noise, dense contrast specks).
    pub min_metal_voxels: usize,
    /// The trace covers the metal dilated in-plane by this margin (partial-volume rim).
    pub margin_mm: f64,
    /// Projection angles over 180°; 0 picks max(nx, ny).
    pub angles: usize,
    pub method: MarMethod,
}

impl Default for MarParams {
    fn default() -> Self {
        Self {
            metal_threshold_hu: 2500.0,
            min_metal_voxels: 5,
            margin_mm: 1.0,
            angles: 0,
            method: MarMethod::Normalized,
        }
    }
}

#[derive(Debug, Clone)]
pub struct MarResult {
    pub corrected: Volume<f32>,
    /// The detected metal (before the margin).
    pub metal: Vec<bool>,
    pub slices_corrected: usize,
}

/// Metal voxels: above `threshold_hu`, in 6-connected components of at least `min_voxels`.
pub fn detect_metal(vol: &Volume<f32>, threshold_hu: f32, min_voxels: usize) -> Vec<bool> {
    let [nx, ny, nz] = vol.dims();
    let plane = nx * ny;
    let hot: Vec<bool> = vol.data().par_iter().map(|v| *v > threshold_hu).collect();
    let mut metal = vec![false; hot.len()];
    let mut seen = vec![false; hot.len()];
    let mut queue = VecDeque::new();
    let mut component = Vec::new();
    for start in 0..hot.len() {
        if !hot[start] || seen[start] {
            continue;
        }
        component.clear();
        seen[start] = true;
        queue.push_back(start);
        while let Some(n) = queue.pop_front() {
            component.push(n);
            let (i, j, k) = (n % nx, (n / nx) % ny, n / plane);
            let mut visit = |m: usize| {
                if hot[m] && !seen[m] {
                    seen[m] = true;
                    queue.push_back(m);
                }
            };
            if i > 0 {
                visit(n - 1);
            }
            if i + 1 < nx {
                visit(n + 1);
            }
            if j > 0 {
                visit(n - nx);
            }
            if j + 1 < ny {
                visit(n + nx);
            }
            if k > 0 {
                visit(n - plane);
            }
            if k + 1 < nz {
                visit(n + plane);
            }
        }
        if component.len() >= min_voxels {
            for &n in &component {
                metal[n] = true;
            }
        }
    }
    metal
}

/// Reduces metal streaks; returns the input unchanged (0 slices) when no metal is found.
pub fn reduce_metal_artefacts(
    vol: &Volume<f32>,
    params: &MarParams,
    ctx: &JobContext,
) -> Result<MarResult, PreprocessError> {
    if !params.metal_threshold_hu.is_finite() || !(params.margin_mm >= 0.0) {
        return Err(invalid(
            "mar params",
            "threshold must be finite and margin >= 0",
        ));
    }
    let g = vol.geometry();
    if !g.is_axis_aligned(1e-3) {
        // Axial slices must be the k planes for the in-plane projector.
        tracing::warn!("MAR on an oblique grid: projecting along the grid's k planes");
    }
    ctx.set_stage("Detecting metal");
    let metal = detect_metal(vol, params.metal_threshold_hu, params.min_metal_voxels);
    let [nx, ny, nz] = g.dims;
    let plane = nx * ny;
    let slices: Vec<usize> = (0..nz)
        .filter(|k| metal[k * plane..(k + 1) * plane].iter().any(|m| *m))
        .collect();
    let mut out = vol.data().to_vec();
    if slices.is_empty() {
        return Ok(MarResult {
            corrected: vol.clone(),
            metal,
            slices_corrected: 0,
        });
    }
    ctx.set_stage("Inpainting metal traces");
    let (sx, sy) = (g.spacing_mm[0], g.spacing_mm[1]);
    let done = AtomicUsize::new(0);
    let results: Vec<Result<(usize, Vec<f32>), PreprocessError>> = slices
        .par_iter()
        .map(|&k| {
            ctx.check_cancelled()?;
            let img = &vol.data()[k * plane..(k + 1) * plane];
            let m = &metal[k * plane..(k + 1) * plane];
            let trace_mask = dilate_2d(m, nx, ny, params.margin_mm / sx, params.margin_mm / sy);
            let proj = Projector::new(nx, ny, sx, sy, params.angles);
            let fixed = mar_slice(img, m, &trace_mask, &proj, params.method);
            let d = done.fetch_add(1, Ordering::Relaxed) + 1;
            step(ctx, d, slices.len())?;
            Ok((k, fixed))
        })
        .collect();
    for r in results {
        let (k, fixed) = r?;
        out[k * plane..(k + 1) * plane].copy_from_slice(&fixed);
    }
    Ok(MarResult {
        corrected: Volume::new(g.clone(), out)?,
        metal,
        slices_corrected: slices.len(),
    })
}

/// In-plane elliptical dilation by radii in voxels.
fn dilate_2d(m: &[bool], nx: usize, ny: usize, rx: f64, ry: f64) -> Vec<bool> {
    let (ri, rj) = (rx.floor() as i64, ry.floor() as i64);
    let mut out = m.to_vec();
    if ri == 0 && rj == 0 {
        return out;
    }
    for j in 0..ny as i64 {
        for i in 0..nx as i64 {
            if !m[(i + nx as i64 * j) as usize] {
                continue;
            }
            for dj in -rj..=rj {
                for di in -ri..=ri {
                    let e = (di as f64 / rx.max(1e-9)).powi(2) + (dj as f64 / ry.max(1e-9)).powi(2);
                    let (a, b) = (i + di, j + dj);
                    if e <= 1.0 && a >= 0 && b >= 0 && a < nx as i64 && b < ny as i64 {
                        out[(a + nx as i64 * b) as usize] = true;
                    }
                }
            }
        }
    }
    out
}

/// A 2D parallel-beam geometry for one slice: pixel-driven projector with linear detector
/// interpolation, and its adjoint as back-projector.
pub struct Projector {
    nx: usize,
    ny: usize,
    sx: f64,
    sy: f64,
    det_spacing: f64,
    n_det: usize,
    cos_sin: Vec<(f64, f64)>,
}

impl Projector {
    pub fn new(nx: usize, ny: usize, sx: f64, sy: f64, angles: usize) -> Self {
        let angles = if angles == 0 { nx.max(ny) } else { angles };
        let det_spacing = sx.min(sy);
        let diag = ((nx as f64 * sx).powi(2) + (ny as f64 * sy).powi(2)).sqrt();
        let n_det = (diag / det_spacing).ceil() as usize + 3;
        let cos_sin = (0..angles)
            .map(|a| {
                let t = std::f64::consts::PI * a as f64 / angles as f64;
                (t.cos(), t.sin())
            })
            .collect();
        Self {
            nx,
            ny,
            sx,
            sy,
            det_spacing,
            n_det,
            cos_sin,
        }
    }

    fn detector_pos(&self, a: usize, i: usize, j: usize) -> f64 {
        let x = (i as f64 - (self.nx as f64 - 1.0) / 2.0) * self.sx;
        let y = (j as f64 - (self.ny as f64 - 1.0) / 2.0) * self.sy;
        let (c, s) = self.cos_sin[a];
        (x * c + y * s) / self.det_spacing + (self.n_det as f64 - 1.0) / 2.0
    }

    /// Line integrals (mm × value) of `img`, `angles × n_det`.
    pub fn forward(&self, img: &[f32]) -> Vec<f32> {
        let area = (self.sx * self.sy / self.det_spacing) as f32;
        let mut sino = vec![0.0f32; self.cos_sin.len() * self.n_det];
        for (a, row) in sino.chunks_mut(self.n_det).enumerate() {
            for j in 0..self.ny {
                for i in 0..self.nx {
                    let v = img[i + self.nx * j];
                    if v == 0.0 {
                        continue;
                    }
                    let t = self.detector_pos(a, i, j);
                    let b = t.floor() as usize;
                    let f = (t - b as f64) as f32;
                    row[b] += v * area * (1.0 - f);
                    row[b + 1] += v * area * f;
                }
            }
        }
        sino
    }

    /// Filtered back-projection (Ram-Lak ramp, spatial kernel) of `sino`.
    pub fn fbp(&self, sino: &[f32]) -> Vec<f32> {
        let d = self.det_spacing;
        let n = self.n_det as i64;
        let kernel: Vec<f64> = (0..n)
            .map(|t| {
                if t == 0 {
                    1.0 / (4.0 * d * d)
                } else if t % 2 == 1 {
                    -1.0 / (std::f64::consts::PI * t as f64 * d).powi(2)
                } else {
                    0.0
                }
            })
            .collect();
        let mut img = vec![0.0f32; self.nx * self.ny];
        let mut q = vec![0.0f32; self.n_det];
        let scale = std::f64::consts::PI / self.cos_sin.len() as f64;
        for (a, row) in sino.chunks(self.n_det).enumerate() {
            // The sinogram change is sparse: convolve from its non-zero bins only.
            q.iter_mut().for_each(|v| *v = 0.0);
            for (b, v) in row.iter().enumerate() {
                if *v == 0.0 {
                    continue;
                }
                for (t, qt) in q.iter_mut().enumerate() {
                    let dist = (t as i64 - b as i64).unsigned_abs() as usize;
                    *qt += (kernel[dist] * d * *v as f64) as f32;
                }
            }
            for j in 0..self.ny {
                for i in 0..self.nx {
                    let t = self.detector_pos(a, i, j);
                    let b = t.floor() as usize;
                    let f = (t - b as f64) as f32;
                    img[i + self.nx * j] +=
                        ((q[b] * (1.0 - f) + q[b + 1] * f) as f64 * scale) as f32;
                }
            }
        }
        img
    }
}

/// Replaces each angle's values on the trace by linear interpolation between the nearest
/// values off the trace.
fn inpaint_linear(sino: &mut [f32], trace: &[bool], n_det: usize) {
    for (row, tr) in sino.chunks_mut(n_det).zip(trace.chunks(n_det)) {
        let mut b = 0;
        while b < n_det {
            if !tr[b] {
                b += 1;
                continue;
            }
            let start = b;
            while b < n_det && tr[b] {
                b += 1;
            }
            let left = start.checked_sub(1).map(|l| row[l]);
            let right = (b < n_det).then(|| row[b]);
            let (l, r) = match (left, right) {
                (Some(l), Some(r)) => (l, r),
                (Some(l), None) => (l, l),
                (None, Some(r)) => (r, r),
                (None, None) => (0.0, 0.0),
            };
            let len = (b - start + 1) as f32;
            for (t, v) in row[start..b].iter_mut().enumerate() {
                let f = (t + 1) as f32 / len;
                *v = l * (1.0 - f) + r * f;
            }
        }
    }
}

fn mar_slice(
    original: &[f32],
    metal: &[bool],
    trace_mask: &[bool],
    proj: &Projector,
    method: MarMethod,
) -> Vec<f32> {
    // Take the metal out of the image first (fill with the mean of a rim around it): the
    // projector/FBP pair is not exact, and its error on a 7000 HU object would itself streak.
    let nx = proj.nx;
    let ny = proj.ny;
    let rim = dilate_2d(trace_mask, nx, ny, 2.0, 2.0);
    let (rs, rn) = original
        .iter()
        .zip(rim.iter().zip(trace_mask))
        .filter(|(_, (r, t))| **r && !**t)
        .fold((0.0f64, 0usize), |(s, n), (v, _)| (s + *v as f64, n + 1));
    let fill = if rn > 0 { (rs / rn as f64) as f32 } else { 0.0 };
    let img0: Vec<f32> = original
        .iter()
        .zip(trace_mask)
        .map(|(v, t)| if *t { fill } else { *v })
        .collect();
    let img = &img0[..];
    // Attenuation-like values (water 1000, air 0) so the sinogram is a sum of positives.
    let mu: Vec<f32> = img.iter().map(|v| (v + 1000.0).max(0.0)).collect();
    let sino = proj.forward(&mu);
    let mask_f: Vec<f32> = trace_mask
        .iter()
        .map(|m| if *m { 1.0 } else { 0.0 })
        .collect();
    let trace: Vec<bool> = proj.forward(&mask_f).iter().map(|v| *v > 1e-3).collect();
    let mut li = sino.clone();
    inpaint_linear(&mut li, &trace, proj.n_det);
    let apply = |target: &[f32]| -> Vec<f32> {
        let delta: Vec<f32> = target.iter().zip(&sino).map(|(t, s)| t - s).collect();
        let corr = proj.fbp(&delta);
        img.iter()
            .zip(&corr)
            .zip(metal)
            .map(|((v, c), m)| if *m { *v } else { v + c })
            .collect()
    };
    let restore_metal = |mut out: Vec<f32>| {
        for ((o, m), v) in out.iter_mut().zip(metal).zip(original) {
            if *m {
                *o = *v;
            }
        }
        out
    };
    let li_img = apply(&li);
    if method == MarMethod::Linear {
        return restore_metal(li_img);
    }
    // NMAR prior: air / water / bone classes of the LI image, metal region set to water.
    // Inside the trace the prior must match what was projected there (the rim fill).
    let prior: Vec<f32> = li_img
        .iter()
        .zip(trace_mask)
        .map(|(v, m)| if *m { fill } else { *v })
        .map(|v| {
            if v < -500.0 {
                0.0
            } else if v < 300.0 {
                1000.0
            } else {
                v + 1000.0
            }
        })
        .collect();
    let prior_sino = proj.forward(&prior);
    let eps = (1000.0 * proj.det_spacing) as f32;
    let mut norm: Vec<f32> = sino
        .iter()
        .zip(&prior_sino)
        .map(|(s, p)| s / (p + eps))
        .collect();
    inpaint_linear(&mut norm, &trace, proj.n_det);
    let nmar: Vec<f32> = norm
        .iter()
        .zip(&prior_sino)
        .map(|(n, p)| n * (p + eps))
        .collect();
    restore_metal(apply(&nmar))
}

/// A phantom slice stack with two metal rods, one inside bone, and its streaked version made
/// by the same parallel-beam model with a beam-hardening-like loss on the metal trace
/// (`p − β·p_metal²`). Returns (clean, streaked). Used by the tests and the benchmark.
pub fn streak_phantom(n: usize, slices: usize, beta: f32) -> (Volume<f32>, Volume<f32>) {
    let g = crate::volume::VolumeGeometry::axis_aligned([n, n, slices], [1.0; 3], [0.0; 3])
        .expect("positive spacing");
    let c = (n as f64 - 1.0) / 2.0;
    let r = n as f64 / 2.0;
    let clean = Volume::from_fn(g.clone(), |[i, j, _]| {
        let (x, y) = (i as f64 - c, j as f64 - c);
        let d = |px: f64, py: f64| ((x - px).powi(2) + (y - py).powi(2)).sqrt();
        if d(0.3 * r, 0.0) < 0.045 * r || d(-0.4 * r, 0.2 * r) < 0.04 * r {
            return 7000.0;
        }
        if d(0.3 * r, 0.0) < 0.2 * r {
            return 800.0;
        }
        if (x / (0.85 * r)).powi(2) + (y / (0.6 * r)).powi(2) < 1.0 {
            if d(-0.1 * r, -0.3 * r) < 0.12 * r {
                return 60.0;
            }
            return 40.0;
        }
        -1000.0
    });
    let plane = n * n;
    let proj = Projector::new(n, n, 1.0, 1.0, 0);
    let mut out = clean.data().to_vec();
    for k in 0..slices {
        let img = &clean.data()[k * plane..(k + 1) * plane];
        let metal: Vec<f32> = img
            .iter()
            .map(|v| if *v > 3000.0 { v + 1000.0 } else { 0.0 })
            .collect();
        let pm = proj.forward(&metal);
        let delta: Vec<f32> = pm.iter().map(|p| -beta * p * p).collect();
        let streaks = proj.fbp(&delta);
        for (o, s) in out[k * plane..(k + 1) * plane].iter_mut().zip(&streaks) {
            *o += s;
        }
    }
    let streaked = Volume::new(g, out).expect("same length");
    (clean, streaked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preprocess::metrics;

    #[test]
    fn fbp_inverts_forward_projection_of_a_disc() {
        let n = 64;
        let img: Vec<f32> = (0..n * n)
            .map(|p| {
                let (x, y) = ((p % n) as f64 - 31.5, (p / n) as f64 - 31.5);
                if x * x + y * y < 15.0f64.powi(2) {
                    100.0
                } else {
                    0.0
                }
            })
            .collect();
        let proj = Projector::new(n, n, 1.0, 1.0, 0);
        let back = proj.fbp(&proj.forward(&img));
        // Centre of the disc: FBP(R(f)) ≈ f within a few per cent.
        let centre = back[32 + n * 32];
        assert!((centre - 100.0).abs() < 5.0, "{centre}");
        assert!(back[2 + n * 2].abs() < 5.0, "outside {}", back[2 + n * 2]);
    }

    #[test]
    fn removes_synthetic_streaks_and_keeps_bone() {
        let (clean, streaked) = streak_phantom(128, 2, 1e-5);
        let metal = detect_metal(&streaked, 2500.0, 5);
        let truth_metal: Vec<bool> = clean.data().iter().map(|v| *v > 3000.0).collect();
        let missed = truth_metal
            .iter()
            .zip(&metal)
            .filter(|(t, m)| **t && !**m)
            .count();
        let extra = truth_metal
            .iter()
            .zip(&metal)
            .filter(|(t, m)| !**t && **m)
            .count();
        let total = truth_metal.iter().filter(|t| **t).count();
        assert!(
            // Dark streaks pull a few rim voxels under the threshold; the margin covers them.
            missed * 5 < total && extra * 10 < total,
            "metal: {missed} missed, {extra} extra of {total}"
        );
        let [nx, ny, nz] = clean.dims();
        let far = dilate_2d_stack(&metal, [nx, ny, nz], 5.0);
        let body_far: Vec<bool> = clean
            .data()
            .iter()
            .zip(&far)
            .map(|(v, f)| *v > -500.0 && !f)
            .collect();
        let bone_near: Vec<bool> = clean
            .data()
            .iter()
            .zip(dilate_2d_stack(&metal, [nx, ny, nz], 2.0))
            .map(|(v, f)| *v == 800.0 && !f)
            .collect();
        let before = metrics::rmse(&streaked, &clean, Some(&body_far));
        for method in [MarMethod::Linear, MarMethod::Normalized] {
            let params = MarParams {
                method,
                ..MarParams::default()
            };
            let out =
                reduce_metal_artefacts(&streaked, &params, &JobContext::detached()).expect("ok");
            let after = metrics::rmse(&out.corrected, &clean, Some(&body_far));
            let bone: Vec<f32> = out
                .corrected
                .data()
                .iter()
                .zip(&bone_near)
                .filter(|(_, m)| **m)
                .map(|(v, _)| *v)
                .collect();
            let bone_mean = bone.iter().sum::<f32>() / bone.len() as f32;
            eprintln!("{method:?}: RMSE away from metal {before:.1} -> {after:.1} HU, bone near implant {bone_mean:.0} HU (truth 800)");
            assert!(before > 30.0, "streaks too weak to test: {before}");
            // LI leaves secondary streaks where the trace crosses bone (its known weakness);
            // NMAR's prior removes most of them.
            let limit = if method == MarMethod::Linear {
                0.8
            } else {
                0.5
            };
            assert!(after < limit * before, "{method:?}: {before} -> {after}");
            assert!(
                (bone_mean - 800.0).abs() < 60.0,
                "{method:?}: bone {bone_mean}"
            );
            assert!(out
                .metal
                .iter()
                .zip(out.corrected.data())
                .zip(streaked.data())
                .all(|((m, a), b)| !*m || a == b));
        }
    }

    fn dilate_2d_stack(m: &[bool], dims: [usize; 3], r: f64) -> Vec<bool> {
        let plane = dims[0] * dims[1];
        m.chunks(plane)
            .flat_map(|s| dilate_2d(s, dims[0], dims[1], r, r))
            .collect()
    }
}
