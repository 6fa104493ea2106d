//! Paired-point registration: least-squares rigid, similarity (Horn/Umeyama) or affine fits,
//! with the fiducial registration error of every pair.

use super::transform::compose_h;
use nalgebra::{DMatrix, Matrix3, Matrix4, Point3, Vector3};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LandmarkModel {
    Rigid,
    /// Rigid plus one isotropic scale.
    Similarity,
    Affine,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LandmarkError {
    #[error("{model:?} landmark registration needs at least {needed} point pairs, got {got}")]
    TooFewPoints {
        model: LandmarkModel,
        needed: usize,
        got: usize,
    },
    #[error("{fixed} fixed landmarks but {moving} moving landmarks: they must pair up")]
    CountMismatch { fixed: usize, moving: usize },
    #[error("the landmarks are {0}: the transform is not determined")]
    Degenerate(&'static str),
    #[error("landmark {index} is not a finite point")]
    NotFinite { index: usize },
}

/// The fitted `moving_from_fixed` and how well each pair agrees after the fit.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LandmarkFit {
    #[serde(skip)]
    pub moving_from_fixed: Matrix4<f64>,
    /// Distance between the mapped fixed point and its moving partner, per pair (mm).
    pub fre_mm: Vec<f64>,
    pub rms_fre_mm: f64,
    pub max_fre_mm: f64,
    /// Isotropic scale (1 for rigid; mean singular value for affine).
    pub scale: f64,
}

/// Fits `moving ≈ T(fixed)` by least squares.
pub fn fit_landmarks(
    fixed: &[Point3<f64>],
    moving: &[Point3<f64>],
    model: LandmarkModel,
) -> Result<LandmarkFit, LandmarkError> {
    if fixed.len() != moving.len() {
        return Err(LandmarkError::CountMismatch {
            fixed: fixed.len(),
            moving: moving.len(),
        });
    }
    let needed = match model {
        LandmarkModel::Affine => 4,
        _ => 3,
    };
    if fixed.len() < needed {
        return Err(LandmarkError::TooFewPoints {
            model,
            needed,
            got: fixed.len(),
        });
    }
    for (i, p) in fixed.iter().chain(moving).enumerate() {
        if !p.coords.iter().all(|c| c.is_finite()) {
            return Err(LandmarkError::NotFinite {
                index: i % fixed.len(),
            });
        }
    }
    let n = fixed.len() as f64;
    let cf = fixed.iter().map(|p| p.coords).sum::<Vector3<f64>>() / n;
    let cm = moving.iter().map(|p| p.coords).sum::<Vector3<f64>>() / n;
    let mut cov = Matrix3::zeros();
    let mut var_f = 0.0;
    for (f, m) in fixed.iter().zip(moving) {
        let (a, b) = (f.coords - cf, m.coords - cm);
        cov += b * a.transpose();
        var_f += a.norm_squared();
    }
    cov /= n;
    var_f /= n;
    // Spread of the fixed points: rank < 2 (collinear) never determines a rotation.
    let mut spread = Matrix3::zeros();
    for f in fixed {
        let a = f.coords - cf;
        spread += a * a.transpose();
    }
    let sv = spread.symmetric_eigenvalues();
    let mut sv: Vec<f64> = sv.iter().copied().collect();
    sv.sort_by(|a, b| b.total_cmp(a));
    let tol = 1e-9 * sv[0].max(1e-12);
    if sv[0] <= 1e-12 {
        return Err(LandmarkError::Degenerate("all at one point"));
    }
    if sv[1] <= tol {
        return Err(LandmarkError::Degenerate("collinear"));
    }
    let (a, scale) = match model {
        LandmarkModel::Rigid | LandmarkModel::Similarity => {
            let svd = cov.svd(true, true);
            let (u, v_t) = match (svd.u, svd.v_t) {
                (Some(u), Some(v_t)) => (u, v_t),
                _ => return Err(LandmarkError::Degenerate("numerically singular")),
            };
            let mut s = Matrix3::identity();
            if (u * v_t).determinant() < 0.0 {
                s[(2, 2)] = -1.0;
            }
            let r = u * s * v_t;
            let scale = if model == LandmarkModel::Similarity {
                let d = svd.singular_values;
                (d[0] * s[(0, 0)] + d[1] * s[(1, 1)] + d[2] * s[(2, 2)]) / var_f
            } else {
                1.0
            };
            (r * scale, scale)
        }
        LandmarkModel::Affine => {
            if sv[2] <= tol {
                return Err(LandmarkError::Degenerate(
                    "coplanar (an affine fit needs 3D spread)",
                ));
            }
            // Solve [f 1] · X = m in least squares; X is 4×3.
            let rows = fixed.len();
            let mut design = DMatrix::zeros(rows, 4);
            let mut target = DMatrix::zeros(rows, 3);
            for (r, (f, m)) in fixed.iter().zip(moving).enumerate() {
                for c in 0..3 {
                    design[(r, c)] = f[c] - cf[c];
                    target[(r, c)] = m[c] - cm[c];
                }
                design[(r, 3)] = 1.0;
            }
            let x = design
                .svd(true, true)
                .solve(&target, 1e-12)
                .map_err(|_| LandmarkError::Degenerate("numerically singular"))?;
            let mut a = Matrix3::zeros();
            for r in 0..3 {
                for c in 0..3 {
                    a[(r, c)] = x[(c, r)];
                }
            }
            let d = a.svd(false, false).singular_values;
            (a, (d[0] + d[1] + d[2]) / 3.0)
        }
    };
    let offset = cm - a * cf;
    let m = compose_h(&a, &offset);
    let fre_mm: Vec<f64> = fixed
        .iter()
        .zip(moving)
        .map(|(f, mv)| (m.transform_point(f) - mv).norm())
        .collect();
    let rms = (fre_mm.iter().map(|e| e * e).sum::<f64>() / n).sqrt();
    let max = fre_mm.iter().copied().fold(0.0, f64::max);
    Ok(LandmarkFit {
        moving_from_fixed: m,
        fre_mm,
        rms_fre_mm: rms,
        max_fre_mm: max,
        scale,
    })
}

/// Reads pairs from text: one pair per line, `fx fy fz mx my mz` in LPS millimetres,
/// separated by spaces, commas or semicolons; `#` starts a comment.
pub fn parse_landmark_pairs(text: &str) -> Result<(Vec<Point3<f64>>, Vec<Point3<f64>>), String> {
    let mut fixed = Vec::new();
    let mut moving = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let nums: Result<Vec<f64>, _> = line
            .split(|c: char| c == ',' || c == ';' || c.is_whitespace())
            .filter(|w| !w.is_empty())
            .map(str::parse::<f64>)
            .collect();
        let nums = nums.map_err(|_| format!("line {}: not six numbers: `{line}`", n + 1))?;
        if nums.len() != 6 {
            return Err(format!(
                "line {}: expected 6 numbers (fixed x y z, moving x y z), found {}",
                n + 1,
                nums.len()
            ));
        }
        fixed.push(Point3::new(nums[0], nums[1], nums[2]));
        moving.push(Point3::new(nums[3], nums[4], nums[5]));
    }
    Ok((fixed, moving))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::Rotation3;

    fn points() -> Vec<Point3<f64>> {
        vec![
            Point3::new(0.0, 0.0, 0.0),
            Point3::new(50.0, 0.0, 0.0),
            Point3::new(0.0, 40.0, 0.0),
            Point3::new(0.0, 0.0, 30.0),
            Point3::new(20.0, -10.0, 15.0),
            Point3::new(-35.0, 22.0, -8.0),
        ]
    }

    #[test]
    fn exact_on_noise_free_points() {
        let r = Rotation3::from_euler_angles(0.14, -0.035, 0.3).into_inner();
        let t = Vector3::new(6.0, -4.0, 3.0);
        for (model, a) in [
            (LandmarkModel::Rigid, r),
            (LandmarkModel::Similarity, r * 1.07),
            (
                LandmarkModel::Affine,
                r * Matrix3::new(1.1, 0.05, 0.0, 0.0, 0.95, 0.02, 0.01, 0.0, 1.03),
            ),
        ] {
            let truth = compose_h(&a, &t);
            let fixed = points();
            let moving: Vec<_> = fixed.iter().map(|p| truth.transform_point(p)).collect();
            let fit = fit_landmarks(&fixed, &moving, model).expect("fits");
            assert!((fit.moving_from_fixed - truth).norm() < 1e-9, "{model:?}");
            assert!(fit.rms_fre_mm < 1e-9 && fit.max_fre_mm < 1e-9);
            assert_eq!(fit.fre_mm.len(), fixed.len());
        }
    }

    #[test]
    fn fre_reports_the_outlier() {
        let fixed = points();
        let mut moving = fixed.clone();
        moving[4].x += 3.0;
        let fit = fit_landmarks(&fixed, &moving, LandmarkModel::Rigid).expect("fits");
        let worst = fit
            .fre_mm
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i);
        assert_eq!(worst, Some(4));
        assert!(fit.rms_fre_mm > 0.5);
    }

    #[test]
    fn refuses_degenerate_sets() {
        let line = vec![
            Point3::new(0.0, 0.0, 0.0),
            Point3::new(1.0, 1.0, 1.0),
            Point3::new(2.0, 2.0, 2.0),
        ];
        assert!(matches!(
            fit_landmarks(&line, &line, LandmarkModel::Rigid),
            Err(LandmarkError::Degenerate("collinear"))
        ));
        let two = &line[..2];
        assert!(matches!(
            fit_landmarks(two, two, LandmarkModel::Rigid),
            Err(LandmarkError::TooFewPoints { .. })
        ));
        let plane = &points()[..3];
        assert!(fit_landmarks(plane, plane, LandmarkModel::Affine).is_err());
        assert!(matches!(
            fit_landmarks(&points(), &points()[..5], LandmarkModel::Rigid),
            Err(LandmarkError::CountMismatch { .. })
        ));
    }

    #[test]
    fn parses_pairs() {
        let text = "# fixed then moving\n1 2 3 4 5 6\n7,8,9,10,11,12 # trailing\n\n";
        let (f, m) = parse_landmark_pairs(text).expect("parses");
        assert_eq!(f.len(), 2);
        assert_eq!(m[1], Point3::new(10.0, 11.0, 12.0));
        assert!(parse_landmark_pairs("1 2 3 4 5").is_err());
        assert!(parse_landmark_pairs("1 2 x 4 5 6").is_err());
    }
}
