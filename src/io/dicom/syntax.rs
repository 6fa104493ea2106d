//! Transfer syntaxes: a human name for each, and whether we can decode it.

use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};

const JPEG_LS_LOSSLESS: &str = "1.2.840.10008.1.2.4.80";
const JPEG_LS_NEAR_LOSSLESS: &str = "1.2.840.10008.1.2.4.81";
const JPEG_EXTENDED: &str = "1.2.840.10008.1.2.4.51";

/// A short name a radiologist recognises, e.g. "JPEG 2000 (lossless)".
pub fn transfer_syntax_name(uid: &str) -> String {
    let uid = uid.trim_end_matches(['\0', ' ']);
    let known = match uid {
        "1.2.840.10008.1.2" => "Implicit VR Little Endian",
        "1.2.840.10008.1.2.1" => "Explicit VR Little Endian",
        "1.2.840.10008.1.2.1.99" => "Deflated Explicit VR Little Endian",
        "1.2.840.10008.1.2.2" => "Explicit VR Big Endian",
        "1.2.840.10008.1.2.4.50" => "JPEG baseline (lossy, 8-bit)",
        JPEG_EXTENDED => "JPEG extended (lossy, 12-bit)",
        "1.2.840.10008.1.2.4.57" => "JPEG lossless",
        "1.2.840.10008.1.2.4.70" => "JPEG lossless (first-order prediction)",
        JPEG_LS_LOSSLESS => "JPEG-LS (lossless)",
        JPEG_LS_NEAR_LOSSLESS => "JPEG-LS (near-lossless)",
        "1.2.840.10008.1.2.4.90" => "JPEG 2000 (lossless)",
        "1.2.840.10008.1.2.4.91" => "JPEG 2000 (lossy)",
        "1.2.840.10008.1.2.4.201" | "1.2.840.10008.1.2.4.202" | "1.2.840.10008.1.2.4.203" => {
            "HTJ2K"
        }
        "1.2.840.10008.1.2.5" => "RLE lossless",
        "1.2.840.10008.1.2.8.1" => "Deflated Image Frame Compression",
        _ => "",
    };
    if !known.is_empty() {
        return known.to_string();
    }
    match TransferSyntaxRegistry.get(uid) {
        Some(ts) => ts.name().to_string(),
        None => format!("unknown transfer syntax {uid}"),
    }
}

/// `Err(reason)` when pixel data in this syntax cannot be decoded here, decided from the header
/// alone so `scan` can say so before anyone waits for a load.
pub fn check_decodable(uid: &str, bits_stored: u16) -> Result<(), String> {
    let uid = uid.trim_end_matches(['\0', ' ']);
    let _ = bits_stored;
    // JPEG-LS and (12-bit) JPEG extended go to our own decoders (`io::jpegls`, `io::jpeg12`):
    // dicom-pixeldata needs CharLS (C++) for the first and its JPEG crate refuses 12 bits.
    if own_codec(uid).is_some() {
        return Ok(());
    }
    match TransferSyntaxRegistry.get(uid) {
        None => Err("transfer syntax is not known".to_string()),
        Some(ts) if ts.is_codec_free() || ts.can_decode_all() => Ok(()),
        Some(_) => Err("no decoder for this transfer syntax is built in".to_string()),
    }
}

/// Codecs of our own, used instead of dicom-pixeldata's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnCodec {
    JpegLs,
    JpegExtended,
}

pub fn own_codec(uid: &str) -> Option<OwnCodec> {
    match uid.trim_end_matches(['\0', ' ']) {
        JPEG_LS_LOSSLESS | JPEG_LS_NEAR_LOSSLESS => Some(OwnCodec::JpegLs),
        JPEG_EXTENDED => Some(OwnCodec::JpegExtended),
        _ => None,
    }
}

/// Whether pixel data is stored raw (so we can convert it without a codec).
pub fn is_native(uid: &str) -> bool {
    let uid = uid.trim_end_matches(['\0', ' ']);
    matches!(
        uid,
        "1.2.840.10008.1.2"
            | "1.2.840.10008.1.2.1"
            | "1.2.840.10008.1.2.2"
            | "1.2.840.10008.1.2.1.99"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_support() {
        assert_eq!(
            transfer_syntax_name("1.2.840.10008.1.2.4.90\0"),
            "JPEG 2000 (lossless)"
        );
        assert!(check_decodable(JPEG_LS_LOSSLESS, 16).is_ok());
        assert!(check_decodable(JPEG_EXTENDED, 12).is_ok());
        assert!(check_decodable("1.2.840.10008.1.2.4.100", 8).is_err());
        assert!(check_decodable("1.2.840.10008.1.2.1", 16).is_ok());
        assert!(check_decodable("1.2.840.10008.1.2.5", 16).is_ok());
        assert!(is_native("1.2.840.10008.1.2"));
        assert!(!is_native("1.2.840.10008.1.2.5"));
    }
}
