//! DICOM import: scan a file or folder, group images into series, load one as an LPS volume.
//!
//! - [`scan`] reads headers only (stops before Pixel Data), in parallel, and groups frames by
//!   series; files that are not usable images are listed in [`DicomScan::skipped`] with a reason.
//! - [`load_series`] decodes one series in parallel into a `Volume<f32>` (HU for CT, via
//!   RescaleSlope/Intercept applied to the raw stored values).
//! - Geometry rules (sorting, tilt, gaps) are in [`geometry`]; series splitting (localizers,
//!   stray orientations/sizes, the regular subset of an irregular stack) in `series`;
//!   Siemens mosaics are cut into slices in [`mosaic`].
//! - Codecs: uncompressed, deflate, RLE, JPEG baseline/lossless and JPEG 2000 through
//!   dicom-pixeldata; JPEG-LS and 12-bit JPEG extended through `io::jpegls` / `io::jpeg12`.
//!
//! MONOCHROME1 images are inverted (stored value `v` becomes `min + max - v` over the stored
//! range, before rescale) so that high always means bright; CT keeps its HU untouched.

mod decode;
pub mod geometry;
mod header;
pub mod mosaic;
mod series;
mod syntax;
pub mod synthetic;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;

pub use geometry::{SliceSource, StackLayout};
pub use header::DicomFrame;
pub use series::Problem;
pub use syntax::transfer_syntax_name;
pub use synthetic::write_synthetic_ct_series;

use super::{IoError, LoadedImage};
use crate::jobs::JobContext;
use crate::volume::{ImageMeta, Modality, Volume, VolumeGeometry};

/// What a folder (or file) holds.
#[derive(Debug, Clone)]
pub struct DicomScan {
    pub root: PathBuf,
    pub series: Vec<SeriesInfo>,
    pub skipped: Vec<SkippedFile>,
}

/// A file that holds no loadable image, and why.
#[derive(Debug, Clone)]
pub struct SkippedFile {
    pub path: PathBuf,
    pub reason: String,
    pub kind: SkipKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipKind {
    NotDicom,
    NoPixelData,
    Corrupt,
    Unsupported,
    Unreadable,
}

/// One row of the series table: enough for `fuseprint info` and for [`load_series`].
#[derive(Debug, Clone)]
pub struct SeriesInfo {
    pub uid: String,
    pub number: Option<i32>,
    pub modality: Modality,
    pub description: String,
    /// Volume size `[i, j, k]` as it will load (after resampling irregular stacks).
    pub dims: [usize; 3],
    pub spacing_mm: [f64; 3],
    /// Nearest plane plus the LPS letters the `i`, `j`, `k` axes point to, e.g. "axial LPS".
    pub orientation: String,
    /// Images (frames) in this row.
    pub slice_count: usize,
    /// Human name(s) of the transfer syntax, e.g. "JPEG 2000 (lossless)".
    pub transfer_syntax: String,
    pub warnings: Vec<String>,
    /// 0 for the main stack of a UID; >0 for localizers / stray images split off from it.
    pub part: usize,
    pub is_localizer: bool,
    /// Acquired frames in slice order (one per distinct position), as `layout.sources` uses them.
    pub frames: Vec<DicomFrame>,
    pub layout: StackLayout,
    /// Set when the series can be listed but not loaded (unsupported syntax, mosaic).
    pub problem: Option<Problem>,
}

impl SeriesInfo {
    pub fn voxel_count(&self) -> usize {
        self.dims.iter().product()
    }
    /// Geometry the loaded volume will have.
    pub fn geometry(&self) -> Result<VolumeGeometry, IoError> {
        let l = &self.layout;
        VolumeGeometry::new(l.dims, l.spacing_mm, l.origin_mm, l.direction).map_err(|e| {
            IoError::BadSeries {
                path: self.first_path(),
                reason: e.to_string(),
            }
        })
    }
    fn first_path(&self) -> PathBuf {
        self.frames
            .first()
            .map(|f| f.path.clone())
            .unwrap_or_default()
    }
}

/// Scan a file or a folder (recursively, any file names, no extension needed), group by series.
pub fn scan(path: &Path, ctx: &JobContext) -> Result<DicomScan, IoError> {
    ctx.set_stage("Scanning DICOM headers");
    let meta = std::fs::metadata(path).map_err(|e| IoError::os(path, e))?;
    let files = if meta.is_dir() {
        let mut files = Vec::new();
        collect_files(path, &mut files)?;
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    let total = files.len();
    let done = AtomicUsize::new(0);
    let headers: Vec<header::FileHeader> = files
        .par_iter()
        .map(|f| {
            ctx.check_cancelled()?;
            let h = header::read_file_header(f);
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            if n % 16 == 0 || n == total {
                ctx.set_steps(n, total);
            }
            Ok(h)
        })
        .collect::<Result<_, IoError>>()?;

    let mut frames = Vec::new();
    let mut skipped = Vec::new();
    let mut skip_errors = Vec::new();
    for (file, h) in files.iter().zip(headers) {
        match h {
            header::FileHeader::Frames(f) => frames.extend(f),
            header::FileHeader::Skipped(e) => {
                skipped.push(SkippedFile {
                    path: file.clone(),
                    reason: reason_of(&e),
                    kind: skip_kind(&e),
                });
                skip_errors.push(e);
            }
        }
    }
    if frames.is_empty() {
        // A lone file keeps its precise error (not DICOM, no pixel data, corrupt, …).
        if skip_errors.len() == 1 {
            if let Some(e) = skip_errors.pop() {
                return Err(e);
            }
        }
        return Err(IoError::NoImages {
            path: path.to_path_buf(),
            files_seen: total,
        });
    }
    ctx.set_stage("Grouping series");
    let series = series::build_series(frames);
    ctx.set_progress(1.0);
    Ok(DicomScan {
        root: path.to_path_buf(),
        series,
        skipped,
    })
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), IoError> {
    let entries = std::fs::read_dir(dir).map_err(|e| IoError::os(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| IoError::os(dir, e))?;
        let path = entry.path();
        let file_type = entry.file_type().map_err(|e| IoError::os(&path, e))?;
        if file_type.is_dir() {
            collect_files(&path, out)?;
        } else if file_type.is_file() {
            out.push(path);
        } else if file_type.is_symlink() {
            // Follow links to files only: a linked folder could loop.
            if std::fs::metadata(&path)
                .map(|m| m.is_file())
                .unwrap_or(false)
            {
                out.push(path);
            }
        }
    }
    Ok(())
}

/// The message without the trailing path (the skipped row already names the file).
fn reason_of(e: &IoError) -> String {
    match e {
        IoError::NotDicom { reason, .. } => format!("not DICOM: {reason}"),
        IoError::NoPixelData { .. } => "DICOM without pixel data".to_string(),
        IoError::Corrupt { reason, .. } => format!("truncated or corrupt: {reason}"),
        IoError::UnsupportedImage { reason, .. } => format!("unsupported: {reason}"),
        IoError::UnsupportedTransferSyntax { name, .. } => format!("unsupported: {name}"),
        other => other.to_string(),
    }
}

fn skip_kind(e: &IoError) -> SkipKind {
    match e {
        IoError::NotDicom { .. } => SkipKind::NotDicom,
        IoError::NoPixelData { .. } => SkipKind::NoPixelData,
        IoError::Corrupt { .. } => SkipKind::Corrupt,
        IoError::UnsupportedImage { .. } | IoError::UnsupportedTransferSyntax { .. } => {
            SkipKind::Unsupported
        }
        _ => SkipKind::Unreadable,
    }
}

/// Assemble and decode one series of a scan into an LPS volume (f32; HU for CT).
pub fn load_series(
    scan: &DicomScan,
    index: usize,
    ctx: &JobContext,
) -> Result<LoadedImage, IoError> {
    let info = scan
        .series
        .get(index)
        .ok_or_else(|| IoError::SeriesNotFound {
            path: scan.root.clone(),
            wanted: index.to_string(),
            available: format!("0..{}", scan.series.len()),
        })?;
    match &info.problem {
        Some(Problem::Syntax { uid, .. }) => {
            return Err(IoError::UnsupportedTransferSyntax {
                uid: uid.clone(),
                name: transfer_syntax_name(uid),
                path: info.first_path(),
            })
        }
        Some(Problem::Image(reason)) => {
            return Err(IoError::UnsupportedImage {
                path: info.first_path(),
                reason: reason.clone(),
            })
        }
        None => {}
    }
    let geometry = info.geometry()?;
    // Refuse before allocating: 2^31 voxels of f32 is 8 GiB.
    if info.voxel_count() > 1 << 31 {
        return Err(IoError::BadSeries {
            path: info.first_path(),
            reason: format!("{:?} voxels is too large to load", info.dims),
        });
    }
    ctx.set_stage("Decoding slices");
    let data = decode::decode_series(info, ctx)?;
    let volume = Volume::new(geometry, data).map_err(|e| IoError::BadSeries {
        path: info.first_path(),
        reason: e.to_string(),
    })?;
    let mut meta = ImageMeta::new(info.modality.clone(), info.description.clone());
    meta.source = scan.root.display().to_string();
    meta.series_uid = Some(info.uid.clone());
    meta.warnings = info.warnings.clone();
    ctx.set_progress(1.0);
    Ok(LoadedImage { volume, meta })
}

/// The series a user most likely means when they did not choose (largest CT/MR volume, not a
/// localizer), with a note why.
pub fn primary_series(scan: &DicomScan) -> Option<(usize, String)> {
    let loadable = |s: &SeriesInfo| s.problem.is_none() && !s.is_localizer;
    let is_ct_mr = |s: &SeriesInfo| matches!(s.modality, Modality::Ct | Modality::Mr);
    let pick = |filter: &dyn Fn(&SeriesInfo) -> bool| {
        scan.series
            .iter()
            .enumerate()
            .filter(|(_, s)| filter(s))
            .max_by_key(|(i, s)| (s.dims[2] > 1, s.voxel_count(), std::cmp::Reverse(*i)))
            .map(|(i, _)| i)
    };
    let (index, why) = if let Some(i) = pick(&|s| loadable(s) && is_ct_mr(s)) {
        (
            i,
            "the largest loadable CT/MR volume that is not a localizer",
        )
    } else if let Some(i) = pick(&loadable) {
        (i, "the largest loadable image (no CT/MR volume found)")
    } else {
        return None;
    };
    let s = &scan.series[index];
    let others = scan.series.len() - 1;
    Some((
        index,
        format!(
            "series {} ({} {}, {}×{}×{} \"{}\"): {why}{}",
            s.number
                .map(|n| n.to_string())
                .unwrap_or_else(|| "?".into()),
            s.modality.code(),
            s.orientation,
            s.dims[0],
            s.dims[1],
            s.dims[2],
            s.description,
            if others > 0 {
                format!(", chosen among {} series", others + 1)
            } else {
                String::new()
            }
        ),
    ))
}
