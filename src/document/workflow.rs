//! Document state of the workflow panels: layout and selection, running tasks, meshes and
//! print profiles, registration in progress and accepted transforms, preprocessing choices.
//! Plain data; the work itself runs in `app` jobs.

use super::slice::ViewAxis;
use crate::volume::{Rgba, TriMesh};
use nalgebra::{Matrix4, Rotation3, Translation3, Vector3};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

pub use crate::export::{ExportFormat, PrintProfile};
pub use crate::meshing::AccuracyReport;
pub use crate::preprocess::denoise::DenoisePreset;
pub use crate::segmentation::threshold::ThresholdPreset;

/// One of the four views.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewKind {
    Slice(ViewAxis),
    ThreeD,
}

impl ViewKind {
    pub const ALL: [ViewKind; 4] = [
        ViewKind::Slice(ViewAxis::Axial),
        ViewKind::Slice(ViewAxis::Coronal),
        ViewKind::Slice(ViewAxis::Sagittal),
        ViewKind::ThreeD,
    ];
}

/// Four-up (axial, coronal, sagittal, 3D) or one view maximised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    #[default]
    FourUp,
    Single(ViewKind),
}

impl Layout {
    /// Double-click / `M` on a view: maximise it, or go back to four-up if it already is.
    pub fn toggled(self, view: ViewKind) -> Layout {
        match self {
            Layout::Single(v) if v == view => Layout::FourUp,
            _ => Layout::Single(view),
        }
    }
}

/// What the data panel has selected (the properties panel shows it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    Volume(usize),
    LabelMap,
    Label(u16),
    Mesh(usize),
    Transform(usize),
}

/// A running job as the window shows it (mirrored from its handle each frame).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskStatus {
    pub id: u64,
    pub label: String,
    pub fraction: f32,
    pub stage: String,
}

/// How one label's surface is built.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeshSettings {
    /// Taubin smoothing passes (0 = none).
    pub smoothing_iterations: u32,
    /// Keep this fraction of the triangles (1 = no decimation).
    pub keep_fraction: f32,
}

impl Default for MeshSettings {
    fn default() -> Self {
        Self {
            smoothing_iterations: 20,
            keep_fraction: 1.0,
        }
    }
}

/// A built surface (one label's part).
#[derive(Debug, Clone)]
pub struct MeshEntry {
    pub name: String,
    pub label: Option<u16>,
    pub color: Rgba,
    pub mesh: Arc<TriMesh>,
    /// Enclosed volume, millilitres.
    pub volume_ml: f64,
}

/// The last export, for the panel's read-out.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportRecord {
    pub files: Vec<PathBuf>,
}

/// Which registration to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RegistrationMethod {
    #[default]
    Rigid,
    Affine,
    Deformable,
    /// From point pairs placed in both images.
    Landmarks,
}

impl RegistrationMethod {
    pub const ALL: [RegistrationMethod; 4] = [
        RegistrationMethod::Rigid,
        RegistrationMethod::Affine,
        RegistrationMethod::Deformable,
        RegistrationMethod::Landmarks,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RegistrationMethod::Rigid => "Rigid",
            RegistrationMethod::Affine => "Affine",
            RegistrationMethod::Deformable => "Deformable",
            RegistrationMethod::Landmarks => "Landmarks",
        }
    }
}

/// How the moving image is shown over the fixed one while reviewing a registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QaMode {
    #[default]
    Overlay,
    Checkerboard,
}

/// A registration being set up or reviewed: its current `moving_from_fixed` (the result, or
/// the user's hand-nudged start) waits for Accept or Reject.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingRegistration {
    /// Indices into `Document::volumes`.
    pub fixed: usize,
    pub moving: usize,
    pub method: RegistrationMethod,
    /// Maps fixed world points (LPS mm) to moving world points.
    pub moving_from_fixed: Matrix4<f64>,
    /// Centre of rotation for nudges (the fixed image's centre), world mm.
    pub centre_mm: [f64; 3],
    pub qa: QaMode,
    /// Figures of the last run ("metric −0.41 → −0.62", TRE, …), one per line.
    pub figures: Vec<String>,
    /// Landmark pairs (fixed, moving), world mm.
    pub landmarks: Vec<([f64; 3], [f64; 3])>,
    /// A confidence map of the last run on the fixed grid (1 = reliable).
    pub confidence: Option<Arc<crate::volume::Volume<f32>>>,
    pub show_confidence: bool,
}

impl PendingRegistration {
    pub fn new(fixed: usize, moving: usize, centre_mm: [f64; 3]) -> Self {
        Self {
            fixed,
            moving,
            method: RegistrationMethod::Rigid,
            moving_from_fixed: Matrix4::identity(),
            centre_mm,
            qa: QaMode::Overlay,
            figures: Vec::new(),
            landmarks: Vec::new(),
            confidence: None,
            show_confidence: false,
        }
    }

    /// Moves the moving image by `translate_mm` and turns it by `rotate_deg` about each world
    /// axis (about the centre), as the user sees it on screen.
    pub fn nudge(&mut self, translate_mm: [f64; 3], rotate_deg: [f64; 3]) {
        // The image moves by T: a fixed point now shows what was at T⁻¹(p), so
        // moving_from_fixed becomes M · T⁻¹.
        let c = Vector3::from(self.centre_mm);
        let r = Rotation3::from_euler_angles(
            rotate_deg[0].to_radians(),
            rotate_deg[1].to_radians(),
            rotate_deg[2].to_radians(),
        );
        let image_motion = Translation3::from(Vector3::from(translate_mm) + c).to_homogeneous()
            * r.to_homogeneous()
            * Translation3::from(-c).to_homogeneous();
        if let Some(inverse) = image_motion.try_inverse() {
            self.moving_from_fixed *= inverse;
        }
    }
}

/// A transform the user accepted (shown in the data panel).
#[derive(Debug, Clone, PartialEq)]
pub struct TransformEntry {
    pub name: String,
    pub fixed_id: u64,
    pub moving_id: u64,
    pub moving_from_fixed: Matrix4<f64>,
    pub figures: Vec<String>,
}

/// One preprocessing step; each makes a new volume and keeps the original.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PreprocessOp {
    Denoise(DenoisePreset),
    BiasCorrection,
    /// z-score inside the head/body (Otsu foreground).
    NormaliseZScore,
    /// Resample to isotropic voxels of this size (mm).
    ResampleIsotropic(f64),
    MetalArtefactReduction,
}

impl PreprocessOp {
    pub fn name(&self) -> String {
        match self {
            PreprocessOp::Denoise(p) => format!("denoised ({p:?})").to_lowercase(),
            PreprocessOp::BiasCorrection => "bias corrected".to_string(),
            PreprocessOp::NormaliseZScore => "z-score".to_string(),
            PreprocessOp::ResampleIsotropic(mm) => format!("resampled {mm:.2} mm"),
            PreprocessOp::MetalArtefactReduction => "metal artefacts reduced".to_string(),
        }
    }
}

/// A segmentation model found beside the program, with the labels its manifest declares.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelEntry {
    pub name: String,
    pub manifest_path: PathBuf,
    pub labels: Vec<String>,
    pub modality: String,
}

/// Per-label mesh settings and print profiles, with defaults for labels not yet touched.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MeshPlan {
    pub settings: BTreeMap<u16, MeshSettings>,
    pub profiles: BTreeMap<u16, PrintProfile>,
}

impl MeshPlan {
    pub fn settings(&self, label: u16) -> MeshSettings {
        self.settings.get(&label).copied().unwrap_or_default()
    }

    /// The label's profile: the user's, or the clinical default for its name and colour.
    pub fn profile(&self, label: u16, name: &str, color: Rgba) -> PrintProfile {
        self.profiles
            .get(&label)
            .cloned()
            .unwrap_or_else(|| PrintProfile::clinical_default(name, color))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::Point3;

    #[test]
    fn nudging_moves_the_moving_image_the_way_the_user_dragged() {
        let mut reg = PendingRegistration::new(0, 1, [10.0, 0.0, 0.0]);
        reg.nudge([2.0, 0.0, 0.0], [0.0; 3]);
        // The moving image moved 2 mm to +x: the fixed point at x shows moving's x − 2.
        let p = reg
            .moving_from_fixed
            .transform_point(&Point3::new(5.0, 1.0, 1.0));
        assert!((p - Point3::new(3.0, 1.0, 1.0)).norm() < 1e-12, "{p}");
        // A 90° turn about z around the centre: the centre itself stays put.
        let mut reg = PendingRegistration::new(0, 1, [10.0, 0.0, 0.0]);
        reg.nudge([0.0; 3], [0.0, 0.0, 90.0]);
        let c = reg
            .moving_from_fixed
            .transform_point(&Point3::new(10.0, 0.0, 0.0));
        assert!((c - Point3::new(10.0, 0.0, 0.0)).norm() < 1e-9);
        // The image turned +90°: the fixed point one mm along +y from the centre shows the
        // moving point one mm along +x.
        let q = reg
            .moving_from_fixed
            .transform_point(&Point3::new(10.0, 1.0, 0.0));
        assert!((q - Point3::new(11.0, 0.0, 0.0)).norm() < 1e-9, "{q}");
    }

    #[test]
    fn the_layout_toggles_between_four_up_and_one_view() {
        let axial = ViewKind::Slice(ViewAxis::Axial);
        let single = Layout::FourUp.toggled(axial);
        assert_eq!(single, Layout::Single(axial));
        assert_eq!(single.toggled(axial), Layout::FourUp);
        assert_eq!(
            single.toggled(ViewKind::ThreeD),
            Layout::Single(ViewKind::ThreeD)
        );
    }
}
