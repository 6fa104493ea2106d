//! Layer 3: the application's state as plain data, and the commands that change it.
//!
//! No egui, no wgpu, no files: the whole window's behaviour can be driven and checked here with
//! `Command`s alone. `ui` reads a `&Document` and returns `Command`s; `app` applies them.

pub mod autosave;
pub mod command;
pub mod display;
pub mod project;
pub mod slice;

pub use command::Command;
pub use display::{auto_window, WindowLevel, WindowPreset, CT_DEFAULT, CT_PRESETS};
pub use slice::{SlicePlane, ViewAxis};

use crate::io::LoadedImage;
use crate::volume::resample::trilinear_at;
use crate::volume::IntensityUnit;
use nalgebra::Point3;
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
    /// The last error or notice for the user (e.g. why a file could not be opened).
    pub message: Option<String>,
    /// Bumped on every change a view depends on.
    pub revision: u64,
    next_volume_id: u64,
}

impl Document {
    pub fn new() -> Self {
        Self::default()
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
            | Command::BrowseFolder(_) => return,
        }
        self.revision += 1;
    }
}

#[cfg(test)]
mod tests;
