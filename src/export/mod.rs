//! Layer 1: printable parts to files slicers read — STL, OBJ+MTL, PLY and 3MF with the
//! PrusaSlicer and Bambu/Orca sidecars. All coordinates are LPS millimetres.
//!
//! Every file is written to a temporary file in the destination folder and renamed into
//! place, so a crash never leaves half a model; an existing file is replaced only when the
//! caller says `overwrite`.

mod atomic;
pub mod obj;
pub mod ply;
pub mod profile;
pub mod report;
pub mod stl;
pub mod threemf;

pub use atomic::write_atomic;
pub use profile::{suggest_from_hu, HuStats, PrintProfile, ProfileSuggestion};

use crate::volume::{Rgba, TriMesh};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("file exists (pass overwrite to replace it): {path}")]
    Exists { path: PathBuf },
    #[error("{source}: {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write 3MF package ({reason}): {path}")]
    Zip { path: PathBuf, reason: String },
    #[error("unknown model format (expected .stl, .3mf, .obj or .ply): {path}")]
    UnknownFormat { path: PathBuf },
    #[error("nothing to export (no part has triangles): {path}")]
    Empty { path: PathBuf },
    #[error("{what} has {count} vertices, more than the format's 32-bit indices allow: {path}")]
    TooLarge {
        what: String,
        count: usize,
        path: PathBuf,
    },
}

/// One printable part.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportPart {
    pub name: String,
    pub label: Option<u16>,
    pub mesh: TriMesh,
    pub profile: PrintProfile,
}

impl ExportPart {
    pub fn color(&self) -> Rgba {
        self.profile.color
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    StlBinary,
    StlAscii,
    Obj,
    Ply,
    ThreeMf,
}

impl ExportFormat {
    /// From the file extension (`.stl` is binary; ASCII STL is an explicit choice).
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "stl" => Self::StlBinary,
            "obj" => Self::Obj,
            "ply" => Self::Ply,
            "3mf" => Self::ThreeMf,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExportOptions {
    pub overwrite: bool,
    /// Where the model came from (series description, file name); recorded where the format allows.
    pub source: String,
    /// STL/PLY only: one file per part (`stem_<part>.ext`) instead of one merged file.
    pub per_part: bool,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            overwrite: false,
            source: String::new(),
            per_part: false,
        }
    }
}

/// Writes `parts` to `path` in `format`; returns every file written.
pub fn export(
    parts: &[ExportPart],
    path: &Path,
    format: ExportFormat,
    options: &ExportOptions,
) -> Result<Vec<PathBuf>, ExportError> {
    let parts: Vec<&ExportPart> = parts.iter().filter(|p| !p.mesh.is_empty()).collect();
    if parts.is_empty() {
        return Err(ExportError::Empty {
            path: path.to_path_buf(),
        });
    }
    let single = |p: &ExportPart| -> PathBuf {
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("model");
        let ext = path.extension().and_then(|s| s.to_str()).unwrap_or("stl");
        path.with_file_name(format!("{stem}_{}.{ext}", file_safe(&p.name)))
    };
    match format {
        ExportFormat::StlBinary | ExportFormat::StlAscii | ExportFormat::Ply
            if options.per_part && parts.len() > 1 =>
        {
            // Check every target first so a refusal leaves nothing half-written.
            let targets: Vec<PathBuf> = parts.iter().map(|p| single(p)).collect();
            if !options.overwrite {
                if let Some(t) = targets.iter().find(|t| t.exists()) {
                    return Err(ExportError::Exists { path: t.clone() });
                }
            }
            for (p, t) in parts.iter().zip(&targets) {
                write_one(&[*p], t, format, options)?;
            }
            Ok(targets)
        }
        ExportFormat::Obj => obj::write_obj(&parts, path, options),
        _ => {
            write_one(&parts, path, format, options)?;
            Ok(vec![path.to_path_buf()])
        }
    }
}

fn write_one(
    parts: &[&ExportPart],
    path: &Path,
    format: ExportFormat,
    options: &ExportOptions,
) -> Result<(), ExportError> {
    match format {
        ExportFormat::StlBinary => stl::write_binary(parts, path, options),
        ExportFormat::StlAscii => stl::write_ascii(parts, path, options),
        ExportFormat::Ply => ply::write_ply(parts, path, options),
        ExportFormat::ThreeMf => threemf::write_3mf(parts, path, options),
        ExportFormat::Obj => obj::write_obj(parts, path, options).map(|_| ()),
    }
}

/// A part name usable in file names and OBJ/MTL identifiers.
pub fn file_safe(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "part".into()
    } else {
        s
    }
}

/// Writes a small text file (a JSON report, a summary) atomically.
pub fn write_text(path: &Path, text: &str, overwrite: bool) -> Result<(), ExportError> {
    use std::io::Write;
    write_atomic(path, overwrite, |w| w.write_all(text.as_bytes()))
}
