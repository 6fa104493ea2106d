//! Which voxels a tool may change: Slicer's masking settings plus label locks.

use crate::volume::{LabelTable, Volume};

/// The user's masking settings, applied by every tool.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EditMask {
    /// Painting may replace voxels of other (unlocked) labels; otherwise only background.
    pub overwrite_other_labels: bool,
    /// Only voxels currently holding this label may change (`Some(0)`: only background).
    /// Such voxels are replaced even when `overwrite_other_labels` is off: the user chose them.
    pub only_inside_label: Option<u16>,
    /// Only voxels whose image intensity lies in `[low, high]` may change.
    pub intensity_range: Option<(f32, f32)>,
}

impl Default for EditMask {
    /// Slicer's defaults: paint over other labels, anywhere, any intensity.
    fn default() -> Self {
        Self {
            overwrite_other_labels: true,
            only_inside_label: None,
            intensity_range: None,
        }
    }
}

/// What a tool writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaintValue {
    /// Set voxels to this label (non-zero).
    Label(u16),
    /// Clear voxels to background: only those of the given label, or of any label when `None`.
    Erase(Option<u16>),
}

/// The per-voxel decision, with the lookups prepared once per gesture.
pub(crate) struct WriteRules<'a> {
    mask: EditMask,
    locked: Vec<bool>,
    intensity: Option<&'a Volume<f32>>,
}

impl<'a> WriteRules<'a> {
    pub fn new(mask: &EditMask, table: &LabelTable, intensity: Option<&'a Volume<f32>>) -> Self {
        let mut locked = vec![false; 1 << 16];
        for l in table.iter() {
            locked[l.value as usize] = l.locked;
        }
        Self {
            mask: mask.clone(),
            locked,
            intensity,
        }
    }

    /// The value voxel `idx` (currently `current`) should take, or `None` to leave it.
    #[inline]
    pub fn decide(&self, idx: usize, current: u16, value: PaintValue) -> Option<u16> {
        let new = match value {
            PaintValue::Label(l) => l,
            PaintValue::Erase(_) => 0,
        };
        if new == current || self.locked[current as usize] || self.locked[new as usize] {
            return None;
        }
        if let PaintValue::Erase(Some(only)) = value {
            if current != only {
                return None;
            }
        }
        match self.mask.only_inside_label {
            Some(inside) if current != inside => return None,
            Some(_) => {}
            None => {
                if new != 0 && current != 0 && !self.mask.overwrite_other_labels {
                    return None;
                }
            }
        }
        if let (Some((low, high)), Some(image)) = (self.mask.intensity_range, self.intensity) {
            let v = image.data()[idx];
            if !(v >= low && v <= high) {
                return None;
            }
        }
        Some(new)
    }
}
