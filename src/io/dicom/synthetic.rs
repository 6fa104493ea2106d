//! Writes small or large synthetic DICOM series: benchmark data and test fixtures with a
//! known geometry.

use std::path::Path;

use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use rayon::prelude::*;

use crate::io::IoError;

const CT_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";

/// One slice to write: where it is and what it holds.
#[derive(Debug, Clone)]
pub struct SyntheticSlice {
    pub position: [f64; 3],
    pub orientation: [f64; 6],
    /// Stored (raw) values, `cols * rows`, row-major (`i` fastest).
    pub stored: Vec<i16>,
    pub instance_number: i32,
}

/// Series-level attributes of a synthetic series.
#[derive(Debug, Clone)]
pub struct SyntheticSeries {
    pub series_uid: String,
    pub series_number: i32,
    pub modality: String,
    pub description: String,
    pub rows: u16,
    pub cols: u16,
    /// PixelSpacing as DICOM stores it: [between rows, between columns] mm.
    pub pixel_spacing: [f64; 2],
    pub rescale_slope: f64,
    pub rescale_intercept: f64,
    pub image_type: Vec<String>,
}

/// Writes `count` slices, each made by `slice(index)` when needed, as one uncompressed
/// (Explicit VR Little Endian, signed 16-bit) file named `file_name(index)` in `dir`.
pub fn write_series(
    dir: &Path,
    series: &SyntheticSeries,
    count: usize,
    slice: impl Fn(usize) -> SyntheticSlice + Sync,
    file_name: impl Fn(usize) -> String + Sync,
) -> Result<(), IoError> {
    std::fs::create_dir_all(dir).map_err(|e| IoError::os(dir, e))?;
    (0..count).into_par_iter().try_for_each(|index| {
        let path = dir.join(file_name(index));
        let obj = slice_object(series, &slice(index));
        let file = obj
            .with_meta(FileMetaTableBuilder::new().transfer_syntax(EXPLICIT_VR_LE))
            .map_err(|e| IoError::Corrupt {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        file.write_to_file(&path).map_err(|e| IoError::Corrupt {
            path: path.clone(),
            reason: format!("could not write: {e}"),
        })
    })
}

fn ds(values: &[f64]) -> PrimitiveValue {
    let strs: Vec<String> = values.iter().map(|v| format_ds(*v)).collect();
    PrimitiveValue::Strs(strs.into_iter().collect())
}

/// Decimal strings are limited to 16 characters.
fn format_ds(v: f64) -> String {
    let s = format!("{v}");
    if s.len() <= 16 {
        return s;
    }
    for precision in (1..=14).rev() {
        let t = format!("{v:.precision$}");
        if t.len() <= 16 {
            return t;
        }
    }
    format!("{v:.0}")
}

fn slice_object(series: &SyntheticSeries, slice: &SyntheticSlice) -> InMemDicomObject {
    let mut obj = InMemDicomObject::new_empty();
    let sop_uid = format!("{}.{}", series.series_uid, slice.instance_number + 1);
    let put_str = |obj: &mut InMemDicomObject, tag, vr, v: &str| {
        obj.put(DataElement::new(tag, vr, PrimitiveValue::from(v)));
    };
    put_str(&mut obj, tags::SOP_CLASS_UID, VR::UI, CT_IMAGE_STORAGE);
    put_str(&mut obj, tags::SOP_INSTANCE_UID, VR::UI, &sop_uid);
    put_str(&mut obj, tags::MODALITY, VR::CS, &series.modality);
    put_str(
        &mut obj,
        tags::SERIES_DESCRIPTION,
        VR::LO,
        &series.description,
    );
    put_str(
        &mut obj,
        tags::STUDY_INSTANCE_UID,
        VR::UI,
        &format!("{}.0", series.series_uid),
    );
    put_str(
        &mut obj,
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        &series.series_uid,
    );
    put_str(
        &mut obj,
        tags::SERIES_NUMBER,
        VR::IS,
        &series.series_number.to_string(),
    );
    put_str(
        &mut obj,
        tags::INSTANCE_NUMBER,
        VR::IS,
        &slice.instance_number.to_string(),
    );
    if !series.image_type.is_empty() {
        obj.put(DataElement::new(
            tags::IMAGE_TYPE,
            VR::CS,
            PrimitiveValue::Strs(series.image_type.iter().cloned().collect()),
        ));
    }
    obj.put(DataElement::new(
        tags::IMAGE_POSITION_PATIENT,
        VR::DS,
        ds(&slice.position),
    ));
    obj.put(DataElement::new(
        tags::IMAGE_ORIENTATION_PATIENT,
        VR::DS,
        ds(&slice.orientation),
    ));
    obj.put(DataElement::new(
        tags::PIXEL_SPACING,
        VR::DS,
        ds(&series.pixel_spacing),
    ));
    obj.put(DataElement::new(tags::SLICE_THICKNESS, VR::DS, ds(&[1.0])));
    obj.put(DataElement::new(
        tags::RESCALE_SLOPE,
        VR::DS,
        ds(&[series.rescale_slope]),
    ));
    obj.put(DataElement::new(
        tags::RESCALE_INTERCEPT,
        VR::DS,
        ds(&[series.rescale_intercept]),
    ));
    obj.put(DataElement::new(
        tags::SAMPLES_PER_PIXEL,
        VR::US,
        PrimitiveValue::from(1u16),
    ));
    put_str(
        &mut obj,
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        "MONOCHROME2",
    );
    obj.put(DataElement::new(
        tags::ROWS,
        VR::US,
        PrimitiveValue::from(series.rows),
    ));
    obj.put(DataElement::new(
        tags::COLUMNS,
        VR::US,
        PrimitiveValue::from(series.cols),
    ));
    obj.put(DataElement::new(
        tags::BITS_ALLOCATED,
        VR::US,
        PrimitiveValue::from(16u16),
    ));
    obj.put(DataElement::new(
        tags::BITS_STORED,
        VR::US,
        PrimitiveValue::from(16u16),
    ));
    obj.put(DataElement::new(
        tags::HIGH_BIT,
        VR::US,
        PrimitiveValue::from(15u16),
    ));
    obj.put(DataElement::new(
        tags::PIXEL_REPRESENTATION,
        VR::US,
        PrimitiveValue::from(1u16),
    ));
    let words: Vec<u16> = slice.stored.iter().map(|v| *v as u16).collect();
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U16(words.into_iter().collect()),
    ));
    obj
}

/// The stored value (HU + 1024 with intercept -1024) of a simple head-like phantom at a voxel.
fn phantom_stored(i: usize, j: usize, k: usize, dims: [usize; 3]) -> i16 {
    let c = [
        dims[0] as f64 / 2.0,
        dims[1] as f64 / 2.0,
        dims[2] as f64 / 2.0,
    ];
    let d = [
        (i as f64 - c[0]) / c[0].max(1.0),
        (j as f64 - c[1]) / c[1].max(1.0),
        (k as f64 - c[2]) / c[2].max(1.0),
    ];
    let r = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
    let hu = if r < 0.75 {
        40.0
    } else if r < 0.85 {
        1000.0
    } else {
        -1000.0
    };
    // A little deterministic texture so compression-free loads are not trivially constant.
    let noise = ((i * 7 + j * 13 + k * 29) % 11) as f64 - 5.0;
    (hu + noise + 1024.0) as i16
}

/// Writes a synthetic axial CT (a skull-like shell around soft tissue) of `dims` voxels with
/// `spacing_mm` ([i, j, k]) into `dir`, one uncompressed file per slice with shuffled-looking
/// names, so benchmarks measure a realistic series load.
pub fn write_synthetic_ct_series(
    dir: &Path,
    dims: [usize; 3],
    spacing_mm: [f64; 3],
) -> Result<(), IoError> {
    if dims.contains(&0) || dims[0] > u16::MAX as usize || dims[1] > u16::MAX as usize {
        return Err(IoError::BadSeries {
            path: dir.to_path_buf(),
            reason: format!("cannot write a synthetic series of dims {dims:?}"),
        });
    }
    let series = SyntheticSeries {
        series_uid: "1.2.826.0.1.3680043.8.498.1".to_string(),
        series_number: 1,
        modality: "CT".to_string(),
        description: format!("synthetic CT {}x{}x{}", dims[0], dims[1], dims[2]),
        rows: dims[1] as u16,
        cols: dims[0] as u16,
        pixel_spacing: [spacing_mm[1], spacing_mm[0]],
        rescale_slope: 1.0,
        rescale_intercept: -1024.0,
        image_type: vec!["ORIGINAL".into(), "PRIMARY".into(), "AXIAL".into()],
    };
    let origin = [
        -(dims[0] as f64 - 1.0) * spacing_mm[0] / 2.0,
        -(dims[1] as f64 - 1.0) * spacing_mm[1] / 2.0,
        0.0,
    ];
    let slice = |k: usize| SyntheticSlice {
        position: [origin[0], origin[1], origin[2] + k as f64 * spacing_mm[2]],
        orientation: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
        stored: (0..dims[0] * dims[1])
            .map(|p| phantom_stored(p % dims[0], p / dims[0], k, dims))
            .collect(),
        instance_number: (dims[2] - k) as i32,
    };
    // File names do not follow slice order, as on many PACS exports.
    write_series(dir, &series, dims[2], slice, |index| {
        format!("{:016x}", scrambled_name(index as u64))
    })
}

/// splitmix64's finaliser: a bijection on u64, so names are unique and look unordered.
pub fn scrambled_name(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
