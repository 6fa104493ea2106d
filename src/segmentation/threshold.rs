//! Intensity thresholds and the CT presets clinicians reach for.

use super::Mask;
use crate::volume::Volume;
use rayon::prelude::*;

/// A named Hounsfield range. Ranges follow common CT practice (Mimics/Slicer-style defaults);
/// they are starting points the user adjusts, not diagnoses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThresholdPreset {
    /// Cancellous and cortical bone together.
    Bone,
    /// Dense cortical bone only.
    CorticalBone,
    /// Vascular and soft-tissue calcifications.
    Calcification,
    /// Muscle, organs, fat excluded.
    SoftTissue,
    /// Aerated lung parenchyma (airways included).
    Lung,
    /// Contrast-enhanced vessels (CT angiography).
    ContrastVessels,
}

impl ThresholdPreset {
    pub const ALL: [ThresholdPreset; 6] = [
        ThresholdPreset::Bone,
        ThresholdPreset::CorticalBone,
        ThresholdPreset::Calcification,
        ThresholdPreset::SoftTissue,
        ThresholdPreset::Lung,
        ThresholdPreset::ContrastVessels,
    ];

    /// `(low, high)` in HU, both inclusive.
    pub fn range_hu(self) -> (f32, f32) {
        match self {
            ThresholdPreset::Bone => (226.0, 3071.0),
            ThresholdPreset::CorticalBone => (662.0, 1988.0),
            ThresholdPreset::Calcification => (100.0, 3000.0),
            ThresholdPreset::SoftTissue => (-100.0, 200.0),
            ThresholdPreset::Lung => (-1000.0, -400.0),
            ThresholdPreset::ContrastVessels => (150.0, 600.0),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ThresholdPreset::Bone => "bone",
            ThresholdPreset::CorticalBone => "cortical-bone",
            ThresholdPreset::Calcification => "calcification",
            ThresholdPreset::SoftTissue => "soft-tissue",
            ThresholdPreset::Lung => "lung",
            ThresholdPreset::ContrastVessels => "contrast-vessels",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// Voxels with `low <= value <= high` (NaN is outside).
pub fn threshold(image: &Volume<f32>, low: f32, high: f32) -> Mask {
    let data = image
        .data()
        .par_iter()
        .map(|&v| u8::from(v >= low && v <= high))
        .collect();
    Volume::new(image.geometry().clone(), data).expect("same grid as the image")
}

pub fn threshold_preset(image: &Volume<f32>, preset: ThresholdPreset) -> Mask {
    let (low, high) = preset.range_hu();
    threshold(image, low, high)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segmentation::phantoms::{grid, sphere};
    use crate::segmentation::volume_ml;

    #[test]
    fn bone_preset_recovers_a_bone_sphere() {
        let g = grid([40, 40, 40], [1.0; 3]);
        let ball = sphere(&g, [20.0, 20.0, 20.0], 12.0);
        let ct = ball.map(|b| if b != 0 { 900.0 } else { 40.0 });
        let mask = threshold_preset(&ct, ThresholdPreset::Bone);
        assert!(mask.data() == ball.data());
        // A digital ball of radius 12 mm holds 4/3·π·12³ mm³ to within 2 % (lattice error).
        let analytic_ml = 4.0 / 3.0 * std::f64::consts::PI * 12f64.powi(3) / 1000.0;
        assert!((volume_ml(&mask) - analytic_ml).abs() < 0.02 * analytic_ml);
        assert!(threshold_preset(&ct, ThresholdPreset::Lung)
            .data()
            .iter()
            .all(|&v| v == 0));
        assert_eq!(
            ThresholdPreset::from_name("cortical-bone"),
            Some(ThresholdPreset::CorticalBone)
        );
    }

    #[test]
    fn bounds_are_inclusive_and_nan_is_outside() {
        let g = grid([4, 1, 1], [1.0; 3]);
        let image = Volume::new(g, vec![99.9, 100.0, 3000.0, f32::NAN]).expect("fits");
        assert_eq!(threshold(&image, 100.0, 3000.0).data(), &[0, 1, 1, 0]);
    }
}
