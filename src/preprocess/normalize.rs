//! Intensity normalisation: CT clip/window in HU; MR z-score, percentile scaling and
//! Nyúl-style piecewise-linear histogram matching to a reference (cross-centre harmonisation).

use super::{invalid, PreprocessError};
use crate::volume::Volume;
use rayon::prelude::*;

/// Clips values to `[low, high]` (e.g. HU −1024..3071); units unchanged.
pub fn clip(vol: &Volume<f32>, low: f32, high: f32) -> Result<Volume<f32>, PreprocessError> {
    if !(low.is_finite() && high.is_finite() && low < high) {
        return Err(invalid(
            "clip",
            format!("[{low}, {high}] is not an interval"),
        ));
    }
    Ok(vol.map(|v| v.clamp(low, high)))
}

/// Maps a display window (centre, width in HU) linearly onto [0, 1], clipping outside.
pub fn window(vol: &Volume<f32>, center: f32, width: f32) -> Result<Volume<f32>, PreprocessError> {
    if !(center.is_finite() && width.is_finite() && width > 0.0) {
        return Err(invalid("window", format!("centre {center}, width {width}")));
    }
    let low = center - width / 2.0;
    Ok(vol.map(|v| ((v - low) / width).clamp(0.0, 1.0)))
}

/// Otsu's threshold over a 256-bin histogram of the finite values.
pub fn otsu_threshold(data: &[f32]) -> Option<f32> {
    let (lo, hi) = data
        .iter()
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    if !(lo < hi) {
        return None;
    }
    const BINS: usize = 256;
    let scale = (BINS as f32 - 1.0) / (hi - lo);
    let mut hist = [0u64; BINS];
    for v in data.iter().filter(|v| v.is_finite()) {
        hist[((v - lo) * scale) as usize] += 1;
    }
    let total: u64 = hist.iter().sum();
    let sum_all: f64 = hist
        .iter()
        .enumerate()
        .map(|(i, h)| i as f64 * *h as f64)
        .sum();
    let (mut w0, mut sum0, mut best, mut best_t) = (0.0f64, 0.0f64, -1.0f64, 0usize);
    for (t, h) in hist.iter().enumerate() {
        w0 += *h as f64;
        sum0 += t as f64 * *h as f64;
        let w1 = total as f64 - w0;
        if w0 == 0.0 || w1 == 0.0 {
            continue;
        }
        let (m0, m1) = (sum0 / w0, (sum_all - sum0) / w1);
        let between = w0 * w1 * (m0 - m1).powi(2);
        if between > best {
            best = between;
            best_t = t;
        }
    }
    Some(lo + (best_t as f32 + 1.0) / scale)
}

/// Foreground mask: values above Otsu's threshold (all finite voxels if there is none).
pub fn otsu_mask(vol: &Volume<f32>) -> Vec<bool> {
    match otsu_threshold(vol.data()) {
        Some(t) => vol.data().par_iter().map(|v| *v > t).collect(),
        None => vol.data().par_iter().map(|v| v.is_finite()).collect(),
    }
}

/// Values at `percents` (0..100) of the voxels in `mask`, by linear interpolation between
/// order statistics. Large images are subsampled to ~2 M values (deterministic stride).
pub fn percentiles(vol: &Volume<f32>, mask: Option<&[bool]>, percents: &[f64]) -> Option<Vec<f32>> {
    let n = vol.data().len();
    let count = mask.map_or(n, |m| m.iter().filter(|x| **x).count());
    let stride = (count / 2_000_000).max(1);
    let mut vals: Vec<f32> = vol
        .data()
        .iter()
        .enumerate()
        .filter(|(i, v)| v.is_finite() && mask.is_none_or(|m| m[*i]))
        .map(|(_, v)| *v)
        .step_by(stride)
        .collect();
    if vals.is_empty() {
        return None;
    }
    vals.par_sort_unstable_by(f32::total_cmp);
    let last = (vals.len() - 1) as f64;
    Some(
        percents
            .iter()
            .map(|p| {
                let x = (p.clamp(0.0, 100.0) / 100.0) * last;
                let (f, c) = (x.floor() as usize, x.ceil() as usize);
                let t = (x - f as f64) as f32;
                vals[f] * (1.0 - t) + vals[c] * t
            })
            .collect(),
    )
}

/// `(v − mean) / σ` with mean and σ from the voxels in `mask` (Otsu foreground by default).
pub fn z_score(vol: &Volume<f32>, mask: Option<&[bool]>) -> Result<Volume<f32>, PreprocessError> {
    let own;
    let mask = match mask {
        Some(m) => m,
        None => {
            own = otsu_mask(vol);
            &own
        }
    };
    let (s, s2, n) = vol
        .data()
        .par_iter()
        .zip(mask.par_iter())
        .filter(|(v, m)| **m && v.is_finite())
        .map(|(v, _)| (*v as f64, (*v as f64).powi(2), 1usize))
        .reduce(|| (0.0, 0.0, 0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2));
    if n < 2 {
        return Err(PreprocessError::EmptyImage { what: "z-score" });
    }
    let mean = s / n as f64;
    let sd = (s2 / n as f64 - mean * mean).max(0.0).sqrt();
    if sd <= 0.0 {
        return Err(PreprocessError::EmptyImage {
            what: "z-score (constant image)",
        });
    }
    let (mean, sd) = (mean as f32, sd as f32);
    Ok(vol.map(|v| (v - mean) / sd))
}

/// Maps the `low`..`high` percentiles (e.g. 0.5, 99.5) of the mask onto 0..1, clipping
/// when `clip_output`.
pub fn percentile_scale(
    vol: &Volume<f32>,
    mask: Option<&[bool]>,
    low: f64,
    high: f64,
    clip_output: bool,
) -> Result<Volume<f32>, PreprocessError> {
    if !(0.0..100.0).contains(&low) || !(low < high && high <= 100.0) {
        return Err(invalid(
            "percentiles",
            format!("{low}..{high} is not within 0..100"),
        ));
    }
    let p = percentiles(vol, mask, &[low, high]).ok_or(PreprocessError::EmptyImage {
        what: "percentile scaling",
    })?;
    let (a, b) = (p[0], p[1]);
    if !(b > a) {
        return Err(PreprocessError::EmptyImage {
            what: "percentile scaling (flat histogram)",
        });
    }
    Ok(vol.map(|v| {
        let x = (v - a) / (b - a);
        if clip_output {
            x.clamp(0.0, 1.0)
        } else {
            x
        }
    }))
}

/// Nyúl–Udupa landmarks: the 1st, 10th, 20th … 90th and 99th percentiles of the foreground.
pub const NYUL_PERCENTS: [f64; 11] = [
    1.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 99.0,
];

/// Landmarks of `vol`'s foreground (Otsu mask unless `mask` is given).
pub fn histogram_landmarks(
    vol: &Volume<f32>,
    mask: Option<&[bool]>,
) -> Result<Vec<f32>, PreprocessError> {
    let own;
    let mask = match mask {
        Some(m) => m,
        None => {
            own = otsu_mask(vol);
            &own
        }
    };
    let l = percentiles(vol, Some(mask), &NYUL_PERCENTS).ok_or(PreprocessError::EmptyImage {
        what: "histogram matching",
    })?;
    if l.windows(2).any(|w| !(w[1] > w[0])) {
        return Err(PreprocessError::EmptyImage {
            what: "histogram matching (landmarks not increasing: too few grey levels)",
        });
    }
    Ok(l)
}

/// Piecewise-linear map taking `vol`'s landmarks onto `reference_landmarks`, extended
/// linearly beyond the first and last landmark (Nyúl & Udupa 1999).
pub fn match_histogram(
    vol: &Volume<f32>,
    mask: Option<&[bool]>,
    reference_landmarks: &[f32],
) -> Result<Volume<f32>, PreprocessError> {
    let src = histogram_landmarks(vol, mask)?;
    if reference_landmarks.len() != src.len()
        || reference_landmarks.windows(2).any(|w| !(w[1] > w[0]))
    {
        return Err(invalid("reference landmarks", "need 11 increasing values"));
    }
    let dst = reference_landmarks.to_vec();
    Ok(vol.map(move |v| piecewise_linear(&src, &dst, v)))
}

fn piecewise_linear(src: &[f32], dst: &[f32], v: f32) -> f32 {
    let n = src.len();
    let seg = match src.iter().position(|s| v < *s) {
        Some(0) => 0,
        Some(p) => p - 1,
        None => n - 2,
    };
    let (x0, x1, y0, y1) = (src[seg], src[seg + 1], dst[seg], dst[seg + 1]);
    y0 + (v - x0) * (y1 - y0) / (x1 - x0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::VolumeGeometry;

    fn ramp() -> Volume<f32> {
        let g = VolumeGeometry::axis_aligned([20, 10, 5], [1.0; 3], [0.0; 3]).expect("g");
        Volume::from_fn(g, |[i, j, k]| (i + 20 * j + 200 * k) as f32)
    }

    #[test]
    fn window_and_clip() {
        let v = ramp();
        let w = window(&v, 100.0, 50.0).expect("ok");
        assert_eq!(w.at(0, 0, 0), 0.0);
        assert_eq!(w.at(0, 5, 0), 0.5); // value 100 at the centre
        assert_eq!(w.at(0, 9, 4), 1.0);
        let c = clip(&v, 10.0, 30.0).expect("ok");
        assert_eq!(
            (c.at(0, 0, 0), c.at(15, 0, 0), c.at(0, 9, 0)),
            (10.0, 15.0, 30.0)
        );
        assert!(clip(&v, 3.0, 3.0).is_err());
    }

    #[test]
    fn z_score_gives_zero_mean_unit_sd() {
        let v = ramp();
        let all = vec![true; v.data().len()];
        let z = z_score(&v, Some(&all)).expect("ok");
        let n = z.data().len() as f64;
        let mean = z.data().iter().map(|x| *x as f64).sum::<f64>() / n;
        let var = z
            .data()
            .iter()
            .map(|x| (*x as f64 - mean).powi(2))
            .sum::<f64>()
            / n;
        assert!(
            mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4,
            "{mean} {var}"
        );
    }

    #[test]
    fn percentile_scale_maps_range() {
        let v = ramp(); // values 0..999 uniformly
        let s = percentile_scale(&v, None, 0.0, 100.0, true).expect("ok");
        assert_eq!(s.at(0, 0, 0), 0.0);
        assert_eq!(s.at(19, 9, 4), 1.0);
        assert!((s.at(0, 5, 2) - 500.0 / 999.0).abs() < 1e-5);
    }

    #[test]
    fn otsu_splits_two_classes() {
        let g = VolumeGeometry::axis_aligned([10, 10, 2], [1.0; 3], [0.0; 3]).expect("g");
        let v = Volume::from_fn(g, |[i, j, _]| {
            if i < 5 {
                10.0 + (j % 3) as f32
            } else {
                200.0 + j as f32
            }
        });
        let t = otsu_threshold(v.data()).expect("two classes");
        assert!(t > 12.0 && t < 200.0, "{t}");
    }

    #[test]
    fn histogram_matching_undoes_a_monotone_remap() {
        let v = ramp().map(|x| 50.0 + x);
        let all = vec![true; v.data().len()];
        let reference = histogram_landmarks(&v, Some(&all)).expect("landmarks");
        // A different scanner: gain, offset and a gamma.
        let other = v.map(|x| 3.0 * (x / 1050.0).powf(1.4) * 1000.0 + 200.0);
        let back = match_histogram(&other, Some(&all), &reference).expect("ok");
        let err = crate::preprocess::metrics::rmse(&back, &v, None);
        let before = crate::preprocess::metrics::rmse(&other, &v, None);
        assert!(
            err < 0.01 * before && err < 5.0,
            "rmse {err} (before {before})"
        );
    }
}
