//! Synthetic images with known answers, for tests and `fuseprint bench preprocess`: a CT-like
//! torso phantom in HU, reproducible Gaussian noise, and a smooth multiplicative bias field.

use crate::volume::{Volume, VolumeGeometry};
use rayon::prelude::*;

/// A clean phantom and where its body is.
#[derive(Debug, Clone)]
pub struct CtPhantom {
    pub clean: Volume<f32>,
    /// Voxels inside the body outline (skin inwards).
    pub body: Vec<bool>,
}

/// Piecewise-constant torso: air −1000, fat −100 shell, soft tissue 40, liver-like 60,
/// kidney-like 150 spheres, lungs −800, a vertebra (cancellous 300, cortex 1000).
/// `dims` voxels at `spacing_mm`, centred on the origin.
pub fn ct_torso(dims: [usize; 3], spacing_mm: [f64; 3]) -> CtPhantom {
    let origin = [0, 1, 2].map(|a| -(dims[a] as f64 - 1.0) / 2.0 * spacing_mm[a]);
    let g = match VolumeGeometry::axis_aligned(dims, spacing_mm, origin) {
        Ok(g) => g,
        Err(_) => {
            return CtPhantom {
                clean: Volume::new(
                    VolumeGeometry::axis_aligned([1, 1, 1], [1.0; 3], [0.0; 3]).expect("unit grid"),
                    vec![-1000.0],
                )
                .expect("one voxel"),
                body: vec![false],
            }
        }
    };
    let half = [0, 1, 2].map(|a| dims[a] as f64 * spacing_mm[a] / 2.0);
    let (ax, ay) = (0.85 * half[0], 0.7 * half[1]);
    let gg = g.clone();
    let pos = move |[i, j, k]: [usize; 3]| {
        let w = gg.world_from_voxel_point([i as f64, j as f64, k as f64]);
        (w.x, w.y, w.z)
    };
    let body_at = |x: f64, y: f64| (x / ax).powi(2) + (y / ay).powi(2) <= 1.0;
    let clean = Volume::from_fn(g.clone(), |ijk| {
        let (x, y, z) = pos(ijk);
        let e = (x / ax).powi(2) + (y / ay).powi(2);
        if e > 1.0 {
            return -1000.0;
        }
        if (x / (ax - 12.0)).powi(2) + (y / (ay - 12.0)).powi(2) > 1.0 {
            return -100.0;
        }
        // Vertebra: posterior, cortex ring around cancellous bone.
        let (vx, vy) = (x, y - 0.45 * ay);
        let rv = (vx * vx + vy * vy).sqrt();
        if rv < 0.16 * ay {
            return if rv > 0.16 * ay - 3.0 { 1000.0 } else { 300.0 };
        }
        // Lungs in the upper half of the slab.
        let zf = z / half[2];
        if zf > -0.1 {
            for side in [-1.0, 1.0] {
                let (lx, ly) = (x - side * 0.45 * ax, y + 0.05 * ay);
                if (lx / (0.3 * ax)).powi(2) + (ly / (0.5 * ay)).powi(2) < 1.0 {
                    return -800.0;
                }
            }
        } else {
            let (lx, ly) = (x + 0.3 * ax, y + 0.1 * ay);
            if (lx / (0.35 * ax)).powi(2) + (ly / (0.4 * ay)).powi(2) + (zf + 0.6).powi(2) / 0.2
                < 1.0
            {
                return 60.0;
            }
            for side in [-1.0, 1.0] {
                let (kx, ky, kz) = (x - side * 0.4 * ax, y - 0.25 * ay, z + 0.5 * half[2]);
                if (kx * kx + ky * ky + kz * kz).sqrt() < 0.12 * ax {
                    return 150.0;
                }
            }
        }
        40.0
    });
    let body = (0..g.voxel_count())
        .into_par_iter()
        .map(|n| {
            let (x, y, _) = pos(g.index3(n));
            body_at(x, y)
        })
        .collect();
    CtPhantom { clean, body }
}

/// splitmix64: a tiny, good-enough hash-RNG so each voxel's noise depends only on
/// (seed, index) — reproducible and parallel.
fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Standard normal sample number `n` of stream `seed` (Box–Muller).
pub fn normal(seed: u64, n: u64) -> f32 {
    let a = splitmix(seed ^ splitmix(2 * n));
    let b = splitmix(seed ^ splitmix(2 * n + 1));
    let u1 = ((a >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let u2 = ((b >> 11) as f64) / (1u64 << 53) as f64;
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// `vol` plus i.i.d. Gaussian noise of σ `sigma`.
pub fn add_gaussian_noise(vol: &Volume<f32>, sigma: f32, seed: u64) -> Volume<f32> {
    let data: Vec<f32> = vol
        .data()
        .par_iter()
        .enumerate()
        .map(|(n, v)| v + sigma * normal(seed, n as u64))
        .collect();
    Volume::new(vol.geometry().clone(), data).expect("same length")
}

/// A smooth multiplicative field `exp(a·x/L + b·(y/L)² − b·(z/L)²)`, normalised to geometric
/// mean 1 over the grid; `strength` sets `a` and `b`. Positions in mm from the grid centre.
pub fn smooth_bias_field(g: &VolumeGeometry, strength: f64) -> Volume<f32> {
    let c = g.center_world();
    let ext = g.extent_mm();
    let l = ext.iter().cloned().fold(1.0, f64::max) / 2.0;
    let gg = g.clone();
    let log_field = Volume::from_fn(g.clone(), move |[i, j, k]| {
        let w = gg.world_from_voxel_point([i as f64, j as f64, k as f64]) - c;
        (strength * (w.x / l)
            + 0.7 * strength * ((w.y / l).powi(2) - (w.z / l).powi(2))
            + 0.4 * strength * (w.x * w.y / (l * l))) as f32
    });
    let mean = log_field.data().iter().map(|v| *v as f64).sum::<f64>() / g.voxel_count() as f64;
    log_field.map(|v| (v - mean as f32).exp())
}
