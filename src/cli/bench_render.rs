//! `fuseprint bench render`: frames per second of the raycaster (issue 8). Not a test.
//!
//! Generates a head-like CT phantom (air, skin, soft tissue, a 7 mm skull, contrast-filled
//! vessels) at 256³ and 512³ (and, on request, long grids such as a 512×512×2048 whole-body
//! CT, the head stretched along the body axis), then times DVR (full and interactive quality)
//! and MIP at 512² and 1920×1080 on whatever adapter wgpu picks, printing the adapter first.
//! `--max-texture-dim` forces bricking below the device's 3D texture limit. Each figure is
//! the mean over at least `--min-frames` frames and `--seconds` of rendering; the shader and
//! the volume are warmed up by one small frame first.

use super::render::{framing_camera, parse_size};
use crate::render::{
    upload_volume_with, GpuContext, OffscreenTarget, RaycastParams, Raycaster, RenderMode,
    StandardView, TransferFunction, UploadOptions,
};
use crate::volume::{Volume, VolumeGeometry};
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct BenchRenderArgs {
    /// Generated volumes: N for an N³ cube, or IxJxK (e.g. 512x512x2048).
    #[arg(long, value_delimiter = ',', default_values_t = ["256".to_string(), "512".to_string()])]
    pub volumes: Vec<String>,
    /// Picture sizes, WIDTHxHEIGHT.
    #[arg(long, value_delimiter = ',', default_values_t = ["512x512".to_string(), "1920x1080".to_string()])]
    pub sizes: Vec<String>,
    /// Rendering time per figure, at least `--min-frames` frames.
    #[arg(long, default_value_t = 2.0)]
    pub seconds: f64,
    /// Fewest frames per figure (software rendering of 512³ at 1080p takes many seconds each).
    #[arg(long, default_value_t = 2)]
    pub min_frames: u32,
    /// Largest 3D texture side to use (forces bricking below the device's limit).
    #[arg(long)]
    pub max_texture_dim: Option<u32>,
}

fn parse_dims(text: &str) -> anyhow::Result<[usize; 3]> {
    let parts: Vec<usize> = text
        .split(['x', 'X', '×'])
        .map(|p| p.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| {
            anyhow::anyhow!("--volumes takes N or IxJxK, e.g. 512x512x2048 (got {text:?})")
        })?;
    match parts.as_slice() {
        [n] if *n > 1 => Ok([*n; 3]),
        [i, j, k] if *i > 1 && *j > 1 && *k > 1 => Ok([*i, *j, *k]),
        _ => anyhow::bail!("--volumes takes N or IxJxK, each above 1 (got {text:?})"),
    }
}

/// A 240 mm head in an `n³` grid: the skull is what ct-bone shows, the vessels what MIP shows.
pub fn head_phantom(n: usize) -> Volume<f32> {
    body_phantom([n; 3])
}

/// [`head_phantom`] on an `I×J×K` grid of `240 / I` mm voxels, stretched along the body
/// axis (superior) when `K` is longer: the same structures, a longer body.
pub fn body_phantom(dims: [usize; 3]) -> Volume<f32> {
    let spacing = 240.0 / dims[0] as f64;
    let half = dims.map(|n| (n as f64 - 1.0) * spacing / 2.0);
    let stretch = dims[2] as f64 / dims[0] as f64;
    let geometry = VolumeGeometry::axis_aligned(dims, [spacing; 3], [-half[0], -half[1], -half[2]])
        .expect("valid");
    Volume::from_fn(geometry, move |[i, j, k]| {
        let mut p = [i, j, k].map(|v| v as f64 * spacing);
        for c in 0..3 {
            p[c] -= half[c];
        }
        p[2] /= stretch.max(1e-6);
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
        "{:>13} {:>10} {:>16} {:>9} {:>10}",
        "volume", "picture", "mode", "fps", "ms/frame"
    );
    let options = UploadOptions {
        max_texture_dimension: args.max_texture_dim,
        ..UploadOptions::default()
    };
    for text in &args.volumes {
        let dims = parse_dims(text)?;
        let name = if dims[0] == dims[1] && dims[1] == dims[2] {
            format!("{}³", dims[0])
        } else {
            format!("{}x{}x{}", dims[0], dims[1], dims[2])
        };
        let started = Instant::now();
        let phantom = body_phantom(dims);
        let generated = started.elapsed();
        let started = Instant::now();
        let volume = upload_volume_with(&gpu.device, &gpu.queue, &phantom, &options)?;
        drop(phantom);
        let setup = OffscreenTarget::new(&gpu, 8, 8)?;
        let probe = RaycastParams::new(&volume, &bone, Default::default());
        raycaster.render_and_wait(&gpu, &setup, &probe)?;
        println!(
            "# {name} phantom: generated in {:.2} s, uploaded as {:?} ({} MiB, {} texture brick(s) {:?}, downsampled {:?}) in {:.2} s; ct-bone sees {:.1} % of its 8³ bricks",
            generated.as_secs_f64(),
            volume.format,
            volume.texture_bytes >> 20,
            volume.texture_bricks().count(),
            volume.brick_grid,
            volume.downsample,
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
                    "{:>13} {:>10} {:>16} {:>9.2} {:>10.1}",
                    name,
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
