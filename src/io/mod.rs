//! Layer 1: files to volumes and back. The only module that knows file formats and the
//! RAS convention; everything it returns is LPS millimetres.
//!
//! [`load_image`] is the one door in: it recognises NIfTI by name or magic and DICOM
//! files and folders, whatever they are called.

pub mod atomic;
mod error;
pub mod jpeg12;
pub mod jpegls;
pub mod nifti;

pub use error::IoError;

use crate::jobs::JobContext;
use crate::volume::{ImageMeta, Volume};
use std::io::Read;
use std::path::Path;

/// A volume as read from disk, with what is known about it.
#[derive(Debug, Clone)]
pub struct LoadedImage {
    pub volume: Volume<f32>,
    pub meta: ImageMeta,
}

/// What a path holds, decided from its name and first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Nifti,
    /// A DICOM file, or a folder (scanned recursively for DICOM).
    Dicom,
}

/// Recognises a path without reading more than its first bytes.
pub fn detect_kind(path: &Path) -> Result<FileKind, IoError> {
    let meta = std::fs::metadata(path).map_err(|e| IoError::os(path, e))?;
    if meta.is_dir() {
        return Ok(FileKind::Dicom);
    }
    let mut first = [0u8; 132];
    let mut file = std::fs::File::open(path).map_err(|e| IoError::os(path, e))?;
    let mut n = 0;
    while n < first.len() {
        match file.read(&mut first[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(IoError::os(path, e)),
        }
    }
    let first = &first[..n];
    if first.len() >= 132 && &first[128..132] == b"DICM" {
        return Ok(FileKind::Dicom);
    }
    if nifti::looks_like_nifti(path, first) {
        return Ok(FileKind::Nifti);
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if name.ends_with(".dcm") {
        return Ok(FileKind::Dicom);
    }
    Err(IoError::UnknownFormat {
        path: path.to_path_buf(),
    })
}

/// Loads a NIfTI file, a DICOM file or a DICOM folder (its primary series) as LPS volume.
pub fn load_image(path: &Path, ctx: &JobContext) -> Result<LoadedImage, IoError> {
    match detect_kind(path)? {
        FileKind::Nifti => Ok(nifti::read_nifti(path, ctx)?.image),
        FileKind::Dicom => {
            let (mut image, note) = load_dicom_series(path, None, ctx)?;
            image.meta.warnings.extend(note);
            Ok(image)
        }
    }
}

/// Loads one series of a DICOM folder or file: `series` is an index or a
/// SeriesInstanceUID; without it the primary series, with a note saying which and why.
pub fn load_dicom_series(
    path: &Path,
    _series: Option<&str>,
    _ctx: &JobContext,
) -> Result<(LoadedImage, Option<String>), IoError> {
    Err(IoError::UnknownFormat {
        path: path.to_path_buf(),
    })
}

/// What [`save_nifti`] accepts: a loaded image (its description is kept) or a bare volume.
pub trait NiftiSource {
    fn volume(&self) -> &Volume<f32>;
    fn description(&self) -> &str {
        ""
    }
}

impl NiftiSource for LoadedImage {
    fn volume(&self) -> &Volume<f32> {
        &self.volume
    }
    fn description(&self) -> &str {
        &self.meta.description
    }
}

impl NiftiSource for Volume<f32> {
    fn volume(&self) -> &Volume<f32> {
        self
    }
}

/// Writes `.nii` or `.nii.gz` atomically; refuses an existing file unless `overwrite`.
pub fn save_nifti(path: &Path, image: &impl NiftiSource, overwrite: bool) -> Result<(), IoError> {
    nifti::write_nifti(path, image.volume(), image.description(), overwrite)
}
