//! Dense displacement fields from learned registration models (`fuseprint register --model`).
//!
//! The model runs in `inference` and hands back a field in LPS millimetres on its own grid;
//! here it becomes a [`Registration`] whose point map is `y = x + u(x)` (trilinear in `u`,
//! zero outside the model grid), checked like every other result: the similarity of the pair
//! must not get worse than with no motion at all.

use super::linear::Level;
use super::metric::{self, Metric};
use super::{Registration, RegistrationError, RegistrationReport};
use crate::inference::registration::{predict_displacement, DisplacementField, RegistrationModel};
use crate::inference::Backend;
use crate::jobs::JobContext;
use crate::volume::Volume;
use nalgebra::{Matrix4, Point3, Vector3};
use rayon::prelude::*;

impl DisplacementField {
    /// `u(p)` by trilinear interpolation; zero outside the grid.
    pub fn displacement(&self, p: &Point3<f64>) -> Vector3<f64> {
        let v = self.geometry.voxel_from_world_point(*p);
        let d = self.geometry.dims;
        let mut base = [0usize; 3];
        let mut frac = [0f64; 3];
        for a in 0..3 {
            let max = (d[a] - 1) as f64;
            if !(v[a] >= 0.0 && v[a] <= max) {
                return Vector3::zeros();
            }
            let f = v[a].floor().min((max - 1.0).max(0.0));
            base[a] = f as usize;
            frac[a] = v[a] - f;
        }
        let mut out = Vector3::zeros();
        for corner in 0..8 {
            let mut w = 1.0;
            let mut idx = [0usize; 3];
            for a in 0..3 {
                let up = corner >> a & 1 == 1;
                idx[a] = (base[a] + usize::from(up)).min(d[a] - 1);
                w *= if up { frac[a] } else { 1.0 - frac[a] };
            }
            if w != 0.0 {
                let n = idx[0] + d[0] * (idx[1] + d[1] * idx[2]);
                out += self.vectors_mm[n].cast::<f64>() * w;
            }
        }
        out
    }

    pub fn max_displacement_mm(&self) -> f64 {
        self.vectors_mm
            .iter()
            .map(|v| v.norm() as f64)
            .fold(0.0, f64::max)
    }
}

/// Similarity and valid fraction of `map` (fixed world → moving world) on a level's samples.
fn similarity_of(
    level: &Level,
    metric: Metric,
    map: impl Fn(&Point3<f64>) -> Point3<f64> + Sync,
) -> (f64, f64) {
    let centre = level.samples_centre_mm;
    let moving_values: Vec<Option<f64>> = level
        .samples
        .rel_mm
        .par_iter()
        .map(|rel| {
            let y = map(&Point3::from(rel + centre));
            let p = level.moving.voxel_from_world.transform_point(&y);
            level.moving.sample([p.x, p.y, p.z]).map(|(v, _)| v)
        })
        .collect();
    let e = metric::evaluate(
        metric,
        level.bins.as_ref(),
        &level.samples.values,
        &level.samples.bins,
        &moving_values,
        false,
    );
    (e.value, e.valid as f64 / level.samples.len().max(1) as f64)
}

/// Registers `moving` onto `fixed` with a learned model. The result is refused (as
/// [`RegistrationError::SanityCheckFailed`]) when it lowers the mutual information of the pair
/// or leaves the images without overlap.
pub fn register_with_model(
    fixed: &Volume<f32>,
    moving: &Volume<f32>,
    backend: &mut dyn Backend,
    model: &RegistrationModel,
    ctx: &JobContext,
) -> Result<Registration, RegistrationError> {
    let started = std::time::Instant::now();
    super::check_image(fixed, "fixed")?;
    super::check_image(moving, "moving")?;
    ctx.set_stage("Running the registration model");
    ctx.check_cancelled()?;
    let field = predict_displacement(backend, model, fixed, moving)?;
    ctx.set_progress(0.7);
    ctx.set_stage("Checking the result");
    let metric = Metric::default();
    let spacing = field
        .geometry
        .spacing_mm
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min);
    let centre = fixed.geometry().center_world().coords;
    let level = Level::build(
        fixed, moving, spacing, metric, 20_000, &centre, None, 0x5eed,
    );
    let (initial, _) = similarity_of(&level, metric, |x| *x);
    let (similarity, overlap) = similarity_of(&level, metric, |x| x + field.displacement(x));
    let identity = Matrix4::identity();
    let mut report = RegistrationReport {
        success: true,
        failure_reason: None,
        kind: format!("model ({})", model.manifest.name),
        metric: format!("{metric:?}"),
        initialization: "none (the model sees both images on its grid)".to_string(),
        metric_initial: initial,
        metric_final: similarity,
        overlap_fraction: overlap,
        levels: Vec::new(),
        iterations: 0,
        duration_secs: started.elapsed().as_secs_f64(),
        moving_from_fixed: super::matrix_rows(&identity),
        rotation_deg: 0.0,
        translation_mm: [0.0; 3],
        centre_mm: [centre.x, centre.y, centre.z],
        deformable: None,
    };
    let reason = if !similarity.is_finite() {
        Some("the metric is not finite".to_string())
    } else if overlap < 0.1 {
        Some(format!(
            "only {:.1} % of the fixed samples map inside the moving image",
            overlap * 100.0
        ))
    } else if similarity < initial - 1e-9 * initial.abs().max(1.0) {
        Some(format!(
            "the model's field lowers the mutual information ({initial:.5} → {similarity:.5})"
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
        moving_from_fixed: identity,
        centre_mm: centre,
        deformation: None,
        dense: Some(field),
        report,
    })
}
