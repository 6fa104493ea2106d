//! A pure-Rust JPEG-LS decoder (ITU-T T.87 / ISO 14495-1): lossless and near-lossless,
//! single-component (greyscale) images of 2–16 bits, as DICOM stores CT and MR
//! (transfer syntaxes 1.2.840.10008.1.2.4.80 and .81).
//!
//! Why our own: dicom-pixeldata's JPEG-LS support needs CharLS (C++ and cmake). The
//! algorithm is LOCO-I: a median edge predictor, 365 adaptive contexts with bias
//! correction, limited-length Golomb codes and a run mode for flat regions. The
//! structure follows the standard's decoding procedure (Annex A) so each step can be
//! checked against it; variable names are the standard's (Ra, Rb, Rc, Rd, Px, NEAR…).

/// Why a JPEG-LS stream could not be decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JpegLsError {
    #[error("not a JPEG-LS stream: {0}")]
    NotJpegLs(String),
    #[error("JPEG-LS stream is truncated ({0})")]
    Truncated(&'static str),
    #[error("JPEG-LS feature not supported: {0}")]
    Unsupported(String),
    #[error("JPEG-LS stream is corrupt: {0}")]
    Corrupt(String),
}

/// A decoded greyscale image, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct JpegLsImage {
    pub width: usize,
    pub height: usize,
    pub bits_per_sample: u8,
    /// The NEAR parameter: 0 for lossless; each sample within ±NEAR of the original otherwise.
    pub near: u16,
    pub samples: Vec<u16>,
}

const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOF55: u8 = 0xF7;
const SOS: u8 = 0xDA;
const LSE: u8 = 0xF8;
const DRI: u8 = 0xDD;

/// Run-length order table J (A.7.1.1).
const J: [u32; 32] = [
    0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 9, 10, 11, 12, 13,
    14, 15,
];

/// Decodes one JPEG-LS frame (a complete SOI … EOI stream).
pub fn decode(data: &[u8]) -> Result<JpegLsImage, JpegLsError> {
    let mut pos = 0usize;
    if data.len() < 4 || data[0] != 0xFF || data[1] != SOI {
        return Err(JpegLsError::NotJpegLs(
            "missing start-of-image marker".into(),
        ));
    }
    pos += 2;
    let mut frame: Option<(u8, usize, usize)> = None; // (bits, height, width)
    let mut preset = PresetParams::default();
    loop {
        let marker = next_marker(data, &mut pos)?;
        match marker {
            EOI => return Err(JpegLsError::Truncated("end of image before any scan")),
            SOF55 => {
                let seg = segment(data, &mut pos)?;
                if seg.len() < 6 {
                    return Err(JpegLsError::Corrupt("short frame header".into()));
                }
                let bits = seg[0];
                let height = u16::from_be_bytes([seg[1], seg[2]]) as usize;
                let width = u16::from_be_bytes([seg[3], seg[4]]) as usize;
                let components = seg[5];
                if components != 1 {
                    return Err(JpegLsError::Unsupported(format!(
                        "{components} components (only greyscale)"
                    )));
                }
                if !(2..=16).contains(&bits) {
                    return Err(JpegLsError::Corrupt(format!("{bits} bits per sample")));
                }
                if width == 0 || height == 0 {
                    return Err(JpegLsError::Unsupported(
                        "image size defined later by a DNL marker".into(),
                    ));
                }
                frame = Some((bits, height, width));
            }
            0xC0..=0xCF if marker != 0xC4 && marker != 0xC8 && marker != 0xCC => {
                return Err(JpegLsError::NotJpegLs(format!(
                    "frame marker FF{marker:02X} is classic JPEG"
                )));
            }
            LSE => {
                let seg = segment(data, &mut pos)?;
                preset = PresetParams::parse(seg)?;
            }
            DRI => return Err(JpegLsError::Unsupported("restart intervals".into())),
            SOS => {
                let seg = segment(data, &mut pos)?;
                let (bits, height, width) =
                    frame.ok_or(JpegLsError::Corrupt("scan before frame header".into()))?;
                if seg.len() < 6 || seg[0] != 1 {
                    return Err(JpegLsError::Unsupported(
                        "scan with other than one component".into(),
                    ));
                }
                if seg[2] != 0 {
                    return Err(JpegLsError::Unsupported("mapping tables".into()));
                }
                let near = seg[3] as i32;
                let point_transform = seg[5] & 0x0F;
                if point_transform != 0 {
                    return Err(JpegLsError::Unsupported("point transform".into()));
                }
                let params = Params::new(bits, near, &preset)?;
                let mut samples = vec![0u16; width * height];
                let mut reader = BitReader::new(&data[pos..]);
                decode_scan(&params, width, height, &mut reader, &mut samples)?;
                return Ok(JpegLsImage {
                    width,
                    height,
                    bits_per_sample: bits,
                    near: near as u16,
                    samples,
                });
            }
            _ => {
                // APPn, COM and other segments carry nothing we need.
                segment(data, &mut pos)?;
            }
        }
    }
}

fn next_marker(data: &[u8], pos: &mut usize) -> Result<u8, JpegLsError> {
    while *pos < data.len() && data[*pos] != 0xFF {
        *pos += 1;
    }
    while *pos < data.len() && data[*pos] == 0xFF {
        *pos += 1;
    }
    let m = *data
        .get(*pos)
        .ok_or(JpegLsError::Truncated("looking for a marker"))?;
    *pos += 1;
    Ok(m)
}

/// The payload of a length-prefixed marker segment; advances past it.
fn segment<'a>(data: &'a [u8], pos: &mut usize) -> Result<&'a [u8], JpegLsError> {
    if *pos + 2 > data.len() {
        return Err(JpegLsError::Truncated("segment length"));
    }
    let len = u16::from_be_bytes([data[*pos], data[*pos + 1]]) as usize;
    if len < 2 || *pos + len > data.len() {
        return Err(JpegLsError::Truncated("marker segment"));
    }
    let seg = &data[*pos + 2..*pos + len];
    *pos += len;
    Ok(seg)
}

#[derive(Debug, Default, Clone, Copy)]
struct PresetParams {
    maxval: i32,
    t1: i32,
    t2: i32,
    t3: i32,
    reset: i32,
}

impl PresetParams {
    fn parse(seg: &[u8]) -> Result<Self, JpegLsError> {
        match seg.first() {
            Some(1) if seg.len() >= 11 => {
                let at = |i: usize| u16::from_be_bytes([seg[i], seg[i + 1]]) as i32;
                Ok(Self {
                    maxval: at(1),
                    t1: at(3),
                    t2: at(5),
                    t3: at(7),
                    reset: at(9),
                })
            }
            Some(id) => Err(JpegLsError::Unsupported(format!(
                "LSE parameter set {id} (mapping tables or oversize images)"
            ))),
            None => Err(JpegLsError::Corrupt("empty LSE segment".into())),
        }
    }
}

/// Coding parameters of one scan (C.2.4.1 defaults unless an LSE segment overrides them).
#[derive(Debug, Clone, Copy)]
struct Params {
    maxval: i32,
    near: i32,
    t1: i32,
    t2: i32,
    t3: i32,
    reset: i32,
    range: i32,
    qbpp: u32,
    limit: u32,
}

impl Params {
    fn new(bits: u8, near: i32, preset: &PresetParams) -> Result<Self, JpegLsError> {
        let maxval = if preset.maxval > 0 {
            preset.maxval
        } else {
            (1i32 << bits) - 1
        };
        if near > maxval / 2 {
            return Err(JpegLsError::Corrupt(format!(
                "NEAR {near} too large for MAXVAL {maxval}"
            )));
        }
        let clamp = |i: i32, j: i32| if i > maxval || i < j { j } else { i };
        let (basic_t1, basic_t2, basic_t3) = (3, 7, 21);
        let (dt1, dt2, dt3) = if maxval >= 128 {
            let factor = (maxval.min(4095) + 128) / 256;
            let t1 = clamp(factor * (basic_t1 - 2) + 2 + 3 * near, near + 1);
            let t2 = clamp(factor * (basic_t2 - 3) + 3 + 5 * near, t1);
            let t3 = clamp(factor * (basic_t3 - 4) + 4 + 7 * near, t2);
            (t1, t2, t3)
        } else {
            let factor = 256 / (maxval + 1);
            let t1 = clamp((basic_t1 / factor).max(2) + 3 * near, near + 1);
            let t2 = clamp((basic_t2 / factor).max(3) + 5 * near, t1);
            let t3 = clamp((basic_t3 / factor).max(4) + 7 * near, t2);
            (t1, t2, t3)
        };
        let t1 = if preset.t1 > 0 { preset.t1 } else { dt1 };
        let t2 = if preset.t2 > 0 { preset.t2 } else { dt2 };
        let t3 = if preset.t3 > 0 { preset.t3 } else { dt3 };
        let reset = if preset.reset > 0 { preset.reset } else { 64 };
        let range = (maxval + 2 * near) / (2 * near + 1) + 1;
        let qbpp = ceil_log2(range as u32);
        let bpp = ceil_log2(maxval as u32 + 1).max(2);
        let limit = 2 * (bpp + bpp.max(8));
        Ok(Self {
            maxval,
            near,
            t1,
            t2,
            t3,
            reset,
            range,
            qbpp,
            limit,
        })
    }

    fn quantize_gradient(&self, d: i32) -> i32 {
        if d <= -self.t3 {
            -4
        } else if d <= -self.t2 {
            -3
        } else if d <= -self.t1 {
            -2
        } else if d < -self.near {
            -1
        } else if d <= self.near {
            0
        } else if d < self.t1 {
            1
        } else if d < self.t2 {
            2
        } else if d < self.t3 {
            3
        } else {
            4
        }
    }

    /// Px + dequantised error, reduced modulo RANGE and clamped (A.4.5).
    fn reconstruct(&self, predicted: i32, error: i32) -> i32 {
        // i64: a corrupt stream may carry errors whose dequantised value overflows i32.
        let (near, range) = (self.near as i64, self.range as i64);
        let mut x = predicted as i64 + error as i64 * (2 * near + 1);
        if x < -near {
            x += range * (2 * near + 1);
        } else if x > self.maxval as i64 + near {
            x -= range * (2 * near + 1);
        }
        x.clamp(0, self.maxval as i64) as i32
    }
}

fn ceil_log2(n: u32) -> u32 {
    if n <= 1 {
        0
    } else {
        32 - (n - 1).leading_zeros()
    }
}

/// State of one regular-mode context (A.2.2).
#[derive(Debug, Clone, Copy)]
struct RegularContext {
    a: i32,
    b: i32,
    c: i32,
    n: i32,
}
// Bounds: |err| ≤ RANGE + 1 ≤ 65537 and N ≤ RESET ≤ 65535 halve A and B regularly, but a
// corrupt stream can still push A·2^k past i32 in `(n << k) < a`; k is capped at 24 there.

/// State of one run-interruption context (A.7.2).
#[derive(Debug, Clone, Copy)]
struct RunContext {
    ritype: i32,
    a: i32,
    n: i32,
    nn: i32,
}

/// Reads bits MSB first, removing the zero bit stuffed after every 0xFF byte.
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    cache: u64,
    bits: u32,
    prev_ff: bool,
    at_marker: bool,
    /// Zero bits fed past the end of the scan; consuming any of them means truncation.
    padding_bits: u32,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            pos: 0,
            cache: 0,
            bits: 0,
            prev_ff: false,
            at_marker: false,
            padding_bits: 0,
        }
    }

    fn refill(&mut self) {
        while self.bits <= 56 {
            if self.at_marker || self.pos >= self.data.len() {
                // Past the scan: feed zeros; an error surfaces through `overrun`.
                self.bits += 8;
                self.padding_bits = self.padding_bits.saturating_add(8);
                self.pos = self.pos.saturating_add(1);
                continue;
            }
            let byte = self.data[self.pos];
            if self.prev_ff {
                if byte & 0x80 != 0 {
                    // A marker (end of scan): the previous 0xFF was not data.
                    self.at_marker = true;
                    continue;
                }
                self.cache |= (byte as u64) << (57 - self.bits);
                self.bits += 7;
            } else {
                self.cache |= (byte as u64) << (56 - self.bits);
                self.bits += 8;
            }
            self.prev_ff = byte == 0xFF;
            self.pos += 1;
        }
    }

    /// True once decoding has consumed more bits than the scan held (a truncated stream).
    fn overrun(&self) -> bool {
        self.bits < self.padding_bits
    }

    #[inline]
    fn read_bits(&mut self, n: u32) -> i32 {
        if n == 0 {
            return 0;
        }
        if self.bits < n {
            self.refill();
        }
        let v = (self.cache >> (64 - n)) as i32;
        self.cache <<= n;
        self.bits -= n;
        v
    }

    #[inline]
    fn read_bit(&mut self) -> bool {
        self.read_bits(1) == 1
    }

    /// Number of 0 bits before the next 1 bit (which is consumed), capped at `max`.
    #[inline]
    fn read_unary(&mut self, max: u32) -> Result<u32, JpegLsError> {
        let mut count = 0u32;
        loop {
            if self.bits == 0 {
                self.refill();
            }
            let zeros = self.cache.leading_zeros().min(self.bits);
            if zeros < self.bits {
                count += zeros;
                self.cache <<= zeros + 1;
                self.bits -= zeros + 1;
                return Ok(count);
            }
            count += zeros;
            let consumed_padding = self.padding_bits > 0;
            self.cache = 0;
            self.bits = 0;
            if count > max || consumed_padding {
                return Err(JpegLsError::Corrupt("Golomb code longer than LIMIT".into()));
            }
        }
    }
}

/// Limited-length Golomb decoding (A.5.3).
#[inline]
fn decode_value(r: &mut BitReader, k: u32, limit: u32, qbpp: u32) -> Result<i32, JpegLsError> {
    let high = r.read_unary(limit)?;
    if high >= limit - (qbpp + 1) {
        return Ok(r.read_bits(qbpp) + 1);
    }
    if k == 0 {
        return Ok(high as i32);
    }
    Ok(((high as i32) << k) + r.read_bits(k))
}

fn decode_scan(
    p: &Params,
    width: usize,
    height: usize,
    r: &mut BitReader,
    out: &mut [u16],
) -> Result<(), JpegLsError> {
    let a_init = ((p.range + 32) / 64).max(2);
    let mut contexts = [RegularContext {
        a: a_init,
        b: 0,
        c: 0,
        n: 1,
    }; 365];
    let mut run_contexts = [
        RunContext {
            ritype: 0,
            a: a_init,
            n: 1,
            nn: 0,
        },
        RunContext {
            ritype: 1,
            a: a_init,
            n: 1,
            nn: 0,
        },
    ];
    let mut run_index = 0usize;
    // Lines carry one extra sample at each end (index 0 and width + 1) for the edge rules.
    let mut prev = vec![0i32; width + 2];
    let mut cur = vec![0i32; width + 2];
    for row in 0..height {
        std::mem::swap(&mut prev, &mut cur);
        if row == 0 {
            prev.iter_mut().for_each(|v| *v = 0);
        }
        // A.2.1: Rd past the right edge repeats the last sample above; Ra at the left edge is Rb.
        prev[width + 1] = prev[width];
        cur[0] = prev[1];
        let mut x = 1usize; // position in the padded line
        let mut rb = prev[0];
        let mut rd = prev[1];
        while x <= width {
            let ra = cur[x - 1];
            let rc = rb;
            rb = rd;
            rd = prev[x + 1];
            let qs = (p.quantize_gradient(rd - rb) * 9 + p.quantize_gradient(rb - rc)) * 9
                + p.quantize_gradient(rc - ra);
            if qs != 0 {
                cur[x] = decode_regular(p, &mut contexts, qs, ra, rb, rc, r)?;
                x += 1;
            } else {
                x += decode_run(
                    p,
                    &mut run_contexts,
                    &mut run_index,
                    &prev,
                    &mut cur,
                    x,
                    width,
                    r,
                )?;
                rb = prev[x - 1];
                rd = prev[x.min(width + 1)];
            }
        }
        if r.overrun() {
            return Err(JpegLsError::Truncated("scan data ended early"));
        }
        for (o, v) in out[row * width..(row + 1) * width]
            .iter_mut()
            .zip(&cur[1..=width])
        {
            *o = *v as u16;
        }
    }
    Ok(())
}

#[inline]
fn decode_regular(
    p: &Params,
    contexts: &mut [RegularContext; 365],
    qs: i32,
    ra: i32,
    rb: i32,
    rc: i32,
    r: &mut BitReader,
) -> Result<i32, JpegLsError> {
    let sign = if qs < 0 { -1 } else { 1 };
    let ctx = &mut contexts[qs.unsigned_abs() as usize];
    // Median edge detector (A.4.1) plus the context's bias correction (A.4.2).
    let px = if rc >= ra.max(rb) {
        ra.min(rb)
    } else if rc <= ra.min(rb) {
        ra.max(rb)
    } else {
        ra + rb - rc
    };
    let px = (px + sign * ctx.c).clamp(0, p.maxval);
    let mut k = 0u32;
    while (ctx.n << k) < ctx.a {
        k += 1;
        if k > 24 {
            return Err(JpegLsError::Corrupt("context state out of range".into()));
        }
    }
    let merr = decode_value(r, k, p.limit, p.qbpp)?;
    if merr > 2 * p.range + 2 {
        return Err(JpegLsError::Corrupt(
            "prediction error outside the sample range".into(),
        ));
    }
    let mut err = if merr & 1 == 0 {
        merr >> 1
    } else {
        -((merr + 1) >> 1)
    };
    if p.near == 0 && k == 0 && 2 * ctx.b <= -ctx.n {
        err = !err; // the inverted mapping of A.5.2
    }
    // Context update (A.6).
    ctx.b = ctx.b.saturating_add(err.saturating_mul(2 * p.near + 1));
    ctx.a = ctx.a.saturating_add(err.abs());
    if ctx.n == p.reset {
        ctx.a >>= 1;
        ctx.b >>= 1;
        ctx.n >>= 1;
    }
    ctx.n += 1;
    if ctx.b + ctx.n <= 0 {
        ctx.b += ctx.n;
        if ctx.b <= -ctx.n {
            ctx.b = -ctx.n + 1;
        }
        if ctx.c > -128 {
            ctx.c -= 1;
        }
    } else if ctx.b > 0 {
        ctx.b -= ctx.n;
        if ctx.b > 0 {
            ctx.b = 0;
        }
        if ctx.c < 127 {
            ctx.c += 1;
        }
    }
    Ok(p.reconstruct(px, sign * err))
}

/// Run mode (A.7): a run of samples equal to Ra, then possibly an interruption sample.
/// Returns how many samples of the line it decoded.
#[allow(clippy::too_many_arguments)]
fn decode_run(
    p: &Params,
    run_contexts: &mut [RunContext; 2],
    run_index: &mut usize,
    prev: &[i32],
    cur: &mut [i32],
    start: usize,
    width: usize,
    r: &mut BitReader,
) -> Result<usize, JpegLsError> {
    let ra = cur[start - 1];
    let remaining = width + 1 - start;
    let mut len = 0usize;
    while r.read_bit() {
        let count = (1usize << J[*run_index]).min(remaining - len);
        len += count;
        if count == 1 << J[*run_index] {
            *run_index = (*run_index + 1).min(31);
        }
        if len == remaining {
            break;
        }
        if r.overrun() {
            return Err(JpegLsError::Truncated("scan data ended inside a run"));
        }
    }
    if len != remaining {
        len += r.read_bits(J[*run_index]) as usize;
    }
    if len > remaining {
        return Err(JpegLsError::Corrupt("run longer than the line".into()));
    }
    cur[start..start + len].iter_mut().for_each(|v| *v = ra);
    let end = start + len;
    if end == width + 1 {
        return Ok(len);
    }
    // Run interruption sample (A.7.2).
    let rb = prev[end];
    let (ctx_index, predicted, sign) = if (ra - rb).abs() <= p.near {
        (1, ra, 1)
    } else {
        (0, rb, if rb - ra < 0 { -1 } else { 1 })
    };
    let ctx = &mut run_contexts[ctx_index];
    let temp = ctx.a + (ctx.n >> 1) * ctx.ritype;
    let mut k = 0u32;
    while (ctx.n << k) < temp {
        k += 1;
        if k > 24 {
            return Err(JpegLsError::Corrupt(
                "run context state out of range".into(),
            ));
        }
    }
    let limit = p.limit - J[*run_index] - 1;
    let emerr = decode_value(r, k, limit, p.qbpp)?;
    if emerr > 2 * p.range + 2 {
        return Err(JpegLsError::Corrupt(
            "run interruption error outside the sample range".into(),
        ));
    }
    let t = emerr + ctx.ritype;
    let map = t & 1 == 1;
    let abs = (t + map as i32) / 2;
    let err = if (k != 0 || 2 * ctx.nn >= ctx.n) == map {
        -abs
    } else {
        abs
    };
    if err < 0 {
        ctx.nn += 1;
    }
    ctx.a = ctx.a.saturating_add((emerr + 1 - ctx.ritype) >> 1);
    if ctx.n == p.reset {
        ctx.a >>= 1;
        ctx.n >>= 1;
        ctx.nn >>= 1;
    }
    ctx.n += 1;
    cur[end] = p.reconstruct(predicted, err * sign);
    *run_index = run_index.saturating_sub(1);
    Ok(len + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_thresholds_match_the_standard_table() {
        // T.87 Table C.3: 8-bit lossless T1..T3 = 3, 7, 21; 16-bit = 18, 67, 276.
        let p8 = Params::new(8, 0, &PresetParams::default()).expect("valid");
        assert_eq!((p8.t1, p8.t2, p8.t3, p8.limit, p8.qbpp), (3, 7, 21, 32, 8));
        let p16 = Params::new(16, 0, &PresetParams::default()).expect("valid");
        assert_eq!((p16.t1, p16.t2, p16.t3), (18, 67, 276));
        let p12 = Params::new(12, 0, &PresetParams::default()).expect("valid");
        assert_eq!((p12.t1, p12.t2, p12.t3), (18, 67, 276));
    }

    #[test]
    fn refuses_non_jpegls_and_truncated_input() {
        assert!(matches!(
            decode(b"not an image"),
            Err(JpegLsError::NotJpegLs(_))
        ));
        assert!(matches!(
            decode(&[0xFF, 0xD8, 0xFF, 0xC0, 0x00]),
            Err(JpegLsError::NotJpegLs(_))
        ));
        // SOI + SOF55 header cut short.
        assert!(decode(&[0xFF, 0xD8, 0xFF, 0xF7, 0x00, 0x0B, 0x08]).is_err());
    }

    fn annex_h_stream() -> Vec<u8> {
        let mut s = vec![
            0xFF, 0xD8, 0xFF, 0xF7, 0x00, 0x0B, 0x08, 0x00, 0x04, 0x00, 0x04, 0x01, 0x01, 0x11,
            0x00, 0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00,
        ];
        s.extend_from_slice(&[
            0xC0, 0x00, 0x00, 0x6C, 0x80, 0x20, 0x8E, 0x01, 0xC0, 0x00, 0x00, 0x57, 0x40, 0x00,
            0x00, 0x6E, 0xE6, 0x00, 0x00, 0x01, 0xBC, 0x18, 0x00, 0x00, 0x05, 0xD8, 0x00, 0x00,
            0x91, 0x60, 0xFF, 0xD9,
        ]);
        s
    }

    #[test]
    fn corrupted_streams_give_errors_or_images_never_panics() {
        let base = annex_h_stream();
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let mut s = base.clone();
            for _ in 0..(1 + next() % 4) {
                let i = (next() as usize) % s.len();
                s[i] = next() as u8;
            }
            let cut = (next() as usize) % (s.len() + 1);
            let _ = decode(&s[..cut.max(s.len() / 2)]);
        }
        for cut in 0..base.len() {
            assert!(
                decode(&base[..cut]).is_err() || cut > 40,
                "a stream cut at {cut} must not decode"
            );
        }
    }

    #[test]
    fn decodes_the_t87_annex_h_example() {
        // The 4×4, 8-bit example image of ITU-T T.87 Annex H.3 and its encoded stream.
        let stream = annex_h_stream();
        let expected: [u16; 16] = [
            0, 0, 90, 74, 68, 50, 43, 205, 64, 145, 145, 145, 100, 145, 145, 145,
        ];
        let img = decode(&stream).expect("Annex H example decodes");
        assert_eq!((img.width, img.height), (4, 4));
        assert_eq!(img.samples, expected);
    }
}
