//! Label maps: one `u16` label per voxel plus a table naming and colouring each label.
//!
//! Label 0 is always background. `u16` covers both u8 and u16 label files; writers may
//! narrow to u8 when every label fits.

use super::{Volume, VolumeError, VolumeGeometry};
use serde::{Deserialize, Serialize};

/// Straight (non-premultiplied) sRGB colour with alpha.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rgba(pub [u8; 4]);

impl Rgba {
    pub const fn rgb(r: u8, g: u8, b: u8) -> Self {
        Rgba([r, g, b, 255])
    }
}

/// One row of the label table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelInfo {
    pub value: u16,
    pub name: String,
    pub color: Rgba,
    pub visible: bool,
    /// Locked labels are never changed by editing tools.
    #[serde(default)]
    pub locked: bool,
}

impl LabelInfo {
    pub fn new(value: u16, name: impl Into<String>, color: Rgba) -> Self {
        Self {
            value,
            name: name.into(),
            color,
            visible: true,
            locked: false,
        }
    }
}

/// The labels a map uses, sorted by value. Background (0) is implicit and never listed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LabelTable {
    labels: Vec<LabelInfo>,
}

impl LabelTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces the entry for `info.value` (0 is ignored: background is implicit).
    pub fn insert(&mut self, info: LabelInfo) {
        if info.value == 0 {
            return;
        }
        match self.labels.binary_search_by_key(&info.value, |l| l.value) {
            Ok(pos) => self.labels[pos] = info,
            Err(pos) => self.labels.insert(pos, info),
        }
    }

    pub fn remove(&mut self, value: u16) -> Option<LabelInfo> {
        let pos = self.labels.binary_search_by_key(&value, |l| l.value).ok()?;
        Some(self.labels.remove(pos))
    }

    pub fn get(&self, value: u16) -> Option<&LabelInfo> {
        let pos = self.labels.binary_search_by_key(&value, |l| l.value).ok()?;
        Some(&self.labels[pos])
    }

    pub fn get_mut(&mut self, value: u16) -> Option<&mut LabelInfo> {
        let pos = self.labels.binary_search_by_key(&value, |l| l.value).ok()?;
        Some(&mut self.labels[pos])
    }

    pub fn iter(&self) -> impl Iterator<Item = &LabelInfo> {
        self.labels.iter()
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Smallest unused label value (≥ 1).
    pub fn next_free_value(&self) -> u16 {
        let mut v = 1u16;
        for l in &self.labels {
            if l.value == v {
                v = v.saturating_add(1);
            } else if l.value > v {
                break;
            }
        }
        v
    }

    /// A distinct, stable default colour for label `value` (golden-angle hue walk).
    pub fn default_color(value: u16) -> Rgba {
        let h = (value as f64 * 137.507_764) % 360.0;
        let (s, v) = (0.65, 0.95);
        let c = v * s;
        let x = c * (1.0 - ((h / 60.0) % 2.0 - 1.0).abs());
        let m = v - c;
        let (r, g, b) = match (h / 60.0) as u32 {
            0 => (c, x, 0.0),
            1 => (x, c, 0.0),
            2 => (0.0, c, x),
            3 => (0.0, x, c),
            4 => (x, 0.0, c),
            _ => (c, 0.0, x),
        };
        let to8 = |f: f64| ((f + m) * 255.0).round().clamp(0.0, 255.0) as u8;
        Rgba::rgb(to8(r), to8(g), to8(b))
    }
}

/// A segmentation: labels on a grid, with their table.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelMap {
    pub volume: Volume<u16>,
    pub table: LabelTable,
}

impl LabelMap {
    /// An all-background map on `geometry`.
    pub fn empty(geometry: VolumeGeometry) -> Self {
        Self {
            volume: Volume::filled(geometry, 0),
            table: LabelTable::new(),
        }
    }

    /// Wraps label voxels; every value present but missing from `table` gets a generic entry.
    pub fn new(volume: Volume<u16>, mut table: LabelTable) -> Self {
        for value in Self::values_present_in(volume.data()) {
            if table.get(value).is_none() {
                table.insert(LabelInfo::new(
                    value,
                    format!("Label {value}"),
                    LabelTable::default_color(value),
                ));
            }
        }
        Self { volume, table }
    }

    pub fn from_data(
        geometry: VolumeGeometry,
        data: Vec<u16>,
        table: LabelTable,
    ) -> Result<Self, VolumeError> {
        Ok(Self::new(Volume::new(geometry, data)?, table))
    }

    pub fn geometry(&self) -> &VolumeGeometry {
        self.volume.geometry()
    }

    /// Sorted distinct non-zero label values present in the voxels.
    pub fn values_present(&self) -> Vec<u16> {
        Self::values_present_in(self.volume.data())
    }

    fn values_present_in(data: &[u16]) -> Vec<u16> {
        use rayon::prelude::*;
        // A 512×512×400 map is 105 M voxels: chunks over every core, and a run of one value
        // (most of a label map) is one vectorised comparison instead of a store per voxel.
        let seen = data
            .par_chunks(1 << 20)
            .fold(
                || vec![false; 1 << 16],
                |mut seen, chunk| {
                    for run in chunk.chunks(32) {
                        let first = run[0];
                        if run.iter().all(|&v| v == first) {
                            seen[first as usize] = true;
                        } else {
                            for &v in run {
                                seen[v as usize] = true;
                            }
                        }
                    }
                    seen
                },
            )
            .reduce(
                || vec![false; 1 << 16],
                |mut a, b| {
                    a.iter_mut().zip(b).for_each(|(x, y)| *x |= y);
                    a
                },
            );
        (1..=u16::MAX).filter(|v| seen[*v as usize]).collect()
    }

    /// Voxel count per label value (index = label).
    pub fn histogram(&self) -> Vec<u64> {
        let max = self.volume.data().iter().copied().max().unwrap_or(0) as usize;
        let mut h = vec![0u64; max + 1];
        for &v in self.volume.data() {
            h[v as usize] += 1;
        }
        h
    }

    /// Volume of `label` in millilitres.
    pub fn label_volume_ml(&self, label: u16) -> f64 {
        let n = self.volume.data().iter().filter(|&&v| v == label).count();
        n as f64 * self.geometry().voxel_volume_mm3() / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_present_finds_lone_voxels_in_long_runs() {
        // Runs of one value over several parallel chunks, and single voxels at the edges of a
        // 32-voxel run and of a chunk, where the run shortcut could miss them.
        let len = 3 * (1 << 20) + 77;
        let mut data: Vec<u16> = (0..len).map(|i| if i < len / 2 { 0 } else { 4 }).collect();
        for (i, v) in [
            (31, 9),
            (32, 65535),
            ((1 << 20) - 1, 17),
            (1 << 20, 300),
            (len - 1, 2),
        ] {
            data[i] = v;
        }
        let mut expected: Vec<u16> = data.iter().copied().filter(|&v| v != 0).collect();
        expected.sort_unstable();
        expected.dedup();
        assert_eq!(LabelMap::values_present_in(&data), expected);
        assert_eq!(expected, vec![2, 4, 9, 17, 300, 65535]);
    }

    #[test]
    fn table_keeps_sorted_and_skips_background() {
        let mut t = LabelTable::new();
        t.insert(LabelInfo::new(5, "vessel", Rgba::rgb(0, 0, 255)));
        t.insert(LabelInfo::new(0, "background", Rgba::rgb(0, 0, 0)));
        t.insert(LabelInfo::new(2, "bone", Rgba::rgb(255, 255, 255)));
        assert_eq!(t.iter().map(|l| l.value).collect::<Vec<_>>(), vec![2, 5]);
        assert_eq!(t.next_free_value(), 1);
        t.insert(LabelInfo::new(1, "skin", Rgba::rgb(1, 1, 1)));
        assert_eq!(t.next_free_value(), 3);
        assert_eq!(t.remove(2).map(|l| l.name), Some("bone".to_string()));
    }

    #[test]
    fn new_fills_missing_table_entries_and_measures_volume() {
        let g = VolumeGeometry::axis_aligned([2, 2, 2], [1.0, 2.0, 5.0], [0.0; 3]).expect("valid");
        let map =
            LabelMap::from_data(g, vec![0, 1, 1, 3, 0, 0, 0, 3], LabelTable::new()).expect("fits");
        assert_eq!(map.values_present(), vec![1, 3]);
        assert_eq!(map.table.get(3).map(|l| l.name.as_str()), Some("Label 3"));
        assert!((map.label_volume_ml(1) - 0.02).abs() < 1e-12);
        assert_eq!(map.histogram(), vec![4, 2, 0, 2]);
    }
}
