//! One file's header, read up to (not including) the pixel data, turned into one
//! [`DicomFrame`] per image frame.

use std::io::Read;
use std::path::{Path, PathBuf};

use dicom_core::{PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, InMemDicomObject, OpenFileOptions, Tag};

use super::mosaic::{parse_csa, MosaicInfo};
use super::syntax;
use crate::io::IoError;

/// One 2D image: a single-frame file, or one frame of a multi-frame file.
#[derive(Debug, Clone, PartialEq)]
pub struct DicomFrame {
    pub path: PathBuf,
    /// Zero-based frame index inside the file.
    pub frame: u32,
    pub frames_in_file: u32,
    pub transfer_syntax_uid: String,
    pub sop_class_uid: String,
    pub series_uid: String,
    pub series_number: Option<i32>,
    pub modality: String,
    pub description: String,
    pub image_type: Vec<String>,
    pub instance_number: Option<i32>,
    pub acquisition_number: Option<i32>,
    /// Enhanced multi-frame: TemporalPositionIndex / StackID order, when present.
    pub temporal_index: Option<i32>,
    pub rows: u32,
    pub cols: u32,
    pub samples_per_pixel: u16,
    pub bits_allocated: u16,
    pub bits_stored: u16,
    pub high_bit: u16,
    /// 1 = two's complement signed samples.
    pub pixel_representation: u16,
    pub photometric: String,
    pub planar_configuration: u16,
    /// ImagePositionPatient: centre of the first transmitted pixel, LPS mm.
    pub position: Option<[f64; 3]>,
    /// ImageOrientationPatient: row direction (along `i`), then column direction (along `j`).
    pub orientation: Option<[f64; 6]>,
    /// PixelSpacing as stored: [between rows (along `j`), between columns (along `i`)], mm.
    pub pixel_spacing: Option<[f64; 2]>,
    pub slice_thickness: Option<f64>,
    pub spacing_between_slices: Option<f64>,
    pub rescale_slope: f64,
    pub rescale_intercept: f64,
    /// Siemens mosaic: many slices tiled into one image.
    pub mosaic: bool,
    /// Slice count and normal from the Siemens CSA header, for mosaics.
    pub mosaic_info: Option<MosaicInfo>,
    /// Why this frame cannot be decoded (known from the header), if so.
    pub undecodable: Option<String>,
}

impl DicomFrame {
    pub fn is_localizer(&self) -> bool {
        self.image_type
            .iter()
            .any(|t| t.eq_ignore_ascii_case("LOCALIZER") || t.eq_ignore_ascii_case("SCOUT"))
    }
}

/// Outcome of reading one file's header.
pub(crate) enum FileHeader {
    Frames(Vec<DicomFrame>),
    Skipped(IoError),
}

const DICM_OFFSET: usize = 128;

/// Reads the header of `path`; every failure is a skip with a typed reason, never a panic.
pub(crate) fn read_file_header(path: &Path) -> FileHeader {
    match std::panic::catch_unwind(|| read_file_header_inner(path)) {
        Ok(Ok(frames)) => FileHeader::Frames(frames),
        Ok(Err(e)) => FileHeader::Skipped(e),
        Err(_) => FileHeader::Skipped(IoError::Corrupt {
            path: path.to_path_buf(),
            reason: "the DICOM parser panicked on this file".to_string(),
        }),
    }
}

/// Checks the "DICM" marker so text files, NIfTIs etc. are skipped without a parse attempt.
pub(crate) fn check_dicm_marker(path: &Path) -> Result<(), IoError> {
    let mut file = std::fs::File::open(path).map_err(|e| IoError::os(path, e))?;
    let mut head = [0u8; DICM_OFFSET + 4];
    let mut got = 0;
    while got < head.len() {
        match file.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(IoError::os(path, e)),
        }
    }
    if got < head.len() || &head[DICM_OFFSET..] != b"DICM" {
        return Err(IoError::NotDicom {
            path: path.to_path_buf(),
            reason: if got < head.len() {
                format!("only {got} bytes, too short for a DICOM preamble")
            } else {
                "no DICM marker at byte 128".to_string()
            },
        });
    }
    Ok(())
}

/// Opens a DICOM file, reading everything (`full`) or stopping before the pixel data.
pub(crate) fn open_dicom(path: &Path, full: bool) -> Result<DefaultDicomObject, IoError> {
    check_dicm_marker(path)?;
    let options = OpenFileOptions::new();
    let options = if full {
        options
    } else {
        options.read_until(tags::PIXEL_DATA)
    };
    options.open_file(path).map_err(|e| IoError::Corrupt {
        path: path.to_path_buf(),
        reason: error_chain(&e),
    })
}

pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}

/// Counts the bytes the parser pulled, to tell whether anything follows the header.
struct CountingReader<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

/// Reads the header only, and whether Pixel Data follows it.
fn open_header(path: &Path) -> Result<DefaultDicomObject, IoError> {
    check_dicm_marker(path)?;
    let corrupt = |e: &dyn std::error::Error| IoError::Corrupt {
        path: path.to_path_buf(),
        reason: error_chain(e),
    };
    let mut file = std::fs::File::open(path).map_err(|e| IoError::os(path, e))?;
    let file_len = file.metadata().map_err(|e| IoError::os(path, e))?.len();
    let mut preamble = [0u8; DICM_OFFSET];
    file.read_exact(&mut preamble)
        .map_err(|e| IoError::os(path, e))?;
    let mut reader = CountingReader {
        inner: file,
        count: DICM_OFFSET as u64,
    };
    let obj = OpenFileOptions::new()
        .read_preamble(ReadPreamble::Never)
        .read_until(tags::PIXEL_DATA)
        .from_reader(&mut reader)
        .map_err(|e| corrupt(&e))?;
    // The parser reads ahead in 8 KiB blocks: bytes left over mean something (the pixel data)
    // follows the header. If it read to the end, re-read fully to know for sure.
    if reader.count < file_len {
        return Ok(obj);
    }
    let full = open_dicom(path, true)?;
    let float_pixels = full.get(tags::FLOAT_PIXEL_DATA).is_some()
        || full.get(tags::DOUBLE_FLOAT_PIXEL_DATA).is_some();
    if full.get(tags::PIXEL_DATA).is_none() && !float_pixels {
        return Err(IoError::NoPixelData {
            path: path.to_path_buf(),
        });
    }
    Ok(obj)
}

fn read_file_header_inner(path: &Path) -> Result<Vec<DicomFrame>, IoError> {
    let obj = open_header(path)?;
    let ts = obj
        .meta()
        .transfer_syntax()
        .trim_end_matches('\0')
        .to_string();
    let sop_class = obj
        .meta()
        .media_storage_sop_class_uid()
        .trim_end_matches('\0')
        .to_string();
    frames_from_object(path, &obj, &ts, &sop_class)
}

const SEGMENTATION_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.66.4";
const MEDIA_STORAGE_DIRECTORY: &str = "1.2.840.10008.1.3.10";

pub(crate) fn frames_from_object(
    path: &Path,
    obj: &InMemDicomObject,
    ts: &str,
    sop_class: &str,
) -> Result<Vec<DicomFrame>, IoError> {
    let no_pixels = || IoError::NoPixelData {
        path: path.to_path_buf(),
    };
    if sop_class == MEDIA_STORAGE_DIRECTORY {
        return Err(no_pixels());
    }
    let rows = get_int(obj, tags::ROWS);
    let cols = get_int(obj, tags::COLUMNS);
    let (Some(rows), Some(cols)) = (rows, cols) else {
        if obj.get(tags::FLOAT_PIXEL_DATA).is_some()
            || obj.get(tags::DOUBLE_FLOAT_PIXEL_DATA).is_some()
        {
            return Err(unsupported(path, "float pixel data"));
        }
        return Err(no_pixels());
    };
    if obj.get(tags::FLOAT_PIXEL_DATA).is_some() || obj.get(tags::DOUBLE_FLOAT_PIXEL_DATA).is_some()
    {
        return Err(unsupported(
            path,
            "Float Pixel Data (parametric map) is not imported",
        ));
    }
    if rows <= 0 || cols <= 0 {
        return Err(no_pixels());
    }
    // Rows and Columns are US: anything larger is a corrupt header, not a big image.
    if rows > u16::MAX as i64 || cols > u16::MAX as i64 {
        return Err(IoError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("implausible image size {cols}×{rows}"),
        });
    }
    if sop_class == SEGMENTATION_STORAGE {
        return Err(unsupported(
            path,
            "DICOM SEG is a segmentation, not an image; it is not imported as a volume",
        ));
    }
    let bits_allocated = get_int(obj, tags::BITS_ALLOCATED).unwrap_or(16) as u16;
    if !matches!(bits_allocated, 8 | 16 | 32) {
        return Err(unsupported(
            path,
            &format!("BitsAllocated {bits_allocated} is not an image sample size we decode"),
        ));
    }
    let bits_stored = get_int(obj, tags::BITS_STORED)
        .map(|b| b as u16)
        .filter(|b| *b >= 1 && *b <= bits_allocated)
        .unwrap_or(bits_allocated);
    let high_bit = get_int(obj, tags::HIGH_BIT)
        .map(|b| b as u16)
        .filter(|h| *h >= bits_stored - 1 && *h < bits_allocated)
        .unwrap_or(bits_stored - 1);
    let frames_in_file = get_int(obj, tags::NUMBER_OF_FRAMES)
        .filter(|n| *n >= 1)
        .unwrap_or(1);
    if frames_in_file > 100_000 {
        return Err(IoError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("implausible NumberOfFrames {frames_in_file}"),
        });
    }
    let frames_in_file = frames_in_file as u32;
    let image_type = get_strs(obj, tags::IMAGE_TYPE);
    let modality = get_str(obj, tags::MODALITY).unwrap_or_default();
    let description = get_str(obj, tags::SERIES_DESCRIPTION)
        .filter(|s| !s.is_empty())
        .or_else(|| get_str(obj, tags::PROTOCOL_NAME))
        .unwrap_or_default();
    let mosaic = image_type.iter().any(|t| t.eq_ignore_ascii_case("MOSAIC"));
    let undecodable = syntax::check_decodable(ts, bits_stored).err();

    let base = DicomFrame {
        path: path.to_path_buf(),
        frame: 0,
        frames_in_file,
        transfer_syntax_uid: ts.to_string(),
        sop_class_uid: sop_class.to_string(),
        series_uid: get_str(obj, tags::SERIES_INSTANCE_UID)
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| format!("(no series UID) {}", path.display())),
        series_number: get_int(obj, tags::SERIES_NUMBER).map(|n| n as i32),
        modality,
        description,
        image_type,
        instance_number: get_int(obj, tags::INSTANCE_NUMBER).map(|n| n as i32),
        acquisition_number: get_int(obj, tags::ACQUISITION_NUMBER).map(|n| n as i32),
        temporal_index: None,
        rows: rows as u32,
        cols: cols as u32,
        samples_per_pixel: get_int(obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1).max(1) as u16,
        bits_allocated,
        bits_stored,
        high_bit,
        pixel_representation: get_int(obj, tags::PIXEL_REPRESENTATION).unwrap_or(0) as u16,
        photometric: get_str(obj, tags::PHOTOMETRIC_INTERPRETATION)
            .unwrap_or_else(|| "MONOCHROME2".to_string()),
        planar_configuration: get_int(obj, tags::PLANAR_CONFIGURATION).unwrap_or(0) as u16,
        position: get_vec3(obj, tags::IMAGE_POSITION_PATIENT),
        orientation: get_orientation(obj, tags::IMAGE_ORIENTATION_PATIENT),
        pixel_spacing: get_spacing(obj, tags::PIXEL_SPACING)
            .or_else(|| get_spacing(obj, tags::IMAGER_PIXEL_SPACING)),
        slice_thickness: get_f64(obj, tags::SLICE_THICKNESS).filter(|t| *t > 0.0),
        spacing_between_slices: get_f64(obj, tags::SPACING_BETWEEN_SLICES).filter(|t| *t > 0.0),
        rescale_slope: get_f64(obj, tags::RESCALE_SLOPE)
            .filter(|s| *s != 0.0)
            .unwrap_or(1.0),
        rescale_intercept: get_f64(obj, tags::RESCALE_INTERCEPT).unwrap_or(0.0),
        mosaic,
        mosaic_info: if mosaic {
            obj.get(Tag(0x0029, 0x1010))
                .and_then(|e| e.to_bytes().ok())
                .and_then(|b| parse_csa(&b))
        } else {
            None
        },
        undecodable,
    };

    let per_frame = items(obj, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE);
    let shared = items(obj, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE).and_then(|s| s.first());
    if per_frame.is_none() && shared.is_none() {
        return Ok(classic_frames(obj, base));
    }
    // Enhanced multi-frame: each frame's geometry and rescale live in functional groups,
    // per-frame first, then shared, then the top level.
    let per_frame = per_frame.unwrap_or(&[]);
    let mut frames = Vec::with_capacity(frames_in_file as usize);
    for f in 0..frames_in_file {
        let own = per_frame.get(f as usize);
        let lookup = |seq: Tag, attr: Tag| -> Option<&InMemDicomObject> {
            [own, shared]
                .into_iter()
                .flatten()
                .filter_map(|group| items(group, seq).and_then(|s| s.first()))
                .find(|item| item.get(attr).is_some())
        };
        let mut frame = base.clone();
        frame.frame = f;
        if let Some(item) = lookup(tags::PLANE_POSITION_SEQUENCE, tags::IMAGE_POSITION_PATIENT) {
            frame.position = get_vec3(item, tags::IMAGE_POSITION_PATIENT);
        }
        if let Some(item) = lookup(
            tags::PLANE_ORIENTATION_SEQUENCE,
            tags::IMAGE_ORIENTATION_PATIENT,
        ) {
            frame.orientation = get_orientation(item, tags::IMAGE_ORIENTATION_PATIENT);
        }
        if let Some(item) = lookup(tags::PIXEL_MEASURES_SEQUENCE, tags::PIXEL_SPACING) {
            frame.pixel_spacing = get_spacing(item, tags::PIXEL_SPACING);
        }
        if let Some(item) = lookup(tags::PIXEL_MEASURES_SEQUENCE, tags::SLICE_THICKNESS) {
            frame.slice_thickness = get_f64(item, tags::SLICE_THICKNESS).filter(|t| *t > 0.0);
        }
        if let Some(item) = lookup(tags::PIXEL_MEASURES_SEQUENCE, tags::SPACING_BETWEEN_SLICES) {
            frame.spacing_between_slices =
                get_f64(item, tags::SPACING_BETWEEN_SLICES).filter(|t| *t > 0.0);
        }
        if let Some(item) = lookup(
            tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE,
            tags::RESCALE_SLOPE,
        ) {
            frame.rescale_slope = get_f64(item, tags::RESCALE_SLOPE)
                .filter(|s| *s != 0.0)
                .unwrap_or(1.0);
        }
        if let Some(item) = lookup(
            tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE,
            tags::RESCALE_INTERCEPT,
        ) {
            frame.rescale_intercept = get_f64(item, tags::RESCALE_INTERCEPT).unwrap_or(0.0);
        }
        if let Some(item) = lookup(tags::FRAME_CONTENT_SEQUENCE, tags::TEMPORAL_POSITION_INDEX) {
            frame.temporal_index = get_int(item, tags::TEMPORAL_POSITION_INDEX).map(|n| n as i32);
        }
        frames.push(frame);
    }
    Ok(frames)
}

/// Frames of a classic (non-enhanced) file. A multi-frame file without functional groups
/// (RT dose, NM) places its frames along the slice normal by GridFrameOffsetVector when present.
fn classic_frames(obj: &InMemDicomObject, base: DicomFrame) -> Vec<DicomFrame> {
    let n = base.frames_in_file;
    if n == 1 {
        return vec![base];
    }
    let offsets = get_f64s(obj, tags::GRID_FRAME_OFFSET_VECTOR).filter(|o| o.len() == n as usize);
    let normal = base.orientation.map(|o| {
        [
            o[1] * o[5] - o[2] * o[4],
            o[2] * o[3] - o[0] * o[5],
            o[0] * o[4] - o[1] * o[3],
        ]
    });
    (0..n)
        .map(|f| {
            let mut frame = base.clone();
            frame.frame = f;
            frame.position = match (base.position, normal, &offsets) {
                (Some(p), Some(nrm), Some(off)) => {
                    let d = off[f as usize];
                    Some([p[0] + nrm[0] * d, p[1] + nrm[1] * d, p[2] + nrm[2] * d])
                }
                // Without per-frame positions only the first frame is placed.
                _ if f == 0 => base.position,
                _ => None,
            };
            frame
        })
        .collect()
}

fn unsupported(path: &Path, reason: &str) -> IoError {
    IoError::UnsupportedImage {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

pub(crate) fn items(obj: &InMemDicomObject, tag: Tag) -> Option<&[InMemDicomObject]> {
    obj.get(tag)?.items()
}

/// Text of an element whose VR is UN (explicit VR files from tools that did not know the tag)
/// or that was kept as raw bytes: the bytes are the text. `Some(None)`: an ordinary element.
fn raw_text(obj: &InMemDicomObject, tag: Tag) -> Option<Option<String>> {
    let e = obj.get(tag)?;
    let raw_bytes = matches!(e.value().primitive(), Some(PrimitiveValue::U8(_)));
    if e.vr() != VR::UN && !raw_bytes {
        return Some(None);
    }
    let bytes = e.to_bytes().ok()?;
    Some(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

fn trim_value(s: &str) -> String {
    s.trim_matches(|c: char| c == '\0' || c.is_whitespace())
        .to_string()
}

pub(crate) fn get_str(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    if let Some(text) = raw_text(obj, tag)? {
        return Some(trim_value(&text));
    }
    let v = obj.get(tag)?.to_str().ok()?;
    Some(trim_value(&v))
}

fn get_strs(obj: &InMemDicomObject, tag: Tag) -> Vec<String> {
    if let Some(Some(text)) = raw_text(obj, tag) {
        return text.split('\\').map(trim_value).collect();
    }
    obj.get(tag)
        .and_then(|e| e.to_multi_str().ok())
        .map(|v| v.iter().map(|s| trim_value(s)).collect())
        .unwrap_or_default()
}

pub(crate) fn get_int(obj: &InMemDicomObject, tag: Tag) -> Option<i64> {
    if let Some(text) = raw_text(obj, tag)? {
        return trim_value(&text).parse().ok();
    }
    obj.get(tag)?.to_int::<i64>().ok()
}

fn get_f64(obj: &InMemDicomObject, tag: Tag) -> Option<f64> {
    get_f64s(obj, tag)?.first().copied()
}

fn get_f64s(obj: &InMemDicomObject, tag: Tag) -> Option<Vec<f64>> {
    let v = match raw_text(obj, tag)? {
        Some(text) => text
            .split('\\')
            .map(|t| trim_value(t).parse::<f64>())
            .collect::<Result<Vec<_>, _>>()
            .ok()?,
        None => obj.get(tag)?.to_multi_float64().ok()?,
    };
    if v.iter().all(|x| x.is_finite()) {
        Some(v)
    } else {
        None
    }
}

fn get_vec3(obj: &InMemDicomObject, tag: Tag) -> Option<[f64; 3]> {
    let v = get_f64s(obj, tag)?;
    (v.len() >= 3).then(|| [v[0], v[1], v[2]])
}

fn get_spacing(obj: &InMemDicomObject, tag: Tag) -> Option<[f64; 2]> {
    let v = get_f64s(obj, tag)?;
    (v.len() >= 2 && v[0] > 0.0 && v[1] > 0.0).then(|| [v[0], v[1]])
}

/// IOP with both direction cosines normalised; `None` when missing or degenerate.
fn get_orientation(obj: &InMemDicomObject, tag: Tag) -> Option<[f64; 6]> {
    let v = get_f64s(obj, tag)?;
    if v.len() < 6 {
        return None;
    }
    let nr = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
    let nc = (v[3] * v[3] + v[4] * v[4] + v[5] * v[5]).sqrt();
    if nr < 1e-6 || nc < 1e-6 {
        return None;
    }
    Some([
        v[0] / nr,
        v[1] / nr,
        v[2] / nr,
        v[3] / nc,
        v[4] / nc,
        v[5] / nc,
    ])
}
