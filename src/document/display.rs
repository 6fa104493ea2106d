//! How a volume's intensities map to grey: window/level and its presets.

use crate::volume::Volume;

/// Linear grey ramp: values below `center - width/2` are black, above `center + width/2` white.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowLevel {
    pub center: f32,
    pub width: f32,
}

impl WindowLevel {
    pub const fn new(center: f32, width: f32) -> Self {
        Self { center, width }
    }

    /// Grey level in [0, 1]; `None` for NaN (no data there).
    pub fn grey(&self, value: f32) -> Option<f32> {
        if value.is_nan() {
            return None;
        }
        let low = self.center - self.width / 2.0;
        Some(((value - low) / self.width.max(f32::EPSILON)).clamp(0.0, 1.0))
    }

    /// Smallest allowed width: keeps the ramp invertible.
    pub const MIN_WIDTH: f32 = 1e-3;
}

/// A named window for the preset buttons.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowPreset {
    pub name: &'static str,
    pub window: WindowLevel,
}

/// Standard CT windows (centre/width in HU).
pub const CT_PRESETS: [WindowPreset; 4] = [
    WindowPreset {
        name: "Brain",
        window: WindowLevel::new(40.0, 80.0),
    },
    WindowPreset {
        name: "Soft tissue",
        window: WindowLevel::new(40.0, 400.0),
    },
    WindowPreset {
        name: "Bone",
        window: WindowLevel::new(400.0, 1800.0),
    },
    WindowPreset {
        name: "Lung",
        window: WindowLevel::new(-600.0, 1500.0),
    },
];

/// The CT window a volume opens with.
pub const CT_DEFAULT: WindowLevel = CT_PRESETS[1].window;

/// Percentile-based window for images without physical units (MR): from the 1st to the
/// 99.5th percentile of all voxels, so a few very bright voxels (vessels, fat) do not wash the
/// picture out and the air around the head stays black.
pub fn auto_window(volume: &Volume<f32>) -> WindowLevel {
    // A strided subsample is plenty for two percentiles and keeps this a few milliseconds.
    let data = volume.data();
    let stride = (data.len() / 2_000_000).max(1);
    let mut values: Vec<f32> = data
        .iter()
        .step_by(stride)
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    if values.is_empty() {
        return WindowLevel::new(0.0, 1.0);
    }
    let low = percentile(&mut values, 0.01);
    let high = percentile(&mut values, 0.995);
    let width = (high - low).max(WindowLevel::MIN_WIDTH);
    WindowLevel::new((low + high) / 2.0, width)
}

fn percentile(values: &mut [f32], q: f64) -> f32 {
    let idx = ((values.len() - 1) as f64 * q).round() as usize;
    let (_, v, _) = values.select_nth_unstable_by(idx, |a, b| a.total_cmp(b));
    *v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::VolumeGeometry;

    #[test]
    fn grey_ramp_clamps_and_maps_the_centre_to_mid_grey() {
        let wl = WindowLevel::new(40.0, 80.0);
        assert_eq!(wl.grey(0.0), Some(0.0));
        assert_eq!(wl.grey(40.0), Some(0.5));
        assert_eq!(wl.grey(80.0), Some(1.0));
        assert_eq!(wl.grey(-1000.0), Some(0.0));
        assert_eq!(wl.grey(f32::NAN), None);
    }

    #[test]
    fn auto_window_spans_the_foreground_and_ignores_outliers() {
        // 1000 voxels: half background 0, half uniform 100..=199, and one hot voxel at 10 000.
        let geometry =
            VolumeGeometry::axis_aligned([10, 10, 10], [1.0; 3], [0.0; 3]).expect("valid");
        let volume = Volume::from_fn(geometry, |[i, j, k]| {
            let n = i + 10 * (j + 10 * k);
            if n == 999 {
                10_000.0
            } else if n < 500 {
                0.0
            } else {
                100.0 + (n % 100) as f32
            }
        });
        let wl = auto_window(&volume);
        let (low, high) = (wl.center - wl.width / 2.0, wl.center + wl.width / 2.0);
        assert_eq!(low, 0.0);
        assert!((195.0..=199.0).contains(&high), "high {high}");
    }
}
