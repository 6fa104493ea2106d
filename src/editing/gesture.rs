//! One user gesture (a whole brush stroke, a fill, a tool's result): writes voxels through the
//! masking rules and keeps the original content of every brick it touches, so that on finish
//! it can emit an exact, compressed delta for undo.

use super::history::{BrickDelta, EditDelta, BRICK};
use super::mask::{EditMask, PaintValue, WriteRules};
use super::EditError;
use crate::volume::{LabelMap, Volume, VolumeGeometry};

/// An edit in progress on a label map. Dropping it without [`Gesture::finish`] keeps the
/// changes but records no undo entry.
pub struct Gesture<'a> {
    map: &'a mut LabelMap,
    rules: WriteRules<'a>,
    name: String,
    bricks_per_axis: [usize; 3],
    /// Original voxels of each touched brick, by brick id (copy on first write).
    originals: Vec<Option<Box<[u16]>>>,
    touched: Vec<usize>,
}

impl<'a> Gesture<'a> {
    /// Starts a gesture. `intensity` is the image on the label map's grid, needed only when the
    /// mask has an intensity range.
    pub fn begin(
        map: &'a mut LabelMap,
        name: impl Into<String>,
        mask: &EditMask,
        intensity: Option<&'a Volume<f32>>,
    ) -> Result<Self, EditError> {
        if let Some(image) = intensity {
            if image.dims() != map.geometry().dims {
                return Err(EditError::IntensityGridMismatch {
                    image: image.dims(),
                    labels: map.geometry().dims,
                });
            }
        }
        let rules = WriteRules::new(mask, &map.table, intensity);
        let bricks_per_axis = map.geometry().dims.map(|n| n.div_ceil(BRICK));
        let n_bricks = bricks_per_axis.iter().product();
        Ok(Self {
            map,
            rules,
            name: name.into(),
            bricks_per_axis,
            originals: vec![None; n_bricks],
            touched: Vec::new(),
        })
    }

    pub fn geometry(&self) -> &VolumeGeometry {
        self.map.geometry()
    }

    /// The label map as it is now, mid-gesture.
    pub fn map(&self) -> &LabelMap {
        self.map
    }

    /// Writes `value` at voxel `(i, j, k)` if the masking rules and locks allow it; returns
    /// whether the voxel changed.
    #[inline]
    pub fn paint(&mut self, i: usize, j: usize, k: usize, value: PaintValue) -> bool {
        let idx = self.map.geometry().linear_index(i, j, k);
        let current = self.map.volume.data()[idx];
        let Some(new) = self.rules.decide(idx, current, value) else {
            return false;
        };
        let brick = self.brick_of(i, j, k);
        if self.originals[brick].is_none() {
            self.save_brick(brick);
        }
        self.map.volume.data_mut()[idx] = new;
        true
    }

    /// Writes at a signed index, ignoring positions outside the grid.
    #[inline]
    pub fn paint_signed(&mut self, i: i64, j: i64, k: i64, value: PaintValue) -> bool {
        self.map.geometry().contains_index(i, j, k)
            && self.paint(i as usize, j as usize, k as usize, value)
    }

    #[inline]
    fn brick_of(&self, i: usize, j: usize, k: usize) -> usize {
        let [bx, by, _] = self.bricks_per_axis;
        i / BRICK + bx * (j / BRICK + by * (k / BRICK))
    }

    fn save_brick(&mut self, brick: usize) {
        let region = brick_region(self.map.geometry().dims, self.bricks_per_axis, brick);
        self.originals[brick] = Some(read_region(&self.map.volume, &region).into_boxed_slice());
        self.touched.push(brick);
    }

    /// Ends the gesture; `None` when no voxel changed (nothing to undo).
    pub fn finish(self) -> Option<EditDelta> {
        let dims = self.map.geometry().dims;
        let mut bricks = Vec::new();
        let mut changed = 0usize;
        for &brick in &self.touched {
            let Some(before) = &self.originals[brick] else {
                continue;
            };
            let region = brick_region(dims, self.bricks_per_axis, brick);
            let after = read_region(&self.map.volume, &region);
            let xor: Vec<u16> = before.iter().zip(&after).map(|(a, b)| a ^ b).collect();
            let n = xor.iter().filter(|&&x| x != 0).count();
            if n > 0 {
                changed += n;
                bricks.push(BrickDelta::compress(brick as u32, &xor));
            }
        }
        if bricks.is_empty() {
            return None;
        }
        Some(EditDelta::new(self.name, dims, bricks, changed))
    }
}

/// Voxel box `[lo, hi)` of a brick.
pub(crate) struct Region {
    pub lo: [usize; 3],
    pub hi: [usize; 3],
}

pub(crate) fn brick_region(dims: [usize; 3], per_axis: [usize; 3], brick: usize) -> Region {
    let b = [
        brick % per_axis[0],
        (brick / per_axis[0]) % per_axis[1],
        brick / (per_axis[0] * per_axis[1]),
    ];
    let lo = b.map(|c| c * BRICK);
    let hi = [0, 1, 2].map(|a| (lo[a] + BRICK).min(dims[a]));
    Region { lo, hi }
}

pub(crate) fn read_region(v: &Volume<u16>, r: &Region) -> Vec<u16> {
    let g = v.geometry();
    let mut out =
        Vec::with_capacity((r.hi[0] - r.lo[0]) * (r.hi[1] - r.lo[1]) * (r.hi[2] - r.lo[2]));
    for k in r.lo[2]..r.hi[2] {
        for j in r.lo[1]..r.hi[1] {
            let start = g.linear_index(r.lo[0], j, k);
            out.extend_from_slice(&v.data()[start..start + r.hi[0] - r.lo[0]]);
        }
    }
    out
}

/// Writes a tool's binary mask (e.g. a threshold or grown region) into the map as one gesture:
/// voxels where `mask != 0` get `value`, subject to the masking rules.
pub fn apply_mask(
    gesture: &mut Gesture<'_>,
    mask: &Volume<u8>,
    value: PaintValue,
) -> Result<usize, EditError> {
    let dims = gesture.geometry().dims;
    if mask.dims() != dims {
        return Err(EditError::MaskGridMismatch {
            mask: mask.dims(),
            labels: dims,
        });
    }
    let mut changed = 0;
    for (idx, &m) in mask.data().iter().enumerate() {
        if m != 0 {
            let [i, j, k] = gesture.geometry().index3(idx);
            changed += usize::from(gesture.paint(i, j, k, value));
        }
    }
    Ok(changed)
}
