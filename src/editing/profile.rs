//! Per-label print settings and the segmentation document that carries them with the map.

use crate::volume::{LabelMap, Rgba};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How one label should be printed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrintProfile {
    /// Free text the slicer/printer operator understands ("PLA", "Vero PureWhite", "TPU 95A").
    pub material: String,
    /// Print colour; may differ from the display colour.
    pub color: Rgba,
    /// Infill density in percent, 0–100.
    pub infill_percent: f32,
    /// Number of perimeter walls.
    pub wall_count: u32,
}

impl Default for PrintProfile {
    fn default() -> Self {
        Self {
            material: "PLA".to_string(),
            color: Rgba::rgb(255, 255, 255),
            infill_percent: 20.0,
            wall_count: 3,
        }
    }
}

impl PrintProfile {
    /// A default profile printed in the label's display colour.
    pub fn for_color(color: Rgba) -> Self {
        Self {
            color,
            ..Self::default()
        }
    }
}

/// A label map with a print profile per label value (labels without one use the default).
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentationDocument {
    pub map: LabelMap,
    pub profiles: BTreeMap<u16, PrintProfile>,
}

impl SegmentationDocument {
    pub fn new(map: LabelMap) -> Self {
        Self {
            map,
            profiles: BTreeMap::new(),
        }
    }

    /// The profile for `label`: its own, or the default in the label's display colour.
    pub fn profile(&self, label: u16) -> PrintProfile {
        self.profiles.get(&label).cloned().unwrap_or_else(|| {
            let color = self
                .map
                .table
                .get(label)
                .map(|l| l.color)
                .unwrap_or(Rgba::rgb(255, 255, 255));
            PrintProfile::for_color(color)
        })
    }
}
