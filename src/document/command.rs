//! Everything the user can ask for, as plain data. `ui` produces these; `app` applies them
//! (starting jobs for the slow ones) and `Document::apply` handles the rest.

use super::display::WindowLevel;
use super::slice::ViewAxis;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Open a NIfTI file or a DICOM folder (runs as a job; app-level).
    LoadPath(PathBuf),
    /// Generate and add the bundled sample study (runs as a job; app-level).
    LoadSample,
    /// Stop the running load job (app-level).
    CancelLoad,
    /// Load series `index` of the folder whose series table is shown (app-level).
    SelectSeries(usize),
    /// List a folder in the built-in file browser (app-level; `None` closes the browser).
    BrowseFolder(Option<PathBuf>),
    /// Close the series table without loading anything.
    DismissSeriesChoice,
    SetActiveVolume(usize),
    RemoveVolume(usize),
    /// Move the linked crosshair to a world point (LPS mm).
    SetCursor([f64; 3]),
    /// Move the cursor by whole slices along a view's normal.
    ScrollSlice {
        axis: ViewAxis,
        steps: i32,
    },
    SetWindowLevel {
        volume: usize,
        window: WindowLevel,
    },
    /// Multiply a view's zoom (1 = the whole field of view fits).
    Zoom {
        axis: ViewAxis,
        factor: f32,
    },
    /// Shift a view's image by screen-independent millimetres (right, down).
    Pan {
        axis: ViewAxis,
        delta_mm: [f64; 2],
    },
    /// Blend another volume over the active one (`None` removes the overlay).
    SetOverlay(Option<usize>),
    SetOverlayOpacity(f32),
    ResetViews,
    DismissMessage,
}
