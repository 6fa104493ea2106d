//! Fixed-image sample sets: random points (jittered off the voxel centres, so trilinear
//! interpolation artefacts do not line up with the grid) inside the fixed image and mask.

use super::metric::{BinMapping, PAD_BINS};
use crate::volume::Volume;
use nalgebra::{Point3, Vector3};

/// SplitMix64: tiny, seedable, good enough to scatter sample points reproducibly.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(1e-300);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// A binary mask on its own grid; a world point is inside when its nearest voxel is non-zero.
#[derive(Debug, Clone)]
pub struct Mask<'a>(pub &'a Volume<u8>);

impl Mask<'_> {
    pub fn contains(&self, p: &Point3<f64>) -> bool {
        let v = self.0.geometry().voxel_from_world_point(*p);
        crate::volume::resample::nearest_at(self.0, v).is_some_and(|x| x != 0)
    }
    pub fn is_empty(&self) -> bool {
        self.0.data().iter().all(|v| *v == 0)
    }
}

/// Fixed samples for one pyramid level.
#[derive(Default)]
pub struct SampleSet {
    /// World position minus the transform centre.
    pub rel_mm: Vec<Vector3<f64>>,
    pub values: Vec<f32>,
    pub bins: Vec<u16>,
}

/// Draws up to `count` points inside `fixed` (and `mask`), reading values from the fixed
/// image at this level.
pub fn draw_samples(
    fixed: &Volume<f32>,
    mask: Option<&Mask>,
    count: usize,
    centre_mm: &Vector3<f64>,
    seed: u64,
) -> SampleSet {
    let g = fixed.geometry();
    let w = g.world_from_voxel();
    let d = g.dims.map(|n| n as f64);
    let mut rng = Rng::new(seed);
    let candidate = |rng: &mut Rng| -> Option<([f64; 3], Point3<f64>)> {
        let p = [0, 1, 2].map(|a| rng.unit() * (d[a] - 1.0).max(0.0));
        let world = w.transform_point(&Point3::from(p));
        if let Some(m) = mask {
            if !m.contains(&world) {
                return None;
            }
        }
        Some((p, world))
    };
    // Half the samples are uniform (they shape the histogram); half come from where the
    // fixed image has structure (top fifth of gradient magnitude), where the metric's
    // gradient lives: this cuts the sampling noise of the optimum several-fold.
    let gradient_at = |p: &[f64; 3]| -> f64 {
        let mut g2 = 0.0;
        for a in 0..3 {
            let (mut lo, mut hi) = (*p, *p);
            lo[a] -= 1.0;
            hi[a] += 1.0;
            if let (Some(x), Some(y)) = (fixed.sample_trilinear(lo), fixed.sample_trilinear(hi)) {
                let dv = (y - x) as f64 / (2.0 * g.spacing_mm[a]);
                g2 += dv * dv;
            }
        }
        g2
    };
    let mut probe: Vec<f64> = Vec::new();
    for _ in 0..20_000 {
        if probe.len() >= 4000 {
            break;
        }
        if let Some((p, _)) = candidate(&mut rng) {
            probe.push(gradient_at(&p));
        }
    }
    probe.sort_by(f64::total_cmp);
    let edge_threshold = probe
        .get((probe.len() as f64 * 0.8) as usize)
        .copied()
        .filter(|t| *t > 0.0);
    let mut rel_mm = Vec::with_capacity(count);
    let mut values = Vec::with_capacity(count);
    let mut keys: Vec<u64> = Vec::with_capacity(count);
    let max_tries = count.saturating_mul(50).max(1000);
    let mut tries = 0;
    while rel_mm.len() < count && tries < max_tries {
        tries += 1;
        let Some((p, world)) = candidate(&mut rng) else {
            continue;
        };
        if let Some(t) = edge_threshold {
            if rel_mm.len() % 2 == 1 && gradient_at(&p) < t {
                continue;
            }
        }
        if let Some(v) = fixed.sample_trilinear(p) {
            rel_mm.push(world.coords - centre_mm);
            values.push(v);
            keys.push(morton(p));
        }
    }
    // Samples in Morton order of their fixed position: neighbours in the list then read
    // neighbouring moving voxels, so the moving image's lookups mostly hit the cache (at fine
    // levels it is far larger than the cache, and random order made most reads miss).
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_unstable_by_key(|&n| keys[n]);
    SampleSet {
        rel_mm: order.iter().map(|&n| rel_mm[n]).collect(),
        values: order.iter().map(|&n| values[n]).collect(),
        bins: Vec::new(),
    }
}

/// The object in `fixed` (above its Otsu threshold), grown by `margin_voxels` so its outer
/// edge stays inside: where a deformable stage's samples carry information. Far outside the
/// object every sample reads air in both images and only dilutes the histogram.
pub fn foreground_mask(fixed: &Volume<f32>, margin_voxels: usize) -> Volume<u8> {
    let t = super::init::otsu_threshold(fixed);
    let [nx, ny, nz] = fixed.dims();
    let mut mask: Vec<u8> = fixed.data().iter().map(|v| u8::from(*v > t)).collect();
    // Separable max filter (a box dilation), one axis at a time.
    let strides = [1, nx, nx * ny];
    let dims = [nx, ny, nz];
    for axis in 0..3 {
        let src = mask.clone();
        let (n, stride) = (dims[axis], strides[axis]);
        for (idx, out) in mask.iter_mut().enumerate() {
            if *out != 0 {
                continue;
            }
            let pos = (idx / stride) % n;
            let lo = pos.saturating_sub(margin_voxels);
            let hi = (pos + margin_voxels).min(n - 1);
            let base = idx - pos * stride;
            if (lo..=hi).any(|q| src[base + q * stride] != 0) {
                *out = 1;
            }
        }
    }
    Volume::new(fixed.geometry().clone(), mask)
        .unwrap_or_else(|_| Volume::filled(fixed.geometry().clone(), 1))
}

/// Morton (Z-order) code of a voxel position, 21 bits per axis.
fn morton(p: [f64; 3]) -> u64 {
    let spread = |v: f64| -> u64 {
        let mut x = (v.max(0.0) as u64) & 0x1f_ffff;
        x = (x | x << 32) & 0x1f_0000_0000_ffff;
        x = (x | x << 16) & 0x1f_0000_ff00_00ff;
        x = (x | x << 8) & 0x100f_00f0_0f00_f00f;
        x = (x | x << 4) & 0x10c3_0c30_c30c_30c3;
        x = (x | x << 2) & 0x1249_2492_4924_9249;
        x
    };
    spread(p[0]) | spread(p[1]) << 1 | spread(p[2]) << 2
}

impl SampleSet {
    pub fn assign_bins(&mut self, b: &BinMapping) {
        self.bins = self
            .values
            .iter()
            .map(|v| b.fixed_bin(*v as f64) as u16)
            .collect();
    }
    /// Fixed bins that each hold about the same number of samples (ties never split), in
    /// the usable range of `b`. Equal-width bins over a CT's −1000…+1200 HU put brain, CSF,
    /// soft tissue and lesions (0–70 HU) into one or two bins, so the structures inside the
    /// skull, where a deformation must be read, are invisible to the metric; ranks give them
    /// bins of their own. Fixed bins are a plain lookup in Mattes MI (no derivative), so any
    /// monotone mapping is valid.
    pub fn assign_bins_by_rank(&mut self, b: &BinMapping) {
        let usable = b.bins.saturating_sub(2 * PAD_BINS + 1) + 1;
        let mut sorted: Vec<f32> = self
            .values
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .collect();
        sorted.sort_by(f32::total_cmp);
        let n = sorted.len();
        // `edges[k]`: the smallest value of bin `k + 1`.
        let mut edges: Vec<f32> = Vec::with_capacity(usable);
        let mut start = 0;
        let mut bins_left = usable;
        while bins_left > 1 && start < n {
            let mut end = start + ((n - start) / bins_left).max(1);
            if end >= n {
                break;
            }
            let last = sorted[end - 1];
            while end < n && sorted[end] == last {
                end += 1;
            }
            if end >= n {
                break;
            }
            edges.push(sorted[end]);
            start = end;
            bins_left -= 1;
        }
        self.bins = self
            .values
            .iter()
            .map(|v| (edges.partition_point(|e| e <= v) + PAD_BINS) as u16)
            .collect();
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// The `lo` and `hi` quantiles (0..1) of `values`, ignoring non-finite ones.
pub fn quantiles(values: impl Iterator<Item = f32>, lo: f64, hi: f64) -> (f64, f64) {
    let mut v: Vec<f32> = values.filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (0.0, 1.0);
    }
    v.sort_by(f32::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize] as f64;
    let (a, b) = (at(lo), at(hi));
    if b > a {
        (a, b)
    } else {
        (a, a + 1.0)
    }
}

/// Quantiles of a volume from a strided subset of at most ~200k voxels.
pub fn volume_quantiles(v: &Volume<f32>, lo: f64, hi: f64) -> (f64, f64) {
    let n = v.data().len();
    let stride = (n / 200_000).max(1);
    quantiles(v.data().iter().step_by(stride).copied(), lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::VolumeGeometry;

    #[test]
    fn foreground_mask_covers_the_object_and_its_margin_only() {
        let g = VolumeGeometry::axis_aligned([20, 20, 20], [1.0; 3], [0.0; 3]).expect("valid");
        // A bright 4³ cube at voxels 8..12 on a dark background.
        let inside = |i: usize| (8..12).contains(&i);
        let v = Volume::from_fn(g, |[i, j, k]| {
            if inside(i) && inside(j) && inside(k) {
                100.0
            } else {
                0.0
            }
        });
        let m = foreground_mask(&v, 2);
        let at = |i, j, k| m.data()[m.geometry().linear_index(i, j, k)];
        assert_eq!(at(10, 10, 10), 1, "object");
        assert_eq!(at(6, 10, 10), 1, "two voxels out along i");
        assert_eq!(at(6, 6, 6), 1, "the box dilation reaches the corner");
        assert_eq!(at(5, 10, 10), 0, "three voxels out");
        assert_eq!(at(0, 0, 0), 0, "far background");
        let count = m.data().iter().filter(|x| **x != 0).count();
        assert_eq!(count, 8 * 8 * 8);
    }
}
