//! What the workflow jobs do (segment, edit whole volumes, mesh and export, register,
//! preprocess). Each runs on the job system from copies of its inputs and returns a value the
//! app applies to the document on the UI thread, once per frame.

use crate::document::{
    AccuracyReport, ExportFormat, MeshEntry, MeshPlan, NewVolume, PreprocessOp, RegistrationMethod,
};
use crate::editing::interpolate::fill_between_slices;
use crate::editing::{apply_mask, EditDelta, EditMask, Gesture, PaintValue, SliceOrientation};
use crate::export::{ExportOptions, ExportPart};
use crate::io::LoadedImage;
use crate::jobs::{JobContext, JobError};
use crate::meshing::{DecimateTarget, MeshingParams, SmoothParams};
use crate::segmentation::components::keep_largest;
use crate::segmentation::region_grow::{connected_threshold, seed_from_world};
use crate::segmentation::threshold::threshold;
use crate::segmentation::{mask_of_label, Connectivity};
use crate::volume::{LabelInfo, LabelMap, Volume};
use nalgebra::{Matrix4, Point3};
use std::path::PathBuf;
use std::sync::Arc;

/// A finished workflow job, ready for the document.
pub enum TaskOutcome {
    /// A new label map from one undoable gesture, made on labels revision `base_revision`.
    Labels {
        base_revision: u64,
        map: LabelMap,
        delta: Option<EditDelta>,
        confidence: Option<Volume<f32>>,
        summary: String,
    },
    Meshes {
        meshes: Vec<MeshEntry>,
        report: AccuracyReport,
        written: Vec<PathBuf>,
    },
    Registration {
        moving_from_fixed: Matrix4<f64>,
        figures: Vec<String>,
        confidence: Option<Volume<f32>>,
        /// The figures as a project stores them (for the planning report).
        record: Option<crate::document::project::RegistrationRecord>,
    },
    Volume(Box<NewVolume>),
    /// A project saved or opened, a report or screenshot written.
    File(Box<super::project_files::FileOutcome>),
}

/// A whole-volume labelling operation.
pub enum LabelOp {
    Threshold { low: f32, high: f32 },
    Grow { seed: [f64; 3], low: f32, high: f32 },
    KeepLargest,
    Interpolate(SliceOrientation),
    Model(PathBuf),
}

impl LabelOp {
    pub fn title(&self) -> String {
        match self {
            LabelOp::Threshold { low, high } => format!("Threshold {low:.0}…{high:.0}"),
            LabelOp::Grow { .. } => "Region growing".to_string(),
            LabelOp::KeepLargest => "Keep largest island".to_string(),
            LabelOp::Interpolate(_) => "Fill between slices".to_string(),
            LabelOp::Model(p) => format!(
                "Model {}",
                p.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ),
        }
    }
}

fn failed(e: impl std::fmt::Display) -> JobError {
    JobError::Failed(e.to_string())
}

/// Runs `op` on a copy of the label map and records it as one gesture.
pub fn run_label_op(
    op: LabelOp,
    map: Arc<LabelMap>,
    base_revision: u64,
    reference: Arc<LoadedImage>,
    mask: EditMask,
    label: u16,
    ctx: &JobContext,
) -> Result<TaskOutcome, JobError> {
    // The document still shares the map: this copy is the job's, off the window's thread.
    let mut map = Arc::unwrap_or_clone(map);
    let image = &reference.volume;
    let intensity =
        (mask.intensity_range.is_some() && image.dims() == map.geometry().dims).then_some(image);
    let title = op.title();
    let mut confidence = None;
    let label_name = |map: &mut LabelMap, name: String| {
        if map.table.get(label).is_none() {
            map.table.insert(LabelInfo::new(
                label,
                name,
                crate::volume::LabelTable::default_color(label),
            ));
        }
    };
    // Tools that produce a mask on the label grid; the intensity image must share it.
    let on_grid = |what: &str| -> Result<(), JobError> {
        if image.dims() == map.geometry().dims {
            Ok(())
        } else {
            Err(JobError::Failed(format!(
                "{what}: the reference image is not on the label map's grid"
            )))
        }
    };
    ctx.set_stage(&title);
    let (delta, changed) = match op {
        LabelOp::Threshold { low, high } => {
            on_grid("threshold")?;
            let m = threshold(image, low, high);
            ctx.set_progress(0.5);
            ctx.check_cancelled()?;
            label_name(&mut map, format!("threshold {low:.0} to {high:.0}"));
            let mut g = Gesture::begin(&mut map, &title, &mask, intensity).map_err(failed)?;
            let n = apply_mask(&mut g, &m, PaintValue::Label(label)).map_err(failed)?;
            (g.finish(), n)
        }
        LabelOp::Grow { seed, low, high } => {
            on_grid("region growing")?;
            let seed = seed_from_world(image.geometry(), Point3::from(seed)).map_err(failed)?;
            let m = connected_threshold(
                image,
                &[seed],
                low,
                high,
                Connectivity::TwentySix,
                &ctx.sub(0.0, 0.8),
            )
            .map_err(|e| match e {
                crate::segmentation::SegmentationError::Cancelled => JobError::Cancelled,
                other => failed(other),
            })?;
            label_name(&mut map, "grown region".to_string());
            let mut g = Gesture::begin(&mut map, &title, &mask, intensity).map_err(failed)?;
            let n = apply_mask(&mut g, &m, PaintValue::Label(label)).map_err(failed)?;
            (g.finish(), n)
        }
        LabelOp::KeepLargest => {
            let inside = mask_of_label(&map, label);
            let largest = keep_largest(&inside, Connectivity::TwentySix);
            ctx.check_cancelled()?;
            let islands = Volume::new(
                inside.geometry().clone(),
                inside
                    .data()
                    .iter()
                    .zip(largest.data())
                    .map(|(&a, &b)| u8::from(a != 0 && b == 0))
                    .collect(),
            )
            .map_err(failed)?;
            let mut g = Gesture::begin(&mut map, &title, &mask, intensity).map_err(failed)?;
            let n = apply_mask(&mut g, &islands, PaintValue::Erase(Some(label))).map_err(failed)?;
            (g.finish(), n)
        }
        LabelOp::Interpolate(orientation) => {
            let mut g = Gesture::begin(&mut map, &title, &mask, intensity).map_err(failed)?;
            let n = fill_between_slices(&mut g, label, orientation).map_err(failed)?;
            (g.finish(), n)
        }
        LabelOp::Model(manifest_path) => {
            let result = run_model(&manifest_path, image, ctx)?;
            ctx.set_stage("Writing labels");
            for info in result.labels.table.iter() {
                if map.table.get(info.value).is_none() {
                    map.table.insert(info.clone());
                }
            }
            let mut g = Gesture::begin(&mut map, &title, &mask, intensity).map_err(failed)?;
            let model_labels = &result.labels.volume;
            if model_labels.dims() != g.geometry().dims {
                return Err(JobError::Failed(
                    "the model's labels are not on the label map's grid".into(),
                ));
            }
            let mut n = 0;
            for (idx, &v) in model_labels.data().iter().enumerate() {
                if v != 0 {
                    let [i, j, k] = model_labels.geometry().index3(idx);
                    n += usize::from(g.paint(i, j, k, PaintValue::Label(v)));
                }
            }
            confidence = Some(result.max_probability);
            (g.finish(), n)
        }
    };
    ctx.set_progress(1.0);
    Ok(TaskOutcome::Labels {
        base_revision,
        map,
        delta,
        confidence,
        summary: format!("{title}: {changed} voxels changed"),
    })
}

fn run_model(
    manifest_path: &std::path::Path,
    image: &Volume<f32>,
    ctx: &JobContext,
) -> Result<crate::segmentation::model::ModelSegmentation, JobError> {
    use crate::inference::{init_backend, BackendRequest, Manifest, ModelSession};
    let request = BackendRequest::from_env().map_err(failed)?;
    let backend = init_backend(&request).map_err(failed)?;
    let mut manifest = Manifest::load(manifest_path).map_err(failed)?;
    manifest.bound_memory_for(backend.kind);
    ctx.set_stage("Loading the model");
    let mut session = ModelSession::load(&manifest)
        .map_err(failed)?
        .with_cancel(ctx.cancel_token().clone());
    crate::segmentation::model::segment_with_model(image, &manifest, &mut session, ctx).map_err(
        |e| match e {
            crate::segmentation::model::ModelSegmentationError::Cancelled => JobError::Cancelled,
            other => failed(other),
        },
    )
}

/// Surfaces of the visible labels with their own settings, the accuracy report, and the
/// file(s) when `export_to` is given.
pub fn build_meshes(
    map: Arc<LabelMap>,
    plan: MeshPlan,
    source: String,
    export_to: Option<(PathBuf, ExportFormat)>,
    ctx: &JobContext,
) -> Result<TaskOutcome, JobError> {
    let present = map.values_present();
    let labels: Vec<u16> = present
        .into_iter()
        .filter(|v| *v != 0 && map.table.get(*v).is_none_or(|l| l.visible))
        .collect();
    if labels.is_empty() {
        return Err(JobError::Failed(
            "no visible label has any voxel: segment something first".into(),
        ));
    }
    let mut surfaces = Vec::new();
    let n = labels.len() as f32;
    for (index, &label) in labels.iter().enumerate() {
        let settings = plan.settings(label);
        let params = MeshingParams {
            smooth: (settings.smoothing_iterations > 0).then(|| SmoothParams {
                iterations: settings.smoothing_iterations as usize,
                ..SmoothParams::default()
            }),
            decimate: None,
            ..MeshingParams::default()
        };
        let sub = ctx.sub(index as f32 / n * 0.85, (index as f32 + 1.0) / n * 0.85);
        let mut parts = crate::meshing::label_surfaces(&map, Some(&[label]), &params, &sub)
            .map_err(|e| match e {
                crate::meshing::MeshingError::Cancelled(_) => JobError::Cancelled,
                other => failed(other),
            })?;
        if settings.keep_fraction < 1.0 {
            for part in &mut parts {
                let faces = ((part.mesh.face_count() as f32 * settings.keep_fraction).round()
                    as usize)
                    .max(4);
                part.mesh =
                    crate::meshing::decimate(&part.mesh, DecimateTarget::Faces(faces), &sub)
                        .map_err(failed)?;
            }
        }
        surfaces.extend(parts);
    }
    ctx.set_stage("Accuracy report");
    let report = crate::meshing::accuracy_report(&map, &surfaces, 0.5);
    ctx.check_cancelled()?;
    let parts: Vec<ExportPart> = surfaces
        .iter()
        .map(|s| ExportPart {
            name: s.name.clone(),
            label: Some(s.label),
            mesh: s.mesh.clone(),
            profile: plan.profile(s.label, &s.name, s.color),
        })
        .collect();
    let mut written = Vec::new();
    if let Some((path, format)) = export_to {
        ctx.set_stage("Writing");
        let options = ExportOptions {
            overwrite: true,
            source,
            per_part: false,
        };
        written = crate::export::export(&parts, &path, format, &options).map_err(failed)?;
    }
    ctx.set_progress(1.0);
    let meshes = surfaces
        .into_iter()
        .map(|s| MeshEntry {
            volume_ml: s.mesh.signed_volume_mm3().abs() / 1000.0,
            name: s.name,
            label: Some(s.label),
            color: s.color,
            mesh: Arc::new(s.mesh),
        })
        .collect();
    Ok(TaskOutcome::Meshes {
        meshes,
        report,
        written,
    })
}

/// Registers `moving` onto `fixed` starting from `start` (the user's nudged transform).
pub fn register(
    fixed: Arc<LoadedImage>,
    moving: Arc<LoadedImage>,
    method: RegistrationMethod,
    start: Matrix4<f64>,
    landmarks: Vec<([f64; 3], [f64; 3])>,
    ctx: &JobContext,
) -> Result<TaskOutcome, JobError> {
    use crate::registration::{
        register, register_landmarks, BSplineSettings, LandmarkModel, RegistrationKind,
        RegistrationParams,
    };
    let cancelled = |e: crate::registration::RegistrationError| match e {
        crate::registration::RegistrationError::Cancelled => JobError::Cancelled,
        other => failed(other),
    };
    if method == RegistrationMethod::Landmarks {
        let f: Vec<Point3<f64>> = landmarks.iter().map(|(a, _)| Point3::from(*a)).collect();
        let m: Vec<Point3<f64>> = landmarks.iter().map(|(_, b)| Point3::from(*b)).collect();
        let (reg, fit) = register_landmarks(&f, &m, LandmarkModel::Rigid).map_err(cancelled)?;
        return Ok(TaskOutcome::Registration {
            moving_from_fixed: reg.moving_from_fixed,
            figures: vec![
                format!("{} landmark pairs", landmarks.len()),
                format!(
                    "FRE rms {:.2} mm, max {:.2} mm",
                    fit.rms_fre_mm, fit.max_fre_mm
                ),
            ],
            confidence: None,
            record: None,
        });
    }
    let kind = match method {
        RegistrationMethod::Affine => RegistrationKind::Affine,
        RegistrationMethod::Deformable => RegistrationKind::Deformable(BSplineSettings::default()),
        _ => RegistrationKind::Rigid,
    };
    let params = RegistrationParams {
        kind,
        initial_transform: (start != Matrix4::identity()).then_some(start),
        ..RegistrationParams::default()
    };
    let reg =
        register(&fixed.volume, &moving.volume, &params, &ctx.sub(0.0, 0.85)).map_err(cancelled)?;
    ctx.set_stage("Confidence map");
    let confidence =
        crate::registration::qa::confidence_map(&fixed.volume, &moving.volume, &reg, 20.0, 2.0);
    let r = &reg.report;
    let figures = vec![
        format!(
            "{}: metric {:.3} to {:.3} ({})",
            r.kind, r.metric_initial, r.metric_final, r.metric
        ),
        format!(
            "rotation {:.2}°, translation ({:.1}, {:.1}, {:.1}) mm",
            r.rotation_deg, r.translation_mm[0], r.translation_mm[1], r.translation_mm[2]
        ),
        format!(
            "overlap {:.0} %, {} iterations, {:.1} s",
            r.overlap_fraction * 100.0,
            r.iterations,
            r.duration_secs
        ),
        format!(
            "confidence: {:.0} % of regions confident",
            confidence.summary.confident_fraction * 100.0
        ),
    ];
    let record = crate::document::project::RegistrationRecord::new(
        &reg.report,
        None,
        Some(&confidence.summary),
    );
    ctx.set_progress(1.0);
    Ok(TaskOutcome::Registration {
        moving_from_fixed: reg.moving_from_fixed,
        figures,
        confidence: Some(confidence.volume),
        record: Some(record),
    })
}

/// One preprocessing step on a copy; the result is a new volume named after the step.
pub fn preprocess(
    source: Arc<LoadedImage>,
    op: PreprocessOp,
    ctx: &JobContext,
) -> Result<TaskOutcome, JobError> {
    use crate::preprocess::{bias, denoise, mar, normalize, regrid, PreprocessError};
    let map_err = |e: PreprocessError| match e {
        PreprocessError::Cancelled => JobError::Cancelled,
        other => failed(other),
    };
    let v = &source.volume;
    ctx.set_stage(&op.name());
    let out = match op {
        PreprocessOp::Denoise(preset) => {
            let method = denoise::DenoiseMethod::preset("curvature", preset)
                .ok_or_else(|| JobError::Failed("no curvature denoise preset".into()))?;
            denoise::denoise(v, &method, ctx).map_err(map_err)?
        }
        PreprocessOp::BiasCorrection => {
            bias::correct_bias(v, None, &bias::BiasParams::default(), ctx)
                .map_err(map_err)?
                .corrected
        }
        PreprocessOp::NormaliseZScore => {
            let mask = normalize::otsu_mask(v);
            normalize::z_score(v, Some(&mask)).map_err(map_err)?
        }
        PreprocessOp::ResampleIsotropic(mm) => {
            let g = regrid::isotropic_geometry(v.geometry(), mm).map_err(map_err)?;
            let (fill, _) = v.min_max();
            regrid::resample_to(v, &g, regrid::Kernel::Linear, fill, ctx).map_err(map_err)?
        }
        PreprocessOp::MetalArtefactReduction => {
            mar::reduce_metal_artefacts(v, &mar::MarParams::default(), ctx)
                .map_err(map_err)?
                .corrected
        }
    };
    let mut meta = source.meta.clone();
    meta.description = format!("{} ({})", meta.description, op.name());
    if matches!(op, PreprocessOp::NormaliseZScore) {
        meta.unit = crate::volume::IntensityUnit::Arbitrary;
    }
    ctx.set_progress(1.0);
    Ok(TaskOutcome::Volume(Box::new(NewVolume::prepare(
        LoadedImage { volume: out, meta },
    ))))
}
