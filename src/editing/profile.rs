//! The segmentation document: a label map with the print profile of each label.
//!
//! [`PrintProfile`] itself lives in `volume` (one type for editing, the sidecar and export).

pub use crate::volume::PrintProfile;
use crate::volume::{LabelMap, Rgba};
use std::collections::BTreeMap;

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

    /// The profile for `label`: its own, or the clinical default for its name (in the label's
    /// display colour when the clinical coding does not know the name).
    pub fn profile(&self, label: u16) -> PrintProfile {
        self.profiles
            .get(&label)
            .cloned()
            .unwrap_or_else(|| match self.map.table.get(label) {
                Some(info) => PrintProfile::clinical_default(&info.name, info.color),
                None => PrintProfile::for_color(Rgba::rgb(255, 255, 255)),
            })
    }
}
