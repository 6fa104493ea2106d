//! Undo/redo of gestures as compressed sparse deltas, within a memory budget.
//!
//! A delta stores, for each 32³ brick a gesture changed, the XOR of the brick's voxels before
//! and after, deflated. XOR makes the same bytes serve undo and redo and guarantees bit-exact
//! round trips; it is zero wherever nothing changed, so it deflates to almost nothing (a brush
//! stroke costs a few kB, not a copy of the map).

use super::gesture::{brick_region, Region};
use super::EditError;
use crate::volume::LabelMap;
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use flate2::Compression;
use std::collections::VecDeque;
use std::io::{Read, Write};

/// Edge of the cubic bricks deltas are stored in, voxels.
pub(crate) const BRICK: usize = 32;

/// Undo memory allowed before the oldest entries are dropped.
pub const DEFAULT_UNDO_BUDGET_BYTES: usize = 256 * 1024 * 1024;

/// One changed brick: its id and the deflated XOR of its voxels (little-endian `u16`).
#[derive(Debug, Clone)]
pub(crate) struct BrickDelta {
    brick: u32,
    deflated: Vec<u8>,
}

impl BrickDelta {
    pub fn compress(brick: u32, xor: &[u16]) -> Self {
        let bytes: Vec<u8> = xor.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut enc = DeflateEncoder::new(Vec::new(), Compression::fast());
        // Writing to a Vec cannot fail.
        let _ = enc.write_all(&bytes);
        let deflated = enc.finish().unwrap_or_default();
        Self { brick, deflated }
    }
}

/// What one gesture changed.
#[derive(Debug, Clone)]
pub struct EditDelta {
    name: String,
    dims: [usize; 3],
    bricks: Vec<BrickDelta>,
    changed_voxels: usize,
}

impl EditDelta {
    pub(crate) fn new(
        name: String,
        dims: [usize; 3],
        bricks: Vec<BrickDelta>,
        changed_voxels: usize,
    ) -> Self {
        Self {
            name,
            dims,
            bricks,
            changed_voxels,
        }
    }

    /// The gesture's name for "Undo <name>".
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn changed_voxels(&self) -> usize {
        self.changed_voxels
    }

    /// Heap memory this entry holds.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.name.len()
            + self
                .bricks
                .iter()
                .map(|b| b.deflated.capacity() + std::mem::size_of::<BrickDelta>())
                .sum::<usize>()
    }

    /// Toggles the gesture on the map: applied to the state after it, gives the state before,
    /// and the other way round.
    pub fn toggle(&self, map: &mut LabelMap) -> Result<(), EditError> {
        let dims = map.geometry().dims;
        if dims != self.dims {
            return Err(EditError::DeltaGridMismatch {
                delta: self.dims,
                labels: dims,
            });
        }
        let per_axis = dims.map(|n| n.div_ceil(BRICK));
        // Decode everything first so a corrupt entry leaves the map untouched.
        let mut decoded = Vec::with_capacity(self.bricks.len());
        for b in &self.bricks {
            let region = brick_region(dims, per_axis, b.brick as usize);
            let n = (0..3)
                .map(|a| region.hi[a] - region.lo[a])
                .product::<usize>();
            let mut bytes = Vec::with_capacity(2 * n);
            DeflateDecoder::new(&b.deflated[..])
                .read_to_end(&mut bytes)
                .map_err(|e| EditError::CorruptDelta(e.to_string()))?;
            if bytes.len() != 2 * n {
                return Err(EditError::CorruptDelta(format!(
                    "brick {} holds {} bytes, expected {}",
                    b.brick,
                    bytes.len(),
                    2 * n
                )));
            }
            decoded.push((region, bytes));
        }
        for (region, bytes) in decoded {
            xor_region(map, &region, &bytes);
        }
        Ok(())
    }
}

fn xor_region(map: &mut LabelMap, r: &Region, bytes: &[u8]) {
    let g = map.geometry().clone();
    let data = map.volume.data_mut();
    let width = r.hi[0] - r.lo[0];
    let mut words = bytes
        .chunks_exact(2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]));
    for k in r.lo[2]..r.hi[2] {
        for j in r.lo[1]..r.hi[1] {
            let start = g.linear_index(r.lo[0], j, k);
            for (v, x) in data[start..start + width].iter_mut().zip(words.by_ref()) {
                *v ^= x;
            }
        }
    }
}

/// Linear undo/redo of gestures. A new gesture clears the redo stack; past the budget the
/// oldest undo entries go (the newest always stays, however large).
#[derive(Debug)]
pub struct UndoHistory {
    undo: VecDeque<EditDelta>,
    redo: Vec<EditDelta>,
    budget_bytes: usize,
    bytes: usize,
}

impl Default for UndoHistory {
    fn default() -> Self {
        Self::new(DEFAULT_UNDO_BUDGET_BYTES)
    }
}

impl UndoHistory {
    pub fn new(budget_bytes: usize) -> Self {
        Self {
            undo: VecDeque::new(),
            redo: Vec::new(),
            budget_bytes,
            bytes: 0,
        }
    }

    /// Records a finished gesture (`Gesture::finish`'s result; `None` is ignored).
    pub fn push(&mut self, delta: Option<EditDelta>) {
        let Some(delta) = delta else { return };
        for d in self.redo.drain(..) {
            self.bytes -= d.memory_bytes();
        }
        self.bytes += delta.memory_bytes();
        self.undo.push_back(delta);
        while self.bytes > self.budget_bytes && self.undo.len() > 1 {
            if let Some(old) = self.undo.pop_front() {
                self.bytes -= old.memory_bytes();
            }
        }
    }

    /// Reverts the last gesture; returns its name, or `None` when there is nothing to undo.
    pub fn undo(&mut self, map: &mut LabelMap) -> Result<Option<String>, EditError> {
        let Some(delta) = self.undo.pop_back() else {
            return Ok(None);
        };
        if let Err(e) = delta.toggle(map) {
            self.undo.push_back(delta);
            return Err(e);
        }
        let name = delta.name().to_string();
        self.redo.push(delta);
        Ok(Some(name))
    }

    /// Re-applies the last undone gesture.
    pub fn redo(&mut self, map: &mut LabelMap) -> Result<Option<String>, EditError> {
        let Some(delta) = self.redo.pop() else {
            return Ok(None);
        };
        if let Err(e) = delta.toggle(map) {
            self.redo.push(delta);
            return Err(e);
        }
        let name = delta.name().to_string();
        self.undo.push_back(delta);
        Ok(Some(name))
    }

    pub fn can_undo(&self) -> bool {
        !self.undo.is_empty()
    }
    pub fn can_redo(&self) -> bool {
        !self.redo.is_empty()
    }
    pub fn undo_len(&self) -> usize {
        self.undo.len()
    }
    pub fn redo_len(&self) -> usize {
        self.redo.len()
    }
    /// Memory held by both stacks.
    pub fn memory_bytes(&self) -> usize {
        self.bytes
    }
    pub fn budget_bytes(&self) -> usize {
        self.budget_bytes
    }
    pub fn undo_name(&self) -> Option<&str> {
        self.undo.back().map(EditDelta::name)
    }
    pub fn clear(&mut self) {
        self.undo.clear();
        self.redo.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::editing::phantoms::empty_map;
    use crate::editing::{EditMask, Gesture, PaintValue};

    fn paint_box(map: &mut LabelMap, lo: usize, hi: usize, label: u16) -> Option<EditDelta> {
        let mut g =
            Gesture::begin(map, format!("box {lo}"), &EditMask::default(), None).expect("no image");
        for k in lo..hi {
            for j in lo..hi {
                for i in lo..hi {
                    g.paint(i, j, k, PaintValue::Label(label));
                }
            }
        }
        g.finish()
    }

    #[test]
    fn undo_redo_is_bit_identical_and_redo_clears_on_new_gesture() {
        let mut map = empty_map([70, 40, 35], [1.0; 3]);
        let mut history = UndoHistory::default();
        let d = paint_box(&mut map, 5, 20, 1);
        history.push(d);
        let after_first = map.clone();
        history.push(paint_box(&mut map, 10, 34, 2));
        let after_second = map.clone();
        assert_eq!(history.undo(&mut map).expect("ok"), Some("box 10".into()));
        assert_eq!(map, after_first);
        assert_eq!(history.redo(&mut map).expect("ok"), Some("box 10".into()));
        assert_eq!(map, after_second);
        history.undo(&mut map).expect("ok");
        history.undo(&mut map).expect("ok");
        assert!(map.volume.data().iter().all(|&v| v == 0));
        assert_eq!(history.undo(&mut map).expect("ok"), None);
        history.redo(&mut map).expect("ok");
        history.push(paint_box(&mut map, 0, 3, 2));
        assert!(!history.can_redo());
        // Nothing changed: no entry.
        history.push(paint_box(&mut map, 0, 3, 2));
        assert_eq!(history.undo_len(), 2);
    }

    #[test]
    fn budget_drops_the_oldest_entries() {
        let mut map = empty_map([64, 64, 64], [1.0; 3]);
        let one = paint_box(&mut map, 0, 40, 1).expect("changed");
        let size = one.memory_bytes();
        let mut history = UndoHistory::new(size * 5 / 2);
        history.push(Some(one));
        for n in 0..4 {
            history.push(paint_box(&mut map, 0, 40, if n % 2 == 0 { 2 } else { 1 }));
        }
        assert_eq!(history.undo_len(), 2);
        assert!(history.memory_bytes() <= history.budget_bytes());
    }
}
