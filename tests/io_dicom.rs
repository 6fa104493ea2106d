//! DICOM import on the real files in ../shared/data and on files written here.

mod common;
use common::shared_data;

use std::path::{Path, PathBuf};

use fuseprint::io::dicom::{self, DicomScan};
use fuseprint::io::{IoError, LoadedImage};
use fuseprint::jobs::JobContext;

fn ctx() -> JobContext {
    JobContext::detached()
}

fn scan(path: &Path) -> Result<DicomScan, IoError> {
    dicom::scan(path, &ctx())
}

fn load_primary(path: &Path) -> Result<LoadedImage, IoError> {
    let scan = scan(path)?;
    let (index, _) = dicom::primary_series(&scan).unwrap_or((0, String::new()));
    dicom::load_series(&scan, index, &ctx())
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// What happened to one file, as a short typed label.
fn outcome_label(result: &Result<LoadedImage, IoError>) -> String {
    match result {
        Ok(img) => format!("ok {:?}", img.volume.dims()),
        Err(IoError::UnsupportedTransferSyntax { name, .. }) => format!("refused syntax: {name}"),
        Err(IoError::UnsupportedImage { reason, .. }) => format!("refused image: {reason}"),
        Err(IoError::NotDicom { .. }) => "not DICOM".to_string(),
        Err(IoError::NoPixelData { .. }) => "no pixel data".to_string(),
        Err(IoError::Corrupt { reason, .. }) => format!("corrupt: {reason}"),
        Err(e) => format!("OTHER: {e}"),
    }
}

/// The outcome each file in the shared data must have: a category of `outcome_label`.
fn expected_outcome(rel: &str) -> &'static str {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    if matches!(ext, "json" | "txt" | "md" | "nii" | "zst") || name == "LICENSE" {
        return "not DICOM";
    }
    if name.starts_with("liver") {
        return "refused image: DICOM SEG";
    }
    match name {
        "parametric_map_float.dcm" => "refused image: Float Pixel Data",
        "MR_truncated.dcm" => "corrupt",
        "rtplan.dcm" => "no pixel data",
        // No preamble and no file meta group: not a DICOM *file* (Part 10).
        "no_meta.dcm" | "rtstruct.dcm" => "not DICOM",
        _ => "ok",
    }
}

#[test]
fn every_dicom_file_loads_or_is_refused_precisely() {
    let Some(data) = shared_data() else { return };
    let mut files = files_under(&data.join("dicom"));
    files.extend(files_under(
        &data.join("registration/mri_dir_porcine_phantom/ct_dicom_subset"),
    ));
    files.extend(files_under(
        &data.join("registration/mri_dir_porcine_phantom/mr_t2_dicom_subset"),
    ));
    assert!(
        files.len() > 120,
        "expected the whole DICOM collection, found {}",
        files.len()
    );
    let mut table = String::new();
    let mut wrong = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&data).unwrap_or(f).display().to_string();
        let label = outcome_label(&load_primary(f));
        let expected = expected_outcome(&rel);
        table.push_str(&format!("{rel:<90} {label}\n"));
        if !label.starts_with(expected) {
            wrong.push(format!("{rel}: expected {expected}, got {label}"));
        }
    }
    println!("{table}");
    assert!(
        wrong.is_empty(),
        "unexpected outcomes:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn every_dicom_folder_scans_into_series() {
    let Some(data) = shared_data() else { return };
    for (folder, loadable_series) in [
        ("dicom/dcm_qa_ct_GE_gantry_tilt_head", 2),
        ("dicom/pydicom-testfiles", 7),
        ("dicom/pydicom-data", 10),
        ("registration/mri_dir_porcine_phantom/mr_t2_dicom_subset", 1),
    ] {
        let s = scan(&data.join(folder)).expect(folder);
        let mut loaded = 0;
        for (i, info) in s.series.iter().enumerate() {
            match dicom::load_series(&s, i, &ctx()) {
                Ok(img) => {
                    assert_eq!(img.volume.dims(), info.dims, "{folder} #{i}");
                    loaded += 1;
                }
                Err(e) => assert!(
                    matches!(
                        e,
                        IoError::UnsupportedTransferSyntax { .. }
                            | IoError::UnsupportedImage { .. }
                    ),
                    "{folder} #{i}: {e}"
                ),
            }
            println!(
                "{folder} #{i} {} {:?} {} warnings {:?}",
                info.description, info.dims, info.transfer_syntax, info.warnings
            );
        }
        assert_eq!(loaded, loadable_series, "{folder}");
    }
}

// ---------------------------------------------------------------------------------------------
// Codecs: NEMA WG04 files against their uncompressed references.

/// Decompresses a REF/*.zst into `dir` (pure-Rust zstd).
fn unzstd(src: &Path, dir: &Path) -> PathBuf {
    use std::io::Read;
    let mut compressed = std::fs::File::open(src).expect("reference readable");
    let mut decoder =
        ruzstd::decoding::StreamingDecoder::new(&mut compressed).expect("zstd stream");
    let mut bytes = Vec::new();
    decoder.read_to_end(&mut bytes).expect("zstd decodes");
    let path = dir.join(src.file_stem().expect("name"));
    std::fs::write(&path, bytes).expect("write");
    path
}

#[test]
fn nema_codecs_match_uncompressed_references() {
    let Some(data) = shared_data() else { return };
    let nema = data.join("dicom/nema-wg04-codecs");
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut table = String::new();
    let mut compared = 0;
    for image in ["CT1", "CT2", "MR1", "MR3", "MR4"] {
        let reference = unzstd(&nema.join(format!("REF/{image}_UNC.zst")), tmp.path());
        let reference = load_primary(&reference).expect("reference loads");
        let (lo, hi) = reference.volume.min_max();
        for codec in ["J2KR", "JPLL", "RLE", "JLSL", "J2KI", "JLSN", "JPLY"] {
            let path = nema.join(format!("{codec}/{image}_{codec}"));
            if !path.exists() {
                continue;
            }
            let img = load_primary(&path).unwrap_or_else(|e| panic!("{codec} {image}: {e}"));
            assert_eq!(
                img.volume.geometry(),
                reference.volume.geometry(),
                "{codec} {image}"
            );
            let (max_err, mean_err) = errors(img.volume.data(), reference.volume.data());
            table.push_str(&format!(
                "{image} {codec:<5} max |diff| {max_err:>7.1}  mean |diff| {mean_err:>7.3}  (range {lo}..{hi})\n"
            ));
            match codec {
                // Lossy at the ratios NEMA chose: bounded mean error (2% of the image's range).
                "J2KI" | "JLSN" | "JPLY" => {
                    assert!(
                        mean_err < 0.02 * (hi - lo) as f64,
                        "{codec} {image} mean {mean_err}"
                    )
                }
                _ => assert_eq!(max_err, 0.0, "{codec} {image} must be bit-exact"),
            }
            compared += 1;
        }
    }
    println!("{table}");
    assert_eq!(compared, 33, "7 syntaxes for five images, JPLY for three");
}

fn errors(a: &[f32], b: &[f32]) -> (f64, f64) {
    assert_eq!(a.len(), b.len());
    let mut max = 0f64;
    let mut sum = 0f64;
    for (x, y) in a.iter().zip(b) {
        let d = (*x as f64 - *y as f64).abs();
        max = max.max(d);
        sum += d;
    }
    (max, sum / a.len() as f64)
}

#[test]
fn undecodable_syntax_is_refused_with_its_name() {
    let Some(data) = shared_data() else { return };
    // An RLE file relabelled as MPEG-2 video: encapsulated pixel data nobody here decodes.
    let tmp = tempfile::tempdir().expect("temp dir");
    let path = tmp.path().join("mpeg2.dcm");
    {
        let mut obj =
            dicom_object::open_file(data.join("dicom/pydicom-testfiles/MR_small_RLE.dcm"))
                .expect("open");
        obj.meta_mut().set_transfer_syntax(
            &dicom_transfer_syntax_registry::entries::MPEG2_MAIN_PROFILE_MAIN_LEVEL,
        );
        obj.write_to_file(&path).expect("write");
    }
    let scan = scan(&path).expect("header scan works");
    assert!(
        scan.series[0]
            .warnings
            .iter()
            .any(|w| w.contains("cannot be loaded")),
        "{:?}",
        scan.series[0].warnings
    );
    let err = dicom::load_series(&scan, 0, &ctx()).expect_err("refused");
    let msg = err.to_string();
    assert!(
        matches!(err, IoError::UnsupportedTransferSyntax { .. }),
        "{msg}"
    );
    assert!(
        msg.contains("1.2.840.10008.1.2.4.100")
            && msg.contains("MPEG")
            && msg.ends_with("mpeg2.dcm"),
        "{msg}"
    );
}

// ---------------------------------------------------------------------------------------------
// Geometry on real series.

#[test]
fn ge_gantry_tilt_series_is_sheared_through_every_slice_origin() {
    let Some(data) = shared_data() else { return };
    let dir = data.join("dicom/dcm_qa_ct_GE_gantry_tilt_head");
    let scan = scan(&dir).expect("scan");
    // The main (resampled) row and the evenly spaced run offered beside it.
    assert_eq!(
        scan.series.len(),
        2,
        "{:#?}",
        scan.series.iter().map(|s| &s.warnings).collect::<Vec<_>>()
    );
    assert_eq!(scan.series[1].dims[2], 14);
    assert_eq!(
        scan.skipped.len(),
        5,
        "the _meta files are listed as skipped"
    );
    let info = &scan.series[0];
    println!(
        "{} {:?} {:?} {}\n{:#?}",
        info.description, info.dims, info.spacing_mm, info.orientation, info.warnings
    );
    assert_eq!(info.slice_count, 28);
    assert!(info.warnings.iter().any(|w| w.contains("gantry tilt")));
    assert!(info
        .warnings
        .iter()
        .any(|w| w.contains("irregular slice spacing")));
    // dcm2niix's reference JSON: ImageOrientationPatientDICOM [1,0,0, 0,0.948324,-0.317305].
    let g = info.geometry().expect("geometry");
    assert!((g.direction[(1, 1)] - 0.948324).abs() < 1e-5);
    assert!((g.direction[(2, 1)] + 0.317305).abs() < 1e-5);
    // Tilt 18.5° (GantryDetectorTilt in the headers): the slice normal is 18.5° off +z.
    let tilt = info.layout.tilt_deg;
    assert!((tilt - 18.5).abs() < 0.1, "tilt {tilt}");
    // Each acquired slice origin (IPP) lies on the grid's k axis at i = j = 0.
    let w = g.world_from_voxel();
    let inv = g.voxel_from_world();
    for f in &info.frames {
        let p = f.position.expect("IPP");
        let v = inv.transform_point(&nalgebra::Point3::from(p));
        assert!(
            v.x.abs() < 1e-3 && v.y.abs() < 1e-3,
            "IPP off the k axis: {v:?}"
        );
        assert!(v.z > -1e-6 && v.z < (info.dims[2] - 1) as f64 + 1e-6);
        let back = w.transform_point(&v);
        assert!((back - nalgebra::Point3::from(p)).norm() < 1e-6);
    }
    let img = dicom::load_series(&scan, 0, &ctx()).expect("loads");
    assert_eq!(img.volume.dims(), info.dims);
    let (lo, hi) = img.volume.min_max();
    assert!(lo <= -1000.0 && hi >= 1000.0, "HU range {lo}..{hi}");
}

#[test]
fn porcine_ct_slices_match_the_reference_nifti() {
    let Some(data) = shared_data() else { return };
    let dir = data.join("registration/mri_dir_porcine_phantom");

    use nifti::{IntoNdArray, NiftiObject};
    let nii = nifti::ReaderOptions::new()
        .read_file(dir.join("ct_from_dicom_2x_inplane.nii.gz"))
        .expect("reference NIfTI");
    let h = nii.header().clone();
    assert!(h.sform_code > 0);
    // NIfTI world is RAS: flip x and y to get LPS.
    let sign = [-1.0, -1.0, 1.0];
    let rows = [h.srow_x, h.srow_y, h.srow_z];
    let mut nii_world_from_voxel = nalgebra::Matrix4::<f64>::identity();
    for r in 0..3 {
        for c in 0..4 {
            nii_world_from_voxel[(r, c)] = sign[r] * rows[r][c] as f64;
        }
    }
    let nii_voxel_from_world = nii_world_from_voxel.try_inverse().expect("invertible");
    let reference = nii.into_volume().into_ndarray::<f32>().expect("voxels");

    // The subset is 8 scattered slices of the 409: compare each one where the NIfTI has it.
    let files = files_under(&dir.join("ct_dicom_subset"));
    assert_eq!(files.len(), 8);
    let mut max_diff = 0f32;
    let mut compared = 0;
    for file in &files {
        let scan = scan(file).expect("scan");
        let ipp = scan.series[0].frames[0].position.expect("IPP");
        let img = dicom::load_series(&scan, 0, &ctx()).expect("loads");
        let g = img.volume.geometry().clone();
        assert_eq!(g.dims, [512, 512, 1]);
        assert_eq!(g.origin_mm, ipp, "origin is the IPP of the slice");
        for j in (0..256).step_by(3) {
            for i in (0..256).step_by(3) {
                // Centre of our 2×2 block = centre of one reference voxel.
                let p = g.world_from_voxel_point([2.0 * i as f64 + 0.5, 2.0 * j as f64 + 0.5, 0.0]);
                let v = nii_voxel_from_world.transform_point(&p);
                let idx = [v.x.round(), v.y.round(), v.z.round()];
                assert!(
                    (v.x - idx[0]).abs() < 1e-3
                        && (v.y - idx[1]).abs() < 1e-3
                        && (v.z - idx[2]).abs() < 1e-3,
                    "{} lands between reference voxels: {v:?}",
                    file.display()
                );
                let block: f32 = [(0, 0), (1, 0), (0, 1), (1, 1)]
                    .iter()
                    .map(|(di, dj)| img.volume.at(2 * i + di, 2 * j + dj, 0))
                    .sum::<f32>()
                    / 4.0;
                let r = reference[[idx[0] as usize, idx[1] as usize, idx[2] as usize]];
                max_diff = max_diff.max((block - r).abs());
                compared += 1;
            }
        }
    }
    println!("compared {compared} voxels with the reference NIfTI, max |diff| {max_diff} HU");
    // The reference stores int16 after averaging: at most one unit of rounding.
    assert!(max_diff <= 1.0, "max diff {max_diff}");

    // As one folder the scattered slices are flagged, resampled, and a regular run is offered.
    let scan = scan(&dir.join("ct_dicom_subset")).expect("scan");
    assert!(scan.series[0]
        .warnings
        .iter()
        .any(|w| w.contains("irregular slice spacing")));
    assert!(scan
        .series
        .iter()
        .any(|s| s.description.contains("regular subset") && s.dims[2] == 3));
}

// ---------------------------------------------------------------------------------------------
// Multi-frame.

#[test]
fn enhanced_multiframe_files_load_the_same_in_every_decodable_syntax() {
    let Some(data) = shared_data() else { return };
    let dir = data.join("dicom/pydicom-data");
    let plain = load_primary(&dir.join("emri_small.dcm")).expect("emri_small loads");
    assert_eq!(plain.volume.dims(), [64, 64, 10]);
    // This file has no functional groups at all: it loads, and says its position is unknown.
    assert!(plain
        .meta
        .warnings
        .iter()
        .any(|w| w.contains("world position is not reliable")));
    for variant in [
        "emri_small_RLE.dcm",
        "emri_small_big_endian.dcm",
        "emri_small_jpeg_2k_lossless.dcm",
        "emri_small_jpeg_ls_lossless.dcm",
    ] {
        let img = load_primary(&dir.join(variant)).expect(variant);
        assert_eq!(img.volume.geometry(), plain.volume.geometry(), "{variant}");
        assert_eq!(
            img.volume.data(),
            plain.volume.data(),
            "{variant} decodes to the same values"
        );
    }

    // Enhanced CT: positions and rescale come from the functional groups.
    let path = dir.join("eCT_Supplemental.dcm");
    let scan = scan(&path).expect("scan");
    let info = &scan.series[0];
    assert_eq!(info.dims, [512, 512, 2]);
    let img = dicom::load_series(&scan, 0, &ctx()).expect("eCT loads");
    let g = img.volume.geometry();
    for (k, f) in info.frames.iter().enumerate() {
        let p = f.position.expect("per-frame PlanePositionSequence");
        let w = g.world_from_voxel_point([0.0, 0.0, k as f64]);
        assert!(
            (w - nalgebra::Point3::from(p)).norm() < 1e-6,
            "frame {k}: {w:?} vs {p:?}"
        );
        assert!(f.pixel_spacing.is_some(), "PixelMeasuresSequence read");
    }
    let (lo, hi) = img.volume.min_max();
    // Air outside the field of view at -1024 HU only if the rescale intercept was applied.
    assert!(
        lo <= -1000.0 && hi > lo + 500.0,
        "HU after per-frame rescale: {lo}..{hi}"
    );
}

// ---------------------------------------------------------------------------------------------
// Bad input.

#[test]
fn bad_input_gives_typed_errors_naming_the_file() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = tmp.path();

    let missing = root.join("does-not-exist");
    let err = scan(&missing).expect_err("missing");
    assert!(matches!(err, IoError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("does-not-exist"));

    let empty = root.join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let err = scan(&empty).expect_err("empty folder");
    assert!(
        matches!(err, IoError::NoImages { files_seen: 0, .. }),
        "{err}"
    );

    let garbage = root.join("garbage.bin");
    std::fs::write(&garbage, vec![0x5Au8; 4000]).expect("write");
    let err = scan(&garbage).expect_err("garbage");
    assert!(matches!(err, IoError::NotDicom { .. }), "{err}");
    assert!(err.to_string().contains("garbage.bin"));

    // A real header with DICM but random bytes after it.
    let broken = root.join("broken_header.dcm");
    let mut bytes = vec![0u8; 128];
    bytes.extend_from_slice(b"DICM");
    bytes.extend((0..3000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8));
    std::fs::write(&broken, bytes).expect("write");
    let err = scan(&broken).expect_err("corrupt header");
    assert!(matches!(err, IoError::Corrupt { .. }), "{err}");

    // Synthetic slice, then the same header without its pixel data.
    let series_dir = root.join("series");
    write_small_series(
        &series_dir,
        "1.2.3.4",
        [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
        &[[0.0, 0.0, 0.0], [0.0, 0.0, 2.0]],
    );
    let full = std::fs::read_dir(&series_dir)
        .expect("dir")
        .flatten()
        .next()
        .expect("a file")
        .path();
    let header_only = root.join("header_only.dcm");
    {
        let mut obj = dicom_object::open_file(&full).expect("open");
        obj.remove_element(dicom_dictionary_std::tags::PIXEL_DATA);
        obj.write_to_file(&header_only).expect("write");
    }
    let err = scan(&header_only).expect_err("no pixel data");
    assert!(matches!(err, IoError::NoPixelData { .. }), "{err}");
    assert!(err.to_string().contains("header_only.dcm"));

    // In a folder, the non-image files are listed as skipped and the series still loads.
    std::fs::copy(&garbage, series_dir.join("notes.txt")).expect("copy");
    std::fs::copy(&header_only, series_dir.join("header_only")).expect("copy");
    let s = scan(&series_dir).expect("scan with strays");
    assert_eq!(s.series.len(), 1);
    assert_eq!(s.skipped.len(), 2, "{:?}", s.skipped);
    assert!(s
        .skipped
        .iter()
        .any(|k| k.kind == dicom::SkipKind::NotDicom));
    assert!(s
        .skipped
        .iter()
        .any(|k| k.kind == dicom::SkipKind::NoPixelData));
    dicom::load_series(&s, 0, &ctx()).expect("the series loads");

    // Truncated inside the (tiny) pixel data: the parser reads such a small file to the end
    // while scanning, so the file is listed as corrupt and the rest of the series still loads.
    let truncated = series_dir.join("truncated");
    let bytes = std::fs::read(&full).expect("read");
    std::fs::write(&truncated, &bytes[..bytes.len() - 10]).expect("write");
    let s = scan(&series_dir).expect("scan");
    let skipped = s
        .skipped
        .iter()
        .find(|k| k.path == truncated)
        .expect("truncated file listed");
    assert_eq!(skipped.kind, dicom::SkipKind::Corrupt, "{}", skipped.reason);
    assert_eq!(s.series[0].slice_count, 2);
    // Alone, it is a typed error naming it.
    let err = scan(&truncated).expect_err("truncated alone");
    assert!(matches!(err, IoError::Corrupt { .. }), "{err}");
    assert!(err.to_string().ends_with("truncated"), "{err}");

    // Cancellation is honoured.
    let cancelled = JobContext::detached();
    cancelled.cancel_token().cancel();
    assert!(matches!(
        dicom::scan(&series_dir, &cancelled),
        Err(IoError::Cancelled)
    ));
}

#[test]
fn truncated_real_file_is_refused_not_panicking() {
    let Some(data) = shared_data() else { return };
    let err = load_primary(&data.join("dicom/pydicom-testfiles/MR_truncated.dcm"))
        .expect_err("truncated");
    assert!(matches!(err, IoError::Corrupt { .. }), "{err}");
    assert!(err.to_string().ends_with("MR_truncated.dcm"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Sorting and geometry of synthetic series built here.

use fuseprint::io::dicom::synthetic::{write_series, SyntheticSeries, SyntheticSlice};

fn small_series(uid: &str, image_type: &[&str]) -> SyntheticSeries {
    SyntheticSeries {
        series_uid: uid.to_string(),
        series_number: 7,
        modality: "CT".to_string(),
        description: "synthetic".to_string(),
        rows: 3,
        cols: 4,
        pixel_spacing: [0.5, 0.75],
        rescale_slope: 2.0,
        rescale_intercept: -1024.0,
        image_type: image_type.iter().map(|s| s.to_string()).collect(),
    }
}

/// Stored value encodes (i, j, slice) so every voxel can be checked after sorting.
fn stored_value(i: usize, j: usize, slice: usize) -> i16 {
    (i + 10 * j + 100 * slice) as i16 - 300
}

fn write_small_series(dir: &Path, uid: &str, orientation: [f64; 6], positions: &[[f64; 3]]) {
    write_small_series_typed(
        dir,
        uid,
        orientation,
        positions,
        &["ORIGINAL", "PRIMARY", "AXIAL"],
        "s",
    );
}

fn write_small_series_typed(
    dir: &Path,
    uid: &str,
    orientation: [f64; 6],
    positions: &[[f64; 3]],
    image_type: &[&str],
    prefix: &str,
) {
    let series = small_series(uid, image_type);
    let slice = |n: usize| SyntheticSlice {
        position: positions[n],
        orientation,
        stored: (0..12).map(|p| stored_value(p % 4, p / 4, n)).collect(),
        // Deliberately the reverse of the slice order.
        instance_number: (positions.len() - n) as i32,
    };
    write_series(dir, &series, positions.len(), slice, |n| {
        format!("{prefix}{n}")
    })
    .expect("write");
}

#[test]
fn oblique_series_geometry_is_exact_and_values_are_rescaled() {
    let tmp = tempfile::tempdir().expect("temp dir");
    // Rotated 30° about z, then tilted 20° about the rotated row axis: fully oblique.
    let (a, b) = (30f64.to_radians(), 20f64.to_radians());
    let row = nalgebra::Vector3::new(a.cos(), a.sin(), 0.0);
    let col0 = nalgebra::Vector3::new(-a.sin(), a.cos(), 0.0);
    let col = (col0 * b.cos() + nalgebra::Vector3::z() * b.sin()).normalize();
    let normal = row.cross(&col).normalize();
    let origin = nalgebra::Vector3::new(-12.5, 40.25, 101.0);
    let step = 1.25;
    // Files written in a scrambled order along the normal.
    let order = [3usize, 0, 4, 1, 2];
    let positions: Vec<[f64; 3]> = order
        .iter()
        .map(|&k| (origin + normal * step * k as f64).into())
        .collect();
    let iop = [row.x, row.y, row.z, col.x, col.y, col.z];
    write_small_series(tmp.path(), "1.2.3.5", iop, &positions);

    let img = load_primary(tmp.path()).expect("loads");
    let g = img.volume.geometry();
    assert_eq!(g.dims, [4, 3, 5]);
    let w = g.world_from_voxel();
    for (i, j, k) in [(0usize, 0usize, 0usize), (3, 2, 4), (1, 2, 3)] {
        let expected =
            origin + row * 0.75 * i as f64 + col * 0.5 * j as f64 + normal * step * k as f64;
        let got = w.transform_point(&nalgebra::Point3::new(i as f64, j as f64, k as f64));
        // DS strings carry ~16 significant characters.
        assert!(
            (got.coords - expected).norm() < 1e-9,
            "({i},{j},{k}): {got:?} vs {expected:?}"
        );
        // The slice written as file n holds pixel values tagged with n = position in `order`.
        let file_index = order.iter().position(|&o| o == k).expect("present");
        let hu = stored_value(i, j, file_index) as f32 * 2.0 - 1024.0;
        assert_eq!(img.volume.at(i, j, k), hu);
    }
    assert!(img.meta.warnings.is_empty(), "{:?}", img.meta.warnings);
    assert!(dicom::scan(tmp.path(), &ctx()).expect("scan").series[0]
        .orientation
        .starts_with("oblique"));
}

#[test]
fn shuffled_file_names_give_the_identical_volume() {
    let Some(data) = shared_data() else { return };
    let src = data.join("dicom/dcm_qa_ct_GE_gantry_tilt_head");
    let tmp = tempfile::tempdir().expect("temp dir");
    for (n, f) in files_under(&src)
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "dcm"))
        .enumerate()
    {
        // Names whose order has nothing to do with slice order.
        let name = format!("{:016x}", dicom::synthetic::scrambled_name(n as u64));
        std::fs::copy(f, tmp.path().join(name)).expect("copy");
    }
    let a = load_primary(&src).expect("original");
    let b = load_primary(tmp.path()).expect("shuffled");
    assert_eq!(a.volume.geometry(), b.volume.geometry());
    assert!(a.volume.data() == b.volume.data());
}

#[test]
fn localizer_and_stray_orientation_are_split_off_and_tilt_and_gaps_reported() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let axial = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];
    let stack: Vec<[f64; 3]> = (0..6).map(|k| [0.0, 0.0, 2.0 * k as f64]).collect();
    write_small_series(tmp.path(), "1.2.3.6", axial, &stack);
    // A localizer and a coronal stray image in the same series UID.
    write_small_series_typed(
        tmp.path(),
        "1.2.3.6",
        [1.0, 0.0, 0.0, 0.0, 0.0, -1.0],
        &[[0.0, 5.0, 0.0]],
        &["ORIGINAL", "PRIMARY", "LOCALIZER"],
        "loc",
    );
    write_small_series_typed(
        tmp.path(),
        "1.2.3.6",
        [0.0, 1.0, 0.0, 0.0, 0.0, -1.0],
        &[[3.0, 0.0, 0.0]],
        &["ORIGINAL", "PRIMARY", "AXIAL"],
        "stray",
    );
    let s = scan(tmp.path()).expect("scan");
    assert_eq!(
        s.series.len(),
        3,
        "{:#?}",
        s.series
            .iter()
            .map(|r| (&r.description, &r.warnings))
            .collect::<Vec<_>>()
    );
    let main = &s.series[0];
    assert_eq!(main.part, 0);
    assert_eq!(main.dims, [4, 3, 6]);
    assert!(main.warnings.iter().any(|w| w.contains("split off")));
    assert!(s
        .series
        .iter()
        .any(|r| r.is_localizer && r.description.contains("localizer")));
    let (primary, why) = dicom::primary_series(&s).expect("a primary");
    assert_eq!(primary, 0, "{why}");

    // Gantry tilt 15° plus one missing slice, in another series.
    let tilted = tmp.path().join("tilted");
    let tan = 15f64.to_radians().tan();
    let zs = [0.0, 3.0, 6.0, 12.0, 15.0];
    let pos: Vec<[f64; 3]> = zs.iter().map(|z| [0.0, z * tan, *z]).collect();
    write_small_series(&tilted, "1.2.3.7", axial, &pos);
    let s = scan(&tilted).expect("scan");
    let info = &s.series[0];
    assert!(
        info.warnings
            .iter()
            .any(|w| w.contains("gantry tilt 15.00")),
        "{:?}",
        info.warnings
    );
    assert!(
        info.warnings
            .iter()
            .any(|w| w.contains("missing slices: 1 missing")),
        "{:?}",
        info.warnings
    );
    assert_eq!(info.dims[2], 6);
    let img = dicom::load_series(&s, 0, &ctx()).expect("loads");
    // Slice 3 is the interpolated one, midway between acquired slices 2 and 3 (files 2 and 3).
    let mid = (stored_value(1, 1, 2) as f32 + stored_value(1, 1, 3) as f32) / 2.0 * 2.0 - 1024.0;
    assert!((img.volume.at(1, 1, 3) - mid).abs() < 1e-3);
    // Acquired slice 4 (z = 12) sits exactly at k = 4 on the sheared grid.
    let p = img
        .volume
        .geometry()
        .world_from_voxel_point([0.0, 0.0, 4.0]);
    assert!((p.coords - nalgebra::Vector3::new(0.0, 12.0 * tan, 12.0)).norm() < 1e-9);
}

#[test]
fn synthetic_ct_writer_round_trips() {
    let tmp = tempfile::tempdir().expect("temp dir");
    dicom::write_synthetic_ct_series(tmp.path(), [32, 24, 10], [0.8, 0.8, 1.5]).expect("write");
    let s = scan(tmp.path()).expect("scan");
    assert_eq!(s.series.len(), 1);
    assert_eq!(s.series[0].dims, [32, 24, 10]);
    assert_eq!(s.series[0].spacing_mm, [0.8, 0.8, 1.5]);
    let watched = ctx();
    let img = dicom::load_series(&s, 0, &watched).expect("load");
    assert_eq!(
        watched.progress().fraction(),
        1.0,
        "progress reaches the end"
    );
    let (lo, hi) = img.volume.min_max();
    assert!(
        lo <= -1000.0 && hi >= 1000.0,
        "air and bone present: {lo}..{hi}"
    );
    assert!(img.meta.warnings.is_empty(), "{:?}", img.meta.warnings);
    // A cancelled job stops with Cancelled, not a partial volume.
    let cancelled = ctx();
    cancelled.cancel_token().cancel();
    assert!(matches!(
        dicom::load_series(&s, 0, &cancelled),
        Err(IoError::Cancelled)
    ));
}

// ---------------------------------------------------------------------------------------------
// Siemens mosaic against dcm2niix.

/// LPS world_from_voxel of a NIfTI's sform, and its voxels.
fn read_nifti_lps(path: &Path) -> (nalgebra::Matrix4<f64>, ndarray::ArrayD<f32>) {
    use nifti::{IntoNdArray, NiftiObject};
    let nii = nifti::ReaderOptions::new()
        .read_file(path)
        .expect("reference NIfTI");
    let h = nii.header().clone();
    assert!(h.sform_code > 0);
    let sign = [-1.0, -1.0, 1.0];
    let rows = [h.srow_x, h.srow_y, h.srow_z];
    let mut m = nalgebra::Matrix4::<f64>::identity();
    for r in 0..3 {
        for c in 0..4 {
            m[(r, c)] = sign[r] * rows[r][c] as f64;
        }
    }
    (m, nii.into_volume().into_ndarray::<f32>().expect("voxels"))
}

#[test]
fn siemens_mosaics_match_dcm2niix() {
    let Some(data) = shared_data() else { return };
    let root = data.join("dicom/dcm_qa_siemens_mosaic_orientation");
    for (folder, reference) in [
        ("axdesc35", "ax_desc_35sl_7.nii"),
        ("corint35", "cor_int_35sl_18.nii"),
        ("sagasc36", "sag_asc_36sl_19.nii"),
    ] {
        let img = load_primary(&root.join(folder)).expect(folder);
        let (ref_world_from_voxel, ref_voxels) =
            read_nifti_lps(&root.join("Ref_dcm2niix").join(reference));
        let ref_voxel_from_world = ref_world_from_voxel.try_inverse().expect("invertible");
        let dims = img.volume.dims();
        assert_eq!(&ref_voxels.shape()[..3], &dims[..], "{folder}");
        let g = img.volume.geometry();
        let mut max_diff = 0f32;
        for k in 0..dims[2] {
            for j in (0..dims[1]).step_by(3) {
                for i in (0..dims[0]).step_by(3) {
                    let p = g.world_from_voxel_point([i as f64, j as f64, k as f64]);
                    let v = ref_voxel_from_world.transform_point(&p);
                    let idx = [v.x.round(), v.y.round(), v.z.round()];
                    assert!(
                        (v.x - idx[0]).abs() < 1e-2
                            && (v.y - idx[1]).abs() < 1e-2
                            && (v.z - idx[2]).abs() < 1e-2,
                        "{folder} voxel ({i},{j},{k}) lands at {v:?} in the reference"
                    );
                    // The first time point of the 4D reference.
                    let r = ref_voxels[[idx[0] as usize, idx[1] as usize, idx[2] as usize, 0]];
                    max_diff = max_diff.max((img.volume.at(i, j, k) - r).abs());
                }
            }
        }
        assert_eq!(max_diff, 0.0, "{folder}: voxel values differ from dcm2niix");
    }
}

/// Inputs the fuzzer found (fuzz/regressions/dicom_reader): each once aborted or panicked inside
/// a third-party decoder. Now each series loads or is refused with a typed error naming the file;
/// either way the test process survives to check it.
///  - openjp2-null-dealloc.dcm: openjp2 freed a null pointer (vendor/openjp2/PATCHES.md).
///  - rle-index-out-of-bounds.dcm: the RLE adapter indexes past its segment (a caught panic).
#[test]
fn corrupted_streams_from_the_fuzzer_are_refused_not_fatal() {
    for name in ["openjp2-null-dealloc.dcm", "rle-index-out-of-bounds.dcm"] {
        let reproducer = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/regressions/dicom_reader")
            .join(name);
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(&reproducer, dir.path().join("image.dcm")).unwrap();
        let Ok(scan) = scan(dir.path()) else { continue };
        for index in 0..scan.series.len() {
            match fuseprint::io::dicom::load_series(&scan, index, &ctx()) {
                Err(e) => {
                    let message = e.to_string();
                    assert!(
                        message.contains("image.dcm"),
                        "{name}: error names the file: {message}"
                    );
                }
                Ok(image) => assert!(
                    image.volume.data().iter().all(|v| v.is_finite()),
                    "{name}: a loaded volume is finite"
                ),
            }
        }
    }
}
