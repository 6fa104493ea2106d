//! Tiling a box into overlapping patches, and the Gaussian weights that blend them
//! (nnU-Net's recipe: σ = patch / 8, so patch borders, where context is poor, count less).

/// Start offsets along one axis of length `len` for patches of `patch` voxels overlapping by
/// `overlap` (0..1). The last patch ends exactly at `len`; a short axis gets one patch at 0
/// (the caller pads it).
pub fn patch_starts(len: usize, patch: usize, overlap: f64) -> Vec<usize> {
    if patch == 0 || len <= patch {
        return vec![0];
    }
    let step = ((patch as f64 * (1.0 - overlap)).floor() as usize).max(1);
    let span = len - patch;
    let count = span.div_ceil(step) + 1;
    // Spread the patches evenly so the last one ends at `len` (as nnU-Net does).
    (0..count)
        .map(|n| {
            if count == 1 {
                0
            } else {
                ((n as f64 * span as f64 / (count - 1) as f64).round()) as usize
            }
        })
        .collect()
}

/// Weights over a `[d, h, w]` patch (w fastest), peak 1 in the centre, never zero.
pub fn gaussian_weights(size: [usize; 3]) -> Vec<f32> {
    let axis = |n: usize| -> Vec<f64> {
        let sigma = (n as f64 / 8.0).max(1e-6);
        let centre = (n as f64 - 1.0) / 2.0;
        (0..n)
            .map(|x| (-(x as f64 - centre).powi(2) / (2.0 * sigma * sigma)).exp())
            .collect()
    };
    let (a, b, c) = (axis(size[0]), axis(size[1]), axis(size[2]));
    let mut out = Vec::with_capacity(size.iter().product());
    for &wa in &a {
        for &wb in &b {
            for &wc in &c {
                // A floor keeps border voxels that only one patch covers well-defined.
                out.push(((wa * wb * wc) as f32).max(1e-3));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_cover_the_axis_and_end_at_its_end() {
        assert_eq!(patch_starts(100, 128, 0.5), vec![0]);
        assert_eq!(patch_starts(128, 128, 0.5), vec![0]);
        let s = patch_starts(300, 128, 0.5);
        assert_eq!(s.first(), Some(&0));
        assert_eq!(s.last(), Some(&(300 - 128)));
        assert!(
            s.windows(2).all(|w| w[1] > w[0] && w[1] - w[0] <= 64),
            "{s:?}"
        );
        assert_eq!(patch_starts(10, 5, 0.0), vec![0, 5]);
    }

    #[test]
    fn gaussian_peaks_in_the_centre() {
        let w = gaussian_weights([5, 5, 5]);
        let at = |d: usize, h: usize, x: usize| w[(d * 5 + h) * 5 + x];
        assert!((at(2, 2, 2) - 1.0).abs() < 1e-6);
        assert!(at(0, 0, 0) < at(1, 1, 1) && at(1, 1, 1) < at(2, 2, 2));
        assert!(w.iter().all(|v| *v > 0.0));
        assert!((at(0, 2, 2) - at(4, 2, 2)).abs() < 1e-6, "symmetric");
    }
}
