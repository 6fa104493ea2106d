//! The project: everything a planning session produced, as plain data, and its conversion
//! to and from the project folder that `io::project` writes.
//!
//! A [`Project`] holds the images with their roles (fixed CT, moving MRI, derived), the
//! label maps with their tables and print profiles, the transforms (4×4, LPS mm, fixed →
//! moving as ITK has it), the meshes, the view state, the measurements, the registration
//! report and the accuracy report. Members are shared (`Arc`), so building a project from the
//! open document copies no voxels.
//!
//! Saving and opening are slow (compression): call [`Project::to_contents`] on the UI thread
//! (cheap) and hand the result to a job running [`save_contents`]; open with [`open`] in a
//! job and apply the returned project with [`Project::into_document`] (also in the job: it
//! computes display statistics).

use super::{Document, NewVolume, Overlay, ViewState, WindowLevel};
use crate::export::PrintProfile;
use crate::io::project::{
    self as files, LabelMember, MeshMember, ProjectContents, TextMember, VolumeMember,
};
use crate::io::LoadedImage;
use crate::jobs::JobContext;
use crate::meshing::report::AccuracyReport;
use crate::volume::{LabelMap, Modality, TriMesh};
use nalgebra::{Matrix4, Vector3};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

pub use crate::io::project::{
    backup_path, with_project_extension, ProjectError, SaveMode, SaveSummary, EXTENSION,
};
pub use crate::measure::{
    angle_deg, distance_mm, label_volumes, region_stats, LabelVolume, MeasureError, Measurement,
    MeasurementKind, Region, RegionStats,
};

/// What an image is for in the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum VolumeRole {
    /// The reference every other image is registered onto (usually the CT).
    Fixed,
    /// Registered onto the fixed image (usually the MRI).
    Moving,
    /// Made from another image of the project (`from` is its index): resampled, denoised, …
    Derived {
        from: Option<usize>,
        operation: String,
    },
    Other,
}

/// Who and what the study is, for the report (empty strings when unknown).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StudyInfo {
    pub patient_name: String,
    pub patient_id: String,
    pub study_date: String,
    pub study_description: String,
    pub institution: String,
}

#[derive(Debug, Clone)]
pub struct ProjectVolume {
    pub name: String,
    pub role: VolumeRole,
    pub image: Arc<LoadedImage>,
    /// The window the user set; `None` takes the default at open.
    pub window: Option<WindowLevel>,
}

#[derive(Debug, Clone)]
pub struct ProjectLabelMap {
    pub name: String,
    pub map: Arc<LabelMap>,
    /// Print settings per label value.
    pub print_profiles: BTreeMap<u16, PrintProfile>,
    /// Index of the image it was drawn on.
    pub reference_volume: Option<usize>,
}

/// A linear transform: ITK's convention, mapping fixed physical (LPS) points to moving ones.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectTransform {
    pub name: String,
    pub fixed: Option<usize>,
    pub moving: Option<usize>,
    pub moving_from_fixed: Matrix4<f64>,
    /// Centre of rotation (only matters to tools that re-optimise it).
    pub centre_mm: [f64; 3],
}

#[derive(Debug, Clone)]
pub struct ProjectMesh {
    pub name: String,
    pub label: Option<u16>,
    /// Index of the label map it was built from.
    pub label_map: Option<usize>,
    pub mesh: Arc<TriMesh>,
    pub profile: Option<PrintProfile>,
}

/// How the views looked, so a reopened project looks the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectView {
    pub active: Option<usize>,
    /// (volume index, opacity) of the fused overlay.
    pub overlay: Option<(usize, f32)>,
    /// The linked crosshair (slice positions), world LPS mm.
    pub cursor_world: [f64; 3],
    /// Zoom and pan of the axial, coronal and sagittal views.
    pub zoom: [f32; 3],
    pub pan_mm: [[f64; 2]; 3],
    /// Fusion mode name as the UI knows it ("blend", "checkerboard", …).
    #[serde(default)]
    pub fusion_mode: String,
    /// Layout name as the UI knows it ("four-up", "axial", …).
    #[serde(default)]
    pub layout: String,
}

impl Default for ProjectView {
    fn default() -> Self {
        Self {
            active: None,
            overlay: None,
            cursor_world: [0.0; 3],
            zoom: [1.0; 3],
            pan_mm: [[0.0; 2]; 3],
            fusion_mode: "blend".into(),
            layout: "four-up".into(),
        }
    }
}

/// The registration's figures as the registration module reported them. Kept as JSON
/// because those types are write-only (the project stores them, it never recomputes them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RegistrationRecord {
    /// `registration::RegistrationReport`.
    pub report: serde_json::Value,
    /// `registration::qa::TreSummary`, when landmarks or fiducials were available.
    #[serde(default)]
    pub tre: Option<serde_json::Value>,
    /// `registration::qa::ConfidenceSummary`.
    #[serde(default)]
    pub confidence: Option<serde_json::Value>,
}

impl RegistrationRecord {
    pub fn new(
        report: &crate::registration::RegistrationReport,
        tre: Option<&crate::registration::qa::TreSummary>,
        confidence: Option<&crate::registration::qa::ConfidenceSummary>,
    ) -> Self {
        let json = |v: serde_json::Result<serde_json::Value>| v.unwrap_or_default();
        Self {
            report: json(serde_json::to_value(report)),
            tre: tre.map(|t| json(serde_json::to_value(t))),
            confidence: confidence.map(|c| json(serde_json::to_value(c))),
        }
    }
}

/// Everything a planning session produced.
#[derive(Debug, Clone, Default)]
pub struct Project {
    pub study: StudyInfo,
    pub volumes: Vec<ProjectVolume>,
    pub label_maps: Vec<ProjectLabelMap>,
    pub transforms: Vec<ProjectTransform>,
    pub meshes: Vec<ProjectMesh>,
    pub view: ProjectView,
    pub measurements: Vec<Measurement>,
    pub registration: Option<RegistrationRecord>,
    pub accuracy: Option<AccuracyReport>,
}

// ---------------------------------------------------------------------------------------
// The scene as stored in project.json

#[derive(Debug, Serialize, Deserialize)]
struct Scene {
    #[serde(default)]
    study: StudyInfo,
    #[serde(default)]
    volumes: Vec<VolumeScene>,
    #[serde(default)]
    label_maps: Vec<LabelMapScene>,
    #[serde(default)]
    transforms: Vec<TransformScene>,
    #[serde(default)]
    meshes: Vec<MeshScene>,
    #[serde(default)]
    view: ProjectView,
    #[serde(default)]
    measurements: Vec<Measurement>,
    #[serde(default)]
    registration: Option<RegistrationRecord>,
    #[serde(default)]
    accuracy: Option<AccuracyReport>,
}

#[derive(Debug, Serialize, Deserialize)]
struct VolumeScene {
    key: String,
    name: String,
    #[serde(flatten)]
    role: VolumeRole,
    window: Option<[f32; 2]>,
}

#[derive(Debug, Serialize, Deserialize)]
struct LabelMapScene {
    key: String,
    name: String,
    print_profiles: BTreeMap<u16, PrintProfile>,
    reference_volume: Option<usize>,
}

#[derive(Debug, Serialize, Deserialize)]
struct TransformScene {
    name: String,
    fixed: Option<usize>,
    moving: Option<usize>,
    /// Row-major 4×4, as shortest round-trip decimal strings (exact in any JSON reader).
    moving_from_fixed: [[String; 4]; 4],
    centre_mm: [String; 3],
    /// The same transform as an ITK text file in the project folder.
    itk_file: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct MeshScene {
    key: String,
    name: String,
    label: Option<u16>,
    label_map: Option<usize>,
    profile: Option<PrintProfile>,
}

fn exact(v: f64) -> String {
    format!("{v:?}")
}

/// `"07-head_CT"`: position first (unique, keeps the order), then a readable name.
fn member_key(index: usize, name: &str) -> String {
    let safe: String = crate::export::file_safe(name).chars().take(40).collect();
    format!("{index:02}-{safe}")
}

impl Project {
    /// Builds the project's scene and member list (cheap: shares the voxels).
    pub fn to_contents(&self) -> ProjectContents {
        let mut contents = ProjectContents::default();
        let mut scene = Scene {
            study: self.study.clone(),
            volumes: Vec::new(),
            label_maps: Vec::new(),
            transforms: Vec::new(),
            meshes: Vec::new(),
            view: self.view.clone(),
            measurements: self.measurements.clone(),
            registration: self.registration.clone(),
            accuracy: self.accuracy.clone(),
        };
        for (i, v) in self.volumes.iter().enumerate() {
            let key = member_key(i, &v.name);
            contents.volumes.push(VolumeMember {
                key: key.clone(),
                image: v.image.clone(),
            });
            scene.volumes.push(VolumeScene {
                key,
                name: v.name.clone(),
                role: v.role.clone(),
                window: v.window.map(|w| [w.center, w.width]),
            });
        }
        for (i, m) in self.label_maps.iter().enumerate() {
            let key = member_key(i, &m.name);
            contents.label_maps.push(LabelMember {
                key: key.clone(),
                map: m.map.clone(),
            });
            scene.label_maps.push(LabelMapScene {
                key,
                name: m.name.clone(),
                print_profiles: m.print_profiles.clone(),
                reference_volume: m.reference_volume,
            });
        }
        for (i, t) in self.transforms.iter().enumerate() {
            let itk_file = format!("{}.tfm", member_key(i, &t.name));
            contents.texts.push(TextMember {
                file_name: itk_file.clone(),
                text: crate::registration::transform::itk_affine_text(
                    &t.moving_from_fixed,
                    &Vector3::from(t.centre_mm),
                ),
            });
            let m = &t.moving_from_fixed;
            scene.transforms.push(TransformScene {
                name: t.name.clone(),
                fixed: t.fixed,
                moving: t.moving,
                moving_from_fixed: [0, 1, 2, 3].map(|r| [0, 1, 2, 3].map(|c| exact(m[(r, c)]))),
                centre_mm: t.centre_mm.map(exact),
                itk_file,
            });
        }
        for (i, m) in self.meshes.iter().enumerate() {
            let key = member_key(i, &m.name);
            contents.meshes.push(MeshMember {
                key: key.clone(),
                mesh: m.mesh.clone(),
            });
            scene.meshes.push(MeshScene {
                key,
                name: m.name.clone(),
                label: m.label,
                label_map: m.label_map,
                profile: m.profile.clone(),
            });
        }
        // Every field is plain data with string keys: encoding cannot fail.
        contents.scene = serde_json::to_value(&scene).unwrap_or_default();
        contents
    }

    /// Rebuilds a project from what `io::project::open_project` read from `folder`.
    pub fn from_contents(contents: ProjectContents, folder: &Path) -> Result<Self, ProjectError> {
        let manifest = folder.join(files::MANIFEST_FILE);
        let bad = |reason: String| ProjectError::BadManifest {
            reason,
            path: manifest.clone(),
        };
        let scene: Scene =
            serde_json::from_value(contents.scene).map_err(|e| bad(format!("scene: {e}")))?;
        let mut project = Project {
            study: scene.study,
            view: scene.view,
            measurements: scene.measurements,
            registration: scene.registration,
            accuracy: scene.accuracy,
            ..Default::default()
        };
        for v in scene.volumes {
            let member = contents
                .volumes
                .iter()
                .find(|m| m.key == v.key)
                .ok_or_else(|| bad(format!("volume {:?} has no member", v.key)))?;
            project.volumes.push(ProjectVolume {
                name: v.name,
                role: v.role,
                image: member.image.clone(),
                window: v.window.map(|[c, w]| WindowLevel::new(c, w)),
            });
        }
        for m in scene.label_maps {
            let member = contents
                .label_maps
                .iter()
                .find(|l| l.key == m.key)
                .ok_or_else(|| bad(format!("label map {:?} has no member", m.key)))?;
            project.label_maps.push(ProjectLabelMap {
                name: m.name,
                map: member.map.clone(),
                print_profiles: m.print_profiles,
                reference_volume: m.reference_volume,
            });
        }
        for t in scene.transforms {
            let num = |s: &String| {
                s.parse::<f64>()
                    .map_err(|_| bad(format!("transform {:?}: {s:?} is not a number", t.name)))
            };
            let mut m = Matrix4::identity();
            for r in 0..4 {
                for c in 0..4 {
                    m[(r, c)] = num(&t.moving_from_fixed[r][c])?;
                }
            }
            let centre_mm = [
                num(&t.centre_mm[0])?,
                num(&t.centre_mm[1])?,
                num(&t.centre_mm[2])?,
            ];
            project.transforms.push(ProjectTransform {
                name: t.name,
                fixed: t.fixed,
                moving: t.moving,
                moving_from_fixed: m,
                centre_mm,
            });
        }
        for m in scene.meshes {
            let member = contents
                .meshes
                .iter()
                .find(|x| x.key == m.key)
                .ok_or_else(|| bad(format!("mesh {:?} has no member", m.key)))?;
            project.meshes.push(ProjectMesh {
                name: m.name,
                label: m.label,
                label_map: m.label_map,
                mesh: member.mesh.clone(),
                profile: m.profile,
            });
        }
        Ok(project)
    }

    /// The images, view and measurements of the open document. The caller adds what the
    /// document does not hold itself (label maps, transforms, meshes, reports, study).
    pub fn from_document(doc: &Document) -> Self {
        let first_ct = doc
            .volumes
            .iter()
            .position(|v| v.image.meta.modality == Modality::Ct);
        let first_mr = doc
            .volumes
            .iter()
            .position(|v| v.image.meta.modality == Modality::Mr);
        let volumes = doc
            .volumes
            .iter()
            .enumerate()
            .map(|(i, v)| ProjectVolume {
                name: if v.image.meta.description.is_empty() {
                    format!("{} {}", v.image.meta.modality.code(), i + 1)
                } else {
                    v.image.meta.description.clone()
                },
                role: if Some(i) == first_ct {
                    VolumeRole::Fixed
                } else if Some(i) == first_mr && first_ct.is_some() {
                    VolumeRole::Moving
                } else {
                    VolumeRole::Other
                },
                image: v.image.clone(),
                window: Some(v.window),
            })
            .collect();
        Self {
            volumes,
            view: ProjectView {
                active: doc.active,
                overlay: doc.overlay.map(|o| (o.volume, o.opacity)),
                cursor_world: doc.cursor_world,
                zoom: doc.views.map(|v| v.zoom),
                pan_mm: doc.views.map(|v| v.pan_mm),
                ..Default::default()
            },
            measurements: doc.measurements.clone(),
            ..Default::default()
        }
    }

    /// A document showing this project's images as they were saved. Computes display
    /// statistics, so call it in the open job, not on the UI thread.
    pub fn into_document(self) -> Document {
        let mut doc = Document::new();
        for v in self.volumes {
            // Unique right after `open`, so this moves rather than copies the voxels.
            let image = Arc::try_unwrap(v.image).unwrap_or_else(|shared| (*shared).clone());
            let index = doc.add_volume(NewVolume::prepare(image));
            if let (Some(window), Some(entry)) = (v.window, doc.volumes.get_mut(index)) {
                entry.window = window;
            }
        }
        let count = doc.volumes.len();
        if let Some(active) = self.view.active.filter(|a| *a < count) {
            doc.active = Some(active);
        }
        doc.overlay = self
            .view
            .overlay
            .filter(|(v, _)| *v < count)
            .map(|(volume, opacity)| Overlay { volume, opacity });
        doc.cursor_world = self.view.cursor_world;
        doc.measurements = self.measurements;
        for (axis, view) in doc.views.iter_mut().enumerate() {
            *view = ViewState {
                zoom: self.view.zoom[axis],
                pan_mm: self.view.pan_mm[axis],
            };
        }
        doc.revision += 1;
        doc
    }

    /// Label volumes of every label map, in map order.
    pub fn label_volumes(&self) -> Vec<(String, Vec<LabelVolume>)> {
        self.label_maps
            .iter()
            .map(|m| (m.name.clone(), label_volumes(&m.map)))
            .collect()
    }
}

/// Writes prepared contents as the project folder `folder` (run it in a job).
pub fn save_contents(
    contents: &ProjectContents,
    folder: &Path,
    mode: SaveMode,
    ctx: &JobContext,
) -> Result<SaveSummary, ProjectError> {
    files::save_project(folder, contents, mode, ctx)
}

/// Saves `project` (a convenience for headless callers: the app prepares the contents on
/// the UI thread and runs [`save_contents`] in a job).
pub fn save(
    project: &Project,
    folder: &Path,
    mode: SaveMode,
    ctx: &JobContext,
) -> Result<SaveSummary, ProjectError> {
    save_contents(&project.to_contents(), folder, mode, ctx)
}

/// Opens a project folder (or its `project.json`); run it in a job.
pub fn open(path: &Path, ctx: &JobContext) -> Result<Project, ProjectError> {
    let folder = files::project_folder(path);
    let contents = files::open_project(&folder, ctx)?;
    Project::from_contents(contents, &folder)
}

/// The bundled sample study as a whole project: CT (fixed) and MR (moving) with the true
/// transform between them, the four labels with clinical print profiles, meshes of the
/// lesion and the vessel with their accuracy report, and a few measurements. For the
/// "open the sample" path, the report's preview and tests; builds meshes, so run it in a job.
pub fn sample_project(ctx: &JobContext) -> Result<Project, crate::meshing::MeshingError> {
    use crate::sample::{self, SampleStudy};
    ctx.set_stage("Generating the sample study");
    let study = SampleStudy::generate();
    ctx.set_progress(0.3);
    let labels = Arc::new(study.labels);
    let print_profiles: BTreeMap<u16, PrintProfile> = labels
        .table
        .iter()
        .map(|l| (l.value, PrintProfile::clinical_default(&l.name, l.color)))
        .collect();
    let parts = [sample::LABEL_LESION, sample::LABEL_VESSEL];
    let params = crate::meshing::MeshingParams::default();
    let surfaces =
        crate::meshing::label_surfaces(&labels, Some(&parts[..]), &params, &ctx.sub(0.3, 0.9))?;
    let accuracy = crate::meshing::report::accuracy_report(
        &labels,
        &surfaces,
        crate::meshing::report::DEFAULT_BUDGET_MM,
    );
    let meshes = surfaces
        .into_iter()
        .map(|s| ProjectMesh {
            profile: print_profiles.get(&s.label).cloned(),
            name: s.name,
            label: Some(s.label),
            label_map: Some(0),
            mesh: Arc::new(s.mesh),
        })
        .collect();
    let lesion = sample::LESION_CENTER_MM;
    let r = sample::LESION_RADIUS_MM;
    let ct_window = super::CT_DEFAULT;
    let project = Project {
        study: StudyInfo {
            patient_name: "Phantom^Sample".into(),
            patient_id: "FP-SAMPLE-0001".into(),
            study_date: String::new(),
            study_description: "Synthetic head CT + MR (bundled sample)".into(),
            institution: String::new(),
        },
        volumes: vec![
            ProjectVolume {
                name: "Sample CT".into(),
                role: VolumeRole::Fixed,
                image: Arc::new(study.ct),
                window: Some(ct_window),
            },
            ProjectVolume {
                name: "Sample MR".into(),
                role: VolumeRole::Moving,
                image: Arc::new(study.mr),
                window: None,
            },
        ],
        label_maps: vec![ProjectLabelMap {
            name: "Anatomy".into(),
            map: labels,
            print_profiles,
            reference_volume: Some(0),
        }],
        transforms: vec![ProjectTransform {
            name: "MR to CT (ground truth)".into(),
            fixed: Some(0),
            moving: Some(1),
            moving_from_fixed: study.mr_world_from_ct_world,
            centre_mm: [0.0; 3],
        }],
        meshes,
        view: ProjectView {
            active: Some(0),
            overlay: Some((1, 0.4)),
            cursor_world: lesion,
            ..Default::default()
        },
        measurements: vec![
            Measurement {
                name: "Lesion diameter".into(),
                kind: MeasurementKind::Distance {
                    a_mm: [lesion[0] - r, lesion[1], lesion[2]],
                    b_mm: [lesion[0] + r, lesion[1], lesion[2]],
                },
            },
            Measurement {
                name: "Lesion HU".into(),
                kind: MeasurementKind::RegionStats {
                    volume: 0,
                    region: Region::Sphere {
                        centre_mm: lesion,
                        radius_mm: r * 0.8,
                    },
                    label_map: None,
                },
            },
            Measurement {
                name: "Lesion volume".into(),
                kind: MeasurementKind::LabelVolume {
                    label_map: 0,
                    value: sample::LABEL_LESION,
                },
            },
        ],
        registration: None,
        accuracy: Some(accuracy),
    };
    ctx.set_progress(1.0);
    Ok(project)
}

// ---------------------------------------------------------------------------------------
// The planning report

/// What the report shows besides the project itself.
#[derive(Debug, Clone, Default)]
pub struct ReportOptions {
    pub title: String,
    /// When it was generated, as it should be shown.
    pub generated: String,
    pub anonymise: bool,
    /// Pictures from the GPU views (screenshots); when empty, CPU pictures are drawn:
    /// three fused slices through the cursor and the model seen from the front.
    pub images: Vec<ReportImage>,
}

pub use crate::export::report::{PlanningReport, ReportImage};

fn registration_figures(record: &RegistrationRecord) -> crate::export::report::RegistrationFigures {
    use crate::export::report::{ConfidenceFigures, RegistrationFigures, TreFigures};
    let r = &record.report;
    let num =
        |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_f64()).unwrap_or(f64::NAN);
    let text = |v: &serde_json::Value, k: &str| match v.get(k) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) if !other.is_null() => other.to_string(),
        _ => String::new(),
    };
    let t = r.get("translation_mm").and_then(|t| t.as_array());
    let ti = |i: usize| {
        t.and_then(|t| t.get(i))
            .and_then(|x| x.as_f64())
            .unwrap_or(f64::NAN)
    };
    RegistrationFigures {
        method: text(r, "kind"),
        metric: text(r, "metric"),
        success: r.get("success").and_then(|x| x.as_bool()).unwrap_or(false),
        failure_reason: r
            .get("failure_reason")
            .and_then(|x| x.as_str())
            .map(str::to_string),
        metric_initial: num(r, "metric_initial"),
        metric_final: num(r, "metric_final"),
        rotation_deg: num(r, "rotation_deg"),
        translation_mm: [ti(0), ti(1), ti(2)],
        iterations: r.get("iterations").and_then(|x| x.as_u64()).unwrap_or(0) as usize,
        duration_secs: num(r, "duration_secs"),
        tre: record.tre.as_ref().map(|t| TreFigures {
            points: t.get("points").and_then(|x| x.as_u64()).unwrap_or(0) as usize,
            mean_mm: num(t, "mean_mm"),
            rms_mm: num(t, "rms_mm"),
            max_mm: num(t, "max_mm"),
        }),
        confidence: record.confidence.as_ref().map(|c| ConfidenceFigures {
            regions: c.get("regions").and_then(|x| x.as_u64()).unwrap_or(0) as usize,
            confident_fraction: num(c, "confident_fraction"),
            mean_confidence: num(c, "mean_confidence"),
        }),
    }
}

impl Project {
    /// The fixed image, else the first one.
    fn base_volume(&self) -> Option<(usize, &ProjectVolume)> {
        self.volumes
            .iter()
            .enumerate()
            .find(|(_, v)| v.role == VolumeRole::Fixed)
            .or_else(|| self.volumes.iter().enumerate().next())
    }

    /// CPU pictures for the report: axial, coronal and sagittal slices through the cursor
    /// (the moving image fused in through its transform, labels tinted) and the model.
    pub fn report_pictures(&self) -> Vec<ReportImage> {
        use crate::export::report::{slice_png, SliceOverlay, SlicePlane};
        let mut images = Vec::new();
        if let Some((base_index, base)) = self.base_volume() {
            let window = base.window.map(|w| (w.center, w.width)).unwrap_or_else(|| {
                let w = super::auto_window(&base.image.volume);
                (w.center, w.width)
            });
            let moving = self
                .volumes
                .iter()
                .enumerate()
                .find(|(i, v)| *i != base_index && v.role == VolumeRole::Moving);
            let overlay = moving.map(|(mi, m)| {
                let transform = self
                    .transforms
                    .iter()
                    .find(|t| t.fixed == Some(base_index) && t.moving == Some(mi))
                    .map(|t| t.moving_from_fixed)
                    .unwrap_or_else(Matrix4::identity);
                let w = m
                    .window
                    .unwrap_or_else(|| super::auto_window(&m.image.volume));
                SliceOverlay {
                    volume: &m.image.volume,
                    window: (w.center, w.width),
                    opacity: 0.45,
                    moving_from_fixed: transform,
                }
            });
            let labels = self
                .label_maps
                .iter()
                .find(|m| m.reference_volume == Some(base_index))
                .or(self.label_maps.first())
                .map(|m| &*m.map);
            let through = self.view.cursor_world;
            let fused = if overlay.is_some() {
                "CT + MR fused"
            } else {
                "Slice"
            };
            for (plane, name) in [
                (SlicePlane::Axial, "axial"),
                (SlicePlane::Coronal, "coronal"),
                (SlicePlane::Sagittal, "sagittal"),
            ] {
                let png = slice_png(
                    &base.image.volume,
                    window,
                    overlay,
                    labels,
                    plane,
                    through,
                    512,
                );
                if !png.is_empty() {
                    images.push(ReportImage {
                        caption: format!(
                            "{fused}, {name} through ({:.0}, {:.0}, {:.0}) mm LPS",
                            through[0], through[1], through[2]
                        ),
                        png,
                    });
                }
            }
        }
        let parts: Vec<(&TriMesh, crate::volume::Rgba)> = self
            .meshes
            .iter()
            .map(|m| {
                let color = m
                    .profile
                    .as_ref()
                    .map(|p| p.color)
                    .unwrap_or(crate::volume::Rgba::rgb(220, 220, 220));
                (&*m.mesh, color)
            })
            .collect();
        if !parts.is_empty() {
            let png = crate::export::report::model_png(&parts, 512);
            if !png.is_empty() {
                images.push(ReportImage {
                    caption: "Printed model, seen from the front (print colours)".into(),
                    png,
                });
            }
        }
        images
    }

    /// The planning report's figures for this project. Draws CPU pictures when
    /// `options.images` is empty (a second or so: run it in a job).
    pub fn planning_report(&self, options: ReportOptions) -> PlanningReport {
        use crate::export::report::{
            AccuracyFigures, LabelVolumeRow, MeasurementRow, PartAccuracyRow, ProfileRow,
            ReportStudy,
        };
        let images = if options.images.is_empty() {
            self.report_pictures()
        } else {
            options.images
        };
        let mut label_rows = Vec::new();
        for m in &self.label_maps {
            for v in label_volumes(&m.map) {
                label_rows.push(LabelVolumeRow {
                    map: m.name.clone(),
                    color: m
                        .map
                        .table
                        .get(v.value)
                        .map(|l| l.color)
                        .unwrap_or(crate::volume::Rgba::rgb(128, 128, 128)),
                    name: v.name,
                    voxels: v.voxel_count,
                    volume_ml: v.volume_ml,
                });
            }
        }
        let mesh_color = |name: &str, label: Option<u16>| {
            self.meshes
                .iter()
                .find(|m| m.name == name || (label.is_some() && m.label == label))
                .and_then(|m| m.profile.as_ref().map(|p| p.color))
        };
        let accuracy = self.accuracy.as_ref().map(|a| AccuracyFigures {
            budget_mm: a.budget_mm,
            rule: a.rule.clone(),
            parts: a
                .parts
                .iter()
                .map(|p| PartAccuracyRow {
                    name: p.name.clone(),
                    color: mesh_color(&p.name, p.label),
                    faces: p.faces,
                    mean_mm: p.mean_mm,
                    p95_mm: p.p95_mm,
                    max_mm: p.max_mm,
                    volume_difference_percent: p.volume_difference_percent,
                    watertight: p.check.watertight,
                    manifold: p.check.manifold,
                    over_budget: p.over_budget,
                })
                .collect(),
        });
        // The printed parts' profiles; without meshes, every labelled structure's.
        let mut profiles: Vec<ProfileRow> = self
            .meshes
            .iter()
            .filter_map(|m| {
                m.profile.as_ref().map(|p| ProfileRow {
                    part: m.name.clone(),
                    material: p.material.clone(),
                    color: p.color,
                    // `as`: the profile's field types differ between branches being unified.
                    infill_percent: p.infill_percent as f32,
                    wall_count: p.wall_count as u32,
                    extruder: p.extruder as u32,
                })
            })
            .collect();
        if profiles.is_empty() {
            for m in &self.label_maps {
                for (value, p) in &m.print_profiles {
                    profiles.push(ProfileRow {
                        part: m
                            .map
                            .table
                            .get(*value)
                            .map(|l| l.name.clone())
                            .unwrap_or_else(|| format!("Label {value}")),
                        material: p.material.clone(),
                        color: p.color,
                        // `as`: the profile's field types differ between branches being unified.
                        infill_percent: p.infill_percent as f32,
                        wall_count: p.wall_count as u32,
                        extruder: p.extruder as u32,
                    });
                }
            }
        }
        let measurements = self
            .measurements
            .iter()
            .map(|m| MeasurementRow {
                name: m.name.clone(),
                value: self.measurement_text(m),
            })
            .collect();
        PlanningReport {
            title: if options.title.is_empty() {
                "Surgical planning report".into()
            } else {
                options.title
            },
            generated: options.generated,
            study: ReportStudy {
                patient_name: self.study.patient_name.clone(),
                patient_id: self.study.patient_id.clone(),
                study_date: self.study.study_date.clone(),
                study_description: self.study.study_description.clone(),
                institution: self.study.institution.clone(),
            },
            anonymise: options.anonymise,
            images,
            registration: self.registration.as_ref().map(registration_figures),
            label_volumes: label_rows,
            accuracy,
            profiles,
            measurements,
        }
    }

    /// A measurement's value with its unit, evaluated on this project's images.
    pub fn measurement_text(&self, m: &Measurement) -> String {
        if let Some(text) = m.geometric_value_text() {
            return text;
        }
        match &m.kind {
            MeasurementKind::RegionStats {
                volume,
                region,
                label_map,
            } => {
                let Some(v) = self.volumes.get(*volume) else {
                    return format!("image {volume} is not in the project");
                };
                let unit = if v.image.meta.unit == crate::volume::IntensityUnit::Hounsfield {
                    " HU"
                } else {
                    ""
                };
                let labels = label_map
                    .and_then(|i| self.label_maps.get(i))
                    .map(|m| &*m.map);
                match region_stats(&v.image.volume, region, labels) {
                    Ok(s) => format!(
                        "mean {:.1}{unit}, sd {:.1}{unit}, median {:.1}{unit}, range {:.0} to {:.0}{unit}; {} voxels, {:.2} ml",
                        s.mean, s.sd, s.median, s.min, s.max, s.voxel_count, s.volume_ml
                    ),
                    Err(e) => e.to_string(),
                }
            }
            MeasurementKind::LabelVolume { label_map, value } => {
                match self.label_maps.get(*label_map) {
                    Some(m) => label_volumes(&m.map)
                        .into_iter()
                        .find(|l| l.value == *value)
                        .map(|l| format!("{:.2} ml ({} voxels)", l.volume_ml, l.voxel_count))
                        .unwrap_or_else(|| "0 ml (label not present)".into()),
                    None => format!("label map {label_map} is not in the project"),
                }
            }
            _ => String::new(),
        }
    }
}
