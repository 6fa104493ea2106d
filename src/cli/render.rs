//! `fuseprint render IN -o view.png [--preset ct-bone] [--mode dvr|mip|minip] [--size WxH]
//! [--view anterior|posterior|left|right|superior|inferior] [--labels L.nii.gz] [--force]`:
//! one offscreen picture of a volume (GPU, lavapipe where there is none).

use super::progress::run_with_progress;
use crate::io;
use crate::render::{
    render_to_png, upload_labels, upload_volume, Camera, GpuContext, OffscreenTarget,
    RaycastParams, Raycaster, RenderMode, StandardView, TransferFunction,
};
use crate::volume::Modality;
use anyhow::{anyhow, bail};
use nalgebra::Point3;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// The image to draw: a DICOM folder/file or a NIfTI file.
    pub input: PathBuf,
    /// The picture to write (.png).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Transfer function: ct-bone, ct-soft, ct-angio, mr-t1 or mr-angio.
    #[arg(long, default_value = "ct-bone")]
    pub preset: String,
    /// dvr (shaded volume), mip (maximum intensity) or minip (minimum intensity).
    #[arg(long, default_value = "dvr")]
    pub mode: String,
    /// Picture size in pixels, WIDTHxHEIGHT.
    #[arg(long, default_value = "512x512")]
    pub size: String,
    /// Side the patient is seen from: anterior, posterior, left, right, superior, inferior.
    #[arg(long, default_value = "anterior")]
    pub view: String,
    /// A label map drawn in its label colours over the volume (DVR).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// MIP/MinIP grey window LOW,HIGH in image units (HU on CT); default the whole range.
    #[arg(long, allow_hyphen_values = true)]
    pub window: Option<String>,
    /// Replace OUT if it exists.
    #[arg(long)]
    pub force: bool,
}

/// `"1920x1080"` → `[1920, 1080]`.
pub fn parse_size(text: &str) -> anyhow::Result<[u32; 2]> {
    let parsed = text
        .split_once(['x', 'X', '×'])
        .and_then(|(w, h)| Some([w.trim().parse().ok()?, h.trim().parse().ok()?]));
    match parsed {
        Some([w, h]) if w > 0 && h > 0 => Ok([w, h]),
        _ => bail!("--size must be WIDTHxHEIGHT with both above 0, e.g. 512x512 (got {text:?})"),
    }
}

fn parse_window(text: &str) -> anyhow::Result<(f32, f32)> {
    let parsed = text
        .split_once(',')
        .and_then(|(a, b)| Some((a.trim().parse::<f32>().ok()?, b.trim().parse::<f32>().ok()?)));
    match parsed {
        Some((lo, hi)) if lo.is_finite() && hi.is_finite() && hi > lo => Ok((lo, hi)),
        _ => bail!("--window must be LOW,HIGH with LOW < HIGH, e.g. -200,1500 (got {text:?})"),
    }
}

/// A camera on `view`'s side that frames the volume's box in an `aspect` picture.
pub fn framing_camera(corners: &[Point3<f64>; 8], view: StandardView, aspect: f64) -> Camera {
    let mut lo = corners[0];
    let mut hi = corners[0];
    for c in corners {
        lo = lo.inf(c);
        hi = hi.sup(c);
    }
    let mut camera = Camera::default();
    camera.set_view(view);
    camera.fit_to_bounds(lo, hi, aspect);
    camera
}

pub fn run(args: RenderArgs) -> anyhow::Result<()> {
    // Everything the user typed is checked before a slow load.
    let transfer = TransferFunction::preset(&args.preset)?;
    let mode = RenderMode::from_name(&args.mode)
        .ok_or_else(|| anyhow!("--mode must be dvr, mip or minip (got {:?})", args.mode))?;
    let view = StandardView::from_name(&args.view).ok_or_else(|| {
        anyhow!(
            "--view must be anterior, posterior, left, right, superior or inferior (got {:?})",
            args.view
        )
    })?;
    let size = parse_size(&args.size)?;
    let window = args.window.as_deref().map(parse_window).transpose()?;
    if !args
        .output
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"))
    {
        bail!(
            "the picture is written as PNG: name it .png: {}",
            args.output.display()
        );
    }
    if !args.force && args.output.exists() {
        bail!(
            "{} already exists (pass --force to replace it)",
            args.output.display()
        );
    }

    let input = args.input.clone();
    let image = run_with_progress("load", move |ctx| io::load_image(&input, ctx))?;
    if image.meta.modality != Modality::Ct && args.preset.starts_with("ct-") {
        eprintln!(
            "note: {} is not CT ({:?}); the {} preset expects Hounsfield units",
            args.input.display(),
            image.meta.modality,
            args.preset
        );
    }
    let labels = match &args.labels {
        Some(path) => {
            let path = path.clone();
            let (map, _) = run_with_progress("load labels", move |ctx| {
                io::labels::load_label_map::<serde_json::Value>(&path, ctx)
            })?;
            Some(map)
        }
        None => None,
    };

    let gpu = GpuContext::headless()?;
    tracing::info!("rendering on {}", gpu.describe());
    let volume = upload_volume(&gpu.device, &gpu.queue, &image.volume)?;
    drop(image);
    let label_texture = labels
        .as_ref()
        .map(|map| upload_labels(&gpu.device, &gpu.queue, map))
        .transpose()?;
    let aspect = f64::from(size[0]) / f64::from(size[1]);
    let camera = framing_camera(&volume.corners_world(), view, aspect);
    let mut params = RaycastParams::new(&volume, &transfer, camera);
    params.mode = mode;
    params.window = window;
    params.labels = label_texture.as_ref();
    let mut raycaster = Raycaster::new(&gpu.device, OffscreenTarget::COLOR_FORMAT);
    render_to_png(
        &gpu,
        &mut raycaster,
        &params,
        size,
        &args.output,
        args.force,
    )?;
    println!(
        "wrote {} ({}x{}, {} {}, {} view)",
        args.output.display(),
        size[0],
        size[1],
        mode.name(),
        transfer.name,
        view.name()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_windows_parse_or_explain() {
        assert_eq!(parse_size("1920x1080").unwrap(), [1920, 1080]);
        assert_eq!(parse_size("64×32").unwrap(), [64, 32]);
        for bad in ["512", "0x10", "ax3", "-1x5"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_window("-200,1500").unwrap(), (-200.0, 1500.0));
        assert!(parse_window("5,5").is_err() && parse_window("x").is_err());
    }
}
