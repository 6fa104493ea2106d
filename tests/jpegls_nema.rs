//! Our own codecs against the NEMA WG04 reference images in ../shared/data: JPEG-LS
//! lossless (JLSL) must be bit-exact, near-lossless (JLSN) within its NEAR bound, and
//! 12-bit lossy JPEG (JPLY) close to the reference by PSNR.

mod common;
use common::shared_data;

use dicom_dictionary_std::tags;
use dicom_object::{open_file, DefaultDicomObject, OpenFileOptions};
use fuseprint::io::{jpeg12, jpegls};
use std::io::Read;
use std::path::Path;

/// The uncompressed reference pixels (zstd-compressed DICOM) as u16 words.
fn reference_pixels(path: &Path) -> (Vec<u16>, DefaultDicomObject) {
    let mut compressed = std::fs::File::open(path).expect("reference readable");
    let mut decoder =
        ruzstd::decoding::StreamingDecoder::new(&mut compressed).expect("zstd stream");
    let mut dicom = Vec::new();
    decoder.read_to_end(&mut dicom).expect("zstd decodes");
    let tmp = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(tmp.path(), &dicom).expect("temp write");
    let obj = OpenFileOptions::new()
        .open_file(tmp.path())
        .expect("reference DICOM parses");
    let bytes = obj
        .element(tags::PIXEL_DATA)
        .expect("pixel data")
        .to_bytes()
        .expect("bytes")
        .to_vec();
    let words = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    (words, obj)
}

fn encapsulated_frame(path: &Path) -> Vec<u8> {
    let obj = open_file(path).expect("JPEG-LS DICOM parses");
    let elem = obj.element(tags::PIXEL_DATA).expect("pixel data");
    let fragments = elem.value().fragments().expect("encapsulated pixel data");
    fragments.iter().flat_map(|f| f.iter().copied()).collect()
}

fn compare(kind: &str, max_allowed_error: Option<i32>) {
    let Some(data) = shared_data() else { return };
    let dir = data.join("dicom/nema-wg04-codecs");
    for name in ["CT1", "CT2", "MR1", "MR3", "MR4"] {
        let (reference, ref_obj) = reference_pixels(&dir.join(format!("REF/{name}_UNC.zst")));
        let bits_stored = ref_obj
            .element(tags::BITS_STORED)
            .expect("bits")
            .to_int::<u16>()
            .expect("int");
        let mask = if bits_stored >= 16 {
            0xFFFF
        } else {
            (1u32 << bits_stored) as u16 - 1
        };
        let image = jpegls::decode(&encapsulated_frame(
            &dir.join(format!("{kind}/{name}_{kind}")),
        ))
        .expect("decodes");
        assert_eq!(image.samples.len(), reference.len(), "{name}: sample count");
        let worst = image
            .samples
            .iter()
            .zip(&reference)
            .map(|(a, b)| (*a as i32 - (*b & mask) as i32).abs())
            .max()
            .unwrap_or(0);
        let bound = max_allowed_error.unwrap_or(image.near as i32);
        println!(
            "{kind}/{name}: {}x{} {} bits NEAR={} max |error| = {worst}",
            image.width, image.height, image.bits_per_sample, image.near
        );
        assert!(
            worst <= bound,
            "{kind}/{name}: max error {worst} exceeds {bound}"
        );
    }
}

#[test]
fn lossless_jpegls_is_bit_exact() {
    compare("JLSL", Some(0));
}

#[test]
fn near_lossless_jpegls_stays_within_near() {
    compare("JLSN", None);
}

#[test]
fn twelve_bit_lossy_jpeg_matches_the_reference() {
    let Some(data) = shared_data() else { return };
    let dir = data.join("dicom/nema-wg04-codecs");
    for name in ["MR1", "MR3", "MR4"] {
        let (reference, ref_obj) = reference_pixels(&dir.join(format!("REF/{name}_UNC.zst")));
        let _ = ref_obj;
        let image = jpeg12::decode(&encapsulated_frame(&dir.join(format!("JPLY/{name}_JPLY"))))
            .expect("decodes");
        assert_eq!(image.samples.len(), reference.len(), "{name}: sample count");
        // Peak = the reference's own dynamic range, not the container's bit depth.
        let (lo, hi) = reference
            .iter()
            .fold((u16::MAX, 0u16), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let peak = (hi - lo) as f64;
        let max_err = image
            .samples
            .iter()
            .zip(&reference)
            .map(|(a, b)| (*a as i32 - *b as i32).abs())
            .max()
            .unwrap_or(0);
        let mse = image
            .samples
            .iter()
            .zip(&reference)
            .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
            .sum::<f64>()
            / reference.len() as f64;
        let psnr = 10.0 * (peak * peak / mse.max(1e-12)).log10();
        println!(
            "JPLY/{name}: {} bits, range {lo}..{hi}, PSNR {psnr:.1} dB, max |error| {max_err}",
            image.precision
        );
        // Lossy JPEG at NEMA's quality: anything below 40 dB would mean a decoding error, not compression.
        assert!(psnr > 40.0, "{name}: PSNR {psnr:.1} dB");
    }
}
