//! Why a file could not be read or written. Every message names the file, last.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum IoError {
    #[error("no such file or folder: {path}")]
    NotFound { path: PathBuf },
    #[error("{source}: {path}")]
    Os {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("not a DICOM file ({reason}): {path}")]
    NotDicom { path: PathBuf, reason: String },
    #[error("DICOM file has no pixel data: {path}")]
    NoPixelData { path: PathBuf },
    #[error("unsupported transfer syntax {name} ({uid}): {path}")]
    UnsupportedTransferSyntax {
        uid: String,
        name: String,
        path: PathBuf,
    },
    #[error("unsupported image ({reason}): {path}")]
    UnsupportedImage { path: PathBuf, reason: String },
    #[error("file is truncated or corrupt ({reason}): {path}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("no DICOM images found among {files_seen} files: {path}")]
    NoImages { path: PathBuf, files_seen: usize },
    #[error("{count} series found, choose one with --series N or UID:\n{listing}\nin {path}")]
    AmbiguousSeries {
        path: PathBuf,
        count: usize,
        listing: String,
    },
    #[error("no series {wanted} (have {available}): {path}")]
    SeriesNotFound {
        path: PathBuf,
        wanted: String,
        available: String,
    },
    #[error("series cannot be assembled into a volume ({reason}): {path}")]
    BadSeries { path: PathBuf, reason: String },
    #[error("invalid NIfTI ({reason}): {path}")]
    InvalidNifti { path: PathBuf, reason: String },
    #[error("unrecognised file type (expected DICOM, .nii or .nii.gz): {path}")]
    UnknownFormat { path: PathBuf },
    #[error("refusing to overwrite existing file (use --force): {path}")]
    WouldOverwrite { path: PathBuf },
    #[error("cancelled")]
    Cancelled,
}

impl From<crate::jobs::Cancelled> for IoError {
    fn from(_: crate::jobs::Cancelled) -> Self {
        IoError::Cancelled
    }
}

impl IoError {
    pub fn os(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            IoError::NotFound { path }
        } else {
            IoError::Os { path, source }
        }
    }
}
