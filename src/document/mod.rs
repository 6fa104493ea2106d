//! Layer 3: the application's state as plain data, and the commands that change it.
//!
//! No egui, no wgpu, no files: the whole window's behaviour can be driven and checked here with
//! `Command`s alone. `ui` reads a `&Document` and returns `Command`s; `app` applies them.

pub mod autosave;
pub mod command;
pub mod display;
pub mod labels;
pub mod project;
pub mod slice;
pub mod status;
pub mod viewing;
pub mod workflow;

pub use crate::volume::{LabelInfo, LabelMap, Rgba};
pub use command::Command;
pub use display::{auto_window, WindowLevel, WindowPreset, CT_DEFAULT, CT_PRESETS};
pub use labels::{Edit, LabelLayer, Tool, ToolSettings};
pub use slice::{SlicePlane, ViewAxis};
pub use status::{Severity, StatusMessage};
pub use viewing::{
    MeasureTool, Measurement, MeasurementKind, Projection3d, RampEdit, Region, RegionShape,
    SceneContent, SliceFusion, TfPoint, ViewSettings,
};
pub use workflow::{
    AccuracyReport, DenoisePreset, ExportFormat, ExportRecord, Layout, MeshEntry, MeshPlan,
    MeshSettings, ModelEntry, PendingRegistration, PreprocessOp, PrintProfile, QaMode,
    RegistrationMethod, Selection, TaskStatus, ThresholdPreset, TransformEntry, ViewKind,
};

use crate::io::LoadedImage;
use crate::volume::resample::trilinear_at;
use crate::volume::IntensityUnit;
use nalgebra::{Matrix4, Point3};
use std::path::PathBuf;
use std::sync::Arc;

/// One loaded image and how it is displayed.
#[derive(Debug, Clone)]
pub struct VolumeEntry {
    /// Unique for the document's lifetime: caches key on it, not on the list position.
    pub id: u64,
    pub image: Arc<LoadedImage>,
    pub window: WindowLevel,
    /// The percentile window computed when it was loaded (the "Auto" preset).
    pub auto_window: WindowLevel,
    /// Smallest and largest value (slider range).
    pub value_range: (f32, f32),
    /// An accepted registration onto another volume: maps world points of the volume it was
    /// registered to onto this one's world, so it is drawn aligned when blended.
    pub moving_from_fixed: Option<Matrix4<f64>>,
}

impl VolumeEntry {
    pub fn is_hounsfield(&self) -> bool {
        self.image.meta.unit == IntensityUnit::Hounsfield
    }

    /// "MR · 210×210×100 · 1.00×1.00×1.50 mm"
    pub fn summary(&self) -> String {
        let g = self.image.volume.geometry();
        let [x, y, z] = g.dims;
        let [sx, sy, sz] = g.spacing_mm;
        format!(
            "{} · {x}×{y}×{z} · {sx:.2}×{sy:.2}×{sz:.2} mm",
            self.image.meta.modality.code()
        )
    }
}

/// A freshly read image with the statistics worked out off the UI thread.
#[derive(Debug, Clone)]
pub struct NewVolume {
    pub image: LoadedImage,
    pub auto_window: WindowLevel,
    pub value_range: (f32, f32),
}

impl NewVolume {
    /// Computes the display statistics (a few ms for a large volume: call it in the load job).
    pub fn prepare(image: LoadedImage) -> Self {
        let auto_window = auto_window(&image.volume);
        let value_range = image.volume.min_max();
        Self {
            image,
            auto_window,
            value_range,
        }
    }
}

/// One row of the series table shown when a folder holds several series.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesRow {
    pub number: String,
    pub modality: String,
    pub description: String,
    pub dims: [usize; 3],
    pub spacing_mm: [f64; 3],
    pub slice_count: usize,
    pub transfer_syntax: String,
    pub warnings: Vec<String>,
}

/// The series of one scanned folder, waiting for the user's pick.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesChoice {
    pub source: String,
    pub rows: Vec<SeriesRow>,
    /// The series a radiologist would most likely want (shown first / highlighted).
    pub suggested: Option<usize>,
}

/// A running load, mirrored from its job handle each frame.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadStatus {
    pub label: String,
    pub fraction: f32,
    pub stage: String,
}

/// One entry of the built-in file browser.
#[derive(Debug, Clone, PartialEq)]
pub struct BrowserEntry {
    pub name: String,
    pub path: PathBuf,
    pub is_folder: bool,
}

/// What the built-in file browser shows (used when no system file dialog is available).
#[derive(Debug, Clone, PartialEq)]
pub struct BrowserListing {
    pub folder: PathBuf,
    pub parent: Option<PathBuf>,
    pub entries: Vec<BrowserEntry>,
    pub error: Option<String>,
}

/// Zoom and pan of one slice view.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ViewState {
    /// 1 = the volume's whole field of view fits the view.
    pub zoom: f32,
    /// Image offset in millimetres along the view's (right, down) axes.
    pub pan_mm: [f64; 2],
}

impl Default for ViewState {
    fn default() -> Self {
        Self {
            zoom: 1.0,
            pan_mm: [0.0, 0.0],
        }
    }
}

/// A second volume blended over the active one (sampled on the same world planes, so it is
/// in effect resampled into the active volume's view).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Overlay {
    /// Index into `Document::volumes`.
    pub volume: usize,
    /// 0 = invisible, 1 = only the overlay where it has data.
    pub opacity: f32,
}

pub const MIN_ZOOM: f32 = 0.25;
pub const MAX_ZOOM: f32 = 32.0;

#[derive(Debug, Clone, Default)]
pub struct Document {
    pub volumes: Vec<VolumeEntry>,
    /// Index into `volumes` of the one the views show.
    pub active: Option<usize>,
    pub overlay: Option<Overlay>,
    /// The linked crosshair, world LPS mm.
    pub cursor_world: [f64; 3],
    /// Axial, coronal, sagittal (indexed by [`ViewAxis::index`]).
    pub views: [ViewState; 3],
    pub loading: Option<LoadStatus>,
    pub series_choice: Option<SeriesChoice>,
    pub browser: Option<BrowserListing>,
    /// The last error or notice for the user (e.g. why a file could not be opened); set it
    /// with [`Document::notify`] so an error stays until dismissed.
    pub message: Option<StatusMessage>,
    /// Bumped on every change a view depends on.
    pub revision: u64,
    next_volume_id: u64,

    pub layout: Layout,
    pub selection: Option<Selection>,
    /// The segmentation being built and corrected.
    pub labels: Option<LabelLayer>,
    pub tools: ToolSettings,
    /// Live threshold preview range (reference image values), while the user drags it.
    pub threshold_preview: Option<(f32, f32)>,
    /// What region growing accepts (reference image values).
    pub grow_range: (f32, f32),
    pub show_confidence: bool,
    /// Segmentation models found beside the program.
    pub models: Vec<ModelEntry>,
    /// The inference engine in use ("tract (pure Rust)", "ONNX Runtime 1.22 …").
    pub backend: Option<String>,
    /// Running jobs other than loads (segment, mesh, export, register, preprocess).
    pub tasks: Vec<TaskStatus>,
    pub meshes: Vec<MeshEntry>,
    pub mesh_plan: MeshPlan,
    pub accuracy: Option<AccuracyReport>,
    pub last_export: Option<ExportRecord>,
    pub registration: Option<PendingRegistration>,
    pub transforms: Vec<TransformEntry>,

    // View tab and measurements.
    /// How the 3D view and the slice overlay are drawn.
    pub view_settings: ViewSettings,
    /// Distances, angles and region statistics placed on the slices (kept by the project).
    pub measurements: Vec<Measurement>,
    /// The measuring tool the slice views' clicks use (`None`: the editing tool's).
    pub measure_tool: Option<MeasureTool>,
}

impl Document {
    pub fn new() -> Self {
        Self::default()
    }

    /// Shows `message` on the status line, unless an error is still waiting to be dismissed
    /// (then `message` only goes to the log).
    pub fn notify(&mut self, message: StatusMessage) {
        if status::keeps_current(self.message.as_ref(), &message) {
            tracing::info!("{}", message.text);
        } else {
            self.message = Some(message);
        }
    }

    pub fn active_volume(&self) -> Option<&VolumeEntry> {
        self.active.and_then(|i| self.volumes.get(i))
    }

    /// The overlay to draw: set, on another volume than the active one, and visible.
    pub fn visible_overlay(&self) -> Option<(&VolumeEntry, f32)> {
        let overlay = self.overlay?;
        if Some(overlay.volume) == self.active || overlay.opacity <= 0.0 {
            return None;
        }
        Some((self.volumes.get(overlay.volume)?, overlay.opacity))
    }

    pub fn cursor_point(&self) -> Point3<f64> {
        Point3::from(self.cursor_world)
    }

    /// Adds a volume; the first one becomes active and centres the cursor on itself.
    pub fn add_volume(&mut self, new: NewVolume) -> usize {
        let window = if new.image.meta.unit == IntensityUnit::Hounsfield {
            CT_DEFAULT
        } else {
            new.auto_window
        };
        self.next_volume_id += 1;
        self.volumes.push(VolumeEntry {
            id: self.next_volume_id,
            image: Arc::new(new.image),
            window,
            auto_window: new.auto_window,
            value_range: new.value_range,
            moving_from_fixed: None,
        });
        let index = self.volumes.len() - 1;
        if self.active.is_none() {
            self.set_active(index);
        }
        self.revision += 1;
        index
    }

    fn set_active(&mut self, index: usize) {
        let Some(entry) = self.volumes.get(index) else {
            return;
        };
        let geometry = entry.image.volume.geometry();
        // Keep the crosshair where it is if it is inside the new volume (same patient, same
        // frame); otherwise centre it, so the views never open on empty slices.
        let inside = slice::clamp_to_volume(geometry, self.cursor_point());
        if (inside - self.cursor_point()).norm() > 1e-6 || self.active.is_none() {
            let c = geometry.center_world();
            self.cursor_world = [c.x, c.y, c.z];
        }
        self.active = Some(index);
        self.views = Default::default();
    }

    /// The volume the label map was made on (its grid, its intensities), with its index.
    pub fn label_reference(&self) -> Option<(usize, &VolumeEntry)> {
        let id = self.labels.as_ref()?.volume_id;
        self.volumes.iter().enumerate().find(|(_, v)| v.id == id)
    }

    /// Creates an empty label map on the active volume's grid if there is none yet.
    pub fn ensure_labels(&mut self) -> Option<&mut LabelLayer> {
        if self.labels.is_none() {
            let entry = self.active_volume()?;
            let mut layer = LabelLayer::empty(entry.id, entry.image.volume.geometry().clone());
            let value = self.tools.active_label.max(1);
            layer.ensure_label(value, &format!("label {value}"));
            self.labels = Some(layer);
        }
        self.labels.as_mut()
    }

    /// How to map a world point of the active view onto volume `index` when it is blended:
    /// the registration under review, else an accepted one, else identity (same frame).
    pub fn overlay_transform(&self, index: usize) -> Option<Matrix4<f64>> {
        if let Some(reg) = &self.registration {
            if reg.moving == index {
                return Some(reg.moving_from_fixed);
            }
        }
        self.volumes.get(index)?.moving_from_fixed
    }

    /// The label value shown as the label map's "active" one and its name.
    pub fn active_label_name(&self) -> String {
        let value = self.tools.active_label;
        self.labels
            .as_ref()
            .and_then(|l| l.map.table.get(value))
            .map(|l| l.name.clone())
            .unwrap_or_else(|| format!("label {value}"))
    }

    /// The plane a view shows for the active volume.
    pub fn slice_plane(&self, axis: ViewAxis) -> Option<SlicePlane> {
        let entry = self.active_volume()?;
        Some(SlicePlane::through(
            entry.image.volume.geometry(),
            axis,
            self.cursor_point(),
        ))
    }

    /// Interpolated value of a volume at a world point; `None` outside it.
    pub fn value_at(&self, volume: usize, world: Point3<f64>) -> Option<f32> {
        let v = &self.volumes.get(volume)?.image.volume;
        trilinear_at(v, v.geometry().voxel_from_world_point(world))
    }

    /// Applies a document-level command. App-level ones (loading, browsing) are ignored here:
    /// `app` handles them before they reach the document.
    pub fn apply(&mut self, command: Command) {
        match command {
            Command::SetCursor(p) => {
                if let Some(entry) = self.active_volume() {
                    let p = slice::clamp_to_volume(entry.image.volume.geometry(), Point3::from(p));
                    self.cursor_world = [p.x, p.y, p.z];
                } else {
                    self.cursor_world = p;
                }
            }
            Command::ScrollSlice { axis, steps } => {
                let Some(entry) = self.active_volume() else {
                    return;
                };
                let geometry = entry.image.volume.geometry();
                let step = slice::slice_step_mm(geometry, axis) * steps as f64;
                let moved = self.cursor_point() + axis.normal_world() * step;
                let p = slice::clamp_to_volume(geometry, moved);
                self.cursor_world = [p.x, p.y, p.z];
            }
            Command::SetWindowLevel { volume, window } => {
                if let Some(entry) = self.volumes.get_mut(volume) {
                    entry.window =
                        WindowLevel::new(window.center, window.width.max(WindowLevel::MIN_WIDTH));
                }
            }
            Command::SetActiveVolume(index) => self.set_active(index),
            Command::RemoveVolume(index) => {
                if index >= self.volumes.len() {
                    return;
                }
                self.volumes.remove(index);
                self.forget_volume_in_measurements(index);
                // Indices shift: a registration under review would point at other images.
                self.registration = None;
                self.selection = None;
                self.overlay = match self.overlay {
                    Some(o) if o.volume == index => None,
                    Some(o) if o.volume > index => Some(Overlay {
                        volume: o.volume - 1,
                        ..o
                    }),
                    other => other,
                };
                self.active = match self.active {
                    _ if self.volumes.is_empty() => None,
                    Some(a) if a > index => Some(a - 1),
                    Some(a) if a == index => Some(index.min(self.volumes.len() - 1)),
                    other => other,
                };
            }
            Command::Zoom { axis, factor } => {
                let view = &mut self.views[axis.index()];
                view.zoom = (view.zoom * factor).clamp(MIN_ZOOM, MAX_ZOOM);
            }
            Command::Pan { axis, delta_mm } => {
                let view = &mut self.views[axis.index()];
                view.pan_mm[0] += delta_mm[0];
                view.pan_mm[1] += delta_mm[1];
            }
            Command::SetOverlay(volume) => {
                let opacity = self.overlay.map(|o| o.opacity).unwrap_or(0.5);
                self.overlay = volume
                    .filter(|v| *v < self.volumes.len())
                    .map(|volume| Overlay { volume, opacity });
            }
            Command::SetOverlayOpacity(opacity) => {
                if let Some(o) = &mut self.overlay {
                    o.opacity = opacity.clamp(0.0, 1.0);
                }
            }
            Command::ResetViews => self.views = Default::default(),
            Command::DismissSeriesChoice => self.series_choice = None,
            Command::DismissMessage => self.message = None,
            Command::LoadPath(_)
            | Command::LoadSample
            | Command::CancelLoad
            | Command::SelectSeries(_)
            | Command::BrowseFolder(_)
            | Command::ApplyThreshold { .. }
            | Command::GrowRegion { .. }
            | Command::RunModel(_)
            | Command::KeepLargestIsland
            | Command::InterpolateSlices(_)
            | Command::BuildMeshes
            | Command::ExportModel { .. }
            | Command::RunRegistration
            | Command::Preprocess { .. }
            | Command::CancelTask(_) => return,
            other => self.apply_workflow(other),
        }
        self.revision += 1;
    }

    /// Layout, segmentation, editing, meshing and registration commands.
    fn apply_workflow(&mut self, command: Command) {
        match command {
            Command::SetLayout(layout) => self.layout = layout,
            Command::ToggleMaximize(view) => self.layout = self.layout.toggled(view),
            Command::Select(selection) => {
                if let Some(Selection::Volume(index)) = selection {
                    self.set_active(index);
                }
                if let Some(Selection::Label(value)) = selection {
                    self.tools.active_label = value;
                }
                self.selection = selection;
            }
            Command::SetThresholdPreview(range) => self.threshold_preview = range,
            Command::SetGrowRange(range) => self.grow_range = range,
            Command::SetConfidenceOverlay(on) => self.show_confidence = on,
            Command::SetTool(tool) => {
                self.tools.tool = tool;
                self.measure_tool = None;
                if tool.edits() {
                    self.ensure_labels();
                }
            }
            Command::SetActiveLabel(value) => self.tools.active_label = value.max(1),
            Command::SetBrushRadius(mm) => {
                if mm.is_finite() {
                    self.tools.brush_radius_mm = mm.clamp(0.1, 100.0);
                }
            }
            Command::SetEditableRange(range) => self.tools.editable_range = range,
            Command::SetOverwriteOtherLabels(on) => self.tools.overwrite_other_labels = on,
            Command::Edit(edit) => self.apply_edit(&edit),
            Command::Undo => self.step_history(true),
            Command::Redo => self.step_history(false),
            Command::AddLabel => {
                if let Some(layer) = self.ensure_labels() {
                    let value = layer.map.table.next_free_value();
                    layer.ensure_label(value, &format!("label {value}"));
                    self.tools.active_label = value;
                    self.selection = Some(Selection::Label(value));
                }
            }
            Command::RenameLabel(value, name) => {
                if let Some(info) = self.label_info_mut(value) {
                    info.name = name;
                }
            }
            Command::SetLabelColor(value, color) => {
                if let Some(info) = self.label_info_mut(value) {
                    info.color = color;
                }
            }
            Command::SetLabelVisible(value, visible) => {
                if let Some(info) = self.label_info_mut(value) {
                    info.visible = visible;
                }
            }
            Command::SetLabelOpacity(opacity) => {
                if let Some(layer) = &mut self.labels {
                    layer.opacity = opacity.clamp(0.0, 1.0);
                }
            }
            Command::SetMeshSettings(label, settings) => {
                self.mesh_plan.settings.insert(label, settings);
            }
            Command::SetPrintProfile(label, profile) => {
                self.mesh_plan.profiles.insert(label, profile);
            }
            Command::BeginRegistration { fixed, moving } => {
                let (Some(f), true) = (self.volumes.get(fixed), moving < self.volumes.len()) else {
                    return;
                };
                if fixed == moving {
                    self.notify(StatusMessage::warning(
                        "choose two different volumes to register",
                    ));
                    return;
                }
                let c = f.image.volume.geometry().center_world();
                let mut pending = PendingRegistration::new(fixed, moving, [c.x, c.y, c.z]);
                if let Some(previous) = &self.registration {
                    pending.method = previous.method;
                }
                self.registration = Some(pending);
                if self.active != Some(fixed) {
                    self.set_active(fixed);
                }
                let opacity = self.overlay.map(|o| o.opacity).unwrap_or(0.5);
                self.overlay = Some(Overlay {
                    volume: moving,
                    opacity,
                });
            }
            Command::SetRegistrationMethod(method) => {
                if let Some(reg) = &mut self.registration {
                    reg.method = method;
                }
            }
            Command::NudgeRegistration {
                translate_mm,
                rotate_deg,
            } => {
                if let Some(reg) = &mut self.registration {
                    reg.nudge(translate_mm, rotate_deg);
                }
            }
            Command::SetQaMode(mode) => {
                if let Some(reg) = &mut self.registration {
                    reg.qa = mode;
                }
            }
            Command::SetRegistrationConfidence(on) => {
                if let Some(reg) = &mut self.registration {
                    reg.show_confidence = on;
                }
            }
            Command::AddLandmark { fixed, moving } => {
                if let Some(reg) = &mut self.registration {
                    reg.landmarks.push((fixed, moving));
                }
            }
            Command::AcceptRegistration => {
                let Some(reg) = self.registration.take() else {
                    return;
                };
                let (Some(fixed_id), Some(moving_id)) = (
                    self.volumes.get(reg.fixed).map(|v| v.id),
                    self.volumes.get(reg.moving).map(|v| v.id),
                ) else {
                    return;
                };
                if let Some(moving) = self.volumes.get_mut(reg.moving) {
                    moving.moving_from_fixed = Some(reg.moving_from_fixed);
                }
                let name = format!(
                    "{} onto {}",
                    short_name(&self.volumes[reg.moving].image.meta.description),
                    short_name(&self.volumes[reg.fixed].image.meta.description)
                );
                self.transforms.push(TransformEntry {
                    name,
                    fixed_id,
                    moving_id,
                    moving_from_fixed: reg.moving_from_fixed,
                    figures: reg.figures,
                });
                self.selection = Some(Selection::Transform(self.transforms.len() - 1));
            }
            Command::RejectRegistration => self.registration = None,
            Command::SetViewSettings(_)
            | Command::SetMeasureTool(_)
            | Command::AddMeasurement(_)
            | Command::DeleteMeasurement(_) => self.apply_viewing(command),
            _ => {}
        }
    }

    /// View tab and measurement commands.
    fn apply_viewing(&mut self, command: Command) {
        match command {
            Command::SetViewSettings(settings) => self.view_settings = settings.sanitised(),
            Command::SetMeasureTool(tool) => {
                self.measure_tool = tool;
                if tool.is_some() {
                    self.tools.tool = Tool::Navigate;
                }
            }
            Command::AddMeasurement(mut m) => {
                if m.name.trim().is_empty() {
                    m.name = self.next_measurement_name(&m.kind);
                }
                self.measurements.push(m);
            }
            Command::DeleteMeasurement(index) => {
                if index < self.measurements.len() {
                    self.measurements.remove(index);
                }
            }
            _ => {}
        }
    }

    /// Region statistics name their image by index: drop those on a removed image and shift
    /// the ones after it.
    fn forget_volume_in_measurements(&mut self, removed: usize) {
        self.measurements.retain_mut(|m| match &mut m.kind {
            MeasurementKind::RegionStats { volume, .. } if *volume == removed => false,
            MeasurementKind::RegionStats { volume, .. } => {
                if *volume > removed {
                    *volume -= 1;
                }
                true
            }
            _ => true,
        });
    }

    /// "Distance 2": the kind and one more than the measurements of that kind so far.
    pub fn next_measurement_name(&self, kind: &MeasurementKind) -> String {
        let word = |k: &MeasurementKind| match k {
            MeasurementKind::Distance { .. } => "Distance",
            MeasurementKind::Angle { .. } => "Angle",
            MeasurementKind::RegionStats { .. } => "Region",
            MeasurementKind::LabelVolume { .. } => "Label volume",
        };
        let same = self
            .measurements
            .iter()
            .filter(|m| word(&m.kind) == word(kind))
            .count();
        format!("{} {}", word(kind), same + 1)
    }

    fn label_info_mut(&mut self, value: u16) -> Option<&mut LabelInfo> {
        Arc::make_mut(&mut self.labels.as_mut()?.map)
            .table
            .get_mut(value)
    }

    fn apply_edit(&mut self, edit: &Edit) {
        if self.ensure_labels().is_none() {
            return;
        }
        let intensity = self.label_reference().map(|(_, v)| Arc::clone(&v.image));
        let settings = self.tools.clone();
        let Some(layer) = self.labels.as_mut() else {
            return;
        };
        let intensity = intensity
            .as_ref()
            .map(|i| &i.volume)
            .filter(|v| v.dims() == layer.map.geometry().dims);
        if let Err(e) = labels::apply_edit(layer, intensity, &settings, edit) {
            self.notify(StatusMessage::warning(format!("edit refused: {e}")));
        }
    }

    fn step_history(&mut self, undo: bool) {
        let Some(layer) = self.labels.as_mut() else {
            return;
        };
        let result = if undo { layer.undo() } else { layer.redo() };
        match result {
            Ok(Some(name)) => {
                let verb = if undo { "Undid" } else { "Redid" };
                self.notify(StatusMessage::info(format!("{verb} {name}")));
            }
            Ok(None) => {}
            Err(e) => self.notify(StatusMessage::error(format!("undo failed: {e}"))),
        }
    }
}

/// First words of a description, for compact names.
fn short_name(text: &str) -> String {
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Replacing the whole document (opening a project, recovering a session).
impl Document {
    /// Renumbers this document's volume ids and revisions to follow `previous`'s, so caches
    /// keyed on them (slice textures, GPU volumes) never take the replacing document's
    /// images for the ones they held before.
    pub fn continue_after(&mut self, previous: &Document) {
        let offset = previous.next_volume_id;
        for v in &mut self.volumes {
            v.id += offset;
        }
        self.next_volume_id += offset;
        if let Some(layer) = &mut self.labels {
            layer.volume_id += offset;
            let before = previous.labels.as_ref().map_or(0, |l| l.revision);
            layer.revision += before + 1;
        }
        for t in &mut self.transforms {
            t.fixed_id += offset;
            t.moving_id += offset;
        }
        self.revision += previous.revision + 1;
    }
}

#[cfg(test)]
mod tests;
