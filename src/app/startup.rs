//! Found once at start, on a worker: the inference engine that will run models, and the
//! segmentation models (manifests) in `models/` and `tests/models/` beside the working folder
//! or the executable.

use crate::document::ModelEntry;
use crate::inference::{init_backend, BackendRequest, InferenceError, Manifest, Task};
use std::path::{Path, PathBuf};

/// (engine summary, models found), for the engine `request` asks for.
pub fn discover(request: Result<BackendRequest, InferenceError>) -> (String, Vec<ModelEntry>) {
    let backend = request
        .and_then(|request| init_backend(&request))
        .map(|info| info.summary())
        .unwrap_or_else(|e| format!("unavailable: {e}"));
    (backend, find_models(&search_dirs()))
}

fn search_dirs() -> Vec<PathBuf> {
    let mut roots = vec![PathBuf::from(".")];
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        roots.push(dir);
    }
    roots
        .iter()
        .flat_map(|r| [r.join("models"), r.join("tests/models")])
        .collect()
}

/// Segmentation manifests whose model file exists (others could not run).
pub fn find_models(dirs: &[PathBuf]) -> Vec<ModelEntry> {
    let mut out: Vec<ModelEntry> = Vec::new();
    for dir in dirs {
        let Ok(entries) = crate::io::browse::list_folder(dir) else {
            continue;
        };
        for entry in entries {
            if entry.is_folder || !entry.name.ends_with(".json") {
                continue;
            }
            let Ok(manifest) = Manifest::load(&entry.path) else {
                continue;
            };
            if manifest.task != Task::Segmentation || !manifest.model_path().is_file() {
                continue;
            }
            if out.iter().any(|m| m.name == manifest.name) {
                continue;
            }
            out.push(ModelEntry {
                name: manifest.name.clone(),
                manifest_path: entry.path.clone(),
                labels: manifest.labels.iter().map(|l| l.name.clone()).collect(),
                modality: manifest.modality.join("/"),
            });
        }
    }
    out
}
