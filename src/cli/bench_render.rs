//! `fuseprint bench render`: frames per second of the raycaster (issue 8). Not a test.
//!
//! Generates a head-like CT phantom (air, skin, soft tissue, a 7 mm skull, contrast-filled
//! vessels) at 256³ and 512³, then times DVR (full and interactive quality) and MIP at
//! 512² and 1920×1080 on whatever adapter wgpu picks, printing the adapter first. Each
//! figure is the mean over at least `--min-frames` frames and `--seconds` of rendering; the
//! shader and the volume are warmed up by one small frame first.

use super::render::{framing_camera, parse_size};
use crate::render::{
    upload_volume, GpuContext, OffscreenTarget, RaycastParams, Raycaster, RenderMode, StandardView,
    TransferFunction,
};
use crate::volume::{Volume, VolumeGeometry};
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct BenchRenderArgs {
    /// Cube sizes of the generated volumes.
    #[arg(long, value_delimiter = ',', default_values_t = [256usize, 512])]
    pub volumes: Vec<usize>,
    /// Picture sizes, WIDTHxHEIGHT.
    #[arg(long, value_delimiter = ',', default_values_t = ["512x512".to_string(), "1920x1080".to_string()])]
    pub sizes: Vec<String>,
    /// Rendering time per figure, at least `--min-frames` frames.
    #[arg(long, default_value_t = 2.0)]
    pub seconds: f64,
    /// Fewest frames per figure (software rendering of 512³ at 1080p takes many seconds each).
    #[arg(long, default_value_t = 2)]
    pub min_frames: u32,
}

/// A 240 mm head in an `n³` grid: the skull is what ct-bone shows, the vessels what MIP shows.
pub fn head_phantom(n: usize) -> Volume<f32> {
    let spacing = 240.0 / n as f64;
    let half = (n as f64 - 1.0) * spacing / 2.0;
    let geometry =
        VolumeGeometry::axis_aligned([n; 3], [spacing; 3], [-half, -half, -half]).expect("valid");
    Volume::from_fn(geometry, move |[i, j, k]| {
        let p = [i, j, k].map(|v| v as f64 * spacing - half);
        let r = (p[0] * p[0] + p[1] * p[1] * 1.2 + p[2] * p[2] * 0.9).sqrt();
        let vessel = |cx: f64, cy: f64, radius: f64| {
            ((p[0] - cx).powi(2) + (p[1] - cy).powi(2)).sqrt() < radius
        };
        if r > 100.0 {
            -1000.0
        } else if r > 97.0 {
            -50.0
        } else if r > 90.0 {
            1200.0
        } else if vessel(20.0, 10.0, 3.0) || vessel(-20.0, 10.0, 3.0) || vessel(0.0, -30.0, 4.0) {
            350.0
        } else {
            40.0 + 10.0 * ((p[0] * 0.2).sin() * (p[2] * 0.15).cos()) as f32
        }
    })
}

pub fn run(args: BenchRenderArgs) -> anyhow::Result<()> {
    let sizes: Vec<[u32; 2]> = args
        .sizes
        .iter()
        .map(|s| parse_size(s))
        .collect::<anyhow::Result<_>>()?;
    let gpu = GpuContext::headless()?;
    println!("adapter: {}", gpu.describe());
    let bone = TransferFunction::preset("ct-bone")?;
    let mut raycaster = Raycaster::new(&gpu.device, OffscreenTarget::COLOR_FORMAT);
    println!(
        "{:>6} {:>10} {:>16} {:>9} {:>10}",
        "volume", "picture", "mode", "fps", "ms/frame"
    );
    for &n in &args.volumes {
        let started = Instant::now();
        let phantom = head_phantom(n);
        let generated = started.elapsed();
        let started = Instant::now();
        let volume = upload_volume(&gpu.device, &gpu.queue, &phantom)?;
        drop(phantom);
        let setup = OffscreenTarget::new(&gpu, 8, 8)?;
        let probe = RaycastParams::new(&volume, &bone, Default::default());
        raycaster.render_and_wait(&gpu, &setup, &probe)?;
        println!(
            "# {n}³ phantom: generated in {:.2} s, uploaded as {:?} in {:.2} s; ct-bone sees {:.1} % of its 8³ bricks",
            generated.as_secs_f64(),
            volume.format,
            started.elapsed().as_secs_f64(),
            100.0 * volume.visible_brick_fraction(&bone)
        );
        for &size in &sizes {
            let target = OffscreenTarget::new(&gpu, size[0], size[1])?;
            let aspect = f64::from(size[0]) / f64::from(size[1]);
            let camera = framing_camera(&volume.corners_world(), StandardView::Anterior, aspect);
            for (label, mode, interactive) in [
                ("dvr", RenderMode::Dvr, false),
                ("dvr interactive", RenderMode::Dvr, true),
                ("mip", RenderMode::Mip, false),
            ] {
                let mut params = RaycastParams::new(&volume, &bone, camera);
                params.mode = mode;
                params.interactive = interactive;
                let started = Instant::now();
                let mut frames = 0u32;
                while frames < args.min_frames || started.elapsed().as_secs_f64() < args.seconds {
                    // A slowly turning camera: every frame is new work, as while orbiting.
                    params.camera.orbit(1.0, 0.0);
                    params.frame_seed = frames;
                    raycaster.render_and_wait(&gpu, &target, &params)?;
                    frames += 1;
                }
                let secs = started.elapsed().as_secs_f64();
                println!(
                    "{:>6} {:>10} {:>16} {:>9.2} {:>10.1}",
                    format!("{n}³"),
                    format!("{}x{}", size[0], size[1]),
                    label,
                    f64::from(frames) / secs,
                    1000.0 * secs / f64::from(frames)
                );
            }
        }
    }
    Ok(())
}
