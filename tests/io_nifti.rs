//! NIfTI reading on the staged real files, bad input refused with typed errors, and a
//! deterministic mutation smoke test (the stable-Rust stand-in for cargo fuzz in CI).

mod common;
use common::shared_data;

use fuseprint::io::nifti::{read_nifti, read_nifti_bytes};
use fuseprint::io::{save_nifti, IoError};
use fuseprint::jobs::JobContext;
use fuseprint::volume::{Volume, VolumeGeometry};
use nalgebra::Matrix4;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

fn inflate(path: &Path) -> Vec<u8> {
    let raw = std::fs::read(path).expect("read");
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .expect("gunzip");
        out
    } else {
        raw
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}

fn f32_at(b: &[u8], at: usize) -> f64 {
    f32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as f64
}

/// The LPS affine computed straight from a little-endian NIfTI-1 header's sform rows,
/// independently of the reader: `diag(-1, -1, 1) · srow`.
fn lps_from_sform_bytes(h: &[u8]) -> Matrix4<f64> {
    let mut m = Matrix4::identity();
    for r in 0..3 {
        for c in 0..4 {
            let sign = if r < 2 { -1.0 } else { 1.0 };
            m[(r, c)] = sign * f32_at(h, 280 + 16 * r + 4 * c);
        }
    }
    m
}

fn staged_niftis(data: &Path) -> Vec<PathBuf> {
    [
        "totalsegmentator/example_ct_sm.nii.gz",
        "totalsegmentator/example_ct.nii.gz",
        "totalsegmentator/example_mr_sm.nii.gz",
        "totalsegmentator/example_seg.nii.gz",
        "totalsegmentator/example_seg_dicom.nii.gz",
        "totalsegmentator/pulmonary_report/ct_cropped.nii.gz",
        "registration/mri_dir_porcine_phantom/mr_t2_from_dicom.nii.gz",
        "niivue-images/CT_pitch.nii.gz",
        "templates/clinical_ct_template_mni/scct.nii.gz",
        "dicom/dcm_qa_siemens_mosaic_orientation/Ref_dcm2niix/cor_int_35sl_18.nii",
    ]
    .iter()
    .map(|p| data.join(p))
    .collect()
}

#[test]
fn staged_files_match_their_sform_and_voxels() {
    let Some(data) = shared_data() else { return };
    for path in staged_niftis(&data) {
        let img = read_nifti(&path, &JobContext::detached())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let raw = inflate(&path);
        let sform_code = i16::from_le_bytes([raw[254], raw[255]]);
        assert!(sform_code > 0, "{} has no sform", path.display());
        let expected = lps_from_sform_bytes(&raw);
        let ours = img.image.volume.geometry().world_from_voxel();
        assert!(
            (ours - expected).abs().max() < 1e-6,
            "{}: {ours} vs {expected}",
            path.display()
        );
        // Spot-check voxel values against the raw bytes for the common i16 case.
        let datatype = i16::from_le_bytes([raw[70], raw[71]]);
        let offset = f32_at(&raw, 108) as usize;
        let slope = f32_at(&raw, 112);
        let inter = f32_at(&raw, 116);
        if datatype == 4 {
            let n = img.image.volume.data().len();
            for idx in [0, n / 3, n / 2, n - 1] {
                let at = offset + 2 * idx;
                let v = i16::from_le_bytes([raw[at], raw[at + 1]]) as f64;
                let v = if slope != 0.0 { v * slope + inter } else { v };
                assert_eq!(img.image.volume.data()[idx] as f64, v, "{}", path.display());
            }
        }
    }
}

/// Affines printed by nibabel 5 (`nib.load(f).affine`, RAS) via
/// scripts/check_nifti_geometry.py, converted to LPS by negating the first two rows.
#[test]
fn affines_agree_with_nibabel() {
    let Some(data) = shared_data() else { return };
    let cases: [(&str, [[f64; 4]; 3]); 3] = [
        (
            "totalsegmentator/example_ct_sm.nii.gz",
            [
                [3.0, 0.0, 0.0, -177.95632935],
                [0.0, 3.0, 0.0, 11.31900024],
                [0.0, 0.0, 3.0, 94.30175781],
            ],
        ),
        (
            "dicom/dcm_qa_siemens_mosaic_orientation/Ref_dcm2niix/cor_int_35sl_18.nii",
            [
                [-3.25, 0.0, 0.0, 104.0],
                [0.0, -0.49720395, -3.55762219, 148.53213501],
                [0.0, 3.21174216, -0.550749, -92.3804245],
            ],
        ),
        (
            "registration/mri_dir_porcine_phantom/ct_from_dicom_2x_inplane.nii.gz",
            [
                [-0.78125, 0.0, 0.0, 99.8046875],
                [0.0, -0.78125, 0.0, 99.8046875],
                [0.0, 0.0, 0.625, -122.25],
            ],
        ),
    ];
    for (file, ras) in cases {
        let img = read_nifti(&data.join(file), &JobContext::detached()).expect(file);
        let ours = img.image.volume.geometry().world_from_voxel();
        for r in 0..3 {
            let sign = if r < 2 { -1.0 } else { 1.0 };
            for c in 0..4 {
                assert!(
                    (ours[(r, c)] - sign * ras[r][c]).abs() < 1e-5,
                    "{file} [{r},{c}]: {} vs {}",
                    ours[(r, c)],
                    sign * ras[r][c]
                );
            }
        }
    }
}

#[test]
fn four_d_files_load_the_first_volume_with_a_warning() {
    let Some(data) = shared_data() else { return };
    let path = data.join("dicom/dcm_qa_siemens_mosaic_orientation/Ref_dcm2niix/ax_desc_35sl_7.nii");
    let img = read_nifti(&path, &JobContext::detached()).expect("4D");
    assert_eq!(img.image.volume.dims(), [64, 64, 35]);
    assert!(img.image.meta.warnings[0].contains("2 volumes"));
}

#[test]
fn real_file_survives_a_write_read_round_trip() {
    let Some(data) = shared_data() else { return };
    let dir = tempfile::tempdir().expect("tmp");
    let src = data.join("totalsegmentator/example_ct_sm.nii.gz");
    let img = read_nifti(&src, &JobContext::detached()).expect("read");
    let out = dir.path().join("copy.nii.gz");
    save_nifti(&out, &img.image, false).expect("write");
    // Readable by a plain gzip reader, and identical through ours.
    assert!(inflate(&out).len() > 352);
    let back = read_nifti(&out, &JobContext::detached()).expect("re-read");
    assert_eq!(back.image.volume.data(), img.image.volume.data());
    let (a, b) = (
        back.image.volume.geometry().world_from_voxel(),
        img.image.volume.geometry().world_from_voxel(),
    );
    assert!((a - b).abs().max() < 1e-4);
}

// ---------- bad input ----------

fn small_valid_nii() -> Vec<u8> {
    let g =
        VolumeGeometry::axis_aligned([6, 5, 4], [1.0, 1.5, 2.0], [3.0, -4.0, 5.0]).expect("valid");
    let v = Volume::from_fn(g, |[i, j, k]| (i + 10 * j + 100 * k) as f32);
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("small.nii");
    save_nifti(&p, &v, false).expect("write");
    std::fs::read(&p).expect("read")
}

fn write_bad(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write");
    p
}

fn expect_invalid(path: &Path, wanted: &str) {
    let err = read_nifti(path, &JobContext::detached()).expect_err("must fail");
    let msg = err.to_string();
    assert!(
        matches!(err, IoError::InvalidNifti { .. } | IoError::Corrupt { .. }),
        "{msg}"
    );
    assert!(msg.contains(wanted), "{msg} should mention {wanted}");
    let name = path.file_name().expect("name").to_string_lossy();
    assert!(msg.contains(name.as_ref()), "{msg} should name the file");
}

fn set_i16(b: &mut [u8], at: usize, v: i16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn lying_and_broken_headers_are_refused_with_reasons() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let good = small_valid_nii();

    let mut big = good.clone();
    set_i16(&mut big, 42, 6000); // dim[1]: far more voxels than the file holds
    expect_invalid(&write_bad(d, "lies.nii", &big), "header says");
    let p = write_bad(d, "lies.nii.gz", &gzip(&big));
    expect_invalid(&p, "header says");
    // Both sizes appear in the message.
    let msg = read_nifti(&p, &JobContext::detached())
        .expect_err("lie")
        .to_string();
    assert!(msg.contains(&(352 + 6000 * 5 * 4 * 2).to_string()), "{msg}");
    assert!(msg.contains(&good.len().to_string()), "{msg}");

    let gz = gzip(&good);
    expect_invalid(&write_bad(d, "truncated.nii.gz", &gz[..gz.len() / 2]), "");

    let mut magic = good.clone();
    magic[344..348].copy_from_slice(b"XXXX");
    expect_invalid(&write_bad(d, "magic.nii", &magic), "magic");

    let mut zero = good.clone();
    set_i16(&mut zero, 44, 0);
    expect_invalid(&write_bad(d, "zero.nii", &zero), "dim[2]");
    let mut neg = good.clone();
    set_i16(&mut neg, 46, -3);
    expect_invalid(&write_bad(d, "negative.nii", &neg), "dim[3]");

    let mut nan = good.clone();
    nan[80..84].copy_from_slice(&f32::NAN.to_le_bytes());
    expect_invalid(&write_bad(d, "nan.nii", &nan), "pixdim[1]");

    let mut rank = good.clone();
    set_i16(&mut rank, 40, 9);
    expect_invalid(&write_bad(d, "rank.nii", &rank), "dim[0]");

    expect_invalid(&write_bad(d, "short.nii", &good[..100]), "header");
    expect_invalid(&write_bad(d, "empty.nii", &[]), "too short");
}

/// A NIfTI-2 header claiming 2^40 voxels per axis: must be refused before allocation.
#[test]
fn absurd_nifti2_dims_overflow_cleanly() {
    let mut b = vec![0u8; 544];
    b[0..4].copy_from_slice(&540i32.to_le_bytes());
    b[4..12].copy_from_slice(b"n+2\0\r\n\x1a\n");
    b[12..14].copy_from_slice(&16i16.to_le_bytes());
    let dims = [3i64, 1 << 40, 1 << 40, 1 << 40, 1, 1, 1, 1];
    for (n, d) in dims.iter().enumerate() {
        b[16 + 8 * n..24 + 8 * n].copy_from_slice(&d.to_le_bytes());
    }
    for n in 0..4 {
        b[104 + 8 * n..112 + 8 * n].copy_from_slice(&1f64.to_le_bytes());
    }
    b[168..176].copy_from_slice(&544i64.to_le_bytes());
    let err = read_nifti_bytes(&b, "absurd.nii").expect_err("overflow");
    assert!(err.to_string().contains("overflow"), "{err}");
    // A gzip whose header claims terabytes is refused from the compressed size alone.
    let mut dims_ok = b.clone();
    for n in 1..4 {
        dims_ok[16 + 8 * n..24 + 8 * n].copy_from_slice(&(1i64 << 14).to_le_bytes());
    }
    let err = read_nifti_bytes(&gzip(&dims_ok), "huge.nii.gz").expect_err("too big");
    assert!(err.to_string().contains("at most"), "{err}");
}

/// A valid NIfTI-2 file (written here by hand) reads with the same voxels and sform.
#[test]
fn nifti2_reads() {
    let mut b = vec![0u8; 544];
    b[0..4].copy_from_slice(&540i32.to_le_bytes());
    b[4..12].copy_from_slice(b"n+2\0\r\n\x1a\n");
    b[12..14].copy_from_slice(&4i16.to_le_bytes());
    for (n, d) in [3i64, 3, 2, 2, 1, 1, 1, 1].iter().enumerate() {
        b[16 + 8 * n..24 + 8 * n].copy_from_slice(&d.to_le_bytes());
    }
    for (n, p) in [1f64, 0.5, 0.25, 2.0].iter().enumerate() {
        b[104 + 8 * n..112 + 8 * n].copy_from_slice(&p.to_le_bytes());
    }
    b[168..176].copy_from_slice(&544i64.to_le_bytes());
    b[348..352].copy_from_slice(&1i32.to_le_bytes()); // sform_code
    let rows = [
        [0.5, 0.0, 0.0, 10.0],
        [0.0, 0.25, 0.0, 20.0],
        [0.0, 0.0, 2.0, 30.0],
    ];
    for (r, row) in rows.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            let at = 400 + 32 * r + 8 * c;
            b[at..at + 8].copy_from_slice(&f64::to_le_bytes(*v));
        }
    }
    for v in 0..12i16 {
        b.extend_from_slice(&(v * 3 - 5).to_le_bytes());
    }
    let img = read_nifti_bytes(&b, "two.nii").expect("nifti-2");
    assert_eq!(img.header.version, 2);
    let expected: Vec<f32> = (0..12).map(|v| (v * 3 - 5) as f32).collect();
    assert_eq!(img.image.volume.data(), &expected[..]);
    let m = img.image.volume.geometry().world_from_voxel();
    assert_eq!(m[(0, 3)], -10.0);
    assert_eq!(m[(1, 1)], -0.25);
    assert_eq!(m[(2, 3)], 30.0);
}

/// Seeded xorshift64* so the mutations are the same on every run.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn mutate(rng: &mut XorShift, base: &[u8], header_bias: bool) -> Vec<u8> {
    let mut b = base.to_vec();
    match rng.below(4) {
        0 => {
            let len = rng.below(b.len() + 1);
            b.truncate(len);
        }
        _ => {
            for _ in 0..1 + rng.below(8) {
                let span = if header_bias {
                    352.min(b.len())
                } else {
                    b.len()
                };
                if span == 0 {
                    break;
                }
                let at = rng.below(span);
                b[at] = match rng.below(4) {
                    0 => 0,
                    1 => 0xff,
                    2 => b[at] ^ (1 << rng.below(8)),
                    _ => rng.next() as u8,
                };
            }
        }
    }
    b
}

/// Thousands of deterministic corruptions of real and synthetic files: only typed errors
/// or successful reads, never a panic.
#[test]
fn mutated_files_never_panic() {
    let mut seeds: Vec<Vec<u8>> = vec![small_valid_nii()];
    if let Some(data) = shared_data() {
        let raw = inflate(&data.join("totalsegmentator/example_seg.nii.gz"));
        seeds.push(raw);
    }
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut outcomes = [0usize; 2];
    for base in &seeds {
        let gz = gzip(base);
        for case in 0..1500 {
            let (input, header_bias) = match case % 3 {
                0 => (base.as_slice(), true),
                1 => (base.as_slice(), false),
                _ => (gz.as_slice(), false),
            };
            let bytes = mutate(&mut rng, input, header_bias);
            match read_nifti_bytes(&bytes, "mutant.nii") {
                Ok(img) => {
                    assert_eq!(
                        img.image.volume.data().len(),
                        img.image.volume.geometry().voxel_count()
                    );
                    outcomes[0] += 1;
                }
                Err(e) => {
                    assert!(e.to_string().contains("mutant.nii"), "{e}");
                    outcomes[1] += 1;
                }
            }
        }
    }
    // Both paths were exercised, so the mutator is neither too gentle nor too harsh.
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
}

/// A DICOM series converted to NIfTI and read back places every voxel at the same LPS
/// position with the same value as the DICOM load (the nibabel/pydicom script checks
/// the same property with independent readers).
#[test]
fn dicom_series_converted_to_nifti_keeps_geometry_and_values() {
    let Some(data) = shared_data() else { return };
    let dir = tempfile::tempdir().expect("tmp");
    for series in [
        "registration/mri_dir_porcine_phantom/ct_dicom_subset",
        "dicom/dcm_qa_ct_GE_gantry_tilt_head",
    ] {
        let src = data.join(series);
        let ctx = JobContext::detached();
        let (dicom, _) = fuseprint::io::load_dicom_series(&src, None, &ctx).expect(series);
        let out = dir
            .path()
            .join(format!("{}.nii.gz", series.replace('/', "_")));
        save_nifti(&out, &dicom, false).expect("write");
        let back = read_nifti(&out, &ctx).expect("re-read").image;
        let (g, h) = (dicom.volume.geometry(), back.volume.geometry());
        assert_eq!(g.dims, h.dims);
        let [nx, ny, nz] = g.dims;
        for i in [0, nx / 2, nx - 1] {
            for j in [0, ny / 3, ny - 1] {
                for k in [0, nz / 2, nz - 1] {
                    let p = [i as f64, j as f64, k as f64];
                    let d = (g.world_from_voxel_point(p) - h.world_from_voxel_point(p)).norm();
                    // The NIfTI-1 header stores f32: ~1e-5 relative on ~100 mm coordinates.
                    assert!(d < 1e-3, "{series} voxel {p:?} moved {d} mm");
                }
            }
        }
        assert_eq!(back.volume.data(), dicom.volume.data(), "{series}");
    }
}
