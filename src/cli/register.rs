//! `fuseprint register FIXED MOVING [--rigid|--affine|--deformable|--landmarks F|--model M] -o DIR`
//! and `fuseprint bench register`.
//!
//! Writes `DIR/transform.tfm` (ITK text, fixed physical LPS points → moving ones),
//! `DIR/moving_on_fixed.nii.gz`, `DIR/report.json`, plus `DIR/checkerboard.png` (central axial
//! slice) and `DIR/confidence.nii.gz` (per-region alignment confidence, one voxel per block).
//! A result that fails the sanity check writes only `report.json` (success: false) and exits
//! non-zero.

use super::progress::run_with_progress;
use crate::io::{self, nifti};
use crate::jobs::JobContext;
use crate::registration::phantom::{Phantom, PhantomSpec};
use crate::registration::qa::{
    affine_fit_floor, checkerboard_axial, confidence_map, dice_per_label,
    target_registration_error, ConfidenceSummary, LabelDice, TreSummary,
};
use crate::registration::{
    itk_affine_text, landmarks, parse_itk_text, register, register_landmarks, BSplineDeformation,
    BSplineSettings, DeformableMetric, Initialization, LandmarkFit, LandmarkModel, Metric,
    Registration, RegistrationError, RegistrationKind, RegistrationParams, RegistrationReport,
};
use crate::volume::Volume;
use anyhow::Context;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InitArg {
    Identity,
    Geometry,
    CentreOfMass,
    PrincipalAxes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MetricArg {
    /// Mattes mutual information (CT↔MR).
    Mi,
    /// Normalised cross-correlation (same modality).
    Ncc,
    /// Mean squares (same modality and scale).
    Ms,
}

/// What drives the B-spline stage of --deformable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DeformableMetricArg {
    /// Normalised gradient fields: edges of either polarity, per voxel.
    Ngf,
    /// The registration's --metric (mutual information by default) on random samples.
    Mi,
    /// SSD of MIND-SSC self-similarity descriptors on the level's whole grid.
    Mind,
}

impl From<DeformableMetricArg> for DeformableMetric {
    fn from(a: DeformableMetricArg) -> Self {
        match a {
            DeformableMetricArg::Ngf => DeformableMetric::NormalizedGradientFields,
            DeformableMetricArg::Mi => DeformableMetric::Intensity,
            DeformableMetricArg::Mind => DeformableMetric::Mind,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LandmarkModelArg {
    Rigid,
    Similarity,
    Affine,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("mode").args(["rigid", "affine", "deformable", "landmarks", "model"])))]
pub struct RegisterArgs {
    /// The fixed image (CT): NIfTI or DICOM.
    pub fixed: PathBuf,
    /// The moving image (MRI), resampled onto the fixed grid.
    pub moving: PathBuf,
    /// Output folder (created if missing).
    #[arg(short = 'o', long = "out")]
    pub out: PathBuf,
    /// Rigid (rotation + translation) by mutual information. The default.
    #[arg(long)]
    pub rigid: bool,
    /// Rigid, then affine (scaling and shear too).
    #[arg(long)]
    pub affine: bool,
    /// Rigid, then a B-spline free-form deformation.
    #[arg(long)]
    pub deformable: bool,
    /// Paired landmarks instead of intensities: one `fx fy fz mx my mz` line per pair (LPS mm).
    #[arg(long, value_name = "FILE")]
    pub landmarks: Option<PathBuf>,
    /// A learned registration model (ONNX).
    #[arg(long, value_name = "MODEL")]
    pub model: Option<PathBuf>,
    /// Transform model for --landmarks.
    #[arg(long, value_enum, default_value_t = LandmarkModelArg::Rigid)]
    pub landmark_model: LandmarkModelArg,
    /// Automatic initialisation (ignored with --initial). Principal axes by default: scanners
    /// place an object in any orientation (the porcine CT and MR differ by 180°), and
    /// centre of mass alone then settles in a wrong local optimum.
    #[arg(long, value_enum, default_value_t = InitArg::PrincipalAxes)]
    pub init: InitArg,
    /// A starting transform (ITK .tfm, fixed → moving), e.g. one nudged by hand.
    #[arg(long, value_name = "TFM")]
    pub initial: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = MetricArg::Mi)]
    pub metric: MetricArg,
    /// Pyramid spacings in mm, coarse to fine, e.g. `6,3,1.5`.
    #[arg(long, value_delimiter = ',')]
    pub levels: Option<Vec<f64>>,
    /// Fixed samples per level.
    #[arg(long, default_value_t = 30_000)]
    pub samples: usize,
    /// B-spline control point spacing (mm) for --deformable.
    #[arg(long, default_value_t = 32.0)]
    pub grid_mm: f64,
    /// Similarity of the B-spline stage for --deformable.
    #[arg(long, value_enum, default_value_t = DeformableMetricArg::Mi)]
    pub deformable_metric: DeformableMetricArg,
    /// Restrict the metric to this fixed-grid mask (NIfTI, non-zero inside).
    #[arg(long)]
    pub fixed_mask: Option<PathBuf>,
    /// Restrict the metric to this moving-grid mask.
    #[arg(long)]
    pub moving_mask: Option<PathBuf>,
    /// Labels of the fixed image, for Dice with --moving-labels.
    #[arg(long)]
    pub fixed_labels: Option<PathBuf>,
    /// Labels of the moving image: resampled (nearest) and compared label by label.
    #[arg(long)]
    pub moving_labels: Option<PathBuf>,
    /// Skip the per-region confidence map.
    #[arg(long)]
    pub no_confidence: bool,
    /// Replace existing outputs.
    #[arg(long)]
    pub force: bool,
}

/// `report.json`.
#[derive(Debug, serde::Serialize)]
struct CliReport {
    fixed: String,
    moving: String,
    registration: RegistrationReport,
    landmarks: Option<LandmarkFit>,
    dice: Option<Vec<LabelDice>>,
    confidence: Option<ConfidenceSummary>,
    /// A few fixed points and where our transform sends them, so another toolkit reading
    /// `transform.tfm` can be checked point by point (`scripts/check_tfm.py`).
    transform_samples: Vec<TransformSample>,
    outputs: Vec<String>,
}

#[derive(Debug, serde::Serialize)]
struct TransformSample {
    fixed_mm: [f64; 3],
    moving_mm: [f64; 3],
}

/// The fixed image's centre and the eight corners of its central half.
fn transform_samples(
    reg: &Registration,
    fixed: &crate::volume::VolumeGeometry,
) -> Vec<TransformSample> {
    let d = fixed.dims.map(|n| (n.max(1) - 1) as f64);
    let mut voxels = vec![d.map(|n| n / 2.0)];
    for corner in 0..8 {
        voxels.push([0, 1, 2].map(|a| {
            if corner >> a & 1 == 1 {
                0.75 * d[a]
            } else {
                0.25 * d[a]
            }
        }));
    }
    voxels
        .into_iter()
        .map(|v| {
            let x = fixed.world_from_voxel_point(v);
            let y = reg.transform_point(&x);
            TransformSample {
                fixed_mm: [x.x, x.y, x.z],
                moving_mm: [y.x, y.y, y.z],
            }
        })
        .collect()
}

fn load(path: &Path, ctx: &JobContext) -> anyhow::Result<Volume<f32>> {
    Ok(io::load_image(path, ctx)?.volume)
}

fn load_mask(path: &Path, ctx: &JobContext) -> anyhow::Result<Volume<u8>> {
    let labels = nifti::read_labels(path, ctx)?;
    Ok(labels.volume.map(|v| u8::from(v != 0)))
}

fn write_text(path: &Path, text: &str, force: bool) -> anyhow::Result<()> {
    if !force && path.exists() {
        return Err(io::IoError::WouldOverwrite {
            path: path.to_path_buf(),
        }
        .into());
    }
    std::fs::write(path, text).map_err(|e| io::IoError::os(path, e))?;
    Ok(())
}

pub fn run(args: RegisterArgs) -> anyhow::Result<()> {
    let model = match &args.model {
        Some(path) => {
            let model = crate::inference::registration::RegistrationModel::for_model(path)?;
            let backend =
                crate::inference::init_backend(&crate::inference::BackendRequest::from_env()?)?;
            eprintln!("backend: {}", backend.summary());
            let session = crate::inference::ModelSession::load(&model.manifest)?;
            Some((model, session))
        }
        None => None,
    };
    std::fs::create_dir_all(&args.out).map_err(|e| io::IoError::os(&args.out, e))?;
    let outputs = ["transform.tfm", "moving_on_fixed.nii.gz", "report.json"];
    if !args.force {
        for name in outputs {
            let p = args.out.join(name);
            if p.exists() {
                return Err(io::IoError::WouldOverwrite { path: p }.into());
            }
        }
    }
    let landmark_pairs = match &args.landmarks {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| io::IoError::os(path, e))?;
            Some(
                landmarks::parse_landmark_pairs(&text)
                    .map_err(|e| anyhow::anyhow!("{e}: {}", path.display()))?,
            )
        }
        None => None,
    };
    let initial = match &args.initial {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| io::IoError::os(path, e))?;
            Some(parse_itk_text(&text).map_err(|e| anyhow::anyhow!("{e}: {}", path.display()))?)
        }
        None => None,
    };
    let out = args.out.clone();
    let fixed_path = args.fixed.clone();
    let moving_path = args.moving.clone();
    let force = args.force;
    let outcome = run_with_progress("register", move |ctx| -> anyhow::Result<Outcome> {
        let fixed = load(&args.fixed, &ctx.sub(0.0, 0.05)).context("reading the fixed image")?;
        let moving = load(&args.moving, &ctx.sub(0.05, 0.1)).context("reading the moving image")?;
        let work = ctx.sub(0.1, 0.85);
        let (reg, landmark_fit) = match (landmark_pairs, model) {
            (_, Some((model, mut session))) => {
                match crate::registration::register_with_model(
                    &fixed,
                    &moving,
                    &mut session,
                    &model,
                    &work,
                ) {
                    Ok(reg) => (reg, None),
                    Err(RegistrationError::SanityCheckFailed { reason, report }) => {
                        return Ok(Outcome::Failed { reason, report })
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            (Some((f, m)), None) => {
                let model = match args.landmark_model {
                    LandmarkModelArg::Rigid => LandmarkModel::Rigid,
                    LandmarkModelArg::Similarity => LandmarkModel::Similarity,
                    LandmarkModelArg::Affine => LandmarkModel::Affine,
                };
                let (reg, fit) = register_landmarks(&f, &m, model)?;
                (reg, Some(fit))
            }
            (None, None) => {
                let params = RegistrationParams {
                    kind: if args.affine {
                        RegistrationKind::Affine
                    } else if args.deformable {
                        RegistrationKind::Deformable(BSplineSettings {
                            control_spacing_mm: args.grid_mm,
                            ..BSplineSettings::for_metric(args.deformable_metric.into())
                        })
                    } else {
                        RegistrationKind::Rigid
                    },
                    metric: match args.metric {
                        MetricArg::Mi => Metric::default(),
                        MetricArg::Ncc => Metric::NormalizedCrossCorrelation,
                        MetricArg::Ms => Metric::MeanSquares,
                    },
                    initialization: match args.init {
                        InitArg::Identity => Initialization::Identity,
                        InitArg::Geometry => Initialization::GeometricCentre,
                        InitArg::CentreOfMass => Initialization::CentreOfMass,
                        InitArg::PrincipalAxes => Initialization::PrincipalAxes,
                    },
                    initial_transform: initial,
                    level_spacings_mm: args.levels.clone(),
                    samples: args.samples,
                    fixed_mask: args
                        .fixed_mask
                        .as_deref()
                        .map(|p| load_mask(p, ctx))
                        .transpose()?,
                    moving_mask: args
                        .moving_mask
                        .as_deref()
                        .map(|p| load_mask(p, ctx))
                        .transpose()?,
                    ..Default::default()
                };
                match register(&fixed, &moving, &params, &work) {
                    Ok(reg) => (reg, None),
                    Err(RegistrationError::SanityCheckFailed { reason, report }) => {
                        return Ok(Outcome::Failed { reason, report })
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        ctx.set_stage("Resampling");
        let moving_on_fixed = reg.resample_moving(&moving, fixed.geometry(), 0.0);
        let dice = match (&args.fixed_labels, &args.moving_labels) {
            (Some(f), Some(m)) => {
                let fl = nifti::read_labels(f, ctx)?;
                let ml = nifti::read_labels(m, ctx)?;
                let ml_on_fixed = reg.resample_moving_labels(&ml.volume, fl.volume.geometry());
                dice_per_label(&fl.volume, &ml_on_fixed)
            }
            _ => None,
        };
        ctx.set_stage("Confidence map");
        let confidence =
            (!args.no_confidence).then(|| confidence_map(&fixed, &moving, &reg, 24.0, 2.0));
        ctx.set_progress(1.0);
        Ok(Outcome::Done(Box::new(Done {
            reg,
            landmark_fit,
            moving_on_fixed,
            fixed,
            dice,
            confidence,
        })))
    })?;
    let describe = |p: &Path| p.display().to_string();
    match outcome {
        Outcome::Failed { reason, report } => {
            let r = CliReport {
                fixed: describe(&fixed_path),
                moving: describe(&moving_path),
                registration: *report,
                landmarks: None,
                dice: None,
                confidence: None,
                transform_samples: Vec::new(),
                outputs: vec!["report.json".into()],
            };
            write_text(
                &out.join("report.json"),
                &serde_json::to_string_pretty(&r)?,
                true,
            )?;
            anyhow::bail!(
                "registration failed its sanity check: {reason} (see {})",
                out.join("report.json").display()
            );
        }
        Outcome::Done(done) => {
            let Done {
                reg,
                landmark_fit,
                moving_on_fixed,
                fixed,
                dice,
                confidence,
            } = *done;
            let mut written = Vec::new();
            let tfm = match (&reg.deformation, &reg.dense) {
                (_, Some(u)) => itk_displacement_field_text(u),
                (None, None) => itk_affine_text(&reg.moving_from_fixed, &reg.centre_mm),
                (Some(d), None) => itk_composite_text(&reg.moving_from_fixed, &reg.centre_mm, d),
            };
            write_text(&out.join("transform.tfm"), &tfm, force)?;
            written.push("transform.tfm".to_string());
            io::save_nifti(&out.join("moving_on_fixed.nii.gz"), &moving_on_fixed, force)?;
            written.push("moving_on_fixed.nii.gz".to_string());
            let k = fixed.dims()[2] / 2;
            let board = checkerboard_axial(&fixed, &moving_on_fixed, k, 8);
            let png = out.join("checkerboard.png");
            image::GrayImage::from_raw(board.width as u32, board.height as u32, board.pixels)
                .context("checkerboard buffer")?
                .save(&png)
                .with_context(|| format!("writing {}", png.display()))?;
            written.push("checkerboard.png".to_string());
            let confidence_summary = match confidence {
                Some(c) => {
                    io::save_nifti(&out.join("confidence.nii.gz"), &c.volume, true)?;
                    written.push("confidence.nii.gz".to_string());
                    Some(c.summary)
                }
                None => None,
            };
            written.push("report.json".to_string());
            let r = CliReport {
                fixed: describe(&fixed_path),
                moving: describe(&moving_path),
                registration: reg.report.clone(),
                landmarks: landmark_fit,
                dice,
                confidence: confidence_summary,
                transform_samples: transform_samples(&reg, fixed.geometry()),
                outputs: written,
            };
            write_text(
                &out.join("report.json"),
                &serde_json::to_string_pretty(&r)?,
                force,
            )?;
            let rep = &reg.report;
            println!(
                "{}: metric {:.4} → {:.4}, rotation {:.2}°, translation ({:.2}, {:.2}, {:.2}) mm, {} iterations, {:.1} s",
                rep.kind,
                rep.metric_initial,
                rep.metric_final,
                rep.rotation_deg,
                rep.translation_mm[0],
                rep.translation_mm[1],
                rep.translation_mm[2],
                rep.iterations,
                rep.duration_secs
            );
            if let Some(c) = &r.confidence {
                println!(
                    "confidence: {:.0} % of {} regions on a local optimum (mean {:.2})",
                    c.confident_fraction * 100.0,
                    c.regions,
                    c.mean_confidence
                );
            }
            println!("wrote {} in {}", r.outputs.join(", "), out.display());
            Ok(())
        }
    }
}

struct Done {
    reg: Registration,
    landmark_fit: Option<LandmarkFit>,
    moving_on_fixed: Volume<f32>,
    fixed: Volume<f32>,
    dice: Option<Vec<LabelDice>>,
    confidence: Option<crate::registration::qa::ConfidenceMap>,
}

enum Outcome {
    Done(Box<Done>),
    Failed {
        reason: String,
        report: Box<RegistrationReport>,
    },
}

/// ITK composite: the affine, then (applied first, ITK's queue order) the B-spline:
/// `y = A · (x + d(x))`.
pub fn itk_composite_text(
    linear: &nalgebra::Matrix4<f64>,
    centre: &nalgebra::Vector3<f64>,
    d: &BSplineDeformation,
) -> String {
    let affine = itk_affine_text(linear, centre);
    let affine_body = affine
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let mut params = Vec::with_capacity(d.coefficients.len() * 3);
    for axis in 0..3 {
        for c in &d.coefficients {
            params.push(format!("{}", c[axis]));
        }
    }
    format!(
        "#Insight Transform File V1.0\n#Transform 0\nTransform: CompositeTransform_double_3_3\n\
         #Transform 1\n{affine_body}\n#Transform 2\nTransform: BSplineTransform_double_3_3\n\
         Parameters: {}\nFixedParameters: {} {} {} {} {} {} {} {} {} 1 0 0 0 1 0 0 0 1\n",
        params.join(" "),
        d.dims[0],
        d.dims[1],
        d.dims[2],
        d.origin_mm.x,
        d.origin_mm.y,
        d.origin_mm.z,
        d.spacing_mm,
        d.spacing_mm,
        d.spacing_mm
    )
}

/// A model's dense field as an ITK `DisplacementFieldTransform` (parameters: the vectors,
/// `x y z` per voxel with `i` fastest; fixed parameters: size, origin, spacing, direction).
pub fn itk_displacement_field_text(
    u: &crate::inference::registration::DisplacementField,
) -> String {
    let g = &u.geometry;
    let mut params = Vec::with_capacity(u.vectors_mm.len() * 3);
    for v in &u.vectors_mm {
        params.extend([v.x, v.y, v.z].map(|c| format!("{c}")));
    }
    let mut fixed: Vec<String> = g.dims.iter().map(|d| d.to_string()).collect();
    fixed.extend(g.origin_mm.iter().map(|v| format!("{v}")));
    fixed.extend(g.spacing_mm.iter().map(|v| format!("{v}")));
    for r in 0..3 {
        for c in 0..3 {
            fixed.push(format!("{}", g.direction[(r, c)]));
        }
    }
    format!(
        "#Insight Transform File V1.0\n#Transform 0\nTransform: DisplacementFieldTransform_double_3_3\n\
         Parameters: {}\nFixedParameters: {}\n",
        params.join(" "),
        fixed.join(" ")
    )
}

#[derive(Debug, clap::Args)]
pub struct BenchRegisterArgs {
    /// Fixed samples per level.
    #[arg(long, default_value_t = 30_000)]
    pub samples: usize,
    /// Skip the deformable run.
    #[arg(long)]
    pub rigid_only: bool,
    /// MR without noise and bias field.
    #[arg(long)]
    pub clean: bool,
    /// Skip the rigid run.
    #[arg(long)]
    pub deformable_only: bool,
    /// Rigid runs on the same pair; the fastest is reported (the machine is shared).
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// B-spline control point spacing (mm) of the deformable run.
    #[arg(long)]
    pub grid_mm: Option<f64>,
    /// B-spline bending weight of the deformable run.
    #[arg(long)]
    pub bending: Option<f64>,
    /// Fixed samples per level of the B-spline stage.
    #[arg(long)]
    pub bspline_samples: Option<usize>,
    /// Metric evaluations per B-spline level.
    #[arg(long)]
    pub bspline_iterations: Option<usize>,
    /// No affine stage between rigid and B-spline in the deformable run.
    #[arg(long)]
    pub no_affine: bool,
    /// B-spline control grids, coarse to fine, in the deformable run.
    #[arg(long)]
    pub grid_levels: Option<usize>,
    /// B-spline convergence: smallest accepted step, as a fraction of the level's voxel.
    #[arg(long)]
    pub bspline_min_step: Option<f64>,
    /// Pyramid spacings in mm, coarse to fine (default: 4s, 2s, s).
    #[arg(long, value_delimiter = ',')]
    pub levels: Option<Vec<f64>>,
    /// B-spline divergence (compressibility) weight of the deformable run.
    #[arg(long)]
    pub divergence: Option<f64>,
    /// B-spline stage: equal-width fixed MI bins (as before) instead of equal-count ones.
    #[arg(long)]
    pub equal_width_bins: bool,
    /// Similarity of the B-spline stage.
    #[arg(long, value_enum, default_value_t = DeformableMetricArg::Mi)]
    pub deformable_metric: DeformableMetricArg,
    /// NGF ε as a multiple of each image's noise-level gradient.
    #[arg(long)]
    pub ngf_epsilon: Option<f64>,
    /// MIND: floor of the descriptor variance as a multiple of its median (0: none).
    #[arg(long)]
    pub mind_floor: Option<f64>,
    /// Skip the per-region confidence map after the deformable run.
    #[arg(long)]
    pub no_confidence: bool,
    /// Pyramid spacing (mm) of the images the B-spline's last grid is fitted on.
    #[arg(long)]
    pub bspline_image_mm: Option<f64>,
    /// B-spline samples inside the fixed object only.
    #[arg(long)]
    pub foreground_samples: bool,
    /// Diagnostic: start the deformable run at the true linear motion and keep it (no linear
    /// optimisation), to tell the B-spline stage's errors from the linear stage's.
    #[arg(long)]
    pub oracle_linear: bool,
    /// Mattes MI bins of the B-spline stage.
    #[arg(long)]
    pub bspline_bins: Option<usize>,
    /// Seed of the registration's sample sets (the phantom stays the same).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Write the benchmark pairs and their truth to DIR for peer tools (elastix, ANTs) and
    /// exit without registering: `fixed_ct.nii.gz`, `moving_mr.nii.gz` (warped pair),
    /// `moving_mr_rigid.nii.gz` (rigid-only pair, same CT), `target_points.txt` (fixed world
    /// LPS, transformix's input-points format) and `true_moving_points[_rigid].txt`.
    #[arg(long, value_name = "DIR")]
    pub write_phantom: Option<PathBuf>,
    /// Experiment, not the benchmark: a smooth pattern of this relative amplitude inside the
    /// phantom's otherwise uniform brain (0.25: ±10 HU CT, ±25 % MR), to see how much of the
    /// deformable TRE is the textureless interior rather than the method.
    #[arg(long, value_name = "AMPLITUDE")]
    pub textured: Option<f64>,
    /// Deformable runs on the warped pair only (skip the rigid-motion pair).
    #[arg(long)]
    pub warped_only: bool,
}

fn report_line(name: &str, secs: f64, cpu: f64, tre: &TreSummary, rep: &RegistrationReport) {
    println!(
        "{name}: {secs:.2} s wall, {cpu:.2} s CPU (all threads), TRE mean {:.3} mm (rms {:.3}, p95 {:.3}, max {:.3}, {} points), {} iterations, MI {:.3} → {:.3}",
        tre.mean_mm, tre.rms_mm, tre.p95_mm, tre.max_mm, tre.points, rep.iterations, rep.metric_initial, rep.metric_final
    );
}

/// Times rigid and deformable registration of the phantom pair and reports TRE.
pub fn bench(args: BenchRegisterArgs) -> anyhow::Result<()> {
    let spec = |warp: bool| {
        let mut s = PhantomSpec::benchmark(warp);
        if args.clean {
            s.mr_noise = 0.0;
            s.mr_bias = 0.0;
        }
        if let Some(a) = args.textured {
            s.brain_texture = a;
        }
        s
    };
    if let Some(dir) = &args.write_phantom {
        return write_phantom(dir, &spec(true), &spec(false));
    }
    if !args.deformable_only {
        bench_rigid(&args, &spec(false))?;
    }
    if args.rigid_only {
        return Ok(());
    }
    // The benchmark pair carries the rigid motion only: there the deformable pipeline
    // must not lose what the rigid stage finds (elastix's B-spline ends at 1.10 mm on it). The
    // warped pair is our stricter addition, where the B-spline stage has to recover a warp.
    if !args.warped_only {
        bench_deformable(&args, &spec(false))?;
    }
    bench_deformable(&args, &spec(true))
}

/// Points as transformix reads them (`-def FILE`): `point`, the count, one `x y z` a line.
/// Our world frame is LPS, which is ITK's physical frame, so the numbers need no flip.
fn transformix_points_text(points: &[nalgebra::Point3<f64>]) -> String {
    let mut text = format!("point\n{}\n", points.len());
    for p in points {
        text.push_str(&format!("{:.6} {:.6} {:.6}\n", p.x, p.y, p.z));
    }
    text
}

fn write_phantom(dir: &Path, warped: &PhantomSpec, rigid: &PhantomSpec) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| io::IoError::os(dir, e))?;
    let ph = warped.clone().generate();
    let points = ph.target_points(5.0);
    nifti::write_nifti(
        &dir.join("fixed_ct.nii.gz"),
        &ph.ct,
        "fuseprint benchmark CT phantom",
        true,
    )?;
    write_text(
        &dir.join("target_points.txt"),
        &transformix_points_text(&points),
        true,
    )?;
    write_moving_side(dir, &ph, &points, "", "rigid + sine warp")?;
    drop(ph);
    write_moving_side(
        dir,
        &rigid.clone().generate(),
        &points,
        "_rigid",
        "rigid only",
    )?;
    println!(
        "wrote the benchmark pairs and {} target points (fixed world LPS mm) to {}",
        points.len(),
        dir.display()
    );
    Ok(())
}

/// One pair's moving side: `moving_mr{suffix}.nii.gz` and the truth's moving position of each
/// target point, `true_moving_points{suffix}.txt`.
fn write_moving_side(
    dir: &Path,
    ph: &Phantom,
    points: &[nalgebra::Point3<f64>],
    suffix: &str,
    motion: &str,
) -> anyhow::Result<()> {
    nifti::write_nifti(
        &dir.join(format!("moving_mr{suffix}.nii.gz")),
        &ph.mr,
        &format!("fuseprint benchmark MR phantom ({motion})"),
        true,
    )?;
    let truth: Vec<_> = points.iter().map(|p| ph.spec.truth.apply(p)).collect();
    write_text(
        &dir.join(format!("true_moving_points{suffix}.txt")),
        &transformix_points_text(&truth),
        true,
    )?;
    Ok(())
}

fn bench_rigid(args: &BenchRegisterArgs, spec: &PhantomSpec) -> anyhow::Result<()> {
    let ctx = JobContext::detached();
    let t = std::time::Instant::now();
    let ph = spec.clone().generate();
    println!(
        "phantom: CT {:?} @ {:?} mm, MR {:?} @ {:?} mm ({}), 8° about S + 2° about L, (6, -4, 3) mm (generated in {:.1} s)",
        ph.ct.dims(),
        ph.ct.geometry().spacing_mm,
        ph.mr.dims(),
        ph.mr.geometry().spacing_mm,
        if args.clean { "clean" } else { "noise σ 15, bias ±15 %" },
        t.elapsed().as_secs_f64()
    );
    let points = ph.target_points(5.0);
    let params = RegistrationParams {
        samples: args.samples,
        level_spacings_mm: args.levels.clone(),
        ..Default::default()
    };
    let mut best = f64::INFINITY;
    for run in 0..args.runs.max(1) {
        let t = std::time::Instant::now();
        let cpu = io::cpu_seconds().unwrap_or(0.0);
        let reg = register(&ph.ct, &ph.mr, &params, &ctx)?;
        let secs = t.elapsed().as_secs_f64();
        let cpu = io::cpu_seconds().unwrap_or(0.0) - cpu;
        let tre = target_registration_error(
            &points,
            |p| reg.transform_point(p),
            |p| ph.spec.truth.apply(p),
        );
        report_line(
            &format!("rigid (run {})", run + 1),
            secs,
            cpu,
            &tre,
            &reg.report,
        );
        for l in &reg.report.levels {
            println!(
                "  {} level {:.1} mm: built in {:.3} s; {} samples, {} iterations ({:?}), {:.3} s",
                l.stage,
                l.spacing_mm,
                l.build_secs,
                l.samples,
                l.iterations,
                l.stop,
                l.duration_secs
            );
        }
        best = best.min(secs);
    }
    if let Ok(load) = io::load_average() {
        println!(
            "rigid: fastest of {} runs {best:.2} s; machine load average {load}",
            args.runs.max(1)
        );
    }
    Ok(())
}

fn bench_deformable(args: &BenchRegisterArgs, spec: &PhantomSpec) -> anyhow::Result<()> {
    let ctx = JobContext::detached();
    let ph = spec.clone().generate();
    let points = ph.target_points(5.0);
    let before = target_registration_error(&points, |p| *p, |p| ph.spec.truth.apply(p));
    let floor = affine_fit_floor(&points, |p| ph.spec.truth.apply(p));
    if ph.spec.brain_texture != 0.0 {
        println!(
            "EXPERIMENT, not the benchmark: brain textured at relative amplitude {}",
            ph.spec.brain_texture
        );
    }
    let (pair, pair_detail) = if ph.spec.truth.warp.is_some() {
        ("warped pair", "the same motion plus a local sine warp")
    } else {
        ("issue's pair", "rigid motion only")
    };
    println!(
        "deformable on the {pair}: {pair_detail} (initial TRE {:.2} mm; best affine fit of the truth over the \
         target points {:.2} mm, the linear stage's floor)",
        before.mean_mm,
        floor.map_or(f64::NAN, |f| f.mean_mm)
    );
    let defaults = BSplineSettings::for_metric(args.deformable_metric.into());
    let params = RegistrationParams {
        samples: args.samples,
        kind: RegistrationKind::Deformable(BSplineSettings {
            metric: args.deformable_metric.into(),
            ngf_epsilon_scale: args.ngf_epsilon.unwrap_or(defaults.ngf_epsilon_scale),
            mind_noise_floor: args.mind_floor.unwrap_or(defaults.mind_noise_floor),
            control_spacing_mm: args.grid_mm.unwrap_or(defaults.control_spacing_mm),
            bending_weight: args.bending.unwrap_or(defaults.bending_weight),
            samples: args.bspline_samples.unwrap_or(defaults.samples),
            max_iterations: args.bspline_iterations.unwrap_or(defaults.max_iterations),
            affine_first: !args.no_affine,
            grid_levels: args.grid_levels.unwrap_or(defaults.grid_levels),
            min_step_voxels: args.bspline_min_step.unwrap_or(defaults.min_step_voxels),
            rank_fixed_bins: !args.equal_width_bins,
            divergence_weight: args.divergence.unwrap_or(defaults.divergence_weight),
            image_spacing_mm: args.bspline_image_mm.or(defaults.image_spacing_mm),
            foreground_samples: args.foreground_samples || defaults.foreground_samples,
            mi_bins: args.bspline_bins.or(defaults.mi_bins),
        }),
        level_spacings_mm: args.levels.clone(),
        initial_transform: args.oracle_linear.then_some(ph.spec.truth.linear),
        max_iterations: if args.oracle_linear { 0 } else { 200 },
        seed: args.seed.unwrap_or(RegistrationParams::default().seed),
        ..Default::default()
    };
    let t = std::time::Instant::now();
    let cpu = io::cpu_seconds().unwrap_or(0.0);
    let reg = register(&ph.ct, &ph.mr, &params, &ctx)?;
    let secs = t.elapsed().as_secs_f64();
    let cpu = io::cpu_seconds().unwrap_or(0.0) - cpu;
    let tre = target_registration_error(
        &points,
        |p| reg.transform_point(p),
        |p| ph.spec.truth.apply(p),
    );
    report_line(
        &format!("deformable ({pair})"),
        secs,
        cpu,
        &tre,
        &reg.report,
    );
    for l in &reg.report.levels {
        println!(
            "  {} level {:.1} mm: built in {:.3} s; {} iterations ({:?}), MI {:.4} → {:.4}, {:.3} s",
            l.stage, l.spacing_mm, l.build_secs, l.iterations, l.stop, l.metric_start, l.metric_end, l.duration_secs
        );
    }
    let linear_only = target_registration_error(
        &points,
        |p| reg.moving_from_fixed.transform_point(p),
        |p| ph.spec.truth.apply(p),
    );
    println!(
        "  its linear stage alone: TRE mean {:.3} mm",
        linear_only.mean_mm
    );
    // Where the error is: by distance from the object centre (the warp peaks inside and
    // fades towards the skin).
    let warp = ph.spec.truth.warp;
    for (lo, hi) in [
        (0.0, 20.0),
        (20.0, 40.0),
        (40.0, 60.0),
        (60.0, f64::INFINITY),
    ] {
        let shell: Vec<_> = points
            .iter()
            .filter(|p| (lo..hi).contains(&(p.coords - ph.spec.object_centre_mm).norm()))
            .copied()
            .collect();
        if shell.is_empty() {
            continue;
        }
        let at = |f: &dyn Fn(&nalgebra::Point3<f64>) -> nalgebra::Point3<f64>| {
            shell
                .iter()
                .map(|p| (f(p) - ph.spec.truth.apply(p)).norm())
                .sum::<f64>()
                / shell.len() as f64
        };
        let warp_mm = shell
            .iter()
            .map(|p| warp.map_or(0.0, |w| w.displacement(p).norm()))
            .sum::<f64>()
            / shell.len() as f64;
        println!(
            "  radius {lo:.0}-{hi:.0} mm ({} points): warp {warp_mm:.2} mm, TRE linear {:.2} → final {:.2} mm",
            shell.len(),
            at(&|p| reg.moving_from_fixed.transform_point(p)),
            at(&|p| reg.transform_point(p)),
        );
    }
    if let Some(d) = &reg.report.deformable {
        for l in &d.levels {
            println!(
                "  B-spline level: grid {:.1} mm ({} points), {} evaluations, {} {:.4} → {:.4}, {:.2} s",
                l.control_spacing_mm,
                l.control_points,
                l.iterations,
                params_metric_name(&params),
                l.metric_start,
                l.metric_end,
                l.duration_secs
            );
        }
        println!(
            "  max displacement {:.2} mm, min Jacobian determinant {:.3}{}",
            d.max_displacement_mm,
            d.min_jacobian_determinant,
            d.discarded
                .as_ref()
                .map(|w| format!("; field DISCARDED: {w}"))
                .unwrap_or_default()
        );
    }
    if let Ok(load) = io::load_average() {
        println!("  machine load average {load}");
    }
    if !args.no_confidence {
        let t = std::time::Instant::now();
        let c = confidence_map(&ph.ct, &ph.mr, &reg, 24.0, 2.0).summary;
        println!(
            "  confidence: {:.0} % of {} regions on a local optimum (mean {:.3}, mean NMI {:.3}; {:.1} s)",
            c.confident_fraction * 100.0,
            c.regions,
            c.mean_confidence,
            c.mean_nmi,
            t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

fn params_metric_name(params: &RegistrationParams) -> String {
    match &params.kind {
        RegistrationKind::Deformable(b) => match b.metric {
            DeformableMetric::NormalizedGradientFields => "NGF".to_string(),
            DeformableMetric::Mind => "MIND-SSC".to_string(),
            DeformableMetric::Intensity => format!("{:?}", params.metric),
        },
        _ => format!("{:?}", params.metric),
    }
}
