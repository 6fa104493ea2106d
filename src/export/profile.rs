//! Per-part print settings, the clinical default colours, and HU-based suggestions.
//!
//! Suggestions are shown to the user with the rule that produced them: they are a starting
//! point, not a measurement of tissue stiffness.

pub use crate::volume::print_profile::{assign_extruders, BLUE, GREEN, PINK, RED, WHITE, YELLOW};
pub use crate::volume::PrintProfile;
use serde::{Deserialize, Serialize};

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
            profile.infill_percent = 80.0;
            rules.push(format!(
                "enhancement {e:.0} HU ≥ 30 HU: high perfusion → 80 % infill"
            ));
        }
        Some(e) => {
            profile.infill_percent = 50.0;
            rules.push(format!(
                "enhancement {e:.0} HU < 30 HU: low perfusion → 50 % infill"
            ));
        }
        None => rules.push("no contrast phase: infill unchanged".into()),
    }
    profile.suggestion = Some(rules.join("; "));
    ProfileSuggestion { profile, rules }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let shown = s.profile.suggestion.as_deref().unwrap_or_default();
        assert!(shown.contains("800 HU"), "{shown}");
        let s = suggest_from_hu(
            &base,
            HuStats {
                mean_hu: 30.0,
                enhancement_hu: Some(60.0),
            },
        );
        assert!(s.profile.material.contains("soft"));
        assert_eq!(s.profile.infill_percent, 80.0);
        let s = suggest_from_hu(
            &base,
            HuStats {
                mean_hu: 30.0,
                enhancement_hu: Some(5.0),
            },
        );
        assert_eq!(s.profile.infill_percent, 50.0);
    }
}
