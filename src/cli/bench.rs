//! `fuseprint bench load`: load time and peak memory (issue 2). Not a test.
//!
//! Generates a synthetic 512×512×N int16 CT as uncompressed DICOM and as .nii.gz, then
//! times each load in a fresh child process of this binary (`--child KIND PATH`), so
//! each peak-memory figure (VmHWM) belongs to one load alone. Best of 3 runs.

use crate::io::{self, nifti};
use crate::jobs::JobContext;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub which: BenchWhich,
}

#[derive(Debug, clap::Subcommand)]
pub enum BenchWhich {
    /// DICOM series vs .nii.gz load time and peak memory for a synthetic CT.
    Load(LoadArgs),
    /// Isosurface, surface nets and the full mesh pipeline on a 512×512×400 phantom.
    Mesh(super::mesh::BenchMeshArgs),
    /// Rigid and deformable registration of a synthetic CT/MR phantom: time and TRE.
    Register(super::register::BenchRegisterArgs),
    /// Denoisers on a noisy CT phantom: time and error vs the clean image (issue 7).
    Preprocess(super::preprocess::BenchPreprocessArgs),
    /// Threshold + components + keep largest and Gaussian smoothing of a generated CT, undo memory.
    Segment(super::bench_segment::BenchSegmentArgs),
    /// A brainchop model on t1_crop: time, peak memory, Dice against the ONNX Runtime reference.
    Inference(super::bench_inference::BenchInferenceArgs),
    /// Raycaster frames per second: DVR and MIP of 256³ and 512³ phantoms at 512² and 1080p.
    Render(super::bench_render::BenchRenderArgs),
    /// Frame times of the window code (headless), idle vs while a long job runs.
    Ui(BenchUiArgs),
}

#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// Folder for the generated data (default: a temporary folder, removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Number of 512×512 slices.
    #[arg(long, default_value_t = 400)]
    pub slices: usize,
    /// Runs per format; the best time is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Internal: load once (`dicom` or `nifti`) and print timing JSON.
    #[arg(long, hide = true, num_args = 2, value_names = ["KIND", "PATH"])]
    pub child: Option<Vec<String>>,
}

/// What one child run reports.
#[derive(Debug, Serialize, Deserialize)]
struct ChildReport {
    secs: f64,
    /// CPU seconds of the load (user + system, all threads).
    cpu_secs: f64,
    peak_rss_bytes: u64,
    dims: [usize; 3],
}

/// Published figures from issue 2 (2-core machine, idle, best of 3).
const PEERS: [(&str, &str, f64); 3] = [
    ("DICOM series", "SimpleITK", 0.59),
    ("DICOM series", "pydicom+numpy", 0.71),
    (".nii.gz", "SimpleITK", 1.0),
];

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.which {
        BenchWhich::Load(a) => match &a.child {
            Some(child) => run_child(child),
            None => run_load(&a),
        },
        BenchWhich::Mesh(a) => super::mesh::run_bench(a),
        BenchWhich::Register(a) => super::register::bench(a),
        BenchWhich::Preprocess(a) => super::preprocess::bench(a),
        BenchWhich::Segment(a) => super::bench_segment::run(a),
        BenchWhich::Inference(a) => super::bench_inference::run(&a),
        BenchWhich::Render(a) => super::bench_render::run(a),
        BenchWhich::Ui(a) => run_ui_bench(a),
    }
}

fn run_child(child: &[String]) -> anyhow::Result<()> {
    let [kind, path] = child else {
        anyhow::bail!("--child needs KIND PATH");
    };
    let path = Path::new(path);
    let ctx = JobContext::detached();
    let start = Instant::now();
    let cpu_start = io::cpu_seconds().unwrap_or(0.0);
    let image = match kind.as_str() {
        "dicom" => {
            let scan = io::dicom::scan(path, &ctx)?;
            io::dicom::load_series(&scan, 0, &ctx)?
        }
        "nifti" => io::load_image(path, &ctx)?,
        other => anyhow::bail!("unknown child kind {other}"),
    };
    let secs = start.elapsed().as_secs_f64();
    let report = ChildReport {
        secs,
        cpu_secs: io::cpu_seconds().unwrap_or(0.0) - cpu_start,
        peak_rss_bytes: io::peak_rss_bytes().unwrap_or(0),
        dims: image.volume.dims(),
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// Best wall time, CPU time of that run, peak memory over all runs, dims.
fn measure(kind: &str, path: &Path, runs: usize) -> anyhow::Result<(f64, f64, u64, [usize; 3])> {
    let exe = std::env::current_exe().context("locating the fuseprint binary")?;
    let mut best = f64::INFINITY;
    let mut best_cpu = 0.0;
    let mut peak = 0;
    let mut dims = [0; 3];
    for _ in 0..runs.max(1) {
        let out = std::process::Command::new(&exe)
            .args(["bench", "load", "--child", kind])
            .arg(path)
            .output()
            .context("running a benchmark child")?;
        if !out.status.success() {
            anyhow::bail!(
                "benchmark child failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let r: ChildReport = serde_json::from_slice(&out.stdout)?;
        if r.secs < best {
            best = r.secs;
            best_cpu = r.cpu_secs;
        }
        peak = peak.max(r.peak_rss_bytes);
        dims = r.dims;
    }
    Ok((best, best_cpu, peak, dims))
}

fn run_load(a: &LoadArgs) -> anyhow::Result<()> {
    let tmp;
    let dir = match &a.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir().context("creating a temporary folder")?;
            tmp.path().to_path_buf()
        }
    };
    let dims = [512, 512, a.slices];
    let series = dir.join("dicom");
    let nii = dir.join("ct.nii.gz");
    let nii_single = dir.join("ct_single_member.nii.gz");
    let ctx = JobContext::detached();
    if !series.is_dir() {
        eprintln!(
            "generating {}x{}x{} DICOM series in {}",
            dims[0],
            dims[1],
            dims[2],
            series.display()
        );
        io::dicom::write_synthetic_ct_series(&series, dims, [0.7, 0.7, 1.0])?;
    }
    if !nii.is_file() || !nii_single.is_file() {
        eprintln!("writing the same volume as .nii.gz");
        let scan = io::dicom::scan(&series, &ctx)?;
        let image = io::dicom::load_series(&scan, 0, &ctx)?;
        let t = Instant::now();
        nifti::write_nifti_with(
            &nii,
            &image.volume,
            "bench",
            true,
            nifti::GzLayout::ParallelMembers,
        )?;
        eprintln!(
            "  parallel-member .nii.gz written in {:.2} s",
            t.elapsed().as_secs_f64()
        );
        let t = Instant::now();
        nifti::write_nifti_with(
            &nii_single,
            &image.volume,
            "bench",
            true,
            nifti::GzLayout::SingleMember,
        )?;
        eprintln!(
            "  single-member .nii.gz written in {:.2} s",
            t.elapsed().as_secs_f64()
        );
    }
    let rows = [
        ("DICOM series (scan + load_series)", "dicom", &series),
        (".nii.gz, fuseprint layout", "nifti", &nii),
        (".nii.gz, single gzip member", "nifti", &nii_single),
    ];
    println!(
        "load benchmark: {}x{}x{} int16 CT, best of {} runs, each in a fresh process",
        dims[0], dims[1], dims[2], a.runs
    );
    println!(
        "{:<36} {:>8} {:>8} {:>12}",
        "input", "best s", "CPU s", "peak RSS MB"
    );
    let mut best_dicom = f64::INFINITY;
    let mut best_nii = f64::INFINITY;
    for (label, kind, path) in rows {
        let (secs, cpu, peak, got) = measure(kind, path, a.runs)?;
        if got != dims {
            anyhow::bail!("{label} loaded dims {got:?}, expected {dims:?}");
        }
        if kind == "dicom" {
            best_dicom = best_dicom.min(secs);
        } else {
            best_nii = best_nii.min(secs);
        }
        println!(
            "{label:<36} {secs:>8.3} {cpu:>8.2} {:>12.0}",
            peak as f64 / 1e6
        );
    }
    if let Ok(load) = io::load_average() {
        println!("machine load average while measuring: {load}");
    }
    println!("peers (issue 2, same 2-core machine, idle):");
    for (what, who, secs) in PEERS {
        println!("  {what:<14} {who:<15} {secs:.2} s");
    }
    let target = PEERS.iter().map(|p| p.2).fold(f64::INFINITY, f64::min) / 2.0;
    println!(
        "target ≤ {target:.3} s (half the fastest peer): DICOM {:.3} s {}, .nii.gz {:.3} s {}",
        best_dicom,
        if best_dicom <= target {
            "met"
        } else {
            "NOT met"
        },
        best_nii,
        if best_nii <= target { "met" } else { "NOT met" },
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// `bench ui`

#[derive(Debug, clap::Args)]
pub struct BenchUiArgs {
    /// Frames timed idle, and at most as many while the job runs.
    #[arg(long, default_value_t = 300)]
    pub frames: usize,
    /// The long job: `register` (rigid, sample MR onto CT) or `mesh` (bone threshold, meshes).
    #[arg(long, default_value = "register")]
    pub job: String,
    /// Page through the axial slices during the timed frames (each frame draws a new slice).
    #[arg(long)]
    pub scroll: bool,
}

/// (median, p95, max) of `v`.
fn spread(v: &[f64]) -> (f64, f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| s[((s.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.95), s[s.len() - 1])
}

fn run_ui_bench(args: BenchUiArgs) -> anyhow::Result<()> {
    use crate::app::{bench_ui, UiBenchJob};
    let job = match args.job.as_str() {
        "register" => UiBenchJob::Register,
        "mesh" => UiBenchJob::Mesh,
        other => anyhow::bail!("unknown job {other:?} (register or mesh)"),
    };
    println!(
        "bench ui: the real App::ui on the sample study, headless at 60 frames/s, {} frames idle \
         then up to {} while the {} job runs{} ({} CPUs)",
        args.frames,
        args.frames,
        args.job,
        if args.scroll {
            ", scrolling the axial slice every frame"
        } else {
            ""
        },
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let load_before = io::load_average().ok();
    let result = bench_ui(args.frames, job, args.scroll).map_err(|e| anyhow::anyhow!(e))?;
    let row = |name: &str, t: &crate::app::FrameTimes| {
        let (ui_med, ui_p95, ui_max) = spread(&t.ui_ms);
        let (f_med, f_p95, f_max) = spread(&t.frame_ms);
        println!(
            "{name:<10} {:>5} frames   App::ui median {ui_med:6.2} ms  p95 {ui_p95:6.2} ms  max {ui_max:7.2} ms   \
             whole frame (ui + layout + tessellation) median {f_med:6.2} ms  p95 {f_p95:6.2} ms  max {f_max:7.2} ms",
            t.ui_ms.len()
        );
    };
    row("idle", &result.idle);
    row(&format!("{} job", args.job), &result.busy);
    println!(
        "the job ran {:.1} s{}",
        result.job_secs,
        if result.job_finished {
            " and finished while frames were counted"
        } else {
            " before the frame count was reached (then cancelled)"
        }
    );
    // Other programs on the machine change these figures: say how busy it was.
    println!(
        "process CPU {} (user + system, all threads); load average before {}, after {}",
        io::cpu_seconds().map_or("unknown".to_string(), |s| format!("{s:.1} s")),
        load_before.as_deref().unwrap_or("unknown"),
        io::load_average().as_deref().unwrap_or("unknown"),
    );
    Ok(())
}
