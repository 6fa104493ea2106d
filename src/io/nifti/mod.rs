//! NIfTI-1 and NIfTI-2 (`.nii`, `.nii.gz`) to LPS volumes and back.
//!
//! Reading parses the header ourselves (see [`header`]) and validates it against the file
//! before allocating voxel buffers; geometry follows nibabel's precedence (see [`affine`]).
//! Writing produces NIfTI-1 with both sform and qform set (code 1, scanner) so every
//! tool places the voxels the same way.

pub mod affine;
pub mod gz;
pub mod header;
mod voxels;

use super::atomic::write_atomic;
use super::{IoError, LoadedImage};
use crate::jobs::JobContext;
use crate::volume::{ImageMeta, LabelMap, LabelTable, Modality, Volume, VolumeGeometry};
use affine::AffineSource;
use header::{DataType, NiftiHeader, MAX_HEADER_LEN};
use rayon::prelude::*;
use std::path::Path;

/// A NIfTI read with what the header said, for `info`.
#[derive(Debug, Clone)]
pub struct NiftiImage {
    pub image: LoadedImage,
    pub header: NiftiHeader,
    pub affine_source: AffineSource,
}

/// True when the bytes start like a NIfTI-1/2 header or a gzip stream.
pub fn looks_like_nifti(path: &Path, first_bytes: &[u8]) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if name.ends_with(".nii") || name.ends_with(".nii.gz") {
        return true;
    }
    if first_bytes.len() >= 4 {
        let size = i32::from_le_bytes([
            first_bytes[0],
            first_bytes[1],
            first_bytes[2],
            first_bytes[3],
        ]);
        let size_be = i32::from_be_bytes([
            first_bytes[0],
            first_bytes[1],
            first_bytes[2],
            first_bytes[3],
        ]);
        if [size, size_be].iter().any(|s| *s == 348 || *s == 540) {
            return true;
        }
    }
    false
}

/// Reads a `.nii` or `.nii.gz` file (gzip is recognised by content, not name).
pub fn read_nifti(path: &Path, ctx: &JobContext) -> Result<NiftiImage, IoError> {
    ctx.set_stage("Reading file");
    let bytes = std::fs::read(path).map_err(|e| IoError::os(path, e))?;
    ctx.check_cancelled()?;
    let mut img = read_nifti_from(&bytes, path, &ctx.sub(0.05, 1.0))?;
    img.image.meta.source = path.display().to_string();
    Ok(img)
}

/// In-memory entry point (fuzzing, tests): `name` stands in for the file name in errors.
pub fn read_nifti_bytes(bytes: &[u8], name: &str) -> Result<NiftiImage, IoError> {
    read_nifti_from(bytes, Path::new(name), &JobContext::detached())
}

fn bad(path: &Path, reason: impl Into<String>) -> IoError {
    IoError::InvalidNifti {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn read_nifti_from(bytes: &[u8], path: &Path, ctx: &JobContext) -> Result<NiftiImage, IoError> {
    let gzipped = bytes.starts_with(&[0x1f, 0x8b]);
    let gz_err = |e: gz::GzError| match e {
        gz::GzError::Cancelled => IoError::Cancelled,
        gz::GzError::Corrupt(reason) => IoError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("gzip: {reason}"),
        },
    };
    let head_owned;
    let head: &[u8] = if gzipped {
        head_owned = gz::decompress(bytes, MAX_HEADER_LEN, ctx).map_err(gz_err)?;
        &head_owned
    } else {
        &bytes[..bytes.len().min(MAX_HEADER_LEN)]
    };
    let header = header::parse_header(head).map_err(|e| bad(path, e.to_string()))?;
    let data_bytes = header.data_bytes().map_err(|e| bad(path, e.to_string()))?;
    let needed = header.vox_offset + data_bytes;
    ctx.check_cancelled()?;

    let count = header.voxel_count().map_err(|e| bad(path, e.to_string()))?;
    let conv = voxels::Converter::new(&header);
    ctx.set_stage(if gzipped {
        "Decompressing"
    } else {
        "Converting voxels"
    });
    let read = if gzipped {
        let ceiling = (bytes.len() as u64).saturating_mul(gz::MAX_INFLATE_RATIO);
        if needed > ceiling {
            return Err(bad(
                path,
                format!(
                    "header needs {needed} bytes but {} compressed bytes can hold at most {ceiling}",
                    bytes.len()
                ),
            ));
        }
        voxels::from_gzip(bytes, header.vox_offset, count, &conv, &ctx.sub(0.0, 0.95))
    } else {
        voxels::from_plain(bytes, header.vox_offset, count, &conv)
    };
    let (data, lowest) = read.map_err(|e| match e {
        voxels::VoxelError::Gz(e) => gz_err(e),
        voxels::VoxelError::Short { have } => bad(
            path,
            format!(
                "header says {needed} bytes ({:?} {:?} voxels from offset {}) but the {}data has only {have}",
                header.spatial_dims(),
                header.datatype,
                header.vox_offset,
                if gzipped { "decompressed " } else { "" },
            ),
        ),
    })?;
    ctx.set_progress(0.95);

    let (ras, source) = affine::ras_from_voxel(&header).map_err(|e| bad(path, e))?;
    let lps = affine::lps_from_ras() * ras;
    let dims = header.spatial_dims();
    let geometry = VolumeGeometry::from_world_from_voxel(dims, &lps)
        .map_err(|e| bad(path, format!("{} is unusable: {e}", source.name())))?;
    let volume = Volume::new(geometry, data).map_err(|e| bad(path, e.to_string()))?;

    let mut warnings = Vec::new();
    let volumes = header.volume_count();
    if volumes > 1 {
        warnings.push(format!(
            "file holds {volumes} volumes (dims {:?}); only the first was loaded",
            &header.dim[1..=header.dim[0] as usize]
        ));
    }
    // NIfTI has no modality field; air at about -1000 is the mark of CT in Hounsfield units.
    let modality = if lowest <= -900.0 {
        Modality::Ct
    } else {
        Modality::Other("NIfTI".into())
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut meta = ImageMeta::new(
        modality,
        if header.descrip.is_empty() {
            name
        } else {
            header.descrip.clone()
        },
    );
    meta.source = path.display().to_string();
    meta.warnings = warnings;
    Ok(NiftiImage {
        image: LoadedImage { volume, meta },
        header,
        affine_source: source,
    })
}

/// Reads a label map: every voxel must be a whole number in 0..=65535.
pub fn read_labels(path: &Path, ctx: &JobContext) -> Result<LabelMap, IoError> {
    let img = read_nifti(path, ctx)?;
    let (geometry, data) = img.image.volume.into_parts();
    let mut labels = Vec::with_capacity(data.len());
    for v in data {
        if !(0.0..=65535.0).contains(&v) || v.fract() != 0.0 {
            return Err(bad(
                path,
                format!("value {v} is not a label (labels are whole numbers 0 to 65535)"),
            ));
        }
        labels.push(v as u16);
    }
    let volume = Volume::new(geometry, labels).map_err(|e| bad(path, e.to_string()))?;
    Ok(LabelMap::new(volume, LabelTable::new()))
}

/// How voxels are stored when writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Storage {
    U8,
    I16,
    U16,
    F32,
}

fn storage_datatype(s: Storage) -> DataType {
    match s {
        Storage::U8 => DataType::U8,
        Storage::I16 => DataType::I16,
        Storage::U16 => DataType::U16,
        Storage::F32 => DataType::F32,
    }
}

/// Writes a float volume. Whole numbers within i16 (typical CT in HU) are stored as i16,
/// which halves the file; anything else as f32. `.gz` in the name compresses.
pub fn write_nifti(
    path: &Path,
    volume: &Volume<f32>,
    description: &str,
    overwrite: bool,
) -> Result<(), IoError> {
    write_nifti_with(
        path,
        volume,
        description,
        overwrite,
        GzLayout::ParallelMembers,
    )
}

/// How a `.nii.gz` is laid out inside (both are plain gzip to every reader).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GzLayout {
    /// Tagged members of a few MiB: compressed and decompressed on all cores (the default).
    ParallelMembers,
    /// One member, as most tools write it: only sequential decompression is possible.
    SingleMember,
}

/// [`write_nifti`] with a choice of gzip layout (benchmarks compare the two).
pub fn write_nifti_with(
    path: &Path,
    volume: &Volume<f32>,
    description: &str,
    overwrite: bool,
    layout: GzLayout,
) -> Result<(), IoError> {
    let fits_i16 = volume
        .data()
        .par_iter()
        .all(|v| v.fract() == 0.0 && *v >= i16::MIN as f32 && *v <= i16::MAX as f32);
    let (storage, body) = if fits_i16 {
        let mut b = Vec::with_capacity(volume.data().len() * 2);
        for v in volume.data() {
            b.extend_from_slice(&(*v as i16).to_le_bytes());
        }
        (Storage::I16, b)
    } else {
        let mut v = Vec::with_capacity(volume.data().len() * 4);
        for chunk in volume.data() {
            v.extend_from_slice(&chunk.to_le_bytes());
        }
        (Storage::F32, v)
    };
    write_file(
        path,
        volume.geometry(),
        storage,
        body,
        description,
        overwrite,
        layout,
    )
}

/// Writes a label map as u8 when every label fits, else u16.
pub fn write_labels(path: &Path, labels: &LabelMap, overwrite: bool) -> Result<(), IoError> {
    let data = labels.volume.data();
    let max = data.par_iter().copied().max().unwrap_or(0);
    let (storage, body) = if max <= u8::MAX as u16 {
        (Storage::U8, data.iter().map(|v| *v as u8).collect())
    } else {
        let mut b = Vec::with_capacity(data.len() * 2);
        for v in data {
            b.extend_from_slice(&v.to_le_bytes());
        }
        (Storage::U16, b)
    };
    write_file(
        path,
        labels.geometry(),
        storage,
        body,
        "fuseprint labels",
        overwrite,
        GzLayout::ParallelMembers,
    )
}

/// gzip level for .nii.gz: 6 is zlib's default and keeps CT files small.
const GZIP_LEVEL: u32 = 6;

fn write_file(
    path: &Path,
    g: &VolumeGeometry,
    storage: Storage,
    body: Vec<u8>,
    description: &str,
    overwrite: bool,
    layout: GzLayout,
) -> Result<(), IoError> {
    if g.dims.iter().any(|d| *d > i16::MAX as usize) {
        return Err(bad(
            path,
            format!(
                "dims {:?} exceed NIfTI-1's limit of {} voxels per axis",
                g.dims,
                i16::MAX
            ),
        ));
    }
    let mut bytes = header_bytes(g, storage_datatype(storage), description);
    bytes.extend_from_slice(&body);
    drop(body);
    let gzip = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase().ends_with(".gz"))
        .unwrap_or(false);
    let out = if gzip {
        match layout {
            GzLayout::ParallelMembers => gz::compress(&bytes, GZIP_LEVEL),
            GzLayout::SingleMember => gz::compress_single(&bytes, GZIP_LEVEL),
        }
    } else {
        bytes
    };
    write_atomic(path, !overwrite, |w| w.write_all(&out))
}

/// The 348-byte NIfTI-1 header plus the 4-byte empty extension flag; data follows at 352.
pub(crate) fn header_bytes(g: &VolumeGeometry, datatype: DataType, description: &str) -> Vec<u8> {
    let mut b = vec![0u8; 352];
    let put = |b: &mut Vec<u8>, at: usize, v: &[u8]| b[at..at + v.len()].copy_from_slice(v);
    put(&mut b, 0, &348i32.to_le_bytes());
    put(&mut b, 38, b"r"); // regular: Analyze legacy, set by every writer
    let mut dim = [3i16, 1, 1, 1, 1, 1, 1, 1];
    for a in 0..3 {
        // write_file refuses dims above i16::MAX before we get here.
        dim[a + 1] = g.dims[a].min(i16::MAX as usize) as i16;
    }
    for (n, d) in dim.iter().enumerate() {
        put(&mut b, 40 + 2 * n, &d.to_le_bytes());
    }
    put(&mut b, 70, &datatype.code().to_le_bytes());
    put(&mut b, 72, &((datatype.bytes() * 8) as i16).to_le_bytes());
    let fields = affine::header_fields(&g.world_from_voxel(), g.spacing_mm);
    let pixdim = [
        fields.qfac,
        g.spacing_mm[0],
        g.spacing_mm[1],
        g.spacing_mm[2],
        0.0,
        0.0,
        0.0,
        0.0,
    ];
    for (n, p) in pixdim.iter().enumerate() {
        put(&mut b, 76 + 4 * n, &(*p as f32).to_le_bytes());
    }
    put(&mut b, 108, &352f32.to_le_bytes());
    put(&mut b, 112, &1f32.to_le_bytes()); // scl_slope 1: values are stored as-is
    put(&mut b, 123, &[2u8]); // xyzt_units: millimetres
    let descrip = description.as_bytes();
    let n = descrip.len().min(79);
    put(&mut b, 148, &descrip[..n]);
    put(&mut b, 252, &1i16.to_le_bytes()); // qform_code: scanner
    put(&mut b, 254, &1i16.to_le_bytes()); // sform_code: scanner
    for (n, q) in fields
        .quatern
        .iter()
        .chain(fields.qoffset.iter())
        .enumerate()
    {
        put(&mut b, 256 + 4 * n, &(*q as f32).to_le_bytes());
    }
    for (r, row) in fields.srow.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            put(&mut b, 280 + 16 * r + 4 * c, &(*v as f32).to_le_bytes());
        }
    }
    put(&mut b, 344, b"n+1\0");
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::Rotation3;

    fn oblique_geometry() -> VolumeGeometry {
        let rot = Rotation3::from_euler_angles(0.2, -0.1, 0.7);
        VolumeGeometry::new(
            [5, 4, 3],
            [0.8, 1.2, 2.5],
            [-100.5, 30.25, 12.0],
            *rot.matrix(),
        )
        .expect("valid")
    }

    fn assert_same_grid(a: &VolumeGeometry, b: &VolumeGeometry) {
        assert_eq!(a.dims, b.dims);
        let (ma, mb) = (a.world_from_voxel(), b.world_from_voxel());
        // The header stores f32: allow its rounding on coordinates of ~100 mm.
        assert!((ma - mb).abs().max() < 1e-4, "{ma} vs {mb}");
    }

    #[test]
    fn float_and_integral_volumes_round_trip() {
        let dir = tempfile::tempdir().expect("tmp");
        let g = oblique_geometry();
        let ct = Volume::from_fn(g.clone(), |[i, j, k]| {
            (i as f32 * 100.0) - 1024.0 + j as f32 + k as f32
        });
        let mr = Volume::from_fn(g.clone(), |[i, j, k]| (i * j) as f32 * 0.37 + k as f32);
        for (name, vol) in [("ct.nii.gz", &ct), ("mr.nii", &mr)] {
            let p = dir.path().join(name);
            write_nifti(&p, vol, "test", false).expect("write");
            let back = read_nifti(&p, &JobContext::detached()).expect("read");
            assert_same_grid(back.image.volume.geometry(), &g);
            assert_eq!(back.image.volume.data(), vol.data());
            assert_eq!(back.affine_source, AffineSource::Sform);
        }
        let ct_back =
            read_nifti(&dir.path().join("ct.nii.gz"), &JobContext::detached()).expect("read");
        assert_eq!(ct_back.header.datatype, DataType::I16);
        assert_eq!(ct_back.image.meta.modality, Modality::Ct);
        let err = write_nifti(&dir.path().join("mr.nii"), &mr, "x", false).expect_err("exists");
        assert!(matches!(err, IoError::WouldOverwrite { .. }));
    }

    #[test]
    fn labels_round_trip_as_u8_and_u16() {
        let dir = tempfile::tempdir().expect("tmp");
        let g = oblique_geometry();
        for max in [200u16, 1000] {
            let v = Volume::from_fn(g.clone(), |[i, j, k]| ((i + j * 5 + k * 20) as u16) % max);
            let labels = LabelMap::new(v, LabelTable::new());
            let p = dir.path().join(format!("labels{max}.nii.gz"));
            write_labels(&p, &labels, false).expect("write");
            let back = read_labels(&p, &JobContext::detached()).expect("read");
            assert_eq!(back.volume.data(), labels.volume.data());
            assert_same_grid(back.geometry(), &g);
        }
    }

    #[test]
    fn scaling_and_datatypes_are_honoured() {
        let g = VolumeGeometry::axis_aligned([2, 2, 1], [1.0; 3], [0.0; 3]).expect("valid");
        let mut bytes = header_bytes(&g, DataType::U16, "");
        bytes[112..116].copy_from_slice(&0.5f32.to_le_bytes());
        bytes[116..120].copy_from_slice(&(-10f32).to_le_bytes());
        for v in [0u16, 2, 40, 65535] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        let img = read_nifti_bytes(&bytes, "scaled.nii").expect("read");
        assert_eq!(img.image.volume.data(), &[-10.0, -9.0, 10.0, 32757.5]);
        // slope 0 means "no scaling".
        bytes[112..116].copy_from_slice(&0f32.to_le_bytes());
        let img = read_nifti_bytes(&bytes, "raw.nii").expect("read");
        assert_eq!(img.image.volume.data(), &[0.0, 2.0, 40.0, 65535.0]);
    }

    #[test]
    fn refuses_dims_nifti1_cannot_hold() {
        let g = VolumeGeometry::axis_aligned([40_000, 1, 1], [1.0; 3], [0.0; 3]).expect("valid");
        let v = Volume::filled(g, 0.0f32);
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("wide.nii");
        let err = write_nifti(&p, &v, "", false).expect_err("too wide");
        assert!(err.to_string().contains("40000"), "{err}");
        assert!(!p.exists());
    }

    #[test]
    fn lps_is_ras_with_x_and_y_negated() {
        let g =
            VolumeGeometry::axis_aligned([2, 2, 2], [1.0; 3], [10.0, 20.0, 30.0]).expect("valid");
        let bytes = header_bytes(&g, DataType::U8, "");
        let h = header::parse_header(&bytes).expect("parse");
        // LPS identity → RAS: x and y columns and offsets negated.
        assert_eq!(h.srow[0], [-1.0, 0.0, 0.0, -10.0]);
        assert_eq!(h.srow[1], [0.0, -1.0, 0.0, -20.0]);
        assert_eq!(h.srow[2], [0.0, 0.0, 1.0, 30.0]);
    }
}
