//! The window's files: what a saved project holds of the open session (images, the label
//! map, accepted transforms, meshes, print profiles, reports) and how an opened project
//! becomes the window's state again; the planning report, view screenshots and the
//! recent-files list. Everything here that reads or writes runs in a job.

use crate::document::project::{
    self, Project, ProjectLabelMap, ProjectMesh, ProjectTransform, RegistrationRecord,
    ReportOptions, SaveMode, SaveSummary, StudyInfo,
};
use crate::document::{Document, LabelLayer, MeshEntry, TransformEntry};
use crate::jobs::{JobContext, JobError};
use crate::volume::Rgba;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How many paths the recent-files menu keeps.
pub const RECENT_LIMIT: usize = 8;
const RECENT_FILE: &str = "recent.json";

/// What a project holds that the document does not: kept by the app between open and save,
/// so a re-save does not lose the patient's details or the registration's figures.
#[derive(Debug, Clone, Default)]
pub struct ProjectExtras {
    pub study: StudyInfo,
    pub registration: Option<RegistrationRecord>,
}

/// A finished file job, ready for the app.
pub enum FileOutcome {
    Saved {
        summary: SaveSummary,
        /// The app's change counter when the snapshot was taken.
        change: u64,
    },
    Opened(Box<OpenedProject>),
    ReportWritten {
        path: PathBuf,
        pictures: usize,
        /// Which renderer drew the 3D pictures.
        drawn: super::report_pictures::Drawn,
    },
    ScreenshotWritten(PathBuf),
}

/// An opened project as the window's state.
pub struct OpenedProject {
    pub document: Document,
    pub extras: ProjectExtras,
    pub folder: PathBuf,
    /// Whether it came from a crashed session's autosave (then it has no folder of its own).
    pub recovered: bool,
}

fn failed(e: impl std::fmt::Display) -> JobError {
    JobError::Failed(e.to_string())
}

fn project_error(e: project::ProjectError) -> JobError {
    match e {
        project::ProjectError::Cancelled => JobError::Cancelled,
        other => failed(other),
    }
}

/// The open session as a project. Shares the images and meshes; copies the label map (the
/// document edits it in place), so call it once per save, not per frame.
pub fn project_of(doc: &Document, extras: &ProjectExtras) -> Project {
    let mut project = Project::from_document(doc);
    project.study = extras.study.clone();
    project.registration = extras.registration.clone();
    let index_of = |id: u64| doc.volumes.iter().position(|v| v.id == id);
    if let Some(layer) = &doc.labels {
        let name = doc
            .label_reference()
            .map(|(_, v)| format!("Labels on {}", v.image.meta.description))
            .unwrap_or_else(|| "Labels".to_string());
        project.label_maps.push(ProjectLabelMap {
            name,
            map: Arc::clone(&layer.map),
            print_profiles: doc.mesh_plan.profiles.clone(),
            reference_volume: index_of(layer.volume_id),
        });
    }
    for t in &doc.transforms {
        let fixed = index_of(t.fixed_id);
        let centre_mm = fixed
            .and_then(|i| doc.volumes.get(i))
            .map(|v| {
                let c = v.image.volume.geometry().center_world();
                [c.x, c.y, c.z]
            })
            .unwrap_or([0.0; 3]);
        project.transforms.push(ProjectTransform {
            name: t.name.clone(),
            fixed,
            moving: index_of(t.moving_id),
            moving_from_fixed: t.moving_from_fixed,
            centre_mm,
        });
    }
    let has_labels = doc.labels.is_some();
    for m in &doc.meshes {
        let profile = m
            .label
            .map(|label| doc.mesh_plan.profile(label, &m.name, m.color));
        project.meshes.push(ProjectMesh {
            name: m.name.clone(),
            label: m.label,
            label_map: (has_labels && m.label.is_some()).then_some(0),
            mesh: Arc::clone(&m.mesh),
            profile,
        });
    }
    project.accuracy = doc.accuracy.clone();
    project
}

/// The window's state for a project: images and view (by `Project::into_document`), then
/// the first label map, the transforms (applied to their moving images), meshes, print
/// profiles and the accuracy report. Computes display statistics: run it in a job.
pub fn document_of(mut project: Project) -> (Document, ProjectExtras) {
    let extras = ProjectExtras {
        study: project.study.clone(),
        registration: project.registration.take(),
    };
    let label_maps = std::mem::take(&mut project.label_maps);
    let transforms = std::mem::take(&mut project.transforms);
    let meshes = std::mem::take(&mut project.meshes);
    let accuracy = project.accuracy.take();
    let mut doc = project.into_document();
    let id_of =
        |doc: &Document, index: Option<usize>| index.and_then(|i| doc.volumes.get(i)).map(|v| v.id);
    if let Some(first) = label_maps.into_iter().next() {
        let reference = id_of(&doc, first.reference_volume)
            .or_else(|| doc.active_volume().map(|v| v.id))
            .unwrap_or(0);
        let mut layer = LabelLayer::empty(reference, first.map.geometry().clone());
        layer.map = first.map;
        doc.labels = Some(layer);
        doc.mesh_plan.profiles = first.print_profiles;
    }
    for t in transforms {
        let (Some(fixed_id), Some(moving_id)) = (id_of(&doc, t.fixed), id_of(&doc, t.moving))
        else {
            continue;
        };
        if let Some(moving) = t.moving.and_then(|i| doc.volumes.get_mut(i)) {
            moving.moving_from_fixed = Some(t.moving_from_fixed);
        }
        doc.transforms.push(TransformEntry {
            name: t.name,
            fixed_id,
            moving_id,
            moving_from_fixed: t.moving_from_fixed,
            figures: Vec::new(),
        });
    }
    for m in meshes {
        let color = m
            .profile
            .as_ref()
            .map(|p| p.color)
            .or_else(|| {
                let layer = doc.labels.as_ref()?;
                Some(layer.map.table.get(m.label?)?.color)
            })
            .unwrap_or(Rgba::rgb(220, 220, 220));
        doc.meshes.push(MeshEntry {
            volume_ml: m.mesh.signed_volume_mm3().abs() / 1000.0,
            name: m.name,
            label: m.label,
            color,
            mesh: m.mesh,
        });
    }
    doc.accuracy = accuracy;
    doc.revision += 1;
    (doc, extras)
}

/// Opens a project folder into the window's state.
pub fn open_project(path: &Path, ctx: &JobContext) -> Result<OpenedProject, JobError> {
    ctx.set_stage("Reading the project");
    let project = project::open(path, &ctx.sub(0.0, 0.9)).map_err(project_error)?;
    ctx.set_stage("Preparing the views");
    let (document, extras) = document_of(project);
    ctx.set_progress(1.0);
    Ok(OpenedProject {
        document,
        extras,
        folder: crate::io::project::project_folder(path),
        recovered: false,
    })
}

/// Writes a project snapshot prepared on the UI thread.
pub fn save_project(
    contents: crate::io::project::ProjectContents,
    folder: PathBuf,
    mode: SaveMode,
    change: u64,
    ctx: &JobContext,
) -> Result<FileOutcome, JobError> {
    ctx.set_stage("Saving the project");
    let summary = project::save_contents(&contents, &folder, mode, ctx).map_err(project_error)?;
    ctx.set_progress(1.0);
    Ok(FileOutcome::Saved { summary, change })
}

/// Draws the report's pictures (fused slices through the cursor, the model) and writes the
/// page atomically; `path` was confirmed by the user if it existed.
pub fn write_report(
    project: Project,
    title: String,
    path: PathBuf,
    ctx: &JobContext,
) -> Result<FileOutcome, JobError> {
    ctx.set_stage("Drawing the pictures");
    let (images, drawn) = super::report_pictures::report_pictures(&project);
    ctx.check_cancelled()?;
    ctx.set_progress(0.6);
    let report = project.planning_report(ReportOptions {
        title,
        generated: crate::export::report::today_utc(),
        anonymise: false,
        images,
    });
    ctx.check_cancelled()?;
    ctx.set_progress(0.8);
    ctx.set_stage("Writing the report");
    crate::export::report::write_report(&path, &report, true).map_err(failed)?;
    ctx.set_progress(1.0);
    Ok(FileOutcome::ReportWritten {
        pictures: report.images.len(),
        path,
        drawn,
    })
}

/// Encodes straight RGBA pixels as a PNG and writes it atomically.
pub fn write_png(
    rgba: Vec<u8>,
    size: [usize; 2],
    path: PathBuf,
    ctx: &JobContext,
) -> Result<FileOutcome, JobError> {
    ctx.set_stage("Encoding PNG");
    let [w, h] = size;
    let image = image::RgbaImage::from_raw(w as u32, h as u32, rgba)
        .ok_or_else(|| failed(format!("screenshot pixels do not match {w}×{h}")))?;
    let mut png = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| failed(format!("cannot encode the PNG ({e}): {}", path.display())))?;
    ctx.check_cancelled()?;
    crate::export::write_atomic(&path, true, |w| std::io::Write::write_all(w, &png))
        .map_err(failed)?;
    ctx.set_progress(1.0);
    Ok(FileOutcome::ScreenshotWritten(path))
}

/// Whether `path` names a project (a `.fuseprint` folder or a project's manifest), so
/// opening it, dropping it or picking it from the recent list opens the project.
pub fn is_project_path(path: &Path) -> bool {
    let folder = crate::io::project::project_folder(path);
    folder
        .extension()
        .is_some_and(|e| e == crate::io::project::EXTENSION)
        || folder.join("project.json").is_file()
}

/// The last opened paths, newest first, persisted as JSON in the user's config folder.
#[derive(Debug, Clone, Default)]
pub struct RecentFiles {
    pub paths: Vec<PathBuf>,
    /// Where the list lives; `None` keeps it in memory only (no home folder).
    pub file: Option<PathBuf>,
}

impl RecentFiles {
    /// The per-user list's location (`~/.config/fuseprint/recent.json`).
    pub fn per_user_file() -> Option<PathBuf> {
        crate::io::settings::config_dir().map(|d| d.join(RECENT_FILE))
    }

    /// Reads the list (run it in a job). A damaged list is dropped, not an error the user
    /// must handle: it only remembers where files were.
    pub fn load(file: Option<PathBuf>) -> Self {
        let paths = file
            .as_deref()
            .and_then(|f| crate::io::settings::read_text(f).ok().flatten())
            .and_then(|text| serde_json::from_str::<Vec<PathBuf>>(&text).ok())
            .unwrap_or_default();
        Self { paths, file }
    }

    /// Puts `path` first (once) and keeps the newest [`RECENT_LIMIT`].
    pub fn add(&mut self, path: &Path) {
        self.paths.retain(|p| p != path);
        self.paths.insert(0, path.to_path_buf());
        self.paths.truncate(RECENT_LIMIT);
    }

    /// The list as it should be written (hand it to [`RecentFiles::store`] in a job).
    pub fn snapshot(&self) -> Option<(PathBuf, String)> {
        let file = self.file.clone()?;
        let text = serde_json::to_string_pretty(&self.paths).ok()?;
        Some((file, text))
    }

    pub fn store(file: &Path, text: &str) -> Result<(), JobError> {
        crate::io::settings::write_text(file, text).map_err(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saving_snapshots_share_the_label_map_instead_of_copying_it() {
        let geometry =
            crate::volume::VolumeGeometry::axis_aligned([64, 64, 32], [1.0; 3], [0.0; 3])
                .expect("grid");
        let mut doc = Document::new();
        doc.labels = Some(crate::document::LabelLayer::empty(0, geometry));
        let project = project_of(&doc, &ProjectExtras::default());
        let contents = project.to_contents();
        let layer = doc.labels.as_ref().expect("labels");
        // What the window thread hands to the save and autosave jobs: the same map.
        assert!(Arc::ptr_eq(&project.label_maps[0].map, &layer.map));
        assert!(Arc::ptr_eq(&contents.label_maps[0].map, &layer.map));
    }

    #[test]
    fn recent_files_keep_the_newest_eight_once_each_and_survive_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("config/recent.json");
        let mut recent = RecentFiles::load(Some(file.clone()));
        assert!(recent.paths.is_empty());
        for n in 0..10 {
            recent.add(Path::new(&format!("/data/{n}.nii.gz")));
        }
        recent.add(Path::new("/data/5.nii.gz"));
        assert_eq!(recent.paths.len(), RECENT_LIMIT);
        assert_eq!(recent.paths[0], PathBuf::from("/data/5.nii.gz"));
        assert_eq!(recent.paths[1], PathBuf::from("/data/9.nii.gz"));
        assert_eq!(
            recent
                .paths
                .iter()
                .filter(|p| p.ends_with("5.nii.gz"))
                .count(),
            1
        );
        let (target, text) = recent.snapshot().expect("has a file");
        RecentFiles::store(&target, &text).expect("writes");
        assert_eq!(RecentFiles::load(Some(file)).paths, recent.paths);
    }

    #[test]
    fn project_paths_are_told_apart_from_images() {
        assert!(is_project_path(Path::new("/somewhere/plan.fuseprint")));
        assert!(is_project_path(Path::new(
            "/somewhere/plan.fuseprint/project.json"
        )));
        assert!(!is_project_path(Path::new("/somewhere/ct.nii.gz")));
    }
}
