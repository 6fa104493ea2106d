//! Quality assurance: TRE against a known truth, Dice of corresponding labels, a checkerboard
//! for the eye, and a per-region confidence map.

use super::metric::normalized_mutual_information;
use super::pyramid::smooth_and_shrink;
use super::sampling::volume_quantiles;
use super::Registration;
use crate::volume::{Volume, VolumeGeometry};
use nalgebra::{Point3, Vector3};
use rayon::prelude::*;

/// Target registration error statistics (mm).
#[derive(Debug, Clone, serde::Serialize)]
pub struct TreSummary {
    pub points: usize,
    pub mean_mm: f64,
    pub rms_mm: f64,
    /// 95th percentile.
    pub p95_mm: f64,
    pub max_mm: f64,
}

/// Distances between where the estimate and the truth send each fixed point.
pub fn target_registration_error(
    points: &[Point3<f64>],
    estimate: impl Fn(&Point3<f64>) -> Point3<f64> + Sync,
    truth: impl Fn(&Point3<f64>) -> Point3<f64> + Sync,
) -> TreSummary {
    let mut d: Vec<f64> = points
        .par_iter()
        .map(|p| (estimate(p) - truth(p)).norm())
        .collect();
    d.sort_unstable_by(f64::total_cmp);
    let n = d.len().max(1) as f64;
    let p95_mm = d
        .get(((d.len() as f64 - 1.0) * 0.95).round().max(0.0) as usize)
        .copied()
        .unwrap_or(0.0);
    TreSummary {
        points: d.len(),
        mean_mm: d.iter().sum::<f64>() / n,
        rms_mm: (d.iter().map(|x| x * x).sum::<f64>() / n).sqrt(),
        p95_mm,
        max_mm: d.iter().copied().fold(0.0, f64::max),
    }
}

/// TRE of the least-squares affine fit of `truth` over `points`: no linear transform can do
/// better on these points, so it is the floor for a linear stage and tells how much of a true
/// mapping only a deformable stage can recover. `None` with fewer than four points or when
/// they are coplanar.
pub fn affine_fit_floor(
    points: &[Point3<f64>],
    truth: impl Fn(&Point3<f64>) -> Point3<f64> + Sync,
) -> Option<TreSummary> {
    if points.len() < 4 {
        return None;
    }
    let mut xtx = nalgebra::Matrix4::<f64>::zeros();
    let mut xty = nalgebra::Matrix4x3::<f64>::zeros();
    for p in points {
        let x = nalgebra::Vector4::new(p.x, p.y, p.z, 1.0);
        let y = truth(p);
        xtx += x * x.transpose();
        xty += x * nalgebra::RowVector3::new(y.x, y.y, y.z);
    }
    let coefficients = xtx.lu().solve(&xty)?;
    let m = coefficients.transpose();
    let fit = |p: &Point3<f64>| Point3::from(m * nalgebra::Vector4::new(p.x, p.y, p.z, 1.0));
    Some(target_registration_error(points, fit, truth))
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct LabelDice {
    pub label: u16,
    pub dice: f64,
    pub fixed_voxels: usize,
    pub moving_voxels: usize,
}

/// Dice per non-zero label present in either volume (same grid required; `None` otherwise).
pub fn dice_per_label(
    fixed: &Volume<u16>,
    moving_on_fixed: &Volume<u16>,
) -> Option<Vec<LabelDice>> {
    if fixed.dims() != moving_on_fixed.dims() {
        return None;
    }
    let max = fixed
        .data()
        .iter()
        .chain(moving_on_fixed.data())
        .copied()
        .max()
        .unwrap_or(0) as usize;
    let mut a = vec![0usize; max + 1];
    let mut b = vec![0usize; max + 1];
    let mut both = vec![0usize; max + 1];
    for (x, y) in fixed.data().iter().zip(moving_on_fixed.data()) {
        a[*x as usize] += 1;
        b[*y as usize] += 1;
        if x == y {
            both[*x as usize] += 1;
        }
    }
    Some(
        (1..=max)
            .filter(|&l| a[l] + b[l] > 0)
            .map(|l| LabelDice {
                label: l as u16,
                dice: 2.0 * both[l] as f64 / (a[l] + b[l]) as f64,
                fixed_voxels: a[l],
                moving_voxels: b[l],
            })
            .collect(),
    )
}

/// An 8-bit grey image, row-major, `width × height`.
#[derive(Debug, Clone)]
pub struct GreyImage {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

/// Alternating squares of the fixed and the resampled moving image on the axial (`k`) slice
/// `k`, each windowed to the 2–98 % range of its own foreground, `squares` squares across.
pub fn checkerboard_axial(
    fixed: &Volume<f32>,
    moving_on_fixed: &Volume<f32>,
    k: usize,
    squares: usize,
) -> GreyImage {
    let [nx, ny, nz] = fixed.dims();
    let k = k.min(nz - 1);
    // Window each image on its own foreground (above Otsu), so CT air and MR background do
    // not wash out the tissue the eye must follow across square borders.
    let window = |v: &Volume<f32>| {
        let t = super::init::otsu_threshold(v);
        let n = v.data().len();
        let stride = (n / 200_000).max(1);
        super::sampling::quantiles(
            v.data().iter().step_by(stride).copied().filter(|x| *x > t),
            0.02,
            0.98,
        )
    };
    let (flo, fhi) = window(fixed);
    let (mlo, mhi) = window(moving_on_fixed);
    let side = (nx.max(ny) / squares.max(1)).max(1);
    let mut pixels = Vec::with_capacity(nx * ny);
    // Row 0 at the top is anterior when j runs posterior; keep voxel order (radiological
    // conventions belong to the viewer).
    for j in 0..ny {
        for i in 0..nx {
            let use_fixed = ((i / side) + (j / side)) % 2 == 0;
            let (v, lo, hi) = if use_fixed {
                (fixed.at(i, j, k) as f64, flo, fhi)
            } else {
                (moving_on_fixed.at(i, j, k) as f64, mlo, mhi)
            };
            let t = ((v - lo) / (hi - lo).max(1e-9)).clamp(0.0, 1.0);
            pixels.push((t * 255.0).round() as u8);
        }
    }
    GreyImage {
        width: nx,
        height: ny,
        pixels,
    }
}

/// One block of the confidence map.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RegionConfidence {
    pub centre_mm: [f64; 3],
    /// Local normalised MI at the result (1 = unrelated, 2 = identical up to relabelling).
    pub nmi: f64,
    /// Share of the probe shifts (±`probe_mm` along each world axis) that lower the local
    /// NMI: 1 means the result sits on a local peak in every direction.
    pub confidence: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ConfidenceSummary {
    pub block_mm: f64,
    pub probe_mm: f64,
    pub regions: usize,
    /// Regions whose local NMI peaks at the result in all six probe directions.
    pub confident_fraction: f64,
    pub mean_confidence: f64,
    pub mean_nmi: f64,
    /// Up to ten least confident regions, for the user to inspect.
    pub weakest: Vec<RegionConfidence>,
}

/// Confidence per block, plus a coarse volume of the per-block confidence on the fixed frame.
pub struct ConfidenceMap {
    pub regions: Vec<RegionConfidence>,
    pub summary: ConfidenceSummary,
    pub volume: Volume<f32>,
}

/// Local NMI of the fixed image against the registered moving image in blocks of `block_mm`,
/// probed by shifting the moving image ±`probe_mm` along each world axis. A region whose
/// alignment is right sees its NMI drop for every shift; a region where the images disagree,
/// or that holds no structure, does not. Computed on a 2 mm grid.
pub fn confidence_map(
    fixed: &Volume<f32>,
    moving: &Volume<f32>,
    registration: &Registration,
    block_mm: f64,
    probe_mm: f64,
) -> ConfidenceMap {
    let grid_mm = 2.0f64.max(
        fixed
            .geometry()
            .spacing_mm
            .iter()
            .copied()
            .fold(0.0, f64::max),
    );
    let f = smooth_and_shrink(fixed, grid_mm);
    let g = f.geometry().clone();
    let shifts: Vec<Vector3<f64>> = std::iter::once(Vector3::zeros())
        .chain((0..3).flat_map(|a| {
            [-1.0, 1.0].map(|s| {
                let mut v = Vector3::zeros();
                v[a] = s * probe_mm;
                v
            })
        }))
        .collect();
    let w = g.world_from_voxel();
    let warped: Vec<Vec<f32>> = shifts
        .iter()
        .map(|shift| {
            Volume::from_fn(g.clone(), |[i, j, k]| {
                let x = w.transform_point(&Point3::new(i as f64, j as f64, k as f64)) + shift;
                let y = registration.transform_point(&x);
                let p = moving.geometry().voxel_from_world_point(y);
                moving.sample_trilinear(p).unwrap_or(f32::NAN)
            })
            .into_data()
        })
        .collect();
    let frange = volume_quantiles(&f, 0.01, 0.99);
    let mrange = super::sampling::quantiles(warped[0].iter().copied(), 0.01, 0.99);
    let frange = (frange.0 as f32, frange.1 as f32);
    let mrange = (mrange.0 as f32, mrange.1 as f32);
    let threshold = super::init::otsu_threshold(&f);
    let per_block = [0, 1, 2].map(|a| ((block_mm / g.spacing_mm[a]).round() as usize).max(2));
    let nblocks = [0, 1, 2].map(|a| g.dims[a].div_ceil(per_block[a]));
    let blocks: Vec<[usize; 3]> = (0..nblocks[2])
        .flat_map(|k| (0..nblocks[1]).flat_map(move |j| (0..nblocks[0]).map(move |i| [i, j, k])))
        .collect();
    let results: Vec<Option<RegionConfidence>> = blocks
        .par_iter()
        .map(|b| {
            let lo = [0, 1, 2].map(|a| b[a] * per_block[a]);
            let hi = [0, 1, 2].map(|a| ((b[a] + 1) * per_block[a]).min(g.dims[a]));
            let mut idx = Vec::new();
            let mut foreground = 0usize;
            for k in lo[2]..hi[2] {
                for j in lo[1]..hi[1] {
                    for i in lo[0]..hi[0] {
                        let n = g.linear_index(i, j, k);
                        if warped.iter().all(|m| m[n].is_finite()) {
                            idx.push(n);
                            if f.data()[n] > threshold {
                                foreground += 1;
                            }
                        }
                    }
                }
            }
            let full = (hi[0] - lo[0]) * (hi[1] - lo[1]) * (hi[2] - lo[2]);
            // Mostly background or mostly outside the moving image: nothing to judge.
            if idx.len() < full / 2 || foreground < full / 5 {
                return None;
            }
            let fv: Vec<f32> = idx.iter().map(|&n| f.data()[n]).collect();
            let nmi_of = |m: &Vec<f32>| {
                let mv: Vec<f32> = idx.iter().map(|&n| m[n]).collect();
                normalized_mutual_information(&fv, &mv, frange, mrange, 16)
            };
            let at_result = nmi_of(&warped[0]);
            let lower = warped[1..].iter().filter(|m| nmi_of(m) < at_result).count();
            let centre = w.transform_point(&Point3::new(
                (lo[0] + hi[0]) as f64 / 2.0 - 0.5,
                (lo[1] + hi[1]) as f64 / 2.0 - 0.5,
                (lo[2] + hi[2]) as f64 / 2.0 - 0.5,
            ));
            Some(RegionConfidence {
                centre_mm: [centre.x, centre.y, centre.z],
                nmi: at_result,
                confidence: lower as f64 / (warped.len() - 1) as f64,
            })
        })
        .collect();
    let block_geometry = VolumeGeometry::new(
        nblocks,
        [0, 1, 2].map(|a| g.spacing_mm[a] * per_block[a] as f64),
        {
            let p = w.transform_point(&Point3::new(
                (per_block[0] as f64 - 1.0) / 2.0,
                (per_block[1] as f64 - 1.0) / 2.0,
                (per_block[2] as f64 - 1.0) / 2.0,
            ));
            [p.x, p.y, p.z]
        },
        g.direction,
    )
    .unwrap_or_else(|_| g.clone());
    let volume_data: Vec<f32> = results
        .iter()
        .map(|r| r.as_ref().map_or(-1.0, |r| r.confidence as f32))
        .collect();
    let volume = Volume::new(block_geometry.clone(), volume_data)
        .unwrap_or_else(|_| Volume::filled(block_geometry, -1.0));
    let regions: Vec<RegionConfidence> = results.into_iter().flatten().collect();
    let n = regions.len().max(1) as f64;
    let mut weakest = regions.clone();
    weakest.sort_by(|a, b| a.confidence.total_cmp(&b.confidence));
    weakest.truncate(10);
    let summary = ConfidenceSummary {
        block_mm,
        probe_mm,
        regions: regions.len(),
        confident_fraction: regions.iter().filter(|r| r.confidence >= 0.999).count() as f64 / n,
        mean_confidence: regions.iter().map(|r| r.confidence).sum::<f64>() / n,
        mean_nmi: regions.iter().map(|r| r.nmi).sum::<f64>() / n,
        weakest,
    };
    ConfidenceMap {
        regions,
        summary,
        volume,
    }
}
