//! Layer 6 (beside `app`): headless commands over the same core. No egui, no wgpu.
//!
//! Each subcommand lives in its own file; this one parses and dispatches. On failure a
//! command prints one line `error: <reason>` and exits non-zero.

pub mod bench;
pub mod bench_inference;
pub mod bench_render;
mod bench_runs;
pub mod bench_segment;
pub mod convert;
pub mod info;
pub mod mesh;
mod mesh_peers;
pub mod metrics;
pub mod models;
pub mod preprocess;
mod progress;
pub mod register;
pub mod render;
pub mod report;
pub mod segment;
pub mod segment_model;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "fuseprint",
    version,
    about = "CT + MRI to a fused 3D picture and a printable model"
)]
pub struct Cli {
    /// Open this DICOM folder or NIfTI file in the desktop window (no subcommand).
    #[arg(global = false)]
    pub open: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the series in a DICOM folder/file, or the geometry of a NIfTI file.
    Info(info::InfoArgs),
    /// Convert a DICOM series or a NIfTI file to NIfTI (.nii or .nii.gz).
    Convert(convert::ConvertArgs),
    /// Register MOVING (MRI) onto FIXED (CT): writes transform.tfm, moving_on_fixed.nii.gz, report.json.
    Register(register::RegisterArgs),
    /// Denoise, bias-correct, normalise, resample, crop, reorient or reduce metal artefacts.
    Preprocess(preprocess::PreprocessArgs),
    /// Draw a volume to a PNG on the GPU: `render IN -o view.png --preset ct-bone`.
    Render(render::RenderArgs),
    /// Measure performance (not a test): `bench load|segment|preprocess|inference|render`.
    Bench(bench::BenchArgs),
    /// Mesh an isosurface or every label into a printable model: STL, 3MF, OBJ or PLY.
    Mesh(mesh::MeshArgs),
    /// Segmentation: `segment threshold|grow|islands|morph|model`.
    Segment(segment::SegmentArgs),
    /// Dice, Jaccard, HD95, surface distance and volumes of two label maps, overall then per label.
    Metrics(metrics::MetricsArgs),
    /// List the ONNX models found (models/, tests/models/) and the active inference backend.
    Models(models::ModelsArgs),
    /// One-page HTML planning report of a saved project (or `--sample`), pictures included.
    Report(report::ReportArgs),
}

/// Runs one headless command; prints `error: …` and returns a failure code on error.
pub fn run(command: Command) -> ExitCode {
    let result = match command {
        Command::Info(args) => info::run(args),
        Command::Convert(args) => convert::run(args),
        Command::Render(args) => render::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Mesh(args) => mesh::run(args),
        Command::Register(args) => register::run(args),
        Command::Preprocess(args) => preprocess::run(args),
        Command::Segment(args) => segment::run(args),
        Command::Metrics(args) => metrics::run(args),
        Command::Models(args) => models::run(&args),
        Command::Report(args) => report::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `RUST_LOG`-controlled logging to stderr.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,fuseprint=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
