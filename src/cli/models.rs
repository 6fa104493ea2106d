//! `fuseprint models`: the models fuseprint can find and the engine that would run them.

use crate::inference::{init_backend, BackendRequest, Manifest};
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct ModelsArgs {
    /// Extra folders to search for manifests (besides models/ and tests/models/).
    #[arg(long)]
    pub dir: Vec<PathBuf>,
    /// Inference engine to start: auto, tract, onnxruntime.
    #[arg(long)]
    pub backend: Option<String>,
}

/// `models/` and `tests/models/` under the current folder and beside the executable.
fn search_dirs(extra: &[PathBuf]) -> Vec<PathBuf> {
    let mut roots = vec![PathBuf::from(".")];
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        roots.push(dir);
    }
    let mut dirs: Vec<PathBuf> = extra.to_vec();
    for root in roots {
        dirs.push(root.join("models"));
        dirs.push(root.join("tests/models"));
    }
    dirs.retain(|d| d.is_dir());
    dirs.dedup_by(|a, b| a.canonicalize().ok() == b.canonicalize().ok());
    dirs
}

pub fn run(args: &ModelsArgs) -> anyhow::Result<()> {
    let mut found = 0;
    for dir in search_dirs(&args.dir) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json" || e == "onnx"))
            .collect();
        entries.sort();
        for path in entries {
            if path.extension().is_some_and(|e| e == "onnx") {
                if !path.with_extension("json").is_file() {
                    println!(
                        "{}: no manifest ({} missing)",
                        path.display(),
                        path.with_extension("json").display()
                    );
                }
                continue;
            }
            match Manifest::load(&path) {
                Ok(m) => {
                    found += 1;
                    let onnx = m.model_path();
                    let labels: Vec<&str> = m.labels.iter().map(|l| l.name.as_str()).collect();
                    println!(
                        "{:<18} {:?} [{}] {} labels: {}  ({}{})",
                        m.name,
                        m.task,
                        m.modality.join(", "),
                        labels.len(),
                        labels.join(", "),
                        path.display(),
                        if onnx.is_file() {
                            ""
                        } else {
                            "; model file missing"
                        }
                    );
                }
                Err(e) => println!("{}: {e}", path.display()),
            }
        }
    }
    if found == 0 {
        println!("no models found (looked in models/ and tests/models/)");
    }
    let request = match &args.backend {
        Some(b) => BackendRequest::parse(b)?,
        None => BackendRequest::from_env()?,
    };
    let backend = init_backend(&request)?;
    println!("backend: {}", backend.summary());
    if let Some(reason) = &backend.fallback_reason {
        println!("  ONNX Runtime not used: {reason}");
    }
    Ok(())
}
