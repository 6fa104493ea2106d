//! Linear transform models (rigid, similarity-free affine) parameterised about a centre, and
//! their ITK text form.
//!
//! Every transform here maps a FIXED world point (LPS mm) to the MOVING world point (LPS mm),
//! which is what `volume::resample(moving, fixed_geometry, Some(&moving_from_fixed), ..)` and
//! ITK's own `.tfm` convention both expect.

use nalgebra::{Matrix3, Matrix4, Point3, Vector3};

/// Which linear model an intensity registration optimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LinearModel {
    /// Euler angles (radians, `R = Rz·Ry·Rx`) + translation: 6 parameters.
    Rigid,
    /// Full 3×3 matrix (row-major) + translation: 12 parameters.
    Affine,
}

impl LinearModel {
    pub fn n_params(self) -> usize {
        match self {
            LinearModel::Rigid => 6,
            LinearModel::Affine => 12,
        }
    }
}

/// A linear transform `y = A(p)·(x − centre) + centre + t(p)` in world millimetres.
#[derive(Debug, Clone, PartialEq)]
pub struct CenteredLinear {
    pub model: LinearModel,
    /// Rotation centre in fixed world LPS mm (ITK's FixedParameters).
    pub centre_mm: Vector3<f64>,
    pub params: Vec<f64>,
}

fn rot_x(a: f64) -> Matrix3<f64> {
    let (s, c) = a.sin_cos();
    Matrix3::new(1.0, 0.0, 0.0, 0.0, c, -s, 0.0, s, c)
}
fn rot_y(a: f64) -> Matrix3<f64> {
    let (s, c) = a.sin_cos();
    Matrix3::new(c, 0.0, s, 0.0, 1.0, 0.0, -s, 0.0, c)
}
fn rot_z(a: f64) -> Matrix3<f64> {
    let (s, c) = a.sin_cos();
    Matrix3::new(c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0)
}
fn d_rot_x(a: f64) -> Matrix3<f64> {
    let (s, c) = a.sin_cos();
    Matrix3::new(0.0, 0.0, 0.0, 0.0, -s, -c, 0.0, c, -s)
}
fn d_rot_y(a: f64) -> Matrix3<f64> {
    let (s, c) = a.sin_cos();
    Matrix3::new(-s, 0.0, c, 0.0, 0.0, 0.0, -c, 0.0, -s)
}
fn d_rot_z(a: f64) -> Matrix3<f64> {
    let (s, c) = a.sin_cos();
    Matrix3::new(-s, -c, 0.0, c, -s, 0.0, 0.0, 0.0, 0.0)
}

/// `Rz(γ)·Ry(β)·Rx(α)`.
pub fn euler_matrix(alpha: f64, beta: f64, gamma: f64) -> Matrix3<f64> {
    rot_z(gamma) * rot_y(beta) * rot_x(alpha)
}

/// Euler angles `(α, β, γ)` of a rotation matrix with `R = Rz·Ry·Rx`.
pub fn euler_angles(r: &Matrix3<f64>) -> [f64; 3] {
    let beta = (-r[(2, 0)]).clamp(-1.0, 1.0).asin();
    let alpha = r[(2, 1)].atan2(r[(2, 2)]);
    let gamma = r[(1, 0)].atan2(r[(0, 0)]);
    [alpha, beta, gamma]
}

impl CenteredLinear {
    pub fn identity(model: LinearModel, centre_mm: Vector3<f64>) -> Self {
        let params = match model {
            LinearModel::Rigid => vec![0.0; 6],
            LinearModel::Affine => {
                let mut p = vec![0.0; 12];
                p[0] = 1.0;
                p[4] = 1.0;
                p[8] = 1.0;
                p
            }
        };
        Self {
            model,
            centre_mm,
            params,
        }
    }

    /// The linear part `A`.
    pub fn linear(&self) -> Matrix3<f64> {
        let p = &self.params;
        match self.model {
            LinearModel::Rigid => euler_matrix(p[0], p[1], p[2]),
            LinearModel::Affine => Matrix3::from_row_slice(&p[..9]),
        }
    }

    pub fn translation(&self) -> Vector3<f64> {
        let p = &self.params;
        let o = self.model.n_params() - 3;
        Vector3::new(p[o], p[o + 1], p[o + 2])
    }

    /// `moving_from_fixed` as a homogeneous matrix.
    pub fn matrix(&self) -> Matrix4<f64> {
        let a = self.linear();
        let offset = self.centre_mm + self.translation() - a * self.centre_mm;
        compose_h(&a, &offset)
    }

    /// Re-expresses any affine `moving_from_fixed` in this model about `centre_mm`
    /// (a rigid model keeps only the rotation closest to the linear part).
    pub fn from_matrix(model: LinearModel, centre_mm: Vector3<f64>, m: &Matrix4<f64>) -> Self {
        let (a, offset) = split_h(m);
        // y = A x + o = A (x - c) + c + t  =>  t = o + A c - c
        let t = offset + a * centre_mm - centre_mm;
        let params = match model {
            LinearModel::Rigid => {
                let r = nearest_rotation(&a);
                let e = euler_angles(&r);
                vec![e[0], e[1], e[2], t.x, t.y, t.z]
            }
            LinearModel::Affine => {
                let mut p: Vec<f64> = (0..3)
                    .flat_map(|r| (0..3).map(move |c| (r, c)))
                    .map(|(r, c)| a[(r, c)])
                    .collect();
                p.extend_from_slice(&[t.x, t.y, t.z]);
                p
            }
        };
        Self {
            model,
            centre_mm,
            params,
        }
    }

    /// Per-evaluation constants for [`Self::accumulate_jacobian`].
    pub(crate) fn jacobian_cache(&self) -> JacobianCache {
        match self.model {
            LinearModel::Rigid => {
                let p = &self.params;
                let (rx, ry, rz) = (rot_x(p[0]), rot_y(p[1]), rot_z(p[2]));
                JacobianCache::Rigid([
                    rz * ry * d_rot_x(p[0]),
                    rz * d_rot_y(p[1]) * rx,
                    d_rot_z(p[2]) * ry * rx,
                ])
            }
            LinearModel::Affine => JacobianCache::Affine,
        }
    }

    /// Multiplies 1 mm of translation by this to make each parameter "cost" the same in mm:
    /// a rotation of 1 rad (or a matrix entry of 1) moves a point at `radius_mm` by that much.
    pub fn physical_scales(&self, radius_mm: f64) -> Vec<f64> {
        let n = self.model.n_params();
        (0..n)
            .map(|i| if i < n - 3 { radius_mm.max(1.0) } else { 1.0 })
            .collect()
    }
}

/// Derivatives of the linear part with respect to its parameters.
pub(crate) enum JacobianCache {
    Rigid([Matrix3<f64>; 3]),
    Affine,
}

impl JacobianCache {
    /// `out += Jᵀ·v` where `J = ∂y/∂params` at the centred fixed point `x_rel = x − centre`
    /// and `v` is a world-space vector (typically `factor · ∇moving`).
    #[inline]
    pub(crate) fn accumulate(&self, x_rel: &Vector3<f64>, v: &Vector3<f64>, out: &mut [f64]) {
        match self {
            JacobianCache::Rigid(d) => {
                for k in 0..3 {
                    out[k] += v.dot(&(d[k] * x_rel));
                }
                out[3] += v.x;
                out[4] += v.y;
                out[5] += v.z;
            }
            JacobianCache::Affine => {
                for i in 0..3 {
                    for j in 0..3 {
                        out[3 * i + j] += v[i] * x_rel[j];
                    }
                }
                out[9] += v.x;
                out[10] += v.y;
                out[11] += v.z;
            }
        }
    }
}

/// Homogeneous 4×4 from a 3×3 linear part and an offset.
pub fn compose_h(a: &Matrix3<f64>, offset: &Vector3<f64>) -> Matrix4<f64> {
    let mut m = Matrix4::identity();
    m.fixed_view_mut::<3, 3>(0, 0).copy_from(a);
    m[(0, 3)] = offset.x;
    m[(1, 3)] = offset.y;
    m[(2, 3)] = offset.z;
    m
}

/// Linear part and offset of a homogeneous affine.
pub fn split_h(m: &Matrix4<f64>) -> (Matrix3<f64>, Vector3<f64>) {
    (
        m.fixed_view::<3, 3>(0, 0).into_owned(),
        Vector3::new(m[(0, 3)], m[(1, 3)], m[(2, 3)]),
    )
}

/// The proper rotation closest (Frobenius) to `a`, by SVD.
pub fn nearest_rotation(a: &Matrix3<f64>) -> Matrix3<f64> {
    let svd = a.svd(true, true);
    match (svd.u, svd.v_t) {
        (Some(u), Some(v_t)) => {
            let mut s = Matrix3::identity();
            if (u * v_t).determinant() < 0.0 {
                s[(2, 2)] = -1.0;
            }
            u * s * v_t
        }
        _ => Matrix3::identity(),
    }
}

/// Applies a homogeneous affine to a point.
pub fn apply(m: &Matrix4<f64>, p: &Point3<f64>) -> Point3<f64> {
    m.transform_point(p)
}

/// ITK's text form (`#Insight Transform File V1.0`), read by ITK, SimpleITK, 3D Slicer and
/// elastix's `transformix` converters: an `AffineTransform_double_3_3` about `centre_mm`
/// mapping fixed physical (LPS) points to moving ones.
pub fn itk_affine_text(moving_from_fixed: &Matrix4<f64>, centre_mm: &Vector3<f64>) -> String {
    let (a, offset) = split_h(moving_from_fixed);
    let t = offset + a * centre_mm - centre_mm;
    let mut params: Vec<String> = Vec::with_capacity(12);
    for r in 0..3 {
        for c in 0..3 {
            params.push(fmt_num(a[(r, c)]));
        }
    }
    params.extend([t.x, t.y, t.z].map(fmt_num));
    format!(
        "#Insight Transform File V1.0\n#Transform 0\nTransform: AffineTransform_double_3_3\n\
         Parameters: {}\nFixedParameters: {} {} {}\n",
        params.join(" "),
        fmt_num(centre_mm.x),
        fmt_num(centre_mm.y),
        fmt_num(centre_mm.z)
    )
}

/// Parses the first Affine/Euler3D/Versor-rigid/Similarity transform of an ITK `.tfm` text
/// back into `moving_from_fixed` (used to round-trip our own output and accept a user's
/// nudged initial transform).
pub fn parse_itk_text(text: &str) -> Result<Matrix4<f64>, String> {
    let mut kind = None;
    let mut params = None;
    let mut fixed = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("Transform:") {
            if kind.is_none() {
                kind = Some(rest.trim().to_string());
            }
        } else if let Some(rest) = line.strip_prefix("Parameters:") {
            if params.is_none() {
                params = Some(parse_numbers(rest)?);
            }
        } else if let Some(rest) = line.strip_prefix("FixedParameters:") {
            if fixed.is_none() {
                fixed = Some(parse_numbers(rest)?);
            }
        }
    }
    let kind = kind.ok_or("no `Transform:` line")?;
    let p = params.ok_or("no `Parameters:` line")?;
    let f = fixed.unwrap_or_else(|| vec![0.0; 3]);
    let centre = if f.len() >= 3 {
        Vector3::new(f[0], f[1], f[2])
    } else {
        Vector3::zeros()
    };
    let need = |n: usize| {
        if p.len() == n {
            Ok(())
        } else {
            Err(format!("{kind} needs {n} parameters, found {}", p.len()))
        }
    };
    let (a, t) = if kind.starts_with("AffineTransform") || kind.starts_with("MatrixOffset") {
        need(12)?;
        (
            Matrix3::from_row_slice(&p[..9]),
            Vector3::new(p[9], p[10], p[11]),
        )
    } else if kind.starts_with("Euler3DTransform") {
        need(6)?;
        // ITK's default Euler3D order (ComputeZYX off) is R = Rz·Rx·Ry.
        (
            rot_z(p[2]) * rot_x(p[0]) * rot_y(p[1]),
            Vector3::new(p[3], p[4], p[5]),
        )
    } else if kind.starts_with("TranslationTransform") {
        need(3)?;
        (Matrix3::identity(), Vector3::new(p[0], p[1], p[2]))
    } else {
        return Err(format!("unsupported transform type {kind}"));
    };
    let offset = centre + t - a * centre;
    Ok(compose_h(&a, &offset))
}

fn parse_numbers(s: &str) -> Result<Vec<f64>, String> {
    s.split_whitespace()
        .map(|w| {
            w.parse::<f64>()
                .map_err(|_| format!("`{w}` is not a number"))
        })
        .collect()
}

fn fmt_num(v: f64) -> String {
    // Shortest text that reads back to the same f64.
    let s = format!("{v}");
    if s == "-0" {
        "0".to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn euler_round_trip() {
        let r = euler_matrix(0.1, -0.25, 0.6);
        let e = euler_angles(&r);
        assert!((euler_matrix(e[0], e[1], e[2]) - r).norm() < 1e-12);
        assert!((e[0] - 0.1).abs() < 1e-12 && (e[1] + 0.25).abs() < 1e-12);
    }

    #[test]
    fn matrix_round_trip_through_params() {
        let c = Vector3::new(10.0, -5.0, 30.0);
        let mut t = CenteredLinear::identity(LinearModel::Rigid, c);
        t.params = vec![0.1, 0.05, -0.2, 3.0, -4.0, 5.0];
        let m = t.matrix();
        let back = CenteredLinear::from_matrix(LinearModel::Rigid, c, &m);
        for (a, b) in t.params.iter().zip(&back.params) {
            assert!((a - b).abs() < 1e-10);
        }
        // The centre moves by exactly the translation.
        let y = m.transform_point(&Point3::from(c));
        assert!((y.coords - (c + Vector3::new(3.0, -4.0, 5.0))).norm() < 1e-12);
        let aff = CenteredLinear::from_matrix(LinearModel::Affine, Vector3::zeros(), &m);
        assert!((aff.matrix() - m).norm() < 1e-10);
    }

    #[test]
    fn rigid_jacobian_matches_finite_differences() {
        let c = Vector3::new(1.0, 2.0, 3.0);
        let mut t = CenteredLinear::identity(LinearModel::Rigid, c);
        t.params = vec![0.2, -0.1, 0.3, 1.0, 2.0, 3.0];
        let x = Point3::new(20.0, -7.0, 11.0);
        let cache = t.jacobian_cache();
        for axis in 0..3 {
            let mut v = Vector3::zeros();
            v[axis] = 1.0;
            let mut g = vec![0.0; 6];
            cache.accumulate(&(x.coords - c), &v, &mut g);
            for k in 0..6 {
                let h = 1e-6;
                let mut tp = t.clone();
                tp.params[k] += h;
                let mut tm = t.clone();
                tm.params[k] -= h;
                let fd = (tp.matrix().transform_point(&x)[axis]
                    - tm.matrix().transform_point(&x)[axis])
                    / (2.0 * h);
                assert!(
                    (fd - g[k]).abs() < 1e-5,
                    "axis {axis} param {k}: {fd} vs {}",
                    g[k]
                );
            }
        }
    }

    #[test]
    fn itk_text_round_trips() {
        let c = Vector3::new(-12.5, 40.0, 7.25);
        let mut t = CenteredLinear::identity(LinearModel::Rigid, c);
        t.params = vec![0.14, 0.035, -0.02, 6.0, -4.0, 3.0];
        let m = t.matrix();
        let text = itk_affine_text(&m, &c);
        assert!(text.starts_with("#Insight Transform File V1.0"));
        assert!(text.contains("Transform: AffineTransform_double_3_3"));
        let back = parse_itk_text(&text).expect("parses");
        assert!((back - m).norm() < 1e-12);
    }

    #[test]
    fn itk_euler_uses_zxy_order() {
        let text = "#Insight Transform File V1.0\n#Transform 0\nTransform: Euler3DTransform_double_3_3\nParameters: 0.1 0.2 0.3 1 2 3\nFixedParameters: 0 0 0 0\n";
        let m = parse_itk_text(text).expect("parses");
        let (a, o) = split_h(&m);
        assert!((a - rot_z(0.3) * rot_x(0.1) * rot_y(0.2)).norm() < 1e-12);
        assert!((o - Vector3::new(1.0, 2.0, 3.0)).norm() < 1e-12);
        assert!(parse_itk_text("Transform: BSplineTransform_double_3_3\nParameters: 1").is_err());
    }
}
