//! How one label is printed: the single print profile shared by editing (stored in the label
//! sidecar), the app, and export (3MF slicer settings).
//!
//! Defaults follow the seed's clinical colour coding. A suggestion derived from HU statistics
//! (see `export::suggest_from_hu`) carries the rule that produced it, so the user sees it as a
//! suggestion, not a measurement of tissue stiffness.

use super::Rgba;
use serde::{Deserialize, Serialize};

/// How one label (part) is printed.
///
/// Sidecars written before the profiles were unified lack `extruder` and `suggestion`; they
/// read with extruder 1 and no suggestion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrintProfile {
    /// Free text the slicer/printer operator understands ("PLA white", "TPU 95A").
    pub material: String,
    /// Print colour; may differ from the display colour.
    pub color: Rgba,
    /// Sparse infill density in percent, 0–100.
    pub infill_percent: f32,
    /// Number of perimeter walls (wall loops).
    pub wall_count: u32,
    /// 1-based extruder (filament slot) on multi-material printers.
    #[serde(default = "first_extruder")]
    pub extruder: u32,
    /// The rule text behind the current values when they came from a suggestion (e.g. "mean
    /// 1100 HU > 800 HU: dense, bone-like tissue → rigid material"); `None` once the user sets
    /// them by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<String>,
}

fn first_extruder() -> u32 {
    1
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

impl Default for PrintProfile {
    fn default() -> Self {
        Self {
            material: "PLA".to_string(),
            color: WHITE,
            infill_percent: 20.0,
            wall_count: 3,
            extruder: 1,
            suggestion: None,
        }
    }
}

impl PrintProfile {
    /// A default profile printed in `color`.
    pub fn for_color(color: Rgba) -> Self {
        Self {
            color,
            ..Self::default()
        }
    }

    /// The clinical default for a label named `name`; names the coding does not know keep the
    /// label's own colour.
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
            ..Self::default()
        }
    }

    /// Infill as slicers write it ("20%"), clamped to 0–100.
    pub fn infill_text(&self) -> String {
        let p = if self.infill_percent.is_finite() {
            self.infill_percent.clamp(0.0, 100.0)
        } else {
            Self::default().infill_percent
        };
        format!("{p}%")
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
        p.extruder = slot as u32 + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clinical_colours_follow_the_seed() {
        let grey = Rgba::rgb(128, 128, 128);
        let colour = |name: &str| PrintProfile::clinical_default(name, grey).color;
        assert_eq!(colour("aorta"), BLUE);
        assert_eq!(colour("Tumour core"), PINK);
        assert_eq!(colour("vertebrae_L3"), WHITE);
        assert_eq!(colour("Motor area"), GREEN);
        assert_eq!(colour("language area"), YELLOW);
        assert_eq!(colour("plaque calcification"), WHITE);
        assert_eq!(colour("liver"), grey);
    }

    #[test]
    fn extruders_per_colour() {
        let mut p = vec![
            PrintProfile::clinical_default("femur", WHITE),
            PrintProfile::clinical_default("aorta", WHITE),
            PrintProfile::clinical_default("rib", WHITE),
        ];
        assign_extruders(&mut p);
        let slots: Vec<u32> = p.iter().map(|p| p.extruder).collect();
        assert_eq!(slots, vec![1, 2, 1]);
    }

    #[test]
    fn profiles_without_extruder_or_suggestion_read_with_defaults() {
        let old =
            r#"{"material":"PETG","color":[10,20,30,255],"infill_percent":15.0,"wall_count":4}"#;
        let p: PrintProfile = serde_json::from_str(old).expect("old shape reads");
        assert_eq!(p.extruder, 1);
        assert_eq!(p.suggestion, None);
        assert_eq!(p.infill_text(), "15%");
        let back: PrintProfile =
            serde_json::from_str(&serde_json::to_string(&p).expect("encodes")).expect("decodes");
        assert_eq!(back, p);
    }
}
