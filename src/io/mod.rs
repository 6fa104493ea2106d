//! Layer 1: files to volumes and back. The only module that knows file formats and the
//! RAS convention; everything it returns is LPS millimetres.
//!
//! [`load_image`] is the one door in: it recognises NIfTI by name or magic and DICOM
//! files and folders, whatever they are called.

pub mod atomic;
pub mod browse;
pub mod dicom;
mod error;
mod exact_geometry;
pub mod jpeg12;
pub mod jpegls;
pub mod labels;
pub mod nifti;
pub mod project;
pub mod settings;

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

/// Lets the renderer hold a loaded image by `Arc` without knowing `io` (it sees a volume).
impl AsRef<Volume<f32>> for LoadedImage {
    fn as_ref(&self) -> &Volume<f32> {
        &self.volume
    }
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
    series: Option<&str>,
    ctx: &JobContext,
) -> Result<(LoadedImage, Option<String>), IoError> {
    let scan = dicom::scan(path, &ctx.sub(0.0, 0.2))?;
    let (index, note) = choose_series(&scan, series)?;
    let image = dicom::load_series(&scan, index, &ctx.sub(0.2, 1.0))?;
    Ok((image, note))
}

/// Resolves `--series N|UID`, or picks the primary series when there is a choice to make.
pub fn choose_series(
    scan: &dicom::DicomScan,
    wanted: Option<&str>,
) -> Result<(usize, Option<String>), IoError> {
    if scan.series.is_empty() {
        return Err(IoError::NoImages {
            path: scan.root.clone(),
            files_seen: scan.skipped.len(),
        });
    }
    if let Some(w) = wanted {
        let w = w.trim();
        let by_index = w.parse::<usize>().ok().filter(|i| *i < scan.series.len());
        let by_uid = || scan.series.iter().position(|s| s.uid == w);
        return match by_index.or_else(by_uid) {
            Some(i) => Ok((i, None)),
            None => Err(IoError::SeriesNotFound {
                path: scan.root.clone(),
                wanted: w.to_string(),
                available: format!(
                    "indices 0..{} or a SeriesInstanceUID from `fuseprint info`",
                    scan.series.len()
                ),
            }),
        };
    }
    if scan.series.len() == 1 {
        return Ok((0, None));
    }
    match dicom::primary_series(scan) {
        Some((i, why)) => Ok((
            i,
            Some(format!(
                "{} series found; converting #{i}, {why} (choose another with --series)",
                scan.series.len()
            )),
        )),
        None => Err(IoError::AmbiguousSeries {
            path: scan.root.clone(),
            count: scan.series.len(),
            listing: series_listing(scan),
        }),
    }
}

/// One line per series, for messages that ask the user to choose.
pub fn series_listing(scan: &dicom::DicomScan) -> String {
    scan.series
        .iter()
        .enumerate()
        .map(|(i, s)| {
            format!(
                "  #{i}: {} \"{}\" {}x{}x{} {} ({} images) uid {}",
                s.modality.code(),
                s.description,
                s.dims[0],
                s.dims[1],
                s.dims[2],
                s.orientation,
                s.slice_count,
                s.uid
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
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

/// The process's peak resident memory so far (Linux `VmHWM`), for benchmarks.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// CPU seconds (user + system) this process has used so far (Linux), for benchmarks
/// on a shared machine where wall time depends on the neighbours.
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every Linux target we build for.
    Some((utime + stime) / 100.0)
}

/// The 1/5/15-minute load averages (Linux), so benchmark reports can say how busy the machine was.
pub fn load_average() -> Result<String, std::io::Error> {
    let s = std::fs::read_to_string("/proc/loadavg")?;
    Ok(s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}
