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
use super::syntax::{is_native, transfer_syntax_name};
use super::SeriesInfo;
use crate::io::IoError;
use crate::jobs::JobContext;

pub(crate) fn decode_series(info: &SeriesInfo, ctx: &JobContext) -> Result<Vec<f32>, IoError> {
    let [nx, ny, _] = info.layout.dims;
    let slice_len = nx * ny;
    let acquired = info.frames.len();
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
            .try_for_each(|(out, frame)| {
                ctx.check_cancelled()?;
                let obj = open_dicom(&frame.path, true)?;
                decode_frame(&obj, frame, out)?;
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
    let invert = frame.photometric.eq_ignore_ascii_case("MONOCHROME1")
        && !frame.modality.eq_ignore_ascii_case("CT");
    let mut format = SampleFormat {
        bits_allocated: frame.bits_allocated,
        bits_stored: frame.bits_stored,
        shift: (frame.high_bit + 1).saturating_sub(frame.bits_stored) as u32,
        signed: frame.pixel_representation == 1,
        invert,
        slope: frame.rescale_slope as f32,
        intercept: frame.rescale_intercept as f32,
    };
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
