//! Similarity metrics over paired samples, each returning its value and `∂value/∂m_s`, the
//! derivative with respect to every moving sample's intensity. The transform-specific chain
//! rule (`∂m_s/∂μ = ∇M · ∂T/∂μ`) is applied by the caller, so one metric serves rigid, affine
//! and B-spline transforms alike. All metrics are "larger is better".

use rayon::prelude::*;

/// Which similarity measure drives the optimisation.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Metric {
    /// Mattes mutual information: box Parzen window for the fixed image, cubic B-spline for the
    /// moving one (analytic derivative). For CT↔MR.
    MattesMutualInformation { bins: usize },
    /// Normalised cross-correlation, same modality.
    NormalizedCrossCorrelation,
    /// Negated mean squared difference, same modality and intensity scale.
    MeanSquares,
}

impl Default for Metric {
    fn default() -> Self {
        Metric::MattesMutualInformation { bins: 32 }
    }
}

/// Where fixed and moving intensities fall in the joint histogram.
#[derive(Debug, Clone, Copy)]
pub struct BinMapping {
    pub bins: usize,
    pub fixed_min: f64,
    pub fixed_bin_width: f64,
    pub moving_min: f64,
    pub moving_bin_width: f64,
}

/// Two bins of padding each side keep the cubic window inside the histogram.
const PAD: f64 = 2.0;
pub(crate) const PAD_BINS: usize = 2;

impl BinMapping {
    pub fn new(bins: usize, fixed_range: (f64, f64), moving_range: (f64, f64)) -> Self {
        let bins = bins.max(8);
        let usable = (bins as f64) - 2.0 * PAD - 1.0;
        let width = |(lo, hi): (f64, f64)| ((hi - lo) / usable).max(1e-12);
        Self {
            bins,
            fixed_min: fixed_range.0,
            fixed_bin_width: width(fixed_range),
            moving_min: moving_range.0,
            moving_bin_width: width(moving_range),
        }
    }

    #[inline]
    pub fn fixed_bin(&self, f: f64) -> usize {
        let usable = self.bins as f64 - 2.0 * PAD - 1.0;
        let pos = ((f - self.fixed_min) / self.fixed_bin_width).clamp(0.0, usable);
        (pos + PAD).floor() as usize
    }

    /// Continuous moving bin position, and whether it was clamped (no gradient then).
    #[inline]
    pub fn moving_pos(&self, m: f64) -> (f64, bool) {
        let usable = self.bins as f64 - 2.0 * PAD - 1.0;
        let raw = (m - self.moving_min) / self.moving_bin_width;
        let pos = raw.clamp(0.0, usable);
        (pos + PAD, pos != raw)
    }
}

#[cfg(test)]
fn bspline3(t: f64) -> f64 {
    let a = t.abs();
    if a < 1.0 {
        (4.0 - 6.0 * a * a + 3.0 * a * a * a) / 6.0
    } else if a < 2.0 {
        let b = 2.0 - a;
        b * b * b / 6.0
    } else {
        0.0
    }
}

#[inline]
fn bspline3_derivative(t: f64) -> f64 {
    let a = t.abs();
    if a < 1.0 {
        -2.0 * t + 1.5 * t * a
    } else if a < 2.0 {
        let b = 2.0 - a;
        -0.5 * b * b * t.signum()
    } else {
        0.0
    }
}

const CHUNK: usize = 4096;

/// `β³(j − pos)` for the four bins `j = floor(pos) − 1 ..= floor(pos) + 2`, `f = pos − floor(pos)`.
#[inline]
fn cubic_weights(f: f64) -> [f64; 4] {
    let f2 = f * f;
    let f3 = f2 * f;
    let g = 1.0 - f;
    [
        g * g * g / 6.0,
        (3.0 * f3 - 6.0 * f2 + 4.0) / 6.0,
        (-3.0 * f3 + 3.0 * f2 + 3.0 * f + 1.0) / 6.0,
        f3 / 6.0,
    ]
}

/// A metric's value and per-sample derivative factors (zero for invalid samples).
pub struct MetricEval {
    pub value: f64,
    pub d_value_d_moving: Vec<f64>,
    pub valid: usize,
}

/// Evaluates `metric` on samples; `moving[s] = None` marks a sample mapped outside the image.
pub fn evaluate(
    metric: Metric,
    bins: Option<&BinMapping>,
    fixed: &[f32],
    fixed_bin: &[u16],
    moving: &[Option<f64>],
    want_derivative: bool,
) -> MetricEval {
    match metric {
        Metric::MattesMutualInformation { .. } => match bins {
            Some(b) => mattes(b, fixed_bin, moving, want_derivative),
            None => MetricEval {
                value: 0.0,
                d_value_d_moving: vec![0.0; moving.len()],
                valid: 0,
            },
        },
        Metric::NormalizedCrossCorrelation => ncc(fixed, moving),
        Metric::MeanSquares => mean_squares(fixed, moving),
    }
}

fn mattes(b: &BinMapping, fixed_bin: &[u16], moving: &[Option<f64>], want: bool) -> MetricEval {
    let nb = b.bins;
    // Fixed-size chunks bound the number of per-task histograms rayon allocates.
    let hist = moving
        .par_chunks(CHUNK)
        .zip(fixed_bin.par_chunks(CHUNK))
        .map(|(ms, fbs)| {
            let mut h = vec![0f64; nb * nb];
            let mut n = 0usize;
            for (m, &fb) in ms.iter().zip(fbs) {
                if let Some(m) = m {
                    let (pos, _) = b.moving_pos(*m);
                    let j0 = pos.floor() as usize - 1;
                    let row = fb as usize * nb + j0;
                    let f = pos - pos.floor();
                    // Cubic B-spline weights of bins j0..j0+3 at fractional offset f.
                    let w = cubic_weights(f);
                    for (o, wj) in w.iter().enumerate() {
                        h[row + o] += wj;
                    }
                    n += 1;
                }
            }
            (h, n)
        })
        .reduce(
            || (vec![0f64; nb * nb], 0usize),
            |(mut a, na), (bb, nbb)| {
                for (x, y) in a.iter_mut().zip(&bb) {
                    *x += y;
                }
                (a, na + nbb)
            },
        );
    let (joint, valid) = hist;
    if valid == 0 {
        return MetricEval {
            value: 0.0,
            d_value_d_moving: vec![0.0; moving.len()],
            valid: 0,
        };
    }
    let total: f64 = joint.iter().sum();
    let norm = 1.0 / total.max(1e-300);
    let mut pf = vec![0f64; nb];
    let mut pm = vec![0f64; nb];
    for i in 0..nb {
        for j in 0..nb {
            let p = joint[i * nb + j] * norm;
            pf[i] += p;
            pm[j] += p;
        }
    }
    let mut mi = 0.0;
    // log(p(i,j) / pm(j)) is the weight of each bin in the derivative.
    let mut weight = vec![0f64; nb * nb];
    for i in 0..nb {
        for j in 0..nb {
            let p = joint[i * nb + j] * norm;
            if p > 1e-16 && pf[i] > 0.0 && pm[j] > 0.0 {
                mi += p * (p / (pf[i] * pm[j])).ln();
                weight[i * nb + j] = (p / pm[j]).ln();
            }
        }
    }
    let d = if want {
        let scale = -norm / b.moving_bin_width;
        moving
            .par_iter()
            .with_min_len(CHUNK)
            .zip(fixed_bin.par_iter())
            .map(|(m, &fb)| {
                let Some(m) = m else { return 0.0 };
                let (pos, clamped) = b.moving_pos(*m);
                if clamped {
                    return 0.0;
                }
                let j0 = pos.floor() as usize - 1;
                let row = fb as usize * nb;
                let mut s = 0.0;
                for j in j0..j0 + 4 {
                    s += weight[row + j] * bspline3_derivative(j as f64 - pos);
                }
                s * scale
            })
            .collect()
    } else {
        Vec::new()
    };
    MetricEval {
        value: mi,
        d_value_d_moving: d,
        valid,
    }
}

fn ncc(fixed: &[f32], moving: &[Option<f64>]) -> MetricEval {
    let (n, sf, sm) = fixed
        .iter()
        .zip(moving)
        .filter_map(|(f, m)| m.map(|m| (*f as f64, m)))
        .fold((0usize, 0.0, 0.0), |(n, a, b), (f, m)| {
            (n + 1, a + f, b + m)
        });
    if n < 2 {
        return MetricEval {
            value: 0.0,
            d_value_d_moving: vec![0.0; moving.len()],
            valid: n,
        };
    }
    let (mf, mm) = (sf / n as f64, sm / n as f64);
    let (mut sff, mut smm, mut sfm) = (0.0, 0.0, 0.0);
    for (f, m) in fixed.iter().zip(moving) {
        if let Some(m) = m {
            let (a, b) = (*f as f64 - mf, m - mm);
            sff += a * a;
            smm += b * b;
            sfm += a * b;
        }
    }
    let denom = (sff * smm).sqrt().max(1e-300);
    let value = sfm / denom;
    let d = fixed
        .iter()
        .zip(moving)
        .map(|(f, m)| match m {
            Some(m) => (*f as f64 - mf) / denom - value * (m - mm) / smm.max(1e-300),
            None => 0.0,
        })
        .collect();
    MetricEval {
        value,
        d_value_d_moving: d,
        valid: n,
    }
}

fn mean_squares(fixed: &[f32], moving: &[Option<f64>]) -> MetricEval {
    let n = moving.iter().filter(|m| m.is_some()).count();
    if n == 0 {
        return MetricEval {
            value: 0.0,
            d_value_d_moving: vec![0.0; moving.len()],
            valid: 0,
        };
    }
    let mut sum = 0.0;
    let d = fixed
        .iter()
        .zip(moving)
        .map(|(f, m)| match m {
            Some(m) => {
                let r = m - *f as f64;
                sum += r * r;
                -2.0 * r / n as f64
            }
            None => 0.0,
        })
        .collect();
    MetricEval {
        value: -sum / n as f64,
        d_value_d_moving: d,
        valid: n,
    }
}

/// Normalised mutual information `(H(F) + H(M)) / H(F, M)` of two sample sets on a plain
/// `bins`² histogram (1 = independent, 2 = identical up to a relabelling). Used for the
/// per-region confidence map, where an unbiased, bounded score matters more than gradients.
pub fn normalized_mutual_information(
    fixed: &[f32],
    moving: &[f32],
    fixed_range: (f32, f32),
    moving_range: (f32, f32),
    bins: usize,
) -> f64 {
    let mut h = vec![0f64; bins * bins];
    let bin = |v: f32, (lo, hi): (f32, f32)| {
        let t = ((v - lo) / (hi - lo).max(1e-12)).clamp(0.0, 0.999_999);
        (t * bins as f32) as usize
    };
    for (f, m) in fixed.iter().zip(moving) {
        h[bin(*f, fixed_range) * bins + bin(*m, moving_range)] += 1.0;
    }
    let n: f64 = h.iter().sum();
    if n == 0.0 {
        return 1.0;
    }
    let entropy = |p: &mut dyn Iterator<Item = f64>| -> f64 {
        p.filter(|p| *p > 0.0).map(|p| -p * p.ln()).sum::<f64>()
    };
    let hj = entropy(&mut h.iter().map(|c| c / n));
    let hf = entropy(&mut (0..bins).map(|i| h[i * bins..(i + 1) * bins].iter().sum::<f64>() / n));
    let hm = entropy(&mut (0..bins).map(|j| (0..bins).map(|i| h[i * bins + j]).sum::<f64>() / n));
    if hj <= 1e-12 {
        return 1.0;
    }
    (hf + hm) / hj
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(n: usize) -> (Vec<f32>, Vec<f64>) {
        // A nonlinear, non-monotone relation between the two "modalities".
        let f: Vec<f32> = (0..n).map(|i| ((i * 37) % 101) as f32).collect();
        let m: Vec<f64> = f
            .iter()
            .map(|&v| 500.0 - (v as f64 - 50.0).powi(2) * 0.1 + (v as f64 * 0.3).sin())
            .collect();
        (f, m)
    }

    #[test]
    fn bspline_partition_of_unity() {
        for t in [0.0, 0.25, 0.5, 0.99] {
            let s: f64 = (-2..=2).map(|j| bspline3(j as f64 - t)).sum();
            assert!((s - 1.0).abs() < 1e-12);
            let d: f64 = (-2..=2).map(|j| bspline3_derivative(j as f64 - t)).sum();
            assert!(d.abs() < 1e-12);
        }
    }

    #[test]
    fn mattes_derivative_matches_finite_differences() {
        let (f, m) = samples(400);
        let b = BinMapping::new(16, (0.0, 100.0), (200.0, 510.0));
        let fb: Vec<u16> = f.iter().map(|v| b.fixed_bin(*v as f64) as u16).collect();
        let mo: Vec<Option<f64>> = m.iter().map(|v| Some(*v)).collect();
        let e = mattes(&b, &fb, &mo, true);
        assert!(
            e.value > 0.5,
            "related samples share information: {}",
            e.value
        );
        for s in [3usize, 50, 123, 399] {
            let h = 1e-3;
            let mut plus = mo.clone();
            plus[s] = Some(m[s] + h);
            let mut minus = mo.clone();
            minus[s] = Some(m[s] - h);
            let fd = (mattes(&b, &fb, &plus, false).value - mattes(&b, &fb, &minus, false).value)
                / (2.0 * h);
            let an = e.d_value_d_moving[s];
            assert!(
                (fd - an).abs() < 1e-4 * (1.0 + fd.abs()) + 1e-7,
                "sample {s}: fd {fd} vs analytic {an}"
            );
        }
    }

    #[test]
    fn mi_of_unrelated_samples_is_small() {
        let (f, _) = samples(2000);
        let b = BinMapping::new(16, (0.0, 100.0), (0.0, 1.0));
        let fb: Vec<u16> = f.iter().map(|v| b.fixed_bin(*v as f64) as u16).collect();
        let constant: Vec<Option<f64>> = vec![Some(0.5); f.len()];
        assert!(mattes(&b, &fb, &constant, false).value.abs() < 1e-9);
    }

    #[test]
    fn ncc_and_mean_squares_derivatives() {
        let (f, m) = samples(200);
        let mo: Vec<Option<f64>> = m.iter().map(|v| Some(*v)).collect();
        for metric in [Metric::NormalizedCrossCorrelation, Metric::MeanSquares] {
            let e = evaluate(metric, None, &f, &[], &mo, true);
            let s = 17;
            let h = 1e-4;
            let mut plus = mo.clone();
            plus[s] = Some(m[s] + h);
            let mut minus = mo.clone();
            minus[s] = Some(m[s] - h);
            let fd = (evaluate(metric, None, &f, &[], &plus, false).value
                - evaluate(metric, None, &f, &[], &minus, false).value)
                / (2.0 * h);
            assert!((fd - e.d_value_d_moving[s]).abs() < 1e-6 * (1.0 + fd.abs()));
        }
        let same: Vec<Option<f64>> = f.iter().map(|v| Some(*v as f64 * 2.0 + 3.0)).collect();
        let e = evaluate(
            Metric::NormalizedCrossCorrelation,
            None,
            &f,
            &[],
            &same,
            false,
        );
        assert!((e.value - 1.0).abs() < 1e-9);
    }

    #[test]
    fn nmi_ranges_from_one_to_two() {
        let (f, m) = samples(5000);
        let m32: Vec<f32> = m.iter().map(|v| *v as f32).collect();
        let nmi = normalized_mutual_information(&f, &f, (0.0, 100.0), (0.0, 100.0), 16);
        assert!((nmi - 2.0).abs() < 1e-9);
        let related = normalized_mutual_information(&f, &m32, (0.0, 100.0), (200.0, 510.0), 16);
        assert!(related > 1.2 && related <= 2.0 + 1e-9);
    }
}
