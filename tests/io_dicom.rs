//! DICOM import on the real files in ../shared/data and on files written here.

use std::path::{Path, PathBuf};

use fuseprint::io::dicom::{self, DicomScan};
use fuseprint::io::{IoError, LoadedImage};
use fuseprint::jobs::JobContext;

fn shared_data() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    if p.is_dir() {
        Some(p)
    } else if std::env::var_os("FUSEPRINT_REQUIRE_DATA").is_some() {
        panic!("../shared/data is missing")
    } else {
        eprintln!("skipping: ../shared/data not found");
        None
    }
}

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
    let mut table = String::new();
    for f in &files {
        let rel = f.strip_prefix(&data).unwrap_or(f).display().to_string();
        let result = load_primary(f);
        let label = outcome_label(&result);
        table.push_str(&format!("{rel:<90} {label}\n"));
    }
    println!("{table}");
}

// ---------------------------------------------------------------------------------------------
// Codecs: NEMA WG04 files against their uncompressed references.

/// Decompresses a REF/*.zst with the `zstd` tool into `dir`; `None` when the tool is missing.
fn unzstd(src: &Path, dir: &Path) -> Option<PathBuf> {
    let out = std::process::Command::new("zstd")
        .arg("-d")
        .arg("-c")
        .arg(src)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let name = src.file_stem()?.to_owned();
    let path = dir.join(name);
    std::fs::write(&path, out.stdout).ok()?;
    Some(path)
}

#[test]
fn nema_codecs_match_uncompressed_references() {
    let Some(data) = shared_data() else { return };
    let nema = data.join("dicom/nema-wg04-codecs");
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut table = String::new();
    let mut compared = 0;
    for image in ["CT1", "CT2", "MR1", "MR3", "MR4"] {
        let Some(reference) = unzstd(&nema.join(format!("REF/{image}_UNC.zst")), tmp.path()) else {
            eprintln!("skipping codec comparison: the zstd tool is not available");
            return;
        };
        let reference = load_primary(&reference).expect("reference loads");
        for codec in ["J2KR", "JPLL", "RLE", "J2KI", "JPLY", "JLSL", "JLSN"] {
            let path = nema.join(format!("{codec}/{image}_{codec}"));
            if !path.exists() {
                continue;
            }
            match load_primary(&path) {
                Ok(img) => {
                    assert_eq!(
                        img.volume.geometry(),
                        reference.volume.geometry(),
                        "{codec} {image}"
                    );
                    let (max_err, mean_err) = errors(img.volume.data(), reference.volume.data());
                    table.push_str(&format!(
                        "{image} {codec:<5} max |diff| {max_err:>8.1}  mean |diff| {mean_err:.3}\n"
                    ));
                    if codec == "J2KI" {
                        // Lossy JPEG 2000 at the ratios NEMA used: small mean error, bounded peaks.
                        let (lo, hi) = reference.volume.min_max();
                        assert!(
                            mean_err < 0.02 * (hi - lo) as f64,
                            "{codec} {image} mean {mean_err}"
                        );
                    } else {
                        assert_eq!(max_err, 0.0, "{codec} {image} must be bit-exact");
                    }
                    compared += 1;
                }
                Err(IoError::UnsupportedTransferSyntax { name, .. }) => {
                    assert!(
                        matches!(codec, "JLSL" | "JLSN" | "JPLY"),
                        "{codec} {image} unexpectedly refused ({name})"
                    );
                    table.push_str(&format!("{image} {codec:<5} refused: {name}\n"));
                }
                Err(e) => panic!("{codec} {image}: {e}"),
            }
        }
    }
    println!("{table}");
    assert_eq!(compared, 20, "J2KR, JPLL, RLE and J2KI for five images");
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
fn jpeg_ls_is_refused_with_its_name() {
    let Some(data) = shared_data() else { return };
    let path = data.join("dicom/nema-wg04-codecs/JLSL/CT1_JLSL");
    let scan = scan(&path).expect("header scan works");
    assert!(scan.series[0]
        .warnings
        .iter()
        .any(|w| w.contains("JPEG-LS")));
    let err = dicom::load_series(&scan, 0, &ctx()).expect_err("refused");
    let msg = err.to_string();
    assert!(
        matches!(err, IoError::UnsupportedTransferSyntax { .. }),
        "{msg}"
    );
    assert!(
        msg.contains("JPEG-LS")
            && msg.contains("1.2.840.10008.1.2.4.80")
            && msg.contains("CT1_JLSL"),
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
