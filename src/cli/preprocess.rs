//! `fuseprint preprocess OP IN -o OUT [options]` and `fuseprint bench preprocess`.

use super::progress::run_with_progress;
use crate::io;
use crate::preprocess::bias::{self, BiasParams};
use crate::preprocess::mar::{self, MarMethod, MarParams};
use crate::preprocess::normalize;
use crate::preprocess::regrid::{self, Canonical, Kernel};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct PreprocessArgs {
    #[command(subcommand)]
    pub op: Op,
}

/// Input, output and overwrite, shared by every operation.
#[derive(Debug, clap::Args)]
pub struct InOut {
    /// A NIfTI file, a DICOM file or a DICOM folder.
    pub input: PathBuf,
    /// Output .nii or .nii.gz.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Replace OUT if it exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum Op {
    /// Edge-preserving denoising (σ in mm, range σ in image units / HU).
    Denoise {
        #[command(flatten)]
        io: InOut,
        /// curvature | bilateral | nlm | gaussian | median
        #[arg(long, default_value = "nlm")]
        method: String,
        /// Parameter preset: ct | mr.
        #[arg(long, default_value = "ct")]
        preset: String,
        /// Gaussian σ or bilateral domain σ, mm.
        #[arg(long)]
        sigma_mm: Option<f64>,
        /// Bilateral range σ (default 2.5 × estimated noise σ).
        #[arg(long)]
        range_sigma: Option<f32>,
        /// Curvature diffusion iterations.
        #[arg(long)]
        iterations: Option<usize>,
        /// Curvature diffusion time step, mm² (≤ spacing²/16).
        #[arg(long)]
        time_step: Option<f64>,
        /// Curvature diffusion conductance.
        #[arg(long)]
        conductance: Option<f64>,
        /// NLM strength h = factor × noise σ.
        #[arg(long)]
        h_factor: Option<f32>,
        /// Noise σ for NLM (default: estimated).
        #[arg(long)]
        noise_sigma: Option<f32>,
    },
    /// N4-like MR bias-field correction (Otsu mask).
    Bias {
        #[command(flatten)]
        io: InOut,
        #[arg(long, default_value_t = 4)]
        shrink: usize,
        #[arg(long, default_value_t = 3)]
        levels: usize,
        #[arg(long, default_value_t = 25)]
        iterations: usize,
        /// Field smoothing σ at the first level, mm.
        #[arg(long, default_value_t = 60.0)]
        field_sigma_mm: f64,
        /// Also write the estimated field here.
        #[arg(long)]
        field_out: Option<PathBuf>,
    },
    /// Intensity normalisation.
    Normalize {
        #[command(flatten)]
        io: InOut,
        /// clip | window | zscore | percentile | match
        #[arg(long)]
        mode: String,
        /// clip: lower bound; percentile: lower percentile (default 0.5).
        #[arg(long)]
        low: Option<f32>,
        /// clip: upper bound; percentile: upper percentile (default 99.5).
        #[arg(long)]
        high: Option<f32>,
        /// window centre (HU).
        #[arg(long)]
        center: Option<f32>,
        /// window width (HU).
        #[arg(long)]
        width: Option<f32>,
        /// match: the reference image whose histogram landmarks to match.
        #[arg(long)]
        reference: Option<PathBuf>,
    },
    /// Resample to isotropic spacing or onto another image's grid.
    Resample {
        #[command(flatten)]
        io: InOut,
        /// Isotropic spacing, mm (default: the finest input spacing).
        #[arg(long)]
        spacing: Option<f64>,
        /// Resample onto this image's grid instead.
        #[arg(long)]
        like: Option<PathBuf>,
        /// nearest | linear | bspline
        #[arg(long, default_value = "bspline")]
        kernel: String,
        /// Value outside the input.
        #[arg(long, default_value_t = 0.0)]
        fill: f32,
    },
    /// Crop to a voxel box (inclusive) or a world (LPS mm) box.
    Crop {
        #[command(flatten)]
        io: InOut,
        /// i0 j0 k0 i1 j1 k1
        #[arg(long, num_args = 6, allow_hyphen_values = true)]
        voxels: Option<Vec<i64>>,
        /// x0 y0 z0 x1 y1 z1, LPS mm
        #[arg(long, num_args = 6, allow_hyphen_values = true)]
        world: Option<Vec<f64>>,
    },
    /// Permute/flip axes to a canonical order (exact, no interpolation).
    Reorient {
        #[command(flatten)]
        io: InOut,
        /// lps | ras
        #[arg(long, default_value = "lps")]
        to: String,
    },
    /// CT metal-artefact reduction (parallel-beam sinogram inpainting).
    Mar {
        #[command(flatten)]
        io: InOut,
        #[arg(long, default_value_t = 2500.0)]
        threshold: f32,
        #[arg(long, default_value_t = 1.0)]
        margin_mm: f64,
        /// li | nmar
        #[arg(long, default_value = "nmar")]
        method: String,
        /// Projection angles over 180° (0: one per pixel of the larger side).
        #[arg(long, default_value_t = 0)]
        angles: usize,
    },
}

fn load(path: &PathBuf) -> anyhow::Result<crate::volume::Volume<f32>> {
    let p = path.clone();
    let img = run_with_progress("load", move |ctx| io::load_image(&p, ctx))?;
    Ok(img.volume)
}

fn check_output(o: &InOut) -> anyhow::Result<()> {
    let name = o
        .output
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if !(name.ends_with(".nii") || name.ends_with(".nii.gz")) {
        anyhow::bail!("output must end in .nii or .nii.gz: {}", o.output.display());
    }
    if !o.force && o.output.exists() {
        return Err(io::IoError::WouldOverwrite {
            path: o.output.clone(),
        }
        .into());
    }
    Ok(())
}

fn parse_kernel(s: &str) -> anyhow::Result<Kernel> {
    Ok(match s {
        "nearest" => Kernel::Nearest,
        "linear" => Kernel::Linear,
        "bspline" | "cubic" => Kernel::CubicBSpline,
        _ => anyhow::bail!("unknown kernel {s} (nearest | linear | bspline)"),
    })
}

pub fn run(args: PreprocessArgs) -> anyhow::Result<()> {
    let (io_args, out) = match args.op {
        Op::Denoise {
            io,
            method,
            preset,
            sigma_mm,
            range_sigma,
            iterations,
            time_step,
            conductance,
            h_factor,
            noise_sigma,
        } => {
            check_output(&io)?;
            let preset = match preset.as_str() {
                "ct" => DenoisePreset::Ct,
                "mr" => DenoisePreset::Mr,
                _ => anyhow::bail!("unknown preset {preset} (ct | mr)"),
            };
            let mut m = DenoiseMethod::preset(&method, preset).ok_or_else(|| {
                anyhow::anyhow!(
                    "unknown method {method} (curvature | bilateral | nlm | gaussian | median)"
                )
            })?;
            match &mut m {
                DenoiseMethod::Gaussian { sigma_mm: s } => *s = sigma_mm.unwrap_or(*s),
                DenoiseMethod::Median => {}
                DenoiseMethod::Bilateral {
                    domain_sigma_mm,
                    range_sigma: r,
                } => {
                    *domain_sigma_mm = sigma_mm.unwrap_or(*domain_sigma_mm);
                    *r = range_sigma.or(*r);
                }
                DenoiseMethod::Curvature {
                    iterations: it,
                    time_step: ts,
                    conductance: c,
                } => {
                    *it = iterations.unwrap_or(*it);
                    *ts = time_step.unwrap_or(*ts);
                    *c = conductance.unwrap_or(*c);
                }
                DenoiseMethod::NonLocalMeans {
                    h_factor: h, sigma, ..
                } => {
                    *h = h_factor.unwrap_or(*h);
                    *sigma = noise_sigma.or(*sigma);
                }
            }
            let vol = load(&io.input)?;
            let out = run_with_progress("denoise", move |ctx| denoise::denoise(&vol, &m, ctx))?;
            (io, out)
        }
        Op::Bias {
            io,
            shrink,
            levels,
            iterations,
            field_sigma_mm,
            field_out,
        } => {
            check_output(&io)?;
            let vol = load(&io.input)?;
            let params = BiasParams {
                shrink,
                levels,
                iterations,
                field_sigma_mm,
                ..BiasParams::default()
            };
            let r = run_with_progress("bias", move |ctx| {
                bias::correct_bias(&vol, None, &params, ctx)
            })?;
            if let Some(f) = field_out {
                io::save_nifti(&f, &r.field, io.force)?;
            }
            (io, r.corrected)
        }
        Op::Normalize {
            io,
            mode,
            low,
            high,
            center,
            width,
            reference,
        } => {
            check_output(&io)?;
            let vol = load(&io.input)?;
            let out = match mode.as_str() {
                "clip" => normalize::clip(&vol, low.unwrap_or(-1024.0), high.unwrap_or(3071.0))?,
                "window" => {
                    normalize::window(&vol, center.unwrap_or(40.0), width.unwrap_or(400.0))?
                }
                "zscore" => normalize::z_score(&vol, None)?,
                "percentile" => normalize::percentile_scale(
                    &vol,
                    Some(&normalize::otsu_mask(&vol)),
                    low.unwrap_or(0.5) as f64,
                    high.unwrap_or(99.5) as f64,
                    true,
                )?,
                "match" => {
                    let r = reference
                        .ok_or_else(|| anyhow::anyhow!("--mode match needs --reference IMAGE"))?;
                    let reference = load(&r)?;
                    let landmarks = normalize::histogram_landmarks(&reference, None)?;
                    normalize::match_histogram(&vol, None, &landmarks)?
                }
                _ => anyhow::bail!(
                    "unknown mode {mode} (clip | window | zscore | percentile | match)"
                ),
            };
            (io, out)
        }
        Op::Resample {
            io,
            spacing,
            like,
            kernel,
            fill,
        } => {
            check_output(&io)?;
            let kernel = parse_kernel(&kernel)?;
            let vol = load(&io.input)?;
            let target = match like {
                Some(p) => load(&p)?.geometry().clone(),
                None => {
                    let s = spacing.unwrap_or_else(|| {
                        vol.geometry()
                            .spacing_mm
                            .iter()
                            .cloned()
                            .fold(f64::INFINITY, f64::min)
                    });
                    regrid::isotropic_geometry(vol.geometry(), s)?
                }
            };
            let out = run_with_progress("resample", move |ctx| {
                regrid::resample_to(&vol, &target, kernel, fill, ctx)
            })?;
            (io, out)
        }
        Op::Crop { io, voxels, world } => {
            check_output(&io)?;
            let vol = load(&io.input)?;
            let out = match (voxels, world) {
                (Some(v), None) => {
                    regrid::crop_voxels(&vol, [v[0], v[1], v[2]], [v[3], v[4], v[5]])?
                }
                (None, Some(w)) => {
                    regrid::crop_world(&vol, [w[0], w[1], w[2]], [w[3], w[4], w[5]])?
                }
                _ => anyhow::bail!("give exactly one of --voxels or --world"),
            };
            (io, out)
        }
        Op::Reorient { io, to } => {
            check_output(&io)?;
            let to = match to.as_str() {
                "lps" => Canonical::Lps,
                "ras" => Canonical::Ras,
                _ => anyhow::bail!("unknown orientation {to} (lps | ras)"),
            };
            let vol = load(&io.input)?;
            (io, regrid::reorient(&vol, to)?)
        }
        Op::Mar {
            io,
            threshold,
            margin_mm,
            method,
            angles,
        } => {
            check_output(&io)?;
            let method = match method.as_str() {
                "li" => MarMethod::Linear,
                "nmar" => MarMethod::Normalized,
                _ => anyhow::bail!("unknown MAR method {method} (li | nmar)"),
            };
            let vol = load(&io.input)?;
            let params = MarParams {
                metal_threshold_hu: threshold,
                margin_mm,
                angles,
                method,
                ..MarParams::default()
            };
            let r = run_with_progress("mar", move |ctx| {
                mar::reduce_metal_artefacts(&vol, &params, ctx)
            })?;
            let metal = r.metal.iter().filter(|m| **m).count();
            println!(
                "metal voxels {metal}, slices corrected {}",
                r.slices_corrected
            );
            (io, r.corrected)
        }
    };
    io::save_nifti(&io_args.output, &out, io_args.force)?;
    let g = out.geometry();
    println!(
        "wrote {}x{}x{} voxels, spacing {:.3}x{:.3}x{:.3} mm",
        g.dims[0], g.dims[1], g.dims[2], g.spacing_mm[0], g.spacing_mm[1], g.spacing_mm[2]
    );
    Ok(())
}

use crate::jobs::JobContext;
use crate::preprocess::denoise::{self, DenoiseMethod, DenoisePreset};
use crate::preprocess::{metrics, phantom};
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct BenchPreprocessArgs {
    /// Phantom size (i, j, k), 1 mm isotropic voxels.
    #[arg(long, num_args = 3, default_values_t = [256, 256, 200])]
    pub dims: Vec<usize>,
    /// Noise σ in HU.
    #[arg(long, default_value_t = 20.0)]
    pub noise: f32,
    /// Only these methods (default: all).
    #[arg(long)]
    pub methods: Vec<String>,
    /// Also write clean.nii.gz, noisy.nii.gz and body.nii.gz (1 inside the body) into this folder,
    /// so peers (scripts/bench_preprocess_peers.py) run on the very same input.
    #[arg(long)]
    pub dump: Option<std::path::PathBuf>,
}

/// Times each denoiser on a noisy CT phantom and reports error inside the body vs the clean image.
pub fn bench(args: BenchPreprocessArgs) -> anyhow::Result<()> {
    let dims = match args.dims.as_slice() {
        [a, b, c] => [*a, *b, *c],
        _ => anyhow::bail!("--dims needs three numbers"),
    };
    let ph = phantom::ct_torso(dims, [1.0; 3]);
    let noisy = phantom::add_gaussian_noise(&ph.clean, args.noise, 7);
    let body = Some(ph.body.as_slice());
    let range = 2000.0;
    let ctx = JobContext::detached();
    let edge_clean = body_edge_mm(&ph.clean);
    if let Some(dir) = &args.dump {
        std::fs::create_dir_all(dir)?;
        let body_mask = crate::volume::Volume::new(
            ph.clean.geometry().clone(),
            ph.body.iter().map(|&b| f32::from(u8::from(b))).collect(),
        )?;
        for (name, vol) in [
            ("clean", &ph.clean),
            ("noisy", &noisy),
            ("body", &body_mask),
        ] {
            io::save_nifti(&dir.join(format!("{name}.nii.gz")), vol, true)?;
        }
        println!("wrote clean, noisy and body .nii.gz to {}", dir.display());
    }
    println!(
        "phantom {}x{}x{} @1 mm, noise σ {} HU, {} rayon threads",
        dims[0],
        dims[1],
        dims[2],
        args.noise,
        rayon::current_num_threads()
    );
    println!(
        "{:<12} {:>8} {:>8} {:>9} {:>8} {:>7} {:>10}",
        "method", "time_s", "cpu_s", "RMSE_HU", "PSNR_dB", "SSIM", "edge_mm"
    );
    // CPU seconds (all threads) next to wall time: on a shared machine wall time includes
    // waiting for other processes.
    let report = |name: &str, secs: f64, cpu: f64, out: &crate::volume::Volume<f32>| {
        let e = metrics::rmse(out, &ph.clean, body);
        println!(
            "{:<12} {:>8.2} {:>8.2} {:>9.2} {:>8.2} {:>7.4} {:>10.3}",
            name,
            secs,
            cpu,
            e,
            metrics::psnr(e, range),
            metrics::ssim(&ph.clean, out, body, range),
            body_edge_mm(out) - edge_clean
        );
    };
    report("noisy", 0.0, 0.0, &noisy);
    let names = if args.methods.is_empty() {
        vec!["gaussian", "median", "bilateral", "curvature", "nlm"]
            .into_iter()
            .map(String::from)
            .collect()
    } else {
        args.methods.clone()
    };
    for name in names {
        let Some(method) = DenoiseMethod::preset(&name, DenoisePreset::Ct) else {
            anyhow::bail!("unknown method {name}");
        };
        let cpu0 = io::cpu_seconds().unwrap_or(f64::NAN);
        let t = Instant::now();
        let out = denoise::denoise(&noisy, &method, &ctx)?;
        let secs = t.elapsed().as_secs_f64();
        let cpu = io::cpu_seconds().unwrap_or(f64::NAN) - cpu0;
        report(&name, secs, cpu, &out);
    }
    Ok(())
}

/// Mean position (mm along +i from the centre) where the mid-row profile of each slice crosses
/// halfway from fat (−100) to air (−1000): the body outline.
fn body_edge_mm(v: &crate::volume::Volume<f32>) -> f64 {
    let [nx, ny, nz] = v.dims();
    let sp = v.geometry().spacing_mm[0];
    let (mut sum, mut n) = (0.0, 0usize);
    for k in 0..nz {
        for j in [ny / 2 - 1, ny / 2, ny / 2 + 1] {
            let profile: Vec<f32> = (nx / 2..nx).map(|i| v.at(i, j, k)).collect();
            // Start the search inside the fat shell: the last crossing outwards is the skin.
            let start = profile.len().saturating_sub(profile.len() / 5);
            if let Some(x) = metrics::half_crossing(&profile[start..], -100.0, -1000.0) {
                sum += (x + start as f64) * sp;
                n += 1;
            }
        }
    }
    sum / n.max(1) as f64
}
