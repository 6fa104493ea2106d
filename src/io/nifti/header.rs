//! The NIfTI-1 (348-byte) and NIfTI-2 (540-byte) headers, parsed by hand.
//!
//! We parse ourselves rather than through the `nifti` crate so that a header that lies
//! (absurd dims, NaN spacing, a size larger than the file) is refused with a reason before
//! any buffer is allocated, and so NIfTI-2 works too.

/// Bytes in a NIfTI-1 header; also its `sizeof_hdr` field.
pub const NIFTI1_HEADER_LEN: usize = 348;
/// Bytes in a NIfTI-2 header; also its `sizeof_hdr` field.
pub const NIFTI2_HEADER_LEN: usize = 540;

/// Voxel storage types we read (NIfTI `datatype` codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    U8,
    I8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    F32,
    F64,
}

impl DataType {
    pub fn from_code(code: i64) -> Option<Self> {
        Some(match code {
            2 => Self::U8,
            4 => Self::I16,
            8 => Self::I32,
            16 => Self::F32,
            64 => Self::F64,
            256 => Self::I8,
            512 => Self::U16,
            768 => Self::U32,
            1024 => Self::I64,
            1280 => Self::U64,
            _ => return None,
        })
    }

    pub fn code(self) -> i16 {
        match self {
            Self::U8 => 2,
            Self::I16 => 4,
            Self::I32 => 8,
            Self::F32 => 16,
            Self::F64 => 64,
            Self::I8 => 256,
            Self::U16 => 512,
            Self::U32 => 768,
            Self::I64 => 1024,
            Self::U64 => 1280,
        }
    }

    pub fn bytes(self) -> usize {
        match self {
            Self::U8 | Self::I8 => 1,
            Self::I16 | Self::U16 => 2,
            Self::I32 | Self::U32 | Self::F32 => 4,
            Self::I64 | Self::U64 | Self::F64 => 8,
        }
    }

    pub fn is_integer(self) -> bool {
        !matches!(self, Self::F32 | Self::F64)
    }
}

/// Names for the datatype codes we refuse, so the message says what the file holds.
fn unsupported_datatype_name(code: i64) -> &'static str {
    match code {
        1 => "binary (1 bit)",
        32 => "complex64",
        128 => "RGB24",
        1536 => "float128",
        1792 => "complex128",
        2048 => "complex256",
        2304 => "RGBA32",
        _ => "unknown",
    }
}

/// The header fields fuseprint uses, widened to NIfTI-2 precision whatever the version.
#[derive(Debug, Clone, PartialEq)]
pub struct NiftiHeader {
    /// 1 or 2.
    pub version: u8,
    pub little_endian: bool,
    /// `dim[0..8]`: `dim[0]` is the rank.
    pub dim: [i64; 8],
    pub datatype: DataType,
    pub pixdim: [f64; 8],
    pub vox_offset: u64,
    pub scl_slope: f64,
    pub scl_inter: f64,
    pub qform_code: i32,
    pub sform_code: i32,
    pub quatern: [f64; 3],
    pub qoffset: [f64; 3],
    pub srow: [[f64; 4]; 3],
    pub descrip: String,
}

/// Why a header was refused (the caller adds the file name).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HeaderError {
    #[error("{0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> HeaderError {
    HeaderError::Invalid(msg.into())
}

/// Endian-aware field reader over a header-sized byte slice (lengths checked by the caller).
struct Fields<'a> {
    b: &'a [u8],
    le: bool,
}

impl Fields<'_> {
    fn arr<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(&self.b[at..at + N]);
        if !self.le {
            a.reverse();
        }
        // Bytes are now little-endian.
        a
    }
    fn i16(&self, at: usize) -> i16 {
        i16::from_le_bytes(self.arr(at))
    }
    fn i32(&self, at: usize) -> i32 {
        i32::from_le_bytes(self.arr(at))
    }
    fn i64(&self, at: usize) -> i64 {
        i64::from_le_bytes(self.arr(at))
    }
    fn f32(&self, at: usize) -> f64 {
        f32::from_le_bytes(self.arr(at)) as f64
    }
    fn f64(&self, at: usize) -> f64 {
        f64::from_le_bytes(self.arr(at))
    }
    fn text(&self, at: usize, len: usize) -> String {
        let raw = &self.b[at..at + len];
        let end = raw.iter().position(|&c| c == 0).unwrap_or(len);
        String::from_utf8_lossy(&raw[..end]).trim().to_string()
    }
}

/// How many header bytes to read before [`parse_header`] can decide: the NIfTI-2 size.
pub const MAX_HEADER_LEN: usize = NIFTI2_HEADER_LEN;

/// Parses and validates a header from the start of a file's (decompressed) bytes.
pub fn parse_header(bytes: &[u8]) -> Result<NiftiHeader, HeaderError> {
    if bytes.len() < 4 {
        return Err(invalid(format!(
            "file is {} bytes, too short for a NIfTI header",
            bytes.len()
        )));
    }
    let first = [bytes[0], bytes[1], bytes[2], bytes[3]];
    let (version, le) = match (i32::from_le_bytes(first), i32::from_be_bytes(first)) {
        (348, _) => (1, true),
        (_, 348) => (1, false),
        (540, _) => (2, true),
        (_, 540) => (2, false),
        (le, _) => {
            return Err(invalid(format!(
                "header size field is {le}, expected 348 (NIfTI-1) or 540 (NIfTI-2)"
            )))
        }
    };
    let need = if version == 1 {
        NIFTI1_HEADER_LEN
    } else {
        NIFTI2_HEADER_LEN
    };
    if bytes.len() < need {
        return Err(invalid(format!(
            "file ends inside the NIfTI-{version} header ({} of {need} bytes)",
            bytes.len()
        )));
    }
    let f = Fields { b: bytes, le };
    let header = if version == 1 {
        parse_v1(&f)?
    } else {
        parse_v2(&f)?
    };
    validate(&header)?;
    Ok(header)
}

fn parse_v1(f: &Fields) -> Result<NiftiHeader, HeaderError> {
    let magic = &f.b[344..348];
    match magic {
        b"n+1\0" => {}
        b"ni1\0" => {
            return Err(invalid(
                "two-file NIfTI (.hdr + .img) is not supported; convert it to a single .nii",
            ))
        }
        _ => {
            return Err(invalid(format!(
                "bad magic {:?}, expected \"n+1\"",
                String::from_utf8_lossy(magic)
            )))
        }
    }
    let mut dim = [0i64; 8];
    for (n, d) in dim.iter_mut().enumerate() {
        *d = f.i16(40 + 2 * n) as i64;
    }
    let mut pixdim = [0f64; 8];
    for (n, p) in pixdim.iter_mut().enumerate() {
        *p = f.f32(76 + 4 * n);
    }
    let code = f.i16(70) as i64;
    let vox_offset = f.f32(108);
    if !vox_offset.is_finite() || vox_offset < 0.0 || vox_offset > u32::MAX as f64 {
        return Err(invalid(format!(
            "vox_offset {vox_offset} is not a valid offset"
        )));
    }
    let row = |at: usize| [f.f32(at), f.f32(at + 4), f.f32(at + 8), f.f32(at + 12)];
    Ok(NiftiHeader {
        version: 1,
        little_endian: f.le,
        dim,
        datatype: datatype(code)?,
        pixdim,
        vox_offset: vox_offset as u64,
        scl_slope: f.f32(112),
        scl_inter: f.f32(116),
        qform_code: f.i16(252) as i32,
        sform_code: f.i16(254) as i32,
        quatern: [f.f32(256), f.f32(260), f.f32(264)],
        qoffset: [f.f32(268), f.f32(272), f.f32(276)],
        srow: [row(280), row(296), row(312)],
        descrip: f.text(148, 80),
    })
}

fn parse_v2(f: &Fields) -> Result<NiftiHeader, HeaderError> {
    let magic = &f.b[4..12];
    if &magic[..4] != b"n+2\0" {
        if &magic[..4] == b"ni2\0" {
            return Err(invalid(
                "two-file NIfTI-2 (.hdr + .img) is not supported; convert it to a single .nii",
            ));
        }
        return Err(invalid(format!(
            "bad magic {:?}, expected \"n+2\"",
            String::from_utf8_lossy(&magic[..4])
        )));
    }
    let mut dim = [0i64; 8];
    for (n, d) in dim.iter_mut().enumerate() {
        *d = f.i64(16 + 8 * n);
    }
    let mut pixdim = [0f64; 8];
    for (n, p) in pixdim.iter_mut().enumerate() {
        *p = f.f64(104 + 8 * n);
    }
    let vox_offset = f.i64(168);
    if vox_offset < 0 {
        return Err(invalid(format!("vox_offset {vox_offset} is negative")));
    }
    let row = |at: usize| [f.f64(at), f.f64(at + 8), f.f64(at + 16), f.f64(at + 24)];
    Ok(NiftiHeader {
        version: 2,
        little_endian: f.le,
        dim,
        datatype: datatype(f.i16(12) as i64)?,
        pixdim,
        vox_offset: vox_offset as u64,
        scl_slope: f.f64(176),
        scl_inter: f.f64(184),
        qform_code: f.i32(344),
        sform_code: f.i32(348),
        quatern: [f.f64(352), f.f64(360), f.f64(368)],
        qoffset: [f.f64(376), f.f64(384), f.f64(392)],
        srow: [row(400), row(432), row(464)],
        descrip: f.text(240, 80),
    })
}

fn datatype(code: i64) -> Result<DataType, HeaderError> {
    DataType::from_code(code).ok_or_else(|| {
        invalid(format!(
            "unsupported datatype {code} ({})",
            unsupported_datatype_name(code)
        ))
    })
}

fn validate(h: &NiftiHeader) -> Result<(), HeaderError> {
    let rank = h.dim[0];
    if !(1..=7).contains(&rank) {
        return Err(invalid(format!("dim[0] (rank) is {rank}, expected 1 to 7")));
    }
    for n in 1..=rank as usize {
        if h.dim[n] <= 0 {
            return Err(invalid(format!(
                "dim[{n}] is {}, every dimension must be at least 1",
                h.dim[n]
            )));
        }
    }
    // Spacing is needed by qform and the legacy grid, and a NaN there poisons every
    // downstream distance even when the sform is used.
    for n in 1..=(rank.min(3) as usize) {
        let p = h.pixdim[n];
        if !p.is_finite() {
            return Err(invalid(format!("pixdim[{n}] is {p}, not a number")));
        }
    }
    if !h.pixdim[0].is_finite() {
        return Err(invalid(format!("pixdim[0] (qfac) is {}", h.pixdim[0])));
    }
    h.voxel_count()?;
    h.data_bytes()?;
    let min_offset = if h.version == 1 {
        NIFTI1_HEADER_LEN as u64
    } else {
        NIFTI2_HEADER_LEN as u64
    };
    if h.vox_offset < min_offset {
        return Err(invalid(format!(
            "vox_offset {} lies inside the {min_offset}-byte header",
            h.vox_offset
        )));
    }
    Ok(())
}

impl NiftiHeader {
    /// `[nx, ny, nz]`: the spatial grid (missing axes are 1).
    pub fn spatial_dims(&self) -> [usize; 3] {
        let rank = self.dim[0];
        let d = |n: i64| {
            if n <= rank {
                self.dim[n as usize].max(1) as usize
            } else {
                1
            }
        };
        [d(1), d(2), d(3)]
    }

    /// Product of `dim[4..=rank]`: how many 3D volumes the file holds.
    pub fn volume_count(&self) -> u64 {
        (4..=self.dim[0].clamp(0, 7) as usize)
            .map(|n| self.dim[n].max(1) as u64)
            .fold(1u64, |a, b| a.saturating_mul(b))
    }

    /// Voxels in the first 3D volume, refusing counts that overflow.
    pub fn voxel_count(&self) -> Result<usize, HeaderError> {
        let [nx, ny, nz] = self.spatial_dims();
        nx.checked_mul(ny)
            .and_then(|v| v.checked_mul(nz))
            .ok_or_else(|| invalid(format!("dims {nx}×{ny}×{nz} overflow a voxel count")))
    }

    /// Bytes of voxel data in the first 3D volume.
    pub fn data_bytes(&self) -> Result<u64, HeaderError> {
        let n = self.voxel_count()? as u64;
        n.checked_mul(self.datatype.bytes() as u64)
            .filter(|b| b.checked_add(self.vox_offset).is_some())
            .ok_or_else(|| invalid(format!("{n} voxels overflow a byte count")))
    }

    /// `(slope, intercept)` to apply, or `None` when the file asks for raw values
    /// (slope 0 or not finite means "no scaling" per the standard).
    pub fn scaling(&self) -> Option<(f64, f64)> {
        let slope = self.scl_slope;
        if slope == 0.0 || !slope.is_finite() {
            return None;
        }
        let inter = if self.scl_inter.is_finite() {
            self.scl_inter
        } else {
            0.0
        };
        if slope == 1.0 && inter == 0.0 {
            None
        } else {
            Some((slope, inter))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal_v1() -> Vec<u8> {
        let mut b = vec![0u8; 352];
        b[0..4].copy_from_slice(&348i32.to_le_bytes());
        for (n, d) in [3i16, 4, 5, 6, 1, 1, 1, 1].iter().enumerate() {
            b[40 + 2 * n..42 + 2 * n].copy_from_slice(&d.to_le_bytes());
        }
        b[70..72].copy_from_slice(&4i16.to_le_bytes());
        for (n, p) in [1f32, 0.5, 0.75, 2.0].iter().enumerate() {
            b[76 + 4 * n..80 + 4 * n].copy_from_slice(&p.to_le_bytes());
        }
        b[108..112].copy_from_slice(&352f32.to_le_bytes());
        b[344..348].copy_from_slice(b"n+1\0");
        b
    }

    #[test]
    fn reads_a_minimal_header_in_both_byte_orders() {
        let le = minimal_v1();
        let h = parse_header(&le).expect("valid");
        assert_eq!(h.spatial_dims(), [4, 5, 6]);
        assert_eq!(h.datatype, DataType::I16);
        assert_eq!(h.pixdim[2], 0.75);
        // Byte-swap every numeric field we set to get the big-endian twin.
        let mut be = le.clone();
        be[0..4].copy_from_slice(&348i32.to_be_bytes());
        for (n, d) in [3i16, 4, 5, 6, 1, 1, 1, 1].iter().enumerate() {
            be[40 + 2 * n..42 + 2 * n].copy_from_slice(&d.to_be_bytes());
        }
        be[70..72].copy_from_slice(&4i16.to_be_bytes());
        for (n, p) in [1f32, 0.5, 0.75, 2.0].iter().enumerate() {
            be[76 + 4 * n..80 + 4 * n].copy_from_slice(&p.to_be_bytes());
        }
        be[108..112].copy_from_slice(&352f32.to_be_bytes());
        let hb = parse_header(&be).expect("valid big-endian");
        assert!(!hb.little_endian);
        assert_eq!(hb.spatial_dims(), h.spatial_dims());
        assert_eq!(hb.pixdim, h.pixdim);
    }

    #[test]
    fn refuses_lying_headers() {
        let mut zero_dim = minimal_v1();
        zero_dim[44..46].copy_from_slice(&0i16.to_le_bytes());
        assert!(parse_header(&zero_dim).is_err());
        let mut nan = minimal_v1();
        nan[80..84].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(parse_header(&nan).is_err());
        let mut magic = minimal_v1();
        magic[344] = b'x';
        assert!(parse_header(&magic).is_err());
        let mut dtype = minimal_v1();
        dtype[70..72].copy_from_slice(&128i16.to_le_bytes());
        let msg = parse_header(&dtype).expect_err("rgb").to_string();
        assert!(msg.contains("RGB24"), "{msg}");
        assert!(parse_header(&minimal_v1()[..200]).is_err());
    }

    #[test]
    fn slope_zero_means_no_scaling() {
        let mut h = parse_header(&minimal_v1()).expect("valid");
        assert_eq!(h.scaling(), None);
        h.scl_slope = 2.0;
        h.scl_inter = -1024.0;
        assert_eq!(h.scaling(), Some((2.0, -1024.0)));
        h.scl_slope = f64::NAN;
        assert_eq!(h.scaling(), None);
    }
}
