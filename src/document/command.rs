//! Everything the user can ask for, as plain data. `ui` produces these; `app` applies them
//! (starting jobs for the slow ones) and `Document::apply` handles the rest.

use super::display::WindowLevel;
use super::labels::{Edit, Tool};
use super::slice::ViewAxis;
use super::viewing::{MeasureTool, Measurement, ViewSettings};
use super::workflow::{
    ExportFormat, Layout, MeshSettings, PreprocessOp, PrintProfile, QaMode, RegistrationMethod,
    Selection, ViewKind,
};
use crate::volume::Rgba;
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

    // Layout and selection.
    SetLayout(Layout),
    /// Maximise a view, or return to four-up when it already is (double-click, `M`).
    ToggleMaximize(ViewKind),
    Select(Option<Selection>),

    // Segment (whole-volume tools run as jobs in `app`).
    /// Show voxels of the label map's reference image in `[low, high]` as a live preview.
    SetThresholdPreview(Option<(f32, f32)>),
    /// Threshold the reference image into the active label (app-level job).
    ApplyThreshold {
        low: f32,
        high: f32,
    },
    /// The range region growing accepts (used by the grow tool's clicks).
    SetGrowRange((f32, f32)),
    /// Grow the active label from a seed (world LPS mm) through the grow range (app-level job).
    GrowRegion {
        seed: [f64; 3],
    },
    /// Segment the reference image with a model's manifest (app-level job on the inference lane).
    RunModel(PathBuf),
    SetConfidenceOverlay(bool),
    /// Keep only the largest connected piece of the active label (app-level job).
    KeepLargestIsland,
    /// Fill the active label between the slices where it was drawn (app-level job).
    InterpolateSlices(ViewAxis),

    // Edit.
    SetTool(Tool),
    SetActiveLabel(u16),
    SetBrushRadius(f64),
    SetEditableRange(Option<(f32, f32)>),
    SetOverwriteOtherLabels(bool),
    /// A brush stroke, fill or scissors cut: one undoable gesture.
    Edit(Edit),
    Undo,
    Redo,
    /// Add a new label with the next free value and make it active.
    AddLabel,
    RenameLabel(u16, String),
    SetLabelColor(u16, Rgba),
    SetLabelVisible(u16, bool),
    SetLabelOpacity(f32),

    // Mesh & export.
    SetMeshSettings(u16, MeshSettings),
    SetPrintProfile(u16, PrintProfile),
    /// Build the surfaces of every visible label (app-level job).
    BuildMeshes,
    /// Build and write the model (app-level job); the accuracy report comes with it.
    ExportModel {
        path: PathBuf,
        format: ExportFormat,
    },

    // Register.
    /// Start reviewing a registration of `moving` onto `fixed` (indices into the volumes).
    BeginRegistration {
        fixed: usize,
        moving: usize,
    },
    SetRegistrationMethod(RegistrationMethod),
    /// Run the chosen method from the current (possibly nudged) transform (app-level job).
    RunRegistration,
    /// Move the moving image by hand: millimetres and degrees about the world axes.
    NudgeRegistration {
        translate_mm: [f64; 3],
        rotate_deg: [f64; 3],
    },
    SetQaMode(QaMode),
    SetRegistrationConfidence(bool),
    /// Add a landmark pair: the cursor in the fixed image and its match in the moving one.
    AddLandmark {
        fixed: [f64; 3],
        moving: [f64; 3],
    },
    AcceptRegistration,
    RejectRegistration,

    // Preprocess.
    /// Run one step on a volume; the result is added as a new volume (app-level job).
    Preprocess {
        volume: usize,
        op: PreprocessOp,
    },

    /// Stop a running task (app-level).
    CancelTask(u64),

    // View tab and measurements.
    /// Transfer function, projection, crop box and scene content of the 3D view; slice fusion.
    SetViewSettings(ViewSettings),
    /// Choose the measuring tool for slice clicks (`None` returns clicks to the editing tool).
    SetMeasureTool(Option<MeasureTool>),
    /// Store a measurement (an empty name gets "Distance 3"-style numbering).
    AddMeasurement(Measurement),
    DeleteMeasurement(usize),

    // Project files, crash recovery, report and screenshots (all app-level jobs).
    /// Save to the open project's folder (the window asks for one first when there is none).
    SaveProject,
    /// Save as the project folder `path` (`.fuseprint` added); an existing one is replaced
    /// only after the user confirms.
    SaveProjectAs(PathBuf),
    /// Open a project folder (or its project.json), replacing what is open.
    OpenProject(PathBuf),
    /// The user's answer to the question the window asked (replace a file, quit unsaved).
    AnswerQuestion(bool),
    /// Recover (true) or discard (false) the crashed session offered at start.
    RecoverSession(bool),
    /// Close the recovery offer without deciding ("Later": it is offered again next start).
    PostponeRecovery,
    /// Write the one-page HTML planning report to `path`.
    WriteReport(PathBuf),
    /// Save a PNG of one view as it is shown.
    Screenshot {
        view: ViewKind,
        path: PathBuf,
    },
}
