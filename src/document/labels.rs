//! The document's segmentation: one label map on a reference volume's grid, its undo history,
//! the editing tool settings, and the hand-editing tools applied to it (quick, so they run on
//! the UI thread as one gesture each; whole-volume tools run as jobs in `app`).

use super::slice::ViewAxis;
use crate::editing::brush::{paint_stroke, BrushShape, BrushStroke};
use crate::editing::fill::fill_in_slice;
use crate::editing::scissors::{scissors, ScissorsSide};
use crate::editing::{
    nearest_voxel, EditDelta, EditError, EditMask, Gesture, PaintValue, SliceOrientation,
    UndoHistory,
};
use crate::volume::{LabelInfo, LabelMap, LabelTable, Rgba, Volume, VolumeGeometry};
use nalgebra::{Point3, Vector3};
use std::sync::Arc;

/// The tool the left mouse button uses in the slice views.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tool {
    /// Click or drag moves the crosshair.
    #[default]
    Navigate,
    Brush,
    Eraser,
    /// A 3D ball brush (paints across slices).
    Sphere,
    /// Fill the clicked region of one label within the slice.
    Fill,
    /// Draw a polygon; erase everything inside it through the whole volume.
    Scissors,
    /// Click a seed; the region growing panel's range decides what is connected.
    RegionGrow,
}

impl Tool {
    pub const ALL: [Tool; 7] = [
        Tool::Navigate,
        Tool::Brush,
        Tool::Eraser,
        Tool::Sphere,
        Tool::Fill,
        Tool::Scissors,
        Tool::RegionGrow,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Tool::Navigate => "Navigate",
            Tool::Brush => "Brush",
            Tool::Eraser => "Eraser",
            Tool::Sphere => "Sphere",
            Tool::Fill => "Fill",
            Tool::Scissors => "Scissors",
            Tool::RegionGrow => "Grow",
        }
    }

    /// The key that selects the tool (shown in tooltips).
    pub fn shortcut(self) -> &'static str {
        match self {
            Tool::Navigate => "Esc",
            Tool::Brush => "B",
            Tool::Eraser => "E",
            Tool::Sphere => "S",
            Tool::Fill => "F",
            Tool::Scissors => "X",
            Tool::RegionGrow => "G",
        }
    }

    pub fn help(self) -> &'static str {
        match self {
            Tool::Navigate => "Click or drag to move the crosshair",
            Tool::Brush => "Paint the active label on the slice (disk of the brush size)",
            Tool::Eraser => "Erase any label on the slice (disk of the brush size)",
            Tool::Sphere => "Paint a ball of the brush size, across slices",
            Tool::Fill => "Fill the clicked region of the slice with the active label",
            Tool::Scissors => "Drag a lasso: everything inside it is erased through the volume",
            Tool::RegionGrow => {
                "Click a seed: connected voxels in the grow range become the active label"
            }
        }
    }

    /// Whether the tool changes labels when the left button is used in a view.
    pub fn edits(self) -> bool {
        self != Tool::Navigate
    }
}

/// What every editing tool obeys (Slicer's "masking" section plus the brush).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSettings {
    pub tool: Tool,
    /// The label painted, filled and grown.
    pub active_label: u16,
    pub brush_radius_mm: f64,
    /// Only voxels of the reference image within this range may change.
    pub editable_range: Option<(f32, f32)>,
    /// Painting may replace other labels (otherwise only background).
    pub overwrite_other_labels: bool,
}

impl Default for ToolSettings {
    fn default() -> Self {
        Self {
            tool: Tool::Navigate,
            active_label: 1,
            brush_radius_mm: 3.0,
            editable_range: None,
            overwrite_other_labels: true,
        }
    }
}

impl ToolSettings {
    pub fn mask(&self) -> EditMask {
        EditMask {
            overwrite_other_labels: self.overwrite_other_labels,
            only_inside_label: None,
            intensity_range: self.editable_range,
        }
    }
}

/// The label map being edited, on the grid of the volume it was made on.
#[derive(Debug)]
pub struct LabelLayer {
    /// `VolumeEntry::id` of the reference volume (its grid; its intensities for thresholds).
    pub volume_id: u64,
    /// Shared copy-on-write: saves, autosaves and jobs take the `Arc` (O(1) on the window's
    /// thread); an edit while one of them still holds it copies the map once.
    pub map: Arc<LabelMap>,
    pub history: UndoHistory,
    /// Bumped on every voxel change: jobs started on an older revision are discarded.
    pub revision: u64,
    /// A model's confidence (probability of the chosen label, 0..1) on the map's grid.
    pub confidence: Option<Arc<Volume<f32>>>,
    pub opacity: f32,
}

/// A copy is a snapshot of the labels: its undo history starts empty (the history holds
/// deltas against this map's own past, which a copy does not share).
impl Clone for LabelLayer {
    fn clone(&self) -> Self {
        Self {
            volume_id: self.volume_id,
            map: self.map.clone(),
            history: UndoHistory::new(self.history.budget_bytes()),
            revision: self.revision,
            confidence: self.confidence.clone(),
            opacity: self.opacity,
        }
    }
}

impl LabelLayer {
    pub fn empty(volume_id: u64, geometry: VolumeGeometry) -> Self {
        Self {
            volume_id,
            map: Arc::new(LabelMap::empty(geometry)),
            history: UndoHistory::default(),
            revision: 0,
            confidence: None,
            opacity: 0.5,
        }
    }

    /// Ensures `value` has a table row (a new label gets a default name and colour).
    pub fn ensure_label(&mut self, value: u16, name: &str) {
        if value != 0 && self.map.table.get(value).is_none() {
            Arc::make_mut(&mut self.map).table.insert(LabelInfo::new(
                value,
                name,
                LabelTable::default_color(value),
            ));
        }
    }

    /// Records a finished gesture for undo.
    pub fn record(&mut self, delta: Option<EditDelta>) {
        if delta.is_some() {
            self.revision += 1;
        }
        self.history.push(delta);
    }

    pub fn undo(&mut self) -> Result<Option<String>, EditError> {
        let name = self.history.undo(Arc::make_mut(&mut self.map))?;
        self.revision += 1;
        Ok(name)
    }

    pub fn redo(&mut self) -> Result<Option<String>, EditError> {
        let name = self.history.redo(Arc::make_mut(&mut self.map))?;
        self.revision += 1;
        Ok(name)
    }

    /// Label under a world point (nearest voxel), 0 outside.
    pub fn label_at(&self, world: Point3<f64>) -> u16 {
        match nearest_voxel(self.map.geometry(), &world) {
            Ok([i, j, k]) => self.map.volume.at(i, j, k),
            Err(_) => 0,
        }
    }
}

/// The slice orientation of the label grid whose fixed axis is closest to a view's normal.
pub fn orientation_for(geometry: &VolumeGeometry, axis: ViewAxis) -> SliceOrientation {
    let normal: Vector3<f64> = axis.normal_world();
    let fixed = (0..3)
        .max_by(|&a, &b| {
            let da = geometry.direction.column(a).dot(&normal).abs();
            let db = geometry.direction.column(b).dot(&normal).abs();
            da.total_cmp(&db)
        })
        .unwrap_or(2);
    match fixed {
        0 => SliceOrientation::Sagittal,
        1 => SliceOrientation::Coronal,
        _ => SliceOrientation::Axial,
    }
}

/// One hand-edit, in world coordinates.
#[derive(Debug, Clone, PartialEq)]
pub enum Edit {
    /// Brush, eraser or sphere along the pointer's path.
    Stroke {
        axis: ViewAxis,
        points: Vec<[f64; 3]>,
        tool: Tool,
    },
    /// Fill the clicked region of the slice.
    Fill { axis: ViewAxis, at: [f64; 3] },
    /// Erase inside the polygon, through the whole volume.
    Scissors {
        axis: ViewAxis,
        polygon: Vec<[f64; 3]>,
    },
}

/// Applies one edit as one undoable gesture; returns how many voxels changed.
pub fn apply_edit(
    layer: &mut LabelLayer,
    intensity: Option<&Volume<f32>>,
    settings: &ToolSettings,
    edit: &Edit,
) -> Result<usize, EditError> {
    let label = settings.active_label.max(1);
    let name = match edit {
        Edit::Stroke { tool, .. } => tool.name(),
        Edit::Fill { .. } => "Fill",
        Edit::Scissors { .. } => "Scissors",
    };
    if matches!(
        edit,
        Edit::Stroke {
            tool: Tool::Brush | Tool::Sphere,
            ..
        } | Edit::Fill { .. }
    ) {
        layer.ensure_label(label, &format!("label {label}"));
    }
    let geometry = layer.map.geometry().clone();
    let mask = settings.mask();
    // The intensity rule needs the reference image; without a range it is not consulted.
    let intensity = if mask.intensity_range.is_some() {
        intensity
    } else {
        None
    };
    let mut gesture = Gesture::begin(Arc::make_mut(&mut layer.map), name, &mask, intensity)?;
    let changed = match edit {
        Edit::Stroke { axis, points, tool } => {
            let (shape, value) = match tool {
                Tool::Eraser => (
                    BrushShape::Disk(orientation_for(&geometry, *axis)),
                    PaintValue::Erase(None),
                ),
                Tool::Sphere => (BrushShape::Sphere, PaintValue::Label(label)),
                _ => (
                    BrushShape::Disk(orientation_for(&geometry, *axis)),
                    PaintValue::Label(label),
                ),
            };
            let stroke = BrushStroke {
                shape,
                radius_mm: settings.brush_radius_mm,
                points_in_world: points.iter().map(|p| Point3::from(*p)).collect(),
            };
            paint_stroke(&mut gesture, &stroke, value)?
        }
        Edit::Fill { axis, at } => {
            let seed = nearest_voxel(&geometry, &Point3::from(*at))?;
            fill_in_slice(
                &mut gesture,
                orientation_for(&geometry, *axis),
                seed,
                PaintValue::Label(label),
            )?
        }
        Edit::Scissors { axis, polygon } => {
            let polygon: Vec<Point3<f64>> = polygon.iter().map(|p| Point3::from(*p)).collect();
            scissors(
                &mut gesture,
                orientation_for(&geometry, *axis),
                &polygon,
                ScissorsSide::Inside,
                None,
                PaintValue::Erase(None),
            )?
        }
    };
    let delta = gesture.finish();
    layer.record(delta);
    Ok(changed)
}

/// A label's display colour as straight RGBA (for the views and the table).
pub fn label_color(map: &LabelMap, value: u16) -> Option<Rgba> {
    map.table.get(value).filter(|l| l.visible).map(|l| l.color)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer() -> LabelLayer {
        let g = VolumeGeometry::axis_aligned([20, 20, 10], [1.0, 1.0, 2.0], [0.0; 3])
            .expect("valid grid");
        LabelLayer::empty(1, g)
    }

    fn count(layer: &LabelLayer, value: u16) -> usize {
        layer
            .map
            .volume
            .data()
            .iter()
            .filter(|&&v| v == value)
            .count()
    }

    /// Paints label 3 with a 2 mm brush at (10, 10) on the axial slice at z = 8 mm; returns
    /// the voxels changed.
    fn paint_dab(layer: &mut LabelLayer) -> usize {
        let settings = ToolSettings {
            brush_radius_mm: 2.0,
            active_label: 3,
            ..Default::default()
        };
        let edit = Edit::Stroke {
            axis: ViewAxis::Axial,
            points: vec![[10.0, 10.0, 8.0]],
            tool: Tool::Brush,
        };
        apply_edit(layer, None, &settings, &edit).expect("painted")
    }

    #[test]
    fn a_snapshot_shares_the_map_until_an_edit_copies_it() {
        let mut layer = layer();
        // What a save or a job takes: the same map, no voxel copied.
        let snapshot = Arc::clone(&layer.map);
        assert!(Arc::ptr_eq(&snapshot, &layer.map));
        paint_dab(&mut layer);
        assert!(!Arc::ptr_eq(&snapshot, &layer.map), "the edit wrote a copy");
        assert_eq!(count(&layer, 3), 13);
        assert!(
            snapshot.volume.data().iter().all(|&v| v == 0),
            "the snapshot keeps the labels as they were when it was taken"
        );
        // With no snapshot held, edits happen in place.
        drop(snapshot);
        let before = Arc::as_ptr(&layer.map);
        layer.undo().expect("undo");
        assert_eq!(Arc::as_ptr(&layer.map), before);
        assert_eq!(count(&layer, 3), 0);
    }

    #[test]
    fn a_stroke_paints_a_disk_on_one_slice_and_undo_restores_the_map() {
        let mut layer = layer();
        let changed = paint_dab(&mut layer);
        // Voxel centres within 2 mm of (10, 10) on a 1 mm grid: the 13-voxel digital disk.
        assert_eq!(changed, 13);
        assert_eq!(count(&layer, 3), 13);
        let slice_k = 4; // z = 8 mm at 2 mm spacing
        let on_slice = (0..20 * 20)
            .filter(|&n| layer.map.volume.data()[slice_k * 400 + n] == 3)
            .count();
        assert_eq!(on_slice, 13, "the disk stays on the slice it was drawn on");
        assert!(layer.map.table.get(3).is_some(), "a new label gets a row");
        let before = layer.revision;
        layer.undo().expect("undo");
        assert_eq!(count(&layer, 3), 0);
        assert!(layer.revision > before);
        layer.redo().expect("redo");
        assert_eq!(count(&layer, 3), 13);
    }

    #[test]
    fn the_editable_range_limits_painting_to_matching_intensities() {
        let mut layer = layer();
        let g = layer.map.geometry().clone();
        // Left half (i < 10) is 100, right half 0.
        let image = Volume::from_fn(g, |[i, _, _]| if i < 10 { 100.0 } else { 0.0 });
        let settings = ToolSettings {
            brush_radius_mm: 30.0,
            editable_range: Some((50.0, 150.0)),
            ..Default::default()
        };
        let edit = Edit::Stroke {
            axis: ViewAxis::Axial,
            points: vec![[10.0, 10.0, 0.0]],
            tool: Tool::Brush,
        };
        apply_edit(&mut layer, Some(&image), &settings, &edit).expect("painted");
        assert_eq!(
            count(&layer, 1),
            10 * 20,
            "only the 100-valued half of slice 0"
        );
    }

    #[test]
    fn fill_floods_the_inside_of_a_drawn_ring_and_scissors_cut_through_all_slices() {
        let mut layer = layer();
        // A square ring of label 1 on slice k = 0, from (5..=15) with a hollow inside.
        for i in 5..=15 {
            for j in 5..=15 {
                if i == 5 || i == 15 || j == 5 || j == 15 {
                    Arc::make_mut(&mut layer.map).volume.set(i, j, 0, 1);
                }
            }
        }
        let settings = ToolSettings {
            active_label: 2,
            ..Default::default()
        };
        let fill = Edit::Fill {
            axis: ViewAxis::Axial,
            at: [10.0, 10.0, 0.0],
        };
        let changed = apply_edit(&mut layer, None, &settings, &fill).expect("filled");
        assert_eq!(changed, 9 * 9);
        // Scissors over the left half of the field of view erase every label there, all slices.
        for k in 0..10 {
            Arc::make_mut(&mut layer.map).volume.set(2, 2, k, 1);
        }
        let cut = Edit::Scissors {
            axis: ViewAxis::Axial,
            polygon: vec![
                [-1.0, -1.0, 0.0],
                [7.5, -1.0, 0.0],
                [7.5, 21.0, 0.0],
                [-1.0, 21.0, 0.0],
            ],
        };
        apply_edit(&mut layer, None, &settings, &cut).expect("cut");
        for k in 0..10 {
            assert_eq!(layer.map.volume.at(2, 2, k), 0, "slice {k}");
        }
        assert_eq!(layer.map.volume.at(15, 10, 0), 1, "the right side stays");
        assert_eq!(layer.history.undo_len(), 2);
    }
}
