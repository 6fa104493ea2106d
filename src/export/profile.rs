//! Per-part print settings, the clinical default colours, and HU-based suggestions.
//!
//! Suggestions are shown to the user with the rule that produced them: they are a starting
//! point, not a measurement of tissue stiffness.

use crate::volume::Rgba;
use serde::{Deserialize, Serialize};

/// How one part is printed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrintProfile {
    /// Material name shown in the slicer ("PLA white", "TPU 85A").
    pub material: String,
    pub color: Rgba,
    /// Sparse infill density, percent.
    pub infill_percent: u8,
    /// Perimeters / wall loops.
    pub wall_count: u8,
    /// 1-based extruder (filament slot) for multi-material printers.
    pub extruder: u8,
}

pub const WHITE: Rgba = Rgba::rgb(255, 255, 255);
pub const PINK: Rgba = Rgba::rgb(255, 105, 180);
pub const BLUE: Rgba = Rgba::rgb(30, 90, 255);
pub const RED: Rgba = Rgba::rgb(220, 30, 30);
pub const GREEN: Rgba = Rgba::rgb(40, 180, 60);
pub const YELLOW: Rgba = Rgba::rgb(250, 220, 30);

/// (name fragments, colour, material) in priority order: the seed's clinical coding.
const CLINICAL: &[(&[&str], Rgba, &str)] = &[
    (&["calcif"], WHITE, "PLA white"),
    (
        &["tumour", "tumor", "lesion", "neoplasm", "metasta"],
        PINK,
        "PLA pink",
    ),
    (&["motor"], GREEN, "PLA green"),
    (
        &["language", "broca", "wernicke", "speech"],
        YELLOW,
        "PLA yellow",
    ),
    (
        &[
            "arter",
            "aorta",
            "vein",
            "vena",
            "vessel",
            "portal",
            "carotid",
            "iliac",
            "trunk",
            "lumen",
            "subclavian",
        ],
        BLUE,
        "PLA blue",
    ),
    (
        &[
            "bone",
            "vertebra",
            "rib",
            "femur",
            "hip",
            "sacrum",
            "skull",
            "humerus",
            "scapula",
            "clavicula",
            "sternum",
            "cartilage",
        ],
        WHITE,
        "PLA white",
    ),
];

impl PrintProfile {
    /// The clinical default for a part named `name` (falls back to the label's colour).
    pub fn clinical_default(name: &str, label_color: Rgba) -> Self {
        let lower = name.to_ascii_lowercase();
        let (color, material) = CLINICAL
            .iter()
            .find(|(keys, _, _)| keys.iter().any(|k| lower.contains(k)))
            .map(|(_, c, m)| (*c, m.to_string()))
            .unwrap_or((label_color, "PLA".to_string()));
        Self {
            material,
            color,
            infill_percent: 20,
            wall_count: 3,
            extruder: 1,
        }
    }
}

/// Gives each distinct colour its own extruder, in order of first appearance (1-based).
pub fn assign_extruders(profiles: &mut [PrintProfile]) {
    let mut colours: Vec<Rgba> = Vec::new();
    for p in profiles.iter_mut() {
        let slot = match colours.iter().position(|c| *c == p.color) {
            Some(i) => i,
            None => {
                colours.push(p.color);
                colours.len() - 1
            }
        };
        p.extruder = (slot + 1).min(u8::MAX as usize) as u8;
    }
}

/// Intensity statistics of a part on CT.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HuStats {
    pub mean_hu: f32,
    /// Contrast enhancement (post minus pre, HU) where a perfusion or contrast phase exists.
    pub enhancement_hu: Option<f32>,
}

/// A proposed change to a profile and the rule behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileSuggestion {
    pub profile: PrintProfile,
    pub rules: Vec<String>,
}

/// Suggests material and infill from HU statistics, keeping colour and extruder.
pub fn suggest_from_hu(current: &PrintProfile, stats: HuStats) -> ProfileSuggestion {
    let mut profile = current.clone();
    let mut rules = Vec::new();
    if stats.mean_hu > 800.0 {
        profile.material = "rigid (PLA/PETG, bone-like)".into();
        profile.wall_count = profile.wall_count.max(4);
        rules.push(format!(
            "mean {:.0} HU > 800 HU: dense, bone-like tissue → rigid material",
            stats.mean_hu
        ));
    } else if (20.0..=40.0).contains(&stats.mean_hu) {
        profile.material = "soft (TPU/silicone-like)".into();
        rules.push(format!(
            "mean {:.0} HU in 20–40 HU: soft tissue → flexible, silicone-like material",
            stats.mean_hu
        ));
    } else {
        rules.push(format!(
            "mean {:.0} HU: no material rule applies; material unchanged",
            stats.mean_hu
        ));
    }
    match stats.enhancement_hu {
        Some(e) if e >= 30.0 => {
            profile.infill_percent = 80;
            rules.push(format!(
                "enhancement {e:.0} HU ≥ 30 HU: high perfusion → 80 % infill"
            ));
        }
        Some(e) => {
            profile.infill_percent = 50;
            rules.push(format!(
                "enhancement {e:.0} HU < 30 HU: low perfusion → 50 % infill"
            ));
        }
        None => rules.push("no contrast phase: infill unchanged".into()),
    }
    ProfileSuggestion { profile, rules }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clinical_colours_follow_the_seed() {
        let grey = Rgba::rgb(128, 128, 128);
        assert_eq!(PrintProfile::clinical_default("aorta", grey).color, BLUE);
        assert_eq!(
            PrintProfile::clinical_default("Tumour core", grey).color,
            PINK
        );
        assert_eq!(
            PrintProfile::clinical_default("vertebrae_L3", grey).color,
            WHITE
        );
        assert_eq!(
            PrintProfile::clinical_default("Motor area", grey).color,
            GREEN
        );
        assert_eq!(
            PrintProfile::clinical_default("language area", grey).color,
            YELLOW
        );
        assert_eq!(
            PrintProfile::clinical_default("plaque calcification", grey).color,
            WHITE
        );
        assert_eq!(PrintProfile::clinical_default("liver", grey).color, grey);
    }

    #[test]
    fn hu_rules_are_suggestions_with_reasons() {
        let base = PrintProfile::clinical_default("femur", WHITE);
        let s = suggest_from_hu(
            &base,
            HuStats {
                mean_hu: 1100.0,
                enhancement_hu: None,
            },
        );
        assert!(s.profile.material.contains("rigid"));
        assert_eq!(s.profile.infill_percent, base.infill_percent);
        assert!(s.rules[0].contains("800"));
        let s = suggest_from_hu(
            &base,
            HuStats {
                mean_hu: 30.0,
                enhancement_hu: Some(60.0),
            },
        );
        assert!(s.profile.material.contains("soft"));
        assert_eq!(s.profile.infill_percent, 80);
        let s = suggest_from_hu(
            &base,
            HuStats {
                mean_hu: 30.0,
                enhancement_hu: Some(5.0),
            },
        );
        assert_eq!(s.profile.infill_percent, 50);
    }

    #[test]
    fn extruders_per_colour() {
        let mut p = vec![
            PrintProfile::clinical_default("femur", WHITE),
            PrintProfile::clinical_default("aorta", WHITE),
            PrintProfile::clinical_default("rib", WHITE),
        ];
        assign_extruders(&mut p);
        assert_eq!(
            p.iter().map(|p| p.extruder).collect::<Vec<_>>(),
            vec![1, 2, 1]
        );
    }
}
