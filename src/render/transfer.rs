//! Transfer functions: control points (value → colour and opacity) that an editor can move,
//! baked into a table the raycaster looks up.
//!
//! Opacity is **per millimetre** of ray travelled, so a picture does not change when the
//! step size does (the raycaster corrects each sample for its step).

/// What a control point's `value` means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueDomain {
    /// The image's own units (Hounsfield units on CT).
    Absolute,
    /// A fraction of the volume's value range, 0 = its minimum, 1 = its maximum. MR has no
    /// absolute scale, so the MR presets are written this way.
    Relative,
}

/// One editable point: at `value`, colour `rgb` (0..1) and `opacity_per_mm` (0..1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ControlPoint {
    pub value: f32,
    pub rgb: [f32; 3],
    pub opacity_per_mm: f32,
}

impl ControlPoint {
    pub const fn new(value: f32, rgb: [f32; 3], opacity_per_mm: f32) -> Self {
        Self {
            value,
            rgb,
            opacity_per_mm,
        }
    }
}

/// Piecewise-linear colour and opacity over the value axis; constant beyond the end points.
#[derive(Debug, Clone, PartialEq)]
pub struct TransferFunction {
    pub name: String,
    pub domain: ValueDomain,
    /// Sorted by value (kept so by [`Self::new`] and [`Self::set_points`]).
    points: Vec<ControlPoint>,
}

/// Why a transfer function was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TransferError {
    #[error("a transfer function needs at least one control point")]
    NoPoints,
    #[error("control point {index} is not finite or out of range (colour and opacity are 0..1)")]
    BadPoint { index: usize },
    #[error("unknown transfer function preset {0:?} (known: ct-bone, ct-soft, ct-angio, mr-t1, mr-angio)")]
    UnknownPreset(String),
}

/// Entries in a baked table: 4 HU apart over a 4096 HU CT range.
pub const BAKED_SIZE: usize = 1024;

impl TransferFunction {
    /// Names accepted by [`Self::preset`] and by `fuseprint render --preset`.
    pub const PRESET_NAMES: [&'static str; 5] =
        ["ct-bone", "ct-soft", "ct-angio", "mr-t1", "mr-angio"];

    pub fn new(
        name: impl Into<String>,
        domain: ValueDomain,
        points: Vec<ControlPoint>,
    ) -> Result<Self, TransferError> {
        let mut tf = Self {
            name: name.into(),
            domain,
            points: Vec::new(),
        };
        tf.set_points(points)?;
        Ok(tf)
    }

    pub fn points(&self) -> &[ControlPoint] {
        &self.points
    }

    /// Replaces the control points (sorted by value); refuses NaN or out-of-range entries.
    pub fn set_points(&mut self, mut points: Vec<ControlPoint>) -> Result<(), TransferError> {
        if points.is_empty() {
            return Err(TransferError::NoPoints);
        }
        for (index, p) in points.iter().enumerate() {
            let unit = |x: f32| x.is_finite() && (0.0..=1.0).contains(&x);
            if !p.value.is_finite() || !p.rgb.iter().all(|c| unit(*c)) || !unit(p.opacity_per_mm) {
                return Err(TransferError::BadPoint { index });
            }
        }
        points.sort_by(|a, b| a.value.total_cmp(&b.value));
        self.points = points;
        Ok(())
    }

    /// A named preset (see [`Self::PRESET_NAMES`]).
    pub fn preset(name: &str) -> Result<Self, TransferError> {
        use ValueDomain::{Absolute, Relative};
        let p = ControlPoint::new;
        let (domain, points) = match name {
            // Bone from ~200 HU, soft tissue and contrast below stay clear.
            "ct-bone" => (
                Absolute,
                vec![
                    p(150.0, [0.55, 0.25, 0.15], 0.0),
                    p(250.0, [0.9, 0.72, 0.55], 0.15),
                    p(600.0, [1.0, 0.95, 0.85], 0.6),
                    p(2000.0, [1.0, 1.0, 1.0], 0.9),
                ],
            ),
            // Fat faint, muscle and organs reddish, bone white.
            "ct-soft" => (
                Absolute,
                vec![
                    p(-300.0, [0.6, 0.35, 0.25], 0.0),
                    p(-100.0, [0.9, 0.75, 0.45], 0.01),
                    p(20.0, [0.75, 0.3, 0.25], 0.04),
                    p(120.0, [0.9, 0.45, 0.35], 0.08),
                    p(300.0, [1.0, 0.9, 0.8], 0.3),
                    p(1500.0, [1.0, 1.0, 1.0], 0.6),
                ],
            ),
            // Contrast-filled vessels (~200-500 HU) red, dense bone pale.
            "ct-angio" => (
                Absolute,
                vec![
                    p(120.0, [0.7, 0.1, 0.1], 0.0),
                    p(200.0, [0.85, 0.15, 0.12], 0.1),
                    p(350.0, [1.0, 0.35, 0.25], 0.5),
                    p(700.0, [1.0, 0.9, 0.8], 0.6),
                    p(2000.0, [1.0, 1.0, 1.0], 0.8),
                ],
            ),
            "mr-t1" => (
                Relative,
                vec![
                    p(0.08, [0.3, 0.25, 0.2], 0.0),
                    p(0.25, [0.8, 0.7, 0.6], 0.03),
                    p(0.6, [1.0, 0.95, 0.9], 0.12),
                    p(1.0, [1.0, 1.0, 1.0], 0.3),
                ],
            ),
            // Time-of-flight: only the brightest (flowing blood) shows.
            "mr-angio" => (
                Relative,
                vec![
                    p(0.3, [0.8, 0.2, 0.1], 0.0),
                    p(0.5, [1.0, 0.45, 0.3], 0.25),
                    p(1.0, [1.0, 1.0, 0.9], 0.8),
                ],
            ),
            other => return Err(TransferError::UnknownPreset(other.to_string())),
        };
        Self::new(name, domain, points)
    }

    /// Colour and opacity per mm at `value` (in this function's domain).
    pub fn sample(&self, value: f32) -> [f32; 4] {
        let pts = &self.points;
        let rgba = |p: &ControlPoint| [p.rgb[0], p.rgb[1], p.rgb[2], p.opacity_per_mm];
        let first = &pts[0];
        let last = &pts[pts.len() - 1];
        if value <= first.value {
            return rgba(first);
        }
        if value >= last.value {
            return rgba(last);
        }
        let hi = pts.partition_point(|p| p.value <= value);
        let (a, b) = (&pts[hi - 1], &pts[hi]);
        let span = b.value - a.value;
        let f = if span > 0.0 {
            (value - a.value) / span
        } else {
            1.0
        };
        let (ca, cb) = (rgba(a), rgba(b));
        std::array::from_fn(|i| ca[i] + (cb[i] - ca[i]) * f)
    }

    /// `BAKED_SIZE` entries evenly covering a volume whose stored 0..1 maps to
    /// `range = (min, max)` in image units.
    pub fn bake(&self, range: (f32, f32)) -> Vec<[f32; 4]> {
        let (lo, hi) = range;
        (0..BAKED_SIZE)
            .map(|i| {
                let fraction = i as f32 / (BAKED_SIZE - 1) as f32;
                let value = match self.domain {
                    ValueDomain::Absolute => lo + (hi - lo) * fraction,
                    ValueDomain::Relative => fraction,
                };
                self.sample(value)
            })
            .collect()
    }
}

/// Buckets per axis of the [`max_opacity_table`].
pub const OPACITY_BUCKETS: usize = 64;

/// `table[j * B + i]` is the largest opacity the baked function reaches for any stored value
/// between bucket `i`'s start and bucket `j`'s end (0 when `j < i`). Empty-space skipping
/// looks a brick's (min, max) up here: 0 means nothing in the brick can be seen.
pub fn max_opacity_table(baked: &[[f32; 4]]) -> Vec<f32> {
    let b = OPACITY_BUCKETS;
    let n = baked.len().max(1);
    let entry = |bucket_edge: usize| bucket_edge * (n - 1) / b;
    // Max opacity inside each bucket, widened by one entry each side: the shader interpolates
    // between neighbouring entries.
    let per_bucket: Vec<f32> = (0..b)
        .map(|i| {
            let lo = entry(i).saturating_sub(1);
            let hi = (entry(i + 1) + 1).min(n - 1);
            baked
                .get(lo..=hi)
                .unwrap_or(&[])
                .iter()
                .map(|c| c[3])
                .fold(0.0, f32::max)
        })
        .collect();
    let mut table = vec![0.0; b * b];
    for i in 0..b {
        let mut running = 0.0f32;
        for j in i..b {
            running = running.max(per_bucket[j]);
            table[j * b + i] = running;
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_name_builds_and_unknown_names_are_refused() {
        for name in TransferFunction::PRESET_NAMES {
            let tf = TransferFunction::preset(name).unwrap();
            assert_eq!(tf.name, name);
            assert!(tf.points().windows(2).all(|w| w[0].value <= w[1].value));
        }
        assert!(matches!(
            TransferFunction::preset("ct-lung"),
            Err(TransferError::UnknownPreset(_))
        ));
    }

    #[test]
    fn sampling_interpolates_between_points_and_clamps_outside() {
        let tf = TransferFunction::new(
            "t",
            ValueDomain::Absolute,
            vec![
                ControlPoint::new(100.0, [1.0, 0.0, 0.0], 0.5),
                ControlPoint::new(0.0, [0.0, 0.0, 1.0], 0.0),
            ],
        )
        .unwrap();
        assert_eq!(tf.sample(-50.0), [0.0, 0.0, 1.0, 0.0]);
        assert_eq!(tf.sample(500.0), [1.0, 0.0, 0.0, 0.5]);
        let mid = tf.sample(25.0);
        assert!((mid[0] - 0.25).abs() < 1e-6 && (mid[2] - 0.75).abs() < 1e-6);
        assert!((mid[3] - 0.125).abs() < 1e-6);
    }

    #[test]
    fn bad_points_are_refused() {
        let nan = ControlPoint::new(f32::NAN, [0.0; 3], 0.0);
        let bright = ControlPoint::new(0.0, [2.0, 0.0, 0.0], 0.0);
        for (points, err) in [
            (vec![], TransferError::NoPoints),
            (vec![nan], TransferError::BadPoint { index: 0 }),
            (
                vec![ControlPoint::new(1.0, [0.0; 3], 0.1), bright],
                TransferError::BadPoint { index: 1 },
            ),
        ] {
            assert_eq!(
                TransferFunction::new("x", ValueDomain::Absolute, points),
                Err(err)
            );
        }
    }

    #[test]
    fn baking_maps_the_volume_range_and_relative_functions_ignore_it() {
        let bone = TransferFunction::preset("ct-bone").unwrap();
        let baked = bone.bake((-1000.0, 3000.0));
        assert_eq!(baked.len(), BAKED_SIZE);
        // Entry for ~600 HU equals sampling at the entry's exact value.
        let i = 400;
        let value = -1000.0 + 4000.0 * i as f32 / (BAKED_SIZE - 1) as f32;
        let direct = bone.sample(value);
        assert!(
            (0..4).all(|c| (baked[i][c] - direct[c]).abs() < 1e-5),
            "{:?} vs {direct:?}",
            baked[i]
        );
        let t1 = TransferFunction::preset("mr-t1").unwrap();
        assert_eq!(t1.bake((0.0, 10.0)), t1.bake((-5.0, 9000.0)));
    }

    #[test]
    fn opacity_table_is_zero_exactly_where_nothing_is_visible() {
        let bone = TransferFunction::preset("ct-bone").unwrap();
        let range = (-1000.0f32, 3000.0f32);
        let baked = bone.bake(range);
        let table = max_opacity_table(&baked);
        let b = OPACITY_BUCKETS;
        let bucket = |hu: f32| (((hu - range.0) / (range.1 - range.0)) * b as f32) as usize;
        // Air to fat: invisible under the bone preset.
        assert_eq!(table[bucket(-200.0) * b + bucket(-1000.0)], 0.0);
        // Any range reaching bone is visible, and a wider range never less so.
        let narrow = table[bucket(700.0) * b + bucket(500.0)];
        let wide = table[bucket(700.0) * b + bucket(-1000.0)];
        assert!(narrow > 0.5 && wide >= narrow);
        // Brute force agrees for every pair: no visible value hides behind a zero.
        for i in 0..b {
            for j in i..b {
                let lo = i * (BAKED_SIZE - 1) / b;
                let hi = ((j + 1) * (BAKED_SIZE - 1) / b).min(BAKED_SIZE - 1);
                let truth = baked[lo..=hi].iter().map(|c| c[3]).fold(0.0, f32::max);
                assert!(table[j * b + i] >= truth, "({i}, {j})");
            }
        }
    }
}
