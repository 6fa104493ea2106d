//! Pixel data to f32, written straight into the volume buffer, slices in parallel.
//!
//! Raw stored values are read (native syntaxes without any codec, encapsulated ones through
//! dicom-pixeldata), masked to BitsStored at HighBit, sign-extended when PixelRepresentation
//! is 1, inverted for MONOCHROME1 (not CT), then RescaleSlope/Intercept is applied per frame.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use dicom_core::value::{PrimitiveValue, Value};
use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;
use dicom_pixeldata::PixelDecoder;
use rayon::prelude::*;

use super::header::{error_chain, open_dicom, DicomFrame};
use super::syntax::{is_native, own_codec, transfer_syntax_name, OwnCodec};
use super::SeriesInfo;
use crate::io::{jpeg12, jpegls, IoError};
use crate::jobs::JobContext;

pub(crate) fn decode_series(info: &SeriesInfo, ctx: &JobContext) -> Result<Vec<f32>, IoError> {
    let [nx, ny, _] = info.layout.dims;
    let slice_len = nx * ny;
    let acquired = info.frames.len();
    if let [frame] = info.frames.as_slice() {
        if let Some(m) = frame.mosaic_info.as_ref() {
            return decode_mosaic(frame, m.slices as usize, slice_len, info, ctx);
        }
    }
    let mut buffer = vec![0f32; slice_len * acquired];
    let done = AtomicUsize::new(0);
    let report = || {
        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
        ctx.set_steps(n, acquired);
    };

    if info.frames.iter().all(|f| f.frames_in_file == 1) {
        // One file per slice: open, decode, drop, so only a few files are in memory at a time.
        buffer
            .par_chunks_mut(slice_len)
            .zip(info.frames.par_iter())
            .try_for_each_init(Vec::new, |scratch, (out, frame)| {
                ctx.check_cancelled()?;
                if !read_native_tail(frame, out, scratch)? {
                    let obj = open_dicom(&frame.path, true)?;
                    decode_frame(&obj, frame, out)?;
                }
                report();
                Ok::<(), IoError>(())
            })?;
    } else {
        let mut paths: Vec<&Path> = info.frames.iter().map(|f| f.path.as_path()).collect();
        paths.sort();
        paths.dedup();
        let objects: HashMap<&Path, DefaultDicomObject> = paths
            .par_iter()
            .map(|p| open_dicom(p, true).map(|o| (*p, o)))
            .collect::<Result<_, IoError>>()?;
        buffer
            .par_chunks_mut(slice_len)
            .zip(info.frames.par_iter())
            .try_for_each(|(out, frame)| {
                ctx.check_cancelled()?;
                let obj = objects
                    .get(frame.path.as_path())
                    .ok_or_else(|| IoError::Corrupt {
                        path: frame.path.clone(),
                        reason: "file vanished between scan and load".to_string(),
                    })?;
                decode_frame(obj, frame, out)?;
                report();
                Ok::<(), IoError>(())
            })?;
    }

    if !info.layout.resampled {
        return Ok(buffer);
    }
    ctx.set_stage("Resampling irregular slices");
    let mut out = vec![0f32; slice_len * info.layout.sources.len()];
    out.par_chunks_mut(slice_len)
        .zip(info.layout.sources.par_iter())
        .for_each(|(dst, src)| {
            let a = &buffer[src.lower * slice_len..(src.lower + 1) * slice_len];
            if src.weight == 0.0 {
                dst.copy_from_slice(a);
            } else {
                let b = &buffer[src.upper * slice_len..(src.upper + 1) * slice_len];
                let w = src.weight;
                for ((d, &x), &y) in dst.iter_mut().zip(a).zip(b) {
                    *d = x + (y - x) * w;
                }
            }
        });
    Ok(out)
}

const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";
const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";

/// Fast path for the common uncompressed little-endian file whose last element is Pixel Data:
/// read just the pixel bytes from the end of the file and convert them, with no DICOM parse.
/// `Ok(false)` when the file does not have that layout (the caller then parses it fully).
fn read_native_tail(
    frame: &DicomFrame,
    out: &mut [f32],
    scratch: &mut Vec<u8>,
) -> Result<bool, IoError> {
    use std::io::{Read, Seek, SeekFrom};
    let ts = frame.transfer_syntax_uid.as_str();
    let explicit = match ts {
        EXPLICIT_VR_LE => true,
        IMPLICIT_VR_LE => false,
        _ => return Ok(false),
    };
    if frame.frames_in_file != 1 || !matches!(frame.bits_allocated, 8 | 16 | 32) {
        return Ok(false);
    }
    let value_len =
        out.len() * frame.samples_per_pixel as usize * frame.bits_allocated as usize / 8;
    let padded = value_len + (value_len & 1);
    let header_len = if explicit { 12 } else { 8 };
    let mut file = std::fs::File::open(&frame.path).map_err(|e| IoError::os(&frame.path, e))?;
    let file_len = file
        .metadata()
        .map_err(|e| IoError::os(&frame.path, e))?
        .len() as usize;
    if file_len < padded + header_len + 132 || padded > u32::MAX as usize {
        return Ok(false);
    }
    let start = file_len - padded - header_len;
    file.seek(SeekFrom::Start(start as u64))
        .map_err(|e| IoError::os(&frame.path, e))?;
    // Reused per worker thread: a fresh 0.5 MB buffer per slice costs page faults.
    scratch.resize(padded + header_len, 0);
    let buf = scratch.as_mut_slice();
    file.read_exact(buf)
        .map_err(|e| IoError::os(&frame.path, e))?;
    let tag_ok = buf[0..4] == [0xE0, 0x7F, 0x10, 0x00];
    let len_field = if explicit { &buf[8..12] } else { &buf[4..8] };
    let vr_ok = !explicit || &buf[4..6] == b"OW" || &buf[4..6] == b"OB";
    if !tag_ok || !vr_ok || len_field != (padded as u32).to_le_bytes() {
        return Ok(false);
    }
    let format = sample_format(frame);
    convert(
        &Samples::Bytes(&buf[header_len..header_len + value_len]),
        &format,
        0,
        frame.samples_per_pixel as usize,
        frame.planar_configuration,
        frame.photometric.starts_with("YBR"),
        out,
    )
    .map_err(|reason| IoError::Corrupt {
        path: frame.path.clone(),
        reason,
    })?;
    Ok(true)
}

fn sample_format(frame: &DicomFrame) -> SampleFormat {
    let invert = frame.photometric.eq_ignore_ascii_case("MONOCHROME1")
        && !frame.modality.eq_ignore_ascii_case("CT");
    SampleFormat {
        bits_allocated: frame.bits_allocated,
        bits_stored: frame.bits_stored,
        shift: (frame.high_bit + 1).saturating_sub(frame.bits_stored) as u32,
        signed: frame.pixel_representation == 1,
        invert,
        slope: frame.rescale_slope as f32,
        intercept: frame.rescale_intercept as f32,
    }
}

/// Decodes the whole mosaic image once, then cuts its tiles into slices.
fn decode_mosaic(
    frame: &DicomFrame,
    slices: usize,
    slice_len: usize,
    info: &SeriesInfo,
    ctx: &JobContext,
) -> Result<Vec<f32>, IoError> {
    let (cols, rows) = (frame.cols as usize, frame.rows as usize);
    let mut mosaic = vec![0f32; cols * rows];
    if !read_native_tail(frame, &mut mosaic, &mut Vec::new())? {
        let obj = open_dicom(&frame.path, true)?;
        decode_frame(&obj, frame, &mut mosaic)?;
    }
    ctx.check_cancelled()?;
    let [tile_cols, tile_rows, _] = info.layout.dims;
    let m = super::mosaic::tiles_per_side(slices as u32) as usize;
    let mut out = vec![0f32; slice_len * slices];
    out.par_chunks_mut(slice_len)
        .enumerate()
        .for_each(|(k, dst)| {
            super::mosaic::copy_tile(&mosaic, cols, tile_cols, tile_rows, m, k, dst)
        });
    Ok(out)
}

/// How to turn one stored sample into a value.
struct SampleFormat {
    bits_allocated: u16,
    bits_stored: u16,
    shift: u32,
    signed: bool,
    invert: bool,
    slope: f32,
    intercept: f32,
}

impl SampleFormat {
    #[inline(always)]
    fn value(&self, raw: u32) -> f32 {
        let bs = self.bits_stored as u32;
        let mask = if bs >= 32 { u32::MAX } else { (1u32 << bs) - 1 };
        let bits = (raw >> self.shift) & mask;
        let mut v = if self.signed && bs < 32 && bits & (1 << (bs - 1)) != 0 {
            bits as i64 - (1i64 << bs)
        } else if self.signed && bs >= 32 {
            bits as i32 as i64
        } else {
            bits as i64
        };
        if self.invert {
            // min + max of the stored range: unsigned (2^bs - 1), signed -1.
            let sum = if self.signed {
                -1
            } else {
                (1i64 << bs.min(32)) - 1
            };
            v = sum - v;
        }
        v as f32 * self.slope + self.intercept
    }
}

/// Where the stored samples are.
enum Samples<'a> {
    Bytes(&'a [u8]),
    U16(&'a [u16]),
    I16(&'a [i16]),
    U32(&'a [u32]),
    I32(&'a [i32]),
}

impl Samples<'_> {
    /// Number of samples of `bits_allocated` held.
    fn len(&self, bits_allocated: u16) -> usize {
        match self {
            Samples::Bytes(b) => b.len() * 8 / bits_allocated as usize,
            Samples::U16(v) => v.len() * 16 / bits_allocated as usize,
            Samples::I16(v) => v.len() * 16 / bits_allocated as usize,
            Samples::U32(v) => v.len() * 32 / bits_allocated as usize,
            Samples::I32(v) => v.len() * 32 / bits_allocated as usize,
        }
    }
}

fn decode_frame(
    obj: &DefaultDicomObject,
    frame: &DicomFrame,
    out: &mut [f32],
) -> Result<(), IoError> {
    let corrupt = |reason: String| IoError::Corrupt {
        path: frame.path.clone(),
        reason,
    };
    let mut format = sample_format(frame);
    let pixels = frame.rows as usize * frame.cols as usize;
    if out.len() != pixels {
        return Err(corrupt(format!(
            "image is {}×{}, the series expects {} pixels",
            frame.cols,
            frame.rows,
            out.len()
        )));
    }
    let element = obj
        .get(tags::PIXEL_DATA)
        .ok_or_else(|| IoError::NoPixelData {
            path: frame.path.clone(),
        })?;

    if is_native(&frame.transfer_syntax_uid) {
        let samples = match element.value() {
            Value::Primitive(p) => primitive_samples(p)
                .ok_or_else(|| corrupt("pixel data has an unexpected value type".to_string()))?,
            _ => {
                return Err(corrupt(
                    "encapsulated pixel data in a native transfer syntax".to_string(),
                ))
            }
        };
        let per_frame = pixels * frame.samples_per_pixel as usize;
        return convert(
            &samples,
            &format,
            frame.frame as usize * per_frame,
            frame.samples_per_pixel as usize,
            frame.planar_configuration,
            frame.photometric.starts_with("YBR"),
            out,
        )
        .map_err(corrupt);
    }

    // Decoders hand back right-aligned stored values: HighBit no longer applies.
    format.shift = 0;
    if let Some(codec) = own_codec(&frame.transfer_syntax_uid) {
        let Value::PixelSequence(seq) = element.value() else {
            return Err(corrupt(
                "compressed syntax but pixel data is not encapsulated".to_string(),
            ));
        };
        let stream =
            frame_stream(seq.fragments(), frame.frame, frame.frames_in_file).ok_or_else(|| {
                corrupt(format!(
                    "cannot find the compressed stream of frame {}",
                    frame.frame
                ))
            })?;
        let name = transfer_syntax_name(&frame.transfer_syntax_uid);
        let decoded = std::panic::catch_unwind(AssertUnwindSafe(|| match codec {
            OwnCodec::JpegLs => jpegls::decode(&stream)
                .map(|img| (img.width, img.height, img.samples))
                .map_err(|e| e.to_string()),
            OwnCodec::JpegExtended => jpeg12::decode(&stream)
                .map(|img| (img.width, img.height, img.samples))
                .map_err(|e| e.to_string()),
        }))
        .map_err(|_| corrupt(format!("the {name} decoder panicked")))?
        .map_err(|e| corrupt(format!("cannot decode {name}: {e}")))?;
        let (width, height, samples) = decoded;
        if width != frame.cols as usize || height != frame.rows as usize {
            return Err(corrupt(format!(
                "{name} stream is {width}×{height}, the header says {}×{}",
                frame.cols, frame.rows
            )));
        }
        format.bits_allocated = 16;
        return convert(&Samples::U16(&samples), &format, 0, 1, 0, false, out).map_err(corrupt);
    }
    let decoded = std::panic::catch_unwind(AssertUnwindSafe(|| {
        obj.decode_pixel_data_frame(frame.frame)
    }))
    .map_err(|_| corrupt("the image decoder panicked".to_string()))?
    .map_err(|e| {
        let reason = error_chain(&e);
        if reason.to_ascii_lowercase().contains("unsupported") {
            IoError::UnsupportedTransferSyntax {
                uid: frame.transfer_syntax_uid.clone(),
                name: transfer_syntax_name(&frame.transfer_syntax_uid),
                path: frame.path.clone(),
            }
        } else {
            corrupt(format!(
                "cannot decode {}: {reason}",
                transfer_syntax_name(&frame.transfer_syntax_uid)
            ))
        }
    })?;
    format.bits_allocated = decoded.bits_allocated();
    let data = decoded.data();
    let samples_per_pixel = decoded.samples_per_pixel() as usize;
    let per_frame = pixels * samples_per_pixel * format.bits_allocated as usize / 8;
    // Some decoders hand back the whole multi-frame buffer: pick our frame out of it.
    let offset_samples =
        if decoded.number_of_frames() > 1 && data.len() >= per_frame * (frame.frame as usize + 1) {
            frame.frame as usize * pixels * samples_per_pixel
        } else {
            0
        };
    let planar = match decoded.planar_configuration() {
        dicom_pixeldata::PlanarConfiguration::Standard => 0,
        _ => 1,
    };
    let ybr = decoded
        .photometric_interpretation()
        .as_str()
        .starts_with("YBR");
    convert(
        &Samples::Bytes(data),
        &format,
        offset_samples,
        samples_per_pixel,
        planar,
        ybr,
        out,
    )
    .map_err(corrupt)
}

/// The compressed bytes of one frame: fragments are grouped by the JPEG start-of-image
/// marker that opens each frame (robust to missing or wrong offset tables).
fn frame_stream(fragments: &[Vec<u8>], frame: u32, frames_in_file: u32) -> Option<Vec<u8>> {
    let mut groups: Vec<Vec<u8>> = Vec::new();
    for f in fragments {
        let starts_frame = f.len() >= 2 && f[0] == 0xFF && f[1] == 0xD8;
        match groups.last_mut() {
            Some(g) if !starts_frame => g.extend_from_slice(f),
            _ => groups.push(f.clone()),
        }
    }
    if groups.len() == frames_in_file as usize {
        return groups.into_iter().nth(frame as usize);
    }
    if frames_in_file == 1 {
        return Some(fragments.concat());
    }
    None
}

fn primitive_samples(p: &PrimitiveValue) -> Option<Samples<'_>> {
    match p {
        PrimitiveValue::U8(v) => Some(Samples::Bytes(v)),
        PrimitiveValue::U16(v) => Some(Samples::U16(v)),
        PrimitiveValue::I16(v) => Some(Samples::I16(v)),
        PrimitiveValue::U32(v) => Some(Samples::U32(v)),
        PrimitiveValue::I32(v) => Some(Samples::I32(v)),
        _ => None,
    }
}

/// Writes one frame's values into `out`. Colour is reduced to luminance (Y for YBR).
fn convert(
    samples: &Samples<'_>,
    format: &SampleFormat,
    offset: usize,
    samples_per_pixel: usize,
    planar: u16,
    ybr: bool,
    out: &mut [f32],
) -> Result<(), String> {
    let pixels = out.len();
    let needed = offset + pixels * samples_per_pixel;
    let available = samples.len(format.bits_allocated);
    if available < needed {
        return Err(format!(
            "pixel data holds {available} samples, this frame needs up to {needed} (file truncated?)"
        ));
    }
    let ba = format.bits_allocated;
    // Raw bit pattern of sample number `n` (little-endian byte streams).
    let raw = |n: usize| -> u32 {
        match (samples, ba) {
            (Samples::Bytes(b), 8) => b[n] as u32,
            (Samples::Bytes(b), 16) => u16::from_le_bytes([b[2 * n], b[2 * n + 1]]) as u32,
            (Samples::Bytes(b), _) => {
                u32::from_le_bytes([b[4 * n], b[4 * n + 1], b[4 * n + 2], b[4 * n + 3]])
            }
            (Samples::U16(v), 16) => v[n] as u32,
            (Samples::U16(v), 8) => (v[n / 2] >> (8 * (n % 2))) as u32 & 0xFF,
            (Samples::U16(v), _) => v[2 * n] as u32 | (v[2 * n + 1] as u32) << 16,
            (Samples::I16(v), 16) => v[n] as u16 as u32,
            (Samples::I16(v), 8) => (v[n / 2] as u16 >> (8 * (n % 2))) as u32 & 0xFF,
            (Samples::I16(v), _) => v[2 * n] as u16 as u32 | (v[2 * n + 1] as u16 as u32) << 16,
            (Samples::U32(v), 32) => v[n],
            (Samples::I32(v), 32) => v[n] as u32,
            (Samples::U32(v), 16) => (v[n / 2] >> (16 * (n % 2))) & 0xFFFF,
            (Samples::I32(v), 16) => ((v[n / 2] as u32) >> (16 * (n % 2))) & 0xFFFF,
            (Samples::U32(v), _) => (v[n / 4] >> (8 * (n % 4))) & 0xFF,
            (Samples::I32(v), _) => ((v[n / 4] as u32) >> (8 * (n % 4))) & 0xFF,
        }
    };
    if samples_per_pixel == 1 {
        // Hot path: keep the common layouts as tight slice loops.
        match (samples, ba) {
            (Samples::U16(v), 16) => {
                for (o, &r) in out.iter_mut().zip(&v[offset..offset + pixels]) {
                    *o = format.value(r as u32);
                }
            }
            (Samples::I16(v), 16) => {
                for (o, &r) in out.iter_mut().zip(&v[offset..offset + pixels]) {
                    *o = format.value(r as u16 as u32);
                }
            }
            (Samples::Bytes(b), 8) => {
                for (o, &r) in out.iter_mut().zip(&b[offset..offset + pixels]) {
                    *o = format.value(r as u32);
                }
            }
            (Samples::Bytes(b), 16) if !format.invert => {
                // Branch-free form of `SampleFormat::value` for 16-bit samples, so it vectorises:
                // shift the stored bits to the top, then arithmetic/logical shift them down.
                let bytes = &b[2 * offset..2 * (offset + pixels)];
                let high = (format.shift + format.bits_stored as u32).min(16);
                let up = 16 - high;
                let down = 16 - format.bits_stored.min(16) as u32;
                let (slope, intercept) = (format.slope, format.intercept);
                let words: Option<&[u16]> = if cfg!(target_endian = "little") {
                    bytemuck::try_cast_slice(bytes).ok()
                } else {
                    None
                };
                if let Some(words) = words {
                    if format.signed {
                        for (o, &r) in out.iter_mut().zip(words) {
                            *o = (((r << up) as i16) >> down) as f32 * slope + intercept;
                        }
                    } else {
                        for (o, &r) in out.iter_mut().zip(words) {
                            *o = ((r << up) >> down) as f32 * slope + intercept;
                        }
                    }
                } else if format.signed {
                    for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                        let r = u16::from_le_bytes([c[0], c[1]]);
                        let v = ((r << up) as i16) >> down;
                        *o = v as f32 * slope + intercept;
                    }
                } else {
                    for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                        let r = u16::from_le_bytes([c[0], c[1]]);
                        let v = (r << up) >> down;
                        *o = v as f32 * slope + intercept;
                    }
                }
            }
            (Samples::Bytes(b), 16) => {
                let bytes = &b[2 * offset..2 * (offset + pixels)];
                for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                    *o = format.value(u16::from_le_bytes([c[0], c[1]]) as u32);
                }
            }
            _ => {
                for (p, o) in out.iter_mut().enumerate() {
                    *o = format.value(raw(offset + p));
                }
            }
        }
        return Ok(());
    }
    let channel = |p: usize, c: usize| -> f32 {
        let n = if planar == 0 {
            offset + p * samples_per_pixel + c
        } else {
            offset + c * pixels + p
        };
        format.value(raw(n))
    };
    for (p, o) in out.iter_mut().enumerate() {
        *o = if ybr || samples_per_pixel < 3 {
            channel(p, 0)
        } else {
            0.299 * channel(p, 0) + 0.587 * channel(p, 1) + 0.114 * channel(p, 2)
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(bits_stored: u16, high_bit: u16, signed: bool, invert: bool) -> SampleFormat {
        SampleFormat {
            bits_allocated: 16,
            bits_stored,
            shift: (high_bit + 1 - bits_stored) as u32,
            signed,
            invert,
            slope: 1.0,
            intercept: 0.0,
        }
    }

    #[test]
    fn masks_and_sign_extends_12_bit() {
        let f = fmt(12, 11, true, false);
        assert_eq!(f.value(0x0FFF), -1.0);
        assert_eq!(f.value(0xF7FF), 2047.0); // garbage above bit 11 is ignored
        assert_eq!(f.value(0x0800), -2048.0);
        let u = fmt(12, 11, false, false);
        assert_eq!(u.value(0xFFFF), 4095.0);
    }

    #[test]
    fn high_bit_shift_and_rescale() {
        let mut f = fmt(8, 11, false, false);
        f.slope = 2.0;
        f.intercept = -1024.0;
        assert_eq!(f.value(0x0AB0), 0xAB as f32 * 2.0 - 1024.0);
    }

    #[test]
    fn fast_16_bit_path_matches_the_general_one() {
        for (bs, hb, signed) in [
            (16, 15, true),
            (12, 11, true),
            (12, 11, false),
            (8, 11, false),
            (10, 13, true),
        ] {
            let f = SampleFormat {
                slope: 1.5,
                intercept: -7.0,
                ..fmt(bs, hb, signed, false)
            };
            let raw: Vec<u16> = (0..=u16::MAX).step_by(37).collect();
            let bytes: Vec<u8> = raw.iter().flat_map(|r| r.to_le_bytes()).collect();
            let mut out = vec![0f32; raw.len()];
            convert(&Samples::Bytes(&bytes), &f, 0, 1, 0, false, &mut out).expect("fits");
            for (r, o) in raw.iter().zip(&out) {
                assert_eq!(
                    *o,
                    f.value(*r as u32),
                    "bs {bs} hb {hb} signed {signed} raw {r:#x}"
                );
            }
        }
    }

    #[test]
    fn monochrome1_inverts_over_stored_range() {
        let u = fmt(8, 7, false, true);
        assert_eq!(u.value(0), 255.0);
        assert_eq!(u.value(255), 0.0);
        let s = fmt(16, 15, true, true);
        assert_eq!(s.value(0x8000), 32767.0);
        assert_eq!(s.value(5), -6.0);
    }

    #[test]
    fn colour_becomes_luminance_and_short_data_is_an_error() {
        let f = SampleFormat {
            bits_allocated: 8,
            ..fmt(8, 7, false, false)
        };
        let rgb = [255u8, 0, 0, 0, 255, 0];
        let mut out = [0f32; 2];
        convert(&Samples::Bytes(&rgb), &f, 0, 3, 0, false, &mut out).expect("fits");
        assert!((out[0] - 0.299 * 255.0).abs() < 1e-3);
        assert!((out[1] - 0.587 * 255.0).abs() < 1e-3);
        let mut three = [0f32; 3];
        assert!(convert(&Samples::Bytes(&rgb), &f, 0, 3, 0, false, &mut three).is_err());
    }
}
