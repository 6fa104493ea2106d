//! Header fields ↔ voxel-to-world affine. RAS↔LPS happens here and nowhere else.
//!
//! Precedence follows nibabel's `get_best_affine` (and ITK): the sform when
//! `sform_code > 0`, else the qform when `qform_code > 0`, else nibabel's legacy
//! Analyze grid (x flipped, centred on the volume). NIfTI stores RAS millimetres;
//! `LPS = diag(-1, -1, 1) · RAS`.

use super::header::NiftiHeader;
use nalgebra::{Matrix3, Matrix4, Vector3};

/// Which header fields placed the volume, for `info` and warnings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AffineSource {
    Sform,
    Qform,
    /// Neither code set: nibabel's centred, x-flipped pixdim grid.
    Legacy,
}

impl AffineSource {
    pub fn name(self) -> &'static str {
        match self {
            Self::Sform => "sform",
            Self::Qform => "qform",
            Self::Legacy => "pixdim only",
        }
    }
}

/// `diag(-1, -1, 1, 1)`: flips RAS to LPS and back (its own inverse).
pub fn lps_from_ras() -> Matrix4<f64> {
    Matrix4::from_diagonal(&nalgebra::Vector4::new(-1.0, -1.0, 1.0, 1.0))
}

/// The header's RAS voxel-to-world affine and where it came from.
pub fn ras_from_voxel(h: &NiftiHeader) -> Result<(Matrix4<f64>, AffineSource), String> {
    if h.sform_code > 0 {
        let mut m = Matrix4::identity();
        for r in 0..3 {
            for c in 0..4 {
                m[(r, c)] = h.srow[r][c];
            }
        }
        return Ok((m, AffineSource::Sform));
    }
    if h.qform_code > 0 {
        return qform_affine(h).map(|m| (m, AffineSource::Qform));
    }
    legacy_affine(h).map(|m| (m, AffineSource::Legacy))
}

fn spacing(h: &NiftiHeader) -> Result<[f64; 3], String> {
    let rank = h.dim[0];
    let mut s = [1.0; 3];
    for (n, v) in s.iter_mut().enumerate() {
        if (n as i64) < rank {
            *v = h.pixdim[n + 1];
        }
        if !v.is_finite() || *v <= 0.0 {
            return Err(format!(
                "pixdim[{}] is {v}; the qform and legacy grid need positive spacing",
                n + 1
            ));
        }
    }
    Ok(s)
}

/// NIfTI-1 standard, method 2: rotation from the quaternion (b, c, d), `qfac` from pixdim[0].
fn qform_affine(h: &NiftiHeader) -> Result<Matrix4<f64>, String> {
    let [mut b, mut c, mut d] = h.quatern;
    if ![b, c, d].iter().all(|v| v.is_finite()) || !h.qoffset.iter().all(|v| v.is_finite()) {
        return Err("quaternion or qoffset is not finite".into());
    }
    let mut a = 1.0 - (b * b + c * c + d * d);
    if a < 1e-7 {
        // As nifti1_io: a 180° rotation stored with rounding; renormalise (b, c, d).
        let n = (b * b + c * c + d * d).sqrt();
        b /= n;
        c /= n;
        d /= n;
        a = 0.0;
    } else {
        a = a.sqrt();
    }
    let rot = Matrix3::new(
        a * a + b * b - c * c - d * d,
        2.0 * (b * c - a * d),
        2.0 * (b * d + a * c),
        2.0 * (b * c + a * d),
        a * a + c * c - b * b - d * d,
        2.0 * (c * d - a * b),
        2.0 * (b * d - a * c),
        2.0 * (c * d + a * b),
        a * a + d * d - c * c - b * b,
    );
    let qfac = if h.pixdim[0] < 0.0 { -1.0 } else { 1.0 };
    let [dx, dy, dz] = spacing(h)?;
    let linear = rot * Matrix3::from_diagonal(&Vector3::new(dx, dy, qfac * dz));
    let mut m = Matrix4::identity();
    m.fixed_view_mut::<3, 3>(0, 0).copy_from(&linear);
    for r in 0..3 {
        m[(r, 3)] = h.qoffset[r];
    }
    Ok(m)
}

/// nibabel's `get_base_affine`: zooms on the diagonal, x flipped, voxel centre at the origin.
fn legacy_affine(h: &NiftiHeader) -> Result<Matrix4<f64>, String> {
    let zooms = spacing(h)?;
    let dims = h.spatial_dims();
    let mut m = Matrix4::identity();
    for a in 0..3 {
        let z = if a == 0 { -zooms[a] } else { zooms[a] };
        m[(a, a)] = z;
        m[(a, 3)] = -((dims[a] as f64 - 1.0) / 2.0) * z;
    }
    Ok(m)
}

/// Header fields describing a LPS `world_from_voxel`: `(srow rows, quatern b c d, qoffset, qfac)`.
pub struct QformSform {
    pub srow: [[f64; 4]; 3],
    pub quatern: [f64; 3],
    pub qoffset: [f64; 3],
    pub qfac: f64,
}

/// Encodes an LPS affine for the header. The sform is exact; the qform holds the nearest
/// rotation (a sheared, gantry-tilted grid cannot be a quaternion) and `spacing_mm`.
pub fn header_fields(lps_from_voxel: &Matrix4<f64>, spacing_mm: [f64; 3]) -> QformSform {
    let ras = lps_from_ras() * lps_from_voxel;
    let mut srow = [[0.0; 4]; 3];
    for (r, row) in srow.iter_mut().enumerate() {
        for (c, v) in row.iter_mut().enumerate() {
            *v = ras[(r, c)];
        }
    }
    let mut dir = ras.fixed_view::<3, 3>(0, 0).into_owned();
    for (c, s) in spacing_mm.iter().enumerate() {
        let col = dir.column(c) / *s;
        dir.set_column(c, &col);
    }
    // Nearest orthonormal matrix (polar decomposition) so a sheared grid still gets a qform.
    let svd = dir.svd(true, true);
    let mut rot = match (svd.u, svd.v_t) {
        (Some(u), Some(v_t)) => u * v_t,
        _ => Matrix3::identity(),
    };
    let qfac = if rot.determinant() < 0.0 {
        let flipped = -rot.column(2);
        rot.set_column(2, &flipped);
        -1.0
    } else {
        1.0
    };
    QformSform {
        srow,
        quatern: quaternion_from_rotation(&rot),
        qoffset: [ras[(0, 3)], ras[(1, 3)], ras[(2, 3)]],
        qfac,
    }
}

/// nifti1_io's `mat44_to_quatern` for a proper rotation: `(b, c, d)` with `a ≥ 0`.
fn quaternion_from_rotation(r: &Matrix3<f64>) -> [f64; 3] {
    let (r11, r12, r13) = (r[(0, 0)], r[(0, 1)], r[(0, 2)]);
    let (r21, r22, r23) = (r[(1, 0)], r[(1, 1)], r[(1, 2)]);
    let (r31, r32, r33) = (r[(2, 0)], r[(2, 1)], r[(2, 2)]);
    let trace = r11 + r22 + r33 + 1.0;
    let (a, b, c, d);
    if trace > 0.5 {
        a = 0.5 * trace.sqrt();
        b = 0.25 * (r32 - r23) / a;
        c = 0.25 * (r13 - r31) / a;
        d = 0.25 * (r21 - r12) / a;
    } else {
        let xd = 1.0 + r11 - (r22 + r33);
        let yd = 1.0 + r22 - (r11 + r33);
        let zd = 1.0 + r33 - (r11 + r22);
        if xd > 1.0 {
            let bb = 0.5 * xd.sqrt();
            b = bb;
            c = 0.25 * (r12 + r21) / bb;
            d = 0.25 * (r13 + r31) / bb;
            a = 0.25 * (r32 - r23) / bb;
        } else if yd > 1.0 {
            let cc = 0.5 * yd.sqrt();
            c = cc;
            b = 0.25 * (r12 + r21) / cc;
            d = 0.25 * (r23 + r32) / cc;
            a = 0.25 * (r13 - r31) / cc;
        } else {
            let dd = 0.5 * zd.sqrt();
            d = dd;
            b = 0.25 * (r13 + r31) / dd;
            c = 0.25 * (r23 + r32) / dd;
            a = 0.25 * (r21 - r12) / dd;
        }
    }
    if a < 0.0 {
        [-b, -c, -d]
    } else {
        [b, c, d]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::VolumeGeometry;
    use nalgebra::Rotation3;

    fn header_from_fields(f: &QformSform, spacing: [f64; 3]) -> NiftiHeader {
        NiftiHeader {
            version: 1,
            little_endian: true,
            dim: [3, 4, 5, 6, 1, 1, 1, 1],
            datatype: super::super::header::DataType::F32,
            pixdim: [
                f.qfac, spacing[0], spacing[1], spacing[2], 0.0, 0.0, 0.0, 0.0,
            ],
            vox_offset: 352,
            scl_slope: 0.0,
            scl_inter: 0.0,
            qform_code: 1,
            sform_code: 0,
            quatern: f.quatern,
            qoffset: f.qoffset,
            srow: f.srow,
            descrip: String::new(),
        }
    }

    /// Oblique and flipped grids survive LPS → header → LPS through both sform and qform.
    #[test]
    fn qform_and_sform_round_trip_oblique_grids() {
        let rotations = [
            Rotation3::from_euler_angles(0.0, 0.0, 0.0),
            Rotation3::from_euler_angles(0.3, -0.2, 1.1),
            Rotation3::from_euler_angles(std::f64::consts::PI, 0.0, 0.0),
            Rotation3::from_euler_angles(0.0, std::f64::consts::PI, 0.4),
        ];
        for rot in rotations {
            for flip in [1.0, -1.0] {
                let mut dir = *rot.matrix();
                let c2 = dir.column(2) * flip;
                dir.set_column(2, &c2);
                let spacing = [0.7, 1.3, 2.5];
                let g = VolumeGeometry::new([4, 5, 6], spacing, [10.0, -20.0, 33.0], dir)
                    .expect("valid");
                let lps = g.world_from_voxel();
                let fields = header_fields(&lps, spacing);
                let mut h = header_from_fields(&fields, spacing);
                let (q, src) = ras_from_voxel(&h).expect("qform");
                assert_eq!(src, AffineSource::Qform);
                assert!(
                    (lps_from_ras() * q - lps).abs().max() < 1e-9,
                    "qform {rot:?} {flip}"
                );
                h.sform_code = 1;
                let (s, src) = ras_from_voxel(&h).expect("sform");
                assert_eq!(src, AffineSource::Sform);
                assert!((lps_from_ras() * s - lps).abs().max() < 1e-12);
            }
        }
    }

    #[test]
    fn sform_wins_over_qform_and_legacy_centres_the_grid() {
        let fields = header_fields(&Matrix4::identity(), [1.0; 3]);
        let mut h = header_from_fields(&fields, [2.0, 3.0, 4.0]);
        h.sform_code = 2;
        h.srow = [
            [5.0, 0.0, 0.0, 1.0],
            [0.0, 5.0, 0.0, 2.0],
            [0.0, 0.0, 5.0, 3.0],
        ];
        assert_eq!(ras_from_voxel(&h).expect("ok").0[(0, 0)], 5.0);
        h.sform_code = 0;
        h.qform_code = 0;
        let (m, src) = ras_from_voxel(&h).expect("legacy");
        assert_eq!(src, AffineSource::Legacy);
        // Voxel centre of a 4×5×6 grid maps to RAS (0, 0, 0).
        let centre = m * nalgebra::Vector4::new(1.5, 2.0, 2.5, 1.0);
        assert!(centre.xyz().norm() < 1e-12);
        assert_eq!(m[(0, 0)], -2.0);
    }
}
