//! Layer 2: cross-modal registration, MRI (moving) onto CT (fixed).
//!
//! Every transform maps a FIXED world point (LPS mm) to the MOVING world point it should read
//! (`moving_from_fixed`), the convention of `volume::resample` and of ITK's `.tfm` files.
//!
//! The pipeline (elastix/BRAINSFit style): validate the inputs → automatic initialisation
//! (grid centre, centre of mass, principal axes) or a user's initial transform → a pyramid of
//! physically smoothed levels → Mattes mutual information (or NCC / mean squares) on a few tens
//! of thousands of fixed samples, analytic gradient, rayon over samples → regular-step gradient
//! descent in millimetre-scaled parameters → optional affine and B-spline stages → a sanity
//! check that refuses a result whose metric got worse or whose overlap collapsed.

pub mod deformable;
pub mod dense;
pub mod init;
pub mod landmarks;
pub mod linear;
pub mod metric;
pub mod mind;
pub mod ngf;
pub mod optimizer;
pub mod phantom;
pub mod pyramid;
pub mod qa;
pub mod sampling;
pub mod transform;

pub use deformable::{BSplineDeformation, BSplineSettings, DeformableMetric};
pub use dense::register_with_model;
pub use init::Initialization;
pub use landmarks::{fit_landmarks, LandmarkError, LandmarkFit, LandmarkModel};
pub use metric::Metric;
pub use transform::{itk_affine_text, parse_itk_text, CenteredLinear, LinearModel};

use crate::jobs::{Cancelled, JobContext};
use crate::volume::{Interpolation, Volume, VolumeGeometry};
use linear::{evaluate_linear, optimise_level, sample_radius_mm, Level, LevelReport};
use nalgebra::{Matrix3, Matrix4, Point3, Vector3};
use sampling::Mask;

/// Why a registration could not run or was refused.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error("the {which} image is not 3D (dims {dims:?}; need at least 4 voxels along each axis)")]
    NotThreeD {
        which: &'static str,
        dims: [usize; 3],
    },
    #[error("the {which} image has a single intensity ({value}): nothing to align")]
    FlatImage { which: &'static str, value: f32 },
    #[error("the {which} mask is empty: no voxel is inside it")]
    EmptyMask { which: &'static str },
    #[error(
        "the images do not overlap at the start ({percent:.1} % of fixed samples fall inside \
         the moving image); choose an initialisation such as centre-of-mass, or give an \
         initial transform"
    )]
    NoOverlap { percent: f64 },
    #[error(transparent)]
    Landmarks(#[from] LandmarkError),
    #[error(transparent)]
    Model(#[from] crate::inference::InferenceError),
    #[error("registration failed its sanity check: {reason}")]
    SanityCheckFailed {
        reason: String,
        report: Box<RegistrationReport>,
    },
    #[error("cancelled")]
    Cancelled,
}

impl From<Cancelled> for RegistrationError {
    fn from(_: Cancelled) -> Self {
        RegistrationError::Cancelled
    }
}

/// Which transform to estimate from intensities.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum RegistrationKind {
    Rigid,
    /// Rigid over the whole pyramid, then affine on the two finest levels.
    Affine,
    /// Rigid, then a B-spline free-form deformation on top.
    Deformable(BSplineSettings),
}

/// Everything a registration run needs besides the two images.
#[derive(Debug, Clone)]
pub struct RegistrationParams {
    pub kind: RegistrationKind,
    pub metric: Metric,
    pub initialization: Initialization,
    /// A user's starting `moving_from_fixed` (e.g. nudged by hand); replaces `initialization`.
    pub initial_transform: Option<Matrix4<f64>>,
    /// Pyramid spacings, coarse to fine (mm). `None`: 4s, 2s, s with s the coarser of the two
    /// images' finest spacings.
    pub level_spacings_mm: Option<Vec<f64>>,
    /// Fixed samples per level.
    pub samples: usize,
    pub max_iterations: usize,
    pub fixed_mask: Option<Volume<u8>>,
    pub moving_mask: Option<Volume<u8>>,
    pub seed: u64,
}

impl Default for RegistrationParams {
    fn default() -> Self {
        Self {
            kind: RegistrationKind::Rigid,
            metric: Metric::default(),
            initialization: Initialization::CentreOfMass,
            initial_transform: None,
            level_spacings_mm: None,
            samples: 30_000,
            max_iterations: 200,
            fixed_mask: None,
            moving_mask: None,
            seed: 0x5eed,
        }
    }
}

/// What a run did, for `report.json` and the app's job panel.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RegistrationReport {
    pub success: bool,
    pub failure_reason: Option<String>,
    pub kind: String,
    pub metric: String,
    pub initialization: String,
    /// Similarity at the starting transform (after initialisation), finest level samples.
    pub metric_initial: f64,
    /// Similarity at the result, same samples.
    pub metric_final: f64,
    /// Fraction of fixed samples that map inside the moving image at the result.
    pub overlap_fraction: f64,
    pub levels: Vec<LevelReport>,
    pub iterations: usize,
    pub duration_secs: f64,
    /// The linear part of the result, `moving_from_fixed`, row-major 4×4.
    pub moving_from_fixed: [[f64; 4]; 4],
    pub rotation_deg: f64,
    pub translation_mm: [f64; 3],
    pub centre_mm: [f64; 3],
    /// B-spline stage summary, when one ran.
    pub deformable: Option<deformable::DeformableReport>,
}

/// A finished registration: linear `moving_from_fixed`, optionally refined by displacements
/// applied in fixed space first (`y = A · (x + d(x) + u(x))`, `d` a B-spline, `u` a model's
/// dense field).
#[derive(Debug, Clone)]
pub struct Registration {
    pub moving_from_fixed: Matrix4<f64>,
    pub centre_mm: Vector3<f64>,
    pub deformation: Option<BSplineDeformation>,
    pub dense: Option<crate::inference::registration::DisplacementField>,
    pub report: RegistrationReport,
}

impl Registration {
    /// Moving world point for a fixed world point.
    pub fn transform_point(&self, p: &Point3<f64>) -> Point3<f64> {
        let mut q = *p;
        if let Some(d) = &self.deformation {
            q += d.displacement(p);
        }
        if let Some(u) = &self.dense {
            q += u.displacement(p);
        }
        self.moving_from_fixed.transform_point(&q)
    }

    fn is_linear(&self) -> bool {
        self.deformation.is_none() && self.dense.is_none()
    }

    /// The moving image on the fixed grid (trilinear; `fill` outside the moving image).
    pub fn resample_moving(
        &self,
        moving: &Volume<f32>,
        fixed_geometry: &VolumeGeometry,
        fill: f32,
    ) -> Volume<f32> {
        if self.is_linear() {
            return crate::volume::resample(
                moving,
                fixed_geometry,
                Some(&self.moving_from_fixed),
                Interpolation::Trilinear,
                fill,
            );
        }
        let w = fixed_geometry.world_from_voxel();
        let v = moving.geometry().voxel_from_world();
        Volume::from_fn(fixed_geometry.clone(), |[i, j, k]| {
            let x = w.transform_point(&Point3::new(i as f64, j as f64, k as f64));
            let p = v.transform_point(&self.transform_point(&x));
            moving.sample_trilinear([p.x, p.y, p.z]).unwrap_or(fill)
        })
    }

    /// Labels of the moving image on the fixed grid (nearest neighbour, never blended).
    pub fn resample_moving_labels(
        &self,
        labels: &Volume<u16>,
        fixed_geometry: &VolumeGeometry,
    ) -> Volume<u16> {
        if self.is_linear() {
            return crate::volume::resample_labels(
                labels,
                fixed_geometry,
                Some(&self.moving_from_fixed),
            );
        }
        let w = fixed_geometry.world_from_voxel();
        let v = labels.geometry().voxel_from_world();
        Volume::from_fn(fixed_geometry.clone(), |[i, j, k]| {
            let x = w.transform_point(&Point3::new(i as f64, j as f64, k as f64));
            let p = v.transform_point(&self.transform_point(&x));
            crate::volume::resample::nearest_at(labels, [p.x, p.y, p.z]).unwrap_or(0)
        })
    }
}

fn check_image(v: &Volume<f32>, which: &'static str) -> Result<(), RegistrationError> {
    let dims = v.dims();
    if dims.iter().any(|&n| n < 4) {
        return Err(RegistrationError::NotThreeD { which, dims });
    }
    let (lo, hi) = v.min_max();
    if hi <= lo {
        return Err(RegistrationError::FlatImage { which, value: lo });
    }
    Ok(())
}

fn default_levels(fixed: &VolumeGeometry, moving: &VolumeGeometry) -> Vec<f64> {
    let finest = |g: &VolumeGeometry| g.spacing_mm.iter().copied().fold(f64::INFINITY, f64::min);
    let s = finest(fixed).max(finest(moving));
    vec![4.0 * s, 2.0 * s, s]
}

fn rotation_angle_deg(a: &Matrix3<f64>) -> f64 {
    let r = transform::nearest_rotation(a);
    (((r.trace() - 1.0) / 2.0).clamp(-1.0, 1.0))
        .acos()
        .to_degrees()
}

/// Registers `moving` onto `fixed` by intensities. On success the report says so; a result
/// that fails the sanity check comes back as [`RegistrationError::SanityCheckFailed`] with
/// its report, never as a success.
pub fn register(
    fixed: &Volume<f32>,
    moving: &Volume<f32>,
    params: &RegistrationParams,
    ctx: &JobContext,
) -> Result<Registration, RegistrationError> {
    let started = std::time::Instant::now();
    check_image(fixed, "fixed")?;
    check_image(moving, "moving")?;
    let fixed_mask = params.fixed_mask.as_ref().map(Mask);
    let moving_mask = params.moving_mask.as_ref().map(Mask);
    if fixed_mask.as_ref().is_some_and(|m| m.is_empty()) {
        return Err(RegistrationError::EmptyMask { which: "fixed" });
    }
    if moving_mask.as_ref().is_some_and(|m| m.is_empty()) {
        return Err(RegistrationError::EmptyMask { which: "moving" });
    }

    ctx.set_stage("Initialising");
    let fixed_moments = init::foreground_moments(fixed);
    let moving_moments = init::foreground_moments(moving);
    let centre = fixed_moments.centre_mm;
    let mut start = CenteredLinear::identity(LinearModel::Rigid, centre);
    let init_name;
    match (&params.initial_transform, params.initialization) {
        (Some(m), _) => {
            start = CenteredLinear::from_matrix(LinearModel::Rigid, centre, m);
            init_name = "user initial transform".to_string();
        }
        (None, Initialization::Identity) => init_name = "identity".to_string(),
        (None, Initialization::GeometricCentre) => {
            let t = moving.geometry().center_world() - fixed.geometry().center_world();
            start.params[3..6].copy_from_slice(&[t.x, t.y, t.z]);
            init_name = "geometric centre".to_string();
        }
        (None, Initialization::CentreOfMass | Initialization::PrincipalAxes) => {
            let t = moving_moments.centre_mm - fixed_moments.centre_mm;
            start.params[3..6].copy_from_slice(&[t.x, t.y, t.z]);
            init_name = if params.initialization == Initialization::CentreOfMass {
                "centre of mass".to_string()
            } else {
                "principal axes".to_string()
            };
        }
    }

    let spacings = params
        .level_spacings_mm
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| default_levels(fixed.geometry(), moving.geometry()));
    let n_levels = spacings.len();
    let build_with = |l: usize, samples: usize| {
        Level::build(
            fixed,
            moving,
            spacings[l],
            params.metric,
            samples,
            &centre,
            fixed_mask.as_ref(),
            params.seed.wrapping_add(l as u64),
        )
    };
    let build_with_spacing = |spacing_mm: f64| {
        Level::build(
            fixed,
            moving,
            spacing_mm,
            params.metric,
            1000,
            &centre,
            fixed_mask.as_ref(),
            params.seed.wrapping_add(50),
        )
    };
    // Coarse levels only need to reach the basin of the optimum; their metric is smooth
    // already, so they get fewer samples (half per level coarser, at least 4000).
    let linear_samples = |l: usize| {
        let share = 0.5f64.powi((n_levels - 1 - l) as i32);
        ((params.samples as f64 * share) as usize)
            .max(4000)
            .min(params.samples)
    };

    // A deformable run: rigid (optionally affine on the last level but one, see
    // `BSplineSettings::affine_first`), then the B-spline from the coarsest level up to the
    // last but one. The finest level only judges the result.
    let deformable = matches!(params.kind, RegistrationKind::Deformable(_));
    let linear_weight = if deformable { 0.4f32 } else { 1.0 };
    let mut t = start.clone();
    let mut reports = Vec::new();
    let mut finest_level = None;
    let mut kept_levels = Vec::new();
    for l in 0..n_levels {
        let level_ctx = ctx.sub(
            linear_weight * l as f32 / n_levels as f32,
            linear_weight * (l + 1) as f32 / n_levels as f32,
        );
        level_ctx.set_stage("Rigid alignment");
        let build_started = std::time::Instant::now();
        let level = build_with(l, linear_samples(l));
        let build_secs = build_started.elapsed().as_secs_f64();
        let reports_before = reports.len();
        if level.samples.is_empty() {
            return Err(RegistrationError::EmptyMask { which: "fixed" });
        }
        let radius = sample_radius_mm(&level.samples);
        if l == 0 {
            let overlap = evaluate_linear(&level, &t, params.metric, moving_mask.as_ref(), false)
                .valid_fraction;
            if overlap < 0.05 {
                return Err(RegistrationError::NoOverlap {
                    percent: overlap * 100.0,
                });
            }
            if params.initialization == Initialization::PrincipalAxes
                && params.initial_transform.is_none()
            {
                t = choose_principal_axes(
                    &level,
                    &t,
                    &fixed_moments,
                    &moving_moments,
                    params,
                    moving_mask.as_ref(),
                    radius,
                    &level_ctx,
                )?;
            }
        }
        let finest = l + 1 == n_levels;
        let linear_here = !(deformable && finest && n_levels > 1);
        if t.model == LinearModel::Rigid && linear_here {
            reports.push(optimise_level(
                &level,
                &mut t,
                params.metric,
                moving_mask.as_ref(),
                radius,
                params.max_iterations,
                finest,
                "rigid",
                &level_ctx,
            )?);
        }
        let affine_here = match params.kind {
            RegistrationKind::Affine => l + 2 >= n_levels,
            RegistrationKind::Deformable(ref b) => b.affine_first && l + 2 == n_levels,
            RegistrationKind::Rigid => false,
        };
        if affine_here {
            if t.model == LinearModel::Rigid {
                t = CenteredLinear::from_matrix(LinearModel::Affine, centre, &t.matrix());
            }
            level_ctx.set_stage("Affine alignment");
            reports.push(optimise_level(
                &level,
                &mut t,
                params.metric,
                moving_mask.as_ref(),
                radius,
                params.max_iterations,
                finest,
                "affine",
                &level_ctx,
            )?);
        }
        if let Some(r) = reports.get_mut(reports_before) {
            r.build_secs = build_secs;
        }
        if deformable && !finest {
            kept_levels.push(level);
        } else if finest {
            finest_level = Some((level, t.clone()));
        }
    }
    let (finest, linear_result) = match finest_level {
        Some(x) => x,
        None => return Err(RegistrationError::Cancelled),
    };
    let m_final_linear = linear_result.matrix();

    // Deformable refinement on the finest levels.
    let mut deformation = None;
    let mut deformable_report = None;
    if let RegistrationKind::Deformable(settings) = &params.kind {
        let dctx = ctx.sub(0.4, 0.95);
        dctx.set_stage("Deformable refinement");
        let mut field: Option<BSplineDeformation> = None;
        let mut rep = deformable::DeformableReport::default();
        // Control grids from coarse to fine (elastix's grid schedule): a coarse grid moves
        // whole regions, so the homogeneous interior, where the metric has no gradient of its
        // own, follows the edges around it; each finer grid then adds detail. Coarse grids
        // run on coarse images; the finest pyramid level is kept for judging the result.
        let grid_levels = settings.grid_levels.max(1);
        // The level the last grid is fitted on, when asked for one the linear stage did not
        // build (reused when it did).
        let chosen_images = settings.image_spacing_mm.map(|s| {
            match kept_levels
                .iter()
                .chain(std::iter::once(&finest))
                .position(|l| (l.spacing_mm - s).abs() < 1e-6)
            {
                Some(n) => Err(n),
                None => Ok(build_with_spacing(s)),
            }
        });
        for b in 0..grid_levels {
            let images = match (&chosen_images, kept_levels.len()) {
                (Some(Ok(own)), _) if b + 1 == grid_levels => own,
                (Some(Err(n)), _) if b + 1 == grid_levels => kept_levels.get(*n).unwrap_or(&finest),
                (_, 0) => &finest,
                (_, n) => &kept_levels[(b * n / grid_levels).min(n - 1)],
            };
            let foreground = (settings.foreground_samples && fixed_mask.is_none())
                .then(|| sampling::foreground_mask(&images.fixed, 2));
            let sample_mask = match &foreground {
                Some(m) => Some(Mask(m)),
                None => fixed_mask.clone(),
            };
            // A field has far more parameters than a rigid transform: with a sampled metric
            // it gets its own, denser sample set on the images the linear stage already
            // smoothed; NGF reads the level's whole grid and needs no samples.
            let owned;
            let field_metric = match (params.metric, settings.mi_bins) {
                (Metric::MattesMutualInformation { .. }, Some(bins)) => {
                    Metric::MattesMutualInformation { bins }
                }
                (m, _) => m,
            };
            let level = if matches!(
                settings.metric,
                deformable::DeformableMetric::NormalizedGradientFields
                    | deformable::DeformableMetric::Mind
            ) {
                images
            } else {
                owned = images.with_samples(
                    field_metric,
                    settings.samples.max(1000),
                    sample_mask.as_ref(),
                    params.seed.wrapping_add(100 + b as u64),
                    if settings.rank_fixed_bins {
                        linear::FixedBins::EqualCount
                    } else {
                        linear::FixedBins::EqualWidth
                    },
                );
                &owned
            };
            let sub = dctx.sub(
                b as f32 / grid_levels as f32,
                (b + 1) as f32 / grid_levels as f32,
            );
            let (f, r) = deformable::optimise_bspline(
                &level,
                fixed.geometry(),
                &m_final_linear,
                field.take(),
                settings.control_spacing_mm * 2f64.powi((grid_levels - 1 - b) as i32),
                settings,
                field_metric,
                &sub,
            )?;
            rep.levels.push(r);
            field = Some(f);
        }
        if let Some(f) = &field {
            rep.finish(f);
            let (linear_only, with_field) = match settings.metric {
                deformable::DeformableMetric::Intensity => (
                    evaluate_linear(
                        &finest,
                        &linear_result,
                        params.metric,
                        moving_mask.as_ref(),
                        false,
                    )
                    .similarity,
                    f.evaluate(&finest, &m_final_linear, params.metric).0,
                ),
                // A dense metric (NGF, MIND) on the finest grid would cost as much as the whole
                // stage; the finest level kept for the field (a finer grid than the one it was
                // fitted on, unless there is only one) judges it instead.
                deformable::DeformableMetric::NormalizedGradientFields
                | deformable::DeformableMetric::Mind => {
                    let judge = kept_levels.last().unwrap_or(&finest);
                    let mut zero = f.clone();
                    zero.coefficients.fill(Vector3::zeros());
                    let similarity = deformable::Similarity::new(
                        &settings,
                        &zero,
                        judge,
                        &m_final_linear,
                        params.metric,
                    );
                    (
                        similarity.evaluate(&zero, judge, &m_final_linear, false).0,
                        similarity.evaluate(f, judge, &m_final_linear, false).0,
                    )
                }
            };
            if !(with_field > linear_only) {
                rep.discarded = Some(format!(
                    "the field lowered the similarity on data it was not fitted to ({linear_only:.5} → {with_field:.5})"
                ));
            } else if rep.min_jacobian_determinant <= 0.0 {
                rep.discarded = Some(format!(
                    "the field folds (Jacobian determinant {:.3})",
                    rep.min_jacobian_determinant
                ));
            }
        }
        deformation = if rep.discarded.is_some() { None } else { field };
        deformable_report = Some(rep);
    }

    // Sanity check on the finest samples: the metric must not get worse than at the start,
    // and the images must still overlap.
    ctx.set_stage("Checking the result");
    let start_at_finest = CenteredLinear::from_matrix(LinearModel::Affine, centre, &start.matrix());
    let initial = evaluate_linear(
        &finest,
        &start_at_finest,
        params.metric,
        moving_mask.as_ref(),
        false,
    );
    let (final_similarity, final_overlap) = match &deformation {
        None => {
            let e = evaluate_linear(
                &finest,
                &linear_result,
                params.metric,
                moving_mask.as_ref(),
                false,
            );
            (e.similarity, e.valid_fraction)
        }
        Some(d) => d.evaluate(&finest, &m_final_linear, params.metric),
    };
    let (a, offset) = transform::split_h(&m_final_linear);
    let t_centre = offset + a * centre - centre;
    let mut report = RegistrationReport {
        success: true,
        failure_reason: None,
        kind: match &params.kind {
            RegistrationKind::Rigid => "rigid",
            RegistrationKind::Affine => "affine",
            RegistrationKind::Deformable(b) if b.affine_first => {
                "deformable (rigid + affine + B-spline)"
            }
            RegistrationKind::Deformable(_) => "deformable (rigid + B-spline)",
        }
        .to_string(),
        metric: format!("{:?}", params.metric),
        initialization: init_name,
        metric_initial: initial.similarity,
        metric_final: final_similarity,
        overlap_fraction: final_overlap,
        iterations: reports.iter().map(|r| r.iterations).sum::<usize>()
            + deformable_report
                .as_ref()
                .map_or(0, |d| d.levels.iter().map(|l| l.iterations).sum()),
        levels: reports,
        duration_secs: started.elapsed().as_secs_f64(),
        moving_from_fixed: matrix_rows(&m_final_linear),
        rotation_deg: rotation_angle_deg(&a),
        translation_mm: [t_centre.x, t_centre.y, t_centre.z],
        centre_mm: [centre.x, centre.y, centre.z],
        deformable: deformable_report,
    };
    let det = a.determinant();
    let reason = if !(final_similarity.is_finite()) {
        Some("the metric is not finite".to_string())
    } else if final_overlap < 0.1 {
        Some(format!(
            "only {:.1} % of the fixed samples map inside the moving image",
            final_overlap * 100.0
        ))
    } else if final_similarity < initial.similarity - 1e-9 * initial.similarity.abs().max(1.0) {
        Some(format!(
            "the metric got worse ({:.5} → {:.5})",
            initial.similarity, final_similarity
        ))
    } else if !(0.2..5.0).contains(&det) {
        Some(format!(
            "the transform is degenerate (determinant {det:.3})"
        ))
    } else if matches!(params.metric, Metric::MattesMutualInformation { .. })
        && final_similarity < 0.01
    {
        Some(format!(
            "the images share almost no information where they overlap (MI {final_similarity:.4})"
        ))
    } else {
        None
    };
    ctx.set_progress(1.0);
    if let Some(reason) = reason {
        report.success = false;
        report.failure_reason = Some(reason.clone());
        return Err(RegistrationError::SanityCheckFailed {
            reason,
            report: Box::new(report),
        });
    }
    Ok(Registration {
        moving_from_fixed: m_final_linear,
        centre_mm: centre,
        deformation,
        dense: None,
        report,
    })
}

#[allow(clippy::too_many_arguments)]
fn choose_principal_axes(
    level: &Level,
    com_start: &CenteredLinear,
    fixed: &init::Moments,
    moving: &init::Moments,
    params: &RegistrationParams,
    moving_mask: Option<&Mask>,
    radius: f64,
    ctx: &JobContext,
) -> Result<CenteredLinear, Cancelled> {
    let mut best: Option<(f64, CenteredLinear)> = None;
    for (n, r) in init::principal_axis_rotations(fixed, moving)
        .iter()
        .enumerate()
    {
        // y = R (x - cf) + cm, about the fixed centre cf.
        let offset = moving.centre_mm - r * fixed.centre_mm;
        let m = transform::compose_h(r, &offset);
        let mut cand = CenteredLinear::from_matrix(LinearModel::Rigid, com_start.centre_mm, &m);
        let rep = optimise_level(
            level,
            &mut cand,
            params.metric,
            moving_mask,
            radius,
            40,
            false,
            "principal axes",
            ctx,
        )?;
        let score = rep.metric_end;
        let better = match &best {
            None => true,
            // The identity rotation (first) keeps its place unless clearly beaten.
            Some((b, _)) => score > b * 1.05 + 1e-3 || (n > 1 && score > *b),
        };
        if better {
            best = Some((score, cand));
        }
    }
    Ok(best.map(|b| b.1).unwrap_or_else(|| com_start.clone()))
}

fn matrix_rows(m: &Matrix4<f64>) -> [[f64; 4]; 4] {
    [0, 1, 2, 3].map(|r| [0, 1, 2, 3].map(|c| m[(r, c)]))
}

/// Landmark registration as a [`Registration`] (the report carries the FRE).
pub fn register_landmarks(
    fixed_points: &[Point3<f64>],
    moving_points: &[Point3<f64>],
    model: LandmarkModel,
) -> Result<(Registration, LandmarkFit), RegistrationError> {
    let started = std::time::Instant::now();
    let fit = fit_landmarks(fixed_points, moving_points, model)?;
    let n = fixed_points.len().max(1) as f64;
    let centre = fixed_points.iter().map(|p| p.coords).sum::<Vector3<f64>>() / n;
    let (a, offset) = transform::split_h(&fit.moving_from_fixed);
    let t_centre = offset + a * centre - centre;
    let report = RegistrationReport {
        success: true,
        failure_reason: None,
        kind: format!("landmarks ({model:?})").to_lowercase(),
        metric: "fiducial registration error".to_string(),
        initialization: "none".to_string(),
        metric_initial: f64::NAN,
        metric_final: fit.rms_fre_mm,
        overlap_fraction: 1.0,
        levels: Vec::new(),
        iterations: 0,
        duration_secs: started.elapsed().as_secs_f64(),
        moving_from_fixed: matrix_rows(&fit.moving_from_fixed),
        rotation_deg: rotation_angle_deg(&a),
        translation_mm: [t_centre.x, t_centre.y, t_centre.z],
        centre_mm: [centre.x, centre.y, centre.z],
        deformable: None,
    };
    Ok((
        Registration {
            moving_from_fixed: fit.moving_from_fixed,
            centre_mm: centre,
            deformation: None,
            dense: None,
            report,
        },
        fit,
    ))
}
