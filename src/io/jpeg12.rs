//! A pure-Rust decoder for sequential DCT JPEG with 12-bit (or 8-bit) samples, one
//! component: DICOM's "JPEG Extended (Process 2 & 4)" (1.2.840.10008.1.2.4.51), which MR
//! and CT often use at 12 bits and which the `jpeg-decoder` crate refuses.
//!
//! Scope: baseline/extended Huffman (SOF0/SOF1), 8- or 16-bit quantisation tables,
//! restart intervals. Progressive, arithmetic-coded and multi-component images are refused
//! with a clear error. The IDCT is the exact separable float transform, so the output may
//! differ from an integer IDCT (IJG's) by ±1 grey level — which the lossy process allows.

/// Why a JPEG stream could not be decoded here.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Jpeg12Error {
    #[error("not a JPEG stream: {0}")]
    NotJpeg(String),
    #[error("JPEG stream is truncated ({0})")]
    Truncated(&'static str),
    #[error("JPEG feature not supported: {0}")]
    Unsupported(String),
    #[error("JPEG stream is corrupt: {0}")]
    Corrupt(String),
}

/// A decoded greyscale image, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Jpeg12Image {
    pub width: usize,
    pub height: usize,
    pub precision: u8,
    pub samples: Vec<u16>,
}

/// Natural (row-major) index of the k-th coefficient in zig-zag order.
const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

#[derive(Clone)]
struct Huffman {
    /// For each code length 1..=16: the largest code of that length (or -1), and where its symbols start.
    maxcode: [i32; 18],
    valptr: [i32; 17],
    mincode: [i32; 17],
    symbols: Vec<u8>,
}

impl Huffman {
    fn new(counts: &[u8; 16], symbols: Vec<u8>) -> Result<Self, Jpeg12Error> {
        let mut maxcode = [-1i32; 18];
        let mut valptr = [0i32; 17];
        let mut mincode = [0i32; 17];
        let mut code = 0i32;
        let mut k = 0i32;
        for len in 1..=16 {
            let n = counts[len - 1] as i32;
            valptr[len] = k;
            mincode[len] = code;
            code += n;
            k += n;
            maxcode[len] = if n > 0 { code - 1 } else { -1 };
            if code > (1 << len) {
                return Err(Jpeg12Error::Corrupt(
                    "Huffman table has more codes than fit".into(),
                ));
            }
            code <<= 1;
        }
        maxcode[17] = i32::MAX;
        if k as usize != symbols.len() {
            return Err(Jpeg12Error::Corrupt(
                "Huffman table symbol count mismatch".into(),
            ));
        }
        Ok(Self {
            maxcode,
            valptr,
            mincode,
            symbols,
        })
    }
}

struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    acc: u32,
    nbits: u32,
    /// Zero bits fed after the scan ended (marker or end of data); consuming them is truncation.
    hit_end: bool,
}

impl<'a> BitReader<'a> {
    fn bit(&mut self) -> Result<u32, Jpeg12Error> {
        if self.nbits == 0 {
            let byte = self.next_byte()?;
            self.acc = byte as u32;
            self.nbits = 8;
        }
        self.nbits -= 1;
        Ok((self.acc >> self.nbits) & 1)
    }

    fn next_byte(&mut self) -> Result<u8, Jpeg12Error> {
        if self.hit_end {
            return Err(Jpeg12Error::Truncated("scan data ended early"));
        }
        let b = *self
            .data
            .get(self.pos)
            .ok_or(Jpeg12Error::Truncated("scan data ended early"))?;
        if b == 0xFF {
            match self.data.get(self.pos + 1) {
                Some(0x00) => {
                    self.pos += 2;
                    Ok(0xFF)
                }
                _ => {
                    self.hit_end = true;
                    Err(Jpeg12Error::Truncated("scan data ended early"))
                }
            }
        } else {
            self.pos += 1;
            Ok(b)
        }
    }

    fn bits(&mut self, n: u32) -> Result<i32, Jpeg12Error> {
        let mut v = 0i32;
        for _ in 0..n {
            v = (v << 1) | self.bit()? as i32;
        }
        Ok(v)
    }

    fn decode(&mut self, h: &Huffman) -> Result<u8, Jpeg12Error> {
        let mut code = self.bit()? as i32;
        let mut len = 1usize;
        while code > h.maxcode[len] {
            code = (code << 1) | self.bit()? as i32;
            len += 1;
            if len > 16 {
                return Err(Jpeg12Error::Corrupt("invalid Huffman code".into()));
            }
        }
        let idx = h.valptr[len] + code - h.mincode[len];
        h.symbols
            .get(idx as usize)
            .copied()
            .ok_or(Jpeg12Error::Corrupt("Huffman code out of table".into()))
    }

    /// Expects an RSTn marker at the current (byte-aligned) position.
    fn restart(&mut self) -> Result<(), Jpeg12Error> {
        self.nbits = 0;
        match (self.data.get(self.pos), self.data.get(self.pos + 1)) {
            (Some(0xFF), Some(m)) if (0xD0..=0xD7).contains(m) => {
                self.pos += 2;
                Ok(())
            }
            _ => Err(Jpeg12Error::Corrupt("missing restart marker".into())),
        }
    }
}

fn extend(v: i32, s: u32) -> i32 {
    if s == 0 {
        0
    } else if v < (1 << (s - 1)) {
        v - (1 << s) + 1
    } else {
        v
    }
}

/// Decodes one JPEG frame (SOI … EOI).
pub fn decode(data: &[u8]) -> Result<Jpeg12Image, Jpeg12Error> {
    if data.len() < 4 || data[0] != 0xFF || data[1] != 0xD8 {
        return Err(Jpeg12Error::NotJpeg("missing start-of-image marker".into()));
    }
    let mut pos = 2usize;
    let mut qtables: [Option<[u16; 64]>; 4] = [None; 4];
    let mut dc: [Option<Huffman>; 4] = [None, None, None, None];
    let mut ac: [Option<Huffman>; 4] = [None, None, None, None];
    let mut frame: Option<(u8, usize, usize, usize)> = None; // precision, height, width, quant table
    let mut restart_interval = 0usize;
    loop {
        while pos < data.len() && data[pos] != 0xFF {
            pos += 1;
        }
        while pos < data.len() && data[pos] == 0xFF {
            pos += 1;
        }
        let marker = *data
            .get(pos)
            .ok_or(Jpeg12Error::Truncated("looking for a marker"))?;
        pos += 1;
        if marker == 0xD9 {
            return Err(Jpeg12Error::Truncated("end of image before any scan"));
        }
        if (0xD0..=0xD7).contains(&marker) || marker == 0x01 {
            continue;
        }
        let len = match (data.get(pos), data.get(pos + 1)) {
            (Some(a), Some(b)) => u16::from_be_bytes([*a, *b]) as usize,
            _ => return Err(Jpeg12Error::Truncated("segment length")),
        };
        if len < 2 || pos + len > data.len() {
            return Err(Jpeg12Error::Truncated("marker segment"));
        }
        let seg = &data[pos + 2..pos + len];
        pos += len;
        match marker {
            0xDB => parse_dqt(seg, &mut qtables)?,
            0xC4 => parse_dht(seg, &mut dc, &mut ac)?,
            0xDD => {
                if seg.len() < 2 {
                    return Err(Jpeg12Error::Corrupt("short DRI".into()));
                }
                restart_interval = u16::from_be_bytes([seg[0], seg[1]]) as usize;
            }
            0xC0 | 0xC1 => {
                if seg.len() < 9 {
                    return Err(Jpeg12Error::Corrupt("short frame header".into()));
                }
                let precision = seg[0];
                let height = u16::from_be_bytes([seg[1], seg[2]]) as usize;
                let width = u16::from_be_bytes([seg[3], seg[4]]) as usize;
                if seg[5] != 1 {
                    return Err(Jpeg12Error::Unsupported(format!(
                        "{} components (only greyscale)",
                        seg[5]
                    )));
                }
                if precision != 8 && precision != 12 {
                    return Err(Jpeg12Error::Corrupt(format!("{precision}-bit precision")));
                }
                if width == 0 || height == 0 {
                    return Err(Jpeg12Error::Unsupported(
                        "image height defined by a DNL marker".into(),
                    ));
                }
                frame = Some((precision, height, width, (seg[8] & 3) as usize));
            }
            0xC2 | 0xC6 | 0xCA | 0xCE => {
                return Err(Jpeg12Error::Unsupported("progressive JPEG".into()))
            }
            0xC3 | 0xC7 | 0xCB | 0xCF => {
                return Err(Jpeg12Error::Unsupported(
                    "lossless JPEG (another decoder handles it)".into(),
                ))
            }
            0xC5 | 0xC9 | 0xCD => {
                return Err(Jpeg12Error::Unsupported(
                    "hierarchical or arithmetic-coded JPEG".into(),
                ))
            }
            0xDA => {
                let (precision, height, width, qi) =
                    frame.ok_or(Jpeg12Error::Corrupt("scan before frame header".into()))?;
                if seg.len() < 6 || seg[0] != 1 {
                    return Err(Jpeg12Error::Unsupported(
                        "scan with other than one component".into(),
                    ));
                }
                let (td, ta) = ((seg[2] >> 4) as usize & 3, (seg[2] & 15) as usize & 3);
                let q =
                    qtables[qi].ok_or(Jpeg12Error::Corrupt("missing quantisation table".into()))?;
                let dct = dc[td]
                    .as_ref()
                    .ok_or(Jpeg12Error::Corrupt("missing DC Huffman table".into()))?;
                let act = ac[ta]
                    .as_ref()
                    .ok_or(Jpeg12Error::Corrupt("missing AC Huffman table".into()))?;
                let samples = decode_scan(
                    &data[pos..],
                    precision,
                    width,
                    height,
                    &q,
                    dct,
                    act,
                    restart_interval,
                )?;
                return Ok(Jpeg12Image {
                    width,
                    height,
                    precision,
                    samples,
                });
            }
            _ => {} // APPn, COM, …
        }
    }
}

fn parse_dqt(mut seg: &[u8], tables: &mut [Option<[u16; 64]>; 4]) -> Result<(), Jpeg12Error> {
    while !seg.is_empty() {
        let (pq, tq) = (seg[0] >> 4, (seg[0] & 3) as usize);
        let size = if pq == 0 { 64 } else { 128 };
        if seg.len() < 1 + size {
            return Err(Jpeg12Error::Corrupt("short quantisation table".into()));
        }
        let mut t = [0u16; 64];
        for (k, v) in t.iter_mut().enumerate() {
            *v = if pq == 0 {
                seg[1 + k] as u16
            } else {
                u16::from_be_bytes([seg[1 + 2 * k], seg[2 + 2 * k]])
            };
        }
        tables[tq] = Some(t);
        seg = &seg[1 + size..];
    }
    Ok(())
}

fn parse_dht(
    mut seg: &[u8],
    dc: &mut [Option<Huffman>; 4],
    ac: &mut [Option<Huffman>; 4],
) -> Result<(), Jpeg12Error> {
    while !seg.is_empty() {
        if seg.len() < 17 {
            return Err(Jpeg12Error::Corrupt("short Huffman table".into()));
        }
        let (class, id) = (seg[0] >> 4, (seg[0] & 3) as usize);
        let mut counts = [0u8; 16];
        counts.copy_from_slice(&seg[1..17]);
        let total: usize = counts.iter().map(|&c| c as usize).sum();
        if seg.len() < 17 + total {
            return Err(Jpeg12Error::Corrupt("short Huffman table".into()));
        }
        let table = Huffman::new(&counts, seg[17..17 + total].to_vec())?;
        if class == 0 {
            dc[id] = Some(table);
        } else {
            ac[id] = Some(table);
        }
        seg = &seg[17 + total..];
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn decode_scan(
    data: &[u8],
    precision: u8,
    width: usize,
    height: usize,
    q: &[u16; 64],
    dc: &Huffman,
    ac: &Huffman,
    restart_interval: usize,
) -> Result<Vec<u16>, Jpeg12Error> {
    let (bw, bh) = (width.div_ceil(8), height.div_ceil(8));
    let mut out = vec![0u16; width * height];
    let mut r = BitReader {
        data,
        pos: 0,
        acc: 0,
        nbits: 0,
        hit_end: false,
    };
    let cos = cos_table();
    let level_shift = (1i32 << (precision - 1)) as f32;
    let max = ((1i32 << precision) - 1) as f32;
    let mut pred = 0i32;
    let mut coef = [0f32; 64];
    for block in 0..bw * bh {
        if restart_interval > 0 && block > 0 && block % restart_interval == 0 {
            r.restart()?;
            pred = 0;
        }
        coef.iter_mut().for_each(|c| *c = 0.0);
        let s = r.decode(dc)? as u32;
        if s > 16 {
            return Err(Jpeg12Error::Corrupt(
                "DC difference category out of range".into(),
            ));
        }
        pred += extend(r.bits(s)?, s);
        coef[0] = pred as f32 * q[0] as f32;
        let mut k = 1usize;
        while k < 64 {
            let rs = r.decode(ac)?;
            let (run, size) = ((rs >> 4) as usize, (rs & 15) as u32);
            if size == 0 {
                if run == 15 {
                    k += 16;
                    continue;
                }
                break;
            }
            k += run;
            if k > 63 {
                return Err(Jpeg12Error::Corrupt("AC coefficient index past 63".into()));
            }
            coef[ZIGZAG[k]] = extend(r.bits(size)?, size) as f32 * q[k] as f32;
            k += 1;
        }
        let pixels = idct(&coef, &cos);
        let (bx, by) = (block % bw, block / bw);
        for y in 0..8 {
            let row = by * 8 + y;
            if row >= height {
                break;
            }
            for x in 0..8 {
                let col = bx * 8 + x;
                if col < width {
                    out[row * width + col] =
                        (pixels[y * 8 + x] + level_shift).round().clamp(0.0, max) as u16;
                }
            }
        }
    }
    Ok(out)
}

/// `cos[x][u] = C(u)/2 · cos((2x+1)uπ/16)`, so a 1-D IDCT is one 8×8 product.
fn cos_table() -> [[f32; 8]; 8] {
    let mut t = [[0f32; 8]; 8];
    for (x, row) in t.iter_mut().enumerate() {
        for (u, v) in row.iter_mut().enumerate() {
            let c = if u == 0 {
                std::f64::consts::FRAC_1_SQRT_2
            } else {
                1.0
            };
            *v = (c / 2.0 * (((2 * x + 1) as f64 * u as f64 * std::f64::consts::PI) / 16.0).cos())
                as f32;
        }
    }
    t
}

fn idct(coef: &[f32; 64], cos: &[[f32; 8]; 8]) -> [f32; 64] {
    let mut tmp = [0f32; 64];
    // Rows: tmp[v][x] = Σu cos[x][u]·F[v][u]
    for v in 0..8 {
        for x in 0..8 {
            tmp[v * 8 + x] = (0..8).map(|u| cos[x][u] * coef[v * 8 + u]).sum();
        }
    }
    let mut out = [0f32; 64];
    for y in 0..8 {
        for x in 0..8 {
            out[y * 8 + x] = (0..8).map(|v| cos[y][v] * tmp[v * 8 + x]).sum();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idct_of_a_dc_block_is_flat() {
        let mut coef = [0f32; 64];
        coef[0] = 80.0; // DC: mean value = F(0,0) / 8
        let out = idct(&coef, &cos_table());
        assert!(out.iter().all(|v| (v - 10.0).abs() < 1e-4), "{out:?}");
    }

    #[test]
    fn extend_matches_the_standard() {
        assert_eq!(extend(0, 1), -1);
        assert_eq!(extend(1, 1), 1);
        assert_eq!(extend(0, 3), -7);
        assert_eq!(extend(4, 3), 4);
    }

    #[test]
    fn refuses_non_jpeg_and_garbage() {
        assert!(matches!(decode(b"hello"), Err(Jpeg12Error::NotJpeg(_))));
        assert!(decode(&[0xFF, 0xD8, 0xFF, 0xC2, 0x00, 0x02]).is_err());
        let mut state = 0x1234_5678_9ABC_DEF1u64;
        for _ in 0..2000 {
            let mut bytes = vec![0xFF, 0xD8];
            for _ in 0..64 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                bytes.push(state as u8);
            }
            let _ = decode(&bytes);
        }
    }
}
