//! Siemens mosaic: one stored image holding all slices of a volume as tiles.
//!
//! The slice count comes from the private CSA image header (NumberOfImagesInMosaic); the slice
//! stacking direction from its SliceNormalVector. ImagePositionPatient of a mosaic is that of
//! the whole tiled image, so the first tile's centre is shifted by half the size difference
//! (the correction dcm2niix and nibabel apply).

/// What un-mosaicing needs, read from the CSA header.
#[derive(Debug, Clone, PartialEq)]
pub struct MosaicInfo {
    pub slices: u32,
    /// SliceNormalVector: direction of increasing tile index (LPS).
    pub normal: Option<[f64; 3]>,
}

/// Reads NumberOfImagesInMosaic and SliceNormalVector from a CSA2 ("SV10") header.
pub fn parse_csa(bytes: &[u8]) -> Option<MosaicInfo> {
    if bytes.len() < 16 || &bytes[0..4] != b"SV10" {
        return None;
    }
    let u32_at = |p: usize| -> Option<u32> {
        bytes
            .get(p..p + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let n_tags = u32_at(8)? as usize;
    if n_tags > 1000 {
        return None;
    }
    let mut pos = 16;
    let mut slices = None;
    let mut normal = None;
    for _ in 0..n_tags {
        let name_bytes = bytes.get(pos..pos + 64)?;
        let name_len = name_bytes.iter().position(|b| *b == 0).unwrap_or(64);
        let name = String::from_utf8_lossy(&name_bytes[..name_len]).to_string();
        let n_items = u32_at(pos + 76)? as usize;
        if n_items > 10_000 {
            return None;
        }
        pos += 84;
        let mut values = Vec::new();
        for _ in 0..n_items {
            let item_len = u32_at(pos + 4)? as usize;
            pos += 16;
            let data = bytes.get(pos..pos + item_len)?;
            let text = String::from_utf8_lossy(data);
            let text = text.trim_matches(|c: char| c == '\0' || c.is_whitespace());
            if !text.is_empty() {
                values.push(text.to_string());
            }
            pos += item_len.div_ceil(4) * 4;
        }
        match name.as_str() {
            "NumberOfImagesInMosaic" => {
                slices = values
                    .first()
                    .and_then(|v| v.parse::<f64>().ok())
                    .map(|v| v as u32)
            }
            "SliceNormalVector" => {
                let v: Vec<f64> = values.iter().filter_map(|v| v.parse().ok()).collect();
                if v.len() == 3 {
                    normal = Some([v[0], v[1], v[2]]);
                }
            }
            _ => {}
        }
    }
    let slices = slices.filter(|s| *s >= 1)?;
    Some(MosaicInfo { slices, normal })
}

/// Tiles per side of a mosaic of `slices` images.
pub fn tiles_per_side(slices: u32) -> u32 {
    let mut m = (slices as f64).sqrt().ceil() as u32;
    while m * m < slices {
        m += 1;
    }
    m.max(1)
}

/// Copies tile `k` (row-major tile order) of a `cols`×`rows` mosaic into `out`.
pub fn copy_tile(
    mosaic: &[f32],
    cols: usize,
    tile_cols: usize,
    tile_rows: usize,
    m: usize,
    k: usize,
    out: &mut [f32],
) {
    let (tx, ty) = (k % m, k / m);
    for r in 0..tile_rows {
        let src = (ty * tile_rows + r) * cols + tx * tile_cols;
        out[r * tile_cols..(r + 1) * tile_cols].copy_from_slice(&mosaic[src..src + tile_cols]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csa_tag(name: &str, values: &[&str]) -> Vec<u8> {
        let mut out = vec![0u8; 64];
        out[..name.len()].copy_from_slice(name.as_bytes());
        out.extend_from_slice(&1i32.to_le_bytes()); // vm
        out.extend_from_slice(b"IS\0\0");
        out.extend_from_slice(&6i32.to_le_bytes());
        out.extend_from_slice(&(values.len() as i32).to_le_bytes());
        out.extend_from_slice(&77i32.to_le_bytes());
        for v in values {
            let len = v.len() as i32;
            for x in [len, len, 77, len] {
                out.extend_from_slice(&x.to_le_bytes());
            }
            out.extend_from_slice(v.as_bytes());
            out.resize(out.len() + (4 - v.len() % 4) % 4, 0);
        }
        out
    }

    #[test]
    fn reads_slice_count_and_normal() {
        let mut csa = b"SV10\x04\x03\x02\x01".to_vec();
        csa.extend_from_slice(&3u32.to_le_bytes());
        csa.extend_from_slice(&77u32.to_le_bytes());
        csa.extend(csa_tag("EchoLinePosition", &["32"]));
        csa.extend(csa_tag("NumberOfImagesInMosaic", &["35"]));
        csa.extend(csa_tag("SliceNormalVector", &["0.0", "0.108", "0.994"]));
        let info = parse_csa(&csa).expect("parsed");
        assert_eq!(info.slices, 35);
        assert_eq!(info.normal, Some([0.0, 0.108, 0.994]));
        assert_eq!(tiles_per_side(35), 6);
        assert_eq!(tiles_per_side(36), 6);
        assert!(parse_csa(b"garbage").is_none());
    }

    #[test]
    fn tiles_are_cut_row_major() {
        // 2×2 tiles of 2×1 pixels: values = tile index.
        let mosaic = [0.0, 0.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0];
        let mut out = [0f32; 2];
        copy_tile(&mosaic, 4, 2, 1, 2, 3, &mut out);
        assert_eq!(out, [3.0, 3.0]);
    }
}
